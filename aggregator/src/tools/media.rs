//! `get_media_status`: Jellyfin (version, pending restart, library counts,
//! sessions) and Immich (version, storage, asset counts) over their APIs,
//! and the pods of their workloads with readiness and restarts. Never
//! healthy when a service is unreachable or refuses its key, a workload is
//! scaled to zero or its namespace is gone, or the Immich server is down
//! while its database is Ready (the June 2026 "parked" incident).

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::args::DefaultTrue;
use super::dns::ServiceError;
use super::kube::{FailedPart, failed_text};
use super::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset, label};
use crate::cluster::time::{now, parse_rfc3339};
use crate::cluster::{Cluster, Request};
use crate::services::media::{self, MediaClient};

/// Restarts newer than this count as recent.
const RECENT_S: i64 = 24 * 3600;

impl From<&media::Error> for ServiceError {
    fn from(e: &media::Error) -> Self {
        Self {
            code: e.code().into(),
            message: e.to_string(),
            hint: e.hint(),
        }
    }
}

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Read library counts, sessions, storage and asset counts (default true).
    #[serde(default, rename = "includeStats")]
    pub include_stats: DefaultTrue,
}

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

impl Render for MediaStatus {
    fn text(&self) -> String {
        let mut t = format!("media: {}\n", label(&self.verdict));
        for i in &self.issues {
            t.push_str(&format!("- {i}\n"));
        }
        if let Some(j) = &self.jellyfin {
            t.push_str(&format!("Jellyfin ({}): ", j.url));
            match &j.error {
                Some(e) => t.push_str(&format!("ERROR [{}] {} — {}\n", e.code, e.message, e.hint)),
                None => {
                    t.push_str(&format!(
                        "{}{}",
                        j.version.as_deref().unwrap_or("?"),
                        if j.pending_restart == Some(true) {
                            ", restart pending"
                        } else {
                            ""
                        }
                    ));
                    if let Some(l) = &j.libraries {
                        t.push_str(&format!(
                            "; {} movies, {} series, {} episodes, {} songs",
                            l.movies, l.series, l.episodes, l.songs
                        ));
                    }
                    if let Some(s) = j.sessions {
                        t.push_str(&format!("; {s} sessions"));
                    }
                    t.push('\n');
                    for p in &j.playing {
                        t.push_str(&format!("  playing: {p}\n"));
                    }
                }
            }
        }
        if let Some(i) = &self.immich {
            t.push_str(&format!("Immich ({}): ", i.url));
            match &i.error {
                Some(e) => t.push_str(&format!("ERROR [{}] {} — {}\n", e.code, e.message, e.hint)),
                None => {
                    t.push_str(i.version.as_deref().unwrap_or("?"));
                    if let Some(s) = &i.storage {
                        t.push_str(&format!(
                            "; storage {} of {} used ({:.1}%)",
                            s.used, s.size, s.usage_percent
                        ));
                    }
                    if let Some(a) = &i.assets {
                        t.push_str(&format!("; {} photos, {} videos", a.photos, a.videos));
                    }
                    t.push('\n');
                }
            }
            for n in &i.notes {
                t.push_str(&format!("  note: {n}\n"));
            }
        }
        for w in &self.workloads {
            t.push_str(&format!(
                "{}/{} ({}): {} — {}/{} ready, {} restarts ({} in 24 h)\n",
                w.namespace,
                w.name,
                w.role,
                w.status,
                w.ready,
                w.desired,
                w.restarts,
                w.recent_restarts
            ));
        }
        t.push_str(&failed_text(&self.failed_parts));
        t
    }
}

/// `get_media_status`.
pub fn status_tool() -> ToolDef {
    ToolDef::typed(
        Meta {
            name: "get_media_status",
            title: "Media status",
            description: "Jellyfin and Immich: versions, libraries, sessions, storage, assets, pods; a verdict.",
            toolset: Toolset::Services,
            hints: Hints::SERVICE,
        },
        status,
    )
}

