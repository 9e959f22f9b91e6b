//! RTM_NEWADDR → [`Address`].

use std::net::IpAddr;

use labscope_proto::v1::Address;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::AddressAttribute;

use crate::names;

const IFA_F_NAMES: [(u32, &str); 12] = [
    (0x01, "secondary"),
    (0x02, "nodad"),
    (0x04, "optimistic"),
    (0x08, "dadfailed"),
    (0x10, "home"),
    (0x20, "deprecated"),
    (0x40, "tentative"),
    (0x80, "permanent"),
    (0x100, "mngtmpaddr"),
    (0x200, "noprefixroute"),
    (0x400, "autojoin"),
    (0x800, "stable-privacy"),
];

/// Parses one address message; `None` for other message types.
pub fn parse(message: RouteNetlinkMessage) -> Option<Address> {
    let RouteNetlinkMessage::NewAddress(msg) = message else {
        return None;
    };
    let mut out = Address {
        link_index: msg.header.index,
        prefix_len: msg.header.prefix_len as u32,
        scope: names::scope(u8::from(msg.header.scope)),
        ..Default::default()
    };
    let mut flags = msg.header.flags.bits() as u32;
    let mut local: Option<IpAddr> = None;
    let mut address: Option<IpAddr> = None;
    for attr in msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(a),
            AddressAttribute::Address(a) => address = Some(a),
            AddressAttribute::Label(l) => out.label = l,
            AddressAttribute::Broadcast(b) => out.broadcast = Some(names::ip(IpAddr::V4(b))),
            AddressAttribute::Flags(f) => flags = f.bits(),
            AddressAttribute::CacheInfo(c) => {
                out.valid_lifetime = c.ifa_valid;
                out.preferred_lifetime = c.ifa_preferred;
            }
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS differs from it
    // only on point-to-point links, where it is the peer (as `ip` shows it).
    match (local, address) {
        (Some(l), Some(a)) if l != a => {
            out.address = Some(names::ip(l));
            out.peer = Some(names::ip(a));
        }
        (Some(l), _) => out.address = Some(names::ip(l)),
        (None, Some(a)) => out.address = Some(names::ip(a)),
        (None, None) => return None,
    }
    out.flags = IFA_F_NAMES
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    Some(out)
}
