//! Machine-readable failure codes, shared by every layer: a tool error
//! carries one, and so does a part of an answer that could not be read
//! ([`crate::assess::FailedPart`]).

use serde::Serialize;

/// Machine-readable failure codes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// An argument is missing, mistyped or out of range.
    InvalidArgument,
    /// No such node (the hint names the nodes that have agents).
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
    /// The node exists but has no usable agent (none at all: no pod, or
    /// not ready), or no node has one.
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
    /// A mutation rule refused the call (mutations off, `--read-only`, or
    /// not in the tool's allowlist); nothing was changed.
    Refused,
    /// The object is not in a state this change applies to (a run already
    /// active, a release not stuck); nothing was changed.
    Conflict,
    /// A service (Pi-hole) is rate limiting labscope or has no free session.
    RateLimited,
    /// A service could not be reached.
    ServiceUnreachable,
    /// A service answered with an error or an unreadable answer.
    ServiceError,
}
