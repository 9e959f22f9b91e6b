//! The text content carries every finding of the structured result: a
//! client that feeds only text to the model must not lose the diagnosis.
//! Each cluster tool is called through MCP on the homelab with its incidents
//! switched on, and the values that make up its findings (verdicts, counts,
//! names of failing objects, reasons, messages, fixes) are looked for in its
//! text. The node tools are checked the same way in `aggregator_mcp.rs`.

use labscope_tests::homelab::homelab;
use labscope_tests::mcp::{assert_text_shows, call_with_fixture_text};
use serde_json::{Value, json};

/// Every incident at once, so each tool has something to report.
const INCIDENTS: &[&str] = &[
    "immich-stuck",
    "private-exit-node-auth",
    "eso-store-down",
    "connector-down",
    "jellyfin-crashloop",
    "certificates",
    "backup-overdue",
];

/// (tool, arguments, what its text must show)
fn cases() -> Vec<(&'static str, Value, Vec<&'static str>)> {
    vec![
        (
            "get_cluster_health",
            json!({}),
            vec![
                "/verdict",
                "/nodes/ready",
                "/nodes/total",
                "/pods/total",
                "/pods/problems",
                "/issues/*/severity",
                "/issues/*/kind",
                "/issues/*/object",
                "/issues/*/evidence",
                "/issues/*/nextTool",
                "/issues/*/events/*",
                "/checks/*/verdict",
            ],
        ),
        (
            "get_certificate_status",
            json!({}),
            vec![
                "/verdict",
                "/summary/ready",
                "/summary/total",
                "/certificates/*?ready=false/namespace",
                "/certificates/*?ready=false/name",
                "/certificates/*?ready=false/hint",
                "/certificates/*?ready=false/chain/*/name",
                "/certificates/*?ready=false/chain/*/message",
                "/certificates/*?expiring=true/name",
                "/certificates/*?expiring=true/daysLeft",
                "/certificates/*?expiring=true/renewalOverdueDays",
            ],
        ),
        (
            "get_secrets_status",
            json!({}),
            vec![
                "/verdict",
                "/summary/ready",
                "/summary/externalSecrets",
                "/summary/storesDown",
                "/stores/*?ready=false/name",
                "/rootCauses/*/store/kind",
                "/rootCauses/*/store/name",
                "/rootCauses/*/reason",
                "/rootCauses/*/message",
                "/rootCauses/*/failingExternalSecrets",
            ],
        ),
        (
            "get_tailscale_status",
            json!({}),
            vec![
                "/verdict",
                "/operatorNamespace",
                "/connectors/*/name",
                "/connectors/*/reason",
                "/connectors/*/message",
                "/connectors/*/hostname",
                "/connectors/*/tailnetIps/*",
                "/connectors/*/advertisedRoutes/*",
                "/connectors/*/proxyClass",
            ],
        ),
        (
            "trace_request",
            json!({"url": "https://jellyfin.lab.mtgibbs.dev/web/"}),
            vec![
                "/verdict",
                "/failingHop",
                "/hint",
                "/hops/*/hop",
                "/hops/*/verdict",
                "/hops/*/detail",
                "/hops/*/evidence/*",
            ],
        ),
        (
            "get_ingress_status",
            json!({}),
            vec![
                "/verdict",
                "/summary/ingresses",
                "/summary/backendsDown",
                "/summary/certificateProblems",
                "/ingresses/*?ok=false/namespace",
                "/ingresses/*?ok=false/name",
                "/ingresses/*?ok=false/hosts/*",
                "/ingresses/*?ok=false/backends/*?state!=ok/service",
                "/ingresses/*?ok=false/backends/*?state!=ok/state",
                "/ingresses/*?ok=false/backends/*?state!=ok/note",
                "/ingresses/*?ok=false/tls/*?validCertificate=false/secretName",
                "/ingresses/*?ok=false/tls/*?validCertificate=false/certificate/reason",
            ],
        ),
        (
            "get_pvcs",
            json!({}),
            vec![
                "/verdict",
                "/summary/pvcs",
                "/summary/notBound",
                "/summary/notMounted",
                "/pvcs/*/namespace",
                "/pvcs/*/name",
                "/pvcs/*/phase",
                "/pvcs/*/capacity",
                "/pvcs/*/location",
                "/pvcs/*/mountedBy/*",
            ],
        ),
        (
            "describe_resource",
            json!({"kind": "service", "name": "jellyfin", "namespace": "jellyfin"}),
            vec![
                "/summary/type",
                "/summary/clusterIP",
                "/summary/readyEndpoints",
                "/summary/ports/*/port",
                "/summary/endpoints/*/address",
                "/summary/endpoints/*/pod",
                "/summary/endpoints/*/node",
            ],
        ),
        (
            "describe_resource",
            json!({"kind": "deployment", "name": "jellyfin", "namespace": "jellyfin"}),
            vec![
                "/summary/replicas/*",
                "/summary/selector",
                "/summary/strategy",
                "/summary/nodeSelector/*",
                "/summary/conditions/*/type",
                "/summary/conditions/*/reason",
                "/summary/conditions/*/message",
                "/summary/containers/*/image",
                "/summary/volumes/*/source",
                "/summary/pods/*/name",
                "/summary/pods/*/restarts",
                "/summary/pods/*/waiting/*",
            ],
        ),
        (
            "describe_resource",
            json!({"kind": "pod", "name": "jellyfin-fmhhr44wkg-vcxv7", "namespace": "jellyfin"}),
            vec![
                "/summary/phase",
                "/summary/node",
                "/summary/podIP",
                "/summary/hostIP",
                "/summary/conditions/*/type",
                "/summary/containerStatuses/*/name",
                "/summary/containerStatuses/*/restarts",
                "/summary/containerStatuses/*/state",
                "/summary/containerStatuses/*/lastState",
                "/summary/volumes/*/source",
                "/events/*/reason",
                "/events/*/count",
                "/events/*/message",
            ],
        ),
        (
            "describe_resource",
            json!({"kind": "node", "name": "pi3-worker-2"}),
            vec![
                "/summary/addresses/*/address",
                "/summary/capacity/*",
                "/summary/allocatable/*",
                "/summary/podCIDR",
                "/summary/nodeInfo/kubeletVersion",
                "/summary/conditions/*/type",
                "/summary/conditions/*/reason",
                "/summary/taints/*/key",
                "/summary/taints/*/effect",
                "/summary/pods/*/name",
            ],
        ),
        (
            "get_events",
            json!({"namespace": "jellyfin"}),
            vec![
                "/total",
                "/events/*/type",
                "/events/*/object",
                "/events/*/reason",
                "/events/*/count",
                "/events/*/message",
                "/events/*/lastSeen",
            ],
        ),
        (
            "get_pod_logs",
            json!({"namespace": "backup-jobs", "pod": "pvc-backup-29780760-dmmbk"}),
            vec!["/namespace", "/pod", "/container", "/lines", "/log"],
        ),
        (
            "get_job_logs",
            json!({"namespace": "backup-jobs", "job": "pvc-backup-29780760"}),
            vec![
                "/job",
                "/result",
                "/pods/*/pod",
                "/pods/*/phase",
                "/pods/*/exitCode",
                "/pods/*/log",
            ],
        ),
        (
            "get_backup_status",
            json!({}),
            vec![
                "/verdict",
                "/summary/*",
                "/backups/*/name",
                "/backups/*/schedule",
                "/backups/*/lastSuccessfulTime",
                "/backups/*/nextRun",
                "/backups/*?overdue=true/overdueBecause",
                "/backups/*?failing=true/failureLog",
            ],
        ),
        (
            "get_cronjob_details",
            json!({"namespace": "backup-jobs", "cronjob": "pvc-backup"}),
            vec![
                "/verdict",
                "/schedule/schedule",
                "/schedule/timeZone",
                "/schedule/lastSuccessfulTime",
                "/schedule/nextRun",
                "/schedule/overdueBecause",
                "/jobs/*/name",
                "/jobs/*/result",
                "/jobs/*/reason",
                "/containers/*/image",
            ],
        ),
        (
            "get_flux_status",
            json!({"onlyFailing": true}),
            vec![
                "/verdict",
                "/summary/total",
                "/summary/ready",
                "/summary/stuck",
                "/summary/failing",
                "/rootCauses/*/kind",
                "/rootCauses/*/namespace",
                "/rootCauses/*/name",
                "/rootCauses/*/reason",
                "/rootCauses/*/message",
                "/rootCauses/*/stuckBecause",
                "/rootCauses/*/hint",
                "/rootCauses/*/attemptedRevision",
                "/rootCauses/*/explains/*",
            ],
        ),
        (
            "get_image_automation_status",
            json!({}),
            vec![
                "/verdict",
                "/rootCauses/*/object",
                "/rootCauses/*/problem",
                "/rootCauses/*/reason",
                "/rootCauses/*/message",
                "/rootCauses/*/fix",
                "/rootCauses/*/explains/*",
                "/policies/*/name",
                "/policies/*/latestImage",
            ],
        ),
    ]
}

