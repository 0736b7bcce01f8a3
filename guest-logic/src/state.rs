//! The host-held key-value store (WIT `state`) as a trait, so rules that
//! keep lasting data (mutes, rate-limit buckets) are plain Rust, tested
//! natively against [`MemoryState`]; in the component, `component::Host`
//! implements it with the host's imports.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

/// The host's key-value store. It outlives every instance of the policy, so
/// it is where anything that must last goes.
pub trait State {
    /// The value stored under `key`, if any.
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    /// Store `value` under `key`, replacing any previous value.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StateError>;
    /// Remove `key`; true if it was there.
    fn delete(&self, key: &str) -> bool;
}

/// Why a `set` was refused (WIT `state-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// The key or the value is larger than the host allows (that many bytes).
    TooLarge(u32),
    /// The store's total size limit would be exceeded.
    Full,
}

/// An in-memory [`State`] for native tests of a policy's rules.
#[derive(Debug, Default)]
pub struct MemoryState {
    /// What is stored.
    map: RefCell<BTreeMap<String, Vec<u8>>>,
    /// When set, every `set` fails with [`StateError::Full`] (to test what a
    /// policy does when the host's store is full).
    full: Cell<bool>,
}

impl MemoryState {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Make every later `set` fail with [`StateError::Full`] (or succeed
    /// again with `false`).
    pub fn set_full(&self, full: bool) {
        self.full.set(full);
    }

    /// The number of keys stored.
    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map.borrow().is_empty()
    }
}

impl State for MemoryState {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.map.borrow().get(key).cloned()
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StateError> {
        if self.full.get() {
            return Err(StateError::Full);
        }
        self.map.borrow_mut().insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &str) -> bool {
        self.map.borrow_mut().remove(key).is_some()
    }
}
