//! One ctnetlink message (IPCTNL_MSG_CT_NEW) → [`ConntrackRecord`], without
//! allocating. The record is small and `Copy`; only entries that land on the
//! page are turned into wire messages.

pub use labscope_proto::text::{
    IPS_ASSURED, IPS_DST_NAT, IPS_SEEN_REPLY, IPS_SRC_NAT, TCP_STATE_NAMES, status_names,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use labscope_proto::v1 as pb;

use crate::names;
use crate::netlink::nla::{Nla, NlaIter};

// enum ctattr_type
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_PROTOINFO: u16 = 4;
const CTA_TIMEOUT: u16 = 7;
const CTA_MARK: u16 = 8;
const CTA_COUNTERS_ORIG: u16 = 9;
const CTA_COUNTERS_REPLY: u16 = 10;
const CTA_USE: u16 = 11;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
const CTA_TIMESTAMP: u16 = 20;
const CTA_LABELS: u16 = 22;
// enum ctattr_tuple
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_TUPLE_ZONE: u16 = 3;
// enum ctattr_ip
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
// enum ctattr_l4proto
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTO_ICMP_ID: u16 = 4;
const CTA_PROTO_ICMP_TYPE: u16 = 5;
const CTA_PROTO_ICMP_CODE: u16 = 6;
const CTA_PROTO_ICMPV6_ID: u16 = 7;
const CTA_PROTO_ICMPV6_TYPE: u16 = 8;
const CTA_PROTO_ICMPV6_CODE: u16 = 9;
// enum ctattr_protoinfo / ctattr_protoinfo_tcp
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
// enum ctattr_counters
const CTA_COUNTERS_PACKETS: u16 = 1;
const CTA_COUNTERS_BYTES: u16 = 2;
const CTA_COUNTERS32_PACKETS: u16 = 3;
const CTA_COUNTERS32_BYTES: u16 = 4;
const CTA_TIMESTAMP_START: u16 = 1;

/// One direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Layer-4 protocol number.
    pub proto: u8,
    /// Source port (TCP/UDP/SCTP/DCCP), 0 otherwise.
    pub sport: u16,
    /// Destination port, 0 otherwise.
    pub dport: u16,
    /// ICMP id/type/code, when the protocol is ICMP or ICMPv6.
    pub icmp: Option<(u16, u8, u8)>,
    /// Zone of this direction.
    pub zone: u16,
}

impl Default for Tuple {
    fn default() -> Self {
        Self {
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            proto: 0,
            sport: 0,
            dport: 0,
            icmp: None,
            zone: 0,
        }
    }
}

/// One conntrack entry, decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConntrackRecord {
    /// `nfgen_family` (2 or 10).
    pub family: u8,
    /// Original direction.
    pub orig: Tuple,
    /// Reply direction.
    pub reply: Tuple,
    /// IPS_* bits.
    pub status: u32,
    /// TCP state number (`TCP_CONNTRACK_*`), when TCP.
    pub tcp_state: Option<u8>,
    /// Seconds left.
    pub timeout: u32,
    /// Connection mark.
    pub mark: u32,
    /// Zone (CTA_ZONE).
    pub zone: u16,
    /// Kernel id.
    pub id: u32,
    /// Reference count.
    pub use_count: u32,
    /// (packets, bytes) original direction, when accounting is on.
    pub counters_orig: Option<(u64, u64)>,
    /// (packets, bytes) reply direction.
    pub counters_reply: Option<(u64, u64)>,
    /// Start timestamp in ns, when timestamps are on.
    pub start_ns: Option<u64>,
    /// First 16 bytes of the connlabels bitmap, if any.
    pub labels: Option<[u8; 16]>,
}

/// Why a message was not a conntrack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the netfilter generic header.
    #[error("ctnetlink message shorter than nfgenmsg")]
    Short,
    /// An attribute length ran past its container.
    #[error("ctnetlink attribute with an impossible length")]
    Malformed,
    /// No original tuple.
    #[error("ctnetlink entry without an original tuple")]
    NoTuple,
}

