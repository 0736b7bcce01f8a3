//! Protocol v1 as a client sees it (docs/PROTOCOL.md), against the default
//! policy: every request, every answer, every error a well-formed request can
//! get, ref echoing, fan-out across several rooms, replacement of an id and
//! `left` on disconnect.
//!
//! "Nothing else arrives" is proven with `Client::expect_idle` / `drain`: a
//! ping with a fresh ref on the same connection whose pong and ack must be the
//! very next frames.
//!
//! Clients are dropped before `shutdown` so the server need not wait for them
//! to answer its close (shutdown itself is tested in shutdown.rs).

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::{Value, json};
use switchboard_tests::{Client, TestServer, tolerant_config, without_rate_limits};

/// The frames `c` receives before the ack of `r`.
async fn until_ack(c: &mut Client, r: i64) -> Result<Vec<Value>> {
    let mut frames = Vec::new();
    loop {
        let v = c.recv_json().await?;
        if v == ack(r) {
            return Ok(frames);
        }
        frames.push(v);
    }
}

fn joined(room: &str, id: &str) -> Value {
    json!({"type": "joined", "room": room, "id": id})
}

fn left(room: &str, id: &str) -> Value {
    json!({"type": "left", "room": room, "id": id})
}

fn ack(r: impl Into<Value>) -> Value {
    json!({"type": "ack", "ref": r.into()})
}

#[tokio::test]
async fn welcome_is_the_first_frame() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.connect("alice").await?;
    // v1's fields first, in order; v2 adds its own after them (the
    // host's `session` last).
    let welcome = alice.recv_text().await?;
    assert!(
        welcome.starts_with(r#"{"type":"welcome","id":"alice","resumed":false,"session":""#),
        "{welcome}"
    );

    alice.expect_idle().await?;
    assert!(server.registry.is_online("alice"));
    drop(alice);
    server.shutdown().await
}

#[tokio::test]
async fn join_tells_every_member_including_the_joiner() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    let mut carol = server.join("carol").await?;
    let mut dave = server.join("dave").await?;

    alice
        .send_json(json!({"type": "join", "room": "lobby", "ref": 1}))
        .await?;
    assert_eq!(alice.recv_json().await?, joined("lobby", "alice"));
    assert_eq!(alice.recv_json().await?, ack(1));

    bob.send_json(json!({"type": "join", "room": "lobby", "ref": 2}))
        .await?;
    assert_eq!(bob.recv_json().await?, joined("lobby", "bob"));
    assert_eq!(bob.recv_json().await?, ack(2));
    // The ack means the room has been told.
    assert_eq!(alice.recv_json().await?, joined("lobby", "bob"));

    carol
        .send_json(json!({"type": "join", "room": "lobby", "ref": "c"}))
        .await?;
    assert_eq!(carol.recv_json().await?, joined("lobby", "carol"));
    assert_eq!(carol.recv_json().await?, ack("c"));
    assert_eq!(alice.recv_json().await?, joined("lobby", "carol"));
    assert_eq!(bob.recv_json().await?, joined("lobby", "carol"));

    for c in [&mut alice, &mut bob, &mut carol, &mut dave] {
        c.expect_idle().await?;
    }
    for id in ["alice", "bob", "carol"] {
        assert!(server.registry.in_room(id, "lobby"), "{id} in lobby");
    }
    assert!(!server.registry.in_room("dave", "lobby"));
    assert_eq!(server.registry.room_size("lobby"), 3);
    drop((alice, bob, carol, dave));
    server.shutdown().await
}

#[tokio::test]
async fn joining_again_only_acks() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    alice.join_room("alice", "lobby", 1).await?;
    bob.join_room("bob", "lobby", 2).await?;
    assert_eq!(alice.recv_json().await?, joined("lobby", "bob"));

    alice
        .send_json(json!({"type": "join", "room": "lobby", "ref": 3}))
        .await?;
    assert_eq!(alice.recv_json().await?, ack(3));
    // Without a ref, a repeated join produces nothing at all.
    alice
        .send_json(json!({"type": "join", "room": "lobby"}))
        .await?;
    alice.expect_idle().await?;
    bob.expect_idle().await?;
    assert_eq!(server.registry.room_size("lobby"), 2);
    drop((alice, bob));
    server.shutdown().await
}

