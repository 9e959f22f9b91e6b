//! `trace_request`: the path of a request through the cluster, hop by hop,
//! each with a verdict — DNS (each configured resolver's answer), who owns
//! the address, the Ingress rule (or Gateway API HTTPRoute) for host and path, the backend Service,
//! its ready endpoints, the pods behind them, the node's NAT path for the
//! Service (kube-proxy's chains with their packet counters), the kernel's
//! route to the pod, and TCP connects to the pod and to the Service — ending
//! with the first failing hop and what to do. A hop that times out or
//! cannot be read says so; the others still answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};
use labscope_proto::v1 as pb;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{node_agent, on_node};
use crate::agents::AgentHandle;
use crate::cluster::kinds::CustomKind;
use crate::cluster::{Cluster, Request};
use crate::tools::args::{Range, Text, blank_as_none};
use crate::tools::kube::{api_error, cluster_in};
use crate::tools::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};

const HTTPROUTE: CustomKind =
    CustomKind::new("gateway.networking.k8s.io", "HTTPRoute", "httproutes");

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Args {
    /// The URL a browser opens (https://immich.lab.example/api/ping).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub url: Option<Text>,
    /// Or a host name (with port).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub host: Option<Text>,
    /// Port with host (default 443).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub port: Option<Range<1, 65535>>,
    /// Node whose agent asks DNS and probes (default: the node that owns
    /// the address, else the first agent).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub from_node: Option<Text>,
}

/// One hop.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Hop {
    /// dns, owner, ingress, service, endpoints, pods, nat, route,
    /// connect_pod, connect_service.
    pub hop: String,
    /// ok, warning, failed or skipped.
    pub verdict: String,
    /// What was found.
    pub detail: String,
    /// The facts behind it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

/// The trace.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    /// Host traced.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path.
    pub path: String,
    /// Node that asked DNS and probed ("" when no agent was usable).
    pub node: String,
    /// ok, or failed at `failingHop`.
    pub verdict: String,
    /// The first hop that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_hop: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hint: String,
    /// Hops in order.
    pub hops: Vec<Hop>,
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "trace_request",
            title: "Trace a request",
            description: "Where a request to a URL dies: DNS, address owner, Ingress rule, Service, endpoints, pods, NAT, route, TCP — per hop.",
            toolset: Toolset::Cluster,
            hints: Hints::READ,
        },
        run,
    )
}

fn hop(name: &str, verdict: &str, detail: impl Into<String>, evidence: Vec<String>) -> Hop {
    Hop {
        hop: name.into(),
        verdict: verdict.into(),
        detail: detail.into(),
        evidence,
    }
}

/// (host, port, path) of the arguments.
fn target(a: &Args) -> Result<(String, u16, String), ToolError> {
    if let Some(u) = &a.url {
        let parsed = url::Url::parse(u.as_str()).map_err(|e| {
            ToolError::invalid("url", format!("{:?} is not a URL: {e}", u.as_str()))
        })?;
        let host = parsed
            .host_str()
            .ok_or_else(|| ToolError::invalid("url", "has no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let port = parsed.port_or_known_default().ok_or_else(|| {
            ToolError::invalid("url", "no port and no known default for its scheme")
        })?;
        return Ok((host, port, parsed.path().to_string()));
    }
    match &a.host {
        Some(h) => Ok((
            h.as_str().to_string(),
            a.port.map(|p| p.get() as u16).unwrap_or(443),
            "/".into(),
        )),
        None => Err(ToolError::invalid("url", "give url, or host (and port)")),
    }
}

/// Whether an Ingress rule host matches (`*.example.org` matches one label).
fn host_matches(rule: &str, host: &str) -> bool {
    match rule.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
        None => rule.eq_ignore_ascii_case(host),
    }
}

/// How specific a match is: (host exact 2 / wildcard 1 / none 0, path
/// length, Exact).
type Specificity = (u8, usize, bool);

