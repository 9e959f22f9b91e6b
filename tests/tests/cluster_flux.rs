//! Flux tools against the full homelab fixture through a real rmcp client:
//! HOMELAB.md scenario 3.a (HelmRelease immich/immich stuck for 16 days, in
//! the modern and the legacy wording) and 3.b (ImageRepository
//! private-exit-node without secretRef), plus the healthy baseline — each
//! under the API layouts of Flux 2.2, 2.4 and 2.7, where the kinds of one
//! group are served at different versions. Every answer must be the same in
//! all three but for the versions it names.

use labscope_tests::homelab::homelab;
use labscope_tests::mcp::call_with_fixture;
use serde_json::{Value, json};

/// The Flux releases whose API layouts every test runs under.
const LAYOUTS: [&str; 3] = ["flux-2.2", "flux-2.4", "flux-2.7"];

/// The answer without the API versions it was read at.
fn without_versions(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("apiVersions");
    }
    v
}

/// Runs `calls` against the homelab with `scenarios` under each Flux API
/// layout; checks that no kind failed to read and that every layout gives
/// the same answer; returns the Flux 2.7 one.
async fn run(scenarios: &[&str], calls: &[(&str, Value)]) -> anyhow::Result<Vec<(Value, bool)>> {
    let mut answers = Vec::new();
    for layout in LAYOUTS {
        let mut s = scenarios.to_vec();
        s.push(layout);
        let (r, _fake) = call_with_fixture(homelab(&s)?, |_| {}, calls).await?;
        for (v, _) in &r {
            assert!(
                v["failedParts"].as_array().is_none_or(Vec::is_empty),
                "{layout}: a kind was not read: {}",
                v["failedParts"]
            );
        }
        answers.push((layout, r));
    }
    let (_, reference) = answers.pop().unwrap_or_default();
    for (layout, r) in &answers {
        for ((a, _), (b, _)) in r.iter().zip(&reference) {
            assert_eq!(
                without_versions(a),
                without_versions(b),
                "{layout} answers differently from flux-2.7"
            );
        }
    }
    Ok(reference)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_is_read_at_a_version_served_for_it() -> anyhow::Result<()> {
    let expected: [(&str, &[(&str, &str)]); 3] = [
        (
            "flux-2.2",
            &[
                ("GitRepository", "source.toolkit.fluxcd.io/v1"),
                ("HelmRepository", "source.toolkit.fluxcd.io/v1beta2"),
                ("HelmChart", "source.toolkit.fluxcd.io/v1beta2"),
                ("Bucket", "source.toolkit.fluxcd.io/v1beta2"),
                ("OCIRepository", "source.toolkit.fluxcd.io/v1beta2"),
                ("Kustomization", "kustomize.toolkit.fluxcd.io/v1"),
                ("HelmRelease", "helm.toolkit.fluxcd.io/v2beta2"),
                ("ImageRepository", "image.toolkit.fluxcd.io/v1beta2"),
                ("ImagePolicy", "image.toolkit.fluxcd.io/v1beta2"),
                ("ImageUpdateAutomation", "image.toolkit.fluxcd.io/v1beta1"),
            ],
        ),
        (
            "flux-2.4",
            &[
                ("Bucket", "source.toolkit.fluxcd.io/v1"),
                ("OCIRepository", "source.toolkit.fluxcd.io/v1beta2"),
                ("HelmRelease", "helm.toolkit.fluxcd.io/v2"),
                ("ImageUpdateAutomation", "image.toolkit.fluxcd.io/v1beta2"),
            ],
        ),
        (
            "flux-2.7",
            &[
                ("OCIRepository", "source.toolkit.fluxcd.io/v1"),
                ("HelmRelease", "helm.toolkit.fluxcd.io/v2"),
                ("ImageUpdateAutomation", "image.toolkit.fluxcd.io/v1"),
            ],
        ),
    ];
    for (layout, kinds) in expected {
        let (r, fake) = call_with_fixture(
            homelab(&[layout])?,
            |_| {},
            &[("get_flux_status", json!({}))],
        )
        .await?;
        let (v, err) = &r[0];
        assert!(!err, "{layout}: {v}");
        for (kind, version) in kinds {
            assert_eq!(
                v["apiVersions"][kind], *version,
                "{layout}: {}",
                v["apiVersions"]
            );
        }
        assert_eq!(v["verdict"], "healthy", "{layout}: {v}");
        // The fake answers like an API server: a kind at a version it is not
        // served at is a 404, not an empty list.
        let addr = fake.url.trim_start_matches("http://");
        let (code, _, _) = labscope_tests::mcp::http_raw(
            addr,
            &format!(
                "GET /apis/source.toolkit.fluxcd.io/v1/buckets HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            ),
        )?;
        assert_eq!(
            code,
            if layout == "flux-2.2" { 404 } else { 200 },
            "{layout}"
        );
    }
    Ok(())
}

fn find<'a>(rows: &'a Value, kind: &str, ns: &str, name: &str) -> &'a Value {
    rows.as_array()
        .and_then(|a| {
            a.iter()
                .find(|r| r["kind"] == kind && r["namespace"] == ns && r["name"] == name)
        })
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_flux_is_healthy_and_oci_repository_is_static() -> anyhow::Result<()> {
    let r = run(&[], &[("get_flux_status", json!({}))]).await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["verdict"], "healthy", "{}", v["rootCauses"]);
    let s = &v["summary"];
    // 1 GitRepository + 38 Kustomizations + 7 HelmRepositories + 7 HelmCharts
    // + 7 HelmReleases + 6×3 image automation objects.
    assert_eq!(s["total"], 78, "{s}");
    assert_eq!(s["static"], 1, "the OCI HelmRepository immich: {s}");
    assert_eq!(s["ready"], 77, "{s}");
    let oci = find(&v["resources"], "HelmRepository", "flux-system", "immich");
    assert_eq!(oci["status"], "static");
    // No conditions by design: not "not ready" (HOMELAB.md).
    assert_eq!(oci["ready"], true);
    let hr = find(&v["resources"], "HelmRelease", "immich", "immich");
    assert_eq!(hr["appliedRevision"], "immich@0.10.3 (release v11)");
    let k = find(&v["resources"], "Kustomization", "flux-system", "immich");
    assert_eq!(
        k["appliedRevision"],
        "main@sha1:44c22701994feb91fbdbb13dcb1537bdb55c0036"
    );
    Ok(())
}

