//! What a guest may call: read-only registry questions, the host-held state,
//! logging and a clock, plus a WASI context that grants nothing but its
//! clocks (the host's [`Clock`]), randomness and stdout/stderr (the log).
//! This is also the per-store data (`HostState`).

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{v1, v2};
use super::clocks::{MonotonicClock, WallClock};
use super::deadline::Deadline;
use super::output::GuestOutput;
use super::queries;
use crate::config::PolicyLimits;
use crate::policy::clock::Clock;
use std::sync::Arc;

use crate::store::history::History;
use crate::store::presence::Presence;
use crate::store::state::{State, StateError};

/// Longest log message a guest can emit in one call to `log`.
const MAX_LOG_MESSAGE: usize = 4096;

/// Everything a guest call can reach, one per store.
pub struct HostState {
    /// WASI context granting nothing: no preopens, env, args, sockets or
    /// name lookup; stdio → log; clocks → `clock`.
    wasi: WasiCtx,
    /// WASI resources the guest holds (streams, pollables), at most
    /// `max_resources` of them.
    table: ResourceTable,
    /// Who is where: the read-only `registry` questions.
    registry: Arc<dyn Presence>,
    /// The host-held key-value store.
    state: Arc<dyn State>,
    /// Every room's history (`history.read`).
    history: Arc<dyn History>,
    /// What `clock` answers from.
    clock: Clock,
    /// Memory cap and whether the guest hit it.
    pub(crate) limiter: Limiter,
    /// The running call's CPU-time deadline.
    pub(crate) deadline: Deadline,
    /// Policy version, for log lines.
    version: u64,
}

impl HostState {
    /// State for one store of policy version `version`.
    pub fn new(env: &PolicyEnv, limits: &PolicyLimits, version: u64) -> Self {
        // Stated even where they are wasmtime-wasi's defaults, so that a
        // change of defaults cannot open the sandbox. Nothing else is
        // granted: no preopened directory, environment variable, argument
        // or inherited stdio.
        let wasi = WasiCtxBuilder::new()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(GuestOutput { stream: "stdout" })
            .stderr(GuestOutput { stream: "stderr" })
            .wall_clock(WallClock(env.clock.clone()))
            .monotonic_clock(MonotonicClock(env.clock.clone()))
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_resources);
        HostState {
            wasi,
            table,
            registry: env.registry.clone(),
            state: env.state.clone(),
            history: env.history.clone(),
            clock: env.clock.clone(),
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                hit: false,
                largest: 0,
            },
            deadline: Deadline::new(),
            version,
        }
    }

    /// Whether the guest holds more than half the WASI resources it may
    /// (then its instance is not reused: its next call might fail).
    pub(crate) fn holds_many_resources(&mut self) -> bool {
        let half = self.table.max_capacity() / 2;
        self.table.iter_mut().nth(half).is_some()
    }
}

/// What the host lends every version of a policy: the presence it asks
/// (the registry of connections on one server; never named here), the
/// state it keeps (shared by all versions, so it survives swaps) and the
/// clock it reads.
#[derive(Debug, Clone)]
pub struct PolicyEnv {
    /// Answers `registry` questions.
    pub registry: Arc<dyn Presence>,
    /// Backs `state`.
    pub state: Arc<dyn State>,
    /// Backs `history` (world 0.2.0).
    pub history: Arc<dyn History>,
    /// Backs `clock`.
    pub clock: Clock,
}

