//! The MCP face of the tool registry (rmcp): tools/list with input and
//! output schemas and annotations, tools/call with `structuredContent` plus a
//! text rendering, progress notifications when the client sends a progress
//! token.
//!
//! A failed call is an `isError` result **without** `structuredContent` (which
//! would have to match the tool's output schema: the TypeScript SDK rejects
//! a result that does not, and shows its own error instead of ours). Its text
//! is `error [code]: message` and `hint: …`; programs find the same in
//! `_meta["io.labscope/error"]` as `{code, message, hint}`. Transports are in
//! `main.rs` (stdio) and `http.rs`.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, Prompt, PromptArgument,
    PromptMessage, ProtocolVersion, Role, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler};
use serde_json::json;

use crate::server::prompts;
use crate::tools::{self, Call, ToolContext, ToolDef};

/// Instructions sent to clients at initialize: what is enabled here.
pub fn instructions(toolsets: &std::collections::BTreeSet<tools::Toolset>) -> String {
    let mut text =
        String::from("labscope sees into a small Kubernetes cluster and its nodes. Enabled: ");
    let enabled: Vec<&str> = toolsets.iter().map(|t| t.about()).collect();
    text.push_str(&enabled.join("; "));
    text.push('.');
    let off: Vec<&str> = tools::Toolset::ALL
        .iter()
        .filter(|t| !toolsets.contains(t))
        .map(|t| t.as_str())
        .collect();
    if !off.is_empty() {
        text.push_str(&format!(
            " Not enabled: {} (no Kubernetes API configured, no services in the config file, or --toolsets left them out).",
            off.join(", ")
        ));
    }
    text.push_str(
        " Lists are bounded: pass nextCursor back as cursor. A failed call's text is `error [code]: message` \
         and a hint saying what to do next.",
    );
    text
}

/// The MCP server handler; cheap to clone (one per HTTP session).
#[derive(Clone)]
pub struct McpServer {
    ctx: Arc<ToolContext>,
    tools: Arc<Vec<ToolDef>>,
    caller: Arc<str>,
    pending: Arc<crate::server::confirm::Pending>,
}

impl McpServer {
    /// A handler over `ctx` serving the tools of its toolsets (the mutating
    /// ones only when mutations are on).
    pub fn new(ctx: Arc<ToolContext>) -> Self {
        Self {
            tools: Arc::new(tools::served(&ctx)),
            ctx,
            caller: Arc::from("stdio"),
            pending: Arc::new(crate::server::confirm::Pending::new()),
        }
    }

    /// Who its calls come from, for the audit log ("stdio", or the HTTP
    /// API key's name).
    pub fn with_caller(mut self, caller: impl Into<Arc<str>>) -> Self {
        self.caller = caller.into();
        self
    }
}

/// Text size from which an answer counts as big (its JSON is a few times
/// larger), for returning memory after it.
const BIG_ANSWER: usize = 64 * 1024;

/// Where a failed call's `{code, message, hint}` is in `_meta`.
pub const ERROR_META_KEY: &str = "io.labscope/error";

/// The MCP description of a tool. Annotations say what a client needs to
/// decide whether to run it or ask first, each stated (MCP's defaults —
/// not read-only, destructive, open world — fit few tools here): read-only
/// or not; for a tool that changes something, whether it destroys (all but
/// creating a Job from a CronJob) and whether repeating it is safe; and
/// whether it reaches outside the cluster's own state (probes of targets
/// the caller names, the Pi-hole, Jellyfin and Immich services). The title
/// is said once, on the tool.
pub fn mcp_tool(t: &ToolDef) -> Tool {
    let mut annotations = ToolAnnotations::new();
    annotations.read_only_hint = Some(t.hints.read_only);
    if !t.hints.read_only {
        annotations.destructive_hint = Some(t.hints.destructive);
        annotations.idempotent_hint = Some(t.hints.idempotent);
    }
    annotations.open_world_hint = Some(t.hints.open_world);
    Tool::new(t.name, t.description, t.input_schema().clone())
        .with_title(t.title)
        .with_raw_output_schema(t.output_schema().clone())
        .with_annotations(annotations)
}

