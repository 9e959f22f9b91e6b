//! xtables target extensions: each revision's info struct decoded and
//! printed as `iptables-save` (1.8.9) prints it after `-j NAME`.

use super::fmt::{Info, addr, ipv4, save_string, w};
use super::{Ctx, unsupported};
use std::fmt::Write;

/// Appends ` -j NAME …` for one target extension. Returns false when it
/// (or this revision) is not decoded: the text then says so.
pub fn save(out: &mut String, ctx: &Ctx<'_>, name: &str, rev: u8, info: &[u8]) -> bool {
    let start = out.len();
    let i = Info(info);
    // CT rev 2 with the NOTRACK alias flag is what `-j NOTRACK` writes.
    let notrack_alias = name == "CT" && rev == 2 && i.u16(0).is_some_and(|f| f & 0x02 != 0);
    let shown = if notrack_alias { "NOTRACK" } else { name };
    w!(out, " -j {shown}");
    let ok = match (name, rev) {
        ("REJECT", 0) => reject(out, ctx, i),
        ("DNAT", 0) if !ctx.v6 => nat(out, ctx, compat_range(i), " --to-destination ", false),
        ("DNAT", 1) => nat(out, ctx, range(i, false), " --to-destination ", false),
        ("DNAT", 2) => nat(out, ctx, range(i, true), " --to-destination ", false),
        ("SNAT", 0) if !ctx.v6 => nat(out, ctx, compat_range(i), " --to-source ", false),
        ("SNAT", 1) => nat(out, ctx, range(i, false), " --to-source ", false),
        ("SNAT", 2) => nat(out, ctx, range(i, true), " --to-source ", false),
        ("MASQUERADE" | "REDIRECT", 0) => {
            let r = if ctx.v6 {
                range(i, false)
            } else {
                compat_range(i)
            };
            nat(out, ctx, r, " --to-ports ", true)
        }
        ("MARK", 0) => i.u64(0).map(|m| w!(out, " --set-mark 0x{m:x}")),
        ("MARK", 1) if !ctx.v6 => mark_v1(out, i),
        ("MARK", 2) => i
            .u32(0)
            .zip(i.u32(4))
            .map(|(m, k)| w!(out, " --set-xmark 0x{m:x}/0x{k:x}")),
        ("CONNMARK", 0) => connmark_v0(out, i),
        ("CONNMARK", 1 | 2) => connmark(out, i, rev),
        ("LOG", 0) => log(out, i),
        ("NFLOG", 0) => nflog(out, i),
        ("TCPMSS", 0) => i.u16(0).map(|mss| {
            if mss == 0xffff {
                out.push_str(" --clamp-mss-to-pmtu");
            } else {
                w!(out, " --set-mss {mss}");
            }
        }),
        ("CT", 0..=2) => ct(out, i, rev),
        ("NOTRACK", _) => Some(()),
        ("NFQUEUE", 0..=3) => nfqueue(out, i, rev),
        ("TPROXY", 0) if !ctx.v6 => tproxy(out, ctx, i, 0),
        ("TPROXY", 1) => tproxy(out, ctx, i, 1),
        ("TRACE", 0) => Some(()),
        ("CHECKSUM", 0) => i.u8(0).map(|op| {
            if op & 1 != 0 {
                out.push_str(" --checksum-fill");
            }
        }),
        ("CLASSIFY", 0) => i
            .u32(0)
            .map(|p| w!(out, " --set-class {:04x}:{:04x}", p >> 16, p & 0xffff)),
        ("DSCP", 0) => i.u8(0).map(|d| w!(out, " --set-dscp 0x{d:02x}")),
        ("TOS", 0) if !ctx.v6 => i.u8(0).map(|t| w!(out, " --set-tos 0x{t:02x}")),
        ("TOS", 1) => i
            .u8(0)
            .zip(i.u8(1))
            .map(|(v, m)| w!(out, " --set-tos 0x{v:02x}/0x{m:02x}")),
        ("SECMARK", 0 | 1) => secmark(out, i, rev),
        ("TEE", 1) => tee(out, ctx, i),
        ("AUDIT", 0) => i.u8(0).map(|t| match t {
            0 => out.push_str(" --type accept"),
            1 => out.push_str(" --type drop"),
            2 => out.push_str(" --type reject"),
            _ => {}
        }),
        _ => None,
    };
    if ok.is_none() {
        out.truncate(start);
        unsupported(out, "-j", name, rev);
        return false;
    }
    true
}

