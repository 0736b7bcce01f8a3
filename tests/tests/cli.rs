//! The `switchboard` binary as an operator uses it: `policy check`, `policy
//! swap|status|rollback` against a running server, reloading the `--policy`
//! file (file watcher and SIGHUP), `switchboard.toml`, and recording events
//! then replaying them with `policy replay`.
//!
//! Every test runs the real binary (`$SWITCHBOARD_BIN`, or the one `cargo
//! build -p switchboard` puts next to the test binaries) on 127.0.0.1 port 0,
//! in a scratch directory of its own, with every `SWITCHBOARD_*` variable of
//! the test's environment removed. Unix only: it sends signals.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::{Value, json};
use switchboard::chat::record::{Event, Recorded};
use switchboard::ops::AdminClient;
use switchboard::policy::{DEFAULT_POLICY, sha256_hex};
use switchboard_tests::{Client, WAIT, Watched, misbehave_wasm, switchboard_bin, watch};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const TOKEN: &str = "cli-test-token-0123456789";
const WRONG_TOKEN: &str = "not-the-token-0123456789";

/// A call deadline a loaded machine's scheduling cannot exceed (the deadline
/// covers instantiation too; see `tolerant_config` in the harness).
fn deadline_ms() -> String {
    WAIT.as_millis().to_string()
}

// ---------------------------------------------------------------------------
// Scratch directories and files
// ---------------------------------------------------------------------------

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A directory under the system temp dir, unique to this test, removed when
/// dropped.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-cli-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Write `bytes` to `name` in this directory.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.path(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Replace `path` the way deploy tools do: write a temporary file in the same
/// directory, then rename it over (readers see the old or the new content,
/// never half of one).
fn replace_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("no parent directory")?;
    let tmp = dir.join(format!(
        ".replace-{}.tmp",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} over {}", tmp.display(), path.display()))
}

fn misbehave_bytes() -> Result<Vec<u8>> {
    let path = misbehave_wasm();
    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
}

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// The binary with `args`, run in `cwd`, with no `SWITCHBOARD_*` variable
/// but those in `env`, and no colours in its log. `XDG_RUNTIME_DIR` is
/// `cwd`, so the admin token file a server makes, and the policy commands
/// read, is `cwd/switchboard/admin-token` and never one in the real home.
fn command(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Command> {
    let mut cmd = Command::new(switchboard_bin()?);
    cmd.args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("XDG_RUNTIME_DIR", cwd);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SWITCHBOARD_") {
            cmd.env_remove(&name);
        }
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    Ok(cmd)
}

/// What a finished command did.
#[derive(Debug)]
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout as JSON.
    fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.stdout).with_context(|| format!("stdout is not JSON: {self:#?}"))
    }
}

