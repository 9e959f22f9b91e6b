//! Agent discovery: the labscope-agent DaemonSet's pods (namespace and label
//! selector configurable), mapped node → pod IP (hostNetwork, so the node's
//! address) → agent URL. Pods that are not Running and Ready are reported,
//! not used, so "no agent on that node" is its own answer.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};

use super::{Cluster, Error, Request};
use crate::agents::{AgentPool, AgentSpec, DiscoveryState, NotReady};

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
    let pods = cluster
        .list(
            &api,
            &ListParams::default().labels(&opts.selector),
            Request::new("list", "pods", Some(&opts.namespace)),
        )
        .await?;
    Ok(agents_from_pods(&pods, opts))
}

/// Keeps `pool` equal to the Running and Ready agent pods, through a
/// reflector on the DaemonSet's pods (list, then watch, with backoff on
/// errors). Runs until the process exits.
pub async fn watch(cluster: Cluster, opts: DiscoveryOptions, pool: AgentPool) {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), &opts.namespace);
    let (store, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default().labels(&opts.selector)),
    )
    .default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            // During the initial list the store is not complete yet; act once
            // it is (InitDone) and on every change after that.
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Ok(_) => {
                let pods: Vec<Pod> = store.state().iter().map(|p| (**p).clone()).collect();
                let (specs, problems) = agents_from_pods(&pods, &opts);
                match pool.replace(&specs) {
                    Ok(()) => pool.set_discovery(DiscoveryState {
                        problems,
                        error: None,
                    }),
                    Err(e) => tracing::warn!(error = %e, "discovered agent has an unusable URL"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "agent discovery watch failed; retrying with backoff");
                let mut state = pool.discovery();
                // Keep an explained error from the list call (403 with verb
                // and resource); the watcher's own text is less specific.
                if state.error.is_some() {
                    continue;
                }
                state.error = Some((
                    format!("watching agent pods in namespace {}: {e}", opts.namespace),
                    "labscope needs get/list/watch on pods in the agent namespace (deploy/base/rbac.yaml)".into(),
                ));
                pool.set_discovery(state);
            }
        }
    }
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
