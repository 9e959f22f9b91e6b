//! Matches about addresses, owners, devices and sets: iprange, owner,
//! physdev, set, mac, helper, socket, devgroup, cgroup, rpfilter, dscp,
//! tos, esp, ah, nfacct, string, time, ipvs.

use super::super::Ctx;
use super::super::fmt::{Info, addr, ipv4, ipv6, mask_suffix, save_string, w};
use super::inv;
use std::fmt::Write;

pub(super) fn iprange(out: &mut String, ctx: &Ctx<'_>, i: Info<'_>, rev: u8) -> Option<()> {
    let (step, flags_at, width) = if rev == 0 { (4, 16, 4) } else { (16, 64, 16) };
    let flags = i.u8(flags_at)?;
    let v6 = rev == 1 && ctx.v6;
    for (bit, invbit, opt, base) in [
        (0x01, 0x10, " --src-range ", 0),
        (0x02, 0x20, " --dst-range ", 2 * step),
    ] {
        if flags & bit != 0 {
            inv(out, flags & invbit != 0);
            out.push_str(opt);
            addr(out, v6, i.bytes(base, width)?);
            out.push('-');
            addr(out, v6, i.bytes(base + step, width)?);
        }
    }
    Some(())
}

pub(super) fn owner_v0(out: &mut String, ctx: &Ctx<'_>, i: Info<'_>) -> Option<()> {
    let (m, invert) = (i.u8(32)?, i.u8(33)?);
    for (bit, opt, at) in [
        (0x01, "--uid-owner", 0),
        (0x02, "--gid-owner", 4),
        (0x04, "--pid-owner", 8),
        (0x08, "--sid-owner", 12),
    ] {
        if m & bit != 0 {
            inv(out, invert & bit != 0);
            w!(out, " {opt} {}", i.u32(at)?);
        }
    }
    if !ctx.v6 && m & 0x10 != 0 {
        inv(out, invert & 0x10 != 0);
        w!(out, " --cmd-owner {}", i.cstr(16, 16)?);
    }
    Some(())
}

pub(super) fn owner(out: &mut String, i: Info<'_>) -> Option<()> {
    let (m, invert) = (i.u8(16)?, i.u8(17)?);
    let range = |out: &mut String, lo: u32, hi: u32| {
        if lo == hi {
            w!(out, " {lo}");
        } else {
            w!(out, " {lo}-{hi}");
        }
    };
    if m & 0x04 != 0 {
        inv(out, invert & 0x04 != 0);
        out.push_str(" --socket-exists");
    }
    if m & 0x01 != 0 {
        inv(out, invert & 0x01 != 0);
        out.push_str(" --uid-owner");
        range(out, i.u32(0)?, i.u32(4)?);
    }
    if m & 0x02 != 0 {
        inv(out, invert & 0x02 != 0);
        out.push_str(" --gid-owner");
        range(out, i.u32(8)?, i.u32(12)?);
    }
    if m & 0x08 != 0 {
        inv(out, invert & 0x08 != 0);
        out.push_str(" --suppl-groups");
    }
    Some(())
}

pub(super) fn physdev(out: &mut String, i: Info<'_>) -> Option<()> {
    let (invert, bits) = (i.u8(64)?, i.u8(65)?);
    let on = |b: u8| bits & b != 0;
    if on(0x08) {
        inv(out, invert & 0x08 != 0);
        out.push_str(" --physdev-is-in");
    }
    if on(0x01) {
        inv(out, invert & 0x01 != 0);
        w!(out, " --physdev-in {}", i.cstr(0, 16)?);
    }
    if on(0x10) {
        inv(out, invert & 0x10 != 0);
        out.push_str(" --physdev-is-out");
    }
    if on(0x02) {
        inv(out, invert & 0x02 != 0);
        w!(out, " --physdev-out {}", i.cstr(32, 16)?);
    }
    if on(0x04) {
        inv(out, invert & 0x04 != 0);
        out.push_str(" --physdev-is-bridged");
    }
    Some(())
}

