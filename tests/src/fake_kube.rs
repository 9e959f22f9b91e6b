//! A fake Kubernetes API server that kube-rs talks to as to a real one, and
//! that fails like one: discovery (`/api`, `/apis`, `/apis/{group}/{version}`
//! with versions ordered and preferred as the API server does), every known
//! kind served only at the versions it is served at (404 for any other, and
//! for unknown resources), objects converted to the version asked for, list
//! (paged with `limit`/`continue`), get and watch, label selectors
//! (equality, set-based, existence; 400 for a malformed one) and field
//! selectors, pods/log (400 without a container for a multi-container pod),
//! RBAC refusals (403), and injected faults: any status (401, 429, 5xx) or a
//! delay (a hung API server) for chosen paths. It serves the homelab fixture
//! of HOMELAB.md (`homelab.rs`) or what a test builds.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// What the fake serves.
#[derive(Debug, Default, Clone)]
pub struct Fixture {
    /// Node objects.
    pub nodes: Vec<Value>,
    /// Pod objects.
    pub pods: Vec<Value>,
    /// Resources to refuse with 403 ("nodes", "pods", or a CRD plural).
    pub forbidden: BTreeSet<String>,
    /// API groups served under /apis: (group, versions). The fake orders
    /// versions the way the API server does (GA, beta, alpha; newest first)
    /// and prefers the first.
    pub groups: Vec<(String, Vec<String>)>,
    /// Custom objects (apiVersion "group/version", kind); listed by plural.
    pub objects: Vec<Value>,
    /// Canned logs by "namespace/pod/container" (add "/previous" for the
    /// crashed instance).
    pub logs: std::collections::BTreeMap<String, String>,
    /// core/v1 Events.
    pub events: Vec<Value>,
    /// Kinds served at fewer versions than their group: (group, kind,
    /// versions). Operators promote kinds one release at a time (Flux 2.3:
    /// GitRepository at source…/v1, Bucket only at v1beta2); a kind without
    /// an entry is served at every version of its group.
    pub kind_versions: Vec<(String, String, Vec<String>)>,
    /// Failures to inject, first match wins.
    pub faults: Vec<Fault>,
    /// HelmReleases (namespace, name) whose upgrade is running: it finishes
    /// on the next read (see `fake_controllers`).
    pub helm_pending: BTreeSet<(String, String)>,
}

/// A failure the fake injects for requests whose path contains `path`.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Part of the request path, e.g. "/apis/source.toolkit.fluxcd.io" or "/" for all.
    pub path: String,
    /// What happens.
    pub effect: FaultEffect,
}

/// What an injected fault does.
#[derive(Debug, Clone)]
pub enum FaultEffect {
    /// Answer with this status code (a Kubernetes Status body; 429 carries Retry-After).
    Status(u16),
    /// Answer only after this long (a hung API server).
    Delay(std::time::Duration),
}

impl Fault {
    /// `effect` for requests whose path contains `path`.
    pub fn new(path: &str, effect: FaultEffect) -> Self {
        Self {
            path: path.to_string(),
            effect,
        }
    }
}

/// The ESO part of the homelab (HOMELAB.md §1.6): ClusterSecretStore
/// `onepassword` and the 56 ExternalSecrets, all Ready, at `version`.
pub fn homelab_eso(version: &str) -> Vec<Value> {
    const TABLE: &[(&str, &[&str])] = &[
        (
            "backup-jobs",
            &[
                "backup-ssh-key",
                "github-mirror-token",
                "romm-db-password",
                "immich-db-password",
                "n8n-db-password",
                "mealie-db-password",
                "matrix-db-password",
                "unifi-credentials",
            ],
        ),
        ("cert-manager", &["cloudflare-api-token"]),
        ("cloudflare-tunnel", &["cloudflare-tunnel"]),
        ("family-board", &["family-board-feed"]),
        (
            "flux-system",
            &["nfs-credentials", "discord-webhook", "ghcr-pull-secret"],
        ),
        (
            "homepage",
            &[
                "homepage-pihole",
                "homepage-pihole-secondary",
                "homepage-jellyfin",
                "homepage-immich",
                "homepage-unifi",
                "homepage-tailscale",
                "homepage-servarr",
                "homepage-ai-controlpanel",
            ],
        ),
        ("immich", &["immich-secret"]),
        ("kiwix-mcp", &["kiwix-mcp-secrets"]),
        ("local-llm-mcp", &["local-llm-mcp-secrets"]),
        ("log-aggregation", &["vector-ntfy"]),
        ("matrix", &["matrix-secret"]),
        ("mcp-homelab", &["mcp-homelab-secrets"]),
        ("mealie", &["mealie-ai-secret", "mealie-secret"]),
        (
            "media",
            &[
                "protonvpn-credentials",
                "qbittorrent-credentials",
                "newshosting-credentials",
                "opensubtitles-credentials",
                "calibre-web-smtp",
                "backup-ssh-key",
                "servarr-api-keys",
            ],
        ),
        (
            "monitoring",
            &[
                "grafana-secret",
                "alertmanager-discord",
                "alertmanager-healthchecks",
            ],
        ),
        (
            "mtgibbs-site",
            &["mtgibbs-spotify", "mtgibbs-github", "mtgibbs-tracking"],
        ),
        ("n8n", &["n8n-secret"]),
        (
            "new-horizons",
            &[
                "ghcr-pull-secret",
                "new-horizons-push-secrets",
                "new-horizons-secrets",
            ],
        ),
        ("ntfy", &["ntfy-secret"]),
        ("pihole", &["pihole-secret"]),
        (
            "private-exit-node",
            &["exit-node-secrets", "ghcr-pull-secret"],
        ),
        ("renovate", &["renovate-secrets"]),
        ("review-hub", &["review-hub-secrets"]),
        ("romm", &["romm-secret"]),
        ("tailscale", &["operator-oauth"]),
        ("uptime-kuma", &["uptime-kuma-secret"]),
    ];
    let api = format!("external-secrets.io/{version}");
    let mut out = vec![json!({
        "apiVersion": api, "kind": "ClusterSecretStore",
        "metadata": {"name": "onepassword", "uid": "uid-css-onepassword", "resourceVersion": "1"},
        "spec": {"provider": {"onepasswordSDK": {"vault": "pi-cluster", "auth": {"serviceAccountSecretRef": {"name": "onepassword-service-account", "namespace": "external-secrets", "key": "token"}}}}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Valid", "message": "store validated", "lastTransitionTime": "2026-08-11T21:02:00Z"}], "capabilities": "ReadOnly"}
    })];
    for (ns, names) in TABLE {
        for name in *names {
            out.push(json!({
                "apiVersion": api, "kind": "ExternalSecret",
                "metadata": {"name": name, "namespace": ns, "uid": format!("uid-es-{ns}-{name}"), "resourceVersion": "1"},
                "spec": {"refreshInterval": if *name == "family-board-feed" { "1h" } else { "24h" },
                    "secretStoreRef": {"kind": "ClusterSecretStore", "name": "onepassword"}, "target": {"name": name}},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced", "message": "secret synced", "lastTransitionTime": "2026-08-19T06:00:00Z"}],
                    "refreshTime": "2026-08-20T05:00:00Z", "syncedResourceVersion": "1-abc"}
            }));
        }
    }
    out
}

/// The fixture's "now" (HOMELAB.md §0): 2026-08-20T06:07:00Z.
pub const FIXTURE_NOW: i64 = 1_787_206_020;

/// RFC 3339 → Unix seconds (0 when malformed; fixture times are literals).
pub fn parse_time(s: &str) -> i64 {
    labscope::cluster::time::parse_rfc3339(s).unwrap_or(0)
}

