//! `trace_request`: the path of a request through the cluster, hop by hop,
//! each with a verdict — DNS (each configured resolver's answer), who owns
//! the address, the Ingress rule (or Gateway API HTTPRoute) for host and path, the backend Service,
//! its ready endpoints, the pods behind them, the node's NAT path for the
//! Service (kube-proxy's chains with their packet counters), the kernel's
//! route to the pod, and TCP connects to the pod and to the Service — ending
//! with the first failing hop and what to do. A hop that times out or
//! cannot be read says so; the others still answer.

use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::node_agent;
use crate::agents::AgentHandle;
use crate::cluster::kinds::CustomKind;
use crate::tools::args::{Range, Text, blank_as_none};
use crate::tools::kube::{api_error, cluster_in};
use crate::tools::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};

const HTTPROUTE: CustomKind =
    CustomKind::new("gateway.networking.k8s.io", "HTTPRoute", "httproutes");

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Args {
    /// The URL a browser opens (https://immich.lab.example/api/ping).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub url: Option<Text>,
    /// Or a host name (with port).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub host: Option<Text>,
    /// Port with host (default 443).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub port: Option<Range<1, 65535>>,
    /// Node whose agent asks DNS and probes (default: the node that owns
    /// the address, else the first agent).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub from_node: Option<Text>,
}

/// One hop.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Hop {
    /// dns, owner, ingress, service, endpoints, pods, nat, route,
    /// connect_pod, connect_service.
    pub hop: String,
    /// ok, warning, failed or skipped.
    pub verdict: String,
    /// What was found.
    pub detail: String,
    /// The facts behind it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

/// The trace.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    /// Host traced.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path.
    pub path: String,
    /// Node that asked DNS and probed ("" when no agent was usable).
    pub node: String,
    /// ok, or failed at `failingHop`.
    pub verdict: String,
    /// The first hop that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_hop: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hint: String,
    /// Hops in order.
    pub hops: Vec<Hop>,
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "trace_request",
            title: "Trace a request",
            description: "Where a request to a URL dies: DNS, address owner, Ingress rule, Service, endpoints, pods, NAT, route, TCP — per hop.",
            toolset: Toolset::Cluster,
            hints: Hints::READ,
        },
        run,
    )
}

fn hop(name: &str, verdict: &str, detail: impl Into<String>, evidence: Vec<String>) -> Hop {
    Hop {
        hop: name.into(),
        verdict: verdict.into(),
        detail: detail.into(),
        evidence,
    }
}

/// (host, port, path) of the arguments.
fn target(a: &Args) -> Result<(String, u16, String), ToolError> {
    if let Some(u) = &a.url {
        let parsed = url::Url::parse(u.as_str()).map_err(|e| {
            ToolError::invalid("url", format!("{:?} is not a URL: {e}", u.as_str()))
        })?;
        let host = parsed
            .host_str()
            .ok_or_else(|| ToolError::invalid("url", "has no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let port = parsed.port_or_known_default().ok_or_else(|| {
            ToolError::invalid("url", "no port and no known default for its scheme")
        })?;
        return Ok((host, port, parsed.path().to_string()));
    }
    match &a.host {
        Some(h) => Ok((
            h.as_str().to_string(),
            a.port.map(|p| p.get() as u16).unwrap_or(443),
            "/".into(),
        )),
        None => Err(ToolError::invalid("url", "give url, or host (and port)")),
    }
}

mod probes;
mod routes;
mod view;

use probes::{dns_hop, node_hops};
use view::{backend_hops, owner_hop, read_cluster};

