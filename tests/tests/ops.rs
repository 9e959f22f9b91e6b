//! Operations against the fake Kubernetes API (which now takes merge
//! patches and creates, and answers them as the controllers do), through a
//! real rmcp client: each mutating tool is unlisted and refused while
//! mutations are off or `--read-only` is given, refused outside its
//! allowlist, performed and visible in the API when allowed, and recorded
//! in the audit log either way. `recover_helmrelease` recovers the
//! fixture's release stuck for 16 days (HOMELAB.md §3.a) in the modern and
//! the legacy wording, by reset where the served API has it and by
//! suspend/resume where it does not.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use labscope::config::file::Config;
use labscope_tests::fake_kube::Fixture;
use labscope_tests::homelab::homelab;
use labscope_tests::mcp::{assert_text_shows, call_with_fixture_text};
use serde_json::{Value, json};

const OPS: [&str; 8] = [
    "restart_deployment",
    "trigger_backup",
    "trigger_cronjob",
    "refresh_secret",
    "reconcile_flux",
    "suspend_flux",
    "resume_flux",
    "recover_helmrelease",
];

/// A config file with mutations on (audit log in `dir`), parsed by the
/// real parser; `extra` is more `[mutations]` keys.
fn mutations_on(dir: &Path, extra: &str) -> (Config, PathBuf) {
    let audit = dir.join("audit.jsonl");
    let text = format!(
        "[mutations]\nenabled = true\naudit_log = \"{}\"\n{extra}\n",
        audit.display()
    );
    let path = dir.join("labscope.toml");
    std::fs::write(&path, &text).expect("write config");
    (Config::load(&path).expect("config parses"), audit)
}

fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}

/// Runs `calls` with `config` (and `--read-only` when asked).
async fn run(
    fixture: Fixture,
    config: Config,
    read_only: bool,
    calls: &[(&str, Value)],
) -> anyhow::Result<(
    Vec<(Value, bool, String)>,
    labscope_tests::fake_kube::FakeKube,
)> {
    let config = Arc::new(config);
    call_with_fixture_text(
        fixture,
        move |o| {
            o.config = config;
            o.read_only = read_only;
        },
        calls,
    )
    .await
}

/// The object of `kind` `namespace/name` as the fake holds it now.
fn object(fake: &labscope_tests::fake_kube::FakeKube, kind: &str, ns: &str, name: &str) -> Value {
    let f = fake.fixture.lock().expect("fixture");
    f.objects
        .iter()
        .find(|o| {
            o["kind"] == kind && o["metadata"]["namespace"] == ns && o["metadata"]["name"] == name
        })
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} {ns}/{name}"))
}

fn writes(fake: &labscope_tests::fake_kube::FakeKube) -> Vec<String> {
    fake.log
        .lock()
        .expect("log")
        .iter()
        .filter(|l| l.starts_with("PATCH") || l.starts_with("POST"))
        .cloned()
        .collect()
}

/// With mutations off (no config) none is listed and each direct call is
/// refused naming `mutations.enabled`; with mutations on but `--read-only`
/// they are refused naming `--read-only`, and the refusals are audited.
#[tokio::test]
async fn mutating_tools_are_unlisted_and_refused_unless_enabled() -> anyhow::Result<()> {
    for (read_only, rule) in [(false, "mutations.enabled"), (true, "--read-only")] {
        let dir = tempfile::tempdir()?;
        let (config, audit) = if read_only {
            mutations_on(dir.path(), "restart = [\"jellyfin/jellyfin\"]")
        } else {
            (Config::default(), dir.path().join("none.jsonl"))
        };
        let fake = labscope_tests::fake_kube::FakeKube::start(homelab(&[])?).await?;
        let options = labscope::config::AgentOptions {
            kubeconfig: Some(fake.write_kubeconfig(dir.path())?),
            config: Arc::new(config),
            read_only,
            ..Default::default()
        };
        let ctx = options.context().await?;
        let client = labscope_tests::mcp::in_process(ctx, ()).await?;
        let listed: Vec<String> = client
            .list_all_tools()
            .await?
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        for op in OPS {
            assert!(
                !listed.iter().any(|n| n == op),
                "{op} listed with mutations off"
            );
        }
        assert!(listed.iter().any(|n| n == "get_flux_status"));
        let args = json!({"namespace": "jellyfin", "deployment": "jellyfin"});
        let r = client
            .call_tool(
                rmcp::model::CallToolRequestParams::new("restart_deployment")
                    .with_arguments(args.as_object().cloned().unwrap_or_default()),
            )
            .await?;
        let (e, is_error) = labscope_tests::mcp::structured(&r);
        assert!(is_error, "refused: {e}");
        assert_eq!(e["code"], "refused");
        assert_eq!(e["rule"], rule);
        assert!(
            e["hint"]
                .as_str()
                .is_some_and(|h| h.contains("[mutations]")),
            "{e}"
        );
        assert!(labscope_tests::mcp::text_of(&r).contains(rule));
        assert!(
            writes(&fake).is_empty(),
            "nothing was written: {:?}",
            writes(&fake)
        );
        if read_only {
            let lines = audit_lines(&audit);
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert_eq!(lines[0]["outcome"], "refused");
            assert_eq!(lines[0]["rule"], "--read-only");
            assert_eq!(lines[0]["tool"], "restart_deployment");
            assert_eq!(lines[0]["caller"], "stdio");
            assert_eq!(lines[0]["arguments"], args);
        }
        client.cancel().await?;
    }
    Ok(())
}

