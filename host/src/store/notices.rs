//! Stored notices, as the chat layer asks for them: notices kept for an id
//! that is offline, handed over, oldest first, after its next welcome.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

/// How many notices are kept, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredLimits {
    /// Notices kept per id; past this the oldest is dropped.
    pub per_id: usize,
    /// How long a notice is kept.
    pub max_age: Duration,
    /// Bytes of every id's notices together (with whatever else shares
    /// the store's count).
    pub max_total_bytes: usize,
}

impl Default for StoredLimits {
    fn default() -> Self {
        StoredLimits {
            per_id: 100,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_total_bytes: 64 << 20,
        }
    }
}

/// One kept notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The frame to hand over (the notice as the recipient would have got
    /// it).
    pub frame: Arc<str>,
    /// When it was stored.
    pub at: SystemTime,
}

impl Stored {
    /// `at` as RFC 3339, UTC, to the millisecond (`stored_at`).
    pub fn stored_at(&self) -> String {
        humantime::format_rfc3339_millis(self.at).to_string()
    }
}

/// Why a notice was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The server holds as many bytes of stored notices as it may.
    #[error("the server's store of notices is full")]
    Full,
    /// Storing is off (`per_id` is 0).
    #[error("notices are not stored on this server")]
    Off,
}

/// What [`Notices::take`] hands over.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mail {
    /// The notices, oldest first.
    pub notices: Vec<Stored>,
    /// Notices dropped since the last take because the id had too many.
    pub dropped: u64,
}

/// Every id's stored notices.
///
/// Each operation is one atomic step, and `take` empties what it hands
/// over: two takers never get the same notice. The chat layer relies on
/// nothing more (no lock shared with the registry): it stores, then looks
/// again whether the id came online; a connecting id takes before and
/// after it registers (`chat::lifecycle`).
#[async_trait]
pub trait Notices: std::fmt::Debug + Send + Sync {
    /// The limits in force.
    fn limits(&self) -> &StoredLimits;

    /// Keep `frame` for `to`, stored at `now`.
    async fn store(&self, to: &str, frame: Arc<str>, now: SystemTime) -> Result<(), StoreError>;

    /// Everything kept for `id` (and how many were dropped), removed from
    /// the store; what is older than the limit at `now` is left out.
    async fn take(&self, id: &str, now: SystemTime) -> Mail;

    /// Drop what is older than the limit, for every id (a periodic sweep,
    /// so ids that never come back do not hold memory forever).
    async fn expire_all(&self, now: SystemTime);

    /// Bytes of every stored notice.
    fn bytes(&self) -> usize;
}
