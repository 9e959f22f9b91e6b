//! The aggregator as people use it: MCP over stdio and Streamable HTTP with real clients, the
//! agents it fans out to, the CLI, and the shipped manifests and dependency policy.
//!
//! One test binary per area (each links the whole workspace): the modules below were
//! separate binaries; `cargo test -p labscope-tests --test aggregator MODULE::` runs one.

#[path = "aggregator_agents.rs"]
mod aggregator_agents;
#[path = "aggregator_mcp.rs"]
mod aggregator_mcp;
#[path = "cli.rs"]
mod cli;
#[path = "manifests.rs"]
mod manifests;
#[path = "test_binaries.rs"]
mod test_binaries;
