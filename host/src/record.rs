//! Opt-in recording of the events the policy sees, as JSON lines, for
//! `switchboard policy replay`. One line per event:
//!
//! ```json
//! {"t":1764115200000,"event":"connect","id":"alice","remote_addr":"127.0.0.1:50000","path":"/ws/alice","query":null,"headers":[],"secure":false}
//! {"t":1764115200003,"event":"message","id":"alice","text":"{\"type\":\"join\",\"room\":\"r\"}"}
//! {"t":1764115200004,"event":"message","id":"alice","binary":"AAEC"}
//! {"t":1764115200009,"event":"disconnect","id":"alice"}
//! ```
//!
//! Sessions never wait for the disk: events go through a bounded queue to
//! one writer task. If the disk cannot keep up, events are dropped and a
//! `{"event":"gap","dropped":N}` line says how many.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use crate::clock::unix_ms;
use crate::policy::{ConnectInfo, Frame};

/// Events waiting for the writer.
const QUEUE: usize = 65_536;

/// One recorded line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// Wall-clock milliseconds since the Unix epoch.
    pub t: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// What the policy was asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// `on-connect`.
    Connect {
        /// The id.
        id: String,
        /// Peer address.
        #[serde(default)]
        remote_addr: String,
        /// Request path.
        #[serde(default)]
        path: String,
        /// Query string.
        #[serde(default)]
        query: Option<String>,
        /// Selected headers.
        #[serde(default)]
        headers: Vec<(String, String)>,
        /// Over TLS.
        #[serde(default)]
        secure: bool,
    },
    /// `on-message`; exactly one of `text` and `binary` (base64).
    Message {
        /// The sender.
        id: String,
        /// A text frame.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// A binary frame, base64.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        binary: Option<String>,
    },
    /// `on-disconnect`.
    Disconnect {
        /// Who left.
        id: String,
    },
    /// Events the recorder had to drop.
    Gap {
        /// How many.
        dropped: u64,
    },
}

impl Event {
    /// The event for an `on-connect` call.
    pub fn connect(info: &ConnectInfo) -> Event {
        Event::Connect {
            id: info.id.clone(),
            remote_addr: info.remote_addr.clone(),
            path: info.path.clone(),
            query: info.query.clone(),
            headers: info.headers.clone(),
            secure: info.secure,
        }
    }

    /// The event for an `on-message` call.
    pub fn message(id: &str, frame: &Frame) -> Event {
        let (text, binary) = match frame {
            Frame::Text(t) => (Some(t.clone()), None),
            Frame::Binary(b) => (None, Some(BASE64.encode(b))),
        };
        Event::Message {
            id: id.to_owned(),
            text,
            binary,
        }
    }

    /// The frame of a message event (`None` if it carries neither form or
    /// bad base64).
    pub fn frame(text: &Option<String>, binary: &Option<String>) -> Option<Frame> {
        match (text, binary) {
            (Some(t), None) => Some(Frame::Text(t.clone())),
            (None, Some(b)) => BASE64.decode(b).ok().map(Frame::Binary),
            _ => None,
        }
    }
}

/// Why recording could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot record events to {path}: {source}")]
pub struct RecordError {
    path: String,
    source: std::io::Error,
}

/// What the writer task is sent.
#[derive(Debug)]
enum Msg {
    Line(Recorded),
    /// Write everything before this, flush, answer, and stop.
    Finish(oneshot::Sender<()>),
}

/// The handle sessions record through (cheap to clone).
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl Recorder {
    /// Append to `path` (created if missing) from a background task.
    pub async fn start(path: &Path) -> Result<Recorder, RecordError> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .map_err(|source| RecordError {
                path: path.display().to_string(),
                source,
            })?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write(file, path.to_owned(), rx, dropped.clone()));
        tracing::info!(path = %path.display(), "recording policy events");
        Ok(Recorder { tx, dropped })
    }

    /// Record `event` now, without waiting.
    pub fn record(&self, event: Event) {
        let line = Recorded {
            t: unix_ms(),
            event,
        };
        if self.tx.try_send(Msg::Line(line)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Write out everything recorded so far and stop recording (at
    /// shutdown, once no session records any more). Waits at most `limit`.
    pub async fn finish(&self, limit: Duration) {
        let (done, flushed) = oneshot::channel();
        let finished = async {
            if self.tx.send(Msg::Finish(done)).await.is_ok() {
                let _ = flushed.await;
            }
        };
        if tokio::time::timeout(limit, finished).await.is_err() {
            tracing::warn!("the event recording could not be flushed in time");
        }
    }
}

async fn write(
    file: tokio::fs::File,
    path: PathBuf,
    mut rx: mpsc::Receiver<Msg>,
    dropped: Arc<AtomicU64>,
) {
    let mut out = tokio::io::BufWriter::new(file);
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut batch = Vec::with_capacity(256);
    let mut finished = None;
    while finished.is_none() && rx.recv_many(&mut batch, 256).await > 0 {
        buf.clear();
        let gap = dropped.swap(0, Ordering::Relaxed);
        if gap > 0 {
            push_line(
                &mut buf,
                &Recorded {
                    t: unix_ms(),
                    event: Event::Gap { dropped: gap },
                },
            );
        }
        for msg in batch.drain(..) {
            match msg {
                Msg::Line(line) => push_line(&mut buf, &line),
                Msg::Finish(done) => finished = Some(done),
            }
        }
        let written = async {
            out.write_all(&buf).await?;
            out.flush().await
        };
        if let Err(e) = written.await {
            tracing::error!(path = %path.display(), error = %e, "recording stopped");
            return;
        }
    }
    if let Some(done) = finished {
        let _ = done.send(());
    }
}

fn push_line(buf: &mut Vec<u8>, line: &Recorded) {
    if serde_json::to_writer(&mut *buf, line).is_ok() {
        buf.push(b'\n');
    }
}
