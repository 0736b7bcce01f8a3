//! A policy that misbehaves on request, to prove the sandbox contains it.
//! Every connection gets `welcome`; a text frame is answered by what it names:
//! - `trap`   — panics (a trap)
//! - `loop`   — spins forever (interrupted by the call deadline)
//! - `alloc`  — allocates until memory runs out (the memory cap)
//! - `alloc <n>` — allocates (and writes) `n` MiB, then replies `allocated <n>`
//! - `sleep`  — sleeps for an hour (a wait on a WASI pollable: the host
//!   must trap it at once, a call cannot block)
//! - `poll`   — waits on a clock pollable due in an hour with
//!   `wasi:io/poll.poll` (the same)
//! - `work <n>` — computes for `n` rounds (CPU time only), then replies
//!   `worked <n>`
//! - `stdin`  — reads stdin to its end; replies `stdin: <n> bytes`
//! - `print`  — writes to stdout and stderr, then replies `printed`
//! - `spam`   — returns more actions than the host allows
//! - `wait-for <id>` — spins until `id` is online, then replies `<id> is
//!   online` (holds a call in progress, and its thread, for as long as a
//!   test needs, within the deadline)
//! - a JSON-looking text (starts with `{`) containing `"trap"` — panics, so
//!   a test can check that the host echoes the request's `ref`
//! - `tcp <port>` — tries to connect to 127.0.0.1:`port`; replies `tcp:
//!   <error>` (or `tcp: connected`, keeping the socket open: an escape)
//! - `udp <port>` — tries to bind a UDP socket and send to 127.0.0.1:`port`;
//!   replies `udp: <error>` (or `udp: sent`, keeping the socket)
//! - `dns` — tries to resolve `localhost`; replies `dns: <error>` (or `dns:
//!   resolved <n>`)
//! - `resources` — takes WASI resources (clock pollables) and never gives
//!   them back, without end; replies `resources: held <n>` only if it ever
//!   stops being able to (no host bound would make it loop 1,000,000 times)
//! - `resources <n>` — takes `n` pollables and keeps them in the instance
//!   past the call; replies `held <n>`
//! - `big <n>` — replies with `n` bytes of text
//! - `join <n> <len>` — joins the sender to `n` rooms whose names are `len`
//!   bytes long, then replies `joined <n>`
//! - `alias <n> <kib>` — replies with `n` frames that all point at the same
//!   `kib` KiB string in guest memory (an answer that is small for the
//!   guest and huge once copied out)
//! - `clock` — replies `clock <wall ms> <monotonic ns> <import ms>`: the WASI
//!   wall clock (`SystemTime`), the WASI monotonic clock and the
//!   `clock.now-ms` import
//! - `connect-trap` as an id (at connect) — traps in on-connect
//! - an id starting with `info-` (at connect) — a JSON `welcome` showing
//!   what on-connect was given: `{"type":"welcome","id","claims",
//!   "given_session","resumed"}` (`claims` as given, or `null`)
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

/// Direct access to WASI's monotonic clock, whose pollables are host
/// resources a guest can take without end (Rust's std drops each one it
/// makes). WASI 0.2.0, the version wasi-libc already imports.
mod wasi_clock {
    wit_bindgen::generate!({
        inline: r#"
            package misbehave:clock;

            world clock {
                import wasi:clocks/monotonic-clock@0.2.0;
            }

            package wasi:io@0.2.0 {
                interface poll {
                    resource pollable {
                        ready: func() -> bool;
                        block: func();
                    }
                    poll: func(in: list<borrow<pollable>>) -> list<u32>;
                }
            }
            package wasi:clocks@0.2.0 {
                interface monotonic-clock {
                    use wasi:io/poll@0.2.0.{pollable};
                    type instant = u64;
                    type duration = u64;
                    now: func() -> instant;
                    resolution: func() -> duration;
                    subscribe-instant: func(when: instant) -> pollable;
                    subscribe-duration: func(when: duration) -> pollable;
                }
            }
        "#,
        world: "misbehave:clock/clock",
        generate_all,
    });
    pub use self::wasi::clocks::monotonic_clock::{now, subscribe_duration};
    pub use self::wasi::io::poll::poll;
}

/// The allocator, except that it never frees the string `alias` hands out
/// many times (the guest's post-return would free it once per alias).
struct Allocator;

/// Address of the string `alias` shares (0: none).
static ALIASED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe impl std::alloc::GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        if ptr as usize != ALIASED.load(std::sync::atomic::Ordering::Relaxed) {
            unsafe { std::alloc::System.dealloc(ptr, layout) }
        }
    }
}

#[global_allocator]
static GLOBAL: Allocator = Allocator;

/// `n` replies sharing one `kib` KiB string.
fn alias(n: usize, kib: usize) -> Vec<Action> {
    let shared = std::mem::ManuallyDrop::new("x".repeat(kib * 1024));
    ALIASED.store(
        shared.as_ptr() as usize,
        std::sync::atomic::Ordering::Relaxed,
    );
    (0..n)
        .map(|_| {
            // SAFETY: not sound Rust (many owners of one buffer), on
            // purpose: each alias is only handed to the host and then
            // "freed" by the post-return, which the allocator ignores for
            // this buffer.
            let alias = unsafe {
                String::from_raw_parts(shared.as_ptr() as *mut u8, shared.len(), shared.len())
            };
            Action::Reply(Frame::Text(alias))
        })
        .collect()
}

/// Resources `resources <n>` keeps past its call.
static KEPT: std::sync::Mutex<Vec<wasi_clock::wasi::io::poll::Pollable>> =
    std::sync::Mutex::new(Vec::new());

fn reply(text: String) -> Vec<Action> {
    vec![Action::Reply(Frame::Text(text))]
}

