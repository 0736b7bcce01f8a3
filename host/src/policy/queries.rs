//! The query gate: the presence and history imports a policy call asks
//! (`registry.is-online`, `registry.room-members`,
//! `registry.room-members-up-to`, `history.read`) are charged to the
//! calling connection's query bucket, one token for a call that asks any
//! (a `members`, `online` or `history` request of the default rules). A
//! connection that asks faster than its bucket allows gets empty answers
//! inside the call, and the host answers the request `rate-limited`
//! instead of carrying out what the call decided.
//!
//! A sandboxed call runs synchronously on the calling thread, so the gate
//! is a thread-local set around the call ([`gated`]); outside one (on
//! connect, a replay, the tests) every question is answered.

use std::cell::Cell;

#[derive(Debug, Clone, Copy, Default)]
struct Gate {
    /// A [`gated`] call is running on this thread.
    armed: bool,
    /// Its connection may query (its bucket holds a token).
    open: bool,
    /// The call asked a query import.
    asked: bool,
}

thread_local! {
    static GATE: Cell<Gate> = const { Cell::new(Gate { armed: false, open: false, asked: false }) };
}

/// A query import is being answered: whether to answer it (false: answer
/// empty, the call will be refused).
pub fn ask() -> bool {
    GATE.with(|g| {
        let mut gate = g.get();
        if !gate.armed {
            return true;
        }
        gate.asked = true;
        g.set(gate);
        gate.open
    })
}

/// Puts back the gate that was there before, however the call ends.
struct Restore(Gate);

impl Drop for Restore {
    fn drop(&mut self) {
        GATE.with(|g| g.set(self.0));
    }
}

/// Run `call` behind a gate that is `open` or not; returns its result and
/// whether it asked a query import.
pub fn gated<R>(open: bool, call: impl FnOnce() -> R) -> (R, bool) {
    let before = GATE.with(|g| {
        g.replace(Gate {
            armed: true,
            open,
            asked: false,
        })
    });
    let restore = Restore(before);
    let result = call();
    let asked = GATE.with(|g| g.get().asked);
    drop(restore);
    (result, asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_gate_answers_nothing_and_says_it_was_asked() {
        assert!(ask(), "no gate: answered");
        let ((), asked) = gated(true, || assert!(ask()));
        assert!(asked);
        let ((), asked) = gated(false, || assert!(!ask()));
        assert!(asked);
        let ((), asked) = gated(false, || {});
        assert!(!asked);
        assert!(ask(), "the gate is gone after the call");
    }
}
