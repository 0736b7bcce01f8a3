//! Property tests on the host's edges: arbitrary bytes through the
//! handshake parser, arbitrary frames through the real default policy (the
//! WIT conversion both ways). Never a panic; always a clear answer.

use std::sync::OnceLock;

use proptest::prelude::*;
use switchboard::chat::registry::Registry;
use switchboard::config::PolicyLimits;
use switchboard::net::handshake::{HandshakeError, Incoming, read_incoming};
use switchboard::policy::clock::Clock;
use switchboard::policy::{Action, DEFAULT_POLICY, Frame, Policy, PolicyEnv};
use switchboard::store::state::{StateLimits, StateStore};
use tokio::runtime::Runtime;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// The default policy, loaded once (compiling it takes a while).
fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let limits = PolicyLimits {
            // Speed is not the point here; a busy machine must not fail calls.
            call_deadline: switchboard_tests::WAIT,
            ..PolicyLimits::default()
        };
        let env = PolicyEnv {
            registry: std::sync::Arc::new(Registry::new()),
            history: std::sync::Arc::new(switchboard::store::memory::MemoryHistory::new(
                Default::default(),
            )),
            state: std::sync::Arc::new(StateStore::new(StateLimits::from(&limits))),
            clock: Clock::System,
        };
        Policy::load(DEFAULT_POLICY.to_vec(), "default", env, limits)
            .expect("the default policy loads")
    })
}

/// A request head that is close to a valid upgrade, with parts replaced by
/// arbitrary text.
fn near_upgrades() -> impl Strategy<Value = Vec<u8>> {
    let target = prop_oneof![
        Just("/ws/alice".to_owned()),
        "/ws/[ -~]{0,80}",
        "/ws\\?id=[ -~]{0,80}",
        "[ -~]{0,40}",
        "/ws/%[0-9A-Fa-f]{0,2}.{0,10}",
    ];
    let header = prop_oneof![
        Just("Upgrade: websocket".to_owned()),
        Just("Connection: Upgrade".to_owned()),
        Just("Sec-WebSocket-Version: 13".to_owned()),
        Just("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==".to_owned()),
        "[A-Za-z-]{1,20}: [ -~]{0,60}",
        ".{0,60}",
    ];
    (
        prop::sample::select(vec!["GET", "POST", "get", ""]),
        target,
        prop::collection::vec(header, 0..10),
    )
        .prop_map(|(method, target, headers)| {
            let mut head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n");
            for h in headers {
                head.push_str(&h);
                head.push_str("\r\n");
            }
            head.push_str("\r\n");
            head.into_bytes()
        })
}

fn parse(bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut input = bytes;
    let read = match runtime().block_on(read_incoming(&mut input)) {
        Ok(Incoming::Upgrade(upgrade)) => Ok(upgrade),
        // A plain GET/HEAD is checked as its upgrade would be (the answer
        // to a probe).
        Ok(Incoming::Plain(plain)) => plain.as_upgrade,
        Err(e) => Err(e),
    };
    match read {
        Ok(upgrade) => {
            // Without auth an accepted request names a valid id.
            match upgrade.identify(None) {
                Ok(identity) => {
                    let id = identity.id.as_str();
                    prop_assert!((1..=64).contains(&id.len()), "{id:?}");
                }
                Err(e) => prop_assert!(e.status().is_some_and(|s| (400..500).contains(&s)), "{e}"),
            }
        }
        // A refusal is an HTTP status with a readable reason, or (input
        // ended) nothing to answer.
        Err(HandshakeError::Closed) => {}
        Err(e) => {
            let status = e.status();
            prop_assert!(
                status.is_some_and(|s| (400..500).contains(&s)),
                "{e} -> {status:?}"
            );
            prop_assert!(!e.to_string().is_empty());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_bytes_through_the_handshake_parser(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        parse(&bytes)?;
    }

    #[test]
    fn near_upgrades_through_the_handshake_parser(bytes in near_upgrades()) {
        parse(&bytes)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_text_through_the_default_policy(text in ".{0,400}") {
        let actions = policy().on_message("alice", Frame::Text(text.clone()));
        let actions = actions.map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        // An answer in JSON for every frame the host is asked to send.
        prop_assert!(!actions.is_empty());
        for a in &actions {
            if let Action::Reply(Frame::Text(t)) = a {
                prop_assert!(serde_json::from_str::<serde_json::Value>(t).is_ok(), "{}", t);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_through_the_default_policy(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let actions = policy()
            .on_message("alice", Frame::Binary(bytes))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(actions.len(), 1);
    }
}
