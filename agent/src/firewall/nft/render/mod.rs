//! nf_tables rules back into the text `nft list` prints: the expressions
//! of a rule become relations (`ip saddr 10.0.0.0/8`, `tcp dport { 80,
//! 443 }`, `ct state established,related`) and statements (`log prefix
//! "x"`, `dnat to 10.42.0.5:80`, `accept`), with the protocol dependencies
//! nft adds for itself (`meta l4proto tcp` before `tcp dport`) taken out
//! again. Counters are returned apart (the rule's `packets`/`bytes`), not
//! printed. What this does not know is shown as `[unsupported …]`, never
//! dropped.

use std::fmt::Write;

mod elements;
mod exprs;
mod statements;

use elements::elements_text;
use statements::{human_bytes, verdict_text};

use super::model::{Data, Element, Expr, ExprKind, Reg, Rule, Set, family};
use super::types::{self, Field, Net, Ty, value};

/// What a set looks like to the rules that use it.
#[derive(Debug, Clone)]
pub struct SetView<'a> {
    /// The set.
    pub set: Set<'a>,
    /// Its elements (anonymous sets only need them).
    pub elements: Vec<Element<'a>>,
}

/// A rule's text and counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleText {
    /// As `nft list` prints it, without `counter packets N bytes M` and
    /// without the handle comment.
    pub text: String,
    /// Counter packets, if the rule counts.
    pub packets: Option<u64>,
    /// Counter bytes.
    pub bytes: Option<u64>,
    /// Some part is shown as `[unsupported …]`.
    pub partial: bool,
}

/// What a register holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Src {
    Empty,
    Payload {
        base: u32,
        offset: u32,
        len: u32,
    },
    Meta(u32),
    Ct {
        key: u32,
        dir: Option<u8>,
    },
    Imm(Vec<u8>),
    Numgen {
        modulus: u32,
        random: bool,
        offset: u32,
    },
    Fib(String),
    Bits {
        of: Box<Src>,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    Other(String),
}

#[derive(Debug, Clone)]
struct Slot {
    src: Src,
    /// Byte length loaded.
    len: u32,
    mask: Option<Vec<u8>>,
}

impl Slot {
    fn empty() -> Slot {
        Slot {
            src: Src::Empty,
            len: 0,
            mask: None,
        }
    }
}

/// A comparison or a lookup, before dependencies are taken out.
#[derive(Debug, Clone)]
enum Item {
    Rel {
        lhs: Slot,
        op: u32,
        rhs: Vec<u8>,
    },
    Range {
        lhs: Slot,
        neq: bool,
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Lookup {
        parts: Vec<Slot>,
        set: String,
        inverted: bool,
        map: Option<Reg>,
    },
    Stmt(String),
    Unsupported(String),
}

/// Renders one rule of a table of family `fam`.
pub fn rule(rule: &Rule<'_>, fam: u8, sets: &[SetView<'_>]) -> RuleText {
    let mut r = Renderer {
        fam,
        regs: vec![Slot::empty(); 16],
        items: Vec::new(),
        out: RuleText::default(),
        sets,
    };
    for e in &rule.exprs {
        r.expr(e);
    }
    let mut text = r.print();
    if let Some(c) = rule.comment() {
        if !text.is_empty() {
            text.push(' ');
        }
        let _ = write!(text, "comment \"{}\"", c.replace('"', "\\\""));
    }
    r.out.text = text;
    r.out
}

struct Renderer<'s, 'a> {
    fam: u8,
    regs: Vec<Slot>,
    items: Vec<Item>,
    out: RuleText,
    sets: &'s [SetView<'a>],
}

fn slot(r: Option<Reg>) -> Option<usize> {
    match r? {
        Reg::Data(n) if n < 16 => Some(usize::from(n)),
        _ => None,
    }
}

impl Renderer<'_, '_> {
    fn unsupported(&mut self, what: String) {
        self.out.partial = true;
        self.items.push(Item::Unsupported(what));
    }

