//! Where the agents are and how to reach them: one lazily connected gRPC
//! channel per agent (tonic reconnects on demand), a backoff so a dead agent
//! is answered "unavailable" at once instead of on every call, and the
//! fan-out helper that asks many agents with a deadline per node.

pub mod fanout;
pub mod local;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use labscope_agent::tls::Watched;
use labscope_proto::v1::node_agent_client::NodeAgentClient;
use tonic::transport::{Channel, Endpoint};

pub use fanout::{NodeOutcome, NodeResult, fan_out_with_deadline};

/// Errors of agent configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--agent` was not NAME=URL.
    #[error("--agent {0:?}: expected NAME=URL (e.g. pi-k3s=http://192.168.1.55:9447)")]
    BadSpec(String),
    /// The node name is not a valid Kubernetes node name.
    #[error("--agent {0:?}: node names are lower-case letters, digits, '-' and '.'")]
    BadName(String),
    /// The URL is not http(s)://host:port.
    #[error("--agent {name}: {url:?} is not an http:// or https:// URL: {reason}")]
    BadUrl {
        /// Agent name.
        name: String,
        /// URL given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The same name twice.
    #[error("--agent {0:?} is given twice")]
    Duplicate(String),
    /// TLS configuration for agents failed.
    #[error("agent TLS: {0}")]
    Tls(String),
}

/// One agent as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    /// Node name.
    pub name: String,
    /// gRPC URL.
    pub url: String,
}

impl std::str::FromStr for AgentSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let (name, url) = s
            .split_once('=')
            .ok_or_else(|| Error::BadSpec(s.to_string()))?;
        let name = name.trim();
        if name.is_empty()
            || name.len() > 253
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            return Err(Error::BadName(name.to_string()));
        }
        let url = url.trim();
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| Error::BadUrl {
                name: name.into(),
                url: url.into(),
                reason: e.to_string(),
            })?;
        if !matches!(uri.scheme_str(), Some("http") | Some("https")) || uri.host().is_none() {
            return Err(Error::BadUrl {
                name: name.into(),
                url: url.into(),
                reason: "needs http(s)://host:port".into(),
            });
        }
        Ok(AgentSpec {
            name: name.to_string(),
            url: url.to_string(),
        })
    }
}

/// Health bookkeeping for backoff.
#[derive(Debug, Default, Clone)]
struct Health {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
    last_outcome: Option<NodeOutcome>,
}

/// How an agent is reached.
#[derive(Debug, Clone)]
pub struct AgentHandle {
    /// Node name.
    pub name: String,
    /// URL (or `in-process` for local mode).
    pub url: String,
    /// Host part of the URL: the address other agents probe in the mesh.
    pub host: String,
    /// Port of the URL.
    pub port: u16,
    channel: Channel,
    health: Arc<Mutex<Health>>,
}

/// Longest wait before a failed agent is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl AgentHandle {
    /// A client on this agent's channel.
    pub fn client(&self) -> NodeAgentClient<Channel> {
        NodeAgentClient::new(self.channel.clone()).max_decoding_message_size(64 * 1024 * 1024)
    }

    /// While the agent is in backoff after failures: the outcome of the last
    /// real attempt (unavailable or timeout) and why.
    pub fn backing_off(&self) -> Option<(NodeOutcome, String)> {
        let h = self.health.lock().ok()?;
        let at = h.retry_at?;
        let now = Instant::now();
        (at > now).then(|| {
            (
                h.last_outcome.unwrap_or(NodeOutcome::Unavailable),
                format!(
                    "{} (after {} failed attempts; next try in {:.1} s)",
                    h.last_error,
                    h.failures,
                    (at - now).as_secs_f64()
                ),
            )
        })
    }

    /// Records a transport-level failure (connection refused, reset, timeout).
    pub fn record_failure(&self, outcome: NodeOutcome, reason: &str) {
        if let Ok(mut h) = self.health.lock() {
            h.failures += 1;
            h.last_outcome = Some(outcome);
            let backoff = Duration::from_millis(500)
                .saturating_mul(1 << h.failures.min(6))
                .min(MAX_BACKOFF);
            h.retry_at = Some(Instant::now() + backoff);
            h.last_error = reason.to_string();
        }
    }

    /// Records a successful call.
    pub fn record_success(&self) {
        if let Ok(mut h) = self.health.lock() {
            *h = Health::default();
        }
    }
}

/// TLS settings for connections to agents.
#[derive(Debug, Clone, Default)]
pub struct AgentTls {
    /// The client configuration (CA, client certificate), re-read when its
    /// files change: each new connection to an agent uses the files as they
    /// are then. `None` until a configuration is given (https:// agents then
    /// trust the public web roots and present no certificate).
    pub client: Option<Arc<Watched<rustls::ClientConfig>>>,
    /// Server name to verify instead of the URL host.
    pub domain: Option<String>,
}