/// Unix seconds → RFC 3339 (UTC).
pub fn rfc3339(secs: i64) -> String {
    labscope_proto::text::rfc3339(secs)
}

/// The Ingress TLS certificates of HOMELAB.md §1.8, in table order: (namespace, secret, hosts).
pub const INGRESS_TLS: &[(&str, &str, &[&str])] = &[
    ("atlas", "atlas-tls", &["atlas.lab.mtgibbs.dev"]),
    ("external-services", "qnap-tls", &["qnap.lab.mtgibbs.dev"]),
    ("external-services", "unifi-tls", &["unifi.lab.mtgibbs.dev"]),
    (
        "family-board",
        "family-board-tls",
        &["board.lab.mtgibbs.dev"],
    ),
    ("homepage", "homepage-tls", &["home.lab.mtgibbs.dev"]),
    ("immich", "immich-tls", &["immich.lab.mtgibbs.dev"]),
    ("jellyfin", "jellyfin-tls", &["jellyfin.lab.mtgibbs.dev"]),
    ("kiwix", "kiwix-tls", &["kiwix.lab.mtgibbs.dev"]),
    ("kiwix-mcp", "kiwix-mcp-tls", &["kiwix-mcp.lab.mtgibbs.dev"]),
    (
        "local-llm-mcp",
        "local-llm-mcp-tls",
        &["local-llm-mcp.lab.mtgibbs.dev"],
    ),
    (
        "matrix",
        "matrix-tls",
        &["matrix.lab.mtgibbs.dev", "element.lab.mtgibbs.dev"],
    ),
    ("mcp-homelab", "mcp-homelab-tls", &["mcp.lab.mtgibbs.dev"]),
    ("mealie", "mealie-tls", &["recipes.lab.mtgibbs.dev"]),
    ("media", "bazarr-tls", &["bazarr.lab.mtgibbs.dev"]),
    ("media", "calibre-web-tls", &["calibre.lab.mtgibbs.dev"]),
    ("media", "jellyseerr-tls", &["requests.lab.mtgibbs.dev"]),
    (
        "media",
        "lazylibrarian-tls",
        &["lazylibrarian.lab.mtgibbs.dev"],
    ),
    ("media", "lidarr-tls", &["lidarr.lab.mtgibbs.dev"]),
    ("media", "prowlarr-tls", &["prowlarr.lab.mtgibbs.dev"]),
    ("media", "qbittorrent-tls", &["qbit.lab.mtgibbs.dev"]),
    ("media", "radarr-tls", &["radarr.lab.mtgibbs.dev"]),
    ("media", "readarr-tls", &["readarr.lab.mtgibbs.dev"]),
    ("media", "sabnzbd-tls", &["sabnzbd.lab.mtgibbs.dev"]),
    ("media", "sonarr-tls", &["sonarr.lab.mtgibbs.dev"]),
    ("monitoring", "grafana-tls", &["grafana.lab.mtgibbs.dev"]),
    (
        "mtgibbs-site",
        "mtgibbs-site-tls",
        &["site.lab.mtgibbs.dev"],
    ),
    ("n8n", "n8n-tls", &["n8n.lab.mtgibbs.dev"]),
    ("pihole", "pihole-tls", &["pihole.lab.mtgibbs.dev"]),
    ("romm", "romm-tls", &["romm.lab.mtgibbs.dev"]),
    (
        "uptime-kuma",
        "uptime-kuma-tls",
        &["status.lab.mtgibbs.dev"],
    ),
];

/// cert-manager objects of the healthy baseline (HOMELAB.md §1.5, §2): the CA
/// certificate and one Let's Encrypt certificate per Ingress TLS secret, the
/// i-th aged `10 + (7·i mod 21)` days.
pub fn homelab_certificates() -> Vec<Value> {
    let day = 86_400;
    let ready = json!([{"type": "Ready", "status": "True", "reason": "Ready", "message": "Certificate is up to date and has not expired"}]);
    let mut out = vec![json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "pi-cluster-ca", "namespace": "cert-manager", "uid": "uid-cert-ca", "resourceVersion": "1"},
        "spec": {"isCA": true, "commonName": "pi-cluster-ca", "secretName": "pi-cluster-ca-secret", "duration": "87600h0m0s", "renewBefore": "8760h0m0s",
            "issuerRef": {"name": "selfsigned-issuer", "kind": "ClusterIssuer", "group": "cert-manager.io"}},
        "status": {"conditions": ready, "notBefore": "2025-12-20T00:00:00Z", "notAfter": "2035-12-18T00:00:00Z", "renewalTime": "2034-12-18T00:00:00Z", "revision": 1}
    })];
    for (i, (ns, secret, hosts)) in INGRESS_TLS.iter().enumerate() {
        let age = 10 + (7 * i as i64 % 21);
        let not_before = FIXTURE_NOW - age * day;
        let not_after = not_before + 90 * day;
        out.push(json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": secret, "namespace": ns, "uid": format!("uid-cert-{ns}-{secret}"), "resourceVersion": "1"},
            "spec": {"secretName": secret, "dnsNames": hosts, "issuerRef": {"name": "letsencrypt-prod", "kind": "ClusterIssuer", "group": "cert-manager.io"}},
            "status": {"conditions": ready, "notBefore": rfc3339(not_before), "notAfter": rfc3339(not_after),
                "renewalTime": rfc3339(not_after - 30 * day), "revision": 3}
        }));
    }
    out
}

/// Scenario 3.h on top of [`homelab_certificates`]: uptime-kuma-tls expiring
/// in 10 days with its renewal 20 days overdue, romm-tls not ready with a
/// failing DNS-01 challenge (adds the CertificateRequest, Order, Challenge).
pub fn certificates_scenario_3h(mut objects: Vec<Value>) -> Vec<Value> {
    let day = 86_400;
    for o in objects.iter_mut() {
        match o["metadata"]["name"].as_str() {
            Some("uptime-kuma-tls") => {
                o["status"]["notAfter"] = json!(rfc3339(FIXTURE_NOW + 10 * day));
                o["status"]["renewalTime"] = json!(rfc3339(FIXTURE_NOW - 20 * day));
                o["status"]["failedIssuanceAttempts"] = json!(5);
                o["status"]["lastFailureTime"] = json!(rfc3339(FIXTURE_NOW - 6 * 3600));
                o["status"]["conditions"] = json!([
                    {"type": "Ready", "status": "True", "reason": "Ready", "message": "Certificate is up to date and has not expired"},
                    {"type": "Issuing", "status": "True", "reason": "Renewing", "message": format!("Renewing certificate as renewal was scheduled at {}", rfc3339(FIXTURE_NOW - 20 * day))}
                ]);
            }
            Some("romm-tls") => {
                o["status"] = json!({"conditions": [
                    {"type": "Ready", "status": "False", "reason": "DoesNotExist", "message": "Issuing certificate as Secret does not exist"},
                    {"type": "Issuing", "status": "True", "reason": "DoesNotExist", "message": "Issuing certificate as Secret does not exist"}
                ]});
            }
            _ => {}
        }
    }
    objects.push(json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": "romm-tls-1", "namespace": "romm", "uid": "uid-cr-romm", "resourceVersion": "1",
            "ownerReferences": [{"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "romm-tls", "uid": "uid-cert-romm-romm-tls", "controller": true}]},
        "spec": {"issuerRef": {"name": "letsencrypt-prod", "kind": "ClusterIssuer"}, "request": ""},
        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Pending",
            "message": "Waiting on certificate issuance from order romm/romm-tls-1-3170586732: \"pending\""}]}}));
    objects.push(json!({"apiVersion": "acme.cert-manager.io/v1", "kind": "Order",
        "metadata": {"name": "romm-tls-1-3170586732", "namespace": "romm", "uid": "uid-order-romm", "resourceVersion": "1",
            "ownerReferences": [{"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest", "name": "romm-tls-1", "uid": "uid-cr-romm", "controller": true}]},
        "spec": {"dnsNames": ["romm.lab.mtgibbs.dev"], "issuerRef": {"name": "letsencrypt-prod", "kind": "ClusterIssuer"}, "request": ""},
        "status": {"state": "pending"}}));
    objects.push(json!({"apiVersion": "acme.cert-manager.io/v1", "kind": "Challenge",
        "metadata": {"name": "romm-tls-1-3170586732-1485632144", "namespace": "romm", "uid": "uid-ch-romm", "resourceVersion": "1",
            "ownerReferences": [{"apiVersion": "acme.cert-manager.io/v1", "kind": "Order", "name": "romm-tls-1-3170586732", "uid": "uid-order-romm", "controller": true}]},
        "spec": {"type": "DNS-01", "dnsName": "romm.lab.mtgibbs.dev", "token": "t", "key": "k", "url": "", "authorizationURL": "",
            "issuerRef": {"name": "letsencrypt-prod", "kind": "ClusterIssuer"}, "solver": {"dns01": {"cloudflare": {}}}},
        "status": {"state": "pending", "presented": false, "processing": true,
            "reason": "Error presenting challenge: Cloudflare API error: Authentication error (10000)"}}));
    objects
}