#[tokio::test]
async fn restart_deployment_obeys_its_allowlist() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, audit) = mutations_on(dir.path(), "restart = [\"jellyfin/jellyfin\"]");
    let (r, fake) = run(
        homelab(&[])?,
        config,
        false,
        &[
            (
                "restart_deployment",
                json!({"namespace": "immich", "deployment": "immich-server"}),
            ),
            (
                "restart_deployment",
                json!({"namespace": "jellyfin", "deployment": "jellyfin"}),
            ),
            (
                "restart_deployment",
                json!({"namespace": "jellyfin", "deployment": "Jellyfin!"}),
            ),
        ],
    )
    .await?;
    let (refused, is_error, _) = &r[0];
    assert!(is_error);
    assert_eq!(refused["rule"], "mutations.restart");
    assert!(
        refused["hint"]
            .as_str()
            .is_some_and(|h| h.contains("\"immich/immich-server\""))
    );
    let (done, is_error, text) = &r[1];
    assert!(!is_error, "{done}");
    assert_text_shows(
        "restart_deployment",
        done,
        text,
        &[
            "/namespace",
            "/deployment",
            "/restartedAt",
            "/generationAfter",
        ],
    )?;
    let at = done["restartedAt"].as_str().expect("restartedAt");
    assert!(text.contains(at));
    let d = object(&fake, "Deployment", "jellyfin", "jellyfin");
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        at
    );
    assert_eq!(
        done["generationAfter"].as_i64(),
        Some(done["generationBefore"].as_i64().unwrap_or(0) + 1)
    );
    assert!(r[2].1 && r[2].0["code"] == "invalid_argument", "{}", r[2].0);
    // Only the allowed call wrote anything, as a merge patch.
    assert_eq!(
        writes(&fake),
        ["PATCH /apis/apps/v1/namespaces/jellyfin/deployments/jellyfin?&fieldManager=labscope"]
    );
    let lines = audit_lines(&audit);
    let outcomes: Vec<&str> = lines.iter().filter_map(|l| l["outcome"].as_str()).collect();
    // The invalid argument is refused before the tool runs: audited as failed.
    assert_eq!(outcomes, ["refused", "performed", "failed"]);
    assert_eq!(lines[0]["rule"], "mutations.restart");
    Ok(())
}

#[tokio::test]
async fn reconcile_suspend_and_resume_flux() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, audit) = mutations_on(dir.path(), "flux_namespaces = [\"flux-system\"]");
    let (r, fake) = run(
        homelab(&[])?,
        config,
        false,
        &[
            (
                "reconcile_flux",
                json!({"resource": "kustomization/flux-system/ingress", "withSource": true}),
            ),
            (
                "reconcile_flux",
                json!({"resource": "helmrelease/immich/immich"}),
            ),
            (
                "suspend_flux",
                json!({"resource": "kustomization/flux-system/ingress"}),
            ),
            (
                "suspend_flux",
                json!({"resource": "kustomization/flux-system/ingress"}),
            ),
            (
                "reconcile_flux",
                json!({"resource": "kustomization/flux-system/ingress"}),
            ),
            (
                "resume_flux",
                json!({"resource": "kustomization/flux-system/ingress"}),
            ),
            ("reconcile_flux", json!({"resource": "all"})),
        ],
    )
    .await?;
    let (rec, is_error, text) = &r[0];
    assert!(!is_error, "{rec}");
    assert_eq!(rec["handled"], true, "{rec}");
    assert_text_shows(
        "reconcile_flux",
        rec,
        text,
        &[
            "/resource/name",
            "/token",
            "/source/resource/name",
            "/before/status",
            "/after/status",
        ],
    )?;
    assert_eq!(rec["annotation"], "reconcile.fluxcd.io/requestedAt");
    assert_eq!(rec["source"]["resource"]["kind"], "GitRepository");
    assert_eq!(rec["source"]["handled"], true);
    assert!(text.contains("handled"));
    let token = rec["token"].as_str().expect("token");
    // (The Kustomization's annotation is checked at the end: the resume
    // below sets a newer token.)
    let g = object(&fake, "GitRepository", "flux-system", "flux-system");
    assert_eq!(g["status"]["lastHandledReconcileAt"], token);

    assert_eq!(r[1].0["rule"], "mutations.flux_namespaces", "{}", r[1].0);
    let (s, is_error, _) = &r[2];
    assert!(!is_error, "{s}");
    assert_eq!(s["suspended"], true);
    assert_eq!(s["after"]["status"], "suspended");
    assert_eq!(
        r[3].0["unchanged"], true,
        "suspending twice changes nothing"
    );
    assert_eq!(
        r[4].0["code"], "conflict",
        "a suspended object is not reconciled: {}",
        r[4].0
    );
    let (res, is_error, _) = &r[5];
    assert!(!is_error, "{res}");
    assert_eq!(res["suspended"], false);
    let k = object(&fake, "Kustomization", "flux-system", "ingress");
    assert_eq!(k["spec"]["suspend"], false);
    assert_eq!(k["status"]["lastHandledReconcileAt"], res["token"]);
    assert_eq!(
        k["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"],
        res["token"]
    );
    assert_ne!(res["token"], token);
    assert_eq!(r[6].0["code"], "invalid_argument");

    let lines = audit_lines(&audit);
    assert_eq!(lines.len(), 7, "one line per call");
    let outcomes: Vec<&str> = lines.iter().filter_map(|l| l["outcome"].as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "performed",
            "refused",
            "performed",
            "no_change",
            "failed",
            "performed",
            "failed"
        ]
    );
    Ok(())
}

