//! `list_nodes`: every node with its agent's status and, with a cluster, its
//! Kubernetes facts — the first call, to see which nodes can answer.

use std::sync::Arc;

use labscope_proto::v1 as pb;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::agents::{NodeOutcome, fan_out_with_deadline};
use crate::cluster::nodes::NodeFacts;
use crate::tools::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};

/// No arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {}

/// Every node, and how many can answer.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeList {
    /// One row per node, by name.
    pub nodes: Vec<NodeRow>,
    /// Counts and where the node list came from.
    pub summary: Summary,
}

/// The state of a node's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Answered.
    Ok,
    /// Could not be reached.
    Unavailable,
    /// Did not answer in time.
    Timeout,
    /// Answered with an error.
    Error,
    /// No agent runs on this node.
    None,
}

impl From<NodeOutcome> for AgentState {
    fn from(o: NodeOutcome) -> Self {
        match o {
            NodeOutcome::Ok => AgentState::Ok,
            NodeOutcome::Unavailable => AgentState::Unavailable,
            NodeOutcome::Timeout => AgentState::Timeout,
            NodeOutcome::Error => AgentState::Error,
        }
    }
}

/// A node's agent.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// ok, unavailable, timeout, error, or none.
    pub status: AgentState,
    /// Why, when not ok.
    pub reason: String,
    /// Round trip of the info call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Where it was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Agent version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Memory in bytes.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    /// MemTotal.
    pub total_bytes: u64,
    /// MemAvailable.
    pub available_bytes: u64,
}

/// Conntrack table use.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConntrackUsage {
    /// Entries in the table.
    pub count: u64,
    /// nf_conntrack_max.
    pub max: u64,
    /// count / max.
    pub usage_percent: f64,
}

/// One node.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeRow {
    /// Node name.
    pub node: String,
    /// Kubernetes facts, with a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<NodeFacts>,
    /// Its agent.
    pub agent: AgentStatus,
    /// Kernel release (from the agent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// OS name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Machine architecture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Uptime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    /// Load averages over 1, 5 and 15 minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<[f64; 3]>,
    /// Memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// Conntrack table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<ConntrackUsage>,
    /// Capabilities the agent holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
}

/// Whether the Kubernetes API answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum KubeState {
    /// Nodes were listed.
    #[serde(rename = "ok")]
    Ok,
    /// The list failed.
    #[serde(rename = "error")]
    Error,
    /// No cluster configured (local mode or --agent).
    #[serde(rename = "not configured")]
    NotConfigured,
}

/// The Kubernetes side of the list.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeStatus {
    /// ok, error, or not configured.
    pub status: KubeState,
    /// Where the configuration came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A failure with what to do about it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Problem {
    /// What failed.
    pub message: String,
    /// What to do.
    pub hint: String,
}

/// Counts.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Nodes.
    pub total: usize,
    /// Agents that answered.
    pub agents_ok: usize,
    /// Agents that did not.
    pub agents_not_ok: usize,
    /// Nodes with no agent.
    pub without_agent: usize,
    /// The Kubernetes API.
    pub kubernetes: KubeStatus,
    /// An in-process agent for this machine.
    pub local_mode: bool,
    /// Agent discovery failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_error: Option<Problem>,
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "list_nodes",
            title: "Nodes and agents",
            description: "Each node: agent, kernel, load, memory, conntrack use, Kubernetes state.",
            toolset: Toolset::Node,
            hints: Hints::READ,
        },
        run,
    )
}

async fn run(ctx: Arc<ToolContext>, _args: Args, call: Call) -> Result<NodeList, ToolError> {
    let discovery = ctx.pool.discovery();
    let agents = ctx.pool.all();
    let what = format!("asking {} agent(s)", agents.len());
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
    let (results, kube) = call
        .ticking(&what, ctx.settings.agent_deadline, async {
            tokio::join!(fanout, kube)
        })
        .await;
    let (k8s_nodes, kubernetes) = kube_status(&ctx, kube);
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
        let mut row = NodeRow {
            node: name.clone(),
            kubernetes: k8s_nodes.iter().find(|n| &n.name == name).cloned(),
            agent: AgentStatus {
                status: AgentState::None,
                reason: String::new(),
                latency_ms: None,
                url: None,
                version: None,
            },
            kernel: None,
            os: None,
            arch: None,
            uptime_seconds: None,
            load: None,
            memory: None,
            conntrack: None,
            capabilities: None,
        };
        match results.iter().find(|r| &r.node == name) {
            None => {
                without_agent += 1;
                row.agent.reason = discovery
                    .problems
                    .iter()
                    .find(|p| &p.node == name)
                    .map(|p| format!("{} ({})", p.reason, p.pod))
                    .unwrap_or_else(|| "no labscope-agent pod on this node".into());
            }
            Some(r) => {
                row.agent.status = r.outcome.into();
                row.agent.reason = r.reason.clone();
                row.agent.latency_ms = Some(r.elapsed.as_secs_f64() * 1000.0);
                row.agent.url = ctx.pool.get(&r.node).map(|a| a.url.clone());
                if let Some(info) = &r.value {
                    ok += 1;
                    fill(&mut row, info);
                }
            }
        }
        nodes.push(row);
    }
    let total = names.len();
    Ok(NodeList {
        nodes,
        summary: Summary {
            total,
            agents_ok: ok,
            agents_not_ok: total - ok - without_agent,
            without_agent,
            kubernetes,
            local_mode: ctx.pool.local_mode,
            discovery_error: discovery
                .error
                .map(|(message, hint)| Problem { message, hint }),
        },
    })
}