fn reject(out: &mut String, ctx: &Ctx<'_>, i: Info<'_>) -> Option<()> {
    let with = i.u32(0)?;
    const V4: [&str; 9] = [
        "icmp-net-unreachable",
        "icmp-host-unreachable",
        "icmp-proto-unreachable",
        "icmp-port-unreachable",
        "(null)",
        "icmp-net-prohibited",
        "icmp-host-prohibited",
        "tcp-reset",
        "icmp-admin-prohibited",
    ];
    const V6: [&str; 9] = [
        "icmp6-no-route",
        "icmp6-adm-prohibited",
        "(null)",
        "icmp6-addr-unreachable",
        "icmp6-port-unreachable",
        "(null)",
        "tcp-reset",
        "icmp6-policy-fail",
        "icmp6-reject-route",
    ];
    let names = if ctx.v6 { &V6 } else { &V4 };
    let n = names.get(with as usize)?;
    w!(out, " --reject-with {n}");
    Some(())
}

/// A NAT range as `nf_nat_range2`: flags, min/max address (16 bytes),
/// min/max port (network order), base port.
#[derive(Debug, Clone, Copy)]
struct Range<'a> {
    flags: u32,
    min: &'a [u8],
    max: &'a [u8],
    min_port: u16,
    max_port: u16,
    base: u16,
}

const ZERO16: [u8; 16] = [0; 16];

