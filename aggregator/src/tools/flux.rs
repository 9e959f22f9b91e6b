//! `get_flux_status`: Kustomizations, HelmReleases, sources and image
//! automation, each kind read at its own served version (Flux promotes kinds
//! in different releases), judged by `assess::flux`: stuck objects first,
//! root causes apart from their consequences. `read` is shared with
//! `get_image_automation_status` and `get_cluster_health`.

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use super::args::{Name, blank_as_none};
use super::kube::{FailedPart, cluster_in, failed_text};
use super::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset, label};
use crate::assess::flux::{FluxState, assess, link_causes};
pub use crate::assess::flux_report::*;
use crate::choice;
use crate::cluster::Cluster;
use crate::cluster::kinds::{CustomKind, KindList};
use crate::cluster::time::now;

pub(crate) const SOURCE: &str = "source.toolkit.fluxcd.io";
pub(crate) const KUSTOMIZE: &str = "kustomize.toolkit.fluxcd.io";
pub(crate) const HELM: &str = "helm.toolkit.fluxcd.io";
pub(crate) const IMAGE: &str = "image.toolkit.fluxcd.io";

choice! {
    /// A Flux kind, as the `kind` argument spells it.
    pub enum FluxKind {
        /// kustomize.toolkit.fluxcd.io Kustomization.
        Kustomization = "kustomization",
        /// helm.toolkit.fluxcd.io HelmRelease.
        HelmRelease = "helmrelease",
        /// source.toolkit.fluxcd.io GitRepository.
        GitRepository = "gitrepository",
        /// source.toolkit.fluxcd.io OCIRepository.
        OciRepository = "ocirepository",
        /// source.toolkit.fluxcd.io HelmRepository.
        HelmRepository = "helmrepository",
        /// source.toolkit.fluxcd.io HelmChart.
        HelmChart = "helmchart",
        /// source.toolkit.fluxcd.io Bucket.
        Bucket = "bucket",
        /// image.toolkit.fluxcd.io ImageRepository.
        ImageRepository = "imagerepository",
        /// image.toolkit.fluxcd.io ImagePolicy.
        ImagePolicy = "imagepolicy",
        /// image.toolkit.fluxcd.io ImageUpdateAutomation.
        ImageUpdateAutomation = "imageupdateautomation",
    }
}

impl FluxKind {
    /// The API kind.
    pub fn api(self) -> CustomKind {
        match self {
            FluxKind::Kustomization => {
                CustomKind::new(KUSTOMIZE, "Kustomization", "kustomizations")
            }
            FluxKind::HelmRelease => CustomKind::new(HELM, "HelmRelease", "helmreleases"),
            FluxKind::GitRepository => CustomKind::new(SOURCE, "GitRepository", "gitrepositories"),
            FluxKind::OciRepository => CustomKind::new(SOURCE, "OCIRepository", "ocirepositories"),
            FluxKind::HelmRepository => {
                CustomKind::new(SOURCE, "HelmRepository", "helmrepositories")
            }
            FluxKind::HelmChart => CustomKind::new(SOURCE, "HelmChart", "helmcharts"),
            FluxKind::Bucket => CustomKind::new(SOURCE, "Bucket", "buckets"),
            FluxKind::ImageRepository => {
                CustomKind::new(IMAGE, "ImageRepository", "imagerepositories")
            }
            FluxKind::ImagePolicy => CustomKind::new(IMAGE, "ImagePolicy", "imagepolicies"),
            FluxKind::ImageUpdateAutomation => {
                CustomKind::new(IMAGE, "ImageUpdateAutomation", "imageupdateautomations")
            }
        }
    }

    /// One of the image automation kinds.
    pub fn is_image(self) -> bool {
        self.api().group == IMAGE
    }
}

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Args {
    /// Only this kind.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub kind: Option<FluxKind>,
    /// Only this namespace.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub namespace: Option<Name>,
    /// Only objects that fail (and suspended ones).
    #[serde(default)]
    pub only_failing: bool,
}

impl FluxRead {
    /// When no kind could be read at all: the first failure (an answer made
    /// only of failures would read as "0 objects").
    pub fn all_failed(&self) -> Option<ToolError> {
        let all = !self.failed.is_empty() && self.versions.values().all(|v| v == "unreadable");
        all.then(|| {
            let f = &self.failed[0];
            ToolError::new(
                f.code,
                format!("no Flux kind could be read; {}: {}", f.part, f.message),
                f.hint.clone(),
            )
        })
    }
}

