//! The cluster's bus: a kept room message is numbered, kept and published
//! in one script, then handed to this node's dispatcher at once (the other
//! nodes get it from the room's channel); transient room frames and
//! broadcasts are published on their channels by one task, in the order
//! they were handed on, at most once.
//!
//! An id is claimed across the cluster (one connection per id; its rooms
//! go with it); a send to an id or a close reaches the node that has it,
//! and a notice for an id no node has is stored in Redis. Presence and
//! the policy's state are linked here too (`presence`, `state`).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::conn::Writer;
use super::deaths::Deaths;
use super::history::RedisHistory;
use super::ids::{Ids, Route, Routed};
use super::keys::Keys;
use super::logged::Logged;
use super::notices::RedisNotices;
use super::parked::Parked;
use super::payload;
use super::presence::{ClusterPresence, Copy};
use super::replica::Replica;
use super::rooms::Rooms;
use super::state::ClusterState;
use super::subscriber::Subscriber;
use super::versions::RedisVersions;
use crate::store::bus::{Bus, Claim, Cluster, HandOver, Local, Resumed, SendError, Sent};
use crate::store::history::History;
use crate::store::json;
use crate::store::memory::MemoryBus;
use crate::store::notices::Notices;
use crate::store::notices::StoredLimits;
use crate::store::state::StateLimits;
use crate::store::{Linked, Linker, Unavailable};

/// How long a resume waits for the node that held the id to hand it
/// over (two round trips through Redis, and that node's reader).
const HANDOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The longest a request's answer waits for the frames it caused to
/// leave for the other nodes (a Redis that does not answer).
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a node starting waits to have heard the cluster before it
/// serves anyway (degraded).
const SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Tries of a release Redis did not answer (about a minute with the waits).
const RELEASE_TRIES: usize = 16;

/// Frames waiting to be published (transient room frames, broadcasts):
/// past this they are dropped, as a lost connection would drop them.
const OUTGOING: usize = 16_384;

/// The cluster's bus.
#[derive(Debug)]
pub struct RedisBus {
    /// Sends and closes, on this node.
    memory: MemoryBus,
    /// Who has each id, and its rooms.
    ids: Ids,
    /// The write connection (its state, for health).
    writer: Arc<Writer>,
    local: Arc<dyn Local>,
    rooms: Rooms,
    subscriber: Arc<Subscriber>,
    keys: Keys,
    node: String,
    /// Whether room messages are kept at all.
    keeping: bool,
    /// To the publishing task.
    outgoing: Out,
    /// The logged notices queued here, until they are written.
    logged: Arc<Logged>,
    /// Frames for ids being claimed here, until they register.
    parked: Arc<Parked>,
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(
        &self,
        room: &str,
        frame: String,
        except: Option<&str>,
    ) -> Result<Option<u64>, Unavailable> {
        if !self.keeping || !json::is_object(&frame) {
            self.transient(room, Message::text(frame), except);
            return Ok(None);
        }
        let kept = self.rooms.publish(room, &frame, except).await?;
        self.subscriber
            .kept(room, &kept.epoch, kept.offset, frame, except);
        Ok(Some(kept.offset))
    }

    fn transient(&self, room: &str, msg: Message, except: Option<&str>) {
        let payload = match &msg {
            Message::Text(text) => Some(payload::transient(&self.node, except, text).into_bytes()),
            Message::Binary(bytes) => Some(payload::transient_binary(&self.node, except, bytes)),
            _ => None,
        };
        if let Some(payload) = payload {
            self.queue(self.keys.room(room).channel, payload);
        }
        let _ = self.local.room(room, None, msg, except);
    }

    fn broadcast(&self, msg: Message, except: Option<&str>) {
        let payload = match &msg {
            Message::Text(text) => Some(payload::all(&self.node, except, text).into_bytes()),
            Message::Binary(bytes) => Some(payload::all_binary(&self.node, except, bytes)),
            _ => None,
        };
        if let Some(payload) = payload {
            self.queue(self.keys.all(), payload);
        }
        self.local.broadcast(&msg, except);
    }

