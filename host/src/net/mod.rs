//! The network side: sockets, TLS, the upgrade, one task per connection,
//! and the bytes that reach a socket.
//!
//! - [`runtime`]   — the tokio runtime; idle workers give freed memory back
//! - [`server`]    — bind, accept loop, graceful shutdown
//! - [`drain`]     — a rolling restart: 1012 to every client, a few at a time, then exit
//! - [`admission`] — who is let in at accept: connections and handshakes, server-wide and per IP
//! - [`tls`]       — rustls server config from PEM files
//! - [`handshake`] — HTTP upgrade: id, `on-connect`, HTTP error answers
//! - [`web`]       — plain HTTP: the chat page, and why an upgrade would be refused
//! - [`id`]        — connection ids: validation, extraction from the URL
//! - [`origin`]    — the `Origin` check on upgrades (cross-site pages)
//! - [`auth`]      — signed tokens (JWT) that prove an id; minting them
//! - [`shared`]    — the context every connection task shares
//! - [`session`]   — one connection: read loop, writer, close
//! - [`handing`]   — a held id given up to another server that resumes it (cluster mode)
//! - [`liveness`]  — when a quiet connection is pinged, and when it is given up
//! - [`inbound`]   — bytes of partly received messages, server-wide
//! - [`wire`]      — a stream split between tungstenite (reading) and the host (writing)

pub mod admission;
pub mod auth;
pub mod drain;
pub mod handing;
pub mod handshake;
pub mod id;
pub mod inbound;
pub mod liveness;
pub mod origin;
pub mod runtime;
pub mod server;
pub mod session;
pub mod shared;
pub mod tls;
pub mod web;
pub mod wire;
