//! A connection's outbound side as the rest of the server sees it: a bounded
//! queue of frames (counted in frames and in bytes) and a one-shot close
//! signal. Pushing never waits: a client that cannot keep up is closed with
//! 4008 instead of slowing down the sender or growing memory.
//!
//! The queue is a `VecDeque` under a mutex rather than a channel: an idle
//! connection then holds no queue memory at all (a channel keeps its first
//! block of slots), and the writer takes everything queued in one lock, so
//! one socket write carries as many frames as have piled up.
//!
//! Every queue of a server also counts its bytes in one [`Budget`]: per
//! connection bounds alone let many slow clients together hold
//! `connections × outbound_queue_bytes`. A frame is counted from the push
//! until the writer has handed it to the socket (or it is dropped: a close
//! that does not drain, the queue's end); past the budget, [`shed`] closes
//! the largest queues with 4008.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use crate::chat::encode::{self as wire, Direct, Header};
use crate::metrics::counters::{ByKind, FrameKind};

/// Close codes the host itself uses.
pub mod code {
    /// The server is shutting down, or the client was idle too long.
    pub const GOING_AWAY: u16 = 1001;
    /// Invalid UTF-8 in a text frame.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Closed by the policy (its default code), or a client pinging past
    /// its message rate.
    pub const POLICY: u16 = 1008;
    /// The server is short of a shared resource (the inbound budget): the
    /// client may come back later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The server is restarting (a drain): reconnect at once, elsewhere
    /// if there is an elsewhere.
    pub const SERVICE_RESTART: u16 = 1012;
    /// A frame or message over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// A newer connection took over this id.
    pub const REPLACED: u16 = 4001;
    /// The outbound queue overflowed: the client reads too slowly.
    pub const TOO_SLOW: u16 = 4008;
}

/// The bytes queued to all of a server's clients together, and the limit
/// past which the largest queues are closed.
#[derive(Debug)]
pub struct Budget {
    /// Bytes counted now: queued, or taken by a writer and not yet written.
    total: AtomicUsize,
    /// Past this the largest queues are closed ([`shed`]); `usize::MAX`
    /// counts nothing at all.
    limit: usize,
    /// Past this a push is refused and its target closed with 4008, whatever
    /// its size: the bound that holds while [`shed`] catches up.
    ceiling: usize,
    /// Wakes whoever sheds: a push left the total over the limit.
    over: Notify,
    /// Frames queued to clients, by kind (`/metrics`).
    pub frames_out: ByKind,
    /// Queues closed with 4008, theirs or this budget full (`/metrics`).
    overflows: AtomicU64,
}

impl Budget {
    /// A budget of `limit` bytes (0: no limit). The total never passes twice
    /// the limit: between the two, the largest queues are being closed.
    pub fn new(limit: usize) -> Arc<Budget> {
        let limit = if limit == 0 { usize::MAX } else { limit };
        Arc::new(Budget {
            total: AtomicUsize::new(0),
            limit,
            ceiling: limit.saturating_mul(2),
            over: Notify::new(),
            frames_out: ByKind::default(),
            overflows: AtomicU64::new(0),
        })
    }

    /// A queue was closed with 4008.
    fn overflowed(&self) {
        self.overflows.fetch_add(1, Ordering::Relaxed);
    }

    /// Queues closed with 4008 since start.
    pub fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }

    /// A budget that counts nothing (replay, benchmarks).
    pub fn unlimited() -> Arc<Budget> {
        Budget::new(0)
    }

    /// Bytes counted now.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// The limit, if there is one.
    pub fn limit(&self) -> Option<usize> {
        (self.limit != usize::MAX).then_some(self.limit)
    }

    /// Whether the total is over the limit.
    pub fn is_over(&self) -> bool {
        self.total() > self.limit
    }

    /// Resolves after a push has left the total over the limit (at once if
    /// one did since the last call).
    pub async fn exceeded(&self) {
        self.over.notified().await
    }

    /// Count `len` more bytes; false (and nothing counted) past the ceiling.
    fn charge(&self, len: usize) -> bool {
        if self.limit == usize::MAX {
            return true;
        }
        let total = self.total.fetch_add(len, Ordering::Relaxed) + len;
        if total > self.limit {
            if total > self.ceiling {
                self.total.fetch_sub(len, Ordering::Relaxed);
                return false;
            }
            self.over.notify_one();
        }
        true
    }

    /// Stop counting `len` bytes (written or dropped).
    fn release(&self, len: usize) {
        if self.limit != usize::MAX && len > 0 {
            self.total.fetch_sub(len, Ordering::Relaxed);
        }
    }
}

/// Close the largest of `outboxes` with 4008 until what stays counted in
/// `budget` is under its limit; returns how many were closed. Queues already
/// closing are about to give their bytes back, so they count as gone.
/// Called only while the budget is exceeded; a scan and a sort of the
/// queues that hold anything.
pub fn shed(budget: &Budget, outboxes: impl IntoIterator<Item = Outbox>) -> usize {
    let Some(limit) = budget.limit() else {
        return 0;
    };
    let mut leaving = 0;
    let mut open = Vec::new();
    for outbox in outboxes {
        let held = outbox.held();
        if held == 0 {
            continue;
        }
        if outbox.is_closing() {
            leaving += held;
        } else {
            open.push((held, outbox));
        }
    }
    let mut excess = budget.total().saturating_sub(limit).saturating_sub(leaving);
    open.sort_unstable_by_key(|(held, _)| std::cmp::Reverse(*held));
    let mut closed = 0;
    for (held, outbox) in open {
        if excess == 0 {
            break;
        }
        tracing::warn!(
            serial = outbox.serial(),
            held,
            "outbound budget exceeded, closing the largest queue with 4008"
        );
        outbox.close(budget_reason());
        budget.overflowed();
        excess = excess.saturating_sub(held);
        closed += 1;
    }
    closed
}

