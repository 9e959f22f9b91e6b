//! `get_backup_status` (backup CronJobs with their last runs, next run and
//! an overdue verdict) and `get_cronjob_details` (one CronJob: schedule,
//! policies, containers with secrets redacted, Job history). The judgement
//! is `assess::backups`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::args::{LabelSelector, Name, blank_as_none};
use super::kube::{api_error, cluster, cluster_in, require_namespace};
use super::podspec::{ContainerInfo, VolumeRef, containers_and_volumes};
use super::{
    Call, ErrorCode, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset, label,
};
use crate::assess::backups::{CronState, CronVerdict, JobResult, JobRun, assess, owned_jobs};
use crate::cluster::time::{now, rfc3339};
use crate::cluster::{Cluster, Error as ClusterError, Request};
use crate::redact::redact;

// ------------------------------------------------------- get_backup_status

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Every CronJob of this namespace.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub namespace: Option<Name>,
    /// The CronJobs this label selector matches.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub selector: Option<LabelSelector>,
}

/// Why a CronJob counts as a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum SelectedBy {
    /// The selector matched it.
    #[serde(rename = "selector")]
    Selector,
    /// It is in the namespace asked for.
    #[serde(rename = "namespace")]
    Namespace,
    /// --backup-cronjob names it.
    #[serde(rename = "configured")]
    Configured,
    /// It is in one of the backup namespaces (`[workloads]
    /// backup_namespaces`, backup-jobs by default).
    #[serde(rename = "backup namespace")]
    BackupNamespace,
    /// "backup" is in its name.
    #[serde(rename = "name")]
    Name,
    /// Labelled app.kubernetes.io/component=backup.
    #[serde(rename = "label")]
    Label,
}

/// One backup CronJob.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Why it is in the list.
    pub selected_by: SelectedBy,
    /// Schedule, runs and verdict.
    #[serde(flatten)]
    pub state: CronState,
    /// The last Job failed (whatever else the verdict says).
    pub failing: bool,
    /// The last three Jobs, newest first.
    pub last_jobs: Vec<JobRun>,
    /// The last lines of the failed Job's newest pod, redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_log: Option<String>,
    /// Why that log could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_log_error: Option<String>,
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum BackupsVerdict {
    /// Every backup ok or running.
    #[serde(rename = "healthy")]
    Healthy,
    /// Something fails or was missed.
    #[serde(rename = "degraded")]
    Degraded,
    /// A backup is overdue.
    #[serde(rename = "critical")]
    Critical,
    /// No CronJob matched.
    #[serde(rename = "no backups found")]
    NoBackupsFound,
}

/// Counts.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSummary {
    /// CronJobs.
    pub cron_jobs: usize,
    /// Overdue.
    pub overdue: usize,
    /// Whose last Job failed (overdue ones included).
    pub failing: usize,
    /// Suspended.
    pub suspended: usize,
    /// Missed their last run.
    pub missed_schedule: usize,
}

/// Backups.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Backups {
    /// Verdict.
    pub verdict: BackupsVerdict,
    /// Counts.
    pub summary: BackupSummary,
    /// Worst first.
    pub backups: Vec<Backup>,
    /// The clock used.
    pub now: String,
}

/// `get_backup_status`.
pub fn backups_tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_backup_status",
            title: "Backups",
            description: "Backup CronJobs: last success, recent Jobs, next run, OVERDUE verdict.",
            toolset: Toolset::Cluster,
            hints: Hints::READ,
        },
        run_backups,
    )
}

/// The last lines of the newest pod of a failed Job (redacted): why it
/// failed; or why that could not be read.
async fn failure_excerpt(c: &Cluster, ns: &str, job: &str) -> Result<Option<String>, ClusterError> {
    let pods = super::logs::job_pods(c, ns, job).await?;
    let Some(pod) = pods.last() else {
        return Ok(None);
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    let log = c
        .logs(
            &api,
            &name,
            &LogParams {
                container: pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.first())
                    .map(|c| c.name.clone()),
                tail_lines: Some(20),
                limit_bytes: Some(16 * 1024),
                ..Default::default()
            },
            Request::new("get", "pods/log", Some(ns)),
        )
        .await?;
    let redacted = redact(&log).text;
    let lines: Vec<&str> = redacted.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join("\n");
    Ok((!tail.is_empty()).then_some(tail))
}

