//! Flux tools: `get_flux_status` (Kustomizations, HelmReleases, sources and
//! image automation, with stuck detection and root causes) and
//! `get_image_automation_status` (registry scans, policies, pushes; an
//! authentication failure is named as such, with the fix).
//!
//! "Stuck" means no automatic retry will fix it: a `Stalled` condition
//! (RetriesExceeded), the legacy "retries exhausted" wording of older
//! helm-controllers, or not Ready for far longer than the object's interval
//! and timeout allow. A failure explained by another failing object (a
//! Kustomization waiting on a HelmRelease, an ImagePolicy on its repository)
//! is reported as a consequence, not as a second root cause.

use std::sync::{Arc, LazyLock};

use kube::api::DynamicObject;
use regex::Regex;
use serde_json::{Map, Value, json};

use super::args::Args;
use super::cluster::{cluster, failed_part};
use super::{ToolContext, ToolDef, ToolError, ToolOutput};
use crate::cluster::Cluster;
use crate::cluster::kinds::{CustomKind, KindList, condition};
use crate::cluster::time::{human, now, parse_go_duration, parse_rfc3339, rfc3339};

const SOURCE: &str = "source.toolkit.fluxcd.io";
const KUSTOMIZE: &str = "kustomize.toolkit.fluxcd.io";
const HELM: &str = "helm.toolkit.fluxcd.io";
const IMAGE: &str = "image.toolkit.fluxcd.io";

/// A Flux kind and how the `kind` argument spells it.
struct FluxKind {
    api: CustomKind,
    arg: &'static str,
}

const fn fk(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    arg: &'static str,
) -> FluxKind {
    FluxKind {
        api: CustomKind::new(group, kind, plural),
        arg,
    }
}

/// Every Flux kind the tools read; each is resolved to its own served version.
const KINDS: &[FluxKind] = &[
    fk(
        KUSTOMIZE,
        "Kustomization",
        "kustomizations",
        "kustomization",
    ),
    fk(HELM, "HelmRelease", "helmreleases", "helmrelease"),
    fk(SOURCE, "GitRepository", "gitrepositories", "gitrepository"),
    fk(SOURCE, "OCIRepository", "ocirepositories", "ocirepository"),
    fk(
        SOURCE,
        "HelmRepository",
        "helmrepositories",
        "helmrepository",
    ),
    fk(SOURCE, "HelmChart", "helmcharts", "helmchart"),
    fk(SOURCE, "Bucket", "buckets", "bucket"),
    fk(
        IMAGE,
        "ImageRepository",
        "imagerepositories",
        "imagerepository",
    ),
    fk(IMAGE, "ImagePolicy", "imagepolicies", "imagepolicy"),
    fk(
        IMAGE,
        "ImageUpdateAutomation",
        "imageupdateautomations",
        "imageupdateautomation",
    ),
];

