//! Pods listed (paged) and classified by `assess::pods`.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

pub use crate::assess::pods::{PodHistory, PodProblem, PodReport, assess, classify, left_by_node};

use super::{Cluster, Error, Request};

/// Lists pods (all namespaces or one, paged) and classifies them.
pub async fn report(
    cluster: &Cluster,
    namespace: Option<&str>,
    now: i64,
) -> Result<PodReport, Error> {
    let api: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(cluster.client.clone(), ns),
        None => Api::all(cluster.client.clone()),
    };
    let pods = cluster
        .list(
            &api,
            &ListParams::default(),
            Request::new("list", "pods", namespace),
        )
        .await?;
    Ok(assess(&pods, now))
}
