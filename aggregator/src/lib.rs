//! labscope aggregator: finds the node agents, fans out to them with a
//! deadline per node, and publishes the tools over MCP (stdio and Streamable
//! HTTP) and as a CLI for people.

pub mod agents;
pub mod assess;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod confirm;
pub mod http;
#[cfg(test)]
mod layering;
pub mod mcp;
pub mod metrics;
pub mod prompts;
pub mod redact;
pub mod safety;
pub mod services;
pub mod sessions;
pub mod tools;
