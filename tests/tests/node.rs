//! The node agent: real agent processes in network namespaces, compared with `ip -j`,
//! `iptables-save -c`, `nft` and `conntrack -L` run in the same namespace; its limits, its TLS, and the
//! static builds and images as they ship. Root-only tests skip with a message when not root (and fail
//! when `LABSCOPE_REQUIRE_ROOT=1`).
//!
//! One test binary per area (each links the whole workspace): the modules below were
//! separate binaries; `cargo test -p labscope-tests --test node MODULE::` runs one.

#[path = "agent_limits.rs"]
mod agent_limits;
#[path = "agent_netns.rs"]
mod agent_netns;
#[path = "agent_static.rs"]
mod agent_static;
#[path = "agent_tls.rs"]
mod agent_tls;
