//! Kubernetes access (kube-rs): where the API is (`--kubeconfig`,
//! `KUBECONFIG`, or in-cluster), bounded and paged requests (`api`), per-kind
//! API discovery (`kinds`), node facts for `list_nodes`, pod health, and agent
//! discovery from the labscope-agent DaemonSet's pods. Failures are classified
//! by status and cause (`error`).

pub mod api;
pub mod cron;
pub mod discovery;
pub mod error;
pub mod kinds;
pub mod nodes;
pub mod pods;
pub mod time;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

pub use error::{Error, Request};

/// Default deadline of one Kubernetes request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

/// A connected Kubernetes client and where its configuration came from.
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: kube::Client,
    /// "kubeconfig <path>", "KUBECONFIG", or "in-cluster".
    pub source: String,
    /// API discovery (`/apis` and each group version), shared by clones.
    pub(crate) discovery: kinds::DiscoveryCache,
    /// Deadline of each request.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("source", &self.source)
            .finish()
    }
}

/// Connects when a cluster is configured: `kubeconfig` if given, else the
/// `KUBECONFIG` variable, else in-cluster when running in a pod. `None` when
/// none of these applies (local mode).
pub async fn connect(
    kubeconfig: Option<&Path>,
    request_timeout: Duration,
) -> Result<Option<Cluster>, Error> {
    let (config, source) = if let Some(path) = kubeconfig {
        let err = |source| Error::Kubeconfig {
            path: path.display().to_string(),
            source: Arc::new(source),
        };
        let kc = Kubeconfig::read_from(path).map_err(err)?;
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .map_err(err)?;
        (config, format!("kubeconfig {}", path.display()))
    } else if let Some(path) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        let config = kube::Config::from_kubeconfig(&KubeConfigOptions::default())
            .await
            .map_err(|source| Error::Kubeconfig {
                path: path.display().to_string(),
                source: Arc::new(source),
            })?;
        (config, "KUBECONFIG".to_string())
    } else if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        (
            kube::Config::incluster().map_err(|e| Error::InCluster(Arc::new(e)))?,
            "in-cluster".to_string(),
        )
    } else {
        return Ok(None);
    };
    let mut config = config;
    // Requests are bounded by `request_timeout` (see api.rs); connecting
    // gets no longer than that either. No read timeout on the client: it
    // would also cut the idle agent-discovery watch.
    config.connect_timeout = Some(request_timeout.min(Duration::from_secs(10)));
    // kube-rs retries 429/503/504 up to 15 times with backoff by default: a
    // tool would then spend its whole deadline and report "timeout" instead
    // of what the API server said. Report the cause; callers can retry.
    config.default_retry = false;
    let client = kube::Client::try_from(config).map_err(|e| Error::Client(Arc::new(e)))?;
    Ok(Some(Cluster {
        client,
        source,
        discovery: kinds::DiscoveryCache::default(),
        request_timeout,
    }))
}
