//! Hops 2-6 from the cluster's objects, read once: who owns the address,
//! the Ingress rule (or HTTPRoute), the Service, its endpoints, the pods
//! behind them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};

use super::routes::{httproute_backend, ingress_backend};
use super::{HTTPROUTE, Hop, hop};
use crate::cluster::{Cluster, Request};

pub(super) struct ClusterView {
    pub(super) ingresses: Vec<Ingress>,
    /// Gateway API HTTPRoutes (none when the API is not installed).
    pub(super) routes: Vec<kube::api::DynamicObject>,
    pub(super) services: Vec<Service>,
    pub(super) slices: Vec<EndpointSlice>,
    pub(super) pods: Vec<Pod>,
    pub(super) nodes: Vec<crate::cluster::nodes::NodeFacts>,
}

pub(super) async fn read_cluster(c: &Cluster) -> Result<ClusterView, crate::cluster::Error> {
    let all = ListParams::default();
    let (ing, svc, eps, pod) = (
        Api::<Ingress>::all(c.client.clone()),
        Api::<Service>::all(c.client.clone()),
        Api::<EndpointSlice>::all(c.client.clone()),
        Api::<Pod>::all(c.client.clone()),
    );
    let (ingresses, services, slices, pods, nodes) = tokio::try_join!(
        c.list(&ing, &all, Request::new("list", "ingresses", None)),
        c.list(&svc, &all, Request::new("list", "services", None)),
        c.list(&eps, &all, Request::new("list", "endpointslices", None)),
        c.list(&pod, &all, Request::new("list", "pods", None)),
        crate::cluster::nodes::list(c),
    )?;
    let routes = match c.list_kind(&HTTPROUTE, None).await {
        Ok(l) => l.items().to_vec(),
        Err(_) => Vec::new(),
    };
    Ok(ClusterView {
        ingresses,
        routes,
        services,
        slices,
        pods,
        nodes,
    })
}

/// Who owns an address: a node, or a Service (LoadBalancer, external or
/// cluster IP).
pub(super) fn owner(view: &ClusterView, ip: &str) -> Option<(String, Option<String>)> {
    if let Some(n) = view.nodes.iter().find(|n| n.internal_ip == ip) {
        return Some((format!("node {}", n.name), Some(n.name.clone())));
    }
    for s in &view.services {
        let name = format!(
            "{}/{}",
            s.metadata.namespace.clone().unwrap_or_default(),
            s.metadata.name.clone().unwrap_or_default()
        );
        let spec = s.spec.clone().unwrap_or_default();
        let lb = s
            .status
            .as_ref()
            .and_then(|st| st.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.clone())
            .unwrap_or_default();
        if lb.iter().any(|i| i.ip.as_deref() == Some(ip)) {
            // klipper-lb answers on every node's address: the node is the
            // one whose address this is, if any.
            return Some((format!("Service {name} (LoadBalancer)"), None));
        }
        if spec.external_ips.iter().flatten().any(|e| e == ip) {
            return Some((format!("Service {name} (external IP)"), None));
        }
        if spec.cluster_ip.as_deref() == Some(ip) {
            return Some((format!("Service {name} (cluster IP)"), None));
        }
    }
    None
}

/// The owner hop: which node or Service each address is; the node, when a
/// node's.
pub(super) fn owner_hop(view: &ClusterView, addresses: &[String]) -> (Hop, Option<String>) {
    if addresses.is_empty() {
        return (
            hop("owner", "skipped", "no address to look up", vec![]),
            None,
        );
    }
    let found: Vec<(String, (String, Option<String>))> = addresses
        .iter()
        .filter_map(|ip| owner(view, ip).map(|o| (ip.clone(), o)))
        .collect();
    match found.first() {
        Some((ip, (who, node))) => (
            hop(
                "owner",
                "ok",
                format!("{ip} is {who}"),
                found
                    .iter()
                    .map(|(i, (w, _))| format!("{i}: {w}"))
                    .collect(),
            ),
            node.clone(),
        ),
        None => (
            hop(
                "owner",
                "warning",
                format!(
                    "{} is not a node or a Service of this cluster",
                    addresses.join(", ")
                ),
                vec![],
            ),
            None,
        ),
    }
}

