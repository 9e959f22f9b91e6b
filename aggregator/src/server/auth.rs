//! HTTP authentication: one API key, accepted as `Authorization: Bearer …`
//! or as `X-API-Key` (drop-in for the predecessor's client configs),
//! compared in constant time.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Compares without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

/// The key a request presents, and the header it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// `Authorization: Bearer <key>`.
    Bearer(&'a str),
    /// `X-API-Key: <key>` (read only when no Bearer token is sent).
    XApiKey(&'a str),
    /// An `Authorization` header of another scheme (`Basic …`), no X-API-Key.
    OtherScheme,
    /// Neither header.
    Nothing,
}

impl Presented<'_> {
    /// The key, if one was presented.
    pub fn key(&self) -> Option<&str> {
        match self {
            Presented::Bearer(k) | Presented::XApiKey(k) => Some(k),
            _ => None,
        }
    }
}

/// The key presented by a request, and where.
pub fn presented_key(headers: &HeaderMap) -> Presented<'_> {
    let mut other_scheme = false;
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Presented::Bearer(v[7..].trim());
        }
        other_scheme = true;
    }
    match headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    {
        Some(k) => Presented::XApiKey(k),
        None if other_scheme => Presented::OtherScheme,
        None => Presented::Nothing,
    }
}

/// What a 401 says: which header was read and what to send instead. For a
/// wrong key the same sentence goes into `WWW-Authenticate`'s
/// `error_description`, for clients that show only the header.
pub fn refusal(presented: Presented<'_>) -> String {
    const SEND: &str = "send the key as `Authorization: Bearer <key>` or `X-API-Key: <key>`";
    match presented {
        Presented::Bearer(_) => format!(
            "wrong API key in Authorization: Bearer (X-API-Key is not read when a Bearer token is sent); {SEND}"
        ),
        Presented::XApiKey(_) => format!("wrong API key in X-API-Key; {SEND}"),
        Presented::OtherScheme => {
            format!("missing API key: the Authorization header is not `Bearer <key>`; {SEND}")
        }
        Presented::Nothing => format!("missing API key: {SEND}"),
    }
}

/// Middleware: 401 unless the request carries the key. The scheme is an API
/// key, not OAuth: the refusal names the headers, and no OAuth metadata is
/// served (`/.well-known/oauth-*` answer 404, so OAuth-aware clients stop
/// their discovery and show this message).
pub async fn require_key(
    State(key): State<std::sync::Arc<String>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = presented_key(request.headers());
    match presented.key() {
        Some(k) if constant_time_eq(k.as_bytes(), key.as_bytes()) => next.run(request).await,
        _ => {
            let why = refusal(presented);
            // RFC 6750 §3: no error code when no credentials were sent.
            let challenge = match presented.key() {
                Some(_) => format!(
                    "Bearer realm=\"labscope\", error=\"invalid_token\", error_description=\"{}\"",
                    why.replace(['"', '\\', '`'], "'")
                ),
                None => "Bearer realm=\"labscope\"".to_string(),
            };
            (
                StatusCode::UNAUTHORIZED,
                [
                    (header::WWW_AUTHENTICATE, challenge),
                    (
                        header::CONTENT_TYPE,
                        "text/plain; charset=utf-8".to_string(),
                    ),
                ],
                format!("{why}\n"),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn key_from_either_header_and_the_refusal_names_it() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        h.insert("x-api-key", "ignored".parse().unwrap());
        assert_eq!(presented_key(&h), Presented::Bearer("abc"));
        assert!(refusal(presented_key(&h)).starts_with("wrong API key in Authorization: Bearer"));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "xyz".parse().unwrap());
        assert_eq!(presented_key(&h), Presented::XApiKey("xyz"));
        assert!(refusal(presented_key(&h)).starts_with("wrong API key in X-API-Key"));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(presented_key(&h), Presented::OtherScheme);
        assert!(refusal(presented_key(&h)).contains("not `Bearer <key>`"));
        assert_eq!(presented_key(&HeaderMap::new()), Presented::Nothing);
        assert!(refusal(Presented::Nothing).contains("Authorization: Bearer <key>"));
    }
}
