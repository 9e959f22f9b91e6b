//! The whole homelab of HOMELAB.md as one fixture for the fake Kubernetes
//! API: namespaces, discovery groups (§1.3), Flux (§1.4), cert-manager (§1.5),
//! External Secrets (§1.6), CronJobs and Jobs (§1.7), Ingresses (§1.8),
//! workloads with generated ReplicaSets and pods (§1.9, §1.13), Services with
//! derived EndpointSlices (§1.10), PVCs (§1.11), Tailscale (§1.12), and the
//! incident scenarios of §3 as named overlays.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::fake_kube::{
    FIXTURE_NOW, Fixture, INGRESS_TLS, certificates_scenario_3h, homelab_certificates, homelab_eso,
    homelab_nodes, homelab_tailscale, rfc3339,
};

/// Flux's applied revision everywhere (HOMELAB.md §0).
pub const REVISION: &str = "main@sha1:44c22701994feb91fbdbb13dcb1537bdb55c0036";

/// The scenarios [`homelab`] knows, with what each switches on.
pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "immich-stuck",
        "3.a HelmRelease immich/immich stalled for 16 days (RetriesExceeded)",
    ),
    (
        "immich-stuck-legacy",
        "3.a legacy wording: \"upgrade retries exhausted\", no Stalled condition",
    ),
    (
        "private-exit-node-auth",
        "3.b ImageRepository private-exit-node without secretRef: UNAUTHORIZED",
    ),
    (
        "secretref-missing-secret",
        "3.b variant: secretRef names a Secret that does not exist",
    ),
    ("eso-absent", "3.c External Secrets not installed"),
    (
        "eso-store-down",
        "3.c ClusterSecretStore onepassword down, 53 ExternalSecrets failing",
    ),
    (
        "connector-down",
        "3.f Tailscale Connector ConnectorReady=False",
    ),
    (
        "jellyfin-crashloop",
        "3.g Jellyfin CrashLoopBackOff while Running",
    ),
    (
        "certificates",
        "3.h uptime-kuma-tls expiring, romm-tls failing its challenge",
    ),
    (
        "backup-overdue",
        "3.i pvc-backup and restore-test failing since 2026-07-26",
    ),
    (
        "jellyfin-scaled-to-zero",
        "3.j Deployment jellyfin at 0 replicas, no pods",
    ),
    (
        "jellyfin-namespace-gone",
        "3.j namespace jellyfin deleted; its pod list is still 200 and empty",
    ),
    (
        "immich-server-parked",
        "3.j immich-server at 0 replicas, its database Ready",
    ),
    (
        "dnssec-servfail",
        "3.k peaceloveandpizza.com fails DNSSEC validation: both Unbounds log validation failures",
    ),
    (
        "pi3-memory-pressure",
        "3.l pi3-worker-2 MemoryPressure, then Ready=Unknown",
    ),
    (
        "flux-2.7",
        "Flux 2.7 API layout (the cluster's own, the default): every kind at v1, HelmRelease v2",
    ),
    (
        "flux-2.2",
        "Flux 2.2 API layout: only GitRepository at source…/v1 (the other sources v1beta2), HelmRelease v2beta2, image v1beta2 (ImageUpdateAutomation v1beta1)",
    ),
    (
        "flux-2.4",
        "Flux 2.4 API layout: sources at v1 except OCIRepository (v1beta2), HelmRelease v2, image automation v1beta2",
    ),
    (
        "eso-mixed",
        "External Secrets mid-upgrade: ExternalSecret and SecretStore at v1, ClusterSecretStore only at v1beta1",
    ),
    (
        "cert-manager-mixed",
        "cert-manager mid-upgrade: Certificate at v1, CertificateRequest only at v1beta1",
    ),
    (
        "evicted-pods",
        "k3s keeps Failed pods: bazarr evicted under memory pressure and calibre-web stopped by a node shutdown, both replaced",
    ),
    (
        "immich-init-crashloop",
        "immich-server Pending, its init container wait-for-db in CrashLoopBackOff",
    ),
    (
        "indexed-job-failed",
        "standalone Indexed Job media/reindex-2 (a name ending in digits) with two failed pods",
    ),
    (
        "pod-phase-unknown",
        "a flaresolverr pod in phase Unknown (its kubelet stopped reporting)",
    ),
    (
        "certificate-prefix",
        "Certificate jellyfin/jellyfin failing next to jellyfin-tls, whose own request also fails",
    ),
];