async fn status(ctx: Arc<ToolContext>, a: Args, _call: Call) -> Result<MediaStatus, ToolError> {
    let stats = a.include_stats.0;
    let jellyfin = async {
        match &ctx.services.jellyfin {
            Some(j) => Some(read_jellyfin(j, stats).await),
            None => None,
        }
    };
    let immich = async {
        match &ctx.services.immich {
            Some(i) => Some(read_immich(i, stats).await),
            None => None,
        }
    };
    let workloads = read_workloads(&ctx);
    let (jellyfin, immich, workloads) = tokio::join!(jellyfin, immich, workloads);
    let (workloads, failed) = match workloads {
        Ok(w) => (w, Vec::new()),
        Err(f) => (Vec::new(), vec![f]),
    };
    Ok(assess(jellyfin, immich, workloads, failed))
}

async fn read_jellyfin(j: &MediaClient, stats: bool) -> JellyfinStatus {
    let mut out = JellyfinStatus {
        url: j.url().to_string(),
        ok: false,
        error: None,
        version: None,
        server_name: None,
        pending_restart: None,
        libraries: None,
        sessions: None,
        playing: Vec::new(),
    };
    let info: wire::SystemInfo = match j.get_typed("/System/Info", false).await {
        Ok(v) => v,
        Err(e) => {
            out.error = Some((&e).into());
            return out;
        }
    };
    out.version = Some(info.version);
    out.server_name = info.server_name;
    out.pending_restart = Some(info.has_pending_restart);
    if stats {
        let (counts, sessions) = tokio::join!(
            j.get_typed::<wire::ItemCounts>("/Items/Counts", false),
            j.get_typed::<Vec<wire::Session>>("/Sessions", false)
        );
        match counts {
            Ok(c) => {
                out.libraries = Some(Libraries {
                    movies: c.movie_count,
                    series: c.series_count,
                    episodes: c.episode_count,
                    songs: c.song_count,
                    albums: c.album_count,
                    books: c.book_count,
                    items: c.item_count,
                });
            }
            Err(e) => out.error = Some((&e).into()),
        }
        match sessions {
            Ok(list) => {
                out.sessions = Some(list.len() as u32);
                out.playing = list
                    .into_iter()
                    .filter_map(|s| {
                        let item = s.now_playing_item?;
                        let name = match item.series_name {
                            Some(series) => format!(
                                "{series} S{:02}E{:02} {}",
                                item.parent_index_number.unwrap_or(0),
                                item.index_number.unwrap_or(0),
                                item.name
                            ),
                            None => item.name,
                        };
                        let paused = s.play_state.is_some_and(|p| p.is_paused);
                        Some(format!(
                            "{}: {name}{}",
                            s.user_name.as_deref().unwrap_or("?"),
                            if paused { " (paused)" } else { "" }
                        ))
                    })
                    .collect();
            }
            Err(e) => {
                out.error.get_or_insert((&e).into());
            }
        }
    }
    out.ok = out.error.is_none();
    out
}

async fn read_immich(i: &MediaClient, stats: bool) -> ImmichStatus {
    let mut out = ImmichStatus {
        url: i.url().to_string(),
        ok: false,
        error: None,
        version: None,
        storage: None,
        assets: None,
        notes: Vec::new(),
    };
    // The version needs no key: a 401 below is then the key, not the URL.
    match i
        .get_typed::<wire::ImmichVersion>("/api/server/version", true)
        .await
    {
        Ok(v) => out.version = Some(format!("v{}.{}.{}", v.major, v.minor, v.patch)),
        Err(e) => {
            out.error = Some((&e).into());
            return out;
        }
    }
    match i
        .get_typed::<wire::ImmichStorage>("/api/server/storage", false)
        .await
    {
        Ok(s) => {
            out.storage = Some(Storage {
                size: s.disk_size,
                used: s.disk_use,
                available: s.disk_available,
                usage_percent: s.disk_usage_percentage,
            })
        }
        Err(e) => {
            out.error = Some((&e).into());
            return out;
        }
    }
    if stats {
        match i
            .get_typed::<wire::ImmichStatistics>("/api/server/statistics", false)
            .await
        {
            Ok(s) => {
                out.assets = Some(Assets {
                    photos: s.photos,
                    videos: s.videos,
                    usage_bytes: s.usage,
                })
            }
            // Statistics need an admin key; the rest still stands.
            Err(media::Error::Forbidden { .. }) => out
                .notes
                .push("asset counts need an admin API key (403 on /api/server/statistics)".into()),
            Err(e) => out.error = Some((&e).into()),
        }
    }
    out.ok = out.error.is_none();
    out
}

