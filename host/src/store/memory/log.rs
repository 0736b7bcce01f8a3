//! One room's history in memory: its kept messages, offsets and epoch,
//! and the recovery and paging over them.
//!
//! Bounded three ways: `size` messages per room, `ttl` of age, and the
//! bytes of all rooms' logs together ([`Bytes`]), counted as memory holds
//! them (frames, each entry's overhead, the room's key and log): past
//! that, the room being written gives up its oldest messages first.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::bytes::Bytes;
use crate::store::history::{HistoryLimits, Text, Unrecoverable};
use crate::store::token::new_epoch;

/// Bytes one kept message holds besides its frame: the entry (offset,
/// shared buffer, time) and the buffer's shared header, rounded up.
pub const KEPT_OVERHEAD: usize = 64;
/// Bytes a room's log holds besides its messages and its key: the map's
/// entry, the lock, the log and its epoch.
pub const LOG_OVERHEAD: usize = 160;

/// One kept message: the room frame as the members got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// Its place in the room's history.
    pub offset: u64,
    /// The frame's text.
    pub frame: Text,
    /// When it was kept.
    at: Instant,
}

/// One room's kept messages.
#[derive(Debug)]
pub struct RoomLog {
    epoch: Arc<str>,
    /// Offset of the newest message ever kept in this log (0: none yet).
    top: u64,
    /// The kept messages, oldest first; offsets `top - len + 1 ..= top`.
    kept: VecDeque<Kept>,
    /// Bytes of the log (its own and `kept`'s), as counted in the shared
    /// [`Bytes`].
    bytes: usize,
    /// Where this log's bytes are counted with every other log's.
    count: Arc<Bytes>,
}

impl RoomLog {
    /// An empty log with a fresh epoch for a room whose key is `key_len`
    /// bytes, its bytes (the key's and the log's own too) counted in
    /// `count`.
    pub fn new(key_len: usize, count: Arc<Bytes>) -> RoomLog {
        let mut log = RoomLog::with_epoch(new_epoch(), count);
        log.bytes = key_len + LOG_OVERHEAD;
        log.count.add(log.bytes);
        log
    }

    /// An empty log with `epoch` (tests, replay).
    pub fn with_epoch(epoch: impl Into<Arc<str>>, count: Arc<Bytes>) -> RoomLog {
        RoomLog {
            epoch: epoch.into(),
            top: 0,
            kept: VecDeque::new(),
            bytes: 0,
            count,
        }
    }

    /// The log's epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The offset of the newest message kept so far (0 if none).
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Messages kept now.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether nothing is kept now.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Keep `frame` as the room's next message; returns its offset. Older
    /// messages go to stay within `limits` (count, age, and the shared
    /// bytes, this room's oldest first).
    pub fn append(&mut self, frame: Text, now: Instant, limits: &HistoryLimits) -> u64 {
        self.top += 1;
        let len = frame.len() + KEPT_OVERHEAD;
        self.kept.push_back(Kept {
            offset: self.top,
            frame,
            at: now,
        });
        self.bytes += len;
        self.count.add(len);
        while self.kept.len() > limits.size.max(1) {
            self.pop_oldest();
        }
        // Past the byte bound the room gives up its own messages, down to
        // none: keeping each room's newest whatever the bound would let
        // --max-rooms rooms hold a message each (100,000 × 64 KiB). The
        // message was delivered all the same; only a recovery that needs
        // it is told `recovered:false`.
        while !self.kept.is_empty() && self.count.total() > limits.max_total_bytes {
            self.pop_oldest();
        }
        self.expire(now, limits.ttl);
        self.top
    }

    /// Drop what is older than `ttl`.
    pub fn expire(&mut self, now: Instant, ttl: Duration) {
        while self
            .kept
            .front()
            .is_some_and(|k| now.saturating_duration_since(k.at) > ttl)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some(k) = self.kept.pop_front() {
            self.bytes -= k.frame.len() + KEPT_OVERHEAD;
            self.count.sub(k.frame.len() + KEPT_OVERHEAD);
        }
    }