/// The Tailscale objects (HOMELAB.md §1.12 and scenario 3.f): ProxyClass
/// `pi-cluster` and Connector `pi-cluster-exit` whose only condition is
/// `ConnectorReady` (healthy unless `down`), plus the operator and proxy pods.
pub fn homelab_tailscale(down: bool) -> (Vec<Value>, Vec<Value>) {
    let routes = ["192.168.1.55/32", "192.168.1.56/32", "192.168.1.70/32"];
    let condition = if down {
        json!({"type": "ConnectorReady", "status": "False", "reason": "ConnectorCreationFailed", "message": "Failed creating Connector: proxy StatefulSet not ready", "lastTransitionTime": "2026-08-12T09:40:11Z"})
    } else {
        json!({"type": "ConnectorReady", "status": "True", "reason": "ConnectorCreated", "message": "ConnectorCreated", "lastTransitionTime": "2026-08-12T09:40:11Z"})
    };
    let objects = vec![
        json!({"apiVersion": "tailscale.com/v1alpha1", "kind": "ProxyClass",
            "metadata": {"name": "pi-cluster", "uid": "uid-pc", "resourceVersion": "1"},
            "spec": {"statefulSet": {"pod": {"nodeSelector": {"kubernetes.io/arch": "arm64"}}}},
            "status": {"conditions": [{"type": "ProxyClassReady", "status": "True", "reason": "ProxyClassValid", "message": "ProxyClass is valid"}]}}),
        json!({"apiVersion": "tailscale.com/v1alpha1", "kind": "Connector",
            "metadata": {"name": "pi-cluster-exit", "uid": "uid-conn", "resourceVersion": "1"},
            "spec": {"hostname": "pi-cluster-exit", "exitNode": true, "subnetRouter": {"advertiseRoutes": routes},
                "tags": ["tag:k8s-operator"], "proxyClass": "pi-cluster"},
            "status": {"conditions": [condition], "subnetRoutes": if down { String::new() } else { routes.join(",") },
                "isExitNode": !down, "tailnetIPs": ["100.101.102.103"]}}),
    ];
    let pod = |name: &str, labels: Value, node: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "tailscale", "uid": format!("uid-pod-{name}"), "resourceVersion": "1", "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "main"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "main", "ready": true, "restartCount": 0, "image": "", "imageID": "", "state": {"running": {}}}]}})
    };
    let mut pods = vec![pod(
        "operator-7d9f8b6c5-x2k4p",
        json!({"app": "operator"}),
        "pi-k3s",
    )];
    if !down {
        pods.push(pod("ts-pi-cluster-exit-h7k2m-0", json!({"tailscale.com/managed": "true",
            "tailscale.com/parent-resource": "pi-cluster-exit", "tailscale.com/parent-resource-type": "connector"}), "pi5-worker-2"));
    }
    (objects, pods)
}

/// The homelab's nodes (HOMELAB.md §1.1), with real object shapes.
pub fn homelab_nodes() -> Vec<Value> {
    let created = "2025-12-20T00:00:00Z";
    let node = |name: &str,
                ip: &str,
                cidr: &str,
                mem: &str,
                os: &str,
                extra_labels: Value,
                taints: Value| {
        let mut labels = json!({
            "kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": name,
            "beta.kubernetes.io/arch": "arm64", "beta.kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": "k3s", "beta.kubernetes.io/instance-type": "k3s",
        });
        if let (Some(l), Some(e)) = (labels.as_object_mut(), extra_labels.as_object()) {
            l.extend(e.clone());
        }
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": format!("uid-node-{name}"), "resourceVersion": "1", "creationTimestamp": created, "labels": labels},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr], "providerID": format!("k3s://{name}"), "taints": taints},
            "status": {
                "capacity": {"cpu": "4", "memory": mem, "pods": "110"},
                "allocatable": {"cpu": "4", "memory": mem, "pods": "110"},
                "conditions": [
                    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": "2026-08-20T06:06:00Z", "lastTransitionTime": created},
                    {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "lastHeartbeatTime": "2026-08-20T06:06:00Z", "lastTransitionTime": created},
                    {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "lastHeartbeatTime": "2026-08-20T06:06:00Z", "lastTransitionTime": created},
                    {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": "2026-08-20T06:06:00Z", "lastTransitionTime": created}
                ],
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                "nodeInfo": {"architecture": "arm64", "bootID": "", "containerRuntimeVersion": "containerd://2.1.5-k3s1",
                    "kernelVersion": "6.12.47+rpt-rpi-2712", "kubeProxyVersion": "v1.34.3+k3s1", "kubeletVersion": "v1.34.3+k3s1",
                    "machineID": "", "operatingSystem": "linux", "osImage": os, "systemUUID": ""}
            }
        })
    };
    vec![
        node(
            "pi-k3s",
            "192.168.1.55",
            "10.42.0.0/24",
            "8245000Ki",
            "Debian GNU/Linux 13 (trixie)",
            json!({"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true"}),
            json!([]),
        ),
        node(
            "pi5-worker-1",
            "192.168.1.56",
            "10.42.2.0/24",
            "8245000Ki",
            "Debian GNU/Linux 13 (trixie)",
            json!({}),
            json!([]),
        ),
        node(
            "pi5-worker-2",
            "192.168.1.57",
            "10.42.3.0/24",
            "8245000Ki",
            "Debian GNU/Linux 13 (trixie)",
            json!({}),
            json!([]),
        ),
        node(
            "pi3-worker-2",
            "192.168.1.51",
            "10.42.1.0/24",
            "925000Ki",
            "Raspberry Pi OS Lite 64-bit",
            json!({"role": "batch"}),
            json!([{"key": "role", "value": "batch", "effect": "NoSchedule"}]),
        ),
    ]
}

