//! Switchboard's default policy: the protocol v1 chat rules (see
//! `docs/PROTOCOL.md`), built for `wasm32-wasip2` as a component of the
//! `switchboard:policy` world (`wit/policy.wit`).
//!
//! The rules are plain Rust, independent of the WIT bindings, so they are
//! unit-tested natively:
//! - [`action`]: the decisions the rules return, mirroring the WIT `action`.
//! - [`request`]: reading a client's JSON request without copying its `data`.
//! - [`frames`]: the JSON frames the server sends.
//! - [`rules`]: the three events (`on_connect`, `on_message`, `on_disconnect`)
//!   and the [`Registry`] questions they ask the host.
//!
//! `component` (wasm32 only) is the thin wrapper that binds these to the WIT
//! world: host imports become a [`Registry`], [`Action`]s become WIT actions.

pub mod action;
pub mod frames;
pub mod request;
pub mod rules;

#[cfg(target_arch = "wasm32")]
mod component;

#[cfg(test)]
mod tests;

pub use action::{Action, Frame, Incoming};
pub use rules::{Registry, on_connect, on_disconnect, on_message};
