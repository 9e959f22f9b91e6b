//! xtables match extensions: each revision's info struct decoded and
//! printed as `iptables-save` (1.8.9) prints it after `-m NAME`. The same
//! bytes come from nf_tables compat `match` expressions and from legacy
//! x_tables blobs. A revision is decoded with its own layout.

use super::fmt::{Info, addr, ipv4, mark_mask, mask_suffix, save_string, w};
use super::{Ctx, unsupported};

mod misc;
mod rate;

use misc::*;
use rate::*;
pub use rate::{limit_rate, probability};
use std::fmt::Write;

/// Appends ` -m NAME …` for one match. Returns false when the match (or
/// this revision of it, or a struct too short for it) is not decoded: the
/// text then says so with ` [unsupported revision N]`.
pub fn save(out: &mut String, ctx: &Ctx<'_>, name: &str, rev: u8, info: &[u8]) -> bool {
    let start = out.len();
    let i = Info(info);
    // The name printed: conntrack's `state` alias, icmp6's own.
    let shown = match name {
        "conntrack" if rev >= 1 && i.u16(146).is_some_and(|f| f & 0x2000 != 0) => "state",
        other => other,
    };
    w!(out, " -m {shown}");
    let ok = match (name, rev) {
        ("comment", 0) => comment(out, i),
        ("conntrack", 0) => conntrack_v0(out, i),
        ("conntrack", 1..=3) => conntrack(out, ctx, i, rev),
        ("state", 0) => state(out, i),
        ("mark" | "connmark", 1) => mark(out, i.u32(0), i.u32(4), i.u8(8)),
        ("mark" | "connmark", 0) => mark(
            out,
            i.u64(0).map(|v| v as u32),
            i.u64(8).map(|v| v as u32),
            i.u8(16),
        ),
        ("multiport", 0 | 1) => multiport(out, i, rev),
        ("tcp", 0) => tcp(out, i),
        ("udp", 0) => udp(out, i),
        ("icmp", 0) if !ctx.v6 => icmp(out, i, false),
        ("icmp6", 0) if ctx.v6 => icmp(out, i, true),
        ("addrtype", 0 | 1) => addrtype(out, i, rev),
        ("statistic", 0) => statistic(out, i),
        ("limit", 0) => limit(out, i),
        ("length", 0) => length(out, i),
        ("pkttype", 0) => pkttype(out, i),
        ("hashlimit", 0..=3) => hashlimit(out, ctx, i, rev),
        ("recent", 0 | 1) => recent(out, ctx, i, rev),
        ("iprange", 0) if !ctx.v6 => iprange(out, ctx, i, 0),
        ("iprange", 1) => iprange(out, ctx, i, 1),
        ("owner", 0) => owner_v0(out, ctx, i),
        ("owner", 1) => owner(out, i),
        ("physdev", 0) => physdev(out, i),
        ("set", 0..=4) => set(out, ctx, i, rev),
        ("mac", 0) => mac(out, i),
        ("helper", 0) => helper(out, i),
        ("socket", 0) => Some(()),
        ("socket", 1..=3) => socket(out, i, rev),
        ("devgroup", 0) => devgroup(out, i),
        ("cgroup", 0..=2) => cgroup(out, i, rev),
        ("rpfilter", 0) => rpfilter(out, i),
        ("dscp", 0) => dscp(out, i),
        ("tos", 0 | 1) => tos(out, i, rev),
        ("connlimit", 0 | 1) => connlimit(out, ctx, i, rev),
        ("connbytes", 0) => connbytes(out, i),
        ("quota", 0) => quota(out, i),
        ("esp", 0) => spi(out, i, " --espspi "),
        ("ah", 0) => ah(out, ctx, i),
        ("nfacct", 0 | 1) => nfacct(out, i),
        ("cluster", 0) => cluster(out, i),
        ("string", 0 | 1) => string(out, i, rev),
        ("time", 0) => time(out, i),
        ("ipvs", 0) => ipvs(out, ctx, i),
        ("ttl", 0) if !ctx.v6 => ttl_hl(out, i, "ttl"),
        ("hl", 0) if ctx.v6 => ttl_hl(out, i, "hl"),
        _ => None,
    };
    if ok.is_none() {
        out.truncate(start);
        unsupported(out, "-m", name, rev);
        return false;
    }
    true
}

