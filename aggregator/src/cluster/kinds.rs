//! Per-kind API discovery: each custom kind is read at a version the server
//! serves **for that kind**. Operators promote the kinds of one group in
//! different releases (Flux 2.3 served GitRepository at
//! `source.toolkit.fluxcd.io/v1` while Bucket and OCIRepository were only at
//! `v1beta2`), so one preferred version per group answers 404 for some kinds.
//! A kind is read at the group's preferred version when that version serves
//! it, else at the most stable version that does; a group or kind that is not
//! served is "not installed" for that kind only.
//!
//! `/apis` and each `/apis/{group}/{version}` are read once per [`TTL`] and
//! shared: concurrent lookups wait for the one request in flight (which has
//! the per-request deadline); no lock is held across I/O, and a failed read
//! is not cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::{GroupVersionKind, Version};
use tokio::sync::OnceCell;

use super::Cluster;
use super::error::{Error, Request};

/// How long a discovery answer is reused. Installing, upgrading or removing
/// an operator shows within this time.
pub const TTL: Duration = Duration::from_secs(30);

/// A custom kind labscope reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomKind {
    /// API group, e.g. `source.toolkit.fluxcd.io`.
    pub group: &'static str,
    /// Kind, e.g. `Bucket`.
    pub kind: &'static str,
    /// Plural resource name, for messages and RBAC hints.
    pub plural: &'static str,
}

impl CustomKind {
    /// A kind of `group`.
    pub const fn new(group: &'static str, kind: &'static str, plural: &'static str) -> Self {
        Self {
            group,
            kind,
            plural,
        }
    }
}

/// Where a kind is served.
#[derive(Debug, Clone)]
pub struct ServedKind {
    /// The resource at the chosen version.
    pub resource: ApiResource,
    /// Namespaced (else cluster-scoped).
    pub namespaced: bool,
}

impl ServedKind {
    /// `group/version`.
    pub fn api_version(&self) -> &str {
        &self.resource.api_version
    }
}

/// Why a kind is not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Absent {
    /// The group is not in `/apis`: the operator is not installed.
    GroupNotServed,
    /// The group is served, but none of its versions serves this kind.
    KindNotServed {
        /// The versions the group serves.
        group_versions: Vec<String>,
    },
}

impl std::fmt::Display for Absent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Absent::GroupNotServed => write!(f, "its API group is not served (not installed)"),
            Absent::KindNotServed { group_versions } => write!(
                f,
                "its API group is served at {} but none of those versions serves this kind",
                group_versions.join(", ")
            ),
        }
    }
}

/// The answer of a lookup.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// Served at this resource's version.
    Served(ServedKind),
    /// Not served.
    Absent(Absent),
}

/// The objects of one kind, or why there are none to read.
#[derive(Debug, Clone)]
pub enum KindList {
    /// Listed at `api_version`.
    Listed {
        /// `group/version` it was read at.
        api_version: String,
        /// The objects.
        items: Vec<DynamicObject>,
    },
    /// Not served.
    Absent(Absent),
}

impl KindList {
    /// The objects (none when absent).
    pub fn items(&self) -> &[DynamicObject] {
        match self {
            KindList::Listed { items, .. } => items,
            KindList::Absent(_) => &[],
        }
    }

    /// The version it was read at, or "not installed".
    pub fn version_label(&self) -> String {
        match self {
            KindList::Listed { api_version, .. } => api_version.clone(),
            KindList::Absent(_) => "not installed".into(),
        }
    }

    /// True when the kind is served.
    pub fn installed(&self) -> bool {
        matches!(self, KindList::Listed { .. })
    }
}

/// A served group from `/apis`: preferred version and every served version.
#[derive(Debug, Clone)]
struct GroupEntry {
    preferred: Option<String>,
    versions: Vec<String>,
}

type Groups = Arc<HashMap<String, GroupEntry>>;
type Resources = Arc<Vec<APIResource>>;

/// One shared fetch: created by the first caller, awaited by the others.
struct Slot<T> {
    at: Instant,
    cell: Arc<OnceCell<Result<T, Error>>>,
}

/// Discovery answers shared by clones of a [`Cluster`].
#[derive(Clone, Default)]
pub struct DiscoveryCache {
    groups: Arc<Mutex<Option<Slot<Groups>>>>,
    resources: Arc<Mutex<HashMap<String, Slot<Resources>>>>,
}

impl std::fmt::Debug for DiscoveryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryCache").finish_non_exhaustive()
    }
}

