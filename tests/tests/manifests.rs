//! The install as Flux would apply it: `deploy/base`, `deploy/overlays/homelab`
//! and `deploy/flux` render with `kubectl kustomize`, and the rendered objects
//! pass labscope's policy — no privileged container, no host PID/IPC,
//! capabilities exactly as stated, seccomp, resources, probes, Secrets that
//! something creates, Flux objects at current API versions. A negative test
//! proves each rule can fail.
//!
//! Every rendered object is also validated offline against schemas: built-in
//! kinds against the Kubernetes OpenAPI schemas of 1.31–1.34 in strict mode
//! (`kubernetes-validate`, PyPI), custom resources against the Flux,
//! cert-manager and external-secrets CRD schemas (`@kubernetes-models/*`,
//! npm) plus a strict unknown-field pass (`tests/schema/validate-crds.mjs`).
//! `scripts/test` installs both pinned (tests/schema/) and sets
//! `LABSCOPE_REQUIRE_SCHEMAS=1`, so in CI a missing validator is a failure.
//!
//! Needs `kubectl` (for its built-in kustomize); without it the tests say so
//! and skip.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The objects `kubectl kustomize DIR` renders, or None when kubectl is absent.
fn render(dir: &str) -> Option<Vec<Value>> {
    let out = match Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy().join(dir))
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIP: kubectl is not installed; cannot render deploy/{dir}");
            return None;
        }
        Err(e) => panic!("running kubectl: {e}"),
    };
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/{dir} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 manifests");
    Some(
        text.split("\n---\n")
            .filter(|d| !d.trim().is_empty())
            .map(|d| serde_saphyr::from_str::<Value>(d).expect("rendered YAML parses"))
            .collect(),
    )
}

