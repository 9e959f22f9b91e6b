//! Which entries a `ListConntrack` call wants, and where a page starts.

use std::net::IpAddr;

use base64::Engine;
use ipnet::IpNet;

use crate::conntrack::decode::{
    ConntrackRecord, IPS_ASSURED, IPS_SEEN_REPLY, TCP_STATE_NAMES, Tuple, status_names,
};

/// A parsed, validated filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConntrackFilter {
    /// Address or CIDR matched on source or destination of either tuple.
    pub net: Option<IpNet>,
    /// Layer-4 protocol number.
    pub protocol: Option<u8>,
    /// Port matched on either side of either tuple.
    pub port: Option<u16>,
    /// State condition.
    pub state: Option<StateFilter>,
    /// 4 or 6 for one family only.
    pub ip_version: Option<u8>,
    /// Connection mark: `mark & mask == value` (value already masked).
    pub mark: Option<Mark>,
}

/// A connection-mark condition, as `conntrack -L --mark VALUE/MASK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Bits wanted (within `mask`).
    pub value: u32,
    /// Bits tested.
    pub mask: u32,
}

impl Mark {
    /// Parses `VALUE` or `VALUE/MASK`, each decimal or `0x` hex. A value
    /// with bits outside its mask could never match, so it is refused.
    pub fn parse(s: &str) -> Option<Self> {
        fn number(s: &str) -> Option<u32> {
            let s = s.trim();
            match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => s.parse().ok(),
            }
        }
        let (value, mask) = match s.split_once('/') {
            Some((v, m)) => (number(v)?, number(m)?),
            None => (number(s)?, u32::MAX),
        };
        (value & !mask == 0).then_some(Mark { value, mask })
    }
}

/// `AF_UNSPEC`, `AF_INET`, `AF_INET6` as the `nfgenmsg` family of a dump.
pub const FAMILY_ANY: u8 = 0;
const FAMILY_V4: u8 = 2;
const FAMILY_V6: u8 = 10;

/// A state condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// TCP state number (`TCP_CONNTRACK_*`).
    Tcp(u8),
    /// Status bit that must be set.
    StatusSet(u32),
    /// `UNREPLIED`: SEEN_REPLY not set.
    Unreplied,
}

impl StateFilter {
    /// Parses a TCP state name, a status flag name or `UNREPLIED`.
    pub fn parse(s: &str) -> Option<Self> {
        let upper = s.trim().to_ascii_uppercase();
        if let Some(i) = TCP_STATE_NAMES.iter().position(|n| *n == upper) {
            return Some(StateFilter::Tcp(i as u8));
        }
        if upper == "UNREPLIED" {
            return Some(StateFilter::Unreplied);
        }
        if upper == "ASSURED" {
            return Some(StateFilter::StatusSet(IPS_ASSURED));
        }
        (0..16)
            .find(|bit| status_names(1 << bit).first().is_some_and(|n| *n == upper))
            .map(|bit| StateFilter::StatusSet(1 << bit))
    }
}

fn tuple_has_addr(t: &Tuple, net: &IpNet) -> bool {
    net.contains(&t.src) || net.contains(&t.dst)
}

fn tuple_has_port(t: &Tuple, port: u16) -> bool {
    t.icmp.is_none() && (t.sport == port || t.dport == port)
}

impl ConntrackFilter {
    /// Whether there is no condition at all (every entry matches).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The layer-4 protocol every match has: the protocol condition, or TCP
    /// when a TCP state is asked for. The kernel can test it itself.
    pub fn kernel_protocol(&self) -> Option<u8> {
        self.protocol.or(match self.state {
            Some(StateFilter::Tcp(_)) => Some(6),
            _ => None,
        })
    }

    /// Status bits `(value, mask)` every match has, for the kernel's own
    /// status test (Linux 6.1 and later; older kernels ignore it).
    pub fn kernel_status(&self) -> Option<(u32, u32)> {
        match self.state {
            Some(StateFilter::StatusSet(bit)) => Some((bit, bit)),
            Some(StateFilter::Unreplied) => Some((0, IPS_SEEN_REPLY)),
            _ => None,
        }
    }

