//! Flux operations: `reconcile_flux`, `suspend_flux`, `resume_flux` and
//! `recover_helmrelease`. Each patches the object at the version the server
//! serves for its kind, within `[mutations] flux_namespaces`, and reports the
//! object's state before and after (the controller's answer, watched for a
//! bounded time).

use kube::api::{Api, DynamicObject};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::tools::ops::{custom_api, get_object, merge_patch, watch};

mod reconcile;
mod recover;
mod suspend;

use crate::assess::flux::{FluxState, assess};
use crate::cluster::Cluster;
use crate::cluster::kinds::CustomKind;
use crate::tools::args::Name;
use crate::tools::flux::{HELM, IMAGE, KUSTOMIZE, SOURCE};
use crate::tools::kube::cluster;
use crate::tools::{Call, ToolContext, ToolError, label};
pub use reconcile::{ReconcileReport, SourceRequest, reconcile_tool};
pub use recover::{RecoverReport, RecoveryMethod, has_reset, recover_tool};
pub use suspend::{SuspendReport, resume_tool, suspend_tool};

/// Annotation a reconcile request sets (Flux's `meta.ReconcileRequestAnnotation`).
pub const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";
/// helm-controller: reset the failure counters of a stalled release.
pub const RESET_AT: &str = "reconcile.fluxcd.io/resetAt";

/// The kinds these tools act on, as `resource` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// kustomize.toolkit.fluxcd.io Kustomization.
    Kustomization,
    /// helm.toolkit.fluxcd.io HelmRelease.
    HelmRelease,
    /// source.toolkit.fluxcd.io GitRepository.
    GitRepository,
    /// source.toolkit.fluxcd.io OCIRepository.
    OciRepository,
    /// source.toolkit.fluxcd.io HelmRepository.
    HelmRepository,
    /// image.toolkit.fluxcd.io ImageRepository.
    ImageRepository,
}

const KINDS: [(&str, OpKind); 6] = [
    ("kustomization", OpKind::Kustomization),
    ("helmrelease", OpKind::HelmRelease),
    ("gitrepository", OpKind::GitRepository),
    ("ocirepository", OpKind::OciRepository),
    ("helmrepository", OpKind::HelmRepository),
    ("imagerepository", OpKind::ImageRepository),
];

impl OpKind {
    /// The API kind.
    pub fn api(self) -> CustomKind {
        match self {
            OpKind::Kustomization => CustomKind::new(KUSTOMIZE, "Kustomization", "kustomizations"),
            OpKind::HelmRelease => CustomKind::new(HELM, "HelmRelease", "helmreleases"),
            OpKind::GitRepository => CustomKind::new(SOURCE, "GitRepository", "gitrepositories"),
            OpKind::OciRepository => CustomKind::new(SOURCE, "OCIRepository", "ocirepositories"),
            OpKind::HelmRepository => CustomKind::new(SOURCE, "HelmRepository", "helmrepositories"),
            OpKind::ImageRepository => {
                CustomKind::new(IMAGE, "ImageRepository", "imagerepositories")
            }
        }
    }
}

/// A source a Kustomization or HelmRelease points at, by its Kind.
fn source_kind(kind: &str) -> Option<CustomKind> {
    Some(match kind {
        "GitRepository" => CustomKind::new(SOURCE, "GitRepository", "gitrepositories"),
        "OCIRepository" => CustomKind::new(SOURCE, "OCIRepository", "ocirepositories"),
        "HelmRepository" => CustomKind::new(SOURCE, "HelmRepository", "helmrepositories"),
        "HelmChart" => CustomKind::new(SOURCE, "HelmChart", "helmcharts"),
        "Bucket" => CustomKind::new(SOURCE, "Bucket", "buckets"),
        _ => return None,
    })
}

/// `type/namespace/name`, validated.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Kind.
    pub kind: OpKind,
    /// Namespace.
    pub namespace: Name,
    /// Name.
    pub name: Name,
}

impl<'de> Deserialize<'de> for Resource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let s = String::deserialize(d)?;
        let parts: Vec<&str> = s.trim().split('/').collect();
        let kinds = KINDS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        let [ty, ns, name] = parts[..] else {
            return Err(D::Error::custom(format!(
                "{s:?} is not type/namespace/name (e.g. helmrelease/immich/immich); type is one of {kinds}"
            )));
        };
        let kind = KINDS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(ty))
            .map(|(_, k)| *k)
            .ok_or_else(|| D::Error::custom(format!("type {ty:?} is not one of {kinds}")))?;
        Ok(Resource {
            kind,
            namespace: Name::new(ns).map_err(D::Error::custom)?,
            name: Name::new(name).map_err(D::Error::custom)?,
        })
    }
}

impl JsonSchema for Resource {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FluxResource".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string"})
    }
}

/// Arguments of `reconcile_flux`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileArgs {
    /// type/namespace/name; type: kustomization, helmrelease, gitrepository,
    /// ocirepository, helmrepository, imagerepository.
    pub resource: Resource,
    /// Also reconcile its source first (Kustomization, HelmRelease).
    #[serde(default, rename = "withSource")]
    pub with_source: bool,
}

/// Arguments of `suspend_flux` and `resume_flux`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceArgs {
    /// type/namespace/name, as for reconcile_flux.
    pub resource: Resource,
}

/// Arguments of `recover_helmrelease`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverArgs {
    /// The HelmRelease's namespace.
    pub namespace: Name,
    /// The HelmRelease.
    pub name: Name,
}

