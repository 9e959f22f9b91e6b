//! Node tools, answered by the agents: `list_nodes`, `get_node_networking`,
//! `get_iptables_rules`, `get_conntrack_entries`, `test_pod_connectivity`,
//! `curl_ingress`, `test_dns_query`, `check_network_mesh`. Argument names
//! are the predecessor's, so existing clients keep working.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use labscope_proto::v1 as pb;
use serde_json::{Map, Value, json};
use tokio_stream::StreamExt;

use super::args::Args;
use super::render;
use super::{ErrorCode, ToolContext, ToolDef, ToolError, ToolOutput};
use crate::agents::fanout::ask_one;
use crate::agents::{AgentHandle, NodeOutcome, NodeResult, fan_out_with_deadline};

/// The node tools.
pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::untyped(
            super::Meta {
                name: "list_nodes",
                title: "List nodes and their agents",
                description: "Every node with its labscope agent: agent status (ok, unavailable, timeout, error) with the \
                reason, agent version, kernel, OS, uptime, load, memory and conntrack table usage. Use it first to \
                see which nodes can answer node tools.",
                toolset: super::Toolset::Node,
                hints: super::Hints::READ,
            },
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "nodes": {"type": "array", "items": {"type": "object"}},
                "summary": {"type": "object"}}, "required": ["nodes", "summary"]}),
            |ctx, args| Box::pin(list_nodes(ctx, args)),
        ),
        ToolDef::untyped(
            super::Meta {
                name: "get_node_networking",
                title: "Node networking",
                description: "A node's interfaces (kind, state, MTU, MAC, master, rx/tx counters), addresses, routes \
                (table, protocol, scope, metric, gateway, prefsrc), policy rules and neighbours, read from the kernel \
                by the node's agent. `sections` picks some of links, addresses, routes, rules, neighbours; `table` is \
                main (default), all, local, or a table number.",
                toolset: super::Toolset::Node,
                hints: super::Hints::READ,
            },
            json!({"type": "object", "properties": {
                "node": {"type": "string", "description": "Node name (see list_nodes)"},
                "sections": {"type": "array", "items": {"type": "string", "enum": ["links", "addresses", "routes", "rules", "neighbours"]}},
                "table": {"type": "string", "description": "main (default), all, local, default, or a number"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 500, "description": "Most items per list"},
                "cursor": {"type": "string", "description": "nextCursor of the previous page: the same offset applies to every list"}},
                "required": ["node"], "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "node": {"type": "string"}, "links": {"type": "array"}, "addresses": {"type": "array"},
                "routes": {"type": "array"}, "rules": {"type": "array"}, "neighbours": {"type": "array"},
                "counts": {"type": "object"}, "errors": {"type": "array"}, "nextCursor": {"type": "string"}},
                "required": ["node", "counts"]}),
            |ctx, args| Box::pin(get_node_networking(ctx, args)),
        ),
        ToolDef::untyped(
            super::Meta {
                name: "get_iptables_rules",
                title: "iptables rules with counters",
                description: "iptables rules of one table on a node, with packet/byte counters, comments, targets and \
                full rule text; which backend holds rules (nf_tables or legacy) and a warning when both do (a known \
                k3s failure). Bounded: `limit` rules per page (200, max 2000) and a `cursor` for the next page.",
                toolset: super::Toolset::Node,
                hints: super::Hints::READ,
            },
            json!({"type": "object", "properties": {
                "node": {"type": "string"},
                "table": {"type": "string", "enum": ["filter", "nat", "mangle", "raw", "security"], "default": "filter"},
                "chain": {"type": "string", "description": "Only this chain"},
                "ipv6": {"type": "boolean", "default": false},
                "limit": {"type": "integer", "minimum": 1, "maximum": 2000, "default": 200},
                "cursor": {"type": "string"}},
                "required": ["node"], "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "node": {"type": "string"}, "table": {"type": "string"}, "backend": {"type": "string"},
                "backendsWithRules": {"type": "array"}, "warning": {"type": "string"},
                "chains": {"type": "array"}, "rules": {"type": "array"},
                "returned": {"type": "integer"}, "total": {"type": "integer"}, "nextCursor": {"type": "string"}},
                "required": ["node", "table", "rules", "returned", "total"]}),
            |ctx, args| Box::pin(get_iptables_rules(ctx, args)),
        ),
        ToolDef::untyped(
            super::Meta {
                name: "get_conntrack_entries",
                title: "Conntrack entries",
                description: "Connection-tracking entries of a node, filtered in the agent while the kernel table \
                streams: `filter` is an address or CIDR matched on either side of either direction; also `protocol`, \
                `port`, `state` (TCP state, ASSURED or UNREPLIED). Returns matched count, table count and \
                nf_conntrack_max with usage %, and a cursor. `limit` 50 by default, at most 1000.",
                toolset: super::Toolset::Node,
                hints: super::Hints::READ,
            },
            json!({"type": "object", "properties": {
                "node": {"type": "string"},
                "filter": {"type": "string", "description": "IP address or CIDR"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                "protocol": {"type": "string"}, "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "state": {"type": "string"}, "cursor": {"type": "string"}},
                "required": ["node"], "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "node": {"type": "string"}, "entries": {"type": "array"}, "matched": {"type": "integer"},
                "returned": {"type": "integer"}, "tableCount": {"type": "integer"}, "tableMax": {"type": "integer"},
                "usagePercent": {"type": "number"}, "truncated": {"type": "boolean"}, "nextCursor": {"type": "string"}},
                "required": ["node", "entries", "matched", "returned", "tableCount", "tableMax", "truncated"]}),
            |ctx, args| Box::pin(get_conntrack_entries(ctx, args)),
        ),
        ToolDef::untyped(
            super::Meta {
                name: "test_pod_connectivity",
                title: "Ping and TCP connect from a node",
                description: "From `sourceNode`'s agent: resolve `target`, ping it (`count` 3, max 10) and open one TCP \
                connection to `port`. TCP outcome is open, refused (reachable, nothing listening), timeout \
                (filtered or down) or unreachable, with connect time.",
                toolset: super::Toolset::Node,
                hints: super::Hints::PROBE,
            },
            json!({"type": "object", "properties": {
                "sourceNode": {"type": "string"}, "target": {"type": "string", "description": "IP or hostname"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3}},
                "required": ["sourceNode", "target", "port"], "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "sourceNode": {"type": "string"}, "target": {"type": "string"}, "ping": {"type": "object"},
                "tcp": {"type": "object"}}, "required": ["sourceNode", "target", "ping", "tcp"]}),
            |ctx, args| Box::pin(test_pod_connectivity(ctx, args)),
        ),
        ToolDef::untyped(
            super::Meta {
                name: "curl_ingress",
                title: "HTTP(S) probe with timing",
                description: "One HTTP(S) request from a node's agent: status, timing (DNS, connect, TLS, first byte, \
                total), remote address, size, redirect target, TLS version and certificate subject/issuer/notAfter/days \
                left. TLS verification is on unless verifyTls=false. Without fromNode the first node whose agent \
                answers is used.",
                toolset: super::Toolset::Node,
                hints: super::Hints::PROBE,
            },
            json!({"type": "object", "properties": {
                "url": {"type": "string"}, "timeout": {"type": "integer", "minimum": 1, "maximum": 30, "default": 10, "description": "seconds"},
                "fromNode": {"type": "string"}, "verifyTls": {"type": "boolean", "default": true},
                "method": {"type": "string", "enum": ["GET", "HEAD"], "default": "GET"}},
                "required": ["url"], "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "fromNode": {"type": "string"}, "url": {"type": "string"}, "outcome": {"type": "string"},
                "status": {"type": "integer"}, "timingMs": {"type": "object"}, "certificate": {"type": ["object", "null"]}},
                "required": ["fromNode", "url", "outcome"]}),
            |ctx, args| Box::pin(curl_ingress(ctx, args)),
        ),
        ToolDef::untyped(
            super::Meta {
                name: "test_dns_query",
                title: "DNS query to an explicit server",
                description: "Ask `server` (default: the configured primary Pi-hole) for `domain`/`type` from a node's \
                agent: rcode, answers with TTL, AA/AD/CD/RA flags, latency. `checkingDisabled` sets the CD flag (a \
                SERVFAIL that turns into an answer with CD points at DNSSEC).",
                toolset: super::Toolset::Node,
                hints: super::Hints::PROBE,
            },
            json!({"type": "object", "properties": {
                "domain": {"type": "string"},
                "type": {"type": "string", "enum": ["A", "AAAA", "MX", "TXT", "CNAME", "NS", "SOA", "PTR", "SRV"], "default": "A"},
                "server": {"type": "string", "description": "IP, IP:port or [IPv6]:port"},
                "fromNode": {"type": "string"}, "checkingDisabled": {"type": "boolean", "default": false}},
                "required": ["domain"], "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "fromNode": {"type": "string"}, "server": {"type": "string"}, "rcode": {"type": "string"},
                "answers": {"type": "array"}, "flags": {"type": "object"}, "latencyMs": {"type": "number"}},
                "required": ["fromNode", "server", "rcode", "answers"]}),
            |ctx, args| Box::pin(test_dns_query(ctx, args)),
        ),
        ToolDef::untyped(
            super::Meta {
                name: "check_network_mesh",
                title: "Node-to-node reachability matrix",
                description: "Every agent probes every other agent: ICMP echo and a TCP connect to the agent port (or \
                `port`). Returns the node×node matrix with RTTs and the list of broken pairs, and per node whether \
                its agent could be asked at all.",
                toolset: super::Toolset::Node,
                hints: super::Hints::READ,
            },
            json!({"type": "object", "properties": {
                "nodes": {"type": "array", "items": {"type": "string"}},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535}},
                "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "nodes": {"type": "array"}, "matrix": {"type": "array"}, "broken": {"type": "array"},
                "agents": {"type": "array"}}, "required": ["nodes", "matrix", "broken", "agents"]}),
            |ctx, args| Box::pin(check_network_mesh(ctx, args)),
        ),
    ]
}

