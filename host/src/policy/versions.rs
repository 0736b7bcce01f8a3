//! The policy as the rest of the host sees it: the version every new call
//! uses (an atomically swapped pointer), the one before it (for rollback),
//! and the calls themselves.
//!
//! A call loads the active publication once and runs entirely on that
//! version: a swap during the call does not affect it, and the next call
//! uses the new version. An instance is checked out of its version's idle
//! queue for the length of a call (calls on other threads take others) and
//! put back only if its version is still the active one.
//!
//! Replacing the policy of a live server: a candidate is compiled (on a
//! blocking thread, off the workers), checked against the world and
//! trial-instantiated before it is published with one atomic pointer swap.
//! The previous version is kept for rollback; a freshly swapped-in version
//! that fails too many calls within its probation window is rolled back
//! automatically.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::Serialize;

use super::answer::Decided;
use super::host_api::PolicyEnv;
use super::runtime::{Event, Runtime};
use super::types::{Action, CallError, ConnectInfo, Frame, LoadError, Reject};
use super::version::{Instance, Published, PublishedBy, Version, VersionInfo, timestamp};
use crate::config::PolicyLimits;

/// The cheap-to-clone handle to the policy.
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Inner>,
}

struct Inner {
    /// Loads versions and calls them.
    runtime: Runtime,
    /// The version every new call uses, and since when.
    active: ArcSwap<Published>,
    /// The previous version (for rollback) and the last rollback.
    history: Mutex<History>,
    /// Source of version numbers.
    next_seq: AtomicU64,
    /// Every automatic rollback, for whoever must follow it (a cluster
    /// rolls back on every node).
    rolled_back: tokio::sync::watch::Sender<Option<AutoRolledBack>>,
    /// Versions swapped in since start (`/metrics`).
    swaps: AtomicU64,
    /// Rollbacks since start: [asked for, automatic] (`/metrics`).
    rollbacks: [AtomicU64; 2],
}

/// An automatic rollback, by content: what a cluster's other nodes must
/// roll back too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoRolledBack {
    /// SHA-256 of the version rolled back from.
    pub from_sha256: String,
    /// SHA-256 of the version restored.
    pub to_sha256: String,
    /// Why.
    pub reason: String,
}

/// A version compiled, checked and trial-instantiated, not yet active
/// ([`Policy::prepare`], then [`Policy::activate`]).
pub struct Prepared(Arc<Version>);

impl Prepared {
    /// Facts about it.
    pub fn info(&self) -> &VersionInfo {
        &self.0.info
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Prepared").field(&self.0.info.seq).finish()
    }
}

/// Idle instances a version keeps.
fn max_idle(runtime: &Runtime) -> usize {
    runtime.limits.pool_instances as usize
}

/// What is kept besides the active version.
#[derive(Default)]
struct History {
    /// The version that was active before the current one.
    pub previous: Option<Arc<Version>>,
    /// The most recent rollback.
    pub last_rollback: Option<RollbackRecord>,
    /// The latest swaps and rollbacks, oldest first.
    pub recent: std::collections::VecDeque<Change>,
}

impl History {
    fn note(&mut self, change: Change) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(change);
    }
}

/// A rollback that happened.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackRecord {
    /// The version rolled back from.
    pub from: u64,
    /// The version restored.
    pub to: u64,
    /// Whether the host did it on its own (too many failed calls).
    pub automatic: bool,
    /// Why.
    pub reason: String,
    /// When (RFC 3339, UTC).
    pub at: String,
}

/// Why a rollback could not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    /// Only one version has ever been loaded.
    #[error("there is no previous version to roll back to")]
    NoPrevious,
    /// The version to roll back was replaced in the meantime.
    #[error("the version has already been replaced")]
    Superseded,
}

/// The answer to a swap.
#[derive(Debug, Clone, Serialize)]
pub struct SwapReport {
    /// The version now active.
    pub active: VersionInfo,
    /// The version it replaced (kept for rollback).
    pub previous: VersionInfo,
}

