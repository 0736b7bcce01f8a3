//! docs/PROTOCOL.md's examples are what the server does: a blind check.
//!
//! The doc is read at test time. Every fenced block with `→`/`←` lines is
//! cut into exchanges (blank lines separate them) and each one runs on a
//! fresh server: `alice` sends the `→` frames as written, and every client
//! the example shows gets exactly the `←` frames shown for it — nothing
//! more, nothing less, in that order (comparing parsed JSON). Only the scene each example assumes
//! ("bob already in lobby", "carol offline", …) is written here, in
//! [`SCENES`]; the frames all come from the doc, so an example that stops
//! being true fails this test, and so does a new example nobody gave a
//! scene to.
//!
//! Values that are random or depend on time are wildcards: `session`,
//! `epoch` and `stored_at` must be strings (`stored_at` RFC 3339), an
//! `offset` any non-negative integer, where the doc shows one and only
//! there; offsets of one room must go up by one in what a client gets (and
//! in the doc). `retry_after_ms` depends on how long the burst before it
//! took: at most the documented value. Clients an example does not show
//! are not checked (the recovering `join` does not show bob's `joined`).

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use futures_util::SinkExt;
use serde_json::{Value, json};
use switchboard_tests::{Client, TestServer, tolerant_config, without_rate_limits};
use tokio_tungstenite::tungstenite::Message;

/// What the server must be doing when an example starts. Apart from the
/// ids named here nobody is online; `alice` connects when the exchange
/// starts unless the scene has her online already.
#[derive(Clone, Copy, Debug)]
enum Scene {
    /// Nobody else.
    Alone,
    /// These ids online, in no room.
    Online(&'static [&'static str]),
    /// bob's socket died without a close frame: he is held for a resume.
    BobHeld,
    /// These ids in `lobby`, joined in this order; then bob said that many
    /// messages there.
    InLobby(&'static [&'static str], usize),
    /// bob, carol and alice in `lobby`; bob said 39 messages, alice "hi"
    /// and "anyone?" (offsets 40, 41), bob "did you see this?" and carol
    /// "and this" (42, 43): the story the `join`/`history` examples tell.
    Story,
    /// [`Scene::Story`], but alice closed her connection after offset 41.
    StoryAliceLeft,
    /// [`Scene::Story`], but alice's socket died after offset 41 (she is
    /// held) and carol's notice "call me" came between bob's and her message.
    StoryAliceHeld,
    /// alice, under the default rate limits, has just sent 100 frames (the
    /// burst) and got their answers.
    Burst,
    /// alice is in rooms r1 … r256 (the default maximum).
    FullRooms,
}

use Scene::*;

/// The scene of each example: by heading, the scenes of the exchanges
/// under it in the order they come.
const SCENES: &[(&str, &[Scene])] = &[
    ("Connecting", &[Alone]),
    // Joining, rejoining, recovering, and not (430 messages: the default
    // history of 100 no longer reaches offset 2).
    (
        "`join`",
        &[
            InLobby(&["bob"], 41),
            InLobby(&["bob", "alice"], 41),
            StoryAliceLeft,
            InLobby(&["bob"], 430),
        ],
    ),
    ("`leave`", &[InLobby(&["bob", "alice"], 0), Alone]),
    ("`room`", &[Story]),
    ("Room history: `offset` and `epoch`", &[Alone]),
    ("`broadcast`", &[Online(&["bob", "carol"])]),
    // Online, held, and (carol) never connected.
    (
        "`notice`",
        &[Online(&["bob"]), BobHeld, Alone, Alone, Alone],
    ),
    ("`ping`", &[Alone, Alone]),
    (
        "Presence: `members` and `online`",
        &[InLobby(&["bob", "alice"], 0), Online(&["bob"])],
    ),
    ("`history`", &[Story, Story]),
    (
        "Errors",
        &[
            Alone, Alone, Alone, Alone, Alone, Alone, Alone, Burst, FullRooms,
        ],
    ),
    ("Session resume", &[StoryAliceHeld]),
];

