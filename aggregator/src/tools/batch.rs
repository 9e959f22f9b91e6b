//! Batch tools: `get_backup_status` (backup CronJobs with next run, last
//! results and an overdue verdict), `get_cronjob_details` (schedule,
//! policies, containers with secrets redacted, Job history) and
//! `get_job_logs` (every pod of a Job, byte-capped).
//!
//! Schedules are evaluated in `spec.timeZone`, or in the controller's zone
//! (`--cron-time-zone`, UTC by default) when the CronJob sets none; the
//! answer says which. A backup is overdue when its last success is older than
//! two of its intervals.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, ListParams, LogParams};
use serde_json::{Map, Value, json};

use super::args::Args;
use super::kube::{api_error, cluster};
use super::{ErrorCode, ToolContext, ToolDef, ToolError, ToolOutput};
use crate::cluster::cron::{Schedule, zone};
use crate::cluster::time::{human, now, rfc3339};
use crate::cluster::{Error as ClusterError, Request};
use crate::redact::{redact, secret_name};

/// The batch tools.
pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::untyped(
            super::Meta {
                name: "get_backup_status",
                title: "Backup CronJobs: last runs, next run, overdue",
                description: "Backup CronJobs — every CronJob in namespace backup-jobs, or with \"backup\" in its name, or \
                labelled app.kubernetes.io/component=backup, or configured with --backup-cronjob (so restore-test is \
                not missed); with `namespace`, every CronJob there; with `selector`, those it matches. For each: \
                schedule and the time zone it runs in, suspended, last schedule, last success, the last three Jobs \
                with result and duration, the failing reason from the failed pod's log, the next run, and an \
                OVERDUE when two scheduled runs have come and gone since the last success.",
                toolset: super::Toolset::Cluster,
                hints: super::Hints::READ,
            },
            json!({"type": "object", "properties": {
                "namespace": {"type": "string"}, "selector": {"type": "string", "description": "label selector, e.g. app=backup"}},
                "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "verdict": {"type": "string"}, "backups": {"type": "array"}, "summary": {"type": "object"}},
                "required": ["verdict", "backups"]}),
            |ctx, args| Box::pin(get_backup_status(ctx, args)),
        ),
        ToolDef::untyped(
            super::Meta {
                name: "get_cronjob_details",
                title: "CronJob details and Job history",
                description: "One CronJob: schedule, time zone, the next three runs, concurrency and history policies, \
                suspend, deadlines, containers (image, command, env and volumes with secret values redacted; \
                Secret references named, never read), node placement, and the retained Job history with result, \
                start and duration; overdue verdict as in get_backup_status.",
                toolset: super::Toolset::Cluster,
                hints: super::Hints::READ,
            },
            json!({"type": "object", "properties": {
                "namespace": {"type": "string"}, "cronjob": {"type": "string"}},
                "required": ["namespace", "cronjob"], "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "namespace": {"type": "string"}, "name": {"type": "string"}, "schedule": {"type": "object"},
                "policies": {"type": "object"}, "containers": {"type": "array"}, "volumes": {"type": "array"},
                "jobs": {"type": "array"}, "verdict": {"type": "string"}},
                "required": ["namespace", "name", "schedule", "jobs"]}),
            |ctx, args| Box::pin(get_cronjob_details(ctx, args)),
        ),
    ]
}

fn secs(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<i64> {
    t.map(|t| t.0.as_second())
}

/// A Job's outcome: (result, start, end, reason, message).
pub(crate) fn job_outcome(j: &Job) -> (&'static str, Option<i64>, Option<i64>, String, String) {
    let st = j.status.clone().unwrap_or_default();
    let cond = |t: &str| {
        st.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t && c.status == "True")
            .cloned()
    };
    let start = secs(st.start_time.as_ref());
    if let Some(c) = cond("Complete") {
        let end = secs(st.completion_time.as_ref()).or(secs(c.last_transition_time.as_ref()));
        return ("succeeded", start, end, String::new(), String::new());
    }
    if let Some(c) = cond("Failed") {
        return (
            "failed",
            start,
            secs(c.last_transition_time.as_ref()),
            c.reason.unwrap_or_default(),
            c.message.unwrap_or_default(),
        );
    }
    if st.active.unwrap_or(0) > 0 {
        return ("running", start, None, String::new(), String::new());
    }
    ("pending", start, None, String::new(), String::new())
}