/// Try to reach 127.0.0.1:`port` over TCP.
fn tcp(port: u16) -> String {
    match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(stream) => {
            std::mem::forget(stream);
            "tcp: connected".into()
        }
        Err(e) => format!("tcp: {e}"),
    }
}

/// Try to send a UDP datagram to 127.0.0.1:`port`.
fn udp(port: u16) -> String {
    let socket = match std::net::UdpSocket::bind("127.0.0.1:0") {
        Ok(s) => s,
        Err(e) => return format!("udp: {e}"),
    };
    let sent = socket.send_to(b"escaped", ("127.0.0.1", port));
    std::mem::forget(socket);
    match sent {
        Ok(_) => "udp: sent".into(),
        Err(e) => format!("udp: {e}"),
    }
}

/// Try to resolve a name.
fn dns() -> String {
    use std::net::ToSocketAddrs;
    match ("localhost", 80).to_socket_addrs() {
        Ok(addrs) => format!("dns: resolved {}", addrs.count()),
        Err(e) => format!("dns: {e}"),
    }
}

/// The WASI clocks and the `clock` import, side by side.
fn clock() -> String {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let monotonic = wasi_clock::now();
    let import = switchboard::policy::clock::now_ms();
    format!("clock {wall} {monotonic} {import}")
}

struct Misbehave;

impl Guest for Misbehave {
    fn on_connect(info: ConnectInfo) -> Result<Vec<Action>, Reject> {
        match info.id.as_str() {
            "connect-trap" => panic!("on-connect trap requested"),
            "reject-me" => Err(Reject {
                status: 403,
                reason: "rejected by policy".into(),
            }),
            // An id is `A-Z a-z 0-9 _ . -` and a session `a-z 2-7`: no
            // escaping needed; the claims are a JSON object's text.
            id if id.starts_with("info-") => Ok(vec![Action::Reply(Frame::Text(format!(
                r#"{{"type":"welcome","id":"{id}","claims":{},"given_session":"{}","resumed":{}}}"#,
                info.claims.as_deref().unwrap_or("null"),
                info.session,
                info.resumed
            )))]),
            id => Ok(vec![Action::Reply(Frame::Text(format!("welcome {id}")))]),
        }
    }

    fn on_message(sender: String, frame: Frame) -> Vec<Action> {
        let Frame::Text(text) = frame else {
            return vec![Action::Reply(frame)];
        };
        if text.starts_with('{') && text.contains("\"trap\"") {
            panic!("trap requested by a JSON frame");
        }
        if let Some(id) = text.strip_prefix("wait-for ") {
            // Spins (within the deadline) until `id` is online, so a test
            // can hold a call in progress and release it at will. A call
            // cannot wait: sleeping would trap. Between two questions it
            // lets the registry's lock go for a while: asking without a
            // pause would keep the connection it waits for from registering.
            while !switchboard::policy::registry::is_online(id) {
                for _ in 0..10_000 {
                    std::hint::spin_loop();
                }
            }
            return vec![Action::Reply(Frame::Text(format!("{id} is online")))];
        }
        let port = |cmd: &str| text.strip_prefix(cmd).and_then(|p| p.parse::<u16>().ok());
        if let Some(port) = port("tcp ") {
            return reply(tcp(port));
        }
        if let Some(port) = port("udp ") {
            return reply(udp(port));
        }
        if let Some(n) = text
            .strip_prefix("resources ")
            .and_then(|n| n.parse::<usize>().ok())
        {
            let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
            for _ in 0..n {
                kept.push(wasi_clock::subscribe_duration(3_600_000_000_000));
            }
            return reply(format!("held {n}"));
        }
        let numbers = |cmd: &str| -> Option<(usize, usize)> {
            let (a, b) = text.strip_prefix(cmd)?.split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        if let Some(n) = text.strip_prefix("big ").and_then(|n| n.parse().ok()) {
            return reply("x".repeat(n));
        }
        if let Some((n, len)) = numbers("join ") {
            let mut actions: Vec<Action> = (0..n)
                .map(|i| {
                    Action::Join(switchboard::policy::types::Join {
                        id: sender.clone(),
                        room: format!("{i:0len$}"),
                        since: None,
                        on_joined: None,
                    })
                })
                .collect();
            actions.push(Action::Reply(Frame::Text(format!("joined {n}"))));
            return actions;
        }
        if let Some((n, kib)) = numbers("alias ") {
            return alias(n, kib);
        }
        if let Some(n) = text
            .strip_prefix("work ")
            .and_then(|n| n.parse::<u64>().ok())
        {
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x = std::hint::black_box(x);
            }
            return vec![Action::Reply(Frame::Text(format!("worked {n}")))];
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
            "poll" => {
                let due = wasi_clock::subscribe_duration(3_600_000_000_000);
                wasi_clock::poll(&[&due]);
                vec![Action::Reply(Frame::Text("polled".into()))]
            }
            "stdin" => {
                let mut all = Vec::new();
                let read = std::io::Read::read_to_end(&mut std::io::stdin(), &mut all);
                reply(match read {
                    Ok(n) => format!("stdin: {n} bytes"),
                    Err(e) => format!("stdin: {e}"),
                })
            }
            "print" => {
                println!("hello from the guest's stdout");
                eprintln!("hello from the guest's stderr");
                vec![Action::Reply(Frame::Text("printed".into()))]
            }
            "dns" => reply(dns()),
            "clock" => reply(clock()),
            "resources" => {
                let mut n = 0;
                while n < 1_000_000 {
                    std::mem::forget(wasi_clock::subscribe_duration(3_600_000_000_000));
                    n += 1;
                }
                reply(format!("resources: held {n}"))
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
