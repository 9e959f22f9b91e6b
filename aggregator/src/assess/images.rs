//! Flux image automation judged: ImageRepositories scanning, ImagePolicies
//! resolving, ImageUpdateAutomations pushing, and each root cause with its
//! fix (an expired registry token, a policy that matches nothing). Pure,
//! over the Flux read `tools/images.rs` makes of the image kinds.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::FailedPart;
use super::flux::{FluxObject, auth_failure};
use super::flux_report::FluxRead;
use crate::cluster::time::{human, parse_go_duration, parse_rfc3339, rfc3339};

/// An ImageRepository.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    /// The object, judged.
    #[serde(flatten)]
    pub object: FluxObject,
    /// Image scanned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Credentials Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<String>,
    /// Last scan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_scan: Option<String>,
    /// Its age.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_scan_age: Option<String>,
    /// Tags found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_count: Option<i64>,
    /// The newest tags.
    pub latest_tags: Vec<String>,
    /// What is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// An ImagePolicy.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// The object, judged.
    #[serde(flatten)]
    pub object: FluxObject,
    /// Its ImageRepository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The image it resolves to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_image: Option<String>,
}

/// An ImageUpdateAutomation.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Automation {
    /// The object, judged.
    #[serde(flatten)]
    pub object: FluxObject,
    /// Last run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    /// Last push.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_push_time: Option<String>,
    /// Commit pushed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_push_commit: Option<String>,
}

/// A failing image object that is not explained by another.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageRootCause {
    /// Kind/namespace/name.
    pub object: String,
    /// What is wrong.
    pub problem: String,
    /// Ready's reason.
    pub reason: String,
    /// Ready's message.
    pub message: String,
    /// Since when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// For how long.
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Failing objects that are its consequences.
    pub explains: Vec<String>,
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum ImagesVerdict {
    /// Scans, policies and pushes working.
    #[serde(rename = "healthy")]
    Healthy,
    /// Something fails.
    #[serde(rename = "degraded")]
    Degraded,
    /// A kind could not be read.
    #[serde(rename = "incomplete")]
    Incomplete,
    /// Image automation is not installed.
    #[serde(rename = "not installed")]
    NotInstalled,
}

/// Image automation.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Images {
    /// Its kinds are served.
    pub installed: bool,
    /// Verdict.
    pub verdict: ImagesVerdict,
    /// Version each kind was read at.
    pub api_versions: BTreeMap<String, String>,
    /// What fails, with the fix.
    pub root_causes: Vec<ImageRootCause>,
    /// ImageRepositories.
    pub repositories: Vec<Repository>,
    /// ImagePolicies.
    pub policies: Vec<Policy>,
    /// ImageUpdateAutomations.
    pub automations: Vec<Automation>,
    /// Kinds that could not be read.
    pub failed_parts: Vec<FailedPart>,
}

/// One of the image automation kinds.
fn is_image(kind: &str) -> bool {
    matches!(
        kind,
        "ImageRepository" | "ImagePolicy" | "ImageUpdateAutomation"
    )
}

