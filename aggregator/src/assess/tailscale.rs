//! The Tailscale operator judged: Connectors and ProxyClasses ready, the
//! operator's pods running, and each problem as an `(object, finding)` for
//! health. `tools/tailscale.rs` reads the kinds and the pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::DynamicObject;
use schemars::JsonSchema;
use serde::Serialize;

use super::FailedPart;
use crate::cluster::kinds::condition;

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum TailscaleVerdict {
    /// Connectors and operator ready.
    #[serde(rename = "healthy")]
    Healthy,
    /// A Connector, ProxyClass or operator pod is not ready, or the operator
    /// is missing.
    #[serde(rename = "degraded")]
    Degraded,
    /// A part could not be read.
    #[serde(rename = "incomplete")]
    Incomplete,
    /// No Connectors.
    #[serde(rename = "no connectors")]
    NoConnectors,
    /// The operator is not installed.
    #[serde(rename = "not installed")]
    NotInstalled,
}

/// One Connector.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connector {
    /// Name (cluster-scoped).
    pub name: String,
    /// ConnectorReady is True.
    pub ready: bool,
    /// Its reason.
    pub reason: String,
    /// Its message.
    pub message: String,
    /// Tailnet hostname.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Asked to be an exit node.
    pub exit_node: bool,
    /// Acting as one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_exit_node: Option<bool>,
    /// Routes it advertises.
    pub advertised_routes: Vec<String>,
    /// Routes it serves.
    pub active_routes: Vec<String>,
    /// ProxyClass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_class: Option<String>,
    /// Its tailnet addresses.
    pub tailnet_ips: Vec<String>,
}

/// One ProxyClass.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProxyClass {
    /// Name.
    pub name: String,
    /// ProxyClassReady is True.
    pub ready: bool,
    /// Its reason.
    pub reason: String,
}

/// An operator pod.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OperatorPod {
    /// Name.
    pub name: String,
    /// Phase.
    pub phase: String,
    /// Ready (or finished).
    pub ready: bool,
    /// Restarts.
    pub restarts: i32,
}

/// Tailscale.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tailscale {
    /// The operator's kinds are served.
    pub installed: bool,
    /// Verdict.
    pub verdict: TailscaleVerdict,
    /// Version Connectors were read at.
    pub api_version: String,
    /// Version each kind was read at.
    pub api_versions: BTreeMap<String, String>,
    /// Connectors.
    pub connectors: Vec<Connector>,
    /// ProxyClasses.
    pub proxy_classes: Vec<ProxyClass>,
    /// Where the operator's pods were looked for.
    pub operator_namespace: String,
    /// Its pods.
    pub pods: Vec<OperatorPod>,
    /// Parts that could not be read.
    pub failed_parts: Vec<FailedPart>,
}

/// The Tailscale operator's Connector (tailscale.com/v1alpha1), typed:
/// absent is empty; a field of another type is named.
mod wire {
    use serde::Deserialize;

