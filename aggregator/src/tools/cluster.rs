//! Cluster tools answered from the Kubernetes API: `get_cluster_health`,
//! `get_certificate_status`, `get_secrets_status` and `get_tailscale_status`.
//! Flux, batch, workload and resource tools live in their own modules.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use serde_json::{Map, Value, json};

use super::args::Args;
use super::{ErrorCode, ToolContext, ToolDef, ToolError, ToolOutput};

use crate::cluster::time::now;
use crate::cluster::{Cluster, Error as ClusterError, Request};

/// The cluster tools.
pub fn tools() -> Vec<ToolDef> {
    vec![ToolDef::untyped(
        super::Meta {
            name: "get_cluster_health",
            title: "Cluster health",
            description: "One verdict (healthy / degraded / critical) and a ranked list of issues, each with evidence \
                and the tool to call next: nodes (Ready, pressure), labscope agents (reachability, conntrack usage), \
                problem pods (CrashLoopBackOff even while Running, image pulls, Pending too long, Running but not \
                Ready, recent restarts; completed Job pods are healthy), Flux root causes (stuck releases first; \
                their consequences counted, not repeated), image repositories failing to scan (with the fix), \
                certificates, External Secrets and Tailscale; recent Warning events newest first, de-duplicated, and \
                attached to the issues they explain. A failed check or an empty namespace is never healthy.",
            toolset: super::Toolset::Cluster,
            hints: super::Hints::READ,
        },
        json!({"type": "object", "properties": {"namespace": {"type": "string"}}, "additionalProperties": false}),
        json!({"type": "object", "properties": {
                "verdict": {"type": "string", "enum": ["healthy", "degraded", "critical"]}, "issues": {"type": "array"},
                "nodes": {"type": "object"}, "pods": {"type": "object"}, "checks": {"type": "object"}},
                "required": ["verdict", "issues"]}),
        |ctx, args| Box::pin(get_cluster_health(ctx, args)),
    )]
}

pub use super::kube::{api_error, cluster, error_code};

/// One part of an answer that could not be read, as JSON (for the Flux
/// tools until they are typed).
pub fn failed_part(part: &str, e: &ClusterError) -> Value {
    serde_json::to_value(super::kube::FailedPart::new(part, e)).unwrap_or_default()
}

/// A typed report as the legacy health check reads it.
fn output<R: serde::Serialize + super::Render>(r: R) -> ToolOutput {
    ToolOutput {
        structured: serde_json::to_value(&r).unwrap_or_default(),
        text: r.text(),
    }
}

async fn get_certificate_status(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let c = cluster(&ctx)?;
    let ns = args.get("namespace").and_then(Value::as_str);
    super::certificates::read(c, ns, 30, now(ctx.settings.now))
        .await
        .map(output)
}

async fn get_secrets_status(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let c = cluster(&ctx)?;
    let ns = args.get("namespace").and_then(Value::as_str);
    super::secrets::read(c, ns).await.map(output)
}

async fn get_tailscale_status(
    ctx: Arc<ToolContext>,
    _args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let c = cluster(&ctx)?;
    super::tailscale::read(c, &ctx.settings.tailscale_namespace)
        .await
        .map(output)
}

fn issue(
    severity: &str,
    kind: &str,
    object: String,
    evidence: String,
    next: Option<&str>,
) -> Value {
    json!({"severity": severity, "kind": kind, "object": object, "evidence": evidence, "nextTool": next})
}

/// A namespaced built-in kind read as dynamic objects (for the apps/v1 lists
/// of the empty-namespace explanation).
async fn list_builtin(
    c: &Cluster,
    (group, version, kind, plural): (&str, &str, &str, &'static str),
    namespace: Option<&str>,
) -> Result<Vec<kube::api::DynamicObject>, ClusterError> {
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk(group, version, kind),
        plural,
    );
    let api: kube::Api<kube::api::DynamicObject> = match namespace {
        Some(ns) => kube::Api::namespaced_with(c.client.clone(), ns, &ar),
        None => kube::Api::all_with(c.client.clone(), &ar),
    };
    c.list(
        &api,
        &kube::api::ListParams::default(),
        Request::new("list", plural, namespace),
    )
    .await
}