/// The Jellyfin and Immich answers read here, as their APIs document them:
/// a field that is gone or changed type fails the read with its name
/// ([`crate::services::http::decode`]); fields not read are ignored.
mod wire {
    use serde::Deserialize;

    /// Jellyfin `GET /System/Info`.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct SystemInfo {
        pub version: String,
        #[serde(default)]
        pub server_name: Option<String>,
        pub has_pending_restart: bool,
    }

    /// Jellyfin `GET /Items/Counts`.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct ItemCounts {
        pub movie_count: u64,
        pub series_count: u64,
        pub episode_count: u64,
        pub song_count: u64,
        pub album_count: u64,
        pub book_count: u64,
        pub item_count: u64,
    }

    /// One of Jellyfin's `GET /Sessions`.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct Session {
        #[serde(default)]
        pub user_name: Option<String>,
        #[serde(default)]
        pub now_playing_item: Option<NowPlaying>,
        #[serde(default)]
        pub play_state: Option<PlayState>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct NowPlaying {
        pub name: String,
        #[serde(default)]
        pub series_name: Option<String>,
        #[serde(default)]
        pub parent_index_number: Option<u64>,
        #[serde(default)]
        pub index_number: Option<u64>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct PlayState {
        #[serde(default)]
        pub is_paused: bool,
    }

    /// Jellyfin `GET /Items` (a search or ids).
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct Items {
        pub items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct Item {
        pub id: String,
        pub name: String,
        #[serde(rename = "Type")]
        pub kind: String,
        #[serde(default)]
        pub series_name: Option<String>,
        #[serde(default)]
        pub path: Option<String>,
    }

    /// Immich `GET /api/server/version`.
    #[derive(Debug, Deserialize)]
    pub struct ImmichVersion {
        pub major: u64,
        pub minor: u64,
        pub patch: u64,
    }

    /// Immich `GET /api/server/storage`.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ImmichStorage {
        pub disk_size: String,
        pub disk_use: String,
        pub disk_available: String,
        pub disk_usage_percentage: f64,
    }

    /// Immich `GET /api/server/statistics`.
    #[derive(Debug, Deserialize)]
    pub struct ImmichStatistics {
        pub photos: u64,
        pub videos: u64,
        pub usage: u64,
    }
}

