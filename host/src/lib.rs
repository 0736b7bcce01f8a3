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
//! - [`actions`]   — carrying out a policy's decisions
//! - [`policy`]    — the sandbox; the only place wasmtime is named

pub mod actions;
pub mod cli;
pub mod config;
pub mod handshake;
pub mod id;
pub mod outbound;
pub mod policy;
pub mod registry;
pub mod server;
pub mod session;
pub mod shared;
pub mod state;
pub mod tls;
