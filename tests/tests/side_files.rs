//! Files and stores beside the chat that a client or a policy fills: the
//! event recording is readable by its owner only and rotated at its size
//! cap, keeping at most two files. (The policy key-value store's per-entry
//! overhead and entry cap are unit-tested in host/src/store/state.rs, the
//! recording queue's byte bound in host/src/chat/record.rs.)

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use switchboard::chat::record::{Event, Recorded};
use switchboard::config::Config;
use switchboard_tests::{TestServer, WAIT, misbehave_config};

/// A directory of its own for one test, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-side-files-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The misbehave policy (it echoes), recording to `events`.
fn recording_config(events: &Path) -> Config {
    let mut config = misbehave_config();
    config.policy_limits.call_deadline = WAIT;
    config.record_events = Some(events.to_owned());
    // Many messages in a burst are the point here, not the rate limit.
    config.limits.messages_per_sec = 0;
    config
}

fn mode(path: &Path) -> Result<u32> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    Ok(meta.permissions().mode() & 0o777)
}

#[tokio::test]
async fn the_recording_is_readable_by_its_owner_only() -> Result<()> {
    let dir = Scratch::new("mode")?;
    // A new file, and one that was there with the usual 0644.
    let fresh = dir.path("fresh.jsonl");
    let existing = dir.path("existing.jsonl");
    std::fs::write(&existing, "")?;
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644))?;
    for events in [&fresh, &existing] {
        let server = TestServer::start(recording_config(events)).await?;
        let got = mode(events)?;
        ensure!(got == 0o600, "{}: mode {got:o}", events.display());
        server.shutdown().await?;
    }
    Ok(())
}

#[tokio::test]
async fn the_recording_rotates_at_its_size_cap() -> Result<()> {
    let cap: u64 = 4096;
    let dir = Scratch::new("rotate")?;
    let events = dir.path("events.jsonl");
    let rotated = dir.path("events.jsonl.1");
    let mut config = recording_config(&events);
    config.record_max_bytes = cap;
    let server = TestServer::start(config).await?;
    let mut c = server.connect("writer").await?;
    ensure!(c.recv_text().await? == "welcome writer");
    // About 150 bytes a line, 100 lines: several times the cap.
    let n = 100;
    for i in 0..n {
        let text = format!("message {i:03} {}", "x".repeat(100));
        c.send_text(&text).await?;
        ensure!(c.recv_text().await? == text);
    }
    c.close().await?;
    // Shutting down flushes the recording.
    server.shutdown().await?;

    let mut lines = Vec::new();
    for file in [&rotated, &events] {
        let size = std::fs::metadata(file)
            .with_context(|| format!("{} is missing", file.display()))?
            .len();
        ensure!(size <= cap, "{}: {size} bytes, cap {cap}", file.display());
        ensure!(
            mode(file)? == 0o600,
            "{}: mode {:o}",
            file.display(),
            mode(file)?
        );
        let text = std::fs::read_to_string(file)?;
        for line in text.lines() {
            let recorded: Recorded = serde_json::from_str(line)
                .with_context(|| format!("not a recorded event: {line}"))?;
            lines.push(recorded.event);
        }
    }
    // Two files are kept: the newest events, in order, up to the last one.
    ensure!(
        lines.len() < n,
        "all {} events kept: nothing was rotated away",
        lines.len()
    );
    ensure!(
        matches!(lines.last(), Some(Event::Disconnect { id }) if id == "writer"),
        "the last event is not the disconnect: {:?}",
        lines.last()
    );
    let texts: Vec<&str> = lines
        .iter()
        .filter_map(|e| match e {
            Event::Message { text, .. } => text.as_deref(),
            _ => None,
        })
        .collect();
    let first: usize = texts
        .first()
        .and_then(|t| t.get(8..11))
        .and_then(|i| i.parse().ok())
        .context("no message kept")?;
    for (k, text) in texts.iter().enumerate() {
        ensure!(
            text.starts_with(&format!("message {:03} ", first + k)),
            "events out of order or missing at {k}: {text}"
        );
    }
    ensure!(first + texts.len() == n, "the newest messages are missing");
    // No third file.
    let files = std::fs::read_dir(&dir.0)?.count();
    ensure!(files == 2, "{files} files in the directory");
    Ok(())
}
