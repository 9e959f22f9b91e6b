//! Cluster tools answered from the Kubernetes API: `get_cluster_health`,
//! `get_certificate_status`, `get_secrets_status` and `get_tailscale_status`.
//! Flux, batch, workload and resource tools live in their own modules.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::args::Args;
use super::{ErrorCode, ToolContext, ToolDef, ToolError, ToolOutput};
use crate::cluster::groups::{Served, condition, list_all, served};
use crate::cluster::time::{now, parse_rfc3339};
use crate::cluster::{Cluster, Error as ClusterError};

/// The cluster tools.
pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef {
            name: "get_cluster_health",
            title: "Cluster health",
            description: "One verdict (healthy / degraded / critical) and a ranked list of issues, each with evidence \
                and the tool to call next: nodes (Ready, pressure), labscope agents (reachability, conntrack usage), \
                problem pods (CrashLoopBackOff even while Running, image pulls, Pending too long, Running but not \
                Ready, recent restarts; completed Job pods are healthy), Flux root causes (stuck releases first; \
                their consequences counted, not repeated), image repositories failing to scan (with the fix), \
                certificates, External Secrets and Tailscale; recent Warning events newest first, de-duplicated, and \
                attached to the issues they explain. A failed check or an empty namespace is never healthy.",
            input_schema: json!({"type": "object", "properties": {"namespace": {"type": "string"}}, "additionalProperties": false}),
            output_schema: json!({"type": "object", "properties": {
                "verdict": {"type": "string", "enum": ["healthy", "degraded", "critical"]}, "issues": {"type": "array"},
                "nodes": {"type": "object"}, "pods": {"type": "object"}, "checks": {"type": "object"}},
                "required": ["verdict", "issues"]}),
            read_only: true,
            destructive: false,
            idempotent: true,
            open_world: false,
            run: |ctx, args| Box::pin(get_cluster_health(ctx, args)),
        },
        ToolDef {
            name: "get_secrets_status",
            title: "External Secrets status",
            description: "ExternalSecrets (ready, reason, message, last refresh, store) and the health of their \
                SecretStores/ClusterSecretStores, using the API version the operator actually serves (found by \
                discovery). Failures caused by a store that is down are grouped under that store. \"Not installed\" \
                is its own answer.",
            input_schema: json!({"type": "object", "properties": {"namespace": {"type": "string"}}, "additionalProperties": false}),
            output_schema: json!({"type": "object", "properties": {
                "installed": {"type": "boolean"}, "apiVersion": {"type": "string"}, "verdict": {"type": "string"},
                "stores": {"type": "array"}, "externalSecrets": {"type": "array"}, "summary": {"type": "object"},
                "rootCauses": {"type": "array"}}, "required": ["installed", "verdict"]}),
            read_only: true,
            destructive: false,
            idempotent: true,
            open_world: false,
            run: |ctx, args| Box::pin(get_secrets_status(ctx, args)),
        },
        ToolDef {
            name: "get_certificate_status",
            title: "cert-manager certificates",
            description: "Certificates with notAfter, renewalTime, days left, issuer and readiness; expiring ones \
                (within expiringWithinDays, 30) and overdue renewals with failing issuance attempts; for certificates \
                that are not ready, the failing CertificateRequest → Order → Challenge chain and the challenge's reason.",
            input_schema: json!({"type": "object", "properties": {
                "namespace": {"type": "string"},
                "expiringWithinDays": {"type": "integer", "minimum": 1, "maximum": 365, "default": 30}},
                "additionalProperties": false}),
            output_schema: json!({"type": "object", "properties": {
                "installed": {"type": "boolean"}, "verdict": {"type": "string"}, "certificates": {"type": "array"},
                "summary": {"type": "object"}}, "required": ["installed", "verdict"]}),
            read_only: true,
            destructive: false,
            idempotent: true,
            open_world: false,
            run: |ctx, args| Box::pin(get_certificate_status(ctx, args)),
        },
        ToolDef {
            name: "get_tailscale_status",
            title: "Tailscale operator status",
            description: "Tailscale Connectors (health from their ConnectorReady condition), exit node, advertised \
                and active routes, ProxyClasses, and the operator's pods. A failure to list is an error, never \
                \"0 connectors\".",
            input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            output_schema: json!({"type": "object", "properties": {
                "installed": {"type": "boolean"}, "connectors": {"type": "array"}, "proxyClasses": {"type": "array"},
                "pods": {"type": "array"}, "verdict": {"type": "string"}}, "required": ["installed", "verdict"]}),
            read_only: true,
            destructive: false,
            idempotent: true,
            open_world: false,
            run: |ctx, args| Box::pin(get_tailscale_status(ctx, args)),
        },
    ]
}

