//! `get_ingress_status`: Ingresses with their hosts, each TLS secret's
//! cert-manager Certificate (ready, days left), and each backend Service's
//! ready endpoints from EndpointSlices. A backend whose Deployment is scaled
//! to zero is parked, not down.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};
use schemars::JsonSchema;
use serde::Deserialize;

use super::args::{Name, blank_as_none};
use super::kube::{FailedPart, api_error, cluster_in};
use super::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset, label};
pub use crate::assess::ingress::*;
use crate::cluster::kinds::CustomKind;
use crate::cluster::time::now;
use crate::cluster::{Cluster, Error as ClusterError, Request};

const CERTIFICATE: CustomKind = CustomKind::new("cert-manager.io", "Certificate", "certificates");

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
            name: "get_ingress_status",
            title: "Ingresses",
            description: "Ingresses: hosts, certificate validity, ready endpoints per backend.",
            toolset: Toolset::Cluster,
            hints: Hints::READ,
        },
        run,
    )
}

async fn run(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<Ingresses, ToolError> {
    let c = cluster_in(&ctx, a.namespace.as_deref()).await?;
    read(c, a.namespace.as_deref(), now(ctx.settings.now))
        .await
        .map_err(api_error)
}

/// Reads Ingresses, EndpointSlices, Services, Deployments and Certificates.
pub async fn read(c: &Cluster, ns: Option<&str>, now_s: i64) -> Result<Ingresses, ClusterError> {
    fn api<K>(c: &Cluster, ns: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        match ns {
            Some(n) => Api::namespaced(c.client.clone(), n),
            None => Api::all(c.client.clone()),
        }
    }
    let all = ListParams::default();
    let (ing_api, slice_api, svc_api, dep_api) = (
        api::<Ingress>(c, ns),
        api::<EndpointSlice>(c, ns),
        api::<Service>(c, ns),
        api::<Deployment>(c, ns),
    );
    let (ingresses, slices, services, deployments) = tokio::try_join!(
        c.list(&ing_api, &all, Request::new("list", "ingresses", ns)),
        c.list(&slice_api, &all, Request::new("list", "endpointslices", ns)),
        c.list(&svc_api, &all, Request::new("list", "services", ns)),
        c.list(&dep_api, &all, Request::new("list", "deployments", ns)),
    )?;
    let mut failed = Vec::new();
    let certificates = match c.list_kind(&CERTIFICATE, ns).await {
        Ok(l) => l.items().to_vec(),
        Err(e) => {
            failed.push(FailedPart::new("Certificate", &e));
            Vec::new()
        }
    };
    let joined = crate::assess::ingress::Joined {
        services: &services,
        deployments: &deployments,
        certificates: &certificates,
    };
    Ok(assess(&ingresses, &slices, &joined, failed, now_s))
}

impl Render for Ingresses {
    fn text(&self) -> String {
        let mut text = format!(
            "ingresses: {} — {} ingresses, {} backend(s) down, {} certificate problem(s)\n",
            label(&self.verdict),
            self.summary.ingresses,
            self.summary.backends_down,
            self.summary.certificate_problems
        );
        for r in &self.ingresses {
            let mut notes = Vec::new();
            for b in r.backends.iter().filter(|b| b.state != BackendState::Ok) {
                notes.push(format!(
                    "backend {} {} ({})",
                    b.service,
                    label(&b.state),
                    b.note
                ));
            }
            for t in r.tls.iter().filter(|t| t.valid_certificate == Some(false)) {
                notes.push(format!(
                    "certificate {} not valid ({})",
                    t.secret_name,
                    t.certificate
                        .as_ref()
                        .and_then(|c| c.reason.clone())
                        .unwrap_or_else(|| "expired".into())
                ));
            }
            if !notes.is_empty() {
                text.push_str(&format!(
                    "{}/{} [{}]: {}\n",
                    r.namespace,
                    r.name,
                    r.hosts.join(","),
                    notes.join("; ")
                ));
            }
        }
        text.push_str(&super::kube::failed_text(&self.failed_parts));
        text
    }
}
