//! What the server does with input it cannot use: malformed requests (an
//! error frame, the connection stays open), frames it will not take (a close
//! code), and handshakes it refuses (an HTTP status with the reason as the
//! body). After each, the server — and, where the connection stays open, the
//! same client — keeps working.

use anyhow::Result;
use serde_json::{Value, json};
use switchboard_tests::{Client, TestServer, tolerant_config};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

fn error(r: Option<Value>, code: &str, message: &str) -> Value {
    let mut v = json!({"type": "error", "code": code, "message": message});
    if let Some(r) = r {
        v["ref"] = r;
    }
    v
}

/// A fresh client proves the server still serves.
async fn still_serving(server: &TestServer, id: &str) -> Result<()> {
    let mut c = server.join(id).await?;
    c.expect_idle().await?;
    c.close().await
}

/// Send `frame` as one raw WebSocket frame.
async fn send_frame(c: &mut Client, payload: Vec<u8>, opcode: Data, fin: bool) -> Result<()> {
    use futures_util::SinkExt;
    c.ws.send(Message::Frame(Frame::message(
        payload,
        OpCode::Data(opcode),
        fin,
    )))
    .await?;
    Ok(())
}

#[tokio::test]
async fn malformed_requests_get_an_error_and_the_connection_stays_open() -> Result<()> {
    let room65 = "r".repeat(65);
    let cases: Vec<(String, Value)> = vec![
        // Not JSON at all.
        (
            "hello".into(),
            error(
                None,
                "bad-json",
                "invalid JSON: expected value at line 1 column 1",
            ),
        ),
        (
            "{".into(),
            error(
                None,
                "bad-json",
                "invalid JSON: EOF while parsing an object at line 1 column 1",
            ),
        ),
        // JSON, but not an object.
        (
            "[1,2,3]".into(),
            error(None, "bad-json", "expected a JSON object, got an array"),
        ),
        (
            " [ ] ".into(),
            error(None, "bad-json", "expected a JSON object, got an array"),
        ),
        (
            r#""ping""#.into(),
            error(None, "bad-json", "expected a JSON object, got a string"),
        ),
        (
            "42".into(),
            error(None, "bad-json", "expected a JSON object, got a number"),
        ),
        (
            "-1.5".into(),
            error(None, "bad-json", "expected a JSON object, got a number"),
        ),
        (
            "true".into(),
            error(None, "bad-json", "expected a JSON object, got a boolean"),
        ),
        (
            "false".into(),
            error(None, "bad-json", "expected a JSON object, got a boolean"),
        ),
        (
            "null".into(),
            error(None, "bad-json", "expected a JSON object, got null"),
        ),
        // `type` missing or ill-typed; the ref is echoed when usable.
        (
            r#"{"room":"lobby","ref":"x"}"#.into(),
            error(Some(json!("x")), "bad-request", "missing field `type`"),
        ),
        (
            "{}".into(),
            error(None, "bad-request", "missing field `type`"),
        ),
        (
            r#"{"type":5,"ref":1}"#.into(),
            error(
                Some(json!(1)),
                "bad-request",
                "field `type` must be a string",
            ),
        ),
        (
            r#"{"type":null}"#.into(),
            error(None, "bad-request", "field `type` must be a string"),
        ),
        (
            r#"{"type":["ping"]}"#.into(),
            error(None, "bad-request", "field `type` must be a string"),
        ),
        // Unknown types (names are case-sensitive).
        (
            r#"{"type":"dance","ref":11}"#.into(),
            error(
                Some(json!(11)),
                "unknown-type",
                "unknown type `dance`: expected join, leave, room, broadcast, notice, ping, members, online or history",
            ),
        ),
        (
            r#"{"type":"PING"}"#.into(),
            error(
                None,
                "unknown-type",
                "unknown type `PING`: expected join, leave, room, broadcast, notice, ping, members, online or history",
            ),
        ),
        // A ref that is neither string nor number: refused, not echoed; it is
        // checked before `type`.
        (
            r#"{"type":"ping","ref":null}"#.into(),
            error(
                None,
                "bad-request",
                "field `ref` must be a string or a number",
            ),
        ),
        (
            r#"{"type":"ping","ref":true}"#.into(),
            error(
                None,
                "bad-request",
                "field `ref` must be a string or a number",
            ),
        ),
        (
            r#"{"type":"ping","ref":{"n":1}}"#.into(),
            error(
                None,
                "bad-request",
                "field `ref` must be a string or a number",
            ),
        ),
        (
            r#"{"type":"ping","ref":[1]}"#.into(),
            error(
                None,
                "bad-request",
                "field `ref` must be a string or a number",
            ),
        ),
        (
            r#"{"type":5,"ref":false}"#.into(),
            error(
                None,
                "bad-request",
                "field `ref` must be a string or a number",
            ),
        ),
        // `room`.
        (
            r#"{"type":"join","ref":2}"#.into(),
            error(Some(json!(2)), "bad-request", "missing field `room`"),
        ),
        (
            r#"{"type":"leave"}"#.into(),
            error(None, "bad-request", "missing field `room`"),
        ),
        (
            r#"{"type":"room","data":1,"ref":"r"}"#.into(),
            error(Some(json!("r")), "bad-request", "missing field `room`"),
        ),
        (
            r#"{"type":"join","room":5,"ref":3}"#.into(),
            error(
                Some(json!(3)),
                "bad-request",
                "field `room` must be a string of 1-64 characters",
            ),
        ),
        (
            r#"{"type":"join","room":null}"#.into(),
            error(
                None,
                "bad-request",
                "field `room` must be a string of 1-64 characters",
            ),
        ),
        (
            r#"{"type":"join","room":"","ref":9}"#.into(),
            error(
                Some(json!(9)),
                "bad-request",
                "field `room` must be a string of 1-64 characters",
            ),
        ),
        (
            format!(r#"{{"type":"join","room":"{room65}"}}"#),
            error(
                None,
                "bad-request",
                "field `room` must be a string of 1-64 characters",
            ),
        ),
        (
            r#"{"type":"join","room":"a\u0007b","ref":4}"#.into(),
            error(
                Some(json!(4)),
                "bad-request",
                "field `room` must not contain control characters",
            ),
        ),
        // `data` missing; fields are checked before membership.
        (
            r#"{"type":"room","room":"nowhere","ref":5}"#.into(),
            error(
                Some(json!(5)),
                "bad-request",
                "missing field `data` (any JSON value, null allowed)",
            ),
        ),
        (
            r#"{"type":"broadcast","ref":10}"#.into(),
            error(
                Some(json!(10)),
                "bad-request",
                "missing field `data` (any JSON value, null allowed)",
            ),
        ),
        (
            r#"{"type":"notice","to":"bob","ref":6}"#.into(),
            error(
                Some(json!(6)),
                "bad-request",
                "missing field `data` (any JSON value, null allowed)",
            ),
        ),
        // `to`.
        (
            r#"{"type":"notice","data":1,"ref":7}"#.into(),
            error(Some(json!(7)), "bad-request", "missing field `to`"),
        ),
        (
            r#"{"type":"notice"}"#.into(),
            error(None, "bad-request", "missing field `to`"),
        ),
        (
            r#"{"type":"notice","to":7,"data":1,"ref":-8}"#.into(),
            error(
                Some(json!(-8)),
                "bad-request",
                "field `to` must be a string",
            ),
        ),
    ];

    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    for (input, expected) in &cases {
        alice.send_text(input).await?;
        let got = alice.recv_json().await?;
        assert_eq!(&got, expected, "answer to {input}");
    }
    // Parser details that are not pinned down beyond their prefix.
    for input in [
        "",
        "{\"type\":\"ping\",}",
        "{\"type\":\"ping\"} x",
        "{'type':'ping'}",
    ] {
        alice.send_text(input).await?;
        let got = alice.recv_json().await?;
        assert_eq!(got["type"], "error", "answer to {input:?}: {got}");
        assert_eq!(got["code"], "bad-json", "answer to {input:?}: {got}");
        assert!(got.get("ref").is_none(), "answer to {input:?}: {got}");
        let message = got["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("invalid JSON: ") && message.contains(" at line 1 column "),
            "answer to {input:?}: {got}"
        );
    }
    // None of it did anything: alice is in no room, bob heard nothing.
    assert!(server.registry.rooms_of("alice").is_empty());
    bob.expect_idle().await?;

    // The same connection still works, including at the edges of validity.
    alice.expect_idle().await?;
    let room64 = "大".repeat(64);
    alice
        .send_json(json!({"type": "join", "room": room64, "ref": 1}))
        .await?;
    assert_eq!(
        alice.recv_json().await?,
        json!({"type": "joined", "room": room64, "id": "alice"})
    );
    assert_eq!(alice.recv_json().await?, json!({"type": "ack", "ref": 1}));
    alice
        .send_json(json!({"type": "broadcast", "data": null, "ref": 2}))
        .await?;
    assert_eq!(alice.recv_json().await?, json!({"type": "ack", "ref": 2}));
    assert_eq!(
        bob.recv_json().await?,
        json!({"type": "broadcast", "from": "alice", "data": null})
    );
    alice.expect_idle().await?;
    still_serving(&server, "carol").await?;
    drop((alice, bob));
    server.shutdown().await
}

#[tokio::test]
async fn a_binary_frame_is_a_bad_request_and_the_connection_stays_open() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    alice
        .send_binary(br#"{"type":"ping","ref":1}"#.to_vec())
        .await?;
    assert_eq!(
        alice.recv_json().await?,
        error(
            None,
            "bad-request",
            "binary frames are not supported: send JSON text frames"
        )
    );
    alice.send_binary(Vec::new()).await?;
    assert_eq!(alice.recv_json().await?["code"], "bad-request");
    alice.expect_idle().await?;
    assert!(server.registry.is_online("alice"));
    still_serving(&server, "bob").await?;
    drop(alice);
    server.shutdown().await
}

/// A `ping` with `ref` 1 padded to exactly `len` bytes.
fn ping_of_len(len: usize) -> String {
    let head = r#"{"type":"ping","ref":1,"pad":""#;
    let tail = r#""}"#;
    let s = format!("{head}{}{tail}", "p".repeat(len - head.len() - tail.len()));
    assert_eq!(s.len(), len);
    s
}

#[tokio::test]
async fn a_message_over_the_default_64_kib_limit_closes_with_1009() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    for (c, id) in [(&mut alice, "alice"), (&mut bob, "bob")] {
        c.send_json(json!({"type": "join", "room": "lobby", "ref": 0}))
            .await?;
        assert_eq!(c.recv_json().await?["type"], "joined");
        assert_eq!(
            c.recv_json().await?,
            json!({"type": "ack", "ref": 0}),
            "{id}"
        );
    }
    alice.drain().await?;

    // Exactly 65 536 bytes is allowed, and is forwarded whole.
    let head = r#"{"type":"room","room":"lobby","ref":2,"data":""#;
    let tail = r#""}"#;
    let filler = "d".repeat(65_536 - head.len() - tail.len());
    let max = format!("{head}{filler}{tail}");
    assert_eq!(max.len(), 65_536);
    alice.send_text(&max).await?;
    assert_eq!(alice.recv_json().await?, json!({"type": "ack", "ref": 2}));
    let got = bob.recv_json().await?;
    assert_eq!(got["data"].as_str().map(str::len), Some(filler.len()));

    // One byte more closes the connection with 1009.
    let over = format!("{head}{filler}d{tail}");
    assert_eq!(over.len(), 65_537);
    alice.send_text(&over).await?;
    let closed = alice.closed().await?;
    assert_eq!(closed.code, Some(1009), "{closed:?}");
    assert_eq!(closed.reason, "message too big (limit 65536 bytes)");
    drop(alice);
    // The rest of the room sees alice go, and nothing of the big message.
    assert_eq!(
        bob.recv_json().await?,
        json!({"type": "left", "room": "lobby", "id": "alice"})
    );
    assert!(!server.registry.is_online("alice"));
    bob.expect_idle().await?;
    still_serving(&server, "carol").await?;
    drop(bob);
    server.shutdown().await
}