/// Decodes the payload (after the netlink header) of one ctnetlink message.
pub fn decode(payload: &[u8]) -> Result<ConntrackRecord, DecodeError> {
    if payload.len() < 4 {
        return Err(DecodeError::Short);
    }
    let mut rec = ConntrackRecord {
        family: payload[0],
        ..Default::default()
    };
    let mut has_orig = false;
    let mut attrs = NlaIter::new(&payload[4..]);
    for a in attrs.by_ref() {
        match a.kind {
            CTA_TUPLE_ORIG => {
                rec.orig = tuple(&a)?;
                has_orig = true;
            }
            CTA_TUPLE_REPLY => rec.reply = tuple(&a)?,
            CTA_STATUS => rec.status = a.be32().unwrap_or(0),
            CTA_PROTOINFO => {
                for p in a.nested() {
                    if p.kind == CTA_PROTOINFO_TCP {
                        rec.tcp_state = p
                            .nested()
                            .find(|t| t.kind == CTA_PROTOINFO_TCP_STATE)
                            .and_then(|t| t.u8());
                    }
                }
            }
            CTA_TIMEOUT => rec.timeout = a.be32().unwrap_or(0),
            CTA_MARK => rec.mark = a.be32().unwrap_or(0),
            CTA_COUNTERS_ORIG => rec.counters_orig = counters(&a),
            CTA_COUNTERS_REPLY => rec.counters_reply = counters(&a),
            CTA_USE => rec.use_count = a.be32().unwrap_or(0),
            CTA_ID => rec.id = a.be32().unwrap_or(0),
            CTA_ZONE => rec.zone = a.be16().unwrap_or(0),
            CTA_TIMESTAMP => {
                rec.start_ns = a
                    .nested()
                    .find(|t| t.kind == CTA_TIMESTAMP_START)
                    .and_then(|t| t.be64())
            }
            CTA_LABELS => {
                let mut l = [0u8; 16];
                let n = a.value.len().min(16);
                l[..n].copy_from_slice(&a.value[..n]);
                if l.iter().any(|b| *b != 0) {
                    rec.labels = Some(l);
                }
            }
            _ => {}
        }
    }
    if attrs.malformed() {
        return Err(DecodeError::Malformed);
    }
    if !has_orig {
        return Err(DecodeError::NoTuple);
    }
    Ok(rec)
}

fn tuple(a: &Nla<'_>) -> Result<Tuple, DecodeError> {
    let mut t = Tuple::default();
    let mut it = a.nested();
    for part in it.by_ref() {
        match part.kind {
            CTA_TUPLE_IP => {
                for ip in part.nested() {
                    match ip.kind {
                        CTA_IP_V4_SRC => t.src = v4(ip.value)?,
                        CTA_IP_V4_DST => t.dst = v4(ip.value)?,
                        CTA_IP_V6_SRC => t.src = v6(ip.value)?,
                        CTA_IP_V6_DST => t.dst = v6(ip.value)?,
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                let mut icmp = (0u16, 0u8, 0u8);
                let mut has_icmp = false;
                for p in part.nested() {
                    match p.kind {
                        CTA_PROTO_NUM => t.proto = p.u8().unwrap_or(0),
                        CTA_PROTO_SRC_PORT => t.sport = p.be16().unwrap_or(0),
                        CTA_PROTO_DST_PORT => t.dport = p.be16().unwrap_or(0),
                        CTA_PROTO_ICMP_ID | CTA_PROTO_ICMPV6_ID => {
                            icmp.0 = p.be16().unwrap_or(0);
                            has_icmp = true;
                        }
                        CTA_PROTO_ICMP_TYPE | CTA_PROTO_ICMPV6_TYPE => {
                            icmp.1 = p.u8().unwrap_or(0);
                            has_icmp = true;
                        }
                        CTA_PROTO_ICMP_CODE | CTA_PROTO_ICMPV6_CODE => {
                            icmp.2 = p.u8().unwrap_or(0);
                            has_icmp = true;
                        }
                        _ => {}
                    }
                }
                if has_icmp {
                    t.icmp = Some(icmp);
                }
            }
            CTA_TUPLE_ZONE => t.zone = part.be16().unwrap_or(0),
            _ => {}
        }
    }
    if it.malformed() {
        return Err(DecodeError::Malformed);
    }
    Ok(t)
}

fn v4(b: &[u8]) -> Result<IpAddr, DecodeError> {
    let o: [u8; 4] = b
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError::Malformed)?;
    Ok(IpAddr::V4(Ipv4Addr::from(o)))
}

fn v6(b: &[u8]) -> Result<IpAddr, DecodeError> {
    let o: [u8; 16] = b
        .get(..16)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError::Malformed)?;
    Ok(IpAddr::V6(Ipv6Addr::from(o)))
}

fn counters(a: &Nla<'_>) -> Option<(u64, u64)> {
    let (mut packets, mut bytes) = (None, None);
    for c in a.nested() {
        match c.kind {
            CTA_COUNTERS_PACKETS => packets = c.be64(),
            CTA_COUNTERS_BYTES => bytes = c.be64(),
            CTA_COUNTERS32_PACKETS => packets = c.be32().map(u64::from),
            CTA_COUNTERS32_BYTES => bytes = c.be32().map(u64::from),
            _ => {}
        }
    }
    Some((packets?, bytes.unwrap_or(0)))
}