/// Everything an operator sees about the policy.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyStatus {
    /// The version in use.
    pub active: ActiveStatus,
    /// The version a rollback would restore.
    pub previous: Option<PreviousStatus>,
    /// The most recent rollback, manual or automatic.
    pub last_rollback: Option<RollbackRecord>,
    /// The automatic-rollback rule in force.
    pub auto_rollback: AutoRollback,
    /// The latest swaps and rollbacks, newest first (at most
    /// [`RECENT`]).
    pub recent: Vec<Change>,
}

/// Swaps and rollbacks [`PolicyStatus::recent`] keeps.
pub const RECENT: usize = 20;

/// A swap or a rollback, as the admin page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// `swap`, `rollback` or `auto-rollback`.
    pub kind: &'static str,
    /// The version replaced.
    pub from: u64,
    /// The version made active.
    pub to: u64,
    /// Where the new version came from (a swap), or why (a rollback).
    pub detail: String,
    /// When (RFC 3339, UTC).
    pub at: String,
}

/// The active version and how it is doing.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveStatus {
    /// The version.
    #[serde(flatten)]
    pub info: VersionInfo,
    /// How it became active.
    pub published_by: PublishedBy,
    /// When it became active (RFC 3339, UTC).
    pub published_at: String,
    /// Calls since it became active.
    pub calls: u64,
    /// Of those, failed calls (trap, timeout, memory, over-limit answer).
    pub failures: u64,
    /// Instances that exist (idle or in a call).
    pub instances: usize,
}

/// The version kept for rollback.
#[derive(Debug, Clone, Serialize)]
pub struct PreviousStatus {
    /// The version.
    #[serde(flatten)]
    pub info: VersionInfo,
    /// Instances still alive: 0 once no call uses it.
    pub instances: usize,
}

/// When a new version is rolled back without an operator.
#[derive(Debug, Clone, Serialize)]
pub struct AutoRollback {
    /// Failed calls that trigger it (0: never). Answers over the action
    /// or byte cap do not count: a client can provoke those.
    pub failures: u64,
    /// For how long after a swap a version is watched, in seconds.
    pub window_secs: u64,
}

impl Policy {
    /// Compile, check and trial-instantiate `bytes`, and make it the policy
    /// (version 1).
    pub fn load(
        bytes: Vec<u8>,
        source: &str,
        env: PolicyEnv,
        limits: PolicyLimits,
    ) -> Result<Policy, LoadError> {
        let runtime = Runtime::new(env, limits)?;
        let first = Arc::new(runtime.prepare(1, &bytes, source, max_idle(&runtime))?);
        let inner = Arc::new(Inner {
            runtime,
            active: ArcSwap::from_pointee(Published::new(first.clone(), PublishedBy::Start)),
            history: Mutex::new(History::default()),
            next_seq: AtomicU64::new(2),
            rolled_back: tokio::sync::watch::Sender::new(None),
            swaps: AtomicU64::new(0),
            rollbacks: [AtomicU64::new(0), AtomicU64::new(0)],
        });
        let policy = Policy { inner };
        policy.warm(&first)?;
        Ok(policy)
    }

    /// The world version the active version targets.
    pub fn active_world(&self) -> super::version::World {
        self.inner.active.load().version.info.world
    }

    /// Facts about the active version.
    pub fn active(&self) -> VersionInfo {
        self.inner.active.load().version.info.clone()
    }

    /// The active version's component.
    pub fn active_bytes(&self) -> Arc<[u8]> {
        self.inner.active.load().version.bytes.clone()
    }

    /// SHA-256 of the version a rollback would restore.
    pub fn previous_sha256(&self) -> Option<String> {
        self.history()
            .previous
            .as_ref()
            .map(|v| v.info.sha256.clone())
    }

    /// Hears every automatic rollback from now on.
    pub fn rollbacks(&self) -> tokio::sync::watch::Receiver<Option<AutoRolledBack>> {
        self.inner.rolled_back.subscribe()
    }

    /// `on-connect`: accept with actions, or refuse.
    pub fn on_connect(&self, info: ConnectInfo) -> Result<Result<Vec<Action>, Reject>, CallError> {
        self.invoke(Event::Connect(info))
    }

