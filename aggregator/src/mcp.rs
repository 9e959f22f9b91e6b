//! The MCP face of the tool registry (rmcp): tools/list with input and
//! output schemas and annotations, tools/call with `structuredContent` plus a
//! text rendering, and tool failures as `isError` results carrying
//! `{code, message, hint}`. Transports are in `main.rs` (stdio) and `http.rs`.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler};
use serde_json::{Value, json};

use crate::tools::{self, ToolContext, ToolDef};

/// Instructions sent to clients at initialize.
const INSTRUCTIONS: &str = "labscope answers questions about a small Kubernetes cluster's nodes from an agent on \
    each node: networking, iptables, conntrack, and probes (ping/TCP, HTTP(S), DNS) run from a chosen node. Start \
    with list_nodes. Every list is bounded: look for nextCursor. Failures come back with isError and \
    {code, message, hint}; the hint says what to do next.";

/// The MCP server handler; cheap to clone (one per HTTP session).
#[derive(Clone)]
pub struct McpServer {
    ctx: Arc<ToolContext>,
    tools: Arc<Vec<ToolDef>>,
}

impl McpServer {
    /// A handler over `ctx` serving every registered tool.
    pub fn new(ctx: Arc<ToolContext>) -> Self {
        Self {
            ctx,
            tools: Arc::new(tools::registry()),
        }
    }
}

fn object(v: &Value) -> Arc<serde_json::Map<String, Value>> {
    Arc::new(v.as_object().cloned().unwrap_or_default())
}

/// The MCP description of a tool.
pub fn mcp_tool(t: &ToolDef) -> Tool {
    Tool::new(t.name, t.description, object(&t.input_schema))
        .with_title(t.title)
        .with_raw_output_schema(object(&t.output_schema))
        .with_annotations(
            ToolAnnotations::with_title(t.title)
                .read_only(t.read_only)
                .destructive(t.destructive)
                .idempotent(t.idempotent)
                .open_world(t.open_world),
        )
}

/// The text of a failed call, for clients that only show text.
pub fn error_text(e: &tools::ToolError) -> String {
    let code = serde_json::to_value(e.code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    format!("error [{code}]: {}\nhint: {}", e.message, e.hint)
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("labscope", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult {
            tools: self.tools.iter().map(mcp_tool).collect(),
            ..Default::default()
        })
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        if !self.tools.iter().any(|t| t.name == name) {
            // An unknown tool is a protocol error (-32602), per the MCP spec.
            return Err(ErrorData::invalid_params(
                format!("unknown tool {name:?}"),
                Some(json!({"available": self.tools.iter().map(|t| t.name).collect::<Vec<_>>()})),
            ));
        }
        let args = request.arguments.unwrap_or_default();
        let result = match tools::call(self.ctx.clone(), &self.tools, &name, args).await {
            Ok(out) => {
                let mut r = CallToolResult::structured(out.structured);
                r.content = vec![ContentBlock::text(out.text)];
                r
            }
            Err(e) => {
                let mut r = CallToolResult::structured_error(e.to_json());
                r.content = vec![ContentBlock::text(error_text(&e))];
                r
            }
        };
        Ok(result.into())
    }
}
