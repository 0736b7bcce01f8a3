//! The node's subscriber connection and its one reader: what other nodes
//! publish on the channels of the rooms with members here (and on the
//! node-wide channel: broadcasts) goes from here to the dispatcher
//! ([`Local`]), a room's kept messages through the replica first.
//!
//! A dedicated RESP3 connection (subscribing on the write connection
//! would stall it): its pushes go into one bounded queue read by one
//! task, so the dispatcher gets them in the order Redis sent them. Pub/sub
//! is at most once: a push lost (the queue full, the connection gone) is
//! found as a gap in a room's offsets, and filled from the room's stream —
//! for every room, after any reconnect. Transient frames and broadcasts
//! have no offsets: lost with the connection, as documented.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use super::Unavailable;
use super::ids::Ids;
use super::keys::Keys;
use super::logged::Logged;
use super::payload::{self, Frame, ToNode};
use super::presence::{Change, Copy};
use super::replica::Replica;
use super::rooms::Rooms;
use super::state::ClusterState;
use crate::store::bus::{HandOver, Handover, Local, Sent};
use crate::store::history::Text;
use crate::store::json;
use crate::store::versions::Heard;

/// How a node that finds it was taken over closes its connections:
/// service restart (RFC 6455), which clients answer by connecting again.
const TAKEN_OVER_CODE: u16 = 1012;
const TAKEN_OVER: &str = "this server was taken over by another; connect again";

/// Pushes that may wait for the reader: past this, pushes are dropped and
/// every room's gap is filled from its stream.
const QUEUE: usize = 65_536;

/// The first wait before the subscriber connection is tried again, and
/// the longest.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Tries of a gap fill before it is given up (about a minute with the
/// waits between them).
const FILL_TRIES: usize = 16;

/// Ids asked about in one round trip when claims are checked again.
const RECHECK_BATCH: usize = 1_000;

/// Messages a gap fill reads at once.
const FILL_BATCH: usize = 500;

/// The subscriber connection, the channels it listens to, and where what
/// arrives goes.
#[derive(Debug)]
pub struct Subscriber {
    client: Client,
    config: AsyncConnectionConfig,
    keys: Keys,
    /// The channel every node hears (broadcasts).
    all: String,
    /// This node's own channel (ids claimed elsewhere).
    inbox: String,
    /// This node's id: what it published itself it has delivered already.
    node: String,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// channel → room, for the rooms with members here.
    watched: DashMap<String, Arc<str>>,
    /// Set when a push could not be queued: fill every gap.
    overflowed: Arc<AtomicBool>,
    /// Taken by the reader when it starts.
    queue: std::sync::Mutex<Option<mpsc::Receiver<PushInfo>>>,
    /// The dispatcher, once the registry exists.
    local: OnceLock<Arc<dyn Local>>,
    replica: Arc<Replica>,
    rooms: Rooms,
    /// Who has each id (to check claims again after a reconnect).
    ids: Ids,
    /// Gives up held ids here to a node resuming them.
    handing: OnceLock<Arc<dyn HandOver>>,
    /// The channel of presence changes, and the copy it keeps.
    presence: String,
    copy: Arc<Copy>,
    /// The channel of the policy's state, and this node's copy.
    state_channel: String,
    state: OnceLock<Arc<ClusterState>>,
    /// The boot key's value this node saw last (Redis lost its data when
    /// it changes).
    boot: Arc<std::sync::Mutex<Option<String>>>,
    /// Set once the other nodes' presence and the policy's state have
    /// been read after a connection (the first time: the node knows the
    /// cluster).
    synced: tokio::sync::watch::Sender<bool>,
    /// Resumes made here waiting for their handover, by id.
    handovers: DashMap<String, oneshot::Sender<Option<Handover>>>,
    /// The logged notices queued here, until they are written.
    logged: Arc<Logged>,
    /// Frames for ids being claimed here, until they register.
    parked: Arc<super::parked::Parked>,
    /// Markers this node published to itself, awaited ([`Subscriber::expect_sync`]).
    syncs: DashMap<u64, oneshot::Sender<()>>,
    next_sync: std::sync::atomic::AtomicU64,
    /// The channel swaps and rollbacks are announced on, and who acts on
    /// them.
    policy_channel: String,
    versions: OnceLock<mpsc::Sender<Heard>>,
}