    fn load(&mut self, dreg: Option<Reg>, src: Src, len: u32) {
        match slot(dreg) {
            Some(d) => {
                self.regs[d] = Slot {
                    src,
                    len,
                    mask: None,
                };
            }
            None => self.unsupported(format!("load into {dreg:?}")),
        }
    }

    fn reg_value(&self, r: Option<Reg>) -> Option<Vec<u8>> {
        match &self.regs[slot(r)?].src {
            Src::Imm(v) => Some(v.clone()),
            _ => None,
        }
    }

    fn expr(&mut self, e: &Expr<'_>) {
        match e.kind() {
            ExprKind::Payload if e.has(5) => self.unsupported("payload set".into()),
            ExprKind::Payload => self.load(
                e.reg(1),
                Src::Payload {
                    base: e.u32(2).unwrap_or(0),
                    offset: e.u32(3).unwrap_or(0),
                    len: e.u32(4).unwrap_or(0),
                },
                e.u32(4).unwrap_or(0),
            ),
            ExprKind::Meta if e.has(3) => self.meta_set(e),
            ExprKind::Meta => {
                let key = e.u32(2).unwrap_or(u32::MAX);
                let len = match key {
                    6 | 7 | 17 | 18 | 26 | 27 => 16,
                    1 => 2,
                    15 | 16 | 19 => 1,
                    _ => 4,
                };
                self.load(e.reg(1), Src::Meta(key), len);
            }
            ExprKind::Ct if e.has(4) => self.ct_set(e),
            ExprKind::Ct => {
                let key = e.u32(2).unwrap_or(u32::MAX);
                let len = match key {
                    8 | 9 | 21 | 22 => 16,
                    1 | 7 | 10 => 1,
                    11 | 12 | 17 => 2,
                    6 => 16,
                    _ => 4,
                };
                let dir = e.raw(3).and_then(|v| v.first().copied());
                self.load(e.reg(1), Src::Ct { key, dir }, len);
            }
            ExprKind::Bitwise => self.bitwise(e),
            ExprKind::Cmp => self.cmp(e),
            ExprKind::Range => {
                let Some(s) = slot(e.reg(1)) else {
                    return self.unsupported("range".into());
                };
                self.items.push(Item::Range {
                    lhs: self.regs[s].clone(),
                    neq: e.u32(2).unwrap_or(0) == 1,
                    from: e.value(3).unwrap_or_default().to_vec(),
                    to: e.value(4).unwrap_or_default().to_vec(),
                });
            }
            ExprKind::Lookup => self.lookup(e),
            ExprKind::Immediate => match e.data(2) {
                Some(Data::Verdict(v)) => {
                    let s = verdict_text(v.code, v.chain);
                    self.items.push(Item::Stmt(s));
                }
                Some(Data::Value(v)) => {
                    let len = v.len() as u32;
                    self.load(e.reg(1), Src::Imm(v.to_vec()), len);
                }
                None => self.unsupported("immediate".into()),
            },
            ExprKind::Counter => {
                self.out.packets = Some(e.u64(2).unwrap_or(0));
                self.out.bytes = Some(e.u64(1).unwrap_or(0));
            }
            ExprKind::Log => self.log(e),
            ExprKind::Limit => self.limit(e),
            ExprKind::Nat => self.nat(e),
            ExprKind::Masq => self.masq_redir(e, "masquerade", 1, 2, 3),
            ExprKind::Redir => self.masq_redir(e, "redirect", 3, 1, 2),
            ExprKind::Reject => self.reject(e),
            ExprKind::Notrack => self.items.push(Item::Stmt("notrack".into())),
            ExprKind::Queue => self.queue(e),
            ExprKind::Numgen => self.numgen(e),
            ExprKind::Fib => self.fib(e),
            ExprKind::Objref => self.objref(e),
            ExprKind::Quota => self.quota(e),
            // xtables parts of iptables-nft rules, as nft prints them when
            // it is built without libxtables; get_iptables_rules decodes them.
            ExprKind::Match => {
                let n = e.str(1).unwrap_or("?");
                self.items.push(Item::Stmt(format!("xt match \"{n}\"")));
            }
            ExprKind::Target => {
                let n = e.str(1).unwrap_or("?");
                self.items.push(Item::Stmt(format!("xt target \"{n}\"")));
            }
            _ => self.unsupported(format!("expression {}", e.name)),
        }
    }

