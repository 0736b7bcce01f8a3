//! Cluster-wide presence: this node's connections (the registry) and a
//! copy of every other node's, kept by the presence channel. Every change
//! of who is online or in which room is published by the script that
//! makes it (`claim.lua`, `member.lua`, `release.lua`), in the same step,
//! so the copy sees them in the order Redis made them; a node (re)joining
//! the channel reads the whole picture from Redis and applies what came
//! meanwhile on top. The policy's imports are answered from the copy at
//! once: fresh to within the channel's delay.

use super::conn::Timed;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockWriteGuard};

use async_trait::async_trait;

use super::Unavailable;
use super::conn::Writer;
use super::keys::Keys;
use crate::store::bus::Local;
use crate::store::presence::{Members, Presence};

type Name = Arc<str>;

/// A change of presence, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The id's connection is on the node now.
    On { node: String, id: String },
    /// The id went offline for good on the node.
    Off { node: String, id: String },
    /// The id joined the room.
    Join { id: String, room: String },
    /// The id left the room.
    Leave { id: String, room: String },
}

impl Change {
    /// Read a presence payload (`on|off\nnode\nid`, `join|leave\nnode\nid\nroom`).
    pub fn read(payload: &str) -> Option<Change> {
        let mut p = payload.splitn(4, '\n');
        let (kind, node, id) = (p.next()?, p.next()?.to_owned(), p.next()?.to_owned());
        Some(match kind {
            "on" => Change::On { node, id },
            "off" => Change::Off { node, id },
            "join" => Change::Join {
                id,
                room: p.next()?.to_owned(),
            },
            "leave" => Change::Leave {
                id,
                room: p.next()?.to_owned(),
            },
            _ => return None,
        })
    }