fn restart_counts(p: &Pod, now_s: i64) -> (u32, u32) {
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

async fn namespace_exists(c: &Cluster, ns: &str) -> Result<bool, crate::cluster::Error> {
    let api: Api<Namespace> = Api::all(c.client.clone());
    match c
        .get_opt(&api, ns, Request::new("get", "namespaces", None))
        .await
    {
        Ok(found) => Ok(found.is_some()),
        // Without the right to read namespaces, assume it exists.
        Err(e) if e.is_forbidden() => Ok(true),
        Err(e) => Err(e),
    }
}

async fn read_workloads(ctx: &ToolContext) -> Result<Vec<MediaWorkload>, FailedPart> {
    let Some(c) = ctx.cluster.as_ref() else {
        return Err(FailedPart {
            part: "workloads".into(),
            code: super::ErrorCode::NotConfigured,
            message:
                "no Kubernetes API is configured: the Jellyfin and Immich pods were not checked"
                    .into(),
            hint: "start labscope with --kubeconfig (or in the cluster) to include them".into(),
        });
    };
    let now_s = now(ctx.settings.now);
    let mut out = Vec::new();
    let workloads = &ctx.config.workloads;
    for ns in workloads.media_namespaces() {
        let ours: Vec<_> = workloads
            .media
            .iter()
            .filter(|w| w.namespace == ns)
            .collect();
        let exists = namespace_exists(c, ns)
            .await
            .map_err(|e| FailedPart::new("namespaces", &e))?;
        if !exists {
            out.extend(ours.iter().map(|w| MediaWorkload {
                namespace: w.namespace.clone(),
                name: w.deployment.clone(),
                role: w.role.clone(),
                desired: 0,
                pods: 0,
                ready: 0,
                restarts: 0,
                recent_restarts: 0,
                status: "namespace missing".into(),
            }));
            continue;
        }
        let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), ns);
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), ns);
        let lp = ListParams::default();
        let (ds, ps) = tokio::join!(
            c.list(
                &deployments,
                &lp,
                Request::new("list", "deployments", Some(ns))
            ),
            c.list(&pods, &lp, Request::new("list", "pods", Some(ns))),
        );
        let ds = ds.map_err(|e| FailedPart::new("deployments", &e))?;
        let ps = ps.map_err(|e| FailedPart::new("pods", &e))?;
        for w in ours {
            let (ns, name, role) = (&w.namespace, &w.deployment, &w.role);
            let Some(d) = ds.iter().find(|d| d.metadata.name.as_deref() == Some(name)) else {
                out.push(MediaWorkload {
                    namespace: ns.clone(),
                    name: name.clone(),
                    role: role.clone(),
                    desired: 0,
                    pods: 0,
                    ready: 0,
                    restarts: 0,
                    recent_restarts: 0,
                    status: "missing".into(),
                });
                continue;
            };
            let dp = super::kube::deployment_pods(d, &ps);
            let (restarts, recent) = dp
                .pods
                .iter()
                .map(|p| restart_counts(p, now_s))
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            out.push(MediaWorkload {
                namespace: ns.clone(),
                name: name.clone(),
                role: role.clone(),
                desired: dp.desired,
                pods: dp.pods.len() as u32,
                ready: dp.ready,
                restarts,
                recent_restarts: recent,
                status: dp.status.into(),
            });
        }
    }
    Ok(out)
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
    let find = |name: &str| workloads.iter().find(|w| w.name == name);
    if let (Some(server), Some(db)) = (find("immich-server"), find("immich-postgresql"))
        && server.ready == 0
        && db.ready > 0
    {
        critical.push(format!(
            "the Immich server is down ({}) while its database is Ready: photos are not served",
            server.status
        ));
    }
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

/// A Jellyfin item id: 32 hex digits (a GUID with or without dashes,
/// normalised to the 32-digit form Jellyfin prints).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct ItemId(String);

impl<'de> Deserialize<'de> for ItemId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let s = String::deserialize(d)?;
        let hex: String = s.trim().chars().filter(|c| *c != '-').collect();
        if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(ItemId(hex.to_ascii_lowercase()))
        } else {
            Err(D::Error::custom(format!(
                "{s:?} is not a Jellyfin item id (32 hexadecimal digits); pass name to search by title"
            )))
        }
    }
}

impl JsonSchema for ItemId {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ItemId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string"})
    }
}

/// Arguments of `fix_jellyfin_metadata`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FixArgs {
    /// Title to search for (one of name, itemId).
    #[serde(default)]
    pub name: Option<super::args::Text>,
    /// The item's id (32 hex digits).
    #[serde(default, rename = "itemId")]
    pub item_id: Option<ItemId>,
    /// Replace all metadata and images instead of filling what is missing.
    #[serde(default, rename = "replaceAll")]
    pub replace_all: bool,
}

