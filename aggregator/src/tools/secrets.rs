//! `get_secrets_status`: External Secrets and their stores, each kind read
//! at the version the operator serves for it; failures caused by a store
//! that is down are grouped under that store.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use super::args::{Name, blank_as_none};
use super::kube::{
    cluster_in, failed_parts, failed_text, list_kinds, primary_failure, versions_of,
};
use super::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset, label};
pub use crate::assess::secrets::*;
use crate::cluster::Cluster;
use crate::cluster::kinds::CustomKind;

const ESO: &str = "external-secrets.io";
const EXTERNAL_SECRET: CustomKind = CustomKind::new(ESO, "ExternalSecret", "externalsecrets");
const SECRET_STORE: CustomKind = CustomKind::new(ESO, "SecretStore", "secretstores");
const CLUSTER_SECRET_STORE: CustomKind =
    CustomKind::new(ESO, "ClusterSecretStore", "clustersecretstores");

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Only this namespace.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub namespace: Option<Name>,
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_secrets_status",
            title: "External Secrets",
            description: "ExternalSecrets and stores; failures grouped under the failing store.",
            toolset: Toolset::Cluster,
            hints: Hints::READ,
        },
        run,
    )
}

async fn run(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<Secrets, ToolError> {
    let c = cluster_in(&ctx, a.namespace.as_deref()).await?;
    read(c, a.namespace.as_deref()).await
}

/// Reads the three kinds; fails only when ExternalSecrets cannot be read.
pub async fn read(c: &Cluster, namespace: Option<&str>) -> Result<Secrets, ToolError> {
    let mut failures = Vec::new();
    let kinds = [&CLUSTER_SECRET_STORE, &SECRET_STORE, &EXTERNAL_SECRET];
    let [cluster_stores, stores, secrets] = list_kinds(c, kinds, namespace, &mut failures).await;
    primary_failure(&mut failures, "ExternalSecret")?;
    let versions = versions_of(&kinds, &[&cluster_stores, &stores, &secrets]);
    let installed = !failures.is_empty()
        || [&cluster_stores, &stores, &secrets]
            .iter()
            .any(|l| l.installed());
    Ok(assess(
        installed,
        versions,
        cluster_stores.items(),
        stores.items(),
        secrets.items(),
        failed_parts(&failures),
    ))
}

impl Render for Secrets {
    fn text(&self) -> String {
        if !self.installed {
            return "External Secrets Operator: not installed (group external-secrets.io serves none of its kinds)\n".into();
        }
        let s = self.summary.as_ref().unwrap_or(&SecretsSummary {
            external_secrets: 0,
            ready: 0,
            failing: 0,
            stores: 0,
            stores_down: 0,
        });
        let mut text = format!(
            "External Secrets ({}): {} — {} of {} ready, {} store(s) down\n",
            self.api_version,
            label(&self.verdict),
            s.ready,
            s.external_secrets,
            s.stores_down
        );
        for rc in &self.root_causes {
            text.push_str(&format!(
                "store {} {} DOWN ({}: {}) — {} ExternalSecret(s) failing because of it, e.g. {}\n",
                rc.store.kind,
                rc.store.name,
                rc.reason,
                rc.message,
                rc.failing_external_secrets,
                rc.examples
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let explained: usize = self
            .root_causes
            .iter()
            .map(|r| r.failing_external_secrets)
            .sum();
        let others: Vec<&ExternalSecretRow> = self
            .external_secrets
            .iter()
            .filter(|r| !r.ready && !self.root_causes.iter().any(|rc| rc.store == r.store))
            .collect();
        for r in &others {
            text.push_str(&format!(
                "NOT ready {}/{} (store {}): {} {}\n",
                r.namespace, r.name, r.store.name, r.reason, r.message
            ));
        }
        if explained > 0 && others.is_empty() && explained < s.failing {
            text.push_str(&format!("{} more failing\n", s.failing - explained));
        }
        text.push_str(&failed_text(&self.failed_parts));
        text
    }
}
