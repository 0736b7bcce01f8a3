//! The shortest end-to-end path: connect, welcome, ping.

use serde_json::json;
use switchboard_tests::{TestServer, config};

#[tokio::test]
async fn welcome_and_ping() -> anyhow::Result<()> {
    let server = TestServer::start(config()).await?;
    let mut alice = server.join("alice").await?;
    alice.send_json(json!({"type": "ping", "ref": 7})).await?;
    assert_eq!(alice.recv_json().await?, json!({"type": "pong"}));
    assert_eq!(alice.recv_json().await?, json!({"type": "ack", "ref": 7}));
    server.shutdown().await
}
