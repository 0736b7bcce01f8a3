//! The host's limits on what one client can make the server do: rooms per
//! id, messages per second, broadcasts per second. Each refusal is an
//! `error` answering the request (its `ref` echoed), and a refused request
//! has no other effect.

use anyhow::Result;
use serde_json::{Value, json};
use switchboard_tests::{Client, TestServer, tolerant_config, without_rate_limits};

fn ack(r: impl Into<Value>) -> Value {
    json!({"type": "ack", "ref": r.into()})
}

#[tokio::test]
async fn a_join_past_the_rooms_per_id_limit_is_refused_with_too_many_rooms() -> Result<()> {
    let mut c = tolerant_config();
    c.limits.max_rooms_per_id = 3;
    let server = TestServer::start(c).await?;
    let mut watcher = server.join("watcher").await?;
    watcher.join_room("watcher", "r4", 0).await?;
    let mut alice = server.join("alice").await?;
    for (i, room) in ["r1", "r2", "r3"].into_iter().enumerate() {
        alice.join_room("alice", room, i).await?;
    }

    alice
        .send_json(json!({"type": "join", "room": "r4", "ref": "four"}))
        .await?;
    let refused = alice.recv_json().await?;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "too-many-rooms", "{refused}");
    assert_eq!(refused["ref"], "four", "{refused}");
    assert!(
        refused["message"].as_str().is_some_and(|m| m.contains('3')),
        "{refused}"
    );
    alice.expect_idle().await?;
    // Nothing of the refused join happened: r4 heard no `joined`.
    watcher.expect_idle().await?;
    assert!(!server.registry.in_room("alice", "r4"));
    assert_eq!(server.registry.rooms_of("alice").len(), 3);

    // Leaving one makes room for another.
    alice
        .send_json(json!({"type": "leave", "room": "r1", "ref": 10}))
        .await?;
    assert_eq!(
        alice.recv_json().await?,
        json!({"type": "left", "room": "r1", "id": "alice"})
    );
    assert_eq!(alice.recv_json().await?, ack(10));
    alice
        .send_json(json!({"type": "join", "room": "r4", "ref": 11}))
        .await?;
    let joined = json!({"type": "joined", "room": "r4", "id": "alice"});
    assert_eq!(alice.recv_json().await?, joined);
    assert_eq!(alice.recv_json().await?, ack(11));
    assert_eq!(watcher.drain().await?, vec![joined]);
    drop((alice, watcher));
    server.shutdown().await
}

#[tokio::test]
async fn joining_new_rooms_forever_stops_at_the_default_limit() -> Result<()> {
    let server = TestServer::start(without_rate_limits(tolerant_config())).await?;
    let mut alice = server.join("alice").await?;
    let mut refused = 0;
    for i in 0..300 {
        let room = format!("{i:064}");
        alice
            .send_json(json!({"type": "join", "room": room, "ref": i}))
            .await?;
        let first = alice.recv_json().await?;
        if first["type"] == "error" {
            assert_eq!(first["code"], "too-many-rooms", "{first}");
            assert_eq!(first["ref"], i, "{first}");
            refused += 1;
        } else {
            assert_eq!(alice.recv_json().await?, ack(i));
        }
    }
    assert_eq!(server.registry.rooms_of("alice").len(), 256);
    assert_eq!(refused, 300 - 256);
    drop(alice);
    server.shutdown().await
}

/// Sends `n` pings with refs 0..n in one burst and sorts the answers:
/// refs that got `pong` + `ack`, and refused ones (`rate-limited`).
async fn ping_burst(c: &mut Client, n: i64) -> Result<(Vec<i64>, Vec<Value>)> {
    for r in 0..n {
        c.send_json(json!({"type": "ping", "ref": r})).await?;
    }
    let (mut served, mut refused) = (Vec::new(), Vec::new());
    while (served.len() + refused.len()) < n as usize {
        let v = c.recv_json().await?;
        match v["type"].as_str() {
            Some("pong") => {
                let a = c.recv_json().await?;
                assert_eq!(a["type"], "ack", "pong then its ack: {a}");
                served.push(a["ref"].as_i64().unwrap_or(-1));
            }
            Some("error") => refused.push(v),
            _ => anyhow::bail!("unexpected {v}"),
        }
    }
    Ok((served, refused))
}

#[tokio::test]
async fn a_burst_of_600_pings_is_cut_at_the_default_message_rate() -> Result<()> {
    // The defaults: 50 per second, bursts of 100.
    let server = TestServer::start(tolerant_config()).await?;
    let mut alice = server.join("alice").await?;
    let started = std::time::Instant::now();
    let (served, refused) = ping_burst(&mut alice, 600).await?;
    let elapsed = started.elapsed().as_secs_f64();
    // At most the burst plus what the rate refilled while the burst lasted.
    let most = 100.0 + 50.0 * elapsed.ceil();
    assert!(served.len() >= 100, "the burst is served: {}", served.len());
    assert!(
        (served.len() as f64) <= most,
        "{} served in {elapsed:.2} s",
        served.len()
    );
    assert_eq!(served.len() + refused.len(), 600);
    for e in &refused {
        assert_eq!(e["code"], "rate-limited", "{e}");
        assert!(e["ref"].is_i64(), "the ref is echoed: {e}");
        let wait = e["retry_after_ms"].as_u64().unwrap_or(0);
        assert!((1..=1000).contains(&wait), "retry_after_ms {wait}: {e}");
    }
    // The connection stays open and usable.
    drop(alice);
    server.shutdown().await
}

#[tokio::test]
async fn a_message_rate_of_zero_turns_the_limit_off() -> Result<()> {
    let mut c = tolerant_config();
    c.limits.messages_per_sec = 0;
    c.limits.messages_burst = 1;
    let server = TestServer::start(c).await?;
    let mut alice = server.join("alice").await?;
    let (served, refused) = ping_burst(&mut alice, 600).await?;
    assert_eq!(served.len(), 600);
    assert!(refused.is_empty());
    drop(alice);
    server.shutdown().await
}

#[tokio::test]
async fn broadcasts_past_the_allowance_are_refused_and_not_delivered() -> Result<()> {
    let mut c = tolerant_config();
    c.limits.broadcasts_per_sec = 1;
    c.limits.broadcasts_burst = 2;
    let server = TestServer::start(c).await?;
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    let started = std::time::Instant::now();
    for r in 0..6 {
        alice
            .send_json(json!({"type": "broadcast", "data": r, "ref": r}))
            .await?;
    }
    let mut acked = Vec::new();
    for _ in 0..6 {
        let v = alice.recv_json().await?;
        if v["type"] == "ack" {
            acked.push(v["ref"].clone());
        } else {
            assert_eq!(v["code"], "rate-limited", "{v}");
            assert!(
                v["retry_after_ms"].as_u64().is_some_and(|ms| ms >= 1),
                "{v}"
            );
        }
    }
    let most = 2 + started.elapsed().as_secs() as usize + 1;
    assert!(acked.len() >= 2 && acked.len() <= most, "{acked:?}");
    // bob got exactly the acknowledged broadcasts, in order.
    let got: Vec<Value> = bob
        .drain()
        .await?
        .iter()
        .map(|v| v["data"].clone())
        .collect();
    assert_eq!(got, acked);
    drop((alice, bob));
    server.shutdown().await
}
