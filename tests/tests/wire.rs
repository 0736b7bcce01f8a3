//! What the server writes at the WebSocket level, over ws:// and wss://:
//! the pong to a client's ping and the reply to a client's close (which
//! tungstenite makes and the host's writer sends), and frames of every
//! length encoding (the host writes its own frame headers).

use anyhow::{Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use switchboard_tests::{Client, TestServer, WAIT, tolerant_config};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn server(tls: bool) -> Result<TestServer> {
    let mut config = tolerant_config();
    // Room for the largest frame below (70,000 bytes of data).
    config.limits.max_message_bytes = 256 * 1024;
    if tls {
        TestServer::start_tls(config).await
    } else {
        TestServer::start(config).await
    }
}

/// The next frame of any kind.
async fn next(c: &mut Client) -> Result<Message> {
    match tokio::time::timeout(WAIT, c.ws.next()).await {
        Err(_) => bail!("nothing within {WAIT:?}"),
        Ok(None) => bail!("connection ended"),
        Ok(Some(Err(e))) => bail!("read failed: {e}"),
        Ok(Some(Ok(m))) => Ok(m),
    }
}

async fn ping_is_answered(tls: bool) -> Result<()> {
    let server = server(tls).await?;
    let mut alice = server.join("alice").await?;
    alice
        .ws
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await?;
    // A request sent after the ping: its answer comes after the pong.
    alice.send_json(json!({"type": "ping", "ref": 1})).await?;
    assert_eq!(
        next(&mut alice).await?,
        Message::Pong(b"are you there".to_vec().into())
    );
    assert_eq!(alice.recv_json().await?["type"], "pong");
    assert_eq!(alice.recv_json().await?, json!({"type": "ack", "ref": 1}));
    drop(alice);
    server.shutdown().await
}

#[tokio::test]
async fn a_clients_ping_gets_its_pong() -> Result<()> {
    ping_is_answered(false).await
}

#[tokio::test]
async fn a_clients_ping_gets_its_pong_over_wss() -> Result<()> {
    ping_is_answered(true).await
}

async fn close_is_answered(tls: bool) -> Result<()> {
    let server = server(tls).await?;
    let mut alice = server.join("alice").await?;
    alice
        .ws
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await?;
    match next(&mut alice).await? {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => bail!("expected the close reply, got {other:?}"),
    }
    // Then the server ends the connection.
    let end = tokio::time::timeout(WAIT, alice.ws.next()).await?;
    assert!(matches!(end, None | Some(Err(_))), "{end:?}");
    server.shutdown().await
}

#[tokio::test]
async fn a_clients_close_gets_its_reply() -> Result<()> {
    close_is_answered(false).await
}

#[tokio::test]
async fn a_clients_close_gets_its_reply_over_wss() -> Result<()> {
    close_is_answered(true).await
}

/// Room frames of 7-bit, 16-bit and 64-bit lengths arrive whole, in order.
async fn every_length_arrives(tls: bool) -> Result<()> {
    let server = server(tls).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    alice.join_room("alice", "lobby", 1).await?;
    bob.join_room("bob", "lobby", 2).await?;
    assert_eq!(
        alice.recv_json().await?,
        json!({"type": "joined", "room": "lobby", "id": "bob"})
    );
    let sizes = [
        0usize, 10, 100, 125, 126, 200, 65_000, 65_535, 65_536, 70_000,
    ];
    for (i, n) in sizes.iter().enumerate() {
        let text = "x".repeat(*n);
        alice
            .send_json(json!({"type": "room", "room": "lobby", "data": text, "ref": 10 + i}))
            .await?;
    }
    for (i, n) in sizes.iter().enumerate() {
        let got = bob.recv_json().await?;
        assert_eq!(got["type"], "room", "{i}");
        assert_eq!(got["data"].as_str().map(str::len), Some(*n), "frame {i}");
    }
    drop((alice, bob));
    server.shutdown().await
}

#[tokio::test]
async fn frames_of_every_length_arrive_whole() -> Result<()> {
    every_length_arrives(false).await
}

#[tokio::test]
async fn frames_of_every_length_arrive_whole_over_wss() -> Result<()> {
    every_length_arrives(true).await
}
