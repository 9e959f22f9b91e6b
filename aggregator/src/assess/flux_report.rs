//! The Flux report: the objects `assess::flux` judged, counted, their root
//! causes apart from their consequences (stuck first, then the oldest), and
//! the verdict. Pure; `tools/flux.rs` reads the kinds into a [`FluxRead`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::FailedPart;
use super::flux::{Assessed, FluxObject, FluxState};
use crate::cluster::time::rfc3339;

/// What one read of the Flux kinds found.
#[derive(Debug, Clone)]
pub struct FluxRead {
    /// Every object read, judged, with causes linked.
    pub rows: Vec<Assessed>,
    /// kind → the version it was read at ("not installed", "unreadable").
    pub versions: BTreeMap<String, String>,
    /// Kinds that could not be read.
    pub failed: Vec<FailedPart>,
}

impl FluxRead {
    /// At least one kind asked for is served (or failed to read, which is
    /// not "not installed" either).
    pub fn installed(&self) -> bool {
        !self.failed.is_empty() || self.versions.values().any(|v| v != "not installed")
    }
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum FluxVerdict {
    /// Everything ready (or static, suspended on purpose, progressing).
    #[serde(rename = "healthy")]
    Healthy,
    /// Something fails.
    #[serde(rename = "degraded")]
    Degraded,
    /// Something is stuck.
    #[serde(rename = "critical")]
    Critical,
    /// A kind could not be read.
    #[serde(rename = "incomplete")]
    Incomplete,
    /// No Flux kind is served.
    #[serde(rename = "not installed")]
    NotInstalled,
}

/// Counts by state.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct FluxSummary {
    /// Objects.
    pub total: usize,
    /// Ready.
    pub ready: usize,
    /// Failing.
    pub failing: usize,
    /// Stuck.
    pub stuck: usize,
    /// Suspended.
    pub suspended: usize,
    /// Progressing.
    pub progressing: usize,
    /// Static.
    #[serde(rename = "static")]
    pub static_: usize,
    /// No Ready condition yet.
    pub unknown: usize,
}

/// A failing object that is not explained by another, with what it explains.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RootCause {
    /// The object.
    #[serde(flatten)]
    pub object: FluxObject,
    /// Failing objects that are its consequences.
    pub explains: Vec<String>,
}

/// Flux.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FluxStatus {
    /// Some Flux kind is served.
    pub installed: bool,
    /// Verdict.
    pub verdict: FluxVerdict,
    /// Version each kind was read at.
    pub api_versions: BTreeMap<String, String>,
    /// Counts (absent when not installed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<FluxSummary>,
    /// Stuck first, then the longest failing.
    pub root_causes: Vec<RootCause>,
    /// Objects (only failing and suspended with onlyFailing).
    pub resources: Vec<FluxObject>,
    /// Kinds that could not be read.
    pub failed_parts: Vec<FailedPart>,
    /// The clock used.
    pub now: String,
}

/// The report over one read (pure).
pub fn status(read: &FluxRead, only_failing: bool, now_s: i64) -> FluxStatus {
    if !read.installed() {
        return FluxStatus {
            installed: false,
            verdict: FluxVerdict::NotInstalled,
            api_versions: read.versions.clone(),
            summary: None,
            root_causes: Vec::new(),
            resources: Vec::new(),
            failed_parts: read.failed.clone(),
            now: rfc3339(now_s),
        };
    }
    let objects: Vec<&FluxObject> = read.rows.iter().map(|r| &r.object).collect();
    let count = |s: FluxState| objects.iter().filter(|o| o.status == s).count();
    let summary = FluxSummary {
        total: objects.len(),
        ready: count(FluxState::Ready),
        failing: count(FluxState::Failing),
        stuck: count(FluxState::Stuck),
        suspended: count(FluxState::Suspended),
        progressing: count(FluxState::Progressing),
        static_: count(FluxState::Static),
        unknown: count(FluxState::Unknown),
    };
    let mut roots: Vec<&Assessed> = read
        .rows
        .iter()
        .filter(|r| r.object.status.problem() && r.object.consequence_of.is_none())
        .collect();
    roots.sort_by_key(|r| {
        (
            r.object.status != FluxState::Stuck,
            r.since_s.unwrap_or(i64::MAX),
        )
    });
    let root_causes = roots
        .iter()
        .map(|r| RootCause {
            object: r.object.clone(),
            explains: objects
                .iter()
                .filter(|o| o.consequence_of.as_deref() == Some(r.object.id().as_str()))
                .map(|o| o.id())
                .collect(),
        })
        .collect();
    let verdict = if summary.stuck > 0 {
        FluxVerdict::Critical
    } else if objects.iter().any(|o| o.status.problem()) {
        FluxVerdict::Degraded
    } else if !read.failed.is_empty() {
        FluxVerdict::Incomplete
    } else {
        FluxVerdict::Healthy
    };
    FluxStatus {
        installed: true,
        verdict,
        api_versions: read.versions.clone(),
        summary: Some(summary),
        root_causes,
        resources: objects
            .iter()
            .filter(|o| !only_failing || o.status.problem() || o.status == FluxState::Suspended)
            .map(|o| (*o).clone())
            .collect(),
        failed_parts: read.failed.clone(),
        now: rfc3339(now_s),
    }
}
