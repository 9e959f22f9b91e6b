//! nf_tables objects as the kernel dumps them (`NFT_MSG_NEWTABLE`,
//! `NEWCHAIN`, `NEWRULE`, `NEWSET`, `NEWSETELEM` messages), decoded from
//! their netlink attributes into plain values that borrow the message
//! bytes. Pure: no socket here, so every decoder runs on captured bytes.
//!
//! Numbers are big-endian on the wire (nf_tables puts every u32/u64
//! attribute in network order); registers are normalised to 32-bit
//! register numbers.

use crate::netlink::nla::{Nla, NlaIter};

/// nfgenmsg: family, version, resource id (4 bytes before the attributes).
pub const NFGENMSG_LEN: usize = 4;

/// Message types (`NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_*`).
pub mod msg {
    /// Subsystem byte.
    pub const SUBSYS: u16 = 10 << 8;
    /// NFT_MSG_NEWTABLE (what a GETTABLE dump answers with).
    pub const NEWTABLE: u16 = SUBSYS;
    /// NFT_MSG_GETTABLE.
    pub const GETTABLE: u16 = SUBSYS | 1;
    /// NFT_MSG_NEWCHAIN.
    pub const NEWCHAIN: u16 = SUBSYS | 3;
    /// NFT_MSG_GETCHAIN.
    pub const GETCHAIN: u16 = SUBSYS | 4;
    /// NFT_MSG_NEWRULE.
    pub const NEWRULE: u16 = SUBSYS | 6;
    /// NFT_MSG_GETRULE.
    pub const GETRULE: u16 = SUBSYS | 7;
    /// NFT_MSG_NEWSET.
    pub const NEWSET: u16 = SUBSYS | 9;
    /// NFT_MSG_GETSET.
    pub const GETSET: u16 = SUBSYS | 10;
    /// NFT_MSG_NEWSETELEM.
    pub const NEWSETELEM: u16 = SUBSYS | 12;
    /// NFT_MSG_GETSETELEM.
    pub const GETSETELEM: u16 = SUBSYS | 13;
    /// NFT_MSG_GETGEN.
    pub const GETGEN: u16 = SUBSYS | 16;
}

/// Protocol families of nf_tables (`NFPROTO_*`).
pub mod family {
    /// inet (IPv4 and IPv6).
    pub const INET: u8 = 1;
    /// ip.
    pub const IPV4: u8 = 2;
    /// arp.
    pub const ARP: u8 = 3;
    /// netdev.
    pub const NETDEV: u8 = 5;
    /// bridge.
    pub const BRIDGE: u8 = 7;
    /// ip6.
    pub const IPV6: u8 = 10;

    /// The name `nft` gives a family.
    pub fn name(f: u8) -> &'static str {
        match f {
            INET => "inet",
            IPV4 => "ip",
            ARP => "arp",
            NETDEV => "netdev",
            BRIDGE => "bridge",
            IPV6 => "ip6",
            _ => "unknown",
        }
    }

    /// The family of an `nft` name.
    pub fn from_name(s: &str) -> Option<u8> {
        Some(match s {
            "inet" => INET,
            "ip" => IPV4,
            "arp" => ARP,
            "netdev" => NETDEV,
            "bridge" => BRIDGE,
            "ip6" => IPV6,
            _ => return None,
        })
    }
}

/// The family byte of a message's nfgenmsg.
pub fn message_family(payload: &[u8]) -> u8 {
    payload.first().copied().unwrap_or(0)
}

fn attrs(payload: &[u8]) -> NlaIter<'_> {
    NlaIter::new(payload.get(NFGENMSG_LEN..).unwrap_or_default())
}

/// A NUL-terminated string attribute.
pub fn string(v: &[u8]) -> &str {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    std::str::from_utf8(&v[..end]).unwrap_or("")
}

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

fn be64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

/// A table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table<'a> {
    /// NFPROTO family.
    pub family: u8,
    /// Name.
    pub name: &'a str,
    /// NFT_TABLE_F_* flags.
    pub flags: u32,
    /// Kernel handle.
    pub handle: u64,
    /// Chains in it.
    pub chains: u32,
    /// NFTA_TABLE_USERDATA (its comment).
    pub userdata: Option<&'a [u8]>,
}

