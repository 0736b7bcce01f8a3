//! The sandbox. Everything that names a wasmtime type lives under here; the
//! rest of the host sees [`Policy`] and the plain types in [`types`].
//!
//! - `bindings` — the one `bindgen!` (from wit/policy.wit)
//! - `engine`   — wasmtime config, pooling allocator, epoch ticker
//! - `host_api` — what a guest may call (registry, state, log, clock, WASI)
//! - `clocks`   — WASI's clocks served from the host's `Clock`
//! - `output`   — guest stdout/stderr into the host log
//! - `convert`  — generated types ↔ host types
//! - `answer`   — a call's answer, bounded in guest memory before it is copied
//! - `version`  — one loaded version, its idle instances, a publication
//! - `runtime`  — the active publication and guarded calls
//! - `swap`     — candidates, publish, rollback (manual and automatic), status
//! - `check`    — the offline check of a component file

mod answer;
mod bindings;
mod check;
mod clocks;
mod convert;
mod engine;
mod host_api;
mod no_wait;
mod output;
mod runtime;
mod swap;
pub mod types;
mod version;

pub use check::{CheckReport, check};
pub use host_api::PolicyEnv;
pub use runtime::{Policy, sha256_hex};
pub use swap::{
    ActiveStatus, AutoRollback, PolicyStatus, PreviousStatus, RollbackError, RollbackRecord,
    SwapReport,
};
pub use types::{Action, CallError, ConnectInfo, Frame, LoadError, Reject};
pub use version::{PublishedBy, VersionInfo};

/// The default policy (guest-logic), built by host/build.rs.
pub const DEFAULT_POLICY: &[u8] = include_bytes!(env!("SWITCHBOARD_DEFAULT_POLICY"));
