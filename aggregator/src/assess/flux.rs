//! Flux objects judged: ready, failing, **stuck** (no automatic retry will
//! fix it: a `Stalled` condition such as RetriesExceeded, the legacy
//! "retries exhausted" wording of older helm-controllers, or not Ready far
//! longer than its interval and timeout allow), suspended, progressing, or
//! static (an OCI HelmRepository has no conditions by design). A failure
//! explained by another failing object (a Kustomization waiting on a
//! HelmRelease, an ImagePolicy on its repository) is a consequence of that
//! root cause, not a second one.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use kube::api::DynamicObject;
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cluster::time::{human, parse_go_duration, parse_rfc3339, rfc3339};

/// How a Flux object stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FluxState {
    /// Ready.
    Ready,
    /// Not Ready; retries may fix it.
    Failing,
    /// Not Ready and no retry will fix it.
    Stuck,
    /// Suspended.
    Suspended,
    /// Reconciling (Ready Unknown).
    Progressing,
    /// An OCI HelmRepository: no conditions by design.
    Static,
    /// No Ready condition yet.
    Unknown,
}

impl FluxState {
    /// A failure worth reporting.
    pub fn problem(self) -> bool {
        matches!(
            self,
            FluxState::Failing | FluxState::Stuck | FluxState::Unknown
        )
    }
}

/// Failure counters of a HelmRelease.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HelmFailures {
    /// All.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    /// Installs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install: Option<i64>,
    /// Upgrades.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<i64>,
}

/// One release in a HelmRelease's history.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmHistory {
    /// Helm release version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Chart version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart_version: Option<String>,
    /// deployed, failed, superseded, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// One Flux object, judged.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FluxObject {
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// How it stands.
    pub status: FluxState,
    /// Usable as it is: status ready, or static (an OCI HelmRepository has
    /// nothing to reconcile and no conditions by design; HOMELAB.md).
    pub ready: bool,
    /// status == suspended.
    pub suspended: bool,
    /// Ready's reason.
    pub reason: String,
    /// Ready's message.
    pub message: String,
    /// When Ready last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// How long since then ("15d 23h").
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// spec.interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// What is applied (a Kustomization's revision, a release's chart, a source's artifact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<String>,
    /// What was last attempted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempted_revision: Option<String>,
    /// status == stuck.
    pub stuck: bool,
    /// Why it is stuck.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stuck_because: Option<String>,
    /// The failing object that explains this failure (Kind/namespace/name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consequence_of: Option<String>,
    /// What to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// HelmRelease failure counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<HelmFailures>,
    /// HelmRelease: install, upgrade, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempted_release_action: Option<String>,
    /// HelmRelease: the last three releases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HelmHistory>>,
    /// HelmRepository: default or oci.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub repo_type: Option<String>,
}

impl FluxObject {
    /// Kind/namespace/name.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// An object with what the judgement needs of its source.
#[derive(Debug, Clone)]
pub struct Assessed {
    /// The judgement.
    pub object: FluxObject,
    /// When Ready last changed (Unix seconds).
    pub since_s: Option<i64>,
    /// What the judgement read of it.
    pub fields: Fields,
    /// The object as read.
    pub raw: DynamicObject,
}

/// What labscope reads of a Flux object, typed: the same names in every
/// kind and API version it knows (v1beta2 … v1). Every field is optional in
/// the CRDs (absent before the first reconcile), so absent is `None`; a
/// field of another type is an error naming it ([`read_fields`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Fields {
    /// `spec`.
    pub spec: Spec,
    /// `status`.
    pub status: Status,
}

/// The spec fields read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Spec {
    /// `spec.interval` (a Go duration).
    pub interval: Option<String>,
    /// `spec.timeout` (a Go duration).
    pub timeout: Option<String>,
    /// `spec.suspend`.
    pub suspend: bool,
    /// HelmRepository: `default` or `oci`.
    #[serde(rename = "type")]
    pub repo_type: Option<String>,
    /// `spec.sourceRef`.
    pub source_ref: Option<Reference>,
    /// ImagePolicy: `spec.imageRepositoryRef`.
    pub image_repository_ref: Option<Reference>,
    /// ImageRepository: the image scanned.
    pub image: Option<String>,
    /// ImageRepository: the registry credentials' Secret.
    pub secret_ref: Option<Reference>,
    /// HelmRelease: `spec.chartRef` (an OCIRepository or HelmChart).
    pub chart_ref: Option<Reference>,
    /// HelmRelease: the HelmChart template; HelmChart: the chart's name.
    pub chart: Option<Chart>,
}

