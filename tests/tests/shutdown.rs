//! Graceful shutdown: every client gets close 1001 `server shutting down`,
//! both for a server in this process and for the real `switchboard` binary
//! on SIGINT; on SIGTERM the binary drains instead (close 1012, `server
//! restarting; reconnect`, a few clients at a time). Either way it then
//! exits with status 0. Unix only: it sends signals.

use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use switchboard_tests::{
    Client, TestServer, WAIT, Watched, switchboard_bin, tolerant_config, watch,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Both clients were told the server is going away.
async fn expect_going_away(clients: Vec<&mut Client>) -> Result<()> {
    expect_closed(clients, 1001, "server shutting down").await
}

/// Every client was closed with `code` and `reason`.
async fn expect_closed(clients: Vec<&mut Client>, code: u16, reason: &str) -> Result<()> {
    for c in clients {
        let closed = c.closed().await?;
        assert_eq!(closed.code, Some(code), "{closed:?}");
        assert_eq!(closed.reason, reason);
    }
    Ok(())
}

#[tokio::test]
async fn shutdown_closes_every_client_with_1001() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let registry = server.registry.clone();
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    alice
        .send_json(json!({"type": "join", "room": "lobby", "ref": 1}))
        .await?;
    assert_eq!(alice.recv_json().await?["type"], "joined");
    assert_eq!(alice.recv_json().await?, json!({"type": "ack", "ref": 1}));

    // Shut down while the clients read their close frames (the server waits,
    // bounded, for each client to hang up after its close).
    let stopping = tokio::spawn(server.shutdown());
    expect_going_away(vec![&mut alice, &mut bob]).await?;
    drop((alice, bob));
    tokio::time::timeout(WAIT * 3, stopping)
        .await
        .context("shutdown did not finish")???;
    assert_eq!(registry.online_count(), 0);
    Ok(())
}

/// The `switchboard` binary, running, listening on 127.0.0.1:`port`.
struct Running {
    pid: u32,
    port: u16,
    /// Its stderr (the log), line by line.
    lines: mpsc::UnboundedReceiver<String>,
    /// The log lines read so far.
    log: Vec<String>,
    /// Its exit status, once it has exited.
    status: Option<oneshot::Receiver<std::io::Result<ExitStatus>>>,
    exited: Arc<AtomicBool>,
}

impl Running {
    /// Start the binary on 127.0.0.1:0 and read its log up to the line
    /// `listening on ws://127.0.0.1:PORT`.
    async fn start() -> Result<Running> {
        Self::start_inner(false).await
    }

    /// Like `start`, but SIGTERM is sent the moment the `listening on` line
    /// is read, from the thread reading the log.
    async fn start_and_terminate_at_once() -> Result<Running> {
        Self::start_inner(true).await
    }

