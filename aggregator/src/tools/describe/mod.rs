//! `describe_resource`: spec and status summary of one object with its pods
//! (for workloads and nodes), conditions and the events about it from the
//! last 24 hours. Secret values are redacted; Secret references are named,
//! never read.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, ListParams};
use kube::core::{Selector, SelectorExt};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::choice;
use crate::cluster::time::now;
use crate::cluster::{Cluster, Request};
use crate::redact::redact;
use crate::tools::args::{Name, blank_as_none};
use crate::tools::events::{EventGroup, EventType};
use crate::tools::kube::{FailedPart, api_error, cluster};
use crate::tools::podspec::{Condition, ContainerInfo};
use crate::tools::storage::Pvc;
use crate::tools::{
    Call, ErrorCode, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset,
};

mod configmap;
mod ingress;
mod job;
mod node;
mod pod;
mod pvc;
mod service;
mod workload;

pub use configmap::{ConfigMapSummary, ConfigValue};
pub use ingress::{IngressRoute, IngressSummary};
pub use job::{CronJobSummary, JobSummary};
pub use node::{NodeAddress, NodeSummary, Taint};
pub use pod::{ContainerState, PodSummary};
pub use service::{EndpointRow, PortRow, ServiceSummary};
pub use workload::{Replicas, WorkloadSummary};

choice! {
    /// A kind describe_resource reads.
    pub enum Kind {
        /// apps/v1 Deployment.
        Deployment = "deployment",
        /// apps/v1 StatefulSet.
        StatefulSet = "statefulset",
        /// apps/v1 DaemonSet.
        DaemonSet = "daemonset",
        /// v1 Pod.
        Pod = "pod",
        /// v1 Service.
        Service = "service",
        /// v1 ConfigMap.
        ConfigMap = "configmap",
        /// v1 Node (cluster-scoped).
        Node = "node",
        /// batch/v1 Job.
        Job = "job",
        /// batch/v1 CronJob.
        CronJob = "cronjob",
        /// networking.k8s.io/v1 Ingress.
        Ingress = "ingress",
        /// v1 PersistentVolumeClaim.
        Pvc = "pvc",
    }
}

impl Kind {
    fn kind_name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::Pod => "Pod",
            Kind::Service => "Service",
            Kind::ConfigMap => "ConfigMap",
            Kind::Node => "Node",
            Kind::Job => "Job",
            Kind::CronJob => "CronJob",
            Kind::Ingress => "Ingress",
            Kind::Pvc => "PersistentVolumeClaim",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::DaemonSet => "daemonsets",
            Kind::Pod => "pods",
            Kind::Service => "services",
            Kind::ConfigMap => "configmaps",
            Kind::Node => "nodes",
            Kind::Job => "jobs",
            Kind::CronJob => "cronjobs",
            Kind::Ingress => "ingresses",
            Kind::Pvc => "persistentvolumeclaims",
        }
    }
}

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// What to describe.
    pub kind: Kind,
    /// Namespace (ignored for a node).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub namespace: Option<Name>,
    /// Name.
    pub name: Name,
}

/// Metadata worth showing (no managedFields, no last-applied configuration).
#[derive(Debug, Serialize, JsonSchema)]
pub struct MetaSummary {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations, values redacted.
    pub annotations: BTreeMap<String, String>,
    /// Creation time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Owners as Kind/name.
    pub owners: Vec<String>,
}

fn meta_summary(m: &ObjectMeta) -> MetaSummary {
    MetaSummary {
        labels: m.labels.clone().unwrap_or_default(),
        annotations: m
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| *k != "kubectl.kubernetes.io/last-applied-configuration")
            .map(|(k, v)| (k.clone(), redact(v).text))
            .collect(),
        created: m.creation_timestamp.as_ref().map(|t| t.0.to_string()),
        owners: m
            .owner_references
            .iter()
            .flatten()
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect(),
    }
}

