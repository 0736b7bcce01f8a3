//! Rolling restarts (`POST /admin/drain`, what `switchboard drain` and
//! SIGTERM do): the server stops accepting, closes its clients with 1012 a
//! few at a time, and stops once they have gone; in a cluster the clients
//! come back on the other node and lose nothing.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard_tests::cluster::{ask, connect, join, node};
use switchboard_tests::redis::RedisServer;
use switchboard_tests::{Client, TestServer, WAIT, config, with_admin};

const TOKEN: &str = "drain-test-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_closes_every_client_with_1012_a_few_at_a_time_then_stops() -> Result<()> {
    let server = TestServer::start(with_admin(config(), TOKEN)).await?;
    let mut clients = Vec::new();
    for n in 0..20 {
        clients.push(server.join(&format!("c{n}")).await?);
    }
    let (code, answer) = server.drain(TOKEN, 2).await?;
    ensure!(code == 202, "{code}: {answer}");
    ensure!(
        answer["started"] == true && answer["drain_secs"] == 2 && answer["connections"] == 20,
        "{answer}"
    );
    // A second ask changes nothing.
    let (code, again) = server.drain(TOKEN, 60).await?;
    ensure!(
        code == 200 && again["started"] == false && again["drain_secs"] == 2,
        "{code}: {again}"
    );
    // Health says so (a load balancer takes the node out).
    let (code, health) = server
        .admin(None)?
        .request(switchboard::ops::Method::Get, "/healthz")
        .await
        .map_err(anyhow::Error::msg)?;
    ensure!(
        code == 503 && health.contains("draining"),
        "{code}: {health}"
    );
    // Nothing new is accepted.
    let start = Instant::now();
    while tokio::net::TcpStream::connect(server.addr).await.is_ok() {
        ensure!(start.elapsed() < WAIT, "still accepting while draining");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Every client read at once, each noting when its close came.
    let told = futures_util::future::join_all(clients.iter_mut().map(async |c| {
        let closed = c.closed().await?;
        ensure!(
            closed.code == Some(1012) && closed.reason == "server restarting; reconnect",
            "{closed:?}"
        );
        Ok(Instant::now())
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<Instant>>>()?;
    // Spread over the first half of the drain time (one second here), not
    // all at once. The server sleeps between batches, so the spread can be
    // longer on a slow machine, never shorter.
    let spread =
        told.iter().max().copied().unwrap_or(start) - told.iter().min().copied().unwrap_or(start);
    ensure!(
        spread >= Duration::from_millis(500),
        "all told within {spread:?}"
    );
    drop(clients);
    server.stopped(WAIT).await
}

fn held_for(mut c: Config) -> Config {
    c.recovery.resume_window = Duration::from_secs(120);
    c
}

/// Receivers, each sent a notice in turn with every room message.
const RECEIVERS: usize = 4;
/// Room messages sent once every receiver is back (on node b).
const AFTER: u64 = 20;
/// The traffic gives up past this many messages.
const MOST: u64 = 100_000;

/// What one receiver got: room messages' `seq` and notices' `n`, in
/// arrival order, across its reconnect.
#[derive(Debug, Default)]
struct Got {
    room: Vec<u64>,
    notices: Vec<u64>,
    resumed_on_b: bool,
}

/// Read `c` (whose session is `session`) until the last room message
/// arrives; on close 1012, come back on node `b` with the session.
async fn receive(
    mut c: Client,
    id: String,
    session: String,
    b: &TestServer,
    back: &std::sync::atomic::AtomicUsize,
) -> Result<Got> {
    let mut got = Got::default();
    loop {
        let frame = match tokio::time::timeout(WAIT, c.ws.next_frame()).await {
            Ok(frame) => frame?,
            Err(_) => bail!("{id}: nothing within {WAIT:?}; got {got:?}"),
        };
        match frame {
            Frame::Text(v) => match v["type"].as_str() {
                Some("room") => {
                    let seq = v["data"]["seq"].as_u64().context("no seq")?;
                    got.room.push(seq);
                    if v["data"]["last"] == true {
                        return Ok(got);
                    }
                }
                Some("notice") => got.notices.push(v["data"]["n"].as_u64().context("no n")?),
                Some("left") => bail!("{id} saw {v}"),
                _ => {}
            },
            Frame::Closed(code) => {
                ensure!(code == Some(1012), "{id} closed with {code:?}");
                ensure!(!got.resumed_on_b, "{id} told to go twice");
                c = b
                    .connect_path(&format!("/ws/{id}?resume={session}"))
                    .await?;
                let welcome = c.recv_v2().await?;
                ensure!(
                    welcome["type"] == "welcome" && welcome["resumed"] == true,
                    "{id}: {welcome}"
                );
                got.resumed_on_b = true;
                back.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }
}

enum Frame {
    Text(Value),
    Closed(Option<u16>),
}

trait NextFrame {
    async fn next_frame(&mut self) -> Result<Frame>;
}

impl NextFrame for tokio_tungstenite::WebSocketStream<Box<dyn switchboard_tests::Io>> {
    async fn next_frame(&mut self) -> Result<Frame> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match self.next().await {
                Some(Ok(Message::Text(t))) => return Ok(Frame::Text(serde_json::from_str(&t)?)),
                Some(Ok(Message::Close(f))) => {
                    return Ok(Frame::Closed(f.map(|f| u16::from(f.code))));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("read failed: {e}"),
                None => return Ok(Frame::Closed(None)),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_one_node_of_two_under_traffic_loses_nothing() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(with_admin(held_for(node(&redis, "a")?), TOKEN)).await?;
    let b = std::sync::Arc::new(TestServer::start(held_for(node(&redis, "b")?)).await?);
    let mut receivers = Vec::new();
    for n in 0..RECEIVERS {
        let id = format!("r{n}");
        let (mut c, session) = a.connect_with_session(&id).await?;
        join(&mut c, "lobby").await?;
        receivers.push((c, id, session));
    }
    let mut sender = connect(&b, "sender").await?;
    join(&mut sender, "lobby").await?;

    let back = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut reading = Vec::new();
    for (c, id, session) in receivers {
        let (b, back) = (b.clone(), back.clone());
        reading.push(tokio::spawn(async move {
            receive(c, id, session, &b, &back).await
        }));
    }
    // Traffic from node b, every message acked before the next is sent:
    // the drain of node a starts after a few, and the traffic goes on
    // until every receiver is back (on node b), then a little longer.
    let mut last = None;
    for i in 0..MOST {
        if i == 10 {
            let (code, answer) = a.drain(TOKEN, 2).await?;
            ensure!(code == 202, "{code}: {answer}");
        }
        if last.is_none() && back.load(std::sync::atomic::Ordering::SeqCst) == RECEIVERS {
            last = Some(i + AFTER);
        }
        let is_last = last == Some(i);
        let (_, ack) = ask(
            &mut sender,
            json!({"type": "room", "room": "lobby", "data": {"seq": i, "last": is_last}}),
            &format!("m{i}"),
        )
        .await?;
        ensure!(ack["type"] == "ack", "message {i}: {ack}");
        let to = format!("r{}", i as usize % RECEIVERS);
        let (_, ack) = ask(
            &mut sender,
            json!({"type": "notice", "to": to, "data": {"n": i}}),
            &format!("n{i}"),
        )
        .await?;
        ensure!(ack["type"] == "ack", "notice {i}: {ack}");
        if is_last {
            break;
        }
    }
    let last = last.context("the receivers never all came back")?;
    for (n, task) in reading.into_iter().enumerate() {
        let got = task.await??;
        ensure!(got.resumed_on_b, "r{n} was never told to go");
        let want: Vec<u64> = (0..=last).collect();
        ensure!(got.room == want, "r{n}'s room messages: {:?}", got.room);
        // Notices to r{n}: each once, and every one acked before the last
        // room message was sent is there (queued before it, read before
        // it); the very last notice may come after the last room message.
        let notices: BTreeSet<u64> = got.notices.iter().copied().collect();
        ensure!(
            notices.len() == got.notices.len(),
            "r{n}: a notice twice: {:?}",
            got.notices
        );
        let want: BTreeSet<u64> = (0..last).filter(|i| *i as usize % RECEIVERS == n).collect();
        ensure!(
            want.is_subset(&notices),
            "r{n} lost notices: {:?} of {want:?}",
            got.notices
        );
    }
    a.stopped(WAIT).await?;
    match std::sync::Arc::try_unwrap(b) {
        Ok(b) => b.shutdown().await,
        Err(_) => bail!("node b still shared"),
    }
}
