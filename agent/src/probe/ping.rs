//! ICMP echo. Prefers the unprivileged datagram socket (allowed when the
//! agent's group is inside net.ipv4.ping_group_range), falls back to a raw
//! socket (needs CAP_NET_RAW), and says which fix applies when neither works.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use labscope_proto::v1::{PingMethod, PingResult};
use socket2::{Domain, Protocol, Socket, Type};

use super::micros;
use crate::names;

/// Why a ping could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither socket kind could be opened for lack of privilege.
    #[error(
        "cannot open an ICMP socket: unprivileged ping sockets are not allowed for this group \
         (net.ipv4.ping_group_range) and the agent lacks CAP_NET_RAW for a raw socket; \
         grant CAP_NET_RAW or widen net.ipv4.ping_group_range"
    )]
    NoPrivilege,
    /// Any other socket error.
    #[error("ICMP socket error: {0}")]
    Socket(#[from] io::Error),
}

/// Parameters of one ping run.
#[derive(Debug, Clone, Copy)]
pub struct PingParams {
    /// Echo requests to send.
    pub count: u32,
    /// Wait per reply.
    pub timeout: Duration,
    /// Gap between requests.
    pub interval: Duration,
}

/// The ICMP echo request bytes (checksum filled for IPv4; the kernel fills
/// it for ICMPv6 and for datagram sockets).
pub fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut pkt = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(b"labscope-ping-00");
    if !v6 {
        let sum = checksum(&pkt);
        pkt[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    pkt
}

/// RFC 1071 internet checksum.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from(chunk[0]) << 8
        };
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What one received datagram was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Echo reply with (id, seq).
    Echo(u16, u16),
    /// An ICMP error (type, code).
    Error(u8, u8),
    /// Something else.
    Other,
}

/// Classifies a received datagram. Raw IPv4 sockets deliver the IP header too.
pub fn classify(buf: &[u8], v6: bool, raw: bool) -> Reply {
    let icmp = if raw && !v6 {
        let ihl = buf.first().map(|b| usize::from(b & 0x0f) * 4).unwrap_or(0);
        buf.get(ihl..).unwrap_or(&[])
    } else {
        buf
    };
    if icmp.len() < 8 {
        return Reply::Other;
    }
    let (ty, code) = (icmp[0], icmp[1]);
    let id = u16::from_be_bytes([icmp[4], icmp[5]]);
    let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
    match (v6, ty) {
        (false, 0) | (true, 129) => Reply::Echo(id, seq),
        (false, 3) | (false, 11) | (true, 1) | (true, 3) => Reply::Error(ty, code),
        _ => Reply::Other,
    }
}

fn open(ip: IpAddr) -> Result<(Socket, PingMethod), Error> {
    let (domain, proto) = match ip {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => return Ok((s, PingMethod::Dgram)),
        Err(e) if !is_permission(&e) => return Err(e.into()),
        Err(_) => {}
    }
    match Socket::new(domain, Type::RAW, Some(proto)) {
        Ok(s) => Ok((s, PingMethod::Raw)),
        Err(e) if is_permission(&e) => Err(Error::NoPrivilege),
        Err(e) => Err(e.into()),
    }
}

fn is_permission(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(1) | Some(13)) || e.kind() == io::ErrorKind::PermissionDenied
}

fn describe_error(v6: bool, ty: u8, code: u8) -> String {
    match (v6, ty, code) {
        (false, 3, 0) | (true, 1, 0) => "network unreachable".into(),
        (false, 3, 1) | (true, 1, 3) => "host unreachable".into(),
        (false, 3, 3) | (true, 1, 4) => "port unreachable".into(),
        (false, 3, 13) | (true, 1, 1) => "administratively prohibited".into(),
        (false, 11, _) | (true, 3, _) => "time to live exceeded".into(),
        _ => format!("ICMP type {ty} code {code}"),
    }
}

/// Pings `ip` (blocking; run it on a blocking thread).
pub fn ping_blocking(ip: IpAddr, params: PingParams) -> Result<PingResult, Error> {
    let v6 = ip.is_ipv6();
    let (socket, method) = open(ip)?;
    let raw = method == PingMethod::Raw;
    socket.connect(&SocketAddr::new(ip, 0).into())?;
    let socket: UdpSocket = socket.into();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let id: u16 = (std::process::id() as u16) ^ (nanos as u16);
    let mut result = PingResult {
        address: Some(names::ip(ip)),
        method: method as i32,
        ..Default::default()
    };
    let mut buf = [0u8; 2048];
    for seq in 0..params.count as u16 {
        if seq > 0 && !params.interval.is_zero() {
            std::thread::sleep(params.interval);
        }
        let sent_at = Instant::now();
        socket.send(&echo_request(v6, id, seq))?;
        result.transmitted += 1;
        let deadline = sent_at + params.timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            socket.set_read_timeout(Some(deadline - now))?;
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                // A connected datagram socket reports ICMP errors as socket errors.
                Err(e) if matches!(e.raw_os_error(), Some(113) | Some(101) | Some(111)) => {
                    result.errors.push(format!("seq {seq}: {e}"));
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            match classify(&buf[..n], v6, raw) {
                // Datagram sockets get their id rewritten by the kernel and
                // only see their own replies, so the id is checked on raw only.
                Reply::Echo(rid, rseq) if rseq == seq && (!raw || rid == id) => {
                    let rtt = micros(sent_at.elapsed());
                    result.received += 1;
                    result.rtts_us.push(rtt);
                    break;
                }
                Reply::Error(ty, code) => {
                    result
                        .errors
                        .push(format!("seq {seq}: {}", describe_error(v6, ty, code)));
                    break;
                }
                _ => continue,
            }
        }
    }
    if !result.rtts_us.is_empty() {
        result.rtt_min_us = *result.rtts_us.iter().min().unwrap_or(&0);
        result.rtt_max_us = *result.rtts_us.iter().max().unwrap_or(&0);
        result.rtt_avg_us = result.rtts_us.iter().sum::<u64>() / result.rtts_us.len() as u64;
    }
    result.loss_percent = if result.transmitted > 0 {
        100.0 * f64::from(result.transmitted - result.received) / f64::from(result.transmitted)
    } else {
        0.0
    };
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_checksum_verifies() {
        let pkt = echo_request(false, 0x1234, 7);
        assert_eq!(checksum(&pkt), 0, "a packet with its checksum sums to zero");
        assert_eq!(&pkt[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(echo_request(true, 1, 1)[0], 128);
    }

    #[test]
    fn classifies_raw_v4_reply_after_ip_header() {
        let mut ip_hdr = vec![0x45u8];
        ip_hdr.resize(20, 0);
        let mut reply = echo_request(false, 9, 3);
        reply[0] = 0;
        let raw = [ip_hdr, reply.clone()].concat();
        assert_eq!(classify(&raw, false, true), Reply::Echo(9, 3));
        assert_eq!(classify(&reply, false, false), Reply::Echo(9, 3));
        let unreachable = [3u8, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(classify(&unreachable, false, false), Reply::Error(3, 1));
        assert_eq!(classify(&[1, 2], false, true), Reply::Other);
    }
}