/// A pod, briefly.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodBrief {
    /// Namespace (for a node's pods).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Phase.
    pub phase: String,
    /// Ready.
    pub ready: bool,
    /// Restarts of every container.
    pub restarts: i32,
    /// Waiting reasons (CrashLoopBackOff, …).
    pub waiting: Vec<String>,
    /// Node.
    pub node: String,
    /// Pod IP.
    pub ip: String,
}

fn pod_brief(p: &Pod, with_namespace: bool) -> PodBrief {
    let st = p.status.clone().unwrap_or_default();
    let statuses = st.container_statuses.clone().unwrap_or_default();
    PodBrief {
        namespace: with_namespace.then(|| p.metadata.namespace.clone().unwrap_or_default()),
        name: p.metadata.name.clone().unwrap_or_default(),
        phase: st.phase.clone().unwrap_or_default(),
        ready: st
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        restarts: statuses.iter().map(|c| c.restart_count).sum(),
        waiting: statuses
            .iter()
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .collect(),
        node: p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        ip: st.pod_ip.unwrap_or_default(),
    }
}

/// The kind-specific summary.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Summary {
    /// Deployment, StatefulSet, DaemonSet.
    Workload(Box<WorkloadSummary>),
    /// Pod.
    Pod(Box<PodSummary>),
    /// Service.
    Service(ServiceSummary),
    /// ConfigMap.
    ConfigMap(ConfigMapSummary),
    /// Node.
    Node(Box<NodeSummary>),
    /// Job.
    Job(Box<JobSummary>),
    /// CronJob.
    CronJob(CronJobSummary),
    /// Ingress.
    Ingress(IngressSummary),
    /// PersistentVolumeClaim.
    Pvc(Pvc),
}

/// One object described.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    /// Kind.
    pub kind: String,
    /// Namespace (absent for a node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Labels, annotations, owners.
    pub metadata: MetaSummary,
    /// Spec and status.
    pub summary: Summary,
    /// Events about it in the last 24 h, newest first.
    pub events: Vec<EventGroup>,
    /// Why events could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_error: Option<FailedPart>,
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "describe_resource",
            title: "Describe object",
            description: "One object's spec, status, pods and recent events, secrets redacted.",
            toolset: Toolset::Cluster,
            hints: Hints::READ,
        },
        run,
    )
}

/// A LabelSelector as kubectl writes it; `None` when it selects nothing.
fn selector(ls: Option<&LabelSelector>) -> Option<Selector> {
    let sel = Selector::try_from(ls?.clone()).ok()?;
    (!sel.selects_all()).then_some(sel)
}

/// Pods of `ns` that `sel` selects.
async fn pods_selected(
    c: &Cluster,
    ns: &str,
    sel: Option<&Selector>,
) -> Result<Vec<PodBrief>, ToolError> {
    let Some(sel) = sel else {
        return Ok(Vec::new());
    };
    let api: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    let pods = c
        .list(
            &api,
            &ListParams::default(),
            Request::new("list", "pods", Some(ns)),
        )
        .await
        .map_err(api_error)?;
    Ok(pods
        .iter()
        .filter(|p| sel.matches(&p.metadata.labels.clone().unwrap_or_default()))
        .map(|p| pod_brief(p, false))
        .collect())
}

/// Gets the object, or a not-found error listing what exists.
async fn get<K>(
    c: &Cluster,
    kind: Kind,
    api: Api<K>,
    ns: Option<&str>,
    name: &str,
) -> Result<K, ToolError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if let Some(o) = c
        .get_opt(&api, name, Request::new("get", kind.plural(), ns))
        .await
        .map_err(api_error)?
    {
        return Ok(o);
    }
    if let Some(n) = ns {
        crate::tools::kube::require_namespace(c, n).await?;
    }
    let names: Vec<String> = c
        .bounded(
            Request::new("list", kind.plural(), ns),
            api.list(&ListParams::default().limit(50)),
        )
        .await
        .map(|l| {
            l.items
                .iter()
                .filter_map(|o| o.meta().name.clone())
                .collect()
        })
        .unwrap_or_default();
    let scope = ns.map(|n| format!(" in namespace {n}")).unwrap_or_default();
    Err(ToolError::new(
        ErrorCode::NotFound,
        format!("no {} {name:?}{scope}", kind.kind_name()),
        if names.is_empty() {
            format!("there are no {}{scope}", kind.plural())
        } else {
            format!("{}{scope}: {}", kind.plural(), names.join(", "))
        },
    ))
}

