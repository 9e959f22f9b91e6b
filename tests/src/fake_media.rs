//! Fake Jellyfin 10.11 and Immich v2.7 APIs (HOMELAB.md §4): Jellyfin takes
//! its key as `Authorization: MediaBrowser Token="…"` or (unless legacy auth
//! is off, as Jellyfin 12 defaults) `X-Emby-Token`; Immich as `x-api-key`,
//! with server statistics for admin keys only and the removed
//! `/api/server-info/*` paths answering 404.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

/// How the fakes behave.
#[derive(Debug, Clone)]
pub struct MediaOptions {
    /// Jellyfin's API key.
    pub jellyfin_key: String,
    /// Refuse `X-Emby-Token` (Jellyfin 12's default).
    pub legacy_auth_off: bool,
    /// Jellyfin reports a pending restart.
    pub pending_restart: bool,
    /// `/Items` ignores its `Ids` filter (answers every item), as a server
    /// or proxy that drops unknown query parameters would.
    pub ignores_ids: bool,
    /// Immich's API key.
    pub immich_key: String,
    /// The Immich key is an admin's.
    pub immich_admin: bool,
    /// Answers as a future version might: Jellyfin's `/Items/Counts` with
    /// `MovieCount` renamed `MoviesCount`, Immich's storage with
    /// `diskUsagePercentage` as a string.
    pub api_changed: bool,
}

impl Default for MediaOptions {
    fn default() -> Self {
        Self {
            jellyfin_key: "0123456789abcdef0123456789abcdef".into(),
            legacy_auth_off: false,
            pending_restart: false,
            ignores_ids: false,
            immich_key: "immich-key-6f0e".into(),
            immich_admin: true,
            api_changed: false,
        }
    }
}

/// A running fake Jellyfin or Immich.
pub struct FakeMedia {
    /// Base URL.
    pub url: String,
    /// Item ids Jellyfin was asked to refresh, with the query string.
    pub refreshed: Arc<std::sync::Mutex<Vec<String>>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn serve(
    router: Router,
    refreshed: Arc<std::sync::Mutex<Vec<String>>>,
) -> anyhow::Result<FakeMedia> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let tx = crate::servers::serve_until_dropped(listener, router);
    Ok(FakeMedia {
        url: format!("http://{addr}"),
        refreshed,
        _shutdown: tx,
    })
}

type Opts = Arc<MediaOptions>;

fn jellyfin_authed(o: &MediaOptions, h: &HeaderMap) -> bool {
    let modern = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Token=\"").nth(1))
        .and_then(|v| v.split('"').next())
        .is_some_and(|k| k == o.jellyfin_key);
    let legacy = !o.legacy_auth_off
        && h.get("x-emby-token").and_then(|v| v.to_str().ok()) == Some(o.jellyfin_key.as_str());
    modern || legacy
}

fn public_info() -> Value {
    json!({"LocalAddress": "http://10.42.0.31:8096", "ServerName": "jellyfin", "Version": "10.11.11",
        "ProductName": "Jellyfin Server", "Id": "4f1c2b0d9e8a7c6b5a4f3e2d1c0b9a8f", "StartupWizardCompleted": true})
}

/// The fixture's items: one unique title and one name shared by a movie
/// and a series (the ambiguity answer).
fn items() -> Vec<Value> {
    vec![
        json!({"Id": "9f8e7d6c5b4a39281706f5e4d3c2b1a0", "Name": "Arrival", "Type": "Movie", "Path": "/media/movies/Arrival (2016)/Arrival (2016).mkv"}),
        json!({"Id": "1a2b3c4d5e6f708192a3b4c5d6e7f801", "Name": "Dune", "Type": "Movie", "Path": "/media/movies/Dune (2021)/Dune (2021).mkv"}),
        json!({"Id": "2b3c4d5e6f708192a3b4c5d6e7f80112", "Name": "Dune", "Type": "Series", "Path": "/media/tv/Dune (2000)"}),
        json!({"Id": "3c4d5e6f708192a3b4c5d6e7f8011223", "Name": "Dune: Part Two", "Type": "Movie", "Path": "/media/movies/Dune Part Two (2024)/Dune Part Two (2024).mkv"}),
    ]
}

