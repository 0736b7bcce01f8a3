//! A policy whose linear memory starts at more than 8 MiB: a static
//! buffer that large is part of its initial memory. A server whose policy
//! memory cap is smaller (`--policy-memory-mib 4`) refuses it at the
//! `instantiate` step; one with the default cap (16 MiB) runs it. A
//! cluster whose nodes have different caps must then refuse it on every
//! node. It echoes each frame back, and says `big` before a text one, so
//! a test can tell it runs.

#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    world: "policy",
    path: "../../../wit",
});

use exports::switchboard::policy::handler::Guest;
use switchboard::policy::types::{Action, ConnectInfo, Frame, Reject};

/// Zeroed, so it costs nothing in the component's size, only in its
/// initial memory.
static mut BIG: [u8; 8 * 1024 * 1024] = [0; 8 * 1024 * 1024];

struct BigMemory;

impl Guest for BigMemory {
    fn on_connect(_info: ConnectInfo) -> Result<Vec<Action>, Reject> {
        Ok(Vec::new())
    }

    fn on_message(_sender: String, frame: Frame) -> Vec<Action> {
        // Touched, so the buffer is not optimised away.
        // SAFETY: a component instance runs one call at a time.
        unsafe {
            let big = &raw mut BIG;
            core::ptr::write_volatile(&mut (*big)[frame_len(&frame) % (8 * 1024 * 1024)], 1);
        }
        match frame {
            Frame::Text(t) => vec![Action::Reply(Frame::Text(format!("big {t}")))],
            other => vec![Action::Reply(other)],
        }
    }

    fn on_disconnect(_id: String) -> Vec<Action> {
        Vec::new()
    }
}

fn frame_len(frame: &Frame) -> usize {
    match frame {
        Frame::Text(t) => t.len(),
        Frame::Binary(b) => b.len(),
    }
}

export!(BigMemory);