fn compat_range(i: Info<'_>) -> Option<Range<'_>> {
    Some(Range {
        flags: i.u32(4)?,
        min: i.bytes(8, 4)?,
        max: i.bytes(12, 4)?,
        min_port: i.be16(16)?,
        max_port: i.be16(18)?,
        base: 0,
    })
}

fn range(i: Info<'_>, v2: bool) -> Option<Range<'_>> {
    Some(Range {
        flags: i.u32(0)?,
        min: i.bytes(4, 16)?,
        max: i.bytes(20, 16)?,
        min_port: i.be16(36)?,
        max_port: i.be16(38)?,
        base: if v2 { i.be16(40)? } else { 0 },
    })
}

fn nat(
    out: &mut String,
    ctx: &Ctx<'_>,
    r: Option<Range<'_>>,
    opt: &str,
    skip_colon: bool,
) -> Option<()> {
    let r = r?;
    let mut s = String::new();
    let brackets = ctx.v6 && r.flags & 0x02 != 0;
    if r.flags & 0x01 != 0 {
        if brackets {
            s.push('[');
        }
        addr(&mut s, ctx.v6, r.min);
        // The compat layout keeps 4 bytes; compare as 16 like iptables.
        let pad = |a: &[u8]| -> [u8; 16] {
            let mut x = ZERO16;
            x[..a.len().min(16)].copy_from_slice(&a[..a.len().min(16)]);
            x
        };
        if pad(r.min) != pad(r.max) {
            s.push('-');
            addr(&mut s, ctx.v6, r.max);
        }
        if brackets {
            s.push(']');
        }
    }
    if r.flags & 0x02 != 0 {
        w!(s, ":{}", r.min_port);
        if r.max_port != r.min_port {
            w!(s, "-{}", r.max_port);
        }
        if r.flags & 0x20 != 0 {
            w!(s, "/{}", r.base);
        }
    }
    if !s.is_empty() {
        let s = if skip_colon {
            s.strip_prefix(':').unwrap_or(&s)
        } else {
            &s
        };
        out.push_str(opt);
        out.push_str(s);
    }
    if r.flags & 0x04 != 0 {
        out.push_str(" --random");
    }
    if r.flags & 0x10 != 0 {
        out.push_str(" --random-fully");
    }
    if r.flags & 0x08 != 0 {
        out.push_str(" --persistent");
    }
    Some(())
}

fn mark_v1(out: &mut String, i: Info<'_>) -> Option<()> {
    let (m, mode) = (i.u64(0)?, i.u8(8)?);
    match mode {
        0 => out.push_str(" --set-mark"),
        1 => out.push_str(" --and-mark"),
        2 => out.push_str(" --or-mark"),
        _ => return Some(()),
    }
    w!(out, " 0x{m:x}");
    Some(())
}

fn connmark_v0(out: &mut String, i: Info<'_>) -> Option<()> {
    let (m, mask, mode) = (i.u64(0)?, i.u64(8)?, i.u8(16)?);
    match mode {
        0 => {
            w!(out, " --set-mark 0x{m:x}");
            if mask != 0xffff_ffff {
                w!(out, "/0x{mask:x}");
            }
        }
        1 | 2 => {
            out.push_str(if mode == 1 {
                " --save-mark "
            } else {
                " --restore-mark "
            });
            if mask != 0xffff_ffff {
                w!(out, "--mask 0x{mask:x}");
            }
        }
        _ => out.push_str(" ERROR: UNKNOWN CONNMARK MODE"),
    }
    Some(())
}

fn connmark(out: &mut String, i: Info<'_>, rev: u8) -> Option<()> {
    let (ctmark, ctmask, nfmask) = (i.u32(0)?, i.u32(4)?, i.u32(8)?);
    let (dir, bits, mode) = if rev == 2 {
        (i.u8(12)?, i.u8(13)?, i.u8(14)?)
    } else {
        (0, 0, i.u8(12)?)
    };
    match mode {
        0 => w!(out, " --set-xmark 0x{ctmark:x}/0x{ctmask:x}"),
        1 => w!(
            out,
            " --save-mark --nfmask 0x{nfmask:x} --ctmask 0x{ctmask:x}"
        ),
        2 => w!(
            out,
            " --restore-mark --nfmask 0x{nfmask:x} --ctmask 0x{ctmask:x}"
        ),
        _ => out.push_str(" ERROR: UNKNOWN CONNMARK MODE"),
    }
    if rev == 2 && mode <= 2 && bits != 0 {
        match dir {
            0 => w!(out, " --left-shift-mark {bits}"),
            1 => w!(out, " --right-shift-mark {bits}"),
            _ => return None,
        }
    }
    Some(())
}

fn log(out: &mut String, i: Info<'_>) -> Option<()> {
    let (level, flags) = (i.u8(0)?, i.u8(1)?);
    let prefix = i.cbytes(2, 30)?;
    if !prefix.is_empty() {
        out.push_str(" --log-prefix");
        save_string(out, prefix);
    }
    if level != 4 {
        w!(out, " --log-level {level}");
    }
    for (bit, opt) in [
        (0x01, " --log-tcp-sequence"),
        (0x02, " --log-tcp-options"),
        (0x04, " --log-ip-options"),
        (0x08, " --log-uid"),
        (0x20, " --log-macdecode"),
    ] {
        if flags & bit != 0 {
            out.push_str(opt);
        }
    }
    Some(())
}

/// NFLOG's options from its parts (also what iptables-nft's native `log`
/// expression reads back as).
pub fn nflog_parts(
    out: &mut String,
    prefix: &[u8],
    group: u16,
    len: u32,
    copy_len: bool,
    threshold: u16,
) {
    if !prefix.is_empty() {
        out.push_str(" --nflog-prefix");
        save_string(out, prefix);
    }
    if group != 0 {
        w!(out, " --nflog-group {group}");
    }
    if copy_len {
        w!(out, " --nflog-size {len}");
    } else if len != 0 {
        w!(out, " --nflog-range {len}");
    }
    if threshold != 0 {
        w!(out, " --nflog-threshold {threshold}");
    }
}

fn nflog(out: &mut String, i: Info<'_>) -> Option<()> {
    let (len, group, threshold, flags) = (i.u32(0)?, i.u16(4)?, i.u16(6)?, i.u16(8)?);
    nflog_parts(
        out,
        i.cbytes(12, 64)?,
        group,
        len,
        flags & 1 != 0,
        threshold,
    );
    Some(())
}

fn ct(out: &mut String, i: Info<'_>, rev: u8) -> Option<()> {
    let (flags, zone, events, exp) = (i.u16(0)?, i.u16(2)?, i.u32(4)?, i.u32(8)?);
    let helper = i.cstr(12, 16)?;
    let timeout = if rev >= 1 { i.cstr(28, 32)? } else { "" };
    if flags & 0x02 != 0 {
        return Some(());
    }
    if flags & 0x01 != 0 {
        out.push_str(" --notrack");
    }
    if !helper.is_empty() {
        w!(out, " --helper {helper}");
    }
    if !timeout.is_empty() {
        w!(out, " --timeout {timeout}");
    }
    if events != 0 {
        out.push_str(" --ctevents ");
        let names = [
            "new",
            "related",
            "destroy",
            "reply",
            "assured",
            "protoinfo",
            "helper",
            "mark",
            "natseqinfo",
            "secmark",
        ];
        let set: Vec<&str> = names
            .iter()
            .enumerate()
            .filter(|(b, _)| events & (1 << b) != 0)
            .map(|(_, n)| *n)
            .collect();
        out.push_str(&set.join(","));
    }
    if exp != 0 {
        out.push_str(" --expevents ");
        if exp & 1 != 0 {
            out.push_str("new");
        }
    }
    if flags & 0x10 != 0 || zone != 0 {
        out.push_str(" --zone");
        match (flags & 0x04 != 0, flags & 0x08 != 0) {
            (true, false) => out.push_str("-orig"),
            (false, true) => out.push_str("-reply"),
            _ => {}
        }
        if flags & 0x10 != 0 {
            out.push_str(" mark");
        } else {
            w!(out, " {zone}");
        }
    }
    Some(())
}

fn nfqueue(out: &mut String, i: Info<'_>, rev: u8) -> Option<()> {
    let num = i.u16(0)?;
    if rev == 0 {
        w!(out, " --queue-num {num}");
        return Some(());
    }
    let total = i.u16(2)?;
    if total > 1 {
        w!(
            out,
            " --queue-balance {num}:{}",
            u32::from(num) + u32::from(total) - 1
        );
    } else {
        w!(out, " --queue-num {num}");
    }
    match rev {
        2 if i.u16(4)? & 1 != 0 => out.push_str(" --queue-bypass"),
        3 => {
            let f = i.u16(4)?;
            if f & 1 != 0 {
                out.push_str(" --queue-bypass");
            }
            if f & 2 != 0 {
                out.push_str(" --queue-cpu-fanout");
            }
        }
        _ => {}
    }
    Some(())
}

fn tproxy(out: &mut String, ctx: &Ctx<'_>, i: Info<'_>, rev: u8) -> Option<()> {
    let (mask, value) = (i.u32(0)?, i.u32(4)?);
    let (port, a) = if rev == 0 {
        (i.be16(12)?, i.bytes(8, 4)?)
    } else {
        (i.be16(24)?, i.bytes(8, 16)?)
    };
    w!(out, " --on-port {port} --on-ip ");
    if rev == 0 {
        ipv4(out, a);
    } else {
        addr(out, ctx.v6, a);
    }
    w!(out, " --tproxy-mark 0x{value:x}/0x{mask:x}");
    Some(())
}

fn secmark(out: &mut String, i: Info<'_>, rev: u8) -> Option<()> {
    let mode = i.u8(0)?;
    let ctx = if rev == 0 {
        i.cstr(8, 256)?
    } else {
        i.cstr(1, 256)?
    };
    if mode != 1 {
        return None;
    }
    w!(out, " --selctx {ctx}");
    Some(())
}

fn tee(out: &mut String, ctx: &Ctx<'_>, i: Info<'_>) -> Option<()> {
    out.push_str(" --gateway ");
    addr(out, ctx.v6, i.bytes(0, 16)?);
    let oif = i.cstr(16, 16)?;
    if !oif.is_empty() {
        w!(out, " --oif {oif}");
    }
    Some(())
}
