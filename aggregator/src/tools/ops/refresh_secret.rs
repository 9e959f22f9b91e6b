//! `refresh_secret` ✎: External Secrets' force-sync annotation on one
//! ExternalSecret, and its refresh time before and after.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{custom_api, get_object, merge_patch, watch, watch_budget};
use crate::cluster::kinds::CustomKind;
use crate::tools::args::Name;
use crate::tools::kube::cluster;
use crate::tools::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};

/// External Secrets: any new value makes the operator sync now.
pub const FORCE_SYNC: &str = "force-sync";

const EXTERNAL_SECRET: CustomKind =
    CustomKind::new("external-secrets.io", "ExternalSecret", "externalsecrets");

/// Arguments of `refresh_secret`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshArgs {
    /// Namespace.
    pub namespace: Name,
    /// The ExternalSecret.
    pub name: Name,
}

/// What `refresh_secret` did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RefreshReport {
    /// Namespace.
    pub namespace: String,
    /// The ExternalSecret.
    pub name: String,
    /// The version it was patched at.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// The annotation set.
    pub annotation: String,
    /// Its value.
    pub value: String,
    /// status.refreshTime before.
    #[serde(rename = "refreshTimeBefore")]
    pub refresh_time_before: Option<String>,
    /// status.refreshTime after.
    #[serde(rename = "refreshTimeAfter")]
    pub refresh_time_after: Option<String>,
    /// The operator synced it (refreshTime moved).
    pub refreshed: bool,
    /// Ready after, with its reason.
    pub ready: bool,
    /// The Ready condition's reason and message after.
    pub reason: String,
    /// Message.
    pub message: String,
}

impl Render for RefreshReport {
    fn text(&self) -> String {
        let mut t = format!(
            "refresh requested: ExternalSecret {}/{} ({}), {}={}\n",
            self.namespace, self.name, self.api_version, self.annotation, self.value
        );
        t.push_str(&format!(
            "refreshTime: {} → {}\n",
            self.refresh_time_before.as_deref().unwrap_or("never"),
            self.refresh_time_after.as_deref().unwrap_or("never")
        ));
        t.push_str(&if self.refreshed {
            format!(
                "synced; ready={} {} {}\n",
                self.ready, self.reason, self.message
            )
        } else {
            "not synced yet: the operator may be busy or its store down (get_secrets_status)\n"
                .to_string()
        });
        t
    }
}

/// `refresh_secret`.
pub fn refresh_secret_tool() -> ToolDef {
    ToolDef::mutating(
        Meta {
            name: "refresh_secret",
            title: "Refresh an ExternalSecret",
            description: "Sync an ExternalSecret now (force-sync).",
            toolset: Toolset::Cluster,
            hints: Hints::CHANGE,
        },
        |p, a: &RefreshArgs| p.secret(&a.namespace),
        refresh,
    )
}

async fn refresh(
    ctx: Arc<ToolContext>,
    a: RefreshArgs,
    call: Call,
) -> Result<RefreshReport, ToolError> {
    let c = cluster(&ctx)?;
    let (api, api_version) = custom_api(c, &EXTERNAL_SECRET, &a.namespace).await?;
    let before = get_object(c, &api, &EXTERNAL_SECRET, &a.namespace, &a.name).await?;
    let refresh_time = |o: &kube::api::DynamicObject| {
        crate::cluster::kinds::fields::<crate::tools::secrets::wire::ExternalSecret>(o)
            .ok()
            .and_then(|e| e.status.refresh_time)
    };
    let was = refresh_time(&before);
    // A new value each call, to the nanosecond (two calls in one second
    // would otherwise write the same value and sync once).
    let value = super::request_token();
    merge_patch(
        c,
        &api,
        &EXTERNAL_SECRET,
        &a.namespace,
        &a.name,
        &json!({"metadata": {"annotations": {FORCE_SYNC: value}}}),
    )
    .await?;
    let what = format!("ExternalSecret {}/{} sync", a.namespace, a.name);
    let (after, refreshed) = watch(
        &call,
        &what,
        watch_budget(&ctx).min(std::time::Duration::from_secs(10)),
        || async {
            let o = get_object(c, &api, &EXTERNAL_SECRET, &a.namespace, &a.name).await?;
            let moved = refresh_time(&o).is_some() && refresh_time(&o) != was;
            Ok((o, moved))
        },
    )
    .await?;
    let (ready, reason, message) = crate::cluster::kinds::condition(&after.data, "Ready")
        .map(|(s, r, m)| (s == "True", r, m))
        .unwrap_or((false, String::new(), String::new()));
    Ok(RefreshReport {
        namespace: a.namespace.to_string(),
        name: a.name.to_string(),
        api_version,
        annotation: FORCE_SYNC.into(),
        value,
        refresh_time_before: was,
        refresh_time_after: refresh_time(&after),
        refreshed,
        ready,
        reason,
        message,
    })
}
