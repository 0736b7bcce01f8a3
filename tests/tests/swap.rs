//! Hot swap: a policy replaced under live traffic loses, duplicates and
//! reorders nothing and drops no connection; a candidate that fails any
//! step never becomes active; a version that keeps failing right after a
//! swap is rolled back automatically; the admin interface wants its token
//! (made at start when none is configured) and refuses what a web page could
//! send;
//! superseded versions release their instances.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use switchboard::config::{AdminConfig, Config};
use switchboard::policy::DEFAULT_POLICY;
use switchboard_tests::{Client, TestServer, misbehave_wasm, tolerant_config, without_rate_limits};
use tokio::sync::watch;

const TOKEN: &str = "test-token-0123456789abcdef";

/// A tolerant config with an admin interface on port 0 that wants TOKEN.
fn admin_config() -> Config {
    switchboard_tests::with_admin(tolerant_config(), TOKEN)
}

fn parse(body: &str) -> Result<Value> {
    serde_json::from_str(body).with_context(|| format!("not JSON: {body}"))
}

/// `GET /admin/policy`, which must succeed.
async fn status(server: &TestServer) -> Result<Value> {
    server.policy_status(TOKEN).await
}

/// `PUT /admin/policy`; returns the HTTP status and the parsed answer.
async fn swap(server: &TestServer, bytes: Vec<u8>, name: &str) -> Result<(u16, Value)> {
    server.policy_swap(TOKEN, bytes, name).await
}

/// Join `room` and read up to this client's own ack (skipping the `joined`
/// notices other members' joins caused).
async fn join_room(c: &mut Client, room: &str) -> Result<()> {
    c.send_json(json!({"type": "join", "room": room, "ref": "j"}))
        .await?;
    loop {
        let v = c.recv_json().await?;
        if v["type"] == "ack" && v["ref"] == "j" {
            return Ok(());
        }
        ensure!(v["type"] == "joined", "unexpected frame while joining: {v}");
    }
}

/// Per-sender sequence numbers a client has seen, checked as they arrive.
#[derive(Default)]
struct Seen {
    next: HashMap<String, u64>,
}

impl Seen {
    /// Record a frame; room messages must arrive exactly once, in order.
    fn take(&mut self, me: &str, v: &Value) -> Result<()> {
        match v["type"].as_str() {
            Some("room") => {
                let from = v["from"].as_str().context("room message without from")?;
                let seq = v["data"]["seq"]
                    .as_u64()
                    .context("room message without seq")?;
                let next = self.next.entry(from.to_owned()).or_insert(0);
                ensure!(
                    seq == *next,
                    "{me} got seq {seq} from {from}, expected {next} (lost, duplicated or reordered)"
                );
                *next += 1;
                Ok(())
            }
            Some("joined") => Ok(()),
            _ => bail!("{me}: unexpected frame {v}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_under_live_traffic_lose_duplicate_reorder_and_drop_nothing() -> Result<()> {
    const CLIENTS: usize = 6;
    const PER_SENDER: u64 = 150;
    const SWAPS: u64 = 4;
    // 150 messages a sender as fast as acks come: swaps, not rates, are
    // tested here.
    let mut config = without_rate_limits(admin_config());
    config.policy_limits.rollback_failures = 0;
    let server = TestServer::start(config).await?;
    let ids: Vec<String> = (0..CLIENTS).map(|i| format!("c{i}")).collect();
    let mut clients = Vec::new();
    for id in &ids {
        let mut c = server.join(id).await?;
        join_room(&mut c, "r").await?;
        clients.push(c);
    }

    // Swap k starts once every sender has passed gate(k); senders keep
    // sending for half a gate more while it is compiled and published, and
    // wait for it only then, so each swap meets live traffic and traffic
    // goes on after it.
    let (swapped_tx, swapped_rx) = watch::channel(0u64);
    let (acked, mut acked_rx) = watch::channel(0usize);
    let acked = Arc::new(acked);
    let gate = |k: u64| k * PER_SENDER / (SWAPS + 1);
    let mut tasks = Vec::new();
    for (mut c, id) in clients.into_iter().zip(ids.clone()) {
        let mut swapped = swapped_rx.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            for seq in 0..PER_SENDER {
                let k = (1..=SWAPS)
                    .filter(|&k| seq >= gate(k) + gate(1) / 2)
                    .count() as u64;
                swapped.wait_for(|&done| done >= k).await?;
                c.send_json(json!({"type": "room", "room": "r", "data": {"seq": seq}, "ref": seq}))
                    .await?;
                loop {
                    let v = c.recv_json().await?;
                    if v["type"] == "ack" {
                        ensure!(v["ref"] == seq, "{id}: ack {v} for message {seq}");
                        break;
                    }
                    seen.take(&id, &v)?;
                }
                acked.send_modify(|n| *n += 1);
            }
            Ok::<_, anyhow::Error>((c, id, seen))
        }));
    }

