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
}

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
/// matches of a new dump, in hash-bucket order, which is stable while the
/// table is not resized; entries created or destroyed between pages can
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
