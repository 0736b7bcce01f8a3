//! The example policies (examples/policies/*), built by build.rs, each run
//! in a real server with real clients: echo, moderation, rate-limit.
//!
//! "Nothing else arrives" is proven with `Client::expect_idle` / `drain`
//! (a ping whose pong and ack must be the very next frames) under the two
//! policies built on the default rules; echo has no ping, so there the
//! proof is that a client's next frame is the echo of what it sent next.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use switchboard::config::{Config, PolicySource};
use switchboard_tests::{Client, TestServer, tolerant_config};
use tokio_tungstenite::tungstenite::Message;

/// A tolerant config running the component at `path` (given as bytes, as an
/// embedding application would).
fn example(name: &str, path: &str) -> Result<Config> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    Ok(Config {
        policy: PolicySource::Bytes {
            name: name.to_owned(),
            bytes,
        },
        ..tolerant_config()
    })
}

fn ack(r: impl Into<Value>) -> Value {
    json!({"type": "ack", "ref": r.into()})
}

fn room_msg(from: &str, data: impl Into<Value>) -> Value {
    json!({"type": "room", "room": "lobby", "from": from, "data": data.into()})
}

/// Send `request` (which must carry `"ref"`) and return its one answer.
async fn ask(c: &mut Client, request: Value) -> Result<Value> {
    c.send_json(request).await?;
    c.recv_json().await
}

// ---- echo ----

#[tokio::test]
async fn echo_sends_every_frame_back_unchanged() -> Result<()> {
    let server = TestServer::start(example("echo", env!("ECHO_WASM"))?).await?;
    let mut alice = server.connect("alice").await?;
    let mut bob = server.connect("bob").await?;

    // No welcome: the first frame is the echo of the first frame sent.
    alice.send_text("hello").await?;
    assert_eq!(alice.recv().await?, Message::text("hello"));
    let bytes = vec![0u8, 1, 2, 0x7f, 0x80, 0xff];
    alice.send_binary(bytes.clone()).await?;
    assert_eq!(alice.recv().await?, Message::binary(bytes));
    // A protocol request is not interpreted, just echoed (no pong, no ack).
    let ping = r#"{"type":"ping","ref":1}"#;
    alice.send_text(ping).await?;
    assert_eq!(alice.recv().await?, Message::text(ping));
    // Empty frames, non-ASCII text and a 48 KiB binary frame, in order.
    let big: Vec<u8> = (0..48 * 1024).map(|i| (i % 251) as u8).collect();
    alice.send_text("").await?;
    alice.send_binary(Vec::new()).await?;
    alice.send_text("héllo 大厅 🦀").await?;
    alice.send_binary(big.clone()).await?;
    assert_eq!(alice.recv().await?, Message::text(""));
    assert_eq!(alice.recv().await?, Message::binary(Vec::new()));
    assert_eq!(alice.recv().await?, Message::text("héllo 大厅 🦀"));
    assert_eq!(alice.recv().await?, Message::binary(big));

    // Only the sender hears it: bob's first frame is his own echo, though
    // alice's frames were all handled before he sent it.
    bob.send_text("bob here").await?;
    assert_eq!(bob.recv().await?, Message::text("bob here"));
    assert!(server.registry.is_online("alice"));
    assert!(server.registry.is_online("bob"));
    drop((alice, bob));
    server.shutdown().await
}

// ---- moderation ----