    fn meta_set(&mut self, e: &Expr<'_>) {
        let key = e.u32(2).unwrap_or(u32::MAX);
        let Some((name, ty)) = types::meta_key(key) else {
            return self.unsupported(format!("meta set key {key}"));
        };
        let Some(s) = slot(e.reg(3)) else {
            return self.unsupported("meta set".into());
        };
        let v = self.source_text(&self.regs[s].clone(), ty);
        self.items.push(Item::Stmt(format!("meta {name} set {v}")));
    }

    fn ct_set(&mut self, e: &Expr<'_>) {
        let key = e.u32(2).unwrap_or(u32::MAX);
        let Some((name, ty)) = types::ct_key(key, self.fam == family::IPV6) else {
            return self.unsupported(format!("ct set key {key}"));
        };
        let Some(s) = slot(e.reg(4)) else {
            return self.unsupported("ct set".into());
        };
        let v = self.source_text(&self.regs[s].clone(), ty);
        self.items.push(Item::Stmt(format!("ct {name} set {v}")));
    }

    /// A register's content as a value or an expression (`meta mark set ct
    /// mark`, `… set 0x00000001`).
    fn source_text(&self, s: &Slot, ty: Ty) -> String {
        let mut out = String::new();
        match &s.src {
            Src::Imm(v) => value(&mut out, ty, v),
            other => {
                let mut t = self.lhs_text(&Slot {
                    src: other.clone(),
                    len: s.len,
                    mask: None,
                });
                if let Some(m) = &s.mask {
                    t.push_str(" and ");
                    value(&mut t, ty, m);
                }
                out = t;
            }
        }
        out
    }

    fn lookup(&mut self, e: &Expr<'_>) {
        let name = e.str(1).unwrap_or("?").to_string();
        let Some(start) = slot(e.reg(2)) else {
            return self.unsupported("lookup".into());
        };
        let key_len = self
            .sets
            .iter()
            .find(|s| s.set.name == name)
            .map(|s| s.set.key_len)
            .unwrap_or(self.regs[start].len.max(1));
        // The key may span several registers: a concatenation.
        let mut parts = Vec::new();
        let mut at = start;
        let mut covered = 0;
        while covered < key_len && at < 16 {
            let s = self.regs[at].clone();
            let width = s.len.max(1).div_ceil(4) * 4;
            covered += width;
            at += (width / 4) as usize;
            parts.push(s);
        }
        let map = e.reg(3);
        self.items.push(Item::Lookup {
            parts,
            set: name,
            inverted: e.u32(5).unwrap_or(0) & 1 != 0,
            map,
        });
    }

    /// The protocol context a slot is read in, from the relations before it.
    fn net_of(&self, upto: usize) -> Net {
        match self.fam {
            family::IPV4 => Net::V4,
            family::IPV6 => Net::V6,
            _ => {
                for it in self.items[..upto].iter().rev() {
                    if let Item::Rel { lhs, op: 0, rhs } = it {
                        match (&lhs.src, rhs.first()) {
                            (Src::Meta(15), Some(2)) => return Net::V4,
                            (Src::Meta(15), Some(10)) => return Net::V6,
                            (Src::Meta(1), _) if rhs == &[8, 0] => return Net::V4,
                            (Src::Meta(1), _) if rhs == &[0x86, 0xdd] => return Net::V6,
                            (
                                Src::Payload {
                                    base: 0,
                                    offset: 12,
                                    ..
                                },
                                _,
                            ) if rhs == &[8, 0] => return Net::V4,
                            (
                                Src::Payload {
                                    base: 0,
                                    offset: 12,
                                    ..
                                },
                                _,
                            ) if rhs == &[0x86, 0xdd] => {
                                return Net::V6;
                            }
                            _ => {}
                        }
                    }
                }
                Net::Unknown
            }
        }
    }

