//! Matches about rates and counts: limit, hashlimit, statistic, recent,
//! quota, connlimit, connbytes, cluster.

use super::super::Ctx;
use super::super::fmt::{Info, addr, w};
use super::inv;
use std::fmt::Write;

/// `%.11f` of p / 2^31, rounded half to even as glibc does.
pub fn probability(out: &mut String, p: u32) {
    let n = u128::from(p) * 100_000_000_000;
    let mut q = n >> 31;
    let r = n & ((1 << 31) - 1);
    if r > (1 << 30) || (r == (1 << 30) && q & 1 == 1) {
        q += 1;
    }
    w!(out, "{}.{:011}", q / 100_000_000_000, q % 100_000_000_000);
}

pub(super) fn statistic(out: &mut String, i: Info<'_>) -> Option<()> {
    let mode = i.u16(0)?;
    let invert = i.u16(2)? & 1 != 0;
    match mode {
        0 => {
            out.push_str(" --mode random");
            inv(out, invert);
            out.push_str(" --probability ");
            probability(out, i.u32(4)?);
        }
        1 => {
            out.push_str(" --mode nth");
            inv(out, invert);
            w!(
                out,
                " --every {} --packet {}",
                i.u32(4)?.wrapping_add(1),
                i.u32(8)?
            );
        }
        _ => {}
    }
    Some(())
}

/// The rate of `limit` from its average period (`avg` in 1/10000 s).
pub fn limit_rate(out: &mut String, avg: u32) {
    if avg == 0 {
        out.push_str("inf");
        return;
    }
    const U: [(&str, u32); 4] = [
        ("day", 864_000_000),
        ("hour", 36_000_000),
        ("min", 600_000),
        ("sec", 10_000),
    ];
    let mut k = 1;
    while k < 4 {
        if avg > U[k].1 || U[k].1 / avg < U[k].1 % avg {
            break;
        }
        k += 1;
    }
    w!(out, "{}/{}", U[k - 1].1 / avg, U[k - 1].0);
}

pub(super) fn limit(out: &mut String, i: Info<'_>) -> Option<()> {
    let (avg, burst) = (i.u32(0)?, i.u32(4)?);
    out.push_str(" --limit ");
    limit_rate(out, avg);
    if burst != 5 {
        w!(out, " --limit-burst {burst}");
    }
    Some(())
}

pub(super) fn hashlimit_rate(out: &mut String, period: u64, scale: u64) -> u32 {
    if period == 0 {
        out.push_str(" inf");
        return 0;
    }
    let t = [
        ("day", scale * 86400),
        ("hour", scale * 3600),
        ("min", scale * 60),
        ("sec", scale),
    ];
    let mut k = 1;
    while k < 4 {
        if period > t[k].1 || t[k].1 / period < t[k].1 % period {
            break;
        }
        k += 1;
    }
    w!(out, " {}/{}", t[k - 1].1 / period, t[k - 1].0);
    (t[k - 1].1 / scale * 1000) as u32
}

pub(super) fn hashlimit_bytes(out: &mut String, avg: u64, burst: u64) -> u32 {
    let cost_to_bytes = |c: u64| -> u64 {
        let r: u64 = 0xFFFF_FFFFu64.checked_div(c).unwrap_or(0xFFFF_FFFF);
        r.wrapping_sub(1) << 4
    };
    let bytes_to_cost = |b: u64| -> u64 {
        let r = (b >> 4) as u32;
        u64::from(0xFFFF_FFFFu32 / r.wrapping_add(1).max(1))
    };
    const U: [(&str, u64); 3] = [("m", 1_048_576), ("k", 1024), ("", 1)];
    let r = cost_to_bytes(avg);
    let mut k = 0;
    while k < 2 {
        let m = u64::from(!((U[k].1 - 1) as u32));
        if r >= U[k].1 && bytes_to_cost(r & m) == avg {
            break;
        }
        k += 1;
    }
    w!(out, " {}{}b/s", r / U[k].1, U[k].0);
    if burst == 0 {
        return 15000;
    }
    let r = r.wrapping_mul(burst);
    let k = (0..2).find(|&k| r >= U[k].1).unwrap_or(2);
    w!(out, " --hashlimit-burst {}{}b", r / U[k].1, U[k].0);
    60000
}

