//! Cluster tools against the fake Kubernetes API through a real rmcp client:
//! HOMELAB.md scenario 3.c (External Secrets served only at v1; absent; a
//! store down with 53 echoes) and 3.f (Tailscale Connector healthy through
//! ConnectorReady; down; RBAC 403 is an error, not "0 connectors").

use std::time::Duration;

use labscope::config::AgentOptions;
use labscope_tests::fake_kube::{
    FakeKube, Fixture, certificates_scenario_3h, homelab_certificates, homelab_eso, homelab_nodes,
    homelab_tailscale,
};
use labscope_tests::mcp::call_with_fixture;
use serde_json::{Value, json};

fn groups(eso: Option<&[&str]>) -> Vec<(String, Vec<String>)> {
    let mut g = vec![
        ("tailscale.com".to_string(), vec!["v1alpha1".to_string()]),
        ("cert-manager.io".to_string(), vec!["v1".to_string()]),
        ("acme.cert-manager.io".to_string(), vec!["v1".to_string()]),
    ];
    if let Some(versions) = eso {
        g.push((
            "external-secrets.io".to_string(),
            versions.iter().map(|v| v.to_string()).collect(),
        ));
    }
    g
}

/// Serves `fixture`, connects an MCP client to an in-process server with
/// that cluster configured, and calls each tool in `calls`.
async fn run(
    fixture: Fixture,
    calls: &[(&str, Value)],
) -> anyhow::Result<(Vec<(Value, bool)>, FakeKube)> {
    call_with_fixture(fixture, |_| {}, calls).await
}