/// Lists and judges the objects of `kinds` (every kind when empty), each at
/// its own served version; a kind that fails is reported, not fatal.
pub async fn read(
    c: &Cluster,
    kinds: &[FluxKind],
    namespace: Option<&str>,
    now_s: i64,
) -> FluxRead {
    let wanted: Vec<FluxKind> = FluxKind::ALL
        .iter()
        .copied()
        .filter(|k| kinds.is_empty() || kinds.contains(k))
        .collect();
    let apis: Vec<CustomKind> = wanted.iter().map(|k| k.api()).collect();
    let lists = futures::future::join_all(apis.iter().map(|k| c.list_kind(k, namespace))).await;
    let mut read = FluxRead {
        rows: Vec::new(),
        versions: BTreeMap::new(),
        failed: Vec::new(),
    };
    for (k, list) in apis.iter().zip(lists) {
        match list {
            Ok(list) => {
                read.versions
                    .insert(k.kind.to_string(), list.version_label());
                if let KindList::Listed { items, .. } = list {
                    read.rows
                        .extend(items.into_iter().map(|o| assess(k.kind, o, now_s)));
                }
            }
            Err(e) => {
                read.versions
                    .insert(k.kind.to_string(), "unreadable".into());
                read.failed.push(FailedPart::new(k.kind, &e));
            }
        }
    }
    link_causes(&mut read.rows);
    read
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_flux_status",
            title: "Flux status",
            description: "Flux objects with STUCK detection; root causes apart from consequences.",
            toolset: Toolset::Flux,
            hints: Hints::READ,
        },
        run,
    )
}

async fn run(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<FluxStatus, ToolError> {
    let c = cluster_in(&ctx, a.namespace.as_deref()).await?;
    let now_s = now(ctx.settings.now);
    let kinds: Vec<FluxKind> = a.kind.into_iter().collect();
    let read = read(c, &kinds, a.namespace.as_deref(), now_s).await;
    if let Some(e) = read.all_failed() {
        return Err(e);
    }
    let mut out = status(&read, a.only_failing, now_s);
    name_the_operations(&ctx, &mut out);
    Ok(out)
}

/// With operations on, a stuck HelmRelease that labscope may recover says so
/// first in its hint: the fix is one call away (`recover_helmrelease`),
/// not only a command for a person.
pub fn name_the_operations(ctx: &ToolContext, out: &mut FluxStatus) {
    let policy = &ctx.safety.policy;
    if !policy.mutations_on() {
        return;
    }
    let objects = out
        .root_causes
        .iter_mut()
        .map(|r| &mut r.object)
        .chain(out.resources.iter_mut());
    for o in objects {
        if o.kind == "HelmRelease" && o.stuck && policy.flux(&o.namespace).is_ok() {
            let rest = o.hint.take().unwrap_or_default();
            o.hint = Some(format!(
                "recover_helmrelease namespace={} name={} applies Flux's recovery from here (an operation: \
                 it changes the release). {rest}",
                o.namespace, o.name
            ));
        }
    }
}

impl Render for FluxStatus {
    fn text(&self) -> String {
        let Some(s) = &self.summary else {
            return "Flux: not installed (no toolkit.fluxcd.io group serves these kinds)\n".into();
        };
        let mut text = format!(
            "Flux: {} — {} objects: {} ready, {} stuck, {} failing, {} suspended, {} progressing, {} static\n",
            label(&self.verdict),
            s.total,
            s.ready,
            s.stuck,
            s.failing,
            s.suspended,
            s.progressing,
            s.static_
        );
        for r in &self.root_causes {
            let o = &r.object;
            text.push_str(&format!(
                "{} {}/{}/{}: {} for {} — {}\n",
                label(&o.status).to_uppercase(),
                o.kind,
                o.namespace,
                o.name,
                o.reason,
                o.for_.as_deref().unwrap_or("?"),
                o.stuck_because.as_deref().unwrap_or(&o.message)
            ));
            if o.stuck_because.is_some() && !o.message.is_empty() {
                text.push_str(&format!("  message: {}\n", o.message));
            }
            match (&o.attempted_revision, &o.applied_revision) {
                (Some(attempted), Some(applied)) if attempted != applied => text.push_str(
                    &format!("  revision: attempted {attempted}, applied {applied}\n"),
                ),
                (Some(attempted), None) => text.push_str(&format!(
                    "  revision: attempted {attempted}, none applied\n"
                )),
                _ => {}
            }
            for e in &r.explains {
                text.push_str(&format!("  explains: {e} (a consequence)\n"));
            }
            if let Some(h) = &o.hint {
                text.push_str(&format!("  next: {h}\n"));
            }
        }
        for o in self
            .resources
            .iter()
            .filter(|o| o.status == FluxState::Suspended)
        {
            text.push_str(&format!(
                "SUSPENDED {}/{}/{}\n",
                o.kind, o.namespace, o.name
            ));
        }
        text.push_str(&failed_text(&self.failed_parts));
        let not_served: Vec<&str> = self
            .api_versions
            .iter()
            .filter(|(_, v)| *v == "not installed")
            .map(|(k, _)| k.as_str())
            .collect();
        if !not_served.is_empty() {
            text.push_str(&format!(
                "not served by this cluster: {}\n",
                not_served.join(", ")
            ));
        }
        text
    }
}
