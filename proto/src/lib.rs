//! labscope's gRPC contract: package `labscope.node.v1`, service `NodeAgent`.
//!
//! The code under `src/gen/` is generated from `proto/labscope/node/v1/node.proto`
//! and committed; `tests/generated_code.rs` fails when it is stale.

/// Package `labscope.node.v1`: the node agent service and its messages.
pub mod node {
    /// Version 1 of the node agent contract.
    #[allow(missing_docs, clippy::all)]
    pub mod v1 {
        include!("gen/labscope.node.v1.rs");
    }
}

/// Encoded `FileDescriptorSet` of every `.proto` here, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/descriptor.bin");

pub use node::v1;

pub mod codec;
pub mod text;
