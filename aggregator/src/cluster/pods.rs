//! Pod health, the way an operator reads it: a pod can be `Running` and
//! crash-looping; a `Succeeded` Job pod is healthy, not "not ready"; Pending
//! is a problem only after a while. Pure classification plus one list call.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::{Cluster, Error};

/// How long a pod may be Pending before it is a problem.
pub const PENDING_GRACE_SECS: i64 = 5 * 60;
/// Restarts newer than this count as recent.
pub const RECENT_RESTART_SECS: i64 = 60 * 60;

/// What is wrong with a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodProblem {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Node.
    pub node: String,
    /// CrashLoopBackOff, ImagePullBackOff, ErrImagePull, Pending, NotReady,
    /// RecentRestarts, Failed, JobFailed.
    pub problem: String,
    /// Phase as the API reports it.
    pub phase: String,
    /// Restarts summed over every container (not just the first).
    pub restarts: i32,
    /// Container and reason/message that explain it.
    pub detail: String,
    /// "critical" or "warning".
    pub severity: &'static str,
}

fn owner_kind(pod: &Pod) -> Option<String> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.kind.clone())
}

/// Classifies one pod at `now` (Unix seconds); `None` when it is healthy
/// (including a completed Job pod).
pub fn classify(pod: &Pod, now: i64) -> Option<PodProblem> {
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_else(|| "Unknown".into());
    let job_owned = owner_kind(pod).as_deref() == Some("Job");
    let containers = status.container_statuses.clone().unwrap_or_default();
    let restarts: i32 = containers.iter().map(|c| c.restart_count).sum();
    let mut problem = PodProblem {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        node: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        problem: String::new(),
        phase: phase.clone(),
        restarts,
        detail: String::new(),
        severity: "critical",
    };
    if phase == "Succeeded" {
        return None;
    }
    if phase == "Failed" {
        problem.problem = if job_owned {
            "JobFailed".into()
        } else {
            "Failed".into()
        };
        let exited = status.container_statuses.iter().flatten().find_map(|c| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            (t.exit_code != 0).then(|| {
                format!(
                    "container {} exited {} ({})",
                    c.name,
                    t.exit_code,
                    t.reason.clone().unwrap_or_default()
                )
            })
        });
        problem.detail = status
            .message
            .clone()
            .or(status.reason.clone())
            .or(exited)
            .unwrap_or_default();
        problem.severity = if job_owned { "warning" } else { "critical" };
        return Some(problem);
    }
    // A waiting reason on any container beats the phase.
    for c in &containers {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.clone().unwrap_or_default();
            if matches!(
                reason.as_str(),
                "CrashLoopBackOff"
                    | "ImagePullBackOff"
                    | "ErrImagePull"
                    | "CreateContainerConfigError"
                    | "InvalidImageName"
            ) {
                let last = c
                    .last_state
                    .as_ref()
                    .and_then(|l| l.terminated.as_ref())
                    .map(|t| {
                        format!(
                            "; last exit {} ({})",
                            t.exit_code,
                            t.reason.clone().unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                problem.problem = reason.clone();
                problem.detail = format!(
                    "container {}: {}{last}",
                    c.name,
                    w.message.clone().unwrap_or(reason)
                );
                return Some(problem);
            }
        }
    }
    if phase == "Pending" {
        let created = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or(now);
        if now - created < PENDING_GRACE_SECS {
            return None;
        }
        problem.problem = "Pending".into();
        problem.detail = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .and_then(|c| c.message.clone())
            .unwrap_or_else(|| format!("pending for {} min", (now - created) / 60));
        return Some(problem);
    }
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if phase == "Running" && !ready {
        let not_ready: Vec<String> = containers
            .iter()
            .filter(|c| !c.ready)
            .map(|c| c.name.clone())
            .collect();
        problem.problem = "NotReady".into();
        problem.detail = format!(
            "Running but not Ready (containers not ready: {})",
            not_ready.join(", ")
        );
        return Some(problem);
    }
    let recent = containers.iter().find_map(|c| {
        let t = c.last_state.as_ref()?.terminated.as_ref()?;
        let finished = t.finished_at.as_ref().map(|f| f.0.as_second())?;
        (now - finished < RECENT_RESTART_SECS).then(|| {
            (
                c.name.clone(),
                t.exit_code,
                t.reason.clone().unwrap_or_default(),
            )
        })
    });
    if let Some((name, code, reason)) = recent {
        problem.problem = "RecentRestarts".into();
        problem.severity = "warning";
        problem.detail = format!(
            "container {name} restarted within the last hour (exit {code}, {reason}); {restarts} restarts in total"
        );
        return Some(problem);
    }
    None
}

/// Lists pods (all namespaces or one) and classifies them (one request).
pub async fn problems(
    cluster: &Cluster,
    namespace: Option<&str>,
    now: i64,
) -> Result<(usize, Vec<PodProblem>), Error> {
    let api: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(cluster.client.clone(), ns),
        None => Api::all(cluster.client.clone()),
    };
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::from_kube(e, "list", "pods", namespace))?;
    let mut out: Vec<PodProblem> = list.items.iter().filter_map(|p| classify(p, now)).collect();
    out.sort_by(|a, b| {
        (a.severity != "critical", &a.namespace, &a.name).cmp(&(
            b.severity != "critical",
            &b.namespace,
            &b.name,
        ))
    });
    Ok((list.items.len(), out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_787_206_020; // 2026-08-20T06:07:00Z

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn crashloop_while_running_is_a_problem() {
        let p = pod(json!({
            "metadata": {"name": "jellyfin-7c9d-x", "namespace": "jellyfin"},
            "spec": {"nodeName": "pi-k3s", "containers": [{"name": "jellyfin"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "jellyfin", "ready": false, "restartCount": 14, "image": "", "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}},
                    "lastState": {"terminated": {"exitCode": 143, "reason": "Error", "finishedAt": "2026-08-20T06:04:00Z"}}}]}
        }));
        let problem =
            classify(&p, NOW).expect("a crash-looping pod is a problem even while Running");
        assert_eq!(problem.problem, "CrashLoopBackOff");
        assert_eq!(problem.restarts, 14);
        assert!(problem.detail.contains("last exit 143"));
    }

    #[test]
    fn completed_job_pod_is_healthy_and_failed_job_pod_is_a_job_failure() {
        let mk = |phase: &str| {
            pod(json!({
                "metadata": {"name": "pihole-brainrot-block-1-abcde", "namespace": "pihole",
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "pihole-brainrot-block-1", "uid": "u", "controller": true}]},
                "spec": {"containers": [{"name": "toggle"}]},
                "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"}]}
            }))
        };
        assert_eq!(classify(&mk("Succeeded"), NOW), None);
        let failed = classify(&mk("Failed"), NOW).unwrap();
        assert_eq!(
            (failed.problem.as_str(), failed.severity),
            ("JobFailed", "warning")
        );
    }

    #[test]
    fn pending_only_after_grace_and_restarts_summed() {
        let pending = |created: &str| {
            pod(
                json!({"metadata": {"name": "p", "namespace": "n", "creationTimestamp": created},
                "spec": {"containers": [{"name": "c"}]},
                "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "message": "0/4 nodes are available"}]}}),
            )
        };
        assert_eq!(classify(&pending("2026-08-20T06:05:00Z"), NOW), None);
        assert!(
            classify(&pending("2026-08-20T05:00:00Z"), NOW)
                .unwrap()
                .detail
                .contains("0/4 nodes")
        );
        let restarting = pod(
            json!({"metadata": {"name": "r", "namespace": "n"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 1, "image": "", "imageID": ""},
                {"name": "b", "ready": true, "restartCount": 3, "image": "", "imageID": "",
                 "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-08-20T05:50:00Z"}}}]}}),
        );
        let p = classify(&restarting, NOW).unwrap();
        assert_eq!(
            (p.problem.as_str(), p.restarts, p.severity),
            ("RecentRestarts", 4, "warning")
        );
    }
}
