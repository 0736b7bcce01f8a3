//! The server-wide outbound budget: many clients that do not read cannot
//! together make the server hold more than the budget (each one's own queue
//! bound is far larger). Past it the largest queues are closed with 4008,
//! and clients that read carry on.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchboard_tests::{
    Client, TestServer, WAIT, eventually, tolerant_config, without_rate_limits,
};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

const BUDGET: usize = 256 * 1024;
/// Bytes of padding in each room message.
const PAD: usize = 16 * 1024;
/// Give up after this many messages: far more than the kernel's socket
/// buffers (a few MiB per connection on loopback) plus the budget absorb.
/// Each slow client's own queue bound (4 MiB) is never what closes it.
const MAX_MESSAGES: u64 = (64 << 20) / PAD as u64;
const SLOW: [&str; 3] = ["slow0", "slow1", "slow2"];

#[tokio::test]
async fn slow_readers_past_the_budget_are_closed_and_readers_carry_on() -> Result<()> {
    let mut config = without_rate_limits(tolerant_config());
    config.limits.outbound_total_bytes = BUDGET;
    config.limits.outbound_queue_bytes = 4 << 20;
    config.limits.outbound_queue_frames = 100_000;
    // The close frame waits behind a full socket until the test reads it.
    config.limits.close_timeout = Duration::from_secs(60);
    let (server, inside) = TestServer::start_inside(config, false).await?;

    let mut sender = server.join("sender").await?;
    let mut fast = server.join("fast").await?;
    join_lobby(&mut sender, 1).await?;
    join_lobby(&mut fast, 2).await?;
    // Slow clients: a tiny receive buffer, so the kernel absorbs little.
    let mut slow = Vec::new();
    for (i, id) in SLOW.iter().enumerate() {
        let socket = TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(4096)?;
        let tcp = socket.connect(server.addr).await?;
        let mut c = server.handshake(tcp, &format!("/ws/{id}")).await?;
        assert_eq!(c.recv_json().await?["type"], "welcome");
        join_lobby(&mut c, 10 + i).await?;
        slow.push(c);
    }
    sender.drain().await?;
    fast.drain().await?;

    // Flood the room. After each message, probe each slow client still
    // open with a notice: acked while it is open, `target-closed` once it
    // has been closed.
    let pad = "x".repeat(PAD);
    let room_message = |seq: u64| {
        json!({"type": "room", "room": "lobby", "from": "sender",
               "data": {"seq": seq, "pad": pad}})
    };
    let mut open: Vec<&str> = SLOW.to_vec();
    let mut sent = 0u64;
    let mut highest = 0;
    while !open.is_empty() {
        if sent == MAX_MESSAGES {
            bail!("{open:?} never closed after {sent} messages");
        }
        sender
            .send_json(json!({"type": "room", "room": "lobby", "ref": sent,
                              "data": {"seq": sent, "pad": pad}}))
            .await?;
        assert_eq!(
            sender.recv_json().await.context("sender")?,
            json!({"type": "ack", "ref": sent})
        );
        assert_eq!(
            fast.recv_json().await.context("fast")?,
            room_message(sent),
            "message {sent}"
        );
        sent += 1;
        let total = inside.budget.total();
        highest = highest.max(total);
        assert!(total <= 2 * BUDGET, "{total} bytes queued");
        let mut still = Vec::new();
        for id in open {
            let probe = format!("probe-{id}-{sent}");
            sender
                .send_json(json!({"type": "notice", "to": id, "data": "probe", "ref": probe}))
                .await?;
            let answer = sender.recv_json().await?;
            if answer == json!({"type": "ack", "ref": probe}) {
                still.push(id);
            } else {
                assert_eq!(answer["code"], "target-closed", "{answer}");
                println!("{id} closed after {sent} messages");
            }
        }
        open = still;
    }
    println!("all slow clients closed after {sent} messages; at most {highest} bytes queued");

    // Each slow client reads a prefix of what was sent, then the close.
    for (c, id) in slow.iter_mut().zip(SLOW) {
        let (code, reason) = close_of(c, id).await?;
        assert_eq!(code, 4008, "{id}");
        assert_eq!(reason, "too slow: server outbound budget exceeded", "{id}");
    }
    drop(slow);

    // The readers were never touched: the fast member got every message
    // (above) and then the three `left`s, and nothing stays counted.
    for c in [&mut sender, &mut fast] {
        let mut left: Vec<Value> = Vec::new();
        while left.len() < SLOW.len() {
            left.push(c.recv_json().await?);
        }
        left.sort_by_key(|v| v["id"].to_string());
        let expected: Vec<Value> = SLOW
            .iter()
            .map(|id| json!({"type": "left", "room": "lobby", "id": id}))
            .collect();
        assert_eq!(left, expected);
        c.expect_idle().await?;
    }
    assert!(server.registry.is_online("sender") && server.registry.is_online("fast"));
    eventually("nothing counted", || inside.budget.total() == 0).await?;
    drop((sender, fast));
    server.shutdown().await
}

async fn join_lobby(c: &mut Client, r: usize) -> Result<()> {
    c.send_json(json!({"type": "join", "room": "lobby", "ref": r}))
        .await?;
    loop {
        let v = c.recv_json().await?;
        if v == json!({"type": "ack", "ref": r}) {
            return Ok(());
        }
    }
}

/// Read `c` until its close frame: its code and reason.
async fn close_of(c: &mut Client, id: &str) -> Result<(u16, String)> {
    loop {
        let next = tokio::time::timeout(WAIT, c.ws.next())
            .await
            .map_err(|_| anyhow!("{id}: nothing within {WAIT:?}"))?;
        match next {
            Some(Ok(Message::Close(frame))) => {
                let frame = frame.with_context(|| format!("{id}: close without a code"))?;
                return Ok((u16::from(frame.code), frame.reason.to_string()));
            }
            Some(Ok(_)) => {}
            other => bail!("{id}: expected frames then a close, got {other:?}"),
        }
    }
}
