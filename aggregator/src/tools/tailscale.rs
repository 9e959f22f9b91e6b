//! `get_tailscale_status`: Tailscale Connectors (health from their
//! `ConnectorReady` condition — they never set `Ready`), exit node, routes,
//! ProxyClasses and the operator's pods. A failure to list Connectors is an
//! error, never "0 connectors".

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use schemars::JsonSchema;
use serde::Deserialize;

use super::kube::{
    FailedPart, cluster, failed_parts, failed_text, list_kinds, primary_failure, versions_of,
};
use super::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset, label};
pub use crate::assess::tailscale::*;
use crate::cluster::kinds::CustomKind;
use crate::cluster::{Cluster, Request};

const TAILSCALE: &str = "tailscale.com";
const CONNECTOR: CustomKind = CustomKind::new(TAILSCALE, "Connector", "connectors");
const PROXY_CLASS: CustomKind = CustomKind::new(TAILSCALE, "ProxyClass", "proxyclasses");

/// No arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_tailscale_status",
            title: "Tailscale",
            description: "Tailscale Connectors, exit node, routes, ProxyClasses, operator pods.",
            toolset: Toolset::Cluster,
            hints: Hints::READ,
        },
        run,
    )
}

async fn run(ctx: Arc<ToolContext>, _a: Args, _call: Call) -> Result<Tailscale, ToolError> {
    let c = cluster(&ctx)?;
    read(c, &ctx.settings.tailscale_namespace).await
}

/// Reads Connectors, ProxyClasses and the operator's pods; fails only when
/// Connectors cannot be read.
pub async fn read(c: &Cluster, operator_ns: &str) -> Result<Tailscale, ToolError> {
    let mut failures = Vec::new();
    let [connectors, classes] =
        list_kinds(c, [&CONNECTOR, &PROXY_CLASS], None, &mut failures).await;
    primary_failure(&mut failures, "Connector")?;
    let versions = versions_of(&[&CONNECTOR, &PROXY_CLASS], &[&connectors, &classes]);
    let installed = !failures.is_empty() || connectors.installed() || classes.installed();
    let mut failed = failed_parts(&failures);
    let pods = if installed {
        let api: Api<Pod> = Api::namespaced(c.client.clone(), operator_ns);
        match c
            .list(
                &api,
                &ListParams::default(),
                Request::new("list", "pods", Some(operator_ns)),
            )
            .await
        {
            Ok(p) => p,
            Err(e) => {
                failed.push(FailedPart::new("operator pods", &e));
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    Ok(assess(
        installed,
        versions,
        connectors.items(),
        classes.items(),
        &pods,
        operator_ns,
        failed,
    ))
}

impl Render for Tailscale {
    fn text(&self) -> String {
        if !self.installed {
            return "Tailscale operator: not installed (group tailscale.com serves neither Connector nor ProxyClass)\n"
                .into();
        }
        let ready_pods = self.pods.iter().filter(|p| p.ready).count();
        let mut text = format!(
            "Tailscale: {} — {} connector(s), {} proxy class(es), {} of {} operator pod(s) ready in {}\n",
            label(&self.verdict),
            self.connectors.len(),
            self.proxy_classes.len(),
            ready_pods,
            self.pods.len(),
            self.operator_namespace
        );
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        for c in &self.connectors {
            let exit = match (c.exit_node, c.is_exit_node) {
                (true, Some(true)) => "; exit node",
                (true, _) => "; exit node requested, not acting as one",
                (false, _) => "",
            };
            text.push_str(&format!(
                "connector {}: {} ({}: {}){exit}; hostname {}, tailnet {}; routes advertised {}, active {}{}\n",
                c.name,
                if c.ready { "ready" } else { "NOT ready" },
                c.reason,
                c.message,
                c.hostname.as_deref().unwrap_or("-"),
                list(&c.tailnet_ips),
                list(&c.advertised_routes),
                list(&c.active_routes),
                c.proxy_class
                    .as_ref()
                    .map(|p| format!("; proxy class {p}"))
                    .unwrap_or_default(),
            ));
        }
        // Connectors are said above; the rest of the problems here.
        for (object, finding) in self.problems() {
            if !object.starts_with("connector/") {
                text.push_str(&finding);
                text.push('\n');
            }
        }
        text.push_str(&failed_text(&self.failed_parts));
        text
    }
}
