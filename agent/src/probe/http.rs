//! One HTTP(S) request with the phases timed separately (DNS, connect, TLS,
//! first byte, total) and the server certificate described. Verification is
//! on by default; when it fails, the certificate facts are still reported so
//! the caller sees *why* (expired, wrong name, unknown issuer).

pub use labscope_proto::text::rfc3339;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use labscope_proto::v1::{Certificate, HttpProbeOutcome, HttpProbeResult, HttpTiming};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{micros, resolve};

/// Most body bytes read (and counted) before the probe stops reading.
const BODY_CAP: u64 = 8 * 1024 * 1024;

/// A validated probe request.
#[derive(Debug, Clone)]
pub struct HttpProbeParams {
    /// Parsed URL.
    pub uri: http::Uri,
    /// GET or HEAD.
    pub method: http::Method,
    /// Whole-probe budget.
    pub timeout: Duration,
    /// Skip verification.
    pub insecure: bool,
    /// Extra trusted roots (PEM).
    pub ca_pem: String,
    /// Connect here instead of resolving the host.
    pub connect_to: Option<SocketAddr>,
}

/// Records the end-entity certificate and, unless told not to, verifies it
/// with webpki against the configured roots.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    verify: bool,
    seen: Mutex<Option<CertificateDer<'static>>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(end_entity.clone().into_owned());
        }
        if self.verify {
            self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )
        } else {
            Ok(ServerCertVerified::assertion())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn tls_config(
    params: &HttpProbeParams,
) -> Result<(rustls::ClientConfig, Arc<RecordingVerifier>), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if !params.ca_pem.is_empty() {
        for cert in CertificateDer::pem_slice_iter(params.ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("ca_pem: {e}"))?;
            roots.add(cert).map_err(|e| format!("ca_pem: {e}"))?;
        }
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let verifier = Arc::new(RecordingVerifier {
        inner,
        verify: !params.insecure,
        seen: Mutex::new(None),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, verifier))
}

/// Describes a DER certificate; `now` in Unix seconds.
pub fn describe_certificate(der: &[u8], now: i64) -> Option<Certificate> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    let dns_names = crate::identity::san_names(&cert, false);
    Some(Certificate {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: rfc3339(cert.validity().not_before.timestamp()),
        not_after: rfc3339(not_after),
        days_left: (not_after - now).div_euclid(86_400),
        dns_names,
        serial_hex: cert.raw_serial_as_string(),
    })
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn fail(result: &mut HttpProbeResult, outcome: HttpProbeOutcome, error: impl Into<String>) {
    result.outcome = outcome as i32;
    result.error = error.into();
}

/// Runs the probe. Never returns an error: every failure is an outcome.
pub async fn probe(params: HttpProbeParams) -> HttpProbeResult {
    let started = Instant::now();
    let deadline = started + params.timeout;
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let mut result = HttpProbeResult {
        url: params.uri.to_string(),
        ..Default::default()
    };
    let mut timing = HttpTiming::default();
    let https = params.uri.scheme_str() == Some("https");
    let host = params
        .uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = params
        .uri
        .port_u16()
        .unwrap_or(if https { 443 } else { 80 });

    // DNS
    let addr = match params.connect_to {
        Some(a) => a,
        None => match resolve(&host, remaining()).await {
            Ok((ips, took)) => {
                timing.dns_us = micros(took);
                SocketAddr::new(ips[0], port)
            }
            Err(e) => {
                fail(&mut result, HttpProbeOutcome::DnsError, e.to_string());
                result.timing = Some(timing);
                return result;
            }
        },
    };
    result.remote_address = addr.to_string();

    // Connect
    let t_connect = Instant::now();
    let tcp = match tokio::time::timeout(remaining(), tokio::net::TcpStream::connect(addr)).await {
        Err(_) => {
            fail(
                &mut result,
                HttpProbeOutcome::ConnectTimeout,
                format!("no TCP answer from {addr} in time"),
            );
            timing.total_us = micros(started.elapsed());
            result.timing = Some(timing);
            return result;
        }
        Ok(Err(e)) => {
            let outcome = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                HttpProbeOutcome::ConnectRefused
            } else {
                HttpProbeOutcome::ConnectError
            };
            fail(&mut result, outcome, format!("connect to {addr}: {e}"));
            timing.total_us = micros(started.elapsed());
            result.timing = Some(timing);
            return result;
        }
        Ok(Ok(s)) => s,
    };
    timing.connect_us = micros(t_connect.elapsed());

    if https {
        over_tls(
            tcp,
            &params,
            &host,
            port,
            started,
            deadline,
            &mut timing,
            &mut result,
        )
        .await;
    } else {
        exchange(
            tcp,
            &params,
            &host,
            port,
            started,
            deadline,
            &mut timing,
            &mut result,
        )
        .await;
    }
    timing.total_us = micros(started.elapsed());
    result.timing = Some(timing);
    result
}

