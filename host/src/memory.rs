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
//!
//! And the server turns transparent huge pages off for itself
//! ([`no_huge_pages`]): mimalloc asks for them on its arenas, and the
//! kernel's khugepaged then fills every 2 MiB region that a collect had
//! partly given back into a whole resident huge page again. In the soak
//! run that put RSS 10–27 MiB back up within a minute of every client
//! having gone, with no client and no allocation; without huge pages RSS
//! came back to within 6 MiB of its baseline after 6,000 connections
//! (9–23 MiB after 19,000, from a peak 116 MiB above it), and the
//! baseline itself halved (bench/RESULTS.md).

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

/// Turn transparent huge pages off for this process, unless the operator
/// chose otherwise through mimalloc's own `MIMALLOC_ALLOW_THP` (`1` keeps
/// them; `0` has mimalloc do this itself). Before the policy is compiled:
/// huge pages already made stay until they are split.
pub fn no_huge_pages() {
    if std::env::var_os(ALLOW_THP).is_some() {
        tracing::debug!("{ALLOW_THP} is set: transparent huge pages left to mimalloc");
        return;
    }
    // The flag is the process's (the kernel keeps it per address space),
    // not only this thread's, whatever rustix's doc says.
    match rustix::thread::disable_transparent_huge_pages(true) {
        Ok(()) => tracing::debug!("transparent huge pages off"),
        // Kernels before 3.15 have no such prctl: RSS then stays higher
        // after a crowd, as before (docs/OPERATIONS.md).
        Err(e) => tracing::info!("cannot turn transparent huge pages off: {e}"),
    }
}

/// mimalloc's setting for transparent huge pages.
const ALLOW_THP: &str = "MIMALLOC_ALLOW_THP";

/// `force`: also give back what mimalloc would keep for reuse soon.
fn collect(force: bool) {
    // SAFETY: a plain call into mimalloc about the calling thread's own
    // heap; it takes no pointers.
    unsafe { libmimalloc_sys::mi_collect(force) };
}
