//! The agent's TLS, re-read from disk when its files change. cert-manager
//! renews certificates (by default 30 days before a 90-day expiry) by
//! rewriting the Secret that the pod mounts; a server that loaded its files
//! once keeps serving the old certificate until it expires and every call
//! fails. Each new connection checks the files' modification times (three
//! `stat`s) and rebuilds the configuration when one moved; a broken file
//! keeps the last good configuration and is reported once. The aggregator's
//! client side towards the agents works the same way ([`watched_client`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tracing::{info, warn};

use crate::server::TlsFiles;

/// Why TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or holds no usable PEM.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the combination.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Builds the server configuration from the files as they are now.
pub fn build(files: &TlsFiles) -> Result<ServerConfig, Error> {
    let certs = certificates(&files.cert)?;
    let key = private_key(&files.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let roots = roots(ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| Error::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| Error::Config(e.to_string()))?;
    // gRPC is HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A value built from files and rebuilt when one of them changes: each
/// [`Watched::current`] compares the files' modification times (a `stat`
/// each) with the last build's. Used for the agent's server configuration
/// and for the aggregator's client configuration towards the agents.
pub struct Watched<T> {
    paths: Vec<PathBuf>,
    what: &'static str,
    build: Box<dyn Fn() -> Result<T, Error> + Send + Sync>,
    loaded: Mutex<(Vec<Option<SystemTime>>, Arc<T>)>,
}

impl<T> std::fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("what", &self.what)
            .field("paths", &self.paths)
            .finish()
    }
}

fn stamps(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    // metadata() follows symlinks: a Secret volume swaps its `..data` link,
    // and the files behind it are new.
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

impl<T> Watched<T> {
    /// Builds the value now (failing when the files are unusable now) and
    /// remembers `paths` to watch. `what` names it in logs.
    pub fn new(
        what: &'static str,
        paths: Vec<PathBuf>,
        build: impl Fn() -> Result<T, Error> + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        let first = Arc::new(build()?);
        Ok(Self {
            loaded: Mutex::new((stamps(&paths), first)),
            paths,
            what,
            build: Box::new(build),
        })
    }

    /// The value for the files as they are now.
    pub fn current(&self) -> Arc<T> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamps(&self.paths);
        if now != loaded.0 {
            // Remember the new times either way: a broken file is reported
            // once, and fixing it moves the times again.
            loaded.0 = now;
            match (self.build)() {
                Ok(value) => {
                    loaded.1 = Arc::new(value);
                    info!(what = self.what, "TLS files changed: reloaded");
                }
                Err(e) => warn!(
                    what = self.what,
                    error = %e,
                    "TLS files changed but cannot be used; keeping the previous ones"
                ),
            }
        }
        loaded.1.clone()
    }
}

/// The agent's server configuration, rebuilt when its files change.
pub type Reloading = Watched<ServerConfig>;

/// Watches the agent's TLS files.
pub fn reloading(files: TlsFiles) -> Result<Reloading, Error> {
    let paths = std::iter::once(files.cert.clone())
        .chain(std::iter::once(files.key.clone()))
        .chain(files.client_ca.clone())
        .collect();
    Watched::new("agent server certificate", paths, move || build(&files))
}

/// Reads every certificate of a PEM file.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no certificate in it"));
    }
    Ok(certs)
}

/// Reads a PEM private key.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, e))
}

/// Trust anchors from a PEM file of CA certificates.
pub fn roots(path: &Path) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).map_err(|e| file_error(path, e))?;
    }
    Ok(roots)
}

/// The client configuration towards agents: trust `ca` (else the public
/// web roots), present `identity` (certificate, key) when given; HTTP/2.
pub fn client(ca: Option<&Path>, identity: Option<(&Path, &Path)>) -> Result<ClientConfig, Error> {
    let roots = match ca {
        Some(ca) => roots(ca)?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(e.to_string()))?
            .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .map_err(|e| Error::Config(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// [`client`], rebuilt when the files change.
pub fn watched_client(
    ca: Option<PathBuf>,
    identity: Option<(PathBuf, PathBuf)>,
) -> Result<Watched<ClientConfig>, Error> {
    let paths = ca
        .iter()
        .cloned()
        .chain(identity.iter().flat_map(|(c, k)| [c.clone(), k.clone()]))
        .collect();
    Watched::new("client certificate towards the agents", paths, move || {
        client(
            ca.as_deref(),
            identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        )
    })
}