/// An item.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Item {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Movie, Series, Episode, MusicAlbum, …
    #[serde(rename = "type")]
    pub type_: String,
    /// Series, for an episode.
    #[serde(rename = "seriesName", skip_serializing_if = "Option::is_none")]
    pub series_name: Option<String>,
    /// Path on the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// What became of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FixState {
    /// The refresh was queued for the item.
    Refreshed,
    /// The name matches several items: nothing was refreshed; pick one
    /// and call again with its itemId.
    Ambiguous,
}

/// What `fix_jellyfin_metadata` did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FixReport {
    /// refreshed or ambiguous.
    pub state: FixState,
    /// The item refreshed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<Item>,
    /// The candidates, when ambiguous.
    pub candidates: Vec<Item>,
    /// Metadata and images replaced rather than filled in.
    #[serde(rename = "replaceAll")]
    pub replace_all: bool,
}

impl Render for FixReport {
    /// An ambiguous name refreshes nothing: the audit says no_change.
    fn changed_nothing(&self) -> bool {
        self.state == FixState::Ambiguous
    }

    fn text(&self) -> String {
        match (self.state, &self.item) {
            (FixState::Refreshed, Some(i)) => format!(
                "metadata refresh queued for {} {} ({}){}\n",
                i.type_,
                i.name,
                i.id,
                if self.replace_all {
                    ", replacing all metadata and images"
                } else {
                    ""
                }
            ),
            _ => {
                let mut t = if self.candidates.len() == 1 {
                    "no title matches exactly and replaceAll discards metadata; nothing refreshed — \
                     if this is the item, call again with its itemId:\n"
                        .to_string()
                } else {
                    format!(
                        "{} items match; nothing refreshed — call again with itemId:\n",
                        self.candidates.len()
                    )
                };
                for c in &self.candidates {
                    t.push_str(&format!(
                        "  {} {} {}{}\n",
                        c.id,
                        c.type_,
                        c.name,
                        c.series_name
                            .as_deref()
                            .map(|s| format!(" ({s})"))
                            .unwrap_or_default()
                    ));
                }
                t
            }
        }
    }
}

