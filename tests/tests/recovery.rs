//! Room history and recovery: kept room messages carry an `offset`; a
//! `join` with `since` replays exactly what was missed, in order, once,
//! before anything live, then acks `recovered:true`, while other members
//! keep sending; when it cannot (another epoch, history trimmed, more than
//! `max_recover` missed) nothing is replayed and the ack says
//! `recovered:false`. The `history` request pages back through the kept
//! messages, for members only.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard_tests::{Client, TestServer, tolerant_config, without_rate_limits};

fn config(history_size: usize, max_recover: usize) -> Config {
    let mut c = without_rate_limits(tolerant_config());
    c.recovery.history_size = history_size;
    c.recovery.max_recover = max_recover;
    c
}

async fn connect(server: &TestServer, id: &str) -> Result<Client> {
    let mut c = server.connect(id).await?;
    let welcome = c.recv_v2().await?;
    ensure!(welcome["type"] == "welcome", "{welcome}");
    Ok(c)
}

/// Send `join` (with `since`, if any); returns the frames before the ack,
/// and the ack.
async fn join(c: &mut Client, room: &str, since: Option<Value>) -> Result<(Vec<Value>, Value)> {
    let mut req = json!({"type": "join", "room": room, "ref": "j"});
    if let Some(since) = since {
        req["since"] = since;
    }
    c.send_json(req).await?;
    let mut before = Vec::new();
    loop {
        let v = c.recv_v2().await?;
        if v["type"] == "ack" && v["ref"] == "j" {
            return Ok((before, v));
        }
        before.push(v);
    }
}

/// `n` room messages from `c` to `room`, numbered from `from`.
async fn send(c: &mut Client, room: &str, from: u64, n: u64) -> Result<()> {
    for i in from..from + n {
        c.send_json(json!({"type": "room", "room": room, "data": i}))
            .await?;
    }
    Ok(())
}

