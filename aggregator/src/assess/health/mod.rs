//! get_cluster_health's judgement: every part it read (nodes, agents, pods,
//! Flux and image automation, Warning events, certificates, External
//! Secrets, Tailscale) turned into ranked issues with their evidence and the
//! tool to call next, one verdict per sub-check, and the cluster's verdict.
//! Pure: `tools/health.rs` reads the parts in parallel, within the tool
//! deadline, and hands them over as [`Reads`]; a part that could not be read
//! is an issue, never silently healthy.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use labscope_proto::v1::NodeInfo;

use super::certificates::Certificates;
use super::events::EventGroup;
use super::flux::FluxState;
use super::flux_report::{FluxRead, FluxStatus};
use super::pods::{PodProblem, PodReport};
use super::secrets::Secrets;
use super::tailscale::Tailscale;
use super::{FailedPart, label};
use crate::agents::NodeResult;
use crate::cluster::nodes::NodeFacts;
use crate::codes::ErrorCode;

mod report;

pub use report::*;

/// A part read within the budget, or why not, as text for the evidence
/// (the API's error with its hint, or that it did not answer in time).
pub type Part<T> = Result<T, String>;

/// A sub-check that is a tool of its own: its report, or how it failed.
#[derive(Debug)]
pub enum SubCheck<T> {
    /// Read.
    Read(T),
    /// The tool failed (a missing CRD group is `not_configured`, which is
    /// said in the check but is not an issue).
    Failed(FailedPart),
    /// No answer within the budget.
    TimedOut(Duration),
}

/// The Flux read and its report (the report's hints already name the
/// operations the caller may run).
#[derive(Debug)]
pub struct FluxParts {
    /// Every Flux kind, read and judged.
    pub read: FluxRead,
    /// Its report, failing objects only.
    pub status: FluxStatus,
}

/// What get_cluster_health read.
#[derive(Debug)]
pub struct Reads {
    /// The namespace asked about.
    pub namespace: Option<String>,
    /// The clock (Unix seconds).
    pub now: i64,
    /// The nodes.
    pub nodes: Part<Vec<NodeFacts>>,
    /// The nodes that have a usable labscope agent.
    pub agent_nodes: BTreeSet<String>,
    /// Each agent's node info.
    pub agents: Part<Vec<NodeResult<NodeInfo>>>,
    /// The pods judged, and the Jobs (read only when a Job pod failed).
    pub pods: Part<(PodReport, Vec<Job>)>,
    /// Why the namespace asked about has no pods, when it has none (the
    /// tool reads the namespace and its workloads to say).
    pub empty_namespace: Option<Issue>,
    /// Namespaces whose failing Jobs are backups (get_backup_status says
    /// more about them than get_job_logs).
    pub backup_namespaces: BTreeSet<String>,
    /// CronJobs (namespace/name) named as backups (`--backup-cronjob`).
    pub backup_cronjobs: BTreeSet<String>,
    /// Flux.
    pub flux: Part<FluxParts>,
    /// Warning events of the last hour.
    pub events: Part<Vec<EventGroup>>,
    /// cert-manager.
    pub certificates: SubCheck<Certificates>,
    /// External Secrets.
    pub secrets: SubCheck<Secrets>,
    /// Tailscale (cluster-wide only: `None` for a namespace).
    pub tailscale: Option<SubCheck<Tailscale>>,
}

/// Issues and sub-check verdicts, as they are found.
#[derive(Default)]
struct Findings {
    issues: Vec<Issue>,
    checks: BTreeMap<String, Check>,
}

impl Findings {
    fn push(&mut self, i: Issue) {
        self.issues.push(i);
    }

    /// A sub-check that could not run: said in the check, and an issue
    /// unless it is only not configured.
    fn unread<T>(&mut self, name: &str, tool: &str, read: SubCheck<T>) -> Option<T> {
        let (message, evidence) = match read {
            SubCheck::Read(v) => return Some(v),
            SubCheck::Failed(f) if f.code == ErrorCode::NotConfigured => (f.message, None),
            SubCheck::Failed(f) => (
                f.message.clone(),
                Some(format!("{} ({})", f.message, f.hint)),
            ),
            SubCheck::TimedOut(after) => {
                let text = timed_out(name, after);
                (text.clone(), Some(text))
            }
        };
        self.checks.insert(
            name.into(),
            Check {
                message: Some(message),
                ..check("error")
            },
        );
        if let Some(evidence) = evidence {
            self.push(issue(
                Severity::Warning,
                "CheckFailed",
                name,
                evidence,
                Some(tool),
            ));
        }
        None
    }
}

