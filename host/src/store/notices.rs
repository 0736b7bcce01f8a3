//! Stored notices, as the chat layer asks for them: notices kept for an id
//! that is offline, handed over, oldest first, after its next welcome.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

/// How many notices are kept, for how long, and how they are shared out
/// among senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredLimits {
    /// Notices kept per id; past this the oldest of the sender with the
    /// most notices in that box is dropped.
    pub per_id: usize,
    /// How long a notice is kept.
    pub max_age: Duration,
    /// Bytes of every id's notices together, as memory holds them: keys,
    /// frames and each entry's overhead (stored notices only: room
    /// history has its own cap).
    pub max_total_bytes: usize,
    /// Notices one sender may have stored and not yet handed over, for all
    /// recipients together.
    pub per_sender: usize,
    /// Notices one sender may have stored for one recipient.
    pub per_pair: usize,
}

impl Default for StoredLimits {
    fn default() -> Self {
        StoredLimits {
            per_id: 100,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_total_bytes: 32 << 20,
            per_sender: 100,
            per_pair: 20,
        }
    }
}

/// One kept notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The frame to hand over (the notice as the recipient would have got
    /// it).
    pub frame: Arc<str>,
    /// Who stored it (its quota is charged until it is handed over).
    pub from: Arc<str>,
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
    /// The cluster's store did not answer (cluster mode): nothing was
    /// stored.
    #[error("the cluster's store of notices did not answer; nothing was stored")]
    Unavailable,
    /// Storing is off (`per_id` is 0).
    #[error("notices are not stored on this server")]
    Off,
    /// The sender has as many notices stored, for all recipients together,
    /// as it may (`--stored-notices-per-sender`).
    #[error(
        "not stored: you have {0} notices stored and not yet delivered, the most allowed (--stored-notices-per-sender)"
    )]
    PerSender(usize),
    /// The sender has as many notices stored for this recipient as it may
    /// (`--stored-notices-per-pair`).
    #[error(
        "not stored: you have {0} notices stored for this id and not yet delivered, the most allowed (--stored-notices-per-pair)"
    )]
    PerPair(usize),
}

impl StoreError {
    /// Whether the refusal is the sender's own quota (answered
    /// `store-quota`), not the server's state.
    pub fn is_quota(&self) -> bool {
        matches!(self, StoreError::PerSender(_) | StoreError::PerPair(_))
    }
}

/// What [`Notices::take`] hands over.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mail {
    /// The notices, oldest first.
    pub notices: Vec<Stored>,
    /// Notices dropped since the last take because the id's box was full.
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

    /// Keep `frame` from `from` for `to`, stored at `now`, within `from`'s
    /// quotas.
    async fn store(
        &self,
        from: &str,
        to: &str,
        frame: Arc<str>,
        now: SystemTime,
    ) -> Result<(), StoreError>;

    /// Everything kept for `id` (and how many were dropped), removed from
    /// the store; what is older than the limit at `now` is left out.
    async fn take(&self, id: &str, now: SystemTime) -> Mail;

    /// Drop what is older than the limit, for every id (a periodic sweep,
    /// so ids that never come back do not hold memory forever).
    async fn expire_all(&self, now: SystemTime);

    /// Bytes of every stored notice.
    fn bytes(&self) -> usize;

    /// How many notices are stored (`None`: not counted here, as in a
    /// cluster's Redis, which counts only bytes).
    fn stored(&self) -> Option<usize> {
        None
    }
}
