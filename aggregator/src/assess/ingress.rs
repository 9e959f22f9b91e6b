//! Ingresses judged: each backend Service's ready endpoints (a backend
//! whose Deployment is scaled to zero is parked, not down) and each TLS
//! secret's cert-manager Certificate (ready, days left). `tools/ingress.rs`
//! reads the objects.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::DynamicObject;
use schemars::JsonSchema;
use serde::Serialize;

use super::FailedPart;
use crate::cluster::kinds::{condition, fields};
use crate::cluster::time::{parse_rfc3339, rfc3339};

/// A backend's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum BackendState {
    /// Has ready endpoints.
    #[serde(rename = "ok")]
    Ok,
    /// Its Deployment is at 0 replicas: parked, not failing.
    #[serde(rename = "scaled to zero")]
    ScaledToZero,
    /// Endpoints exist, none ready.
    #[serde(rename = "no ready endpoints")]
    NoReadyEndpoints,
    /// No pod matches the Service.
    #[serde(rename = "no endpoints")]
    NoEndpoints,
    /// The Service does not exist.
    #[serde(rename = "service missing")]
    ServiceMissing,
}

/// One host → Service route.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// Host (`*` for any).
    pub host: String,
    /// Path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Service.
    pub service: String,
    /// Port number or name.
    pub port: String,
    /// State.
    pub state: BackendState,
    /// Ready endpoints.
    pub ready_endpoints: usize,
    /// Endpoints not ready.
    pub not_ready_endpoints: usize,
    /// Why, when not ok.
    pub note: String,
}

/// The Certificate behind a TLS secret.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsCertificate {
    /// Certificate name.
    pub name: String,
    /// Ready.
    pub ready: bool,
    /// Expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// Days until expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
    /// Why not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One TLS entry.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    /// Hosts.
    pub hosts: Vec<String>,
    /// Secret.
    pub secret_name: String,
    /// Its cert-manager Certificate, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<TlsCertificate>,
    /// Ready and unexpired (absent without a Certificate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_certificate: Option<bool>,
    /// What it means.
    pub note: String,
}

/// One Ingress.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressRow {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// IngressClass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Hosts.
    pub hosts: Vec<String>,
    /// Load balancer addresses.
    pub addresses: Vec<String>,
    /// Every backend serves and every certificate is valid.
    pub ok: bool,
    /// Backends.
    pub backends: Vec<Backend>,
    /// TLS.
    pub tls: Vec<Tls>,
}

/// healthy, degraded, incomplete or no ingresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum IngressVerdict {
    /// Every backend serves and every certificate is valid.
    #[serde(rename = "healthy")]
    Healthy,
    /// A backend is down or a certificate is not valid.
    #[serde(rename = "degraded")]
    Degraded,
    /// Certificates could not be read.
    #[serde(rename = "incomplete")]
    Incomplete,
    /// No Ingresses.
    #[serde(rename = "no ingresses")]
    NoIngresses,
}

/// Counts.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSummary {
    /// Ingresses.
    pub ingresses: usize,
    /// Backends down.
    pub backends_down: usize,
    /// TLS entries whose certificate is not valid.
    pub certificate_problems: usize,
}

/// The Ingresses.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ingresses {
    /// Verdict.
    pub verdict: IngressVerdict,
    /// Counts.
    pub summary: IngressSummary,
    /// Ingresses.
    pub ingresses: Vec<IngressRow>,
    /// What could not be read.
    pub failed_parts: Vec<FailedPart>,
}

/// A Service's selector matches a pod template's labels.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// (namespace, Service) → (ready, not ready) endpoints, from the
/// EndpointSlices.
type Endpoints = BTreeMap<(String, String), (usize, usize)>;

