//! Stored notices: `{"type":"notice",…,"store":true}` to an offline id is
//! kept (ack `"stored":true`) and delivered after its next welcome with a
//! `stored_at`, oldest first; per id the oldest go past the bound (and the
//! id is told how many, in one frame); past their age they are not
//! delivered. Without `store`, an offline target is `target-closed`.

use std::time::Duration;

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard_tests::{Client, TestServer, tolerant_config, without_rate_limits};

fn config(per_id: usize, ttl: Duration) -> Config {
    let mut c = without_rate_limits(tolerant_config());
    c.recovery.stored_notices_per_id = per_id;
    c.recovery.stored_notice_ttl = ttl;
    c
}

async fn connect(server: &TestServer, id: &str) -> Result<(Client, Value)> {
    let mut c = server.connect(id).await?;
    let welcome = c.recv_v2().await?;
    ensure!(welcome["type"] == "welcome", "{welcome}");
    Ok((c, welcome))
}

async fn notice(alice: &mut Client, to: &str, data: Value, store: bool, r: u64) -> Result<Value> {
    let mut req = json!({"type": "notice", "to": to, "data": data, "ref": r});
    if store {
        req["store"] = true.into();
    }
    alice.send_json(req).await?;
    alice.recv_v2().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_notice_waits_for_the_next_welcome() -> Result<()> {
    let server = TestServer::start(config(100, Duration::from_secs(3600))).await?;
    let (mut alice, _) = connect(&server, "alice").await?;
    let ack = notice(&mut alice, "bob", json!("first"), true, 1).await?;
    ensure!(
        ack == json!({"type": "ack", "ref": 1, "stored": true}),
        "{ack}"
    );
    let ack = notice(&mut alice, "bob", json!({"n": 2}), true, 2).await?;
    ensure!(ack["stored"] == true, "{ack}");
    let refused = notice(&mut alice, "bob", json!("not kept"), false, 3).await?;
    ensure!(
        refused["type"] == "error" && refused["code"] == "target-closed" && refused["ref"] == 3,
        "{refused}"
    );

    let (mut bob, welcome) = connect(&server, "bob").await?;
    ensure!(welcome["id"] == "bob", "the welcome comes first: {welcome}");
    let got = bob.drain_v2().await?;
    ensure!(got.len() == 2, "{got:?}");
    for (v, data) in got.iter().zip([json!("first"), json!({"n": 2})]) {
        ensure!(
            v["type"] == "notice" && v["from"] == "alice" && v["data"] == data,
            "{v}"
        );
        let at = v["stored_at"].as_str().unwrap_or_default();
        ensure!(
            humantime::parse_rfc3339(at).is_ok() && at.ends_with('Z'),
            "stored_at is RFC 3339: {v}"
        );
    }
    // Handed over once: a reconnect finds nothing.
    bob.close().await?;
    let (mut bob, _) = connect(&server, "bob").await?;
    bob.expect_idle().await?;
    // An online target gets a plain ack even with `store`.
    let ack = notice(&mut alice, "bob", json!("live"), true, 4).await?;
    ensure!(ack == json!({"type": "ack", "ref": 4}), "{ack}");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_bound_the_oldest_go_and_the_id_is_told() -> Result<()> {
    let server = TestServer::start(config(3, Duration::from_secs(3600))).await?;
    let (mut alice, _) = connect(&server, "alice").await?;
    for i in 0..5 {
        let ack = notice(&mut alice, "bob", json!(i), true, i).await?;
        ensure!(ack["stored"] == true, "{ack}");
    }
    let (mut bob, _) = connect(&server, "bob").await?;
    let got = bob.drain_v2().await?;
    ensure!(
        got.first() == Some(&json!({"type": "notices-dropped", "count": 2})),
        "{got:?}"
    );
    let data: Vec<&Value> = got[1..].iter().map(|v| &v["data"]).collect();
    ensure!(data == [2, 3, 4], "the newest 3, oldest first: {got:?}");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_notice_is_not_delivered() -> Result<()> {
    let server = TestServer::start(config(100, Duration::from_secs(1))).await?;
    let (mut alice, _) = connect(&server, "alice").await?;
    let ack = notice(&mut alice, "bob", json!("old"), true, 1).await?;
    ensure!(ack["stored"] == true, "{ack}");
    // The age limit is what is under test: wait past it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ack = notice(&mut alice, "bob", json!("new"), true, 2).await?;
    ensure!(ack["stored"] == true, "{ack}");
    let (mut bob, _) = connect(&server, "bob").await?;
    let got = bob.drain_v2().await?;
    let data: Vec<&Value> = got.iter().map(|v| &v["data"]).collect();
    ensure!(data == ["new"], "{got:?}");
    server.shutdown().await
}
