//! The bytes of outgoing frames, and a connection's stream split in two:
//! tungstenite reads, the host writes.
//!
//! The host writes its own frames (a server's frames are a 2–10 byte header
//! and the payload, unmasked) so that a plain TCP socket can be written from
//! outside its connection's task: the fan-out writes a frame straight to an
//! idle socket instead of queueing it and waking the connection's writer,
//! as uWebSockets does (`outbound`'s cork). tungstenite still reads, and the
//! replies it writes by itself (pong, the close reply) go into the
//! connection's queue as bytes, so one writer orders everything.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::chat::actions;
use crate::net::inbound::Pending;
use crate::net::outbound::{CloseReason, Outbox, code};

/// A frame's header: FIN, the opcode, the payload length (servers do not
/// mask). At most 10 bytes; `len` says how many are used.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    bytes: [u8; 10],
    len: u8,
}

impl Header {
    /// The header of a final frame with `opcode` and `payload` bytes.
    pub fn new(opcode: u8, payload: usize) -> Header {
        let mut bytes = [0u8; 10];
        bytes[0] = 0x80 | opcode;
        let len = if payload < 126 {
            bytes[1] = payload as u8;
            2
        } else if let Ok(short) = u16::try_from(payload) {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(payload as u64).to_be_bytes());
            10
        };
        Header { bytes, len }
    }

    /// The header's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// A queued message's opcode and payload, as it goes on the wire. Close
/// frames are not queued (the session writes them with [`close_frame`]);
/// `None` for them and for raw frames, which the host never makes.
pub fn parts(msg: &Message) -> Option<(u8, &[u8])> {
    match msg {
        Message::Text(t) => Some((0x1, t.as_bytes())),
        Message::Binary(b) => Some((0x2, b)),
        Message::Ping(b) => Some((0x9, b)),
        Message::Pong(b) => Some((0xA, b)),
        Message::Close(_) | Message::Frame(_) => None,
    }
}

/// The bytes a queued message takes on the wire (0 for what [`parts`]
/// does not write).
pub fn wire_len(msg: &Message) -> usize {
    parts(msg).map_or(0, |(op, payload)| {
        Header::new(op, payload.len()).as_bytes().len() + payload.len()
    })
}

/// Append `msg`'s frame to `out`.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    if let Some((op, payload)) = parts(msg) {
        out.extend_from_slice(Header::new(op, payload.len()).as_bytes());
        out.extend_from_slice(payload);
    }
}

/// A close frame with `code` and `reason` (cut like every close reason,
/// [`actions::cut`], to fit the 125 bytes of a control frame).
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let reason = actions::cut(reason.to_owned());
    let mut out = Vec::with_capacity(4 + reason.len());
    out.extend_from_slice(Header::new(0x8, 2 + reason.len()).as_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
    out
}

/// Whether `bytes` is one whole pong frame (a server's: unmasked).
pub fn is_pong(bytes: &[u8]) -> bool {
    match bytes {
        [0x8A, len, rest @ ..] => usize::from(*len) == rest.len(),
        _ => false,
    }
}

/// A socket that can be written without waiting, from any task: what the
/// fan-out writes to directly.
pub trait Direct: Send + Sync + std::fmt::Debug {
    /// Write what the socket takes now; `WouldBlock` when it takes nothing.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
}

impl Direct for TcpStream {
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        TcpStream::try_write_vectored(self, bufs)
    }
}

/// Where the connection's writer writes.
pub enum WriteHalf<W> {
    /// A plain socket, shared with the fan-out's direct writes.
    Direct(Arc<TcpStream>),
    /// A stream only the connection's task writes (TLS: the session's
    /// state cannot be written from two places).
    Owned(W),
}

/// A stream the session can split into a half tungstenite reads and a half
/// the host writes.
pub trait Split: AsyncRead + AsyncWrite + Unpin + Send + Sized {
    /// The half tungstenite reads.
    type Read: AsyncRead + Unpin + Send;
    /// The half the writer writes when it is not [`WriteHalf::Direct`].
    type Write: AsyncWrite + Unpin + Send;
    /// Split the stream.
    fn split_io(self) -> (Self::Read, WriteHalf<Self::Write>);
}

