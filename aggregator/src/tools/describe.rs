//! `describe_resource`: spec and status summary of one object with its pods
//! (for workloads and nodes), conditions and the events about it from the
//! last 24 hours. Secret values are redacted; Secret references are named,
//! never read.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Node, PersistentVolume, PersistentVolumeClaim, Pod, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, ListParams};
use kube::core::{Selector, SelectorExt};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::args::{Name, blank_as_none};
use super::events::{EventGroup, EventType};
use super::kube::{FailedPart, api_error, cluster};
use super::podspec::{Condition, ContainerInfo, VolumeRef, conditions, containers_and_volumes};
use super::storage::Pvc;
use super::{Call, ErrorCode, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};
use crate::choice;
use crate::cluster::time::now;
use crate::cluster::{Cluster, Request};
use crate::redact::{MARK, redact, secret_name};

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

/// A Service port.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortRow {
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port.
    pub port: i32,
    /// Target port.
    pub target_port: String,
    /// Protocol.
    pub protocol: String,
    /// NodePort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
}

/// An endpoint of a Service.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EndpointRow {
    /// Address.
    pub address: String,
    /// Ready.
    pub ready: bool,
    /// Pod behind it.
    pub pod: String,
    /// Its node.
    pub node: String,
}

/// A Service.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSummary {
    /// ClusterIP, NodePort, LoadBalancer, ExternalName.
    #[serde(rename = "type")]
    pub service_type: String,
    /// Cluster IP.
    #[serde(rename = "clusterIP")]
    pub cluster_ip: String,
    /// Ports.
    pub ports: Vec<PortRow>,
    /// Selector.
    pub selector: BTreeMap<String, String>,
    /// Endpoints, from EndpointSlices.
    pub endpoints: Vec<EndpointRow>,
    /// Ready endpoints.
    pub ready_endpoints: usize,
}

/// One ConfigMap key.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ConfigValue {
    /// Size.
    pub bytes: usize,
    /// Value, redacted, at most 2048 characters.
    pub value: String,
    /// Cut at 2048 characters.
    pub truncated: bool,
    /// Secrets hidden.
    pub redactions: usize,
}

/// A ConfigMap.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapSummary {
    /// Keys.
    pub data: BTreeMap<String, ConfigValue>,
    /// Keys of binaryData (not shown).
    pub binary_keys: Vec<String>,
}

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

/// A Job.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    /// Conditions.
    pub conditions: Vec<Condition>,
    /// Active pods.
    pub active: i32,
    /// Succeeded pods.
    pub succeeded: i32,
    /// Failed pods.
    pub failed: i32,
    /// Start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Completion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Retries allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    /// Containers.
    pub containers: Vec<ContainerInfo>,
    /// Its pods.
    pub pods: Vec<PodBrief>,
}

/// A CronJob (get_cronjob_details says more).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronJobSummary {
    /// Schedule.
    pub schedule: String,
    /// spec.timeZone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Suspended.
    pub suspend: bool,
    /// Allow, Forbid, Replace.
    pub concurrency_policy: String,
    /// Last run scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// Last success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    /// Jobs running.
    pub active: usize,
    /// Containers.
    pub containers: Vec<ContainerInfo>,
}

/// A host/path → Service rule.
#[derive(Debug, Serialize, JsonSchema)]
pub struct IngressRoute {
    /// Host.
    pub host: String,
    /// Path.
    pub path: String,
    /// Service.
    pub service: String,
    /// Port.
    pub port: String,
}

/// An Ingress (get_ingress_status checks backends and certificates).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSummary {
    /// IngressClass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Routes.
    pub routes: Vec<IngressRoute>,
    /// TLS secrets and their hosts.
    pub tls: BTreeMap<String, Vec<String>>,
    /// Load balancer addresses.
    pub addresses: Vec<String>,
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
        super::kube::require_namespace(c, n).await?;
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

