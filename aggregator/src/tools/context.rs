//! The tool context a configuration builds: the agents (given, discovered
//! from the DaemonSet's pods, or this machine's), the cluster, the safety
//! policy with its audit log, and the services.

use std::sync::Arc;

use crate::agents::{AgentPool, AgentTls, DiscoveryState};
use crate::config::{AgentOptions, Error, hostname};
use crate::tools::{Settings, ToolContext};

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
            toolsets: self.toolsets_for(cluster_configured),
            config: self.config.clone(),
            safety: Arc::new(safety),
            services: Arc::new(crate::services::Services::from_config(&self.config)),
        }))
    }
}
