//! Pi-hole v6 API client (FTL's `/api`), built on the predecessor's
//! outages:
//! - one shared session per instance, and exactly one login in flight:
//!   concurrent callers wait for it and reuse its session;
//! - a 429 is told apart by its `error.key` — `rate_limiting` (too many
//!   logins) or `api_seats_exceeded` (no free session) — and reported as
//!   such, never as a bad password; no login is sent again before the
//!   `Retry-After` (or, without one, [`COOL_DOWN`]) has passed, since every
//!   attempt during the lockout re-arms it;
//! - a rejected password (401 on `/api/auth`) is an error that reaches the
//!   caller, and is not retried for [`COOL_DOWN`] either;
//! - a session that expired (401 `unauthorized`) is replaced once;
//! - the session is logged out on shutdown (sessions hold API seats).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::http::{self, Http};
use crate::config::file::Secret;

/// How long labscope stays away after a 429 without `Retry-After`, a
/// seats-exceeded answer or a rejected password.
pub const COOL_DOWN: Duration = Duration::from_secs(30);

/// Why a Pi-hole request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// 401 on `/api/auth`: the configured password is wrong.
    #[error("Pi-hole rejected the password (401 on /api/auth)")]
    WrongPassword,
    /// 429 `rate_limiting`: too many login attempts.
    #[error("rate limited by Pi-hole (429 rate_limiting on /api/auth): {}", wait_text(*.retry_after, *.wait_s))]
    RateLimited {
        /// The `Retry-After` it sent, if any.
        retry_after: Option<u64>,
        /// Seconds labscope waits before logging in again.
        wait_s: u64,
    },
    /// 429 `api_seats_exceeded`: every API session slot is taken.
    #[error(
        "Pi-hole has no free API session (429 api_seats_exceeded): {hint}; labscope logs in again after {wait_s} s"
    )]
    SeatsExceeded {
        /// Pi-hole's hint.
        hint: String,
        /// Seconds labscope waits.
        wait_s: u64,
    },
    /// Another HTTP error answer.
    #[error("Pi-hole answered {status} on {path}{}", key_text(key, message))]
    Http {
        /// Path.
        path: String,
        /// Status.
        status: u16,
        /// `error.key`.
        key: String,
        /// `error.message`.
        message: String,
    },
    /// No answer (connection refused, timeout, …).
    #[error("Pi-hole at {url} did not answer {path}: {message}")]
    Unreachable {
        /// Base URL.
        url: String,
        /// Path.
        path: String,
        /// Why.
        message: String,
    },
    /// An answer that is not the documented JSON.
    #[error("Pi-hole's answer to {path} could not be read: {message}")]
    BadResponse {
        /// Path.
        path: String,
        /// What was wrong.
        message: String,
    },
}

fn wait_text(retry_after: Option<u64>, wait_s: u64) -> String {
    match retry_after {
        Some(s) => format!("retrying after {s} s (Retry-After)"),
        None => format!("no Retry-After sent; retrying after {wait_s} s"),
    }
}

fn key_text(key: &str, message: &str) -> String {
    match (key.is_empty(), message.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(" ({key})"),
        (true, false) => format!(": {message}"),
        (false, false) => format!(" ({key}): {message}"),
    }
}

impl Error {
    /// A short machine code: wrong_password, rate_limited, seats_exceeded,
    /// http_error, unreachable, bad_response.
    pub fn code(&self) -> &'static str {
        match self {
            Error::WrongPassword => "wrong_password",
            Error::RateLimited { .. } => "rate_limited",
            Error::SeatsExceeded { .. } => "seats_exceeded",
            Error::Http { .. } => "http_error",
            Error::Unreachable { .. } => "unreachable",
            Error::BadResponse { .. } => "bad_response",
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            Error::WrongPassword => "set the Pi-hole's web/API password in the variable or file the config names (pihole.*.password_env / password_file); \
                 `pihole setpassword` on the Pi-hole changes it"
                .into(),
            Error::RateLimited { .. } => "wait; this is not a password problem. Pi-hole counts every login attempt, so clients that log in per request trip it".into(),
            Error::SeatsExceeded { .. } => "raise webserver.api.max_sessions on the Pi-hole, or end other clients' sessions".into(),
            Error::Http { .. } => "check the Pi-hole's FTL log (pihole -t, /var/log/pihole/FTL.log)".into(),
            Error::BadResponse { .. } => "labscope reads the Pi-hole v6 API as documented: if FTL was upgraded, compare the answer with \
                 the API docs the Pi-hole serves at /api/docs; otherwise check FTL's log (pihole -t)"
                .into(),
            Error::Unreachable { .. } => "check that the Pi-hole pod is running and the URL in the config file is right".into(),
        }
    }
}

