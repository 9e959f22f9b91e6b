//! The watcher: one thread on an rtnetlink socket subscribed to links,
//! addresses, routes (every table), rules and neighbours of both families,
//! keeping the state it has seen and recording what differs. Notifications
//! the kernel dropped (a full receive buffer, `ENOBUFS`) are recovered by
//! dumping again and recording the difference. The nf_tables and conntrack
//! side runs in [`super::firewall`].
//!
//! Left out on purpose, as noise: IPv6 link-local addresses and the
//! kernel's own routes that follow from addresses and links (the local
//! table, `fe80::/64`, multicast), cloned (cached) routes, and neighbours
//! other than the gateways of known routes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use labscope_proto::v1::{Address, Link, Neighbour, Route};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};

use super::{History, change};
use crate::networking::{self, addresses, decode, explain, links, neighbours, routes};

const GROUPS: [(u32, &str); 8] = [
    (1, "links"),
    (3, "neighbours"),
    (5, "IPv4 addresses"),
    (7, "IPv4 routes"),
    (8, "IPv4 rules"),
    (9, "IPv6 addresses"),
    (11, "IPv6 routes"),
    (19, "IPv6 rules"),
];
const RTM_F_CLONED: u32 = 0x200;

/// What the watcher knows of the namespace.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct State {
    /// Link index → (name, description of what a change is reported on).
    pub links: BTreeMap<u32, (String, String)>,
    /// "address/len dev NAME".
    pub addresses: BTreeSet<String>,
    /// Route key ("DST table T metric M") → its path ("via G dev D").
    pub routes: BTreeMap<String, String>,
    /// "PRIORITY: rule".
    pub rules: BTreeSet<String>,
    /// Gateway neighbour → "lladdr STATE".
    pub gateways: BTreeMap<IpAddr, String>,
}

fn link_facts(l: &Link) -> String {
    let mut s = format!(
        "mtu {}, {}, {}",
        l.mtu,
        if l.admin_up { "up" } else { "down" },
        if l.lower_up { "carrier" } else { "no carrier" }
    );
    if !l.master.is_empty() {
        s.push_str(&format!(", master {}", l.master));
    }
    if !l.mac.is_empty() {
        s.push_str(&format!(", {}", l.mac));
    }
    s
}

fn address_text(a: &Address, state: &State) -> Option<String> {
    let ip = a.address.as_ref()?;
    if ip.text.starts_with("fe80:") {
        return None;
    }
    let dev = state
        .links
        .get(&a.link_index)
        .map(|l| l.0.clone())
        .unwrap_or_else(|| a.link_index.to_string());
    Some(format!("{}/{} dev {dev}", ip.text, a.prefix_len))
}

/// A route's key and path, or `None` for what follows from links and
/// addresses by itself.
fn route_entry(r: &Route, state: &State) -> Option<(String, String)> {
    if r.table == 255 || r.destination.starts_with("fe80:") || r.destination.starts_with("ff00:") {
        return None;
    }
    if r.route_type == "multicast" {
        return None;
    }
    let mut key = String::new();
    if r.route_type != "unicast" {
        key.push_str(&r.route_type);
        key.push(' ');
    }
    key.push_str(&r.destination);
    if !r.source.is_empty() {
        key.push_str(&format!(" from {}", r.source));
    }
    key.push_str(&format!(" table {}", r.table_name));
    if r.metric != 0 {
        key.push_str(&format!(" metric {}", r.metric));
    }
    let dev = |i: u32| {
        state
            .links
            .get(&i)
            .map(|l| l.0.clone())
            .unwrap_or_else(|| i.to_string())
    };
    let mut path = String::new();
    if let Some(g) = &r.gateway {
        path.push_str(&format!("via {} ", g.text));
    }
    if r.oif_index != 0 {
        path.push_str(&format!("dev {} ", dev(r.oif_index)));
    }
    for h in &r.nexthops {
        path.push_str("nexthop ");
        if let Some(g) = &h.gateway {
            path.push_str(&format!("via {} ", g.text));
        }
        path.push_str(&format!("dev {} ", dev(h.oif_index)));
    }
    if let Some(p) = &r.prefsrc {
        path.push_str(&format!("src {} ", p.text));
    }
    path.push_str(&format!("proto {}", r.protocol));
    Some((key, path))
}

/// A rule as `ip rule` prints it, with its priority.
fn rule_entry(r: &explain::RuleSpec) -> String {
    format!("{}: {}", r.shown.priority, explain::rule_text(r))
}

