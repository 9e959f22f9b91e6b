//! External Secrets judged: each ExternalSecret and store Ready or not, and
//! the failures a store that is down causes grouped under that store (its
//! root cause). `tools/secrets.rs` reads the kinds.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use schemars::JsonSchema;
use serde::Serialize;

use super::FailedPart;
use crate::cluster::kinds::{condition, meta};

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum SecretsVerdict {
    /// Every ExternalSecret and store Ready.
    #[serde(rename = "healthy")]
    Healthy,
    /// Something is not Ready.
    #[serde(rename = "degraded")]
    Degraded,
    /// A kind could not be read.
    #[serde(rename = "incomplete")]
    Incomplete,
    /// None exist.
    #[serde(rename = "no ExternalSecrets")]
    NoExternalSecrets,
    /// The operator is not installed.
    #[serde(rename = "not installed")]
    NotInstalled,
}

/// A store, by kind and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct StoreRef {
    /// SecretStore or ClusterSecretStore.
    pub kind: String,
    /// Namespace of a SecretStore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

/// A store's health.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Store {
    /// Which.
    #[serde(flatten)]
    pub store: StoreRef,
    /// Ready.
    pub ready: bool,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

/// One ExternalSecret.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretRow {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Ready.
    pub ready: bool,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// Last refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<String>,
    /// Its store.
    pub store: StoreRef,
}

/// A store that is down, with the failures it explains.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreDown {
    /// The store.
    pub store: StoreRef,
    /// Why (Ready's reason).
    pub reason: String,
    /// Ready's message.
    pub message: String,
    /// ExternalSecrets failing because of it.
    pub failing_external_secrets: usize,
    /// Some of them, namespace/name.
    pub examples: Vec<String>,
    /// What it means.
    pub note: String,
}

/// Counts.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretsSummary {
    /// ExternalSecrets.
    pub external_secrets: usize,
    /// Ready.
    pub ready: usize,
    /// Not ready.
    pub failing: usize,
    /// Stores.
    pub stores: usize,
    /// Stores not ready.
    pub stores_down: usize,
}

/// External Secrets.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Secrets {
    /// The operator serves its kinds.
    pub installed: bool,
    /// Verdict.
    pub verdict: SecretsVerdict,
    /// Version ExternalSecrets were read at.
    pub api_version: String,
    /// Version each kind was read at.
    pub api_versions: BTreeMap<String, String>,
    /// Counts (absent when not installed: never "0 ExternalSecrets, 0 failed").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<SecretsSummary>,
    /// Stores.
    pub stores: Vec<Store>,
    /// Stores down, each with the failures it explains.
    pub root_causes: Vec<StoreDown>,
    /// ExternalSecrets.
    pub external_secrets: Vec<ExternalSecretRow>,
    /// Kinds that could not be read.
    pub failed_parts: Vec<FailedPart>,
}

/// An ExternalSecret (external-secrets.io/v1), typed: absent is empty; a
/// field of another type is named. refresh_external_secret reads it too.
pub(crate) mod wire {
    use serde::Deserialize;

