//! Three scenarios (idle, fanout, notice; connect and storm have files of
//! their own) and what all of them share. Each returns one JSON
//! object per measured phase; `ok: false` with a `problem` when something
//! went wrong (a refused or dropped connection, an error frame, a lost
//! message), so a smoke run can fail loudly.

use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::conn::{Role, Shared, Target, now_ns, spawn_conn};
use crate::proto::data;
use crate::sys::{CpuMark, rss_bytes};

/// Settings every scenario shares.
pub struct Common {
    /// Label of the server in the report.
    pub peer: String,
    /// Server pid, for RSS and CPU time.
    pub pid: Option<u32>,
    /// Every server process (the first is `pid`): CPU time is their sum.
    pub pids: Vec<u32>,
    /// Processes whose CPU time is reported apart (`aux_cpu_s`), e.g. Redis.
    pub aux_pids: Vec<u32>,
    /// Limit on connection set-up (all connections of a scenario).
    pub setup_timeout: Duration,
    /// Connections opened at once while setting up.
    pub concurrency: usize,
    /// Padding bytes in each message's data.
    pub pad: String,
    /// A prefix making ids unique to this run.
    pub tag: String,
}

impl Common {
    /// The clocks now, for the server's and the apart processes' pids.
    pub fn mark(&self) -> CpuMark {
        CpuMark::now(&self.pids, &self.aux_pids)
    }
}

pub(crate) fn base(
    c: &Common,
    target: &Target,
    scenario: &str,
    variant: &str,
    mode: &str,
) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("scenario".into(), json!(scenario));
    m.insert("variant".into(), json!(variant));
    m.insert("mode".into(), json!(mode));
    m.insert("peer".into(), json!(c.peer));
    m.insert("protocol".into(), json!(target.proto.name()));
    m.insert("tls".into(), json!(target.tls.is_some()));
    m
}

pub(crate) fn finish(
    mut m: serde_json::Map<String, Value>,
    shared: Option<&Shared>,
    extra_problem: Option<String>,
) -> Value {
    let mut problem = extra_problem;
    if let Some(s) = shared {
        m.insert("errors".into(), json!(s.errors.get()));
        m.insert("closed".into(), json!(s.closed.get()));
        if problem.is_none() && (s.errors.get() > 0 || s.closed.get() > 0) {
            problem = s.first_problem.borrow().clone();
        }
    }
    m.insert("ok".into(), json!(problem.is_none()));
    if let Some(p) = problem {
        m.insert("problem".into(), json!(p));
    }
    Value::Object(m)
}

pub(crate) fn failed(
    c: &Common,
    target: &Target,
    scenario: &str,
    variant: &str,
    mode: &str,
    e: anyhow::Error,
) -> Value {
    finish(
        base(c, target, scenario, variant, mode),
        None,
        Some(format!("{e:#}")),
    )
}

pub(crate) fn percentiles(
    m: &mut serde_json::Map<String, Value>,
    h: &Histogram<u64>,
    quantiles: &[(&str, f64)],
) {
    if h.is_empty() {
        return;
    }
    for (name, q) in quantiles {
        m.insert(
            format!("{name}_us"),
            json!(round2(h.value_at_quantile(*q) as f64 / 1000.0)),
        );
    }
    m.insert("max_us".into(), json!(round2(h.max() as f64 / 1000.0)));
    m.insert("samples".into(), json!(h.len()));
}