/// Per-kind served versions of a Flux release (HOMELAB.md §1.3): group
/// versions and the kinds served at fewer versions than their group.
type ApiLayout = (
    Vec<(&'static str, Vec<&'static str>)>,
    Vec<(&'static str, &'static str, Vec<&'static str>)>,
);

fn flux_layout(release: &str) -> ApiLayout {
    const S: &str = "source.toolkit.fluxcd.io";
    const K: &str = "kustomize.toolkit.fluxcd.io";
    const H: &str = "helm.toolkit.fluxcd.io";
    const I: &str = "image.toolkit.fluxcd.io";
    const N: &str = "notification.toolkit.fluxcd.io";
    match release {
        "2.2" => (
            vec![
                (S, vec!["v1", "v1beta2", "v1beta1"]),
                (K, vec!["v1", "v1beta2", "v1beta1"]),
                (H, vec!["v2beta2", "v2beta1"]),
                (I, vec!["v1beta2", "v1beta1"]),
                (N, vec!["v1", "v1beta3", "v1beta2", "v1beta1"]),
            ],
            vec![
                (S, "HelmRepository", vec!["v1beta2", "v1beta1"]),
                (S, "HelmChart", vec!["v1beta2", "v1beta1"]),
                (S, "Bucket", vec!["v1beta2", "v1beta1"]),
                (S, "OCIRepository", vec!["v1beta2"]),
                (I, "ImageUpdateAutomation", vec!["v1beta1"]),
                (N, "Alert", vec!["v1beta3", "v1beta2", "v1beta1"]),
                (N, "Provider", vec!["v1beta3", "v1beta2", "v1beta1"]),
            ],
        ),
        "2.4" => (
            vec![
                (S, vec!["v1", "v1beta2", "v1beta1"]),
                (K, vec!["v1", "v1beta2", "v1beta1"]),
                (H, vec!["v2", "v2beta2", "v2beta1"]),
                (I, vec!["v1beta2", "v1beta1"]),
                (N, vec!["v1", "v1beta3", "v1beta2", "v1beta1"]),
            ],
            vec![
                (S, "OCIRepository", vec!["v1beta2"]),
                (N, "Alert", vec!["v1beta3", "v1beta2", "v1beta1"]),
                (N, "Provider", vec!["v1beta3", "v1beta2", "v1beta1"]),
            ],
        ),
        // 2.7.5, the cluster's own (§1.3).
        _ => (
            vec![
                (S, vec!["v1", "v1beta2"]),
                (K, vec!["v1", "v1beta2"]),
                (H, vec!["v2", "v2beta2"]),
                (I, vec!["v1", "v1beta2"]),
                (N, vec!["v1", "v1beta3"]),
            ],
            vec![
                (N, "Alert", vec!["v1beta3"]),
                (N, "Provider", vec!["v1beta3"]),
                (N, "Receiver", vec!["v1"]),
            ],
        ),
    }
}

const DAY: i64 = 86_400;

/// Node → (InternalIP, third octet of its podCIDR).
fn node_net(node: &str) -> (&'static str, u8) {
    match node {
        "pi-k3s" => ("192.168.1.55", 0),
        "pi5-worker-1" => ("192.168.1.56", 2),
        "pi5-worker-2" => ("192.168.1.57", 3),
        _ => ("192.168.1.51", 1),
    }
}

/// Deterministic lowercase suffix in the alphabet Kubernetes uses for names.
pub fn suffix(seed: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (0..len)
        .map(|i| {
            let x = h.rotate_left((i * 7) as u32) ^ (i as u64).wrapping_mul(0x9e37_79b9);
            ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

fn meta(api: &str, kind: &str, ns: Option<&str>, name: &str, created: &str) -> Value {
    let mut m = json!({"name": name, "uid": format!("uid-{}-{}-{name}", kind.to_lowercase(), ns.unwrap_or("")),
        "resourceVersion": "1", "generation": 1, "creationTimestamp": created});
    if let Some(ns) = ns {
        m["namespace"] = json!(ns);
    }
    json!({"apiVersion": api, "kind": kind, "metadata": m})
}

fn owner(api: &str, kind: &str, ns: &str, name: &str) -> Value {
    json!([{"apiVersion": api, "kind": kind, "name": name, "uid": format!("uid-{}-{ns}-{name}", kind.to_lowercase()),
        "controller": true, "blockOwnerDeletion": true}])
}

fn ready_condition(reason: &str, message: &str, since: &str) -> Value {
    json!({"type": "Ready", "status": "True", "reason": reason, "message": message, "lastTransitionTime": since, "observedGeneration": 1})
}

/// Namespaces of HOMELAB.md §1.2 (37).
pub const NAMESPACES: &[&str] = &[
    "atlas",
    "backup-jobs",
    "calendar",
    "cert-manager",
    "cloudflare-tunnel",
    "external-services",
    "family-board",
    "homepage",
    "immich",
    "ingress-nginx",
    "jellyfin",
    "kiwix",
    "kiwix-mcp",
    "local-llm-mcp",
    "log-aggregation",
    "matrix",
    "mcp-homelab",
    "mealie",
    "media",
    "mtgibbs-site",
    "n8n",
    "new-horizons",
    "ntfy",
    "private-exit-node",
    "renovate",
    "review-hub",
    "romm",
    "tailscale",
    "uptime-kuma",
    "pihole",
    "monitoring",
    "external-secrets",
    "flux-system",
    "kube-system",
    "default",
    "kube-public",
    "kube-node-lease",
];

fn namespaces() -> Vec<Value> {
    NAMESPACES
        .iter()
        .map(|ns| {
            let mut o = meta("v1", "Namespace", None, ns, "2025-12-20T00:00:00Z");
            o["metadata"]["labels"] = json!({"kubernetes.io/metadata.name": ns});
            o["spec"] = json!({"finalizers": ["kubernetes"]});
            o["status"] = json!({"phase": "Active"});
            o
        })
        .collect()
}

/// Discovery (§1.3), preferred version first.
pub fn groups(eso: bool) -> Vec<(String, Vec<String>)> {
    let mut g: Vec<(&str, &[&str])> = vec![
        ("apps", &["v1"]),
        ("batch", &["v1"]),
        ("networking.k8s.io", &["v1"]),
        ("discovery.k8s.io", &["v1"]),
        ("events.k8s.io", &["v1"]),
        ("metrics.k8s.io", &["v1beta1"]),
        ("source.toolkit.fluxcd.io", &["v1", "v1beta2"]),
        ("kustomize.toolkit.fluxcd.io", &["v1", "v1beta2"]),
        ("helm.toolkit.fluxcd.io", &["v2", "v2beta2"]),
        ("image.toolkit.fluxcd.io", &["v1", "v1beta2"]),
        ("notification.toolkit.fluxcd.io", &["v1", "v1beta3"]),
        ("cert-manager.io", &["v1"]),
        ("acme.cert-manager.io", &["v1"]),
        ("tailscale.com", &["v1alpha1"]),
        ("monitoring.coreos.com", &["v1"]),
    ];
    if eso {
        g.push(("external-secrets.io", &["v1"]));
    }
    g.into_iter()
        .map(|(n, vs)| (n.to_string(), vs.iter().map(|v| v.to_string()).collect()))
        .collect()
}

// ---------------------------------------------------------------- Flux (§1.4)

/// Kustomizations: (name, dependsOn, substituteFrom nfs-credentials, 10m timeout).
const KUSTOMIZATIONS: &[(&str, &[&str], bool, bool)] = &[
    ("external-secrets", &[], false, false),
    ("ingress", &[], false, false),
    ("cert-manager", &[], false, false),
    ("coredns-custom", &[], false, false),
    (
        "external-secrets-config",
        &["external-secrets"],
        false,
        false,
    ),
    (
        "flux-notifications",
        &["external-secrets-config"],
        false,
        false,
    ),
    ("tailscale", &["external-secrets-config"], false, false),
    (
        "cloudflare-tunnel",
        &["external-secrets-config"],
        false,
        false,
    ),
    ("ntfy", &["external-secrets-config"], false, false),
    ("calendar", &["external-secrets-config"], true, false),
    (
        "private-exit-node",
        &["external-secrets-config"],
        false,
        false,
    ),
    ("renovate", &["external-secrets-config"], false, false),
    ("review-hub", &["external-secrets-config"], false, false),
    ("new-horizons", &["external-secrets-config"], false, false),
    (
        "cert-manager-config",
        &["cert-manager", "external-secrets-config"],
        false,
        false,
    ),
    ("pihole", APPS, false, false),
    ("monitoring", APPS, false, true),
    ("uptime-kuma", APPS, false, false),
    ("immich", APPS, true, true),
    ("jellyfin", APPS, true, false),
    ("media", APPS, false, true),
    ("mcp-homelab", APPS, false, false),
    ("local-llm-mcp", APPS, false, false),
    ("family-board", APPS, false, false),
    ("romm", APPS, false, false),
    ("mealie", APPS, false, false),
    ("matrix", APPS, false, false),
    ("homepage", WEB, false, false),
    ("external-services", WEB, false, false),
    ("mtgibbs-site", WEB, false, false),
    ("kiwix", WEB, false, false),
    ("atlas", WEB, false, false),
    ("tailscale-config", &["tailscale", "pihole"], false, false),
    (
        "backup-jobs",
        &[
            "external-secrets-config",
            "pihole",
            "monitoring",
            "uptime-kuma",
        ],
        false,
        false,
    ),
    (
        "log-aggregation",
        &["cloudflare-tunnel", "monitoring"],
        false,
        true,
    ),
    (
        "n8n",
        &[
            "external-secrets-config",
            "ingress",
            "cert-manager-config",
            "calendar",
        ],
        true,
        false,
    ),
    (
        "kiwix-mcp",
        &[
            "external-secrets-config",
            "ingress",
            "cert-manager-config",
            "kiwix",
        ],
        false,
        false,
    ),
];
const APPS: &[&str] = &["external-secrets-config", "ingress", "cert-manager-config"];
const WEB: &[&str] = &["ingress", "cert-manager-config"];

/// HelmReleases: (namespace, name, interval, chart, version, repository, repo interval, url, oci, release number).
type ReleaseRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    u32,
);
const RELEASES: &[ReleaseRow] = &[
    (
        "cert-manager",
        "cert-manager",
        "1h",
        "cert-manager",
        "v1.21.1",
        "jetstack",
        "1h",
        "https://charts.jetstack.io",
        false,
        6,
    ),
    (
        "external-secrets",
        "external-secrets",
        "1h",
        "external-secrets",
        "1.2.0",
        "external-secrets",
        "1h",
        "https://charts.external-secrets.io",
        false,
        9,
    ),
    (
        "immich",
        "immich",
        "1h",
        "immich",
        "0.10.3",
        "immich",
        "1h",
        "oci://ghcr.io/immich-app/immich-charts",
        true,
        11,
    ),
    (
        "ingress-nginx",
        "ingress-nginx",
        "1h",
        "ingress-nginx",
        "4.12.0",
        "ingress-nginx",
        "1h",
        "https://kubernetes.github.io/ingress-nginx",
        false,
        4,
    ),
    (
        "log-aggregation",
        "loki",
        "30m",
        "loki",
        "6.29.0",
        "grafana",
        "24h",
        "https://grafana.github.io/helm-charts",
        false,
        7,
    ),
    (
        "monitoring",
        "kube-prometheus",
        "1h",
        "kube-prometheus-stack",
        "80.6.0",
        "prometheus-community",
        "1h",
        "https://prometheus-community.github.io/helm-charts",
        false,
        12,
    ),
    (
        "tailscale",
        "tailscale-operator",
        "1h",
        "tailscale-operator",
        "1.92.5",
        "tailscale",
        "1h",
        "https://pkgs.tailscale.com/helmcharts",
        false,
        5,
    ),
];

/// Image automation: (name, image, secretRef at HEAD, latest tag).
const IMAGES: &[(&str, &str, Option<&str>, &str)] = &[
    ("kiwix-mcp", "ghcr.io/mtgibbs/kiwix-mcp", None, "0.1.3"),
    (
        "local-llm-mcp",
        "ghcr.io/mtgibbs/local-llm-mcp",
        None,
        "0.1.1",
    ),
    (
        "mcp-homelab",
        "ghcr.io/mtgibbs/pi-cluster-mcp",
        None,
        "0.1.26",
    ),
    (
        "mtgibbs-site",
        "ghcr.io/mtgibbs/mtgibbs.xyz",
        None,
        "20260709154535",
    ),
    (
        "private-exit-node",
        "ghcr.io/mtgibbs/private-exit-node",
        Some("ghcr-pull-secret"),
        "0.1.0",
    ),
    ("review-hub", "ghcr.io/mtgibbs/review-hub", None, "0.7.3"),
];

const APPLIED_AT: &str = "2026-08-20T00:26:10Z";

fn flux(s: &dyn Fn(&str) -> bool) -> Vec<Value> {
    let mut out = Vec::new();
    let stored = format!("stored artifact for revision '{REVISION}'");
    let mut git = meta(
        "source.toolkit.fluxcd.io/v1",
        "GitRepository",
        Some("flux-system"),
        "flux-system",
        "2025-12-20T00:00:00Z",
    );
    git["spec"] = json!({"url": "ssh://git@github.com/mtgibbs/pi-cluster", "ref": {"branch": "main"}, "interval": "1m0s",
        "secretRef": {"name": "flux-system"}, "timeout": "60s"});
    git["status"] = json!({"observedGeneration": 1,
        "conditions": [ready_condition("Succeeded", &stored, APPLIED_AT),
            {"type": "ArtifactInStorage", "status": "True", "reason": "Succeeded", "message": stored, "lastTransitionTime": APPLIED_AT, "observedGeneration": 1}],
        "artifact": {"revision": REVISION, "path": "gitrepository/flux-system/flux-system/44c22701994feb91fbdbb13dcb1537bdb55c0036.tar.gz",
            "digest": "sha256:6b0c9a3ddc4c1e0f22a7d43bb3c53a3cf1b64d4f3b7c1fd3f4e1cb0f0e5a9d21", "lastUpdateTime": "2026-08-20T00:25:31Z", "size": 412_337}});
    out.push(git);

    let applied = format!("Applied revision: {REVISION}");
    let mut root = meta(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        Some("flux-system"),
        "flux-system",
        "2025-12-20T00:00:00Z",
    );
    root["spec"] = json!({"interval": "10m0s", "path": "./clusters/pi-k3s", "prune": true,
        "sourceRef": {"kind": "GitRepository", "name": "flux-system"}});
    root["status"] = json!({"observedGeneration": 1, "lastAppliedRevision": REVISION, "lastAttemptedRevision": REVISION,
        "conditions": [ready_condition("ReconciliationSucceeded", &applied, APPLIED_AT)]});
    out.push(root);
    for (name, deps, substitute, long) in KUSTOMIZATIONS {
        let mut k = meta(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            Some("flux-system"),
            name,
            "2025-12-20T00:00:00Z",
        );
        k["metadata"]["labels"] = json!({"kustomize.toolkit.fluxcd.io/name": "flux-system", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"});
        k["spec"] = json!({"interval": "10m", "path": format!("./clusters/pi-k3s/{name}"), "prune": true, "wait": true,
            "timeout": if *long { "10m" } else { "5m" }, "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            "dependsOn": deps.iter().map(|d| json!({"name": d})).collect::<Vec<_>>()});
        if *substitute {
            k["spec"]["postBuild"] =
                json!({"substituteFrom": [{"kind": "Secret", "name": "nfs-credentials"}]});
        }
        k["status"] = json!({"observedGeneration": 1, "lastAppliedRevision": REVISION, "lastAttemptedRevision": REVISION,
            "conditions": [ready_condition("ReconciliationSucceeded", &applied, APPLIED_AT),
                {"type": "Healthy", "status": "True", "reason": "Succeeded", "message": "Health check passed in 2.4s", "lastTransitionTime": APPLIED_AT, "observedGeneration": 1}]});
        out.push(k);
    }

    for (ns, name, interval, chart, version, repo, repo_interval, url, oci, release) in RELEASES {
        // HelmRepository (one per repository name).
        if !out
            .iter()
            .any(|o| o["kind"] == "HelmRepository" && o["metadata"]["name"] == *repo)
        {
            let mut r = meta(
                "source.toolkit.fluxcd.io/v1",
                "HelmRepository",
                Some("flux-system"),
                repo,
                "2025-12-20T00:00:00Z",
            );
            r["spec"] = json!({"url": url, "interval": repo_interval});
            if *oci {
                // An OCI HelmRepository is a static data container: Flux does
                // not reconcile it and it has no conditions at all.
                r["spec"]["type"] = json!("oci");
                r["status"] = json!({});
            } else {
                r["status"] = json!({"observedGeneration": 1, "url": format!("http://source-controller.flux-system.svc.cluster.local./helmrepository/flux-system/{repo}/index.yaml"),
                    "conditions": [ready_condition("Succeeded", &format!("stored artifact: revision 'sha256:{}'", suffix(repo, 16)), "2026-08-20T05:40:00Z")],
                    "artifact": {"revision": format!("sha256:{}", suffix(repo, 16)), "lastUpdateTime": "2026-08-20T05:40:00Z"}});
            }
            out.push(r);
        }
        let chart_name = format!("{ns}-{name}");
        let mut hc = meta(
            "source.toolkit.fluxcd.io/v1",
            "HelmChart",
            Some("flux-system"),
            &chart_name,
            "2025-12-20T00:00:00Z",
        );
        hc["spec"] = json!({"chart": chart, "version": if *name == "loki" { "6.x" } else { version },
            "sourceRef": {"kind": "HelmRepository", "name": repo}, "interval": interval, "reconcileStrategy": "ChartVersion"});
        hc["status"] = json!({"observedGeneration": 1, "observedChartName": chart, "observedSourceArtifactRevision": format!("sha256:{}", suffix(repo, 16)),
            "conditions": [ready_condition("ChartPullSucceeded", &format!("pulled '{chart}' chart with version '{version}'"), "2026-08-12T10:00:00Z")],
            "artifact": {"revision": version, "lastUpdateTime": "2026-08-12T10:00:00Z"}});
        out.push(hc);

        let mut hr = meta(
            "helm.toolkit.fluxcd.io/v2",
            "HelmRelease",
            Some(ns),
            name,
            "2025-12-20T00:00:00Z",
        );
        hr["metadata"]["labels"] = json!({"kustomize.toolkit.fluxcd.io/name": if *ns == "log-aggregation" { "log-aggregation" } else { ns },
            "kustomize.toolkit.fluxcd.io/namespace": "flux-system"});
        hr["spec"] = json!({"interval": interval, "releaseName": name,
            "chart": {"spec": {"chart": chart, "version": if *name == "loki" { "6.x" } else { version },
                "sourceRef": {"kind": "HelmRepository", "name": repo, "namespace": "flux-system"}, "interval": interval}}});
        let message = format!(
            "Helm upgrade succeeded for release {ns}/{name}.v{release} with chart {chart}@{version}"
        );
        hr["status"] = json!({"observedGeneration": 1, "lastAttemptedGeneration": 1, "lastAttemptedRevision": version,
            "lastAttemptedReleaseAction": "upgrade", "helmChart": format!("flux-system/{chart_name}"),
            "failures": 0, "installFailures": 0, "upgradeFailures": 0,
            "conditions": [ready_condition("UpgradeSucceeded", &message, "2026-08-12T10:01:00Z"),
                {"type": "Released", "status": "True", "reason": "UpgradeSucceeded", "message": message, "lastTransitionTime": "2026-08-12T10:01:00Z", "observedGeneration": 1}],
            "history": [{"name": name, "namespace": ns, "version": release, "chartName": chart, "chartVersion": version,
                "status": "deployed", "firstDeployed": "2025-12-20T00:10:00Z", "lastDeployed": "2026-08-12T10:00:30Z",
                "digest": format!("sha256:{}", suffix(name, 20)), "configDigest": format!("sha256:{}", suffix(chart, 20))}]});
        out.push(hr);
    }

    for (name, image, secret, tag) in IMAGES {
        let mut repo = meta(
            "image.toolkit.fluxcd.io/v1",
            "ImageRepository",
            Some("flux-system"),
            name,
            "2026-01-10T00:00:00Z",
        );
        repo["spec"] = json!({"image": image, "interval": "5m0s", "provider": "generic"});
        if let Some(sec) = secret {
            repo["spec"]["secretRef"] = json!({"name": sec});
        }
        let tags: Vec<String> = if *name == "private-exit-node" {
            ["latest", "56dce1c", "0.1.0", "0.1"]
                .iter()
                .map(|t| t.to_string())
                .collect()
        } else {
            vec![tag.to_string(), "latest".into()]
        };
        let digest = format!("sha256:{}", suffix(image, 24));
        repo["status"] = json!({"observedGeneration": 1, "canonicalImageName": image,
            "conditions": [ready_condition("Succeeded", &format!("successful scan: found {} tags with checksum {digest}", tags.len()), "2026-08-20T06:03:12Z")],
            "lastScanResult": {"scanTime": "2026-08-20T06:03:12Z", "tagCount": tags.len(), "latestTags": tags, "revision": digest}});
        out.push(repo);

        let mut policy = meta(
            "image.toolkit.fluxcd.io/v1",
            "ImagePolicy",
            Some("flux-system"),
            name,
            "2026-01-10T00:00:00Z",
        );
        policy["spec"] = if *name == "mtgibbs-site" {
            json!({"imageRepositoryRef": {"name": name}, "filterTags": {"pattern": "^[0-9]{14}$"}, "policy": {"numerical": {"order": "asc"}}})
        } else {
            json!({"imageRepositoryRef": {"name": name}, "filterTags": {"pattern": "^[0-9]+\\.[0-9]+\\.[0-9]+$"}, "policy": {"semver": {"range": ">=0.1.0"}}})
        };
        policy["status"] = json!({"observedGeneration": 1, "latestRef": {"name": image, "tag": tag},
            "conditions": [ready_condition("Succeeded", &format!("Latest image tag for {image} resolved to {tag}"), "2026-08-19T12:00:00Z")]});
        out.push(policy);

        let mut auto = meta(
            "image.toolkit.fluxcd.io/v1",
            "ImageUpdateAutomation",
            Some("flux-system"),
            name,
            "2026-01-10T00:00:00Z",
        );
        auto["spec"] = json!({"interval": "5m0s", "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            "git": {"checkout": {"ref": {"branch": "main"}}, "push": {"branch": "main"},
                "commit": {"author": {"name": "fluxcdbot", "email": "fluxcdbot@users.noreply.github.com"}}},
            "update": {"path": format!("./clusters/pi-k3s/{name}"), "strategy": "Setters"}});
        auto["status"] = json!({"observedGeneration": 1, "lastAutomationRunTime": "2026-08-20T06:04:40Z",
            "lastPushCommit": "9f2c1e7", "lastPushTime": "2026-08-14T16:02:11Z",
            "conditions": [ready_condition("Succeeded", "repository up-to-date", "2026-08-14T16:02:11Z")]});
        out.push(auto);
    }
    let mut provider = meta(
        "notification.toolkit.fluxcd.io/v1beta3",
        "Provider",
        Some("flux-system"),
        "discord",
        "2025-12-20T00:00:00Z",
    );
    provider["spec"] = json!({"type": "discord", "secretRef": {"name": "discord-webhook"}});
    out.push(provider);
    let mut alert = meta(
        "notification.toolkit.fluxcd.io/v1beta3",
        "Alert",
        Some("flux-system"),
        "deployments",
        "2025-12-20T00:00:00Z",
    );
    alert["spec"] = json!({"providerRef": {"name": "discord"}, "eventSeverity": "error",
        "eventSources": [{"kind": "Kustomization", "name": "*"}, {"kind": "HelmRelease", "name": "*"}]});
    out.push(alert);

    if s("immich-stuck") || s("immich-stuck-legacy") {
        immich_stuck(&mut out, s("immich-stuck-legacy"));
    }
    if s("private-exit-node-auth") || s("secretref-missing-secret") {
        for o in out.iter_mut() {
            if o["metadata"]["name"] != "private-exit-node" {
                continue;
            }
            match o["kind"].as_str() {
                Some("ImageRepository") => {
                    let (reason, message) = if s("secretref-missing-secret") {
                        o["spec"]["secretRef"] = json!({"name": "ghcr-credentials"});
                        ("AuthenticationFailed", "failed to configure authentication options: secrets \"ghcr-credentials\" not found".to_string())
                    } else {
                        if let Some(spec) = o["spec"].as_object_mut() {
                            spec.remove("secretRef");
                        }
                        ("ReadOperationFailed", "scan failed: GET https://ghcr.io/token?scope=repository%3Amtgibbs%2Fprivate-exit-node%3Apull&service=ghcr.io: UNAUTHORIZED: authentication required; [map[Action:pull Class: Name:mtgibbs/private-exit-node Type:repository]]".to_string())
                    };
                    o["status"] = json!({"observedGeneration": 1, "canonicalImageName": "ghcr.io/mtgibbs/private-exit-node",
                        "conditions": [
                            {"type": "Ready", "status": "False", "reason": reason, "message": message, "lastTransitionTime": "2026-08-14T09:12:00Z", "observedGeneration": 1},
                            {"type": "Reconciling", "status": "True", "reason": "ProgressingWithRetry", "message": message, "lastTransitionTime": "2026-08-14T09:12:00Z", "observedGeneration": 1}]});
                }
                Some("ImagePolicy") => {
                    o["status"] = json!({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "False", "reason": "DependencyNotReady",
                        "message": "cannot get ImageRepository 'flux-system/private-exit-node': ImageRepository is not ready", "lastTransitionTime": "2026-08-14T09:12:00Z", "observedGeneration": 1}]});
                }
                _ => {}
            }
        }
    }
    out
}

/// Scenario 3.a on the Flux objects.
fn immich_stuck(out: &mut [Value], legacy: bool) {
    let since = "2026-08-04T06:07:31Z";
    let message = "Helm upgrade failed for release immich/immich with chart immich@0.10.3: context deadline exceeded";
    for o in out.iter_mut() {
        match (o["kind"].as_str(), o["metadata"]["name"].as_str()) {
            (Some("HelmRelease"), Some("immich")) => {
                o["metadata"]["generation"] = json!(3);
                let ready_message = if legacy {
                    "upgrade retries exhausted"
                } else {
                    message
                };
                let mut conditions = vec![
                    json!({"type": "Ready", "status": "False", "reason": "UpgradeFailed", "message": ready_message, "lastTransitionTime": since, "observedGeneration": 3}),
                    json!({"type": "Released", "status": "False", "reason": "UpgradeFailed", "message": message, "lastTransitionTime": since, "observedGeneration": 3}),
                ];
                if !legacy {
                    conditions.push(json!({"type": "Stalled", "status": "True", "reason": "RetriesExceeded", "message": "Failed to upgrade after 1 attempt(s)", "lastTransitionTime": since, "observedGeneration": 3}));
                }
                o["status"] = json!({"observedGeneration": 3, "lastAttemptedGeneration": 3, "lastAttemptedRevision": "0.10.3",
                    "lastAttemptedReleaseAction": "upgrade", "lastAttemptedConfigDigest": "sha256:4f1c2b0d9e8a7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29180706f5e4d3c2b1a09f",
                    "helmChart": "flux-system/immich-immich", "failures": 1, "upgradeFailures": 1, "installFailures": 0,
                    "conditions": conditions,
                    "history": [
                        {"name": "immich", "namespace": "immich", "version": 10, "chartName": "immich", "chartVersion": "0.10.3", "status": "failed", "lastDeployed": since},
                        {"name": "immich", "namespace": "immich", "version": 9, "chartName": "immich", "chartVersion": "0.9.3", "status": "deployed", "lastDeployed": "2026-06-30T10:00:00Z"}]});
            }
            (Some("Kustomization"), Some("immich")) => {
                let msg = "health check failed after 10m0s: timeout waiting for: [HelmRelease/immich/immich status: 'Failed']";
                o["status"]["conditions"] = json!([
                    {"type": "Ready", "status": "False", "reason": "HealthCheckFailed", "message": msg, "lastTransitionTime": "2026-08-04T06:17:31Z", "observedGeneration": 1},
                    {"type": "Healthy", "status": "False", "reason": "HealthCheckFailed", "message": msg, "lastTransitionTime": "2026-08-04T06:17:31Z", "observedGeneration": 1}]);
            }
            _ => {}
        }
    }
}

// ------------------------------------------------------ workloads (§1.9, §1.13)

/// A Deployment row: (namespace, name, image, node, replicas, hostNetwork, port).
type DeployRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u32,
    bool,
    u16,
);
const DEPLOYMENTS: &[DeployRow] = &[
    (
        "pihole",
        "pihole",
        "pihole/pihole:2026.05.0",
        "pi-k3s",
        1,
        true,
        80,
    ),
    (
        "pihole",
        "pihole-secondary",
        "pihole/pihole:2026.05.0",
        "pi5-worker-1",
        1,
        true,
        80,
    ),
    (
        "pihole",
        "unbound",
        "madnuttah/unbound:1.19.0",
        "pi-k3s",
        1,
        false,
        5335,
    ),
    (
        "pihole",
        "unbound-secondary",
        "madnuttah/unbound:1.19.0",
        "pi5-worker-1",
        1,
        false,
        5335,
    ),
    (
        "pihole",
        "pihole-exporter",
        "ekofr/pihole-exporter:v1.2.0",
        "pi5-worker-2",
        1,
        false,
        9617,
    ),
    (
        "pihole",
        "pihole-exporter-secondary",
        "ekofr/pihole-exporter:v1.2.0",
        "pi5-worker-2",
        1,
        false,
        9617,
    ),
    (
        "jellyfin",
        "jellyfin",
        "jellyfin/jellyfin:10.11.11",
        "pi-k3s",
        1,
        false,
        8096,
    ),
    (
        "immich",
        "immich-server",
        "ghcr.io/immich-app/immich-server:v2.7.5",
        "pi5-worker-2",
        1,
        false,
        2283,
    ),
    (
        "immich",
        "immich-valkey",
        "docker.io/valkey/valkey:8.1-alpine",
        "pi5-worker-2",
        1,
        false,
        6379,
    ),
    (
        "immich",
        "immich-postgresql",
        "ghcr.io/immich-app/postgres:14-vectorchord0.3.0",
        "pi5-worker-2",
        1,
        false,
        5432,
    ),
    (
        "media",
        "bazarr",
        "linuxserver/bazarr:1.5.2",
        "pi5-worker-1",
        1,
        false,
        6767,
    ),
    (
        "media",
        "calibre-web",
        "linuxserver/calibre-web:0.6.24",
        "pi5-worker-1",
        1,
        false,
        8083,
    ),
    (
        "media",
        "flaresolverr",
        "ghcr.io/flaresolverr/flaresolverr:v3.3.21",
        "pi5-worker-1",
        1,
        false,
        8191,
    ),
    (
        "media",
        "jellyseerr",
        "fallenbagel/jellyseerr:2.7.3",
        "pi5-worker-1",
        1,
        false,
        5055,
    ),
    (
        "media",
        "lazylibrarian",
        "linuxserver/lazylibrarian:latest",
        "pi5-worker-1",
        1,
        false,
        5299,
    ),
    (
        "media",
        "lidarr",
        "linuxserver/lidarr:2.13.3",
        "pi5-worker-1",
        1,
        false,
        8686,
    ),
    (
        "media",
        "prowlarr",
        "linuxserver/prowlarr:2.0.5",
        "pi5-worker-1",
        1,
        false,
        9696,
    ),
    (
        "media",
        "radarr",
        "linuxserver/radarr:6.1.1",
        "pi5-worker-1",
        1,
        false,
        7878,
    ),
    (
        "media",
        "readarr",
        "linuxserver/readarr:0.4.18-develop",
        "pi5-worker-1",
        1,
        false,
        8787,
    ),
    (
        "media",
        "sabnzbd",
        "linuxserver/sabnzbd:5.0.4",
        "pi5-worker-1",
        1,
        false,
        8080,
    ),
    (
        "media",
        "sonarr",
        "linuxserver/sonarr:4.0.17",
        "pi5-worker-1",
        1,
        false,
        8989,
    ),
    (
        "media",
        "qbittorrent",
        "qmcgaw/gluetun:v3.41.3",
        "pi5-worker-1",
        0,
        false,
        8080,
    ),
    (
        "homepage",
        "homepage",
        "ghcr.io/gethomepage/homepage:v1.13.2",
        "pi5-worker-2",
        1,
        false,
        3000,
    ),
    (
        "uptime-kuma",
        "uptime-kuma",
        "louislam/uptime-kuma:2",
        "pi-k3s",
        1,
        false,
        3001,
    ),
    (
        "uptime-kuma",
        "autokuma",
        "ghcr.io/bigboot/autokuma:2.0.0",
        "pi-k3s",
        1,
        false,
        0,
    ),
    (
        "mcp-homelab",
        "mcp-homelab",
        "ghcr.io/mtgibbs/pi-cluster-mcp:0.1.26",
        "pi5-worker-2",
        1,
        false,
        3000,
    ),
    (
        "private-exit-node",
        "exit-node-gateway",
        "ghcr.io/mtgibbs/private-exit-node:0.1.0",
        "pi-k3s",
        0,
        true,
        0,
    ),
    (
        "atlas",
        "atlas",
        "ghcr.io/mtgibbs/atlas:1.4.0",
        "pi5-worker-2",
        1,
        false,
        80,
    ),
    (
        "calendar",
        "calendar",
        "ghcr.io/mtgibbs/calendar:0.3.1",
        "pi5-worker-2",
        1,
        false,
        8080,
    ),
    (
        "cloudflare-tunnel",
        "cloudflared",
        "cloudflare/cloudflared:2026.7.0",
        "pi5-worker-2",
        1,
        false,
        0,
    ),
    (
        "family-board",
        "family-board",
        "ghcr.io/mtgibbs/family-board:0.9.0",
        "pi5-worker-2",
        1,
        false,
        80,
    ),
    (
        "kiwix",
        "kiwix",
        "ghcr.io/kiwix/kiwix-serve:3.7.0",
        "pi5-worker-2",
        1,
        false,
        80,
    ),
    (
        "kiwix-mcp",
        "kiwix-mcp",
        "ghcr.io/mtgibbs/kiwix-mcp:0.1.3",
        "pi5-worker-2",
        1,
        false,
        3000,
    ),
    (
        "local-llm-mcp",
        "local-llm-mcp",
        "ghcr.io/mtgibbs/local-llm-mcp:0.1.1",
        "pi5-worker-2",
        1,
        false,
        3000,
    ),
    (
        "log-aggregation",
        "vector",
        "timberio/vector:0.49.0-alpine",
        "pi5-worker-2",
        1,
        false,
        0,
    ),
    (
        "matrix",
        "element-web",
        "vectorim/element-web:v1.11.110",
        "pi5-worker-2",
        1,
        false,
        80,
    ),
    (
        "matrix",
        "synapse",
        "matrixdotorg/synapse:v1.136.0",
        "pi5-worker-2",
        1,
        false,
        8008,
    ),
    (
        "matrix",
        "matrix-postgresql",
        "postgres:16-alpine",
        "pi5-worker-2",
        1,
        false,
        5432,
    ),
    (
        "mealie",
        "mealie",
        "ghcr.io/mealie-recipes/mealie:v3.1.1",
        "pi5-worker-2",
        1,
        false,
        9000,
    ),
    (
        "mealie",
        "mealie-postgresql",
        "postgres:16-alpine",
        "pi5-worker-2",
        1,
        false,
        5432,
    ),
    (
        "mtgibbs-site",
        "mtgibbs-site",
        "ghcr.io/mtgibbs/mtgibbs.xyz:20260709154535",
        "pi5-worker-2",
        1,
        false,
        3000,
    ),
    (
        "n8n",
        "n8n",
        "n8nio/n8n:1.109.2",
        "pi5-worker-2",
        1,
        false,
        5678,
    ),
    (
        "n8n",
        "n8n-webhook",
        "n8nio/n8n:1.109.2",
        "pi5-worker-2",
        1,
        false,
        5678,
    ),
    (
        "n8n",
        "n8n-worker",
        "n8nio/n8n:1.109.2",
        "pi5-worker-2",
        1,
        false,
        0,
    ),
    (
        "n8n",
        "n8n-postgresql",
        "postgres:16-alpine",
        "pi5-worker-2",
        1,
        false,
        5432,
    ),
    (
        "n8n",
        "n8n-valkey",
        "valkey/valkey:8.1-alpine",
        "pi5-worker-2",
        1,
        false,
        6379,
    ),
    (
        "new-horizons",
        "new-horizons",
        "ghcr.io/mtgibbs/new-horizons:0.2.0",
        "pi5-worker-2",
        1,
        false,
        8080,
    ),
    (
        "ntfy",
        "ntfy",
        "binwiederhier/ntfy:v2.13.0",
        "pi5-worker-2",
        1,
        false,
        80,
    ),
    (
        "review-hub",
        "review-hub",
        "ghcr.io/mtgibbs/review-hub:0.7.3",
        "pi5-worker-2",
        1,
        false,
        8080,
    ),
    (
        "romm",
        "romm",
        "rommapp/romm:4.1.0",
        "pi5-worker-2",
        1,
        false,
        8080,
    ),
    (
        "romm",
        "romm-mariadb",
        "mariadb:11.8",
        "pi5-worker-2",
        1,
        false,
        3306,
    ),
    (
        "flux-system",
        "source-controller",
        "ghcr.io/fluxcd/source-controller:v1.7.4",
        "pi-k3s",
        1,
        false,
        9090,
    ),
    (
        "flux-system",
        "kustomize-controller",
        "ghcr.io/fluxcd/kustomize-controller:v1.7.3",
        "pi-k3s",
        1,
        false,
        0,
    ),
    (
        "flux-system",
        "helm-controller",
        "ghcr.io/fluxcd/helm-controller:v1.4.5",
        "pi-k3s",
        1,
        false,
        0,
    ),
    (
        "flux-system",
        "notification-controller",
        "ghcr.io/fluxcd/notification-controller:v1.7.5",
        "pi-k3s",
        1,
        false,
        9292,
    ),
    (
        "flux-system",
        "image-reflector-controller",
        "ghcr.io/fluxcd/image-reflector-controller:v1.0.4",
        "pi-k3s",
        1,
        false,
        0,
    ),
    (
        "flux-system",
        "image-automation-controller",
        "ghcr.io/fluxcd/image-automation-controller:v1.0.4",
        "pi-k3s",
        1,
        false,
        0,
    ),
    (
        "external-secrets",
        "external-secrets",
        "oci.external-secrets.io/external-secrets/external-secrets:v1.2.0",
        "pi5-worker-1",
        1,
        false,
        0,
    ),
    (
        "external-secrets",
        "external-secrets-webhook",
        "oci.external-secrets.io/external-secrets/external-secrets:v1.2.0",
        "pi5-worker-1",
        1,
        false,
        10250,
    ),
    (
        "external-secrets",
        "external-secrets-cert-controller",
        "oci.external-secrets.io/external-secrets/external-secrets:v1.2.0",
        "pi5-worker-1",
        1,
        false,
        0,
    ),
    (
        "cert-manager",
        "cert-manager",
        "quay.io/jetstack/cert-manager-controller:v1.21.1",
        "pi5-worker-1",
        1,
        false,
        9402,
    ),
    (
        "cert-manager",
        "cert-manager-webhook",
        "quay.io/jetstack/cert-manager-webhook:v1.21.1",
        "pi5-worker-1",
        1,
        false,
        10250,
    ),
    (
        "cert-manager",
        "cert-manager-cainjector",
        "quay.io/jetstack/cert-manager-cainjector:v1.21.1",
        "pi5-worker-1",
        1,
        false,
        0,
    ),
    (
        "ingress-nginx",
        "ingress-nginx-controller",
        "registry.k8s.io/ingress-nginx/controller:v1.12.0",
        "pi-k3s",
        1,
        false,
        443,
    ),
    (
        "monitoring",
        "kube-prometheus-grafana",
        "docker.io/grafana/grafana:12.1.0",
        "pi5-worker-2",
        1,
        false,
        3000,
    ),
    (
        "monitoring",
        "kube-prometheus-kube-state-metrics",
        "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.16.0",
        "pi5-worker-2",
        1,
        false,
        8080,
    ),
    (
        "monitoring",
        "kube-prometheus-operator",
        "quay.io/prometheus-operator/prometheus-operator:v0.85.0",
        "pi5-worker-2",
        1,
        false,
        10250,
    ),
    (
        "kube-system",
        "coredns",
        "rancher/mirrored-coredns-coredns:1.12.3",
        "pi-k3s",
        1,
        false,
        53,
    ),
    (
        "kube-system",
        "local-path-provisioner",
        "rancher/local-path-provisioner:v0.0.31",
        "pi-k3s",
        1,
        false,
        0,
    ),
    (
        "kube-system",
        "metrics-server",
        "rancher/mirrored-metrics-server:v0.8.0",
        "pi-k3s",
        1,
        false,
        10250,
    ),
];

/// Pod labels of a Deployment's template.
fn app_labels(ns: &str, name: &str) -> Value {
    match (ns, name) {
        ("immich", "immich-server") => {
            json!({"app.kubernetes.io/name": "server", "app.kubernetes.io/instance": "immich"})
        }
        ("kube-system", "coredns") => json!({"k8s-app": "kube-dns"}),
        _ => json!({"app": name}),
    }
}

struct PodMaker {
    next_ip: BTreeMap<u8, u32>,
}

impl PodMaker {
    fn ip(&mut self, node: &str, host: bool) -> String {
        let (host_ip, octet) = node_net(node);
        if host {
            return host_ip.to_string();
        }
        let n = self.next_ip.entry(octet).or_insert(10);
        *n += 1;
        format!("10.42.{octet}.{n}")
    }

    // One argument per pod field the generator sets.
    #[allow(clippy::too_many_arguments)]
    fn running(
        &mut self,
        ns: &str,
        name: &str,
        labels: Value,
        owner_ref: Value,
        node: &str,
        host: bool,
        containers: &[(&str, &str, u16)],
        started: &str,
    ) -> Value {
        let mut p = meta("v1", "Pod", Some(ns), name, started);
        p["metadata"]["labels"] = labels;
        p["metadata"]["ownerReferences"] = owner_ref;
        let ip = self.ip(node, host);
        let specs: Vec<Value> = containers.iter().map(|(n, image, port)| {
            let mut c = json!({"name": n, "image": image, "imagePullPolicy": "IfNotPresent", "resources": {}});
            if *port > 0 {
                c["ports"] = json!([{"containerPort": port, "protocol": "TCP"}]);
                c["readinessProbe"] = json!({"tcpSocket": {"port": port}, "periodSeconds": 10});
            }
            c
        }).collect();
        let statuses: Vec<Value> = containers.iter().map(|(n, image, _)| json!({"name": n, "image": image, "imageID": format!("{image}@sha256:{}", suffix(image, 20)),
            "ready": true, "started": true, "restartCount": 0, "state": {"running": {"startedAt": started}}})).collect();
        p["spec"] = json!({"nodeName": node, "hostNetwork": host, "restartPolicy": "Always", "containers": specs,
            "serviceAccountName": "default", "dnsPolicy": if host { "ClusterFirstWithHostNet" } else { "ClusterFirst" }});
        let (host_ip, _) = node_net(node);
        let conditions: Vec<Value> = [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ]
        .iter()
        .map(|t| json!({"type": t, "status": "True", "lastTransitionTime": started}))
        .collect();
        p["status"] = json!({"phase": "Running", "hostIP": host_ip, "podIP": ip, "podIPs": [{"ip": ip}], "startTime": started, "qosClass": "BestEffort",
            "conditions": conditions, "containerStatuses": statuses});
        p
    }

    /// A finished Job pod; `ok` false makes it Failed with exit code 1.
    #[allow(clippy::too_many_arguments)]
    fn finished(
        &mut self,
        ns: &str,
        name: &str,
        labels: Value,
        job: &str,
        node: &str,
        container: (&str, &str),
        start: i64,
        end: i64,
        ok: bool,
    ) -> Value {
        let mut p = meta("v1", "Pod", Some(ns), name, &rfc3339(start));
        p["metadata"]["labels"] = labels;
        p["metadata"]["ownerReferences"] = owner("batch/v1", "Job", ns, job);
        let ip = self.ip(node, false);
        let (host_ip, _) = node_net(node);
        let (reason, code, phase) = if ok {
            ("Completed", 0, "Succeeded")
        } else {
            ("Error", 1, "Failed")
        };
        let cond_reason = if ok { "PodCompleted" } else { "PodFailed" };
        p["spec"] = json!({"nodeName": node, "restartPolicy": "OnFailure",
            "containers": [{"name": container.0, "image": container.1, "imagePullPolicy": "IfNotPresent", "resources": {}}]});
        p["status"] = json!({"phase": phase, "hostIP": host_ip, "podIP": ip, "startTime": rfc3339(start), "qosClass": "BestEffort",
            "conditions": [{"type": "Initialized", "status": "True", "reason": cond_reason, "lastTransitionTime": rfc3339(start)},
                {"type": "Ready", "status": "False", "reason": cond_reason, "lastTransitionTime": rfc3339(end)},
                {"type": "ContainersReady", "status": "False", "reason": cond_reason, "lastTransitionTime": rfc3339(end)},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": rfc3339(start)}],
            "containerStatuses": [{"name": container.0, "image": container.1, "imageID": format!("{}@sha256:{}", container.1, suffix(container.1, 20)),
                "ready": false, "started": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": rfc3339(start), "finishedAt": rfc3339(end)}}}]});
        p
    }
}

fn condition_true(type_: &str, reason: &str, message: &str, since: &str) -> Value {
    json!({"type": type_, "status": "True", "reason": reason, "message": message, "lastTransitionTime": since, "lastUpdateTime": since})
}

/// Deployments, their ReplicaSets and pods; DaemonSets and StatefulSets.
fn workloads(s: &dyn Fn(&str) -> bool, pm: &mut PodMaker) -> (Vec<Value>, Vec<Value>) {
    let mut objects = Vec::new();
    let mut pods = Vec::new();
    let created = "2026-08-12T09:40:00Z";
    for (ns, name, image, node, replicas, host, port) in DEPLOYMENTS {
        let mut replicas = *replicas;
        if (s("jellyfin-scaled-to-zero") && *name == "jellyfin")
            || (s("immich-server-parked") && *name == "immich-server")
        {
            replicas = 0;
        }
        let labels = app_labels(ns, name);
        let hash = suffix(&format!("{ns}/{name}"), 10);
        let rs_name = format!("{name}-{hash}");
        let mut d = meta(
            "apps/v1",
            "Deployment",
            Some(ns),
            name,
            "2025-12-20T00:00:00Z",
        );
        let mut dlabels = labels.clone();
        if KUSTOMIZATIONS.iter().any(|k| k.0 == *ns) {
            dlabels["kustomize.toolkit.fluxcd.io/name"] = json!(ns);
            dlabels["kustomize.toolkit.fluxcd.io/namespace"] = json!("flux-system");
        }
        d["metadata"]["labels"] = dlabels;
        let mut container = json!({"name": if *ns == "pihole" && name.starts_with("pihole") && !name.contains("exporter") { "pihole" } else { name },
            "image": image, "imagePullPolicy": "IfNotPresent", "resources": {}});
        if *port > 0 {
            container["ports"] =
                json!([{"containerPort": port, "protocol": "TCP", "name": "http"}]);
        }
        if *ns == "pihole" && name.starts_with("pihole") && !name.contains("exporter") {
            container["env"] = json!([{"name": "TZ", "value": "America/New_York"}, {"name": "DNSSEC", "value": "false"},
                {"name": "WEBPASSWORD", "valueFrom": {"secretKeyRef": {"name": "pihole-secret", "key": "WEBPASSWORD"}}}]);
        }
        if *name == "mcp-homelab" {
            container["envFrom"] = json!([{"secretRef": {"name": "mcp-homelab-secrets"}}]);
            container["env"] =
                json!([{"name": "PIHOLE_PASSWORD", "value": "correct-horse-battery-staple"}]);
        }
        let mut pod_spec = json!({"containers": [container], "hostNetwork": host, "nodeSelector": {"kubernetes.io/hostname": node}});
        if *name == "jellyfin" {
            pod_spec["volumes"] = json!([{"name": "config", "persistentVolumeClaim": {"claimName": "jellyfin-config"}},
                {"name": "video", "persistentVolumeClaim": {"claimName": "jellyfin-video", "readOnly": true}}]);
        }
        d["spec"] = json!({"replicas": replicas, "selector": {"matchLabels": labels}, "revisionHistoryLimit": 10,
            "strategy": {"type": if ["pihole", "jellyfin", "mcp-homelab"].contains(name) { "Recreate" } else { "RollingUpdate" }},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec}});
        let rs_msg = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
        d["status"] = json!({"observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas, "updatedReplicas": replicas,
            "conditions": [condition_true("Available", "MinimumReplicasAvailable", "Deployment has minimum availability.", created),
                condition_true("Progressing", "NewReplicaSetAvailable", &rs_msg, created)]});
        if replicas == 0
            && let Some(st) = d["status"].as_object_mut()
        {
            for k in ["readyReplicas", "availableReplicas", "updatedReplicas"] {
                st.remove(k);
            }
        }
        let volumes = d["spec"]["template"]["spec"]["volumes"].clone();
        objects.push(d);
        let mut pod_labels = labels.clone();
        pod_labels["pod-template-hash"] = json!(hash);
        let mut rs = meta("apps/v1", "ReplicaSet", Some(ns), &rs_name, created);
        rs["metadata"]["labels"] = pod_labels.clone();
        rs["metadata"]["ownerReferences"] = owner("apps/v1", "Deployment", ns, name);
        rs["spec"] = json!({"replicas": replicas, "selector": {"matchLabels": pod_labels}, "template": {"metadata": {"labels": pod_labels}, "spec": {"containers": [{"name": name, "image": image}]}}});
        rs["status"] = json!({"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas, "observedGeneration": 1});
        objects.push(rs);
        for i in 0..replicas {
            let pod_name = format!("{rs_name}-{}", suffix(&format!("{rs_name}/{i}"), 5));
            let cname = d_container_name(ns, name);
            pods.push(pm.running(
                ns,
                &pod_name,
                pod_labels.clone(),
                owner("apps/v1", "ReplicaSet", ns, &rs_name),
                node,
                *host,
                &[(&cname, image, *port)],
                created,
            ));
            if let Some(p) = pods.last_mut()
                && volumes.is_array()
            {
                p["spec"]["volumes"] = volumes.clone();
            }
        }
    }
    if s("immich-server-parked")
        && let Some(pg) = pods
            .iter_mut()
            .find(|p| p["metadata"]["labels"]["app"] == "immich-postgresql")
    {
        // A few realistic restarts from weeks ago.
        pg["status"]["containerStatuses"][0]["restartCount"] = json!(2);
        pg["status"]["containerStatuses"][0]["lastState"] = json!({"terminated": {"exitCode": 0, "reason": "Completed",
            "finishedAt": "2026-07-30T03:00:00Z"}});
    }

    // DaemonSets: (namespace, name, labels, image, excludes the Pi 3).
    let daemonsets: &[(&str, &str, Value, &str, bool)] = &[
        (
            "mcp-homelab",
            "mcp-debug-agent",
            json!({"app.kubernetes.io/name": "mcp-debug-agent"}),
            "nicolaka/netshoot:v0.13",
            true,
        ),
        (
            "monitoring",
            "kube-prometheus-prometheus-node-exporter",
            json!({"app.kubernetes.io/name": "prometheus-node-exporter"}),
            "quay.io/prometheus/node-exporter:v1.9.1",
            false,
        ),
        (
            "kube-system",
            "pi-k3s-hosts-overrides",
            json!({"app": "pi-k3s-hosts-overrides"}),
            "busybox:1.38.0",
            true,
        ),
    ];
    for (ns, name, labels, image, skip_pi3) in daemonsets {
        let nodes: Vec<&str> = ["pi-k3s", "pi5-worker-1", "pi5-worker-2", "pi3-worker-2"]
            .into_iter()
            .filter(|n| !(*skip_pi3 && *n == "pi3-worker-2"))
            .collect();
        let n = nodes.len();
        let mut ds = meta(
            "apps/v1",
            "DaemonSet",
            Some(ns),
            name,
            "2025-12-20T00:00:00Z",
        );
        ds["spec"] = json!({"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
            "spec": {"hostNetwork": true, "containers": [{"name": name, "image": image}]}}});
        ds["status"] = json!({"desiredNumberScheduled": n, "currentNumberScheduled": n, "numberReady": n, "numberAvailable": n,
            "updatedNumberScheduled": n, "numberMisscheduled": 0, "observedGeneration": 1});
        objects.push(ds);
        let revision = suffix(name, 10);
        for node in nodes {
            let mut l = labels.clone();
            l["controller-revision-hash"] = json!(revision);
            pods.push(pm.running(
                ns,
                &format!("{name}-{}", suffix(&format!("{name}/{node}"), 5)),
                l,
                owner("apps/v1", "DaemonSet", ns, name),
                node,
                true,
                &[(name, image, 0)],
                created,
            ));
        }
    }
    // StatefulSets made by operators and charts.
    for (ns, name, image, node, port) in [
        (
            "monitoring",
            "alertmanager-kube-prometheus-alertmanager",
            "quay.io/prometheus/alertmanager:v0.28.1",
            "pi5-worker-2",
            9093u16,
        ),
        (
            "monitoring",
            "prometheus-kube-prometheus-prometheus",
            "quay.io/prometheus/prometheus:v3.5.0",
            "pi-k3s",
            9090,
        ),
        (
            "log-aggregation",
            "loki",
            "docker.io/grafana/loki:3.5.3",
            "pi5-worker-2",
            3100,
        ),
    ] {
        let labels = json!({"app.kubernetes.io/name": name});
        let mut st = meta(
            "apps/v1",
            "StatefulSet",
            Some(ns),
            name,
            "2025-12-20T00:00:00Z",
        );
        st["spec"] = json!({"replicas": 1, "serviceName": name, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": name, "image": image}]}}});
        st["status"] = json!({"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "currentReplicas": 1, "updatedReplicas": 1, "observedGeneration": 1});
        objects.push(st);
        let mut l = labels.clone();
        l["statefulset.kubernetes.io/pod-name"] = json!(format!("{name}-0"));
        pods.push(pm.running(
            ns,
            &format!("{name}-0"),
            l,
            owner("apps/v1", "StatefulSet", ns, name),
            node,
            false,
            &[(name, image, port)],
            created,
        ));
    }
    (objects, pods)
}

fn d_container_name(ns: &str, name: &str) -> String {
    if ns == "pihole" && name.starts_with("pihole") && !name.contains("exporter") {
        "pihole".into()
    } else {
        name.to_string()
    }
}

// ------------------------------------------------------------ batch (§1.7)

/// CronJob rows: (namespace, name, schedule, timeZone, success history,
/// backoffLimit, labels, node pin, last schedule, period in seconds, job
/// duration in seconds).
type CronRow = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    usize,
    u32,
    Option<(&'static str, &'static str)>,
    Option<&'static str>,
    &'static str,
    i64,
    i64,
);
const CRONJOBS: &[CronRow] = &[
    (
        "backup-jobs",
        "pvc-backup",
        "0 2 * * 0",
        None,
        3,
        2,
        None,
        Some("pi-k3s"),
        "2026-08-16T02:00:00Z",
        7 * DAY,
        521,
    ),
    (
        "backup-jobs",
        "k3s-datastore-backup",
        "15 2 * * 0",
        None,
        3,
        2,
        None,
        Some("pi-k3s"),
        "2026-08-16T02:15:00Z",
        7 * DAY,
        163,
    ),
    (
        "backup-jobs",
        "postgres-backup",
        "30 2 * * 0",
        None,
        3,
        2,
        None,
        None,
        "2026-08-16T02:30:00Z",
        7 * DAY,
        244,
    ),
    (
        "backup-jobs",
        "worker2-backup",
        "30 2 * * 0",
        None,
        3,
        2,
        None,
        Some("pi5-worker-2"),
        "2026-08-16T02:30:00Z",
        7 * DAY,
        318,
    ),
    (
        "backup-jobs",
        "media-backup",
        "0 3 * * 0",
        None,
        3,
        2,
        None,
        Some("pi5-worker-1"),
        "2026-08-16T03:00:00Z",
        7 * DAY,
        498,
    ),
    (
        "backup-jobs",
        "git-mirror-backup",
        "30 3 * * 0",
        None,
        3,
        2,
        None,
        Some("pi-k3s"),
        "2026-08-16T03:30:00Z",
        7 * DAY,
        137,
    ),
    (
        "backup-jobs",
        "unifi-backup",
        "30 3 * * 0",
        None,
        3,
        2,
        None,
        None,
        "2026-08-16T03:30:00Z",
        7 * DAY,
        129,
    ),
    (
        "backup-jobs",
        "mariadb-backup",
        "45 3 * * 0",
        None,
        3,
        2,
        None,
        None,
        "2026-08-16T03:45:00Z",
        7 * DAY,
        201,
    ),
    (
        "backup-jobs",
        "restore-test",
        "0 4 * * 0",
        None,
        3,
        1,
        None,
        Some("pi-k3s"),
        "2026-08-16T04:00:00Z",
        7 * DAY,
        235,
    ),
    (
        "media",
        "import-resolver",
        "*/15 * * * *",
        None,
        1,
        1,
        None,
        None,
        "2026-08-20T06:00:00Z",
        900,
        20,
    ),
    (
        "media",
        "orphan-sweep",
        "0 6 * * 1",
        None,
        4,
        1,
        None,
        None,
        "2026-08-17T06:00:00Z",
        7 * DAY,
        45,
    ),
    (
        "pihole",
        "pihole-brainrot-allow",
        "0 17 * * *",
        Some("America/New_York"),
        3,
        2,
        Some(("app", "pihole-brainrot")),
        None,
        "2026-08-19T21:00:00Z",
        DAY,
        9,
    ),
    (
        "pihole",
        "pihole-brainrot-block",
        "0 19 * * *",
        Some("America/New_York"),
        3,
        2,
        Some(("app", "pihole-brainrot")),
        None,
        "2026-08-19T23:00:00Z",
        DAY,
        8,
    ),
    (
        "renovate",
        "renovate",
        "0 6 * * 6",
        Some("America/Chicago"),
        3,
        2,
        Some(("homelab.mcp/triggerable", "true")),
        None,
        "2026-08-15T11:00:00Z",
        7 * DAY,
        731,
    ),
];

fn job_image(ns: &str, name: &str) -> &'static str {
    match (ns, name) {
        ("backup-jobs", "unifi-backup") => "alpine:3.24",
        ("backup-jobs", _) => "instrumentisto/rsync-ssh:alpine",
        ("renovate", _) => "renovate/renovate:43",
        _ => "alpine:3.24",
    }
}

/// One Job (and its pods). `attempts` failed pods when `ok` is false.
#[allow(clippy::too_many_arguments)]
fn job(
    pm: &mut PodMaker,
    ns: &str,
    cronjob: Option<&str>,
    name: &str,
    template_labels: &Value,
    node: &str,
    container: (&str, &str),
    start: i64,
    duration: i64,
    ok: bool,
    attempts: u32,
    backoff: u32,
) -> (Value, Vec<Value>) {
    let mut j = meta("batch/v1", "Job", Some(ns), name, &rfc3339(start));
    let uid = format!("uid-job-{ns}-{name}");
    let mut labels = template_labels.clone();
    for (k, v) in [
        ("batch.kubernetes.io/job-name", name),
        ("job-name", name),
        ("batch.kubernetes.io/controller-uid", uid.as_str()),
        ("controller-uid", uid.as_str()),
    ] {
        labels[k] = json!(v);
    }
    j["metadata"]["labels"] = labels.clone();
    if let Some(cj) = cronjob {
        j["metadata"]["ownerReferences"] = owner("batch/v1", "CronJob", ns, cj);
        j["metadata"]["annotations"] =
            json!({"batch.kubernetes.io/cronjob-scheduled-timestamp": rfc3339(start)});
    }
    j["spec"] = json!({"backoffLimit": backoff, "completions": 1, "parallelism": 1,
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
        "template": {"metadata": {"labels": labels}, "spec": {"restartPolicy": "OnFailure",
            "containers": [{"name": container.0, "image": container.1}]}}});
    let end = start + duration;
    let mut pods = Vec::new();
    if ok {
        j["status"] = json!({"startTime": rfc3339(start), "completionTime": rfc3339(end), "succeeded": 1, "ready": 0, "terminating": 0,
            "conditions": [{"type": "SuccessCriteriaMet", "status": "True", "lastProbeTime": rfc3339(end), "lastTransitionTime": rfc3339(end)},
                {"type": "Complete", "status": "True", "lastProbeTime": rfc3339(end), "lastTransitionTime": rfc3339(end)}]});
        pods.push(pm.finished(
            ns,
            &format!("{name}-{}", suffix(name, 5)),
            labels,
            name,
            node,
            container,
            start + 2,
            end,
            true,
        ));
    } else {
        let msg = "Job has reached the specified backoff limit";
        j["status"] = json!({"startTime": rfc3339(start), "failed": attempts, "ready": 0, "terminating": 0,
            "conditions": [{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": msg, "lastProbeTime": rfc3339(end), "lastTransitionTime": rfc3339(end)},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": msg, "lastProbeTime": rfc3339(end), "lastTransitionTime": rfc3339(end)}]});
        for a in 0..attempts {
            let s = start + i64::from(a) * (duration / i64::from(attempts.max(1)));
            pods.push(pm.finished(
                ns,
                &format!("{name}-{}", suffix(&format!("{name}/{a}"), 5)),
                labels.clone(),
                name,
                node,
                container,
                s + 2,
                s + duration / i64::from(attempts.max(1)),
                false,
            ));
        }
    }
    (j, pods)
}

fn batch(
    s: &dyn Fn(&str) -> bool,
    pm: &mut PodMaker,
    logs: &mut BTreeMap<String, String>,
) -> (Vec<Value>, Vec<Value>) {
    let mut objects = Vec::new();
    let mut pods = Vec::new();
    let overdue = s("backup-overdue");
    for (ns, name, schedule, tz, history, backoff, label, pin, last, period, duration) in CRONJOBS {
        let last_t = crate::fake_kube::parse_time(last);
        let image = job_image(ns, name);
        let mut template_labels = json!({});
        if let Some((k, v)) = label {
            template_labels[*k] = json!(v);
        }
        let node = pin.unwrap_or(match *ns {
            "media" => "pi5-worker-1",
            _ => "pi3-worker-2",
        });
        let failing = overdue && (*name == "pvc-backup" || *name == "restore-test");
        let mut cj = meta(
            "batch/v1",
            "CronJob",
            Some(ns),
            name,
            "2025-12-20T00:00:00Z",
        );
        let mut cj_labels = json!({});
        if let Some((k, v)) = label {
            cj_labels[*k] = json!(v);
        }
        if KUSTOMIZATIONS.iter().any(|k| k.0 == *ns) {
            cj_labels["kustomize.toolkit.fluxcd.io/name"] = json!(ns);
            cj_labels["kustomize.toolkit.fluxcd.io/namespace"] = json!("flux-system");
        }
        cj["metadata"]["labels"] = cj_labels;
        let mut container =
            json!({"name": name, "image": image, "imagePullPolicy": "IfNotPresent"});
        let mut volumes = json!([]);
        if *ns == "backup-jobs" {
            container["command"] = json!(["/bin/sh", "/scripts/backup.sh"]);
            container["env"] = json!([
                {"name": "BACKUP_TARGET", "value": "cluster-backup@storage.lab.mtgibbs.dev:/share/cluster/backups"},
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "romm-db-password", "key": "password"}}},
                {"name": "RSYNC_PASSWORD", "value": "not-a-real-password-but-looks-like-one"}]);
            container["volumeMounts"] =
                json!([{"name": "ssh-key", "mountPath": "/root/.ssh", "readOnly": true}]);
            volumes = json!([{"name": "ssh-key", "secret": {"secretName": "backup-ssh-key", "defaultMode": 256}}]);
            if *name == "restore-test"
                && let Some(v) = volumes.as_array_mut()
            {
                v.push(json!({"name": "canary", "persistentVolumeClaim": {"claimName": "restore-canary"}}));
            }
        }
        let mut pod_spec =
            json!({"restartPolicy": "OnFailure", "containers": [container], "volumes": volumes});
        if let Some(n) = pin {
            pod_spec["nodeSelector"] = json!({"kubernetes.io/hostname": n});
        }
        let mut job_spec = json!({"backoffLimit": backoff, "template": {"metadata": {"labels": template_labels}, "spec": pod_spec}});
        if *name == "renovate" {
            job_spec["activeDeadlineSeconds"] = json!(1800);
        }
        cj["spec"] = json!({"schedule": schedule, "concurrencyPolicy": "Forbid", "suspend": false,
            "successfulJobsHistoryLimit": history, "failedJobsHistoryLimit": 3,
            "jobTemplate": {"metadata": {"labels": template_labels}, "spec": job_spec}});
        if let Some(tz) = tz {
            cj["spec"]["timeZone"] = json!(tz);
        }
        // Retained Jobs: the newest `history` successful ones, or in the
        // overdue scenario three failed ones after three successful ones.
        let mut runs: Vec<(i64, bool)> = Vec::new();
        if failing {
            for k in 0..3 {
                runs.push((last_t - k * period, false));
            }
            for k in 3..6 {
                runs.push((last_t - k * period, true));
            }
        } else {
            for k in 0..*history as i64 {
                runs.push((last_t - k * period, true));
            }
        }
        let mut last_success = None;
        for (t, ok) in &runs {
            let job_name = format!("{name}-{}", t / 60);
            let attempts = if *ok { 1 } else { backoff + 1 };
            // The newest success takes exactly the table's duration (so
            // lastSuccessfulTime matches HOMELAB.md); older runs vary a little.
            let dur = if *ok && last_success.is_none() {
                *duration
            } else {
                duration + (t / 60 % 37)
            };
            let (j, jp) = job(
                pm,
                ns,
                Some(name),
                &job_name,
                &template_labels,
                node,
                (name, image),
                *t,
                dur,
                *ok,
                attempts,
                *backoff,
            );
            if *ok && last_success.is_none() {
                last_success = Some(t + dur);
            }
            for p in &jp {
                let pod = p["metadata"]["name"].as_str().unwrap_or_default();
                let text = match (*ok, *name) {
                    (true, "restore-test") => format!(
                        "restore-test: restoring {}/ into canary\nrestore-test: checksums match, OK\n",
                        backup_dir(*t)
                    ),
                    (true, _) if *ns == "backup-jobs" => format!(
                        "starting {name} at {}\nsending incremental file list\nsent 1,204,331 bytes  received 8,112 bytes\nbackup complete: {}\n",
                        rfc3339(*t),
                        backup_dir(*t)
                    ),
                    (true, _) => format!("{name}: done\n"),
                    (false, "restore-test") => format!(
                        "restore-test: looking for {}/\nERROR: expected backup directory {}/ is missing\n",
                        backup_dir(*t),
                        backup_dir(*t)
                    ),
                    (false, _) => format!(
                        "starting {name} at {}\nssh: connect to host storage.lab.mtgibbs.dev port 22: Connection timed out\nrsync: connection unexpectedly closed (0 bytes received so far) [sender]\nrsync error: unexplained error (code 255) at io.c(232) [sender=3.4.1]\n",
                        rfc3339(*t)
                    ),
                };
                logs.insert(format!("{ns}/{pod}/{name}"), text);
            }
            objects.push(j);
            pods.extend(jp);
        }
        cj["status"] = json!({"lastScheduleTime": rfc3339(last_t), "active": []});
        if let Some(ls) = last_success {
            cj["status"]["lastSuccessfulTime"] = json!(rfc3339(ls));
        }
        objects.push(cj);
    }
    // Standalone Jobs.
    for (ns, name, label) in [
        (
            "pihole",
            "pihole-brainrot-setup-adgroups-2",
            json!({"app": "pihole-brainrot"}),
        ),
        ("kiwix", "kiwix-seed", json!({})),
        ("mealie", "mealie-ai-provider-bootstrap-v3", json!({})),
    ] {
        let (j, jp) = job(
            pm,
            ns,
            None,
            name,
            &label,
            "pi5-worker-2",
            (name, "alpine:3.24"),
            crate::fake_kube::parse_time("2026-07-02T14:00:00Z"),
            31,
            true,
            1,
            2,
        );
        objects.push(j);
        pods.extend(jp);
    }
    (objects, pods)
}

fn backup_dir(t: i64) -> String {
    format!(
        "/share/cluster/backups/{}",
        rfc3339(t).get(..10).unwrap_or_default()
    )
}

// ---------------------------------------------- Services and Ingresses (§1.8, §1.10)

/// Ingress backends in INGRESS_TLS order: service:port per host.
const INGRESS_BACKENDS: &[&[(&str, u16)]] = &[
    &[("atlas", 80)],
    &[("qnap-external", 8080)],
    &[("unifi-external", 443)],
    &[("family-board", 80)],
    &[("homepage", 3000)],
    &[("immich-server", 2283)],
    &[("jellyfin", 8096)],
    &[("kiwix", 80)],
    &[("kiwix-mcp", 3000)],
    &[("local-llm-mcp", 3000)],
    &[("synapse", 8008), ("element", 80)],
    &[("mcp-homelab", 3000)],
    &[("mealie", 9000)],
    &[("bazarr", 6767)],
    &[("calibre-web", 8083)],
    &[("jellyseerr", 5055)],
    &[("lazylibrarian", 5299)],
    &[("lidarr", 8686)],
    &[("prowlarr", 9696)],
    &[("qbittorrent", 8080)],
    &[("radarr", 7878)],
    &[("readarr", 8787)],
    &[("sabnzbd", 8080)],
    &[("sonarr", 8989)],
    &[("kube-prometheus-grafana", 3000)],
    &[("mtgibbs-site", 3000)],
    &[("n8n", 5678)],
    &[("pihole-web", 80)],
    &[("romm", 8080)],
    &[("uptime-kuma", 3001)],
];

/// Ingress name for the i-th TLS entry.
fn ingress_name(ns: &str, secret: &str) -> String {
    match (ns, secret) {
        ("external-services", s) => s.trim_end_matches("-tls").to_string(),
        ("immich", _) => "immich-server".into(),
        ("monitoring", _) => "grafana".into(),
        (_, s) => s.trim_end_matches("-tls").to_string(),
    }
}

fn ingresses() -> Vec<Value> {
    INGRESS_TLS
        .iter()
        .zip(INGRESS_BACKENDS)
        .map(|((ns, secret, hosts), backends)| {
            let name = ingress_name(ns, secret);
            let mut o = meta("networking.k8s.io/v1", "Ingress", Some(ns), &name, "2026-01-05T00:00:00Z");
            o["metadata"]["annotations"] = json!({"cert-manager.io/cluster-issuer": "letsencrypt-prod"});
            let rules: Vec<Value> = hosts.iter().zip(backends.iter().cycle()).map(|(h, (svc, port))| json!({"host": h,
                "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": svc, "port": {"number": port}}}}]}})).collect();
            o["spec"] = json!({"ingressClassName": "nginx", "tls": [{"hosts": hosts, "secretName": secret}], "rules": rules});
            o["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.168.1.55"}]}});
            o
        })
        .collect()
}

