//! Redis restarted under two nodes (issue 21). Without persistence its
//! data is gone: rooms start a new epoch, so a client asking to recover
//! gets an honest `recovered:false`, and the nodes say again who is
//! where (presence, one connection per id). With `appendonly` the data is
//! back: the same epoch, offsets go on, recovery works. Nothing restarts
//! but Redis.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use switchboard_tests::cluster::{ask, connect, join, next_room, node, until_room};
use switchboard_tests::redis::{RedisOptions, RedisServer};
use switchboard_tests::{Client, TestServer, WAIT};

/// Send room messages from `c` until one is acked (Redis is coming back):
/// the ack.
async fn until_kept(c: &mut Client, data: &str) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, ack) = ask(
            c,
            json!({"type": "room", "room": "lobby", "data": data}),
            data,
        )
        .await?;
        if ack["type"] == "ack" {
            return Ok(ack);
        }
        ensure!(ack["code"] == "unavailable", "{ack}");
        if tokio::time::Instant::now() > deadline {
            bail!("never kept again: {ack}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two nodes, alice on a and bob on b in the lobby, three kept messages:
/// the nodes, the clients, and the lobby's epoch.
async fn three_kept(
    redis: &RedisServer,
) -> Result<(TestServer, TestServer, Client, Client, String)> {
    let a = TestServer::start(node(redis, "a")?).await?;
    let b = TestServer::start(node(redis, "b")?).await?;
    let mut alice = connect(&a, "alice").await?;
    let mut bob = connect(&b, "bob").await?;
    let epoch = join(&mut alice, "lobby").await?["epoch"]
        .as_str()
        .context("epoch")?
        .to_owned();
    join(&mut bob, "lobby").await?;
    for i in 1..=3 {
        until_kept(&mut bob, &format!("m{i}")).await?;
        let got = next_room(&mut alice).await?;
        ensure!(got["offset"] == i, "{got}");
    }
    Ok((a, b, alice, bob, epoch))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_persistence_a_restart_gives_a_new_epoch_and_an_honest_recovered_false()
-> Result<()> {
    let mut redis = RedisServer::start()?;
    let (a, b, mut alice, mut bob, epoch) = three_kept(&redis).await?;
    redis.restart()?;

    // The lobby starts again, under a new epoch, and still spans the nodes;
    // alice, connected throughout, is told of the new epoch before its
    // first message (her offsets would otherwise go from 3 back to 1).
    until_kept(&mut bob, "after").await?;
    let (before, got) = until_room(&mut alice).await?;
    ensure!(got["data"] == "after" && got["offset"] == 1, "{got}");
    let told: Vec<&Value> = before.iter().filter(|v| v["type"] == "epoch").collect();
    ensure!(
        told.len() == 1
            && told[0]["room"] == "lobby"
            && told[0]["epoch"].as_str().is_some_and(|e| e != epoch),
        "{before:?}"
    );
    let (_, ack) = ask(
        &mut alice,
        json!({"type": "join", "room": "lobby", "since": {"epoch": epoch, "offset": 3}}),
        "j",
    )
    .await?;
    ensure!(
        ack["recovered"] == false && ack["epoch"] != epoch.as_str(),
        "{ack}"
    );

    // The nodes said again who is where: presence spans them, and a newer
    // connection of alice's on node b still replaces the one on node a.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, online) = ask(&mut bob, json!({"type": "online", "ids": ["alice"]}), "o").await?;
        if online["ids"] == json!(["alice"]) {
            break;
        }
        ensure!(tokio::time::Instant::now() < deadline, "{online}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _again = connect(&b, "alice").await?;
    let closed = alice.closed().await?;
    ensure!(closed.code == Some(4001), "{closed:?}");
    a.shutdown().await?;
    b.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_appendonly_a_restart_keeps_the_epoch_and_recovery_works() -> Result<()> {
    let mut redis = RedisServer::start_with(RedisOptions { appendonly: true })?;
    let (a, b, mut alice, mut bob, epoch) = three_kept(&redis).await?;
    redis.restart()?;

    until_kept(&mut bob, "after").await?;
    let got = next_room(&mut alice).await?;
    ensure!(got["data"] == "after" && got["offset"] == 4, "{got}");
    // A client that missed them recovers them, on either node.
    let mut carol = connect(&b, "carol").await?;
    let (before, ack) = ask(
        &mut carol,
        json!({"type": "join", "room": "lobby", "since": {"epoch": epoch, "offset": 1}}),
        "j",
    )
    .await?;
    ensure!(
        ack["recovered"] == true && ack["epoch"] == epoch.as_str(),
        "{ack}"
    );
    let offsets: Vec<&Value> = before
        .iter()
        .filter(|v| v["type"] == "room")
        .map(|v| &v["offset"])
        .collect();
    ensure!(offsets == [&json!(2), &json!(3), &json!(4)], "{before:?}");
    a.shutdown().await?;
    b.shutdown().await
}
