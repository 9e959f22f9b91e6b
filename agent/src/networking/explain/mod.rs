//! `ip route get`, asked of the kernel and explained.
//!
//! The decision is the kernel's own: one `RTM_GETROUTE` request as
//! `ip route get` sends it (with `RTM_F_LOOKUP_TABLE`, so the answer names
//! the table), and a second with `RTM_F_FIB_MATCH` for the route entry that
//! matched. The kernel does not say which policy rule led to that table, nor
//! which rule or route produced a refusal, so the agent walks the rules the
//! way the kernel does (selectors, `goto`, `suppress_prefixlength`, `throw`
//! routes, error actions) over one dump of the family's rules and routes, and
//! says so when its walk does not end where the kernel's answer did.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;

use ipnet::IpNet;
use labscope_proto::v1::{self as pb, Route, Rule};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{RouteAttribute, RouteMetric};
use netlink_packet_route::rule::RuleAttribute;
use netlink_sys::protocols::NETLINK_ROUTE;

use super::{Error, RTM_GETLINK, RTM_GETROUTE, RTM_GETRULE, Result, decode, dump_parsed};
use crate::{names, netlink};

const RTM_F_LOOKUP_TABLE: u32 = 0x1000;
const RTM_F_FIB_MATCH: u32 = 0x2000;
const RTA_DST: u16 = 1;
const RTA_SRC: u16 = 2;
const RTA_IIF: u16 = 3;
const RTA_MARK: u16 = 16;
const LOOPBACK: &str = "lo";

/// What to ask: a packet's destination and what else routing looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Destination address.
    pub destination: IpAddr,
    /// Source address the packet carries (`None`: the kernel picks one).
    pub source: Option<IpAddr>,
    /// Firewall mark.
    pub mark: u32,
    /// Interface the packet arrives on (forwarded traffic); `None` for
    /// traffic the node sends itself.
    pub iif: Option<String>,
    /// IPv4 TOS / IPv6 traffic class.
    pub tos: u8,
}

/// A policy rule with every selector the walk evaluates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSpec {
    /// As `GetNetworking` shows it.
    pub shown: Rule,
    /// Source prefix (`None`: all).
    pub from: Option<IpNet>,
    /// Destination prefix.
    pub to: Option<IpNet>,
    /// Mask of `fwmark` (0xffffffff when the rule gave none).
    pub mark_mask: u32,
    /// `suppress_prefixlength`.
    pub suppress_prefixlen: Option<u32>,
    /// A selector the walk cannot evaluate for this query (uidrange,
    /// ipproto, ports, l3mdev, tun_id, suppress_ifgroup), by name.
    pub unevaluated: Vec<&'static str>,
    /// Numeric action (FR_ACT_*).
    pub action: u8,
}

/// Where one rule left the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its table answered: the walk ends here.
    Answered,
    /// Its table has no route for the destination: on to the next rule.
    NoRoute,
    /// Its table answered with a prefix no longer than
    /// `suppress_prefixlength`: on to the next rule.
    Suppressed,
    /// Its table answered with a `throw` route: on to the next rule.
    Thrown,
    /// An error action or an error route: the kernel refuses here.
    Refused,
    /// `goto`: the walk continues at another priority.
    Goto,
    /// `nop`.
    Nop,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::NoRoute => "no_route",
            Outcome::Suppressed => "suppressed",
            Outcome::Thrown => "thrown",
            Outcome::Refused => "refused",
            Outcome::Goto => "goto",
            Outcome::Nop => "nop",
        }
    }
}

/// The walk's result: each rule whose selector matched, with its outcome
/// and the route its table gave, if any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Walk {
    /// (rule index, outcome, route index).
    pub steps: Vec<(usize, Outcome, Option<usize>)>,
    /// Rules with a selector the walk could not evaluate that it treated
    /// as not matching.
    pub unevaluated: Vec<usize>,
}

impl Walk {
    /// The step that ended the walk.
    pub fn last(&self) -> Option<(usize, Outcome, Option<usize>)> {
        self.steps
            .last()
            .copied()
            .filter(|s| matches!(s.1, Outcome::Answered | Outcome::Refused))
    }
}