fn tuple_pb(t: &Tuple) -> pb::ConntrackTuple {
    pb::ConntrackTuple {
        source: Some(names::ip_compact(t.src)),
        destination: Some(names::ip_compact(t.dst)),
        protocol: t.proto as u32,
        protocol_name: names::ip_protocol(t.proto),
        source_port: t.sport as u32,
        destination_port: t.dport as u32,
        has_icmp: t.icmp.is_some(),
        icmp_id: t.icmp.map_or(0, |i| i.0 as u32),
        icmp_type: t.icmp.map_or(0, |i| i.1 as u32),
        icmp_code: t.icmp.map_or(0, |i| i.2 as u32),
        zone: t.zone as u32,
    }
}

impl ConntrackRecord {
    /// The wire form. `now_ns` (CLOCK_REALTIME) gives the age when timestamps are on.
    pub fn to_pb(&self, now_ns: Option<u64>) -> pb::ConntrackEntry {
        pb::ConntrackEntry {
            id: self.id,
            family: names::family(self.family) as i32,
            original: Some(tuple_pb(&self.orig)),
            reply: Some(tuple_pb(&self.reply)),
            tcp_state: self.tcp_state.map_or(0, |s| (s as i32 + 1).min(10)),
            status_bits: self.status,
            timeout_seconds: self.timeout,
            mark: self.mark,
            zone: self.zone as u32,
            original_counters: self
                .counters_orig
                .map(|(packets, bytes)| pb::ConntrackCounters { packets, bytes }),
            reply_counters: self
                .counters_reply
                .map(|(packets, bytes)| pb::ConntrackCounters { packets, bytes }),
            src_nat: self.status & IPS_SRC_NAT != 0,
            dst_nat: self.status & IPS_DST_NAT != 0,
            use_count: self.use_count as u64,
            age_seconds: match (self.start_ns, now_ns) {
                (Some(start), Some(now)) if now > start => (now - start) / 1_000_000_000,
                _ => 0,
            },
            labels_hex: self
                .labels
                .map(|l| l.iter().map(|b| format!("{b:02x}")).collect())
                .unwrap_or_default(),
        }
    }
}

/// Test support: builds ctnetlink payloads the way the kernel lays them out.
#[cfg(any(test, feature = "test-support"))]
pub mod build {
    use super::*;
    pub use crate::netlink::nla::build::{nested, nla};

    /// A TCP/UDP tuple.
    pub fn tuple(
        kind: u16,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        sport: u16,
        dport: u16,
    ) -> Vec<u8> {
        nested(
            kind,
            &[
                nested(
                    CTA_TUPLE_IP,
                    &[
                        nla(CTA_IP_V4_SRC, &src.octets()),
                        nla(CTA_IP_V4_DST, &dst.octets()),
                    ],
                ),
                nested(
                    CTA_TUPLE_PROTO,
                    &[
                        nla(CTA_PROTO_NUM, &[proto]),
                        nla(CTA_PROTO_SRC_PORT, &sport.to_be_bytes()),
                        nla(CTA_PROTO_DST_PORT, &dport.to_be_bytes()),
                    ],
                ),
            ],
        )
    }

    /// A full TCP entry payload (nfgenmsg + attributes) with counters.
    pub fn tcp_entry(
        id: u32,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        sport: u16,
        dport: u16,
        status: u32,
    ) -> Vec<u8> {
        let mut out = vec![2u8, 0, 0, 0];
        out.extend(tuple(CTA_TUPLE_ORIG, src, dst, 6, sport, dport));
        out.extend(tuple(CTA_TUPLE_REPLY, dst, src, 6, dport, sport));
        out.extend(nla(CTA_STATUS, &status.to_be_bytes()));
        out.extend(nla(CTA_TIMEOUT, &431999u32.to_be_bytes()));
        out.extend(nla(CTA_MARK, &0u32.to_be_bytes()));
        out.extend(nested(
            CTA_COUNTERS_ORIG,
            &[
                nla(CTA_COUNTERS_PACKETS, &5u64.to_be_bytes()),
                nla(CTA_COUNTERS_BYTES, &300u64.to_be_bytes()),
            ],
        ));
        out.extend(nested(
            CTA_COUNTERS_REPLY,
            &[
                nla(CTA_COUNTERS_PACKETS, &4u64.to_be_bytes()),
                nla(CTA_COUNTERS_BYTES, &250u64.to_be_bytes()),
            ],
        ));
        out.extend(nla(CTA_ZONE, &0u16.to_be_bytes()));
        out.extend(nla(CTA_USE, &1u32.to_be_bytes()));
        out.extend(nla(CTA_ID, &id.to_be_bytes()));
        out.extend(nested(
            CTA_PROTOINFO,
            &[nested(
                CTA_PROTOINFO_TCP,
                &[nla(CTA_PROTOINFO_TCP_STATE, &[3])],
            )],
        ));
        out
    }