impl<'a> Table<'a> {
    /// Decodes a NEWTABLE message payload.
    pub fn decode(payload: &'a [u8]) -> Table<'a> {
        let mut t = Table {
            family: message_family(payload),
            name: "",
            flags: 0,
            handle: 0,
            chains: 0,
            userdata: None,
        };
        for a in attrs(payload) {
            match a.kind {
                1 => t.name = string(a.value),
                2 => t.flags = be32(a.value).unwrap_or(0),
                3 => t.chains = be32(a.value).unwrap_or(0),
                4 => t.handle = be64(a.value).unwrap_or(0),
                6 => t.userdata = Some(a.value),
                _ => {}
            }
        }
        t
    }
}

/// A base chain's hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook<'a> {
    /// NF_INET_* hook number (or NF_NETDEV_INGRESS, …).
    pub number: u32,
    /// Priority (signed).
    pub priority: i32,
    /// Device (netdev family).
    pub device: Option<&'a str>,
    /// Devices (netdev family, several).
    pub devices: Vec<&'a str>,
}

/// A chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain<'a> {
    /// NFPROTO family.
    pub family: u8,
    /// Table name.
    pub table: &'a str,
    /// Chain name.
    pub name: &'a str,
    /// Kernel handle.
    pub handle: u64,
    /// Hook of a base chain.
    pub hook: Option<Hook<'a>>,
    /// Policy verdict of a base chain (NF_ACCEPT 1, NF_DROP 0).
    pub policy: Option<u32>,
    /// "filter", "nat", "route".
    pub chain_type: Option<&'a str>,
    /// Base chain counters (packets, bytes).
    pub counters: Option<(u64, u64)>,
    /// NFT_CHAIN_* flags.
    pub flags: u32,
    /// Rules and jumps referring to it.
    pub uses: u32,
    /// NFTA_CHAIN_USERDATA (its comment).
    pub userdata: Option<&'a [u8]>,
}

impl<'a> Chain<'a> {
    /// Decodes a NEWCHAIN message payload.
    pub fn decode(payload: &'a [u8]) -> Chain<'a> {
        let mut c = Chain {
            family: message_family(payload),
            table: "",
            name: "",
            handle: 0,
            hook: None,
            policy: None,
            chain_type: None,
            counters: None,
            flags: 0,
            uses: 0,
            userdata: None,
        };
        for a in attrs(payload) {
            match a.kind {
                1 => c.table = string(a.value),
                2 => c.handle = be64(a.value).unwrap_or(0),
                3 => c.name = string(a.value),
                4 => {
                    let mut h = Hook {
                        number: 0,
                        priority: 0,
                        device: None,
                        devices: Vec::new(),
                    };
                    for x in a.nested() {
                        match x.kind {
                            1 => h.number = be32(x.value).unwrap_or(0),
                            2 => h.priority = be32(x.value).unwrap_or(0) as i32,
                            3 => h.device = Some(string(x.value)),
                            4 => h.devices = x.nested().map(|d| string(d.value)).collect(),
                            _ => {}
                        }
                    }
                    c.hook = Some(h);
                }
                5 => c.policy = be32(a.value),
                6 => c.uses = be32(a.value).unwrap_or(0),
                7 => c.chain_type = Some(string(a.value)),
                8 => c.counters = Some(counters(a)),
                10 => c.flags = be32(a.value).unwrap_or(0),
                12 => c.userdata = Some(a.value),
                _ => {}
            }
        }
        c
    }

    /// Whether it is a base chain (hooked into the stack).
    pub fn is_base(&self) -> bool {
        self.hook.is_some()
    }
}

/// (packets, bytes) of a nested NFTA_COUNTER_* attribute.
fn counters(a: Nla<'_>) -> (u64, u64) {
    let (mut packets, mut bytes) = (0, 0);
    for x in a.nested() {
        match x.kind {
            1 => bytes = be64(x.value).unwrap_or(0),
            2 => packets = be64(x.value).unwrap_or(0),
            _ => {}
        }
    }
    (packets, bytes)
}

/// A rule, with its expressions in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule<'a> {
    /// NFPROTO family.
    pub family: u8,
    /// Table name.
    pub table: &'a str,
    /// Chain name.
    pub chain: &'a str,
    /// Kernel handle.
    pub handle: u64,
    /// The expressions.
    pub exprs: Vec<Expr<'a>>,
    /// NFTA_RULE_USERDATA (comments live here).
    pub userdata: Option<&'a [u8]>,
    /// NFTA_RULE_COMPAT: (protocol, flags) of an xt rule.
    pub compat: Option<(u32, u32)>,
}

