//! Opt-in recording of the events the policy sees, as JSON lines, for
//! `switchboard policy replay`. One line per event:
//!
//! ```json
//! {"t":1764115200000,"event":"connect","id":"alice","remote_addr":"127.0.0.1:50000","path":"/ws/alice","query":null,"headers":[],"secure":false,"claims":{"exp":1764118800,"sub":"alice"},"session":"","resumed":false}
//! {"t":1764115200003,"event":"message","id":"alice","text":"{\"type\":\"join\",\"room\":\"r\"}"}
//! {"t":1764115200004,"event":"message","id":"alice","binary":"AAEC"}
//! {"t":1764115200009,"event":"disconnect","id":"alice"}
//! ```
//!
//! A connect line holds everything `on-connect` was given, so a replay
//! gives the rules the same: the token's `claims` (`null` without signed
//! tokens; the token itself is never recorded), `session` (always `""`:
//! the host puts the session into the welcome, a policy never sees it) and
//! `resumed`. Lines recorded before these were (older servers) replay with
//! `null`, `""` and `false`.
//!
//! Sessions never wait for the disk: events go through a queue bounded in
//! events and in bytes to one writer task. If the disk cannot keep up,
//! events are dropped and a `{"event":"gap","dropped":N}` line says how many.
//!
//! The file is created readable by its owner only (it holds what clients
//! sent). Past `record_max_bytes` it is renamed to `<file>.1` (replacing the
//! previous one) and a new file is started, so at most two files of at most
//! that size each are kept (a single longer line goes alone in its file).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use crate::policy::clock::unix_ms;
use crate::policy::{ConnectInfo, Frame};

/// Events waiting for the writer.
const QUEUE: usize = 65_536;

/// Bytes of events waiting for the writer (approximately: see
/// [`Event::size`]).
pub const QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// What an event costs besides its strings (the struct, the queue slot).
const EVENT_OVERHEAD: usize = 128;

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
        /// The verified token's claims (`None`: ids are not checked).
        #[serde(default)]
        claims: Option<serde_json::Map<String, serde_json::Value>>,
        /// The session the rules were given (always empty: see the top).
        #[serde(default)]
        session: String,
        /// Whether the connection resumed a held id.
        #[serde(default)]
        resumed: bool,
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
            claims: info.claims.clone(),
            session: info.session.clone(),
            resumed: info.resumed,
        }
    }

    /// What `on-connect` is given for a connect event (`None` for any other
    /// event).
    pub fn connect_info(&self) -> Option<ConnectInfo> {
        match self {
            Event::Connect {
                id,
                remote_addr,
                path,
                query,
                headers,
                secure,
                claims,
                session,
                resumed,
            } => Some(ConnectInfo {
                id: id.clone(),
                remote_addr: remote_addr.clone(),
                path: path.clone(),
                query: query.clone(),
                headers: headers.clone(),
                secure: *secure,
                claims: claims.clone(),
                session: session.clone(),
                resumed: *resumed,
            }),
            _ => None,
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

    /// Approximately how many bytes the event holds in memory.
    pub fn size(&self) -> usize {
        let strings = match self {
            Event::Connect {
                id,
                remote_addr,
                path,
                query,
                headers,
                claims,
                session,
                ..
            } => {
                id.len()
                    + remote_addr.len()
                    + path.len()
                    + query.as_ref().map_or(0, String::len)
                    + headers
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>()
                    + claims.as_ref().map_or(0, json_len)
                    + session.len()
            }
            Event::Message { id, text, binary } => {
                id.len()
                    + text.as_ref().map_or(0, String::len)
                    + binary.as_ref().map_or(0, String::len)
            }
            Event::Disconnect { id } => id.len(),
            Event::Gap { .. } => 0,
        };
        EVENT_OVERHEAD + strings
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

/// The length of `claims` written as JSON (counted, not written out).
fn json_len(claims: &serde_json::Map<String, serde_json::Value>) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // A map of JSON values always serialises.
    let _ = serde_json::to_writer(&mut count, claims);
    count.0
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
    /// An event and the bytes it was counted for in the queue.
    Line(Recorded, usize),
    /// Write everything before this, flush, answer, and stop.
    Finish(oneshot::Sender<()>),
}

/// The handle sessions record through (cheap to clone).
#[derive(Debug, Clone)]
pub struct Recorder {
    /// To the writer task.
    tx: mpsc::Sender<Msg>,
    /// Events dropped since the last `gap` line.
    dropped: Arc<AtomicU64>,
    /// Bytes of events in the queue, and their bound.
    queued: Arc<Queued>,
}

/// Bytes of events in the queue.
#[derive(Debug)]
struct Queued {
    /// Now.
    bytes: AtomicUsize,
    /// At most.
    max: usize,
}

impl Queued {
    /// Count `n` more bytes, unless that would pass the bound.
    fn take(&self, n: usize) -> bool {
        self.bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                b.checked_add(n).filter(|total| *total <= self.max)
            })
            .is_ok()
    }

    /// `n` bytes left the queue.
    fn give_back(&self, n: usize) {
        self.bytes.fetch_sub(n, Ordering::Relaxed);
    }
}

