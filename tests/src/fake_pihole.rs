//! A fake Pi-hole v6 API (HOMELAB.md §3.d): sessions with a validity that
//! every authenticated request extends, a login rate limiter that re-arms on
//! every attempt while tripped (optionally with `Retry-After`), a fixed
//! number of API seats, the wrong-password 401 without an `error` object,
//! `blocking` with its timer, list endpoints that can answer 500, and the
//! current and older shapes of `info/messages`. Counts the logins it sees.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct PiholeOptions {
    /// The password it accepts.
    pub password: String,
    /// Session validity in seconds.
    pub validity: u64,
    /// `Retry-After` sent with the rate-limiting 429 (default: none).
    pub retry_after: Option<u64>,
    /// How long a tripped limiter refuses (re-armed by every attempt).
    pub lockout: Duration,
    /// Start tripped.
    pub tripped: bool,
    /// API seats.
    pub seats: usize,
    /// `blocking` and its timer.
    pub blocking: (String, Option<f64>),
    /// `domains/allow` and `queries` answer 500.
    pub list_error: bool,
    /// `info/messages` in the older shape (`message`, `blob1`…).
    pub old_messages: bool,
    /// Messages to report (`type`, text).
    pub messages: Vec<(String, String)>,
    /// Pause between the lines of a gravity run.
    pub gravity_step: Duration,
    /// `gravity.last_update` (Unix seconds) by the Pi-hole's own clock.
    pub gravity_updated: i64,
    /// `stats/summary` as a future FTL might send it: `queries.total`
    /// renamed to `queries.count`.
    pub renamed_total: bool,
}

impl Default for PiholeOptions {
    fn default() -> Self {
        Self {
            password: "correct horse".into(),
            validity: 1800,
            retry_after: None,
            lockout: Duration::from_secs(5),
            tripped: false,
            seats: 16,
            blocking: ("enabled".into(), None),
            list_error: false,
            old_messages: false,
            messages: Vec::new(),
            gravity_step: Duration::from_millis(100),
            gravity_updated: 1786851660,
            renamed_total: false,
        }
    }
}

struct St {
    opts: PiholeOptions,
    /// Query strings `/api/queries` was asked with.
    query_args: Vec<String>,
    /// Gravity runs started.
    gravity_runs: u64,
    sessions: HashMap<String, Instant>,
    attempts: VecDeque<Instant>,
    tripped_until: Option<Instant>,
    serial: u64,
}

#[derive(Clone)]
struct App {
    st: Arc<Mutex<St>>,
    logins: Arc<AtomicU64>,
}

/// A running fake Pi-hole.
pub struct FakePihole {
    /// Base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    logins: Arc<AtomicU64>,
    st: Arc<Mutex<St>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl FakePihole {
    /// Serves on 127.0.0.1 (random port).
    pub async fn start(opts: PiholeOptions) -> anyhow::Result<Self> {
        let lockout = opts.lockout;
        let tripped = opts.tripped;
        let st = Arc::new(Mutex::new(St {
            opts,
            sessions: HashMap::new(),
            attempts: VecDeque::new(),
            tripped_until: tripped.then(|| Instant::now() + lockout),
            query_args: Vec::new(),
            gravity_runs: 0,
            serial: 0,
        }));
        let logins = Arc::new(AtomicU64::new(0));
        let app = App {
            st: st.clone(),
            logins: logins.clone(),
        };
        let router = Router::new()
            .route("/api/auth", post(login).delete(logout))
            .route("/api/dns/blocking", get(blocking))
            .route("/api/stats/summary", get(summary))
            .route("/api/info/messages", get(messages))
            .route("/api/domains/allow", get(allow))
            .route("/api/queries", get(queries))
            .route("/api/action/gravity", post(gravity))
            .route("/admin/", get(|| async { "<html>Pi-hole</html>" }))
            .with_state(app);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let tx = crate::servers::serve_until_dropped(listener, router);
        Ok(Self {
            url: format!("http://{addr}"),
            logins,
            st,
            _shutdown: tx,
        })
    }

    /// Login attempts seen (`POST /api/auth`).
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::SeqCst)
    }

    /// The query strings `/api/queries` was asked with.
    pub fn query_args(&self) -> Vec<String> {
        self.st
            .lock()
            .map(|s| s.query_args.clone())
            .unwrap_or_default()
    }

    /// Gravity runs started.
    pub fn gravity_runs(&self) -> u64 {
        self.st.lock().map(|s| s.gravity_runs).unwrap_or(0)
    }

    /// Live sessions.
    pub fn sessions(&self) -> usize {
        self.st.lock().map(|s| s.sessions.len()).unwrap_or(0)
    }
}