/// The TLS handshake (its time, the certificate the server showed, the
/// version and ALPN agreed), then the request over it.
#[allow(clippy::too_many_arguments)]
async fn over_tls(
    tcp: tokio::net::TcpStream,
    params: &HttpProbeParams,
    host: &str,
    port: u16,
    started: Instant,
    deadline: Instant,
    timing: &mut HttpTiming,
    result: &mut HttpProbeResult,
) {
    let (config, verifier) = match tls_config(params) {
        Ok(c) => c,
        Err(e) => {
            fail(result, HttpProbeOutcome::TlsError, e);
            return;
        }
    };
    let server_name = match host.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => match ServerName::try_from(host.to_string()) {
            Ok(n) => n,
            Err(e) => {
                fail(
                    result,
                    HttpProbeOutcome::TlsError,
                    format!("invalid TLS server name {host:?}: {e}"),
                );
                return;
            }
        },
    };
    let t_tls = Instant::now();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = tokio::time::timeout(
        deadline.saturating_duration_since(Instant::now()),
        connector.connect(server_name, tcp),
    )
    .await;
    timing.tls_us = micros(t_tls.elapsed());
    let seen = verifier.seen.lock().ok().and_then(|s| s.clone());
    result.certificate = seen.and_then(|der| describe_certificate(&der, now_unix()));
    match handshake {
        Err(_) => {
            fail(
                result,
                HttpProbeOutcome::Timeout,
                "TLS handshake did not finish in time",
            );
        }
        Ok(Err(e)) => {
            fail(
                result,
                HttpProbeOutcome::TlsError,
                format!("TLS handshake failed: {e}"),
            );
        }
        Ok(Ok(tls)) => {
            let (_, conn) = tls.get_ref();
            result.tls_version = conn
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default();
            result.alpn = conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default();
            result.tls_verified = !params.insecure;
            exchange(tls, params, host, port, started, deadline, timing, result).await;
        }
    }
}

/// The GET (or HEAD) the probe sends: path and query of the URL, a Host
/// header as a browser writes it (the port only when it is not the
/// scheme's).
fn request(
    params: &HttpProbeParams,
    host: &str,
    port: u16,
) -> Result<http::Request<Empty<Bytes>>, http::Error> {
    let path = params
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let default_port = if params.uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let host_header = match (host.contains(':'), port == default_port) {
        (true, true) => format!("[{host}]"),
        (true, false) => format!("[{host}]:{port}"),
        (false, true) => host.to_string(),
        (false, false) => format!("{host}:{port}"),
    };
    http::Request::builder()
        .method(params.method.clone())
        .uri(path)
        .header(http::header::HOST, host_header)
        .header(
            http::header::USER_AGENT,
            concat!("labscope-agent/", env!("CARGO_PKG_VERSION")),
        )
        .header(http::header::ACCEPT, "*/*")
        .body(Empty::<Bytes>::new())
}

#[allow(clippy::too_many_arguments)]
async fn exchange<S>(
    stream: S,
    params: &HttpProbeParams,
    host: &str,
    port: u16,
    started: Instant,
    deadline: Instant,
    timing: &mut HttpTiming,
    result: &mut HttpProbeResult,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(pair) => pair,
        Err(e) => {
            return fail(
                result,
                HttpProbeOutcome::HttpError,
                format!("HTTP handshake: {e}"),
            );
        }
    };
    let driver = tokio::spawn(conn);
    let request = match request(params, host, port) {
        Ok(r) => r,
        Err(e) => {
            driver.abort();
            return fail(
                result,
                HttpProbeOutcome::HttpError,
                format!("building request: {e}"),
            );
        }
    };
    let response = match tokio::time::timeout(remaining(), sender.send_request(request)).await {
        Err(_) => {
            driver.abort();
            return fail(
                result,
                HttpProbeOutcome::Timeout,
                "no response head before the timeout",
            );
        }
        Ok(Err(e)) => {
            driver.abort();
            return fail(
                result,
                HttpProbeOutcome::HttpError,
                format!("HTTP exchange: {e}"),
            );
        }
        Ok(Ok(r)) => r,
    };
    timing.first_byte_us = micros(started.elapsed());
    result.status = u32::from(response.status().as_u16());
    result.http_version = format!("{:?}", response.version());
    let header = |name: http::header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    result.content_type = header(http::header::CONTENT_TYPE);
    if response.status().is_redirection() {
        result.redirect_location = header(http::header::LOCATION);
    }
    let mut body = response.into_body();
    let mut size = 0u64;
    loop {
        match tokio::time::timeout(remaining(), body.frame()).await {
            Err(_) => {
                result.body_bytes = size;
                driver.abort();
                return fail(
                    result,
                    HttpProbeOutcome::Timeout,
                    "body did not finish before the timeout",
                );
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                result.body_bytes = size;
                driver.abort();
                return fail(
                    result,
                    HttpProbeOutcome::HttpError,
                    format!("reading body: {e}"),
                );
            }
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    size += data.len() as u64;
                }
                if size >= BODY_CAP {
                    break;
                }
            }
        }
    }
    driver.abort();
    result.body_bytes = size;
    result.outcome = HttpProbeOutcome::Ok as i32;
}
