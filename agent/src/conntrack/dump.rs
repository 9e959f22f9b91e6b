//! The streaming conntrack dump: decode each message as it arrives, test the
//! filter, skip to the page, hand full chunks to the caller, count the rest
//! or stop and park the dump for the next page. Memory is one receive buffer
//! plus one chunk, whatever the table size.

use std::hash::{BuildHasher, RandomState};
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use labscope_proto::v1::{ConntrackEntry, ConntrackSummary};
use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::conntrack::decode::decode;
use crate::conntrack::filter::{ConntrackFilter, FAMILY_ANY, PageToken};
use crate::netlink::{self, OpenDump};

/// (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET
const CT_GET: u16 = (1 << 8) | 1;
/// (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW: entries in a dump answer.
const CT_NEW: u16 = 1 << 8;

// Dump-request attributes of the kernel's own filter (ctnetlink, Linux 5.10
// for CTA_FILTER, 6.1 for the status test; the mark test is older).
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_STATUS: u16 = 3;
const CTA_MARK: u16 = 8;
const CTA_MARK_MASK: u16 = 21;
const CTA_FILTER: u16 = 25;
const CTA_STATUS_MASK: u16 = 26;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_FILTER_ORIG_FLAGS: u16 = 1;
const CTA_FILTER_F_CTA_PROTO_NUM: u32 = 1 << 3;
const NLA_F_NESTED: u16 = crate::netlink::nla::NLA_F_NESTED;
/// errno values with which a kernel refuses a filter it cannot apply.
const EINVAL: i32 = 22;
const EOPNOTSUPP: i32 = 95;

/// Set once a kernel refused the dump filter: from then on the agent
/// filters everything itself.
static KERNEL_FILTER_REFUSED: AtomicBool = AtomicBool::new(false);

fn push_attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + ((len + 3) & !3) - len, 0);
}

fn push_nested(out: &mut Vec<u8>, kind: u16, build: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    build(out);
    let len = (out.len() - start) as u16;
    out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    out[start + 2..start + 4].copy_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
}

/// The attributes that ask the kernel to test, while it walks the table,
/// what of `filter` it can: the protocol (within one family), the status
/// bits and the mark. Everything is tested again in the agent, so a kernel
/// that ignores part of it only costs time. Empty when nothing applies.
pub fn kernel_filter_attrs(filter: &ConntrackFilter, family: u8) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(m) = filter.mark {
        push_attr(&mut out, CTA_MARK, &m.value.to_be_bytes());
        push_attr(&mut out, CTA_MARK_MASK, &m.mask.to_be_bytes());
    }
    if let Some((value, mask)) = filter.kernel_status() {
        push_attr(&mut out, CTA_STATUS, &value.to_be_bytes());
        push_attr(&mut out, CTA_STATUS_MASK, &mask.to_be_bytes());
    }
    if let Some(proto) = filter.kernel_protocol()
        && family != FAMILY_ANY
    {
        push_nested(&mut out, CTA_TUPLE_ORIG, |out| {
            push_nested(out, CTA_TUPLE_PROTO, |out| {
                push_attr(out, CTA_PROTO_NUM, &[proto]);
            });
        });
        push_nested(&mut out, CTA_FILTER, |out| {
            push_attr(
                out,
                CTA_FILTER_ORIG_FLAGS,
                &CTA_FILTER_F_CTA_PROTO_NUM.to_ne_bytes(),
            );
        });
    }
    out
}

/// Starts the dump of one family, with the kernel-side filter unless a
/// kernel refused it before. Returns whether the filter was sent.
fn start_dump(filter: &ConntrackFilter, family: u8) -> Result<(OpenDump, bool), Error> {
    let mut body = vec![family, 0, 0, 0];
    let attrs = if KERNEL_FILTER_REFUSED.load(Ordering::Relaxed) {
        Vec::new()
    } else {
        kernel_filter_attrs(filter, family)
    };
    body.extend_from_slice(&attrs);
    let request = netlink::dump_request(CT_GET, 1, &body);
    Ok((
        OpenDump::start(NETLINK_NETFILTER, &request)?,
        !attrs.is_empty(),
    ))
}