#[tokio::test]
async fn a_configured_message_limit_counts_the_whole_message() -> Result<()> {
    let mut cfg = tolerant_config();
    cfg.limits.max_message_bytes = 1024;
    let server = TestServer::start(cfg).await?;

    // At the limit: fine.
    let mut alice = server.join("alice").await?;
    alice.send_text(&ping_of_len(1024)).await?;
    assert_eq!(alice.recv_json().await?, json!({"type": "pong"}));
    assert_eq!(alice.recv_json().await?, json!({"type": "ack", "ref": 1}));
    // A fragmented message under the limit: fine too.
    let text = ping_of_len(1000).into_bytes();
    send_frame(&mut alice, text[..500].to_vec(), Data::Text, false).await?;
    send_frame(&mut alice, text[500..].to_vec(), Data::Continue, true).await?;
    assert_eq!(alice.recv_json().await?, json!({"type": "pong"}));
    assert_eq!(alice.recv_json().await?, json!({"type": "ack", "ref": 1}));
    alice.expect_idle().await?;
    // One byte over: 1009.
    alice.send_text(&ping_of_len(1025)).await?;
    let closed = alice.closed().await?;
    assert_eq!(closed.code, Some(1009), "{closed:?}");
    assert_eq!(closed.reason, "message too big (limit 1024 bytes)");
    drop(alice);

    // Fragments each under the limit whose message is over it: 1009.
    let mut bob = server.join("bob").await?;
    let text = ping_of_len(1200).into_bytes();
    send_frame(&mut bob, text[..600].to_vec(), Data::Text, false).await?;
    send_frame(&mut bob, text[600..].to_vec(), Data::Continue, true).await?;
    let closed = bob.closed().await?;
    assert_eq!(closed.code, Some(1009), "{closed:?}");
    drop(bob);

    still_serving(&server, "carol").await?;
    server.shutdown().await
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut watcher = server.join("watcher").await?;
    let mut alice = server.join("alice").await?;
    for (c, id) in [(&mut watcher, "watcher"), (&mut alice, "alice")] {
        c.send_json(json!({"type": "join", "room": "lobby", "ref": 0}))
            .await?;
        assert_eq!(c.recv_json().await?["type"], "joined");
        assert_eq!(
            c.recv_json().await?,
            json!({"type": "ack", "ref": 0}),
            "{id}"
        );
    }
    watcher.drain().await?;

    let mut bad = br#"{"type":"room","room":"lobby","data":""#.to_vec();
    bad.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
    send_frame(&mut alice, bad, Data::Text, true).await?;
    let closed = alice.closed().await?;
    assert_eq!(closed.code, Some(1007), "{closed:?}");
    assert_eq!(closed.reason, "invalid UTF-8 in a text frame");
    drop(alice);
    assert_eq!(
        watcher.recv_json().await?,
        json!({"type": "left", "room": "lobby", "id": "alice"})
    );
    watcher.expect_idle().await?;

    // Invalid UTF-8 spread over fragments: the same (a lone lead byte of a
    // 3-byte sequence, then an ASCII byte).
    let mut bob = server.join("bob").await?;
    send_frame(
        &mut bob,
        b"{\"type\":\"ping\",\"x\":\"\xe5".to_vec(),
        Data::Text,
        false,
    )
    .await?;
    send_frame(&mut bob, b"a\"}".to_vec(), Data::Continue, true).await?;
    let closed = bob.closed().await?;
    assert_eq!(closed.code, Some(1007), "{closed:?}");
    drop(bob);

    // Binary frames are not UTF-8 checked: those bytes get a bad-request.
    let mut carol = server.join("carol").await?;
    carol.send_binary(vec![0xff, 0xfe]).await?;
    assert_eq!(carol.recv_json().await?["code"], "bad-request");
    carol.expect_idle().await?;
    still_serving(&server, "dave").await?;
    drop((watcher, carol));
    server.shutdown().await
}

