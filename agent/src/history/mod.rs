//! What changed on this node: a bounded, timestamped history of network
//! changes, fed by netlink notifications ([`watch`]) from the moment the
//! agent starts. The state found at start is the baseline and is never
//! reported as a change. The history holds at most its byte budget; the
//! oldest changes go first, and the answer says how many went and until
//! when, so that a reader knows from when on the history is complete.

pub mod firewall;
pub mod watch;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use labscope_proto::v1::{Change, ChangeHistory, ListChangesRequest};

/// The kinds of change, as requests name them.
pub const KINDS: [&str; 7] = [
    "link",
    "address",
    "route",
    "rule",
    "neighbour",
    "firewall",
    "conntrack",
];

/// Threads that read a baseline: rtnetlink, and nf_tables with conntrack.
const WATCHERS: usize = 2;

/// Default byte budget: about 5,000 route changes.
pub const DEFAULT_BUDGET: usize = 1024 * 1024;

/// Most changes one answer returns by default.
pub const DEFAULT_LIMIT: usize = 1000;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What one kept change costs against the budget: its text and the
/// record around it.
fn cost(c: &Change) -> usize {
    std::mem::size_of::<Change>()
        + 16
        + c.kind.len()
        + c.action.len()
        + c.object.len()
        + c.before.len()
        + c.after.len()
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<(Change, usize)>,
    used: usize,
    dropped: u64,
    dropped_until: u64,
}

/// The history of one agent process.
#[derive(Debug)]
pub struct History {
    ring: Mutex<Ring>,
    budget: usize,
    /// When every watcher had its baseline (0 while one still reads).
    baseline: Mutex<u64>,
    /// Watchers whose baseline is not read yet.
    pending: std::sync::atomic::AtomicUsize,
    notes: Mutex<Vec<String>>,
}

impl History {
    /// An empty history that keeps at most `budget` bytes.
    pub fn new(budget: usize) -> Arc<History> {
        Arc::new(History {
            ring: Mutex::default(),
            budget,
            baseline: Mutex::new(0),
            pending: std::sync::atomic::AtomicUsize::new(WATCHERS),
            notes: Mutex::default(),
        })
    }

    /// Starts watching this network namespace: the baseline is read in the
    /// background and changes are recorded from then on.
    pub fn start(budget: usize) -> Arc<History> {
        let h = History::new(budget);
        watch::spawn(h.clone());
        h
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One watcher has read its baseline (or given up on it); when the
    /// last has, the history starts now.
    pub fn baseline_taken(&self) {
        use std::sync::atomic::Ordering;
        let before = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if before == Ok(1) {
            *self.baseline.lock().unwrap_or_else(|e| e.into_inner()) = now_ms();
        }
    }

    /// Says what the history cannot see.
    pub fn note(&self, text: String) {
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        if !notes.contains(&text) {
            notes.push(text);
        }
    }

    /// Records one change, dropping the oldest while over budget. A
    /// change's texts are cut to a sixteenth of the budget each, so that
    /// one huge rule (an anonymous set of thousands of addresses) cannot
    /// wipe the history.
    pub fn push(&self, mut c: Change) {
        let cap = (self.budget / 16).max(256);
        for text in [&mut c.object, &mut c.before, &mut c.after] {
            truncate(text, cap);
        }
        let size = cost(&c);
        let mut ring = self.ring();
        ring.used += size;
        ring.entries.push_back((c, size));
        while ring.used > self.budget {
            let Some((old, s)) = ring.entries.pop_front() else {
                break;
            };
            ring.used -= s;
            ring.dropped += 1;
            ring.dropped_until = ring.dropped_until.max(old.at_unix_ms);
        }
    }

    /// The changes a request asks for, newest `limit` of them.
    pub fn list(&self, req: &ListChangesRequest) -> ChangeHistory {
        let limit = match req.limit {
            0 => DEFAULT_LIMIT,
            n => n as usize,
        };
        let ring = self.ring();
        let matching: Vec<&Change> = ring
            .entries
            .iter()
            .map(|(c, _)| c)
            .filter(|c| c.at_unix_ms >= req.since_unix_ms)
            .filter(|c| req.kinds.is_empty() || req.kinds.contains(&c.kind))
            .collect();
        let omitted = matching.len().saturating_sub(limit);
        let baseline = *self.baseline.lock().unwrap_or_else(|e| e.into_inner());
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if baseline == 0 {
            notes.push("the baseline is still being read: changes are recorded once it is".into());
        }
        ChangeHistory {
            enabled: true,
            changes: matching[omitted..].iter().map(|c| (*c).clone()).collect(),
            baseline_unix_ms: baseline,
            dropped: ring.dropped,
            dropped_until_unix_ms: ring.dropped_until,
            omitted: omitted as u32,
            budget_bytes: self.budget as u64,
            used_bytes: ring.used as u64,
            notes,
        }
    }
}

/// Cuts `text` to at most `cap` bytes on a character boundary, saying so.
fn truncate(text: &mut String, cap: usize) {
    if text.len() <= cap {
        return;
    }
    let mut end = cap.saturating_sub(16);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(" … (truncated)");
}

/// One change, stamped now.
pub fn change(kind: &str, action: &str, object: String, before: String, after: String) -> Change {
    Change {
        at_unix_ms: now_ms(),
        kind: kind.into(),
        action: action.into(),
        object,
        before,
        after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_holds_and_the_answer_says_what_went() {
        let h = History::new(10_000);
        for i in 0..1000 {
            let mut c = change(
                "route",
                "added",
                format!("10.0.{i}.0/24 table main"),
                String::new(),
                String::new(),
            );
            c.at_unix_ms = i;
            h.push(c);
        }
        let all = h.list(&ListChangesRequest::default());
        assert!(all.used_bytes <= 10_000, "{}", all.used_bytes);
        assert!(all.dropped > 0);
        assert_eq!(all.changes.len() as u64 + all.dropped, 1000);
        assert_eq!(all.dropped_until_unix_ms + 1, all.changes[0].at_unix_ms);
        let some = h.list(&ListChangesRequest {
            since_unix_ms: 990,
            kinds: vec!["route".into()],
            limit: 4,
        });
        assert_eq!(some.changes.len(), 4);
        assert_eq!(some.omitted, 6);
        assert_eq!(some.changes.last().map(|c| c.at_unix_ms), Some(999));
        // One change bigger than the budget keeps the history.
        h.push(change(
            "firewall",
            "changed",
            "ip filter X".into(),
            String::new(),
            "é".repeat(50_000),
        ));
        let after = h.list(&ListChangesRequest::default());
        assert!(
            after.used_bytes <= 10_000 && after.changes.len() > 1,
            "{}",
            after.used_bytes
        );
        let big = after
            .changes
            .last()
            .map(|c| c.after.clone())
            .unwrap_or_default();
        assert!(
            big.len() <= 10_000 / 16 && big.ends_with("(truncated)"),
            "{}",
            big.len()
        );
        let none = h.list(&ListChangesRequest {
            kinds: vec!["link".into()],
            ..Default::default()
        });
        assert!(none.changes.is_empty());
    }
}
