//! What `GET /metrics` serves, through `prometheus-client` (the Prometheus
//! text exposition, OpenMetrics flavour): tool calls by tool and outcome, and
//! latency histograms per tool call, per agent call and per Kubernetes
//! request — the same three the tracing spans (`tool`, `agent`, `kube`) time
//! — the last known status of each agent, and the live MCP sessions.
//!
//! One set per process, as Prometheus scrapes a process: [`global`]. The
//! recorders take plain strings, so this module depends on nothing else in
//! the crate and every layer can record.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Latency buckets, in seconds: 1 ms (a local agent's answer) to 10 s (a
/// tool deadline's order).
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

fn latency() -> Histogram {
    Histogram::new(BUCKETS)
}

type Latencies<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolOutcome {
    tool: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabel {
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentCall {
    node: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentStatus {
    node: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KubeRequest {
    verb: &'static str,
    resource: String,
    outcome: &'static str,
}

/// The metrics of one aggregator process.
pub struct Metrics {
    registry: Registry,
    tool_calls: Family<ToolOutcome, Counter>,
    tool_latency: Latencies<ToolLabel>,
    agent_latency: Latencies<AgentCall>,
    agent_up: Family<AgentStatus, Gauge>,
    /// Each node's status series now in `agent_up`: a node has one, the
    /// status it was last seen in.
    agent_status: Mutex<HashMap<String, &'static str>>,
    kube_latency: Latencies<KubeRequest>,
    sessions: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let tool_calls = Family::<ToolOutcome, Counter>::default();
        registry.register(
            "labscope_tool_calls",
            "Tool calls by tool and outcome (ok, error)",
            tool_calls.clone(),
        );
        let tool_latency: Latencies<ToolLabel> = Family::new_with_constructor(latency);
        registry.register_with_unit(
            "labscope_tool_duration",
            "Tool call latency, whole calls (agents and Kubernetes included)",
            Unit::Seconds,
            tool_latency.clone(),
        );
        let agent_latency: Latencies<AgentCall> = Family::new_with_constructor(latency);
        registry.register_with_unit(
            "labscope_agent_call_duration",
            "Agent call latency by node and outcome (ok, unavailable, timeout, error)",
            Unit::Seconds,
            agent_latency.clone(),
        );
        let agent_up = Family::<AgentStatus, Gauge>::default();
        registry.register(
            "labscope_agent_up",
            "Last known agent status (1 ok, 0 otherwise), by node and status",
            agent_up.clone(),
        );
        let kube_latency: Latencies<KubeRequest> = Family::new_with_constructor(latency);
        registry.register_with_unit(
            "labscope_kube_request_duration",
            "Kubernetes API request latency by verb, resource and outcome (ok, error)",
            Unit::Seconds,
            kube_latency.clone(),
        );
        let sessions = Gauge::default();
        registry.register(
            "labscope_mcp_sessions",
            "Live MCP sessions over HTTP",
            sessions.clone(),
        );
        Self {
            registry,
            tool_calls,
            tool_latency,
            agent_latency,
            agent_up,
            agent_status: Mutex::default(),
            kube_latency,
            sessions,
        }
    }
}

/// This process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);
    &METRICS
}

fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

impl Metrics {
    /// Records one tool call.
    pub fn record_call(&self, tool: &str, ok: bool, took: Duration) {
        self.tool_calls
            .get_or_create(&ToolOutcome {
                tool: tool.to_string(),
                outcome: outcome(ok),
            })
            .inc();
        self.tool_latency
            .get_or_create(&ToolLabel {
                tool: tool.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records one call to the agent of `node`, which ended in `status`
    /// (`ok`, `unavailable`, `timeout`, `error`) after `took` (`None` when
    /// no call was made: the agent is backing off); the node's
    /// `labscope_agent_up` series becomes that status.
    pub fn record_agent(&self, node: &str, status: &'static str, took: Option<Duration>) {
        if let Some(took) = took {
            self.agent_latency
                .get_or_create(&AgentCall {
                    node: node.to_string(),
                    outcome: status,
                })
                .observe(took.as_secs_f64());
        }
        let Ok(mut last) = self.agent_status.lock() else {
            return;
        };
        if let Some(before) = last.insert(node.to_string(), status)
            && before != status
        {
            self.agent_up.remove(&AgentStatus {
                node: node.to_string(),
                status: before,
            });
        }
        self.agent_up
            .get_or_create(&AgentStatus {
                node: node.to_string(),
                status,
            })
            .set(i64::from(status == "ok"));
    }

    /// Records one Kubernetes API request.
    pub fn record_kube(&self, verb: &'static str, resource: &str, ok: bool, took: Duration) {
        self.kube_latency
            .get_or_create(&KubeRequest {
                verb,
                resource: resource.to_string(),
                outcome: outcome(ok),
            })
            .observe(took.as_secs_f64());
    }

    /// The live MCP sessions over HTTP, as of now.
    pub fn set_sessions(&self, n: usize) {
        self.sessions.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The text exposition (`# EOF` last).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_one_status_per_agent() {
        let m = Metrics::default();
        m.record_call("list_nodes", true, Duration::from_millis(3));
        m.record_call("list_nodes", false, Duration::from_millis(300));
        m.record_agent("pi5-1", "timeout", Some(Duration::from_millis(1500)));
        m.record_agent("pi5-1", "ok", Some(Duration::from_millis(2)));
        m.record_kube("list", "pods", true, Duration::from_millis(7));
        m.set_sessions(2);
        let text = m.render();
        for line in [
            "labscope_tool_calls_total{tool=\"list_nodes\",outcome=\"ok\"} 1",
            "labscope_tool_calls_total{tool=\"list_nodes\",outcome=\"error\"} 1",
            "labscope_tool_duration_seconds_bucket{le=\"0.005\",tool=\"list_nodes\"} 1",
            "labscope_tool_duration_seconds_count{tool=\"list_nodes\"} 2",
            "labscope_agent_call_duration_seconds_count{node=\"pi5-1\",outcome=\"timeout\"} 1",
            "labscope_agent_up{node=\"pi5-1\",status=\"ok\"} 1",
            "labscope_kube_request_duration_seconds_bucket{le=\"0.01\",verb=\"list\",resource=\"pods\",outcome=\"ok\"} 1",
            "labscope_mcp_sessions 2",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
        // The node's earlier status is gone, not left behind at 0.
        assert!(!text.contains("status=\"timeout\""), "{text}");
    }
}