/// The configured cluster, or a not-configured error.
pub fn cluster(ctx: &ToolContext) -> Result<&Cluster, ToolError> {
    ctx.cluster.as_ref().ok_or_else(|| {
        ToolError::new(
            ErrorCode::NotConfigured,
            "no Kubernetes API is configured",
            "start labscope with --kubeconfig FILE (or KUBECONFIG), or run it in the cluster",
        )
    })
}

/// A Kubernetes error as a tool error (403 → permission_denied).
pub fn api_error(e: ClusterError) -> ToolError {
    let code = match &e {
        ClusterError::Forbidden { .. } => ErrorCode::PermissionDenied,
        _ => ErrorCode::AgentError,
    };
    ToolError::new(code, e.to_string(), e.hint())
}

fn meta(o: &kube::api::DynamicObject) -> (String, String) {
    (
        o.metadata.namespace.clone().unwrap_or_default(),
        o.metadata.name.clone().unwrap_or_default(),
    )
}

const ESO: &str = "external-secrets.io";

async fn get_secrets_status(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["namespace"])?;
    let namespace = a.opt_name("namespace")?;
    let c = cluster(&ctx)?;
    let version = match served(c, ESO).await.map_err(api_error)? {
        Served::NotInstalled => {
            let structured = json!({"installed": false, "verdict": "not installed",
                "message": "External Secrets Operator is not installed (group external-secrets.io is not served)"});
            return Ok(ToolOutput {
                text: "External Secrets Operator: not installed\n".into(),
                structured,
            });
        }
        Served::Version(v) => v,
    };
    let (cluster_stores, stores, secrets) = tokio::try_join!(
        list_all(
            c,
            ESO,
            &version,
            "ClusterSecretStore",
            "clustersecretstores",
            None
        ),
        list_all(
            c,
            ESO,
            &version,
            "SecretStore",
            "secretstores",
            namespace.as_deref()
        ),
        list_all(
            c,
            ESO,
            &version,
            "ExternalSecret",
            "externalsecrets",
            namespace.as_deref()
        ),
    )
    .map_err(api_error)?;

    let mut store_rows = Vec::new();
    let mut down_stores = Vec::new();
    for (kind, list) in [
        ("ClusterSecretStore", &cluster_stores),
        ("SecretStore", &stores),
    ] {
        for s in list {
            let (ns, name) = meta(s);
            let (status, reason, message) = condition(&s.data, "Ready").unwrap_or_default();
            let ready = status == "True";
            if !ready {
                down_stores.push((kind, ns.clone(), name.clone()));
            }
            store_rows.push(json!({"kind": kind, "namespace": ns, "name": name, "ready": ready, "reason": reason, "message": message}));
        }
    }
    let mut rows = Vec::new();
    let (mut ready_count, mut failing) = (0usize, Vec::new());
    for es in &secrets {
        let (ns, name) = meta(es);
        let (status, reason, message) = condition(&es.data, "Ready")
            .unwrap_or_else(|| ("Unknown".into(), "NoCondition".into(), String::new()));
        let store_kind = es.data["spec"]["secretStoreRef"]["kind"]
            .as_str()
            .unwrap_or("SecretStore")
            .to_string();
        let store = es.data["spec"]["secretStoreRef"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ready = status == "True";
        if ready {
            ready_count += 1;
        } else {
            failing.push((ns.clone(), name.clone(), store_kind.clone(), store.clone()));
        }
        rows.push(json!({"namespace": ns, "name": name, "ready": ready, "reason": reason, "message": message,
            "refreshTime": es.data["status"]["refreshTime"], "store": {"kind": store_kind, "name": store}}));
    }
    // One root cause per store that is down, with the failures it explains.
    let mut root_causes = Vec::new();
    for (kind, ns, name) in &down_stores {
        let echoes: Vec<String> = failing
            .iter()
            .filter(|(ens, _, k, s)| {
                k == kind && s == name && (*kind == "ClusterSecretStore" || ens == ns)
            })
            .map(|(ens, en, _, _)| format!("{ens}/{en}"))
            .collect();
        root_causes.push(json!({"store": {"kind": kind, "namespace": ns, "name": name}, "failingExternalSecrets": echoes.len(),
            "examples": echoes.iter().take(10).collect::<Vec<_>>(),
            "note": "existing Secrets keep working, but nothing refreshes until the store is ready"}));
    }
    let verdict = if secrets.is_empty() && store_rows.is_empty() {
        "no ExternalSecrets"
    } else if failing.is_empty() && down_stores.is_empty() {
        "healthy"
    } else {
        "degraded"
    };
    let structured = json!({
        "installed": true, "apiVersion": format!("{ESO}/{version}"), "verdict": verdict,
        "summary": {"externalSecrets": secrets.len(), "ready": ready_count, "failing": failing.len(), "stores": store_rows.len(), "storesDown": down_stores.len()},
        "stores": store_rows, "rootCauses": root_causes, "externalSecrets": rows,
    });
    let text = format!(
        "External Secrets ({ESO}/{version}): {verdict} — {ready_count} of {} ready, {} store(s) down\n",
        secrets.len(),
        down_stores.len()
    );
    Ok(ToolOutput { structured, text })
}

