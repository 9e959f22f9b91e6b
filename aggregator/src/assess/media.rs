//! Jellyfin and Immich judged: each server's answer and the media
//! workloads' pods; never healthy when a service is unreachable or refuses
//! its key, a workload is scaled to zero or its namespace is gone, or the
//! Immich server is down while its database is Ready (the June 2026
//! "parked" incident). `tools/media.rs` asks the servers and reads the pods.

use k8s_openapi::api::core::v1::Pod;
use schemars::JsonSchema;
use serde::Serialize;

use super::FailedPart;
use super::dns::ServiceError;
use crate::cluster::time::parse_rfc3339;

/// Restarts newer than this count as recent.
const RECENT_S: i64 = 24 * 3600;

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaVerdict {
    /// Both answer and every workload has its pods ready.
    Healthy,
    /// Something is missing or off.
    Degraded,
    /// A service is down.
    Critical,
    /// Neither Jellyfin nor Immich is configured (pods alone were checked).
    #[serde(rename = "not configured")]
    NotConfigured,
}

/// Jellyfin's library counts.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Libraries {
    /// Movies.
    pub movies: u64,
    /// Series.
    pub series: u64,
    /// Episodes.
    pub episodes: u64,
    /// Songs.
    pub songs: u64,
    /// Albums.
    pub albums: u64,
    /// Books.
    pub books: u64,
    /// Every item.
    pub items: u64,
}

/// Jellyfin.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JellyfinStatus {
    /// URL.
    pub url: String,
    /// Every read answered.
    pub ok: bool,
    /// The failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ServiceError>,
    /// Version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Server name.
    #[serde(rename = "serverName", skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// A restart is pending (after an update or plugin change).
    #[serde(rename = "pendingRestart", skip_serializing_if = "Option::is_none")]
    pub pending_restart: Option<bool>,
    /// Library counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub libraries: Option<Libraries>,
    /// Sessions connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u32>,
    /// What is playing ("user: title").
    pub playing: Vec<String>,
}

/// Immich's storage.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Storage {
    /// Size.
    pub size: String,
    /// Used.
    pub used: String,
    /// Available.
    pub available: String,
    /// Used, percent.
    #[serde(rename = "usagePercent")]
    pub usage_percent: f64,
}

/// Immich's assets.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Assets {
    /// Photos.
    pub photos: u64,
    /// Videos.
    pub videos: u64,
    /// Bytes used.
    #[serde(rename = "usageBytes")]
    pub usage_bytes: u64,
}

/// Immich.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ImmichStatus {
    /// URL.
    pub url: String,
    /// Every read answered.
    pub ok: bool,
    /// The failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ServiceError>,
    /// Version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Storage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// Assets (needs an admin key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assets: Option<Assets>,
    /// What could not be read and why (a non-admin key).
    pub notes: Vec<String>,
}

/// A workload's pods.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MediaWorkload {
    /// Namespace.
    pub namespace: String,
    /// Deployment.
    pub name: String,
    /// jellyfin or immich (`[workloads]` in the config).
    pub app: String,
    /// server, database, cache.
    pub role: String,
    /// Desired replicas.
    pub desired: i32,
    /// Pods.
    pub pods: u32,
    /// Ready pods.
    pub ready: u32,
    /// Container restarts (liveness failures and crashes).
    pub restarts: u32,
    /// Restarts in the last 24 h.
    #[serde(rename = "recentRestarts")]
    pub recent_restarts: u32,
    /// ok, not ready, no pods, scaled to zero, missing, namespace missing.
    pub status: String,
}

/// The answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MediaStatus {
    /// The verdict.
    pub verdict: MediaVerdict,
    /// What keeps it from healthy.
    pub issues: Vec<String>,
    /// Jellyfin, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jellyfin: Option<JellyfinStatus>,
    /// Immich, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immich: Option<ImmichStatus>,
    /// The workloads.
    pub workloads: Vec<MediaWorkload>,
    /// Parts that could not be read.
    #[serde(rename = "failedParts")]
    pub failed_parts: Vec<FailedPart>,
}

