//! Who is online and who is in which room. Membership belongs to the id, not
//! to a socket: a reconnect that replaces a stale socket keeps its rooms.
//!
//! Changes to one id's presence and memberships (register, unregister with
//! its rooms, join, leave) are serialised by a lock striped by id, so a
//! connection going offline and a new one with the same id joining a room
//! cannot interleave: either the new connection finds the id still in its
//! rooms, or the rooms have already heard `left` before its `joined`.
//!
//! Lock order: an id stripe → `members_of` → `rooms` → `online` (DashMap
//! shards). Fan-out holds a room's shard for reading while it queues to each
//! member; queueing never blocks, so the hold is short. Nothing holding a
//! shard ever takes a stripe.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio_tungstenite::tungstenite::Message;

use crate::chat::dispatch::Sequence;
use crate::chat::outbound::{CloseReason, Outbox, PushError, code};
use crate::store::history::{History, Recovery};

pub use crate::store::bus::Sent;
use crate::store::bus::{Bus, RoomAt};

/// Shared name of an id or a room: cloned into several sets, stored once.
pub type Name = Arc<str>;

/// Stripes of the per-id lock: enough that unrelated ids rarely wait on
/// each other, few enough to cost nothing.
const STRIPES: usize = 256;

/// Rooms an id may be in when the registry is made without a limit.
pub const DEFAULT_MAX_ROOMS: usize = 256;

/// Rooms there may be at once, server-wide, when the registry is made
/// without a limit.
pub const DEFAULT_MAX_TOTAL_ROOMS: usize = 100_000;

/// The cheap-to-clone registry handle.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// id → its current connection.
    online: DashMap<Name, Outbox>,
    /// room → its members here, and where its kept messages are.
    rooms: DashMap<Name, Room>,
    /// id → rooms it is in (the reverse index, for `rooms-of` and cleanup).
    members_of: DashMap<Name, HashSet<Name>>,
    /// Source of connection serials.
    next_serial: AtomicU64,
    /// Serialises presence and membership changes per id (see module doc).
    stripes: Box<[Mutex<()>]>,
    /// Picks an id's stripe.
    hasher: std::collections::hash_map::RandomState,
    /// Rooms one id may be in at once.
    max_rooms: usize,
    /// Rooms there may be at once (a room exists while it has a member).
    max_total_rooms: usize,
    /// Rooms there are, and places taken for rooms being made: the count
    /// `max_total_rooms` is checked against (`rooms.len()` would be a
    /// check-then-act race between two joins making two rooms).
    total_rooms: AtomicUsize,
    /// The server's event counters.
    counters: crate::metrics::Counters,
    /// Ids claimed lately by another server, with that claim's generation
    /// and when word of it came: the word and the answer to an older
    /// claim made here race, so a connection of an older claim that comes
    /// to register after the word is refused.
    superseded: Mutex<HashMap<Name, (u64, Instant)>>,
    /// id → its rooms whose messages, up to an offset, went to an earlier
    /// connection of the id (replaced, or on another server): a `join`
    /// with `since` replays from there up to that offset.
    handed: DashMap<Name, HashMap<Name, u64>>,
}

/// How long word of a claim elsewhere is kept: far longer than a claim's
/// answer can take to come (the store's timeout is a second).
const SUPERSEDED_FOR: Duration = Duration::from_secs(60);

/// A connection registered with a claim older than the id's newest (made
/// here or on another server): it is not the id's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("replaced by a newer connection")]
pub struct Superseded;

/// What a `join` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// The id is now a member.
    Added,
    /// It already was.
    AlreadyMember,
    /// The id is not online (an offline id cannot join).
    Offline,
    /// The id is in as many rooms as it may be.
    TooManyRooms,
    /// The room does not exist and the server has as many rooms as it may.
    TooManyRoomsOnServer,
}

/// A room with members here.
#[derive(Debug)]
struct Room {
    /// Its member ids.
    members: HashSet<Name>,
    /// Its kept messages delivered so far, and those that came early.
    seq: Sequence,
}

/// What a join found in the room's history, for its answer.
#[derive(Debug, Clone)]
pub struct Found {
    /// The room's epoch.
    pub epoch: std::sync::Arc<str>,
    /// The newest offset delivered to the room's members here.
    pub top: u64,
    /// With `since`: whether what was missed was replayed (queued to the
    /// joiner, before this is known) or cannot be.
    pub recovered: Option<bool>,
}

