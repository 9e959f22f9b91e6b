//! Workload tools from the Kubernetes API: `get_pod_logs` (exact or unique
//! prefix, container, previous, since, grep, byte cap, secrets redacted) and
//! `get_events` (newest first, de-duplicated with counts).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};
use regex::Regex;
use serde_json::{Map, Value, json};

use super::args::Args;
use super::cluster::{api_error, cluster};
use super::{ErrorCode, ToolContext, ToolDef, ToolError, ToolOutput};
use crate::cluster::Request;
use crate::cluster::time::now;
use crate::redact::redact;

/// The workload tools.
pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::untyped(
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
        ),
        ToolDef::untyped(
            super::Meta {
                name: "get_events",
                title: "Kubernetes events",
                description: "Events newest first, de-duplicated (same object, reason and message) with summed counts; \
                `type` Warning by default (or Normal, or all), within `sinceMinutes` (60), optionally for one \
                `object` (name or kind/name). Bounded by `limit` (100, max 500) with N of M.",
                toolset: super::Toolset::Cluster,
                hints: super::Hints::READ,
            },
            json!({"type": "object", "properties": {
                "namespace": {"type": "string"}, "type": {"type": "string", "enum": ["Warning", "Normal", "all"], "default": "Warning"},
                "sinceMinutes": {"type": "integer", "minimum": 1, "maximum": 10080, "default": 60},
                "object": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
                "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "events": {"type": "array"}, "returned": {"type": "integer"}, "total": {"type": "integer"}},
                "required": ["events", "returned", "total"]}),
            |ctx, args| Box::pin(get_events(ctx, args)),
        ),
    ]
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

/// Events are grouped by (namespace, kind, name, reason, message).
type EventKey = (String, String, String, String, String);
/// Newest time, summed count, and one event of the group.
type EventGroup = (i64, i32, Event);

fn event_time(e: &Event) -> Option<i64> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .or_else(|| e.event_time.as_ref().map(|t| t.0.as_second()))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0.as_second()))
        .or_else(|| {
            e.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second())
        })
}

pub(crate) async fn get_events(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(
        args,
        &["namespace", "type", "sinceMinutes", "object", "limit"],
    )?;
    let namespace = a.opt_name("namespace")?;
    let kind = a
        .opt_one_of("type", &["Warning", "Normal", "all"])?
        .unwrap_or("Warning");
    let since = a.int("sinceMinutes", 60, 1, 10_080)?;
    let object = a.opt_string("object")?;
    let limit = a.int("limit", 100, 1, 500)? as usize;
    let c = cluster(&ctx)?;
    let api: Api<Event> = match &namespace {
        Some(ns) => Api::namespaced(c.client.clone(), ns),
        None => Api::all(c.client.clone()),
    };
    let items = c
        .list(
            &api,
            &ListParams::default(),
            Request::new("list", "events", namespace.as_deref()),
        )
        .await
        .map_err(api_error)?;
    let cutoff = now(ctx.settings.now) - since * 60;
    let (obj_kind, obj_name) = match object.as_deref().and_then(|o| o.split_once('/')) {
        Some((k, n)) => (Some(k.to_ascii_lowercase()), Some(n.to_string())),
        None => (None, object.clone()),
    };
    // key → (newest time, count, first event)
    let mut groups: BTreeMap<EventKey, EventGroup> = BTreeMap::new();
    for e in items {
        let t = event_time(&e).unwrap_or(0);
        let type_ = e.type_.clone().unwrap_or_default();
        if t < cutoff || (kind != "all" && type_ != kind) {
            continue;
        }
        let io = &e.involved_object;
        if obj_name
            .as_ref()
            .is_some_and(|n| io.name.as_deref() != Some(n.as_str()))
        {
            continue;
        }
        if obj_kind.as_ref().is_some_and(|k| {
            io.kind.as_deref().map(str::to_ascii_lowercase).as_deref() != Some(k.as_str())
        }) {
            continue;
        }
        let key = (
            io.namespace.clone().unwrap_or_default(),
            io.kind.clone().unwrap_or_default(),
            io.name.clone().unwrap_or_default(),
            e.reason.clone().unwrap_or_default(),
            e.message.clone().unwrap_or_default(),
        );
        let count = e.count.unwrap_or(1).max(1);
        let entry = groups.entry(key).or_insert((t, 0, e.clone()));
        entry.1 += count;
        if t > entry.0 {
            entry.0 = t;
        }
    }
    let mut rows: Vec<(i64, Value)> = groups
        .into_iter()
        .map(|((ns, k, n, reason, message), (t, count, e))| {
            (t, json!({"namespace": ns, "object": format!("{k}/{n}"), "type": e.type_, "reason": reason, "message": redact(&message).text,
                "count": count, "lastSeen": crate::cluster::time::rfc3339(t), "source": e.source.and_then(|s| s.component)}))
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let total = rows.len();
    let events: Vec<Value> = rows.into_iter().take(limit).map(|(_, v)| v).collect();
    let mut text = format!(
        "{} of {total} {} event groups in the last {since} min\n",
        events.len(),
        kind
    );
    for e in &events {
        text.push_str(&format!(
            "{} {} {} {} ×{}: {}\n",
            e["lastSeen"].as_str().unwrap_or(""),
            e["type"].as_str().unwrap_or(""),
            e["object"].as_str().unwrap_or(""),
            e["reason"].as_str().unwrap_or(""),
            e["count"],
            e["message"].as_str().unwrap_or("")
        ));
    }
    let structured = json!({"events": events, "returned": events.len(), "total": total, "type": kind, "sinceMinutes": since});
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
