//! The server pings quiet connections: a client that answers (as every
//! WebSocket library does when it reads) stays, one that does not is closed
//! with 1001 `no pong`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use switchboard::config::Config;
use switchboard_tests::{RawWs, TestServer, WAIT, eventually, tolerant_config};
use tokio_tungstenite::tungstenite::Message;

/// Pings after 1 s of silence, and 1 s to answer.
fn quick_pings() -> Config {
    let mut c = tolerant_config();
    c.limits.ping_interval = Duration::from_secs(1);
    c.limits.pong_timeout = Duration::from_secs(1);
    c
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected() -> Result<()> {
    let server = TestServer::start(quick_pings()).await?;
    let mut alice = server.join("alice").await?;
    // Read (tungstenite answers each ping with a pong as it reads) and send
    // nothing: three pings mean three answered pong deadlines in a row.
    let mut pings = 0;
    while pings < 3 {
        let next = tokio::time::timeout(WAIT, alice.ws.next())
            .await
            .context("no ping within the wait")?;
        match next {
            Some(Ok(Message::Ping(payload))) => {
                assert!(payload.is_empty(), "ping payload {payload:?}");
                pings += 1;
            }
            other => bail!("expected only pings on a quiet connection, got {other:?}"),
        }
    }
    assert!(server.registry.is_online("alice"));
    alice.expect_idle().await?;
    alice.close().await?;
    server.shutdown().await
}

#[tokio::test]
async fn a_client_that_never_answers_is_closed_with_no_pong() -> Result<()> {
    // Without a resume window: no pong, offline.
    let mut config = quick_pings();
    config.recovery.resume_window = Duration::ZERO;
    let server = TestServer::start(config).await?;
    let mut raw = RawWs::connect(server.addr, "/ws/mute").await?;
    let welcome = raw.frame().await?.context("closed before the welcome")?;
    assert_eq!(welcome.opcode, 1, "{welcome:?}");
    let welcome: serde_json::Value = serde_json::from_slice(&welcome.payload)?;
    assert_eq!(
        switchboard_tests::v1_view(welcome),
        serde_json::json!({"type": "welcome", "id": "mute"})
    );

    let ping = raw.frame().await?.context("closed before a ping")?;
    assert_eq!(ping.opcode, 9, "expected a ping, got {ping:?}");
    let close = raw.frame().await?.context("closed without a close frame")?;
    assert_eq!(close.opcode, 8, "expected a close, got {close:?}");
    assert_eq!(close.close(), Some((1001, "no pong".to_owned())));
    // Then the server hangs up, and the id is offline.
    assert_eq!(raw.frame().await?, None);
    eventually("`mute` offline", || !server.registry.is_online("mute")).await?;
    server.shutdown().await
}

/// With a resume window (the default), a client that stopped answering is
/// told (1001 `no pong`) and held: its session can still be resumed.
#[tokio::test]
async fn a_client_that_never_answers_is_held_for_a_resume() -> Result<()> {
    let server = TestServer::start(quick_pings()).await?;
    let mut raw = RawWs::connect(server.addr, "/ws/mute").await?;
    let welcome = raw.frame().await?.context("closed before the welcome")?;
    let welcome: serde_json::Value = serde_json::from_slice(&welcome.payload)?;
    let session = welcome["session"]
        .as_str()
        .context("no session")?
        .to_owned();
    let ping = raw.frame().await?.context("closed before a ping")?;
    assert_eq!(ping.opcode, 9, "expected a ping, got {ping:?}");
    let close = raw.frame().await?.context("closed without a close frame")?;
    assert_eq!(close.close(), Some((1001, "no pong".to_owned())));
    server.until_held("mute").await?;
    assert!(server.registry.is_online("mute"), "held counts as online");
    let mut back = server
        .connect_path(&format!("/ws/mute?resume={session}"))
        .await?;
    let welcome = back.recv_v2().await?;
    assert_eq!(welcome["resumed"], true, "{welcome}");
    server.shutdown().await
}