/// A Service: (namespace, name, ports (name, port, target, protocol), selector, ClusterIP).
type ServiceRow<'a> = (
    &'a str,
    String,
    Vec<(&'a str, u16, u16, &'a str)>,
    Option<Value>,
    String,
);

/// Services of §1.10 plus one per Ingress backend.
fn services() -> Vec<Value> {
    let mut rows: Vec<ServiceRow> = vec![
        (
            "default",
            "kubernetes".into(),
            vec![("https", 443, 6443, "TCP")],
            None,
            "10.43.0.1".into(),
        ),
        (
            "kube-system",
            "kube-dns".into(),
            vec![
                ("dns", 53, 53, "UDP"),
                ("dns-tcp", 53, 53, "TCP"),
                ("metrics", 9153, 9153, "TCP"),
            ],
            Some(json!({"k8s-app": "kube-dns"})),
            "10.43.0.10".into(),
        ),
        (
            "pihole",
            "unbound".into(),
            vec![
                ("dns-udp", 5335, 5335, "UDP"),
                ("dns-tcp", 5335, 5335, "TCP"),
            ],
            Some(json!({"app": "unbound"})),
            "10.43.102.209".into(),
        ),
        (
            "pihole",
            "unbound-secondary".into(),
            vec![
                ("dns-udp", 5335, 5335, "UDP"),
                ("dns-tcp", 5335, 5335, "TCP"),
            ],
            Some(json!({"app": "unbound-secondary"})),
            "10.43.88.53".into(),
        ),
        (
            "pihole",
            "pihole-exporter".into(),
            vec![("metrics", 9617, 9617, "TCP")],
            Some(json!({"app": "pihole-exporter"})),
            "10.43.12.7".into(),
        ),
        (
            "pihole",
            "pihole-exporter-secondary".into(),
            vec![("metrics", 9617, 9617, "TCP")],
            Some(json!({"app": "pihole-exporter-secondary"})),
            "10.43.12.8".into(),
        ),
    ];
    let fixed_ip = |ns: &str, name: &str| -> Option<&'static str> {
        Some(match (ns, name) {
            ("pihole", "pihole-web") => "10.43.45.120",
            ("jellyfin", "jellyfin") => "10.43.150.10",
            ("immich", "immich-server") => "10.43.200.31",
            ("mcp-homelab", "mcp-homelab") => "10.43.77.3",
            ("homepage", "homepage") => "10.43.60.2",
            ("uptime-kuma", "uptime-kuma") => "10.43.61.9",
            _ => return None,
        })
    };
    for (i, ((ns, _, _), backends)) in INGRESS_TLS.iter().zip(INGRESS_BACKENDS).enumerate() {
        for (j, (svc, port)) in backends.iter().enumerate() {
            let selector = match (*ns, *svc) {
                ("external-services", _) => None,
                ("immich", "immich-server") => Some(app_labels("immich", "immich-server")),
                ("pihole", "pihole-web") => Some(json!({"app": "pihole"})),
                ("matrix", "element") => Some(json!({"app": "element-web"})),
                (_, s) => Some(json!({"app": s})),
            };
            let name = if *svc == "mcp-homelab" { "sse" } else { "http" };
            let ip = fixed_ip(ns, svc)
                .map(str::to_string)
                .unwrap_or_else(|| format!("10.43.{}.{}", 100 + i, 10 + j));
            rows.push((
                ns,
                svc.to_string(),
                vec![(name, *port, *port, "TCP")],
                selector,
                ip,
            ));
        }
    }
    rows.into_iter()
        .map(|(ns, name, ports, selector, ip)| {
            let mut o = meta("v1", "Service", Some(ns), &name, "2025-12-20T00:00:00Z");
            let ports: Vec<Value> = ports.iter().map(|(n, p, t, proto)| json!({"name": n, "port": p,
                "targetPort": if name == "mcp-homelab" { json!("http") } else { json!(t) }, "protocol": proto})).collect();
            o["spec"] = json!({"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "ports": ports, "sessionAffinity": "None",
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"});
            if let Some(sel) = selector {
                o["spec"]["selector"] = sel;
            }
            o["status"] = json!({"loadBalancer": {}});
            o
        })
        .collect()
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// EndpointSlices derived from the pods each Service selects (§1.10).
pub fn endpoint_slices(services: &[Value], pods: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for svc in services {
        let ns = svc["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = svc["metadata"]["name"].as_str().unwrap_or_default();
        let selector = &svc["spec"]["selector"];
        let ports: Vec<Value> = svc["spec"]["ports"].as_array().cloned().unwrap_or_default().iter()
            .map(|p| json!({"name": p["name"], "port": if p["targetPort"].is_number() { p["targetPort"].clone() } else { p["port"].clone() }, "protocol": p["protocol"]}))
            .collect();
        let endpoints: Vec<Value> = if selector.is_null() {
            // Manual Endpoints mirrored into a slice (external services).
            let ip = if name == "qnap-external" {
                "192.168.1.61"
            } else {
                "192.168.1.1"
            };
            vec![json!({"addresses": [ip], "conditions": {"ready": true}})]
        } else {
            pods.iter()
                .filter(|p| p["metadata"]["namespace"] == ns && p["status"]["phase"] == "Running")
                .filter(|p| labels_match(selector, &p["metadata"]["labels"]))
                .map(|p| {
                    let ready = p["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
                    json!({"addresses": [p["status"]["podIP"]], "conditions": {"ready": ready, "serving": ready, "terminating": false},
                        "nodeName": p["spec"]["nodeName"], "targetRef": {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}})
                })
                .collect()
        };
        let slice_name = format!("{name}-{}", suffix(&format!("{ns}/{name}"), 5));
        let mut o = meta(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            Some(ns),
            &slice_name,
            "2025-12-20T00:00:00Z",
        );
        o["metadata"]["labels"] = json!({"kubernetes.io/service-name": name,
            "endpointslice.kubernetes.io/managed-by": if selector.is_null() { "endpointslicemirroring-controller.k8s.io" } else { "endpointslice-controller.k8s.io" }});
        o["metadata"]["ownerReferences"] = owner("v1", "Service", ns, name);
        o["addressType"] = json!("IPv4");
        o["endpoints"] = json!(endpoints);
        o["ports"] = json!(ports);
        out.push(o);
    }
    out
}

// ---------------------------------------------------------------- PVCs (§1.11)

fn pvcs() -> Vec<Value> {
    // (namespace, name, class, size, access, node or NFS volume)
    let mut rows: Vec<(&str, String, &str, &str, &str, &str)> = vec![
        (
            "pihole",
            "pihole-etc".into(),
            "local-path",
            "1Gi",
            "ReadWriteOnce",
            "pi-k3s",
        ),
        (
            "pihole",
            "pihole-dnsmasq".into(),
            "local-path",
            "100Mi",
            "ReadWriteOnce",
            "pi-k3s",
        ),
        (
            "pihole",
            "pihole-etc-secondary".into(),
            "local-path",
            "1Gi",
            "ReadWriteOnce",
            "pi5-worker-1",
        ),
        (
            "pihole",
            "pihole-dnsmasq-secondary".into(),
            "local-path",
            "100Mi",
            "ReadWriteOnce",
            "pi5-worker-1",
        ),
        (
            "jellyfin",
            "jellyfin-config".into(),
            "local-path",
            "5Gi",
            "ReadWriteOnce",
            "pi-k3s",
        ),
        (
            "jellyfin",
            "jellyfin-video".into(),
            "nfs-video",
            "1Ti",
            "ReadOnlyMany",
            "nfs:jellyfin-video-nfs:/cluster/media/video",
        ),
        (
            "immich",
            "immich-library".into(),
            "",
            "500Gi",
            "ReadWriteMany",
            "nfs:immich-library-nfs:/cluster/photos",
        ),
        (
            "immich",
            "immich-postgresql-data".into(),
            "local-path",
            "5Gi",
            "ReadWriteOnce",
            "pi5-worker-2",
        ),
        (
            "uptime-kuma",
            "uptime-kuma-data".into(),
            "local-path",
            "2Gi",
            "ReadWriteOnce",
            "pi-k3s",
        ),
        (
            "backup-jobs",
            "restore-canary".into(),
            "local-path",
            "1Gi",
            "ReadWriteOnce",
            "pi-k3s",
        ),
        (
            "mealie",
            "mealie-data".into(),
            "local-path",
            "5Gi",
            "ReadWriteOnce",
            "pi5-worker-2",
        ),
        (
            "mealie",
            "mealie-postgresql-data".into(),
            "local-path",
            "5Gi",
            "ReadWriteOnce",
            "pi5-worker-2",
        ),
    ];
    for n in ["prowlarr", "sabnzbd", "jellyseerr", "bazarr", "qbittorrent"] {
        rows.push((
            "media",
            format!("{n}-config"),
            "local-path",
            "1Gi",
            "ReadWriteOnce",
            "pi5-worker-1",
        ));
    }
    for n in [
        "sonarr",
        "radarr",
        "lidarr",
        "readarr",
        "calibre-web",
        "lazylibrarian",
    ] {
        rows.push((
            "media",
            format!("{n}-config"),
            "local-path",
            "2Gi",
            "ReadWriteOnce",
            "pi5-worker-1",
        ));
    }
    for (n, size) in [
        ("media-downloads", "500Gi"),
        ("media-library", "1Ti"),
        ("media-music", "500Gi"),
        ("media-books", "200Gi"),
    ] {
        rows.push((
            "media",
            n.to_string(),
            "nfs-media",
            size,
            "ReadWriteMany",
            "nfs:-:/cluster/media",
        ));
    }
    let mut out = Vec::new();
    for (ns, name, class, size, access, place) in rows {
        let volume = match place.strip_prefix("nfs:").and_then(|r| r.split_once(':')) {
            Some((pv, _)) if pv != "-" => pv.to_string(),
            _ => format!("pvc-{}", suffix(&format!("{ns}/{name}"), 12)),
        };
        let mut o = meta(
            "v1",
            "PersistentVolumeClaim",
            Some(ns),
            &name,
            "2026-01-05T00:00:00Z",
        );
        o["spec"] = json!({"accessModes": [access], "resources": {"requests": {"storage": size}}, "volumeName": volume, "volumeMode": "Filesystem"});
        if !class.is_empty() {
            o["spec"]["storageClassName"] = json!(class);
        } else {
            o["spec"]["storageClassName"] = json!("");
        }
        if class == "local-path" {
            o["metadata"]["annotations"] = json!({"volume.kubernetes.io/selected-node": place, "volume.kubernetes.io/storage-provisioner": "rancher.io/local-path"});
        }
        o["status"] =
            json!({"phase": "Bound", "accessModes": [access], "capacity": {"storage": size}});
        out.push(o);
        let mut pv = meta(
            "v1",
            "PersistentVolume",
            None,
            &volume,
            "2026-01-05T00:00:00Z",
        );
        pv["spec"] = if let Some(rest) = place.strip_prefix("nfs:") {
            let path = rest.split_once(':').map(|x| x.1).unwrap_or("/");
            json!({"capacity": {"storage": size}, "accessModes": [access], "nfs": {"server": "storage.lab.mtgibbs.dev", "path": path},
                "mountOptions": ["soft"], "persistentVolumeReclaimPolicy": "Retain", "storageClassName": class,
                "claimRef": {"kind": "PersistentVolumeClaim", "namespace": ns, "name": name}})
        } else {
            json!({"capacity": {"storage": size}, "accessModes": [access], "hostPath": {"path": format!("/var/lib/rancher/k3s/storage/{volume}_{ns}_{name}"), "type": "DirectoryOrCreate"},
                "persistentVolumeReclaimPolicy": "Delete", "storageClassName": class,
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [place]}]}]}},
                "claimRef": {"kind": "PersistentVolumeClaim", "namespace": ns, "name": name}})
        };
        pv["status"] = json!({"phase": "Bound"});
        out.push(pv);
    }
    out
}

