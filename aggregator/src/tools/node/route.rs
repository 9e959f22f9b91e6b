//! `explain_route`: which way a node's kernel sends a packet, and why — the
//! policy rule, the table, the route entry, or the rule or route that
//! refuses it. The decision is the kernel's own (`ip route get`); the agent
//! adds the rules it walked on the way.

use std::sync::Arc;

use labscope_proto::v1 as pb;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ip_text, node_agent, on_node};
use crate::tools::args::{Range, Text, blank_as_none};
use crate::tools::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Node whose kernel decides.
    pub node: Text,
    /// Destination IP address (IPv4 or IPv6; no name lookup).
    pub destination: Text,
    /// The packet's source address (default: the kernel's choice, as for
    /// traffic the node sends). Needed with iif.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub source: Option<Text>,
    /// Firewall mark, decimal or 0x hex (Tailscale's 0x80000).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub mark: Option<Text>,
    /// Interface a forwarded packet arrives on (a pod's veth, cni0,
    /// tailscale0); default: traffic the node sends.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub iif: Option<Text>,
    /// IPv4 TOS / IPv6 traffic class byte.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub tos: Option<Range<0, 255>>,
}

/// A policy rule whose selector matched.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Step {
    /// Rule priority.
    pub priority: u32,
    /// The rule as `ip rule` prints it.
    pub rule: String,
    /// answered, no_route, suppressed, thrown, refused, goto or nop.
    pub outcome: String,
    /// The route its table gave, as `ip route` prints it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub route: String,
}

/// The kernel's decision, explained.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// Node.
    pub node: String,
    /// The decision in one sentence.
    pub summary: String,
    /// Destination asked about.
    pub destination: String,
    /// Source asked about ("" : the kernel's choice).
    pub source: String,
    /// The kernel routes the packet (false: it refuses).
    pub routable: bool,
    /// The kernel's refusal ("Network is unreachable", …) and its errno.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// errno name of the refusal.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub errno: String,
    /// unicast, local, broadcast, … or the blackhole/unreachable/prohibit
    /// route or rule behind a refusal.
    pub route_type: String,
    /// Table the answer came from.
    pub table: String,
    /// Output interface.
    pub dev: String,
    /// Gateway ("" : directly connected).
    pub gateway: String,
    /// Source address the kernel picks.
    pub prefsrc: String,
    /// Path MTU when the route sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The route entry that matched, as `ip route` prints it.
    pub route: String,
    /// The policy rule that decided (priority and text).
    pub rule: String,
    /// Every rule whose selector matched, in order.
    pub steps: Vec<Step>,
    /// What a person should know.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "explain_route",
            title: "Explain a route",
            description: "How a node's kernel routes one packet (ip route get): device, gateway, table, and the rule and route behind it.",
            toolset: Toolset::Node,
            hints: Hints::READ,
        },
        run,
    )
}

fn parse_mark(s: &str) -> Result<u32, ToolError> {
    let t = s.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| {
        ToolError::invalid(
            "mark",
            format!("{s:?} is not a 32-bit mark (decimal or 0x hex, e.g. 0x80000)"),
        )
    })
}

fn address(arg: &str, s: &str) -> Result<String, ToolError> {
    s.trim()
        .parse::<std::net::IpAddr>()
        .map(|a| a.to_string())
        .map_err(|_| {
            ToolError::invalid(
                arg,
                format!("{s:?} is not an IPv4 or IPv6 address (names are not resolved here)"),
            )
        })
}

async fn run(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<Explanation, ToolError> {
    let destination = address("destination", a.destination.as_str())?;
    let source = a
        .source
        .as_ref()
        .map(|s| address("source", s.as_str()))
        .transpose()?
        .unwrap_or_default();
    let mark = a
        .mark
        .as_ref()
        .map(|m| parse_mark(m.as_str()))
        .transpose()?
        .unwrap_or(0);
    let iif = a.iif.map(Text::into_string).unwrap_or_default();
    if !iif.is_empty() && source.is_empty() {
        return Err(ToolError::invalid(
            "iif",
            "a packet arriving on an interface needs its source address: set source too",
        ));
    }
    let agent = node_agent(&ctx, "node", a.node.as_str()).await?;
    let req = pb::ExplainRouteRequest {
        destination,
        source,
        mark,
        iif,
        tos: a.tos.map(|t| t.get() as u32).unwrap_or(0),
    };
    let e = on_node(
        agent,
        ctx.settings.agent_deadline,
        &[
            ("destination", "destination"),
            ("source", "source"),
            ("iif", "iif"),
            ("tos", "tos"),
        ],
        |a| async move { a.client().explain_route(req).await.map(|r| r.into_inner()) },
    )
    .await?;
    Ok(Explanation {
        node: a.node.as_str().to_string(),
        summary: e.summary,
        destination: e.destination,
        source: e.source,
        routable: e.routable,
        error: e.error,
        errno: e.errno,
        route_type: e.route_type,
        table: e.table_name,
        dev: e.oif,
        gateway: ip_text(&e.gateway),
        prefsrc: ip_text(&e.prefsrc),
        mtu: (e.mtu != 0).then_some(e.mtu),
        route: e
            .route
            .as_ref()
            .map(labscope_proto::text::route_text)
            .unwrap_or_default(),
        rule: match &e.rule {
            Some(r) => format!("{}: {}", r.priority, e.rule_text),
            None => String::new(),
        },
        steps: e
            .steps
            .into_iter()
            .map(|s| Step {
                priority: s.priority,
                rule: s.rule,
                outcome: s.outcome,
                route: s.route,
            })
            .collect(),
        notes: e.notes,
    })
}

impl Render for Explanation {
    fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = format!("node {}: {}\n", self.node, self.summary);
        if !self.route.is_empty() {
            let _ = writeln!(out, "  route entry: {}", self.route);
        }
        if !self.steps.is_empty() {
            out.push_str("  rules tried, in order:\n");
            for s in &self.steps {
                let _ = write!(out, "    {:>5}: {:<44} {}", s.priority, s.rule, s.outcome);
                if !s.route.is_empty() {
                    let _ = write!(out, " ({})", s.route);
                }
                out.push('\n');
            }
        }
        for n in &self.notes {
            let _ = writeln!(out, "  NOTE: {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_decimal_or_hex() {
        assert_eq!(parse_mark("0x80000").unwrap(), 0x80000);
        assert_eq!(parse_mark("16384").unwrap(), 16384);
        assert!(parse_mark("0x1ffffffff").is_err());
        assert!(parse_mark("mark").is_err());
    }
}
