//! get_cluster_health against the fake API (homelab nodes, pods, certificates,
//! External Secrets, Tailscale) with a real agent per node on loopback:
//! the baseline is healthy with evidence; CrashLoopBackOff while Running is
//! critical (3.g); completed Job pods are not problems (3.e); an empty
//! namespace is never healthy (3.j). No root needed.

use std::time::{Duration, Instant};

use labscope_tests::fake_kube::{
    Fixture, agent_pod, homelab_certificates, homelab_eso, homelab_nodes, homelab_tailscale,
    jellyfin_crashloop_pod, pihole_pods, running_pod,
};
use labscope_tests::mcp::call_with_fixture;
use labscope_tests::workspace_binary;
use serde_json::{Value, json};

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const NODES: [(&str, &str); 4] = [
    ("pi-k3s", "127.0.0.2"),
    ("pi5-worker-1", "127.0.0.3"),
    ("pi5-worker-2", "127.0.0.4"),
    ("pi3-worker-2", "127.0.0.5"),
];

fn agents(port: u16) -> anyhow::Result<Vec<Child>> {
    let mut out = Vec::new();
    for (node, ip) in NODES {
        let child = std::process::Command::new(workspace_binary("labscope-agent")?)
            .args(["--listen", &format!("{ip}:{port}"), "--node-name", node])
            .stderr(std::process::Stdio::null())
            .spawn()?;
        out.push(Child(child));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((ip, port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "agent on {ip} did not start");
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    Ok(out)
}

fn fixture(jellyfin: Option<Value>) -> Fixture {
    let (ts_objects, ts_pods) = homelab_tailscale(false);
    let mut objects = ts_objects;
    objects.extend(homelab_certificates());
    objects.extend(homelab_eso("v1"));
    // The namespaces exist (empty or not): 3.j's "no pods" is then about
    // workloads, not a missing namespace.
    objects.extend(["jellyfin", "pihole", "tailscale", "labscope"].map(|ns| {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "status": {"phase": "Active"}})
    }));
    let mut pods = pihole_pods();
    pods.extend(ts_pods);
    pods.extend(jellyfin);
    for (node, ip) in NODES {
        pods.push(agent_pod(node, ip, true));
    }
    let groups = [
        ("cert-manager.io", "v1"),
        ("acme.cert-manager.io", "v1"),
        ("external-secrets.io", "v1"),
        ("tailscale.com", "v1alpha1"),
    ]
    .iter()
    .map(|(g, v)| (g.to_string(), vec![v.to_string()]))
    .collect();
    Fixture {
        nodes: homelab_nodes(),
        pods,
        groups,
        objects,
        ..Default::default()
    }
}

