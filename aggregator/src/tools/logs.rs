//! `get_pod_logs` (one pod, by exact name or unique prefix) and
//! `get_job_logs` (every pod of a Job). Logs are read with a byte limit,
//! redacted before `grep` sees them, filtered, then cut to the newest
//! `maxBytes`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::args::{Int, Name, Pattern, Range, Text, blank_as_none};
use super::kube::{api_error, cluster, error_code};
use super::{Call, ErrorCode, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};
use crate::cluster::{Cluster, Error as ClusterError, Request};
use crate::redact::{MARK, redact};

/// How many bytes of log to read for an answer of at most `max_bytes`:
/// room for `grep` to throw most lines away, bounded so one call never pulls
/// a huge log into memory (`limitBytes`).
pub(crate) fn read_limit(max_bytes: usize) -> usize {
    (max_bytes * 8).clamp(256 * 1024, 8 * 1024 * 1024)
}

/// A log made safe to show: redacted first, then filtered, then capped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilteredLog {
    /// What is shown.
    pub text: String,
    /// Lines read.
    pub lines: usize,
    /// Lines that matched `grep` (all of them without one).
    pub matched: usize,
    /// Cut to the newest `max_bytes`.
    pub truncated: bool,
    /// Secrets hidden in what is shown.
    pub redactions: usize,
}

/// Redacts `raw` as a whole (a PEM key spans lines), then keeps the lines
/// matching `grep`, then the newest `max_bytes`. Matching only ever sees
/// redacted text, so no pattern can probe a secret's characters.
pub(crate) fn filter_log(raw: &str, grep: Option<&Regex>, max_bytes: usize) -> FilteredLog {
    let redacted = redact(raw);
    let lines = raw.lines().count();
    let kept: String = match grep {
        Some(re) => redacted
            .text
            .lines()
            .filter(|l| re.is_match(l))
            .map(|l| format!("{l}\n"))
            .collect(),
        None => redacted.text.clone(),
    };
    let matched = kept.lines().count();
    let redactions = if grep.is_some() {
        kept.matches(MARK).count()
    } else {
        redacted.count
    };
    let (text, truncated) = tail_bytes(&kept, max_bytes);
    FilteredLog {
        text: text.to_string(),
        lines,
        matched,
        truncated,
        redactions,
    }
}

/// Keeps the newest `max` bytes of `text`, cut at a line start.
pub(crate) fn tail_bytes(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = text[start..]
        .find('\n')
        .map(|i| start + i + 1)
        .unwrap_or(start);
    (&text[cut..], true)
}

// ----------------------------------------------------------- get_pod_logs

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodLogArgs {
    /// Namespace.
    pub namespace: Name,
    /// Pod name, or a unique prefix (e.g. the Deployment's name).
    pub pod: Text,
    /// Container (default: the first; the others are listed).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub container: Option<Text>,
    /// Lines from the end.
    #[serde(default)]
    pub lines: Int<1, 5000, 100>,
    /// Only lines newer than this.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub since_seconds: Option<Range<1, 2_592_000>>,
    /// The crashed instance's log.
    #[serde(default)]
    pub previous: bool,
    /// Regex; only matching lines (matched after redaction).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub grep: Option<Pattern>,
    /// Cap on the answer; the newest bytes are kept.
    #[serde(default)]
    pub max_bytes: Int<1024, 1_048_576, 65_536>,
}

/// One pod's log.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodLog {
    /// Namespace.
    pub namespace: String,
    /// Pod matched.
    pub pod: String,
    /// Container read.
    pub container: String,
    /// The pod's other containers.
    pub other_containers: Vec<String>,
    /// The previous (crashed) instance.
    pub previous: bool,
    /// Lines read.
    pub lines: usize,
    /// Lines that matched grep.
    pub matched_lines: usize,
    /// Cut to maxBytes, or the read hit its byte limit.
    pub truncated: bool,
    /// Bytes read at most.
    pub read_limit_bytes: usize,
    /// The read hit readLimitBytes (the newest lines may be missing).
    pub read_cut: bool,
    /// Secret values hidden.
    pub redactions: usize,
    /// The log.
    pub log: String,
}

/// `get_pod_logs`.
pub fn pod_logs_tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_pod_logs",
            title: "Pod logs",
            description: "A pod's log, secrets redacted.",
            toolset: Toolset::Cluster,
            hints: Hints::READ,
        },
        run_pod_logs,
    )
}

