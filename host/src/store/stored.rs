//! Stored notices: frames kept for an id that is offline, handed over,
//! oldest first, after its next welcome.
//!
//! Bounded per id (the oldest go first, and the id is told how many it
//! lost), by age, and by the bytes of every id's notices together (past
//! that a new notice is refused: the sender learns it was not stored,
//! nobody else's notices are dropped for it).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::history::Bytes;

/// How many notices are kept, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredLimits {
    /// Notices kept per id; past this the oldest is dropped.
    pub per_id: usize,
    /// How long a notice is kept.
    pub max_age: Duration,
    /// Bytes of every id's notices together (with whatever else shares
    /// the store's count: see [`NoticeStore::counted_in`]).
    pub max_total_bytes: usize,
}

impl Default for StoredLimits {
    fn default() -> Self {
        StoredLimits {
            per_id: 100,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_total_bytes: 64 << 20,
        }
    }
}

/// One kept notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The frame to hand over (the notice as the recipient would have got
    /// it).
    pub frame: Arc<str>,
    /// When it was stored.
    pub at: SystemTime,
}

impl Stored {
    /// `at` as RFC 3339, UTC, to the millisecond (`stored_at`).
    pub fn stored_at(&self) -> String {
        humantime::format_rfc3339_millis(self.at).to_string()
    }
}

/// Why a notice was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The server holds as many bytes of stored notices as it may.
    #[error("the server's store of notices is full")]
    Full,
    /// Storing is off (`per_id` is 0).
    #[error("notices are not stored on this server")]
    Off,
}

/// What [`NoticeStore::take`] hands over.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mail {
    /// The notices, oldest first.
    pub notices: Vec<Stored>,
    /// Notices dropped since the last take because the id had too many.
    pub dropped: u64,
}

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
pub struct NoticeStore {
    inner: Mutex<Inner>,
    limits: StoredLimits,
    /// Where its bytes are counted (maybe with the rooms' history's).
    count: Arc<Bytes>,
}

impl NoticeStore {
    /// An empty store, counting its bytes on its own.
    pub fn new(limits: StoredLimits) -> NoticeStore {
        NoticeStore::counted_in(limits, Bytes::new())
    }

    /// An empty store whose bytes are counted in `count`, which others
    /// share: `max_total_bytes` then bounds all of them together.
    pub fn counted_in(limits: StoredLimits, count: Arc<Bytes>) -> NoticeStore {
        NoticeStore {
            inner: Mutex::default(),
            limits,
            count,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &StoredLimits {
        &self.limits
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; the maps stay valid if
        // something ever did.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keep `frame` for `to`, stored at `now`.
    pub fn store(&self, to: &str, frame: Arc<str>, now: SystemTime) -> Result<(), StoreError> {
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

    /// Everything kept for `id` (and how many were dropped), removed from
    /// the store; what is older than the limit at `now` is left out.
    pub fn take(&self, id: &str, now: SystemTime) -> Mail {
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

    /// Drop what is older than the limit, for every id (a periodic sweep,
    /// so ids that never come back do not hold memory forever).
    pub fn expire_all(&self, now: SystemTime) {
        let mut inner = self.lock();
        let Inner { boxes, bytes } = &mut *inner;
        boxes.retain(|_, mailbox| {
            self.expire(mailbox, bytes, now);
            // Once all its notices expired, the count of those dropped
            // before them goes too: they would have expired by now.
            !mailbox.notices.is_empty()
        });
    }

    /// Bytes of every stored notice.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(mail: &Mail) -> Vec<&str> {
        mail.notices.iter().map(|n| &*n.frame).collect()
    }

    #[test]
    fn notices_come_back_oldest_first_once() {
        let store = NoticeStore::new(StoredLimits::default());
        let now = SystemTime::now();
        store.store("bob", "one".into(), now).unwrap();
        store.store("bob", "two".into(), now).unwrap();
        store.store("carol", "other".into(), now).unwrap();
        let mail = store.take("bob", now);
        assert_eq!(frames(&mail), ["one", "two"]);
        assert_eq!(mail.dropped, 0);
        assert_eq!(store.take("bob", now), Mail::default());
        assert_eq!(store.count("carol"), 1);
        assert_eq!(store.bytes(), "other".len());
    }

    #[test]
    fn past_the_limit_per_id_the_oldest_go_and_are_counted() {
        let store = NoticeStore::new(StoredLimits {
            per_id: 3,
            ..StoredLimits::default()
        });
        let now = SystemTime::now();
        for i in 1..=5 {
            store.store("bob", format!("n{i}").into(), now).unwrap();
        }
        let mail = store.take("bob", now);
        assert_eq!(frames(&mail), ["n3", "n4", "n5"]);
        assert_eq!(mail.dropped, 2);
        assert_eq!(store.bytes(), 0);
    }

    #[test]
    fn old_notices_are_not_handed_over() {
        let store = NoticeStore::new(StoredLimits {
            max_age: Duration::from_secs(60),
            ..StoredLimits::default()
        });
        let t0 = SystemTime::now();
        store.store("bob", "old".into(), t0).unwrap();
        store
            .store("bob", "new".into(), t0 + Duration::from_secs(30))
            .unwrap();
        store.store("gone", "x".into(), t0).unwrap();
        let later = t0 + Duration::from_secs(61);
        store.expire_all(later);
        assert_eq!(store.count("gone"), 0);
        assert_eq!(frames(&store.take("bob", later)), ["new"]);
        assert_eq!(store.bytes(), 0);
    }

    #[test]
    fn a_full_store_refuses_without_dropping_anyone_elses() {
        let store = NoticeStore::new(StoredLimits {
            max_total_bytes: 10,
            ..StoredLimits::default()
        });
        let now = SystemTime::now();
        store.store("bob", "12345678".into(), now).unwrap();
        assert_eq!(
            store.store("carol", "abc".into(), now),
            Err(StoreError::Full)
        );
        assert_eq!(store.count("carol"), 0);
        assert_eq!(store.count("bob"), 1);
        let off = NoticeStore::new(StoredLimits {
            per_id: 0,
            ..StoredLimits::default()
        });
        assert_eq!(off.store("bob", "x".into(), now), Err(StoreError::Off));
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
