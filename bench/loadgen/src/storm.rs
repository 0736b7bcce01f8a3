//! The reconnect storm (protocol v2 only): N clients in rooms drop at once
//! (their sockets reset, no close frame), a sender publishes `missed`
//! messages to every room while they are away, then all of them resume
//! (`?resume=<session>`) at once. Reports the time until every client has
//! all it missed, the server's RSS before and at its peak during the
//! resume, and what was lost, duplicated or out of order (all must be 0).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{Target, Ws};
use crate::scenarios::Common;
use crate::sys::rss_bytes;

/// What the storm does.
pub struct StormOpts {
    /// Clients that drop and resume.
    pub clients: usize,
    /// Rooms they are spread over (client i is in room i % rooms).
    pub rooms: usize,
    /// Messages each room gets while they are away (what each client misses).
    pub missed: usize,
    /// Time given to the server to see every socket reset before the
    /// sender starts (it cannot be asked: a held id looks online).
    pub settle: Duration,
}

/// The next text frame, parsed.
async fn next_json(ws: &mut Ws) -> Result<Value> {
    loop {
        match ws
            .next()
            .await
            .ok_or_else(|| anyhow!("connection ended"))??
        {
            Message::Text(t) => return serde_json::from_str(&t).context("not JSON"),
            Message::Close(f) => bail!("closed: {f:?}"),
            _ => {}
        }
    }
}

/// Send `req` (with `"ref":"s"`) and read up to its ack.
async fn ask(ws: &mut Ws, mut req: Value) -> Result<()> {
    req["ref"] = json!("s");
    ws.send(Message::text(req.to_string())).await?;
    loop {
        let v = next_json(ws).await?;
        if v["type"] == "ack" && v["ref"] == "s" {
            return Ok(());
        }
        if v["type"] == "error" {
            bail!("refused: {v}");
        }
    }
}

/// Connect to `path`; the connection and its welcome.
async fn open(target: &Target, path: &str) -> Result<(Ws, Value)> {
    let (ws, welcome) = target.open_path(path).await?;
    Ok((
        ws,
        serde_json::from_str(&welcome).context("welcome not JSON")?,
    ))
}

pub async fn storm(c: &Common, target: &Target, o: &StormOpts) -> Vec<Value> {
    let variant = format!("{}x{}x{}", o.clients, o.rooms, o.missed);
    let mut m = serde_json::Map::new();
    m.insert("scenario".into(), json!("storm"));
    m.insert("variant".into(), json!(variant));
    m.insert("mode".into(), json!("resume"));
    m.insert("peer".into(), json!(c.peer));
    m.insert("clients".into(), json!(o.clients));
    m.insert("missed_per_client".into(), json!(o.missed));
    match run(c, target, o, &mut m).await {
        Ok(problem) => {
            m.insert("ok".into(), json!(problem.is_none()));
            if let Some(p) = problem {
                m.insert("problem".into(), json!(p));
            }
        }
        Err(e) => {
            m.insert("ok".into(), json!(false));
            m.insert("problem".into(), json!(format!("{e:#}")));
        }
    }
    vec![Value::Object(m)]
}