/// HOMELAB.md §3.a: a plain reconcile request is recorded and changes
/// nothing (and says so); `recover_helmrelease` resets the release with one
/// token and reports stuck → progressing → ready.
#[tokio::test]
async fn recover_helmrelease_recovers_the_stuck_release() -> anyhow::Result<()> {
    for scenario in ["immich-stuck", "immich-stuck-legacy"] {
        let dir = tempfile::tempdir()?;
        let (config, audit) = mutations_on(
            dir.path(),
            "flux_namespaces = [\"flux-system\", \"immich\"]",
        );
        let (r, fake) = run(
            homelab(&[scenario])?,
            config,
            false,
            &[
                (
                    "reconcile_flux",
                    json!({"resource": "helmrelease/immich/immich"}),
                ),
                ("get_flux_status", json!({"onlyFailing": true})),
                ("get_cluster_health", json!({})),
                (
                    "recover_helmrelease",
                    json!({"namespace": "immich", "name": "immich"}),
                ),
                (
                    "recover_helmrelease",
                    json!({"namespace": "immich", "name": "immich"}),
                ),
                ("get_flux_status", json!({"onlyFailing": true})),
            ],
        )
        .await?;
        // With operations on, the stuck release's fix is the operation.
        let (flux, _, _) = &r[1];
        let hint = flux["rootCauses"][0]["hint"].as_str().unwrap_or_default();
        assert!(
            hint.starts_with("recover_helmrelease namespace=immich name=immich"),
            "{scenario}: {hint}"
        );
        let (health, _, health_text) = &r[2];
        assert!(
            health_text.contains("recover_helmrelease namespace=immich name=immich"),
            "{scenario}: {health} {health_text}"
        );
        let r: Vec<_> = [&r[0]].into_iter().chain(&r[3..]).cloned().collect();
        let (rec, is_error, text) = &r[0];
        assert!(!is_error, "{rec}");
        assert_eq!(rec["before"]["status"], "stuck", "{scenario}: {rec}");
        assert_eq!(
            rec["after"]["ready"], false,
            "{scenario}: a plain request leaves it stalled"
        );
        assert!(
            rec["warning"]
                .as_str()
                .is_some_and(|w| w.contains("recover_helmrelease")),
            "{rec}"
        );
        assert!(text.contains("WARNING"));

        let (rv, is_error, text) = &r[1];
        assert!(!is_error, "{scenario}: {rv}");
        assert_text_shows(
            "recover_helmrelease",
            rv,
            text,
            &[
                "/token",
                "/before/message",
                "/transitions/*/status",
                "/after/message",
            ],
        )?;
        assert_eq!(rv["method"], "reset");
        assert_eq!(rv["before"]["status"], "stuck");
        assert_eq!(rv["transitions"][0]["status"], "progressing", "{rv}");
        assert_eq!(rv["after"]["ready"], true);
        assert_eq!(rv["recovered"], true);
        assert!(text.contains("recovered"), "{text}");
        let token = rv["token"].as_str().expect("token");
        let hr = object(&fake, "HelmRelease", "immich", "immich");
        let ann = &hr["metadata"]["annotations"];
        assert_eq!(ann["reconcile.fluxcd.io/requestedAt"], token);
        assert_eq!(ann["reconcile.fluxcd.io/resetAt"], token);
        assert_eq!(hr["status"]["history"][0]["status"], "deployed");
        assert_eq!(hr["status"]["history"][0]["version"], 11);

        assert_eq!(
            r[2].0["code"], "conflict",
            "a Ready release has nothing to recover: {}",
            r[2].0
        );
        let flux = &r[3].0;
        let failing: Vec<String> = flux
            .to_string()
            .matches("immich")
            .map(str::to_string)
            .collect();
        assert!(
            failing.is_empty(),
            "{scenario}: immich still failing after recovery: {flux}"
        );
        let outcomes: Vec<String> = audit_lines(&audit)
            .iter()
            .filter_map(|l| l["outcome"].as_str().map(str::to_string))
            .collect();
        assert_eq!(outcomes, ["performed", "performed", "failed"], "{scenario}");
    }
    Ok(())
}

/// Where the served HelmRelease API predates the reset annotation
/// (helm.toolkit.fluxcd.io/v2beta1), recovery suspends and resumes.
#[tokio::test]
async fn recover_helmrelease_suspends_and_resumes_on_old_apis() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, _audit) = mutations_on(dir.path(), "flux_namespaces = [\"immich\"]");
    let mut fixture = homelab(&["immich-stuck"])?;
    for (g, versions) in fixture.groups.iter_mut() {
        if g == "helm.toolkit.fluxcd.io" {
            *versions = vec!["v2beta1".into()];
        }
    }
    let (r, fake) = run(
        fixture,
        config,
        false,
        &[(
            "recover_helmrelease",
            json!({"namespace": "immich", "name": "immich"}),
        )],
    )
    .await?;
    let (rv, is_error, _) = &r[0];
    assert!(!is_error, "{rv}");
    assert_eq!(rv["method"], "suspend-resume");
    assert_eq!(
        rv["release"]["apiVersion"],
        "helm.toolkit.fluxcd.io/v2beta1"
    );
    assert_eq!(rv["recovered"], true, "{rv}");
    let hr = object(&fake, "HelmRelease", "immich", "immich");
    assert_eq!(hr["spec"]["suspend"], false);
    assert_eq!(
        hr["metadata"]["generation"], 5,
        "suspend and resume are two spec changes"
    );
    assert!(hr["metadata"]["annotations"]["reconcile.fluxcd.io/resetAt"].is_null());
    Ok(())
}

