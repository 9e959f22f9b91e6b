//! Probes run by the agent: ICMP echo, TCP connect, HTTP(S) with per-phase
//! timing, and DNS queries to an explicit server. Targets are validated by
//! the service before they get here; resolution happens once, here.

pub mod dns;
pub mod http;
pub mod ping;
pub mod tcp;

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Why a target could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The resolver answered with an error or no address.
    #[error("could not resolve {host:?}: {reason}")]
    Failed {
        /// Host asked for.
        host: String,
        /// Resolver's reason.
        reason: String,
    },
    /// The resolver did not answer in time.
    #[error("resolving {host:?} took longer than {timeout_ms} ms")]
    Timeout {
        /// Host asked for.
        host: String,
        /// Budget.
        timeout_ms: u64,
    },
}

/// Resolves `target` (an IP literal or a hostname) with the system resolver.
/// Returns the addresses and the time it took.
pub async fn resolve(
    target: &str,
    timeout: Duration,
) -> Result<(Vec<IpAddr>, Duration), ResolveError> {
    let started = Instant::now();
    let literal = target.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok((vec![ip], started.elapsed()));
    }
    let lookup = tokio::net::lookup_host((target, 0));
    match tokio::time::timeout(timeout, lookup).await {
        Err(_) => Err(ResolveError::Timeout {
            host: target.to_string(),
            timeout_ms: timeout.as_millis() as u64,
        }),
        Ok(Err(e)) => Err(ResolveError::Failed {
            host: target.to_string(),
            reason: e.to_string(),
        }),
        Ok(Ok(addrs)) => {
            let mut ips: Vec<IpAddr> = Vec::new();
            for a in addrs {
                if !ips.contains(&a.ip()) {
                    ips.push(a.ip());
                }
            }
            if ips.is_empty() {
                return Err(ResolveError::Failed {
                    host: target.to_string(),
                    reason: "no addresses".into(),
                });
            }
            Ok((ips, started.elapsed()))
        }
    }
}

/// Microseconds of a duration, saturating.
pub fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}