async fn stuck_immich(scenario: &str) -> anyhow::Result<()> {
    let r = run(
        &[scenario],
        &[
            ("get_flux_status", json!({})),
            ("get_flux_status", json!({"onlyFailing": true})),
            (
                "get_flux_status",
                json!({"kind": "helmrelease", "namespace": "immich"}),
            ),
        ],
    )
    .await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["verdict"], "critical");
    let roots = v["rootCauses"].as_array().cloned().unwrap_or_default();
    assert_eq!(roots.len(), 1, "one root cause, not two: {roots:?}");
    let root = &roots[0];
    assert_eq!(root["kind"], "HelmRelease");
    assert_eq!(root["name"], "immich");
    assert_eq!(root["status"], "stuck");
    assert_eq!(root["since"], "2026-08-04T06:07:31Z");
    assert_eq!(root["for"], "15d 23h", "not Ready for 16 days");
    let why = root["stuckBecause"].as_str().unwrap_or_default();
    if scenario == "immich-stuck" {
        assert!(why.contains("RetriesExceeded"), "{why}");
    } else {
        assert!(why.contains("upgrade retries exhausted"), "{why}");
    }
    assert!(
        root["hint"].as_str().is_some_and(|h| h.contains("--reset")),
        "the hint is the documented recovery: {root}"
    );
    // Operations are off here: the hint names no operation.
    assert!(
        root["hint"]
            .as_str()
            .is_some_and(|h| !h.contains("recover_helmrelease")),
        "{root}"
    );
    assert_eq!(
        root["explains"],
        json!(["Kustomization/flux-system/immich"]),
        "the Kustomization failure is a consequence"
    );
    // The chart source is fine, the OCI repository is not a second failure.
    let chart = find(&v["resources"], "HelmChart", "flux-system", "immich-immich");
    assert_eq!(chart["status"], "ready");
    assert_eq!(
        find(&v["resources"], "HelmRepository", "flux-system", "immich")["status"],
        "static"
    );
    let k = find(&v["resources"], "Kustomization", "flux-system", "immich");
    assert_eq!(k["status"], "failing");
    assert_eq!(k["consequenceOf"], "HelmRelease/immich/immich");
    assert!(
        v["summary"]["stuck"] == 1 && v["summary"]["failing"] == 1,
        "{}",
        v["summary"]
    );
    // onlyFailing lists exactly the two failing objects.
    let (only, _) = &r[1];
    assert_eq!(only["resources"].as_array().map(Vec::len), Some(2));
    // Filtered by kind and namespace.
    let (hr, _) = &r[2];
    assert_eq!(hr["resources"].as_array().map(Vec::len), Some(1));
    assert_eq!(hr["resources"][0]["failures"]["upgrade"], 1);
    assert_eq!(hr["resources"][0]["history"][0]["status"], "failed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_helmrelease_is_flagged_with_its_recovery() -> anyhow::Result<()> {
    stuck_immich("immich-stuck").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_helmrelease_legacy_wording_reaches_the_same_verdict() -> anyhow::Result<()> {
    stuck_immich("immich-stuck-legacy").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_repository_without_secret_ref_is_named_an_auth_failure() -> anyhow::Result<()> {
    let r = run(
        &["private-exit-node-auth"],
        &[
            ("get_image_automation_status", json!({})),
            ("get_flux_status", json!({"kind": "imagepolicy"})),
        ],
    )
    .await?;
    let (v, err) = &r[0];
    assert!(!err, "{v}");
    assert_eq!(v["verdict"], "degraded");
    let roots = v["rootCauses"].as_array().cloned().unwrap_or_default();
    assert_eq!(roots.len(), 1, "{roots:?}");
    assert_eq!(
        roots[0]["object"],
        "ImageRepository/flux-system/private-exit-node"
    );
    assert_eq!(roots[0]["problem"], "registry authentication failed");
    assert_eq!(roots[0]["reason"], "ReadOperationFailed");
    assert!(
        roots[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("UNAUTHORIZED: authentication required"))
    );
    let fix = roots[0]["fix"].as_str().unwrap_or_default();
    assert!(
        fix.contains("spec.secretRef")
            && fix.contains("dockerconfigjson")
            && fix.contains("flux-system"),
        "{fix}"
    );
    assert_eq!(
        roots[0]["explains"],
        json!(["ImagePolicy/flux-system/private-exit-node"]),
        "the policy failure is a consequence"
    );
    let repos = v["repositories"].as_array().cloned().unwrap_or_default();
    assert_eq!(repos.len(), 6);
    let healthy = repos
        .iter()
        .find(|r| r["name"] == "mcp-homelab")
        .cloned()
        .unwrap_or_default();
    assert_eq!(healthy["lastScanAge"], "3m");
    let policy = v["policies"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "mcp-homelab"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        policy["latestImage"],
        "ghcr.io/mtgibbs/pi-cluster-mcp:0.1.26"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_repository_with_a_missing_secret_and_the_healthy_baseline() -> anyhow::Result<()> {
    let r = run(
        &["secretref-missing-secret"],
        &[("get_image_automation_status", json!({}))],
    )
    .await?;
    let fix = r[0].0["rootCauses"][0]["fix"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        fix.contains("\"ghcr-credentials\", which does not exist"),
        "{fix}"
    );
    let r = run(&[], &[("get_image_automation_status", json!({}))]).await?;
    assert_eq!(r[0].0["verdict"], "healthy", "{}", r[0].0);
    let pen = r[0].0["policies"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "private-exit-node"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        pen["latestImage"],
        "ghcr.io/mtgibbs/private-exit-node:0.1.0"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_not_installed_and_bad_arguments() -> anyhow::Result<()> {
    let mut f = homelab(&[])?;
    f.groups.retain(|(g, _)| !g.ends_with("toolkit.fluxcd.io"));
    let (r, _fake) = call_with_fixture(
        f,
        |_| {},
        &[
            ("get_flux_status", json!({})),
            ("get_image_automation_status", json!({})),
            ("get_flux_status", json!({"kind": "deployment"})),
            ("get_flux_status", json!({"namespace": "Bad Name"})),
        ],
    )
    .await?;
    assert_eq!(r[0].0["installed"], false);
    assert_eq!(r[0].0["verdict"], "not installed");
    assert_eq!(r[1].0["verdict"], "not installed");
    assert!(r[2].1 && r[2].0["code"] == "invalid_argument", "{}", r[2].0);
    assert!(r[3].1 && r[3].0["code"] == "invalid_argument", "{}", r[3].0);
    Ok(())
}