/// The cluster's health from what was read.
pub fn assess(r: Reads) -> Health {
    let mut f = Findings::default();
    let nodes = nodes(&mut f, r.nodes, &r.agent_nodes);
    agents(&mut f, r.agents);
    let backups = (&r.backup_namespaces, &r.backup_cronjobs);
    let pods = pods(&mut f, r.pods, r.empty_namespace, backups);
    flux(&mut f, r.flux, r.now);
    let warning_events = match r.events {
        Ok(events) => events,
        Err(text) => {
            // Unread events are a failed check: never silently healthy.
            f.push(issue(
                Severity::Warning,
                "CheckFailed",
                "events",
                format!("Warning events could not be read: {text}"),
                Some("get_events"),
            ));
            Vec::new()
        }
    };
    certificates(&mut f, r.certificates);
    secrets(&mut f, r.secrets);
    if let Some(t) = r.tailscale {
        tailscale(&mut f, t);
    }
    let Findings { mut issues, checks } = f;
    attach_events(&mut issues, &warning_events);
    issues.sort_by_key(|i| i.severity);
    Health {
        verdict: verdict(&issues),
        issues,
        nodes,
        pods,
        checks,
        warning_events,
        namespace: r.namespace,
        now: r.now,
    }
}

/// Critical with a critical issue, degraded with any other, else healthy.
pub fn verdict(issues: &[Issue]) -> HealthVerdict {
    if issues.iter().any(|i| i.severity == Severity::Critical) {
        HealthVerdict::Critical
    } else if issues.is_empty() {
        HealthVerdict::Healthy
    } else {
        HealthVerdict::Degraded
    }
}

