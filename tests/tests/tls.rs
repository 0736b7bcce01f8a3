//! wss://: the core protocol flow over TLS (a certificate generated per
//! test), and a plain-TCP client on the TLS port is turned away promptly
//! without disturbing the server.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use switchboard_tests::{TestServer, WAIT, tolerant_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn the_core_flow_over_wss() -> Result<()> {
    let server = TestServer::start_tls(tolerant_config()).await?;
    assert!(server.url("/ws/x").starts_with("wss://"));
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;

    alice
        .send_json(json!({"type": "join", "room": "lobby", "ref": 1}))
        .await?;
    assert_eq!(
        alice.recv_json().await?,
        json!({"type": "joined", "room": "lobby", "id": "alice"})
    );
    assert_eq!(alice.recv_json().await?, json!({"type": "ack", "ref": 1}));
    bob.send_json(json!({"type": "join", "room": "lobby", "ref": 2}))
        .await?;
    let bob_joined = json!({"type": "joined", "room": "lobby", "id": "bob"});
    assert_eq!(bob.recv_json().await?, bob_joined);
    assert_eq!(bob.recv_json().await?, json!({"type": "ack", "ref": 2}));
    assert_eq!(alice.recv_json().await?, bob_joined);

    alice
        .send_text(r#"{"type":"room","room":"lobby","data":{"text":"hi over tls"},"ref":3}"#)
        .await?;
    assert_eq!(alice.recv_text().await?, r#"{"type":"ack","ref":3}"#);
    assert_eq!(
        bob.recv_text().await?,
        r#"{"type":"room","room":"lobby","from":"alice","data":{"text":"hi over tls"},"offset":1}"#
    );

    bob.send_json(json!({"type": "notice", "to": "alice", "data": "psst", "ref": 4}))
        .await?;
    assert_eq!(bob.recv_json().await?, json!({"type": "ack", "ref": 4}));
    assert_eq!(
        alice.recv_json().await?,
        json!({"type": "notice", "from": "bob", "data": "psst"})
    );

    // A frame bigger than a TLS record (16 KiB) crosses intact.
    let big = "b".repeat(40_000);
    alice
        .send_json(json!({"type": "room", "room": "lobby", "data": big, "ref": 5}))
        .await?;
    assert_eq!(alice.recv_json().await?, json!({"type": "ack", "ref": 5}));
    assert_eq!(
        bob.recv_json().await?,
        json!({"type": "room", "room": "lobby", "from": "alice", "data": big})
    );

    alice.close().await?;
    assert_eq!(
        bob.recv_json().await?,
        json!({"type": "left", "room": "lobby", "id": "alice"})
    );
    assert!(!server.registry.is_online("alice"));
    bob.expect_idle().await?;
    drop(bob);
    server.shutdown().await
}

#[tokio::test]
async fn a_plain_client_on_the_tls_port_is_refused_and_the_server_carries_on() -> Result<()> {
    let mut cfg = tolerant_config();
    // Longer than any wait below: the plain client must be turned away
    // because it is not TLS, not because the handshake timed out.
    cfg.limits.tls_handshake_timeout = Duration::from_secs(120);
    let server = TestServer::start_tls(cfg).await?;
    let mut alice = server.join("alice").await?;

    // A plain ws:// upgrade request to the wss:// port.
    let mut tcp = TcpStream::connect(server.addr).await?;
    tcp.write_all(
        b"GET /ws/mallory HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await?;
    let mut answer = Vec::new();
    // EOF or a reset both end it; what matters is that it ends promptly.
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .context("the server kept a plain-TCP client on its TLS port hanging")?;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "the TLS port answered in plain HTTP: {:?}",
        String::from_utf8_lossy(&answer)
    );
    // Whatever came back is at most a TLS alert record.
    if let Some(&first) = answer.first() {
        assert_eq!(first, 0x15, "expected a TLS alert, got {answer:?}");
    }
    assert!(!server.registry.is_online("mallory"));

    // A plain WebSocket client library fails too (instead of hanging).
    let mut tcp = TcpStream::connect(server.addr).await?;
    let plain = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async(
            format!("ws://localhost:{}/ws/mallory", server.addr.port()),
            &mut tcp,
        ),
    )
    .await
    .context("a plain WebSocket handshake on the TLS port hung")?;
    assert!(
        plain.is_err(),
        "a plain WebSocket handshake succeeded on the TLS port"
    );
    drop(tcp);

    // The open wss connection and new ones are fine.
    alice.expect_idle().await?;
    let mut bob = server.join("bob").await?;
    bob.send_json(json!({"type": "notice", "to": "alice", "data": 1, "ref": 1}))
        .await?;
    assert_eq!(bob.recv_json().await?, json!({"type": "ack", "ref": 1}));
    assert_eq!(
        alice.recv_json().await?,
        json!({"type": "notice", "from": "bob", "data": 1})
    );
    drop((alice, bob));
    server.shutdown().await
}