/// (the Ingress or route, its Service `ns/name`, the port, the path matched).
type Backend = (String, String, String, String);

fn specificity(host_rule: Option<&str>, path: &str, exact: bool) -> Specificity {
    let host = match host_rule {
        Some(h) if h.starts_with("*.") => 1,
        Some(_) => 2,
        None => 0,
    };
    (host, path.len(), exact)
}

/// The backend an Ingress gives `host` and `path`: (ingress, service,
/// port name or number, matched path), longest path first; `Exact` paths
/// match only themselves.
pub fn ingress_backend(ingresses: &[Ingress], host: &str, path: &str) -> Option<Backend> {
    let mut best: Option<(Specificity, Backend)> = None;
    for ing in ingresses {
        let ns = ing.metadata.namespace.clone().unwrap_or_default();
        let name = ing.metadata.name.clone().unwrap_or_default();
        let Some(spec) = &ing.spec else { continue };
        for rule in spec.rules.iter().flatten() {
            if !rule.host.as_deref().is_none_or(|h| host_matches(h, host)) {
                continue;
            }
            for p in rule.http.iter().flat_map(|h| h.paths.iter()) {
                let want = p.path.clone().unwrap_or_else(|| "/".into());
                let hit = match p.path_type.as_str() {
                    "Exact" => path == want,
                    _ => {
                        let w = want.trim_end_matches('/');
                        w.is_empty() || path == w || path.starts_with(&format!("{w}/"))
                    }
                };
                let Some(svc) = p.backend.service.as_ref() else {
                    continue;
                };
                let port = svc
                    .port
                    .as_ref()
                    .map(|p| match (&p.name, p.number) {
                        (Some(n), _) => n.clone(),
                        (None, Some(n)) => n.to_string(),
                        _ => String::new(),
                    })
                    .unwrap_or_default();
                // As the controllers pick: the host first (exact, then
                // wildcard, then none), then the longest path, Exact first.
                let score = specificity(rule.host.as_deref(), &want, p.path_type == "Exact");
                if hit && best.as_ref().is_none_or(|(s, _)| score > *s) {
                    best = Some((
                        score,
                        (
                            format!("{ns}/{name}"),
                            format!("{ns}/{}", svc.name),
                            port,
                            want,
                        ),
                    ));
                }
            }
        }
    }
    best.map(|(_, b)| b)
}

/// The backend a Gateway API HTTPRoute gives `host` and `path`: (route,
/// service, port, matched path), longest path first; no hostnames means
/// every host.
pub fn httproute_backend(
    routes: &[kube::api::DynamicObject],
    host: &str,
    path: &str,
) -> Option<Backend> {
    let mut best: Option<(Specificity, Backend)> = None;
    for r in routes {
        let ns = r.metadata.namespace.clone().unwrap_or_default();
        let name = r.metadata.name.clone().unwrap_or_default();
        // A route whose fields do not read as the Gateway API defines them
        // is not one this host can be sent by.
        let Ok(route) = crate::cluster::kinds::fields::<httproute::Route>(r) else {
            continue;
        };
        let hostnames: Vec<&str> = route.spec.hostnames.iter().map(String::as_str).collect();
        if !hostnames.is_empty() && !hostnames.iter().any(|h| host_matches(h, host)) {
            continue;
        }
        for rule in &route.spec.rules {
            let Some(backend) = rule.backend_refs.first() else {
                continue;
            };
            if backend.kind.as_deref().is_some_and(|k| k != "Service") {
                continue;
            }
            let matches: Vec<(String, String)> = if rule.matches.is_empty() {
                vec![("PathPrefix".into(), "/".into())]
            } else {
                rule.matches
                    .iter()
                    .map(|m| {
                        let p = m.path.clone().unwrap_or_default();
                        (
                            p.kind.unwrap_or_else(|| "PathPrefix".into()),
                            p.value.unwrap_or_else(|| "/".into()),
                        )
                    })
                    .collect()
            };
            for (kind, want) in matches {
                let hit = match kind.as_str() {
                    "Exact" => path == want,
                    _ => {
                        let w = want.trim_end_matches('/');
                        w.is_empty() || path == w || path.starts_with(&format!("{w}/"))
                    }
                };
                let host_rule = hostnames.iter().find(|h| host_matches(h, host)).copied();
                let score = specificity(host_rule, &want, kind == "Exact");
                if hit && best.as_ref().is_none_or(|(s, _)| score > *s) {
                    let svc_ns = backend.namespace.as_deref().unwrap_or(&ns);
                    best = Some((
                        score,
                        (
                            format!("{ns}/{name}"),
                            format!("{svc_ns}/{}", backend.name),
                            backend.port.map(|p| p.to_string()).unwrap_or_default(),
                            want,
                        ),
                    ));
                }
            }
        }
    }
    best.map(|(_, b)| b)
}