/// Record how much the measured window was disturbed: the server's and the
/// load generator's run-queue wait, the load generator's CPU use.
pub(crate) fn contention(m: &mut serde_json::Map<String, Value>, a: &CpuMark, b: &CpuMark) {
    for (k, v) in a.contention(b) {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    if let Some(aux) = a.aux_until(b) {
        let (wall, _) = a.until(b);
        m.insert("aux_cpu_s".into(), json!(round4(aux)));
        m.insert("aux_cpu_util".into(), json!(round2(aux / wall.max(1e-9))));
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// How a saturation phase runs: `window` sends in flight, each complete once
/// the phase's completion count has grown by `fan`; measured for `duration`
/// after `warmup`.
#[derive(Clone, Copy)]
struct ClosedLoop {
    warmup: Duration,
    duration: Duration,
    window: u64,
    fan: u64,
}

/// The saturation phases' closed loop (see [`ClosedLoop`]): `done` counts
/// completions, `stop` ends the phase early (checked while waiting), `send(k)`
/// sends the k-th. Returns (sent, measured wall seconds, server CPU seconds,
/// completions in the measured window).
async fn closed_loop(
    c: &Common,
    m: &mut serde_json::Map<String, Value>,
    shared: &Rc<Shared>,
    plan: &ClosedLoop,
    done: impl Fn(&Shared) -> u64,
    stop: impl Fn(&Shared) -> bool,
    mut send: impl FnMut(u64),
) -> (u64, f64, Option<f64>, u64) {
    let ClosedLoop {
        warmup,
        duration,
        window,
        fan,
    } = *plan;
    let d0 = done(shared);
    let start = Instant::now();
    let warm_end = start + warmup;
    let end = warm_end + duration;
    let mut sent = 0u64;
    let mut mark0: Option<(CpuMark, u64)> = None;
    loop {
        let now = Instant::now();
        if mark0.is_none() && now >= warm_end {
            mark0 = Some((c.mark(), done(shared)));
            let t = now_ns();
            shared.record_window(t, t + duration.as_nanos() as u64);
        }
        if now >= end {
            break;
        }
        if (sent * fan).saturating_sub(done(shared) - d0) >= window * fan {
            tokio::select! {
                _ = shared.progress.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
            if stop(shared) {
                break;
            }
            continue;
        }
        send(sent);
        sent += 1;
    }
    let mark1 = c.mark();
    match mark0 {
        Some((m0, dstart)) => {
            let (wall, cpu) = m0.until(&mark1);
            contention(m, &m0, &mark1);
            (sent, wall, cpu, done(shared) - dstart)
        }
        None => (sent, 0.0, None, 0),
    }
}

/// Sleep until now_ns() >= target: coarse sleep, then yield-spin the last
/// stretch (the tokio timer has millisecond resolution).
pub(crate) async fn wait_until_ns(target: u64) {
    loop {
        let now = now_ns();
        if now >= target {
            return;
        }
        let left = target - now;
        if left > 2_000_000 {
            tokio::time::sleep(Duration::from_nanos(left - 1_500_000)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

// ---------------------------------------------------------------- idle

/// Open `n` connections and report the server's RSS growth per connection.
pub async fn idle(c: &Common, target: &Target, n: usize, settle: Duration) -> Vec<Value> {
    let variant = format!("{n}");
    let mut m = base(c, target, "idle", &variant, "memory");
    let shared = Shared::new(target.proto, c.pad.clone());
    // Warm up: one connection in and out, so one-time allocations (first
    // policy instance, JIT) are not charged to the measured connections.
    match target.open(&format!("{}warm", c.tag)).await {
        Ok(ws) => drop(ws),
        Err(e) => return vec![failed(c, target, "idle", &variant, "memory", e)],
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss0 = c.pid.and_then(rss_bytes);
    let mark0 = c.mark();
    let ids: Vec<String> = (0..n).map(|i| format!("{}i{i}", c.tag)).collect();
    let started = Instant::now();
    let opening = target.open_many(&ids, c.concurrency, |_, ws| {
        spawn_conn(ws, Role::Idle, shared.clone())
    });
    let txs: Vec<UnboundedSender<String>> =
        match tokio::time::timeout(c.setup_timeout, opening).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return vec![failed(c, target, "idle", &variant, "memory", e)],
            Err(_) => {
                let e = anyhow::anyhow!("set-up timed out");
                return vec![failed(c, target, "idle", &variant, "memory", e)];
            }
        };
    let open_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(settle).await;
    let rss1 = c.pid.and_then(rss_bytes);
    let mark1 = c.mark();
    let (_, cpu) = mark0.until(&mark1);
    contention(&mut m, &mark0, &mark1);
    m.insert("connections".into(), json!(n));
    m.insert("open_s".into(), json!(round2(open_secs)));
    m.insert("opened_per_s".into(), json!((n as f64 / open_secs).round()));
    if let (Some(a), Some(b)) = (rss0, rss1) {
        m.insert("rss_before_kib".into(), json!(a / 1024));
        m.insert("rss_after_kib".into(), json!(b / 1024));
        let per = (b as f64 - a as f64) / n as f64;
        m.insert("rss_per_conn_bytes".into(), json!(per.round()));
        m.insert("rss_per_conn_kib".into(), json!(round2(per / 1024.0)));
    }
    if let Some(cpu) = cpu {
        m.insert("server_cpu_s".into(), json!(round2(cpu)));
    }
    let out = finish(m, Some(&shared), None);
    drop(txs);
    vec![out]
}

// ---------------------------------------------------------------- fanout

/// Fan-out settings.
pub struct FanoutOpts {
    pub rooms: usize,
    pub members: usize,
    pub senders_per_room: usize,
    /// Offered loads in deliveries/s; 0 = saturation (closed loop).
    pub offered: Vec<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub grace: Duration,
    /// Saturation: messages in flight (sent, not yet delivered to every member).
    pub window: usize,
    /// Print a mark on stderr after set-up and after the last phase, and
    /// wait this long after each (see `loadgen fanout --help`).
    pub mark_pause: Option<Duration>,
}

/// Say on stderr that the run reached `what`, then pause, when asked to.
async fn mark(o: &FanoutOpts, what: &str) {
    if let Some(pause) = o.mark_pause {
        eprintln!("loadgen: mark {what}");
        tokio::time::sleep(pause).await;
    }
}

struct Pub {
    tx: UnboundedSender<String>,
    room: String,
}

/// Rooms of `members`; senders publish timestamped room messages.
pub async fn fanout(c: &Common, target: &Target, o: &FanoutOpts) -> Vec<Value> {
    let variant = format!("{}x{}", o.rooms, o.members);
    let shared = Shared::new(target.proto, c.pad.clone());
    let (txs, pubs) = match fanout_setup(c, target, o, &shared).await {
        Ok(v) => v,
        Err(e) => return vec![failed(c, target, "fanout", &variant, "setup", e)],
    };
    let fan = (o.members - 1) as u64;
    mark(o, "set-up-done").await;
    let mut out = Vec::new();
    for &offered in &o.offered {
        let r = if offered <= 0.0 {
            fanout_saturation(c, target, o, &shared, &pubs, fan, &variant).await
        } else {
            fanout_open_loop(c, target, o, &shared, &pubs, fan, &variant, offered).await
        };
        let bad = r.get("ok") != Some(&json!(true));
        out.push(r);
        if bad {
            break;
        }
    }
    mark(o, "phases-done").await;
    drop(pubs);
    drop(txs);
    out
}

async fn fanout_setup(
    c: &Common,
    target: &Target,
    o: &FanoutOpts,
    shared: &Rc<Shared>,
) -> Result<(Vec<UnboundedSender<String>>, Vec<Pub>)> {
    anyhow::ensure!(o.members >= 2, "a room needs at least 2 members");
    anyhow::ensure!(
        o.senders_per_room >= 1 && o.senders_per_room <= o.members,
        "bad senders per room"
    );
    let ids: Vec<String> = (0..o.rooms)
        .flat_map(|r| (0..o.members).map(move |m| (r, m)))
        .map(|(r, m)| format!("{}r{r}m{m}", c.tag))
        .collect();
    let opening = target.open_many(&ids, c.concurrency, |i, ws| {
        let tx = spawn_conn(ws, Role::Member, shared.clone());
        let room = format!("room{}", i / o.members);
        let _ = tx.send(target.proto.join(&room, i as u64 + 1));
        tx
    });
    let txs: Vec<UnboundedSender<String>> =
        tokio::time::timeout(c.setup_timeout, opening)
            .await
            .map_err(|_| anyhow::anyhow!("connecting timed out"))??;
    let total = (o.rooms * o.members) as u64;
    let expected_joined = (o.rooms * o.members * (o.members + 1) / 2) as u64;
    let ok = shared
        .wait_for(c.setup_timeout, |s| {
            (s.acks.get() >= total && s.joined.get() >= expected_joined)
                || s.closed.get() > 0
                || s.errors.get() > 0
        })
        .await;
    if !ok || shared.closed.get() > 0 || shared.errors.get() > 0 {
        anyhow::bail!(
            "joining: {} of {total} acks, {} of {expected_joined} joined frames; {}",
            shared.acks.get(),
            shared.joined.get(),
            shared
                .first_problem
                .borrow()
                .clone()
                .unwrap_or_else(|| "timed out".into())
        );
    }
    // Let stray frames settle, then check nothing more than expected came.
    // Across several nodes a `joined` reaches another node's members a
    // moment after the join, so members who joined there meanwhile hear it
    // too: more than M(M+1)/2, never fewer.
    tokio::time::sleep(Duration::from_millis(100)).await;
    anyhow::ensure!(
        shared.joined.get() == expected_joined
            || (target.addrs.len() > 1 && shared.joined.get() >= expected_joined),
        "got {} joined frames, expected {expected_joined}",
        shared.joined.get()
    );
    let mut pubs = Vec::new();
    for s in 0..o.senders_per_room {
        for r in 0..o.rooms {
            pubs.push(Pub {
                tx: txs[r * o.members + s].clone(),
                room: format!("room{r}"),
            });
        }
    }
    Ok((txs, pubs))
}

fn cpu_fields(
    m: &mut serde_json::Map<String, Value>,
    cpu: Option<f64>,
    wall: f64,
    deliveries: u64,
    per: &str,
) {
    // The apart processes' (Redis's) cost per unit too, when measured.
    if let Some(aux) = m.get("aux_cpu_s").and_then(Value::as_f64)
        && deliveries > 0
    {
        m.insert(
            format!("aux_cpu_s_per_m_{per}"),
            json!(round2(aux * 1e6 / deliveries as f64)),
        );
    }
    if let Some(cpu) = cpu {
        m.insert("server_cpu_s".into(), json!(round2(cpu)));
        m.insert("server_cpu_util".into(), json!(round2(cpu / wall)));
        if deliveries > 0 {
            m.insert(
                format!("cpu_s_per_m_{per}"),
                json!(round2(cpu * 1e6 / deliveries as f64)),
            );
        }
    }
}

async fn fanout_saturation(
    c: &Common,
    target: &Target,
    o: &FanoutOpts,
    shared: &Rc<Shared>,
    pubs: &[Pub],
    fan: u64,
    variant: &str,
) -> Value {
    let mut m = base(c, target, "fanout", variant, "saturation");
    let window = o.window as u64;
    let d0 = shared.deliveries.get();
    let (sent, wall, cpu, dd) = closed_loop(
        c,
        &mut m,
        shared,
        &ClosedLoop {
            warmup: o.warmup,
            duration: o.duration,
            window,
            fan,
        },
        |s| s.deliveries.get(),
        |s| s.closed.get() > 0,
        |k| {
            let p = &pubs[(k % pubs.len() as u64) as usize];
            let _ =
                p.tx.send(target.proto.room(&p.room, &data(now_ns(), &c.pad)));
        },
    )
    .await;
    // Drain, so the next phase starts from an idle server.
    let expected = d0 + sent * fan;
    let drained = shared
        .wait_for(o.grace, |s| s.deliveries.get() >= expected)
        .await;
    m.insert("members".into(), json!(o.members));
    m.insert("rooms".into(), json!(o.rooms));
    m.insert("window_msgs".into(), json!(window));
    m.insert("messages".into(), json!(sent));
    m.insert("deliveries".into(), json!(dd));
    m.insert(
        "deliveries_per_s".into(),
        json!(if wall > 0.0 {
            (dd as f64 / wall).round()
        } else {
            0.0
        }),
    );
    percentiles(
        &mut m,
        &shared.hist.borrow(),
        &[("p50", 0.5), ("p99", 0.99), ("p999", 0.999)],
    );
    cpu_fields(&mut m, cpu, wall, dd, "deliveries");
    let problem = if dd == 0 {
        Some("no deliveries".to_string())
    } else if !drained {
        Some(format!(
            "{} of {} deliveries missing after the grace period",
            expected - shared.deliveries.get(),
            sent * fan
        ))
    } else {
        None
    };
    finish(m, Some(shared), problem)
}

#[allow(clippy::too_many_arguments)]
async fn fanout_open_loop(
    c: &Common,
    target: &Target,
    o: &FanoutOpts,
    shared: &Rc<Shared>,
    pubs: &[Pub],
    fan: u64,
    variant: &str,
    offered: f64,
) -> Value {
    let mut m = base(c, target, "fanout", variant, "latency");
    let msg_rate = offered / fan as f64;
    let d_start = shared.deliveries.get();
    let (sent, in_window, wall, cpu, dd) =
        open_loop(c, &mut m, shared, o.warmup, o.duration, msg_rate, |k, t| {
            let p = &pubs[(k % pubs.len() as u64) as usize];
            let _ = p.tx.send(target.proto.room(&p.room, &data(t, &c.pad)));
        })
        .await;
    let expected = in_window * fan;
    let all_recorded = shared
        .wait_for(o.grace, |s| s.recorded.get() >= expected)
        .await;
    m.insert("members".into(), json!(o.members));
    m.insert("rooms".into(), json!(o.rooms));
    m.insert("offered_per_s".into(), json!(offered.round()));
    m.insert("messages".into(), json!(sent));
    m.insert(
        "deliveries_per_s".into(),
        json!(if wall > 0.0 {
            (dd as f64 / wall).round()
        } else {
            0.0
        }),
    );
    percentiles(
        &mut m,
        &shared.hist.borrow(),
        &[("p50", 0.5), ("p99", 0.99), ("p999", 0.999)],
    );
    m.insert(
        "missing".into(),
        json!(expected.saturating_sub(shared.recorded.get())),
    );
    cpu_fields(&mut m, cpu, wall, dd, "deliveries");
    let problem = if !all_recorded {
        Some(format!(
            "{} of {expected} deliveries of the measured window missing after the grace period",
            expected - shared.recorded.get()
        ))
    } else {
        None
    };
    // Wait out stragglers (e.g. from the warm-up) before the next phase.
    let all_delivered = shared
        .wait_for(o.grace, |s| s.deliveries.get() >= d_start + sent * fan)
        .await;
    let problem = problem.or_else(|| {
        (!all_delivered).then(|| {
            format!(
                "{} of {} deliveries missing after the grace period",
                (d_start + sent * fan).saturating_sub(shared.deliveries.get()),
                sent * fan
            )
        })
    });
    finish(m, Some(shared), problem)
}

/// An open-loop schedule at `rate` per second for `warmup + duration`:
/// message k is intended for t0 + k/rate and carries that time, whenever it
/// actually goes out (so a stall is charged to latency: no coordinated
/// omission). Returns (sent, sent in the measured window, measured wall
/// seconds, server CPU seconds, deliveries in the window).
async fn open_loop(
    c: &Common,
    m: &mut serde_json::Map<String, Value>,
    shared: &Rc<Shared>,
    warmup: Duration,
    duration: Duration,
    rate: f64,
    mut send: impl FnMut(u64, u64),
) -> (u64, u64, f64, Option<f64>, u64) {
    let interval = 1e9 / rate.max(1e-3);
    let t0 = now_ns() + 5_000_000;
    let lo = t0 + warmup.as_nanos() as u64;
    let hi = lo + duration.as_nanos() as u64;
    shared.record_window(lo, hi);
    let mut k = 0u64;
    let mut in_window = 0u64;
    let mut mark0 = None;
    loop {
        let intended = t0 + (k as f64 * interval) as u64;
        if intended >= hi {
            break;
        }
        wait_until_ns(intended).await;
        if intended >= lo {
            if mark0.is_none() {
                mark0 = Some((c.mark(), shared.deliveries.get() + shared.round_trips.get()));
            }
            in_window += 1;
        }
        send(k, intended);
        k += 1;
        if shared.closed.get() > 0 {
            break;
        }
    }
    wait_until_ns(hi).await;
    let mark1 = c.mark();
    let now_count = shared.deliveries.get() + shared.round_trips.get();
    match mark0 {
        Some((m0, d0)) => {
            let (wall, cpu) = m0.until(&mark1);
            contention(m, &m0, &mark1);
            (k, in_window, wall, cpu, now_count - d0)
        }
        None => (k, in_window, 0.0, None, 0),
    }
}

// ---------------------------------------------------------------- notice

/// Notice settings.
pub struct NoticeOpts {
    pub pairs: usize,
    /// Offered loads in round trips/s; 0 = saturation (closed loop).
    pub offered: Vec<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub grace: Duration,
    /// Saturation: round trips in flight.
    pub window: usize,
}

/// Pairs (initiator, echoer): the initiator sends a timestamped notice, the
/// echoer sends it straight back as a notice; latency = round trip.
pub async fn notice(c: &Common, target: &Target, o: &NoticeOpts) -> Vec<Value> {
    let variant = format!("{}pairs", o.pairs);
    let shared = Shared::new(target.proto, c.pad.clone());
    let mut ids = Vec::new();
    for p in 0..o.pairs {
        ids.push(format!("{}n{p}i", c.tag));
        ids.push(format!("{}n{p}e", c.tag));
    }
    let opening = target.open_many(&ids, c.concurrency, |i, ws| {
        if i % 2 == 0 {
            spawn_conn(ws, Role::Initiator, shared.clone())
        } else {
            let partner: Rc<str> = Rc::from(ids[i - 1].as_str());
            spawn_conn(ws, Role::Echoer { partner }, shared.clone())
        }
    });
    let txs = match tokio::time::timeout(c.setup_timeout, opening).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return vec![failed(c, target, "notice", &variant, "setup", e)],
        Err(_) => {
            let e = anyhow::anyhow!("set-up timed out");
            return vec![failed(c, target, "notice", &variant, "setup", e)];
        }
    };
    let mut initiators = Vec::new();
    let mut keep = Vec::new();
    for (i, tx) in txs.into_iter().enumerate() {
        if i % 2 == 0 {
            initiators.push((tx, ids[i + 1].clone()));
        } else {
            keep.push(tx);
        }
    }
    let mut out = Vec::new();
    for &offered in &o.offered {
        let r = if offered <= 0.0 {
            notice_saturation(c, target, o, &shared, &initiators, &variant).await
        } else {
            notice_open_loop(c, target, o, &shared, &initiators, &variant, offered).await
        };
        let bad = r.get("ok") != Some(&json!(true));
        out.push(r);
        if bad {
            break;
        }
    }
    drop(initiators);
    drop(keep);
    out
}

async fn notice_saturation(
    c: &Common,
    target: &Target,
    o: &NoticeOpts,
    shared: &Rc<Shared>,
    initiators: &[(UnboundedSender<String>, String)],
    variant: &str,
) -> Value {
    let mut m = base(c, target, "notice", variant, "saturation");
    let window = o.window as u64;
    let r0 = shared.round_trips.get();
    let (sent, wall, cpu, n) = closed_loop(
        c,
        &mut m,
        shared,
        &ClosedLoop {
            warmup: o.warmup,
            duration: o.duration,
            window,
            fan: 1,
        },
        |s| s.round_trips.get(),
        |s| s.closed.get() > 0 || s.errors.get() > 0,
        |k| {
            let (tx, to) = &initiators[(k % initiators.len() as u64) as usize];
            let _ = tx.send(target.proto.notice(to, &data(now_ns(), &c.pad)));
        },
    )
    .await;
    let expected = r0 + sent;
    let drained = shared
        .wait_for(o.grace, |s| s.round_trips.get() >= expected)
        .await;
    m.insert("pairs".into(), json!(o.pairs));
    m.insert("window".into(), json!(window));
    m.insert("round_trips".into(), json!(n));
    m.insert(
        "round_trips_per_s".into(),
        json!(if wall > 0.0 {
            (n as f64 / wall).round()
        } else {
            0.0
        }),
    );
    percentiles(
        &mut m,
        &shared.hist.borrow(),
        &[("p50", 0.5), ("p99", 0.99)],
    );
    // Each round trip is two notices through the server.
    cpu_fields(&mut m, cpu, wall, n * 2, "notices");
    let problem = if n == 0 {
        Some("no round trip completed".into())
    } else if !drained {
        Some(format!(
            "{} round trips never completed",
            expected - shared.round_trips.get()
        ))
    } else {
        None
    };
    finish(m, Some(shared), problem)
}

async fn notice_open_loop(
    c: &Common,
    target: &Target,
    o: &NoticeOpts,
    shared: &Rc<Shared>,
    initiators: &[(UnboundedSender<String>, String)],
    variant: &str,
    offered: f64,
) -> Value {
    let mut m = base(c, target, "notice", variant, "latency");
    let (sent, in_window, wall, cpu, n) =
        open_loop(c, &mut m, shared, o.warmup, o.duration, offered, |k, t| {
            let (tx, to) = &initiators[(k % initiators.len() as u64) as usize];
            let _ = tx.send(target.proto.notice(to, &data(t, &c.pad)));
        })
        .await;
    let all = shared
        .wait_for(o.grace, |s| s.recorded.get() >= in_window)
        .await;
    m.insert("pairs".into(), json!(o.pairs));
    m.insert("offered_per_s".into(), json!(offered.round()));
    m.insert("sent".into(), json!(sent));
    m.insert(
        "round_trips_per_s".into(),
        json!(if wall > 0.0 {
            (n as f64 / wall).round()
        } else {
            0.0
        }),
    );
    percentiles(
        &mut m,
        &shared.hist.borrow(),
        &[("p50", 0.5), ("p99", 0.99), ("p999", 0.999)],
    );
    m.insert(
        "missing".into(),
        json!(in_window.saturating_sub(shared.recorded.get())),
    );
    cpu_fields(&mut m, cpu, wall, n * 2, "notices");
    let problem = (!all).then(|| {
        format!(
            "{} of {in_window} round trips of the measured window missing after the grace period",
            in_window - shared.recorded.get()
        )
    });
    finish(m, Some(shared), problem)
}