    async fn start_inner(terminate_at_once: bool) -> Result<Running> {
        let bin = switchboard_bin()?;
        let child = Command::new(&bin)
            // A deadline that a loaded machine's scheduling cannot exceed
            // (see `tolerant_config`).
            .args(["--listen", "127.0.0.1:0", "--log", "info"])
            // Not the default 127.0.0.1:3002: a server a developer runs
            // beside the tests (`make run`) holds that port.
            .args(["--admin-listen", "127.0.0.1:0"])
            // A token, so no token file is written (in the real home).
            .args(["--admin-token", "shutdown-test-token-0123456789"])
            .args(["--call-deadline-ms", &WAIT.as_millis().to_string()])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id();
        // With `terminate_at_once`, SIGTERM goes out from the reading thread
        // the moment the `listening on` line is read.
        let Watched {
            lines,
            status,
            exited,
        } = watch(child, move |line| {
            if terminate_at_once && listening_port(line).is_some() {
                terminate(pid);
            }
        })?;
        let mut running = Running {
            pid,
            port: 0,
            lines,
            log: Vec::new(),
            status: Some(status),
            exited,
        };
        // Start-up compiles the embedded policy: allow it more than one WAIT.
        let found = tokio::time::timeout(WAIT * 4, async {
            while let Some(line) = running.lines.recv().await {
                let port = listening_port(&line);
                running.log.push(line);
                if port.is_some() {
                    return port;
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(port)) => running.port = port,
            Ok(None) => bail!("the server exited before listening: {:#?}", running.log),
            Err(_) => bail!("no `listening on` line in time: {:#?}", running.log),
        }
        Ok(running)
    }

    /// Send SIGTERM.
    fn terminate(&self) -> Result<()> {
        if !terminate(self.pid) {
            bail!("kill(SIGTERM) of {} failed", self.pid);
        }
        Ok(())
    }

    /// Send SIGINT (Ctrl-C).
    fn interrupt(&self) -> Result<()> {
        if !signal(self.pid, libc::SIGINT) {
            bail!("kill(SIGINT) of {} failed", self.pid);
        }
        Ok(())
    }

    /// Wait for the exit; check it is status 0 after a graceful stop.
    async fn expect_clean_exit(&mut self) -> Result<()> {
        let status = self.status.take().context("already waited")?;
        let status = tokio::time::timeout(WAIT * 3, status)
            .await
            .map_err(|_| anyhow!("the server did not exit after SIGTERM"))??
            .context("waiting for the server")?;
        // The rest of the log, now that stderr is closed.
        while let Some(line) = self.lines.recv().await {
            self.log.push(line);
        }
        let log = &self.log;
        assert_eq!(
            status.code(),
            Some(0),
            "exit status {status}; log: {log:#?}"
        );
        assert!(
            log.iter().any(|l| l.contains("shutting down"))
                && log.iter().any(|l| l.contains("stopped")),
            "log: {log:#?}"
        );
        Ok(())
    }
}

impl Drop for Running {
    /// Kill the process if the test ends before it has exited.
    fn drop(&mut self) {
        if !self.exited.load(Ordering::SeqCst) {
            signal(self.pid, libc::SIGKILL);
        }
    }
}

/// Send SIGTERM to `pid`; false if that failed.
fn terminate(pid: u32) -> bool {
    signal(pid, libc::SIGTERM)
}

fn signal(pid: u32, signal: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) only sends a signal; it touches no memory of ours.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// The port in a log line `listening on ws://127.0.0.1:PORT …`.
fn listening_port(line: &str) -> Option<u16> {
    const PREFIX: &str = "listening on ws://127.0.0.1:";
    let rest = &line[line.find(PREFIX)? + PREFIX.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Two clients of the binary, each served (a notice goes from one to the
/// other).
async fn two_clients(port: u16) -> Result<Vec<Client>> {
    let mut clients = Vec::new();
    for id in ["alice", "bob"] {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async_with_config(
                format!("ws://127.0.0.1:{port}/ws/{id}"),
                Box::new(tcp) as Box<dyn switchboard_tests::Io>,
                Some(WebSocketConfig::default()),
            ),
        )
        .await
        .map_err(|_| anyhow!("handshake timed out"))??;
        let mut c = Client { ws };
        assert_eq!(c.recv_json().await?, json!({"type": "welcome", "id": id}));
        clients.push(c);
    }
    // Both are served.
    clients[0]
        .send_json(json!({"type": "notice", "to": "bob", "data": "hi", "ref": 1}))
        .await?;
    assert_eq!(
        clients[0].recv_json().await?,
        json!({"type": "ack", "ref": 1})
    );
    assert_eq!(
        clients[1].recv_json().await?,
        json!({"type": "notice", "from": "alice", "data": "hi"})
    );
    Ok(clients)
}

#[tokio::test]
async fn the_binary_closes_every_client_with_1001_on_sigint_and_exits_0() -> Result<()> {
    let mut server = Running::start().await?;
    let mut clients = two_clients(server.port).await?;
    server.interrupt()?;
    let (a, b) = clients.split_at_mut(1);
    expect_going_away(vec![&mut a[0], &mut b[0]]).await?;
    drop(clients);
    server.expect_clean_exit().await
}

#[tokio::test]
async fn the_binary_drains_on_sigterm_with_1012_and_exits_0() -> Result<()> {
    let mut server = Running::start().await?;
    let mut clients = two_clients(server.port).await?;
    server.terminate()?;
    let (a, b) = clients.split_at_mut(1);
    expect_closed(
        vec![&mut a[0], &mut b[0]],
        1012,
        "server restarting; reconnect",
    )
    .await?;
    drop(clients);
    server.expect_clean_exit().await?;
    assert!(
        server
            .log
            .iter()
            .any(|l| l.contains("drained: every client has gone")),
        "{:#?}",
        server.log
    );
    Ok(())
}

#[tokio::test]
async fn sigterm_right_after_the_listening_line_is_still_graceful() -> Result<()> {
    // The signal handlers must be in place before the server says it is
    // listening; before they were, about one run in five died of the signal
    // (exit status 143).
    for _ in 0..10 {
        let mut server = Running::start_and_terminate_at_once().await?;
        server.expect_clean_exit().await?;
    }
    Ok(())
}
