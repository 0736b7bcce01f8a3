//! The key-value store policies keep their lasting data in. It lives in the
//! host, so it survives every instance being replaced (after a trap, on a
//! swap). Bounded in key size, value size, entry count and total bytes,
//! where every entry also costs [`ENTRY_OVERHEAD`] (so a policy cannot fill
//! the host's memory with empty entries that would cost nothing).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

/// Bytes every entry counts for besides its key and value: roughly what the
/// map spends on it (two heap blocks, their headers, the slot).
pub const ENTRY_OVERHEAD: usize = 64;

/// Why a `set` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The key or value exceeds the per-item limit (given in bytes).
    #[error("key or value larger than {0} bytes")]
    TooLarge(usize),
    /// The store's total size or entry count limit would be exceeded.
    #[error("state store full")]
    Full,
}

/// Size limits of the store.
#[derive(Debug, Clone, Copy)]
pub struct StateLimits {
    /// Largest key.
    pub max_key: usize,
    /// Largest value.
    pub max_value: usize,
    /// Total of all keys and values, plus [`ENTRY_OVERHEAD`] per entry.
    pub max_total: usize,
    /// Most entries.
    pub max_entries: usize,
}

impl From<&crate::config::PolicyLimits> for StateLimits {
    fn from(l: &crate::config::PolicyLimits) -> Self {
        StateLimits {
            max_key: l.state_max_key_bytes,
            max_value: l.state_max_value_bytes,
            max_total: l.state_max_total_bytes,
            max_entries: l.state_max_entries,
        }
    }
}

/// The policy's key-value state, as its `state` imports ask it. They run
/// inside a synchronous sandboxed call and cannot wait: nothing here is
/// `async`. On one server the answers are exact ([`StateStore`]); a store
/// shared by several servers answers from a local copy and says how stale
/// it may be.
pub trait State: std::fmt::Debug + Send + Sync {
    /// The value under `key`.
    fn get(&self, key: &str) -> Option<Vec<u8>>;

    /// Store `value` under `key`, within the limits.
    fn set(&self, key: String, value: Vec<u8>) -> Result<(), StateError>;

    /// Remove `key`; true if it was there.
    fn delete(&self, key: &str) -> bool;
}

impl State for StateStore {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        StateStore::get(self, key)
    }

    fn set(&self, key: String, value: Vec<u8>) -> Result<(), StateError> {
        StateStore::set(self, key, value)
    }

    fn delete(&self, key: &str) -> bool {
        StateStore::delete(self, key)
    }
}

/// The in-memory state (the embedded default): a cheap-to-clone handle.
#[derive(Debug, Clone)]
pub struct StateStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The entries.
    map: DashMap<String, Vec<u8>>,
    /// Bytes of keys plus values held, plus the overhead of each entry.
    total: AtomicUsize,
    /// Entries held (counted apart from the map: reserved before insertion).
    entries: AtomicUsize,
    /// The bounds.
    limits: StateLimits,
}