/// Headings whose fenced blocks have no `→`/`←` exchange, not run. (The
/// HTTP refusal tables under Connecting and Identity are tables, not
/// blocks: bad_input.rs, admission.rs and auth.rs check those bodies.)
const NOT_EXCHANGES: &[&str] = &[
    "Connecting",                              // the URL forms
    "Identity (signed tokens)",                // token forms, minting code, a CLI session
    "Messages, `ref` and answers",             // one request's shape
    "A reconnect loop for `wx.connectSocket`", // client JavaScript
    "WeChat mini-program client",              // client JavaScript
    "Serving mini-programs: wss on 443",       // a shell command, an nginx config
    "Browser client",                          // client JavaScript
];

/// One documented exchange.
struct Exchange {
    heading: String,
    /// Its place among the exchanges under `heading`.
    n: usize,
    /// Its first line in the doc, for failure messages.
    line: usize,
    /// A `ws[s]://HOST<path>` line: the path alice connects to.
    connect: Option<String>,
    /// What alice sends, as written.
    sends: Vec<String>,
    /// Who gets what, in order; `alice` is the sender.
    expect: BTreeMap<String, Vec<Value>>,
}

/// The exchanges of `doc`; a block with none must be under a heading in
/// [`NOT_EXCHANGES`].
fn exchanges(doc: &str) -> Result<Vec<Exchange>> {
    let mut found = Vec::<Exchange>::new();
    let mut heading = String::new();
    let mut block: Option<Vec<(usize, &str)>> = None;
    for (i, line) in doc.lines().enumerate() {
        if !line.starts_with("```") {
            match &mut block {
                Some(lines) => lines.push((i + 1, line)),
                None if line.starts_with('#') => heading = line.trim_matches('#').trim().into(),
                None => {}
            }
            continue;
        }
        let Some(lines) = block.take() else {
            block = Some(Vec::new());
            continue;
        };
        let exchanges = lines.iter().any(|(_, l)| l.contains(['→', '←']));
        ensure!(
            exchanges || NOT_EXCHANGES.contains(&heading.as_str()),
            "line {}: no exchange in this block under `{heading}`: add it to NOT_EXCHANGES",
            i + 1
        );
        for group in lines.split(|(_, l)| l.trim().is_empty()) {
            if group.iter().any(|(_, l)| l.contains(['→', '←'])) {
                let n = found.iter().filter(|x| x.heading == heading).count();
                found.push(exchange(&heading, n, group)?);
            }
        }
    }
    Ok(found)
}

/// One exchange. `(name, …) ← frame` is what `name` gets; an indented
/// `← frame` is for the last one named (`(carol, when she next connects)`
/// on a line of its own names her); an unindented one is alice's. A note
/// in parentheses after a `→` frame describes the scene: it is not sent.
fn exchange(heading: &str, n: usize, lines: &[(usize, &str)]) -> Result<Exchange> {
    let (mut connect, mut sends, mut expect) = (None, Vec::new(), BTreeMap::new());
    let mut named: Option<String> = None;
    for &(no, line) in lines {
        let t = line.trim();
        if let Some(frame) = t.strip_prefix("→ ") {
            sends.push(frame.split("  (").next().unwrap_or(frame).trim().to_owned());
            continue;
        }
        if let Some(path) = t.strip_prefix("ws[s]://HOST") {
            connect = Some(path.to_owned());
            continue;
        }
        let (label, frame) = t.split_once('←').unwrap_or((t, ""));
        let label = label.trim();
        if label.starts_with('(') && label.ends_with(')') {
            let name = label.trim_matches(['(', ')']).split(',').next();
            named = name.map(|n| n.trim().to_owned());
        } else {
            ensure!(label.is_empty(), "line {no}: not a frame: {line}");
        }
        if frame.is_empty() {
            continue; // only a name
        }
        let to = match line.starts_with(' ') || !label.is_empty() {
            true => named
                .clone()
                .with_context(|| format!("line {no}: for whom?"))?,
            false => "alice".to_owned(),
        };
        let frame = serde_json::from_str(frame.trim()).with_context(|| format!("line {no}"))?;
        expect.entry(to).or_insert_with(Vec::new).push(frame);
    }
    let (heading, line) = (heading.to_owned(), lines[0].0);
    Ok(Exchange {
        heading,
        n,
        line,
        connect,
        sends,
        expect,
    })
}