const TAILSCALE: &str = "tailscale.com";

async fn get_tailscale_status(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    Args::new(args, &[])?;
    let c = cluster(&ctx)?;
    let version = match served(c, TAILSCALE).await.map_err(api_error)? {
        Served::NotInstalled => {
            let structured = json!({"installed": false, "verdict": "not installed",
                "message": "the Tailscale operator is not installed (group tailscale.com is not served)"});
            return Ok(ToolOutput {
                text: "Tailscale operator: not installed\n".into(),
                structured,
            });
        }
        Served::Version(v) => v,
    };
    let (connectors, classes) = tokio::try_join!(
        list_all(c, TAILSCALE, &version, "Connector", "connectors", None),
        list_all(c, TAILSCALE, &version, "ProxyClass", "proxyclasses", None),
    )
    .map_err(api_error)?;
    let pods_api: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(c.client.clone(), "tailscale");
    let pods = pods_api
        .list(&kube::api::ListParams::default())
        .await
        .map_err(|e| {
            api_error(ClusterError::from_kube(
                e,
                "list",
                "pods",
                Some("tailscale"),
            ))
        })?;

    let mut all_ready = true;
    let connector_rows: Vec<Value> = connectors
        .iter()
        .map(|cn| {
            // The Connector reports health as ConnectorReady, never as Ready.
            let (status, reason, message) = condition(&cn.data, "ConnectorReady").unwrap_or_else(|| ("Unknown".into(), "NoCondition".into(), String::new()));
            let ready = status == "True";
            all_ready &= ready;
            let spec = &cn.data["spec"];
            let active: Vec<String> = cn.data["status"]["subnetRoutes"]
                .as_str()
                .map(|s| s.split(',').map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect())
                .unwrap_or_default();
            json!({"name": cn.metadata.name, "ready": ready, "reason": reason, "message": message,
                "hostname": spec["hostname"], "exitNode": spec["exitNode"].as_bool().unwrap_or(false),
                "isExitNode": cn.data["status"]["isExitNode"],
                "advertisedRoutes": spec["subnetRouter"]["advertiseRoutes"], "activeRoutes": active,
                "proxyClass": spec["proxyClass"], "tailnetIPs": cn.data["status"]["tailnetIPs"]})
        })
        .collect();
    let class_rows: Vec<Value> = classes
        .iter()
        .map(|pc| {
            let (status, reason, _) = condition(&pc.data, "ProxyClassReady").unwrap_or_default();
            json!({"name": pc.metadata.name, "ready": status == "True", "reason": reason})
        })
        .collect();
    let pod_rows: Vec<Value> = pods
        .items
        .iter()
        .map(|p| {
            let st = p.status.clone().unwrap_or_default();
            let ready = st.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
            all_ready &= ready;
            json!({"name": p.metadata.name, "phase": st.phase, "ready": ready,
                "restarts": st.container_statuses.iter().flatten().map(|c| c.restart_count).sum::<i32>()})
        })
        .collect();
    let verdict = if connectors.is_empty() {
        "no connectors"
    } else if all_ready {
        "healthy"
    } else {
        "degraded"
    };
    let text = connector_rows
        .iter()
        .map(|c| {
            format!(
                "connector {}: {} exit node {} routes {}\n",
                c["name"].as_str().unwrap_or(""),
                if c["ready"].as_bool().unwrap_or(false) {
                    "ready"
                } else {
                    "NOT ready"
                },
                c["exitNode"],
                c["activeRoutes"]
            )
        })
        .collect::<String>();
    let structured = json!({"installed": true, "apiVersion": format!("{TAILSCALE}/{version}"), "verdict": verdict,
        "connectors": connector_rows, "proxyClasses": class_rows, "pods": pod_rows});
    Ok(ToolOutput {
        structured,
        text: format!("Tailscale: {verdict}\n{text}"),
    })
}

const CERT_MANAGER: &str = "cert-manager.io";
const ACME: &str = "acme.cert-manager.io";

fn days(secs: i64) -> i64 {
    secs.div_euclid(86_400)
}

/// Objects of `list` owned by (or named after) `parent`, for walking the
/// Certificate → CertificateRequest → Order → Challenge chain.
fn children<'a>(
    list: &'a [kube::api::DynamicObject],
    ns: &str,
    parent: &str,
) -> Vec<&'a kube::api::DynamicObject> {
    list.iter()
        .filter(|o| o.metadata.namespace.as_deref() == Some(ns))
        .filter(|o| {
            let owned = o
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.name == parent);
            let named = o
                .metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(&format!("{parent}-")));
            owned || named
        })
        .collect()
}

