//! Formatting both binaries share, so the aggregator never reaches into the
//! agent's internals: RFC 3339 times, conntrack's status and TCP state
//! names as the kernel's own tools print them, and a route entry as
//! `ip route` prints it.

/// Unix seconds → RFC 3339 UTC (proleptic Gregorian, Howard Hinnant's algorithm).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `IPS_SEEN_REPLY`: without it conntrack prints `[UNREPLIED]`.
pub const IPS_SEEN_REPLY: u32 = 1 << 1;
/// `IPS_ASSURED`.
pub const IPS_ASSURED: u32 = 1 << 2;
/// `IPS_SRC_NAT`.
pub const IPS_SRC_NAT: u32 = 1 << 4;
/// `IPS_DST_NAT`.
pub const IPS_DST_NAT: u32 = 1 << 5;

const STATUS_NAMES: [&str; 16] = [
    "EXPECTED",
    "SEEN_REPLY",
    "ASSURED",
    "CONFIRMED",
    "SRC_NAT",
    "DST_NAT",
    "SEQ_ADJUST",
    "SRC_NAT_DONE",
    "DST_NAT_DONE",
    "DYING",
    "FIXED_TIMEOUT",
    "TEMPLATE",
    "NAT_CLASH",
    "HELPER",
    "OFFLOAD",
    "HW_OFFLOAD",
];

/// IPS_* bits by name, as conntrack's own tools name them.
pub fn status_names(bits: u32) -> Vec<&'static str> {
    STATUS_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// `TCP_CONNTRACK_*` names, index = state number.
pub const TCP_STATE_NAMES: [&str; 10] = [
    "NONE",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
];

/// Status names of an entry as `conntrack -L` shows them: the IPS_* flags
/// that are set, plus UNREPLIED when no reply was seen.
pub fn conntrack_status(bits: u32) -> Vec<&'static str> {
    let mut out = status_names(bits);
    if bits & IPS_SEEN_REPLY == 0 {
        out.push("UNREPLIED");
    }
    out
}

/// A route entry as `ip route` prints it: type (unless unicast),
/// destination, source prefix, gateway, device, next hops, table, protocol
/// (unless boot), metric. Device names are the route's `oif` fields.
pub fn route_text(r: &crate::v1::Route) -> String {
    let mut s = String::new();
    if r.route_type != "unicast" {
        s.push_str(&r.route_type);
        s.push(' ');
    }
    s.push_str(&r.destination);
    let mut part = |name: &str, value: &str| {
        if !value.is_empty() {
            s.push(' ');
            s.push_str(name);
            s.push(' ');
            s.push_str(value);
        }
    };
    part("from", &r.source);
    part("via", r.gateway.as_ref().map_or("", |g| g.text.as_str()));
    part("dev", &r.oif);
    for h in &r.nexthops {
        part(
            "nexthop via",
            h.gateway.as_ref().map_or("", |g| g.text.as_str()),
        );
        part("dev", &h.oif);
    }
    part("table", &r.table_name);
    if r.protocol != "boot" {
        part("proto", &r.protocol);
    }
    if r.metric != 0 {
        s.push_str(&format!(" metric {}", r.metric));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_787_206_020), "2026-08-20T06:07:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn conntrack_names() {
        assert_eq!(
            conntrack_status(IPS_ASSURED | IPS_SEEN_REPLY),
            ["SEEN_REPLY", "ASSURED"]
        );
        assert_eq!(conntrack_status(IPS_DST_NAT), ["DST_NAT", "UNREPLIED"]);
        assert_eq!(TCP_STATE_NAMES[3], "ESTABLISHED");
    }

    #[test]
    fn routes_print_as_ip_route_does() {
        use crate::v1::{IpAddress, Route};
        let gw = |t: &str| {
            Some(IpAddress {
                text: t.into(),
                ..Default::default()
            })
        };
        let r = Route {
            route_type: "unicast".into(),
            destination: "default".into(),
            gateway: gw("192.168.1.1"),
            oif: "eth0".into(),
            table_name: "main".into(),
            protocol: "dhcp".into(),
            metric: 100,
            ..Default::default()
        };
        assert_eq!(
            route_text(&r),
            "default via 192.168.1.1 dev eth0 table main proto dhcp metric 100"
        );
        let b = Route {
            route_type: "blackhole".into(),
            destination: "10.98.0.0/16".into(),
            table_name: "52".into(),
            protocol: "boot".into(),
            ..Default::default()
        };
        assert_eq!(route_text(&b), "blackhole 10.98.0.0/16 table 52");
    }
}