/// ConfigMaps tools show: Unbound's configuration (§1.9) and a homepage
/// settings file holding a credential in clear (fixture value) that
/// describe_resource must redact.
fn config_maps() -> Vec<Value> {
    let mut unbound = meta(
        "v1",
        "ConfigMap",
        Some("pihole"),
        "unbound-config",
        "2025-12-20T00:00:00Z",
    );
    unbound["data"] = json!({"unbound.conf": "server:\n  interface: 0.0.0.0@5335\n  do-ip6: no\n  harden-dnssec-stripped: yes\n  prefetch: yes\n  num-threads: 2\n  so-rcvbuf: 1m\n"});
    let mut homepage = meta(
        "v1",
        "ConfigMap",
        Some("homepage"),
        "homepage-config",
        "2026-01-05T00:00:00Z",
    );
    homepage["data"] = json!({"services.yaml": "- Network:\n    - Pi-hole:\n        href: https://pihole.lab.mtgibbs.dev\n        widget:\n          type: pihole\n          url: http://192.168.1.55\n          password: fixture-pihole-app-password\n",
        "settings.yaml": "title: Homelab\ntheme: dark\n"});
    vec![unbound, homepage]
}

// ------------------------------------------------------------------ assembly

/// The homelab with `scenarios` switched on. Unknown names are an error
/// listing the known ones.
pub fn homelab(scenarios: &[&str]) -> anyhow::Result<Fixture> {
    for s in scenarios {
        if !SCENARIOS.iter().any(|(n, _)| n == s) {
            anyhow::bail!(
                "unknown scenario {s:?}; known: {}",
                SCENARIOS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let on = |name: &str| scenarios.contains(&name);
    let mut pm = PodMaker {
        next_ip: BTreeMap::new(),
    };
    let mut logs = BTreeMap::new();
    let mut objects = namespaces();
    objects.extend(flux(&on));
    let mut certs = homelab_certificates();
    if on("certificates") {
        certs = certificates_scenario_3h(certs);
    }
    objects.extend(certs);
    if !on("eso-absent") {
        let mut eso = homelab_eso("v1");
        if on("eso-store-down") {
            for (i, o) in eso.iter_mut().enumerate() {
                if o["kind"] == "ClusterSecretStore" {
                    o["status"]["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "InvalidProviderConfig", "message": "wasm error: out of bounds memory access"}]);
                } else if i <= 53 {
                    o["status"]["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "SecretSyncedError", "message": "ClusterSecretStore \"onepassword\" is not ready"}]);
                }
            }
        }
        objects.extend(eso);
    }
    let (ts_objects, ts_pods) = homelab_tailscale(on("connector-down"));
    objects.extend(ts_objects);
    let (w_objects, mut pods) = workloads(&on, &mut pm);
    objects.extend(w_objects);
    pods.extend(ts_pods);
    let (b_objects, b_pods) = batch(&on, &mut pm, &mut logs);
    objects.extend(b_objects);
    pods.extend(b_pods);

    let mut events = vec![
        crate::fake_kube::event(
            "media",
            "Job",
            "import-resolver-29786280",
            "Normal",
            "Completed",
            "Job completed",
            1,
            400,
        ),
        crate::fake_kube::event(
            "media",
            "CronJob",
            "import-resolver",
            "Normal",
            "SawCompletedJob",
            "Saw completed job: import-resolver-29786280, condition: Complete",
            1,
            400,
        ),
        crate::fake_kube::event(
            "flux-system",
            "Kustomization",
            "flux-system",
            "Normal",
            "ReconciliationSucceeded",
            "Reconciliation finished in 1.9s, next run in 10m0s",
            1,
            300,
        ),
    ];
    if on("jellyfin-crashloop") {
        let crash = crate::fake_kube::jellyfin_crashloop_pod();
        if let Some(p) = pods
            .iter_mut()
            .find(|p| p["metadata"]["namespace"] == "jellyfin")
        {
            let name = p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            p["status"]["conditions"] = crash["status"]["conditions"].clone();
            let mut cs = crash["status"]["containerStatuses"].clone();
            cs[0]["image"] = json!("jellyfin/jellyfin:10.11.11");
            if let Some(m) = cs[0]["state"]["waiting"]["message"].as_str() {
                cs[0]["state"]["waiting"]["message"] =
                    json!(m.replace("jellyfin-7c9d6f5b8-x4k2p", &name));
            }
            p["status"]["containerStatuses"] = cs;
            logs.insert(
                format!("jellyfin/{name}/jellyfin/previous"),
                "[06:03:41] [INF] Main: Jellyfin version: 10.11.11\n[06:03:58] [WRN] HealthCheck: request GET /health was cancelled: TaskCanceledException: A task was canceled.\n".into(),
            );
            for (reason, message, count, ago) in [
                (
                    "Unhealthy",
                    "Liveness probe failed: Get \"http://10.42.0.57:8096/health\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                    42,
                    60,
                ),
                (
                    "Killing",
                    "Container jellyfin failed liveness probe, will be restarted",
                    14,
                    180,
                ),
                (
                    "BackOff",
                    &*format!(
                        "Back-off restarting failed container jellyfin in pod {name}_jellyfin(uid)"
                    ),
                    37,
                    30,
                ),
            ] {
                events.push(crate::fake_kube::event(
                    "jellyfin", "Pod", &name, "Warning", reason, message, count, ago,
                ));
            }
        }
        for o in objects.iter_mut() {
            if o["kind"] == "Deployment" && o["metadata"]["name"] == "jellyfin" {
                o["status"]["availableReplicas"] = json!(0);
                o["status"]["readyReplicas"] = json!(0);
                o["status"]["conditions"][0] = json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                    "message": "Deployment does not have minimum availability.", "lastTransitionTime": "2026-08-20T05:20:00Z"});
            }
        }
    }
    if on("immich-stuck") || on("immich-stuck-legacy") {
        events.push(crate::fake_kube::event("immich", "HelmRelease", "immich", "Warning", "UpgradeFailed",
            "Helm upgrade failed for release immich/immich with chart immich@0.10.3: context deadline exceeded", 1, 16 * DAY));
        events.push(crate::fake_kube::event("flux-system", "Kustomization", "immich", "Warning", "HealthCheckFailed",
            "health check failed after 10m0s: timeout waiting for: [HelmRelease/immich/immich status: 'Failed']", 96, 420));
    }
    if on("private-exit-node-auth") {
        events.push(crate::fake_kube::event("flux-system", "ImageRepository", "private-exit-node", "Warning", "ReadOperationFailed",
            "scan failed: GET https://ghcr.io/token?scope=repository%3Amtgibbs%2Fprivate-exit-node%3Apull&service=ghcr.io: UNAUTHORIZED: authentication required", 288, 120));
    }
    if on("backup-overdue") {
        for job in ["pvc-backup-29780760", "restore-test-29780880"] {
            events.push(crate::fake_kube::event(
                "backup-jobs",
                "Job",
                job,
                "Warning",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
                1,
                4 * DAY,
            ));
        }
    }
    if on("pi3-memory-pressure") {
        events.push(crate::fake_kube::event(
            "default",
            "Node",
            "pi3-worker-2",
            "Warning",
            "EvictionThresholdMet",
            "Attempting to reclaim memory",
            6,
            240,
        ));
    }

    let svcs = services();
    let slices = endpoint_slices(&svcs, &pods);
    objects.extend(svcs);
    objects.extend(slices);
    objects.extend(ingresses());
    objects.extend(pvcs());
    objects.extend(config_maps());

    let mut nodes = homelab_nodes();
    if on("pi3-memory-pressure")
        && let Some(n) = nodes
            .iter_mut()
            .find(|n| n["metadata"]["name"] == "pi3-worker-2")
        && let Some(cs) = n["status"]["conditions"].as_array_mut()
    {
        for c in cs.iter_mut() {
            if c["type"] == "MemoryPressure" {
                *c = json!({"type": "MemoryPressure", "status": "True", "reason": "KubeletHasInsufficientMemory",
                    "message": "kubelet has insufficient memory available", "lastHeartbeatTime": "2026-08-20T06:01:00Z", "lastTransitionTime": "2026-08-20T05:58:00Z"});
            }
            if c["type"] == "Ready" {
                *c = json!({"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status.",
                    "lastHeartbeatTime": "2026-08-20T06:01:00Z", "lastTransitionTime": "2026-08-20T06:02:00Z"});
            }
        }
    }
    if on("jellyfin-namespace-gone") {
        // Deleted by hand: everything namespaced in it is gone; its
        // Kustomization fails to apply until Git re-creates it.
        let gone = |o: &Value| {
            o["metadata"]["namespace"] == "jellyfin"
                || (o["kind"] == "Namespace" && o["metadata"]["name"] == "jellyfin")
        };
        objects.retain(|o| !gone(o));
        pods.retain(|o| !gone(o));
        events.retain(|o| !gone(o));
        logs.retain(|k, _| !k.starts_with("jellyfin/"));
        for o in objects.iter_mut() {
            if o["kind"] == "Kustomization" && o["metadata"]["name"] == "jellyfin" {
                o["status"]["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "ReconciliationFailed",
                    "message": "Deployment/jellyfin/jellyfin dry-run failed (NotFound): namespaces \"jellyfin\" not found",
                    "lastTransitionTime": "2026-08-20T05:50:00Z", "observedGeneration": 1}]);
            }
        }
        events.push(crate::fake_kube::event(
            "flux-system",
            "Kustomization",
            "jellyfin",
            "Warning",
            "ReconciliationFailed",
            "Deployment/jellyfin/jellyfin dry-run failed (NotFound): namespaces \"jellyfin\" not found",
            12,
            300,
        ));
    }
    health_scenarios(&on, &mut objects, &mut pods, &mut logs);
    if on("dnssec-servfail") {
        unbound_validation_failures(&pods, &mut logs);
    }

    // API layout: the Flux release's per-kind versions, and operators caught
    // mid-upgrade.
    let mut groups = groups(!on("eso-absent"));
    let mut kind_versions: Vec<(String, String, Vec<String>)> = Vec::new();
    let release = if on("flux-2.2") {
        "2.2"
    } else if on("flux-2.4") {
        "2.4"
    } else {
        "2.7"
    };
    let (flux_groups, flux_kinds) = flux_layout(release);
    groups.retain(|(g, _)| !g.ends_with(".toolkit.fluxcd.io"));
    groups.extend(
        flux_groups
            .into_iter()
            .map(|(g, vs)| (g.to_string(), vs.into_iter().map(str::to_string).collect())),
    );
    let mut overrides = flux_kinds;
    if on("eso-mixed") && !on("eso-absent") {
        for (g, vs) in groups.iter_mut() {
            if g == "external-secrets.io" {
                *vs = vec!["v1".into(), "v1beta1".into()];
            }
        }
        overrides.push(("external-secrets.io", "ClusterSecretStore", vec!["v1beta1"]));
    }
    if on("cert-manager-mixed") {
        for (g, vs) in groups.iter_mut() {
            if g == "cert-manager.io" {
                *vs = vec!["v1".into(), "v1beta1".into()];
            }
        }
        overrides.push(("cert-manager.io", "Certificate", vec!["v1"]));
        overrides.push(("cert-manager.io", "CertificateRequest", vec!["v1beta1"]));
    }
    kind_versions.extend(overrides.into_iter().map(|(g, k, vs)| {
        (
            g.to_string(),
            k.to_string(),
            vs.into_iter().map(str::to_string).collect(),
        )
    }));
    // The admission policy the operations overlay installs: every write
    // of the tests' operations passes through it, as in the cluster.
    objects.extend(crate::admission::labscope_policy());
    Ok(Fixture {
        nodes,
        pods,
        groups,
        kind_versions,
        objects,
        logs,
        events,
        ..Default::default()
    })
}

