//! Node facts from the Kubernetes API for `list_nodes` and the health checks:
//! Ready (with reason), roles, architecture, kubelet version, pressure,
//! taints. Pure conversion from `Node` objects plus one list call.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::{Cluster, Error, Request};

/// What `list_nodes` shows of a Kubernetes node.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeFacts {
    /// Node name.
    pub name: String,
    /// Ready condition: true, false, or null when the condition is missing/Unknown.
    pub ready: Option<bool>,
    /// Reason/message of the Ready condition when not ready.
    pub ready_reason: String,
    /// `node-role.kubernetes.io/<role>` labels; empty for workers (a
    /// `role=batch` label is not a role).
    pub roles: Vec<String>,
    /// "control-plane" when it has that role, else "worker".
    pub kind: &'static str,
    /// `status.nodeInfo.architecture`.
    pub arch: String,
    /// Kubelet version.
    pub kubelet_version: String,
    /// OS image.
    pub os_image: String,
    /// InternalIP.
    pub internal_ip: String,
    /// Pressure conditions that are True (MemoryPressure, DiskPressure, PIDPressure, NetworkUnavailable).
    pub pressure: Vec<String>,
    /// Taints as key=value:Effect.
    pub taints: Vec<String>,
    /// Cordoned.
    pub unschedulable: bool,
}

/// Converts one Node object.
pub fn facts(node: &Node) -> NodeFacts {
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut roles: Vec<String> = node
        .metadata
        .labels
        .iter()
        .flatten()
        .filter_map(|(k, _)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
        })
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort();
    let status = node.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let ready_cond = conditions.iter().find(|c| c.type_ == "Ready");
    let ready = ready_cond.and_then(|c| match c.status.as_str() {
        "True" => Some(true),
        "False" => Some(false),
        _ => None,
    });
    let ready_reason = match ready_cond {
        None => "no Ready condition reported".to_string(),
        Some(c) if c.status == "True" => String::new(),
        Some(c) => format!(
            "{}: {}",
            c.reason.clone().unwrap_or_else(|| c.status.clone()),
            c.message.clone().unwrap_or_default()
        ),
    };
    let pressure = conditions
        .iter()
        .filter(|c| c.type_ != "Ready" && c.status == "True")
        .map(|c| c.type_.clone())
        .collect();
    let info = status.node_info.unwrap_or_default();
    let internal_ip = status
        .addresses
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
        .unwrap_or_default();
    let spec = node.spec.clone().unwrap_or_default();
    let taints = spec
        .taints
        .unwrap_or_default()
        .into_iter()
        .map(|t| match t.value {
            Some(v) if !v.is_empty() => format!("{}={}:{}", t.key, v, t.effect),
            _ => format!("{}:{}", t.key, t.effect),
        })
        .collect();
    NodeFacts {
        name,
        ready,
        ready_reason,
        kind: if roles.iter().any(|r| r == "control-plane" || r == "master") {
            "control-plane"
        } else {
            "worker"
        },
        roles,
        arch: info.architecture,
        kubelet_version: info.kubelet_version,
        os_image: info.os_image,
        internal_ip,
        pressure,
        taints,
        unschedulable: spec.unschedulable.unwrap_or(false),
    }
}

/// Lists every node (one API request).
pub async fn list(cluster: &Cluster) -> Result<Vec<NodeFacts>, Error> {
    let api: Api<Node> = Api::all(cluster.client.clone());
    let nodes = cluster
        .list(
            &api,
            &ListParams::default(),
            Request::new("list", "nodes", None),
        )
        .await?;
    let mut out: Vec<NodeFacts> = nodes.iter().map(facts).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_label_is_not_a_role_and_conditions_are_read() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pi3-worker-2", "labels": {"role": "batch", "kubernetes.io/arch": "arm64"}},
            "spec": {"taints": [{"key": "role", "value": "batch", "effect": "NoSchedule"}]},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "True"},
                    {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "PLEG is not healthy"}
                ],
                "nodeInfo": {"architecture": "arm64", "kubeletVersion": "v1.34.3+k3s1", "osImage": "Raspberry Pi OS",
                    "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "",
                    "machineID": "", "operatingSystem": "linux", "systemUUID": ""},
                "addresses": [{"type": "InternalIP", "address": "192.168.1.51"}, {"type": "Hostname", "address": "pi3-worker-2"}]
            }
        }))
        .unwrap();
        let f = facts(&node);
        assert!(
            f.roles.is_empty(),
            "role=batch is not node-role.kubernetes.io/*"
        );
        assert_eq!(f.kind, "worker");
        assert_eq!(f.ready, Some(false));
        assert!(f.ready_reason.contains("KubeletNotReady"));
        assert_eq!(f.pressure, ["MemoryPressure"]);
        assert_eq!(f.taints, ["role=batch:NoSchedule"]);
        assert_eq!(
            (f.arch.as_str(), f.internal_ip.as_str()),
            ("arm64", "192.168.1.51")
        );
    }
}