/// The Flux tools.
pub fn tools() -> Vec<ToolDef> {
    let kinds: Vec<&str> = KINDS.iter().map(|k| k.arg).collect();
    vec![
        ToolDef::untyped(
            super::Meta {
                name: "get_flux_status",
                title: "Flux status with stuck detection",
                description: "Kustomizations, HelmReleases, sources (GitRepository, OCIRepository, HelmRepository, \
                HelmChart, Bucket) and image automation: ready, suspended, reason, message, revision applied vs \
                attempted, since when. Flags STUCK objects that no automatic retry will fix (Stalled / \
                RetriesExceeded, the legacy \"retries exhausted\", or failing far longer than its interval allows) \
                and separates root causes from their consequences (a Kustomization failing because of a \
                HelmRelease). An OCI HelmRepository without conditions is static, not failing. Optional `kind`, \
                `namespace`, `onlyFailing`.",
                toolset: super::Toolset::Flux,
                hints: super::Hints::READ,
            },
            json!({"type": "object", "properties": {
                "kind": {"type": "string", "enum": kinds},
                "namespace": {"type": "string"},
                "onlyFailing": {"type": "boolean", "default": false}},
                "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "installed": {"type": "boolean"}, "apiVersions": {"type": "object"}, "verdict": {"type": "string"},
                "summary": {"type": "object"}, "rootCauses": {"type": "array"}, "resources": {"type": "array"}},
                "required": ["installed", "verdict"]}),
            |ctx, args| Box::pin(get_flux_status(ctx, args)),
        ),
        ToolDef::untyped(
            super::Meta {
                name: "get_image_automation_status",
                title: "Flux image automation",
                description: "ImageRepositories (last scan and its age, tag count, latest tags; registry authentication \
                failures named as such with the fix, e.g. a missing spec.secretRef), ImagePolicies (the image they \
                resolve to; failures caused by their repository reported as consequences) and \
                ImageUpdateAutomations (last run, last push). Optional `namespace`.",
                toolset: super::Toolset::Flux,
                hints: super::Hints::READ,
            },
            json!({"type": "object", "properties": {"namespace": {"type": "string"}}, "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "installed": {"type": "boolean"}, "verdict": {"type": "string"}, "repositories": {"type": "array"},
                "policies": {"type": "array"}, "automations": {"type": "array"}, "rootCauses": {"type": "array"}},
                "required": ["installed", "verdict"]}),
            |ctx, args| Box::pin(get_image_automation_status(ctx, args)),
        ),
    ]
}

/// One assessed Flux object.
#[derive(Debug, Clone)]
struct Row {
    kind: &'static str,
    namespace: String,
    name: String,
    /// ready | failing | stuck | suspended | progressing | static | unknown
    status: &'static str,
    reason: String,
    message: String,
    since: Option<i64>,
    stuck: Option<String>,
    caused_by: Option<String>,
    hint: Option<String>,
    obj: DynamicObject,
}

impl Row {
    fn id(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }

    fn problem(&self) -> bool {
        matches!(self.status, "failing" | "stuck" | "unknown")
    }
}

fn spec_secs(obj: &Value, field: &str) -> Option<i64> {
    obj["spec"][field].as_str().and_then(parse_go_duration)
}

/// Ready/Stalled/Reconciling → status, with the stuck rule.
fn assess(kind: &'static str, obj: DynamicObject, now_s: i64) -> Row {
    let d = &obj.data;
    let (namespace, name) = (
        obj.metadata.namespace.clone().unwrap_or_default(),
        obj.metadata.name.clone().unwrap_or_default(),
    );
    let ready = condition(d, "Ready");
    let since = d["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(parse_rfc3339);
    let (ready_status, reason, message) = ready.clone().unwrap_or_default();
    let interval = spec_secs(d, "interval").unwrap_or(600);
    let timeout = spec_secs(d, "timeout").unwrap_or(300);
    // Longer than this without Ready and no automatic retry is fixing it.
    let patience = (3 * interval + timeout).max(1800);
    let mut row = Row {
        kind,
        namespace,
        name,
        status: "unknown",
        reason,
        message,
        since,
        stuck: None,
        caused_by: None,
        hint: None,
        obj: obj.clone(),
    };
    if d["spec"]["suspend"].as_bool() == Some(true) {
        row.status = "suspended";
        row.hint = Some(format!(
            "suspended: Flux will not reconcile it until resumed (`flux resume {} {} -n {}`)",
            kind.to_lowercase(),
            row.name,
            row.namespace
        ));
        return row;
    }
    if ready.is_none() {
        if kind == "HelmRepository" && d["spec"]["type"] == "oci" {
            row.status = "static";
            row.message = "OCI HelmRepository: a static data container that Flux does not reconcile; it has no conditions by design".into();
        } else {
            row.message =
                "no Ready condition yet: the controller has not reconciled it (is it running?)"
                    .into();
        }
        return row;
    }
    let failing_for = since.map(|t| now_s - t).unwrap_or(0);
    if let Some((status, stalled_reason, stalled_message)) = condition(d, "Stalled")
        && status == "True"
    {
        row.status = "stuck";
        row.stuck = Some(format!(
            "Stalled ({stalled_reason}: {stalled_message}) for {}; the controller will not retry",
            human(failing_for)
        ));
    } else if ready_status == "True" {
        row.status = "ready";
    } else if ready_status == "False" && row.message.contains("retries exhausted") {
        row.status = "stuck";
        row.stuck = Some(format!(
            "\"{}\" for {}: older helm-controllers stop retrying after this",
            row.message,
            human(failing_for)
        ));
    } else if failing_for > patience {
        row.status = "stuck";
        row.stuck = Some(format!(
            "not Ready for {} while its interval is {} and timeout {}: retries are not fixing it",
            human(failing_for),
            human(interval),
            human(timeout)
        ));
    } else if ready_status == "Unknown" {
        row.status = "progressing";
    } else {
        row.status = "failing";
    }
    if kind == "HelmRelease" && row.status == "stuck" {
        row.hint = Some(format!(
            "helm-controller will not retry this release by itself. Recover with `flux reconcile helmrelease {n} -n {ns} --reset` \
             (sets reconcile.fluxcd.io/requestedAt and resetAt to one token; `--force` for a one-off forced upgrade), or suspend \
             then resume it; a bare reconcile request changes nothing. Find why it failed first: get_events object=HelmRelease/{n} \
             namespace={ns}, and the release's pods.",
            n = row.name,
            ns = row.namespace
        ));
    }
    row
}

static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(Kustomization|HelmRelease|GitRepository|OCIRepository|HelmRepository|HelmChart)/([a-z0-9.-]+)/([a-z0-9.-]+)")
        .unwrap_or_else(|_| Regex::new("$^").unwrap_or_else(|_| unreachable!()))
});
static DEPENDENCY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"dependency '([a-z0-9.-]+)/([a-z0-9.-]+)' is not ready")
        .unwrap_or_else(|_| Regex::new("$^").unwrap_or_else(|_| unreachable!()))
});

