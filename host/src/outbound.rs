//! A connection's outbound side as the rest of the server sees it: a bounded
//! queue of frames (counted in frames and in bytes) and a one-shot close
//! signal. Pushing never waits: a client that cannot keep up is closed with
//! 4008 instead of slowing down the sender or growing memory.
//!
//! The queue is a `VecDeque` under a mutex rather than a channel: an idle
//! connection then holds no queue memory at all (a channel keeps its first
//! block of slots), and the writer takes everything queued in one lock, so
//! one socket write carries as many frames as have piled up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

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

/// Frames waiting for the writer.
#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Message>,
    /// Payload bytes in `frames`.
    bytes: usize,
    /// No more frames are accepted (the session is finishing).
    sealed: bool,
}

/// State shared between a connection's handle and its session.
#[derive(Debug)]
struct Shared {
    /// Distinguishes connections that had the same id at different times.
    serial: u64,
    max_frames: usize,
    max_bytes: usize,
    queue: Mutex<Queue>,
    /// Set with the first close request; checked without the lock.
    closing: AtomicBool,
    /// The first close request wins; later ones are ignored.
    reason: OnceLock<CloseReason>,
    /// Wakes the writer: frames arrived (queue went non-empty) or closing.
    ready: Notify,
    /// Wakes everything waiting for the close.
    closed: Notify,
}

impl Shared {
    fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        if !self.closing.swap(true, Ordering::AcqRel) {
            self.ready.notify_one();
            self.closed.notify_waiters();
        }
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; if something ever did, the
        // queue is still a valid queue.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn closed(&self) {
        let notified = self.closed.notified();
        tokio::pin!(notified);
        // Registered before the check, so a close in between is not missed.
        notified.as_mut().enable();
        if self.is_closing() {
            return;
        }
        notified.await
    }
}

/// The cheap-to-clone handle the registry keeps for a connection.
#[derive(Debug, Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// The session's end of the queue.
#[derive(Debug)]
pub struct Inbox {
    shared: Arc<Shared>,
}

