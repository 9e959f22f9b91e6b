//! API discovery for CRD groups: which version of a group the server
//! actually serves (so a client never hard-codes `v1beta1` and gets 404), and
//! "not installed" as its own answer when the group is absent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;

use super::{Cluster, Error};

/// Whether a group is installed, and at which preferred version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// The group is in `/apis`; preferred version.
    Version(String),
    /// The group is not served at all (operator not installed).
    NotInstalled,
}

/// How long a read of `/apis` is reused. Installing or removing an operator
/// shows within this time; one tool call never reads `/apis` twice.
const DISCOVERY_TTL: Duration = Duration::from_secs(30);

/// group → preferred version, as last read from `/apis`.
type GroupVersions = Arc<BTreeMap<String, String>>;

/// The last `/apis` answer and when it was read (shared by clones of a Cluster).
#[derive(Debug, Clone, Default)]
pub struct DiscoveryCache(Arc<tokio::sync::Mutex<Option<(Instant, GroupVersions)>>>);

/// Looks `group` up in `/apis` (one request per [`DISCOVERY_TTL`]; concurrent
/// lookups wait for the one in flight).
pub async fn served(cluster: &Cluster, group: &str) -> Result<Served, Error> {
    let versions = {
        let mut cache = cluster.groups.0.lock().await;
        match cache.as_ref() {
            Some((at, v)) if at.elapsed() < DISCOVERY_TTL => v.clone(),
            _ => {
                let groups = cluster
                    .client
                    .list_api_groups()
                    .await
                    .map_err(|e| Error::from_kube(e, "list", "API groups (/apis)", None))?;
                let map: BTreeMap<String, String> = groups
                    .groups
                    .into_iter()
                    .map(|g| {
                        let v = g
                            .preferred_version
                            .map(|p| p.version)
                            .or_else(|| g.versions.first().map(|v| v.version.clone()))
                            .unwrap_or_default();
                        (g.name, v)
                    })
                    .collect();
                let map = Arc::new(map);
                *cache = Some((Instant::now(), map.clone()));
                map
            }
        }
    };
    Ok(versions
        .get(group)
        .map(|v| Served::Version(v.clone()))
        .unwrap_or(Served::NotInstalled))
}

/// Lists every object of `kind` (plural `plural`) in `group/version`, across
/// namespaces (or cluster-scoped), or in one namespace.
pub async fn list_all(
    cluster: &Cluster,
    group: &str,
    version: &str,
    kind: &str,
    plural: &'static str,
    namespace: Option<&str>,
) -> Result<Vec<DynamicObject>, Error> {
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(cluster.client.clone(), ns, &ar),
        None => Api::all_with(cluster.client.clone(), &ar),
    };
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::from_kube(e, "list", plural, namespace))?;
    Ok(list.items)
}

/// The condition of `type_` in `obj.status.conditions`: (status, reason, message).
pub fn condition(obj: &serde_json::Value, type_: &str) -> Option<(String, String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
                c["message"].as_str().unwrap_or_default().to_string(),
            )
        })
}