impl AgentTls {
    fn config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        match &self.client {
            Some(w) => Ok(w.current()),
            None => labscope_agent::tls::client(None, None)
                .map(Arc::new)
                .map_err(|e| Error::Tls(e.to_string())),
        }
    }
}

/// Connects to an https:// agent with the TLS configuration of the moment
/// (renewed client certificates are used from the next connection on).
fn tls_connector(
    host: String,
    port: u16,
    server_name: rustls::pki_types::ServerName<'static>,
    tls: AgentTls,
) -> impl tower::Service<
    http::Uri,
    Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |_: http::Uri| {
        let (host, name, tls) = (host.clone(), server_name.clone(), tls.clone());
        async move {
            let config = tls.config().map_err(std::io::Error::other)?;
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        }
    })
}

/// A node whose agent pod exists but cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    /// Node name.
    pub node: String,
    /// Pod name.
    pub pod: String,
    /// Phase and readiness.
    pub reason: String,
}

/// Discovery results that are not agents: pods that exist but cannot be
/// used, and why discovery itself failed.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryState {
    /// Agent pods that are not Running and Ready.
    pub problems: Vec<NotReady>,
    /// (message, hint) when the last discovery attempt failed.
    pub error: Option<(String, String)>,
}

#[derive(Debug, Default)]
struct PoolState {
    agents: BTreeMap<String, AgentHandle>,
    discovery: DiscoveryState,
}

/// All known agents by node name. Cheap to clone; shared with the discovery
/// watch, which replaces the set as agent pods come and go.
#[derive(Debug, Clone, Default)]
pub struct AgentPool {
    state: Arc<std::sync::RwLock<PoolState>>,
    tls: Arc<AgentTls>,
    /// Whether this pool is the local in-process agent only.
    pub local_mode: bool,
}

fn handle(spec: &AgentSpec, tls: &AgentTls) -> Result<AgentHandle, Error> {
    let bad_url = |reason: String| Error::BadUrl {
        name: spec.name.clone(),
        url: spec.url.clone(),
        reason,
    };
    let uri: http::Uri = spec
        .url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad_url(e.to_string()))?;
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(9447);
    let https = spec.url.starts_with("https://");
    // TLS is done by our connector (below), so tonic speaks plain HTTP/2
    // over it: the endpoint's scheme is http either way.
    let plain_url = if https {
        spec.url.replacen("https://", "http://", 1)
    } else {
        spec.url.clone()
    };
    let endpoint = Endpoint::from_shared(plain_url)
        .map_err(|e| bad_url(e.to_string()))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    let channel = if https {
        let name = tls.domain.clone().unwrap_or_else(|| host.clone());
        let server_name = rustls::pki_types::ServerName::try_from(name.clone())
            .map_err(|e| Error::Tls(format!("{name:?} is not a server name to verify: {e}")))?;
        endpoint.connect_with_connector_lazy(tls_connector(
            host.clone(),
            port,
            server_name,
            tls.clone(),
        ))
    } else {
        endpoint.connect_lazy()
    };
    Ok(AgentHandle {
        name: spec.name.clone(),
        url: spec.url.clone(),
        host,
        port,
        channel,
        health: Arc::default(),
    })
}

impl AgentPool {
    /// A pool of remote agents; channels connect lazily on first use.
    pub fn remote(specs: &[AgentSpec], tls: &AgentTls) -> Result<Self, Error> {
        let pool = Self {
            state: Arc::default(),
            tls: Arc::new(tls.clone()),
            local_mode: false,
        };
        let mut seen = std::collections::BTreeSet::new();
        for spec in specs {
            if !seen.insert(spec.name.clone()) {
                return Err(Error::Duplicate(spec.name.clone()));
            }
        }
        pool.replace(specs)?;
        Ok(pool)
    }

    /// Local mode: one in-process agent for this machine, under `name`.
    pub fn local(name: &str) -> Self {
        let handle = AgentHandle {
            name: name.to_string(),
            url: "in-process".into(),
            host: "127.0.0.1".into(),
            port: 0,
            channel: local::in_process_channel(name),
            health: Arc::default(),
        };
        let mut state = PoolState::default();
        state.agents.insert(name.to_string(), handle);
        Self {
            state: Arc::new(std::sync::RwLock::new(state)),
            tls: Arc::default(),
            local_mode: true,
        }
    }

