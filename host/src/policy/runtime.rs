//! Running the policy: the active version (an atomically swapped pointer),
//! instances cached per worker thread, and one guarded call per event.
//!
//! An instance is checked out of the current thread's cache for the length of
//! a call and put back afterwards, so no lock is held on the hot path and a
//! call that is suspended (a guest waiting on a WASI pollable) cannot be
//! entered twice. Instances of an older version are dropped when met, which
//! releases their pool slots once no call uses them.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap};

use super::bindings::switchboard::policy::types as wit;
use super::bindings::{Policy as Bindings, PolicyPre};
use super::engine;
use super::host_api::HostState;
use super::types::{Action, CallError, ConnectInfo, Frame, LoadError, Reject};
use crate::config::PolicyLimits;
use crate::registry::Registry;
use crate::state::StateStore;

/// Idle instances one thread keeps per policy (more exist only while calls
/// on that thread are suspended).
const MAX_IDLE_PER_THREAD: usize = 4;

/// Least time a new instance gets to instantiate.
const INSTANTIATE_BUDGET: Duration = Duration::from_secs(1);

/// Distinguishes `Policy` objects in the per-thread caches.
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static IDLE: RefCell<Vec<Instance>> = const { RefCell::new(Vec::new()) };
}

/// The cheap-to-clone handle to the policy runtime.
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Inner>,
}

struct Inner {
    /// Identity in the per-thread caches.
    key: u64,
    /// Compiles components and runs them (pooling allocator, epochs).
    engine: Engine,
    /// The version every new call uses.
    active: ArcSwap<Version>,
    /// Source of version numbers.
    next_seq: AtomicU64,
    /// Answers the guest's registry questions.
    registry: Registry,
    /// The host-held state, shared by all versions.
    state: StateStore,
    /// What a call may use.
    limits: PolicyLimits,
}

/// One loaded component, ready to instantiate.
pub struct Version {
    /// Public facts about it.
    pub info: VersionInfo,
    /// Pre-linked, so instantiation is cheap.
    pre: PolicyPre<HostState>,
}

/// What is known about a loaded version.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    /// 1 for the first version loaded, then increasing.
    pub seq: u64,
    /// Where it came from (file name, "embedded default", …).
    pub source: String,
    /// Component size in bytes.
    pub size: usize,
}

/// An instance checked out for one call.
struct Instance {
    key: u64,
    owner: Weak<Inner>,
    seq: u64,
    store: Store<HostState>,
    bindings: Bindings,
}

/// The event a call delivers.
enum Event {
    Connect(wit::ConnectInfo),
    Message(String, wit::Frame),
    Disconnect(String),
}

impl Policy {
    /// Compile, check and trial-instantiate `bytes`, and make it the policy.
    pub async fn load(
        bytes: &[u8],
        source: &str,
        registry: Registry,
        state: StateStore,
        limits: PolicyLimits,
    ) -> Result<Policy, LoadError> {
        let engine = engine::build(&limits)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        Bindings::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let seq = 1;
        let pre = prepare(&engine, &linker, bytes)?;
        let inner = Arc::new(Inner {
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            engine,
            active: ArcSwap::from_pointee(Version {
                info: VersionInfo {
                    seq,
                    source: source.to_owned(),
                    size: bytes.len(),
                },
                pre,
            }),
            next_seq: AtomicU64::new(seq + 1),
            registry,
            state,
            limits,
        });
        let policy = Policy { inner };
        let version = policy.inner.active.load_full();
        policy
            .instantiate(&version)
            .await
            .map_err(|e| LoadError::Instantiate(e.to_string()))?;
        Ok(policy)
    }

    /// Facts about the active version.
    pub fn active(&self) -> VersionInfo {
        self.inner.active.load().info.clone()
    }