/// Whether `e`, the first answer to a filtered dump, is the kernel refusing
/// the filter (an older or differently configured kernel).
fn is_filter_refused(e: &netlink::Error) -> bool {
    matches!(e, netlink::Error::Kernel(io) if matches!(io.raw_os_error(), Some(EINVAL | EOPNOTSUPP)))
}

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
    /// Index into the filter's dump families of the family being walked.
    phase: usize,
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

    fn park(
        &self,
        filter: ConntrackFilter,
        position: u64,
        phase: usize,
        mut dump: OpenDump,
    ) -> u64 {
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
            phase,
            dump,
            at: Instant::now(),
        });
        id
    }

    /// The parked dump `id`, when it still exists and stands at `position`
    /// of the same listing. Taking it removes it.
    fn take(&self, id: u64, filter: &ConntrackFilter, position: u64) -> Option<(usize, OpenDump)> {
        let mut parked = self.lock();
        parked.retain(|p| p.at.elapsed() < Self::TTL);
        let at = parked
            .iter()
            .position(|p| p.id == id && p.filter == *filter && p.position == position)?;
        // remove, not swap_remove: the list stays oldest first for eviction.
        let p = parked.remove(at);
        Some((p.phase, p.dump))
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
    let families = req.filter.dump_families();
    let (mut phase, open) = match resumed {
        Some((phase, open)) => (phase, Some(open)),
        None => (0, None),
    };
    let mut to_skip = if is_resumed { 0 } else { req.page.skip };

    let (mut scanned, mut matched, mut returned) = (0u64, 0u64, 0u64);
    let mut last_id = 0u32;
    let mut chunk: Vec<ConntrackEntry> = Vec::new();
    let mut receiver_gone = false;
    let mut cut_short = false;
    let mut kernel_filtered = false;
    let mut visit = |raw: netlink::RawMessage<'_>| {
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
        if chunk.capacity() == 0 {
            // Sized once: a growing chunk reallocates its way up to the
            // full size, and musl's allocator maps and unmaps every step.
            let left = usize::try_from(limit - returned).unwrap_or(usize::MAX);
            chunk.reserve_exact(chunk_size.min(left));
        }
        returned += 1;
        last_id = rec.id;
        chunk.push(rec.to_pb(now));
        if chunk.len() >= chunk_size && !sink(std::mem::take(&mut chunk)) {
            receiver_gone = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    };
    let stopped = walk_families(
        &req.filter,
        families,
        &mut phase,
        open,
        &mut visit,
        &mut kernel_filtered,
    )?;
    if !chunk.is_empty() && !receiver_gone && !sink(chunk) {
        receiver_gone = true;
    }

    Ok(summary(
        req,
        parking,
        started,
        (is_resumed, phase, stopped),
        Walked {
            scanned,
            matched,
            returned,
            last_id,
            cut_short,
            receiver_gone,
            kernel_filtered,
        },
    ))
}

/// What one walk of the table counted.
struct Walked {
    scanned: u64,
    matched: u64,
    returned: u64,
    last_id: u32,
    cut_short: bool,
    receiver_gone: bool,
    kernel_filtered: bool,
}

/// The listing's summary: counts, the table's own figures, and the token of
/// the next page (parking the open dump when the page was cut short).
fn summary(
    req: &ListRequest,
    parking: &Parking,
    started: Instant,
    (is_resumed, phase, stopped): (bool, usize, Option<OpenDump>),
    w: Walked,
) -> ConntrackSummary {
    let Walked {
        scanned,
        mut matched,
        returned,
        last_id,
        cut_short,
        receiver_gone,
        kernel_filtered,
    } = w;
    let facts = table_facts();
    // Matches before this walk started were counted by the earlier pages.
    if is_resumed {
        matched += req.page.skip;
    }
    let position = req.page.skip + returned;
    let truncated = cut_short || matched > position;
    let cursor = match stopped {
        Some(dump) if cut_short && !receiver_gone => {
            parking.park(req.filter.clone(), position, phase, dump)
        }
        _ => 0,
    };
    // Without a filter the kernel's counter is the answer, read or not.
    // Otherwise a cut-short count is what was read plus the match that
    // proved there is more: a lower bound.
    let (matched, lower_bound) = match (cut_short, req.filter.is_empty()) {
        (true, true) => (facts.count.max(position + 1), false),
        (true, false) => (matched + 1, true),
        (false, _) => (matched, false),
    };
    ConntrackSummary {
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
        kernel_filtered,
    }
}

