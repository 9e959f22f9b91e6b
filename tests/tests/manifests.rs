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

use std::collections::{BTreeMap, BTreeSet};
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

/// Parses rendered YAML text into objects.
fn parse_docs(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str::<Value>(d).expect("rendered YAML parses"))
        .collect()
}

/// Flux's post-build substitution as kustomize-controller does it with
/// `StrictPostBuildSubstitutions`: `${NAME}`, `${NAME:=default}` and
/// `${NAME:-default}` (default when unset or empty), `${NAME=default}` and
/// `${NAME-default}` (default when unset); `$${` is an escaped `${`; `$NAME`
/// and `$(NAME)` stay as they are (Kubernetes' own `$(HOST_IP)`). A variable
/// with neither a value nor a default is an error, as is any other form
/// (the install must use only what every Flux release substitutes).
fn flux_substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if rest.starts_with("$${") {
            out.push_str("${");
            rest = &rest[3..];
            continue;
        }
        if !rest.starts_with("${") {
            out.push('$');
            rest = &rest[1..];
            continue;
        }
        let Some(end) = rest.find('}') else {
            errors.push(format!("unclosed {}", &rest[..rest.len().min(40)]));
            break;
        };
        let inner = &rest[2..end];
        rest = &rest[end + 1..];
        let name_len = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        let (name, op) = inner.split_at(name_len);
        let value = vars.get(name);
        let set_nonempty = value.is_some_and(|v| !v.is_empty());
        let resolved = match op {
            "" => value.cloned(),
            _ if op.starts_with(":=") || op.starts_with(":-") => Some(if set_nonempty {
                value.unwrap().clone()
            } else {
                op[2..].to_string()
            }),
            _ if op.starts_with('=') || op.starts_with('-') => {
                Some(value.cloned().unwrap_or_else(|| op[1..].to_string()))
            }
            _ => {
                errors.push(format!("${{{inner}}}: a form this install must not use"));
                Some(String::new())
            }
        };
        match resolved {
            Some(v) => out.push_str(&v),
            None => errors.push(format!("${{{name}}} has no value and no default")),
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Every Flux variable `${NAME…}` in `text`, with whether it has a default.
fn flux_variables(text: &str) -> BTreeMap<String, bool> {
    let mut vars = BTreeMap::new();
    for (i, _) in text.match_indices("${") {
        if i > 0 && text.as_bytes()[i - 1] == b'$' {
            continue;
        }
        let inner = &text[i + 2..];
        let inner = &inner[..inner.find('}').unwrap_or(inner.len())];
        let n = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        let defaulted = n < inner.len();
        let e = vars.entry(inner[..n].to_string()).or_insert(defaulted);
        *e = *e && defaulted;
    }
    vars
}

/// deploy/flux/settings.example.yaml: the settings it sets, and every
/// setting it documents (set, or commented out as `# NAME: value`).
fn example_settings() -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let text = std::fs::read_to_string(deploy().join("flux/settings.example.yaml")).unwrap();
    let doc: Value = serde_saphyr::from_str(&text).expect("settings example parses");
    assert_eq!(doc["kind"], "ConfigMap");
    assert_eq!(doc["metadata"]["name"], "labscope-settings");
    assert_eq!(doc["metadata"]["namespace"], "flux-system");
    let set: BTreeMap<String, String> = doc["data"]
        .as_object()
        .expect("data")
        .iter()
        .map(|(k, v)| {
            let v = v.as_str().unwrap_or_else(|| panic!("{k}: not a string"));
            (k.clone(), v.to_string())
        })
        .collect();
    let mut documented = set.clone();
    for line in text.lines() {
        let l = line.trim_start().trim_start_matches('#').trim_start();
        if let Some((k, v)) = l.split_once(':')
            && k.starts_with("LABSCOPE_")
            && k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        {
            documented
                .entry(k.to_string())
                .or_insert_with(|| v.trim().trim_matches('"').to_string());
        }
    }
    (set, documented)
}