#[tokio::test]
async fn leave_tells_the_leaver_and_the_remaining_members() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    let mut carol = server.join("carol").await?;
    alice.join_room("alice", "lobby", 1).await?;
    bob.join_room("bob", "lobby", 2).await?;
    carol.join_room("carol", "lobby", 3).await?;
    alice.drain().await?;
    bob.drain().await?;

    bob.send_json(json!({"type": "leave", "room": "lobby", "ref": 4}))
        .await?;
    assert_eq!(bob.recv_json().await?, left("lobby", "bob"));
    assert_eq!(bob.recv_json().await?, ack(4));
    assert_eq!(alice.recv_json().await?, left("lobby", "bob"));
    assert_eq!(carol.recv_json().await?, left("lobby", "bob"));
    assert!(!server.registry.in_room("bob", "lobby"));

    // Bob is out: he can no longer speak there, and no longer hears it.
    bob.send_json(json!({"type": "room", "room": "lobby", "data": 1, "ref": 5}))
        .await?;
    assert_eq!(
        bob.recv_json().await?,
        json!({"type": "error", "ref": 5, "code": "not-in-room",
               "message": "not a member of room `lobby`"})
    );
    alice
        .send_json(json!({"type": "room", "room": "lobby", "data": "hi", "ref": 6}))
        .await?;
    assert_eq!(alice.recv_json().await?, ack(6));
    assert_eq!(
        carol.recv_json().await?,
        json!({"type": "room", "room": "lobby", "from": "alice", "data": "hi"})
    );
    for c in [&mut alice, &mut bob, &mut carol] {
        c.expect_idle().await?;
    }

    // The last members leave: the room is gone.
    alice
        .send_json(json!({"type": "leave", "room": "lobby"}))
        .await?;
    assert_eq!(alice.recv_json().await?, left("lobby", "alice"));
    assert_eq!(carol.recv_json().await?, left("lobby", "alice"));
    carol
        .send_json(json!({"type": "leave", "room": "lobby", "ref": 7}))
        .await?;
    assert_eq!(carol.recv_json().await?, left("lobby", "carol"));
    assert_eq!(carol.recv_json().await?, ack(7));
    assert_eq!(server.registry.room_size("lobby"), 0);
    for c in [&mut alice, &mut bob, &mut carol] {
        c.expect_idle().await?;
    }
    drop((alice, bob, carol));
    server.shutdown().await
}

#[tokio::test]
async fn leave_when_not_a_member_is_not_in_room() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    bob.join_room("bob", "garden", 1).await?;

    // A room that does not exist.
    alice
        .send_json(json!({"type": "leave", "room": "nowhere", "ref": 1}))
        .await?;
    assert_eq!(
        alice.recv_json().await?,
        json!({"type": "error", "ref": 1, "code": "not-in-room",
               "message": "not a member of room `nowhere`"})
    );
    // A room that exists, without alice; and without a ref.
    alice
        .send_json(json!({"type": "leave", "room": "garden"}))
        .await?;
    assert_eq!(
        alice.recv_json().await?,
        json!({"type": "error", "code": "not-in-room",
               "message": "not a member of room `garden`"})
    );
    alice.expect_idle().await?;
    bob.expect_idle().await?;
    assert!(server.registry.in_room("bob", "garden"));
    drop((alice, bob));
    server.shutdown().await
}