/// A gateway neighbour's address and what is reported of it: its
/// link-layer address, or that it cannot be reached. REACHABLE/STALE/DELAY
/// come and go with traffic and are not changes.
fn neighbour_entry(n: &Neighbour) -> Option<(IpAddr, String)> {
    let ip: IpAddr = n.address.as_ref()?.text.parse().ok()?;
    let down = n
        .states
        .iter()
        .find(|s| *s == "FAILED" || *s == "INCOMPLETE");
    let value = match down {
        Some(s) => format!("{s} (unreachable)"),
        None if n.lladdr.is_empty() => return None,
        None => format!("lladdr {}", n.lladdr),
    };
    Some((ip, value))
}

/// The gateways of the known routes.
fn gateways(routes: &BTreeMap<String, String>) -> BTreeSet<IpAddr> {
    routes
        .values()
        .flat_map(|p| {
            let words: Vec<&str> = p.split(' ').collect();
            words
                .windows(2)
                .filter(|w| w[0] == "via")
                .filter_map(|w| w[1].parse().ok())
                .collect::<Vec<IpAddr>>()
        })
        .collect()
}

/// Why the state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A dump failed.
    #[error(transparent)]
    Dump(#[from] networking::Error),
    /// Every try was interrupted by changes made while it read.
    #[error("the state kept changing while it was read ({0} tries)")]
    Unsettled(usize),
}

/// Tries of one snapshot before it gives up on an unsettled state.
const SNAPSHOT_TRIES: usize = 5;

/// Reads the whole state with dumps. A dump the kernel marks interrupted
/// (the table changed mid-read: an object may be missing) is read again,
/// so that a resync never reports a change that did not happen.
pub fn snapshot() -> Result<State, SnapshotError> {
    for attempt in 0..SNAPSHOT_TRIES {
        let (state, interrupted) = read_state()?;
        if !interrupted {
            return Ok(state);
        }
        std::thread::sleep(Duration::from_millis(10 << attempt));
    }
    Err(SnapshotError::Unsettled(SNAPSHOT_TRIES))
}

/// One read of every dump, and whether any was interrupted.
fn read_state() -> networking::Result<(State, bool)> {
    let mut state = State::default();
    let (found, mut interrupted) = networking::dump_parsed_checked(18, &[0u8; 16], links::parse)?;
    for l in found {
        state
            .links
            .insert(l.index, (l.name.clone(), link_facts(&l)));
    }
    let (found, i) = networking::dump_parsed_checked(22, &[0u8; 8], addresses::parse)?;
    interrupted |= i;
    for a in found {
        if let Some(t) = address_text(&a, &state) {
            state.addresses.insert(t);
        }
    }
    let (found, i) = networking::dump_parsed_checked(26, &[0u8; 12], routes::parse)?;
    interrupted |= i;
    for r in found {
        if let Some((k, p)) = route_entry(&r, &state) {
            state.routes.insert(k, p);
        }
    }
    let (found, i) = networking::dump_parsed_checked(34, &[0u8; 12], explain::parse_rule)?;
    interrupted |= i;
    for r in found {
        state.rules.insert(rule_entry(&r));
    }
    let gws = gateways(&state.routes);
    let (found, i) = networking::dump_parsed_checked(30, &[0u8; 12], neighbours::parse)?;
    interrupted |= i;
    for n in found {
        if let Some((ip, s)) = neighbour_entry(&n)
            && gws.contains(&ip)
        {
            state.gateways.insert(ip, s);
        }
    }
    Ok((state, interrupted))
}

/// Records the difference between two states (after a resync).
pub fn diff(h: &History, old: &State, new: &State) {
    let links_old: BTreeMap<&str, &str> = old
        .links
        .values()
        .map(|(n, f)| (n.as_str(), f.as_str()))
        .collect();
    let links_new: BTreeMap<&str, &str> = new
        .links
        .values()
        .map(|(n, f)| (n.as_str(), f.as_str()))
        .collect();
    diff_maps(h, "link", &links_old, &links_new);
    diff_sets(h, "address", &old.addresses, &new.addresses);
    let r_old: BTreeMap<&str, &str> = old
        .routes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r_new: BTreeMap<&str, &str> = new
        .routes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    diff_maps(h, "route", &r_old, &r_new);
    diff_sets(h, "rule", &old.rules, &new.rules);
    let g_old: BTreeMap<String, &str> = old
        .gateways
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_str()))
        .collect();
    let g_new: BTreeMap<String, &str> = new
        .gateways
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_str()))
        .collect();
    let g_old: BTreeMap<&str, &str> = g_old.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let g_new: BTreeMap<&str, &str> = g_new.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    diff_maps(h, "neighbour", &g_old, &g_new);
}

