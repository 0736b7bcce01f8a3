//! Presence cluster-wide (issue 21): `members` and `online` answer for
//! every node's connections, a node started later sees the others', and
//! leaving (a room, or for good) is seen everywhere.

use std::time::Duration;

use anyhow::{Result, bail, ensure};
use serde_json::{Value, json};
use switchboard_tests::cluster::{ask, connect, join, node};
use switchboard_tests::redis::RedisServer;
use switchboard_tests::{Client, TestServer, WAIT};

/// Ask `request` until its answer is `want` (a change on another node
/// takes a pub/sub message to be seen here), within [`WAIT`].
async fn until(c: &mut Client, request: Value, want: Value) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, mut answer) = ask(c, request.clone(), "q").await?;
        if let Some(o) = answer.as_object_mut() {
            o.remove("ref");
        }
        if answer == want {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("asked {request}, wanted {want}, got {answer}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_and_online_span_the_nodes() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(node(&redis, "a")?).await?;
    let b = TestServer::start(node(&redis, "b")?).await?;
    let mut alice = connect(&a, "alice").await?;
    let mut bob = connect(&b, "bob").await?;
    join(&mut alice, "lobby").await?;
    join(&mut bob, "lobby").await?;
    let members = json!({"type": "members", "room": "lobby"});
    let both = json!({"type": "members", "room": "lobby", "ids": ["alice", "bob"], "count": 2});
    until(&mut alice, members.clone(), both.clone()).await?;
    until(&mut bob, members.clone(), both).await?;
    let online = json!({"type": "online", "ids": ["bob", "carol", "alice"]});
    until(
        &mut alice,
        online.clone(),
        json!({"type": "online", "ids": ["bob", "alice"]}),
    )
    .await?;

    // A node started later reads the others' presence.
    let c = TestServer::start(node(&redis, "c")?).await?;
    let mut carol = connect(&c, "carol").await?;
    until(
        &mut carol,
        online.clone(),
        json!({"type": "online", "ids": ["bob", "carol", "alice"]}),
    )
    .await?;
    join(&mut carol, "lobby").await?;
    until(
        &mut carol,
        members.clone(),
        json!({"type": "members", "room": "lobby", "ids": ["alice", "bob", "carol"], "count": 3}),
    )
    .await?;

    // Bob leaves the room, then goes: seen on every node.
    let (_, ack) = ask(&mut bob, json!({"type": "leave", "room": "lobby"}), "l").await?;
    ensure!(ack["type"] == "ack", "{ack}");
    until(
        &mut carol,
        members.clone(),
        json!({"type": "members", "room": "lobby", "ids": ["alice", "carol"], "count": 2}),
    )
    .await?;
    bob.close().await?;
    until(
        &mut alice,
        online,
        json!({"type": "online", "ids": ["carol", "alice"]}),
    )
    .await?;
    a.shutdown().await?;
    b.shutdown().await?;
    c.shutdown().await
}
