//! Local mode: the agent runs inside the aggregator process and is reached
//! through an in-memory duplex pipe, with the same gRPC client as a remote
//! agent (the console-subscriber test-harness pattern). No port is opened.

use hyper_util::rt::TokioIo;
use labscope_agent::NodeAgentService;
use labscope_proto::v1::node_agent_server::NodeAgentServer;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint, Server};

/// Starts the in-process agent answering as `node_name` and returns a channel to it.
pub fn in_process_channel(node_name: &str) -> Channel {
    let (tx, rx) = mpsc::channel::<tokio::io::DuplexStream>(16);
    let service = NodeAgentServer::new(NodeAgentService::new(node_name))
        .max_encoding_message_size(64 * 1024 * 1024);
    tokio::spawn(async move {
        let incoming = tokio_stream::StreamExt::map(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            Ok::<_, std::io::Error>,
        );
        if let Err(e) = Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await
        {
            tracing::error!(error = %e, "in-process agent stopped");
        }
    });
    // The URI is never dialled: the connector hands out a fresh duplex pipe.
    Endpoint::from_static("http://in-process.local").connect_with_connector_lazy(tower::service_fn(
        move |_| {
            let tx = tx.clone();
            async move {
                let (client, server) = tokio::io::duplex(1024 * 1024);
                tx.send(server)
                    .await
                    .map_err(|_| std::io::Error::other("in-process agent is gone"))?;
                Ok::<_, std::io::Error>(TokioIo::new(client))
            }
        },
    ))
}