#[tokio::test]
async fn trigger_backup_needs_the_opt_in_label_and_no_active_run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, audit) = mutations_on(dir.path(), "");
    let mut fixture = homelab(&[])?;
    let uid = {
        let cj = fixture
            .objects
            .iter_mut()
            .find(|o| o["kind"] == "CronJob" && o["metadata"]["name"] == "pvc-backup")
            .expect("pvc-backup");
        cj["metadata"]["labels"]["labscope.io/trigger"] = json!("true");
        cj["metadata"]["uid"].clone()
    };
    let (r, fake) = run(
        fixture,
        config,
        false,
        &[
            (
                "trigger_backup",
                json!({"namespace": "backup-jobs", "cronjob": "restore-test"}),
            ),
            (
                "trigger_backup",
                json!({"namespace": "backup-jobs", "cronjob": "pvc-backup"}),
            ),
            (
                "trigger_cronjob",
                json!({"namespace": "backup-jobs", "cronjob": "pvc-backup"}),
            ),
            (
                "trigger_backup",
                json!({"namespace": "backup-jobs", "cronjob": "no-such-job"}),
            ),
        ],
    )
    .await?;
    assert_eq!(r[0].0["rule"], "mutations.trigger_label", "{}", r[0].0);
    assert!(
        r[0].0["hint"]
            .as_str()
            .is_some_and(|h| h.contains("labscope.io/trigger=true"))
    );
    let (t, is_error, text) = &r[1];
    assert!(!is_error, "{t}");
    assert_text_shows("trigger_backup", t, text, &["/job", "/cronjob", "/created"])?;
    let job_name = t["job"].as_str().expect("job");
    assert!(job_name.starts_with("pvc-backup-manual-"), "{job_name}");
    // The next step works for any CronJob, backup or not.
    assert!(
        text.contains("get_cronjob_details namespace=backup-jobs cronjob=pvc-backup")
            && !text.contains("get_backup_status"),
        "{text}"
    );
    let job = object(&fake, "Job", "backup-jobs", job_name);
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "CronJob");
    assert_eq!(owner["name"], "pvc-backup");
    assert_eq!(owner["uid"], uid);
    assert_eq!(owner["controller"], true);
    assert_eq!(
        job["metadata"]["labels"]["labscope.io/triggered-by"],
        "stdio"
    );
    assert_eq!(
        job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    assert!(
        job["spec"]["template"]["spec"]["containers"].is_array(),
        "the CronJob's template"
    );
    // The Job just created has not finished: a second run is refused.
    assert_eq!(r[2].0["code"], "conflict", "{}", r[2].0);
    assert!(
        r[2].0["message"]
            .as_str()
            .is_some_and(|m| m.contains(job_name))
    );
    assert_eq!(r[3].0["code"], "not_found");
    let hint = r[3].0["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("get_backup_status namespace="), "{hint}");
    let outcomes: Vec<String> = audit_lines(&audit)
        .iter()
        .filter_map(|l| l["outcome"].as_str().map(str::to_string))
        .collect();
    assert_eq!(outcomes, ["refused", "performed", "failed", "failed"]);
    Ok(())
}

#[tokio::test]
async fn refresh_secret_obeys_its_namespaces() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, audit) = mutations_on(dir.path(), "secret_namespaces = [\"immich\"]");
    let (r, fake) = run(
        homelab(&[])?,
        config,
        false,
        &[
            (
                "refresh_secret",
                json!({"namespace": "backup-jobs", "name": "backup-ssh-key"}),
            ),
            (
                "refresh_secret",
                json!({"namespace": "immich", "name": "immich-secret"}),
            ),
        ],
    )
    .await?;
    assert_eq!(r[0].0["rule"], "mutations.secret_namespaces", "{}", r[0].0);
    let (s, is_error, text) = &r[1];
    assert!(!is_error, "{s}");
    assert_eq!(s["refreshed"], true, "{s}");
    assert_text_shows(
        "refresh_secret",
        s,
        text,
        &["/name", "/value", "/refreshTimeAfter"],
    )?;
    assert_eq!(s["apiVersion"], "external-secrets.io/v1");
    let es = object(&fake, "ExternalSecret", "immich", "immich-secret");
    assert_eq!(es["metadata"]["annotations"]["force-sync"], s["value"]);
    assert_eq!(es["status"]["refreshTime"], s["refreshTimeAfter"]);
    assert_eq!(audit_lines(&audit).len(), 2);
    Ok(())
}

/// A config with mutations on but a bad allowlist entry, or no audit log,
/// stops start-up with the key named (checked through the real binary).
#[test]
fn a_bad_config_stops_start_up_naming_the_key() -> anyhow::Result<()> {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/labscope");
    if !bin.exists() {
        eprintln!(
            "SKIP: {} not built (cargo build --workspace --bins)",
            bin.display()
        );
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    for (text, key) in [
        ("[mutations]\nenabled = true\n", "mutations.audit_log"),
        (
            "[mutations]\nrestart = [\"jellyfin\"]\n",
            "mutations.restart[0]",
        ),
        (
            "[pihole.primary]\nurl = \"http://192.168.1.55\"\npassword_env = \"LABSCOPE_TEST_UNSET\"\n",
            "pihole.primary.password_env",
        ),
        (
            "[jellyfin]\nurl = \"http://j\"\napi_kee_env = \"X\"\n",
            "api_kee_env",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text)?;
        let out = std::process::Command::new(&bin)
            .arg("--config")
            .arg(&path)
            .args(["call", "list_nodes"])
            .env_remove("LABSCOPE_TEST_UNSET")
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}: started anyway");
        assert!(
            err.contains(key),
            "{text}: the error does not name {key}: {err}"
        );
    }
    Ok(())
}

