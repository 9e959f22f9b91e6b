//! `trigger_backup` ✎ (alias `trigger_cronjob`): a Job from an opted-in
//! CronJob's template, as `kubectl create job --from=cronjob/…` makes it,
//! refused while a run is in progress.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ListParams, PostParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::FIELD_MANAGER;
use crate::cluster::Request;
use crate::cluster::time::{now, rfc3339};
use crate::tools::args::Name;
use crate::tools::kube::{api_error, cluster};
use crate::tools::{
    Call, ErrorCode, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset,
};

/// Set on Jobs labscope creates, with the caller.
pub const TRIGGERED_BY: &str = "labscope.io/triggered-by";

/// Arguments of `trigger_backup` / `trigger_cronjob`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerArgs {
    /// Namespace.
    pub namespace: Name,
    /// The CronJob.
    pub cronjob: Name,
}

/// What `trigger_backup` did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TriggerReport {
    /// Namespace.
    pub namespace: String,
    /// The CronJob.
    pub cronjob: String,
    /// The Job created.
    pub job: String,
    /// Its creation time.
    pub created: String,
}

impl Render for TriggerReport {
    fn text(&self) -> String {
        format!(
            "created Job {ns}/{job} from CronJob {cj} at {at}\nnext: get_job_logs namespace={ns} job={job}; \
             get_cronjob_details namespace={ns} cronjob={cj} shows its runs\n",
            ns = self.namespace,
            job = self.job,
            cj = self.cronjob,
            at = self.created,
        )
    }
}

/// `trigger_backup`, or its alias `trigger_cronjob`.
pub fn trigger_tool(name: &'static str) -> ToolDef {
    ToolDef::mutating(
        Meta {
            name,
            title: "Run a CronJob now",
            description: "Run an opted-in CronJob now (a Job from its template).",
            toolset: Toolset::Cluster,
            hints: Hints::CREATE,
        },
        |p, a: &TriggerArgs| p.trigger(&a.namespace),
        trigger,
    )
}

/// The Job name `kubectl create job --from` would pick: the CronJob's name
/// and a suffix, within 63 characters.
pub fn job_name(cronjob: &str, unix: i64) -> String {
    let suffix = format!("-manual-{unix}");
    let keep = 63usize.saturating_sub(suffix.len()).min(cronjob.len());
    format!("{}{suffix}", cronjob[..keep].trim_end_matches(['-', '.']))
}

async fn trigger(
    ctx: Arc<ToolContext>,
    a: TriggerArgs,
    call: Call,
) -> Result<TriggerReport, ToolError> {
    let c = cluster(&ctx)?;
    let (ns, name) = (a.namespace.as_str(), a.cronjob.as_str());
    let cronjobs: Api<CronJob> = Api::namespaced(c.client.clone(), ns);
    let cj = c
        .get_opt(&cronjobs, name, Request::new("get", "cronjobs", Some(ns)))
        .await
        .map_err(api_error)?
        .ok_or_else(|| {
            ToolError::new(
                ErrorCode::NotFound,
                format!("CronJob {ns}/{name} does not exist"),
                format!("get_backup_status namespace={ns} lists every CronJob there"),
            )
        })?;
    let labels: BTreeMap<String, String> = cj.metadata.labels.clone().unwrap_or_default();
    ctx.safety.policy.trigger_opted_in(ns, name, &labels)?;
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    // A run is active when the CronJob says so, or a Job it owns has not
    // finished (status.active lags behind the Jobs).
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), ns);
    let owned = c
        .list(
            &jobs,
            &ListParams::default(),
            Request::new("list", "jobs", Some(ns)),
        )
        .await
        .map_err(api_error)?;
    let running = runs_in_progress(&cj, &owned, name);
    if !running.is_empty() {
        return Err(ToolError::new(
            ErrorCode::Conflict,
            format!(
                "CronJob {ns}/{name} has a run in progress: Job {}",
                running.join(", ")
            ),
            format!(
                "wait for it to finish (get_job_logs namespace={ns} job={})",
                running[0]
            ),
        ));
    }
    let Some(template) = cj.spec.as_ref().map(|s| s.job_template.clone()) else {
        return Err(ToolError::new(
            ErrorCode::ApiServerError,
            format!("CronJob {ns}/{name} has no jobTemplate"),
            "the object is malformed; check it with describe_resource",
        ));
    };
    let unix = now(None);
    let job_name = job_name(name, unix);
    let tmeta = template.metadata.unwrap_or_default();
    let mut job_labels = tmeta.labels.unwrap_or_default();
    job_labels.insert(TRIGGERED_BY.into(), sanitize_label(call.caller()));
    let mut annotations = tmeta.annotations.unwrap_or_default();
    // What `kubectl create job --from=cronjob/…` records.
    annotations.insert("cronjob.kubernetes.io/instantiate".into(), "manual".into());
    let job = Job {
        metadata: ObjectMeta {
            name: Some(job_name.clone()),
            namespace: Some(ns.into()),
            labels: Some(job_labels),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: name.into(),
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    };
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let created = c
        .bounded(
            Request::new("create", "jobs", Some(ns)),
            jobs.create(&params, &job),
        )
        .await
        .map_err(api_error)?;
    Ok(TriggerReport {
        namespace: ns.into(),
        cronjob: name.into(),
        job: created.metadata.name.unwrap_or(job_name),
        created: created
            .metadata
            .creation_timestamp
            .map(|t| t.0.to_string())
            .unwrap_or_else(|| rfc3339(unix)),
    })
}

/// The runs of CronJob `name` in progress: Jobs it owns that have not
/// finished, and those its status lists as active (status.active lags
/// behind the Jobs).
fn runs_in_progress(cj: &CronJob, owned: &[Job], name: &str) -> Vec<String> {
    owned
        .iter()
        .filter(|j| {
            j.metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.iter().any(|r| r.kind == "CronJob" && r.name == name))
        })
        .filter(|j| {
            let s = j.status.as_ref();
            let finished = s.and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
                cs.iter()
                    .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            });
            !finished && s.and_then(|s| s.completion_time.as_ref()).is_none()
        })
        .filter_map(|j| j.metadata.name.clone())
        .chain(
            cj.status
                .as_ref()
                .and_then(|s| s.active.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|r| r.name.clone()),
        )
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A caller name as a label value (63 characters of [A-Za-z0-9-_.]).
fn sanitize_label(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_fit() {
        assert_eq!(
            job_name("pvc-backup", 1_790_000_000),
            "pvc-backup-manual-1790000000"
        );
        let long = "a".repeat(70);
        let n = job_name(&long, 1_790_000_000);
        assert!(n.len() <= 63, "{n}");
        assert!(n.ends_with("-manual-1790000000"));
    }

    #[test]
    fn callers_become_label_values() {
        assert_eq!(sanitize_label("http:api-key"), "http_api-key");
        assert_eq!(sanitize_label("cli"), "cli");
    }
}
