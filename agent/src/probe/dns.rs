//! One DNS query to an explicit server over UDP (TCP when asked or when the
//! answer comes back truncated): rcode, flags, answers with TTLs, latency.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, Record, RecordType};
use labscope_proto::v1::{DnsFlags, DnsQueryResult, DnsRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::micros;

/// Record types the probe accepts.
pub const SUPPORTED_TYPES: [&str; 9] =
    ["A", "AAAA", "MX", "TXT", "CNAME", "NS", "SOA", "PTR", "SRV"];

/// A validated query.
#[derive(Debug, Clone)]
pub struct DnsParams {
    /// Name asked for.
    pub name: Name,
    /// Type asked for.
    pub record_type: RecordType,
    /// Server.
    pub server: SocketAddr,
    /// CD flag.
    pub checking_disabled: bool,
    /// Budget.
    pub timeout: Duration,
    /// TCP from the start.
    pub tcp: bool,
}

/// RCODE numbers to their names.
pub fn rcode_name(code: u16) -> String {
    match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS",
        n => return format!("RCODE{n}"),
    }
    .into()
}

/// Builds the query message bytes and returns its id.
pub fn build_query(params: &DnsParams) -> Result<(u16, Vec<u8>), String> {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.metadata.checking_disabled = params.checking_disabled;
    msg.add_query(Query::query(params.name.clone(), params.record_type));
    let bytes = msg.to_vec().map_err(|e| e.to_string())?;
    Ok((msg.metadata.id, bytes))
}

fn record(r: &Record) -> DnsRecord {
    DnsRecord {
        name: r.name.to_string(),
        record_type: r.record_type().to_string(),
        ttl: r.ttl,
        data: r.data.to_string(),
    }
}

/// Fills `result` from a response message.
pub fn read_response(bytes: &[u8], id: u16, result: &mut DnsQueryResult) -> Result<bool, String> {
    let msg = Message::from_vec(bytes).map_err(|e| format!("undecodable DNS response: {e}"))?;
    if msg.metadata.id != id {
        return Err(format!(
            "response id {} does not match query id {id}",
            msg.metadata.id
        ));
    }
    let m = &msg.metadata;
    result.rcode = rcode_name(u16::from(m.response_code));
    result.flags = Some(DnsFlags {
        authoritative: m.authoritative,
        truncated: m.truncation,
        recursion_desired: m.recursion_desired,
        recursion_available: m.recursion_available,
        authentic_data: m.authentic_data,
        checking_disabled: m.checking_disabled,
    });
    result.answers = msg.answers.iter().map(record).collect();
    result.authority = msg.authorities.iter().map(record).collect();
    Ok(m.truncation)
}

async fn over_udp(params: &DnsParams, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = if params.server.is_ipv6() {
        "[::]:0".parse().unwrap_or(params.server)
    } else {
        SocketAddr::from(([0, 0, 0, 0], 0))
    };
    let sock = tokio::net::UdpSocket::bind(bind).await?;
    sock.connect(params.server).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 4096];
    let n = sock.recv(&mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

async fn over_tcp(params: &DnsParams, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect(params.server).await?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Sends the query. Never returns an error: failures are in `error`.
pub async fn query(params: DnsParams) -> DnsQueryResult {
    let mut result = DnsQueryResult {
        name: params.name.to_string(),
        record_type: params.record_type.to_string(),
        server: params.server.to_string(),
        transport: if params.tcp { "tcp" } else { "udp" }.into(),
        ..Default::default()
    };
    let (id, bytes) = match build_query(&params) {
        Ok(q) => q,
        Err(e) => {
            result.error = format!("could not encode the query: {e}");
            return result;
        }
    };
    let started = Instant::now();
    let mut use_tcp = params.tcp;
    loop {
        let remaining = params.timeout.saturating_sub(started.elapsed());
        let attempt = if use_tcp {
            over_tcp(&params, &bytes).await_timeout(remaining).await
        } else {
            over_udp(&params, &bytes).await_timeout(remaining).await
        };
        match attempt {
            None => {
                result.error = format!(
                    "no answer from {} within {} ms",
                    params.server,
                    params.timeout.as_millis()
                );
                break;
            }
            Some(Err(e)) => {
                result.error = format!(
                    "{} query to {} failed: {e}",
                    if use_tcp { "TCP" } else { "UDP" },
                    params.server
                );
                break;
            }
            Some(Ok(answer)) => match read_response(&answer, id, &mut result) {
                Ok(true) if !use_tcp => {
                    use_tcp = true;
                    result.transport = "tcp".into();
                    continue;
                }
                Ok(_) => break,
                Err(e) => {
                    result.error = e;
                    break;
                }
            },
        }
    }
    result.latency_us = micros(started.elapsed());
    result
}

trait AwaitTimeout: std::future::Future + Sized {
    async fn await_timeout(self, d: Duration) -> Option<Self::Output> {
        tokio::time::timeout(d, self).await.ok()
    }
}
impl<F: std::future::Future> AwaitTimeout for F {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_query_with_cd_and_reads_response() {
        let params = DnsParams {
            name: Name::from_ascii("pi-hole.lab.example.").unwrap(),
            record_type: RecordType::A,
            server: "127.0.0.1:53".parse().unwrap(),
            checking_disabled: true,
            timeout: Duration::from_secs(1),
            tcp: false,
        };
        let (id, bytes) = build_query(&params).unwrap();
        let q = Message::from_vec(&bytes).unwrap();
        assert!(q.metadata.checking_disabled && q.metadata.recursion_desired);
        assert_eq!(q.queries[0].query_type(), RecordType::A);

        let mut resp = Message::response(id, q.metadata.op_code);
        resp.metadata.response_code = hickory_proto::op::ResponseCode::NXDomain;
        let mut result = DnsQueryResult::default();
        let truncated = read_response(&resp.to_vec().unwrap(), id, &mut result).unwrap();
        assert!(!truncated);
        assert_eq!(result.rcode, "NXDOMAIN");
        assert!(read_response(&resp.to_vec().unwrap(), id.wrapping_add(1), &mut result).is_err());
        assert!(read_response(&[1, 2, 3], id, &mut result).is_err());
    }
}
