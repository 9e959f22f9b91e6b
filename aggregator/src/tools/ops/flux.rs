//! Flux operations: `reconcile_flux`, `suspend_flux`, `resume_flux` and
//! `recover_helmrelease`. Each patches the object at the version the server
//! serves for its kind, within `[mutations] flux_namespaces`, and reports the
//! object's state before and after (the controller's answer, watched for a
//! bounded time).

use std::sync::Arc;

use kube::api::{Api, DynamicObject};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{custom_api, get_object, merge_patch, request_token, watch, watch_budget};
use crate::assess::flux::{FluxState, assess};
use crate::cluster::Cluster;
use crate::cluster::kinds::CustomKind;
use crate::tools::args::Name;
use crate::tools::flux::{HELM, IMAGE, KUSTOMIZE, SOURCE};
use crate::tools::kube::cluster;
use crate::tools::{
    Call, ErrorCode, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset, label,
};

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

/// A source reconciled first (`withSource`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct SourceRequest {
    /// The source.
    pub resource: FluxRef,
    /// Its state after the request.
    pub after: FluxSnapshot,
    /// The controller recorded the request.
    pub handled: bool,
}

/// What `reconcile_flux` did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReconcileReport {
    /// The object.
    pub resource: FluxRef,
    /// The annotation set.
    pub annotation: String,
    /// Its value (the request token).
    pub token: String,
    /// The source reconciled first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRequest>,
    /// Before the request.
    pub before: FluxSnapshot,
    /// The last state seen.
    pub after: FluxSnapshot,
    /// The controller recorded the request (lastHandledReconcileAt = token).
    pub handled: bool,
    /// What the request cannot do here, and what would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl Render for ReconcileReport {
    fn text(&self) -> String {
        let mut t = format!(
            "reconcile requested: {} ({}), {}={}\n",
            self.resource.id(),
            self.resource.api_version,
            self.annotation,
            self.token
        );
        if let Some(s) = &self.source {
            t.push_str(&format!(
                "source {}: {} ({})\n",
                s.resource.id(),
                s.after.line(),
                if s.handled {
                    "handled"
                } else {
                    "not handled yet"
                }
            ));
        }
        t.push_str(&format!(
            "before: {}\nafter:  {}\n",
            self.before.line(),
            self.after.line()
        ));
        t.push_str(if self.handled {
            "the controller handled the request\n"
        } else {
            "the controller has not handled the request yet (it may be busy or down); get_flux_status shows it later\n"
        });
        if let Some(w) = &self.warning {
            t.push_str(&format!("WARNING: {w}\n"));
        }
        t
    }
}

/// What `suspend_flux` / `resume_flux` did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SuspendReport {
    /// The object.
    pub resource: FluxRef,
    /// spec.suspend now.
    pub suspended: bool,
    /// Whether it was already in that state (nothing changed).
    pub unchanged: bool,
    /// Before.
    pub before: FluxSnapshot,
    /// After.
    pub after: FluxSnapshot,
    /// The reconcile request sent with a resume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl Render for SuspendReport {
    fn changed_nothing(&self) -> bool {
        self.unchanged
    }

    fn text(&self) -> String {
        let verb = if self.suspended {
            "suspended"
        } else {
            "resumed"
        };
        let mut t = if self.unchanged {
            format!(
                "{} was already {verb}; nothing changed\n",
                self.resource.id()
            )
        } else {
            format!(
                "{verb}: {} ({})\n",
                self.resource.id(),
                self.resource.api_version
            )
        };
        t.push_str(&format!(
            "before: {}\nafter:  {}\n",
            self.before.line(),
            self.after.line()
        ));
        t
    }
}

/// How a release was recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryMethod {
    /// requestedAt and resetAt set to one token (helm-controller ≥ v0.37,
    /// API v2beta2 and v2): the counters reset and the action retried.
    Reset,
    /// Suspended, then resumed with a reconcile request (older APIs): the
    /// generation change makes helm-controller retry.
    SuspendResume,
}

/// What `recover_helmrelease` did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RecoverReport {
    /// The release.
    pub release: FluxRef,
    /// How.
    pub method: RecoveryMethod,
    /// The request token.
    pub token: String,
    /// Before: stuck (retries exhausted) or failing.
    pub before: FluxSnapshot,
    /// Each distinct state seen while watching, in order.
    pub transitions: Vec<FluxSnapshot>,
    /// The last state seen.
    pub after: FluxSnapshot,
    /// Ready again.
    pub recovered: bool,
    /// What was done, in words.
    pub message: String,
}

