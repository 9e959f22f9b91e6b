//! The streaming conntrack dump: decode each message as it arrives, test the
//! filter, skip to the page, hand full chunks to the caller, count the rest.
//! Memory is one receive buffer plus one chunk, whatever the table size.

use std::ops::ControlFlow;
use std::time::Instant;

use labscope_proto::v1::{ConntrackEntry, ConntrackSummary};
use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::conntrack::decode::decode;
use crate::conntrack::filter::{ConntrackFilter, PageToken};
use crate::netlink;

/// (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET
const CT_GET: u16 = (1 << 8) | 1;
/// (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW: entries in a dump answer.
const CT_NEW: u16 = 1 << 8;

/// Errors of a conntrack listing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ctnetlink dump failed.
    #[error("conntrack dump failed: {0}")]
    Netlink(#[from] netlink::Error),
}

impl Error {
    /// Whether the kernel refused for lack of CAP_NET_ADMIN.
    pub fn is_permission_denied(&self) -> bool {
        match self {
            Error::Netlink(e) => e.is_permission_denied(),
        }
    }
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Conditions.
    pub filter: ConntrackFilter,
    /// Most entries to return; `None` for all.
    pub limit: Option<u64>,
    /// Where to start.
    pub page: PageToken,
    /// Entries per chunk handed to the sink.
    pub chunk: usize,
    /// Stop the dump once the page is full and one more match was seen.
    pub stop_at_limit: bool,
}

/// Table-wide facts from /proc/sys/net/netfilter (per network namespace).
#[derive(Debug, Clone, Copy, Default)]
pub struct TableFacts {
    /// nf_conntrack_count.
    pub count: u64,
    /// nf_conntrack_max.
    pub max: u64,
    /// nf_conntrack_acct.
    pub accounting: bool,
}

/// Reads [`TableFacts`]; zeros when the conntrack module is not loaded.
pub fn table_facts() -> TableFacts {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/netfilter/{name}"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    TableFacts {
        count: read("nf_conntrack_count").unwrap_or(0),
        max: read("nf_conntrack_max").unwrap_or(0),
        accounting: read("nf_conntrack_acct").unwrap_or(0) != 0,
    }
}

fn realtime_ns() -> Option<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos() as u64)
}

/// Runs the dump. `sink` receives chunks of entries; returning `false` stops
/// the dump (the client went away). Returns the summary for the last message.
pub fn list(
    req: &ListRequest,
    mut sink: impl FnMut(Vec<ConntrackEntry>) -> bool,
) -> Result<ConntrackSummary, Error> {
    let started = Instant::now();
    let family = match req.filter.ip_version {
        Some(4) => 2u8,
        Some(6) => 10u8,
        _ => 0u8,
    };
    let request = netlink::dump_request(CT_GET, 1, &[family, 0, 0, 0]);
    let chunk_size = req.chunk.max(1);
    let limit = req.limit.unwrap_or(u64::MAX);
    let now = realtime_ns();

    let (mut scanned, mut matched, mut returned) = (0u64, 0u64, 0u64);
    let mut last_id = 0u32;
    let mut chunk: Vec<ConntrackEntry> = Vec::new();
    let mut receiver_gone = false;
    let mut cut_short = false;
    netlink::dump(NETLINK_NETFILTER, &request, |raw| {
        if raw.message_type != CT_NEW {
            return ControlFlow::Continue(());
        }
        scanned += 1;
        // A malformed entry is skipped, not fatal: one bad message must not
        // hide the rest of the table.
        let Ok(rec) = decode(raw.payload()) else {
            return ControlFlow::Continue(());
        };
        if !req.filter.matches(&rec) {
            return ControlFlow::Continue(());
        }
        matched += 1;
        if returned >= limit && req.stop_at_limit {
            // This match proves there is a next page; that is all we need.
            cut_short = true;
            return ControlFlow::Break(());
        }
        if matched <= req.page.skip || returned >= limit || receiver_gone {
            return ControlFlow::Continue(());
        }
        returned += 1;
        last_id = rec.id;
        chunk.push(rec.to_pb(now));
        if chunk.len() >= chunk_size && !sink(std::mem::take(&mut chunk)) {
            receiver_gone = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    if !chunk.is_empty() && !receiver_gone {
        sink(chunk);
    }

    let facts = table_facts();
    let truncated = matched > req.page.skip + returned;
    Ok(ConntrackSummary {
        matched,
        returned,
        scanned,
        table_count: facts.count,
        table_max: facts.max,
        usage_percent: if facts.max > 0 {
            facts.count as f64 * 100.0 / facts.max as f64
        } else {
            0.0
        },
        truncated,
        next_token: if truncated {
            PageToken {
                skip: req.page.skip + returned,
                last_id,
            }
            .encode()
        } else {
            String::new()
        },
        accounting_enabled: facts.accounting,
        dump_micros: started.elapsed().as_micros() as u64,
        matched_is_lower_bound: cut_short,
    })
}