/// `spec.chart`, whose type depends on the kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Chart {
    /// A HelmRelease's template of its HelmChart.
    Template(ChartTemplate),
    /// A HelmChart's chart name.
    Name(String),
}

/// A HelmRelease's `spec.chart`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ChartTemplate {
    /// `spec.chart.spec`.
    pub spec: ChartSpec,
}

/// A HelmRelease's `spec.chart.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ChartSpec {
    /// The chart's source.
    pub source_ref: Option<Reference>,
}

/// A reference to another object (namespace defaults to the referrer's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Reference {
    /// Kind (a sourceRef names it).
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace, when not the referrer's.
    pub namespace: Option<String>,
}

/// The status fields read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Status {
    /// `status.conditions`.
    pub conditions: Vec<crate::cluster::kinds::Condition>,
    /// Kustomization: the revision applied.
    pub last_applied_revision: Option<String>,
    /// The revision last attempted.
    pub last_attempted_revision: Option<String>,
    /// A source's artifact.
    pub artifact: Option<Artifact>,
    /// HelmRelease: newest first.
    pub history: Vec<Snapshot>,
    /// HelmRelease: failures since the last success.
    pub failures: Option<i64>,
    /// HelmRelease: install failures.
    pub install_failures: Option<i64>,
    /// HelmRelease: upgrade failures.
    pub upgrade_failures: Option<i64>,
    /// HelmRelease: install, upgrade, …
    pub last_attempted_release_action: Option<String>,
    /// HelmRelease: "namespace/name" of its HelmChart.
    pub helm_chart: Option<String>,
    /// The last reconcile request handled (the annotation's token).
    pub last_handled_reconcile_at: Option<String>,
    /// ImageRepository: the last scan.
    pub last_scan_result: Option<ScanResult>,
    /// ImagePolicy (image.toolkit.fluxcd.io/v1): the image chosen.
    pub latest_ref: Option<ImageRef>,
    /// ImagePolicy (v1beta2): the image chosen, as one string.
    pub latest_image: Option<String>,
    /// ImageUpdateAutomation: when it last ran.
    pub last_automation_run_time: Option<String>,
    /// ImageUpdateAutomation: when it last pushed.
    pub last_push_time: Option<String>,
    /// ImageUpdateAutomation: the commit it last pushed.
    pub last_push_commit: Option<String>,
}

/// An ImageRepository's last scan.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ScanResult {
    /// When (RFC 3339).
    pub scan_time: Option<String>,
    /// Tags found.
    pub tag_count: Option<i64>,
    /// The newest tags.
    pub latest_tags: Vec<String>,
}

/// An image by name and tag.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ImageRef {
    /// Image name.
    pub name: String,
    /// Tag.
    pub tag: String,
}

/// A source's artifact.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Artifact {
    /// The revision.
    pub revision: Option<String>,
}

/// One release in a HelmRelease's history.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Snapshot {
    /// Chart name.
    pub chart_name: Option<String>,
    /// Chart version.
    pub chart_version: Option<String>,
    /// Release version.
    pub version: Option<i64>,
    /// Status of the release.
    pub status: Option<String>,
}

impl Status {
    /// The condition of `kind`.
    pub fn condition(&self, kind: &str) -> Option<&crate::cluster::kinds::Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }
}

/// Reads the fields of `obj`; the error names the field that did not fit.
pub fn read_fields(obj: &DynamicObject) -> Result<Fields, String> {
    crate::cluster::kinds::fields(obj)
}

/// Applied and attempted revisions, by kind.
fn revisions(kind: &str, st: &Status) -> (Option<String>, Option<String>) {
    match kind {
        "Kustomization" => (
            st.last_applied_revision.clone(),
            st.last_attempted_revision.clone(),
        ),
        "HelmRelease" => {
            let deployed = st
                .history
                .iter()
                .find(|e| e.status.as_deref() == Some("deployed"))
                .map(|e| {
                    format!(
                        "{}@{} (release v{})",
                        e.chart_name.as_deref().unwrap_or_default(),
                        e.chart_version.as_deref().unwrap_or_default(),
                        e.version.map_or_else(|| "?".into(), |v| v.to_string())
                    )
                });
            (deployed, st.last_attempted_revision.clone())
        }
        _ => (st.artifact.as_ref().and_then(|a| a.revision.clone()), None),
    }
}

