//! Two nodes on one Redis (started here on a free port): rooms, their
//! offsets, history and recovery, and broadcasts, with the clients on
//! different nodes — the guarantees of one node (issue 21).

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use switchboard_tests::TestServer;
use switchboard_tests::cluster::{ask, connect, next_room, node};
use switchboard_tests::redis::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_span_nodes_with_one_numbering() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(node(&redis, "a")?).await?;
    let b = TestServer::start(node(&redis, "b")?).await?;
    let mut alice = connect(&a, "alice").await?;
    let mut bob = connect(&b, "bob").await?;
    let (_, joined) = ask(&mut alice, json!({"type": "join", "room": "lobby"}), "j").await?;
    ensure!(joined["type"] == "ack", "{joined}");
    let epoch = joined["epoch"].as_str().context("epoch")?.to_owned();
    let (_, joined) = ask(&mut bob, json!({"type": "join", "room": "lobby"}), "j").await?;
    ensure!(
        joined["epoch"] == epoch.as_str(),
        "one epoch on both nodes: {joined}"
    );

    // Across nodes, both ways, numbered once.
    let (_, ack) = ask(
        &mut alice,
        json!({"type": "room", "room": "lobby", "data": "from a"}),
        "m1",
    )
    .await?;
    ensure!(ack["type"] == "ack", "{ack}");
    let got = next_room(&mut bob).await?;
    ensure!(got["data"] == "from a" && got["offset"] == 1, "{got}");
    ask(
        &mut bob,
        json!({"type": "room", "room": "lobby", "data": "from b"}),
        "m2",
    )
    .await?;
    let got = next_room(&mut alice).await?;
    ensure!(got["data"] == "from b" && got["offset"] == 2, "{got}");

    // History on either node.
    let (_, page) = ask(&mut bob, json!({"type": "history", "room": "lobby"}), "h").await?;
    let data: Vec<&Value> = page["messages"]
        .as_array()
        .context("messages")?
        .iter()
        .map(|m| &m["data"])
        .collect();
    ensure!(data == [&json!("from a"), &json!("from b")], "{page}");

    // A broadcast reaches the other node.
    ask(
        &mut alice,
        json!({"type": "broadcast", "data": "hi all"}),
        "b",
    )
    .await?;
    loop {
        let v = bob.recv_v2().await?;
        if v["type"] == "broadcast" {
            ensure!(v["data"] == "hi all" && v["from"] == "alice", "{v}");
            break;
        }
    }

    // Bob leaves node b, misses three, and recovers them on node a.
    bob.close().await?;
    for i in 0..3 {
        ask(
            &mut alice,
            json!({"type": "room", "room": "lobby", "data": i}),
            &format!("x{i}"),
        )
        .await?;
    }
    let mut bob = connect(&a, "bob").await?;
    let (before, ack) = ask(
        &mut bob,
        json!({"type": "join", "room": "lobby", "since": {"epoch": epoch, "offset": 2}}),
        "r",
    )
    .await?;
    ensure!(ack["recovered"] == true, "{ack}");
    let replayed: Vec<&Value> = before
        .iter()
        .filter(|v| v["type"] == "room")
        .map(|v| &v["offset"])
        .collect();
    ensure!(replayed == [&json!(3), &json!(4), &json!(5)], "{before:?}");
    a.shutdown().await?;
    b.shutdown().await
}