/// Why `ns` has no pods: the namespace does not exist (a real API server
/// answers a pod list in a missing namespace with 200 and an empty list), or
/// its workloads are scaled to 0, or nothing was ever deployed there. Always
/// critical: an empty namespace is never healthy.
async fn empty_namespace(c: &Cluster, ns: &str) -> Value {
    let scope = format!("namespace {ns}");
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(c.client.clone());
    match c
        .get_opt(&api, ns, Request::new("get", "namespaces", None))
        .await
    {
        Ok(None) => {
            return issue(
                "critical",
                "NamespaceNotFound",
                scope,
                format!(
                    "namespace {ns} not found: the API server answers its pod list with an empty list, \
                     but nothing can run there; if Git defines it, Flux has not re-created it"
                ),
                Some("get_flux_status"),
            );
        }
        Ok(Some(n)) if n.metadata.deletion_timestamp.is_some() => {
            return issue(
                "critical",
                "NamespaceTerminating",
                scope,
                format!("namespace {ns} is being deleted and has no pods left"),
                Some("get_events"),
            );
        }
        Ok(Some(_)) => {}
        Err(e) => {
            return issue(
                "critical",
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
    let mut parked = Vec::new();
    let mut unread = Vec::new();
    for (kind, plural) in [
        ("Deployment", "deployments"),
        ("StatefulSet", "statefulsets"),
    ] {
        match list_builtin(c, ("apps", "v1", kind, plural), Some(ns)).await {
            Err(e) => unread.push(format!("{e} ({})", e.hint())),
            Ok(items) => {
                for o in items {
                    if o.data["spec"]["replicas"].as_i64() == Some(0) {
                        let owner = o
                            .metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("kustomize.toolkit.fluxcd.io/name"))
                            .map(|k| format!(" (applied by Flux Kustomization {k}: unless Git says 0, this is drift)"))
                            .unwrap_or_default();
                        parked.push(format!(
                            "{kind} {}/{} is scaled to 0 replicas{owner}",
                            ns,
                            o.metadata.name.unwrap_or_default()
                        ));
                    }
                }
            }
        }
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
        "critical",
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
/// "job/ns/name") → (failed pods, Jobs, newest detail). Indexed Jobs and
/// Job names ending in digits group correctly because no name is parsed.
type FailedJobs = BTreeMap<(String, String), (usize, BTreeSet<String>, String)>;

fn group_failed_jobs(problems: &[crate::cluster::pods::PodProblem], jobs: &[Job]) -> FailedJobs {
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

/// True when event `e` (from get_events) is about exactly `object`.
fn event_about(e: &Value, object: &(String, Option<String>, String)) -> bool {
    let Some((kind, name)) = e["object"].as_str().and_then(|o| o.split_once('/')) else {
        return false;
    };
    let (want_kind, want_ns, want_name) = object;
    kind.eq_ignore_ascii_case(want_kind)
        && name == want_name
        && want_ns.as_deref().is_none_or(|ns| e["namespace"] == ns)
}

/// Waits for one part of a composite answer, at most `deadline`.
async fn part<T>(
    deadline: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Duration> {
    tokio::time::timeout(deadline, fut)
        .await
        .map_err(|_| deadline)
}

fn timed_out_text(part: &str, after: Duration) -> String {
    format!(
        "{part}: no answer within {} (the Kubernetes API is slow or hanging); the rest of this answer is what \
         could be read in time",
        crate::cluster::error::human_duration(after)
    )
}

async fn get_cluster_health(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["namespace"])?;
    let namespace = a.opt_name("namespace")?;
    let c = cluster(&ctx)?.clone();
    let now_s = now(ctx.settings.now);
    // Every part answers before the tool deadline, so the verdict can name
    // the part that did not.
    let budget = ctx
        .settings
        .tool_deadline
        .saturating_sub(Duration::from_millis(1500))
        .max(ctx.settings.tool_deadline / 2);
    let ns_args = |ns: &Option<String>| {
        let mut m = Map::new();
        if let Some(n) = ns {
            m.insert("namespace".into(), json!(n));
        }
        m
    };
    let agents = ctx.pool.all();
    let fanout = crate::agents::fan_out_with_deadline(
        agents,
        ctx.settings.agent_deadline,
        ctx.settings.fanout_concurrency,
        |a| async move {
            a.client()
                .get_node_info(labscope_proto::v1::GetNodeInfoRequest {})
                .await
                .map(|r| r.into_inner())
        },
    );
    let (nodes, pods, agent_results, certs, secrets, tailscale, flux, events) = tokio::join!(
        part(budget, crate::cluster::nodes::list(&c)),
        part(budget, async {
            let report = crate::cluster::pods::report(&c, namespace.as_deref(), now_s).await?;
            // Jobs only when a Job pod failed: their owners group the failures.
            let jobs = if report.problems.iter().any(|p| p.problem == "JobFailed") {
                let api: kube::Api<Job> = match &namespace {
                    Some(ns) => kube::Api::namespaced(c.client.clone(), ns),
                    None => kube::Api::all(c.client.clone()),
                };
                c.list(
                    &api,
                    &kube::api::ListParams::default(),
                    Request::new("list", "jobs", namespace.as_deref()),
                )
                .await
                .unwrap_or_default()
            } else {
                Vec::new()
            };
            Ok::<_, ClusterError>((report, jobs))
        }),
        part(budget, fanout),
        part(
            budget,
            get_certificate_status(ctx.clone(), ns_args(&namespace))
        ),
        part(budget, get_secrets_status(ctx.clone(), ns_args(&namespace))),
        part(budget, async {
            if namespace.is_none() {
                Some(get_tailscale_status(ctx.clone(), Map::new()).await)
            } else {
                None
            }
        }),
        part(
            budget,
            super::flux::failures(&c, namespace.as_deref(), now_s)
        ),
        part(
            budget,
            super::events::read(
                &c,
                namespace.as_deref(),
                super::events::EventType::Warning,
                60,
                None,
                20,
                now_s
            )
        ),
    );
    let mut issues = Vec::new();
    let mut checks = Map::new();

    // Nodes.
    let mut node_summary = json!({});
    match &nodes {
        Ok(Ok(list)) => {
            let ready = list.iter().filter(|n| n.ready == Some(true)).count();
            node_summary = json!({"total": list.len(), "ready": ready});
            for n in list {
                if n.ready != Some(true) {
                    issues.push(issue(
                        "critical",
                        "NodeNotReady",
                        format!("node/{}", n.name),
                        n.ready_reason.clone(),
                        Some("list_nodes"),
                    ));
                }
                for p in &n.pressure {
                    issues.push(issue(
                        "warning",
                        "NodePressure",
                        format!("node/{}", n.name),
                        format!("{p} is True"),
                        Some("list_nodes"),
                    ));
                }
                if ctx.pool.get(&n.name).is_none() {
                    issues.push(issue(
                        "warning",
                        "NoAgent",
                        format!("node/{}", n.name),
                        "no usable labscope agent on this node: node tools cannot answer for it"
                            .into(),
                        Some("list_nodes"),
                    ));
                }
            }
        }
        Ok(Err(e)) => issues.push(issue(
            "critical",
            "CheckFailed",
            "nodes".into(),
            format!("{e} ({})", e.hint()),
            None,
        )),
        Err(after) => issues.push(issue(
            "critical",
            "CheckFailed",
            "nodes".into(),
            timed_out_text("nodes", *after),
            None,
        )),
    }
    // Agents.
    match &agent_results {
        Ok(results) => {
            ctx.metrics.record_agents(results);
            for r in results {
                match &r.value {
                    None => issues.push(issue(
                        "warning",
                        "AgentNotAnswering",
                        format!("node/{}", r.node),
                        format!("agent {:?}: {}", r.outcome, r.reason),
                        Some("check_network_mesh"),
                    )),
                    Some(info)
                        if info.conntrack_max > 0
                            && info.conntrack_count * 100 >= info.conntrack_max * 80 =>
                    {
                        issues.push(issue(
                            "warning",
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
            "warning",
            "CheckFailed",
            "agents".into(),
            timed_out_text("agents", *after),
            Some("list_nodes"),
        )),
    }
    // Pods.
    let mut pod_summary = json!({});
    match &pods {
        Ok(Ok((report, jobs))) => {
            pod_summary = json!({"total": report.total, "problems": report.problems.len(), "problemPods": report.problems,
                "replacedPods": report.history.len(), "history": report.history});
            if report.total == 0 {
                issues.push(match &namespace {
                    Some(ns) => empty_namespace(&c, ns).await,
                    None => issue(
                        "critical",
                        "NoPods",
                        "the cluster".into(),
                        "no pods at all in the cluster: nothing is running".into(),
                        None,
                    ),
                });
            }
            // Failed Job pods: one issue per CronJob (or standalone Job), not
            // one per retry pod.
            for ((ns, parent), (pods_failed, job_names, detail)) in
                &group_failed_jobs(&report.problems, jobs)
            {
                let backup =
                    ns == "backup-jobs" || parent.contains("backup") || parent.contains("restore");
                issues.push(issue(
                    "warning",
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
                    p.severity,
                    &p.problem,
                    format!("pod/{}/{}", p.namespace, p.name),
                    format!(
                        "{} (phase {}, {} restarts, node {})",
                        p.detail, p.phase, p.restarts, p.node
                    ),
                    Some("get_pod_logs"),
                ));
            }
        }
        Ok(Err(e)) => issues.push(issue(
            "critical",
            "CheckFailed",
            "pods".into(),
            format!("{e} ({})", e.hint()),
            None,
        )),
        Err(after) => issues.push(issue(
            "critical",
            "CheckFailed",
            "pods".into(),
            timed_out_text("pods", *after),
            None,
        )),
    }
    // Flux: root causes only; their consequences are counted with them.
    match &flux {
        Ok(None) => {
            checks.insert("flux".into(), json!({"verdict": "not installed"}));
            checks.insert(
                "imageAutomation".into(),
                json!({"verdict": "not installed"}),
            );
        }
        Ok(Some(f)) => {
            checks.insert(
                "flux".into(),
                json!({"verdict": if !f.roots.is_empty() { "degraded" } else if !f.failed.is_empty() { "incomplete" } else { "healthy" },
                    "rootCauses": f.roots.len(), "consequences": f.consequences, "failedParts": f.failed}),
            );
            for failed in &f.failed {
                issues.push(issue(
                    "warning",
                    "CheckFailed",
                    format!("flux {}", failed["part"].as_str().unwrap_or_default()),
                    format!(
                        "{} ({})",
                        failed["message"].as_str().unwrap_or_default(),
                        failed["hint"].as_str().unwrap_or_default()
                    ),
                    Some("get_flux_status"),
                ));
            }
            for r in &f.roots {
                let kind = r["kind"].as_str().unwrap_or_default();
                if ["ImageRepository", "ImagePolicy", "ImageUpdateAutomation"].contains(&kind) {
                    // Reported with its fix by the image automation check below.
                    continue;
                }
                let stuck = r["status"] == "stuck";
                let object = format!(
                    "{}/{}/{}",
                    kind.to_lowercase(),
                    r["namespace"].as_str().unwrap_or_default(),
                    r["name"].as_str().unwrap_or_default()
                );
                let evidence = format!(
                    "{}: {}{}",
                    r["reason"].as_str().unwrap_or_default(),
                    r["stuckBecause"]
                        .as_str()
                        .or(r["message"].as_str())
                        .unwrap_or_default(),
                    r["hint"]
                        .as_str()
                        .map(|h| format!(" — {h}"))
                        .unwrap_or_default()
                );
                issues.push(issue(
                    if stuck { "critical" } else { "warning" },
                    if stuck { "FluxStuck" } else { "FluxFailing" },
                    object,
                    evidence,
                    Some("get_flux_status"),
                ));
            }
            // Image automation, from the same Flux lists.
            match &f.images {
                Some(out) => {
                    checks.insert(
                        "imageAutomation".into(),
                        json!({"verdict": out.structured["verdict"]}),
                    );
                    for rc in out.structured["rootCauses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        issues.push(issue(
                            "warning",
                            "ImageAutomationFailing",
                            rc["object"].as_str().unwrap_or_default().to_lowercase(),
                            format!(
                                "{} ({}) — fix: {}",
                                rc["problem"].as_str().unwrap_or_default(),
                                rc["reason"].as_str().unwrap_or_default(),
                                rc["fix"].as_str().unwrap_or("see the tool")
                            ),
                            Some("get_image_automation_status"),
                        ));
                    }
                }
                None => {
                    checks.insert(
                        "imageAutomation".into(),
                        json!({"verdict": "not installed"}),
                    );
                }
            }
        }
        Err(after) => {
            let text = timed_out_text("flux", *after);
            checks.insert("flux".into(), json!({"verdict": "error", "message": text}));
            checks.insert(
                "imageAutomation".into(),
                json!({"verdict": "error", "message": text}),
            );
            issues.push(issue(
                "warning",
                "CheckFailed",
                "flux".into(),
                text,
                Some("get_flux_status"),
            ));
        }
    }
    let warning_events = match &events {
        Ok(Ok(out)) => serde_json::to_value(&out.events).unwrap_or_default(),
        Ok(Err(e)) => {
            // Unread events are a failed check: never silently healthy.
            issues.push(issue(
                "warning",
                "CheckFailed",
                "events".into(),
                format!("Warning events could not be read: {} ({})", e, e.hint()),
                Some("get_events"),
            ));
            json!([])
        }
        Err(after) => {
            issues.push(issue(
                "warning",
                "CheckFailed",
                "events".into(),
                timed_out_text("events", *after),
                Some("get_events"),
            ));
            json!([])
        }
    };
    // Sub-checks answered by other tools.
    let tailscale = match tailscale {
        Ok(None) => None,
        Ok(Some(r)) => Some(Ok(r)),
        Err(after) => Some(Err(after)),
    };
    for (name, tool, result) in [
        ("certificates", "get_certificate_status", Some(certs)),
        ("externalSecrets", "get_secrets_status", Some(secrets)),
        ("tailscale", "get_tailscale_status", tailscale),
    ] {
        let Some(result) = result else { continue };
        let result = match result {
            Ok(r) => r,
            Err(after) => {
                let text = timed_out_text(name, after);
                checks.insert(name.into(), json!({"verdict": "error", "message": text}));
                issues.push(issue(
                    "warning",
                    "CheckFailed",
                    name.into(),
                    text,
                    Some(tool),
                ));
                continue;
            }
        };
        match result {
            Ok(out) => {
                let verdict = out.structured["verdict"].as_str().unwrap_or("").to_string();
                checks.insert(name.into(), json!({"verdict": verdict}));
                for failed in out.structured["failedParts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    issues.push(issue(
                        "warning",
                        "CheckFailed",
                        format!("{name} {}", failed["part"].as_str().unwrap_or_default()),
                        format!(
                            "{} ({})",
                            failed["message"].as_str().unwrap_or_default(),
                            failed["hint"].as_str().unwrap_or_default()
                        ),
                        Some(tool),
                    ));
                }
                match (name, verdict.as_str()) {
                    ("certificates", "critical" | "degraded") => {
                        for cert in out.structured["certificates"]
                            .as_array()
                            .into_iter()
                            .flatten()
                        {
                            let obj = format!(
                                "certificate/{}/{}",
                                cert["namespace"].as_str().unwrap_or(""),
                                cert["name"].as_str().unwrap_or("")
                            );
                            if cert["ready"] != true {
                                let why = cert["hint"]
                                    .as_str()
                                    .or(cert["message"].as_str())
                                    .unwrap_or("")
                                    .to_string();
                                issues.push(issue(
                                    "critical",
                                    "CertificateNotReady",
                                    obj,
                                    why,
                                    Some(tool),
                                ));
                            } else if cert["expiring"] == true
                                || !cert["renewalOverdueDays"].is_null()
                            {
                                issues.push(issue(
                                    "warning",
                                    "CertificateExpiring",
                                    obj,
                                    format!(
                                        "{} days left, renewal overdue {} days",
                                        cert["daysLeft"], cert["renewalOverdueDays"]
                                    ),
                                    Some(tool),
                                ));
                            }
                        }
                    }
                    ("externalSecrets", "degraded") => {
                        let s = &out.structured["summary"];
                        let stores: Vec<String> = out.structured["rootCauses"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|rc| {
                                format!(
                                    "{} {} down ({})",
                                    rc["store"]["kind"].as_str().unwrap_or_default(),
                                    rc["store"]["name"].as_str().unwrap_or_default(),
                                    rc["message"].as_str().unwrap_or_default()
                                )
                            })
                            .collect();
                        issues.push(issue(
                            "critical",
                            "ExternalSecretsFailing",
                            "externalsecrets".into(),
                            format!(
                                "{} of {} failing, {} store(s) down{}",
                                s["failing"],
                                s["externalSecrets"],
                                s["storesDown"],
                                if stores.is_empty() {
                                    String::new()
                                } else {
                                    format!(": {}", stores.join("; "))
                                }
                            ),
                            Some(tool),
                        ));
                    }
                    ("tailscale", "degraded") => issues.push(issue(
                        "warning",
                        "TailscaleDegraded",
                        "tailscale".into(),
                        out.text.trim().to_string(),
                        Some(tool),
                    )),
                    _ => {}
                }
            }
            Err(e) => {
                checks.insert(
                    name.into(),
                    json!({"verdict": "error", "message": e.message}),
                );
                if !matches!(e.code, ErrorCode::NotConfigured) {
                    issues.push(issue(
                        "warning",
                        "CheckFailed",
                        name.into(),
                        format!("{} ({})", e.message, e.hint),
                        Some(tool),
                    ));
                }
            }
        }
    }
    // Events about exactly an issue's object are its evidence too.
    for i in issues.iter_mut() {
        let Some(object) = i["object"].as_str().and_then(object_ref) else {
            continue;
        };
        let related: Vec<Value> = warning_events
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| event_about(e, &object))
            .map(|e| {
                json!(format!(
                    "{} ×{}: {}",
                    e["reason"].as_str().unwrap_or_default(),
                    e["count"],
                    e["message"].as_str().unwrap_or_default()
                ))
            })
            .collect();
        if !related.is_empty() {
            i["events"] = json!(related);
        }
    }
    issues.sort_by_key(|i| i["severity"] != "critical");
    let verdict = if issues.iter().any(|i| i["severity"] == "critical") {
        "critical"
    } else if issues.is_empty() {
        "healthy"
    } else {
        "degraded"
    };
    let mut text = format!("cluster: {verdict} — {} issue(s)\n", issues.len());
    for i in issues.iter().take(20) {
        text.push_str(&format!(
            "[{}] {} {}: {}{}\n",
            i["severity"].as_str().unwrap_or(""),
            i["kind"].as_str().unwrap_or(""),
            i["object"].as_str().unwrap_or(""),
            i["evidence"].as_str().unwrap_or(""),
            i["nextTool"]
                .as_str()
                .map(|t| format!(" → {t}"))
                .unwrap_or_default()
        ));
    }
    if issues.len() > 20 {
        text.push_str(&format!(
            "… and {} more (structured content has all)\n",
            issues.len() - 20
        ));
    }
    if let Ok(Ok((report, _))) = &pods
        && !report.history.is_empty()
    {
        text.push_str(&format!(
            "history: {} pod(s) left Failed by their node (evicted or shut down) and already replaced\n",
            report.history.len()
        ));
    }
    let structured = json!({"verdict": verdict, "issues": issues, "nodes": node_summary, "pods": pod_summary,
        "checks": checks, "warningEvents": warning_events, "namespace": namespace, "now": crate::cluster::time::now(ctx.settings.now)});
    Ok(ToolOutput { structured, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_problem(name: &str, owner: &str) -> crate::cluster::pods::PodProblem {
        crate::cluster::pods::PodProblem {
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

    #[test]
    fn events_attach_to_their_exact_object() {
        let e = json!({"namespace": "jellyfin", "object": "Pod/jellyfin-7c9d6f5b8-x4k2p"});
        assert!(event_about(
            &e,
            &object_ref("pod/jellyfin/jellyfin-7c9d6f5b8-x4k2p").unwrap_or_default()
        ));
        // Same name, other namespace or kind: not its evidence.
        assert!(!event_about(
            &e,
            &object_ref("pod/media/jellyfin-7c9d6f5b8-x4k2p").unwrap_or_default()
        ));
        assert!(!event_about(
            &e,
            &object_ref("helmrelease/jellyfin/jellyfin-7c9d6f5b8-x4k2p").unwrap_or_default()
        ));
        let hr = json!({"namespace": "immich", "object": "HelmRelease/immich"});
        assert!(!event_about(
            &hr,
            &object_ref("kustomization/flux-system/immich").unwrap_or_default()
        ));
        assert!(event_about(
            &hr,
            &object_ref("helmrelease/immich/immich").unwrap_or_default()
        ));
        let node = json!({"namespace": "default", "object": "Node/pi3-worker-2"});
        assert!(event_about(
            &node,
            &object_ref("node/pi3-worker-2").unwrap_or_default()
        ));
        assert_eq!(object_ref("namespace jellyfin"), None);
    }
}
