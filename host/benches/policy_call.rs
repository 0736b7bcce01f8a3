//! One policy call: a 200-byte room message through the default policy
//! (the sandboxed component), against the same rules compiled natively
//! (`--features native-rules`). Run: `cargo bench -p switchboard --features
//! native-rules --bench policy_call`. Under `cargo test` each case runs once.

use criterion::{Criterion, criterion_group, criterion_main};
use switchboard::clock::Clock;
use switchboard::config::PolicyLimits;
use switchboard::outbound;
use switchboard::policy::{DEFAULT_POLICY, Frame, Policy, PolicyEnv};
use switchboard::registry::Registry;
use switchboard::state::{StateLimits, StateStore};

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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let text = message();
    assert_eq!(text.len(), 200);
    let (registry, _inboxes) = registry();
    let limits = PolicyLimits::default();
    let env = PolicyEnv {
        registry: registry.clone(),
        state: StateStore::new(StateLimits::from(&limits)),
        clock: Clock::System,
    };
    let policy = rt
        .block_on(Policy::load(
            DEFAULT_POLICY.to_vec(),
            "default",
            env,
            limits,
        ))
        .expect("the default policy loads");

    let mut group = c.benchmark_group("room message, 200 bytes");
    group.bench_function("wasm policy", |b| {
        b.to_async(&rt).iter(|| async {
            let actions = policy
                .on_message("alice", Frame::Text(text.clone()))
                .await
                .expect("the call succeeds");
            assert_eq!(actions.len(), 1);
            actions
        })
    });
    #[cfg(feature = "native-rules")]
    {
        let native = switchboard::native::NativeRules::new(registry.clone());
        group.bench_function("native rules", |b| {
            b.iter(|| {
                let actions = native.on_message("alice", &Frame::Text(text.clone()));
                assert_eq!(actions.len(), 1);
                actions
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