/// The MCP description of a prompt.
pub fn mcp_prompt(p: &prompts::PromptDef) -> Prompt {
    let args = p
        .args
        .iter()
        .map(|a| {
            let mut arg = PromptArgument::new(a.name).with_description(a.description);
            arg.required = Some(a.required);
            arg
        })
        .collect();
    let mut prompt = Prompt::new(p.name, Some(p.description), Some(args));
    prompt.title = Some(p.title.to_string());
    prompt
}

impl McpServer {
    /// A call of a tool this server does not list: one of a served toolset
    /// (an operation with mutations off, or one whose configuration is
    /// missing) runs and answers why; another is a protocol error.
    async fn unlisted(
        &self,
        name: &str,
        request: CallToolRequestParams,
    ) -> Result<CallToolResponse, ErrorData> {
        if let Some(t) = tools::registry().into_iter().find(|t| t.name == name) {
            // A tool of a served toolset that is not listed — a mutating
            // one with mutations off, or one whose configuration is
            // missing: it runs and answers why (the gate says which rule
            // refused it and records the attempt; not_configured names
            // the setting).
            if self.ctx.toolsets.contains(&t.toolset) {
                let args = request.arguments.unwrap_or_default();
                let call = Call::default().by(self.caller.clone());
                let result = tools::call(self.ctx.clone(), &[t], name, args, call).await;
                return Ok(match result {
                    Ok(out) => success(out),
                    Err(e) => error_result(&e),
                }
                .into());
            }
            return Err(ErrorData::invalid_params(
                format!(
                    "tool {name:?} is in toolset {}, which this server does not serve",
                    t.toolset.as_str()
                ),
                Some(json!({"hint": if t.toolset == tools::Toolset::Services {
                    "configure the service in the config file (--config: [pihole.primary], [jellyfin], [immich]) or add it with --toolsets"
                } else {
                    "configure a Kubernetes API (--kubeconfig) or add it with --toolsets"
                }})),
            ));
        }
        // An unknown tool is a protocol error (-32602), per the MCP spec.
        Err(ErrorData::invalid_params(
            format!("unknown tool {name:?}"),
            Some(json!({"available": self.tools.iter().map(|t| t.name).collect::<Vec<_>>()})),
        ))
    }
}

/// The call's progress, forwarded to the client when it sent a progress
/// token: one forwarder per call keeps the notifications in order (clients
/// require progress to increase).
fn progress(context: &RequestContext<RoleServer>) -> Call {
    match context.meta.get_progress_token() {
        Some(token) => {
            // One forwarder per call keeps the notifications in order
            // (clients require progress to increase).
            let peer = context.peer.clone();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ProgressNotificationParam>();
            tokio::spawn(async move {
                while let Some(p) = rx.recv().await {
                    if peer.notify_progress(p).await.is_err() {
                        break;
                    }
                }
            });
            Call::with_progress(move |done, total, message| {
                let mut p = ProgressNotificationParam::new(token.clone(), done);
                p.total = total;
                p.message = Some(message);
                let _ = tx.send(p);
            })
        }
        None => Call::default(),
    }
}

/// A successful result: the structured content and labscope's text.
/// (`CallToolResult::structured` would also serialise the whole value into
/// a text block, thrown away here: a full JSON encoding of every answer.)
fn success(out: tools::ToolOutput) -> CallToolResult {
    let mut r = CallToolResult::success(vec![ContentBlock::text(out.text)]);
    r.structured_content = Some(out.structured);
    r
}

/// A failed call as an MCP result: text for people and models, the machine
/// form in `_meta`, no `structuredContent`.
pub fn error_result(e: &tools::ToolError) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(error_text(e))]);
    let mut meta = serde_json::Map::new();
    meta.insert(ERROR_META_KEY.into(), e.to_json());
    r.meta = Some(rmcp::model::MetaObject(meta));
    r
}

