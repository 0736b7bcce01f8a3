//! Presence (docs/PROTOCOL.md, "Presence"): `members` of a room, for its
//! members only, and which of some ids are `online`, against the default
//! policy in the sandbox and the same rules compiled natively.

use anyhow::Result;
use serde_json::{Value, json};
use switchboard_tests::{TestServer, tolerant_config};

async fn presence(native_rules: bool) -> Result<()> {
    let mut config = tolerant_config();
    config.native_rules = native_rules;
    let server = TestServer::start(config).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    let mut carol = server.join("carol").await?;
    alice.join_room("alice", "lobby", 1).await?;
    bob.join_room("bob", "lobby", 1).await?;
    assert_eq!(
        alice.recv_json().await?,
        json!({"type": "joined", "room": "lobby", "id": "bob"})
    );

    alice
        .send_json(json!({"type": "members", "room": "lobby", "ref": "m"}))
        .await?;
    assert_eq!(
        alice.recv_json().await?,
        json!({"type": "members", "room": "lobby", "ids": ["alice", "bob"], "count": 2, "ref": "m"})
    );

    // Not a member: refused, and the answer echoes the ref.
    carol
        .send_json(json!({"type": "members", "room": "lobby", "ref": 5}))
        .await?;
    let refused: Value = carol.recv_json().await?;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "not-in-room");
    assert_eq!(refused["ref"], 5);

    carol
        .send_json(json!({"type": "online", "ids": ["bob", "dave", "alice", "bob"], "ref": 6}))
        .await?;
    assert_eq!(
        carol.recv_json().await?,
        json!({"type": "online", "ids": ["bob", "alice"], "ref": 6})
    );

    let too_many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    carol
        .send_json(json!({"type": "online", "ids": too_many, "ref": 7}))
        .await?;
    let refused: Value = carol.recv_json().await?;
    assert_eq!(refused["code"], "bad-request");
    assert_eq!(refused["ref"], 7);

    // Nothing else arrived: each request had exactly one answer.
    for c in [&mut alice, &mut bob, &mut carol] {
        c.expect_idle().await?;
    }
    drop((alice, bob, carol));
    server.shutdown().await
}

#[tokio::test]
async fn members_and_online_in_the_sandbox() -> Result<()> {
    presence(false).await
}

#[tokio::test]
async fn members_and_online_with_native_rules() -> Result<()> {
    presence(true).await
}
