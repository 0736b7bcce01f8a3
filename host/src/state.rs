//! The key-value store policies keep their lasting data in. It lives in the
//! host, so it survives every instance being replaced (after a trap, on a
//! swap). Bounded in key size, value size and total bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

/// Why a `set` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The key or value exceeds the per-item limit (given in bytes).
    #[error("key or value larger than {0} bytes")]
    TooLarge(usize),
    /// The store's total limit would be exceeded.
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
    /// Total of all keys and values.
    pub max_total: usize,
}

impl From<&crate::config::PolicyLimits> for StateLimits {
    fn from(l: &crate::config::PolicyLimits) -> Self {
        StateLimits {
            max_key: l.state_max_key_bytes,
            max_value: l.state_max_value_bytes,
            max_total: l.state_max_total_bytes,
        }
    }
}

/// The cheap-to-clone store handle.
#[derive(Debug, Clone)]
pub struct StateStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    map: DashMap<String, Vec<u8>>,
    /// Bytes of keys plus values held.
    total: AtomicUsize,
    limits: StateLimits,
}

impl StateStore {
    /// An empty store.
    pub fn new(limits: StateLimits) -> Self {
        StateStore {
            inner: Arc::new(Inner {
                map: DashMap::new(),
                total: AtomicUsize::new(0),
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
                self.reserve(e.key().len() + value.len())?;
                e.insert(value);
            }
        }
        Ok(())
    }

    /// Remove `key`; true if it was there.
    pub fn delete(&self, key: &str) -> bool {
        match self.inner.map.remove(key) {
            Some((k, v)) => {
                self.inner
                    .total
                    .fetch_sub(k.len() + v.len(), Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Bytes held (keys plus values).
    pub fn total_bytes(&self) -> usize {
        self.inner.total.load(Ordering::Relaxed)
    }

    fn reserve(&self, bytes: usize) -> Result<(), StateError> {
        let max = self.inner.limits.max_total;
        self.inner
            .total
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t + bytes <= max).then_some(t + bytes)
            })
            .map(|_| ())
            .map_err(|_| StateError::Full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> StateStore {
        StateStore::new(StateLimits {
            max_key: 4,
            max_value: 8,
            max_total: 21,
        })
    }

    #[test]
    fn accounting_and_limits() {
        let s = store();
        s.set("a".into(), vec![1; 8]).unwrap();
        assert_eq!(s.total_bytes(), 9);
        s.set("a".into(), vec![1; 2]).unwrap();
        assert_eq!(s.total_bytes(), 3);
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
        assert_eq!(s.total_bytes(), 12);
    }
}