    /// `on-message`.
    pub fn on_message(&self, sender: &str, frame: Frame) -> Result<Vec<Action>, CallError> {
        self.invoke(Event::Message(sender.to_owned(), frame))?
            .map_err(|_| CallError::Trap("on-message cannot reject".into()))
    }

    /// `on-disconnect`.
    pub fn on_disconnect(&self, id: &str) -> Result<Vec<Action>, CallError> {
        self.invoke(Event::Disconnect(id.to_owned()))?
            .map_err(|_| CallError::Trap("on-disconnect cannot reject".into()))
    }

    /// One guarded call on the active version: an idle instance (or a new
    /// one), deadline armed, the answer bounded before it is copied out.
    ///
    /// The call is synchronous: it runs on this thread, and returns within
    /// the deadline. A guest that computes is stopped by the epoch; one
    /// that would wait traps at once (`no_wait`). So no fiber, no executor
    /// and no timer are needed around it.
    fn invoke(&self, event: Event) -> Result<Result<Vec<Action>, Reject>, CallError> {
        let published = self.inner.active.load_full();
        let version = &published.version;
        let mut inst = match version.take_idle() {
            Some(inst) => inst,
            None => self.inner.runtime.instantiate(version).inspect_err(|e| {
                version.figures.failed(e);
            })?,
        };
        published.calls.fetch_add(1, Ordering::Relaxed);
        version.figures.calls.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let called = self.inner.runtime.call(&mut inst, event);
        version.figures.latency.observe(started.elapsed());
        let outcome = match called {
            // The guest returned normally, even with an answer over the
            // caps: its instance can serve again.
            Ok(answer) => {
                self.checkin(version, inst);
                match answer {
                    Ok(Decided::Actions(actions)) => Ok(Ok(actions)),
                    Ok(Decided::Refused(e)) => Err(e),
                    Err(reject) => Ok(Err(reject)),
                }
            }
            // A failed instance is dropped: a trap leaves it unusable.
            Err(e) => Err(e),
        };
        if let Err(e) = &outcome {
            version.figures.failed(e);
            self.failed(&published, e);
        }
        outcome
    }

    /// Make one instance of `version` and keep it idle: proves the version
    /// instantiates, and the first call does not pay for it.
    fn warm(&self, version: &Version) -> Result<(), LoadError> {
        let inst = self
            .inner
            .runtime
            .instantiate(version)
            .map_err(|e| LoadError::Instantiate(e.to_string()))?;
        version.put_idle(inst);
        Ok(())
    }

    /// Return an instance after a call, unless its version is no longer the
    /// active one or the instance has used most of its memory or resource
    /// headroom. The second check closes the race with a swap that
    /// released the idle queue between the first check and the push.
    fn checkin(&self, version: &Arc<Version>, mut inst: Instance) {
        if !self.is_active(version) || inst.worn_out() {
            return;
        }
        version.put_idle(inst);
        if !self.is_active(version) {
            version.release_idle();
        }
    }

    fn is_active(&self, version: &Arc<Version>) -> bool {
        Arc::ptr_eq(&self.inner.active.load().version, version)
    }

    /// Compile, check and trial-instantiate `bytes` as the next version
    /// without publishing it. Failures say which step failed and why.
    async fn candidate(&self, bytes: Vec<u8>, source: &str) -> Result<Arc<Version>, LoadError> {
        let inner = self.inner.clone();
        let source = source.to_owned();
        // Compiling is CPU work of up to seconds: keep it off the workers
        // that serve connections.
        let version = tokio::task::spawn_blocking(move || {
            let seq = inner.next_seq.fetch_add(1, Ordering::Relaxed);
            let runtime = &inner.runtime;
            runtime.prepare(seq, &bytes, &source, max_idle(runtime))
        })
        .await
        .map_err(|e| LoadError::Engine(format!("compilation task failed: {e}")))??;
        let version = Arc::new(version);
        self.warm(&version)?;
        Ok(version)
    }

    /// Load `bytes` and, if every step succeeds, make it the active version.
    /// Calls already running finish on the old version; every later call
    /// uses the new one. On error the active version is untouched.
    pub async fn swap(&self, bytes: Vec<u8>, source: &str) -> Result<SwapReport, LoadError> {
        let prepared = self.prepare(bytes, source).await?;
        Ok(self.activate(prepared, PublishedBy::Swap))
    }