async fn get_certificate_status(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["namespace", "expiringWithinDays"])?;
    let namespace = a.opt_name("namespace")?;
    let within = a.int("expiringWithinDays", 30, 1, 365)?;
    let c = cluster(&ctx)?;
    let version = match served(c, CERT_MANAGER).await.map_err(api_error)? {
        Served::NotInstalled => {
            let structured = json!({"installed": false, "verdict": "not installed",
                "message": "cert-manager is not installed (group cert-manager.io is not served)"});
            return Ok(ToolOutput {
                text: "cert-manager: not installed\n".into(),
                structured,
            });
        }
        Served::Version(v) => v,
    };
    let ns = namespace.as_deref();
    let (certs, requests) = tokio::try_join!(
        list_all(c, CERT_MANAGER, &version, "Certificate", "certificates", ns),
        list_all(
            c,
            CERT_MANAGER,
            &version,
            "CertificateRequest",
            "certificaterequests",
            ns
        ),
    )
    .map_err(api_error)?;
    let (orders, challenges) = match served(c, ACME).await.map_err(api_error)? {
        Served::NotInstalled => (Vec::new(), Vec::new()),
        Served::Version(v) => tokio::try_join!(
            list_all(c, ACME, &v, "Order", "orders", ns),
            list_all(c, ACME, &v, "Challenge", "challenges", ns),
        )
        .map_err(api_error)?,
    };
    let now_s = now(ctx.settings.now);
    let mut rows = Vec::new();
    let (mut ready_n, mut expiring_n, mut overdue_n, mut not_ready_n) = (0, 0, 0, 0);
    for cert in &certs {
        let (cns, name) = meta(cert);
        let st = &cert.data["status"];
        let (ready_s, reason, message) = condition(&cert.data, "Ready")
            .unwrap_or_else(|| ("Unknown".into(), "NoCondition".into(), String::new()));
        let ready = ready_s == "True";
        let not_after = st["notAfter"].as_str().and_then(parse_rfc3339);
        let renewal = st["renewalTime"].as_str().and_then(parse_rfc3339);
        let days_left = not_after.map(|t| days(t - now_s));
        let expiring = days_left.is_some_and(|d| d <= within);
        let overdue_days = renewal.filter(|r| *r < now_s).map(|r| days(now_s - r));
        let issuing = condition(&cert.data, "Issuing");
        let mut row = json!({
            "namespace": cns, "name": name, "ready": ready, "reason": reason, "message": message,
            "notAfter": st["notAfter"], "renewalTime": st["renewalTime"], "daysLeft": days_left,
            "expiring": expiring, "renewalOverdueDays": overdue_days,
            "issuer": {"kind": cert.data["spec"]["issuerRef"]["kind"], "name": cert.data["spec"]["issuerRef"]["name"]},
            "dnsNames": cert.data["spec"]["dnsNames"],
            "failedIssuanceAttempts": st["failedIssuanceAttempts"], "lastFailureTime": st["lastFailureTime"],
            "issuing": issuing.map(|(s, r, m)| json!({"status": s, "reason": r, "message": m})),
        });
        if ready {
            ready_n += 1;
        } else {
            not_ready_n += 1;
            // Walk the chain to the thing that actually fails.
            let mut chain = Vec::new();
            let mut hint = String::new();
            for cr in children(&requests, &cns, &name) {
                let crn = cr.metadata.name.clone().unwrap_or_default();
                let (s, r, m) = condition(&cr.data, "Ready").unwrap_or_default();
                chain.push(json!({"kind": "CertificateRequest", "name": crn, "ready": s == "True", "reason": r, "message": m}));
                for order in children(&orders, &cns, &crn) {
                    let on = order.metadata.name.clone().unwrap_or_default();
                    chain.push(json!({"kind": "Order", "name": on, "state": order.data["status"]["state"], "reason": order.data["status"]["reason"]}));
                    for ch in children(&challenges, &cns, &on) {
                        let reason = ch.data["status"]["reason"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        if reason.contains("Cloudflare") {
                            hint = "DNS-01 through Cloudflare is failing: check the cloudflare-api-token Secret (namespace cert-manager) and the token's permissions".into();
                        }
                        chain.push(json!({"kind": "Challenge", "name": ch.metadata.name, "type": ch.data["spec"]["type"],
                            "dnsName": ch.data["spec"]["dnsName"], "state": ch.data["status"]["state"],
                            "presented": ch.data["status"]["presented"], "reason": reason}));
                    }
                }
            }
            row["chain"] = json!(chain);
            if !hint.is_empty() {
                row["hint"] = json!(hint);
            }
        }
        if expiring {
            expiring_n += 1;
        }
        if overdue_days.is_some() {
            overdue_n += 1;
        }
        rows.push(row);
    }
    // Problems first, then by days left.
    rows.sort_by_key(|r| {
        (
            r["ready"].as_bool() == Some(true) && !r["expiring"].as_bool().unwrap_or(false),
            r["daysLeft"].as_i64().unwrap_or(i64::MAX),
        )
    });
    let verdict = if certs.is_empty() {
        "no certificates"
    } else if not_ready_n > 0 {
        "critical"
    } else if expiring_n > 0 || overdue_n > 0 {
        "degraded"
    } else {
        "healthy"
    };
    let mut text = format!(
        "certificates ({CERT_MANAGER}/{version}): {verdict} — {ready_n} of {} ready, {expiring_n} expiring within {within} d, {overdue_n} renewal overdue\n",
        certs.len()
    );
    for r in rows
        .iter()
        .filter(|r| r["ready"] != true || r["expiring"] == true)
    {
        text.push_str(&format!(
            "{}/{}: {} days left {} {}\n",
            r["namespace"].as_str().unwrap_or(""),
            r["name"].as_str().unwrap_or(""),
            if r["ready"] == true {
                "ready"
            } else {
                "NOT ready"
            },
            r["daysLeft"],
            r["hint"]
                .as_str()
                .unwrap_or(r["message"].as_str().unwrap_or(""))
        ));
    }
    let structured = json!({"installed": true, "apiVersion": format!("{CERT_MANAGER}/{version}"), "verdict": verdict,
        "now": crate::cluster::time::now(ctx.settings.now), "expiringWithinDays": within,
        "summary": {"total": certs.len(), "ready": ready_n, "notReady": not_ready_n, "expiring": expiring_n, "renewalOverdue": overdue_n},
        "certificates": rows});
    Ok(ToolOutput { structured, text })
}

