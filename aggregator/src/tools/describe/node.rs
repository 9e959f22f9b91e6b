//! A Node described: addresses, capacity, taints, conditions, its pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use schemars::JsonSchema;
use serde::Serialize;

use super::{Kind, PodBrief, Summary, conditions_text, get, json, pod_brief, pods_text};
use crate::cluster::{Cluster, Request};
use crate::tools::ToolError;
use crate::tools::kube::api_error;
use crate::tools::podspec::{Condition, conditions};

/// A node address.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeAddress {
    /// InternalIP, Hostname, …
    #[serde(rename = "type")]
    pub address_type: String,
    /// Address.
    pub address: String,
}

/// A taint.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Taint {
    /// Key.
    pub key: String,
    /// Value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// NoSchedule, PreferNoSchedule, NoExecute.
    pub effect: String,
}

/// A node.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    /// Conditions.
    pub conditions: Vec<Condition>,
    /// Addresses.
    pub addresses: Vec<NodeAddress>,
    /// Capacity.
    pub capacity: BTreeMap<String, String>,
    /// Allocatable.
    pub allocatable: BTreeMap<String, String>,
    /// Taints.
    pub taints: Vec<Taint>,
    /// Cordoned.
    pub unschedulable: bool,
    /// Pod CIDR.
    #[serde(rename = "podCIDR")]
    pub pod_cidr: String,
    /// Kubelet, OS, kernel, runtime, architecture.
    pub node_info: BTreeMap<String, String>,
    /// Its pods.
    pub pods: Vec<PodBrief>,
}

/// Reads Node `name` and the pods on it.
pub(super) async fn describe(
    c: &Cluster,
    kind: Kind,
    _ns: Option<&str>,
    name: &str,
) -> Result<(ObjectMeta, Summary), ToolError> {
    let n: Node = get(c, kind, Api::all(c.client.clone()), None, name).await?;
    let (spec, st) = (
        n.spec.clone().unwrap_or_default(),
        n.status.clone().unwrap_or_default(),
    );
    let api: Api<Pod> = Api::all(c.client.clone());
    let pods = c
        .list(
            &api,
            &ListParams::default().fields(&format!("spec.nodeName={name}")),
            Request::new("list", "pods", None),
        )
        .await
        .map_err(api_error)?;
    let quantities =
        |m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
            m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
                .unwrap_or_default()
        };
    let info = st.node_info.clone().unwrap_or_default();
    let summary = NodeSummary {
        conditions: conditions(&json(&n)),
        addresses: st
            .addresses
            .iter()
            .flatten()
            .map(|a| NodeAddress {
                address_type: a.type_.clone(),
                address: a.address.clone(),
            })
            .collect(),
        capacity: quantities(st.capacity.as_ref()),
        allocatable: quantities(st.allocatable.as_ref()),
        taints: spec
            .taints
            .iter()
            .flatten()
            .map(|t| Taint {
                key: t.key.clone(),
                value: t.value.clone(),
                effect: t.effect.clone(),
            })
            .collect(),
        unschedulable: spec.unschedulable.unwrap_or(false),
        pod_cidr: spec.pod_cidr.clone().unwrap_or_default(),
        node_info: [
            ("kubeletVersion", info.kubelet_version),
            ("osImage", info.os_image),
            ("kernelVersion", info.kernel_version),
            ("containerRuntimeVersion", info.container_runtime_version),
            ("architecture", info.architecture),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        pods: pods.iter().map(|p| pod_brief(p, true)).collect(),
    };
    Ok((n.metadata, Summary::Node(Box::new(summary))))
}

impl NodeSummary {
    /// Its lines of the text rendering.
    pub(super) fn text(&self, out: &mut String) {
        let n = self;
        let map = |m: &BTreeMap<String, String>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let addresses: Vec<String> = n
            .addresses
            .iter()
            .map(|a| format!("{} {}", a.address_type, a.address))
            .collect();
        out.push_str(&format!(
            "addresses {}; podCIDR {}\ncapacity {}; allocatable {}\n{}\n",
            addresses.join(", "),
            if n.pod_cidr.is_empty() {
                "-"
            } else {
                &n.pod_cidr
            },
            map(&n.capacity),
            map(&n.allocatable),
            map(&n.node_info),
        ));
        conditions_text(&n.conditions, out);
        for t in &n.taints {
            out.push_str(&format!(
                "taint {}={}:{}\n",
                t.key,
                t.value.as_deref().unwrap_or_default(),
                t.effect
            ));
        }
        if n.unschedulable {
            out.push_str("cordoned (unschedulable)\n");
        }
        pods_text(&n.pods, out);
    }
}
