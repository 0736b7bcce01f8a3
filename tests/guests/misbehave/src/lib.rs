//! A policy that misbehaves on request, to prove the sandbox contains it.
//! Every connection gets `welcome`; a text frame is answered by what it names:
//! - `trap`   — panics (a trap)
//! - `loop`   — spins forever (interrupted by the call deadline)
//! - `alloc`  — allocates until memory runs out (the memory cap)
//! - `alloc <n>` — allocates (and writes) `n` MiB, then replies `allocated <n>`
//! - `sleep`  — sleeps for an hour (a wait on a WASI pollable, which the
//!   epoch cannot interrupt; the host's timer must)
//! - `print`  — writes to stdout and stderr, then replies `printed`
//! - `spam`   — returns more actions than the host allows
//! - `wait-for <id>` — waits until `id` is online, then replies `<id> is
//!   online` (holds a call in progress for as long as a test needs)
//! - a JSON-looking text (starts with `{`) containing `"trap"` — panics, so
//!   a test can check that the host echoes the request's `ref`
//! - `connect-trap` as an id (at connect) — traps in on-connect
//! - anything else — echoed back to the sender
//!
//! Deliberately tiny and free of the default rules, so a test failure points
//! at the host, not at protocol logic.

#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    world: "policy",
    path: "../../../wit",
});

use exports::switchboard::policy::handler::Guest;
use switchboard::policy::types::{Action, ConnectInfo, Frame, Reject};

struct Misbehave;

impl Guest for Misbehave {
    fn on_connect(info: ConnectInfo) -> Result<Vec<Action>, Reject> {
        match info.id.as_str() {
            "connect-trap" => panic!("on-connect trap requested"),
            "reject-me" => Err(Reject {
                status: 403,
                reason: "rejected by policy".into(),
            }),
            id => Ok(vec![Action::Reply(Frame::Text(format!("welcome {id}")))]),
        }
    }

    fn on_message(_sender: String, frame: Frame) -> Vec<Action> {
        let Frame::Text(text) = frame else {
            return vec![Action::Reply(frame)];
        };
        if text.starts_with('{') && text.contains("\"trap\"") {
            panic!("trap requested by a JSON frame");
        }
        if let Some(id) = text.strip_prefix("wait-for ") {
            // Waits (within the deadline) until `id` is online, so a test
            // can hold a call in progress and release it at will. Sleeping
            // (a WASI pollable) yields the host's thread, where a spin
            // would hold it.
            while !switchboard::policy::registry::is_online(id) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            return vec![Action::Reply(Frame::Text(format!("{id} is online")))];
        }
        if let Some(mib) = text
            .strip_prefix("alloc ")
            .and_then(|n| n.parse::<usize>().ok())
        {
            let hoard: Vec<Vec<u8>> = (0..mib)
                .map(|_| std::hint::black_box(vec![1u8; 1 << 20]))
                .collect();
            std::hint::black_box(&hoard);
            return vec![Action::Reply(Frame::Text(format!("allocated {mib}")))];
        }
        match text.as_str() {
            "trap" => panic!("trap requested"),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                vec![Action::Reply(Frame::Text("slept".into()))]
            }
            "print" => {
                println!("hello from the guest's stdout");
                eprintln!("hello from the guest's stderr");
                vec![Action::Reply(Frame::Text("printed".into()))]
            }
            "spam" => (0..10_000)
                .map(|i| Action::Reply(Frame::Text(i.to_string())))
                .collect(),
            _ => vec![Action::Reply(Frame::Text(text))],
        }
    }

    fn on_disconnect(_id: String) -> Vec<Action> {
        Vec::new()
    }
}

export!(Misbehave);