fn reply(code: u16, body: Value) -> Response {
    let mut body = body;
    body["took"] = json!(0.0003);
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn error(code: u16, key: &str, message: &str, hint: Option<&str>) -> Response {
    reply(
        code,
        json!({"error": {"key": key, "message": message, "hint": hint}}),
    )
}

async fn login(State(app): State<App>, body: axum::body::Bytes) -> Response {
    app.logins.fetch_add(1, Ordering::SeqCst);
    let Ok(mut st) = app.st.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let now = Instant::now();
    let limited = |st: &mut St| {
        // Every attempt while tripped re-arms the lockout.
        st.tripped_until = Some(now + st.opts.lockout);
        let mut r = error(429, "rate_limiting", "Rate-limiting login attempts", None);
        if let Some(s) = st.opts.retry_after
            && let Ok(v) = axum::http::HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert("retry-after", v);
        }
        r
    };
    if st.tripped_until.is_some_and(|t| t > now) {
        return limited(&mut st);
    }
    st.attempts.push_back(now);
    while st
        .attempts
        .front()
        .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
    {
        st.attempts.pop_front();
    }
    if st.attempts.len() > 2 {
        return limited(&mut st);
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(pw) = json.get("password") else {
        return error(
            400,
            "bad_request",
            "No password found in JSON payload",
            None,
        );
    };
    let Some(pw) = pw.as_str() else {
        return error(
            400,
            "bad_request",
            "Field password has to be of type 'string'",
            None,
        );
    };
    if pw != st.opts.password {
        return reply(
            401,
            json!({"session": {"valid": false, "totp": false, "sid": null, "validity": -1}}),
        );
    }
    st.sessions.retain(|_, exp| *exp > now);
    if st.sessions.len() >= st.opts.seats {
        return error(
            429,
            "api_seats_exceeded",
            "API seats exceeded",
            Some("increase webserver.api.max_sessions"),
        );
    }
    st.serial += 1;
    let sid = format!("{:0>24}", format!("sid{}", st.serial));
    let validity = st.opts.validity;
    st.sessions
        .insert(sid.clone(), now + Duration::from_secs(validity));
    reply(
        200,
        json!({"session": {"valid": true, "totp": false, "sid": sid, "csrf": "Cy3Ui5gIkP7SuR9r8l1a3w=", "validity": validity}}),
    )
}

/// The session's sid from the header `sid` or `X-FTL-SID`, if valid
/// (extending it).
fn session(st: &mut St, headers: &HeaderMap) -> Option<String> {
    let sid = headers
        .get("sid")
        .or_else(|| headers.get("x-ftl-sid"))
        .and_then(|v| v.to_str().ok())?
        .to_string();
    let now = Instant::now();
    let validity = Duration::from_secs(st.opts.validity);
    match st.sessions.get_mut(&sid) {
        Some(exp) if *exp > now => {
            *exp = now + validity;
            Some(sid)
        }
        _ => None,
    }
}

fn unauthorized() -> Response {
    error(401, "unauthorized", "Unauthorized", None)
}

macro_rules! authed {
    ($app:expr, $headers:expr) => {{
        let Ok(mut st) = $app.st.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        if session(&mut st, &$headers).is_none() {
            return unauthorized();
        }
        st
    }};
}

async fn logout(State(app): State<App>, headers: HeaderMap) -> Response {
    let Ok(mut st) = app.st.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match session(&mut st, &headers) {
        Some(sid) => {
            st.sessions.remove(&sid);
            StatusCode::NO_CONTENT.into_response()
        }
        None => unauthorized(),
    }
}

async fn blocking(State(app): State<App>, headers: HeaderMap) -> Response {
    let st = authed!(app, headers);
    let (b, timer) = st.opts.blocking.clone();
    reply(200, json!({"blocking": b, "timer": timer}))
}

async fn summary(State(app): State<App>, headers: HeaderMap) -> Response {
    let st = authed!(app, headers);
    let updated = st.opts.gravity_updated;
    let mut body = json!({
        "queries": {"total": 395581, "blocked": 69899, "percent_blocked": 17.67, "unique_domains": 18342,
            "forwarded": 201734, "cached": 123948, "frequency": 4.6,
            "types": {"A": 250000, "AAAA": 90000, "HTTPS": 40000, "OTHER": 15581},
            "status": {"GRAVITY": 60000, "FORWARDED": 201734, "CACHE": 123948, "REGEX": 9899},
            "replies": {"IP": 300000, "NXDOMAIN": 20000, "NODATA": 75581}},
        "clients": {"active": 23, "total": 41},
        "gravity": {"domains_being_blocked": 1184522, "last_update": updated}});
    if st.opts.renamed_total
        && let Some(q) = body["queries"].as_object_mut()
        && let Some(total) = q.remove("total")
    {
        q.insert("count".into(), total);
    }
    reply(200, body)
}

async fn messages(State(app): State<App>, headers: HeaderMap) -> Response {
    let st = authed!(app, headers);
    let list: Vec<Value> = st
        .opts
        .messages
        .iter()
        .enumerate()
        .map(|(i, (ty, text))| {
            if st.opts.old_messages {
                json!({"id": i + 1, "timestamp": 1786851660, "type": ty, "message": text, "blob1": null})
            } else {
                json!({"id": i + 1, "timestamp": 1786851660.5, "type": ty, "plain": text, "html": text})
            }
        })
        .collect();
    reply(200, json!({"messages": list}))
}

async fn allow(State(app): State<App>, headers: HeaderMap) -> Response {
    let st = authed!(app, headers);
    if st.opts.list_error {
        return error(
            500,
            "database_error",
            "Could not read domains from database table",
            None,
        );
    }
    let domains: Vec<Value> = ["login.live.com", "purchase.mp.microsoft.com", "buynow.production.store-web.dynamics.com"]
        .iter()
        .enumerate()
        .map(|(i, d)| json!({"domain": d, "unicode": d, "type": "allow", "kind": "exact", "comment": "GitOps managed whitelist",
            "groups": [0], "enabled": true, "id": i + 1, "date_added": 1780000000, "date_modified": 1780000000}))
        .collect();
    reply(200, json!({"domains": domains}))
}

async fn queries(State(app): State<App>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let mut st = authed!(app, headers);
    st.query_args
        .push(uri.query().unwrap_or_default().to_string());
    if st.opts.list_error {
        return error(
            500,
            "database_error",
            "Could not read queries from database",
            None,
        );
    }
    reply(
        200,
        json!({"queries": [
        {"id": 1, "time": 1787212020.5, "type": "A", "domain": "ads.example.com", "cname": null, "status": "GRAVITY",
         "client": {"ip": "192.168.1.112", "name": "laptop.lan"}, "dnssec": "INSECURE", "reply": {"type": "IP", "time": 0.2}, "list_id": 7, "upstream": null}],
        "cursor": 1, "recordsTotal": 1, "recordsFiltered": 1, "draw": 0}),
    )
}

/// `POST /api/action/gravity`: text/plain, streamed line by line (with the
/// colour codes and carriage-return redraws FTL's output has, and one list
/// that fails to download), ending with the line that says blocking is
/// enabled.
async fn gravity(State(app): State<App>, headers: HeaderMap) -> Response {
    let step = {
        let mut st = authed!(app, headers);
        st.gravity_runs += 1;
        st.opts.gravity_step
    };
    let lines: Vec<&'static str> = vec![
        "  [i] Neutrino emissions detected...\r\n",
        "\x1b[K  [\u{2713}] Pulling blocklist source list into range\n",
        "  [i] Preparing new gravity database...\r  [\u{2713}] Preparing new gravity database\n",
        "  [i] Target: https://raw.githubusercontent.com/StevenBlack/hosts/master/hosts\n",
        "  [\u{2713}] Status: Retrieval successful\n",
        "  [i] Target: https://lists.example.invalid/gone.txt\n",
        "  [\u{2717}] Status: Not found\n",
        "  [\u{2717}] List download failed: no cached list available\n",
        "  [i] Number of gravity domains: 1184522 (1184522 unique domains)\n",
        "  [\u{2713}] Cleaning up stray matter\n",
        "  [\u{2713}] Done.\n",
        "  [i] Pi-hole blocking is enabled\n",
    ];
    let stream = futures::stream::unfold(0usize, move |i| {
        let lines = lines.clone();
        async move {
            if i >= lines.len() {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(step).await;
            }
            Some((
                Ok::<_, std::io::Error>(axum::body::Bytes::from(lines[i])),
                i + 1,
            ))
        }
    });
    let mut r = axum::body::Body::from_stream(stream).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain"),
    );
    r
}