/// What [`build`] leaves for the exchange.
#[derive(Default)]
struct Setup {
    clients: BTreeMap<String, Client>,
    /// `lobby`'s epoch, put into a `since` in place of the doc's.
    epoch: Option<String>,
    /// alice's last session, put into `?resume=` in place of the doc's.
    session: Option<String>,
    /// alice has no rate left: her frames are read without a drain (whose
    /// ping would be refused too).
    limited: bool,
}

/// `id` online, its welcome read.
async fn online(server: &TestServer, id: &str) -> Result<(Client, Value)> {
    let mut c = server.connect(id).await?;
    let welcome = c.recv_v2().await?;
    ensure!(welcome["type"] == "welcome", "{welcome}");
    Ok((c, welcome))
}

/// `ids` online and in `lobby`, joined in that order (noting its epoch and
/// alice's session).
async fn lobby(server: &TestServer, s: &mut Setup, ids: &[&str]) -> Result<()> {
    for &id in ids {
        let (mut c, welcome) = online(server, id).await?;
        c.send_json(json!({"type": "join", "room": "lobby", "ref": "j"}))
            .await?;
        let ack = loop {
            match c.recv_v2().await? {
                v if v["ref"] == "j" => break v,
                _ => {}
            }
        };
        s.epoch = Some(ack["epoch"].as_str().context("no epoch")?.to_owned());
        if id == "alice" {
            s.session = welcome["session"].as_str().map(str::to_owned);
        }
        s.clients.insert(id.to_owned(), c);
    }
    Ok(())
}

/// Room messages to `lobby`, in this order: a sender's messages are all
/// handled (its drain) before the next sender speaks.
async fn say(clients: &mut BTreeMap<String, Client>, said: &[(&str, Value)]) -> Result<()> {
    for (i, (from, data)) in said.iter().enumerate() {
        let c = clients.get_mut(*from).context("not in the scene")?;
        c.send_json(json!({"type": "room", "room": "lobby", "data": data}))
            .await?;
        if said.get(i + 1).is_none_or(|(next, _)| next != from) {
            c.drain_v2().await?;
        }
    }
    Ok(())
}