#[tokio::test]
async fn room_message_reaches_every_other_member_and_not_the_sender() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    let mut carol = server.join("carol").await?;
    let mut dave = server.join("dave").await?;
    alice.join_room("alice", "lobby", 1).await?;
    bob.join_room("bob", "lobby", 1).await?;
    carol.join_room("carol", "lobby", 1).await?;
    dave.join_room("dave", "garden", 1).await?;
    alice.drain().await?;
    bob.drain().await?;

    // `data` is forwarded exactly as written (spacing, key order, number
    // spelling, escapes), never re-encoded.
    let data = r#"{ "z":1, "a":[1.50, 1e2, "x\u00e9\"y"], "n":null }"#;
    alice
        .send_text(&format!(
            r#"{{"type":"room","room":"lobby","data":{data},"ref":2}}"#
        ))
        .await?;
    assert_eq!(alice.recv_text().await?, r#"{"type":"ack","ref":2}"#);
    // The first message kept in the room: offset 1, added last.
    let expected =
        format!(r#"{{"type":"room","room":"lobby","from":"alice","data":{data},"offset":1}}"#);
    assert_eq!(bob.recv_text().await?, expected);
    assert_eq!(carol.recv_text().await?, expected);

    for c in [&mut alice, &mut bob, &mut carol, &mut dave] {
        c.expect_idle().await?;
    }
    drop((alice, bob, carol, dave));
    server.shutdown().await
}

/// Frames queued together leave in one socket write (the writer takes the
/// whole queue): a burst must still arrive whole, in order, exactly once.
#[tokio::test]
async fn a_burst_of_room_messages_arrives_whole_and_in_order() -> Result<()> {
    const BURST: i64 = 500;
    let server = TestServer::start(without_rate_limits(tolerant_config())).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    let mut carol = server.join("carol").await?;
    alice.join_room("alice", "lobby", 1).await?;
    bob.join_room("bob", "lobby", 1).await?;
    carol.join_room("carol", "lobby", 1).await?;
    alice.drain().await?;
    bob.drain().await?;

    // Sent back to back without waiting; only the last asks for an ack.
    for n in 0..BURST {
        let mut msg = json!({"type": "room", "room": "lobby", "data": {"n": n}});
        if n == BURST - 1 {
            msg["ref"] = json!(2);
        }
        alice.send_json(msg).await?;
    }
    assert_eq!(alice.recv_json().await?, ack(2));
    for c in [&mut bob, &mut carol] {
        for n in 0..BURST {
            assert_eq!(
                c.recv_json().await?,
                json!({"type": "room", "room": "lobby", "from": "alice", "data": {"n": n}})
            );
        }
    }
    for c in [&mut alice, &mut bob, &mut carol] {
        c.expect_idle().await?;
    }
    drop((alice, bob, carol));
    server.shutdown().await
}

#[tokio::test]
async fn room_message_needs_membership() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    let mut dave = server.join("dave").await?;
    alice.join_room("alice", "lobby", 1).await?;

    dave.send_json(json!({"type": "room", "room": "lobby", "data": "let me in", "ref": 9}))
        .await?;
    assert_eq!(
        dave.recv_json().await?,
        json!({"type": "error", "ref": 9, "code": "not-in-room",
               "message": "not a member of room `lobby`"})
    );
    dave.send_json(json!({"type": "room", "room": "nowhere", "data": 1}))
        .await?;
    assert_eq!(
        dave.recv_json().await?,
        json!({"type": "error", "code": "not-in-room",
               "message": "not a member of room `nowhere`"})
    );
    // The room heard nothing, and the refused request made no one a member.
    alice.expect_idle().await?;
    dave.expect_idle().await?;
    assert!(!server.registry.in_room("dave", "lobby"));
    assert_eq!(server.registry.room_size("nowhere"), 0);
    drop((alice, dave));
    server.shutdown().await
}

#[tokio::test]
async fn broadcast_reaches_every_other_online_client() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    let mut carol = server.join("carol").await?;
    // Rooms do not matter: bob is in one, carol and alice in none.
    bob.join_room("bob", "lobby", 1).await?;

    alice
        .send_text(r#"{"type":"broadcast","data":[1, "two"],"ref":"b1"}"#)
        .await?;
    assert_eq!(alice.recv_json().await?, ack("b1"));
    let expected = r#"{"type":"broadcast","from":"alice","data":[1, "two"]}"#;
    assert_eq!(bob.recv_text().await?, expected);
    assert_eq!(carol.recv_text().await?, expected);

    // `null` is a value too.
    carol
        .send_json(json!({"type": "broadcast", "data": null}))
        .await?;
    let expected = json!({"type": "broadcast", "from": "carol", "data": null});
    assert_eq!(alice.recv_json().await?, expected);
    assert_eq!(bob.recv_json().await?, expected);

    for c in [&mut alice, &mut bob, &mut carol] {
        c.expect_idle().await?;
    }
    drop((alice, bob, carol));
    server.shutdown().await
}

