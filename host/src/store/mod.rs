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
//! - [`history`]  — room history: publish, join with recovery, read (trait and types)
//! - [`sessions`] — ids held after an abnormal end, for a resume (trait and types)
//! - [`notices`]  — notices kept for offline ids (trait and types)
//! - [`presence`] — who is in a room, who is online (trait; the registry implements it)
//! - [`memory`]   — the in-memory implementations
//! - [`bytes`]    — one byte count for every room's history (its cap)
//! - [`state`]    — the host-held key-value store policies keep data in
//! - [`json`]     — the host's own fields added to the rules' frames (offset, stored_at)
//! - [`token`]    — random epochs and session tokens

pub mod bytes;
pub mod history;
pub mod json;
pub mod memory;
pub mod notices;
pub mod presence;
pub mod sessions;
pub mod state;
pub mod token;