fn diff_sets(h: &History, kind: &str, old: &BTreeSet<String>, new: &BTreeSet<String>) {
    for x in new.difference(old) {
        h.push(change(
            kind,
            "added",
            x.clone(),
            String::new(),
            String::new(),
        ));
    }
    for x in old.difference(new) {
        h.push(change(
            kind,
            "removed",
            x.clone(),
            String::new(),
            String::new(),
        ));
    }
}

fn diff_maps(h: &History, kind: &str, old: &BTreeMap<&str, &str>, new: &BTreeMap<&str, &str>) {
    for (k, v) in new {
        match old.get(k) {
            None => h.push(change(
                kind,
                "added",
                k.to_string(),
                String::new(),
                v.to_string(),
            )),
            Some(o) if o != v => h.push(change(
                kind,
                "changed",
                k.to_string(),
                o.to_string(),
                v.to_string(),
            )),
            _ => {}
        }
    }
    for (k, v) in old {
        if !new.contains_key(k) {
            h.push(change(
                kind,
                "removed",
                k.to_string(),
                v.to_string(),
                String::new(),
            ));
        }
    }
}

/// Applies one notification to the state, recording what it changed.
/// Returns true when the kernel may have removed routes without saying so:
/// IPv4 routes through a link that goes down or away are flushed with no
/// RTM_DELROUTE, so the caller reads the routes again.
pub fn apply(h: &History, state: &mut State, message: RouteNetlinkMessage) -> bool {
    use RouteNetlinkMessage as M;
    match message {
        M::NewLink(m) => return new_link(h, state, M::NewLink(m)),
        M::DelLink(m) => {
            let index = m.header.index;
            if let Some((name, facts)) = state.links.remove(&index) {
                h.push(change("link", "removed", name, facts, String::new()));
            }
            return true;
        }
        M::NewAddress(m) => {
            if let Some(t) =
                addresses::parse(M::NewAddress(m)).and_then(|a| address_text(&a, state))
                && state.addresses.insert(t.clone())
            {
                h.push(change("address", "added", t, String::new(), String::new()));
            }
        }
        M::DelAddress(m) => {
            let v4 = u8::from(m.header.family) == 2;
            if let Some(t) =
                addresses::parse(M::NewAddress(m)).and_then(|a| address_text(&a, state))
                && state.addresses.remove(&t)
            {
                h.push(change(
                    "address",
                    "removed",
                    t,
                    String::new(),
                    String::new(),
                ));
            }
            // Routes through a link's last IPv4 address, or from it, go
            // with it, unannounced.
            return v4;
        }
        M::NewRoute(m) => {
            if m.header.flags.bits() & RTM_F_CLONED != 0 {
                return false;
            }
            let Some((k, p)) = routes::parse(M::NewRoute(m)).and_then(|r| route_entry(&r, state))
            else {
                return false;
            };
            match state.routes.insert(k.clone(), p.clone()) {
                None => h.push(change("route", "added", k, String::new(), p)),
                Some(old) if old != p => h.push(change("route", "changed", k, old, p)),
                _ => {}
            }
        }
        M::DelRoute(m) => {
            if m.header.flags.bits() & RTM_F_CLONED != 0 {
                return false;
            }
            let Some((k, _)) = routes::parse(M::NewRoute(m)).and_then(|r| route_entry(&r, state))
            else {
                return false;
            };
            if let Some(old) = state.routes.remove(&k) {
                h.push(change("route", "removed", k, old, String::new()));
            }
        }
        M::NewRule(m) => {
            if let Some(t) = explain::parse_rule(M::NewRule(m)).map(|r| rule_entry(&r))
                && state.rules.insert(t.clone())
            {
                h.push(change("rule", "added", t, String::new(), String::new()));
            }
        }
        M::DelRule(m) => {
            if let Some(t) = explain::parse_rule(M::NewRule(m)).map(|r| rule_entry(&r))
                && state.rules.remove(&t)
            {
                h.push(change("rule", "removed", t, String::new(), String::new()));
            }
        }
        M::NewNeighbour(m) => new_neighbour(h, state, M::NewNeighbour(m)),
        // The kernel drops idle neighbour entries and makes them again on
        // use: a removal is not a change; a FAILED state is.
        M::DelNeighbour(_) => {}
        _ => {}
    }
    false
}

