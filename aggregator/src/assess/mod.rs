//! Pure assessment: the judgements labscope makes, as functions over typed
//! inputs with no I/O (as kube-core separates types from kube-client), so
//! each rule is unit-tested without a fake server. Tools read the cluster
//! and hand what they read to these functions.
//!
//! The vocabulary the judgements share is here too: a part of an answer
//! that could not be read ([`FailedPart`]) and the spelling of a verdict
//! ([`label`]).

pub mod backups;
pub mod certificates;
pub mod dns;
pub mod events;
pub mod flux;
pub mod flux_report;
pub mod health;
pub mod images;
pub mod ingress;
pub mod media;
pub mod pods;
pub mod secrets;
pub mod tailscale;

use schemars::JsonSchema;
use serde::Serialize;

use crate::codes::ErrorCode;

/// One part of an answer that could not be read (a kind, a check): partial
/// answers say which part failed and why, and are never `healthy`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FailedPart {
    /// The kind or check.
    pub part: String,
    /// Machine-readable cause.
    pub code: ErrorCode,
    /// What failed.
    pub message: String,
    /// What to do.
    pub hint: String,
}

impl FailedPart {
    /// `part` failed with `e`.
    pub fn new(part: &str, e: &crate::cluster::Error) -> Self {
        Self {
            part: part.to_string(),
            code: e.code(),
            message: e.to_string(),
            hint: e.hint(),
        }
    }
}

/// "NOT READ part: message — hint" lines for a text rendering.
pub fn failed_text(failed: &[FailedPart]) -> String {
    failed
        .iter()
        .map(|f| format!("NOT READ {}: {} — {}\n", f.part, f.message, f.hint))
        .collect()
}

/// The words every tool's `verdict` is made of, and what each means. A tool
/// uses those that apply to it, plus "no <things>" when there is nothing to
/// judge (`no certificates`); a test holds every output schema to this list.
pub const VERDICTS: &[(&str, &str)] = &[
    ("healthy", "everything read, nothing wrong"),
    ("degraded", "something is wrong, the service still works"),
    ("critical", "something is down or cannot recover by itself"),
    (
        "incomplete",
        "a part could not be read; what was read is fine",
    ),
    (
        "not installed",
        "the API group is not served: the component is absent",
    ),
    (
        "not configured",
        "labscope was not told where the service is",
    ),
    // One CronJob's verdict (get_cronjob_details; get_backup_status rows).
    (
        "ok",
        "the CronJob's last run succeeded and it runs on schedule",
    ),
    ("running", "a run is in progress"),
    ("failing", "the last run failed"),
    ("overdue", "no successful run within the expected interval"),
    ("missed schedule", "a scheduled run did not start"),
    ("suspended", "the CronJob is suspended"),
    ("unknown", "never ran, or its runs cannot be read"),
];

/// The JSON spelling of a value that serialises as a string (a verdict, a
/// state), for text renderings.
pub fn label<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}
