//! `restart_deployment` ✎: a rolling restart of an allowlisted Deployment,
//! as `kubectl rollout restart` does it (the pod template's restartedAt).

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::FIELD_MANAGER;
use crate::cluster::Request;
use crate::tools::args::Name;
use crate::tools::kube::{api_error, cluster};
use crate::tools::{
    Call, ErrorCode, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset,
};

/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Arguments of `restart_deployment`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartArgs {
    /// Namespace.
    pub namespace: Name,
    /// The Deployment.
    pub deployment: Name,
}

/// What `restart_deployment` did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RestartReport {
    /// Namespace.
    pub namespace: String,
    /// Deployment.
    pub deployment: String,
    /// The annotation's new value.
    #[serde(rename = "restartedAt")]
    pub restarted_at: String,
    /// metadata.generation before and after (a rollout starts when it moves).
    #[serde(rename = "generationBefore")]
    pub generation_before: i64,
    /// After.
    #[serde(rename = "generationAfter")]
    pub generation_after: i64,
    /// Desired replicas.
    pub replicas: i32,
}

impl Render for RestartReport {
    fn text(&self) -> String {
        format!(
            "restarted Deployment {}/{}: {RESTARTED_AT}={} (generation {} → {}, {} replica(s) roll)\n{}",
            self.namespace,
            self.deployment,
            self.restarted_at,
            self.generation_before,
            self.generation_after,
            self.replicas,
            if self.replicas == 0 {
                "note: it is scaled to zero, so no pod restarts\n"
            } else {
                ""
            }
        )
    }
}

/// `restart_deployment`.
pub fn restart_tool() -> ToolDef {
    ToolDef::mutating(
        Meta {
            name: "restart_deployment",
            title: "Restart a Deployment",
            description: "Rolling restart of an allowlisted Deployment.",
            toolset: Toolset::Cluster,
            hints: Hints::DISRUPT,
        },
        |p, a: &RestartArgs| p.restart(&a.namespace, &a.deployment),
        restart,
    )
}

async fn restart(
    ctx: Arc<ToolContext>,
    a: RestartArgs,
    _call: Call,
) -> Result<RestartReport, ToolError> {
    let c = cluster(&ctx)?;
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), &a.namespace);
    let before = c
        .get_opt(
            &api,
            &a.deployment,
            Request::new("get", "deployments", Some(&a.namespace)),
        )
        .await
        .map_err(api_error)?
        .ok_or_else(|| {
            ToolError::new(
                ErrorCode::NotFound,
                format!("Deployment {}/{} does not exist", a.namespace, a.deployment),
                "check the name (describe_resource kind=deployment)",
            )
        })?;
    // Nanoseconds: a second restart within the same second still changes
    // the template (kubectl's whole seconds would make it a no-op).
    let at = super::request_token();
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let after = c
        .bounded(
            Request::new("patch", "deployments", Some(&a.namespace)),
            api.patch(&a.deployment, &params, &Patch::Merge(&patch)),
        )
        .await
        .map_err(api_error)?;
    Ok(RestartReport {
        namespace: a.namespace.to_string(),
        deployment: a.deployment.to_string(),
        restarted_at: at,
        generation_before: before.metadata.generation.unwrap_or_default(),
        generation_after: after.metadata.generation.unwrap_or_default(),
        replicas: after.spec.and_then(|s| s.replicas).unwrap_or(1),
    })
}
