//! Redis restarted under load (issue 21, section 7): members of one room
//! spread over a cluster's nodes (member i on address i mod N), the first
//! (on the first node) sending room messages with acks at a fixed rate.
//! `kill_after` seconds into sending it prints `loadgen: mark kill`; the
//! driver then kills Redis and starts it again, writing `killed` and `up`
//! on stdin as it does (this process notes the time of each line on its
//! own clock). What each message became is counted from both ends: its
//! answer (ack, refused with a code, nothing) and which members got it,
//! live or filled from `history`.
//!
//! Protocol v1 members act as the JavaScript client does on a gap: a room
//! frame whose offset is more than one above the last seen asks `history`
//! for the missing ones at once (history keeps only the room's last 100).
//! Room frames carry no epoch, so a member counts a new epoch when an
//! offset falls while the message is new to it (offsets restart at 1
//! after Redis lost its data); every count by offset is per epoch.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{Target, Ws, now_ns};
use crate::proto::Protocol;
use crate::scenarios::{Common, base, failed, finish, round2, wait_until_ns};

/// What the scenario does.
pub struct OutageOpts {
    /// Room members, the sender included (member 0).
    pub members: usize,
    /// Room messages sent per second.
    pub rate: f64,
    /// Seconds of sending.
    pub duration: Duration,
    /// Seconds into sending when the driver is asked to restart Redis.
    pub kill_after: Duration,
    /// Seconds allowed after the last send for answers, deliveries, fills.
    pub grace: Duration,
}

/// When the driver said it killed Redis / Redis listened again (now_ns, 0: not yet).
static KILLED_NS: AtomicU64 = AtomicU64::new(0);
static UP_NS: AtomicU64 = AtomicU64::new(0);

const ROOM: &str = "outage";
/// Refs: a room message's is its number k (1, 2, …); joins and history
/// requests take refs far above any k.
const JOIN_REF: u64 = 1_000_000_000;
const HISTORY_REF: u64 = 2_000_000_000;

/// What the sender heard about one message.
#[derive(Clone, Default)]
struct Sent {
    at: u64,
    acked: bool,
    refused: Option<String>,
}

/// One member's view.
#[derive(Default)]
struct Member {
    /// The node (address index) it is connected to.
    node: usize,
    /// k → live deliveries.
    live: HashMap<u64, u32>,
    /// k → the epoch (segment) it arrived in, live or filled.
    seg_of: HashMap<u64, u32>,
    /// Ks it got only from a `history` fill.
    filled: HashSet<u64>,
    /// The current epoch as this member counts them (0: the join's).
    seg: u32,
    /// The highest k seen (messages are sent in k order).
    max_k: u64,
    /// Live frames of messages it had already got from a fill.
    live_after_fill: u64,
    /// Each epoch's name when known (the join ack's; a history answer's).
    epochs: Vec<Option<String>>,
    /// The highest offset seen in the current epoch.
    last: u64,
    /// (epoch, offset) pairs seen live.
    seen: HashSet<(u32, u64)>,
    /// Frames whose (epoch, offset) had come before.
    twice_by_offset: u64,
    /// Frames whose k had come before.
    twice_by_k: u64,
    /// The JavaScript client's rule ("drop a room frame whose offset is not
    /// above the last one you delivered"), across epochs: its last offset,
    /// and the new messages it would have dropped.
    js_last: u64,
    js_dropped: u64,
    /// Offsets missing in a jump seen live, and history requests made.
    gap_offsets: u64,
    fills_asked: u64,
    /// history ref → the epoch (segment) the fill is for.
    fills: HashMap<u64, u32>,
    fill_problems: Vec<String>,
    /// now_ns of each live delivery, with its k (interruption).
    arrivals: Vec<(u64, u64)>,
}

/// Everything the connection tasks update.
struct State {
    proto: Protocol,
    sent: RefCell<Vec<Sent>>,
    members: RefCell<Vec<Member>>,
    joined: RefCell<HashSet<usize>>,
    problem: RefCell<Option<String>>,
    next_history: RefCell<u64>,
    progress: Notify,
}

