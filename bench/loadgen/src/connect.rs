//! The connect scenario: handshakes (TCP, TLS for wss, upgrade, welcome),
//! each followed by a close frame and a reset. One phase per offered load:
//! 0 is saturation (a closed loop with a fixed number in flight), anything
//! else an open-loop schedule at that many handshakes per second, so the
//! server's CPU per handshake can be compared at a load every peer carries.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::conn::{Shared, Target, now_ns};
use crate::scenarios::{Common, base, contention, finish, percentiles, round2, wait_until_ns};

/// Connect settings.
pub struct ConnectOpts {
    /// Saturation: handshakes under way at any time.
    pub in_flight: usize,
    /// Offered loads in handshakes/s; 0 = saturation.
    pub offered: Vec<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    /// Fixed loads: time allowed for the last handshakes to finish.
    pub grace: Duration,
}

/// At a fixed load, never more handshakes open than this (fds here and in
/// the server): past it the next one waits, keeping its intended start, so
/// a server that falls behind shows it as latency.
const MAX_OPEN: u64 = 1024;

/// Every phase of `o.offered`, in order; stops at the first that fails.
pub async fn connect(c: &Common, target: &Rc<Target>, o: &ConnectOpts) -> Vec<Value> {
    let mut out = Vec::new();
    for (phase, &offered) in o.offered.iter().enumerate() {
        let r = if offered <= 0.0 {
            saturation(c, target, o, phase).await
        } else {
            fixed(c, target, o, phase, offered).await
        };
        let bad = r.get("ok") != Some(&json!(true));
        out.push(r);
        if bad {
            break;
        }
    }
    out
}

fn variant(target: &Target) -> &'static str {
    if target.tls.is_some() { "wss" } else { "ws" }
}

fn new_hist() -> RefCell<Histogram<u64>> {
    RefCell::new(Histogram::<u64>::new_with_bounds(1, 120_000_000_000, 3).expect("bounds"))
}

/// Server CPU over the window: utilisation and CPU s per million handshakes
/// (the same number as ms per thousand, the field's name).
fn cpu_fields(m: &mut serde_json::Map<String, Value>, cpu: Option<f64>, wall: f64, n: u64) {
    if let Some(cpu) = cpu {
        m.insert("server_cpu_s".into(), json!(round2(cpu)));
        if wall > 0.0 {
            m.insert("server_cpu_util".into(), json!(round2(cpu / wall)));
        }
        if n > 0 {
            m.insert(
                "cpu_ms_per_k_handshakes".into(),
                json!(round2(cpu * 1e6 / n as f64)),
            );
        }
    }
}