fn rank(v: CronVerdict) -> u8 {
    match v {
        CronVerdict::Overdue => 0,
        CronVerdict::Failing => 1,
        CronVerdict::MissedSchedule => 2,
        CronVerdict::Unknown => 3,
        CronVerdict::Suspended => 4,
        CronVerdict::Running | CronVerdict::Ok => 5,
    }
}

async fn run_backups(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<Backups, ToolError> {
    let ns = a.namespace.as_deref();
    let c = cluster_in(&ctx, ns).await?;
    let now_s = now(ctx.settings.now);
    let (cj_api, job_api): (Api<CronJob>, Api<Job>) = match ns {
        Some(n) => (
            Api::namespaced(c.client.clone(), n),
            Api::namespaced(c.client.clone(), n),
        ),
        None => (Api::all(c.client.clone()), Api::all(c.client.clone())),
    };
    let mut lp = ListParams::default();
    if let Some(s) = &a.selector {
        lp = lp.labels(s.as_str());
    }
    let all = ListParams::default();
    let (cronjobs, jobs) = tokio::try_join!(
        c.list(&cj_api, &lp, Request::new("list", "cronjobs", ns)),
        c.list(&job_api, &all, Request::new("list", "jobs", ns)),
    )
    .map_err(api_error)?;
    let configured = &ctx.settings.backup_cronjobs;
    let mut rows = Vec::new();
    for cj in &cronjobs {
        let cns = cj.metadata.namespace.clone().unwrap_or_default();
        let name = cj.metadata.name.clone().unwrap_or_default();
        let labels = cj.metadata.labels.clone().unwrap_or_default();
        let why = if a.selector.is_some() {
            Some(SelectedBy::Selector)
        } else if ns.is_some() {
            Some(SelectedBy::Namespace)
        } else if configured.iter().any(|c| *c == format!("{cns}/{name}")) {
            Some(SelectedBy::Configured)
        } else if ctx.config.workloads.backup_namespaces.contains(&cns) {
            Some(SelectedBy::BackupNamespace)
        } else if name.contains("backup") {
            Some(SelectedBy::Name)
        } else if labels
            .get("app.kubernetes.io/component")
            .map(String::as_str)
            == Some("backup")
        {
            Some(SelectedBy::Label)
        } else {
            None
        };
        let Some(why) = why else { continue };
        let owned = owned_jobs(&jobs, &cns, &name);
        let state = assess(cj, &owned, now_s, &ctx.settings.cron_time_zone);
        let mut row = Backup {
            failing: owned.first().is_some_and(|j| j.result == JobResult::Failed),
            last_jobs: owned.iter().take(3).cloned().collect(),
            failure_log: None,
            failure_log_error: None,
            namespace: cns.clone(),
            name,
            selected_by: why,
            state,
        };
        if let Some(last) = owned.first().filter(|j| j.result == JobResult::Failed) {
            match failure_excerpt(c, &cns, &last.name).await {
                Ok(log) => row.failure_log = log,
                Err(e) => row.failure_log_error = Some(format!("{e} ({})", e.hint())),
            }
        }
        rows.push(row);
    }
    rows.sort_by(|x, y| {
        rank(x.state.verdict)
            .cmp(&rank(y.state.verdict))
            .then_with(|| x.namespace.cmp(&y.namespace))
            .then_with(|| x.name.cmp(&y.name))
    });
    let count = |v: CronVerdict| rows.iter().filter(|r| r.state.verdict == v).count();
    let summary = BackupSummary {
        cron_jobs: rows.len(),
        overdue: count(CronVerdict::Overdue),
        failing: rows.iter().filter(|r| r.failing).count(),
        suspended: count(CronVerdict::Suspended),
        missed_schedule: count(CronVerdict::MissedSchedule),
    };
    let verdict = if rows.is_empty() {
        BackupsVerdict::NoBackupsFound
    } else if summary.overdue > 0 {
        BackupsVerdict::Critical
    } else if rows
        .iter()
        .all(|r| matches!(r.state.verdict, CronVerdict::Ok | CronVerdict::Running))
    {
        BackupsVerdict::Healthy
    } else {
        BackupsVerdict::Degraded
    };
    Ok(Backups {
        verdict,
        summary,
        backups: rows,
        now: rfc3339(now_s),
    })
}

impl Render for Backups {
    fn text(&self) -> String {
        let s = &self.summary;
        let mut text = format!(
            "backups: {} — {} CronJobs, {} overdue, {} failing, {} missed schedule, {} suspended\n",
            label(&self.verdict),
            s.cron_jobs,
            s.overdue,
            s.failing,
            s.missed_schedule,
            s.suspended
        );
        for r in &self.backups {
            let st = &r.state;
            text.push_str(&format!(
                "{:<9} {}/{} [{} {}{}] last success {} ({} ago), next {}{}\n",
                label(&st.verdict).to_uppercase(),
                r.namespace,
                r.name,
                st.schedule,
                st.time_zone,
                if st.time_zone_assumed {
                    ", assumed"
                } else {
                    ""
                },
                st.last_successful_time.as_deref().unwrap_or("never"),
                st.last_success_age.as_deref().unwrap_or("-"),
                st.next_run.as_deref().unwrap_or("-"),
                if r.failing && st.verdict != CronVerdict::Failing {
                    ", last Job failed"
                } else {
                    ""
                }
            ));
            if let Some(why) = &st.overdue_because {
                text.push_str(&format!("          {why}\n"));
            }
            if let Some(e) = &st.schedule_error {
                text.push_str(&format!("          schedule not understood: {e}\n"));
            }
            if let Some(log) = &r.failure_log {
                text.push_str(&format!(
                    "          {}\n",
                    log.replace('\n', "\n          ")
                ));
            }
            if let Some(e) = &r.failure_log_error {
                text.push_str(&format!("          failure log not readable: {e}\n"));
            }
        }
        if self.backups.is_empty() {
            text.push_str("no CronJob matched; pass namespace or selector, or configure --backup-cronjob NS/NAME\n");
        }
        text
    }
}

// ----------------------------------------------------- get_cronjob_details

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailsArgs {
    /// Namespace.
    pub namespace: Name,
    /// CronJob name.
    pub cronjob: Name,
}

/// Concurrency, history and deadline policies.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policies {
    /// Allow, Forbid, Replace.
    pub concurrency_policy: String,
    /// Suspended.
    pub suspend: bool,
    /// Successful Jobs kept.
    pub successful_jobs_history_limit: i32,
    /// Failed Jobs kept.
    pub failed_jobs_history_limit: i32,
    /// Latest start after its time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_deadline_seconds: Option<i64>,
    /// Retries per Job.
    pub backoff_limit: i32,
    /// Longest a Job may run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// Finished Jobs are deleted after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
    /// OnFailure or Never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
}

