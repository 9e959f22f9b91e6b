//! iptables-legacy's tables read from the kernel as iptables-legacy-save
//! reads them (`IPT_SO_GET_INFO` / `IPT_SO_GET_ENTRIES` on a raw socket,
//! the IPv6 ones alike) and printed as its `-c` text. Only tables the
//! kernel lists in `/proc/net/ip{,6}_tables_names` are asked for: asking
//! for another would make the kernel create it.
//!
//! The blob is parsed as libiptc parses it: built-in chains start at their
//! hook entry, user chains at an ERROR entry named after them, and each
//! chain's last entry is its policy (or a user chain's RETURN), not a rule.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::iptables_nft::SaveText;
use super::xt::fmt::{self, Info, w};
use super::xt::{self, Ctx, SetNames};
use std::fmt::Write;

/// Errors of a legacy read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused for lack of CAP_NET_ADMIN (or CAP_NET_RAW).
    #[error(
        "the kernel refused to read legacy iptables table {table}: the agent lacks CAP_NET_ADMIN ({source})"
    )]
    PermissionDenied {
        /// Table.
        table: String,
        /// errno.
        #[source]
        source: std::io::Error,
    },
    /// Another failure of the socket calls.
    #[error("reading legacy iptables table {table} failed: {source}")]
    Io {
        /// Table.
        table: String,
        /// errno.
        #[source]
        source: std::io::Error,
    },
    /// The table kept changing between the two calls.
    #[error("legacy iptables table {0} changed during each of 8 reads; try again")]
    Unstable(String),
    /// The blob is not what the kernel writes.
    #[error("legacy iptables table {table}: {reason}")]
    Malformed {
        /// Table.
        table: String,
        /// What is wrong.
        reason: String,
    },
}

