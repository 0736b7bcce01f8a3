//! The policy's key-value state is cluster-wide (issue 21): a mute made
//! by a moderator on node a holds for the muted id on node b, on a node
//! started later, and is lifted everywhere by an unmute — the moderation
//! example policy keeps its mutes in the state.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use switchboard::config::{Config, PolicySource};
use switchboard_tests::cluster::node;
use switchboard_tests::redis::RedisServer;
use switchboard_tests::{Client, TestServer, WAIT};

fn moderated(redis: &RedisServer, id: &str) -> Result<Config> {
    let path = env!("MODERATION_WASM");
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    Ok(Config {
        policy: PolicySource::Bytes {
            name: "moderation".into(),
            bytes,
        },
        ..node(redis, id)?
    })
}

/// Send `request` with ref `r`; the answer to it.
async fn ask(c: &mut Client, mut request: Value, r: u64) -> Result<Value> {
    request["ref"] = json!(r);
    c.send_json(request).await?;
    loop {
        let v = c.recv_json().await?;
        if v["ref"] == r {
            return Ok(v);
        }
    }
}

/// Ask `c` to speak in the lobby until the answer's `type` is `want`
/// (a change of state made on another node takes a message to arrive).
async fn until_answered(c: &mut Client, want: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    for r in 100.. {
        let answer = ask(c, json!({"type": "room", "room": "lobby", "data": "hi"}), r).await?;
        if answer["type"] == want {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("wanted {want}, still {answer}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_made_on_one_node_holds_on_every_node() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(moderated(&redis, "a")?).await?;
    let b = TestServer::start(moderated(&redis, "b")?).await?;
    let mut moderator = a.join("mod-ann").await?;
    let mut alice = b.join("alice").await?;
    moderator.join_room("mod-ann", "lobby", 1).await?;
    alice.join_room("alice", "lobby", 2).await?;
    until_answered(&mut alice, "ack").await?;

    let mute = ask(
        &mut moderator,
        json!({"type": "room", "room": "lobby", "data": "/mute alice"}),
        3,
    )
    .await?;
    if mute["type"] != "ack" {
        bail!("{mute}");
    }
    until_answered(&mut alice, "error").await?;
    let refused = ask(
        &mut alice,
        json!({"type": "room", "room": "lobby", "data": "hi"}),
        4,
    )
    .await?;
    if refused["code"] != "muted" {
        bail!("{refused}");
    }

    // A node started later has the mute too.
    let c = TestServer::start(moderated(&redis, "c")?).await?;
    let mut again = c.join("alice").await?;
    // (It reads the state when it subscribes, a moment after it starts.)
    until_answered(&mut again, "error").await?;
    let refused = ask(&mut again, json!({"type": "broadcast", "data": "hi"}), 5).await?;
    if refused["code"] != "muted" {
        bail!("on the new node: {refused}");
    }

    // Lifted everywhere.
    let unmute = ask(
        &mut moderator,
        json!({"type": "room", "room": "lobby", "data": "/unmute alice"}),
        6,
    )
    .await?;
    if unmute["type"] != "ack" {
        bail!("{unmute}");
    }
    until_answered(&mut again, "ack").await?;
    a.shutdown().await?;
    b.shutdown().await?;
    c.shutdown().await
}