/// `deploy/overlays/install` as Flux builds it from the release artifact
/// (deploy/) with `spec.components` (paths relative to the install, as in
/// deploy/flux/labscope.yaml): the components are added to the install's
/// own kustomization.yaml, then `kubectl kustomize` renders it. Returns the
/// text before substitution, or None when kubectl is absent.
fn render_install(components: &[&str]) -> Option<String> {
    let tmp = tempfile::tempdir().expect("temp dir");
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dest = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &dest);
            } else {
                std::fs::copy(e.path(), dest).unwrap();
            }
        }
    }
    copy(&deploy(), tmp.path());
    let k = tmp.path().join("overlays/install/kustomization.yaml");
    let mut kustomization: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&k).unwrap()).unwrap();
    let list = kustomization["components"]
        .as_array_mut()
        .expect("the install has components");
    for c in components {
        list.push(json!(c));
    }
    std::fs::write(&k, kustomization.to_string()).unwrap();
    let out = match Command::new("kubectl")
        .arg("kustomize")
        .arg(tmp.path().join("overlays/install"))
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIP: kubectl is not installed; cannot render deploy/overlays/install");
            return None;
        }
        Err(e) => panic!("running kubectl: {e}"),
    };
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/overlays/install with {components:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("utf-8 manifests"))
}

/// The ways in to /mcp, each with what it needs beyond the example's
/// settings: the install renders with each, and with monitoring.
const WAYS_IN: [&[&str]; 4] = [
    &["../../components/ingress-traefik"],
    &["../../components/ingress-nginx"],
    &["../../components/gateway-api"],
    &[
        "../../components/ingress-traefik",
        "../../components/monitoring",
    ],
];

