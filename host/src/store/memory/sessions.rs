//! Held sessions in memory (the embedded default): one map and the order
//! the holds were taken in, under one lock, each hold, claim and release
//! one atomic step on them. Holds are taken and ended as connections end
//! and come back, never on a message's path.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::store::sessions::{Claim, Held, Holding, Sessions};

/// Every held id.
#[derive(Debug)]
pub struct MemorySessions<T> {
    inner: Mutex<Inner<T>>,
}

#[derive(Debug)]
struct Inner<T> {
    /// id → (when it was held, in `order`'s numbering; the hold).
    held: HashMap<Arc<str>, (u64, Held<T>)>,
    /// When each hold was taken → its id: the first is the oldest.
    order: BTreeMap<u64, Arc<str>>,
    /// The next hold's place in `order`.
    next: u64,
}

impl<T> Default for MemorySessions<T> {
    fn default() -> Self {
        MemorySessions {
            inner: Mutex::new(Inner {
                held: HashMap::new(),
                order: BTreeMap::new(),
                next: 0,
            }),
        }
    }
}

impl<T> MemorySessions<T> {
    fn inner(&self) -> MutexGuard<'_, Inner<T>> {
        // Nothing panics under the lock; the maps stay consistent if it did.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> Inner<T> {
    /// Take `id`'s hold out, if `keep` is false of it.
    fn take(&mut self, id: &str, keep: impl FnOnce(&Held<T>) -> bool) -> Option<Held<T>> {
        let (at, held) = self.held.get(id)?;
        if keep(held) {
            return None;
        }
        let at = *at;
        self.order.remove(&at);
        self.held.remove(id).map(|(_, held)| held)
    }
}

#[async_trait]
impl<T: Send + Sync + std::fmt::Debug + 'static> Sessions<T> for MemorySessions<T> {
    /// Hold `id`, replacing an older hold of it, and keep at most `max`.
    async fn hold(&self, id: &str, held: Held<T>, max: usize) -> Holding<T> {
        let mut inner = self.inner();
        let replaced = inner.take(id, |_| false);
        let at = inner.next;
        inner.next += 1;
        let id: Arc<str> = Arc::from(id);
        inner.order.insert(at, id.clone());
        inner.held.insert(id, (at, held));
        let mut evicted = None;
        if inner.held.len() > max
            && let Some((_, oldest)) = inner.order.pop_first()
            && let Some((_, held)) = inner.held.remove(&oldest)
        {
            evicted = Some((oldest.to_string(), held));
        }
        Holding { replaced, evicted }
    }

    /// Whether `id` is held.
    fn is_held(&self, id: &str) -> bool {
        self.inner().held.contains_key(id)
    }

    /// How many ids are held.
    fn len(&self) -> usize {
        self.inner().held.len()
    }

    /// Take `id`'s hold: resumed when `session` is its token, refused
    /// otherwise (a connection that takes the id without the token ends
    /// the hold).
    async fn claim(&self, id: &str, session: Option<&str>) -> Claim<T> {
        match self.inner().take(id, |_| false) {
            Some(held) if session.is_some_and(|s| same(s, &held.session)) => Claim::Resumed(held),
            Some(held) => Claim::Refused(held),
            None => Claim::NotHeld,
        }
    }

    /// Take `id`'s hold if it is still hold `serial` (its window ended).
    async fn release(&self, id: &str, serial: u64) -> Option<Held<T>> {
        self.inner().take(id, |held| held.serial != serial)
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

    const MAX: usize = 100;

    #[tokio::test]
    async fn the_right_session_resumes_once() {
        let s = MemorySessions::default();
        s.hold("bob", held("tok", 1), MAX).await;
        assert!(s.is_held("bob"));
        assert!(matches!(s.claim("bob", Some("tok")).await, Claim::Resumed(h) if h.kept == 7));
        assert!(matches!(s.claim("bob", Some("tok")).await, Claim::NotHeld));
        assert!(s.release("bob", 1).await.is_none());
    }

    #[tokio::test]
    async fn a_wrong_or_missing_session_ends_the_hold() {
        let s = MemorySessions::default();
        s.hold("bob", held("tok", 1), MAX).await;
        assert!(matches!(
            s.claim("bob", Some("tak")).await,
            Claim::Refused(_)
        ));
        assert!(!s.is_held("bob"));
        s.hold("bob", held("tok", 2), MAX).await;
        assert!(matches!(s.claim("bob", None).await, Claim::Refused(_)));
    }

    #[tokio::test]
    async fn the_window_ends_only_its_own_hold() {
        let s = MemorySessions::default();
        let first = s.hold("bob", held("tok", 1), MAX).await;
        assert!(first.replaced.is_none() && first.evicted.is_none());
        let second = s.hold("bob", held("tok2", 2), MAX).await;
        assert!(matches!(second.replaced, Some(h) if h.serial == 1));
        assert!(s.release("bob", 1).await.is_none());
        assert!(s.release("bob", 2).await.is_some());
        assert!(s.is_empty());
    }

    #[tokio::test]
    async fn past_the_cap_the_oldest_hold_is_taken_out() {
        let s = MemorySessions::default();
        assert!(s.hold("a", held("ta", 1), 2).await.evicted.is_none());
        assert!(s.hold("b", held("tb", 2), 2).await.evicted.is_none());
        // `a` held again is the newest now: `b` is the oldest.
        assert!(s.hold("a", held("ta2", 3), 2).await.evicted.is_none());
        let c = s.hold("c", held("tc", 4), 2).await;
        assert!(matches!(&c.evicted, Some((id, h)) if id == "b" && h.serial == 2));
        assert_eq!(s.len(), 2);
        assert!(!s.is_held("b") && s.is_held("a") && s.is_held("c"));
        // Taken out, it is not released or claimed again.
        assert!(s.release("b", 2).await.is_none());
        // Released and claimed holds leave the order too.
        assert!(s.release("a", 3).await.is_some());
        assert!(matches!(s.claim("c", Some("tc")).await, Claim::Resumed(_)));
        assert!(s.is_empty());
        assert!(s.inner().order.is_empty());
        // A cap of 0 holds nothing: the new hold is taken out at once.
        let none = s.hold("d", held("td", 5), 0).await;
        assert!(matches!(&none.evicted, Some((id, _)) if id == "d"));
        assert!(s.is_empty());
    }

    #[test]
    fn comparison() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
