//! Batch tools against the full homelab fixture through a real rmcp client:
//! HOMELAB.md scenario 3.i (pvc-backup and restore-test overdue; the
//! predecessor's name filter missed restore-test), the healthy baseline with
//! next runs, CronJob details with secrets redacted and Job history (time zone
//! from spec.timeZone), and the logs of every pod of a failed Job.

use labscope_tests::homelab::homelab;
use labscope_tests::mcp::call_with_fixture;
use serde_json::{Value, json};

async fn run(scenarios: &[&str], calls: &[(&str, Value)]) -> anyhow::Result<Vec<(Value, bool)>> {
    let (r, _fake) = call_with_fixture(homelab(scenarios)?, |_| {}, calls).await?;
    Ok(r)
}

fn backup<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["backups"]
        .as_array()
        .and_then(|b| b.iter().find(|r| r["name"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_backups_are_on_time_with_next_runs() -> anyhow::Result<()> {
    let r = run(&[], &[("get_backup_status", json!({}))]).await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["verdict"], "healthy", "{v}");
    let names: Vec<&str> = v["backups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(names.len(), 9, "all nine backup-jobs CronJobs: {names:?}");
    assert!(names.contains(&"restore-test"), "{names:?}");
    let pvc = backup(v, "pvc-backup");
    assert_eq!(pvc["verdict"], "ok");
    assert_eq!(pvc["nextRun"], "2026-08-23T02:00:00Z");
    assert_eq!(pvc["interval"], "7d 0h");
    assert_eq!(pvc["timeZone"], "UTC");
    assert_eq!(pvc["timeZoneAssumed"], true);
    assert_eq!(pvc["lastScheduleTime"], "2026-08-16T02:00:00Z");
    assert_eq!(pvc["missedSchedule"], false);
    assert_eq!(pvc["lastJobs"].as_array().map(Vec::len), Some(3));
    assert_eq!(pvc["lastJobs"][0]["name"], "pvc-backup-29780760");
    assert_eq!(pvc["lastJobs"][0]["result"], "succeeded");
    assert_eq!(backup(v, "restore-test")["nextRun"], "2026-08-23T04:00:00Z");
    assert_eq!(backup(v, "restore-test")["selectedBy"], "backup namespace");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_backups_include_restore_test_with_reasons() -> anyhow::Result<()> {
    let r = run(&["backup-overdue"], &[("get_backup_status", json!({}))]).await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["verdict"], "critical");
    assert_eq!(v["summary"]["overdue"], 2, "{}", v["summary"]);
    // Overdue ones are listed first.
    let first: Vec<&str> = v["backups"]
        .as_array()
        .into_iter()
        .flatten()
        .take(2)
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(first, ["pvc-backup", "restore-test"]);
    let pvc = backup(v, "pvc-backup");
    assert_eq!(pvc["verdict"], "overdue");
    assert_eq!(pvc["lastSuccessfulTime"], "2026-07-26T02:08:41Z");
    assert!(
        pvc["lastSuccessAge"]
            .as_str()
            .is_some_and(|a| a.starts_with("25d"))
    );
    assert!(
        pvc["overdueBecause"].as_str().is_some_and(
            |w| w.contains("3 scheduled runs since (the first due 2026-08-02T02:00:00Z)")
        ),
        "{pvc}"
    );
    let results: Vec<&str> = pvc["lastJobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j["result"].as_str())
        .collect();
    assert_eq!(results, ["failed", "failed", "failed"]);
    assert_eq!(pvc["lastJobs"][0]["reason"], "BackoffLimitExceeded");
    assert_eq!(pvc["lastJobs"][0]["failedPods"], 3);
    assert!(
        pvc["failureLog"]
            .as_str()
            .is_some_and(|l| l.contains("Connection timed out") && l.contains("code 255")),
        "{pvc}"
    );
    assert_eq!(pvc["nextRun"], "2026-08-23T02:00:00Z");
    let rt = backup(v, "restore-test");
    assert_eq!(rt["verdict"], "overdue");
    assert_eq!(rt["lastSuccessfulTime"], "2026-07-26T04:03:55Z");
    assert_eq!(rt["lastJobs"][0]["failedPods"], 2);
    assert!(
        rt["failureLog"]
            .as_str()
            .is_some_and(|l| l.contains("/share/cluster/backups/2026-08-16/ is missing")),
        "{rt}"
    );
    assert_eq!(rt["nextRun"], "2026-08-23T04:00:00Z");
    // The other seven are on time.
    assert_eq!(
        v["backups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["verdict"] == "ok")
            .count(),
        7
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_details_time_zone_history_and_redaction() -> anyhow::Result<()> {
    let r = run(
        &[],
        &[
            (
                "get_cronjob_details",
                json!({"namespace": "pihole", "cronjob": "pihole-brainrot-block"}),
            ),
            (
                "get_cronjob_details",
                json!({"namespace": "backup-jobs", "cronjob": "pvc-backup"}),
            ),
            (
                "get_cronjob_details",
                json!({"namespace": "backup-jobs", "cronjob": "nope"}),
            ),
            (
                "get_cronjob_details",
                json!({"namespace": "backup-jobs", "cronjob": "../etc"}),
            ),
            ("get_backup_status", json!({"namespace": "pihole"})),
            (
                "get_backup_status",
                json!({"selector": "homelab.mcp/triggerable=true"}),
            ),
        ],
    )
    .await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    // 19:00 in New York (EDT) is 23:00 UTC.
    assert_eq!(v["schedule"]["timeZone"], "America/New_York");
    assert_eq!(v["schedule"]["timeZoneAssumed"], false);
    assert_eq!(
        v["schedule"]["nextRuns"],
        json!([
            "2026-08-20T23:00:00Z",
            "2026-08-21T23:00:00Z",
            "2026-08-22T23:00:00Z"
        ])
    );
    assert_eq!(v["policies"]["concurrencyPolicy"], "Forbid");
    assert_eq!(v["jobs"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["jobs"][0]["name"], "pihole-brainrot-block-29786340");
    assert_eq!(v["verdict"], "ok");

    let (v, err) = &r[1];
    assert!(!err, "{v}");
    let env = v["containers"][0]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let text = serde_json::to_string(&env)?;
    assert!(
        !text.contains("not-a-real-password"),
        "literal secret redacted: {text}"
    );
    assert!(
        text.contains("from Secret romm-db-password key password"),
        "{text}"
    );
    assert!(
        text.contains("storage.lab.mtgibbs.dev"),
        "non-secret values kept: {text}"
    );
    assert_eq!(v["volumes"][0]["type"], "secret");
    assert_eq!(v["volumes"][0]["source"], "backup-ssh-key");
    assert_eq!(v["nodeSelector"]["kubernetes.io/hostname"], "pi-k3s");

    let (v, err) = &r[2];
    assert!(*err && v["code"] == "not_found", "{v}");
    assert!(
        v["hint"]
            .as_str()
            .is_some_and(|h| h.contains("restore-test")),
        "{v}"
    );
    let (v, err) = &r[3];
    assert!(*err && v["code"] == "invalid_argument", "{v}");

    // namespace: every CronJob there; selector: what it matches.
    let names = |v: &Value| -> Vec<String> {
        v["backups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["name"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(
        names(&r[4].0),
        ["pihole-brainrot-allow", "pihole-brainrot-block"]
    );
    assert_eq!(names(&r[5].0), ["renovate"]);
    // Saturday 06:00 in Chicago.
    assert_eq!(r[5].0["backups"][0]["nextRun"], "2026-08-22T11:00:00Z");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_logs_cover_every_retry_pod() -> anyhow::Result<()> {
    let r = run(
        &["backup-overdue"],
        &[
            ("get_job_logs", json!({"namespace": "backup-jobs", "job": "pvc-backup-29780760"})),
            ("get_job_logs", json!({"namespace": "backup-jobs", "job": "pvc-backup-29780760", "grep": "rsync error"})),
            ("get_job_logs", json!({"namespace": "backup-jobs", "job": "pvc-backup-29780760", "maxBytes": 1024, "lines": 2000})),
            ("get_job_logs", json!({"namespace": "backup-jobs", "job": "missing-1"})),
        ],
    )
    .await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["result"], "failed");
    let pods = v["pods"].as_array().cloned().unwrap_or_default();
    assert_eq!(pods.len(), 3, "backoffLimit 2: three attempts");
    for p in &pods {
        assert_eq!(p["phase"], "Failed");
        assert_eq!(p["exitCode"], 1);
        assert!(
            p["log"]
                .as_str()
                .is_some_and(|l| l.contains("Connection timed out"))
        );
    }
    let (v, _) = &r[1];
    for p in v["pods"].as_array().into_iter().flatten() {
        assert_eq!(p["log"].as_str().map(|l| l.lines().count()), Some(1), "{p}");
    }
    let (v, _) = &r[2];
    let total: usize = v["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["log"].as_str().map(str::len).unwrap_or(0))
        .sum();
    assert!(total <= 3 * 512, "byte cap shared by the pods: {total}");
    let (v, err) = &r[3];
    assert!(*err && v["code"] == "not_found", "{v}");
    Ok(())
}