    /// To the node that has the id, decided in one script with whether
    /// that node hears, and kept in the id's notice log until it is
    /// written to the socket, wherever it is (a node that dies does not
    /// take it along); else as on one server (stored, or refused).
    async fn send(
        &self,
        from: &str,
        to: &str,
        msg: Message,
        store: bool,
    ) -> Result<Sent, SendError> {
        let Some(payload) = payload::frame_to(to, &msg) else {
            return self.memory.send(from, to, msg, store).await;
        };
        let Routed { route, entry } = self
            .ids
            .route(to, &payload, true)
            .await
            .map_err(|e| SendError::Unavailable(e.into()))?;
        match route {
            Route::Sent => return Ok(Sent::Queued),
            Route::Held => return Ok(Sent::Held),
            Route::Here | Route::Off => {}
        }
        let msg = match self.parked.park(to, (msg, entry.clone())) {
            // Claimed here, not registered yet: it goes to the connection
            // when it does, logged until written as any other.
            Ok(()) => return Ok(Sent::Queued),
            Err((msg, _)) => msg,
        };
        let sent = self.memory.send(from, to, msg, store).await;
        if let Some(entry) = entry {
            match sent {
                Ok(Sent::Queued | Sent::Held) => {
                    self.logged.queued(to, entry, self.local.progress(to))
                }
                // Gone meanwhile: the log must not give it again.
                _ => {
                    if let Err(e) = self.ids.unlog(&[(to.to_owned(), vec![entry])]).await {
                        tracing::debug!(id = to, error = %e, "a notice not queued stays in its log");
                    }
                }
            }
        }
        sent
    }

    fn close(&self, id: &str, code: u16, reason: &str) -> bool {
        if self.memory.close(id, code, reason) {
            return true;
        }
        let payload = payload::close(id, code, reason);
        if !self.send_out(Outgoing::ToId(id.to_owned(), payload)) {
            tracing::warn!(id, "a close for another node was dropped: too many waiting");
        }
        false
    }

    /// Asked of Redis only for a session this node does not hold: a read
    /// first (most such sessions are simply over), then the claim, which
    /// checks again in the same step as it moves the id.
    async fn resume(
        &self,
        id: &str,
        session: &str,
        own: Option<&str>,
    ) -> Result<Option<Resumed>, Unavailable> {
        if !self.ids.held_elsewhere(id, session).await? {
            return Ok(None);
        }
        let waiting = self.subscriber.expect_handover(id);
        self.parked.open(id);
        let claimed = match self.ids.claim(id, Some(session), own).await {
            Ok(claimed) => claimed,
            Err(e) => {
                self.subscriber.forget_handover(id);
                self.parked.close(id);
                return Err(e.into());
            }
        };
        let mut claim = claimed.claim;
        // A dead node hands nothing over: no wait for it.
        let handover = if claimed.resumed && !claimed.dead {
            tokio::time::timeout(HANDOVER_WAIT, waiting)
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
        } else {
            None
        };
        match &handover {
            Some(h) => {
                // The handover carries what the log kept, in its place.
                claim.unsent.clear();
                self.logged.arrived(id, h.logged.clone());
            }
            None => {
                self.subscriber.forget_handover(id);
                tracing::info!(
                    id,
                    dead = claimed.dead,
                    unsent = claim.unsent.len(),
                    "not resumed: the node that held it did not hand it over"
                );
                self.logged.arrived(id, claimed.entries);
            }
        }
        Ok(Some(Resumed { claim, handover }))
    }

