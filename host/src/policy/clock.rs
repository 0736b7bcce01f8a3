//! The clock a policy reads, through the `clock` import and through WASI's
//! wall and monotonic clocks alike. A live server uses the system clock; a
//! decision replay sets the time of each recorded event, so rules that
//! depend on time (rate limits) decide as they did live.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where "now" comes from.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The machine's clocks.
    #[default]
    System,
    /// A time set by whoever holds the handle (milliseconds since the epoch).
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// A manual clock starting at `ms`.
    pub fn manual(ms: u64) -> Clock {
        Clock::Manual(Arc::new(AtomicU64::new(ms)))
    }

    /// Set a manual clock (no effect on the system clock).
    pub fn set_ms(&self, ms: u64) {
        if let Clock::Manual(t) = self {
            t.store(ms, Ordering::Relaxed);
        }
    }

    /// Wall-clock milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => unix_ms(),
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }

    /// Wall-clock time since the Unix epoch, as precise as the clock is.
    pub fn since_epoch(&self) -> Duration {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            Clock::Manual(t) => Duration::from_millis(t.load(Ordering::Relaxed)),
        }
    }

    /// The smallest step either reading can take, in nanoseconds.
    pub fn resolution_ns(&self) -> u64 {
        match self {
            Clock::System => 1,
            Clock::Manual(_) => 1_000_000,
        }
    }

    /// Nanoseconds of a clock that never goes backwards (its origin is
    /// arbitrary; only differences mean something).
    pub fn monotonic_ns(&self) -> u64 {
        match self {
            Clock::System => {
                static START: OnceLock<Instant> = OnceLock::new();
                START.get_or_init(Instant::now).elapsed().as_nanos() as u64
            }
            Clock::Manual(t) => t.load(Ordering::Relaxed).saturating_mul(1_000_000),
        }
    }
}

/// The system wall clock in milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