/// A new queue for connection `serial`, bounded by `max_frames` and `max_bytes`.
pub fn channel(serial: u64, max_frames: usize, max_bytes: usize) -> (Outbox, Inbox) {
    let shared = Arc::new(Shared {
        serial,
        max_frames: max_frames.max(1),
        max_bytes,
        queue: Mutex::default(),
        closing: AtomicBool::new(false),
        reason: OnceLock::new(),
        ready: Notify::new(),
        closed: Notify::new(),
    });
    (
        Outbox {
            shared: shared.clone(),
        },
        Inbox { shared },
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
        let s = &*self.shared;
        if s.is_closing() {
            return Err(PushError::Closed);
        }
        let len = msg.len();
        let mut q = s.queue();
        if q.sealed {
            return Err(PushError::Closed);
        }
        let over_bytes = q.bytes + len > s.max_bytes && q.bytes > 0;
        if q.frames.len() >= s.max_frames || over_bytes {
            drop(q);
            self.overflow();
            return Err(PushError::Full);
        }
        let was_empty = q.frames.is_empty();
        q.frames.push_back(msg);
        q.bytes += len;
        drop(q);
        // The writer takes the whole queue at once, so only the push that
        // makes it non-empty needs to wake it.
        if was_empty {
            s.ready.notify_one();
        }
        Ok(())
    }

    /// Ask the session to end. The first reason wins.
    pub fn close(&self, reason: CloseReason) {
        self.shared.close(reason);
    }

    /// Resolves once a close has been requested.
    pub async fn closed(&self) {
        self.shared.closed().await
    }

    /// Whether a close has been requested.
    pub fn is_closing(&self) -> bool {
        self.shared.is_closing()
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
    /// Wait until frames are queued; false once a close was requested.
    pub async fn ready(&self) -> bool {
        loop {
            if self.shared.is_closing() {
                return false;
            }
            if !self.shared.queue().frames.is_empty() {
                return true;
            }
            // `notify_one` keeps a permit when nobody waits, so a push
            // between the check and this await still wakes us.
            self.shared.ready.notified().await;
        }
    }

    /// Everything queued now, oldest first (empty if nothing is).
    pub fn take_all(&mut self) -> VecDeque<Message> {
        let mut q = self.shared.queue();
        q.bytes = 0;
        std::mem::take(&mut q.frames)
    }

    /// Put frames taken by [`Inbox::take_all`] and not written back at the
    /// front of the queue, in order (the close then drains them if asked).
    pub fn requeue(&mut self, frames: VecDeque<Message>) {
        if frames.is_empty() {
            return;
        }
        let mut q = self.shared.queue();
        q.bytes += frames.iter().map(Message::len).sum::<usize>();
        let newer = std::mem::replace(&mut q.frames, frames);
        q.frames.extend(newer);
    }

    /// A queued frame if one is ready now.
    pub fn try_recv(&mut self) -> Option<Message> {
        let mut q = self.shared.queue();
        let m = q.frames.pop_front()?;
        q.bytes -= m.len();
        Some(m)
    }

    /// Resolves when a close has been requested.
    pub async fn closing(&self) {
        self.shared.closed().await
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
        self.shared.queue().sealed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Message {
        Message::text(s)
    }

    #[tokio::test]
    async fn frames_arrive_in_order_and_in_one_take() {
        let (out, mut inbox) = channel(1, 8, 1024);
        out.push(text("a")).unwrap();
        out.push(text("b")).unwrap();
        assert!(inbox.ready().await);
        let got: Vec<_> = inbox.take_all().into_iter().collect();
        assert_eq!(got, vec![text("a"), text("b")]);
        assert!(inbox.take_all().is_empty());
    }

    #[tokio::test]
    async fn a_push_wakes_a_waiting_writer() {
        let (out, inbox) = channel(1, 8, 1024);
        let waiter = tokio::spawn(async move { inbox.ready().await });
        tokio::task::yield_now().await;
        out.push(text("x")).unwrap();
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn overflow_in_frames_or_bytes_closes_with_4008() {
        let (out, inbox) = channel(1, 2, 1024);
        out.push(text("a")).unwrap();
        out.push(text("b")).unwrap();
        assert_eq!(out.push(text("c")), Err(PushError::Full));
        assert_eq!(inbox.reason().map(|r| r.code), Some(Some(code::TOO_SLOW)));
        assert_eq!(out.push(text("d")), Err(PushError::Closed));
        assert!(!inbox.ready().await);

        let (out, _inbox) = channel(2, 100, 10);
        out.push(text("0123456789")).unwrap();
        assert_eq!(out.push(text("x")), Err(PushError::Full));
    }

    #[tokio::test]
    async fn one_oversized_frame_fits_an_empty_queue() {
        let (out, mut inbox) = channel(1, 8, 4);
        out.push(text("longer than four")).unwrap();
        assert_eq!(inbox.take_all().len(), 1);
        out.push(text("again, longer")).unwrap();
    }

    #[tokio::test]
    async fn close_wakes_waiters_and_first_reason_wins() {
        let (out, inbox) = channel(1, 8, 1024);
        let o2 = out.clone();
        let waiter = tokio::spawn(async move { o2.closed().await });
        tokio::task::yield_now().await;
        out.close(CloseReason::with_code(code::GOING_AWAY, "first"));
        out.close(CloseReason::with_code(code::POLICY, "second"));
        waiter.await.unwrap();
        inbox.closing().await;
        assert_eq!(inbox.reason().map(|r| r.reason.as_str()), Some("first"));
        assert!(out.is_closing());
    }

    #[tokio::test]
    async fn requeued_frames_go_first_in_order() {
        let (out, mut inbox) = channel(1, 8, 1024);
        out.push(text("a")).unwrap();
        out.push(text("b")).unwrap();
        let mut taken = inbox.take_all();
        assert_eq!(taken.pop_front(), Some(text("a")));
        out.push(text("c")).unwrap();
        inbox.requeue(taken);
        assert_eq!(inbox.try_recv(), Some(text("b")));
        assert_eq!(inbox.try_recv(), Some(text("c")));
        assert_eq!(inbox.try_recv(), None);
    }

    #[tokio::test]
    async fn sealed_queue_refuses_but_drains() {
        let (out, mut inbox) = channel(1, 8, 1024);
        out.push(text("kept")).unwrap();
        inbox.seal();
        assert_eq!(out.push(text("late")), Err(PushError::Closed));
        assert_eq!(inbox.try_recv(), Some(text("kept")));
        assert_eq!(inbox.try_recv(), None);
    }
}
