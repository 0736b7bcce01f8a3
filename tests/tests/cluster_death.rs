//! Node death (issue 21): a node killed with SIGKILL mid-conversation is
//! found dead by a survivor (its heartbeat expires), its ids go offline
//! for good once the resume window ends — their rooms hear `left` within
//! 10 s, `on-disconnect` runs once — and no kept room message is lost: a
//! client of the dead node that comes back on another node gets every one
//! (the recovery of `join` with `since`, then the room's history).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use switchboard_tests::cluster::{NodeProcess, ask, connect, join, node};
use switchboard_tests::redis::RedisServer;
use switchboard_tests::{Client, TestServer};

/// Room frames `c` gets until `n` of them came, by offset.
async fn rooms(c: &mut Client, n: usize) -> Result<BTreeMap<u64, Value>> {
    let mut got = BTreeMap::new();
    while got.len() < n {
        let v = c.recv_v2().await?;
        if v["type"] == "room" {
            got.insert(v["offset"].as_u64().context("offset")?, v["data"].clone());
        }
    }
    Ok(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_no_kept_message_and_its_ids_leave_within_ten_seconds() -> Result<()> {
    let redis = RedisServer::start()?;
    let mut a = NodeProcess::start(&redis, "a", &["--resume-window-secs", "0"]).await?;
    let mut config = node(&redis, "b")?;
    config.recovery.resume_window = Duration::ZERO;
    let b = TestServer::start(config).await?;
    let (mut alice, _) = a.connect("alice").await?;
    let mut bob = connect(&b, "bob").await?;
    let mut carol = connect(&b, "carol").await?;
    let epoch = join(&mut alice, "lobby").await?["epoch"]
        .as_str()
        .context("epoch")?
        .to_owned();
    join(&mut bob, "lobby").await?;
    join(&mut carol, "lobby").await?;

    // Five reach alice; node a dies; five more are kept meanwhile.
    let mut acked = 0;
    for i in 1..=5 {
        let (_, ack) = ask(
            &mut bob,
            json!({"type": "room", "room": "lobby", "data": i}),
            "m",
        )
        .await?;
        ensure!(ack["type"] == "ack", "{ack}");
        acked += 1;
    }
    let seen = rooms(&mut alice, 5).await?;
    let last = *seen.keys().last().context("none")?;
    a.kill();
    let killed = Instant::now();
    for i in 6..=10 {
        let (_, ack) = ask(
            &mut bob,
            json!({"type": "room", "room": "lobby", "data": i}),
            "m",
        )
        .await?;
        ensure!(ack["type"] == "ack", "{ack}");
        acked += 1;
    }

    // Alice's rooms hear her leave, once the survivor finds node a dead.
    loop {
        let v = carol.recv_v2().await?;
        if v["type"] == "left" {
            ensure!(v["id"] == "alice" && v["room"] == "lobby", "{v}");
            break;
        }
    }
    let after = killed.elapsed();
    eprintln!("left heard {after:?} after the SIGKILL");
    ensure!(
        after < Duration::from_secs(10),
        "left came {after:?} after the kill"
    );
    let (_, online) = ask(
        &mut bob,
        json!({"type": "online", "ids": ["alice", "carol"]}),
        "o",
    )
    .await?;
    ensure!(online["ids"] == json!(["carol"]), "{online}");

    // Alice comes back on node b: from where she was, every kept message.
    let mut alice = connect(&b, "alice").await?;
    let (before, ack) = ask(
        &mut alice,
        json!({"type": "join", "room": "lobby", "since": {"epoch": epoch, "offset": last}}),
        "j",
    )
    .await?;
    ensure!(ack["recovered"] == true, "{ack}");
    let replayed: Vec<u64> = before
        .iter()
        .filter(|v| v["type"] == "room")
        .filter_map(|v| v["offset"].as_u64())
        .collect();
    let all: Vec<u64> = seen.keys().copied().chain(replayed).collect();
    ensure!(
        all == (1..=acked).collect::<Vec<u64>>(),
        "offsets {all:?}, {acked} acked"
    );
    b.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_id_is_held_for_its_window_and_taken_back_elsewhere() -> Result<()> {
    let redis = RedisServer::start()?;
    let mut a = NodeProcess::start(&redis, "a", &["--resume-window-secs", "120"]).await?;
    let b = TestServer::start(node(&redis, "b")?).await?;
    let (mut alice, welcome) = a.connect("alice").await?;
    let session = welcome["session"].as_str().context("session")?.to_owned();
    let mut bob = connect(&b, "bob").await?;
    let ack = join(&mut alice, "lobby").await?;
    let (epoch, last) = (ack["epoch"].clone(), ack["offset"].clone());
    join(&mut bob, "lobby").await?;
    a.kill();

    // Found dead and taken over: alice is held (still online, still a
    // member: nobody hears `left` while her window lasts).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let held = redis.cli(["HGET", "switchboard:{id:alice}", "held"])?;
        if held.trim() == "1" {
            break;
        }
        if Instant::now() > deadline {
            bail!("alice never held after node a died");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, online) = ask(&mut bob, json!({"type": "online", "ids": ["alice"]}), "o").await?;
    ensure!(online["ids"] == json!(["alice"]), "{online}");

    for i in 1..=2 {
        let (_, ack) = ask(
            &mut bob,
            json!({"type": "room", "room": "lobby", "data": i}),
            "w",
        )
        .await?;
        ensure!(ack["type"] == "ack", "{ack}");
    }

    // She comes back on node b with her session: her id, her rooms, and
    // nobody heard her leave.
    let mut alice = b
        .connect_path(&format!("/ws/alice?resume={session}"))
        .await?;
    let welcome = alice.recv_v2().await?;
    ensure!(welcome["type"] == "welcome", "{welcome}");
    // Nobody handed her queue over (node a is dead): she asks for what she
    // missed, from where she was, and gets it.
    let (before, ack) = ask(
        &mut alice,
        json!({"type": "join", "room": "lobby", "since": {"epoch": epoch, "offset": last}}),
        "j",
    )
    .await?;
    ensure!(ack["recovered"] == true, "{ack}");
    let missed: Vec<&Value> = before
        .iter()
        .filter(|v| v["type"] == "room")
        .map(|v| &v["data"])
        .collect();
    ensure!(missed == [&json!(1), &json!(2)], "{before:?}");
    let (_, ack) = ask(
        &mut bob,
        json!({"type": "room", "room": "lobby", "data": "back?"}),
        "m",
    )
    .await?;
    ensure!(ack["type"] == "ack", "{ack}");
    let got = rooms(&mut alice, 1).await?;
    ensure!(got.values().next() == Some(&json!("back?")), "{got:?}");
    let frames = bob.drain_v2().await?;
    ensure!(frames.iter().all(|v| v["type"] != "left"), "{frames:?}");
    b.shutdown().await
}

/// Redis paused for 10 s lapses every heartbeat at once: when it runs
/// again, no node takes another over (each waits until it has reached
/// Redis steadily for a heartbeat's life, by when the live nodes have
/// beaten again), so nobody hears `left` and the rooms still span both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_makes_no_node_take_another_over() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(node(&redis, "a")?).await?;
    let b = TestServer::start(node(&redis, "b")?).await?;
    let mut alice = connect(&a, "alice").await?;
    let mut bob = connect(&b, "bob").await?;
    join(&mut alice, "lobby").await?;
    join(&mut bob, "lobby").await?;
    redis.pause()?;
    // The fault itself: ten seconds of a Redis that answers nothing.
    tokio::time::sleep(Duration::from_secs(10)).await;
    redis.resume()?;
    // Long enough for a takeover to have happened if it were going to:
    // a heartbeat's life, the grace and a beat (3 + 2 + 1 s), and one more.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let claims = redis.cli(["KEYS", "switchboard:node:*:claim"])?;
    ensure!(claims.trim().is_empty(), "a node was taken over: {claims}");
    let (_, ack) = ask(
        &mut bob,
        json!({"type": "room", "room": "lobby", "data": "still here"}),
        "m",
    )
    .await?;
    ensure!(ack["type"] == "ack", "{ack}");
    let got = rooms(&mut alice, 1).await?;
    ensure!(got.values().next() == Some(&json!("still here")), "{got:?}");
    for c in [&mut alice, &mut bob] {
        let frames = c.drain_v2().await?;
        ensure!(frames.iter().all(|v| v["type"] != "left"), "{frames:?}");
    }
    a.shutdown().await?;
    b.shutdown().await
}

/// Notices `c` gets until `n` of them came: their `data`, in order.
async fn notices(c: &mut Client, n: usize) -> Result<Vec<Value>> {
    let mut got = Vec::new();
    while got.len() < n {
        let v = c.recv_v2().await?;
        if v["type"] == "notice" {
            got.push(v["data"].clone());
        }
    }
    Ok(got)
}

/// Send a notice from `c` to `to` and check it was acked: `held` says
/// whether the ack must say so.
async fn notice(c: &mut Client, to: &str, data: Value, held: bool) -> Result<()> {
    let (_, ack) = ask(
        c,
        json!({"type": "notice", "to": to, "data": data.clone()}),
        "n",
    )
    .await?;
    ensure!(ack["type"] == "ack", "notice {data}: {ack}");
    ensure!(
        ack["held"].as_bool().unwrap_or(false) == held,
        "notice {data}: {ack}"
    );
    Ok(())
}

/// Until `key` is gone from Redis (a dead node's heartbeat expiring).
async fn until_gone(redis: &RedisServer, key: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while redis.cli(["EXISTS", key])?.trim() != "0" {
        if Instant::now() > deadline {
            bail!("{key} still there");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// An acked notice is kept in Redis until the node that has its target
/// wrote it to the socket: a node killed with a held id's notices queued
/// takes none of them along. The id, resumed on another node, gets each
/// one once, in order — the ones acked before the kill and the ones acked
/// for it while it was held for the dead node — and none it had already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_no_acked_notice() -> Result<()> {
    let redis = RedisServer::start()?;
    let mut a = NodeProcess::start(&redis, "a", &["--resume-window-secs", "120"]).await?;
    let b = TestServer::start(node(&redis, "b")?).await?;
    let (mut alice, welcome) = a.connect("alice").await?;
    let session = welcome["session"].as_str().context("session")?.to_owned();
    let mut bob = connect(&b, "bob").await?;

    // One she reads on node a: written there, it must not come again.
    notice(&mut bob, "alice", json!(0), false).await?;
    ensure!(notices(&mut alice, 1).await? == [json!(0)]);
    // Her connection drops: held on node a, which queues what comes.
    drop(alice);
    let deadline = Instant::now() + Duration::from_secs(15);
    while redis
        .cli(["HGET", "switchboard:{id:alice}", "held"])?
        .trim()
        != "1"
    {
        ensure!(Instant::now() < deadline, "alice never held on node a");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 1..=3 {
        notice(&mut bob, "alice", json!(i), true).await?;
    }
    a.kill();
    // Node a's heartbeat lapses: a notice for alice now finds no listener
    // and is kept for her (she is held, for the dead node).
    until_gone(&redis, "switchboard:node:a").await?;
    for i in 4..=5 {
        notice(&mut bob, "alice", json!(i), true).await?;
    }

    let mut alice = b
        .connect_path(&format!("/ws/alice?resume={session}"))
        .await?;
    let welcome = alice.recv_v2().await?;
    ensure!(welcome["type"] == "welcome", "{welcome}");
    let got = notices(&mut alice, 5).await?;
    ensure!(
        got == (1..=5).map(|i| json!(i)).collect::<Vec<_>>(),
        "{got:?}"
    );
    // And nothing more: each came once.
    notice(&mut bob, "alice", json!("last"), false).await?;
    ensure!(notices(&mut alice, 1).await? == [json!("last")]);
    // Written, they leave the log.
    let deadline = Instant::now() + Duration::from_secs(15);
    while redis.cli(["XLEN", "switchboard:{id:alice}:f"])?.trim() != "0" {
        ensure!(
            Instant::now() < deadline,
            "written notices stay in the log: {}",
            redis.cli(["XRANGE", "switchboard:{id:alice}:f", "-", "+"])?
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.shutdown().await
}

/// A node cut off from Redis (its network, not the others') for longer
/// than a heartbeat's life is taken over by a survivor, which lets its ids
/// go when their window ends (their rooms hear `left`). When it reaches
/// Redis again, it finds it was taken over and closes its connections
/// with 1012, so their clients connect again and are someone's: never two
/// connections of one id, nor a connection Redis says nobody has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_taken_over_while_cut_off_closes_its_connections_when_back() -> Result<()> {
    use switchboard::config::cluster::{ClusterConfig, RedisUrl};
    use switchboard_tests::proxy::Proxy;
    let redis = RedisServer::start()?;
    let proxy = Proxy::start(([127, 0, 0, 1], redis.port()).into()).await?;
    let mut config = node(&redis, "a")?;
    let through =
        RedisUrl::parse(&format!("redis://{}/0", proxy.addr())).map_err(anyhow::Error::msg)?;
    config.cluster = Some(ClusterConfig::new(through));
    let a = TestServer::start(config).await?;
    let mut config = node(&redis, "b")?;
    config.recovery.resume_window = Duration::from_secs(1);
    let b = TestServer::start(config).await?;
    let mut alice = connect(&a, "alice").await?;
    let mut bob = connect(&b, "bob").await?;
    join(&mut alice, "lobby").await?;
    join(&mut bob, "lobby").await?;

    proxy.cut();
    // Node b finds node a dead and lets alice go: bob hears her leave.
    loop {
        let v = bob.recv_v2().await?;
        if v["type"] == "left" {
            ensure!(v["id"] == "alice", "{v}");
            break;
        }
    }
    proxy.heal();
    let closed = alice.closed().await?;
    ensure!(closed.code == Some(1012), "{closed:?}");

    // She connects again, and is someone's: bob's notice reaches her
    // (`unavailable`, "send it again", until node a hears Redis again).
    let mut alice = connect(&a, "alice").await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, ack) = ask(
            &mut bob,
            json!({"type": "notice", "to": "alice", "data": "back"}),
            "n",
        )
        .await?;
        if ack["type"] == "ack" {
            break;
        }
        ensure!(
            ack["code"] == "unavailable" && Instant::now() < deadline,
            "{ack}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(notices(&mut alice, 1).await? == [json!("back")]);
    a.shutdown().await?;
    b.shutdown().await
}
