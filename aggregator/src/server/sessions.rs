//! MCP sessions over Streamable HTTP, capped: rmcp's in-memory session
//! manager keeps a session (about 64 KiB) until its client deletes it or it
//! idles out (5 minutes), so clients that never close theirs could grow the
//! aggregator without bound. At the cap, the least recently used session is
//! closed to make room for a new one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use futures::Stream;
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker,
};
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId};

/// Default `--max-sessions`.
pub const DEFAULT_MAX_SESSIONS: usize = 200;

/// How long a session keeps an answer it sent, for a client that resumes
/// the stream it came on (`Last-Event-ID`). Dropped at the session's next
/// event after that.
pub const COMPLETED_ANSWER_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// rmcp's local session manager with a cap on live sessions.
pub struct CappedSessions {
    inner: LocalSessionManager,
    max: usize,
    last_used: Mutex<HashMap<SessionId, Instant>>,
    /// Held while making room and creating, so a burst of new sessions
    /// cannot pass the check together and overshoot the cap.
    creating: tokio::sync::Mutex<()>,
}

impl CappedSessions {
    /// At most `max` sessions (at least 1).
    pub fn new(max: usize) -> Self {
        let mut inner = LocalSessionManager::default();
        // rmcp keeps every answer a session sent, for clients that resume a
        // broken stream, 60 s by default: a few 1 MB pages per session add
        // up. A resume comes within seconds or not at all.
        inner.session_config.completed_cache_ttl = COMPLETED_ANSWER_TTL;
        Self {
            inner,
            max: max.max(1),
            last_used: Mutex::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
        }
    }

    /// Sessions alive now.
    pub async fn len(&self) -> usize {
        self.inner.sessions.read().await.len()
    }

    /// Whether there are none.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    fn touch(&self, id: &SessionId) {
        if let Ok(mut used) = self.last_used.lock() {
            used.insert(id.clone(), Instant::now());
        }
    }

    /// Closes least recently used sessions until one more fits.
    async fn make_room(&self) {
        loop {
            let live: Vec<SessionId> = self.inner.sessions.read().await.keys().cloned().collect();
            if live.len() < self.max {
                return;
            }
            let oldest = {
                let Ok(mut used) = self.last_used.lock() else {
                    return;
                };
                // Sessions that idled out of rmcp's map are forgotten here too.
                used.retain(|id, _| live.contains(id));
                live.iter().min_by_key(|id| used.get(*id).copied()).cloned()
            };
            let Some(oldest) = oldest else {
                return;
            };
            tracing::info!(session = %oldest, max = self.max, "session cap reached: closing the least recently used session");
            if let Ok(mut used) = self.last_used.lock() {
                used.remove(&oldest);
            }
            if let Err(e) = self.inner.close_session(&oldest).await {
                tracing::warn!(session = %oldest, error = %e, "closing a session to make room failed");
                // It is out of the map either way; do not loop on it.
                self.inner.sessions.write().await.remove(&oldest);
            }
        }
    }
}

impl SessionManager for CappedSessions {
    type Error = LocalSessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let _one_at_a_time = self.creating.lock().await;
        self.make_room().await;
        let (id, transport) = self.inner.create_session().await?;
        self.touch(&id);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<rmcp::model::ServerJsonRpcMessage, Self::Error> {
        self.touch(id);
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        if let Ok(mut used) = self.last_used.lock() {
            used.remove(id);
        }
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.touch(id);
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.resume(id, last_event_id).await
    }
}