    /// The families to dump, one after the other. The kernel tests a
    /// protocol only within one family, so a protocol condition without an
    /// IP version reads IPv4 and then IPv6; otherwise one dump. The list
    /// depends on the filter alone, so every page of a listing walks the
    /// same order.
    pub fn dump_families(&self) -> &'static [u8] {
        match self.ip_version {
            Some(4) => &[FAMILY_V4],
            Some(6) => &[FAMILY_V6],
            _ if self.kernel_protocol().is_some() => &[FAMILY_V4, FAMILY_V6],
            _ => &[FAMILY_ANY],
        }
    }

    /// Whether `rec` passes every condition.
    pub fn matches(&self, rec: &ConntrackRecord) -> bool {
        if let Some(v) = self.ip_version {
            let is_v4 = matches!(rec.orig.src, IpAddr::V4(_));
            if (v == 4) != is_v4 {
                return false;
            }
        }
        if let Some(p) = self.protocol
            && rec.orig.proto != p
        {
            return false;
        }
        if let Some(net) = &self.net
            && !tuple_has_addr(&rec.orig, net)
            && !tuple_has_addr(&rec.reply, net)
        {
            return false;
        }
        if let Some(port) = self.port
            && !tuple_has_port(&rec.orig, port)
            && !tuple_has_port(&rec.reply, port)
        {
            return false;
        }
        if let Some(m) = self.mark
            && rec.mark & m.mask != m.value
        {
            return false;
        }
        match self.state {
            None => true,
            Some(StateFilter::Tcp(s)) => rec.tcp_state == Some(s),
            Some(StateFilter::StatusSet(bit)) => rec.status & bit != 0,
            Some(StateFilter::Unreplied) => rec.status & IPS_SEEN_REPLY == 0,
        }
    }
}

/// Where the next page starts: the number of matching entries already
/// returned, the id of the last one, and the parked dump that stands right
/// after it (0 when none).
///
/// A parked dump (see [`crate::conntrack::dump::Parking`]) lets the next page
/// continue the kernel's walk where the last one stopped. When it is gone
/// (expired, evicted, agent restarted) the page is found by skipping `skip`
/// matches of a new dump, in hash-bucket order (per family, in the order of
/// [`ConntrackFilter::dump_families`]), which is stable while the table is
/// not resized; entries created or destroyed between pages can
/// shift such a page by that many entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageToken {
    /// Matching entries to skip.
    pub skip: u64,
    /// Kernel id of the last entry of the previous page.
    pub last_id: u32,
    /// Parked dump to resume; 0 for none.
    pub cursor: u64,
}

