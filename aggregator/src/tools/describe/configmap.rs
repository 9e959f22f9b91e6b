//! A ConfigMap described: each key's size and value, secrets redacted (a
//! key named like a credential hides its whole value).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::Serialize;

use super::{Kind, Summary, get_in};
use crate::cluster::Cluster;
use crate::redact::{MARK, redact, secret_name};
use crate::tools::ToolError;

/// One ConfigMap key.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ConfigValue {
    /// Size.
    pub bytes: usize,
    /// Value, redacted, at most 2048 characters.
    pub value: String,
    /// Cut at 2048 characters.
    pub truncated: bool,
    /// Secrets hidden.
    pub redactions: usize,
}

/// A ConfigMap.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapSummary {
    /// Keys.
    pub data: BTreeMap<String, ConfigValue>,
    /// Keys of binaryData (not shown).
    pub binary_keys: Vec<String>,
}

/// Reads ConfigMap `name`, redacted.
pub(super) async fn describe(
    c: &Cluster,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
) -> Result<(ObjectMeta, Summary), ToolError> {
    let m: ConfigMap = get_in(c, kind, ns, name).await?;
    let data = m
        .data
        .iter()
        .flatten()
        .map(|(k, v)| {
            // A key named like a credential hides its whole value.
            let (clean, n) = if secret_name(k) {
                (MARK.to_string(), 1)
            } else {
                let r = redact(v);
                (r.text, r.count)
            };
            let shown: String = clean.chars().take(2048).collect();
            (
                k.clone(),
                ConfigValue {
                    bytes: v.len(),
                    truncated: clean.chars().count() > 2048,
                    value: shown,
                    redactions: n,
                },
            )
        })
        .collect();
    let summary = ConfigMapSummary {
        data,
        binary_keys: m
            .binary_data
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect(),
    };
    Ok((m.metadata, Summary::ConfigMap(summary)))
}

impl ConfigMapSummary {
    /// Its lines of the text rendering.
    pub(super) fn text(&self, out: &mut String) {
        let m = self;
        for (k, v) in &m.data {
            out.push_str(&format!(
                "{k} ({} bytes{}{}): {}\n",
                v.bytes,
                if v.redactions > 0 {
                    ", secrets redacted"
                } else {
                    ""
                },
                if v.truncated { ", truncated" } else { "" },
                v.value.lines().next().unwrap_or_default()
            ));
        }
    }
}
