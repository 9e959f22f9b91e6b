//! The agent's TLS, re-read from disk when its files change. cert-manager
//! renews certificates (by default 30 days before a 90-day expiry) by
//! rewriting the Secret that the pod mounts; a server that loaded its files
//! once keeps serving the old certificate until it expires and every call
//! fails. Each new connection checks the files' modification times (three
//! `stat`s) and rebuilds the configuration when one moved; a broken file
//! keeps the last good configuration and is reported once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
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
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_error(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&files.cert, e))?;
    if certs.is_empty() {
        return Err(file_error(&files.cert, "no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| file_error(ca, e))? {
                roots
                    .add(cert.map_err(|e| file_error(ca, e))?)
                    .map_err(|e| file_error(ca, e))?;
            }
            if roots.is_empty() {
                return Err(file_error(ca, "no CA certificate in it"));
            }
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

struct Loaded {
    stamps: Vec<Option<SystemTime>>,
    config: Arc<ServerConfig>,
}

/// The current configuration, rebuilt when the files change.
pub struct Reloading {
    files: TlsFiles,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for Reloading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("files", &self.files)
            .finish()
    }
}

fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    // metadata() follows symlinks: a Secret volume swaps its `..data` link,
    // and the files behind it are new.
    std::iter::once(&files.cert)
        .chain(std::iter::once(&files.key))
        .chain(files.client_ca.iter())
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

impl Reloading {
    /// Loads the files; fails when they are unusable now.
    pub fn new(files: TlsFiles) -> Result<Self, Error> {
        let config = Arc::new(build(&files)?);
        Ok(Self {
            loaded: Mutex::new(Loaded {
                stamps: stamps(&files),
                config,
            }),
            files,
        })
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamps(&self.files);
        if now != loaded.stamps {
            // Remember the new times either way: a broken file is reported
            // once, and fixing it moves the times again.
            loaded.stamps = now;
            match build(&self.files) {
                Ok(config) => {
                    loaded.config = Arc::new(config);
                    info!(cert = %self.files.cert.display(), "TLS files changed: reloaded");
                }
                Err(e) => {
                    warn!(error = %e, "TLS files changed but cannot be used; keeping the previous ones")
                }
            }
        }
        loaded.config.clone()
    }
}
