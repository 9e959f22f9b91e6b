//! `check_network_mesh`: every agent probes every other (ICMP and a TCP
//! connect to the agent port), so a broken pod network or flannel route
//! shows as a broken pair before an app fails on it.

use std::sync::Arc;
use std::time::Duration;

use labscope_proto::v1 as pb;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::probes::Tcp;
use super::{ms, node_agent};
use crate::agents::{NodeOutcome, fan_out_with_deadline};
use crate::tools::args::{Range, StrList, blank_as_none};
use crate::tools::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Only these nodes (default: every node with an agent).
    #[serde(default)]
    pub nodes: StrList,
    /// TCP port to probe (default: each agent's own port).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub port: Option<Range<1, 65535>>,
}

/// ICMP from one node to another.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Icmp {
    /// A reply came back.
    pub ok: bool,
    /// Round trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// What went wrong.
    pub errors: Vec<String>,
}

/// One ordered pair.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Cell {
    /// Probing node.
    pub from: String,
    /// Probed node.
    pub to: String,
    /// ICMP.
    pub icmp: Icmp,
    /// TCP to the agent port.
    pub tcp: Tcp,
}

/// A pair where something failed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Broken {
    /// Probing node.
    pub from: String,
    /// Probed node.
    pub to: String,
    /// ICMP worked.
    pub icmp: bool,
    /// TCP worked.
    pub tcp: bool,
}

/// Whether a node's agent could be asked at all.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AgentRow {
    /// Node.
    pub node: String,
    /// ok, unavailable, timeout, error.
    pub status: NodeOutcome,
    /// Why, when not ok.
    pub reason: String,
}

/// The matrix.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Mesh {
    /// Nodes in the matrix.
    pub nodes: Vec<String>,
    /// Every ordered pair probed.
    pub matrix: Vec<Cell>,
    /// Pairs where ICMP or TCP failed.
    pub broken: Vec<Broken>,
    /// Each probing agent.
    pub agents: Vec<AgentRow>,
    /// Why the matrix is empty, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "check_network_mesh",
            title: "Node mesh check",
            description: "All agents probe each other: node×node reachability, broken pairs.",
            toolset: Toolset::Node,
            hints: Hints::READ,
        },
        run,
    )
}

async fn run(ctx: Arc<ToolContext>, a: Args, call: Call) -> Result<Mesh, ToolError> {
    let mut agents = Vec::new();
    if a.nodes.0.is_empty() {
        agents.extend(ctx.pool.all());
        // Zero nodes is not a mesh that works.
        if agents.is_empty() {
            return Err(super::no_agents(&ctx, "nothing to probe between"));
        }
    } else {
        for n in &a.nodes.0 {
            agents.push(node_agent(&ctx, "nodes", n).await?);
        }
    }
    let port = a.port.map(|p| p.get() as u16);
    let targets: Vec<(String, String, u16)> = agents
        .iter()
        .map(|t| (t.name.clone(), t.host.clone(), port.unwrap_or(t.port)))
        .collect();
    let deadline = ctx.settings.agent_deadline.max(Duration::from_secs(3));
    let per_probe_ms = (deadline.as_millis() as u32)
        .saturating_sub(500)
        .clamp(200, 2000);
    let fanout = fan_out_with_deadline(
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
    );
    let what = format!("{} agents probing each other", agents.len());
    let results = call.ticking(&what, deadline, fanout).await;
    let mut matrix = Vec::new();
    let mut broken = Vec::new();
    let mut rows = Vec::new();
    for r in &results {
        rows.push(AgentRow {
            node: r.node.clone(),
            status: r.outcome,
            reason: r.reason.clone(),
        });
        let Some(probes) = &r.value else { continue };
        for (to, ping, tcp) in probes {
            let (icmp, tcp) = (icmp_of(ping), tcp_of(tcp));
            let tcp_ok = tcp.outcome == "open";
            if !(icmp.ok && tcp_ok) {
                broken.push(Broken {
                    from: r.node.clone(),
                    to: to.clone(),
                    icmp: icmp.ok,
                    tcp: tcp_ok,
                });
            }
            matrix.push(Cell {
                from: r.node.clone(),
                to: to.clone(),
                icmp,
                tcp,
            });
        }
    }
    Ok(Mesh {
        nodes: agents.iter().map(|a| a.name.clone()).collect(),
        matrix,
        broken,
        agents: rows,
        note: (agents.len() < 2)
            .then(|| "fewer than two agents: there are no pairs to probe".to_string()),
    })
}

/// One ping's answer, or the agent's error.
fn icmp_of(ping: &Result<pb::PingResult, tonic::Status>) -> Icmp {
    match ping {
        Ok(p) => Icmp {
            ok: p.received > 0,
            rtt_ms: (p.received > 0).then(|| ms(p.rtt_avg_us)),
            errors: p.errors.clone(),
        },
        Err(s) => Icmp {
            ok: false,
            rtt_ms: None,
            errors: vec![s.message().to_string()],
        },
    }
}

/// One TCP connect's answer, or the agent's error.
fn tcp_of(tcp: &Result<pb::TcpConnectResult, tonic::Status>) -> Tcp {
    match tcp {
        Ok(t) => super::probes::tcp(t),
        Err(s) => Tcp {
            port: 0,
            address: String::new(),
            outcome: "error".into(),
            connect_ms: 0.0,
            message: s.message().to_string(),
        },
    }
}

impl Render for Mesh {
    fn text(&self) -> String {
        let mut out = format!(
            "{} nodes ({}), {} pairs probed, {} broken\n",
            self.nodes.len(),
            self.nodes.join(", "),
            self.matrix.len(),
            self.broken.len()
        );
        for a in self.agents.iter().filter(|a| a.status != NodeOutcome::Ok) {
            out.push_str(&format!(
                "agent on {} {}: {}\n",
                a.node,
                crate::tools::label(&a.status),
                a.reason
            ));
        }
        let mut worst_rtt: f64 = 0.0;
        let mut worst_connect: f64 = 0.0;
        let mut ok = 0;
        for c in &self.matrix {
            if c.icmp.ok && c.tcp.outcome == "open" {
                ok += 1;
                worst_rtt = worst_rtt.max(c.icmp.rtt_ms.unwrap_or(0.0));
                worst_connect = worst_connect.max(c.tcp.connect_ms);
                continue;
            }
            out.push_str(&format!(
                "BROKEN {} -> {}: icmp {}{} tcp {} {}\n",
                c.from,
                c.to,
                if c.icmp.ok { "ok" } else { "FAIL" },
                if c.icmp.errors.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", c.icmp.errors.join("; "))
                },
                c.tcp.outcome,
                c.tcp.message
            ));
        }
        if ok > 0 {
            out.push_str(&format!(
                "{ok} pair(s) ok: icmp rtt at most {worst_rtt} ms, tcp connect at most {worst_connect} ms\n"
            ));
        }
        if let Some(n) = &self.note {
            out.push_str(n);
            out.push('\n');
        }
        out
    }
}
