//! The health rules, table-driven.

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
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "backup-jobs", "ownerReferences": owners}}),
    )
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

// Table-driven: each case changes one part of an otherwise healthy
// read and names the issues (severity, kind, object) and the verdict
// that must follow.

fn node(name: &str, ready: bool, pressure: &[&str]) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        ready: Some(ready),
        ready_reason: if ready {
            String::new()
        } else {
            "KubeletNotReady: PLEG is not healthy".into()
        },
        roles: Vec::new(),
        kind: "worker",
        arch: "arm64".into(),
        kubelet_version: "v1.33.4+k3s1".into(),
        os_image: "Debian GNU/Linux 12 (bookworm)".into(),
        internal_ip: "10.0.0.2".into(),
        pressure: pressure.iter().map(|p| p.to_string()).collect(),
        taints: Vec::new(),
        unschedulable: false,
    }
}

fn agent(node: &str, info: Option<(u64, u64)>) -> NodeResult<NodeInfo> {
    NodeResult {
        node: node.into(),
        outcome: if info.is_some() {
            crate::agents::NodeOutcome::Ok
        } else {
            crate::agents::NodeOutcome::Timeout
        },
        value: info.map(|(count, max)| NodeInfo {
            conntrack_count: count,
            conntrack_max: max,
            ..NodeInfo::default()
        }),
        reason: if info.is_some() {
            String::new()
        } else {
            "no answer within 2000 ms".into()
        },
        code: None,
        invalid_field: None,
        elapsed: Duration::ZERO,
    }
}

fn no_flux() -> FluxRead {
    FluxRead {
        rows: Vec::new(),
        versions: BTreeMap::new(),
        failed: Vec::new(),
    }
}

fn healthy() -> Reads {
    Reads {
        namespace: None,
        now: 1_780_000_000,
        nodes: Ok(vec![
            node("pi5-cp", true, &[]),
            node("pi3-worker-2", true, &[]),
        ]),
        agent_nodes: ["pi5-cp".to_string(), "pi3-worker-2".to_string()].into(),
        agents: Ok(vec![
            agent("pi5-cp", Some((100, 65536))),
            agent("pi3-worker-2", Some((10, 16384))),
        ]),
        pods: Ok((
            PodReport {
                total: 40,
                problems: Vec::new(),
                history: Vec::new(),
            },
            Vec::new(),
        )),
        empty_namespace: None,
        backup_namespaces: ["backup-jobs".to_string()].into(),
        backup_cronjobs: ["media/db-dump".to_string()].into(),
        flux: Ok(FluxParts {
            status: super::super::flux_report::status(&no_flux(), true, 1_780_000_000),
            read: no_flux(),
        }),
        events: Ok(Vec::new()),
        certificates: SubCheck::Failed(failed(ErrorCode::NotConfigured)),
        secrets: SubCheck::Failed(failed(ErrorCode::NotConfigured)),
        tailscale: None,
    }
}

fn failed(code: ErrorCode) -> FailedPart {
    FailedPart {
        part: "x".into(),
        code,
        message: "the API server does not serve the group".into(),
        hint: "install it".into(),
    }
}

type Case = (
    &'static str,
    fn(&mut Reads),
    HealthVerdict,
    &'static [(Severity, &'static str, &'static str)],
);

