//! Tiny servers for probes to hit: an HTTP/1.1 responder and a DNS server
//! answering one zone. Real sockets, real protocols, no external packages.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType, rdata};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `HTTP/1.1 <status>` with body `body` to every request on `addr`
/// (call inside a namespace, e.g. from [`crate::Netns::spawn`]).
pub async fn http(addr: SocketAddr, status: u16, body: &'static str) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => panic!("http server bind {addr}: {e}"),
    };
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let location = if (300..400).contains(&status) {
                "Location: /moved\r\n"
            } else {
                ""
            };
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\n{location}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
        });
    }
}

/// A DNS server on UDP `addr`: `name` A → `answer` (TTL 300); anything else
/// NXDOMAIN; a name starting with `servfail.`, and HOMELAB.md §3.k's
/// `peaceloveandpizza.com`, get SERVFAIL unless the query has the CD flag
/// (the DNSSEC-breakage shape), then they get `answer`.
pub async fn dns(addr: SocketAddr, name: &'static str, answer: IpAddr) {
    let sock = match tokio::net::UdpSocket::bind(addr).await {
        Ok(s) => s,
        Err(e) => panic!("dns server bind {addr}: {e}"),
    };
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
        resp.metadata.message_type = MessageType::Response;
        resp.metadata.recursion_desired = query.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        resp.metadata.checking_disabled = query.metadata.checking_disabled;
        let Some(q) = query.queries.first().cloned() else {
            continue;
        };
        let qname = q.name().to_string();
        resp.add_query(q.clone());
        let wanted = qname.trim_end_matches('.') == name.trim_end_matches('.');
        let servfail = qname.starts_with("servfail.")
            || qname.trim_end_matches('.') == "peaceloveandpizza.com";
        if servfail && !query.metadata.checking_disabled {
            resp.metadata.response_code = ResponseCode::ServFail;
        } else if (wanted || servfail) && q.query_type() == RecordType::A {
            if let IpAddr::V4(v4) = answer {
                resp.add_answer(Record::from_rdata(
                    q.name().clone(),
                    300,
                    RData::A(rdata::A(v4)),
                ));
            }
        } else if !wanted {
            resp.metadata.response_code = ResponseCode::NXDomain;
        }
        if let Ok(bytes) = resp.to_vec() {
            let _ = sock.send_to(&bytes, peer).await;
        }
    }
}

/// Serves HTTPS on `addr` with the given certificate chain and key (PEM),
/// answering 200 with `body` to every request.
pub async fn https(addr: SocketAddr, cert_pem: String, key_pem: String, body: &'static str) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("test cert");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("test key");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server cert");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => panic!("https server bind {addr}: {e}"),
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = tls.write_all(head.as_bytes()).await;
            let _ = tls.write_all(body.as_bytes()).await;
            let _ = tls.shutdown().await;
        });
    }
}

/// Serves `router` on `listener` (a fake's loopback port) until the returned
/// sender is dropped, which shuts the server down gracefully.
pub fn serve_until_dropped(
    listener: tokio::net::TcpListener,
    router: axum::Router,
) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    tx
}
