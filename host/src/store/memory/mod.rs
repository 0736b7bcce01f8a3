//! The recovery stores in memory: the embedded default. Everything here is
//! lost when the process ends (docs/PROTOCOL.md, "What a server restart
//! loses"); memory is bounded by the limits each store is given, and room
//! history and stored notices have a byte cap each, counted as memory
//! holds them (keys, frames, per-entry overhead).
//!
//! - [`bus`]      — the one-server bus: straight to the registry's dispatcher
//! - [`history`]  — every room's log
//! - [`log`]      — one room's kept messages, offsets, epoch
//! - [`notices`]  — stored notices per id
//! - [`sessions`] — held ids

pub mod bus;
pub mod history;
pub mod log;
pub mod notices;
pub mod sessions;

pub use bus::{MemoryBus, MemoryLinker};
pub use history::MemoryHistory;
pub use notices::MemoryNotices;
pub use sessions::MemorySessions;
