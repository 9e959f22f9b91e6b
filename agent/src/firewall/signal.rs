//! Whether the ruleset changed since a read, without reading it: the
//! nf_tables generation (`NFT_MSG_GETGEN`, bumped by every committed nft
//! transaction, iptables-nft's included) and, for legacy x_tables, each
//! existing table's entry count and blob size (`IPT_SO_GET_INFO`; every
//! iptables-legacy change replaces the whole blob). Counters do not count as
//! changes: they move with every packet.

use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::netlink::{self, nla::NlaIter};

/// (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN
const NFT_GETGEN: u16 = (10 << 8) | 16;
/// NFTA_GEN_ID
const NFTA_GEN_ID: u16 = 1;
/// nfgenmsg is 4 bytes before the attributes.
const NFGENMSG_LEN: usize = 4;

/// What a ruleset looked like, as far as changes go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Signal {
    /// nf_tables generation; `None` when nf_tables is not loaded.
    pub nft_generation: Option<u32>,
    /// (table, entries, size) of each legacy table of the family.
    pub legacy: Vec<(String, u32, u32)>,
    /// A part could not be read: never equal to another signal.
    pub unknown: bool,
}

impl Signal {
    /// Whether two reads saw the same ruleset.
    pub fn same(&self, other: &Signal) -> bool {
        !self.unknown && !other.unknown && self == other
    }

    /// For people.
    pub fn describe(&self) -> String {
        let mut parts = vec![match self.nft_generation {
            Some(g) => format!("nf_tables generation {g}"),
            None => "nf_tables not loaded".to_string(),
        }];
        for (t, n, size) in &self.legacy {
            parts.push(format!("legacy {t}: {n} entries, {size} bytes"));
        }
        if self.unknown {
            parts.push("some parts unreadable".into());
        }
        parts.join("; ")
    }
}

/// The nf_tables generation, `None` when nf_tables is not loaded.
pub fn nft_generation() -> Result<Option<u32>, netlink::Error> {
    match netlink::request(NETLINK_NETFILTER, NFT_GETGEN, &[0, 0, 0, 0]) {
        Ok(payload) => Ok(
            NlaIter::new(payload.get(NFGENMSG_LEN..).unwrap_or_default())
                .find(|a| a.kind == NFTA_GEN_ID)
                .and_then(|a| a.be32()),
        ),
        // No nf_tables in this kernel (or not loaded): nothing to change.
        // nfnetlink answers EINVAL for a subsystem it does not have.
        Err(netlink::Error::Kernel(e))
            if matches!(e.raw_os_error(), Some(2) | Some(22) | Some(95) | Some(93)) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `struct ipt_getinfo` / `struct ip6t_getinfo` (same layout).
#[repr(C)]
struct GetInfo {
    name: [u8; 32],
    valid_hooks: u32,
    hook_entry: [u32; 5],
    underflow: [u32; 5],
    num_entries: u32,
    size: u32,
}

/// Entry count and size of a legacy table that exists (never one that does
/// not: asking for it would make the kernel create it). No crate wraps
/// `IPT_SO_GET_INFO`, an in/out getsockopt (the name goes in).
#[allow(unsafe_code)]
fn legacy_info(ipv6: bool, table: &str) -> std::io::Result<(u32, u32)> {
    use nix::libc;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    if table.len() >= 32 {
        return Err(std::io::Error::other("table name too long"));
    }
    let (domain, level) = if ipv6 {
        (libc::AF_INET6, libc::SOL_IPV6)
    } else {
        (libc::AF_INET, libc::SOL_IP)
    };
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
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut info = GetInfo {
        name: [0; 32],
        valid_hooks: 0,
        hook_entry: [0; 5],
        underflow: [0; 5],
        num_entries: 0,
        size: 0,
    };
    info.name[..table.len()].copy_from_slice(table.as_bytes());
    let mut len = std::mem::size_of::<GetInfo>() as libc::socklen_t;
    // IPT_SO_GET_INFO = IP6T_SO_GET_INFO = IPT_BASE_CTL (64).
    // SAFETY: `info` is a properly sized, writable ipt_getinfo; len says so.
    let rc =
        unsafe { libc::getsockopt(fd.as_raw_fd(), level, 64, (&raw mut info).cast(), &mut len) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((info.num_entries, info.size))
}

/// The signal of one family now.
pub fn read(ipv6: bool) -> Signal {
    let mut signal = Signal::default();
    match nft_generation() {
        Ok(g) => signal.nft_generation = g,
        Err(_) => signal.unknown = true,
    }
    let names = if ipv6 {
        "/proc/net/ip6_tables_names"
    } else {
        "/proc/net/ip_tables_names"
    };
    let mut tables: Vec<String> = std::fs::read_to_string(names)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    tables.sort();
    for t in tables {
        match legacy_info(ipv6, &t) {
            Ok((n, size)) => signal.legacy.push((t, n, size)),
            Err(_) => signal.unknown = true,
        }
    }
    signal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_is_never_the_same() {
        let a = Signal {
            nft_generation: Some(3),
            ..Default::default()
        };
        assert!(a.same(&a.clone()));
        let b = Signal {
            unknown: true,
            ..a.clone()
        };
        assert!(!b.same(&b.clone()) && !a.same(&b));
        let c = Signal {
            nft_generation: Some(4),
            ..Default::default()
        };
        assert!(!a.same(&c));
        assert_eq!(a.describe(), "nf_tables generation 3");
    }
}
