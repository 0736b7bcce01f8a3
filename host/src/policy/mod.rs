//! The sandbox. Everything that names a wasmtime type lives under here; the
//! rest of the host sees [`Policy`] and the plain types in [`types`].
//!
//! - `bindings` — the one `bindgen!` (from wit/policy.wit)
//! - `engine`   — wasmtime config, pooling allocator, epoch ticker
//! - `host_api` — what a guest may call (registry, state, log, clock, WASI)
//! - `output`   — guest stdout/stderr into the host log
//! - `convert`  — generated types ↔ host types
//! - `runtime`  — active version, per-thread instances, guarded calls

mod bindings;
mod convert;
mod engine;
mod host_api;
mod output;
mod runtime;
pub mod types;

pub use runtime::{Policy, VersionInfo};
pub use types::{Action, CallError, ConnectInfo, Frame, LoadError, Reject};

/// The default policy (guest-logic), built by host/build.rs.
pub const DEFAULT_POLICY: &[u8] = include_bytes!(env!("SWITCHBOARD_DEFAULT_POLICY"));