    /// Offset of the oldest message still kept (`top + 1` if none).
    fn oldest(&self) -> u64 {
        self.top + 1 - self.kept.len() as u64
    }

    /// Every kept message after `since` of `epoch`, oldest first, if the
    /// log still holds all of them and they are at most `max_recover`.
    /// Empty when nothing was missed. Expired messages count as gone.
    pub fn recover(
        &self,
        epoch: &str,
        since: u64,
        now: Instant,
        limits: &HistoryLimits,
    ) -> Result<Vec<&Kept>, Unrecoverable> {
        self.recover_upto(epoch, since, self.top, now, limits)
    }

    /// [`RoomLog::recover`], up to offset `upto` only (what was delivered
    /// live so far): a `since` between `upto` and the newest missed
    /// nothing.
    pub fn recover_upto(
        &self,
        epoch: &str,
        since: u64,
        upto: u64,
        now: Instant,
        limits: &HistoryLimits,
    ) -> Result<Vec<&Kept>, Unrecoverable> {
        if !limits.is_on() {
            return Err(Unrecoverable::Off);
        }
        if epoch != &*self.epoch {
            return Err(Unrecoverable::Epoch);
        }
        if since > self.top {
            return Err(Unrecoverable::Ahead);
        }
        let upto = upto.min(self.top);
        if since >= upto {
            return Ok(Vec::new());
        }
        let missed = upto - since;
        if missed > limits.max_recover as u64 {
            return Err(Unrecoverable::TooMany);
        }
        let first = self.live(now, limits.ttl);
        if since + 1 < first {
            return Err(Unrecoverable::Gone);
        }
        Ok(self.from(since + 1).take(missed as usize).collect())
    }

    /// At most `limit` kept messages before offset `before` (all kept if
    /// `None`), the newest of them, oldest first. Expired ones are left out.
    pub fn page(
        &self,
        before: Option<u64>,
        limit: usize,
        now: Instant,
        ttl: Duration,
    ) -> Vec<&Kept> {
        let first = self.live(now, ttl);
        let end = before.unwrap_or(u64::MAX).min(self.top + 1);
        if end <= first || limit == 0 {
            return Vec::new();
        }
        let start = end.saturating_sub(limit as u64).max(first);
        self.from(start).take_while(|k| k.offset < end).collect()
    }

    /// The offset of the oldest message not expired at `now`.
    fn live(&self, now: Instant, ttl: Duration) -> u64 {
        let expired = self
            .kept
            .iter()
            .take_while(|k| now.saturating_duration_since(k.at) > ttl)
            .count();
        self.oldest() + expired as u64
    }

    /// Kept messages from `offset` on.
    fn from(&self, offset: u64) -> impl Iterator<Item = &Kept> {
        let skip = offset.saturating_sub(self.oldest()) as usize;
        self.kept.iter().skip(skip)
    }
}

