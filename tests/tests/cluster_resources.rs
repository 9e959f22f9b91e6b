//! Resource tools against the full homelab fixture through a real rmcp
//! client: get_ingress_status (backends from EndpointSlices, certificates;
//! 3.g and 3.h), get_pvcs, describe_resource (summary, pods, events,
//! redaction), RBAC 403s across the cluster tools, and CRD groups that are
//! not installed.

use labscope_tests::homelab::homelab;
use labscope_tests::mcp::call_with_fixture;
use serde_json::{Value, json};

async fn run(scenarios: &[&str], calls: &[(&str, Value)]) -> anyhow::Result<Vec<(Value, bool)>> {
    let (r, _fake) = call_with_fixture(homelab(scenarios)?, |_| {}, calls).await?;
    Ok(r)
}

fn ingress<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["ingresses"]
        .as_array()
        .and_then(|i| i.iter().find(|r| r["name"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_status_baseline_and_incidents() -> anyhow::Result<()> {
    let r = run(&[], &[("get_ingress_status", json!({}))]).await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["verdict"], "healthy", "{}", v["summary"]);
    assert_eq!(v["summary"]["ingresses"], 30);
    let jf = ingress(v, "jellyfin");
    assert_eq!(jf["hosts"], json!(["jellyfin.lab.mtgibbs.dev"]));
    assert_eq!(jf["addresses"], json!(["192.168.1.55"]));
    assert_eq!(jf["backends"][0]["readyEndpoints"], 1);
    assert_eq!(jf["tls"][0]["certificate"]["ready"], true);
    assert!(
        jf["tls"][0]["certificate"]["daysLeft"]
            .as_i64()
            .is_some_and(|d| (60..=80).contains(&d))
    );
    // Zero replicas on purpose is not "down".
    let qbit = ingress(v, "qbittorrent");
    assert_eq!(qbit["ok"], true);
    assert_eq!(qbit["backends"][0]["state"], "scaled to zero");
    // Manual endpoints of external services count.
    assert_eq!(ingress(v, "qnap")["backends"][0]["state"], "ok");
    // Two hosts, two backends.
    assert_eq!(
        ingress(v, "matrix")["backends"].as_array().map(Vec::len),
        Some(2)
    );

    let r = run(
        &["jellyfin-crashloop", "certificates"],
        &[
            ("get_ingress_status", json!({})),
            ("get_ingress_status", json!({"namespace": "romm"})),
        ],
    )
    .await?;
    let (v, _) = &r[0];
    assert_eq!(v["verdict"], "degraded");
    let jf = ingress(v, "jellyfin");
    assert_eq!(jf["ok"], false);
    assert_eq!(jf["backends"][0]["state"], "no ready endpoints");
    assert_eq!(jf["backends"][0]["notReadyEndpoints"], 1);
    // 3.h: romm.lab.mtgibbs.dev is served without a valid certificate.
    let romm = ingress(v, "romm");
    assert_eq!(romm["tls"][0]["validCertificate"], false);
    assert!(
        romm["tls"][0]["certificate"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("DoesNotExist")),
        "{romm}"
    );
    assert_eq!(r[1].0["ingresses"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pvcs_with_location_and_users() -> anyhow::Result<()> {
    let r = run(
        &[],
        &[
            ("get_pvcs", json!({})),
            ("get_pvcs", json!({"namespace": "jellyfin"})),
        ],
    )
    .await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["verdict"], "healthy");
    assert!(v["summary"]["pvcs"].as_u64().unwrap_or(0) >= 20);
    let (v, _) = &r[1];
    let rows = v["pvcs"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2);
    let config = rows
        .iter()
        .find(|p| p["name"] == "jellyfin-config")
        .cloned()
        .unwrap_or_default();
    assert_eq!(config["location"], "node pi-k3s");
    assert_eq!(config["capacity"], "5Gi");
    assert!(
        config["mountedBy"][0]
            .as_str()
            .is_some_and(|p| p.starts_with("jellyfin-")),
        "{config}"
    );
    let video = rows
        .iter()
        .find(|p| p["name"] == "jellyfin-video")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        video["location"],
        "nfs storage.lab.mtgibbs.dev:/cluster/media/video"
    );
    assert_eq!(video["accessModes"], json!(["ReadOnlyMany"]));
    assert_eq!(video["mountOptions"], json!(["soft"]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_resource_summaries_events_and_redaction() -> anyhow::Result<()> {
    let r = run(
        &["jellyfin-crashloop"],
        &[
            (
                "describe_resource",
                json!({"kind": "deployment", "namespace": "jellyfin", "name": "jellyfin"}),
            ),
            (
                "describe_resource",
                json!({"kind": "configmap", "namespace": "homepage", "name": "homepage-config"}),
            ),
            (
                "describe_resource",
                json!({"kind": "node", "name": "pi3-worker-2"}),
            ),
            (
                "describe_resource",
                json!({"kind": "service", "namespace": "pihole", "name": "pihole-web"}),
            ),
            (
                "describe_resource",
                json!({"kind": "deployment", "namespace": "mcp-homelab", "name": "mcp-homelab"}),
            ),
            (
                "describe_resource",
                json!({"kind": "secret", "namespace": "pihole", "name": "pihole-secret"}),
            ),
            (
                "describe_resource",
                json!({"kind": "deployment", "namespace": "jellyfin", "name": "nope"}),
            ),
            ("describe_resource", json!({"kind": "pod", "name": "x"})),
            (
                "describe_resource",
                json!({"kind": "pvc", "namespace": "backup-jobs", "name": "restore-canary"}),
            ),
            (
                "describe_resource",
                json!({"kind": "cronjob", "namespace": "renovate", "name": "renovate"}),
            ),
        ],
    )
    .await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["summary"]["replicas"]["desired"], 1);
    assert_eq!(v["summary"]["replicas"]["available"], 0);
    let pod = &v["summary"]["pods"][0];
    assert_eq!(pod["waiting"], json!(["CrashLoopBackOff"]));
    assert_eq!(pod["restarts"], 14);
    let available = v["summary"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Available"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(available["reason"], "MinimumReplicasUnavailable");
    // The pod's events, through describe on the pod.
    let pod_name = pod["name"].as_str().unwrap_or_default().to_string();
    let r2 = run(
        &["jellyfin-crashloop"],
        &[(
            "describe_resource",
            json!({"kind": "pod", "namespace": "jellyfin", "name": pod_name}),
        )],
    )
    .await?;
    let events = r2[0].0["events"].as_array().cloned().unwrap_or_default();
    let reasons: Vec<&str> = events.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(
        reasons.contains(&"Unhealthy") && reasons.contains(&"BackOff"),
        "{reasons:?}"
    );
    assert_eq!(r2[0].0["summary"]["containerStatuses"][0]["restarts"], 14);

    let (v, err) = &r[1];
    assert!(!err, "{v}");
    let services = v["summary"]["data"]["services.yaml"]["value"]
        .as_str()
        .unwrap_or_default();
    assert!(
        !services.contains("fixture-pihole-app-password"),
        "{services}"
    );
    assert!(services.contains("[REDACTED]") && services.contains("pihole.lab.mtgibbs.dev"));

    let (v, err) = &r[2];
    assert!(!err, "{v}");
    assert_eq!(v["summary"]["taints"][0]["key"], "role");
    let pods = v["summary"]["pods"].as_array().cloned().unwrap_or_default();
    assert!(!pods.is_empty());
    assert!(
        pods.iter().all(|p| p["node"] == "pi3-worker-2"),
        "pods by field selector spec.nodeName"
    );
    assert!(
        !pods.iter().any(|p| p["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("mcp-debug-agent"))),
        "the predecessor's debug DaemonSet excludes the Pi 3"
    );

    let (v, _) = &r[3];
    assert_eq!(v["summary"]["clusterIP"], "10.43.45.120");
    assert_eq!(v["summary"]["readyEndpoints"], 1);
    assert_eq!(v["summary"]["endpoints"][0]["address"], "192.168.1.55");

    // Env values that look secret are redacted; Secret references are named.
    let (v, _) = &r[4];
    let env = serde_json::to_string(&v["summary"]["containers"][0])?;
    assert!(!env.contains("correct-horse-battery-staple"), "{env}");
    assert!(env.contains("Secret mcp-homelab-secrets"), "{env}");

    // Secrets are not a kind labscope reads.
    assert!(r[5].1 && r[5].0["code"] == "invalid_argument", "{}", r[5].0);
    let (v, err) = &r[6];
    assert!(*err && v["code"] == "not_found", "{v}");
    assert!(
        v["hint"].as_str().is_some_and(|h| h.contains("jellyfin")),
        "{v}"
    );
    assert!(
        r[7].1
            && r[7].0["message"]
                .as_str()
                .is_some_and(|m| m.contains("namespace")),
        "{}",
        r[7].0
    );
    assert_eq!(r[8].0["summary"]["location"], "node pi-k3s");
    assert_eq!(r[9].0["summary"]["timeZone"], "America/Chicago");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_refusals_are_errors_that_name_the_resource() -> anyhow::Result<()> {
    let mut f = homelab(&[])?;
    for r in [
        "cronjobs",
        "helmreleases",
        "ingresses",
        "persistentvolumeclaims",
        "imagerepositories",
    ] {
        f.forbidden.insert(r.to_string());
    }
    let (r, _fake) = call_with_fixture(
        f,
        |_| {},
        &[
            ("get_backup_status", json!({})),
            ("get_flux_status", json!({})),
            ("get_ingress_status", json!({})),
            ("get_pvcs", json!({})),
            ("get_image_automation_status", json!({})),
            (
                "get_cronjob_details",
                json!({"namespace": "backup-jobs", "cronjob": "pvc-backup"}),
            ),
            ("get_cluster_health", json!({})),
        ],
    )
    .await?;
    for (i, resource) in [
        "cronjobs",
        "helmreleases",
        "ingresses",
        "persistentvolumeclaims",
        "imagerepositories",
        "cronjobs",
    ]
    .iter()
    .enumerate()
    {
        let (v, err) = &r[i];
        if [1, 4].contains(&i) {
            // Flux and image automation read each kind on its own: the one
            // refused is a failed part, the rest still answers — never as
            // healthy.
            assert!(!*err, "call {i} answers with the kinds it could read: {v}");
            assert_eq!(v["verdict"], "incomplete", "{v}");
            let part = v["failedParts"]
                .as_array()
                .and_then(|p| p.first())
                .cloned()
                .unwrap_or_default();
            assert_eq!(part["code"], "permission_denied", "{v}");
            assert!(
                part["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(resource)),
                "{part}"
            );
            assert!(
                part["hint"]
                    .as_str()
                    .is_some_and(|h| h.contains(resource) && h.contains("ClusterRole")),
                "{part}"
            );
            assert!(
                v["summary"]["total"].as_u64().unwrap_or(0) > 0 || i == 4,
                "{v}"
            );
            continue;
        }
        assert!(*err, "call {i} must fail, not answer empty: {v}");
        assert_eq!(v["code"], "permission_denied", "{v}");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains(resource)),
            "{v}"
        );
        assert!(
            v["hint"]
                .as_str()
                .is_some_and(|h| h.contains(resource) && h.contains("ClusterRole")),
            "{v}"
        );
    }
    // Health is not healthy when a check could not run.
    let (v, _) = &r[6];
    assert_ne!(v["verdict"], "healthy", "{v}");
    assert_eq!(v["checks"]["flux"]["verdict"], "incomplete");
    assert!(
        v["issues"].as_array().is_some_and(|i| i
            .iter()
            .any(|x| x["kind"] == "CheckFailed" && x["object"] == "flux HelmRelease")),
        "{}",
        v["issues"]
    );

    // Only events refused: everything else is healthy, the verdict is not.
    let mut f = homelab(&[])?;
    f.forbidden.insert("events".to_string());
    let (r, _fake) = call_with_fixture(f, |_| {}, &[("get_cluster_health", json!({}))]).await?;
    let (v, _) = &r[0];
    assert_ne!(v["verdict"], "healthy", "{v}");
    assert!(
        v["issues"]
            .as_array()
            .is_some_and(|i| i.iter().any(|x| x["kind"] == "CheckFailed"
                && x["object"] == "events"
                && x["evidence"].as_str().is_some_and(|e| e.contains("events")))),
        "{}",
        v["issues"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_crd_groups_are_not_installed_not_errors() -> anyhow::Result<()> {
    let mut f = homelab(&[])?;
    f.groups
        .retain(|(g, _)| !g.contains("cert-manager.io") && g != "tailscale.com");
    let (r, _fake) = call_with_fixture(
        f,
        |_| {},
        &[
            ("get_certificate_status", json!({})),
            ("get_tailscale_status", json!({})),
            ("get_ingress_status", json!({})),
        ],
    )
    .await?;
    assert!(
        !r[0].1 && r[0].0["verdict"] == "not installed",
        "{}",
        r[0].0
    );
    assert!(
        !r[1].1 && r[1].0["verdict"] == "not installed",
        "{}",
        r[1].0
    );
    // Ingresses still answer; their certificates are simply unknown.
    let (v, err) = &r[2];
    assert!(!err, "{v}");
    assert_eq!(v["summary"]["ingresses"], 30);
    assert!(ingress(v, "jellyfin")["tls"][0]["certificate"].is_null());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaled_to_zero_namespace_and_pi3_pressure_are_not_healthy() -> anyhow::Result<()> {
    // 3.j: Jellyfin scaled to 0 (drift from Git's 1): an empty namespace is never healthy.
    let r = run(
        &["jellyfin-scaled-to-zero"],
        &[
            ("get_cluster_health", json!({"namespace": "jellyfin"})),
            (
                "describe_resource",
                json!({"kind": "deployment", "namespace": "jellyfin", "name": "jellyfin"}),
            ),
            ("get_ingress_status", json!({"namespace": "jellyfin"})),
        ],
    )
    .await?;
    assert_eq!(r[0].0["verdict"], "critical", "{}", r[0].0);
    assert_eq!(r[0].0["issues"][0]["kind"], "NoPods");
    let evidence = r[0].0["issues"][0]["evidence"].as_str().unwrap_or_default();
    assert!(
        evidence.contains("Deployment jellyfin/jellyfin is scaled to 0 replicas")
            && evidence.contains("Flux Kustomization jellyfin"),
        "{evidence}"
    );
    assert_eq!(r[1].0["summary"]["replicas"]["desired"], 0);
    assert_eq!(r[1].0["summary"]["pods"], json!([]));
    // Zero replicas here is drift, and the ingress says why it has no endpoints.
    assert_eq!(
        r[2].0["ingresses"][0]["backends"][0]["state"], "scaled to zero",
        "{}",
        r[2].0
    );
    // 3.j, namespace deleted: its pod list is 200 and empty, which a naive
    // tool reads as "0 of 0 pods unhealthy".
    let r = run(
        &["jellyfin-namespace-gone"],
        &[
            ("get_cluster_health", json!({"namespace": "jellyfin"})),
            ("get_flux_status", json!({})),
        ],
    )
    .await?;
    // Never healthy: not_found, as every tool says, pointing at Flux.
    let (v, err) = &r[0];
    assert!(*err && v["code"] == "not_found", "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("jellyfin"))
            && v["hint"]
                .as_str()
                .is_some_and(|h| h.contains("get_flux_status")),
        "{v}"
    );
    assert_ne!(r[1].0["verdict"], "healthy", "{}", r[1].0);
    assert!(
        r[1].0
            .to_string()
            .contains("namespaces \\\"jellyfin\\\" not found"),
        "{}",
        r[1].0
    );
    // 3.l: the 1 GiB Pi 3 under memory pressure, then Unknown: ranked first.
    let r = run(
        &["pi3-memory-pressure"],
        &[("get_cluster_health", json!({}))],
    )
    .await?;
    let (v, _) = &r[0];
    assert_eq!(v["verdict"], "critical");
    assert_eq!(v["issues"][0]["kind"], "NodeNotReady", "{}", v["issues"]);
    assert_eq!(v["issues"][0]["object"], "node/pi3-worker-2");
    assert!(
        v["issues"]
            .as_array()
            .is_some_and(|i| i.iter().any(|x| x["kind"] == "NodePressure"
                && x["evidence"]
                    .as_str()
                    .is_some_and(|e| e.contains("MemoryPressure")))),
        "{}",
        v["issues"]
    );
    Ok(())
}

/// StatefulSets and DaemonSets name their counts and strategy differently
/// from Deployments; describe reads each kind's own fields, and a DaemonSet
/// that skips the Pi 3 wants three pods, not four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_statefulset_and_daemonsets() -> anyhow::Result<()> {
    let r = run(
        &[],
        &[
            (
                "describe_resource",
                json!({"kind": "statefulset", "namespace": "log-aggregation", "name": "loki"}),
            ),
            (
                "describe_resource",
                json!({"kind": "daemonset", "namespace": "monitoring", "name": "kube-prometheus-prometheus-node-exporter"}),
            ),
            (
                "describe_resource",
                json!({"kind": "daemonset", "namespace": "mcp-homelab", "name": "mcp-debug-agent"}),
            ),
        ],
    )
    .await?;
    let (loki, err) = &r[0];
    assert!(!err, "{loki}");
    assert_eq!(loki["kind"], "StatefulSet");
    assert_eq!(loki["summary"]["replicas"]["desired"], 1);
    assert_eq!(loki["summary"]["selector"], "app.kubernetes.io/name=loki");
    assert_eq!(loki["summary"]["pods"][0]["name"], "loki-0");
    assert_eq!(loki["summary"]["pods"][0]["node"], "pi5-worker-2");
    for ((v, err), (want, pods_on_pi3)) in r[1..].iter().zip([(4, true), (3, false)]) {
        assert!(!err, "{v}");
        assert_eq!(v["kind"], "DaemonSet");
        assert_eq!(v["summary"]["replicas"]["desired"], want, "{v}");
        assert_eq!(v["summary"]["replicas"]["ready"], want, "{v}");
        let pods = v["summary"]["pods"].as_array().cloned().unwrap_or_default();
        assert_eq!(pods.len(), want as usize, "{v}");
        assert_eq!(
            pods.iter().any(|p| p["node"] == "pi3-worker-2"),
            pods_on_pi3,
            "{v}"
        );
    }
    Ok(())
}