pub(super) fn inv(out: &mut String, yes: bool) {
    if yes {
        out.push_str(" !");
    }
}

fn comment(out: &mut String, i: Info<'_>) -> Option<()> {
    out.push_str(" --comment");
    save_string(out, i.cbytes(0, 255.min(i.len()))?);
    Some(())
}

/// Names of conntrack states in the order iptables prints them.
const CT_STATES: [(u16, &str); 7] = [
    (0x01, "INVALID"),
    (0x08, "NEW"),
    (0x04, "RELATED"),
    (0x02, "ESTABLISHED"),
    (0x100, "UNTRACKED"),
    (0x40, "SNAT"),
    (0x80, "DNAT"),
];

const CT_STATUS: [(u16, &str); 4] = [
    (0x1, "EXPECTED"),
    (0x2, "SEEN_REPLY"),
    (0x4, "ASSURED"),
    (0x8, "CONFIRMED"),
];

fn list(out: &mut String, bits: u16, names: &[(u16, &str)], first_sep: &str) {
    let mut sep = first_sep;
    for (bit, n) in names {
        if bits & bit != 0 {
            out.push_str(sep);
            out.push_str(n);
            sep = ",";
        }
    }
}

fn conntrack(out: &mut String, ctx: &Ctx<'_>, i: Info<'_>, rev: u8) -> Option<()> {
    let flags = i.u16(146)?;
    let invf = i.u16(148)?;
    let (state, status) = if rev == 1 {
        (u16::from(i.u8(150)?), u16::from(i.u8(151)?))
    } else {
        (i.u16(150)?, i.u16(152)?)
    };
    let on = |b: u16| flags & b != 0;
    let neg = |b: u16| invf & b != 0;
    if on(0x1) {
        inv(out, neg(0x1));
        out.push_str(if on(0x2000) { " --state" } else { " --ctstate" });
        list(out, state, &CT_STATES, " ");
    }
    if on(0x2) {
        inv(out, neg(0x2));
        w!(out, " --ctproto {}", i.u16(136)?);
    }
    for (bit, opt, a, m) in [
        (0x4, "--ctorigsrc", 0, 16),
        (0x8, "--ctorigdst", 32, 48),
        (0x10, "--ctreplsrc", 64, 80),
        (0x20, "--ctrepldst", 96, 112),
    ] {
        if on(bit) {
            inv(out, neg(bit));
            w!(out, " {opt} ");
            addr(out, ctx.v6, i.bytes(a, 16)?);
            mask_suffix(out, ctx.v6, i.bytes(m, 16)?);
        }
    }
    for (bit, opt, at, high) in [
        (0x100, "--ctorigsrcport", 138, 154),
        (0x200, "--ctorigdstport", 140, 156),
        (0x400, "--ctreplsrcport", 142, 158),
        (0x800, "--ctrepldstport", 144, 160),
    ] {
        if on(bit) {
            inv(out, neg(bit));
            if rev == 3 {
                let (lo, hi) = (i.u16(at)?, i.u16(high)?);
                if hi == 0 || lo == hi {
                    w!(out, " {opt} {lo}");
                } else {
                    w!(out, " {opt} {lo}:{hi}");
                }
            } else {
                w!(out, " {opt} {}", i.be16(at)?);
            }
        }
    }
    if on(0x40) {
        inv(out, neg(0x40));
        out.push_str(" --ctstatus");
        if status == 0 {
            out.push_str(" NONE");
        } else {
            list(out, status, &CT_STATUS, " ");
        }
    }
    if on(0x80) {
        inv(out, neg(0x80));
        let (lo, hi) = (i.u32(128)?, i.u32(132)?);
        if lo == hi {
            w!(out, " --ctexpire {lo}");
        } else {
            w!(out, " --ctexpire {lo}:{hi}");
        }
    }
    if on(0x1000) {
        out.push_str(if neg(0x1000) {
            " --ctdir REPLY"
        } else {
            " --ctdir ORIGINAL"
        });
    }
    Some(())
}

