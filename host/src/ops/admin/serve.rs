//! The admin interface's connections: at most `max_connections` at once
//! (more are answered 503 and closed), each request's head read within
//! `header_timeout` (else the connection is dropped), one HTTP/1.1
//! connection per task. Written over hyper directly because `axum::serve`
//! sets neither bound: a client that sends half a request line and stops,
//! or opens connections without end, would hold the interface's memory
//! and file descriptors for as long as it likes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;

/// The answer to a connection past the cap.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
connection: close\r\n\
content-length: 89\r\n\
\r\n\
{\"error\":\"busy\",\"message\":\"too many admin connections at once ([admin] max_connections)\"}";

/// How long a refused connection is given to read its 503 (what it sent
/// is read and dropped meanwhile, so closing does not reset the answer
/// away).
const BUSY_LINGER: Duration = Duration::from_secs(1);

/// Bytes of a refused connection's request read and dropped at most.
const BUSY_DRAIN: usize = 64 * 1024;

/// The bounds on the admin interface's connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time to send a request's head (the request line and headers).
    pub header_timeout: Duration,
}

/// Serve `router` on `listener` within `limits` until `shutdown`
/// resolves; then stop accepting, let each connection finish the request
/// it is in, and return once they all have.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let served = Arc::new(Semaphore::new(limits.max_connections));
    // The refusals in progress are bounded too: past them a connection is
    // closed without an answer.
    let refusing = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let tasks = TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, usually: let some close.
                    tracing::warn!(error = %e, "admin interface: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if let Ok(permit) = served.clone().try_acquire_owned() {
            let (router, stopping) = (router.clone(), stopping.clone());
            tasks.spawn(async move {
                connection(tcp, router, limits.header_timeout, stopping).await;
                drop(permit);
            });
        } else if let Ok(permit) = refusing.clone().try_acquire_owned() {
            tracing::warn!(
                max = limits.max_connections,
                "admin interface: too many connections, one refused"
            );
            tasks.spawn(async move {
                busy(tcp).await;
                drop(permit);
            });
        }
    }
    drop(listener);
    let _ = stop.send(true);
    tasks.close();
    tasks.wait().await;
}

/// One connection, until it closes, times out on a request's head, or the
/// interface stops (then after the request in progress).
async fn connection(
    tcp: TcpStream,
    router: axum::Router,
    header_timeout: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router));
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "admin connection ended");
            }
            return;
        }
        _ = stopping.wait_for(|stop| *stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Answer 503 and close, bounded in time and bytes.
async fn busy(mut tcp: TcpStream) {
    let _ = tokio::time::timeout(BUSY_LINGER, async {
        tcp.write_all(BUSY).await?;
        tcp.shutdown().await?;
        let mut buf = [0u8; 4096];
        let mut drained = 0;
        while drained < BUSY_DRAIN {
            match tcp.read(&mut buf).await? {
                0 => break,
                n => drained += n,
            }
        }
        std::io::Result::Ok(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_answer_is_well_formed() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"], "busy");
    }
}
