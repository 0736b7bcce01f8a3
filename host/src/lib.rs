//! Switchboard: a WebSocket chat server whose chat rules run as a sandboxed
//! WebAssembly component.
//!
//! Module map (arrows point down: `net` → `chat` → `policy` → `store`;
//! `config` and `ops` beside them):
//! - [`net`]    — sockets, TLS, the upgrade, one task per connection, the bytes on the wire
//! - [`chat`]   — the registry of ids and rooms, a connection's life, carrying out decisions
//! - [`policy`] — the sandbox; the only place wasmtime is named
//! - [`store`]  — what outlives a connection: policy state, room history, stored notices
//! - [`config`] — every setting: flag, variable, file key and default, written once
//! - [`ops`]    — the operator's side: admin HTTP, reload, recording, `switchboard policy …`
//! - [`metrics`] — what `/metrics` shows: counters every layer bumps, figures read when scraped
//! - [`memory`] — freed memory given back to the OS by threads that went quiet; no transparent huge pages
//!
//! Each folder's `mod.rs` maps its files.

pub mod chat;
pub mod config;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod ops;
pub mod policy;
pub mod store;