#[tokio::test]
async fn refused_handshakes_answer_with_a_status_and_the_reason() -> Result<()> {
    const MISSING: &str = "missing id: connect to /ws/<id> or /ws?id=<id>\n";
    const NOT_FOUND: &str = "no such endpoint: connect to /ws/<id> or /ws?id=<id>\n";
    let invalid =
        |id: &str| format!("invalid id \"{id}\": an id is 1-64 characters of A-Z a-z 0-9 _ . -\n");
    let long = "x".repeat(65);
    let cases: Vec<(String, u16, String)> = vec![
        ("/ws".into(), 400, MISSING.into()),
        ("/ws/".into(), 400, MISSING.into()),
        ("/ws?id=".into(), 400, MISSING.into()),
        ("/ws?other=1".into(), 400, MISSING.into()),
        ("/ws/bad%20id".into(), 400, invalid("bad id")),
        ("/ws/bad!".into(), 400, invalid("bad!")),
        ("/ws?id=a%2Fb".into(), 400, invalid("a/b")),
        ("/ws/a/b".into(), 400, invalid("a/b")),
        (format!("/ws/{long}"), 400, invalid(&long)),
        ("/".into(), 404, NOT_FOUND.into()),
        ("/chat/alice".into(), 404, NOT_FOUND.into()),
        ("/wsx/alice".into(), 404, NOT_FOUND.into()),
    ];
    let server = TestServer::start(tolerant_config()).await?;
    let mut watcher = server.join("watcher").await?;
    for (path, status, body) in &cases {
        let r = server.raw_upgrade(path).await?;
        assert_eq!(r.status, *status, "{path}: {}", r.head);
        assert_eq!(&r.body, body, "{path}");
        assert!(
            r.head
                .to_ascii_lowercase()
                .contains("content-type: text/plain"),
            "{path}: {}",
            r.head
        );
        assert_eq!(server.refused_status(path).await?, *status, "{path}");
        still_serving(&server, "ok").await?;
    }
    // Nothing reached the other clients.
    watcher.expect_idle().await?;
    drop(watcher);
    server.shutdown().await
}
