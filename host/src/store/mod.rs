//! What the host keeps beyond a connection: policy state, room history,
//! held sessions, stored notices, presence.
//!
//! Each recovery store is a trait (what the chat layer asks, one call per
//! operation a cluster will need, `async` where a store kept elsewhere
//! would wait) with its in-memory implementation in [`memory`], the
//! embedded default: `make run` needs nothing else. The store, not its
//! caller, assigns offsets, epochs and session tokens' meaning, so a shared
//! store (Redis) fits behind the same calls.
//!
//! - [`bus`]      — everything that crosses connections (trait; what reaches this server)
//! - [`history`]  — room history: publish, recover, read (trait and types)
//! - [`sessions`] — ids held after an abnormal end, for a resume (trait and types)
//! - [`notices`]  — notices kept for offline ids (trait and types)
//! - [`presence`] — who is in a room, who is online (trait; the registry implements it)
//! - [`memory`]   — the in-memory implementations
//! - [`redis`]    — cluster mode's, in Redis (the only place Redis is named)
//! - [`bytes`]    — one byte count for every room's history (its cap)
//! - [`state`]    — the host-held key-value store policies keep data in
//! - [`json`]     — the host's own fields added to the rules' frames (offset, stored_at)
//! - [`token`]    — random epochs and session tokens
//! - [`versions`] — a cluster's record of its policy: which component runs, on every node

use std::sync::Arc;

pub mod bus;
pub mod bytes;
pub mod history;
pub mod json;
pub mod memory;
pub mod notices;
pub mod presence;
pub mod redis;
pub mod sessions;
pub mod state;
pub mod token;
pub mod versions;

/// What a server's connections are linked to: where presence questions
/// are answered, what carries traffic between connections, and where the
/// policy's key-value state is kept.
#[derive(Debug, Clone)]
pub struct Linked {
    /// Who is where (the policy's `registry` questions).
    pub presence: Arc<dyn presence::Presence>,
    /// Everything that crosses connections.
    pub bus: Arc<dyn bus::Bus>,
    /// The policy's key-value state.
    pub state: Arc<dyn state::State>,
    /// The cluster's record of its policy (`None`: one server, whose
    /// policy is its own).
    pub versions: Option<Arc<dyn versions::Versions>>,
}

/// Makes the stores that need the server's own connections (the
/// registry, handed in as [`bus::Local`]): on one server they deliver to
/// it directly; in a cluster, to the other servers too.
pub trait Linker: std::fmt::Debug + Send + Sync {
    /// The presence and the bus over `local` (whose held ids `handing`
    /// gives up to another server that resumes them), keeping room messages in
    /// `history` and notices for offline ids in `notices`, and the
    /// policy's state within `state`'s limits.
    fn link(
        &self,
        local: Arc<dyn bus::Local>,
        handing: Arc<dyn bus::HandOver>,
        history: Arc<dyn history::History>,
        notices: Arc<dyn notices::Notices>,
        state: state::StateLimits,
    ) -> Linked;
}

/// A store kept elsewhere (a cluster's Redis) could not do what was
/// asked, and did none of it: the client is answered `unavailable`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);
