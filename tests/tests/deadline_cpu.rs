//! The call deadline counts the CPU time a call uses, not the wall time it
//! takes: a call whose thread the machine starves is not failed for time
//! the policy never had (this used to fail healthy calls on busy CI
//! machines with "policy ran out of time (10 ms)").
//!
//! The starving is real: this test's thread (which, under a current-thread
//! runtime, runs the server's connection tasks and so the policy calls) is
//! pinned to one CPU at a low priority (nice 10), beside a thread that
//! spins on the same CPU at the normal one. The scheduler then gives the
//! call about a tenth of that CPU, so a call of a few milliseconds of work
//! takes several times its deadline in wall time (and far less than the
//! wall-clock backstop of 1 s). A test binary of its
//! own, so that no other test shares the starved CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use switchboard_tests::{Client, TestServer, misbehave_config};

/// The call deadline here: long enough for the work, far shorter than the
/// starved call takes in wall time.
const DEADLINE: Duration = Duration::from_millis(16);

/// Unstarved, the call's work takes at least this long (and so, as CPU
/// time, at least this share of the deadline).
const WORK: Duration = Duration::from_millis(4);

/// Starved calls to try: one that the scheduler happens to let run through
/// is not starved, and proves nothing.
const ATTEMPTS: usize = 5;

/// Send `work <n>` and wait for its answer; the round trip's wall time.
async fn work(c: &mut Client, n: u64) -> Result<Duration> {
    let started = Instant::now();
    c.send_text(&format!("work {n}")).await?;
    let got = c.recv_text().await?;
    let took = started.elapsed();
    ensure!(
        got == format!("worked {n}"),
        "work {n}: expected its answer, got {got:?}"
    );
    Ok(took)
}

/// The first CPU this thread may run on.
fn a_cpu() -> Result<usize> {
    // SAFETY: a zeroed cpu_set_t is an empty set, and the call fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    ensure!(
        rc == 0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    (0..libc::CPU_SETSIZE as usize)
        .find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .ok_or_else(|| anyhow::anyhow!("no CPU to run on"))
}

/// Pin the calling thread to `cpu`.
fn pin(cpu: usize) -> Result<()> {
    // SAFETY: as in `a_cpu`; `cpu` is below CPU_SETSIZE.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    ensure!(
        rc == 0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// Give the calling thread (only: on Linux a thread id names one thread)
/// a low priority.
fn low_priority() -> Result<()> {
    // SAFETY: plain system calls on this thread's own id.
    let tid = unsafe { libc::gettid() };
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) };
    ensure!(rc == 0, "setpriority: {}", std::io::Error::last_os_error());
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn a_starved_call_is_not_failed_for_time_it_did_not_use() -> Result<()> {
    let mut config = misbehave_config();
    config.policy_limits.call_deadline = DEADLINE;
    // The server's own threads (the epoch ticker among them) start before
    // this thread is starved, so they do not inherit its CPU or priority.
    let server = TestServer::start(config).await?;
    let mut c = server.connect("worker").await?;
    let welcome = c.recv_text().await?;
    ensure!(welcome == "welcome worker", "got {welcome:?}");

    // Find an amount of work that takes WORK unstarved.
    let mut n: u64 = 100_000;
    loop {
        if work(&mut c, n).await? >= WORK {
            break;
        }
        if n > 1 << 40 {
            bail!("work {n} still takes less than {WORK:?}");
        }
        n += n / 2;
    }
    // Unstarved, that work is well within the deadline.
    let unstarved = work(&mut c, n).await?;
    ensure!(
        unstarved < DEADLINE / 2,
        "work {n} took {unstarved:?} unstarved: too close to the deadline to test"
    );

    let cpu = a_cpu()?;
    let stop = Arc::new(AtomicBool::new(false));
    let spinning = Arc::new(AtomicBool::new(false));
    let spinner = {
        let (stop, spinning) = (stop.clone(), spinning.clone());
        std::thread::spawn(move || -> Result<()> {
            let pinned = pin(cpu);
            spinning.store(true, Ordering::Release);
            pinned?;
            while !stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
            Ok(())
        })
    };
    // The spinner holds the CPU before this thread joins it.
    while !spinning.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    pin(cpu)?;
    low_priority()?;
    // Every call must succeed; at least one must have been starved.
    let mut took = Vec::new();
    let mut outcome = Ok(());
    for _ in 0..ATTEMPTS {
        match work(&mut c, n).await {
            Ok(t) => took.push(t),
            Err(e) => {
                outcome = Err(e.context(format!("starved call after {took:?}")));
                break;
            }
        }
        if took.last().is_some_and(|&t| t > DEADLINE) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    match spinner.join() {
        Ok(r) => r?,
        Err(_) => bail!("the spinner panicked"),
    }
    outcome?;
    ensure!(
        took.iter().any(|&t| t > DEADLINE),
        "no call was starved past the deadline: {took:?} (unstarved {unstarved:?})"
    );
    c.close().await?;
    server.shutdown().await
}