/// Why a queue closed for the server-wide budget goes.
fn budget_reason() -> CloseReason {
    CloseReason {
        drain: false,
        ..CloseReason::with_code(code::TOO_SLOW, "too slow: server outbound budget exceeded")
    }
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
    /// The connection ended abnormally and its id is to be held for a
    /// resume: the queue keeps taking frames (for the resumed connection)
    /// until the hold ends; nothing is written or dropped.
    pub hold: bool,
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
            hold: false,
        }
    }

    /// This reason, holding the id for a resume when `hold` is true.
    pub fn holding(self, hold: bool) -> Self {
        CloseReason { hold, ..self }
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
    /// The frames, oldest first.
    frames: VecDeque<Message>,
    /// Payload bytes in `frames`.
    bytes: usize,
    /// No more frames are accepted (the session is finishing, or a close
    /// that does not drain dropped what was queued).
    sealed: bool,
    /// Bytes of the first frame's encoding already written to the socket
    /// (direct writes only): the rest must follow before anything else.
    head: usize,
    /// Frames tungstenite wrote by itself (pong, the close reply), as
    /// bytes; they go out after the partly written frame, if any, and
    /// before the queued frames. Counted like the frames, against the
    /// queue's byte limit and the budget: a client that pings and never
    /// reads must meet the slow-reader rule too.
    raw: Vec<u8>,
    /// Where in `raw` a pong not yet begun starts. A newer pong replaces it
    /// (RFC 6455 5.5.3 allows answering only the latest ping), so at most
    /// one pong is ever pending.
    pong_at: Option<usize>,
    /// Frames ever queued.
    pushed: u64,
    /// Frames ever written whole to the socket: they leave in the order
    /// they were queued, so the `n`th queued is written once this reaches
    /// `n`. (A cluster keeps the notices it acked until they are: see
    /// [`Outbox::progress`].) Counters under the lock: plain additions.
    written: u64,
    /// Frames the writer took ([`Inbox::take_all`]) and has not said
    /// written yet.
    taken: u64,
}

impl Queue {
    /// Whether anything waits to be written.
    fn is_idle(&self) -> bool {
        self.frames.is_empty() && self.raw.is_empty()
    }

    /// Bytes queued and not yet taken: frames' payloads and raw bytes.
    fn queued(&self) -> usize {
        self.bytes + self.raw.len()
    }

    /// `n` bytes of `raw` are gone (written or taken): the pending pong, if
    /// they reach into it, can no longer be replaced.
    fn raw_gone(&mut self, n: usize) {
        self.pong_at = self.pong_at.and_then(|at| at.checked_sub(n));
    }

    /// Drop the queued frames (a close that does not drain), but the one
    /// partly written: the stream stays well-formed. That one is no longer
    /// counted either (it may wait for a client that never reads until the
    /// close times out, and the budget must not take it for bytes about to
    /// be given back). Returns the payload bytes no longer counted.
    fn drop_frames(&mut self) -> usize {
        let keep = if self.head > 0 {
            self.frames.pop_front()
        } else {
            None
        };
        self.frames = keep.into_iter().collect();
        std::mem::take(&mut self.bytes)
    }
}

/// State shared between a connection's handle and its session.
#[derive(Debug)]
struct Shared {
    /// Distinguishes connections that had the same id at different times.
    serial: u64,
    /// The client's address and when it connected (the admin interface's
    /// `GET /admin/connections?id=`); set once, by the session.
    peer: OnceLock<(std::net::SocketAddr, std::time::SystemTime)>,
    /// The claim of the id this connection registered with (0: none).
    generation: AtomicU64,
    /// Frames the queue holds before the connection is closed with 4008.
    max_frames: usize,
    /// Bytes the queue holds before the connection is closed with 4008.
    max_bytes: usize,
    /// The frames waiting for the writer.
    queue: Mutex<Queue>,
    /// Bytes the writer has taken and not yet handed to the socket (still
    /// counted in `budget`).
    in_flight: AtomicUsize,
    /// Where this queue's bytes are counted with every other queue's.
    budget: Arc<Budget>,
    /// Set with the first close request; checked without the lock.
    closing: AtomicBool,
    /// The first close held the id for a resume: frames are still taken,
    /// until a later close (or the resume) ends the hold.
    keeping: AtomicBool,
    /// Wakes the task waiting for the end of the hold.
    unkept: Notify,
    /// The first close request wins; later ones are ignored.
    reason: OnceLock<CloseReason>,
    /// How many frames the bus had handed on when this connection's
    /// requests last caused one: its answers wait for those to leave
    /// (`Bus::settle`).
    handed: AtomicU64,
    /// Wakes the writer: frames arrived (queue went non-empty) or closing.
    ready: Notify,
    /// Wakes everything waiting for the close.
    closed: Notify,
    /// The socket, when other tasks may write queued frames to it directly
    /// (plain TCP; see [`corked`]).
    /// Weak: the session owns the socket, and it closes when the session
    /// ends, whoever still holds this queue.
    direct: OnceLock<Weak<dyn Direct>>,
}