/// The flow as the rules see it.
#[derive(Debug, Clone)]
pub struct Flow<'a> {
    /// Destination.
    pub dst: IpAddr,
    /// Source (`None`: unspecified).
    pub src: Option<IpAddr>,
    /// fwmark.
    pub mark: u32,
    /// Input interface name: the query's, or `lo` for local traffic (the
    /// kernel routes what the host sends as coming from loopback).
    pub iif: &'a str,
    /// TOS.
    pub tos: u8,
}

fn selector_matches(r: &RuleSpec, f: &Flow<'_>) -> Option<bool> {
    let s = &r.shown;
    let mut ok = true;
    if !s.iif.is_empty() && s.iif != f.iif {
        ok = false;
    }
    // No oif in the query: a rule bound to an output interface (or VRF)
    // matches only sockets bound to it.
    if !s.oif.is_empty() {
        ok = false;
    }
    if s.has_fwmark && (f.mark ^ s.fwmark) & r.mark_mask != 0 {
        ok = false;
    }
    if let Some(from) = r.from {
        let src = f.src.unwrap_or(if f.dst.is_ipv4() {
            IpAddr::from([0u8; 4])
        } else {
            IpAddr::from([0u16; 8])
        });
        if !from.contains(&src) {
            ok = false;
        }
    }
    if let Some(to) = r.to
        && !to.contains(&f.dst)
    {
        ok = false;
    }
    if s.tos != 0 && s.tos as u8 != f.tos {
        ok = false;
    }
    if ok && !r.unevaluated.is_empty() {
        return None;
    }
    Some(ok != s.invert)
}

/// Longest-prefix match of `f` in table `table` (lowest metric among equal
/// prefixes): the route index.
pub fn lookup(routes: &[(Route, IpNet, Option<IpNet>)], table: u32, f: &Flow<'_>) -> Option<usize> {
    routes
        .iter()
        .enumerate()
        .filter(|(_, (r, dst, src))| {
            r.table == table
                && dst.contains(&f.dst)
                && src.is_none_or(|s| f.src.is_some_and(|a| s.contains(&a)))
                && !r.flags.iter().any(|x| x == "dead")
        })
        .max_by_key(|(_, (r, dst, _))| (dst.prefix_len(), std::cmp::Reverse(r.metric)))
        .map(|(i, _)| i)
}

fn error_type(t: &str) -> bool {
    matches!(t, "blackhole" | "unreachable" | "prohibit")
}