/// The aggregator's config file as rendered (the ConfigMap `labscope-config-*`
/// mounted at /etc/labscope/config and named by `--config`), parsed as the
/// pod reads it. Every `*_file` it names must be a key of a Secret volume the
/// Deployment mounts at that directory, and that Secret must come from an
/// ExternalSecret that sets the key; those files are stood in for by a
/// temporary directory, since parsing reads them. Returns the text too.
fn rendered_config(docs: &[Value]) -> (String, labscope::config::file::Config) {
    let cm = docs
        .iter()
        .find(|d| {
            d["kind"] == "ConfigMap"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("labscope-config"))
        })
        .expect("the labscope-config ConfigMap");
    let text = cm["data"]["labscope.toml"]
        .as_str()
        .expect("labscope.toml in the ConfigMap")
        .to_string();
    let pod = &find(docs, "Deployment", "labscope")["spec"]["template"]["spec"];
    // The homelab overlay and the mutations component must not both add
    // the option, a volume or a mount (the API server refuses duplicates).
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let configs: Vec<&&str> = args.iter().filter(|a| a.starts_with("--config")).collect();
    assert_eq!(
        configs,
        [&"--config=/etc/labscope/config/labscope.toml"],
        "exactly one --config: {args:?}"
    );
    let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
    let mounts = pod["containers"][0]["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (what, list, field) in [
        ("volume", &volumes, "name"),
        ("mount", &mounts, "mountPath"),
    ] {
        let seen: BTreeSet<String> = list.iter().map(|v| v[field].to_string()).collect();
        assert_eq!(seen.len(), list.len(), "a {what} {field} twice: {list:?}");
    }
    let volume_at = |dir: &str| -> Option<Value> {
        let mount = mounts.iter().find(|m| m["mountPath"] == dir)?;
        volumes.iter().find(|v| v["name"] == mount["name"]).cloned()
    };
    let config_volume =
        volume_at("/etc/labscope/config").expect("a volume at /etc/labscope/config");
    assert_eq!(
        config_volume["configMap"]["name"], cm["metadata"]["name"],
        "the config volume names the generated ConfigMap"
    );

    let tmp = tempfile::tempdir().expect("temp dir");
    let mut parsed_text = text.clone();
    // Every `*_file` key at any depth of the file, with its table's path.
    fn file_keys(table: &toml::Table, at: &str, out: &mut Vec<(String, String)>) {
        for (k, v) in table {
            let key = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            match v {
                toml::Value::Table(t) => file_keys(t, &key, out),
                toml::Value::String(s) if k.ends_with("_file") => out.push((key, s.clone())),
                _ => {}
            }
        }
    }
    let table: toml::Table = text.parse().expect("labscope.toml is TOML");
    let mut files = Vec::new();
    file_keys(&table, "", &mut files);
    for (key, value) in &files {
        let (key, value) = (key.as_str(), value.as_str());
        let path = Path::new(value);
        let (dir, file) = (
            path.parent().and_then(Path::to_str).unwrap_or_default(),
            path.file_name()
                .and_then(|f| f.to_str())
                .unwrap_or_default(),
        );
        let volume = volume_at(dir)
            .unwrap_or_else(|| panic!("{key} = {value}: nothing is mounted at {dir}"));
        let secret = volume["secret"]["secretName"]
            .as_str()
            .unwrap_or_else(|| panic!("{key} = {value}: {dir} is not a Secret volume"));
        let external = docs
            .iter()
            .find(|d| d["kind"] == "ExternalSecret" && d["spec"]["target"]["name"] == secret)
            .unwrap_or_else(|| panic!("{key}: no ExternalSecret creates Secret {secret}"));
        let keys: BTreeSet<String> = external["spec"]["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["secretKey"].as_str().map(str::to_string))
            .collect();
        assert!(
            keys.contains(file),
            "{key} = {value}: Secret {secret} has no key {file} (its ExternalSecret sets {keys:?})"
        );
        let stand_in = tmp.path().join(secret);
        std::fs::create_dir_all(&stand_in).expect("stand-in dir");
        std::fs::write(stand_in.join(file), "stand-in secret\n").expect("stand-in file");
        parsed_text =
            parsed_text.replace(&format!("\"{dir}/"), &format!("\"{}/", stand_in.display()));
    }
    let config = labscope::config::file::Config::parse(Path::new("labscope.toml"), &parsed_text)
        .unwrap_or_else(|e| panic!("the shipped config does not parse: {e}"));
    (text, config)
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What each workload may add to its capabilities (after dropping ALL).
fn allowed_caps(workload: &str) -> Option<BTreeSet<String>> {
    match workload {
        "labscope-agent" => Some(["NET_ADMIN", "NET_RAW"].map(String::from).into()),
        "labscope" => Some(BTreeSet::new()),
        _ => None,
    }
}

/// The roles of labscope's operations: the only ones that may write.
const OPERATION_ROLES: [&str; 4] = [
    "labscope-flux-operate",
    "labscope-secret-refresh",
    "labscope-cronjob-trigger",
    "labscope-restart",
];

/// Resources no binding of labscope's may write anywhere, and those it may
/// never write in flux-system (whose ServiceAccounts are cluster-admin: a
/// Job, a pod or a patched controller Deployment there runs as them).
const NEVER_WRITTEN: [&str; 5] = [
    "secrets",
    "serviceaccounts",
    "pods",
    "roles",
    "rolebindings",
];
const NEVER_WRITTEN_IN_FLUX: [&str; 6] = [
    "deployments",
    "daemonsets",
    "statefulsets",
    "jobs",
    "cronjobs",
    "replicasets",
];

/// One permission of a role: (group, resource, verb, resourceNames).
type Grant = (String, String, String, BTreeSet<String>);

/// The permissions a binding's role grants, or None when the role is not
/// rendered.
fn role_rules(docs: &[Value], binding: &Value) -> Option<Vec<Grant>> {
    let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
    let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
    let ns = binding["metadata"]["namespace"].as_str();
    let role = docs.iter().find(|r| {
        r["kind"] == role_kind
            && r["metadata"]["name"] == role_name
            && (role_kind == "ClusterRole" || r["metadata"]["namespace"].as_str() == ns)
    })?;
    let mut out = Vec::new();
    for rule in role["rules"].as_array().cloned().unwrap_or_default() {
        for g in strings(&rule["apiGroups"]) {
            for r in strings(&rule["resources"]) {
                for v in strings(&rule["verbs"]) {
                    out.push((g.clone(), r.clone(), v, strings(&rule["resourceNames"])));
                }
            }
        }
    }
    Some(out)
}

/// What a (Cluster)RoleBinding breaks: no write cluster-wide, no write on
/// Secrets, ServiceAccounts, pods or RBAC anywhere, none on workloads or
/// Jobs in flux-system.
fn binding_violations(docs: &[Value], binding: &Value) -> Vec<String> {
    let kind = binding["kind"].as_str().unwrap_or_default();
    let at = format!(
        "{kind} {}/{}",
        binding["metadata"]["namespace"].as_str().unwrap_or("-"),
        binding["metadata"]["name"].as_str().unwrap_or_default()
    );
    let Some(rules) = role_rules(docs, binding) else {
        // Roles outside the install (e.g. a cluster's own) are not labscope's.
        return Vec::new();
    };
    let ns = binding["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    let mut bad = Vec::new();
    for (group, resource, verb, _) in rules {
        if matches!(verb.as_str(), "get" | "list" | "watch") {
            continue;
        }
        let what = format!("{verb} {resource}.{group}");
        if kind == "ClusterRoleBinding" {
            bad.push(format!("{at}: {what} cluster-wide (bind operations with RoleBindings where the config allows them)"));
        }
        if NEVER_WRITTEN.contains(&resource.as_str()) || group == "rbac.authorization.k8s.io" {
            bad.push(format!("{at}: {what}: labscope never writes these"));
        }
        if ns == "flux-system" && NEVER_WRITTEN_IN_FLUX.contains(&resource.as_str()) {
            bad.push(format!(
                "{at}: {what} in flux-system: runs code as its cluster-admin ServiceAccounts"
            ));
        }
    }
    bad
}

/// Every binding of an operation's role that its allowlist in the rendered
/// config does not name, and every allowlisted place left without one (the
/// operation would answer 403 there).
fn bindings_outside_allowlists(
    docs: &[Value],
    m: &labscope::config::file::Mutations,
) -> Vec<String> {
    let mut bad = Vec::new();
    let mut bound: BTreeSet<(String, String)> = BTreeSet::new();
    let restart_names = |ns: &str| -> BTreeSet<String> {
        m.restart
            .iter()
            .filter_map(|r| r.split_once('/'))
            .filter(|(n, _)| *n == ns)
            .map(|(_, name)| name.to_string())
            .collect()
    };
    for b in docs.iter().filter(|d| {
        matches!(
            d["kind"].as_str(),
            Some("RoleBinding" | "ClusterRoleBinding")
        )
    }) {
        let is_labscope = b["subjects"].as_array().is_some_and(|s| {
            s.iter()
                .any(|s| s["name"] == "labscope" && s["namespace"] == "labscope")
        });
        if !is_labscope {
            continue;
        }
        let role = b["roleRef"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ns = b["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let at = format!("{} {ns}/{role}", b["kind"].as_str().unwrap_or_default());
        let writes = role_rules(docs, b)
            .unwrap_or_default()
            .into_iter()
            .any(|(_, _, v, _)| !matches!(v.as_str(), "get" | "list" | "watch"));
        let allowed = match role.as_str() {
            "labscope-flux-operate" => m.flux_namespaces.contains(&ns),
            "labscope-secret-refresh" => m.secret_namespaces.contains(&ns),
            "labscope-cronjob-trigger" => m
                .trigger_namespaces
                .as_ref()
                .is_some_and(|t| t.contains(&ns)),
            "labscope-restart" => {
                let names = restart_names(&ns);
                let rules = role_rules(docs, b).unwrap_or_default();
                let ok = !names.is_empty()
                    && !rules.is_empty()
                    && rules.iter().all(|(g, r, v, rn)| {
                        g == "apps"
                            && r == "deployments"
                            && v == "patch"
                            && !rn.is_empty()
                            && rn.is_subset(&names)
                    });
                if !ok {
                    bad.push(format!(
                        "{at}: the Role must patch only the Deployments mutations.restart lists in {ns} ({names:?}), by resourceNames: {rules:?}"
                    ));
                }
                for (_, _, _, rn) in rules {
                    for name in rn {
                        bound.insert(("labscope-restart".into(), format!("{ns}/{name}")));
                    }
                }
                continue;
            }
            _ => !writes,
        };
        if b["kind"] == "ClusterRoleBinding" && writes {
            bad.push(format!("{at}: a write bound cluster-wide"));
        } else if !allowed {
            bad.push(format!(
                "{at}: bound where the config's allowlist for it does not allow changes"
            ));
        }
        bound.insert((role, ns));
    }
    let mut wanted: Vec<(String, String, &str)> = Vec::new();
    for ns in &m.flux_namespaces {
        wanted.push((
            "labscope-flux-operate".into(),
            ns.clone(),
            "mutations.flux_namespaces",
        ));
    }
    for ns in &m.secret_namespaces {
        wanted.push((
            "labscope-secret-refresh".into(),
            ns.clone(),
            "mutations.secret_namespaces",
        ));
    }
    for ns in m.trigger_namespaces.iter().flatten() {
        wanted.push((
            "labscope-cronjob-trigger".into(),
            ns.clone(),
            "mutations.trigger_namespaces",
        ));
    }
    for r in &m.restart {
        wanted.push(("labscope-restart".into(), r.clone(), "mutations.restart"));
    }
    for (role, place, rule) in wanted {
        if !bound.contains(&(role.clone(), place.clone())) {
            bad.push(format!(
                "{rule} allows {place} but {role} is not bound there (403)"
            ));
        }
    }
    bad
}

/// The host files a workload may mount: the agent the node's OS
/// description, read-only.
const HOST_PATHS: [&str; 1] = ["/etc/os-release"];

/// Every policy rule the rendered install breaks, one line each.
fn violations(docs: &[Value]) -> Vec<String> {
    let mut bad = Vec::new();
    let produced: BTreeSet<String> = docs
        .iter()
        .filter_map(|d| match d["kind"].as_str() {
            Some("Certificate") => d["spec"]["secretName"].as_str(),
            Some("ExternalSecret") => d["spec"]["target"]["name"]
                .as_str()
                .or(d["metadata"]["name"].as_str()),
            _ => None,
        })
        .map(str::to_string)
        .collect();
    for d in docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        let at = format!("{kind} {name}");
        if matches!(kind, "ClusterRole" | "Role") {
            for rule in d["rules"].as_array().cloned().unwrap_or_default() {
                let resources = strings(&rule["resources"]);
                let verbs = strings(&rule["verbs"]);
                if resources.contains("secrets") || resources.contains("*") {
                    bad.push(format!("{at}: grants {resources:?}"));
                }
                // Writes only in the operations' roles (bound per
                // namespace), and only patch and create.
                let writes_ok = OPERATION_ROLES.contains(&name);
                let extra: Vec<_> = verbs
                    .iter()
                    .filter(|v| {
                        let read = matches!(v.as_str(), "get" | "list" | "watch");
                        let write = writes_ok && matches!(v.as_str(), "patch" | "create");
                        !(read || write)
                    })
                    .collect();
                if !extra.is_empty() {
                    bad.push(format!("{at}: verbs beyond get/list/watch: {extra:?}"));
                }
                if kind == "ClusterRole" && verbs.contains("watch") {
                    bad.push(format!("{at}: watch cluster-wide"));
                }
            }
        }
        if matches!(kind, "ClusterRoleBinding" | "RoleBinding") {
            bad.extend(binding_violations(docs, d));
        }
        // An agent on every node: its pod may preempt lower-priority pods to
        // fit on a full node (a DaemonSet pod is placed by the scheduler).
        if kind == "PriorityClass" && d["preemptionPolicy"] != "PreemptLowerPriority" {
            bad.push(format!(
                "{at}: preemptionPolicy is not PreemptLowerPriority"
            ));
        }
        if !matches!(kind, "DaemonSet" | "Deployment" | "StatefulSet") {
            continue;
        }
        let pod = &d["spec"]["template"]["spec"];
        for host in ["hostPID", "hostIPC"] {
            if pod[host] == true {
                bad.push(format!("{at}: {host}"));
            }
        }
        let pod_seccomp = pod["securityContext"]["seccompProfile"]["type"].as_str();
        for v in pod["volumes"].as_array().cloned().unwrap_or_default() {
            if let Some(secret) = v["secret"]["secretName"].as_str()
                && !produced.contains(secret)
            {
                bad.push(format!("{at}: mounts Secret {secret} that nothing creates"));
            }
            if v["hostPath"].is_object()
                && !HOST_PATHS.contains(&v["hostPath"]["path"].as_str().unwrap_or_default())
            {
                bad.push(format!("{at}: hostPath {}", v["hostPath"]["path"]));
            }
        }
        let Some(caps_allowed) = allowed_caps(name) else {
            bad.push(format!("{at}: unknown workload"));
            continue;
        };
        if name != "labscope-agent" && pod["hostNetwork"] == true {
            bad.push(format!("{at}: hostNetwork"));
        }
        let containers = pod["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .chain(
                pod["initContainers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
        for c in containers {
            let at = format!("{at} container {}", c["name"].as_str().unwrap_or("?"));
            let sc = &c["securityContext"];
            if sc["privileged"] == true {
                bad.push(format!("{at}: privileged"));
            }
            if sc["allowPrivilegeEscalation"] != false {
                bad.push(format!("{at}: allowPrivilegeEscalation not false"));
            }
            for m in c["volumeMounts"].as_array().cloned().unwrap_or_default() {
                let host = pod["volumes"].as_array().and_then(|vs| {
                    vs.iter()
                        .find(|v| v["name"] == m["name"])
                        .and_then(|v| v["hostPath"]["path"].as_str().map(str::to_string))
                });
                if host.is_some() && m["readOnly"] != true {
                    bad.push(format!(
                        "{at}: host file {} mounted writable",
                        m["mountPath"]
                    ));
                }
            }
            if sc["readOnlyRootFilesystem"] != true {
                bad.push(format!("{at}: root filesystem writable"));
            }
            if strings(&sc["capabilities"]["drop"]) != BTreeSet::from(["ALL".to_string()]) {
                bad.push(format!("{at}: does not drop ALL capabilities"));
            }
            let added = strings(&sc["capabilities"]["add"]);
            if added != caps_allowed {
                bad.push(format!("{at}: adds {added:?}, expected {caps_allowed:?}"));
            }
            let seccomp = sc["seccompProfile"]["type"].as_str().or(pod_seccomp);
            if seccomp != Some("RuntimeDefault") {
                bad.push(format!(
                    "{at}: seccompProfile {seccomp:?}, not RuntimeDefault"
                ));
            }
            for (what, v) in [
                ("requests.cpu", &c["resources"]["requests"]["cpu"]),
                ("requests.memory", &c["resources"]["requests"]["memory"]),
                ("limits.memory", &c["resources"]["limits"]["memory"]),
            ] {
                if v.is_null() {
                    bad.push(format!("{at}: no {what}"));
                }
            }
            if c["readinessProbe"].is_null() || c["livenessProbe"].is_null() {
                bad.push(format!("{at}: readiness and liveness probes required"));
            }
            // The default of 1 s fails a health check on a busy Pi 3.
            for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                let p = &c[probe];
                if !p.is_null() && p["timeoutSeconds"].as_u64().unwrap_or(1) < 3 {
                    bad.push(format!("{at}: {probe} timeout under 3 s"));
                }
            }
        }
    }
    bad
}

#[test]
fn base_overlay_and_flux_render() {
    for dir in ["base", "overlays/homelab", "overlays/homelab-ops", "flux"] {
        let Some(docs) = render(dir) else { return };
        assert!(!docs.is_empty(), "deploy/{dir} renders nothing");
        for d in &docs {
            assert!(
                d["apiVersion"].is_string() && d["kind"].is_string(),
                "deploy/{dir}: object without apiVersion/kind: {d}"
            );
        }
    }
}

#[test]
fn homelab_overlay_passes_the_policy() {
    let Some(docs) = render("overlays/homelab") else {
        return;
    };
    let bad = violations(&docs);
    assert!(bad.is_empty(), "policy violations:\n{}", bad.join("\n"));

    let agent = find(&docs, "DaemonSet", "labscope-agent");
    let pod = &agent["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    // The node's IP alone: "$(HOST_IP):PORT" breaks on IPv6 nodes.
    let agent_args = strings(&pod["containers"][0]["args"]);
    for flag in ["--listen", "--health-listen"] {
        assert!(
            agent_args.contains(&format!("{flag}=$(HOST_IP)")),
            "{flag} should be the node IP alone: {agent_args:?}"
        );
    }
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["priorityClassName"], "labscope-agent");
    find(&docs, "PriorityClass", "labscope-agent");
    for t in pod["tolerations"].as_array().expect("tolerations") {
        assert!(t["key"].is_string(), "blanket toleration {t}");
        assert_ne!(t["effect"], "NoExecute", "rides out evictions: {t}");
    }
    let batch =
        json!({"key": "role", "operator": "Equal", "value": "batch", "effect": "NoSchedule"});
    assert!(
        pod["tolerations"].as_array().unwrap().contains(&batch),
        "the Pi 3's role=batch:NoSchedule is not tolerated"
    );
    let c = &pod["containers"][0];
    assert!(
        c["readinessProbe"]["grpc"].is_object(),
        "readiness must prove gRPC health"
    );
    let host_ip = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "HOST_IP")
        .expect("HOST_IP");
    assert_eq!(
        host_ip["valueFrom"]["fieldRef"]["fieldPath"],
        "status.hostIP"
    );

    let agg = find(&docs, "Deployment", "labscope");
    let pod = &agg["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(c[probe]["httpGet"]["path"], "/healthz", "{probe}");
    }
    let args = strings(&c["args"]);
    assert!(
        args.contains("--allowed-host=labscope.lab.mtgibbs.dev"),
        "{args:?}"
    );
    let ingress = find(&docs, "Ingress", "labscope");
    assert_eq!(
        ingress["spec"]["rules"][0]["host"],
        "labscope.lab.mtgibbs.dev"
    );
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["path"],
        "/mcp"
    );

    // The dedicated CA chain: selfSigned -> CA Certificate -> CA Issuer -> leaves.
    let ca = find(&docs, "Certificate", "labscope-ca");
    assert_eq!(ca["spec"]["isCA"], true);
    assert_eq!(ca["spec"]["issuerRef"]["name"], "labscope-selfsigned");
    assert!(find(&docs, "Issuer", "labscope-selfsigned")["spec"]["selfSigned"].is_object());
    assert_eq!(
        find(&docs, "Issuer", "labscope-ca")["spec"]["ca"]["secretName"],
        "labscope-ca"
    );
    for (cert, usage, name) in [
        ("labscope-agent-tls", "server auth", "labscope-agent"),
        ("labscope-client-tls", "client auth", "labscope-aggregator"),
    ] {
        let c = find(&docs, "Certificate", cert);
        assert_eq!(c["spec"]["issuerRef"]["name"], "labscope-ca", "{cert}");
        assert!(strings(&c["spec"]["usages"]).contains(usage), "{cert}");
        assert!(strings(&c["spec"]["dnsNames"]).contains(name), "{cert}");
    }
    // The agent's default --client-identity and the aggregator's
    // --agent-tls-domain are the names the certificates carry.
    assert!(
        args.contains("--agent-tls-domain=labscope-agent"),
        "{args:?}"
    );

    // The services are configured, their secrets from the ExternalSecret,
    // read-only (operations need the homelab-ops overlay).
    let (_, config) = rendered_config(&docs);
    for (name, service) in [
        ("pihole.primary", &config.pihole_primary),
        ("pihole.secondary", &config.pihole_secondary),
        ("jellyfin", &config.jellyfin),
        ("immich", &config.immich),
    ] {
        let service = service
            .as_ref()
            .unwrap_or_else(|| panic!("[{name}] is not configured"));
        assert!(
            service.secret_origin.starts_with("file "),
            "[{name}]: {}",
            service.secret_origin
        );
    }
    assert_eq!(config.dns_servers, ["192.168.1.55", "192.168.1.56"]);
    assert!(!config.mutations.enabled);
}

#[test]
fn the_policy_catches_each_rule() {
    let Some(docs) = render("overlays/homelab") else {
        return;
    };
    let agent = docs
        .iter()
        .position(|d| d["kind"] == "DaemonSet")
        .expect("agent DaemonSet");
    type Breaker = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Breaker)> = vec![
        (
            "privileged",
            Box::new(|d| {
                d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] =
                    json!(true)
            }),
        ),
        (
            "hostPID",
            Box::new(|d| d["spec"]["template"]["spec"]["hostPID"] = json!(true)),
        ),
        (
            "livenessProbe timeout under 3 s",
            Box::new(|d| {
                d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
                    .as_object_mut()
                    .expect("liveness probe")
                    .remove("timeoutSeconds");
            }),
        ),
        (
            "adds",
            Box::new(|d| {
                d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]
                    ["add"] = json!(["NET_ADMIN", "NET_RAW", "SYS_ADMIN"])
            }),
        ),
        (
            "seccompProfile",
            Box::new(|d| d["spec"]["template"]["spec"]["securityContext"] = json!({})),
        ),
        (
            "limits.memory",
            Box::new(|d| {
                d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = json!({})
            }),
        ),
        (
            "nothing creates",
            Box::new(|d| {
                d["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] =
                    json!("made-up")
            }),
        ),
        (
            "mounted writable",
            Box::new(|d| {
                for m in d["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    if m["name"] == "host-os-release" {
                        m["readOnly"] = json!(false);
                    }
                }
            }),
        ),
        (
            "hostPath",
            Box::new(|d| {
                d["spec"]["template"]["spec"]["volumes"][1]["hostPath"]["path"] = json!("/")
            }),
        ),
    ];
    for (expected, mutate) in cases {
        let mut broken = docs.clone();
        mutate(&mut broken[agent]);
        let bad = violations(&broken);
        assert!(
            bad.iter().any(|b| b.contains(expected)),
            "breaking {expected:?} went unnoticed: {bad:?}"
        );
    }
    let mut broken = docs.clone();
    broken
        .iter_mut()
        .find(|d| d["kind"] == "PriorityClass")
        .expect("PriorityClass")["preemptionPolicy"] = json!("Never");
    let bad = violations(&broken);
    assert!(
        bad.iter().any(|b| b.contains("preemptionPolicy")),
        "a PriorityClass that never preempts went unnoticed: {bad:?}"
    );
    let mut broken = docs.clone();
    let role = broken
        .iter_mut()
        .find(|d| d["kind"] == "ClusterRole")
        .expect("ClusterRole");
    role["rules"][0]["verbs"] = json!(["get", "list", "watch", "delete"]);
    let bad = violations(&broken);
    assert!(bad.iter().any(|b| b.contains("delete")), "{bad:?}");
    assert!(
        bad.iter().any(|b| b.contains("watch cluster-wide")),
        "{bad:?}"
    );
    // The operations' roles: patch and create only, never bound
    // cluster-wide, never a write on workloads or Jobs in flux-system.
    let Some(ops) = render("overlays/homelab-ops") else {
        return;
    };
    let binding = |kind: &str, ns: Option<&str>, role_kind: &str, role: &str| {
        let mut b = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "labscope", "namespace": "labscope"}]});
        if let Some(ns) = ns {
            b["metadata"]["namespace"] = json!(ns);
        }
        b
    };
    let mut broken = ops.clone();
    let role = broken
        .iter_mut()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "labscope-flux-operate")
        .expect("labscope-flux-operate");
    role["rules"][0]["verbs"] = json!(["patch", "delete"]);
    broken.push(binding(
        "ClusterRoleBinding",
        None,
        "ClusterRole",
        "labscope-flux-operate",
    ));
    broken.push(binding(
        "RoleBinding",
        Some("flux-system"),
        "ClusterRole",
        "labscope-cronjob-trigger",
    ));
    let bad = violations(&broken);
    for expected in [
        ["labscope-flux-operate", "delete"],
        ["ClusterRoleBinding", "cluster-wide"],
        [
            "flux-system/labscope-cronjob-trigger",
            "create jobs.batch in flux-system",
        ],
    ] {
        assert!(
            bad.iter().any(|b| expected.iter().all(|e| b.contains(e))),
            "{expected:?} went unnoticed: {bad:?}"
        );
    }
    // A role of labscope's own that writes Secrets or RBAC, anywhere.
    let mut broken = ops.clone();
    broken.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "labscope-restart", "namespace": "media"},
        "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["create"]}]}));
    broken.push(binding(
        "RoleBinding",
        Some("media"),
        "Role",
        "labscope-restart",
    ));
    let bad = violations(&broken);
    assert!(
        bad.iter()
            .any(|b| b.contains("create rolebindings") && b.contains("never writes")),
        "{bad:?}"
    );
}

