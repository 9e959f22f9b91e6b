//! Giving memory back to the kernel after a burst of big answers.
//!
//! glibc keeps freed memory in its arenas (one per thread that allocated,
//! and every blocking collector thread does), so the resident size after a
//! burst of `GetFirewall` calls stays at its peak. `malloc_trim(0)` returns
//! the free pages of every arena. musl's allocator returns memory by itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sets the allocator up for a small, long-running process: at most two
/// glibc arenas. The agent's big allocations happen on blocking threads,
/// each of which would otherwise get an arena of its own that keeps its
/// high-water mark; two keep contention negligible at the agent's
/// concurrency and the memory together, where a trim can free it. Call
/// first thing in `main`, before any thread starts.
#[allow(unsafe_code)]
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before threads.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
}

/// Returns free heap pages to the kernel now.
#[allow(unsafe_code)]
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Bursts seen so far; a trim runs only if no later burst started.
static LATEST: AtomicU64 = AtomicU64::new(0);

/// Calls [`give_back`] once a burst is over: `after` past the last call
/// (later calls postpone it). Needs a tokio runtime.
pub fn give_back_soon(after: Duration) {
    let ticket = LATEST.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if LATEST.load(Ordering::SeqCst) == ticket {
            tokio::task::spawn_blocking(give_back).await.ok();
        }
    });
}