async fn run(
    c: &Common,
    target: &Target,
    o: &StormOpts,
    m: &mut serde_json::Map<String, Value>,
) -> Result<Option<String>> {
    let room = |i: usize| format!("{}r{}", c.tag, i % o.rooms);
    // Everyone connects and joins; each keeps its session.
    let setup = futures_util::stream::iter(0..o.clients)
        .map(|i| async move {
            let id = format!("{}s{i}", c.tag);
            let (mut ws, welcome) = open(target, &format!("/ws/{id}")).await?;
            let session = welcome["session"]
                .as_str()
                .context("the welcome has no session: not protocol v2")?
                .to_owned();
            ask(&mut ws, json!({"type": "join", "room": room(i)})).await?;
            Ok::<_, anyhow::Error>((ws, id, session))
        })
        .buffer_unordered(c.concurrency.max(1))
        .collect::<Vec<_>>();
    let clients = tokio::time::timeout(c.setup_timeout, setup)
        .await
        .map_err(|_| anyhow!("set-up timed out"))?
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let (mut sender, _) = open(target, &format!("/ws/{}sender", c.tag)).await?;
    for r in 0..o.rooms {
        ask(&mut sender, json!({"type": "join", "room": room(r)})).await?;
    }
    let rss_before = c.pid.and_then(rss_bytes);

    // All drop at once: the sockets reset (SO_LINGER 0), no close frame.
    let (socks, held): (Vec<Ws>, Vec<(String, String)>) = clients
        .into_iter()
        .map(|(ws, id, session)| (ws, (id, session)))
        .unzip();
    drop(socks);
    tokio::time::sleep(o.settle).await;

    // While they are away, every room gets `missed` messages.
    for k in 0..o.missed {
        for r in 0..o.rooms {
            let msg = json!({"type": "room", "room": room(r), "data": {"k": k}});
            sender.feed(Message::text(msg.to_string())).await?;
        }
        sender.flush().await?;
    }
    ask(&mut sender, json!({"type": "ping"})).await?;

    // The storm: everyone resumes at once, each reading what it missed.
    let peak = Rc::new(Cell::new(rss_before.unwrap_or(0)));
    let sampling = Rc::new(Cell::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), c.pid);
        tokio::task::spawn_local(async move {
            while sampling.get() {
                if let Some(rss) = pid.and_then(rss_bytes) {
                    peak.set(peak.get().max(rss));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let missed = o.missed;
    let resumes = futures_util::stream::iter(held)
        .map(|(id, session)| async move {
            let (mut ws, welcome) = open(target, &format!("/ws/{id}?resume={session}")).await?;
            let resumed = welcome["resumed"] == true;
            let (mut got, mut disorder) = (0usize, 0usize);
            let mut last_offset = 0u64;
            while resumed && got < missed {
                let v = next_json(&mut ws).await?;
                if v["type"] != "room" {
                    continue;
                }
                // Offsets (when history is on) only go up.
                let offset = v["offset"].as_u64();
                if v["data"]["k"] != json!(got) || offset.is_some_and(|o| o <= last_offset) {
                    disorder += 1;
                }
                last_offset = offset.unwrap_or(last_offset);
                got += 1;
            }
            Ok::<_, anyhow::Error>((resumed, got, disorder, ws))
        })
        .buffer_unordered(c.concurrency.max(1))
        .collect::<Vec<_>>();
    let results = tokio::time::timeout(c.setup_timeout, resumes)
        .await
        .map_err(|_| anyhow!("the resumes timed out"));
    let catch_up = started.elapsed().as_secs_f64();
    sampling.set(false);
    let _ = sampler.await;
    let results = results?;
    let mut failed = 0;
    let (mut resumed, mut delivered, mut disorder) = (0, 0, 0);
    let mut first_error = None;
    let mut open_again = Vec::new();
    for r in results {
        match r {
            Ok((ok, got, bad, ws)) => {
                resumed += usize::from(ok);
                delivered += got;
                disorder += bad;
                open_again.push(ws);
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let expected = o.clients * o.missed;
    m.insert("resumed".into(), json!(resumed));
    m.insert("delivered".into(), json!(delivered));
    m.insert("expected".into(), json!(expected));
    m.insert("lost".into(), json!(expected.saturating_sub(delivered)));
    m.insert("out_of_order_or_duplicated".into(), json!(disorder));
    m.insert(
        "catch_up_s".into(),
        json!((catch_up * 1000.0).round() / 1000.0),
    );
    if let Some(b) = rss_before {
        m.insert("rss_before_mib".into(), json!(b / (1 << 20)));
        m.insert("rss_peak_mib".into(), json!(peak.get() / (1 << 20)));
    }
    drop(open_again);
    Ok(if let Some(e) = first_error {
        Some(format!("{failed} resumes failed: {e:#}"))
    } else if resumed < o.clients {
        Some(format!(
            "{} of {} were not resumed",
            o.clients - resumed,
            o.clients
        ))
    } else if delivered < expected || disorder > 0 {
        Some(format!(
            "lost {} and {disorder} out of order or twice",
            expected - delivered
        ))
    } else {
        None
    })
}
