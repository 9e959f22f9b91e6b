//! The streaming conntrack dump: decode each message as it arrives, test the
//! filter, skip to the page, hand full chunks to the caller, count the rest
//! or stop and park the dump for the next page. Memory is one receive buffer
//! plus one chunk, whatever the table size.

use std::hash::{BuildHasher, RandomState};
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use labscope_proto::v1::{ConntrackEntry, ConntrackSummary};
use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::conntrack::decode::decode;
use crate::conntrack::filter::{ConntrackFilter, PageToken};
use crate::netlink::{self, OpenDump};

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

/// Dumps stopped at the end of a page and kept open, so that the next page
/// continues the kernel's walk instead of re-reading what was returned. A
/// parked dump is one socket and the unread rest of one kernel batch; it is
/// dropped after [`Parking::TTL`] unused, and the oldest goes first when
/// [`Parking::MAX`] are parked.
#[derive(Debug)]
pub struct Parking {
    parked: Mutex<Vec<Parked>>,
    ids: RandomState,
    next: AtomicU64,
}

#[derive(Debug)]
struct Parked {
    id: u64,
    filter: ConntrackFilter,
    position: u64,
    dump: OpenDump,
    at: Instant,
}

impl Default for Parking {
    fn default() -> Self {
        Self {
            parked: Mutex::new(Vec::new()),
            ids: RandomState::new(),
            next: AtomicU64::new(1),
        }
    }
}

impl Parking {
    /// How long a parked dump waits for its next page.
    pub const TTL: Duration = Duration::from_secs(60);
    /// Most dumps parked at once.
    pub const MAX: usize = 16;

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Parked>> {
        // A panic elsewhere cannot leave the list inconsistent: recover it.
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn park(&self, filter: ConntrackFilter, position: u64, mut dump: OpenDump) -> u64 {
        dump.shrink();
        // Unguessable and never 0; unique per agent process.
        let id = self.ids.hash_one(self.next.fetch_add(1, Ordering::Relaxed)) | 1;
        let mut parked = self.lock();
        parked.retain(|p| p.at.elapsed() < Self::TTL);
        if parked.len() >= Self::MAX {
            parked.remove(0);
        }
        parked.push(Parked {
            id,
            filter,
            position,
            dump,
            at: Instant::now(),
        });
        id
    }

    /// The parked dump `id`, when it still exists and stands at `position`
    /// of the same listing. Taking it removes it.
    fn take(&self, id: u64, filter: &ConntrackFilter, position: u64) -> Option<OpenDump> {
        let mut parked = self.lock();
        parked.retain(|p| p.at.elapsed() < Self::TTL);
        let at = parked
            .iter()
            .position(|p| p.id == id && p.filter == *filter && p.position == position)?;
        // remove, not swap_remove: the list stays oldest first for eviction.
        Some(parked.remove(at).dump)
    }

    /// Dumps parked now (expired ones included until the next call).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no dump is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs the listing. `sink` receives chunks of entries; returning `false`
/// stops the dump (the client went away). Returns the summary.
///
/// With `stop_at_limit`, the dump stops at the first match past the page and
/// is parked in `parking`; the token of the summary resumes it. Without a
/// filter, `matched` is the kernel's own count of the table (exact without
/// a full read); with one, it counts what was read (a lower bound).
pub fn list(
    req: &ListRequest,
    parking: &Parking,
    mut sink: impl FnMut(Vec<ConntrackEntry>) -> bool,
) -> Result<ConntrackSummary, Error> {
    let started = Instant::now();
    let chunk_size = req.chunk.max(1);
    let limit = req.limit.unwrap_or(u64::MAX);
    let now = realtime_ns();

    let resumed = match req.page.cursor {
        0 => None,
        id => parking.take(id, &req.filter, req.page.skip),
    };
    let is_resumed = resumed.is_some();
    let mut open = match resumed {
        Some(open) => open,
        None => {
            let family = match req.filter.ip_version {
                Some(4) => 2u8,
                Some(6) => 10u8,
                _ => 0u8,
            };
            let request = netlink::dump_request(CT_GET, 1, &[family, 0, 0, 0]);
            OpenDump::start(NETLINK_NETFILTER, &request)?
        }
    };
    let mut to_skip = if is_resumed { 0 } else { req.page.skip };

    let (mut scanned, mut matched, mut returned) = (0u64, 0u64, 0u64);
    let mut last_id = 0u32;
    let mut chunk: Vec<ConntrackEntry> = Vec::new();
    let mut receiver_gone = false;
    let mut cut_short = false;
    open.walk(|raw| {
        if raw.message_type != CT_NEW {
            return ControlFlow::Continue(());
        }
        // A malformed entry is skipped, not fatal: one bad message must not
        // hide the rest of the table.
        let Ok(rec) = decode(raw.payload()) else {
            scanned += 1;
            return ControlFlow::Continue(());
        };
        if !req.filter.matches(&rec) {
            scanned += 1;
            return ControlFlow::Continue(());
        }
        if returned >= limit && req.stop_at_limit {
            // This match proves there is a next page, and starts it: the
            // parked dump hands it over first.
            cut_short = true;
            return ControlFlow::Break(());
        }
        scanned += 1;
        matched += 1;
        if to_skip > 0 {
            to_skip -= 1;
            return ControlFlow::Continue(());
        }
        if returned >= limit || receiver_gone {
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
    if !chunk.is_empty() && !receiver_gone && !sink(chunk) {
        receiver_gone = true;
    }

    let facts = table_facts();
    // Matches before this walk started were counted by the earlier pages.
    if is_resumed {
        matched += req.page.skip;
    }
    let position = req.page.skip + returned;
    let truncated = cut_short || matched > position;
    let cursor = if cut_short && !receiver_gone {
        parking.park(req.filter.clone(), position, open)
    } else {
        0
    };
    // Without a filter the kernel's counter is the answer, read or not.
    // Otherwise a cut-short count is what was read plus the match that
    // proved there is more: a lower bound.
    let (matched, lower_bound) = match (cut_short, req.filter.is_empty()) {
        (true, true) => (facts.count.max(position + 1), false),
        (true, false) => (matched + 1, true),
        (false, _) => (matched, false),
    };
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
                skip: position,
                last_id,
                cursor,
            }
            .encode()
        } else {
            String::new()
        },
        accounting_enabled: facts.accounting,
        dump_micros: started.elapsed().as_micros() as u64,
        matched_is_lower_bound: lower_bound,
    })
}