/// Judges one object at `now_s` (Ready/Stalled/Reconciling and the stuck rule).
pub fn assess(kind: &str, obj: DynamicObject, now_s: i64) -> Assessed {
    let (fields, unreadable) = match read_fields(&obj) {
        Ok(f) => (f, None),
        Err(e) => (Fields::default(), Some(e)),
    };
    let since = fields
        .status
        .condition("Ready")
        .and_then(|c| c.last_transition_time.as_deref())
        .and_then(parse_rfc3339);
    let mut o = object(kind, &obj, &fields, since, now_s);
    if let Some(e) = unreadable {
        o.message = format!(
            "labscope could not read this object ({e}): a Flux API version whose fields changed?"
        );
        o.hint = Some(format!(
            "compare with `kubectl get {} {} -n {} -o yaml`",
            kind.to_lowercase(),
            o.name,
            o.namespace
        ));
        return Assessed {
            object: o,
            since_s: None,
            fields,
            raw: obj,
        };
    }
    judge(&mut o, kind, &fields, since, now_s);
    Assessed {
        object: o,
        since_s: since,
        fields,
        raw: obj,
    }
}

/// What is shown of an object before it is judged: names, the Ready
/// condition's reason and message, revisions, a HelmRelease's failures and
/// history.
fn object(
    kind: &str,
    obj: &DynamicObject,
    fields: &Fields,
    since: Option<i64>,
    now_s: i64,
) -> FluxObject {
    let (spec, st) = (&fields.spec, &fields.status);
    let (reason, message) = st
        .condition("Ready")
        .map(|c| (c.reason.clone(), c.message.clone()))
        .unwrap_or_default();
    let (applied, attempted) = revisions(kind, st);
    let helm = kind == "HelmRelease";
    FluxObject {
        kind: kind.to_string(),
        namespace: obj.metadata.namespace.clone().unwrap_or_default(),
        name: obj.metadata.name.clone().unwrap_or_default(),
        status: FluxState::Unknown,
        ready: false,
        suspended: false,
        reason,
        message,
        since: since.map(rfc3339),
        for_: since.map(|t| human(now_s - t)),
        interval: spec.interval.clone(),
        applied_revision: applied,
        attempted_revision: attempted,
        stuck: false,
        stuck_because: None,
        consequence_of: None,
        hint: None,
        failures: helm.then_some(HelmFailures {
            total: st.failures,
            install: st.install_failures,
            upgrade: st.upgrade_failures,
        }),
        last_attempted_release_action: if helm {
            st.last_attempted_release_action.clone()
        } else {
            None
        },
        history: helm.then(|| {
            st.history
                .iter()
                .take(3)
                .map(|e| HelmHistory {
                    version: e.version,
                    chart_version: e.chart_version.clone(),
                    status: e.status.clone(),
                })
                .collect()
        }),
        repo_type: if kind == "HelmRepository" {
            spec.repo_type.clone()
        } else {
            None
        },
    }
}

/// The state of a readable object: suspended, static, stuck (Stalled,
/// retries exhausted, or not Ready for longer than its retries could
/// take), ready, progressing or failing; a stuck HelmRelease's recovery.
fn judge(o: &mut FluxObject, kind: &str, fields: &Fields, since: Option<i64>, now_s: i64) {
    let (spec, st) = (&fields.spec, &fields.status);
    let ready = st.condition("Ready");
    let ready_status = ready.map(|c| c.status.clone()).unwrap_or_default();
    let secs = |v: &Option<String>| v.as_deref().and_then(parse_go_duration);
    let interval = secs(&spec.interval).unwrap_or(600);
    let timeout = secs(&spec.timeout).unwrap_or(300);
    // Longer than this without Ready and no automatic retry is fixing it.
    let patience = (3 * interval + timeout).max(1800);
    let helm = kind == "HelmRelease";
    let failing_for = since.map(|t| now_s - t).unwrap_or(0);
    if spec.suspend {
        o.status = FluxState::Suspended;
        o.hint = Some(format!(
            "suspended: Flux will not reconcile it until resumed (`flux resume {} {} -n {}`)",
            kind.to_lowercase(),
            o.name,
            o.namespace
        ));
    } else if ready.is_none() {
        if kind == "HelmRepository" && spec.repo_type.as_deref() == Some("oci") {
            o.status = FluxState::Static;
            o.message = "OCI HelmRepository: a static data container that Flux does not reconcile; it has no conditions by design".into();
        } else {
            o.message =
                "no Ready condition yet: the controller has not reconciled it (is it running?)"
                    .into();
        }
    } else if let Some(stalled) = st.condition("Stalled")
        && stalled.status == "True"
    {
        o.status = FluxState::Stuck;
        o.stuck_because = Some(format!(
            "Stalled ({}: {}) for {}; the controller will not retry",
            stalled.reason,
            stalled.message,
            human(failing_for)
        ));
    } else if ready_status == "True" {
        o.status = FluxState::Ready;
    } else if ready_status == "False" && o.message.contains("retries exhausted") {
        o.status = FluxState::Stuck;
        o.stuck_because = Some(format!(
            "\"{}\" for {}: older helm-controllers stop retrying after this",
            o.message,
            human(failing_for)
        ));
    } else if failing_for > patience {
        o.status = FluxState::Stuck;
        o.stuck_because = Some(format!(
            "not Ready for {} while its interval is {} and timeout {}: retries are not fixing it",
            human(failing_for),
            human(interval),
            human(timeout)
        ));
    } else if ready_status == "Unknown" {
        o.status = FluxState::Progressing;
    } else {
        o.status = FluxState::Failing;
    }
    if helm && o.status == FluxState::Stuck {
        o.hint = Some(format!(
            "helm-controller will not retry this release by itself. Recover with `flux reconcile helmrelease {n} -n {ns} --reset` \
             (sets reconcile.fluxcd.io/requestedAt and resetAt to one token; `--force` for a one-off forced upgrade), or suspend \
             then resume it; a bare reconcile request changes nothing. Find why it failed first: get_events object=HelmRelease/{n} \
             namespace={ns}, and the release's pods.",
            n = o.name,
            ns = o.namespace
        ));
    }
    o.ready = matches!(o.status, FluxState::Ready | FluxState::Static);
    o.suspended = o.status == FluxState::Suspended;
    o.stuck = o.status == FluxState::Stuck;
}