fn time(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<String> {
    t.map(|t| t.0.to_string())
}

/// What a Deployment, StatefulSet or DaemonSet has in common.
struct WorkloadParts<'a> {
    meta: ObjectMeta,
    replicas: Replicas,
    strategy: Option<String>,
    selector: &'a LabelSelector,
    template: &'a k8s_openapi::api::core::v1::PodTemplateSpec,
    json: serde_json::Value,
}

/// What describe needs of a Deployment, StatefulSet or DaemonSet: the three
/// name their replica counts and strategy differently.
trait WorkloadKind:
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
async fn describe_workload<K: WorkloadKind>(
    c: &Cluster,
    kind: Kind,
    ns: &str,
    name: &str,
) -> Result<(ObjectMeta, Summary), ToolError> {
    let object: K = get(
        c,
        kind,
        Api::namespaced(c.client.clone(), ns),
        Some(ns),
        name,
    )
    .await?;
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

/// Reads the object and builds its summary.
async fn summarise(
    c: &Cluster,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
) -> Result<(ObjectMeta, Summary), ToolError> {
    let nsv = ns.unwrap_or_default();
    match kind {
        Kind::Deployment => describe_workload::<Deployment>(c, kind, nsv, name).await,
        Kind::StatefulSet => describe_workload::<StatefulSet>(c, kind, nsv, name).await,
        Kind::DaemonSet => describe_workload::<DaemonSet>(c, kind, nsv, name).await,
        Kind::Pod => {
            let p: Pod = get(c, kind, Api::namespaced(c.client.clone(), nsv), ns, name).await?;
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
        Kind::Service => {
            let s: Service = get(c, kind, Api::namespaced(c.client.clone(), nsv), ns, name).await?;
            let spec = s.spec.clone().unwrap_or_default();
            let api: Api<EndpointSlice> = Api::namespaced(c.client.clone(), nsv);
            let slices = c
                .list(
                    &api,
                    &ListParams::default().labels(&format!("kubernetes.io/service-name={name}")),
                    Request::new("list", "endpointslices", ns),
                )
                .await
                .map_err(api_error)?;
            let endpoints: Vec<EndpointRow> = slices
                .iter()
                .flat_map(|sl| sl.endpoints.iter())
                .map(|e| EndpointRow {
                    address: e.addresses.first().cloned().unwrap_or_default(),
                    ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
                    pod: e
                        .target_ref
                        .as_ref()
                        .and_then(|t| t.name.clone())
                        .unwrap_or_default(),
                    node: e.node_name.clone().unwrap_or_default(),
                })
                .collect();
            let summary = ServiceSummary {
                service_type: spec.type_.clone().unwrap_or_else(|| "ClusterIP".into()),
                cluster_ip: spec.cluster_ip.clone().unwrap_or_default(),
                ports: spec
                    .ports
                    .iter()
                    .flatten()
                    .map(|p| PortRow {
                        name: p.name.clone(),
                        port: p.port,
                        target_port: match &p.target_port {
                            Some(
                                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i),
                            ) => i.to_string(),
                            Some(
                                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                                    s,
                                ),
                            ) => s.clone(),
                            None => p.port.to_string(),
                        },
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        node_port: p.node_port,
                    })
                    .collect(),
                selector: spec.selector.clone().unwrap_or_default(),
                ready_endpoints: endpoints.iter().filter(|e| e.ready).count(),
                endpoints,
            };
            Ok((s.metadata, Summary::Service(summary)))
        }
        Kind::ConfigMap => {
            let m: ConfigMap =
                get(c, kind, Api::namespaced(c.client.clone(), nsv), ns, name).await?;
            let data = m
                .data
                .iter()
                .flatten()
                .map(|(k, v)| {
                    // A key named like a credential hides its whole value.
                    let (clean, n) = if secret_name(k) {
                        (MARK.to_string(), 1)
                    } else {
                        let r = redact(v);
                        (r.text, r.count)
                    };
                    let shown: String = clean.chars().take(2048).collect();
                    (
                        k.clone(),
                        ConfigValue {
                            bytes: v.len(),
                            truncated: clean.chars().count() > 2048,
                            value: shown,
                            redactions: n,
                        },
                    )
                })
                .collect();
            let summary = ConfigMapSummary {
                data,
                binary_keys: m
                    .binary_data
                    .iter()
                    .flatten()
                    .map(|(k, _)| k.clone())
                    .collect(),
            };
            Ok((m.metadata, Summary::ConfigMap(summary)))
        }
        Kind::Node => {
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
            let quantities = |m: Option<
                &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
            >| {
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
        Kind::Job => {
            let j: Job = get(c, kind, Api::namespaced(c.client.clone(), nsv), ns, name).await?;
            let (spec, st) = (
                j.spec.clone().unwrap_or_default(),
                j.status.clone().unwrap_or_default(),
            );
            let (containers, _) = containers_and_volumes(spec.template.spec.as_ref());
            let pods = pods_selected(c, nsv, selector(spec.selector.as_ref()).as_ref()).await?;
            let summary = JobSummary {
                conditions: conditions(&json(&j)),
                active: st.active.unwrap_or(0),
                succeeded: st.succeeded.unwrap_or(0),
                failed: st.failed.unwrap_or(0),
                start_time: time(st.start_time.as_ref()),
                completion_time: time(st.completion_time.as_ref()),
                backoff_limit: spec.backoff_limit,
                containers,
                pods,
            };
            Ok((j.metadata, Summary::Job(Box::new(summary))))
        }
        Kind::CronJob => {
            let cj: CronJob =
                get(c, kind, Api::namespaced(c.client.clone(), nsv), ns, name).await?;
            let (spec, st) = (
                cj.spec.clone().unwrap_or_default(),
                cj.status.clone().unwrap_or_default(),
            );
            let (containers, _) = containers_and_volumes(
                spec.job_template
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.spec.as_ref()),
            );
            let summary = CronJobSummary {
                schedule: spec.schedule.clone(),
                time_zone: spec.time_zone.clone(),
                suspend: spec.suspend.unwrap_or(false),
                concurrency_policy: spec
                    .concurrency_policy
                    .clone()
                    .unwrap_or_else(|| "Allow".into()),
                last_schedule_time: time(st.last_schedule_time.as_ref()),
                last_successful_time: time(st.last_successful_time.as_ref()),
                active: st.active.iter().flatten().count(),
                containers,
            };
            Ok((cj.metadata, Summary::CronJob(summary)))
        }
        Kind::Ingress => {
            let i: Ingress = get(c, kind, Api::namespaced(c.client.clone(), nsv), ns, name).await?;
            let spec = i.spec.clone().unwrap_or_default();
            let routes = spec
                .rules
                .iter()
                .flatten()
                .flat_map(|r| {
                    let host = r.host.clone().unwrap_or_else(|| "*".into());
                    r.http.iter().flat_map(|h| h.paths.clone()).map(move |p| {
                        let svc = p.backend.service.clone();
                        IngressRoute {
                            host: host.clone(),
                            path: p.path.unwrap_or_else(|| "/".into()),
                            service: svc.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                            port: svc
                                .and_then(|s| s.port)
                                .and_then(|p| p.number.map(|n| n.to_string()).or(p.name))
                                .unwrap_or_default(),
                        }
                    })
                })
                .collect();
            let summary = IngressSummary {
                class: spec.ingress_class_name.clone(),
                routes,
                tls: spec
                    .tls
                    .iter()
                    .flatten()
                    .map(|t| {
                        (
                            t.secret_name.clone().unwrap_or_default(),
                            t.hosts.clone().unwrap_or_default(),
                        )
                    })
                    .collect(),
                addresses: super::ingress::addresses(&i),
            };
            Ok((i.metadata, Summary::Ingress(summary)))
        }
        Kind::Pvc => {
            let claim: PersistentVolumeClaim =
                get(c, kind, Api::namespaced(c.client.clone(), nsv), ns, name).await?;
            let pv_api: Api<PersistentVolume> = Api::all(c.client.clone());
            let pod_api: Api<Pod> = Api::namespaced(c.client.clone(), nsv);
            let all = ListParams::default();
            let (volumes, pods) = tokio::try_join!(
                c.list(
                    &pv_api,
                    &all,
                    Request::new("list", "persistentvolumes", None)
                ),
                c.list(&pod_api, &all, Request::new("list", "pods", ns)),
            )
            .map_err(api_error)?;
            let summary = super::storage::pvc(&claim, &volumes, &pods);
            Ok((claim.metadata, Summary::Pvc(summary)))
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
    let (events, events_error) = match super::events::read(
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
        match &self.summary {
            Summary::Workload(w) => {
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
                conditions_text(&w.conditions, &mut out);
                placement_text(
                    w.strategy.as_deref(),
                    w.host_network,
                    &w.node_selector,
                    &w.volumes,
                    &mut out,
                );
                containers_text(&w.containers, &mut out);
                pods_text(&w.pods, &mut out);
            }
            Summary::Pod(p) => {
                out.push_str(&format!(
                    "phase {} on node {} ip {} (host {})\n",
                    p.phase, p.node, p.pod_ip, p.host_ip
                ));
                conditions_text(&p.conditions, &mut out);
                placement_text(None, p.host_network, &BTreeMap::new(), &p.volumes, &mut out);
                containers_text(&p.containers, &mut out);
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
            Summary::Service(s) => {
                out.push_str(&format!(
                    "{} {} ports {}; {} of {} endpoints ready\n",
                    s.service_type,
                    s.cluster_ip,
                    s.ports
                        .iter()
                        .map(|p| format!("{}→{}/{}", p.port, p.target_port, p.protocol))
                        .collect::<Vec<_>>()
                        .join(","),
                    s.ready_endpoints,
                    s.endpoints.len()
                ));
                for e in &s.endpoints {
                    out.push_str(&format!(
                        "endpoint {} {} pod {} node {}\n",
                        e.address,
                        if e.ready { "ready" } else { "NOT ready" },
                        e.pod,
                        e.node
                    ));
                }
            }
            Summary::ConfigMap(m) => {
                for (k, v) in &m.data {
                    out.push_str(&format!(
                        "{k} ({} bytes{}{}): {}\n",
                        v.bytes,
                        if v.redactions > 0 {
                            ", secrets redacted"
                        } else {
                            ""
                        },
                        if v.truncated { ", truncated" } else { "" },
                        v.value.lines().next().unwrap_or_default()
                    ));
                }
            }
            Summary::Node(n) => {
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
                conditions_text(&n.conditions, &mut out);
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
                pods_text(&n.pods, &mut out);
            }
            Summary::Job(j) => {
                out.push_str(&format!(
                    "active {} succeeded {} failed {} (backoffLimit {})\n",
                    j.active,
                    j.succeeded,
                    j.failed,
                    j.backoff_limit
                        .map(|b| b.to_string())
                        .unwrap_or_else(|| "-".into())
                ));
                conditions_text(&j.conditions, &mut out);
                pods_text(&j.pods, &mut out);
            }
            Summary::CronJob(cj) => {
                out.push_str(&format!(
                    "schedule {:?} tz {} suspend {} last scheduled {} last success {} ({} active); get_cronjob_details has the history\n",
                    cj.schedule,
                    cj.time_zone.as_deref().unwrap_or("-"),
                    cj.suspend,
                    cj.last_schedule_time.as_deref().unwrap_or("never"),
                    cj.last_successful_time.as_deref().unwrap_or("never"),
                    cj.active
                ));
                containers_text(&cj.containers, &mut out);
            }
            Summary::Ingress(i) => {
                for r in &i.routes {
                    out.push_str(&format!(
                        "route {}{} → {}:{}\n",
                        r.host, r.path, r.service, r.port
                    ));
                }
                for (secret, hosts) in &i.tls {
                    out.push_str(&format!("tls {secret} for {}\n", hosts.join(",")));
                }
                out.push_str("get_ingress_status checks the backends and certificates\n");
            }
            Summary::Pvc(p) => {
                out.push_str(&p.text());
                out.push('\n');
            }
        }
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