#[tokio::test]
async fn moderation_refuses_banned_words() -> Result<()> {
    let server = TestServer::start(example("moderation", env!("MODERATION_WASM"))?).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    alice.join_room("alice", "lobby", 1).await?;
    bob.join_room("bob", "lobby", 2).await?;
    alice.drain().await?;

    let refused = |r: Value, word: &str| {
        json!({"type": "error", "ref": r, "code": "moderated",
               "message": format!("message refused by moderation: `{word}` is not allowed")})
    };
    assert_eq!(
        ask(
            &mut alice,
            json!({"type": "room", "room": "lobby", "data": {"text": "buy cheap SPAM"}, "ref": 3})
        )
        .await?,
        refused(json!(3), "spam")
    );
    assert_eq!(
        ask(
            &mut alice,
            json!({"type": "broadcast", "data": "what a Scam", "ref": "b"})
        )
        .await?,
        refused(json!("b"), "scam")
    );
    assert_eq!(
        ask(
            &mut alice,
            json!({"type": "notice", "to": "bob", "data": ["phishing"], "ref": -4.5})
        )
        .await?,
        refused(json!(-4.5), "phishing")
    );
    // Without a ref, the refusal has none.
    alice
        .send_json(json!({"type": "broadcast", "data": "spam"}))
        .await?;
    let v = alice.recv_json().await?;
    assert_eq!(v["code"], "moderated");
    assert!(v.get("ref").is_none(), "{v}");
    // None of it reached bob.
    bob.expect_idle().await?;

    // Clean messages (whole words only: "spammer" is fine) go through.
    assert_eq!(
        ask(
            &mut alice,
            json!({"type": "room", "room": "lobby", "data": "no spammer here", "ref": 5})
        )
        .await?,
        ack(5)
    );
    assert_eq!(bob.recv_json().await?, room_msg("alice", "no spammer here"));
    for c in [&mut alice, &mut bob] {
        c.expect_idle().await?;
    }
    drop((alice, bob));
    server.shutdown().await
}

#[tokio::test]
async fn moderator_mutes_and_unmutes() -> Result<()> {
    let server = TestServer::start(example("moderation", env!("MODERATION_WASM"))?).await?;
    let mut moderator = server.join("mod-ann").await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    moderator.join_room("mod-ann", "lobby", 1).await?;
    alice.join_room("alice", "lobby", 2).await?;
    bob.join_room("bob", "lobby", 3).await?;
    moderator.drain().await?;
    alice.drain().await?;

    // The command is acked and not delivered to the room.
    let mute = json!({"type": "room", "room": "lobby", "data": "/mute alice", "ref": 4});
    assert_eq!(ask(&mut moderator, mute).await?, ack(4));
    for c in [&mut moderator, &mut alice, &mut bob] {
        c.expect_idle().await?;
    }

    // Every message of alice's is refused with `muted`, and delivered nowhere.
    let muted = |r: i64| {
        json!({"type": "error", "ref": r, "code": "muted",
               "message": "you are muted by a moderator"})
    };
    for (r, request) in [
        (
            5,
            json!({"type": "room", "room": "lobby", "data": "hi", "ref": 5}),
        ),
        (6, json!({"type": "broadcast", "data": "hi", "ref": 6})),
        (
            7,
            json!({"type": "notice", "to": "bob", "data": "hi", "ref": 7}),
        ),
    ] {
        assert_eq!(ask(&mut alice, request).await?, muted(r));
    }
    moderator.expect_idle().await?;
    bob.expect_idle().await?;

    // Others still speak, and alice still hears them.
    assert_eq!(
        ask(
            &mut bob,
            json!({"type": "room", "room": "lobby", "data": "hello", "ref": 8})
        )
        .await?,
        ack(8)
    );
    assert_eq!(alice.recv_json().await?, room_msg("bob", "hello"));
    assert_eq!(moderator.recv_json().await?, room_msg("bob", "hello"));

    // The mute is held by the host, not by a connection: alice reconnecting
    // (replacing her connection, keeping her rooms) is still muted.
    let mut alice2 = server.join("alice").await?;
    assert_eq!(alice.closed().await?.code, Some(4001));
    assert_eq!(
        ask(
            &mut alice2,
            json!({"type": "room", "room": "lobby", "data": "again", "ref": 9})
        )
        .await?,
        muted(9)
    );

    // The same text from someone who is not a moderator is just a message.
    assert_eq!(
        ask(
            &mut bob,
            json!({"type": "room", "room": "lobby", "data": "/unmute alice", "ref": 10})
        )
        .await?,
        ack(10)
    );
    assert_eq!(alice2.recv_json().await?, room_msg("bob", "/unmute alice"));
    assert_eq!(
        moderator.recv_json().await?,
        room_msg("bob", "/unmute alice")
    );
    assert_eq!(
        ask(
            &mut alice2,
            json!({"type": "broadcast", "data": "still?", "ref": 11})
        )
        .await?,
        muted(11)
    );

    // Unmuted by the moderator, alice's messages are delivered again.
    let unmute = json!({"type": "room", "room": "lobby", "data": "/unmute alice", "ref": 12});
    assert_eq!(ask(&mut moderator, unmute).await?, ack(12));
    assert_eq!(
        ask(
            &mut alice2,
            json!({"type": "room", "room": "lobby", "data": "back", "ref": 13})
        )
        .await?,
        ack(13)
    );
    assert_eq!(bob.recv_json().await?, room_msg("alice", "back"));
    assert_eq!(moderator.recv_json().await?, room_msg("alice", "back"));
    for c in [&mut moderator, &mut alice2, &mut bob] {
        c.expect_idle().await?;
    }
    drop((moderator, alice, alice2, bob));
    server.shutdown().await
}