impl Shared {
    fn close(&self, reason: CloseReason) {
        let drain = reason.drain;
        let hold = reason.hold;
        let first = self.reason.set(reason).is_ok();
        if first && hold {
            // Before `closing`: a push that sees the close also sees the
            // hold, and queues.
            self.keeping.store(true, Ordering::Release);
        }
        if !self.closing.swap(true, Ordering::AcqRel) {
            self.ready.notify_one();
            self.closed.notify_waiters();
        }
        if !first && !drain && self.keeping.load(Ordering::Acquire) {
            // A close of a held id (its queue overflowed, the budget shed
            // it, the policy closed it, the server stops): the hold ends,
            // and what it kept goes.
            self.unkeep();
            let dropped = self.queue().drop_frames();
            self.budget.release(dropped);
            return;
        }
        if !first && self.keeping.load(Ordering::Acquire) {
            self.unkeep();
            return;
        }
        if first && !drain && !hold {
            // Nothing queued will be sent: give the memory (and the budget)
            // back now, not when the close frame has made it out.
            let mut q = self.queue();
            q.sealed = true;
            let dropped = q.drop_frames();
            self.budget.release(dropped);
        }
    }

    /// End the hold: no more frames are taken, and the task waiting for
    /// the end of the hold is woken.
    fn unkeep(&self) {
        if self.keeping.swap(false, Ordering::AcqRel) {
            self.queue().sealed = true;
            // A permit, should the waiter not be waiting yet.
            self.unkept.notify_one();
        }
    }

    /// Whether the id is held and its queue still takes frames.
    fn is_kept(&self) -> bool {
        self.keeping.load(Ordering::Acquire)
    }

    /// Append `msg` (`len` payload bytes, already charged to the budget)
    /// and release the lock; true if the queue was idle. The writer takes
    /// the whole queue at once, so only the push that makes it non-empty
    /// needs to wake it.
    fn enqueue(&self, mut q: MutexGuard<'_, Queue>, msg: Message, len: usize) -> bool {
        let was_idle = q.is_idle();
        q.frames.push_back(msg);
        q.bytes += len;
        q.pushed += 1;
        was_idle
    }

