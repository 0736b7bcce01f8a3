//! The cluster's record of its policy (docs/CLUSTER.md, "Swapping the
//! policy"): the components by SHA-256, which one is active and which a
//! rollback restores, what each node runs, and the announcements a swap
//! and a rollback make to every node. One server has none of it: its
//! policy is its own.
//!
//! The store keeps and tells; the two-step swap itself (prepare on every
//! live node, then activate everywhere, or refuse everywhere) is the
//! operator side's (`ops/rules.rs`), which alone knows the policy.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::Unavailable;

/// A component the cluster runs, by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adopted {
    /// SHA-256 of the component's bytes, hex.
    pub sha256: String,
    /// Where it came from (a file name, an upload's name).
    pub source: String,
}

/// What the cluster runs, and what a rollback restores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Record {
    /// The active component (`None`: no node has said yet).
    pub active: Option<Adopted>,
    /// The one before it.
    pub previous: Option<Adopted>,
}

/// What is said to every node (the channel `<prefix>:policy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Announcement {
    /// Load this component and say whether it would run here.
    Prepare {
        /// The swap's id (its answers' key).
        swap: String,
        /// The component, kept under its SHA-256.
        component: Adopted,
        /// The node running the swap.
        node: String,
    },
    /// Every live node is ready: make it active.
    Activate {
        swap: String,
        component: Adopted,
        node: String,
    },
    /// A node refused it (or did not answer): drop it.
    Abort { swap: String, node: String },
    /// The cluster rolled back (an operator, or a node's automatic
    /// rollback): restore `to`.
    Rollback {
        /// The component rolled back from.
        from: Adopted,
        /// The component restored.
        to: Adopted,
        reason: String,
        automatic: bool,
        node: String,
    },
}

/// What a node hears of the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// An announcement.
    Said(Announcement),
    /// Announcements may have been lost (the subscriber connection was
    /// made again): read the record again.
    Resync,
}

/// A node's answer to a prepare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The node answering.
    pub node: String,
    /// `None`: ready to activate. Else the step that failed there
    /// (`compile`, `world`, `instantiate`, `read`…).
    pub refused: Option<String>,
    /// Why, when refused.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// What one node runs, as it said last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeVersion {
    /// The node's id.
    pub node: String,
    /// Its local version number (each node counts its own).
    pub seq: u64,
    /// SHA-256 of the component.
    pub sha256: String,
    /// The world the component targets (`0.1.0`, `0.2.0`).
    pub world: String,
    pub source: String,
    /// How it became active there (`start`, `swap`, `rollback`, `auto-rollback`).
    pub published_by: String,
    /// When (RFC 3339, UTC).
    pub published_at: String,
}

/// The result of a rollback asked of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolledBack {
    /// Done: this was restored (and announced).
    Restored(Adopted),
    /// There is nothing to restore.
    NoPrevious,
    /// The active component is not the one named: another swap or
    /// rollback came first.
    Moved,
}

/// The cluster's record of its policy.
#[async_trait]
pub trait Versions: std::fmt::Debug + Send + Sync {
    /// Keep `bytes` under `sha256` (for a while: until it is active, then
    /// while it is active or the previous one).
    async fn keep(&self, sha256: &str, bytes: &[u8]) -> Result<(), Unavailable>;

    /// The component kept under `sha256`.
    async fn fetch(&self, sha256: &str) -> Result<Option<Vec<u8>>, Unavailable>;

    /// What the cluster runs.
    async fn record(&self) -> Result<Record, Unavailable>;

    /// Make `component` the active one if none is (the first node of a
    /// cluster); the active one either way.
    async fn adopt(&self, component: &Adopted) -> Result<Adopted, Unavailable>;

    /// The nodes whose heartbeat is current.
    async fn live_nodes(&self) -> Result<Vec<String>, Unavailable>;

    /// Say `announcement` to every node.
    async fn announce(&self, announcement: &Announcement) -> Result<(), Unavailable>;

    /// Answer swap `swap`'s prepare.
    async fn answer(&self, swap: &str, answer: &Answer) -> Result<(), Unavailable>;

    /// The answers to swap `swap` so far.
    async fn answers(&self, swap: &str) -> Result<Vec<Answer>, Unavailable>;

    /// Make `component` the active one, the active one the previous, and
    /// announce it — if the active one is still `expected` (by SHA-256;
    /// `None`: none). `false`: another swap came first, nothing done.
    async fn activate(
        &self,
        swap: &str,
        component: &Adopted,
        expected: Option<&str>,
        node: &str,
    ) -> Result<bool, Unavailable>;

    /// Swap the active and previous components, if the active one is
    /// `from` (by SHA-256), and announce it.
    async fn roll_back(
        &self,
        from: &str,
        reason: &str,
        automatic: bool,
        node: &str,
    ) -> Result<RolledBack, Unavailable>;

    /// Say what this node runs now.
    async fn report(&self, version: &NodeVersion) -> Result<(), Unavailable>;

    /// What each live node runs.
    async fn nodes(&self) -> Result<Vec<NodeVersion>, Unavailable>;

    /// What this node hears of the others, from now on (once: the first
    /// call has it).
    fn heard(&self) -> Option<mpsc::Receiver<Heard>>;
}
