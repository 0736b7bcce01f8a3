//! A connection's stream split in two: tungstenite reads, the host writes.
//!
//! The host writes its own frames (chat::encode) so that a plain TCP socket
//! can be written from outside its connection's task: the fan-out writes a
//! frame straight to an idle socket instead of queueing it and waking the
//! connection's writer, as uWebSockets does (`outbound`'s cork). tungstenite
//! still reads, and the replies it writes by itself (pong, the close reply)
//! go into the connection's queue as bytes, so one writer orders everything.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::chat::encode::Direct;
use crate::chat::outbound::{CloseReason, Outbox, code};
use crate::net::inbound::Pending;

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
