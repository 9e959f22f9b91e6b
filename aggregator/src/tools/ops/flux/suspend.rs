//! `suspend_flux` and `resume_flux`: `spec.suspend`, and for a resume a
//! reconcile request, as `flux resume` does.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use super::*;
use crate::tools::kube::cluster;
use crate::tools::ops::{request_token, watch, watch_budget};
use crate::tools::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};

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