fn endpoint_counts(slices: &[EndpointSlice]) -> Endpoints {
    let mut endpoints = Endpoints::new();
    for s in slices {
        let Some(svc) = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
        else {
            continue;
        };
        let e = endpoints
            .entry((
                s.metadata.namespace.clone().unwrap_or_default(),
                svc.clone(),
            ))
            .or_default();
        for ep in &s.endpoints {
            // An absent "ready" means ready (EndpointConditions semantics).
            if ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true) {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
    endpoints
}

/// What an Ingress's backends are joined with.
pub struct Joined<'a> {
    /// The Services.
    pub services: &'a [Service],
    /// The Deployments (a parked one explains a backend without endpoints).
    pub deployments: &'a [Deployment],
    /// cert-manager Certificates.
    pub certificates: &'a [DynamicObject],
}

/// A backend Service's state: missing, ready, parked at 0 replicas (not
/// down), endpoints none of which is ready, or no endpoint at all.
fn backend_state(
    c: &Joined,
    ns: &str,
    svc: &str,
    (ready, not_ready): (usize, usize),
) -> (BackendState, String) {
    let service = c.services.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(svc)
    });
    let Some(s) = service else {
        return (
            BackendState::ServiceMissing,
            format!("Service {ns}/{svc} does not exist"),
        );
    };
    if ready > 0 {
        return (BackendState::Ok, String::new());
    }
    let selector = s
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    let parked = c.deployments.iter().find(|d| {
        d.metadata.namespace.as_deref() == Some(ns)
            && d.spec.as_ref().is_some_and(|ds| {
                ds.replicas == Some(0)
                    && ds
                        .template
                        .metadata
                        .as_ref()
                        .and_then(|m| m.labels.as_ref())
                        .is_some_and(|l| selects(&selector, l))
            })
    });
    match parked {
        Some(d) => (
            BackendState::ScaledToZero,
            format!(
                "Deployment {ns}/{} is scaled to 0 replicas, so it has no endpoints: not a failing backend, but check that 0 is what Git wants",
                d.metadata.name.clone().unwrap_or_default()
            ),
        ),
        None if not_ready > 0 => (
            BackendState::NoReadyEndpoints,
            format!("{not_ready} endpoint(s), none ready: the pods fail their readiness probes"),
        ),
        None => (
            BackendState::NoEndpoints,
            "no pod matches the Service's selector".to_string(),
        ),
    }
}

/// Each (host, Service) an Ingress routes to, with its state.
fn backends(ing: &Ingress, c: &Joined, endpoints: &Endpoints) -> Vec<Backend> {
    let ins = ing.metadata.namespace.clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let rules = ing.spec.as_ref().and_then(|s| s.rules.as_ref());
    for rule in rules.into_iter().flatten() {
        let host = rule.host.clone().unwrap_or_else(|| "*".into());
        for path in rule.http.iter().flat_map(|h| &h.paths) {
            let Some(svc_ref) = &path.backend.service else {
                continue;
            };
            let svc = svc_ref.name.clone();
            if !seen.insert((host.clone(), svc.clone())) {
                continue;
            }
            let port = svc_ref
                .port
                .as_ref()
                .and_then(|p| p.number.map(|n| n.to_string()).or(p.name.clone()))
                .unwrap_or_default();
            let counts = endpoints
                .get(&(ins.clone(), svc.clone()))
                .copied()
                .unwrap_or((0, 0));
            let (state, note) = backend_state(c, &ins, &svc, counts);
            out.push(Backend {
                host: host.clone(),
                path: path.path.clone(),
                service: svc,
                port,
                state,
                ready_endpoints: counts.0,
                not_ready_endpoints: counts.1,
                note,
            });
        }
    }
    out
}

