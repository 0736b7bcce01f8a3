//! Switchboard's default policy: the protocol v2 chat rules (see
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
//! - [`state`]: the host-held key-value store as a trait ([`State`]), with an
//!   in-memory one for native tests.
//! - [`arena`]: the component's allocator, a bump arena that starts over
//!   between calls.
//!
//! On wasm32, the WIT side:
//! - `bindings`: the `switchboard:policy` bindings, generated once and public
//!   (with a public `export!` macro) so other policies reuse them.
//! - `component`: the thin wrapper that binds the rules to the WIT world:
//!   `DefaultPolicy` (the default rules as a `Guest`), `Host` (the imports as
//!   a [`Registry`] and a [`State`]), `incoming` and `lower` (frames and
//!   actions between the rules and WIT).
//!
//! # Features
//! - `component` (default): export `DefaultPolicy` as this crate's
//!   component, the one host/build.rs embeds. A policy that reuses this crate
//!   (see examples/policies/) depends on it with `default-features = false`
//!   and exports its own handler, since a component exports `handler` once.
//!   So build guest-logic and such a policy in separate cargo invocations for
//!   wasm32 (feature unification would otherwise export both).

pub mod action;
pub mod arena;
pub mod frames;
pub mod request;
pub mod rules;
pub mod state;

#[cfg(target_arch = "wasm32")]
pub mod bindings;
#[cfg(target_arch = "wasm32")]
pub mod component;

#[cfg(test)]
mod tests;

pub use action::{Action, Frame, Incoming, Position};
pub use rules::{HistoryPage, Registry, on_connect, on_disconnect, on_message};
pub use state::{MemoryState, State, StateError};

#[cfg(target_arch = "wasm32")]
pub use component::{DefaultPolicy, Host, incoming, lower};
