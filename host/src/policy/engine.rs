//! The wasmtime engine: compiler settings, the pooling allocator sized from
//! the limits, and the epoch ticker that makes per-call deadlines work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::types::LoadError;
use crate::config::PolicyLimits;

/// How often the epoch advances; deadlines are counted in these ticks.
/// Every tick wakes a thread (1 ms was 2 % of a busy server's CPU, 2 ms is
/// 1 %), and a call may run up to one tick past its deadline.
pub const TICK: Duration = Duration::from_millis(2);

/// Build an engine for policies under `limits`, and start its ticker.
pub fn build(limits: &PolicyLimits) -> Result<(Engine, Ticker), LoadError> {
    let mut pool = PoolingAllocationConfig::default();
    let n = limits.pool_instances.max(2);
    // A wasip2 component made by rustc holds a handful of core instances,
    // memories and tables (the program, the WASI adapter, shims).
    pool.total_component_instances(n)
        .total_core_instances(n * 8)
        .total_memories(n * 4)
        .total_tables(n * 8)
        .total_stacks(n)
        .max_memory_size(limits.memory_bytes);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if std::env::var_os("SWITCHBOARD_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&config).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
    let ticker = start_ticker(&engine)?;
    Ok((engine, ticker))
}

/// Epoch ticks that take at least `deadline` of wall time and at most one
/// tick more (the first tick may come at once).
pub fn ticks(deadline: Duration) -> u64 {
    deadline.as_micros().div_ceil(TICK.as_micros()) as u64 + 1
}

/// Ticks without a call after which the ticker stops until the next call.
const IDLE_TICKS: u32 = 25;

/// The thread that advances the epoch. It ticks while calls come, and
/// parks once none has come for `IDLE_TICKS`: an idle server then costs no
/// wake-ups at all (ticking every millisecond for ever was 2 % of a core).
#[derive(Debug, Clone)]
pub struct Ticker {
    shared: Arc<TickerState>,
}

#[derive(Debug)]
struct TickerState {
    /// A call started since the last tick.
    called: AtomicBool,
    /// Calls running now (a call can outlast many ticks).
    running: AtomicUsize,
    /// Ticks so far.
    ticks: AtomicU64,
    /// The ticker is parked, or about to park.
    parked: AtomicBool,
    /// The ticker's thread, to unpark.
    thread: std::sync::OnceLock<thread::Thread>,
}

impl Ticker {
    /// A call is about to run: the epoch advances until the returned guard
    /// is dropped. A few atomic operations; a wake-up only after an idle
    /// spell.
    pub fn call_starts(&self) -> Running<'_> {
        let s = &*self.shared;
        s.running.fetch_add(1, Ordering::SeqCst);
        s.called.store(true, Ordering::SeqCst);
        if s.parked.load(Ordering::SeqCst)
            && let Some(thread) = s.thread.get()
        {
            thread.unpark();
        }
        Running(s)
    }
}

/// A call in progress (see [`Ticker::call_starts`]).
#[must_use]
pub struct Running<'a>(&'a TickerState);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Advance the epoch every `TICK` while calls come, until the engine is
/// dropped.
fn start_ticker(engine: &Engine) -> Result<Ticker, LoadError> {
    let weak = engine.weak();
    let ticker = Ticker {
        shared: Arc::new(TickerState {
            called: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            ticks: AtomicU64::new(0),
            parked: AtomicBool::new(false),
            thread: std::sync::OnceLock::new(),
        }),
    };
    let state = ticker.shared.clone();
    let handle = thread::Builder::new()
        .name("policy-epoch".into())
        .spawn(move || {
            let mut idle = 0;
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                state.ticks.fetch_add(1, Ordering::Relaxed);
                let called = state.called.swap(false, Ordering::SeqCst);
                if called || state.running.load(Ordering::SeqCst) > 0 {
                    idle = 0;
                } else {
                    idle += 1;
                }
                if idle < IDLE_TICKS {
                    thread::sleep(TICK);
                    continue;
                }
                // Announce the park, then look once more: a call that
                // started in between either sees `parked` (and unparks) or
                // is seen here.
                state.parked.store(true, Ordering::SeqCst);
                if !state.called.load(Ordering::SeqCst) {
                    // Bounded, so a dropped engine is noticed.
                    thread::park_timeout(Duration::from_secs(1));
                }
                state.parked.store(false, Ordering::SeqCst);
                idle = 0;
            }
        })
        .map_err(|e| LoadError::Engine(format!("cannot start the epoch ticker: {e}")))?;
    let _ = ticker.shared.thread.set(handle.thread().clone());
    Ok(ticker)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// Wait (bounded) until `done` holds, checking `invariant` each time.
    fn until(what: &str, done: impl Fn() -> bool, invariant: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(invariant(), "invariant broken while waiting for {what}");
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}"
            );
            thread::sleep(TICK);
        }
    }

    #[test]
    fn a_deadline_gets_its_time_and_at_most_a_tick_more() {
        // The first tick can come at once, so one more than the deadline
        // holds; a deadline of 0 still gets that one tick.
        assert_eq!(ticks(Duration::from_millis(10)), 10 / 2 + 1);
        assert_eq!(ticks(Duration::from_millis(1)), 2);
        assert_eq!(ticks(Duration::from_millis(3)), 3);
        assert_eq!(ticks(Duration::ZERO), 1);
    }

    #[test]
    fn the_ticker_rests_when_idle_and_ticks_while_a_call_runs() {
        let (_engine, ticker) = build(&PolicyLimits::default()).expect("an engine");
        let s = &*ticker.shared;
        until(
            "the ticker to rest",
            || s.parked.load(Ordering::SeqCst),
            || true,
        );
        let parked_at = s.ticks.load(Ordering::SeqCst);

        // A call wakes it, and it keeps ticking for as long as the call
        // runs, well past the idle spell after which it would rest.
        let running = ticker.call_starts();
        let goal = parked_at + 3 * u64::from(IDLE_TICKS);
        until(
            "ticks during a long call",
            || s.ticks.load(Ordering::SeqCst) >= goal,
            || !s.parked.load(Ordering::SeqCst) || s.ticks.load(Ordering::SeqCst) == parked_at,
        );
        drop(running);
        until(
            "the ticker to rest again",
            || s.parked.load(Ordering::SeqCst),
            || true,
        );
    }
}
