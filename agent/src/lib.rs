//! labscope node agent: reads a node's network state from the kernel
//! (rtnetlink, ctnetlink, iptables) and runs probes, served over gRPC.
//!
//! Collectors are plain functions returning typed values; `service` maps them
//! onto the `labscope.node.v1.NodeAgent` gRPC service.

pub mod conntrack;
pub mod firewall;
pub mod history;
pub mod identity;
pub mod memory;
pub mod names;
pub mod netlink;
pub mod networking;
pub mod node_info;
pub mod probe;
pub mod server;
pub mod service;
pub mod tls;
pub mod validate;

pub use service::NodeAgentService;