static REFERENCE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(Kustomization|HelmRelease|GitRepository|OCIRepository|HelmRepository|HelmChart)/([a-z0-9.-]+)/([a-z0-9.-]+)",
    )
    .ok()
});
static DEPENDENCY: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"dependency '([a-z0-9.-]+)/([a-z0-9.-]+)' is not ready").ok());

/// Links each failure to the failing object that explains it (named in its
/// message, its source, its chart, its image repository, its dependency);
/// a consequence is not stuck in its own right.
pub fn link_causes(rows: &mut [Assessed]) {
    let failing: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.object.status.problem())
        .map(|r| r.object.id())
        .collect();
    for r in rows.iter_mut().filter(|r| r.object.status.problem()) {
        let ns = r.object.namespace.clone();
        let mut candidates: Vec<String> = Vec::new();
        if let Some(re) = REFERENCE.as_ref() {
            candidates.extend(
                re.captures_iter(&r.object.message)
                    .map(|c| format!("{}/{}/{}", &c[1], &c[2], &c[3])),
            );
        }
        if let Some(re) = DEPENDENCY.as_ref() {
            candidates.extend(
                re.captures_iter(&r.object.message)
                    .map(|c| format!("Kustomization/{}/{}", &c[1], &c[2])),
            );
        }
        let spec = &r.fields.spec;
        if let Some(source) = &spec.source_ref
            && let Some(kind) = &source.kind
        {
            let sns = source.namespace.as_deref().unwrap_or(&ns);
            candidates.push(format!("{kind}/{sns}/{}", source.name));
        }
        match r.object.kind.as_str() {
            "HelmRelease" => {
                if let Some((cns, cname)) = r
                    .fields
                    .status
                    .helm_chart
                    .as_deref()
                    .and_then(|s| s.split_once('/'))
                {
                    candidates.push(format!("HelmChart/{cns}/{cname}"));
                }
            }
            "ImagePolicy" => {
                if let Some(repo) = &spec.image_repository_ref {
                    let rns = repo.namespace.as_deref().unwrap_or(&ns);
                    candidates.push(format!("ImageRepository/{rns}/{}", repo.name));
                }
            }
            _ => {}
        }
        let me = r.object.id();
        if let Some(cause) = candidates
            .into_iter()
            .find(|c| *c != me && failing.contains(c))
        {
            r.object.consequence_of = Some(cause);
            if r.object.status == FluxState::Stuck {
                r.object.status = FluxState::Failing;
                r.object.stuck = false;
                r.object.stuck_because = None;
            }
        }
    }
}