/// The install with the example's settings (all documented ones for the
/// gateway), substituted as Flux does.
fn install_with_example_settings(components: &[&str]) -> Option<Vec<Value>> {
    let text = render_install(components)?;
    let (mut vars, documented) = example_settings();
    if components.iter().any(|c| c.ends_with("gateway-api")) {
        for (k, v) in &documented {
            if k.starts_with("LABSCOPE_GATEWAY") {
                vars.insert(k.clone(), v.clone());
            }
        }
    }
    let text = flux_substitute(&text, &vars)
        .unwrap_or_else(|e| panic!("the install with {components:?} does not substitute: {e:?}"));
    Some(parse_docs(&text))
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
        // `dataFrom: extract` makes a key of every field of the store's item:
        // which fields exist is the store's (deploy/overlays/install).
        let extracts = external["spec"]["dataFrom"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d["extract"]["key"].is_string()));
        assert!(
            extracts || keys.contains(file),
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
fn the_test_substitutes_as_flux_does() {
    let vars: BTreeMap<String, String> = [("A", "1"), ("E", "")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let ok = |t: &str| flux_substitute(t, &vars).unwrap();
    assert_eq!(
        ok("a=${A} b=${B:=x} e=${E:=x} f=${E=x} g=${B-y} h=${E:-z}"),
        "a=1 b=x e=x f= g=y h=z"
    );
    assert_eq!(ok("$(HOST_IP) $A $${A} $"), "$(HOST_IP) $A ${A} $");
    assert!(
        flux_substitute("${B}", &vars).is_err(),
        "strict: no value, no default"
    );
    assert!(
        flux_substitute("${A:?oops}", &vars).is_err(),
        "unsupported form"
    );
    assert_eq!(
        flux_variables("${A} ${B:=x} $${C} ${B}"),
        BTreeMap::from([("A".to_string(), false), ("B".to_string(), false)])
    );
}

/// The install a stranger gets: the example's settings, each way in to
/// /mcp, the same policy as the homelab, nothing left unsubstituted, the
/// release's own images, the services configured from the settings.
#[test]
fn the_install_renders_with_the_example_settings_for_every_way_in() {
    let (settings, _) = example_settings();
    let host = settings["LABSCOPE_HOST"].as_str();
    for components in WAYS_IN {
        let Some(docs) = install_with_example_settings(components) else {
            return;
        };
        let at = format!("install with {components:?}");
        let bad = violations(&docs);
        assert!(
            bad.is_empty(),
            "{at}: policy violations:\n{}",
            bad.join("\n")
        );
        for d in &docs {
            assert!(
                !d.to_string().contains("${"),
                "{at}: left unsubstituted: {d}"
            );
        }
        let agg = find(&docs, "Deployment", "labscope");
        let args = strings(&agg["spec"]["template"]["spec"]["containers"][0]["args"]);
        assert!(
            args.contains(&format!("--allowed-host={host}")),
            "{at}: {args:?}"
        );
        let version = env!("CARGO_PKG_VERSION");
        for (kind, name, image) in [
            ("Deployment", "labscope", "labscope"),
            ("DaemonSet", "labscope-agent", "labscope-agent"),
        ] {
            assert_eq!(
                find(&docs, kind, name)["spec"]["template"]["spec"]["containers"][0]["image"],
                format!("ghcr.io/labscope/{image}:{version}"),
                "{at}"
            );
        }
        let agent = &find(&docs, "DaemonSet", "labscope-agent")["spec"]["template"]["spec"];
        let keys: BTreeSet<String> = agent["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                t["key"]
                    .as_str()
                    .expect("no blanket toleration")
                    .to_string()
            })
            .collect();
        assert!(
            keys.contains("role") && keys.contains("node-role.kubernetes.io/control-plane"),
            "{at}: {keys:?}"
        );

        // The way in: its route for the host, and its controller (or the
        // gateway's proxies, or Prometheus) the only sources that reach 8080.
        let policy = find(&docs, "NetworkPolicy", "labscope");
        let sources: BTreeSet<String> = policy["spec"]["ingress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["ports"][0]["port"], 8080, "{at}");
                r["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let mut want = BTreeSet::new();
        for c in components.iter() {
            let ns = match c.rsplit('/').next().unwrap() {
                "ingress-traefik" => "kube-system",
                "ingress-nginx" => "ingress-nginx",
                "gateway-api" => "envoy-gateway-system",
                "monitoring" => "monitoring",
                other => panic!("{other}"),
            };
            want.insert(ns.to_string());
        }
        assert_eq!(sources, want, "{at}");
        if components[0].ends_with("gateway-api") {
            let route = find(&docs, "HTTPRoute", "labscope");
            assert_eq!(route["spec"]["hostnames"][0], host, "{at}");
            assert_eq!(route["spec"]["parentRefs"][0]["name"], "internal", "{at}");
            assert!(docs.iter().all(|d| d["kind"] != "Ingress"), "{at}");
        } else {
            let ingress = find(&docs, "Ingress", "labscope");
            assert_eq!(ingress["spec"]["rules"][0]["host"], host, "{at}");
            assert_eq!(ingress["spec"]["tls"][0]["hosts"][0], host, "{at}");
            assert_eq!(
                ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
                settings["LABSCOPE_CLUSTER_ISSUER"].as_str(),
                "{at}"
            );
            let class = ingress["spec"]["ingressClassName"].as_str().unwrap();
            assert!(components[0].ends_with(class), "{at}: class {class}");
        }
        if components.iter().any(|c| c.ends_with("monitoring")) {
            let sm = find(&docs, "ServiceMonitor", "labscope");
            assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
            assert_eq!(sm["metadata"]["labels"]["release"], "kube-prometheus-stack");
        }

        // The config the aggregator reads: every service of the settings.
        let (_, config) = rendered_config(&docs);
        for (name, service, key) in [
            (
                "pihole.primary",
                &config.pihole_primary,
                "LABSCOPE_PIHOLE_PRIMARY_URL",
            ),
            ("jellyfin", &config.jellyfin, "LABSCOPE_JELLYFIN_URL"),
            ("immich", &config.immich, "LABSCOPE_IMMICH_URL"),
        ] {
            let service = service
                .as_ref()
                .unwrap_or_else(|| panic!("{at}: [{name}] is off"));
            assert!(
                service.url.as_str().starts_with(settings[key].as_str()),
                "{at}: {name}"
            );
        }
        assert_eq!(config.dns_servers, ["192.168.1.55", "192.168.1.56"], "{at}");
        assert!(!config.mutations.enabled, "{at}");
        // A change of a setting the file is made of changes the pod template
        // (the ConfigMap's hashed name cannot: it is computed before).
        let note = agg["spec"]["template"]["metadata"]["annotations"]["labscope.io/services"]
            .as_str()
            .unwrap();
        assert!(
            note.contains(settings["LABSCOPE_JELLYFIN_URL"].as_str()),
            "{at}: {note}"
        );
        for es in docs.iter().filter(|d| d["kind"] == "ExternalSecret") {
            assert_eq!(es["spec"]["secretStoreRef"]["name"], "onepassword", "{at}");
        }
    }
}

/// Every setting the install reads is documented in the example; the ones
/// without a default are few, and with only those the install renders with
/// every service off (nothing read that the store may not hold).
#[test]
fn every_install_setting_is_documented_and_few_are_required() {
    let (set, documented) = example_settings();
    for k in documented.keys() {
        assert!(
            k.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "{k}: Flux takes only letters, digits and _ in a variable's name"
        );
    }
    let mut required_everywhere: Option<BTreeSet<String>> = None;
    for components in WAYS_IN {
        let Some(text) = render_install(components) else {
            return;
        };
        let vars = flux_variables(&text);
        for name in vars.keys() {
            assert!(
                documented.contains_key(name),
                "{name} (with {components:?}) is not in settings.example.yaml"
            );
        }
        let required: BTreeSet<String> = vars
            .iter()
            .filter(|(_, d)| !**d)
            .map(|(k, _)| k.clone())
            .collect();
        if components[0].ends_with("gateway-api") {
            for k in [
                "LABSCOPE_GATEWAY",
                "LABSCOPE_GATEWAY_NAMESPACE",
                "LABSCOPE_GATEWAY_PROXY_NAMESPACE",
            ] {
                assert!(required.contains(k), "{k}: {required:?}");
            }
        }
        required_everywhere = Some(match required_everywhere {
            None => required,
            Some(r) => r.intersection(&required).cloned().collect(),
        });
    }
    let required = required_everywhere.unwrap();
    assert_eq!(
        required,
        BTreeSet::from([
            "LABSCOPE_HOST".to_string(),
            "LABSCOPE_SECRET_STORE".to_string()
        ]),
        "the settings every install needs"
    );
    for k in &required {
        assert!(
            set.contains_key(k),
            "{k} is required: the example must set it"
        );
    }

    // Only what is required (the host, the store, the Ingress's issuer).
    let Some(text) = render_install(WAYS_IN[0]) else {
        return;
    };
    let minimal: BTreeMap<String, String> = [
        "LABSCOPE_HOST",
        "LABSCOPE_SECRET_STORE",
        "LABSCOPE_CLUSTER_ISSUER",
    ]
    .into_iter()
    .map(|k| (k.to_string(), set[k].clone()))
    .collect();
    let docs = parse_docs(&flux_substitute(&text, &minimal).expect("substitutes"));
    assert!(violations(&docs).is_empty());
    let (_, config) = rendered_config(&docs);
    assert!(config.pihole_primary.is_none() && config.pihole_secondary.is_none());
    assert!(config.jellyfin.is_none() && config.immich.is_none());
    assert!(config.dns_servers.is_empty());
    let missing = flux_substitute(&text, &BTreeMap::new()).unwrap_err();
    assert!(
        missing.iter().any(|e| e.contains("LABSCOPE_HOST")),
        "{missing:?}"
    );
}

/// deploy/flux: what a fleet repository holds — the signed release artifact
/// at a semver range, the install with the settings, named so it cannot
/// collide with a wrapper Kustomization named after its directory.
#[test]
fn flux_installs_the_signed_release_artifact_with_the_settings() {
    let Some(docs) = render("flux") else { return };
    for d in &docs {
        let (kind, api) = (
            d["kind"].as_str().unwrap(),
            d["apiVersion"].as_str().unwrap(),
        );
        let want = match kind {
            "OCIRepository" => "source.toolkit.fluxcd.io/v1",
            "Kustomization" => "kustomize.toolkit.fluxcd.io/v1",
            "ConfigMap" => "v1",
            other => panic!("unexpected {other} in deploy/flux"),
        };
        assert_eq!(api, want, "{kind} {}", d["metadata"]["name"]);
    }
    let source = find(&docs, "OCIRepository", "labscope");
    assert!(
        source["spec"]["url"]
            .as_str()
            .unwrap()
            .starts_with("oci://ghcr.io/labscope/")
    );
    assert!(
        source["spec"]["ref"]["semver"].is_string(),
        "a version range, not a branch"
    );
    assert_eq!(source["spec"]["verify"]["provider"], "cosign");
    let subject = source["spec"]["verify"]["matchOIDCIdentity"][0]["subject"]
        .as_str()
        .unwrap();
    assert!(subject.contains(r"release\.yml@refs/tags/v"), "{subject}");
    assert!(
        deploy().join("../.github/workflows/release.yml").exists(),
        "the workflow the signature identity names"
    );

    let ks: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Kustomization")
        .collect();
    assert_eq!(ks.len(), 1);
    let ks = ks[0];
    let name = ks["metadata"]["name"].as_str().unwrap();
    assert!(
        !["labscope", "flux"].contains(&name),
        "{name} collides with a wrapper"
    );
    assert_eq!(ks["spec"]["sourceRef"]["kind"], "OCIRepository");
    assert_eq!(ks["spec"]["sourceRef"]["name"], "labscope");
    // The artifact is deploy/: paths are relative to it.
    let path = ks["spec"]["path"].as_str().unwrap();
    assert_eq!(path, "./overlays/install");
    let install = deploy().join(path);
    assert!(install.join("kustomization.yaml").exists(), "{path}");
    for c in ks["spec"]["components"].as_array().unwrap() {
        let dir = install.join(c.as_str().unwrap());
        let text = std::fs::read_to_string(dir.join("kustomization.yaml"))
            .unwrap_or_else(|e| panic!("component {c}: {e}"));
        assert!(text.contains("kind: Component"), "{c}");
        assert!(
            WAYS_IN.iter().any(|w| w.contains(&c.as_str().unwrap())),
            "{c}: not tested"
        );
    }
    assert_eq!(ks["spec"]["prune"], true);
    assert_eq!(ks["spec"]["wait"], true);
    let settings = &ks["spec"]["postBuild"]["substituteFrom"][0];
    assert_eq!(settings["kind"], "ConfigMap");
    assert_eq!(
        settings["name"],
        find(&docs, "ConfigMap", "labscope-settings")["metadata"]["name"]
    );
    let timeout = ks["spec"]["timeout"].as_str().unwrap();
    let minutes: u32 = timeout
        .strip_suffix('m')
        .and_then(|m| m.parse().ok())
        .expect("minutes");
    assert!(
        minutes >= 10,
        "a first rollout on a Pi 3 takes minutes: {timeout}"
    );
    let checked: BTreeSet<(String, String)> = ks["spec"]["healthCheckExprs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            for f in ["current", "failed"] {
                let expr = e[f].as_str().unwrap();
                // all() is true on no conditions: a new object is not ready.
                assert!(
                    expr.contains(".exists(") && expr.contains("orValue([])"),
                    "{expr}"
                );
            }
            (
                e["apiVersion"].as_str().unwrap().to_string(),
                e["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (api, kind) in [
        ("cert-manager.io/v1", "Certificate"),
        ("external-secrets.io/v1", "ExternalSecret"),
    ] {
        assert!(
            checked.contains(&(api.to_string(), kind.to_string())),
            "{kind}: {checked:?}"
        );
    }
    // The expressions, run as kustomize-controller runs them (the object's
    // fields are the variables), over the states each kind goes through:
    // (kind, state, status, current, failed).
    let cond = |t: &str, s: &str, reason: &str| json!({"type": t, "status": s, "reason": reason});
    let states = [
        ("Certificate", "just created", json!({}), false, false),
        (
            "Certificate",
            "being issued",
            json!({"conditions": [cond("Ready", "False", "DoesNotExist"), cond("Issuing", "True", "")]}),
            false,
            false,
        ),
        (
            "Certificate",
            "issued",
            json!({"conditions": [cond("Ready", "True", "Ready")]}),
            true,
            false,
        ),
        (
            "Certificate",
            "issuing failed",
            json!({"conditions": [cond("Ready", "False", "DoesNotExist"), cond("Issuing", "False", "Failed")]}),
            false,
            true,
        ),
        ("ExternalSecret", "just created", json!({}), false, false),
        (
            "ExternalSecret",
            "synced",
            json!({"conditions": [cond("Ready", "True", "SecretSynced")]}),
            true,
            false,
        ),
        (
            "ExternalSecret",
            "store refuses",
            json!({"conditions": [cond("Ready", "False", "SecretSyncedError")]}),
            false,
            true,
        ),
    ];
    let env = std::sync::Arc::new(cel::Env::stdlib());
    for (kind, state, status, want_current, want_failed) in states {
        let check = ks["spec"]["healthCheckExprs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == kind)
            .unwrap();
        for (field, want) in [("current", want_current), ("failed", want_failed)] {
            let expr = check[field].as_str().unwrap();
            let program = env.compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            let mut ctx = cel::Context::with_env(env.clone());
            ctx.add_variable_from_value("status", cel::to_value(&status).unwrap());
            let got = program
                .execute(&ctx)
                .unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(
                got,
                cel::Value::Bool(want),
                "{kind} {state}: {field} = {expr}"
            );
        }
    }

    // The install's images default to the release's own version.
    let overlay = std::fs::read_to_string(install.join("kustomization.yaml")).unwrap();
    let tags: Vec<&str> = overlay.lines().filter(|l| l.contains("newTag:")).collect();
    assert_eq!(tags.len(), 2, "{tags:?}");
    for t in tags {
        assert!(
            t.contains(&format!(
                "${{LABSCOPE_IMAGE_TAG:={}}}",
                env!("CARGO_PKG_VERSION")
            )),
            "{t}: not the workspace's version"
        );
    }

    // Image automation is optional: plain versions only, no mandatory secret.
    let auto =
        std::fs::read_to_string(deploy().join("flux/image-automation.example.yaml")).unwrap();
    let auto = parse_docs(&auto);
    for d in &auto {
        assert_eq!(d["apiVersion"], "image.toolkit.fluxcd.io/v1");
        assert!(d["spec"]["secretRef"].is_null(), "{d}");
    }
    let pattern = find(&auto, "ImagePolicy", "labscope")["spec"]["filterTags"]["pattern"]
        .as_str()
        .unwrap();
    assert_eq!(
        pattern, r"^[0-9]+\.[0-9]+\.[0-9]+$",
        "plain semver tags only"
    );
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
        // Gateway API is a k8s.io group served by CRDs, not the API server.
        Some((group, _)) => {
            (!group.contains('.') || group.ends_with(".k8s.io"))
                && !group.starts_with("gateway.networking.")
        }
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
    let mut renders = Vec::new();
    for dir in ["base", "overlays/homelab", "overlays/homelab-ops", "flux"] {
        let Some(docs) = render(dir) else { return };
        renders.push((format!("deploy/{dir}"), docs));
    }
    for components in WAYS_IN {
        let Some(docs) = install_with_example_settings(components) else {
            return;
        };
        renders.push((format!("deploy/overlays/install with {components:?}"), docs));
    }
    let auto =
        std::fs::read_to_string(deploy().join("flux/image-automation.example.yaml")).unwrap();
    renders.push((
        "deploy/flux/image-automation.example.yaml".into(),
        parse_docs(&auto),
    ));
    for (what, docs) in renders {
        let (kube, crd) = schema_problems(&v, &docs);
        assert!(
            kube.is_empty() && crd.is_empty(),
            "{what} does not validate:\n{}",
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
    let auto = parse_docs(
        &std::fs::read_to_string(deploy().join("flux/image-automation.example.yaml")).unwrap(),
    );
    let Some(gateway) = install_with_example_settings(WAYS_IN[2]) else {
        return;
    };
    let Some(monitoring) = install_with_example_settings(WAYS_IN[3]) else {
        return;
    };

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
            mutate(&auto, "ImagePolicy", &|d| {
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
            mutate(&flux, "OCIRepository", &|d| {
                d["apiVersion"] = json!("source.toolkit.fluxcd.io/v9")
            }),
            "OCIRepository",
        ),
        (
            "HTTPRoute backend port as a string",
            mutate(&gateway, "HTTPRoute", &|d| {
                d["spec"]["rules"][0]["backendRefs"][0]["port"] = json!("http")
            }),
            "port",
        ),
        (
            "unknown ServiceMonitor field",
            mutate(&monitoring, "ServiceMonitor", &|d| {
                d["spec"]["endpoint"] = json!([])
            }),
            "endpoint",
        ),
        (
            "health check expression without current",
            mutate(&flux, "Kustomization", &|d| {
                d["spec"]["healthCheckExprs"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("current");
            }),
            "current",
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
fn the_release_workflow_builds_what_scripts_images_builds_and_publishes_what_flux_installs() {
    let root = deploy().join("..");
    let text = std::fs::read_to_string(root.join(".github/workflows/release.yml"))
        .expect("the release workflow");
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
    assert!(!on["workflow_dispatch"].is_null(), "no manual runs: {on}");
    assert!(
        !text.contains("armv7") && !text.contains("arm/v7"),
        "a 32-bit ARM build (its toolchain may be missing; the Pis run 64-bit)"
    );
    let jobs = wf["jobs"].as_object().expect("jobs");
    let steps: Vec<&Value> = jobs
        .values()
        .flat_map(|j| j["steps"].as_array().into_iter().flatten())
        .collect();
    // Every action pinned by commit, not by a tag that can move.
    let pinned = regex::Regex::new(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$").unwrap();
    for s in &steps {
        if let Some(uses) = s["uses"].as_str() {
            assert!(pinned.is_match(uses), "{uses}: not pinned by commit SHA");
        }
    }
    let toolchain = wf["env"]["RUST_TOOLCHAIN"]
        .as_str()
        .expect("a pinned Rust toolchain");
    assert!(
        toolchain.split('.').count() == 3 && toolchain.split('.').all(|p| p.parse::<u32>().is_ok()),
        "the builder floats: RUST_TOOLCHAIN = {toolchain}"
    );
    let runs: String = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        runs.contains("rustup toolchain install \"$RUST_TOOLCHAIN\""),
        "the toolchain is not installed by version"
    );
    let uses = |prefix: &str| -> Vec<&&Value> {
        steps
            .iter()
            .filter(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(prefix)))
            .collect()
    };
    let builds = uses("docker/build-push-action@");
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
    let matrix: BTreeSet<String> = jobs
        .values()
        .flat_map(|j| {
            j["strategy"]["matrix"]["arch"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
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
        assert_eq!(with["sbom"], true, "{file}: no SBOM");
        let platforms = with["platforms"].as_str().unwrap_or_default();
        assert_eq!(platforms, "linux/amd64,linux/arm64", "{file}: platforms");
        for platform in platforms.split(',') {
            let arch = platform.trim_start_matches("linux/");
            assert!(
                matrix.contains(arch)
                    && runs.contains("scripts/images --arch ${{ matrix.arch }} --context-only"),
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
    // Nothing logs in, signs or pushes for a pull request.
    for s in uses("docker/login-action@")
        .into_iter()
        .chain(uses("sigstore/cosign-installer@"))
    {
        let cond = s["if"].as_str().unwrap_or_default();
        assert!(
            cond.contains("!= 'pull_request'")
                || cond.contains("startsWith(github.ref, 'refs/tags/v')"),
            "{} runs for pull requests",
            s["uses"]
        );
    }
    let pushing: Vec<&&Value> = steps
        .iter()
        .filter(|s| {
            s["run"]
                .as_str()
                .is_some_and(|r| r.contains("cosign sign") || r.contains("flux push"))
        })
        .collect();
    assert!(pushing.len() >= 2, "images and manifests are signed");
    for s in &pushing {
        let cond = s["if"].as_str().unwrap_or_default();
        assert!(
            cond.contains("!= 'pull_request'")
                || cond.contains("startsWith(github.ref, 'refs/tags/v')"),
            "{} runs for pull requests",
            s["name"]
        );
    }
    // The manifests: deploy/ as the artifact deploy/flux installs, only for a
    // version tag (the identity Flux checks), with the install's image tag
    // set to the release's version first — by an edit that works.
    let push = pushing
        .iter()
        .find(|s| s["run"].as_str().unwrap().contains("flux push artifact"))
        .expect("the manifests are pushed");
    let cmd = push["run"].as_str().unwrap();
    assert!(
        cmd.contains("--path=./deploy")
            && cmd.contains("/manifests\"")
            && cmd.contains("flux push artifact \"oci://$repo:$VERSION\""),
        "{cmd}"
    );
    assert!(
        push["if"].as_str().unwrap().contains("refs/tags/v"),
        "manifests from a branch"
    );
    let flux = parse_docs(&std::fs::read_to_string(deploy().join("flux/labscope.yaml")).unwrap());
    let source = find(&flux, "OCIRepository", "labscope");
    assert!(
        source["spec"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/manifests")
    );
    let subject = regex::Regex::new(
        source["spec"]["verify"]["matchOIDCIdentity"][0]["subject"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(subject.is_match(
        "https://github.com/labscope/labscope/.github/workflows/release.yml@refs/tags/v0.1.0"
    ));
    assert!(!subject.is_match(
        "https://github.com/labscope/labscope/.github/workflows/release.yml@refs/heads/main"
    ));
    let sed = runs
        .lines()
        .find(|l| l.contains("LABSCOPE_IMAGE_TAG:="))
        .expect("the install's image tag is set to the version");
    let install = deploy().join("overlays/install/kustomization.yaml");
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::copy(&install, tmp.path()).unwrap();
    let script = sed.trim().replace(
        "deploy/overlays/install/kustomization.yaml",
        &tmp.path().display().to_string(),
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .env("VERSION", "9.8.7")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let edited = std::fs::read_to_string(tmp.path()).unwrap();
    assert_eq!(
        edited.matches("${LABSCOPE_IMAGE_TAG:=9.8.7}").count(),
        2,
        "{edited}"
    );
}

/// Whether an SPDX expression is satisfied by `allowed`: an `OR` needs one
/// side, an `AND` both; `WITH` exceptions go with their license; the old
/// `A/B` form means `A OR B`.
fn license_ok(expr: &str, allowed: &BTreeSet<String>) -> bool {
    fn or(tokens: &[String], at: &mut usize, allowed: &BTreeSet<String>) -> bool {
        let mut ok = and(tokens, at, allowed);
        while tokens.get(*at).is_some_and(|t| t == "OR") {
            *at += 1;
            ok |= and(tokens, at, allowed);
        }
        ok
    }
    fn and(tokens: &[String], at: &mut usize, allowed: &BTreeSet<String>) -> bool {
        let mut ok = one(tokens, at, allowed);
        while tokens.get(*at).is_some_and(|t| t == "AND") {
            *at += 1;
            ok &= one(tokens, at, allowed);
        }
        ok
    }
    fn one(tokens: &[String], at: &mut usize, allowed: &BTreeSet<String>) -> bool {
        let Some(t) = tokens.get(*at) else {
            return false;
        };
        *at += 1;
        if t == "(" {
            let ok = or(tokens, at, allowed);
            *at += 1; // ")"
            return ok;
        }
        if tokens.get(*at).is_some_and(|w| w == "WITH") {
            *at += 2;
        }
        allowed.contains(t)
    }
    let spaced = expr
        .replace('/', " OR ")
        .replace('(', " ( ")
        .replace(')', " ) ");
    let tokens: Vec<String> = spaced.split_whitespace().map(str::to_string).collect();
    let mut at = 0;
    or(&tokens, &mut at, allowed) && at == tokens.len()
}

#[test]
fn license_expressions_are_read_as_spdx() {
    let allowed: BTreeSet<String> = ["MIT", "Apache-2.0", "Unicode-3.0"]
        .map(String::from)
        .into();
    for (expr, ok) in [
        ("MIT OR Apache-2.0", true),
        ("MIT/Apache-2.0", true),
        ("(MIT OR Apache-2.0) AND Unicode-3.0", true),
        ("Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT", true),
        ("MIT AND BSD-3-Clause", false),
        ("GPL-3.0-only", false),
        ("MIT OR Apache-2.0 OR LGPL-2.1-or-later", true),
        ("LGPL-2.1-or-later", false),
    ] {
        assert_eq!(license_ok(expr, &allowed), ok, "{expr}");
    }
}

/// deny.toml's rules, checked offline against every package of the lock
/// file: licenses from the allowlist, no banned crate, crates.io only.
#[test]
fn dependencies_follow_the_policy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let policy: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("deny.toml")).expect("deny.toml"))
            .expect("deny.toml parses");
    let allowed: BTreeSet<String> = policy["licenses"]["allow"]
        .as_array()
        .expect("licenses.allow")
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let banned: BTreeSet<String> = policy["bans"]["deny"]
        .as_array()
        .expect("bans.deny")
        .iter()
        .filter_map(|v| v.get("name")?.as_str().map(String::from))
        .collect();
    let registries: Vec<String> = policy["sources"]["allow-registry"]
        .as_array()
        .expect("sources.allow-registry")
        .iter()
        .filter_map(|v| v.as_str().map(|r| format!("registry+{r}")))
        .collect();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(&root)
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata --offline failed (scripts/test runs `cargo fetch --locked` first): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let mut problems = Vec::new();
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    assert!(packages.len() > 100, "{} packages", packages.len());
    for p in &packages {
        let name = p["name"].as_str().unwrap_or_default();
        let version = p["version"].as_str().unwrap_or_default();
        match p["source"].as_str() {
            None => {} // a workspace member
            Some(s) if registries.iter().any(|r| r == s) => {}
            Some(s) => problems.push(format!("{name} {version}: source {s} is not allowed")),
        }
        if banned.contains(name) {
            problems.push(format!("{name} {version}: banned by deny.toml"));
        }
        if p["source"].is_null() {
            continue;
        }
        match p["license"].as_str() {
            Some(l) if license_ok(l, &allowed) => {}
            Some(l) => problems.push(format!("{name} {version}: license {l:?} is not allowed")),
            None => problems.push(format!("{name} {version}: no license declared")),
        }
    }
    assert!(
        problems.is_empty(),
        "dependency policy (deny.toml):\n{}",
        problems.join("\n")
    );
}
