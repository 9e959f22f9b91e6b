//! Kubernetes access (kube-rs): where the API is (`--kubeconfig`,
//! `KUBECONFIG`, or in-cluster), node facts for `list_nodes`, and agent
//! discovery from the labscope-agent DaemonSet's pods. Kubernetes errors reach
//! the caller explained (403 names the missing verb and resource).

pub mod cron;
pub mod discovery;
pub mod groups;
pub mod nodes;
pub mod pods;
pub mod time;

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Errors of Kubernetes access.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// File (or "KUBECONFIG").
        path: String,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// In-cluster configuration failed.
    #[error("in-cluster configuration: {0}")]
    InCluster(#[source] kube::config::InClusterError),
    /// The client could not be built.
    #[error("Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The API refused: RBAC.
    #[error("the Kubernetes API refused to {verb} {resource}{scope}: {message}")]
    Forbidden {
        /// Verb.
        verb: &'static str,
        /// Resource.
        resource: &'static str,
        /// " in namespace X" or "".
        scope: String,
        /// API message.
        message: String,
    },
    /// Any other API failure.
    #[error("Kubernetes API: {verb} {resource}{scope} failed: {message}")]
    Api {
        /// Verb.
        verb: &'static str,
        /// Resource.
        resource: &'static str,
        /// " in namespace X" or "".
        scope: String,
        /// What happened.
        message: String,
    },
}

impl Error {
    /// Explains a kube error for one request.
    pub fn from_kube(
        e: kube::Error,
        verb: &'static str,
        resource: &'static str,
        namespace: Option<&str>,
    ) -> Self {
        let scope = namespace
            .map(|n| format!(" in namespace {n}"))
            .unwrap_or_default();
        match e {
            kube::Error::Api(status) if status.code == 403 => Error::Forbidden {
                verb,
                resource,
                scope,
                message: status.message.clone(),
            },
            kube::Error::Api(status) => Error::Api {
                verb,
                resource,
                scope,
                message: format!("HTTP {}: {}", status.code, status.message),
            },
            other => Error::Api {
                verb,
                resource,
                scope,
                message: other.to_string(),
            },
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            Error::Forbidden { verb, resource, .. } => format!(
                "grant labscope's ServiceAccount `{verb}` on `{resource}` (ClusterRole in deploy/); labscope is read-only and needs get/list/watch"
            ),
            Error::Kubeconfig { .. } => "check --kubeconfig / KUBECONFIG".into(),
            _ => "check that the API server is reachable from labscope".into(),
        }
    }
}

/// A connected Kubernetes client and where its configuration came from.
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: kube::Client,
    /// "kubeconfig <path>", "KUBECONFIG", or "in-cluster".
    pub source: String,
    /// `/apis` as last read, and when: one discovery request serves every
    /// group lookup of a call (and of calls within the cache's lifetime).
    pub(crate) groups: groups::DiscoveryCache,
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
pub async fn connect(kubeconfig: Option<&Path>) -> Result<Option<Cluster>, Error> {
    let (config, source) = if let Some(path) = kubeconfig {
        let err = |source| Error::Kubeconfig {
            path: path.display().to_string(),
            source,
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
                source,
            })?;
        (config, "KUBECONFIG".to_string())
    } else if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        (
            kube::Config::incluster().map_err(Error::InCluster)?,
            "in-cluster".to_string(),
        )
    } else {
        return Ok(None);
    };
    let client = kube::Client::try_from(config).map_err(Error::Client)?;
    Ok(Some(Cluster {
        client,
        source,
        groups: groups::DiscoveryCache::default(),
    }))
}
