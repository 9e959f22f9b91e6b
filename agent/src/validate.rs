//! Validation of every request field. The agent is a network service: it
//! checks everything itself, whatever the aggregator already checked, and
//! names the offending field in the error.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;

use crate::conntrack::filter::{ConntrackFilter, Mark, PageToken, StateFilter};
use crate::names;

/// A request field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct InvalidArgument {
    /// Field name as in the .proto.
    pub field: &'static str,
    /// What is wrong and what is accepted.
    pub message: String,
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, InvalidArgument>;

fn bad<T>(field: &'static str, message: impl Into<String>) -> Result<T> {
    Err(InvalidArgument {
        field,
        message: message.into(),
    })
}

/// iptables tables.
pub const FIREWALL_TABLES: [&str; 5] = ["filter", "nat", "mangle", "raw", "security"];
/// Largest conntrack limit accepted (above any sane nf_conntrack_max).
pub const MAX_CONNTRACK_LIMIT: u32 = 4_194_304;

/// A route table selector: "", "main", "all", "local", "default" or 1..=u32::MAX.
pub fn route_table(s: &str) -> Result<crate::networking::TableFilter> {
    use crate::networking::TableFilter;
    match s.trim() {
        "" | "main" => Ok(TableFilter::Id(254)),
        "all" => Ok(TableFilter::All),
        "local" => Ok(TableFilter::Id(255)),
        "default" => Ok(TableFilter::Id(253)),
        n => match n.parse::<u32>() {
            Ok(id) if id > 0 => Ok(TableFilter::Id(id)),
            _ => bad(
                "route_table",
                format!("{n:?} is not main, all, local, default or a table number 1..4294967295"),
            ),
        },
    }
}

/// An iptables table name (empty means filter).
pub fn firewall_table(s: &str) -> Result<&str> {
    let t = if s.is_empty() { "filter" } else { s };
    FIREWALL_TABLES
        .iter()
        .find(|x| **x == t)
        .copied()
        .map_or_else(
            || {
                bad(
                    "table",
                    format!("{t:?} is not one of {}", FIREWALL_TABLES.join(", ")),
                )
            },
            Ok,
        )
}

/// A firewall snapshot name from an earlier answer ("" for none).
pub fn snapshot(s: &str) -> Result<Option<u64>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    match u64::from_str_radix(s, 16) {
        Ok(id) if s.len() <= 16 => Ok(Some(id)),
        _ => bad(
            "snapshot",
            format!("{s:?} is not a snapshot name this agent returned"),
        ),
    }
}

/// An iptables chain name: `[A-Za-z0-9_-]`, at most 28 characters (xtables' limit).
pub fn chain(s: &str) -> Result<&str> {
    if s.is_empty() {
        return Ok(s);
    }
    if s.len() > 28 {
        return bad("chain", "longer than 28 characters");
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return bad(
            "chain",
            format!("{s:?} has characters outside [A-Za-z0-9_-]"),
        );
    }
    Ok(s)
}

/// nf_tables families by name ("" for every family, NFPROTO 0).
pub fn nft_family(s: &str) -> Result<u8> {
    if s.is_empty() {
        return Ok(0);
    }
    crate::firewall::nft::model::family::from_name(s).map_or_else(
        || {
            bad(
                "family",
                format!(
                    "{s:?} is not one of ip, ip6, inet, arp, bridge, netdev (or empty for all)"
                ),
            )
        },
        Ok,
    )
}

/// An nf_tables table name ("" for every table): what nft accepts as an
/// identifier, at most 255 bytes.
pub fn nft_table(s: &str) -> Result<&str> {
    if s.len() > 255 {
        return bad("table", "longer than 255 characters");
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '$');
    if !s.chars().all(ok) {
        return bad(
            "table",
            format!("{s:?} has characters outside [A-Za-z0-9_.-/$]"),
        );
    }
    Ok(s)
}