fn position(ack: &Value) -> Result<(String, u64)> {
    Ok((
        ack["epoch"]
            .as_str()
            .context("ack without epoch")?
            .to_owned(),
        ack["offset"].as_u64().context("ack without offset")?,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_recovers_exactly_what_it_missed_while_others_keep_sending() -> Result<()> {
    let server = TestServer::start(config(1000, 1000)).await?;
    let mut bob = connect(&server, "bob").await?;
    join(&mut bob, "lobby", None).await?;
    let mut alice = connect(&server, "alice").await?;
    let (_, ack) = join(&mut alice, "lobby", None).await?;
    ensure!(ack["recovered"].is_null(), "no since, no recovered: {ack}");
    // Room frames carry their offsets; alice's last is where she was.
    send(&mut bob, "lobby", 0, 5).await?;
    let mut last = 0;
    for _ in 0..5 {
        let v = alice.recv_v2().await?;
        if v["type"] == "room" {
            last = v["offset"].as_u64().context("room frame without offset")?;
        }
    }
    ensure!(last == 5, "offsets count from 1: last {last}");
    let (epoch, _) = position(&ack)?;
    alice.close().await?;

    // 20 messages missed; then a live sender keeps going during the rejoin.
    send(&mut bob, "lobby", 5, 20).await?;
    bob.drain().await?;
    let mut carol = connect(&server, "carol").await?;
    join(&mut carol, "lobby", None).await?;
    let live = tokio::spawn(async move {
        send(&mut carol, "lobby", 1000, 200).await?;
        carol.drain().await?;
        Ok::<_, anyhow::Error>(carol)
    });
    let mut alice = connect(&server, "alice").await?;
    let (before, ack) = join(
        &mut alice,
        "lobby",
        Some(json!({"epoch": epoch, "offset": last})),
    )
    .await?;
    ensure!(ack["recovered"] == true, "{ack}");
    // Before the ack: every message published before the join, from where
    // alice was: bob's 20, then whatever carol had sent by then.
    let mut expected: Vec<u64> = (5..25).collect();
    let mut next_offset = 6;
    let mut next_live = 1000;
    for v in before.iter().filter(|v| v["type"] == "room") {
        ensure!(
            v["offset"] == next_offset,
            "{v}, wanted offset {next_offset}"
        );
        let data = v["data"].as_u64().context("no data")?;
        if expected.is_empty() {
            ensure!(data == next_live, "{v}, wanted {next_live}");
            next_live += 1;
        } else {
            ensure!(data == expected.remove(0), "missed ones in order: {v}");
        }
        next_offset += 1;
    }
    ensure!(expected.is_empty(), "not replayed: {expected:?}");
    // Then live: the rest of carol's messages, each once, in order,
    // offsets going on.
    live.await??;
    for v in alice.drain_v2().await? {
        if v["type"] != "room" {
            continue;
        }
        ensure!(
            v["data"] == next_live,
            "live out of order: {v}, wanted {next_live}"
        );
        ensure!(
            v["offset"] == next_offset,
            "{v}, wanted offset {next_offset}"
        );
        next_live += 1;
        next_offset += 1;
    }
    ensure!(
        next_live == 1200,
        "live messages lost: got up to {next_live}"
    );
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_is_all_or_nothing() -> Result<()> {
    // History of 10, at most 5 replayed.
    let server = TestServer::start(config(10, 5)).await?;
    let mut bob = connect(&server, "bob").await?;
    let (_, ack) = join(&mut bob, "lobby", None).await?;
    let (epoch, top) = position(&ack)?;
    ensure!(top == 0, "{ack}");
    send(&mut bob, "lobby", 0, 12).await?;
    bob.drain().await?;
    let mut alice = connect(&server, "alice").await?;
    let cases = [
        ("another epoch", json!({"epoch": "another", "offset": 10})),
        ("trimmed history", json!({"epoch": epoch, "offset": 1})),
        (
            "more than max_recover",
            json!({"epoch": epoch, "offset": 6}),
        ),
        (
            "an offset never given",
            json!({"epoch": epoch, "offset": 99}),
        ),
    ];
    for (why, since) in cases {
        let (before, ack) = join(&mut alice, "lobby", Some(since)).await?;
        ensure!(ack["recovered"] == false, "{why}: {ack}");
        ensure!(
            before.iter().all(|v| v["type"] != "room"),
            "{why}: nothing replayed, got {before:?}"
        );
        ensure!(
            ack["offset"] == 12 && ack["epoch"] == epoch.as_str(),
            "{ack}"
        );
        alice
            .send_json(json!({"type": "leave", "room": "lobby", "ref": "l"}))
            .await?;
        alice.drain().await?;
    }
    // Within max_recover: recovered.
    let (before, ack) = join(
        &mut alice,
        "lobby",
        Some(json!({"epoch": epoch, "offset": 8})),
    )
    .await?;
    ensure!(ack["recovered"] == true, "{ack}");
    let got: Vec<&Value> = before.iter().map(|v| &v["data"]).collect();
    ensure!(got == [8, 9, 10, 11], "{got:?}");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_has_another_epoch() -> Result<()> {
    let server = TestServer::start(config(100, 300)).await?;
    let mut bob = connect(&server, "bob").await?;
    join(&mut bob, "lobby", None).await?;
    send(&mut bob, "lobby", 0, 3).await?;
    let (_, ack) = join(&mut bob, "lobby", None).await?;
    let (epoch, top) = position(&ack)?;
    ensure!(top == 3, "{ack}");
    server.shutdown().await?;

    let server = TestServer::start(config(100, 300)).await?;
    let mut alice = connect(&server, "alice").await?;
    let (before, ack) = join(
        &mut alice,
        "lobby",
        Some(json!({"epoch": epoch, "offset": 1})),
    )
    .await?;
    ensure!(
        ack["recovered"] == false && ack["epoch"] != epoch.as_str(),
        "{ack}"
    );
    ensure!(before.iter().all(|v| v["type"] != "room"), "{before:?}");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_back_for_members_only() -> Result<()> {
    let server = TestServer::start(config(100, 300)).await?;
    let mut bob = connect(&server, "bob").await?;
    join(&mut bob, "lobby", None).await?;
    send(&mut bob, "lobby", 0, 10).await?;
    // A transient frame (presence) takes no offset and is not kept.
    let mut carol = connect(&server, "carol").await?;
    join(&mut carol, "lobby", None).await?;
    bob.drain().await?;

    let history = |before: Option<u64>| {
        let mut req = json!({"type": "history", "room": "lobby", "limit": 4, "ref": 1});
        if let Some(b) = before {
            req["before"] = b.into();
        }
        req
    };
    bob.send_json(history(None)).await?;
    let page = bob.recv_v2().await?;
    ensure!(
        page["type"] == "history" && page["room"] == "lobby" && page["ref"] == 1,
        "{page}"
    );
    ensure!(page["epoch"].is_string(), "{page}");
    let data = |page: &Value| -> Result<Vec<u64>> {
        page["messages"]
            .as_array()
            .context("no messages")?
            .iter()
            .map(|m| {
                ensure!(m["type"] == "room" && m["from"] == "bob", "{m}");
                m["data"].as_u64().context("no data")
            })
            .collect()
    };
    ensure!(data(&page)? == [6, 7, 8, 9], "{page}");
    bob.send_json(history(Some(7))).await?;
    ensure!(data(&bob.recv_v2().await?)? == [2, 3, 4, 5]);
    bob.send_json(history(Some(1))).await?;
    ensure!(data(&bob.recv_v2().await?)?.is_empty());

    let mut eve = connect(&server, "eve").await?;
    eve.send_json(json!({"type": "history", "room": "lobby", "ref": 2}))
        .await?;
    let refused = eve.recv_v2().await?;
    ensure!(
        refused["code"] == "not-in-room" && refused["ref"] == 2,
        "{refused}"
    );
    server.shutdown().await
}

#[tokio::test]
async fn with_history_off_nothing_is_numbered_and_nothing_recovers() -> Result<()> {
    let server = TestServer::start(config(0, 300)).await?;
    let mut bob = connect(&server, "bob").await?;
    let mut alice = connect(&server, "alice").await?;
    join(&mut bob, "lobby", None).await?;
    join(&mut alice, "lobby", None).await?;
    bob.drain().await?;
    send(&mut alice, "lobby", 0, 1).await?;
    let v = bob.recv_v2().await?;
    ensure!(v["type"] == "room" && v["offset"].is_null(), "{v}");
    bob.send_json(json!({"type": "leave", "room": "lobby", "ref": "l"}))
        .await?;
    bob.drain().await?;
    let (before, ack) = join(&mut bob, "lobby", Some(json!({"epoch": "x", "offset": 0}))).await?;
    ensure!(ack["recovered"] == false, "{ack}");
    ensure!(before.iter().all(|v| v["type"] != "room"), "{before:?}");
    server.shutdown().await
}

/// A new connection replaces an older one of the same id (4001): the id
/// keeps its rooms, and what the older one may not have written comes
/// back when the new one re-joins with `since` — from its position up to
/// the replacement, then live, each message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacing_connection_recovers_what_the_replaced_one_had() -> Result<()> {
    let server = TestServer::start(config(100, 1000)).await?;
    let mut alice = connect(&server, "alice").await?;
    let mut bob = connect(&server, "bob").await?;
    let (_, ack) = join(&mut alice, "r", None).await?;
    let (epoch, top) = position(&ack)?;
    join(&mut bob, "r", None).await?;
    send(&mut bob, "r", 1, 3).await?;
    bob.drain_v2().await?;
    // Alice's old socket may or may not have written these: her client
    // saw none of them.
    let mut again = connect(&server, "alice").await?;
    ensure!(alice.closed().await?.code == Some(4001), "not replaced");
    send(&mut bob, "r", 4, 1).await?;
    bob.drain_v2().await?;
    let (before, ack) = join(
        &mut again,
        "r",
        Some(json!({"epoch": epoch, "offset": top})),
    )
    .await?;
    ensure!(ack["recovered"] == true, "{ack}");
    let mut data: Vec<Value> = before
        .iter()
        .filter(|v| v["type"] == "room")
        .map(|v| v["data"].clone())
        .collect();
    // The fourth came live, after the replacement: before or after the
    // replay's ack, but once.
    for v in again.drain_v2().await? {
        if v["type"] == "room" {
            data.push(v["data"].clone());
        }
    }
    data.sort_by_key(|v| v.as_u64());
    ensure!(data == [json!(1), json!(2), json!(3), json!(4)], "{data:?}");
    server.shutdown().await
}
