//! What every Kubernetes-backed tool shares: the configured cluster, errors
//! turned into tool errors by status and cause, partial answers (the part
//! that could not be read, and why), a namespace that must exist, and
//! several custom kinds listed at once, each at its own served version.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;

use super::{ErrorCode, ToolContext, ToolError};
use crate::cluster::kinds::{CustomKind, KindList};
use crate::cluster::{Cluster, Error as ClusterError, Request};

/// The configured cluster, or a not-configured error.
pub fn cluster(ctx: &ToolContext) -> Result<&Cluster, ToolError> {
    ctx.cluster.as_ref().ok_or_else(|| {
        ToolError::new(
            ErrorCode::NotConfigured,
            "no Kubernetes API is configured",
            "start labscope with --kubeconfig FILE (or KUBECONFIG), or run it in the cluster",
        )
    })
}

/// The cluster for a tool whose `namespace` filter is optional: when one is
/// given it must exist (a missing namespace is `not_found`, never a healthy
/// answer about zero objects).
pub async fn cluster_in<'a>(
    ctx: &'a ToolContext,
    namespace: Option<&str>,
) -> Result<&'a Cluster, ToolError> {
    let c = cluster(ctx)?;
    if let Some(ns) = namespace {
        require_namespace(c, ns).await.map_err(|mut e| {
            if e.code == ErrorCode::NotFound {
                e.hint.push_str("; omit namespace to look everywhere");
            }
            e
        })?;
    }
    Ok(c)
}

/// The tool error code of a Kubernetes failure.
pub fn error_code(e: &ClusterError) -> ErrorCode {
    e.code()
}

/// A Kubernetes error as a tool error, by status and cause.
pub fn api_error(e: ClusterError) -> ToolError {
    ToolError::new(error_code(&e), e.to_string(), e.hint())
}

pub use crate::assess::{FailedPart, failed_text};

impl FailedPart {
    /// `part` failed with a tool error.
    pub fn from_tool(part: &str, e: &ToolError) -> Self {
        Self {
            part: part.to_string(),
            code: e.code,
            message: e.message.clone(),
            hint: e.hint.clone(),
        }
    }
}

/// Fails with `not_found` when namespace `ns` does not exist: a real API
/// server answers a list in a missing namespace with 200 and nothing, which
/// must not read as "healthy, 0 objects".
pub async fn require_namespace(c: &Cluster, ns: &str) -> Result<(), ToolError> {
    let api: Api<Namespace> = Api::all(c.client.clone());
    match c
        .get_opt(&api, ns, Request::new("get", "namespaces", None))
        .await
    {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ToolError::new(
            ErrorCode::NotFound,
            format!("namespace {ns:?} does not exist"),
            "check the name (kubectl get namespaces)",
        )),
        // Without the right to read namespaces, carry on: the lists
        // themselves still answer for the namespace.
        Err(e) if e.is_forbidden() => Ok(()),
        Err(e) => Err(api_error(e)),
    }
}

/// Lists several kinds at once, each at its own served version; a kind that
/// could not be read is an empty list with its failure in `failed`.
pub async fn list_kinds<const N: usize>(
    c: &Cluster,
    kinds: [&CustomKind; N],
    namespace: Option<&str>,
    failed: &mut Vec<(&'static str, ClusterError)>,
) -> [KindList; N] {
    let lists = futures::future::join_all(kinds.iter().map(|k| c.list_kind(k, namespace))).await;
    let mut out: Vec<KindList> = Vec::with_capacity(N);
    for (k, l) in kinds.iter().zip(lists) {
        out.push(match l {
            Ok(l) => l,
            Err(e) => {
                failed.push((k.kind, e));
                KindList::Listed {
                    api_version: "unreadable".into(),
                    items: Vec::new(),
                }
            }
        });
    }
    out.try_into()
        .unwrap_or_else(|_| unreachable!("one list per kind"))
}

/// The failure of the kind a tool is about (its answer would be empty
/// without it): the whole call fails with it, never "0 objects".
pub fn primary_failure(
    failed: &mut Vec<(&'static str, ClusterError)>,
    kind: &str,
) -> Result<(), ToolError> {
    match failed.iter().position(|(k, _)| *k == kind) {
        Some(i) => Err(api_error(failed.swap_remove(i).1)),
        None => Ok(()),
    }
}

/// The failures as failed parts.
pub fn failed_parts(failed: &[(&'static str, ClusterError)]) -> Vec<FailedPart> {
    failed.iter().map(|(k, e)| FailedPart::new(k, e)).collect()
}

/// kind → the version it was read at ("not installed", "unreadable").
pub fn versions_of(
    kinds: &[&CustomKind],
    lists: &[&KindList],
) -> std::collections::BTreeMap<String, String> {
    kinds
        .iter()
        .zip(lists)
        .map(|(k, l)| (k.kind.to_string(), l.version_label()))
        .collect()
}

pub use crate::cluster::kinds::meta;

/// A Deployment's pods as the DNS and media status tools report them.
pub struct DeploymentPods<'a> {
    /// spec.replicas (1 when unset).
    pub desired: i32,
    /// Pods its selector matches (Job pods never count).
    pub pods: Vec<&'a k8s_openapi::api::core::v1::Pod>,
    /// Of those, Ready.
    pub ready: u32,
    /// "scaled to zero", "no pods", "not ready" or "ok".
    pub status: &'static str,
}

/// The pods among `pods` that `d`'s matchLabels select, without Job pods
/// (a backup Job labelled like the app must not count as the app).
pub fn deployment_pods<'a>(
    d: &k8s_openapi::api::apps::v1::Deployment,
    pods: impl IntoIterator<Item = &'a k8s_openapi::api::core::v1::Pod>,
) -> DeploymentPods<'a> {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let selector = d
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    let mine: Vec<&k8s_openapi::api::core::v1::Pod> = pods
        .into_iter()
        .filter(|p| {
            !selector.is_empty()
                && p.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
                && !p
                    .metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|r| r.kind == "Job"))
        })
        .collect();
    let ready = mine
        .iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count() as u32;
    let status = if desired == 0 {
        "scaled to zero"
    } else if mine.is_empty() {
        "no pods"
    } else if ready == 0 {
        "not ready"
    } else {
        "ok"
    };
    DeploymentPods {
        desired,
        pods: mine,
        ready,
        status,
    }
}