impl<'a> Rule<'a> {
    /// Decodes a NEWRULE message payload.
    pub fn decode(payload: &'a [u8]) -> Rule<'a> {
        Self::decode_reusing(payload, Vec::new())
    }

    /// The family, table and chain of a NEWRULE payload, without its
    /// expressions.
    pub fn place(payload: &'a [u8]) -> (u8, &'a str, &'a str) {
        let (mut table, mut chain) = ("", "");
        for a in attrs(payload) {
            match a.kind {
                1 => table = string(a.value),
                2 => {
                    chain = string(a.value);
                    break;
                }
                _ => {}
            }
        }
        (message_family(payload), table, chain)
    }

    /// Decodes a NEWRULE payload into `exprs`' memory (cleared first), so
    /// that a walk over thousands of rules allocates once.
    pub fn decode_reusing(payload: &'a [u8], mut exprs: Vec<Expr<'a>>) -> Rule<'a> {
        exprs.clear();
        let mut r = Rule {
            family: message_family(payload),
            table: "",
            chain: "",
            handle: 0,
            exprs,
            userdata: None,
            compat: None,
        };
        for a in attrs(payload) {
            match a.kind {
                1 => r.table = string(a.value),
                2 => r.chain = string(a.value),
                3 => r.handle = be64(a.value).unwrap_or(0),
                4 => r
                    .exprs
                    .extend(a.nested().filter(|e| e.kind == 1).map(Expr::decode)),
                5 => {
                    let (mut proto, mut flags) = (0, 0);
                    for x in a.nested() {
                        match x.kind {
                            1 => proto = be32(x.value).unwrap_or(0),
                            2 => flags = be32(x.value).unwrap_or(0),
                            _ => {}
                        }
                    }
                    r.compat = Some((proto, flags));
                }
                7 => r.userdata = Some(a.value),
                _ => {}
            }
        }
        r
    }

    /// The rule's counter expression, if it has one: (packets, bytes).
    pub fn counters(&self) -> Option<(u64, u64)> {
        self.exprs.iter().find_map(|e| match e.kind() {
            ExprKind::Counter => Some((e.u64(2).unwrap_or(0), e.u64(1).unwrap_or(0))),
            _ => None,
        })
    }

    /// The comment nft or iptables-nft stored in the user data
    /// (NFTNL_UDATA_RULE_COMMENT, type 0: a NUL-terminated string).
    pub fn comment(&self) -> Option<&'a str> {
        udata(self.userdata?, 0).map(string)
    }
}

/// The value of TLV `kind` in nftnl user data (1-byte type, 1-byte length).
pub fn udata(mut data: &[u8], kind: u8) -> Option<&[u8]> {
    while data.len() >= 2 {
        let (t, len) = (data[0], data[1] as usize);
        let value = data.get(2..2 + len)?;
        if t == kind {
            return Some(value);
        }
        data = &data[2 + len..];
    }
    None
}

/// The expression types labscope reads; anything else is `Other` and is
/// shown as such, never dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExprKind {
    /// payload load (or store with SREG).
    Payload,
    /// meta load (or set with SREG).
    Meta,
    /// cmp.
    Cmp,
    /// bitwise.
    Bitwise,
    /// immediate.
    Immediate,
    /// counter.
    Counter,
    /// xt match.
    Match,
    /// xt target.
    Target,
    /// lookup in a set.
    Lookup,
    /// ct load (or set).
    Ct,
    /// range.
    Range,
    /// nat.
    Nat,
    /// masq.
    Masq,
    /// redir.
    Redir,
    /// reject.
    Reject,
    /// log.
    Log,
    /// limit.
    Limit,
    /// byteorder.
    Byteorder,
    /// exthdr.
    Exthdr,
    /// dynset.
    Dynset,
    /// objref.
    Objref,
    /// queue.
    Queue,
    /// fib.
    Fib,
    /// notrack.
    Notrack,
    /// quota.
    Quota,
    /// connlimit.
    Connlimit,
    /// socket.
    Socket,
    /// tproxy.
    Tproxy,
    /// numgen.
    Numgen,
    /// hash.
    Hash,
    /// rt.
    Rt,
    /// Anything else.
    Other,
}