// ---- rate-limit ----

/// The policy's bucket size (examples/policies/rate-limit: `CAPACITY`).
const CAPACITY: i64 = 5;
/// Messages sent in one burst. Refill is one token per second, so however
/// slow the machine, unless the burst takes more than ~4 s to be handled,
/// at least 3 of the last 7 are refused.
const BURST: i64 = CAPACITY + 7;

#[tokio::test]
async fn rate_limit_refuses_a_burst_beyond_capacity() -> Result<()> {
    let server = TestServer::start(example("rate-limit", env!("RATE_LIMIT_WASM"))?).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    // Joins and pings are free.
    alice.join_room("alice", "lobby", 1).await?;
    bob.join_room("bob", "lobby", 2).await?;
    for _ in 0..CAPACITY * 2 {
        alice.drain().await?;
    }

    // The whole burst goes out before any answer is read.
    for r in 1..=BURST {
        alice
            .send_json(json!({"type": "room", "room": "lobby", "data": r, "ref": r}))
            .await?;
    }
    // One answer per request, in order: an ack or a `rate-limited` error.
    let mut delivered = Vec::new();
    let mut refused = Vec::new();
    for r in 1..=BURST {
        let v = alice.recv_json().await?;
        if v == ack(r) {
            delivered.push(r);
        } else {
            assert_eq!(v["type"], "error", "{v}");
            assert_eq!(v["ref"], r, "{v}");
            assert_eq!(v["code"], "rate-limited", "{v}");
            let message = v["message"].as_str().unwrap_or_default();
            assert!(
                message.starts_with("rate limit: 5 messages at once, then 1 per second; retry in "),
                "{v}"
            );
            refused.push(r);
        }
    }
    // A full bucket lets the first CAPACITY through; a burst cannot refill
    // much of it.
    assert_eq!(
        delivered[..CAPACITY as usize],
        (1..=CAPACITY).collect::<Vec<_>>()[..],
        "delivered {delivered:?}, refused {refused:?}"
    );
    assert!(
        refused.len() >= 3,
        "only {refused:?} refused (delivered {delivered:?})"
    );
    // Exactly the accepted messages reached bob, in order.
    for r in &delivered {
        assert_eq!(bob.recv_json().await?, room_msg("alice", *r));
    }
    bob.expect_idle().await?;

    // Pings still work for alice (drain), and bob has his own bucket.
    alice.expect_idle().await?;
    assert_eq!(
        ask(
            &mut bob,
            json!({"type": "room", "room": "lobby", "data": "mine", "ref": 3})
        )
        .await?,
        ack(3)
    );
    assert_eq!(alice.recv_json().await?, room_msg("bob", "mine"));
    for c in [&mut alice, &mut bob] {
        c.expect_idle().await?;
    }
    drop((alice, bob));
    server.shutdown().await
}