/// What the node hops need of the Service found.
pub(super) struct Found {
    /// namespace/name.
    pub(super) service: String,
    pub(super) cluster_ip: String,
    pub(super) service_port: i32,
    pub(super) protocol: String,
    pub(super) port_name: String,
    /// (address, target port, pod, node) of the ready endpoints.
    pub(super) ready: Vec<Endpoint>,
    pub(super) not_ready: Vec<Endpoint>,
}

/// (address, target port, pod, node).
pub(super) type Endpoint = (String, i32, String, String);

/// Hops 3-6, from the cluster's objects: the Ingress rule (or HTTPRoute)
/// for host and path, the Service, its endpoints, its pods. `None` when the
/// trace ends before a Service port is found.
pub(super) fn backend_hops(
    view: &ClusterView,
    host: &str,
    path: &str,
    hops: &mut Vec<Hop>,
) -> Option<Found> {
    let found = ingress_backend(&view.ingresses, host, path)
        .map(|b| ("Ingress", b))
        .or_else(|| httproute_backend(&view.routes, host, path).map(|b| ("HTTPRoute", b)));
    let Some((what, (ingress, service, svc_port, matched))) = found else {
        hops.push(hop(
            "ingress",
            "failed",
            format!("no Ingress or HTTPRoute routes {host}{path}"),
            vec![],
        ));
        return None;
    };
    hops.push(hop(
        "ingress",
        "ok",
        format!("{what} {ingress}: {host} {matched} → {service}:{svc_port}"),
        vec![],
    ));

    // 4. The Service.
    let (ns, name) = service.split_once('/').unwrap_or_default();
    let Some(svc) = view.services.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name)
    }) else {
        hops.push(hop(
            "service",
            "failed",
            format!("Service {service} does not exist"),
            vec![],
        ));
        return None;
    };
    let spec = svc.spec.clone().unwrap_or_default();
    let cluster_ip = spec.cluster_ip.clone().unwrap_or_default();
    let sp =
        spec.ports.iter().flatten().find(|p| {
            p.name.as_deref() == Some(svc_port.as_str()) || p.port.to_string() == svc_port
        });
    let Some(sp) = sp else {
        hops.push(hop(
            "service",
            "failed",
            format!("Service {service} has no port {svc_port}"),
            vec![],
        ));
        return None;
    };
    let service_port = sp.port;
    let port_name = sp.name.clone().unwrap_or_default();
    hops.push(hop(
        "service",
        "ok",
        format!("Service {service} {cluster_ip}:{service_port}"),
        vec![],
    ));

    // 5. Endpoints, 6. the pods behind them.
    let (ready, not_ready) = endpoints(view, ns, name, &port_name);
    hops.push(endpoints_hop(&service, &ready, &not_ready));
    let selector: BTreeMap<String, String> = spec.selector.clone().unwrap_or_default();
    hops.push(pods_hop(view, ns, &service, &ready, &not_ready, &selector));
    Some(Found {
        service: service.clone(),
        protocol: sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
        cluster_ip,
        service_port,
        port_name,
        ready,
        not_ready,
    })
}

/// The endpoints of Service `ns/name` from its EndpointSlices, the port by
/// name: (ready, not ready).
fn endpoints(
    view: &ClusterView,
    ns: &str,
    name: &str,
    port_name: &str,
) -> (Vec<Endpoint>, Vec<Endpoint>) {
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for s in view.slices.iter().filter(|s| {
        s.metadata.namespace.as_deref() == Some(ns)
            && s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .map(String::as_str)
                == Some(name)
    }) {
        let target_port = s
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or_default() == port_name)
            .and_then(|p| p.port)
            .unwrap_or(0);
        for e in &s.endpoints {
            let is_ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            let pod = e
                .target_ref
                .as_ref()
                .and_then(|t| t.name.clone())
                .unwrap_or_default();
            for addr in &e.addresses {
                let entry = (
                    addr.clone(),
                    target_port,
                    pod.clone(),
                    e.node_name.clone().unwrap_or_default(),
                );
                if is_ready {
                    ready.push(entry)
                } else {
                    not_ready.push(entry)
                }
            }
        }
    }
    (ready, not_ready)
}

