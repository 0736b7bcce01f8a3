//! What the host keeps beyond a connection: policy state, room history,
//! stored notices.
//!
//! - [`state`]   — the host-held key-value store policies keep data in
//! - [`history`] — room history: kept messages, offsets, epochs, recovery
//! - [`stored`]  — notices kept for offline ids, handed over after their next welcome

pub mod history;
pub mod state;
pub mod stored;
