//! get_pod_logs and get_events against the fake API: the crash-looping
//! Jellyfin of scenario 3.g with its previous logs and Warning events.

use labscope_tests::fake_kube::{
    Fixture, event, homelab_nodes, jellyfin_crashloop_pod, pihole_pods,
};
use labscope_tests::mcp::call_with_fixture;
use serde_json::{Value, json};

fn fixture() -> Fixture {
    let mut pods = pihole_pods();
    pods.push(jellyfin_crashloop_pod());
    let pod = "jellyfin-7c9d6f5b8-x4k2p";
    let mut logs = std::collections::BTreeMap::new();
    logs.insert(
        format!("jellyfin/{pod}/jellyfin/previous"),
        (0..300)
            .map(|i| format!("[06:0{}:{:02}] [INF] request {i} served", i % 4, i % 60))
            .chain([
                "[06:03:58] [INF] Connecting with password=hunter2 to the database".to_string(),
                "[06:03:59] [ERR] Health check request was cancelled: System.Threading.Tasks.TaskCanceledException".to_string(),
            ])
            .collect::<Vec<_>>()
            .join("\n"),
    );
    logs.insert(
        format!("jellyfin/{pod}/jellyfin"),
        "[06:06:58] [INF] Jellyfin starting".to_string(),
    );
    let probe = "Liveness probe failed: Get \"http://10.42.0.57:8096/health\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
    let events = vec![
        event(
            "jellyfin",
            "Pod",
            pod,
            "Warning",
            "Unhealthy",
            probe,
            20,
            900,
        ),
        event(
            "jellyfin",
            "Pod",
            pod,
            "Warning",
            "Unhealthy",
            probe,
            22,
            200,
        ),
        event(
            "jellyfin",
            "Pod",
            pod,
            "Warning",
            "Killing",
            "Container jellyfin failed liveness probe, will be restarted",
            14,
            180,
        ),
        event(
            "jellyfin",
            "Pod",
            pod,
            "Warning",
            "BackOff",
            &format!("Back-off restarting failed container jellyfin in pod {pod}"),
            37,
            60,
        ),
        event(
            "jellyfin",
            "Pod",
            pod,
            "Normal",
            "Pulled",
            "Container image already present on machine",
            15,
            170,
        ),
        event(
            "jellyfin",
            "Pod",
            pod,
            "Warning",
            "FailedMount",
            "an old warning from yesterday",
            1,
            86_400,
        ),
        event(
            "pihole",
            "Pod",
            "pihole-5d8f7c9b6d-a1b2c",
            "Warning",
            "Unhealthy",
            "Readiness probe failed",
            1,
            120,
        ),
    ];
    // The namespaces exist, as on a real cluster (tools check that a
    // namespace asked for exists before reading it as empty).
    let objects = ["jellyfin", "pihole"]
        .map(|ns| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "status": {"phase": "Active"}}))
        .to_vec();
    Fixture {
        nodes: homelab_nodes(),
        pods,
        logs,
        events,
        objects,
        ..Default::default()
    }
}

async fn calls(calls: &[(&str, Value)]) -> anyhow::Result<Vec<(Value, bool)>> {
    Ok(call_with_fixture(fixture(), |o| o.concurrency = 4, calls)
        .await?
        .0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_logs_prefix_previous_grep_cap_and_redaction() -> anyhow::Result<()> {
    let r = calls(&[
        ("get_pod_logs", json!({"namespace": "jellyfin", "pod": "jellyfin", "previous": true, "lines": 5000})),
        ("get_pod_logs", json!({"namespace": "jellyfin", "pod": "jellyfin", "previous": true, "grep": "cancel|ERR", "lines": 5000})),
        ("get_pod_logs", json!({"namespace": "jellyfin", "pod": "jellyfin", "previous": true, "lines": 5000, "maxBytes": 1024})),
        ("get_pod_logs", json!({"namespace": "jellyfin", "pod": "jellyfin"})),
        ("get_pod_logs", json!({"namespace": "pihole", "pod": "pihole"})),
        ("get_pod_logs", json!({"namespace": "jellyfin", "pod": "jellyfin", "grep": "("})),
        ("get_pod_logs", json!({"namespace": "jellyfin", "pod": "jellyfin", "container": "sidecar"})),
    ])
    .await?;
    let (full, err) = &r[0];
    assert!(!err, "{full}");
    assert_eq!(
        full["pod"], "jellyfin-7c9d6f5b8-x4k2p",
        "unique prefix resolved"
    );
    assert_eq!(full["container"], "jellyfin");
    assert_eq!(full["lines"], 302);
    let log = full["log"].as_str().unwrap_or("");
    assert!(log.contains("TaskCanceledException"));
    assert!(
        !log.contains("hunter2") && log.contains("password=[REDACTED]"),
        "secrets are redacted"
    );
    assert_eq!(full["redactions"], 1);
    let (grep, _) = &r[1];
    assert_eq!(grep["matchedLines"], 1, "{grep}");
    assert!(grep["log"].as_str().unwrap_or("").contains("cancelled"));
    let (capped, _) = &r[2];
    assert_eq!(capped["truncated"], true);
    assert!(capped["log"].as_str().unwrap_or("").len() <= 1024);
    assert!(
        capped["log"]
            .as_str()
            .unwrap_or("")
            .ends_with("TaskCanceledException\n"),
        "the newest bytes are kept"
    );
    assert_eq!(r[3].0["log"], "[06:06:58] [INF] Jellyfin starting\n");
    let (ambiguous, err) = &r[4];
    assert!(err);
    assert_eq!(ambiguous["code"], "invalid_argument");
    assert!(
        ambiguous["hint"]
            .as_str()
            .unwrap_or("")
            .contains("pihole-secondary"),
        "{ambiguous}"
    );
    assert_eq!(r[5].0["code"], "invalid_argument");
    assert!(
        r[6].0["message"]
            .as_str()
            .unwrap_or("")
            .contains("has no container")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_newest_first_deduplicated_with_counts() -> anyhow::Result<()> {
    let r = calls(&[
        ("get_events", json!({"namespace": "jellyfin"})),
        (
            "get_events",
            json!({"namespace": "jellyfin", "type": "all"}),
        ),
        (
            "get_events",
            json!({"object": "pod/pihole-5d8f7c9b6d-a1b2c"}),
        ),
        ("get_events", json!({"type": "Error"})),
    ])
    .await?;
    let (w, err) = &r[0];
    assert!(!err, "{w}");
    let reasons: Vec<(&str, i64)> = w["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or(""),
                e["count"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [("BackOff", 37), ("Killing", 14), ("Unhealthy", 42)],
        "newest first, Unhealthy merged (20 + 22), yesterday's excluded"
    );
    assert_eq!(w["total"], 3);
    let all = r[1].0["events"].as_array().unwrap().len();
    assert_eq!(all, 4, "type=all adds the Normal event");
    assert_eq!(r[2].0["events"][0]["reason"], "Unhealthy");
    assert_eq!(r[2].0["total"], 1);
    assert!(r[3].1, "type Error is not a type");
    Ok(())
}
