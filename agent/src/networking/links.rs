//! RTM_NEWLINK → [`Link`]: kind, state, MTU, MAC, master, counters.

use labscope_proto::v1::{Link, LinkStats, OperState};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkInfo, State};

use crate::names;

/// Parses one link message; `None` for other message types.
pub fn parse(message: RouteNetlinkMessage) -> Option<Link> {
    let RouteNetlinkMessage::NewLink(msg) = message else {
        return None;
    };
    let flags = msg.header.flags.bits();
    let mut link = Link {
        index: msg.header.index,
        link_type: names::link_type(u16::from(msg.header.link_layer_type)),
        flags: names::link_flags(flags),
        admin_up: flags & 0x1 != 0,
        lower_up: flags & 0x10000 != 0,
        ..Default::default()
    };
    let mut stats32 = None;
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::Mtu(mtu) => link.mtu = mtu,
            LinkAttribute::Address(mac) => link.mac = format_mac(&mac),
            LinkAttribute::Controller(index) => link.master_index = index,
            LinkAttribute::Link(index) => link.link_index = index,
            LinkAttribute::TxQueueLen(q) => link.tx_queue_len = q,
            LinkAttribute::Qdisc(q) => link.qdisc = q,
            LinkAttribute::OperState(state) => link.oper_state = oper_state(state) as i32,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = kind.to_string();
                    }
                }
            }
            LinkAttribute::Stats64(s) => {
                link.stats = Some(LinkStats {
                    rx_bytes: s.rx_bytes,
                    rx_packets: s.rx_packets,
                    rx_errors: s.rx_errors,
                    rx_dropped: s.rx_dropped,
                    tx_bytes: s.tx_bytes,
                    tx_packets: s.tx_packets,
                    tx_errors: s.tx_errors,
                    tx_dropped: s.tx_dropped,
                })
            }
            LinkAttribute::Stats(s) => {
                stats32 = Some(LinkStats {
                    rx_bytes: s.rx_bytes as u64,
                    rx_packets: s.rx_packets as u64,
                    rx_errors: s.rx_errors as u64,
                    rx_dropped: s.rx_dropped as u64,
                    tx_bytes: s.tx_bytes as u64,
                    tx_packets: s.tx_packets as u64,
                    tx_errors: s.tx_errors as u64,
                    tx_dropped: s.tx_dropped as u64,
                })
            }
            _ => {}
        }
    }
    if link.stats.is_none() {
        link.stats = stats32;
    }
    Some(link)
}

fn oper_state(state: State) -> OperState {
    match state {
        State::Unknown => OperState::Unknown,
        State::NotPresent => OperState::NotPresent,
        State::Down => OperState::Down,
        State::LowerLayerDown => OperState::LowerLayerDown,
        State::Testing => OperState::Testing,
        State::Dormant => OperState::Dormant,
        State::Up => OperState::Up,
        _ => OperState::Unspecified,
    }
}

/// Lower-case colon-separated hex; "" for an empty or all-absent address.
pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::link::{InfoKind, LinkFlags, LinkMessage, Stats64};

    #[test]
    fn decodes_a_veth_from_wire_bytes() {
        let mut stats = Stats64::default();
        stats.rx_bytes = 1000;
        stats.tx_packets = 12;
        let mut msg = LinkMessage::default();
        msg.header.index = 7;
        msg.header.flags =
            LinkFlags::Up | LinkFlags::Broadcast | LinkFlags::LowerUp | LinkFlags::Running;
        msg.attributes = vec![
            LinkAttribute::IfName("veth-a".into()),
            LinkAttribute::Mtu(1450),
            LinkAttribute::Address(vec![0x02, 0, 0, 0, 0, 0x0a]),
            LinkAttribute::Controller(3),
            LinkAttribute::OperState(State::Up),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
            LinkAttribute::Stats64(stats),
        ];
        let mut nl = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(msg)),
        );
        nl.finalize();
        let mut bytes = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut bytes);

        let link = parse(super::super::decode(&bytes).unwrap()).unwrap();
        assert_eq!(link.name, "veth-a");
        assert_eq!(link.kind, "veth");
        assert_eq!(link.mtu, 1450);
        assert_eq!(link.mac, "02:00:00:00:00:0a");
        assert_eq!(link.master_index, 3);
        assert_eq!(link.oper_state, OperState::Up as i32);
        assert!(link.admin_up && link.lower_up);
        assert_eq!(link.flags, ["BROADCAST", "UP", "LOWER_UP"]);
        let stats = link.stats.unwrap();
        assert_eq!((stats.rx_bytes, stats.tx_packets), (1000, 12));
    }
}