/// One dump per family of the filter, in order; a resumed listing goes on
/// with the family its parked dump was walking (`open`). The dump left open
/// when `visit` stopped early, with `phase` at its family.
fn walk_families(
    filter: &ConntrackFilter,
    families: &[u8],
    phase: &mut usize,
    mut open: Option<OpenDump>,
    visit: &mut impl FnMut(netlink::RawMessage<'_>) -> ControlFlow<()>,
    kernel_filtered: &mut bool,
) -> Result<Option<OpenDump>, Error> {
    while *phase < families.len() {
        let family = families[*phase];
        let (mut dump, filtered) = match open.take() {
            Some(dump) => (dump, !KERNEL_FILTER_REFUSED.load(Ordering::Relaxed)),
            None => start_dump(filter, family)?,
        };
        let finished = match dump.walk(&mut *visit) {
            Err(e) if filtered && dump.stats.messages == 0 && is_filter_refused(&e) => {
                // Nothing was visited yet: read this family again unfiltered.
                tracing::warn!(
                    error = %e,
                    "the kernel refused the conntrack dump filter; filtering in the agent from now on"
                );
                KERNEL_FILTER_REFUSED.store(true, Ordering::Relaxed);
                *kernel_filtered |= family != FAMILY_ANY;
                dump = start_dump(filter, family)?.0;
                dump.walk(&mut *visit)?
            }
            other => {
                *kernel_filtered |= filtered || family != FAMILY_ANY;
                other?
            }
        };
        if !finished {
            return Ok(Some(dump));
        }
        *phase += 1;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::filter::{Mark, StateFilter};
    use crate::netlink::nla::NlaIter;

    #[test]
    fn kernel_filter_attributes_read_back() {
        let filter = ConntrackFilter {
            protocol: Some(17),
            state: StateFilter::parse("UNREPLIED"),
            mark: Mark::parse("0x4000/0xf000"),
            ..Default::default()
        };
        let bytes = kernel_filter_attrs(&filter, 2);
        let attrs: Vec<_> = NlaIter::new(&bytes).collect();
        let kinds: Vec<u16> = attrs.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [
                CTA_MARK,
                CTA_MARK_MASK,
                CTA_STATUS,
                CTA_STATUS_MASK,
                CTA_TUPLE_ORIG,
                CTA_FILTER
            ]
        );
        assert_eq!(attrs[0].be32(), Some(0x4000));
        assert_eq!(attrs[1].be32(), Some(0xf000));
        assert_eq!(attrs[2].be32(), Some(0));
        assert_eq!(
            attrs[3].be32(),
            Some(crate::conntrack::decode::IPS_SEEN_REPLY)
        );
        let proto: Vec<_> = attrs[4].nested().collect();
        assert_eq!(proto[0].kind, CTA_TUPLE_PROTO);
        let num: Vec<_> = proto[0].nested().collect();
        assert_eq!((num[0].kind, num[0].u8()), (CTA_PROTO_NUM, Some(17)));
        let flags: Vec<_> = attrs[5].nested().collect();
        assert_eq!(flags[0].kind, CTA_FILTER_ORIG_FLAGS);
        assert_eq!(
            flags[0].value,
            CTA_FILTER_F_CTA_PROTO_NUM.to_ne_bytes().as_slice()
        );
        // Without a family the kernel cannot test a protocol: not sent.
        let kinds: Vec<u16> = NlaIter::new(&kernel_filter_attrs(&filter, FAMILY_ANY))
            .map(|a| a.kind)
            .collect();
        assert_eq!(
            kinds,
            [CTA_MARK, CTA_MARK_MASK, CTA_STATUS, CTA_STATUS_MASK]
        );
        assert!(kernel_filter_attrs(&ConntrackFilter::default(), 2).is_empty());
    }

    #[test]
    fn refusals_that_fall_back() {
        let kernel = |n| netlink::Error::Kernel(std::io::Error::from_raw_os_error(n));
        assert!(is_filter_refused(&kernel(EOPNOTSUPP)));
        assert!(is_filter_refused(&kernel(EINVAL)));
        assert!(
            !is_filter_refused(&kernel(1)),
            "EPERM is not a refused filter"
        );
    }
}