#[test]
fn flux_objects_point_at_the_overlay_at_current_versions() {
    let Some(docs) = render("flux") else { return };
    for d in &docs {
        let (kind, api) = (
            d["kind"].as_str().unwrap(),
            d["apiVersion"].as_str().unwrap(),
        );
        let want = match kind {
            "GitRepository" | "OCIRepository" => "source.toolkit.fluxcd.io/v1",
            "Kustomization" => "kustomize.toolkit.fluxcd.io/v1",
            "ImageRepository" | "ImagePolicy" | "ImageUpdateAutomation" => {
                "image.toolkit.fluxcd.io/v1"
            }
            other => panic!("unexpected {other} in deploy/flux"),
        };
        assert_eq!(api, want, "{kind} {}", d["metadata"]["name"]);
    }
    let ks = find(&docs, "Kustomization", "labscope");
    let path = ks["spec"]["path"].as_str().unwrap();
    assert_eq!(path, "./deploy/overlays/homelab");
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path)
            .join("kustomization.yaml")
            .exists(),
        "{path} does not exist in the repository"
    );
    assert_eq!(ks["spec"]["prune"], true);
    assert_eq!(ks["spec"]["wait"], true);
    let deps: BTreeSet<String> = ks["spec"]["dependsOn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    for need in ["cert-manager-config", "external-secrets-config"] {
        assert!(
            deps.contains(need),
            "labscope must wait for {need}: {deps:?}"
        );
    }
    assert_eq!(
        ks["spec"]["sourceRef"]["name"],
        find(&docs, "GitRepository", "labscope")["metadata"]["name"]
    );
    for repo in docs.iter().filter(|d| d["kind"] == "ImageRepository") {
        assert!(repo["spec"]["secretRef"]["name"].is_string(), "{repo}");
    }
    let automation = find(&docs, "ImageUpdateAutomation", "labscope");
    assert_eq!(automation["spec"]["update"]["path"], path);
    assert_eq!(automation["spec"]["update"]["strategy"], "Setters");

    // Every setter marker in the overlay names an ImagePolicy that exists.
    let overlay =
        std::fs::read_to_string(deploy().join("overlays/homelab/kustomization.yaml")).unwrap();
    let markers: Vec<&str> = overlay
        .lines()
        .filter_map(|l| l.split("\"$imagepolicy\": \"").nth(1))
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(markers.len(), 2, "{markers:?}");
    for marker in markers {
        let mut parts = marker.split(':');
        let (ns, name) = (parts.next().unwrap(), parts.next().unwrap());
        let policy = find(&docs, "ImagePolicy", name);
        assert_eq!(policy["metadata"]["namespace"], ns, "{marker}");
    }
}