/// A labscope-agent DaemonSet pod on `node` with `ip` (hostNetwork); `ready`
/// false makes it Pending.
pub fn agent_pod(node: &str, ip: &str, ready: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("labscope-agent-{node}"), "namespace": "labscope", "uid": format!("uid-pod-agent-{node}"),
            "resourceVersion": "1", "labels": {"app.kubernetes.io/name": "labscope-agent", "app.kubernetes.io/part-of": "labscope"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "labscope-agent", "uid": "uid-ds-agent", "controller": true}]},
        "spec": {"nodeName": node, "hostNetwork": true, "containers": [{"name": "agent", "image": "ghcr.io/labscope/labscope-agent:0.1.0"}]},
        "status": if ready {
            json!({"phase": "Running", "podIP": ip, "hostIP": ip, "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "agent", "ready": true, "restartCount": 0, "image": "", "imageID": "", "state": {"running": {}}}]})
        } else {
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]})
        }
    })
}

type Shared = Arc<Mutex<Fixture>>;

/// Watch events the fake streams: (event type, object).
type Events = tokio::sync::broadcast::Sender<(String, Value)>;

#[derive(Clone)]
struct AppState {
    fixture: Shared,
    events: Events,
}

/// A Kubernetes `Status` failure response.
fn status(code: u16, reason: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "details": {}, "code": code})),
    )
        .into_response()
}

fn forbidden(verb: &str, resource: &str, group: &str, namespace: Option<&str>) -> Response {
    let scope = namespace
        .map(|n| format!(" in the namespace \"{n}\""))
        .unwrap_or_else(|| " at the cluster scope".into());
    let message = format!(
        "{resource} is forbidden: User \"system:serviceaccount:labscope:labscope\" cannot {verb} resource \"{resource}\" in API group \"{group}\"{scope}"
    );
    status(403, "Forbidden", &message)
}

fn not_found() -> Response {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// Splits a selector on the commas that separate requirements (not those
/// inside `in (a,b)`).
fn requirements(selector: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(selector[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(selector[start..].trim());
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

/// A label key or value as the API server accepts it.
fn label_token(s: &str, key: bool) -> bool {
    let s = s.trim();
    let name = s.rsplit('/').next().unwrap_or(s);
    let ok_chars = |t: &str| {
        t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let edges = |t: &str| {
        t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && t.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
    };
    if key {
        !name.is_empty() && name.len() <= 63 && ok_chars(name) && edges(name)
    } else {
        s.is_empty() || (s.len() <= 63 && ok_chars(s) && edges(s))
    }
}

/// One parsed requirement of a label selector.
enum Requirement<'a> {
    Eq(&'a str, &'a str),
    NotEq(&'a str, &'a str),
    In(&'a str, Vec<&'a str>),
    NotIn(&'a str, Vec<&'a str>),
    Exists(&'a str),
    NotExists(&'a str),
}

fn parse_requirement(term: &str) -> Option<Requirement<'_>> {
    // `key in (a,b)` / `key notin (a,b)`.
    let set = |op: &str| -> Option<(&str, Vec<&str>)> {
        let at = term.find(op)?;
        let values = term[at + op.len()..]
            .trim()
            .strip_prefix('(')?
            .strip_suffix(')')?;
        Some((
            term[..at].trim(),
            values.split(',').map(str::trim).collect(),
        ))
    };
    let r = if let Some((k, vs)) = set(" notin ") {
        Requirement::NotIn(k, vs)
    } else if let Some((k, vs)) = set(" in ") {
        Requirement::In(k, vs)
    } else if let Some((k, v)) = term.split_once("!=") {
        Requirement::NotEq(k.trim(), v.trim())
    } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        Requirement::Eq(k.trim(), v.trim())
    } else if let Some(k) = term.strip_prefix('!') {
        Requirement::NotExists(k.trim())
    } else {
        Requirement::Exists(term.trim())
    };
    let valid = match &r {
        Requirement::Eq(k, v) | Requirement::NotEq(k, v) => {
            label_token(k, true) && label_token(v, false)
        }
        Requirement::In(k, vs) | Requirement::NotIn(k, vs) => {
            label_token(k, true) && !vs.is_empty() && vs.iter().all(|v| label_token(v, false))
        }
        Requirement::Exists(k) | Requirement::NotExists(k) => label_token(k, true),
    };
    valid.then_some(r)
}

/// A label selector as the API server reads it: equality (`a=b`, `a==b`,
/// `a!=b`), set-based (`a in (x,y)`, `a notin (x)`), existence (`a`, `!a`).
/// `None` when it does not parse (the API server answers 400).
pub fn parse_selector(selector: &str) -> Option<Vec<(String, String, Vec<String>)>> {
    requirements(selector)
        .into_iter()
        .map(|t| {
            parse_requirement(t).map(|r| match r {
                Requirement::Eq(k, v) => ("=".to_string(), k.to_string(), vec![v.to_string()]),
                Requirement::NotEq(k, v) => ("!=".to_string(), k.to_string(), vec![v.to_string()]),
                Requirement::In(k, vs) => (
                    "in".to_string(),
                    k.to_string(),
                    vs.iter().map(|v| v.to_string()).collect(),
                ),
                Requirement::NotIn(k, vs) => (
                    "notin".to_string(),
                    k.to_string(),
                    vs.iter().map(|v| v.to_string()).collect(),
                ),
                Requirement::Exists(k) => ("exists".to_string(), k.to_string(), Vec::new()),
                Requirement::NotExists(k) => ("!exists".to_string(), k.to_string(), Vec::new()),
            })
        })
        .collect()
}

/// Label selectors, as kube-rs sends them (an unparsable one matches nothing).
pub fn selector_matches(selector: &str, labels: &Value) -> bool {
    let Some(reqs) = parse_selector(selector) else {
        return false;
    };
    reqs.iter().all(|(op, k, vs)| {
        let have = labels.get(k).and_then(Value::as_str);
        match op.as_str() {
            "=" => have == vs.first().map(String::as_str),
            "!=" => have != vs.first().map(String::as_str),
            "in" => have.is_some_and(|h| vs.iter().any(|v| v == h)),
            "notin" => have.is_none_or(|h| vs.iter().all(|v| v != h)),
            "exists" => have.is_some(),
            _ => have.is_none(),
        }
    })
}

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    #[serde(rename = "labelSelector")]
    label_selector: Option<String>,
    #[serde(rename = "fieldSelector")]
    field_selector: Option<String>,
    watch: Option<String>,
    #[serde(rename = "timeoutSeconds")]
    timeout_seconds: Option<u64>,
    limit: Option<usize>,
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

/// Kubernetes version priority: GA over beta over alpha, higher numbers first.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(major) = digits.parse::<u32>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    let (stability, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        return (0, 0, 0);
    };
    (stability, major, minor)
}

/// Every kind the fake knows: (group, kind, plural, namespaced).
pub const KNOWN_KINDS: &[(&str, &str, &str, bool)] = &[
    ("", "Pod", "pods", true),
    ("", "Node", "nodes", false),
    ("", "Event", "events", true),
    ("", "Namespace", "namespaces", false),
    ("", "Service", "services", true),
    ("", "PersistentVolumeClaim", "persistentvolumeclaims", true),
    ("", "PersistentVolume", "persistentvolumes", false),
    ("", "ConfigMap", "configmaps", true),
    ("apps", "Deployment", "deployments", true),
    ("apps", "ReplicaSet", "replicasets", true),
    ("apps", "DaemonSet", "daemonsets", true),
    ("apps", "StatefulSet", "statefulsets", true),
    ("batch", "Job", "jobs", true),
    ("batch", "CronJob", "cronjobs", true),
    ("networking.k8s.io", "Ingress", "ingresses", true),
    ("networking.k8s.io", "IngressClass", "ingressclasses", false),
    ("gateway.networking.k8s.io", "HTTPRoute", "httproutes", true),
    ("discovery.k8s.io", "EndpointSlice", "endpointslices", true),
    ("events.k8s.io", "Event", "events", true),
    (
        "source.toolkit.fluxcd.io",
        "GitRepository",
        "gitrepositories",
        true,
    ),
    (
        "source.toolkit.fluxcd.io",
        "OCIRepository",
        "ocirepositories",
        true,
    ),
    (
        "source.toolkit.fluxcd.io",
        "HelmRepository",
        "helmrepositories",
        true,
    ),
    ("source.toolkit.fluxcd.io", "HelmChart", "helmcharts", true),
    ("source.toolkit.fluxcd.io", "Bucket", "buckets", true),
    (
        "kustomize.toolkit.fluxcd.io",
        "Kustomization",
        "kustomizations",
        true,
    ),
    (
        "helm.toolkit.fluxcd.io",
        "HelmRelease",
        "helmreleases",
        true,
    ),
    (
        "image.toolkit.fluxcd.io",
        "ImageRepository",
        "imagerepositories",
        true,
    ),
    (
        "image.toolkit.fluxcd.io",
        "ImagePolicy",
        "imagepolicies",
        true,
    ),
    (
        "image.toolkit.fluxcd.io",
        "ImageUpdateAutomation",
        "imageupdateautomations",
        true,
    ),
    (
        "notification.toolkit.fluxcd.io",
        "Provider",
        "providers",
        true,
    ),
    ("notification.toolkit.fluxcd.io", "Alert", "alerts", true),
    (
        "notification.toolkit.fluxcd.io",
        "Receiver",
        "receivers",
        true,
    ),
    ("cert-manager.io", "Certificate", "certificates", true),
    (
        "cert-manager.io",
        "CertificateRequest",
        "certificaterequests",
        true,
    ),
    ("cert-manager.io", "Issuer", "issuers", true),
    ("cert-manager.io", "ClusterIssuer", "clusterissuers", false),
    ("acme.cert-manager.io", "Order", "orders", true),
    ("acme.cert-manager.io", "Challenge", "challenges", true),
    (
        "external-secrets.io",
        "ExternalSecret",
        "externalsecrets",
        true,
    ),
    ("external-secrets.io", "SecretStore", "secretstores", true),
    (
        "external-secrets.io",
        "ClusterSecretStore",
        "clustersecretstores",
        false,
    ),
    (
        "external-secrets.io",
        "ClusterExternalSecret",
        "clusterexternalsecrets",
        false,
    ),
    ("tailscale.com", "Connector", "connectors", false),
    ("tailscale.com", "ProxyClass", "proxyclasses", false),
    (
        "monitoring.coreos.com",
        "ServiceMonitor",
        "servicemonitors",
        true,
    ),
    (
        "monitoring.coreos.com",
        "PrometheusRule",
        "prometheusrules",
        true,
    ),
];

/// The versions `group` serves, most preferred first (as `/apis` lists them).
fn group_versions(f: &Fixture, group: &str) -> Vec<String> {
    if group.is_empty() {
        return vec!["v1".into()];
    }
    let mut vs: Vec<String> = f
        .groups
        .iter()
        .filter(|(g, _)| g == group)
        .flat_map(|(_, vs)| vs.iter().cloned())
        .collect();
    vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    vs.dedup();
    vs
}

/// The versions at which `kind` of `group` is served: its override in
/// `kind_versions`, else every version of its group.
fn kind_versions(f: &Fixture, group: &str, kind: &str) -> Vec<String> {
    let served = group_versions(f, group);
    match f
        .kind_versions
        .iter()
        .find(|(g, k, _)| g == group && k == kind)
    {
        Some((_, _, vs)) => vs.iter().filter(|v| served.contains(v)).cloned().collect(),
        None => served,
    }
}

/// The kind served as `plural` at `group/version`: (kind, namespaced).
fn served_kind(
    f: &Fixture,
    group: &str,
    version: &str,
    plural_name: &str,
) -> Option<(&'static str, bool)> {
    KNOWN_KINDS
        .iter()
        .find(|(g, _, p, _)| *g == group && *p == plural_name)
        .filter(|(g, k, _, _)| kind_versions(f, g, k).iter().any(|v| v == version))
        .map(|(_, k, _, ns)| (*k, *ns))
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// Every object of `kind` in `group`, whatever version it was written at
/// (an API server converts between served versions).
fn collection<'a>(f: &'a Fixture, group: &str, kind: &str) -> Vec<&'a Value> {
    let mut items: Vec<&Value> = f
        .objects
        .iter()
        .filter(|o| o["kind"] == kind && o["apiVersion"].as_str().map(group_of) == Some(group))
        .collect();
    if group.is_empty() {
        match kind {
            "Pod" => items.extend(f.pods.iter()),
            "Node" => items.extend(f.nodes.iter()),
            "Event" => items.extend(f.events.iter()),
            _ => {}
        }
    }
    items
}

/// `obj` as served at `group/version`.
fn at_version(obj: &Value, group: &str, version: &str) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    });
    o
}

