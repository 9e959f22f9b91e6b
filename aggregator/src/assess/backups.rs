//! CronJobs judged as backups: the time zone they run in (`spec.timeZone`,
//! or the controller's zone), their next runs, the retained Jobs' results,
//! whether a run was missed, and OVERDUE when two of the schedule's own runs
//! have come and gone since the last success (counting the schedule's runs
//! keeps weekday-only schedules from reading overdue on a Sunday).

use k8s_openapi::api::batch::v1::{CronJob, Job};
use schemars::JsonSchema;
use serde::Serialize;

use crate::cluster::cron::{Schedule, zone};
use crate::cluster::time::{human, rfc3339};

fn secs(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<i64> {
    t.map(|t| t.0.as_second())
}

/// How a Job ended (or not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobResult {
    /// Complete.
    Succeeded,
    /// Failed.
    Failed,
    /// Has active pods.
    Running,
    /// Not started.
    Pending,
}

/// One Job of a CronJob.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRun {
    /// Name.
    pub name: String,
    /// Result.
    pub result: JobResult,
    /// Start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// End.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// How long ("4m").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// How long, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    /// Failed's reason (BackoffLimitExceeded, DeadlineExceeded, …).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Failed's message.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Failed pods.
    pub failed_pods: i32,
    /// Succeeded pods.
    pub succeeded_pods: i32,
}

/// A Job's outcome and times (start, end in Unix seconds).
pub fn job_run(j: &Job) -> (JobRun, Option<i64>) {
    let st = j.status.clone().unwrap_or_default();
    let cond = |t: &str| {
        st.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t && c.status == "True")
            .cloned()
    };
    let start = secs(st.start_time.as_ref());
    let (result, end, reason, message) = if let Some(c) = cond("Complete") {
        let end = secs(st.completion_time.as_ref()).or(secs(c.last_transition_time.as_ref()));
        (JobResult::Succeeded, end, String::new(), String::new())
    } else if let Some(c) = cond("Failed") {
        (
            JobResult::Failed,
            secs(c.last_transition_time.as_ref()),
            c.reason.unwrap_or_default(),
            c.message.unwrap_or_default(),
        )
    } else if st.active.unwrap_or(0) > 0 {
        (JobResult::Running, None, String::new(), String::new())
    } else {
        (JobResult::Pending, None, String::new(), String::new())
    };
    (
        JobRun {
            name: j.metadata.name.clone().unwrap_or_default(),
            result,
            started: start.map(rfc3339),
            finished: end.map(rfc3339),
            duration: start.zip(end).map(|(s, e)| human(e - s)),
            duration_seconds: start.zip(end).map(|(s, e)| e - s),
            reason,
            message,
            failed_pods: st.failed.unwrap_or(0),
            succeeded_pods: st.succeeded.unwrap_or(0),
        },
        start.or(secs(j.metadata.creation_timestamp.as_ref())),
    )
}

/// Jobs created by `cronjob` (owner reference), newest first.
pub fn owned_jobs(jobs: &[Job], ns: &str, cronjob: &str) -> Vec<JobRun> {
    let mut out: Vec<(JobRun, Option<i64>)> = jobs
        .iter()
        .filter(|j| j.metadata.namespace.as_deref() == Some(ns))
        .filter(|j| {
            j.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "CronJob" && o.name == cronjob)
        })
        .map(job_run)
        .collect();
    out.sort_by_key(|(_, t)| std::cmp::Reverse(t.unwrap_or(0)));
    out.into_iter().map(|(r, _)| r).collect()
}

/// A CronJob's state as a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum CronVerdict {
    /// Last run fine.
    #[serde(rename = "ok")]
    Ok,
    /// A run is in progress.
    #[serde(rename = "running")]
    Running,
    /// The last Job failed.
    #[serde(rename = "failing")]
    Failing,
    /// Two scheduled runs since the last success.
    #[serde(rename = "overdue")]
    Overdue,
    /// The last due run was not scheduled.
    #[serde(rename = "missed schedule")]
    MissedSchedule,
    /// Suspended.
    #[serde(rename = "suspended")]
    Suspended,
    /// The schedule or zone cannot be read.
    #[serde(rename = "unknown")]
    Unknown,
}

/// Schedule facts and the verdict of one CronJob.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronState {
    /// spec.schedule.
    pub schedule: String,
    /// Zone it is evaluated in.
    pub time_zone: String,
    /// No spec.timeZone: the configured controller zone was assumed.
    pub time_zone_assumed: bool,
    /// What the assumption means.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone_note: Option<String>,
    /// Suspended.
    pub suspended: bool,
    /// Last run scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// Last success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    /// How long ago.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_age: Option<String>,
    /// Jobs running.
    pub active: usize,
    /// Longest gap between runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// The same in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<i64>,
    /// Next run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    /// Next three runs.
    pub next_runs: Vec<String>,
    /// The last run that was due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_last_run: Option<String>,
    /// That run was not scheduled.
    pub missed_schedule: bool,
    /// Two scheduled runs since the last success.
    pub overdue: bool,
    /// Scheduled runs since the last success.
    pub runs_since_last_success: usize,
    /// Why it is overdue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overdue_because: Option<String>,
    /// Why the schedule cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_error: Option<String>,
    /// The verdict.
    pub verdict: CronVerdict,
}

