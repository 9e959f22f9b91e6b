//! One TCP connect: open, refused, timeout or unreachable, with timing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use labscope_proto::v1::{TcpConnectOutcome, TcpConnectResult};

use super::{micros, resolve};
use crate::names;

/// Classifies a connect error the way an operator reads it.
pub fn classify(e: &std::io::Error) -> TcpConnectOutcome {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => TcpConnectOutcome::Refused,
        std::io::ErrorKind::TimedOut => TcpConnectOutcome::Timeout,
        std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
            TcpConnectOutcome::Unreachable
        }
        _ => match e.raw_os_error() {
            // EHOSTUNREACH, ENETUNREACH, EHOSTDOWN
            Some(113) | Some(101) | Some(112) => TcpConnectOutcome::Unreachable,
            _ => TcpConnectOutcome::Error,
        },
    }
}

/// Connects once to the first resolved address of `target`.
pub async fn connect(target: &str, port: u16, timeout: Duration) -> TcpConnectResult {
    let mut result = TcpConnectResult {
        target: target.to_string(),
        port: port as u32,
        ..Default::default()
    };
    let (ips, resolve_time) = match resolve(target, timeout).await {
        Ok(r) => r,
        Err(e) => {
            result.outcome = TcpConnectOutcome::Error as i32;
            result.message = e.to_string();
            return result;
        }
    };
    result.resolve_us = micros(resolve_time);
    result.resolved = ips.iter().copied().map(names::ip).collect();
    let ip = ips[0];
    result.address = Some(names::ip(ip));
    let started = Instant::now();
    match tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect(SocketAddr::new(ip, port)),
    )
    .await
    {
        Err(_) => {
            result.outcome = TcpConnectOutcome::Timeout as i32;
            result.message = format!(
                "no answer within {} ms (filtered, or host down)",
                timeout.as_millis()
            );
        }
        Ok(Ok(stream)) => {
            result.outcome = TcpConnectOutcome::Open as i32;
            result.local_address = stream
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            result.message = "connected".into();
        }
        Ok(Err(e)) => {
            let outcome = classify(&e);
            result.outcome = outcome as i32;
            result.message = match outcome {
                TcpConnectOutcome::Refused => {
                    format!("connection refused: host reachable, nothing listening on {port}")
                }
                _ => e.to_string(),
            };
        }
    }
    result.connect_us = micros(started.elapsed());
    result
}