/// The image automation report over the image kinds of `read` (other kinds
/// are ignored; their rows still count as causes). Pure.
pub fn report(read: &FluxRead, now_s: i64) -> Images {
    let api_versions: BTreeMap<String, String> = read
        .versions
        .iter()
        .filter(|(k, _)| is_image(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let failed: Vec<FailedPart> = read
        .failed
        .iter()
        .filter(|f| is_image(&f.part))
        .cloned()
        .collect();
    let installed = !failed.is_empty() || api_versions.values().any(|v| v != "not installed");
    let explains = |id: &str| -> Vec<String> {
        read.rows
            .iter()
            .filter(|o| o.object.consequence_of.as_deref() == Some(id))
            .map(|o| o.object.id())
            .collect()
    };
    let mut out = Images {
        installed,
        verdict: ImagesVerdict::NotInstalled,
        api_versions,
        root_causes: Vec::new(),
        repositories: Vec::new(),
        policies: Vec::new(),
        automations: Vec::new(),
        failed_parts: failed,
    };
    if !installed {
        return out;
    }
    for r in read.rows.iter().filter(|r| is_image(&r.object.kind)) {
        let o = &r.object;
        let (spec, st) = (&r.fields.spec, &r.fields.status);
        let root = |problem: &str, fix: Option<String>| ImageRootCause {
            object: o.id(),
            problem: problem.into(),
            reason: o.reason.clone(),
            message: o.message.clone(),
            since: o.since.clone(),
            for_: o.for_.clone(),
            fix,
            explains: explains(&o.id()),
        };
        match o.kind.as_str() {
            "ImageRepository" => {
                let scan = st.last_scan_result.clone().unwrap_or_default();
                let scanned = scan.scan_time.as_deref().and_then(parse_rfc3339);
                let interval = spec
                    .interval
                    .as_deref()
                    .and_then(parse_go_duration)
                    .unwrap_or(300);
                let secret = spec.secret_ref.as_ref().map(|r| r.name.clone());
                let problem =
                    repository_problem(o, spec, secret.as_deref(), scanned, interval, now_s);
                if let Some((what, fix)) = &problem {
                    out.root_causes.push(root(what, Some(fix.clone())));
                }
                out.repositories.push(Repository {
                    object: o.clone(),
                    image: spec.image.clone(),
                    secret_ref: secret,
                    last_scan: scanned.map(rfc3339),
                    last_scan_age: scanned.map(|t| human(now_s - t)),
                    tag_count: scan.tag_count,
                    latest_tags: scan.latest_tags,
                    problem: problem.as_ref().map(|(w, _)| w.to_string()),
                    fix: problem.map(|(_, f)| f),
                });
            }
            "ImagePolicy" => {
                if o.status.problem() && o.consequence_of.is_none() {
                    out.root_causes.push(root("policy failing", None));
                }
                out.policies.push(Policy {
                    object: o.clone(),
                    repository: spec.image_repository_ref.as_ref().map(|r| r.name.clone()),
                    latest_image: match &st.latest_ref {
                        Some(l) => Some(format!("{}:{}", l.name, l.tag)),
                        None => st.latest_image.clone(),
                    },
                });
            }
            _ => {
                if o.status.problem() && o.consequence_of.is_none() {
                    out.root_causes.push(root("automation failing", None));
                }
                out.automations.push(Automation {
                    object: o.clone(),
                    last_run: st.last_automation_run_time.clone(),
                    last_push_time: st.last_push_time.clone(),
                    last_push_commit: st.last_push_commit.clone(),
                });
            }
        }
    }
    out.verdict = if !out.root_causes.is_empty() {
        ImagesVerdict::Degraded
    } else if !out.failed_parts.is_empty() {
        ImagesVerdict::Incomplete
    } else {
        ImagesVerdict::Healthy
    };
    out
}

/// What is wrong with an ImageRepository, and the fix: the registry refuses
/// its credentials (or needs some), its scan fails, or the last scan is
/// older than three intervals.
fn repository_problem(
    o: &FluxObject,
    spec: &super::flux::Spec,
    secret: Option<&str>,
    scanned: Option<i64>,
    interval: i64,
    now_s: i64,
) -> Option<(&'static str, String)> {
    if o.status.problem() && auth_failure(&o.reason, &o.message) {
        let ns = &o.namespace;
        let fix = match secret {
            None => format!(
                "the registry refuses anonymous access ({} is private) and spec.secretRef is not set: add \
                 spec.secretRef.name pointing at a kubernetes.io/dockerconfigjson Secret in namespace {ns}",
                spec.image.as_deref().unwrap_or("the image")
            ),
            Some(sec) if o.message.contains("not found") => format!(
                "spec.secretRef names Secret {sec:?}, which does not exist in namespace {ns}: create it \
                 (kubernetes.io/dockerconfigjson) or point secretRef at the one that does"
            ),
            Some(sec) => format!(
                "the registry rejects the credentials in Secret {ns}/{sec}: renew the token (it needs \
                 read:packages for ghcr.io) and check the Secret's registry host"
            ),
        };
        return Some(("registry authentication failed", fix));
    } else if o.status.problem() {
        return Some((
            "scan failing",
            format!("get_events object=ImageRepository/{}", o.name),
        ));
    } else if scanned.is_some_and(|t| now_s - t > 3 * interval.max(60)) {
        return Some((
            "scan stale",
            "the last scan is older than three intervals: is image-reflector-controller running?"
                .to_string(),
        ));
    }
    None
}