impl State {
    fn problem(&self, p: String) {
        self.problem.borrow_mut().get_or_insert(p);
        self.progress.notify_one();
    }
}

/// Note the driver's `killed` / `up` lines (a thread: the runtime has no stdin).
fn watch_stdin() {
    std::thread::spawn(|| {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            match line.trim() {
                "killed" => KILLED_NS.store(now_ns(), Ordering::SeqCst),
                "up" => UP_NS.store(now_ns(), Ordering::SeqCst),
                _ => {}
            }
        }
    });
}

fn join_frame(proto: Protocol, r: u64) -> String {
    proto.join(ROOM, r)
}

fn room_frame(proto: Protocol, k: u64, pad: &str) -> String {
    let data = format!(r#"{{"t":{},"k":{k},"pad":"{pad}"}}"#, now_ns());
    match proto {
        Protocol::V1 => {
            format!(r#"{{"type":"room","room":"{ROOM}","data":{data},"ref":{k}}}"#)
        }
        Protocol::Socketio => format!(r#"42{k}["room",{{"room":"{ROOM}","data":{data}}}]"#),
    }
}

/// One frame from the server, decoded: (kind, ref, payload).
enum Frame {
    Room(Value),
    Ack(u64, Value),
    Error(Option<u64>, String),
    History(u64, Value),
    EioPing,
    Other,
}

fn decode(proto: Protocol, text: &str) -> Frame {
    match proto {
        Protocol::V1 => {
            let Ok(v) = serde_json::from_str::<Value>(text) else {
                return Frame::Other;
            };
            let r = v["ref"].as_u64();
            match v["type"].as_str() {
                Some("room") => Frame::Room(v),
                Some("ack") => r.map_or(Frame::Other, |r| Frame::Ack(r, v)),
                Some("history") => r.map_or(Frame::Other, |r| Frame::History(r, v)),
                Some("error") => Frame::Error(r, v["code"].as_str().unwrap_or("?").to_owned()),
                _ => Frame::Other,
            }
        }
        Protocol::Socketio => {
            if text == "2" {
                return Frame::EioPing;
            }
            if let Some(rest) = text.strip_prefix("42") {
                let Ok(Value::Array(a)) = serde_json::from_str::<Value>(rest) else {
                    return Frame::Other;
                };
                return match (a.first().and_then(Value::as_str), a.get(1)) {
                    (Some("room"), Some(p)) => Frame::Room(p.clone()),
                    (Some("error"), Some(p)) => {
                        Frame::Error(None, p["code"].as_str().unwrap_or("?").to_owned())
                    }
                    _ => Frame::Other,
                };
            }
            if let Some(rest) = text.strip_prefix("43") {
                let end = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                let (Ok(r), Ok(Value::Array(a))) = (
                    rest[..end].parse::<u64>(),
                    serde_json::from_str::<Value>(&rest[end..]),
                ) else {
                    return Frame::Other;
                };
                let p = a.first().cloned().unwrap_or(Value::Null);
                return match p["error"]["code"].as_str() {
                    Some(code) => Frame::Error(Some(r), code.to_owned()),
                    None => Frame::Ack(r, p),
                };
            }
            Frame::Other
        }
    }
}

/// Member `i` got room frame `v` live: count it; ask `history` for a jump.
fn on_room(state: &State, i: usize, v: &Value) -> Option<String> {
    let k = v["data"]["k"].as_u64()?;
    let now = now_ns();
    let mut members = state.members.borrow_mut();
    let m = &mut members[i];
    let count = {
        let c = m.live.entry(k).or_insert(0);
        *c += 1;
        *c
    };
    m.arrivals.push((now, k));
    if count == 1 && m.filled.contains(&k) {
        // Late, after the fill brought it: a client drops it by offset.
        m.live_after_fill += 1;
        return None;
    }
    let new = count == 1;
    if !new {
        m.twice_by_k += 1;
    }
    let newest = k > m.max_k;
    m.max_k = m.max_k.max(k);
    let Some(offset) = v["offset"].as_u64() else {
        m.seg_of.entry(k).or_insert(0);
        return None;
    };
    // The JavaScript client's rule, for the count of what it would drop.
    if offset <= m.js_last {
        if new {
            m.js_dropped += 1;
        }
    } else {
        m.js_last = offset;
    }
    if newest && offset <= m.last {
        // An offset that fell, on a message sent after every one seen
        // here: a new epoch.
        m.seg += 1;
        m.epochs.push(None);
        m.last = 0;
    }
    if !m.seen.insert((m.seg, offset)) {
        m.twice_by_offset += 1;
        return None;
    }
    if new {
        m.seg_of.insert(k, m.seg);
    }
    if offset > m.last + 1 {
        // A jump: read the missing ones at once (history keeps the last 100).
        let missing = offset - m.last - 1;
        m.gap_offsets += missing;
        m.fills_asked += 1;
        let mut next = state.next_history.borrow_mut();
        *next += 1;
        let r = HISTORY_REF + *next;
        m.fills.insert(r, m.seg);
        m.last = offset;
        return Some(format!(
            r#"{{"type":"history","room":"{ROOM}","limit":{},"before":{offset},"ref":{r}}}"#,
            missing.min(100)
        ));
    }
    m.last = m.last.max(offset);
    None
}

/// A `history` answer for member `i`'s fill `r`: take what it missed, if
/// the answer is of the epoch the fill is for.
fn on_history(state: &State, i: usize, r: u64, v: &Value) {
    let mut members = state.members.borrow_mut();
    let m = &mut members[i];
    let Some(seg) = m.fills.remove(&r) else {
        return;
    };
    let epoch = v["epoch"].as_str().map(str::to_owned);
    let known = m.epochs.get(seg as usize).cloned().flatten();
    match (&known, &epoch) {
        (Some(a), Some(b)) if a != b => {
            m.fill_problems
                .push(format!("history answered epoch {b} for a gap in epoch {a}"));
            return;
        }
        (None, Some(_)) => m.epochs[seg as usize] = epoch.clone(),
        _ => {}
    }
    for msg in v["messages"].as_array().into_iter().flatten() {
        let (Some(k), Some(offset)) = (msg["data"]["k"].as_u64(), msg["offset"].as_u64()) else {
            continue;
        };
        if m.live.contains_key(&k) || m.filled.contains(&k) {
            continue;
        }
        m.filled.insert(k);
        m.seg_of.insert(k, seg);
        m.seen.insert((seg, offset));
    }
}

/// The task of member `i`'s connection.
fn spawn_member(ws: Ws, i: usize, state: Rc<State>) -> mpsc::UnboundedSender<String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let mut ws = ws;
    tokio::task::spawn_local(async move {
        loop {
            let reply = tokio::select! {
                out = rx.recv() => {
                    let Some(out) = out else { break };
                    Some(out)
                }
                msg = ws.next() => {
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(f))) => {
                            state.problem(format!("member {i} closed by the server: {f:?}"));
                            break;
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => {
                            state.problem(format!("member {i}: read: {e}"));
                            break;
                        }
                        None => {
                            state.problem(format!("member {i}: connection ended"));
                            break;
                        }
                    };
                    let reply = match decode(state.proto, &text) {
                        Frame::Room(v) => on_room(&state, i, &v),
                        Frame::Ack(r, v) if (JOIN_REF..HISTORY_REF).contains(&r) => {
                            if let Some(e) = v["epoch"].as_str() {
                                state.members.borrow_mut()[i].epochs = vec![Some(e.to_owned())];
                            }
                            state.joined.borrow_mut().insert(i);
                            None
                        }
                        Frame::Ack(r, _) if r >= 1 => {
                            if let Some(s) = state.sent.borrow_mut().get_mut(r as usize - 1) {
                                s.acked = true;
                            }
                            None
                        }
                        Frame::History(r, v) => {
                            on_history(&state, i, r, &v);
                            None
                        }
                        Frame::Error(Some(r), code) if (1..JOIN_REF).contains(&r) => {
                            if let Some(s) = state.sent.borrow_mut().get_mut(r as usize - 1) {
                                s.refused = Some(code);
                            }
                            None
                        }
                        Frame::Error(Some(r), code) if r > HISTORY_REF => {
                            let mut members = state.members.borrow_mut();
                            members[i].fills.remove(&r);
                            members[i].fill_problems.push(format!("history refused: {code}"));
                            None
                        }
                        Frame::Error(_, code) => {
                            state.problem(format!("member {i}: error {code}"));
                            None
                        }
                        Frame::Ack(..) => None,
                        Frame::EioPing => Some("3".to_owned()),
                        Frame::Other => None,
                    };
                    state.progress.notify_one();
                    reply
                }
            };
            if let Some(out) = reply
                && let Err(e) = ws.send(Message::text(out)).await
            {
                state.problem(format!("member {i}: write: {e}"));
                break;
            }
        }
    });
    tx
}