/// Starts a fake Jellyfin.
pub async fn jellyfin(opts: MediaOptions) -> anyhow::Result<FakeMedia> {
    let o: Opts = Arc::new(opts);
    let refreshed: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let log = refreshed.clone();
    let unauthorized = || (StatusCode::UNAUTHORIZED, "").into_response();
    let router = Router::new()
        .route("/health", get(|| async { "Healthy" }))
        .route("/System/Info/Public", get(|| async { axum::Json(public_info()) }))
        .route(
            "/System/Info",
            get(move |State(o): State<Opts>, h: HeaderMap| async move {
                if !jellyfin_authed(&o, &h) {
                    return unauthorized();
                }
                let mut v = public_info();
                v["HasPendingRestart"] = json!(o.pending_restart);
                v["HasUpdateAvailable"] = json!(false);
                v["OperatingSystem"] = json!("");
                v["WebSocketPortNumber"] = json!(8096);
                axum::Json(v).into_response()
            }),
        )
        .route(
            "/Items/Counts",
            get(move |State(o): State<Opts>, h: HeaderMap| async move {
                if !jellyfin_authed(&o, &h) {
                    return unauthorized();
                }
                let mut v = json!({"MovieCount": 612, "SeriesCount": 87, "EpisodeCount": 4213, "ArtistCount": 154,
                    "ProgramCount": 0, "TrailerCount": 0, "SongCount": 3890, "AlbumCount": 402, "MusicVideoCount": 0,
                    "BoxSetCount": 21, "BookCount": 0, "ItemCount": 9380});
                if o.api_changed && let Some(m) = v.as_object_mut() && let Some(n) = m.remove("MovieCount") {
                    m.insert("MoviesCount".into(), n);
                }
                axum::Json(v).into_response()
            }),
        )
        .route(
            "/Sessions",
            get(move |State(o): State<Opts>, h: HeaderMap| async move {
                if !jellyfin_authed(&o, &h) {
                    return unauthorized();
                }
                axum::Json(json!([
                    {"Id": "a1", "UserName": "matt", "Client": "Jellyfin Android TV", "DeviceName": "Shield",
                     "NowPlayingItem": {"Id": "9f8e7d6c5b4a39281706f5e4d3c2b1a0", "Name": "The Constant", "Type": "Episode",
                        "SeriesName": "Lost", "ParentIndexNumber": 4, "IndexNumber": 5},
                     "PlayState": {"IsPaused": false, "PositionTicks": 12_000_000_000u64}},
                    {"Id": "b2", "UserName": "kid", "Client": "Jellyfin Web", "DeviceName": "Firefox",
                     "PlayState": {"IsPaused": false, "PositionTicks": 0}}]))
                .into_response()
            }),
        )
        .route(
            "/Items",
            get(move |State(o): State<Opts>, h: HeaderMap, q: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
                if !jellyfin_authed(&o, &h) {
                    return unauthorized();
                }
                let term = q.get("searchTerm").map(|t| t.to_lowercase());
                let ids: Option<Vec<String>> = q.get("Ids").filter(|_| !o.ignores_ids).map(|i| i.split(',').map(str::to_lowercase).collect());
                let found: Vec<Value> = items()
                    .into_iter()
                    .filter(|i| term.as_ref().is_none_or(|t| i["Name"].as_str().unwrap_or("").to_lowercase().contains(t)))
                    .filter(|i| ids.as_ref().is_none_or(|ids| ids.iter().any(|x| i["Id"] == x.as_str())))
                    .collect();
                axum::Json(json!({"Items": found, "TotalRecordCount": found.len(), "StartIndex": 0})).into_response()
            }),
        )
        .route(
            "/Items/{id}/Refresh",
            axum::routing::post(move |State(o): State<Opts>, h: HeaderMap, axum::extract::Path(id): axum::extract::Path<String>, uri: axum::http::Uri| {
                let log = log.clone();
                async move {
                    if !jellyfin_authed(&o, &h) {
                        return unauthorized();
                    }
                    assert!(
                        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                        "an item id that is not 32 hex digits reached the fake: {id:?}"
                    );
                    if !items().iter().any(|i| i["Id"] == id.as_str()) {
                        return (StatusCode::NOT_FOUND, "").into_response();
                    }
                    if let Ok(mut l) = log.lock() {
                        l.push(format!("{id}?{}", uri.query().unwrap_or_default()));
                    }
                    StatusCode::NO_CONTENT.into_response()
                }
            }),
        )
        .with_state(o);
    serve(router, refreshed).await
}

/// Starts a fake Immich.
pub async fn immich(opts: MediaOptions) -> anyhow::Result<FakeMedia> {
    let o: Opts = Arc::new(opts);
    let keyed = |o: &MediaOptions, h: &HeaderMap| {
        h.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(o.immich_key.as_str())
    };
    let invalid = || {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "Invalid API key", "error": "Unauthorized", "statusCode": 401, "correlationId": "k2j3h4"})),
        )
            .into_response()
    };
    let router = Router::new()
        .route("/api/server/ping", get(|| async { axum::Json(json!({"res": "pong"})) }))
        .route("/api/server/version", get(|| async { axum::Json(json!({"major": 2, "minor": 7, "patch": 5})) }))
        .route(
            "/api/server/storage",
            get(move |State(o): State<Opts>, h: HeaderMap| async move {
                if !keyed(&o, &h) {
                    return invalid();
                }
                let percent = if o.api_changed { json!("28.45 %") } else { json!(28.45) };
                axum::Json(json!({"diskSize": "10.9 TiB", "diskUse": "3.1 TiB", "diskAvailable": "7.8 TiB",
                    "diskSizeRaw": 11_984_845_824_000u64, "diskUseRaw": 3_408_486_400_000u64,
                    "diskAvailableRaw": 8_576_359_424_000u64, "diskUsagePercentage": percent}))
                .into_response()
            }),
        )
        .route(
            "/api/server/statistics",
            get(move |State(o): State<Opts>, h: HeaderMap| async move {
                if !keyed(&o, &h) {
                    return invalid();
                }
                if !o.immich_admin {
                    return (StatusCode::FORBIDDEN, axum::Json(json!({"message": "Forbidden", "statusCode": 403}))).into_response();
                }
                axum::Json(json!({"photos": 48211, "videos": 2315, "usage": 3_301_234_567_890u64,
                    "usagePhotos": 2_101_234_567_890u64, "usageVideos": 1_200_000_000_000u64, "usageByUser": []}))
                .into_response()
            }),
        )
        .fallback(|uri: axum::http::Uri| async move {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"message": format!("Cannot GET {}", uri.path()), "error": "Not Found", "statusCode": 404})),
            )
        })
        .with_state(o);
    serve(router, Arc::default()).await
}