/// Jobs created by `cronjob` (ownerReference), newest first.
fn owned_jobs<'a>(jobs: &'a [Job], ns: &str, cronjob: &str) -> Vec<&'a Job> {
    let mut out: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.metadata.namespace.as_deref() == Some(ns))
        .filter(|j| {
            j.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "CronJob" && o.name == cronjob)
        })
        .collect();
    out.sort_by_key(|j| {
        std::cmp::Reverse(
            job_outcome(j)
                .1
                .or(secs(j.metadata.creation_timestamp.as_ref()))
                .unwrap_or(0),
        )
    });
    out
}

fn job_json(j: &Job) -> Value {
    let (result, start, end, reason, message) = job_outcome(j);
    let st = j.status.clone().unwrap_or_default();
    json!({"name": j.metadata.name, "result": result, "started": start.map(rfc3339), "finished": end.map(rfc3339),
        "duration": start.zip(end).map(|(s, e)| human(e - s)), "durationSeconds": start.zip(end).map(|(s, e)| e - s),
        "reason": reason, "message": message, "failedPods": st.failed.unwrap_or(0), "succeededPods": st.succeeded.unwrap_or(0)})
}

/// Schedule facts and the overdue verdict of one CronJob.
fn assess(cj: &CronJob, jobs: &[&Job], now_s: i64, default_zone: &str) -> Value {
    let spec = cj.spec.clone().unwrap_or_default();
    let st = cj.status.clone().unwrap_or_default();
    let (zone_name, assumed) = match &spec.time_zone {
        Some(z) => (z.clone(), false),
        None => (default_zone.to_string(), true),
    };
    let last_schedule = secs(st.last_schedule_time.as_ref());
    let last_success = secs(st.last_successful_time.as_ref());
    let suspended = spec.suspend.unwrap_or(false);
    let mut v = json!({"schedule": spec.schedule, "timeZone": zone_name, "timeZoneAssumed": assumed, "suspended": suspended,
        "lastScheduleTime": last_schedule.map(rfc3339), "lastSuccessfulTime": last_success.map(rfc3339),
        "lastSuccessAge": last_success.map(|t| human(now_s - t)), "active": st.active.iter().flatten().count()});
    if assumed {
        v["timeZoneNote"] = json!(format!(
            "no spec.timeZone: evaluated in {zone_name}, the zone labscope is configured with (--cron-time-zone); the controller uses its host's local zone"
        ));
    }
    let now_ts = jiff::Timestamp::from_second(now_s).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let parsed = Schedule::parse(&spec.schedule).and_then(|s| zone(&zone_name).map(|z| (s, z)));
    let (schedule, tz) = match parsed {
        Ok(p) => p,
        Err(e) => {
            v["scheduleError"] = json!(e);
            v["verdict"] = json!("unknown");
            return v;
        }
    };
    let interval = schedule.longest_interval(now_ts, &tz, 4).unwrap_or(0);
    let next: Vec<String> = std::iter::successors(schedule.next_after(now_ts, &tz), |t| {
        schedule.next_after(*t, &tz)
    })
    .take(3)
    .map(|t| rfc3339(t.as_second()))
    .collect();
    v["interval"] = json!(human(interval));
    v["intervalSeconds"] = json!(interval);
    v["nextRun"] = json!(next.first());
    v["nextRuns"] = json!(next);
    let created = secs(cj.metadata.creation_timestamp.as_ref()).unwrap_or(now_s);
    // Runs due before the CronJob existed were never expected.
    let expected_last = schedule
        .last_at_or_before(now_ts, &tz, 2 * interval.max(60))
        .map(|t| t.as_second())
        .filter(|e| *e >= created);
    v["expectedLastRun"] = json!(expected_last.map(rfc3339));
    let missed =
        !suspended && expected_last.is_some_and(|e| last_schedule.is_none_or(|l| l + 60 < e));
    v["missedSchedule"] = json!(missed);
    let last_result = jobs.first().map(|j| job_outcome(j).0);
    // Overdue: two scheduled runs have come and gone since the last success
    // (or since creation). Counting the schedule's own runs keeps uneven
    // schedules (weekdays only, office hours) from reading overdue over a
    // weekend or a night.
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
    let overdue = missed_runs.len() >= 2;
    v["overdue"] = json!(overdue);
    v["runsSinceLastSuccess"] = json!(missed_runs.len());
    let verdict = if suspended {
        "suspended"
    } else if overdue {
        "overdue"
    } else if last_result == Some("failed") {
        "failing"
    } else if missed {
        "missed schedule"
    } else if last_result == Some("running") {
        "running"
    } else {
        "ok"
    };
    v["verdict"] = json!(verdict);
    if overdue {
        v["overdueBecause"] = json!(match last_success {
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
    v
}

/// The last lines of the newest pod of a failed Job (redacted): why it
/// failed; or why that could not be read.
async fn failure_excerpt(
    c: &crate::cluster::Cluster,
    ns: &str,
    job: &str,
) -> Result<Option<String>, ClusterError> {
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

async fn get_backup_status(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["namespace", "selector"])?;
    let namespace = a.opt_name("namespace")?;
    let selector = a.opt_string("selector")?;
    if let Some(s) = &selector
        && !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,!() ".contains(c))
    {
        return Err(ToolError::invalid(
            "selector",
            format!("{s:?} is not a label selector like app=backup"),
        ));
    }
    let c = cluster(&ctx)?;
    let now_s = now(ctx.settings.now);
    let ns = namespace.as_deref();
    let (cj_api, job_api): (Api<CronJob>, Api<Job>) = match ns {
        Some(n) => (
            Api::namespaced(c.client.clone(), n),
            Api::namespaced(c.client.clone(), n),
        ),
        None => (Api::all(c.client.clone()), Api::all(c.client.clone())),
    };
    let mut lp = ListParams::default();
    if let Some(s) = &selector {
        lp = lp.labels(s);
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
        let why = if selector.is_some() {
            Some("selector")
        } else if ns.is_some() {
            Some("namespace")
        } else if configured.iter().any(|c| *c == format!("{cns}/{name}")) {
            Some("configured")
        } else if cns == "backup-jobs" {
            Some("namespace backup-jobs")
        } else if name.contains("backup") {
            Some("name")
        } else if labels
            .get("app.kubernetes.io/component")
            .map(String::as_str)
            == Some("backup")
        {
            Some("label")
        } else {
            None
        };
        let Some(why) = why else { continue };
        let owned = owned_jobs(&jobs, &cns, &name);
        let mut v = assess(cj, &owned, now_s, &ctx.settings.cron_time_zone);
        v["namespace"] = json!(cns);
        v["name"] = json!(name);
        v["selectedBy"] = json!(why);
        v["lastJobs"] = json!(
            owned
                .iter()
                .take(3)
                .map(|j| job_json(j))
                .collect::<Vec<_>>()
        );
        if let Some(last) = owned.first()
            && job_outcome(last).0 == "failed"
        {
            let job = last.metadata.name.clone().unwrap_or_default();
            match failure_excerpt(c, &cns, &job).await {
                Ok(log) => v["failureLog"] = json!(log),
                Err(e) => v["failureLogError"] = json!(format!("{e} ({})", e.hint())),
            }
        }
        rows.push(v);
    }
    rows.sort_by(|a, b| {
        let rank = |v: &Value| match v["verdict"].as_str() {
            Some("overdue") => 0,
            Some("failing") => 1,
            Some("missed schedule") => 2,
            Some("suspended") => 3,
            _ => 4,
        };
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a["namespace"].as_str().cmp(&b["namespace"].as_str()))
            .then_with(|| a["name"].as_str().cmp(&b["name"].as_str()))
    });
    let count = |s: &str| rows.iter().filter(|r| r["verdict"] == s).count();
    let verdict = if rows.is_empty() {
        "no backups found"
    } else if count("overdue") > 0 {
        "critical"
    } else if rows
        .iter()
        .all(|r| r["verdict"] == "ok" || r["verdict"] == "running")
    {
        "healthy"
    } else {
        "degraded"
    };
    let mut text = format!(
        "backups: {verdict} — {} CronJobs, {} overdue, {} failing\n",
        rows.len(),
        count("overdue"),
        count("failing")
    );
    for r in &rows {
        text.push_str(&format!(
            "{:<9} {}/{} [{} {}] last success {} ({} ago), next {}{}\n",
            r["verdict"].as_str().unwrap_or_default().to_uppercase(),
            r["namespace"].as_str().unwrap_or_default(),
            r["name"].as_str().unwrap_or_default(),
            r["schedule"].as_str().unwrap_or_default(),
            r["timeZone"].as_str().unwrap_or_default(),
            r["lastSuccessfulTime"].as_str().unwrap_or("never"),
            r["lastSuccessAge"].as_str().unwrap_or("-"),
            r["nextRun"].as_str().unwrap_or("-"),
            r["failureLog"]
                .as_str()
                .map(|l| format!("\n          {}", l.replace('\n', "\n          ")))
                .unwrap_or_default()
        ));
    }
    if rows.is_empty() {
        text.push_str("no CronJob matched; pass namespace or selector, or configure --backup-cronjob NS/NAME\n");
    }
    let structured = json!({"verdict": verdict, "summary": {"cronJobs": rows.len(), "overdue": count("overdue"),
        "failing": count("failing"), "suspended": count("suspended"), "missedSchedule": count("missed schedule")},
        "backups": rows, "now": rfc3339(now_s)});
    Ok(ToolOutput { structured, text })
}

pub(crate) fn container_json(c: &Container) -> Value {
    let env: Vec<Value> = c
        .env
        .iter()
        .flatten()
        .map(|e| {
            let value = if let Some(from) = &e.value_from {
                if let Some(s) = &from.secret_key_ref {
                    format!("from Secret {} key {}", s.name, s.key)
                } else if let Some(m) = &from.config_map_key_ref {
                    format!("from ConfigMap {} key {}", m.name, m.key)
                } else if let Some(f) = &from.field_ref {
                    format!("from field {}", f.field_path)
                } else {
                    "from a resource".into()
                }
            } else if secret_name(&e.name) {
                "[REDACTED]".into()
            } else {
                redact(e.value.as_deref().unwrap_or_default()).text
            };
            json!({"name": e.name, "value": value})
        })
        .collect();
    let env_from: Vec<String> = c
        .env_from
        .iter()
        .flatten()
        .map(|e| match (&e.secret_ref, &e.config_map_ref) {
            (Some(s), _) => format!("Secret {}", s.name),
            (_, Some(m)) => format!("ConfigMap {}", m.name),
            _ => "unknown".into(),
        })
        .collect();
    json!({"name": c.name, "image": c.image,
        "command": c.command.as_ref().map(|a| a.iter().map(|x| redact(x).text).collect::<Vec<_>>()), "args": c.args.as_ref().map(|a| a.iter().map(|x| redact(x).text).collect::<Vec<_>>()),
        "env": env, "envFrom": env_from,
        "volumeMounts": c.volume_mounts.iter().flatten().map(|m| json!({"name": m.name, "mountPath": m.mount_path, "readOnly": m.read_only.unwrap_or(false)})).collect::<Vec<_>>(),
        "resources": serde_json::to_value(&c.resources).unwrap_or(Value::Null)})
}

async fn get_cronjob_details(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["namespace", "cronjob"])?;
    let ns = a.name("namespace")?;
    let name = a.name("cronjob")?;
    let c = cluster(&ctx)?;
    let now_s = now(ctx.settings.now);
    let api: Api<CronJob> = Api::namespaced(c.client.clone(), &ns);
    let jobs_api: Api<Job> = Api::namespaced(c.client.clone(), &ns);
    let all = ListParams::default();
    let (cj, jobs) = tokio::join!(
        c.get_opt(&api, &name, Request::new("get", "cronjobs", Some(&ns))),
        c.list(&jobs_api, &all, Request::new("list", "jobs", Some(&ns)))
    );
    let cj = cj.map_err(api_error)?;
    let Some(cj) = cj else {
        let names: Vec<String> = c
            .list(
                &api,
                &ListParams::default(),
                Request::new("list", "cronjobs", Some(&ns)),
            )
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
    let owned = owned_jobs(&jobs, &ns, &name);
    let mut schedule = assess(&cj, &owned, now_s, &ctx.settings.cron_time_zone);
    let verdict = schedule["verdict"].clone();
    let spec = cj.spec.clone().unwrap_or_default();
    let job_spec = spec.job_template.spec.clone().unwrap_or_default();
    let pod_spec = job_spec.template.spec.clone().unwrap_or_default();
    let policies = json!({"concurrencyPolicy": spec.concurrency_policy.clone().unwrap_or_else(|| "Allow".into()),
        "suspend": spec.suspend.unwrap_or(false), "successfulJobsHistoryLimit": spec.successful_jobs_history_limit.unwrap_or(3),
        "failedJobsHistoryLimit": spec.failed_jobs_history_limit.unwrap_or(1), "startingDeadlineSeconds": spec.starting_deadline_seconds,
        "backoffLimit": job_spec.backoff_limit.unwrap_or(6), "activeDeadlineSeconds": job_spec.active_deadline_seconds,
        "ttlSecondsAfterFinished": job_spec.ttl_seconds_after_finished, "restartPolicy": pod_spec.restart_policy});
    let volumes: Vec<Value> = pod_spec
        .volumes
        .iter()
        .flatten()
        .map(|v| {
            let (kind, source) = if let Some(s) = &v.secret {
                ("secret", s.secret_name.clone().unwrap_or_default())
            } else if let Some(p) = &v.persistent_volume_claim {
                ("persistentVolumeClaim", p.claim_name.clone())
            } else if let Some(m) = &v.config_map {
                ("configMap", m.name.clone())
            } else if let Some(h) = &v.host_path {
                ("hostPath", h.path.clone())
            } else if let Some(n) = &v.nfs {
                ("nfs", format!("{}:{}", n.server, n.path))
            } else if v.empty_dir.is_some() {
                ("emptyDir", String::new())
            } else {
                ("other", String::new())
            };
            json!({"name": v.name, "type": kind, "source": source})
        })
        .collect();
    let containers: Vec<Value> = pod_spec.containers.iter().map(container_json).collect();
    let history: Vec<Value> = owned.iter().map(|j| job_json(j)).collect();
    if let Some(obj) = schedule.as_object_mut() {
        obj.remove("verdict");
    }
    let mut text = format!(
        "CronJob {ns}/{name}: {} — schedule {:?} in {}{}, next {}\n",
        verdict.as_str().unwrap_or_default(),
        spec.schedule,
        schedule["timeZone"].as_str().unwrap_or_default(),
        if schedule["timeZoneAssumed"] == true {
            " (assumed)"
        } else {
            ""
        },
        schedule["nextRun"].as_str().unwrap_or("-")
    );
    for c in &containers {
        text.push_str(&format!(
            "container {} {}\n",
            c["name"].as_str().unwrap_or_default(),
            c["image"].as_str().unwrap_or_default()
        ));
    }
    for j in &history {
        text.push_str(&format!(
            "job {} {} started {} took {}\n",
            j["name"].as_str().unwrap_or_default(),
            j["result"].as_str().unwrap_or_default(),
            j["started"].as_str().unwrap_or("-"),
            j["duration"].as_str().unwrap_or("-")
        ));
    }
    let structured = json!({"namespace": ns, "name": name, "verdict": verdict, "schedule": schedule, "policies": policies,
        "labels": cj.metadata.labels, "nodeSelector": pod_spec.node_selector, "containers": containers, "volumes": volumes,
        "jobs": history, "now": rfc3339(now_s)});
    Ok(ToolOutput { structured, text })
}