#[tokio::test]
async fn notice_reaches_its_target_no_later_than_the_ack() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    let mut carol = server.join("carol").await?;

    alice
        .send_text(r#"{"type":"notice","to":"bob","data":{"text":"psst"},"ref":7}"#)
        .await?;
    assert_eq!(alice.recv_json().await?, ack(7));
    // Only now, after alice has her ack, does carol write to bob. Bob has one
    // queue, so if the notice was queued before the ack (as promised), it
    // comes before carol's.
    carol
        .send_json(json!({"type": "notice", "to": "bob", "data": "after", "ref": 1}))
        .await?;
    assert_eq!(carol.recv_json().await?, ack(1));
    assert_eq!(
        bob.recv_text().await?,
        r#"{"type":"notice","from":"alice","data":{"text":"psst"}}"#
    );
    assert_eq!(
        bob.recv_json().await?,
        json!({"type": "notice", "from": "carol", "data": "after"})
    );

    // A notice to yourself shows the order on one connection: notice, then ack.
    alice
        .send_json(json!({"type": "notice", "to": "alice", "data": "me", "ref": 8}))
        .await?;
    assert_eq!(
        alice.recv_json().await?,
        json!({"type": "notice", "from": "alice", "data": "me"})
    );
    assert_eq!(alice.recv_json().await?, ack(8));

    // Without a ref: the notice, and nothing for the sender.
    alice
        .send_json(json!({"type": "notice", "to": "bob", "data": 3}))
        .await?;
    assert_eq!(
        bob.recv_json().await?,
        json!({"type": "notice", "from": "alice", "data": 3})
    );
    for c in [&mut alice, &mut bob, &mut carol] {
        c.expect_idle().await?;
    }
    drop((alice, bob, carol));
    server.shutdown().await
}

#[tokio::test]
async fn notice_to_an_offline_id_is_target_closed() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;

    // Never connected.
    alice
        .send_json(json!({"type": "notice", "to": "carol", "data": "there?", "ref": 8}))
        .await?;
    assert_eq!(
        alice.recv_json().await?,
        json!({"type": "error", "ref": 8, "code": "target-closed",
               "message": "`carol` is not online"})
    );
    // Without a ref the error still comes (a notice never vanishes silently).
    alice
        .send_json(json!({"type": "notice", "to": "carol", "data": "there?"}))
        .await?;
    assert_eq!(
        alice.recv_json().await?,
        json!({"type": "error", "code": "target-closed",
               "message": "`carol` is not online"})
    );
    // A string that cannot be an id is refused: it could never be online.
    alice
        .send_json(json!({"type": "notice", "to": "no such id!", "data": 1, "ref": 9}))
        .await?;
    assert_eq!(
        alice.recv_json().await?,
        json!({"type": "error", "ref": 9, "code": "bad-request",
               "message": "field `to` must be an id: 1-64 characters of A-Z a-z 0-9 _ . -"})
    );

    // Gone after being online: bob shares a room with alice, so alice's
    // `left` says bob's disconnect has been handled.
    let mut bob = server.join("bob").await?;
    alice.join_room("alice", "lobby", 1).await?;
    bob.join_room("bob", "lobby", 2).await?;
    assert_eq!(alice.recv_json().await?, joined("lobby", "bob"));
    bob.close().await?;
    assert_eq!(alice.recv_json().await?, left("lobby", "bob"));
    alice
        .send_json(json!({"type": "notice", "to": "bob", "data": "bye", "ref": 10}))
        .await?;
    assert_eq!(
        alice.recv_json().await?,
        json!({"type": "error", "ref": 10, "code": "target-closed",
               "message": "`bob` is not online"})
    );
    alice.expect_idle().await?;
    drop(alice);
    server.shutdown().await
}

