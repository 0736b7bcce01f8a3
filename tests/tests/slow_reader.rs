//! A client that stops reading is closed with 4008 once its outbound queue
//! overflows, and nobody else notices: the sender is never slowed down or
//! disconnected, and a fast member of the same room receives every message.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use serde_json::json;
use switchboard_tests::{TestServer, WAIT, tolerant_config, without_rate_limits};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

/// Bytes of padding in each room message: a few of them fill the queue's
/// byte bound, so the overflow does not depend on the frame bound alone.
const PAD: usize = 16 * 1024;
/// Give up (and fail) after this many messages: far more than the kernel's
/// socket buffers plus the queue can absorb.
const MAX_MESSAGES: u64 = (64 << 20) / PAD as u64;

#[tokio::test]
async fn a_client_that_does_not_read_is_closed_with_4008_and_nobody_else_suffers() -> Result<()> {
    let mut cfg = switchboard_tests::with_admin(
        without_rate_limits(tolerant_config()),
        "slow-reader-token-0123456789",
    );
    cfg.limits.outbound_queue_frames = 16;
    cfg.limits.outbound_queue_bytes = 64 * 1024;
    // The server may wait this long to hand the close frame to a client whose
    // socket is full; the slow client reads only after the test's checks, so
    // this must not run out first on a loaded machine.
    cfg.limits.close_timeout = Duration::from_secs(60);
    let server = TestServer::start(cfg).await?;

    let mut sender = server.join("sender").await?;
    let mut fast = server.join("fast").await?;
    for (c, r) in [(&mut sender, 1), (&mut fast, 2)] {
        c.send_json(json!({"type": "join", "room": "lobby", "ref": r}))
            .await?;
        assert_eq!(c.recv_json().await?["type"], "joined");
        assert_eq!(c.recv_json().await?, json!({"type": "ack", "ref": r}));
    }

    // The slow client: a tiny receive buffer (set before connecting, so the
    // advertised window is small from the start) fills after a few frames.
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let tcp = socket.connect(server.addr).await?;
    let mut slow = server.handshake(tcp, "/ws/slow").await?;
    assert_eq!(
        slow.recv_json().await?,
        json!({"type": "welcome", "id": "slow"})
    );
    slow.send_json(json!({"type": "join", "room": "lobby", "ref": 3}))
        .await?;
    assert_eq!(
        slow.recv_json().await?,
        json!({"type": "joined", "room": "lobby", "id": "slow"})
    );
    assert_eq!(slow.recv_json().await?, json!({"type": "ack", "ref": 3}));
    let joined = |id: &str| json!({"type": "joined", "room": "lobby", "id": id});
    assert_eq!(sender.drain().await?, vec![joined("fast"), joined("slow")]);
    assert_eq!(fast.drain().await?, vec![joined("slow")]);

    // From here on `slow` reads nothing. The sender writes to the room, and
    // after each message probes the slow client with a notice: the notice is
    // acked while its queue takes frames, and answered `target-closed` once
    // it has overflowed (and is closing). The fast member reads each message
    // before the next is sent, so its own queue never holds more than one.
    let pad = "x".repeat(PAD);
    let mut sent = 0u64;
    let room_message = |seq: u64| {
        json!({"type": "room", "room": "lobby", "from": "sender",
               "data": {"seq": seq, "pad": pad}})
    };
    loop {
        if sent == MAX_MESSAGES {
            bail!("the slow client was never closed after {sent} messages");
        }
        sender
            .send_json(json!({"type": "room", "room": "lobby", "ref": sent,
                              "data": {"seq": sent, "pad": pad}}))
            .await?;
        assert_eq!(
            sender.recv_json().await?,
            json!({"type": "ack", "ref": sent})
        );
        assert_eq!(
            fast.recv_json().await?,
            room_message(sent),
            "message {sent}"
        );
        sent += 1;

        let probe = format!("probe-{sent}");
        sender
            .send_json(json!({"type": "notice", "to": "slow", "data": "probe", "ref": probe}))
            .await?;
        let answer = sender.recv_json().await?;
        if answer == json!({"type": "ack", "ref": probe}) {
            continue;
        }
        assert_eq!(
            answer,
            json!({"type": "error", "ref": probe, "code": "target-closed",
                   "message": "`slow` is not online"})
        );
        break;
    }
    assert!(
        sent >= 2,
        "the slow client overflowed after {sent} messages"
    );
    let overflowed_after = sent;
    // The overflow is counted for the operator (`/metrics`).
    let scraped =
        switchboard_tests::metrics::scrape(&server, "slow-reader-token-0123456789").await?;
    assert_eq!(
        scraped.get("switchboard_queue_overflows_total"),
        1.0,
        "{}",
        scraped.text
    );

    // The room carries on without the slow client.
    for _ in 0..32 {
        sender
            .send_json(json!({"type": "room", "room": "lobby", "ref": sent,
                              "data": {"seq": sent, "pad": pad}}))
            .await?;
        assert_eq!(
            sender.recv_json().await?,
            json!({"type": "ack", "ref": sent})
        );
        assert_eq!(
            fast.recv_json().await?,
            room_message(sent),
            "message {sent}"
        );
        sent += 1;
    }

    // Now the slow client reads: a prefix of the room's messages, in order
    // and whole (with the acked probes among them), then the close.
    let mut received = 0u64;
    let close = loop {
        let next = tokio::time::timeout(WAIT, slow.ws.next())
            .await
            .map_err(|_| anyhow!("slow client: nothing within {WAIT:?}"))?;
        match next {
            Some(Ok(Message::Text(text))) => {
                let v = switchboard_tests::v1_view(serde_json::from_str(&text)?);
                if v["type"] == "notice" {
                    assert_eq!(
                        v,
                        json!({"type": "notice", "from": "sender", "data": "probe"})
                    );
                } else {
                    assert_eq!(
                        v,
                        room_message(received),
                        "slow client's message {received}"
                    );
                    received += 1;
                }
            }
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => bail!("slow client: expected frames then a close, got {other:?}"),
        }
    };
    let close = close.context("close frame without a code")?;
    assert_eq!(u16::from(close.code), 4008, "{close:?}");
    assert_eq!(close.reason.as_str(), "too slow: outbound queue full");
    assert!(
        received < overflowed_after,
        "the slow client got {received} of the {overflowed_after} messages sent before it overflowed"
    );
    drop(slow);
    // Its disconnect is handled like any other: the room hears `left`, and
    // then the registry has it offline.
    let left = json!({"type": "left", "room": "lobby", "id": "slow"});
    assert_eq!(fast.recv_json().await?, left);
    assert_eq!(sender.recv_json().await?, left);
    assert!(!server.registry.is_online("slow"));

    // The sender and the fast member were never disconnected and heard
    // nothing else (the sender only its answers, the fast member all `sent`
    // messages in order; both then the `left`).
    assert!(server.registry.is_online("sender"));
    assert!(server.registry.is_online("fast"));
    sender.expect_idle().await?;
    fast.expect_idle().await?;
    println!("the slow client overflowed after {overflowed_after} messages of {PAD} bytes");
    drop((sender, fast));
    server.shutdown().await
}