impl PageToken {
    /// Opaque text form.
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "ct2:{}:{}:{}",
            self.skip, self.last_id, self.cursor
        ))
    }

    /// Parses a token made by [`PageToken::encode`] (or by an older agent,
    /// which had no parked dumps).
    pub fn decode(s: &str) -> Option<Self> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim())
            .ok()?;
        let text = std::str::from_utf8(&raw).ok()?;
        let (fields, with_cursor) = match text.strip_prefix("ct2:") {
            Some(rest) => (rest, true),
            None => (text.strip_prefix("ct1:")?, false),
        };
        let mut parts = fields.split(':');
        let skip = parts.next()?.parse().ok()?;
        let last_id = parts.next()?.parse().ok()?;
        let cursor = if with_cursor {
            parts.next()?.parse().ok()?
        } else {
            0
        };
        parts.next().is_none().then_some(PageToken {
            skip,
            last_id,
            cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::decode::{build, decode};
    use std::net::Ipv4Addr;

    fn rec(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, status: u32) -> ConntrackRecord {
        decode(&build::tcp_entry(
            1,
            Ipv4Addr::from(src),
            Ipv4Addr::from(dst),
            sport,
            dport,
            status,
        ))
        .unwrap()
    }

    #[test]
    fn address_matches_either_direction_and_tuple() {
        let r = rec([10, 0, 0, 1], [10, 0, 0, 2], 5555, 80, IPS_SEEN_REPLY);
        let f = |cidr: &str| ConntrackFilter {
            net: Some(cidr.parse().unwrap()),
            ..Default::default()
        };
        assert!(f("10.0.0.1/32").matches(&r));
        assert!(f("10.0.0.2/32").matches(&r));
        assert!(f("10.0.0.0/24").matches(&r));
        assert!(!f("10.0.1.0/24").matches(&r));
        assert!(!f("::1/128").matches(&r));
    }

    #[test]
    fn port_protocol_and_state() {
        let r = rec(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            5555,
            80,
            IPS_SEEN_REPLY | IPS_ASSURED,
        );
        assert!(
            ConntrackFilter {
                port: Some(80),
                ..Default::default()
            }
            .matches(&r)
        );
        assert!(
            ConntrackFilter {
                port: Some(5555),
                ..Default::default()
            }
            .matches(&r)
        );
        assert!(
            !ConntrackFilter {
                port: Some(81),
                ..Default::default()
            }
            .matches(&r)
        );
        assert!(
            ConntrackFilter {
                protocol: Some(6),
                ..Default::default()
            }
            .matches(&r)
        );
        assert!(
            !ConntrackFilter {
                protocol: Some(17),
                ..Default::default()
            }
            .matches(&r)
        );
        let st = |s: &str| ConntrackFilter {
            state: StateFilter::parse(s),
            ..Default::default()
        };
        assert!(st("established").matches(&r));
        assert!(st("ASSURED").matches(&r));
        assert!(!st("UNREPLIED").matches(&r));
        assert!(!st("TIME_WAIT").matches(&r));
        assert_eq!(StateFilter::parse("nonsense"), None);
        assert!(
            !ConntrackFilter {
                ip_version: Some(6),
                ..Default::default()
            }
            .matches(&r)
        );
    }

    #[test]
    fn mark_parse_and_match() {
        assert_eq!(
            Mark::parse("0x4000/0xff00"),
            Some(Mark {
                value: 0x4000,
                mask: 0xff00
            })
        );
        assert_eq!(
            Mark::parse("7"),
            Some(Mark {
                value: 7,
                mask: u32::MAX
            })
        );
        assert_eq!(Mark::parse("0x1/0x2"), None, "value outside its mask");
        assert_eq!(Mark::parse("mark"), None);
        assert_eq!(Mark::parse("0x100000000"), None);
        let mut r = rec([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 0);
        r.mark = 0x4abc;
        let f = |s: &str| ConntrackFilter {
            mark: Mark::parse(s),
            ..Default::default()
        };
        assert!(f("0x4000/0xf000").matches(&r));
        assert!(!f("0x4000/0xffff").matches(&r));
        assert!(f("0x4abc").matches(&r));
    }

    #[test]
    fn what_the_kernel_is_asked_to_test() {
        let st = |s: &str| ConntrackFilter {
            state: StateFilter::parse(s),
            ..Default::default()
        };
        assert_eq!(st("TIME_WAIT").kernel_protocol(), Some(6));
        assert_eq!(st("TIME_WAIT").kernel_status(), None);
        assert_eq!(st("UNREPLIED").kernel_status(), Some((0, IPS_SEEN_REPLY)));
        assert_eq!(
            st("ASSURED").kernel_status(),
            Some((IPS_ASSURED, IPS_ASSURED))
        );
        assert_eq!(ConntrackFilter::default().dump_families(), &[0]);
        let udp = ConntrackFilter {
            protocol: Some(17),
            ..Default::default()
        };
        assert_eq!(udp.dump_families(), &[2, 10]);
        let udp6 = ConntrackFilter {
            ip_version: Some(6),
            ..udp
        };
        assert_eq!(udp6.dump_families(), &[10]);
    }

    #[test]
    fn token_round_trip_and_rejects_garbage() {
        let t = PageToken {
            skip: 1234,
            last_id: 99,
            cursor: 77,
        };
        assert_eq!(PageToken::decode(&t.encode()), Some(t));
        let old = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("ct1:5:6");
        assert_eq!(
            PageToken::decode(&old),
            Some(PageToken {
                skip: 5,
                last_id: 6,
                cursor: 0
            })
        );
        assert_eq!(PageToken::decode("not a token"), None);
        assert_eq!(PageToken::decode(""), None);
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("ct1:1:2:3");
        assert_eq!(PageToken::decode(&forged), None);
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("ct2:1:2:3:4");
        assert_eq!(PageToken::decode(&forged), None);
    }
}