    /// The transport protocol a rule matched before position `upto`.
    fn l4_of(&self, upto: usize) -> Option<u8> {
        for it in self.items[..upto].iter().rev() {
            if let Item::Rel { lhs, op: 0, rhs } = it {
                match &lhs.src {
                    Src::Meta(16) => return rhs.first().copied(),
                    Src::Payload {
                        base: 1, offset: 9, ..
                    } if self.net_of(upto) == Net::V4 => {
                        return rhs.first().copied();
                    }
                    Src::Payload {
                        base: 1, offset: 6, ..
                    } if self.net_of(upto) == Net::V6 => {
                        return rhs.first().copied();
                    }
                    _ => {}
                }
            }
        }
        None
    }

    /// A field for a payload slot read at item `at`.
    fn field(&self, s: &Slot, at: usize) -> Option<Field> {
        match s.src {
            Src::Payload {
                base: 0, offset, ..
            } => types::link_field(offset),
            Src::Payload {
                base: 1, offset, ..
            } => types::network_field(self.net_of(at), offset),
            Src::Payload {
                base: 2, offset, ..
            } => {
                let l4 = self.l4_of(at);
                types::transport_field(l4, offset).or_else(|| types::transport_field(None, offset))
            }
            _ => None,
        }
    }

    /// The left-hand side as nft names it, and its type.
    fn lhs_at(&self, s: &Slot, at: usize) -> (String, Ty) {
        match &s.src {
            Src::Payload { base, offset, len } => match self.field(s, at) {
                Some(f) => (format!("{} {}", f.proto, f.name), f.ty),
                None => {
                    let b = ["ll", "nh", "th"].get(*base as usize).unwrap_or(&"?");
                    (format!("@{b},{},{}", offset * 8, len * 8), Ty::BeInt)
                }
            },
            Src::Meta(k) => match types::meta_key(*k) {
                // nft names interfaces and interface groups without `meta`.
                Some((n, ty)) if matches!(*k, 4 | 5 | 6 | 7 | 21 | 22) => (n.to_string(), ty),
                Some((n, ty)) => (format!("meta {n}"), ty),
                None => (format!("meta key {k}"), Ty::Int),
            },
            Src::Ct { key, dir } => {
                let (n, ty) =
                    types::ct_key(*key, self.fam == family::IPV6).unwrap_or(("?", Ty::Int));
                let d = match dir {
                    Some(0) => " original",
                    Some(1) => " reply",
                    _ => "",
                };
                (format!("ct{d} {n}"), ty)
            }
            Src::Numgen {
                modulus,
                random,
                offset,
            } => {
                let mut t = format!(
                    "numgen {} mod {modulus}",
                    if *random { "random" } else { "inc" }
                );
                if *offset != 0 {
                    let _ = write!(t, " offset {offset}");
                }
                (t, Ty::Int)
            }
            Src::Fib(t) => (
                t.clone(),
                if t.ends_with("oifname") {
                    Ty::IfName
                } else if t.ends_with("type") {
                    Ty::AddrType
                } else {
                    Ty::IfIndex
                },
            ),
            Src::Bits { of, mask, xor } => {
                let (inner, ty) = self.lhs_at(
                    &Slot {
                        src: (**of).clone(),
                        len: s.len,
                        mask: None,
                    },
                    at,
                );
                let mut t = inner;
                let not_xor: Vec<u8> = xor.iter().map(|b| !b).collect();
                if mask.iter().all(|&b| b == 0xff) {
                    t.push_str(" ^ ");
                    value(&mut t, ty, xor);
                } else if *mask == not_xor {
                    t.push_str(" | ");
                    value(&mut t, ty, xor);
                } else if mask.iter().zip(xor.iter()).all(|(m, x)| m & x == 0) {
                    // (x & m) ^ v with v outside m is (x & (m|v)) | v,
                    // which is how nft prints it.
                    let widened: Vec<u8> =
                        mask.iter().zip(xor.iter()).map(|(m, x)| m | x).collect();
                    t.push_str(" & ");
                    value(&mut t, ty, &widened);
                    t.push_str(" | ");
                    value(&mut t, ty, xor);
                } else {
                    t.push_str(" & ");
                    value(&mut t, ty, mask);
                    t.push_str(" ^ ");
                    value(&mut t, ty, xor);
                }
                (t, ty)
            }
            Src::Imm(_) => ("[immediate]".into(), Ty::Int),
            Src::Other(t) => (format!("[unsupported {t}]"), Ty::Int),
            Src::Empty => ("[unsupported empty register]".into(), Ty::Int),
        }
    }