/// Which object.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FluxRef {
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The version it was read and patched at.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
}

impl FluxRef {
    fn id(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// An object's state at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct FluxSnapshot {
    /// ready, failing, stuck, suspended, progressing, static, unknown.
    pub status: FluxState,
    /// Ready=True.
    pub ready: bool,
    /// spec.suspend.
    pub suspended: bool,
    /// The Ready condition's reason (or the Stalled one when stuck).
    pub reason: String,
    /// Its message.
    pub message: String,
    /// The last request token the controller handled.
    #[serde(
        rename = "lastHandledReconcileAt",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_handled: Option<String>,
    /// metadata.generation.
    pub generation: i64,
}

impl FluxSnapshot {
    fn of(kind: &str, obj: &DynamicObject, now_s: i64) -> Self {
        let generation = obj.metadata.generation.unwrap_or_default();
        let assessed = assess(kind, obj.clone(), now_s);
        let handled = assessed.fields.status.last_handled_reconcile_at;
        let a = assessed.object;
        FluxSnapshot {
            status: a.status,
            ready: a.ready,
            suspended: a.suspended,
            reason: a.reason,
            message: a.message,
            last_handled: handled,
            generation,
        }
    }

    fn line(&self) -> String {
        let mut s = label(&self.status);
        if !self.reason.is_empty() {
            s.push_str(&format!(" ({})", self.reason));
        }
        if !self.message.is_empty() {
            s.push_str(&format!(": {}", self.message));
        }
        s
    }
}

struct Target {
    kind: CustomKind,
    api: Api<DynamicObject>,
    reference: FluxRef,
    /// "Now" for the assessment (the fixed clock of fixtures, else the
    /// system's).
    now: i64,
}

async fn target(
    ctx: &ToolContext,
    kind: CustomKind,
    namespace: &str,
    name: &str,
) -> Result<(Target, DynamicObject), ToolError> {
    let c = cluster(ctx)?;
    let (api, api_version) = custom_api(c, &kind, namespace).await?;
    let obj = get_object(c, &api, &kind, namespace, name).await?;
    Ok((
        Target {
            kind,
            api,
            reference: FluxRef {
                kind: kind.kind.into(),
                namespace: namespace.into(),
                name: name.into(),
                api_version,
            },
            now: crate::cluster::time::now(ctx.settings.now),
        },
        obj,
    ))
}

impl Target {
    async fn patch(&self, c: &Cluster, patch: &Value) -> Result<DynamicObject, ToolError> {
        merge_patch(
            c,
            &self.api,
            &self.kind,
            &self.reference.namespace,
            &self.reference.name,
            patch,
        )
        .await
    }

    async fn get(&self, c: &Cluster) -> Result<DynamicObject, ToolError> {
        get_object(
            c,
            &self.api,
            &self.kind,
            &self.reference.namespace,
            &self.reference.name,
        )
        .await
    }

    fn snapshot(&self, obj: &DynamicObject) -> FluxSnapshot {
        FluxSnapshot::of(self.kind.kind, obj, self.now)
    }

    /// Sets requestedAt and watches for the controller to record it.
    /// Sets requestedAt and watches for the controller to record it for
    /// at most `budget` (an object Flux never reconciles, such as an OCI
    /// HelmRepository, is not watched).
    async fn request(
        &self,
        c: &Cluster,
        budget: std::time::Duration,
        call: &Call,
        token: &str,
    ) -> Result<(FluxSnapshot, bool), ToolError> {
        let patched = self
            .patch(
                c,
                &json!({"metadata": {"annotations": {REQUESTED_AT: token}}}),
            )
            .await?;
        let first = self.snapshot(&patched);
        if first.status == FluxState::Static {
            return Ok((first, false));
        }
        let what = format!("{} reconcile", self.reference.id());
        watch(call, &what, budget, || async {
            let obj = self.get(c).await?;
            let snap = self.snapshot(&obj);
            let handled = snap.last_handled.as_deref() == Some(token);
            Ok((snap, handled))
        })
        .await
    }
}

/// Same status, reason and message (the generation and handled token may
/// move without the state changing).
fn same_state(a: &FluxSnapshot, b: &FluxSnapshot) -> bool {
    a.status == b.status
        && a.reason == b.reason
        && a.message == b.message
        && a.suspended == b.suspended
}

fn label_of(k: OpKind) -> &'static str {
    KINDS
        .iter()
        .find(|(_, x)| *x == k)
        .map(|(n, _)| *n)
        .unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_parse_and_name_what_is_wrong() {
        let r: Resource = serde_json::from_value(json!("helmrelease/immich/immich")).unwrap();
        assert_eq!(r.kind, OpKind::HelmRelease);
        assert_eq!(&*r.namespace, "immich");
        let r: Resource =
            serde_json::from_value(json!("GitRepository/flux-system/flux-system")).unwrap();
        assert_eq!(r.kind, OpKind::GitRepository);
        for bad in [
            "all",
            "helmrelease/immich",
            "bucket/flux-system/x",
            "kustomization/Flux/x",
            "kustomization/a/b/c",
        ] {
            assert!(
                serde_json::from_value::<Resource>(json!(bad)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn reset_is_known_from_v2beta2() {
        assert!(has_reset("helm.toolkit.fluxcd.io/v2"));
        assert!(has_reset("helm.toolkit.fluxcd.io/v2beta2"));
        assert!(!has_reset("helm.toolkit.fluxcd.io/v2beta1"));
    }
}
