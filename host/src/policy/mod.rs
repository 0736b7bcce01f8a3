//! The sandbox. Everything that names a wasmtime type lives under here; the
//! rest of the host sees [`Policy`] and the plain types in [`types`].
//!
//! - `bindings` — the one `bindgen!` (from wit/policy.wit)
//! - `engine`   — wasmtime config, pooling allocator, epoch ticker
//! - `deadline` — per-call deadlines in the calling thread's CPU time
//! - `host_api` — what a guest may call (registry, state, log, clock, WASI)
//! - [`clock`]  — the time policies read (system, or set by a replay)
//! - `clocks`   — WASI's clocks served from the host's `Clock`
//! - `output`   — guest stdout/stderr into the host log
//! - `convert`  — generated types ↔ host types
//! - `answer`   — a call's answer, bounded in guest memory before it is copied
//! - `version`  — one loaded version, its idle instances, a publication
//! - `runtime`  — engine, linker, loading a version, one guarded call (knows nothing of versions)
//! - `versions` — the active version and the previous: calls, swap, rollback (manual and automatic), status
//! - `check`    — the offline check of a component file
//! - [`queries`] — the query gate: presence and history imports charged to the caller's bucket

mod answer;
mod bindings;
mod check;
pub mod clock;
mod clocks;
mod convert;
mod deadline;
mod engine;
mod host_api;
mod no_wait;
mod output;
pub mod queries;
mod runtime;
pub mod types;
mod version;
mod versions;

pub use check::{CheckReport, check};
pub use host_api::PolicyEnv;
pub use runtime::sha256_hex;
pub use types::{Action, CallError, ConnectInfo, Frame, LoadError, Position, Reject};
pub use version::{PublishedBy, VersionInfo, World};
pub use versions::{
    ActiveStatus, AutoRollback, AutoRolledBack, Policy, PolicyStatus, Prepared, PreviousStatus,
    RollbackError, RollbackRecord, SwapReport,
};

/// The default policy (guest-logic), built by host/build.rs.
pub const DEFAULT_POLICY: &[u8] = include_bytes!(env!("SWITCHBOARD_DEFAULT_POLICY"));
