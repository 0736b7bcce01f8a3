//! Notices across nodes (issue 21): a notice to an id connected to
//! another node reaches it, each sender's notices in order; one held there
//! is acked `held` and arrives on resume; one to an id no node has is
//! answered `target-closed`.

use std::time::Duration;

use anyhow::{Result, bail, ensure};
use serde_json::{Value, json};
use switchboard_tests::cluster::{ask, connect, node};
use switchboard_tests::redis::RedisServer;
use switchboard_tests::{Client, TestServer, WAIT};

/// The next notice `c` gets.
async fn next_notice(c: &mut Client) -> Result<Value> {
    loop {
        let v = c.recv_v2().await?;
        if v["type"] == "notice" {
            return Ok(v);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_reaches_an_id_on_another_node_in_order() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(node(&redis, "a")?).await?;
    let b = TestServer::start(node(&redis, "b")?).await?;
    let mut alice = connect(&a, "alice").await?;
    let mut bob = connect(&b, "bob").await?;

    let (_, ack) = ask(
        &mut alice,
        json!({"type": "notice", "to": "bob", "data": "psst"}),
        "n",
    )
    .await?;
    ensure!(ack["type"] == "ack" && ack.get("held").is_none(), "{ack}");
    let got = next_notice(&mut bob).await?;
    ensure!(got["from"] == "alice" && got["data"] == "psst", "{got}");

    // A sender's notices to one id arrive in the order sent.
    const N: u64 = 200;
    for i in 0..N {
        alice
            .send_json(json!({"type": "notice", "to": "bob", "data": i}))
            .await?;
    }
    for i in 0..N {
        let got = next_notice(&mut bob).await?;
        ensure!(got["data"] == i, "wanted {i}, got {got}");
    }

    // Bob leaves for good: a notice to him goes nowhere, and says so (once
    // node b has let him go; until then it is on its way to b).
    bob.close().await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, answer) = ask(
            &mut alice,
            json!({"type": "notice", "to": "bob", "data": "there?"}),
            "gone",
        )
        .await?;
        if answer["type"] == "error" {
            ensure!(answer["code"] == "target-closed", "{answer}");
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("bob never let go of: {answer}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.shutdown().await?;
    b.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_to_an_id_held_on_another_node_is_acked_held_and_arrives_on_resume() -> Result<()>
{
    let redis = RedisServer::start()?;
    let mut config = node(&redis, "b")?;
    config.recovery.resume_window = Duration::from_secs(120);
    let a = TestServer::start(node(&redis, "a")?).await?;
    let b = TestServer::start(config).await?;
    let mut alice = connect(&a, "alice").await?;
    let (bob, session) = b.connect_with_session("bob").await?;

    // The socket dies: no close frame.
    drop(bob);
    b.until_held("bob").await?;
    // Marked held in Redis right after the server holds it: asked until
    // the ack says so (each ask before that is queued to the hold too).
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut sent = 0;
    loop {
        let (_, ack) = ask(
            &mut alice,
            json!({"type": "notice", "to": "bob", "data": sent}),
            "h",
        )
        .await?;
        ensure!(ack["type"] == "ack", "{ack}");
        sent += 1;
        if ack["held"] == true {
            break;
        }
        ensure!(tokio::time::Instant::now() < deadline, "never held: {ack}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut bob = b.connect_path(&format!("/ws/bob?resume={session}")).await?;
    let welcome = bob.recv_v2().await?;
    ensure!(welcome["resumed"] == true, "{welcome}");
    for i in 0..sent {
        let got = next_notice(&mut bob).await?;
        ensure!(
            got["data"] == i && got["from"] == "alice",
            "wanted {i}, got {got}"
        );
    }
    a.shutdown().await?;
    b.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_stored_on_one_node_is_handed_over_on_another() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(node(&redis, "a")?).await?;
    let b = TestServer::start(node(&redis, "b")?).await?;
    let mut alice = connect(&a, "alice").await?;
    for (i, r) in ["s1", "s2"].iter().enumerate() {
        let (_, ack) = ask(
            &mut alice,
            json!({"type": "notice", "to": "carol", "data": i, "store": true}),
            r,
        )
        .await?;
        ensure!(ack["type"] == "ack" && ack["stored"] == true, "{ack}");
    }
    let mut carol = b.connect_path("/ws/carol").await?;
    let welcome = carol.recv_v2().await?;
    ensure!(welcome["type"] == "welcome", "{welcome}");
    for i in 0..2 {
        let got = next_notice(&mut carol).await?;
        ensure!(
            got["data"] == i && got["from"] == "alice" && got["stored_at"].is_string(),
            "wanted {i}, got {got}"
        );
    }
    // Handed over once: a second connection (on the other node) gets none.
    carol.close().await?;
    let mut again = connect(&a, "carol").await?;
    let frames = again.drain_v2().await?;
    ensure!(
        frames.iter().all(|v| v["type"] != "notice"),
        "handed over twice: {frames:?}"
    );
    a.shutdown().await?;
    b.shutdown().await
}