/// Links failures to the failing object that explains them.
fn link_causes(rows: &mut [Row]) {
    let failing: std::collections::BTreeSet<String> =
        rows.iter().filter(|r| r.problem()).map(Row::id).collect();
    for r in rows.iter_mut().filter(|r| r.problem()) {
        let d = &r.obj.data;
        let ns = r.namespace.clone();
        let mut candidates: Vec<String> = REFERENCE
            .captures_iter(&r.message)
            .map(|c| format!("{}/{}/{}", &c[1], &c[2], &c[3]))
            .collect();
        candidates.extend(
            DEPENDENCY
                .captures_iter(&r.message)
                .map(|c| format!("Kustomization/{}/{}", &c[1], &c[2])),
        );
        let source = &d["spec"]["sourceRef"];
        if let Some(kind) = source["kind"].as_str() {
            let sns = source["namespace"].as_str().unwrap_or(&ns);
            candidates.push(format!(
                "{kind}/{sns}/{}",
                source["name"].as_str().unwrap_or_default()
            ));
        }
        match r.kind {
            "HelmRelease" => {
                if let Some((cns, cname)) = d["status"]["helmChart"]
                    .as_str()
                    .and_then(|s| s.split_once('/'))
                {
                    candidates.push(format!("HelmChart/{cns}/{cname}"));
                }
            }
            "ImagePolicy" => {
                if let Some(n) = d["spec"]["imageRepositoryRef"]["name"].as_str() {
                    let rns = d["spec"]["imageRepositoryRef"]["namespace"]
                        .as_str()
                        .unwrap_or(&ns);
                    candidates.push(format!("ImageRepository/{rns}/{n}"));
                }
            }
            _ => {}
        }
        let me = r.id();
        if let Some(cause) = candidates
            .into_iter()
            .find(|c| *c != me && failing.contains(c))
        {
            r.caused_by = Some(cause);
            // A consequence is not stuck in its own right.
            if r.status == "stuck" {
                r.status = "failing";
                r.stuck = None;
            }
        }
    }
}