/// The pod named `wanted`, or the only one whose name starts with it.
fn find_pod<'a>(pods: &'a [Pod], wanted: &str, namespace: &str) -> Result<&'a Pod, ToolError> {
    let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
    if let Some(p) = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(wanted))
    {
        return Ok(p);
    }
    let matches: Vec<&Pod> = pods
        .iter()
        .filter(|p| name(p).starts_with(wanted))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(ToolError::new(
            ErrorCode::NotFound,
            format!("no pod named or starting with {wanted:?} in namespace {namespace}"),
            format!(
                "pods there: {}",
                pods.iter()
                    .map(name)
                    .take(20)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        many => Err(ToolError::new(
            ErrorCode::InvalidArgument,
            format!(
                "argument \"pod\": {wanted:?} matches {} pods in {namespace}",
                many.len()
            ),
            format!(
                "give one of: {}",
                many.iter().map(|p| name(p)).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

async fn run_pod_logs(
    ctx: Arc<ToolContext>,
    a: PodLogArgs,
    _call: Call,
) -> Result<PodLog, ToolError> {
    let c = cluster(&ctx)?;
    let namespace = a.namespace.as_str();
    let max_bytes = a.max_bytes.get() as usize;
    let api: Api<Pod> = Api::namespaced(c.client.clone(), namespace);
    let pods = c
        .list(
            &api,
            &ListParams::default(),
            Request::new("list", "pods", Some(namespace)),
        )
        .await
        .map_err(api_error)?;
    if pods.is_empty() {
        super::kube::require_namespace(c, namespace).await?;
    }
    let pod = find_pod(&pods, &a.pod, namespace)?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let containers: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
        .collect();
    let chosen = match a.container {
        Some(cn) if containers.iter().any(|c| c == cn.as_str()) => cn.into_string(),
        Some(cn) => {
            return Err(ToolError::invalid(
                "container",
                format!(
                    "pod {name} has no container {:?}; it has {}",
                    cn.as_str(),
                    containers.join(", ")
                ),
            ));
        }
        None => containers.first().cloned().unwrap_or_default(),
    };
    let read_limit = read_limit(max_bytes);
    let params = LogParams {
        container: Some(chosen.clone()),
        tail_lines: Some(a.lines.get()),
        since_seconds: a.since_seconds.map(|s| s.get()),
        previous: a.previous,
        limit_bytes: Some(read_limit as i64),
        ..Default::default()
    };
    let raw = c
        .logs(
            &api,
            &name,
            &params,
            Request::new("get", "pods/log", Some(namespace)),
        )
        .await
        .map_err(|e| {
            let mut err = api_error(e);
            if a.previous && err.message.contains("previous terminated container") {
                err.hint = "the container has not restarted: call again without previous".into();
            }
            err
        })?;
    let read_cut = raw.len() >= read_limit;
    let log = filter_log(&raw, a.grep.as_ref().map(|p| &p.0), max_bytes);
    Ok(PodLog {
        namespace: namespace.to_string(),
        pod: name,
        other_containers: containers
            .iter()
            .filter(|c| **c != chosen)
            .cloned()
            .collect(),
        container: chosen,
        previous: a.previous,
        lines: log.lines,
        matched_lines: log.matched,
        truncated: log.truncated || read_cut,
        read_limit_bytes: read_limit,
        read_cut,
        redactions: log.redactions,
        log: log.text,
    })
}

impl Render for PodLog {
    fn text(&self) -> String {
        let mut head = format!(
            "{}/{} [{}]{} — {} of {} lines",
            self.namespace,
            self.pod,
            self.container,
            if self.previous { " (previous)" } else { "" },
            self.matched_lines,
            self.lines
        );
        if self.truncated && !self.read_cut {
            head.push_str(", truncated to the newest bytes");
        }
        if self.read_cut {
            head.push_str(&format!(
                ", read cut at {} bytes (lower `lines` or use sinceSeconds for the newest lines)",
                self.read_limit_bytes
            ));
        }
        if self.redactions > 0 {
            head.push_str(&format!(", {} secret value(s) redacted", self.redactions));
        }
        if !self.other_containers.is_empty() {
            head.push_str(&format!(
                "; other containers: {}",
                self.other_containers.join(", ")
            ));
        }
        format!("{head}\n{}", self.log)
    }
}

// ----------------------------------------------------------- get_job_logs

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobLogArgs {
    /// Namespace.
    pub namespace: Name,
    /// Job name.
    pub job: Name,
    /// Lines per log.
    #[serde(default)]
    pub lines: Int<1, 2000, 100>,
    /// Regex; only matching lines (matched after redaction).
    #[serde(default, deserialize_with = "blank_as_none")]
    pub grep: Option<Pattern>,
    /// Cap on all logs together; each keeps its newest bytes.
    #[serde(default)]
    pub max_bytes: Int<1024, 1_048_576, 65_536>,
}

/// Why a log could not be read.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LogError {
    /// Machine-readable cause.
    pub code: ErrorCode,
    /// What failed.
    pub message: String,
    /// What to do.
    pub hint: String,
}

/// One container's log of one pod of the Job.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobPodLog {
    /// Pod (each retry is its own pod).
    pub pod: String,
    /// Container.
    pub container: String,
    /// Pod phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Exit code of the container, when it has exited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The log, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Lines read.
    pub lines: usize,
    /// Lines that matched grep.
    pub matched_lines: usize,
    /// Cut to its share of maxBytes.
    pub truncated: bool,
    /// Why the log could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<LogError>,
}

/// Every pod's log of a Job.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobLogs {
    /// Namespace.
    pub namespace: String,
    /// Job.
    pub job: String,
    /// succeeded, failed, running or pending.
    pub result: String,
    /// One entry per container of every pod, oldest pod first.
    pub pods: Vec<JobPodLog>,
    /// Pods by phase.
    pub phases: BTreeMap<String, usize>,
    /// Some log was cut.
    pub truncated: bool,
    /// Secret values hidden.
    pub redactions: usize,
    /// Logs that could not be read.
    pub unread_logs: usize,
}

/// `get_job_logs`.
pub fn job_logs_tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_job_logs",
            title: "Job logs",
            description: "Every pod's log of a Job with exit codes, secrets redacted.",
            toolset: Toolset::Cluster,
            hints: Hints::READ,
        },
        run_job_logs,
    )
}