// ------------------------------------------------------------------ helpers

fn node_agent(ctx: &ToolContext, arg: &str, node: &str) -> Result<AgentHandle, ToolError> {
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
            "check the labscope-agent DaemonSet pod on that node (kubectl describe pod)",
        ));
    }
    Err(ToolError::new(
        ErrorCode::UnknownNode,
        format!("argument {arg:?}: no agent for node {node:?}"),
        format!(
            "known nodes: {}; list_nodes shows each agent's status",
            ctx.pool.names().join(", ")
        ),
    ))
}

/// Turns a single-node result into the tool result or a typed error.
fn single<T>(r: NodeResult<T>) -> Result<T, ToolError> {
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
            let code = match r.code.as_deref() {
                Some("PermissionDenied") => ErrorCode::PermissionDenied,
                Some("InvalidArgument") => ErrorCode::InvalidArgument,
                Some("NotFound") => ErrorCode::NotFound,
                _ => ErrorCode::AgentError,
            };
            let hint = match code {
                ErrorCode::PermissionDenied => {
                    "grant the agent the capability named in the message (DaemonSet securityContext)"
                }
                ErrorCode::InvalidArgument => "fix the argument named in the message",
                ErrorCode::NotFound => "check the name; the message lists what exists",
                _ => "see the message; the agent's log has details",
            };
            Err(ToolError::new(code, format!("{node}: {}", r.reason), hint))
        }
    }
}

