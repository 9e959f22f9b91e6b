//! Resource tools: `get_ingress_status` (hosts, TLS certificate expiry,
//! backends with ready endpoints from EndpointSlices), `get_pvcs` (phase,
//! capacity, class, volume, node or NFS source, the pods that mount them) and
//! `describe_resource` (spec and status summary with recent events, secret
//! values redacted).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use serde_json::{Map, Value, json};

use super::args::Args;
use super::cluster::{api_error, cluster};
use super::{ErrorCode, ToolContext, ToolDef, ToolError, ToolOutput};
use crate::cluster::kinds::{CustomKind, condition};
use crate::cluster::time::{now, parse_rfc3339, rfc3339};
use crate::cluster::{Cluster, Request};
use crate::redact::{redact, secret_name};

/// describe_resource kinds: (argument, group, version, kind, plural, namespaced).
const KINDS: &[(&str, &str, &str, &str, &str, bool)] = &[
    (
        "deployment",
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
    ),
    (
        "statefulset",
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
    ),
    ("daemonset", "apps", "v1", "DaemonSet", "daemonsets", true),
    ("pod", "", "v1", "Pod", "pods", true),
    ("service", "", "v1", "Service", "services", true),
    ("configmap", "", "v1", "ConfigMap", "configmaps", true),
    ("node", "", "v1", "Node", "nodes", false),
    ("job", "batch", "v1", "Job", "jobs", true),
    ("cronjob", "batch", "v1", "CronJob", "cronjobs", true),
    (
        "ingress",
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
    ),
    (
        "pvc",
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
];

/// The resource tools.
pub fn tools() -> Vec<ToolDef> {
    let kinds: Vec<&str> = KINDS.iter().map(|k| k.0).collect();
    vec![
        ToolDef::untyped(
            super::Meta {
                name: "get_ingress_status",
                title: "Ingresses, certificates and backend health",
                description: "Ingresses with hosts, class and address; each TLS secret with its cert-manager Certificate \
                (ready, notAfter, days left); each backend Service with its ready and not-ready endpoints from \
                EndpointSlices. A backend with no ready endpoint is down, unless its Deployment is scaled to 0 \
                (reported as \"scaled to zero\": parked on purpose, or drift from Git). Optional `namespace`.",
                toolset: super::Toolset::Cluster,
                hints: super::Hints::READ,
            },
            json!({"type": "object", "properties": {"namespace": {"type": "string"}}, "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "verdict": {"type": "string"}, "ingresses": {"type": "array"}, "summary": {"type": "object"}},
                "required": ["verdict", "ingresses"]}),
            |ctx, args| Box::pin(get_ingress_status(ctx, args)),
        ),
        ToolDef::untyped(
            super::Meta {
                name: "get_pvcs",
                title: "PersistentVolumeClaims",
                description: "PVCs with phase, requested and bound capacity, storage class, volume, access modes, where \
                the data lives (the node of a local-path volume, or the NFS server and path) and the pods that mount \
                each one. Pending or lost claims are problems; unmounted ones are noted. Optional `namespace`.",
                toolset: super::Toolset::Cluster,
                hints: super::Hints::READ,
            },
            json!({"type": "object", "properties": {"namespace": {"type": "string"}}, "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "verdict": {"type": "string"}, "pvcs": {"type": "array"}, "summary": {"type": "object"}},
                "required": ["verdict", "pvcs"]}),
            |ctx, args| Box::pin(get_pvcs(ctx, args)),
        ),
        ToolDef::untyped(
            super::Meta {
                name: "describe_resource",
                title: "Describe a resource",
                description: "Spec and status summary of one object (deployment, statefulset, daemonset, pod, service, \
                configmap, node, job, cronjob, ingress, pvc) with its conditions, its pods where it has any, and the \
                events about it from the last 24 hours. Secret values are redacted: env values that look secret, \
                ConfigMap values with credentials, and Secret references are named but never read. `namespace` is \
                ignored for nodes.",
                toolset: super::Toolset::Cluster,
                hints: super::Hints::READ,
            },
            json!({"type": "object", "properties": {
                "kind": {"type": "string", "enum": kinds}, "namespace": {"type": "string"}, "name": {"type": "string"}},
                "required": ["kind", "name"], "additionalProperties": false}),
            json!({"type": "object", "properties": {
                "kind": {"type": "string"}, "namespace": {"type": "string"}, "name": {"type": "string"},
                "summary": {"type": "object"}, "events": {"type": "array"}},
                "required": ["kind", "name", "summary", "events"]}),
            |ctx, args| Box::pin(describe_resource(ctx, args)),
        ),
    ]
}

fn ar(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// Lists a built-in resource as JSON objects (paged, bounded).
async fn list_json(
    c: &Cluster,
    (group, version, kind, plural): (&str, &str, &str, &'static str),
    namespace: Option<&str>,
) -> Result<Vec<Value>, ToolError> {
    let res = ar(group, version, kind, plural);
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(c.client.clone(), ns, &res),
        None => Api::all_with(c.client.clone(), &res),
    };
    c.list(
        &api,
        &ListParams::default(),
        Request::new("list", plural, namespace),
    )
    .await
    .map(|items| items.into_iter().map(to_json).collect())
    .map_err(api_error)
}

const CERTIFICATE: CustomKind = CustomKind::new("cert-manager.io", "Certificate", "certificates");

fn to_json(o: DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn key(o: &Value) -> (String, String) {
    (
        o["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// A Service's `spec.selector` (a plain map) matches `labels`.
fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// A workload's `spec.selector` (a LabelSelector: `matchLabels` and
/// `matchExpressions`) matches `labels`. An empty or unreadable selector
/// matches nothing (never "every pod").
pub(crate) fn selector_matches(selector: &Value, labels: &Value) -> bool {
    use kube::core::SelectorExt;
    let Ok(ls) = serde_json::from_value::<
        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    >(selector.clone()) else {
        return false;
    };
    let Ok(sel) = kube::core::Selector::try_from(ls) else {
        return false;
    };
    if sel.selects_all() {
        return false;
    }
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_value(labels.clone()).unwrap_or_default();
    sel.matches(&labels)
}

async fn get_ingress_status(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["namespace"])?;
    let namespace = a.opt_name("namespace")?;
    let ns = namespace.as_deref();
    let c = cluster(&ctx)?;
    let now_s = now(ctx.settings.now);
    let (ingresses, slices, services, deployments) = tokio::try_join!(
        list_json(c, ("networking.k8s.io", "v1", "Ingress", "ingresses"), ns),
        list_json(
            c,
            ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
            ns
        ),
        list_json(c, ("", "v1", "Service", "services"), ns),
        list_json(c, ("apps", "v1", "Deployment", "deployments"), ns),
    )?;
    let certificates: Vec<Value> = c
        .list_kind(&CERTIFICATE, ns)
        .await
        .map_err(api_error)?
        .items()
        .iter()
        .cloned()
        .map(to_json)
        .collect();
    // (namespace, service) → (ready, not ready) endpoint counts.
    let mut endpoints: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for s in &slices {
        let Some(svc) = s["metadata"]["labels"]["kubernetes.io/service-name"].as_str() else {
            continue;
        };
        let e = endpoints.entry((key(s).0, svc.to_string())).or_default();
        for ep in s["endpoints"].as_array().into_iter().flatten() {
            // An absent "ready" means ready (EndpointConditions semantics).
            if ep["conditions"]["ready"].as_bool().unwrap_or(true) {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
    let mut rows = Vec::new();
    let (mut down, mut cert_problems) = (0usize, 0usize);
    for ing in &ingresses {
        let (ins, name) = key(ing);
        let spec = &ing["spec"];
        let mut backends = Vec::new();
        let mut ing_ok = true;
        let mut seen = BTreeSet::new();
        for rule in spec["rules"].as_array().into_iter().flatten() {
            for path in rule["http"]["paths"].as_array().into_iter().flatten() {
                let svc = path["backend"]["service"]["name"]
                    .as_str()
                    .unwrap_or_default();
                let port = &path["backend"]["service"]["port"];
                let port = port["number"]
                    .as_i64()
                    .map(|n| n.to_string())
                    .or(port["name"].as_str().map(str::to_string))
                    .unwrap_or_default();
                let host = rule["host"].as_str().unwrap_or("*");
                if !seen.insert((host.to_string(), svc.to_string())) {
                    continue;
                }
                let service = services
                    .iter()
                    .find(|s| key(s) == (ins.clone(), svc.to_string()));
                let (ready, not_ready) = endpoints
                    .get(&(ins.clone(), svc.to_string()))
                    .copied()
                    .unwrap_or((0, 0));
                let (state, note) = match service {
                    None => (
                        "service missing",
                        format!("Service {ins}/{svc} does not exist"),
                    ),
                    Some(_) if ready > 0 => ("ok", String::new()),
                    Some(s) => {
                        let parked = deployments.iter().find(|d| {
                            key(d).0 == ins
                                && labels_match(
                                    &s["spec"]["selector"],
                                    &d["spec"]["template"]["metadata"]["labels"],
                                )
                                && d["spec"]["replicas"].as_i64() == Some(0)
                        });
                        match parked {
                            Some(d) => (
                                "scaled to zero",
                                format!(
                                    "Deployment {ins}/{} is scaled to 0 replicas, so it has no endpoints: not a failing backend, but check that 0 is what Git wants",
                                    key(d).1
                                ),
                            ),
                            None if not_ready > 0 => (
                                "no ready endpoints",
                                format!(
                                    "{not_ready} endpoint(s), none ready: the pods fail their readiness probes"
                                ),
                            ),
                            None => (
                                "no endpoints",
                                "no pod matches the Service's selector".to_string(),
                            ),
                        }
                    }
                };
                if !matches!(state, "ok" | "scaled to zero") {
                    ing_ok = false;
                    down += 1;
                }
                backends.push(json!({"host": host, "path": path["path"], "service": svc, "port": port, "state": state,
                    "readyEndpoints": ready, "notReadyEndpoints": not_ready, "note": note}));
            }
        }
        let mut tls = Vec::new();
        for t in spec["tls"].as_array().into_iter().flatten() {
            let secret = t["secretName"].as_str().unwrap_or_default();
            let cert = certificates
                .iter()
                .find(|c| key(c).0 == ins && c["spec"]["secretName"] == secret);
            let cert_json = cert.map(|c| {
                let ready = condition(c, "Ready").is_some_and(|(s, _, _)| s == "True");
                let not_after = c["status"]["notAfter"].as_str().and_then(parse_rfc3339);
                let days = not_after.map(|t| (t - now_s).div_euclid(86_400));
                let reason = condition(c, "Ready").map(|(_, r, m)| format!("{r}: {m}"));
                json!({"name": key(c).1, "ready": ready, "notAfter": not_after.map(rfc3339), "daysLeft": days,
                    "reason": if ready { None } else { reason }})
            });
            let valid = cert_json.as_ref().is_some_and(|c| {
                c["ready"] == true && c["daysLeft"].as_i64().is_some_and(|d| d >= 0)
            });
            if cert.is_some() && !valid {
                ing_ok = false;
                cert_problems += 1;
            }
            tls.push(json!({"hosts": t["hosts"], "secretName": secret, "certificate": cert_json,
                "validCertificate": if cert.is_some() { json!(valid) } else { json!(null) },
                "note": if cert.is_none() { "no cert-manager Certificate for this secret (managed elsewhere?)" } else if valid { "" } else { "these hosts are served without a valid certificate" }}));
        }
        let hosts: Vec<&str> = spec["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["host"].as_str())
            .collect();
        rows.push(json!({"namespace": ins, "name": name, "class": spec["ingressClassName"], "hosts": hosts,
            "addresses": ing["status"]["loadBalancer"]["ingress"].as_array().map(|a| a.iter().filter_map(|x| x["ip"].as_str().or(x["hostname"].as_str())).collect::<Vec<_>>()),
            "ok": ing_ok, "backends": backends, "tls": tls}));
    }
    let verdict = if rows.is_empty() {
        "no ingresses"
    } else if down == 0 && cert_problems == 0 {
        "healthy"
    } else {
        "degraded"
    };
    let mut text = format!(
        "ingresses: {verdict} — {} ingresses, {down} backend(s) down, {cert_problems} certificate problem(s)\n",
        rows.len()
    );
    for r in rows.iter().filter(|r| r["ok"] != true) {
        text.push_str(&format!(
            "{}/{} {}: ",
            r["namespace"].as_str().unwrap_or_default(),
            r["name"].as_str().unwrap_or_default(),
            r["hosts"]
        ));
        for b in r["backends"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["state"] != "ok")
        {
            text.push_str(&format!(
                "backend {} {}; ",
                b["service"].as_str().unwrap_or_default(),
                b["state"].as_str().unwrap_or_default()
            ));
        }
        for t in r["tls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["validCertificate"] == false)
        {
            text.push_str(&format!(
                "certificate {} not valid ({}); ",
                t["secretName"].as_str().unwrap_or_default(),
                t["certificate"]["reason"].as_str().unwrap_or("expired")
            ));
        }
        text.push('\n');
    }
    let structured = json!({"verdict": verdict, "summary": {"ingresses": rows.len(), "backendsDown": down, "certificateProblems": cert_problems},
        "ingresses": rows});
    Ok(ToolOutput { structured, text })
}

/// Pods in `pods` that mount claim `name` in `ns`.
fn mounted_by(pods: &[Value], ns: &str, name: &str) -> Vec<String> {
    pods.iter()
        .filter(|p| p["metadata"]["namespace"] == ns)
        .filter(|p| {
            p["spec"]["volumes"].as_array().is_some_and(|vs| {
                vs.iter()
                    .any(|v| v["persistentVolumeClaim"]["claimName"] == name)
            })
        })
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

fn pvc_json(pvc: &Value, pvs: &[Value], pods: &[Value]) -> Value {
    let (ns, name) = key(pvc);
    let spec = &pvc["spec"];
    let volume = spec["volumeName"].as_str().unwrap_or_default();
    let pv = pvs.iter().find(|p| key(p).1 == volume);
    let location =
        match pv {
            Some(p) if p["spec"]["nfs"].is_object() => json!(format!(
                "nfs {}:{}",
                p["spec"]["nfs"]["server"].as_str().unwrap_or_default(),
                p["spec"]["nfs"]["path"].as_str().unwrap_or_default()
            )),
            Some(p) => {
                p["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
                    ["values"][0]
                    .as_str()
                    .map(|n| json!(format!("node {n}")))
                    .unwrap_or(Value::Null)
            }
            None => pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"]
                .as_str()
                .map(|n| json!(format!("node {n}")))
                .unwrap_or(Value::Null),
        };
    let users = mounted_by(pods, &ns, &name);
    json!({"namespace": ns, "name": name, "phase": pvc["status"]["phase"], "requested": spec["resources"]["requests"]["storage"],
        "capacity": pvc["status"]["capacity"]["storage"], "storageClass": spec["storageClassName"], "volume": volume,
        "accessModes": spec["accessModes"], "location": location, "mountedBy": users,
        "reclaimPolicy": pv.map(|p| p["spec"]["persistentVolumeReclaimPolicy"].clone()),
        "mountOptions": pv.map(|p| p["spec"]["mountOptions"].clone())})
}

async fn get_pvcs(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["namespace"])?;
    let namespace = a.opt_name("namespace")?;
    let ns = namespace.as_deref();
    let c = cluster(&ctx)?;
    let (pvcs, pvs, pods) = tokio::try_join!(
        list_json(
            c,
            ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
            ns
        ),
        list_json(c, ("", "v1", "PersistentVolume", "persistentvolumes"), None),
        list_json(c, ("", "v1", "Pod", "pods"), ns),
    )?;
    let rows: Vec<Value> = pvcs.iter().map(|p| pvc_json(p, &pvs, &pods)).collect();
    let problems: Vec<&Value> = rows.iter().filter(|r| r["phase"] != "Bound").collect();
    let unmounted = rows
        .iter()
        .filter(|r| r["mountedBy"].as_array().is_some_and(Vec::is_empty))
        .count();
    let verdict = if rows.is_empty() {
        "no PVCs"
    } else if problems.is_empty() {
        "healthy"
    } else {
        "degraded"
    };
    let mut text = format!(
        "PVCs: {verdict} — {} claims, {} not Bound, {unmounted} not mounted by any pod\n",
        rows.len(),
        problems.len()
    );
    for r in &rows {
        text.push_str(&format!(
            "{}/{} {} {} {} {} [{}]\n",
            r["namespace"].as_str().unwrap_or_default(),
            r["name"].as_str().unwrap_or_default(),
            r["phase"].as_str().unwrap_or("?"),
            r["capacity"]
                .as_str()
                .or(r["requested"].as_str())
                .unwrap_or("?"),
            r["storageClass"].as_str().unwrap_or("-"),
            r["location"].as_str().unwrap_or("-"),
            r["mountedBy"]
                .as_array()
                .map(|a| a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ));
    }
    let structured = json!({"verdict": verdict, "summary": {"pvcs": rows.len(), "notBound": problems.len(), "notMounted": unmounted}, "pvcs": rows});
    Ok(ToolOutput { structured, text })
}

/// Metadata worth showing; drops managedFields and last-applied (which can hold secrets).
fn meta_summary(o: &Value) -> Value {
    let mut annotations = o["metadata"]["annotations"].clone();
    if let Some(a) = annotations.as_object_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
        for v in a.values_mut() {
            if let Some(s) = v.as_str() {
                *v = json!(redact(s).text);
            }
        }
    }
    json!({"labels": o["metadata"]["labels"], "annotations": annotations, "created": o["metadata"]["creationTimestamp"],
        "owners": o["metadata"]["ownerReferences"].as_array().map(|a| a.iter().map(|r| format!("{}/{}", r["kind"].as_str().unwrap_or_default(), r["name"].as_str().unwrap_or_default())).collect::<Vec<_>>())})
}

/// Containers with env values redacted and Secret references named.
fn containers(pod_spec: &Value) -> Value {
    let list: Vec<Value> = pod_spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            serde_json::from_value::<k8s_openapi::api::core::v1::Container>(c.clone()).ok()
        })
        .map(|c| super::batch::container_json(&c))
        .collect();
    json!(list)
}

fn pod_brief(p: &Value) -> Value {
    let st = &p["status"];
    let restarts: i64 = st["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["restartCount"].as_i64())
        .sum();
    let waiting: Vec<&str> = st["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["state"]["waiting"]["reason"].as_str())
        .collect();
    json!({"name": p["metadata"]["name"], "phase": st["phase"], "ready": condition(p, "Ready").is_some_and(|(s, _, _)| s == "True"),
        "restarts": restarts, "waiting": waiting, "node": p["spec"]["nodeName"], "ip": st["podIP"]})
}

fn conditions(o: &Value) -> Value {
    json!(o["status"]["conditions"].as_array().map(|cs| {
        cs.iter()
            .map(|c| {
                json!({"type": c["type"], "status": c["status"],
        "reason": c["reason"], "message": c["message"], "since": c["lastTransitionTime"]})
            })
            .collect::<Vec<_>>()
    }))
}

async fn describe_resource(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["kind", "namespace", "name"])?;
    let kind_names: Vec<&str> = KINDS.iter().map(|k| k.0).collect();
    let kind_arg = a.opt_one_of("kind", &kind_names)?;
    let Some(&(kind_arg, group, version, kind, plural, namespaced)) =
        kind_arg.and_then(|k| KINDS.iter().find(|x| x.0 == k))
    else {
        return Err(ToolError::invalid("kind", "required"));
    };
    let name = a.name("name")?;
    let namespace = a.opt_name("namespace")?;
    let ns =
        if namespaced {
            Some(namespace.clone().ok_or_else(|| {
                ToolError::invalid("namespace", format!("required for a {kind_arg}"))
            })?)
        } else {
            None
        };
    let c = cluster(&ctx)?;
    let res = ar(group, version, kind, plural);
    let api: Api<DynamicObject> = match &ns {
        Some(n) => Api::namespaced_with(c.client.clone(), n, &res),
        None => Api::all_with(c.client.clone(), &res),
    };
    let found = c
        .get_opt(&api, &name, Request::new("get", plural, ns.as_deref()))
        .await
        .map_err(api_error)?;
    let Some(found) = found else {
        let names: Vec<String> = c
            .bounded(
                Request::new("list", plural, ns.as_deref()),
                api.list(&ListParams::default().limit(50)),
            )
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|o| o.metadata.name)
                    .collect()
            })
            .unwrap_or_default();
        let scope = ns
            .as_deref()
            .map(|n| format!(" in namespace {n}"))
            .unwrap_or_default();
        return Err(ToolError::new(
            ErrorCode::NotFound,
            format!("no {kind} {name:?}{scope}"),
            if names.is_empty() {
                format!("there are no {plural}{scope}")
            } else {
                format!("{plural}{scope}: {}", names.join(", "))
            },
        ));
    };
    let o = to_json(found);
    let spec = &o["spec"];
    let status = &o["status"];
    // Pods selected by a workload's selector (one more list, only for workloads).
    let workload_pods = |selector: Value| {
        let c = c.clone();
        let ns = ns.clone();
        async move {
            let pods = list_json(&c, ("", "v1", "Pod", "pods"), ns.as_deref()).await?;
            Ok::<Vec<Value>, ToolError>(
                pods.iter()
                    .filter(|p| selector_matches(&selector, &p["metadata"]["labels"]))
                    .map(pod_brief)
                    .collect(),
            )
        }
    };
    let summary = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" => {
            let pods = workload_pods(spec["selector"].clone()).await?;
            json!({"replicas": {"desired": spec["replicas"].as_i64().or(status["desiredNumberScheduled"].as_i64()),
                    "ready": status["readyReplicas"].as_i64().or(status["numberReady"].as_i64()).unwrap_or(0),
                    "available": status["availableReplicas"].as_i64().or(status["numberAvailable"].as_i64()).unwrap_or(0),
                    "updated": status["updatedReplicas"].as_i64().or(status["updatedNumberScheduled"].as_i64()).unwrap_or(0)},
                "strategy": spec["strategy"]["type"].as_str().or(spec["updateStrategy"]["type"].as_str()),
                "selector": spec["selector"], "conditions": conditions(&o),
                "nodeSelector": spec["template"]["spec"]["nodeSelector"], "hostNetwork": spec["template"]["spec"]["hostNetwork"],
                "containers": containers(&spec["template"]["spec"]), "volumes": spec["template"]["spec"]["volumes"], "pods": pods})
        }
        "Pod" => {
            let statuses: Vec<Value> = status["containerStatuses"].as_array().into_iter().flatten().map(|cs| json!({
                "name": cs["name"], "ready": cs["ready"], "restarts": cs["restartCount"], "state": cs["state"], "lastState": cs["lastState"], "image": cs["image"]})).collect();
            json!({"phase": status["phase"], "node": spec["nodeName"], "podIP": status["podIP"], "hostIP": status["hostIP"],
                "hostNetwork": spec["hostNetwork"], "conditions": conditions(&o), "containerStatuses": statuses,
                "containers": containers(spec), "volumes": spec["volumes"]})
        }
        "Service" => {
            let slices = list_json(
                c,
                ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
                ns.as_deref(),
            )
            .await?;
            let eps: Vec<Value> = slices.iter().filter(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == name.as_str())
                .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
                .map(|e| json!({"address": e["addresses"][0], "ready": e["conditions"]["ready"].as_bool().unwrap_or(true), "pod": e["targetRef"]["name"], "node": e["nodeName"]}))
                .collect();
            json!({"type": spec["type"], "clusterIP": spec["clusterIP"], "ports": spec["ports"], "selector": spec["selector"], "endpoints": eps,
                "readyEndpoints": eps.iter().filter(|e| e["ready"] == true).count()})
        }
        "ConfigMap" => {
            let data: Map<String, Value> = o["data"].as_object().into_iter().flatten().map(|(k, v)| {
                let text = v.as_str().unwrap_or_default();
                // A key named like a credential hides its whole value.
                let (clean, n) = if secret_name(k) {
                    ("[REDACTED]".to_string(), 1)
                } else {
                    let r = redact(text);
                    (r.text, r.count)
                };
                let shown: String = clean.chars().take(2048).collect();
                (k.clone(), json!({"bytes": text.len(), "value": shown, "truncated": clean.chars().count() > 2048, "redactions": n}))
            }).collect();
            json!({"data": data, "binaryKeys": o["binaryData"].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>())})
        }
        "Node" => {
            let pods = api_pods_on_node(c, &name).await?;
            json!({"conditions": conditions(&o), "addresses": status["addresses"], "capacity": status["capacity"], "allocatable": status["allocatable"],
                "taints": spec["taints"], "unschedulable": spec["unschedulable"], "podCIDR": spec["podCIDR"], "nodeInfo": status["nodeInfo"], "pods": pods})
        }
        "Job" => {
            let pods = workload_pods(spec["selector"].clone()).await?;
            json!({"conditions": conditions(&o), "active": status["active"], "succeeded": status["succeeded"], "failed": status["failed"],
                "startTime": status["startTime"], "completionTime": status["completionTime"], "backoffLimit": spec["backoffLimit"],
                "containers": containers(&spec["template"]["spec"]), "pods": pods})
        }
        "CronJob" => {
            json!({"schedule": spec["schedule"], "timeZone": spec["timeZone"], "suspend": spec["suspend"],
            "concurrencyPolicy": spec["concurrencyPolicy"], "lastScheduleTime": status["lastScheduleTime"],
            "lastSuccessfulTime": status["lastSuccessfulTime"], "active": status["active"],
            "containers": containers(&spec["jobTemplate"]["spec"]["template"]["spec"]),
            "more": "get_cronjob_details gives the next runs, the overdue verdict and the Job history"})
        }
        "Ingress" => {
            json!({"class": spec["ingressClassName"], "rules": spec["rules"], "tls": spec["tls"],
            "addresses": status["loadBalancer"]["ingress"], "more": "get_ingress_status checks the backends and certificates"})
        }
        _ => {
            let (pvs, pods) = tokio::try_join!(
                list_json(c, ("", "v1", "PersistentVolume", "persistentvolumes"), None),
                list_json(c, ("", "v1", "Pod", "pods"), ns.as_deref()),
            )?;
            pvc_json(&o, &pvs, &pods)
        }
    };
    let events = match super::events::read(
        c,
        ns.as_deref(),
        super::events::EventType::All,
        1440,
        Some(&format!("{kind}/{name}")),
        20,
        now(ctx.settings.now),
    )
    .await
    {
        Ok(out) => serde_json::to_value(&out.events).unwrap_or_default(),
        Err(e) => json!([{"error": e.to_string(), "hint": e.hint()}]),
    };
    let mut text = format!(
        "{kind} {}{name}\n",
        ns.as_deref().map(|n| format!("{n}/")).unwrap_or_default()
    );
    for cond in summary["conditions"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "condition {}={} {} {}\n",
            cond["type"].as_str().unwrap_or_default(),
            cond["status"].as_str().unwrap_or_default(),
            cond["reason"].as_str().unwrap_or_default(),
            cond["message"].as_str().unwrap_or_default()
        ));
    }
    for p in summary["pods"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "pod {} {} ready={} restarts={}\n",
            p["name"].as_str().unwrap_or_default(),
            p["phase"].as_str().unwrap_or_default(),
            p["ready"],
            p["restarts"]
        ));
    }
    for e in events.as_array().into_iter().flatten() {
        text.push_str(&format!(
            "event {} {} ×{}: {}\n",
            e["type"].as_str().unwrap_or_default(),
            e["reason"].as_str().unwrap_or_default(),
            e["count"],
            e["message"].as_str().unwrap_or_default()
        ));
    }
    let mut structured = json!({"kind": kind, "namespace": ns, "name": name, "metadata": meta_summary(&o), "summary": summary, "events": events});
    if ns.is_none()
        && let Some(m) = structured.as_object_mut()
    {
        // Cluster-scoped (a node): no namespace at all, never null.
        m.remove("namespace");
    }
    Ok(ToolOutput { structured, text })
}

