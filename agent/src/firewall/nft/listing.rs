//! Every nf_tables table as `nft list ruleset` shows it: tables with their
//! sets, chains (type, hook, priority, policy) and rules, each rule's text
//! rendered by [`super::render`] with its counter apart. iptables-nft's own
//! tables are listed too and marked as such (their xtables parts print as
//! `xt match "NAME"`, as nft prints them without libxtables).

use std::fmt::Write;

use labscope_proto::v1 as pb;

use super::Ruleset;
use super::model::{Chain, Rule, Table, family};
use super::render::{self, SetView};
use super::types;
use crate::firewall::iptables_nft::{TABLES as IPTABLES_TABLES, iptables_expression};

/// One table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableView {
    /// "ip", "inet", …
    pub family: &'static str,
    /// Name.
    pub name: String,
    /// Kernel handle.
    pub handle: u64,
    /// "dormant", "owner", …
    pub flags: Vec<&'static str>,
    /// A table iptables-nft made (named and shaped as iptables' own).
    pub iptables_compat: bool,
    /// Its comment.
    pub comment: Option<String>,
    /// Named sets and maps.
    pub sets: Vec<SetInfo>,
    /// Chains in kernel order.
    pub chains: Vec<ChainView>,
}

/// A named set or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInfo {
    /// Name.
    pub name: String,
    /// A map (`type K : V`) rather than a set.
    pub map: bool,
    /// The type as nft writes it (`ipv4_addr . inet_service`, `… : verdict`).
    pub type_text: String,
    /// "constant", "interval", "timeout", "dynamic", …
    pub flags: Vec<&'static str>,
    /// Elements (an interval counts once, not its two ends).
    pub elements: u32,
    /// Kernel handle.
    pub handle: u64,
    /// Its comment.
    pub comment: Option<String>,
}

/// A chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainView {
    /// Name.
    pub name: String,
    /// Kernel handle.
    pub handle: u64,
    /// For a base chain: `type filter hook input priority filter; policy accept;`.
    pub base: Option<BaseChain>,
    /// Its comment.
    pub comment: Option<String>,
    /// Rules in order.
    pub rules: Vec<RuleView>,
}

/// A base chain's hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    /// "filter", "nat", "route".
    pub chain_type: String,
    /// "input", "prerouting", …
    pub hook: String,
    /// As nft prints it: "filter", "dstnat", "filter + 10", "-250".
    pub priority: String,
    /// The number.
    pub priority_value: i32,
    /// "accept" / "drop".
    pub policy: String,
    /// Devices of a netdev chain.
    pub devices: Vec<String>,
}

/// A rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleView {
    /// Kernel handle.
    pub handle: u64,
    /// As nft prints it, without counter and handle.
    pub text: String,
    /// Counter packets (None: the rule has no counter).
    pub packets: Option<u64>,
    /// Counter bytes.
    pub bytes: Option<u64>,
    /// Some part shown as `[unsupported …]`.
    pub partial: bool,
}

fn hook_name(fam: u8, hook: u32) -> String {
    let name = match fam {
        family::NETDEV => match hook {
            0 => "ingress",
            1 => "egress",
            _ => "",
        },
        family::ARP => match hook {
            0 => "input",
            1 => "output",
            2 => "forward",
            _ => "",
        },
        _ => match hook {
            0 => "prerouting",
            1 => "input",
            2 => "forward",
            3 => "output",
            4 => "postrouting",
            5 => "ingress",
            _ => "",
        },
    };
    if name.is_empty() {
        hook.to_string()
    } else {
        name.to_string()
    }
}

/// The priority as nft prints it: a standard name, a name and an offset of
/// at most 10, or the number.
pub fn priority_text(fam: u8, hook: u32, prio: i32) -> String {
    let std: &[(&str, i32)] = if fam == family::BRIDGE {
        &[
            ("dstnat", -300),
            ("filter", -200),
            ("out", 100),
            ("srcnat", 300),
        ]
    } else {
        &[
            ("raw", -300),
            ("mangle", -150),
            ("dstnat", -100),
            ("filter", 0),
            ("security", 50),
            ("srcnat", 100),
        ]
    };
    let fits = |name: &str| match name {
        "dstnat" => fam == family::BRIDGE || hook == 0,
        "srcnat" => fam == family::BRIDGE || hook == 4,
        "out" => hook == 3,
        _ => true,
    };
    if let Some((n, _)) = std.iter().find(|(n, p)| *p == prio && fits(n)) {
        return (*n).to_string();
    }
    for (n, p) in std {
        let off = prio - p;
        if fits(n) && off != 0 && off.abs() <= 10 {
            return format!("{n} {} {}", if off > 0 { '+' } else { '-' }, off.abs());
        }
    }
    prio.to_string()
}

fn set_flags(f: u32) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (bit, n) in [
        (0x2, "constant"),
        (0x4, "interval"),
        (0x10, "timeout"),
        (0x20, "dynamic"),
    ] {
        if f & bit != 0 {
            out.push(n);
        }
    }
    out
}