async fn on_node<T, F, Fut>(agent: AgentHandle, deadline: Duration, f: F) -> Result<T, ToolError>
where
    F: FnOnce(AgentHandle) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let fut = f(agent.clone());
    single(ask_one(agent, deadline, fut).await)
}

/// Address text: the agent sends octets only in bulk answers.
pub fn ip_text(ip: &Option<pb::IpAddress>) -> String {
    let Some(ip) = ip else { return String::new() };
    if !ip.text.is_empty() {
        return ip.text.clone();
    }
    match ip.octets.len() {
        4 => <[u8; 4]>::try_from(ip.octets.as_slice())
            .map(|o| std::net::Ipv4Addr::from(o).to_string())
            .unwrap_or_default(),
        16 => <[u8; 16]>::try_from(ip.octets.as_slice())
            .map(|o| std::net::Ipv6Addr::from(o).to_string())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// IPS_* flag names of a conntrack entry (the agent sends only the bits),
/// plus UNREPLIED when no reply was seen, as `conntrack -L` shows it.
fn status_names(bits: u32) -> Vec<String> {
    labscope_proto::text::conntrack_status(bits)
}

fn enum_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_string()
}

fn ms(us: u64) -> f64 {
    (us as f64 / 10.0).round() / 100.0
}

/// Opaque offset cursor for lists paged in the aggregator.
fn encode_offset(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("off:{offset}"))
}