fn base(eso: Option<&[&str]>) -> Fixture {
    let (ts_objects, ts_pods) = homelab_tailscale(false);
    let mut objects = ts_objects;
    objects.extend(homelab_certificates());
    // The namespaces exist, as on a real cluster.
    objects.extend(["homepage", "tailscale", "romm", "uptime-kuma"].map(|ns| {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "status": {"phase": "Active"}})
    }));
    if let Some(v) = eso.and_then(|v| v.first()) {
        objects.extend(homelab_eso(v));
    }
    Fixture {
        nodes: homelab_nodes(),
        pods: ts_pods,
        groups: groups(eso),
        objects,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_secrets_served_only_at_v1() -> anyhow::Result<()> {
    let (r, fake) = run(
        base(Some(&["v1"])),
        &[
            ("get_secrets_status", json!({})),
            ("get_secrets_status", json!({"namespace": "homepage"})),
        ],
    )
    .await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["installed"], true);
    assert_eq!(
        v["apiVersion"], "external-secrets.io/v1",
        "found by discovery, not hard-coded"
    );
    assert_eq!(v["summary"]["externalSecrets"], 56);
    assert_eq!(v["summary"]["ready"], 56);
    assert_eq!(v["verdict"], "healthy");
    assert_eq!(v["stores"][0]["name"], "onepassword");
    let keys: std::collections::BTreeSet<String> = v["externalSecrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["namespace"].as_str().unwrap_or(""),
                e["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        keys.len(),
        56,
        "ghcr-pull-secret ×3 and backup-ssh-key ×2 are keyed by namespace/name"
    );
    assert_eq!(r[1].0["summary"]["externalSecrets"], 8, "namespace filter");
    // The naive client's request: v1beta1 is not served.
    let url = format!(
        "{}/apis/external-secrets.io/v1beta1/externalsecrets",
        fake.url
    );
    let addr = fake.url.trim_start_matches("http://").to_string();
    let (status, _, body) = tokio::task::spawn_blocking(move || {
        labscope_tests::mcp::http_raw(
            &addr,
            &format!("GET {url} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        )
    })
    .await??;
    assert_eq!(status, 404);
    assert!(body.contains("the server could not find the requested resource"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_secrets_absent_is_not_installed() -> anyhow::Result<()> {
    let (r, _fake) = run(base(None), &[("get_secrets_status", json!({}))]).await?;
    let (v, err) = &r[0];
    assert!(!err, "not installed is an answer, not an error: {v}");
    assert_eq!(v["installed"], false);
    assert_eq!(v["verdict"], "not installed");
    assert!(
        v["summary"].is_null(),
        "never \"0 ExternalSecrets, 0 failed\""
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_secrets_store_down_is_one_root_cause() -> anyhow::Result<()> {
    let mut fixture = base(Some(&["v1"]));
    let mut failing = 0;
    for o in fixture.objects.iter_mut() {
        if o["kind"] == "ClusterSecretStore" {
            o["status"]["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "InvalidProviderConfig",
                "message": "wasm error: out of bounds memory access"}]);
        } else if o["kind"] == "ExternalSecret" && failing < 53 {
            failing += 1;
            o["status"]["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "SecretSyncedError",
                "message": "ClusterSecretStore \"onepassword\" is not ready"}]);
            o["status"]["refreshTime"] = json!("2026-08-11T20:28:00Z");
        }
    }
    let (r, _fake) = run(fixture, &[("get_secrets_status", json!({}))]).await?;
    let (v, err) = &r[0];
    assert!(!err);
    assert_eq!(v["verdict"], "degraded");
    assert_eq!(v["summary"]["failing"], 53);
    assert_eq!(v["summary"]["storesDown"], 1);
    let causes = v["rootCauses"].as_array().unwrap();
    assert_eq!(
        causes.len(),
        1,
        "one root cause, not 53 separate failures: {v}"
    );
    assert_eq!(causes[0]["store"]["name"], "onepassword");
    assert_eq!(causes[0]["failingExternalSecrets"], 53);
    assert!(
        causes[0]["note"]
            .as_str()
            .unwrap_or("")
            .contains("nothing refreshes")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailscale_connector_ready_through_connector_ready() -> anyhow::Result<()> {
    let (r, _fake) = run(base(Some(&["v1"])), &[("get_tailscale_status", json!({}))]).await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    let c = &v["connectors"][0];
    assert_eq!(c["name"], "pi-cluster-exit");
    assert_eq!(
        c["ready"], true,
        "ConnectorReady=True, and there is no Ready condition: {v}"
    );
    assert_eq!(c["exitNode"], true);
    assert_eq!(
        c["advertisedRoutes"],
        json!(["192.168.1.55/32", "192.168.1.56/32", "192.168.1.70/32"])
    );
    assert_eq!(c["activeRoutes"], c["advertisedRoutes"]);
    assert_eq!(v["proxyClasses"][0]["ready"], true);
    assert_eq!(v["pods"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["verdict"], "healthy");
    assert!(
        c.get("namespace").is_none(),
        "Connectors are cluster-scoped"
    );

    let mut down = base(Some(&["v1"]));
    let (objects, pods) = homelab_tailscale(true);
    down.objects
        .retain(|o| o["apiVersion"] != "tailscale.com/v1alpha1");
    down.objects.extend(objects);
    down.pods = pods;
    let (r, _fake) = run(down, &[("get_tailscale_status", json!({}))]).await?;
    let (v, _) = &r[0];
    assert_eq!(v["connectors"][0]["ready"], false);
    assert_eq!(v["connectors"][0]["reason"], "ConnectorCreationFailed");
    assert_eq!(v["verdict"], "degraded");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_refusal_is_an_error_not_zero_connectors() -> anyhow::Result<()> {
    let mut fixture = base(Some(&["v1"]));
    fixture.forbidden.insert("connectors".into());
    let (r, _fake) = run(fixture, &[("get_tailscale_status", json!({}))]).await?;
    let (v, err) = &r[0];
    assert!(err, "a 403 must not read as 0 connectors: {v}");
    assert_eq!(v["code"], "permission_denied");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("list connectors"),
        "{v}"
    );
    assert!(v["hint"].as_str().unwrap_or("").contains("list"));
    Ok(())
}

#[tokio::test]
async fn cluster_tools_without_a_cluster_say_so() -> anyhow::Result<()> {
    if std::env::var_os("KUBECONFIG").is_some()
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
    {
        eprintln!(
            "SKIP cluster_tools_without_a_cluster_say_so: a cluster is configured in this environment"
        );
        return Ok(());
    }
    let ctx = AgentOptions {
        deadline: Duration::from_secs(3),
        concurrency: 4,
        ..Default::default()
    }
    .context()
    .await?;
    let tools = labscope::tools::registry();
    let e = labscope::tools::call(
        ctx,
        &tools,
        "get_secrets_status",
        Default::default(),
        Default::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(serde_json::to_value(e.code)?, "not_configured");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_baseline_is_healthy_with_evidence() -> anyhow::Result<()> {
    let (r, _fake) = run(
        base(Some(&["v1"])),
        &[
            ("get_certificate_status", json!({})),
            // A wide window does not make normal certificates "expiring":
            // each is judged within its own renewal window (30 days here).
            ("get_certificate_status", json!({"expiringWithinDays": 90})),
        ],
    )
    .await?;
    let (wide, err) = &r[1];
    assert!(!err, "{wide}");
    assert_eq!(wide["verdict"], "healthy", "{}", wide["summary"]);
    assert_eq!(wide["summary"]["expiring"], 0, "{}", wide["summary"]);
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["verdict"], "healthy", "{}", v["summary"]);
    assert_eq!(v["summary"]["total"], 31);
    assert_eq!(v["summary"]["ready"], 31);
    let days: Vec<i64> = v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] != "pi-cluster-ca")
        .map(|c| c["daysLeft"].as_i64().unwrap())
        .collect();
    assert!(
        days.iter().all(|d| (60..=80).contains(d)),
        "Let's Encrypt certificates have 60-80 days left: {days:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_scenario_expiring_and_failing_challenge() -> anyhow::Result<()> {
    let mut fixture = base(Some(&["v1"]));
    fixture.objects = certificates_scenario_3h(std::mem::take(&mut fixture.objects));
    let (r, _fake) = run(fixture, &[("get_certificate_status", json!({}))]).await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["verdict"], "critical");
    let find = |name: &str| {
        v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    let kuma = find("uptime-kuma-tls");
    assert_eq!(kuma["ready"], true, "still valid");
    assert_eq!(kuma["daysLeft"], 10);
    assert_eq!(kuma["expiring"], true);
    assert_eq!(
        kuma["renewalOverdueDays"], 20,
        "a Ready-only check would call this fine"
    );
    assert_eq!(kuma["failedIssuanceAttempts"], 5);
    let romm = find("romm-tls");
    assert_eq!(romm["ready"], false);
    let kinds: Vec<&str> = romm["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        ["CertificateRequest", "Order", "Challenge"],
        "{romm}"
    );
    let challenge = &romm["chain"][2];
    assert_eq!(challenge["type"], "DNS-01");
    assert_eq!(challenge["dnsName"], "romm.lab.mtgibbs.dev");
    assert!(
        challenge["reason"]
            .as_str()
            .unwrap_or("")
            .contains("Cloudflare")
    );
    assert!(
        romm["hint"]
            .as_str()
            .unwrap_or("")
            .contains("cloudflare-api-token")
    );
    // Problems are listed first.
    let first: Vec<&str> = v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|c| c["name"].as_str().unwrap_or(""))
        .collect();
    assert!(
        first.contains(&"romm-tls") && first.contains(&"uptime-kuma-tls"),
        "{first:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailscale_operator_namespace_is_configurable() -> anyhow::Result<()> {
    // The operator installed into another namespace: the default finds no
    // operator pods and says so (not healthy); the option finds them.
    let mut f = base(Some(&["v1"]));
    for p in f.pods.iter_mut() {
        p["metadata"]["namespace"] = json!("tailscale-system");
    }
    let (r, _fake) =
        call_with_fixture(f.clone(), |_| {}, &[("get_tailscale_status", json!({}))]).await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["verdict"], "degraded", "{v}");
    assert_eq!(v["operatorNamespace"], "tailscale");
    let (r, _fake) = call_with_fixture(
        f,
        |o| o.tailscale_namespace = Some("tailscale-system".into()),
        &[("get_tailscale_status", json!({}))],
    )
    .await?;
    let (v, _) = &r[0];
    assert_eq!(v["verdict"], "healthy", "{v}");
    assert_eq!(v["pods"].as_array().map(Vec::len), Some(2), "{v}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_cluster_every_toolset_is_served() -> anyhow::Result<()> {
    let fake = FakeKube::start(base(Some(&["v1"]))).await?;
    let dir = tempfile::tempdir()?;
    let options = AgentOptions {
        kubeconfig: Some(fake.write_kubeconfig(dir.path())?),
        deadline: Duration::from_secs(3),
        ..Default::default()
    };
    let ctx = options.context().await?;
    let served = labscope::tools::enabled(&ctx.toolsets);
    // Every read-only tool but the services' (no Pi-hole configured here);
    // operations only with mutations on.
    let expected = labscope::tools::registry()
        .iter()
        .filter(|t| !t.mutates() && t.toolset != labscope::tools::Toolset::Services)
        .count();
    assert_eq!(served.len(), expected);
    let instructions = labscope::server::mcp::instructions(&ctx.toolsets);
    let off = instructions
        .split("Not enabled:")
        .nth(1)
        .unwrap_or_default();
    assert!(
        instructions.contains("get_cluster_health")
            && !off.contains("cluster")
            && !off.contains("flux"),
        "{instructions}"
    );
    assert!(off.contains("services"), "{instructions}");
    // --toolsets narrows it.
    let narrow = AgentOptions {
        toolsets: Some(vec![labscope::tools::Toolset::Cluster]),
        ..options
    };
    let ctx = narrow.context().await?;
    assert!(
        labscope::tools::enabled(&ctx.toolsets)
            .iter()
            .all(|t| t.name != "list_nodes")
    );
    Ok(())
}
