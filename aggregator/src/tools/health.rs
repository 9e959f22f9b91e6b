//! `get_cluster_health`: one verdict and a ranked list of issues, composed
//! from the other checks' typed reports (nodes, agents, pods, Flux, image
//! automation, certificates, External Secrets, Tailscale, Warning events) —
//! never from their MCP output. Every part answers within the tool deadline;
//! a part that does not is named, never silently healthy.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use schemars::JsonSchema;
use serde::Deserialize;

use super::args::{Name, blank_as_none};
use super::events::EventType;
use super::kube::FailedPart;
use super::{
    Call, ErrorCode, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset, label,
};
use crate::assess::health::{self, FluxParts, Reads, SubCheck};
pub use crate::assess::health::{
    Check, Health, HealthVerdict, Issue, NodeCounts, PodCounts, Severity, issue,
};
use crate::cluster::time::now;
use crate::cluster::{Cluster, Request};

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Only this namespace.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub namespace: Option<Name>,
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_cluster_health",
            title: "Cluster health",
            description: "Start here: a verdict and ranked issues with evidence and the next tool.",
            toolset: Toolset::Cluster,
            hints: Hints::READ,
        },
        run,
    )
}

/// Waits for one part, at most `deadline`.
async fn part<T>(
    deadline: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Duration> {
    tokio::time::timeout(deadline, fut)
        .await
        .map_err(|_| deadline)
}

/// A part read from the Kubernetes API within the budget, or what went
/// wrong as text: the API's error with its hint, or that it did not answer.
fn read_part<T>(
    part: &str,
    outcome: Result<Result<T, crate::cluster::Error>, Duration>,
) -> Result<T, String> {
    match outcome {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{e} ({})", e.hint())),
        Err(after) => Err(health::timed_out(part, after)),
    }
}

/// Why `ns` has no pods: the namespace does not exist (a list in a missing
/// namespace answers 200 and empty), it is being deleted, its workloads are
/// scaled to 0, or nothing was ever deployed. Always critical.
async fn empty_namespace(c: &Cluster, ns: &str) -> Issue {
    let scope = format!("namespace {ns}");
    let api: Api<Namespace> = Api::all(c.client.clone());
    match c
        .get_opt(&api, ns, Request::new("get", "namespaces", None))
        .await
    {
        Ok(None) => {
            return issue(
                Severity::Critical,
                "NamespaceNotFound",
                scope,
                format!(
                    "namespace {ns} not found: the API server answers its pod list with an empty list, but nothing \
                     can run there; if Git defines it, Flux has not re-created it"
                ),
                Some("get_flux_status"),
            );
        }
        Ok(Some(n)) if n.metadata.deletion_timestamp.is_some() => {
            return issue(
                Severity::Critical,
                "NamespaceTerminating",
                scope,
                format!("namespace {ns} is being deleted and has no pods left"),
                Some("get_events"),
            );
        }
        Ok(Some(_)) => {}
        Err(e) => {
            return issue(
                Severity::Critical,
                "NoPods",
                scope,
                format!(
                    "no pods at all in namespace {ns}; could not read the namespace itself: {e} ({})",
                    e.hint()
                ),
                None,
            );
        }
    }
    // Workloads parked at 0 replicas explain the empty list.
    let all = ListParams::default();
    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), ns);
    let statefulsets: Api<StatefulSet> = Api::namespaced(c.client.clone(), ns);
    let (d, s) = tokio::join!(
        c.list(
            &deployments,
            &all,
            Request::new("list", "deployments", Some(ns))
        ),
        c.list(
            &statefulsets,
            &all,
            Request::new("list", "statefulsets", Some(ns))
        ),
    );
    let mut parked = Vec::new();
    let mut unread = Vec::new();
    let flux_owner = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.labels
            .as_ref()
            .and_then(|l| l.get("kustomize.toolkit.fluxcd.io/name"))
            .map(|k| {
                format!(" (applied by Flux Kustomization {k}: unless Git says 0, this is drift)")
            })
            .unwrap_or_default()
    };
    match d {
        Ok(list) => parked.extend(
            list.iter()
                .filter(|o| o.spec.as_ref().and_then(|s| s.replicas) == Some(0))
                .map(|o| {
                    format!(
                        "Deployment {ns}/{} is scaled to 0 replicas{}",
                        o.metadata.name.clone().unwrap_or_default(),
                        flux_owner(&o.metadata)
                    )
                }),
        ),
        Err(e) => unread.push(format!("{e} ({})", e.hint())),
    }
    match s {
        Ok(list) => parked.extend(
            list.iter()
                .filter(|o| o.spec.as_ref().and_then(|s| s.replicas) == Some(0))
                .map(|o| {
                    format!(
                        "StatefulSet {ns}/{} is scaled to 0 replicas{}",
                        o.metadata.name.clone().unwrap_or_default(),
                        flux_owner(&o.metadata)
                    )
                }),
        ),
        Err(e) => unread.push(format!("{e} ({})", e.hint())),
    }
    let mut evidence = if parked.is_empty() {
        format!("no pods at all in namespace {ns}: nothing is running there")
    } else {
        format!("no pods at all in namespace {ns}: {}", parked.join("; "))
    };
    if !unread.is_empty() {
        evidence.push_str(&format!(
            "; could not check for workloads scaled to 0: {}",
            unread.join("; ")
        ));
    }
    issue(
        Severity::Critical,
        "NoPods",
        scope,
        evidence,
        Some(if parked.is_empty() {
            "get_events"
        } else {
            "describe_resource"
        }),
    )
}

