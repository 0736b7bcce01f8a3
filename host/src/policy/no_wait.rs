//! The WASI functions that could wait, for policies called synchronously.
//!
//! A policy call runs on the thread that handles the event, with no fiber
//! and no executor of its own: that is what makes a call cheap. A call
//! that waited would hold that thread, and wasmtime-wasi's synchronous
//! bindings wait by starting a nested Tokio runtime, which panics on a
//! Tokio worker. Nothing a policy is given ever becomes ready later
//! anyway (its streams are the log, which takes every write at once; it
//! has no files, no sockets and no input), so waiting can only mean
//! sleeping. These replacements do what the originals do whenever the
//! answer is ready at once, and otherwise trap with [`WouldWait`].
//!
//! They shadow, in the linker, every function of `wasi:io/poll` and
//! `wasi:io/streams` and `wasi:sockets/udp-create-socket`: the functions
//! in wasmtime-wasi 48 whose synchronous form enters a runtime. (TCP and
//! UDP socket methods do too, but no socket can be made: creating one is
//! refused before any exists.) The sandbox tests call each of them from a
//! guest on a Tokio worker.

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode};
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::bindings::sync::sockets::udp_create_socket;
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, DynPollable, SocketError, SocketResult, StreamError,
    StreamResult, UdpSocket,
};
use wasmtime_wasi::{WasiView, p2::bindings::sync::sockets::udp::IpAddressFamily};
use wasmtime_wasi_io::bindings::wasi::io::{poll as async_poll, streams as async_streams};

/// The trap of a policy that tried to wait for something not yet ready.
#[derive(Debug, thiserror::Error)]
#[error("the policy tried to wait ({0}): a policy call cannot block")]
pub struct WouldWait(&'static str);

/// Replace the waiting functions of the WASI already in `linker` with
/// these. Call after `wasmtime_wasi::p2::add_to_linker_sync`.
pub fn shadow<T: WasiView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    poll::add_to_linker::<T, NoWait>(linker, |t| Io(t.ctx().table))?;
    streams::add_to_linker::<T, NoWait>(linker, |t| Io(t.ctx().table))?;
    udp_create_socket::add_to_linker::<T, NoSockets>(linker, |_| NoSockets)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The answer of `future` if it has one at once.
fn at_once<F: Future>(future: F) -> Option<F::Output> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// `future`'s answer, or a trap naming `what` if it would wait.
fn now<F: Future<Output = wasmtime::Result<R>>, R>(
    what: &'static str,
    future: F,
) -> wasmtime::Result<R> {
    at_once(future).unwrap_or_else(|| Err(WouldWait(what).into()))
}

/// [`now`] for stream operations.
fn now_stream<F: Future<Output = StreamResult<R>>, R>(
    what: &'static str,
    future: F,
) -> StreamResult<R> {
    at_once(future).unwrap_or_else(|| Err(StreamError::Trap(WouldWait(what).into())))
}

/// The linker's view of the data: the store's resource table.
struct NoWait;

impl HasData for NoWait {
    type Data<'a> = Io<'a>;
}

/// The resource table, with the synchronous io traits implemented here
/// instead of by wasmtime-wasi.
struct Io<'a>(&'a mut ResourceTable);

impl poll::Host for Io<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        now("poll", async_poll::Host::poll(self.0, pollables))
    }
}

impl poll::HostPollable for Io<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        // Asking costs nothing: only waiting is refused.
        now(
            "pollable.ready",
            async_poll::HostPollable::ready(self.0, pollable),
        )
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        now(
            "pollable.block",
            async_poll::HostPollable::block(self.0, pollable),
        )
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.0, pollable)
    }
}

impl streams::Host for Io<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        Ok(
            match async_streams::Host::convert_stream_error(self.0, err)? {
                async_streams::StreamError::LastOperationFailed(e) => {
                    streams::StreamError::LastOperationFailed(e)
                }
                async_streams::StreamError::Closed => streams::StreamError::Closed,
            },
        )
    }
}

impl streams::HostOutputStream for Io<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        // Dropping waits for a stream's pending write to be cancelled; the
        // log has none.
        now(
            "output-stream drop",
            async_streams::HostOutputStream::drop(self.0, stream),
        )
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        async_streams::HostOutputStream::check_write(self.0, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        async_streams::HostOutputStream::write(self.0, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        now_stream(
            "blocking-write-and-flush",
            async_streams::HostOutputStream::blocking_write_and_flush(self.0, stream, bytes),
        )
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        now_stream(
            "blocking-write-zeroes-and-flush",
            async_streams::HostOutputStream::blocking_write_zeroes_and_flush(self.0, stream, len),
        )
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        async_streams::HostOutputStream::subscribe(self.0, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        async_streams::HostOutputStream::write_zeroes(self.0, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        async_streams::HostOutputStream::flush(self.0, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        now_stream(
            "blocking-flush",
            async_streams::HostOutputStream::blocking_flush(self.0, stream),
        )
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        async_streams::HostOutputStream::splice(self.0, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        now_stream(
            "blocking-splice",
            async_streams::HostOutputStream::blocking_splice(self.0, dst, src, len),
        )
    }
}

impl streams::HostInputStream for Io<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        now(
            "input-stream drop",
            async_streams::HostInputStream::drop(self.0, stream),
        )
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        async_streams::HostInputStream::read(self.0, stream, len)
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        now_stream(
            "blocking-read",
            async_streams::HostInputStream::blocking_read(self.0, stream, len),
        )
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        async_streams::HostInputStream::skip(self.0, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        now_stream(
            "blocking-skip",
            async_streams::HostInputStream::blocking_skip(self.0, stream, len),
        )
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        async_streams::HostInputStream::subscribe(self.0, stream)
    }
}

/// `udp-create-socket` as wasmtime-wasi answers it without UDP allowed,
/// minus the runtime it enters first.
struct NoSockets;

impl HasData for NoSockets {
    type Data<'a> = NoSockets;
}

impl udp_create_socket::Host for NoSockets {
    fn create_udp_socket(&mut self, _family: IpAddressFamily) -> SocketResult<Resource<UdpSocket>> {
        Err(ErrorCode::AccessDenied.into())
    }
}

// The error conversions the bindings need; wasmtime-wasi's own.
impl network::Host for NoSockets {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        error.downcast()
    }

    fn network_error_code(
        &mut self,
        _err: Resource<wasmtime_wasi_io::streams::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        Ok(None)
    }
}

// Only `udp-create-socket` is linked with `NoSockets`: no network is ever
// handed to it to drop (the one linked from wasmtime-wasi keeps its own).
impl network::HostNetwork for NoSockets {
    fn drop(&mut self, _network: Resource<network::Network>) -> wasmtime::Result<()> {
        Ok(())
    }
}
