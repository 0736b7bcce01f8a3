//! Held sessions: ids whose connection ended abnormally, kept for a while
//! for the client to come back with `?resume=<session>`. Each is held with
//! the token that may claim it and whatever the host keeps for it meanwhile
//! (`T`: the queue that collects what it misses).
//!
//! Claiming and releasing are one atomic step each on the map: whoever
//! takes the entry first (a resume, or the end of the window) has it, and
//! the other finds nothing.

use std::sync::Arc;

use dashmap::DashMap;

/// One held id.
#[derive(Debug)]
pub struct Held<T> {
    /// The token a resume must present.
    pub session: String,
    /// Which hold this is (a newer hold of the same id has another).
    pub serial: u64,
    /// What the host keeps for the id while it is away.
    pub kept: T,
}

/// What presenting a session for an id found.
#[derive(Debug)]
pub enum Claim<T> {
    /// The id was held with this session: it is the caller's now.
    Resumed(Held<T>),
    /// The id was held with another session (or none was presented): the
    /// hold is the caller's to end.
    Refused(Held<T>),
    /// The id is not held.
    NotHeld,
}

/// Every held id.
#[derive(Debug)]
pub struct Sessions<T> {
    held: DashMap<Arc<str>, Held<T>>,
}

impl<T> Default for Sessions<T> {
    fn default() -> Self {
        Sessions {
            held: DashMap::new(),
        }
    }
}

impl<T> Sessions<T> {
    /// Hold `id` (replacing an older hold of it, returned).
    pub fn hold(&self, id: &str, held: Held<T>) -> Option<Held<T>> {
        self.held.insert(Arc::from(id), held)
    }

    /// Whether `id` is held.
    pub fn is_held(&self, id: &str) -> bool {
        self.held.contains_key(id)
    }

    /// How many ids are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Take `id`'s hold: resumed when `session` is its token, refused
    /// otherwise (a connection that takes the id without the token ends
    /// the hold).
    pub fn claim(&self, id: &str, session: Option<&str>) -> Claim<T> {
        match self.held.remove(id) {
            Some((_, held)) if session.is_some_and(|s| same(s, &held.session)) => {
                Claim::Resumed(held)
            }
            Some((_, held)) => Claim::Refused(held),
            None => Claim::NotHeld,
        }
    }

    /// Take `id`'s hold if it is still hold `serial` (its window ended).
    pub fn release(&self, id: &str, serial: u64) -> Option<Held<T>> {
        self.held
            .remove_if(id, |_, held| held.serial == serial)
            .map(|(_, held)| held)
    }
}

/// `a == b` in time that does not depend on where they differ (a session
/// token is a credential).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(session: &str, serial: u64) -> Held<u32> {
        Held {
            session: session.into(),
            serial,
            kept: 7,
        }
    }

    #[test]
    fn the_right_session_resumes_once() {
        let s = Sessions::default();
        s.hold("bob", held("tok", 1));
        assert!(s.is_held("bob"));
        assert!(matches!(s.claim("bob", Some("tok")), Claim::Resumed(h) if h.kept == 7));
        assert!(matches!(s.claim("bob", Some("tok")), Claim::NotHeld));
        assert!(s.release("bob", 1).is_none());
    }

    #[test]
    fn a_wrong_or_missing_session_ends_the_hold() {
        let s = Sessions::default();
        s.hold("bob", held("tok", 1));
        assert!(matches!(s.claim("bob", Some("tak")), Claim::Refused(_)));
        assert!(!s.is_held("bob"));
        s.hold("bob", held("tok", 2));
        assert!(matches!(s.claim("bob", None), Claim::Refused(_)));
    }

    #[test]
    fn the_window_ends_only_its_own_hold() {
        let s = Sessions::default();
        s.hold("bob", held("tok", 1));
        s.hold("bob", held("tok2", 2));
        assert!(s.release("bob", 1).is_none());
        assert!(s.release("bob", 2).is_some());
        assert!(s.is_empty());
    }

    #[test]
    fn comparison() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