/// Refuses memory growth past the cap and remembers that it did, so a trap
/// that follows can be reported as "out of memory".
pub struct Limiter {
    /// Largest linear memory allowed.
    pub memory_bytes: usize,
    /// Set when a growth was refused.
    pub hit: bool,
    /// The largest linear memory size reached (any memory of the instance).
    pub largest: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_bytes;
        self.hit |= !ok;
        if ok {
            self.largest = self.largest.max(desired);
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The imports both world versions share (`registry`, `state`, `log`,
/// `clock`), implemented once: the versions' generated traits differ only
/// in the module they were generated in.
macro_rules! shared_imports {
    ($wit:ident) => {
        impl $wit::types::Host for HostState {}

        impl $wit::state::Host for HostState {
            fn get(&mut self, key: String) -> Option<Vec<u8>> {
                self.state.get(&key)
            }

            fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), $wit::state::StateError> {
                self.state.set(key, value).map_err(|e| match e {
                    StateError::TooLarge(n) => $wit::state::StateError::TooLarge(count(n)),
                    StateError::Full => $wit::state::StateError::Full,
                })
            }

            fn delete(&mut self, key: String) -> bool {
                self.state.delete(&key)
            }
        }

        impl $wit::log::Host for HostState {
            fn log(&mut self, level: $wit::types::Level, message: String) {
                use $wit::types::Level;
                let level = match level {
                    Level::Trace => tracing::Level::TRACE,
                    Level::Debug => tracing::Level::DEBUG,
                    Level::Info => tracing::Level::INFO,
                    Level::Warn => tracing::Level::WARN,
                    Level::Error => tracing::Level::ERROR,
                };
                self.guest_log(level, message);
            }
        }

        impl $wit::clock::Host for HostState {
            fn now_ms(&mut self) -> u64 {
                self.clock.now_ms()
            }

            fn monotonic_ns(&mut self) -> u64 {
                self.clock.monotonic_ns()
            }
        }
    };
}

/// `registry`'s functions of world 0.1.0, which 0.2.0 keeps.
macro_rules! registry_v1 {
    () => {
        fn is_online(&mut self, id: String) -> bool {
            queries::ask() && self.registry.is_online_now(&id)
        }

        fn in_room(&mut self, id: String, room: String) -> bool {
            self.registry.in_room_now(&id, &room)
        }

        fn room_members(&mut self, room: String) -> Vec<String> {
            if !queries::ask() {
                return Vec::new();
            }
            self.registry.members_now(&room, usize::MAX).ids
        }

        fn room_size(&mut self, room: String) -> u32 {
            count(self.registry.members_now(&room, 0).count)
        }

        fn rooms_of(&mut self, id: String) -> Vec<String> {
            self.registry.rooms_of_now(&id)
        }

        fn online_count(&mut self) -> u32 {
            count(self.registry.online_count_now())
        }
    };
}

shared_imports!(v1);
shared_imports!(v2);

impl v1::registry::Host for HostState {
    registry_v1!();
}

impl v2::registry::Host for HostState {
    registry_v1!();

    fn room_members_up_to(&mut self, room: String, limit: u32) -> Vec<String> {
        if !queries::ask() {
            return Vec::new();
        }
        self.registry.members_now(&room, limit as usize).ids
    }
}

impl v2::history::Host for HostState {
    fn read(&mut self, room: String, before: Option<u64>, limit: u32) -> v2::history::Page {
        if !queries::ask() {
            return v2::history::Page {
                epoch: String::new(),
                offsets: Vec::new(),
                messages: Vec::new(),
            };
        }
        let page = self.history.read(&room, before, limit as usize);
        v2::history::Page {
            epoch: page.epoch,
            offsets: page.offsets,
            messages: page.messages,
        }
    }

    fn top(&mut self, room: String) -> v2::types::Position {
        let (epoch, offset) = self.history.top(&room);
        v2::types::Position { epoch, offset }
    }
}

impl HostState {
    /// A guest's log line, cut to [`MAX_LOG_MESSAGE`] bytes.
    fn guest_log(&self, level: tracing::Level, mut message: String) {
        if message.len() > MAX_LOG_MESSAGE {
            let mut cut = MAX_LOG_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let v = self.version;
        match level {
            tracing::Level::TRACE => tracing::trace!(target: "policy", version = v, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(target: "policy", version = v, "{message}"),
            tracing::Level::INFO => tracing::info!(target: "policy", version = v, "{message}"),
            tracing::Level::WARN => tracing::warn!(target: "policy", version = v, "{message}"),
            tracing::Level::ERROR => tracing::error!(target: "policy", version = v, "{message}"),
        }
    }
}
