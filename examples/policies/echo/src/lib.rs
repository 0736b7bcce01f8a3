//! The smallest useful policy: every connection is accepted with no welcome,
//! and every frame, text or binary, goes back to its sender unchanged. No
//! rooms, no JSON, no state. It serves as a plugin's "hello world" and as a
//! bare echo server for WebSocket conformance runs.
//!
//! It generates its own bindings from `wit/` (rather than reusing
//! guest-logic's) to show a policy written from scratch. Build it with
//!
//! ```text
//! cargo build -p echo-policy --target wasm32-wasip2 --profile guest
//! ```
//!
//! and the component is `target/wasm32-wasip2/guest/echo_policy.wasm`; run it
//! with `switchboard --policy target/wasm32-wasip2/guest/echo_policy.wasm`.

#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    world: "policy",
    path: "../../../wit",
});

use exports::switchboard::policy::handler::Guest;
use switchboard::policy::types::{Action, ConnId, ConnectInfo, Frame, Reject};

struct Echo;

impl Guest for Echo {
    /// Accept everyone, say nothing.
    fn on_connect(_info: ConnectInfo) -> Result<Vec<Action>, Reject> {
        Ok(Vec::new())
    }

    /// The frame goes back as it came (moved, not copied).
    fn on_message(_sender: ConnId, frame: Frame) -> Vec<Action> {
        vec![Action::Reply(frame)]
    }

    /// Nothing to clean up.
    fn on_disconnect(_id: ConnId) -> Vec<Action> {
        Vec::new()
    }
}

export!(Echo);
