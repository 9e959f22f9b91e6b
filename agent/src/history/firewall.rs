//! The nf_tables side of the history: a socket subscribed to nf_tables
//! notifications says *that* the ruleset changed; a native read shortly
//! after (notifications come in bursts: one `iptables-restore` is thousands
//! of messages) says *what* changed, by comparison with the previous read,
//! chain by chain, at most once per [`MIN_INTERVAL`]. The same thread watches conntrack pressure: the table's
//! use crossing 50, 80 or 95 % of `nf_conntrack_max`, either way.
//!
//! What is kept between reads is small: per chain, a hash of each rule's
//! text (the text too in chains of at most [`TEXT_UP_TO`] rules, up to
//! [`TEXT_BYTES`] in all, so that a removed rule can be named there). Counters are not part of a rule's
//! text, so traffic is never a change.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netlink_sys::protocols::NETLINK_NETFILTER;
use netlink_sys::{Socket, SocketAddr};

use super::{History, change};
use crate::firewall::nft::{self, listing};

/// Chains up to this many rules keep their rules' text…
pub const TEXT_UP_TO: usize = 64;
/// …while the texts kept stay under this many bytes in all (a kube-proxy
/// node's thousands of small chains would otherwise keep every rule).
pub const TEXT_BYTES: usize = 128 * 1024;
/// Rules named per chain in one change; the rest are counted.
const NAMED: usize = 20;
const NFNLGRP_NFTABLES: u32 = 7;
/// Quiet time after the last notification before the ruleset is read.
const SETTLE: Duration = Duration::from_millis(300);
/// Least time between two reads: a kube-proxy that syncs every second
/// costs one read per this interval, its changes grouped.
const MIN_INTERVAL: Duration = Duration::from_secs(5);
/// How often conntrack use is checked.
const CONNTRACK_EVERY: Duration = Duration::from_secs(5);

/// One chain as the history keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainState {
    /// `type … hook … priority …; policy …;` of a base chain, else "".
    pub hook: String,
    /// Each rule's text hash, with the text in small chains.
    pub rules: Vec<(u64, Option<String>)>,
}

/// The ruleset as the history keeps it: "family table" → chains.
pub type FwState = BTreeMap<String, BTreeMap<String, ChainState>>;

/// Rule text by hash, for naming the rules a read added.
pub type Texts = HashMap<u64, String>;