impl Subscriber {
    /// A subscriber for `url` (the secret URL), nothing subscribed yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        url: &str,
        timeout: Duration,
        keys: Keys,
        node: &str,
        replica: Arc<Replica>,
        rooms: Rooms,
        ids: Ids,
        copy: Arc<Copy>,
        logged: Arc<Logged>,
        parked: Arc<super::parked::Parked>,
    ) -> Result<Arc<Subscriber>, Unavailable> {
        let resp3 = format!("{url}?protocol=resp3");
        let client = Client::open(resp3).map_err(|e| {
            Unavailable::Connection(format!(
                "the URL is not one redis-rs takes ({:?})",
                e.kind()
            ))
        })?;
        // The sender lives in the connection config's push sender, which
        // every connection made again is given: the queue stays open.
        let (pushes, queue) = mpsc::channel(QUEUE);
        let overflowed = Arc::new(AtomicBool::new(false));
        let (tx, flag) = (pushes, overflowed.clone());
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_push_sender(move |p: PushInfo| {
                tx.try_send(p)
                    .map_err(|_| flag.store(true, Ordering::Relaxed))
            });
        Ok(Arc::new(Subscriber {
            client,
            config,
            all: keys.all(),
            presence: keys.presence(),
            state_channel: keys.global("state"),
            state: OnceLock::new(),
            policy_channel: keys.policy().channel,
            versions: OnceLock::new(),
            boot: Arc::default(),
            synced: tokio::sync::watch::Sender::new(false),
            inbox: keys.inbox(node),
            keys,
            node: node.to_owned(),
            conn: tokio::sync::Mutex::new(None),
            watched: DashMap::new(),
            overflowed,
            queue: std::sync::Mutex::new(Some(queue)),
            local: OnceLock::new(),
            replica,
            rooms,
            ids,
            handing: OnceLock::new(),
            copy,
            handovers: DashMap::new(),
            logged,
            parked,
            syncs: DashMap::new(),
            next_sync: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// Start reading, delivering to `local`.
    pub fn start(
        self: &Arc<Self>,
        local: Arc<dyn Local>,
        handing: Arc<dyn HandOver>,
        state: Arc<ClusterState>,
    ) {
        let _ = self.local.set(local);
        let _ = self.handing.set(handing);
        let _ = self.state.set(state);
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(queue) = queue {
            tokio::spawn(self.clone().read(queue));
        }
    }

    /// Hand what is announced on the policy channel to `heard` (set
    /// before [`Subscriber::start`]).
    pub fn hear_policy(&self, heard: mpsc::Sender<Heard>) {
        let _ = self.versions.set(heard);
    }

    /// Hand on what was heard of the policy; a full queue loses it, and
    /// the record is read again instead.
    fn heard(&self, heard: Heard) {
        if let Some(to) = self.versions.get()
            && let Err(e) = to.try_send(heard)
        {
            tracing::warn!(error = %e, "a policy announcement was dropped: too many waiting");
            let _ = to.try_send(Heard::Resync);
        }
    }

    /// Listen to `room`'s channel (if not already): from when this
    /// returns, whatever is published there reaches this node.
    pub async fn watch(&self, room: &str) -> Result<(), Unavailable> {
        let channel = self.keys.room(room).channel;
        if self.watched.contains_key(&channel) {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        if let Err(e) = conn.subscribe(&channel).await {
            // Whether it was subscribed is unknown: start again.
            self.drop_conn().await;
            return Err(Unavailable::Connection(e.to_string()));
        }
        self.watched.insert(channel, Arc::from(room));
        Ok(())
    }

    /// Stop listening to `room`'s channel (no member here any more).
    pub async fn unwatch(&self, room: &str) {
        let channel = self.keys.room(room).channel;
        if self.watched.remove(&channel).is_none() {
            return;
        }
        if let Some(conn) = self.conn.lock().await.as_mut() {
            let _ = conn.unsubscribe(&channel).await;
        }
    }

    /// The connection, made (and every watched channel subscribed again,
    /// every gap filled) if there is none.
    async fn conn(&self) -> Result<MultiplexedConnection, Unavailable> {
        let mut held = self.conn.lock().await;
        if let Some(c) = held.as_ref() {
            return Ok(c.clone());
        }
        let mut c = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| Unavailable::Connection(e.to_string()))?;
        let mut channels: Vec<String> = self.watched.iter().map(|e| e.key().clone()).collect();
        channels.push(self.all.clone());
        channels.push(self.inbox.clone());
        channels.push(self.presence.clone());
        channels.push(self.state_channel.clone());
        channels.push(self.policy_channel.clone());
        c.subscribe(&channels)
            .await
            .map_err(|e| Unavailable::Connection(e.to_string()))?;
        *held = Some(c.clone());
        drop(held);
        tracing::info!(rooms = channels.len() - 5, "subscribed to Redis");
        self.heard(Heard::Resync);
        self.fill_all();
        self.recheck_claims();
        self.resync_presence();
        Ok(c)
    }

    async fn drop_conn(&self) {
        *self.conn.lock().await = None;
    }

    /// The one reader: pushes in the order Redis sent them.
    async fn read(self: Arc<Self>, mut queue: mpsc::Receiver<PushInfo>) {
        if let Err(e) = self.conn().await {
            tracing::warn!(error = %e, "Redis subscriber not connected yet");
            self.spawn_reconnect();
        }
        while let Some(push) = queue.recv().await {
            if self.overflowed.swap(false, Ordering::Relaxed) {
                tracing::warn!("Redis pushes came faster than they were read; filling gaps");
                self.fill_all();
                self.recheck_claims();
                self.resync_presence();
                self.heard(Heard::Resync);
            }
            match push.kind {
                PushKind::Message => {
                    if let Some(msg) = redis::Msg::from_push_info(push) {
                        self.message(msg.get_channel_name(), msg.get_payload_bytes());
                    }
                }
                PushKind::Disconnection => {
                    tracing::warn!("Redis subscriber connection lost; reconnecting");
                    self.drop_conn().await;
                    self.spawn_reconnect();
                }
                _ => {}
            }
        }
    }

    /// Make the connection again until it is made: 100 ms after a
    /// failed try, doubling up to 5 s (a restarted Redis is back within
    /// milliseconds; every pause here is a pause of delivery between
    /// nodes).
    fn spawn_reconnect(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut wait = RECONNECT_FIRST;
            loop {
                match me.conn().await {
                    Ok(_) => return,
                    Err(e) => tracing::debug!(error = %e, "Redis subscriber: still down"),
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RECONNECT_MAX);
            }
        });
    }

    fn message(self: &Arc<Self>, channel: &str, payload: &[u8]) {
        self.ids
            .figures()
            .bus_in
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if channel == self.policy_channel {
            match super::versions::read(payload) {
                Some(said) => self.heard(Heard::Said(said)),
                None => tracing::warn!(channel, "a message this build cannot read"),
            }
            return;
        }
        let Some(local) = self.local.get() else {
            return;
        };
        if channel == self.state_channel {
            match (super::state::Change::read(payload), self.state.get()) {
                (Some(change), Some(state)) => state.changed(change),
                (None, _) => tracing::warn!(channel, "a message this build cannot read"),
                (Some(_), None) => {}
            }
            return;
        }
        if channel == self.inbox {
            match payload::to_node(payload) {
                Some(ToNode::Claimed {
                    id,
                    generation,
                    resumer: None,
                }) => local.claimed(id, generation),
                Some(ToNode::Claimed {
                    id,
                    generation,
                    resumer: Some(resumer),
                }) => self.hand_over(id, generation, resumer),
                Some(ToNode::ClaimedHeld {
                    id,
                    generation,
                    claimer,
                }) => self.end_hold(id, generation, claimer),
                Some(ToNode::Handover { id, handover, .. }) => match self.handovers.remove(id) {
                    Some((_, waiting)) => {
                        let _ = waiting.send(handover);
                    }
                    None => tracing::warn!(id, "a handover came too late; what it held is lost"),
                },
                Some(ToNode::Frame { id, frame, entry }) => {
                    let msg = match frame {
                        Frame::Text(t) => Message::text(t),
                        Frame::Binary(b) => Message::binary(b.to_vec()),
                    };
                    let Err((msg, _)) = self.parked.park(id, (msg, entry.map(str::to_owned)))
                    else {
                        return;
                    };
                    if local.deliver(id, msg) == Sent::Refused {
                        tracing::debug!(id, "a frame from another node found no connection here");
                    } else if let Some(entry) = entry {
                        self.logged.queued(id, entry.to_owned(), local.progress(id));
                    }
                }
                Some(ToNode::Close { id, code, reason }) => {
                    local.close(id, code, reason);
                }
                Some(ToNode::Sync { token }) => {
                    if let Some((_, heard)) = self.syncs.remove(&token) {
                        let _ = heard.send(());
                    }
                }
                None => tracing::warn!(channel, "a message this build cannot read"),
            }
            return;
        }
        let is_all = channel == self.all;
        if let Some(b) = payload::binary(payload, !is_all) {
            if b.node == self.node {
                return;
            }
            let msg = Message::binary(b.frame.to_vec());
            if is_all {
                local.broadcast(&msg, b.except);
            } else if let Some(room) = self.watched.get(channel).map(|r| r.clone()) {
                let _ = local.room(&room, None, msg, b.except);
            }
            return;
        }
        let Ok(payload) = std::str::from_utf8(payload) else {
            return;
        };
        if channel == self.presence {
            match Change::read(payload) {
                Some(change) => self.copy.changed(change),
                None => tracing::warn!(channel, "a message this build cannot read"),
            }
            return;
        }
        if channel == self.all {
            if let Some(all) = payload::read_all(payload)
                && all.node != self.node
            {
                local.broadcast(&Message::text(all.frame), all.except);
            }
            return;
        }
        let Some(room) = self.watched.get(channel).map(|r| r.clone()) else {
            return;
        };
        let Some(r) = payload::room(payload) else {
            return;
        };
        if r.node == self.node {
            return;
        }
        match r.kept {
            None => {
                let _ = local.room(&room, None, Message::text(r.frame), r.except);
            }
            Some((epoch, offset)) => self.kept(&room, epoch, offset, r.frame.to_owned(), r.except),
        }
    }

    /// A kept message reached this node: into the replica, then to the
    /// dispatcher; a gap it reveals is filled.
    pub fn kept(
        self: &Arc<Self>,
        room: &str,
        epoch: &str,
        offset: u64,
        frame: String,
        except: Option<&str>,
    ) {
        let Some(local) = self.local.get() else {
            return;
        };
        let text = Text::from(with_offset(frame, offset));
        self.replica.insert(room, epoch, offset, text.clone());
        if let Some(after) = local.room(room, Some((epoch, offset)), Message::Text(text), except) {
            self.spawn_fill_from(room.into(), epoch.into(), after);
        }
    }

    /// Read the other nodes' presence, and the policy's state, again
    /// (what came on their channels while the connection was down is
    /// lost).
    fn resync_presence(&self) {
        let (copy, writer, keys) = (self.copy.clone(), self.ids.writer(), self.keys.clone());
        let state = self.state.get().cloned();
        let (ids, local, boot) = (
            self.ids.clone(),
            self.local.get().cloned(),
            self.boot.clone(),
        );
        let synced = self.synced.clone();
        // Tried until it works (the write connection may still hold the
        // connection Redis dropped: the first call finds out and the next
        // makes a new one), 100 ms apart, doubling to 5 s.
        tokio::spawn(async move {
            let mut wait = RECONNECT_FIRST;
            loop {
                let done = async {
                    if let Some(local) = &local {
                        restore_if_lost(&ids, &**local, &boot).await?;
                    }
                    copy.resync(&writer, &keys).await?;
                    if let Some(state) = &state {
                        state.resync(&writer, &keys).await?;
                    }
                    Ok::<(), Unavailable>(())
                };
                match done.await {
                    Ok(()) => {
                        synced.send_replace(true);
                        return;
                    }
                    Err(e) => tracing::debug!(error = %e, "presence and state not read again yet"),
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RECONNECT_MAX);
            }
        });
    }

    /// Wait for the handover of `id`, which this node is about to resume
    /// (called before the claim, so the answer cannot come first).
    pub fn expect_handover(&self, id: &str) -> oneshot::Receiver<Option<Handover>> {
        let (tx, rx) = oneshot::channel();
        self.handovers.insert(id.to_owned(), tx);
        rx
    }

    /// A marker to publish to this node's own channel, and what says it
    /// was read.
    pub fn expect_sync(&self) -> (u64, oneshot::Receiver<()>) {
        let token = self.next_sync.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.syncs.insert(token, tx);
        (token, rx)
    }

    /// A marker not awaited any more.
    pub fn forget_sync(&self, token: u64) {
        self.syncs.remove(&token);
    }

    /// No handover of `id` is awaited any more.
    pub fn forget_handover(&self, id: &str) {
        self.handovers.remove(id);
    }

    /// `id` held here was claimed on `claimer` with `generation` by a
    /// connection that did not resume it: the hold ends here as on one
    /// server (its rooms hear `left`), then `claimer` is told, so the new
    /// connection starts after that.
    fn end_hold(&self, id: &str, generation: u64, claimer: &str) {
        let (Some(handing), Some(local)) = (self.handing.get().cloned(), self.local.get().cloned())
        else {
            return;
        };
        let (ids, id, claimer) = (self.ids.clone(), id.to_owned(), claimer.to_owned());
        let logged = self.logged.clone();
        tokio::spawn(async move {
            if !handing.end(&id, generation).await {
                // Not held (any more): replaced as any older connection.
                local.claimed(&id, generation);
            }
            // What it was sent goes with it, as on one server.
            let _ = logged.take(&id);
            let payload = payload::handover(&id, generation, None);
            if let Err(e) = ids.tell(&claimer, &payload).await {
                tracing::debug!(id, claimer, error = %e, "the end of a hold could not be told");
            }
        });
    }

    /// `id` held here is resumed on `resumer` with claim `generation`:
    /// give it up and send what it missed there.
    fn hand_over(&self, id: &str, generation: u64, resumer: &str) {
        let (Some(handing), Some(local)) = (self.handing.get().cloned(), self.local.get().cloned())
        else {
            return;
        };
        let (ids, id, resumer) = (self.ids.clone(), id.to_owned(), resumer.to_owned());
        let logged = self.logged.clone();
        tokio::spawn(async move {
            let mut handover = handing.hand_over(&id, generation).await;
            if let Some(h) = handover.as_mut() {
                // Written there, they are the resuming node's to delete.
                h.logged = logged.take(&id);
            }
            if handover.is_none() {
                // Not held (any more): replaced as any older connection.
                local.claimed(&id, generation);
            }
            let payload = payload::handover(&id, generation, handover.as_ref());
            if let Err(e) = ids.tell(&resumer, &payload).await {
                tracing::warn!(id, resumer, error = %e, "a handover could not be sent; what it held is lost");
            }
        });
    }

    /// Word of a claim elsewhere may have been lost with the connection
    /// (or the queue): ask Redis for the generation of every id here, and
    /// replace each connection a newer claim has.
    pub(super) fn recheck_claims(&self) {
        let Some(local) = self.local.get().cloned() else {
            return;
        };
        let ids = self.ids.clone();
        tokio::spawn(async move {
            match ids.taken_over().await {
                Ok(Some(by)) => {
                    // Cut off from Redis for longer than a heartbeat's
                    // life: another node took this one over, and holds
                    // (then lets go of) its ids. Its connections must
                    // connect again to be anyone's.
                    let claims = local.claims();
                    tracing::warn!(
                        by,
                        connections = claims.len(),
                        "this node was taken over while it was cut off from Redis: closing its connections (1012) so their clients connect again"
                    );
                    for (id, _) in &claims {
                        local.close(id, TAKEN_OVER_CODE, TAKEN_OVER);
                    }
                    if let Err(e) = ids.forget_takeover().await {
                        tracing::warn!(error = %e, "the takeover of this node not cleared");
                    }
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "claims not checked again after a reconnect");
                    return;
                }
            }
            for chunk in local.claims().chunks(RECHECK_BATCH) {
                let names: Vec<Arc<str>> = chunk.iter().map(|(id, _)| id.clone()).collect();
                let newest = match ids.generations(&names).await {
                    Ok(g) => g,
                    Err(e) => {
                        tracing::warn!(error = %e, "claims not checked again after a reconnect");
                        return;
                    }
                };
                for ((id, here), newest) in chunk.iter().zip(newest) {
                    if newest > *here {
                        local.claimed(id, newest);
                    }
                }
            }
        });
    }

    fn fill_all(&self) {
        for room in self.watched_rooms() {
            self.fill(&room);
        }
    }

    /// Fill `room` from where its delivery here stands.
    pub fn fill(&self, room: &str) {
        if let Some(local) = self.local.get()
            && let Some((epoch, after)) = local.delivered(room)
        {
            self.spawn_fill_from(room.into(), epoch, after);
        }
    }

    /// If `room`'s delivery here is in another epoch than `epoch` (Redis's
    /// now), read the room's stream and deliver it before returning.
    pub async fn catch_up(&self, room: &str, epoch: &str) -> Result<(), Unavailable> {
        let Some(local) = self.local.get() else {
            return Ok(());
        };
        match local.delivered(room) {
            Some((here, after)) if *here != *epoch => {
                fill(&self.rooms, &self.replica, &**local, room, &here, after).await
            }
            _ => Ok(()),
        }
    }

    /// Read the boot key (set it if missing) as the value this node saw
    /// first.
    pub async fn saw_boot(&self) -> Result<(), Unavailable> {
        let now = self.ids.boot().await?;
        let mut seen = self.boot.lock().unwrap_or_else(|e| e.into_inner());
        if seen.is_none() {
            *seen = Some(now);
        }
        Ok(())
    }

    /// Until the subscriber connection has been made and the other nodes'
    /// presence read through it, once.
    pub async fn synced(&self) {
        let mut seen = self.synced.subscribe();
        let _ = seen.wait_for(|synced| *synced).await;
    }

    /// Whether the subscriber connection is up (it is made again, and
    /// every room filled, when it is not).
    pub fn is_connected(&self) -> bool {
        self.conn.try_lock().map_or(true, |c| c.is_some())
    }

    /// The rooms followed.
    pub fn watched_rooms(&self) -> Vec<Arc<str>> {
        self.watched.iter().map(|e| e.value().clone()).collect()
    }

    /// Read `room`'s stream after `after` (of `epoch`) and hand what is
    /// there on, in order (what was delivered meanwhile is skipped by the
    /// dispatcher). A room whose epoch is another now (Redis lost its
    /// data) is read from its first message.
    fn spawn_fill_from(&self, room: Arc<str>, epoch: Arc<str>, after: u64) {
        let (rooms, replica, local) = (
            self.rooms.clone(),
            self.replica.clone(),
            self.local.get().cloned(),
        );
        let Some(local) = local else {
            return;
        };
        // Tried until Redis answers (right after a reconnect the write
        // connection may still hold the one Redis dropped): a gap left
        // unfilled would hold the room's delivery here until the next
        // message revealed it.
        tokio::spawn(async move {
            let mut wait = RECONNECT_FIRST;
            let (mut epoch, mut after) = (epoch, after);
            for _ in 0..FILL_TRIES {
                match fill(&rooms, &replica, &*local, &room, &epoch, after).await {
                    Ok(()) => return,
                    Err(e) => tracing::debug!(error = %e, room = &*room, "a gap not filled yet"),
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RECONNECT_MAX);
                match local.delivered(&room) {
                    Some(now) => (epoch, after) = now,
                    None => return,
                }
            }
            tracing::warn!(
                room = &*room,
                "a gap could not be filled: Redis did not answer"
            );
        });
    }
}

