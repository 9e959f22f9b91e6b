//! A Pod described: phase, node, addresses, conditions, each container's
//! state and its last one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::Serialize;

use super::{Kind, Summary, conditions_text, containers_text, get_in, json, placement_text};
use crate::cluster::Cluster;
use crate::redact::redact;
use crate::tools::ToolError;
use crate::tools::podspec::{
    Condition, ContainerInfo, VolumeRef, conditions, containers_and_volumes,
};

/// A container's state.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    /// Name.
    pub name: String,
    /// Ready.
    pub ready: bool,
    /// Restarts.
    pub restarts: i32,
    /// running, waiting (reason), terminated (reason, exit code).
    pub state: String,
    /// The previous instance's end.
    pub last_state: String,
    /// Image running.
    pub image: String,
}

fn state_text(s: Option<&k8s_openapi::api::core::v1::ContainerState>) -> String {
    let Some(s) = s else { return String::new() };
    if let Some(w) = &s.waiting {
        format!(
            "waiting: {}{}",
            w.reason.clone().unwrap_or_default(),
            w.message
                .as_ref()
                .map(|m| format!(" ({})", redact(m).text))
                .unwrap_or_default()
        )
    } else if let Some(t) = &s.terminated {
        format!(
            "terminated: {} exit {}",
            t.reason.clone().unwrap_or_default(),
            t.exit_code
        )
    } else if s.running.is_some() {
        "running".into()
    } else {
        String::new()
    }
}

/// A pod.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSummary {
    /// Phase.
    pub phase: String,
    /// Node.
    pub node: String,
    /// Pod IP.
    #[serde(rename = "podIP")]
    pub pod_ip: String,
    /// Node IP.
    #[serde(rename = "hostIP")]
    pub host_ip: String,
    /// Host network.
    pub host_network: bool,
    /// Conditions.
    pub conditions: Vec<Condition>,
    /// Container states (init containers first).
    pub container_statuses: Vec<ContainerState>,
    /// Containers.
    pub containers: Vec<ContainerInfo>,
    /// Volumes.
    pub volumes: Vec<VolumeRef>,
}

/// Reads Pod `name` and summarises it.
pub(super) async fn describe(
    c: &Cluster,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
) -> Result<(ObjectMeta, Summary), ToolError> {
    let p: Pod = get_in(c, kind, ns, name).await?;
    let st = p.status.clone().unwrap_or_default();
    let (containers, volumes) = containers_and_volumes(p.spec.as_ref());
    let statuses = st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .map(|cs| ContainerState {
            name: cs.name.clone(),
            ready: cs.ready,
            restarts: cs.restart_count,
            state: state_text(cs.state.as_ref()),
            last_state: state_text(cs.last_state.as_ref()),
            image: cs.image.clone(),
        })
        .collect();
    let summary = PodSummary {
        phase: st.phase.clone().unwrap_or_default(),
        node: p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        pod_ip: st.pod_ip.clone().unwrap_or_default(),
        host_ip: st.host_ip.clone().unwrap_or_default(),
        host_network: p
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false),
        conditions: conditions(&json(&p)),
        container_statuses: statuses,
        containers,
        volumes,
    };
    Ok((p.metadata, Summary::Pod(Box::new(summary))))
}

impl PodSummary {
    /// Its lines of the text rendering.
    pub(super) fn text(&self, out: &mut String) {
        let p = self;
        out.push_str(&format!(
            "phase {} on node {} ip {} (host {})\n",
            p.phase, p.node, p.pod_ip, p.host_ip
        ));
        conditions_text(&p.conditions, out);
        placement_text(None, p.host_network, &BTreeMap::new(), &p.volumes, out);
        containers_text(&p.containers, out);
        for s in &p.container_statuses {
            out.push_str(&format!(
                "container {} ready={} restarts={} {}{}\n",
                s.name,
                s.ready,
                s.restarts,
                s.state,
                if s.last_state.is_empty() {
                    String::new()
                } else {
                    format!("; last {}", s.last_state)
                }
            ));
        }
    }
}
