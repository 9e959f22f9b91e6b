//! Who may call the agent. With mTLS, a client certificate that chains to
//! the CA is not enough: a CA shared with other workloads (a cluster-wide
//! cert-manager issuer) signs certificates for anything. The certificate's
//! names must also be on the allowlist — by default the aggregator's.

use std::sync::Arc;

use tonic::{Request, Status};
use x509_parser::extensions::GeneralName;

/// The name the aggregator's client certificate carries by default.
pub const DEFAULT_CLIENT_IDENTITY: &str = "labscope-aggregator";

/// Names a client certificate may carry; `None` accepts any (no mTLS).
#[derive(Debug, Clone)]
pub struct Allowlist(Option<Arc<Vec<String>>>);

impl Allowlist {
    /// Accepts a certificate that carries one of `names`.
    pub fn of(names: Vec<String>) -> Self {
        Self(Some(Arc::new(names)))
    }

    /// Accepts any caller (plaintext, or TLS without client certificates).
    pub fn anyone() -> Self {
        Self(None)
    }

    /// The names a certificate carries: its DNS and URI subject alternative
    /// names, else its common name.
    pub fn names(der: &[u8]) -> Vec<String> {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return Vec::new();
        };
        let sans = san_names(&cert, true);
        if !sans.is_empty() {
            return sans;
        }
        cert.subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect()
    }

    /// The interceptor: passes a call whose client certificate is allowed.
    #[allow(clippy::result_large_err)]
    pub fn check(&self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(allowed) = &self.0 else {
            return Ok(req);
        };
        // Without a certificate the TLS layer has already refused the
        // connection (--client-ca requires one).
        let Some(certs) = req.peer_certs() else {
            return Err(Status::unauthenticated("a client certificate is required"));
        };
        let names = certs
            .first()
            .map(|leaf| Self::names(leaf.as_ref()))
            .unwrap_or_default();
        if names.iter().any(|n| allowed.contains(n)) {
            return Ok(req);
        }
        Err(Status::permission_denied(format!(
            "the client certificate names {names:?}, none of which this agent accepts ({}); \
             give the aggregator a certificate with one of those names, or add its name with --client-identity",
            allowed.join(", ")
        )))
    }
}

/// A certificate's DNS subject alternative names (and URI ones with `uri`).
pub fn san_names(cert: &x509_parser::certificate::X509Certificate<'_>, uri: bool) -> Vec<String> {
    cert.subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    GeneralName::URI(u) if uri => Some(u.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}
