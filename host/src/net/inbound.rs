//! The bytes of partly received messages, counted for all connections
//! together: each connection may hold up to `--max-message-bytes` of a
//! message it has not finished sending (tungstenite buffers it), so
//! without a server-wide bound many slow senders together hold
//! `connections × max_message_bytes`. Past the budget, a connection that
//! reads more while holding over [`SMALL`] bytes of an unfinished message
//! is closed with 1013 (try again later); one sending small messages never
//! is.
//!
//! A connection counts what it reads from its socket until a whole message
//! has come of it ([`Pending::settled`]); the count is then given back.
//! Bytes read together with a message's end are given back with it, so the
//! count can be low by one socket read per connection
//! (`read_buffer_bytes`), never high.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a connection may hold of an unfinished message and never be
/// closed for the budget: small messages are the common case, and a
/// single read (`read_buffer_bytes`) may carry a message's end.
pub const SMALL: usize = 4096;

/// Bytes of partly received messages, server-wide, and their limit.
#[derive(Debug)]
pub struct InboundBudget {
    /// Counted now.
    total: AtomicUsize,
    /// Past this, a connection that reads more while holding over
    /// [`SMALL`] of an unfinished message is closed (`usize::MAX`: no
    /// limit, nothing counted).
    limit: usize,
}

impl InboundBudget {
    /// A budget of `limit` bytes (0: no limit).
    pub fn new(limit: usize) -> Arc<InboundBudget> {
        Arc::new(InboundBudget {
            total: AtomicUsize::new(0),
            limit: if limit == 0 { usize::MAX } else { limit },
        })
    }

    /// Bytes counted now.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

/// One connection's share of the budget.
#[derive(Debug)]
pub struct Pending {
    budget: Arc<InboundBudget>,
    /// Bytes read since the last whole message.
    held: usize,
}

impl Pending {
    /// Nothing pending yet, counted in `budget`.
    pub fn new(budget: Arc<InboundBudget>) -> Pending {
        Pending { budget, held: 0 }
    }

    /// `n` bytes were read; false when the server is past its budget and
    /// this connection holds more than [`SMALL`] of an unfinished message:
    /// it is to be closed (and its bytes are given back at once). A
    /// connection sending small messages is never the one closed.
    pub fn read(&mut self, n: usize) -> bool {
        if self.budget.limit == usize::MAX || n == 0 {
            return true;
        }
        self.held += n;
        let total = self.budget.total.fetch_add(n, Ordering::Relaxed) + n;
        if total <= self.budget.limit || self.held <= SMALL {
            return true;
        }
        self.settled();
        false
    }

    /// A whole message came of what was read: give its bytes back.
    pub fn settled(&mut self) {
        if self.held > 0 {
            self.budget.total.fetch_sub(self.held, Ordering::Relaxed);
            self.held = 0;
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.settled();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_until_settled_or_dropped() {
        let budget = InboundBudget::new(3 * SMALL);
        let mut a = Pending::new(budget.clone());
        let mut b = Pending::new(budget.clone());
        let mut small = Pending::new(budget.clone());
        assert!(a.read(2 * SMALL));
        assert!(b.read(SMALL));
        assert!(small.read(10), "past the budget, but small");
        assert!(!b.read(1), "past the budget, and holding more than SMALL");
        assert_eq!(budget.total(), 2 * SMALL + 10, "b's bytes are given back");
        a.settled();
        assert_eq!(budget.total(), 10);
        drop(small);
        assert_eq!(budget.total(), 0);
        let mut free = Pending::new(InboundBudget::new(0));
        assert!(free.read(usize::MAX / 2));
    }
}
