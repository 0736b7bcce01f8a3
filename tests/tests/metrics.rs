//! `/metrics`: every family moves when its event happens, scraped over
//! HTTP as Prometheus would (docs/OPERATIONS.md, "Metrics").

use std::net::SocketAddr;

use anyhow::{Result, ensure};
use serde_json::json;
use switchboard_tests::metrics::{Scraped, scrape, scrape_open};
use switchboard_tests::{TestServer, config, with_admin};

const TOKEN: &str = "metrics-test-token-0123456789";

/// Scrape until `check` holds (bounded): a connection's end is counted
/// when its task finishes, just after the client sees the close.
async fn until(
    server: &TestServer,
    what: &str,
    check: impl Fn(&Scraped) -> bool,
) -> Result<Scraped> {
    let start = std::time::Instant::now();
    loop {
        let now = scrape(server, TOKEN).await?;
        if check(&now) {
            return Ok(now);
        }
        ensure!(
            start.elapsed() < switchboard_tests::WAIT,
            "{what} never held:\n{}",
            now.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connections_frames_rooms_and_the_policy_move() -> Result<()> {
    let server = TestServer::start(with_admin(config(), TOKEN)).await?;
    let before = scrape(&server, TOKEN).await?;
    ensure!(
        before.get("switchboard_connections_open{transport=\"ws\"}") == 0.0,
        "{}",
        before.text
    );

    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    alice.join_room("alice", "lobby", 1).await?;
    bob.join_room("bob", "lobby", 2).await?;
    alice
        .send_json(json!({"type": "room", "room": "lobby", "data": "hi", "ref": 3}))
        .await?;
    let _ = alice.drain().await?;
    let got = bob.drain().await?;
    ensure!(got.iter().any(|f| f["data"] == "hi"), "{got:?}");

    let after = scrape(&server, TOKEN).await?;
    let moved = |series: &str, by: f64| {
        let (b, a) = (before.get(series), after.get(series));
        ensure!(a - b >= by, "{series}: {b} -> {a}\n{}", after.text);
        Ok(())
    };
    moved("switchboard_connections_total{transport=\"ws\"}", 2.0)?;
    moved("switchboard_connections_open{transport=\"ws\"}", 2.0)?;
    moved("switchboard_frames_in_total{type=\"text\"}", 3.0)?;
    moved("switchboard_frames_out_total{type=\"text\"}", 5.0)?;
    moved("switchboard_room_deliveries_total", 2.0)?;
    moved("switchboard_policy_calls_total{version=\"1\"}", 5.0)?;
    moved(
        "switchboard_policy_call_duration_seconds_count{version=\"1\"}",
        5.0,
    )?;
    moved("switchboard_rooms", 1.0)?;
    moved("switchboard_history_messages", 1.0)?;
    moved("switchboard_history_bytes", 1.0)?;
    ensure!(
        after.get("switchboard_policy_active_version") == 1.0,
        "{}",
        after.text
    );
    // Bytes waiting, both ways: served (the soak run watches them return
    // to 0, bench/README.md "Soak").
    for series in [
        "switchboard_outbound_queued_bytes",
        "switchboard_inbound_partial_bytes",
        "switchboard_connections_limit",
    ] {
        ensure!(after.has(series), "{series}\n{}", after.text);
    }

    // A refused upgrade, and a connection that ends.
    let status = server.refused_status("/nope").await?;
    ensure!(status == 400 || status == 404, "{status}");
    bob.close().await?;
    let ended = until(&server, "bob's end counted", |m| {
        m.get("switchboard_connections_closed_total{transport=\"ws\",code=\"1005\"}") >= 1.0
    })
    .await?;
    ensure!(
        ended.get("switchboard_handshakes_refused_total{reason=\"bad-request\"}") >= 1.0,
        "{}",
        ended.text
    );
    ensure!(
        ended.get("switchboard_connections_open{transport=\"ws\"}") == 1.0,
        "{}",
        ended.text
    );
    // One server: no cluster families.
    ensure!(
        !ended.has("switchboard_redis_round_trips_total"),
        "{}",
        ended.text
    );
    Ok(())
}

#[tokio::test]
async fn limits_held_ids_and_stored_notices_move() -> Result<()> {
    let mut cfg = with_admin(config(), TOKEN);
    cfg.limits.messages_per_sec = 1;
    cfg.limits.messages_burst = 2;
    let server = TestServer::start(cfg).await?;
    let before = scrape(&server, TOKEN).await?;

    let mut alice = server.join("alice").await?;
    // A stored notice for an id that was never online.
    alice
        .send_json(
            json!({"type": "notice", "to": "carol", "data": "later", "store": true, "ref": 1}),
        )
        .await?;
    let ack = alice.recv_json().await?;
    ensure!(ack["type"] == "ack", "{ack}");
    // Past the message rate.
    for r in 2..6 {
        alice.send_json(json!({"type": "ping", "ref": r})).await?;
    }
    let mut limited = false;
    for _ in 2..6 {
        let answer = alice.recv_json().await?;
        limited |= answer["code"] == "rate-limited";
    }
    ensure!(limited, "no message was rate-limited");

    // An id held for a resume: its connection dropped without a close.
    let (dave, _session) = server.connect_with_session("dave").await?;
    drop(dave);
    server.until_held("dave").await?;

    let after = scrape(&server, TOKEN).await?;
    for (series, by) in [
        (
            "switchboard_limit_refusals_total{limit=\"messages_per_sec\"}",
            1.0,
        ),
        ("switchboard_stored_notices", 1.0),
        ("switchboard_stored_notice_bytes", 1.0),
        ("switchboard_held_ids", 1.0),
    ] {
        let (b, a) = (before.get(series), after.get(series));
        ensure!(a - b >= by, "{series}: {b} -> {a}\n{}", after.text);
    }
    Ok(())
}

#[tokio::test]
async fn swaps_failures_and_rollbacks_are_counted_by_version() -> Result<()> {
    let server = TestServer::start(with_admin(config(), TOKEN)).await?;
    let mut alice = server.join("alice").await?;
    let misbehave = std::fs::read(switchboard_tests::misbehave_wasm())?;
    let (code, body) = server.policy_swap(TOKEN, misbehave, "misbehave").await?;
    ensure!(code == 200, "{code}: {body}");
    alice.send_text("trap").await?;
    let answer = alice.recv_json().await?;
    ensure!(answer["code"] == "policy-failed", "{answer}");

    let swapped = scrape(&server, TOKEN).await?;
    for (series, want) in [
        ("switchboard_policy_swaps_total", 1.0),
        ("switchboard_policy_active_version", 2.0),
        (
            "switchboard_policy_failures_total{version=\"2\",kind=\"trap\"}",
            1.0,
        ),
    ] {
        ensure!(
            swapped.get(series) == want,
            "{series}: {}\n{}",
            swapped.get(series),
            swapped.text
        );
    }
    ensure!(
        swapped.get("switchboard_policy_calls_total{version=\"2\"}") >= 1.0,
        "{}",
        swapped.text
    );
    // The previous version's series stay (a counter must not vanish while
    // its version can come back).
    ensure!(
        swapped.has("switchboard_policy_calls_total{version=\"1\"}"),
        "{}",
        swapped.text
    );

    let (code, body) = server.policy_rollback(TOKEN).await?;
    ensure!(code == 200, "{code}: {body}");
    let rolled = scrape(&server, TOKEN).await?;
    ensure!(
        rolled.get("switchboard_policy_rollbacks_total{automatic=\"false\"}") == 1.0
            && rolled.get("switchboard_policy_active_version") == 1.0,
        "{}",
        rolled.text
    );
    Ok(())
}

#[tokio::test]
async fn the_token_is_needed_on_the_admin_listener_and_not_on_metrics_listen() -> Result<()> {
    let mut cfg = with_admin(config(), TOKEN);
    cfg.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let server = TestServer::start(cfg).await?;
    let admin = format!(
        "http://{}",
        server.admin_addr.expect("the admin interface runs")
    );
    let (code, body) = scrape_open(&admin).await?;
    ensure!(code == 401, "{code}: {body}");

    let open = format!(
        "http://{}",
        server.metrics_addr.expect("--metrics-listen was given")
    );
    let (code, body) = scrape_open(&open).await?;
    ensure!(code == 200, "{code}: {body}");
    let scraped = Scraped::parse(&body)?;
    ensure!(
        scraped.has("switchboard_connections_open{transport=\"ws\"}"),
        "{body}"
    );
    // Only /metrics there: nothing of the admin interface.
    let (code, _) = switchboard::ops::AdminClient::new(&open, Some(TOKEN.into()))
        .request(switchboard::ops::Method::Get, "/admin/policy")
        .await
        .map_err(anyhow::Error::msg)?;
    ensure!(code == 404, "{code}");
    // A web page's request (with Origin) is refused.
    let metrics_addr = server.metrics_addr.expect("--metrics-listen was given");
    let answer = raw_get(
        metrics_addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\nConnection: close\r\n\r\n",
    )
    .await?;
    ensure!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    Ok(())
}

async fn raw_get(addr: SocketAddr, request: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(switchboard_tests::WAIT, tcp.read_to_end(&mut answer)).await??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Cluster mode adds Redis round trips (with their latency and errors),
/// bus messages in and out, and the time spent degraded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_counts_redis_the_bus_and_degraded_time() -> Result<()> {
    use switchboard_tests::cluster::{ask, connect, node};
    let redis = switchboard_tests::redis::RedisServer::start()?;
    let a = TestServer::start(with_admin(node(&redis, "a")?, TOKEN)).await?;
    let b = TestServer::start(node(&redis, "b")?).await?;
    let mut alice = connect(&a, "alice").await?;
    let mut bob = connect(&b, "bob").await?;
    for c in [&mut alice, &mut bob] {
        let (_, ack) = ask(c, json!({"type": "join", "room": "lobby"}), "j").await?;
        ensure!(ack["type"] == "ack", "{ack}");
    }
    let before = scrape(&a, TOKEN).await?;
    ensure!(
        before.get("switchboard_cluster_degraded") == 0.0,
        "{}",
        before.text
    );
    let (_, ack) = ask(
        &mut bob,
        json!({"type": "room", "room": "lobby", "data": "from b"}),
        "m",
    )
    .await?;
    ensure!(ack["type"] == "ack", "{ack}");
    let (_, ack) = ask(
        &mut alice,
        json!({"type": "notice", "to": "bob", "data": "x"}),
        "n",
    )
    .await?;
    ensure!(ack["type"] == "ack", "{ack}");
    let moved = until(&a, "bus traffic counted", |m| {
        m.get("switchboard_bus_messages_total{direction=\"in\"}")
            > before.get("switchboard_bus_messages_total{direction=\"in\"}")
            && m.get("switchboard_bus_messages_total{direction=\"out\"}")
                > before.get("switchboard_bus_messages_total{direction=\"out\"}")
    })
    .await?;
    for series in [
        "switchboard_redis_round_trips_total",
        "switchboard_redis_round_trip_duration_seconds_count",
    ] {
        ensure!(
            moved.get(series) > before.get(series),
            "{series}\n{}",
            moved.text
        );
    }

    redis.pause()?;
    let (_, refused) = ask(
        &mut alice,
        json!({"type": "room", "room": "lobby", "data": "lost?"}),
        "p",
    )
    .await?;
    ensure!(refused["code"] == "unavailable", "{refused}");
    let degraded = until(&a, "degraded time counted", |m| {
        m.get("switchboard_cluster_degraded") == 1.0
            && m.get("switchboard_degraded_seconds_total") > 0.0
    })
    .await?;
    ensure!(
        degraded.get("switchboard_redis_errors_total")
            > before.get("switchboard_redis_errors_total"),
        "{}",
        degraded.text
    );
    redis.resume()?;
    until(&a, "back from degraded", |m| {
        m.get("switchboard_cluster_degraded") == 0.0
    })
    .await?;
    Ok(())
}