    /// Source of the next version number (used by swaps).
    pub fn next_seq(&self) -> u64 {
        self.inner.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// `on-connect`: accept with actions, or refuse.
    pub async fn on_connect(
        &self,
        info: ConnectInfo,
    ) -> Result<Result<Vec<Action>, Reject>, CallError> {
        match self.invoke(Event::Connect(info.into())).await? {
            Ok(actions) => Ok(Ok(actions)),
            Err(reject) => Ok(Err(reject.into())),
        }
    }

    /// `on-message`.
    pub async fn on_message(&self, sender: &str, frame: Frame) -> Result<Vec<Action>, CallError> {
        self.invoke(Event::Message(sender.to_owned(), frame.into()))
            .await?
            .map_err(|_| CallError::Trap("on-message cannot reject".into()))
    }

    /// `on-disconnect`.
    pub async fn on_disconnect(&self, id: &str) -> Result<Vec<Action>, CallError> {
        self.invoke(Event::Disconnect(id.to_owned()))
            .await?
            .map_err(|_| CallError::Trap("on-disconnect cannot reject".into()))
    }

    /// One guarded call: instance from this thread's cache (or a new one),
    /// deadline armed, limits checked on the answer.
    async fn invoke(&self, event: Event) -> Result<Result<Vec<Action>, wit::Reject>, CallError> {
        let version = self.inner.active.load_full();
        let mut inst = match self.checkout(version.info.seq) {
            Some(inst) => inst,
            None => self.instantiate(&version).await?,
        };
        let limits = &self.inner.limits;
        inst.store.data_mut().limiter.hit = false;
        inst.store
            .set_epoch_deadline(engine::ticks(limits.call_deadline));
        let handler = inst.bindings.switchboard_policy_handler();
        let store = &mut inst.store;
        let call = async move {
            match event {
                Event::Connect(info) => handler.call_on_connect(store, &info).await,
                Event::Message(sender, frame) => handler
                    .call_on_message(store, &sender, &frame)
                    .await
                    .map(Ok),
                Event::Disconnect(id) => handler.call_on_disconnect(store, &id).await.map(Ok),
            }
        };
        // The epoch stops a guest that computes; this stops one that waits
        // on a WASI pollable (which the epoch cannot interrupt).
        let outcome = tokio::time::timeout(limits.call_deadline * 2, call).await;
        let answer = match outcome {
            Err(_) => return Err(self.timeout()),
            Ok(Err(e)) => return Err(self.classify(&inst, e)),
            Ok(Ok(answer)) => answer,
        };
        self.checkin(inst);
        let actions = match answer {
            Ok(actions) => actions,
            Err(reject) => return Ok(Err(reject)),
        };
        let actions: Vec<Action> = actions.into_iter().map(Action::from).collect();
        self.check_output(&actions)?;
        Ok(Ok(actions))
    }

    fn check_output(&self, actions: &[Action]) -> Result<(), CallError> {
        let limits = &self.inner.limits;
        if actions.len() > limits.max_actions {
            return Err(CallError::TooManyActions {
                got: actions.len(),
                limit: limits.max_actions,
            });
        }
        let bytes: usize = actions.iter().map(Action::frame_bytes).sum();
        if bytes > limits.max_output_bytes {
            return Err(CallError::TooManyBytes {
                got: bytes,
                limit: limits.max_output_bytes,
            });
        }
        Ok(())
    }

    fn timeout(&self) -> CallError {
        CallError::Timeout(self.inner.limits.call_deadline.as_millis() as u64)
    }

    /// Name a failed call. The instance is dropped by the caller: a trap
    /// leaves it unusable.
    fn classify(&self, inst: &Instance, e: wasmtime::Error) -> CallError {
        let version = inst.seq;
        tracing::warn!(version, error = format!("{e:?}"), "policy call failed");
        if inst.store.data().limiter.hit {
            return CallError::Memory(self.inner.limits.memory_bytes);
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => self.timeout(),
            Some(trap) => CallError::Trap(trap.to_string()),
            None => CallError::Trap(e.to_string()),
        }
    }

    /// A fresh instance of `version`, itself under the call deadline (start
    /// functions run guest code too).
    async fn instantiate(&self, version: &Version) -> Result<Instance, CallError> {
        let inner = &self.inner;
        let state = HostState::new(
            inner.registry.clone(),
            inner.state.clone(),
            inner.limits.memory_bytes,
            version.info.seq,
        );
        let mut store = Store::new(&inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        // Instantiation gets its own, longer budget: on a loaded machine it
        // can take longer than a call deadline, and failing it would fail a
        // call that merely needed a fresh instance.
        let budget = inner.limits.call_deadline.max(INSTANTIATE_BUDGET);
        store.set_epoch_deadline(engine::ticks(budget));
        let made =
            tokio::time::timeout(budget * 2, version.pre.instantiate_async(&mut store)).await;
        let bindings = match made {
            Err(_) => return Err(self.timeout()),
            Ok(Err(e)) => {
                tracing::warn!(error = format!("{e:?}"), "policy instantiation failed");
                if store.data().limiter.hit {
                    return Err(CallError::Memory(inner.limits.memory_bytes));
                }
                return Err(CallError::Instantiate(format!("{e:#}")));
            }
            Ok(Ok(b)) => b,
        };
        Ok(Instance {
            key: inner.key,
            owner: Arc::downgrade(inner),
            seq: version.info.seq,
            store,
            bindings,
        })
    }

    /// An idle instance of version `seq` from this thread's cache, dropping
    /// instances of older versions and of policies that no longer exist.
    fn checkout(&self, seq: u64) -> Option<Instance> {
        let key = self.inner.key;
        IDLE.try_with(|idle| {
            let mut idle = idle.try_borrow_mut().ok()?;
            idle.retain(|i| i.owner.strong_count() > 0 && (i.key != key || i.seq >= seq));
            let pos = idle.iter().position(|i| i.key == key && i.seq == seq)?;
            Some(idle.swap_remove(pos))
        })
        .ok()
        .flatten()
    }

    fn checkin(&self, inst: Instance) {
        let _ = IDLE.try_with(|idle| {
            if let Ok(mut idle) = idle.try_borrow_mut() {
                let mine = idle.iter().filter(|i| i.key == inst.key).count();
                if mine < MAX_IDLE_PER_THREAD {
                    idle.push(inst);
                }
            }
        });
    }
}

/// Compile `bytes` and check it against the world.
fn prepare(
    engine: &Engine,
    linker: &Linker<HostState>,
    bytes: &[u8],
) -> Result<PolicyPre<HostState>, LoadError> {
    let component =
        Component::new(engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| LoadError::World(format!("{e:#}")))?;
    PolicyPre::new(pre).map_err(|e| LoadError::World(format!("{e:#}")))
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("active", &self.active())
            .finish()
    }
}
