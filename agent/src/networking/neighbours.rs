//! RTM_NEWNEIGH → [`Neighbour`] (ARP and NDP caches).

use std::net::IpAddr;

use labscope_proto::v1::Neighbour;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute};

use crate::names;
use crate::networking::links::format_mac;

const NTF_ROUTER: u8 = 0x80;

/// Parses one neighbour message; `None` for non-IP entries and other messages.
pub fn parse(message: RouteNetlinkMessage) -> Option<Neighbour> {
    let RouteNetlinkMessage::NewNeighbour(msg) = message else {
        return None;
    };
    let af = u8::from(msg.header.family);
    let mut out = Neighbour {
        family: names::family(af) as i32,
        link_index: msg.header.ifindex,
        states: names::neighbour_states(u16::from(msg.header.state)),
        router: msg.header.flags.bits() & NTF_ROUTER != 0,
        ..Default::default()
    };
    for attr in msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                out.address = Some(names::ip(IpAddr::V4(a)))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                out.address = Some(names::ip(IpAddr::V6(a)))
            }
            NeighbourAttribute::LinkLayerAddress(l) => out.lladdr = format_mac(&l),
            _ => {}
        }
    }
    out.address.as_ref()?;
    Some(out)
}
