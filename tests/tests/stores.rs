//! The chat layer only awaits its stores: a store whose every call waits
//! (as one kept in Redis would, for the network) changes nothing a client
//! sees. Every store here is the in-memory one behind a wrapper that makes
//! each call pending once before it answers; a resume, a recovering join
//! and a stored notice then behave exactly as with the embedded stores.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, ensure};
use async_trait::async_trait;
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard::net::server::Stores;
use switchboard::net::session::Kept;
use switchboard::store::history::{History, HistoryLimits, Page, Published, Recovery, Usage};
use switchboard::store::notices::{Mail, Notices, StoreError, StoredLimits};
use switchboard::store::sessions::{Claim, Held, Holding, Sessions};
use switchboard_tests::{Client, TestServer, tolerant_config, without_rate_limits};
use tokio::task::yield_now;

/// The history store whose every `async` call is pending once (it yields
/// to the runtime) before the wrapped store answers.
#[derive(Debug)]
struct LaterHistory(Arc<dyn History>);

#[async_trait]
impl History for LaterHistory {
    fn limits(&self) -> &HistoryLimits {
        self.0.limits()
    }
    async fn publish(&self, room: &str, frame: String) -> Published {
        yield_now().await;
        self.0.publish(room, frame).await
    }
    fn recover(&self, room: &str, since: Option<(&str, u64)>, upto: Option<u64>) -> Recovery {
        self.0.recover(room, since, upto)
    }
    fn read(&self, room: &str, before: Option<u64>, limit: usize) -> Page {
        self.0.read(room, before, limit)
    }
    fn top(&self, room: &str) -> (String, u64) {
        self.0.top(room)
    }
    async fn sweep(&self, in_use: &(dyn for<'r> Fn(&'r str) -> bool + Sync)) {
        yield_now().await;
        self.0.sweep(in_use).await
    }
    fn usage(&self) -> Usage {
        self.0.usage()
    }
}

/// [`LaterHistory`] for stored notices.
#[derive(Debug)]
struct LaterNotices(Arc<dyn Notices>);

#[async_trait]
impl Notices for LaterNotices {
    fn limits(&self) -> &StoredLimits {
        self.0.limits()
    }
    async fn store(
        &self,
        from: &str,
        to: &str,
        frame: Arc<str>,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        yield_now().await;
        self.0.store(from, to, frame, now).await
    }
    async fn take(&self, id: &str, now: SystemTime) -> Mail {
        yield_now().await;
        self.0.take(id, now).await
    }
    async fn expire_all(&self, now: SystemTime) {
        yield_now().await;
        self.0.expire_all(now).await
    }
    fn bytes(&self) -> usize {
        self.0.bytes()
    }
}

/// [`LaterHistory`] for held sessions.
#[derive(Debug)]
struct LaterSessions(Arc<dyn Sessions<Kept>>);