async fn run(ctx: Arc<ToolContext>, a: Args, call: Call) -> Result<Health, ToolError> {
    let namespace = a.namespace.as_ref().map(|n| n.to_string());
    let ns = namespace.as_deref();
    // A namespace that does not exist is `not_found`, as from every tool
    // that takes one (its pod list would answer 200 and empty).
    let c = super::kube::cluster_in(&ctx, ns)
        .await
        .map_err(|mut e| {
            if e.code == ErrorCode::NotFound {
                e.hint.push_str(
                    "; if Git defines it, get_flux_status shows why Flux has not re-created it",
                );
            }
            e
        })?
        .clone();
    let now_s = now(ctx.settings.now);
    // Every part answers before the tool deadline, so the verdict can name
    // the part that did not.
    let budget = ctx
        .settings
        .tool_deadline
        .saturating_sub(Duration::from_millis(1500))
        .max(ctx.settings.tool_deadline / 2);
    let reads = read(&ctx, &c, ns, now_s, budget, &call).await;
    let empty_namespace = match (&reads.pods, ns) {
        (Ok((report, _)), Some(n)) if report.total == 0 => Some(empty_namespace(&c, n).await),
        _ => None,
    };
    Ok(health::assess(Reads {
        namespace,
        empty_namespace,
        ..reads
    }))
}