fn decode_offset(arg: &str, s: Option<String>) -> Result<usize, ToolError> {
    let Some(s) = s else { return Ok(0) };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.strip_prefix("off:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| ToolError::invalid(arg, "not a cursor this tool returned"))
}

// ------------------------------------------------------------------ tools

async fn list_nodes(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    Args::new(args, &[])?;
    let agents: Vec<AgentHandle> = ctx.pool.all();
    let discovery = ctx.pool.discovery();
    let fanout = fan_out_with_deadline(
        agents,
        ctx.settings.agent_deadline,
        ctx.settings.fanout_concurrency,
        |a| async move {
            a.client()
                .get_node_info(pb::GetNodeInfoRequest {})
                .await
                .map(|r| r.into_inner())
        },
    );
    let kube = async {
        match &ctx.cluster {
            Some(c) => Some(crate::cluster::nodes::list(c).await),
            None => None,
        }
    };
    let (results, kube) = tokio::join!(fanout, kube);
    ctx.metrics.record_agents(&results);
    let (k8s_nodes, kube_status) = match kube {
        None => (Vec::new(), json!({"status": "not configured"})),
        Some(Ok(nodes)) => (
            nodes,
            json!({"status": "ok", "source": ctx.cluster.as_ref().map(|c| c.source.clone())}),
        ),
        Some(Err(e)) => (
            Vec::new(),
            json!({"status": "error", "message": e.to_string(), "hint": e.hint()}),
        ),
    };
    let mut names: Vec<String> = results.iter().map(|r| r.node.clone()).collect();
    for n in &k8s_nodes {
        if !names.contains(&n.name) {
            names.push(n.name.clone());
        }
    }
    names.sort();
    let mut nodes = Vec::new();
    let (mut ok, mut without_agent) = (0, 0);
    for name in &names {
        let facts = k8s_nodes.iter().find(|n| &n.name == name);
        let mut node = json!({"node": name, "kubernetes": facts.map(|f| serde_json::to_value(f).unwrap_or(Value::Null))});
        match results.iter().find(|r| &r.node == name) {
            None => {
                without_agent += 1;
                let reason = discovery
                    .problems
                    .iter()
                    .find(|p| &p.node == name)
                    .map(|p| format!("{} ({})", p.reason, p.pod))
                    .unwrap_or_else(|| "no labscope-agent pod on this node".into());
                node["agent"] = json!({"status": "none", "reason": reason});
            }
            Some(r) => {
                node["agent"] = json!({"status": r.outcome, "reason": r.reason, "latencyMs": r.elapsed.as_secs_f64() * 1000.0,
                    "url": ctx.pool.get(&r.node).map(|a| a.url.clone()).unwrap_or_default()});
                if let Some(info) = &r.value {
                    ok += 1;
                    let usage = if info.conntrack_max > 0 {
                        info.conntrack_count as f64 * 100.0 / info.conntrack_max as f64
                    } else {
                        0.0
                    };
                    node["agent"]["version"] = json!(info.agent_version);
                    node["kernel"] = json!(info.kernel_release);
                    node["os"] = json!(info.os_pretty_name);
                    node["arch"] = json!(info.machine);
                    node["uptimeSeconds"] = json!(info.uptime_seconds);
                    node["load"] = json!([info.load1, info.load5, info.load15]);
                    node["memory"] = json!({"totalBytes": info.memory_total_bytes, "availableBytes": info.memory_available_bytes});
                    node["conntrack"] = json!({"count": info.conntrack_count, "max": info.conntrack_max, "usagePercent": (usage * 10.0).round() / 10.0});
                    node["capabilities"] = json!(info.capabilities);
                }
            }
        }
        nodes.push(node);
    }
    let mut summary = json!({"total": names.len(), "agentsOk": ok, "agentsNotOk": names.len() - ok - without_agent,
        "withoutAgent": without_agent, "kubernetes": kube_status, "localMode": ctx.pool.local_mode});
    if let Some((message, hint)) = &discovery.error {
        summary["discoveryError"] = json!({"message": message, "hint": hint});
    }
    let structured = json!({"nodes": nodes, "summary": summary});
    let text = render::nodes_text(&structured);
    Ok(ToolOutput { structured, text })
}

fn section(name: &str) -> Result<pb::NetworkingSection, ToolError> {
    Ok(match name {
        "links" => pb::NetworkingSection::Links,
        "addresses" => pb::NetworkingSection::Addresses,
        "routes" => pb::NetworkingSection::Routes,
        "rules" => pb::NetworkingSection::Rules,
        "neighbours" | "neighbors" => pb::NetworkingSection::Neighbours,
        other => {
            return Err(ToolError::invalid(
                "sections",
                format!("{other:?} is not links, addresses, routes, rules or neighbours"),
            ));
        }
    })
}

async fn get_node_networking(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["node", "sections", "table", "limit", "cursor"])?;
    let offset = decode_offset("cursor", a.opt_string("cursor")?)?;
    let node = a.string("node")?;
    let sections = a
        .list("sections")?
        .iter()
        .map(|s| section(s))
        .collect::<Result<Vec<_>, _>>()?;
    let table = a.opt_string("table")?.unwrap_or_else(|| "main".into());
    let limit = a.int("limit", 500, 1, 5000)? as usize;
    let agent = node_agent(&ctx, "node", &node)?;
    let req = pb::GetNetworkingRequest {
        sections: sections.iter().map(|s| *s as i32).collect(),
        route_table: table.clone(),
    };
    let n = on_node(agent, ctx.settings.agent_deadline, |a| async move {
        a.client().get_networking(req).await.map(|r| r.into_inner())
    })
    .await?;

    let links: Vec<Value> = n.links.iter().map(|l| {
        let s = l.stats.unwrap_or_default();
        json!({"index": l.index, "name": l.name, "kind": l.kind, "state": enum_name(pb::OperState::try_from(l.oper_state).unwrap_or_default().as_str_name(), "OPER_STATE_"),
               "adminUp": l.admin_up, "carrier": l.lower_up, "mtu": l.mtu, "mac": l.mac, "master": l.master, "flags": l.flags,
               "rx": {"bytes": s.rx_bytes, "packets": s.rx_packets, "errors": s.rx_errors, "dropped": s.rx_dropped},
               "tx": {"bytes": s.tx_bytes, "packets": s.tx_packets, "errors": s.tx_errors, "dropped": s.tx_dropped}})
    }).collect();
    let addresses: Vec<Value> = n.addresses.iter().map(|x| {
        json!({"link": x.link, "address": ip_text(&x.address), "prefixLen": x.prefix_len, "scope": x.scope, "label": x.label,
               "peer": ip_text(&x.peer), "flags": x.flags})
    }).collect();
    let routes: Vec<Value> = n.routes.iter().map(|r| {
        json!({"destination": r.destination, "table": r.table_name, "type": r.route_type, "gateway": ip_text(&r.gateway),
               "dev": r.oif, "protocol": r.protocol, "scope": r.scope, "metric": r.metric, "prefsrc": ip_text(&r.prefsrc),
               "family": if r.family == pb::AddressFamily::Inet6 as i32 { "inet6" } else { "inet" },
               "nexthops": r.nexthops.iter().map(|h| json!({"gateway": ip_text(&h.gateway), "dev": h.oif, "weight": h.weight})).collect::<Vec<_>>()})
    }).collect();
    let rules: Vec<Value> = n.rules.iter().map(|r| {
        json!({"priority": r.priority, "family": if r.family == pb::AddressFamily::Inet6 as i32 { "inet6" } else { "inet" },
               "from": r.source, "to": r.destination, "iif": r.iif, "oif": r.oif,
               "fwmark": if r.has_fwmark { format!("{:#x}/{:#x}", r.fwmark, r.fwmask) } else { String::new() },
               "action": r.action, "table": r.table_name, "not": r.invert})
    }).collect();
    let neighbours: Vec<Value> = n.neighbours.iter().map(|x| {
        json!({"address": ip_text(&x.address), "dev": x.link, "lladdr": x.lladdr, "states": x.states, "router": x.router})
    }).collect();
    let mut structured = json!({"node": node, "table": table, "counts": {}, "errors": n.errors.iter().map(|e| json!({
        "section": enum_name(pb::NetworkingSection::try_from(e.section).unwrap_or_default().as_str_name(), "NETWORKING_SECTION_").to_lowercase(),
        "message": e.message})).collect::<Vec<_>>()});
    let mut more = false;
    for (name, list) in [
        ("links", links),
        ("addresses", addresses),
        ("routes", routes),
        ("rules", rules),
        ("neighbours", neighbours),
    ] {
        let total = list.len();
        let returned: Vec<Value> = list.into_iter().skip(offset).take(limit).collect();
        more |= total > offset + limit;
        structured["counts"][name] =
            json!({"returned": returned.len(), "total": total, "offset": offset});
        structured[name] = Value::Array(returned);
    }
    structured["nextCursor"] = json!(if more {
        encode_offset(offset + limit)
    } else {
        String::new()
    });
    let text = render::networking_text(&structured);
    Ok(ToolOutput { structured, text })
}