async fn health(fixture: Fixture, port: u16, args: Value) -> anyhow::Result<(Value, bool)> {
    let discovery = labscope::cluster::discovery::DiscoveryOptions {
        port,
        scheme: "http".into(),
        ..Default::default()
    };
    let (mut out, _fake) = call_with_fixture(
        fixture,
        |o| o.discovery = discovery,
        &[("get_cluster_health", args)],
    )
    .await?;
    Ok(out.remove(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_health_baseline_crashloop_and_empty_namespace() -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.2:0")?
        .local_addr()?
        .port();
    let _agents = agents(port)?;

    // Baseline: healthy, with evidence; the seven completed Job pods in pihole are not problems.
    let healthy_jellyfin =
        running_pod("jellyfin", "jellyfin-7c9d6f5b8-x4k2p", "jellyfin", "pi-k3s");
    let (v, err) = health(fixture(Some(healthy_jellyfin)), port, json!({})).await?;
    assert!(!err, "{v}");
    assert_eq!(v["verdict"], "healthy", "{}", v["issues"]);
    assert_eq!(v["issues"], json!([]));
    assert_eq!(v["nodes"]["ready"], 4);
    assert!(v["pods"]["total"].as_u64().unwrap_or(0) >= 13 + 1 + 2 + 4);
    assert_eq!(v["checks"]["certificates"]["verdict"], "healthy");
    assert_eq!(v["checks"]["externalSecrets"]["verdict"], "healthy");
    assert_eq!(v["checks"]["tailscale"]["verdict"], "healthy");

    // 3.g: CrashLoopBackOff while Running is critical, ranked first.
    let (v, err) = health(fixture(Some(jellyfin_crashloop_pod())), port, json!({})).await?;
    assert!(!err);
    assert_eq!(v["verdict"], "critical", "{v}");
    let first = &v["issues"][0];
    assert_eq!(first["kind"], "CrashLoopBackOff", "{v}");
    assert_eq!(first["object"], "pod/jellyfin/jellyfin-7c9d6f5b8-x4k2p");
    assert!(
        first["evidence"]
            .as_str()
            .unwrap_or("")
            .contains("14 restarts")
    );

    // 3.j: a namespace with no pods is never healthy.
    let (v, err) = health(fixture(None), port, json!({"namespace": "jellyfin"})).await?;
    assert!(!err);
    assert_eq!(v["verdict"], "critical", "{v}");
    assert_eq!(v["issues"][0]["kind"], "NoPods", "{}", v["issues"]);

    // 3.e: the pihole namespace alone, with its completed Job pods, is healthy.
    let (v, _) = health(fixture(None), port, json!({"namespace": "pihole"})).await?;
    assert_eq!(v["pods"]["total"], 13);
    assert_eq!(v["pods"]["problems"], 0, "{v}");
    assert_eq!(v["verdict"], "healthy", "{}", v["issues"]);
    Ok(())
}

/// The full homelab fixture (HOMELAB.md §1) with an agent per node.
fn homelab_with_agents(scenarios: &[&str]) -> anyhow::Result<Fixture> {
    let mut f = labscope_tests::homelab::homelab(scenarios)?;
    for (node, ip) in NODES {
        f.pods.push(agent_pod(node, ip, true));
    }
    Ok(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_health_on_the_whole_homelab_with_flux_and_image_incidents() -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.2:0")?
        .local_addr()?
        .port();
    let _agents = agents(port)?;
    // Under every Flux API layout: kinds of one group at different versions.
    for layout in ["flux-2.2", "flux-2.4", "flux-2.7"] {
        whole_homelab(port, layout).await?;
    }
    Ok(())
}

async fn whole_homelab(port: u16, layout: &str) -> anyhow::Result<()> {
    // §2: the whole baseline is healthy, with evidence.
    let (v, err) = health(homelab_with_agents(&[layout])?, port, json!({})).await?;
    assert!(!err, "{v}");
    assert_eq!(v["verdict"], "healthy", "{}", v["issues"]);
    assert_eq!(v["checks"]["flux"]["verdict"], "healthy");
    assert_eq!(v["checks"]["imageAutomation"]["verdict"], "healthy");
    assert_eq!(v["warningEvents"], json!([]));
    assert!(
        v["pods"]["total"].as_u64().unwrap_or(0) > 70,
        "{}",
        v["pods"]["total"]
    );

    // 3.a + 3.b + 3.g + 3.i together: ranked, one issue per root cause, events as evidence.
    let (v, err) = health(
        homelab_with_agents(&[
            layout,
            "immich-stuck",
            "private-exit-node-auth",
            "jellyfin-crashloop",
            "backup-overdue",
        ])?,
        port,
        json!({}),
    )
    .await?;
    assert!(!err, "{v}");
    assert_eq!(v["verdict"], "critical");
    let issues = v["issues"].as_array().cloned().unwrap_or_default();
    let kinds: Vec<&str> = issues.iter().filter_map(|i| i["kind"].as_str()).collect();
    let stuck = issues
        .iter()
        .find(|i| i["kind"] == "FluxStuck")
        .cloned()
        .unwrap_or_default();
    assert_eq!(stuck["object"], "helmrelease/immich/immich", "{kinds:?}");
    assert_eq!(stuck["severity"], "critical");
    assert_eq!(stuck["nextTool"], "get_flux_status");
    assert!(
        !issues
            .iter()
            .any(|i| i["object"] == "kustomization/flux-system/immich"),
        "the Kustomization is a consequence, not a second issue: {kinds:?}"
    );
    // The immich Kustomization and the private-exit-node ImagePolicy.
    assert_eq!(v["checks"]["flux"]["consequences"], 2);
    let image = issues
        .iter()
        .find(|i| i["kind"] == "ImageAutomationFailing")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        image["object"],
        "imagerepository/flux-system/private-exit-node"
    );
    assert!(
        image["evidence"].as_str().is_some_and(
            |e| e.contains("registry authentication failed") && e.contains("secretRef")
        ),
        "{image}"
    );
    let crash = issues
        .iter()
        .find(|i| i["kind"] == "CrashLoopBackOff")
        .cloned()
        .unwrap_or_default();
    assert!(
        crash["events"].as_array().is_some_and(|e| e
            .iter()
            .any(|x| x.as_str().is_some_and(|s| s.starts_with("Unhealthy ×42")))),
        "liveness failures are the crash loop's evidence: {crash}"
    );
    // 3.i: fifteen failed retry pods are two issues, one per CronJob.
    let failing: Vec<&str> = issues
        .iter()
        .filter(|i| i["kind"] == "JobsFailing")
        .filter_map(|i| i["object"].as_str())
        .collect();
    assert_eq!(
        failing,
        [
            "cronjob/backup-jobs/pvc-backup",
            "cronjob/backup-jobs/restore-test"
        ]
    );
    assert!(!kinds.contains(&"JobFailed"), "{kinds:?}");
    // Critical first.
    let first_warning = issues
        .iter()
        .position(|i| i["severity"] != "critical")
        .unwrap_or(issues.len());
    assert!(
        issues[first_warning..]
            .iter()
            .all(|i| i["severity"] != "critical")
    );
    // Warning events newest first, de-duplicated.
    let events = v["warningEvents"].as_array().cloned().unwrap_or_default();
    assert!(events.len() >= 4, "{events:?}");
    let times: Vec<&str> = events
        .iter()
        .filter_map(|e| e["lastSeen"].as_str())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);
    Ok(())
}

/// `what_changed` over the whole homelab: every node's history (agents
/// answering), the Warning events of the window merged by time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_changed_merges_nodes_and_the_cluster() -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.2:0")?
        .local_addr()?
        .port();
    let _agents = agents(port)?;
    let discovery = labscope::cluster::discovery::DiscoveryOptions {
        port,
        scheme: "http".into(),
        ..Default::default()
    };
    let (out, _fake) = call_with_fixture(
        homelab_with_agents(&["jellyfin-crashloop"])?,
        |o| o.discovery = discovery,
        &[
            ("what_changed", json!({"since": "2h"})),
            ("what_changed", json!({"since": "2h", "kinds": "event"})),
            ("what_changed", json!({"since": "yesterday"})),
        ],
    )
    .await?;
    let (v, err) = &out[0];
    assert!(!err, "{v}");
    let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(nodes.len(), 4, "{v}");
    for n in &nodes {
        assert_eq!(n["status"], "ok", "{n}");
        assert!(n["budgetBytes"].as_u64().unwrap_or(0) > 0, "{n}");
    }
    let changes = v["changes"].as_array().cloned().unwrap_or_default();
    let events: Vec<&Value> = changes.iter().filter(|c| c["kind"] == "event").collect();
    assert!(
        events
            .iter()
            .any(|c| c["object"].as_str().unwrap_or("").contains("jellyfin")
                && c["object"].as_str().unwrap_or("").ends_with("BackOff")),
        "{v}"
    );
    let times: Vec<&str> = changes.iter().filter_map(|c| c["at"].as_str()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "merged by time");
    let (v, err) = &out[1];
    assert!(!err, "{v}");
    let changes = v["changes"].as_array().cloned().unwrap_or_default();
    assert!(
        !changes.is_empty() && changes.iter().all(|c| c["kind"] == "event"),
        "{v}"
    );
    assert_eq!(v["nodes"], json!([]), "events alone ask no agent");
    let (v, err) = &out[2];
    assert!(*err && v["code"] == "invalid_argument", "{v}");
    Ok(())
}

