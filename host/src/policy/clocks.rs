//! WASI's wall and monotonic clocks, served from the host's [`Clock`]: the
//! one the `clock` import reads and `policy replay` sets to each recorded
//! event's time. A policy reading `SystemTime::now()`, `Instant::now()` or
//! `Date.now()` therefore decides under replay as it did live.

use std::time::Duration;

use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock};

use crate::policy::clock::Clock;

/// [`Clock`] as WASI's `wall-clock`.
pub struct WallClock(pub Clock);

/// [`Clock`] as WASI's `monotonic-clock`.
pub struct MonotonicClock(pub Clock);

impl HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(self.0.resolution_ns())
    }

    fn now(&self) -> Duration {
        self.0.since_epoch()
    }
}

impl HostMonotonicClock for MonotonicClock {
    fn resolution(&self) -> u64 {
        self.0.resolution_ns()
    }

    fn now(&self) -> u64 {
        self.0.monotonic_ns()
    }
}
