//! What get_cluster_health answers: ranked issues, counts, each sub-check's
//! verdict.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use crate::assess::events::EventGroup;
use crate::assess::pods::{PodHistory, PodProblem};

/// How bad an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something is down or cannot recover by itself.
    Critical,
    /// Degraded, or a check could not run.
    Warning,
}

/// One issue, with its evidence and the tool to call next.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Issue {
    /// critical or warning.
    pub severity: Severity,
    /// NodeNotReady, CrashLoopBackOff, FluxStuck, CheckFailed, …
    pub kind: String,
    /// kind/namespace/name (or a scope such as "namespace x").
    pub object: String,
    /// What shows it.
    pub evidence: String,
    /// The tool that says more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_tool: Option<String>,
    /// Warning events about exactly this object.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

/// An issue with no events attached yet.
pub fn issue(
    severity: Severity,
    kind: &str,
    object: impl Into<String>,
    evidence: impl Into<String>,
    next: Option<&str>,
) -> Issue {
    Issue {
        severity,
        kind: kind.to_string(),
        object: object.into(),
        evidence: evidence.into(),
        next_tool: next.map(str::to_string),
        events: Vec::new(),
    }
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthVerdict {
    /// No issue.
    Healthy,
    /// Warnings only.
    Degraded,
    /// A critical issue.
    Critical,
}

/// Node counts.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeCounts {
    /// Nodes.
    pub total: usize,
    /// Ready.
    pub ready: usize,
}

/// Pod counts and problems.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodCounts {
    /// Pods listed.
    pub total: usize,
    /// Live problems.
    pub problems: usize,
    /// The problem pods.
    pub problem_pods: Vec<PodProblem>,
    /// Pods left Failed by their node and already replaced.
    pub replaced_pods: usize,
    /// Those pods.
    pub history: Vec<PodHistory>,
}

/// One sub-check's verdict.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Its verdict (healthy, degraded, critical, incomplete, not installed, error, …).
    pub verdict: String,
    /// Why it could not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Flux: failing objects not explained by another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_causes: Option<usize>,
    /// Flux: failing objects explained by a root cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consequences: Option<usize>,
}

/// A sub-check's verdict with nothing more to say.
pub fn check(verdict: impl Into<String>) -> Check {
    Check {
        verdict: verdict.into(),
        message: None,
        root_causes: None,
        consequences: None,
    }
}

/// The cluster's health.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// healthy, degraded or critical.
    pub verdict: HealthVerdict,
    /// Critical first.
    pub issues: Vec<Issue>,
    /// Nodes (absent when they could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeCounts>,
    /// Pods (absent when they could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodCounts>,
    /// Each sub-check's verdict.
    pub checks: BTreeMap<String, Check>,
    /// Warning events of the last hour, newest first, de-duplicated.
    pub warning_events: Vec<EventGroup>,
    /// The namespace asked about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The clock used (Unix seconds).
    pub now: i64,
}