/// Walks `rules` (in priority order) for `f` over `routes`.
pub fn walk(rules: &[RuleSpec], routes: &[(Route, IpNet, Option<IpNet>)], f: &Flow<'_>) -> Walk {
    let mut out = Walk::default();
    let mut i = 0;
    // A goto loop is impossible in the kernel (goto only jumps forward),
    // but a bound keeps a malformed dump from spinning.
    let mut budget = rules.len() * 2 + 8;
    while i < rules.len() && budget > 0 {
        budget -= 1;
        let r = &rules[i];
        match selector_matches(r, f) {
            Some(true) => {}
            Some(false) => {
                i += 1;
                continue;
            }
            None => {
                out.unevaluated.push(i);
                i += 1;
                continue;
            }
        }
        match r.action {
            // FR_ACT_TO_TBL
            1 => match lookup(routes, r.shown.table, f) {
                None => out.steps.push((i, Outcome::NoRoute, None)),
                Some(at) => {
                    let (route, dst, _) = &routes[at];
                    let outcome = if route.route_type == "throw" {
                        Outcome::Thrown
                    } else if error_type(&route.route_type) {
                        Outcome::Refused
                    } else if r
                        .suppress_prefixlen
                        .is_some_and(|n| u32::from(dst.prefix_len()) <= n)
                    {
                        Outcome::Suppressed
                    } else {
                        Outcome::Answered
                    };
                    out.steps.push((i, outcome, Some(at)));
                    if matches!(outcome, Outcome::Answered | Outcome::Refused) {
                        return out;
                    }
                }
            },
            // FR_ACT_GOTO: to the first rule of exactly the target
            // priority; with none there the goto is unresolved and the
            // kernel goes on with the next rule.
            2 => {
                out.steps.push((i, Outcome::Goto, None));
                let target = r.shown.goto_priority;
                match rules.iter().position(|x| x.shown.priority == target) {
                    Some(at) if at > i => {
                        i = at;
                        continue;
                    }
                    _ => {}
                }
            }
            // FR_ACT_NOP
            3 => out.steps.push((i, Outcome::Nop, None)),
            // blackhole, unreachable, prohibit
            6..=8 => {
                out.steps.push((i, Outcome::Refused, None));
                return out;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn prefix(addr: Option<IpAddr>, len: u8, family_v6: bool) -> Option<IpNet> {
    match addr {
        Some(a) => IpNet::new(a, len).ok(),
        None if len == 0 => None,
        None => IpNet::new(
            if family_v6 {
                IpAddr::from([0u16; 8])
            } else {
                IpAddr::from([0u8; 4])
            },
            len,
        )
        .ok(),
    }
}

/// Decodes one rule message with every selector.
pub fn parse_rule(message: RouteNetlinkMessage) -> Option<RuleSpec> {
    let RouteNetlinkMessage::NewRule(msg) = &message else {
        return None;
    };
    let v6 = u8::from(msg.header.family) == 10;
    let (src_len, dst_len) = (msg.header.src_len, msg.header.dst_len);
    let action = u8::from(msg.header.action);
    let mut spec = RuleSpec {
        mark_mask: u32::MAX,
        action,
        ..Default::default()
    };
    let (mut from, mut to) = (None, None);
    for attr in &msg.attributes {
        match attr {
            RuleAttribute::Source(a) => from = Some(*a),
            RuleAttribute::Destination(a) => to = Some(*a),
            RuleAttribute::FwMask(m) => spec.mark_mask = *m,
            RuleAttribute::SuppressPrefixLen(n) if *n != u32::MAX => {
                spec.suppress_prefixlen = Some(*n)
            }
            RuleAttribute::SuppressIfGroup(g) if *g != u32::MAX => {
                spec.unevaluated.push("suppress_ifgroup")
            }
            RuleAttribute::UidRange(u) if !(u.start == 0 && u.end == u32::MAX) => {
                spec.unevaluated.push("uidrange")
            }
            RuleAttribute::IpProtocol(p) if i32::from(*p) != 0 => spec.unevaluated.push("ipproto"),
            RuleAttribute::SourcePortRange(_) => spec.unevaluated.push("sport"),
            RuleAttribute::DestinationPortRange(_) => spec.unevaluated.push("dport"),
            RuleAttribute::L3MDev(true) => spec.unevaluated.push("l3mdev"),
            RuleAttribute::TunId(id) if *id != 0 => spec.unevaluated.push("tun_id"),
            _ => {}
        }
    }
    spec.from = prefix(from, src_len, v6);
    spec.to = prefix(to, dst_len, v6);
    spec.shown = super::rules::parse(message)?;
    Some(spec)
}

/// The selector and action as `ip rule` prints them.
pub fn rule_text(r: &RuleSpec) -> String {
    let s = &r.shown;
    let mut out = String::new();
    if s.invert {
        out.push_str("not ");
    }
    // `ip rule` prints a host prefix without its length.
    let host = |p: &str| {
        let full = if p.contains(':') { "/128" } else { "/32" };
        p.strip_suffix(full).unwrap_or(p).to_string()
    };
    out.push_str("from ");
    out.push_str(&host(&s.source));
    if s.destination != "all" {
        out.push_str(" to ");
        out.push_str(&host(&s.destination));
    }
    if s.tos != 0 {
        out.push_str(&format!(" tos {:#x}", s.tos));
    }
    if s.has_fwmark {
        if r.mark_mask == u32::MAX {
            out.push_str(&format!(" fwmark {:#x}", s.fwmark));
        } else {
            out.push_str(&format!(" fwmark {:#x}/{:#x}", s.fwmark, r.mark_mask));
        }
    }
    if !s.iif.is_empty() {
        out.push_str(" iif ");
        out.push_str(&s.iif);
    }
    if !s.oif.is_empty() {
        out.push_str(" oif ");
        out.push_str(&s.oif);
    }
    for u in &r.unevaluated {
        out.push(' ');
        out.push_str(u);
    }
    match s.action.as_str() {
        "lookup" => {
            out.push_str(" lookup ");
            out.push_str(&s.table_name);
        }
        "goto" => out.push_str(&format!(" goto {}", s.goto_priority)),
        other => {
            out.push(' ');
            out.push_str(other);
        }
    }
    if let Some(n) = r.suppress_prefixlen {
        out.push_str(&format!(" suppress_prefixlength {n}"));
    }
    out
}

/// The route request `ip route get` sends.
fn request_body(q: &Query, iif_index: Option<u32>, flags: u32) -> Vec<u8> {
    let v6 = q.destination.is_ipv6();
    let full = if v6 { 128 } else { 32 };
    let mut body = vec![
        if v6 { 10 } else { 2 },
        full,
        if q.source.is_some() { full } else { 0 },
        q.tos,
        0,
        0,
        0,
        0,
    ];
    body.extend_from_slice(&flags.to_ne_bytes());
    let octets = |a: IpAddr| match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    };
    let mut attr = |kind: u16, value: &[u8]| {
        body.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&kind.to_ne_bytes());
        body.extend_from_slice(value);
        while body.len() % 4 != 0 {
            body.push(0);
        }
    };
    attr(RTA_DST, &octets(q.destination));
    if let Some(s) = q.source {
        attr(RTA_SRC, &octets(s));
    }
    if let Some(i) = iif_index {
        attr(RTA_IIF, &i.to_ne_bytes());
    }
    if q.mark != 0 {
        attr(RTA_MARK, &q.mark.to_ne_bytes());
    }
    body
}

/// The kernel's answer to one route request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KernelAnswer {
    /// As a route (type, table, oif index, gateway, prefsrc).
    pub route: Route,
    /// Path MTU of the answer (0: the route sets none).
    pub mtu: u32,
}

fn ask(
    q: &Query,
    iif_index: Option<u32>,
    flags: u32,
) -> std::result::Result<KernelAnswer, io::Error> {
    let bytes = match netlink::request_message(
        NETLINK_ROUTE,
        RTM_GETROUTE,
        &request_body(q, iif_index, flags),
    ) {
        Ok(b) => b,
        Err(netlink::Error::Kernel(e)) => return Err(e),
        Err(e) => return Err(io::Error::other(e.to_string())),
    };
    let message = decode(&bytes).map_err(|e| io::Error::other(e.to_string()))?;
    let mut mtu = 0;
    if let RouteNetlinkMessage::NewRoute(m) = &message {
        for a in &m.attributes {
            if let RouteAttribute::Metrics(ms) = a {
                for x in ms {
                    if let RouteMetric::Mtu(v) = x {
                        mtu = *v;
                    }
                }
            }
        }
    }
    let route = super::routes::parse(message)
        .ok_or_else(|| io::Error::other("the kernel answered with something other than a route"))?;
    Ok(KernelAnswer { route, mtu })
}

fn errno_name(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(101) => "ENETUNREACH",
        Some(113) => "EHOSTUNREACH",
        Some(13) => "EACCES",
        Some(22) => "EINVAL",
        Some(18) => "EXDEV",
        Some(1) => "EPERM",
        _ => "",
    }
}

