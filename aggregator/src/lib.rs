//! labscope aggregator: finds the node agents, fans out to them with a
//! deadline per node, and publishes the tools over MCP (stdio and Streamable
//! HTTP) and as a CLI for people.
//!
//! Where things are: `tools/` (one file per tool or family, the registry
//! and the gate in `tools/mod.rs`), `assess/` (every verdict rule, pure),
//! `cluster/` (the Kubernetes API), `agents/` (the node agents over gRPC),
//! `services/` (Pi-hole, Jellyfin, Immich), `safety/` (allowlists, audit),
//! `server/` (MCP over stdio and HTTP), `cli/` (the command line).

pub mod agents;
pub mod assess;
pub mod cli;
pub mod cluster;
pub mod codes;
pub mod config;
#[cfg(test)]
mod layering;
pub mod metrics;
pub mod redact;
pub mod safety;
pub mod server;
pub mod services;
pub mod tools;
