//! Kubernetes failures, classified by HTTP status and cause so that each one
//! reaches the caller with the right explanation: 401 is about credentials,
//! 403 about RBAC (verb and resource named), 404 about a version or object
//! the server does not have, 429/5xx and timeouts about the API server itself.
//! The kube-rs error is kept as the source (shared, so results can be cloned
//! to every caller waiting on one discovery request).

use std::sync::Arc;
use std::time::Duration;

/// One Kubernetes request, as messages name it: "list pods in namespace jellyfin".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// get, list, watch, discover.
    pub verb: &'static str,
    /// Plural resource (or what was discovered, e.g. "API groups (/apis)").
    pub resource: String,
    /// Namespace, for namespaced requests.
    pub namespace: Option<String>,
}

impl Request {
    /// A request for `resource` in `namespace` (all namespaces when `None`).
    pub fn new(verb: &'static str, resource: impl Into<String>, namespace: Option<&str>) -> Self {
        Self {
            verb,
            resource: resource.into(),
            namespace: namespace.map(str::to_string),
        }
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if let Some(ns) = &self.namespace {
            write!(f, " in namespace {ns}")?;
        }
        Ok(())
    }
}

/// Errors of Kubernetes access.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// File (or "KUBECONFIG").
        path: String,
        /// Why.
        #[source]
        source: Arc<kube::config::KubeconfigError>,
    },
    /// In-cluster configuration failed.
    #[error("in-cluster configuration: {0}")]
    InCluster(#[source] Arc<kube::config::InClusterError>),
    /// The client could not be built.
    #[error("Kubernetes client: {0}")]
    Client(#[source] Arc<kube::Error>),
    /// HTTP 401: the credentials were rejected (expired token or certificate).
    #[error(
        "the Kubernetes API rejected labscope's credentials (HTTP 401) to {request}: {message}"
    )]
    Unauthorized {
        /// What was asked.
        request: Request,
        /// API message.
        message: String,
        /// The kube-rs error.
        #[source]
        source: Arc<kube::Error>,
    },
    /// HTTP 403: RBAC refused.
    #[error("the Kubernetes API refused to {request} (HTTP 403): {message}")]
    Forbidden {
        /// What was asked.
        request: Request,
        /// API message.
        message: String,
        /// The kube-rs error.
        #[source]
        source: Arc<kube::Error>,
    },
    /// HTTP 404: the resource is not served at that version, or the object is gone.
    #[error("the Kubernetes API has no {resource} to {verb} (HTTP 404): {message}", resource = request.resource, verb = request.verb)]
    NotFound {
        /// What was asked.
        request: Request,
        /// API message.
        message: String,
        /// The kube-rs error.
        #[source]
        source: Arc<kube::Error>,
    },
    /// HTTP 429: API Priority and Fairness is shedding load.
    #[error("the Kubernetes API is rate limiting (HTTP 429) {request}: {message}")]
    Throttled {
        /// What was asked.
        request: Request,
        /// API message.
        message: String,
        /// The kube-rs error.
        #[source]
        source: Arc<kube::Error>,
    },
    /// HTTP 5xx: the API server (or an aggregated API behind it) failed.
    #[error("the Kubernetes API failed to {request} (HTTP {code}): {message}")]
    ServerError {
        /// What was asked.
        request: Request,
        /// Status code.
        code: u16,
        /// API message.
        message: String,
        /// The kube-rs error.
        #[source]
        source: Arc<kube::Error>,
    },
    /// Another 4xx: the API server rejected the request itself.
    #[error("the Kubernetes API rejected {request} (HTTP {code}): {message}")]
    Rejected {
        /// What was asked.
        request: Request,
        /// Status code.
        code: u16,
        /// API message.
        message: String,
        /// The kube-rs error.
        #[source]
        source: Arc<kube::Error>,
    },
    /// No answer within the per-request deadline.
    #[error("the Kubernetes API did not answer {request} within {}", human_duration(*after))]
    Timeout {
        /// What was asked.
        request: Request,
        /// The deadline that passed.
        after: Duration,
    },
    /// The API server could not be reached (connection, DNS, TLS).
    #[error("could not reach the Kubernetes API to {request}: {source}")]
    Unreachable {
        /// What was asked.
        request: Request,
        /// The kube-rs error.
        #[source]
        source: Arc<kube::Error>,
    },
    /// The answer could not be used (malformed body, unexpected shape).
    #[error("the Kubernetes API's answer to {request} could not be read: {source}")]
    BadResponse {
        /// What was asked.
        request: Request,
        /// The kube-rs error.
        #[source]
        source: Arc<kube::Error>,
    },
}

/// "8 s", "1.5 s", "250 ms".
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// True when an I/O timeout is somewhere in `e`'s source chain.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        if err.to_string().to_ascii_lowercase().contains("timed out") {
            return true;
        }
        cur = err.source();
    }
    false
}

impl Error {
    /// Classifies a kube-rs error for `request` by status and cause.
    pub fn from_kube(e: kube::Error, request: Request) -> Self {
        match &e {
            kube::Error::Api(status) => {
                let message = if status.message.is_empty() {
                    status.reason.clone()
                } else {
                    status.message.clone()
                };
                let code = status.code;
                let source = Arc::new(e);
                match code {
                    401 => Error::Unauthorized {
                        request,
                        message,
                        source,
                    },
                    403 => Error::Forbidden {
                        request,
                        message,
                        source,
                    },
                    404 => Error::NotFound {
                        request,
                        message,
                        source,
                    },
                    429 => Error::Throttled {
                        request,
                        message,
                        source,
                    },
                    500..=599 => Error::ServerError {
                        request,
                        code,
                        message,
                        source,
                    },
                    _ => Error::Rejected {
                        request,
                        code,
                        message,
                        source,
                    },
                }
            }
            kube::Error::SerdeError(_)
            | kube::Error::FromUtf8(_)
            | kube::Error::LinesCodecMaxLineLengthExceeded
            | kube::Error::Discovery(_) => Error::BadResponse {
                request,
                source: Arc::new(e),
            },
            other if timed_out(other) => Error::Timeout {
                request,
                after: Duration::ZERO,
            },
            _ => Error::Unreachable {
                request,
                source: Arc::new(e),
            },
        }
    }