async fn api_groups(State(app): State<AppState>) -> Response {
    let Ok(f) = app.fixture.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut names: Vec<&String> = f.groups.iter().map(|(g, _)| g).collect();
    names.dedup();
    let groups: Vec<Value> = names
        .iter()
        .map(|g| {
            let vs: Vec<Value> = group_versions(&f, g)
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
        })
        .collect();
    axum::Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        .into_response()
}

fn serves(f: &Fixture, group: &str, version: &str) -> bool {
    group_versions(f, group).iter().any(|v| v == version)
}

async fn group_resources(
    State(app): State<AppState>,
    UrlPath((group, version)): UrlPath<(String, String)>,
) -> Response {
    let Ok(f) = app.fixture.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if !serves(&f, &group, &version) {
        return not_found();
    }
    let resources: Vec<Value> = KNOWN_KINDS
        .iter()
        .filter(|(g, k, _, _)| *g == group && kind_versions(&f, g, k).contains(&version))
        .map(|(_, k, p, ns)| {
            json!({"name": p, "singularName": k.to_lowercase(), "namespaced": ns, "kind": k,
                "verbs": ["get", "list", "watch", "patch", "update", "create", "delete"]})
        })
        .collect();
    axum::Json(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{group}/{version}"),
        "resources": resources}))
    .into_response()
}

/// Field selectors (`a.b=c`, `a.b==c`, `a.b!=c`, comma-separated) on JSON paths.
pub fn field_matches(selector: &str, obj: &Value) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            let (path, want, negate) = if let Some((p, v)) = term.split_once("!=") {
                (p, v, true)
            } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (p, v, false)
            } else {
                return true;
            };
            let mut at = obj;
            for part in path.split('.') {
                at = &at[part];
            }
            let have = match at {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (have == want) != negate
        })
}

fn list_response(
    f: &Fixture,
    group: &str,
    version: &str,
    plural_name: &str,
    ns: Option<&str>,
    q: &ListQuery,
) -> Response {
    let Some((kind, namespaced)) = served_kind(f, group, version, plural_name) else {
        return not_found();
    };
    if ns.is_some() && !namespaced {
        return not_found();
    }
    if f.forbidden.contains(plural_name) {
        return forbidden("list", plural_name, group, ns);
    }
    let labels = q.label_selector.clone().unwrap_or_default();
    if parse_selector(&labels).is_none() {
        return status(
            400,
            "BadRequest",
            &format!("unable to parse requirement: invalid label selector {labels:?}"),
        );
    }
    let fields = q.field_selector.clone().unwrap_or_default();
    let all: Vec<&Value> = collection(f, group, kind)
        .into_iter()
        .filter(|o| ns.is_none_or(|n| o["metadata"]["namespace"] == n))
        .filter(|o| selector_matches(&labels, &o["metadata"]["labels"]))
        .filter(|o| field_matches(&fields, o))
        .collect();
    // Pages: the continue token is the offset of the next item.
    let offset: usize = match q.continue_token.as_deref() {
        None | Some("") => 0,
        Some(t) => match t.strip_prefix("page-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return status(400, "BadRequest", "continue key is not valid"),
        },
    };
    let limit = q.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let items: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|o| at_version(o, group, version))
        .collect();
    let next = offset + items.len();
    let mut metadata = json!({"resourceVersion": "1"});
    if next < all.len() {
        metadata["continue"] = json!(format!("page-{next}"));
        metadata["remainingItemCount"] = json!(all.len() - next);
    }
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    axum::Json(json!({"kind": format!("{kind}List"), "apiVersion": api_version, "metadata": metadata, "items": items}))
        .into_response()
}

