//! The cluster tools against the fake Kubernetes API serving the homelab fixture (real object
//! shapes), the services (Pi-hole, Jellyfin, Immich) against fakes that fail like the real ones, the
//! operations behind their allowlists, and RBAC exactly as the code reads.
//!
//! One test binary per area (each links the whole workspace): the modules below were
//! separate binaries; `cargo test -p labscope-tests --test cluster MODULE::` runs one.

#[path = "cluster_batch.rs"]
mod cluster_batch;
#[path = "cluster_discovery.rs"]
mod cluster_discovery;
#[path = "cluster_flux.rs"]
mod cluster_flux;
#[path = "cluster_health.rs"]
mod cluster_health;
#[path = "cluster_real.rs"]
mod cluster_real;
#[path = "cluster_resources.rs"]
mod cluster_resources;
#[path = "cluster_tools.rs"]
mod cluster_tools;
#[path = "cluster_workloads.rs"]
mod cluster_workloads;
#[path = "diagnose.rs"]
mod diagnose;
#[path = "dns.rs"]
mod dns;
#[path = "media.rs"]
mod media;
#[path = "ops.rs"]
mod ops;
#[path = "rbac.rs"]
mod rbac;
#[path = "text_findings.rs"]
mod text_findings;