fn conntrack_v0(out: &mut String, i: Info<'_>) -> Option<()> {
    i.bytes(0, 80)?;
    let flags = u16::from(i.u8(72)?);
    let invf = u16::from(i.u8(73)?);
    let on = |b: u16| flags & b != 0;
    if on(0x1) {
        inv(out, invf & 0x1 != 0);
        out.push_str(" --ctstate");
        list(out, i.u32(0)? as u16, &CT_STATES, " ");
    }
    if on(0x2) {
        inv(out, invf & 0x2 != 0);
        w!(out, " --ctproto {}", i.u16(22)?);
    }
    for (bit, opt, a, m) in [
        (0x4, "--ctorigsrc", 8, 40),
        (0x8, "--ctorigdst", 16, 48),
        (0x10, "--ctreplsrc", 24, 44),
        (0x20, "--ctrepldst", 32, 52),
    ] {
        if on(bit) {
            inv(out, invf & bit != 0);
            w!(out, " {opt} ");
            ipv4(out, i.bytes(a, 4)?);
            mask_suffix(out, false, i.bytes(m, 4)?);
        }
    }
    if on(0x40) {
        inv(out, invf & 0x40 != 0);
        out.push_str(" --ctstatus");
        let s = i.u32(4)? as u16;
        if s == 0 {
            out.push_str(" NONE");
        } else {
            list(out, s, &CT_STATUS, " ");
        }
    }
    if on(0x80) {
        inv(out, invf & 0x80 != 0);
        let (lo, hi) = (i.u64(56)?, i.u64(64)?);
        if lo == hi {
            w!(out, " --ctexpire {lo}");
        } else {
            w!(out, " --ctexpire {lo}:{hi}");
        }
    }
    Some(())
}

fn state(out: &mut String, i: Info<'_>) -> Option<()> {
    let mask = i.u32(0)?;
    out.push_str(" --state ");
    let mut sep = "";
    for (bit, n) in [
        (0x1u32, "INVALID"),
        (0x8, "NEW"),
        (0x4, "RELATED"),
        (0x2, "ESTABLISHED"),
        (0x100, "UNTRACKED"),
    ] {
        if mask & bit != 0 {
            out.push_str(sep);
            out.push_str(n);
            sep = ",";
        }
    }
    Some(())
}

fn mark(out: &mut String, m: Option<u32>, mask: Option<u32>, invert: Option<u8>) -> Option<()> {
    inv(out, invert? != 0);
    out.push_str(" --mark");
    mark_mask(out, m?, mask?);
    Some(())
}

fn multiport(out: &mut String, i: Info<'_>, rev: u8) -> Option<()> {
    let flags = i.u8(0)?;
    let count = usize::from(i.u8(1)?).min(15);
    if rev == 1 {
        inv(out, i.u8(47)? != 0);
    }
    match flags {
        0 => out.push_str(" --sports "),
        1 => out.push_str(" --dports "),
        2 => out.push_str(" --ports "),
        _ => return Some(()),
    }
    let mut k = 0;
    while k < count {
        if k > 0 {
            out.push(',');
        }
        w!(out, "{}", i.u16(2 + 2 * k)?);
        if rev == 1 && i.u8(32 + k)? != 0 && k + 1 < 15 {
            w!(out, ":{}", i.u16(2 + 2 * (k + 1))?);
            k += 1;
        }
        k += 1;
    }
    Some(())
}

fn ports(out: &mut String, opt: &str, lo: u16, hi: u16, invert: bool) {
    if (lo, hi) == (0, 65535) {
        return;
    }
    inv(out, invert);
    if lo == hi {
        w!(out, " {opt} {lo}");
    } else {
        w!(out, " {opt} {lo}:{hi}");
    }
}

/// TCP flag names in bit order.
pub fn tcp_flags(out: &mut String, x: u8) {
    if x == 0 {
        out.push_str("NONE");
        return;
    }
    let mut sep = "";
    for (bit, n) in [
        (0x01, "FIN"),
        (0x02, "SYN"),
        (0x04, "RST"),
        (0x08, "PSH"),
        (0x10, "ACK"),
        (0x20, "URG"),
    ] {
        if x & bit != 0 {
            out.push_str(sep);
            out.push_str(n);
            sep = ",";
        }
    }
}

fn tcp(out: &mut String, i: Info<'_>) -> Option<()> {
    let invf = i.u8(11)?;
    ports(out, "--sport", i.u16(0)?, i.u16(2)?, invf & 0x1 != 0);
    ports(out, "--dport", i.u16(4)?, i.u16(6)?, invf & 0x2 != 0);
    let option = i.u8(8)?;
    if option != 0 || invf & 0x8 != 0 {
        inv(out, invf & 0x8 != 0);
        w!(out, " --tcp-option {option}");
    }
    let (mask, cmp) = (i.u8(9)?, i.u8(10)?);
    if mask != 0 || invf & 0x4 != 0 {
        inv(out, invf & 0x4 != 0);
        out.push_str(" --tcp-flags ");
        tcp_flags(out, mask);
        out.push(' ');
        tcp_flags(out, cmp);
    }
    Some(())
}