async fn api_pods_on_node(c: &Cluster, node: &str) -> Result<Vec<Value>, ToolError> {
    let api: Api<DynamicObject> = Api::all_with(c.client.clone(), &ar("", "v1", "Pod", "pods"));
    let list = c
        .list(
            &api,
            &ListParams::default().fields(&format!("spec.nodeName={node}")),
            Request::new("list", "pods", None),
        )
        .await
        .map_err(api_error)?;
    Ok(list
        .into_iter()
        .map(to_json)
        .map(|p| {
            let mut b = pod_brief(&p);
            b["namespace"] = p["metadata"]["namespace"].clone();
            b
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_selectors_read_match_expressions() {
        let labels = json!({"app.kubernetes.io/name": "server", "app.kubernetes.io/instance": "immich", "tier": "web"});
        let sel = |v: Value| selector_matches(&v, &labels);
        assert!(sel(
            json!({"matchLabels": {"app.kubernetes.io/name": "server"}})
        ));
        assert!(sel(
            json!({"matchLabels": {"app.kubernetes.io/instance": "immich"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]})
        ));
        assert!(!sel(
            json!({"matchLabels": {"app.kubernetes.io/instance": "immich"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]})
        ));
        assert!(sel(
            json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]})
        ));
        assert!(!sel(
            json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]})
        ));
        // An empty selector selects nothing here, never every pod.
        assert!(!sel(json!({})));
        assert!(!sel(
            json!({"matchExpressions": [{"key": "tier", "operator": "Bogus"}]})
        ));
    }
}