/// Each TLS entry of an Ingress with the cert-manager Certificate that
/// fills its secret: ready, days left.
fn tls(ing: &Ingress, certificates: &[DynamicObject], now_s: i64) -> Vec<Tls> {
    let ins = ing.metadata.namespace.clone().unwrap_or_default();
    let entries = ing.spec.as_ref().and_then(|s| s.tls.as_ref());
    let mut out = Vec::new();
    for t in entries.into_iter().flatten() {
        let secret = t.secret_name.clone().unwrap_or_default();
        let cert = certificates.iter().find_map(|c| {
            let f = fields::<super::certificates::wire::Certificate>(c).ok()?;
            (c.metadata.namespace.as_deref() == Some(ins.as_str())
                && f.spec.secret_name.as_deref() == Some(secret.as_str()))
            .then_some((c, f))
        });
        let certificate = cert.map(|(c, f)| {
            let ready_cond = condition(&c.data, "Ready");
            let ready = ready_cond.as_ref().is_some_and(|(s, _, _)| s == "True");
            let not_after = f.status.not_after.as_deref().and_then(parse_rfc3339);
            TlsCertificate {
                name: c.metadata.name.clone().unwrap_or_default(),
                ready,
                not_after: not_after.map(rfc3339),
                days_left: not_after.map(|t| (t - now_s).div_euclid(86_400)),
                reason: (!ready).then(|| {
                    ready_cond
                        .map(|(_, r, m)| format!("{r}: {m}"))
                        .unwrap_or_default()
                }),
            }
        });
        let valid = certificate
            .as_ref()
            .map(|c| c.ready && c.days_left.is_some_and(|d| d >= 0));
        out.push(Tls {
            hosts: t.hosts.clone().unwrap_or_default(),
            secret_name: secret,
            note: match valid {
                None => "no cert-manager Certificate for this secret (managed elsewhere?)".into(),
                Some(true) => String::new(),
                Some(false) => "these hosts are served without a valid certificate".into(),
            },
            certificate,
            valid_certificate: valid,
        });
    }
    out
}

/// Joins Ingresses with their backends and certificates.
pub fn assess(
    ingresses: &[Ingress],
    slices: &[EndpointSlice],
    c: &Joined,
    failed_parts: Vec<FailedPart>,
    now_s: i64,
) -> Ingresses {
    let endpoints = endpoint_counts(slices);
    let mut rows = Vec::new();
    let (mut down, mut cert_problems) = (0usize, 0usize);
    for ing in ingresses {
        let backends = backends(ing, c, &endpoints);
        let tls = tls(ing, c.certificates, now_s);
        let backends_down = backends
            .iter()
            .filter(|b| !matches!(b.state, BackendState::Ok | BackendState::ScaledToZero))
            .count();
        let bad_certs = tls
            .iter()
            .filter(|t| t.valid_certificate == Some(false))
            .count();
        down += backends_down;
        cert_problems += bad_certs;
        let spec = ing.spec.clone().unwrap_or_default();
        rows.push(IngressRow {
            namespace: ing.metadata.namespace.clone().unwrap_or_default(),
            name: ing.metadata.name.clone().unwrap_or_default(),
            class: spec.ingress_class_name.clone(),
            hosts: spec
                .rules
                .iter()
                .flatten()
                .filter_map(|r| r.host.clone())
                .collect(),
            addresses: addresses(ing),
            ok: backends_down == 0 && bad_certs == 0,
            backends,
            tls,
        });
    }
    let verdict = if rows.is_empty() {
        IngressVerdict::NoIngresses
    } else if down > 0 || cert_problems > 0 {
        IngressVerdict::Degraded
    } else if !failed_parts.is_empty() {
        IngressVerdict::Incomplete
    } else {
        IngressVerdict::Healthy
    };
    Ingresses {
        verdict,
        summary: IngressSummary {
            ingresses: rows.len(),
            backends_down: down,
            certificate_problems: cert_problems,
        },
        ingresses: rows,
        failed_parts,
    }
}

