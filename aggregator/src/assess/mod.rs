//! Pure assessment: the judgements labscope makes, as functions over typed
//! inputs with no I/O (as kube-core separates types from kube-client), so
//! each rule is unit-tested without a fake server. Tools read the cluster
//! and hand what they read to these functions.
//!
//! Smaller judgements live next to their tool (`tools/certificates.rs`,
//! `tools/ingress.rs`, …) as `assess` functions.

pub mod backups;
pub mod flux;
pub mod pods;
