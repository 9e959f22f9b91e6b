//! `get_pvcs`: PersistentVolumeClaims with where their data lives (the node
//! of a local-path volume, or the NFS export) and the pods that mount them.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::args::{Name, blank_as_none};
use super::kube::{api_error, cluster_in};
use super::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};
use crate::cluster::{Cluster, Error as ClusterError, Request};

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Only this namespace.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub namespace: Option<Name>,
}

/// One claim.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pvc {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Bound, Pending, Lost.
    pub phase: String,
    /// Requested size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    /// Bound size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    /// StorageClass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// PersistentVolume.
    pub volume: String,
    /// Access modes.
    pub access_modes: Vec<String>,
    /// "node X" or "nfs server:/path".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Pods that mount it.
    pub mounted_by: Vec<String>,
    /// Of the volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reclaim_policy: Option<String>,
    /// Of the volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_options: Option<Vec<String>>,
}

/// healthy, degraded (a claim not Bound) or no PVCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum PvcVerdict {
    /// Every claim Bound.
    #[serde(rename = "healthy")]
    Healthy,
    /// A claim is Pending or Lost.
    #[serde(rename = "degraded")]
    Degraded,
    /// No claims.
    #[serde(rename = "no PVCs")]
    NoPvcs,
}

/// Counts.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcSummary {
    /// Claims.
    pub pvcs: usize,
    /// Not Bound.
    pub not_bound: usize,
    /// Mounted by no pod.
    pub not_mounted: usize,
}

/// The claims.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Pvcs {
    /// Verdict.
    pub verdict: PvcVerdict,
    /// Counts.
    pub summary: PvcSummary,
    /// Claims.
    pub pvcs: Vec<Pvc>,
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_pvcs",
            title: "Volume claims",
            description: "PVCs: phase, size, where the data lives, which pods mount them.",
            toolset: Toolset::Cluster,
            hints: Hints::READ,
        },
        run,
    )
}

async fn run(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<Pvcs, ToolError> {
    let c = cluster_in(&ctx, a.namespace.as_deref()).await?;
    read(c, a.namespace.as_deref()).await.map_err(api_error)
}

/// Lists claims, volumes and pods and joins them.
pub async fn read(c: &Cluster, ns: Option<&str>) -> Result<Pvcs, ClusterError> {
    let all = ListParams::default();
    let pvc_api: Api<PersistentVolumeClaim> = match ns {
        Some(n) => Api::namespaced(c.client.clone(), n),
        None => Api::all(c.client.clone()),
    };
    let pod_api: Api<Pod> = match ns {
        Some(n) => Api::namespaced(c.client.clone(), n),
        None => Api::all(c.client.clone()),
    };
    let pv_api: Api<PersistentVolume> = Api::all(c.client.clone());
    let (claims, volumes, pods) = tokio::try_join!(
        c.list(
            &pvc_api,
            &all,
            Request::new("list", "persistentvolumeclaims", ns)
        ),
        c.list(
            &pv_api,
            &all,
            Request::new("list", "persistentvolumes", None)
        ),
        c.list(&pod_api, &all, Request::new("list", "pods", ns)),
    )?;
    Ok(assess(&claims, &volumes, &pods))
}

/// Pods in `pods` that mount claim `name` in `ns`.
fn mounted_by(pods: &[Pod], ns: &str, name: &str) -> Vec<String> {
    pods.iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| {
            p.spec.as_ref().is_some_and(|s| {
                s.volumes.iter().flatten().any(|v| {
                    v.persistent_volume_claim
                        .as_ref()
                        .is_some_and(|c| c.claim_name == name)
                })
            })
        })
        .filter_map(|p| p.metadata.name.clone())
        .collect()
}

/// One claim, joined with its volume and the pods that mount it.
pub fn pvc(claim: &PersistentVolumeClaim, volumes: &[PersistentVolume], pods: &[Pod]) -> Pvc {
    let ns = claim.metadata.namespace.clone().unwrap_or_default();
    let name = claim.metadata.name.clone().unwrap_or_default();
    let spec = claim.spec.clone().unwrap_or_default();
    let status = claim.status.clone().unwrap_or_default();
    let volume = spec.volume_name.clone().unwrap_or_default();
    let pv = volumes
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(volume.as_str()));
    let pv_spec = pv.and_then(|p| p.spec.clone());
    let location = match &pv_spec {
        Some(s) if s.nfs.is_some() => s
            .nfs
            .as_ref()
            .map(|n| format!("nfs {}:{}", n.server, n.path)),
        Some(s) => s
            .node_affinity
            .as_ref()
            .and_then(|a| a.required.as_ref())
            .and_then(|r| r.node_selector_terms.first())
            .and_then(|t| t.match_expressions.as_ref()?.first())
            .and_then(|e| e.values.as_ref()?.first().cloned())
            .map(|n| format!("node {n}")),
        None => claim
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("volume.kubernetes.io/selected-node"))
            .map(|n| format!("node {n}")),
    };
    Pvc {
        mounted_by: mounted_by(pods, &ns, &name),
        phase: status.phase.clone().unwrap_or_else(|| "Unknown".into()),
        requested: spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone()),
        capacity: status
            .capacity
            .as_ref()
            .and_then(|c| c.get("storage"))
            .map(|q| q.0.clone()),
        storage_class: spec.storage_class_name.clone(),
        access_modes: spec.access_modes.clone().unwrap_or_default(),
        location,
        reclaim_policy: pv_spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.clone()),
        mount_options: pv_spec.as_ref().and_then(|s| s.mount_options.clone()),
        namespace: ns,
        name,
        volume,
    }
}

/// Joins every claim (pure).
pub fn assess(
    claims: &[PersistentVolumeClaim],
    volumes: &[PersistentVolume],
    pods: &[Pod],
) -> Pvcs {
    let rows: Vec<Pvc> = claims.iter().map(|c| pvc(c, volumes, pods)).collect();
    let not_bound = rows.iter().filter(|r| r.phase != "Bound").count();
    let not_mounted = rows.iter().filter(|r| r.mounted_by.is_empty()).count();
    Pvcs {
        verdict: if rows.is_empty() {
            PvcVerdict::NoPvcs
        } else if not_bound == 0 {
            PvcVerdict::Healthy
        } else {
            PvcVerdict::Degraded
        },
        summary: PvcSummary {
            pvcs: rows.len(),
            not_bound,
            not_mounted,
        },
        pvcs: rows,
    }
}

impl Render for Pvc {
    fn text(&self) -> String {
        format!(
            "{}/{} {} {} {} {} [{}]",
            self.namespace,
            self.name,
            self.phase,
            self.capacity
                .as_deref()
                .or(self.requested.as_deref())
                .unwrap_or("?"),
            self.storage_class.as_deref().unwrap_or("-"),
            self.location.as_deref().unwrap_or("-"),
            if self.mounted_by.is_empty() {
                "not mounted".to_string()
            } else {
                self.mounted_by.join(", ")
            }
        )
    }
}

impl Render for Pvcs {
    fn text(&self) -> String {
        let verdict = super::label(&self.verdict);
        let mut text = format!(
            "PVCs: {verdict} — {} claims, {} not Bound, {} not mounted by any pod\n",
            self.summary.pvcs, self.summary.not_bound, self.summary.not_mounted
        );
        for r in &self.pvcs {
            text.push_str(&r.text());
            text.push('\n');
        }
        text
    }
}
