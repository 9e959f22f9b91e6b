//! A small HTTP client for the services' JSON APIs (hyper, HTTP/1.1, TLS by
//! rustls with the system's roots), every request bounded by a timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Default timeout of one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest body read (services' JSON answers are small; a query log page of
/// 500 entries is ~150 KiB).
pub const MAX_BODY: usize = 4 << 20;

/// A failed exchange (no HTTP answer to judge).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting or sending failed.
    #[error("{0}")]
    Connect(String),
    /// The body was too large or broken.
    #[error("reading the answer: {0}")]
    Body(String),
    /// The request could not be built.
    #[error("bad request: {0}")]
    Request(String),
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// `Retry-After` in seconds, when given as seconds.
    pub fn retry_after(&self) -> Option<u64> {
        self.headers
            .get(http::header::RETRY_AFTER)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The client (cheap to share).
#[derive(Clone)]
pub struct Http {
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Http {
    /// A client whose requests time out after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let connector = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
            Ok(b) => b.https_or_http().enable_http1().wrap_connector(http),
            // No system roots (a distroless image): plain HTTP still works,
            // HTTPS fails with an error naming the missing roots.
            Err(_) => {
                let config = rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(config)
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http)
            }
        };
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// Sends one request and returns the answer's head with its body still
    /// streaming (the timeout covers the head only).
    pub async fn open(
        &self,
        method: http::Method,
        url: &url::Url,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<http::Response<hyper::body::Incoming>, Error> {
        let req = request(method, url, headers, body)?;
        tokio::time::timeout(self.timeout, self.client.request(req))
            .await
            .map_err(|_| Error::Timeout(self.timeout))?
            .map_err(|e| Error::Connect(error_chain(&e)))
    }

    /// Sends one request and reads the answer (at most [`MAX_BODY`]).
    pub async fn send(
        &self,
        method: http::Method,
        url: &url::Url,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Reply, Error> {
        let req = request(method, url, headers, body)?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| Error::Connect(error_chain(&e)))?;
            let (parts, body) = resp.into_parts();
            let limited = http_body_util::Limited::new(body, MAX_BODY);
            let body = limited
                .collect()
                .await
                .map_err(|e| Error::Body(e.to_string()))?
                .to_bytes();
            Ok(Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout(self.timeout))?
    }
}

/// A request with `headers`, and `body` sent as JSON when there is one.
fn request(
    method: http::Method,
    url: &url::Url,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<http::Request<Full<Bytes>>, Error> {
    let mut req = http::Request::builder().method(method).uri(url.as_str());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if body.is_some() {
        req = req.header(http::header::CONTENT_TYPE, "application/json");
    }
    req.body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| Error::Request(e.to_string()))
}

/// An error and its causes, "a: b: c".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Decodes a JSON body into `T`. The error text names the field that did
/// not fit (`queries.total` is missing, `Version`: invalid type …), so a
/// service whose API changed is an error saying where, never a zero.
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| explain(e.path().to_string(), e.inner()))
}

/// [`decode`] for an answer already read as JSON.
pub fn decode_value<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| explain(e.path().to_string(), e.inner()))
}

fn explain(at: String, inner: &serde_json::Error) -> String {
    let inner = inner.to_string();
    let missing = inner
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next());
    const CHANGED: &str = "(an API version labscope does not know?)";
    match (missing, at.as_str()) {
        (Some(name), ".") => format!("field `{name}` is missing {CHANGED}"),
        (Some(name), _) => format!("field `{at}.{name}` is missing {CHANGED}"),
        (None, ".") => format!("{inner} (not the documented JSON)"),
        (None, _) => format!("field `{at}`: {inner} {CHANGED}"),
    }
}
