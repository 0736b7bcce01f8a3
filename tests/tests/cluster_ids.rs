//! One connection per id across the cluster (issue 21): a newer
//! connection on node b replaces the older one on node a with 4001, the id
//! keeps its rooms and nobody hears `left`; 100 connects of one id at once
//! on two nodes leave exactly one.

use anyhow::{Result, bail, ensure};
use serde_json::{Value, json};
use switchboard_tests::cluster::{ask, connect, join, until_room};
use switchboard_tests::redis::RedisServer;
use switchboard_tests::{Client, TestServer, cluster::node};
use tokio::sync::{mpsc, oneshot};

/// `c` sends `data` to `room` (acked).
async fn say(c: &mut Client, room: &str, data: &str) -> Result<()> {
    let (_, ack) = ask(c, json!({"type": "room", "room": room, "data": data}), data).await?;
    ensure!(ack["type"] == "ack", "{data}: {ack}");
    Ok(())
}

/// The next room frame must be `data`, and nothing before it may say
/// anyone left.
async fn hears(c: &mut Client, data: &str) -> Result<()> {
    let (before, got) = until_room(c).await?;
    ensure!(got["data"] == data, "wanted {data}, got {got}");
    let left: Vec<&Value> = before.iter().filter(|v| v["type"] == "left").collect();
    ensure!(left.is_empty(), "a `left` was heard: {left:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_connection_on_another_node_replaces_the_older_and_keeps_its_rooms() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(node(&redis, "a")?).await?;
    let b = TestServer::start(node(&redis, "b")?).await?;
    let mut alice = connect(&a, "alice").await?;
    let mut bob = connect(&b, "bob").await?;
    let mut carol = connect(&a, "carol").await?;
    for c in [&mut alice, &mut bob, &mut carol] {
        join(c, "lobby").await?;
    }
    let mut again = connect(&b, "alice").await?;
    let closed = alice.closed().await?;
    ensure!(
        closed.code == Some(4001),
        "the older connection: {closed:?}"
    );

    // The new connection has the room, on its node and across.
    say(&mut bob, "lobby", "from b").await?;
    hears(&mut again, "from b").await?;
    hears(&mut carol, "from b").await?;
    say(&mut carol, "lobby", "from a").await?;
    hears(&mut again, "from a").await?;
    hears(&mut bob, "from a").await?;
    // And it leaves it as any member does: the others hear it.
    let (_, ack) = ask(&mut again, json!({"type": "leave", "room": "lobby"}), "l").await?;
    ensure!(ack["type"] == "ack", "{ack}");
    say(&mut carol, "lobby", "after").await?;
    ensure!(
        again.drain_v2().await?.iter().all(|v| v["type"] != "room"),
        "a room message after leaving"
    );
    a.shutdown().await?;
    b.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_connects_of_one_id_on_two_nodes_leave_exactly_one() -> Result<()> {
    const N: usize = 100;
    let redis = RedisServer::start()?;
    let a = TestServer::start(node(&redis, "a")?).await?;
    let b = TestServer::start(node(&redis, "b")?).await?;
    let mut first = connect(&a, "alice").await?;
    let mut bob = connect(&b, "bob").await?;
    let mut carol = connect(&a, "carol").await?;
    for c in [&mut first, &mut bob, &mut carol] {
        join(c, "lobby").await?;
    }

    // Every connection (the first too) waits for its close, or to be
    // handed back when the others have closed.
    let (closes, mut closed) = mpsc::unbounded_channel::<(usize, Option<u16>)>();
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    let watch = |i: usize, mut c: Client, stops: &mut Vec<oneshot::Sender<()>>| {
        let (stop, stopped) = oneshot::channel();
        stops.push(stop);
        let closes = closes.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = c.closed() => {
                    let _ = closes.send((i, r.ok().and_then(|c| c.code)));
                    None
                }
                _ = stopped => Some(c),
            }
        })
    };
    tasks.push(watch(0, first, &mut stops));
    let connects = (0..N).map(|i| {
        let server = if i % 2 == 0 { &b } else { &a };
        server.connect_path("/ws/alice")
    });
    let opened = futures_util::future::join_all(connects).await;
    for (i, c) in opened.into_iter().enumerate() {
        tasks.push(watch(i + 1, c?, &mut stops));
    }

    // All but one close with 4001.
    let mut open: Vec<bool> = vec![true; N + 1];
    for _ in 0..N {
        let Some((i, code)) = closed.recv().await else {
            bail!("the watchers stopped");
        };
        ensure!(code == Some(4001), "connection {i} closed with {code:?}");
        open[i] = false;
    }
    let survivors: Vec<usize> = (0..=N).filter(|i| open[*i]).collect();
    ensure!(survivors.len() == 1, "open: {survivors:?}");
    let winner = survivors[0];
    for (i, stop) in stops.into_iter().enumerate() {
        if i == winner {
            let _ = stop.send(());
        }
    }
    let mut alice = None;
    for (i, t) in tasks.into_iter().enumerate() {
        if i == winner {
            alice = t.await?;
        } else {
            t.abort();
        }
    }
    let Some(mut alice) = alice else {
        bail!("the survivor closed after all");
    };

    // It kept the room, and nobody heard `left`.
    say(&mut bob, "lobby", "from b").await?;
    hears(&mut alice, "from b").await?;
    hears(&mut carol, "from b").await?;
    say(&mut carol, "lobby", "from a").await?;
    hears(&mut alice, "from a").await?;
    hears(&mut bob, "from a").await?;
    a.shutdown().await?;
    b.shutdown().await
}