pub(super) fn hashlimit_mode(out: &mut String, mode: u32) {
    out.push(' ');
    let mut sep = "";
    for (bit, n) in [
        (0x04, "srcip"),
        (0x08, "srcport"),
        (0x01, "dstip"),
        (0x02, "dstport"),
    ] {
        if mode & bit != 0 {
            out.push_str(sep);
            out.push_str(n);
            sep = ",";
        }
    }
}

pub(super) fn hashlimit(out: &mut String, ctx: &Ctx<'_>, i: Info<'_>, rev: u8) -> Option<()> {
    let dmask: u8 = if ctx.v6 { 128 } else { 32 };
    if rev == 0 {
        let name = i.cstr(0, 16)?;
        let (mode, avg, burst) = (i.u32(16)?, i.u32(20)?, i.u32(24)?);
        let (size, max, gc, expire) = (i.u32(28)?, i.u32(32)?, i.u32(36)?, i.u32(40)?);
        out.push_str(" --hashlimit");
        let q = hashlimit_rate(out, u64::from(avg), 10_000);
        w!(out, " --hashlimit-burst {burst} --hashlimit-mode");
        hashlimit_mode(out, mode);
        w!(out, " --hashlimit-name {name}");
        hashlimit_tail(out, size, max, gc, expire, q);
        return Some(());
    }
    // (name, mode, avg, burst, size, max, gc, expire, srcmask, dstmask, interval)
    let (name, mode, avg, burst, size, max, gc, expire, srcmask, dstmask, interval) = if rev == 1 {
        (
            i.cstr(0, 16)?,
            i.u32(16)?,
            u64::from(i.u32(20)?),
            u64::from(i.u32(24)?),
            i.u32(28)?,
            i.u32(32)?,
            i.u32(36)?,
            i.u32(40)?,
            i.u8(44)?,
            i.u8(45)?,
            1,
        )
    } else {
        let (sm, dm, interval) = if rev == 2 {
            (i.u8(292)?, i.u8(293)?, 1)
        } else {
            (i.u8(296)?, i.u8(297)?, i.u32(292)?)
        };
        (
            i.cstr(0, 255)?,
            i.u32(272)?,
            i.u64(256)?,
            i.u64(264)?,
            i.u32(276)?,
            i.u32(280)?,
            i.u32(284)?,
            i.u32(288)?,
            sm,
            dm,
            interval,
        )
    };
    out.push_str(if mode & 0x10 != 0 {
        " --hashlimit-above"
    } else {
        " --hashlimit-upto"
    });
    let scale = if rev == 1 { 10_000 } else { 1_000_000 };
    let q = if mode & 0x20 != 0 {
        hashlimit_bytes(out, avg, burst)
    } else {
        let q = hashlimit_rate(out, avg, scale);
        w!(out, " --hashlimit-burst {burst}");
        q
    };
    if mode & 0x0f != 0 {
        out.push_str(" --hashlimit-mode");
        hashlimit_mode(out, mode);
    }
    w!(out, " --hashlimit-name {name}");
    hashlimit_tail(out, size, max, gc, expire, q);
    if srcmask != dmask {
        w!(out, " --hashlimit-srcmask {srcmask}");
    }
    if dstmask != dmask {
        w!(out, " --hashlimit-dstmask {dstmask}");
    }
    if rev == 3 && mode & 0x40 != 0 {
        out.push_str(" --hashlimit-rate-match");
        if interval != 1 {
            w!(out, " --hashlimit-rate-interval {interval}");
        }
    }
    Some(())
}

pub(super) fn hashlimit_tail(out: &mut String, size: u32, max: u32, gc: u32, expire: u32, q: u32) {
    if size != 0 {
        w!(out, " --hashlimit-htable-size {size}");
    }
    if max != 0 {
        w!(out, " --hashlimit-htable-max {max}");
    }
    if gc != 1000 {
        w!(out, " --hashlimit-htable-gcinterval {gc}");
    }
    if expire != q {
        w!(out, " --hashlimit-htable-expire {expire}");
    }
}