    /// The node that made it (`None`: membership changes, whoever made them).
    fn node(&self) -> Option<&str> {
        match self {
            Change::On { node, .. } | Change::Off { node, .. } => Some(node),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
struct Others {
    /// id → the node it is on.
    ids: HashMap<Name, Name>,
    /// room → its members on other nodes.
    rooms: HashMap<Name, HashSet<Name>>,
    /// id → its rooms.
    of: HashMap<Name, HashSet<Name>>,
    /// While a snapshot is read: the changes that came meanwhile.
    buffered: Option<Vec<Change>>,
}

impl Others {
    fn forget(&mut self, id: &str) {
        self.ids.remove(id);
        for room in self.of.remove(id).unwrap_or_default() {
            if let Some(m) = self.rooms.get_mut(&room) {
                m.remove(id);
                if m.is_empty() {
                    self.rooms.remove(&room);
                }
            }
        }
    }

    fn apply(&mut self, me: &str, change: Change) {
        match change {
            Change::On { node, id } => {
                if node == me {
                    // Here now: the registry answers for it.
                    self.forget(&id);
                } else {
                    self.ids.insert(Name::from(id), Name::from(node));
                }
            }
            Change::Off { node, id } => {
                if self.ids.get(id.as_str()).is_some_and(|n| **n == *node) {
                    self.forget(&id);
                }
            }
            Change::Join { id, room } => {
                if !self.ids.contains_key(id.as_str()) {
                    return;
                }
                let (id, room) = (Name::from(id), Name::from(room));
                self.of.entry(id.clone()).or_default().insert(room.clone());
                self.rooms.entry(room).or_default().insert(id);
            }
            Change::Leave { id, room } => {
                if let Some(r) = self.of.get_mut(id.as_str()) {
                    r.remove(room.as_str());
                }
                if let Some(m) = self.rooms.get_mut(room.as_str()) {
                    m.remove(id.as_str());
                    if m.is_empty() {
                        self.rooms.remove(room.as_str());
                    }
                }
            }
        }
    }
}

/// The other nodes' presence, as this node keeps it.
#[derive(Debug)]
pub struct Copy {
    node: String,
    others: RwLock<Others>,
}

impl Copy {
    /// An empty copy, for node `node`.
    pub fn new(node: &str) -> Copy {
        Copy {
            node: node.to_owned(),
            others: RwLock::default(),
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, Others> {
        // Plain maps: a panic elsewhere cannot leave them invalid.
        self.others.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Others> {
        self.others.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A change came on the channel.
    pub fn changed(&self, change: Change) {
        let mut o = self.write();
        if change.node() == Some(&*self.node) && matches!(change, Change::Off { .. }) {
            return;
        }
        match &mut o.buffered {
            Some(b) => b.push(change),
            None => o.apply(&self.node, change),
        }
    }

    /// Read the whole picture from Redis (after subscribing to the
    /// channel): every other live node's ids, and each id's rooms.
    pub async fn resync(&self, writer: &Writer, keys: &Keys) -> Result<(), Unavailable> {
        self.write().buffered = Some(Vec::new());
        let read = self.snapshot(writer, keys).await;
        let mut o = self.write();
        let buffered = o.buffered.take().unwrap_or_default();
        let snapshot = match read {
            Ok(s) => s,
            Err(e) => {
                for c in buffered {
                    o.apply(&self.node, c);
                }
                return Err(e);
            }
        };
        let mut fresh = Others::default();
        for (node, id, rooms) in snapshot {
            fresh.apply(
                &self.node,
                Change::On {
                    node,
                    id: id.clone(),
                },
            );
            for room in rooms {
                fresh.apply(
                    &self.node,
                    Change::Join {
                        id: id.clone(),
                        room,
                    },
                );
            }
        }
        for c in buffered {
            fresh.apply(&self.node, c);
        }
        *o = fresh;
        Ok(())
    }

    async fn snapshot(
        &self,
        writer: &Writer,
        keys: &Keys,
    ) -> Result<Vec<(String, String, Vec<String>)>, Unavailable> {
        let mut c = writer.conn().await?;
        let nodes: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys.nodes())
            .arg(0)
            .arg(-1)
            .query_async(&mut c)
            .timed(writer)
            .await?;
        let mut out = Vec::new();
        for node in nodes.into_iter().filter(|n| *n != self.node) {
            let ids: Vec<String> = redis::cmd("SMEMBERS")
                .arg(keys.node_ids(&node))
                .query_async(&mut c)
                .timed(writer)
                .await?;
            for chunk in ids.chunks(1_000) {
                let mut pipe = redis::pipe();
                for id in chunk {
                    pipe.cmd("SMEMBERS").arg(keys.id(id).rooms);
                }
                let rooms: Vec<Vec<String>> = pipe.query_async(&mut c).timed(writer).await?;
                for (id, rooms) in chunk.iter().zip(rooms) {
                    out.push((node.clone(), id.clone(), rooms));
                }
            }
        }
        writer.answered();
        Ok(out)
    }
}

/// The presence a policy sees in a cluster: this node's connections and
/// the copy of the others'.
#[derive(Debug)]
pub struct ClusterPresence {
    pub local: Arc<dyn Local>,
    pub copy: Arc<Copy>,
}

#[async_trait]
impl Presence for ClusterPresence {
    async fn members(&self, room: &str, cap: usize) -> Members {
        self.members_now(room, cap)
    }

    async fn online(&self, ids: &[String]) -> Vec<String> {
        ids.iter()
            .filter(|id| self.is_online_now(id))
            .cloned()
            .collect()
    }

    fn members_now(&self, room: &str, cap: usize) -> Members {
        let here = self.local.members_now(room, usize::MAX);
        let o = self.copy.read();
        let mut ids: Vec<String> = here.ids;
        let mut count = here.count;
        if let Some(others) = o.rooms.get(room) {
            let seen: HashSet<String> = ids.iter().cloned().collect();
            for id in others {
                if !seen.contains(&**id) {
                    ids.push(id.to_string());
                    count += 1;
                }
            }
        }
        ids.sort_unstable();
        ids.truncate(cap);
        Members { ids, count }
    }

    fn is_online_now(&self, id: &str) -> bool {
        self.local.is_online_now(id) || self.copy.read().ids.contains_key(id)
    }

    fn in_room_now(&self, id: &str, room: &str) -> bool {
        self.local.in_room_now(id, room)
            || self
                .copy
                .read()
                .of
                .get(id)
                .is_some_and(|r| r.contains(room))
    }

    fn rooms_of_now(&self, id: &str) -> Vec<String> {
        if self.local.is_online_now(id) {
            return self.local.rooms_of_now(id);
        }
        let o = self.copy.read();
        let mut rooms: Vec<String> =
            o.of.get(id)
                .map(|r| r.iter().map(|r| r.to_string()).collect())
                .unwrap_or_default();
        rooms.sort_unstable();
        rooms
    }

    fn online_count_now(&self) -> usize {
        let o = self.copy.read();
        let others = o
            .ids
            .keys()
            .filter(|id| !self.local.is_online_now(id))
            .count();
        self.local.online_count_now() + others
    }

    fn other_nodes(&self) -> Vec<(String, usize)> {
        let o = self.copy.read();
        let mut by: std::collections::BTreeMap<String, usize> = Default::default();
        for node in o.ids.values() {
            *by.entry(node.to_string()).or_default() += 1;
        }
        by.into_iter().collect()
    }

    fn node_of(&self, id: &str) -> Option<String> {
        if self.local.is_online_now(id) {
            return None;
        }
        self.copy.read().ids.get(id).map(|n| n.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_back_and_apply_in_order() {
        let copy = Copy::new("me");
        for p in [
            "on\nb\nalice",
            "join\nb\nalice\nlobby",
            "on\nc\nbob",
            "join\nc\nbob\nlobby",
            "leave\nc\nbob\nlobby",
        ] {
            copy.changed(Change::read(p).unwrap_or_else(|| panic!("{p}")));
        }
        let o = copy.read();
        assert_eq!(o.rooms.get("lobby").map(|m| m.len()), Some(1));
        assert!(o.ids.contains_key("bob"));
        drop(o);
        // Alice moves here: the registry answers for her now.
        copy.changed(Change::On {
            node: "me".into(),
            id: "alice".into(),
        });
        // An old node's word of her going offline changes nothing.
        copy.changed(Change::Off {
            node: "b".into(),
            id: "alice".into(),
        });
        let o = copy.read();
        assert!(!o.ids.contains_key("alice") && !o.rooms.contains_key("lobby"));
        assert_eq!(
            Change::read("join\nb\nx\nroom\nwith newline")
                .map(|c| matches!(c, Change::Join { .. })),
            Some(true)
        );
        assert_eq!(Change::read("later\nb\nx"), None);
    }
}