async fn get_iptables_rules(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["node", "table", "chain", "ipv6", "limit", "cursor"])?;
    let node = a.string("node")?;
    let table = a.opt_string("table")?.unwrap_or_else(|| "filter".into());
    let chain = a.opt_string("chain")?.unwrap_or_default();
    let ipv6 = a.bool("ipv6", false)?;
    let limit = a.int("limit", 200, 1, 2000)? as usize;
    let offset = decode_offset("cursor", a.opt_string("cursor")?)?;
    let agent = node_agent(&ctx, "node", &node)?;
    let req = pb::GetFirewallRequest {
        ipv6,
        table: table.clone(),
        chain,
    };
    let fw = on_node(
        agent,
        ctx.settings.agent_deadline.max(Duration::from_secs(10)),
        |a| async move { a.client().get_firewall(req).await.map(|r| r.into_inner()) },
    )
    .await?;
    let backend = |b: i32| {
        enum_name(
            pb::FirewallBackend::try_from(b)
                .unwrap_or_default()
                .as_str_name(),
            "FIREWALL_BACKEND_",
        )
        .to_lowercase()
    };
    let all_rules: Vec<&pb::FirewallRule> = fw.chains.iter().flat_map(|c| &c.rules).collect();
    let total = all_rules.len();
    let page: Vec<Value> = all_rules.iter().skip(offset).take(limit).map(|r| {
        json!({"chain": r.chain, "position": r.position, "text": r.text, "target": r.target, "goto": r.is_goto,
               "comment": r.comment, "packets": r.packets, "bytes": r.bytes})
    }).collect();
    let next = offset + page.len();
    let structured = json!({
        "node": node, "family": if ipv6 { "ipv6" } else { "ipv4" }, "table": fw.table, "backend": backend(fw.backend),
        "backendsWithRules": fw.backends_with_rules.iter().map(|b| backend(*b)).collect::<Vec<_>>(),
        "warning": fw.warning, "method": fw.method,
        "chains": fw.chains.iter().map(|c| json!({"name": c.name, "policy": c.policy, "builtin": c.builtin, "packets": c.packets,
            "bytes": c.bytes, "rules": c.rules.len()})).collect::<Vec<_>>(),
        "otherBackendRules": fw.other_backend_chains.iter().flat_map(|c| &c.rules).map(|r| r.text.clone()).take(limit).collect::<Vec<_>>(),
        "rules": page, "offset": offset, "returned": next - offset, "total": total,
        "nextCursor": if next < total { encode_offset(next) } else { String::new() },
    });
    let text = render::iptables_text(&structured);
    Ok(ToolOutput { structured, text })
}

