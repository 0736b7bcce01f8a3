//! One loaded policy version (compiled, checked against the world,
//! pre-linked) with the idle instances made from it, and one publication of
//! a version as the active policy.
//!
//! Idle instances live in a lock-free queue on their version rather than in
//! per-thread caches: when a version stops being active its idle instances
//! are dropped at once (releasing their pool slots), whichever worker thread
//! made them, and an instance still running a call is dropped when that call
//! ends instead of being put back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use crossbeam_queue::ArrayQueue;
use serde::Serialize;
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre, TypedFunc};

use super::answer::Answer;
use super::bindings::exports::switchboard::{policy0_1_0, policy0_2_0};
use super::bindings::{v1, v2};
use super::host_api::HostState;
use super::types::CallError;

/// The world versions a policy may target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum World {
    /// `switchboard:policy/policy@0.1.0` (frozen; protocol v1).
    #[serde(rename = "0.1.0")]
    V0_1_0,
    /// `switchboard:policy/policy@0.2.0` (protocol v2).
    #[serde(rename = "0.2.0")]
    V0_2_0,
}

impl World {
    /// Both, oldest first.
    pub const ALL: [World; 2] = [World::V0_1_0, World::V0_2_0];

    /// `0.1.0` or `0.2.0`.
    pub fn version(self) -> &'static str {
        match self {
            World::V0_1_0 => "0.1.0",
            World::V0_2_0 => "0.2.0",
        }
    }

    /// The handler interface a component of this world exports.
    fn handler(self) -> String {
        format!("switchboard:policy/handler@{}", self.version())
    }

    /// The world a component targets, from the handler it exports; its
    /// `switchboard:policy` imports must be of that version too.
    pub fn of(component: &Component, imports: &[String]) -> Result<World, String> {
        let exported: Vec<World> = World::ALL
            .into_iter()
            .filter(|w| component.get_export_index(None, w.handler()).is_some())
            .collect();
        let world = match exported[..] {
            [world] => world,
            [] => {
                return Err(
                    "it exports no `switchboard:policy/handler` of version 0.1.0 or 0.2.0".into(),
                );
            }
            _ => return Err("it exports the handler of both 0.1.0 and 0.2.0".into()),
        };
        let own = format!("@{}", world.version());
        if let Some(other) = imports
            .iter()
            .find(|i| i.starts_with("switchboard:policy/") && !i.ends_with(&own))
        {
            return Err(format!(
                "it exports the {} handler but imports `{other}`: one component targets one world version",
                world.version()
            ));
        }
        Ok(world)
    }
}

/// A version's handler functions, found before any instance exists.
pub(super) enum Indices {
    V0_1_0(policy0_1_0::handler::GuestIndices),
    V0_2_0(policy0_2_0::handler::GuestIndices),
}

impl Indices {
    /// The handler of `world` in `pre`'s component.
    pub fn new(world: World, pre: &InstancePre<HostState>) -> wasmtime::Result<Indices> {
        Ok(match world {
            World::V0_1_0 => Indices::V0_1_0(policy0_1_0::handler::GuestIndices::new(pre)?),
            World::V0_2_0 => Indices::V0_2_0(policy0_2_0::handler::GuestIndices::new(pre)?),
        })
    }
}

/// What is known about a loaded version.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// 1 for the version loaded at start, then increasing with every load.
    pub seq: u64,
    /// SHA-256 of the component bytes, hex.
    pub sha256: String,
    /// Component size in bytes.
    pub size: usize,
    /// Where it came from (file name, "embedded default policy", "upload", …).
    pub source: String,
    /// When it was loaded (RFC 3339, UTC).
    pub loaded_at: String,
    /// What the component imports (interface names).
    pub imports: Vec<String>,
    /// The world version it targets.
    pub world: World,
}

/// A loaded version.
pub struct Version {
    /// Public facts.
    pub info: VersionInfo,
    /// Pre-linked, so instantiation is cheap.
    pub(super) pre: InstancePre<HostState>,
    /// Where its handler's functions are.
    indices: Indices,
    /// Instances waiting for a call.
    idle: ArrayQueue<Instance>,
    /// Instances in existence (idle or in a call).
    live: Arc<AtomicUsize>,
    /// The component itself: a cluster hands it to a node that lacks it.
    pub bytes: Arc<[u8]>,
    /// Its calls since it was loaded, whatever its publications
    /// (`/metrics`: a counter must not restart when a rollback brings the
    /// version back).
    pub(super) figures: Figures,
}

/// One version's call figures for `/metrics`.
#[derive(Debug, Default)]
pub(super) struct Figures {
    pub calls: AtomicU64,
    /// By [`CallError::kind`] index.
    pub failures: [AtomicU64; CallError::KINDS.len()],
    pub latency: crate::metrics::Histogram,
}