fn revisions(r: &Row) -> (Value, Value) {
    let st = &r.obj.data["status"];
    match r.kind {
        "Kustomization" => (
            st["lastAppliedRevision"].clone(),
            st["lastAttemptedRevision"].clone(),
        ),
        "HelmRelease" => {
            let deployed = st["history"]
                .as_array()
                .and_then(|h| h.iter().find(|e| e["status"] == "deployed"))
                .map(|e| {
                    json!(format!(
                        "{}@{} (release v{})",
                        e["chartName"].as_str().unwrap_or_default(),
                        e["chartVersion"].as_str().unwrap_or_default(),
                        e["version"]
                    ))
                })
                .unwrap_or(Value::Null);
            (deployed, st["lastAttemptedRevision"].clone())
        }
        _ => (st["artifact"]["revision"].clone(), Value::Null),
    }
}

fn row_json(r: &Row, now_s: i64) -> Value {
    let (applied, attempted) = revisions(r);
    let mut v = json!({"kind": r.kind, "namespace": r.namespace, "name": r.name, "status": r.status,
        "ready": r.status == "ready", "suspended": r.status == "suspended", "reason": r.reason, "message": r.message,
        "since": r.since.map(rfc3339), "for": r.since.map(|t| human(now_s - t)),
        "interval": r.obj.data["spec"]["interval"], "appliedRevision": applied, "attemptedRevision": attempted,
        "stuck": r.status == "stuck", "stuckBecause": r.stuck, "consequenceOf": r.caused_by, "hint": r.hint});
    if r.kind == "HelmRelease" {
        let st = &r.obj.data["status"];
        v["failures"] = json!({"total": st["failures"], "install": st["installFailures"], "upgrade": st["upgradeFailures"]});
        v["lastAttemptedReleaseAction"] = st["lastAttemptedReleaseAction"].clone();
        v["history"] = json!(st["history"].as_array().map(|h| {
            h.iter()
                .take(3)
                .map(|e| {
                    json!({
            "version": e["version"], "chartVersion": e["chartVersion"], "status": e["status"]})
                })
                .collect::<Vec<_>>()
        }));
    }
    if r.kind == "HelmRepository" {
        v["type"] = r.obj.data["spec"]["type"].clone();
    }
    v
}

/// What one read of the Flux kinds found.
struct FluxRead {
    /// Every object read, assessed, with causes linked.
    rows: Vec<Row>,
    /// kind → the API version it was read at, or "not installed".
    versions: Vec<(&'static str, String)>,
    /// Kinds that could not be read, and why.
    failed: Vec<Value>,
}

impl FluxRead {
    /// When no kind could be read at all: the first failure, as the tool's
    /// error (an answer made only of failures would read as "0 objects").
    fn all_failed(&self) -> Option<ToolError> {
        let all = !self.failed.is_empty() && self.versions.iter().all(|(_, v)| v == "unreadable");
        all.then(|| {
            let f = &self.failed[0];
            let mut e = ToolError::new(
                super::ErrorCode::ApiServerError,
                format!(
                    "no Flux kind could be read; {}: {}",
                    f["part"].as_str().unwrap_or_default(),
                    f["message"].as_str().unwrap_or_default()
                ),
                f["hint"].as_str().unwrap_or_default(),
            );
            if let Ok(code) = serde_json::from_value(f["code"].clone()) {
                e.code = code;
            }
            e
        })
    }