async fn get_conntrack_entries(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(
        args,
        &[
            "node", "filter", "limit", "protocol", "port", "state", "cursor",
        ],
    )?;
    let node = a.string("node")?;
    let req = pb::ListConntrackRequest {
        address: a.opt_string("filter")?.unwrap_or_default(),
        protocol: a.opt_string("protocol")?.unwrap_or_default(),
        port: a.int("port", 0, 1, 65535)? as u32,
        state: a.opt_string("state")?.unwrap_or_default(),
        limit: a.int("limit", 50, 1, 1000)? as u32,
        continuation_token: a.opt_string("cursor")?.unwrap_or_default(),
        ip_version: 0,
        stop_at_limit: false,
    };
    let agent = node_agent(&ctx, "node", &node)?;
    let (entries, summary) = on_node(
        agent,
        ctx.settings.agent_deadline.max(Duration::from_secs(10)),
        |a| async move {
            let mut stream = a.client().list_conntrack(req).await?.into_inner();
            let mut entries = Vec::new();
            let mut summary = None;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                entries.extend(chunk.entries);
                if chunk.summary.is_some() {
                    summary = chunk.summary;
                }
            }
            let summary = summary.ok_or_else(|| {
                tonic::Status::internal("conntrack stream ended without a summary")
            })?;
            Ok((entries, summary))
        },
    )
    .await?;
    let tuple = |t: &Option<pb::ConntrackTuple>| {
        let t = t.clone().unwrap_or_default();
        let mut v = json!({"src": ip_text(&t.source), "dst": ip_text(&t.destination)});
        if t.has_icmp {
            v["icmp"] = json!({"type": t.icmp_type, "code": t.icmp_code, "id": t.icmp_id});
        } else {
            v["sport"] = json!(t.source_port);
            v["dport"] = json!(t.destination_port);
        }
        v
    };
    let list: Vec<Value> = entries.iter().map(|e| {
        let proto = e.original.as_ref().map(|o| o.protocol_name.clone()).unwrap_or_default();
        let state = if e.tcp_state != 0 { enum_name(pb::ConntrackState::try_from(e.tcp_state).unwrap_or_default().as_str_name(), "CONNTRACK_STATE_") } else { String::new() };
        let mut v = json!({"protocol": proto, "state": state, "original": tuple(&e.original), "reply": tuple(&e.reply),
            "status": status_names(e.status_bits), "nat": {"src": e.src_nat, "dst": e.dst_nat}, "mark": e.mark, "zone": e.zone,
            "timeoutSeconds": e.timeout_seconds, "id": e.id});
        if let (Some(o), Some(r)) = (&e.original_counters, &e.reply_counters) {
            v["counters"] = json!({"original": {"packets": o.packets, "bytes": o.bytes}, "reply": {"packets": r.packets, "bytes": r.bytes}});
        }
        v
    }).collect();
    let structured = json!({
        "node": node, "entries": list, "matched": summary.matched, "returned": summary.returned,
        "tableCount": summary.table_count, "tableMax": summary.table_max,
        "usagePercent": (summary.usage_percent * 10.0).round() / 10.0, "truncated": summary.truncated,
        "nextCursor": summary.next_token, "accounting": summary.accounting_enabled,
    });
    let text = render::conntrack_text(&structured);
    Ok(ToolOutput { structured, text })
}

fn ping_json(p: &pb::PingResult) -> Value {
    json!({"address": ip_text(&p.address), "resolved": p.resolved.iter().map(|a| ip_text(&Some(a.clone()))).collect::<Vec<_>>(),
           "transmitted": p.transmitted, "received": p.received, "lossPercent": p.loss_percent,
           "rttMs": {"min": ms(p.rtt_min_us), "avg": ms(p.rtt_avg_us), "max": ms(p.rtt_max_us)},
           "method": enum_name(pb::PingMethod::try_from(p.method).unwrap_or_default().as_str_name(), "PING_METHOD_").to_lowercase(),
           "errors": p.errors})
}

fn tcp_json(t: &pb::TcpConnectResult) -> Value {
    json!({"port": t.port, "address": ip_text(&t.address),
           "outcome": enum_name(pb::TcpConnectOutcome::try_from(t.outcome).unwrap_or_default().as_str_name(), "TCP_CONNECT_OUTCOME_").to_lowercase(),
           "connectMs": ms(t.connect_us), "message": t.message})
}

