//! Stored notices in memory (the embedded default).
//!
//! Bounded per id (the oldest go first, and the id is told how many it
//! lost), by age, and by the bytes of every id's notices together (past
//! that a new notice is refused: the sender learns it was not stored,
//! nobody else's notices are dropped for it).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::store::bytes::Bytes;
use crate::store::notices::{Mail, Notices, StoreError, Stored, StoredLimits};

#[derive(Debug, Default)]
struct Mailbox {
    notices: VecDeque<Stored>,
    dropped: u64,
}

#[derive(Debug, Default)]
struct Inner {
    boxes: HashMap<Arc<str>, Mailbox>,
    bytes: usize,
}

/// Every id's stored notices.
#[derive(Debug)]
pub struct MemoryNotices {
    inner: Mutex<Inner>,
    limits: StoredLimits,
    /// Where its bytes are counted (maybe with the rooms' history's).
    count: Arc<Bytes>,
}

impl MemoryNotices {
    /// An empty store, counting its bytes on its own.
    pub fn new(limits: StoredLimits) -> MemoryNotices {
        MemoryNotices::counted_in(limits, Bytes::new())
    }

    /// An empty store whose bytes are counted in `count`, which others
    /// share: `max_total_bytes` then bounds all of them together.
    pub fn counted_in(limits: StoredLimits, count: Arc<Bytes>) -> MemoryNotices {
        MemoryNotices {
            inner: Mutex::default(),
            limits,
            count,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; the maps stay valid if
        // something ever did.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drop `mailbox`'s notices older than the limit at `now`.
    fn expire(&self, mailbox: &mut Mailbox, bytes: &mut usize, now: SystemTime) {
        let max_age = self.limits.max_age;
        while mailbox
            .notices
            .front()
            .is_some_and(|n| now.duration_since(n.at).is_ok_and(|age| age > max_age))
        {
            if let Some(n) = mailbox.notices.pop_front() {
                *bytes -= n.frame.len();
                self.count.sub(n.frame.len());
            }
        }
    }

    /// Notices kept for `id` now.
    pub fn count(&self, id: &str) -> usize {
        self.lock().boxes.get(id).map_or(0, |m| m.notices.len())
    }
}

#[async_trait]
impl Notices for MemoryNotices {
    fn limits(&self) -> &StoredLimits {
        &self.limits
    }

    async fn store(&self, to: &str, frame: Arc<str>, now: SystemTime) -> Result<(), StoreError> {
        if self.limits.per_id == 0 {
            return Err(StoreError::Off);
        }
        let mut inner = self.lock();
        let Inner { boxes, bytes } = &mut *inner;
        let mailbox = boxes.entry(Arc::from(to)).or_default();
        self.expire(mailbox, bytes, now);
        // Room made by this id's own oldest first, then the server-wide
        // bound decides.
        let mut freed = 0;
        let mut dropping = 0;
        let over = (mailbox.notices.len() + 1).saturating_sub(self.limits.per_id);
        for n in mailbox.notices.iter().take(over) {
            freed += n.frame.len();
            dropping += 1;
        }
        if self.count.total().saturating_sub(freed) + frame.len() > self.limits.max_total_bytes {
            if mailbox.notices.is_empty() {
                boxes.remove(to);
            }
            return Err(StoreError::Full);
        }
        for _ in 0..dropping {
            mailbox.notices.pop_front();
        }
        mailbox.dropped += dropping;
        *bytes = *bytes - freed + frame.len();
        self.count.sub(freed);
        self.count.add(frame.len());
        mailbox.notices.push_back(Stored { frame, at: now });
        Ok(())
    }

    async fn take(&self, id: &str, now: SystemTime) -> Mail {
        let mut inner = self.lock();
        let Inner { boxes, bytes } = &mut *inner;
        let Some(mut mailbox) = boxes.remove(id) else {
            return Mail::default();
        };
        self.expire(&mut mailbox, bytes, now);
        let taken = mailbox.notices.iter().map(|n| n.frame.len()).sum::<usize>();
        *bytes -= taken;
        self.count.sub(taken);
        Mail {
            notices: mailbox.notices.into(),
            dropped: mailbox.dropped,
        }
    }

    async fn expire_all(&self, now: SystemTime) {
        let mut inner = self.lock();
        let Inner { boxes, bytes } = &mut *inner;
        boxes.retain(|_, mailbox| {
            self.expire(mailbox, bytes, now);
            // Once all its notices expired, the count of those dropped
            // before them goes too: they would have expired by now.
            !mailbox.notices.is_empty()
        });
    }

    fn bytes(&self) -> usize {
        self.lock().bytes
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
        store.store("bob", "one".into(), now).await.unwrap();
        store.store("bob", "two".into(), now).await.unwrap();
        store.store("carol", "other".into(), now).await.unwrap();
        let mail = store.take("bob", now).await;
        assert_eq!(frames(&mail), ["one", "two"]);
        assert_eq!(mail.dropped, 0);
        assert_eq!(store.take("bob", now).await, Mail::default());
        assert_eq!(store.count("carol"), 1);
        assert_eq!(store.bytes(), "other".len());
    }

    #[tokio::test]
    async fn past_the_limit_per_id_the_oldest_go_and_are_counted() {
        let store = MemoryNotices::new(StoredLimits {
            per_id: 3,
            ..StoredLimits::default()
        });
        let now = SystemTime::now();
        for i in 1..=5 {
            store
                .store("bob", format!("n{i}").into(), now)
                .await
                .unwrap();
        }
        let mail = store.take("bob", now).await;
        assert_eq!(frames(&mail), ["n3", "n4", "n5"]);
        assert_eq!(mail.dropped, 2);
        assert_eq!(store.bytes(), 0);
    }

    #[tokio::test]
    async fn old_notices_are_not_handed_over() {
        let store = MemoryNotices::new(StoredLimits {
            max_age: Duration::from_secs(60),
            ..StoredLimits::default()
        });
        let t0 = SystemTime::now();
        store.store("bob", "old".into(), t0).await.unwrap();
        store
            .store("bob", "new".into(), t0 + Duration::from_secs(30))
            .await
            .unwrap();
        store.store("gone", "x".into(), t0).await.unwrap();
        let later = t0 + Duration::from_secs(61);
        store.expire_all(later).await;
        assert_eq!(store.count("gone"), 0);
        assert_eq!(frames(&store.take("bob", later).await), ["new"]);
        assert_eq!(store.bytes(), 0);
    }

    #[tokio::test]
    async fn a_full_store_refuses_without_dropping_anyone_elses() {
        let store = MemoryNotices::new(StoredLimits {
            max_total_bytes: 10,
            ..StoredLimits::default()
        });
        let now = SystemTime::now();
        store.store("bob", "12345678".into(), now).await.unwrap();
        assert_eq!(
            store.store("carol", "abc".into(), now).await,
            Err(StoreError::Full)
        );
        assert_eq!(store.count("carol"), 0);
        assert_eq!(store.count("bob"), 1);
        let off = MemoryNotices::new(StoredLimits {
            per_id: 0,
            ..StoredLimits::default()
        });
        assert_eq!(
            off.store("bob", "x".into(), now).await,
            Err(StoreError::Off)
        );
    }

    #[test]
    fn stored_at_is_rfc_3339() {
        let n = Stored {
            frame: "x".into(),
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        };
        assert_eq!(n.stored_at(), "2023-11-14T22:13:20.123Z");
    }
}