    /// An ICMP echo entry.
    pub fn icmp_entry(id: u32, src: Ipv4Addr, dst: Ipv4Addr, echo_id: u16) -> Vec<u8> {
        let icmp = |kind: u16, s: Ipv4Addr, d: Ipv4Addr, ty: u8| {
            nested(
                kind,
                &[
                    nested(
                        CTA_TUPLE_IP,
                        &[
                            nla(CTA_IP_V4_SRC, &s.octets()),
                            nla(CTA_IP_V4_DST, &d.octets()),
                        ],
                    ),
                    nested(
                        CTA_TUPLE_PROTO,
                        &[
                            nla(CTA_PROTO_NUM, &[1]),
                            nla(CTA_PROTO_ICMP_ID, &echo_id.to_be_bytes()),
                            nla(CTA_PROTO_ICMP_TYPE, &[ty]),
                            nla(CTA_PROTO_ICMP_CODE, &[0]),
                        ],
                    ),
                ],
            )
        };
        let mut out = vec![2u8, 0, 0, 0];
        out.extend(icmp(CTA_TUPLE_ORIG, src, dst, 8));
        out.extend(icmp(CTA_TUPLE_REPLY, dst, src, 0));
        out.extend(nla(CTA_STATUS, &(IPS_SEEN_REPLY | 8).to_be_bytes()));
        out.extend(nla(CTA_TIMEOUT, &29u32.to_be_bytes()));
        out.extend(nla(CTA_ID, &id.to_be_bytes()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    #[test]
    fn decodes_tcp_entry_with_counters_behind_nested_flag() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let rec = decode(&tcp_entry(
            77,
            a,
            b,
            40000,
            80,
            IPS_SEEN_REPLY | IPS_ASSURED | IPS_DST_NAT,
        ))
        .unwrap();
        assert_eq!(rec.orig.src, IpAddr::V4(a));
        assert_eq!(rec.orig.dst, IpAddr::V4(b));
        assert_eq!(
            (rec.orig.sport, rec.orig.dport, rec.orig.proto),
            (40000, 80, 6)
        );
        assert_eq!((rec.reply.sport, rec.reply.dport), (80, 40000));
        assert_eq!(
            rec.counters_orig,
            Some((5, 300)),
            "counters are nested: the flag bit must be masked"
        );
        assert_eq!(rec.counters_reply, Some((4, 250)));
        assert_eq!(rec.tcp_state, Some(3));
        assert_eq!(rec.id, 77);
        let pb = rec.to_pb(None);
        assert_eq!(pb.tcp_state, pb::ConntrackState::Established as i32);
        assert!(pb.dst_nat && !pb.src_nat);
        assert_eq!(
            status_names(pb.status_bits),
            ["SEEN_REPLY", "ASSURED", "DST_NAT"]
        );
        assert!(
            pb.original.unwrap().source.unwrap().text.is_empty(),
            "bulk answers carry octets only"
        );
    }

    #[test]
    fn decodes_icmp_id_type_code() {
        let rec = decode(&icmp_entry(
            5,
            Ipv4Addr::new(10, 1, 0, 1),
            Ipv4Addr::new(10, 1, 0, 2),
            4242,
        ))
        .unwrap();
        assert_eq!(rec.orig.icmp, Some((4242, 8, 0)));
        assert_eq!(rec.reply.icmp, Some((4242, 0, 0)));
        assert_eq!(rec.counters_orig, None);
    }

    #[test]
    fn rejects_truncated_entries() {
        let full = tcp_entry(1, Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1, 2, 0);
        assert_eq!(decode(&full[..2]), Err(DecodeError::Short));
        assert!(decode(&full[..full.len() - 3]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_entries(pos in 0usize..200, byte in proptest::num::u8::ANY) {
            let mut e = tcp_entry(1, Ipv4Addr::new(1,2,3,4), Ipv4Addr::new(5,6,7,8), 1000, 443, 6);
            let i = pos % e.len();
            e[i] = byte;
            let _ = decode(&e);
        }
    }
}
