//! What the load generator reads about the server process from /proc, and
//! the one rlimit it raises for itself.

use std::time::Instant;

/// Resident memory of `pid` in bytes (VmRSS of /proc/<pid>/status).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time (user + system, all threads) of `pid` in seconds, from
/// /proc/<pid>/stat utime + stime.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let tck = if tck > 0 { tck as f64 } else { 100.0 };
    Some((utime + stime) as f64 / tck)
}

/// Raise this process's open-file soft limit to its hard limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur
}

/// CPU time of all of `pid`'s threads in seconds, from the scheduler's
/// nanosecond clock (first field of /proc/<pid>/task/*/schedstat): for a
/// process that uses little CPU (Redis at a light load), where utime+stime,
/// counted in 10 ms ticks, would be mostly rounding.
pub fn cpu_runtime_seconds(pid: u32) -> Option<f64> {
    schedstat_sum(&pid.to_string(), 0)
}

/// Time `pid`'s threads spent runnable but waiting for a CPU, in seconds
/// (sum of the second field of /proc/<pid>/task/*/schedstat). On a shared
/// machine this shows when other work took the pinned core.
pub fn runqueue_wait_seconds(pid: &str) -> Option<f64> {
    schedstat_sum(pid, 1)
}

/// Field `field` (nanoseconds) of /proc/<pid>/task/*/schedstat, summed, in seconds.
fn schedstat_sum(pid: &str, field: usize) -> Option<f64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        if let Some(w) = s
            .split_whitespace()
            .nth(field)
            .and_then(|w| w.parse::<u64>().ok())
        {
            total += w;
        }
    }
    Some(total as f64 / 1e9)
}

/// The sum of `f` over `pids`; None if there are none or one is unreadable.
fn sum_over(pids: &[u32], f: impl Fn(u32) -> Option<f64>) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| f(p)).sum()
}

/// A snapshot of the clocks a measured window needs: wall, the server's CPU
/// time and run-queue wait, this process's CPU time and run-queue wait, and
/// the CPU time of processes reported apart (Redis behind a cluster; from
/// the scheduler's nanosecond clock).
#[derive(Clone, Copy)]
pub struct CpuMark {
    wall: Instant,
    cpu: Option<f64>,
    server_wait: Option<f64>,
    self_cpu: Option<f64>,
    self_wait: Option<f64>,
    aux_cpu: Option<f64>,
}

impl CpuMark {
    /// Now, for the server processes `pids` (summed: the nodes of a
    /// cluster are one server) and the processes `aux` reported apart.
    pub fn now(pids: &[u32], aux: &[u32]) -> CpuMark {
        CpuMark {
            wall: Instant::now(),
            cpu: sum_over(pids, cpu_seconds),
            server_wait: sum_over(pids, |p| runqueue_wait_seconds(&p.to_string())),
            self_cpu: cpu_seconds(std::process::id()),
            self_wait: runqueue_wait_seconds("self"),
            aux_cpu: sum_over(aux, cpu_runtime_seconds),
        }
    }

    /// CPU seconds of the processes reported apart, from `self` to `later`.
    pub fn aux_until(&self, later: &CpuMark) -> Option<f64> {
        diff(self.aux_cpu, later.aux_cpu)
    }

    /// (wall seconds, server CPU seconds) from `self` to `later`.
    pub fn until(&self, later: &CpuMark) -> (f64, Option<f64>) {
        let wall = later.wall.duration_since(self.wall).as_secs_f64();
        (wall, diff(self.cpu, later.cpu))
    }

    /// Fractions of the window: the server's run-queue wait, the load
    /// generator's CPU use and its run-queue wait. A wait well above zero
    /// means other work shared the pinned core and the figure is suspect.
    pub fn contention(&self, later: &CpuMark) -> [(&'static str, Option<f64>); 3] {
        let wall = later.wall.duration_since(self.wall).as_secs_f64().max(1e-9);
        let frac = |a, b| diff(a, b).map(|d| (d / wall * 100.0).round() / 100.0);
        [
            (
                "server_wait_frac",
                frac(self.server_wait, later.server_wait),
            ),
            ("client_cpu_util", frac(self.self_cpu, later.self_cpu)),
            ("client_wait_frac", frac(self.self_wait, later.self_wait)),
        ]
    }
}

fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(b? - a?)
}
