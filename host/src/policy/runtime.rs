//! The sandbox's machinery, with no notion of which version is active: the
//! engine, the linker with every host import, loading a component into a
//! [`Version`], making instances of it, and one guarded call on an
//! instance. `versions` builds the active/previous bookkeeping on top.

use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTableError};
use wasmtime::{Engine, Store, Trap};

use super::answer::{self, Answer, Bound, Decided, WitAction};
use super::bindings::Policies as Bindings;
use super::engine;
use super::host_api::{HostState, PolicyEnv};
use super::no_wait::{self, WouldWait};
use super::types::{CallError, ConnectInfo, Frame, LoadError, Reject};
use super::version::{Exports, Indices, Instance, Version, VersionInfo, World, timestamp};
use crate::config::PolicyLimits;

/// Least time a new instance gets to instantiate.
const INSTANTIATE_BUDGET: Duration = Duration::from_secs(1);

/// Everything a version needs to be loaded and called.
pub(super) struct Runtime {
    /// Compiles components and runs them (pooling allocator, epochs).
    pub engine: Engine,
    /// Advances the epoch while calls run.
    pub ticker: engine::Ticker,
    /// Host imports (WASI that grants nothing, registry, state, log, clock).
    pub linker: Linker<HostState>,
    /// What every version's calls reach.
    pub env: PolicyEnv,
    /// What a call may use, and when to roll back automatically.
    pub limits: PolicyLimits,
}

/// The event a call delivers.
pub(super) enum Event {
    Connect(ConnectInfo),
    Message(String, Frame),
    Disconnect(String),
}

/// What a call returned: a decision, or (`on-connect` only) a refusal.
pub(super) type Returned = Result<Decided, Reject>;

impl Runtime {
    /// The engine and a linker with every host import.
    pub fn new(env: PolicyEnv, limits: PolicyLimits) -> Result<Runtime, LoadError> {
        let (engine, ticker) = engine::build(&limits)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| no_wait::shadow(&mut linker))
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        Bindings::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        Ok(Runtime {
            engine,
            ticker,
            linker,
            env,
            limits,
        })
    }

    /// Compile `bytes`, find which world version it targets, check it
    /// against that world and pre-link it.
    pub fn prepare(
        &self,
        seq: u64,
        bytes: &[u8],
        source: &str,
        max_idle: usize,
    ) -> Result<Version, LoadError> {
        let component = Component::new(&self.engine, bytes);
        crate::memory::after_compile();
        let component = component.map_err(|e| {
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
        let imports: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let world = World::of(&component, &imports).map_err(LoadError::World)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::World(format!("{e:#}")))?;
        let indices = Indices::new(world, &pre).map_err(|e| LoadError::World(format!("{e:#}")))?;
        let info = VersionInfo {
            seq,
            sha256: sha256_hex(bytes),
            size: bytes.len(),
            source: source.to_owned(),
            loaded_at: timestamp(SystemTime::now()),
            imports,
            world,
        };
        Ok(Version::new(info, pre, indices, max_idle, bytes))
    }

    /// A fresh instance of `version`, itself under a deadline (start
    /// functions run guest code too).
    pub fn instantiate(&self, version: &Version) -> Result<Instance, CallError> {
        let inner = self;
        let state = HostState::new(&inner.env, &inner.limits, version.info.seq);
        let mut store = Store::new(&inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Every tick past a store's deadline asks its call's CPU time.
        store.epoch_deadline_callback(|mut cx| Ok(cx.data_mut().deadline.on_tick()));
        store.set_hostcall_fuel(hostcall_fuel(&inner.limits));
        // Handles of resources a component makes for itself cost host
        // memory too; WASI resources (bounded by the table) take one each.
        store.set_max_component_handles(inner.limits.max_resources.saturating_mul(2));
        // Instantiation gets its own, longer budget: on a loaded machine it
        // can take longer than a call deadline, and failing it would fail a
        // call that merely needed a fresh instance.
        let budget = inner.limits.call_deadline.max(INSTANTIATE_BUDGET);
        let _running = inner.ticker.call_starts();
        arm(&mut store, budget);
        match version.pre.instantiate(&mut store) {
            Err(e) => {
                tracing::warn!(
                    version = version.info.seq,
                    sha256 = %version.info.sha256,
                    error = format!("{e:?}"),
                    "policy instantiation failed"
                );
                if store.data().limiter.hit {
                    return Err(CallError::Memory(inner.limits.memory_bytes));
                }
                Err(CallError::Instantiate(format!("{e:#}")))
            }
            Ok(instance) => version
                .adopt(store, instance)
                .map_err(|e| CallError::Instantiate(format!("{e:#}"))),
        }
    }

    /// One call on `inst`, deadline armed, its answer bounded before it is
    /// copied out.
    pub fn call(&self, inst: &mut Instance, event: Event) -> Result<Returned, CallError> {
        let limits = &self.limits;
        inst.store.data_mut().limiter.hit = false;
        let _running = self.ticker.call_starts();
        arm(&mut inst.store, limits.call_deadline);
        let bound = Bound {
            max_actions: limits.max_actions,
            max_bytes: limits.max_output_bytes,
        };
        let store = &mut inst.store;
        // The same call for either world version (only the generated types
        // differ).
        macro_rules! deliver {
            ($on_connect:ident, $on_message:ident, $on_disconnect:ident) => {
                match event {
                    Event::Connect(info) => $on_connect.call(store, (info.into(),)).map(returned),
                    Event::Message(sender, frame) => {
                        $on_message.call(store, (sender, frame.into())).map(decided)
                    }
                    Event::Disconnect(id) => $on_disconnect.call(store, (id,)).map(decided),
                }
            };
        }
        let outcome = answer::bounded(bound, || match &inst.exports {
            Exports::V0_1_0 {
                on_connect,
                on_message,
                on_disconnect,
            } => deliver!(on_connect, on_message, on_disconnect),
            Exports::V0_2_0 {
                on_connect,
                on_message,
                on_disconnect,
            } => deliver!(on_connect, on_message, on_disconnect),
        });
        outcome.map_err(|e| self.classify(inst, e))
    }

    fn timeout(&self) -> CallError {
        CallError::Timeout(self.limits.call_deadline.as_millis() as u64)
    }

    /// Name a failed call.
    fn classify(&self, inst: &Instance, e: wasmtime::Error) -> CallError {
        tracing::warn!(
            version = inst.seq,
            sha256 = %inst.sha256,
            error = format!("{e:?}"),
            "policy call failed"
        );
        if inst.store.data().limiter.hit {
            return CallError::Memory(self.limits.memory_bytes);
        }
        if e.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<ResourceTableError>(),
                Some(ResourceTableError::Full)
            )
        }) {
            return CallError::Resources(self.limits.max_resources);
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
}

/// Start the deadline of what `store` runs next: `budget` of CPU time.
fn arm(store: &mut Store<HostState>, budget: Duration) {
    let ticks = store.data_mut().deadline.arm(budget);
    store.set_epoch_deadline(ticks);
}

/// `on-connect`'s result, whichever the world.
fn returned<A: WitAction, R: Into<Reject>>((r,): (Result<Answer<A>, R>,)) -> Returned {
    r.map(|a| a.decided).map_err(Into::into)
}

/// `on-message`'s or `on-disconnect`'s result, whichever the world.
fn decided<A: WitAction>((a,): (Answer<A>,)) -> Returned {
    Ok(a.decided)
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

/// SHA-256 of `bytes` as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
