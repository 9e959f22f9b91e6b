//! Pods listed (paged); `assess::pods` classifies them.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::{Cluster, Error, Request};

/// Lists pods (all namespaces or one, paged).
pub async fn list(cluster: &Cluster, namespace: Option<&str>) -> Result<Vec<Pod>, Error> {
    let api: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(cluster.client.clone(), ns),
        None => Api::all(cluster.client.clone()),
    };
    cluster
        .list(
            &api,
            &ListParams::default(),
            Request::new("list", "pods", namespace),
        )
        .await
}
