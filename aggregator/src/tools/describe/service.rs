//! A Service described: type, ports, selector and its endpoints from the
//! EndpointSlices.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use schemars::JsonSchema;
use serde::Serialize;

use super::{Kind, Summary, get_in};
use crate::cluster::{Cluster, Request};
use crate::tools::ToolError;
use crate::tools::kube::api_error;

/// A Service port.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortRow {
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port.
    pub port: i32,
    /// Target port.
    pub target_port: String,
    /// Protocol.
    pub protocol: String,
    /// NodePort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
}

/// An endpoint of a Service.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EndpointRow {
    /// Address.
    pub address: String,
    /// Ready.
    pub ready: bool,
    /// Pod behind it.
    pub pod: String,
    /// Its node.
    pub node: String,
}

/// A Service.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSummary {
    /// ClusterIP, NodePort, LoadBalancer, ExternalName.
    #[serde(rename = "type")]
    pub service_type: String,
    /// Cluster IP.
    #[serde(rename = "clusterIP")]
    pub cluster_ip: String,
    /// Ports.
    pub ports: Vec<PortRow>,
    /// Selector.
    pub selector: BTreeMap<String, String>,
    /// Endpoints, from EndpointSlices.
    pub endpoints: Vec<EndpointRow>,
    /// Ready endpoints.
    pub ready_endpoints: usize,
}

/// Reads Service `name` and its endpoints.
pub(super) async fn describe(
    c: &Cluster,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
) -> Result<(ObjectMeta, Summary), ToolError> {
    let nsv = ns.unwrap_or_default();
    let s: Service = get_in(c, kind, ns, name).await?;
    let spec = s.spec.clone().unwrap_or_default();
    let api: Api<EndpointSlice> = Api::namespaced(c.client.clone(), nsv);
    let slices = c
        .list(
            &api,
            &ListParams::default().labels(&format!("kubernetes.io/service-name={name}")),
            Request::new("list", "endpointslices", ns),
        )
        .await
        .map_err(api_error)?;
    let endpoints: Vec<EndpointRow> = slices
        .iter()
        .flat_map(|sl| sl.endpoints.iter())
        .map(|e| EndpointRow {
            address: e.addresses.first().cloned().unwrap_or_default(),
            ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
            pod: e
                .target_ref
                .as_ref()
                .and_then(|t| t.name.clone())
                .unwrap_or_default(),
            node: e.node_name.clone().unwrap_or_default(),
        })
        .collect();
    let summary = ServiceSummary {
        service_type: spec.type_.clone().unwrap_or_else(|| "ClusterIP".into()),
        cluster_ip: spec.cluster_ip.clone().unwrap_or_default(),
        ports: spec
            .ports
            .iter()
            .flatten()
            .map(|p| PortRow {
                name: p.name.clone(),
                port: p.port,
                target_port: match &p.target_port {
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i)) => {
                        i.to_string()
                    }
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => {
                        s.clone()
                    }
                    None => p.port.to_string(),
                },
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                node_port: p.node_port,
            })
            .collect(),
        selector: spec.selector.clone().unwrap_or_default(),
        ready_endpoints: endpoints.iter().filter(|e| e.ready).count(),
        endpoints,
    };
    Ok((s.metadata, Summary::Service(summary)))
}

impl ServiceSummary {
    /// Its lines of the text rendering.
    pub(super) fn text(&self, out: &mut String) {
        let s = self;
        out.push_str(&format!(
            "{} {} ports {}; {} of {} endpoints ready\n",
            s.service_type,
            s.cluster_ip,
            s.ports
                .iter()
                .map(|p| format!("{}→{}/{}", p.port, p.target_port, p.protocol))
                .collect::<Vec<_>>()
                .join(","),
            s.ready_endpoints,
            s.endpoints.len()
        ));
        for e in &s.endpoints {
            out.push_str(&format!(
                "endpoint {} {} pod {} node {}\n",
                e.address,
                if e.ready { "ready" } else { "NOT ready" },
                e.pod,
                e.node
            ));
        }
    }
}