    /// The first half of a swap: compile, check and trial-instantiate
    /// `bytes` (off the workers), and keep the version ready. Nothing
    /// changes for calls until [`Policy::activate`]; dropping it costs
    /// nothing more.
    pub async fn prepare(&self, bytes: Vec<u8>, source: &str) -> Result<Prepared, LoadError> {
        self.candidate(bytes, source).await.map(Prepared)
    }

    /// The second half: make a prepared version the active one (`by`:
    /// [`PublishedBy::Swap`] puts it on probation for the automatic
    /// rollback).
    pub fn activate(&self, prepared: Prepared, by: PublishedBy) -> SwapReport {
        let version = prepared.0;
        let active = version.info.clone();
        let old = self.publish(version, by);
        self.inner.swaps.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            from = old.info.seq,
            to = active.seq,
            sha256 = %active.sha256,
            source = %active.source,
            "policy swapped"
        );
        SwapReport {
            active,
            previous: old.info.clone(),
        }
    }

    /// Make a prepared version active as a rollback: another node rolled
    /// back to a version this one does not have as its previous.
    pub fn restore(&self, prepared: Prepared, reason: &str, automatic: bool) -> RollbackRecord {
        let by = if automatic {
            PublishedBy::AutoRollback
        } else {
            PublishedBy::Rollback
        };
        let to = prepared.0.info.seq;
        let from = self.publish(prepared.0, by).info.seq;
        let record = RollbackRecord {
            from,
            to,
            automatic,
            reason: reason.to_owned(),
            at: timestamp(SystemTime::now()),
        };
        self.history().last_rollback = Some(record.clone());
        tracing::warn!(from, to, "policy rolled back");
        record
    }

    /// Restore the previous version (which becomes the one a further
    /// rollback would restore).
    pub fn rollback(&self, reason: &str) -> Result<RollbackRecord, RollbackError> {
        self.roll_back(reason, false, None)
    }

    /// Roll back because another node did (a cluster rolls back
    /// everywhere): as [`Policy::rollback`], with the other node's
    /// reason, said automatic if it was. Nothing is announced again.
    pub fn follow_rollback(
        &self,
        reason: &str,
        automatic: bool,
    ) -> Result<RollbackRecord, RollbackError> {
        self.roll_back(reason, automatic, None)
    }

    /// The active version, the previous one and the rollback rule.
    pub fn status(&self) -> PolicyStatus {
        let published = self.inner.active.load_full();
        let (previous, last_rollback, recent) = {
            let history = self.history();
            (
                history.previous.clone(),
                history.last_rollback.clone(),
                history.recent.iter().rev().cloned().collect(),
            )
        };
        let limits = &self.inner.runtime.limits;
        PolicyStatus {
            active: ActiveStatus {
                info: published.version.info.clone(),
                published_by: published.by,
                published_at: timestamp(published.at_wall),
                calls: published.calls.load(Ordering::Relaxed),
                failures: published.failures.load(Ordering::Relaxed),
                instances: published.version.instances(),
            },
            previous: previous.map(|v| PreviousStatus {
                info: v.info.clone(),
                instances: v.instances(),
            }),
            last_rollback,
            auto_rollback: AutoRollback {
                failures: limits.rollback_failures,
                window_secs: limits.rollback_window.as_secs(),
            },
            recent,
        }
    }

    /// Make `version` active; returns the version it replaced, whose idle
    /// instances are released now (busy ones when their call ends).
    fn publish(&self, version: Arc<Version>, by: PublishedBy) -> Arc<Version> {
        let mut history = self.history();
        let (to, detail) = (version.info.seq, version.info.source.clone());
        let old = self
            .inner
            .active
            .swap(Arc::new(Published::new(version, by)))
            .version
            .clone();
        old.release_idle();
        history.previous = Some(old.clone());
        history.note(Change {
            kind: "swap",
            from: old.info.seq,
            to,
            detail,
            at: timestamp(SystemTime::now()),
        });
        old
    }

    /// Count a failed call against the publication it ran on, and roll that
    /// publication back if it is a fresh swap failing too often.
    fn failed(&self, published: &Arc<Published>, error: &CallError) {
        if matches!(error, CallError::Instantiate(_)) {
            // Usually the pool being full: the server's capacity, not the
            // version's fault.
            return;
        }
        published.failures.fetch_add(1, Ordering::Relaxed);
        if !error.counts_toward_rollback() {
            return;
        }
        let failures = published.strikes.fetch_add(1, Ordering::Relaxed) + 1;
        let limits = &self.inner.runtime.limits;
        let threshold = limits.rollback_failures;
        if published.by != PublishedBy::Swap
            || threshold == 0
            || failures < threshold
            || published.at.elapsed() > limits.rollback_window
        {
            return;
        }
        let reason = format!(
            "{failures} failed calls within {} s of the swap (last: {error})",
            published.at.elapsed().as_secs()
        );
        match self.roll_back(&reason, true, Some(published)) {
            Ok(record) => {
                tracing::error!(
                    from = record.from,
                    to = record.to,
                    reason = %record.reason,
                    "policy rolled back automatically"
                );
                let to_sha256 = self.active().sha256;
                self.inner.rolled_back.send_replace(Some(AutoRolledBack {
                    from_sha256: published.version.info.sha256.clone(),
                    to_sha256,
                    reason: record.reason,
                }));
            }
            Err(RollbackError::Superseded) => {}
            Err(e) => tracing::error!(error = %e, "automatic rollback impossible"),
        }
    }

    /// Swap active and previous. With `only_if`, nothing happens unless that
    /// publication is still the active one (an automatic rollback must not
    /// undo a swap made since).
    fn roll_back(
        &self,
        reason: &str,
        automatic: bool,
        only_if: Option<&Arc<Published>>,
    ) -> Result<RollbackRecord, RollbackError> {
        let mut history = self.history();
        let current = self.inner.active.load_full();
        if let Some(expected) = only_if
            && !Arc::ptr_eq(&current, expected)
        {
            return Err(RollbackError::Superseded);
        }
        let restored = history.previous.take().ok_or(RollbackError::NoPrevious)?;
        let by = if automatic {
            PublishedBy::AutoRollback
        } else {
            PublishedBy::Rollback
        };
        let record = RollbackRecord {
            from: current.version.info.seq,
            to: restored.info.seq,
            automatic,
            reason: reason.to_owned(),
            at: timestamp(SystemTime::now()),
        };
        self.inner
            .active
            .store(Arc::new(Published::new(restored, by)));
        current.version.release_idle();
        history.previous = Some(current.version.clone());
        history.last_rollback = Some(record.clone());
        history.note(Change {
            kind: if automatic {
                "auto-rollback"
            } else {
                "rollback"
            },
            from: record.from,
            to: record.to,
            detail: record.reason.clone(),
            at: record.at.clone(),
        });
        self.inner.rollbacks[usize::from(automatic)].fetch_add(1, Ordering::Relaxed);
        if !automatic {
            tracing::warn!(from = record.from, to = record.to, "policy rolled back");
        }
        Ok(record)
    }

    /// The limits its calls run under (a candidate is checked under the
    /// same: `POST /admin/policy/check`).
    pub fn limits(&self) -> PolicyLimits {
        self.inner.runtime.limits.clone()
    }

    /// The figures `/metrics` shows: the active and previous versions'
    /// calls, swaps and rollbacks.
    pub fn figures(&self) -> crate::metrics::scrape::PolicyFigures {
        let active = self.inner.active.load_full();
        let mut versions = vec![active.version.figures.read(active.version.info.seq)];
        if let Some(previous) = &self.history().previous {
            versions.push(previous.figures.read(previous.info.seq));
        }
        crate::metrics::scrape::PolicyFigures {
            active: active.version.info.seq,
            versions,
            swaps: self.inner.swaps.load(Ordering::Relaxed),
            rollbacks: self.inner.rollbacks[0].load(Ordering::Relaxed),
            auto_rollbacks: self.inner.rollbacks[1].load(Ordering::Relaxed),
        }
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        // The history is a pair of pointers; a panic elsewhere while it was
        // held cannot leave it half-written.
        self.inner
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("active", &self.active())
            .finish()
    }
}
