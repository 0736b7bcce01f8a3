//! The token bucket and the rate-limit layer, natively.

use guest_logic::{Action, Frame, MemoryState, State};
use serde_json::Value;

use crate::{Bucket, CAPACITY, REFILL_EVERY_NS, bucket_key, check, forget_if_full, load};

const S: u64 = REFILL_EVERY_NS;

fn room(r: u64) -> String {
    format!(r#"{{"type":"room","room":"lobby","data":{r},"ref":{r}}}"#)
}

/// The single error reply of `actions`, parsed.
fn error(actions: Option<Vec<Action>>) -> Value {
    match actions.as_deref() {
        Some([Action::Reply(Frame::Text(t))]) => serde_json::from_str(t).unwrap(),
        other => panic!("expected one error reply, got {other:?}"),
    }
}

#[test]
fn a_full_bucket_gives_capacity_tokens_then_refuses() {
    let mut b = Bucket::full(100);
    for _ in 0..CAPACITY {
        b = b.take(100).unwrap();
    }
    assert_eq!(b.credit_ns, 0);
    assert_eq!(b.take(100), Err(S));
    // Refilling: a quarter of a second short of a token.
    assert_eq!(b.take(100 + S * 3 / 4), Err(S / 4));
    let b = b.take(100 + S).unwrap();
    assert_eq!(
        b,
        Bucket {
            credit_ns: 0,
            at_ns: 100 + S
        }
    );
    // Never more than full, however long the wait.
    assert_eq!(b.credit_at(u64::MAX), Bucket::FULL);
    // A clock going back adds nothing and takes nothing.
    assert_eq!(b.credit_at(0), 0);
}

#[test]
fn buckets_round_trip_and_garbage_is_full() {
    let b = Bucket {
        credit_ns: 123,
        at_ns: u64::MAX - 1,
    };
    assert_eq!(Bucket::decode(&b.encode()), Some(b));
    assert_eq!(Bucket::decode(&[1, 2, 3]), None);
    let state = MemoryState::new();
    state.set(&bucket_key("a"), b"junk").unwrap();
    assert_eq!(load(&state, "a", 7), Bucket::full(7));
}

#[test]
fn a_burst_beyond_capacity_is_refused_and_refusals_cost_nothing() {
    let state = MemoryState::new();
    let now = 5 * S;
    for r in 1..=CAPACITY {
        assert_eq!(check(&state, "alice", &room(r), now), None, "message {r}");
    }
    let v = error(check(&state, "alice", &room(6), now));
    assert_eq!(v["type"], "error");
    assert_eq!(v["ref"], 6);
    assert_eq!(v["code"], "rate-limited");
    assert_eq!(
        v["message"],
        "rate limit: 5 messages at once, then 1 per second; retry in 1000 ms"
    );
    // Refused again later without having spent anything: one token after 1 s.
    assert!(check(&state, "alice", &room(7), now + S / 2).is_some());
    assert_eq!(check(&state, "alice", &room(8), now + S), None);
    assert!(check(&state, "alice", &room(9), now + S).is_some());
    // Others have their own bucket.
    assert_eq!(check(&state, "bob", &room(1), now), None);
}

#[test]
fn every_message_kind_costs_and_nothing_else_does() {
    let state = MemoryState::new();
    for text in [
        r#"{"type":"ping","ref":1}"#,
        r#"{"type":"join","room":"r"}"#,
        r#"{"type":"leave","room":"r"}"#,
        "not json",
        r#"{"type":"nope"}"#,
    ] {
        for _ in 0..10 {
            assert_eq!(check(&state, "alice", text, 0), None);
        }
    }
    assert!(state.is_empty(), "free requests touch no bucket");
    for text in [
        r#"{"type":"room","room":"r","data":1}"#,
        r#"{"type":"broadcast","data":1}"#,
        r#"{"type":"notice","to":"b","data":1}"#,
        r#"{"type":"room","room":"r"}"#,
        r#"{"type":"broadcast","data":1}"#,
    ] {
        assert_eq!(check(&state, "alice", text, 0), None);
    }
    let v = error(check(
        &state,
        "alice",
        r#"{"type":"notice","to":"b","data":1}"#,
        0,
    ));
    assert_eq!(v["code"], "rate-limited");
    assert!(v.get("ref").is_none());
}

#[test]
fn a_full_store_fails_open() {
    let state = MemoryState::new();
    state.set_full(true);
    for r in 1..=CAPACITY * 3 {
        assert_eq!(check(&state, "alice", &room(r), 0), None);
    }
}

#[test]
fn disconnect_forgets_only_full_buckets() {
    let state = MemoryState::new();
    assert_eq!(check(&state, "alice", &room(1), 0), None);
    forget_if_full(&state, "alice", S / 2);
    assert!(
        state.get(&bucket_key("alice")).is_some(),
        "not refilled yet"
    );
    forget_if_full(&state, "alice", S);
    assert!(state.is_empty());
    forget_if_full(&state, "nobody", 0);
    assert!(state.is_empty());
}
