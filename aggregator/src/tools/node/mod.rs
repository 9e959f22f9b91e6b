//! Node tools, answered by the agents: `list_nodes` (nodes.rs),
//! `get_node_networking` (networking.rs), `get_iptables_rules`
//! (firewall.rs), `get_nft_ruleset` (nft.rs), `get_conntrack_entries`
//! (conntrack.rs),
//! `test_pod_connectivity`, `curl_ingress` and `test_dns_query` (probes.rs),
//! `check_network_mesh` (mesh.rs), `explain_route` (route.rs), `what_changed` (changes.rs), `trace_request` (trace.rs, a cluster tool). Argument names are the predecessor's, so
//! existing clients keep working. Here: reaching a node's agent and turning
//! its answers and failures into tool results.

mod changes;
mod conntrack;
mod diagnose;
mod firewall;
mod mesh;
mod networking;
mod nft;
mod nodes;
mod probes;
mod route;
mod trace;

use std::time::Duration;

use base64::Engine;
use labscope_proto::v1 as pb;

use super::{ErrorCode, ToolContext, ToolDef, ToolError};
use crate::agents::fanout::ask_one;
use crate::agents::{AgentHandle, NodeOutcome, NodeResult};

/// The node tools, in listing order.
pub fn tools() -> Vec<ToolDef> {
    vec![
        nodes::tool(),
        networking::tool(),
        firewall::tool(),
        nft::tool(),
        route::tool(),
        changes::tool(),
        trace::tool(),
        conntrack::tool(),
        probes::connectivity_tool(),
        probes::curl_tool(),
        probes::dns_tool(),
        mesh::tool(),
        diagnose::tool(),
    ]
}

/// "nodes with an agent: a, b" (or that none has one, and why discovery
/// failed when it did), for hints.
fn with_agents(ctx: &ToolContext) -> String {
    let names = ctx.pool.names();
    let discovery = ctx.pool.discovery();
    let mut out = if names.is_empty() {
        "no node has a usable labscope-agent".to_string()
    } else {
        format!("nodes with an agent: {}", names.join(", "))
    };
    if let Some((message, hint)) = discovery.error {
        out.push_str(&format!(" (agent discovery failed: {message}; {hint})"));
    }
    out
}

/// The agent of `node`, or why there is none (`arg` is the tool's argument
/// that named it): `no_agent` when the node exists (in the cluster, or as a
/// discovered agent pod that is not ready) without a usable agent,
/// `unknown_node` when there is no such node. Either names the nodes that
/// have agents.
async fn node_agent(ctx: &ToolContext, arg: &str, node: &str) -> Result<AgentHandle, ToolError> {
    if let Some(agent) = ctx.pool.get(node) {
        return Ok(agent);
    }
    if let Some(p) = ctx
        .pool
        .discovery()
        .problems
        .into_iter()
        .find(|p| p.node == node)
    {
        return Err(ToolError::new(
            ErrorCode::NoAgent,
            format!(
                "node {node:?} has no usable agent: {} ({})",
                p.reason, p.pod
            ),
            format!(
                "check the labscope-agent DaemonSet pod on that node (kubectl describe pod); {}",
                with_agents(ctx)
            ),
        ));
    }
    // A node of the cluster without an agent pod is not an unknown node.
    if let Some(c) = &ctx.cluster
        && let Ok(nodes) = crate::cluster::nodes::list(c).await
    {
        if nodes.iter().any(|n| n.name == node) {
            return Err(ToolError::new(
                ErrorCode::NoAgent,
                format!("node {node:?} has no labscope-agent pod"),
                format!(
                    "the labscope-agent DaemonSet does not run there (a taint it does not tolerate? \
                     kubectl -n labscope get pods -o wide); {}",
                    with_agents(ctx)
                ),
            ));
        }
        let all: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(ToolError::new(
            ErrorCode::UnknownNode,
            format!("argument {arg:?}: the cluster has no node {node:?}"),
            format!("nodes: {}; {}", all.join(", "), with_agents(ctx)),
        ));
    }
    Err(ToolError::new(
        ErrorCode::UnknownNode,
        format!("argument {arg:?}: no agent for node {node:?}"),
        format!("{}; list_nodes shows each agent's status", with_agents(ctx)),
    ))
}