fn issue(
    severity: &str,
    kind: &str,
    object: String,
    evidence: String,
    next: Option<&str>,
) -> Value {
    json!({"severity": severity, "kind": kind, "object": object, "evidence": evidence, "nextTool": next})
}

/// Why `ns` has no pods: the namespace does not exist (a real API server
/// answers a pod list in a missing namespace with 200 and an empty list), or
/// its workloads are scaled to 0, or nothing was ever deployed there. Always
/// critical: an empty namespace is never healthy.
async fn empty_namespace(c: &Cluster, ns: &str) -> Value {
    let scope = format!("namespace {ns}");
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(c.client.clone());
    match api.get_opt(ns).await {
        Ok(None) => {
            return issue(
                "critical",
                "NamespaceNotFound",
                scope,
                format!(
                    "namespace {ns} not found: the API server answers its pod list with an empty list, \
                     but nothing can run there; if Git defines it, Flux has not re-created it"
                ),
                Some("get_flux_status"),
            );
        }
        Ok(Some(n)) if n.metadata.deletion_timestamp.is_some() => {
            return issue(
                "critical",
                "NamespaceTerminating",
                scope,
                format!("namespace {ns} is being deleted and has no pods left"),
                Some("get_events"),
            );
        }
        Ok(Some(_)) => {}
        Err(e) => {
            let e = ClusterError::from_kube(e, "get", "namespaces", None);
            return issue(
                "critical",
                "NoPods",
                scope,
                format!(
                    "no pods at all in namespace {ns}; could not read the namespace itself: {e} ({})",
                    e.hint()
                ),
                None,
            );
        }
    }
    // Workloads parked at 0 replicas explain the empty list.
    let mut parked = Vec::new();
    let mut unread = Vec::new();
    for (kind, plural) in [
        ("Deployment", "deployments"),
        ("StatefulSet", "statefulsets"),
    ] {
        match list_all(c, "apps", "v1", kind, plural, Some(ns)).await {
            Err(e) => unread.push(format!("{e} ({})", e.hint())),
            Ok(items) => {
                for o in items {
                    if o.data["spec"]["replicas"].as_i64() == Some(0) {
                        let owner = o
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("kustomize.toolkit.fluxcd.io/name"))
                        .map(|k| format!(" (applied by Flux Kustomization {k}: unless Git says 0, this is drift)"))
                        .unwrap_or_default();
                        parked.push(format!(
                            "{kind} {}/{} is scaled to 0 replicas{owner}",
                            ns,
                            o.metadata.name.unwrap_or_default()
                        ));
                    }
                }
            }
        }
    }
    let mut evidence = if parked.is_empty() {
        format!("no pods at all in namespace {ns}: nothing is running there")
    } else {
        format!("no pods at all in namespace {ns}: {}", parked.join("; "))
    };
    if !unread.is_empty() {
        evidence.push_str(&format!(
            "; could not check for workloads scaled to 0: {}",
            unread.join("; ")
        ));
    }
    issue(
        "critical",
        "NoPods",
        scope,
        evidence,
        Some(if parked.is_empty() {
            "get_events"
        } else {
            "describe_resource"
        }),
    )
}