/// §3.k: the Unbounds' logs, validation failures for peaceloveandpizza.com
/// in the last ten minutes among unrelated lines, and one from the morning
/// before, which a read of the last ten minutes must not return (Unbound's
/// own format: `[epoch] unbound[pid:thread] level: message`).
fn unbound_validation_failures(pods: &[Value], logs: &mut BTreeMap<String, String>) {
    for p in pods.iter().filter(|p| {
        p["metadata"]["namespace"] == "pihole"
            && matches!(
                p["metadata"]["labels"]["app"].as_str(),
                Some("unbound" | "unbound-secondary")
            )
    }) {
        let name = p["metadata"]["name"].as_str().unwrap_or_default();
        let container = p["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or("unbound");
        let at = |ago: i64| crate::fake_kube::FIXTURE_NOW - ago;
        let text = format!(
            "[{}] unbound[1:1] info: validation failure <peaceloveandpizza.com. TXT IN>: no keys have a DS with algorithm RSASHA256 from 192.0.2.53 for key peaceloveandpizza.com. while building chain of trust\n\
             [{}] unbound[1:0] info: generate keytag query _ta-4f66. NULL IN\n\
             [{}] unbound[1:1] info: validation failure <peaceloveandpizza.com. A IN>: no keys have a DS with algorithm RSASHA256 from 192.0.2.53 for key peaceloveandpizza.com. while building chain of trust\n\
             [{}] unbound[1:0] info: resolving example.com. A IN\n\
             [{}] unbound[1:0] info: validation failure <peaceloveandpizza.com. AAAA IN>: no keys have a DS with algorithm RSASHA256 from 192.0.2.53 for key peaceloveandpizza.com. while building chain of trust\n\
             [{}] unbound[1:1] info: validation failure <www.peaceloveandpizza.com. A IN>: no keys have a DS with algorithm RSASHA256 from 192.0.2.53 for key peaceloveandpizza.com. while building chain of trust\n",
            at(86_400),
            at(540),
            at(420),
            at(300),
            at(180),
            at(60)
        );
        logs.insert(format!("pihole/{name}/{container}"), text);
    }
}

/// The pod-health scenarios: pods k3s leaves behind (evicted, shut down),
/// an init-container crash loop, an Indexed Job, a pod in phase Unknown, and
/// a certificate named as another's prefix.
fn health_scenarios(
    on: &dyn Fn(&str) -> bool,
    objects: &mut Vec<Value>,
    pods: &mut Vec<Value>,
    logs: &mut BTreeMap<String, String>,
) {
    let find = |pods: &Vec<Value>, ns: &str, app: &str| {
        pods.iter()
            .find(|p| p["metadata"]["namespace"] == ns && p["metadata"]["labels"]["app"] == app)
            .cloned()
    };
    if on("evicted-pods") {
        // Evicted from an older ReplicaSet yesterday; the Deployment's
        // current pod is Running and Ready.
        if let Some(mut p) = find(pods, "media", "bazarr") {
            let old_rs = format!("bazarr-{}", suffix("media/bazarr/old", 10));
            p["metadata"]["name"] = json!(format!("{old_rs}-{}", suffix("evicted", 5)));
            p["metadata"]["uid"] = json!("uid-pod-media-bazarr-evicted");
            p["metadata"]["labels"]["pod-template-hash"] =
                json!(old_rs.trim_start_matches("bazarr-"));
            p["metadata"]["ownerReferences"][0]["name"] = json!(old_rs);
            p["metadata"]["ownerReferences"][0]["uid"] = json!("uid-replicaset-media-old");
            p["status"] = json!({"phase": "Failed", "reason": "Evicted",
                "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 87Mi. Container bazarr was using 612Mi, request is 0, has larger consumption of memory.",
                "startTime": "2026-08-12T09:40:00Z",
                "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet", "message": "The node was low on resource: memory.", "lastTransitionTime": rfc3339(FIXTURE_NOW - DAY)}],
                "containerStatuses": [{"name": "bazarr", "ready": false, "restartCount": 0, "image": "linuxserver/bazarr:1.5.2", "imageID": "",
                    "state": {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown", "finishedAt": rfc3339(FIXTURE_NOW - DAY)}}}]});
            pods.push(p);
        }
        // Stopped by a graceful node shutdown (k3s reboot); same ReplicaSet.
        if let Some(mut p) = find(pods, "media", "calibre-web") {
            let name = p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let rs = name
                .rsplit_once('-')
                .map(|x| x.0.to_string())
                .unwrap_or_default();
            p["metadata"]["name"] = json!(format!("{rs}-{}", suffix("shutdown", 5)));
            p["metadata"]["uid"] = json!("uid-pod-media-calibre-shutdown");
            p["status"] = json!({"phase": "Failed", "reason": "Terminated",
                "message": "Pod was terminated in response to imminent node shutdown.",
                "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet", "lastTransitionTime": rfc3339(FIXTURE_NOW - 3 * DAY)}],
                "containerStatuses": [{"name": "calibre-web", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": rfc3339(FIXTURE_NOW - 3 * DAY)}}}]});
            pods.push(p);
        }
    }
    if on("immich-init-crashloop")
        && let Some(p) = pods.iter_mut().find(|p| {
            p["metadata"]["namespace"] == "immich"
                && p["metadata"]["labels"]["app.kubernetes.io/name"] == "server"
        })
    {
        let main = p["spec"]["containers"][0]["name"].clone();
        p["spec"]["initContainers"] = json!([{"name": "wait-for-db", "image": "busybox:1.38.0", "command": ["sh", "-c", "until nc -z immich-postgresql 5432; do sleep 2; done"]}]);
        p["status"]["phase"] = json!("Pending");
        p["status"]["conditions"] = json!([{"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized", "message": "containers with incomplete status: [wait-for-db]"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}, {"type": "PodScheduled", "status": "True"}]);
        p["status"]["initContainerStatuses"] = json!([{"name": "wait-for-db", "ready": false, "restartCount": 23, "image": "busybox:1.38.0", "imageID": "",
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container=wait-for-db"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": rfc3339(FIXTURE_NOW - 240)}}}]);
        p["status"]["containerStatuses"] = json!([{"name": main, "ready": false, "restartCount": 0, "image": "", "imageID": "",
            "state": {"waiting": {"reason": "PodInitializing"}}}]);
    }
    if on("indexed-job-failed") {
        let mut job = meta(
            "batch/v1",
            "Job",
            Some("media"),
            "reindex-2",
            &rfc3339(FIXTURE_NOW - 2 * 3600),
        );
        job["spec"] = json!({"completionMode": "Indexed", "completions": 2, "parallelism": 2, "backoffLimitPerIndex": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "reindex", "image": "python:3.13-slim"}]}}});
        job["status"] = json!({"failed": 2, "failedIndexes": "0,1", "startTime": rfc3339(FIXTURE_NOW - 2 * 3600),
            "conditions": [{"type": "Failed", "status": "True", "reason": "FailedIndexes", "message": "Job has failed indexes", "lastTransitionTime": rfc3339(FIXTURE_NOW - 3000)}]});
        objects.push(job);
        for i in 0..2 {
            let name = format!("reindex-2-{i}-{}", suffix(&format!("reindex-2/{i}"), 5));
            let mut p = meta(
                "v1",
                "Pod",
                Some("media"),
                &name,
                &rfc3339(FIXTURE_NOW - 2 * 3600),
            );
            p["metadata"]["labels"] = json!({"batch.kubernetes.io/job-name": "reindex-2", "job-name": "reindex-2",
                "batch.kubernetes.io/job-completion-index": i.to_string()});
            p["metadata"]["ownerReferences"] = owner("batch/v1", "Job", "media", "reindex-2");
            p["spec"] = json!({"nodeName": "pi3-worker-2", "restartPolicy": "Never", "containers": [{"name": "reindex", "image": "python:3.13-slim"}]});
            p["status"] = json!({"phase": "Failed", "containerStatuses": [{"name": "reindex", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                "state": {"terminated": {"exitCode": 2, "reason": "Error", "finishedAt": rfc3339(FIXTURE_NOW - 3000)}}}]});
            logs.insert(
                format!("media/{name}/reindex"),
                format!("shard {i}: KeyError: 'library_id'\n"),
            );
            pods.push(p);
        }
    }
    if on("pod-phase-unknown")
        && let Some(p) = pods.iter_mut().find(|p| {
            p["metadata"]["namespace"] == "media"
                && p["metadata"]["labels"]["app"] == "flaresolverr"
        })
    {
        p["status"]["phase"] = json!("Unknown");
        p["status"]["conditions"] =
            json!([{"type": "Ready", "status": "False", "reason": "NodeLost"}]);
    }
    if on("certificate-prefix") {
        // A second Certificate named as a prefix of jellyfin-tls, failing;
        // jellyfin-tls itself stays Ready but has a failed request of its own.
        let mut cert = meta(
            "cert-manager.io/v1",
            "Certificate",
            Some("jellyfin"),
            "jellyfin",
            "2026-08-19T00:00:00Z",
        );
        cert["spec"] = json!({"secretName": "jellyfin-internal", "dnsNames": ["jellyfin.jellyfin.svc"],
            "issuerRef": {"name": "pi-cluster-ca-issuer", "kind": "ClusterIssuer", "group": "cert-manager.io"}});
        cert["status"] = json!({"conditions": [{"type": "Ready", "status": "False", "reason": "Failed", "message": "The certificate request has failed to complete and will be retried"}]});
        objects.push(cert);
        let request = |name: &str, parent: &str, message: &str| {
            let mut cr = meta(
                "cert-manager.io/v1",
                "CertificateRequest",
                Some("jellyfin"),
                name,
                "2026-08-19T00:00:00Z",
            );
            cr["metadata"]["annotations"] = json!({"cert-manager.io/certificate-name": parent});
            cr["metadata"]["ownerReferences"] =
                owner("cert-manager.io/v1", "Certificate", "jellyfin", parent);
            cr["spec"] =
                json!({"issuerRef": {"name": "x", "kind": "ClusterIssuer"}, "request": ""});
            cr["status"] = json!({"conditions": [{"type": "Ready", "status": "False", "reason": "Failed", "message": message}]});
            cr
        };
        objects.push(request(
            "jellyfin-1",
            "jellyfin",
            "issuer pi-cluster-ca-issuer: secret \"pi-cluster-ca-secret\" not found",
        ));
        objects.push(request(
            "jellyfin-tls-1",
            "jellyfin-tls",
            "ACME order failed: rate limited",
        ));
    }
}