/// The pods of Job `job` in `ns`, oldest first: by the job-name label (the
/// short label for Jobs made before Kubernetes 1.27), kept only when the Job
/// owns them.
pub(crate) async fn job_pods(c: &Cluster, ns: &str, job: &str) -> Result<Vec<Pod>, ClusterError> {
    let api: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    let request = || Request::new("list", "pods", Some(ns));
    let mut pods = c
        .list(
            &api,
            &ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")),
            request(),
        )
        .await?;
    if pods.is_empty() {
        pods = c
            .list(
                &api,
                &ListParams::default().labels(&format!("job-name={job}")),
                request(),
            )
            .await?;
    }
    pods.retain(|p| {
        let owners = p.metadata.owner_references.as_deref().unwrap_or_default();
        owners.is_empty() || owners.iter().any(|o| o.kind == "Job" && o.name == job)
    });
    pods.sort_by_key(|p| {
        p.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or(0)
    });
    Ok(pods)
}

async fn run_job_logs(
    ctx: Arc<ToolContext>,
    a: JobLogArgs,
    _call: Call,
) -> Result<JobLogs, ToolError> {
    let c = cluster(&ctx)?;
    let (ns, job) = (a.namespace.as_str(), a.job.as_str());
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), ns);
    let found = c
        .get_opt(&jobs, job, Request::new("get", "jobs", Some(ns)))
        .await
        .map_err(api_error)?;
    let Some(found) = found else {
        super::kube::require_namespace(c, ns).await?;
        return Err(ToolError::new(
            ErrorCode::NotFound,
            format!("no Job {job:?} in namespace {ns}"),
            "get_cronjob_details lists a CronJob's retained Jobs; finished Jobs may have been cleaned up",
        ));
    };
    let pods = job_pods(c, ns, job).await.map_err(api_error)?;
    let api: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    // One log per container of every pod; the byte budget is shared.
    let logs: Vec<(&Pod, String)> = pods
        .iter()
        .flat_map(|p| {
            p.spec
                .iter()
                .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
                .map(move |c| (p, c))
        })
        .collect();
    let max_bytes = a.max_bytes.get() as usize;
    let share = (max_bytes / logs.len().max(1)).max(1);
    let grep = a.grep.as_ref().map(|p| &p.0);
    let reads = futures::future::join_all(logs.iter().map(|(p, container)| {
        let name = p.metadata.name.clone().unwrap_or_default();
        let params = LogParams {
            container: Some(container.clone()),
            tail_lines: Some(a.lines.get()),
            limit_bytes: Some(read_limit(share) as i64),
            ..Default::default()
        };
        let api = api.clone();
        async move {
            c.logs(
                &api,
                &name,
                &params,
                Request::new("get", "pods/log", Some(ns)),
            )
            .await
        }
    }))
    .await;
    let mut out = Vec::new();
    let (mut truncated, mut redactions, mut unread) = (false, 0, 0);
    for ((p, container), read) in logs.iter().zip(reads) {
        let st = p.status.clone().unwrap_or_default();
        let exit_code = st
            .container_statuses
            .iter()
            .flatten()
            .find(|c| &c.name == container)
            .and_then(|c| c.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code));
        let mut row = JobPodLog {
            pod: p.metadata.name.clone().unwrap_or_default(),
            container: container.clone(),
            phase: st.phase.clone(),
            exit_code,
            log: None,
            lines: 0,
            matched_lines: 0,
            truncated: false,
            error: None,
        };
        match read {
            Ok(raw) => {
                let log = filter_log(&raw, grep, share);
                redactions += log.redactions;
                truncated |= log.truncated;
                row.lines = log.lines;
                row.matched_lines = log.matched;
                row.truncated = log.truncated;
                row.log = Some(log.text);
            }
            // One unreadable log (a container still waiting, a pod already
            // gone) does not hide the others.
            Err(e) => {
                unread += 1;
                row.error = Some(LogError {
                    code: error_code(&e),
                    message: e.to_string(),
                    hint: e.hint(),
                });
            }
        }
        out.push(row);
    }
    let mut phases: BTreeMap<String, usize> = BTreeMap::new();
    for p in &pods {
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".into());
        *phases.entry(phase).or_default() += 1;
    }
    Ok(JobLogs {
        namespace: ns.to_string(),
        job: job.to_string(),
        result: super::label(&crate::assess::backups::job_run(&found).0.result),
        pods: out,
        phases,
        truncated,
        redactions,
        unread_logs: unread,
    })
}

