//! `get_events`: Kubernetes events newest first, de-duplicated (same object,
//! reason and message) with summed counts. `read` is shared with
//! `get_cluster_health` and `describe_resource`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use schemars::JsonSchema;
use serde::Deserialize;

use super::args::{Int, Name, Text, blank_as_none};
use super::kube::{api_error, cluster_in};
use super::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};
pub use crate::assess::events::*;
use crate::cluster::time::now;
use crate::cluster::{Cluster, Error as ClusterError, Request};

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Args {
    /// Only this namespace.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub namespace: Option<Name>,
    /// Which events: Warning, Normal or all.
    #[serde(rename = "type", default, deserialize_with = "blank_as_none")]
    #[schemars(extend("default" = "Warning"))]
    pub event_type: Option<EventType>,
    /// How far back.
    #[serde(default)]
    pub since_minutes: Int<1, 10080, 60>,
    /// Only events about this object: its name, or Kind/name.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub object: Option<Text>,
    /// Most event groups.
    #[serde(default)]
    pub limit: Int<1, 500, 100>,
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_events",
            title: "Events",
            description: "Events newest first, deduplicated.",
            toolset: Toolset::Cluster,
            hints: Hints::READ,
        },
        run,
    )
}

async fn run(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<Events, ToolError> {
    let c = cluster_in(&ctx, a.namespace.as_deref()).await?;
    read(
        c,
        a.namespace.as_deref(),
        a.event_type.unwrap_or(EventType::Warning),
        a.since_minutes.get(),
        a.object.as_deref(),
        a.limit.get() as usize,
        now(ctx.settings.now),
    )
    .await
    .map_err(api_error)
}

/// Lists events (paged) and groups them (pure part: [`group`]).
pub async fn read(
    c: &Cluster,
    namespace: Option<&str>,
    kind: EventType,
    since_minutes: i64,
    object: Option<&str>,
    limit: usize,
    now_s: i64,
) -> Result<Events, ClusterError> {
    let api: Api<Event> = match namespace {
        Some(ns) => Api::namespaced(c.client.clone(), ns),
        None => Api::all(c.client.clone()),
    };
    let items = c
        .list(
            &api,
            &ListParams::default(),
            Request::new("list", "events", namespace),
        )
        .await?;
    Ok(group(&items, kind, since_minutes, object, limit, now_s))
}

impl Render for Events {
    fn text(&self) -> String {
        let mut text = format!(
            "{} of {} {} event groups in the last {} min\n",
            self.returned, self.total, self.event_type, self.since_minutes
        );
        for e in &self.events {
            text.push_str(&format!(
                "{} {} {}/{} {} ×{}: {}\n",
                e.last_seen, e.event_type, e.namespace, e.object, e.reason, e.count, e.message
            ));
        }
        text
    }
}
