//! `labscope serve --http`: MCP over Streamable HTTP at `/mcp` behind the
//! API-key check, plus `GET /healthz` and `GET /metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::server::auth;
use crate::server::mcp::McpServer;
use crate::server::sessions::CappedSessions;
use crate::tools::ToolContext;

/// Largest JSON-RPC request body accepted on `/mcp`.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Errors of the HTTP server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A non-loopback address without an API key.
    #[error(
        "refusing to serve MCP on non-loopback {0} without an API key: set LABSCOPE_API_KEY or LABSCOPE_API_KEY_FILE"
    )]
    NoKey(SocketAddr),
    /// Bind or serve failed.
    #[error("HTTP server on {addr}: {source}")]
    Io {
        /// Address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Options of the HTTP transport.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Listen address.
    pub addr: SocketAddr,
    /// API key; `None` only on loopback.
    pub api_key: Option<String>,
    /// The key's name, recorded as the caller in the audit log
    /// (`LABSCOPE_API_KEY_NAME`, default "api-key").
    pub api_key_name: String,
    /// Extra Host header values to accept (behind an ingress).
    pub allowed_hosts: Vec<String>,
    /// Most live MCP sessions (the least recently used is closed at the cap).
    pub max_sessions: usize,
}

/// The router: `/mcp` (authenticated when a key is set), `/healthz`, `/metrics`.
pub fn router(ctx: Arc<ToolContext>, opts: &HttpOptions, shutdown: CancellationToken) -> Router {
    let mut allowed = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    allowed.extend(opts.allowed_hosts.iter().cloned());
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed)
        .with_max_request_body_bytes(MAX_REQUEST_BYTES)
        .with_cancellation_token(shutdown);
    let caller = match &opts.api_key {
        Some(_) => format!("http:{}", opts.api_key_name),
        None => "http:loopback-without-key".to_string(),
    };
    let server = McpServer::new(ctx.clone()).with_caller(caller);
    let sessions = Arc::new(CappedSessions::new(opts.max_sessions));
    let service: StreamableHttpService<McpServer, CappedSessions> =
        StreamableHttpService::new(move || Ok(server.clone()), sessions.clone(), config);
    let mut mcp = Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn(session_ended));
    // `route_layer`: the key guards /mcp only. `layer` would also wrap the
    // router's fallback, so every unknown path — OAuth clients' discovery of
    // /.well-known/oauth-protected-resource among them — would answer 401
    // and send those clients into an OAuth flow that hides the refusal.
    if let Some(key) = &opts.api_key {
        mcp = mcp.route_layer(middleware::from_fn_with_state(
            Arc::new(key.clone()),
            auth::require_key,
        ));
    }
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(move || metrics(sessions)))
        .with_state(ctx)
        .merge(mcp)
}

/// A session ended by `DELETE /mcp` answers 204 No Content: rmcp says 202,
/// which the Python SDK reports as "Session termination failed: 202" at the
/// end of every session (it expects 200 or 204).
///
/// A session closed between rmcp's existence check and its use (the cap
/// made room for a new one meanwhile) answers 404 as any ended session
/// does, so that the client starts a new one: rmcp reports that race as a
/// 500 "Session not found".
async fn session_ended(
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    use axum::http::StatusCode;
    let delete = request.method() == axum::http::Method::DELETE;
    let mut response = next.run(request).await;
    if delete && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
        *response.body_mut() = axum::body::Body::empty();
    }
    // rmcp's error bodies are one short line of known size; any other body
    // is passed on untouched.
    let small = axum::body::HttpBody::size_hint(response.body())
        .upper()
        .is_some_and(|n| n <= 64 * 1024);
    if response.status() == StatusCode::INTERNAL_SERVER_ERROR && small {
        let (mut parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .unwrap_or_default();
        if String::from_utf8_lossy(&bytes).contains("Session not found") {
            parts.status = StatusCode::NOT_FOUND;
            parts.headers.remove(header::CONTENT_LENGTH);
            return axum::response::Response::from_parts(
                parts,
                axum::body::Body::from("Not Found: Session not found"),
            );
        }
        parts.headers.remove(header::CONTENT_LENGTH);
        return axum::response::Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    response
}

async fn healthz(State(ctx): State<Arc<ToolContext>>) -> impl IntoResponse {
    axum::Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "agents": ctx.pool.len(),
        "localMode": ctx.pool.local_mode,
    }))
}

async fn metrics(sessions: Arc<CappedSessions>) -> impl IntoResponse {
    let metrics = crate::metrics::global();
    metrics.set_sessions(sessions.len().await);
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        metrics.render(),
    )
}

/// `listener` with `TCP_NODELAY` on every accepted connection. A response
/// goes out in more than one write (headers and the SSE priming event, then
/// the data); with Nagle on, the last write waits for the client's delayed
/// ACK, about 40 ms per call on a kept-alive connection.
pub fn nodelay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY on an accepted connection");
        }
    })
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(
    ctx: Arc<ToolContext>,
    opts: HttpOptions,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    if opts.api_key.is_none() && !opts.addr.ip().is_loopback() {
        return Err(Error::NoKey(opts.addr));
    }
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|source| Error::Io {
            addr: opts.addr,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| Error::Io {
        addr: opts.addr,
        source,
    })?;
    tracing::info!(addr = %local, auth = opts.api_key.is_some(), "labscope serving MCP at /mcp");
    // Scripts and tests read this line to learn the port when given :0.
    eprintln!("labscope: listening on http://{local}/mcp");
    let app = router(ctx, &opts, shutdown.clone());
    axum::serve(nodelay(listener), app)
        .with_graceful_shutdown(async move { shutdown.cancelled_owned().await })
        .await
        .map_err(|source| Error::Io {
            addr: opts.addr,
            source,
        })
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener;

    #[tokio::test]
    async fn accepted_connections_have_nodelay() -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut listener = super::nodelay(listener);
        let client = tokio::net::TcpStream::connect(addr).await?;
        let (accepted, _) = listener.accept().await;
        // The client side keeps the default, so the check is not vacuous.
        assert!(!client.nodelay()?);
        assert!(accepted.nodelay()?);
        Ok(())
    }
}
