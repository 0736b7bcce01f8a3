//! The recovery stores in memory: the embedded default. Everything here is
//! lost when the process ends (docs/PROTOCOL.md, "What a server restart
//! loses"); memory is bounded by the limits each store is given, and room
//! history and stored notices have a byte cap each, counted as memory
//! holds them (keys, frames, per-entry overhead).
//!
//! - [`history`]  — every room's log, and the lock that orders it with live traffic
//! - [`log`]      — one room's kept messages, offsets, epoch
//! - [`notices`]  — stored notices per id
//! - [`sessions`] — held ids

pub mod history;
pub mod log;
pub mod notices;
pub mod sessions;

pub use history::MemoryHistory;
pub use notices::MemoryNotices;
pub use sessions::MemorySessions;