#[tokio::test]
async fn ping_with_and_without_ref() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    alice.send_text(r#"{"type":"ping"}"#).await?;
    assert_eq!(alice.recv_text().await?, r#"{"type":"pong"}"#);
    // No ack for the ping without a ref: the next frames are this ping's.
    alice.send_text(r#"{"type":"ping","ref":"hb-9"}"#).await?;
    assert_eq!(alice.recv_text().await?, r#"{"type":"pong"}"#);
    assert_eq!(alice.recv_text().await?, r#"{"type":"ack","ref":"hb-9"}"#);
    alice.expect_idle().await?;
    drop(alice);
    server.shutdown().await
}

/// Refs as raw JSON text, each to be echoed byte for byte.
const RAW_REFS: &[&str] = &[
    r#""m-1""#,
    r#""""#,
    r#""a\"b\\c\/d\u00e9\n\t""#,
    r#""大厅 ✓""#,
    "0",
    "42",
    "-1",
    "-1.5",
    "0.25",
    "1e3",
    "1E+3",
    "-2.5e-7",
    "-0",
    "1.0",
    "12345678901234567890123456789",
];

#[tokio::test]
async fn refs_are_echoed_exactly_as_sent() -> Result<()> {
    let server = TestServer::start(without_rate_limits(tolerant_config())).await?;
    let mut alice = server.join("alice").await?;
    for raw in RAW_REFS {
        // ack of a ping
        alice
            .send_text(&format!(r#"{{"type":"ping","ref":{raw}}}"#))
            .await?;
        assert_eq!(alice.recv_text().await?, r#"{"type":"pong"}"#);
        assert_eq!(
            alice.recv_text().await?,
            format!(r#"{{"type":"ack","ref":{raw}}}"#),
            "ack of ref {raw}"
        );
        // ack of a join, after the joined
        alice
            .send_text(&format!(r#"{{"type":"join","room":"r","ref":{raw}}}"#))
            .await?;
        assert_eq!(alice.recv_json().await?, joined("r", "alice"));
        // The ack's own fields first, exactly; the room's position after.
        let ack = alice.recv_text().await?;
        assert!(
            ack.starts_with(&format!(r#"{{"type":"ack","ref":{raw},"epoch":""#)),
            "{ack}"
        );
        // an error of the policy's rules
        alice
            .send_text(&format!(r#"{{"type":"leave","room":"x","ref":{raw}}}"#))
            .await?;
        assert_eq!(
            alice.recv_text().await?,
            format!(
                r#"{{"type":"error","ref":{raw},"code":"not-in-room","message":"not a member of room `x`"}}"#
            )
        );
        // a bad request
        alice
            .send_text(&format!(r#"{{"type":"dance","ref":{raw}}}"#))
            .await?;
        assert_eq!(
            alice.recv_text().await?,
            format!(
                r#"{{"type":"error","ref":{raw},"code":"unknown-type","message":"unknown type `dance`: expected join, leave, room, broadcast, notice, ping, members, online or history"}}"#
            )
        );
        // the host-built answers of a notice: ack on success, error when gone
        alice
            .send_text(&format!(
                r#"{{"type":"notice","to":"alice","data":0,"ref":{raw}}}"#
            ))
            .await?;
        assert_eq!(
            alice.recv_json().await?,
            json!({"type": "notice", "from": "alice", "data": 0})
        );
        assert_eq!(
            alice.recv_text().await?,
            format!(r#"{{"type":"ack","ref":{raw}}}"#)
        );
        alice
            .send_text(&format!(
                r#"{{"type":"notice","to":"nobody","data":0,"ref":{raw}}}"#
            ))
            .await?;
        assert_eq!(
            alice.recv_text().await?,
            format!(
                r#"{{"type":"error","ref":{raw},"code":"target-closed","message":"`nobody` is not online"}}"#
            )
        );
        alice.send_text(r#"{"type":"leave","room":"r"}"#).await?;
        assert_eq!(alice.recv_json().await?, left("r", "alice"));
    }
    // Whitespace around the value is not part of it.
    alice
        .send_text("{\"type\":\"ping\", \"ref\" :\n 1e3 }")
        .await?;
    assert_eq!(alice.recv_text().await?, r#"{"type":"pong"}"#);
    assert_eq!(alice.recv_text().await?, r#"{"type":"ack","ref":1e3}"#);
    alice.expect_idle().await?;
    drop(alice);
    server.shutdown().await
}

#[tokio::test]
async fn unknown_fields_are_ignored_and_a_repeated_field_keeps_its_last_value() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    alice
        .send_text(r#"{"x":{"deep":[1,2]},"type":"ping","ref":1,"ref":"last","extra":null}"#)
        .await?;
    assert_eq!(alice.recv_json().await?, json!({"type": "pong"}));
    assert_eq!(alice.recv_json().await?, ack("last"));
    alice
        .send_text(r#"{"type":"join","room":"first","room":"second","ref":2}"#)
        .await?;
    assert_eq!(alice.recv_json().await?, joined("second", "alice"));
    assert_eq!(alice.recv_json().await?, ack(2));
    assert!(!server.registry.in_room("alice", "first"));
    alice.expect_idle().await?;
    drop(alice);
    server.shutdown().await
}

#[tokio::test]
async fn requests_without_ref_get_no_ack() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;

    alice
        .send_json(json!({"type": "join", "room": "lobby"}))
        .await?;
    assert_eq!(alice.drain().await?, vec![joined("lobby", "alice")]);
    bob.send_json(json!({"type": "join", "room": "lobby"}))
        .await?;
    assert_eq!(bob.drain().await?, vec![joined("lobby", "bob")]);
    assert_eq!(alice.drain().await?, vec![joined("lobby", "bob")]);

    alice
        .send_json(json!({"type": "room", "room": "lobby", "data": 1}))
        .await?;
    alice.expect_idle().await?;
    assert_eq!(
        bob.drain().await?,
        vec![json!({"type": "room", "room": "lobby", "from": "alice", "data": 1})]
    );

    alice
        .send_json(json!({"type": "broadcast", "data": 2}))
        .await?;
    alice.expect_idle().await?;
    assert_eq!(
        bob.drain().await?,
        vec![json!({"type": "broadcast", "from": "alice", "data": 2})]
    );

    alice
        .send_json(json!({"type": "notice", "to": "bob", "data": 3}))
        .await?;
    alice.expect_idle().await?;
    assert_eq!(
        bob.drain().await?,
        vec![json!({"type": "notice", "from": "alice", "data": 3})]
    );

    alice.send_json(json!({"type": "ping"})).await?;
    assert_eq!(alice.drain().await?, vec![json!({"type": "pong"})]);

    alice
        .send_json(json!({"type": "leave", "room": "lobby"}))
        .await?;
    assert_eq!(alice.drain().await?, vec![left("lobby", "alice")]);
    assert_eq!(bob.drain().await?, vec![left("lobby", "alice")]);
    drop((alice, bob));
    server.shutdown().await
}

#[tokio::test]
async fn six_clients_in_three_rooms_get_exactly_their_rooms_messages() -> Result<()> {
    const ROOMS: [(&str, &[usize]); 3] = [
        ("r0", &[0, 1, 2, 3]),
        ("r1", &[2, 3, 4]),
        ("r2", &[0, 4, 5]),
    ];
    const PER_ROOM: i64 = 3;
    let server = TestServer::start(tolerant_config()).await?;
    let ids: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
    let mut clients = Vec::new();
    for id in &ids {
        clients.push(server.join(id).await?);
    }

    // Joins, in order: each member hears its own join and every later one,
    // in the order they happened (one queue per client).
    let mut next_ref = 0;
    let mut seen: Vec<Vec<Value>> = vec![Vec::new(); clients.len()];
    let mut expected: Vec<Vec<Value>> = vec![Vec::new(); clients.len()];
    for (room, members) in ROOMS {
        for (pos, &m) in members.iter().enumerate() {
            next_ref += 1;
            clients[m]
                .send_json(json!({"type": "join", "room": room, "ref": next_ref}))
                .await?;
            seen[m].extend(until_ack(&mut clients[m], next_ref).await?);
            for &earlier in &members[..=pos] {
                expected[earlier].push(joined(room, &ids[m]));
            }
        }
    }
    for (i, c) in clients.iter_mut().enumerate() {
        seen[i].extend(c.drain().await?);
        assert_eq!(seen[i], expected[i], "joins seen by {}", ids[i]);
    }

    // Every member says PER_ROOM things in each of its rooms.
    let mut frames: Vec<Vec<Value>> = vec![Vec::new(); clients.len()];
    for (room, members) in ROOMS {
        for seq in 0..PER_ROOM {
            for &m in members {
                next_ref += 1;
                clients[m]
                    .send_json(json!({"type": "room", "room": room,
                                      "data": {"room": room, "by": m, "seq": seq},
                                      "ref": next_ref}))
                    .await?;
                frames[m].extend(until_ack(&mut clients[m], next_ref).await?);
            }
        }
    }
    for (i, c) in clients.iter_mut().enumerate() {
        frames[i].extend(c.drain().await?);
        let frames = &frames[i];
        // Per (room, sender): the sequence numbers received, in order.
        let mut got: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
        for f in frames {
            assert_eq!(f["type"], "room", "{} got {f}", ids[i]);
            assert_eq!(f["room"], f["data"]["room"], "{f}");
            assert_eq!(f["from"], ids[f["data"]["by"].as_u64().unwrap() as usize]);
            got.entry((
                f["room"].as_str().unwrap().to_owned(),
                f["from"].as_str().unwrap().to_owned(),
            ))
            .or_default()
            .push(f["data"]["seq"].as_i64().unwrap());
        }
        let mut expected: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
        for (room, members) in ROOMS {
            if members.contains(&i) {
                for &m in members.iter().filter(|&&m| m != i) {
                    expected.insert((room.into(), ids[m].clone()), (0..PER_ROOM).collect());
                }
            }
        }
        assert_eq!(got, expected, "room messages seen by {}", ids[i]);
    }
    drop(clients);
    server.shutdown().await
}

#[tokio::test]
async fn a_second_connection_with_the_same_id_replaces_the_first() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut old = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    old.join_room("alice", "lobby", 1).await?;
    bob.join_room("bob", "lobby", 2).await?;
    assert_eq!(old.recv_json().await?, joined("lobby", "bob"));

    let mut new = server.join("alice").await?;
    let closed = old.closed().await?;
    assert_eq!(closed.code, Some(4001), "{closed:?}");
    assert_eq!(closed.reason, "replaced by a newer connection");
    drop(old);
    assert!(server.registry.is_online("alice"));

    // The id kept its room: a member's message reaches the new connection,
    // the room saw no left/joined, and joining again only acks.
    bob.send_json(json!({"type": "room", "room": "lobby", "data": "still there?", "ref": 3}))
        .await?;
    assert_eq!(bob.recv_json().await?, ack(3));
    assert_eq!(
        new.recv_json().await?,
        json!({"type": "room", "room": "lobby", "from": "bob", "data": "still there?"})
    );
    new.send_json(json!({"type": "join", "room": "lobby", "ref": 4}))
        .await?;
    assert_eq!(new.recv_json().await?, ack(4));
    new.send_json(json!({"type": "room", "room": "lobby", "data": "yes", "ref": 5}))
        .await?;
    assert_eq!(new.recv_json().await?, ack(5));
    assert_eq!(
        bob.recv_json().await?,
        json!({"type": "room", "room": "lobby", "from": "alice", "data": "yes"})
    );
    // Notices find the new connection too.
    bob.send_json(json!({"type": "notice", "to": "alice", "data": "n", "ref": 6}))
        .await?;
    assert_eq!(bob.recv_json().await?, ack(6));
    assert_eq!(
        new.recv_json().await?,
        json!({"type": "notice", "from": "bob", "data": "n"})
    );
    bob.expect_idle().await?;
    new.expect_idle().await?;
    assert!(server.registry.in_room("alice", "lobby"));
    drop((bob, new));
    server.shutdown().await
}

#[tokio::test]
async fn a_disconnect_sends_left_to_every_room_of_the_client() -> Result<()> {
    // Without resumes (a dropped socket is otherwise held for one first:
    // tests/resume.rs).
    let mut config = tolerant_config();
    config.recovery.resume_window = std::time::Duration::ZERO;
    let server = TestServer::start(config).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    let mut carol = server.join("carol").await?;
    let mut dave = server.join("dave").await?;
    alice.join_room("alice", "lobby", 1).await?;
    alice.join_room("alice", "garden", 2).await?;
    bob.join_room("bob", "lobby", 3).await?;
    bob.join_room("bob", "garden", 4).await?;
    carol.join_room("carol", "lobby", 5).await?;
    dave.join_room("dave", "cellar", 6).await?;
    alice.drain().await?;
    bob.drain().await?;

    alice.close().await?;
    // Bob shares two rooms with alice; the order of the rooms is not specified.
    let mut got = vec![bob.recv_json().await?, bob.recv_json().await?];
    got.sort_by_key(|v| v.to_string());
    let mut want = vec![left("garden", "alice"), left("lobby", "alice")];
    want.sort_by_key(|v| v.to_string());
    assert_eq!(got, want);
    assert_eq!(carol.recv_json().await?, left("lobby", "alice"));
    assert!(!server.registry.is_online("alice"));
    for c in [&mut bob, &mut carol, &mut dave] {
        c.expect_idle().await?;
    }

    // A dropped socket (no close handshake) counts too.
    drop(carol);
    assert_eq!(bob.recv_json().await?, left("lobby", "carol"));
    assert!(!server.registry.is_online("carol"));
    bob.expect_idle().await?;
    dave.expect_idle().await?;
    drop((bob, dave));
    server.shutdown().await
}

#[tokio::test]
async fn other_forms_of_the_connect_url() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    let mut dave = server.connect_path("/ws?id=dave").await?;
    assert_eq!(
        dave.recv_json().await?,
        json!({"type": "welcome", "id": "dave"})
    );
    // Also `/ws/?id=`, other query parameters, percent-encoding.
    let mut erin = server.connect_path("/ws/?x=1&id=e.r_i-n").await?;
    assert_eq!(
        erin.recv_json().await?,
        json!({"type": "welcome", "id": "e.r_i-n"})
    );
    let mut fred = server.connect_path("/ws/fr%65d").await?;
    assert_eq!(
        fred.recv_json().await?,
        json!({"type": "welcome", "id": "fred"})
    );
    // The path wins over the query.
    let mut gina = server.connect_path("/ws/gina?id=hank").await?;
    assert_eq!(
        gina.recv_json().await?,
        json!({"type": "welcome", "id": "gina"})
    );
    assert!(!server.registry.is_online("hank"));
    // The longest id.
    let long = "L".repeat(64);
    let mut longest = server.join(&long).await?;

    // They are ordinary connections under those ids.
    for (to, c) in [
        ("dave", &mut dave),
        ("e.r_i-n", &mut erin),
        ("fred", &mut fred),
        ("gina", &mut gina),
        (long.as_str(), &mut longest),
    ] {
        alice
            .send_json(json!({"type": "notice", "to": to, "data": to, "ref": to}))
            .await?;
        assert_eq!(alice.recv_json().await?, ack(to));
        assert_eq!(
            c.recv_json().await?,
            json!({"type": "notice", "from": "alice", "data": to})
        );
        c.expect_idle().await?;
    }
    drop((alice, dave, erin, fred, gina, longest));
    server.shutdown().await
}
