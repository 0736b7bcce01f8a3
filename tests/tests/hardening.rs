//! Issue 20's attacks, repeated against a real server: a ping flood from a
//! client that never reads, one sender filling the notice store, bad
//! `to`s, query bursts, a reconnect to refill the buckets, and many slow
//! senders holding partly received messages. Each is refused or bounded,
//! and other clients are unaffected.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard_tests::{Client, RawWs, TestServer, tolerant_config, without_rate_limits};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// A client frame (masked, as a client's must be).
fn client_frame(opcode: OpCode, payload: &[u8], fin: bool) -> Result<Vec<u8>> {
    let mut frame = Frame::message(payload.to_vec(), opcode, fin);
    frame.header_mut().mask = Some([7, 1, 2, 3]);
    let mut bytes = Vec::new();
    frame.format(&mut bytes)?;
    Ok(bytes)
}

fn ping(payload: &[u8]) -> Result<Vec<u8>> {
    let mut frame = Frame::ping(payload.to_vec());
    frame.header_mut().mask = Some([7, 1, 2, 3]);
    let mut bytes = Vec::new();
    frame.format(&mut bytes)?;
    Ok(bytes)
}

/// Frames from `raw` until the server's close frame; its code, and the
/// pongs' payloads seen before it.
async fn until_close(raw: &mut RawWs) -> Result<(u16, Vec<Vec<u8>>)> {
    let mut pongs = Vec::new();
    loop {
        match raw.frame().await? {
            None => bail!("the socket closed without a close frame"),
            Some(f) if f.opcode == 8 => {
                let (code, _) = f.close().context("a close frame without a code")?;
                return Ok((code, pongs));
            }
            Some(f) if f.opcode == 10 => pongs.push(f.payload),
            Some(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pinging_past_its_message_rate_is_closed_with_1008() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut raw = RawWs::connect(server.addr, "/ws/pinger").await?;
    // Far more pings than the burst (100), sent at once, nothing read.
    let mut flood = Vec::new();
    for i in 0..1000u32 {
        flood.extend(ping(&i.to_be_bytes())?);
    }
    raw.tcp.write_all(&flood).await?;
    let (code, pongs) = until_close(&mut raw).await?;
    ensure!(code == 1008, "closed with {code}");
    ensure!(
        pongs.len() <= 200,
        "{} pongs for pings past the rate",
        pongs.len()
    );
    // Somebody else carries on.
    let mut other = server.join("other").await?;
    other.send_json(json!({"type": "ping", "ref": 1})).await?;
    ensure!(other.recv_json().await?["type"] == "pong");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pongs_to_a_client_that_does_not_read_do_not_pile_up() -> Result<()> {
    // No message rate: the flood itself is allowed, and only the pending
    // pong is kept for the client that reads nothing.
    let server = TestServer::start(without_rate_limits(tolerant_config())).await?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let tcp = socket.connect(server.addr).await?;
    let mut raw = RawWs::over(tcp, "/ws/pinger").await?;
    const PINGS: u32 = 200_000;
    let payload = |i: u32| {
        let mut p = vec![b'p'; 121];
        p.extend(i.to_be_bytes());
        p
    };
    let mut flood = Vec::new();
    for i in 0..PINGS {
        flood.extend(ping(&payload(i))?);
    }
    raw.tcp.write_all(&flood).await?;
    // Once the server has read every ping (a text frame after them is
    // answered), the client reads: it gets what the kernel's buffers held,
    // and the latest ping's pong, never one pong for each of 25 MB of pings.
    let app_ping = client_frame(
        OpCode::Data(Data::Text),
        br#"{"type":"ping","ref":9}"#,
        true,
    )?;
    raw.tcp.write_all(&app_ping).await?;
    let mut pongs = Vec::new();
    loop {
        let f = raw.frame().await?.context("closed")?;
        match f.opcode {
            10 => pongs.push(f.payload),
            1 if String::from_utf8_lossy(&f.payload).contains(r#""ref":9"#) => break,
            _ => {}
        }
    }
    ensure!(
        pongs.len() < PINGS as usize / 2,
        "{} pongs for {PINGS} pings: pongs piled up",
        pongs.len()
    );
    ensure!(
        pongs.last() == Some(&payload(PINGS - 1)),
        "the latest ping is answered"
    );
    Ok(())
}

fn store_config() -> Config {
    let mut c = without_rate_limits(tolerant_config());
    c.recovery.stored_notices_per_id = 5;
    c.recovery.stored_notices_per_sender = 30;
    c.recovery.stored_notices_per_pair = 4;
    c
}

async fn connect(server: &TestServer, id: &str) -> Result<Client> {
    let mut c = server.connect(id).await?;
    let welcome = c.recv_v2().await?;
    ensure!(welcome["type"] == "welcome", "{welcome}");
    Ok(c)
}

async fn store(c: &mut Client, to: &str, data: Value, r: u64) -> Result<Value> {
    c.send_json(json!({"type": "notice", "to": to, "data": data, "store": true, "ref": r}))
        .await?;
    c.recv_v2().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sender_cannot_fill_the_store_for_others_or_flush_their_notices() -> Result<()> {
    let server = TestServer::start(store_config()).await?;
    let mut alice = connect(&server, "alice").await?;
    let mut mallory = connect(&server, "mallory").await?;
    let ack = store(&mut alice, "bob", json!("from alice"), 1).await?;
    ensure!(ack["stored"] == true, "{ack}");

    // Mallory floods bob's box: past 4 (per pair) it is refused, and the
    // full box (5) never drops alice's notice.
    let mut refused = None;
    for i in 0..10 {
        let answer = store(&mut mallory, "bob", json!(i), 10 + i).await?;
        if answer["type"] == "error" {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.context("mallory was never refused")?;
    ensure!(
        refused["code"] == "store-quota"
            && refused["message"]
                .as_str()
                .is_some_and(|m| m.contains("--stored-notices-per-pair")),
        "{refused}"
    );
    // Mallory floods made-up ids: past 30 in all, store-quota naming the
    // per-sender quota; nothing of anyone else's goes.
    let mut quota = None;
    for i in 0..60u64 {
        let answer = store(&mut mallory, &format!("made-up-{i}"), json!(i), 100 + i).await?;
        if answer["type"] == "error" {
            quota = Some(answer);
            break;
        }
    }
    let quota = quota.context("mallory was never refused")?;
    ensure!(
        quota["code"] == "store-quota"
            && quota["message"]
                .as_str()
                .is_some_and(|m| m.contains("--stored-notices-per-sender")),
        "{quota}"
    );
    // Alice still stores.
    let ack = store(&mut alice, "carol", json!("still works"), 2).await?;
    ensure!(ack["stored"] == true, "{ack}");

    let mut bob = connect(&server, "bob").await?;
    let got = bob.drain_v2().await?;
    let from_alice: Vec<_> = got.iter().filter(|n| n["from"] == "alice").collect();
    ensure!(
        from_alice.len() == 1 && from_alice[0]["data"] == "from alice",
        "{got:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_box_drops_the_biggest_senders_oldest() -> Result<()> {
    let mut config = store_config();
    config.recovery.stored_notices_per_pair = 20;
    let server = TestServer::start(config).await?;
    let mut alice = connect(&server, "alice").await?;
    let mut mallory = connect(&server, "mallory").await?;
    ensure!(store(&mut alice, "bob", json!("a"), 1).await?["stored"] == true);
    for i in 0..12 {
        let ack = store(&mut mallory, "bob", json!(i), 10 + i).await?;
        ensure!(ack["stored"] == true, "{ack}");
    }
    let mut bob = connect(&server, "bob").await?;
    let got = bob.drain_v2().await?;
    let dropped = got.iter().find(|f| f["type"] == "notices-dropped");
    ensure!(dropped.is_some_and(|d| d["count"] == 8), "{got:?}");
    let data: Vec<Value> = got
        .iter()
        .filter(|f| f["type"] == "notice")
        .map(|f| f["data"].clone())
        .collect();
    ensure!(
        data == vec![json!("a"), json!(8), json!(9), json!(10), json!(11)],
        "{data:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_filling_their_cap_leave_room_history_alone() -> Result<()> {
    let mut config = store_config();
    config.recovery.stored_notices_per_sender = 10_000;
    config.recovery.stored_notices_per_pair = 10_000;
    config.recovery.stored_notices_per_id = 10_000;
    config.recovery.notices_max_bytes = 64 * 1024;
    let server = TestServer::start(config).await?;
    let mut mallory = connect(&server, "mallory").await?;
    let pad = "x".repeat(4000);
    let mut full = false;
    for i in 0..100 {
        let answer = store(&mut mallory, "bob", json!(pad), i).await?;
        if answer["type"] == "error" {
            ensure!(answer["code"] == "target-closed", "{answer}");
            full = true;
            break;
        }
    }
    ensure!(full, "the notice store never filled");

    let mut alice = connect(&server, "alice").await?;
    alice.join_room("alice", "fresh", 1).await?;
    for i in 0..10 {
        alice
            .send_json(json!({"type": "room", "room": "fresh", "data": {"n": i, "pad": pad}}))
            .await?;
    }
    alice
        .send_json(json!({"type": "history", "room": "fresh", "ref": 2}))
        .await?;
    let page = loop {
        let v = alice.recv_v2().await?;
        if v["type"] == "history" {
            break v;
        }
    };
    let kept = page["messages"].as_array().map_or(0, Vec::len);
    ensure!(kept == 10, "the room kept {kept} of 10: {page}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_to_something_that_is_not_an_id_is_refused() -> Result<()> {
    let server = TestServer::start(store_config()).await?;
    let mut alice = connect(&server, "alice").await?;
    for (to, r) in [("no such id!", 1), ("", 2), (&*"x".repeat(65), 3)] {
        let answer = store(&mut alice, to, json!(1), r).await?;
        ensure!(
            answer["type"] == "error" && answer["code"] == "bad-request" && answer["ref"] == r,
            "{to:?}: {answer}"
        );
    }
    Ok(())
}

async fn online(c: &mut Client, r: u64) -> Result<()> {
    c.send_json(json!({"type": "online", "ids": ["a", "b"], "ref": r}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_online_requests_is_cut_by_the_query_limit() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let mut prober = connect(&server, "prober").await?;
    // 90: within the message burst (100), so only the query limit cuts.
    for r in 0..90 {
        online(&mut prober, r).await?;
    }
    let (mut answered, mut limited) = (0, 0);
    for _ in 0..90 {
        let v = prober.recv_v2().await?;
        match v["type"].as_str() {
            Some("online") => answered += 1,
            Some("error") if v["code"] == "rate-limited" => {
                ensure!(v["retry_after_ms"].as_u64().is_some(), "{v}");
                limited += 1;
            }
            _ => bail!("unexpected {v}"),
        }
    }
    // The burst (20), and what the rate (5/s) refilled meanwhile (up to 8 s
    // of it, for a slow machine).
    ensure!(
        (20..=60).contains(&answered) && limited == 90 - answered,
        "{answered} answered, {limited} limited"
    );
    // Other requests are not queries: they go on.
    prober
        .send_json(json!({"type": "ping", "ref": "p"}))
        .await?;
    ensure!(prober.recv_v2().await?["type"] == "pong");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_keeps_the_buckets_it_had() -> Result<()> {
    let mut config = tolerant_config();
    config.limits.queries_per_sec = 1;
    config.limits.queries_burst = 10;
    let server = TestServer::start(config).await?;
    let mut c = connect(&server, "probe").await?;
    for r in 0..10 {
        online(&mut c, r).await?;
        ensure!(c.recv_v2().await?["type"] == "online");
    }
    c.close().await?;
    // A fresh bucket would answer all 10; the one kept has refilled one
    // token a second since (so this holds on a machine slow to reconnect,
    // up to 5 s).
    let mut again = connect(&server, "probe").await?;
    for r in 0..10 {
        online(&mut again, 100 + r).await?;
    }
    let mut limited = 0;
    for _ in 0..10 {
        let v = again.recv_v2().await?;
        if v["type"] == "error" && v["code"] == "rate-limited" {
            limited += 1;
        }
    }
    ensure!(
        limited >= 5,
        "{limited} of 10 limited: a fresh bucket after a reconnect"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partly_received_messages_are_bounded_server_wide() -> Result<()> {
    let mut config = tolerant_config();
    config.limits.inbound_total_bytes = 48 * 1024;
    let server = TestServer::start(config).await?;
    // Each slow sender sends the first 20 KB of a message and stops.
    let part = client_frame(OpCode::Data(Data::Text), &vec![b'x'; 20 * 1024], false)?;
    let mut slow = Vec::new();
    let mut closed = None;
    for i in 0..4 {
        let mut raw = RawWs::connect(server.addr, &format!("/ws/slow{i}")).await?;
        raw.tcp.write_all(&part).await?;
        // The welcome first; then, for the one past the budget, the close.
        let welcome = raw.frame().await?.context("closed")?;
        ensure!(welcome.opcode == 1);
        let mut probe = connect(&server, &format!("probe{i}")).await?;
        probe.send_json(json!({"type": "ping", "ref": 1})).await?;
        ensure!(probe.recv_v2().await?["type"] == "pong");
        slow.push(raw);
        if i >= 2 {
            let raw = slow.last_mut().context("pushed")?;
            let f = tokio::time::timeout(Duration::from_secs(15), raw.frame())
                .await
                .context("no close for the sender past the budget")??;
            closed = f.and_then(|f| f.close());
            break;
        }
    }
    let (code, _) = closed.context("no close frame")?;
    ensure!(code == 1013, "closed with {code}");
    Ok(())
}