    fn lhs_text(&self, s: &Slot) -> String {
        self.lhs_at(s, self.items.len()).0
    }

    /// Whether item `i` is a dependency nft adds itself and prints no more:
    /// `meta nfproto` / `ether type` before a network-header field of that
    /// protocol, `meta l4proto` / `ip protocol` before a transport field.
    fn is_dependency(&self, i: usize) -> bool {
        let Item::Rel { lhs, op: 0, rhs } = &self.items[i] else {
            return false;
        };
        let used_by = |pred: &dyn Fn(&Slot) -> bool| {
            self.items[i + 1..].iter().any(|it| match it {
                Item::Rel { lhs, .. } | Item::Range { lhs, .. } => pred(lhs),
                Item::Lookup { parts, .. } => parts.first().is_some_and(pred),
                _ => false,
            })
        };
        match &lhs.src {
            Src::Meta(15) if self.fam == family::INET => {
                // ICMP and ICMPv6 belong to one family: `icmpv6 type` needs
                // `meta nfproto ipv6` and nft does not print it either.
                let icmp = match rhs.first() {
                    Some(2) => 1u8,
                    Some(10) => 58,
                    _ => 0,
                };
                used_by(&|s: &Slot| matches!(s.src, Src::Payload { base: 1, .. }))
                    || self.items[i + 1..].iter().any(|it| {
                        matches!(it, Item::Rel { lhs: Slot { src: Src::Meta(16), .. }, op: 0, rhs } if rhs.first() == Some(&icmp))
                    })
            }
            // `meta protocol ip` before `ip saddr` (netdev, bridge).
            Src::Meta(1) => used_by(&|s: &Slot| matches!(s.src, Src::Payload { base: 1, .. })),
            // `meta iiftype ether` before an Ethernet header field.
            Src::Meta(8) if rhs.first() == Some(&1) => {
                used_by(&|s: &Slot| matches!(s.src, Src::Payload { base: 0, .. }))
            }
            Src::Meta(16) => {
                let p = rhs.first().copied();
                used_by(
                    &|s: &Slot| matches!(s.src, Src::Payload { base: 2, offset, .. } if types::transport_field(p, offset).is_some_and(|f| f.proto != "th")),
                )
            }
            Src::Payload {
                base: 1, offset: 9, ..
            } if self.net_of(i) == Net::V4 => {
                let p = rhs.first().copied();
                used_by(
                    &|s: &Slot| matches!(s.src, Src::Payload { base: 2, offset, .. } if types::transport_field(p, offset).is_some_and(|f| f.proto != "th")),
                )
            }
            Src::Payload {
                base: 1, offset: 6, ..
            } if self.net_of(i) == Net::V6 => {
                let p = rhs.first().copied();
                used_by(
                    &|s: &Slot| matches!(s.src, Src::Payload { base: 2, offset, .. } if types::transport_field(p, offset).is_some_and(|f| f.proto != "th")),
                )
            }
            _ => false,
        }
    }