/// Every operation, with arguments it would act on: refused while
/// mutations are off (`mutations.enabled`) and under `--read-only`, each
/// refusal audited, nothing written.
#[tokio::test]
async fn every_operation_is_refused_while_mutations_are_off() -> anyhow::Result<()> {
    let calls: Vec<(&str, Value)> = vec![
        (
            "restart_deployment",
            json!({"namespace": "jellyfin", "deployment": "jellyfin"}),
        ),
        (
            "trigger_backup",
            json!({"namespace": "backup-jobs", "cronjob": "pvc-backup"}),
        ),
        (
            "trigger_cronjob",
            json!({"namespace": "backup-jobs", "cronjob": "pvc-backup"}),
        ),
        (
            "refresh_secret",
            json!({"namespace": "immich", "name": "immich-secret"}),
        ),
        (
            "reconcile_flux",
            json!({"resource": "kustomization/flux-system/ingress"}),
        ),
        (
            "suspend_flux",
            json!({"resource": "kustomization/flux-system/ingress"}),
        ),
        (
            "resume_flux",
            json!({"resource": "kustomization/flux-system/ingress"}),
        ),
        (
            "recover_helmrelease",
            json!({"namespace": "immich", "name": "immich"}),
        ),
        ("update_pihole_gravity", json!({})),
        ("fix_jellyfin_metadata", json!({"name": "Arrival"})),
    ];
    // Everything allowed but the switch itself, then the switch on but
    // --read-only.
    let allow_all = "restart = [\"jellyfin/jellyfin\"]\nflux_namespaces = [\"flux-system\", \"immich\"]\n\
                     secret_namespaces = [\"immich\"]\npihole_gravity = true\njellyfin_metadata = true";
    for (enabled, read_only, rule) in [
        (false, false, "mutations.enabled"),
        (true, true, "--read-only"),
    ] {
        let dir = tempfile::tempdir()?;
        let audit = dir.path().join("audit.jsonl");
        let path = dir.path().join("labscope.toml");
        std::fs::write(
            &path,
            format!(
                "[mutations]\nenabled = {enabled}\naudit_log = \"{}\"\n{allow_all}\n",
                audit.display()
            ),
        )?;
        let config = Config::load(&path)?;
        let mut fixture = homelab(&["immich-stuck"])?;
        for o in fixture.objects.iter_mut() {
            if o["kind"] == "CronJob" && o["metadata"]["name"] == "pvc-backup" {
                o["metadata"]["labels"]["labscope.io/trigger"] = json!("true");
            }
        }
        let fake = labscope_tests::fake_kube::FakeKube::start(fixture).await?;
        let options = labscope::config::AgentOptions {
            kubeconfig: Some(fake.write_kubeconfig(dir.path())?),
            config: Arc::new(config),
            read_only,
            toolsets: Some(labscope::tools::Toolset::ALL.to_vec()),
            ..Default::default()
        };
        let ctx = options.context().await?;
        assert!(
            labscope::tools::served(&ctx).iter().all(|t| !t.mutates()),
            "no operation is served ({rule})"
        );
        for (tool, args) in &calls {
            let r = labscope::tools::call(
                ctx.clone(),
                &labscope::tools::registry(),
                tool,
                args.as_object().cloned().unwrap_or_default(),
                labscope::tools::Call::default().by("cli"),
            )
            .await;
            let e = r.map(|_| ()).expect_err(tool);
            assert_eq!(e.code, labscope::tools::ErrorCode::Refused, "{tool}: {e:?}");
            assert_eq!(e.rule.as_deref(), Some(rule), "{tool}");
        }
        assert!(writes(&fake).is_empty(), "{rule}: {:?}", writes(&fake));
        let lines = audit_lines(&audit);
        assert_eq!(
            lines.len(),
            calls.len(),
            "{rule}: one audit line per refused call"
        );
        for (line, (tool, args)) in lines.iter().zip(&calls) {
            assert_eq!(line["tool"], *tool);
            assert_eq!(line["outcome"], "refused");
            assert_eq!(line["rule"], rule);
            assert_eq!(line["caller"], "cli");
            assert_eq!(&line["arguments"], args);
        }
    }
    Ok(())
}

/// The Flux operations outside `flux_namespaces`: each refused naming the
/// rule, nothing written, each audited.
#[tokio::test]
async fn flux_operations_stay_in_their_namespaces() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, audit) = mutations_on(dir.path(), "flux_namespaces = [\"flux-system\"]");
    let calls = [
        (
            "reconcile_flux",
            json!({"resource": "helmrelease/immich/immich"}),
        ),
        (
            "suspend_flux",
            json!({"resource": "helmrelease/immich/immich"}),
        ),
        (
            "resume_flux",
            json!({"resource": "helmrelease/immich/immich"}),
        ),
        (
            "recover_helmrelease",
            json!({"namespace": "immich", "name": "immich"}),
        ),
        // The source of a Kustomization in an allowed namespace lives in one
        // that is not: refused before anything is patched.
        (
            "reconcile_flux",
            json!({"resource": "kustomization/flux-system/ingress", "withSource": true}),
        ),
    ];
    let mut fixture = homelab(&["immich-stuck"])?;
    for o in fixture.objects.iter_mut() {
        if o["kind"] == "Kustomization" && o["metadata"]["name"] == "ingress" {
            o["spec"]["sourceRef"]["namespace"] = json!("git-sources");
        }
    }
    let (r, fake) = run(fixture, config, false, &calls).await?;
    for ((tool, args), (v, is_error, _)) in calls.iter().zip(&r) {
        assert!(is_error, "{tool} {args}: {v}");
        assert_eq!(v["rule"], "mutations.flux_namespaces", "{tool} {args}: {v}");
    }
    assert!(writes(&fake).is_empty(), "{:?}", writes(&fake));
    let outcomes: Vec<String> = audit_lines(&audit)
        .iter()
        .filter_map(|l| l["outcome"].as_str().map(str::to_string))
        .collect();
    assert_eq!(outcomes, vec!["refused"; 5]);
    Ok(())
}