    use crate::cluster::kinds::Conditions;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct Connector {
        pub spec: Spec,
        pub status: Status,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Spec {
        pub hostname: Option<String>,
        pub exit_node: bool,
        pub subnet_router: SubnetRouter,
        pub proxy_class: Option<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct SubnetRouter {
        pub advertise_routes: Vec<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Status {
        #[serde(flatten)]
        pub conditions: Conditions,
        pub is_exit_node: Option<bool>,
        /// Comma-separated, as the operator writes it.
        pub subnet_routes: Option<String>,
        #[serde(rename = "tailnetIPs")]
        pub tailnet_ips: Vec<String>,
    }
}

/// Judges Connectors, ProxyClasses and operator pods (pure).
pub fn assess(
    installed: bool,
    api_versions: BTreeMap<String, String>,
    connectors: &[DynamicObject],
    classes: &[DynamicObject],
    pods: &[Pod],
    operator_ns: &str,
    failed_parts: Vec<FailedPart>,
) -> Tailscale {
    let connectors: Vec<Connector> = connectors
        .iter()
        .map(|cn| {
            // The Connector reports health as ConnectorReady, never as Ready.
            let c = crate::cluster::kinds::fields::<wire::Connector>(cn);
            let (status, reason, message) = crate::cluster::kinds::judged(
                c.as_ref().map(|c| &c.status.conditions),
                "ConnectorReady",
                ("Connector", "an operator"),
            );
            let c = c.unwrap_or_default();
            Connector {
                name: cn.metadata.name.clone().unwrap_or_default(),
                ready: status == "True",
                reason,
                message,
                hostname: c.spec.hostname,
                exit_node: c.spec.exit_node,
                is_exit_node: c.status.is_exit_node,
                advertised_routes: c.spec.subnet_router.advertise_routes,
                active_routes: c
                    .status
                    .subnet_routes
                    .map(|s| {
                        s.split(',')
                            .map(|r| r.trim().to_string())
                            .filter(|r| !r.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
                proxy_class: c.spec.proxy_class,
                tailnet_ips: c.status.tailnet_ips,
            }
        })
        .collect();
    let proxy_classes: Vec<ProxyClass> = classes
        .iter()
        .map(|pc| {
            let (status, reason, _) = condition(&pc.data, "ProxyClassReady").unwrap_or_default();
            ProxyClass {
                name: pc.metadata.name.clone().unwrap_or_default(),
                ready: status == "True",
                reason,
            }
        })
        .collect();
    let pods: Vec<OperatorPod> = pods
        .iter()
        .map(|p| {
            let st = p.status.clone().unwrap_or_default();
            OperatorPod {
                name: p.metadata.name.clone().unwrap_or_default(),
                ready: st
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                    || st.phase.as_deref() == Some("Succeeded"),
                phase: st.phase.clone().unwrap_or_default(),
                restarts: st
                    .container_statuses
                    .iter()
                    .flatten()
                    .map(|c| c.restart_count)
                    .sum(),
            }
        })
        .collect();
    let pods_unread = failed_parts.iter().any(|f| f.part == "operator pods");
    let no_operator = installed && pods.is_empty() && !pods_unread;
    let all_ready = connectors.iter().all(|c| c.ready)
        && proxy_classes.iter().all(|p| p.ready)
        && pods.iter().all(|p| p.ready);
    let verdict = if !installed {
        TailscaleVerdict::NotInstalled
    } else if !all_ready || (no_operator && !connectors.is_empty()) {
        TailscaleVerdict::Degraded
    } else if !failed_parts.is_empty() {
        TailscaleVerdict::Incomplete
    } else if connectors.is_empty() {
        TailscaleVerdict::NoConnectors
    } else {
        TailscaleVerdict::Healthy
    };
    Tailscale {
        installed,
        verdict,
        api_version: api_versions.get("Connector").cloned().unwrap_or_default(),
        api_versions,
        connectors,
        proxy_classes,
        operator_namespace: operator_ns.to_string(),
        pods,
        failed_parts,
    }
}

impl Tailscale {
    /// What is wrong, one `(object, finding)` per problem: Connectors and
    /// ProxyClasses that are not ready, operator pods that are not ready or
    /// missing. Health reports each as an issue.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for c in self.connectors.iter().filter(|c| !c.ready) {
            out.push((
                format!("connector/{}", c.name),
                format!(
                    "Connector {} NOT ready ({}: {})",
                    c.name, c.reason, c.message
                ),
            ));
        }
        for p in self.proxy_classes.iter().filter(|p| !p.ready) {
            out.push((
                format!("proxyclass/{}", p.name),
                format!("ProxyClass {} NOT ready ({})", p.name, p.reason),
            ));
        }
        if self.installed
            && self.pods.is_empty()
            && !self.connectors.is_empty()
            && !self.failed_parts.iter().any(|f| f.part == "operator pods")
        {
            out.push((
                format!("namespace/{}", self.operator_namespace),
                format!(
                    "no operator pods in namespace {} (set --tailscale-namespace if the operator runs elsewhere)",
                    self.operator_namespace
                ),
            ));
        }
        for p in self.pods.iter().filter(|p| !p.ready) {
            out.push((
                format!("pod/{}/{}", self.operator_namespace, p.name),
                format!(
                    "operator pod {}/{} {} not ready ({} restarts)",
                    self.operator_namespace, p.name, p.phase, p.restarts
                ),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(spec: serde_json::Value, status: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "tailscale.com/v1alpha1", "kind": "Connector",
            "metadata": {"name": "homelab-subnet-router"},
            "spec": spec, "status": status,
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn connectors_read_typed_and_a_retyped_field_is_named() {
        let ready = serde_json::json!([{"type": "ConnectorReady", "status": "True", "reason": "ConnectorCreated"}]);
        let good = connector(
            serde_json::json!({"hostname": "lab", "subnetRouter": {"advertiseRoutes": ["192.168.1.0/24"]}}),
            serde_json::json!({"conditions": ready, "subnetRoutes": "192.168.1.0/24, 10.43.0.0/16",
                "tailnetIPs": ["100.64.0.7"], "isExitNode": false}),
        );
        let odd = connector(
            serde_json::json!({"exitNode": "yes"}),
            serde_json::json!({"conditions": ready}),
        );
        let out = assess(
            true,
            BTreeMap::new(),
            &[good, odd],
            &[],
            &[],
            "tailscale",
            Vec::new(),
        );
        let (good, odd) = (&out.connectors[0], &out.connectors[1]);
        assert!(good.ready);
        assert_eq!(good.active_routes, ["192.168.1.0/24", "10.43.0.0/16"]);
        assert_eq!(good.advertised_routes, ["192.168.1.0/24"]);
        assert_eq!(good.tailnet_ips, ["100.64.0.7"]);
        assert!(!odd.ready);
        assert_eq!(odd.reason, "Unreadable");
        assert!(
            odd.message.contains("field `spec.exitNode`"),
            "{}",
            odd.message
        );
    }
}
