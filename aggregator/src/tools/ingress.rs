//! `get_ingress_status`: Ingresses with their hosts, each TLS secret's
//! cert-manager Certificate (ready, days left), and each backend Service's
//! ready endpoints from EndpointSlices. A backend whose Deployment is scaled
//! to zero is parked, not down.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DynamicObject, ListParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::args::{Name, blank_as_none};
use super::kube::{FailedPart, api_error, cluster_in};
use super::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset, label};
use crate::cluster::kinds::{CustomKind, condition};
use crate::cluster::time::{now, parse_rfc3339, rfc3339};
use crate::cluster::{Cluster, Error as ClusterError, Request};

const CERTIFICATE: CustomKind = CustomKind::new("cert-manager.io", "Certificate", "certificates");

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Only this namespace.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub namespace: Option<Name>,
}

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

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_ingress_status",
            title: "Ingresses",
            description: "Ingresses: hosts, certificate validity, ready endpoints per backend.",
            toolset: Toolset::Cluster,
            hints: Hints::READ,
        },
        run,
    )
}

async fn run(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<Ingresses, ToolError> {
    let c = cluster_in(&ctx, a.namespace.as_deref()).await?;
    read(c, a.namespace.as_deref(), now(ctx.settings.now))
        .await
        .map_err(api_error)
}

/// Reads Ingresses, EndpointSlices, Services, Deployments and Certificates.
pub async fn read(c: &Cluster, ns: Option<&str>, now_s: i64) -> Result<Ingresses, ClusterError> {
    fn api<K>(c: &Cluster, ns: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        match ns {
            Some(n) => Api::namespaced(c.client.clone(), n),
            None => Api::all(c.client.clone()),
        }
    }
    let all = ListParams::default();
    let (ing_api, slice_api, svc_api, dep_api) = (
        api::<Ingress>(c, ns),
        api::<EndpointSlice>(c, ns),
        api::<Service>(c, ns),
        api::<Deployment>(c, ns),
    );
    let (ingresses, slices, services, deployments) = tokio::try_join!(
        c.list(&ing_api, &all, Request::new("list", "ingresses", ns)),
        c.list(&slice_api, &all, Request::new("list", "endpointslices", ns)),
        c.list(&svc_api, &all, Request::new("list", "services", ns)),
        c.list(&dep_api, &all, Request::new("list", "deployments", ns)),
    )?;
    let mut failed = Vec::new();
    let certificates = match c.list_kind(&CERTIFICATE, ns).await {
        Ok(l) => l.items().to_vec(),
        Err(e) => {
            failed.push(FailedPart::new("Certificate", &e));
            Vec::new()
        }
    };
    Ok(assess(
        &ingresses,
        &slices,
        &services,
        &deployments,
        &certificates,
        failed,
        now_s,
    ))
}

/// A Service's selector matches a pod template's labels.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Joins Ingresses with their backends and certificates (pure).
pub fn assess(
    ingresses: &[Ingress],
    slices: &[EndpointSlice],
    services: &[Service],
    deployments: &[Deployment],
    certificates: &[DynamicObject],
    failed_parts: Vec<FailedPart>,
    now_s: i64,
) -> Ingresses {
    // (namespace, service) → (ready, not ready) endpoint counts.
    let mut endpoints: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
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
    let mut rows = Vec::new();
    let (mut down, mut cert_problems) = (0usize, 0usize);
    for ing in ingresses {
        let ins = ing.metadata.namespace.clone().unwrap_or_default();
        let spec = ing.spec.clone().unwrap_or_default();
        let mut backends = Vec::new();
        let mut ok = true;
        let mut seen = BTreeSet::new();
        for rule in spec.rules.iter().flatten() {
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
                let service = services.iter().find(|s| {
                    s.metadata.namespace.as_deref() == Some(ins.as_str())
                        && s.metadata.name.as_deref() == Some(svc.as_str())
                });
                let (ready, not_ready) = endpoints
                    .get(&(ins.clone(), svc.clone()))
                    .copied()
                    .unwrap_or((0, 0));
                let (state, note) = match service {
                    None => (
                        BackendState::ServiceMissing,
                        format!("Service {ins}/{svc} does not exist"),
                    ),
                    Some(_) if ready > 0 => (BackendState::Ok, String::new()),
                    Some(s) => {
                        let selector = s
                            .spec
                            .as_ref()
                            .and_then(|s| s.selector.clone())
                            .unwrap_or_default();
                        let parked = deployments.iter().find(|d| {
                            d.metadata.namespace.as_deref() == Some(ins.as_str())
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
                                    "Deployment {ins}/{} is scaled to 0 replicas, so it has no endpoints: not a failing backend, but check that 0 is what Git wants",
                                    d.metadata.name.clone().unwrap_or_default()
                                ),
                            ),
                            None if not_ready > 0 => (
                                BackendState::NoReadyEndpoints,
                                format!(
                                    "{not_ready} endpoint(s), none ready: the pods fail their readiness probes"
                                ),
                            ),
                            None => (
                                BackendState::NoEndpoints,
                                "no pod matches the Service's selector".to_string(),
                            ),
                        }
                    }
                };
                if !matches!(state, BackendState::Ok | BackendState::ScaledToZero) {
                    ok = false;
                    down += 1;
                }
                backends.push(Backend {
                    host: host.clone(),
                    path: path.path.clone(),
                    service: svc,
                    port,
                    state,
                    ready_endpoints: ready,
                    not_ready_endpoints: not_ready,
                    note,
                });
            }
        }
        let mut tls = Vec::new();
        for t in spec.tls.iter().flatten() {
            let secret = t.secret_name.clone().unwrap_or_default();
            let cert = certificates.iter().find_map(|c| {
                let f = crate::cluster::kinds::fields::<super::certificates::wire::Certificate>(c)
                    .ok()?;
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
            if valid == Some(false) {
                ok = false;
                cert_problems += 1;
            }
            tls.push(Tls {
                hosts: t.hosts.clone().unwrap_or_default(),
                secret_name: secret,
                note: match valid {
                    None => {
                        "no cert-manager Certificate for this secret (managed elsewhere?)".into()
                    }
                    Some(true) => String::new(),
                    Some(false) => "these hosts are served without a valid certificate".into(),
                },
                certificate,
                valid_certificate: valid,
            });
        }
        rows.push(IngressRow {
            namespace: ins,
            name: ing.metadata.name.clone().unwrap_or_default(),
            class: spec.ingress_class_name.clone(),
            hosts: spec
                .rules
                .iter()
                .flatten()
                .filter_map(|r| r.host.clone())
                .collect(),
            addresses: addresses(ing),
            ok,
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

impl Render for Ingresses {
    fn text(&self) -> String {
        let mut text = format!(
            "ingresses: {} — {} ingresses, {} backend(s) down, {} certificate problem(s)\n",
            label(&self.verdict),
            self.summary.ingresses,
            self.summary.backends_down,
            self.summary.certificate_problems
        );
        for r in &self.ingresses {
            let mut notes = Vec::new();
            for b in r.backends.iter().filter(|b| b.state != BackendState::Ok) {
                notes.push(format!(
                    "backend {} {} ({})",
                    b.service,
                    label(&b.state),
                    b.note
                ));
            }
            for t in r.tls.iter().filter(|t| t.valid_certificate == Some(false)) {
                notes.push(format!(
                    "certificate {} not valid ({})",
                    t.secret_name,
                    t.certificate
                        .as_ref()
                        .and_then(|c| c.reason.clone())
                        .unwrap_or_else(|| "expired".into())
                ));
            }
            if !notes.is_empty() {
                text.push_str(&format!(
                    "{}/{} [{}]: {}\n",
                    r.namespace,
                    r.name,
                    r.hosts.join(","),
                    notes.join("; ")
                ));
            }
        }
        text.push_str(&super::kube::failed_text(&self.failed_parts));
        text
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