pub(super) fn recent(out: &mut String, ctx: &Ctx<'_>, i: Info<'_>, rev: u8) -> Option<()> {
    let (seconds, hits, check, invert) = (i.i32(0)?, i.i32(4)?, i.u8(8)?, i.u8(9)?);
    let name = i.cstr(10, 200)?;
    let side = i.u8(210)?;
    inv(out, invert != 0);
    for (bit, opt) in [
        (0x02, " --set"),
        (0x01, " --rcheck"),
        (0x04, " --update"),
        (0x08, " --remove"),
    ] {
        if check & bit != 0 {
            out.push_str(opt);
        }
    }
    if seconds != 0 {
        w!(out, " --seconds {seconds}");
    }
    if check & 0x20 != 0 {
        out.push_str(" --reap");
    }
    if hits != 0 {
        w!(out, " --hitcount {hits}");
    }
    if check & 0x10 != 0 {
        out.push_str(" --rttl");
    }
    w!(out, " --name {name}");
    if rev == 1 {
        out.push_str(" --mask ");
        addr(out, ctx.v6, i.bytes(212, 16)?);
    }
    match side {
        0 => out.push_str(" --rsource"),
        1 => out.push_str(" --rdest"),
        _ => {}
    }
    Some(())
}

pub(super) fn connlimit(out: &mut String, ctx: &Ctx<'_>, i: Info<'_>, rev: u8) -> Option<()> {
    let mask = i.bytes(0, 16)?;
    let (lim, flags) = (i.u32(16)?, i.u32(20)?);
    let words = if ctx.v6 { 4 } else { 1 };
    let mut len = 32 * words as u32;
    for w in 0..words {
        let m = u32::from_be_bytes(mask[w * 4..w * 4 + 4].try_into().ok()?);
        len -= 32 - (!m).leading_zeros();
    }
    if flags & 1 != 0 {
        w!(out, " --connlimit-upto {lim}");
    } else {
        w!(out, " --connlimit-above {lim}");
    }
    w!(out, " --connlimit-mask {len}");
    if rev >= 1 {
        out.push_str(if flags & 2 != 0 {
            " --connlimit-daddr"
        } else {
            " --connlimit-saddr"
        });
    }
    Some(())
}

pub(super) fn connbytes(out: &mut String, i: Info<'_>) -> Option<()> {
    let (mut from, mut to) = (i.u64(0)?, i.u64(8)?);
    let (what, dir) = (i.u8(16)?, i.u8(17)?);
    if from > to {
        out.push_str(" !");
        std::mem::swap(&mut from, &mut to);
    }
    w!(out, " --connbytes {from}");
    if to != 0 && to < u64::MAX {
        w!(out, ":{to}");
    }
    out.push_str(" --connbytes-mode");
    out.push_str(match what {
        0 => " packets",
        1 => " bytes",
        2 => " avgpkt",
        _ => " unknown",
    });
    out.push_str(" --connbytes-dir");
    out.push_str(match dir {
        0 => " original",
        1 => " reply",
        2 => " both",
        _ => " unknown",
    });
    Some(())
}

pub(super) fn quota(out: &mut String, i: Info<'_>) -> Option<()> {
    inv(out, i.u32(0)? & 1 != 0);
    w!(out, " --quota {}", i.u64(8)?);
    Some(())
}

pub(super) fn cluster(out: &mut String, i: Info<'_>) -> Option<()> {
    let (total, mask, seed, flags) = (i.u32(0)?, i.u32(4)?, i.u32(8)?, i.u32(12)?);
    inv(out, flags & 1 != 0);
    w!(
        out,
        " --cluster-local-nodemask 0x{mask:08x} --cluster-total-nodes {total} --cluster-hash-seed 0x{seed:08x}"
    );
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_round_as_glibc() {
        for (p, want) in [
            (1u32 << 30, "0.50000000000"),
            (644_245_094, "0.29999999981"),
            (1 << 31, "1.00000000000"),
            (u32::MAX, "1.99999999953"),
            (0, "0.00000000000"),
        ] {
            let mut o = String::new();
            probability(&mut o, p);
            assert_eq!(o, want, "{p}");
        }
    }

    #[test]
    fn limit_rates() {
        for (avg, want) in [
            (10_000, "1/sec"),
            (2000, "5/sec"),
            (12_000_000, "3/hour"),
            (300_000, "2/min"),
            (85_714, "7/min"),
            (600, "1000/min"),
            (17_280_000, "50/day"),
            (3, "3333/sec"),
            (1, "10000/sec"),
        ] {
            let mut o = String::new();
            limit_rate(&mut o, avg);
            assert_eq!(o, want, "{avg}");
        }
    }
}