/// Whether a table is iptables-nft's: an iptables name in ip/ip6 whose
/// rules use only what iptables writes.
fn is_iptables(rs: &Ruleset, t: &Table<'_>) -> bool {
    matches!(t.family, family::IPV4 | family::IPV6)
        && IPTABLES_TABLES.iter().any(|(n, _)| *n == t.name)
        && rs
            .rules()
            .filter(|r| r.family == t.family && r.table == t.name)
            .all(|r| r.exprs.iter().all(iptables_expression))
}

/// Lists the tables of `rs` (already narrowed to a family or table by the
/// read).
pub fn list(rs: &Ruleset) -> Vec<TableView> {
    let mut out = Vec::new();
    // Each chain's rules, found once: a kube-proxy table has thousands of
    // chains, and looking through every rule for each is quadratic.
    let mut by_chain: std::collections::HashMap<(u8, &str, &str), Vec<&[u8]>> =
        std::collections::HashMap::new();
    for payload in rs.rules.iter() {
        by_chain
            .entry(Rule::place(payload))
            .or_default()
            .push(payload);
    }
    for t in rs.tables() {
        let sets: Vec<SetView<'_>> = rs
            .sets()
            .filter(|s| s.family == t.family && s.table == t.name)
            .map(|s| {
                let elements = rs.elements(s.family, s.table, s.name);
                SetView { set: s, elements }
            })
            .collect();
        let chains: Vec<Chain<'_>> = rs
            .chains()
            .filter(|c| c.family == t.family && c.table == t.name)
            .collect();
        let mut view = TableView {
            family: family::name(t.family),
            name: t.name.to_string(),
            handle: t.handle,
            flags: [(1, "dormant"), (2, "owner")]
                .iter()
                .filter(|(b, _)| t.flags & b != 0)
                .map(|(_, n)| *n)
                .collect(),
            iptables_compat: is_iptables(rs, &t),
            comment: comment(t.userdata, 0),
            sets: sets
                .iter()
                .filter(|v| !v.set.is_anonymous())
                .map(|v| set_info(v))
                .collect(),
            chains: Vec::new(),
        };
        for c in &chains {
            let base = c.hook.as_ref().map(|h| BaseChain {
                chain_type: c.chain_type.unwrap_or("filter").to_string(),
                hook: hook_name(t.family, h.number),
                priority: priority_text(t.family, h.number, h.priority),
                priority_value: h.priority,
                policy: match c.policy {
                    Some(0) => "drop".into(),
                    _ => "accept".into(),
                },
                // A chain on one device carries it in both attributes.
                devices: if h.devices.is_empty() {
                    h.device.into_iter().map(str::to_string).collect()
                } else {
                    h.devices.iter().map(|d| d.to_string()).collect()
                },
            });
            let rules = by_chain
                .get(&(t.family, t.name, c.name))
                .into_iter()
                .flatten()
                .map(|payload| Rule::decode(payload))
                .map(|r| {
                    let rt = render::rule(&r, t.family, &sets);
                    RuleView {
                        handle: r.handle,
                        text: rt.text,
                        packets: rt.packets,
                        bytes: rt.bytes,
                        partial: rt.partial,
                    }
                })
                .collect();
            view.chains.push(ChainView {
                name: c.name.to_string(),
                handle: c.handle,
                base,
                comment: comment(c.userdata, 0),
                rules,
            });
        }
        out.push(view);
    }
    out
}

fn set_info(v: &SetView<'_>) -> SetInfo {
    let s = &v.set;
    let parts = types::set_key_parts(s.key_type, s.key_len, &s.fields);
    let mut type_text = parts
        .iter()
        .map(|(n, _, _)| *n)
        .collect::<Vec<_>>()
        .join(" . ");
    let map = s.flags & 0x8 != 0 || s.flags & 0x40 != 0;
    if s.flags & 0x8 != 0 {
        let d = match s.data_type {
            Some(0xffff_ff00) => "verdict".to_string(),
            Some(t) => types::set_key_parts(t, s.data_len.unwrap_or(4), &[])
                .iter()
                .map(|(n, _, _)| *n)
                .collect::<Vec<_>>()
                .join(" . "),
            None => "?".to_string(),
        };
        let _ = write!(type_text, " : {d}");
    }
    let interval = s.flags & 0x4 != 0;
    let elements = v
        .elements
        .iter()
        .filter(|e| !(interval && e.flags & 1 != 0))
        .count() as u32;
    SetInfo {
        name: s.name.to_string(),
        map,
        type_text,
        flags: set_flags(s.flags),
        elements,
        handle: s.handle,
        comment: comment(s.userdata, 7),
    }
}

/// The comment nftnl keeps in an object's user data (TLV `kind`).
fn comment(udata: Option<&[u8]>, kind: u8) -> Option<String> {
    super::model::udata(udata?, kind).map(|v| super::model::string(v).to_string())
}

