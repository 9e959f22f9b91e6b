//! Kubernetes events grouped: one group per object, reason and message,
//! counts summed, newest first, secrets redacted from messages. Pure;
//! `tools/events.rs` lists the events.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Event;
use schemars::JsonSchema;
use serde::Serialize;

use crate::choice;
use crate::cluster::time::rfc3339;
use crate::redact::redact;

choice! {
    /// Which events.
    pub enum EventType {
        /// Warnings only.
        Warning = "Warning",
        /// Normal only.
        Normal = "Normal",
        /// Both.
        All = "all",
    }
}

/// Events about one object with one reason and message.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventGroup {
    /// Namespace of the object.
    pub namespace: String,
    /// Kind/name of the object.
    pub object: String,
    /// Warning or Normal.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Reason.
    pub reason: String,
    /// Message, secrets redacted.
    pub message: String,
    /// Occurrences, summed over the group.
    pub count: i32,
    /// Newest occurrence.
    pub last_seen: String,
    /// Reporting component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Events, newest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Events {
    /// Groups, newest first.
    pub events: Vec<EventGroup>,
    /// Groups returned.
    pub returned: usize,
    /// Groups in all.
    pub total: usize,
    /// Which type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Window.
    pub since_minutes: i64,
}

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

/// (namespace, kind, name, reason, message) → (newest, summed count, one event).
type Groups<'a> = BTreeMap<(String, String, String, String, String), (i64, i32, &'a Event)>;

/// Groups events newer than `since_minutes` of `kind` (about `object` when
/// given: a name, or Kind/name), newest first, at most `limit` groups.
pub fn group(
    items: &[Event],
    kind: EventType,
    since_minutes: i64,
    object: Option<&str>,
    limit: usize,
    now_s: i64,
) -> Events {
    let cutoff = now_s - since_minutes * 60;
    let (obj_kind, obj_name) = match object.and_then(|o| o.split_once('/')) {
        Some((k, n)) => (Some(k.to_ascii_lowercase()), Some(n.to_string())),
        None => (None, object.map(str::to_string)),
    };
    let mut groups: Groups = BTreeMap::new();
    for e in items {
        let t = event_time(e).unwrap_or(0);
        let type_ = e.type_.clone().unwrap_or_default();
        if t < cutoff || (kind != EventType::All && type_ != kind.as_str()) {
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
        let entry = groups.entry(key).or_insert((t, 0, e));
        entry.1 += e.count.unwrap_or(1).max(1);
        if t > entry.0 {
            entry.0 = t;
        }
    }
    let mut rows: Vec<(i64, EventGroup)> = groups
        .into_iter()
        .map(|((ns, k, n, reason, message), (t, count, e))| {
            (
                t,
                EventGroup {
                    namespace: ns,
                    object: format!("{k}/{n}"),
                    event_type: e.type_.clone().unwrap_or_default(),
                    reason,
                    message: redact(&message).text,
                    count,
                    last_seen: rfc3339(t),
                    source: e.source.as_ref().and_then(|s| s.component.clone()),
                },
            )
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let total = rows.len();
    let events: Vec<EventGroup> = rows.into_iter().take(limit).map(|(_, v)| v).collect();
    Events {
        returned: events.len(),
        events,
        total,
        event_type: kind,
        since_minutes,
    }
}
