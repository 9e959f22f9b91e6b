//! The aggregator's RBAC is exactly what its code uses: every cluster tool
//! (and agent discovery) runs against the fake homelab, the fake API server
//! logs each request, and the (group, resource, verb) triples it needed must
//! equal the rules granted in `deploy/base/rbac.yaml` — nothing
//! missing (a tool would fail with 403 on a real cluster), nothing extra
//! (read access the tool set does not need). `LABSCOPE_PRINT_RBAC=1 cargo
//! test -p labscope-tests --test rbac -- --nocapture` prints what the code
//! reads, for updating the file after a tool changes.

use std::collections::BTreeSet;
use std::path::PathBuf;

use labscope_tests::homelab::homelab;
use labscope_tests::mcp::call_with_fixture;
use serde_json::{Value, json};

type Permission = (String, String, String);

/// The permission a logged request ("GET /apis/g/v/namespaces/ns/plural/name?…")
/// needs; `None` for discovery and other non-resource paths.
fn needed(line: &str) -> Option<Permission> {
    let (method, uri) = line.split_once(' ')?;
    let write = match method {
        "GET" => None,
        "PATCH" => Some("patch"),
        "POST" => Some("create"),
        // Anything else is a finding of its own.
        _ => return Some(("?".into(), uri.into(), method.to_lowercase())),
    };
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => (group.to_string(), rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    let (resource, verb) = match (write, rest) {
        (Some("create"), [plural]) => (plural.to_string(), "create"),
        (Some(verb), [plural, _name]) => (plural.to_string(), verb),
        (Some(_), _) => return Some(("?".into(), uri.into(), method.to_lowercase())),
        (None, rest) => match rest {
            [] => return None,
            [plural] => {
                let watch = query
                    .split('&')
                    .any(|kv| kv == "watch=true" || kv == "watch=1");
                (plural.to_string(), if watch { "watch" } else { "list" })
            }
            [plural, _name] => (plural.to_string(), "get"),
            [plural, _name, sub] => (format!("{plural}/{sub}"), "get"),
            _ => return None,
        },
    };
    Some((group, resource, verb.to_string()))
}

/// Every (group, resource, verb) the ClusterRoles and Roles of the file grant.
fn granted(yaml: &str) -> anyhow::Result<BTreeSet<Permission>> {
    granted_by(yaml, None)
}

/// What the (Cluster)Roles of the file named `role` grant (every role with
/// `None`).
fn granted_by(yaml: &str, role: Option<&str>) -> anyhow::Result<BTreeSet<Permission>> {
    let mut out = BTreeSet::new();
    for doc in yaml.split("\n---") {
        if doc.trim().is_empty() {
            continue;
        }
        let v: Value = serde_saphyr::from_str(doc)?;
        if !matches!(v["kind"].as_str(), Some("ClusterRole" | "Role")) {
            continue;
        }
        if role.is_some_and(|r| v["metadata"]["name"] != r) {
            continue;
        }
        let strings = |x: &Value| -> Vec<String> {
            x.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        for rule in v["rules"].as_array().cloned().unwrap_or_default() {
            for g in strings(&rule["apiGroups"]) {
                for r in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        out.insert((g.clone(), r.clone(), verb));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A name no fixture object has.
const MISSING: &str = "no-such-object";

/// Every cluster and flux tool, with arguments that reach its API reads
/// (each kind describe_resource knows, logs current and previous).
fn calls() -> Vec<(&'static str, Value)> {
    let mut calls: Vec<(&'static str, Value)> = labscope::tools::registry()
        .iter()
        .filter(|t| t.toolset != labscope::tools::Toolset::Node || t.name == "list_nodes")
        // The Pi-hole tools read no Kubernetes API (and need a Pi-hole).
        .filter(|t| !t.name.contains("pihole"))
        // Operations: mutation_rbac_is_exactly_what_the_operations_use.
        .filter(|t| !t.mutates())
        // Needs a url or a host: called below.
        .filter(|t| t.name != "trace_request")
        // Tools with required arguments are called with them below.
        .filter(|t| {
            t.input_schema()
                .get("required")
                .and_then(Value::as_array)
                .is_none_or(|r| r.is_empty())
        })
        .map(|t| (t.name, json!({})))
        .collect();
    for (kind, namespace, name) in [
        ("deployment", "jellyfin", "jellyfin"),
        (
            "statefulset",
            "monitoring",
            "prometheus-kube-prometheus-prometheus",
        ),
        (
            "daemonset",
            "monitoring",
            "kube-prometheus-prometheus-node-exporter",
        ),
        ("pod", "jellyfin", "jellyfin-fmhhr44wkg-vcxv7"),
        ("service", "jellyfin", "jellyfin"),
        ("configmap", "pihole", "unbound-config"),
        ("ingress", "jellyfin", "jellyfin"),
        ("node", "", "pi3-worker-2"),
        ("cronjob", "backup-jobs", "pvc-backup"),
        ("job", "backup-jobs", "pvc-backup-29780760"),
        ("pvc", "immich", "immich-library"),
    ] {
        let mut args = json!({"kind": kind, "name": name});
        if !namespace.is_empty() {
            args["namespace"] = namespace.into();
        }
        calls.push(("describe_resource", args.clone()));
        // A name that does not exist: the answer lists what does.
        args["name"] = MISSING.into();
        calls.push(("describe_resource", args));
    }
    calls.push((
        "get_pod_logs",
        json!({"namespace": "jellyfin", "pod": "jellyfin-fmhhr44wkg-vcxv7", "previous": true}),
    ));
    calls.push((
        "get_pod_logs",
        json!({"namespace": "backup-jobs", "pod": "pvc-backup-29780760-dmmbk"}),
    ));
    calls.push((
        "get_job_logs",
        json!({"namespace": "backup-jobs", "job": "pvc-backup-29780760"}),
    ));
    calls.push((
        "get_cronjob_details",
        json!({"namespace": "backup-jobs", "cronjob": "pvc-backup"}),
    ));
    calls.push((
        "get_events",
        json!({"namespace": "jellyfin", "type": "all"}),
    ));
    // The node tool that reads the cluster too (Flux, events) without a node.
    calls.push(("what_changed", json!({"since": "2h"})));
    // Through an Ingress, and through an HTTPRoute (the fixture below serves
    // the Gateway API).
    calls.push((
        "trace_request",
        json!({"url": "https://jellyfin.lab.mtgibbs.dev/web/"}),
    ));
    calls.push((
        "trace_request",
        json!({"url": "https://photos.lab.mtgibbs.dev/"}),
    ));
    calls
}

/// The homelab with the Gateway API served and one HTTPRoute, so that
/// trace_request's read of it is seen.
fn with_gateway_api(
    mut f: labscope_tests::fake_kube::Fixture,
) -> labscope_tests::fake_kube::Fixture {
    f.groups
        .push(("gateway.networking.k8s.io".into(), vec!["v1".into()]));
    f.objects.push(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "immich-photos", "namespace": "immich", "uid": "uid-httproute-photos", "resourceVersion": "1"},
        "spec": {"parentRefs": [{"name": "traefik-gateway", "namespace": "kube-system"}],
                 "hostnames": ["photos.lab.mtgibbs.dev"],
                 "rules": [{"backendRefs": [{"name": "immich-server", "port": 2283}]}]}
    }));
    f
}

#[tokio::test]
async fn rbac_is_exactly_what_the_code_reads() -> anyhow::Result<()> {
    let scenarios = [
        "immich-stuck",
        "eso-store-down",
        "connector-down",
        "jellyfin-crashloop",
        "certificates",
        "backup-overdue",
    ];
    let calls = calls();
    // Every toolset: the services' status tools read pods and Deployments
    // even with no service configured.
    let (results, fake) = call_with_fixture(
        with_gateway_api(homelab(&scenarios)?),
        |o| o.toolsets = Some(labscope::tools::Toolset::ALL.to_vec()),
        &calls,
    )
    .await?;
    // A failed call may have stopped before some of its reads; only the
    // calls about a missing object are meant to fail, with not_found.
    let failed: Vec<String> = calls
        .iter()
        .zip(&results)
        .filter(|((_, args), (v, is_error))| {
            let meant = args["name"] == MISSING;
            *is_error != meant || (meant && v["code"] != "not_found")
        })
        .map(|((tool, args), (v, _))| format!("{tool} {args}: {v}"))
        .collect();
    assert!(
        failed.is_empty(),
        "every call must succeed:\n{}",
        failed.join("\n")
    );

    let log = fake.log.lock().map(|l| l.clone()).unwrap_or_default();
    let used: BTreeSet<Permission> = log.iter().filter_map(|l| needed(l)).collect();
    // Watch is granted by a Role in labscope's namespace only.
    let watches: Vec<&String> = log.iter().filter(|l| l.contains("watch=")).collect();
    assert!(
        !watches.is_empty() && watches.iter().all(|l| l.contains("/namespaces/labscope/")),
        "watches outside the labscope namespace: {watches:?}"
    );
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/rbac.yaml");
    let granted = granted(&std::fs::read_to_string(&file)?)?;
    if std::env::var_os("LABSCOPE_PRINT_RBAC").is_some() {
        for p in &used {
            println!("USED {p:?}");
        }
    }
    let missing: Vec<&Permission> = used.difference(&granted).collect();
    let extra: Vec<&Permission> = granted.difference(&used).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "deploy/base/rbac.yaml differs from what the code reads\n\
         missing (403 on a real cluster): {missing:?}\nextra (never used): {extra:?}"
    );
    Ok(())
}

#[test]
fn requests_map_to_permissions() {
    let p = |g: &str, r: &str, v: &str| Some((g.to_string(), r.to_string(), v.to_string()));
    assert_eq!(needed("GET /api/v1/nodes"), p("", "nodes", "list"));
    assert_eq!(
        needed("GET /api/v1/namespaces/labscope/pods?labelSelector=x&watch=true"),
        p("", "pods", "watch")
    );
    assert_eq!(
        needed("GET /api/v1/namespaces/jellyfin/pods/j-1/log?previous=true"),
        p("", "pods/log", "get")
    );
    assert_eq!(
        needed("GET /apis/helm.toolkit.fluxcd.io/v2/namespaces/immich/helmreleases/immich"),
        p("helm.toolkit.fluxcd.io", "helmreleases", "get")
    );
    assert_eq!(
        needed("GET /apis/batch/v1/cronjobs?limit=500"),
        p("batch", "cronjobs", "list")
    );
    assert_eq!(
        needed(
            "PATCH /apis/apps/v1/namespaces/jellyfin/deployments/jellyfin?&fieldManager=labscope"
        ),
        p("apps", "deployments", "patch")
    );
    assert_eq!(
        needed("POST /apis/batch/v1/namespaces/backup-jobs/jobs?&fieldManager=labscope"),
        p("batch", "jobs", "create")
    );
    assert_eq!(
        needed("DELETE /api/v1/namespaces/x/pods/y").map(|p| p.2),
        Some("delete".into())
    );
    assert_eq!(needed("GET /apis"), None);
    assert_eq!(needed("GET /apis/apps/v1"), None);
    assert_eq!(needed("GET /api"), None);
}

/// Every operation, allowed everywhere, against the homelab, one operation
/// family at a time: each family's role (deploy/components/mutations/rbac.yaml,
/// and the homelab-ops overlay's Role for restart_deployment) grants only
/// what that family used, and everything it used beyond labscope-read.
#[tokio::test]
async fn each_operation_role_is_exactly_what_its_operations_use() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let audit = dir.path().join("audit.jsonl");
    let path = dir.path().join("labscope.toml");
    std::fs::write(
        &path,
        format!(
            "[mutations]\nenabled = true\naudit_log = \"{}\"\nrestart = [\"jellyfin/jellyfin\"]\n\
             flux_namespaces = [\"flux-system\", \"immich\"]\nsecret_namespaces = [\"immich\"]\n\
             trigger_namespaces = [\"backup-jobs\"]\n",
            audit.display()
        ),
    )?;
    let config = std::sync::Arc::new(labscope::config::file::Config::load(&path)?);
    let mut fixture = homelab(&["immich-stuck"])?;
    // The homelab has no OCIRepository; reconcile_flux patches one as it
    // patches the other sources.
    fixture.objects.push(json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": {"name": "podinfo", "namespace": "flux-system", "generation": 1},
        "spec": {"url": "oci://ghcr.io/stefanprodan/manifests/podinfo", "interval": "10m", "ref": {"tag": "latest"}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "stored artifact"}]}}));
    for o in fixture.objects.iter_mut() {
        if o["kind"] == "CronJob" && o["metadata"]["name"] == "pvc-backup" {
            o["metadata"]["labels"]["labscope.io/trigger"] = json!("true");
        }
    }
    let mut flux = Vec::new();
    for kind in [
        "kustomization/flux-system/ingress",
        "gitrepository/flux-system/flux-system",
        "helmrepository/flux-system/immich",
        "ocirepository/flux-system/podinfo",
        "imagerepository/flux-system/private-exit-node",
    ] {
        flux.push(("reconcile_flux", json!({"resource": kind})));
    }
    flux.push((
        "reconcile_flux",
        json!({"resource": "helmrelease/immich/immich", "withSource": true}),
    ));
    flux.push((
        "suspend_flux",
        json!({"resource": "kustomization/flux-system/ingress"}),
    ));
    flux.push((
        "resume_flux",
        json!({"resource": "kustomization/flux-system/ingress"}),
    ));
    flux.push((
        "recover_helmrelease",
        json!({"namespace": "immich", "name": "immich"}),
    ));
    // (role, the file that defines it, the calls of its operations)
    type Family<'a> = (&'a str, &'a str, Vec<(&'a str, Value)>);
    let families: Vec<Family> = vec![
        (
            "labscope-flux-operate",
            "components/mutations/rbac.yaml",
            flux,
        ),
        (
            "labscope-restart",
            "overlays/homelab-ops/rolebindings.yaml",
            vec![(
                "restart_deployment",
                json!({"namespace": "jellyfin", "deployment": "jellyfin"}),
            )],
        ),
        (
            "labscope-secret-refresh",
            "components/mutations/rbac.yaml",
            vec![(
                "refresh_secret",
                json!({"namespace": "immich", "name": "immich-secret"}),
            )],
        ),
        (
            "labscope-cronjob-trigger",
            "components/mutations/rbac.yaml",
            vec![(
                "trigger_backup",
                json!({"namespace": "backup-jobs", "cronjob": "pvc-backup"}),
            )],
        ),
    ];
    let deploy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let base = granted(&std::fs::read_to_string(deploy.join("base/rbac.yaml"))?)?;
    let mut problems = Vec::new();
    for (role, file, calls) in families {
        let config = config.clone();
        let (results, fake) =
            call_with_fixture(fixture.clone(), move |o| o.config = config, &calls).await?;
        // Every operation must succeed, so that every write it makes is seen.
        let failed: Vec<String> = calls
            .iter()
            .zip(&results)
            .filter(|(_, (_, is_error))| *is_error)
            .map(|((tool, args), (v, _))| format!("{tool} {args}: {v}"))
            .collect();
        assert!(
            failed.is_empty(),
            "operations failed:\n{}",
            failed.join("\n")
        );
        let log = fake.log.lock().map(|l| l.clone()).unwrap_or_default();
        let used: BTreeSet<Permission> = log.iter().filter_map(|l| needed(l)).collect();
        let grants = granted_by(&std::fs::read_to_string(deploy.join(file))?, Some(role))?;
        anyhow::ensure!(!grants.is_empty(), "no role {role} in deploy/{file}");
        if std::env::var_os("LABSCOPE_PRINT_RBAC").is_some() {
            for p in used.difference(&base) {
                println!("{role} USES {p:?}");
            }
        }
        let missing: Vec<&Permission> = used
            .difference(&base)
            .filter(|p| !grants.contains(*p))
            .collect();
        let extra: Vec<&Permission> = grants.difference(&used).collect();
        if !missing.is_empty() || !extra.is_empty() {
            problems.push(format!(
                "{role} (deploy/{file}) differs from what its operations do\n  \
                 missing (403 on a real cluster): {missing:?}\n  extra (never used): {extra:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// The fixture object of `kind` named `namespace/name`.
fn object(objects: &[Value], kind: &str, namespace: &str, name: &str) -> Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["namespace"] == namespace
                && o["metadata"]["name"] == name
        })
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} {namespace}/{name} in the homelab fixture"))
}

