//! Where a guest's stdout and stderr go: the host log, line by line, never a
//! terminal or a file. Writes never block, so a chatty guest costs only log
//! volume, which its call deadline bounds.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest piece of guest output logged at once.
const MAX_LOG_CHUNK: usize = 4096;

/// A guest output stream (`stdout` or `stderr`) that logs.
#[derive(Debug, Clone, Copy)]
pub struct GuestOutput {
    /// Which stream, for the log line.
    pub stream: &'static str,
}

impl GuestOutput {
    fn log(&self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_LOG_CHUNK)]);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            // stderr is where guests report errors (panic messages, uncaught
            // exceptions): make it stand out.
            if self.stream == "stderr" {
                tracing::warn!(target: "policy", stream = self.stream, "{line}");
            } else {
                tracing::info!(target: "policy", stream = self.stream, "{line}");
            }
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(*self)
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(*self)
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.log(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.log(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LOG_CHUNK)
    }
}