const CASES: &[Case] = &[
    ("all well", |_| {}, HealthVerdict::Healthy, &[]),
    (
        "a node not Ready is critical",
        |r| {
            r.nodes = Ok(vec![
                node("pi5-cp", true, &[]),
                node("pi3-worker-2", false, &[]),
            ])
        },
        HealthVerdict::Critical,
        &[(Severity::Critical, "NodeNotReady", "node/pi3-worker-2")],
    ),
    (
        "memory pressure is a warning",
        |r| {
            r.nodes = Ok(vec![
                node("pi5-cp", true, &[]),
                node("pi3-worker-2", true, &["MemoryPressure"]),
            ])
        },
        HealthVerdict::Degraded,
        &[(Severity::Warning, "NodePressure", "node/pi3-worker-2")],
    ),
    (
        "a node without an agent",
        |r| {
            r.agent_nodes.remove("pi3-worker-2");
        },
        HealthVerdict::Degraded,
        &[(Severity::Warning, "NoAgent", "node/pi3-worker-2")],
    ),
    (
        "an agent that does not answer",
        |r| {
            r.agents = Ok(vec![
                agent("pi5-cp", Some((1, 10))),
                agent("pi3-worker-2", None),
            ])
        },
        HealthVerdict::Degraded,
        &[(Severity::Warning, "AgentNotAnswering", "node/pi3-worker-2")],
    ),
    (
        "conntrack at 80 % of its maximum, not at 79 %",
        |r| {
            r.agents = Ok(vec![
                agent("pi5-cp", Some((80, 100))),
                agent("pi3-worker-2", Some((79, 100))),
            ])
        },
        HealthVerdict::Degraded,
        &[(Severity::Warning, "ConntrackNearlyFull", "node/pi5-cp")],
    ),
    (
        "agents that did not answer in time are a failed check",
        |r| r.agents = Err(timed_out("agents", Duration::from_secs(8))),
        HealthVerdict::Degraded,
        &[(Severity::Warning, "CheckFailed", "agents")],
    ),
    (
        "unread pods are critical, never healthy",
        |r| r.pods = Err("Forbidden: pods is forbidden".into()),
        HealthVerdict::Critical,
        &[(Severity::Critical, "CheckFailed", "pods")],
    ),
    (
        "no pods in the whole cluster",
        |r| {
            if let Ok((report, _)) = &mut r.pods {
                report.total = 0;
            }
        },
        HealthVerdict::Critical,
        &[(Severity::Critical, "NoPods", "the cluster")],
    ),
    (
        "an empty namespace says why",
        |r| {
            r.namespace = Some("jellyfin".into());
            if let Ok((report, _)) = &mut r.pods {
                report.total = 0;
            }
            r.empty_namespace = Some(issue(
                Severity::Critical,
                "NamespaceTerminating",
                "namespace jellyfin",
                "being deleted",
                Some("get_events"),
            ));
        },
        HealthVerdict::Critical,
        &[(
            Severity::Critical,
            "NamespaceTerminating",
            "namespace jellyfin",
        )],
    ),
    (
        "unread events are a failed check",
        |r| r.events = Err("timeout".into()),
        HealthVerdict::Degraded,
        &[(Severity::Warning, "CheckFailed", "events")],
    ),
    (
        "Flux that did not answer in time",
        |r| r.flux = Err(timed_out("flux", Duration::from_secs(8))),
        HealthVerdict::Degraded,
        &[(Severity::Warning, "CheckFailed", "flux")],
    ),
    (
        "a sub-check that failed (not only not configured) is an issue",
        |r| r.secrets = SubCheck::Failed(failed(ErrorCode::PermissionDenied)),
        HealthVerdict::Degraded,
        &[(Severity::Warning, "CheckFailed", "externalSecrets")],
    ),
    (
        "a sub-check that timed out is an issue",
        |r| r.tailscale = Some(SubCheck::TimedOut(Duration::from_secs(8))),
        HealthVerdict::Degraded,
        &[(Severity::Warning, "CheckFailed", "tailscale")],
    ),
    (
        "critical issues come first",
        |r| {
            r.agent_nodes.remove("pi5-cp");
            r.nodes = Ok(vec![
                node("pi5-cp", true, &[]),
                node("pi3-worker-2", false, &[]),
            ]);
        },
        HealthVerdict::Critical,
        &[
            (Severity::Critical, "NodeNotReady", "node/pi3-worker-2"),
            (Severity::Warning, "NoAgent", "node/pi5-cp"),
        ],
    ),
];

#[test]
fn each_part_makes_its_issues_and_the_verdict_follows() {
    for (name, change, verdict, want) in CASES {
        let mut reads = healthy();
        change(&mut reads);
        let h = assess(reads);
        let got: Vec<(Severity, &str, &str)> = h
            .issues
            .iter()
            .map(|i| (i.severity, i.kind.as_str(), i.object.as_str()))
            .collect();
        assert_eq!(got, want.to_vec(), "{name}");
        assert_eq!(h.verdict, *verdict, "{name}");
    }
}

#[test]
fn checks_say_what_could_not_run() {
    let mut r = healthy();
    r.flux = Err(timed_out("flux", Duration::from_secs(8)));
    let h = assess(r);
    // Not configured: said in the check, not an issue.
    assert_eq!(h.checks["certificates"].verdict, "error");
    assert!(h.issues.iter().all(|i| i.object != "certificates"));
    for name in ["flux", "imageAutomation"] {
        assert_eq!(h.checks[name].verdict, "error", "{name}");
        assert!(
            h.checks[name]
                .message
                .as_deref()
                .is_some_and(|m| m.contains("no answer within 8 s")),
            "{name}"
        );
    }
    assert_eq!(assess(healthy()).checks["flux"].verdict, "not installed");
}

#[test]
fn backup_jobs_point_to_the_backup_tool() {
    let mut r = healthy();
    r.pods = Ok((
        PodReport {
            total: 3,
            problems: vec![pod_problem(
                "pvc-backup-29780760-0-x7k2p",
                "Job/pvc-backup-29780760",
            )],
            history: Vec::new(),
        },
        vec![job("pvc-backup-29780760", Some("pvc-backup"))],
    ));
    let h = assess(r);
    assert_eq!(h.issues.len(), 1);
    assert_eq!(h.issues[0].kind, "JobsFailing");
    assert_eq!(h.issues[0].next_tool.as_deref(), Some("get_backup_status"));
}

/// A CronJob named by --backup-cronjob is a backup; another Job of its
/// namespace is not.
#[test]
fn a_configured_backup_cronjob_is_a_backup_its_neighbours_are_not() {
    let problem = |name: &str, owner: &str| PodProblem {
        namespace: "media".into(),
        ..pod_problem(name, owner)
    };
    let job_in = |name: &str, cj: Option<&str>| {
        let mut j = job(name, cj);
        j.metadata.namespace = Some("media".into());
        j
    };
    let mut r = healthy();
    r.pods = Ok((
        PodReport {
            total: 5,
            problems: vec![
                problem("db-dump-29780760-x7k2p", "Job/db-dump-29780760"),
                problem("migrate-1-abcde", "Job/migrate-1"),
            ],
            history: Vec::new(),
        },
        vec![
            job_in("db-dump-29780760", Some("db-dump")),
            job_in("migrate-1", None),
        ],
    ));
    let h = assess(r);
    let next = |object: &str| {
        h.issues
            .iter()
            .find(|i| i.object == object)
            .and_then(|i| i.next_tool.as_deref())
    };
    assert_eq!(next("cronjob/media/db-dump"), Some("get_backup_status"));
    assert_eq!(next("job/media/migrate-1"), Some("get_job_logs"));
}
