//! Runtime configuration shared by `serve`, `tools` and `call`: where the
//! agents are, deadlines, and the API key for HTTP (from the environment or a
//! file, never from flags or the config file).

pub mod file;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::agents::{AgentPool, AgentSpec, AgentTls, DiscoveryState};
use crate::metrics::Metrics;
use crate::tools::{Settings, ToolContext};

/// Errors of configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An agent option is wrong.
    #[error(transparent)]
    Agents(#[from] crate::agents::Error),
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Kubernetes access failed.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::Error),
    /// The configuration file is unusable.
    #[error(transparent)]
    File(#[from] file::Error),
    /// The audit log cannot be written.
    #[error(
        "mutations.audit_log {path}: {source} (the audit log must be writable when mutations are enabled)"
    )]
    AuditLog {
        /// File.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The API key is unusable.
    #[error("API key from {origin} is empty")]
    EmptyKey {
        /// Where it came from.
        origin: &'static str,
    },
}

/// Agent-related options.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// `--agent NAME=URL`.
    pub agents: Vec<AgentSpec>,
    /// `--agent-ca`.
    pub ca: Option<PathBuf>,
    /// `--agent-cert`.
    pub cert: Option<PathBuf>,
    /// `--agent-key`.
    pub key: Option<PathBuf>,
    /// `--agent-tls-domain`.
    pub domain: Option<String>,
    /// `--node-name` for local mode.
    pub local_name: Option<String>,
    /// Per-node deadline.
    pub deadline: Duration,
    /// Fan-out concurrency.
    pub concurrency: usize,
    /// Default DNS server.
    pub dns_server: Option<String>,
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// Agent discovery settings (used with a cluster and no `--agent`).
    pub discovery: crate::cluster::discovery::DiscoveryOptions,
    /// Fixed "now" (Unix seconds) for fixtures and tests.
    pub now: Option<i64>,
    /// Time zone for CronJobs without spec.timeZone (the controller's zone).
    pub cron_time_zone: Option<String>,
    /// CronJobs (namespace/name) that are backups whatever their name.
    pub backup_cronjobs: Vec<String>,
    /// Deadline of each Kubernetes request (`None`: the default, 8 s).
    pub kube_timeout: Option<Duration>,
    /// Deadline of each cluster tool call (`None`: the default, 20 s).
    pub tool_deadline: Option<Duration>,
    /// Namespace of the Tailscale operator (`None`: "tailscale").
    pub tailscale_namespace: Option<String>,
    /// `--toolsets`: the sets served over MCP (`None`: those that can work
    /// with this configuration — node always, cluster and flux with a
    /// Kubernetes API).
    pub toolsets: Option<Vec<crate::tools::Toolset>>,
    /// The configuration file (`--config`), validated, secrets read.
    pub config: Arc<file::Config>,
    /// `--read-only`: no mutating tool is served or runs, whatever the
    /// config file says.
    pub read_only: bool,
}

fn read(path: &PathBuf) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })
}

/// This machine's hostname (the local agent's node name).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into())
}