async fn test_pod_connectivity(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["sourceNode", "target", "port", "count"])?;
    let node = a.string("sourceNode")?;
    let target = a.string("target")?;
    let port = a.int("port", 0, 1, 65535)?;
    if port == 0 {
        return Err(ToolError::invalid("port", "required"));
    }
    let count = a.int("count", 3, 1, 10)? as u32;
    let agent = node_agent(&ctx, "sourceNode", &node)?;
    let deadline =
        Duration::from_millis(u64::from(count) * 1200 + 3000).max(ctx.settings.agent_deadline);
    let (t1, t2) = (target.clone(), target.clone());
    let (ping, tcp) = on_node(agent, deadline, |a| async move {
        let mut c1 = a.client();
        let mut c2 = a.client();
        let ping = c1.ping(pb::PingRequest {
            target: t1,
            count,
            timeout_ms: 1000,
            interval_ms: 200,
        });
        let tcp = c2.tcp_connect(pb::TcpConnectRequest {
            target: t2,
            port: port as u32,
            timeout_ms: 3000,
        });
        let (ping, tcp) = tokio::join!(ping, tcp);
        // A ping refused for privilege still leaves the TCP answer useful.
        let ping = match ping {
            Ok(p) => Ok(p.into_inner()),
            Err(s) if s.code() == tonic::Code::PermissionDenied => Err(s.message().to_string()),
            Err(s) => return Err(s),
        };
        Ok((ping, tcp?.into_inner()))
    })
    .await?;
    let structured = json!({
        "sourceNode": node, "target": target,
        "ping": match &ping { Ok(p) => ping_json(p), Err(e) => json!({"error": e}) },
        "tcp": tcp_json(&tcp),
    });
    let text = render::connectivity_text(&structured);
    Ok(ToolOutput { structured, text })
}

/// The node to probe from: the one asked for, or the first whose agent answers.
async fn pick_node(
    ctx: &ToolContext,
    arg: &str,
    from: Option<String>,
) -> Result<AgentHandle, ToolError> {
    if let Some(node) = from {
        return node_agent(ctx, arg, &node);
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
        "list_nodes shows each agent's status; pass fromNode to choose one",
    ))
}

async fn curl_ingress(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["url", "timeout", "fromNode", "verifyTls", "method"])?;
    let url = a.string("url")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ToolError::invalid(
            "url",
            "must start with http:// or https://",
        ));
    }
    let timeout = a.int("timeout", 10, 1, 30)?;
    let verify = a.bool("verifyTls", true)?;
    let method = a
        .opt_string("method")?
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    if method != "GET" && method != "HEAD" {
        return Err(ToolError::invalid(
            "method",
            format!("{method:?} is not GET or HEAD"),
        ));
    }
    let agent = pick_node(&ctx, "fromNode", a.opt_string("fromNode")?).await?;
    let node = agent.name.clone();
    let req = pb::HttpProbeRequest {
        url: url.clone(),
        method,
        timeout_ms: (timeout * 1000) as u32,
        insecure_skip_verify: !verify,
        ca_pem: String::new(),
        connect_to: String::new(),
    };
    let deadline = Duration::from_secs(timeout as u64 + 2);
    let r = on_node(agent, deadline, |a| async move {
        a.client().http_probe(req).await.map(|r| r.into_inner())
    })
    .await?;
    let t = r.timing.unwrap_or_default();
    let structured = json!({
        "fromNode": node, "url": r.url,
        "outcome": enum_name(pb::HttpProbeOutcome::try_from(r.outcome).unwrap_or_default().as_str_name(), "HTTP_PROBE_OUTCOME_").to_lowercase(),
        "status": r.status, "error": r.error, "remoteAddress": r.remote_address, "bodyBytes": r.body_bytes,
        "redirect": r.redirect_location, "contentType": r.content_type, "httpVersion": r.http_version,
        "timingMs": {"dns": ms(t.dns_us), "connect": ms(t.connect_us), "tls": ms(t.tls_us), "firstByte": ms(t.first_byte_us), "total": ms(t.total_us)},
        "tls": {"version": r.tls_version, "verified": r.tls_verified, "alpn": r.alpn},
        "certificate": r.certificate.as_ref().map(|c| json!({"subject": c.subject, "issuer": c.issuer, "notBefore": c.not_before,
            "notAfter": c.not_after, "daysLeft": c.days_left, "dnsNames": c.dns_names})),
    });
    let text = render::http_text(&structured);
    Ok(ToolOutput { structured, text })
}

