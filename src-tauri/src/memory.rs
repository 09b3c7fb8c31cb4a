//! The `pulse` process's own memory settings (issue 12, desktop memory): how its
//! allocator gives memory back. WebKit's processes are tuned in [`crate::webview`].
//!
//! On Linux with glibc, unless `PULSE_MEMORY_DEFAULTS=1` (glibc's defaults, to
//! measure the difference; `benches/memory/measure.py` does):
//! - [`at_start`], before any thread exists: at most [`ARENA_MAX`] malloc arenas
//!   (glibc's default is 8 per core: each thread that allocates, GTK's, WebKit's,
//!   tokio's workers, SQLite's checkpointer, gets an arena of its own whose freed
//!   memory stays with it), and a fixed mmap threshold of [`MMAP_THRESHOLD`]: an
//!   allocation that large (the bootstrap's serialised cache, a snapshot's body)
//!   gets pages of its own that go back to the OS when freed. glibc's default
//!   threshold is dynamic: after the first such buffer is freed it rises to that
//!   buffer's size, so the next ones come from the heap and stay there.
//! - [`trim_soon`], after a bootstrap answer and each chunk of its stream:
//!   [`TRIM_DELAY`] later (the answer is serialised and handed to the webview
//!   after the command returns), one `malloc_trim(0)` on a thread of its own
//!   hands the free pages of every arena back. Repeated calls within the delay
//!   trim once.
//!
//! Invariants: never changes what is allocated or kept, only when freed pages go
//! back to the OS; elsewhere (macOS, Windows, musl) every function does nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Set to `1`, the allocator keeps glibc's defaults and nothing is trimmed.
pub const DEFAULTS_ENV: &str = "PULSE_MEMORY_DEFAULTS";
/// Malloc arenas at most (glibc: 8 × cores on 64-bit).
pub const ARENA_MAX: i32 = 2;
/// Allocations of at least this many bytes get their own pages (glibc: 128 KiB,
/// rising dynamically up to 32 MiB).
pub const MMAP_THRESHOLD: i32 = 256 * 1024;
/// How long after a bootstrap answer the heap is trimmed.
pub const TRIM_DELAY: Duration = Duration::from_millis(1500);

/// Whether the settings are on (`PULSE_MEMORY_DEFAULTS` is not `1`).
pub fn enabled() -> bool {
    std::env::var_os(DEFAULTS_ENV).is_none_or(|v| v != "1")
}

/// Configure the allocator. Call first in `main`, before any thread is spawned.
pub fn at_start() {
    if !enabled() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other threads
    // allocate, as glibc recommends for M_ARENA_MAX.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// A trim is scheduled and has not run yet.
static TRIM_PENDING: AtomicBool = AtomicBool::new(false);

/// Give the heap's free pages back to the OS [`TRIM_DELAY`] from now (once for
/// any number of calls within the delay).
pub fn trim_soon() {
    if !enabled() || TRIM_PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| {
            std::thread::sleep(TRIM_DELAY);
            TRIM_PENDING.store(false, Ordering::Release);
            trim_now();
        });
    if spawned.is_err() {
        TRIM_PENDING.store(false, Ordering::Release);
    }
}

/// `malloc_trim(0)`: returns whether memory was given back (always false
/// where there is no glibc).
pub fn trim_now() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes the arenas' locks itself; safe from any thread.
    unsafe {
        libc::malloc_trim(0) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_after_freeing_a_large_buffer_keeps_the_heap_usable() {
        // A bootstrap-sized buffer, freed, then trimmed: later allocations work and
        // hold what was written (trimming never touches live memory).
        let big = vec![7u8; 8 * 1024 * 1024];
        let keep = vec![1u32; 1000];
        drop(big);
        trim_now();
        let again = vec![9u8; 1024 * 1024];
        assert!(again.iter().all(|b| *b == 9));
        assert_eq!(keep.iter().sum::<u32>(), 1000);
    }
}
