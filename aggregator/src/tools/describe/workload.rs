//! Deployments, StatefulSets and DaemonSets described: replicas, strategy,
//! selector, conditions, where the pod template lands, its pods.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    Kind, PodBrief, Summary, conditions_text, containers_text, get_in, json, placement_text,
    pods_selected, pods_text, selector,
};
use crate::cluster::Cluster;
use crate::tools::ToolError;
use crate::tools::podspec::{
    Condition, ContainerInfo, VolumeRef, conditions, containers_and_volumes,
};

/// Replica counts.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Replicas {
    /// Desired (scheduled, for a DaemonSet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired: Option<i32>,
    /// Ready.
    pub ready: i32,
    /// Available.
    pub available: i32,
    /// Up to date.
    pub updated: i32,
}

/// A Deployment, StatefulSet or DaemonSet.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSummary {
    /// Replicas.
    pub replicas: Replicas,
    /// Update strategy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Pod selector, as kubectl writes it.
    pub selector: String,
    /// Conditions.
    pub conditions: Vec<Condition>,
    /// Node selector.
    pub node_selector: BTreeMap<String, String>,
    /// Host network.
    pub host_network: bool,
    /// Containers.
    pub containers: Vec<ContainerInfo>,
    /// Volumes.
    pub volumes: Vec<VolumeRef>,
    /// Its pods.
    pub pods: Vec<PodBrief>,
}

/// What a Deployment, StatefulSet or DaemonSet has in common.
pub(super) struct WorkloadParts<'a> {
    meta: ObjectMeta,
    replicas: Replicas,
    strategy: Option<String>,
    selector: &'a LabelSelector,
    template: &'a k8s_openapi::api::core::v1::PodTemplateSpec,
    json: serde_json::Value,
}

/// What describe needs of a Deployment, StatefulSet or DaemonSet: the three
/// name their replica counts and strategy differently.
pub(super) trait WorkloadKind:
    kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
{
    fn parts(&self) -> WorkloadParts<'_>;
}

impl WorkloadKind for Deployment {
    fn parts(&self) -> WorkloadParts<'_> {
        let spec = self.spec.as_ref();
        let st = self.status.clone().unwrap_or_default();
        WorkloadParts {
            meta: self.metadata.clone(),
            replicas: Replicas {
                desired: spec.and_then(|s| s.replicas),
                ready: st.ready_replicas.unwrap_or(0),
                available: st.available_replicas.unwrap_or(0),
                updated: st.updated_replicas.unwrap_or(0),
            },
            strategy: spec.and_then(|s| s.strategy.as_ref()?.type_.clone()),
            selector: spec.map(|s| &s.selector).unwrap_or(&NO_SELECTOR),
            template: spec.map(|s| &s.template).unwrap_or(&NO_TEMPLATE),
            json: json(self),
        }
    }
}

impl WorkloadKind for StatefulSet {
    fn parts(&self) -> WorkloadParts<'_> {
        let spec = self.spec.as_ref();
        let st = self.status.clone().unwrap_or_default();
        WorkloadParts {
            meta: self.metadata.clone(),
            replicas: Replicas {
                desired: spec.and_then(|s| s.replicas),
                ready: st.ready_replicas.unwrap_or(0),
                available: st.available_replicas.unwrap_or(0),
                updated: st.updated_replicas.unwrap_or(0),
            },
            strategy: spec.and_then(|s| s.update_strategy.as_ref()?.type_.clone()),
            selector: spec.map(|s| &s.selector).unwrap_or(&NO_SELECTOR),
            template: spec.map(|s| &s.template).unwrap_or(&NO_TEMPLATE),
            json: json(self),
        }
    }
}

impl WorkloadKind for DaemonSet {
    fn parts(&self) -> WorkloadParts<'_> {
        let spec = self.spec.as_ref();
        let st = self.status.clone().unwrap_or_default();
        WorkloadParts {
            meta: self.metadata.clone(),
            replicas: Replicas {
                desired: Some(st.desired_number_scheduled),
                ready: st.number_ready,
                available: st.number_available.unwrap_or(0),
                updated: st.updated_number_scheduled.unwrap_or(0),
            },
            strategy: spec.and_then(|s| s.update_strategy.as_ref()?.type_.clone()),
            selector: spec.map(|s| &s.selector).unwrap_or(&NO_SELECTOR),
            template: spec.map(|s| &s.template).unwrap_or(&NO_TEMPLATE),
            json: json(self),
        }
    }
}

static NO_SELECTOR: LabelSelector = LabelSelector {
    match_expressions: None,
    match_labels: None,
};
static NO_TEMPLATE: k8s_openapi::api::core::v1::PodTemplateSpec =
    k8s_openapi::api::core::v1::PodTemplateSpec {
        metadata: None,
        spec: None,
    };

/// Reads workload `name` of kind `K` in `ns` and summarises it with its pods.
pub(super) async fn describe_workload<K: WorkloadKind>(
    c: &Cluster,
    kind: Kind,
    ns: &str,
    name: &str,
) -> Result<(ObjectMeta, Summary), ToolError> {
    let object: K = get_in(c, kind, Some(ns), name).await?;
    workload(c, ns, object.parts()).await
}

async fn workload(
    c: &Cluster,
    ns: &str,
    w: WorkloadParts<'_>,
) -> Result<(ObjectMeta, Summary), ToolError> {
    let sel = selector(Some(w.selector));
    let pod_spec = w.template.spec.as_ref();
    let (containers, volumes) = containers_and_volumes(pod_spec);
    let pods = pods_selected(c, ns, sel.as_ref()).await?;
    Ok((
        w.meta,
        Summary::Workload(Box::new(WorkloadSummary {
            replicas: w.replicas,
            strategy: w.strategy,
            selector: sel.map(|s| s.to_string()).unwrap_or_default(),
            conditions: conditions(&w.json),
            node_selector: pod_spec
                .and_then(|s| s.node_selector.clone())
                .unwrap_or_default(),
            host_network: pod_spec.and_then(|s| s.host_network).unwrap_or(false),
            containers,
            volumes,
            pods,
        })),
    ))
}

impl WorkloadSummary {
    /// Its lines of the text rendering.
    pub(super) fn text(&self, out: &mut String) {
        let w = self;
        out.push_str(&format!(
            "replicas desired {} ready {} available {} updated {}; selector {}\n",
            w.replicas
                .desired
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            w.replicas.ready,
            w.replicas.available,
            w.replicas.updated,
            w.selector
        ));
        conditions_text(&w.conditions, out);
        placement_text(
            w.strategy.as_deref(),
            w.host_network,
            &w.node_selector,
            &w.volumes,
            out,
        );
        containers_text(&w.containers, out);
        pods_text(&w.pods, out);
    }
}