impl Found {
    fn of(r: Recovery, recovered: Option<bool>) -> Found {
        Found {
            epoch: r.epoch,
            top: r.top,
            recovered,
        }
    }
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

/// An id's connection here, as the admin interface shows it.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The server's number for the connection.
    pub serial: u64,
    /// The client's address and when it connected.
    pub peer: Option<(std::net::SocketAddr, std::time::SystemTime)>,
    /// Whether the connection ended and the id is held for a resume.
    pub held: bool,
    /// Its rooms, sorted.
    pub rooms: Vec<String>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::with_max_rooms(DEFAULT_MAX_ROOMS)
    }
}

impl Registry {
    /// An empty registry allowing [`DEFAULT_MAX_ROOMS`] rooms per id.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry allowing `max_rooms` rooms per id (and
    /// [`DEFAULT_MAX_TOTAL_ROOMS`] in all).
    pub fn with_max_rooms(max_rooms: usize) -> Self {
        Self::with_room_limits(max_rooms, DEFAULT_MAX_TOTAL_ROOMS)
    }

    /// An empty registry allowing `max_rooms` rooms per id and
    /// `max_total_rooms` rooms in all.
    pub fn with_room_limits(max_rooms: usize, max_total_rooms: usize) -> Self {
        Registry {
            inner: Arc::new(Inner {
                online: DashMap::new(),
                rooms: DashMap::new(),
                members_of: DashMap::new(),
                next_serial: AtomicU64::new(0),
                stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
                hasher: Default::default(),
                max_rooms,
                max_total_rooms,
                total_rooms: AtomicUsize::new(0),
                superseded: Mutex::default(),
                handed: DashMap::new(),
                counters: Default::default(),
            }),
        }
    }

    /// The server's event counters (`/metrics`): the registry is what every
    /// layer that counts already holds.
    pub fn counters(&self) -> &crate::metrics::Counters {
        &self.inner.counters
    }

