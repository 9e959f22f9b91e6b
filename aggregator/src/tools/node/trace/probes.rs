//! The hops asked of a node's agent: DNS through each configured resolver,
//! kube-proxy's NAT path for the Service, the kernel's route to a pod, TCP
//! connects to the pod and the Service.

use std::time::Duration;

use labscope_proto::v1 as pb;

use super::view::{ClusterView, Found, owner};
use super::{Hop, hop};
use crate::agents::AgentHandle;
use crate::tools::ToolContext;
use crate::tools::node::on_node;

/// The DNS hop: every configured resolver asked from `asker`'s node; the
/// addresses they gave (or the host itself when it is an address).
pub(super) async fn dns_hop(
    ctx: &ToolContext,
    view: &ClusterView,
    host: &str,
    asker: Option<&AgentHandle>,
    deadline: Duration,
) -> (Hop, Vec<String>) {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        let h = hop("dns", "skipped", format!("{host} is an address"), vec![]);
        return (h, vec![ip.to_string()]);
    }
    if ctx.config.dns_servers.is_empty() {
        let h = hop(
            "dns",
            "skipped",
            "no [dns] servers in the config file: resolvers not asked",
            vec![],
        );
        return (h, Vec::new());
    }
    let Some(agent) = asker else {
        let h = hop(
            "dns",
            "skipped",
            "no agent to ask the resolvers from",
            vec![],
        );
        return (h, Vec::new());
    };
    let mut addresses: Vec<String> = Vec::new();
    let answers = futures::future::join_all(ctx.config.dns_servers.iter().map(|server| {
        let req = pb::DnsQueryRequest {
            name: host.to_string(),
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
    let owned = addresses.iter().any(|ip| owner(view, ip).is_some());
    let (verdict, detail) = dns_verdict(
        host,
        &addresses,
        failed.len(),
        ctx.config.dns_servers.len(),
        agree,
        owned,
    );
    (hop("dns", verdict, detail, evidence), addresses)
}

/// The DNS hop's verdict: every resolver gave an address of this cluster,
/// and the same ones.
fn dns_verdict(
    host: &str,
    addresses: &[String],
    failed: usize,
    servers: usize,
    agree: bool,
    owned: bool,
) -> (&'static str, String) {
    if addresses.is_empty() {
        (
            "failed",
            format!("no resolver returned an address for {host}"),
        )
    } else if failed > 0 {
        (
            "failed",
            format!(
                "{} of {} resolvers gave no address for {host}",
                failed, servers
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
    }
}

/// Hops 7-9 on the prober's node: kube-proxy's NAT path for the Service,
/// the kernel's route to a pod, TCP connects to the pod and the Service.
pub(super) async fn node_hops(
    prober: Option<&AgentHandle>,
    b: &Found,
    deadline: Duration,
    hops: &mut Vec<Hop>,
) {
    let Some(agent) = prober else {
        for h in ["nat", "route", "connect_pod", "connect_service"] {
            hops.push(hop(h, "skipped", "no node agent to ask", vec![]));
        }
        return;
    };
    let Found {
        service,
        cluster_ip,
        service_port,
        protocol,
        port_name,
        ready,
        not_ready,
    } = b;
    let service_port = *service_port;
    if cluster_ip.is_empty() || cluster_ip == "None" {
        hops.push(hop(
            "nat",
            "skipped",
            "a headless Service has no cluster IP to translate",
            vec![],
        ));
    } else {
        hops.push(nat_hop(agent, deadline, cluster_ip, service_port, protocol).await);
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
                        agent,
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
                agent,
                deadline,
                "connect_service",
                cluster_ip,
                service_port as u16,
                &format!("Service {service}"),
            )
            .await,
        );
    }
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
    let evidence = vec![format!("[{} packets] {}", rule.packets, rule.text)];
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
    let target = read(rule.target.clone()).await;
    endpoint_chains(ip, port, &rule.target, target, evidence)
}

/// The Service chain's KUBE-SEP jumps: one per endpoint, with counters.
fn endpoint_chains(
    ip: &str,
    port: i32,
    target_name: &str,
    target: Result<pb::Firewall, crate::tools::ToolError>,
    mut evidence: Vec<String>,
) -> Hop {
    match target {
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
                    format!("{} leads to no endpoint (KUBE-SEP) chain", target_name),
                    evidence,
                )
            } else {
                hop(
                    "nat",
                    "ok",
                    format!(
                        "{ip}:{port} → {} → {} endpoint chain(s)",
                        target_name,
                        seps.len()
                    ),
                    evidence,
                )
            }
        }
        Err(e) => hop(
            "nat",
            "warning",
            format!("{} could not be read: {}", target_name, e.message),
            evidence,
        ),
    }
}
