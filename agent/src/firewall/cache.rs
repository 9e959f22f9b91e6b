//! One read of a family's rules, kept while it is true: later pages and
//! calls are served from it as long as the ruleset has not changed (see
//! [`super::signal`]), so that paging does not run the save tools again and
//! pages agree with each other. Reads are single-flight per family: callers
//! that arrive during a read wait for it and share it.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Result;
use super::read::{self, BackendText, Built};
use super::signal::{self, Signal};

/// One read.
#[derive(Debug)]
pub struct Snapshot {
    /// Names it for later pages.
    pub id: u64,
    /// Each backend's rules as iptables-save text, indexed; each page
    /// builds only its window of it (see [`super::parse::Index`]).
    pub texts: Vec<BackendText>,
    /// The ruleset it was read from.
    pub signal: Signal,
    /// When the read started (its counters are this old).
    pub read_at: Instant,
    /// When it finished.
    pub done_at: Instant,
}

/// A snapshot handed to a caller.
#[derive(Debug)]
pub struct Served {
    /// The read.
    pub snapshot: Arc<Snapshot>,
    /// The caller asked for another snapshot, which is gone or outdated.
    pub replaced: bool,
    /// The rules of the table the caller asked to have built, when this
    /// caller made the read (see [`Snapshots::get`]).
    pub built: Option<Built>,
}

/// The cache: the recent reads of each family, newest last.
#[derive(Debug)]
pub struct Snapshots {
    families: [Mutex<Vec<Arc<Snapshot>>>; 2],
    ids: RandomState,
    next: AtomicU64,
}

impl Default for Snapshots {
    fn default() -> Self {
        Self {
            families: Default::default(),
            ids: RandomState::new(),
            next: AtomicU64::new(1),
        }
    }
}

impl Snapshots {
    /// A read without a snapshot named shares one that finished at most
    /// this long ago (or after the caller arrived).
    pub const SHARE_FRESH: Duration = Duration::from_secs(1);
    /// A snapshot is not served (and is dropped) past this age, changed or
    /// not: its counters would mislead.
    pub const TTL: Duration = Duration::from_secs(60);
    /// Reads kept per family, so that one client's fresh calls do not take
    /// the read another client is paging through.
    pub const KEEP: usize = 2;

    fn slot(&self, ipv6: bool) -> MutexGuard<'_, Vec<Arc<Snapshot>>> {
        self.families[usize::from(ipv6)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The snapshot `wanted` while the ruleset is unchanged, else (or
    /// without one) a read shared with callers of the last second. Blocking.
    /// A caller that will answer with a whole table names it in `build`:
    /// if it makes the read, the table's rules are built beside the dump
    /// and come back in [`Served::built`] (the snapshot keeps only text).
    pub fn get(&self, ipv6: bool, wanted: Option<u64>, build: Option<&str>) -> Result<Served> {
        let arrived = Instant::now();
        let mut slot = self.slot(ipv6);
        let now = signal::read(ipv6);
        // Reads of another ruleset, or too old, are of no use to anyone.
        slot.retain(|s| s.signal.same(&now) && s.read_at.elapsed() < Self::TTL);
        let found = match wanted {
            Some(id) => slot.iter().find(|s| s.id == id),
            // The newest read, if it finished after this caller arrived
            // (it waited for it) or within the last second.
            None => slot
                .last()
                .filter(|s| s.done_at >= arrived || s.done_at.elapsed() <= Self::SHARE_FRESH),
        };
        if let Some(s) = found {
            return Ok(Served {
                snapshot: s.clone(),
                replaced: false,
                built: None,
            });
        }
        let read_at = Instant::now();
        // Its structure is checked and indexed now, so that a broken output
        // fails this call and is not kept (each page then builds its rules).
        let (texts, built) = read::read_backends_building(ipv6, build)?;
        let after = signal::read(ipv6);
        // Changed while the tools ran: which version they saw is unknown,
        // so this read is never reused.
        let signal = if after.same(&now) {
            now
        } else {
            Signal {
                unknown: true,
                ..after
            }
        };
        let snapshot = Arc::new(Snapshot {
            id: self.ids.hash_one(self.next.fetch_add(1, Ordering::Relaxed)) | 1,
            texts,
            signal,
            read_at,
            done_at: Instant::now(),
        });
        slot.push(snapshot.clone());
        if slot.len() > Self::KEEP {
            slot.remove(0);
        }
        Ok(Served {
            snapshot,
            replaced: wanted.is_some(),
            built,
        })
    }

    /// Drops snapshots past [`Self::TTL`]; returns how many it dropped.
    pub fn expire(&self) -> usize {
        let mut dropped = 0;
        for ipv6 in [false, true] {
            let mut slot = self.slot(ipv6);
            let before = slot.len();
            slot.retain(|s| s.read_at.elapsed() < Self::TTL);
            dropped += before - slot.len();
        }
        dropped
    }

    /// Snapshots held now.
    pub fn held(&self) -> usize {
        [false, true]
            .into_iter()
            .map(|v6| self.slot(v6).len())
            .sum()
    }
}
