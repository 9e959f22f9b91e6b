//! Agent discovery: the labscope-agent DaemonSet's pods (namespace and label
//! selector configurable), mapped node → pod IP (hostNetwork, so the node's
//! address) → agent URL. Pods that are not Running and Ready are reported,
//! not used, so "no agent on that node" is its own answer.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::{Cluster, Error};
use crate::agents::AgentSpec;

/// Where the agents' pods are and how to reach them.
#[derive(Debug, Clone)]
pub struct DiscoveryOptions {
    /// Namespace of the DaemonSet.
    pub namespace: String,
    /// Label selector of its pods.
    pub selector: String,
    /// gRPC port.
    pub port: u16,
    /// "http" or "https".
    pub scheme: String,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        Self {
            namespace: "labscope".into(),
            selector: "app.kubernetes.io/name=labscope-agent".into(),
            port: 9447,
            scheme: "https".into(),
        }
    }
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

/// Maps agent pods to agent specs (pure).
pub fn agents_from_pods(pods: &[Pod], opts: &DiscoveryOptions) -> (Vec<AgentSpec>, Vec<NotReady>) {
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        let status = pod.status.clone().unwrap_or_default();
        let phase = status.phase.clone().unwrap_or_else(|| "Unknown".into());
        let is_ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        match status.pod_ip.filter(|ip| !ip.is_empty()) {
            Some(ip) if phase == "Running" && is_ready => {
                let host = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip
                };
                ready.push(AgentSpec {
                    name: node,
                    url: format!("{}://{host}:{}", opts.scheme, opts.port),
                });
            }
            _ => not_ready.push(NotReady {
                node,
                pod: name,
                reason: format!(
                    "agent pod is {phase}{}",
                    if is_ready { "" } else { ", not Ready" }
                ),
            }),
        }
    }
    ready.sort_by(|a, b| a.name.cmp(&b.name));
    ready.dedup_by(|a, b| a.name == b.name);
    (ready, not_ready)
}

/// Lists the agent pods (one API request).
pub async fn discover(
    cluster: &Cluster,
    opts: &DiscoveryOptions,
) -> Result<(Vec<AgentSpec>, Vec<NotReady>), Error> {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), &opts.namespace);
    let list = api
        .list(&ListParams::default().labels(&opts.selector))
        .await
        .map_err(|e| Error::from_kube(e, "list", "pods", Some(&opts.namespace)))?;
    Ok(agents_from_pods(&list.items, opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, ip: &str, phase: &str, ready: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "labscope"},
            "spec": {"nodeName": node, "hostNetwork": true, "containers": [{"name": "agent"}]},
            "status": {"phase": phase, "podIP": ip, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    #[test]
    fn ready_pods_become_agents_and_others_are_reported() {
        let pods = [
            pod("a", "pi-k3s", "192.168.1.55", "Running", true),
            pod("b", "pi3-worker-2", "192.168.1.51", "Running", false),
            pod("c", "pi5-worker-1", "fd00::56", "Running", true),
            pod("d", "pi5-worker-2", "", "Pending", false),
        ];
        let (ready, not_ready) = agents_from_pods(&pods, &DiscoveryOptions::default());
        let urls: Vec<_> = ready
            .iter()
            .map(|a| (a.name.as_str(), a.url.as_str()))
            .collect();
        assert_eq!(
            urls,
            [
                ("pi-k3s", "https://192.168.1.55:9447"),
                ("pi5-worker-1", "https://[fd00::56]:9447")
            ]
        );
        assert_eq!(not_ready.len(), 2);
        assert!(
            not_ready
                .iter()
                .any(|n| n.node == "pi5-worker-2" && n.reason.contains("Pending"))
        );
        assert!(
            not_ready
                .iter()
                .any(|n| n.node == "pi3-worker-2" && n.reason.contains("not Ready"))
        );
    }
}