impl Render for RecoverReport {
    fn text(&self) -> String {
        let mut t = format!("{}\nbefore: {}\n", self.message, self.before.line());
        for s in &self.transitions {
            t.push_str(&format!("then:   {}\n", s.line()));
        }
        t.push_str(&format!("after:  {}\n", self.after.line()));
        t.push_str(if self.recovered {
            "recovered: Ready again\n"
        } else {
            "not Ready yet: the upgrade may still be running; get_flux_status shows it later\n"
        });
        t
    }
}

/// `reconcile_flux`.
pub fn reconcile_tool() -> ToolDef {
    ToolDef::mutating(
        Meta {
            name: "reconcile_flux",
            title: "Reconcile a Flux object",
            description: "Reconcile a Flux object (resource=type/namespace/name); before/after.",
            toolset: Toolset::Flux,
            hints: Hints::CHANGE,
        },
        |p, a: &ReconcileArgs| p.flux(&a.resource.namespace),
        reconcile,
    )
}

/// `suspend_flux`.
pub fn suspend_tool() -> ToolDef {
    ToolDef::mutating(
        Meta {
            name: "suspend_flux",
            title: "Suspend a Flux object",
            description: "Suspend a Flux object (resource=type/namespace/name).",
            toolset: Toolset::Flux,
            hints: Hints::CHANGE,
        },
        |p, a: &ResourceArgs| p.flux(&a.resource.namespace),
        suspend,
    )
}

/// `resume_flux`.
pub fn resume_tool() -> ToolDef {
    ToolDef::mutating(
        Meta {
            name: "resume_flux",
            title: "Resume a Flux object",
            description: "Resume a Flux object and request a reconcile.",
            toolset: Toolset::Flux,
            hints: Hints::CHANGE,
        },
        |p, a: &ResourceArgs| p.flux(&a.resource.namespace),
        resume,
    )
}

