//! Resume from any node (issue 21): a client whose socket died on node a
//! comes back on node b with `?resume=`; it gets `resumed:true` and every
//! kept room message and notice it missed, once, in order — what node a
//! queued while it was held, then what came after — and nobody hears it
//! leave.

use std::time::Duration;

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard_tests::cluster::{ask, connect, join, node};
use switchboard_tests::redis::RedisServer;
use switchboard_tests::{Client, TestServer};

fn held_for(mut c: Config) -> Config {
    c.recovery.resume_window = Duration::from_secs(120);
    c
}

/// `c` sends `data` to `room` (acked).
async fn say(c: &mut Client, room: &str, data: &str) -> Result<()> {
    let (_, ack) = ask(c, json!({"type": "room", "room": room, "data": data}), data).await?;
    ensure!(ack["type"] == "ack", "{data}: {ack}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_held_on_one_node_resumes_on_another_missing_nothing() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(held_for(node(&redis, "a")?)).await?;
    let b = TestServer::start(held_for(node(&redis, "b")?)).await?;
    let (mut alice, session) = a.connect_with_session("alice").await?;
    let mut bob = connect(&b, "bob").await?;
    let mut carol = connect(&a, "carol").await?;
    for c in [&mut alice, &mut bob, &mut carol] {
        join(c, "lobby").await?;
    }

    // The socket dies: no close frame. Alice is held on node a.
    drop(alice);
    a.until_held("alice").await?;
    for i in 1..=3 {
        say(&mut bob, "lobby", &format!("m{i}")).await?;
    }
    let (_, ack) = ask(
        &mut carol,
        json!({"type": "notice", "to": "alice", "data": "while away"}),
        "n",
    )
    .await?;
    ensure!(ack["type"] == "ack", "{ack}");

    // Back, on node b.
    let mut alice = b
        .connect_path(&format!("/ws/alice?resume={session}"))
        .await?;
    let welcome = alice.recv_v2().await?;
    ensure!(
        welcome["type"] == "welcome" && welcome["resumed"] == true,
        "{welcome}"
    );
    // Messages sent after the handover, from both nodes, come after what
    // was missed, with no gap and no repeat.
    say(&mut carol, "lobby", "m4").await?;
    say(&mut bob, "lobby", "m5").await?;
    let mut rooms: Vec<Value> = Vec::new();
    let mut notices: Vec<Value> = Vec::new();
    while rooms.len() < 5 {
        let v = alice.recv_v2().await?;
        match v["type"].as_str() {
            Some("room") => rooms.push(v),
            Some("notice") => notices.push(v),
            Some("left") | Some("joined") => anyhow::bail!("alice saw {v}"),
            _ => {}
        }
    }
    let offsets: Vec<u64> = rooms.iter().filter_map(|v| v["offset"].as_u64()).collect();
    let data: Vec<&str> = rooms.iter().filter_map(|v| v["data"].as_str()).collect();
    ensure!(
        offsets == [1, 2, 3, 4, 5],
        "offsets {offsets:?} ({rooms:?})"
    );
    ensure!(data == ["m1", "m2", "m3", "m4", "m5"], "{data:?}");
    let rest = alice.drain_v2().await?;
    notices.extend(rest.into_iter().filter(|v| v["type"] == "notice"));
    ensure!(
        notices.len() == 1 && notices[0]["data"] == "while away",
        "{notices:?}"
    );

    // Nobody heard alice leave.
    for c in [&mut bob, &mut carol] {
        let frames = c.drain_v2().await?;
        ensure!(
            frames.iter().all(|v| v["type"] != "left"),
            "a left was heard: {frames:?}"
        );
    }
    // And she is alice on node b now: a notice reaches her there.
    ask(
        &mut carol,
        json!({"type": "notice", "to": "alice", "data": "hi again"}),
        "n2",
    )
    .await?;
    loop {
        let v = alice.recv_v2().await?;
        if v["type"] == "notice" {
            ensure!(v["data"] == "hi again", "{v}");
            break;
        }
    }
    a.shutdown().await?;
    b.shutdown().await
}

/// A resume that comes while Redis does not answer is refused with 503
/// `unavailable` (the id cannot be claimed), and the client is told to try
/// again: the hold stays for that next try, queue and all. Before, the
/// refused try ended the hold, and the notice queued for the id was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_refused_while_redis_is_away_keeps_the_hold() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(held_for(node(&redis, "a")?)).await?;
    let (alice, session) = a.connect_with_session("alice").await?;
    let mut carol = connect(&a, "carol").await?;
    drop(alice);
    a.until_held("alice").await?;
    let (_, ack) = ask(
        &mut carol,
        json!({"type": "notice", "to": "alice", "data": "while away"}),
        "n",
    )
    .await?;
    ensure!(ack["type"] == "ack" && ack["held"] == true, "{ack}");

    redis.pause()?;
    let path = format!("/ws/alice?resume={session}");
    let refused = a.refused_status(&path).await;
    redis.resume()?;
    ensure!(
        refused? == 503,
        "the resume was not refused while Redis was away"
    );
    ensure!(a.registry.is_online("alice"), "the hold ended");

    let mut alice = a.connect_path(&path).await?;
    let welcome = alice.recv_v2().await?;
    ensure!(welcome["resumed"] == true, "{welcome}");
    loop {
        let v = alice.recv_v2().await?;
        if v["type"] == "notice" {
            ensure!(v["data"] == "while away", "{v}");
            break;
        }
    }
    a.shutdown().await
}
