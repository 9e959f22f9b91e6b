//! What the bytes of an nf_tables comparison mean, and how `nft` prints
//! them: header fields by protocol and offset, meta and ct keys, and the
//! value formats (addresses, ports, protocol names, ICMP types, flag sets,
//! marks, interface names).

use std::fmt::Write;

use crate::firewall::xt::fmt::{ipv4, ipv6, proto_name};

/// How a value prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// IPv4 address (network order).
    Ipv4,
    /// IPv6 address.
    Ipv6,
    /// A port (network order).
    Port,
    /// An IP protocol number (name when known).
    Proto,
    /// NFPROTO of `meta nfproto` / `ct l3proto`.
    NfProto,
    /// An Ethernet type (network order).
    EtherType,
    /// A MAC address.
    Ether,
    /// ICMP type.
    IcmpType,
    /// ICMPv6 type.
    Icmp6Type,
    /// TCP flags.
    TcpFlags,
    /// A mark (host order), `0x%08x`.
    Mark,
    /// An interface name (string).
    IfName,
    /// An interface index (host order), printed as its name.
    IfIndex,
    /// Packet type.
    PktType,
    /// Conntrack state bits.
    CtState,
    /// Conntrack status bits.
    CtStatus,
    /// Conntrack direction.
    CtDir,
    /// An integer in host order.
    Int,
    /// An integer in network order.
    BeInt,
    /// A hex integer in network order.
    BeHex,
    /// A route type (`fib … type`).
    AddrType,
}

/// A payload field: protocol name, field name, type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// "ip", "tcp", … ("th" for a transport header of unknown protocol).
    pub proto: &'static str,
    /// "saddr", "dport", …
    pub name: &'static str,
    /// Type of the value.
    pub ty: Ty,
    /// Length of the whole field in bytes.
    pub len: u32,
}

/// The network header's protocol in this context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
    /// Not known (inet without a dependency): fields cannot be named.
    Unknown,
}

/// The network-header field at `offset` (byte-aligned fields only).
pub fn network_field(net: Net, offset: u32) -> Option<Field> {
    let f = |name, ty, len| Field {
        proto: if net == Net::V6 { "ip6" } else { "ip" },
        name,
        ty,
        len,
    };
    Some(match (net, offset) {
        (Net::V4, 2) => f("length", Ty::BeInt, 2),
        (Net::V4, 4) => f("id", Ty::BeInt, 2),
        (Net::V4, 6) => f("frag-off", Ty::BeHex, 2),
        (Net::V4, 8) => f("ttl", Ty::Int, 1),
        (Net::V4, 9) => f("protocol", Ty::Proto, 1),
        (Net::V4, 10) => f("checksum", Ty::BeInt, 2),
        (Net::V4, 12) => f("saddr", Ty::Ipv4, 4),
        (Net::V4, 16) => f("daddr", Ty::Ipv4, 4),
        (Net::V6, 4) => f("length", Ty::BeInt, 2),
        (Net::V6, 6) => f("nexthdr", Ty::Proto, 1),
        (Net::V6, 7) => f("hoplimit", Ty::Int, 1),
        (Net::V6, 8) => f("saddr", Ty::Ipv6, 16),
        (Net::V6, 24) => f("daddr", Ty::Ipv6, 16),
        _ => return None,
    })
}

