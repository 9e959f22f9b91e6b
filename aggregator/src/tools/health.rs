//! `get_cluster_health`: one verdict and a ranked list of issues, composed
//! from the other checks' typed reports (nodes, agents, pods, Flux, image
//! automation, certificates, External Secrets, Tailscale, Warning events) —
//! never from their MCP output. Every part answers within the tool deadline;
//! a part that does not is named, never silently healthy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::args::{Name, blank_as_none};
use super::events::{EventGroup, EventType};
use super::kube::FailedPart;
use super::{
    Call, ErrorCode, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset, label,
};
use crate::assess::flux::FluxState;
use crate::assess::pods::{PodHistory, PodProblem};
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

/// How bad an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something is down or cannot recover by itself.
    Critical,
    /// Degraded, or a check could not run.
    Warning,
}

/// One issue, with its evidence and the tool to call next.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Issue {
    /// critical or warning.
    pub severity: Severity,
    /// NodeNotReady, CrashLoopBackOff, FluxStuck, CheckFailed, …
    pub kind: String,
    /// kind/namespace/name (or a scope such as "namespace x").
    pub object: String,
    /// What shows it.
    pub evidence: String,
    /// The tool that says more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_tool: Option<String>,
    /// Warning events about exactly this object.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

fn issue(
    severity: Severity,
    kind: &str,
    object: impl Into<String>,
    evidence: impl Into<String>,
    next: Option<&str>,
) -> Issue {
    Issue {
        severity,
        kind: kind.to_string(),
        object: object.into(),
        evidence: evidence.into(),
        next_tool: next.map(str::to_string),
        events: Vec::new(),
    }
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthVerdict {
    /// No issue.
    Healthy,
    /// Warnings only.
    Degraded,
    /// A critical issue.
    Critical,
}

/// Node counts.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeCounts {
    /// Nodes.
    pub total: usize,
    /// Ready.
    pub ready: usize,
}

/// Pod counts and problems.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodCounts {
    /// Pods listed.
    pub total: usize,
    /// Live problems.
    pub problems: usize,
    /// The problem pods.
    pub problem_pods: Vec<PodProblem>,
    /// Pods left Failed by their node and already replaced.
    pub replaced_pods: usize,
    /// Those pods.
    pub history: Vec<PodHistory>,
}

/// One sub-check's verdict.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Its verdict (healthy, degraded, critical, incomplete, not installed, error, …).
    pub verdict: String,
    /// Why it could not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Flux: failing objects not explained by another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_causes: Option<usize>,
    /// Flux: failing objects explained by a root cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consequences: Option<usize>,
}

fn check(verdict: impl Into<String>) -> Check {
    Check {
        verdict: verdict.into(),
        message: None,
        root_causes: None,
        consequences: None,
    }
}

/// The cluster's health.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// healthy, degraded or critical.
    pub verdict: HealthVerdict,
    /// Critical first.
    pub issues: Vec<Issue>,
    /// Nodes (absent when they could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeCounts>,
    /// Pods (absent when they could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodCounts>,
    /// Each sub-check's verdict.
    pub checks: BTreeMap<String, Check>,
    /// Warning events of the last hour, newest first, de-duplicated.
    pub warning_events: Vec<EventGroup>,
    /// The namespace asked about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The clock used (Unix seconds).
    pub now: i64,
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
        Err(after) => Err(timed_out(part, after)),
    }
}

