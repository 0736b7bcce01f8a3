//! Who is online and who is in which room. Membership belongs to the id, not
//! to a socket: a reconnect that replaces a stale socket keeps its rooms.
//!
//! Lock order (DashMap shards): `members_of` → `rooms` → `online`. Fan-out
//! holds a room's shard for reading while it queues to each member; queueing
//! never blocks, so the hold is short.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use tokio_tungstenite::tungstenite::Message;

use crate::outbound::{CloseReason, Outbox, PushError, code};

/// Shared name of an id or a room: cloned into several sets, stored once.
pub type Name = Arc<str>;

/// The cheap-to-clone registry handle.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// id → its current connection.
    online: DashMap<Name, Outbox>,
    /// room → member ids.
    rooms: DashMap<Name, HashSet<Name>>,
    /// id → rooms it is in (the reverse index, for `rooms-of` and cleanup).
    members_of: DashMap<Name, HashSet<Name>>,
    /// Source of connection serials.
    next_serial: AtomicU64,
}

/// Result of a fan-out: how many got the frame, how many could not take it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Frames queued.
    pub queued: usize,
    /// Recipients whose queue overflowed (now closing with 4008).
    pub dropped: usize,
}

impl Delivery {
    fn count(&mut self, r: Result<(), PushError>) {
        match r {
            Ok(()) => self.queued += 1,
            Err(PushError::Full) => self.dropped += 1,
            Err(PushError::Closed) => {}
        }
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh serial for a new connection.
    pub fn next_serial(&self) -> u64 {
        self.inner.next_serial.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Make `outbox` the connection of `id`. An older connection with the same
    /// id is closed with 4001 and returned.
    pub fn register(&self, id: &str, outbox: Outbox) -> Option<Outbox> {
        let old = self.inner.online.insert(Name::from(id), outbox);
        if let Some(old) = &old {
            old.close(CloseReason {
                replaced: true,
                ..CloseReason::with_code(code::REPLACED, "replaced by a newer connection")
            });
        }
        old
    }

    /// Take `id` offline if connection `serial` still holds it. Returns
    /// whether it did (false after a replacement).
    pub fn unregister(&self, id: &str, serial: u64) -> bool {
        self.inner
            .online
            .remove_if(id, |_, o| o.serial() == serial)
            .is_some()
    }

    /// Remove an offline id from all its rooms (after its `on-disconnect`).
    /// Does nothing if the id came back online meanwhile.
    pub fn forget_rooms_if_offline(&self, id: &str) {
        if self.is_online(id) {
            return;
        }
        if let Some((_, rooms)) = self.inner.members_of.remove(id) {
            for room in rooms {
                self.remove_member(&room, id);
            }
        }
    }

    /// Add `id` to `room`; an offline id cannot join. True if it was added.
    pub fn join(&self, id: &str, room: &str) -> bool {
        let Some(id) = self.online_name(id) else {
            return false;
        };
        let room = Name::from(room);
        let added = self
            .inner
            .members_of
            .entry(id.clone())
            .or_default()
            .insert(room.clone());
        if added {
            self.inner.rooms.entry(room).or_default().insert(id);
        }
        added
    }

    /// Remove `id` from `room`. True if it was a member.
    pub fn leave(&self, id: &str, room: &str) -> bool {
        let removed = match self.inner.members_of.get_mut(id) {
            Some(mut rooms) => rooms.remove(room),
            None => false,
        };
        self.inner
            .members_of
            .remove_if(id, |_, rooms| rooms.is_empty());
        if removed {
            self.remove_member(room, id);
        }
        removed
    }

    /// Is `id` online?
    pub fn is_online(&self, id: &str) -> bool {
        self.inner.online.contains_key(id)
    }

    /// Is `id` a member of `room`?
    pub fn in_room(&self, id: &str, room: &str) -> bool {
        self.inner
            .rooms
            .get(room)
            .is_some_and(|members| members.contains(id))
    }

    /// The members of `room`.
    pub fn room_members(&self, room: &str) -> Vec<String> {
        self.inner
            .rooms
            .get(room)
            .map(|m| m.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default()
    }

    /// How many members `room` has.
    pub fn room_size(&self, room: &str) -> usize {
        self.inner.rooms.get(room).map_or(0, |m| m.len())
    }

    /// The rooms `id` is in.
    pub fn rooms_of(&self, id: &str) -> Vec<String> {
        self.inner
            .members_of
            .get(id)
            .map(|r| r.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default()
    }

    /// How many ids are online.
    pub fn online_count(&self) -> usize {
        self.inner.online.len()
    }

    /// Queue `msg` to `id`.
    pub fn send(&self, id: &str, msg: Message) -> Result<(), PushError> {
        let outbox = self.inner.online.get(id).ok_or(PushError::Closed)?;
        outbox.push(msg)
    }

    /// Queue `msg` to every member of `room` but `except`.
    pub fn send_room(&self, room: &str, msg: &Message, except: Option<&str>) -> Delivery {
        let mut delivery = Delivery::default();
        if let Some(members) = self.inner.rooms.get(room) {
            for member in members.iter() {
                if except == Some(&**member) {
                    continue;
                }
                if let Some(outbox) = self.inner.online.get(&**member) {
                    delivery.count(outbox.push(msg.clone()));
                }
            }
        }
        delivery
    }

    /// Queue `msg` to every online connection but `except`.
    pub fn broadcast(&self, msg: &Message, except: Option<&str>) -> Delivery {
        let mut delivery = Delivery::default();
        for entry in self.inner.online.iter() {
            if except == Some(&**entry.key()) {
                continue;
            }
            delivery.count(entry.value().push(msg.clone()));
        }
        delivery
    }

    /// Ask `id`'s connection to close. False if it is not online.
    pub fn close(&self, id: &str, reason: CloseReason) -> bool {
        match self.inner.online.get(id) {
            Some(outbox) => {
                outbox.close(reason);
                true
            }
            None => false,
        }
    }

    /// Close every connection (shutdown).
    pub fn close_all(&self, reason: &CloseReason) {
        for entry in self.inner.online.iter() {
            entry.value().close(reason.clone());
        }
    }

    /// The registry's own copy of an online id's name (so rooms share it).
    fn online_name(&self, id: &str) -> Option<Name> {
        self.inner.online.get(id).map(|e| e.key().clone())
    }

    fn remove_member(&self, room: &str, id: &str) {
        if let Some(mut members) = self.inner.rooms.get_mut(room) {
            members.remove(id);
        }
        self.inner.rooms.remove_if(room, |_, m| m.is_empty());
    }
}
