//! The bus: everything that crosses connections — a room message, a
//! broadcast, a frame to one id, a close, an id's claim — as the chat
//! layer asks for it. On one server it is the registry path
//! ([`crate::store::memory::bus`]); in a cluster it carries traffic to the
//! other servers too. Whatever reaches this server goes to [`Local`]: the
//! server's own connections, fed in order by one dispatcher
//! (`chat::dispatch` implements it), so local and remote messages of a
//! room reach local members in offset order.

use async_trait::async_trait;
use tokio_tungstenite::tungstenite::Message;

use crate::store::Unavailable;
use crate::store::notices::{Mail, StoreError};
use crate::store::presence::Presence;

/// What became of a frame sent to one id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Queued to its connection.
    Queued,
    /// Queued for a held id, to be delivered when it resumes.
    Held,
    /// Kept for an offline id (a stored notice).
    Stored,
    /// Not delivered: offline (and not stored), or its queue could not
    /// take it.
    Refused,
}

/// Why a send to an id was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Storing it would pass one of the sender's quotas (its message says
    /// which): nothing was stored, nothing else dropped.
    #[error(transparent)]
    Quota(StoreError),
    /// The id's place in the cluster could not be asked (its store does
    /// not answer): nothing was sent or stored.
    #[error(transparent)]
    Unavailable(Unavailable),
}

/// An id claimed by a new connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claim {
    /// The id's generation: each claim of an id gets a greater one, so a
    /// late word about an older connection (its end, its disconnect) can
    /// be told from the current one's, and of two connections the newer
    /// claim wins wherever each is.
    pub generation: u64,
    /// The rooms the id is in on another server, which the new
    /// connection keeps (empty on a server of its own: the registry keeps
    /// an id's rooms across its connections).
    pub rooms: Vec<String>,
    /// Notices acked to the id on a server that died before it wrote
    /// them to the socket, oldest first: the new connection gets them
    /// right after its welcome (empty on a server of its own).
    pub unsent: Vec<Message>,
}

/// Where a room stood for an id when another server took it over: every
/// kept message up to `offset` (of `epoch`) had been queued to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomAt {
    pub room: String,
    pub epoch: String,
    pub offset: u64,
}

/// A held id handed from one server to another that resumes it: what it
/// missed there, and where each of its rooms stood.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Handover {
    /// The frames queued to it while held, oldest first.
    pub frames: Vec<Message>,
    /// Its rooms, and how far each had reached it.
    pub rooms: Vec<RoomAt>,
    /// Where a cluster keeps the notices among `frames` until they are
    /// written (entries of the id's notice log).
    pub logged: Vec<String>,
}

/// A resume of an id held on another server.
#[derive(Debug)]
pub struct Resumed {
    /// The id's claim for the resuming connection (made: do not claim
    /// again).
    pub claim: Claim,
    /// What the other server handed over; `None` when it did not in time
    /// (the connection then starts afresh, keeping the rooms).
    pub handover: Option<Handover>,
}

/// Gives up a held id here to another server resuming it (the connection
/// layer has the holds).
#[async_trait]
pub trait HandOver: std::fmt::Debug + Send + Sync {
    /// `id` held here is resumed elsewhere with claim `generation`: end
    /// its hold without a word (no `on-disconnect`, no `left`), and hand
    /// over what it missed. `None` if it is not held here (any more).
    async fn hand_over(&self, id: &str, generation: u64) -> Option<Handover>;

    /// `id`, held here, was claimed elsewhere with `generation` by a
    /// connection that did not resume it: end the hold as its window
    /// ending would (`on-disconnect`, and its rooms hear `left`), and
    /// return once those frames left this server. False if it was not
    /// held here.
    async fn end(&self, id: &str, generation: u64) -> bool;

    /// `id` of a server that died went offline for good (its hold ended):
    /// `on-disconnect` here, once, and its `rooms` hear `left`.
    async fn departed(&self, id: &str, rooms: Vec<String>);
}