/// The fixture's clock, for tests that compute expectations.
pub fn now() -> i64 {
    FIXTURE_NOW
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_shapes() {
        let f = homelab(&[]).unwrap_or_default();
        let count = |kind: &str| f.objects.iter().filter(|o| o["kind"] == kind).count();
        assert_eq!(count("Kustomization"), 38);
        assert_eq!(count("HelmRelease"), 7);
        assert_eq!(count("HelmChart"), 7);
        assert_eq!(count("CronJob"), 14);
        assert_eq!(count("Ingress"), 30);
        assert_eq!(count("Namespace"), 37);
        assert_eq!(count("ExternalSecret"), 56);
        assert_eq!(count("Certificate"), 31);
        let pihole = f
            .pods
            .iter()
            .filter(|p| p["metadata"]["namespace"] == "pihole")
            .count();
        assert_eq!(pihole, 13, "HOMELAB §1.13: 13 pods in pihole");
        let debug = f
            .pods
            .iter()
            .filter(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("mcp-debug-agent-"))
            })
            .count();
        assert_eq!(debug, 3);
        assert!((70..=140).contains(&f.pods.len()), "{} pods", f.pods.len());
        // Job naming: <cronjob>-<minutes since the epoch of the schedule>.
        assert!(
            f.objects
                .iter()
                .any(|o| o["kind"] == "Job" && o["metadata"]["name"] == "pvc-backup-29780760")
        );
        assert!(f.objects.iter().any(
            |o| o["kind"] == "Job" && o["metadata"]["name"] == "pihole-brainrot-block-29786340"
        ));
        assert!(homelab(&["no-such"]).is_err());
    }
}
