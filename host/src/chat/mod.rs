//! The chat itself: who is where, and carrying out what the rules decide.
//!
//! - [`registry`]  — who is online, who is in which room
//! - [`dispatch`]  — what the bus hands this server, to its connections (a room's in offset order)
//! - [`lifecycle`] — connect → events → disconnect, for a live session and a replay alike
//! - [`decide`]    — asking the rules about an event (records it first)
//! - [`record`]    — opt-in recording of the events the rules see (JSON lines, for replay)
//! - [`actions`]   — carrying out a policy's decisions (and the host's limits on them)
//! - [`presence`]  — the registry as the in-memory presence store
//! - [`rate`]      — token buckets for message and broadcast rates
//! - [`replies`]   — frames the host writes itself (its errors, `left`)
//! - [`outbound`]  — a connection's bounded outbound queue and close signal; the server-wide byte budget
//! - [`ids`]       — what an id may be (the URL's, a notice's `to`)
//! - [`encode`]    — frames as bytes (headers, close frames), and the socket the fan-out writes to
//! - `native`      — the default rules compiled in (feature `native-rules`, benchmarks)

pub mod actions;
pub mod decide;
pub mod dispatch;
pub mod encode;
pub mod ids;
pub mod lifecycle;
#[cfg(feature = "native-rules")]
pub mod native;
pub mod outbound;
pub mod presence;
pub mod rate;
pub mod record;
pub mod registry;
pub mod replies;

use crate::store::bus::Bus;
use crate::store::history::History;
use crate::store::notices::Notices;

/// What carrying out a decision touches: the registry of ids and rooms,
/// the rooms' history, the stored notices and the bus (borrowed).
#[derive(Debug, Clone, Copy)]
pub struct Chat<'a> {
    /// Who is online, who is in which room.
    pub registry: &'a registry::Registry,
    /// Every room's kept messages.
    pub history: &'a dyn History,
    /// Notices kept for offline ids.
    pub notices: &'a dyn Notices,
    /// Everything that crosses connections.
    pub bus: &'a dyn Bus,
}