/// The question of `ExplainRoute`: addresses of one family, an interface
/// name as the kernel allows it, a TOS byte.
pub fn route_query(
    destination: &str,
    source: &str,
    mark: u32,
    iif: &str,
    tos: u32,
) -> Result<crate::networking::explain::Query> {
    let destination: IpAddr = destination.trim().parse().map_err(|_| InvalidArgument {
        field: "destination",
        message: format!("{destination:?} is not an IPv4 or IPv6 address"),
    })?;
    let source = match source.trim() {
        "" => None,
        s => {
            let a: IpAddr = s.parse().map_err(|_| InvalidArgument {
                field: "source",
                message: format!("{s:?} is not an IPv4 or IPv6 address"),
            })?;
            if a.is_ipv4() != destination.is_ipv4() {
                return bad(
                    "source",
                    format!("{a} is not of the destination's family ({destination})"),
                );
            }
            Some(a)
        }
    };
    let iif = match iif.trim() {
        "" => None,
        name => {
            // IFNAMSIZ is 16 with the terminating NUL; no '/', no space.
            if name.len() > 15
                || name.contains(['/', ':'])
                || name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return bad(
                    "iif",
                    format!(
                        "{name:?} is not an interface name (1-15 characters, no '/', ':' or space)"
                    ),
                );
            }
            if source.is_none() {
                return bad(
                    "iif",
                    "a packet arriving on an interface needs its source address: set source too",
                );
            }
            Some(name.to_string())
        }
    };
    if tos > 255 {
        return bad("tos", format!("{tos} is over 255 (one byte)"));
    }
    Ok(crate::networking::explain::Query {
        destination,
        source,
        mark,
        iif,
        tos: tos as u8,
    })
}

/// A hostname (RFC 1123 labels, underscores tolerated) or an IP literal.
pub fn host(field: &'static str, s: &str) -> Result<String> {
    let s = s.trim();
    if s.is_empty() {
        return bad(field, "empty");
    }
    let literal = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    if literal.parse::<IpAddr>().is_ok() {
        return Ok(literal.to_string());
    }
    if s.len() > 253 {
        return bad(field, "longer than 253 characters");
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad(field, format!("{s:?} has an empty or over-long label"));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad(
                field,
                format!(
                    "{s:?} is neither an IP address nor a hostname (letters, digits, '-', '.')"
                ),
            );
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad(
                field,
                format!("{s:?}: a label may not start or end with '-'"),
            );
        }
    }
    Ok(s.to_string())
}

/// A port 1..=65535.
pub fn port(field: &'static str, p: u32) -> Result<u16> {
    match p {
        1..=65535 => Ok(p as u16),
        _ => bad(field, format!("{p} is not a port 1..65535")),
    }
}

/// A duration in milliseconds: 0 means `default`, otherwise within `1..=max`.
pub fn millis(field: &'static str, ms: u32, default: u32, max: u32) -> Result<Duration> {
    match ms {
        0 => Ok(Duration::from_millis(u64::from(default))),
        m if m <= max => Ok(Duration::from_millis(u64::from(m))),
        m => bad(field, format!("{m} ms is above the maximum of {max} ms")),
    }
}

/// Longest a ping may take in all: it runs on a blocking thread that a
/// cancelled call cannot stop, so its total is bounded up front.
pub const PING_BUDGET: Duration = Duration::from_secs(30);

/// Refuses a ping whose packets and last wait cannot fit [`PING_BUDGET`].
pub fn ping_budget(count: u32, interval: Duration, timeout: Duration) -> Result<()> {
    let total = interval * count.saturating_sub(1) + timeout;
    if total > PING_BUDGET {
        return bad(
            "count",
            format!(
                "{count} packets {} ms apart plus a {} ms wait take {} s, above the {} s a ping may take; \
                 send fewer or closer together",
                interval.as_millis(),
                timeout.as_millis(),
                total.as_secs_f64(),
                PING_BUDGET.as_secs()
            ),
        );
    }
    Ok(())
}

/// A count: 0 means `default`, otherwise within `1..=max`.
pub fn count(field: &'static str, n: u32, default: u32, max: u32) -> Result<u32> {
    match n {
        0 => Ok(default),
        n if n <= max => Ok(n),
        n => bad(field, format!("{n} is above the maximum of {max}")),
    }
}