fn hash(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Builds the kept state (and the full text of every rule, for naming
/// added ones) from a listing.
pub fn state_of(tables: &[listing::TableView]) -> (FwState, Texts) {
    let mut out = FwState::new();
    let mut texts = HashMap::new();
    let mut kept = 0;
    for t in tables {
        let chains = out.entry(format!("{} {}", t.family, t.name)).or_default();
        for c in &t.chains {
            let small = c.rules.len() <= TEXT_UP_TO && kept < TEXT_BYTES;
            if small {
                kept += c.rules.iter().map(|r| r.text.len()).sum::<usize>();
            }
            let rules = c
                .rules
                .iter()
                .map(|r| {
                    let h = hash(&r.text);
                    texts.entry(h).or_insert_with(|| r.text.clone());
                    (h, small.then(|| r.text.clone()))
                })
                .collect();
            let hook = c
                .base
                .as_ref()
                .map(|b| {
                    format!(
                        "type {} hook {} priority {}; policy {};",
                        b.chain_type, b.hook, b.priority, b.policy
                    )
                })
                .unwrap_or_default();
            chains.insert(c.name.clone(), ChainState { hook, rules });
        }
    }
    (out, texts)
}

fn lines(items: &[String], total: usize, removed: bool) -> String {
    let sign = if removed { "- " } else { "+ " };
    let mut s: Vec<String> = items
        .iter()
        .take(NAMED)
        .map(|t| format!("{sign}{t}"))
        .collect();
    if total > s.len() {
        s.push(format!(
            "{} {} more rule(s) {}",
            sign.trim(),
            total - s.len(),
            if removed { "removed" } else { "added" }
        ));
    }
    s.join("\n")
}

/// Records what differs between two reads.
pub fn diff(h: &History, old: &FwState, new: &FwState, texts: &Texts) {
    for (table, chains) in new {
        let Some(before) = old.get(table) else {
            let rules: usize = chains.values().map(|c| c.rules.len()).sum();
            h.push(change(
                "firewall",
                "added",
                format!("table {table}"),
                String::new(),
                format!("{} chain(s), {rules} rule(s)", chains.len()),
            ));
            continue;
        };
        for (name, c) in chains {
            let object = format!("{table} {name}");
            let Some(b) = before.get(name) else {
                h.push(change(
                    "firewall",
                    "added",
                    format!("chain {object}"),
                    String::new(),
                    format!(
                        "{}{} rule(s)",
                        if c.hook.is_empty() {
                            String::new()
                        } else {
                            format!("{} ", c.hook)
                        },
                        c.rules.len()
                    ),
                ));
                continue;
            };
            // Multisets of rule hashes: what is in one and not the other.
            let mut count: HashMap<u64, i64> = HashMap::new();
            for (x, _) in &b.rules {
                *count.entry(*x).or_default() -= 1;
            }
            for (x, _) in &c.rules {
                *count.entry(*x).or_default() += 1;
            }
            let mut added = Vec::new();
            let mut added_n = 0;
            let mut left = count.clone();
            for (x, _) in &c.rules {
                if left.get(x).is_some_and(|n| *n > 0) {
                    *left.entry(*x).or_default() -= 1;
                    added_n += 1;
                    if let Some(t) = texts.get(x) {
                        added.push(t.clone());
                    }
                }
            }
            let mut removed = Vec::new();
            let mut removed_n = 0;
            let mut left = count;
            for (x, text) in &b.rules {
                if left.get(x).is_some_and(|n| *n < 0) {
                    *left.entry(*x).or_default() += 1;
                    removed_n += 1;
                    removed.push(
                        text.clone().unwrap_or_else(|| {
                            "(a rule whose text the history did not keep)".into()
                        }),
                    );
                }
            }
            let mut before_text = Vec::new();
            let mut after_text = Vec::new();
            if b.hook != c.hook {
                before_text.push(b.hook.clone());
                after_text.push(c.hook.clone());
            }
            if removed_n > 0 {
                before_text.push(lines(&removed, removed_n, true));
            }
            if added_n > 0 {
                after_text.push(lines(&added, added_n, false));
            }
            if !before_text.is_empty() || !after_text.is_empty() {
                h.push(change(
                    "firewall",
                    "changed",
                    object,
                    before_text.join("\n"),
                    after_text.join("\n"),
                ));
            }
        }
        for (name, c) in before {
            if !chains.contains_key(name) {
                h.push(change(
                    "firewall",
                    "removed",
                    format!("chain {table} {name}"),
                    format!("{} rule(s)", c.rules.len()),
                    String::new(),
                ));
            }
        }
    }
    for (table, chains) in old {
        if !new.contains_key(table) {
            let rules: usize = chains.values().map(|c| c.rules.len()).sum();
            h.push(change(
                "firewall",
                "removed",
                format!("table {table}"),
                format!("{} chain(s), {rules} rule(s)", chains.len()),
                String::new(),
            ));
        }
    }
}

/// Reads the whole nf_tables ruleset (`None`: no nf_tables).
pub fn read() -> Result<Option<(FwState, Texts)>, nft::Error> {
    let rs = nft::Ruleset::read(nft::Scope {
        family: 0,
        table: None,
        sets: true,
        elements: true,
    })?;
    if rs.generation.is_none() {
        return Ok(None);
    }
    let generation = rs.generation;
    let mut tables = listing::list(&rs);
    drop(rs);
    as_iptables(&mut tables);
    // The iptables text is a second read: if the ruleset moved between the
    // two, a chain could be kept in nft words now and iptables words next
    // time, and every rule would look replaced. Read again later instead.
    if nft::generation()? != generation {
        return Err(nft::Error::Unstable(1));
    }
    Ok(Some(state_of(&tables)))
}

/// iptables-nft's tables in the words people wrote them in: each rule as
/// `iptables-save` prints it, where the native read gives it for the same
/// chain rule for rule (else the nft text stays).
fn as_iptables(tables: &mut [listing::TableView]) {
    for v6 in [false, true] {
        let family = if v6 { "ip6" } else { "ip" };
        if !tables
            .iter()
            .any(|t| t.iptables_compat && t.family == family)
        {
            continue;
        }
        let Ok(texts) = crate::firewall::read::read_backends(v6) else {
            continue;
        };
        let Some(nft_text) = texts
            .iter()
            .find(|t| t.backend == labscope_proto::v1::FirewallBackend::Nft)
        else {
            continue;
        };
        let Ok(dump) = crate::firewall::parse::parse(&nft_text.text) else {
            continue;
        };
        for t in tables
            .iter_mut()
            .filter(|t| t.iptables_compat && t.family == family)
        {
            let Some(saved) = dump.table(&t.name) else {
                continue;
            };
            for c in &mut t.chains {
                let Some(sc) = saved.chains.iter().find(|x| x.name == c.name) else {
                    continue;
                };
                if sc.rules.len() == c.rules.len() {
                    for (r, s) in c.rules.iter_mut().zip(&sc.rules) {
                        r.text.clone_from(&s.text);
                    }
                }
            }
        }
    }
}

/// Conntrack use in percent of the maximum, with the numbers (`None`: no
/// conntrack here).
pub fn conntrack_use() -> Option<(u64, u64, u64)> {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/netfilter/{f}"))
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    };
    let (count, max) = (read("nf_conntrack_count")?, read("nf_conntrack_max")?);
    (max > 0).then(|| (count * 100 / max, count, max))
}

/// The pressure level of a use: 0, 50, 80 or 95.
pub fn level(percent: u64) -> u64 {
    [95, 80, 50]
        .into_iter()
        .find(|l| percent >= *l)
        .unwrap_or(0)
}

fn level_text(l: u64) -> String {
    if l == 0 {
        "under 50 %".into()
    } else {
        format!("at or over {l} %")
    }
}

/// Starts the nf_tables and conntrack thread.
pub fn spawn(h: Arc<History>) {
    let hh = h.clone();
    if let Err(e) = std::thread::Builder::new()
        .name("history-nft".into())
        .spawn(move || run(&hh))
    {
        h.note(format!("the firewall and conntrack are not watched: {e}"));
        h.baseline_taken();
    }
}

fn subscribe() -> std::io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind(&SocketAddr::new(0, 0))?;
    socket.add_membership(NFNLGRP_NFTABLES)?;
    let four = 4 * 1024 * 1024usize;
    if nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::RcvBufForce, &four).is_err()
    {
        let _ = socket.set_rx_buf_sz(four);
    }
    let timeout = nix::sys::time::TimeVal::new(0, 250_000);
    let _ =
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReceiveTimeout, &timeout);
    Ok(socket)
}