/// Read `room`'s stream after `after` (of `delivered_epoch`; another epoch
/// now: from its first message) and hand what is there to `local`.
async fn fill(
    rooms: &Rooms,
    replica: &Replica,
    local: &dyn Local,
    room: &str,
    delivered_epoch: &str,
    after: u64,
) -> Result<(), Unavailable> {
    let epoch = match rooms.top(room).await? {
        (Some(epoch), _) => epoch,
        (None, _) => return Ok(()),
    };
    let mut after = if epoch == delivered_epoch { after } else { 0 };
    loop {
        let batch = rooms.after(room, after, FILL_BATCH).await?;
        let (Some(first), Some(last)) = (
            batch.first().map(|e| e.offset),
            batch.last().map(|e| e.offset),
        ) else {
            return Ok(());
        };
        if first > after + 1 {
            // Trimmed (or expired) before this node could read them:
            // nobody will ever deliver them here.
            let _ = local.skip(room, &epoch, first - 1);
        }
        for e in batch {
            let text = Text::from(with_offset(e.frame, e.offset));
            replica.insert(room, &epoch, e.offset, text.clone());
            let kept = Some((&*epoch, e.offset));
            let _ = local.room(room, kept, Message::Text(text), e.except.as_deref());
        }
        after = last;
    }
}

/// `frame` with `"offset":<offset>` written in, as the memory store does.
pub fn with_offset(frame: String, offset: u64) -> String {
    if !json::is_object(&frame) {
        return frame;
    }
    json::with_fields(frame, format_args!(r#""offset":{offset}"#))
}

/// If Redis lost its data (restarted without persistence), say again what
/// this node has: every id here, its generation and rooms.
async fn restore_if_lost(
    ids: &Ids,
    local: &dyn Local,
    boot: &std::sync::Mutex<Option<String>>,
) -> Result<(), Unavailable> {
    let now = ids.boot().await?;
    let seen = boot.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if seen.is_none_or(|s| s == now) {
        *boot.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
        return Ok(());
    }
    let claims = local.claims();
    tracing::warn!(
        ids = claims.len(),
        "Redis lost its data: this node's ids and rooms are written again"
    );
    ids.restoring().await?;
    ids.list_node().await?;
    for (id, generation) in claims {
        let rooms = local.rooms_of_now(&id);
        ids.restore(&id, generation, &rooms).await?;
    }
    // Only now: a restore cut short is done again on the next try.
    *boot.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
    Ok(())
}
