//! The tokio runtime the server runs on: one worker per core, and workers
//! that give freed memory back when they go idle (crate::memory).

/// A multi-threaded runtime whose workers collect their allocator heap
/// when they park (at most once a second each).
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(crate::memory::collect_when_idle)
        .build()
}