async fn run(ctx: Arc<ToolContext>, a: Args, call: Call) -> Result<Trace, ToolError> {
    let (host, port, path) = target(&a)?;
    let c = cluster_in(&ctx, None).await?;
    let view = call
        .ticking(
            "reading Ingresses, Services, EndpointSlices and pods",
            ctx.settings.agent_deadline * 3,
            read_cluster(c),
        )
        .await
        .map_err(api_error)?;
    let deadline = ctx.settings.agent_deadline.max(Duration::from_secs(5));
    // The node that asks: the one named, else (after DNS) the address's.
    let named = match &a.from_node {
        Some(n) => Some(node_agent(&ctx, "fromNode", n.as_str()).await?),
        None => None,
    };
    let any_agent = || ctx.pool.all().into_iter().next();
    let mut hops = Vec::new();
    // 1. DNS, 2. the address's owner.
    let asker = named.clone().or_else(any_agent);
    let (dns, addresses) = dns_hop(&ctx, &view, &host, asker.as_ref(), deadline).await;
    hops.push(dns);
    let (owner, owner_node) = owner_hop(&view, &addresses);
    hops.push(owner);
    let prober: Option<AgentHandle> = match (&named, &owner_node) {
        (Some(n), _) => Some(n.clone()),
        (None, Some(node)) => ctx.pool.get(node).or_else(any_agent),
        (None, None) => any_agent(),
    };
    // 3-6. Ingress rule, Service, endpoints, pods.
    if let Some(backend) = backend_hops(&view, &host, &path, &mut hops) {
        // 7-9. On the node: NAT path, route and connects.
        node_hops(prober.as_ref(), &backend, deadline, &mut hops).await;
    }
    Ok(finish(host, port, path, prober, hops))
}

fn finish(
    host: String,
    port: u16,
    path: String,
    prober: Option<AgentHandle>,
    hops: Vec<Hop>,
) -> Trace {
    let mut failing = hops.iter().find(|h| h.verdict == "failed");
    // No ready endpoints because the pods crash: the pods are the cause.
    if failing.is_some_and(|h| h.hop == "endpoints")
        && let Some(pods) = hops
            .iter()
            .find(|h| h.hop == "pods" && h.verdict == "failed")
        && pods.detail.contains("CrashLoopBackOff")
    {
        failing = Some(pods);
    }
    let hint = match failing.map(|h| h.hop.as_str()) {
        Some("dns") => {
            "fix the DNS record (Pi-hole local DNS / Unbound) so every resolver returns the ingress address"
        }
        Some("owner") => {
            "point the name at a node or the ingress controller's LoadBalancer address"
        }
        Some("ingress") => "add an Ingress rule for this host and path (kubectl get ingress -A)",
        Some("service") => "create the backend Service or fix the Ingress's service name/port",
        Some("endpoints") => {
            "the Service's pods are not ready or its selector matches none: look at the pods hop"
        }
        Some("pods") => "read the pod's logs and events (get_pod_logs, describe_resource)",
        Some("nat") => {
            "kube-proxy has not programmed the Service on this node: check kube-proxy/k3s logs there"
        }
        Some("route") => {
            "the node has no route to the pod network: check flannel/CNI routes (explain_route)"
        }
        Some("connect_pod") => {
            "the pod does not accept connections on its port: check its container port and readiness"
        }
        Some("connect_service") => {
            "the Service address does not connect while the pod does: check kube-proxy's rules (get_iptables_rules)"
        }
        _ => "",
    };
    Trace {
        verdict: if failing.is_some() {
            "failed".into()
        } else {
            "ok".into()
        },
        failing_hop: failing.map(|h| h.hop.clone()),
        hint: hint.into(),
        host,
        port,
        path,
        node: prober.map(|a| a.name.clone()).unwrap_or_default(),
        hops,
    }
}

impl Render for Trace {
    fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = format!("trace {}:{}{}", self.host, self.port, self.path);
        if !self.node.is_empty() {
            let _ = write!(out, " from node {}", self.node);
        }
        let _ = writeln!(out, ": {}", self.verdict);
        for h in &self.hops {
            let _ = writeln!(out, "  {:<16} {:<8} {}", h.hop, h.verdict, h.detail);
            for e in &h.evidence {
                let _ = writeln!(out, "  {:<16} {:<8}   {e}", "", "");
            }
        }
        if let Some(f) = &self.failing_hop {
            let _ = writeln!(out, "first failing hop: {f} — {}", self.hint);
        }
        out
    }
}

#[cfg(test)]
mod tests;