    use crate::cluster::kinds::Conditions;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct ExternalSecret {
        pub spec: Spec,
        pub status: Status,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Spec {
        pub secret_store_ref: StoreRef,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct StoreRef {
        pub kind: Option<String>,
        pub name: String,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Status {
        #[serde(flatten)]
        pub conditions: Conditions,
        pub refresh_time: Option<String>,
    }
}

/// Judges stores and ExternalSecrets (pure).
pub fn assess(
    installed: bool,
    api_versions: BTreeMap<String, String>,
    cluster_stores: &[DynamicObject],
    stores: &[DynamicObject],
    secrets: &[DynamicObject],
    failed_parts: Vec<FailedPart>,
) -> Secrets {
    let api_version = api_versions
        .get("ExternalSecret")
        .cloned()
        .unwrap_or_else(|| "not installed".into());
    if !installed {
        return Secrets {
            installed,
            verdict: SecretsVerdict::NotInstalled,
            api_version,
            api_versions,
            summary: None,
            stores: Vec::new(),
            root_causes: Vec::new(),
            external_secrets: Vec::new(),
            failed_parts,
        };
    }
    let mut store_rows = Vec::new();
    for (kind, list) in [
        ("ClusterSecretStore", cluster_stores),
        ("SecretStore", stores),
    ] {
        for s in list {
            let (ns, name) = meta(s);
            let (status, reason, message) = condition(&s.data, "Ready").unwrap_or_default();
            store_rows.push(Store {
                store: StoreRef {
                    kind: kind.into(),
                    namespace: (kind == "SecretStore").then_some(ns),
                    name,
                },
                ready: status == "True",
                reason,
                message,
            });
        }
    }
    let rows: Vec<ExternalSecretRow> = secrets.iter().map(external_secret).collect();
    let root_causes = stores_down(&store_rows, &rows);
    let failing = rows.iter().filter(|r| !r.ready).count();
    let verdict = if failing > 0 || !root_causes.is_empty() {
        SecretsVerdict::Degraded
    } else if !failed_parts.is_empty() {
        SecretsVerdict::Incomplete
    } else if rows.is_empty() && store_rows.is_empty() {
        SecretsVerdict::NoExternalSecrets
    } else {
        SecretsVerdict::Healthy
    };
    Secrets {
        installed,
        verdict,
        api_version,
        api_versions,
        summary: Some(SecretsSummary {
            external_secrets: rows.len(),
            ready: rows.len() - failing,
            failing,
            stores: store_rows.len(),
            stores_down: root_causes.len(),
        }),
        stores: store_rows,
        root_causes,
        external_secrets: rows,
        failed_parts,
    }
}

/// One ExternalSecret: Ready or not, and the store it reads from.
fn external_secret(es: &DynamicObject) -> ExternalSecretRow {
    let (ns, name) = meta(es);
    let e = crate::cluster::kinds::fields::<wire::ExternalSecret>(es);
    let (status, reason, message) = crate::cluster::kinds::judged(
        e.as_ref().map(|e| &e.status.conditions),
        "Ready",
        ("ExternalSecret", "an External Secrets"),
    );
    let e = e.unwrap_or_default();
    let kind = e
        .spec
        .secret_store_ref
        .kind
        .unwrap_or_else(|| "SecretStore".into());
    ExternalSecretRow {
        store: StoreRef {
            namespace: (kind == "SecretStore").then(|| ns.clone()),
            kind,
            name: e.spec.secret_store_ref.name,
        },
        namespace: ns,
        name,
        ready: status == "True",
        reason,
        message,
        refresh_time: e.status.refresh_time,
    }
}

/// One root cause per store that is down, with the failures it explains.
fn stores_down(store_rows: &[Store], rows: &[ExternalSecretRow]) -> Vec<StoreDown> {
    store_rows
        .iter()
        .filter(|s| !s.ready)
        .map(|s| {
            let echoes: Vec<String> = rows
                .iter()
                .filter(|r| !r.ready && r.store == s.store)
                .map(|r| format!("{}/{}", r.namespace, r.name))
                .collect();
            StoreDown {
                store: s.store.clone(),
                reason: s.reason.clone(),
                message: s.message.clone(),
                failing_external_secrets: echoes.len(),
                examples: echoes.into_iter().take(10).collect(),
                note:
                    "existing Secrets keep working, but nothing refreshes until the store is ready"
                        .into(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_secrets_read_typed_and_a_retyped_field_is_named() {
        let es = |name: &str, spec: serde_json::Value| -> DynamicObject {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                "metadata": {"name": name, "namespace": "apps"},
                "spec": spec,
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced"}],
                    "refreshTime": "2026-08-20T06:00:00Z"},
            }))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let good = es(
            "db",
            serde_json::json!({"secretStoreRef": {"kind": "ClusterSecretStore", "name": "bitwarden"}}),
        );
        let odd = es("odd", serde_json::json!({"secretStoreRef": "bitwarden"}));
        let out = assess(true, BTreeMap::new(), &[], &[], &[good, odd], Vec::new());
        let rows = &out.external_secrets;
        let good = rows.iter().find(|r| r.name == "db").expect("db");
        assert!(good.ready);
        assert_eq!(good.store.kind, "ClusterSecretStore");
        assert_eq!(good.store.name, "bitwarden");
        assert!(good.store.namespace.is_none());
        assert_eq!(good.refresh_time.as_deref(), Some("2026-08-20T06:00:00Z"));
        let odd = rows.iter().find(|r| r.name == "odd").expect("odd");
        assert!(!odd.ready);
        assert_eq!(odd.reason, "Unreadable");
        assert!(
            odd.message.contains("field `spec.secretStoreRef`"),
            "{}",
            odd.message
        );
    }
}