/// A link added or changed; true when it went down or lost its carrier
/// (its IPv4 routes are flushed unannounced).
fn new_link(h: &History, state: &mut State, message: RouteNetlinkMessage) -> bool {
    let Some(l) = links::parse(message) else {
        return false;
    };
    let facts = link_facts(&l);
    match state.links.insert(l.index, (l.name.clone(), facts.clone())) {
        None => h.push(change("link", "added", l.name, String::new(), facts)),
        Some((old_name, old)) => {
            let lost = |what: &str| old.contains(what) && !facts.contains(what);
            if lost(", up,") || lost(", carrier") {
                if old_name != l.name || old != facts {
                    h.push(change("link", "changed", l.name, old, facts));
                }
                return true;
            }
            if old_name != l.name {
                h.push(change(
                    "link",
                    "changed",
                    l.name,
                    format!("name {old_name}"),
                    format!("name {}", state.links[&l.index].0),
                ));
            } else if old != facts {
                h.push(change("link", "changed", l.name, old, facts));
            }
        }
    }
    false
}

/// A gateway's neighbour entry added or changed (other neighbours come and
/// go with use and are not changes).
fn new_neighbour(h: &History, state: &mut State, message: RouteNetlinkMessage) {
    let Some((ip, s)) = neighbours::parse(message)
        .as_ref()
        .and_then(neighbour_entry)
    else {
        return;
    };
    if !gateways(&state.routes).contains(&ip) {
        return;
    }
    match state.gateways.insert(ip, s.clone()) {
        Some(old) if old != s => h.push(change(
            "neighbour",
            "changed",
            format!("gateway {ip}"),
            old,
            s,
        )),
        None => h.push(change(
            "neighbour",
            "added",
            format!("gateway {ip}"),
            String::new(),
            s,
        )),
        _ => {}
    }
}

fn subscribe(h: &History) -> std::io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind(&SocketAddr::new(0, 0))?;
    for (group, name) in GROUPS {
        if let Err(e) = socket.add_membership(group) {
            h.note(format!(
                "{name} are not watched: the kernel refused the subscription ({e})"
            ));
        }
    }
    // A burst (a CNI setting up many pods) must not overflow the buffer:
    // ask for 4 MiB, past rmem_max when the agent may.
    let four = 4 * 1024 * 1024usize;
    if nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::RcvBufForce, &four).is_err()
    {
        let _ = socket.set_rx_buf_sz(four);
    }
    let timeout = nix::sys::time::TimeVal::new(1, 0);
    let _ =
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReceiveTimeout, &timeout);
    Ok(socket)
}

/// Starts the watcher threads for `h`.
pub fn spawn(h: Arc<History>) {
    let rt = h.clone();
    let started = std::thread::Builder::new()
        .name("history-rtnl".into())
        .spawn(move || run(&rt));
    if let Err(e) = started {
        h.note(format!(
            "links, addresses, routes, rules and neighbours are not watched: {e}"
        ));
    }
    super::firewall::spawn(h);
}

fn run(h: &History) {
    let socket = match subscribe(h) {
        Ok(s) => s,
        Err(e) => {
            h.note(format!(
                "links, addresses, routes, rules and neighbours are not watched: no rtnetlink socket ({e})"
            ));
            h.baseline_taken();
            return;
        }
    };
    // Subscribed first, then the baseline: a change during the dump is
    // either in the baseline or arrives as a notification after it.
    let mut state = loop {
        match snapshot() {
            Ok(s) => break s,
            Err(e) => {
                h.note(format!(
                    "the baseline could not be read yet ({e}); retrying"
                ));
                std::thread::sleep(Duration::from_secs(5));
            }
        }
    };
    h.baseline_taken();
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    // A re-read that is owed: routes the kernel may have flushed unsaid,
    // or notifications it dropped. It stays owed until a read works, so a
    // failed or unsettled read is tried again (at the latest when the
    // receive times out, each second) instead of losing the change.
    let mut owed = false;
    let mut failures = 0u32;
    loop {
        buf.clear();
        match socket.recv(&mut buf, 0) {
            Ok(_) => {
                for raw in crate::netlink::split_messages(&buf).flatten() {
                    if let Ok(m) = decode(raw.bytes) {
                        owed |= apply(h, &mut state, m);
                    }
                }
            }
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => {
                // Notifications were lost: read everything again and
                // record the difference.
                h.push(change(
                    "history",
                    "changed",
                    "notifications".into(),
                    String::new(),
                    "the kernel dropped notifications (receive buffer full); the state was read again and \
                     the changes below were found by comparison"
                        .into(),
                ));
                owed = true;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                h.note(format!("the rtnetlink watcher stopped: {e}"));
                return;
            }
        }
        if owed {
            match snapshot() {
                Ok(new) => {
                    diff(h, &state, &new);
                    state = new;
                    owed = false;
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    if failures == 10 {
                        h.note(format!(
                            "after a change, the state could not be read again for 10 tries in a row ({e}); \
                             a route the kernel removed without a notification then was reported late"
                        ));
                    }
                }
            }
        }
    }
}
