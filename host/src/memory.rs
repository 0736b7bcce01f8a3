//! Giving freed memory back to the OS.
//!
//! The binary's allocator is mimalloc, which keeps a heap per thread: pages
//! freed in a thread's heap go back to the OS only when that thread
//! allocates past them again or collects. Two kinds of thread here free a
//! lot and then go quiet, so they are asked to collect:
//!
//! - tokio's workers, after a crowd of connections has come and gone
//!   ([`collect_when_idle`], from the runtime's park hook). In the soak run
//!   the live heap went back to its baseline after 8,000 connections but
//!   RSS stayed 47 MiB above it, in the workers' heaps; with this, 18.
//! - the compiler's threads (wasmtime compiles on rayon's pool), after a
//!   policy is compiled ([`after_compile`]): compiling the default policy
//!   frees about 40 MiB there, which an idle server otherwise kept.
//!
//! Where mimalloc is not the global allocator (the test binaries), its
//! heaps are empty and a collect finds nothing.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How often at most a worker collects: a collect walks the thread's heap,
/// so not on every park (a busy worker parks thousands of times a second);
/// a second is soon enough for memory no one uses.
const COLLECT_EVERY: Duration = Duration::from_secs(1);

thread_local! {
    /// When this thread last collected.
    static COLLECTED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// This thread is about to idle: collect its heap, unless it did less than
/// `COLLECT_EVERY` ago.
pub fn collect_when_idle() {
    COLLECTED.with(|last| {
        let now = Instant::now();
        if last
            .get()
            .is_none_or(|t| now.duration_since(t) >= COLLECT_EVERY)
        {
            last.set(Some(now));
            collect(false);
        }
    });
}

/// A compile has ended: every compiler thread and this one give back what
/// it freed.
pub fn after_compile() {
    rayon::broadcast(|_| collect(true));
    collect(true);
}

/// `force`: also give back what mimalloc would keep for reuse soon.
fn collect(force: bool) {
    // SAFETY: a plain call into mimalloc about the calling thread's own
    // heap; it takes no pointers.
    unsafe { libmimalloc_sys::mi_collect(force) };
}