/// Reads every part in parallel, each within `budget`.
async fn read(
    ctx: &ToolContext,
    c: &Cluster,
    ns: Option<&str>,
    now_s: i64,
    budget: Duration,
    call: &Call,
) -> Reads {
    let fanout = crate::agents::fan_out_with_deadline(
        ctx.pool.all(),
        ctx.settings.agent_deadline,
        ctx.settings.fanout_concurrency,
        |a| async move {
            a.client()
                .get_node_info(labscope_proto::v1::GetNodeInfoRequest {})
                .await
                .map(|r| r.into_inner())
        },
    );
    let parts = async {
        tokio::join!(
            part(budget, crate::cluster::nodes::list(c)),
            part(budget, pods_and_jobs(c, ns, now_s)),
            part(budget, fanout),
            part(budget, super::certificates::read(c, ns, 30, now_s)),
            part(budget, super::secrets::read(c, ns)),
            part(budget, async {
                match ns {
                    None => {
                        Some(super::tailscale::read(c, &ctx.settings.tailscale_namespace).await)
                    }
                    Some(_) => None,
                }
            }),
            part(budget, super::flux::read(c, &[], ns, now_s)),
            part(
                budget,
                super::events::read(c, ns, EventType::Warning, 60, None, 20, now_s)
            ),
        )
    };
    let (nodes, pods, agents, certs, secrets, tailscale, flux, events) = call
        .ticking(
            "reading nodes, pods, agents, certificates, secrets, Tailscale, Flux and events",
            budget,
            parts,
        )
        .await;
    Reads {
        namespace: None,
        now: now_s,
        nodes: read_part("nodes", nodes),
        agent_nodes: ctx.pool.names().into_iter().collect(),
        agents: agents.map_err(|after| health::timed_out("agents", after)),
        pods: read_part("pods", pods),
        empty_namespace: None,
        backup_namespaces: ctx.config.workloads.backup_namespaces.clone(),
        backup_cronjobs: ctx.settings.backup_cronjobs.iter().cloned().collect(),
        flux: flux
            .map(|read| {
                let mut status = super::flux::status(&read, true, now_s);
                super::flux::name_the_operations(ctx, &mut status);
                FluxParts { read, status }
            })
            .map_err(|after| health::timed_out("flux", after)),
        events: read_part("events", events).map(|e| e.events),
        certificates: sub_check("certificates", certs),
        secrets: sub_check("externalSecrets", secrets),
        tailscale: match tailscale {
            Ok(None) => None,
            Ok(Some(r)) => Some(sub_check("tailscale", Ok(r))),
            Err(after) => Some(SubCheck::TimedOut(after)),
        },
    }
}

/// A sub-check's report, or how it failed.
fn sub_check<T>(name: &str, r: Result<Result<T, ToolError>, Duration>) -> SubCheck<T> {
    match r {
        Ok(Ok(v)) => SubCheck::Read(v),
        Ok(Err(e)) => SubCheck::Failed(FailedPart::from_tool(name, &e)),
        Err(after) => SubCheck::TimedOut(after),
    }
}

/// The pods judged, and the Jobs when a Job pod failed (their owners group
/// the failures).
async fn pods_and_jobs(
    c: &Cluster,
    ns: Option<&str>,
    now_s: i64,
) -> Result<(crate::assess::pods::PodReport, Vec<Job>), crate::cluster::Error> {
    let report = crate::assess::pods::assess(&crate::cluster::pods::list(c, ns).await?, now_s);
    let jobs = if report.problems.iter().any(|p| p.problem == "JobFailed") {
        let api: Api<Job> = match ns {
            Some(n) => Api::namespaced(c.client.clone(), n),
            None => Api::all(c.client.clone()),
        };
        c.list(
            &api,
            &ListParams::default(),
            Request::new("list", "jobs", ns),
        )
        .await
        .unwrap_or_default()
    } else {
        Vec::new()
    };
    Ok((report, jobs))
}

impl Render for Health {
    fn text(&self) -> String {
        let mut text = format!(
            "cluster: {} — {} issue(s)",
            label(&self.verdict),
            self.issues.len()
        );
        if let Some(n) = &self.nodes {
            text.push_str(&format!("; {} of {} nodes Ready", n.ready, n.total));
        }
        if let Some(p) = &self.pods {
            text.push_str(&format!("; {} pods, {} with problems", p.total, p.problems));
        }
        text.push('\n');
        for i in &self.issues {
            text.push_str(&format!(
                "[{}] {} {}: {}{}\n",
                label(&i.severity),
                i.kind,
                i.object,
                i.evidence,
                i.next_tool
                    .as_deref()
                    .map(|t| format!(" → {t}"))
                    .unwrap_or_default()
            ));
            for e in &i.events {
                text.push_str(&format!("    event {e}\n"));
            }
        }
        if let Some(p) = self.pods.as_ref().filter(|p| !p.history.is_empty()) {
            text.push_str(&format!(
                "history: {} pod(s) left Failed by their node (evicted or shut down) and already replaced\n",
                p.history.len()
            ));
        }
        let checks: Vec<String> = self
            .checks
            .iter()
            .map(|(k, c)| format!("{k} {}", c.verdict))
            .collect();
        if !checks.is_empty() {
            text.push_str(&format!("checks: {}\n", checks.join(", ")));
        }
        text
    }
}