fn route_net(r: &Route) -> Option<(IpNet, Option<IpNet>)> {
    let v6 = r.family == pb::AddressFamily::Inet6 as i32;
    let dst = if r.destination == "default" || r.destination.is_empty() {
        prefix(None, 0, v6).unwrap_or_else(|| {
            if v6 {
                IpNet::new(IpAddr::from([0u16; 8]), 0).unwrap_or_default()
            } else {
                IpNet::default()
            }
        })
    } else {
        r.destination.parse().ok()?
    };
    let src = (!r.source.is_empty())
        .then(|| r.source.parse().ok())
        .flatten()
        .filter(|s: &IpNet| s.prefix_len() > 0);
    Some((dst, src))
}

/// Asks the kernel and explains its answer. Blocking.
pub fn explain(q: &Query) -> Result<pb::RouteExplanation> {
    let v6 = q.destination.is_ipv6();
    let family = if v6 { 10u8 } else { 2 };
    let links = dump_parsed(RTM_GETLINK, &[0u8; 16], super::links::parse)?;
    let names: HashMap<u32, String> = links.iter().map(|l| (l.index, l.name.clone())).collect();
    let iif_index = match &q.iif {
        Some(name) => Some(
            links
                .iter()
                .find(|l| &l.name == name)
                .map(|l| l.index)
                .ok_or_else(|| Error::NoSuchLink {
                    name: name.clone(),
                    available: links
                        .iter()
                        .map(|l| l.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?,
        ),
        None => None,
    };
    let mut rules: Vec<RuleSpec> = dump_parsed(
        RTM_GETRULE,
        &[family, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        parse_rule,
    )?
    .into_iter()
    .filter(|r| r.shown.family == names::family(family) as i32)
    .collect();
    rules.sort_by_key(|r| r.shown.priority);
    let routes: Vec<(Route, IpNet, Option<IpNet>)> = dump_parsed(
        RTM_GETROUTE,
        &[family, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        super::routes::parse,
    )?
    .into_iter()
    .filter(|r| r.family == names::family(family) as i32)
    .filter_map(|mut r| {
        r.oif = names.get(&r.oif_index).cloned().unwrap_or_default();
        let (d, s) = route_net(&r)?;
        Some((r, d, s))
    })
    .collect();

    let flow = Flow {
        dst: q.destination,
        src: q.source,
        mark: q.mark,
        iif: q.iif.as_deref().unwrap_or(LOOPBACK),
        tos: q.tos,
    };
    let walked = walk(&rules, &routes, &flow);
    let kernel = ask(q, iif_index, RTM_F_LOOKUP_TABLE);
    let fib = match &kernel {
        Ok(_) => ask(q, iif_index, RTM_F_LOOKUP_TABLE | RTM_F_FIB_MATCH).ok(),
        Err(_) => None,
    };
    Ok(assemble(q, &rules, &routes, &walked, kernel, fib, &names))
}

fn ip_text(a: &Option<pb::IpAddress>) -> &str {
    a.as_ref().map(|a| a.text.as_str()).unwrap_or("")
}

/// Puts the kernel's answer, the matched entry and the walk together.
pub fn assemble(
    q: &Query,
    rules: &[RuleSpec],
    routes: &[(Route, IpNet, Option<IpNet>)],
    walked: &Walk,
    kernel: std::result::Result<KernelAnswer, io::Error>,
    fib: Option<KernelAnswer>,
    names: &HashMap<u32, String>,
) -> pb::RouteExplanation {
    let v6 = q.destination.is_ipv6();
    let mut out = pb::RouteExplanation {
        family: if v6 {
            pb::AddressFamily::Inet6
        } else {
            pb::AddressFamily::Inet
        } as i32,
        destination: q.destination.to_string(),
        source: q.source.map(|s| s.to_string()).unwrap_or_default(),
        mark: q.mark,
        iif: q.iif.clone().unwrap_or_default(),
        tos: u32::from(q.tos),
        ..Default::default()
    };
    out.steps = walked
        .steps
        .iter()
        .map(|&(ri, outcome, route)| pb::RouteStep {
            priority: rules[ri].shown.priority,
            rule: rule_text(&rules[ri]),
            outcome: outcome.name().into(),
            route: route
                .map(|at| labscope_proto::text::route_text(&routes[at].0))
                .unwrap_or_default(),
        })
        .collect();
    for &ri in &walked.unevaluated {
        out.notes.push(format!(
            "rule {} ({}) selects on {} that this explanation cannot evaluate; it was passed over",
            rules[ri].shown.priority,
            rule_text(&rules[ri]),
            rules[ri].unevaluated.join(", ")
        ));
    }
    let last = walked.last();
    if let Some((ri, _, _)) = last {
        out.rule = Some(rules[ri].shown.clone());
        out.rule_text = rule_text(&rules[ri]);
    }
    match kernel {
        Ok(k) => answered(&mut out, k, fib, rules, last, names),
        Err(e) => refused(&mut out, &e, q, rules, routes, last),
    }
    out.summary = summary(&out);
    out
}

mod answer;

use answer::{answered, refused, summary};

#[cfg(test)]
mod tests;