fn get_response(
    f: &Fixture,
    group: &str,
    version: &str,
    plural_name: &str,
    ns: Option<&str>,
    name: &str,
) -> Response {
    let Some((kind, _)) = served_kind(f, group, version, plural_name) else {
        return not_found();
    };
    if f.forbidden.contains(plural_name) {
        return forbidden("get", plural_name, group, ns);
    }
    match collection(f, group, kind).into_iter().find(|o| {
        o["metadata"]["name"] == name && ns.is_none_or(|n| o["metadata"]["namespace"] == n)
    }) {
        Some(o) => axum::Json(at_version(o, group, version)).into_response(),
        None => status(
            404,
            "NotFound",
            &format!("{plural_name} \"{name}\" not found"),
        ),
    }
}

/// Reads the fixture for one request (a poisoned lock is a 500).
macro_rules! fixture {
    ($app:expr) => {
        match $app.fixture.lock() {
            Ok(f) => f,
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    };
}

async fn custom_all(
    State(app): State<AppState>,
    UrlPath((group, version, plural_name)): UrlPath<(String, String, String)>,
    Query(q): Query<ListQuery>,
) -> Response {
    let mut f = fixture!(app);
    crate::fake_controllers::settle(&mut f);
    list_response(&f, &group, &version, &plural_name, None, &q)
}

async fn custom_namespaced(
    State(app): State<AppState>,
    UrlPath((group, version, ns, plural_name)): UrlPath<(String, String, String, String)>,
    Query(q): Query<ListQuery>,
) -> Response {
    let mut f = fixture!(app);
    crate::fake_controllers::settle(&mut f);
    list_response(&f, &group, &version, &plural_name, Some(&ns), &q)
}

async fn custom_get_cluster(
    State(app): State<AppState>,
    UrlPath((group, version, plural_name, name)): UrlPath<(String, String, String, String)>,
) -> Response {
    let f = fixture!(app);
    get_response(&f, &group, &version, &plural_name, None, &name)
}

async fn custom_get_namespaced(
    State(app): State<AppState>,
    UrlPath((group, version, ns, plural_name, name)): UrlPath<(
        String,
        String,
        String,
        String,
        String,
    )>,
) -> Response {
    let mut f = fixture!(app);
    crate::fake_controllers::settle(&mut f);
    get_response(&f, &group, &version, &plural_name, Some(&ns), &name)
}

/// The content types a merge patch may come as.
const MERGE_PATCH: &str = "application/merge-patch+json";

/// PATCH of a namespaced object: JSON merge patches only (what labscope
/// sends); the controllers react (`fake_controllers`).
async fn custom_patch_namespaced(
    State(app): State<AppState>,
    UrlPath((group, version, ns, plural_name, name)): UrlPath<(
        String,
        String,
        String,
        String,
        String,
    )>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut f = fixture!(app);
    crate::fake_controllers::settle(&mut f);
    let Some((kind, _)) = served_kind(&f, &group, &version, &plural_name) else {
        return not_found();
    };
    if f.forbidden.contains(&plural_name) || f.forbidden.contains(&format!("patch {plural_name}")) {
        return forbidden("patch", &plural_name, &group, Some(&ns));
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with(MERGE_PATCH) {
        return status(
            415,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, {MERGE_PATCH}, application/apply-patch+yaml (got {content_type:?})"
            ),
        );
    }
    let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
        return status(400, "BadRequest", "error decoding patch: invalid JSON");
    };
    let Some(i) = f.objects.iter().position(|o| {
        o["kind"] == kind
            && o["apiVersion"].as_str().map(group_of) == Some(group.as_str())
            && o["metadata"]["namespace"] == ns.as_str()
            && o["metadata"]["name"] == name.as_str()
    }) else {
        return status(
            404,
            "NotFound",
            &format!("{plural_name}.{group} \"{name}\" not found"),
        );
    };
    // Admission sees the object as patched, at the request's version.
    let mut candidate = f.objects[i].clone();
    crate::fake_controllers::merge_patch(&mut candidate, &patch);
    let request = crate::admission::Request {
        group: &group,
        version: &version,
        resource: &plural_name,
        operation: "UPDATE",
        namespace: &ns,
        name: &name,
        username: crate::admission::LABSCOPE_USER,
    };
    if let Err(d) = crate::admission::admit(
        &f.objects,
        &request,
        Some(&at_version(&f.objects[i], &group, &version)),
        &at_version(&candidate, &group, &version),
    ) {
        return status(d.code, &d.reason, &d.message);
    }
    crate::fake_controllers::patched(&mut f, i, &patch);
    f.objects[i] = bump(f.objects[i].clone());
    axum::Json(at_version(&f.objects[i], &group, &version)).into_response()
}

