//! A connection's outbound side as the rest of the server sees it: a bounded
//! queue of frames (counted in frames and in bytes) and a one-shot close
//! signal. Pushing never waits: a client that cannot keep up is closed with
//! 4008 instead of slowing down the sender or growing memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Close codes the host itself uses.
pub mod code {
    /// The server is shutting down, or the client was idle too long.
    pub const GOING_AWAY: u16 = 1001;
    /// Invalid UTF-8 in a text frame.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Closed by the policy (its default code).
    pub const POLICY: u16 = 1008;
    /// A frame or message over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// A newer connection took over this id.
    pub const REPLACED: u16 = 4001;
    /// The outbound queue overflowed: the client reads too slowly.
    pub const TOO_SLOW: u16 = 4008;
}

/// Why and how a connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// WebSocket close code sent to the client; `None` when the client went
    /// away first (nothing left to tell it).
    pub code: Option<u16>,
    /// Close reason text (at most 123 bytes on the wire).
    pub reason: String,
    /// Deliver frames already queued before the close frame.
    pub drain: bool,
    /// The id was taken over by a newer connection: no `on-disconnect`.
    pub replaced: bool,
    /// The server is shutting down: no `on-disconnect`.
    pub shutdown: bool,
}

impl CloseReason {
    /// Close with `code`, delivering what is queued first.
    pub fn with_code(code: u16, reason: impl Into<String>) -> Self {
        CloseReason {
            code: Some(code),
            reason: reason.into(),
            drain: true,
            replaced: false,
            shutdown: false,
        }
    }

    /// The client hung up or the socket failed.
    pub fn peer_gone(reason: impl Into<String>) -> Self {
        CloseReason {
            code: None,
            drain: false,
            ..CloseReason::with_code(0, reason)
        }
    }
}

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The connection is closing or closed.
    #[error("connection closed")]
    Closed,
    /// The queue was full; the connection is now being closed with 4008.
    #[error("outbound queue full")]
    Full,
}

/// State shared between a connection's handle and its session.
#[derive(Debug)]
struct Shared {
    /// Distinguishes connections that had the same id at different times.
    serial: u64,
    /// Bytes queued and not yet taken by the writer.
    queued_bytes: AtomicUsize,
    /// Bound on `queued_bytes`.
    max_bytes: usize,
    /// The first close request wins; later ones are ignored.
    reason: OnceLock<CloseReason>,
    /// Wakes the session's reader and writer when `reason` is set.
    cancel: CancellationToken,
}

impl Shared {
    fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.cancel.cancel();
    }
}

/// The cheap-to-clone handle the registry keeps for a connection.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Message>,
    shared: Arc<Shared>,
}

/// The session's end of the queue.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
}

/// A new queue for connection `serial`, bounded by `max_frames` and `max_bytes`.
pub fn channel(serial: u64, max_frames: usize, max_bytes: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(max_frames.max(1));
    let shared = Arc::new(Shared {
        serial,
        queued_bytes: AtomicUsize::new(0),
        max_bytes,
        reason: OnceLock::new(),
        cancel: CancellationToken::new(),
    });
    (
        Outbox {
            tx,
            shared: shared.clone(),
        },
        Inbox { rx, shared },
    )
}

impl Outbox {
    /// Which connection this is.
    pub fn serial(&self) -> u64 {
        self.shared.serial
    }

    /// Queue `msg` without waiting. On overflow the connection is closed with
    /// 4008 (and the frame dropped): the rest of the server carries on.
    pub fn push(&self, msg: Message) -> Result<(), PushError> {
        if self.shared.cancel.is_cancelled() {
            return Err(PushError::Closed);
        }
        let len = msg.len();
        let before = self.shared.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if before + len > self.shared.max_bytes && before > 0 {
            self.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.overflow();
            return Err(PushError::Full);
        }
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                match e {
                    mpsc::error::TrySendError::Full(_) => {
                        self.overflow();
                        Err(PushError::Full)
                    }
                    mpsc::error::TrySendError::Closed(_) => Err(PushError::Closed),
                }
            }
        }
    }

    /// Ask the session to end. The first reason wins.
    pub fn close(&self, reason: CloseReason) {
        self.shared.close(reason);
    }

    /// Resolves once a close has been requested.
    pub async fn closed(&self) {
        self.shared.cancel.cancelled().await
    }

    /// Whether a close has been requested.
    pub fn is_closing(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    fn overflow(&self) {
        tracing::warn!(
            serial = self.shared.serial,
            "outbound queue full, closing with 4008"
        );
        let mut reason = CloseReason::with_code(code::TOO_SLOW, "too slow: outbound queue full");
        // Whatever is queued is exactly what this client cannot take.
        reason.drain = false;
        self.close(reason);
    }
}

impl Inbox {
    /// The next queued frame; `None` once a close was requested.
    pub async fn recv(&mut self) -> Option<Message> {
        tokio::select! {
            biased;
            _ = self.shared.cancel.cancelled() => None,
            msg = self.rx.recv() => msg.inspect(|m| self.taken(m)),
        }
    }

    /// A queued frame if one is ready now.
    pub fn try_recv(&mut self) -> Option<Message> {
        self.rx.try_recv().ok().inspect(|m| self.taken(m))
    }

    /// Resolves when a close has been requested.
    pub async fn closing(&self) {
        self.shared.cancel.cancelled().await
    }

    /// Request a close from the session's side (client gone, bad frame, idle).
    pub fn close(&self, reason: CloseReason) {
        self.shared.close(reason);
    }

    /// Why the connection is closing, once it is.
    pub fn reason(&self) -> Option<&CloseReason> {
        self.shared.reason.get()
    }

    /// Stop accepting frames; those already queued can still be drained.
    pub fn seal(&mut self) {
        self.rx.close();
    }

    fn taken(&self, msg: &Message) {
        self.shared
            .queued_bytes
            .fetch_sub(msg.len(), Ordering::Relaxed);
    }
}
