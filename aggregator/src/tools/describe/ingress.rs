//! An Ingress described: routes, TLS secrets, addresses
//! (get_ingress_status checks the backends and certificates).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::Serialize;

use super::{Kind, Summary, get_in};
use crate::cluster::Cluster;
use crate::tools::ToolError;

/// A host/path → Service rule.
#[derive(Debug, Serialize, JsonSchema)]
pub struct IngressRoute {
    /// Host.
    pub host: String,
    /// Path.
    pub path: String,
    /// Service.
    pub service: String,
    /// Port.
    pub port: String,
}

/// An Ingress (get_ingress_status checks backends and certificates).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSummary {
    /// IngressClass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Routes.
    pub routes: Vec<IngressRoute>,
    /// TLS secrets and their hosts.
    pub tls: BTreeMap<String, Vec<String>>,
    /// Load balancer addresses.
    pub addresses: Vec<String>,
}

/// Reads Ingress `name`.
pub(super) async fn describe(
    c: &Cluster,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
) -> Result<(ObjectMeta, Summary), ToolError> {
    let i: Ingress = get_in(c, kind, ns, name).await?;
    let spec = i.spec.clone().unwrap_or_default();
    let routes = spec
        .rules
        .iter()
        .flatten()
        .flat_map(|r| {
            let host = r.host.clone().unwrap_or_else(|| "*".into());
            r.http.iter().flat_map(|h| h.paths.clone()).map(move |p| {
                let svc = p.backend.service.clone();
                IngressRoute {
                    host: host.clone(),
                    path: p.path.unwrap_or_else(|| "/".into()),
                    service: svc.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                    port: svc
                        .and_then(|s| s.port)
                        .and_then(|p| p.number.map(|n| n.to_string()).or(p.name))
                        .unwrap_or_default(),
                }
            })
        })
        .collect();
    let summary = IngressSummary {
        class: spec.ingress_class_name.clone(),
        routes,
        tls: spec
            .tls
            .iter()
            .flatten()
            .map(|t| {
                (
                    t.secret_name.clone().unwrap_or_default(),
                    t.hosts.clone().unwrap_or_default(),
                )
            })
            .collect(),
        addresses: crate::tools::ingress::addresses(&i),
    };
    Ok((i.metadata, Summary::Ingress(summary)))
}

impl IngressSummary {
    /// Its lines of the text rendering.
    pub(super) fn text(&self, out: &mut String) {
        let i = self;
        for r in &i.routes {
            out.push_str(&format!(
                "route {}{} → {}:{}\n",
                r.host, r.path, r.service, r.port
            ));
        }
        for (secret, hosts) in &i.tls {
            out.push_str(&format!("tls {secret} for {}\n", hosts.join(",")));
        }
        out.push_str("get_ingress_status checks the backends and certificates\n");
    }
}