/// Most attributes an expression has (its type numbers stay below this).
const MAX_ATTRS: usize = 16;

/// Where an attribute's value is in the expression's data: (start, end);
/// (0, 0) with start past the data for an absent attribute.
const ABSENT: (u16, u16) = (u16::MAX, 0);

/// One expression: its name and its attributes by number, as offsets into
/// its data (96 bytes a piece: a kube-proxy table has ~50,000 of them).
#[derive(Clone, PartialEq, Eq)]
pub struct Expr<'a> {
    /// The expression's name ("payload", "cmp", …).
    pub name: &'a str,
    data: &'a [u8],
    attrs: [(u16, u16); MAX_ATTRS],
}

impl std::fmt::Debug for Expr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Expr");
        d.field("name", &self.name);
        for i in 0..MAX_ATTRS as u16 {
            if let Some(a) = self.raw(i) {
                d.field(&format!("a{i}"), &a);
            }
        }
        d.finish()
    }
}

/// Immediate or set data: a value or a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data<'a> {
    /// NFTA_DATA_VALUE bytes.
    Value(&'a [u8]),
    /// NFTA_DATA_VERDICT.
    Verdict(Verdict<'a>),
}

/// A verdict with its chain for jump/goto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict<'a> {
    /// NF_DROP 0, NF_ACCEPT 1, NF_QUEUE 3, NFT_CONTINUE -1, NFT_BREAK -2,
    /// NFT_JUMP -3, NFT_GOTO -4, NFT_RETURN -5.
    pub code: i32,
    /// Target chain of jump/goto.
    pub chain: Option<&'a str>,
}

/// Verdict codes.
pub mod verdict {
    /// NF_DROP.
    pub const DROP: i32 = 0;
    /// NF_ACCEPT.
    pub const ACCEPT: i32 = 1;
    /// NF_QUEUE.
    pub const QUEUE: i32 = 3;
    /// NFT_CONTINUE.
    pub const CONTINUE: i32 = -1;
    /// NFT_BREAK.
    pub const BREAK: i32 = -2;
    /// NFT_JUMP.
    pub const JUMP: i32 = -3;
    /// NFT_GOTO.
    pub const GOTO: i32 = -4;
    /// NFT_RETURN.
    pub const RETURN: i32 = -5;
}

/// Decodes a nested NFTA_DATA_* attribute.
pub fn data(v: &[u8]) -> Option<Data<'_>> {
    for a in NlaIter::new(v) {
        match a.kind {
            1 => return Some(Data::Value(a.value)),
            2 => {
                let mut code = None;
                let mut chain = None;
                for x in a.nested() {
                    match x.kind {
                        1 => code = be32(x.value).map(|c| c as i32),
                        2 => chain = Some(string(x.value)),
                        _ => {}
                    }
                }
                return Some(Data::Verdict(Verdict { code: code?, chain }));
            }
            _ => {}
        }
    }
    None
}

impl<'a> Expr<'a> {
    /// Decodes one NFTA_LIST_ELEM of a rule's expressions.
    pub fn decode(elem: Nla<'a>) -> Expr<'a> {
        let mut e = Expr {
            name: "",
            data: &[],
            attrs: [ABSENT; MAX_ATTRS],
        };
        for a in elem.nested() {
            match a.kind {
                1 => e.name = string(a.value),
                2 if a.value.len() < usize::from(u16::MAX) => {
                    e.data = a.value;
                    let base = a.value.as_ptr() as usize;
                    for x in a.nested() {
                        if let Some(slot) = e.attrs.get_mut(x.kind as usize) {
                            let start = x.value.as_ptr() as usize - base;
                            *slot = (start as u16, (start + x.value.len()) as u16);
                        }
                    }
                }
                _ => {}
            }
        }
        e
    }

    /// Builds an expression from its name and attributes in `data` (tests,
    /// sets' element expressions): each attribute is `data[start..end]`.
    pub fn from_parts(
        name: &'a str,
        data: &'a [u8],
        attributes: &[(u16, usize, usize)],
    ) -> Expr<'a> {
        let mut e = Expr {
            name,
            data,
            attrs: [ABSENT; MAX_ATTRS],
        };
        for &(k, start, end) in attributes {
            if let Some(slot) = e.attrs.get_mut(k as usize) {
                *slot = (start as u16, end as u16);
            }
        }
        e
    }