impl Drop for RoomLog {
    fn drop(&mut self) {
        self.count.sub(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(size: usize) -> HistoryLimits {
        HistoryLimits {
            size,
            ..HistoryLimits::default()
        }
    }

    fn log_with(n: u64, limits: &HistoryLimits, now: Instant) -> RoomLog {
        let mut log = RoomLog::with_epoch("e1", Bytes::new());
        for i in 1..=n {
            assert_eq!(log.append(Text::from(format!("m{i}")), now, limits), i);
        }
        log
    }

    fn offsets(kept: &[&Kept]) -> Vec<u64> {
        kept.iter().map(|k| k.offset).collect()
    }

    #[test]
    fn offsets_count_up_and_the_oldest_go_past_the_size() {
        let l = limits(3);
        let now = Instant::now();
        let log = log_with(5, &l, now);
        assert_eq!(log.top(), 5);
        assert_eq!(log.len(), 3);
        assert_eq!(offsets(&log.page(None, 10, now, l.ttl)), [3, 4, 5]);
        assert_eq!(&*log.page(None, 1, now, l.ttl)[0].frame, "m5");
    }

    #[test]
    fn recovery_replays_everything_after_the_offset_or_nothing() {
        let l = limits(10);
        let now = Instant::now();
        let log = log_with(12, &l, now);
        // Kept: 3..=12.
        assert_eq!(
            offsets(&log.recover("e1", 7, now, &l).unwrap()),
            [8, 9, 10, 11, 12]
        );
        assert_eq!(offsets(&log.recover("e1", 2, now, &l).unwrap()).len(), 10);
        assert!(log.recover("e1", 12, now, &l).unwrap().is_empty());
        assert_eq!(log.recover("e1", 1, now, &l), Err(Unrecoverable::Gone));
        assert_eq!(log.recover("e2", 7, now, &l), Err(Unrecoverable::Epoch));
        assert_eq!(log.recover("e1", 13, now, &l), Err(Unrecoverable::Ahead));
        let few = HistoryLimits {
            max_recover: 4,
            ..l
        };
        assert_eq!(log.recover("e1", 7, now, &few), Err(Unrecoverable::TooMany));
        assert_eq!(
            offsets(&log.recover("e1", 8, now, &few).unwrap()),
            [9, 10, 11, 12]
        );
        let off = HistoryLimits { size: 0, ..l };
        assert_eq!(log.recover("e1", 12, now, &off), Err(Unrecoverable::Off));
    }

    #[test]
    fn expired_messages_are_neither_replayed_nor_paged() {
        let l = HistoryLimits {
            ttl: Duration::from_secs(60),
            ..limits(10)
        };
        let t0 = Instant::now();
        let mut log = RoomLog::with_epoch("e1", Bytes::new());
        log.append("old".into(), t0, &l);
        log.append("new".into(), t0 + Duration::from_secs(50), &l);
        let later = t0 + Duration::from_secs(61);
        assert_eq!(log.recover("e1", 0, later, &l), Err(Unrecoverable::Gone));
        assert_eq!(offsets(&log.recover("e1", 1, later, &l).unwrap()), [2]);
        assert_eq!(offsets(&log.page(None, 10, later, l.ttl)), [2]);
        log.expire(later, l.ttl);
        assert_eq!(log.len(), 1);
        assert_eq!(log.top(), 2);
    }

    #[test]
    fn pages_go_back_from_before() {
        let l = limits(100);
        let now = Instant::now();
        let log = log_with(30, &l, now);
        assert_eq!(offsets(&log.page(None, 3, now, l.ttl)), [28, 29, 30]);
        assert_eq!(offsets(&log.page(Some(28), 3, now, l.ttl)), [25, 26, 27]);
        assert_eq!(offsets(&log.page(Some(3), 5, now, l.ttl)), [1, 2]);
        assert!(log.page(Some(1), 5, now, l.ttl).is_empty());
        assert!(log.page(None, 0, now, l.ttl).is_empty());
        assert_eq!(offsets(&log.page(Some(1000), 2, now, l.ttl)), [29, 30]);
    }

    #[test]
    fn all_rooms_together_stay_within_their_bytes() {
        let one = 10 + KEPT_OVERHEAD;
        let l = HistoryLimits {
            max_total_bytes: 10 * one,
            ..limits(1000)
        };
        let now = Instant::now();
        let count = Bytes::new();
        let mut a = RoomLog::with_epoch("a", count.clone());
        let mut b = RoomLog::with_epoch("b", count.clone());
        for _ in 0..10 {
            a.append("x".repeat(10).into(), now, &l);
        }
        assert_eq!(count.total(), 10 * one);
        b.append("y".repeat(30).into(), now, &l);
        // Room b gives up its own messages first, its newest too: the
        // bound holds.
        assert_eq!((b.len(), b.top()), (0, 1));
        assert_eq!(count.total(), 10 * one);
        a.append("x".repeat(10).into(), now, &l);
        assert!(count.total() <= 10 * one, "{}", count.total());
        // A log made for a room counts its key and itself.
        let c = RoomLog::new("room-c".len(), count.clone());
        assert!(count.total() > 10 * one);
        drop(c);
        assert_eq!(a.top(), 11);
        drop(a);
        drop(b);
        assert_eq!(count.total(), 0);
    }

    #[test]
    fn epochs_differ() {
        let a = new_epoch();
        assert_eq!(a.len(), 8);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c))
        );
        assert_ne!(a, new_epoch());
    }
}
