//! The policy as an operator changes it. On one server, that server's
//! policy. In a cluster, every node's at once (docs/CLUSTER.md, "Swapping
//! the policy"):
//!
//! - a swap keeps the component in Redis by SHA-256, prepares it here
//!   (compile, check, trial instantiation), then asks every live node to
//!   prepare it too; if any refuses (or does not answer in time), every
//!   node drops it and the swap is refused with that node's reason; else
//!   one script makes it the cluster's active component and tells every
//!   node to activate what it prepared;
//! - a rollback, an operator's or a node's automatic one, swaps the
//!   cluster's active and previous components in one script and every
//!   node follows;
//! - a node that starts, or hears nothing for a while (its subscriber
//!   reconnected), runs what the record says is active: protocol worlds
//!   never mix for longer than a load.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::policy::{
    LoadError, Policy, Prepared, PublishedBy, RollbackError, RollbackRecord, SwapReport, sha256_hex,
};
use crate::store::Unavailable;
use crate::store::versions::{
    Adopted, Announcement, Answer, Heard, NodeVersion, RolledBack, Versions,
};

/// How long a swap waits for every live node to prepare the component
/// (a large component compiles in seconds on a busy node).
pub const PREPARE_WAIT: Duration = Duration::from_secs(30);

/// How often the answers are read while a swap waits.
const POLL: Duration = Duration::from_millis(20);

/// A prepared component nobody activated or aborted (its swap's node
/// died) is dropped after this.
const PENDING_TTL: Duration = Duration::from_secs(120);

/// Why a swap was refused. Nothing changed, on any node.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// This node could not load it.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Another node could not.
    #[error("node {node} refused it at step {step}: {message}")]
    Refused {
        node: String,
        /// The step that failed there (`compile`, `world`, `instantiate`…).
        step: String,
        message: String,
    },
    /// A live node did not answer in time.
    #[error("node {node} did not prepare it within {} s", PREPARE_WAIT.as_secs())]
    NoAnswer { node: String },
    /// Another swap or rollback was made while this one waited.
    #[error("another swap or rollback was made meanwhile; nothing was changed")]
    Conflict,
    /// Redis could not be asked.
    #[error("the cluster's Redis: {0}")]
    Unavailable(#[from] Unavailable),
}

impl SwapError {
    /// The error code the admin interface answers with.
    pub fn code(&self) -> &str {
        match self {
            SwapError::Load(e) => e.step(),
            SwapError::Refused { step, .. } => step,
            SwapError::NoAnswer { .. } => "timeout",
            SwapError::Conflict => "conflict",
            SwapError::Unavailable(_) => "unavailable",
        }
    }

    /// The node that refused, if another did.
    pub fn node(&self) -> Option<&str> {
        match self {
            SwapError::Refused { node, .. } | SwapError::NoAnswer { node } => Some(node),
            _ => None,
        }
    }
}