fn run(h: &History) {
    let socket = match subscribe() {
        Ok(s) => Some(s),
        Err(e) => {
            h.note(format!(
                "the nf_tables ruleset is not watched: the kernel refused the subscription ({e})"
            ));
            None
        }
    };
    let mut fw = match socket.as_ref().map(|_| read()) {
        Some(Ok(Some((s, _)))) => Some(s),
        Some(Ok(None)) => {
            h.note("this kernel has no nf_tables: firewall changes are not watched".into());
            None
        }
        Some(Err(e)) => {
            h.note(format!("the nf_tables baseline could not be read ({e}); firewall changes are compared from the first read that works"));
            None
        }
        None => None,
    };
    let mut ct_level = conntrack_use().map(|(p, _, _)| level(p));
    h.baseline_taken();
    let mut last_ct = Instant::now();
    // When the last notification came, and the first one not yet read.
    let mut dirty: Option<Instant> = None;
    let mut unread_since: Option<Instant> = None;
    let mut last_read = Instant::now() - MIN_INTERVAL;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        match &socket {
            Some(s) => {
                buf.clear();
                match s.recv(&mut buf, 0) {
                    Ok(_) => {
                        dirty = Some(Instant::now());
                        unread_since.get_or_insert_with(Instant::now);
                    }
                    Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => {
                        dirty = Some(Instant::now());
                        unread_since.get_or_insert_with(Instant::now);
                    }
                    Err(_) => {}
                }
            }
            None => std::thread::sleep(Duration::from_millis(500)),
        }
        // Quiet for SETTLE, or changing without a pause for long: read.
        let settled = dirty.is_some_and(|d| d.elapsed() >= SETTLE)
            || unread_since.is_some_and(|d| d.elapsed() >= MIN_INTERVAL);
        if settled && last_read.elapsed() >= MIN_INTERVAL {
            dirty = None;
            unread_since = None;
            last_read = Instant::now();
            match read() {
                Ok(Some((new, texts))) => {
                    if let Some(old) = &fw {
                        diff(h, old, &new, &texts);
                    }
                    fw = Some(new);
                }
                Ok(None) => fw = None,
                // The ruleset moved during the read: try again soon.
                Err(_) => {
                    dirty = Some(Instant::now());
                    unread_since.get_or_insert_with(Instant::now);
                }
            }
        }
        if last_ct.elapsed() >= CONNTRACK_EVERY {
            last_ct = Instant::now();
            if let Some((p, count, max)) = conntrack_use() {
                let now = level(p);
                if let Some(before) = ct_level
                    && before != now
                {
                    h.push(change(
                        "conntrack",
                        "changed",
                        "conntrack table".into(),
                        level_text(before),
                        format!("{} ({count} of {max} entries, {p} %)", level_text(now)),
                    ));
                }
                ct_level = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(hook: &str, rules: &[&str]) -> ChainState {
        ChainState {
            hook: hook.into(),
            rules: rules
                .iter()
                .map(|r| (hash(r), Some(r.to_string())))
                .collect(),
        }
    }

    fn state(tables: &[(&str, &[(&str, ChainState)])]) -> (FwState, Texts) {
        let mut s = FwState::new();
        let mut texts = Texts::new();
        for (t, chains) in tables {
            let e = s.entry(t.to_string()).or_default();
            for (name, c) in chains.iter() {
                for (h, text) in &c.rules {
                    texts.insert(*h, text.clone().unwrap_or_default());
                }
                e.insert(name.to_string(), c.clone());
            }
        }
        (s, texts)
    }

    #[test]
    fn a_diff_names_what_each_chain_gained_and_lost() {
        let (old, _) = state(&[
            (
                "ip nat",
                &[(
                    "POSTROUTING",
                    chain("", &["-A POSTROUTING -j MASQUERADE", "-A X -j RETURN"]),
                )],
            ),
            ("inet gone", &[("c", chain("", &[]))]),
        ]);
        let (new, texts) = state(&[
            (
                "ip nat",
                &[
                    (
                        "POSTROUTING",
                        chain(
                            "",
                            &[
                                "-A X -j RETURN",
                                "-A X -j RETURN",
                                "-A POSTROUTING -d 10.0.0.0/8 -j RETURN",
                            ],
                        ),
                    ),
                    (
                        "NEW",
                        chain(
                            "type nat hook output priority -100; policy accept;",
                            &["-A NEW -j ACCEPT"],
                        ),
                    ),
                ],
            ),
            (
                "inet mine",
                &[("input", chain("", &["tcp dport 22 accept"]))],
            ),
        ]);
        let h = History::new(1 << 20);
        diff(&h, &old, &new, &texts);
        let got: Vec<(String, String, String, String)> = h
            .list(&Default::default())
            .changes
            .into_iter()
            .map(|c| (c.action, c.object, c.before, c.after))
            .collect();
        let find = |o: &str| {
            got.iter()
                .find(|c| c.1 == o)
                .cloned()
                .unwrap_or_else(|| panic!("{o}: {got:#?}"))
        };
        let post = find("ip nat POSTROUTING");
        assert_eq!(post.0, "changed");
        assert_eq!(post.2, "- -A POSTROUTING -j MASQUERADE");
        // A duplicate of a kept rule counts as added.
        assert_eq!(
            post.3,
            "+ -A X -j RETURN\n+ -A POSTROUTING -d 10.0.0.0/8 -j RETURN"
        );
        assert_eq!(find("chain ip nat NEW").0, "added");
        assert_eq!(find("table inet mine").0, "added");
        assert_eq!(find("table inet gone").0, "removed");
        assert_eq!(got.len(), 4, "{got:#?}");
        // The same state twice: nothing.
        let h = History::new(1 << 20);
        diff(&h, &new, &new, &texts);
        assert!(h.list(&Default::default()).changes.is_empty());
    }

    #[test]
    fn conntrack_levels_cross_at_50_80_95() {
        for (p, l) in [
            (0, 0),
            (49, 0),
            (50, 50),
            (79, 50),
            (80, 80),
            (94, 80),
            (95, 95),
            (100, 95),
        ] {
            assert_eq!(level(p), l, "{p} %");
        }
    }
}
