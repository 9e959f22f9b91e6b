//! Number-to-name tables shared by the collectors, spelled as iproute2 spells
//! them so that answers compare one-to-one with `ip -j`.

use std::net::IpAddr;

use labscope_proto::v1::{AddressFamily, IpAddress};

/// Typed address for the wire: family, octets and canonical text.
pub fn ip(addr: IpAddr) -> IpAddress {
    match addr {
        IpAddr::V4(a) => IpAddress {
            family: AddressFamily::Inet as i32,
            octets: a.octets().to_vec(),
            text: a.to_string(),
        },
        IpAddr::V6(a) => IpAddress {
            family: AddressFamily::Inet6 as i32,
            octets: a.octets().to_vec(),
            text: a.to_string(),
        },
    }
}

/// Typed address without the text form, for bulk answers (conntrack).
pub fn ip_compact(addr: IpAddr) -> IpAddress {
    let (family, octets) = match addr {
        IpAddr::V4(a) => (AddressFamily::Inet, a.octets().to_vec()),
        IpAddr::V6(a) => (AddressFamily::Inet6, a.octets().to_vec()),
    };
    IpAddress {
        family: family as i32,
        octets,
        text: String::new(),
    }
}

/// `AF_*` number to the wire enum.
pub fn family(af: u8) -> AddressFamily {
    match af {
        2 => AddressFamily::Inet,
        10 => AddressFamily::Inet6,
        7 => AddressFamily::Bridge,
        0 => AddressFamily::Unspecified,
        _ => AddressFamily::Other,
    }
}

/// `rt_scopes`: 0 global, 200 site, 253 link, 254 host, 255 nowhere.
pub fn scope(n: u8) -> String {
    match n {
        0 => "global".into(),
        200 => "site".into(),
        253 => "link".into(),
        254 => "host".into(),
        255 => "nowhere".into(),
        n => n.to_string(),
    }
}

/// `rt_tables`: 253 default, 254 main, 255 local.
pub fn table(n: u32) -> String {
    match n {
        0 => "unspec".into(),
        253 => "default".into(),
        254 => "main".into(),
        255 => "local".into(),
        n => n.to_string(),
    }
}

/// `rt_protos`.
pub fn route_protocol(n: u8) -> String {
    match n {
        0 => "unspec",
        1 => "redirect",
        2 => "kernel",
        3 => "boot",
        4 => "static",
        8 => "gated",
        9 => "ra",
        10 => "mrt",
        11 => "zebra",
        12 => "bird",
        13 => "dnrouted",
        14 => "xorp",
        15 => "ntk",
        16 => "dhcp",
        17 => "keepalived",
        42 => "babel",
        99 => "openr",
        186 => "bgp",
        187 => "isis",
        188 => "ospf",
        189 => "rip",
        192 => "eigrp",
        n => return n.to_string(),
    }
    .into()
}

/// `RTN_*` route types.
pub fn route_type(n: u8) -> String {
    match n {
        0 => "none",
        1 => "unicast",
        2 => "local",
        3 => "broadcast",
        4 => "anycast",
        5 => "multicast",
        6 => "blackhole",
        7 => "unreachable",
        8 => "prohibit",
        9 => "throw",
        10 => "nat",
        11 => "xresolve",
        n => return n.to_string(),
    }
    .into()
}

/// `ARPHRD_*` as `ip -j link` prints `link_type`.
pub fn link_type(n: u16) -> String {
    match n {
        1 => "ether",
        24 => "ieee1394",
        32 => "infiniband",
        512 => "ppp",
        768 => "ipip",
        769 => "tunnel6",
        772 => "loopback",
        776 => "sit",
        778 => "gre",
        823 => "ip6gre",
        65534 => "none",
        65535 => "void",
        n => return n.to_string(),
    }
    .into()
}

/// `IFF_*` flags as `ip` prints them: RUNNING is folded into NO-CARRIER.
pub fn link_flags(bits: u32) -> Vec<String> {
    // The order iproute2's print_link_flags() uses, so lists compare as-is.
    const NAMES: [(u32, &str); 18] = [
        (0x8, "LOOPBACK"),
        (0x2, "BROADCAST"),
        (0x10, "POINTOPOINT"),
        (0x1000, "MULTICAST"),
        (0x80, "NOARP"),
        (0x200, "ALLMULTI"),
        (0x100, "PROMISC"),
        (0x400, "MASTER"),
        (0x800, "SLAVE"),
        (0x4, "DEBUG"),
        (0x8000, "DYNAMIC"),
        (0x4000, "AUTOMEDIA"),
        (0x2000, "PORTSEL"),
        (0x20, "NOTRAILERS"),
        (0x1, "UP"),
        (0x10000, "LOWER_UP"),
        (0x20000, "DORMANT"),
        (0x40000, "ECHO"),
    ];
    let mut out = Vec::new();
    if bits & 0x1 != 0 && bits & 0x40 == 0 {
        out.push("NO-CARRIER".to_string());
    }
    out.extend(
        NAMES
            .iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, n)| n.to_string()),
    );
    out
}

/// `NUD_*` neighbour states, several may be set.
pub fn neighbour_states(bits: u16) -> Vec<String> {
    const NAMES: [(u16, &str); 8] = [
        (0x01, "INCOMPLETE"),
        (0x02, "REACHABLE"),
        (0x04, "STALE"),
        (0x08, "DELAY"),
        (0x10, "PROBE"),
        (0x20, "FAILED"),
        (0x40, "NOARP"),
        (0x80, "PERMANENT"),
    ];
    if bits == 0 {
        return vec!["NONE".into()];
    }
    NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// IP protocol numbers for conntrack and firewall answers.
pub fn ip_protocol(n: u8) -> String {
    match n {
        1 => "icmp",
        2 => "igmp",
        6 => "tcp",
        17 => "udp",
        33 => "dccp",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "icmpv6",
        132 => "sctp",
        136 => "udplite",
        n => return n.to_string(),
    }
    .into()
}

/// Inverse of [`ip_protocol`] for filters: name or number.
pub fn ip_protocol_number(name: &str) -> Option<u8> {
    if let Ok(n) = name.parse::<u8>() {
        return Some(n);
    }
    (0..=255u8)
        .find(|n| ip_protocol(*n).eq_ignore_ascii_case(name))
        .or(match name {
            "ipv6-icmp" | "icmp6" => Some(58),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_fold_running_like_iproute2() {
        // UP|BROADCAST|RUNNING|MULTICAST|LOWER_UP
        assert_eq!(
            link_flags(0x1 | 0x2 | 0x40 | 0x1000 | 0x10000),
            ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"]
        );
        // UP without RUNNING: no carrier
        assert_eq!(
            link_flags(0x1 | 0x2 | 0x1000),
            ["NO-CARRIER", "BROADCAST", "MULTICAST", "UP"]
        );
    }

    #[test]
    fn protocol_names_round_trip() {
        assert_eq!(ip_protocol_number("tcp"), Some(6));
        assert_eq!(ip_protocol_number("ICMPv6"), Some(58));
        assert_eq!(ip_protocol_number("17"), Some(17));
        assert_eq!(ip_protocol_number("bogus"), None);
    }
}
