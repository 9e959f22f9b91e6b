//! Operations: the tools that change something. Each is served only when
//! mutations are on, passes the global gate and its own allowlist
//! (`crate::safety`), is written to the audit log (`tools::call`), uses the
//! API version the server serves for its kind, and changes objects with
//! merge patches — never a read-modify-write that could undo a concurrent
//! change.

pub mod flux;
pub mod refresh_secret;
pub mod restart_deployment;
pub mod trigger_backup;

use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use super::kube::api_error;
use super::{Call, ErrorCode, ToolContext, ToolDef, ToolError};
use crate::cluster::kinds::{CustomKind, Resolution};
use crate::cluster::{Cluster, Request};

/// Every operation tool, in listing order.
pub fn tools() -> Vec<ToolDef> {
    vec![
        restart_deployment::restart_tool(),
        trigger_backup::trigger_tool("trigger_backup"),
        trigger_backup::trigger_tool("trigger_cronjob"),
        refresh_secret::refresh_secret_tool(),
        flux::reconcile_tool(),
        flux::suspend_tool(),
        flux::resume_tool(),
        flux::recover_tool(),
    ]
}

/// The field manager labscope's patches are recorded under.
pub const FIELD_MANAGER: &str = "labscope";

/// A custom kind's API in `namespace`, at the version the server serves
/// for it; a kind that is not served is `not_found`, naming why.
pub async fn custom_api(
    c: &Cluster,
    kind: &CustomKind,
    namespace: &str,
) -> Result<(Api<DynamicObject>, String), ToolError> {
    match c.resolve(kind).await.map_err(api_error)? {
        Resolution::Served(served) => Ok((
            Api::namespaced_with(c.client.clone(), namespace, &served.resource),
            served.resource.api_version.clone(),
        )),
        Resolution::Absent(why) => Err(ToolError::new(
            ErrorCode::NotFound,
            format!("{} ({}) cannot be changed: {why}", kind.kind, kind.group),
            format!(
                "install the operator that serves {}, or check the kind",
                kind.plural
            ),
        )),
    }
}

/// Gets `name`, or `not_found` naming it.
pub async fn get_object(
    c: &Cluster,
    api: &Api<DynamicObject>,
    kind: &CustomKind,
    namespace: &str,
    name: &str,
) -> Result<DynamicObject, ToolError> {
    c.get_opt(api, name, Request::new("get", kind.plural, Some(namespace)))
        .await
        .map_err(api_error)?
        .ok_or_else(|| {
            ToolError::new(
                ErrorCode::NotFound,
                format!("{} {namespace}/{name} does not exist", kind.kind),
                "check the name and namespace (get_flux_status lists Flux objects)",
            )
        })
}

/// Applies a JSON merge patch to `name`.
pub async fn merge_patch(
    c: &Cluster,
    api: &Api<DynamicObject>,
    kind: &CustomKind,
    namespace: &str,
    name: &str,
    patch: &Value,
) -> Result<DynamicObject, ToolError> {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    c.bounded(
        Request::new("patch", kind.plural, Some(namespace)),
        api.patch(name, &params, &Patch::Merge(patch)),
    )
    .await
    .map_err(api_error)
}

/// How long an operation watches for its effect: a bounded part of the
/// tool deadline, leaving time to answer.
pub fn watch_budget(ctx: &ToolContext) -> Duration {
    ctx.settings
        .tool_deadline
        .saturating_sub(Duration::from_secs(3))
        .clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// Polls `check` every half second (reporting progress) until it returns
/// `Some` or `budget` has passed; the last observation either way.
pub async fn watch<T, F, Fut>(
    call: &Call,
    what: &str,
    budget: Duration,
    mut check: F,
) -> Result<(T, bool), ToolError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(T, bool), ToolError>>,
{
    let started = tokio::time::Instant::now();
    let total = budget.as_secs_f64();
    loop {
        let (seen, done) = check().await?;
        let elapsed = started.elapsed();
        if done || elapsed >= budget {
            return Ok((seen, done));
        }
        call.progress(
            elapsed.as_secs_f64().min(total),
            Some(total),
            format!(
                "{what}: waiting ({:.0} s of at most {total:.0} s)",
                elapsed.as_secs_f64()
            ),
        );
        tokio::time::sleep(Duration::from_millis(500).min(budget - elapsed)).await;
    }
}

/// The token Flux and `kubectl` use for requests: the time, RFC 3339 with
/// nanoseconds (unique per call).
pub fn request_token() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = crate::cluster::time::rfc3339(now.as_secs() as i64);
    format!("{}.{:09}Z", secs.trim_end_matches('Z'), now.subsec_nanos())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_rfc3339_with_nanoseconds() {
        let t = super::request_token();
        assert!(t.ends_with('Z') && t.contains('.') && t.len() >= 30, "{t}");
        assert!(crate::cluster::time::parse_rfc3339(&t).is_some(), "{t}");
    }
}
