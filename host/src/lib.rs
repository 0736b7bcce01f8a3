//! Switchboard: a WebSocket chat server whose chat rules run as a sandboxed
//! WebAssembly component.
//!
//! Module map (one responsibility each):
//! - [`config`]    — every setting and its default
//! - [`cli`]       — command line → [`config::Config`]
//! - [`id`]        — connection ids: validation, extraction from the URL
//! - [`auth`]      — signed tokens (JWT) that prove an id; minting them
//! - [`tls`]       — rustls server config from PEM files
//! - [`server`]    — bind, accept loop, graceful shutdown
//! - [`admission`] — who is let in at accept: connections and handshakes, server-wide and per IP
//! - [`shared`]    — the context every connection task shares
//! - [`handshake`] — HTTP upgrade: id, `on-connect`, HTTP error answers
//! - [`session`]   — one connection: read loop, writer, close
//! - [`liveness`]  — when a quiet connection is pinged, and when it is given up
//! - [`outbound`]  — a connection's bounded outbound queue and close signal; the server-wide byte budget
//! - [`wire`]      — frames as bytes; a stream split between tungstenite (reading) and the host (writing)
//! - [`registry`]  — who is online, who is in which room
//! - [`history`]   — room history: kept messages, offsets, epochs, recovery
//! - [`state`]     — the host-held key-value store policies keep data in
//! - [`stored`]    — notices kept for offline ids, handed over after their next welcome
//! - [`clock`]     — the time policies read (system, or set by a replay)
//! - [`actions`]   — carrying out a policy's decisions (and the host's limits on them)
//! - [`rate`]      — token buckets for message and broadcast rates
//! - [`replies`]   — frames the host writes itself (its errors, `left`)
//! - [`decide`]    — asking the rules about an event (records it first)
//! - `native`      — the default rules compiled in (feature `native-rules`, benchmarks)
//! - [`policy`]    — the sandbox; the only place wasmtime is named
//! - [`admin`]     — the admin HTTP interface (status, swap, rollback)
//! - [`reload`]    — reloading the policy file (SIGHUP, file changes)
//! - [`record`]    — opt-in recording of policy events (JSON lines)
//! - [`settings`]  — every setting's flag, variable, file key and default, written once
//! - [`config_file`] — `switchboard.toml`
//! - [`ops`]       — `switchboard policy …` (admin client, check, replay)

pub mod actions;
pub mod admin;
pub mod admission;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod config_file;
pub mod decide;
pub mod handshake;
pub mod history;
pub mod id;
pub mod liveness;
#[cfg(feature = "native-rules")]
pub mod native;
pub mod ops;
pub mod outbound;
pub mod policy;
pub mod rate;
pub mod record;
pub mod registry;
pub mod reload;
pub mod replies;
pub mod server;
pub mod session;
pub mod settings;
pub mod shared;
pub mod state;
pub mod stored;
pub mod tls;
pub mod wire;