fn udp(out: &mut String, i: Info<'_>) -> Option<()> {
    let invf = i.u8(8)?;
    ports(out, "--sport", i.u16(0)?, i.u16(2)?, invf & 0x1 != 0);
    ports(out, "--dport", i.u16(4)?, i.u16(6)?, invf & 0x2 != 0);
    Some(())
}

fn icmp(out: &mut String, i: Info<'_>, v6: bool) -> Option<()> {
    let (t, lo, hi, invf) = (i.u8(0)?, i.u8(1)?, i.u8(2)?, i.u8(3)?);
    inv(out, invf & 1 != 0);
    if v6 {
        w!(out, " --icmpv6-type {t}");
    } else if t == 0xff {
        out.push_str(" --icmp-type any");
        return Some(());
    } else {
        w!(out, " --icmp-type {t}");
    }
    if (lo, hi) != (0, 255) {
        w!(out, "/{lo}");
    }
    Some(())
}

const ADDRTYPES: [&str; 12] = [
    "UNSPEC",
    "UNICAST",
    "LOCAL",
    "BROADCAST",
    "ANYCAST",
    "MULTICAST",
    "BLACKHOLE",
    "UNREACHABLE",
    "PROHIBIT",
    "THROW",
    "NAT",
    "XRESOLVE",
];

fn addrtypes(out: &mut String, mask: u16) {
    let mut sep = "";
    for (bit, n) in ADDRTYPES.iter().enumerate() {
        if mask & (1 << bit) != 0 {
            out.push_str(sep);
            out.push_str(n);
            sep = ",";
        }
    }
}

fn addrtype(out: &mut String, i: Info<'_>, rev: u8) -> Option<()> {
    let (src, dst) = (i.u16(0)?, i.u16(2)?);
    let (inv_src, inv_dst, flags) = if rev == 0 {
        (i.u32(4)? != 0, i.u32(8)? != 0, 0)
    } else {
        let f = i.u32(4)?;
        (f & 1 != 0, f & 2 != 0, f)
    };
    if src != 0 {
        inv(out, inv_src);
        out.push_str(" --src-type ");
        addrtypes(out, src);
    }
    if dst != 0 {
        inv(out, inv_dst);
        out.push_str(" --dst-type ");
        addrtypes(out, dst);
    }
    if flags & 0x4 != 0 {
        out.push_str(" --limit-iface-in");
    }
    if flags & 0x8 != 0 {
        out.push_str(" --limit-iface-out");
    }
    Some(())
}

fn length(out: &mut String, i: Info<'_>) -> Option<()> {
    let (lo, hi, invert) = (i.u16(0)?, i.u16(2)?, i.u8(4)?);
    inv(out, invert != 0);
    if lo == hi {
        w!(out, " --length {lo}");
    } else {
        w!(out, " --length {lo}:{hi}");
    }
    Some(())
}

/// The packet type names `pkttype` prints.
pub fn pkttype_name(t: i32) -> Option<&'static str> {
    Some(match t {
        0 => "unicast",
        1 => "broadcast",
        2 => "multicast",
        3 => "otherhost",
        _ => return None,
    })
}

fn pkttype(out: &mut String, i: Info<'_>) -> Option<()> {
    let (t, invert) = (i.i32(0)?, i.i32(4)?);
    inv(out, invert != 0);
    match pkttype_name(t) {
        Some(n) => w!(out, " --pkt-type {n}"),
        None => w!(out, " --pkt-type {t}"),
    }
    Some(())
}

fn ttl_hl(out: &mut String, i: Info<'_>, what: &str) -> Option<()> {
    let (mode, v) = (i.u8(0)?, i.u8(1)?);
    match mode {
        0 => w!(out, " --{what}-eq {v}"),
        1 => w!(out, " ! --{what}-eq {v}"),
        2 => w!(out, " --{what}-lt {v}"),
        3 => w!(out, " --{what}-gt {v}"),
        _ => return None,
    }
    Some(())
}
