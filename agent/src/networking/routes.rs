//! RTM_NEWROUTE → [`Route`], for every table and both IP families.

use std::net::IpAddr;

use labscope_proto::v1::{NextHop, Route};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{RouteAddress, RouteAttribute};

use crate::names;

fn addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Parses one route message; `None` for non-IP families and other messages.
pub fn parse(message: RouteNetlinkMessage) -> Option<Route> {
    let RouteNetlinkMessage::NewRoute(msg) = message else {
        return None;
    };
    let af = u8::from(msg.header.address_family);
    if af != 2 && af != 10 {
        return None;
    }
    let mut route = Route {
        family: names::family(af) as i32,
        table: msg.header.table as u32,
        route_type: names::route_type(u8::from(msg.header.kind)),
        protocol: names::route_protocol(u8::from(msg.header.protocol)),
        scope: names::scope(u8::from(msg.header.scope)),
        flags: route_flags(msg.header.flags.bits()),
        ..Default::default()
    };
    let dst_len = msg.header.destination_prefix_length;
    let src_len = msg.header.source_prefix_length;
    let mut dst = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => route.table = *t,
            RouteAttribute::Destination(a) => dst = addr(a),
            RouteAttribute::Source(a) => {
                if let Some(a) = addr(a) {
                    route.source = format!("{a}/{src_len}");
                }
            }
            RouteAttribute::Gateway(a) => route.gateway = addr(a).map(names::ip),
            RouteAttribute::PrefSource(a) => route.prefsrc = addr(a).map(names::ip),
            RouteAttribute::Oif(i) => route.oif_index = *i,
            RouteAttribute::Priority(p) => route.metric = *p,
            RouteAttribute::MultiPath(hops) => {
                route.nexthops = hops
                    .iter()
                    .map(|h| NextHop {
                        gateway: h.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Gateway(g) => addr(g).map(names::ip),
                            _ => None,
                        }),
                        oif_index: h.interface_index,
                        oif: String::new(),
                        weight: h.hops as u32 + 1,
                    })
                    .collect();
            }
            _ => {}
        }
    }
    route.table_name = names::table(route.table);
    route.destination = match dst {
        Some(a) if dst_len > 0 || !a.is_unspecified() => format!("{a}/{dst_len}"),
        _ if dst_len == 0 => "default".into(),
        _ => String::new(),
    };
    Some(route)
}

fn route_flags(bits: u32) -> Vec<String> {
    const NAMES: [(u32, &str); 5] = [
        (0x1, "dead"),
        (0x2, "pervasive"),
        (0x4, "onlink"),
        (0x8, "offload"),
        (0x10, "linkdown"),
    ];
    NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}