async fn get_cluster_health(
    ctx: Arc<ToolContext>,
    args: Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let a = Args::new(args, &["namespace"])?;
    let namespace = a.opt_name("namespace")?;
    let c = cluster(&ctx)?.clone();
    let now_s = now(ctx.settings.now);
    let ns_args = |ns: &Option<String>| {
        let mut m = Map::new();
        if let Some(n) = ns {
            m.insert("namespace".into(), json!(n));
        }
        m
    };
    let agents = ctx.pool.all();
    let fanout = crate::agents::fan_out_with_deadline(
        agents,
        ctx.settings.agent_deadline,
        ctx.settings.fanout_concurrency,
        |a| async move {
            a.client()
                .get_node_info(labscope_proto::v1::GetNodeInfoRequest {})
                .await
                .map(|r| r.into_inner())
        },
    );
    let mut warning_args = ns_args(&namespace);
    warning_args.insert("type".into(), json!("Warning"));
    warning_args.insert("limit".into(), json!(20));
    let (nodes, pods, agent_results, certs, secrets, tailscale, flux, events) = tokio::join!(
        crate::cluster::nodes::list(&c),
        crate::cluster::pods::problems(&c, namespace.as_deref(), now_s),
        fanout,
        get_certificate_status(ctx.clone(), ns_args(&namespace)),
        get_secrets_status(ctx.clone(), ns_args(&namespace)),
        async {
            if namespace.is_none() {
                Some(get_tailscale_status(ctx.clone(), Map::new()).await)
            } else {
                None
            }
        },
        super::flux::failures(&c, namespace.as_deref(), now_s),
        super::workloads::get_events(ctx.clone(), warning_args),
    );
    ctx.metrics.record_agents(&agent_results);
    let mut issues = Vec::new();

    // Nodes.
    let mut node_summary = json!({});
    match &nodes {
        Ok(list) => {
            let ready = list.iter().filter(|n| n.ready == Some(true)).count();
            node_summary = json!({"total": list.len(), "ready": ready});
            for n in list {
                if n.ready != Some(true) {
                    issues.push(issue(
                        "critical",
                        "NodeNotReady",
                        format!("node/{}", n.name),
                        n.ready_reason.clone(),
                        Some("list_nodes"),
                    ));
                }
                for p in &n.pressure {
                    issues.push(issue(
                        "warning",
                        "NodePressure",
                        format!("node/{}", n.name),
                        format!("{p} is True"),
                        Some("list_nodes"),
                    ));
                }
                if ctx.pool.get(&n.name).is_none() {
                    issues.push(issue(
                        "warning",
                        "NoAgent",
                        format!("node/{}", n.name),
                        "no usable labscope agent on this node: node tools cannot answer for it"
                            .into(),
                        Some("list_nodes"),
                    ));
                }
            }
        }
        Err(e) => issues.push(issue(
            "critical",
            "CheckFailed",
            "nodes".into(),
            format!("{e} ({})", e.hint()),
            None,
        )),
    }
    // Agents.
    for r in &agent_results {
        match &r.value {
            None => issues.push(issue(
                "warning",
                "AgentNotAnswering",
                format!("node/{}", r.node),
                format!("agent {:?}: {}", r.outcome, r.reason),
                Some("check_network_mesh"),
            )),
            Some(info)
                if info.conntrack_max > 0
                    && info.conntrack_count * 100 >= info.conntrack_max * 80 =>
            {
                issues.push(issue(
                    "warning",
                    "ConntrackNearlyFull",
                    format!("node/{}", r.node),
                    format!(
                        "{} of {} conntrack entries in use",
                        info.conntrack_count, info.conntrack_max
                    ),
                    Some("get_conntrack_entries"),
                ))
            }
            Some(_) => {}
        }
    }
    // Pods.
    let mut pod_summary = json!({});
    match &pods {
        Ok((total, problems)) => {
            pod_summary =
                json!({"total": total, "problems": problems.len(), "problemPods": problems});
            if *total == 0 {
                issues.push(match &namespace {
                    Some(ns) => empty_namespace(&c, ns).await,
                    None => issue(
                        "critical",
                        "NoPods",
                        "the cluster".into(),
                        "no pods at all in the cluster: nothing is running".into(),
                        None,
                    ),
                });
            }
            // Failed Job pods: one issue per CronJob (or standalone Job), not
            // one per retry pod.
            let mut failed_jobs: std::collections::BTreeMap<
                (String, String),
                (usize, std::collections::BTreeSet<String>, String),
            > = std::collections::BTreeMap::new();
            for p in problems.iter().filter(|p| p.problem == "JobFailed") {
                let job = p
                    .name
                    .rsplit_once('-')
                    .map(|x| x.0)
                    .unwrap_or(&p.name)
                    .to_string();
                let parent = match job.rsplit_once('-') {
                    Some((cj, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                        format!("cronjob/{}/{cj}", p.namespace)
                    }
                    _ => format!("job/{}/{job}", p.namespace),
                };
                let e = failed_jobs
                    .entry((p.namespace.clone(), parent))
                    .or_default();
                e.0 += 1;
                e.1.insert(job);
                e.2 = p.detail.clone();
            }
            for ((ns, parent), (pods_failed, jobs, detail)) in &failed_jobs {
                let backup =
                    ns == "backup-jobs" || parent.contains("backup") || parent.contains("restore");
                issues.push(issue(
                    "warning",
                    "JobsFailing",
                    parent.clone(),
                    format!(
                        "{pods_failed} failed pod(s) across {} Job(s), newest {}: {detail}",
                        jobs.len(),
                        jobs.iter()
                            .next_back()
                            .map(String::as_str)
                            .unwrap_or_default()
                    ),
                    Some(if backup {
                        "get_backup_status"
                    } else {
                        "get_job_logs"
                    }),
                ));
            }
            for p in problems.iter().filter(|p| p.problem != "JobFailed") {
                issues.push(issue(
                    p.severity,
                    &p.problem,
                    format!("pod/{}/{}", p.namespace, p.name),
                    format!(
                        "{} (phase {}, {} restarts, node {})",
                        p.detail, p.phase, p.restarts, p.node
                    ),
                    None,
                ));
            }
        }
        Err(e) => issues.push(issue(
            "critical",
            "CheckFailed",
            "pods".into(),
            format!("{e} ({})", e.hint()),
            None,
        )),
    }
    // Flux: root causes only; their consequences are counted with them.
    let mut checks = Map::new();
    match &flux {
        Ok(None) => {
            checks.insert("flux".into(), json!({"verdict": "not installed"}));
        }
        Ok(Some(super::flux::FluxFailures {
            roots,
            consequences,
            ..
        })) => {
            checks.insert(
                "flux".into(),
                json!({"verdict": if roots.is_empty() { "healthy" } else { "degraded" },
                    "rootCauses": roots.len(), "consequences": consequences}),
            );
            for r in roots {
                let stuck = r["status"] == "stuck";
                let object = format!(
                    "{}/{}/{}",
                    r["kind"].as_str().unwrap_or_default().to_lowercase(),
                    r["namespace"].as_str().unwrap_or_default(),
                    r["name"].as_str().unwrap_or_default()
                );
                if ["ImageRepository", "ImagePolicy", "ImageUpdateAutomation"]
                    .contains(&r["kind"].as_str().unwrap_or_default())
                {
                    // Reported with its fix by the image automation check below.
                    continue;
                }
                let evidence = format!(
                    "{}: {}{}",
                    r["reason"].as_str().unwrap_or_default(),
                    r["stuckBecause"]
                        .as_str()
                        .or(r["message"].as_str())
                        .unwrap_or_default(),
                    r["hint"]
                        .as_str()
                        .map(|h| format!(" — {h}"))
                        .unwrap_or_default()
                );
                issues.push(issue(
                    if stuck { "critical" } else { "warning" },
                    if stuck { "FluxStuck" } else { "FluxFailing" },
                    object,
                    evidence,
                    Some("get_flux_status"),
                ));
            }
        }
        Err(e) => {
            checks.insert(
                "flux".into(),
                json!({"verdict": "error", "message": e.to_string()}),
            );
            issues.push(issue(
                "warning",
                "CheckFailed",
                "flux".into(),
                format!("{e} ({})", e.hint()),
                Some("get_flux_status"),
            ));
        }
    }
    // Image automation, from the same Flux lists.
    match &flux {
        Ok(Some(super::flux::FluxFailures {
            images: Some(out), ..
        })) => {
            checks.insert(
                "imageAutomation".into(),
                json!({"verdict": out.structured["verdict"]}),
            );
            for rc in out.structured["rootCauses"]
                .as_array()
                .into_iter()
                .flatten()
            {
                issues.push(issue(
                    "warning",
                    "ImageAutomationFailing",
                    rc["object"].as_str().unwrap_or_default().to_lowercase(),
                    format!(
                        "{} ({}) — fix: {}",
                        rc["problem"].as_str().unwrap_or_default(),
                        rc["reason"].as_str().unwrap_or_default(),
                        rc["fix"].as_str().unwrap_or("see the tool")
                    ),
                    Some("get_image_automation_status"),
                ));
            }
        }
        Ok(_) => {
            checks.insert(
                "imageAutomation".into(),
                json!({"verdict": "not installed"}),
            );
        }
        Err(e) => {
            checks.insert(
                "imageAutomation".into(),
                json!({"verdict": "error", "message": e.to_string()}),
            );
        }
    }
    let warning_events = match &events {
        Ok(out) => out.structured["events"].clone(),
        Err(e) => {
            // Unread events are a failed check: never silently healthy.
            issues.push(issue(
                "warning",
                "CheckFailed",
                "events".into(),
                format!(
                    "Warning events could not be read: {} ({})",
                    e.message, e.hint
                ),
                Some("get_events"),
            ));
            json!([{"error": e.message}])
        }
    };
    // Sub-checks.
    for (name, tool, result) in [
        ("certificates", "get_certificate_status", Some(certs)),
        ("externalSecrets", "get_secrets_status", Some(secrets)),
        ("tailscale", "get_tailscale_status", tailscale),
    ] {
        let Some(result) = result else { continue };
        match result {
            Ok(out) => {
                let verdict = out.structured["verdict"].as_str().unwrap_or("").to_string();
                checks.insert(name.into(), json!({"verdict": verdict}));
                match (name, verdict.as_str()) {
                    ("certificates", "critical" | "degraded") => {
                        for cert in out.structured["certificates"]
                            .as_array()
                            .into_iter()
                            .flatten()
                        {
                            let obj = format!(
                                "certificate/{}/{}",
                                cert["namespace"].as_str().unwrap_or(""),
                                cert["name"].as_str().unwrap_or("")
                            );
                            if cert["ready"] != true {
                                let why = cert["hint"]
                                    .as_str()
                                    .or(cert["message"].as_str())
                                    .unwrap_or("")
                                    .to_string();
                                issues.push(issue(
                                    "critical",
                                    "CertificateNotReady",
                                    obj,
                                    why,
                                    Some(tool),
                                ));
                            } else if cert["expiring"] == true
                                || !cert["renewalOverdueDays"].is_null()
                            {
                                issues.push(issue(
                                    "warning",
                                    "CertificateExpiring",
                                    obj,
                                    format!(
                                        "{} days left, renewal overdue {} days",
                                        cert["daysLeft"], cert["renewalOverdueDays"]
                                    ),
                                    Some(tool),
                                ));
                            }
                        }
                    }
                    ("externalSecrets", "degraded") => {
                        let s = &out.structured["summary"];
                        issues.push(issue(
                            "critical",
                            "ExternalSecretsFailing",
                            "externalsecrets".into(),
                            format!(
                                "{} of {} failing, {} store(s) down",
                                s["failing"], s["externalSecrets"], s["storesDown"]
                            ),
                            Some(tool),
                        ));
                    }
                    ("tailscale", "degraded") => issues.push(issue(
                        "warning",
                        "TailscaleDegraded",
                        "tailscale".into(),
                        out.text.trim().to_string(),
                        Some(tool),
                    )),
                    _ => {}
                }
            }
            Err(e) => {
                checks.insert(
                    name.into(),
                    json!({"verdict": "error", "message": e.message}),
                );
                if !matches!(e.code, ErrorCode::NotConfigured) {
                    issues.push(issue(
                        "warning",
                        "CheckFailed",
                        name.into(),
                        format!("{} ({})", e.message, e.hint),
                        Some(tool),
                    ));
                }
            }
        }
    }
    // Events about an issue's object are its evidence too.
    for i in issues.iter_mut() {
        let name = i["object"]
            .as_str()
            .and_then(|o| o.rsplit('/').next())
            .unwrap_or_default()
            .to_string();
        let related: Vec<Value> = warning_events
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                e["object"]
                    .as_str()
                    .is_some_and(|o| o.rsplit('/').next() == Some(name.as_str()))
            })
            .map(|e| {
                json!(format!(
                    "{} ×{}: {}",
                    e["reason"].as_str().unwrap_or_default(),
                    e["count"],
                    e["message"].as_str().unwrap_or_default()
                ))
            })
            .collect();
        if !related.is_empty() {
            i["events"] = json!(related);
        }
    }
    issues.sort_by_key(|i| i["severity"] != "critical");
    let verdict = if issues.iter().any(|i| i["severity"] == "critical") {
        "critical"
    } else if issues.is_empty() {
        "healthy"
    } else {
        "degraded"
    };
    let mut text = format!("cluster: {verdict} — {} issue(s)\n", issues.len());
    for i in issues.iter().take(20) {
        text.push_str(&format!(
            "[{}] {} {}: {}{}\n",
            i["severity"].as_str().unwrap_or(""),
            i["kind"].as_str().unwrap_or(""),
            i["object"].as_str().unwrap_or(""),
            i["evidence"].as_str().unwrap_or(""),
            i["nextTool"]
                .as_str()
                .map(|t| format!(" → {t}"))
                .unwrap_or_default()
        ));
    }
    let structured = json!({"verdict": verdict, "issues": issues, "nodes": node_summary, "pods": pod_summary,
        "checks": checks, "warningEvents": warning_events, "namespace": namespace, "now": crate::cluster::time::now(ctx.settings.now)});
    Ok(ToolOutput { structured, text })
}
