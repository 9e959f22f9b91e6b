//! The tool registry: every tool's definition (name, schemas, annotations),
//! its argument parsing and validation, and a uniform result shape, served
//! identically over MCP and the CLI. One module per tool family.

pub mod args;
pub mod batch;
pub mod cluster;
pub mod flux;
pub mod node;
pub mod render;
pub mod resources;
pub mod workloads;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::agents::AgentPool;
use crate::metrics::Metrics;

/// Settings every tool sees.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Deadline per node for agent calls.
    pub agent_deadline: Duration,
    /// Most agent calls in flight in one fan-out.
    pub fanout_concurrency: usize,
    /// DNS server `test_dns_query` asks when none is given (the primary Pi-hole).
    pub default_dns_server: Option<String>,
    /// Fixed "now" (Unix seconds) for fixtures and tests; `None` reads the clock.
    pub now: Option<i64>,
    /// Zone for CronJobs without spec.timeZone (the controller's local zone).
    pub cron_time_zone: String,
    /// CronJobs (namespace/name) that `get_backup_status` always includes.
    pub backup_cronjobs: Vec<String>,
    /// Longest a cluster tool may take; a composite tool answers with the
    /// parts it has by then and names the part that timed out.
    pub tool_deadline: Duration,
    /// Namespace of the Tailscale operator's pods.
    pub tailscale_namespace: String,
}

/// Default [`Settings::tool_deadline`].
pub const DEFAULT_TOOL_DEADLINE: Duration = Duration::from_secs(20);

impl Default for Settings {
    fn default() -> Self {
        Self {
            agent_deadline: Duration::from_secs(3),
            fanout_concurrency: 32,
            default_dns_server: None,
            now: None,
            cron_time_zone: "UTC".into(),
            backup_cronjobs: Vec::new(),
            tool_deadline: DEFAULT_TOOL_DEADLINE,
            tailscale_namespace: "tailscale".into(),
        }
    }
}

/// What a tool call can use.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// Agents by node.
    pub pool: AgentPool,
    /// The Kubernetes API, when configured.
    pub cluster: Option<crate::cluster::Cluster>,
    /// Settings.
    pub settings: Settings,
    /// Counters for /metrics.
    pub metrics: Arc<Metrics>,
}

/// A successful tool result: structured content plus a compact text rendering.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    /// `structuredContent`, conforming to the tool's output schema.
    pub structured: Value,
    /// Text rendering for clients that show text.
    pub text: String,
}

/// Machine-readable failure codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// An argument is missing, mistyped or out of range.
    InvalidArgument,
    /// The node has no agent (or does not exist).
    UnknownNode,
    /// The agent could not be reached.
    AgentUnavailable,
    /// The agent did not answer in time.
    AgentTimeout,
    /// The agent lacks a privilege for this call.
    PermissionDenied,
    /// The thing asked for does not exist.
    NotFound,
    /// The agent answered with another error.
    AgentError,
    /// No tool of that name.
    UnknownTool,
    /// The node exists but its agent is not usable.
    NoAgent,
    /// Configuration is missing for this call.
    NotConfigured,
    /// The Kubernetes API rejected labscope's credentials (HTTP 401).
    Unauthenticated,
    /// The Kubernetes API (or an aggregated API) failed: 429, 5xx, a
    /// malformed answer or a refused request.
    ApiServerError,
    /// The Kubernetes API could not be reached.
    ApiUnreachable,
    /// The call or one of its requests ran out of time.
    Timeout,
}

/// A failed tool call: what failed, why, and what to do next.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct ToolError {
    /// Code.
    pub code: ErrorCode,
    /// What failed and why.
    pub message: String,
    /// What to do next.
    pub hint: String,
}

impl ToolError {
    /// A new error.
    pub fn new(code: ErrorCode, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// An invalid argument, naming it.
    pub fn invalid(arg: &str, message: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::InvalidArgument,
            format!("argument {arg:?}: {message}"),
            "fix the argument and call again; `labscope tools` or tools/list shows each tool's schema",
        )
    }

    /// Structured form (`{code, message, hint}`).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Boxed future of a tool run.
pub type ToolFuture = Pin<Box<dyn Future<Output = Result<ToolOutput, ToolError>> + Send>>;

/// Where a tool's answers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// The node agents (bounded by per-node deadlines and the tool's own timeouts).
    Node,
    /// The Kubernetes API (bounded by [`Settings::tool_deadline`]).
    Cluster,
}

/// One tool.
#[derive(Clone)]
pub struct ToolDef {
    /// Where its answers come from.
    pub family: Family,
    /// Name (kept compatible with the predecessor).
    pub name: &'static str,
    /// Human title.
    pub title: &'static str,
    /// One-paragraph description.
    pub description: &'static str,
    /// JSON Schema of the arguments.
    pub input_schema: Value,
    /// JSON Schema of `structuredContent`.
    pub output_schema: Value,
    /// Never changes anything.
    pub read_only: bool,
    /// May destroy or overwrite.
    pub destructive: bool,
    /// Same call, same effect.
    pub idempotent: bool,
    /// Talks to things outside labscope (probes, external services).
    pub open_world: bool,
    /// Runs the tool.
    pub run: fn(Arc<ToolContext>, Map<String, Value>) -> ToolFuture,
}

impl std::fmt::Debug for ToolDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolDef").field("name", &self.name).finish()
    }
}

/// All tools, in listing order.
pub fn registry() -> Vec<ToolDef> {
    let mut tools = node::tools();
    tools.extend(cluster::tools());
    tools.extend(flux::tools());
    tools.extend(batch::tools());
    tools.extend(resources::tools());
    tools.extend(workloads::tools());
    tools
}

/// Finds and runs a tool, recording metrics.
pub async fn call(
    ctx: Arc<ToolContext>,
    tools: &[ToolDef],
    name: &str,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let Some(tool) = tools.iter().find(|t| t.name == name) else {
        return Err(ToolError::new(
            ErrorCode::UnknownTool,
            format!("no tool named {name:?}"),
            format!(
                "available tools: {}",
                tools.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    let started = std::time::Instant::now();
    let metrics = ctx.metrics.clone();
    let result = match tool.family {
        Family::Node => (tool.run)(ctx, args).await,
        Family::Cluster => {
            let deadline = ctx.settings.tool_deadline;
            match tokio::time::timeout(deadline, (tool.run)(ctx, args)).await {
                Ok(r) => r,
                Err(_) => Err(ToolError::new(
                    ErrorCode::Timeout,
                    format!(
                        "{name} did not finish within {} (the tool deadline)",
                        crate::cluster::error::human_duration(deadline)
                    ),
                    "the Kubernetes API is slow or hanging; get_cluster_health answers with the parts it could read; \
                     raise --tool-deadline-ms if the API server is merely slow",
                )),
            }
        }
    };
    metrics.record_call(tool.name, result.is_ok(), started.elapsed());
    result
}