/// Run a command that should finish by itself (within `limit`) and collect
/// its exit code and output. Killed (and an error) if it does not.
async fn run(cwd: &Path, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Result<Output> {
    let mut cmd = command(cwd, args, env)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().context("cannot start the binary")?;
    let pid = child.id();
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output());
    match tokio::time::timeout(limit, waiting).await {
        Ok(output) => {
            let output = output.context("wait task failed")?.context("waiting")?;
            Ok(Output {
                code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
        Err(_) => {
            // Not reaped yet (the wait has not returned), so the pid is still ours.
            signal(pid, libc::SIGKILL);
            bail!(
                "`switchboard {}` did not finish within {limit:?}",
                args.join(" ")
            )
        }
    }
}

/// `switchboard policy …` (offline commands compile components: allow more
/// than one WAIT).
async fn policy_cmd(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
    let mut all = vec!["policy"];
    all.extend_from_slice(args);
    run(cwd, &all, env, WAIT * 4).await
}

fn signal(pid: u32, signal: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) only sends a signal; it touches no memory of ours.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// The address right after `prefix` in a log line, up to the next space.
fn addr_after(line: &str, prefix: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The binary, serving.
struct Served {
    pid: u32,
    /// Where clients connect.
    ws: SocketAddr,
    /// Where the admin interface listens (when it runs).
    admin: Option<SocketAddr>,
    /// The `listening on …` line.
    listening: String,
    /// Its stderr (the log), line by line.
    lines: mpsc::UnboundedReceiver<String>,
    /// The log lines read so far.
    log: Vec<String>,
    status: Option<oneshot::Receiver<std::io::Result<ExitStatus>>>,
    exited: Arc<AtomicBool>,
}

impl Served {
    /// Start `switchboard ARGS` in `cwd` and read its log until it listens
    /// (and, with `admin`, until the admin interface is up too).
    async fn start(cwd: &Path, args: &[&str], env: &[(&str, &str)], admin: bool) -> Result<Served> {
        let mut cmd = command(cwd, args, env)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the binary")?;
        let pid = child.id();
        let Watched {
            lines,
            status,
            exited,
        } = watch(child, |_| {})?;
        let mut served = Served {
            pid,
            ws: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin: None,
            listening: String::new(),
            lines,
            log: Vec::new(),
            status: Some(status),
            exited,
        };
        // Start-up compiles the policy: allow it more than one WAIT.
        let found = tokio::time::timeout(WAIT * 4, async {
            let mut ws = None;
            while let Some(line) = served.lines.recv().await {
                if let Some(a) = addr_after(&line, "listening on ws://") {
                    ws = Some(a);
                    served.listening = line.clone();
                }
                if let Some(a) = addr_after(&line, "admin interface on http://") {
                    served.admin = Some(a);
                }
                served.log.push(line);
                if ws.is_some() && (served.admin.is_some() || !admin) {
                    return ws;
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(ws)) => served.ws = ws,
            Ok(None) => bail!("the server exited before it was ready: {:#?}", served.log),
            Err(_) => bail!("the server was not ready in time: {:#?}", served.log),
        }
        Ok(served)
    }

    /// `http://ADMIN`
    fn admin_url(&self) -> Result<String> {
        let addr = self.admin.context("no admin interface")?;
        Ok(format!("http://{addr}"))
    }

    fn admin_client(&self, token: Option<&str>) -> Result<AdminClient> {
        Ok(AdminClient::new(
            &self.admin_url()?,
            token.map(str::to_owned),
        ))
    }

    /// `GET /admin/policy` with `token`, which must succeed.
    async fn status_with(&self, token: &str) -> Result<Value> {
        let (code, body) = self
            .admin_client(Some(token))?
            .status()
            .await
            .map_err(anyhow::Error::msg)?;
        ensure!(code == 200, "GET /admin/policy answered {code}: {body}");
        serde_json::from_str(&body).with_context(|| format!("not JSON: {body}"))
    }

    /// `GET /admin/policy` with TOKEN.
    async fn status(&self) -> Result<Value> {
        self.status_with(TOKEN).await
    }

    /// Poll the status (bounded by WAIT) until `done` holds for it.
    async fn wait_status(&self, what: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
        let start = Instant::now();
        loop {
            let s = self.status().await?;
            if done(&s) {
                return Ok(s);
            }
            if start.elapsed() > WAIT {
                bail!("{what}: not within {WAIT:?}; status: {s:#}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Read the log (bounded by WAIT) up to the next line that `matches`.
    async fn wait_line(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> Result<String> {
        let found = tokio::time::timeout(WAIT, async {
            while let Some(line) = self.lines.recv().await {
                self.log.push(line.clone());
                if matches(&line) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => Ok(line),
            Ok(None) => bail!("{what}: the server exited; log: {:#?}", self.log),
            Err(_) => bail!(
                "{what}: no such log line within {WAIT:?}; log: {:#?}",
                self.log
            ),
        }
    }

    /// A WebSocket client of this server, connected as `id` (nothing read).
    async fn connect(&self, id: &str) -> Result<Client> {
        self.connect_path(&format!("/ws/{id}")).await
    }

    /// A WebSocket client of this server, connected to `path` (nothing read).
    async fn connect_path(&self, path: &str) -> Result<Client> {
        let tcp = TcpStream::connect(self.ws).await?;
        tcp.set_nodelay(true)?;
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async_with_config(
                format!("ws://{}{path}", self.ws),
                Box::new(tcp) as Box<dyn switchboard_tests::Io>,
                Some(WebSocketConfig::default()),
            ),
        )
        .await
        .map_err(|_| anyhow!("handshake timed out"))??;
        Ok(Client { ws })
    }

    /// Connect as `id` under the default rules and read the welcome.
    async fn join(&self, id: &str) -> Result<Client> {
        let mut c = self.connect(id).await?;
        let welcome = c.recv_json().await?;
        ensure!(
            welcome == json!({"type": "welcome", "id": id}),
            "expected the default welcome, got {welcome}"
        );
        Ok(c)
    }

    fn signal(&self, sig: libc::c_int) -> Result<()> {
        ensure!(
            !self.exited.load(Ordering::SeqCst),
            "the server has already exited; log: {:#?}",
            self.log
        );
        ensure!(signal(self.pid, sig), "kill({}, {sig}) failed", self.pid);
        Ok(())
    }

    /// SIGTERM, then expect a graceful exit with status 0.
    async fn stop(mut self) -> Result<()> {
        self.signal(libc::SIGTERM)?;
        let status = self.status.take().context("already waited")?;
        let status = tokio::time::timeout(WAIT * 3, status)
            .await
            .map_err(|_| anyhow!("the server did not exit after SIGTERM"))??
            .context("waiting for the server")?;
        while let Some(line) = self.lines.recv().await {
            self.log.push(line);
        }
        ensure!(
            status.code() == Some(0),
            "exit status {status}; log: {:#?}",
            self.log
        );
        Ok(())
    }
}

impl Drop for Served {
    /// Kill the process if the test ends before it has exited.
    fn drop(&mut self) {
        if !self.exited.load(Ordering::SeqCst) {
            signal(self.pid, libc::SIGKILL);
        }
    }
}

/// The server arguments every test uses: port 0 for both listeners, a token,
/// a tolerant deadline.
fn serve_args(deadline: &str) -> Vec<&str> {
    vec![
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token",
        TOKEN,
        "--call-deadline-ms",
        deadline,
        "--log",
        "info",
    ]
}

/// Under the default rules, plain text is answered with a `bad-json` error.
async fn expect_default_rules(c: &mut Client) -> Result<()> {
    c.send_text("hello").await?;
    let v = c.recv_json().await?;
    ensure!(
        v["type"] == "error" && v["code"] == "bad-json",
        "expected the default rules' bad-json error, got {v}"
    );
    c.expect_idle().await
}

/// The misbehaving test policy echoes plain text.
async fn expect_echo(c: &mut Client) -> Result<()> {
    c.send_text("hello").await?;
    let t = c.recv_text().await?;
    ensure!(
        t == "hello",
        "expected the misbehave policy's echo, got {t:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// policy check
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_check_accepts_good_components_and_names_the_failing_step() -> Result<()> {
    let dir = Scratch::new("check")?;
    let deadline = deadline_ms();
    let default = dir.write("default.wasm", DEFAULT_POLICY)?;
    let misbehave = misbehave_wasm();
    let v010 = switchboard_tests::v010_wasm();

    // The world each targets, what each must import, and (the misbehave
    // guest keeps no state) must not.
    type Good<'a> = (&'a Path, Vec<u8>, &'a str, &'a [&'a str], &'a [&'a str]);
    let good: [Good; 3] = [
        (
            &default,
            DEFAULT_POLICY.to_vec(),
            "0.2.0",
            &[
                "switchboard:policy/types@0.2.0",
                "switchboard:policy/registry@0.2.0",
                "switchboard:policy/history@0.2.0",
            ],
            &[],
        ),
        (
            &misbehave,
            misbehave_bytes()?,
            "0.2.0",
            &["switchboard:policy/types@", "wasi:clocks/monotonic-clock@"],
            &["switchboard:policy/state@"],
        ),
        (
            &v010,
            std::fs::read(&v010)?,
            "0.1.0",
            &["switchboard:policy/types@0.1.0"],
            &["switchboard:policy/history@"],
        ),
    ];
    for (path, bytes, world, present, absent) in good {
        let file = path.to_str().context("non-UTF-8 path")?;
        let out = policy_cmd(
            &dir.dir,
            &["check", file, "--call-deadline-ms", &deadline],
            &[],
        )
        .await?;
        ensure!(out.ok(), "check {file} failed: {out:#?}");
        let first = out.stdout.lines().next().unwrap_or_default();
        ensure!(
            first.starts_with("ok: ") && first.contains(file),
            "first line: {out:#?}"
        );
        ensure!(
            first.contains(&format!("switchboard:policy/policy@{world}")),
            "first line names the world: {out:#?}"
        );
        let world_line = format!("world:   {world}");
        ensure!(
            out.stdout.contains(&world_line),
            "no `{world_line}`: {out:#?}"
        );
        let sha = format!("sha256:  {}", sha256_hex(&bytes));
        ensure!(out.stdout.contains(&sha), "no `{sha}`: {out:#?}");
        let size = format!("size:    {} bytes", bytes.len());
        ensure!(out.stdout.contains(&size), "no `{size}`: {out:#?}");
        let listed: Vec<&str> = out
            .stdout
            .lines()
            .skip_while(|l| l.trim() != "imports:")
            .skip(1)
            .map(str::trim)
            .collect();
        for import in present {
            ensure!(
                listed.iter().any(|l| l.starts_with(import)),
                "{file}: import {import} not listed in {listed:?}"
            );
        }
        for import in absent {
            ensure!(
                !listed.iter().any(|l| l.starts_with(import)),
                "{file}: {import} listed in {listed:?}"
            );
        }
    }

    let garbage = dir.write("garbage.wasm", b"definitely not a component")?;
    let empty = dir.write("empty.wasm", &wat::parse_str("(component)")?)?;
    let traps = PathBuf::from(env!("TRAP_AT_START_WASM"));
    let bad: [(&Path, &str); 3] = [
        (&garbage, "compile"),
        (&empty, "world"),
        (&traps, "instantiate"),
    ];
    for (path, step) in bad {
        let file = path.to_str().context("non-UTF-8 path")?;
        let out = policy_cmd(
            &dir.dir,
            &["check", file, "--call-deadline-ms", &deadline],
            &[],
        )
        .await?;
        ensure!(
            !out.ok() && out.code.is_some(),
            "{file} should fail at {step}: {out:#?}"
        );
        ensure!(
            out.stderr.contains(&format!("[step: {step}]")) && out.stderr.contains(file),
            "{file}: expected step {step} named in stderr: {out:#?}"
        );
        ensure!(!out.stdout.contains("ok:"), "{file}: {out:#?}");
    }

    let missing = dir.path("missing.wasm");
    let out = policy_cmd(&dir.dir, &["check", missing.to_str().context("path")?], &[]).await?;
    ensure!(!out.ok() && out.stderr.contains("cannot read"), "{out:#?}");
    Ok(())
}

// ---------------------------------------------------------------------------
// policy swap | status | rollback against a running server
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_swap_status_and_rollback_drive_a_running_server() -> Result<()> {
    let dir = Scratch::new("swap")?;
    let deadline = deadline_ms();
    let server = Served::start(&dir.dir, &serve_args(&deadline), &[], true).await?;
    let url = server.admin_url()?;
    let misbehave = misbehave_wasm();
    let misbehave = misbehave.to_str().context("non-UTF-8 path")?;
    let misbehave_sha = sha256_hex(&misbehave_bytes()?);
    let default_sha = sha256_hex(DEFAULT_POLICY);
    let admin = |token: &'static str| ["--admin-url", url.as_str(), "--admin-token", token];

    let mut alice = server.join("alice").await?;
    expect_default_rules(&mut alice).await?;

    // A wrong token: refused, nothing changes.
    for args in [
        [&["swap", misbehave][..], &admin(WRONG_TOKEN)].concat(),
        [&["rollback"][..], &admin(WRONG_TOKEN)].concat(),
        [&["status"][..], &admin(WRONG_TOKEN)].concat(),
    ] {
        let out = policy_cmd(&dir.dir, &args, &[]).await?;
        ensure!(!out.ok(), "{args:?} succeeded: {out:#?}");
        ensure!(
            out.stderr.contains("401"),
            "{args:?}: no 401 in stderr: {out:#?}"
        );
        ensure!(out.stdout.is_empty(), "{args:?}: {out:#?}");
    }
    // No token at all, and no token file (this server has a configured
    // token, so it wrote none): said plainly, nothing sent.
    {
        let args = ["status", "--admin-url", &url];
        let out = policy_cmd(&dir.dir, &args, &[]).await?;
        ensure!(!out.ok(), "{args:?} succeeded: {out:#?}");
        ensure!(
            out.stderr.contains("no admin token") && out.stderr.contains("admin-token"),
            "{args:?}: {out:#?}"
        );
        ensure!(out.stdout.is_empty(), "{args:?}: {out:#?}");
    }
    let s = server.status().await?;
    ensure!(
        s["active"]["seq"] == 1 && s["active"]["sha256"] == default_sha && s["previous"].is_null(),
        "a refused command changed something: {s:#}"
    );
    expect_default_rules(&mut alice).await?;

    // Swap in the misbehave policy: the open connection's next message
    // meets it.
    let out = policy_cmd(
        &dir.dir,
        &[&["swap", misbehave][..], &admin(TOKEN)].concat(),
        &[],
    )
    .await?;
    ensure!(out.ok(), "swap failed: {out:#?}");
    let report = out.json()?;
    ensure!(
        report["active"]["seq"] == 2
            && report["active"]["sha256"] == misbehave_sha
            && report["previous"]["seq"] == 1
            && report["previous"]["sha256"] == default_sha,
        "swap report: {report:#}"
    );
    ensure!(
        report["active"]["source"]
            .as_str()
            .is_some_and(|s| s.contains("misbehave")),
        "the swap names its file: {report:#}"
    );
    expect_echo(&mut alice).await?;

    // Status, with the URL and token from the environment.
    let env = [
        ("SWITCHBOARD_ADMIN_URL", url.as_str()),
        ("SWITCHBOARD_ADMIN_TOKEN", TOKEN),
    ];
    let out = policy_cmd(&dir.dir, &["status"], &env).await?;
    ensure!(out.ok(), "status failed: {out:#?}");
    let s = out.json()?;
    ensure!(
        s["active"]["seq"] == 2
            && s["active"]["sha256"] == misbehave_sha
            && s["active"]["published_by"] == "swap"
            && s["previous"]["seq"] == 1,
        "status: {s:#}"
    );
    // A wrong token in the environment is refused too.
    let out = policy_cmd(
        &dir.dir,
        &["status"],
        &[
            ("SWITCHBOARD_ADMIN_URL", url.as_str()),
            ("SWITCHBOARD_ADMIN_TOKEN", WRONG_TOKEN),
        ],
    )
    .await?;
    ensure!(!out.ok() && out.stderr.contains("401"), "{out:#?}");

    // Roll back: the same connection gets the default rules again.
    let out = policy_cmd(
        &dir.dir,
        &["rollback", "--admin-url", &url],
        &[("SWITCHBOARD_ADMIN_TOKEN", TOKEN)],
    )
    .await?;
    ensure!(out.ok(), "rollback failed: {out:#?}");
    let rb = out.json()?;
    ensure!(
        rb["from"] == 2 && rb["to"] == 1 && rb["automatic"] == false,
        "rollback record: {rb:#}"
    );
    expect_default_rules(&mut alice).await?;
    let s = server.status().await?;
    ensure!(
        s["active"]["seq"] == 1
            && s["active"]["sha256"] == default_sha
            && s["active"]["published_by"] == "rollback"
            && s["previous"]["seq"] == 2,
        "status after the rollback: {s:#}"
    );
    ensure!(s["last_rollback"]["from"] == 2, "{s:#}");

    // Nothing of this dropped the connection.
    alice.close().await?;
    server.stop().await
}

// ---------------------------------------------------------------------------
// Reloading the --policy file
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_policy_file_is_picked_up_by_the_watcher() -> Result<()> {
    let dir = Scratch::new("watch")?;
    let deadline = deadline_ms();
    let file = dir.write("rules.wasm", DEFAULT_POLICY)?;
    let file_arg = file.to_str().context("non-UTF-8 path")?;
    let mut args = serve_args(&deadline);
    args.extend(["--policy", file_arg]);
    let server = Served::start(&dir.dir, &args, &[], true).await?;

    let mut alice = server.join("alice").await?;
    let s = server.status().await?;
    ensure!(
        s["active"]["seq"] == 1
            && s["active"]["sha256"] == sha256_hex(DEFAULT_POLICY)
            && s["watched_file"] == file_arg,
        "status at start: {s:#}"
    );

    let new = misbehave_bytes()?;
    let new_sha = sha256_hex(&new);
    replace_atomically(&file, &new)?;
    let s = server
        .wait_status("the watcher loads the new file", |s| {
            s["active"]["sha256"] == new_sha
        })
        .await?;
    ensure!(
        s["active"]["seq"] == 2 && s["previous"]["seq"] == 1 && s["active"]["source"] == file_arg,
        "status after the reload: {s:#}"
    );
    // The open connection meets the new rules.
    expect_echo(&mut alice).await?;
    drop(alice);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_watcher_sighup_reloads_and_only_a_good_changed_file_swaps() -> Result<()> {
    let dir = Scratch::new("sighup")?;
    let deadline = deadline_ms();
    let file = dir.write("rules.wasm", DEFAULT_POLICY)?;
    let file_arg = file.to_str().context("non-UTF-8 path")?;
    let mut args = serve_args(&deadline);
    args.extend(["--policy", file_arg, "--watch-policy", "false"]);
    let mut server = Served::start(&dir.dir, &args, &[], true).await?;
    let mut alice = server.join("alice").await?;
    let default_sha = sha256_hex(DEFAULT_POLICY);

    // Replaced, but not watched: nothing changes. The watcher (when on)
    // polls every second and acts on a change seen twice, so watching for
    // four seconds would catch it; there is no event to wait for instead.
    let new = misbehave_bytes()?;
    let new_sha = sha256_hex(&new);
    replace_atomically(&file, &new)?;
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(4) {
        let s = server.status().await?;
        ensure!(
            s["active"]["seq"] == 1 && s["active"]["sha256"] == default_sha,
            "the file was reloaded without SIGHUP despite --watch-policy false: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    expect_default_rules(&mut alice).await?;

    // SIGHUP loads it.
    server.signal(libc::SIGHUP)?;
    let s = server
        .wait_status("SIGHUP loads the new file", |s| {
            s["active"]["sha256"] == new_sha
        })
        .await?;
    ensure!(
        s["active"]["seq"] == 2 && s["previous"]["seq"] == 1,
        "{s:#}"
    );
    server
        .wait_line("the reload is logged", |l| {
            l.contains("policy file reloaded") && l.contains("SIGHUP")
        })
        .await?;
    expect_echo(&mut alice).await?;

    // SIGHUP with the file unchanged: no new version.
    server.signal(libc::SIGHUP)?;
    server
        .wait_line("an unchanged file is noticed", |l| {
            l.contains("policy file unchanged") && l.contains("SIGHUP")
        })
        .await?;
    let after = server.status().await?;
    ensure!(
        after["active"]["seq"] == 2
            && after["active"]["sha256"] == new_sha
            && after["previous"]["seq"] == 1,
        "SIGHUP with an unchanged file made a version: {after:#}"
    );

    // A broken file: the active version stays and the server keeps serving.
    replace_atomically(&file, b"not a component at all")?;
    server.signal(libc::SIGHUP)?;
    let line = server
        .wait_line("a broken file is refused", |l| {
            l.contains("policy file not loaded")
        })
        .await?;
    ensure!(line.contains("SIGHUP"), "{line}");
    let after = server.status().await?;
    ensure!(
        after["active"]["seq"] == 2
            && after["active"]["sha256"] == new_sha
            && after["previous"]["seq"] == 1,
        "a broken file displaced the active version: {after:#}"
    );
    expect_echo(&mut alice).await?;
    let mut bob = server.connect("bob").await?;
    let welcome = bob.recv_text().await?;
    ensure!(
        welcome == "welcome bob",
        "a new client under misbehave: {welcome:?}"
    );
    expect_echo(&mut bob).await?;
    drop((alice, bob));
    server.stop().await
}

// ---------------------------------------------------------------------------
// The admin token made at start, --native-rules, `switchboard token`
// ---------------------------------------------------------------------------

/// `make run`, then `switchboard policy …` with no set-up: the server makes
/// a token, writes it where only its user can read it, and the commands
/// read it from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_policy_commands_use_the_one_the_server_wrote() -> Result<()> {
    let dir = Scratch::new("token-file")?;
    let deadline = deadline_ms();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--call-deadline-ms",
        &deadline,
    ];
    let server = Served::start(&dir.dir, &args, &[], true).await?;
    let url = server.admin_url()?;
    // The default place, under XDG_RUNTIME_DIR (see `command`).
    let token_file = dir.path("switchboard").join("admin-token");
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("no token file at {}", token_file.display()))?;
    let token = token.trim().to_owned();
    ensure!(token.len() >= 16, "{token:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file)?.permissions().mode() & 0o777;
        ensure!(mode == 0o600, "token file mode {mode:o}");
    }
    let path = token_file.to_str().context("non-UTF-8 path")?;
    ensure!(
        server.log.iter().any(|l| l.contains(path)),
        "the token file is not named at start: {:#?}",
        server.log
    );
    ensure!(
        !server.log.iter().any(|l| l.contains(&token)),
        "the token itself is logged"
    );

    // Without it: 401.
    let (code, _) = server
        .admin_client(None)?
        .status()
        .await
        .map_err(anyhow::Error::msg)?;
    ensure!(code == 401, "no token answered {code}");

    // The commands find it by themselves.
    let out = policy_cmd(&dir.dir, &["status", "--admin-url", &url], &[]).await?;
    ensure!(out.ok(), "status with the server's token file: {out:#?}");
    ensure!(out.json()?["rules"] == "wasm", "{out:#?}");
    let misbehave = misbehave_wasm();
    let misbehave = misbehave.to_str().context("non-UTF-8 path")?;
    let out = policy_cmd(&dir.dir, &["swap", misbehave, "--admin-url", &url], &[]).await?;
    ensure!(out.ok(), "swap: {out:#?}");
    let out = policy_cmd(&dir.dir, &["rollback", "--admin-url", &url], &[]).await?;
    ensure!(out.ok(), "rollback: {out:#?}");
    ensure!(out.json()?["from"] == 2, "{out:#?}");

    // Named explicitly, elsewhere: --admin-token-file, its variable, the file.
    let moved = dir.path("moved-token");
    std::fs::copy(&token_file, &moved)?;
    std::fs::remove_file(&token_file)?;
    let moved = moved.to_str().context("non-UTF-8 path")?;
    let out = policy_cmd(&dir.dir, &["status", "--admin-url", &url], &[]).await?;
    ensure!(
        !out.ok() && out.stderr.contains("no admin token") && out.stderr.contains(path),
        "{out:#?}"
    );
    let out = policy_cmd(
        &dir.dir,
        &["status", "--admin-url", &url, "--admin-token-file", moved],
        &[],
    )
    .await?;
    ensure!(out.ok(), "--admin-token-file: {out:#?}");
    let out = policy_cmd(
        &dir.dir,
        &["status", "--admin-url", &url],
        &[("SWITCHBOARD_ADMIN_TOKEN_FILE", moved)],
    )
    .await?;
    ensure!(out.ok(), "SWITCHBOARD_ADMIN_TOKEN_FILE: {out:#?}");
    let client_config = dir.write(
        "client.toml",
        format!(
            "[admin]\nlisten = \"{}\"\ntoken_file = \"moved-token\"\n",
            server.admin.context("admin")?
        )
        .as_bytes(),
    )?;
    let out = policy_cmd(
        &dir.dir,
        &[
            "status",
            "--config",
            client_config.to_str().context("path")?,
        ],
        &[],
    )
    .await?;
    ensure!(out.ok(), "[admin] token_file: {out:#?}");
    server.stop().await
}

/// `GET /healthz` of a served binary.
async fn health(server: &Served) -> Result<Value> {
    let (code, body) = server
        .admin_client(None)?
        .request(switchboard::ops::Method::Get, "/healthz")
        .await
        .map_err(anyhow::Error::msg)?;
    ensure!(code == 200, "/healthz answered {code}: {body}");
    serde_json::from_str(&body).with_context(|| format!("not JSON: {body}"))
}

/// `--native-rules` runs the rules compiled into the host: even with a
/// `--policy` that would answer otherwise, clients meet the default rules,
/// and health and status say which rules run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_rules_replace_the_policy_and_say_so() -> Result<()> {
    let dir = Scratch::new("native")?;
    let deadline = deadline_ms();
    let misbehave = misbehave_wasm();
    let misbehave = misbehave.to_str().context("non-UTF-8 path")?;
    let mut args = serve_args(&deadline);
    args.extend(["--policy", misbehave]);

    // Without the flag: the sandboxed policy (misbehave greets in plain text).
    let wasm = Served::start(&dir.dir, &args, &[], true).await?;
    ensure!(health(&wasm).await?["rules"] == "wasm");
    ensure!(wasm.status().await?["rules"] == "wasm");
    let mut alice = wasm.connect("alice").await?;
    ensure!(alice.recv_text().await? == "welcome alice");
    drop(alice);
    wasm.stop().await?;

    // With it (or its variable): the compiled-in default rules.
    for (extra, env) in [
        (&["--native-rules"][..], &[][..]),
        (&[][..], &[("SWITCHBOARD_NATIVE_RULES", "true")][..]),
    ] {
        let all = [&args[..], extra].concat();
        let native = Served::start(&dir.dir, &all, env, true).await?;
        ensure!(
            health(&native).await?["rules"] == "native",
            "{extra:?} {env:?}"
        );
        ensure!(native.status().await?["rules"] == "native");
        let mut alice = native.join("alice").await?;
        expect_default_rules(&mut alice).await?;
        drop(alice);
        native.stop().await?;
    }
    Ok(())
}

const AUTH_SECRET: &str = "cli-test-auth-secret-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_command_mints_a_token_the_server_accepts() -> Result<()> {
    let dir = Scratch::new("token")?;
    let out = run(
        &dir.dir,
        &[
            "token",
            "--sub",
            "alice",
            "--ttl",
            "1h",
            "--auth-secret",
            AUTH_SECRET,
        ],
        &[],
        WAIT,
    )
    .await?;
    ensure!(out.ok(), "{out:#?}");
    let token = out.stdout.trim().to_owned();
    let parts: Vec<_> = token.split('.').collect();
    ensure!(
        parts.len() == 3
            && parts.iter().all(|p| !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')),
        "not a JWT: {token:?}"
    );

    // The secret from the variable, and from the settings file.
    let from_env = run(
        &dir.dir,
        &["token", "--sub", "bob"],
        &[("SWITCHBOARD_AUTH_SECRET", AUTH_SECRET)],
        WAIT,
    )
    .await?;
    ensure!(
        from_env.ok() && from_env.stdout.split('.').count() == 3,
        "{from_env:#?}"
    );
    let config = dir.write(
        "switchboard.toml",
        format!("[auth]\nsecret = \"{AUTH_SECRET}\"\n").as_bytes(),
    )?;
    let from_file = run(
        &dir.dir,
        &[
            "token",
            "--sub",
            "carol",
            "--config",
            config.to_str().context("path")?,
        ],
        &[],
        WAIT,
    )
    .await?;
    ensure!(
        from_file.ok() && from_file.stdout.split('.').count() == 3,
        "{from_file:#?}"
    );

    // No secret anywhere: a clear message, exit 2.
    let none = Scratch::new("token-none")?;
    let out = run(&none.dir, &["token", "--sub", "alice"], &[], WAIT).await?;
    ensure!(
        out.code == Some(2) && out.stderr.contains("--auth-secret") && out.stdout.is_empty(),
        "{out:#?}"
    );

    // A server with that secret takes the token as alice's proof.
    let deadline = deadline_ms();
    let mut args = serve_args(&deadline);
    args.extend(["--auth-secret", AUTH_SECRET]);
    let server = Served::start(&none.dir, &args, &[], true).await?;
    let mut alice = server
        .connect_path(&format!("/ws/alice?token={token}"))
        .await?;
    let welcome = alice.recv_json().await?;
    ensure!(
        welcome["type"] == "welcome" && welcome["id"] == "alice",
        "{welcome}"
    );
    let Err(refused) = server.connect("alice").await else {
        bail!("connected as alice without a token");
    };
    ensure!(refused.to_string().contains("401"), "{refused:#}");
    drop(alice);
    server.stop().await
}

// ---------------------------------------------------------------------------
// switchboard.toml
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_file_is_honoured() -> Result<()> {
    let dir = Scratch::new("config")?;
    dir.write("rules.wasm", &misbehave_bytes()?)?;
    let config = dir.write(
        "switchboard.toml",
        format!(
            r#"
listen = "127.0.0.1:0"
log = "info"

[limits]
max_message_bytes = 1024

[policy]
file = "rules.wasm"          # relative to this file
call_deadline_ms = {deadline}
rollback_failures = 7
rollback_window_secs = 42

[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
"#,
            deadline = deadline_ms()
        )
        .as_bytes(),
    )?;
    // Run from another directory: the policy path is relative to the file.
    let elsewhere = dir.path("elsewhere");
    std::fs::create_dir_all(&elsewhere)?;
    let config_arg = config.to_str().context("non-UTF-8 path")?;
    let server = Served::start(&elsewhere, &["--config", config_arg], &[], true).await?;

    ensure!(
        server.ws.ip().is_loopback() && server.ws.port() != 3001,
        "not the file's listen address: {}",
        server.listening
    );
    ensure!(
        server
            .admin
            .is_some_and(|a| a.ip().is_loopback() && a.port() != 3002)
    );
    let rules = dir.path("rules.wasm");
    let s = server.status().await?;
    ensure!(
        s["active"]["sha256"] == sha256_hex(&misbehave_bytes()?)
            && s["watched_file"] == rules.to_str().context("path")?,
        "not the file's policy: {s:#}"
    );
    ensure!(
        s["auto_rollback"] == json!({"failures": 7, "window_secs": 42}),
        "not the file's policy limits: {s:#}"
    );
    // The file's token is the one wanted.
    let (code, body) = server
        .admin_client(None)?
        .status()
        .await
        .map_err(anyhow::Error::msg)?;
    ensure!(code == 401, "no token answered {code}: {body}");

    // The file's message limit.
    let mut alice = server.connect("alice").await?;
    ensure!(alice.recv_text().await? == "welcome alice");
    expect_echo(&mut alice).await?;
    alice.send_text(&"x".repeat(2000)).await?;
    let closed = alice.closed().await?;
    ensure!(
        closed.code == Some(1009),
        "a 2000-byte message over a 1024 limit: {closed:?}"
    );

    // The policy commands read the admin address and token from a file too.
    let client_config = dir.write(
        "client.toml",
        format!(
            "[admin]\nlisten = \"{}\"\ntoken = \"{TOKEN}\"\n",
            server.admin.context("admin")?
        )
        .as_bytes(),
    )?;
    let out = policy_cmd(
        &elsewhere,
        &[
            "status",
            "--config",
            client_config.to_str().context("path")?,
        ],
        &[],
    )
    .await?;
    ensure!(out.ok(), "status from the settings file failed: {out:#?}");
    ensure!(out.json()?["auto_rollback"]["failures"] == 7, "{out:#?}");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_and_variables_override_the_settings_file() -> Result<()> {
    let dir = Scratch::new("override")?;
    // An address that is taken, so using the file's value is visible.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let taken_addr = taken.local_addr()?;
    let file_token = "file-token-0123456789abcdef";
    let config = dir.write(
        "switchboard.toml",
        format!(
            r#"
listen = "{taken_addr}"

[policy]
call_deadline_ms = {deadline}
rollback_failures = 7
rollback_window_secs = 42

[admin]
listen = "127.0.0.1:0"
token = "{file_token}"
"#,
            deadline = deadline_ms()
        )
        .as_bytes(),
    )?;
    let config_arg = config.to_str().context("non-UTF-8 path")?;

    // The file alone: it tries the taken address, and says so.
    let out = run(&dir.dir, &["--config", config_arg], &[], WAIT * 4).await?;
    ensure!(!out.ok(), "started on a taken address: {out:#?}");
    ensure!(
        out.stderr
            .contains(&format!("cannot listen on {taken_addr}")),
        "{out:#?}"
    );

    // Flags and variables win over the file.
    let server = Served::start(
        &dir.dir,
        &[
            "--config",
            config_arg,
            "--listen",
            "127.0.0.1:0",
            "--admin-token",
            TOKEN,
            "--rollback-window-secs",
            "9",
        ],
        &[("SWITCHBOARD_ROLLBACK_FAILURES", "3")],
        true,
    )
    .await?;
    ensure!(server.ws != taken_addr, "{}", server.listening);
    let s = server.status().await?;
    ensure!(
        s["auto_rollback"] == json!({"failures": 3, "window_secs": 9}),
        "the flag and the variable did not win: {s:#}"
    );
    let (code, body) = server
        .admin_client(Some(file_token))?
        .status()
        .await
        .map_err(anyhow::Error::msg)?;
    ensure!(
        code == 401,
        "the file's token still works after --admin-token: {code} {body}"
    );
    let mut alice = server.join("alice").await?;
    expect_default_rules(&mut alice).await?;
    drop(alice);
    drop(taken);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_in_the_settings_file_stops_the_binary() -> Result<()> {
    let dir = Scratch::new("unknown-key")?;
    for (name, text, key) in [
        ("top.toml", "lissten = \"127.0.0.1:0\"\n", "lissten"),
        (
            "section.toml",
            "[policy]\nwatch_polcy = false\n",
            "watch_polcy",
        ),
        ("admin.toml", "[admin]\ntokn = \"x\"\n", "tokn"),
    ] {
        let path = dir.write(name, text.as_bytes())?;
        let arg = path.to_str().context("non-UTF-8 path")?;
        // Flags that would let it serve harmlessly if it wrongly started.
        let out = run(
            &dir.dir,
            &[
                "--config",
                arg,
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "off",
            ],
            &[],
            WAIT,
        )
        .await
        .with_context(|| format!("{name}: the binary kept running despite `{key}`"))?;
        ensure!(!out.ok() && out.code.is_some(), "{name}: {out:#?}");
        ensure!(
            out.stderr.contains(key) && out.stderr.contains(name),
            "{name}: the message does not name `{key}` and the file: {out:#?}"
        );
        ensure!(!out.stderr.contains("listening on"), "{name}: {out:#?}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The node id and the cluster settings
// ---------------------------------------------------------------------------

/// The node id the start line names (`…; node ID`, at its end).
fn node_in(line: &str) -> Option<&str> {
    line.rsplit_once("; node ").map(|(_, id)| id.trim())
}

/// Every node has an id, in the start line and `/healthz`: `--node-id`
/// (or its variable), else one made at each start; without `--cluster`
/// health says `"cluster": "off"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_id_is_in_the_start_line_and_health() -> Result<()> {
    let dir = Scratch::new("node-id")?;
    let deadline = deadline_ms();
    let args = serve_args(&deadline);
    for (extra, env) in [
        (&["--node-id", "eu-1a"][..], &[][..]),
        (&[][..], &[("SWITCHBOARD_NODE_ID", "eu-1a")][..]),
    ] {
        let server = Served::start(&dir.dir, &[&args[..], extra].concat(), env, true).await?;
        ensure!(
            node_in(&server.listening) == Some("eu-1a"),
            "{extra:?} {env:?}: {}",
            server.listening
        );
        let health = health(&server).await?;
        ensure!(
            health["node"] == "eu-1a" && health["cluster"] == "off",
            "{health}"
        );
        server.stop().await?;
    }
    let mut made = Vec::new();
    for _ in 0..2 {
        let server = Served::start(&dir.dir, &args, &[], true).await?;
        let id = node_in(&server.listening)
            .with_context(|| format!("no node in {:?}", server.listening))?
            .to_owned();
        ensure!(
            !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
            "{id:?}"
        );
        ensure!(health(&server).await?["node"] == id.as_str());
        server.stop().await?;
        made.push(id);
    }
    ensure!(made[0] != made[1], "each start makes its own id: {made:?}");
    Ok(())
}

/// `--cluster` is checked like every setting: a bad URL is named, its
/// password never repeated, and nothing starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cluster_setting_is_named_and_nothing_starts() -> Result<()> {
    let dir = Scratch::new("cluster")?;
    let harmless = ["--listen", "127.0.0.1:0", "--admin-listen", "off"];
    for (extra, env, why) in [
        (
            &[][..],
            &[(
                "SWITCHBOARD_CLUSTER",
                "rediss://:s3cret@redis.example.com/x",
            )][..],
            "--cluster",
        ),
        (
            &["--cluster", "http://:s3cret@127.0.0.1:6390/0"][..],
            &[][..],
            "--cluster",
        ),
        (
            &["--cluster", "redis://:s3cret@127.0.0.1:6390/zero"][..],
            &[][..],
            "must end with /DB",
        ),
        (
            &["--cluster-prefix", "no spaces"][..],
            &[][..],
            "--cluster-prefix",
        ),
        (&["--node-id", "a/b"][..], &[][..], "--node-id"),
    ] {
        let out = run(&dir.dir, &[&harmless[..], extra].concat(), env, WAIT)
            .await
            .with_context(|| format!("{extra:?} {env:?}: the binary kept running"))?;
        ensure!(out.code == Some(2), "{extra:?} {env:?}: {out:#?}");
        ensure!(out.stderr.contains(why), "{extra:?} {env:?}: {out:#?}");
        ensure!(
            !out.stderr.contains("s3cret"),
            "the password shown: {out:#?}"
        );
        ensure!(!out.stderr.contains("listening on"), "{out:#?}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Recording and replay
// ---------------------------------------------------------------------------

/// Every text frame named in `v` (a replayed action list or any part of it),
/// parsed as JSON where it is JSON.
fn frames_in(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("text", Value::String(t)) => out.push(
                        serde_json::from_str(t)
                            .map(switchboard_tests::v1_view)
                            .unwrap_or_else(|_| Value::String(t.clone())),
                    ),
                    _ => frames_in(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| frames_in(x, out)),
        _ => {}
    }
}

fn frames(v: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    frames_in(v, &mut out);
    out
}

/// Poll `path` (bounded by WAIT) until it holds at least `n` complete lines.
async fn wait_for_lines(path: &Path, n: usize) -> Result<String> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= n && text.ends_with('\n') {
            return Ok(text);
        }
        if start.elapsed() > WAIT {
            bail!(
                "{} has not {n} lines within {WAIT:?}:\n{text}",
                path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_session_replays_to_the_same_decisions() -> Result<()> {
    let dir = Scratch::new("record")?;
    let deadline = deadline_ms();
    let events = dir.path("events.jsonl");
    let events_arg = events.to_str().context("non-UTF-8 path")?;
    let mut args = serve_args(&deadline);
    args.extend(["--record-events", events_arg]);
    let server = Served::start(&dir.dir, &args, &[], true).await?;

    // The session: two clients, a room, a room message, a notice, goodbye.
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    alice
        .send_json(json!({"type": "join", "room": "lobby", "ref": 1}))
        .await?;
    ensure!(alice.recv_json().await? == json!({"type": "joined", "room": "lobby", "id": "alice"}));
    ensure!(alice.recv_json().await? == json!({"type": "ack", "ref": 1}));
    bob.send_json(json!({"type": "join", "room": "lobby", "ref": 2}))
        .await?;
    ensure!(bob.recv_json().await? == json!({"type": "joined", "room": "lobby", "id": "bob"}));
    ensure!(bob.recv_json().await? == json!({"type": "ack", "ref": 2}));
    ensure!(alice.recv_json().await? == json!({"type": "joined", "room": "lobby", "id": "bob"}));
    alice
        .send_json(json!({"type": "room", "room": "lobby", "data": {"text": "hi"}, "ref": 3}))
        .await?;
    ensure!(alice.recv_json().await? == json!({"type": "ack", "ref": 3}));
    ensure!(
        bob.recv_json().await?
            == json!({"type": "room", "room": "lobby", "from": "alice", "data": {"text": "hi"}})
    );
    bob.send_json(json!({"type": "notice", "to": "alice", "data": "psst", "ref": 4}))
        .await?;
    ensure!(bob.recv_json().await? == json!({"type": "ack", "ref": 4}));
    ensure!(alice.recv_json().await? == json!({"type": "notice", "from": "bob", "data": "psst"}));
    bob.close().await?;
    // Bob's disconnect has reached the rules once alice sees him leave.
    ensure!(alice.recv_json().await? == json!({"type": "left", "room": "lobby", "id": "bob"}));
    alice.close().await?;
    // Sessions never wait for the disk: the recorder writes behind them.
    // Stop only once it has written everything (the binary does not flush
    // the recording at shutdown; see
    // `the_recording_is_complete_after_an_immediate_sigterm`).
    wait_for_lines(&events, 8).await?;
    server.stop().await?;

    // The recording: one line per event, in order.
    let text = std::fs::read_to_string(&events)
        .with_context(|| format!("cannot read {}", events.display()))?;
    let recorded: Vec<Recorded> = text
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("not a recorded event: {l}")))
        .collect::<Result<_>>()?;
    let summary: Vec<(&str, &str, Option<&str>)> = recorded
        .iter()
        .map(|r| match &r.event {
            Event::Connect { id, .. } => ("connect", id.as_str(), None),
            Event::Message { id, text, .. } => ("message", id.as_str(), text.as_deref()),
            Event::Disconnect { id } => ("disconnect", id.as_str(), None),
            Event::Gap { .. } => ("gap", "", None),
        })
        .collect();
    let join_a = json!({"type": "join", "room": "lobby", "ref": 1}).to_string();
    let join_b = json!({"type": "join", "room": "lobby", "ref": 2}).to_string();
    let room =
        json!({"type": "room", "room": "lobby", "data": {"text": "hi"}, "ref": 3}).to_string();
    let notice = json!({"type": "notice", "to": "alice", "data": "psst", "ref": 4}).to_string();
    let expected: Vec<(&str, &str, Option<&str>)> = vec![
        ("connect", "alice", None),
        ("connect", "bob", None),
        ("message", "alice", Some(&join_a)),
        ("message", "bob", Some(&join_b)),
        ("message", "alice", Some(&room)),
        ("message", "bob", Some(&notice)),
        ("disconnect", "bob", None),
        ("disconnect", "alice", None),
    ];
    ensure!(summary == expected, "recorded {summary:#?}\nfrom:\n{text}");
    match &recorded[0].event {
        Event::Connect {
            path,
            remote_addr,
            secure,
            ..
        } => ensure!(
            path == "/ws/alice" && remote_addr.starts_with("127.0.0.1:") && !secure,
            "{:?}",
            recorded[0]
        ),
        other => bail!("{other:?}"),
    }
    ensure!(
        recorded.windows(2).all(|w| w[0].t <= w[1].t),
        "times go backwards: {text}"
    );

    // Replayed through the default rules: one line per event, deciding what
    // the clients saw.
    let default = dir.write("default.wasm", DEFAULT_POLICY)?;
    let default_arg = default.to_str().context("non-UTF-8 path")?;
    let out = policy_cmd(
        &dir.dir,
        &[
            "replay",
            default_arg,
            "--events",
            events_arg,
            "--call-deadline-ms",
            &deadline,
        ],
        &[],
    )
    .await?;
    ensure!(out.ok(), "replay failed: {out:#?}");
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
        .collect::<Result<_>>()?;
    ensure!(
        lines.len() == expected.len(),
        "one line per event: {out:#?}"
    );
    for (i, (line, (event, id, _))) in lines.iter().zip(&expected).enumerate() {
        ensure!(
            line["n"] == i + 1 && line["event"] == *event && line["id"] == *id,
            "line {}: {line}",
            i + 1
        );
        ensure!(
            line["actions"].is_array(),
            "line {}: no actions: {line}",
            i + 1
        );
    }
    let has = |i: usize, frame: Value| -> Result<()> {
        let got = frames(&lines[i]["actions"]);
        ensure!(
            got.contains(&frame),
            "line {}: no {frame} among {got:?}: {}",
            i + 1,
            lines[i]
        );
        Ok(())
    };
    has(0, json!({"type": "welcome", "id": "alice"}))?;
    has(1, json!({"type": "welcome", "id": "bob"}))?;
    // The join: a join action, and the joined frame.
    let join = &lines[2]["actions"];
    ensure!(
        join.as_array().is_some_and(|a| a
            .iter()
            .any(|x| x["join"]["id"] == "alice" && x["join"]["room"] == "lobby")),
        "the join decides no join action: {join}"
    );
    has(2, json!({"type": "joined", "room": "lobby", "id": "alice"}))?;
    has(2, json!({"type": "ack", "ref": 1}))?;
    has(3, json!({"type": "joined", "room": "lobby", "id": "bob"}))?;
    has(
        4,
        json!({"type": "room", "room": "lobby", "from": "alice", "data": {"text": "hi"}}),
    )?;
    has(4, json!({"type": "ack", "ref": 3}))?;
    has(5, json!({"type": "notice", "from": "bob", "data": "psst"}))?;
    // A disconnect: the host leaves the rooms and says `left` itself; the
    // default rules decide nothing more.
    ensure!(
        lines[6]["actions"] == json!([]),
        "line 7: the rules leave the rooms to the host: {}",
        lines[6]
    );
    ensure!(
        out.stderr
            .contains(&format!("{} events replayed", expected.len())),
        "{out:#?}"
    );

    // Against a different component: exit 1, only the differing events.
    let misbehave = misbehave_wasm();
    let out = policy_cmd(
        &dir.dir,
        &[
            "replay",
            default_arg,
            "--events",
            events_arg,
            "--against",
            misbehave.to_str().context("path")?,
            "--call-deadline-ms",
            &deadline,
        ],
        &[],
    )
    .await?;
    ensure!(out.code == Some(1), "replay --against misbehave: {out:#?}");
    let diffs: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
        .collect::<Result<_>>()?;
    ensure!(!diffs.is_empty(), "{out:#?}");
    for d in &diffs {
        ensure!(
            d["n"].is_u64() && d["event"].is_string() && d["a"] != d["b"],
            "not a difference: {d}"
        );
    }
    // The welcome differs: JSON from the default rules, text from misbehave.
    let first = &diffs[0];
    ensure!(
        first["n"] == 1 && first["event"] == "connect" && first["id"] == "alice",
        "{first}"
    );
    ensure!(
        frames(&first["b"]).contains(&json!("welcome alice")),
        "misbehave's welcome: {first}"
    );
    ensure!(
        out.stderr.contains(&format!(
            "{} events replayed; {} decided differently",
            expected.len(),
            diffs.len()
        )),
        "{out:#?}"
    );

    // Against itself: nothing differs.
    let out = policy_cmd(
        &dir.dir,
        &[
            "replay",
            default_arg,
            "--events",
            events_arg,
            "--against",
            default_arg,
            "--call-deadline-ms",
            &deadline,
        ],
        &[],
    )
    .await?;
    ensure!(
        out.ok() && out.stdout.is_empty(),
        "replay against itself: {out:#?}"
    );
    ensure!(
        out.stderr.contains(&format!(
            "{} events replayed; 0 decided differently",
            expected.len()
        )),
        "{out:#?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Regression tests for host bugs found while writing these tests
// ---------------------------------------------------------------------------

/// The recorder's writer task is not drained at shutdown: events recorded
/// just before SIGTERM (here: a whole short session, or its tail) are lost.
/// Seen in 2-8 of 20 runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_is_complete_after_an_immediate_sigterm() -> Result<()> {
    let deadline = deadline_ms();
    for run in 0..10 {
        let dir = Scratch::new("record-flush")?;
        let events = dir.path("events.jsonl");
        let mut args = serve_args(&deadline);
        args.extend(["--record-events", events.to_str().context("path")?]);
        let server = Served::start(&dir.dir, &args, &[], true).await?;
        let mut alice = server.join("alice").await?;
        alice.send_json(json!({"type": "ping", "ref": 1})).await?;
        ensure!(alice.recv_json().await? == json!({"type": "pong"}));
        ensure!(alice.recv_json().await? == json!({"type": "ack", "ref": 1}));
        alice.close().await?;
        // Connect, message and disconnect have all been recorded (the
        // disconnect before the session ended, which shutdown waits for).
        server.stop().await?;
        let text = std::fs::read_to_string(&events)?;
        ensure!(
            text.lines().count() == 3,
            "run {run}: the recording lost events at shutdown:\n{text}"
        );
    }
    Ok(())
}

/// The watcher takes its first look at the file when its task first runs,
/// after the start-up compile, not when the file was read: a file replaced
/// while the server starts is never reloaded (until it changes again or
/// SIGHUP). Here the policy file is a FIFO, so the test knows exactly when
/// the server has read it, and replaces it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_file_replaced_during_start_up_is_reloaded() -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let dir = Scratch::new("watch-start")?;
    let deadline = deadline_ms();
    let file = dir.path("rules.wasm");
    let c_path = std::ffi::CString::new(file.as_os_str().as_bytes())?;
    // SAFETY: mkfifo(3) reads a NUL-terminated path we own.
    ensure!(
        unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } == 0,
        "mkfifo failed"
    );
    let file_arg = file.to_str().context("non-UTF-8 path")?;
    let mut args = serve_args(&deadline);
    args.extend(["--policy", file_arg]);
    let fifo = file.clone();
    // Blocks until the server opens the FIFO; returns once it has read it all.
    let feed = tokio::task::spawn_blocking(move || std::fs::write(&fifo, DEFAULT_POLICY));
    let starting = {
        let dir = dir.dir.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::spawn(async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Served::start(&dir, &args, &[], true).await
        })
    };
    tokio::time::timeout(WAIT, feed)
        .await
        .context("the server did not read the policy file")???;
    // The server now compiles what it read; the file changes meanwhile.
    let new = misbehave_bytes()?;
    replace_atomically(&file, &new)?;
    let server = starting.await??;
    let new_sha = sha256_hex(&new);
    server
        .wait_status("the file replaced during start-up is loaded", |s| {
            s["active"]["sha256"] == new_sha
        })
        .await?;
    server.stop().await
}

// ---------------------------------------------------------------------------
// Finding the admin interface; recording what on-connect is given (issue 20)
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_commands_find_the_admin_interface_where_the_server_put_it() -> Result<()> {
    let dir = Scratch::new("admin-listen")?;
    let deadline = deadline_ms();
    let server = Served::start(&dir.dir, &serve_args(&deadline), &[], true).await?;
    let admin = server.admin.context("admin")?;
    let listen = admin.to_string();
    let status = |env: Vec<(&'static str, String)>, args: Vec<String>| {
        let dir = dir.dir.clone();
        async move {
            let mut all = vec!["status".to_owned(), "--admin-token".into(), TOKEN.into()];
            all.extend(args);
            let args: Vec<&str> = all.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            policy_cmd(&dir, &args, &env).await
        }
    };
    // The server's variable, without --admin-url: the command follows it,
    // over a settings file that says otherwise (as the server would).
    dir.write("switchboard.toml", b"[admin]\nlisten = \"127.0.0.1:1\"\n")?;
    let out = status(vec![("SWITCHBOARD_ADMIN_LISTEN", listen.clone())], vec![]).await?;
    ensure!(out.ok(), "SWITCHBOARD_ADMIN_LISTEN={listen}: {out:#?}");
    ensure!(out.json()?["active"]["seq"] == 1, "{out:#?}");
    // Listening on every address: reached on loopback.
    let every = format!("0.0.0.0:{}", admin.port());
    let out = status(vec![("SWITCHBOARD_ADMIN_LISTEN", every.clone())], vec![]).await?;
    ensure!(out.ok(), "SWITCHBOARD_ADMIN_LISTEN={every}: {out:#?}");
    // Turned off: said so, nothing sent.
    let out = status(vec![("SWITCHBOARD_ADMIN_LISTEN", "off".into())], vec![]).await?;
    ensure!(
        !out.ok()
            && out
                .stderr
                .contains("admin interface is off (SWITCHBOARD_ADMIN_LISTEN"),
        "{out:#?}"
    );
    // --admin-url outranks it, and may leave out the scheme.
    let out = status(
        vec![("SWITCHBOARD_ADMIN_LISTEN", "127.0.0.1:1".into())],
        vec!["--admin-url".into(), listen.clone()],
    )
    .await?;
    ensure!(out.ok(), "--admin-url {listen}: {out:#?}");
    let out = status(vec![("SWITCHBOARD_ADMIN_URL", listen.clone())], vec![]).await?;
    ensure!(out.ok(), "SWITCHBOARD_ADMIN_URL={listen}: {out:#?}");
    // Without either, the settings file's address (nothing listens there).
    let out = status(vec![], vec![]).await?;
    ensure!(
        !out.ok() && out.stderr.contains("127.0.0.1:1"),
        "the settings file's address: {out:#?}"
    );
    server.stop().await
}

#[test]
fn make_run_takes_the_admin_address() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dry_run = |vars: &[&str]| -> Result<String> {
        let out = Command::new("make")
            .args(["-n", "--no-print-directory", "run"])
            .args(vars)
            .current_dir(&root)
            .output()
            .context("cannot run make")?;
        ensure!(out.status.success(), "make -n run {vars:?}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find(|l| l.contains("-p switchboard"))
            .map(str::to_owned)
            .with_context(|| format!("no cargo run line in {text}"))
    };
    let line = dry_run(&["ADMIN_LISTEN=127.0.0.1:4999"])?;
    ensure!(
        line.contains("--listen 0.0.0.0:3001") && line.contains("--admin-listen 127.0.0.1:4999"),
        "{line}"
    );
    let line = dry_run(&[])?;
    ensure!(
        !line.contains("--admin-listen"),
        "the server's default: {line}"
    );
    Ok(())
}

/// Every text frame in `v` (a replayed action list), parsed whole (v2's
/// fields kept, unlike [`frames`]).
fn whole_frames(v: &Value) -> Vec<Value> {
    match v {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, x)| match (k.as_str(), x) {
                ("text", Value::String(t)) => {
                    vec![serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.clone()))]
                }
                _ => whole_frames(x),
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(whole_frames).collect(),
        _ => Vec::new(),
    }
}

/// A token for `sub` with the claims a policy is shown, signed with
/// AUTH_SECRET.
fn signed_token(sub: &str) -> Result<String> {
    use jsonwebtoken::{EncodingKey, Header};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = json!({"sub": sub, "exp": now + 600, "iat": now, "role": "admin"});
    Ok(jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(AUTH_SECRET.as_bytes())?,
    )?)
}

/// With signed tokens and a resume, a connect line records the claims,
/// the (empty) session and `resumed` the rules were given, and a replay
/// gives the rules exactly that (it used to give no claims, `resumed:
/// false` and a made-up session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_gives_the_rules_the_claims_and_the_resume_they_were_given() -> Result<()> {
    use switchboard::config::{AuthConfig, PolicySource};
    use switchboard_tests::TestServer;

    let dir = Scratch::new("record-auth")?;
    let events = dir.path("events.jsonl");
    let events_arg = events.to_str().context("non-UTF-8 path")?;
    let mut config = switchboard_tests::tolerant_config();
    config.policy = PolicySource::File(misbehave_wasm());
    config.auth = Some(AuthConfig {
        secret: Some(AUTH_SECRET.into()),
        ..AuthConfig::default()
    });
    config.record_events = Some(events.clone());
    let server = TestServer::start(config).await?;
    let token = signed_token("info-alice")?;

    // Live: the rules get the claims and no session; the host puts the
    // session into their welcome.
    let mut alice = server.connect_path(&format!("/ws?token={token}")).await?;
    let welcome = alice.recv_v2().await?;
    ensure!(
        welcome["claims"]["role"] == "admin"
            && welcome["given_session"] == ""
            && welcome["resumed"] == false,
        "{welcome}"
    );
    let session = welcome["session"]
        .as_str()
        .context("the host added no session")?
        .to_owned();
    ensure!(session.len() >= 16, "{welcome}");
    // An abrupt end: held; then resumed.
    drop(alice);
    server.until_held("info-alice").await?;
    let mut alice = server
        .connect_path(&format!("/ws?token={token}&resume={session}"))
        .await?;
    let welcome = alice.recv_v2().await?;
    ensure!(
        welcome["resumed"] == true
            && welcome["claims"]["role"] == "admin"
            && welcome["given_session"] == ""
            && welcome["session"].is_string()
            && welcome["session"] != session.as_str(),
        "{welcome}"
    );
    alice.close().await?;
    // Shutting down flushes the recording.
    server.shutdown().await?;

    let text = std::fs::read_to_string(&events)?;
    ensure!(
        !text.contains(&session),
        "a session reached the recording: {text}"
    );
    ensure!(
        !text.contains(&token),
        "the token reached the recording: {text}"
    );
    let connects: Vec<(Value, String, bool)> = text
        .lines()
        .map(serde_json::from_str::<Recorded>)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter_map(|r| match r.event {
            Event::Connect {
                claims,
                session,
                resumed,
                ..
            } => Some((json!(claims), session, resumed)),
            _ => None,
        })
        .collect();
    ensure!(connects.len() == 2, "{text}");
    for (i, (claims, session, resumed)) in connects.iter().enumerate() {
        ensure!(
            claims["sub"] == "info-alice"
                && claims["role"] == "admin"
                && session.is_empty()
                && *resumed == (i == 1),
            "connect {i}: {text}"
        );
    }

    // The replay shows what the rules were given: the same claims, no
    // session, and the resume.
    let misbehave = misbehave_wasm();
    let deadline = deadline_ms();
    let out = policy_cmd(
        &dir.dir,
        &[
            "replay",
            misbehave.to_str().context("path")?,
            "--events",
            events_arg,
            "--call-deadline-ms",
            &deadline,
        ],
        &[],
    )
    .await?;
    ensure!(out.ok(), "replay failed: {out:#?}");
    let welcomes: Vec<Value> = out
        .stdout
        .lines()
        .map(serde_json::from_str::<Value>)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|l| l["event"] == "connect")
        .flat_map(|l| whole_frames(&l["actions"]))
        .collect();
    let expected = |resumed: bool| {
        json!({
            "type": "welcome",
            "id": "info-alice",
            "claims": connects[0].0,
            "given_session": "",
            "resumed": resumed,
        })
    };
    ensure!(
        welcomes == vec![expected(false), expected(true)],
        "replayed welcomes: {welcomes:#?}\n{out:#?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------

/// `THP_enabled` of process `pid` (`/proc/PID/status`, Linux 5.0 on).
fn huge_pages_enabled(pid: u32) -> Result<Option<bool>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim() != "0"))
}

/// Huge pages are off in the server (khugepaged refilled what a collect
/// gave back: docs/OPERATIONS.md, "Many connections"), unless
/// `MIMALLOC_ALLOW_THP` says otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_turns_transparent_huge_pages_off_unless_told_otherwise() -> Result<()> {
    if !Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
        eprintln!("this kernel has no transparent huge pages: not checked");
        return Ok(());
    }
    let dir = Scratch::new("thp")?;
    let args = ["--listen", "127.0.0.1:0", "--admin-listen", "off"];
    let off = Served::start(&dir.dir, &args, &[], false).await?;
    let Some(enabled) = huge_pages_enabled(off.pid)? else {
        eprintln!("this kernel has no THP_enabled in /proc/PID/status: not checked");
        return Ok(());
    };
    assert!(!enabled, "huge pages still on in the server");
    drop(off);

    let kept = Served::start(&dir.dir, &args, &[("MIMALLOC_ALLOW_THP", "1")], false).await?;
    assert_eq!(
        huge_pages_enabled(kept.pid)?,
        Some(true),
        "MIMALLOC_ALLOW_THP=1 did not keep them"
    );
    Ok(())
}