/// `recover_helmrelease`.
pub fn recover_tool() -> ToolDef {
    ToolDef::mutating(
        Meta {
            name: "recover_helmrelease",
            title: "Recover a stuck HelmRelease",
            description: "Recover a HelmRelease that exhausted its retries (reset + reconcile).",
            toolset: Toolset::Flux,
            hints: Hints::DISRUPT,
        },
        |p, a: &RecoverArgs| p.flux(&a.namespace),
        recover,
    )
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

async fn reconcile(
    ctx: Arc<ToolContext>,
    a: ReconcileArgs,
    call: Call,
) -> Result<ReconcileReport, ToolError> {
    let r = &a.resource;
    let c = cluster(&ctx)?;
    let (t, obj) = target(&ctx, r.kind.api(), &r.namespace, &r.name).await?;
    let before = t.snapshot(&obj);
    if before.suspended {
        return Err(ToolError::new(
            ErrorCode::Conflict,
            format!(
                "{} is suspended: a reconcile request would be ignored",
                t.reference.id()
            ),
            format!(
                "resume_flux resource={}/{}/{} resumes it and requests a reconcile",
                label_of(r.kind),
                r.namespace,
                r.name
            ),
        ));
    }
    let token = request_token();
    let budget = watch_budget(&ctx);
    let started = tokio::time::Instant::now();
    let source = if a.with_source {
        let (kind, ns, name) = source_of(&obj, r.kind, &r.namespace).ok_or_else(|| {
            ToolError::invalid(
                "withSource",
                format!(
                    "{} has no source reference labscope can reconcile",
                    t.reference.id()
                ),
            )
        })?;
        ctx.safety.policy.flux(&ns)?;
        let (st, _) = target(&ctx, kind, &ns, &name).await?;
        // The source gets a third of the watch, the object the rest: both
        // within the tool deadline.
        let (after, handled) = st.request(c, budget / 3, &call, &token).await?;
        Some(SourceRequest {
            resource: st.reference.clone(),
            after,
            handled,
        })
    } else {
        None
    };
    let (after, handled) = t
        .request(c, budget.saturating_sub(started.elapsed()), &call, &token)
        .await?;
    let warning = (r.kind == OpKind::HelmRelease && before.status == FluxState::Stuck && !after.ready).then(|| {
        format!(
            "this release is stalled (its retries are exhausted): helm-controller records a reconcile request but does not retry; \
             recover_helmrelease namespace={} name={} resets it and retries",
            r.namespace, r.name
        )
    });
    Ok(ReconcileReport {
        resource: t.reference,
        annotation: REQUESTED_AT.into(),
        token,
        source,
        before,
        after,
        handled,
        warning,
    })
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

/// (kind, namespace, name) of the source `obj` reconciles from.
fn source_of(
    obj: &DynamicObject,
    kind: OpKind,
    namespace: &str,
) -> Option<(CustomKind, String, String)> {
    let fields = crate::assess::flux::read_fields(obj).ok()?;
    let spec = &fields.spec;
    let reference = match kind {
        OpKind::Kustomization => spec.source_ref.as_ref()?,
        OpKind::HelmRelease if spec.chart_ref.is_some() => spec.chart_ref.as_ref()?,
        // As `flux reconcile hr --with-source`: the HelmChart the release
        // is built from (status.helmChart, else <namespace>-<name> in the
        // chart source's namespace), so a new chart version is pulled.
        OpKind::HelmRelease => {
            let (ns, name) = match fields
                .status
                .helm_chart
                .as_deref()
                .and_then(|h| h.split_once('/'))
            {
                Some((ns, name)) => (ns.to_string(), name.to_string()),
                None => (
                    match &spec.chart {
                        Some(crate::assess::flux::Chart::Template(c)) => c.spec.source_ref.as_ref(),
                        _ => None,
                    }
                    .and_then(|r| r.namespace.clone())
                    .unwrap_or_else(|| namespace.to_string()),
                    format!(
                        "{namespace}-{}",
                        obj.metadata.name.as_deref().unwrap_or_default()
                    ),
                ),
            };
            Name::new(&name).ok()?;
            Name::new(&ns).ok()?;
            return Some((source_kind("HelmChart")?, ns, name));
        }
        _ => return None,
    };
    let kind = source_kind(reference.kind.as_deref()?)?;
    let name = reference.name.clone();
    let ns = reference
        .namespace
        .clone()
        .unwrap_or_else(|| namespace.to_string());
    Name::new(&name).ok()?;
    Name::new(&ns).ok()?;
    Some((kind, ns, name))
}

async fn set_suspend(
    ctx: Arc<ToolContext>,
    r: Resource,
    suspend: bool,
    call: Call,
) -> Result<SuspendReport, ToolError> {
    let c = cluster(&ctx)?;
    let (t, obj) = target(&ctx, r.kind.api(), &r.namespace, &r.name).await?;
    let before = t.snapshot(&obj);
    if before.suspended == suspend {
        return Ok(SuspendReport {
            resource: t.reference,
            suspended: suspend,
            unchanged: true,
            after: before.clone(),
            before,
            token: None,
        });
    }
    let (after, token) = if suspend {
        let obj = t.patch(c, &json!({"spec": {"suspend": true}})).await?;
        (t.snapshot(&obj), None)
    } else {
        // As `flux resume`: unsuspend and ask for a reconcile in one patch.
        let token = request_token();
        t.patch(c, &json!({"spec": {"suspend": false}, "metadata": {"annotations": {REQUESTED_AT: token}}}))
            .await?;
        let what = format!("{} resume", t.reference.id());
        let (after, _) = watch(&call, &what, watch_budget(&ctx), || async {
            let snap = t.snapshot(&t.get(c).await?);
            let done = snap.last_handled.as_deref() == Some(token.as_str());
            Ok((snap, done))
        })
        .await?;
        (after, Some(token))
    };
    Ok(SuspendReport {
        resource: t.reference,
        suspended: suspend,
        unchanged: false,
        before,
        after,
        token,
    })
}

async fn suspend(
    ctx: Arc<ToolContext>,
    a: ResourceArgs,
    call: Call,
) -> Result<SuspendReport, ToolError> {
    set_suspend(ctx, a.resource, true, call).await
}

async fn resume(
    ctx: Arc<ToolContext>,
    a: ResourceArgs,
    call: Call,
) -> Result<SuspendReport, ToolError> {
    set_suspend(ctx, a.resource, false, call).await
}

/// Whether the served HelmRelease API has the reset annotation (v2beta2
/// and v2; v2beta1's controllers predate it).
pub fn has_reset(api_version: &str) -> bool {
    matches!(api_version.rsplit('/').next(), Some("v2" | "v2beta2"))
}

async fn recover(
    ctx: Arc<ToolContext>,
    a: RecoverArgs,
    call: Call,
) -> Result<RecoverReport, ToolError> {
    let c = cluster(&ctx)?;
    let (t, obj) = target(&ctx, OpKind::HelmRelease.api(), &a.namespace, &a.name).await?;
    let before = t.snapshot(&obj);
    let id = t.reference.id();
    if before.suspended {
        return Err(ToolError::new(
            ErrorCode::Conflict,
            format!("{id} is suspended; recovery would not run"),
            format!(
                "resume_flux resource=helmrelease/{}/{} resumes it (and retries)",
                a.namespace, a.name
            ),
        ));
    }
    if before.ready {
        return Err(ToolError::new(
            ErrorCode::Conflict,
            format!("{id} is Ready: there is nothing to recover"),
            format!(
                "reconcile_flux resource=helmrelease/{}/{} requests a plain reconcile",
                a.namespace, a.name
            ),
        ));
    }
    let token = request_token();
    let (method, patched) = if has_reset(&t.reference.api_version) {
        let patched = t
            .patch(
                c,
                &json!({"metadata": {"annotations": {REQUESTED_AT: token, RESET_AT: token}}}),
            )
            .await?;
        (RecoveryMethod::Reset, patched)
    } else {
        t.patch(c, &json!({"spec": {"suspend": true}})).await?;
        let resume =
            json!({"spec": {"suspend": false}, "metadata": {"annotations": {REQUESTED_AT: token}}});
        // The resume runs in a task of its own, retried once: a failed or
        // cancelled call must not leave the release suspended unsaid.
        let resumed = {
            let (t2, c2, resume) = (t.api.clone(), c.clone(), resume.clone());
            let (kind, ns, name) = (
                t.kind,
                t.reference.namespace.clone(),
                t.reference.name.clone(),
            );
            tokio::spawn(async move {
                let first = super::merge_patch(&c2, &t2, &kind, &ns, &name, &resume).await;
                match first {
                    Ok(obj) => Ok(obj),
                    Err(_) => super::merge_patch(&c2, &t2, &kind, &ns, &name, &resume).await,
                }
            })
            .await
        };
        let patched = match resumed {
            Ok(Ok(obj)) => obj,
            Ok(Err(e)) => {
                return Err(ToolError::new(
                    e.code,
                    format!(
                        "{id} was suspended for recovery, and resuming it failed twice — it is LEFT SUSPENDED: {}",
                        e.message
                    ),
                    format!(
                        "resume it: resume_flux resource=helmrelease/{}/{} (or `flux resume hr -n {} {}`)",
                        a.namespace, a.name, a.namespace, a.name
                    ),
                ));
            }
            Err(join) => {
                return Err(ToolError::new(
                    ErrorCode::AgentError,
                    format!(
                        "{id} was suspended for recovery and the resume task failed ({join}); it may be left suspended"
                    ),
                    format!(
                        "check get_flux_status; resume_flux resource=helmrelease/{}/{} resumes it",
                        a.namespace, a.name
                    ),
                ));
            }
        };
        (RecoveryMethod::SuspendResume, patched)
    };
    // Every distinct state seen after the patch, in order (the last one is
    // `after`).
    let first = t.snapshot(&patched);
    let seen = std::sync::Mutex::new(if same_state(&first, &before) {
        Vec::new()
    } else {
        vec![first]
    });
    let what = format!("{id} recovery");
    let (after, recovered) = watch(&call, &what, watch_budget(&ctx), || async {
        let snap = t.snapshot(&t.get(c).await?);
        let ready = snap.ready;
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.last().is_none_or(|last| !same_state(last, &snap)) {
            seen.push(snap.clone());
        }
        Ok((snap, ready))
    })
    .await?;
    let mut transitions = seen.into_inner().unwrap_or_else(|p| p.into_inner());
    transitions.pop();
    let how = match method {
        RecoveryMethod::Reset => format!(
            "recovery: set {REQUESTED_AT} and {RESET_AT} to {token} on {id} ({}): helm-controller resets the failure counters and retries the release",
            t.reference.api_version
        ),
        RecoveryMethod::SuspendResume => format!(
            "recovery: suspended then resumed {id} ({}, which predates {RESET_AT}) with {REQUESTED_AT}={token}: the generation change makes helm-controller retry",
            t.reference.api_version
        ),
    };
    Ok(RecoverReport {
        release: t.reference,
        method,
        token,
        before,
        transitions,
        after,
        recovered,
        message: how,
    })
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