/// The error when not one agent is known: nothing to ask, probe from or
/// probe between.
fn no_agents(ctx: &ToolContext, what: &str) -> ToolError {
    let problems: Vec<String> = ctx
        .pool
        .discovery()
        .problems
        .into_iter()
        .map(|p| format!("{}: {}", p.node, p.reason))
        .collect();
    let mut message = format!("{}, so there is {what}", with_agents(ctx));
    if !problems.is_empty() {
        message.push_str(&format!(" (not ready: {})", problems.join("; ")));
    }
    ToolError::new(
        ErrorCode::NoAgent,
        message,
        "the labscope-agent DaemonSet runs one per node: kubectl -n labscope get daemonset,pods -o wide; \
         list_nodes shows each node",
    )
}

/// How the agent's request fields are called in this tool's arguments, so
/// that an INVALID_ARGUMENT names what the caller sent.
type FieldNames = &'static [(&'static str, &'static str)];

/// Turns a single-node result into the answer or a typed error.
fn single<T>(r: NodeResult<T>, fields: FieldNames) -> Result<T, ToolError> {
    let node = r.node.clone();
    match r.outcome {
        NodeOutcome::Ok => r
            .value
            .ok_or_else(|| ToolError::new(ErrorCode::AgentError, "empty answer", "")),
        NodeOutcome::Unavailable => Err(ToolError::new(
            ErrorCode::AgentUnavailable,
            format!("the agent on {node} is unavailable: {}", r.reason),
            format!(
                "check the labscope-agent pod on {node}; list_nodes shows every agent's status"
            ),
        )),
        NodeOutcome::Timeout => Err(ToolError::new(
            ErrorCode::AgentTimeout,
            format!("the agent on {node} did not answer: {}", r.reason),
            "the node may be overloaded or partitioned; check_network_mesh shows which paths work",
        )),
        NodeOutcome::Error => {
            let code = match r.code {
                Some(tonic::Code::PermissionDenied) => ErrorCode::PermissionDenied,
                Some(tonic::Code::InvalidArgument) => ErrorCode::InvalidArgument,
                Some(tonic::Code::NotFound) => ErrorCode::NotFound,
                _ => ErrorCode::AgentError,
            };
            if code == ErrorCode::InvalidArgument {
                // The agent names its request field in its error details
                // (route_table); the caller knows its own argument (table).
                if let Some((field, message)) = &r.invalid_field {
                    let arg = fields
                        .iter()
                        .find(|(f, _)| *f == field)
                        .map(|(_, a)| *a)
                        .unwrap_or(field);
                    return Err(ToolError::invalid(arg, message));
                }
                return Err(ToolError::new(
                    code,
                    format!("{node}: {}", r.reason),
                    "see the message: the agent refused an argument",
                ));
            }
            let hint = match code {
                ErrorCode::PermissionDenied => {
                    "grant the agent the capability named in the message (DaemonSet securityContext)"
                }
                ErrorCode::NotFound => "check the name; the message lists what exists",
                _ => "see the message; the agent's log has details",
            };
            Err(ToolError::new(code, format!("{node}: {}", r.reason), hint))
        }
    }
}

async fn on_node<T, F, Fut>(
    agent: AgentHandle,
    deadline: Duration,
    fields: FieldNames,
    f: F,
) -> Result<T, ToolError>
where
    F: FnOnce(AgentHandle) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let fut = f(agent.clone());
    single(ask_one(agent, deadline, fut).await, fields)
}