impl Split for TcpStream {
    type Read = TcpRead;
    type Write = tokio::io::Sink;

    fn split_io(self) -> (TcpRead, WriteHalf<tokio::io::Sink>) {
        let tcp = Arc::new(self);
        (TcpRead(tcp.clone()), WriteHalf::Direct(tcp))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send> Split for tokio_rustls::server::TlsStream<IO> {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;

    fn split_io(self) -> (Self::Read, WriteHalf<Self::Write>) {
        let (read, write) = tokio::io::split(self);
        (read, WriteHalf::Owned(write))
    }
}

/// The reading side of a plain socket whose writing side is shared.
#[derive(Debug)]
pub struct TcpRead(Arc<TcpStream>);

impl AsyncRead for TcpRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            // `try_read` clears the readiness it finds stale, so the next
            // `poll_read_ready` waits for new data.
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// What tungstenite reads from: the read half, and, for what tungstenite
/// writes by itself (pong, the close reply), the connection's queue.
#[derive(Debug)]
pub struct Wire<R> {
    read: R,
    outbox: Outbox,
    /// What was read and has not yet made a whole message, counted
    /// server-wide.
    pending: Pending,
}

impl<R> Wire<R> {
    /// Read from `read`, counting partly received messages in `pending`;
    /// what tungstenite writes goes to `outbox`.
    pub fn new(read: R, outbox: Outbox, pending: Pending) -> Self {
        Wire {
            read,
            outbox,
            pending,
        }
    }

    /// A whole message was read: what was read for it is no longer pending.
    pub fn settled(&mut self) {
        self.pending.settled();
    }

    /// The read half (to read until the client hangs up).
    pub fn read_half(&mut self) -> &mut R {
        &mut self.read
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Wire<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.read).poll_read(cx, buf))?;
        let read = buf.filled().len() - before;
        let this = &mut *self;
        if !this.pending.read(read) {
            tracing::warn!(
                serial = this.outbox.serial(),
                "partly received messages past the server's inbound budget, closing with 1013"
            );
            this.outbox.close(CloseReason {
                drain: false,
                ..CloseReason::with_code(
                    code::TRY_AGAIN_LATER,
                    "server busy: too many partly received messages",
                )
            });
        }
        Poll::Ready(Ok(()))
    }
}

impl<R: Unpin> AsyncWrite for Wire<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // tungstenite writes whole frames it made itself: a pong (at most
        // 127 bytes) for each ping it reads, and the close reply. Taking all
        // of it could grow without bound under a ping flood from a client
        // that never reads; the queue bounds it instead (a pong replaces
        // the pending one, and counts against the queue's limits), and pings
        // take from the connection's message bucket.
        self.outbox.push_raw(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    /// Our frames are what tungstenite writes for the same message, at
    /// each length encoding's edges.
    #[test]
    fn frames_match_tungstenite() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
            let text = "x".repeat(len);
            let mut ours = Vec::new();
            encode(&Message::Text(text.clone().into()), &mut ours);
            let mut theirs = Vec::new();
            Frame::message(text.clone(), OpCode::Data(Data::Text), true)
                .format(&mut theirs)
                .unwrap();
            assert_eq!(ours, theirs, "length {len}");
            assert_eq!(wire_len(&Message::Text(text.into())), ours.len());
        }
    }

    #[test]
    fn close_frames_are_cut_at_a_character() {
        let reason = "é".repeat(100);
        let frame = close_frame(4008, &reason);
        assert_eq!(frame[0], 0x88);
        let len = usize::from(frame[1]);
        assert!(len <= 125);
        assert_eq!(&frame[2..4], &4008u16.to_be_bytes());
        assert!(std::str::from_utf8(&frame[4..]).is_ok());
        assert_eq!(frame.len(), 2 + len);
    }
}
