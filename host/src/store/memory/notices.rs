//! Stored notices in memory (the embedded default).
//!
//! Shared fairly among senders: each sender may have a number of notices
//! outstanding, for all recipients together and for any one of them; a
//! full box drops the oldest notice of the sender with the most notices in
//! it (one sender cannot flush the others'), and the id is told how many it
//! lost. Bounded by age, and by the bytes memory really holds for every
//! id's notices together — keys, frames and each entry's overhead: past
//! that a new notice is refused (the sender learns it was not stored,
//! nobody else's notices are dropped for it).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::store::notices::{Mail, Notices, StoreError, Stored, StoredLimits};

/// Bytes one kept notice holds besides its frame: the entry (two shared
/// pointers and a time) and the frame's allocation header, rounded up.
pub const NOTICE_OVERHEAD: usize = 64;
/// Bytes a recipient's box holds besides its id: the map's entry, the box
/// and its per-sender counts' map, the id's allocation header.
pub const BOX_OVERHEAD: usize = 128;
/// Bytes one sender's count in one box holds.
pub const PAIR_OVERHEAD: usize = 32;
/// Bytes one sender's server-wide count holds besides its id.
pub const SENDER_OVERHEAD: usize = 48;

#[derive(Debug, Default)]
struct Mailbox {
    /// Oldest first.
    notices: VecDeque<Stored>,
    /// Dropped since the last take because the box was full.
    dropped: u64,
    /// How many of `notices` each sender stored.
    by_sender: HashMap<Arc<str>, usize>,
}

/// Every sender's outstanding notices, all boxes together.
#[derive(Debug, Default)]
struct Senders(HashMap<Arc<str>, usize>);

impl Senders {
    fn count(&self, from: &str) -> usize {
        self.0.get(from).copied().unwrap_or(0)
    }

    /// The sender's shared id, counted once more; the bytes that took.
    fn add(&mut self, from: &str) -> (Arc<str>, usize) {
        if let Some((key, n)) = self.0.get_key_value(from) {
            let key = key.clone();
            let n = *n;
            self.0.insert(key.clone(), n + 1);
            return (key, 0);
        }
        let key: Arc<str> = Arc::from(from);
        self.0.insert(key.clone(), 1);
        (key, from.len() + SENDER_OVERHEAD)
    }

    /// One notice of `from` is gone; the bytes that freed.
    fn remove(&mut self, from: &str) -> usize {
        match self.0.get_mut(from) {
            Some(n) if *n > 1 => {
                *n -= 1;
                0
            }
            Some(_) => {
                self.0.remove(from);
                from.len() + SENDER_OVERHEAD
            }
            None => 0,
        }
    }
}

impl Mailbox {
    /// Remove the notice at `at`, counting it out everywhere; the bytes
    /// that freed.
    fn remove(&mut self, at: usize, senders: &mut Senders) -> usize {
        let Some(n) = self.notices.remove(at) else {
            return 0;
        };
        let mut freed = n.frame.len() + NOTICE_OVERHEAD + senders.remove(&n.from);
        match self.by_sender.get_mut(&*n.from) {
            Some(c) if *c > 1 => *c -= 1,
            _ => {
                self.by_sender.remove(&*n.from);
                freed += PAIR_OVERHEAD;
            }
        }
        freed
    }

    /// Where the notice to drop for a new one is: the oldest of the
    /// sender with the most notices here.
    fn victim(&self) -> Option<usize> {
        let most = self.by_sender.values().copied().max()?;
        self.notices
            .iter()
            .position(|n| self.by_sender.get(&*n.from) == Some(&most))
    }

    /// Bytes the box holds besides its notices (with its key `to`).
    fn own_bytes(&self, to: &str) -> usize {
        to.len() + BOX_OVERHEAD
    }
}

#[derive(Debug, Default)]
struct Inner {
    boxes: HashMap<Arc<str>, Mailbox>,
    senders: Senders,
    /// Bytes held, as counted by the overheads above.
    bytes: usize,
}

/// Every id's stored notices.
#[derive(Debug)]
pub struct MemoryNotices {
    inner: Mutex<Inner>,
    limits: StoredLimits,
}

