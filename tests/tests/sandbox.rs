//! The sandbox contains a misbehaving policy: a trap, an endless loop, a
//! guest that sleeps, an unbounded allocation, an oversized answer or a
//! chatty guest costs the sender one `policy-failed` error and nothing else.
//! The connection stays open, other clients never notice, and the next call
//! gets a fresh instance. A guest cannot open a socket, resolve a name or
//! hold host resources without bound; its answer is measured before it is
//! copied out; its clocks are the ones a replay sets. (That trying all this
//! leaves the process's open files as they were is in sandbox_fds.rs, a
//! test binary of its own so that no other test's files are counted.)
//!
//! Every test runs the real server in-process with the misbehave guest
//! (tests/guests/misbehave) and talks to it over real WebSockets.
//!
//! Deadlines: the call deadline counts the CPU time of the call's thread
//! (deadline_cpu.rs shows a starved call is not failed), checked at epoch
//! ticks. Tests that are not about time still run with a generous deadline, so the only limit that
//! can fail a call is the one under test; the timeout tests use a deadline
//! that is short enough to keep the tests quick and long enough that an
//! ordinary echo never meets it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures_util::future::join_all;
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard_tests::{Client, TestServer, misbehave_config, without_rate_limits};

/// The deadline for tests where time is not the point.
const GENEROUS_DEADLINE: Duration = Duration::from_secs(5);

/// The deadline for the endless-loop tests.
const LOOP_DEADLINE: Duration = Duration::from_millis(200);

/// The misbehave policy with a deadline no healthy call comes near.
fn sandbox_config() -> Config {
    let mut config = misbehave_config();
    config.policy_limits.call_deadline = GENEROUS_DEADLINE;
    config
}

/// The misbehave policy with the short deadline of the loop tests.
fn loop_config() -> Config {
    let mut config = misbehave_config();
    config.policy_limits.call_deadline = LOOP_DEADLINE;
    config
}

/// Connect as `id` and read the misbehave guest's welcome (`welcome <id>`).
async fn join(server: &TestServer, id: &str) -> Result<Client> {
    let mut c = server.connect(id).await?;
    let welcome = c.recv_text().await?;
    ensure!(
        welcome == format!("welcome {id}"),
        "expected the welcome for {id}, got {welcome:?}"
    );
    Ok(c)
}

/// Send `text` and expect it echoed back as the very next frame.
async fn echo(c: &mut Client, text: &str) -> Result<()> {
    echo_reply(c, text, text).await
}

/// Send `text` and expect `reply` as the very next frame.
async fn echo_reply(c: &mut Client, text: &str, reply: &str) -> Result<()> {
    c.send_text(text).await?;
    let got = c.recv_text().await?;
    ensure!(got == reply, "{text}: expected {reply:?}, got {got:?}");
    Ok(())
}

/// Check that `text` is the host's `policy-failed` error; return it parsed.
fn parse_failed(text: &str) -> Result<Value> {
    let v: Value =
        serde_json::from_str(text).with_context(|| format!("not a policy-failed error: {text}"))?;
    ensure!(v["type"] == "error", "not an error frame: {v}");
    ensure!(v["code"] == "policy-failed", "not policy-failed: {v}");
    ensure!(v["message"].is_string(), "no message: {v}");
    Ok(v)
}

/// The next frame must be `policy-failed`; return its message.
async fn expect_failed(c: &mut Client) -> Result<String> {
    let text = c.recv_text().await?;
    let v = parse_failed(&text)?;
    ensure!(v.get("ref").is_none(), "unexpected ref: {v}");
    Ok(v["message"].as_str().unwrap_or_default().to_owned())
}

/// Send `text` and expect exactly one `policy-failed`; return its message.
async fn provoke(c: &mut Client, text: &str) -> Result<String> {
    c.send_text(text).await?;
    expect_failed(c).await
}

/// Close the clients cleanly, then stop the server (which must stop).
async fn finish(server: TestServer, clients: Vec<Client>) -> Result<()> {
    for c in clients {
        c.close().await?;
    }
    server.shutdown().await
}