/// The text of a failed call, for clients that only show text.
pub fn error_text(e: &tools::ToolError) -> String {
    let code = serde_json::to_value(e.code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    format!("error [{code}]: {}\nhint: {}", e.message, e.hint)
}

/// Lists that fit one page: any cursor is one this server never gave.
fn single_page(request: Option<PaginatedRequestParams>, method: &str) -> Result<(), ErrorData> {
    match request.and_then(|r| r.cursor) {
        Some(cursor) => Err(ErrorData::invalid_params(
            format!("invalid cursor {cursor:?}: {method} has a single page"),
            None,
        )),
        None => Ok(()),
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new("labscope", env!("CARGO_PKG_VERSION")))
        .with_instructions(instructions(&self.ctx.toolsets))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        single_page(request, "tools/list")?;
        Ok(ListToolsResult {
            tools: self.tools.iter().map(mcp_tool).collect(),
            ..Default::default()
        })
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        single_page(request, "prompts/list")?;
        Ok(ListPromptsResult {
            prompts: prompts::enabled(&self.ctx.toolsets)
                .into_iter()
                .map(mcp_prompt)
                .collect(),
            ..Default::default()
        })
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let served = prompts::Served {
            toolsets: self.ctx.toolsets.clone(),
            recover_helmrelease: self.tools.iter().any(|t| t.name == "recover_helmrelease"),
        };
        match prompts::render_for(&request.name, &args, &served) {
            Ok((def, text)) => Ok(GetPromptResult::new(vec![PromptMessage::new_text(
                Role::User,
                text,
            )])
            .with_description(def.description)
            .into()),
            Err(e) => Err(ErrorData::invalid_params(e.to_string(), None)),
        }
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        if !self.tools.iter().any(|t| t.name == name) {
            return self.unlisted(&name, request).await;
        }
        let args = request.arguments.unwrap_or_default();
        let mut call = progress(&context).by(self.caller.clone());
        // An operation asks its user first, as the client can (confirm.rs).
        let mutates = self.tools.iter().any(|t| t.name == name && t.mutates());
        let mut ask_first = None;
        if mutates {
            let modern = context
                .protocol_version()
                .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
            let can_ask = context
                .client_capabilities()
                .is_some_and(|c| c.elicitation.is_some());
            if modern && can_ask {
                match request.request_state.as_deref() {
                    Some(state) => {
                        let yes = match self.pending.answer(
                            state,
                            request.input_responses.as_ref(),
                            &name,
                            &args,
                            &self.caller,
                        ) {
                            Ok(yes) => yes,
                            Err(e) => return Ok(error_result(&e).into()),
                        };
                        call =
                            call.confirmed_by(Arc::new(crate::server::confirm::Answered { yes }));
                    }
                    None => {
                        let first = Arc::new(crate::server::confirm::AskFirst::default());
                        ask_first = Some(first.clone());
                        call = call.confirmed_by(first);
                    }
                }
            } else if can_ask {
                call = call.confirmed_by(Arc::new(crate::server::confirm::Elicit {
                    peer: context.peer.clone(),
                }));
            }
        }
        let answer = tools::call(self.ctx.clone(), &self.tools, &name, args.clone(), call).await;
        if let (Some(first), Err(e)) = (&ask_first, &answer)
            && e.rule.as_deref() == Some(crate::server::confirm::PENDING_RULE)
        {
            let question = first
                .question
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_default();
            return Ok(
                match self.pending.ask(&question, &name, &args, &self.caller) {
                    Ok(input) => input.into(),
                    Err(e) => error_result(&e).into(),
                },
            );
        }
        let result = match answer {
            Ok(out) => {
                // A big answer leaves big free blocks behind once sent: give
                // them back when the burst is over.
                if out.text.len() >= BIG_ANSWER {
                    labscope_agent::memory::give_back_soon(Duration::from_millis(500));
                }
                success(out)
            }
            Err(e) => error_result(&e),
        };
        Ok(result.into())
    }
}
