//! Workload tools from the Kubernetes API: `get_pod_logs` (exact or unique
//! prefix, container, previous, since, grep, byte cap, secrets redacted) and
//! `get_events` (newest first, de-duplicated with counts).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use regex::Regex;
use serde_json::{Map, Value, json};

use super::args::Args;
use super::cluster::{api_error, cluster};
use super::{ErrorCode, ToolContext, ToolDef, ToolError, ToolOutput};
use crate::cluster::Request;
use crate::redact::redact;

/// The workload tools.
pub fn tools() -> Vec<ToolDef> {
    vec![ToolDef::untyped(
        super::Meta {
            name: "get_pod_logs",
            title: "Pod logs, filtered",
            description: "Logs of one pod (`pod` is the exact name or a unique prefix, e.g. the Deployment name), one \
                container (default: the first, others listed), `lines` (100, max 5000), optional `sinceSeconds`, \
                `previous` (the crashed instance), `grep` (regex, applied before the byte cap) and `maxBytes` (64 KiB, \
                the newest bytes are kept). Secret-looking values are redacted.",
            toolset: super::Toolset::Cluster,
            hints: super::Hints::READ,
        },
        json!({"type": "object", "properties": {
                "namespace": {"type": "string"}, "pod": {"type": "string"}, "container": {"type": "string"},
                "lines": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 100},
                "sinceSeconds": {"type": "integer", "minimum": 1, "maximum": 2592000},
                "previous": {"type": "boolean", "default": false}, "grep": {"type": "string"},
                "maxBytes": {"type": "integer", "minimum": 1024, "maximum": 1048576, "default": 65536}},
                "required": ["namespace", "pod"], "additionalProperties": false}),
        json!({"type": "object", "properties": {
                "namespace": {"type": "string"}, "pod": {"type": "string"}, "container": {"type": "string"},
                "otherContainers": {"type": "array"}, "log": {"type": "string"}, "lines": {"type": "integer"},
                "matchedLines": {"type": "integer"}, "truncated": {"type": "boolean"}, "redactions": {"type": "integer"}},
                "required": ["namespace", "pod", "container", "log", "truncated"]}),
        |ctx, args| Box::pin(get_pod_logs(ctx, args)),
    )]
}

/// How many bytes of log to read for an answer of at most `max_bytes`:
/// room for `grep` to throw most lines away, bounded so one call never pulls
/// a huge log into memory (`limitBytes`).
pub(crate) fn read_limit(max_bytes: usize) -> usize {
    (max_bytes * 8).clamp(256 * 1024, 8 * 1024 * 1024)
}

/// A log made safe to show: redacted first, then filtered, then capped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilteredLog {
    /// What is shown.
    pub text: String,
    /// Lines read.
    pub lines: usize,
    /// Lines that matched `grep` (all of them without one).
    pub matched: usize,
    /// Cut to the newest `max_bytes`.
    pub truncated: bool,
    /// Secrets hidden in the matched lines.
    pub redactions: usize,
}

/// Redacts `raw` as a whole (a PEM key spans lines), then keeps the lines
/// matching `grep`, then the newest `max_bytes`. Matching only ever sees
/// redacted text, so no pattern can probe a secret's characters.
pub(crate) fn filter_log(raw: &str, grep: Option<&Regex>, max_bytes: usize) -> FilteredLog {
    let redacted = redact(raw);
    let lines = raw.lines().count();
    let kept: String = match grep {
        Some(re) => redacted
            .text
            .lines()
            .filter(|l| re.is_match(l))
            .map(|l| format!("{l}\n"))
            .collect(),
        None => redacted.text.clone(),
    };
    let matched = kept.lines().count();
    let redactions = if grep.is_some() {
        kept.matches(crate::redact::MARK).count()
    } else {
        redacted.count
    };
    let (text, truncated) = tail_bytes(&kept, max_bytes);
    FilteredLog {
        text: text.to_string(),
        lines,
        matched,
        truncated,
        redactions,
    }
}

/// Keeps the newest `max` bytes of `text`, cut at a line start.
pub(crate) fn tail_bytes(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = text[start..]
        .find('\n')
        .map(|i| start + i + 1)
        .unwrap_or(start);
    (&text[cut..], true)
}

