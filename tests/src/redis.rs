//! A real Redis for the cluster tests: Debian's `redis-server` on a free
//! 127.0.0.1 port (never 6379, so a machine's own Redis is never touched),
//! in a scratch directory of its own, with nothing saved unless a test asks
//! for the append-only file. `make test` installs the package when it is
//! missing; it does not start the system service, and nothing here needs it.
//!
//! A test can stop the server (SIGSTOP: connections stay open, nothing is
//! answered), let it go on (SIGCONT), and kill and restart it on the same
//! port and directory: with the append-only file its data survives, without
//! it the data is gone. Every wait is bounded by [`WAIT`](crate::WAIT).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::WAIT;

/// The port a machine's own Redis listens on, which a test never uses.
const SYSTEM_PORT: u16 = 6379;

/// How a server is started.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisOptions {
    /// Keep an append-only file (fsynced on every write, so what a command
    /// was answered for survives a SIGKILL); off: nothing is saved.
    pub appendonly: bool,
}

/// A running `redis-server`, killed (and its directory removed) on drop.
#[derive(Debug)]
pub struct RedisServer {
    /// `None` only between a kill and the next start.
    child: Option<Child>,
    port: u16,
    /// Its working directory: the append-only file and the log.
    dir: PathBuf,
    options: RedisOptions,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl RedisServer {
    /// A server that saves nothing.
    pub fn start() -> Result<RedisServer> {
        RedisServer::start_with(RedisOptions::default())
    }

    /// A server started with `options`, answering `PING`.
    pub fn start_with(options: RedisOptions) -> Result<RedisServer> {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir,
            options,
        };
        // Another process may take the free port between our probe and
        // Redis's bind: then try another.
        let mut last = None;
        for _ in 0..5 {
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    /// `redis://127.0.0.1:PORT/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stop it (SIGSTOP): connections stay open but nothing is answered,
    /// as when Redis hangs or its network does.
    pub fn pause(&self) -> Result<()> {
        self.signal("STOP")
    }

    /// Let a paused server go on (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.signal("CONT")
    }

    /// Kill it (SIGKILL, as a crash) and start it again on the same port
    /// and directory: with `appendonly` its data is back, without it the
    /// data is gone.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    /// `redis-cli -p PORT ARGS`, its output without the final newline;
    /// an error reply is an error. Bounded by [`WAIT`](crate::WAIT).
    pub fn cli<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.cli_within(WAIT, args)
    }

    /// [`cli`](Self::cli) that gives up after `limit` (coreutils `timeout`:
    /// redis-cli has no timeout of its own), e.g. against a paused server.
    pub fn cli_within<I, S>(&self, limit: Duration, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = Command::new("timeout")
            .args(["-k", "1", &format!("{:.3}", limit.as_secs_f64())])
            .args(["redis-cli", "-e", "-p", &self.port.to_string()])
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .context("cannot run `timeout redis-cli` (coreutils, redis-tools)")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "redis-cli {} ({}): {}{}",
            args.join(" "),
            match out.status.code() {
                Some(124) => format!("no answer within {limit:?}"),
                _ => out.status.to_string(),
            },
            stdout.trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
        Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_owned())
    }

    /// Start `redis-server` on `self.port` in `self.dir` and wait until it
    /// answers.
    fn spawn(&mut self) -> Result<()> {
        let log = self.dir.join("redis.log");
        // What it says before its log file is open (a bad argument).
        let early = self.dir.join("redis.stderr");
        let stderr = std::fs::File::create(&early)
            .with_context(|| format!("cannot create {}", early.display()))?;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", yes_no(self.options.appendonly)])
            // Written and fsynced before the answer: a test that was told
            // OK can rely on it after a SIGKILL.
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .context(
                "cannot run redis-server: install Debian's package \
                 (`apt-get install redis-server`; `make test` does)",
            )?;
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "redis-server on port {} exited at start ({status}): {}{}",
                    self.port,
                    std::fs::read_to_string(&early).unwrap_or_default(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            // `timeout 0` would wait forever: never less than 100 ms.
            let limit = WAIT
                .saturating_sub(start.elapsed())
                .clamp(Duration::from_millis(100), Duration::from_secs(1));
            if self.cli_within(limit, ["PING"]).is_ok_and(|r| r == "PONG") {
                return Ok(());
            }
            if start.elapsed() >= WAIT {
                self.kill();
                bail!(
                    "redis-server on port {} did not answer PING within {WAIT:?}: {}",
                    self.port,
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, name: &str) -> Result<()> {
        let child = self.child.as_ref().context("redis-server is not running")?;
        let status = Command::new("kill")
            .args(["-s", name, &child.id().to_string()])
            .status()
            .context("cannot run kill")?;
        ensure!(status.success(), "kill -s {name}: {status}");
        Ok(())
    }

    /// SIGKILL (works on a paused server too) and reap it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn yes_no(on: bool) -> &'static str {
    if on { "yes" } else { "no" }
}

/// A port free on 127.0.0.1 now, never the system Redis's.
fn free_port() -> Result<u16> {
    loop {
        let port = TcpListener::bind(("127.0.0.1", 0))
            .context("cannot bind 127.0.0.1:0")?
            .local_addr()?
            .port();
        if port != SYSTEM_PORT {
            return Ok(port);
        }
    }
}
