//! `recover_helmrelease`: Flux's recovery for a release that exhausted its
//! retries — `requestedAt` and `resetAt` with one token, or suspend then
//! resume where the served API predates `resetAt`.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use super::*;
use crate::tools::kube::cluster;
use crate::tools::ops::{request_token, watch, watch_budget};
use crate::tools::{
    Call, ErrorCode, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset,
};

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
        let patched = suspend_resume(&t, c, &token, &a).await?;
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

/// The recovery for an API without `resetAt`: suspend, then resume with a
/// reconcile request. The resume runs in a task of its own, retried once: a
/// failed or cancelled call must not leave the release suspended unsaid.
async fn suspend_resume(
    t: &Target,
    c: &Cluster,
    token: &str,
    a: &RecoverArgs,
) -> Result<DynamicObject, ToolError> {
    let id = t.reference.id();
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
    match resumed {
        Ok(Ok(obj)) => Ok(obj),
        Ok(Err(e)) => Err(ToolError::new(
            e.code,
            format!(
                "{id} was suspended for recovery, and resuming it failed twice — it is LEFT SUSPENDED: {}",
                e.message
            ),
            format!(
                "resume it: resume_flux resource=helmrelease/{}/{} (or `flux resume hr -n {} {}`)",
                a.namespace, a.name, a.namespace, a.name
            ),
        )),
        Err(join) => Err(ToolError::new(
            ErrorCode::AgentError,
            format!(
                "{id} was suspended for recovery and the resume task failed ({join}); it may be left suspended"
            ),
            format!(
                "check get_flux_status; resume_flux resource=helmrelease/{}/{} resumes it",
                a.namespace, a.name
            ),
        )),
    }
}