    /// The kind of expression.
    pub fn kind(&self) -> ExprKind {
        match self.name {
            "payload" => ExprKind::Payload,
            "meta" => ExprKind::Meta,
            "cmp" => ExprKind::Cmp,
            "bitwise" => ExprKind::Bitwise,
            "immediate" => ExprKind::Immediate,
            "counter" => ExprKind::Counter,
            "match" => ExprKind::Match,
            "target" => ExprKind::Target,
            "lookup" => ExprKind::Lookup,
            "ct" => ExprKind::Ct,
            "range" => ExprKind::Range,
            "nat" => ExprKind::Nat,
            "masq" => ExprKind::Masq,
            "redir" => ExprKind::Redir,
            "reject" => ExprKind::Reject,
            "log" => ExprKind::Log,
            "limit" => ExprKind::Limit,
            "byteorder" => ExprKind::Byteorder,
            "exthdr" => ExprKind::Exthdr,
            "dynset" => ExprKind::Dynset,
            "objref" => ExprKind::Objref,
            "queue" => ExprKind::Queue,
            "fib" => ExprKind::Fib,
            "notrack" => ExprKind::Notrack,
            "quota" => ExprKind::Quota,
            "connlimit" => ExprKind::Connlimit,
            "socket" => ExprKind::Socket,
            "tproxy" => ExprKind::Tproxy,
            "numgen" => ExprKind::Numgen,
            "hash" => ExprKind::Hash,
            "rt" => ExprKind::Rt,
            _ => ExprKind::Other,
        }
    }

    /// Raw attribute `k`.
    pub fn raw(&self, k: u16) -> Option<&'a [u8]> {
        let (start, end) = *self.attrs.get(k as usize)?;
        self.data.get(usize::from(start)..usize::from(end))
    }

    /// Whether attribute `k` is present.
    pub fn has(&self, k: u16) -> bool {
        self.raw(k).is_some()
    }

    /// Attribute `k` as a big-endian u32.
    pub fn u32(&self, k: u16) -> Option<u32> {
        be32(self.raw(k)?)
    }

    /// Attribute `k` as a big-endian u64.
    pub fn u64(&self, k: u16) -> Option<u64> {
        be64(self.raw(k)?)
    }

    /// Attribute `k` as a string.
    pub fn str(&self, k: u16) -> Option<&'a str> {
        self.raw(k).map(string)
    }

    /// Attribute `k` as a register, normalised to 32-bit register numbers
    /// (0 = the verdict register; NFT_REG_1..4 become 0, 4, 8, 12 of the
    /// 32-bit registers; NFT_REG32_00.. become 0..).
    pub fn reg(&self, k: u16) -> Option<Reg> {
        self.u32(k).map(Reg::from_wire)
    }

    /// Attribute `k` as nested data (NFTA_DATA_*).
    pub fn data(&self, k: u16) -> Option<Data<'a>> {
        data(self.raw(k)?)
    }

    /// Attribute `k` as nested value bytes (NFTA_DATA_VALUE).
    pub fn value(&self, k: u16) -> Option<&'a [u8]> {
        match self.data(k)? {
            Data::Value(v) => Some(v),
            Data::Verdict(_) => None,
        }
    }
}

/// A register: the verdict register or a 32-bit data register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reg {
    /// NFT_REG_VERDICT.
    Verdict,
    /// A 32-bit data register, 0..=15.
    Data(u8),
}

impl Reg {
    /// From the number on the wire.
    pub fn from_wire(n: u32) -> Reg {
        match n {
            0 => Reg::Verdict,
            1..=4 => Reg::Data(((n - 1) * 4) as u8),
            8..=23 => Reg::Data((n - 8) as u8),
            _ => Reg::Data(u8::MAX),
        }
    }
}

mod sets;

pub use sets::{Element, Set, decode_elements};

/// Builders of kernel-shaped nf_tables messages, for tests and benchmarks.
#[cfg(any(test, feature = "test-support"))]
pub mod build;

#[cfg(test)]
mod tests;