/// What the Kubernetes API said of the nodes: the nodes, and whether it
/// could be asked.
fn kube_status(
    ctx: &ToolContext,
    kube: Option<Result<Vec<crate::cluster::nodes::NodeFacts>, crate::cluster::Error>>,
) -> (Vec<crate::cluster::nodes::NodeFacts>, KubeStatus) {
    match kube {
        None => (
            Vec::new(),
            KubeStatus {
                status: KubeState::NotConfigured,
                source: None,
                message: None,
                hint: None,
            },
        ),
        Some(Ok(nodes)) => (
            nodes,
            KubeStatus {
                status: KubeState::Ok,
                source: ctx.cluster.as_ref().map(|c| c.source.clone()),
                message: None,
                hint: None,
            },
        ),
        Some(Err(e)) => (
            Vec::new(),
            KubeStatus {
                status: KubeState::Error,
                source: ctx.cluster.as_ref().map(|c| c.source.clone()),
                message: Some(e.to_string()),
                hint: Some(e.hint()),
            },
        ),
    }
}

/// A row's facts from its agent's answer.
fn fill(row: &mut NodeRow, info: &pb::NodeInfo) {
    let usage = if info.conntrack_max > 0 {
        info.conntrack_count as f64 * 100.0 / info.conntrack_max as f64
    } else {
        0.0
    };
    row.agent.version = Some(info.agent_version.clone());
    row.kernel = Some(info.kernel_release.clone());
    row.os = Some(info.os_pretty_name.clone());
    row.arch = Some(info.machine.clone());
    row.uptime_seconds = Some(info.uptime_seconds);
    row.load = Some([info.load1, info.load5, info.load15]);
    row.memory = Some(Memory {
        total_bytes: info.memory_total_bytes,
        available_bytes: info.memory_available_bytes,
    });
    row.conntrack = Some(ConntrackUsage {
        count: info.conntrack_count,
        max: info.conntrack_max,
        usage_percent: (usage * 10.0).round() / 10.0,
    });
    row.capabilities = Some(info.capabilities.clone());
}

impl Render for NodeList {
    fn text(&self) -> String {
        let sum = &self.summary;
        let kube = match sum.kubernetes.status {
            KubeState::Ok => "ok",
            KubeState::Error => "error",
            KubeState::NotConfigured => "not configured",
        };
        let mut out = format!(
            "{} nodes, {} agents ok, {} without an agent; Kubernetes: {kube}\n",
            sum.total, sum.agents_ok, sum.without_agent
        );
        if let (Some(m), Some(h)) = (&sum.kubernetes.message, &sum.kubernetes.hint) {
            out.push_str(&format!("Kubernetes error: {m} (hint: {h})\n"));
        }
        if let Some(e) = &sum.discovery_error {
            out.push_str(&format!(
                "agent discovery failed: {} (hint: {})\n",
                e.message, e.hint
            ));
        }
        for n in &self.nodes {
            if let Some(k) = &n.kubernetes {
                let ready = match k.ready {
                    Some(true) => "Ready".to_string(),
                    Some(false) => format!("NotReady ({})", k.ready_reason),
                    None => format!("Ready unknown ({})", k.ready_reason),
                };
                let mut line = format!(
                    "{}: {ready} {} {} kubelet {}",
                    n.node, k.kind, k.arch, k.kubelet_version
                );
                if !k.pressure.is_empty() {
                    line.push_str(&format!(" PRESSURE {}", k.pressure.join(",")));
                }
                if !k.taints.is_empty() {
                    line.push_str(&format!(" taints {}", k.taints.join(",")));
                }
                out.push_str(&line);
                out.push('\n');
            }
            match (&n.agent.status, &n.memory, &n.conntrack) {
                (AgentState::Ok, Some(m), Some(c)) => out.push_str(&format!(
                    "{}: agent ok v{} | {} {} | up {}h | load {} | mem {}/{} MiB free | conntrack {}/{} ({}%)\n",
                    n.node,
                    n.agent.version.as_deref().unwrap_or_default(),
                    n.kernel.as_deref().unwrap_or_default(),
                    n.arch.as_deref().unwrap_or_default(),
                    n.uptime_seconds.unwrap_or(0) / 3600,
                    n.load.map(|l| l[0]).unwrap_or(0.0),
                    m.available_bytes >> 20,
                    m.total_bytes >> 20,
                    c.count,
                    c.max,
                    c.usage_percent,
                )),
                (status, _, _) => out.push_str(&format!(
                    "{}: agent {} — {}\n",
                    n.node,
                    serde_json::to_value(status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    n.agent.reason
                )),
            }
        }
        out
    }
}