pub(super) fn set(out: &mut String, ctx: &Ctx<'_>, i: Info<'_>, rev: u8) -> Option<()> {
    let index = i.u16(0)?;
    // The kernel keeps the set's index; its name is asked of ipset. When
    // ipset cannot answer, the index is shown and the rule flagged.
    let name = match ctx.sets.name(index) {
        Some(n) => n,
        None => {
            ctx.partial.set(true);
            format!("[set index {index}: name unavailable]")
        }
    };
    if rev == 0 {
        inv(out, i.u32(4)? & 0x04 != 0);
        w!(out, " --match-set {name}");
        let mut sep = " ";
        for k in 0..6 {
            let f = i.u32(4 + 4 * k)?;
            if f == 0 {
                break;
            }
            out.push_str(sep);
            out.push_str(if f & 1 != 0 { "src" } else { "dst" });
            sep = ",";
        }
        return Some(());
    }
    let (dim, flags) = (i.u8(2)?, i.u8(3)?);
    inv(out, flags & 0x01 != 0);
    w!(out, " --match-set {name}");
    let mut sep = " ";
    for d in 1..=dim.min(6) {
        out.push_str(sep);
        out.push_str(if flags & (1 << d) != 0 { "src" } else { "dst" });
        sep = ",";
    }
    match rev {
        2 if flags & 0x80 != 0 => out.push_str(" --return-nomatch"),
        3 | 4 => {
            let f = i.u32(40)?;
            if f & 0x80 != 0 {
                out.push_str(" --return-nomatch");
            }
            if f & 0x08 != 0 {
                out.push_str(" ! --update-counters");
            }
            if f & 0x10 != 0 {
                out.push_str(" ! --update-subcounters");
            }
            let (pop, pval, bop, bval) = if rev == 3 {
                (i.u8(8)?, i.u64(16)?, i.u8(24)?, i.u64(32)?)
            } else {
                (i.u8(16)?, i.u64(8)?, i.u8(32)?, i.u64(24)?)
            };
            for (what, op, v) in [("packets", pop, pval), ("bytes", bop, bval)] {
                match op {
                    1 => w!(out, " --{what}-eq {v}"),
                    2 => w!(out, " ! --{what}-eq {v}"),
                    3 => w!(out, " --{what}-lt {v}"),
                    4 => w!(out, " --{what}-gt {v}"),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    Some(())
}

pub(super) fn mac(out: &mut String, i: Info<'_>) -> Option<()> {
    let a = i.bytes(0, 6)?;
    inv(out, i.i32(8)? != 0);
    w!(
        out,
        " --mac-source {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        a[0],
        a[1],
        a[2],
        a[3],
        a[4],
        a[5]
    );
    Some(())
}

pub(super) fn helper(out: &mut String, i: Info<'_>) -> Option<()> {
    inv(out, i.i32(0)? != 0);
    out.push_str(" --helper");
    save_string(out, i.cbytes(4, 30)?);
    Some(())
}

pub(super) fn socket(out: &mut String, i: Info<'_>, rev: u8) -> Option<()> {
    let f = i.u8(0)?;
    if f & 0x01 != 0 {
        out.push_str(" --transparent");
    }
    if rev >= 2 && f & 0x02 != 0 {
        out.push_str(" --nowildcard");
    }
    if rev >= 3 && f & 0x04 != 0 {
        out.push_str(" --restore-skmark");
    }
    Some(())
}

pub(super) fn val_mask(out: &mut String, v: u32, m: u32) {
    if m == u32::MAX {
        w!(out, " 0x{v:x}");
    } else {
        w!(out, " 0x{v:x}/0x{m:x}");
    }
}

pub(super) fn devgroup(out: &mut String, i: Info<'_>) -> Option<()> {
    let f = i.u32(0)?;
    if f & 0x1 != 0 {
        inv(out, f & 0x2 != 0);
        out.push_str(" --src-group");
        val_mask(out, i.u32(4)?, i.u32(8)?);
    }
    if f & 0x4 != 0 {
        inv(out, f & 0x8 != 0);
        out.push_str(" --dst-group");
        val_mask(out, i.u32(12)?, i.u32(16)?);
    }
    Some(())
}

pub(super) fn cgroup(out: &mut String, i: Info<'_>, rev: u8) -> Option<()> {
    if rev == 0 {
        inv(out, i.u32(4)? != 0);
        w!(out, " --cgroup {}", i.u32(0)?);
        return Some(());
    }
    let (has_path, has_class, inv_path, inv_class) = (i.u8(0)?, i.u8(1)?, i.u8(2)?, i.u8(3)?);
    let (path_len, class_at) = if rev == 1 { (4096, 4100) } else { (512, 4) };
    if has_path != 0 {
        inv(out, inv_path != 0);
        out.push_str(" --path");
        save_string(out, i.cbytes(4, path_len)?);
    }
    if has_class != 0 {
        inv(out, inv_class != 0);
        w!(out, " --cgroup {}", i.u32(class_at)?);
    }
    Some(())
}

pub(super) fn rpfilter(out: &mut String, i: Info<'_>) -> Option<()> {
    let f = i.u8(0)?;
    for (bit, opt) in [
        (0x1, " --loose"),
        (0x2, " --validmark"),
        (0x4, " --accept-local"),
        (0x8, " --invert"),
    ] {
        if f & bit != 0 {
            out.push_str(opt);
        }
    }
    Some(())
}

pub(super) fn dscp(out: &mut String, i: Info<'_>) -> Option<()> {
    inv(out, i.u8(1)? != 0);
    w!(out, " --dscp 0x{:02x}", i.u8(0)?);
    Some(())
}

pub(super) fn tos(out: &mut String, i: Info<'_>, rev: u8) -> Option<()> {
    if rev == 0 {
        inv(out, i.u8(1)? != 0);
        w!(out, " --tos 0x{:02x}", i.u8(0)?);
    } else {
        inv(out, i.u8(2)? != 0);
        w!(out, " --tos 0x{:02x}/0x{:02x}", i.u8(1)?, i.u8(0)?);
    }
    Some(())
}

pub(super) fn spi(out: &mut String, i: Info<'_>, opt: &str) -> Option<()> {
    let (lo, hi, invf) = (i.u32(0)?, i.u32(4)?, i.u8(8)?);
    if (lo, hi) == (0, u32::MAX) {
        return Some(());
    }
    inv(out, invf & 1 != 0);
    out.push_str(opt);
    if lo != hi {
        w!(out, "{lo}:{hi}");
    } else {
        w!(out, "{lo}");
    }
    Some(())
}

pub(super) fn ah(out: &mut String, ctx: &Ctx<'_>, i: Info<'_>) -> Option<()> {
    if !ctx.v6 {
        return spi(out, i, " --ahspi ");
    }
    let (lo, hi) = (i.u32(0)?, i.u32(4)?);
    let (hdrlen, hdrres, invf) = (i.u32(8)?, i.u8(12)?, i.u8(13)?);
    if (lo, hi) != (0, u32::MAX) {
        inv(out, invf & 1 != 0);
        if lo != hi {
            w!(out, " --ahspi {lo}:{hi}");
        } else {
            w!(out, " --ahspi {lo}");
        }
    }
    if hdrlen != 0 || invf & 2 != 0 {
        inv(out, invf & 2 != 0);
        w!(out, " --ahlen {hdrlen}");
    }
    if hdrres != 0 {
        out.push_str(" --ahres");
    }
    Some(())
}

pub(super) fn nfacct(out: &mut String, i: Info<'_>) -> Option<()> {
    out.push_str(" --nfacct-name ");
    save_string(out, i.cbytes(0, 32)?);
    Some(())
}

pub(super) fn string(out: &mut String, i: Info<'_>, rev: u8) -> Option<()> {
    let (from, to) = (i.u16(0)?, i.u16(2)?);
    let algo = i.cstr(4, 16)?;
    let patlen = usize::from(i.u8(148)?).min(128);
    let pattern = i.bytes(20, patlen)?;
    let flags = i.u8(149)?;
    let invert = if rev == 0 { flags != 0 } else { flags & 1 != 0 };
    inv(out, invert);
    let hex = pattern.iter().any(|b| !(0x20..=0x7e).contains(b)) || pattern.last() == Some(&b'\\');
    if hex {
        out.push_str(" --hex-string \"|");
        for b in pattern {
            w!(out, "{b:02x}");
        }
        out.push_str("|\"");
    } else {
        out.push_str(" --string \"");
        for &b in pattern {
            if b == b'"' || b == b'\\' {
                out.push('\\');
            }
            out.push(b as char);
        }
        out.push('"');
    }
    w!(out, " --algo {algo}");
    if from != 0 {
        w!(out, " --from {from}");
    }
    if to != 65535 {
        w!(out, " --to {to}");
    }
    if rev >= 1 && flags & 2 != 0 {
        out.push_str(" --icase");
    }
    Some(())
}

/// `YYYY-MM-DDTHH:MM:SS` of seconds since the epoch (UTC).
pub(super) fn utc(out: &mut String, secs: u32) {
    let days = i64::from(secs / 86400);
    let rem = secs % 86400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    w!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

pub(super) fn time(out: &mut String, i: Info<'_>) -> Option<()> {
    let (ds, de, ts, te, md, wd, fl) = (
        i.u32(0)?,
        i.u32(4)?,
        i.u32(8)?,
        i.u32(12)?,
        i.u32(16)?,
        i.u8(20)?,
        i.u8(21)?,
    );
    if ts != 0 || te != 86399 {
        let hms = |out: &mut String, t: u32| {
            w!(out, "{:02}:{:02}:{:02}", t / 3600, t % 3600 / 60, t % 60)
        };
        out.push_str(" --timestart ");
        hms(out, ts);
        out.push_str(" --timestop ");
        hms(out, te);
    }
    if md != 0xFFFF_FFFE {
        out.push_str(" --monthdays ");
        let days: Vec<String> = (1..=31)
            .filter(|d| md & (1 << d) != 0)
            .map(|d| d.to_string())
            .collect();
        out.push_str(&days.join(","));
    }
    if wd != 0xFE {
        out.push_str(" --weekdays ");
        let names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let days: Vec<&str> = (1..=7)
            .filter(|d| wd & (1 << d) != 0)
            .map(|d| names[d - 1])
            .collect();
        out.push_str(&days.join(","));
    }
    if ds != 0 {
        out.push_str(" --datestart ");
        utc(out, ds);
    }
    if de != 0 {
        out.push_str(" --datestop ");
        utc(out, de);
    }
    if fl & 1 != 0 {
        out.push_str(" --kerneltz");
    }
    if fl & 2 != 0 {
        out.push_str(" --contiguous");
    }
    Some(())
}

pub(super) fn ipvs(out: &mut String, ctx: &Ctx<'_>, i: Info<'_>) -> Option<()> {
    let (invert, bits) = (i.u8(38)?, i.u8(39)?);
    if bits == 0x01 {
        inv(out, invert & 0x01 != 0);
        out.push_str(" --ipvs");
    }
    if bits & 0x02 != 0 {
        inv(out, invert & 0x02 != 0);
        w!(out, " --vproto {}", i.u8(34)?);
    }
    if bits & 0x04 != 0 {
        inv(out, invert & 0x04 != 0);
        out.push_str(" --vaddr ");
        if ctx.v6 {
            ipv6(out, i.bytes(0, 16)?);
        } else {
            ipv4(out, i.bytes(0, 4)?);
        }
        mask_suffix(out, ctx.v6, i.bytes(16, 16)?);
    }
    if bits & 0x08 != 0 {
        inv(out, invert & 0x08 != 0);
        w!(out, " --vport {}", i.be16(32)?);
    }
    if bits & 0x10 != 0 {
        out.push_str(if invert & 0x10 != 0 {
            " --vdir REPLY"
        } else {
            " --vdir ORIGINAL"
        });
    }
    if bits & 0x20 != 0 {
        inv(out, invert & 0x20 != 0);
        out.push_str(match i.u8(35)? {
            3 => " --vmethod GATE",
            2 => " --vmethod IPIP",
            0 => " --vmethod MASQ",
            _ => " --vmethod UNKNOWN",
        });
    }
    if bits & 0x40 != 0 {
        inv(out, invert & 0x40 != 0);
        w!(out, " --vportctl {}", i.be16(36)?);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let mut o = String::new();
        utc(&mut o, 0x7FFF_FFFF);
        assert_eq!(o, "2038-01-19T03:14:07");
        let mut o = String::new();
        utc(&mut o, 951_782_400);
        assert_eq!(o, "2000-02-29T00:00:00");
    }
}