async fn get_pod_logs(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(
        args,
        &[
            "namespace",
            "pod",
            "container",
            "lines",
            "sinceSeconds",
            "previous",
            "grep",
            "maxBytes",
        ],
    )?;
    let namespace = a.name("namespace")?;
    let wanted = a.string("pod")?;
    let container = a.opt_string("container")?;
    let lines = a.int("lines", 100, 1, 5000)?;
    let since = a.int("sinceSeconds", 0, 1, 2_592_000)?;
    let previous = a.bool("previous", false)?;
    let max_bytes = a.int("maxBytes", 65_536, 1024, 1_048_576)? as usize;
    let grep = a.opt_regex("grep")?;
    let c = cluster(&ctx)?;
    let api: Api<Pod> = Api::namespaced(c.client.clone(), &namespace);
    let pods = c
        .list(
            &api,
            &ListParams::default(),
            Request::new("list", "pods", Some(&namespace)),
        )
        .await
        .map_err(api_error)?;
    let pod = match pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(wanted.as_str()))
    {
        Some(p) => p,
        None => {
            let matches: Vec<&Pod> = pods
                .iter()
                .filter(|p| {
                    p.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.starts_with(&wanted))
                })
                .collect();
            match matches.as_slice() {
                [one] => *one,
                [] => {
                    return Err(ToolError::new(
                        ErrorCode::NotFound,
                        format!(
                            "no pod named or starting with {wanted:?} in namespace {namespace}"
                        ),
                        format!(
                            "pods there: {}",
                            pods.iter()
                                .filter_map(|p| p.metadata.name.clone())
                                .take(20)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                many => {
                    return Err(ToolError::new(
                        ErrorCode::InvalidArgument,
                        format!("{wanted:?} matches {} pods in {namespace}", many.len()),
                        format!(
                            "give one of: {}",
                            many.iter()
                                .filter_map(|p| p.metadata.name.clone())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let containers: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
        .collect();
    let chosen = match container {
        Some(cn) if containers.contains(&cn) => cn,
        Some(cn) => {
            return Err(ToolError::invalid(
                "container",
                format!(
                    "pod {name} has no container {cn:?}; it has {}",
                    containers.join(", ")
                ),
            ));
        }
        None => containers.first().cloned().unwrap_or_default(),
    };
    let read_limit = read_limit(max_bytes);
    let params = LogParams {
        container: Some(chosen.clone()),
        tail_lines: Some(lines),
        since_seconds: (since > 0).then_some(since),
        previous,
        limit_bytes: Some(read_limit as i64),
        ..Default::default()
    };
    let raw = c
        .logs(
            &api,
            &name,
            &params,
            Request::new("get", "pods/log", Some(&namespace)),
        )
        .await
        .map_err(|e| {
            let mut err = api_error(e);
            if previous && err.message.contains("previous terminated container") {
                err.hint = "the container has not restarted: call again without previous".into();
            }
            err
        })?;
    let read_cut = raw.len() >= read_limit;
    let log = filter_log(&raw, grep.as_ref(), max_bytes);
    let structured = json!({
        "namespace": namespace, "pod": name, "container": chosen,
        "otherContainers": containers.iter().filter(|c| **c != chosen).collect::<Vec<_>>(),
        "previous": previous, "lines": log.lines, "matchedLines": log.matched, "truncated": log.truncated || read_cut,
        "readLimitBytes": read_limit, "readCut": read_cut, "redactions": log.redactions, "log": log.text,
    });
    let kept = &log.text;
    let (total_lines, matched, truncated, redactions) =
        (log.lines, log.matched, log.truncated, log.redactions);
    let text = format!(
        "{namespace}/{name} [{chosen}]{} — {matched} of {total_lines} lines{}{}{}\n{kept}",
        if previous { " (previous)" } else { "" },
        if truncated {
            ", truncated to the newest bytes"
        } else {
            ""
        },
        if read_cut {
            format!(
                ", read cut at {read_limit} bytes (lower `lines` or use sinceSeconds for the newest lines)"
            )
        } else {
            String::new()
        },
        if redactions > 0 {
            format!(", {redactions} secret value(s) redacted")
        } else {
            String::new()
        }
    );
    Ok(ToolOutput { structured, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grep_sees_only_redacted_text() {
        let raw = "boot\nPASSWORD=abc123 set\nready\n";
        // A prefix probe cannot tell what the secret starts with.
        for probe in ["PASSWORD=a", "PASSWORD=ab", "PASSWORD=x"] {
            let re = Regex::new(probe).unwrap_or_else(|e| panic!("{e}"));
            let log = filter_log(raw, Some(&re), 4096);
            assert_eq!(log.matched, 0, "{probe} matched: {log:?}");
        }
        let re = Regex::new("PASSWORD=").unwrap_or_else(|e| panic!("{e}"));
        let log = filter_log(raw, Some(&re), 4096);
        assert_eq!((log.matched, log.redactions), (1, 1));
        assert_eq!(log.text, "PASSWORD=[REDACTED] set\n");
        assert_eq!(log.lines, 3);
    }

    #[test]
    fn tail_keeps_whole_newest_lines() {
        let (t, cut) = tail_bytes("one\ntwo\nthree\n", 9);
        assert!(cut);
        assert_eq!(t, "three\n");
        assert_eq!(tail_bytes("short", 100), ("short", false));
    }
}