impl StateStore {
    /// An empty store.
    pub fn new(limits: StateLimits) -> Self {
        StateStore {
            inner: Arc::new(Inner {
                map: DashMap::new(),
                total: AtomicUsize::new(0),
                entries: AtomicUsize::new(0),
                limits,
            }),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.map.get(key).map(|v| v.clone())
    }

    /// Store `value` under `key`.
    pub fn set(&self, key: String, value: Vec<u8>) -> Result<(), StateError> {
        let limits = &self.inner.limits;
        if key.len() > limits.max_key {
            return Err(StateError::TooLarge(limits.max_key));
        }
        if value.len() > limits.max_value {
            return Err(StateError::TooLarge(limits.max_value));
        }
        match self.inner.map.entry(key) {
            Entry::Occupied(mut e) => {
                let (old, new) = (e.get().len(), value.len());
                if new > old {
                    self.reserve(new - old)?;
                } else {
                    self.inner.total.fetch_sub(old - new, Ordering::Relaxed);
                }
                e.insert(value);
            }
            Entry::Vacant(e) => {
                self.reserve_entry()?;
                if let Err(full) = self.reserve(ENTRY_OVERHEAD + e.key().len() + value.len()) {
                    self.inner.entries.fetch_sub(1, Ordering::Relaxed);
                    return Err(full);
                }
                e.insert(value);
            }
        }
        Ok(())
    }

    /// Store `value` under `key` whatever the limits (counted all the
    /// same): a write another server made within its own, which every
    /// copy must take so that the copies agree.
    pub fn put(&self, key: String, value: Vec<u8>) {
        self.delete(&key);
        self.inner
            .total
            .fetch_add(ENTRY_OVERHEAD + key.len() + value.len(), Ordering::Relaxed);
        self.inner.entries.fetch_add(1, Ordering::Relaxed);
        self.inner.map.insert(key, value);
    }

    /// Every entry, for a copy taken whole.
    pub fn clear(&self) {
        self.inner.map.clear();
        self.inner.total.store(0, Ordering::Relaxed);
        self.inner.entries.store(0, Ordering::Relaxed);
    }

    /// Remove `key`; true if it was there.
    pub fn delete(&self, key: &str) -> bool {
        match self.inner.map.remove(key) {
            Some((k, v)) => {
                self.inner
                    .total
                    .fetch_sub(ENTRY_OVERHEAD + k.len() + v.len(), Ordering::Relaxed);
                self.inner.entries.fetch_sub(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Bytes held: keys plus values plus [`ENTRY_OVERHEAD`] per entry.
    pub fn total_bytes(&self) -> usize {
        self.inner.total.load(Ordering::Relaxed)
    }

    /// Entries held.
    pub fn entries(&self) -> usize {
        self.inner.entries.load(Ordering::Relaxed)
    }

    fn reserve_entry(&self) -> Result<(), StateError> {
        let max = self.inner.limits.max_entries;
        self.inner
            .entries
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .map(|_| ())
            .map_err(|_| StateError::Full)
    }

    fn reserve(&self, bytes: usize) -> Result<(), StateError> {
        let max = self.inner.limits.max_total;
        self.inner
            .total
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                t.checked_add(bytes).filter(|n| *n <= max)
            })
            .map(|_| ())
            .map_err(|_| StateError::Full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: usize = ENTRY_OVERHEAD;

    fn store(max_total: usize, max_entries: usize) -> StateStore {
        StateStore::new(StateLimits {
            max_key: 4,
            max_value: 8,
            max_total,
            max_entries,
        })
    }

    #[test]
    fn accounting_and_limits() {
        let s = store(3 * O + 21, 100);
        s.set("a".into(), vec![1; 8]).unwrap();
        assert_eq!(s.total_bytes(), O + 9);
        s.set("a".into(), vec![1; 2]).unwrap();
        assert_eq!(s.total_bytes(), O + 3);
        assert_eq!(
            s.set("toolong".into(), vec![]),
            Err(StateError::TooLarge(4))
        );
        assert_eq!(s.set("b".into(), vec![0; 9]), Err(StateError::TooLarge(8)));
        s.set("b".into(), vec![0; 8]).unwrap();
        s.set("c".into(), vec![0; 8]).unwrap();
        assert_eq!(s.set("d".into(), vec![0; 1]), Err(StateError::Full));
        assert!(s.delete("b"));
        assert!(!s.delete("b"));
        assert_eq!(s.get("a"), Some(vec![1, 1]));
        assert_eq!(s.total_bytes(), 2 * O + 12);
        assert_eq!(s.entries(), 2);
    }

    #[test]
    fn empty_entries_cost_their_overhead() {
        // Room for ten one-byte keys with empty values, overhead included.
        let s = store(10 * (O + 1), 1000);
        for i in 0..10 {
            s.set(i.to_string(), vec![]).unwrap();
        }
        assert_eq!(s.total_bytes(), 10 * (O + 1));
        assert_eq!(s.set("x".into(), vec![]), Err(StateError::Full));
        assert_eq!(s.entries(), 10);
    }

    #[test]
    fn entry_count_is_capped() {
        let s = store(usize::MAX / 2, 3);
        for key in ["a", "b", "c"] {
            s.set(key.into(), vec![]).unwrap();
        }
        assert_eq!(s.set("d".into(), vec![]), Err(StateError::Full));
        // Replacing an existing entry needs no new one.
        s.set("a".into(), vec![1; 8]).unwrap();
        assert_eq!(s.entries(), 3);
        // A refused set leaves the counts as they were.
        assert_eq!(s.total_bytes(), 3 * O + 3 + 8);
        assert!(s.delete("b"));
        s.set("d".into(), vec![]).unwrap();
        assert_eq!(s.entries(), 3);
    }

    #[test]
    fn a_set_refused_for_bytes_does_not_keep_an_entry() {
        let s = store(O + 1, 2);
        s.set("a".into(), vec![]).unwrap();
        assert_eq!(s.set("b".into(), vec![]), Err(StateError::Full));
        assert_eq!(s.entries(), 1);
        assert_eq!(s.total_bytes(), O + 1);
    }
}