#[tokio::test]
async fn every_cluster_tool_says_its_findings_in_text() -> anyhow::Result<()> {
    let cases = cases();
    let calls: Vec<(&str, Value)> = cases.iter().map(|(t, a, _)| (*t, a.clone())).collect();
    let (results, _fake) = call_with_fixture_text(homelab(INCIDENTS)?, |_| {}, &calls).await?;
    let mut failures = Vec::new();
    for ((tool, args, patterns), (value, is_error, text)) in cases.iter().zip(&results) {
        if *is_error {
            failures.push(format!("{tool} {args}: failed: {value}"));
            continue;
        }
        if let Err(e) = assert_text_shows(tool, value, text, patterns) {
            failures.push(format!("{tool} {args}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    Ok(())
}

/// Every read-only cluster and Flux tool has a case above (operations are
/// checked the same way in ops.rs, the services' tools in dns.rs and
/// media.rs, where their configuration is).
#[test]
fn every_cluster_tool_has_a_case() {
    let covered: std::collections::BTreeSet<&str> = cases().iter().map(|(t, _, _)| *t).collect();
    for t in labscope::tools::registry() {
        if t.toolset != labscope::tools::Toolset::Node
            && t.toolset != labscope::tools::Toolset::Services
            && !t.mutates()
        {
            assert!(
                covered.contains(t.name),
                "{} has no text-findings case",
                t.name
            );
        }
    }
}
