//! Logs (issue 22, section 2): `--log-format json` writes one JSON object
//! per line with stable field names, and every connection that closes
//! gets one line with its id, peer, duration, frames in and out, and
//! close code. Run against the binary, whose stderr is the log.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use switchboard_tests::{WAIT, Watched, switchboard_bin, watch};

/// The port in a log message `listening on ws://127.0.0.1:PORT …`.
fn listening_port(message: &str) -> Option<u16> {
    const PREFIX: &str = "listening on ws://127.0.0.1:";
    let rest = &message[message.find(PREFIX)? + PREFIX.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The next log line, which must be a JSON object with the fixed fields.
async fn next_line(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Result<Value> {
    let line = tokio::time::timeout(WAIT, lines.recv())
        .await
        .context("no log line in time")?
        .context("the server exited")?;
    let v: Value = serde_json::from_str(&line).with_context(|| format!("not JSON: {line}"))?;
    for field in ["timestamp", "level", "target", "message"] {
        ensure!(v[field].is_string(), "no {field}: {line}");
    }
    Ok(v)
}

#[tokio::test]
async fn json_logs_have_one_line_per_connection_close() -> Result<()> {
    let bin = switchboard_bin()?;
    let child = Command::new(&bin)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(["--admin-token", "logs-test-token-0123456789abcdef"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = child.id();
    let Watched { mut lines, .. } = watch(child, |_| {})?;
    let _kill = KillOnDrop(pid);
    let port = loop {
        let v = next_line(&mut lines).await?;
        if let Some(port) = v["message"].as_str().and_then(listening_port) {
            break port;
        }
    };

    let url = format!("ws://127.0.0.1:{port}/ws/alice");
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
    use futures_util::{SinkExt, StreamExt};
    let _welcome = ws.next().await.context("no welcome")??;
    ws.send(json!({"type": "ping", "ref": 1}).to_string().into())
        .await?;
    let _pong = ws.next().await.context("no pong")??;
    let _ack = ws.next().await.context("no ack")??;
    ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await?;
    while ws.next().await.is_some() {}

    let closed = loop {
        let v = next_line(&mut lines).await?;
        if v["message"] == "connection closed" {
            break v;
        }
    };
    ensure!(closed["target"] == "switchboard::connection", "{closed}");
    ensure!(closed["level"] == "INFO", "{closed}");
    ensure!(closed["id"] == "alice", "{closed}");
    ensure!(
        closed["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{closed}"
    );
    ensure!(closed["duration_ms"].is_u64(), "{closed}");
    // The ping and the close frame in; the welcome, pong and ack (and the
    // close frame) out.
    ensure!(
        closed["frames_in"].as_u64().is_some_and(|n| n >= 1),
        "{closed}"
    );
    ensure!(
        closed["frames_out"].as_u64().is_some_and(|n| n >= 3),
        "{closed}"
    );
    ensure!(closed["code"] == 1000, "{closed}");
    ensure!(closed["held"] == false, "{closed}");
    Ok(())
}

/// Kills the server when the test ends, however it ends.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.0) {
            // SAFETY: kill(2) only sends a signal; it touches no memory of ours.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}