async fn test_dns_query(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(
        args,
        &["domain", "type", "server", "fromNode", "checkingDisabled"],
    )?;
    let domain = a.string("domain")?;
    let rtype = a
        .opt_string("type")?
        .unwrap_or_else(|| "A".into())
        .to_ascii_uppercase();
    let server = match a
        .opt_string("server")?
        .or_else(|| ctx.settings.default_dns_server.clone())
    {
        Some(s) => s,
        None => {
            return Err(ToolError::new(
                ErrorCode::NotConfigured,
                "no DNS server given and no default configured",
                "pass server (e.g. \"10.43.0.10\" or \"192.168.1.55:53\"), or start labscope with --dns-server",
            ));
        }
    };
    let cd = a.bool("checkingDisabled", false)?;
    let agent = pick_node(&ctx, "fromNode", a.opt_string("fromNode")?).await?;
    let node = agent.name.clone();
    let req = pb::DnsQueryRequest {
        name: domain,
        record_type: rtype,
        server,
        checking_disabled: cd,
        timeout_ms: 2000,
        tcp: false,
    };
    let r = on_node(
        agent,
        ctx.settings.agent_deadline.max(Duration::from_secs(5)),
        |a| async move { a.client().dns_query(req).await.map(|r| r.into_inner()) },
    )
    .await?;
    let f = r.flags.unwrap_or_default();
    let structured = json!({
        "fromNode": node, "domain": r.name, "type": r.record_type, "server": r.server, "rcode": r.rcode, "error": r.error,
        "answers": r.answers.iter().map(|x| json!({"name": x.name, "type": x.record_type, "ttl": x.ttl, "data": x.data})).collect::<Vec<_>>(),
        "authority": r.authority.iter().map(|x| json!({"name": x.name, "type": x.record_type, "ttl": x.ttl, "data": x.data})).collect::<Vec<_>>(),
        "flags": {"aa": f.authoritative, "tc": f.truncated, "rd": f.recursion_desired, "ra": f.recursion_available, "ad": f.authentic_data, "cd": f.checking_disabled},
        "latencyMs": ms(r.latency_us), "transport": r.transport,
    });
    let text = render::dns_text(&structured);
    Ok(ToolOutput { structured, text })
}

async fn check_network_mesh(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["nodes", "port"])?;
    let wanted = a.list("nodes")?;
    let port = a.int("port", 0, 1, 65535)?;
    let mut agents = Vec::new();
    if wanted.is_empty() {
        agents.extend(ctx.pool.all());
    } else {
        for n in &wanted {
            agents.push(node_agent(&ctx, "nodes", n)?);
        }
    }
    let targets: Vec<(String, String, u16)> = agents
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.host.clone(),
                if port > 0 { port as u16 } else { t.port },
            )
        })
        .collect();
    let deadline = ctx.settings.agent_deadline.max(Duration::from_secs(3));
    let per_probe_ms = (deadline.as_millis() as u32)
        .saturating_sub(500)
        .clamp(200, 2000);
    let results = fan_out_with_deadline(
        agents.clone(),
        deadline,
        ctx.settings.fanout_concurrency,
        |src| {
            let targets = targets.clone();
            async move {
                // Ask the source itself first, so a dead source is reported as
                // such and not as N failed probes from a "healthy" agent.
                src.client()
                    .get_node_info(pb::GetNodeInfoRequest {})
                    .await?;
                let probes = targets
                    .into_iter()
                    .filter(|(name, _, _)| *name != src.name)
                    .map(|(name, host, port)| {
                        let mut c1 = src.client();
                        let mut c2 = src.client();
                        async move {
                            let ping = c1.ping(pb::PingRequest {
                                target: host.clone(),
                                count: 1,
                                timeout_ms: per_probe_ms,
                                interval_ms: 0,
                            });
                            let tcp = c2.tcp_connect(pb::TcpConnectRequest {
                                target: host,
                                port: u32::from(port),
                                timeout_ms: per_probe_ms,
                            });
                            let (ping, tcp) = tokio::join!(ping, tcp);
                            (
                                name,
                                ping.map(|r| r.into_inner()),
                                tcp.map(|r| r.into_inner()),
                            )
                        }
                    });
                Ok::<_, tonic::Status>(futures::future::join_all(probes).await)
            }
        },
    )
    .await;
    ctx.metrics.record_agents(&results);
    let mut matrix = Vec::new();
    let mut broken = Vec::new();
    let mut agent_rows = Vec::new();
    for r in &results {
        agent_rows.push(json!({"node": r.node, "status": r.outcome, "reason": r.reason}));
        let Some(probes) = &r.value else { continue };
        for (to, ping, tcp) in probes {
            let icmp_ok = matches!(ping, Ok(p) if p.received > 0);
            let tcp_ok = matches!(tcp, Ok(t) if t.outcome == pb::TcpConnectOutcome::Open as i32);
            let cell = json!({
                "from": r.node, "to": to,
                "icmp": match ping { Ok(p) => json!({"ok": p.received > 0, "rttMs": ms(p.rtt_avg_us), "errors": p.errors}), Err(s) => json!({"ok": false, "error": s.message()}) },
                "tcp": match tcp { Ok(t) => tcp_json(t), Err(s) => json!({"outcome": "error", "message": s.message()}) },
            });
            if !(icmp_ok && tcp_ok) {
                broken.push(json!({"from": r.node, "to": to, "icmp": icmp_ok, "tcp": tcp_ok}));
            }
            matrix.push(cell);
        }
    }
    let structured = json!({
        "nodes": agents.iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
        "matrix": matrix, "broken": broken, "agents": agent_rows,
        "note": if agents.len() < 2 { "fewer than two agents: there are no pairs to probe" } else { "" },
    });
    let text = render::mesh_text(&structured);
    Ok(ToolOutput { structured, text })
}