impl MemoryNotices {
    /// An empty store.
    pub fn new(limits: StoredLimits) -> MemoryNotices {
        MemoryNotices {
            inner: Mutex::default(),
            limits,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; the maps stay valid if
        // something ever did.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drop `mailbox`'s notices older than the limit at `now`; the bytes
    /// that freed.
    fn expire(&self, mailbox: &mut Mailbox, senders: &mut Senders, now: SystemTime) -> usize {
        let max_age = self.limits.max_age;
        let mut freed = 0;
        while mailbox
            .notices
            .front()
            .is_some_and(|n| now.duration_since(n.at).is_ok_and(|age| age > max_age))
        {
            freed += mailbox.remove(0, senders);
        }
        freed
    }

    /// Notices kept for `id` now.
    pub fn count(&self, id: &str) -> usize {
        self.lock().boxes.get(id).map_or(0, |m| m.notices.len())
    }

    /// Notices `from` has stored and not yet handed over, all boxes
    /// together.
    pub fn sent_by(&self, from: &str) -> usize {
        self.lock().senders.count(from)
    }
}

#[async_trait]
impl Notices for MemoryNotices {
    fn limits(&self) -> &StoredLimits {
        &self.limits
    }

    async fn store(
        &self,
        from: &str,
        to: &str,
        frame: Arc<str>,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let limits = &self.limits;
        if limits.per_id == 0 {
            return Err(StoreError::Off);
        }
        let mut inner = self.lock();
        let Inner {
            boxes,
            senders,
            bytes,
        } = &mut *inner;
        if let Some(mailbox) = boxes.get_mut(to) {
            *bytes -= self.expire(mailbox, senders, now);
        }
        if senders.count(from) >= limits.per_sender {
            return Err(StoreError::PerSender(limits.per_sender));
        }
        let mailbox = boxes.get(to);
        let pair = mailbox.and_then(|m| m.by_sender.get(from)).copied();
        if pair.unwrap_or(0) >= limits.per_pair {
            return Err(StoreError::PerPair(limits.per_pair));
        }
        // What the new notice takes, and what a full box frees for it.
        let mut cost = frame.len() + NOTICE_OVERHEAD;
        if pair.is_none() {
            cost += PAIR_OVERHEAD;
        }
        if senders.count(from) == 0 {
            cost += from.len() + SENDER_OVERHEAD;
        }
        let victim = match mailbox {
            None => {
                cost += to.len() + BOX_OVERHEAD;
                None
            }
            Some(m) if m.notices.len() >= limits.per_id => m.victim(),
            Some(_) => None,
        };
        let freed = victim
            .and_then(|at| mailbox.and_then(|m| m.notices.get(at)))
            .map_or(0, |n| n.frame.len() + NOTICE_OVERHEAD);
        if bytes.saturating_sub(freed) + cost > limits.max_total_bytes {
            return Err(StoreError::Full);
        }
        let mailbox = match boxes.get_mut(to) {
            Some(m) => m,
            None => {
                let m = boxes.entry(Arc::from(to)).or_default();
                *bytes += m.own_bytes(to);
                m
            }
        };
        if let Some(at) = victim {
            *bytes -= mailbox.remove(at, senders);
            mailbox.dropped += 1;
        }
        let (from, sender_bytes) = senders.add(from);
        *bytes += sender_bytes;
        let pair = mailbox.by_sender.entry(from.clone()).or_insert_with(|| {
            *bytes += PAIR_OVERHEAD;
            0
        });
        *pair += 1;
        *bytes += frame.len() + NOTICE_OVERHEAD;
        mailbox.notices.push_back(Stored {
            frame,
            from,
            at: now,
        });
        Ok(())
    }

    async fn take(&self, id: &str, now: SystemTime) -> Mail {
        let mut inner = self.lock();
        let Inner {
            boxes,
            senders,
            bytes,
        } = &mut *inner;
        let Some(mut mailbox) = boxes.remove(id) else {
            return Mail::default();
        };
        *bytes -= self.expire(&mut mailbox, senders, now);
        *bytes -= mailbox.own_bytes(id);
        let notices: Vec<Stored> = mailbox.notices.drain(..).collect();
        for n in &notices {
            *bytes -= n.frame.len() + NOTICE_OVERHEAD + senders.remove(&n.from);
        }
        *bytes -= mailbox.by_sender.len() * PAIR_OVERHEAD;
        Mail {
            notices,
            dropped: mailbox.dropped,
        }
    }

    async fn expire_all(&self, now: SystemTime) {
        let mut inner = self.lock();
        let Inner {
            boxes,
            senders,
            bytes,
        } = &mut *inner;
        boxes.retain(|to, mailbox| {
            *bytes -= self.expire(mailbox, senders, now);
            // Once all its notices expired, the count of those dropped
            // before them goes too: they would have expired by now.
            let keep = !mailbox.notices.is_empty();
            if !keep {
                *bytes -= mailbox.own_bytes(to);
            }
            keep
        });
    }

    fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn stored(&self) -> Option<usize> {
        Some(self.lock().senders.0.values().sum())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn frames(mail: &Mail) -> Vec<&str> {
        mail.notices.iter().map(|n| &*n.frame).collect()
    }

    #[tokio::test]
    async fn notices_come_back_oldest_first_once() {
        let store = MemoryNotices::new(StoredLimits::default());
        let now = SystemTime::now();
        store.store("al", "bob", "one".into(), now).await.unwrap();
        store.store("al", "bob", "two".into(), now).await.unwrap();
        store
            .store("al", "carol", "other".into(), now)
            .await
            .unwrap();
        let mail = store.take("bob", now).await;
        assert_eq!(frames(&mail), ["one", "two"]);
        assert_eq!(mail.dropped, 0);
        assert_eq!(store.take("bob", now).await, Mail::default());
        assert_eq!(store.count("carol"), 1);
        // What memory holds: the frame and its entry, carol's box, al's
        // count in it, and al's server-wide count.
        let expected = "other".len()
            + NOTICE_OVERHEAD
            + "carol".len()
            + BOX_OVERHEAD
            + PAIR_OVERHEAD
            + "al".len()
            + SENDER_OVERHEAD;
        assert_eq!(store.bytes(), expected);
        assert_eq!(store.sent_by("al"), 1);
        store.take("carol", now).await;
        assert_eq!((store.bytes(), store.sent_by("al")), (0, 0));
    }

    #[tokio::test]
    async fn a_full_box_drops_the_oldest_of_the_sender_with_the_most() {
        let store = MemoryNotices::new(StoredLimits {
            per_id: 4,
            ..StoredLimits::default()
        });
        let now = SystemTime::now();
        store.store("carol", "bob", "c1".into(), now).await.unwrap();
        for i in 1..=3 {
            let frame = format!("m{i}");
            store
                .store("mallory", "bob", frame.into(), now)
                .await
                .unwrap();
        }
        // Full: mallory has the most, so mallory's oldest goes, never
        // carol's, however many mallory sends.
        for i in 4..=9 {
            let frame = format!("m{i}");
            store
                .store("mallory", "bob", frame.into(), now)
                .await
                .unwrap();
        }
        let mail = store.take("bob", now).await;
        assert_eq!(frames(&mail), ["c1", "m7", "m8", "m9"]);
        assert_eq!(mail.dropped, 6);
        assert_eq!(store.bytes(), 0);
    }

    #[tokio::test]
    async fn quotas_per_sender_and_per_pair_refuse_only_that_sender() {
        let store = MemoryNotices::new(StoredLimits {
            per_sender: 3,
            per_pair: 2,
            ..StoredLimits::default()
        });
        let now = SystemTime::now();
        store.store("m", "bob", "1".into(), now).await.unwrap();
        store.store("m", "bob", "2".into(), now).await.unwrap();
        assert_eq!(
            store.store("m", "bob", "3".into(), now).await,
            Err(StoreError::PerPair(2))
        );
        store.store("m", "carol", "3".into(), now).await.unwrap();
        assert_eq!(
            store.store("m", "dave", "4".into(), now).await,
            Err(StoreError::PerSender(3))
        );
        assert!(StoreError::PerSender(3).is_quota());
        // Somebody else is not affected.
        store.store("x", "bob", "5".into(), now).await.unwrap();
        assert_eq!(store.count("bob"), 3);
        // Handing over gives the quota back.
        store.take("bob", now).await;
        assert_eq!(store.sent_by("m"), 1);
        store.store("m", "dave", "6".into(), now).await.unwrap();
    }

    #[tokio::test]
    async fn old_notices_are_not_handed_over() {
        let store = MemoryNotices::new(StoredLimits {
            max_age: Duration::from_secs(60),
            ..StoredLimits::default()
        });
        let t0 = SystemTime::now();
        store.store("s", "bob", "old".into(), t0).await.unwrap();
        store
            .store("s", "bob", "new".into(), t0 + Duration::from_secs(30))
            .await
            .unwrap();
        store.store("s", "gone", "x".into(), t0).await.unwrap();
        let later = t0 + Duration::from_secs(61);
        store.expire_all(later).await;
        assert_eq!(store.count("gone"), 0);
        assert_eq!(frames(&store.take("bob", later).await), ["new"]);
        assert_eq!(store.bytes(), 0);
        assert_eq!(store.sent_by("s"), 0);
    }

    #[tokio::test]
    async fn a_full_store_refuses_without_dropping_anyone_elses() {
        let one = "12345678".len() + NOTICE_OVERHEAD + 3 + BOX_OVERHEAD + PAIR_OVERHEAD;
        let store = MemoryNotices::new(StoredLimits {
            max_total_bytes: one + 1 + SENDER_OVERHEAD + 10,
            ..StoredLimits::default()
        });
        let now = SystemTime::now();
        store
            .store("a", "bob", "12345678".into(), now)
            .await
            .unwrap();
        assert_eq!(
            store.store("a", "carol", "abc".into(), now).await,
            Err(StoreError::Full)
        );
        assert_eq!(store.count("carol"), 0);
        assert_eq!(store.count("bob"), 1);
        // Long keys count: a 60-byte id costs what it holds.
        let long = "x".repeat(60);
        assert_eq!(
            store.store("a", &long, "".into(), now).await,
            Err(StoreError::Full)
        );
        let off = MemoryNotices::new(StoredLimits {
            per_id: 0,
            ..StoredLimits::default()
        });
        assert_eq!(
            off.store("a", "bob", "x".into(), now).await,
            Err(StoreError::Off)
        );
    }

    #[test]
    fn stored_at_is_rfc_3339() {
        let n = Stored {
            frame: "x".into(),
            from: "a".into(),
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        };
        assert_eq!(n.stored_at(), "2023-11-14T22:13:20.123Z");
    }
}
