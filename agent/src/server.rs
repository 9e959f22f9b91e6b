//! Assembles the gRPC server: the NodeAgent service, grpc.health.v1 and
//! server reflection, with optional mTLS (files re-read when they change,
//! callers' identities checked).

use std::path::PathBuf;
use std::time::Duration;

use labscope_proto::v1::node_agent_server::NodeAgentServer;
use std::sync::Arc;

use tonic::transport::Server;

use crate::identity::{Allowlist, DEFAULT_CLIENT_IDENTITY};
use crate::service::{Limits, NodeAgentService};
use crate::tls::Reloading;

/// Errors of server start-up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TLS files could not be used.
    #[error("TLS: {0}")]
    Tls(#[source] crate::tls::Error),
    /// Serving failed.
    #[error("gRPC server: {0}")]
    Serve(#[source] tonic::transport::Error),
    /// Reflection could not be built.
    #[error("server reflection: {0}")]
    Reflection(String),
}

/// TLS files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server key (PEM).
    pub key: PathBuf,
    /// CA that client certificates must chain to (PEM); `None` for server-only TLS.
    pub client_ca: Option<PathBuf>,
}

/// Longest any call may take unless the client asks for less
/// (`grpc-timeout`): above the longest probe a request may ask for (30 s).
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(40);

/// What the server serves, and within which bounds.
#[derive(Debug)]
pub struct Options {
    /// Name the agent answers as.
    pub node_name: String,
    /// TLS files; `None` for plaintext.
    pub tls: Option<TlsFiles>,
    /// Work taken on at once.
    pub limits: Limits,
    /// Longest a call may take.
    pub rpc_timeout: Duration,
    /// Names a client certificate must carry (one of), when `tls` asks for
    /// client certificates.
    pub client_identities: Vec<String>,
    /// Where to serve grpc.health.v1 alone, in plaintext, for probes that
    /// cannot present a client certificate (the kubelet's); `None` for no
    /// such listener. Bound by the caller before the main listener, so a
    /// client that sees the main port open finds the health port open too.
    pub health_listener: Option<tokio::net::TcpListener>,
    /// Byte budget of the change history (`ListChanges`); 0 keeps none.
    pub history_bytes: usize,
}

impl Options {
    /// Plaintext, default limits and deadline.
    pub fn new(node_name: impl Into<String>) -> Self {
        Self {
            node_name: node_name.into(),
            tls: None,
            limits: Limits::default(),
            rpc_timeout: DEFAULT_RPC_TIMEOUT,
            client_identities: vec![DEFAULT_CLIENT_IDENTITY.to_string()],
            health_listener: None,
            history_bytes: crate::history::DEFAULT_BUDGET,
        }
    }
}

/// Serves on an already-bound listener (tests bind port 0 and read the port)
/// until `shutdown` completes.
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), Error> {
    let Options {
        node_name,
        tls,
        limits,
        rpc_timeout,
        client_identities,
        health_listener,
        history_bytes,
    } = options;
    let allow = match &tls {
        Some(files) if files.client_ca.is_some() => Allowlist::of(client_identities),
        _ => Allowlist::anyone(),
    };
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<NodeAgentServer<NodeAgentService>>()
        .await;
    // Reflection in both protocol versions (grpcurl before 1.8.8 and
    // grpcio-reflection's helpers still speak v1alpha), describing the
    // health service as well as ours.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(labscope_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| Error::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| Error::Reflection(e.to_string()))?;

    // Health alone, plaintext: it says SERVING or not and nothing else.
    let _health_only = match health_listener {
        Some(listener) => {
            let server = Server::builder()
                .add_service(health.clone())
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
            Some(AbortOnDrop(tokio::spawn(async move {
                if let Err(e) = server.await {
                    tracing::error!(error = %e, "health listener stopped");
                }
            })))
        }
        None => None,
    };
    // The deadline ends the call's future (async probes stop; a blocking
    // collector finishes its bounded work in the background).
    let router = Server::builder()
        .timeout(rpc_timeout)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(NodeAgentServer::with_interceptor(
            NodeAgentService::with_limits(node_name, limits).with_history(history_bytes),
            move |req| allow.check(req),
        ));
    match tls {
        None => {
            // Small unary answers must not wait for delayed ACKs (Nagle costs
            // ~40 ms per call on loopback), so every accepted socket gets
            // TCP_NODELAY.
            let incoming = tokio_stream::StreamExt::map(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                |s| {
                    s.and_then(|s| {
                        s.set_nodelay(true)?;
                        Ok(s)
                    })
                },
            );
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
                .map_err(Error::Serve)
        }
        Some(files) => {
            let tls = Arc::new(crate::tls::reloading(files).map_err(Error::Tls)?);
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            let acceptor = tokio::spawn(accept_tls(listener, tls, tx));
            let served = router
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                    shutdown,
                )
                .await
                .map_err(Error::Serve);
            acceptor.abort();
            served
        }
    }
}

/// Ends a background task when the server it belongs to returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections and hands over those that complete a TLS handshake
/// with the configuration of the moment (see [`Reloading`]). Handshakes run
/// on their own tasks, so a slow client holds up nobody.
async fn accept_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<Reloading>,
    tx: tokio::sync::mpsc::Sender<
        std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
    >,
) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send(Ok(stream)).await;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
}
