//! Held sessions in memory (the embedded default): one map, each claim
//! and release one atomic step on it.

use std::sync::Arc;

use async_trait::async_trait;
use dashmap::DashMap;

use crate::store::sessions::{Claim, Held, Sessions};

/// Every held id.
#[derive(Debug)]
pub struct MemorySessions<T> {
    held: DashMap<Arc<str>, Held<T>>,
}

impl<T> Default for MemorySessions<T> {
    fn default() -> Self {
        MemorySessions {
            held: DashMap::new(),
        }
    }
}

#[async_trait]
impl<T: Send + Sync + std::fmt::Debug + 'static> Sessions<T> for MemorySessions<T> {
    /// Hold `id` (replacing an older hold of it, returned).
    async fn hold(&self, id: &str, held: Held<T>) -> Option<Held<T>> {
        self.held.insert(Arc::from(id), held)
    }

    /// Whether `id` is held.
    fn is_held(&self, id: &str) -> bool {
        self.held.contains_key(id)
    }

    /// How many ids are held.
    fn len(&self) -> usize {
        self.held.len()
    }

    /// Take `id`'s hold: resumed when `session` is its token, refused
    /// otherwise (a connection that takes the id without the token ends
    /// the hold).
    async fn claim(&self, id: &str, session: Option<&str>) -> Claim<T> {
        match self.held.remove(id) {
            Some((_, held)) if session.is_some_and(|s| same(s, &held.session)) => {
                Claim::Resumed(held)
            }
            Some((_, held)) => Claim::Refused(held),
            None => Claim::NotHeld,
        }
    }

    /// Take `id`'s hold if it is still hold `serial` (its window ended).
    async fn release(&self, id: &str, serial: u64) -> Option<Held<T>> {
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

    #[tokio::test]
    async fn the_right_session_resumes_once() {
        let s = MemorySessions::default();
        s.hold("bob", held("tok", 1)).await;
        assert!(s.is_held("bob"));
        assert!(matches!(s.claim("bob", Some("tok")).await, Claim::Resumed(h) if h.kept == 7));
        assert!(matches!(s.claim("bob", Some("tok")).await, Claim::NotHeld));
        assert!(s.release("bob", 1).await.is_none());
    }

    #[tokio::test]
    async fn a_wrong_or_missing_session_ends_the_hold() {
        let s = MemorySessions::default();
        s.hold("bob", held("tok", 1)).await;
        assert!(matches!(
            s.claim("bob", Some("tak")).await,
            Claim::Refused(_)
        ));
        assert!(!s.is_held("bob"));
        s.hold("bob", held("tok", 2)).await;
        assert!(matches!(s.claim("bob", None).await, Claim::Refused(_)));
    }

    #[tokio::test]
    async fn the_window_ends_only_its_own_hold() {
        let s = MemorySessions::default();
        s.hold("bob", held("tok", 1)).await;
        s.hold("bob", held("tok2", 2)).await;
        assert!(s.release("bob", 1).await.is_none());
        assert!(s.release("bob", 2).await.is_some());
        assert!(s.is_empty());
    }

    #[test]
    fn comparison() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
