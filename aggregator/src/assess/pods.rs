//! Pod health, the way an operator reads it: a pod can be `Running` and
//! crash-looping (in an init container too); a `Succeeded` Job pod is
//! healthy, not "not ready"; Pending is a problem only after a while; phase
//! `Unknown` means its node stopped reporting. Pods the kubelet left `Failed`
//! (evicted under memory pressure, stopped by a node shutdown — k3s keeps
//! them) are history, not a live failure, once a replacement from the same
//! owner is Running and Ready. Pure: `cluster::pods::list` lists them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use schemars::JsonSchema;
use serde::Serialize;

/// How long a pod may be Pending before it is a problem.
pub const PENDING_GRACE_SECS: i64 = 5 * 60;
/// Restarts newer than this count as recent.
pub const RECENT_RESTART_SECS: i64 = 60 * 60;

/// `status.reason` of pods the kubelet stopped or refused on its own:
/// eviction, graceful node shutdown, admission failures after a reboot.
const LEFT_BY_NODE: &[&str] = &[
    "Evicted",
    "Terminated",
    "NodeShutdown",
    "Shutdown",
    "NodeAffinity",
    "OutOfcpu",
    "OutOfmemory",
    "OutOfpods",
    "UnexpectedAdmissionError",
];

/// Waiting reasons that mean a container cannot start.
const STUCK_WAITING: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
    "RunContainerError",
];

/// What is wrong with a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodProblem {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Node.
    pub node: String,
    /// CrashLoopBackOff, ImagePullBackOff, ErrImagePull, … (prefixed `Init:`
    /// for an init container), Pending, NotReady, RecentRestarts, Unknown,
    /// Failed, Evicted, NodeShutdown, JobFailed.
    pub problem: String,
    /// Phase as the API reports it.
    pub phase: String,
    /// Restarts summed over every container, init containers included.
    pub restarts: i32,
    /// Container and reason/message that explain it.
    pub detail: String,
    /// "critical" or "warning".
    pub severity: &'static str,
    /// The controlling owner, as `Kind/name` (e.g. `Job/pvc-backup-29780760`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A pod left Failed by its node whose owner has a healthy replacement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodHistory {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Node it ran on.
    pub node: String,
    /// Evicted, NodeShutdown, …
    pub reason: String,
    /// The kubelet's message.
    pub detail: String,
    /// The Running and Ready pod that replaced it.
    pub replaced_by: String,
}

/// The pods of a namespace (or the cluster), classified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodReport {
    /// Pods listed.
    pub total: usize,
    /// Live problems, critical first.
    pub problems: Vec<PodProblem>,
    /// Evicted / shut-down pods already replaced (k3s keeps them until
    /// someone deletes them): history, not a live failure.
    pub history: Vec<PodHistory>,
}

fn controller(pod: &Pod) -> Option<(String, String)> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| (o.kind.clone(), o.name.clone()))
}