/// Registry authentication failure, by reason or registry wording.
pub fn auth_failure(reason: &str, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    reason == "AuthenticationFailed"
        || m.contains("unauthorized")
        || m.contains("authentication required")
        || m.contains("denied: ")
        || m.contains("401")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn obj(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    const NOW: i64 = 1_787_206_020;

    #[test]
    fn a_field_of_another_type_is_unknown_and_named_not_a_default() {
        let odd = obj(
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": "flux-system"}, "spec": {"interval": "10m", "suspend": "no"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                "message": "Applied revision: main@sha1:ab12", "lastTransitionTime": "2026-08-20T06:02:00Z"}]}}),
        );
        let r = assess("Kustomization", odd, NOW).object;
        assert_eq!(r.status, FluxState::Unknown, "{r:?}");
        assert!(r.status.problem());
        assert!(r.message.contains("field `spec.suspend`"), "{}", r.message);
        // Absent fields are absent, not an error (before the first reconcile).
        let new = obj(
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": "flux-system"}, "spec": {}}),
        );
        let r = assess("Kustomization", new, NOW).object;
        assert!(
            r.message.contains("no Ready condition yet"),
            "{}",
            r.message
        );
    }

    #[test]
    fn stuck_rules() {
        let stalled = obj(
            json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "immich", "namespace": "immich"}, "spec": {"interval": "1h"},
            "status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "UpgradeFailed", "message": "x", "lastTransitionTime": "2026-08-04T06:07:31Z"},
                {"type": "Stalled", "status": "True", "reason": "RetriesExceeded", "message": "Failed to upgrade after 1 attempt(s)"}]}}),
        );
        let r = assess("HelmRelease", stalled, NOW).object;
        assert_eq!(r.status, FluxState::Stuck);
        assert!(
            r.stuck_because
                .as_deref()
                .is_some_and(|s| s.contains("RetriesExceeded") && s.contains("15d 23h"))
        );
        assert!(r.hint.as_deref().is_some_and(|h| h.contains("--reset")));

        // Failed five minutes ago: failing, not stuck.
        let fresh = obj(
            json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "a", "namespace": "b"}, "spec": {"interval": "1h"},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "UpgradeFailed", "message": "x",
                "lastTransitionTime": "2026-08-20T06:02:00Z"}]}}),
        );
        assert_eq!(
            assess("HelmRelease", fresh, NOW).object.status,
            FluxState::Failing
        );

        let legacy = obj(
            json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "a", "namespace": "b"}, "spec": {"interval": "1h"},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "UpgradeFailed", "message": "upgrade retries exhausted",
                "lastTransitionTime": "2026-08-20T06:02:00Z"}]}}),
        );
        assert_eq!(
            assess("HelmRelease", legacy, NOW).object.status,
            FluxState::Stuck
        );

        let oci = obj(
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
            "metadata": {"name": "immich", "namespace": "flux-system"}, "spec": {"type": "oci", "url": "oci://x"}, "status": {}}),
        );
        assert_eq!(
            assess("HelmRepository", oci, NOW).object.status,
            FluxState::Static
        );

        let suspended = obj(
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "a", "namespace": "flux-system"}, "spec": {"suspend": true}}),
        );
        assert_eq!(
            assess("Kustomization", suspended, NOW).object.status,
            FluxState::Suspended
        );
    }

    #[test]
    fn a_consequence_is_not_a_second_root_cause() {
        let hr = obj(
            json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "immich", "namespace": "immich"}, "spec": {"interval": "1h"},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "UpgradeFailed", "message": "x",
                "lastTransitionTime": "2026-08-04T06:07:31Z"}, {"type": "Stalled", "status": "True", "reason": "RetriesExceeded", "message": "m"}]}}),
        );
        let ks = obj(
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "immich", "namespace": "flux-system"}, "spec": {"interval": "10m"},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "HealthCheckFailed",
                "message": "health check failed after 10m0s: timeout waiting for: [HelmRelease/immich/immich status: 'Failed']",
                "lastTransitionTime": "2026-08-04T06:20:00Z"}]}}),
        );
        let mut rows = vec![
            assess("HelmRelease", hr, NOW),
            assess("Kustomization", ks, NOW),
        ];
        link_causes(&mut rows);
        assert_eq!(rows[0].object.status, FluxState::Stuck);
        assert_eq!(
            rows[1].object.status,
            FluxState::Failing,
            "a consequence is not stuck in its own right"
        );
        assert_eq!(
            rows[1].object.consequence_of.as_deref(),
            Some("HelmRelease/immich/immich")
        );
    }

    #[test]
    fn auth_wording() {
        assert!(auth_failure(
            "ReadOperationFailed",
            "scan failed: GET https://ghcr.io/token: UNAUTHORIZED: authentication required"
        ));
        assert!(auth_failure("AuthenticationFailed", "secret not found"));
        assert!(!auth_failure(
            "ReadOperationFailed",
            "dial tcp: i/o timeout"
        ));
    }
}
