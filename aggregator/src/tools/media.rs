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
use serde::Deserialize;

use super::args::DefaultTrue;
use super::dns::ServiceError;
use super::kube::{FailedPart, failed_text};
use super::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset, label};
pub use crate::assess::media::*;
use crate::cluster::time::now;
use crate::cluster::{Cluster, Request};
use crate::services::media::{self, MediaClient};

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
pub(super) mod wire {
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
                app: w.app.clone(),
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
                    app: w.app.clone(),
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
                app: w.app.clone(),
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