/// labscope's admission policy (deploy/components/mutations/
/// admission-policy.yaml) admits exactly the changes its operations make:
/// each operation's patch passes, and any other change to the same objects
/// by labscope's ServiceAccount is refused with the policy's message —
/// the paths from a Flux patch to cluster-admin (a Kustomization's path or
/// patches, a GitRepository's URL), a Deployment's image, an
/// ExternalSecret's remote key, labels and owners. Others' writes are not
/// its business.
#[test]
fn the_admission_policy_admits_only_what_the_operations_change() -> anyhow::Result<()> {
    use labscope_tests::admission::{
        LABSCOPE_USER, Request, admit, compile_errors, labscope_policy,
    };
    use labscope_tests::fake_controllers::merge_patch;
    let policy = labscope_policy();
    assert_eq!(policy.len(), 2, "the policy and its binding");
    let errors = compile_errors(&policy);
    assert!(errors.is_empty(), "{errors:#?}");
    let fixture = homelab(&["immich-stuck"])?;
    let ks = object(&fixture.objects, "Kustomization", "flux-system", "ingress");
    let git = object(
        &fixture.objects,
        "GitRepository",
        "flux-system",
        "flux-system",
    );
    let hr = object(&fixture.objects, "HelmRelease", "immich", "immich");
    let deploy = object(&fixture.objects, "Deployment", "jellyfin", "jellyfin");
    let es = object(
        &fixture.objects,
        "ExternalSecret",
        "immich",
        "immich-secret",
    );
    let check = |obj: &Value, resource: &str, user: &str, patch: Value| -> Result<(), String> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let mut new = obj.clone();
        merge_patch(&mut new, &patch);
        let r = Request {
            group,
            version,
            resource,
            operation: "UPDATE",
            namespace: obj["metadata"]["namespace"].as_str().unwrap_or_default(),
            name: obj["metadata"]["name"].as_str().unwrap_or_default(),
            username: user,
        };
        admit(&policy, &r, Some(obj), &new).map_err(|d| {
            assert_eq!((d.code, d.reason.as_str()), (422, "Invalid"), "{d:?}");
            assert!(
                d.message.contains("ValidatingAdmissionPolicy 'labscope-operations' with binding 'labscope-operations' denied request"),
                "{}",
                d.message
            );
            d.message
        })
    };
    let t = "2026-08-20T06:07:00Z";
    // What the operations send.
    let allowed: Vec<(&Value, &str, Value)> = vec![
        (
            &ks,
            "kustomizations",
            json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": t}}}),
        ),
        (&ks, "kustomizations", json!({"spec": {"suspend": true}})),
        (
            &ks,
            "kustomizations",
            json!({"spec": {"suspend": false}, "metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": t}}}),
        ),
        (
            &git,
            "gitrepositories",
            json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": t}}}),
        ),
        (
            &hr,
            "helmreleases",
            json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": t, "reconcile.fluxcd.io/resetAt": t}}}),
        ),
        (
            &deploy,
            "deployments",
            json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": t}}}}}),
        ),
        (
            &es,
            "externalsecrets",
            json!({"metadata": {"annotations": {"force-sync": "1755670020"}}}),
        ),
    ];
    for (obj, resource, patch) in allowed {
        check(obj, resource, LABSCOPE_USER, patch.clone())
            .unwrap_or_else(|e| panic!("{resource} {patch}: refused: {e}"));
    }
    // Anything else, and what it is refused with.
    let refused: Vec<(&Value, &str, Value, &str)> = vec![
        (
            &ks,
            "kustomizations",
            json!({"spec": {"path": "./evil"}}),
            "only spec.suspend",
        ),
        (
            &ks,
            "kustomizations",
            json!({"spec": {"patches": [{"patch": "x"}]}}),
            "only spec.suspend",
        ),
        (
            &ks,
            "kustomizations",
            json!({"spec": {"serviceAccountName": "x", "suspend": true}}),
            "only spec.suspend",
        ),
        (
            &ks,
            "kustomizations",
            json!({"spec": {"prune": null}}),
            "only spec.suspend",
        ),
        (
            &git,
            "gitrepositories",
            json!({"spec": {"url": "https://example.invalid/evil.git"}}),
            "only spec.suspend",
        ),
        (
            &ks,
            "kustomizations",
            json!({"metadata": {"labels": {"x": "y"}}}),
            "no labels, owners or finalizers",
        ),
        (
            &ks,
            "kustomizations",
            json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "1"}]}}),
            "no labels, owners or finalizers",
        ),
        (
            &ks,
            "kustomizations",
            json!({"metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}}}),
            "only the annotations",
        ),
        (
            &deploy,
            "deployments",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "jellyfin", "image": "evil"}]}}}}),
            "never the pod spec",
        ),
        (
            &deploy,
            "deployments",
            json!({"spec": {"template": {"metadata": {"labels": {"app": "x"}}}}}),
            "never the pod spec or its labels",
        ),
        (
            &deploy,
            "deployments",
            json!({"spec": {"template": {"metadata": {"annotations": {"other": "x"}}}}}),
            "restartedAt",
        ),
        (
            &deploy,
            "deployments",
            json!({"spec": {"replicas": 0}}),
            "only spec.suspend",
        ),
        (
            &es,
            "externalsecrets",
            json!({"spec": {"dataFrom": [{"extract": {"key": "everything"}}]}}),
            "only spec.suspend",
        ),
        (
            &es,
            "externalsecrets",
            json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": t}}}),
            "only the annotations",
        ),
    ];
    for (obj, resource, patch, expected) in refused {
        let e = check(obj, resource, LABSCOPE_USER, patch.clone())
            .err()
            .unwrap_or_else(|| panic!("{resource} {patch}: admitted"));
        assert!(e.contains(expected), "{resource} {patch}: {e}");
        // The policy is about labscope: Flux's own controllers and people
        // are not bound by it.
        check(
            obj,
            resource,
            "system:serviceaccount:flux-system:kustomize-controller",
            patch,
        )
        .expect("others' writes are admitted");
    }
    Ok(())
}