/// The tables as `nft list ruleset` prints them, except that counters are
/// left out of rule lines and sets show their element count instead of
/// their elements (`# 3 elements`).
pub fn text(tables: &[TableView]) -> String {
    let mut out = String::new();
    for t in tables {
        let _ = writeln!(out, "table {} {} {{", t.family, t.name);
        if !t.flags.is_empty() {
            let _ = writeln!(out, "\tflags {}", t.flags.join(","));
        }
        if let Some(c) = &t.comment {
            let _ = writeln!(out, "\tcomment \"{c}\"");
        }
        let mut first = true;
        for s in &t.sets {
            if !first {
                out.push('\n');
            }
            first = false;
            let _ = writeln!(out, "\t{} {} {{", if s.map { "map" } else { "set" }, s.name);
            let _ = writeln!(out, "\t\ttype {}", s.type_text);
            if !s.flags.is_empty() {
                let _ = writeln!(out, "\t\tflags {}", s.flags.join(","));
            }
            if let Some(c) = &s.comment {
                let _ = writeln!(out, "\t\tcomment \"{c}\"");
            }
            let _ = writeln!(out, "\t\t# {} elements", s.elements);
            out.push_str("\t}\n");
        }
        for c in &t.chains {
            if !first {
                out.push('\n');
            }
            first = false;
            let _ = writeln!(out, "\tchain {} {{", c.name);
            if let Some(b) = &c.base {
                let dev = match b.devices.as_slice() {
                    [] => String::new(),
                    [d] => format!(" device \"{d}\""),
                    many => format!(
                        " devices = {{ {} }}",
                        many.iter()
                            .map(|d| format!("\"{d}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                let _ = writeln!(
                    out,
                    "\t\ttype {} hook {}{dev} priority {}; policy {};",
                    b.chain_type, b.hook, b.priority, b.policy
                );
            }
            if let Some(cm) = &c.comment {
                let _ = writeln!(out, "\t\tcomment \"{cm}\"");
            }
            for r in &c.rules {
                let _ = writeln!(out, "\t\t{}", r.text);
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
    }
    out
}

/// The answer to `GetNftRuleset`: every table of the read, chains and sets
/// whole, the rules of the window `[offset, offset + limit)` over tables and
/// chains in order.
pub fn answer(rs: &Ruleset, offset: usize, limit: usize, wanted: Option<u32>) -> pb::NftRuleset {
    let tables = list(rs);
    let mut out = pb::NftRuleset {
        generation: rs.generation.unwrap_or(0),
        nf_tables_available: rs.generation.is_some(),
        method: crate::firewall::read::NFT_METHOD.to_string(),
        generation_changed: wanted.is_some_and(|g| Some(g) != rs.generation),
        ..Default::default()
    };
    let (mut skip, mut room) = (offset, limit);
    for t in tables {
        let mut pt = pb::NftTable {
            family: t.family.to_string(),
            name: t.name,
            handle: t.handle,
            flags: t.flags.iter().map(|f| f.to_string()).collect(),
            iptables_compat: t.iptables_compat,
            comment: t.comment.unwrap_or_default(),
            sets: t
                .sets
                .into_iter()
                .map(|s| pb::NftSet {
                    name: s.name,
                    map: s.map,
                    r#type: s.type_text,
                    flags: s.flags.iter().map(|f| f.to_string()).collect(),
                    elements: s.elements,
                    handle: s.handle,
                    comment: s.comment.unwrap_or_default(),
                })
                .collect(),
            chains: Vec::new(),
        };
        for c in t.chains {
            out.total_rules += c.rules.len() as u32;
            out.partly_decoded_rules += c.rules.iter().filter(|r| r.partial).count() as u32;
            let mut pc = pb::NftChain {
                name: c.name,
                handle: c.handle,
                base: c.base.is_some(),
                comment: c.comment.unwrap_or_default(),
                rule_count: c.rules.len() as u32,
                ..Default::default()
            };
            if let Some(b) = c.base {
                pc.r#type = b.chain_type;
                pc.hook = b.hook;
                pc.priority = b.priority;
                pc.priority_value = b.priority_value;
                pc.policy = b.policy;
                pc.devices = b.devices;
            }
            let from = skip.min(c.rules.len());
            skip -= from;
            let take = room.min(c.rules.len() - from);
            room -= take;
            pc.rules = c
                .rules
                .into_iter()
                .enumerate()
                .skip(from)
                .take(take)
                .map(|(i, r)| pb::NftRule {
                    position: i as u32 + 1,
                    handle: r.handle,
                    text: r.text,
                    has_counter: r.packets.is_some(),
                    packets: r.packets.unwrap_or(0),
                    bytes: r.bytes.unwrap_or(0),
                    partly_decoded: r.partial,
                })
                .collect();
            pt.chains.push(pc);
        }
        out.tables.push(pt);
    }
    out
}