/// The conntrack filter fields of a `ListConntrackRequest`.
pub fn conntrack(
    req: &labscope_proto::v1::ListConntrackRequest,
) -> Result<(ConntrackFilter, Option<u64>, PageToken)> {
    let mut filter = ConntrackFilter::default();
    let addr = req.address.trim();
    if !addr.is_empty() {
        filter.net = Some(match addr.parse::<IpNet>() {
            Ok(net) => net.trunc(),
            Err(_) => match addr.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(ip),
                Err(_) => return bad("address", format!("{addr:?} is not an IP address or CIDR")),
            },
        });
    }
    let proto = req.protocol.trim();
    if !proto.is_empty() {
        filter.protocol = Some(
            names::ip_protocol_number(&proto.to_ascii_lowercase()).map_or_else(
                || {
                    bad(
                        "protocol",
                        format!("{proto:?} is not a protocol name or number 0..255"),
                    )
                },
                Ok,
            )?,
        );
    }
    if req.port != 0 {
        filter.port = Some(port("port", req.port)?);
    }
    let state = req.state.trim();
    if !state.is_empty() {
        filter.state = Some(StateFilter::parse(state).map_or_else(
            || bad("state", format!("{state:?} is not a TCP state (ESTABLISHED, TIME_WAIT, …), ASSURED or UNREPLIED")),
            Ok,
        )?);
    }
    let mark = req.mark.trim();
    if !mark.is_empty() {
        filter.mark = Some(Mark::parse(mark).map_or_else(
            || {
                bad(
                    "mark",
                    format!("{mark:?} is not VALUE or VALUE/MASK (decimal or 0x hex, 32 bits, VALUE within MASK)"),
                )
            },
            Ok,
        )?);
    }
    filter.ip_version = match req.ip_version {
        0 => None,
        4 => Some(4),
        6 => Some(6),
        v => return bad("ip_version", format!("{v} is not 0, 4 or 6")),
    };
    if req.limit > MAX_CONNTRACK_LIMIT {
        return bad(
            "limit",
            format!(
                "{} is above the maximum of {MAX_CONNTRACK_LIMIT} (0 means all)",
                req.limit
            ),
        );
    }
    let limit = (req.limit > 0).then_some(u64::from(req.limit));
    let token = req.continuation_token.trim();
    let page = if token.is_empty() {
        PageToken::default()
    } else {
        PageToken::decode(token).map_or_else(
            || bad("continuation_token", "not a token this agent issued"),
            Ok,
        )?
    };
    Ok((filter, limit, page))
}

/// An HTTP(S) probe URL: scheme http or https, a valid host, no credentials.
pub fn url(s: &str) -> Result<http::Uri> {
    let uri: http::Uri = s.trim().parse().map_err(|e| InvalidArgument {
        field: "url",
        message: format!("{e}"),
    })?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        other => {
            return bad(
                "url",
                format!("scheme {:?} is not http or https", other.unwrap_or("")),
            );
        }
    }
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    if authority.contains('@') {
        return bad("url", "credentials in the URL are not accepted");
    }
    host("url", uri.host().unwrap_or_default())?;
    Ok(uri)
}

/// HTTP method: GET (default) or HEAD.
pub fn method(s: &str) -> Result<http::Method> {
    match s.trim().to_ascii_uppercase().as_str() {
        "" | "GET" => Ok(http::Method::GET),
        "HEAD" => Ok(http::Method::HEAD),
        m => bad(
            "method",
            format!("{m:?} is not GET or HEAD (probes never change anything)"),
        ),
    }
}

/// `connect_to`: an IP, or IP:port / [IPv6]:port.
pub fn connect_to(s: &str, default_port: u16) -> Result<Option<SocketAddr>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(Some(a));
    }
    let literal = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    match literal.parse::<IpAddr>() {
        Ok(ip) => Ok(Some(SocketAddr::new(ip, default_port))),
        Err(_) => bad(
            "connect_to",
            format!("{s:?} is not an IP address or IP:port"),
        ),
    }
}

/// DNS name: a hostname-shaped name (underscores allowed for SRV), or ".".
pub fn dns_name(s: &str) -> Result<Name> {
    let s = s.trim();
    if s != "." {
        host("name", s).and_then(|h| {
            if h.parse::<IpAddr>().is_ok() {
                bad(
                    "name",
                    format!("{s:?} is an IP address; ask a PTR for its in-addr.arpa name"),
                )
            } else {
                Ok(h)
            }
        })?;
    }
    let fqdn = if s.ends_with('.') {
        s.to_string()
    } else {
        format!("{s}.")
    };
    Name::from_ascii(&fqdn).map_err(|e| InvalidArgument {
        field: "name",
        message: e.to_string(),
    })
}

/// DNS record type among the supported ones (default A).
pub fn record_type(s: &str) -> Result<RecordType> {
    let t = if s.trim().is_empty() {
        "A".to_string()
    } else {
        s.trim().to_ascii_uppercase()
    };
    if !crate::probe::dns::SUPPORTED_TYPES.contains(&t.as_str()) {
        return bad(
            "record_type",
            format!(
                "{t:?} is not one of {}",
                crate::probe::dns::SUPPORTED_TYPES.join(", ")
            ),
        );
    }
    t.parse::<RecordType>().map_err(|e| InvalidArgument {
        field: "record_type",
        message: e.to_string(),
    })
}