/// The legacy tables of a family, in the kernel's order (newest first, as
/// iptables-legacy-save prints them). Empty when ip(6)_tables is not loaded.
pub fn table_names(v6: bool) -> Vec<String> {
    let path = if v6 {
        "/proc/net/ip6_tables_names"
    } else {
        "/proc/net/ip_tables_names"
    };
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// One table as the kernel hands it over.
#[derive(Debug, Clone)]
pub struct Blob {
    /// Table name.
    pub name: String,
    /// `valid_hooks`.
    pub valid_hooks: u32,
    /// `hook_entry[5]`.
    pub hook_entry: [u32; 5],
    /// The entries.
    pub entries: Vec<u8>,
}

#[allow(unsafe_code)]
fn socket(v6: bool) -> std::io::Result<OwnedFd> {
    use nix::libc;
    let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[allow(unsafe_code)]
fn getsockopt(fd: &OwnedFd, v6: bool, opt: i32, buf: &mut [u8]) -> std::io::Result<()> {
    use nix::libc;
    let level = if v6 { libc::SOL_IPV6 } else { libc::SOL_IP };
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` is writable for `len` bytes, which the kernel checks
    // against the size it expects for `opt`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// IPT_SO_GET_INFO / IP6T_SO_GET_INFO.
const GET_INFO: i32 = 64;
/// IPT_SO_GET_ENTRIES / IP6T_SO_GET_ENTRIES.
const GET_ENTRIES: i32 = 65;

/// Reads table `name` (which must be listed by [`table_names`]).
pub fn read_table(v6: bool, name: &str) -> Result<Blob, Error> {
    let io = |source: std::io::Error| {
        if matches!(source.raw_os_error(), Some(1) | Some(13)) {
            Error::PermissionDenied {
                table: name.to_string(),
                source,
            }
        } else {
            Error::Io {
                table: name.to_string(),
                source,
            }
        }
    };
    if name.len() >= 32 {
        return Err(Error::Malformed {
            table: name.to_string(),
            reason: "name longer than 31 bytes".into(),
        });
    }
    for _ in 0..8 {
        let fd = socket(v6).map_err(io)?;
        let mut info = [0u8; 84];
        info[..name.len()].copy_from_slice(name.as_bytes());
        getsockopt(&fd, v6, GET_INFO, &mut info).map_err(io)?;
        let i = Info(&info);
        let valid_hooks = i.u32(32).unwrap_or(0);
        let mut hook_entry = [0u32; 5];
        for (k, h) in hook_entry.iter_mut().enumerate() {
            *h = i.u32(36 + 4 * k).unwrap_or(0);
        }
        let size = i.u32(80).unwrap_or(0) as usize;
        let mut buf = vec![0u8; 40 + size];
        buf[..name.len()].copy_from_slice(name.as_bytes());
        buf[32..36].copy_from_slice(&(size as u32).to_ne_bytes());
        match getsockopt(&fd, v6, GET_ENTRIES, &mut buf) {
            Ok(()) => {
                buf.drain(..40);
                return Ok(Blob {
                    name: name.to_string(),
                    valid_hooks,
                    hook_entry,
                    entries: buf,
                });
            }
            // Replaced between the two calls: start again.
            Err(e) if e.raw_os_error() == Some(11) => continue,
            Err(e) => return Err(io(e)),
        }
    }
    Err(Error::Unstable(name.to_string()))
}

/// Layout of an entry of the family.
struct Layout {
    /// sizeof(ipt_entry) / sizeof(ip6t_entry).
    entry: usize,
    target_offset: usize,
    next_offset: usize,
    counters: usize,
    flags: usize,
    invflags: usize,
    goto_flag: u8,
}

const V4: Layout = Layout {
    entry: 112,
    target_offset: 88,
    next_offset: 90,
    counters: 96,
    flags: 82,
    invflags: 83,
    goto_flag: 0x02,
};

const V6: Layout = Layout {
    entry: 168,
    target_offset: 140,
    next_offset: 142,
    counters: 152,
    flags: 131,
    invflags: 132,
    goto_flag: 0x04,
};

const HOOKS: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// What a rule's target is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Standard(i32),
    Fallthrough,
    Jump(usize),
    Module,
}

#[derive(Debug)]
struct Entry {
    offset: usize,
    verdict: Verdict,
}

#[derive(Debug)]
struct ChainAt {
    name: String,
    builtin: bool,
    head: usize,
    rules: Vec<Entry>,
    /// The last entry: policy (built-in) or RETURN (user chain).
    foot: Option<Entry>,
}

fn malformed(table: &str, reason: impl Into<String>) -> Error {
    Error::Malformed {
        table: table.to_string(),
        reason: reason.into(),
    }
}

/// Splits a blob into chains (libiptc's `parse_table`).
fn chains(blob: &Blob, l: &Layout) -> Result<Vec<ChainAt>, Error> {
    let e = Info(&blob.entries);
    let size = blob.entries.len();
    let mut out: Vec<ChainAt> = Vec::new();
    let mut cur: Option<usize> = None;
    let mut off = 0usize;
    let close = |out: &mut Vec<ChainAt>, cur: Option<usize>| {
        if let Some(c) = cur {
            let chain = &mut out[c];
            chain.foot = chain.rules.pop();
        }
    };
    while off < size {
        let next = usize::from(
            e.u16(off + l.next_offset)
                .ok_or_else(|| malformed(&blob.name, "entry past the end"))?,
        );
        let target_at = usize::from(e.u16(off + l.target_offset).unwrap_or(0));
        if next < l.entry || off + next > size || target_at + 32 > next {
            return Err(malformed(
                &blob.name,
                format!("entry at {off} has impossible offsets"),
            ));
        }
        if off + next == size {
            close(&mut out, cur);
            break;
        }
        let t = off + target_at;
        let tname = e.cstr(t + 2, 29).unwrap_or("");
        if tname == "ERROR" {
            close(&mut out, cur);
            let name = e.cstr(t + 32, 30).unwrap_or("?").to_string();
            out.push(ChainAt {
                name,
                builtin: false,
                head: off,
                rules: Vec::new(),
                foot: None,
            });
            cur = Some(out.len() - 1);
            off += next;
            continue;
        }
        if let Some(h) =
            (0..5).find(|&h| blob.valid_hooks & (1 << h) != 0 && blob.hook_entry[h] as usize == off)
        {
            close(&mut out, cur);
            out.push(ChainAt {
                name: HOOKS[h].to_string(),
                builtin: true,
                head: off,
                rules: Vec::new(),
                foot: None,
            });
            cur = Some(out.len() - 1);
        }
        let verdict = if tname.is_empty() {
            let v = e.i32(t + 32).unwrap_or(0);
            if v < 0 {
                Verdict::Standard(v)
            } else if v as usize == off + next {
                Verdict::Fallthrough
            } else {
                Verdict::Jump(v as usize)
            }
        } else {
            Verdict::Module
        };
        let Some(c) = cur else {
            return Err(malformed(
                &blob.name,
                format!("entry at {off} belongs to no chain"),
            ));
        };
        out[c].rules.push(Entry {
            offset: off,
            verdict,
        });
        off += next;
    }
    Ok(out)
}

fn standard_name(v: i32) -> Option<&'static str> {
    Some(match v {
        -1 => "DROP",
        -2 => "ACCEPT",
        -4 => "QUEUE",
        -5 => "RETURN",
        _ => return None,
    })
}

/// Prints the iptables-legacy-save text of `blobs` (one family).
pub fn save_text(blobs: &[Blob], v6: bool, sets: &dyn SetNames) -> Result<SaveText, Error> {
    let l = if v6 { &V6 } else { &V4 };
    let mut out = SaveText::default();
    for blob in blobs {
        let mut chains = chains(blob, l)?;
        // Built-ins in blob order, then user chains by byte order.
        let split = chains
            .iter()
            .position(|c| !c.builtin)
            .unwrap_or(chains.len());
        chains[split..].sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let e = Info(&blob.entries);
        let _ = writeln!(out.text, "*{}", blob.name);
        for c in &chains {
            if c.builtin {
                let (policy, p, b) = match &c.foot {
                    Some(f) => {
                        let v = match f.verdict {
                            Verdict::Standard(v) => standard_name(v).unwrap_or("-"),
                            _ => "-",
                        };
                        (
                            v,
                            e.u64(f.offset + l.counters).unwrap_or(0),
                            e.u64(f.offset + l.counters + 8).unwrap_or(0),
                        )
                    }
                    None => ("-", 0, 0),
                };
                let _ = writeln!(out.text, ":{} {policy} [{p}:{b}]", c.name);
            } else {
                let _ = writeln!(out.text, ":{} - [0:0]", c.name);
            }
        }
        for c in &chains {
            for r in &c.rules {
                let ctx = Ctx::new(v6, sets);
                let mut unknown = false;
                rule_line(
                    &mut out.text,
                    &blob.entries,
                    r,
                    &c.name,
                    &chains,
                    l,
                    &ctx,
                    &mut unknown,
                );
                if unknown || ctx.partial.get() {
                    out.partial_rules += 1;
                }
            }
        }
        out.text.push_str("COMMIT\n");
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn rule_line(
    out: &mut String,
    blob: &[u8],
    r: &Entry,
    chain: &str,
    chains: &[ChainAt],
    l: &Layout,
    ctx: &Ctx<'_>,
    unknown: &mut bool,
) {
    let e = Info(blob);
    let at = r.offset;
    let (p, b) = (
        e.u64(at + l.counters).unwrap_or(0),
        e.u64(at + l.counters + 8).unwrap_or(0),
    );
    w!(out, "[{p}:{b}] -A {chain}");
    let flags = e.u8(at + l.flags).unwrap_or(0);
    let invf = e.u8(at + l.invflags).unwrap_or(0);
    let bytes = |from: usize, n: usize| e.bytes(at + from, n).unwrap_or(&[0; 16][..n]);
    if ctx.v6 {
        fmt::ipv6_addr(out, 's', bytes(0, 16), bytes(32, 16), invf & 0x08 != 0);
        fmt::ipv6_addr(out, 'd', bytes(16, 16), bytes(48, 16), invf & 0x10 != 0);
        fmt::iface(out, 'i', bytes(64, 16), bytes(96, 16), invf & 0x01 != 0);
        fmt::iface(out, 'o', bytes(80, 16), bytes(112, 16), invf & 0x02 != 0);
        let proto = e.u16(at + 128).unwrap_or(0);
        if proto > 0 {
            fmt::proto(out, proto, invf & 0x40 != 0);
        }
        if flags & 0x02 != 0 {
            w!(
                out,
                "{} -? {}",
                if invf & 0x04 != 0 { " !" } else { "" },
                e.u8(at + 130).unwrap_or(0)
            );
        }
    } else {
        fmt::ipv4_addr(out, 's', bytes(0, 4), bytes(8, 4), invf & 0x08 != 0);
        fmt::ipv4_addr(out, 'd', bytes(4, 4), bytes(12, 4), invf & 0x10 != 0);
        fmt::iface(out, 'i', bytes(16, 16), bytes(48, 16), invf & 0x01 != 0);
        fmt::iface(out, 'o', bytes(32, 16), bytes(64, 16), invf & 0x02 != 0);
        let proto = e.u16(at + 80).unwrap_or(0);
        if proto > 0 {
            fmt::proto(out, proto, invf & 0x40 != 0);
        }
        if flags & 0x01 != 0 {
            out.push_str(if invf & 0x20 != 0 { " ! -f" } else { " -f" });
        }
    }
    let target_at = at + usize::from(e.u16(at + l.target_offset).unwrap_or(0));
    let mut m = at + l.entry;
    while m + 32 <= target_at {
        let size = usize::from(e.u16(m).unwrap_or(0));
        if size < 32 || m + size > target_at {
            *unknown = true;
            out.push_str(" [unsupported match layout]");
            break;
        }
        let name = e.cstr(m + 2, 29).unwrap_or("?");
        let rev = e.u8(m + 31).unwrap_or(0);
        xt::save_match(
            out,
            ctx,
            name,
            rev,
            e.bytes(m + 32, size - 32).unwrap_or_default(),
        );
        m += size;
    }
    match &r.verdict {
        Verdict::Module => {
            let size = usize::from(e.u16(target_at).unwrap_or(32)).max(32);
            let name = e.cstr(target_at + 2, 29).unwrap_or("?");
            let rev = e.u8(target_at + 31).unwrap_or(0);
            xt::save_target(
                out,
                ctx,
                name,
                rev,
                e.bytes(target_at + 32, size - 32).unwrap_or_default(),
            );
        }
        Verdict::Fallthrough => {}
        Verdict::Standard(v) => {
            let flag = if flags & l.goto_flag != 0 { 'g' } else { 'j' };
            match standard_name(*v) {
                Some(n) => w!(out, " -{flag} {n}"),
                None => {
                    *unknown = true;
                    w!(out, " [unsupported verdict {v}]");
                }
            }
        }
        Verdict::Jump(to) => {
            let flag = if flags & l.goto_flag != 0 { 'g' } else { 'j' };
            let target = chains.iter().find(|c| {
                let foot = c.foot.as_ref().map(|f| f.offset).unwrap_or(c.head);
                c.head <= *to && *to <= foot
            });
            match target {
                Some(c) => w!(out, " -{flag} {}", c.name),
                None => {
                    *unknown = true;
                    w!(out, " [unsupported jump to offset {to}]");
                }
            }
        }
    }
    out.push('\n');
}
