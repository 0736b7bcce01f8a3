//! Held ids are counted: an id held for a resume counts as a connection
//! against `--max-connections-per-ip` (its last address) and
//! `--max-connections` until it is resumed or its window ends, and a resume
//! is never refused for its own hold. `--max-held` caps the holds (past it
//! the oldest ends early, its rooms hear `left`); `--max-rooms` caps the
//! rooms server-wide (a join that would make another gets `too-many-rooms`).

use std::time::Duration;

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard_tests::{Client, TestServer, eventually, tolerant_config, without_rate_limits};

const PER_IP_REFUSAL: &str = "too many connections from your address; try again later";
const FULL_REFUSAL: &str = "server is at its connection limit; try again later";

fn config(f: impl FnOnce(&mut Config)) -> Config {
    let mut c = without_rate_limits(tolerant_config());
    c.recovery.resume_window = Duration::from_secs(120);
    f(&mut c);
    c
}

/// Connect as `id`; the client and its session.
async fn connect(server: &TestServer, id: &str) -> Result<(Client, String)> {
    server.connect_with_session(id).await
}

/// Resume `id` with `session`; the client, checked to be resumed.
async fn resume(server: &TestServer, id: &str, session: &str) -> Result<Client> {
    let mut c = server
        .connect_path(&format!("/ws/{id}?resume={session}"))
        .await?;
    let welcome = c.recv_v2().await?;
    ensure!(
        welcome["type"] == "welcome" && welcome["resumed"] == true,
        "{id} not resumed: {welcome}"
    );
    Ok(c)
}

/// Drop `c` without a close frame (the socket dies) and wait until `id` is
/// held.
async fn cut(server: &TestServer, c: Client, id: &str) -> Result<()> {
    drop(c);
    server.until_held(id).await
}

/// Send `request` with `ref` and read until its answer.
async fn ask(c: &mut Client, mut request: Value, r: &str) -> Result<Value> {
    request["ref"] = json!(r);
    c.send_json(request).await?;
    loop {
        let v = c.recv_v2().await?;
        if v["ref"] == r {
            return Ok(v);
        }
    }
}

