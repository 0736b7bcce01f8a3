//! Running the policy: the active publication (an atomically swapped
//! pointer), instances pooled per version, and one guarded call per event.
//!
//! A call loads the active publication once and runs entirely on that
//! version: a swap during the call does not affect it, and the next call
//! uses the new version. An instance is checked out of its version's idle
//! queue for the length of a call (calls on other threads take others) and
//! put back only if its version is still the active one.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTableError};
use wasmtime::{Engine, Store, Trap};

use super::answer::{self, Answer, Bound};
use super::bindings::switchboard::policy::types as wit;
use super::bindings::{Policy as Bindings, PolicyPre};
use super::engine;
use super::host_api::{HostState, PolicyEnv};
use super::no_wait::{self, WouldWait};
use super::swap::History;
use super::types::{Action, CallError, ConnectInfo, Frame, LoadError, Reject};
use super::version::{Instance, Published, PublishedBy, Version, VersionInfo, timestamp};
use crate::config::PolicyLimits;

/// Least time a new instance gets to instantiate.
const INSTANTIATE_BUDGET: Duration = Duration::from_secs(1);

/// The cheap-to-clone handle to the policy runtime.
#[derive(Clone)]
pub struct Policy {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    /// Compiles components and runs them (pooling allocator, epochs).
    pub engine: Engine,
    /// Advances the epoch while calls run.
    pub ticker: engine::Ticker,
    /// Host imports (WASI that grants nothing, registry, state, log, clock).
    pub linker: Linker<HostState>,
    /// The version every new call uses, and since when.
    pub active: ArcSwap<Published>,
    /// The previous version (for rollback) and the last rollback.
    pub history: Mutex<History>,
    /// Source of version numbers.
    pub next_seq: std::sync::atomic::AtomicU64,
    /// What every version's calls reach.
    pub env: PolicyEnv,
    /// What a call may use, and when to roll back automatically.
    pub limits: PolicyLimits,
}

