//! Cluster mode's stores, kept in Redis (`--cluster`): the only place
//! Redis is named. docs/CLUSTER.md is the design; this folder builds it a
//! piece at a time.
//!
//! - [`keys`]    — the key schema: every key under the prefix, a room's keys in one hash tag
//! - [`conn`]    — the node's one ordered write connection, its timeouts and the deadline fence
//! - [`scripts`] — the Lua scripts that write (each one atomic, each fenced by a deadline)
//! - [`ids`]     — who has an id: its generation, its node, its rooms (one connection per id)
//! - [`notices`] — stored notices: an id's box, senders' quotas, the byte cap
//! - [`parked`]  — frames for ids being claimed here, until their connection registers
//! - [`payload`] — what goes over the channels, written and read in one place
//! - [`presence`] — cluster-wide presence: this node's registry and a copy of the others'
//! - [`rooms`]   — a room's history in a stream: publish (offset and epoch with the append), read
//! - [`replica`] — this node's copy of recent history of the rooms with members here
//! - [`state`]   — the policy's key-value state: a whole copy on each node, written through in order
//! - [`subscriber`] — the subscriber connection and its one reader: pub/sub to the dispatcher, gaps filled
//! - [`history`] — the History store over the two
//! - [`bus`]     — the cluster's Bus, its Linker, and [`open`]
//! - [`deaths`]  — dead nodes found, taken over once, their ids held then let go
//! - [`versions`] — the cluster's record of its policy: components by SHA-256, active, previous, each node's
//! - [`heartbeat`] — the node's heartbeat key, which also keeps the write connection's state fresh

pub mod bus;
pub mod conn;
pub mod deaths;
pub mod heartbeat;
pub mod history;
pub mod ids;
pub mod keys;
pub mod logged;
pub mod notices;
pub mod parked;
pub mod payload;
pub mod presence;
pub mod replica;
pub mod rooms;
pub mod scripts;
pub mod state;
pub mod subscriber;
pub mod versions;

pub use bus::{Opened, open};

/// Why Redis could not do what was asked. Every write is fenced (see
/// [`conn`]): whatever the error, nothing was written, so the caller may
/// answer `unavailable` and be right.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    /// No answer within the response timeout (a paused or overloaded
    /// Redis); the fence keeps a late execution from writing.
    #[error("Redis did not answer within {0} ms")]
    Timeout(u64),
    /// The script ran after its deadline and wrote nothing.
    #[error("Redis ran the command after its deadline; nothing was written")]
    Late,
    /// No connection (refused, dropped, not yet made again).
    #[error("no connection to Redis: {0}")]
    Connection(String),
    /// Redis answered with something this build does not expect.
    #[error("unexpected answer from Redis: {0}")]
    Reply(String),
}

impl From<Unavailable> for crate::store::Unavailable {
    fn from(e: Unavailable) -> Self {
        crate::store::Unavailable(e.to_string())
    }
}