/// This server's own connections, as the bus hands them what reaches
/// them. It is also the presence they make up (a server of its own: the
/// whole presence; in a cluster: this server's part of it).
pub trait Local: Presence {
    /// Queue a message of `room` to its members here but `except`. A kept
    /// message comes with its place, (epoch, offset); the dispatcher
    /// queues a room's kept messages in offset order, whatever order they
    /// arrive in, and once each. Returns `Some(after)` when kept messages
    /// wait for ones after offset `after` that have not come (a gap the
    /// caller should fill from the room's history).
    fn room(
        &self,
        room: &str,
        kept: Option<(&str, u64)>,
        msg: Message,
        except: Option<&str>,
    ) -> Option<u64>;

    /// Kept messages of `room` up to `to` (of `epoch`) will never come
    /// (gone from its history before they could be filled): deliver what
    /// waits and go on after them. Returns where messages still wait.
    fn skip(&self, room: &str, epoch: &str, to: u64) -> Option<u64>;

    /// The newest offset of `room` delivered here, with its epoch (`None`:
    /// no member here).
    fn delivered(&self, room: &str) -> Option<(std::sync::Arc<str>, u64)>;

    /// Queue `msg` to every connection here but `except`.
    fn broadcast(&self, msg: &Message, except: Option<&str>);

    /// Queue `msg` to `id` if it is here (connected or held).
    fn deliver(&self, id: &str, msg: Message) -> Sent;

    /// Queue the notices stored for `id` (it came online while they were
    /// being stored).
    fn mail(&self, id: &str, mail: Mail);

    /// Ask `id`'s connection here to close with `code` and `reason`.
    /// False if it is not here.
    fn close(&self, id: &str, code: u16, reason: &str) -> bool;

    /// `id` was claimed elsewhere with `generation`: its connection here,
    /// if older, is replaced (4001) and leaves its rooms here without a
    /// word (the new connection keeps them); one of an older claim that
    /// registers later is refused.
    fn claimed(&self, id: &str, generation: u64);

    /// The ids connected (or held) here with a claim, and its generation.
    fn claims(&self) -> Vec<(std::sync::Arc<str>, u64)>;

    /// How far the frames of `id`'s connection here are written: (its
    /// connection's serial, frames ever queued to it, the count up to
    /// which every one is written to its socket). `None`: not here.
    fn progress(&self, _id: &str) -> Option<(u64, u64, u64)> {
        None
    }
}

/// Everything that crosses connections.
///
/// What cannot wait is not `async`: transient room frames, broadcasts and
/// closes are handed on at once, in the caller's order (a cluster queues
/// them to its one ordered connection). Kept room messages, sends to an id
/// and claims wait for their answer.
#[async_trait]
pub trait Bus: std::fmt::Debug + Send + Sync {
    /// Keep `frame` as `room`'s next message and queue it to every member
    /// but `except`. Returns its offset (`None`: not kept, e.g. history is
    /// off or it is not a JSON object; it is delivered all the same).
    /// Refused, and neither kept nor delivered, when it cannot be kept.
    async fn publish(
        &self,
        room: &str,
        frame: String,
        except: Option<&str>,
    ) -> Result<Option<u64>, Unavailable>;

    /// Queue `msg` to every member of `room` but `except`, without keeping
    /// it (transient frames, `left`).
    fn transient(&self, room: &str, msg: Message, except: Option<&str>);

    /// Queue `msg` to every online connection but `except`.
    fn broadcast(&self, msg: Message, except: Option<&str>);

    /// Queue `msg` to `to`; with `store`, keep it for `to` when it is
    /// offline, charged to `from`'s quotas.
    async fn send(
        &self,
        from: &str,
        to: &str,
        msg: Message,
        store: bool,
    ) -> Result<Sent, SendError>;

    /// Ask `id`'s connection to close with `code` and `reason`. False if
    /// it is not online here (in a cluster, it is then asked of the node
    /// that has it, if one has).
    fn close(&self, id: &str, code: u16, reason: &str) -> bool;

