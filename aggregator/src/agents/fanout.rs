//! Ask many agents at once: a deadline per node, a cap on concurrent calls,
//! and an honest per-node outcome (`ok | unavailable | timeout | error`) so
//! that one slow or dead node never stalls or fails the whole answer.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use tonic::{Code, Status};

use super::AgentHandle;

/// How one node's call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeOutcome {
    /// Answered.
    Ok,
    /// Could not be reached (connection refused, reset, backoff).
    Unavailable,
    /// Did not answer within the per-node deadline.
    Timeout,
    /// Answered with an error.
    Error,
}

impl NodeOutcome {
    /// Its name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeOutcome::Ok => "ok",
            NodeOutcome::Unavailable => "unavailable",
            NodeOutcome::Timeout => "timeout",
            NodeOutcome::Error => "error",
        }
    }
}

/// One node's result.
#[derive(Debug, Clone)]
pub struct NodeResult<T> {
    /// Node name.
    pub node: String,
    /// Outcome.
    pub outcome: NodeOutcome,
    /// The answer when `outcome` is `Ok`.
    pub value: Option<T>,
    /// Why, when not `Ok`.
    pub reason: String,
    /// The gRPC status code when the agent answered with an error.
    pub code: Option<Code>,
    /// The request field the agent refused and why (its BadRequest error
    /// details), when it refused one.
    pub invalid_field: Option<(String, String)>,
    /// Time spent on this node.
    pub elapsed: Duration,
}

/// Classifies a gRPC status from an agent call: transport failures (and
/// cancellations by the transport) are
/// "unavailable" (tonic reports them as UNAVAILABLE/UNKNOWN with a transport
/// message), an agent's own UNAVAILABLE with a reason is an "error".
pub fn classify(status: &Status) -> NodeOutcome {
    match status.code() {
        Code::DeadlineExceeded => NodeOutcome::Timeout,
        // Our own deadline is enforced in ask_one and reported as Timeout
        // there; a Cancelled status comes from the transport when the peer
        // dropped the connection (e.g. it answered something that is not HTTP/2).
        Code::Cancelled => NodeOutcome::Unavailable,
        Code::Unavailable | Code::Unknown | Code::Internal if is_transport(status) => {
            NodeOutcome::Unavailable
        }
        _ => NodeOutcome::Error,
    }
}

/// What went wrong, for people: the status message and, when tonic kept
/// the underlying error (a TLS refusal, a refused connection), its most
/// specific cause — "operation was canceled" alone explains nothing.
pub fn reason(status: &Status) -> String {
    let message = status.message().to_string();
    let mut cause = None;
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        let text = e.to_string();
        if !text.is_empty() && !message.contains(&text) {
            cause = Some(text);
        }
        source = e.source();
    }
    match cause {
        Some(c) => format!("{message}: {c}"),
        None => message,
    }
}

/// Whether tonic made `status` from a transport failure (a refused or
/// reset connection, TLS, a peer that is not HTTP/2): it keeps the error as
/// the status's source, so the types say it, not the message. An agent's
/// own UNAVAILABLE ("iptables-save failed") has no such source.
fn is_transport(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::transport::Error>()
            || e.is::<hyper::Error>()
            || e.is::<hyper_util::client::legacy::Error>()
            || e.is::<std::io::Error>()
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// Runs `call` against every agent in `agents` with at most `concurrency` in
/// flight and `deadline` per node. Results come back in the input order.
pub async fn fan_out_with_deadline<T, F, Fut>(
    agents: Vec<AgentHandle>,
    deadline: Duration,
    concurrency: usize,
    call: F,
) -> Vec<NodeResult<T>>
where
    F: Fn(AgentHandle) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let futures = agents.into_iter().enumerate().map(|(i, agent)| {
        let fut = call(agent.clone());
        async move { (i, ask_one(agent, deadline, fut).await) }
    });
    let mut results: Vec<(usize, NodeResult<T>)> = futures::stream::iter(futures)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Asks one agent with a deadline, honouring and updating its backoff.
pub async fn ask_one<T>(
    agent: AgentHandle,
    deadline: Duration,
    fut: impl Future<Output = Result<T, Status>>,
) -> NodeResult<T> {
    let started = Instant::now();
    let mut result = NodeResult {
        node: agent.name.clone(),
        outcome: NodeOutcome::Ok,
        value: None,
        reason: String::new(),
        code: None,
        invalid_field: None,
        elapsed: Duration::ZERO,
    };
    if let Some((outcome, reason)) = agent.backing_off() {
        result.outcome = outcome;
        result.reason = reason;
        crate::metrics::global().record_agent(&agent.name, outcome.as_str(), None);
        return result;
    }
    // One `agent` span per call: the node, then its outcome and duration
    // at debug level (`RUST_LOG=labscope=debug`).
    let span = tracing::debug_span!("agent", node = %agent.name);
    let answer = {
        use tracing::Instrument;
        tokio::time::timeout(deadline, fut)
            .instrument(span.clone())
            .await
    };
    match answer {
        Err(_) => {
            result.outcome = NodeOutcome::Timeout;
            result.reason = format!("no answer within {} ms", deadline.as_millis());
            agent.record_failure(NodeOutcome::Timeout, &result.reason);
        }
        Ok(Ok(v)) => {
            result.value = Some(v);
            agent.record_success();
        }
        Ok(Err(status)) => {
            result.outcome = classify(&status);
            result.code = Some(status.code());
            result.invalid_field = {
                use tonic_types::StatusExt;
                status
                    .get_details_bad_request()
                    .and_then(|b| b.field_violations.into_iter().next())
                    .map(|v| (v.field, v.description))
            };
            result.reason = reason(&status);
            match result.outcome {
                NodeOutcome::Unavailable | NodeOutcome::Timeout => {
                    agent.record_failure(result.outcome, &result.reason)
                }
                // The agent answered: it is alive, whatever it said.
                _ => agent.record_success(),
            }
        }
    }
    result.elapsed = started.elapsed();
    crate::metrics::global().record_agent(
        &agent.name,
        result.outcome.as_str(),
        Some(result.elapsed),
    );
    span.in_scope(|| {
        tracing::debug!(
            micros = result.elapsed.as_micros() as u64,
            outcome = ?result.outcome,
            reason = %result.reason,
            "agent call"
        )
    });
    result
}