/// Why a rollback did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RollbackFailed {
    /// Nothing to roll back to, or another change came first.
    #[error(transparent)]
    Local(#[from] RollbackError),
    /// Redis could not be asked.
    #[error("the cluster's Redis: {0}")]
    Unavailable(#[from] Unavailable),
    /// The version to restore could not be loaded here.
    #[error("the version to restore could not be loaded here: {0}")]
    Load(#[from] LoadError),
}

/// A swap made: this node's report, and in a cluster what every node
/// runs after it.
#[derive(Debug, Serialize)]
pub struct Swapped {
    #[serde(flatten)]
    pub report: SwapReport,
    /// What each live node runs, once they all run it or
    /// [`ACTIVATE_WAIT`] has passed (cluster mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeVersion>>,
    /// Nodes that prepared it and had not said they run it by then: they
    /// make it active when they hear the swap (cluster mode).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lagging: Vec<String>,
}

/// How long a swap's answer waits for every node to say it runs the new
/// version (it is the cluster's active version already).
pub const ACTIVATE_WAIT: Duration = Duration::from_secs(5);

/// The policy, and in a cluster the record every node follows.
pub struct Rules {
    policy: Policy,
    versions: Option<Arc<dyn Versions>>,
    node: String,
    /// Components prepared for a swap announced by another node.
    pending: Mutex<HashMap<String, (Prepared, Instant)>>,
    /// One swap or rollback of this node's at a time.
    changing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("node", &self.node)
            .field("cluster", &self.versions.is_some())
            .finish()
    }
}

impl Rules {
    /// `policy`, shared with the cluster through `versions` if there is one.
    pub fn new(policy: Policy, versions: Option<Arc<dyn Versions>>, node: &str) -> Arc<Rules> {
        Arc::new(Rules {
            policy,
            versions,
            node: node.to_owned(),
            pending: Mutex::default(),
            changing: tokio::sync::Mutex::new(()),
        })
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether swaps reach every node of a cluster.
    pub fn is_cluster(&self) -> bool {
        self.versions.is_some()
    }

    /// What a starting node of a cluster loads instead of `bytes` (its
    /// `--policy`): the cluster's active component, if there is one and
    /// it can be read within `wait`. Otherwise `bytes` (said in the log).
    pub async fn starting(
        versions: &dyn Versions,
        bytes: Vec<u8>,
        source: String,
        wait: Duration,
    ) -> (Vec<u8>, String) {
        let sha = sha256_hex(&bytes);
        let read = async {
            let Some(active) = versions.record().await?.active else {
                return Ok(None);
            };
            if active.sha256 == sha {
                return Ok(None);
            }
            Ok::<_, Unavailable>(
                versions
                    .fetch(&active.sha256)
                    .await?
                    .filter(|b| sha256_hex(b) == active.sha256)
                    .map(|b| (b, active.source)),
            )
        };
        match tokio::time::timeout(wait, read).await {
            Ok(Ok(Some((theirs, their_source)))) => {
                tracing::info!(
                    policy = %source,
                    active = %their_source,
                    "the cluster runs another policy: this node loads it, not its own"
                );
                (theirs, their_source)
            }
            Ok(Ok(None)) => (bytes, source),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the cluster's policy not read; this node starts with its own and follows once Redis answers");
                (bytes, source)
            }
            Err(_) => {
                tracing::warn!(
                    "the cluster's policy not read in time; this node starts with its own and follows once Redis answers"
                );
                (bytes, source)
            }
        }
    }

    /// Load `bytes` and make it the active version: here, or on every
    /// node of the cluster.
    pub async fn swap(&self, bytes: Vec<u8>, source: &str) -> Result<Swapped, SwapError> {
        let Some(versions) = &self.versions else {
            let report = self.policy.swap(bytes, source).await?;
            return Ok(Swapped {
                report,
                nodes: None,
                lagging: Vec::new(),
            });
        };
        let _one = self.changing.lock().await;
        let sha256 = sha256_hex(&bytes);
        let prepared = self.policy.prepare(bytes.clone(), source).await?;
        versions.keep(&sha256, &bytes).await?;
        // What is active now becomes the previous version: the cluster's
        // first swap may come before this node has said what it runs.
        let expected = Some(self.active_or_mine(versions.as_ref()).await?.sha256);
        let component = Adopted {
            sha256,
            source: source.to_owned(),
        };
        let swap = crate::store::token::new_epoch().to_string();
        let others: Vec<String> = versions
            .live_nodes()
            .await?
            .into_iter()
            .filter(|n| *n != self.node)
            .collect();
        if !others.is_empty() {
            versions
                .announce(&Announcement::Prepare {
                    swap: swap.clone(),
                    component: component.clone(),
                    node: self.node.clone(),
                })
                .await?;
            if let Err(e) = self.wait_ready(versions.as_ref(), &swap, &others).await {
                let abort = Announcement::Abort {
                    swap: swap.clone(),
                    node: self.node.clone(),
                };
                if let Err(e) = versions.announce(&abort).await {
                    tracing::warn!(error = %e, "a refused swap's abort not announced; the nodes drop it in time");
                }
                tracing::warn!(swap, error = %e, "policy swap refused");
                return Err(e);
            }
        }
        if !versions
            .activate(&swap, &component, expected.as_deref(), &self.node)
            .await?
        {
            let _ = versions
                .announce(&Announcement::Abort {
                    swap,
                    node: self.node.clone(),
                })
                .await;
            return Err(SwapError::Conflict);
        }
        let report = self.policy.activate(prepared, PublishedBy::Swap);
        tracing::info!(swap, nodes = others.len() + 1, sha256 = %component.sha256, "policy swapped on every node");
        self.report().await;
        let (nodes, lagging) = self.until_run(versions.as_ref(), &component, &others).await;
        Ok(Swapped {
            report,
            nodes: Some(nodes),
            lagging,
        })
    }

    /// What each node runs once each of `others` runs `component`, or
    /// [`ACTIVATE_WAIT`] has passed; and those that do not yet.
    async fn until_run(
        &self,
        versions: &dyn Versions,
        component: &Adopted,
        others: &[String],
    ) -> (Vec<NodeVersion>, Vec<String>) {
        let until = Instant::now() + ACTIVATE_WAIT;
        loop {
            let nodes = versions.nodes().await.unwrap_or_default();
            let lagging: Vec<String> = others
                .iter()
                .filter(|o| {
                    !nodes
                        .iter()
                        .any(|n| &n.node == *o && n.sha256 == component.sha256)
                })
                .cloned()
                .collect();
            if lagging.is_empty() || Instant::now() >= until {
                return (nodes, lagging);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The cluster's active component; if there is none yet (a new
    /// cluster, or Redis lost its data), this node's, made the active one
    /// unless another node's was first.
    async fn active_or_mine(&self, versions: &dyn Versions) -> Result<Adopted, Unavailable> {
        if let Some(active) = versions.record().await?.active {
            return Ok(active);
        }
        let mine = self.policy.active();
        versions
            .keep(&mine.sha256, &self.policy.active_bytes())
            .await?;
        versions
            .adopt(&Adopted {
                sha256: mine.sha256,
                source: mine.source,
            })
            .await
    }

    /// Wait until each of `others` still alive has prepared swap `swap`.
    async fn wait_ready(
        &self,
        versions: &dyn Versions,
        swap: &str,
        others: &[String],
    ) -> Result<(), SwapError> {
        let until = Instant::now() + PREPARE_WAIT;
        loop {
            let answers = versions.answers(swap).await?;
            if let Some(no) = answers.iter().find(|a| a.refused.is_some()) {
                return Err(SwapError::Refused {
                    node: no.node.clone(),
                    step: no.refused.clone().unwrap_or_default(),
                    message: no.message.clone(),
                });
            }
            // A node that died meanwhile is not waited for: it loads the
            // active component when it comes back.
            let live = versions.live_nodes().await?;
            let waiting = others
                .iter()
                .find(|n| live.contains(n) && !answers.iter().any(|a| &a.node == *n));
            let Some(waiting) = waiting else {
                return Ok(());
            };
            if Instant::now() >= until {
                return Err(SwapError::NoAnswer {
                    node: waiting.clone(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Restore the previous version: here, or on every node.
    pub async fn rollback(&self, reason: &str) -> Result<RollbackRecord, RollbackFailed> {
        let Some(versions) = &self.versions else {
            return Ok(self.policy.rollback(reason)?);
        };
        let _one = self.changing.lock().await;
        let from = versions
            .record()
            .await?
            .active
            .map(|a| a.sha256)
            .unwrap_or_else(|| self.policy.active().sha256);
        match versions.roll_back(&from, reason, false, &self.node).await? {
            RolledBack::Restored(to) => {
                let record = self.follow_rollback(&to, reason, false).await;
                self.report().await;
                match record? {
                    Some(record) => Ok(record),
                    None => Err(RollbackError::Superseded.into()),
                }
            }
            RolledBack::NoPrevious => Err(RollbackError::NoPrevious.into()),
            RolledBack::Moved => Err(RollbackError::Superseded.into()),
        }
    }

    /// Run `to`, as a rollback: the previous version if it is that one,
    /// else loaded from the cluster. `None`: it runs already.
    async fn follow_rollback(
        &self,
        to: &Adopted,
        reason: &str,
        automatic: bool,
    ) -> Result<Option<RollbackRecord>, RollbackFailed> {
        if self.policy.active().sha256 == to.sha256 {
            return Ok(None);
        }
        if self.policy.previous_sha256().as_deref() == Some(&to.sha256) {
            return Ok(Some(self.policy.follow_rollback(reason, automatic)?));
        }
        let prepared = self.prepare_from_cluster(to).await?;
        Ok(Some(self.policy.restore(prepared, reason, automatic)))
    }

    /// Load `component` from the cluster's record.
    async fn prepare_from_cluster(&self, component: &Adopted) -> Result<Prepared, LoadError> {
        let read = |message: String| LoadError::Read {
            path: format!("the cluster's component {}", component.sha256),
            source: std::io::Error::other(message),
        };
        let Some(versions) = &self.versions else {
            return Err(read("not in a cluster".into()));
        };
        let bytes = versions
            .fetch(&component.sha256)
            .await
            .map_err(|e| read(e.to_string()))?
            .ok_or_else(|| read("it is not kept in Redis".into()))?;
        if sha256_hex(&bytes) != component.sha256 {
            return Err(read("what Redis keeps has another SHA-256".into()));
        }
        self.policy.prepare(bytes, &component.source).await
    }

    /// Follow the cluster until the task is dropped: announcements of the
    /// other nodes, and this node's automatic rollbacks (which roll every
    /// node back).
    pub async fn follow(self: Arc<Self>) {
        let Some(versions) = self.versions.clone() else {
            return;
        };
        let Some(mut heard) = versions.heard() else {
            return;
        };
        let mut rollbacks = self.policy.rollbacks();
        self.sync().await;
        let mut sweep = tokio::time::interval(PENDING_TTL / 4);
        loop {
            tokio::select! {
                next = heard.recv() => match next {
                    Some(next) => self.heard(next).await,
                    None => return,
                },
                changed = rollbacks.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let auto = rollbacks.borrow_and_update().clone();
                    if let Some(auto) = auto {
                        self.spread_rollback(&auto).await;
                    }
                }
                _ = sweep.tick() => {
                    self.pending().retain(|_, (_, at)| at.elapsed() < PENDING_TTL);
                }
            }
        }
    }

    async fn heard(&self, heard: Heard) {
        let said = match heard {
            Heard::Resync => return self.sync().await,
            Heard::Said(said) => said,
        };
        match said {
            Announcement::Prepare {
                swap,
                component,
                node,
            } if node != self.node => self.prepare_for(swap, &component).await,
            Announcement::Activate {
                swap,
                component,
                node,
            } if node != self.node => {
                let prepared = self.pending().remove(&swap).map(|(p, _)| p);
                match prepared {
                    Some(prepared) => {
                        self.policy.activate(prepared, PublishedBy::Swap);
                    }
                    None => self.run(&component).await,
                }
                self.report().await;
            }
            Announcement::Abort { swap, .. } => {
                self.pending().remove(&swap);
            }
            Announcement::Rollback {
                to,
                reason,
                automatic,
                node,
                ..
            } if node != self.node => {
                match self.follow_rollback(&to, &reason, automatic).await {
                    Ok(_) => {}
                    Err(e) => tracing::error!(
                        error = %e,
                        sha256 = %to.sha256,
                        "the cluster rolled back, and this node could not: it runs another version than the others"
                    ),
                }
                self.report().await;
            }
            _ => {}
        }
    }

    /// Prepare another node's candidate and answer.
    async fn prepare_for(&self, swap: String, component: &Adopted) {
        let Some(versions) = &self.versions else {
            return;
        };
        let answer = match self.prepare_from_cluster(component).await {
            Ok(prepared) => {
                self.pending()
                    .insert(swap.clone(), (prepared, Instant::now()));
                Answer {
                    node: self.node.clone(),
                    refused: None,
                    message: String::new(),
                }
            }
            Err(e) => {
                tracing::warn!(swap, error = %e, "a policy swap refused here");
                Answer {
                    node: self.node.clone(),
                    refused: Some(e.step().to_owned()),
                    message: e.to_string(),
                }
            }
        };
        if let Err(e) = versions.answer(&swap, &answer).await {
            tracing::warn!(swap, error = %e, "a policy swap's answer not given");
        }
    }

    /// Run the cluster's `component` if this node does not (a swap whose
    /// prepare it missed).
    async fn run(&self, component: &Adopted) {
        if self.policy.active().sha256 == component.sha256 {
            return;
        }
        match self.prepare_from_cluster(component).await {
            Ok(prepared) => {
                self.policy.activate(prepared, PublishedBy::Swap);
            }
            Err(e) => tracing::error!(
                error = %e,
                sha256 = %component.sha256,
                "this node cannot run the cluster's policy: it keeps its own, unlike the others"
            ),
        }
    }

    /// Run what the record says is active; if it says nothing (a new
    /// cluster, or Redis lost its data), offer this node's.
    async fn sync(&self) {
        let Some(versions) = &self.versions else {
            return;
        };
        let _one = self.changing.lock().await;
        let synced = async {
            let active = self.active_or_mine(versions.as_ref()).await?;
            self.run(&active).await;
            Ok::<(), Unavailable>(())
        };
        if let Err(e) = synced.await {
            tracing::warn!(error = %e, "the cluster's policy not read; read again when Redis answers");
        }
        drop(_one);
        self.report().await;
    }

    /// This node rolled back on its own: roll every node back.
    async fn spread_rollback(&self, auto: &crate::policy::AutoRolledBack) {
        let Some(versions) = &self.versions else {
            return;
        };
        let _one = self.changing.lock().await;
        match versions
            .roll_back(&auto.from_sha256, &auto.reason, true, &self.node)
            .await
        {
            Ok(RolledBack::Restored(to)) if to.sha256 != auto.to_sha256 => {
                // The cluster's previous is not this node's: run it.
                if let Err(e) = self.follow_rollback(&to, &auto.reason, true).await {
                    tracing::error!(error = %e, "the cluster's previous policy could not be loaded here");
                }
            }
            Ok(RolledBack::Restored(_)) => {}
            Ok(RolledBack::Moved | RolledBack::NoPrevious) => tracing::warn!(
                "this node rolled back automatically, but the cluster runs another version now: the others keep it"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "this node rolled back automatically and could not tell the others"
            ),
        }
        drop(_one);
        self.report().await;
    }

    /// Say what this node runs.
    async fn report(&self) {
        let Some(versions) = &self.versions else {
            return;
        };
        let status = self.policy.status();
        let by = serde_json::to_value(status.active.published_by)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let version = NodeVersion {
            node: self.node.clone(),
            seq: status.active.info.seq,
            sha256: status.active.info.sha256,
            world: status.active.info.world.version().to_owned(),
            source: status.active.info.source,
            published_by: by,
            published_at: status.active.published_at,
        };
        if let Err(e) = versions.report(&version).await {
            tracing::debug!(error = %e, "what this node runs not said");
        }
    }

    /// The policy's status; in a cluster with the record and what each
    /// live node runs.
    pub async fn status(&self) -> serde_json::Value {
        let mut body = serde_json::to_value(self.policy.status()).unwrap_or_default();
        if let (Some(versions), Some(map)) = (&self.versions, body.as_object_mut()) {
            let cluster = async {
                let record = versions.record().await?;
                let nodes = versions.nodes().await?;
                Ok::<_, Unavailable>(serde_json::json!({
                    "active": record.active,
                    "previous": record.previous,
                    "nodes": nodes,
                }))
            };
            let cluster = cluster.await.unwrap_or_else(
                |e| serde_json::json!({ "error": "unavailable", "message": e.to_string() }),
            );
            map.insert("node".into(), self.node.clone().into());
            map.insert("cluster".into(), cluster);
        }
        body
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Prepared, Instant)>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}
