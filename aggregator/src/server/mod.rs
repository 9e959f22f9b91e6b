//! The MCP server: the tools, prompts and confirmations over MCP
//! ([`mcp`]), on stdio or Streamable HTTP ([`http`], with its bearer-token
//! [`auth`] and the capped session store [`sessions`]).

pub mod auth;
pub mod confirm;
pub mod http;
pub mod mcp;
pub mod prompts;
pub mod sessions;