    /// Write what `q` holds to `socket` without waiting, under the queue's
    /// lock, so that the writer and direct writes never interleave bytes.
    /// `Ok(true)`: nothing is left; `Ok(false)`: the socket is full.
    fn write_queued(&self, q: &mut Queue, socket: &dyn Direct) -> io::Result<bool> {
        const FRAMES: usize = 32;
        loop {
            if q.is_idle() {
                return Ok(true);
            }
            let mut headers = [Header::new(0, 0); FRAMES];
            for (h, m) in headers.iter_mut().zip(&q.frames) {
                if let Some((op, payload)) = wire::parts(m) {
                    *h = Header::new(op, payload.len());
                }
            }
            let mut iov = [IoSlice::new(&[]); 2 * FRAMES + 1];
            let mut n = 0;
            // The order on the wire: the rest of a partly written frame,
            // tungstenite's own frames, the queued frames.
            let partial = q.head > 0;
            if !partial && !q.raw.is_empty() {
                iov[n] = IoSlice::new(&q.raw);
                n += 1;
            }
            let mut total = if partial { 0 } else { q.raw.len() };
            for (i, (h, m)) in headers.iter().zip(&q.frames).enumerate() {
                let Some((_, payload)) = wire::parts(m) else {
                    continue;
                };
                let (mut head, mut body) = (h.as_bytes(), payload);
                if i == 0 && partial {
                    let skip_head = q.head.min(head.len());
                    head = &head[skip_head..];
                    body = &body[(q.head - skip_head).min(body.len())..];
                }
                for part in [head, body] {
                    if !part.is_empty() {
                        iov[n] = IoSlice::new(part);
                        n += 1;
                        total += part.len();
                    }
                }
                if i == 0 && partial && !q.raw.is_empty() {
                    iov[n] = IoSlice::new(&q.raw);
                    n += 1;
                    total += q.raw.len();
                }
            }
            if n == 0 {
                // Only messages that have no frame (none are ever queued).
                self.consume(q, 0);
                continue;
            }
            let written = match socket.try_write_vectored(&iov[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => written,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            };
            self.consume(q, written);
            if written < total {
                return Ok(false);
            }
        }
    }

    /// Account for `written` bytes gone to the socket, in the order
    /// [`Shared::write_queued`] wrote them.
    fn consume(&self, q: &mut Queue, mut written: usize) {
        // A partly written frame went first; the raw bytes only once it is
        // whole.
        if q.head > 0 && !self.consume_frame(q, &mut written) {
            return;
        }
        let raw = written.min(q.raw.len());
        q.raw.drain(..raw);
        q.raw_gone(raw);
        self.budget.release(raw);
        written -= raw;
        while self.consume_frame(q, &mut written) {}
    }

    /// Count up to `written` bytes against the first frame; true if it is
    /// now written whole (and gone from the queue).
    fn consume_frame(&self, q: &mut Queue, written: &mut usize) -> bool {
        let Some(front) = q.frames.front() else {
            return false;
        };
        let left = wire::wire_len(front) - q.head;
        if *written < left {
            q.head += *written;
            *written = 0;
            return false;
        }
        *written -= left;
        q.head = 0;
        if let Some(m) = q.frames.pop_front() {
            q.written += 1;
            // A frame kept by a close is no longer counted (drop_frames).
            let counted = m.len().min(q.bytes);
            q.bytes -= counted;
            self.budget.release(counted);
        }
        true
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

impl Drop for Shared {
    fn drop(&mut self) {
        let q = self.queue.get_mut().unwrap_or_else(|e| e.into_inner());
        self.budget
            .release(q.bytes + q.raw.len() + *self.in_flight.get_mut());
    }
}

/// A new queue for connection `serial`, bounded by `max_frames` and
/// `max_bytes`, counted in no server-wide budget.
pub fn channel(serial: u64, max_frames: usize, max_bytes: usize) -> (Outbox, Inbox) {
    channel_in(serial, max_frames, max_bytes, Budget::unlimited())
}

/// [`channel`], with the queue's bytes counted in `budget`.
pub fn channel_in(
    serial: u64,
    max_frames: usize,
    max_bytes: usize,
    budget: Arc<Budget>,
) -> (Outbox, Inbox) {
    let shared = Arc::new(Shared {
        serial,
        peer: OnceLock::new(),
        generation: AtomicU64::new(0),
        max_frames: max_frames.max(1),
        max_bytes,
        queue: Mutex::default(),
        in_flight: AtomicUsize::new(0),
        budget,
        closing: AtomicBool::new(false),
        keeping: AtomicBool::new(false),
        unkept: Notify::new(),
        reason: OnceLock::new(),
        ready: Notify::new(),
        closed: Notify::new(),
        direct: OnceLock::new(),
        handed: AtomicU64::new(0),
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

    /// Note the client's address; the connection counts from now.
    pub fn set_peer(&self, peer: std::net::SocketAddr) {
        let _ = self.shared.peer.set((peer, std::time::SystemTime::now()));
    }

    /// The client's address and when it connected, if noted.
    pub fn peer(&self) -> Option<(std::net::SocketAddr, std::time::SystemTime)> {
        self.shared.peer.get().copied()
    }

    /// The generation of the claim it registered with (0: none).
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Relaxed)
    }

    /// Set when it registers (under the id's lock).
    pub fn set_generation(&self, generation: u64) {
        self.shared.generation.store(generation, Ordering::Relaxed);
    }

    /// Its requests caused frames the bus handed on, up to `upto`.
    pub fn note_handed(&self, upto: u64) {
        self.shared.handed.fetch_max(upto, Ordering::Relaxed);
    }

    /// What its answers wait for (see [`Outbox::note_handed`]).
    pub fn handed(&self) -> u64 {
        self.shared.handed.load(Ordering::Relaxed)
    }

    /// How far its frames are written: (frames ever queued, frames
    /// written whole to the socket). A frame queued before a look at `.0`
    /// is written once `.1` reaches that look's `.0`.
    pub fn progress(&self) -> (u64, u64) {
        let q = self.shared.queue();
        (q.pushed, q.written)
    }

    /// Queue `msg` without waiting. On overflow the connection is closed with
    /// 4008 (and the frame dropped): the rest of the server carries on.
    pub fn push(&self, msg: Message) -> Result<(), PushError> {
        let s = &*self.shared;
        if s.is_closing() && !s.is_kept() {
            return Err(PushError::Closed);
        }
        let len = msg.len();
        let q = s.queue();
        if q.sealed {
            return Err(PushError::Closed);
        }
        let frames_full = q.frames.len() >= s.max_frames;
        let q = self.admit(q, len, frames_full)?;
        let kind = match &msg {
            Message::Binary(_) => FrameKind::Binary,
            Message::Ping(_) => FrameKind::Ping,
            Message::Pong(_) => FrameKind::Pong,
            Message::Close(_) => FrameKind::Close,
            Message::Text(_) | Message::Frame(_) => FrameKind::Text,
        };
        if s.enqueue(q, msg, len) {
            self.wake();
        }
        s.budget.frames_out.add(kind);
        Ok(())
    }

    /// Whether `len` more bytes fit the queue `q` (and `frames_full` says
    /// its frame bound is not reached), charged to the budget if they do.
    /// If not, the connection is closed with 4008: the slow-reader rule,
    /// the same for a frame and for a pong.
    fn admit<'q>(
        &'q self,
        q: MutexGuard<'q, Queue>,
        len: usize,
        frames_full: bool,
    ) -> Result<MutexGuard<'q, Queue>, PushError> {
        let s = &*self.shared;
        let queued = q.queued();
        if frames_full || (queued + len > s.max_bytes && queued > 0) {
            drop(q);
            self.overflow();
            return Err(PushError::Full);
        }
        if !s.budget.charge(len) {
            drop(q);
            tracing::warn!(
                serial = s.serial,
                "outbound budget at its ceiling, closing with 4008"
            );
            s.budget.overflowed();
            self.close(budget_reason());
            return Err(PushError::Full);
        }
        Ok(q)
    }

    /// Queue a control frame (the server's ping) without the queue's
    /// limits: a heartbeat never closes a connection by itself. Refused
    /// only once the connection is closing.
    pub fn push_control(&self, msg: Message) -> Result<(), PushError> {
        let s = &*self.shared;
        let len = msg.len();
        let q = s.queue();
        if q.sealed || s.is_closing() {
            return Err(PushError::Closed);
        }
        // Not refused past the ceiling either (a ping has no payload).
        s.budget.charge(len);
        if s.enqueue(q, msg, len) {
            s.ready.notify_one();
        }
        s.budget.frames_out.add(FrameKind::Ping);
        Ok(())
    }

    /// Queue bytes tungstenite wrote by itself (pong, the close reply),
    /// or the session's own close frame: whole frames. A pong replaces the
    /// one still pending, and is subject to the queue's limits (over them
    /// the connection is closed with 4008, as for any frame); a close frame
    /// is taken even while closing (the close writes it), and counted.
    pub fn push_raw(&self, bytes: &[u8]) {
        let s = &*self.shared;
        let mut q = s.queue();
        let was_idle = q.is_idle();
        if wire::is_pong(bytes) {
            if s.is_closing() && !s.is_kept() {
                // The close frame is what goes next; a pong is moot.
                return;
            }
            if let Some(at) = q.pong_at.take() {
                let replaced = q.raw.len() - at;
                q.raw.truncate(at);
                s.budget.release(replaced);
            }
            let Ok(admitted) = self.admit(q, bytes.len(), false) else {
                return;
            };
            q = admitted;
            q.pong_at = Some(q.raw.len());
            s.budget.frames_out.add(FrameKind::Pong);
        } else {
            // A close frame: not refused past the ceiling (it ends the
            // connection, and with it everything it holds).
            s.budget.charge(bytes.len());
            q.pong_at = None;
            s.budget.frames_out.add(FrameKind::Close);
        }
        q.raw.extend_from_slice(bytes);
        drop(q);
        if was_idle {
            s.ready.notify_one();
        }
    }

    /// Let other tasks write this connection's queued frames straight to
    /// `socket` (see [`corked`]).
    pub fn attach_direct(&self, socket: &Arc<dyn Direct>) {
        let _ = self.shared.direct.set(Arc::downgrade(socket));
    }

    /// The queue went from idle to not: inside a [`corked`] on a socket that
    /// can be written directly, the write waits for the end of the event;
    /// otherwise the writer is woken.
    fn wake(&self) {
        if self.shared.direct.get().is_none() || !cork_add(self) {
            self.shared.ready.notify_one();
        }
    }

    /// Write what is queued now, without waiting; whatever the socket does
    /// not take is left to the writer, which is woken for it.
    fn flush_direct(&self) {
        let s = &*self.shared;
        let Some(socket) = s.direct.get().and_then(Weak::upgrade) else {
            return;
        };
        let mut q = s.queue();
        // A close in progress is the session's to write (it writes what the
        // close keeps, then the close frame).
        let done = !q.sealed && matches!(s.write_queued(&mut q, &*socket), Ok(true));
        drop(q);
        if !done {
            s.ready.notify_one();
        }
    }

    /// Bytes this connection holds in the server-wide budget: queued, or
    /// taken by the writer and not yet written.
    pub fn held(&self) -> usize {
        let s = &*self.shared;
        s.queue().queued() + s.in_flight.load(Ordering::Relaxed)
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

    /// Whether this is a held id's queue, still taking frames for a
    /// resume.
    pub fn is_held(&self) -> bool {
        self.shared.is_kept()
    }

    /// Resolves once the hold ends (at once if the queue is not held).
    pub async fn hold_ended(&self) {
        let s = &*self.shared;
        loop {
            let unkept = s.unkept.notified();
            if !s.is_kept() {
                return;
            }
            unkept.await;
        }
    }

    fn overflow(&self) {
        self.shared.budget.overflowed();
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
    /// The claim generation its connection registered with (0: none).
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Relaxed)
    }

    /// Wait until frames are queued; false once a close was requested.
    pub async fn ready(&self) -> bool {
        loop {
            if self.shared.is_closing() {
                return false;
            }
            if !self.shared.queue().is_idle() {
                return true;
            }
            // `notify_one` keeps a permit when nobody waits, so a push
            // between the check and this await still wakes us.
            self.shared.ready.notified().await;
        }
    }

    /// Everything queued now: tungstenite's own bytes (to go first) and the
    /// frames, oldest first (both empty if nothing is). All of it stays
    /// counted in the budget until [`Inbox::written`] (or
    /// [`Inbox::requeue`]) says what became of it.
    pub fn take_all(&mut self) -> (Vec<u8>, VecDeque<Message>) {
        let s = &*self.shared;
        let mut q = s.queue();
        let raw = std::mem::take(&mut q.raw);
        q.pong_at = None;
        let bytes = std::mem::take(&mut q.bytes);
        // A batch taken before is done with by now.
        s.budget
            .release(s.in_flight.swap(bytes + raw.len(), Ordering::Relaxed));
        let frames = std::mem::take(&mut q.frames);
        q.taken = frames.len() as u64;
        (raw, frames)
    }

    /// Write what is queued to `socket` without waiting; `Ok(true)` when
    /// nothing is left, `Ok(false)` when the socket is full.
    pub fn write_now(&mut self, socket: &dyn Direct) -> io::Result<bool> {
        let s = &*self.shared;
        let mut q = s.queue();
        s.write_queued(&mut q, socket)
    }

    /// Whether a frame was written in part (the next bytes on the wire
    /// must be its rest).
    pub fn is_mid_frame(&self) -> bool {
        self.shared.queue().head > 0
    }

    /// Whether nothing waits to be written.
    pub fn is_idle(&self) -> bool {
        self.shared.queue().is_idle()
    }

    /// Everything taken by [`Inbox::take_all`] has gone to the socket.
    pub fn written(&mut self) {
        let s = &*self.shared;
        s.budget.release(s.in_flight.swap(0, Ordering::Relaxed));
        let mut q = s.queue();
        q.written += std::mem::take(&mut q.taken);
    }

    /// Put frames taken by [`Inbox::take_all`] and not written back at the
    /// front of the queue, in order (the close then drains them if asked;
    /// a close that does not drain drops them).
    pub fn requeue(&mut self, frames: VecDeque<Message>) {
        let s = &*self.shared;
        let mut q = s.queue();
        let taken = s.in_flight.swap(0, Ordering::Relaxed);
        q.written += std::mem::take(&mut q.taken).saturating_sub(frames.len() as u64);
        if q.sealed {
            s.budget.release(taken);
            return;
        }
        let back = frames.iter().map(Message::len).sum::<usize>();
        // What is not back was written.
        s.budget.release(taken.saturating_sub(back));
        q.bytes += back;
        if q.frames.is_empty() {
            q.frames = frames;
        } else if !frames.is_empty() {
            let newer = std::mem::replace(&mut q.frames, frames);
            q.frames.extend(newer);
        }
    }

    /// A queued frame if one is ready now.
    pub fn try_recv(&mut self) -> Option<Message> {
        let s = &*self.shared;
        let mut q = s.queue();
        let m = q.frames.pop_front()?;
        q.written += 1;
        q.bytes -= m.len();
        s.budget.release(m.len());
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

    /// End a hold (the id resumed, or its window ended): everything kept,
    /// oldest first, and no more frames are taken.
    pub fn unhold(&mut self) -> VecDeque<Message> {
        let s = &*self.shared;
        s.unkeep();
        let mut q = s.queue();
        q.sealed = true;
        // The budget is released as the frames are handed on, by the
        // queue they go to counting them again.
        let bytes = std::mem::take(&mut q.bytes) + q.raw.len();
        s.budget
            .release(bytes + s.in_flight.swap(0, Ordering::Relaxed));
        q.taken = 0;
        q.head = 0;
        q.raw.clear();
        q.pong_at = None;
        std::mem::take(&mut q.frames)
    }
}

tokio::task_local! {
    /// Connections that got frames during the current [`corked`] event
    /// of this task.
    static CORK: RefCell<Vec<Outbox>>;
}

/// Run `event` (a batch of a client's frames and what the rules make of
/// them) corked: until it ends, frames queued to idle sockets that can be
/// written directly are not handed to their writers; when it ends they are
/// written straight from here, each connection's frames in one write, and
/// what a socket does not take is left to its writer: uWebSockets' cork. A
/// frame then reaches the socket with no wake of its connection's task,
/// and the frames a batch of events queues to one connection share a
/// write. An event inside another belongs to the outer one. The list is
/// the task's (a task-local), so the event may await.
pub async fn corked<F: Future>(event: F) -> F::Output {
    if CORK.try_with(|_| ()).is_ok() {
        return event.await;
    }
    CORK.scope(RefCell::new(Vec::new()), async move {
        let _flush = Flush;
        event.await
    })
    .await
}

/// Flushes the task's cork when dropped: at the end of the event, and
/// also when it unwinds from a panic or is cancelled (the task-local is
/// still set while the scope's future drops).
struct Flush;

impl Drop for Flush {
    fn drop(&mut self) {
        let corked = CORK
            .try_with(|c| std::mem::take(&mut *c.borrow_mut()))
            .unwrap_or_default();
        if corked.len() <= DIRECT_MAX {
            for outbox in corked {
                outbox.flush_direct();
            }
        } else {
            // A large fan-out is left to the connections' writers: they run
            // between other tasks (other senders), which meanwhile queue
            // more to the same connections, and those frames share the
            // write. Written from here, one task would sweep every socket
            // at once and each write would carry fewer frames (fan-out
            // 1×1000 with 10 senders: 4× the CPU per delivery).
            for outbox in corked {
                outbox.shared.ready.notify_one();
            }
        }
    }
}

/// The most connections one cork writes to itself; past this, its frames
/// go through the connections' writers (see [`Flush`]).
pub const DIRECT_MAX: usize = 64;

/// Remember `outbox` for the end of the current [`corked`]; false outside
/// one.
fn cork_add(outbox: &Outbox) -> bool {
    CORK.try_with(|c| c.borrow_mut().push(outbox.clone()))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Message {
        Message::text(s)
    }

    #[test]
    fn progress_counts_frames_written_whole_in_queue_order() {
        let (out, mut inbox) = channel(1, 8, 1024);
        for s in ["a", "b", "c"] {
            out.push(text(s)).unwrap();
        }
        assert_eq!(out.progress(), (3, 0));
        let mut taken = inbox.take_all().1;
        // Taken is not written; one put back was not either.
        assert_eq!(out.progress(), (3, 0));
        let back = taken.split_off(2);
        inbox.requeue(back);
        assert_eq!(out.progress(), (3, 2));
        inbox.take_all();
        inbox.written();
        assert_eq!(out.progress(), (3, 3));
    }

    #[tokio::test]
    async fn frames_arrive_in_order_and_in_one_take() {
        let (out, mut inbox) = channel(1, 8, 1024);
        out.push(text("a")).unwrap();
        out.push(text("b")).unwrap();
        assert!(inbox.ready().await);
        let got: Vec<_> = inbox.take_all().1.into_iter().collect();
        assert_eq!(got, vec![text("a"), text("b")]);
        assert!(inbox.take_all().1.is_empty());
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
        assert_eq!(inbox.take_all().1.len(), 1);
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
        let mut taken = inbox.take_all().1;
        assert_eq!(taken.pop_front(), Some(text("a")));
        out.push(text("c")).unwrap();
        inbox.requeue(taken);
        assert_eq!(inbox.try_recv(), Some(text("b")));
        assert_eq!(inbox.try_recv(), Some(text("c")));
        assert_eq!(inbox.try_recv(), None);
    }

    fn counted(budget: &Arc<Budget>) -> (Outbox, Inbox) {
        channel_in(1, 100, 1 << 20, budget.clone())
    }

    #[tokio::test]
    async fn the_budget_counts_until_written() {
        let budget = Budget::new(1 << 20);
        let (out, mut inbox) = counted(&budget);
        out.push(text("abcd")).unwrap();
        out.push(text("ef")).unwrap();
        assert_eq!((budget.total(), out.held()), (6, 6));
        let mut batch = inbox.take_all().1;
        // Taken is not yet written.
        assert_eq!((budget.total(), out.held()), (6, 6));
        out.push(text("g")).unwrap();
        assert_eq!(budget.total(), 7);
        // One frame of the batch written, one back to the queue.
        batch.pop_front();
        inbox.requeue(batch);
        assert_eq!((budget.total(), out.held()), (3, 3));
        assert_eq!(inbox.try_recv(), Some(text("ef")));
        assert_eq!(budget.total(), 1);
        inbox.take_all();
        inbox.written();
        assert_eq!((budget.total(), out.held()), (0, 0));
    }

    #[tokio::test]
    async fn a_close_that_does_not_drain_gives_everything_back() {
        let budget = Budget::new(1 << 20);
        let (out, mut inbox) = counted(&budget);
        out.push(text("abcd")).unwrap();
        let batch = inbox.take_all().1;
        out.push(text("ef")).unwrap();
        out.close(CloseReason::peer_gone("gone"));
        // The queue is dropped at once; the batch when the writer puts it back.
        assert_eq!(budget.total(), 4);
        inbox.requeue(batch);
        assert_eq!(budget.total(), 0);
        assert_eq!(inbox.try_recv(), None);
        assert_eq!(out.push(text("late")), Err(PushError::Closed));
        assert_eq!(budget.total(), 0);
    }

    #[tokio::test]
    async fn a_draining_close_counts_until_drained_and_the_end_gives_the_rest_back() {
        let budget = Budget::new(1 << 20);
        let (out, mut inbox) = counted(&budget);
        out.push(text("abcd")).unwrap();
        out.push(text("ef")).unwrap();
        out.close(CloseReason::with_code(code::GOING_AWAY, "bye"));
        inbox.seal();
        assert_eq!(budget.total(), 6);
        assert_eq!(inbox.try_recv(), Some(text("abcd")));
        assert_eq!(budget.total(), 2);
        // The session ends with a frame still queued (its close timed out).
        drop((out, inbox));
        assert_eq!(budget.total(), 0);

        // A queue dropped with a batch taken and not written.
        let (out, mut inbox) = counted(&budget);
        out.push(text("abcd")).unwrap();
        inbox.take_all();
        out.push(text("ef")).unwrap();
        drop((out, inbox));
        assert_eq!(budget.total(), 0);
    }

    #[tokio::test]
    async fn past_twice_the_budget_a_push_is_refused_and_its_target_closed() {
        let budget = Budget::new(10);
        let (out, inbox) = counted(&budget);
        out.push(text("0123456789")).unwrap();
        out.push(text("0123456789")).unwrap();
        assert_eq!(budget.total(), 20);
        assert_eq!(out.push(text("x")), Err(PushError::Full));
        let reason = inbox.reason().cloned().unwrap();
        assert_eq!(reason.code, Some(code::TOO_SLOW));
        assert_eq!(reason.reason, "too slow: server outbound budget exceeded");
        assert_eq!(budget.total(), 0);
    }

    #[tokio::test]
    async fn shed_closes_the_largest_queues_until_under_the_budget() {
        let budget = Budget::new(100);
        let mut queues: Vec<_> = (0..4).map(|_| counted(&budget)).collect();
        // Held: 10, 60, 20, 40 = 130 bytes, 30 over.
        for ((out, _), n) in queues.iter().zip([10, 60, 20, 40]) {
            out.push(text(&"x".repeat(n))).unwrap();
        }
        let exceeded = budget.exceeded();
        tokio::pin!(exceeded);
        // The push that went over asked for shedding.
        futures_util::FutureExt::now_or_never(exceeded.as_mut()).unwrap();
        // The largest one's writer holds its frame (taken, not written).
        let batch = queues[1].1.take_all().1;
        let outboxes =
            |q: &Vec<(Outbox, Inbox)>| q.iter().map(|(o, _)| o.clone()).collect::<Vec<_>>();
        assert_eq!(shed(&budget, outboxes(&queues)), 1);
        let closing: Vec<_> = queues.iter().map(|(o, _)| o.is_closing()).collect();
        assert_eq!(closing, [false, true, false, false]);
        // Its 60 bytes are still counted, but they are on their way out: a
        // second pass closes nothing more.
        assert_eq!(budget.total(), 130);
        assert_eq!(shed(&budget, outboxes(&queues)), 0);
        queues[1].1.requeue(batch);
        assert_eq!(budget.total(), 70);

        // Over again: the largest open queue goes, and only it.
        queues[3].0.push(text(&"y".repeat(45))).unwrap();
        assert_eq!(budget.total(), 115);
        assert_eq!(shed(&budget, outboxes(&queues)), 1);
        let closing: Vec<_> = queues.iter().map(|(o, _)| o.is_closing()).collect();
        assert_eq!(closing, [false, true, false, true]);
        assert_eq!(budget.total(), 30);
    }

    #[tokio::test]
    async fn pings_pass_a_full_queue() {
        let (out, mut inbox) = channel(1, 1, 1024);
        out.push(text("a")).unwrap();
        out.push_control(Message::Ping(Default::default())).unwrap();
        assert!(!out.is_closing());
        assert_eq!(inbox.take_all().1.len(), 2);
        out.close(CloseReason::with_code(code::GOING_AWAY, "bye"));
        assert_eq!(
            out.push_control(Message::Ping(Default::default())),
            Err(PushError::Closed)
        );
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

    /// A socket that takes at most `allow` more bytes, then would block.
    #[derive(Debug, Default)]
    struct Trickle {
        took: Mutex<Vec<u8>>,
        allow: Mutex<usize>,
    }

    impl Trickle {
        fn allow(&self, n: usize) {
            *self.allow.lock().unwrap() = n;
        }

        fn took(&self) -> Vec<u8> {
            self.took.lock().unwrap().clone()
        }
    }

    impl Direct for Trickle {
        fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut allow = self.allow.lock().unwrap();
            if *allow == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut took = self.took.lock().unwrap();
            let mut n = 0;
            for byte in bufs.iter().flat_map(|b| b.iter()) {
                if *allow == 0 {
                    break;
                }
                took.push(*byte);
                *allow -= 1;
                n += 1;
            }
            Ok(n)
        }
    }

    fn frame(m: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        wire::encode(m, &mut out);
        out
    }

    /// A frame written in part is finished before tungstenite's pong goes
    /// out, and nothing is counted once it is all written.
    #[test]
    fn partial_writes_keep_frames_whole_and_in_order() {
        let (out, mut inbox) = channel_in(1, 8, 1024, Budget::new(1 << 20));
        let socket = Trickle::default();
        out.push(text("hello")).unwrap();
        out.push(text("world")).unwrap();
        socket.allow(4);
        assert!(!inbox.write_now(&socket).unwrap());
        let pong = frame(&Message::Pong(Default::default()));
        out.push_raw(&pong);
        assert!(out.held() > 0);
        socket.allow(1);
        assert!(!inbox.write_now(&socket).unwrap());
        socket.allow(usize::MAX);
        assert!(inbox.write_now(&socket).unwrap());
        let want = [frame(&text("hello")), pong, frame(&text("world"))].concat();
        assert_eq!(socket.took(), want);
        assert_eq!(out.held(), 0);
        assert!(inbox.is_idle());
    }

    /// A close that does not drain drops the queue but for the frame partly
    /// written: the client still gets a well-formed stream.
    #[test]
    fn a_close_keeps_the_frame_partly_written() {
        let budget = Budget::new(1 << 20);
        let (out, mut inbox) = channel_in(1, 8, 1024, budget.clone());
        let socket = Trickle::default();
        out.push(text("first")).unwrap();
        out.push(text("second")).unwrap();
        socket.allow(3);
        assert!(!inbox.write_now(&socket).unwrap());
        out.close(CloseReason {
            drain: false,
            ..CloseReason::with_code(code::TOO_SLOW, "slow")
        });
        // Nothing stays counted for a queue that will send no more.
        assert_eq!(out.held(), 0);
        assert_eq!(budget.total(), 0);
        socket.allow(usize::MAX);
        assert!(inbox.write_now(&socket).unwrap());
        assert_eq!(socket.took(), frame(&text("first")));
        assert_eq!(out.held(), 0);
        assert_eq!(budget.total(), 0);
    }

    /// Inside a cork, a push to an idle socket is written at the end of the
    /// event, not handed to the writer; the socket full, it stays queued.
    #[tokio::test]
    async fn corked_pushes_are_written_at_the_end_of_the_event() {
        let (out, mut inbox) = channel(1, 8, 1024);
        let socket: Arc<Trickle> = Arc::new(Trickle::default());
        socket.allow(usize::MAX);
        let direct: Arc<dyn Direct> = socket.clone();
        out.attach_direct(&direct);
        corked(async {
            out.push(text("a")).unwrap();
            out.push(text("b")).unwrap();
            assert!(socket.took().is_empty(), "written before the event ended");
        })
        .await;
        assert_eq!(
            socket.took(),
            [frame(&text("a")), frame(&text("b"))].concat()
        );
        assert!(inbox.is_idle());
        socket.allow(0);
        corked(async { out.push(text("c")).unwrap() }).await;
        assert_eq!(inbox.take_all().1, [text("c")]);
    }

    /// Past `DIRECT_MAX` connections, a cork leaves the writing to the
    /// writers (frames from other senders then share their writes).
    #[tokio::test]
    async fn a_large_fan_out_is_left_to_the_writers() {
        let socket: Arc<Trickle> = Arc::new(Trickle::default());
        socket.allow(usize::MAX);
        let direct: Arc<dyn Direct> = socket.clone();
        let conns: Vec<_> = (0..=DIRECT_MAX as u64)
            .map(|serial| {
                let (out, inbox) = channel(serial, 8, 1024);
                out.attach_direct(&direct);
                (out, inbox)
            })
            .collect();
        corked(async {
            for (out, _) in &conns {
                out.push(text("x")).unwrap();
            }
        })
        .await;
        assert!(socket.took().is_empty());
        assert!(conns.iter().all(|(_, inbox)| !inbox.is_idle()));
    }
}
