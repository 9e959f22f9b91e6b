//! `get_dns_status`: the homelab's DNS as its users feel it — both Pi-holes
//! through their v6 API (real blocking status with its timer, stats,
//! gravity age, FTL messages) and the pods of the four DNS workloads
//! (Pi-hole and Unbound, primary and secondary; Job pods excluded). The
//! verdict is never healthy when a Pi-hole's answer is missing (a rejected
//! password, rate limiting, an unreachable API), none is configured, or a
//! workload has no ready pod.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use schemars::JsonSchema;
use serde::Deserialize;

use super::args::DefaultTrue;
use super::kube::{FailedPart, failed_text};
use super::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset, label};
pub use crate::assess::dns::*;
use crate::cluster::Request;
use crate::cluster::time::{now, rfc3339};
use crate::services::pihole::{self, Pihole};

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Read each Pi-hole's query statistics and gravity age (default true).
    #[serde(default, rename = "includeStats")]
    pub include_stats: DefaultTrue,
}

impl From<&pihole::Error> for ServiceError {
    fn from(e: &pihole::Error) -> Self {
        Self {
            code: e.code().into(),
            message: e.to_string(),
            hint: e.hint(),
        }
    }
}

impl Render for DnsStatus {
    fn text(&self) -> String {
        let mut t = format!("DNS: {}\n", label(&self.verdict));
        for i in &self.issues {
            t.push_str(&format!("- {i}\n"));
        }
        for p in &self.piholes {
            t.push_str(&format!("pihole {} ({}): ", p.instance, p.url));
            match &p.error {
                Some(e) => t.push_str(&format!("ERROR [{}] {} — {}\n", e.code, e.message, e.hint)),
                None => {
                    t.push_str(&format!(
                        "blocking {}",
                        p.blocking.as_deref().unwrap_or("?")
                    ));
                    if let Some(s) = p.blocking_timer {
                        t.push_str(&format!(" (switches back in {})", human_seconds(s)));
                    }
                    if let Some(s) = &p.stats {
                        t.push_str(&format!(
                            "; {} queries, {} blocked ({:.1}%), {} clients, gravity {} domains",
                            s.queries,
                            s.blocked,
                            s.percent_blocked,
                            s.clients_active,
                            s.gravity_domains
                        ));
                        match (s.clock_ahead_seconds, s.gravity_age_days) {
                            (Some(ahead), _) => t.push_str(&format!(
                                " updated at {} by the Pi-hole's clock, which is {} ahead of labscope's (check its NTP)",
                                s.gravity_updated.as_deref().unwrap_or("?"),
                                crate::cluster::time::human(ahead)
                            )),
                            (None, Some(age)) => {
                                t.push_str(&format!(" updated {age:.1} days ago"))
                            }
                            (None, None) => {}
                        }
                    }
                    t.push('\n');
                }
            }
            for m in &p.messages {
                t.push_str(&format!("  message: {m}\n"));
            }
        }
        for w in &self.workloads {
            t.push_str(&format!(
                "{} ({}): {} — {}/{} ready, {} restarts\n",
                w.name, w.role, w.status, w.ready, w.desired, w.restarts
            ));
        }
        t.push_str(&failed_text(&self.failed_parts));
        t
    }
}

/// `get_dns_status`.
pub fn status_tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_dns_status",
            title: "DNS status",
            description: "Pi-hole and Unbound: blocking, stats, gravity, FTL messages, pods; a verdict.",
            toolset: Toolset::Services,
            hints: Hints::SERVICE,
        },
        status,
    )
}