/// The addresses the ingress controller published for `ing` (IPs, or
/// hostnames where it has no IP).
pub fn addresses(ing: &Ingress) -> Vec<String> {
    ing.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.ip.clone().or(x.hostname.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ingress() -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"name": "immich", "namespace": "immich"},
            "spec": {
                "rules": [{"host": "immich.lab.example", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "immich-server", "port": {"number": 2283}}}}
                ]}}],
                "tls": [{"hosts": ["immich.lab.example"], "secretName": "immich-tls"}]
            }
        }))
        .unwrap()
    }

    fn service() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "immich-server", "namespace": "immich"},
            "spec": {"selector": {"app": "immich-server"}, "ports": [{"port": 2283}]}
        }))
        .unwrap()
    }

    fn slice(ready: &[bool]) -> EndpointSlice {
        let endpoints: Vec<_> = ready
            .iter()
            .map(|r| json!({"addresses": ["10.42.1.7"], "conditions": {"ready": r}}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "immich-server-x", "namespace": "immich",
                         "labels": {"kubernetes.io/service-name": "immich-server"}},
            "addressType": "IPv4",
            "endpoints": endpoints
        }))
        .unwrap()
    }

    fn parked() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "immich-server", "namespace": "immich"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "immich-server"}},
                     "template": {"metadata": {"labels": {"app": "immich-server"}}}}
        }))
        .unwrap()
    }

    fn certificate(ready: &str, not_after: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "immich", "namespace": "immich"},
            "spec": {"secretName": "immich-tls", "dnsNames": ["immich.lab.example"]},
            "status": {"notAfter": not_after,
                       "conditions": [{"type": "Ready", "status": ready, "reason": "r", "message": "m"}]}
        }))
        .unwrap()
    }

    const NOW: i64 = 1_780_000_000; // 2026-05-28
    const LATER: &str = "2026-08-01T00:00:00Z";
    const EARLIER: &str = "2026-05-01T00:00:00Z";

    /// (what, services present, endpoint readiness, parked Deployment,
    /// certificate (Ready, notAfter), backend state, certificate valid,
    /// verdict).
    type Case = (
        &'static str,
        bool,
        &'static [bool],
        bool,
        Option<(&'static str, &'static str)>,
        BackendState,
        Option<bool>,
        IngressVerdict,
    );

    const CASES: &[Case] = &[
        (
            "all well",
            true,
            &[true, false],
            false,
            Some(("True", LATER)),
            BackendState::Ok,
            Some(true),
            IngressVerdict::Healthy,
        ),
        (
            "no Service",
            false,
            &[],
            false,
            Some(("True", LATER)),
            BackendState::ServiceMissing,
            Some(true),
            IngressVerdict::Degraded,
        ),
        (
            "endpoints, none ready",
            true,
            &[false, false],
            false,
            Some(("True", LATER)),
            BackendState::NoReadyEndpoints,
            Some(true),
            IngressVerdict::Degraded,
        ),
        (
            "no endpoint at all",
            true,
            &[],
            false,
            Some(("True", LATER)),
            BackendState::NoEndpoints,
            Some(true),
            IngressVerdict::Degraded,
        ),
        (
            "scaled to zero is parked, not down",
            true,
            &[],
            true,
            Some(("True", LATER)),
            BackendState::ScaledToZero,
            Some(true),
            IngressVerdict::Healthy,
        ),
        (
            "an expired certificate",
            true,
            &[true],
            false,
            Some(("True", EARLIER)),
            BackendState::Ok,
            Some(false),
            IngressVerdict::Degraded,
        ),
        (
            "a certificate not Ready",
            true,
            &[true],
            false,
            Some(("False", LATER)),
            BackendState::Ok,
            Some(false),
            IngressVerdict::Degraded,
        ),
        (
            "a secret no Certificate fills",
            true,
            &[true],
            false,
            None,
            BackendState::Ok,
            None,
            IngressVerdict::Healthy,
        ),
    ];

    #[test]
    fn backends_and_certificates_give_the_verdict() {
        for (what, has_service, ready, is_parked, cert, state, valid, verdict) in CASES {
            let services = if *has_service {
                vec![service()]
            } else {
                Vec::new()
            };
            let deployments = if *is_parked {
                vec![parked()]
            } else {
                Vec::new()
            };
            let certificates: Vec<DynamicObject> =
                cert.iter().map(|(r, t)| certificate(r, t)).collect();
            let slices = if ready.is_empty() {
                Vec::new()
            } else {
                vec![slice(ready)]
            };
            let joined = Joined {
                services: &services,
                deployments: &deployments,
                certificates: &certificates,
            };
            let out = assess(&[ingress()], &slices, &joined, Vec::new(), NOW);
            let row = &out.ingresses[0];
            assert_eq!(row.backends[0].state, *state, "{what}");
            assert_eq!(row.tls[0].valid_certificate, *valid, "{what}");
            assert_eq!(out.verdict, *verdict, "{what}");
        }
        let none = assess(
            &[],
            &[],
            &Joined {
                services: &[],
                deployments: &[],
                certificates: &[],
            },
            Vec::new(),
            NOW,
        );
        assert_eq!(none.verdict, IngressVerdict::NoIngresses);
    }
}