async fn build(server: &TestServer, scene: Scene) -> Result<Setup> {
    let mut s = Setup::default();
    match scene {
        Alone => {}
        Online(ids) => {
            for &id in ids {
                s.clients.insert(id.to_owned(), online(server, id).await?.0);
            }
        }
        BobHeld => {
            drop(online(server, "bob").await?);
            server.until_held("bob").await?;
        }
        InLobby(ids, said) => {
            lobby(server, &mut s, ids).await?;
            let said: Vec<_> = (0..said).map(|i| ("bob", json!(i))).collect();
            say(&mut s.clients, &said).await?;
        }
        Story | StoryAliceLeft | StoryAliceHeld => {
            lobby(server, &mut s, &["bob", "carol", "alice"]).await?;
            let mut said: Vec<_> = (0..39).map(|i| ("bob", json!(i))).collect();
            said.extend([("alice", json!("hi")), ("alice", json!("anyone?"))]);
            say(&mut s.clients, &said).await?;
            if let StoryAliceLeft = scene {
                s.clients
                    .remove("alice")
                    .context("no alice")?
                    .close()
                    .await?;
            } else if let StoryAliceHeld = scene {
                drop(s.clients.remove("alice")); // no close frame
                server.until_held("alice").await?;
            }
            say(&mut s.clients, &[("bob", json!("did you see this?"))]).await?;
            if let StoryAliceHeld = scene {
                let notice = json!({"type": "notice", "to": "alice", "data": "call me"});
                s.clients
                    .get_mut("carol")
                    .context("no carol")?
                    .send_json(notice)
                    .await?;
            }
            say(&mut s.clients, &[("carol", json!("and this"))]).await?;
        }
        Burst => {
            let (mut alice, _) = online(server, "alice").await?;
            // In one write, so that the bucket refills as little as
            // possible (a frame per 20 ms) before the documented 101st.
            for _ in 0..100 {
                alice.ws.feed(Message::text(r#"{"type":"ping"}"#)).await?;
            }
            alice.ws.flush().await?;
            for _ in 0..100 {
                let pong = alice.recv_v2().await?;
                ensure!(pong == json!({"type": "pong"}), "within the burst: {pong}");
            }
            s.clients.insert("alice".into(), alice);
            s.limited = true;
        }
        FullRooms => {
            let (mut alice, _) = online(server, "alice").await?;
            for i in 1..=256 {
                alice
                    .send_json(json!({"type": "join", "room": format!("r{i}")}))
                    .await?;
            }
            s.clients.insert("alice".into(), alice);
        }
    }
    // What the scene caused is not part of the exchange.
    for c in s.clients.values_mut().filter(|_| !s.limited) {
        c.drain_v2().await?;
    }
    Ok(s)
}

/// `got` is `want` up to the wildcards (see the top of the file).
fn fits(key: Option<&str>, want: &Value, got: &Value) -> bool {
    match (key, want, got) {
        (Some("session" | "epoch"), _, g) => g.is_string(),
        (Some("stored_at"), _, g) => g
            .as_str()
            .is_some_and(|t| humantime::parse_rfc3339(t).is_ok()),
        (Some("offset"), _, g) => g.is_u64(),
        (Some("retry_after_ms"), w, g) => {
            matches!((w.as_u64(), g.as_u64()), (Some(w), Some(g)) if (1..=w).contains(&g))
        }
        (_, Value::Object(w), Value::Object(g)) => {
            w.len() == g.len()
                && w.iter()
                    .all(|(k, w)| g.get(k).is_some_and(|g| fits(Some(k), w, g)))
        }
        (_, Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(w, g)| fits(None, w, g))
        }
        _ => want == got,
    }
}

/// Offsets of one room go up by one in what one client gets; a `history`
/// answer's messages are a run of their own.
fn offsets_in_order(frames: &[Value]) -> Result<()> {
    let mut last = BTreeMap::new();
    for f in frames {
        offsets_in_order(f["messages"].as_array().map_or(&[], Vec::as_slice))?;
        let (room, offset) = (f["room"].as_str(), f["offset"].as_u64());
        if let (true, Some(room), Some(offset)) = (f["type"] == "room", room, offset)
            && let Some(prev) = last.insert(room, offset)
        {
            ensure!(offset == prev + 1, "offset {offset} after {prev}: {f}");
        }
    }
    Ok(())
}

fn compare(who: &str, want: &[Value], got: &[Value]) -> Result<()> {
    let list = |v: &[Value]| v.iter().map(|f| format!("\n    {f}")).collect::<String>();
    offsets_in_order(want).with_context(|| format!("the doc's frames for {who}"))?;
    let same = want.len() == got.len() && want.iter().zip(got).all(|(w, g)| fits(None, w, g));
    ensure!(
        same,
        "{who} should get (doc):{}\n  but got:{}",
        list(want),
        list(got)
    );
    offsets_in_order(got).with_context(|| format!("what {who} got"))
}

fn starts_with_welcome(frames: &[Value]) -> bool {
    frames.first().is_some_and(|f| f["type"] == "welcome")
}

/// Run `x` on a fresh server in `scene`.
async fn run(x: &Exchange, scene: Scene) -> Result<()> {
    let mut config = without_rate_limits(tolerant_config());
    if let Burst = scene {
        config = tolerant_config(); // the example is about the default rate
    }
    let server = TestServer::start(config).await?;
    let mut s = build(&server, scene).await?;
    let want = x.expect.get("alice").map_or(&[][..], Vec::as_slice);
    let mut alice = match s.clients.remove("alice") {
        Some(c) => c,
        None => {
            let mut path = x.connect.clone().unwrap_or_else(|| "/ws/alice".into());
            if let (Some((head, _)), Some(session)) = (path.split_once("resume="), &s.session) {
                path = format!("{head}resume={session}");
            }
            let mut c = server.connect_path(&path).await?;
            if !starts_with_welcome(want) {
                let welcome = c.recv_v2().await?;
                ensure!(welcome["type"] == "welcome", "{welcome}");
            }
            c
        }
    };
    for text in &x.sends {
        match (serde_json::from_str::<Value>(text), &s.epoch) {
            (Ok(mut v), Some(epoch)) if v["since"]["epoch"].is_string() => {
                v["since"]["epoch"] = epoch.as_str().into();
                alice.send_json(v).await?;
            }
            _ => alice.send_text(text).await?,
        }
    }
    // A drain returns everything queued to alice up to now, so it also
    // shows she got nothing the doc does not show. Out of rate, she can
    // only read what the doc shows (a drain's ping would be refused).
    let mut got = Vec::new();
    while s.limited && got.len() < want.len() {
        got.push(alice.recv_v2().await?);
    }
    if !s.limited {
        got = alice.drain_v2().await?;
    }
    compare("alice", want, &got)?;
    // Once alice's requests are answered, what they caused is queued to
    // the others (an ack comes after everything its request caused).
    for (who, want) in x.expect.iter().filter(|(who, _)| *who != "alice") {
        let ids: Vec<String> = match who.as_str() {
            "everyone else" => s.clients.keys().cloned().collect(),
            id => vec![id.to_owned()],
        };
        for id in ids {
            if !s.clients.contains_key(&id) {
                // Someone who connects after the exchange (stored notices).
                ensure!(starts_with_welcome(want), "the scene has no {id}");
                s.clients.insert(id.clone(), server.connect(&id).await?);
            }
            let got = s
                .clients
                .get_mut(&id)
                .context("no client")?
                .drain_v2()
                .await?;
            compare(&id, want, &got)?;
        }
    }
    // Gone first, so the shutdown does not wait for their close handshakes.
    drop((alice, s));
    server.shutdown().await
}

fn doc() -> Result<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_exchange_is_what_the_server_does() -> Result<()> {
    let found = exchanges(&doc()?)?;
    // Every failure at once: a doc review wants the whole list.
    let mut failures = Vec::new();
    let scenes = |h: &str| SCENES.iter().find(|s| s.0 == h).map_or(&[][..], |s| s.1);
    for x in &found {
        let at = format!("PROTOCOL.md line {} ({} #{})", x.line, x.heading, x.n);
        match scenes(&x.heading).get(x.n) {
            None => failures.push(format!("{at}: an example with no scene: add it to SCENES")),
            Some(&scene) => {
                if let Err(e) = run(x, scene).await {
                    failures.push(format!("{at}, scene {scene:?}:\n  {e:#}"));
                }
            }
        }
    }
    // An example that left the doc (or moved) must not pass unnoticed.
    for (h, list) in SCENES {
        let n = found.iter().filter(|x| x.heading == *h).count();
        if n < list.len() {
            failures.push(format!("`{h}` has {n} examples, SCENES has {}", list.len()));
        }
    }
    let report = failures.join("\n\n");
    ensure!(
        failures.is_empty(),
        "{} failure(s):\n\n{report}",
        failures.len()
    );
    Ok(())
}

/// The check above can fail: the doc with an error message reworded does
/// not pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_example_fails() -> Result<()> {
    let wrong = doc()?.replace("room `garden`", "room `lobby`");
    let found = exchanges(&wrong)?;
    let leave = found.iter().find(|x| x.heading == "`leave`" && x.n == 1);
    let e = run(leave.context("no leave #1")?, Alone).await.err();
    ensure!(format!("{e:?}").contains("should get (doc)"), "{e:?}");
    Ok(())
}