impl Render for JobLogs {
    fn text(&self) -> String {
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|(p, n)| format!("{n} {p}"))
            .collect();
        let mut text = format!(
            "Job {}/{}: {} — {} pod log(s) ({}){}\n",
            self.namespace,
            self.job,
            self.result,
            self.pods.len(),
            phases.join(", "),
            if self.redactions > 0 {
                format!(", {} secret value(s) redacted", self.redactions)
            } else {
                String::new()
            }
        );
        for p in &self.pods {
            let head = format!(
                "--- {} [{}] ({}, exit {})",
                p.pod,
                p.container,
                p.phase.as_deref().unwrap_or("?"),
                p.exit_code
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "-".into())
            );
            match (&p.log, &p.error) {
                (Some(log), _) => text.push_str(&format!(
                    "{head}{}\n{log}",
                    if p.truncated { ", truncated" } else { "" }
                )),
                (None, Some(e)) => text.push_str(&format!(
                    "{head}: log not readable: {} ({})\n",
                    e.message, e.hint
                )),
                (None, None) => text.push_str(&format!("{head}\n")),
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grep_sees_only_redacted_text() {
        let raw = "boot\nPASSWORD=abc123 set\nready\n";
        // A prefix probe cannot tell what the secret starts with.
        for probe in ["PASSWORD=a", "PASSWORD=ab", "PASSWORD=x"] {
            let re = Regex::new(probe).unwrap_or_else(|e| panic!("{e}"));
            let log = filter_log(raw, Some(&re), 4096);
            assert_eq!(log.matched, 0, "{probe} matched: {log:?}");
        }
        let re = Regex::new("PASSWORD=").unwrap_or_else(|e| panic!("{e}"));
        let log = filter_log(raw, Some(&re), 4096);
        assert_eq!((log.matched, log.redactions), (1, 1));
        assert_eq!(log.text, "PASSWORD=[REDACTED] set\n");
        assert_eq!(log.lines, 3);
    }

    #[test]
    fn tail_keeps_whole_newest_lines() {
        let (t, cut) = tail_bytes("one\ntwo\nthree\n", 9);
        assert!(cut);
        assert_eq!(t, "three\n");
        assert_eq!(tail_bytes("short", 100), ("short", false));
    }
}