/// The transport-header field of protocol `proto` at `offset`; for an
/// unknown protocol, `th sport`/`th dport`.
pub fn transport_field(proto: Option<u8>, offset: u32) -> Option<Field> {
    let f = |p, name, ty, len| Field {
        proto: p,
        name,
        ty,
        len,
    };
    Some(match (proto, offset) {
        (Some(6), 0) => f("tcp", "sport", Ty::Port, 2),
        (Some(6), 2) => f("tcp", "dport", Ty::Port, 2),
        (Some(6), 4) => f("tcp", "sequence", Ty::BeInt, 4),
        (Some(6), 8) => f("tcp", "ackseq", Ty::BeInt, 4),
        (Some(6), 13) => f("tcp", "flags", Ty::TcpFlags, 1),
        (Some(6), 14) => f("tcp", "window", Ty::BeInt, 2),
        (Some(6), 16) => f("tcp", "checksum", Ty::BeInt, 2),
        (Some(6), 18) => f("tcp", "urgptr", Ty::BeInt, 2),
        (Some(17), 0) => f("udp", "sport", Ty::Port, 2),
        (Some(17), 2) => f("udp", "dport", Ty::Port, 2),
        (Some(17), 4) => f("udp", "length", Ty::BeInt, 2),
        (Some(17), 6) => f("udp", "checksum", Ty::BeInt, 2),
        (Some(136), 0) => f("udplite", "sport", Ty::Port, 2),
        (Some(136), 2) => f("udplite", "dport", Ty::Port, 2),
        (Some(132), 0) => f("sctp", "sport", Ty::Port, 2),
        (Some(132), 2) => f("sctp", "dport", Ty::Port, 2),
        (Some(33), 0) => f("dccp", "sport", Ty::Port, 2),
        (Some(33), 2) => f("dccp", "dport", Ty::Port, 2),
        (Some(1), 0) => f("icmp", "type", Ty::IcmpType, 1),
        (Some(1), 1) => f("icmp", "code", Ty::Int, 1),
        (Some(1), 2) => f("icmp", "checksum", Ty::BeInt, 2),
        (Some(1), 4) => f("icmp", "id", Ty::BeInt, 2),
        (Some(1), 6) => f("icmp", "sequence", Ty::BeInt, 2),
        (Some(58), 0) => f("icmpv6", "type", Ty::Icmp6Type, 1),
        (Some(58), 1) => f("icmpv6", "code", Ty::Int, 1),
        (Some(58), 2) => f("icmpv6", "checksum", Ty::BeInt, 2),
        (Some(58), 4) => f("icmpv6", "id", Ty::BeInt, 2),
        (Some(58), 6) => f("icmpv6", "sequence", Ty::BeInt, 2),
        (None, 0) => f("th", "sport", Ty::Port, 2),
        (None, 2) => f("th", "dport", Ty::Port, 2),
        _ => return None,
    })
}

/// The link-layer field at `offset` (Ethernet).
pub fn link_field(offset: u32) -> Option<Field> {
    let f = |name, ty, len| Field {
        proto: "ether",
        name,
        ty,
        len,
    };
    Some(match offset {
        0 => f("daddr", Ty::Ether, 6),
        6 => f("saddr", Ty::Ether, 6),
        12 => f("type", Ty::EtherType, 2),
        _ => return None,
    })
}

/// `meta` keys: name and type.
pub fn meta_key(key: u32) -> Option<(&'static str, Ty)> {
    Some(match key {
        0 => ("length", Ty::Int),
        1 => ("protocol", Ty::EtherType),
        2 => ("priority", Ty::Int),
        3 => ("mark", Ty::Mark),
        4 => ("iif", Ty::IfIndex),
        5 => ("oif", Ty::IfIndex),
        6 => ("iifname", Ty::IfName),
        7 => ("oifname", Ty::IfName),
        8 => ("iiftype", Ty::Int),
        9 => ("oiftype", Ty::Int),
        10 => ("skuid", Ty::Int),
        11 => ("skgid", Ty::Int),
        12 => ("nftrace", Ty::Int),
        13 => ("rtclassid", Ty::Int),
        14 => ("secmark", Ty::Int),
        15 => ("nfproto", Ty::NfProto),
        16 => ("l4proto", Ty::Proto),
        17 => ("ibrname", Ty::IfName),
        18 => ("obrname", Ty::IfName),
        19 => ("pkttype", Ty::PktType),
        20 => ("cpu", Ty::Int),
        21 => ("iifgroup", Ty::Int),
        22 => ("oifgroup", Ty::Int),
        23 => ("cgroup", Ty::Int),
        24 => ("random", Ty::Int),
        26 => ("iifkind", Ty::IfName),
        27 => ("oifkind", Ty::IfName),
        _ => return None,
    })
}

