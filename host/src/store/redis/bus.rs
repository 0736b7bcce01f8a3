//! The cluster's bus: a kept room message is numbered, kept and published
//! in one script, then handed to this node's dispatcher at once (the other
//! nodes get it from the room's channel); transient room frames and
//! broadcasts are published on their channels by one task, in the order
//! they were handed on, at most once.
//!
//! Not across nodes yet (docs/CLUSTER.md, "Status"): sends to an id,
//! closes and claims go to this node's connections only, and presence and
//! the policy's state are this node's.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::conn::Writer;
use super::history::RedisHistory;
use super::keys::Keys;
use super::replica::Replica;
use super::rooms::Rooms;
use super::subscriber::Subscriber;
use crate::store::bus::{Bus, Claim, Cluster, Local, SendError, Sent};
use crate::store::history::History;
use crate::store::json;
use crate::store::memory::MemoryBus;
use crate::store::notices::Notices;
use crate::store::state::{StateLimits, StateStore};
use crate::store::{Linked, Linker, Unavailable};

/// Frames waiting to be published (transient room frames, broadcasts):
/// past this they are dropped, as a lost connection would drop them.
const OUTGOING: usize = 16_384;

/// The cluster's bus.
#[derive(Debug)]
pub struct RedisBus {
    /// Sends, closes and claims, on this node.
    memory: MemoryBus,
    /// The write connection (its state, for health).
    writer: Arc<Writer>,
    local: Arc<dyn Local>,
    rooms: Rooms,
    subscriber: Arc<Subscriber>,
    keys: Keys,
    node: String,
    /// Whether room messages are kept at all.
    keeping: bool,
    /// (channel, payload) to the publishing task.
    outgoing: mpsc::Sender<(String, String)>,
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
        if let Message::Text(text) = &msg {
            let payload = format!("{}\n\n0\n{}\n{}", self.node, except.unwrap_or(""), text);
            self.queue(self.keys.room(room).channel, payload);
        }
        let _ = self.local.room(room, None, msg, except);
    }

    fn broadcast(&self, msg: Message, except: Option<&str>) {
        if let Message::Text(text) = &msg {
            let payload = format!("{}\n{}\n{}", self.node, except.unwrap_or(""), text);
            self.queue(self.keys.all(), payload);
        }
        self.local.broadcast(&msg, except);
    }

    async fn send(
        &self,
        from: &str,
        to: &str,
        msg: Message,
        store: bool,
    ) -> Result<Sent, SendError> {
        self.memory.send(from, to, msg, store).await
    }

    fn close(&self, id: &str, code: u16, reason: &str) -> bool {
        self.memory.close(id, code, reason)
    }

    async fn claim(&self, id: &str) -> Claim {
        self.memory.claim(id).await
    }

    fn cluster(&self) -> Cluster {
        if self.writer.is_up() && self.subscriber.is_connected() {
            Cluster::Ok
        } else {
            Cluster::Degraded
        }
    }
}

impl RedisBus {
    fn queue(&self, channel: String, payload: String) {
        if self.outgoing.try_send((channel, payload)).is_err() {
            tracing::warn!("a frame for the other nodes was dropped: too many waiting");
        }
    }
}

/// Publishes what the bus queued, one at a time, in order.
async fn publish_outgoing(writer: Arc<Writer>, mut queue: mpsc::Receiver<(String, String)>) {
    while let Some((channel, payload)) = queue.recv().await {
        let mut c = match writer.conn().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "a frame for the other nodes was dropped");
                continue;
            }
        };
        let sent: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(&payload)
            .query_async(&mut c)
            .await;
        match sent {
            Ok(_) => writer.answered(),
            Err(e) => {
                let e = writer.failed(&e);
                tracing::debug!(error = %e, "a frame for the other nodes was dropped");
            }
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
    pub(super) keeping: bool,
}

impl Linker for RedisLinker {
    fn link(
        &self,
        local: Arc<dyn Local>,
        history: Arc<dyn History>,
        notices: Arc<dyn Notices>,
        state: StateLimits,
    ) -> Linked {
        self.subscriber.start(local.clone());
        let (outgoing, queue) = mpsc::channel(OUTGOING);
        tokio::spawn(publish_outgoing(self.writer.clone(), queue));
        tokio::spawn(super::heartbeat::beat(
            self.writer.clone(),
            self.keys.node(&self.node),
        ));
        let bus = RedisBus {
            writer: self.writer.clone(),
            memory: MemoryBus::new(local.clone(), history, notices),
            local: local.clone(),
            rooms: self.rooms.clone(),
            subscriber: self.subscriber.clone(),
            keys: self.keys.clone(),
            node: self.node.clone(),
            keeping: self.keeping,
            outgoing,
        };
        Linked {
            presence: local,
            bus: Arc::new(bus),
            state: Arc::new(StateStore::new(state)),
        }
    }
}

/// What [`open`] makes.
#[derive(Debug)]
pub struct Opened {
    /// Room history, kept in Redis.
    pub history: Arc<dyn History>,
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
    timeout: std::time::Duration,
) -> Result<Opened, Unavailable> {
    let writer = Arc::new(Writer::new(url, timeout)?);
    let keys = Keys::new(prefix);
    let rooms = Rooms::new(writer.clone(), keys.clone(), node, limits.size, limits.ttl);
    let replica = Arc::new(Replica::new(limits));
    let subscriber = Subscriber::new(
        url,
        timeout,
        keys.clone(),
        node,
        replica.clone(),
        rooms.clone(),
    )?;
    let history = RedisHistory {
        rooms: rooms.clone(),
        replica,
        subscriber: subscriber.clone(),
        limits,
    };
    let linker = RedisLinker {
        writer,
        keys,
        node: node.to_owned(),
        rooms,
        subscriber,
        keeping: limits.is_on(),
    };
    Ok(Opened {
        history: Arc::new(history),
        link: Arc::new(linker),
    })
}

use crate::store::history::HistoryLimits;