/// Judges `cj` at `now_s`, its Jobs newest first in `jobs`; `default_zone`
/// is the controller's zone for CronJobs without spec.timeZone.
pub fn assess(cj: &CronJob, jobs: &[JobRun], now_s: i64, default_zone: &str) -> CronState {
    let spec = cj.spec.clone().unwrap_or_default();
    let st = cj.status.clone().unwrap_or_default();
    let (zone_name, assumed) = match &spec.time_zone {
        Some(z) => (z.clone(), false),
        None => (default_zone.to_string(), true),
    };
    let last_schedule = secs(st.last_schedule_time.as_ref());
    let last_success = secs(st.last_successful_time.as_ref());
    let suspended = spec.suspend.unwrap_or(false);
    let mut out = CronState {
        schedule: spec.schedule.clone(),
        time_zone_note: assumed.then(|| {
            format!(
                "no spec.timeZone: evaluated in {zone_name}, the zone labscope is configured with (--cron-time-zone); \
                 the controller uses its host's local zone"
            )
        }),
        time_zone: zone_name.clone(),
        time_zone_assumed: assumed,
        suspended,
        last_schedule_time: last_schedule.map(rfc3339),
        last_successful_time: last_success.map(rfc3339),
        last_success_age: last_success.map(|t| human(now_s - t)),
        active: st.active.iter().flatten().count(),
        interval: None,
        interval_seconds: None,
        next_run: None,
        next_runs: Vec::new(),
        expected_last_run: None,
        missed_schedule: false,
        overdue: false,
        runs_since_last_success: 0,
        overdue_because: None,
        schedule_error: None,
        verdict: CronVerdict::Unknown,
    };
    let now_ts = jiff::Timestamp::from_second(now_s).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let (schedule, tz) =
        match Schedule::parse(&spec.schedule).and_then(|s| zone(&zone_name).map(|z| (s, z))) {
            Ok(p) => p,
            Err(e) => {
                out.schedule_error = Some(e);
                return out;
            }
        };
    let interval = schedule.longest_interval(now_ts, &tz, 4).unwrap_or(0);
    out.next_runs = std::iter::successors(schedule.next_after(now_ts, &tz), |t| {
        schedule.next_after(*t, &tz)
    })
    .take(3)
    .map(|t| rfc3339(t.as_second()))
    .collect();
    out.next_run = out.next_runs.first().cloned();
    out.interval = Some(human(interval));
    out.interval_seconds = Some(interval);
    let created = secs(cj.metadata.creation_timestamp.as_ref()).unwrap_or(now_s);
    // Runs due before the CronJob existed were never expected.
    let expected_last = schedule
        .last_at_or_before(now_ts, &tz, 2 * interval.max(60))
        .map(|t| t.as_second())
        .filter(|e| *e >= created);
    out.expected_last_run = expected_last.map(rfc3339);
    out.missed_schedule =
        !suspended && expected_last.is_some_and(|e| last_schedule.is_none_or(|l| l + 60 < e));
    let last_result = jobs.first().map(|j| j.result);
    let since = last_success.unwrap_or(created);
    let missed_runs: Vec<i64> = jiff::Timestamp::from_second(since)
        .ok()
        .into_iter()
        .flat_map(|t| {
            std::iter::successors(schedule.next_after(t, &tz), |t| {
                schedule.next_after(*t, &tz)
            })
        })
        .map(|t| t.as_second())
        .take_while(|t| *t <= now_s)
        .take(1000)
        .collect();
    out.overdue = missed_runs.len() >= 2;
    out.runs_since_last_success = missed_runs.len();
    out.verdict = if suspended {
        CronVerdict::Suspended
    } else if out.overdue {
        CronVerdict::Overdue
    } else if last_result == Some(JobResult::Failed) {
        CronVerdict::Failing
    } else if out.missed_schedule {
        CronVerdict::MissedSchedule
    } else if last_result == Some(JobResult::Running) {
        CronVerdict::Running
    } else {
        CronVerdict::Ok
    };
    if out.overdue {
        out.overdue_because = Some(match last_success {
            Some(t) => format!(
                "last success {} ago; {} scheduled runs since (the first due {}) did not succeed",
                human(now_s - t),
                missed_runs.len(),
                rfc3339(missed_runs[0]),
            ),
            None => format!(
                "never succeeded; {} scheduled runs since it was created (the first due {})",
                missed_runs.len(),
                rfc3339(missed_runs[0]),
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cronjob(schedule: &str, last_success: &str, created: &str) -> CronJob {
        serde_json::from_value(json!({"metadata": {"name": "b", "namespace": "backup-jobs", "creationTimestamp": created},
            "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}},
            "status": {"lastSuccessfulTime": last_success, "lastScheduleTime": last_success}}))
        .unwrap_or_default()
    }

    const NOW: i64 = 1_787_206_020; // Thursday 2026-08-20T06:07:00Z

    #[test]
    fn overdue_counts_the_schedules_own_runs() {
        // Daily at 02:00, last success four days ago: overdue.
        let c = cronjob("0 2 * * *", "2026-08-16T02:05:00Z", "2026-01-01T00:00:00Z");
        let s = assess(&c, &[], NOW, "UTC");
        assert_eq!(s.verdict, CronVerdict::Overdue);
        assert_eq!(s.runs_since_last_success, 4);
        // Weekdays only: Friday's success read on Sunday is not overdue
        // (no weekday run has come since).
        let c = cronjob(
            "0 2 * * 1-5",
            "2026-08-14T02:05:00Z",
            "2026-01-01T00:00:00Z",
        );
        let sunday = NOW - 4 * 86_400; // 2026-08-16T06:07Z
        let s = assess(&c, &[], sunday, "UTC");
        assert!(!s.overdue, "{s:?}");
        // A bad schedule is unknown, never ok.
        let c = cronjob("61 * * * *", "2026-08-16T02:05:00Z", "2026-01-01T00:00:00Z");
        assert_eq!(assess(&c, &[], NOW, "UTC").verdict, CronVerdict::Unknown);
    }
}
