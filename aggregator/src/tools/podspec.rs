//! What a pod template says, safe to show: containers with their env (values
//! that look secret redacted, Secret references named but never read),
//! commands redacted, mounts and resources; volumes by type and source;
//! conditions. Shared by `describe_resource` and `get_cronjob_details`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, Volume};
use schemars::JsonSchema;
use serde::Serialize;

use crate::redact::{MARK, redact, secret_name};

/// One env variable; `value` says where it comes from when it is a reference.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EnvVar {
    /// Name.
    pub name: String,
    /// Its value (redacted when it looks secret), or "from Secret s key k".
    pub value: String,
}

/// A mount.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    /// Volume.
    pub name: String,
    /// Where.
    pub mount_path: String,
    /// Read-only.
    pub read_only: bool,
}

/// Requests and limits.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Resources {
    /// cpu, memory, … requested.
    pub requests: BTreeMap<String, String>,
    /// cpu, memory, … limits.
    pub limits: BTreeMap<String, String>,
}

/// A container of a pod template.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInfo {
    /// Name.
    pub name: String,
    /// Image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Command, secrets redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Arguments, secrets redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Env.
    pub env: Vec<EnvVar>,
    /// Secrets and ConfigMaps loaded whole ("Secret x").
    pub env_from: Vec<String>,
    /// Mounts.
    pub volume_mounts: Vec<Mount>,
    /// Requests and limits.
    pub resources: Resources,
}

/// A container, safe to show.
pub fn container(c: &Container) -> ContainerInfo {
    let env = c
        .env
        .iter()
        .flatten()
        .map(|e| EnvVar {
            name: e.name.clone(),
            value: match &e.value_from {
                Some(from) => {
                    if let Some(s) = &from.secret_key_ref {
                        format!("from Secret {} key {}", s.name, s.key)
                    } else if let Some(m) = &from.config_map_key_ref {
                        format!("from ConfigMap {} key {}", m.name, m.key)
                    } else if let Some(f) = &from.field_ref {
                        format!("from field {}", f.field_path)
                    } else {
                        "from a resource".into()
                    }
                }
                None if secret_name(&e.name) => MARK.into(),
                None => redact(e.value.as_deref().unwrap_or_default()).text,
            },
        })
        .collect();
    let quantities =
        |m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
            m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
                .unwrap_or_default()
        };
    ContainerInfo {
        name: c.name.clone(),
        image: c.image.clone(),
        command: c
            .command
            .as_ref()
            .map(|a| a.iter().map(|x| redact(x).text).collect()),
        args: c
            .args
            .as_ref()
            .map(|a| a.iter().map(|x| redact(x).text).collect()),
        env,
        env_from: c
            .env_from
            .iter()
            .flatten()
            .map(|e| match (&e.secret_ref, &e.config_map_ref) {
                (Some(s), _) => format!("Secret {}", s.name),
                (_, Some(m)) => format!("ConfigMap {}", m.name),
                _ => "unknown".into(),
            })
            .collect(),
        volume_mounts: c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| Mount {
                name: m.name.clone(),
                mount_path: m.mount_path.clone(),
                read_only: m.read_only.unwrap_or(false),
            })
            .collect(),
        resources: c
            .resources
            .as_ref()
            .map(|r| Resources {
                requests: quantities(r.requests.as_ref()),
                limits: quantities(r.limits.as_ref()),
            })
            .unwrap_or_default(),
    }
}

/// A volume by type and source.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VolumeRef {
    /// Name.
    pub name: String,
    /// secret, persistentVolumeClaim, configMap, hostPath, nfs, emptyDir, projected, other.
    #[serde(rename = "type")]
    pub volume_type: String,
    /// The Secret, claim, ConfigMap, path or export.
    pub source: String,
}

/// A volume, by type and source.
pub fn volume(v: &Volume) -> VolumeRef {
    let (kind, source) = if let Some(s) = &v.secret {
        ("secret", s.secret_name.clone().unwrap_or_default())
    } else if let Some(p) = &v.persistent_volume_claim {
        ("persistentVolumeClaim", p.claim_name.clone())
    } else if let Some(m) = &v.config_map {
        ("configMap", m.name.clone())
    } else if let Some(h) = &v.host_path {
        ("hostPath", h.path.clone())
    } else if let Some(n) = &v.nfs {
        ("nfs", format!("{}:{}", n.server, n.path))
    } else if v.empty_dir.is_some() {
        ("emptyDir", String::new())
    } else if v.projected.is_some() {
        ("projected", String::new())
    } else {
        ("other", String::new())
    };
    VolumeRef {
        name: v.name.clone(),
        volume_type: kind.into(),
        source,
    }
}

/// Containers and volumes of a pod spec.
pub fn containers_and_volumes(spec: Option<&PodSpec>) -> (Vec<ContainerInfo>, Vec<VolumeRef>) {
    let Some(spec) = spec else {
        return (Vec::new(), Vec::new());
    };
    (
        spec.containers.iter().map(container).collect(),
        spec.volumes.iter().flatten().map(volume).collect(),
    )
}

/// A status condition.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Condition {
    /// Type.
    #[serde(rename = "type")]
    pub condition_type: String,
    /// True, False, Unknown.
    pub status: String,
    /// Reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Last transition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// Conditions of any object, from its JSON (every kind spells them alike).
pub fn conditions(obj: &serde_json::Value) -> Vec<Condition> {
    crate::cluster::kinds::status_conditions(obj)
        .conditions
        .into_iter()
        .map(|c| Condition {
            condition_type: c.kind,
            status: c.status,
            reason: Some(c.reason).filter(|r| !r.is_empty()),
            message: Some(c.message)
                .filter(|m| !m.is_empty())
                .map(|m| redact(&m).text),
            since: c.last_transition_time,
        })
        .collect()
}