/// POST of a namespaced object (Jobs from `trigger_backup`): 409 when the
/// name is taken.
async fn custom_create_namespaced(
    State(app): State<AppState>,
    UrlPath((group, version, ns, plural_name)): UrlPath<(String, String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let mut f = fixture!(app);
    let Some((kind, _)) = served_kind(&f, &group, &version, &plural_name) else {
        return not_found();
    };
    if f.forbidden.contains(&plural_name) || f.forbidden.contains(&format!("create {plural_name}"))
    {
        return forbidden("create", &plural_name, &group, Some(&ns));
    }
    let Ok(obj) = serde_json::from_slice::<Value>(&body) else {
        return status(400, "BadRequest", "error decoding body: invalid JSON");
    };
    let Some(name) = obj["metadata"]["name"].as_str().map(str::to_string) else {
        return status(
            422,
            "Invalid",
            &format!(
                "{kind}.{group} \"\" is invalid: metadata.name: Required value: name or generateName is required"
            ),
        );
    };
    if obj["metadata"]["namespace"]
        .as_str()
        .is_some_and(|n| n != ns)
    {
        return status(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        );
    }
    let exists = collection(&f, &group, kind).iter().any(|o| {
        o["metadata"]["namespace"] == ns.as_str() && o["metadata"]["name"] == name.as_str()
    });
    if exists {
        return status(
            409,
            "AlreadyExists",
            &format!("{plural_name}.{group} \"{name}\" already exists"),
        );
    }
    let request = crate::admission::Request {
        group: &group,
        version: &version,
        resource: &plural_name,
        operation: "CREATE",
        namespace: &ns,
        name: &name,
        username: crate::admission::LABSCOPE_USER,
    };
    if let Err(d) = crate::admission::admit(&f.objects, &request, None, &obj) {
        return status(d.code, &d.reason, &d.message);
    }
    let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let api_version = if group.is_empty() {
        version.clone()
    } else {
        format!("{group}/{version}")
    };
    let obj = crate::fake_controllers::created(obj, &api_version, kind, &ns, serial);
    f.objects.push(obj.clone());
    (StatusCode::CREATED, axum::Json(obj)).into_response()
}

async fn core_all(
    State(app): State<AppState>,
    UrlPath(plural_name): UrlPath<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let f = fixture!(app);
    list_response(&f, "", "v1", &plural_name, None, &q)
}

async fn core_namespaced(
    State(app): State<AppState>,
    UrlPath((ns, plural_name)): UrlPath<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Response {
    let f = fixture!(app);
    list_response(&f, "", "v1", &plural_name, Some(&ns), &q)
}

async fn core_get_cluster(
    State(app): State<AppState>,
    UrlPath((plural_name, name)): UrlPath<(String, String)>,
) -> Response {
    let f = fixture!(app);
    get_response(&f, "", "v1", &plural_name, None, &name)
}

async fn core_get_namespaced(
    State(app): State<AppState>,
    UrlPath((ns, plural_name, name)): UrlPath<(String, String, String)>,
) -> Response {
    let f = fixture!(app);
    get_response(&f, "", "v1", &plural_name, Some(&ns), &name)
}

async fn pods_in(
    State(app): State<AppState>,
    UrlPath(ns): UrlPath<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    if !(q.watch.as_deref() == Some("true") || q.watch.as_deref() == Some("1")) {
        let f = fixture!(app);
        return list_response(&f, "", "v1", "pods", Some(&ns), &q);
    }
    {
        let f = fixture!(app);
        if f.forbidden.contains("pods") {
            return forbidden("watch", "pods", "", Some(&ns));
        }
    }
    // A watch: stream change events as JSON lines until the timeout.
    let sel = q.label_selector.clone().unwrap_or_default();
    let fields = q.field_selector.clone().unwrap_or_default();
    let wanted = move |p: &Value| {
        p["metadata"]["namespace"] == ns.as_str()
            && selector_matches(&sel, &p["metadata"]["labels"])
            && field_matches(&fields, p)
    };
    let rx = app.events.subscribe();
    let until = tokio::time::Instant::now()
        + std::time::Duration::from_secs(q.timeout_seconds.unwrap_or(30).min(30));
    let stream = futures::stream::unfold((rx, wanted), move |(mut rx, wanted)| async move {
        loop {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Err(_) | Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                    return None;
                }
                Ok(Err(_)) => continue,
                Ok(Ok((kind, obj))) if wanted(&obj) => {
                    let line = format!("{}\n", json!({"type": kind, "object": obj}));
                    return Some((
                        Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(line)),
                        (rx, wanted),
                    ));
                }
                Ok(Ok(_)) => continue,
            }
        }
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(axum::body::Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[derive(serde::Deserialize, Default)]
struct LogQuery {
    container: Option<String>,
    #[serde(rename = "tailLines")]
    tail_lines: Option<usize>,
    previous: Option<bool>,
    #[serde(rename = "limitBytes")]
    limit_bytes: Option<usize>,
    #[serde(rename = "sinceSeconds")]
    since_seconds: Option<i64>,
}

/// When a log line was written, for `sinceSeconds`: the kubelet keeps the
/// runtime's timestamp of every line; the fixture's logs carry theirs in
/// the text, as Unbound's `[epoch]` or an RFC 3339 prefix. `None` for
/// lines without one (kept, as if just written).
fn log_line_time(line: &str) -> Option<i64> {
    if let Some(rest) = line.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end].parse().ok();
    }
    let first = line.split_whitespace().next()?;
    labscope::cluster::time::parse_rfc3339(first)
}

async fn pod_log(
    State(app): State<AppState>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let f = fixture!(app);
    if f.forbidden.contains("pods/log") {
        return forbidden("get", "pods/log", "", Some(&ns));
    }
    let Some(pod) = f.pods.iter().find(|p| {
        p["metadata"]["namespace"] == ns.as_str() && p["metadata"]["name"] == name.as_str()
    }) else {
        return status(404, "NotFound", &format!("pods \"{name}\" not found"));
    };
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    // Like the API server: no container named is fine only for a pod with one.
    let container = match q.container {
        Some(c) if containers.contains(&c.as_str()) => c,
        Some(c) => {
            return status(
                400,
                "BadRequest",
                &format!("container {c} is not valid for pod {name}"),
            );
        }
        None if containers.len() == 1 => containers[0].to_string(),
        None => {
            return status(
                400,
                "BadRequest",
                &format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    containers.join(" ")
                ),
            );
        }
    };
    // Like the API server's validation of PodLogOptions.
    if q.since_seconds.is_some_and(|s| s < 1) {
        return status(
            422,
            "Invalid",
            "PodLogOptions.core \"\" is invalid: sinceSeconds: Invalid value: must be greater than 0",
        );
    }
    let previous = q.previous.unwrap_or(false);
    let key = format!(
        "{ns}/{name}/{container}{}",
        if previous { "/previous" } else { "" }
    );
    let Some(text) = f.logs.get(&key) else {
        if previous {
            let message = format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            );
            return status(400, "BadRequest", &message);
        }
        return String::new().into_response();
    };
    // Lines older than sinceSeconds are left out before tailLines counts.
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| match (q.since_seconds, log_line_time(l)) {
            (Some(since), Some(at)) => at >= FIXTURE_NOW - since,
            _ => true,
        })
        .collect();
    let start = q
        .tail_lines
        .map(|n| lines.len().saturating_sub(n))
        .unwrap_or(0);
    let mut out: String = lines[start..].iter().map(|l| format!("{l}\n")).collect();
    if let Some(limit) = q.limit_bytes {
        let mut cut = limit.min(out.len());
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out.into_response()
}

/// A core/v1 Event about `kind/name` in `ns`, last seen `ago` seconds before the fixture's now.
// One argument per Event field a scenario sets; a builder would only hide that.
#[allow(clippy::too_many_arguments)]
pub fn event(
    ns: &str,
    kind: &str,
    name: &str,
    type_: &str,
    reason: &str,
    message: &str,
    count: i32,
    ago: i64,
) -> Value {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let t = rfc3339(FIXTURE_NOW - ago);
    json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{n:x}"), "namespace": ns, "uid": format!("uid-ev-{n}"), "resourceVersion": "1", "creationTimestamp": t},
        "involvedObject": {"kind": kind, "namespace": ns, "name": name},
        "type": type_, "reason": reason, "message": message, "count": count,
        "firstTimestamp": t, "lastTimestamp": t, "source": {"component": "kubelet", "host": "pi-k3s"}})
}

/// A long-running pod owned by a ReplicaSet, Running and Ready.
pub fn running_pod(ns: &str, name: &str, app: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-pod-{ns}-{name}"), "resourceVersion": "1",
            "creationTimestamp": "2026-08-12T09:40:00Z", "labels": {"app": app},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-5d8f7c9b6d"), "uid": "u", "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": app}]},
        "status": {"phase": "Running", "conditions": [
                {"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": app, "ready": true, "started": true, "restartCount": 0, "image": "", "imageID": "",
                "state": {"running": {"startedAt": "2026-08-12T09:41:00Z"}}}]}})
}