/// `ct` keys: name and type (addresses depend on the family).
pub fn ct_key(key: u32, v6: bool) -> Option<(&'static str, Ty)> {
    Some(match key {
        0 => ("state", Ty::CtState),
        1 => ("direction", Ty::CtDir),
        2 => ("status", Ty::CtStatus),
        3 => ("mark", Ty::Mark),
        5 => ("expiration", Ty::Int),
        6 => ("helper", Ty::IfName),
        7 => ("l3proto", Ty::NfProto),
        8 => ("saddr", if v6 { Ty::Ipv6 } else { Ty::Ipv4 }),
        9 => ("daddr", if v6 { Ty::Ipv6 } else { Ty::Ipv4 }),
        10 => ("protocol", Ty::Proto),
        11 => ("proto-src", Ty::Port),
        12 => ("proto-dst", Ty::Port),
        14 => ("packets", Ty::Int),
        15 => ("bytes", Ty::Int),
        16 => ("avgpkt", Ty::Int),
        17 => ("zone", Ty::Int),
        19 => ("ip saddr", Ty::Ipv4),
        20 => ("ip daddr", Ty::Ipv4),
        21 => ("ip6 saddr", Ty::Ipv6),
        22 => ("ip6 daddr", Ty::Ipv6),
        23 => ("id", Ty::Int),
        _ => return None,
    })
}

const CT_STATE: [(u32, &str); 5] = [
    (1, "invalid"),
    (2, "established"),
    (4, "related"),
    (8, "new"),
    (64, "untracked"),
];

const CT_STATUS: [(u32, &str); 7] = [
    (1, "expected"),
    (2, "seen-reply"),
    (4, "assured"),
    (8, "confirmed"),
    (16, "snat"),
    (32, "dnat"),
    (512, "dying"),
];

const TCP_FLAGS: [(u32, &str); 8] = [
    (0x01, "fin"),
    (0x02, "syn"),
    (0x04, "rst"),
    (0x08, "psh"),
    (0x10, "ack"),
    (0x20, "urg"),
    (0x40, "ecn"),
    (0x80, "cwr"),
];

fn icmp_type(t: u8) -> Option<&'static str> {
    Some(match t {
        0 => "echo-reply",
        3 => "destination-unreachable",
        4 => "source-quench",
        5 => "redirect",
        8 => "echo-request",
        9 => "router-advertisement",
        10 => "router-solicitation",
        11 => "time-exceeded",
        12 => "parameter-problem",
        13 => "timestamp-request",
        14 => "timestamp-reply",
        15 => "info-request",
        16 => "info-reply",
        17 => "address-mask-request",
        18 => "address-mask-reply",
        _ => return None,
    })
}

fn icmp6_type(t: u8) -> Option<&'static str> {
    Some(match t {
        1 => "destination-unreachable",
        2 => "packet-too-big",
        3 => "time-exceeded",
        4 => "parameter-problem",
        128 => "echo-request",
        129 => "echo-reply",
        130 => "mld-listener-query",
        131 => "mld-listener-report",
        132 => "mld-listener-done",
        133 => "nd-router-solicit",
        134 => "nd-router-advert",
        135 => "nd-neighbor-solicit",
        136 => "nd-neighbor-advert",
        137 => "nd-redirect",
        138 => "router-renumbering",
        141 => "ind-neighbor-solicit",
        142 => "ind-neighbor-advert",
        143 => "mld2-listener-report",
        _ => return None,
    })
}

fn le(v: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = v.len().min(8);
    b[..n].copy_from_slice(&v[..n]);
    u64::from_le_bytes(b)
}

