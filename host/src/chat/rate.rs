//! Token buckets: how often a connection may do something, with a burst.
//! Used for a connection's inbound frames and for the broadcasts its
//! messages cause. Time is passed in, so the buckets are plain data and
//! tests need no clock.

use std::time::{Duration, Instant};

/// A token bucket; a rate of 0 lets everything through.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Tokens added per second (0: no limit).
    rate: u32,
    /// Most tokens held (what may be spent at once).
    burst: u32,
    /// Tokens held now (fractional: refilled continuously).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    updated: Instant,
}

impl Bucket {
    /// A full bucket refilled at `rate` per second, holding at most `burst`
    /// (at least 1, so a non-zero rate can ever let something through).
    pub fn new(rate: u32, burst: u32, now: Instant) -> Bucket {
        let burst = burst.max(1);
        Bucket {
            rate,
            burst,
            tokens: f64::from(burst),
            updated: now,
        }
    }

    /// Spend one token at `now`, or say how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        if self.rate == 0 {
            return Ok(());
        }
        let rate = f64::from(self.rate);
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(self.burst));
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / rate;
            // Rounded up so a client that waits exactly this long succeeds.
            Err(Duration::from_micros((wait * 1e6).ceil() as u64).max(Duration::from_millis(1)))
        }
    }
}

/// A connection's two buckets: frames it sends, broadcasts they cause.
#[derive(Debug, Clone)]
pub struct Quota {
    /// Inbound frames.
    pub messages: Bucket,
    /// Broadcast actions.
    pub broadcasts: Bucket,
}

impl Quota {
    /// Full buckets for `limits`.
    pub fn new(limits: &crate::config::Limits, now: Instant) -> Quota {
        Quota {
            messages: Bucket::new(limits.messages_per_sec, limits.messages_burst, now),
            broadcasts: Bucket::new(limits.broadcasts_per_sec, limits.broadcasts_burst, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10, 3, t0);
        for _ in 0..3 {
            assert_eq!(b.take(t0), Ok(()));
        }
        let wait = b.take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(b.take(t0 + Duration::from_millis(99)).is_err());
        assert_eq!(b.take(t0 + Duration::from_millis(200)), Ok(()));
        // Refill stops at the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.take(later), Ok(()));
        }
        assert!(b.take(later).is_err());
    }

    #[test]
    fn rate_zero_is_no_limit() {
        let t0 = Instant::now();
        let mut b = Bucket::new(0, 0, t0);
        for _ in 0..10_000 {
            assert_eq!(b.take(t0), Ok(()));
        }
    }
}