/// DNS server: IP, IP:port or [IPv6]:port. Required.
pub fn dns_server(s: &str) -> Result<SocketAddr> {
    if s.trim().is_empty() {
        return bad(
            "server",
            "required: the agent asks an explicit server, never guesses one",
        );
    }
    connect_to(s, 53)
        .map_err(|e| InvalidArgument {
            field: "server",
            message: e.message,
        })?
        .map_or_else(
            || bad("server", "required"),
            |a| {
                if a.port() == 0 {
                    bad("server", "port 0")
                } else {
                    Ok(a)
                }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use labscope_proto::v1::ListConntrackRequest;

    #[test]
    fn hosts() {
        assert!(host("target", "pi5-worker-1").is_ok());
        assert!(host("target", "10.42.0.1").is_ok());
        assert_eq!(host("target", "[::1]").unwrap(), "::1");
        assert!(host("target", "_dns._udp.lab.").is_ok());
        for bad in [
            "",
            "a b",
            "x;rm -rf /",
            "$(id)",
            "a..b",
            "-lead",
            &"x".repeat(64),
            "host|x",
            "a`b`",
        ] {
            let e = host("target", bad).unwrap_err();
            assert_eq!(e.field, "target", "{bad:?}");
        }
    }

    #[test]
    fn chains_tables_ports() {
        assert!(chain("KUBE-SVC-TCOU7JCQXEZGVUNU").is_ok());
        assert!(chain("bad chain").is_err());
        assert!(chain("x;y").is_err());
        assert!(chain(&"A".repeat(29)).is_err());
        assert_eq!(firewall_table("").unwrap(), "filter");
        assert!(firewall_table("broute").is_err());
        assert!(port("port", 0).is_err());
        assert!(port("port", 65536).is_err());
        assert_eq!(port("port", 443).unwrap(), 443);
        assert!(route_table("0").is_err());
        assert!(route_table("mainn").is_err());
        assert_eq!(
            route_table("100").unwrap(),
            crate::networking::TableFilter::Id(100)
        );
    }

    #[test]
    fn conntrack_fields() {
        let req = |f: fn(&mut ListConntrackRequest)| {
            let mut r = ListConntrackRequest::default();
            f(&mut r);
            conntrack(&r)
        };
        assert_eq!(
            req(|r| r.address = "10.0.0.0/33".into()).unwrap_err().field,
            "address"
        );
        assert_eq!(
            req(|r| r.address = "10.0.0.1;ls".into()).unwrap_err().field,
            "address"
        );
        assert!(
            req(|r| r.address = "10.0.0.7/24".into())
                .unwrap()
                .0
                .net
                .unwrap()
                .to_string()
                == "10.0.0.0/24"
        );
        assert_eq!(req(|r| r.port = 70000).unwrap_err().field, "port");
        assert_eq!(
            req(|r| r.protocol = "tcpx".into()).unwrap_err().field,
            "protocol"
        );
        assert_eq!(
            req(|r| r.state = "WAITING".into()).unwrap_err().field,
            "state"
        );
        assert_eq!(req(|r| r.limit = u32::MAX).unwrap_err().field, "limit");
        assert_eq!(
            req(|r| r.continuation_token = "zzz".into())
                .unwrap_err()
                .field,
            "continuation_token"
        );
        assert_eq!(req(|r| r.ip_version = 5).unwrap_err().field, "ip_version");
        assert!(req(|r| r.limit = 50).unwrap().1 == Some(50));
        assert_eq!(
            req(|r| r.mark = "0x1/0x2".into()).unwrap_err().field,
            "mark"
        );
        assert_eq!(req(|r| r.mark = "red".into()).unwrap_err().field, "mark");
        assert_eq!(
            req(|r| r.mark = " 0x4000/0xff00 ".into()).unwrap().0.mark,
            Mark::parse("0x4000/0xff00")
        );
    }

    #[test]
    fn urls_and_dns() {
        assert!(url("https://jellyfin.lab.example/health").is_ok());
        assert_eq!(url("ftp://x").unwrap_err().field, "url");
        assert!(url("file:///etc/passwd").is_err());
        assert!(url("http://user:pw@host/").is_err());
        assert!(url("http://bad host/").is_err());
        assert!(method("POST").is_err());
        assert!(dns_name("example.com").is_ok());
        assert!(dns_name("exa mple.com").is_err());
        assert!(dns_name("10.0.0.1").is_err());
        assert!(record_type("aaaa").is_ok());
        assert!(record_type("AXFR").is_err());
        assert!(dns_server("").is_err());
        assert_eq!(dns_server("127.0.0.1").unwrap().port(), 53);
        assert_eq!(dns_server("[::1]:5335").unwrap().port(), 5335);
        assert!(dns_server("pi.hole").is_err());
        assert!(millis("timeout_ms", 30001, 10, 30000).is_err());
    }
}