impl Figures {
    pub fn failed(&self, error: &CallError) {
        self.failures[error.kind_index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn read(&self, seq: u64) -> crate::metrics::scrape::VersionFigures {
        crate::metrics::scrape::VersionFigures {
            seq,
            calls: self.calls.load(Ordering::Relaxed),
            failures: CallError::KINDS
                .iter()
                .zip(&self.failures)
                .map(|(kind, n)| (*kind, n.load(Ordering::Relaxed)))
                .collect(),
            latency: self.latency.snapshot(),
        }
    }
}

impl Version {
    pub(super) fn new(
        info: VersionInfo,
        pre: InstancePre<HostState>,
        indices: Indices,
        max_idle: usize,
        bytes: &[u8],
    ) -> Self {
        Version {
            bytes: Arc::from(bytes),
            info,
            pre,
            indices,
            idle: ArrayQueue::new(max_idle.max(1)),
            live: Arc::new(AtomicUsize::new(0)),
            figures: Figures::default(),
        }
    }

    /// Instances of this version that exist now (idle or running a call).
    pub fn instances(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Wrap a freshly instantiated store.
    pub(super) fn adopt(
        &self,
        mut store: Store<HostState>,
        instance: wasmtime::component::Instance,
    ) -> wasmtime::Result<Instance> {
        let exports = Exports::new(&mut store, &self.indices, &instance)?;
        self.live.fetch_add(1, Ordering::SeqCst);
        let cap = store.data().limiter.memory_bytes;
        let start = store.data().limiter.largest;
        Ok(Instance {
            seq: self.info.seq,
            sha256: Arc::from(self.info.sha256.as_str()),
            // Half the headroom left after instantiation.
            recycle_above: start + cap.saturating_sub(start) / 2,
            store,
            exports,
            live: self.live.clone(),
        })
    }

    pub(super) fn take_idle(&self) -> Option<Instance> {
        self.idle.pop()
    }

    /// Keep `inst` for a later call (dropped if enough are idle already).
    pub(super) fn put_idle(&self, inst: Instance) {
        let _ = self.idle.push(inst);
    }

    /// Drop every idle instance (the version is no longer active).
    pub(super) fn release_idle(&self) {
        while self.idle.pop().is_some() {}
    }
}

/// An instance, checked out for one call at a time.
pub(super) struct Instance {
    /// Its version's `seq` (for logs).
    pub seq: u64,
    /// Its version's SHA-256 (for logs).
    pub sha256: Arc<str>,
    /// Memory size past which the instance is replaced after its call
    /// rather than reused.
    pub recycle_above: usize,
    /// The store (memory, WASI resources, host state).
    pub store: Store<HostState>,
    /// The handler's functions.
    pub exports: Exports,
    live: Arc<AtomicUsize>,
}

impl Instance {
    /// Whether the instance has grown enough that its next call might run
    /// out of memory or of resources: a guest that leaks (or a
    /// garbage-collected language that collects late) is replaced between
    /// calls, at the cost of one instantiation, instead of failing a
    /// client's call at the cap.
    pub fn worn_out(&mut self) -> bool {
        self.store.data().limiter.largest > self.recycle_above
            || self.store.data_mut().holds_many_resources()
    }
}

/// The handler's exports as typed functions whose answers are measured
/// before they are copied out (see `answer`), instead of the generated
/// `call_on_*`, which copy first. One set per world version.
pub(super) enum Exports {
    V0_1_0 {
        on_connect: TypedFunc<
            (v1::types::ConnectInfo,),
            (Result<Answer<v1::types::Action>, v1::types::Reject>,),
        >,
        on_message: TypedFunc<(String, v1::types::Frame), (Answer<v1::types::Action>,)>,
        on_disconnect: TypedFunc<(String,), (Answer<v1::types::Action>,)>,
    },
    V0_2_0 {
        on_connect: TypedFunc<
            (v2::types::ConnectInfo,),
            (Result<Answer<v2::types::Action>, v2::types::Reject>,),
        >,
        on_message: TypedFunc<(String, v2::types::Frame), (Answer<v2::types::Action>,)>,
        on_disconnect: TypedFunc<(String,), (Answer<v2::types::Action>,)>,
    },
}

impl Exports {
    /// The handler's functions in `instance`, type-checked against the
    /// world and then against these types.
    fn new(
        store: &mut Store<HostState>,
        indices: &Indices,
        instance: &wasmtime::component::Instance,
    ) -> wasmtime::Result<Exports> {
        Ok(match indices {
            Indices::V0_1_0(indices) => {
                let handler = indices.load(&mut *store, instance)?;
                Exports::V0_1_0 {
                    on_connect: handler.func_on_connect().func().typed(&*store)?,
                    on_message: handler.func_on_message().func().typed(&*store)?,
                    on_disconnect: handler.func_on_disconnect().func().typed(&*store)?,
                }
            }
            Indices::V0_2_0(indices) => {
                let handler = indices.load(&mut *store, instance)?;
                Exports::V0_2_0 {
                    on_connect: handler.func_on_connect().func().typed(&*store)?,
                    on_message: handler.func_on_message().func().typed(&*store)?,
                    on_disconnect: handler.func_on_disconnect().func().typed(&*store)?,
                }
            }
        })
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a version became the active one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublishedBy {
    /// Loaded at start-up.
    Start,
    /// Swapped in by an operator (admin API, file watch, SIGHUP).
    Swap,
    /// Restored by an operator's rollback.
    Rollback,
    /// Restored by the automatic rollback.
    AutoRollback,
}

/// One period of a version being the active one, with its call counters.
pub(super) struct Published {
    pub version: Arc<Version>,
    pub by: PublishedBy,
    pub at: Instant,
    pub at_wall: SystemTime,
    /// Calls that ran on this publication.
    pub calls: AtomicU64,
    /// Of those, calls the policy failed (trap, timeout, memory, resources,
    /// over-limit answer).
    pub failures: AtomicU64,
    /// Of those, the ones that count toward automatic rollback (not the
    /// over-limit answers a client can provoke).
    pub strikes: AtomicU64,
}

impl Published {
    pub fn new(version: Arc<Version>, by: PublishedBy) -> Self {
        Published {
            version,
            by,
            at: Instant::now(),
            at_wall: SystemTime::now(),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            strikes: AtomicU64::new(0),
        }
    }
}

/// RFC 3339 with milliseconds, UTC.
pub(super) fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}
