//! A policy that fits the `switchboard:policy` world but traps while it is
//! being instantiated, so a swap to it must fail at the trial
//! instantiation and leave the active version alone. The component tooling
//! (wit-component) runs a core module's `_initialize` export from a start
//! function while the component is instantiated; this one traps.

#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    world: "policy",
    path: "../../../wit",
});

use exports::switchboard::policy::handler::Guest;
use switchboard::policy::types::{Action, ConnectInfo, Frame, Reject};

/// Run by the component's start function at instantiation.
#[unsafe(no_mangle)]
pub extern "C" fn _initialize() {
    core::arch::wasm32::unreachable()
}

struct TrapAtStart;

impl Guest for TrapAtStart {
    fn on_connect(_info: ConnectInfo) -> Result<Vec<Action>, Reject> {
        Ok(Vec::new())
    }

    fn on_message(_sender: String, frame: Frame) -> Vec<Action> {
        vec![Action::Reply(frame)]
    }

    fn on_disconnect(_id: String) -> Vec<Action> {
        Vec::new()
    }
}

export!(TrapAtStart);
