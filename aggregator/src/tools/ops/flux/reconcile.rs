//! `reconcile_flux`: a reconcile request (and its source's first, with
//! `withSource`), the controller's answer watched for a bounded time.

use std::sync::Arc;

use kube::api::DynamicObject;
use schemars::JsonSchema;
use serde::Serialize;

use super::*;
use crate::assess::flux::FluxState;
use crate::cluster::kinds::CustomKind;
use crate::tools::args::Name;
use crate::tools::kube::cluster;
use crate::tools::ops::{request_token, watch_budget};
use crate::tools::{
    Call, ErrorCode, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset,
};

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
