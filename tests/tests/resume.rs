//! Session resume: a client whose socket dies without a close frame is
//! held for `resume_window_secs`; reconnecting with `?resume=<session>`
//! inside the window gets `resumed:true` and everything it missed (room
//! messages with their offsets, notices), once, in order, and nobody saw it
//! leave. After the window, or with a wrong session: `resumed:false` and a
//! fresh start.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard_tests::{Client, TestServer, tolerant_config, without_rate_limits};

fn config(window_secs: u64) -> Config {
    let mut c = without_rate_limits(tolerant_config());
    c.recovery.resume_window = Duration::from_secs(window_secs);
    c
}

/// Connect as `id`; returns the client and its welcome.
async fn connect(server: &TestServer, path: &str) -> Result<(Client, Value)> {
    let mut c = server.connect_path(path).await?;
    let welcome = c.recv_v2().await?;
    ensure!(welcome["type"] == "welcome", "{welcome}");
    Ok((c, welcome))
}

async fn join(c: &mut Client, room: &str) -> Result<()> {
    c.send_json(json!({"type": "join", "room": room, "ref": room}))
        .await?;
    loop {
        let v = c.recv_v2().await?;
        if v["type"] == "ack" && v["ref"] == room {
            return Ok(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_client_resumes_with_everything_it_missed_and_nobody_sees_it_leave() -> Result<()>
{
    let server = TestServer::start(config(120)).await?;
    let (mut alice, welcome) = connect(&server, "/ws/alice").await?;
    ensure!(welcome["resumed"] == false, "{welcome}");
    let session = welcome["session"]
        .as_str()
        .context("no session")?
        .to_owned();
    ensure!(
        session.len() >= 16,
        "a session must be unguessable: {session}"
    );
    let (mut bob, _) = connect(&server, "/ws/bob").await?;
    let (mut carol, _) = connect(&server, "/ws/carol").await?;
    for room in ["r1", "r2"] {
        join(&mut alice, room).await?;
        join(&mut bob, room).await?;
    }
    join(&mut carol, "r1").await?;
    bob.drain().await?;
    carol.drain().await?;
    alice.drain().await?;

    // The socket dies: no close frame.
    drop(alice);
    server.until_held("alice").await?;
    ensure!(
        server.registry.is_online("alice"),
        "a held id counts as online"
    );
    bob.send_json(json!({"type": "online", "ids": ["alice", "nobody"], "ref": "o"}))
        .await?;
    let online = bob.recv_v2().await?;
    ensure!(online["ids"] == json!(["alice"]), "{online}");

    // 30 room messages and 2 notices while it is away, interleaved.
    let mut sent = Vec::new();
    for i in 0..30 {
        let room = if i % 2 == 0 { "r1" } else { "r2" };
        bob.send_json(json!({"type": "room", "room": room, "data": i}))
            .await?;
        sent.push(json!({"type": "room", "room": room, "from": "bob", "data": i}));
        if i == 9 || i == 19 {
            let n = i / 10;
            bob.send_json(
                json!({"type": "notice", "to": "alice", "data": format!("n{n}"), "ref": n}),
            )
            .await?;
            sent.push(json!({"type": "notice", "from": "bob", "data": format!("n{n}")}));
            let ack = bob.recv_v2().await?;
            ensure!(
                ack == json!({"type": "ack", "ref": n, "held": true}),
                "{ack}"
            );
        }
    }
    // Everything bob sent has been handled before alice comes back.
    bob.drain().await?;

    let (mut alice, welcome) = connect(&server, &format!("/ws/alice?resume={session}")).await?;
    ensure!(
        welcome["resumed"] == true && welcome["id"] == "alice",
        "{welcome}"
    );
    let new_session = welcome["session"].as_str().context("no new session")?;
    ensure!(new_session != session, "a resume gets a new session");
    let got = alice.drain_v2().await?;
    let offsets: Vec<Value> = got.iter().map(|v| v["offset"].clone()).collect();
    let stripped: Vec<Value> = got
        .into_iter()
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("offset");
            }
            v
        })
        .collect();
    ensure!(stripped == sent, "missed {sent:?}\ngot {stripped:?}");
    ensure!(
        offsets.iter().filter(|o| o.is_u64()).count() == 30,
        "every room message has its offset: {offsets:?}"
    );

    // Nobody saw alice leave or come back.
    let seen = carol.drain().await?;
    ensure!(
        seen.iter().all(|v| v["type"] == "room"),
        "carol saw more than messages: {seen:?}"
    );
    ensure!(bob.drain().await?.is_empty());
    // Live traffic reaches the resumed connection.
    bob.send_json(json!({"type": "room", "room": "r2", "data": "live"}))
        .await?;
    let live = alice.recv_v2().await?;
    ensure!(live["data"] == "live", "{live}");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_window_the_rooms_hear_left_and_a_resume_starts_afresh() -> Result<()> {
    let server = TestServer::start(config(1)).await?;
    let (mut alice, welcome) = connect(&server, "/ws/alice").await?;
    let session = welcome["session"]
        .as_str()
        .context("no session")?
        .to_owned();
    let (mut bob, _) = connect(&server, "/ws/bob").await?;
    join(&mut alice, "r1").await?;
    join(&mut bob, "r1").await?;
    drop(alice);
    // The window ends: now, and only now, the room hears `left`.
    let left = bob.recv_v2().await?;
    ensure!(
        left == json!({"type": "left", "room": "r1", "id": "alice"}),
        "{left}"
    );
    ensure!(!server.holds.is_held("alice"));
    let (mut alice, welcome) = connect(&server, &format!("/ws/alice?resume={session}")).await?;
    ensure!(welcome["resumed"] == false, "{welcome}");
    ensure!(
        !server.registry.in_room("alice", "r1"),
        "a fresh start is in no room"
    );
    alice.expect_idle().await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_session_is_refused_cleanly_with_a_fresh_start() -> Result<()> {
    let server = TestServer::start(config(120)).await?;
    let (mut alice, _) = connect(&server, "/ws/alice").await?;
    let (mut bob, _) = connect(&server, "/ws/bob").await?;
    join(&mut alice, "r1").await?;
    join(&mut bob, "r1").await?;
    bob.drain().await?;
    drop(alice);
    server.until_held("alice").await?;
    let (mut alice, welcome) = connect(&server, "/ws/alice?resume=not-the-session").await?;
    ensure!(welcome["resumed"] == false, "{welcome}");
    // The hold ended before the new connection: the room heard `left`.
    let left = bob.recv_v2().await?;
    ensure!(left["type"] == "left" && left["id"] == "alice", "{left}");
    ensure!(!server.registry.in_room("alice", "r1"));
    alice.expect_idle().await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_close_is_not_held() -> Result<()> {
    let server = TestServer::start(config(120)).await?;
    let (mut alice, welcome) = connect(&server, "/ws/alice").await?;
    let session = welcome["session"]
        .as_str()
        .context("no session")?
        .to_owned();
    let (mut bob, _) = connect(&server, "/ws/bob").await?;
    join(&mut alice, "r1").await?;
    join(&mut bob, "r1").await?;
    bob.drain().await?;
    alice.close().await?;
    let left = bob.recv_v2().await?;
    ensure!(left["type"] == "left" && left["id"] == "alice", "{left}");
    ensure!(!server.holds.is_held("alice"));
    let (_alice, welcome) = connect(&server, &format!("/ws/alice?resume={session}")).await?;
    ensure!(welcome["resumed"] == false, "{welcome}");
    server.shutdown().await
}
