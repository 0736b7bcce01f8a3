//! One policy call: a 200-byte room message through the default policy
//! (the sandboxed component), against the same rules compiled natively
//! (`--features native-rules`). Run: `cargo bench -p switchboard --features
//! native-rules --bench policy_call`. Under `cargo test` each case runs once.
//! It also times the echo example on the same frame (no JSON, no host
//! calls: the cost of the call path alone), from where the tests' build
//! leaves it (`cargo test -p switchboard-tests --no-run` builds it), or any
//! component named by `POLICY_CALL_COMPONENT=<file.wasm>`. Targets (issue
//! 10): the default rules ≤ 2 µs p50, the call path ≤ 0.5 µs p50.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use switchboard::chat::outbound;
use switchboard::chat::registry::Registry;
use switchboard::config::PolicyLimits;
use switchboard::policy::clock::Clock;
use switchboard::policy::{DEFAULT_POLICY, Frame, Policy, PolicyEnv};
use switchboard::store::memory::MemoryHistory;
use switchboard::store::state::{StateLimits, StateStore};

/// Where the tests' build script leaves the echo example.
const ECHO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/policy-examples/wasm/wasm32-wasip2/guest/echo_policy.wasm"
);

/// A room message whose frame is 200 bytes.
fn message() -> String {
    let head = r#"{"type":"room","room":"lobby","data":{"text":""#;
    let tail = r#""}}"#;
    let pad = 200 - head.len() - tail.len();
    format!("{head}{}{tail}", "x".repeat(pad))
}

/// A registry where `alice` and nine others are in `lobby`.
fn registry() -> (Registry, Vec<outbound::Inbox>) {
    let registry = Registry::new();
    let mut inboxes = Vec::new();
    for i in 0..10 {
        let id = if i == 0 {
            "alice".to_owned()
        } else {
            format!("m{i}")
        };
        let (outbox, inbox) = outbound::channel(registry.next_serial(), 1024, 1 << 20);
        registry.register(&id, outbox);
        registry.join(&id, "lobby");
        inboxes.push(inbox);
    }
    (registry, inboxes)
}

fn bench(c: &mut Criterion) {
    let text = message();
    assert_eq!(text.len(), 200);
    let (registry, _inboxes) = registry();
    // This measures speed, not deadlines: a busy machine (a build beside
    // it) must not fail a call for running past the default 10 ms.
    let limits = PolicyLimits {
        call_deadline: std::time::Duration::from_secs(1),
        ..PolicyLimits::default()
    };
    let policy = load(DEFAULT_POLICY.to_vec(), "default", &registry, &limits);

    let mut group = c.benchmark_group("room message, 200 bytes");
    group.bench_function("wasm policy", |b| {
        b.iter(|| {
            let actions = policy
                .on_message("alice", Frame::Text(text.clone()))
                .expect("the call succeeds");
            assert_eq!(actions.len(), 1);
            actions
        })
    });
    #[cfg(feature = "native-rules")]
    {
        let native = switchboard::chat::native::NativeRules::new(
            std::sync::Arc::new(registry.clone()),
            Arc::new(MemoryHistory::new(Default::default())),
        );
        group.bench_function("native rules", |b| {
            b.iter(|| {
                let actions = native.on_message("alice", &Frame::Text(text.clone()));
                assert_eq!(actions.len(), 1);
                actions
            })
        });
    }
    group.finish();

    // Criterion reports means; the target is a median. Time calls one by
    // one (an `Instant` pair costs some tens of ns) and print percentiles.
    let calls = if std::env::args().any(|a| a == "--bench") {
        200_000
    } else {
        100
    };
    let wasm = time_calls(&policy, &text, calls);
    println!("one call, {calls} timed one by one: wasm policy {wasm}");
    // Any other component on the same frame, e.g. the echo example (no
    // JSON, no host calls: what the call path itself costs).
    let other = std::env::var_os("POLICY_CALL_COMPONENT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(ECHO));
    match std::fs::read(&other) {
        Ok(bytes) => {
            let name = other.to_string_lossy().into_owned();
            let policy = load(bytes, &name, &registry, &limits);
            let figures = time_calls(&policy, &text, calls);
            println!("one call, {calls} timed one by one: {name} {figures}");
        }
        Err(e) => println!(
            "not timed: {} ({e}; `cargo test -p switchboard-tests --no-run` builds the echo example)",
            other.display()
        ),
    }
    #[cfg(feature = "native-rules")]
    {
        let native = switchboard::chat::native::NativeRules::new(
            std::sync::Arc::new(registry.clone()),
            Arc::new(MemoryHistory::new(Default::default())),
        );
        let rules = percentiles(calls, || {
            std::hint::black_box(native.on_message("alice", &Frame::Text(text.clone())));
        });
        println!("one call, {calls} timed one by one: native rules {rules}");
    }
}

/// Load a component as the policy of a server whose registry is `registry`.
fn load(bytes: Vec<u8>, name: &str, registry: &Registry, limits: &PolicyLimits) -> Policy {
    let env = PolicyEnv {
        registry: std::sync::Arc::new(registry.clone()),
        history: Arc::new(MemoryHistory::new(Default::default())),
        state: std::sync::Arc::new(StateStore::new(StateLimits::from(limits))),
        clock: Clock::System,
    };
    Policy::load(bytes, name, env, limits.clone()).unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

/// Percentiles of `n` `on-message` calls of `policy` with `text`, one by one.
fn time_calls(policy: &Policy, text: &str, n: usize) -> String {
    percentiles(n, || {
        let actions = policy
            .on_message("alice", Frame::Text(text.to_owned()))
            .expect("the call succeeds");
        std::hint::black_box(actions);
    })
}

/// p50 / p99 / p99.9 of `n` runs of `call`, as text.
fn percentiles(n: usize, call: impl Fn()) -> String {
    let mut ns = Vec::with_capacity(n);
    for _ in 0..n {
        let start = std::time::Instant::now();
        call();
        ns.push(start.elapsed().as_nanos() as u64);
    }
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    format!(
        "p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs",
        at(0.5),
        at(0.99),
        at(0.999)
    )
}

criterion_group!(benches, bench);
criterion_main!(benches);