/// Decodes an answer into `T`, naming the field that did not fit.
pub fn decode<T: serde::de::DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, Error> {
    super::http::decode(body).map_err(|message| Error::BadResponse {
        path: path.split('?').next().unwrap_or(path).into(),
        message,
    })
}

struct Session {
    sid: String,
    expires: Instant,
    /// Seconds FTL keeps an idle session.
    validity: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sid", &"<redacted>")
            .field("expires", &self.expires)
            .finish()
    }
}

/// How long labscope waits before logging in again after a login that got
/// no usable answer (unreachable, 5xx): callers queued behind it get its
/// failure instead of sending logins one after another.
pub const LOGIN_RETRY: Duration = Duration::from_secs(5);

/// Longest `Retry-After` honoured (a larger one would lock the instance out
/// until restart).
pub const MAX_RETRY_AFTER: u64 = 3600;

#[derive(Debug, Default)]
struct State {
    session: Option<Session>,
    /// No login before this instant, and the error that said so.
    away_until: Option<(Instant, Error)>,
}

/// One Pi-hole instance.
#[derive(Debug)]
pub struct Pihole {
    /// "primary" or "secondary".
    pub name: &'static str,
    base: url::Url,
    password: Secret,
    http: Arc<Http>,
    state: Arc<tokio::sync::Mutex<State>>,
    logins: Arc<AtomicU64>,
}