/// The Kubernetes versions the install must validate against.
const KUBE_VERSIONS: [&str; 4] = ["1.31.0", "1.32.0", "1.33.0", "1.34.0"];

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema")
}

/// The offline validators, or None (with the reason printed) when they are
/// not installed and CI did not ask for them.
struct Validators {
    kubernetes_validate: PathBuf,
    validate_crds: PathBuf,
}

fn validators() -> Option<Validators> {
    let dir = schema_dir();
    let v = Validators {
        kubernetes_validate: dir.join(".venv/bin/kubernetes-validate"),
        validate_crds: dir.join("validate-crds.mjs"),
    };
    let mut missing = Vec::new();
    if !v.kubernetes_validate.exists() {
        missing.push("kubernetes-validate (tests/schema/.venv)");
    }
    if !dir.join("node_modules/@kubernetes-models/flux-cd").exists() {
        missing.push("@kubernetes-models/* (tests/schema/node_modules)");
    }
    if missing.is_empty() {
        return Some(v);
    }
    let msg = format!(
        "schema validators not installed: {}; scripts/test installs them",
        missing.join(", ")
    );
    if std::env::var_os("LABSCOPE_REQUIRE_SCHEMAS").is_some_and(|v| v == "1") {
        panic!("{msg}");
    }
    eprintln!("SKIP: {msg}");
    None
}