/// One CronJob in detail.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronJobDetails {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Verdict (as in get_backup_status).
    pub verdict: CronVerdict,
    /// Schedule and runs.
    pub schedule: CronState,
    /// Policies.
    pub policies: Policies,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Node selector of its pods.
    pub node_selector: BTreeMap<String, String>,
    /// Containers, secrets redacted.
    pub containers: Vec<ContainerInfo>,
    /// Volumes.
    pub volumes: Vec<VolumeRef>,
    /// Retained Jobs, newest first.
    pub jobs: Vec<JobRun>,
    /// The clock used.
    pub now: String,
}

/// `get_cronjob_details`.
pub fn details_tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_cronjob_details",
            title: "CronJob details",
            description: "One CronJob: schedule, next runs, policies, containers, Job history.",
            toolset: Toolset::Cluster,
            hints: Hints::READ,
        },
        run_details,
    )
}

async fn run_details(
    ctx: Arc<ToolContext>,
    a: DetailsArgs,
    _call: Call,
) -> Result<CronJobDetails, ToolError> {
    let c = cluster(&ctx)?;
    let (ns, name) = (a.namespace.as_str(), a.cronjob.as_str());
    let now_s = now(ctx.settings.now);
    let api: Api<CronJob> = Api::namespaced(c.client.clone(), ns);
    let jobs_api: Api<Job> = Api::namespaced(c.client.clone(), ns);
    let all = ListParams::default();
    let (cj, jobs) = tokio::join!(
        c.get_opt(&api, name, Request::new("get", "cronjobs", Some(ns))),
        c.list(&jobs_api, &all, Request::new("list", "jobs", Some(ns)))
    );
    let Some(cj) = cj.map_err(api_error)? else {
        require_namespace(c, ns).await?;
        let names: Vec<String> = c
            .list(&api, &all, Request::new("list", "cronjobs", Some(ns)))
            .await
            .map(|l| l.into_iter().filter_map(|c| c.metadata.name).collect())
            .unwrap_or_default();
        return Err(ToolError::new(
            ErrorCode::NotFound,
            format!("no CronJob {name:?} in namespace {ns}"),
            if names.is_empty() {
                format!(
                    "namespace {ns} has no CronJobs; get_backup_status lists backup CronJobs everywhere"
                )
            } else {
                format!("CronJobs in {ns}: {}", names.join(", "))
            },
        ));
    };
    let jobs = jobs.map_err(api_error)?;
    let owned = owned_jobs(&jobs, ns, name);
    let schedule = assess(&cj, &owned, now_s, &ctx.settings.cron_time_zone);
    let spec = cj.spec.clone().unwrap_or_default();
    let job_spec = spec.job_template.spec.clone().unwrap_or_default();
    let pod_spec = job_spec.template.spec.clone().unwrap_or_default();
    let (containers, volumes) = containers_and_volumes(Some(&pod_spec));
    Ok(CronJobDetails {
        namespace: ns.to_string(),
        name: name.to_string(),
        verdict: schedule.verdict,
        policies: Policies {
            concurrency_policy: spec
                .concurrency_policy
                .clone()
                .unwrap_or_else(|| "Allow".into()),
            suspend: spec.suspend.unwrap_or(false),
            successful_jobs_history_limit: spec.successful_jobs_history_limit.unwrap_or(3),
            failed_jobs_history_limit: spec.failed_jobs_history_limit.unwrap_or(1),
            starting_deadline_seconds: spec.starting_deadline_seconds,
            backoff_limit: job_spec.backoff_limit.unwrap_or(6),
            active_deadline_seconds: job_spec.active_deadline_seconds,
            ttl_seconds_after_finished: job_spec.ttl_seconds_after_finished,
            restart_policy: pod_spec.restart_policy.clone(),
        },
        schedule,
        labels: cj.metadata.labels.clone().unwrap_or_default(),
        node_selector: pod_spec.node_selector.clone().unwrap_or_default(),
        containers,
        volumes,
        jobs: owned,
        now: rfc3339(now_s),
    })
}

