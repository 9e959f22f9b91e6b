//! The audit log: one JSON line per mutating call, allowed or refused —
//! time, tool, arguments (secret-looking values redacted), caller (the API
//! key's name, "stdio" or "cli"), outcome, the rule that refused it, and
//! what happened. Appended with `O_APPEND` (whole lines, safe across
//! processes sharing the file), created mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Map, Value};

/// What became of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It ran and changed what it said.
    Performed,
    /// It ran and found nothing to change: the object was already in the
    /// state asked for (suspending a suspended Kustomization).
    NoChange,
    /// A rule refused it; nothing was changed.
    Refused,
    /// It was allowed and failed (the API refused, timed out, …).
    Failed,
}

/// One line of the log.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// RFC 3339, UTC.
    pub time: String,
    /// Tool name.
    pub tool: String,
    /// Its arguments, secrets redacted.
    pub arguments: Value,
    /// Who called.
    pub caller: String,
    /// What became of it.
    pub outcome: Outcome,
    /// The rule that refused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// How a person confirmed it (or that nobody could be asked and the
    /// fallback allowed it); absent when it never got that far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<Confirmation>,
    /// What it did, or why not.
    pub message: String,
}

/// Where entries go.
#[derive(Debug, Default)]
pub struct AuditLog {
    path: Option<PathBuf>,
    file: Option<Mutex<std::fs::File>>,
}

impl AuditLog {
    /// Opens (creating) `path` for appending; `None` keeps entries in the
    /// process log only (mutations are then off: the config requires a file
    /// to turn them on).
    pub fn open(path: Option<&Path>) -> std::io::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(Self {
            path: Some(path.to_path_buf()),
            file: Some(Mutex::new(file)),
        })
    }

    /// The file, when there is one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Appends `entry` (and logs it at info level). A failed write is
    /// logged as an error: the call itself has already happened.
    pub fn record(&self, entry: &Entry) {
        let line = match serde_json::to_string(entry) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, tool = %entry.tool, "audit entry could not be serialised");
                return;
            }
        };
        tracing::info!(target: "labscope::audit", "{line}");
        let Some(file) = &self.file else { return };
        let written = match file.lock() {
            Ok(mut f) => f.write_all(format!("{line}\n").as_bytes()),
            Err(_) => Err(std::io::Error::other("audit log lock poisoned")),
        };
        if let Err(e) = written {
            tracing::error!(error = %e, path = ?self.path, "writing the audit log failed");
        }
    }
}

/// `args` with the values of secret-looking keys replaced.
pub fn redact_args(args: &Map<String, Value>) -> Value {
    Value::Object(
        args.iter()
            .map(|(k, v)| {
                let v = if crate::redact::secret_name(k) {
                    Value::String("<redacted>".into())
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

/// How a person confirmed an operation, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirmation {
    /// A person answered yes at the CLI's prompt.
    Terminal,
    /// `--yes` on the command line.
    YesFlag,
    /// The MCP client asked its user (elicitation), who accepted.
    Elicitation,
    /// The MCP client (2026-07-28) answered the input request with its
    /// user's yes.
    InputRequest,
    /// Nobody could be asked; `[mutations] confirm_fallback = "allow"`.
    Fallback,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_one_json_line_per_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(Some(&path)).unwrap();
        let mut args = Map::new();
        args.insert("namespace".into(), "jellyfin".into());
        args.insert("apiKey".into(), "hunter2".into());
        for outcome in [Outcome::Refused, Outcome::Performed] {
            log.record(&Entry {
                time: "2026-12-02T00:00:00Z".into(),
                tool: "restart_deployment".into(),
                arguments: redact_args(&args),
                caller: "cli".into(),
                outcome,
                rule: (outcome == Outcome::Refused).then(|| "mutations.restart".into()),
                confirmed: None,
                message: "m".into(),
            });
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["outcome"], "refused");
        assert_eq!(lines[0]["rule"], "mutations.restart");
        assert!(lines[1].get("rule").is_none());
        assert_eq!(lines[1]["arguments"]["apiKey"], "<redacted>");
        assert!(!text.contains("hunter2"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
