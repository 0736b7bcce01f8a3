//! What the host keeps beyond a connection: policy state, room history,
//! stored notices.
//!
//! - [`state`]   — the host-held key-value store policies keep data in
//! - [`history`] — one room's history: kept messages, offsets, epochs, recovery
//! - [`json`]    — the host's own fields added to the rules' frames (offset, stored_at)
//! - [`rooms`]   — every room's history, and the lock that orders it with live traffic
//! - [`stored`]  — notices kept for offline ids, handed over after their next welcome
//! - [`sessions`] — ids held after an abnormal end, for a resume

pub mod history;
pub mod json;
pub mod rooms;
pub mod sessions;
pub mod state;
pub mod stored;