/// [`get`] of a namespaced kind in `ns`.
async fn get_in<K>(c: &Cluster, kind: Kind, ns: Option<&str>, name: &str) -> Result<K, ToolError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api = Api::namespaced(c.client.clone(), ns.unwrap_or_default());
    get(c, kind, api, ns, name).await
}

fn time(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<String> {
    t.map(|t| t.0.to_string())
}

/// Reads the object and builds its summary: one describer per kind.
async fn summarise(
    c: &Cluster,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
) -> Result<(ObjectMeta, Summary), ToolError> {
    let nsv = ns.unwrap_or_default();
    match kind {
        Kind::Deployment => workload::describe_workload::<Deployment>(c, kind, nsv, name).await,
        Kind::StatefulSet => workload::describe_workload::<StatefulSet>(c, kind, nsv, name).await,
        Kind::DaemonSet => workload::describe_workload::<DaemonSet>(c, kind, nsv, name).await,
        Kind::Pod => pod::describe(c, kind, ns, name).await,
        Kind::Service => service::describe(c, kind, ns, name).await,
        Kind::ConfigMap => configmap::describe(c, kind, ns, name).await,
        Kind::Node => node::describe(c, kind, ns, name).await,
        Kind::Job => job::describe_job(c, kind, ns, name).await,
        Kind::CronJob => job::describe_cronjob(c, kind, ns, name).await,
        Kind::Ingress => ingress::describe(c, kind, ns, name).await,
        Kind::Pvc => pvc::describe(c, kind, ns, name).await,
    }
}

impl Summary {
    /// Its lines of the text rendering.
    fn text(&self, out: &mut String) {
        match self {
            Summary::Workload(w) => w.text(out),
            Summary::Pod(p) => p.text(out),
            Summary::Service(s) => s.text(out),
            Summary::ConfigMap(m) => m.text(out),
            Summary::Node(n) => n.text(out),
            Summary::Job(j) => j.text(out),
            Summary::CronJob(cj) => cj.text(out),
            Summary::Ingress(i) => i.text(out),
            Summary::Pvc(p) => {
                out.push_str(&p.text());
                out.push('\n');
            }
        }
    }
}

/// An object as JSON (for its conditions, which every kind spells alike).
fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

async fn run(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<Description, ToolError> {
    let c = cluster(&ctx)?;
    let ns =
        if a.kind == Kind::Node {
            None
        } else {
            Some(a.namespace.clone().ok_or_else(|| {
                ToolError::invalid("namespace", format!("required for a {}", a.kind))
            })?)
        };
    let (meta, summary) = summarise(c, a.kind, ns.as_deref(), &a.name).await?;
    let (events, events_error) = match crate::tools::events::read(
        c,
        ns.as_deref(),
        EventType::All,
        1440,
        Some(&format!("{}/{}", a.kind.kind_name(), a.name.as_str())),
        20,
        now(ctx.settings.now),
    )
    .await
    {
        Ok(e) => (e.events, None),
        Err(e) => (Vec::new(), Some(FailedPart::new("events", &e))),
    };
    Ok(Description {
        kind: a.kind.kind_name().to_string(),
        namespace: ns.map(|n| n.to_string()),
        name: a.name.to_string(),
        metadata: meta_summary(&meta),
        summary,
        events,
        events_error,
    })
}

fn pods_text(pods: &[PodBrief], out: &mut String) {
    for p in pods {
        out.push_str(&format!(
            "pod {}{} {} ready={} restarts={}{} node {}\n",
            p.namespace
                .as_deref()
                .map(|n| format!("{n}/"))
                .unwrap_or_default(),
            p.name,
            p.phase,
            p.ready,
            p.restarts,
            if p.waiting.is_empty() {
                String::new()
            } else {
                format!(" waiting {}", p.waiting.join(","))
            },
            p.node
        ));
    }
}

fn conditions_text(conds: &[Condition], out: &mut String) {
    for c in conds {
        out.push_str(&format!(
            "condition {}={} {} {}\n",
            c.condition_type,
            c.status,
            c.reason.as_deref().unwrap_or_default(),
            c.message.as_deref().unwrap_or_default()
        ));
    }
}

/// Where a pod template lands and what it mounts: strategy, host network,
/// node selector, volumes.
fn placement_text(
    strategy: Option<&str>,
    host_network: bool,
    node_selector: &BTreeMap<String, String>,
    volumes: &[super::podspec::VolumeRef],
    out: &mut String,
) {
    let mut parts = Vec::new();
    if let Some(s) = strategy {
        parts.push(format!("strategy {s}"));
    }
    if host_network {
        parts.push("hostNetwork".to_string());
    }
    if !node_selector.is_empty() {
        let pairs: Vec<String> = node_selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.push(format!("nodeSelector {}", pairs.join(",")));
    }
    if !parts.is_empty() {
        out.push_str(&parts.join("; "));
        out.push('\n');
    }
    for v in volumes {
        out.push_str(&format!(
            "volume {} {} {}\n",
            v.name, v.volume_type, v.source
        ));
    }
}

fn containers_text(containers: &[ContainerInfo], out: &mut String) {
    for c in containers {
        out.push_str(&format!(
            "container {} {}{}\n",
            c.name,
            c.image.as_deref().unwrap_or_default(),
            if c.env_from.is_empty() {
                String::new()
            } else {
                format!(" env from {}", c.env_from.join(", "))
            }
        ));
    }
}

impl Render for Description {
    fn text(&self) -> String {
        let mut out = format!(
            "{} {}{}\n",
            self.kind,
            self.namespace
                .as_deref()
                .map(|n| format!("{n}/"))
                .unwrap_or_default(),
            self.name
        );
        if !self.metadata.owners.is_empty() {
            out.push_str(&format!("owned by {}\n", self.metadata.owners.join(", ")));
        }
        self.summary.text(&mut out);
        for e in &self.events {
            out.push_str(&format!(
                "event {} {} ×{}: {}\n",
                e.event_type, e.reason, e.count, e.message
            ));
        }
        if let Some(e) = &self.events_error {
            out.push_str(&format!("events NOT READ: {} — {}\n", e.message, e.hint));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_selectors_read_match_expressions() {
        let labels: BTreeMap<String, String> = [
            ("app.kubernetes.io/name", "server"),
            ("app.kubernetes.io/instance", "immich"),
            ("tier", "web"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sel = |v: serde_json::Value| {
            let ls: LabelSelector = serde_json::from_value(v).unwrap_or_default();
            selector(Some(&ls)).is_some_and(|s| s.matches(&labels))
        };
        assert!(sel(
            serde_json::json!({"matchLabels": {"app.kubernetes.io/name": "server"}})
        ));
        assert!(sel(
            serde_json::json!({"matchLabels": {"app.kubernetes.io/instance": "immich"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]})
        ));
        assert!(!sel(
            serde_json::json!({"matchLabels": {"app.kubernetes.io/instance": "immich"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]})
        ));
        assert!(sel(
            serde_json::json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]})
        ));
        assert!(!sel(
            serde_json::json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]})
        ));
        // An empty selector selects nothing here, never every pod.
        assert!(!sel(serde_json::json!({})));
        assert!(!sel(
            serde_json::json!({"matchExpressions": [{"key": "tier", "operator": "Bogus"}]})
        ));
    }
}
