//! The tokio runtime the server runs on, with worker threads that give
//! freed memory back when they go idle.
//!
//! The binary's allocator is mimalloc, which keeps a heap per thread. Pages
//! freed in a worker's heap go back to the OS only when that thread
//! allocates again past them or collects, and a tokio worker that idles
//! does neither. In the soak run (bench/README.md, "Soak") the server's
//! live heap went back to its baseline after 8,000 connections came and
//! went, but its RSS stayed 70 MiB above it, in the workers' heaps; with a
//! collect on park it came back within 10 MiB (bench/RESULTS.md, "the soak
//! run").

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How often at most a worker collects: the collection walks its heap's
/// pages, so not on every park (a busy worker parks thousands of times a
/// second), and a second is soon enough for memory no one uses.
const COLLECT_EVERY: Duration = Duration::from_secs(1);

thread_local! {
    /// When this worker last collected.
    static COLLECTED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// A multi-threaded runtime (one worker per core) whose workers collect
/// their allocator heap when they park, at most every `COLLECT_EVERY`.
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(collect_when_idle)
        .build()
}

fn collect_when_idle() {
    COLLECTED.with(|last| {
        let now = Instant::now();
        if last
            .get()
            .is_none_or(|t| now.duration_since(t) >= COLLECT_EVERY)
        {
            last.set(Some(now));
            // SAFETY: a plain call into mimalloc about this thread's own
            // heap; it takes no pointers. (Where mimalloc is not the global
            // allocator, as in the test binaries, its heap is empty.)
            unsafe { libmimalloc_sys::mi_collect(false) };
        }
    });
}