/// The node to probe from: the one asked for, or the first whose agent answers.
async fn pick_node(
    ctx: &ToolContext,
    arg: &str,
    from: Option<&str>,
) -> Result<AgentHandle, ToolError> {
    if let Some(node) = from {
        return node_agent(ctx, arg, node).await;
    }
    if ctx.pool.all().is_empty() {
        return Err(no_agents(ctx, "no node to probe from"));
    }
    let mut reasons = Vec::new();
    for agent in ctx.pool.all() {
        let r = ask_one(agent.clone(), ctx.settings.agent_deadline, async {
            agent
                .client()
                .get_node_info(pb::GetNodeInfoRequest {})
                .await
                .map(|r| r.into_inner())
        })
        .await;
        if r.outcome == NodeOutcome::Ok {
            return Ok(agent.clone());
        }
        reasons.push(format!("{}: {:?} {}", r.node, r.outcome, r.reason));
    }
    Err(ToolError::new(
        ErrorCode::AgentUnavailable,
        format!(
            "no agent answered, so there is no node to probe from ({})",
            reasons.join("; ")
        ),
        format!("list_nodes shows each agent's status; pass {arg} to choose one"),
    ))
}

/// [`ip_text`] of an address the caller gives up (its text is moved).
pub fn ip_string(ip: Option<pb::IpAddress>) -> String {
    match ip {
        Some(pb::IpAddress { text, .. }) if !text.is_empty() => text,
        other => ip_text(&other),
    }
}

/// Address text: the agent sends octets only in bulk answers.
pub fn ip_text(ip: &Option<pb::IpAddress>) -> String {
    let Some(ip) = ip else { return String::new() };
    if !ip.text.is_empty() {
        return ip.text.clone();
    }
    match ip.octets.len() {
        4 => <[u8; 4]>::try_from(ip.octets.as_slice())
            .map(ipv4_text)
            .unwrap_or_default(),
        16 => <[u8; 16]>::try_from(ip.octets.as_slice())
            .map(|o| std::net::Ipv6Addr::from(o).to_string())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// Dotted-quad text of IPv4 octets, as `Ipv4Addr`'s `Display` writes it,
/// without the formatting machinery: a full conntrack read formats 200,000
/// addresses, and `to_string` was 6 % of `labscope serve`'s CPU there.
fn ipv4_text(octets: [u8; 4]) -> String {
    let mut out = String::with_capacity(15);
    for (i, o) in octets.into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if o >= 100 {
            out.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            out.push(char::from(b'0' + o / 10 % 10));
        }
        out.push(char::from(b'0' + o % 10));
    }
    out
}

/// A proto enum's name without its prefix, in lowercase
/// ("TCP_CONNECT_OUTCOME_OPEN" → "open").
fn enum_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

/// Microseconds → milliseconds with two decimals.
fn ms(us: u64) -> f64 {
    (us as f64 / 10.0).round() / 100.0
}

/// Opaque offset cursor for lists paged in the aggregator.
fn encode_offset(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("off:{offset}"))
}

/// The offset of a cursor this tool returned (0 without one).
fn decode_offset(arg: &str, s: Option<&str>) -> Result<usize, ToolError> {
    let Some(s) = s else { return Ok(0) };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.strip_prefix("off:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| ToolError::invalid(arg, "not a cursor this tool returned"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_text_is_what_display_writes() {
        for a in 0..=255u8 {
            for o in [[a, 0, 255, 9], [10, a, 99, 100], [a, a, a, a]] {
                assert_eq!(ipv4_text(o), std::net::Ipv4Addr::from(o).to_string());
            }
        }
    }

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        assert_eq!(
            decode_offset("cursor", Some(&encode_offset(500))).ok(),
            Some(500)
        );
        assert_eq!(decode_offset("cursor", None).ok(), Some(0));
        assert!(decode_offset("cursor", Some("bogus")).is_err());
    }

    #[test]
    fn agent_field_names_become_argument_names() {
        let r: NodeResult<()> = NodeResult {
            node: "pi-k3s".into(),
            outcome: NodeOutcome::Error,
            value: None,
            reason: "invalid route_table: \"x\" is not main, all, local, default or a table number"
                .into(),
            code: Some(tonic::Code::InvalidArgument),
            invalid_field: Some((
                "route_table".into(),
                "\"x\" is not main, all, local, default or a table number".into(),
            )),
            elapsed: Duration::ZERO,
        };
        let e = single(r, &[("route_table", "table")])
            .err()
            .unwrap_or_else(|| ToolError::invalid("", ""));
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(
            e.message
                .starts_with("argument \"table\": \"x\" is not main"),
            "{}",
            e.message
        );
    }
}