/// The event a call delivers.
enum Event {
    Connect(wit::ConnectInfo),
    Message(String, wit::Frame),
    Disconnect(String),
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
        let (engine, ticker) = engine::build(&limits)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| no_wait::shadow(&mut linker))
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        Bindings::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let max_idle = limits.pool_instances as usize;
        let first = Arc::new(prepare(&engine, &linker, 1, &bytes, source, max_idle)?);
        let inner = Arc::new(Inner {
            engine,
            ticker,
            linker,
            active: ArcSwap::from_pointee(Published::new(first.clone(), PublishedBy::Start)),
            history: Mutex::new(History::default()),
            next_seq: std::sync::atomic::AtomicU64::new(2),
            env,
            limits,
        });
        let policy = Policy { inner };
        policy.warm(&first)?;
        Ok(policy)
    }

    /// Facts about the active version.
    pub fn active(&self) -> VersionInfo {
        self.inner.active.load().version.info.clone()
    }

    /// `on-connect`: accept with actions, or refuse.
    pub fn on_connect(&self, info: ConnectInfo) -> Result<Result<Vec<Action>, Reject>, CallError> {
        match self.invoke(Event::Connect(info.into()))? {
            Ok(actions) => Ok(Ok(actions)),
            Err(reject) => Ok(Err(reject.into())),
        }
    }

    /// `on-message`.
    pub fn on_message(&self, sender: &str, frame: Frame) -> Result<Vec<Action>, CallError> {
        self.invoke(Event::Message(sender.to_owned(), frame.into()))?
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
    fn invoke(&self, event: Event) -> Result<Result<Vec<Action>, wit::Reject>, CallError> {
        let published = self.inner.active.load_full();
        let version = &published.version;
        let mut inst = match version.take_idle() {
            Some(inst) => inst,
            None => self.instantiate(version)?,
        };
        published.calls.fetch_add(1, Ordering::Relaxed);
        let outcome = match self.call(&mut inst, event) {
            // The guest returned normally, even with an answer over the
            // caps: its instance can serve again.
            Ok(answer) => {
                self.checkin(version, inst);
                match answer {
                    Ok(Answer::Actions(actions)) => Ok(Ok(actions)),
                    Ok(Answer::Refused(e)) => Err(e),
                    Err(reject) => Ok(Err(reject)),
                }
            }
            // A failed instance is dropped: a trap leaves it unusable.
            Err(e) => Err(e),
        };
        if let Err(e) = &outcome {
            self.failed(&published, e);
        }
        outcome
    }

    fn call(
        &self,
        inst: &mut Instance,
        event: Event,
    ) -> Result<Result<Answer, wit::Reject>, CallError> {
        let limits = &self.inner.limits;
        inst.store.data_mut().limiter.hit = false;
        let _running = self.inner.ticker.call_starts();
        inst.store
            .set_epoch_deadline(engine::ticks(limits.call_deadline));
        let bound = Bound {
            max_actions: limits.max_actions,
            max_bytes: limits.max_output_bytes,
        };
        let exports = &inst.exports;
        let store = &mut inst.store;
        let outcome = answer::bounded(bound, || match event {
            Event::Connect(info) => exports.on_connect.call(store, (info,)),
            Event::Message(sender, frame) => exports
                .on_message
                .call(store, (sender, frame))
                .map(|(answer,)| (Ok(answer),)),
            Event::Disconnect(id) => exports
                .on_disconnect
                .call(store, (id,))
                .map(|(answer,)| (Ok(answer),)),
        });
        match outcome {
            Err(e) => Err(self.classify(inst, e)),
            Ok((answer,)) => Ok(answer),
        }
    }

    fn timeout(&self) -> CallError {
        CallError::Timeout(self.inner.limits.call_deadline.as_millis() as u64)
    }

    /// Name a failed call.
    fn classify(&self, inst: &Instance, e: wasmtime::Error) -> CallError {
        tracing::warn!(
            version = inst.seq,
            error = format!("{e:?}"),
            "policy call failed"
        );
        if inst.store.data().limiter.hit {
            return CallError::Memory(self.inner.limits.memory_bytes);
        }
        if e.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<ResourceTableError>(),
                Some(ResourceTableError::Full)
            )
        }) {
            return CallError::Resources(self.inner.limits.max_resources);
        }
        if let Some(wait) = e.chain().find_map(|c| c.downcast_ref::<WouldWait>()) {
            return CallError::Trap(wait.to_string());
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => self.timeout(),
            Some(trap) => CallError::Trap(trap.to_string()),
            None => CallError::Trap(e.to_string()),
        }
    }

    /// Make one instance of `version` and keep it idle: proves the version
    /// instantiates, and the first call does not pay for it.
    pub(super) fn warm(&self, version: &Version) -> Result<(), LoadError> {
        let inst = self
            .instantiate(version)
            .map_err(|e| LoadError::Instantiate(e.to_string()))?;
        version.put_idle(inst);
        Ok(())
    }

    /// A fresh instance of `version`, itself under a deadline (start
    /// functions run guest code too).
    fn instantiate(&self, version: &Version) -> Result<Instance, CallError> {
        let inner = &self.inner;
        let state = HostState::new(&inner.env, &inner.limits, version.info.seq);
        let mut store = Store::new(&inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_hostcall_fuel(hostcall_fuel(&inner.limits));
        // Handles of resources a component makes for itself cost host
        // memory too; WASI resources (bounded by the table) take one each.
        store.set_max_component_handles(inner.limits.max_resources.saturating_mul(2));
        // Instantiation gets its own, longer budget: on a loaded machine it
        // can take longer than a call deadline, and failing it would fail a
        // call that merely needed a fresh instance.
        let budget = inner.limits.call_deadline.max(INSTANTIATE_BUDGET);
        let _running = inner.ticker.call_starts();
        store.set_epoch_deadline(engine::ticks(budget));
        match version.pre.instantiate(&mut store) {
            Err(e) => {
                tracing::warn!(
                    version = version.info.seq,
                    error = format!("{e:?}"),
                    "policy instantiation failed"
                );
                if store.data().limiter.hit {
                    return Err(CallError::Memory(inner.limits.memory_bytes));
                }
                Err(CallError::Instantiate(format!("{e:#}")))
            }
            Ok(bindings) => version
                .adopt(store, bindings)
                .map_err(|e| CallError::Instantiate(format!("{e:#}"))),
        }
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

    pub(super) fn is_active(&self, version: &Arc<Version>) -> bool {
        Arc::ptr_eq(&self.inner.active.load().version, version)
    }
}

/// How many bytes wasmtime may copy from a guest into the host in one
/// crossing (the arguments of one import call, or one answer): lowered from
/// its 128 MiB default. A value a guest passes cannot be larger than its
/// memory (twice that covers two arguments sharing it), and an answer
/// within the caps needs its bytes plus room for the action list.
fn hostcall_fuel(limits: &PolicyLimits) -> usize {
    let bound = Bound {
        max_actions: limits.max_actions,
        max_bytes: limits.max_output_bytes,
    };
    limits
        .memory_bytes
        .saturating_mul(2)
        .max(answer::fuel_needed(bound))
}

/// Compile `bytes`, check it against the world and pre-link it.
pub(super) fn prepare(
    engine: &Engine,
    linker: &Linker<HostState>,
    seq: u64,
    bytes: &[u8],
    source: &str,
    max_idle: usize,
) -> Result<Version, LoadError> {
    let component = Component::new(engine, bytes).map_err(|e| {
        let message = format!("{e:#}");
        if message.contains("minimum byte size") {
            // The pool's memory size is the per-instance cap.
            LoadError::Instantiate(format!(
                "{message}: its initial memory is larger than the memory cap (raise --policy-memory-mib)"
            ))
        } else {
            LoadError::Compile(message)
        }
    })?;
    let imports = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| LoadError::World(format!("{e:#}")))?;
    let pre = PolicyPre::new(pre).map_err(|e| LoadError::World(format!("{e:#}")))?;
    let info = VersionInfo {
        seq,
        sha256: sha256_hex(bytes),
        size: bytes.len(),
        source: source.to_owned(),
        loaded_at: timestamp(SystemTime::now()),
        imports,
    };
    Ok(Version::new(info, pre, max_idle))
}

/// SHA-256 of `bytes` as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("active", &self.active())
            .finish()
    }
}