impl Recorder {
    /// Append to `path` (created if missing, owner-only) from a background
    /// task, rotating it past `max_bytes` (0: never).
    pub async fn start(path: &Path, max_bytes: u64) -> Result<Recorder, RecordError> {
        let failed = |source| RecordError {
            path: path.display().to_string(),
            source,
        };
        let file = open_private(path).await.map_err(failed)?;
        let written = file.metadata().await.map_err(failed)?.len();
        let (recorder, rx) = Recorder::channel(QUEUE_BYTES);
        let out = Output {
            path: path.to_owned(),
            file: tokio::io::BufWriter::new(file),
            written,
            max_bytes,
        };
        tokio::spawn(write(
            out,
            rx,
            recorder.dropped.clone(),
            recorder.queued.clone(),
        ));
        tracing::info!(path = %path.display(), max_bytes, "recording policy events");
        Ok(recorder)
    }

    /// A recorder and the receiving end of its queue, bounded to
    /// `max_bytes` of events.
    fn channel(max_bytes: usize) -> (Recorder, mpsc::Receiver<Msg>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let recorder = Recorder {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            queued: Arc::new(Queued {
                bytes: AtomicUsize::new(0),
                max: max_bytes,
            }),
        };
        (recorder, rx)
    }

    /// Record `event` now, without waiting.
    pub fn record(&self, event: Event) {
        let size = event.size();
        if !self.queued.take(size) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let line = Recorded {
            t: unix_ms(),
            event,
        };
        if self.tx.try_send(Msg::Line(line, size)).is_err() {
            self.queued.give_back(size);
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

/// Open `path` for appending, readable and writable by its owner only
/// (an existing file with a wider mode is narrowed).
async fn open_private(path: &Path) -> std::io::Result<tokio::fs::File> {
    let mut options = tokio::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    options.mode(0o600);
    let file = options.open(path).await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().await?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .await?;
        }
    }
    Ok(file)
}

/// The file being written, and when to rotate it.
struct Output {
    /// Its path.
    path: PathBuf,
    /// The open file.
    file: tokio::io::BufWriter<tokio::fs::File>,
    /// Bytes in it.
    written: u64,
    /// Rotate before passing this (0: never).
    max_bytes: u64,
}

impl Output {
    /// Whether a line of `more` bytes after `pending` unwritten ones would
    /// take the file past its cap. An empty file takes any line (a line
    /// longer than the cap goes alone).
    fn would_overflow(&self, pending: usize, more: usize) -> bool {
        let before = self.written + pending as u64;
        self.max_bytes > 0 && before > 0 && before + more as u64 > self.max_bytes
    }

    /// Write and flush `buf` (then empty it).
    async fn put(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(buf).await?;
        self.file.flush().await?;
        self.written += buf.len() as u64;
        buf.clear();
        Ok(())
    }

    /// Move the file to `<file>.1` (replacing it) and start a new one.
    async fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush().await?;
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        tokio::fs::rename(&self.path, &old).await?;
        self.file = tokio::io::BufWriter::new(open_private(&self.path).await?);
        self.written = 0;
        Ok(())
    }
}