#[tokio::test]
async fn trap_fails_one_call_and_the_connection_lives_on() -> Result<()> {
    let server = TestServer::start(sandbox_config()).await?;
    let mut bystander = join(&server, "bystander").await?;
    let mut victim = join(&server, "victim").await?;
    echo(&mut bystander, "before").await?;
    echo(&mut victim, "before").await?;

    let message = provoke(&mut victim, "trap").await?;
    ensure!(message.contains("trapped"), "message: {message}");

    // The trapped instance is poisoned; an echo works only from a new one.
    echo(&mut victim, "hello").await?;
    echo(&mut bystander, "after").await?;
    ensure!(server.registry.is_online("victim"));
    ensure!(server.registry.is_online("bystander"));
    finish(server, vec![victim, bystander]).await
}

#[tokio::test]
async fn infinite_loop_is_interrupted_at_the_deadline() -> Result<()> {
    let server = TestServer::start(loop_config()).await?;
    let mut bystander = join(&server, "bystander").await?;
    let mut spinner = join(&server, "spinner").await?;

    let started = Instant::now();
    let message = provoke(&mut spinner, "loop").await?;
    let elapsed = started.elapsed();
    // The epoch interrupt was classified as a timeout of this deadline.
    ensure!(message.contains("out of time"), "message: {message}");
    ensure!(
        message.contains(&format!("{} ms", LOOP_DEADLINE.as_millis())),
        "message does not name the deadline: {message}"
    );
    // Not before the deadline: the epoch ticker needs at least that long to
    // reach it (a loose bound, to catch unit mistakes, not to time anything).
    ensure!(
        elapsed >= LOOP_DEADLINE / 2,
        "interrupted after {elapsed:?}"
    );
    // Liveness only: the loop was stopped at all, not how precisely.
    ensure!(elapsed < Duration::from_secs(10), "took {elapsed:?}");

    echo(&mut spinner, "hello").await?;
    echo(&mut bystander, "hello").await?;
    finish(server, vec![spinner, bystander]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_waits_traps_at_once() -> Result<()> {
    // A call runs on the thread that handles the event: a guest that
    // waits (here, an hour's sleep on a WASI clock) would hold that thread.
    // It traps instead, without waiting for the deadline (which is an hour
    // here), and on a Tokio worker, where wasmtime-wasi's own blocking
    // functions would panic.
    let mut config = misbehave_config();
    config.policy_limits.call_deadline = Duration::from_secs(3600);
    let server = TestServer::start(config).await?;
    let mut bystander = join(&server, "bystander").await?;
    let mut sleeper = join(&server, "sleeper").await?;

    for request in ["sleep", "poll"] {
        let message = provoke(&mut sleeper, request).await?;
        ensure!(
            message.contains("tried to wait") && message.contains("cannot block"),
            "{request}: {message}"
        );
    }
    // What completes at once still works: the log takes writes at once,
    // stdin is empty.
    sleeper.send_text("print").await?;
    ensure!(sleeper.recv_text().await? == "printed");
    sleeper.send_text("stdin").await?;
    let stdin = sleeper.recv_text().await?;
    ensure!(stdin == "stdin: 0 bytes", "{stdin}");

    echo(&mut sleeper, "hello").await?;
    echo(&mut bystander, "hello").await?;
    finish(server, vec![sleeper, bystander]).await
}

#[tokio::test]
async fn more_waiting_guests_than_the_pool_holds() -> Result<()> {
    // Every one of more sleepers than the pool holds gets exactly one
    // policy-failed, and the slots all come back.
    let config = loop_config();
    let n = config.policy_limits.pool_instances as usize + 16;
    let server = TestServer::start(config).await?;
    let mut sleepers = Vec::new();
    for i in 0..n {
        sleepers.push(join(&server, &format!("sleeper-{i}")).await?);
    }
    for s in &mut sleepers {
        s.send_text("sleep").await?;
    }
    for (i, s) in sleepers.iter_mut().enumerate() {
        expect_failed(s)
            .await
            .with_context(|| format!("sleeper-{i}"))?;
    }
    for (i, s) in sleepers.iter_mut().enumerate() {
        echo(s, &format!("sleeper-{i} again")).await?;
    }
    let newcomer = join(&server, "newcomer").await?;
    sleepers.push(newcomer);
    finish(server, sleepers).await
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_cap() -> Result<()> {
    let config = sandbox_config();
    let cap = config.policy_limits.memory_bytes;
    let server = TestServer::start(config).await?;
    let mut bystander = join(&server, "bystander").await?;
    let mut hoarder = join(&server, "hoarder").await?;

    // A bounded allocation well within the cap is fine…
    echo_reply(&mut hoarder, "alloc 8", "allocated 8").await?;
    // …an unbounded one stops at the cap.
    let message = provoke(&mut hoarder, "alloc").await?;
    ensure!(message.contains("memory limit"), "message: {message}");
    ensure!(message.contains(&cap.to_string()), "message: {message}");

    echo(&mut hoarder, "hello").await?;
    echo(&mut bystander, "hello").await?;
    // Twice: the replacement instance has its whole budget again.
    let again = provoke(&mut hoarder, "alloc").await?;
    ensure!(again == message, "{again} != {message}");
    echo(&mut hoarder, "hello again").await?;
    finish(server, vec![hoarder, bystander]).await
}

#[tokio::test]
async fn unbounded_allocation_hits_a_smaller_configured_cap() -> Result<()> {
    let cap = 4 * 1024 * 1024;
    let mut config = sandbox_config();
    config.policy_limits.memory_bytes = cap;
    let server = TestServer::start(config).await?;
    let mut hoarder = join(&server, "hoarder").await?;

    echo_reply(&mut hoarder, "alloc 1", "allocated 1").await?;
    // 8 MiB fits the default cap (see the test above) but not this one: the
    // configured cap is the one enforced, not just the one reported.
    for request in ["alloc 8", "alloc"] {
        let message = provoke(&mut hoarder, request).await?;
        ensure!(message.contains("memory limit"), "{request}: {message}");
        ensure!(
            message.contains(&format!("({cap} bytes)")),
            "{request}: message does not name the 4 MiB cap: {message}"
        );
        echo(&mut hoarder, "hello").await?;
    }
    finish(server, vec![hoarder]).await
}

#[tokio::test]
async fn too_many_actions_are_all_discarded() -> Result<()> {
    let config = sandbox_config();
    let limit = config.policy_limits.max_actions;
    let server = TestServer::start(config).await?;
    let mut spammer = join(&server, "spammer").await?;

    spammer.send_text("spam").await?;
    spammer.send_text("after spam").await?;
    let message = expect_failed(&mut spammer).await?;
    ensure!(
        message.contains("10000 actions") && message.contains(&format!("limit {limit}")),
        "message does not name the action limit: {message}"
    );
    // Not one of the 10,000 replies got through: the next frame is the echo.
    let next = spammer.recv_text().await?;
    ensure!(next == "after spam", "expected the echo, got {next:?}");
    finish(server, vec![spammer]).await
}

/// The control for the test above: with the limit raised, the same guest
/// answer is delivered in full and in order, so it was the limit that
/// discarded it.
#[tokio::test]
async fn spam_within_a_raised_action_limit_is_delivered() -> Result<()> {
    let mut config = sandbox_config();
    config.policy_limits.max_actions = 10_000;
    config.limits.outbound_queue_frames = 20_000;
    let server = TestServer::start(config).await?;
    let mut spammer = join(&server, "spammer").await?;

    spammer.send_text("spam").await?;
    for i in 0..10_000 {
        let got = spammer.recv_text().await?;
        ensure!(got == i.to_string(), "reply {i}: got {got:?}");
    }
    echo(&mut spammer, "after spam").await?;
    finish(server, vec![spammer]).await
}

#[tokio::test]
async fn guest_output_goes_to_the_log() -> Result<()> {
    let server = TestServer::start(sandbox_config()).await?;
    let mut bystander = join(&server, "bystander").await?;
    let mut printer = join(&server, "printer").await?;
    // Many times: output that blocked or filled a pipe would show up here.
    for _ in 0..20 {
        echo_reply(&mut printer, "print", "printed").await?;
    }
    echo(&mut printer, "hello").await?;
    echo(&mut bystander, "hello").await?;
    finish(server, vec![printer, bystander]).await
}

#[tokio::test]
async fn on_connect_trap_and_reject_refuse_the_handshake() -> Result<()> {
    let server = TestServer::start(sandbox_config()).await?;
    let mut bystander = join(&server, "bystander").await?;

    ensure!(server.refused_status("/ws/connect-trap").await? == 500);
    let r = server.raw_upgrade("/ws/connect-trap").await?;
    let (status, body) = (r.status, r.body);
    ensure!(status == 500, "status {status}");
    ensure!(
        body.starts_with("policy-failed:") && body.contains("trapped"),
        "body: {body:?}"
    );
    ensure!(!server.registry.is_online("connect-trap"));

    ensure!(server.refused_status("/ws/reject-me").await? == 403);
    let r = server.raw_upgrade("/ws/reject-me").await?;
    let (status, body) = (r.status, r.body);
    ensure!(status == 403, "status {status}");
    ensure!(
        body.trim_end_matches('\n') == "rejected by policy",
        "body: {body:?}"
    );
    ensure!(!server.registry.is_online("reject-me"));

    // The server carries on, for old and new clients alike.
    echo(&mut bystander, "hello").await?;
    let mut newcomer = join(&server, "newcomer").await?;
    echo(&mut newcomer, "hello").await?;
    finish(server, vec![bystander, newcomer]).await
}

#[tokio::test]
async fn repeated_traps_exhaust_nothing() -> Result<()> {
    // 100 traps, each of which discards an instance: more than the default
    // pool holds (64), so a leaked slot would show up as a failed call.
    let config = without_rate_limits(sandbox_config());
    ensure!(config.policy_limits.pool_instances < 100);
    let server = TestServer::start(config).await?;
    let mut c = join(&server, "alternating").await?;

    // All sent before any answer is read: the answers must come in order.
    for i in 0..200 {
        if i % 2 == 0 {
            c.send_text("trap").await?;
        } else {
            c.send_text(&format!("echo {i}")).await?;
        }
    }
    for i in 0..200 {
        let got = c.recv_text().await?;
        if i % 2 == 0 {
            let v = parse_failed(&got).with_context(|| format!("answer {i}"))?;
            let message = v["message"].as_str().unwrap_or_default();
            ensure!(message.contains("trapped"), "answer {i}: {message}");
        } else {
            ensure!(got == format!("echo {i}"), "answer {i}: {got:?}");
        }
    }
    echo(&mut c, "done").await?;
    finish(server, vec![c]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_loops_do_not_starve_others() -> Result<()> {
    // The steady client sends as fast as its echoes come back, for as long
    // as the loops take: this is about starving, not rates.
    let server = TestServer::start(without_rate_limits(loop_config())).await?;
    let mut spinners = Vec::new();
    for i in 0..8 {
        spinners.push(join(&server, &format!("spinner-{i}")).await?);
    }
    let mut steady = join(&server, "steady").await?;

    for s in &mut spinners {
        s.send_text("loop").await?;
    }
    // The steady client echoes all along, until every spinner has its answer.
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    let steady_task = tokio::spawn(async move {
        let mut sent = 0u32;
        loop {
            echo(&mut steady, &format!("steady {sent}")).await?;
            sent += 1;
            if *done_rx.borrow_and_update() {
                return anyhow::Ok((steady, sent));
            }
        }
    });
    let answers = join_all(spinners.iter_mut().map(expect_failed)).await;
    let _ = done_tx.send(true);
    for (i, answer) in answers.into_iter().enumerate() {
        let message = answer.with_context(|| format!("spinner-{i}"))?;
        ensure!(
            message.contains("out of time")
                && message.contains(&format!("{} ms", LOOP_DEADLINE.as_millis())),
            "spinner-{i}: {message}"
        );
    }
    let (steady, _echoes) = steady_task.await??;

    // Everyone carries on, and the server still accepts newcomers.
    for (i, s) in spinners.iter_mut().enumerate() {
        echo(s, &format!("spinner-{i} again")).await?;
    }
    let mut newcomer = join(&server, "newcomer").await?;
    echo(&mut newcomer, "hello").await?;
    spinners.push(steady);
    spinners.push(newcomer);
    finish(server, spinners).await
}

#[tokio::test]
async fn policy_failed_echoes_the_ref() -> Result<()> {
    let server = TestServer::start(sandbox_config()).await?;
    let mut c = join(&server, "refs").await?;

    // The guest echoes JSON that does not ask for a trap.
    echo(&mut c, r#"{"type":"say","ref":"r-0"}"#).await?;

    c.send_text(r#"{"type":"trap","ref":"r-1"}"#).await?;
    let v = parse_failed(&c.recv_text().await?)?;
    ensure!(v["ref"] == json!("r-1"), "{v}");
    ensure!(
        v["message"].as_str().is_some_and(|m| m.contains("trapped")),
        "{v}"
    );

    c.send_text(r#"{"type":"trap","ref":42}"#).await?;
    let v = parse_failed(&c.recv_text().await?)?;
    ensure!(v["ref"] == json!(42), "{v}");

    // No ref, no ref in the answer.
    c.send_text(r#"{"type":"trap"}"#).await?;
    expect_failed(&mut c).await?;

    echo(&mut c, "hello").await?;
    finish(server, vec![c]).await
}

/// Send `text` and return the next frame (text).
async fn ask(c: &mut Client, text: &str) -> Result<String> {
    c.send_text(text).await?;
    c.recv_text().await
}

#[tokio::test]
async fn the_guest_cannot_open_a_socket_or_resolve_a_name() -> Result<()> {
    // Listeners the guest is told to reach: if it got through, its
    // connection (or datagram) would be waiting here by the time it replies.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
    tcp.set_nonblocking(true)?;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
    udp.set_nonblocking(true)?;
    let server = TestServer::start(sandbox_config()).await?;
    let mut c = join(&server, "escaper").await?;

    let answer = ask(&mut c, &format!("tcp {}", tcp.local_addr()?.port())).await?;
    ensure!(
        answer.starts_with("tcp: ") && answer != "tcp: connected",
        "TCP: {answer}"
    );
    let answer = ask(&mut c, &format!("udp {}", udp.local_addr()?.port())).await?;
    ensure!(
        answer.starts_with("udp: ") && answer != "udp: sent",
        "UDP: {answer}"
    );
    let answer = ask(&mut c, "dns").await?;
    ensure!(
        answer.starts_with("dns: ") && !answer.starts_with("dns: resolved"),
        "name lookup: {answer}"
    );

    let accepted = tcp.accept();
    ensure!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the listener saw a connection: {accepted:?}"
    );
    let mut buf = [0u8; 64];
    let received = udp.recv_from(&mut buf);
    ensure!(
        matches!(&received, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the UDP socket got a datagram: {received:?}"
    );
    echo(&mut c, "still here").await?;
    finish(server, vec![c]).await
}

#[tokio::test]
async fn the_resource_table_is_bounded_and_a_full_instance_is_replaced() -> Result<()> {
    let limit = 64;
    let mut config = sandbox_config();
    config.policy_limits.max_resources = limit;
    let server = TestServer::start(config).await?;
    let mut bystander = join(&server, "bystander").await?;
    let mut hoarder = join(&server, "hoarder").await?;

    // Taking resources without end stops at the bound, for this call only.
    let message = provoke(&mut hoarder, "resources").await?;
    ensure!(
        message.contains("resource limit") && message.contains(&format!("({limit} handles)")),
        "message: {message}"
    );
    echo(&mut hoarder, "hello").await?;
    // More than the bound in one call fails too…
    let message = provoke(&mut hoarder, "resources 100").await?;
    ensure!(message.contains("resource limit"), "message: {message}");
    echo(&mut hoarder, "hello").await?;
    // …while holding most of it is allowed (a clock pollable takes two
    // entries), but the instance that holds them is not used again: the
    // same request twice succeeds, where a reused instance would need 80.
    echo_reply(&mut hoarder, "resources 20", "held 20").await?;
    echo_reply(&mut hoarder, "resources 20", "held 20").await?;
    echo(&mut bystander, "hello").await?;
    finish(server, vec![hoarder, bystander]).await
}

#[tokio::test]
async fn every_string_of_the_answer_counts_toward_the_byte_cap() -> Result<()> {
    let mut config = sandbox_config();
    config.policy_limits.max_output_bytes = 64 * 1024;
    let server = TestServer::start(config).await?;
    let mut c = join(&server, "joiner").await?;

    // 10 joins with 1000-byte room names: within the cap.
    echo_reply(&mut c, "join 10 1000", "joined 10").await?;
    // 100 of them are 100 kB of room names: no frame at all, and still
    // over the cap.
    let message = provoke(&mut c, "join 100 1000").await?;
    ensure!(
        message.contains("bytes") && message.contains("limit 65536"),
        "message: {message}"
    );
    ensure!(
        server.registry.rooms_of("joiner").len() == 10,
        "the refused joins were applied"
    );
    echo(&mut c, "hello").await?;
    finish(server, vec![c]).await
}

#[tokio::test]
async fn an_answer_is_measured_before_it_is_copied_out() -> Result<()> {
    let mut config = sandbox_config();
    config.policy_limits.max_actions = 200_000;
    config.policy_limits.memory_bytes = 64 * 1024 * 1024;
    let cap = config.policy_limits.max_output_bytes;
    let server = TestServer::start(config).await?;
    let mut c = join(&server, "aliaser").await?;

    // 100,000 replies all pointing at one 8 MiB string: 16 MiB of guest
    // memory, 800 GiB if the host copied it. The host must refuse it by
    // its measured size, which it could not have reached by copying.
    let total: u64 = 100_000 * 8 * 1024 * 1024;
    let message = provoke(&mut c, "alias 100000 8192").await?;
    ensure!(
        message.contains(&format!("returned {total} bytes"))
            && message.contains(&format!("limit {cap}")),
        "message: {message}"
    );
    // A small alias list is fine (and the instance served on).
    echo_reply(&mut c, "alias 1 1", &"x".repeat(1024)).await?;
    echo(&mut c, "hello").await?;
    finish(server, vec![c]).await
}

#[tokio::test]
async fn answers_a_client_can_push_over_the_caps_do_not_roll_back_a_swap() -> Result<()> {
    let mut config = sandbox_config();
    config.policy_limits.rollback_failures = 3;
    config.policy_limits.rollback_window = Duration::from_secs(3600);
    let server = TestServer::start(config).await?;
    let bytes = std::fs::read(switchboard_tests::misbehave_wasm())?;
    let swapped = server.policy.swap(bytes, "misbehave again").await?;
    let mut c = join(&server, "pusher").await?;

    // Many more over-limit answers than the rollback threshold: too many
    // actions, too many bytes. Each is the sender's policy-failed…
    for i in 0..10 {
        let message = provoke(&mut c, "spam").await?;
        ensure!(message.contains("actions"), "spam {i}: {message}");
        let message = provoke(&mut c, "big 2000000").await?;
        ensure!(message.contains("bytes"), "big {i}: {message}");
    }
    // …but the swapped-in version stays.
    let status = server.policy.status();
    ensure!(
        status.active.info.seq == swapped.active.seq && status.last_rollback.is_none(),
        "rolled back by client-provoked answers: {status:?}"
    );
    ensure!(status.active.failures >= 20, "failures: {status:?}");

    // Traps are the version's own failures: they still roll it back.
    for _ in 0..3 {
        provoke(&mut c, "trap").await?;
    }
    let status = server.policy.status();
    let rollback = status
        .last_rollback
        .clone()
        .context("no rollback after 3 traps")?;
    ensure!(
        rollback.automatic && rollback.from == swapped.active.seq,
        "{rollback:?}"
    );
    ensure!(status.active.info.seq == swapped.previous.seq, "{status:?}");
    echo(&mut c, "hello").await?;
    finish(server, vec![c]).await
}

#[tokio::test]
async fn wasi_clocks_read_the_replay_clock() -> Result<()> {
    use switchboard::chat::record::{Event, Recorded};
    use switchboard::ops::{Outcome, Replay};
    use switchboard::policy::{Action, Frame};

    let bytes = std::fs::read(switchboard_tests::misbehave_wasm())?;
    let limits = switchboard::config::PolicyLimits {
        call_deadline: GENEROUS_DEADLINE,
        ..Default::default()
    };
    let mut replay = Replay::new(bytes, "misbehave", limits).await?;
    let connect = Recorded {
        t: 1_000,
        event: Event::Connect {
            id: "timer".into(),
            remote_addr: "127.0.0.1:1".into(),
            path: "/ws/timer".into(),
            query: None,
            headers: Vec::new(),
            secure: false,
            claims: None,
            session: String::new(),
            resumed: false,
        },
    };
    replay.step(&connect).await;
    // A time far from now: the WASI wall clock (SystemTime), the WASI
    // monotonic clock and the `clock` import all read the recorded time.
    for t in [1_234_567_890_123u64, 1_234_567_890_124] {
        let message = Recorded {
            t,
            event: Event::Message {
                id: "timer".into(),
                text: Some("clock".into()),
                binary: None,
            },
        };
        let expected = format!("clock {t} {} {t}", t * 1_000_000);
        match replay.step(&message).await {
            Outcome::Actions(actions) => ensure!(
                actions == vec![Action::Reply(Frame::Text(expected.clone()))],
                "at {t}: {actions:?}, expected {expected}"
            ),
            other => anyhow::bail!("at {t}: {other:?}"),
        }
    }
    Ok(())
}