/// The fake API server runs the policy on every write, as the real one does:
/// a patch outside it answers 422 with the policy's message and changes
/// nothing.
#[tokio::test]
async fn the_fake_api_server_refuses_what_the_policy_refuses() -> anyhow::Result<()> {
    use http_body_util::BodyExt;
    let fake = labscope_tests::fake_kube::FakeKube::start(homelab(&[])?).await?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<hyper::body::Bytes>>();
    let url = format!(
        "{}/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/ingress",
        fake.url
    );
    let patch = |body: Value| {
        hyper::Request::patch(url.as_str())
            .header("content-type", "application/merge-patch+json")
            .body(http_body_util::Full::new(hyper::body::Bytes::from(
                body.to_string(),
            )))
    };
    let res = client
        .request(patch(json!({"spec": {"path": "./evil"}}))?)
        .await?;
    let code = res.status().as_u16();
    let body: Value = serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["reason"], "Invalid");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("kustomizations.kustomize.toolkit.fluxcd.io \"ingress\" is invalid: : ValidatingAdmissionPolicy 'labscope-operations'")),
        "{body}"
    );
    let res = client
        .request(hyper::Request::get(url.as_str()).body(http_body_util::Full::default())?)
        .await?;
    let now: Value = serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
    assert_ne!(
        now["spec"]["path"], "./evil",
        "a refused patch changed nothing"
    );
    let res = client
        .request(patch(json!({"spec": {"suspend": true}}))?)
        .await?;
    assert_eq!(res.status().as_u16(), 200);
    Ok(())
}