/// Closed loop: `in_flight` workers each connect, close, and connect again,
/// for `warmup + duration`; handshakes completed in the measured window
/// count, whenever they started.
async fn saturation(c: &Common, target: &Rc<Target>, o: &ConnectOpts, phase: usize) -> Value {
    let mut m = base(c, target, "connect", variant(target), "saturation");
    let shared = Shared::new(target.proto, c.pad.clone());
    let start = Instant::now();
    let warm_end = start + o.warmup;
    let end = warm_end + o.duration;
    let count = Rc::new(Cell::new(0u64));
    let hist = Rc::new(new_hist());
    let failures = Rc::new(Cell::new(0u64));
    let first_err: Rc<RefCell<Option<String>>> = Rc::default();
    let mut workers = Vec::new();
    for w in 0..o.in_flight {
        let (count, hist, failures, first_err) = (
            count.clone(),
            hist.clone(),
            failures.clone(),
            first_err.clone(),
        );
        let tag = c.tag.clone();
        let target = target.clone();
        workers.push(tokio::task::spawn_local(async move {
            let mut n = 0u64;
            loop {
                let t = Instant::now();
                n += 1;
                match target.open(&format!("{tag}c{phase}w{w}_{n}")).await {
                    Ok(mut ws) => {
                        let done = Instant::now();
                        if done >= warm_end && done < end {
                            count.set(count.get() + 1);
                            let _ = hist.borrow_mut().record((done - t).as_nanos() as u64);
                        }
                        let _ = ws.close(None).await;
                        drop(ws);
                    }
                    Err(e) => {
                        let done = Instant::now();
                        if done >= warm_end && done < end {
                            failures.set(failures.get() + 1);
                            first_err.borrow_mut().get_or_insert(format!("{e:#}"));
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }
    tokio::time::sleep_until(warm_end.into()).await;
    let mark0 = c.mark();
    tokio::time::sleep_until(end.into()).await;
    let mark1 = c.mark();
    for w in &workers {
        w.abort();
    }
    let (wall, cpu) = mark0.until(&mark1);
    contention(&mut m, &mark0, &mark1);
    let n = count.get();
    m.insert("in_flight".into(), json!(o.in_flight));
    m.insert("handshakes".into(), json!(n));
    m.insert("handshakes_per_s".into(), json!((n as f64 / wall).round()));
    m.insert("failures".into(), json!(failures.get()));
    percentiles(&mut m, &hist.borrow(), &[("p50", 0.5), ("p99", 0.99)]);
    cpu_fields(&mut m, cpu, wall, n);
    let problem = if n == 0 {
        Some(
            first_err
                .borrow()
                .clone()
                .unwrap_or_else(|| "no handshake completed".into()),
        )
    } else if failures.get() > 0 {
        first_err
            .borrow()
            .clone()
            .map(|e| format!("{} handshakes failed, first: {e}", failures.get()))
    } else {
        None
    };
    finish(m, Some(&shared), problem)
}

/// What the handshakes of an open-loop phase report back.
#[derive(Default)]
struct Tally {
    /// Handshakes under way.
    open: Cell<u64>,
    /// Handshakes that completed inside the measured window.
    in_window: Cell<u64>,
    /// Handshakes intended inside the window that completed (latency recorded).
    recorded: Cell<u64>,
    failures: Cell<u64>,
    first_err: RefCell<Option<String>>,
}

/// Open loop at `rate` handshakes per second for `warmup + duration`:
/// handshake k starts at t0 + k/rate, whether or not earlier ones are done,
/// and its latency runs from that intended start to the welcome (no
/// coordinated omission). The server's CPU over the measured window is
/// divided by the handshakes completed in it.
async fn fixed(c: &Common, target: &Rc<Target>, o: &ConnectOpts, phase: usize, rate: f64) -> Value {
    let mut m = base(c, target, "connect", variant(target), "latency");
    let shared = Shared::new(target.proto, c.pad.clone());
    let tally = Rc::new(Tally::default());
    let hist = Rc::new(new_hist());
    let interval = 1e9 / rate.max(1e-3);
    let t0 = now_ns() + 5_000_000;
    let lo = t0 + o.warmup.as_nanos() as u64;
    let hi = lo + o.duration.as_nanos() as u64;
    let mut k = 0u64;
    let mut intended_in_window = 0u64;
    let mut mark0 = None;
    loop {
        let intended = t0 + (k as f64 * interval) as u64;
        if intended >= hi {
            break;
        }
        wait_until_ns(intended).await;
        while tally.open.get() >= MAX_OPEN {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if intended >= lo {
            if mark0.is_none() {
                mark0 = Some(c.mark());
            }
            intended_in_window += 1;
        }
        tally.open.set(tally.open.get() + 1);
        let (tally, hist, target) = (tally.clone(), hist.clone(), target.clone());
        let id = format!("{}c{phase}f{k}", c.tag);
        tokio::task::spawn_local(async move {
            let r = target.open(&id).await;
            let done = now_ns();
            match r {
                Ok(mut ws) => {
                    if done >= lo && done < hi {
                        tally.in_window.set(tally.in_window.get() + 1);
                    }
                    if intended >= lo && intended < hi {
                        let _ = hist
                            .borrow_mut()
                            .record(done.saturating_sub(intended).max(1));
                        tally.recorded.set(tally.recorded.get() + 1);
                    }
                    let _ = ws.close(None).await;
                    drop(ws);
                }
                Err(e) => {
                    tally.failures.set(tally.failures.get() + 1);
                    tally.first_err.borrow_mut().get_or_insert(format!("{e:#}"));
                }
            }
            tally.open.set(tally.open.get() - 1);
        });
        k += 1;
    }
    wait_until_ns(hi).await;
    let mark1 = c.mark();
    let n = tally.in_window.get();
    let (wall, cpu) = match &mark0 {
        Some(m0) => {
            contention(&mut m, m0, &mark1);
            m0.until(&mark1)
        }
        None => (0.0, None),
    };
    // The last handshakes finish (and close) before the next phase.
    let deadline = tokio::time::Instant::now() + o.grace;
    while tally.open.get() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    m.insert("offered_per_s".into(), json!(rate.round()));
    m.insert("started".into(), json!(k));
    m.insert("handshakes".into(), json!(n));
    m.insert(
        "handshakes_per_s".into(),
        json!(if wall > 0.0 {
            (n as f64 / wall).round()
        } else {
            0.0
        }),
    );
    m.insert("failures".into(), json!(tally.failures.get()));
    percentiles(
        &mut m,
        &hist.borrow(),
        &[("p50", 0.5), ("p99", 0.99), ("p999", 0.999)],
    );
    let missing = intended_in_window.saturating_sub(tally.recorded.get());
    m.insert("missing".into(), json!(missing));
    cpu_fields(&mut m, cpu, wall, n);
    let problem = if tally.failures.get() > 0 {
        tally
            .first_err
            .borrow()
            .clone()
            .map(|e| format!("{} handshakes failed, first: {e}", tally.failures.get()))
    } else if n == 0 {
        Some("no handshake completed in the measured window".into())
    } else if tally.open.get() > 0 {
        Some(format!(
            "{} handshakes still open after the grace period ({missing} of the measured window)",
            tally.open.get()
        ))
    } else {
        None
    };
    finish(m, Some(&shared), problem)
}
