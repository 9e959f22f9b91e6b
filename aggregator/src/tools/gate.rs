//! Every call goes through here: the tool found, its span and metrics, the
//! tool deadline for Kubernetes tools, and for an operation the gate —
//! mutations on, its allowlist, a person's confirmation, one audit line
//! whatever happens.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{
    Call, Confirmation, ErrorCode, PENDING_RULE, ToolContext, ToolDef, ToolError, ToolOutput,
};

/// Finds and runs a tool, recording metrics.
pub async fn call(
    ctx: Arc<ToolContext>,
    tools: &[ToolDef],
    name: &str,
    args: Map<String, Value>,
    call: Call,
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
    use tracing::Instrument;
    // One `tool` span per call: the agent calls and Kubernetes requests it
    // makes are its children (a warning inside names the tool); its
    // duration and outcome are logged at debug (`RUST_LOG=labscope=debug`),
    // the latency histograms are on /metrics.
    let span = tracing::info_span!("tool", name = tool.name);
    let started = std::time::Instant::now();
    let result = run_tool(ctx, tool, args, call)
        .instrument(span.clone())
        .await;
    span.in_scope(|| match &result {
        Ok(_) => tracing::debug!(micros = started.elapsed().as_micros() as u64, "tool call"),
        Err(e) => tracing::debug!(
            micros = started.elapsed().as_micros() as u64,
            code = ?e.code,
            "tool call failed"
        ),
    });
    result
}

/// [`call`] inside its span: the gate for mutating tools, the tool deadline
/// for Kubernetes tools, the metrics.
async fn run_tool(
    ctx: Arc<ToolContext>,
    tool: &ToolDef,
    args: Map<String, Value>,
    call: Call,
) -> Result<ToolOutput, ToolError> {
    let name = tool.name;
    let started = std::time::Instant::now();
    let metrics = crate::metrics::global();
    if tool.mutates() {
        return audited(ctx, tool, args, call).await;
    }
    let result = match tool.toolset.uses_kubernetes() {
        false => tool.run(ctx, args, call).await,
        true => {
            let deadline = ctx.settings.tool_deadline;
            match tokio::time::timeout(deadline, tool.run(ctx, args, call)).await {
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

/// Runs a mutating tool through the gate, writing one audit line whatever
/// happens: refused by the global gate or by the tool's allowlist, failed,
/// or performed.
async fn audited(
    ctx: Arc<ToolContext>,
    tool: &ToolDef,
    args: Map<String, Value>,
    call: Call,
) -> Result<ToolOutput, ToolError> {
    use crate::safety::audit::{Entry, Outcome, redact_args};
    let started = std::time::Instant::now();
    let arguments = redact_args(&args);
    let caller = call.caller().to_string();
    let safety = ctx.safety.clone();
    let metrics = crate::metrics::global();
    let now = crate::cluster::time::rfc3339(crate::cluster::time::now(None));
    let mut confirmed = None;
    // Refused by the gate, or with arguments that could not run, before
    // anybody is asked anything.
    let gated = match safety.policy.gate(tool.name) {
        Err(refusal) => Err(ToolError::from(refusal)),
        Ok(()) => match tool.check_args(&args, &safety.policy) {
            Err(e) => Err(e),
            Ok(()) => confirm(&ctx, tool, &arguments, &call).await,
        },
    };
    let result = match gated {
        Err(e) => Err(e),
        Ok(how) => {
            confirmed = Some(how);
            let deadline = ctx.settings.tool_deadline;
            match tokio::time::timeout(deadline, tool.run(ctx, args, call)).await {
                Ok(r) => r,
                Err(_) => Err(ToolError::new(
                    ErrorCode::Timeout,
                    format!(
                        "{} did not finish within {} (the tool deadline); the change may or may not have been made",
                        tool.name,
                        crate::cluster::error::human_duration(deadline)
                    ),
                    "check the object's state (get_flux_status, describe_resource) before trying again",
                )),
            }
        }
    };
    let (outcome, rule, message) = match &result {
        Ok(out) => (
            if out.unchanged {
                Outcome::NoChange
            } else {
                Outcome::Performed
            },
            None,
            out.text.lines().next().unwrap_or_default().to_string(),
        ),
        Err(e) if e.code == ErrorCode::Refused => {
            (Outcome::Refused, e.rule.clone(), e.message.clone())
        }
        Err(e) => (Outcome::Failed, None, e.message.clone()),
    };
    // A call stopped to ask (MCP 2026-07-28) has done nothing yet: its
    // retry with the answer is the call the log records.
    if matches!(&result, Err(e) if e.rule.as_deref() == Some(PENDING_RULE)) {
        return result;
    }
    safety.audit.record(&Entry {
        time: now,
        tool: tool.name.to_string(),
        arguments,
        caller,
        outcome,
        rule,
        confirmed,
        message,
    });
    metrics.record_call(tool.name, result.is_ok(), started.elapsed());
    result
}

/// The question put to a person before `tool` runs: what it does, to what,
/// and whether repeating it repeats the change.
pub fn change_question(tool: &ToolDef, arguments: &Value) -> String {
    let args: Vec<String> = arguments
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    let effect = if tool.hints.destructive {
        "This changes what is running"
    } else {
        "This adds to what is running"
    };
    format!(
        "labscope {} — {} ({}). {effect}{}. Go ahead?",
        tool.name,
        tool.title,
        if args.is_empty() {
            "no arguments".to_string()
        } else {
            args.join(", ")
        },
        if tool.hints.idempotent {
            ""
        } else {
            ", again each time it is confirmed"
        },
    )
}

/// Asks the call's confirmer; with nobody to ask, `[mutations]
/// confirm_fallback` decides.
async fn confirm(
    ctx: &ToolContext,
    tool: &ToolDef,
    arguments: &Value,
    call: &Call,
) -> Result<Confirmation, ToolError> {
    let asked = match &call.confirmer {
        Some(c) => c.confirm(&change_question(tool, arguments)).await?,
        None => None,
    };
    match asked {
        Some(how) => Ok(how),
        None => match ctx.safety.policy.mutations().confirm_fallback {
            crate::config::file::ConfirmFallback::Allow => Ok(Confirmation::Fallback),
            crate::config::file::ConfirmFallback::Refuse => Err(ToolError {
                code: ErrorCode::Refused,
                message: format!(
                    "{} needs a person's yes, and nobody can be asked here (an MCP client without \
                     elicitation, or a CLI without a terminal)",
                    tool.name
                ),
                hint:
                    "run it from a client that can ask its user, or the CLI on a terminal or with \
                       --yes; or set [mutations] confirm_fallback = \"allow\""
                        .into(),
                rule: Some("mutations.confirm_fallback".into()),
            }),
        },
    }
}
