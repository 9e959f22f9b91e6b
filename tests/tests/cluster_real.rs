//! Cluster checks that hold where real clusters differ from the fixture,
//! through a real rmcp client against the fake API: kinds of one group
//! served at different versions (External Secrets and cert-manager caught
//! mid-upgrade), an API server that hangs (tools answer within their
//! deadline), 401/404/429/5xx mapped to what they mean, k3s pod realities
//! (evicted and shut-down pods, init containers, phase Unknown, Indexed Jobs),
//! exact certificate chains, and redaction that a `grep` cannot probe.

use std::time::{Duration, Instant};

use labscope_tests::fake_kube::{Fault, FaultEffect, Fixture};
use labscope_tests::homelab::homelab;
use labscope_tests::mcp::call_with_fixture;
use serde_json::{Value, json};

async fn run(fixture: Fixture, calls: &[(&str, Value)]) -> anyhow::Result<Vec<(Value, bool)>> {
    Ok(call_with_fixture(fixture, |_| {}, calls).await?.0)
}

fn issues(v: &Value) -> Vec<Value> {
    v["issues"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eso_and_cert_manager_kinds_at_different_versions() -> anyhow::Result<()> {
    let r = run(
        homelab(&["eso-mixed", "cert-manager-mixed", "certificates"])?,
        &[
            ("get_secrets_status", json!({})),
            ("get_certificate_status", json!({"namespace": "romm"})),
            ("get_cluster_health", json!({})),
        ],
    )
    .await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["apiVersions"]["ExternalSecret"], "external-secrets.io/v1");
    assert_eq!(
        v["apiVersions"]["ClusterSecretStore"],
        "external-secrets.io/v1beta1"
    );
    assert_eq!(
        v["summary"]["stores"], 1,
        "the store served only at v1beta1 is read: {v}"
    );
    assert_eq!(v["summary"]["externalSecrets"], 56);
    assert_eq!(v["verdict"], "healthy");

    let (v, err) = &r[1];
    assert!(!err, "{v}");
    assert_eq!(v["apiVersions"]["Certificate"], "cert-manager.io/v1");
    assert_eq!(
        v["apiVersions"]["CertificateRequest"],
        "cert-manager.io/v1beta1"
    );
    let romm = &v["certificates"][0];
    assert_eq!(romm["name"], "romm-tls");
    let chain: Vec<&str> = romm["chain"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["kind"].as_str())
        .collect();
    assert_eq!(
        chain,
        ["CertificateRequest", "Order", "Challenge"],
        "{romm}"
    );
    assert!(
        romm["hint"]
            .as_str()
            .is_some_and(|h| h.contains("Cloudflare"))
    );

    let (v, _) = &r[2];
    assert!(
        !issues(v).iter().any(|i| i["kind"] == "CheckFailed"),
        "no part failed: {}",
        v["issues"]
    );
    assert_eq!(v["checks"]["externalSecrets"]["verdict"], "healthy");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_api_server_costs_a_tool_its_deadline_not_minutes() -> anyhow::Result<()> {
    // Everything about the source group hangs: its kinds time out one by
    // one (1 s per request), the other Flux kinds answer.
    let mut f = homelab(&["immich-stuck"])?;
    f.faults.push(Fault::new(
        "/apis/source.toolkit.fluxcd.io",
        FaultEffect::Delay(Duration::from_secs(120)),
    ));
    let started = Instant::now();
    let (r, _fake) = call_with_fixture(
        f,
        |o| {
            o.kube_timeout = Some(Duration::from_secs(1));
            o.tool_deadline = Some(Duration::from_secs(4));
        },
        &[
            ("get_flux_status", json!({})),
            ("get_cluster_health", json!({})),
        ],
    )
    .await?;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let (v, err) = &r[0];
    assert!(!err, "the kinds that answered are reported: {v}");
    assert_eq!(v["verdict"], "critical", "the stuck release is still found");
    let failed: Vec<&str> = v["failedParts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["code"] == "timeout")
        .filter_map(|p| p["part"].as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "GitRepository",
            "OCIRepository",
            "HelmRepository",
            "HelmChart",
            "Bucket"
        ],
        "{}",
        v["failedParts"]
    );
    assert!(
        v["failedParts"][0]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("--kube-timeout-ms")),
        "{}",
        v["failedParts"][0]
    );
    let (v, err) = &r[1];
    assert!(!err, "{v}");
    assert!(
        issues(v)
            .iter()
            .any(|i| i["kind"] == "FluxStuck" && i["object"] == "helmrelease/immich/immich"),
        "{}",
        v["issues"]
    );
    assert!(
        issues(v)
            .iter()
            .any(|i| i["kind"] == "CheckFailed" && i["object"] == "flux GitRepository"),
        "{}",
        v["issues"]
    );

    // Now every request hangs and each may take 30 s: the tool deadline
    // (3 s) bounds single tools with a typed timeout, and the health check
    // answers in time with every part named.
    let mut f = homelab(&[])?;
    // Everything but agent discovery's pod list in namespace labscope (its
    // first list runs before any tool and has its own request deadline).
    for path in [
        "/apis",
        "/api/v1/nodes",
        "/api/v1/pods",
        "/api/v1/events",
        "/api/v1/namespaces/tailscale",
    ] {
        f.faults.push(Fault::new(
            path,
            FaultEffect::Delay(Duration::from_secs(120)),
        ));
    }
    let started = Instant::now();
    let (r, _fake) = call_with_fixture(
        f,
        |o| {
            o.kube_timeout = Some(Duration::from_secs(30));
            o.tool_deadline = Some(Duration::from_secs(3));
        },
        &[
            ("get_secrets_status", json!({})),
            ("get_cluster_health", json!({})),
        ],
    )
    .await?;
    let elapsed = started.elapsed();
    let (v, err) = &r[0];
    assert!(err, "{v}");
    assert_eq!(v["code"], "timeout", "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("get_secrets_status")),
        "{v}"
    );
    let (v, err) = &r[1];
    assert!(!err, "health answers with what it has: {v}");
    assert_eq!(v["verdict"], "critical", "{v}");
    let all = issues(v);
    let failed: Vec<&str> = all
        .iter()
        .filter(|i| i["kind"] == "CheckFailed")
        .filter_map(|i| i["object"].as_str())
        .collect();
    for part in [
        "nodes",
        "pods",
        "flux",
        "events",
        "certificates",
        "externalSecrets",
        "tailscale",
    ] {
        assert!(failed.contains(&part), "{part} not named: {failed:?}");
    }
    assert!(
        issues(v).iter().all(|i| i["kind"] != "CheckFailed"
            || i["evidence"]
                .as_str()
                .is_some_and(|e| e.contains("no answer within"))),
        "{}",
        v["issues"]
    );
    // Two tools of at most 3 s each, though every request may take 30 s.
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_failures_are_explained_by_status() -> anyhow::Result<()> {
    // 401 everywhere: an expired token, not an unreachable server.
    let mut f = homelab(&[])?;
    f.faults.push(Fault::new("/", FaultEffect::Status(401)));
    let r = run(
        f,
        &[("get_flux_status", json!({})), ("get_events", json!({}))],
    )
    .await?;
    for (v, err) in &r {
        assert!(err, "{v}");
        assert_eq!(v["code"], "unauthenticated", "{v}");
        assert!(
            v["hint"].as_str().is_some_and(|h| h.contains("expired")),
            "{v}"
        );
    }
    // 503 for one kind: that kind is a failed part, the rest answers.
    let mut f = homelab(&["immich-stuck"])?;
    f.faults.push(Fault::new(
        "/apis/helm.toolkit.fluxcd.io/v2/helmreleases",
        FaultEffect::Status(503),
    ));
    // 429 for events, 404 for ExternalSecrets (the CRD went away after discovery).
    f.faults
        .push(Fault::new("/api/v1/events", FaultEffect::Status(429)));
    f.faults.push(Fault::new(
        "/apis/external-secrets.io/v1/externalsecrets",
        FaultEffect::Status(404),
    ));
    let r = run(
        f,
        &[
            ("get_flux_status", json!({})),
            ("get_events", json!({})),
            ("get_secrets_status", json!({})),
        ],
    )
    .await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    let part = &v["failedParts"][0];
    assert_eq!(part["part"], "HelmRelease");
    assert_eq!(part["code"], "api_server_error");
    assert!(
        part["hint"].as_str().is_some_and(|h| h.contains("503")),
        "{part}"
    );
    assert!(
        ["degraded", "critical"].contains(&v["verdict"].as_str().unwrap_or_default()),
        "the Kustomization failing on immich is still seen: {v}"
    );
    let (v, err) = &r[1];
    assert!(err, "{v}");
    assert_eq!(v["code"], "api_server_error");
    assert!(
        v["message"].as_str().is_some_and(|m| m.contains("429")),
        "{v}"
    );
    assert!(
        v["hint"].as_str().is_some_and(|h| h.contains("retry")),
        "{v}"
    );
    let (v, err) = &r[2];
    assert!(err, "{v}");
    assert_eq!(v["code"], "not_found", "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("externalsecrets")),
        "{v}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k3s_pod_realities() -> anyhow::Result<()> {
    let r = run(
        homelab(&[
            "evicted-pods",
            "immich-init-crashloop",
            "indexed-job-failed",
            "pod-phase-unknown",
        ])?,
        &[
            ("get_cluster_health", json!({})),
            (
                "get_job_logs",
                json!({"namespace": "media", "job": "reindex-2"}),
            ),
        ],
    )
    .await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    let all = issues(v);
    // Evicted and shut-down pods whose Deployment has a healthy pod again
    // are history, not live failures.
    assert!(
        !all.iter().any(|i| i["object"]
            .as_str()
            .is_some_and(|o| o.contains("bazarr") || o.contains("calibre-web"))),
        "{all:?}"
    );
    let history = v["pods"]["history"].as_array().cloned().unwrap_or_default();
    let reasons: Vec<&str> = history
        .iter()
        .filter_map(|h| h["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["Evicted", "NodeShutdown"], "{history:?}");
    assert!(
        history
            .iter()
            .all(|h| h["replacedBy"].as_str().is_some_and(|r| !r.is_empty()))
    );
    // An init container crash loop is a problem even though the pod is Pending.
    let init = all
        .iter()
        .find(|i| i["kind"] == "Init:CrashLoopBackOff")
        .cloned()
        .unwrap_or_default();
    assert!(
        init["object"]
            .as_str()
            .is_some_and(|o| o.starts_with("pod/immich/immich-server-")),
        "{all:?}"
    );
    assert_eq!(init["severity"], "critical");
    assert!(
        init["evidence"]
            .as_str()
            .is_some_and(|e| e.contains("wait-for-db")),
        "{init}"
    );
    // Phase Unknown is never healthy.
    let unknown = all
        .iter()
        .find(|i| i["kind"] == "Unknown")
        .cloned()
        .unwrap_or_default();
    assert!(
        unknown["object"]
            .as_str()
            .is_some_and(|o| o.contains("flaresolverr")),
        "{all:?}"
    );
    // The Indexed Job reindex-2 is its own Job (owner references), not a
    // CronJob "reindex" guessed from the name.
    let jobs: Vec<&str> = all
        .iter()
        .filter(|i| i["kind"] == "JobsFailing")
        .filter_map(|i| i["object"].as_str())
        .collect();
    assert_eq!(jobs, ["job/media/reindex-2"], "{all:?}");
    let job = all
        .iter()
        .find(|i| i["kind"] == "JobsFailing")
        .cloned()
        .unwrap_or_default();
    assert!(
        job["evidence"]
            .as_str()
            .is_some_and(|e| e.starts_with("2 failed pod(s) across 1 Job(s)")),
        "{job}"
    );
    let (v, err) = &r[1];
    assert!(!err, "{v}");
    let logs: Vec<&str> = v["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["log"].as_str())
        .collect();
    assert_eq!(logs.len(), 2, "{v}");
    assert!(
        logs.iter().any(|l| l.contains("shard 1: KeyError")),
        "{logs:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unreadable_job_log_does_not_hide_the_others() -> anyhow::Result<()> {
    let mut f = homelab(&["indexed-job-failed"])?;
    let second = f
        .pods
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .find(|n| n.starts_with("reindex-2-1-"))
        .map(str::to_string)
        .unwrap_or_default();
    f.faults.push(Fault::new(
        &format!("/pods/{second}/log"),
        FaultEffect::Status(500),
    ));
    let r = run(
        f,
        &[(
            "get_job_logs",
            json!({"namespace": "media", "job": "reindex-2"}),
        )],
    )
    .await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["unreadLogs"], 1);
    let pods = v["pods"].as_array().cloned().unwrap_or_default();
    assert!(
        pods.iter()
            .any(|p| p["log"].as_str().is_some_and(|l| l.contains("shard 0"))),
        "{pods:?}"
    );
    let bad = pods
        .iter()
        .find(|p| p["pod"] == second.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(bad["error"]["code"], "api_server_error", "{bad}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_chains_follow_owner_references_not_names() -> anyhow::Result<()> {
    let r = run(
        homelab(&["certificate-prefix"])?,
        &[("get_certificate_status", json!({"namespace": "jellyfin"}))],
    )
    .await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    let cert = v["certificates"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "jellyfin"))
        .cloned()
        .unwrap_or_default();
    let requests: Vec<&str> = cert["chain"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        requests,
        ["jellyfin-1"],
        "jellyfin-tls-1 belongs to jellyfin-tls: {cert}"
    );
    assert!(
        cert["chain"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("pi-cluster-ca-secret")),
        "{cert}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grep_cannot_probe_a_redacted_secret() -> anyhow::Result<()> {
    let mut f = homelab(&[])?;
    let pod = f
        .pods
        .iter()
        .filter(|p| p["metadata"]["namespace"] == "mcp-homelab")
        .filter_map(|p| p["metadata"]["name"].as_str())
        .find(|n| n.starts_with("mcp-homelab-"))
        .map(str::to_string)
        .unwrap_or_default();
    let log = [
        "starting mcp-homelab 0.1.26",
        "PIHOLE_PASSWORD=correct-horse-battery-staple",
        "cloning with ghp_0123456789abcdefghijABCDEFGHIJ012345",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
        "-----END OPENSSH PRIVATE KEY-----",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "ready",
    ]
    .join("\n");
    f.logs.insert(format!("mcp-homelab/{pod}/mcp-homelab"), log);
    let probe = |grep: &str| {
        (
            "get_pod_logs",
            json!({"namespace": "mcp-homelab", "pod": pod, "grep": grep}),
        )
    };
    let r = run(
        f,
        &[
            probe("PIHOLE_PASSWORD=c"),
            probe("PIHOLE_PASSWORD=x"),
            probe("horse"),
            probe("PIHOLE_PASSWORD="),
            probe("ghp_0"),
            probe("b3BlbnNz"),
            (
                "get_pod_logs",
                json!({"namespace": "mcp-homelab", "pod": pod}),
            ),
        ],
    )
    .await?;
    // No grep can tell whether the secret starts with a given character.
    for (i, (v, err)) in r.iter().enumerate().take(3) {
        assert!(!err, "{v}");
        assert_eq!(v["matchedLines"], 0, "probe {i} matched: {v}");
    }
    assert_eq!(r[3].0["matchedLines"], 1);
    assert_eq!(r[3].0["log"], "PIHOLE_PASSWORD=[REDACTED]\n");
    assert_eq!(r[4].0["matchedLines"], 0, "{}", r[4].0);
    assert_eq!(r[5].0["matchedLines"], 0, "{}", r[5].0);
    let (v, _) = &r[6];
    let text = v["log"].as_str().unwrap_or_default();
    for secret in ["correct-horse", "ghp_0123", "b3BlbnNz", "eyJzdWIi"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    assert_eq!(v["redactions"], 4, "{text}");
    assert!(
        text.contains("starting mcp-homelab") && text.contains("ready"),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_lists_are_read_in_pages() -> anyhow::Result<()> {
    // 12 copies of every pod: more than two pages of 500.
    let mut f = homelab(&[])?;
    let base = f.pods.clone();
    for copy in 1..12 {
        for p in &base {
            let mut p = p.clone();
            p["metadata"]["name"] = json!(format!(
                "{}-{copy}",
                p["metadata"]["name"].as_str().unwrap_or_default()
            ));
            f.pods.push(p);
        }
    }
    let total = f.pods.len();
    assert!(total > 1000, "{total}");
    let (r, fake) = call_with_fixture(f, |_| {}, &[("get_cluster_health", json!({}))]).await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["pods"]["total"], total, "every page was read");
    assert_eq!(v["pods"]["problems"], 0);
    assert!(fake.requests.load(std::sync::atomic::Ordering::Relaxed) > 0);
    Ok(())
}

/// A namespace that does not exist is an error naming it, never a healthy
/// answer about zero objects; a malformed selector is refused before any
/// request. Every tool that takes a namespace filter is asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_namespace_and_bad_selector_are_errors() -> anyhow::Result<()> {
    let filtered: Vec<&'static str> = labscope::tools::registry()
        .into_iter()
        .filter(|t| t.toolset != labscope::tools::Toolset::Node)
        .filter(|t| {
            let schema = Value::Object((**t.input_schema()).clone());
            let required = schema["required"]
                .as_array()
                .is_some_and(|r| r.iter().any(|n| n != "namespace"));
            schema["properties"].get("namespace").is_some() && !required
        })
        .map(|t| t.name)
        .collect();
    for expected in ["get_flux_status", "get_secrets_status", "get_backup_status"] {
        assert!(filtered.contains(&expected), "{filtered:?}");
    }
    let mut calls: Vec<(&str, Value)> = filtered
        .iter()
        .map(|t| (*t, json!({"namespace": "nope"})))
        .collect();
    calls.push(("get_backup_status", json!({"selector": "=!bad"})));
    let r = run(homelab(&[])?, &calls).await?;
    for ((tool, args), (v, err)) in calls.iter().zip(&r) {
        if args.get("selector").is_some() {
            assert!(
                *err && v["code"] == "invalid_argument",
                "{tool} {args}: {v}"
            );
            assert!(
                v["message"].as_str().unwrap_or("").contains("selector"),
                "{v}"
            );
            continue;
        }
        // Every tool, health included, says not_found; the namespace is
        // optional here, so the hint may say to leave it out.
        assert!(*err && v["code"] == "not_found", "{tool} {args}: {v}");
        assert!(
            v["message"].as_str().unwrap_or("").contains("nope"),
            "{tool}: {v}"
        );
        assert!(
            v["hint"].as_str().unwrap_or("").contains("omit namespace"),
            "{tool}: {v}"
        );
    }
    // Where namespace is required, the hint does not suggest leaving it out.
    let required = [
        ("get_pod_logs", json!({"namespace": "nope", "pod": "x"})),
        ("get_job_logs", json!({"namespace": "nope", "job": "x"})),
        (
            "get_cronjob_details",
            json!({"namespace": "nope", "cronjob": "x"}),
        ),
    ];
    let r = run(homelab(&[])?, &required).await?;
    for ((tool, _), (v, err)) in required.iter().zip(&r) {
        assert!(*err && v["code"] == "not_found", "{tool}: {v}");
        let hint = v["hint"].as_str().unwrap_or("");
        assert!(!hint.contains("omit namespace"), "{tool}: {hint}");
    }
    Ok(())
}