/// A fresh connection from this address is refused with 503 and `reason`.
async fn refused(server: &TestServer, id: &str, reason: &str) -> Result<()> {
    let answer = server.raw_upgrade(&format!("/ws/{id}")).await?;
    ensure!(answer.status == 503, "{id}: {answer:?}");
    ensure!(answer.body.trim_end() == reason, "{answer:?}");
    ensure!(!server.registry.is_online(id));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_ids_count_per_address_and_a_resume_at_the_limit_is_accepted() -> Result<()> {
    let (server, inside) =
        TestServer::start_inside(config(|c| c.limits.max_connections_per_ip = 3), false).await?;
    let mut sessions = Vec::new();
    for id in ["a", "b", "c"] {
        let (client, session) = connect(&server, id).await?;
        cut(&server, client, id).await?;
        sessions.push(session);
    }
    eventually("three holds counted", || {
        inside.admission.held() == 3 && inside.admission.connections() == 0
    })
    .await?;

    // Three held ids fill the address: a fourth, fresh id is refused.
    refused(&server, "d", PER_IP_REFUSAL).await?;
    // A resume takes its own hold's place, at the limit.
    let mut a = resume(&server, "a", &sessions[0]).await?;
    a.expect_idle().await?;
    ensure!(inside.admission.held() == 2 && inside.admission.connections() == 1);
    // Still full: one open, two held.
    refused(&server, "d", PER_IP_REFUSAL).await?;
    // The other two resume as well.
    let mut b = resume(&server, "b", &sessions[1]).await?;
    let mut c = resume(&server, "c", &sessions[2]).await?;
    b.expect_idle().await?;
    c.expect_idle().await?;
    refused(&server, "d", PER_IP_REFUSAL).await?;

    // Normal closes free their places at once; nothing stays counted.
    for client in [a, b, c] {
        client.close().await?;
    }
    eventually("every place given back", || {
        inside.admission.connections() == 0
            && inside.admission.held() == 0
            && inside.admission.addresses() == 0
    })
    .await?;
    let (d, _) = connect(&server, "d").await?;
    d.close().await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_ids_count_against_the_server_wide_limit() -> Result<()> {
    let (server, inside) =
        TestServer::start_inside(config(|c| c.limits.max_connections = 2), false).await?;
    let (mut open, _) = connect(&server, "open").await?;
    let (gone, session) = connect(&server, "gone").await?;
    cut(&server, gone, "gone").await?;
    eventually("the hold counted", || inside.admission.held() == 1).await?;

    refused(&server, "fresh", FULL_REFUSAL).await?;
    let mut gone = resume(&server, "gone", &session).await?;
    gone.expect_idle().await?;
    open.expect_idle().await?;
    refused(&server, "fresh", FULL_REFUSAL).await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_ids_place_is_free_again_when_its_window_ends() -> Result<()> {
    let (server, inside) = TestServer::start_inside(
        config(|c| {
            c.limits.max_connections_per_ip = 1;
            c.recovery.resume_window = Duration::from_secs(3);
        }),
        false,
    )
    .await?;
    let (a, _) = connect(&server, "a").await?;
    cut(&server, a, "a").await?;
    refused(&server, "b", PER_IP_REFUSAL).await?;

    // The window ends: the hold, and its place, go.
    eventually("the hold ended and its place given back", || {
        !server.holds.is_held("a") && inside.admission.held() == 0
    })
    .await?;
    ensure!(inside.admission.addresses() == 0);
    let (mut b, _) = connect(&server, "b").await?;
    b.expect_idle().await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_held_the_oldest_hold_ends_early_and_its_rooms_hear_left() -> Result<()> {
    let (server, inside) =
        TestServer::start_inside(config(|c| c.limits.max_held = Some(2)), false).await?;
    let (mut watcher, _) = connect(&server, "w").await?;
    ask(&mut watcher, json!({"type": "join", "room": "r"}), "w").await?;
    let mut clients = Vec::new();
    for id in ["a", "b", "c"] {
        let (mut c, session) = connect(&server, id).await?;
        ask(&mut c, json!({"type": "join", "room": "r"}), id).await?;
        clients.push((id, c, session));
    }
    watcher.drain().await?;
    let mut sessions = Vec::new();
    for (id, c, session) in clients {
        cut(&server, c, id).await?;
        sessions.push(session);
    }
    // The third hold ended the first (the oldest) at once: the room heard
    // `left`, as at the end of its window.
    let left = watcher.recv_v2().await?;
    ensure!(
        left == json!({"type": "left", "room": "r", "id": "a"}),
        "{left}"
    );
    ensure!(!server.registry.is_online("a") && !server.registry.in_room("a", "r"));
    ensure!(server.holds.count() == 2);
    ensure!(server.holds.is_held("b") && server.holds.is_held("c"));
    eventually("the ended hold counted out", || {
        inside.admission.held() == 2
    })
    .await?;
    watcher.expect_idle().await?;
    // The ended hold cannot be resumed; the others can.
    let mut a = server
        .connect_path(&format!("/ws/a?resume={}", sessions[0]))
        .await?;
    let welcome = a.recv_v2().await?;
    ensure!(welcome["resumed"] == false, "{welcome}");
    let mut b = resume(&server, "b", &sessions[1]).await?;
    let missed = b.drain().await?;
    ensure!(
        missed == [json!({"type": "left", "room": "r", "id": "a"})],
        "{missed:?}"
    );
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_rooms_a_new_room_is_refused_and_existing_rooms_can_be_joined() -> Result<()> {
    let server = TestServer::start(config(|c| c.limits.max_rooms = 2)).await?;
    let (mut a, _) = connect(&server, "a").await?;
    let (mut b, _) = connect(&server, "b").await?;
    for room in ["r1", "r2"] {
        let ack = ask(&mut a, json!({"type": "join", "room": room}), room).await?;
        ensure!(ack["type"] == "ack", "{ack}");
    }
    // A third room would pass the server's cap.
    let refused = ask(&mut a, json!({"type": "join", "room": "r3"}), "r3").await?;
    ensure!(
        refused["type"] == "error" && refused["code"] == "too-many-rooms",
        "{refused}"
    );
    let message = refused["message"].as_str().unwrap_or_default();
    ensure!(message.contains("--max-rooms"), "{refused}");
    ensure!(!server.registry.in_room("a", "r3"));
    let refused = ask(&mut b, json!({"type": "join", "room": "r3"}), "b3").await?;
    ensure!(refused["code"] == "too-many-rooms", "{refused}");
    // Joining a room that exists is not limited.
    let ack = ask(&mut b, json!({"type": "join", "room": "r1"}), "b1").await?;
    ensure!(ack["type"] == "ack", "{ack}");
    ensure!(server.registry.in_room("b", "r1"));
    // A room that empties makes room for another.
    let ack = ask(&mut a, json!({"type": "leave", "room": "r2"}), "l2").await?;
    ensure!(ack["type"] == "ack", "{ack}");
    let ack = ask(&mut b, json!({"type": "join", "room": "r3"}), "b3again").await?;
    ensure!(ack["type"] == "ack", "{ack}");
    server.shutdown().await
}
