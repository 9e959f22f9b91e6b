//! Runtime configuration shared by `serve`, `tools` and `call`: where the
//! agents are, deadlines, and the API key for HTTP (from the environment or a
//! file, never from flags or the config file).

pub mod file;
pub mod mutations;
pub mod workloads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::agents::AgentSpec;

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
    pub toolsets: Option<Vec<Toolset>>,
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

/// The set a tool belongs to (`--toolsets`); by default the sets that can
/// work with the current configuration are served.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Toolset {
    /// Answered by the node agents.
    Node,
    /// Kubernetes API: health, workloads, certificates, secrets, storage.
    Cluster,
    /// Flux and its image automation (Kubernetes API).
    Flux,
    /// The homelab's services over their HTTP APIs (Pi-hole, Unbound's
    /// pods), configured in the config file.
    Services,
}

impl Toolset {
    /// Every toolset, in listing order.
    pub const ALL: [Toolset; 4] = [
        Toolset::Node,
        Toolset::Cluster,
        Toolset::Flux,
        Toolset::Services,
    ];

    /// Its name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Toolset::Node => "node",
            Toolset::Cluster => "cluster",
            Toolset::Flux => "flux",
            Toolset::Services => "services",
        }
    }

    /// What the set is for, for server instructions and `labscope tools`.
    pub fn about(self) -> &'static str {
        match self {
            Toolset::Node => {
                "node tools, answered by the agent on each node (start with list_nodes)"
            }
            Toolset::Cluster => {
                "cluster tools, from the Kubernetes API (start with get_cluster_health)"
            }
            Toolset::Flux => {
                "Flux tools: stuck releases, sources, image automation (get_flux_status)"
            }
            Toolset::Services => "service tools: DNS (get_dns_status) and media (get_media_status)",
        }
    }

    /// Parses a `--toolsets` word.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// True when its tools answer from the Kubernetes API (and so are
    /// bounded by `Settings::tool_deadline`).
    pub fn uses_kubernetes(self) -> bool {
        !matches!(self, Toolset::Node)
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
    pub fn toolsets_for(&self, cluster_configured: bool) -> std::collections::BTreeSet<Toolset> {
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
