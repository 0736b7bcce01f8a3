//! Token buckets: how often a connection may do something, with a burst.
//! Used for a connection's inbound frames and for the broadcasts its
//! messages cause. Time is passed in, so the buckets are plain data and
//! tests need no clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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

    /// How long until the bucket is full again, from `now`.
    pub fn until_full(&self, now: Instant) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        let missing = f64::from(self.burst) - self.tokens - elapsed * f64::from(self.rate);
        Duration::from_secs_f64((missing / f64::from(self.rate)).max(0.0))
    }

    /// Spend one token at `now`, or say how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.ready(now)?;
        if self.rate != 0 {
            self.tokens -= 1.0;
        }
        Ok(())
    }

    /// Refill up to `now`; whether a token is there (none is spent), or how
    /// long until one is.
    pub fn ready(&mut self, now: Instant) -> Result<(), Duration> {
        if self.rate == 0 {
            return Ok(());
        }
        let rate = f64::from(self.rate);
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(self.burst));
        self.updated = now;
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / rate;
            // Rounded up so a client that waits exactly this long succeeds.
            Err(Duration::from_micros((wait * 1e6).ceil() as u64).max(Duration::from_millis(1)))
        }
    }
}

/// An id's three buckets: frames it sends (pings too), broadcasts they
/// cause, presence and history queries it makes.
#[derive(Debug, Clone)]
pub struct Quota {
    /// Inbound frames.
    pub messages: Bucket,
    /// Broadcast actions.
    pub broadcasts: Bucket,
    /// Calls that ask presence or history (`policy::queries`).
    pub queries: Bucket,
}

impl Quota {
    /// Full buckets for `limits`.
    pub fn new(limits: &crate::config::Limits, now: Instant) -> Quota {
        Quota {
            messages: Bucket::new(limits.messages_per_sec, limits.messages_burst, now),
            broadcasts: Bucket::new(limits.broadcasts_per_sec, limits.broadcasts_burst, now),
            queries: Bucket::new(limits.queries_per_sec, limits.queries_burst, now),
        }
    }

    /// How long until every bucket is full again (then the quota is what
    /// a fresh connection gets, and need not be kept).
    fn until_full(&self, now: Instant) -> Duration {
        [&self.messages, &self.broadcasts, &self.queries]
            .iter()
            .map(|b| b.until_full(now))
            .max()
            .unwrap_or_default()
    }
}

/// The quotas of ids whose connection ended, so that a reconnect within
/// the resume window keeps the buckets it had: a client cannot refill them
/// by reconnecting. Kept only until they would be full again anyway (a few
/// seconds at the defaults), and never more than a bound of them.
#[derive(Debug)]
pub struct Kept {
    /// id → its quota and until when it is kept.
    quotas: Mutex<HashMap<Arc<str>, (Quota, Instant)>>,
    /// How long a quota is kept at most (the resume window).
    window: Duration,
    /// How many are kept at most.
    max: usize,
}

impl Kept {
    /// Keep quotas for up to `window`, at most `max` of them.
    pub fn new(window: Duration, max: usize) -> Kept {
        Kept {
            quotas: Mutex::default(),
            window,
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, (Quota, Instant)>> {
        self.quotas.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The quota `id` left behind, if it is still kept; else full buckets.
    pub fn take(&self, id: &str, limits: &crate::config::Limits, now: Instant) -> Quota {
        match self.lock().remove(id) {
            Some((quota, until)) if until > now => quota,
            _ => Quota::new(limits, now),
        }
    }

    /// `id`'s connection ended with `quota`: keep it while it matters.
    pub fn put(&self, id: &str, quota: Quota, now: Instant) {
        let keep = quota.until_full(now).min(self.window);
        if keep.is_zero() {
            return;
        }
        let mut quotas = self.lock();
        if quotas.len() >= self.max {
            quotas.retain(|_, (_, until)| *until > now);
            if quotas.len() >= self.max {
                // Bounded: past it a reconnect starts afresh, as before.
                return;
            }
        }
        quotas.insert(Arc::from(id), (quota, now + keep));
    }

    /// How many are kept now (tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none are kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    fn a_quota_is_kept_until_it_would_be_full_again() {
        let limits = crate::config::Limits::default();
        let t0 = Instant::now();
        let kept = Kept::new(Duration::from_secs(120), 10);
        let mut quota = Quota::new(&limits, t0);
        kept.put("full", quota.clone(), t0);
        assert!(kept.is_empty(), "a full quota is not kept");
        for _ in 0..limits.messages_burst {
            quota.messages.take(t0).unwrap();
        }
        kept.put("a", quota, t0);
        let mut back = kept.take("a", &limits, t0);
        assert!(
            back.messages.take(t0).is_err(),
            "the bucket came back empty"
        );
        assert!(kept.is_empty());
        // Past the time it takes to refill, it is no longer kept.
        let mut quota = Quota::new(&limits, t0);
        quota.queries.take(t0).unwrap();
        kept.put("b", quota, t0);
        let later = t0 + Duration::from_secs(60);
        let fresh = kept.take("b", &limits, later);
        assert_eq!(fresh.queries.until_full(later), Duration::ZERO);
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
