//! Per-call deadlines counted in the CPU time of the calling thread.
//!
//! A deadline in wall time fails healthy calls whenever the machine is
//! busy: a thread descheduled in the middle of a 5 µs call comes back after
//! the deadline, and the sender gets `policy-failed` for something the
//! policy did not do (seen in CI, a 2-core machine running test suites side
//! by side). What a guest controls is the CPU it burns; it cannot wait
//! (`no_wait`), so a call's wall time beyond its CPU time is the host's own.
//!
//! The epoch ticker still drives the check, so an ordinary call costs
//! nothing more: the thread's CPU clock (a system call) is read only when a
//! call is still running at an epoch tick. The first such tick starts the
//! count; then the call may go on until it has used its budget since. The
//! CPU it used before that first tick (at most one tick's worth) is not
//! counted, so a call gets at least its budget and at most one tick more,
//! as before.
//!
//! A wall-clock backstop stays, for whatever could hold a thread without
//! burning its CPU: `WALL_FACTOR` times the budget, and never less than
//! `MIN_WALL`.

use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

use super::engine;

/// Wall time a call may take, as a multiple of its CPU budget.
const WALL_FACTOR: u32 = 10;

/// The least wall time a call may take, whatever its budget.
const MIN_WALL: Duration = Duration::from_secs(1);

/// The deadline of the call running in one store.
#[derive(Debug)]
pub struct Deadline {
    /// CPU time the call may use.
    budget: Duration,
    /// When the count started: the first epoch tick the call saw.
    since: Option<Reading>,
}

/// A reading of both clocks.
#[derive(Debug, Clone, Copy)]
struct Reading {
    wall: Instant,
    cpu: Duration,
}

impl Reading {
    fn now() -> Self {
        Reading {
            wall: Instant::now(),
            cpu: thread_cpu(),
        }
    }
}

/// What to do with a call that is still running at a tick.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Let it run for this much more CPU time.
    Continue(Duration),
    /// It has used its budget, or the wall-clock backstop.
    Stop,
}

impl Deadline {
    pub fn new() -> Self {
        Deadline {
            budget: Duration::ZERO,
            since: None,
        }
    }

    /// A call with `budget` of CPU time is about to start: the epoch
    /// deadline (in ticks) to set on its store. The count starts at the
    /// next tick.
    pub fn arm(&mut self, budget: Duration) -> u64 {
        self.budget = budget;
        self.since = None;
        1
    }

    /// The epoch reached the store's deadline while the call ran.
    pub fn on_tick(&mut self) -> UpdateDeadline {
        let now = Reading::now();
        let Some(since) = self.since else {
            self.since = Some(now);
            return UpdateDeadline::Continue(engine::ticks(self.budget));
        };
        match judge(
            self.budget,
            now.cpu.saturating_sub(since.cpu),
            now.wall.saturating_duration_since(since.wall),
        ) {
            Verdict::Continue(left) => UpdateDeadline::Continue(engine::ticks(left)),
            Verdict::Stop => UpdateDeadline::Interrupt,
        }
    }
}

/// A call with `budget` that has used `cpu` and taken `wall` since its
/// count started.
fn judge(budget: Duration, cpu: Duration, wall: Duration) -> Verdict {
    let backstop = budget.saturating_mul(WALL_FACTOR).max(MIN_WALL);
    if cpu >= budget || wall >= backstop {
        Verdict::Stop
    } else {
        Verdict::Continue(budget - cpu)
    }
}

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_descheduled_call_goes_on_until_its_cpu_is_spent() {
        // 40 ms gone, 3 used of 10: 7 ms more.
        assert_eq!(judge(10 * MS, 3 * MS, 40 * MS), Verdict::Continue(7 * MS));
        assert_eq!(judge(10 * MS, 10 * MS, 10 * MS), Verdict::Stop);
        assert_eq!(judge(10 * MS, 12 * MS, 12 * MS), Verdict::Stop);
    }

    #[test]
    fn the_wall_backstop_is_ten_budgets_and_at_least_a_second() {
        assert_eq!(judge(10 * MS, MS, 999 * MS), Verdict::Continue(9 * MS));
        assert_eq!(judge(10 * MS, MS, 1000 * MS), Verdict::Stop);
        assert_eq!(judge(200 * MS, MS, 1999 * MS), Verdict::Continue(199 * MS));
        assert_eq!(judge(200 * MS, MS, 2000 * MS), Verdict::Stop);
    }

    #[test]
    fn the_thread_clock_counts_work_not_sleep() {
        let before = thread_cpu();
        std::thread::sleep(20 * MS);
        let slept = thread_cpu() - before;
        assert!(slept < 10 * MS, "sleeping used {slept:?} of CPU");
        let before = thread_cpu();
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < 20 * MS {
            n = std::hint::black_box(n.wrapping_add(1));
        }
        assert!(thread_cpu() > before, "spinning used no CPU");
    }

    #[test]
    fn the_first_tick_starts_the_count() {
        let mut d = Deadline::new();
        assert_eq!(d.arm(10 * MS), 1);
        assert!(matches!(
            d.on_tick(),
            UpdateDeadline::Continue(t) if t == engine::ticks(10 * MS)
        ));
        assert!(d.since.is_some());
        // A new call starts a new count.
        d.arm(10 * MS);
        assert!(d.since.is_none());
    }
}
