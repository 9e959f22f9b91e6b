//! RTM_NEWRULE → [`Rule`] (policy routing: `ip rule`).

use labscope_proto::v1::Rule;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::rule::RuleAttribute;

use crate::names;

const FIB_RULE_INVERT: u32 = 0x2;

/// Parses one rule message; `None` for other messages.
pub fn parse(message: RouteNetlinkMessage) -> Option<Rule> {
    let RouteNetlinkMessage::NewRule(msg) = message else {
        return None;
    };
    let h = &msg.header;
    let af = u8::from(h.family);
    // A family-wide dump also returns the multicast routing families'
    // rules (RTNL_FAMILY_IPMR/IP6MR); `ip rule` shows IPv4 and IPv6 only.
    if af != 2 && af != 10 {
        return None;
    }
    let mut rule = Rule {
        family: names::family(af) as i32,
        table: h.table as u32,
        tos: h.tos as u32,
        invert: h.flags.bits() & FIB_RULE_INVERT != 0,
        action: match u8::from(h.action) {
            1 => "lookup",
            2 => "goto",
            3 => "nop",
            6 => "blackhole",
            7 => "unreachable",
            8 => "prohibit",
            _ => "unknown",
        }
        .into(),
        source: "all".into(),
        destination: "all".into(),
        ..Default::default()
    };
    for attr in msg.attributes {
        match attr {
            RuleAttribute::Priority(p) => rule.priority = p,
            RuleAttribute::Table(t) => rule.table = t,
            RuleAttribute::Source(a) => rule.source = format!("{a}/{}", h.src_len),
            RuleAttribute::Destination(a) => rule.destination = format!("{a}/{}", h.dst_len),
            RuleAttribute::Iifname(i) => rule.iif = i,
            RuleAttribute::Oifname(o) => rule.oif = o,
            RuleAttribute::FwMark(m) => {
                rule.fwmark = m;
                rule.has_fwmark = true;
            }
            RuleAttribute::FwMask(m) => rule.fwmask = m,
            RuleAttribute::Goto(g) => rule.goto_priority = g,
            RuleAttribute::Protocol(p) => rule.protocol = names::route_protocol(u8::from(p)),
            _ => {}
        }
    }
    if rule.action == "lookup" {
        rule.table_name = names::table(rule.table);
    }
    Some(rule)
}