/// The CLI asks on a terminal before an operation, says what will change,
/// and changes nothing on a no; `--yes` answers for the person; without a
/// terminal `[mutations] confirm_fallback` decides. The audit line says how
/// each was confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_asks_before_a_change() -> anyhow::Result<()> {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIP: util-linux `script` is not installed; no pseudo-terminal (scripts/test installs it)"
        );
        return Ok(());
    }
    let fake = labscope_tests::fake_kube::FakeKube::start(homelab(&[])?).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = fake.write_kubeconfig(dir.path())?;
    let bin = labscope_tests::workspace_binary("labscope")?;
    let restart = "call restart_deployment namespace=jellyfin deployment=jellyfin";
    // (fallback, through a terminal with this answer, extra flag) → exit, stdout+stderr
    let run = |fallback: &'static str, answer: Option<&'static str>, flag: &'static str| {
        let (bin, kubeconfig, dir) = (bin.clone(), kubeconfig.clone(), dir.path().to_path_buf());
        async move {
            let audit = dir.join("audit.jsonl");
            let config = dir.join(format!("labscope-{fallback}.toml"));
            std::fs::write(
                &config,
                format!(
                    "[mutations]\nenabled = true\naudit_log = \"{}\"\nrestart = [\"jellyfin/jellyfin\"]\nconfirm_fallback = \"{fallback}\"\n",
                    audit.display()
                ),
            )?;
            let cmd = format!(
                "{} --kubeconfig {} --config {} {restart} {flag}",
                bin.display(),
                kubeconfig.display(),
                config.display()
            );
            tokio::task::spawn_blocking(move || -> anyhow::Result<(Option<i32>, String)> {
                use std::io::Write;
                let mut c = match answer {
                    // A pseudo-terminal, fed the answer.
                    Some(_) => {
                        let mut c = std::process::Command::new("script");
                        c.args(["-qec", &cmd, "/dev/null"]);
                        c
                    }
                    None => {
                        let mut c = std::process::Command::new("sh");
                        c.args(["-c", &cmd]);
                        c
                    }
                };
                let mut child = c
                    .env("RUST_LOG", "off")
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()?;
                let mut stdin = child.stdin.take().expect("stdin");
                if let Some(a) = answer {
                    std::thread::sleep(std::time::Duration::from_millis(1500));
                    stdin.write_all(a.as_bytes())?;
                }
                drop(stdin);
                let out = child.wait_with_output()?;
                Ok((
                    out.status.code(),
                    format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ),
                ))
            })
            .await?
        }
    };

    // No at the terminal: the question says what will change; nothing does.
    let (code, out) = run("allow", Some("n\n"), "").await?;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "labscope restart_deployment — Restart a Deployment (deployment=jellyfin, namespace=jellyfin)"
        ) && out.contains("[y/N]"),
        "{out}"
    );
    assert!(out.contains("not confirmed"), "{out}");
    assert!(
        writes(&fake).is_empty(),
        "a no changes nothing: {:?}",
        writes(&fake)
    );
    // Yes at the terminal.
    let (code, out) = run("allow", Some("y\n"), "").await?;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(writes(&fake).len(), 1, "{out}");
    // --yes, no terminal.
    let (code, out) = run("refuse", None, "--yes").await?;
    assert_eq!(code, Some(0), "{out}");
    // No terminal, no --yes: the fallback decides.
    let (code, out) = run("refuse", None, "").await?;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("confirm_fallback"), "{out}");
    let (code, out) = run("allow", None, "").await?;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(writes(&fake).len(), 3);

    let lines = audit_lines(&dir.path().join("audit.jsonl"));
    let seen: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["outcome"].as_str().unwrap_or_default().to_string(),
                l["confirmed"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("refused", "-"),
        ("performed", "terminal"),
        ("performed", "yes_flag"),
        ("refused", "-"),
        ("performed", "fallback"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(seen, want, "{lines:?}");
    assert_eq!(lines[0]["rule"], "confirmation");
    assert_eq!(lines[3]["rule"], "mutations.confirm_fallback");
    Ok(())
}

/// An MCP client that answers every confirmation with `approve`, counting
/// the questions and keeping the last.
#[derive(Clone)]
struct Asker {
    approve: bool,
    asked: Arc<std::sync::Mutex<Vec<String>>>,
    declares: bool,
}

impl rmcp::ClientHandler for Asker {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        let caps = if self.declares {
            rmcp::model::ClientCapabilities::builder()
                .enable_elicitation()
                .build()
        } else {
            rmcp::model::ClientCapabilities::default()
        };
        rmcp::model::ClientConfig::new(caps, rmcp::model::Implementation::new("asker", "0"))
    }

    async fn create_elicitation(
        &self,
        request: rmcp::model::ElicitRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, rmcp::ErrorData> {
        let message = match &request {
            rmcp::model::ElicitRequestParams::FormElicitationParams { message, .. } => {
                message.clone()
            }
            _ => String::new(),
        };
        self.asked.lock().expect("asked").push(message);
        Ok(if self.approve {
            rmcp::model::ElicitResult::new(rmcp::model::ElicitationAction::Accept)
                .with_content(json!({"confirm": true}))
        } else {
            rmcp::model::ElicitResult::new(rmcp::model::ElicitationAction::Decline)
        })
    }
}

/// MCP clients are asked before an operation, each as it can be: a
/// 2026-07-28 client through an input request (MRTR, the retry carrying the
/// answer and the sealed state), an older one through elicitation, one that
/// can take no question by `[mutations] confirm_fallback`. A no changes
/// nothing; a sealed state opens once, and only for the call it was made for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_clients_are_asked_before_a_change() -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
    let fake = labscope_tests::fake_kube::FakeKube::start(homelab(&[])?).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = fake.write_kubeconfig(dir.path())?;
    let restart = json!({"namespace": "jellyfin", "deployment": "jellyfin"});
    let context = |fallback: &str| -> anyhow::Result<_> {
        let (config, _) = mutations_on(
            dir.path(),
            &format!("restart = [\"jellyfin/jellyfin\"]\nconfirm_fallback = \"{fallback}\""),
        );
        Ok(labscope::config::AgentOptions {
            kubeconfig: Some(kubeconfig.clone()),
            config: Arc::new(config),
            now: Some(labscope_tests::fake_kube::FIXTURE_NOW),
            ..Default::default()
        })
    };
    // (era, approve, declares elicitation, fallback) → (error?, code, questions asked)
    let mut results = Vec::new();
    for (modern, approve, declares, fallback) in [
        (true, true, true, "refuse"),
        (true, false, true, "allow"),
        (false, true, true, "refuse"),
        (false, false, true, "allow"),
        (true, true, false, "refuse"),
        (false, true, false, "allow"),
    ] {
        let ctx = context(fallback)?.context().await?;
        let asker = Asker {
            approve,
            asked: Arc::default(),
            declares,
        };
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            if let Ok(running) = labscope::server::mcp::McpServer::new(ctx)
                .serve(server_io)
                .await
            {
                let _ = running.waiting().await;
            }
        });
        let client = if modern {
            asker
                .clone()
                .serve_with_lifecycle(
                    client_io,
                    ClientLifecycleMode::Discover {
                        preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
                    },
                )
                .await?
        } else {
            asker.clone().serve(client_io).await?
        };
        let params = rmcp::model::CallToolRequestParams::new("restart_deployment")
            .with_arguments(restart.as_object().cloned().unwrap_or_default());
        let r = client.call_tool(params).await?;
        let (v, err) = labscope_tests::mcp::structured(&r);
        let asked = asker.asked.lock().expect("asked").clone();
        results.push((modern, approve, declares, err, v, asked));
        client.cancel().await?;
    }
    let audit = audit_lines(&dir.path().join("audit.jsonl"));
    for (i, (modern, approve, declares, err, v, asked)) in results.iter().enumerate() {
        let at =
            format!("case {i} (2026-07-28: {modern}, approve: {approve}, elicitation: {declares})");
        if *declares {
            assert_eq!(asked.len(), 1, "{at}: asked once: {asked:?}");
            assert!(
                asked[0].contains("restart_deployment — Restart a Deployment (deployment=jellyfin, namespace=jellyfin)"),
                "{at}: {asked:?}"
            );
        } else {
            assert!(asked.is_empty(), "{at}");
        }
        let performed = *approve && (*declares || i == 5);
        assert_eq!(!*err, performed, "{at}: {v}");
        if !performed {
            assert_eq!(v["code"], "refused", "{at}: {v}");
        }
    }
    // One audit line per call (the first round of an input request writes
    // none), each saying how it was confirmed.
    let seen: Vec<(String, String)> = audit
        .iter()
        .map(|l| {
            (
                l["outcome"].as_str().unwrap_or_default().to_string(),
                l["confirmed"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let want = [
        ("performed", "input_request"),
        ("refused", "-"),
        ("performed", "elicitation"),
        ("refused", "-"),
        ("refused", "-"),
        ("performed", "fallback"),
    ];
    assert_eq!(
        seen,
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>(),
        "{audit:?}"
    );
    assert_eq!(audit[4]["rule"], "mutations.confirm_fallback");
    assert_eq!(
        writes(&fake).len(),
        3,
        "three restarts: {:?}",
        writes(&fake)
    );

    // A sealed state opens once, and only for the call it was made for.
    let ctx = context("allow")?.context().await?;
    let asker = Asker {
        approve: true,
        asked: Arc::default(),
        declares: true,
    };
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        if let Ok(running) = labscope::server::mcp::McpServer::new(ctx)
            .serve(server_io)
            .await
        {
            let _ = running.waiting().await;
        }
    });
    let client = asker
        .serve_with_lifecycle(
            client_io,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
            },
        )
        .await?;
    let params = || {
        rmcp::model::CallToolRequestParams::new("restart_deployment")
            .with_arguments(restart.as_object().cloned().unwrap_or_default())
    };
    let first = client.call_tool_once(params()).await?;
    let rmcp::model::CallToolResponse::InputRequired(input) = first else {
        anyhow::bail!("no input request: {first:?}");
    };
    let state = input.request_state.clone().expect("requestState");
    let yes: rmcp::model::InputResponses = [(
        labscope::server::confirm::CONFIRM_KEY.to_string(),
        json!({"action": "accept", "content": {"confirm": true}}),
    )]
    .into_iter()
    .collect();
    let mut other = params();
    other.arguments = json!({"namespace": "jellyfin", "deployment": "other"})
        .as_object()
        .cloned();
    other.request_state = Some(state.clone());
    other.input_responses = Some(yes.clone());
    let moved = client.call_tool_once(other).await?;
    let mut retry = params();
    retry.request_state = Some(state.clone());
    retry.input_responses = Some(yes.clone());
    let once = client.call_tool_once(retry.clone()).await?;
    let twice = client.call_tool_once(retry).await?;
    for (what, r, ok) in [
        ("other arguments", moved, false),
        ("the retry", once, true),
        ("a replay", twice, false),
    ] {
        let rmcp::model::CallToolResponse::Complete(r) = r else {
            anyhow::bail!("{what}: {r:?}");
        };
        let (v, err) = labscope_tests::mcp::structured(&r);
        assert_eq!(!err, ok, "{what}: {v}");
        if !ok {
            assert_eq!(v["code"], "invalid_argument", "{what}: {v}");
        }
    }
    assert_eq!(writes(&fake).len(), 4);
    client.cancel().await?;
    Ok(())
}