    /// True when at least one of the kinds asked for is served (or failed to
    /// read, which is not "not installed" either).
    fn installed(&self) -> bool {
        !self.failed.is_empty() || self.versions.iter().any(|(_, v)| v != "not installed")
    }
}

/// Lists and assesses the Flux objects of `kinds` (all when empty), each at
/// its own served version; a kind that fails is reported, not fatal.
async fn assess_all(c: &Cluster, kinds: &[&str], namespace: Option<&str>, now_s: i64) -> FluxRead {
    let wanted: Vec<&FluxKind> = KINDS
        .iter()
        .filter(|k| kinds.is_empty() || kinds.contains(&k.arg))
        .collect();
    let lists =
        futures::future::join_all(wanted.iter().map(|k| c.list_kind(&k.api, namespace))).await;
    let mut read = FluxRead {
        rows: Vec::new(),
        versions: Vec::new(),
        failed: Vec::new(),
    };
    for (k, list) in wanted.iter().zip(lists) {
        match list {
            Ok(list) => {
                read.versions.push((k.api.kind, list.version_label()));
                if let KindList::Listed { items, .. } = list {
                    read.rows
                        .extend(items.into_iter().map(|o| assess(k.api.kind, o, now_s)));
                }
            }
            Err(e) => {
                read.versions.push((k.api.kind, "unreadable".into()));
                read.failed.push(failed_part(k.api.kind, &e));
            }
        }
    }
    link_causes(&mut read.rows);
    read
}

/// What `get_cluster_health` needs from Flux, from one list of each kind.
pub(crate) struct FluxFailures {
    /// Failing objects that are not explained by another failing object.
    pub roots: Vec<Value>,
    /// How many failing objects are explained by a root cause.
    pub consequences: usize,
    /// Kinds that could not be read, and why.
    pub failed: Vec<Value>,
    /// The `get_image_automation_status` answer built from the same lists;
    /// `None` when image automation is not installed.
    pub images: Option<ToolOutput>,
}

/// Flux's failing objects for `get_cluster_health`, and the image automation
/// report from the same lists (no second listing of the image kinds).
/// `None` when Flux is not installed.
pub(crate) async fn failures(
    c: &Cluster,
    namespace: Option<&str>,
    now_s: i64,
) -> Option<FluxFailures> {
    let read = assess_all(c, &[], namespace, now_s).await;
    if !read.installed() {
        return None;
    }
    let image_installed = read.versions.iter().any(|(k, v)| {
        KINDS
            .iter()
            .any(|x| x.api.kind == *k && x.api.group == IMAGE)
            && v != "not installed"
    });
    let roots: Vec<Value> = read
        .rows
        .iter()
        .filter(|r| r.problem() && r.caused_by.is_none())
        .map(|r| row_json(r, now_s))
        .collect();
    let consequences = read
        .rows
        .iter()
        .filter(|r| r.problem() && r.caused_by.is_some())
        .count();
    let images = image_installed.then(|| image_report(&read, now_s));
    Some(FluxFailures {
        roots,
        consequences,
        failed: read.failed,
        images,
    })
}

async fn get_flux_status(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["kind", "namespace", "onlyFailing"])?;
    let kind_names: Vec<&str> = KINDS.iter().map(|x| x.arg).collect();
    let kind = a.opt_one_of("kind", &kind_names)?;
    let namespace = a.opt_name("namespace")?;
    let only_failing = a.bool("onlyFailing", false)?;
    let c = cluster(&ctx)?;
    let now_s = now(ctx.settings.now);
    let kinds: Vec<&str> = kind.into_iter().collect();
    let read = assess_all(c, &kinds, namespace.as_deref(), now_s).await;
    if let Some(e) = read.all_failed() {
        return Err(e);
    }
    let api_versions: Map<String, Value> = read
        .versions
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    if !read.installed() {
        return Ok(ToolOutput {
            structured: json!({"installed": false, "verdict": "not installed", "apiVersions": api_versions,
                "message": "Flux is not installed (no toolkit.fluxcd.io group serves these kinds)"}),
            text: "Flux: not installed\n".into(),
        });
    }
    let FluxRead { rows, failed, .. } = &read;
    let count = |s: &str| rows.iter().filter(|r| r.status == s).count();
    let summary = json!({"total": rows.len(), "ready": count("ready"), "failing": count("failing"), "stuck": count("stuck"),
        "suspended": count("suspended"), "progressing": count("progressing"), "static": count("static"), "unknown": count("unknown")});
    let mut roots: Vec<&Row> = rows
        .iter()
        .filter(|r| r.problem() && r.caused_by.is_none())
        .collect();
    roots.sort_by_key(|r| (r.status != "stuck", r.since.unwrap_or(i64::MAX)));
    let root_causes: Vec<Value> = roots
        .iter()
        .map(|r| {
            let explains: Vec<String> = rows
                .iter()
                .filter(|o| o.caused_by.as_deref() == Some(r.id().as_str()))
                .map(Row::id)
                .collect();
            let mut v = row_json(r, now_s);
            v["explains"] = json!(explains);
            v
        })
        .collect();
    let verdict = if count("stuck") > 0 {
        "critical"
    } else if rows.iter().any(Row::problem) {
        "degraded"
    } else if !failed.is_empty() {
        "incomplete"
    } else {
        "healthy"
    };
    let shown: Vec<Value> = rows
        .iter()
        .filter(|r| !only_failing || r.problem() || r.status == "suspended")
        .map(|r| row_json(r, now_s))
        .collect();
    let mut text = format!(
        "Flux: {verdict} — {} objects: {} ready, {} stuck, {} failing, {} suspended, {} static\n",
        rows.len(),
        count("ready"),
        count("stuck"),
        count("failing"),
        count("suspended"),
        count("static")
    );
    for r in &root_causes {
        text.push_str(&format!(
            "{} {}/{}/{}: {} for {} — {}\n",
            r["status"].as_str().unwrap_or_default().to_uppercase(),
            r["kind"].as_str().unwrap_or_default(),
            r["namespace"].as_str().unwrap_or_default(),
            r["name"].as_str().unwrap_or_default(),
            r["reason"].as_str().unwrap_or_default(),
            r["for"].as_str().unwrap_or("?"),
            r["stuckBecause"]
                .as_str()
                .or(r["message"].as_str())
                .unwrap_or_default()
        ));
        for e in r["explains"].as_array().into_iter().flatten() {
            text.push_str(&format!(
                "  explains: {} (a consequence)\n",
                e.as_str().unwrap_or_default()
            ));
        }
        if let Some(h) = r["hint"].as_str() {
            text.push_str(&format!("  next: {h}\n"));
        }
    }
    for f in failed {
        text.push_str(&format!(
            "NOT READ {}: {} — {}\n",
            f["part"].as_str().unwrap_or_default(),
            f["message"].as_str().unwrap_or_default(),
            f["hint"].as_str().unwrap_or_default()
        ));
    }
    let not_served: Vec<&str> = read
        .versions
        .iter()
        .filter(|(_, v)| v == "not installed")
        .map(|(k, _)| *k)
        .collect();
    if !not_served.is_empty() {
        text.push_str(&format!(
            "not served by this cluster: {}\n",
            not_served.join(", ")
        ));
    }
    let structured = json!({"installed": true, "apiVersions": api_versions, "verdict": verdict, "summary": summary,
        "rootCauses": root_causes, "resources": shown, "failedParts": failed, "now": rfc3339(now_s)});
    Ok(ToolOutput { structured, text })
}

