//! Jobs and CronJobs described (get_cronjob_details has a CronJob's
//! history).

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::Serialize;

use super::{
    Kind, PodBrief, Summary, conditions_text, containers_text, get_in, json, pods_selected,
    pods_text, selector, time,
};
use crate::cluster::Cluster;
use crate::tools::ToolError;
use crate::tools::podspec::{Condition, ContainerInfo, conditions, containers_and_volumes};

/// A Job.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    /// Conditions.
    pub conditions: Vec<Condition>,
    /// Active pods.
    pub active: i32,
    /// Succeeded pods.
    pub succeeded: i32,
    /// Failed pods.
    pub failed: i32,
    /// Start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Completion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Retries allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    /// Containers.
    pub containers: Vec<ContainerInfo>,
    /// Its pods.
    pub pods: Vec<PodBrief>,
}

/// A CronJob (get_cronjob_details says more).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronJobSummary {
    /// Schedule.
    pub schedule: String,
    /// spec.timeZone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Suspended.
    pub suspend: bool,
    /// Allow, Forbid, Replace.
    pub concurrency_policy: String,
    /// Last run scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// Last success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    /// Jobs running.
    pub active: usize,
    /// Containers.
    pub containers: Vec<ContainerInfo>,
}

/// Reads Job `name` and its pods.
pub(super) async fn describe_job(
    c: &Cluster,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
) -> Result<(ObjectMeta, Summary), ToolError> {
    let nsv = ns.unwrap_or_default();
    let j: Job = get_in(c, kind, ns, name).await?;
    let (spec, st) = (
        j.spec.clone().unwrap_or_default(),
        j.status.clone().unwrap_or_default(),
    );
    let (containers, _) = containers_and_volumes(spec.template.spec.as_ref());
    let pods = pods_selected(c, nsv, selector(spec.selector.as_ref()).as_ref()).await?;
    let summary = JobSummary {
        conditions: conditions(&json(&j)),
        active: st.active.unwrap_or(0),
        succeeded: st.succeeded.unwrap_or(0),
        failed: st.failed.unwrap_or(0),
        start_time: time(st.start_time.as_ref()),
        completion_time: time(st.completion_time.as_ref()),
        backoff_limit: spec.backoff_limit,
        containers,
        pods,
    };
    Ok((j.metadata, Summary::Job(Box::new(summary))))
}

/// Reads CronJob `name`.
pub(super) async fn describe_cronjob(
    c: &Cluster,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
) -> Result<(ObjectMeta, Summary), ToolError> {
    let cj: CronJob = get_in(c, kind, ns, name).await?;
    let (spec, st) = (
        cj.spec.clone().unwrap_or_default(),
        cj.status.clone().unwrap_or_default(),
    );
    let (containers, _) = containers_and_volumes(
        spec.job_template
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref()),
    );
    let summary = CronJobSummary {
        schedule: spec.schedule.clone(),
        time_zone: spec.time_zone.clone(),
        suspend: spec.suspend.unwrap_or(false),
        concurrency_policy: spec
            .concurrency_policy
            .clone()
            .unwrap_or_else(|| "Allow".into()),
        last_schedule_time: time(st.last_schedule_time.as_ref()),
        last_successful_time: time(st.last_successful_time.as_ref()),
        active: st.active.iter().flatten().count(),
        containers,
    };
    Ok((cj.metadata, Summary::CronJob(summary)))
}

impl JobSummary {
    /// Its lines of the text rendering.
    pub(super) fn text(&self, out: &mut String) {
        let j = self;
        out.push_str(&format!(
            "active {} succeeded {} failed {} (backoffLimit {})\n",
            j.active,
            j.succeeded,
            j.failed,
            j.backoff_limit
                .map(|b| b.to_string())
                .unwrap_or_else(|| "-".into())
        ));
        conditions_text(&j.conditions, out);
        pods_text(&j.pods, out);
    }
}

impl CronJobSummary {
    /// Its lines of the text rendering.
    pub(super) fn text(&self, out: &mut String) {
        let cj = self;
        out.push_str(&format!(
            "schedule {:?} tz {} suspend {} last scheduled {} last success {} ({} active); get_cronjob_details has the history\n",
            cj.schedule,
            cj.time_zone.as_deref().unwrap_or("-"),
            cj.suspend,
            cj.last_schedule_time.as_deref().unwrap_or("never"),
            cj.last_successful_time.as_deref().unwrap_or("never"),
            cj.active
        ));
        containers_text(&cj.containers, out);
    }
}
