//! `get_image_automation_status`: Flux ImageRepositories (last scan, tags;
//! a registry authentication failure named as such, with the fix),
//! ImagePolicies (the image they resolve to) and ImageUpdateAutomations
//! (last push). Built from the same Flux read as `get_flux_status`.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use super::args::{Name, blank_as_none};
use super::flux::{FluxKind, read};
use super::kube::{cluster_in, failed_text};
use super::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset, label};
pub use crate::assess::images::*;
use crate::cluster::time::now;

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Only this namespace.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub namespace: Option<Name>,
}

/// The tool.
pub fn tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_image_automation_status",
            title: "Image automation",
            description: "Flux image scans, policies, pushes; registry auth failures with the fix.",
            toolset: Toolset::Flux,
            hints: Hints::READ,
        },
        run,
    )
}

/// The image automation kinds.
const KINDS: [FluxKind; 3] = [
    FluxKind::ImageRepository,
    FluxKind::ImagePolicy,
    FluxKind::ImageUpdateAutomation,
];

async fn run(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<Images, ToolError> {
    let c = cluster_in(&ctx, a.namespace.as_deref()).await?;
    let now_s = now(ctx.settings.now);
    let read = read(c, &KINDS, a.namespace.as_deref(), now_s).await;
    if let Some(e) = read.all_failed() {
        return Err(e);
    }
    Ok(report(&read, now_s))
}

impl Render for Images {
    fn text(&self) -> String {
        if !self.installed {
            return "Flux image automation: not installed (group image.toolkit.fluxcd.io serves none of its kinds)\n".into();
        }
        let mut text = format!(
            "image automation: {} — {} repositories, {} policies, {} automations\n",
            label(&self.verdict),
            self.repositories.len(),
            self.policies.len(),
            self.automations.len()
        );
        for rc in &self.root_causes {
            text.push_str(&format!(
                "{}: {} ({}: {}){}\n",
                rc.object,
                rc.problem,
                rc.reason,
                rc.message,
                rc.fix
                    .as_deref()
                    .map(|f| format!("\n  fix: {f}"))
                    .unwrap_or_default()
            ));
            for e in &rc.explains {
                text.push_str(&format!("  explains: {e} (a consequence)\n"));
            }
        }
        for p in &self.policies {
            text.push_str(&format!(
                "policy {}: {}\n",
                p.object.name,
                p.latest_image
                    .as_deref()
                    .unwrap_or(if p.object.consequence_of.is_none() {
                        "no image resolved"
                    } else {
                        "no image resolved (its repository is failing)"
                    })
            ));
        }
        text.push_str(&failed_text(&self.failed_parts));
        text
    }
}
