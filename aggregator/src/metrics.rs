//! Counters for `GET /metrics` (Prometheus text format): tool calls by tool
//! and outcome, a latency histogram per tool, and the last known status of
//! each agent. Written by hand: a few counters do not need a registry crate.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::agents::{NodeOutcome, NodeResult};

const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Inner {
    calls: BTreeMap<(String, &'static str), u64>,
    latency: BTreeMap<String, Histogram>,
    agents: BTreeMap<String, NodeOutcome>,
}

/// The metrics of one aggregator process.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Records one tool call.
    pub fn record_call(&self, tool: &str, ok: bool, took: Duration) {
        let Ok(mut m) = self.inner.lock() else { return };
        *m.calls
            .entry((tool.to_string(), if ok { "ok" } else { "error" }))
            .or_default() += 1;
        let h = m.latency.entry(tool.to_string()).or_default();
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// Records the outcome of asking each agent.
    pub fn record_agents<T>(&self, results: &[NodeResult<T>]) {
        let Ok(mut m) = self.inner.lock() else { return };
        for r in results {
            m.agents.insert(r.node.clone(), r.outcome);
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let Ok(m) = self.inner.lock() else {
            return String::new();
        };
        let mut out = String::new();
        out.push_str("# HELP labscope_tool_calls_total Tool calls by tool and outcome.\n# TYPE labscope_tool_calls_total counter\n");
        for ((tool, outcome), n) in &m.calls {
            out.push_str(&format!(
                "labscope_tool_calls_total{{tool=\"{tool}\",outcome=\"{outcome}\"}} {n}\n"
            ));
        }
        out.push_str("# HELP labscope_tool_duration_seconds Tool call latency.\n# TYPE labscope_tool_duration_seconds histogram\n");
        for (tool, h) in &m.latency {
            for (i, b) in BUCKETS.iter().enumerate() {
                out.push_str(&format!(
                    "labscope_tool_duration_seconds_bucket{{tool=\"{tool}\",le=\"{b}\"}} {}\n",
                    h.counts[i]
                ));
            }
            out.push_str(&format!(
                "labscope_tool_duration_seconds_bucket{{tool=\"{tool}\",le=\"+Inf\"}} {}\n",
                h.count
            ));
            out.push_str(&format!(
                "labscope_tool_duration_seconds_sum{{tool=\"{tool}\"}} {}\n",
                h.sum
            ));
            out.push_str(&format!(
                "labscope_tool_duration_seconds_count{{tool=\"{tool}\"}} {}\n",
                h.count
            ));
        }
        out.push_str("# HELP labscope_agent_up Last known agent status (1 ok, 0 otherwise), by node and status.\n# TYPE labscope_agent_up gauge\n");
        for (node, outcome) in &m.agents {
            let status = serde_json::to_value(outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            out.push_str(&format!(
                "labscope_agent_up{{node=\"{node}\",status=\"{status}\"}} {}\n",
                u8::from(*outcome == NodeOutcome::Ok)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.record_call("list_nodes", true, Duration::from_millis(3));
        m.record_call("list_nodes", false, Duration::from_millis(300));
        let text = m.render();
        assert!(text.contains("labscope_tool_calls_total{tool=\"list_nodes\",outcome=\"ok\"} 1"));
        assert!(
            text.contains("labscope_tool_calls_total{tool=\"list_nodes\",outcome=\"error\"} 1")
        );
        assert!(
            text.contains(
                "labscope_tool_duration_seconds_bucket{tool=\"list_nodes\",le=\"0.005\"} 1"
            )
        );
        assert!(text.contains("labscope_tool_duration_seconds_count{tool=\"list_nodes\"} 2"));
    }
}