#[async_trait]
impl Sessions<Kept> for LaterSessions {
    async fn hold(&self, id: &str, held: Held<Kept>, max: usize) -> Holding<Kept> {
        yield_now().await;
        self.0.hold(id, held, max).await
    }
    async fn claim(&self, id: &str, session: Option<&str>) -> Claim<Kept> {
        yield_now().await;
        self.0.claim(id, session).await
    }
    async fn release(&self, id: &str, serial: u64) -> Option<Held<Kept>> {
        yield_now().await;
        self.0.release(id, serial).await
    }
    fn is_held(&self, id: &str) -> bool {
        self.0.is_held(id)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

fn config() -> Config {
    let mut c = without_rate_limits(tolerant_config());
    c.recovery.resume_window = Duration::from_secs(120);
    c
}

/// The embedded stores, each behind its `Later…` wrapper.
fn later_stores(config: &Config) -> Stores {
    let memory = Stores::memory(&config.recovery);
    Stores {
        link: memory.link,
        history: Arc::new(LaterHistory(memory.history)),
        notices: Arc::new(LaterNotices(memory.notices)),
        sessions: Arc::new(LaterSessions(memory.sessions)),
    }
}

async fn connect(server: &TestServer, path: &str) -> Result<(Client, Value)> {
    let mut c = server.connect_path(path).await?;
    let welcome = c.recv_v2().await?;
    ensure!(welcome["type"] == "welcome", "{welcome}");
    Ok((c, welcome))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_that_wait_change_nothing_a_client_sees() -> Result<()> {
    let config = config();
    let stores = later_stores(&config);
    let server = TestServer::start_with(config, stores).await?;

    // A stored notice for an id that is not online, handed over after its
    // welcome.
    let (mut bob, _) = connect(&server, "/ws/bob").await?;
    let ack = ask(
        &mut bob,
        json!({"type": "notice", "to": "alice", "data": "early", "store": true}),
        "s",
    )
    .await?;
    ensure!(ack["stored"] == true, "{ack}");
    let (mut alice, welcome) = connect(&server, "/ws/alice").await?;
    let session = welcome["session"].as_str().context("session")?.to_owned();
    let stored = alice.recv_v2().await?;
    ensure!(
        stored["data"] == "early" && stored["stored_at"].is_string(),
        "{stored}"
    );

    // Room history: offsets, and a recovering join.
    for c in [&mut alice, &mut bob] {
        let ack = ask(c, json!({"type": "join", "room": "r"}), "j").await?;
        ensure!(ack["type"] == "ack", "{ack}");
    }
    for i in 0..5 {
        bob.send_json(json!({"type": "room", "room": "r", "data": i}))
            .await?;
    }
    let mut last = 0;
    for i in 0..5 {
        let mut m = alice.recv_v2().await?;
        while m["type"] == "joined" {
            m = alice.recv_v2().await?;
        }
        ensure!(m["data"] == i && m["offset"].as_u64() > Some(last), "{m}");
        last = m["offset"].as_u64().context("offset")?;
    }
    let (mut carol, _) = connect(&server, "/ws/carol").await?;
    let epoch = alice_epoch(&mut alice).await?;
    let ack = ask(
        &mut carol,
        json!({"type": "join", "room": "r", "since": {"epoch": epoch, "offset": last - 2}}),
        "c",
    )
    .await;
    // The replay came before the ack; `ask` skipped it, so look at the ack.
    let ack = ack?;
    ensure!(ack["recovered"] == true, "{ack}");

    // A resume: the socket dies, messages and a notice are missed, all of
    // them come back once, in order.
    drop(alice);
    server.until_held("alice").await?;
    let mut sent = Vec::new();
    for i in 10..20 {
        bob.send_json(json!({"type": "room", "room": "r", "data": i}))
            .await?;
        sent.push(json!(i));
    }
    let ack = ask(
        &mut bob,
        json!({"type": "notice", "to": "alice", "data": "while away"}),
        "n",
    )
    .await?;
    ensure!(ack["held"] == true, "{ack}");
    sent.push(json!("while away"));
    let (mut alice, welcome) = connect(&server, &format!("/ws/alice?resume={session}")).await?;
    ensure!(welcome["resumed"] == true, "{welcome}");
    let got: Vec<Value> = alice
        .drain_v2()
        .await?
        .into_iter()
        .filter(|v| v["type"] == "room" || v["type"] == "notice")
        .map(|v| v["data"].clone())
        .collect();
    ensure!(got == sent, "missed {sent:?}\ngot {got:?}");
    server.shutdown().await
}

/// The room's epoch, from a `history` answer.
async fn alice_epoch(alice: &mut Client) -> Result<String> {
    let page = ask(
        alice,
        json!({"type": "history", "room": "r", "limit": 1}),
        "h",
    )
    .await?;
    Ok(page["epoch"].as_str().context("epoch")?.to_owned())
}

/// Several senders in one room, their messages numbered by a store that
/// answers late (so two of them can be numbered in one order and handed to
/// the dispatcher in the other): every member gets every message once, the
/// offsets rising by exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_reaches_its_members_in_offset_order_whoever_sends() -> Result<()> {
    let config = config();
    let stores = later_stores(&config);
    let server = TestServer::start_with(config, stores).await?;
    let (mut listener, _) = connect(&server, "/ws/listener").await?;
    ask(&mut listener, json!({"type": "join", "room": "busy"}), "j").await?;
    const SENDERS: usize = 4;
    const EACH: usize = 150;
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let (mut c, _) = connect(&server, &format!("/ws/s{s}")).await?;
        ask(&mut c, json!({"type": "join", "room": "busy"}), "j").await?;
        senders.push(c);
    }
    let mut tasks = Vec::new();
    for (s, mut c) in senders.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                c.send_json(json!({"type": "room", "room": "busy", "data": [s, i]}))
                    .await?;
            }
            // The last one answered: every one before it was handled.
            ask(&mut c, json!({"type": "ping"}), "done").await?;
            Ok::<_, anyhow::Error>(c)
        }));
    }
    for t in tasks {
        t.await??;
    }
    let mut next = None;
    let mut per_sender = [0usize; SENDERS];
    let mut got = 0;
    while got < SENDERS * EACH {
        let v = listener.recv_v2().await?;
        if v["type"] != "room" {
            continue;
        }
        let offset = v["offset"].as_u64().context("offset")?;
        if let Some(n) = next {
            ensure!(offset == n, "offset {offset} where {n} was due: {v}");
        }
        next = Some(offset + 1);
        let s = v["data"][0].as_u64().context("sender")? as usize;
        let i = v["data"][1].as_u64().context("index")? as usize;
        ensure!(i == per_sender[s], "sender {s}'s order broken: {v}");
        per_sender[s] += 1;
        got += 1;
    }
    server.shutdown().await
}