/// The fields of a Gateway API HTTPRoute (gateway.networking.k8s.io/v1)
/// that route a request: absent is empty, as the API defaults it.
mod httproute {
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct Route {
        pub spec: Spec,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct Spec {
        pub hostnames: Vec<String>,
        pub rules: Vec<Rule>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Rule {
        pub matches: Vec<Match>,
        pub backend_refs: Vec<BackendRef>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct Match {
        pub path: Option<PathMatch>,
    }

    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default)]
    pub struct PathMatch {
        /// Exact, PathPrefix or RegularExpression.
        #[serde(rename = "type")]
        pub kind: Option<String>,
        pub value: Option<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct BackendRef {
        /// Service when absent.
        pub kind: Option<String>,
        pub name: String,
        pub namespace: Option<String>,
        pub port: Option<u16>,
    }
}

struct ClusterView {
    ingresses: Vec<Ingress>,
    /// Gateway API HTTPRoutes (none when the API is not installed).
    routes: Vec<kube::api::DynamicObject>,
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
    pods: Vec<Pod>,
    nodes: Vec<crate::cluster::nodes::NodeFacts>,
}

async fn read_cluster(c: &Cluster) -> Result<ClusterView, crate::cluster::Error> {
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
fn owner(view: &ClusterView, ip: &str) -> Option<(String, Option<String>)> {
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

async fn run(ctx: Arc<ToolContext>, a: Args, call: Call) -> Result<Trace, ToolError> {
    let (host, port, path) = target(&a)?;
    let c = cluster_in(&ctx, None).await?;
    let view = call
        .ticking(
            "reading Ingresses, Services, EndpointSlices and pods",
            ctx.settings.agent_deadline * 3,
            read_cluster(c),
        )
        .await
        .map_err(api_error)?;
    let mut hops = Vec::new();
    let deadline = ctx.settings.agent_deadline.max(Duration::from_secs(5));

    // The node that asks: the one named, else (after DNS) the address's.
    let named = match &a.from_node {
        Some(n) => Some(node_agent(&ctx, "fromNode", n.as_str()).await?),
        None => None,
    };
    let any_agent = || ctx.pool.all().into_iter().next();

    // 1. DNS.
    let literal = host.parse::<std::net::IpAddr>().ok();
    let mut addresses: Vec<String> = literal.iter().map(|a| a.to_string()).collect();
    let asker = named.clone().or_else(any_agent);
    if literal.is_some() {
        hops.push(hop(
            "dns",
            "skipped",
            format!("{host} is an address"),
            vec![],
        ));
    } else if ctx.config.dns_servers.is_empty() {
        hops.push(hop(
            "dns",
            "skipped",
            "no [dns] servers in the config file: resolvers not asked",
            vec![],
        ));
    } else if let Some(agent) = &asker {
        let answers = futures::future::join_all(ctx.config.dns_servers.iter().map(|server| {
            let req = pb::DnsQueryRequest {
                name: host.clone(),
                record_type: "A".into(),
                server: server.clone(),
                checking_disabled: false,
                timeout_ms: 2000,
                tcp: false,
            };
            let agent = agent.clone();
            async move {
                let r = on_node(agent, deadline, &[], |a| async move {
                    a.client().dns_query(req).await.map(|r| r.into_inner())
                })
                .await;
                (server.clone(), r)
            }
        }))
        .await;
        let mut evidence = Vec::new();
        let mut failed = Vec::new();
        let mut sets = Vec::new();
        for (server, r) in answers {
            match r {
                Ok(r) if r.error.is_empty() && r.rcode == "NOERROR" => {
                    let ips: Vec<String> = r
                        .answers
                        .iter()
                        .filter(|x| x.record_type == "A" || x.record_type == "AAAA")
                        .map(|x| x.data.clone())
                        .collect();
                    if ips.is_empty() {
                        failed.push(server.clone());
                    }
                    evidence.push(format!(
                        "{server}: {}",
                        if ips.is_empty() {
                            "no address".into()
                        } else {
                            ips.join(", ")
                        }
                    ));
                    for ip in &ips {
                        if !addresses.contains(ip) {
                            addresses.push(ip.clone());
                        }
                    }
                    sets.push(ips);
                }
                Ok(r) => {
                    failed.push(server.clone());
                    evidence.push(format!(
                        "{server}: {}{}",
                        r.rcode,
                        if r.error.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", r.error)
                        }
                    ));
                }
                Err(e) => {
                    failed.push(server.clone());
                    evidence.push(format!("{server}: not asked ({})", e.message));
                }
            }
        }
        let agree = sets.windows(2).all(|w| {
            let (mut x, mut y) = (w[0].clone(), w[1].clone());
            x.sort();
            y.sort();
            x == y
        });
        let owned = addresses.iter().any(|ip| owner(&view, ip).is_some());
        let (verdict, detail) = if addresses.is_empty() {
            (
                "failed",
                format!("no resolver returned an address for {host}"),
            )
        } else if !failed.is_empty() {
            (
                "failed",
                format!(
                    "{} of {} resolvers gave no address for {host}",
                    failed.len(),
                    ctx.config.dns_servers.len()
                ),
            )
        } else if !owned {
            (
                "failed",
                format!(
                    "{host} resolves to {}, which is no node and no Service of this cluster",
                    addresses.join(", ")
                ),
            )
        } else if !agree {
            ("warning", format!("the resolvers disagree about {host}"))
        } else {
            ("ok", format!("{host} → {}", addresses.join(", ")))
        };
        hops.push(hop("dns", verdict, detail, evidence));
    } else {
        hops.push(hop(
            "dns",
            "skipped",
            "no agent to ask the resolvers from",
            vec![],
        ));
    }

    // 2. The address's owner.
    let mut owner_node = None;
    if addresses.is_empty() {
        hops.push(hop("owner", "skipped", "no address to look up", vec![]));
    } else {
        let found: Vec<(String, (String, Option<String>))> = addresses
            .iter()
            .filter_map(|ip| owner(&view, ip).map(|o| (ip.clone(), o)))
            .collect();
        match found.first() {
            Some((ip, (who, node))) => {
                owner_node.clone_from(node);
                hops.push(hop(
                    "owner",
                    "ok",
                    format!("{ip} is {who}"),
                    found
                        .iter()
                        .map(|(i, (w, _))| format!("{i}: {w}"))
                        .collect(),
                ));
            }
            None => hops.push(hop(
                "owner",
                "warning",
                format!(
                    "{} is not a node or a Service of this cluster",
                    addresses.join(", ")
                ),
                vec![],
            )),
        }
    }
    let prober: Option<AgentHandle> = match (&named, &owner_node) {
        (Some(n), _) => Some(n.clone()),
        (None, Some(node)) => ctx.pool.get(node).or_else(any_agent),
        (None, None) => any_agent(),
    };

    // 3. The Ingress rule.
    let found = ingress_backend(&view.ingresses, &host, &path)
        .map(|b| ("Ingress", b))
        .or_else(|| httproute_backend(&view.routes, &host, &path).map(|b| ("HTTPRoute", b)));
    let Some((what, (ingress, service, svc_port, matched))) = found else {
        hops.push(hop(
            "ingress",
            "failed",
            format!("no Ingress or HTTPRoute routes {host}{path}"),
            vec![],
        ));
        return Ok(finish(host, port, path, prober, hops));
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
        return Ok(finish(host, port, path, prober, hops));
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
        return Ok(finish(host, port, path, prober, hops));
    };
    let service_port = sp.port;
    let port_name = sp.name.clone().unwrap_or_default();
    hops.push(hop(
        "service",
        "ok",
        format!("Service {service} {cluster_ip}:{service_port}"),
        vec![],
    ));

    // 5. Endpoints (EndpointSlices of the Service, the port by name).
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
            .find(|p| p.name.clone().unwrap_or_default() == port_name)
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
    let ev = |list: &[(String, i32, String, String)], what: &str| {
        list.iter()
            .map(|(a, p, pod, node)| format!("{what} {a}:{p} pod {pod} on {node}"))
            .collect::<Vec<_>>()
    };
    let mut evidence = ev(&ready, "ready");
    evidence.extend(ev(&not_ready, "not ready"));
    if ready.is_empty() {
        hops.push(hop(
            "endpoints",
            "failed",
            format!(
                "Service {service} has no ready endpoints ({} not ready)",
                not_ready.len()
            ),
            evidence,
        ));
    } else {
        hops.push(hop(
            "endpoints",
            "ok",
            format!("{} ready endpoint(s)", ready.len()),
            evidence,
        ));
    }

    // 6. The pods behind them (or the selector's, without endpoints).
    let names: Vec<&str> = ready
        .iter()
        .chain(&not_ready)
        .map(|e| e.2.as_str())
        .collect();
    let selector: BTreeMap<String, String> = spec.selector.clone().unwrap_or_default();
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
        hops.push(hop(
            "pods",
            "skipped",
            "the endpoints name no pod (a Service without a selector, pointing elsewhere)",
            vec![],
        ));
    } else if pods.is_empty() {
        hops.push(hop(
            "pods",
            "failed",
            format!("no pods behind Service {service}"),
            vec![],
        ));
    } else if !crashing.is_empty() {
        hops.push(hop(
            "pods",
            "failed",
            format!("pod(s) in CrashLoopBackOff: {}", crashing.join(", ")),
            pod_lines,
        ));
    } else if healthy == 0 {
        hops.push(hop(
            "pods",
            "failed",
            "no pod behind the Service is ready",
            pod_lines,
        ));
    } else {
        hops.push(hop(
            "pods",
            "ok",
            format!("{healthy} of {} pod(s) ready", pods.len()),
            pod_lines,
        ));
    }

    // 7-9. On the node: NAT path, route and connects.
    let Some(agent) = prober.clone() else {
        for h in ["nat", "route", "connect_pod", "connect_service"] {
            hops.push(hop(h, "skipped", "no node agent to ask", vec![]));
        }
        return Ok(finish(host, port, path, prober, hops));
    };
    if cluster_ip.is_empty() || cluster_ip == "None" {
        hops.push(hop(
            "nat",
            "skipped",
            "a headless Service has no cluster IP to translate",
            vec![],
        ));
    } else {
        let protocol = sp.protocol.clone().unwrap_or_else(|| "TCP".into());
        hops.push(nat_hop(&agent, deadline, &cluster_ip, service_port, &protocol).await);
    }
    let first = ready.first().or(not_ready.first()).cloned();
    match first {
        Some((pod_ip, target_port, pod, _)) => {
            let req = pb::ExplainRouteRequest {
                destination: pod_ip.clone(),
                ..Default::default()
            };
            match on_node(agent.clone(), deadline, &[], |a| async move {
                a.client().explain_route(req).await.map(|r| r.into_inner())
            })
            .await
            {
                Ok(e) => hops.push(hop(
                    "route",
                    if e.routable { "ok" } else { "failed" },
                    e.summary,
                    e.notes,
                )),
                Err(e) => hops.push(hop(
                    "route",
                    "skipped",
                    format!("the agent did not answer: {}", e.message),
                    vec![],
                )),
            }
            if target_port <= 0 {
                hops.push(hop(
                    "connect_pod",
                    "skipped",
                    format!("the EndpointSlice gives no port named {port_name:?}"),
                    vec![],
                ));
            } else {
                hops.push(
                    connect_hop(
                        &agent,
                        deadline,
                        "connect_pod",
                        &pod_ip,
                        target_port as u16,
                        &format!("pod {pod}"),
                    )
                    .await,
                );
            }
        }
        None => {
            hops.push(hop(
                "route",
                "skipped",
                "no endpoint address to route to",
                vec![],
            ));
            hops.push(hop(
                "connect_pod",
                "skipped",
                "no endpoint address to connect to",
                vec![],
            ));
        }
    }
    if cluster_ip.is_empty() || cluster_ip == "None" {
        hops.push(hop(
            "connect_service",
            "skipped",
            "a headless Service has no cluster IP",
            vec![],
        ));
    } else {
        hops.push(
            connect_hop(
                &agent,
                deadline,
                "connect_service",
                &cluster_ip,
                service_port as u16,
                &format!("Service {service}"),
            )
            .await,
        );
    }
    Ok(finish(host, port, path, prober, hops))
}

async fn connect_hop(
    agent: &AgentHandle,
    deadline: Duration,
    name: &str,
    ip: &str,
    port: u16,
    what: &str,
) -> Hop {
    let req = pb::TcpConnectRequest {
        target: ip.into(),
        port: port.into(),
        timeout_ms: 2000,
    };
    match on_node(agent.clone(), deadline, &[], |a| async move {
        a.client().tcp_connect(req).await.map(|r| r.into_inner())
    })
    .await
    {
        Ok(r) if r.outcome == pb::TcpConnectOutcome::Open as i32 => hop(
            name,
            "ok",
            format!(
                "{what} {ip}:{port} accepts connections ({} µs)",
                r.connect_us
            ),
            vec![],
        ),
        Ok(r) => hop(
            name,
            "failed",
            format!(
                "{what} {ip}:{port}: {}",
                if r.message.is_empty() {
                    "no connection".to_string()
                } else {
                    r.message
                }
            ),
            vec![],
        ),
        Err(e) => hop(
            name,
            "skipped",
            format!("the agent did not answer: {}", e.message),
            vec![],
        ),
    }
}

/// kube-proxy's iptables path for `ip:port`: the KUBE-SERVICES rule, then
/// its KUBE-SVC chain's KUBE-SEP rules with their counters.
async fn nat_hop(
    agent: &AgentHandle,
    deadline: Duration,
    ip: &str,
    port: i32,
    protocol: &str,
) -> Hop {
    let v6 = ip.contains(':');
    let read = |chain: String| {
        let agent = agent.clone();
        async move {
            let req = pb::GetFirewallRequest {
                ipv6: v6,
                table: "nat".into(),
                chain,
                ..Default::default()
            };
            on_node(agent, deadline, &[], |a| async move {
                a.client().get_firewall(req).await.map(|r| r.into_inner())
            })
            .await
        }
    };
    let services = match read("KUBE-SERVICES".into()).await {
        Ok(fw) => fw,
        Err(e) if e.message.contains("does not exist") => {
            return hop(
                "nat",
                "skipped",
                "no KUBE-SERVICES chain on this node (kube-proxy in nftables mode, or none)",
                vec![],
            );
        }
        Err(e) => {
            return hop(
                "nat",
                "skipped",
                format!("the firewall could not be read: {}", e.message),
                vec![],
            );
        }
    };
    let rules: Vec<&pb::FirewallRule> = services.chains.iter().flat_map(|c| &c.rules).collect();
    // IPVS mode: one rule matching the KUBE-CLUSTER-IP ipset, no rule per
    // Service.
    if rules.iter().any(|r| r.text.contains("KUBE-CLUSTER-IP")) {
        return hop(
            "nat",
            "skipped",
            "kube-proxy runs in IPVS mode here (KUBE-SERVICES matches the KUBE-CLUSTER-IP set): no per-Service chains to follow",
            vec![],
        );
    }
    let dst = format!("{ip}/{}", if v6 { 128 } else { 32 });
    let proto = protocol.to_ascii_lowercase();
    let port_text = port.to_string();
    let Some(rule) = rules.iter().find(|r| {
        let words: Vec<&str> = r.text.split_whitespace().collect();
        let has = |flag: &str, value: &str| words.windows(2).any(|w| w[0] == flag && w[1] == value);
        has("-d", &dst) && has("--dport", &port_text) && has("-p", &proto)
    }) else {
        return hop(
            "nat",
            "failed",
            format!(
                "no KUBE-SERVICES rule for {ip}:{port}/{proto}: kube-proxy has not programmed it on this node \
                 (it leaves a Service without endpoints out of nat and rejects it in the filter table)"
            ),
            vec![],
        );
    };
    let mut evidence = vec![format!("[{} packets] {}", rule.packets, rule.text)];
    if rule.target == "REJECT" || rule.target == "DROP" {
        return hop(
            "nat",
            "failed",
            format!("kube-proxy rejects {ip}:{port}: {}", rule.comment),
            evidence,
        );
    }
    if !rule.target.starts_with("KUBE-SVC-") && !rule.target.starts_with("KUBE-EXT-") {
        return hop(
            "nat",
            "ok",
            format!("{ip}:{port} → {}", rule.target),
            evidence,
        );
    }
    match read(rule.target.clone()).await {
        Ok(fw) => {
            let seps: Vec<&pb::FirewallRule> = fw
                .chains
                .iter()
                .flat_map(|c| &c.rules)
                .filter(|r| r.target.starts_with("KUBE-SEP-"))
                .collect();
            for s in &seps {
                evidence.push(format!("[{} packets] {}", s.packets, s.text));
            }
            if seps.is_empty() {
                hop(
                    "nat",
                    "failed",
                    format!("{} leads to no endpoint (KUBE-SEP) chain", rule.target),
                    evidence,
                )
            } else {
                hop(
                    "nat",
                    "ok",
                    format!(
                        "{ip}:{port} → {} → {} endpoint chain(s)",
                        rule.target,
                        seps.len()
                    ),
                    evidence,
                )
            }
        }
        Err(e) => hop(
            "nat",
            "warning",
            format!("{} could not be read: {}", rule.target, e.message),
            evidence,
        ),
    }
}

fn finish(
    host: String,
    port: u16,
    path: String,
    prober: Option<AgentHandle>,
    hops: Vec<Hop>,
) -> Trace {
    let mut failing = hops.iter().find(|h| h.verdict == "failed");
    // No ready endpoints because the pods crash: the pods are the cause.
    if failing.is_some_and(|h| h.hop == "endpoints")
        && let Some(pods) = hops
            .iter()
            .find(|h| h.hop == "pods" && h.verdict == "failed")
        && pods.detail.contains("CrashLoopBackOff")
    {
        failing = Some(pods);
    }
    let hint = match failing.map(|h| h.hop.as_str()) {
        Some("dns") => {
            "fix the DNS record (Pi-hole local DNS / Unbound) so every resolver returns the ingress address"
        }
        Some("owner") => {
            "point the name at a node or the ingress controller's LoadBalancer address"
        }
        Some("ingress") => "add an Ingress rule for this host and path (kubectl get ingress -A)",
        Some("service") => "create the backend Service or fix the Ingress's service name/port",
        Some("endpoints") => {
            "the Service's pods are not ready or its selector matches none: look at the pods hop"
        }
        Some("pods") => "read the pod's logs and events (get_pod_logs, describe_resource)",
        Some("nat") => {
            "kube-proxy has not programmed the Service on this node: check kube-proxy/k3s logs there"
        }
        Some("route") => {
            "the node has no route to the pod network: check flannel/CNI routes (explain_route)"
        }
        Some("connect_pod") => {
            "the pod does not accept connections on its port: check its container port and readiness"
        }
        Some("connect_service") => {
            "the Service address does not connect while the pod does: check kube-proxy's rules (get_iptables_rules)"
        }
        _ => "",
    };
    Trace {
        verdict: if failing.is_some() {
            "failed".into()
        } else {
            "ok".into()
        },
        failing_hop: failing.map(|h| h.hop.clone()),
        hint: hint.into(),
        host,
        port,
        path,
        node: prober.map(|a| a.name.clone()).unwrap_or_default(),
        hops,
    }
}

impl Render for Trace {
    fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = format!("trace {}:{}{}", self.host, self.port, self.path);
        if !self.node.is_empty() {
            let _ = write!(out, " from node {}", self.node);
        }
        let _ = writeln!(out, ": {}", self.verdict);
        for h in &self.hops {
            let _ = writeln!(out, "  {:<16} {:<8} {}", h.hop, h.verdict, h.detail);
            for e in &h.evidence {
                let _ = writeln!(out, "  {:<16} {:<8}   {e}", "", "");
            }
        }
        if let Some(f) = &self.failing_hop {
            let _ = writeln!(out, "first failing hop: {f} — {}", self.hint);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn httproutes_route_by_host_and_longest_path() {
        let route = |name: &str, hosts: serde_json::Value, rules: serde_json::Value| {
            serde_json::from_value::<kube::api::DynamicObject>(serde_json::json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": name, "namespace": "immich"},
                "spec": {"parentRefs": [{"name": "traefik-gateway", "namespace": "kube-system"}],
                         "hostnames": hosts, "rules": rules}
            }))
            .expect("an HTTPRoute")
        };
        let routes = vec![
            route(
                "immich",
                serde_json::json!(["immich.lab.example"]),
                serde_json::json!([
                    {"backendRefs": [{"name": "immich-server", "port": 2283}]},
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                     "backendRefs": [{"name": "immich-api", "port": 3001}]},
                    {"matches": [{"path": {"type": "Exact", "value": "/health"}}],
                     "backendRefs": [{"name": "health", "namespace": "ops", "port": 80}]}
                ]),
            ),
            route(
                "any",
                serde_json::json!([]),
                serde_json::json!([{"backendRefs": [{"name": "catch", "port": 80}]}]),
            ),
        ];
        let svc = |h: &str, p: &str| httproute_backend(&routes, h, p).map(|b| (b.1, b.2));
        assert_eq!(
            svc("immich.lab.example", "/photos"),
            Some(("immich/immich-server".into(), "2283".into()))
        );
        assert_eq!(
            svc("immich.lab.example", "/api/ping"),
            Some(("immich/immich-api".into(), "3001".into()))
        );
        assert_eq!(
            svc("immich.lab.example", "/apix"),
            Some(("immich/immich-server".into(), "2283".into()))
        );
        assert_eq!(
            svc("immich.lab.example", "/health"),
            Some(("ops/health".into(), "80".into()))
        );
        assert_eq!(
            svc("other.lab.example", "/"),
            Some(("immich/catch".into(), "80".into()))
        );
    }

    #[test]
    fn wildcard_hosts_match_one_label() {
        assert!(host_matches("*.lab.example", "immich.lab.example"));
        assert!(!host_matches("*.lab.example", "a.b.lab.example"));
        assert!(!host_matches("*.lab.example", "lab.example"));
        assert!(host_matches("Immich.lab.example", "immich.lab.example"));
    }
}