    fn print(&mut self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for i in 0..self.items.len() {
            if self.is_dependency(i) {
                continue;
            }
            let text = match self.items[i].clone() {
                Item::Rel { lhs, op, rhs } => self.rel(&lhs, op, &rhs, i),
                Item::Range { lhs, neq, from, to } => {
                    let (l, ty) = self.lhs_at(&lhs, i);
                    let mut t = format!("{l} {}", if neq { "!= " } else { "" });
                    value(&mut t, ty, &from);
                    t.push('-');
                    value(&mut t, ty, &to);
                    t
                }
                Item::Lookup {
                    parts: keys,
                    set,
                    inverted,
                    map,
                } => self.lookup_text(&keys, &set, inverted, map, i),
                Item::Stmt(s) => s,
                Item::Unsupported(s) => format!("[unsupported {s}]"),
            };
            parts.push(text);
        }
        parts.join(" ")
    }

    fn rel(&mut self, lhs: &Slot, op: u32, rhs: &[u8], at: usize) -> String {
        let (l, ty) = self.lhs_at(lhs, at);
        let field_len = self.field(lhs, at).map(|f| f.len);
        let mut t = l;
        let opstr = match op {
            1 => "!= ",
            2 => "< ",
            3 => "<= ",
            4 => "> ",
            5 => ">= ",
            _ => "",
        };
        if let Some(mask) = &lhs.mask {
            // Flags: `ct state established,related` (mask, != 0), `tcp flags
            // syn / syn,ack` (mask, == value).
            if types::is_bitmask(ty) {
                if op == 1 && rhs.iter().all(|&b| b == 0) {
                    t.push(' ');
                    value(&mut t, ty, mask);
                    return t;
                }
                if op == 0 && rhs.iter().all(|&b| b == 0) {
                    t.push_str(" ! ");
                    value(&mut t, ty, mask);
                    return t;
                }
                t.push(' ');
                t.push_str(opstr);
                value(&mut t, ty, rhs);
                t.push_str(" / ");
                value(&mut t, ty, mask);
                return t;
            }
            // An address with a prefix mask.
            if matches!(ty, Ty::Ipv4 | Ty::Ipv6)
                && let Some(n) = crate::firewall::xt::fmt::prefix_len(mask)
            {
                t.push(' ');
                t.push_str(opstr);
                value(&mut t, ty, rhs);
                let _ = write!(t, "/{n}");
                return t;
            }
            t.push_str(" & ");
            value(&mut t, ty, mask);
            t.push_str(if op == 1 { " != " } else { " == " });
            value(&mut t, ty, rhs);
            return t;
        }
        // A shorter load of an address is a byte-aligned prefix.
        if matches!(ty, Ty::Ipv4 | Ty::Ipv6)
            && let Some(full) = field_len
            && lhs.len < full
        {
            t.push(' ');
            t.push_str(opstr);
            value(&mut t, ty, rhs);
            let _ = write!(t, "/{}", lhs.len * 8);
            return t;
        }
        if types::is_bitmask(ty) && op == 0 {
            // `tcp flags == syn`
            t.push_str(" == ");
            value(&mut t, ty, rhs);
            return t;
        }
        t.push(' ');
        t.push_str(opstr);
        value(&mut t, ty, rhs);
        t
    }

    fn lookup_text(
        &mut self,
        keys: &[Slot],
        set: &str,
        inverted: bool,
        map: Option<Reg>,
        at: usize,
    ) -> String {
        let names: Vec<(String, Ty)> = keys.iter().map(|k| self.lhs_at(k, at)).collect();
        let mut t = names
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" . ");
        if inverted {
            t.push_str(" !=");
        }
        let view = self.sets.iter().find(|s| s.set.name == set);
        let anonymous = view.is_some_and(|v| v.set.is_anonymous());
        let keyword = match map {
            Some(Reg::Verdict) => " vmap ",
            Some(_) => " map ",
            None => " ",
        };
        t.push_str(keyword);
        match view {
            Some(v) if anonymous => {
                let tys: Vec<Ty> = names.iter().map(|(_, ty)| *ty).collect();
                t.push_str(&elements_text(v, &tys));
            }
            Some(_) | None => {
                let _ = write!(t, "@{set}");
            }
        }
        if let Some(Reg::Data(_)) = map {
            self.out.partial = true;
            t.push_str(" [unsupported: map result]");
        }
        t
    }
}