    /// A fresh serial for a new connection.
    pub fn next_serial(&self) -> u64 {
        self.inner.next_serial.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Make `outbox` the connection of `id`, with no claim. An older
    /// connection with the same id is closed with 4001 and returned.
    pub fn register(&self, id: &str, outbox: Outbox) -> Option<Outbox> {
        self.register_with(id, outbox, 0, || {}).unwrap_or(None)
    }

    /// [`Registry::register`] for claim `generation` (0: none), running
    /// `first` under the id's lock just before: what it queues to
    /// `outbox` (stored notices) comes before anything sent to the id
    /// once it is online. Refused when a newer claim of the id is known
    /// (its connection here, or word of one elsewhere): of two
    /// connections the newer claim wins, whatever order they register in.
    pub fn register_with(
        &self,
        id: &str,
        outbox: Outbox,
        generation: u64,
        first: impl FnOnce(),
    ) -> Result<Option<Outbox>, Superseded> {
        let _id = self.lock(id);
        self.check_claim(id, generation)?;
        first();
        outbox.set_generation(generation);
        let old = self.inner.online.insert(Name::from(id), outbox);
        if let Some(old) = &old {
            old.close(replaced());
            // Its queue goes with it: what it had not written is for a
            // `join` with `since` to replay.
            self.hand_rooms_over(id, None);
        }
        Ok(old)
    }

    /// Whether claim `generation` of `id` is still its newest known here.
    fn check_claim(&self, id: &str, generation: u64) -> Result<(), Superseded> {
        if generation == 0 {
            return Ok(());
        }
        let newer_here = self
            .inner
            .online
            .get(id)
            .is_some_and(|o| o.generation() > generation);
        let newer_elsewhere = self
            .superseded()
            .get(id)
            .is_some_and(|(g, _)| *g > generation);
        if newer_here || newer_elsewhere {
            return Err(Superseded);
        }
        Ok(())
    }

    /// `id` was claimed on another server with `generation`: its
    /// connection here, if of an older claim, is replaced (4001) and its
    /// rooms here are left without a word — the new connection keeps them.
    /// Returns, if a connection here was replaced, where each of its rooms
    /// stood: every kept message up to there had been queued to it.
    pub fn claimed_elsewhere(&self, id: &str, generation: u64) -> Option<Vec<RoomAt>> {
        let _id = self.lock(id);
        {
            let now = Instant::now();
            let mut superseded = self.superseded();
            superseded.retain(|_, (_, at)| now.duration_since(*at) < SUPERSEDED_FOR);
            let entry = superseded.entry(Name::from(id)).or_insert((0, now));
            if entry.0 < generation {
                *entry = (generation, now);
            }
        }
        let (_, old) = self
            .inner
            .online
            .remove_if(id, |_, o| o.generation() < generation)?;
        old.close(replaced());
        self.inner.handed.remove(id);
        let mut at = Vec::new();
        if let Some((_, rooms)) = self.inner.members_of.remove(id) {
            for room in &rooms {
                // Read with the member taken out, in one hold of the room:
                // a delivery is either before (queued to it) or after.
                if let Some(mut r) = self.inner.rooms.get_mut(room) {
                    r.members.remove(id);
                    at.push(RoomAt {
                        room: room.to_string(),
                        epoch: r.seq.epoch().to_string(),
                        offset: r.seq.delivered(),
                    });
                }
                self.remove_member(room, id);
            }
        }
        Some(at)
    }

    /// Every room of `id` here: messages up to the newest delivered went
    /// to an earlier connection (called as a new connection takes the id
    /// over, or joins the rooms it had on another server).
    /// With `only`, just those rooms (the others came with their position).
    pub fn hand_rooms_over(&self, id: &str, only: Option<&[String]>) {
        let Some(rooms) = self.inner.members_of.get(id).map(|r| r.clone()) else {
            return;
        };
        let mut at = HashMap::new();
        for room in rooms {
            if only.is_some_and(|o| !o.iter().any(|r| **r == *room)) {
                continue;
            }
            if let Some(r) = self.inner.rooms.get(&room) {
                at.insert(room, r.seq.delivered());
            }
        }
        if !at.is_empty() {
            self.inner.handed.insert(Name::from(id), at);
        }
    }

    fn take_handed(&self, id: &str, room: &str) -> Option<u64> {
        let mut rooms = self.inner.handed.get_mut(id)?;
        let at = rooms.remove(room);
        let empty = rooms.is_empty();
        drop(rooms);
        if empty {
            self.inner.handed.remove_if(id, |_, r| r.is_empty());
        }
        at
    }

    /// The queue of `id`'s connection `serial`, if it is still the one here.
    pub fn outbox_of(&self, id: &str, serial: u64) -> Option<Outbox> {
        let outbox = self.inner.online.get(id)?;
        (outbox.serial() == serial).then(|| outbox.clone())
    }

    /// How far the frames of `id`'s connection here are written: its
    /// serial, and its queue's [`Outbox::progress`] (`None`: offline).
    pub fn progress(&self, id: &str) -> Option<(u64, u64, u64)> {
        let outbox = self.inner.online.get(id)?;
        let (pushed, written) = outbox.progress();
        Some((outbox.serial(), pushed, written))
    }

    /// The serial of `id`'s connection here (`None`: offline).
    pub fn serial_of(&self, id: &str) -> Option<u64> {
        self.inner.online.get(id).map(|o| o.serial())
    }

    fn superseded(&self) -> MutexGuard<'_, HashMap<Name, (u64, Instant)>> {
        // A map of numbers: a panic elsewhere cannot leave it invalid.
        self.inner
            .superseded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Every id here with a claim, and its generation.
    pub fn claimed_ids(&self) -> Vec<(Name, u64)> {
        self.inner
            .online
            .iter()
            .map(|e| (e.key().clone(), e.value().generation()))
            .filter(|(_, g)| *g != 0)
            .collect()
    }

    /// The claim generation of `id`'s connection here (`None`: offline).
    pub fn generation(&self, id: &str) -> Option<u64> {
        self.inner.online.get(id).map(|o| o.generation())
    }

    /// Put `outbox` (of claim `generation`) in place of held connection
    /// `serial` of `id` (a resume), running `carry` in between with the
    /// id's entry locked: what it moves from the held queue to `outbox`
    /// comes before anything sent to the id after. The id keeps its rooms;
    /// nobody is told. If `serial` no longer holds the id, `outbox` is
    /// registered as a new connection; false then. Refused as
    /// [`Registry::register_with`] is.
    pub fn take_over(
        &self,
        id: &str,
        serial: u64,
        outbox: Outbox,
        generation: u64,
        carry: impl FnOnce(),
    ) -> Result<bool, Superseded> {
        let _id = self.lock(id);
        self.check_claim(id, generation)?;
        outbox.set_generation(generation);
        if let Some(mut held) = self.inner.online.get_mut(id)
            && held.serial() == serial
        {
            carry();
            *held = outbox;
            return Ok(true);
        }
        carry();
        if let Some(old) = self.inner.online.insert(Name::from(id), outbox) {
            old.close(replaced());
        }
        Ok(false)
    }

    /// Take `id` offline if connection `serial` still holds it. Returns
    /// whether it did (false after a replacement).
    pub fn unregister(&self, id: &str, serial: u64) -> bool {
        let _id = self.lock(id);
        self.inner
            .online
            .remove_if(id, |_, o| o.serial() == serial)
            .is_some()
    }

    /// Remove an offline id from all its rooms, telling each room's
    /// remaining members with `left(room, id)`. Does nothing if the id is
    /// online again (a new connection took it and keeps its rooms): `None`
    /// then. Returns how many rooms it left.
    pub fn leave_all_if_offline(
        &self,
        id: &str,
        bus: &dyn Bus,
        left: impl Fn(&str, &str) -> Message,
    ) -> Option<usize> {
        let _id = self.lock(id);
        if self.is_online(id) {
            return None;
        }
        self.inner.handed.remove(id);
        let Some((_, rooms)) = self.inner.members_of.remove(id) else {
            return Some(0);
        };
        // Under the id's lock: a new connection's `join` waits, so every
        // room hears this `left` before that `joined`.
        for room in &rooms {
            self.remove_member(room, id);
            bus.transient(room, left(room, id), None);
        }
        Some(rooms.len())
    }

    /// Add `id` to `room`, within the rooms-per-id limit and, when the room
    /// is new, the server-wide room limit (no history asked).
    pub fn join(&self, id: &str, room: &str) -> Joined {
        let mut joined = Joined::Offline;
        self.join_with(id, room, None, None, |j, _| joined = j);
        joined
    }

    /// [`Registry::join`], with what the room's `history` holds for the
    /// joiner: with `since`, what it missed is queued to it first, up to
    /// the newest message delivered here, all while the room is held, so
    /// each message reaches the joiner once, in the replay or live. Then
    /// `within` runs, still holding the room when the id is (or was) a
    /// member: what it queues (a recovering join's answer) comes before any
    /// live message.
    pub fn join_with(
        &self,
        id: &str,
        room: &str,
        history: Option<&dyn History>,
        since: Option<(&str, u64)>,
        within: impl FnOnce(Joined, Found),
    ) {
        let _id = self.lock(id);
        let recover = |upto: Option<u64>, since| match history {
            Some(h) => h.recover(room, since, upto),
            None => Recovery {
                epoch: "".into(),
                top: 0,
                missed: None,
            },
        };
        // Up to what this server delivered to the room's members: of the
        // room's epoch now, nothing if the history started again (a
        // cluster's Redis lost its data) and no message of the new epoch
        // reached this server yet — every one of them will come live.
        let recover_here = |seq: &Sequence, since| {
            let r = recover(Some(seq.delivered()), since);
            if *r.epoch == *seq.epoch() {
                r
            } else {
                recover(Some(0), since)
            }
        };
        let nothing = || Found {
            epoch: "".into(),
            top: 0,
            recovered: None,
        };
        let Some(id) = self.online_name(id) else {
            let r = recover(None, None);
            return within(Joined::Offline, Found::of(r, None));
        };
        let name = Name::from(room);
        // A place for the room if it looks new, taken before the id is
        // added anywhere (given back on drop unless the room is made).
        let mut place = None;
        if !self.inner.rooms.contains_key(&name) {
            match RoomPlace::take(&self.inner) {
                Some(p) => place = Some(p),
                None => return within(Joined::TooManyRoomsOnServer, nothing()),
            }
        }
        {
            let mut rooms = self.inner.members_of.entry(id.clone()).or_default();
            if rooms.contains(&name) {
                drop(rooms);
                // A member has every message since it joined — but what
                // went to an earlier connection of the id, replaced (its
                // queue dropped) or on another server: with `since`, that
                // is replayed, up to where the earlier connection had it.
                let earlier = since.and_then(|_| self.take_handed(&id, &name));
                let mut held = self.inner.rooms.get_mut(&name);
                if let (Some(at), Some(_)) = (earlier, held.as_mut()) {
                    let r = recover(Some(at), since);
                    let recovered = r.missed.as_ref().map(|m| m.is_ok());
                    if let Some(Ok(frames)) = &r.missed
                        && let Some(outbox) = self.inner.online.get(&id)
                    {
                        for frame in frames {
                            let _ = outbox.push(Message::Text(frame.clone()));
                        }
                    }
                    return within(Joined::AlreadyMember, Found::of(r, recovered));
                }
                let r = match held.as_ref() {
                    Some(room) => recover_here(&room.seq, None),
                    None => recover(None, None),
                };
                // Unless the room's history started again since (a
                // cluster's Redis lost its data): then nothing is.
                let recovered = since.map(|(epoch, _)| *epoch == *r.epoch);
                return within(Joined::AlreadyMember, Found::of(r, recovered));
            }
            if rooms.len() >= self.inner.max_rooms {
                drop(rooms);
                self.inner
                    .members_of
                    .remove_if(&id, |_, rooms| rooms.is_empty());
                return within(Joined::TooManyRooms, nothing());
            }
            rooms.insert(name.clone());
        }
        let (mut held, r) = match self.inner.rooms.entry(name) {
            dashmap::Entry::Occupied(room) => {
                // Made meanwhile by another join: the place goes back.
                let r = recover_here(&room.get().seq, since);
                (room.into_ref(), r)
            }
            dashmap::Entry::Vacant(vacant) => {
                match place {
                    Some(p) => p.used(),
                    // It existed a moment ago and was emptied since: counted
                    // again as it is made again (past the limit by this one
                    // at most, and only in that race).
                    None => {
                        self.inner.total_rooms.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Delivery here starts at the room's newest: older messages
                // had no member here to go to.
                let r = recover(None, since);
                let room = Room {
                    members: HashSet::new(),
                    seq: Sequence::starting_at(r.epoch.clone(), r.top),
                };
                (vacant.insert(room), r)
            }
        };
        held.members.insert(id.clone());
        let recovered = r.missed.as_ref().map(|m| m.is_ok());
        if let Some(Ok(frames)) = &r.missed
            && let Some(outbox) = self.inner.online.get(&id)
        {
            for frame in frames {
                let _ = outbox.push(Message::Text(frame.clone()));
            }
        }
        within(Joined::Added, Found::of(r, recovered));
    }

    /// Rooms there are (with at least one member).
    pub fn room_count(&self) -> usize {
        self.inner.total_rooms.load(Ordering::Relaxed)
    }

    /// The server-wide room limit.
    pub fn max_total_rooms(&self) -> usize {
        self.inner.max_total_rooms
    }

    /// Remove `id` from `room`. True if it was a member.
    pub fn leave(&self, id: &str, room: &str) -> bool {
        let _id = self.lock(id);
        self.remove_membership(id, room)
    }

    /// Remove `id` from `room` only while `id` is offline (what an
    /// `on-disconnect` decided must not touch a newer connection).
    pub fn leave_if_offline(&self, id: &str, room: &str) -> bool {
        let _id = self.lock(id);
        !self.is_online(id) && self.remove_membership(id, room)
    }

    /// The rooms-per-id limit.
    pub fn max_rooms(&self) -> usize {
        self.inner.max_rooms
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
            .is_some_and(|r| r.members.contains(id))
    }

    /// The members of `room`.
    pub fn room_members(&self, room: &str) -> Vec<String> {
        self.inner
            .rooms
            .get(room)
            .map(|r| r.members.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default()
    }

    /// At most `limit` members of `room` (no particular order).
    pub fn room_members_up_to(&self, room: &str, limit: usize) -> Vec<String> {
        self.inner
            .rooms
            .get(room)
            .map(|r| {
                let ids = r.members.iter().take(limit);
                ids.map(|n| n.to_string()).collect()
            })
            .unwrap_or_default()
    }

    /// How many members `room` has.
    pub fn room_size(&self, room: &str) -> usize {
        self.inner.rooms.get(room).map_or(0, |r| r.members.len())
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

    /// Queue `msg` to `id`, saying whether it went to a connection or to a
    /// held id's queue.
    pub fn deliver(&self, id: &str, msg: Message) -> Sent {
        match self.inner.online.get(id) {
            Some(outbox) => Self::pushed(&outbox, msg),
            None => Sent::Refused,
        }
    }

    fn pushed(outbox: &Outbox, msg: Message) -> Sent {
        let held = outbox.is_held();
        match outbox.push(msg) {
            Ok(()) if held => Sent::Held,
            Ok(()) => Sent::Queued,
            Err(_) => Sent::Refused,
        }
    }

    /// Queue `msg` to every member of `room` but `except`.
    pub fn send_room(&self, room: &str, msg: &Message, except: Option<&str>) -> Delivery {
        match self.inner.rooms.get(room) {
            Some(r) => self.to_members(&r.members, msg, except),
            None => Delivery::default(),
        }
    }

    /// Queue kept message `offset` of `room` (in `epoch`) to its members
    /// but `except`, in offset order: one that comes before its turn waits
    /// for the ones before it, and one delivered already (or older than
    /// the room's first member here) is not delivered again. Returns
    /// `Some(after)` while messages wait for one after `after`.
    pub fn send_kept(
        &self,
        room: &str,
        epoch: &str,
        offset: u64,
        msg: Message,
        except: Option<&str>,
    ) -> Option<u64> {
        let mut r = self.inner.rooms.get_mut(room)?;
        let Room { members, seq } = &mut *r;
        if !seq.epoch().is_empty() && *seq.epoch() != *epoch {
            // Its members count offsets in the old epoch: from here they
            // count in the new one, from 1 — told before its first message.
            let told = crate::chat::replies::new_epoch(room, epoch);
            self.to_members(members, &told, None);
        }
        seq.arrive(epoch, offset, msg, except, |msg, except| {
            self.to_members(members, msg, except);
        })
    }

    /// Messages of `room` up to `to` (of `epoch`) will never come: go on
    /// after them (see `Sequence::skip_to`).
    pub fn skip_kept(&self, room: &str, epoch: &str, to: u64) -> Option<u64> {
        let mut r = self.inner.rooms.get_mut(room)?;
        let Room { members, seq } = &mut *r;
        seq.skip_to(epoch, to, |msg, except| {
            self.to_members(members, msg, except);
        })
    }

    /// The newest offset of `room` delivered here, with its epoch (`None`:
    /// no member here).
    pub fn delivered(&self, room: &str) -> Option<(std::sync::Arc<str>, u64)> {
        let r = self.inner.rooms.get(room)?;
        Some((r.seq.epoch(), r.seq.delivered()))
    }

    fn to_members(&self, members: &HashSet<Name>, msg: &Message, except: Option<&str>) -> Delivery {
        let mut delivery = Delivery::default();
        for member in members {
            if except == Some(&**member) {
                continue;
            }
            if let Some(outbox) = self.inner.online.get(&**member) {
                delivery.count(outbox.push(msg.clone()));
            }
        }
        self.inner.counters.delivered(delivery.queued);
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

    /// What the admin interface shows of `id`'s connection here: its
    /// serial, address and since when (`None` when not noted), whether it
    /// is held, and its rooms. `None`: not here.
    pub fn connection(&self, id: &str) -> Option<Connection> {
        let outbox = self.inner.online.get(id)?.value().clone();
        let mut rooms = self.rooms_of(id);
        rooms.sort();
        Some(Connection {
            serial: outbox.serial(),
            peer: outbox.peer(),
            held: outbox.is_held(),
            rooms,
        })
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

    /// Every online connection's queue (the outbound budget looks for the
    /// largest when it is exceeded).
    pub fn outboxes(&self) -> Vec<Outbox> {
        self.inner
            .online
            .iter()
            .map(|e| e.value().clone())
            .collect()
    }

    /// The registry's own copy of an online id's name (so rooms share it).
    fn online_name(&self, id: &str) -> Option<Name> {
        self.inner.online.get(id).map(|e| e.key().clone())
    }

    /// The lock serialising `id`'s presence and membership changes.
    fn lock(&self, id: &str) -> MutexGuard<'_, ()> {
        let stripe = self.inner.hasher.hash_one(id) as usize % STRIPES;
        // The guarded data is `()`: a panic elsewhere cannot leave it invalid.
        self.inner.stripes[stripe]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Take `room` from `id`'s rooms and `id` from `room`'s members (the
    /// caller holds `id`'s lock).
    fn remove_membership(&self, id: &str, room: &str) -> bool {
        let removed = match self.inner.members_of.get_mut(id) {
            Some(mut rooms) => rooms.remove(room),
            None => false,
        };
        self.inner
            .members_of
            .remove_if(id, |_, rooms| rooms.is_empty());
        if removed {
            self.remove_member(room, id);
            self.take_handed(id, room);
        }
        removed
    }

    fn remove_member(&self, room: &str, id: &str) {
        if let Some(mut r) = self.inner.rooms.get_mut(room) {
            r.members.remove(id);
        }
        if self
            .inner
            .rooms
            .remove_if(room, |_, r| r.members.is_empty())
            .is_some()
        {
            self.inner.total_rooms.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// How an older connection of an id is closed.
fn replaced() -> CloseReason {
    CloseReason {
        replaced: true,
        ..CloseReason::with_code(code::REPLACED, "replaced by a newer connection")
    }
}

/// A place taken in the server-wide room count for a room about to be
/// made; given back when dropped unless [`RoomPlace::used`].
struct RoomPlace<'a>(&'a AtomicUsize);

impl<'a> RoomPlace<'a> {
    /// A place, if the count is under the limit.
    fn take(inner: &'a Inner) -> Option<Self> {
        inner
            .total_rooms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < inner.max_total_rooms).then_some(n + 1)
            })
            .ok()
            .map(|_| RoomPlace(&inner.total_rooms))
    }

    /// The room was made: the place stays counted (until it is removed).
    fn used(self) {
        std::mem::forget(self);
    }
}

impl Drop for RoomPlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::outbound;

    fn online(r: &Registry, id: &str) -> outbound::Inbox {
        let (outbox, inbox) = outbound::channel(r.next_serial(), 64, 1 << 20);
        r.register(id, outbox);
        inbox
    }

    #[test]
    fn rooms_are_capped_server_wide_and_counted_back_to_zero() {
        let r = Registry::with_room_limits(10, 2);
        let _a = online(&r, "a");
        let _b = online(&r, "b");
        assert_eq!(r.join("a", "r1"), Joined::Added);
        assert_eq!(r.join("a", "r2"), Joined::Added);
        assert_eq!(r.join("a", "r3"), Joined::TooManyRoomsOnServer);
        assert_eq!(r.join("b", "r3"), Joined::TooManyRoomsOnServer);
        // Joining a room that exists is not limited.
        assert_eq!(r.join("b", "r1"), Joined::Added);
        assert_eq!(r.join("b", "r1"), Joined::AlreadyMember);
        assert_eq!(r.room_count(), 2);
        assert!(r.rooms_of("b").len() == 1 && r.room_size("r3") == 0);
        // A room goes when its last member leaves, and its place with it.
        assert!(r.leave("a", "r2"));
        assert_eq!(r.room_count(), 1);
        assert_eq!(r.join("b", "r3"), Joined::Added);
        // Members gone: nothing left counted.
        r.leave("a", "r1");
        r.leave("b", "r1");
        r.unregister("b", 2);
        let bus = crate::store::memory::MemoryBus::new(
            std::sync::Arc::new(r.clone()),
            std::sync::Arc::new(crate::store::memory::MemoryHistory::new(Default::default())),
            std::sync::Arc::new(crate::store::memory::MemoryNotices::new(Default::default())),
        );
        r.leave_all_if_offline("b", &bus, |_, _| Message::text(""));
        assert_eq!(r.room_count(), 0);
        assert_eq!(r.room_size("r3"), 0);
    }

    #[test]
    fn the_rooms_per_id_limit_still_comes_with_its_own_answer() {
        let r = Registry::with_room_limits(1, 10);
        let _a = online(&r, "a");
        assert_eq!(r.join("a", "r1"), Joined::Added);
        assert_eq!(r.join("a", "r2"), Joined::TooManyRooms);
        // The place taken for `r2` was given back.
        assert_eq!(r.room_count(), 1);
    }
}