/// Hop 5: the Service has ready endpoints.
fn endpoints_hop(service: &str, ready: &[Endpoint], not_ready: &[Endpoint]) -> Hop {
    let ev = |list: &[Endpoint], what: &str| {
        list.iter()
            .map(|(a, p, pod, node)| format!("{what} {a}:{p} pod {pod} on {node}"))
            .collect::<Vec<_>>()
    };
    let mut evidence = ev(ready, "ready");
    evidence.extend(ev(not_ready, "not ready"));
    if ready.is_empty() {
        hop(
            "endpoints",
            "failed",
            format!(
                "Service {service} has no ready endpoints ({} not ready)",
                not_ready.len()
            ),
            evidence,
        )
    } else {
        hop(
            "endpoints",
            "ok",
            format!("{} ready endpoint(s)", ready.len()),
            evidence,
        )
    }
}

/// Hop 6: the pods behind the endpoints (or the selector's, without
/// endpoints) are ready and not crashing.
fn pods_hop(
    view: &ClusterView,
    ns: &str,
    service: &str,
    ready: &[Endpoint],
    not_ready: &[Endpoint],
    selector: &BTreeMap<String, String>,
) -> Hop {
    let names: Vec<&str> = ready
        .iter()
        .chain(not_ready)
        .map(|e| e.2.as_str())
        .collect();
    let pods: Vec<&Pod> = view
        .pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| {
            let n = p.metadata.name.as_deref().unwrap_or_default();
            names.contains(&n)
                || (names.is_empty()
                    && !selector.is_empty()
                    && selector
                        .iter()
                        .all(|(k, v)| p.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v)))
        })
        .collect();
    let mut pod_lines = Vec::new();
    let mut healthy = 0;
    let mut crashing = Vec::new();
    for p in &pods {
        let st = p.status.clone().unwrap_or_default();
        let cs = st.container_statuses.clone().unwrap_or_default();
        let restarts: i32 = cs.iter().map(|c| c.restart_count).sum();
        let ready_all = !cs.is_empty() && cs.iter().all(|c| c.ready);
        let waiting: Vec<String> = cs
            .iter()
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .collect();
        let name = p.metadata.name.clone().unwrap_or_default();
        if waiting.iter().any(|w| w == "CrashLoopBackOff") {
            crashing.push(name.clone());
        }
        if ready_all {
            healthy += 1;
        }
        pod_lines.push(format!(
            "{name}: {}{}, {restarts} restart(s), on {}{}",
            st.phase.unwrap_or_default(),
            if ready_all { ", ready" } else { ", not ready" },
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
            if waiting.is_empty() {
                String::new()
            } else {
                format!(", waiting: {}", waiting.join(", "))
            }
        ));
    }
    let no_pod_refs = !ready.is_empty() && names.iter().all(|n| n.is_empty());
    if no_pod_refs {
        hop(
            "pods",
            "skipped",
            "the endpoints name no pod (a Service without a selector, pointing elsewhere)",
            vec![],
        )
    } else if pods.is_empty() {
        hop(
            "pods",
            "failed",
            format!("no pods behind Service {service}"),
            vec![],
        )
    } else if !crashing.is_empty() {
        hop(
            "pods",
            "failed",
            format!("pod(s) in CrashLoopBackOff: {}", crashing.join(", ")),
            pod_lines,
        )
    } else if healthy == 0 {
        hop(
            "pods",
            "failed",
            "no pod behind the Service is ready",
            pod_lines,
        )
    } else {
        hop(
            "pods",
            "ok",
            format!("{healthy} of {} pod(s) ready", pods.len()),
            pod_lines,
        )
    }
}