    /// Replaces the agent set, keeping the channel and backoff state of every
    /// agent whose URL did not change.
    pub fn replace(&self, specs: &[AgentSpec]) -> Result<(), Error> {
        let current = self
            .state
            .read()
            .map(|s| s.agents.clone())
            .unwrap_or_default();
        let mut next = BTreeMap::new();
        for spec in specs {
            let h = match current.get(&spec.name) {
                Some(h) if h.url == spec.url => h.clone(),
                _ => handle(spec, &self.tls)?,
            };
            next.insert(spec.name.clone(), h);
        }
        if let Ok(mut s) = self.state.write() {
            s.agents = next;
        }
        Ok(())
    }

    /// Records what discovery found besides agents.
    pub fn set_discovery(&self, discovery: DiscoveryState) {
        if let Ok(mut s) = self.state.write() {
            s.discovery = discovery;
        }
    }

    /// What discovery found besides agents.
    pub fn discovery(&self) -> DiscoveryState {
        self.state
            .read()
            .map(|s| s.discovery.clone())
            .unwrap_or_default()
    }

    /// Node names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.state
            .read()
            .map(|s| s.agents.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The agent of `node`.
    pub fn get(&self, node: &str) -> Option<AgentHandle> {
        self.state.read().ok()?.agents.get(node).cloned()
    }

    /// All agents, sorted by name.
    pub fn all(&self) -> Vec<AgentHandle> {
        self.state
            .read()
            .map(|s| s.agents.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.state.read().map(|s| s.agents.len()).unwrap_or(0)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_carry_the_underlying_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let mut status = tonic::Status::unavailable("tcp connect error");
        status.set_source(Arc::new(io));
        assert_eq!(
            fanout::reason(&status),
            "tcp connect error: Connection refused"
        );
        assert_eq!(
            fanout::reason(&tonic::Status::unavailable("iptables-save failed")),
            "iptables-save failed"
        );
    }

    #[test]
    fn agent_specs() {
        let s: AgentSpec = "pi-k3s=http://192.168.1.55:9447".parse().unwrap();
        assert_eq!(
            (s.name.as_str(), s.url.as_str()),
            ("pi-k3s", "http://192.168.1.55:9447")
        );
        assert!(matches!(
            "pi-k3s".parse::<AgentSpec>(),
            Err(Error::BadSpec(_))
        ));
        assert!(matches!(
            "Pi K3s=http://x:1".parse::<AgentSpec>(),
            Err(Error::BadName(_))
        ));
        assert!(matches!(
            "a=ftp://x:1".parse::<AgentSpec>(),
            Err(Error::BadUrl { .. })
        ));
        assert!(matches!(
            "a=not a url".parse::<AgentSpec>(),
            Err(Error::BadUrl { .. })
        ));
    }

    #[test]
    fn transport_failures_are_unavailable_and_deadlines_are_timeouts() {
        use tonic::{Code, Status};
        assert_eq!(
            fanout::classify(&Status::new(Code::Cancelled, "operation was canceled")),
            NodeOutcome::Unavailable
        );
        // A message that merely sounds like the transport is the agent's own.
        assert_eq!(
            fanout::classify(&Status::new(Code::Unavailable, "tcp connect error")),
            NodeOutcome::Error
        );
        assert_eq!(
            fanout::classify(&Status::new(Code::DeadlineExceeded, "deadline")),
            NodeOutcome::Timeout
        );
        assert_eq!(
            fanout::classify(&Status::new(Code::Unavailable, "iptables-save failed")),
            NodeOutcome::Error
        );
        assert_eq!(
            fanout::classify(&Status::new(Code::PermissionDenied, "needs CAP_NET_ADMIN")),
            NodeOutcome::Error
        );
    }

    /// Real transport failures, as tonic reports them: a refused
    /// connection and a peer that does not speak HTTP/2.
    #[tokio::test]
    async fn real_transport_failures_are_recognised_by_their_error_types() {
        use labscope_proto::v1::node_agent_client::NodeAgentClient;
        // A port nothing listens on: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let garbage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let garbage_port = garbage.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = garbage.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        for port in [port, garbage_port] {
            let channel =
                tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
                    .unwrap()
                    .connect_lazy();
            let status = NodeAgentClient::new(channel)
                .get_node_info(labscope_proto::v1::GetNodeInfoRequest::default())
                .await
                .unwrap_err();
            assert_eq!(
                fanout::classify(&status),
                NodeOutcome::Unavailable,
                "port {port}: {status:?}"
            );
        }
    }

    #[tokio::test]
    async fn duplicate_names_are_refused() {
        let specs: Vec<AgentSpec> = [
            "a=http://127.0.0.1:1".parse().unwrap(),
            "a=http://127.0.0.1:2".parse().unwrap(),
        ]
        .into();
        assert!(matches!(
            AgentPool::remote(&specs, &AgentTls::default()),
            Err(Error::Duplicate(_))
        ));
    }
}
