//! Switchboard: a WebSocket chat server whose chat rules run as a sandboxed
//! WebAssembly component.
//!
//! Module map (one responsibility each):
//! - [`config`]    — every setting and its default
//! - [`cli`]       — command line → [`config::Config`]
//! - [`id`]        — connection ids: validation, extraction from the URL
//! - [`tls`]       — rustls server config from PEM files
//! - [`server`]    — bind, accept loop, graceful shutdown
//! - [`shared`]    — the context every connection task shares, connection limit
//! - [`handshake`] — HTTP upgrade: id, `on-connect`, HTTP error answers
//! - [`session`]   — one connection: read loop, writer, close
//! - [`outbound`]  — a connection's bounded outbound queue and close signal
//! - [`registry`]  — who is online, who is in which room
//! - [`state`]     — the host-held key-value store policies keep data in
//! - [`clock`]     — the time policies read (system, or set by a replay)
//! - [`actions`]   — carrying out a policy's decisions
//! - [`decide`]    — asking the rules about an event (records it first)
//! - `native`      — the default rules compiled in (feature `native-rules`, benchmarks)
//! - [`policy`]    — the sandbox; the only place wasmtime is named
//! - [`admin`]     — the admin HTTP interface (status, swap, rollback)
//! - [`reload`]    — reloading the policy file (SIGHUP, file changes)
//! - [`record`]    — opt-in recording of policy events (JSON lines)
//! - [`config_file`] — `switchboard.toml`
//! - [`ops`]       — `switchboard policy …` (admin client, check, replay)

pub mod actions;
pub mod admin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod config_file;
pub mod decide;
pub mod handshake;
pub mod id;
#[cfg(feature = "native-rules")]
pub mod native;
pub mod ops;
pub mod outbound;
pub mod policy;
pub mod record;
pub mod registry;
pub mod reload;
pub mod server;
pub mod session;
pub mod shared;
pub mod state;
pub mod tls;