    /// Claim `id` for a new connection: its generation, and the rooms it
    /// keeps. Refused when the claim cannot be made known (the cluster's
    /// store does not answer): the connection is refused with it.
    /// `session` is the new connection's own (`None`: protocol 0.1.0,
    /// none): where the cluster keeps it (as a hash), a connection
    /// elsewhere may resume the id with it should this server die.
    async fn claim(&self, id: &str, session: Option<&str>) -> Result<Claim, Unavailable>;

    /// Connection `generation` of `id` joined (`joined`) or left `room`:
    /// where the cluster keeps an id's rooms, they follow. Refused when
    /// that cannot be written; the join or leave is refused with it.
    async fn member(
        &self,
        _id: &str,
        _generation: u64,
        _joined: bool,
        _room: &str,
    ) -> Result<(), Unavailable> {
        Ok(())
    }

    /// `id` (its connection of claim `generation`) went offline for good
    /// here and left its rooms.
    async fn released(&self, _id: &str, _generation: u64) {}

    /// A connection presents `session` for `id`, which is not held here:
    /// if it is held on another server with that session, claim it and
    /// take it over. `None`: not held elsewhere (nothing claimed).
    /// `own` is the resuming connection's new session.
    async fn resume(
        &self,
        _id: &str,
        _session: &str,
        _own: Option<&str>,
    ) -> Result<Option<Resumed>, Unavailable> {
        Ok(None)
    }

    /// Connection `generation` of `id` ended abruptly and is held here
    /// for a resume with `session` (a send to it elsewhere is answered
    /// `held`; a connection elsewhere presenting `session` resumes it).
    async fn holding(&self, _id: &str, _generation: u64, _session: &str) {}

    /// Whether frames reach this server from others (a cluster): what
    /// [`Bus::sync`] is for.
    fn is_shared(&self) -> bool {
        false
    }

    /// Until everything the other servers published for this one before
    /// now has been handed to its connections' queues (bounded): a
    /// `ping`'s answer waits for it, so it comes after every frame sent
    /// to the client before the ping reached the server, wherever it was
    /// sent from.
    async fn sync(&self) {}

    /// How many frames this server has handed on without waiting
    /// (transient room frames, broadcasts, closes) so far: what
    /// [`Bus::settle`] waits for.
    fn handed(&self) -> u64 {
        0
    }

    /// Until the first `upto` frames handed on without waiting have left
    /// this server for the others (bounded): an answer to a connection
    /// then comes after the frames it caused reached the cluster, as on
    /// one server they were queued before it.
    async fn settle(&self, _upto: u64) {}

    /// How the cluster behind the bus is (`/healthz`).
    fn cluster(&self) -> Cluster {
        Cluster::Off
    }

    /// End `id`'s park (its connection registers here, or gives up):
    /// the frames that came for it since its claim was sent, oldest
    /// first. Nothing on one server, where a claim and the registration
    /// are one step.
    fn unpark(&self, _id: &str) -> Vec<Message> {
        Vec::new()
    }

    /// The cluster's figures for `/metrics` (`None`: one server).
    fn figures(&self) -> Option<crate::metrics::scrape::ClusterFigures> {
        None
    }

    /// Before the server serves: what the bus must know first (a
    /// cluster's boot key, without which no id is known to be offline).
    /// Bounded in time; a failure is the bus's to retry.
    async fn ready(&self) {}
}

/// The cluster's state, as `/healthz` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cluster {
    /// No cluster: one server on its own.
    Off,
    /// The shared store answers.
    Ok,
    /// The shared store does not answer (or did not, last time it was
    /// asked): what needs it is refused with `unavailable`.
    Degraded,
}

impl Cluster {
    /// `"off"`, `"ok"` or `"degraded"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cluster::Off => "off",
            Cluster::Ok => "ok",
            Cluster::Degraded => "degraded",
        }
    }
}