async fn status(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<DnsStatus, ToolError> {
    let now_s = now(ctx.settings.now);
    let piholes = ctx.services.piholes();
    let reads = futures::future::join_all(
        piholes
            .iter()
            .map(|p| read_pihole(p, a.include_stats.0, now_s)),
    );
    let workloads = read_workloads(&ctx);
    let (piholes, workloads) = tokio::join!(reads, workloads);
    let mut failed = Vec::new();
    let workloads = match workloads {
        Ok(w) => w,
        Err(f) => {
            failed.push(f);
            Vec::new()
        }
    };
    Ok(assess(piholes, workloads, failed))
}

/// Reads one Pi-hole: blocking first (it also opens the session), then the
/// statistics and messages together.
async fn read_pihole(p: &Arc<Pihole>, include_stats: bool, now_s: i64) -> PiholeStatus {
    let mut out = PiholeStatus {
        instance: p.name.into(),
        url: p.url().to_string(),
        ok: false,
        error: None,
        blocking: None,
        blocking_timer: None,
        stats: None,
        messages: Vec::new(),
    };
    let blocking: wire::Blocking = match p.get_typed("/api/dns/blocking").await {
        Ok(v) => v,
        Err(e) => {
            out.error = Some((&e).into());
            return out;
        }
    };
    out.blocking = Some(match blocking.blocking {
        wire::BlockingState::Text(s) => s,
        wire::BlockingState::Flag(true) => "enabled".into(),
        wire::BlockingState::Flag(false) => "disabled".into(),
    });
    out.blocking_timer = blocking.timer;
    let summary = async {
        if include_stats {
            Some(p.get_typed::<wire::Summary>("/api/stats/summary").await)
        } else {
            None
        }
    };
    let (summary, messages) =
        tokio::join!(summary, p.get_typed::<wire::Messages>("/api/info/messages"));
    let mut first_error = None;
    match summary {
        Some(Ok(s)) => out.stats = Some(stats(&s, now_s)),
        Some(Err(e)) => first_error = Some(e),
        None => {}
    }
    match messages {
        Ok(m) => {
            out.messages = m
                .messages
                .into_iter()
                .filter_map(|m| {
                    // Current FTL: `plain`; older: `message`.
                    let text = m.plain.or(m.message)?;
                    Some(match m.kind {
                        Some(ty) if !ty.is_empty() => format!("{ty}: {text}"),
                        _ => text,
                    })
                })
                .collect()
        }
        Err(e) => {
            first_error.get_or_insert(e);
        }
    }
    out.error = first_error.as_ref().map(Into::into);
    out.ok = out.error.is_none();
    out
}

fn stats(s: &wire::Summary, now_s: i64) -> PiholeStats {
    // FTL says -1 (or another negative) when it does not know.
    let u = |v: i64| v.max(0) as u64;
    let updated = Some(s.gravity.last_update).filter(|t| *t > 0);
    PiholeStats {
        queries: u(s.queries.total),
        blocked: u(s.queries.blocked),
        percent_blocked: s.queries.percent_blocked,
        unique_domains: u(s.queries.unique_domains),
        clients_active: u(s.clients.active),
        gravity_domains: u(s.gravity.domains_being_blocked),
        gravity_updated: updated.map(rfc3339),
        gravity_age_days: updated
            .map(|t| ((now_s - t).max(0) as f64 / 86_400.0 * 10.0).round() / 10.0),
        clock_ahead_seconds: updated.map(|t| t - now_s).filter(|ahead| *ahead > 60),
    }
}

/// The Pi-hole v6 answers read here, as FTL documents them: a field that is
/// gone or changed type fails the read with its name
/// ([`crate::services::pihole::decode`]); fields not read are ignored.
mod wire {
    use serde::Deserialize;

    /// `GET /api/dns/blocking`.
    #[derive(Debug, Deserialize)]
    pub struct Blocking {
        pub blocking: BlockingState,
        /// Seconds until blocking switches back, when a timer runs.
        #[serde(default)]
        pub timer: Option<f64>,
    }

    /// "enabled", "disabled", "failed", "unknown" (v6); a bool before.
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    pub enum BlockingState {
        Text(String),
        Flag(bool),
    }

    /// `GET /api/stats/summary`.
    #[derive(Debug, Deserialize)]
    pub struct Summary {
        pub queries: Queries,
        pub clients: Clients,
        pub gravity: Gravity,
    }

    #[derive(Debug, Deserialize)]
    pub struct Queries {
        pub total: i64,
        pub blocked: i64,
        pub percent_blocked: f64,
        pub unique_domains: i64,
    }

    #[derive(Debug, Deserialize)]
    pub struct Clients {
        pub active: i64,
    }

    #[derive(Debug, Deserialize)]
    pub struct Gravity {
        pub domains_being_blocked: i64,
        /// Unix seconds; 0 before the first gravity run.
        pub last_update: i64,
    }

    /// `GET /api/info/messages`.
    #[derive(Debug, Deserialize)]
    pub struct Messages {
        pub messages: Vec<Message>,
    }

    /// Current FTL sends `plain` (and `html`); older FTL `message`.
    #[derive(Debug, Deserialize)]
    pub struct Message {
        #[serde(default)]
        pub plain: Option<String>,
        #[serde(default)]
        pub message: Option<String>,
        #[serde(default, rename = "type")]
        pub kind: Option<String>,
    }
}

/// The DNS workloads' pods (Job pods excluded: the homelab's brainrot
/// toggles and setup Jobs run in the same namespace).
async fn read_workloads(ctx: &ToolContext) -> Result<Vec<DnsWorkload>, FailedPart> {
    let Some(c) = ctx.cluster.as_ref() else {
        return Err(FailedPart {
            part: "workloads".into(),
            code: super::ErrorCode::NotConfigured,
            message:
                "no Kubernetes API is configured: the Pi-hole and Unbound pods were not checked"
                    .into(),
            hint: "start labscope with --kubeconfig (or in the cluster) to include them".into(),
        });
    };
    let workloads = &ctx.config.workloads;
    let ns = workloads.dns_namespace.as_str();
    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    let lp = ListParams::default();
    let (ds, ps) = tokio::join!(
        c.list(
            &deployments,
            &lp,
            Request::new("list", "deployments", Some(ns))
        ),
        c.list(&pods, &lp, Request::new("list", "pods", Some(ns))),
    );
    let ds = ds.map_err(|e| FailedPart::new("deployments", &e))?;
    let ps = ps.map_err(|e| FailedPart::new("pods", &e))?;
    let pods: Vec<&Pod> = ps
        .iter()
        .filter(|p| {
            !p.metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.iter().any(|r| r.kind == "Job"))
        })
        .collect();
    Ok(workloads
        .dns
        .iter()
        .map(|w| {
            let (name, role) = (w.deployment.as_str(), w.role);
            let Some(d) = ds.iter().find(|d| d.metadata.name.as_deref() == Some(name)) else {
                return DnsWorkload {
                    name: name.into(),
                    role: role.into(),
                    desired: 0,
                    pods: 0,
                    ready: 0,
                    restarts: 0,
                    status: "missing".into(),
                };
            };
            let dp = super::kube::deployment_pods(d, pods.iter().copied());
            let restarts = dp
                .pods
                .iter()
                .flat_map(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.container_statuses.clone())
                        .unwrap_or_default()
                })
                .map(|c| c.restart_count.max(0) as u32)
                .sum();
            DnsWorkload {
                name: name.into(),
                role: role.into(),
                desired: dp.desired,
                pods: dp.pods.len() as u32,
                ready: dp.ready,
                restarts,
                status: dp.status.into(),
            }
        })
        .collect())
}