/// (restarts, restarts within the last 24 h) of a pod's containers.
pub fn restart_counts(p: &Pod, now_s: i64) -> (u32, u32) {
    let statuses = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let total = statuses.iter().map(|c| c.restart_count.max(0) as u32).sum();
    let recent = statuses
        .iter()
        .filter(|c| {
            c.last_state
                .as_ref()
                .and_then(|l| l.terminated.as_ref())
                .and_then(|t| t.finished_at.as_ref())
                .and_then(|f| parse_rfc3339(&f.0.to_string()))
                .is_some_and(|f| now_s - f < RECENT_S)
        })
        .count() as u32;
    (total, recent)
}

/// An app whose server has no ready pod while its database is Ready (the
/// June 2026 incident: Immich's server parked, Postgres fine, no photos).
fn parked(workloads: &[MediaWorkload]) -> Vec<String> {
    let of = |app: &str, role: &str| {
        workloads
            .iter()
            .filter(|w| w.app == app && w.role == role)
            .collect::<Vec<_>>()
    };
    let mut out = Vec::new();
    for app in ["immich", "jellyfin"] {
        let (servers, dbs) = (of(app, "server"), of(app, "database"));
        if !servers.is_empty()
            && servers.iter().all(|s| s.ready == 0)
            && dbs.iter().any(|d| d.ready > 0)
        {
            let (name, what) = match app {
                "immich" => ("Immich", "photos are not served"),
                _ => ("Jellyfin", "media is not served"),
            };
            out.push(format!(
                "the {name} server is down ({}) while its database is Ready: {what}",
                servers
                    .iter()
                    .map(|s| s.status.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    out
}

/// The verdict over what was read.
pub fn assess(
    jellyfin: Option<JellyfinStatus>,
    immich: Option<ImmichStatus>,
    workloads: Vec<MediaWorkload>,
    failed: Vec<FailedPart>,
) -> MediaStatus {
    let mut critical = Vec::new();
    let mut degraded = Vec::new();
    if let Some(j) = &jellyfin {
        if let Some(e) = &j.error {
            let down = j.version.is_none();
            let line = format!("Jellyfin: {}", e.message);
            if down {
                critical.push(line)
            } else {
                degraded.push(line)
            }
        }
        if j.pending_restart == Some(true) {
            degraded.push("Jellyfin has a restart pending".into());
        }
    }
    if let Some(i) = &immich
        && let Some(e) = &i.error
    {
        let line = format!("Immich: {}", e.message);
        if i.version.is_none() {
            critical.push(line)
        } else {
            degraded.push(line)
        }
    }
    critical.extend(parked(&workloads));
    for w in &workloads {
        if w.status != "ok" {
            let line = format!("{}/{} ({}): {}", w.namespace, w.name, w.role, w.status);
            if w.role == "server" {
                critical.push(line)
            } else {
                degraded.push(line)
            }
        } else if w.recent_restarts > 0 {
            degraded.push(format!(
                "{}/{}: {} restart(s) in the last 24 h (liveness failures or crashes)",
                w.namespace, w.name, w.recent_restarts
            ));
        }
    }
    for f in &failed {
        degraded.push(format!("{} not read: {}", f.part, f.message));
    }
    let verdict = if jellyfin.is_none() && immich.is_none() {
        degraded.insert(
            0,
            "neither [jellyfin] nor [immich] is configured: only pods were checked".into(),
        );
        MediaVerdict::NotConfigured
    } else if !critical.is_empty() {
        MediaVerdict::Critical
    } else if !degraded.is_empty() {
        MediaVerdict::Degraded
    } else {
        MediaVerdict::Healthy
    };
    critical.extend(degraded);
    MediaStatus {
        verdict,
        issues: critical,
        jellyfin,
        immich,
        workloads,
        failed_parts: failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(message: &str) -> ServiceError {
        ServiceError {
            code: "unreachable".into(),
            message: message.into(),
            hint: String::new(),
        }
    }

    fn workload(ns: &str, name: &str, app: &str, role: &str, ready: u32) -> MediaWorkload {
        MediaWorkload {
            namespace: ns.into(),
            name: name.into(),
            app: app.into(),
            role: role.into(),
            desired: 1,
            pods: 1,
            ready,
            restarts: 0,
            recent_restarts: 0,
            status: if ready > 0 { "ok" } else { "not ready" }.into(),
        }
    }

    struct Reads {
        jellyfin: Option<JellyfinStatus>,
        immich: Option<ImmichStatus>,
        workloads: Vec<MediaWorkload>,
        failed: Vec<FailedPart>,
    }

    fn healthy() -> Reads {
        Reads {
            jellyfin: Some(JellyfinStatus {
                url: "http://jellyfin:8096".into(),
                ok: true,
                error: None,
                version: Some("10.11.2".into()),
                server_name: None,
                pending_restart: Some(false),
                libraries: None,
                sessions: None,
                playing: Vec::new(),
            }),
            immich: Some(ImmichStatus {
                url: "http://immich:2283".into(),
                ok: true,
                error: None,
                version: Some("2.3.1".into()),
                storage: None,
                assets: None,
                notes: Vec::new(),
            }),
            workloads: vec![
                workload("jellyfin", "jellyfin", "jellyfin", "server", 1),
                workload("immich", "immich-server", "immich", "server", 1),
                workload("immich", "immich-postgresql", "immich", "database", 1),
                workload("immich", "immich-valkey", "immich", "cache", 1),
            ],
            failed: Vec::new(),
        }
    }

    fn set(r: &mut Reads, name: &str, ready: u32) {
        for w in r.workloads.iter_mut().filter(|w| w.name == name) {
            w.ready = ready;
            w.status = if ready > 0 { "ok" } else { "not ready" }.into();
        }
    }

    type Case = (&'static str, fn(&mut Reads), MediaVerdict, &'static str);

    /// Each case: what changes, the verdict, and words the first issue says.
    const CASES: &[Case] = &[
        ("all well", |_| {}, MediaVerdict::Healthy, ""),
        (
            "Jellyfin unreachable is critical",
            |r| {
                let j = r.jellyfin.as_mut().unwrap();
                j.error = Some(error("connection refused"));
                j.version = None;
            },
            MediaVerdict::Critical,
            "Jellyfin: connection refused",
        ),
        (
            "an error while the version was read is degraded",
            |r| r.jellyfin.as_mut().unwrap().error = Some(error("sessions: 500")),
            MediaVerdict::Degraded,
            "Jellyfin: sessions: 500",
        ),
        (
            "a pending restart",
            |r| r.jellyfin.as_mut().unwrap().pending_restart = Some(true),
            MediaVerdict::Degraded,
            "restart pending",
        ),
        (
            "Immich's server parked while Postgres is Ready",
            |r| set(r, "immich-server", 0),
            MediaVerdict::Critical,
            "the Immich server is down (not ready) while its database is Ready",
        ),
        (
            "a cache that is not ready is degraded, not critical",
            |r| set(r, "immich-valkey", 0),
            MediaVerdict::Degraded,
            "immich/immich-valkey (cache): not ready",
        ),
        (
            "recent restarts",
            |r| r.workloads[0].recent_restarts = 3,
            MediaVerdict::Degraded,
            "3 restart(s) in the last 24 h",
        ),
        (
            "a part not read is never healthy",
            |r| {
                r.failed.push(FailedPart {
                    part: "pods".into(),
                    code: crate::codes::ErrorCode::PermissionDenied,
                    message: "forbidden".into(),
                    hint: String::new(),
                })
            },
            MediaVerdict::Degraded,
            "pods not read: forbidden",
        ),
        (
            "neither service configured",
            |r| {
                r.jellyfin = None;
                r.immich = None;
            },
            MediaVerdict::NotConfigured,
            "neither [jellyfin] nor [immich] is configured",
        ),
    ];

    #[test]
    fn each_rule_gives_its_verdict() {
        for (name, change, verdict, says) in CASES {
            let mut r = healthy();
            change(&mut r);
            let m = assess(r.jellyfin, r.immich, r.workloads, r.failed);
            assert_eq!(m.verdict, *verdict, "{name}: {:?}", m.issues);
            if says.is_empty() {
                assert!(m.issues.is_empty(), "{name}: {:?}", m.issues);
            } else {
                assert!(m.issues[0].contains(says), "{name}: {:?}", m.issues);
            }
        }
    }
}