    /// The first try is waited for (a drained client is told to go only
    /// once its hold is marked, so the node it comes back on finds it);
    /// tried again in the background while Redis does not answer (a hold
    /// often starts just as Redis went away): the mark is fenced by the
    /// generation, so a late one after a resume elsewhere writes nothing.
    async fn holding(&self, id: &str, generation: u64, session: &str) {
        match self.ids.hold(id, generation, session).await {
            Ok(_) => return,
            Err(e) => tracing::debug!(id, error = %e, "a hold not marked in Redis yet"),
        }
        let (ids, id, session) = (self.ids.clone(), id.to_owned(), session.to_owned());
        tokio::spawn(async move {
            let mut wait = std::time::Duration::from_millis(100);
            for _ in 0..8 {
                match ids.hold(&id, generation, &session).await {
                    Ok(_) => return,
                    Err(e) => tracing::debug!(id, error = %e, "a hold not marked in Redis yet"),
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
            }
            tracing::warn!(
                id,
                "a hold not marked in Redis: it resumes only on this node"
            );
        });
    }

    /// A claim of an id held on another node ends that hold first, as on
    /// one server: the new connection is welcomed once its rooms heard
    /// `left` (or after [`HANDOVER_WAIT`]).
    async fn claim(&self, id: &str, session: Option<&str>) -> Result<Claim, Unavailable> {
        let ended = self.subscriber.expect_handover(id);
        self.parked.open(id);
        let claimed = match self.ids.claim(id, None, session).await {
            Ok(claimed) => claimed,
            Err(e) => {
                self.subscriber.forget_handover(id);
                self.parked.close(id);
                return Err(e.into());
            }
        };
        if claimed.ending && tokio::time::timeout(HANDOVER_WAIT, ended).await.is_err() {
            tracing::info!(id, "the node that held it did not say its hold ended");
        }
        self.subscriber.forget_handover(id);
        self.logged.arrived(id, claimed.entries);
        Ok(claimed.claim)
    }

    async fn member(
        &self,
        id: &str,
        generation: u64,
        joined: bool,
        room: &str,
    ) -> Result<(), Unavailable> {
        if !self.ids.member(id, generation, joined, room).await? {
            tracing::debug!(
                id,
                generation,
                room,
                "membership of a replaced connection not kept"
            );
        }
        Ok(())
    }

    /// Tried again in the background while Redis does not answer: until
    /// it is done Redis says this node has the id, and a notice to it from
    /// another node would be acked here and dropped. Fenced by node and
    /// generation, so a late release after a newer claim writes nothing.
    async fn released(&self, id: &str, generation: u64) {
        let Err(e) = self.ids.release(id, generation).await else {
            return;
        };
        tracing::debug!(id, error = %e, "an id offline here not released in Redis yet");
        let (ids, id) = (self.ids.clone(), id.to_owned());
        tokio::spawn(async move {
            let mut wait = std::time::Duration::from_millis(100);
            for _ in 0..RELEASE_TRIES {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
                match ids.release(&id, generation).await {
                    Ok(_) => return,
                    Err(e) => {
                        tracing::debug!(id, error = %e, "an id offline here not released in Redis yet")
                    }
                }
            }
            // Its rooms set stays, and Redis says this node has it until
            // its next claim: said loudly (docs/CLUSTER.md).
            tracing::warn!(id, "an id offline here could not be released in Redis");
        });
    }

    /// The boot key, read (set, on a new cluster) before the node
    /// serves: until it exists a notice to an id no node has is refused
    /// `unavailable` (Redis may have lost its data), never taken to be
    /// offline. Without Redis now, the subscriber's first resync does it.
    async fn ready(&self) {
        if let Err(e) = self.subscriber.saw_boot().await {
            tracing::warn!(error = %e, "the cluster's boot key not read at start");
        }
        // Its channel heard and the others' presence known before the
        // first client: a notice routed here would otherwise find no
        // listener, and `members` miss the other nodes'.
        if tokio::time::timeout(SYNC_WAIT, self.subscriber.synced())
            .await
            .is_err()
        {
            tracing::warn!(
                "serving before the other nodes' presence was read (Redis is slow or away)"
            );
        }
    }

    fn is_shared(&self) -> bool {
        true
    }

    /// A marker published on this node's own channel and awaited: Redis
    /// sends one connection's messages in the order they were published,
    /// whatever their channels, and the subscriber hands each on as it
    /// reads it.
    async fn sync(&self) {
        let (token, heard) = self.subscriber.expect_sync();
        let marker = payload::sync(token);
        if let Err(e) = self.ids.tell(&self.node, &marker).await {
            tracing::debug!(error = %e, "not synced with the cluster");
            self.subscriber.forget_sync(token);
            return;
        }
        if tokio::time::timeout(SETTLE_WAIT, heard).await.is_err() {
            self.subscriber.forget_sync(token);
        }
    }

    fn handed(&self) -> u64 {
        *self
            .outgoing
            .handed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    async fn settle(&self, upto: u64) {
        let mut sent = self.outgoing.sent.subscribe();
        // Bounded: a Redis that does not answer delays no answer for long.
        let _ = tokio::time::timeout(SETTLE_WAIT, sent.wait_for(|s| *s >= upto)).await;
    }

    fn unpark(&self, id: &str) -> Vec<Message> {
        let (frames, entries): (Vec<Message>, Vec<Option<String>>) =
            self.parked.close(id).into_iter().unzip();
        self.logged
            .arrived(id, entries.into_iter().flatten().collect());
        frames
    }

    fn cluster(&self) -> Cluster {
        if self.writer.is_up() && self.subscriber.is_connected() {
            Cluster::Ok
        } else {
            Cluster::Degraded
        }
    }

    fn figures(&self) -> Option<crate::metrics::scrape::ClusterFigures> {
        Some(
            self.writer
                .figures
                .read(self.cluster() == Cluster::Degraded),
        )
    }
}

impl RedisBus {
    fn queue(&self, channel: String, payload: Vec<u8>) {
        if !self.send_out(Outgoing::Publish(channel, payload)) {
            tracing::warn!("a frame for the other nodes was dropped: too many waiting");
        }
    }

    /// Hand `out` to the publishing task, numbered; false if too many
    /// wait.
    fn send_out(&self, out: Outgoing) -> bool {
        let mut handed = self
            .outgoing
            .handed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Numbered under the lock: the numbers are the queue's order.
        if self.outgoing.queue.try_send((*handed + 1, out)).is_err() {
            return false;
        }
        *handed += 1;
        true
    }
}

/// The publishing task's queue, numbered: what was handed on so far, and
/// how far it is sent.
#[derive(Debug)]
struct Out {
    queue: mpsc::Sender<(u64, Outgoing)>,
    /// The number of the last one queued.
    handed: std::sync::Mutex<u64>,
    /// The number of the last one sent (or failed).
    sent: Arc<tokio::sync::watch::Sender<u64>>,
}

/// What the publishing task sends, in the order it was handed on.
#[derive(Debug)]
enum Outgoing {
    /// On a channel: (channel, payload).
    Publish(String, Vec<u8>),
    /// To the node that has an id: (id, payload).
    ToId(String, Vec<u8>),
}

/// Publishes what the bus queued, one at a time, in order.
async fn publish_outgoing(
    writer: Arc<Writer>,
    ids: Ids,
    mut queue: mpsc::Receiver<(u64, Outgoing)>,
    sent_upto: Arc<tokio::sync::watch::Sender<u64>>,
) {
    while let Some((n, next)) = queue.recv().await {
        let sent = match next {
            Outgoing::Publish(channel, payload) => publish(&writer, &channel, &payload).await,
            Outgoing::ToId(id, payload) => ids.route(&id, &payload, false).await.map(|_| ()),
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "a frame for the other nodes was dropped");
        }
        sent_upto.send_replace(n);
    }
}

async fn publish(writer: &Writer, channel: &str, payload: &[u8]) -> Result<(), super::Unavailable> {
    let _: i64 = writer
        .query(redis::cmd("PUBLISH").arg(channel).arg(payload))
        .await?;
    writer.figures.sent();
    Ok(())
}

/// Keep the epoch of every room with a member here, a third of its
/// lifetime apart, until the runtime stops: a quiet room's meta hash would
/// otherwise expire under its members and its next message start a new
/// epoch (on one server the epoch lasts while the room has members).
async fn keep_epochs(rooms: Rooms, subscriber: Arc<Subscriber>) {
    let every = (rooms.ttl() / 3).max(std::time::Duration::from_millis(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = rooms.keep_epochs(&subscriber.watched_rooms()).await {
            tracing::debug!(error = %e, "rooms' epochs not kept now; tried again soon");
        }
    }
}

/// Links a node's connections to the cluster.
#[derive(Debug)]
pub struct RedisLinker {
    pub(super) writer: Arc<Writer>,
    pub(super) keys: Keys,
    pub(super) node: String,
    pub(super) rooms: Rooms,
    pub(super) subscriber: Arc<Subscriber>,
    pub(super) ids: Ids,
    pub(super) copy: Arc<Copy>,
    pub(super) deaths: Deaths,
    pub(super) keeping: bool,
    pub(super) logged: Arc<Logged>,
    pub(super) parked: Arc<Parked>,
}

impl Linker for RedisLinker {
    fn link(
        &self,
        local: Arc<dyn Local>,
        handing: Arc<dyn HandOver>,
        history: Arc<dyn History>,
        notices: Arc<dyn Notices>,
        state: StateLimits,
    ) -> Linked {
        let cluster_state =
            ClusterState::start(self.writer.clone(), self.keys.clone(), &self.node, state);
        let (heard, hearing) = mpsc::channel(super::versions::HEARD);
        self.subscriber.hear_policy(heard);
        let versions = RedisVersions::new(self.writer.clone(), self.keys.clone(), hearing);
        self.subscriber
            .start(local.clone(), handing.clone(), cluster_state.clone());
        tokio::spawn(self.deaths.clone().watch(handing));
        let (queue, outgoing) = mpsc::channel(OUTGOING);
        let sent = Arc::new(tokio::sync::watch::Sender::new(0));
        tokio::spawn(publish_outgoing(
            self.writer.clone(),
            self.ids.clone(),
            outgoing,
            sent.clone(),
        ));
        let outgoing = Out {
            queue,
            handed: std::sync::Mutex::new(0),
            sent,
        };
        tokio::spawn(super::heartbeat::beat(
            self.writer.clone(),
            self.keys.clone(),
            self.node.clone(),
            self.subscriber.clone(),
        ));
        tokio::spawn(keep_epochs(self.rooms.clone(), self.subscriber.clone()));
        tokio::spawn(self.logged.clone().trim(local.clone(), self.ids.clone()));
        let bus = RedisBus {
            writer: self.writer.clone(),
            memory: MemoryBus::new(local.clone(), history, notices),
            ids: self.ids.clone(),
            local: local.clone(),
            rooms: self.rooms.clone(),
            subscriber: self.subscriber.clone(),
            keys: self.keys.clone(),
            node: self.node.clone(),
            keeping: self.keeping,
            outgoing,
            logged: self.logged.clone(),
            parked: self.parked.clone(),
        };
        Linked {
            presence: Arc::new(ClusterPresence {
                local,
                copy: self.copy.clone(),
            }),
            bus: Arc::new(bus),
            state: cluster_state,
            versions: Some(Arc::new(versions)),
        }
    }
}

/// What [`open`] makes.
#[derive(Debug)]
pub struct Opened {
    /// Room history, kept in Redis.
    pub history: Arc<dyn History>,
    /// Stored notices, kept in Redis.
    pub notices: Arc<dyn Notices>,
    /// Links the node's connections to the cluster.
    pub link: Arc<dyn Linker>,
}

/// Cluster mode's history and linker over the Redis at `url` (the secret
/// URL), keys under `prefix`, this node being `node`. Nothing is
/// connected yet: a Redis down at start is a cluster degraded, not a node
/// that cannot start.
pub fn open(
    url: &str,
    prefix: &str,
    node: &str,
    limits: HistoryLimits,
    stored: StoredLimits,
    window: std::time::Duration,
    timeout: std::time::Duration,
) -> Result<Opened, Unavailable> {
    let writer = Arc::new(Writer::new(url, timeout)?);
    let keys = Keys::new(prefix);
    let rooms = Rooms::new(writer.clone(), keys.clone(), node, limits.size, limits.ttl);
    let replica = Arc::new(Replica::new(limits));
    let ids = Ids::new(writer.clone(), keys.clone(), node, window);
    let copy = Arc::new(Copy::new(node));
    let logged = Arc::new(Logged::default());
    let parked = Arc::new(Parked::default());
    let subscriber = Subscriber::new(
        url,
        timeout,
        keys.clone(),
        node,
        replica.clone(),
        rooms.clone(),
        ids.clone(),
        copy.clone(),
        logged.clone(),
        parked.clone(),
    )?;
    let history = RedisHistory {
        rooms: rooms.clone(),
        replica,
        subscriber: subscriber.clone(),
        limits,
    };
    let notices = RedisNotices::new(writer.clone(), keys.clone(), stored);
    let deaths = Deaths {
        writer: writer.clone(),
        keys: keys.clone(),
        node: node.to_owned(),
        window,
    };
    let linker = RedisLinker {
        deaths,
        writer,
        keys,
        node: node.to_owned(),
        rooms,
        subscriber,
        ids,
        copy,
        keeping: limits.is_on(),
        logged,
        parked,
    };
    Ok(Opened {
        notices: Arc::new(notices),
        history: Arc::new(history),
        link: Arc::new(linker),
    })
}

use crate::store::history::HistoryLimits;