/// `/healthz`'s `cluster` field, polled (bounded) until it is `want`.
async fn until_cluster(server: &TestServer, want: &str) -> Result<()> {
    let admin = server.admin(None)?;
    let deadline = tokio::time::Instant::now() + switchboard_tests::WAIT;
    loop {
        let (status, body) = admin
            .request(switchboard::ops::Method::Get, "/healthz")
            .await
            .map_err(anyhow::Error::msg)?;
        let health: Value = serde_json::from_str(&body)?;
        if status == 200 && health["cluster"] == want {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "cluster never {want}: {health}"
        );
        // Health is re-read at the node's heartbeat, once a second.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Redis paused: a room message is refused with `unavailable` (and is
/// never kept or delivered later), health says `degraded`; when Redis runs
/// again everything works without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_is_refused_honestly_and_recovered_from() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(switchboard_tests::with_admin(
        node(&redis, "a")?,
        "a-token-of-16-chars-or-more",
    ))
    .await?;
    let b = TestServer::start(node(&redis, "b")?).await?;
    let mut alice = connect(&a, "alice").await?;
    let mut bob = connect(&b, "bob").await?;
    for c in [&mut alice, &mut bob] {
        let (_, ack) = ask(c, json!({"type": "join", "room": "lobby"}), "j").await?;
        ensure!(ack["type"] == "ack", "{ack}");
    }
    until_cluster(&a, "ok").await?;

    redis.pause()?;
    let (_, refused) = ask(
        &mut alice,
        json!({"type": "room", "room": "lobby", "data": "lost?"}),
        "p",
    )
    .await?;
    ensure!(
        refused["type"] == "error" && refused["code"] == "unavailable",
        "{refused}"
    );
    until_cluster(&a, "degraded").await?;
    redis.resume()?;
    until_cluster(&a, "ok").await?;

    let (_, ack) = ask(
        &mut alice,
        json!({"type": "room", "room": "lobby", "data": "kept"}),
        "k",
    )
    .await?;
    ensure!(ack["type"] == "ack", "{ack}");
    let got = next_room(&mut bob).await?;
    ensure!(
        got["data"] == "kept" && got["offset"] == 1,
        "the refused message was kept or delivered: {got}"
    );
    a.shutdown().await?;
    b.shutdown().await
}

/// The subscriber connections are cut (`CLIENT KILL TYPE pubsub`) while a
/// room is busy: every message still reaches the member on the other node
/// once, in order (the gap is filled from the room's stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_subscription_loses_no_kept_message() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(node(&redis, "a")?).await?;
    let b = TestServer::start(node(&redis, "b")?).await?;
    let mut alice = connect(&a, "alice").await?;
    let mut bob = connect(&b, "bob").await?;
    for c in [&mut alice, &mut bob] {
        ask(c, json!({"type": "join", "room": "lobby"}), "j").await?;
    }
    const N: u64 = 300;
    for i in 1..=N {
        if i == N / 3 || i == 2 * N / 3 {
            redis.cli(["CLIENT", "KILL", "TYPE", "pubsub"])?;
        }
        alice
            .send_json(json!({"type": "room", "room": "lobby", "data": i}))
            .await?;
    }
    ask(&mut alice, json!({"type": "ping"}), "done").await?;
    for want in 1..=N {
        let got = next_room(&mut bob).await?;
        ensure!(
            got["offset"] == want && got["data"] == want,
            "wanted {want}, got {got}"
        );
    }
    a.shutdown().await?;
    b.shutdown().await
}

/// A room's epoch lasts while it has members, however long it is quiet (as
/// on one server): its history's messages expire `history_ttl_secs` after
/// the newest, not its epoch. Before, the room's meta hash expired with
/// them, and the next message started a new epoch under its members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_room_keeps_its_epoch_while_it_has_members() -> Result<()> {
    let redis = RedisServer::start()?;
    let mut config = node(&redis, "a")?;
    config.recovery.history_ttl = std::time::Duration::from_secs(1);
    let a = TestServer::start(config).await?;
    let mut alice = connect(&a, "alice").await?;
    let mut bob = connect(&a, "bob").await?;
    let mut epochs = Vec::new();
    for c in [&mut alice, &mut bob] {
        let (_, joined) = ask(c, json!({"type": "join", "room": "lobby"}), "j").await?;
        epochs.push(joined["epoch"].as_str().context("epoch")?.to_owned());
    }
    ask(
        &mut alice,
        json!({"type": "room", "room": "lobby", "data": "one"}),
        "m1",
    )
    .await?;
    ensure!(next_room(&mut bob).await?["offset"] == 1);

    // Quiet for three times the history's lifetime: what is being tested
    // is time passing (Redis expiring keys), so the test waits it out.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let meta = redis.cli(["EXISTS", "switchboard:{room:lobby}:m"])?;
    ensure!(
        meta.trim() == "1",
        "the room's epoch expired under its members"
    );
    ask(
        &mut alice,
        json!({"type": "room", "room": "lobby", "data": "two"}),
        "m2",
    )
    .await?;
    let (before, got) = switchboard_tests::cluster::until_room(&mut bob).await?;
    ensure!(got["offset"] == 2, "{got}");
    ensure!(before.iter().all(|v| v["type"] != "epoch"), "{before:?}");
    let (_, again) = ask(&mut bob, json!({"type": "join", "room": "lobby"}), "j2").await?;
    ensure!(
        again["epoch"] == epochs[0].as_str() && epochs[0] == epochs[1],
        "{again}"
    );
    a.shutdown().await
}
