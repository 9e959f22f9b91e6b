//! Giving memory back to the kernel after a burst of big answers.
//!
//! glibc keeps freed memory in its arenas (one per thread that allocated,
//! and every blocking collector thread does), so the resident size after a
//! burst of `GetFirewall` calls stays at its peak. `malloc_trim(0)` returns
//! the free pages of every arena. musl's allocator returns memory by itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Returns free heap pages to the kernel now.
#[allow(unsafe_code)]
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Calls [`give_back`] once a burst is over: `after` past the last call of
/// [`Trimmer::soon`] (later calls postpone it).
#[derive(Debug, Default)]
pub struct Trimmer {
    latest: AtomicU64,
}

impl Trimmer {
    /// Schedules a trim on the current tokio runtime.
    pub fn soon(self: &std::sync::Arc<Self>, after: Duration) {
        let ticket = self.latest.fetch_add(1, Ordering::SeqCst) + 1;
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if me.latest.load(Ordering::SeqCst) == ticket {
                tokio::task::spawn_blocking(give_back).await.ok();
            }
        });
    }
}
