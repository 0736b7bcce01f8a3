//! One count of bytes for every room's history together, shared by the
//! rooms' logs, so one cap bounds them all.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes held, counted together.
#[derive(Debug, Default)]
pub struct Bytes {
    total: AtomicUsize,
}

impl Bytes {
    /// A new count, at zero.
    pub fn new() -> Arc<Bytes> {
        Arc::default()
    }

    /// Bytes held now.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, n: usize) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, n: usize) {
        self.total.fetch_sub(n, Ordering::Relaxed);
    }
}