/// The Python SDK's interpreter (tests/schema/.venv, installed by
/// scripts/schema-tools), or None with the reason printed; required in CI
/// (`LABSCOPE_REQUIRE_SCHEMAS=1`, set by scripts/test).
fn python_sdk() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/.venv/bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import mcp.client.client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let msg = "the MCP Python SDK is not installed in tests/schema/.venv; scripts/test installs it";
    if std::env::var_os("LABSCOPE_REQUIRE_SCHEMAS").is_some_and(|v| v == "1") {
        panic!("{msg}");
    }
    eprintln!("SKIP: {msg}");
    None
}

/// The same confirmation through the official Python SDK over Streamable
/// HTTP against the real binary, both protocol eras: its client answers the
/// input request (2026-07-28) or the elicitation (legacy) with its callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_clients_are_asked_before_a_change() -> anyhow::Result<()> {
    let Some(python) = python_sdk() else {
        return Ok(());
    };
    let fake = labscope_tests::fake_kube::FakeKube::start(homelab(&[])?).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = fake.write_kubeconfig(dir.path())?;
    let (_, audit) = mutations_on(
        dir.path(),
        "restart = [\"jellyfin/jellyfin\"]\nconfirm_fallback = \"refuse\"",
    );
    let config = dir.path().join("labscope.toml");
    let agg = labscope_tests::mcp::Aggregator::start(
        None,
        &[
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "--config",
            &config.display().to_string(),
            "--agent-scheme",
            "http",
        ],
        &[],
    )?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/confirm.py");
    let args = r#"{"namespace": "jellyfin", "deployment": "jellyfin"}"#;
    let mut seen = Vec::new();
    for (mode, answer) in [
        ("2026-07-28", "accept"),
        ("2026-07-28", "decline"),
        ("legacy", "accept"),
        ("legacy", "decline"),
        ("legacy", "none"),
    ] {
        let (python, script, url) = (python.clone(), script.clone(), agg.url.clone());
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(python)
                .arg(script)
                .args([url.as_str(), mode, answer, "restart_deployment", args])
                .output()
        })
        .await??;
        anyhow::ensure!(
            out.status.success(),
            "{mode} {answer}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout)?;
        seen.push((mode, answer, v));
    }
    for (mode, answer, v) in &seen {
        let at = format!("{mode} {answer}: {v}");
        let asked = v["asked"].as_array().cloned().unwrap_or_default();
        if *answer == "none" {
            assert!(asked.is_empty(), "{at}");
        } else {
            assert_eq!(asked.len(), 1, "{at}");
            assert!(
                asked[0]
                    .as_str()
                    .unwrap_or_default()
                    .contains("restart_deployment"),
                "{at}"
            );
        }
        assert_eq!(v["isError"], *answer != "accept", "{at}");
    }
    let outcomes: Vec<(String, String)> = audit_lines(&audit)
        .iter()
        .map(|l| {
            (
                l["outcome"].as_str().unwrap_or_default().to_string(),
                l["confirmed"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("performed", "input_request"),
        ("refused", "-"),
        ("performed", "elicitation"),
        ("refused", "-"),
        ("refused", "-"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(outcomes, want);
    assert_eq!(writes(&fake).len(), 2, "{:?}", writes(&fake));
    Ok(())
}

/// An operation its allowlist refuses asks nobody anything: the refusal
/// comes first, as does a bad argument.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_is_asked_about_what_the_allowlist_refuses() -> anyhow::Result<()> {
    let fake = labscope_tests::fake_kube::FakeKube::start(homelab(&[])?).await?;
    let dir = tempfile::tempdir()?;
    let (config, audit) = mutations_on(
        dir.path(),
        "restart = [\"jellyfin/jellyfin\"]\nflux_namespaces = [\"flux-system\"]\nsecret_namespaces = [\"media\"]",
    );
    let ctx = labscope::config::AgentOptions {
        kubeconfig: Some(fake.write_kubeconfig(dir.path())?),
        config: Arc::new(config),
        now: Some(labscope_tests::fake_kube::FIXTURE_NOW),
        ..Default::default()
    }
    .context()
    .await?;
    let asker = Asker {
        approve: true,
        asked: Arc::default(),
        declares: true,
    };
    let client = labscope_tests::mcp::in_process(ctx, asker.clone()).await?;
    for (tool, args, rule) in [
        (
            "restart_deployment",
            json!({"namespace": "jellyfin", "deployment": "other"}),
            "mutations.restart",
        ),
        (
            "suspend_flux",
            json!({"resource": "kustomization/immich/immich"}),
            "mutations.flux_namespaces",
        ),
        (
            "recover_helmrelease",
            json!({"namespace": "immich", "name": "immich"}),
            "mutations.flux_namespaces",
        ),
        (
            "refresh_secret",
            json!({"namespace": "immich", "name": "x"}),
            "mutations.secret_namespaces",
        ),
        ("restart_deployment", json!({"namespace": "jellyfin"}), ""),
    ] {
        let p = rmcp::model::CallToolRequestParams::new(tool)
            .with_arguments(args.as_object().cloned().unwrap_or_default());
        let (v, err) = labscope_tests::mcp::structured(&client.call_tool(p).await?);
        assert!(err, "{tool} {args}: {v}");
        if rule.is_empty() {
            assert_eq!(v["code"], "invalid_argument", "{v}");
        } else {
            assert_eq!(v["code"], "refused", "{v}");
            assert_eq!(v["rule"], rule, "{tool}: {v}");
        }
    }
    assert!(
        asker.asked.lock().expect("asked").is_empty(),
        "asked about a refused change"
    );
    assert!(writes(&fake).is_empty());
    assert_eq!(audit_lines(&audit).len(), 5, "refusals are audited");
    client.cancel().await?;
    Ok(())
}