/// The cell for a fresh fetch: the current one while it is younger than
/// [`TTL`], else a new one. The lock is held only to pick the cell.
fn cell_of<T>(slot: &mut Option<Slot<T>>) -> Arc<OnceCell<Result<T, Error>>> {
    match slot {
        Some(s) if s.at.elapsed() < TTL => s.cell.clone(),
        _ => {
            let cell = Arc::new(OnceCell::new());
            *slot = Some(Slot {
                at: Instant::now(),
                cell: cell.clone(),
            });
            cell
        }
    }
}

/// Forgets `cell` if it is still the current one (after a failed fetch, so
/// the next caller asks again).
fn forget<T>(slot: &mut Option<Slot<T>>, cell: &Arc<OnceCell<Result<T, Error>>>) {
    if slot.as_ref().is_some_and(|s| Arc::ptr_eq(&s.cell, cell)) {
        *slot = None;
    }
}

impl Cluster {
    /// The served groups from `/apis` (one request per [`TTL`]).
    async fn groups(&self) -> Result<Groups, Error> {
        let cell = {
            let mut slot = self
                .discovery
                .groups
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            cell_of(&mut slot)
        };
        let result = cell
            .get_or_init(|| async {
                let list = self
                    .bounded(
                        Request::new("discover", "API groups (/apis)", None),
                        self.client.list_api_groups(),
                    )
                    .await?;
                Ok(Arc::new(
                    list.groups
                        .into_iter()
                        .map(|g| {
                            let entry = GroupEntry {
                                preferred: g.preferred_version.map(|p| p.version),
                                versions: g.versions.into_iter().map(|v| v.version).collect(),
                            };
                            (g.name, entry)
                        })
                        .collect(),
                ))
            })
            .await
            .clone();
        if result.is_err() {
            let mut slot = self
                .discovery
                .groups
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            forget(&mut slot, &cell);
        }
        result
    }

    /// The resources of `group/version` (one request per [`TTL`]). A 404 is
    /// an empty list: the version is gone since `/apis` was read.
    async fn resources(&self, group: &str, version: &str) -> Result<Resources, Error> {
        let gv = format!("{group}/{version}");
        let cell = {
            let mut map = self
                .discovery
                .resources
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let mut slot = map.remove(&gv);
            let cell = cell_of(&mut slot);
            if let Some(s) = slot {
                map.insert(gv.clone(), s);
            }
            cell
        };
        let result = cell
            .get_or_init(|| async {
                match self
                    .bounded(
                        Request::new("discover", format!("resources of {gv}"), None),
                        self.client.list_api_group_resources(&gv),
                    )
                    .await
                {
                    Ok(list) => Ok(Arc::new(list.resources)),
                    Err(e) if e.is_not_found() => Ok(Arc::new(Vec::new())),
                    Err(e) => Err(e),
                }
            })
            .await
            .clone();
        if result.is_err() {
            let mut map = self
                .discovery
                .resources
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let mut slot = map.remove(&gv);
            forget(&mut slot, &cell);
            if let Some(s) = slot {
                map.insert(gv, s);
            }
        }
        result
    }

    /// Where `kind` is served: the group's preferred version when it serves
    /// the kind, else the most stable version that does.
    pub async fn resolve(&self, kind: &CustomKind) -> Result<Resolution, Error> {
        let groups = self.groups().await?;
        let Some(group) = groups.get(kind.group) else {
            return Ok(Resolution::Absent(Absent::GroupNotServed));
        };
        for version in candidate_versions(group) {
            let resources = self.resources(kind.group, &version).await?;
            if let Some(r) = resources
                .iter()
                .find(|r| r.kind == kind.kind && !r.name.contains('/'))
            {
                let gvk = GroupVersionKind::gvk(kind.group, &version, kind.kind);
                return Ok(Resolution::Served(ServedKind {
                    resource: ApiResource::from_gvk_with_plural(&gvk, &r.name),
                    namespaced: r.namespaced,
                }));
            }
        }
        Ok(Resolution::Absent(Absent::KindNotServed {
            group_versions: group.versions.clone(),
        }))
    }

    /// True when `group` is in `/apis`.
    pub async fn group_served(&self, group: &str) -> Result<bool, Error> {
        Ok(self.groups().await?.contains_key(group))
    }

    /// Lists `kind` at its served version, in `namespace` or everywhere (a
    /// cluster-scoped kind ignores `namespace`).
    pub async fn list_kind(
        &self,
        kind: &CustomKind,
        namespace: Option<&str>,
    ) -> Result<KindList, Error> {
        self.list_kind_with(kind, namespace, &ListParams::default())
            .await
    }