impl AgentOptions {
    /// Builds the tool context: `--agent` when given; else, with a cluster
    /// configured, the agents discovered from the DaemonSet's pods; else
    /// local mode. Must be called inside a Tokio runtime.
    pub async fn context(&self) -> Result<Arc<ToolContext>, Error> {
        let cluster = crate::cluster::connect(
            self.kubeconfig.as_deref(),
            self.kube_timeout
                .unwrap_or(crate::cluster::DEFAULT_REQUEST_TIMEOUT),
        )
        .await?;
        let identity = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            _ => None,
        };
        let tls = AgentTls {
            client: if self.ca.is_some() || identity.is_some() {
                Some(Arc::new(
                    labscope_agent::tls::watched_client(self.ca.clone(), identity)
                        .map_err(|e| crate::agents::Error::Tls(e.to_string()))?,
                ))
            } else {
                None
            },
            domain: self.domain.clone(),
        };
        let pool = if !self.agents.is_empty() {
            AgentPool::remote(&self.agents, &tls)?
        } else if let Some(cluster) = &cluster {
            let pool = AgentPool::remote(&[], &tls)?;
            // One list now, so the first call already sees the agents and a
            // refusal is explained; then a watch keeps the set current.
            let state = match crate::cluster::discovery::discover(cluster, &self.discovery).await {
                Ok((specs, problems)) => {
                    pool.replace(&specs)?;
                    DiscoveryState {
                        problems,
                        error: None,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "agent discovery failed");
                    DiscoveryState {
                        problems: Vec::new(),
                        error: Some((e.to_string(), e.hint())),
                    }
                }
            };
            pool.set_discovery(state);
            tokio::spawn(crate::cluster::discovery::watch(
                cluster.clone(),
                self.discovery.clone(),
                pool.clone(),
            ));
            pool
        } else {
            AgentPool::local(&self.local_name.clone().unwrap_or_else(hostname))
        };
        let cluster_configured = cluster.is_some();
        let mutations = self.config.mutations.clone();
        let audit = crate::safety::audit::AuditLog::open(mutations.audit_log.as_deref()).map_err(
            |source| Error::AuditLog {
                path: mutations.audit_log.clone().unwrap_or_default(),
                source,
            },
        )?;
        let safety = crate::safety::Safety {
            policy: crate::safety::Policy::new(mutations, self.read_only),
            audit,
        };
        Ok(Arc::new(ToolContext {
            pool,
            cluster,
            settings: Settings {
                agent_deadline: self.deadline,
                fanout_concurrency: self.concurrency.max(1),
                default_dns_server: self
                    .dns_server
                    .clone()
                    .or_else(|| self.config.dns_servers.first().cloned()),
                now: self.now,
                cron_time_zone: self.cron_time_zone.clone().unwrap_or_else(|| "UTC".into()),
                backup_cronjobs: self.backup_cronjobs.clone(),
                tool_deadline: self
                    .tool_deadline
                    .unwrap_or(crate::tools::DEFAULT_TOOL_DEADLINE),
                tailscale_namespace: self
                    .tailscale_namespace
                    .clone()
                    .unwrap_or_else(|| "tailscale".into()),
            },
            metrics: Arc::new(Metrics::default()),
            toolsets: self.toolsets_for(cluster_configured),
            config: self.config.clone(),
            safety: Arc::new(safety),
            services: Arc::new(crate::services::Services::from_config(&self.config)),
        }))
    }
}

impl AgentOptions {
    /// Whether a Kubernetes API is configured (without connecting).
    pub fn cluster_configured(&self) -> bool {
        self.kubeconfig.is_some()
            || std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty())
            || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
    }

    /// The toolsets served: `--toolsets` when given, else those that can
    /// work here.
    pub fn toolsets_for(
        &self,
        cluster_configured: bool,
    ) -> std::collections::BTreeSet<crate::tools::Toolset> {
        use crate::tools::Toolset;
        let c = &self.config;
        let services = c.pihole_primary.is_some()
            || c.pihole_secondary.is_some()
            || c.jellyfin.is_some()
            || c.immich.is_some();
        match &self.toolsets {
            Some(t) if !t.is_empty() => t.iter().copied().collect(),
            _ if cluster_configured => Toolset::ALL
                .into_iter()
                .filter(|t| services || *t != Toolset::Services)
                .collect(),
            _ if services => [Toolset::Node, Toolset::Services].into_iter().collect(),
            _ => [Toolset::Node].into_iter().collect(),
        }
    }
}

/// The HTTP API key: `LABSCOPE_API_KEY`, or the file named by `LABSCOPE_API_KEY_FILE`.
pub fn api_key_from_env() -> Result<Option<String>, Error> {
    if let Ok(key) = std::env::var("LABSCOPE_API_KEY") {
        let key = key.trim().to_string();
        return if key.is_empty() {
            Err(Error::EmptyKey {
                origin: "LABSCOPE_API_KEY",
            })
        } else {
            Ok(Some(key))
        };
    }
    if let Ok(path) = std::env::var("LABSCOPE_API_KEY_FILE") {
        let key = read(&PathBuf::from(path))?.trim().to_string();
        return if key.is_empty() {
            Err(Error::EmptyKey {
                origin: "LABSCOPE_API_KEY_FILE",
            })
        } else {
            Ok(Some(key))
        };
    }
    Ok(None)
}