/// One `trace_request` in namespace `ns` against the homelab with
/// `scenarios`, the resolvers `dns` and an agent for pi-k3s on 127.0.0.2.
fn trace_in(
    ns: &labscope_tests::Netns,
    scenarios: &'static [&'static str],
    dns: Vec<String>,
    args: Value,
) -> anyhow::Result<(Value, bool)> {
    ns.block_on(move || async move {
        let mut fixture = labscope_tests::homelab::homelab(scenarios)?;
        fixture.pods.push(agent_pod("pi-k3s", "127.0.0.2", true));
        let discovery = labscope::cluster::discovery::DiscoveryOptions {
            port: 9447,
            scheme: "http".into(),
            ..Default::default()
        };
        let (mut out, _fake) = call_with_fixture(
            fixture,
            move |o| {
                o.discovery = discovery;
                o.config = std::sync::Arc::new(labscope::config::file::Config {
                    dns_servers: dns,
                    ..Default::default()
                });
            },
            &[("trace_request", args)],
        )
        .await?;
        Ok(out.remove(0))
    })
}

fn verdicts(v: &Value) -> Vec<(String, String)> {
    v["hops"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|h| {
            (
                h["hop"].as_str().unwrap_or_default().to_string(),
                h["verdict"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// `trace_request` on the homelab with its node hops real: a namespace
/// holding the pi-k3s agent, the immich pod's address with a listener,
/// kube-proxy's chains for the immich Service and fake resolvers. A healthy
/// path is ok at every hop; a wrong DNS answer, a Service without ready
/// endpoints and a crash-looping pod are each named as the failing hop.
#[test]
fn trace_request_names_the_failing_hop() -> anyhow::Result<()> {
    if !labscope_tests::require_root("trace_request_names_the_failing_hop") {
        return Ok(());
    }
    labscope_tests::require_tool("iptables-nft-restore")?;
    let ns = labscope_tests::Netns::new("trace")?;
    for a in ["10.42.3.13/32", "127.0.0.2/8"] {
        let _ = ns.ip(&["addr", "add", a, "dev", "lo"]);
    }
    ns.ip(&["route", "add", "10.43.0.0/16", "dev", "lo"])?;
    let rules = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
        :KUBE-SERVICES - [0:0]\n:KUBE-SVC-IMMICHSERVER0001 - [0:0]\n:KUBE-SEP-IMMICHSERVER0001 - [0:0]\n\
        -A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
        -A KUBE-SERVICES -d 10.43.200.31/32 -p tcp -m comment --comment \"immich/immich-server:http cluster IP\" -m tcp --dport 2283 -j KUBE-SVC-IMMICHSERVER0001\n\
        -A KUBE-SVC-IMMICHSERVER0001 -m comment --comment \"immich/immich-server:http -> 10.42.3.13:2283\" -j KUBE-SEP-IMMICHSERVER0001\n\
        -A KUBE-SEP-IMMICHSERVER0001 -p tcp -m comment --comment \"immich/immich-server:http\" -m tcp -j DNAT --to-destination 10.42.3.13:2283\n\
        COMMIT\n";
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), rules)?;
    ns.run(&["iptables-nft-restore", &file.path().display().to_string()])?;
    // The immich pod, the resolvers.
    ns.spawn(|| async {
        let Ok(l) = tokio::net::TcpListener::bind("10.42.3.13:2283").await else {
            return;
        };
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    })?;
    let node_ip: std::net::IpAddr = "192.168.1.55".parse()?;
    let wrong: std::net::IpAddr = "192.168.1.99".parse()?;
    ns.spawn(move || {
        labscope_tests::servers::dns(
            ([127, 0, 0, 9], 53).into(),
            "immich.lab.mtgibbs.dev",
            node_ip,
        )
    })?;
    ns.spawn(move || {
        labscope_tests::servers::dns(
            ([127, 0, 0, 10], 53).into(),
            "immich.lab.mtgibbs.dev",
            wrong,
        )
    })?;
    ns.spawn(move || {
        labscope_tests::servers::dns(
            ([127, 0, 0, 11], 53).into(),
            "jellyfin.lab.mtgibbs.dev",
            node_ip,
        )
    })?;
    let _agent = labscope_tests::AgentProcess::start(&ns, "127.0.0.2:9447", "pi-k3s", &[])?;

    // Healthy: every hop ok.
    let (v, err) = trace_in(
        &ns,
        &[],
        vec!["127.0.0.9".into()],
        json!({"url": "https://immich.lab.mtgibbs.dev/api/ping"}),
    )?;
    assert!(!err, "{v}");
    let all: Vec<(String, String)> = verdicts(&v);
    let hops: Vec<&str> = all.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(
        hops,
        [
            "dns",
            "owner",
            "ingress",
            "service",
            "endpoints",
            "pods",
            "nat",
            "route",
            "connect_pod",
            "connect_service"
        ],
        "{v}"
    );
    assert!(all.iter().all(|(_, verdict)| verdict == "ok"), "{v:#}");
    assert_eq!(v["verdict"], "ok");
    assert_eq!(v["node"], "pi-k3s", "the node that owns the address probes");
    assert!(!v.to_string().contains("did not end"), "{v}");
    let nat = v["hops"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["hop"] == "nat"))
        .cloned()
        .unwrap_or_default();
    assert!(
        nat["evidence"]
            .to_string()
            .contains("KUBE-SEP-IMMICHSERVER0001"),
        "{nat}"
    );

    // A wrong DNS answer.
    let (v, _) = trace_in(
        &ns,
        &[],
        vec!["127.0.0.10".into()],
        json!({"url": "https://immich.lab.mtgibbs.dev/"}),
    )?;
    assert_eq!(v["failingHop"], "dns", "{v:#}");
    assert!(
        v["hops"][0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("192.168.1.99"),
        "{v}"
    );

    // A Service with no ready endpoints (scaled to zero).
    let (v, _) = trace_in(
        &ns,
        &["jellyfin-scaled-to-zero"],
        vec!["127.0.0.11".into()],
        json!({"url": "https://jellyfin.lab.mtgibbs.dev/web/"}),
    )?;
    assert_eq!(v["failingHop"], "endpoints", "{v:#}");

    // A crash-looping pod behind it.
    let (v, _) = trace_in(
        &ns,
        &["jellyfin-crashloop"],
        vec!["127.0.0.11".into()],
        json!({"host": "jellyfin.lab.mtgibbs.dev"}),
    )?;
    assert_eq!(v["failingHop"], "pods", "{v:#}");
    assert!(v["hint"].as_str().unwrap_or("").contains("logs"), "{v}");
    Ok(())
}