    for k in 1..=SWAPS {
        // Wait (on the acks, not a timer) until traffic reaches this gate.
        let target = CLIENTS * gate(k) as usize;
        tokio::time::timeout(switchboard_tests::WAIT, acked_rx.wait_for(|&n| n >= target))
            .await
            .with_context(|| format!("traffic stalled before swap {k}"))??;
        let (code, report) = swap(&server, DEFAULT_POLICY.to_vec(), &format!("swap-{k}")).await?;
        ensure!(code == 200, "swap {k} answered {code}: {report}");
        ensure!(report["active"]["seq"] == k + 1, "swap {k}: {report}");
        swapped_tx.send(k)?;
    }

    let mut finished = Vec::new();
    for t in tasks {
        finished.push(t.await??);
    }
    // Everything each sender sent is acked, so it is queued to every other
    // member: drain reads exactly that.
    for (c, id, seen) in &mut finished {
        for v in c.drain().await? {
            seen.take(id, &v)?;
        }
        for other in &ids {
            let got = seen.next.get(other).copied().unwrap_or(0);
            let want = if other == id { 0 } else { PER_SENDER };
            ensure!(
                got == want,
                "{id} received {got} messages from {other}, want {want}"
            );
        }
    }
    ensure!(
        server.registry.online_count() == CLIENTS,
        "a client was dropped during the swaps"
    );
    let s = status(&server).await?;
    ensure!(s["active"]["seq"] == SWAPS + 1, "{s}");
    ensure!(s["active"]["published_by"] == "swap", "{s}");
    ensure!(
        s["previous"]["instances"] == 0,
        "the superseded version still holds instances: {s}"
    );
    for (c, _, _) in finished {
        c.close().await?;
    }
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_fails_any_step_never_becomes_active() -> Result<()> {
    let server = TestServer::start(admin_config()).await?;
    let mut alice = server.join("alice").await?;
    let before = status(&server).await?;

    let not_wasm = b"definitely not a component".to_vec();
    let wrong_world = wat::parse_str("(component)")?;
    let traps = std::fs::read(env!("TRAP_AT_START_WASM"))?;
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("not-wasm", not_wasm, "compile"),
        ("wrong-world", wrong_world, "world"),
        ("traps-at-start", traps, "instantiate"),
    ];
    for (name, bytes, step) in cases {
        let (code, answer) = swap(&server, bytes, name).await?;
        ensure!(code == 422, "{name}: answered {code}: {answer}");
        ensure!(
            answer["error"] == step,
            "{name}: expected step {step}: {answer}"
        );
        let message = answer["message"].as_str().unwrap_or_default();
        ensure!(!message.is_empty(), "{name}: no reason given: {answer}");
        let now = status(&server).await?;
        ensure!(
            now["active"]["seq"] == before["active"]["seq"]
                && now["active"]["sha256"] == before["active"]["sha256"],
            "{name} changed the active version: {now}"
        );
        ensure!(
            now["previous"].is_null(),
            "{name} displaced nothing, yet: {now}"
        );
    }
    let (code, body) = server
        .admin(Some(TOKEN))?
        .request(switchboard::ops::Method::Put(Vec::new()), "/admin/policy")
        .await
        .map_err(anyhow::Error::msg)?;
    ensure!(code == 400, "an empty upload answered {code}: {body}");
    // The server still serves the original rules.
    alice.expect_idle().await?;
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_traps_on_every_message_is_rolled_back_automatically() -> Result<()> {
    let mut config = admin_config();
    config.policy_limits.rollback_failures = 3;
    let server = TestServer::start(config).await?;
    let mut alice = server.join("alice").await?;
    let (code, report) = swap(&server, std::fs::read(misbehave_wasm())?, "misbehave").await?;
    ensure!(code == 200, "{report}");

    for i in 0..3 {
        alice.send_text("trap").await?;
        let v = alice.recv_json().await?;
        ensure!(v["code"] == "policy-failed", "message {i}: {v}");
    }
    let s = status(&server).await?;
    ensure!(s["active"]["seq"] == 1, "not rolled back: {s}");
    ensure!(s["active"]["published_by"] == "auto-rollback", "{s}");
    let rb = &s["last_rollback"];
    ensure!(
        rb["automatic"] == true && rb["from"] == 2 && rb["to"] == 1,
        "{s}"
    );
    ensure!(
        rb["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("3 failed calls"),
        "{s}"
    );
    // The default rules answer again, on the same connection.
    alice.expect_idle().await?;
    ensure!(server.registry.online_count() == 1);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_rollback_restores_the_previous_version() -> Result<()> {
    let server = TestServer::start(admin_config()).await?;
    let admin = server.admin(Some(TOKEN))?;
    let (code, body) = admin.rollback().await.map_err(anyhow::Error::msg)?;
    ensure!(
        code == 409,
        "rollback with nothing to restore answered {code}: {body}"
    );

    let mut alice = server.join("alice").await?;
    let (code, report) = swap(&server, std::fs::read(misbehave_wasm())?, "misbehave").await?;
    ensure!(code == 200, "{report}");
    alice.send_text("hello").await?;
    ensure!(alice.recv_text().await? == "hello", "misbehave echoes");

    let (code, body) = admin.rollback().await.map_err(anyhow::Error::msg)?;
    ensure!(code == 200, "rollback answered {code}: {body}");
    let rb = parse(&body)?;
    ensure!(
        rb["from"] == 2 && rb["to"] == 1 && rb["automatic"] == false,
        "{rb}"
    );
    alice.expect_idle().await?;
    let s = status(&server).await?;
    ensure!(s["active"]["seq"] == 1 && s["previous"]["seq"] == 2, "{s}");
    ensure!(s["active"]["published_by"] == "rollback", "{s}");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_interface_refuses_missing_and_wrong_tokens() -> Result<()> {
    let server = TestServer::start(admin_config()).await?;
    let component = std::fs::read(misbehave_wasm())?;
    for token in [None, Some("wrong-token-0123456789")] {
        let admin = server.admin(token)?;
        let answers = [
            admin.status().await,
            admin.swap(component.clone(), "sneaky").await,
            admin.rollback().await,
        ];
        for answer in answers {
            let (code, body) = answer.map_err(anyhow::Error::msg)?;
            ensure!(code == 401, "token {token:?} answered {code}: {body}");
            ensure!(parse(&body)?["error"] == "unauthorized", "{body}");
        }
    }
    let s = status(&server).await?;
    ensure!(s["active"]["seq"] == 1 && s["previous"].is_null(), "{s}");
    // Health needs no token.
    let (code, body) = server
        .admin(None)?
        .request(switchboard::ops::Method::Get, "/healthz")
        .await
        .map_err(anyhow::Error::msg)?;
    ensure!(
        code == 200 && parse(&body)?["status"] == "ok",
        "{code} {body}"
    );
    server.shutdown().await
}

/// A directory of its own under the system temp dir, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Result<TempDir> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchboard-swap-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config whose admin interface has no token configured: the server makes
/// one and writes it to `token_file`.
fn tokenless_admin_config(token_file: std::path::PathBuf) -> Config {
    let mut c = tolerant_config();
    c.admin = Some(AdminConfig {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        token: None,
        token_file,
        ..AdminConfig::default()
    });
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_the_admin_interface_makes_one_and_wants_it() -> Result<()> {
    let dir = TempDir::new("token")?;
    // A directory that does not exist yet, and a stale file in another run's
    // place: both are handled.
    let token_file = dir.0.join("run").join("admin-token");
    let server = TestServer::start(tokenless_admin_config(token_file.clone())).await?;
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("no token file at {}", token_file.display()))?;
    let token = token.trim();
    ensure!(
        token.len() >= 16 && token.bytes().all(|b| b.is_ascii_graphic()),
        "{token:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| -> Result<u32> {
            Ok(std::fs::metadata(p)?.permissions().mode() & 0o777)
        };
        ensure!(
            mode(&token_file)? == 0o600,
            "file mode {:o}",
            mode(&token_file)?
        );
        ensure!(
            mode(&dir.0.join("run"))? == 0o700,
            "directory mode {:o}",
            mode(&dir.0.join("run"))?
        );
    }
    for wrong in [None, Some("wrong-token-0123456789")] {
        let (code, body) = server
            .admin(wrong)?
            .status()
            .await
            .map_err(anyhow::Error::msg)?;
        ensure!(code == 401, "token {wrong:?} answered {code}: {body}");
        let (code, body) = server
            .admin(wrong)?
            .rollback()
            .await
            .map_err(anyhow::Error::msg)?;
        ensure!(code == 401, "token {wrong:?} answered {code}: {body}");
    }
    let (code, body) = server
        .admin(Some(token))?
        .status()
        .await
        .map_err(anyhow::Error::msg)?;
    ensure!(code == 200, "the file's token answered {code}: {body}");
    ensure!(parse(&body)?["rules"] == "wasm", "{body}");
    server.shutdown().await?;

    // The next start makes a new token and replaces the file.
    let server = TestServer::start(tokenless_admin_config(token_file.clone())).await?;
    let second = std::fs::read_to_string(&token_file)?;
    ensure!(second.trim() != token, "the same token twice");
    let (code, _) = server
        .admin(Some(token))?
        .status()
        .await
        .map_err(anyhow::Error::msg)?;
    ensure!(code == 401, "the previous run's token still works");
    server.shutdown().await
}

/// One HTTP/1.1 request over a raw socket, so any `Host` and `Origin` can be
/// sent; the status and body of the answer.
async fn raw_request(addr: std::net::SocketAddr, head: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("{head}Content-Length: 0\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(switchboard_tests::WAIT, tcp.read_to_end(&mut raw))
        .await
        .context("no answer in time")??;
    let text = String::from_utf8(raw)?;
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP head")?;
    let status = switchboard_tests::http_status(head)?;
    Ok((status, body.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_a_web_page_could_make_are_refused() -> Result<()> {
    let server = TestServer::start(admin_config()).await?;
    let addr = server.admin_addr.context("admin")?;
    let port = addr.port();
    // Something to roll back to, so a rollback that ran would show.
    let (code, report) = swap(&server, std::fs::read(misbehave_wasm())?, "misbehave").await?;
    ensure!(code == 200, "{report}");
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");

    // CSRF: a page's form or fetch carries its Origin, even to 127.0.0.1.
    let (code, body) = raw_request(
        addr,
        &format!(
            "POST /admin/policy/rollback HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Origin: http://evil.example\r\n"
        ),
    )
    .await?;
    ensure!(code == 403, "{code} {body}");
    ensure!(parse(&body)?["error"] == "forbidden", "{body}");
    let s = status(&server).await?;
    ensure!(
        s["active"]["seq"] == 2 && s["last_rollback"].is_null(),
        "the refused rollback ran: {s}"
    );

    // DNS rebinding: the page's own name in Host, whatever the address.
    for (method, path) in [
        ("POST", "/admin/policy/rollback"),
        ("GET", "/admin/policy"),
        ("GET", "/healthz"),
    ] {
        for host in ["evil.example", &format!("evil.example:{port}")] {
            let (code, body) = raw_request(
                addr,
                &format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}"),
            )
            .await?;
            ensure!(code == 403, "{method} {path} Host {host}: {code} {body}");
            ensure!(parse(&body)?["error"] == "forbidden", "{body}");
        }
        let (code, body) = raw_request(
            addr,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: localhost:{port}\r\n{auth}Origin: null\r\n"
            ),
        )
        .await?;
        ensure!(code == 403, "{method} {path} with Origin: {code} {body}");
    }
    let s = status(&server).await?;
    ensure!(
        s["active"]["seq"] == 2 && s["last_rollback"].is_null(),
        "{s}"
    );

    // The same requests from a command-line client are served.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_owned(),
    ] {
        let (code, body) =
            raw_request(addr, &format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n")).await?;
        ensure!(code == 200, "Host {host}: {code} {body}");
        ensure!(parse(&body)?["rules"] == "wasm", "{body}");
    }
    let (code, body) = raw_request(
        addr,
        &format!("POST /admin/policy/rollback HTTP/1.1\r\nHost: localhost:{port}\r\n{auth}"),
    )
    .await?;
    ensure!(code == 200, "{code} {body}");
    let s = status(&server).await?;
    ensure!(
        s["active"]["seq"] == 1 && s["last_rollback"]["from"] == 2,
        "{s}"
    );
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_state_survives_a_swap() -> Result<()> {
    // The moderation example keeps mutes in the host-held state.
    let moderation = std::fs::read(env!("MODERATION_WASM"))?;
    let mut config = admin_config();
    config.policy = switchboard::config::PolicySource::Bytes {
        name: "moderation".into(),
        bytes: moderation.clone(),
    };
    let server = TestServer::start(config).await?;
    let mut moderator = server.join("mod-ann").await?;
    let mut alice = server.join("alice").await?;
    join_room(&mut alice, "lobby").await?;

    moderator
        .send_json(json!({"type": "room", "room": "lobby", "data": "/mute alice", "ref": 1}))
        .await?;
    ensure!(moderator.recv_json().await? == json!({"type": "ack", "ref": 1}));
    let attempt = |r: u64| json!({"type": "room", "room": "lobby", "data": "hi", "ref": r});
    alice.send_json(attempt(2)).await?;
    let v = alice.recv_json().await?;
    ensure!(v["code"] == "muted", "not muted before the swap: {v}");

    // A new version of the same rules (and then another): new instances,
    // same state.
    for k in 0..2 {
        let (code, report) = swap(&server, moderation.clone(), &format!("moderation-{k}")).await?;
        ensure!(code == 200, "{report}");
        alice.send_json(attempt(3 + k)).await?;
        let v = alice.recv_json().await?;
        ensure!(
            v["code"] == "muted" && v["ref"] == 3 + k,
            "the mute was lost by swap {k}: {v}"
        );
    }
    let s = status(&server).await?;
    ensure!(s["active"]["seq"] == 3, "{s}");
    server.shutdown().await
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused_in_json() -> Result<()> {
    let mut config = admin_config();
    if let Some(admin) = &mut config.admin {
        admin.max_upload_bytes = 4096;
    }
    let server = TestServer::start(config).await?;
    let (code, answer) = swap(&server, std::fs::read(misbehave_wasm())?, "big").await?;
    ensure!(
        code == 413 && answer["error"] == "too-large",
        "{code} {answer}"
    );
    ensure!(status(&server).await?["active"]["seq"] == 1);
    server.shutdown().await
}

#[tokio::test]
async fn a_call_in_progress_finishes_on_the_old_version() -> Result<()> {
    // A call runs on its caller's thread until it returns, so it is held
    // here on a thread of its own: the misbehave guest spins until `go` is
    // online, and meanwhile the policy is swapped.
    use switchboard::chat::outbound;
    use switchboard::chat::registry::Registry;
    use switchboard::config::PolicyLimits;
    use switchboard::policy::clock::Clock;
    use switchboard::policy::{Action, Frame, Policy, PolicyEnv};
    use switchboard::store::state::{StateLimits, StateStore};

    let limits = PolicyLimits {
        call_deadline: switchboard_tests::WAIT,
        ..PolicyLimits::default()
    };
    let registry = Registry::new();
    let env = PolicyEnv {
        registry: std::sync::Arc::new(registry.clone()),
        history: std::sync::Arc::new(switchboard::store::memory::MemoryHistory::new(
            Default::default(),
        )),
        state: std::sync::Arc::new(StateStore::new(StateLimits::from(&limits))),
        clock: Clock::System,
    };
    let policy = Policy::load(std::fs::read(misbehave_wasm())?, "misbehave", env, limits)?;
    let before = policy.status().active.calls;
    let held = policy.clone();
    let call =
        std::thread::spawn(move || held.on_message("alice", Frame::Text("wait-for go".into())));
    while policy.status().active.calls == before {
        ensure!(!call.is_finished(), "the call ended before it was seen");
        tokio::task::yield_now().await;
    }
    let report = policy.swap(DEFAULT_POLICY.to_vec(), "default").await?;
    ensure!(report.active.seq == 2, "{report:?}");
    let (outbox, _inbox) = outbound::channel(1, 16, 1 << 16);
    registry.register("go", outbox);
    let answer = call
        .join()
        .map_err(|_| anyhow::anyhow!("the call panicked"))??;
    // Version 1 answered (version 2 would have parsed it as JSON).
    ensure!(
        matches!(answer.as_slice(), [Action::Reply(Frame::Text(t))] if t == "go is online"),
        "{answer:?}"
    );
    // Its instance was not put back: version 1 holds none.
    let previous = policy.status().previous.context("a previous version")?;
    ensure!(previous.instances == 0, "{previous:?}");
    Ok(())
}