/// Registry authentication failure, by reason or registry wording.
fn auth_failure(reason: &str, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    reason == "AuthenticationFailed"
        || m.contains("unauthorized")
        || m.contains("authentication required")
        || m.contains("denied: ")
        || m.contains("401")
}

pub(crate) async fn get_image_automation_status(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["namespace"])?;
    let namespace = a.opt_name("namespace")?;
    let c = cluster(&ctx)?;
    let now_s = now(ctx.settings.now);
    let read = assess_all(c, &IMAGE_KINDS, namespace.as_deref(), now_s).await;
    if let Some(e) = read.all_failed() {
        return Err(e);
    }
    if !read.installed() {
        return Ok(ToolOutput {
            structured: json!({"installed": false, "verdict": "not installed",
                "message": "Flux image automation is not installed (group image.toolkit.fluxcd.io serves none of its kinds)"}),
            text: "Flux image automation: not installed\n".into(),
        });
    }
    Ok(image_report(&read, now_s))
}

/// The image automation kinds, as `kind` arguments name them.
const IMAGE_KINDS: [&str; 3] = ["imagerepository", "imagepolicy", "imageupdateautomation"];

/// The image automation report over the image kinds of `read` (other
/// kinds are ignored; their rows still count as causes).
fn image_report(read: &FluxRead, now_s: i64) -> ToolOutput {
    let all = &read.rows;
    let is_image = |kind: &str| {
        KINDS
            .iter()
            .any(|k| k.api.kind == kind && IMAGE_KINDS.contains(&k.arg))
    };
    let rows: Vec<&Row> = all.iter().filter(|r| is_image(r.kind)).collect();
    let failed: Vec<&Value> = read
        .failed
        .iter()
        .filter(|f| f["part"].as_str().is_some_and(is_image))
        .collect();
    let mut repositories = Vec::new();
    let mut policies = Vec::new();
    let mut automations = Vec::new();
    let mut root_causes = Vec::new();
    for r in &rows {
        let d = &r.obj.data;
        let mut v = row_json(r, now_s);
        match r.kind {
            "ImageRepository" => {
                let scan = &d["status"]["lastScanResult"];
                let scanned = scan["scanTime"].as_str().and_then(parse_rfc3339);
                let interval = spec_secs(d, "interval").unwrap_or(300);
                v["image"] = d["spec"]["image"].clone();
                v["secretRef"] = d["spec"]["secretRef"]["name"].clone();
                v["lastScan"] = json!(scanned.map(rfc3339));
                v["lastScanAge"] = json!(scanned.map(|t| human(now_s - t)));
                v["tagCount"] = scan["tagCount"].clone();
                v["latestTags"] = scan["latestTags"].clone();
                let mut problem = None;
                if r.problem() && auth_failure(&r.reason, &r.message) {
                    let ns = &r.namespace;
                    let fix = match d["spec"]["secretRef"]["name"].as_str() {
                        None => format!(
                            "the registry refuses anonymous access ({} is private) and spec.secretRef is not set: add \
                             spec.secretRef.name pointing at a kubernetes.io/dockerconfigjson Secret in namespace {ns}",
                            d["spec"]["image"].as_str().unwrap_or("the image")
                        ),
                        Some(s) if r.message.contains("not found") => format!(
                            "spec.secretRef names Secret {s:?}, which does not exist in namespace {ns}: create it \
                             (kubernetes.io/dockerconfigjson) or point secretRef at the one that does"
                        ),
                        Some(s) => format!(
                            "the registry rejects the credentials in Secret {ns}/{s}: renew the token (it needs \
                             read:packages for ghcr.io) and check the Secret's registry host"
                        ),
                    };
                    problem = Some(("registry authentication failed", fix));
                } else if r.problem() {
                    problem = Some((
                        "scan failing",
                        format!("get_events object=ImageRepository/{}", r.name),
                    ));
                } else if scanned.is_some_and(|t| now_s - t > 3 * interval.max(60)) {
                    problem = Some((
                        "scan stale",
                        "the last scan is older than three intervals: is image-reflector-controller running?"
                            .to_string(),
                    ));
                }
                if let Some((what, fix)) = problem {
                    v["problem"] = json!(what);
                    v["fix"] = json!(fix);
                    let explains: Vec<String> = all
                        .iter()
                        .filter(|o| o.caused_by.as_deref() == Some(r.id().as_str()))
                        .map(Row::id)
                        .collect();
                    root_causes.push(json!({"object": r.id(), "problem": what, "reason": r.reason, "message": r.message,
                        "since": r.since.map(rfc3339), "for": r.since.map(|t| human(now_s - t)), "fix": fix, "explains": explains}));
                }
                repositories.push(v);
            }
            "ImagePolicy" => {
                let latest = &d["status"]["latestRef"];
                v["repository"] = d["spec"]["imageRepositoryRef"]["name"].clone();
                v["latestImage"] = if latest.is_object() {
                    json!(format!(
                        "{}:{}",
                        latest["name"].as_str().unwrap_or_default(),
                        latest["tag"].as_str().unwrap_or_default()
                    ))
                } else {
                    d["status"]["latestImage"].clone()
                };
                if r.problem() && r.caused_by.is_none() {
                    root_causes.push(json!({"object": r.id(), "problem": "policy failing", "reason": r.reason, "message": r.message}));
                }
                policies.push(v);
            }
            _ => {
                let st = &d["status"];
                v["lastRun"] = st["lastAutomationRunTime"].clone();
                v["lastPushTime"] = st["lastPushTime"].clone();
                v["lastPushCommit"] = st["lastPushCommit"].clone();
                if r.problem() && r.caused_by.is_none() {
                    root_causes.push(json!({"object": r.id(), "problem": "automation failing", "reason": r.reason, "message": r.message}));
                }
                automations.push(v);
            }
        }
    }
    let verdict = if !root_causes.is_empty() {
        "degraded"
    } else if !failed.is_empty() {
        "incomplete"
    } else {
        "healthy"
    };
    let mut text = format!(
        "image automation: {verdict} — {} repositories, {} policies, {} automations\n",
        repositories.len(),
        policies.len(),
        automations.len()
    );
    for rc in &root_causes {
        text.push_str(&format!(
            "{}: {} ({})\n  fix: {}\n",
            rc["object"].as_str().unwrap_or_default(),
            rc["problem"].as_str().unwrap_or_default(),
            rc["reason"].as_str().unwrap_or_default(),
            rc["fix"].as_str().unwrap_or("-")
        ));
    }
    for p in &policies {
        text.push_str(&format!(
            "policy {}: {}\n",
            p["name"].as_str().unwrap_or_default(),
            p["latestImage"]
                .as_str()
                .unwrap_or(if p["consequenceOf"].is_null() {
                    "no image resolved"
                } else {
                    "no image resolved (its repository is failing)"
                })
        ));
    }
    for f in &failed {
        text.push_str(&format!(
            "NOT READ {}: {} — {}\n",
            f["part"].as_str().unwrap_or_default(),
            f["message"].as_str().unwrap_or_default(),
            f["hint"].as_str().unwrap_or_default()
        ));
    }
    let api_versions: Map<String, Value> = read
        .versions
        .iter()
        .filter(|(k, _)| is_image(k))
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let structured = json!({"installed": true, "verdict": verdict, "apiVersions": api_versions, "rootCauses": root_causes,
        "repositories": repositories, "policies": policies, "automations": automations, "failedParts": failed});
    ToolOutput { structured, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    const NOW: i64 = 1_787_206_020;

    #[test]
    fn stuck_rules() {
        let stalled = obj(
            json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "immich", "namespace": "immich"}, "spec": {"interval": "1h"},
            "status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "UpgradeFailed", "message": "x", "lastTransitionTime": "2026-08-04T06:07:31Z"},
                {"type": "Stalled", "status": "True", "reason": "RetriesExceeded", "message": "Failed to upgrade after 1 attempt(s)"}]}}),
        );
        let r = assess("HelmRelease", stalled, NOW);
        assert_eq!(r.status, "stuck");
        assert!(
            r.stuck
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
        assert_eq!(assess("HelmRelease", fresh, NOW).status, "failing");

        let legacy = obj(
            json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "a", "namespace": "b"}, "spec": {"interval": "1h"},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "UpgradeFailed", "message": "upgrade retries exhausted",
                "lastTransitionTime": "2026-08-20T06:02:00Z"}]}}),
        );
        assert_eq!(assess("HelmRelease", legacy, NOW).status, "stuck");

        let oci = obj(
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
            "metadata": {"name": "immich", "namespace": "flux-system"}, "spec": {"type": "oci", "url": "oci://x"}, "status": {}}),
        );
        assert_eq!(assess("HelmRepository", oci, NOW).status, "static");

        let suspended = obj(
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "a", "namespace": "flux-system"}, "spec": {"suspend": true}}),
        );
        assert_eq!(assess("Kustomization", suspended, NOW).status, "suspended");
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