fn be(v: &[u8]) -> u64 {
    v.iter()
        .take(8)
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// The bits of `v` as names joined by `,` (unknown bits in hex).
fn bits(out: &mut String, v: u32, names: &[(u32, &str)]) {
    let mut sep = "";
    let mut rest = v;
    for (bit, n) in names {
        if v & bit != 0 {
            out.push_str(sep);
            out.push_str(n);
            sep = ",";
            rest &= !bit;
        }
    }
    if rest != 0 || v == 0 {
        let _ = write!(out, "{sep}0x{rest:x}");
    }
}

/// Whether the type is a set of flags (printed `a,b`, matched with `&`).
pub fn is_bitmask(ty: Ty) -> bool {
    matches!(ty, Ty::CtState | Ty::CtStatus | Ty::TcpFlags)
}

/// Prints a value of type `ty` (`nft`'s default output).
pub fn value(out: &mut String, ty: Ty, v: &[u8]) {
    match ty {
        Ty::Ipv4 => ipv4(out, &pad::<4>(v)),
        Ty::Ipv6 => ipv6(out, &pad::<16>(v)),
        Ty::Port | Ty::BeInt => {
            let _ = write!(out, "{}", be(v));
        }
        Ty::BeHex => {
            let _ = write!(out, "0x{:04x}", be(v));
        }
        Ty::Proto => {
            let p = v.first().copied().unwrap_or(0);
            match proto_name(u16::from(p)) {
                Some(n) if p != 58 => out.push_str(n),
                _ if p == 58 => out.push_str("ipv6-icmp"),
                _ => {
                    let _ = write!(out, "{p}");
                }
            }
        }
        Ty::NfProto => {
            let p = v.first().copied().unwrap_or(0);
            let name = match p {
                2 => Some("ipv4"),
                10 => Some("ipv6"),
                _ => None,
            };
            name_or_number(out, name, p);
        }
        Ty::EtherType => {
            let x = be(v);
            let name = match x {
                0x0800 => Some("ip"),
                0x86dd => Some("ip6"),
                0x0806 => Some("arp"),
                0x8100 => Some("8021q"),
                0x88a8 => Some("8021ad"),
                _ => None,
            };
            name_or_number(out, name, format_args!("0x{x:04x}"));
        }
        Ty::Ether => {
            let parts: Vec<String> = v.iter().take(6).map(|b| format!("{b:02x}")).collect();
            out.push_str(&parts.join(":"));
        }
        Ty::IcmpType => {
            let t = v.first().copied().unwrap_or(0);
            name_or_number(out, icmp_type(t), t);
        }
        Ty::Icmp6Type => {
            let t = v.first().copied().unwrap_or(0);
            name_or_number(out, icmp6_type(t), t);
        }
        Ty::TcpFlags => bits(out, u32::from(v.first().copied().unwrap_or(0)), &TCP_FLAGS),
        Ty::CtState => bits(out, le(v) as u32, &CT_STATE),
        Ty::CtStatus => bits(out, le(v) as u32, &CT_STATUS),
        Ty::CtDir => {
            let d = v.first().copied().unwrap_or(0);
            name_or_number(out, ["original", "reply"].get(usize::from(d)).copied(), d);
        }
        Ty::Mark => {
            let _ = write!(out, "0x{:08x}", le(v) as u32);
        }
        Ty::IfName => {
            out.push('"');
            let end = v.iter().position(|&b| b == 0);
            let name = &v[..end.unwrap_or(v.len())];
            out.push_str(&String::from_utf8_lossy(name));
            if end.is_none() {
                // A prefix match: nft writes it as a wildcard.
                out.push('*');
            }
            out.push('"');
        }
        Ty::IfIndex => {
            let idx = le(v) as u32;
            match crate::firewall::iptables_nft::index_name(idx) {
                Some(n) => {
                    let _ = write!(out, "\"{n}\"");
                }
                None => {
                    let _ = write!(out, "{idx}");
                }
            }
        }
        Ty::PktType => {
            let p = v.first().copied().unwrap_or(0);
            let names = ["host", "broadcast", "multicast", "other"];
            name_or_number(out, names.get(usize::from(p)).copied(), p);
        }
        Ty::Int => {
            let _ = write!(out, "{}", le(v));
        }
        Ty::AddrType => {
            let t = le(v) as usize;
            let names = [
                "unspec",
                "unicast",
                "local",
                "broadcast",
                "anycast",
                "multicast",
                "blackhole",
                "unreachable",
                "prohibit",
                "throw",
                "nat",
                "xresolve",
            ];
            name_or_number(out, names.get(t).copied(), t);
        }
    }
}

/// `name` when there is one, else `n` as nft prints an unnamed value.
fn name_or_number(out: &mut String, name: Option<&str>, n: impl std::fmt::Display) {
    match name {
        Some(name) => out.push_str(name),
        None => {
            let _ = write!(out, "{n}");
        }
    }
}

fn pad<const N: usize>(v: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    let n = v.len().min(N);
    a[..n].copy_from_slice(&v[..n]);
    a
}

/// The nft name of a set key or data type id (`NFTA_SET_KEY_TYPE`), and the
/// type its values print as.
pub fn set_type(id: u32) -> (&'static str, Ty) {
    match id {
        3 => ("verdict", Ty::Int),
        5 => ("ether_type", Ty::EtherType),
        6 => ("arp_op", Ty::BeInt),
        7 => ("ipv4_addr", Ty::Ipv4),
        8 => ("ipv6_addr", Ty::Ipv6),
        9 => ("ether_addr", Ty::Ether),
        12 => ("inet_proto", Ty::Proto),
        13 => ("inet_service", Ty::Port),
        14 => ("icmp_type", Ty::IcmpType),
        15 => ("tcp_flag", Ty::TcpFlags),
        16 => ("dccp_pkttype", Ty::Int),
        17 => ("mh_type", Ty::Int),
        18 => ("time", Ty::Int),
        19 => ("mark", Ty::Mark),
        20 => ("iface_index", Ty::IfIndex),
        21 => ("iface_type", Ty::Int),
        22 => ("realm", Ty::Int),
        23 => ("classid", Ty::Int),
        24 => ("uid", Ty::Int),
        25 => ("gid", Ty::Int),
        26 => ("ct_state", Ty::CtState),
        27 => ("ct_dir", Ty::CtDir),
        28 => ("ct_status", Ty::CtStatus),
        29 => ("icmpv6_type", Ty::Icmp6Type),
        31 => ("pkt_type", Ty::PktType),
        41 => ("ifname", Ty::IfName),
        42 => ("igmp_type", Ty::Int),
        44 => ("ct_label", Ty::Int),
        45 => ("ecn", Ty::Int),
        46 => ("dscp", Ty::Int),
        47 => ("nf_proto", Ty::NfProto),
        _ => ("integer", Ty::Int),
    }
}

/// A set key's parts (concatenations pack 6-bit type ids, first part
/// highest) with each part's byte length.
pub fn set_key_parts(key_type: u32, key_len: u32, fields: &[u32]) -> Vec<(&'static str, Ty, u32)> {
    let mut ids = Vec::new();
    let mut t = key_type;
    while t != 0 {
        ids.push(t & 0x3f);
        t >>= 6;
    }
    ids.reverse();
    if ids.is_empty() {
        ids.push(0);
    }
    let lens: Vec<u32> = if fields.len() == ids.len() {
        fields.to_vec()
    } else if ids.len() == 1 {
        vec![key_len]
    } else {
        // Without field lengths, each part takes a register (4 bytes) or
        // its address size.
        ids.iter()
            .map(|&id| match id {
                8 => 16,
                9 => 6,
                41 => 16,
                _ => 4,
            })
            .collect()
    };
    ids.iter()
        .zip(lens)
        .map(|(&id, len)| {
            let (name, ty) = set_type(id);
            (name, ty, len)
        })
        .collect()
}