/// Built-in Kubernetes kinds (core, apps, *.k8s.io) as opposed to custom
/// resources.
fn is_builtin(d: &Value) -> bool {
    let api = d["apiVersion"].as_str().unwrap_or_default();
    match api.split_once('/') {
        None => true,
        Some((group, _)) => !group.contains('.') || group.ends_with(".k8s.io"),
    }
}

/// Problems `kubernetes-validate --strict` finds in the built-in objects, for
/// each Kubernetes version; a built-in kind without a schema is a problem.
fn kube_problems(v: &Validators, docs: &[&Value]) -> Vec<String> {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    let text: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
    std::io::Write::write_all(&mut file, text.join("\n---\n").as_bytes()).expect("write objects");
    let mut problems = Vec::new();
    for version in KUBE_VERSIONS {
        let out = Command::new(&v.kubernetes_validate)
            .args(["--strict", "--quiet", "-k", version])
            .arg(file.path())
            .output()
            .expect("running kubernetes-validate");
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        for line in said.lines().filter(|l| !l.trim().is_empty()) {
            problems.push(format!("{version}: {line}"));
        }
        if !out.status.success() && said.trim().is_empty() {
            problems.push(format!(
                "{version}: kubernetes-validate failed ({})",
                out.status
            ));
        }
    }
    problems
}