    /// The request that failed, when there was one.
    pub fn request(&self) -> Option<&Request> {
        match self {
            Error::Kubeconfig { .. } | Error::InCluster(_) | Error::Client(_) => None,
            Error::Unauthorized { request, .. }
            | Error::Forbidden { request, .. }
            | Error::NotFound { request, .. }
            | Error::Throttled { request, .. }
            | Error::ServerError { request, .. }
            | Error::Rejected { request, .. }
            | Error::Timeout { request, .. }
            | Error::Unreachable { request, .. }
            | Error::BadResponse { request, .. } => Some(request),
        }
    }

    /// True for a refusal by RBAC.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Error::Forbidden { .. })
    }

    /// True for a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            Error::Kubeconfig { .. } => "check --kubeconfig / KUBECONFIG".into(),
            Error::InCluster(_) => {
                "labscope looked like it runs in a pod (KUBERNETES_SERVICE_HOST is set) but could not use the \
                 ServiceAccount: check that its token is mounted, or pass --kubeconfig"
                    .into()
            }
            Error::Client(_) => "check the kubeconfig's server URL and TLS settings".into(),
            Error::Unauthorized { .. } => {
                "the token or client certificate labscope uses has expired or been revoked: refresh the kubeconfig \
                 (k3s writes /etc/rancher/k3s/k3s.yaml), or in the cluster check that the ServiceAccount token is \
                 mounted and current"
                    .into()
            }
            Error::Forbidden { request, .. } => format!(
                "grant labscope's ServiceAccount `{}` on `{}` (ClusterRole in deploy/); labscope's read tools need \
                 get and list",
                request.verb, request.resource
            ),
            Error::NotFound { request, .. } => format!(
                "the API server does not serve {} at the version asked (an operator was upgraded or removed?) or the \
                 object is gone; labscope re-reads API discovery every 30 s",
                request.resource
            ),
            Error::Throttled { .. } => {
                "the API server is shedding load (API Priority and Fairness): retry in a few seconds".into()
            }
            Error::ServerError { code, .. } => format!(
                "the API server (or an aggregated API behind it) failed with {code}: check the control plane \
                 (k3s: `journalctl -u k3s` on the server node) and retry"
            ),
            Error::Rejected { code: 410, .. } => {
                "the list changed while it was being paged (410 Gone): call again".into()
            }
            Error::Rejected { .. } => "the request was refused as malformed; this is a labscope bug worth reporting".into(),
            Error::Timeout { after, .. } => format!(
                "the API server did not answer in time{}: it may be overloaded or unreachable; raise \
                 --kube-timeout-ms if it is merely slow",
                if after.is_zero() {
                    String::new()
                } else {
                    format!(" ({} per request)", human_duration(*after))
                }
            ),
            Error::Unreachable { .. } => {
                "check that the API server is reachable from labscope (address, network policy, DNS, TLS)".into()
            }
            Error::BadResponse { .. } => {
                "the API server answered something labscope could not read (an aggregated API misbehaving?)".into()
            }
        }
    }
}

impl Error {
    /// Its machine-readable code (as a tool error or a failed part says it).
    pub fn code(&self) -> crate::codes::ErrorCode {
        use crate::codes::ErrorCode;
        match self {
            Error::Unauthorized { .. } => ErrorCode::Unauthenticated,
            Error::Forbidden { .. } => ErrorCode::PermissionDenied,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::Timeout { .. } => ErrorCode::Timeout,
            Error::Unreachable { .. } => ErrorCode::ApiUnreachable,
            Error::Kubeconfig { .. } | Error::InCluster(_) | Error::Client(_) => {
                ErrorCode::NotConfigured
            }
            Error::Throttled { .. }
            | Error::ServerError { .. }
            | Error::Rejected { .. }
            | Error::BadResponse { .. } => ErrorCode::ApiServerError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status {
                code,
                message: message.into(),
                ..Default::default()
            }
            .boxed(),
        )
    }

    #[test]
    fn status_codes_map_to_their_cause() {
        let req = || Request::new("list", "buckets", Some("flux-system"));
        let e = Error::from_kube(api(401, "Unauthorized"), req());
        assert!(matches!(e, Error::Unauthorized { .. }));
        assert!(e.hint().contains("expired"), "{}", e.hint());
        let e = Error::from_kube(api(403, "forbidden"), req());
        assert!(e.is_forbidden());
        assert!(e.hint().contains("`list` on `buckets`"), "{}", e.hint());
        assert!(
            e.to_string()
                .contains("list buckets in namespace flux-system")
        );
        let e = Error::from_kube(
            api(404, "the server could not find the requested resource"),
            req(),
        );
        assert!(e.is_not_found());
        assert!(matches!(
            Error::from_kube(api(429, "too many"), req()),
            Error::Throttled { .. }
        ));
        let e = Error::from_kube(api(503, "service unavailable"), req());
        assert!(matches!(e, Error::ServerError { code: 503, .. }));
        assert!(e.hint().contains("503"));
        // The source is kept.
        assert!(std::error::Error::source(&e).is_some());
        assert!(matches!(
            Error::from_kube(api(410, "expired"), req()),
            Error::Rejected { code: 410, .. }
        ));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(human_duration(Duration::from_secs(8)), "8 s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5 s");
    }
}
