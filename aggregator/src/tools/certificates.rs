//! `get_certificate_status`: cert-manager Certificates with expiry, renewal
//! and readiness; for a certificate that is not ready, the failing
//! CertificateRequest → Order → Challenge chain, linked by owner references.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use super::args::{Int, Name, blank_as_none};
use super::kube::{
    cluster_in, failed_parts, failed_text, list_kinds, primary_failure, versions_of,
};
use super::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset, label};
pub use crate::assess::certificates::*;
use crate::cluster::Cluster;
use crate::cluster::kinds::CustomKind;
use crate::cluster::time::now;

const CERT_MANAGER: &str = "cert-manager.io";
const ACME: &str = "acme.cert-manager.io";
const CERTIFICATE: CustomKind = CustomKind::new(CERT_MANAGER, "Certificate", "certificates");
const CERTIFICATE_REQUEST: CustomKind =
    CustomKind::new(CERT_MANAGER, "CertificateRequest", "certificaterequests");
const ORDER: CustomKind = CustomKind::new(ACME, "Order", "orders");
const CHALLENGE: CustomKind = CustomKind::new(ACME, "Challenge", "challenges");

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Args {
    /// Only this namespace.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub namespace: Option<Name>,
    /// Expiring means within this many days (or the certificate's own
    /// renewal window, if shorter).
    #[serde(default)]
    pub expiring_within_days: Int<1, 365, 30>,
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_certificate_status",
            title: "Certificates",
            description: "cert-manager certificates: expiry, readiness, failing issuance chains.",
            toolset: Toolset::Cluster,
            hints: Hints::READ,
        },
        run,
    )
}

async fn run(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<Certificates, ToolError> {
    let c = cluster_in(&ctx, a.namespace.as_deref()).await?;
    read(
        c,
        a.namespace.as_deref(),
        a.expiring_within_days.get(),
        now(ctx.settings.now),
    )
    .await
}

/// Reads the four kinds; fails only when Certificates cannot be read.
pub async fn read(
    c: &Cluster,
    ns: Option<&str>,
    within: i64,
    now_s: i64,
) -> Result<Certificates, ToolError> {
    let mut failures = Vec::new();
    let kinds = [&CERTIFICATE, &CERTIFICATE_REQUEST, &ORDER, &CHALLENGE];
    let [certs, requests, orders, challenges] = list_kinds(c, kinds, ns, &mut failures).await;
    primary_failure(&mut failures, "Certificate")?;
    let versions = versions_of(&kinds, &[&certs, &requests, &orders, &challenges]);
    Ok(assess(
        certs.installed(),
        versions,
        [
            certs.items(),
            requests.items(),
            orders.items(),
            challenges.items(),
        ],
        failed_parts(&failures),
        within,
        now_s,
    ))
}

impl Render for Certificates {
    fn text(&self) -> String {
        if !self.installed {
            return "cert-manager: not installed (group cert-manager.io does not serve Certificate)\n".into();
        }
        let s = &self.summary;
        let mut text = format!(
            "certificates ({}): {} — {} of {} ready, {} expiring within {} d, {} renewal overdue\n",
            self.api_version,
            label(&self.verdict),
            s.ready,
            s.total,
            s.expiring,
            self.expiring_within_days,
            s.renewal_overdue
        );
        for r in self
            .certificates
            .iter()
            .filter(|r| !r.ready || r.expiring || r.renewal_overdue_days.is_some())
        {
            text.push_str(&format!(
                "{}/{}: {} {} days left{} — {}\n",
                r.namespace,
                r.name,
                if r.ready { "ready" } else { "NOT ready" },
                r.days_left
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "?".into()),
                r.renewal_overdue_days
                    .map(|d| format!(", renewal overdue {d} d"))
                    .unwrap_or_default(),
                r.hint.as_deref().unwrap_or(&r.message)
            ));
            for step in &r.chain {
                text.push_str(&format!(
                    "  {} {}: {}\n",
                    step.kind,
                    step.name,
                    [&step.state, &step.reason, &step.message]
                        .into_iter()
                        .flatten()
                        .filter(|x| !x.is_empty())
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" — ")
                ));
            }
        }
        text.push_str(&failed_text(&self.failed_parts));
        text
    }
}
