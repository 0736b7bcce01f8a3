//! The policy's key-value state, cluster-wide: every node keeps a whole
//! copy, which the policy's imports read and write at once (they run in a
//! synchronous sandboxed call). A write is applied here, then written to
//! Redis by one ordered task (`lua/state.lua`: the value, the key's next
//! version and the change on the state channel in one step); every other
//! node applies the change when it comes. Each key's version orders the
//! writes: a change older than the one a copy has is not applied, and a
//! node whose own write turns out the newest applies it again, so every
//! copy ends with the value Redis has (last writer in Redis's order wins).

use super::conn::Timed;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use redis::Value;
use tokio::sync::mpsc;

use super::Unavailable;
use super::conn::Writer;
use super::keys::Keys;
use super::scripts::{self, late_or, value};
use crate::store::state::{State, StateError, StateLimits, StateStore};

/// Writes waiting for Redis; past this a write stays on this node (said
/// in the log) until the copy is read again.
const WAITING: usize = 16_384;

/// A change of the state, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The node that made it.
    pub node: String,
    /// The key's version after it.
    pub version: u64,
    pub key: String,
    /// `None`: deleted.
    pub value: Option<Vec<u8>>,
}

impl Change {
    /// Read a state payload (`lua/state.lua`).
    pub fn read(payload: &[u8]) -> Option<Change> {
        let mut p = payload.splitn(5, |b| *b == b'\n');
        let kind = p.next()?;
        let node = String::from_utf8(p.next()?.to_vec()).ok()?;
        let version = std::str::from_utf8(p.next()?).ok()?.parse().ok()?;
        let len: usize = std::str::from_utf8(p.next()?).ok()?.parse().ok()?;
        let rest = p.next().unwrap_or_default();
        let key = String::from_utf8(rest.get(..len)?.to_vec()).ok()?;
        let value = match kind {
            b"s" => Some(rest[len..].to_vec()),
            b"d" => None,
            _ => return None,
        };
        Some(Change {
            node,
            version,
            key,
            value,
        })
    }
}

/// One write for Redis.
#[derive(Debug)]
struct Write {
    key: String,
    value: Option<Vec<u8>>,
}

/// The cluster's state, as this node keeps it.
#[derive(Debug)]
pub struct ClusterState {
    copy: StateStore,
    /// The newest version of each key this copy has.
    versions: Mutex<HashMap<String, u64>>,
    writes: mpsc::Sender<Write>,
    node: String,
}

impl ClusterState {
    /// A copy within `limits` (checked on this node's own writes), whose
    /// writes go to Redis through `writer`.
    pub fn start(
        writer: Arc<Writer>,
        keys: Keys,
        node: &str,
        limits: StateLimits,
    ) -> Arc<ClusterState> {
        let (writes, queue) = mpsc::channel(WAITING);
        let state = Arc::new(ClusterState {
            copy: StateStore::new(limits),
            versions: Mutex::default(),
            writes,
            node: node.to_owned(),
        });
        tokio::spawn(write_all(Arc::downgrade(&state), writer, keys, queue));
        state
    }

    fn versions(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        // A map of numbers: a panic elsewhere cannot leave it invalid.
        self.versions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A change came on the state channel.
    pub fn changed(&self, change: Change) {
        if change.node == self.node {
            return;
        }
        self.apply(change.key, change.value, change.version);
    }

    /// Apply a write of `version` if it is newer than the copy's.
    fn apply(&self, key: String, value: Option<Vec<u8>>, version: u64) {
        let mut versions = self.versions();
        let known = versions.get(&key).copied().unwrap_or(0);
        if version <= known {
            return;
        }
        match value {
            Some(v) => self.copy.put(key.clone(), v),
            None => {
                self.copy.delete(&key);
            }
        }
        versions.insert(key, version);
    }

    /// Take the whole state from Redis (after subscribing to the channel):
    /// what this node wrote while Redis was away is undone.
    pub async fn resync(&self, writer: &Writer, keys: &Keys) -> Result<(), Unavailable> {
        let mut c = writer.conn().await?;
        let (entries, versions): (HashMap<String, Vec<u8>>, HashMap<String, u64>) = redis::pipe()
            .atomic()
            .cmd("HGETALL")
            .arg(keys.global("state"))
            .cmd("HGETALL")
            .arg(keys.global("state:v"))
            .query_async(&mut c)
            .timed(writer)
            .await?;
        writer.answered();
        let mut known = self.versions();
        self.copy.clear();
        for (k, v) in entries {
            self.copy.put(k, v);
        }
        *known = versions;
        Ok(())
    }

    fn queue(&self, key: String, value: Option<Vec<u8>>) {
        if self.writes.try_send(Write { key, value }).is_err() {
            tracing::warn!("a state write stays on this node: too many waiting for Redis");
        }
    }
}

impl State for ClusterState {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.copy.get(key)
    }

    fn set(&self, key: String, value: Vec<u8>) -> Result<(), StateError> {
        self.copy.set(key.clone(), value.clone())?;
        self.queue(key, Some(value));
        Ok(())
    }

    fn delete(&self, key: &str) -> bool {
        let was = self.copy.delete(key);
        self.queue(key.to_owned(), None);
        was
    }
}

/// Writes to Redis, one at a time, in the order they were made; each
/// answer's version decides whether this node's write is the newest.
async fn write_all(
    state: std::sync::Weak<ClusterState>,
    writer: Arc<Writer>,
    keys: Keys,
    mut queue: mpsc::Receiver<Write>,
) {
    while let Some(w) = queue.recv().await {
        let Some(state) = state.upgrade() else {
            return;
        };
        match write(&writer, &keys, &state.node, &w).await {
            Ok(version) => state.apply(w.key, w.value, version),
            Err(e) => {
                tracing::warn!(key = w.key, error = %e, "a state write stays on this node: Redis did not answer")
            }
        }
    }
}

async fn write(writer: &Writer, keys: &Keys, node: &str, w: &Write) -> Result<u64, Unavailable> {
    let mut c = writer.conn().await?;
    let reply: Value = scripts::STATE
        .key(keys.global("state"))
        .key(keys.global("state:v"))
        .arg(writer.deadline_ms())
        .arg(node)
        .arg(if w.value.is_some() { "s" } else { "d" })
        .arg(&w.key)
        .arg(w.value.as_deref().unwrap_or_default())
        .arg(keys.global("state"))
        .invoke_async(&mut c)
        .timed(writer)
        .await?;
    writer.answered();
    match reply {
        Value::Array(a) => Err(late_or(&a, "state")),
        v => value(&v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_back_with_newlines_anywhere() {
        let c = Change::read(b"s\nn1\n7\n3\na\nbv\nx").unwrap_or_else(|| panic!("not read"));
        assert_eq!(
            (c.key.as_str(), c.value.as_deref()),
            ("a\nb", Some(&b"v\nx"[..]))
        );
        assert_eq!(c.version, 7);
        let d = Change::read(b"d\nn1\n8\n1\nk").unwrap_or_else(|| panic!("not read"));
        assert_eq!((d.key.as_str(), d.value), ("k", None));
        assert_eq!(Change::read(b"s\nn1\n7\n9\nab"), None);
    }
}