/// Not Ready (critical), under pressure, without an agent.
fn nodes(
    f: &mut Findings,
    read: Part<Vec<NodeFacts>>,
    agent_nodes: &BTreeSet<String>,
) -> Option<NodeCounts> {
    let list = match read {
        Ok(list) => list,
        Err(text) => {
            f.push(issue(
                Severity::Critical,
                "CheckFailed",
                "nodes",
                text,
                None,
            ));
            return None;
        }
    };
    for n in &list {
        let object = format!("node/{}", n.name);
        if n.ready != Some(true) {
            f.push(issue(
                Severity::Critical,
                "NodeNotReady",
                &object,
                n.ready_reason.clone(),
                Some("list_nodes"),
            ));
        }
        for p in &n.pressure {
            f.push(issue(
                Severity::Warning,
                "NodePressure",
                &object,
                format!("{p} is True"),
                Some("list_nodes"),
            ));
        }
        if !agent_nodes.contains(&n.name) {
            f.push(issue(
                Severity::Warning,
                "NoAgent",
                &object,
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

/// An agent that does not answer; conntrack at 80 % of its maximum.
fn agents(f: &mut Findings, read: Part<Vec<NodeResult<NodeInfo>>>) {
    let results = match read {
        Ok(results) => results,
        Err(text) => {
            f.push(issue(
                Severity::Warning,
                "CheckFailed",
                "agents",
                text,
                Some("list_nodes"),
            ));
            return;
        }
    };
    for r in results {
        let object = format!("node/{}", r.node);
        match &r.value {
            None => f.push(issue(
                Severity::Warning,
                "AgentNotAnswering",
                object,
                format!("agent {}: {}", label(&r.outcome), r.reason),
                Some("check_network_mesh"),
            )),
            Some(info)
                if info.conntrack_max > 0
                    && info.conntrack_count * 100 >= info.conntrack_max * 80 =>
            {
                f.push(issue(
                    Severity::Warning,
                    "ConntrackNearlyFull",
                    object,
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

/// No pods at all (critical); failed Job pods as one issue per CronJob (or
/// standalone Job), not one per retry pod; every other pod problem.
fn pods(
    f: &mut Findings,
    read: Part<(PodReport, Vec<Job>)>,
    empty_namespace: Option<Issue>,
    (backup_namespaces, backup_cronjobs): (&BTreeSet<String>, &BTreeSet<String>),
) -> Option<PodCounts> {
    let (report, jobs) = match read {
        Ok(read) => read,
        Err(text) => {
            f.push(issue(Severity::Critical, "CheckFailed", "pods", text, None));
            return None;
        }
    };
    if report.total == 0 {
        f.push(empty_namespace.unwrap_or_else(|| {
            issue(
                Severity::Critical,
                "NoPods",
                "the cluster",
                "no pods at all in the cluster: nothing is running",
                None,
            )
        }));
    }
    for ((pns, parent), (pods_failed, job_names, detail)) in
        &group_failed_jobs(&report.problems, &jobs)
    {
        let backup = backup_namespaces.contains(pns)
            || parent
                .strip_prefix("cronjob/")
                .is_some_and(|cj| backup_cronjobs.contains(cj))
            || parent.contains("backup")
            || parent.contains("restore");
        f.push(issue(
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
        f.push(issue(
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

/// Flux's root causes (their consequences are counted with them), then
/// image automation from the same read.
fn flux(f: &mut Findings, read: Part<FluxParts>, now: i64) {
    let FluxParts { read, status } = match read {
        Ok(parts) => parts,
        Err(text) => {
            for name in ["flux", "imageAutomation"] {
                f.checks.insert(
                    name.into(),
                    Check {
                        message: Some(text.clone()),
                        ..check("error")
                    },
                );
            }
            f.push(issue(
                Severity::Warning,
                "CheckFailed",
                "flux",
                text,
                Some("get_flux_status"),
            ));
            return;
        }
    };
    if !read.installed() {
        f.checks.insert("flux".into(), check("not installed"));
        f.checks
            .insert("imageAutomation".into(), check("not installed"));
        return;
    }
    let consequences = read
        .rows
        .iter()
        .filter(|r| r.object.status.problem() && r.object.consequence_of.is_some())
        .count();
    f.checks.insert(
        "flux".into(),
        Check {
            root_causes: Some(status.root_causes.len()),
            consequences: Some(consequences),
            ..check(label(&status.verdict))
        },
    );
    for part in &read.failed {
        f.push(failed_issue("flux", part, "get_flux_status"));
    }
    for r in &status.root_causes {
        let o = &r.object;
        if ["ImageRepository", "ImagePolicy", "ImageUpdateAutomation"].contains(&o.kind.as_str()) {
            // Reported with its fix by the image automation check below.
            continue;
        }
        let stuck = o.status == FluxState::Stuck;
        f.push(issue(
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
    let images = super::images::report(&read, now);
    f.checks.insert(
        "imageAutomation".into(),
        check(if images.installed {
            label(&images.verdict)
        } else {
            "not installed".into()
        }),
    );
    for rc in &images.root_causes {
        f.push(issue(
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

/// A certificate not Ready (critical), expiring or overdue for renewal.
fn certificates(f: &mut Findings, read: SubCheck<Certificates>) {
    let tool = "get_certificate_status";
    let Some(report) = f.unread("certificates", tool, read) else {
        return;
    };
    f.checks
        .insert("certificates".into(), check(label(&report.verdict)));
    for part in &report.failed_parts {
        f.push(failed_issue("certificates", part, tool));
    }
    for cert in &report.certificates {
        let obj = format!("certificate/{}/{}", cert.namespace, cert.name);
        if !cert.ready {
            f.push(issue(
                Severity::Critical,
                "CertificateNotReady",
                obj,
                cert.hint.clone().unwrap_or_else(|| cert.message.clone()),
                Some(tool),
            ));
        } else if cert.expiring || cert.renewal_overdue_days.is_some() {
            f.push(issue(
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

/// ExternalSecrets failing or stores down: one critical issue naming the
/// stores.
fn secrets(f: &mut Findings, read: SubCheck<Secrets>) {
    let tool = "get_secrets_status";
    let Some(report) = f.unread("externalSecrets", tool, read) else {
        return;
    };
    f.checks
        .insert("externalSecrets".into(), check(label(&report.verdict)));
    for part in &report.failed_parts {
        f.push(failed_issue("externalSecrets", part, tool));
    }
    let Some(s) = report
        .summary
        .as_ref()
        .filter(|s| s.failing > 0 || s.stores_down > 0)
    else {
        return;
    };
    let stores: Vec<String> = report
        .root_causes
        .iter()
        .map(|rc| format!("{} {} down ({})", rc.store.kind, rc.store.name, rc.message))
        .collect();
    f.push(issue(
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

/// Each Tailscale problem (a Connector or ProxyClass not ready, operator
/// pods) as a warning.
fn tailscale(f: &mut Findings, read: SubCheck<Tailscale>) {
    let tool = "get_tailscale_status";
    let Some(report) = f.unread("tailscale", tool, read) else {
        return;
    };
    f.checks
        .insert("tailscale".into(), check(label(&report.verdict)));
    for part in &report.failed_parts {
        f.push(failed_issue("tailscale", part, tool));
    }
    for (object, finding) in report.problems() {
        f.push(issue(
            Severity::Warning,
            "TailscaleDegraded",
            object,
            finding,
            Some(tool),
        ));
    }
}

/// Events about exactly an issue's object are its evidence too.
fn attach_events(issues: &mut [Issue], events: &[EventGroup]) {
    for i in issues.iter_mut() {
        let Some(object) = object_ref(&i.object) else {
            continue;
        };
        i.events = events
            .iter()
            .filter(|e| event_about(e, &object))
            .map(|e| format!("{} ×{}: {}", e.reason, e.count, e.message))
            .collect();
    }
}

/// That `part` did not answer within `after`.
pub fn timed_out(part: &str, after: Duration) -> String {
    format!(
        "{part}: no answer within {} (the Kubernetes API is slow or hanging); the rest of this answer is what \
         could be read in time",
        crate::cluster::error::human_duration(after)
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

#[cfg(test)]
mod tests;