impl Pihole {
    /// A client of the Pi-hole at `base` (its API is under `/api`).
    pub fn new(name: &'static str, base: url::Url, password: Secret, http: Arc<Http>) -> Self {
        Self {
            name,
            base,
            password,
            http,
            state: Arc::new(tokio::sync::Mutex::new(State::default())),
            logins: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The base URL.
    pub fn url(&self) -> &url::Url {
        &self.base
    }

    /// Logins sent so far (for tests and benchmarks).
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    fn endpoint(&self, path: &str) -> url::Url {
        endpoint(&self.base, path)
    }

    async fn send(
        &self,
        method: ::http::Method,
        path: &str,
        sid: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<http::Reply, Error> {
        send(&self.http, &self.base, method, path, sid, body).await
    }

    /// The current session's id, logging in when there is none. The state
    /// lock is held across the login: concurrent callers wait for the one
    /// login and then reuse its session (or get its failure).
    async fn sid(&self) -> Result<String, Error> {
        let mut st = self.state.clone().lock_owned().await;
        let now = Instant::now();
        if let Some(s) = &st.session
            && s.expires > now
        {
            return Ok(s.sid.clone());
        }
        if let Some((until, e)) = &st.away_until {
            if *until > now {
                return Err(remaining(e, *until - now));
            }
            st.away_until = None;
        }
        // The login runs in a task of its own that holds the lock: when this
        // caller is cancelled (a deadline) the login still completes and its
        // session (or failure) is kept, so the next caller sends no second
        // login while the first may still be on the wire.
        let (http, base, password) = (self.http.clone(), self.base.clone(), self.password.clone());
        self.logins.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let result = login(&http, &base, &password).await;
            let now = Instant::now();
            match &result {
                Ok(session) => {
                    st.session = Some(Session {
                        sid: session.sid.clone(),
                        expires: session.expires,
                        validity: session.validity,
                    })
                }
                Err(e) => {
                    let wait = match e {
                        Error::RateLimited { wait_s, .. } | Error::SeatsExceeded { wait_s, .. } => {
                            Duration::from_secs(*wait_s)
                        }
                        Error::WrongPassword => COOL_DOWN,
                        _ => LOGIN_RETRY,
                    };
                    st.away_until = Some((now + wait, e.clone()));
                }
            }
            result.map(|s| s.sid)
        })
        .await
        .map_err(|e| Error::BadResponse {
            path: "/api/auth".into(),
            message: format!("the login task failed: {e}"),
        })?
    }

    /// Forgets `sid` if it is still the session (after a 401 on it).
    async fn drop_session(&self, sid: &str) {
        let mut st = self.state.lock().await;
        if st.session.as_ref().is_some_and(|s| s.sid == sid) {
            st.session = None;
        }
    }

    /// Extends the session after a request that used it (FTL extends it on
    /// every authenticated request).
    async fn touch(&self, sid: &str) {
        let mut st = self.state.lock().await;
        if let Some(s) = st.session.as_mut()
            && s.sid == sid
        {
            s.expires = Instant::now() + s.validity - Duration::from_secs(5).min(s.validity / 2);
        }
    }

    /// An authenticated request; a 401 on an expired session gets one new
    /// login and one retry.
    pub async fn request(
        &self,
        method: ::http::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<http::Reply, Error> {
        for attempt in 0..2 {
            let sid = self.sid().await?;
            let reply = self
                .send(method.clone(), path, Some(&sid), body.clone())
                .await?;
            if reply.status == 401 && attempt == 0 {
                self.drop_session(&sid).await;
                continue;
            }
            if (200..300).contains(&reply.status) {
                self.touch(&sid).await;
                return Ok(reply);
            }
            return Err(http_error(
                path.split('?').next().unwrap_or(path),
                reply.status,
                &reply.body,
            ));
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// GET `path`, answered with JSON.
    pub async fn get(&self, path: &str) -> Result<Value, Error> {
        let reply = self.request(::http::Method::GET, path, None).await?;
        let v = reply.json();
        if v.is_object() {
            Ok(v)
        } else {
            Err(Error::BadResponse {
                path: path.split('?').next().unwrap_or(path).into(),
                message: "not a JSON object".into(),
            })
        }
    }

    /// GET `path`, decoded into `T`: an answer whose shape changed (a field
    /// renamed or of another type in a newer FTL) is an error naming the
    /// field, never a zero.
    pub async fn get_typed<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let reply = self.request(::http::Method::GET, path, None).await?;
        decode(path, &reply.body)
    }

    /// POSTs `path` and reads its plain-text answer line by line as it
    /// streams (FTL's gravity run), calling `on_line(n, line)` for each;
    /// returns the lines and whether the stream ended within `budget`. When
    /// it did not, the rest is drained in the background (the run goes on).
    pub async fn stream_lines(
        &self,
        path: &str,
        budget: Duration,
        mut on_line: impl FnMut(usize, &str),
    ) -> Result<(Vec<String>, bool), Error> {
        use http_body_util::BodyExt;
        let started = Instant::now();
        let mut opened = None;
        for attempt in 0..2 {
            let sid = self.sid().await?;
            let resp = self
                .http
                .open(
                    ::http::Method::POST,
                    &self.endpoint(path),
                    &[("sid", &sid)],
                    None,
                )
                .await
                .map_err(|e| Error::Unreachable {
                    url: self.base.to_string(),
                    path: path.into(),
                    message: e.to_string(),
                })?;
            let status = resp.status().as_u16();
            if status == 401 && attempt == 0 {
                self.drop_session(&sid).await;
                continue;
            }
            if !(200..300).contains(&status) {
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                return Err(http_error(path, status, &body));
            }
            self.touch(&sid).await;
            opened = Some(resp);
            break;
        }
        let Some(resp) = opened else {
            unreachable!("the loop opens the stream or returns")
        };
        let mut body = resp.into_body();
        let mut lines = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut finished = false;
        loop {
            let left = budget.saturating_sub(started.elapsed());
            let frame = match tokio::time::timeout(left, body.frame()).await {
                Err(_) => break,
                Ok(None) => {
                    finished = true;
                    break;
                }
                Ok(Some(Err(e))) => {
                    return Err(Error::Unreachable {
                        url: self.base.to_string(),
                        path: path.into(),
                        message: format!("the stream broke: {e}"),
                    });
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(at) = pending.iter().position(|b| *b == b'\n') {
                let raw: Vec<u8> = pending.drain(..=at).collect();
                if let Some(line) = clean_line(&raw) {
                    lines.push(line);
                    on_line(
                        lines.len(),
                        lines.last().map(String::as_str).unwrap_or_default(),
                    );
                }
            }
        }
        if finished {
            if let Some(line) = clean_line(&pending) {
                lines.push(line);
            }
        } else {
            // Keep reading so the run is not cut off by a closed connection.
            tokio::spawn(async move { while let Some(Ok(_)) = body.frame().await {} });
        }
        Ok((lines, finished))
    }

    /// Ends the session, if any (`DELETE /api/auth`).
    pub async fn logout(&self) {
        let sid = self.state.lock().await.session.take().map(|s| s.sid);
        if let Some(sid) = sid
            && let Err(e) = self
                .send(::http::Method::DELETE, "/api/auth", Some(&sid), None)
                .await
        {
            tracing::debug!(pihole = self.name, error = %e, "logout failed");
        }
    }
}

/// A line of FTL's streamed output without colour codes, carriage-return
/// redraws and surrounding blanks; `None` when nothing is left.
fn clean_line(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    // The last redraw of a line wins.
    let text = text.trim_end_matches(['\n', '\r']);
    let text = text.rsplit('\r').next().unwrap_or(text);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ … final byte (a letter).
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        if !c.is_control() {
            out.push(c);
        }
    }
    let out = out.trim().to_string();
    (!out.is_empty()).then_some(out)
}

fn endpoint(base: &url::Url, path: &str) -> url::Url {
    let mut u = base.clone();
    let base_path = u.path().trim_end_matches('/').to_string();
    let (p, q) = path.split_once('?').unwrap_or((path, ""));
    u.set_path(&format!("{base_path}{p}"));
    u.set_query((!q.is_empty()).then_some(q));
    u
}

async fn send(
    http: &Http,
    base: &url::Url,
    method: ::http::Method,
    path: &str,
    sid: Option<&str>,
    body: Option<Vec<u8>>,
) -> Result<http::Reply, Error> {
    let mut headers = vec![("accept", "application/json")];
    if let Some(s) = sid {
        headers.push(("sid", s));
    }
    http.send(method, &endpoint(base, path), &headers, body)
        .await
        .map_err(|e| Error::Unreachable {
            url: base.to_string(),
            path: path.split('?').next().unwrap_or(path).into(),
            message: e.to_string(),
        })
}

/// `POST /api/auth`: a session, or why not.
async fn login(http: &Http, base: &url::Url, password: &Secret) -> Result<Session, Error> {
    let body =
        serde_json::to_vec(&serde_json::json!({"password": password.expose()})).unwrap_or_default();
    let reply = send(
        http,
        base,
        ::http::Method::POST,
        "/api/auth",
        None,
        Some(body),
    )
    .await?;
    let now = Instant::now();
    match reply.status {
        200 => {
            let auth: wire::Auth = decode("/api/auth", &reply.body)?;
            let sid =
                auth.session
                    .sid
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| Error::BadResponse {
                        path: "/api/auth".into(),
                        message: "200 without session.sid".into(),
                    })?;
            let validity =
                Duration::from_secs(auth.session.validity.unwrap_or(300).clamp(10, 86_400));
            Ok(Session {
                sid,
                expires: now + validity - Duration::from_secs(5).min(validity / 2),
                validity,
            })
        }
        401 => Err(Error::WrongPassword),
        429 => {
            let error = wire::ErrorBody::of(&reply.body).error;
            let retry_after = reply.retry_after().map(|s| s.clamp(1, MAX_RETRY_AFTER));
            let wait = retry_after.map(Duration::from_secs).unwrap_or(COOL_DOWN);
            Err(if error.key == "api_seats_exceeded" {
                Error::SeatsExceeded {
                    hint: error.hint.unwrap_or_else(|| "no free API session".into()),
                    wait_s: wait.as_secs(),
                }
            } else {
                Error::RateLimited {
                    retry_after,
                    wait_s: wait.as_secs(),
                }
            })
        }
        status => Err(http_error("/api/auth", status, &reply.body)),
    }
}

/// FTL's answers this client reads itself.
mod wire {
    use serde::Deserialize;

    /// `POST /api/auth`.
    #[derive(Debug, Deserialize)]
    pub struct Auth {
        pub session: Session,
    }

    #[derive(Debug, Deserialize)]
    pub struct Session {
        /// Absent or null when the password was wrong (FTL answers 401 then).
        #[serde(default)]
        pub sid: Option<String>,
        /// Seconds an idle session stays valid.
        #[serde(default)]
        pub validity: Option<u64>,
    }

    /// An error answer: `{"error": {"key", "message", "hint"}}`. Read
    /// leniently: an error answer that is not FTL's (a proxy's HTML page)
    /// still reports its status.
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct ErrorBody {
        pub error: ErrorFields,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub struct ErrorFields {
        pub key: String,
        pub message: String,
        pub hint: Option<String>,
    }

    impl ErrorBody {
        pub fn of(body: &[u8]) -> ErrorBody {
            serde_json::from_slice(body).unwrap_or_default()
        }
    }
}

/// `e` with the seconds left of its cool-down.
fn remaining(e: &Error, left: Duration) -> Error {
    let s = left.as_secs().max(1);
    match e {
        Error::RateLimited { retry_after, .. } => Error::RateLimited {
            retry_after: retry_after.map(|_| s),
            wait_s: s,
        },
        Error::SeatsExceeded { hint, .. } => Error::SeatsExceeded {
            hint: hint.clone(),
            wait_s: s,
        },
        other => other.clone(),
    }
}

fn http_error(path: &str, status: u16, body: &[u8]) -> Error {
    let error = wire::ErrorBody::of(body).error;
    Error::Http {
        path: path.into(),
        status,
        key: error.key,
        message: error.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_lines_are_cleaned() {
        assert_eq!(
            clean_line(b"  [i] Neutrino emissions detected...\r\n").as_deref(),
            Some("[i] Neutrino emissions detected...")
        );
        assert_eq!(
            clean_line(b"\x1b[K  [\xe2\x9c\x93] Pulling blocklist source list\n").as_deref(),
            Some("[\u{2713}] Pulling blocklist source list")
        );
        assert_eq!(
            clean_line(b"  [i] 10%\r  [i] 50%\r  [i] done\n").as_deref(),
            Some("[i] done")
        );
        assert_eq!(clean_line(b"\r\n"), None);
    }

    #[derive(Debug, serde::Deserialize)]
    struct Summary {
        #[allow(dead_code)]
        queries: Queries,
    }
    #[derive(Debug, serde::Deserialize)]
    struct Queries {
        #[allow(dead_code)]
        total: u64,
    }

    #[test]
    fn a_changed_answer_names_its_field() {
        let ok: Result<Summary, _> = decode("/api/stats/summary", br#"{"queries": {"total": 3}}"#);
        assert!(ok.is_ok());
        for (body, want) in [
            (
                &br#"{"queries": {"count": 3}}"#[..],
                "field `queries.total` is missing",
            ),
            (
                &br#"{"queries": {"total": "3"}}"#[..],
                "field `queries.total`: invalid type",
            ),
            (&b"<html>"[..], "not the documented JSON"),
        ] {
            let e = decode::<Summary>("/api/stats/summary?x=1", body).unwrap_err();
            assert_eq!(e.code(), "bad_response");
            let text = e.to_string();
            assert!(
                text.contains("/api/stats/summary could not") && text.contains(want),
                "{text}"
            );
        }
    }
}