fn waiting_problem(c: &ContainerStatus, init: bool) -> Option<(String, String)> {
    let w = c.state.as_ref()?.waiting.as_ref()?;
    let reason = w.reason.clone().unwrap_or_default();
    if !STUCK_WAITING.contains(&reason.as_str()) {
        return None;
    }
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
    let which = if init { "init container" } else { "container" };
    Some((
        if init {
            format!("Init:{reason}")
        } else {
            reason.clone()
        },
        format!(
            "{which} {}: {}{last}",
            c.name,
            w.message.clone().unwrap_or(reason)
        ),
    ))
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// True when the kubelet left this pod Failed (eviction, node shutdown,
/// admission failure) rather than its containers failing.
pub fn left_by_node(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Failed")
        && status
            .and_then(|s| s.reason.as_deref())
            .is_some_and(|r| LEFT_BY_NODE.contains(&r))
}

/// Classifies one pod at `now` (Unix seconds); `None` when it is healthy
/// (including a completed Job pod).
pub fn classify(pod: &Pod, now: i64) -> Option<PodProblem> {
    let status = pod.status.clone().unwrap_or_default();
    let phase = status
        .phase
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "Unknown".into());
    let owner = controller(pod);
    let job_owned = owner.as_ref().is_some_and(|(k, _)| k == "Job");
    let containers = status.container_statuses.clone().unwrap_or_default();
    let inits = status.init_container_statuses.clone().unwrap_or_default();
    let restarts: i32 = containers
        .iter()
        .chain(&inits)
        .map(|c| c.restart_count)
        .sum();
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
        owner: owner.as_ref().map(|(k, n)| format!("{k}/{n}")),
    };
    if phase == "Succeeded" {
        return None;
    }
    if phase == "Failed" {
        return Some(failed(pod, &status, &containers, job_owned, problem));
    }
    if phase == "Unknown" {
        problem.problem = "Unknown".into();
        problem.detail = format!(
            "phase Unknown: the kubelet on {} stopped reporting this pod (node unreachable or down?)",
            if problem.node.is_empty() {
                "its node"
            } else {
                &problem.node
            }
        );
        return Some(problem);
    }
    // A waiting reason on any container (init containers first: they run
    // first) beats the phase.
    let stuck = inits
        .iter()
        .find_map(|c| waiting_problem(c, true))
        .or_else(|| containers.iter().find_map(|c| waiting_problem(c, false)));
    if let Some((reason, detail)) = stuck {
        problem.problem = reason;
        problem.detail = detail;
        return Some(problem);
    }
    if phase == "Pending" {
        let detail = pending(pod, &status, now)?;
        problem.problem = "Pending".into();
        problem.detail = detail;
        return Some(problem);
    }
    if phase == "Running" && !is_ready(pod) {
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
    let recent = recent_restart(containers.iter().chain(&inits), now);
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

/// A pod its phase says Failed: a Job's, evicted, left by a node that shut
/// down (both history, not live), or failed.
fn failed(
    pod: &Pod,
    status: &k8s_openapi::api::core::v1::PodStatus,
    containers: &[ContainerStatus],
    job_owned: bool,
    mut problem: PodProblem,
) -> PodProblem {
    let reason = status.reason.clone().unwrap_or_default();
    problem.problem = if job_owned {
        "JobFailed".into()
    } else if reason == "Evicted" {
        "Evicted".into()
    } else if left_by_node(pod) {
        "NodeShutdown".into()
    } else {
        "Failed".into()
    };
    let exited = containers.iter().find_map(|c| {
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
    problem.severity = if job_owned || left_by_node(pod) {
        "warning"
    } else {
        "critical"
    };
    problem
}

/// Why a pod is Pending, once past the grace period (`None` before).
fn pending(pod: &Pod, status: &k8s_openapi::api::core::v1::PodStatus, now: i64) -> Option<String> {
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(now);
    if now - created < PENDING_GRACE_SECS {
        return None;
    }
    Some(
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .and_then(|c| c.message.clone())
            .unwrap_or_else(|| format!("pending for {} min", (now - created) / 60)),
    )
}

/// A container that restarted within the last hour: (name, exit code,
/// reason).
fn recent_restart<'a>(
    containers: impl Iterator<Item = &'a ContainerStatus>,
    now: i64,
) -> Option<(String, i32, String)> {
    let mut containers = containers;
    containers.find_map(|c| {
        let t = c.last_state.as_ref()?.terminated.as_ref()?;
        let finished = t.finished_at.as_ref().map(|f| f.0.as_second())?;
        (now - finished < RECENT_RESTART_SECS).then(|| {
            (
                c.name.clone(),
                t.exit_code,
                t.reason.clone().unwrap_or_default(),
            )
        })
    })
}

/// Labels that differ between a pod and its replacement from the same
/// workload (revision hashes, StatefulSet ordinals).
const REVISION_LABELS: &[&str] = &[
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
];

/// Namespace, controller kind and labels without revision labels.
type Lineage = (String, String, BTreeMap<String, String>);

/// Who a pod belongs to, for finding its replacement: the controller's kind
/// and its labels without revision labels (a rollout changes the
/// ReplicaSet, not the Deployment's selector labels).
fn lineage(pod: &Pod) -> Option<Lineage> {
    let (kind, _) = controller(pod)?;
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
    labels.retain(|k, _| !REVISION_LABELS.contains(&k.as_str()));
    if labels.is_empty() {
        return None;
    }
    Some((
        pod.metadata.namespace.clone().unwrap_or_default(),
        kind,
        labels,
    ))
}

/// Classifies every pod; pods left Failed by their node whose owner has a
/// Running and Ready replacement become history.
pub fn assess(pods: &[Pod], now: i64) -> PodReport {
    let healthy: Vec<(&Pod, Option<Lineage>)> = pods
        .iter()
        .filter(|p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") && is_ready(p)
        })
        .map(|p| (p, lineage(p)))
        .collect();
    let mut report = PodReport {
        total: pods.len(),
        ..Default::default()
    };
    for pod in pods {
        let Some(problem) = classify(pod, now) else {
            continue;
        };
        if matches!(problem.problem.as_str(), "Evicted" | "NodeShutdown") {
            let mine = lineage(pod);
            let replacement = healthy.iter().find(|(p, l)| {
                let same_owner = controller(p) == controller(pod) && controller(pod).is_some();
                same_owner || (mine.is_some() && *l == mine)
            });
            if let Some((r, _)) = replacement {
                report.history.push(PodHistory {
                    namespace: problem.namespace,
                    name: problem.name,
                    node: problem.node,
                    reason: problem.problem,
                    detail: problem.detail,
                    replaced_by: r.metadata.name.clone().unwrap_or_default(),
                });
                continue;
            }
        }
        report.problems.push(problem);
    }
    report.problems.sort_by(|a, b| {
        (a.severity != "critical", &a.namespace, &a.name).cmp(&(
            b.severity != "critical",
            &b.namespace,
            &b.name,
        ))
    });
    report
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

    fn rs_pod(name: &str, hash: &str, status: serde_json::Value) -> Pod {
        pod(json!({
            "metadata": {"name": name, "namespace": "media", "labels": {"app": "sonarr", "pod-template-hash": hash},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("sonarr-{hash}"), "uid": hash, "controller": true}]},
            "spec": {"nodeName": "pi3-worker-2", "containers": [{"name": "sonarr"}]},
            "status": status
        }))
    }

    fn evicted() -> serde_json::Value {
        json!({"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 91Mi."})
    }

    fn running() -> serde_json::Value {
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "sonarr", "ready": true, "restartCount": 0, "image": "", "imageID": ""}]})
    }

    #[test]
    fn evicted_pod_with_a_healthy_replacement_is_history() {
        // Evicted under the Pi 3's memory pressure; the Deployment has since
        // rolled out a new ReplicaSet whose pod is Running and Ready.
        let pods = [
            rs_pod("sonarr-5d8f7c9b6d-a1b2c", "5d8f7c9b6d", evicted()),
            rs_pod("sonarr-7f9c8d6b5a-x9y8z", "7f9c8d6b5a", running()),
        ];
        let report = assess(&pods, NOW);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.history.len(), 1);
        assert_eq!(report.history[0].reason, "Evicted");
        assert_eq!(report.history[0].replaced_by, "sonarr-7f9c8d6b5a-x9y8z");
        // Without a healthy replacement it is a live problem (a warning).
        let alone = assess(&pods[..1], NOW);
        assert_eq!(alone.problems.len(), 1);
        assert_eq!(
            (
                alone.problems[0].problem.as_str(),
                alone.problems[0].severity
            ),
            ("Evicted", "warning")
        );
    }

    #[test]
    fn node_shutdown_pods_are_left_by_the_node() {
        let shut = rs_pod(
            "sonarr-5d8f7c9b6d-a1b2c",
            "5d8f7c9b6d",
            json!({"phase": "Failed", "reason": "Terminated", "message": "Pod was terminated in response to imminent node shutdown."}),
        );
        assert!(left_by_node(&shut));
        let p = classify(&shut, NOW).expect("a shut-down pod is reported");
        assert_eq!(p.problem, "NodeShutdown");
        let report = assess(
            &[
                shut,
                rs_pod("sonarr-5d8f7c9b6d-q4w5e", "5d8f7c9b6d", running()),
            ],
            NOW,
        );
        assert_eq!(report.history.len(), 1, "{report:?}");
        // A pod whose container failed is not "left by the node".
        let crashed = rs_pod("x", "h", json!({"phase": "Failed"}));
        assert!(!left_by_node(&crashed));
        assert_eq!(
            classify(&crashed, NOW).map(|p| p.severity),
            Some("critical")
        );
    }

    #[test]
    fn init_container_crash_loop_and_unknown_phase_are_problems() {
        let init = pod(json!({
            "metadata": {"name": "immich-server-0", "namespace": "immich"},
            "spec": {"nodeName": "pi5-worker-1", "initContainers": [{"name": "wait-db"}], "containers": [{"name": "server"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "Initialized", "status": "False"}],
                "initContainerStatuses": [{"name": "wait-db", "ready": false, "restartCount": 9, "image": "", "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
                "containerStatuses": [{"name": "server", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                    "state": {"waiting": {"reason": "PodInitializing"}}}]}
        }));
        let p = classify(&init, NOW).expect("an init container crash loop is a problem");
        assert_eq!(p.problem, "Init:CrashLoopBackOff");
        assert!(p.detail.contains("init container wait-db"), "{}", p.detail);
        assert_eq!(p.restarts, 9);
        let unknown = pod(
            json!({"metadata": {"name": "u", "namespace": "n"}, "spec": {"nodeName": "pi3-worker-2", "containers": [{"name": "c"}]},
            "status": {"phase": "Unknown"}}),
        );
        let p = classify(&unknown, NOW).expect("phase Unknown is never healthy");
        assert_eq!((p.problem.as_str(), p.severity), ("Unknown", "critical"));
        assert!(p.detail.contains("pi3-worker-2"));
    }
}