async fn write(
    mut out: Output,
    mut rx: mpsc::Receiver<Msg>,
    dropped: Arc<AtomicU64>,
    queued: Arc<Queued>,
) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut line = Vec::with_capacity(1024);
    let mut batch = Vec::with_capacity(256);
    let mut finished = None;
    while finished.is_none() && rx.recv_many(&mut batch, 256).await > 0 {
        let mut lines = Vec::with_capacity(batch.len() + 1);
        let gap = dropped.swap(0, Ordering::Relaxed);
        if gap > 0 {
            lines.push(Recorded {
                t: unix_ms(),
                event: Event::Gap { dropped: gap },
            });
        }
        for msg in batch.drain(..) {
            match msg {
                Msg::Line(recorded, size) => {
                    queued.give_back(size);
                    lines.push(recorded);
                }
                Msg::Finish(done) => finished = Some(done),
            }
        }
        if let Err(e) = write_lines(&mut out, &lines, &mut buf, &mut line).await {
            tracing::error!(path = %out.path.display(), error = %e, "recording stopped");
            return;
        }
    }
    if let Some(done) = finished {
        let _ = done.send(());
    }
}

/// Write `lines`, rotating the file whenever the next line would take it
/// past its cap.
async fn write_lines(
    out: &mut Output,
    lines: &[Recorded],
    buf: &mut Vec<u8>,
    line: &mut Vec<u8>,
) -> std::io::Result<()> {
    for recorded in lines {
        line.clear();
        push_line(line, recorded);
        if out.would_overflow(buf.len(), line.len()) {
            out.put(buf).await?;
            out.rotate().await?;
        }
        buf.extend_from_slice(line);
    }
    out.put(buf).await
}

fn push_line(buf: &mut Vec<u8>, line: &Recorded) {
    if serde_json::to_writer(&mut *buf, line).is_ok() {
        buf.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: usize) -> Event {
        Event::Message {
            id: "alice".into(),
            text: Some("x".repeat(bytes)),
            binary: None,
        }
    }

    #[test]
    fn the_queue_is_bounded_in_bytes() {
        let one = message(1000).size();
        let (recorder, mut rx) = Recorder::channel(3 * one);
        for _ in 0..10 {
            recorder.record(message(1000));
        }
        // Three fit in the bytes allowed, although the queue has room for
        // many more events; the rest are counted for the gap line.
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 7);
        assert_eq!(recorder.queued.bytes.load(Ordering::Relaxed), 3 * one);
        // Even a small one, while the bytes are taken.
        recorder.record(message(0));
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 8);
        // What the writer takes out makes room again.
        let Ok(Msg::Line(_, size)) = rx.try_recv() else {
            panic!("an event was queued");
        };
        recorder.queued.give_back(size);
        recorder.record(message(1000));
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 8);
        assert_eq!(recorder.queued.bytes.load(Ordering::Relaxed), 3 * one);
    }

    #[test]
    fn a_connect_line_keeps_what_on_connect_was_given_and_old_lines_still_read() {
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), "alice".into());
        claims.insert("role".into(), "admin".into());
        let info = ConnectInfo {
            id: "alice".into(),
            remote_addr: "127.0.0.1:5".into(),
            path: "/ws".into(),
            query: Some("x=1".into()),
            headers: vec![("origin".into(), "https://a.example".into())],
            secure: true,
            claims: Some(claims),
            session: String::new(),
            resumed: true,
        };
        let line = Recorded {
            t: 1,
            event: Event::connect(&info),
        };
        let text = serde_json::to_string(&line).unwrap();
        assert!(
            text.contains(r#""claims":{"role":"admin","sub":"alice"}"#),
            "{text}"
        );
        assert!(text.contains(r#""session":"","resumed":true"#), "{text}");
        let back: Recorded = serde_json::from_str(&text).unwrap();
        let got = back.event.connect_info().unwrap();
        assert_eq!(format!("{got:?}"), format!("{info:?}"));
        assert!(
            line.event.size() >= EVENT_OVERHEAD + 40,
            "{}",
            line.event.size()
        );
        // A line from before claims, session and resumed were recorded.
        let old = r#"{"t":1,"event":"connect","id":"bob","remote_addr":"","path":"/ws/bob","query":null,"headers":[],"secure":false}"#;
        let old: Recorded = serde_json::from_str(old).unwrap();
        let got = old.event.connect_info().unwrap();
        assert!(
            got.claims.is_none() && got.session.is_empty() && !got.resumed,
            "{got:?}"
        );
    }

    #[test]
    fn event_sizes_count_their_strings() {
        assert!(message(10_000).size() >= 10_000);
        let binary = Event::message("bob", &Frame::Binary(vec![0; 3000]));
        assert!(
            binary.size() >= 4000,
            "base64 of 3000 bytes: {}",
            binary.size()
        );
    }
}