/// A Jellyfin id as compared: lower case, without dashes (the API prints
/// 32 hex digits; a GUID with dashes names the same item).
fn normal_id(id: &str) -> String {
    id.chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `fix_jellyfin_metadata` ✎.
pub fn fix_tool() -> ToolDef {
    ToolDef::mutating(
        Meta {
            name: "fix_jellyfin_metadata",
            title: "Refresh Jellyfin metadata",
            description: "Refresh a Jellyfin item's metadata by itemId or name (candidates when ambiguous).",
            toolset: Toolset::Services,
            hints: Hints::CHANGE.on_a_service(),
        },
        |p, _: &FixArgs| p.jellyfin_metadata(),
        fix,
    )
}

fn item_of(v: wire::Item) -> Item {
    Item {
        id: v.id,
        name: v.name,
        type_: v.kind,
        series_name: v.series_name,
        path: v.path,
    }
}

async fn fix(ctx: Arc<ToolContext>, a: FixArgs, _call: Call) -> Result<FixReport, ToolError> {
    let Some(j) = ctx.services.jellyfin.clone() else {
        return Err(ToolError::new(
            super::ErrorCode::NotConfigured,
            "no [jellyfin] in the config file",
            "add [jellyfin] with url and api_key_env or api_key_file (README, \"Configuration\")",
        ));
    };
    let media_err = |e: media::Error| {
        let code = match e {
            media::Error::Unauthorized { .. } => super::ErrorCode::Unauthenticated,
            media::Error::Forbidden { .. } => super::ErrorCode::PermissionDenied,
            media::Error::NotFound { .. } => super::ErrorCode::NotFound,
            media::Error::Unreachable { .. } => super::ErrorCode::ServiceUnreachable,
            _ => super::ErrorCode::ServiceError,
        };
        ToolError::new(code, e.to_string(), e.hint())
    };
    let item = match (&a.item_id, &a.name) {
        (Some(_), Some(_)) => {
            return Err(ToolError::invalid(
                "itemId",
                "give itemId or name, not both",
            ));
        }
        (None, None) => {
            return Err(ToolError::invalid(
                "name",
                "give name (a title to search) or itemId",
            ));
        }
        (Some(id), None) => {
            let v = j
                .get_typed::<wire::Items>(&format!("/Items?Ids={}&Recursive=true", id.0), false)
                .await
                .map_err(media_err)?;
            // Only the item asked for: a server that ignored the Ids filter
            // answers with other items, and those must not be refreshed.
            let wanted = normal_id(&id.0);
            let found = v
                .items
                .into_iter()
                .map(item_of)
                .find(|i| normal_id(&i.id) == wanted);
            found.ok_or_else(|| {
                ToolError::new(
                    super::ErrorCode::NotFound,
                    format!("Jellyfin has no item {}", id.0),
                    "search by name instead, or check the id in Jellyfin's web UI (the id is in the item's URL)",
                )
            })?
        }
        (None, Some(name)) => {
            if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
                return Err(ToolError::invalid("name", "a title of 1 to 200 characters"));
            }
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("searchTerm", name)
                .append_pair("Limit", "20")
                .append_pair("Recursive", "true")
                .append_pair(
                    "IncludeItemTypes",
                    "Movie,Series,Episode,MusicAlbum,MusicArtist",
                )
                .finish();
            let v = j
                .get_typed::<wire::Items>(&format!("/Items?{query}"), false)
                .await
                .map_err(media_err)?;
            let items: Vec<Item> = v.items.into_iter().map(item_of).collect();
            let exact: Vec<Item> = items
                .iter()
                .filter(|i| i.name.eq_ignore_ascii_case(name.as_str()))
                .cloned()
                .collect();
            let fuzzy = exact.is_empty();
            let pick = if fuzzy { items } else { exact };
            // replaceAll throws the item's metadata away: a title that only
            // resembles the name is confirmed by its itemId first.
            if fuzzy && pick.len() == 1 && a.replace_all {
                return Ok(FixReport {
                    state: FixState::Ambiguous,
                    item: None,
                    candidates: pick,
                    replace_all: a.replace_all,
                });
            }
            match pick.len() {
                0 => {
                    return Err(ToolError::new(
                        super::ErrorCode::NotFound,
                        format!("no Jellyfin item matches {:?}", name.as_str()),
                        "check the title's spelling, or pass itemId",
                    ));
                }
                1 => pick
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| unreachable!("one item")),
                _ => {
                    return Ok(FixReport {
                        state: FixState::Ambiguous,
                        item: None,
                        candidates: pick,
                        replace_all: a.replace_all,
                    });
                }
            }
        }
    };
    // The id goes into the path: only 32 hex digits may (Jellyfin's own ids
    // are; a search result is checked again).
    if !(item.id.len() == 32 && item.id.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(ToolError::new(
            super::ErrorCode::ServiceError,
            format!(
                "Jellyfin returned an item id that is not 32 hex digits: {:?}",
                item.id
            ),
            "this Jellyfin answers unlike 10.x; refresh the item from its web UI",
        ));
    }
    let replace = if a.replace_all { "true" } else { "false" };
    j.send(
        http::Method::POST,
        &format!(
            "/Items/{}/Refresh?MetadataRefreshMode=FullRefresh&ImageRefreshMode=FullRefresh&ReplaceAllMetadata={replace}&ReplaceAllImages={replace}",
            item.id
        ),
        false,
    )
    .await
    .map_err(media_err)?;
    Ok(FixReport {
        state: FixState::Refreshed,
        item: Some(item),
        candidates: Vec::new(),
        replace_all: a.replace_all,
    })
}
