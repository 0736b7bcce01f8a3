//! Room history, as the chat layer asks for it: the last messages of each
//! room, numbered, for a client that dropped to recover exactly what it
//! missed (`join` with `since`) and for the `history` request.
//!
//! Each kept message gets the room's next `offset` (1, 2, 3, … with no
//! gaps: a message the policy marks transient is not kept and takes no
//! offset). Each room has an `epoch` that changes whenever its history is
//! lost (a restart, the room's history expiring entirely), so a client
//! holding an offset of the old one learns that it cannot recover instead
//! of being given the wrong messages. Recovery is all or nothing.
//!
//! The store, not its caller, assigns offsets and epochs: several servers
//! sharing one store (a cluster) then number a room's messages once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// How much history is kept, and how much a recovery may replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Messages kept per room; 0 turns history off.
    pub size: usize,
    /// How long a message is kept.
    pub ttl: Duration,
    /// The most messages one recovery replays; a client that missed more
    /// is told it cannot recover.
    pub max_recover: usize,
    /// Bytes of all rooms' kept messages together.
    pub max_total_bytes: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            size: 100,
            ttl: Duration::from_secs(300),
            max_recover: 300,
            max_total_bytes: 64 << 20,
        }
    }
}

impl HistoryLimits {
    /// Whether any history is kept.
    pub fn is_on(&self) -> bool {
        self.size > 0 && !self.ttl.is_zero()
    }
}

/// A kept frame's text: the very buffer the members' queues got (shared,
/// not copied).
pub type Text = tokio_tungstenite::tungstenite::Utf8Bytes;

/// Why a recovery replays nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unrecoverable {
    /// The epoch is not the room's: its history was lost or restarted since.
    #[error("the room's history was restarted (another epoch)")]
    Epoch,
    /// The history no longer reaches back to the message after `since`
    /// (pushed out by newer ones, or too old).
    #[error("the room's history no longer reaches back that far")]
    Gone,
    /// More messages were missed than one recovery replays.
    #[error("more messages were missed than a recovery replays")]
    TooMany,
    /// The offset is past the room's newest: not one this room gave.
    #[error("the offset is past the room's newest message")]
    Ahead,
    /// The server keeps no history.
    #[error("the server keeps no room history")]
    Off,
}

/// A page of kept messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The room's epoch.
    pub epoch: String,
    /// The messages' offsets, oldest first.
    pub offsets: Vec<u64>,
    /// The messages (room frames with their `offset`), oldest first.
    pub messages: Vec<String>,
}

/// What a join found in the room's history.
#[derive(Debug)]
pub struct Recovery {
    /// The room's epoch.
    pub epoch: Arc<str>,
    /// Its newest offset (0: nothing kept yet).
    pub top: u64,
    /// With `since`: the messages missed, oldest first, or why they cannot
    /// be replayed. `None` without `since`.
    pub missed: Option<Result<Vec<Text>, Unrecoverable>>,
}

/// What a store holds now (for logs and the operator).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Rooms with a history.
    pub rooms: usize,
    /// Messages kept, every room's.
    pub messages: usize,
    /// Bytes of every kept message.
    pub bytes: usize,
}

/// A message as `publish` kept it.
#[derive(Debug, Clone)]
pub struct Published {
    /// The room's epoch (`""` when not kept).
    pub epoch: Arc<str>,
    /// Its offset (`None`: not kept).
    pub offset: Option<u64>,
    /// Its text, with the offset written in when it was kept: the buffer
    /// the members' queues get (shared, not copied).
    pub text: Text,
}

/// Every room's history.
///
/// The store numbers and keeps; it delivers nothing. Ordering is the
/// dispatcher's (`chat::dispatch`): it hands a room's kept messages to
/// the room's members in offset order, and a join asks [`History::recover`]
/// for what it missed up to the offset the dispatcher has delivered, with
/// the room held, so a joiner gets each message either in its replay or
/// live, never both, never neither.
///
/// `recover`, `read` and `top` run where nothing can wait (under the
/// dispatcher's hold of a room, or inside a synchronous sandboxed call):
/// they are not `async`. A store kept elsewhere (a cluster's Redis)
/// answers them from the copy of recent history it keeps for rooms with
/// members on this server, which it needs to fan out anyway.
#[async_trait]
pub trait History: std::fmt::Debug + Send + Sync {
    /// The limits in force.
    fn limits(&self) -> &HistoryLimits;

    /// Keep `frame` as `room`'s next message (its `"offset"` added). A
    /// frame that is not a JSON object, or any frame while history is off,
    /// is not kept: it comes back unchanged, with no offset.
    async fn publish(&self, room: &str, frame: String) -> Published;

    /// What a join of `room` needs: its epoch, and with `since` = (epoch,
    /// offset) what was missed after it, up to offset `upto` (the newest
    /// this server has delivered to the room's members; `None`: the
    /// room's newest). The answer's `top` is `upto` when given. A `since`
    /// past `upto` but not past the room's newest missed nothing here.
    fn recover(&self, room: &str, since: Option<(&str, u64)>, upto: Option<u64>) -> Recovery;

    /// Get ready for a join of `room` (with `since`, a recovery): a store
    /// kept elsewhere starts following the room and copies what
    /// [`History::recover`] will need. Nothing to do in memory.
    async fn prepare(
        &self,
        _room: &str,
        _since: Option<(&str, u64)>,
    ) -> Result<(), crate::store::Unavailable> {
        Ok(())
    }

    /// At most `limit` of the newest kept messages of `room` before
    /// `before`, oldest first.
    fn read(&self, room: &str, before: Option<u64>, limit: usize) -> Page;

    /// `room`'s epoch and newest offset.
    fn top(&self, room: &str) -> (String, u64);

    /// Drop expired messages, and the history of rooms `in_use` says are
    /// gone once nothing in it is left (such a room that comes back gets a
    /// new epoch).
    async fn sweep(&self, in_use: &(dyn for<'r> Fn(&'r str) -> bool + Sync));

    /// What is held now.
    fn usage(&self) -> Usage;
}