/// Problems `validate-crds.mjs` finds in the custom resources.
fn crd_problems(v: &Validators, docs: &[&Value]) -> Vec<String> {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    serde_json::to_writer(&mut file, docs).expect("write objects");
    let out = Command::new("node")
        .arg(&v.validate_crds)
        .arg(file.path())
        .output()
        .expect("running node tests/schema/validate-crds.mjs");
    let mut problems: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    if !out.status.success() && problems.is_empty() {
        problems.push(format!(
            "validate-crds.mjs failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    problems
}

fn schema_problems(v: &Validators, docs: &[Value]) -> (Vec<String>, Vec<String>) {
    let (builtin, custom): (Vec<&Value>, Vec<&Value>) = docs.iter().partition(|d| is_builtin(d));
    let kube = if builtin.is_empty() {
        Vec::new()
    } else {
        kube_problems(v, &builtin)
    };
    let crd = if custom.is_empty() {
        Vec::new()
    } else {
        crd_problems(v, &custom)
    };
    (kube, crd)
}

#[test]
fn every_rendered_object_validates_against_its_schema() {
    let Some(v) = validators() else { return };
    for dir in ["base", "overlays/homelab", "overlays/homelab-ops", "flux"] {
        let Some(docs) = render(dir) else { return };
        let (kube, crd) = schema_problems(&v, &docs);
        assert!(
            kube.is_empty() && crd.is_empty(),
            "deploy/{dir} does not validate:\n{}",
            kube.iter()
                .chain(&crd)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Each kind of mistake the validators must catch: an unknown field and a
/// wrong type in a built-in object (every Kubernetes version), a missing
/// required field, a wrong type and an unknown field in custom resources.
#[test]
fn the_schema_validation_catches_wrong_fields() {
    let Some(v) = validators() else { return };
    let Some(overlay) = render("overlays/homelab") else {
        return;
    };
    let Some(flux) = render("flux") else { return };

    let mutate = |docs: &[Value], kind: &str, f: &dyn Fn(&mut Value)| -> Vec<Value> {
        let mut docs = docs.to_vec();
        let d = docs
            .iter_mut()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} rendered"));
        f(d);
        docs
    };
    let cases: Vec<(&str, Vec<Value>, &str)> = vec![
        (
            "unknown Deployment field",
            mutate(&overlay, "Deployment", &|d| {
                d["spec"]["replicaz"] = json!(1)
            }),
            "replicaz",
        ),
        (
            "containerPort as a string",
            mutate(&overlay, "DaemonSet", &|d| {
                d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] =
                    json!("grpc")
            }),
            "containerPort",
        ),
        (
            "ImagePolicy semver range misspelled",
            mutate(&flux, "ImagePolicy", &|d| {
                let semver = &mut d["spec"]["policy"]["semver"];
                let range = semver["range"].take();
                semver.as_object_mut().unwrap().remove("range");
                semver["rnage"] = range;
            }),
            "range",
        ),
        (
            "Kustomization prune as a string",
            mutate(&flux, "Kustomization", &|d| {
                d["spec"]["prune"] = json!("yes")
            }),
            "prune",
        ),
        (
            "unknown Certificate field",
            mutate(&overlay, "Certificate", &|d| {
                d["spec"]["isCa"] = json!(true)
            }),
            "isCa",
        ),
        (
            "Flux kind at an API version that does not serve it",
            mutate(&flux, "GitRepository", &|d| {
                d["apiVersion"] = json!("source.toolkit.fluxcd.io/v9")
            }),
            "GitRepository",
        ),
    ];
    for (what, docs, needle) in cases {
        let (kube, crd) = schema_problems(&v, &docs);
        let all: Vec<String> = kube.iter().chain(&crd).cloned().collect();
        assert!(
            all.iter().any(|p| p.contains(needle)),
            "{what}: not caught (problems: {all:?})"
        );
        if kube.iter().any(|p| p.contains(needle)) {
            for version in KUBE_VERSIONS {
                assert!(
                    kube.iter()
                        .any(|p| p.starts_with(version) && p.contains(needle)),
                    "{what}: not caught for Kubernetes {version}: {kube:?}"
                );
            }
        }
    }
}

/// The homelab with operations on: the same policy holds, the aggregator
/// reads the config the overlay ships (a valid labscope config), and each
/// operation's role is bound — by RoleBindings, never cluster-wide — in
/// exactly the places its allowlist in that config names, restart by
/// Deployment name.
#[test]
fn homelab_ops_overlay_binds_mutations_where_the_config_allows_them() {
    let Some(docs) = render("overlays/homelab-ops") else {
        return;
    };
    let bad = violations(&docs);
    assert!(bad.is_empty(), "policy violations:\n{}", bad.join("\n"));
    let (text, config) = rendered_config(&docs);
    let m = &config.mutations;
    assert!(m.enabled && m.audit_log.is_some());
    // The ops overlay's file replaces the homelab's: it must keep the
    // services, so it starts with the homelab's text.
    let homelab = std::fs::read_to_string(deploy().join("overlays/homelab/labscope.toml"))
        .expect("deploy/overlays/homelab/labscope.toml");
    assert!(
        text.starts_with(&homelab),
        "deploy/overlays/homelab-ops/labscope.toml must start with the homelab's labscope.toml"
    );

    let agg = find(&docs, "Deployment", "labscope");
    let pod = &agg["spec"]["template"]["spec"];
    let audit_dir = m
        .audit_log
        .as_ref()
        .and_then(|p| p.parent())
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mounts = pod["containers"][0]["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        mounts
            .iter()
            .any(|v| v["mountPath"] == audit_dir.as_str() && v["readOnly"] != true),
        "the audit log's directory {audit_dir} is writable (read-only root filesystem)"
    );

    let bad = bindings_outside_allowlists(&docs, m);
    assert!(
        bad.is_empty(),
        "bindings and allowlists disagree:\n{}",
        bad.join("\n")
    );
    // The admission policy that bounds the fields comes with them.
    find(&docs, "ValidatingAdmissionPolicy", "labscope-operations");
    let vapb = find(
        &docs,
        "ValidatingAdmissionPolicyBinding",
        "labscope-operations",
    );
    assert_eq!(vapb["spec"]["validationActions"], json!(["Deny"]));

    // Each way of disagreeing is caught.
    let rb = |role: &str, ns: &str, role_kind: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": role, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "labscope", "namespace": "labscope"}]})
    };
    let without = |role: &str, ns: &str| -> Vec<Value> {
        docs.iter()
            .filter(|d| {
                !(d["kind"] == "RoleBinding"
                    && d["metadata"]["name"] == role
                    && d["metadata"]["namespace"] == ns)
            })
            .cloned()
            .collect()
    };
    let cases: Vec<(&str, Vec<Value>)> = vec![
        (
            "mutations.flux_namespaces allows immich",
            without("labscope-flux-operate", "immich"),
        ),
        (
            "mutations.trigger_namespaces allows backup-jobs",
            without("labscope-cronjob-trigger", "backup-jobs"),
        ),
        (
            "RoleBinding kube-system/labscope-flux-operate: bound where",
            {
                let mut d = docs.clone();
                d.push(rb("labscope-flux-operate", "kube-system", "ClusterRole"));
                d
            },
        ),
        (
            "RoleBinding jellyfin/labscope-secret-refresh: bound where",
            {
                let mut d = docs.clone();
                d.push(rb("labscope-secret-refresh", "jellyfin", "ClusterRole"));
                d
            },
        ),
        ("mutations.restart lists in jellyfin", {
            let mut d = docs.clone();
            for o in d.iter_mut() {
                if o["kind"] == "Role" && o["metadata"]["name"] == "labscope-restart" {
                    o["rules"][0]["resourceNames"] = json!(["jellyfin", "pihole"]);
                }
            }
            d
        }),
        ("mutations.restart lists in jellyfin", {
            let mut d = docs.clone();
            for o in d.iter_mut() {
                if o["kind"] == "Role" && o["metadata"]["name"] == "labscope-restart" {
                    o["rules"][0]
                        .as_object_mut()
                        .map(|r| r.remove("resourceNames"));
                }
            }
            d
        }),
    ];
    for (expected, broken) in cases {
        let bad = bindings_outside_allowlists(&broken, m);
        assert!(
            bad.iter().any(|b| b.contains(expected)),
            "{expected:?} went unnoticed: {bad:?}"
        );
    }
    // A label-only trigger allowlist allows no binding of the trigger role.
    let mut label_only = m.clone();
    label_only.trigger_namespaces = None;
    let bad = bindings_outside_allowlists(&docs, &label_only);
    assert!(
        bad.iter()
            .any(|b| b.contains("backup-jobs/labscope-cronjob-trigger: bound where")),
        "{bad:?}"
    );
}

/// The release workflow builds what `scripts/images` builds here: the
/// binaries of every platform it publishes put in the one build context by
/// `scripts/images --context-only`, the Containerfiles that exist, amd64 and
/// arm64 only (every Pi runs a 64-bit OS), and nothing pushed from a pull
/// request.
#[test]
fn the_image_workflow_builds_what_scripts_images_builds() {
    let root = deploy().join("..");
    let text = std::fs::read_to_string(root.join(".github/workflows/images.yml"))
        .expect("the images workflow");
    let wf: Value = serde_saphyr::from_str(&text).expect("the workflow parses");
    let on = &wf["on"];
    assert!(
        on["pull_request"].is_object(),
        "no pull-request build: {on}"
    );
    assert!(
        on["push"]["tags"].is_array(),
        "no build on version tags: {on}"
    );
    let steps: Vec<&Value> = wf["jobs"]
        .as_object()
        .expect("jobs")
        .values()
        .flat_map(|j| j["steps"].as_array().into_iter().flatten())
        .collect();
    let runs: String = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let builds: Vec<&&Value> = steps
        .iter()
        .filter(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("docker/build-push-action@"))
        })
        .collect();
    let files: BTreeSet<&str> = builds
        .iter()
        .filter_map(|b| b["with"]["file"].as_str())
        .collect();
    assert_eq!(
        files,
        BTreeSet::from([
            "deploy/Containerfile.agent",
            "deploy/Containerfile.aggregator"
        ]),
        "one build per image"
    );
    for b in &builds {
        let with = &b["with"];
        let file = with["file"].as_str().unwrap_or_default();
        assert!(root.join(file).is_file(), "{file} does not exist");
        assert_eq!(
            with["context"], "target/images",
            "{file}: the build context"
        );
        let push = with["push"].as_str().unwrap_or_default();
        assert!(
            push.contains("github.event_name != 'pull_request'"),
            "{file} may push from a pull request: push = {push:?}"
        );
        let platforms = with["platforms"].as_str().unwrap_or_default();
        assert_eq!(platforms, "linux/amd64,linux/arm64", "{file}: platforms");
        for platform in platforms.split(',') {
            let arch = platform.trim_start_matches("linux/");
            assert!(
                runs.contains(&format!("scripts/images --arch {arch} --context-only")),
                "{file}: nothing puts the {arch} binaries in the build context"
            );
        }
        // The Containerfile copies from its platform's directory.
        let containerfile = std::fs::read_to_string(root.join(file)).expect("Containerfile");
        assert!(
            containerfile.contains("ARG TARGETARCH") && containerfile.contains("${TARGETARCH}/"),
            "{file} does not copy from target/images/<arch>/"
        );
    }
    for login in steps.iter().filter(|s| {
        s["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("docker/login-action@"))
    }) {
        assert!(
            login["if"]
                .as_str()
                .is_some_and(|c| c.contains("!= 'pull_request'")),
            "the registry login runs for pull requests"
        );
    }
}