pub async fn outage(c: &Common, target: &Target, o: &OutageOpts) -> Vec<Value> {
    let variant = format!("{}x{}/s", o.members, o.rate);
    match run(c, target, o, &variant).await {
        Ok(v) => vec![v],
        Err(e) => vec![failed(c, target, "outage", &variant, "restart", e)],
    }
}

async fn run(c: &Common, target: &Target, o: &OutageOpts, variant: &str) -> Result<Value> {
    anyhow::ensure!(o.members >= 2, "a room needs at least 2 members");
    anyhow::ensure!(o.rate > 0.0, "--rate must be above 0");
    watch_stdin();
    let state = Rc::new(State {
        proto: target.proto,
        sent: RefCell::new(Vec::new()),
        members: RefCell::new(
            (0..o.members)
                .map(|i| Member {
                    node: i % target.addrs.len(),
                    epochs: vec![None],
                    ..Member::default()
                })
                .collect(),
        ),
        joined: RefCell::new(HashSet::new()),
        problem: RefCell::new(None),
        next_history: RefCell::new(0),
        progress: Notify::new(),
    });
    let ids: Vec<String> = (0..o.members).map(|i| format!("{}o{i}", c.tag)).collect();
    let opening = target.open_many(&ids, c.concurrency, |i, ws| {
        let tx = spawn_member(ws, i, state.clone());
        let _ = tx.send(join_frame(target.proto, JOIN_REF + i as u64));
        tx
    });
    let txs = tokio::time::timeout(c.setup_timeout, opening)
        .await
        .map_err(|_| anyhow!("connecting timed out"))??;
    let deadline = tokio::time::Instant::now() + c.setup_timeout;
    while state.joined.borrow().len() < o.members {
        if let Some(p) = state.problem.borrow().clone() {
            bail!("joining: {p}");
        }
        if tokio::time::Instant::now() > deadline {
            bail!("joining timed out");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let the `joined` frames settle before the count starts.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Send at the fixed rate; ask for the restart on the way.
    let n = (o.rate * o.duration.as_secs_f64()).round().max(1.0) as u64;
    let step = 1e9 / o.rate;
    let t0 = now_ns();
    let kill_at = t0 + o.kill_after.as_nanos() as u64;
    let mut asked = false;
    for k in 1..=n {
        let due = t0 + ((k - 1) as f64 * step) as u64;
        if !asked && due >= kill_at {
            wait_until_ns(kill_at).await;
            eprintln!("loadgen: mark kill");
            asked = true;
        }
        wait_until_ns(due).await;
        state.sent.borrow_mut().push(Sent {
            at: now_ns(),
            ..Sent::default()
        });
        if txs[0].send(room_frame(target.proto, k, &c.pad)).is_err() {
            bail!("the sender's connection ended");
        }
    }
    let sent_end = now_ns();

    // Wait for every answer and every acked message at every member (live
    // or filled), or the grace period.
    let others: Vec<usize> = (1..o.members).collect();
    let done = |s: &State| {
        let sent = s.sent.borrow();
        let members = s.members.borrow();
        sent.iter().all(|x| x.acked || x.refused.is_some())
            && members.iter().all(|m| m.fills.is_empty())
            && sent
                .iter()
                .enumerate()
                .filter(|(_, x)| x.acked)
                .all(|(j, _)| {
                    let k = j as u64 + 1;
                    others.iter().all(|&i| {
                        members[i].live.contains_key(&k) || members[i].filled.contains(&k)
                    })
                })
    };
    let grace_end = tokio::time::Instant::now() + o.grace;
    while !done(&state) && tokio::time::Instant::now() < grace_end {
        tokio::select! {
            _ = state.progress.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    // A moment for late repeats.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = KILLED_NS.load(Ordering::SeqCst);
    let up = UP_NS.load(Ordering::SeqCst);

    let mut m = base(c, target, "outage", variant, "restart");
    report(&state, o, &mut m, killed, up, sent_end);
    let mut problem = state.problem.borrow().clone();
    if killed == 0 {
        problem.get_or_insert_with(|| "the driver never said `killed`".into());
    }
    drop(txs);
    Ok(finish(m, None, problem))
}

fn ms(ns: u64) -> f64 {
    round2(ns as f64 / 1e6)
}

/// The counts, into `m`.
fn report(
    state: &State,
    o: &OutageOpts,
    m: &mut serde_json::Map<String, Value>,
    killed: u64,
    up: u64,
    sent_end: u64,
) {
    let sent = state.sent.borrow();
    let members = state.members.borrow();
    let sender_node = members[0].node;
    let (near, far): (Vec<&Member>, Vec<&Member>) =
        members[1..].iter().partition(|x| x.node == sender_node);
    let acked: Vec<u64> = (1..=sent.len() as u64)
        .filter(|&k| sent[k as usize - 1].acked)
        .collect();
    let mut refused_codes: HashMap<&str, u64> = HashMap::new();
    for s in sent.iter() {
        if let Some(code) = &s.refused {
            *refused_codes.entry(code).or_insert(0) += 1;
        }
    }
    let got_live = |x: &Member, k: u64| x.live.contains_key(&k);
    let got_any = |x: &Member, k: u64| x.live.contains_key(&k) || x.filled.contains(&k);
    // The epoch a message was kept in, as a member on the sender's node saw
    // it (it is queued there before the ack); else as anyone saw it.
    let seg_of = |k: u64| {
        near.iter()
            .chain(far.iter())
            .find_map(|x| x.seg_of.get(&k).copied())
    };
    let lost = |group: &[&Member], got: &dyn Fn(&Member, u64) -> bool| {
        let msgs: Vec<u64> = acked
            .iter()
            .copied()
            .filter(|&k| group.iter().any(|x| !got(x, k)))
            .collect();
        let deliveries: usize = acked
            .iter()
            .map(|&k| group.iter().filter(|x| !got(x, k)).count())
            .sum();
        (msgs, deliveries)
    };
    let (lost_live, lost_live_d) = lost(&far, &got_live);
    let (lost_fill, lost_fill_d) = lost(&far, &got_any);
    let (near_lost, _) = lost(&near, &got_any);
    let by_epoch = |ks: &[u64]| {
        let mut e: HashMap<String, u64> = HashMap::new();
        for &k in ks {
            let name = seg_of(k).map_or("unseen".to_owned(), |s| s.to_string());
            *e.entry(name).or_insert(0) += 1;
        }
        json!(e)
    };
    let refused_delivered = (1..=sent.len() as u64)
        .filter(|&k| sent[k as usize - 1].refused.is_some())
        .filter(|&k| members[1..].iter().any(|x| got_any(x, k)))
        .count();
    // Each refused message a member got: its k, and who got it how.
    let refused_seen: Vec<Value> = (1..=sent.len() as u64)
        .filter(|&k| sent[k as usize - 1].refused.is_some())
        .filter(|&k| members[1..].iter().any(|x| got_any(x, k)))
        .take(10)
        .map(|k| {
            let count = |g: &[&Member], f: &dyn Fn(&Member, u64) -> bool| {
                g.iter().filter(|x| f(x, k)).count()
            };
            json!({
                "k": k,
                "sent_ms_after_kill": ms(sent[k as usize - 1].at.saturating_sub(killed)),
                "near_live": count(&near, &got_live),
                "far_live": count(&far, &got_live),
                "filled": members[1..].iter().filter(|x| x.filled.contains(&k)).count(),
            })
        })
        .collect();
    m.insert("refused_delivered_which".into(), json!(refused_seen));
    let unanswered = sent
        .iter()
        .filter(|s| !s.acked && s.refused.is_none())
        .count();
    m.insert("members".into(), json!(o.members));
    m.insert("far_members".into(), json!(far.len()));
    m.insert("rate_per_s".into(), json!(o.rate));
    m.insert("sent".into(), json!(sent.len()));
    m.insert("acked".into(), json!(acked.len()));
    m.insert("refused".into(), json!(refused_codes.values().sum::<u64>()));
    m.insert("refused_codes".into(), json!(refused_codes));
    m.insert("unanswered".into(), json!(unanswered));
    m.insert("refused_delivered".into(), json!(refused_delivered));
    m.insert("lost_far".into(), json!(lost_live.len()));
    m.insert("lost_far_deliveries".into(), json!(lost_live_d));
    m.insert("lost_far_by_epoch".into(), by_epoch(&lost_live));
    m.insert("lost_far_after_fill".into(), json!(lost_fill.len()));
    m.insert("lost_far_after_fill_deliveries".into(), json!(lost_fill_d));
    m.insert("lost_far_after_fill_by_epoch".into(), by_epoch(&lost_fill));
    m.insert("lost_near".into(), json!(near_lost.len()));
    let sum = |f: &dyn Fn(&Member) -> u64| members[1..].iter().map(f).sum::<u64>();
    m.insert("twice_by_offset".into(), json!(sum(&|x| x.twice_by_offset)));
    m.insert("twice_by_k".into(), json!(sum(&|x| x.twice_by_k)));
    m.insert("live_after_fill".into(), json!(sum(&|x| x.live_after_fill)));
    m.insert("filled".into(), json!(sum(&|x| x.filled.len() as u64)));
    m.insert("gap_offsets_seen".into(), json!(sum(&|x| x.gap_offsets)));
    m.insert("history_fills".into(), json!(sum(&|x| x.fills_asked)));
    m.insert(
        "fill_problems".into(),
        json!(
            members
                .iter()
                .flat_map(|x| x.fill_problems.iter().cloned())
                .take(5)
                .collect::<Vec<_>>()
        ),
    );
    m.insert("js_rule_dropped".into(), json!(sum(&|x| x.js_dropped)));
    m.insert(
        "epochs_seen".into(),
        json!(members.iter().map(|x| x.seg + 1).max().unwrap_or(1)),
    );
    if killed > 0 {
        m.insert(
            "kill_at_ms".into(),
            json!(ms(killed - sent[0].at.min(killed))),
        );
        if up > killed {
            m.insert("redis_down_ms".into(), json!(ms(up - killed)));
        }
        // From the kill to the first delivery on another node of a message
        // sent after it.
        let first_far = far
            .iter()
            .flat_map(|x| x.arrivals.iter())
            .filter(|&&(_, k)| sent[k as usize - 1].at > killed)
            .map(|&(at, _)| at)
            .min();
        m.insert(
            "interrupted_ms".into(),
            json!(first_far.map(|t| ms(t - killed))),
        );
        let first_near = near
            .iter()
            .flat_map(|x| x.arrivals.iter())
            .filter(|&&(_, k)| sent[k as usize - 1].at > killed)
            .map(|&(at, _)| at)
            .min();
        m.insert(
            "interrupted_near_ms".into(),
            json!(first_near.map(|t| ms(t - killed))),
        );
        let first_ack = sent
            .iter()
            .filter(|s| s.acked && s.at > killed)
            .map(|s| s.at)
            .min();
        m.insert(
            "first_acked_send_after_kill_ms".into(),
            json!(first_ack.map(|t| ms(t - killed))),
        );
        let acked_sent_before = sent.iter().filter(|s| s.acked && s.at <= killed).count();
        m.insert("acked_sent_before_kill".into(), json!(acked_sent_before));
    }
    m.insert(
        "sending_s".into(),
        json!(round2((sent_end - sent[0].at) as f64 / 1e9)),
    );
}