/// A finished Job pod (phase Succeeded, Ready=False reason PodCompleted): healthy.
pub fn completed_job_pod(ns: &str, job: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{job}-k8x2q"), "namespace": ns, "uid": format!("uid-pod-{ns}-{job}"), "resourceVersion": "1",
            "creationTimestamp": "2026-08-19T19:00:00Z", "labels": {"job-name": job, "batch.kubernetes.io/job-name": job},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": "u", "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": "job"}]},
        "status": {"phase": "Succeeded", "conditions": [
                {"type": "Ready", "status": "False", "reason": "PodCompleted"}, {"type": "ContainersReady", "status": "False", "reason": "PodCompleted"}],
            "containerStatuses": [{"name": "job", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": "2026-08-19T19:00:20Z"}}}]}})
}

/// Namespace `pihole` in its steady state (HOMELAB.md §1.13): six Running
/// pods and seven completed Job pods whose names contain "pihole".
pub fn pihole_pods() -> Vec<Value> {
    let mut out: Vec<Value> = [
        ("pihole", "pi-k3s"),
        ("pihole-secondary", "pi5-worker-1"),
        ("unbound", "pi-k3s"),
        ("unbound-secondary", "pi5-worker-1"),
        ("pihole-exporter", "pi5-worker-2"),
        ("pihole-exporter-secondary", "pi5-worker-2"),
    ]
    .iter()
    .map(|(app, node)| running_pod("pihole", &format!("{app}-5d8f7c9b6d-a1b2c"), app, node))
    .collect();
    for job in [
        "pihole-brainrot-allow-29785980",
        "pihole-brainrot-allow-29786040",
        "pihole-brainrot-allow-29786100",
        "pihole-brainrot-block-29786220",
        "pihole-brainrot-block-29786280",
        "pihole-brainrot-block-29786340",
        "pihole-brainrot-setup-adgroups-2",
    ] {
        out.push(completed_job_pod("pihole", job, "pi3-worker-2"));
    }
    out
}

/// Scenario 3.g: the Jellyfin pod Running but crash-looping.
pub fn jellyfin_crashloop_pod() -> Value {
    let mut p = running_pod("jellyfin", "jellyfin-7c9d6f5b8-x4k2p", "jellyfin", "pi-k3s");
    p["status"]["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
        {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"}, {"type": "PodScheduled", "status": "True"}]);
    p["status"]["containerStatuses"] = json!([{"name": "jellyfin", "ready": false, "restartCount": 14, "image": "", "imageID": "",
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container=jellyfin pod=jellyfin-7c9d6f5b8-x4k2p"}},
        "lastState": {"terminated": {"exitCode": 143, "reason": "Error", "finishedAt": "2026-08-20T06:04:00Z"}}}]);
    p
}

/// A running fake API server.
pub struct FakeKube {
    /// Base URL.
    pub url: String,
    /// Shared fixture (tests may change it while serving).
    pub fixture: Shared,
    events: Events,
    /// Requests served so far (benchmarks count API requests per tool call).
    pub requests: Arc<std::sync::atomic::AtomicU64>,
    /// Every request as "METHOD path?query", in order (the RBAC test
    /// derives the permissions the code uses from it).
    pub log: Arc<Mutex<Vec<String>>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl FakeKube {
    /// Serves `fixture` on 127.0.0.1 (random port).
    pub async fn start(fixture: Fixture) -> anyhow::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(fixture));
        let (events, _) = tokio::sync::broadcast::channel(256);
        let requests = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = requests.clone();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let log_in = log.clone();
        let faults = shared.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let app = Router::new()
            .route("/api", get(move || async move {
                axum::Json(json!({"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}]}))
            }))
            .route("/apis", get(api_groups))
            .route("/apis/{group}/{version}", get(group_resources))
            .route("/apis/{group}/{version}/{plural}", get(custom_all))
            .route("/apis/{group}/{version}/namespaces/{ns}/{plural}", get(custom_namespaced).post(custom_create_namespaced))
            .route("/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}", get(custom_get_namespaced).patch(custom_patch_namespaced))
            .route("/apis/{group}/{version}/{plural}/{name}", get(custom_get_cluster))
            .route("/api/v1/{plural}", get(core_all))
            .route("/api/v1/{plural}/{name}", get(core_get_cluster))
            .route("/api/v1/namespaces/{ns}/{plural}", get(core_namespaced))
            .route("/api/v1/namespaces/{ns}/{plural}/{name}", get(core_get_namespaced))
            .route("/api/v1/namespaces/{ns}/pods", get(pods_in))
            .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
            .with_state(AppState { fixture: shared.clone(), events: events.clone() })
            .layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Ok(mut log) = log_in.lock() {
                    log.push(format!("{} {}", req.method(), req.uri()));
                }
                let faults = faults.clone();
                async move {
                    let path = req.uri().path().to_string();
                    let fault = faults
                        .lock()
                        .ok()
                        .and_then(|f| f.faults.iter().find(|x| path.contains(&x.path)).map(|x| x.effect.clone()));
                    match fault {
                        Some(FaultEffect::Status(code)) => injected(code),
                        Some(FaultEffect::Delay(d)) => {
                            tokio::time::sleep(d).await;
                            next.run(req).await
                        }
                        None => next.run(req).await,
                    }
                }
            }));
        let tx = crate::servers::serve_until_dropped(listener, app);
        Ok(Self {
            url: format!("http://{addr}"),
            fixture: shared,
            events,
            requests,
            log,
            _shutdown: tx,
        })
    }

    /// Adds or replaces a pod (by namespace/name) and tells watchers.
    pub fn upsert_pod(&self, pod: Value) {
        let key = |p: &Value| {
            (
                p["metadata"]["namespace"].clone(),
                p["metadata"]["name"].clone(),
            )
        };
        let kind = match self.fixture.lock() {
            Ok(mut f) => match f.pods.iter().position(|p| key(p) == key(&pod)) {
                Some(i) => {
                    f.pods[i] = pod.clone();
                    "MODIFIED"
                }
                None => {
                    f.pods.push(pod.clone());
                    "ADDED"
                }
            },
            Err(_) => return,
        };
        let _ = self.events.send((kind.to_string(), bump(pod)));
    }

    /// Deletes a pod and tells watchers.
    pub fn delete_pod(&self, namespace: &str, name: &str) {
        let removed = match self.fixture.lock() {
            Ok(mut f) => {
                let at = f.pods.iter().position(|p| {
                    p["metadata"]["namespace"] == namespace && p["metadata"]["name"] == name
                });
                at.map(|i| f.pods.remove(i))
            }
            Err(_) => None,
        };
        if let Some(pod) = removed {
            let _ = self.events.send(("DELETED".to_string(), bump(pod)));
        }
    }

    /// Writes a kubeconfig pointing at this server into `dir`.
    pub fn write_kubeconfig(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: homelab-fixture\n  cluster:\n    server: {}\ncontexts:\n- name: homelab-fixture\n  context:\n    cluster: homelab-fixture\n    user: labscope\ncurrent-context: homelab-fixture\nusers:\n- name: labscope\n  user:\n    token: fixture-token\n",
                self.url
            ),
        )?;
        Ok(path)
    }
}

/// The answer of an injected status fault, worded as the API server words it.
fn injected(code: u16) -> Response {
    let (reason, message) = match code {
        401 => ("Unauthorized", "Unauthorized"),
        403 => ("Forbidden", "forbidden"),
        404 => (
            "NotFound",
            "the server could not find the requested resource",
        ),
        429 => (
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        ),
        500 => (
            "InternalError",
            "Internal error occurred: etcdserver: request timed out",
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
        _ => ("InternalError", "injected failure"),
    };
    let mut r = status(code, reason, message);
    if code == 429
        && let Ok(v) = axum::http::HeaderValue::from_str("1")
    {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

/// Watch events carry a newer resourceVersion than the list.
fn bump(mut obj: Value) -> Value {
    static RV: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(100);
    let rv = RV.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    obj["metadata"]["resourceVersion"] = json!(rv.to_string());
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let labels = json!({"app.kubernetes.io/name": "labscope-agent", "tier": "node"});
        assert!(selector_matches(
            "app.kubernetes.io/name=labscope-agent",
            &labels
        ));
        assert!(selector_matches(
            "app.kubernetes.io/name==labscope-agent,tier=node",
            &labels
        ));
        assert!(!selector_matches("app.kubernetes.io/name=other", &labels));
        assert!(selector_matches("", &labels));
        assert!(selector_matches("tier", &labels));
    }
}