    /// [`Cluster::list_kind`] with label/field selectors.
    pub async fn list_kind_with(
        &self,
        kind: &CustomKind,
        namespace: Option<&str>,
        lp: &ListParams,
    ) -> Result<KindList, Error> {
        let served = match self.resolve(kind).await? {
            Resolution::Served(s) => s,
            Resolution::Absent(a) => return Ok(KindList::Absent(a)),
        };
        let ns = namespace.filter(|_| served.namespaced);
        let api: Api<DynamicObject> = match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &served.resource),
            None => Api::all_with(self.client.clone(), &served.resource),
        };
        let items = self
            .list(&api, lp, Request::new("list", kind.plural, ns))
            .await?;
        Ok(KindList::Listed {
            api_version: served.resource.api_version.clone(),
            items,
        })
    }
}

/// The group's preferred version first, then the others from most to least
/// stable (GA, beta, alpha; newer first), as Kubernetes orders versions.
fn candidate_versions(group: &GroupEntry) -> Vec<String> {
    let mut rest: Vec<String> = group
        .versions
        .iter()
        .filter(|v| Some(*v) != group.preferred.as_ref())
        .cloned()
        .collect();
    rest.sort_by_cached_key(|v| std::cmp::Reverse(Version::parse(v).priority()));
    group.preferred.iter().cloned().chain(rest).collect()
}

/// A status condition as the operators here write it (metav1.Condition,
/// read leniently: a field another writer left out is empty).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Condition {
    /// Condition type (Ready, Stalled, Issuing, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// True, False or Unknown.
    pub status: String,
    /// Reason (CamelCase).
    pub reason: String,
    /// Message.
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: Option<String>,
}

/// The conditions of a status, typed.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct Conditions {
    /// `status.conditions`.
    pub conditions: Vec<Condition>,
}

impl Conditions {
    /// The condition of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }
}

/// Reads the typed fields `T` of an object (`#[serde(default)]` structs
/// with what the caller needs). The error names the field that did not
/// fit, for an answer that says where instead of reading a default.
pub fn fields<T: serde::de::DeserializeOwned>(obj: &DynamicObject) -> Result<T, String> {
    serde_path_to_error::deserialize(&obj.data)
        .map_err(|e| format!("field `{}`: {}", e.path(), e.inner()))
}

/// (status, reason, message) of the condition `kind` of an object whose
/// typed fields were read into `conditions`: Unknown/Unreadable naming the
/// field when they could not be (`what` says which object and which
/// operator, e.g. "Certificate", "a cert-manager"), Unknown/NoCondition
/// when the condition is not there.
pub fn judged(
    conditions: Result<&Conditions, &String>,
    kind: &str,
    what: (&str, &str),
) -> (String, String, String) {
    match conditions {
        Err(e) => (
            "Unknown".into(),
            "Unreadable".into(),
            format!(
                "labscope could not read this {} ({e}): {} version whose API changed?",
                what.0, what.1
            ),
        ),
        Ok(c) => c.get(kind).map_or_else(
            || ("Unknown".into(), "NoCondition".into(), String::new()),
            |r| (r.status.clone(), r.reason.clone(), r.message.clone()),
        ),
    }
}

/// `obj.status.conditions`, typed; empty when there are none or they are
/// not readable.
pub fn status_conditions(obj: &serde_json::Value) -> Conditions {
    #[derive(Default, serde::Deserialize)]
    #[serde(default)]
    struct WithStatus {
        status: Conditions,
    }
    <WithStatus as serde::Deserialize>::deserialize(obj)
        .unwrap_or_default()
        .status
}

/// The condition of `type_` in `obj.status.conditions`: (status, reason,
/// message); none when there is none or the conditions are not readable.
pub fn condition(obj: &serde_json::Value, type_: &str) -> Option<(String, String, String)> {
    status_conditions(obj)
        .get(type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// (namespace, name) of an object.
pub fn meta(o: &DynamicObject) -> (String, String) {
    (
        o.metadata.namespace.clone().unwrap_or_default(),
        o.metadata.name.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferred_first_then_most_stable() {
        let g = GroupEntry {
            preferred: Some("v1".into()),
            versions: vec![
                "v1beta1".into(),
                "v1".into(),
                "v1alpha1".into(),
                "v1beta2".into(),
            ],
        };
        assert_eq!(
            candidate_versions(&g),
            ["v1", "v1beta2", "v1beta1", "v1alpha1"]
        );
        let helm = GroupEntry {
            preferred: Some("v2beta2".into()),
            versions: vec!["v2beta2".into(), "v2beta1".into()],
        };
        assert_eq!(candidate_versions(&helm), ["v2beta2", "v2beta1"]);
        let none = GroupEntry {
            preferred: None,
            versions: vec!["v1beta1".into(), "v2".into()],
        };
        assert_eq!(candidate_versions(&none), ["v2", "v1beta1"]);
    }
}