fn timed_out(part: &str, after: Duration) -> String {
    format!(
        "{part}: no answer within {} (the Kubernetes API is slow or hanging); the rest of this answer is what \
         could be read in time",
        crate::cluster::error::human_duration(after)
    )
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

/// Failed Job pods grouped by their Job's owner (a CronJob) or by the Job
/// itself, from owner references: (namespace, "cronjob/ns/name" or
/// "job/ns/name") → (failed pods, Jobs, newest detail). Indexed Jobs and Job
/// names ending in digits group correctly because no name is parsed.
type FailedJobs = BTreeMap<(String, String), (usize, BTreeSet<String>, String)>;

fn group_failed_jobs(problems: &[PodProblem], jobs: &[Job]) -> FailedJobs {
    let mut out: FailedJobs = BTreeMap::new();
    for p in problems.iter().filter(|p| p.problem == "JobFailed") {
        let job = p
            .owner
            .as_deref()
            .and_then(|o| o.strip_prefix("Job/"))
            .unwrap_or(&p.name)
            .to_string();
        let cronjob = jobs
            .iter()
            .find(|j| {
                j.metadata.namespace.as_deref() == Some(p.namespace.as_str())
                    && j.metadata.name.as_deref() == Some(job.as_str())
            })
            .and_then(|j| {
                j.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .find(|o| o.controller == Some(true) && o.kind == "CronJob")
                    .map(|o| o.name.clone())
            });
        let parent = match cronjob {
            Some(cj) => format!("cronjob/{}/{cj}", p.namespace),
            None => format!("job/{}/{job}", p.namespace),
        };
        let e = out.entry((p.namespace.clone(), parent)).or_default();
        e.0 += 1;
        e.1.insert(job);
        e.2 = p.detail.clone();
    }
    out
}

/// (kind, namespace, name) of an issue's object ("pod/ns/name",
/// "node/name"); `None` for scopes like "pods" or "namespace x".
fn object_ref(object: &str) -> Option<(String, Option<String>, String)> {
    let parts: Vec<&str> = object.split('/').collect();
    match parts.as_slice() {
        [kind, name] if !kind.contains(' ') => {
            Some((kind.to_ascii_lowercase(), None, name.to_string()))
        }
        [kind, ns, name] if !kind.contains(' ') => Some((
            kind.to_ascii_lowercase(),
            Some(ns.to_string()),
            name.to_string(),
        )),
        _ => None,
    }
}

/// True when event `e` is about exactly `object`.
fn event_about(e: &EventGroup, object: &(String, Option<String>, String)) -> bool {
    let Some((kind, name)) = e.object.split_once('/') else {
        return false;
    };
    let (want_kind, want_ns, want_name) = object;
    kind.eq_ignore_ascii_case(want_kind)
        && name == want_name
        && want_ns.as_deref().is_none_or(|ns| e.namespace == ns)
}

fn failed_issue(check: &str, f: &FailedPart, tool: &str) -> Issue {
    issue(
        Severity::Warning,
        "CheckFailed",
        format!("{check} {}", f.part),
        format!("{} ({})", f.message, f.hint),
        Some(tool),
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
            part(budget, crate::cluster::nodes::list(&c)),
            part(budget, async {
                let report =
                    crate::assess::pods::assess(&crate::cluster::pods::list(&c, ns).await?, now_s);
                // Jobs only when a Job pod failed: their owners group the failures.
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
                Ok::<_, crate::cluster::Error>((report, jobs))
            }),
            part(budget, fanout),
            part(budget, super::certificates::read(&c, ns, 30, now_s)),
            part(budget, super::secrets::read(&c, ns)),
            part(budget, async {
                match ns {
                    None => {
                        Some(super::tailscale::read(&c, &ctx.settings.tailscale_namespace).await)
                    }
                    Some(_) => None,
                }
            }),
            part(budget, super::flux::read(&c, &[], ns, now_s)),
            part(
                budget,
                super::events::read(&c, ns, EventType::Warning, 60, None, 20, now_s)
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
    let mut issues = Vec::new();
    let mut checks = BTreeMap::new();

    // Nodes.
    let node_counts = match read_part("nodes", nodes) {
        Ok(list) => {
            for n in &list {
                if n.ready != Some(true) {
                    issues.push(issue(
                        Severity::Critical,
                        "NodeNotReady",
                        format!("node/{}", n.name),
                        n.ready_reason.clone(),
                        Some("list_nodes"),
                    ));
                }
                for p in &n.pressure {
                    issues.push(issue(
                        Severity::Warning,
                        "NodePressure",
                        format!("node/{}", n.name),
                        format!("{p} is True"),
                        Some("list_nodes"),
                    ));
                }
                if ctx.pool.get(&n.name).is_none() {
                    issues.push(issue(
                        Severity::Warning,
                        "NoAgent",
                        format!("node/{}", n.name),
                        "no usable labscope agent on this node: node tools cannot answer for it",
                        Some("list_nodes"),
                    ));
                }
            }
            Some(NodeCounts {
                total: list.len(),
                ready: list.iter().filter(|n| n.ready == Some(true)).count(),
            })
        }
        Err(text) => {
            issues.push(issue(
                Severity::Critical,
                "CheckFailed",
                "nodes",
                text,
                None,
            ));
            None
        }
    };
    // Agents.
    match &agents {
        Ok(results) => {
            for r in results {
                match &r.value {
                    None => issues.push(issue(
                        Severity::Warning,
                        "AgentNotAnswering",
                        format!("node/{}", r.node),
                        format!("agent {}: {}", label(&r.outcome), r.reason),
                        Some("check_network_mesh"),
                    )),
                    Some(info)
                        if info.conntrack_max > 0
                            && info.conntrack_count * 100 >= info.conntrack_max * 80 =>
                    {
                        issues.push(issue(
                            Severity::Warning,
                            "ConntrackNearlyFull",
                            format!("node/{}", r.node),
                            format!(
                                "{} of {} conntrack entries in use",
                                info.conntrack_count, info.conntrack_max
                            ),
                            Some("get_conntrack_entries"),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        Err(after) => issues.push(issue(
            Severity::Warning,
            "CheckFailed",
            "agents",
            timed_out("agents", *after),
            Some("list_nodes"),
        )),
    }
    // Pods.
    let pod_counts = match read_part("pods", pods) {
        Ok((report, jobs)) => {
            if report.total == 0 {
                issues.push(match ns {
                    Some(n) => empty_namespace(&c, n).await,
                    None => issue(
                        Severity::Critical,
                        "NoPods",
                        "the cluster",
                        "no pods at all in the cluster: nothing is running",
                        None,
                    ),
                });
            }
            // Failed Job pods: one issue per CronJob (or standalone Job), not
            // one per retry pod.
            for ((pns, parent), (pods_failed, job_names, detail)) in
                &group_failed_jobs(&report.problems, &jobs)
            {
                let backup =
                    pns == "backup-jobs" || parent.contains("backup") || parent.contains("restore");
                issues.push(issue(
                    Severity::Warning,
                    "JobsFailing",
                    parent.clone(),
                    format!(
                        "{pods_failed} failed pod(s) across {} Job(s), newest {}: {detail}",
                        job_names.len(),
                        job_names
                            .iter()
                            .next_back()
                            .map(String::as_str)
                            .unwrap_or_default()
                    ),
                    Some(if backup {
                        "get_backup_status"
                    } else {
                        "get_job_logs"
                    }),
                ));
            }
            for p in report.problems.iter().filter(|p| p.problem != "JobFailed") {
                issues.push(issue(
                    if p.severity == "critical" {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    },
                    &p.problem,
                    format!("pod/{}/{}", p.namespace, p.name),
                    format!(
                        "{} (phase {}, {} restarts, node {})",
                        p.detail, p.phase, p.restarts, p.node
                    ),
                    Some("get_pod_logs"),
                ));
            }
            Some(PodCounts {
                total: report.total,
                problems: report.problems.len(),
                replaced_pods: report.history.len(),
                problem_pods: report.problems,
                history: report.history,
            })
        }
        Err(text) => {
            issues.push(issue(Severity::Critical, "CheckFailed", "pods", text, None));
            None
        }
    };
    // Flux: root causes only; their consequences are counted with them.
    match &flux {
        Ok(read) if !read.installed() => {
            checks.insert("flux".into(), check("not installed"));
            checks.insert("imageAutomation".into(), check("not installed"));
        }
        Ok(read) => {
            let mut status = super::flux::status(read, true, now_s);
            super::flux::name_the_operations(&ctx, &mut status);
            let consequences = read
                .rows
                .iter()
                .filter(|r| r.object.status.problem() && r.object.consequence_of.is_some())
                .count();
            checks.insert(
                "flux".into(),
                Check {
                    root_causes: Some(status.root_causes.len()),
                    consequences: Some(consequences),
                    ..check(label(&status.verdict))
                },
            );
            for f in &read.failed {
                issues.push(failed_issue("flux", f, "get_flux_status"));
            }
            for r in &status.root_causes {
                let o = &r.object;
                if ["ImageRepository", "ImagePolicy", "ImageUpdateAutomation"]
                    .contains(&o.kind.as_str())
                {
                    // Reported with its fix by the image automation check below.
                    continue;
                }
                let stuck = o.status == FluxState::Stuck;
                issues.push(issue(
                    if stuck {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    },
                    if stuck { "FluxStuck" } else { "FluxFailing" },
                    format!("{}/{}/{}", o.kind.to_lowercase(), o.namespace, o.name),
                    format!(
                        "{}: {}{}",
                        o.reason,
                        o.stuck_because.as_deref().unwrap_or(&o.message),
                        o.hint
                            .as_deref()
                            .map(|h| format!(" — {h}"))
                            .unwrap_or_default()
                    ),
                    Some("get_flux_status"),
                ));
            }
            // Image automation, from the same Flux read.
            let images = super::images::report(read, now_s);
            checks.insert(
                "imageAutomation".into(),
                check(if images.installed {
                    label(&images.verdict)
                } else {
                    "not installed".into()
                }),
            );
            for rc in &images.root_causes {
                issues.push(issue(
                    Severity::Warning,
                    "ImageAutomationFailing",
                    rc.object.to_lowercase(),
                    format!(
                        "{} ({}) — fix: {}",
                        rc.problem,
                        rc.reason,
                        rc.fix
                            .as_deref()
                            .unwrap_or("see get_image_automation_status")
                    ),
                    Some("get_image_automation_status"),
                ));
            }
        }
        Err(after) => {
            let text = timed_out("flux", *after);
            for name in ["flux", "imageAutomation"] {
                checks.insert(
                    name.into(),
                    Check {
                        message: Some(text.clone()),
                        ..check("error")
                    },
                );
            }
            issues.push(issue(
                Severity::Warning,
                "CheckFailed",
                "flux",
                text,
                Some("get_flux_status"),
            ));
        }
    }
    // Warning events.
    let warning_events = match read_part("events", events) {
        Ok(out) => out.events,
        Err(text) => {
            // Unread events are a failed check: never silently healthy.
            issues.push(issue(
                Severity::Warning,
                "CheckFailed",
                "events",
                format!("Warning events could not be read: {text}"),
                Some("get_events"),
            ));
            Vec::new()
        }
    };
    // Certificates.
    let tool = "get_certificate_status";
    match certs {
        Ok(Ok(report)) => {
            checks.insert("certificates".into(), check(label(&report.verdict)));
            for f in &report.failed_parts {
                issues.push(failed_issue("certificates", f, tool));
            }
            for cert in &report.certificates {
                let obj = format!("certificate/{}/{}", cert.namespace, cert.name);
                if !cert.ready {
                    issues.push(issue(
                        Severity::Critical,
                        "CertificateNotReady",
                        obj,
                        cert.hint.clone().unwrap_or_else(|| cert.message.clone()),
                        Some(tool),
                    ));
                } else if cert.expiring || cert.renewal_overdue_days.is_some() {
                    issues.push(issue(
                        Severity::Warning,
                        "CertificateExpiring",
                        obj,
                        format!(
                            "{} days left, renewal overdue {} days",
                            cert.days_left
                                .map(|d| d.to_string())
                                .unwrap_or_else(|| "?".into()),
                            cert.renewal_overdue_days
                                .map(|d| d.to_string())
                                .unwrap_or_else(|| "0".into())
                        ),
                        Some(tool),
                    ));
                }
            }
        }
        Ok(Err(e)) => sub_check_failed(&mut checks, &mut issues, "certificates", tool, &e),
        Err(after) => sub_check_timed_out(&mut checks, &mut issues, "certificates", tool, after),
    }
    // External Secrets.
    let tool = "get_secrets_status";
    match secrets {
        Ok(Ok(report)) => {
            checks.insert("externalSecrets".into(), check(label(&report.verdict)));
            for f in &report.failed_parts {
                issues.push(failed_issue("externalSecrets", f, tool));
            }
            if let Some(s) = report
                .summary
                .as_ref()
                .filter(|s| s.failing > 0 || s.stores_down > 0)
            {
                let stores: Vec<String> = report
                    .root_causes
                    .iter()
                    .map(|rc| format!("{} {} down ({})", rc.store.kind, rc.store.name, rc.message))
                    .collect();
                issues.push(issue(
                    Severity::Critical,
                    "ExternalSecretsFailing",
                    "externalsecrets",
                    format!(
                        "{} of {} failing, {} store(s) down{}",
                        s.failing,
                        s.external_secrets,
                        s.stores_down,
                        if stores.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", stores.join("; "))
                        }
                    ),
                    Some(tool),
                ));
            }
        }
        Ok(Err(e)) => sub_check_failed(&mut checks, &mut issues, "externalSecrets", tool, &e),
        Err(after) => sub_check_timed_out(&mut checks, &mut issues, "externalSecrets", tool, after),
    }
    // Tailscale (cluster-wide only).
    let tool = "get_tailscale_status";
    match tailscale {
        Ok(None) => {}
        Ok(Some(Ok(report))) => {
            checks.insert("tailscale".into(), check(label(&report.verdict)));
            for f in &report.failed_parts {
                issues.push(failed_issue("tailscale", f, tool));
            }
            for (object, finding) in report.problems() {
                issues.push(issue(
                    Severity::Warning,
                    "TailscaleDegraded",
                    object,
                    finding,
                    Some(tool),
                ));
            }
        }
        Ok(Some(Err(e))) => sub_check_failed(&mut checks, &mut issues, "tailscale", tool, &e),
        Err(after) => sub_check_timed_out(&mut checks, &mut issues, "tailscale", tool, after),
    }
    // Events about exactly an issue's object are its evidence too.
    for i in issues.iter_mut() {
        let Some(object) = object_ref(&i.object) else {
            continue;
        };
        i.events = warning_events
            .iter()
            .filter(|e| event_about(e, &object))
            .map(|e| format!("{} ×{}: {}", e.reason, e.count, e.message))
            .collect();
    }
    issues.sort_by_key(|i| i.severity);
    let verdict = if issues.iter().any(|i| i.severity == Severity::Critical) {
        HealthVerdict::Critical
    } else if issues.is_empty() {
        HealthVerdict::Healthy
    } else {
        HealthVerdict::Degraded
    };
    Ok(Health {
        verdict,
        issues,
        nodes: node_counts,
        pods: pod_counts,
        checks,
        warning_events,
        namespace,
        now: now_s,
    })
}

fn sub_check_failed(
    checks: &mut BTreeMap<String, Check>,
    issues: &mut Vec<Issue>,
    name: &str,
    tool: &str,
    e: &ToolError,
) {
    checks.insert(
        name.into(),
        Check {
            message: Some(e.message.clone()),
            ..check("error")
        },
    );
    if e.code != ErrorCode::NotConfigured {
        issues.push(issue(
            Severity::Warning,
            "CheckFailed",
            name,
            format!("{} ({})", e.message, e.hint),
            Some(tool),
        ));
    }
}

fn sub_check_timed_out(
    checks: &mut BTreeMap<String, Check>,
    issues: &mut Vec<Issue>,
    name: &str,
    tool: &str,
    after: Duration,
) {
    let text = timed_out(name, after);
    checks.insert(
        name.into(),
        Check {
            message: Some(text.clone()),
            ..check("error")
        },
    );
    issues.push(issue(
        Severity::Warning,
        "CheckFailed",
        name,
        text,
        Some(tool),
    ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_problem(name: &str, owner: &str) -> PodProblem {
        PodProblem {
            namespace: "backup-jobs".into(),
            name: name.into(),
            node: "pi3-worker-2".into(),
            problem: "JobFailed".into(),
            phase: "Failed".into(),
            restarts: 0,
            detail: "exit 1".into(),
            severity: "warning",
            owner: Some(owner.into()),
        }
    }

    fn job(name: &str, cronjob: Option<&str>) -> Job {
        let owners = cronjob
            .map(|cj| json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": cj, "uid": "u", "controller": true}]))
            .unwrap_or(json!([]));
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "backup-jobs", "ownerReferences": owners}}))
            .unwrap_or_default()
    }

    #[test]
    fn failed_jobs_group_by_owner_not_by_name() {
        // An Indexed Job's pods are <job>-<index>-<suffix>; a standalone Job
        // named like a CronJob's child ("migrate-2") has no CronJob owner.
        let problems = [
            pod_problem("pvc-backup-29780760-0-x7k2p", "Job/pvc-backup-29780760"),
            pod_problem("pvc-backup-29780760-1-q9z4t", "Job/pvc-backup-29780760"),
            pod_problem("migrate-2-abcde", "Job/migrate-2"),
        ];
        let jobs = [
            job("pvc-backup-29780760", Some("pvc-backup")),
            job("migrate-2", None),
        ];
        let groups = group_failed_jobs(&problems, &jobs);
        let keys: Vec<&str> = groups.keys().map(|(_, p)| p.as_str()).collect();
        assert_eq!(
            keys,
            [
                "cronjob/backup-jobs/pvc-backup",
                "job/backup-jobs/migrate-2"
            ]
        );
        assert_eq!(
            groups[&(
                "backup-jobs".into(),
                "cronjob/backup-jobs/pvc-backup".into()
            )]
                .0,
            2
        );
    }

    fn event(ns: &str, object: &str) -> EventGroup {
        EventGroup {
            namespace: ns.into(),
            object: object.into(),
            event_type: "Warning".into(),
            reason: "r".into(),
            message: "m".into(),
            count: 1,
            last_seen: String::new(),
            source: None,
        }
    }

    #[test]
    fn events_attach_to_their_exact_object() {
        let e = event("jellyfin", "Pod/jellyfin-7c9d6f5b8-x4k2p");
        let r = |o: &str| object_ref(o).unwrap_or_default();
        assert!(event_about(&e, &r("pod/jellyfin/jellyfin-7c9d6f5b8-x4k2p")));
        // Same name, other namespace or kind: not its evidence.
        assert!(!event_about(&e, &r("pod/media/jellyfin-7c9d6f5b8-x4k2p")));
        assert!(!event_about(
            &e,
            &r("helmrelease/jellyfin/jellyfin-7c9d6f5b8-x4k2p")
        ));
        let hr = event("immich", "HelmRelease/immich");
        assert!(!event_about(&hr, &r("kustomization/flux-system/immich")));
        assert!(event_about(&hr, &r("helmrelease/immich/immich")));
        let node = event("default", "Node/pi3-worker-2");
        assert!(event_about(&node, &r("node/pi3-worker-2")));
        assert_eq!(object_ref("namespace jellyfin"), None);
    }
}