impl Render for CronJobDetails {
    fn text(&self) -> String {
        let s = &self.schedule;
        let mut text = format!(
            "CronJob {}/{}: {} — schedule {:?} in {}{}, next {}\n",
            self.namespace,
            self.name,
            label(&self.verdict),
            s.schedule,
            s.time_zone,
            if s.time_zone_assumed {
                " (assumed)"
            } else {
                ""
            },
            s.next_run.as_deref().unwrap_or("-")
        );
        text.push_str(&format!(
            "last scheduled {}, last success {}{}, {} active{}\n",
            s.last_schedule_time.as_deref().unwrap_or("never"),
            s.last_successful_time.as_deref().unwrap_or("never"),
            s.last_success_age
                .as_deref()
                .map(|a| format!(" ({a} ago)"))
                .unwrap_or_default(),
            s.active,
            if s.missed_schedule {
                "; MISSED its last schedule"
            } else {
                ""
            }
        ));
        if let Some(why) = &s.overdue_because {
            text.push_str(&format!("overdue: {why}\n"));
        }
        let p = &self.policies;
        text.push_str(&format!(
            "policy {} suspend {} backoffLimit {} history {}/{}\n",
            p.concurrency_policy,
            p.suspend,
            p.backoff_limit,
            p.successful_jobs_history_limit,
            p.failed_jobs_history_limit
        ));
        for c in &self.containers {
            text.push_str(&format!(
                "container {} {}\n",
                c.name,
                c.image.as_deref().unwrap_or_default()
            ));
        }
        for j in &self.jobs {
            text.push_str(&format!(
                "job {} {} started {} took {}{}\n",
                j.name,
                label(&j.result),
                j.started.as_deref().unwrap_or("-"),
                j.duration.as_deref().unwrap_or("-"),
                if j.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({}: {})", j.reason, j.message)
                }
            ));
        }
        text
    }
}
