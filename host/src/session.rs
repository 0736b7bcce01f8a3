//! One connection from first byte to last: the upgrade (with the policy's
//! `on-connect`), registration, a read loop that hands each frame to the
//! policy, a writer that drains the bounded queue in batches, and a close
//! that delivers what it should, says why, and lets the client hang up first.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_concurrency::future::Join;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::actions::{self, Caller};
use crate::admission::Ticket;
use crate::decide;
use crate::handshake::{self, Upgrade};
use crate::liveness::{Due, Liveness};
use crate::outbound::{self, CloseReason, Inbox, Outbox, code};
use crate::policy::{Action, ConnectInfo, Frame};
use crate::rate::Quota;
use crate::replies;
use crate::shared::Shared;

/// Serve one accepted (and, for wss, TLS-wrapped) stream, admitted with
/// `ticket` (which the caller holds until the connection ends).
pub async fn run<S>(shared: Arc<Shared>, mut stream: S, peer: SocketAddr, ticket: &mut Ticket)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    // The task's future is as large as its largest state, and most of the
    // time a connection sits idle in `pump`: the states that are large and
    // short-lived (the upgrade, a policy call, the close) are boxed so an
    // idle connection does not carry their size.
    let Some(upgrade) = Box::pin(upgrade(&shared, &mut stream, peer)).await else {
        return;
    };
    // The 101 is sent: no longer a handshake in progress for its address.
    ticket.upgraded();
    let id = upgrade.id.to_string();
    let ws = WebSocketStream::from_partially_read(
        stream,
        upgrade.leftover,
        Role::Server,
        Some(shared.ws_config),
    )
    .await;

    let serial = shared.registry.next_serial();
    let limits = &shared.limits;
    let (outbox, inbox) = outbound::channel_in(
        serial,
        limits.outbound_queue_frames,
        limits.outbound_queue_bytes,
        shared.budget.clone(),
    );
    // The replies `on-connect` starts with (the welcome) are queued before
    // the id is registered: from then on its rooms (kept from an earlier
    // connection) can queue frames to it, and the welcome must come first.
    // They are written only once the id is registered, so a client that has
    // its welcome is online: a notice sent to it at once reaches it. (Sent
    // with the 101, the welcome could arrive before the registration.)
    let mut on_connect = upgrade.actions;
    let leading = on_connect
        .iter()
        .take_while(|a| matches!(a, Action::Reply(_)))
        .count();
    let rest = on_connect.split_off(leading);
    actions::apply(&shared.registry, Caller::new(&outbox), on_connect);
    shared.registry.register(&id, outbox.clone());
    tracing::debug!(%peer, id, serial, "connected");
    if shared.is_shutting_down() {
        outbox.close(shutdown_reason());
    }
    actions::apply(&shared.registry, Caller::new(&outbox), rest);

    // Split here, not in `pump`: an argument stays in a future for its whole
    // life, and the stream itself (320 bytes) moves into the split's lock.
    let (sink, stream) = ws.split();
    let reason = pump(&shared, sink, stream, &id, &outbox, inbox).await;
    tracing::debug!(%peer, id, serial, ?reason, "disconnected");
    if shared.registry.unregister(&id, serial) && !reason.shutdown && !reason.replaced {
        Box::pin(disconnected(&shared, &id)).await;
    }
}

/// Refuse a connection over a limit: read its request, answer 503 with
/// `reason` as the body (bounded in time).
pub async fn at_limit<S>(shared: &Shared, stream: &mut S, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = timeout(shared.limits.upgrade_timeout, async {
        let _ = handshake::read_request(stream).await;
        handshake::refuse(stream, 503, reason).await
    })
    .await;
}

/// The result of a successful upgrade.
struct Accepted {
    id: crate::id::ConnId,
    leftover: Vec<u8>,
    /// `on-connect`'s actions, applied once the connection is registered.
    actions: Vec<crate::policy::Action>,
}

/// Read the upgrade request, ask the policy, answer. `None` if refused.
async fn upgrade<S>(shared: &Shared, stream: &mut S, peer: SocketAddr) -> Option<Accepted>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = shared.limits.upgrade_timeout;
    // A bad request and a connection that cannot prove its id are refused
    // alike: with their HTTP status and the reason.
    let read = timeout(limit, handshake::read_request(stream)).await;
    let identified = match read {
        Ok(Ok(request)) => request
            .identify(shared.auth.as_ref())
            .map(|identity| (request, identity)),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            tracing::debug!(%peer, "handshake timed out");
            return None;
        }
    };
    let (request, identity) = match identified {
        Ok(accepted) => accepted,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "handshake refused");
            if let Some(status) = e.status() {
                let _ = timeout(limit, handshake::refuse(stream, status, &e.to_string())).await;
            }
            return None;
        }
    };
    let info = connect_info(shared, &request, &identity, peer);
    let actions = match decide::on_connect(shared, info) {
        Ok(Ok(actions)) => actions,
        Ok(Err(reject)) => {
            let status = handshake::reject_status(reject.status);
            let _ = timeout(limit, handshake::refuse(stream, status, &reject.reason)).await;
            return None;
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "on-connect failed");
            let _ = timeout(
                limit,
                handshake::refuse(stream, 500, &format!("policy-failed: {e}")),
            )
            .await;
            return None;
        }
    };
    if !matches!(
        timeout(limit, handshake::accept(stream, &request)).await,
        Ok(Ok(()))
    ) {
        // The policy saw a connect that never happened: balance it, unless
        // the id is online through another connection.
        if !shared.registry.is_online(identity.id.as_str()) {
            disconnected(shared, identity.id.as_str()).await;
        }
        return None;
    }
    Some(Accepted {
        id: identity.id,
        leftover: request.leftover,
        actions,
    })
}

fn connect_info(
    shared: &Shared,
    request: &Upgrade,
    identity: &crate::auth::Identity,
    peer: SocketAddr,
) -> ConnectInfo {
    ConnectInfo {
        id: identity.id.to_string(),
        remote_addr: peer.to_string(),
        path: request.path.clone(),
        query: request.query.clone(),
        headers: request.headers.clone(),
        secure: shared.secure,
        claims: identity.claims.clone(),
    }
}

/// `on-disconnect` for an id that went offline, then the host takes it out
/// of every room it is still in, telling each room `left`. That part does
/// not depend on the policy: a call that fails (or would need more actions
/// than a call may return) cannot keep an id in its rooms.
async fn disconnected(shared: &Shared, id: &str) {
    match decide::on_disconnect(shared, id) {
        Ok(actions) => actions::apply_disconnect(&shared.registry, id, actions),
        Err(e) => tracing::warn!(id, error = %e, "on-disconnect failed"),
    }
    shared.registry.leave_all_if_offline(id, replies::left);
}

fn shutdown_reason() -> CloseReason {
    CloseReason {
        shutdown: true,
        ..CloseReason::with_code(code::GOING_AWAY, "server shutting down")
    }
}

/// Run the reader and the writer until the connection closes; returns why.
async fn pump<S>(
    shared: &Shared,
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut stream: SplitStream<WebSocketStream<S>>,
    id: &str,
    outbox: &Outbox,
    mut inbox: Inbox,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Not `tokio::join!`, which polls both halves on every wake: each frame
    // queued for this client would also poll the reader (a read attempt
    // through tungstenite). This join polls only the half that was woken.
    (
        read_loop(shared, &mut stream, id, outbox),
        write_loop(&mut sink, &mut inbox, outbox),
    )
        .join()
        .await;
    let reason = inbox
        .reason()
        .cloned()
        .unwrap_or_else(|| CloseReason::peer_gone("connection ended"));
    Box::pin(finish(shared, sink, stream, inbox, &reason)).await;
    reason
}

async fn read_loop<S>(
    shared: &Shared,
    stream: &mut SplitStream<WebSocketStream<S>>,
    id: &str,
    outbox: &Outbox,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut live = Liveness::new(&shared.limits, tokio::time::Instant::now());
    let mut quota = Quota::new(&shared.limits, Instant::now());
    // One close signal and one timer for the connection's life, not one
    // of each per frame: a frame only moves the deadline later, and the
    // timer, when it fires, finds out whether it is really due.
    let closed = outbox.closed();
    let timer = tokio::time::sleep_until(live.deadline());
    tokio::pin!(closed, timer);
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut closed => return,
            _ = &mut timer => None,
            next = stream.next() => Some(next),
        };
        let message = match next {
            None => {
                let now = tokio::time::Instant::now();
                if now >= live.deadline() {
                    match live.due(now) {
                        // Through the queue, so the writer stays the only
                        // one writing; outside its limits, so it never
                        // closes anyone.
                        Due::Ping => {
                            let _ = outbox.push_control(Message::Ping(Default::default()));
                        }
                        Due::Close(reason) => {
                            outbox.close(reason);
                            return;
                        }
                    }
                }
                timer.as_mut().reset(live.deadline());
                continue;
            }
            Some(None) => {
                outbox.close(CloseReason::peer_gone("client closed"));
                return;
            }
            Some(Some(Err(e))) => {
                outbox.close(read_error(e, shared.limits.max_message_bytes));
                return;
            }
            Some(Some(Ok(m))) => {
                live.heard(tokio::time::Instant::now());
                m
            }
        };
        match message {
            Message::Text(text) => {
                let frame = Frame::Text(text.as_str().to_owned());
                Box::pin(on_frame(
                    shared,
                    id,
                    outbox,
                    &mut quota,
                    frame,
                    Some(text.as_str()),
                ))
                .await;
            }
            Message::Binary(bytes) => {
                Box::pin(on_frame(
                    shared,
                    id,
                    outbox,
                    &mut quota,
                    Frame::Binary(bytes.to_vec()),
                    None,
                ))
                .await
            }
            // Pings are answered by tungstenite; a close ends the stream next.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => {}
        }
    }
}

/// Hand one frame to the policy and carry out its answer, unless the
/// connection is over its message rate: then the host answers
/// `rate-limited` and the policy never sees the frame.
async fn on_frame(
    shared: &Shared,
    id: &str,
    outbox: &Outbox,
    quota: &mut Quota,
    frame: Frame,
    text: Option<&str>,
) {
    if let Err(wait) = quota.messages.take(Instant::now()) {
        let _ = outbox.push(replies::error(
            text,
            replies::code::RATE_LIMITED,
            "too many messages; slow down",
            Some(wait),
        ));
        return;
    }
    match decide::on_message(shared, id, frame) {
        Ok(actions) => {
            let caller = Caller {
                outbox,
                request: text,
                broadcasts: Some(&mut quota.broadcasts),
            };
            actions::apply(&shared.registry, caller, actions)
        }
        Err(e) => {
            tracing::warn!(id, error = %e, "on-message failed");
            let _ = outbox.push(replies::policy_failed(text, &e));
        }
    }
}

/// How a read error ends the connection.
fn read_error(e: WsError, max: usize) -> CloseReason {
    match e {
        WsError::Utf8(_) => {
            CloseReason::with_code(code::INVALID_PAYLOAD, "invalid UTF-8 in a text frame")
        }
        WsError::Capacity(_) => CloseReason {
            drain: false,
            ..CloseReason::with_code(
                code::TOO_BIG,
                format!("message too big (limit {max} bytes)"),
            )
        },
        WsError::Protocol(p) => CloseReason {
            drain: false,
            ..CloseReason::with_code(1002, actions::cut(format!("protocol error: {p}")))
        },
        other => CloseReason::peer_gone(other.to_string()),
    }
}

async fn write_loop<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    inbox: &mut Inbox,
    outbox: &Outbox,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let result: Result<(), WsError> = async {
        while inbox.ready().await {
            // Let the tasks that are ready run first: under load they queue
            // more frames here, and all of them go out in one socket write
            // (a write per frame is what costs most in fan-out).
            tokio::task::yield_now().await;
            if outbox.is_closing() {
                // What is queued stays queued: the close drains it if asked.
                break;
            }
            let mut batch = inbox.take_all();
            // A write blocked on a slow client must not delay the close; a
            // frame leaves `batch` only once the sink has taken it, so what
            // was not written can go back to the queue for the close.
            let write = async {
                while !batch.is_empty() {
                    poll_fn(|cx| sink.poll_ready_unpin(cx)).await?;
                    if let Some(m) = batch.pop_front() {
                        sink.start_send_unpin(m)?;
                    }
                }
                sink.flush().await
            };
            tokio::select! {
                biased;
                _ = outbox.closed() => {
                    inbox.requeue(batch);
                    return Ok(());
                }
                r = write => r?,
            }
            inbox.written();
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        outbox.close(CloseReason::peer_gone(format!("write failed: {e}")));
        // What the failed write held will never be sent.
        inbox.written();
    }
}

/// Deliver what the close reason asks for, send the close frame, then (when
/// the server is the one closing) shut our side and wait (bounded) for the
/// client to hang up, so the kernel does not reset the connection over
/// unread input and lose the close frame.
async fn finish<S>(
    shared: &Shared,
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    stream: SplitStream<WebSocketStream<S>>,
    mut inbox: Inbox,
    reason: &CloseReason,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = shared.limits.close_timeout;
    inbox.seal();
    let _ = timeout(limit, async {
        if let Some(code) = reason.code {
            if reason.drain {
                while let Some(m) = inbox.try_recv() {
                    sink.feed(m).await?;
                }
            }
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.reason.clone().into(),
            };
            sink.send(Message::Close(Some(frame))).await
        } else {
            // Lets tungstenite send its reply to the client's close.
            sink.flush().await
        }
    })
    .await;
    if reason.code.is_none() {
        // The client ended it (a close frame, or the socket closed): it
        // sends nothing more, so nothing unread can turn our close into a
        // reset. Closing now, right after the close reply, also leaves
        // TIME_WAIT with the server, as RFC 6455 (7.1.1) asks.
        return;
    }
    let Ok(mut ws) = sink.reunite(stream) else {
        return;
    };
    linger(ws.get_mut(), limit.min(Duration::from_secs(2))).await;
}

/// Shut down our write side and read until the client closes (or `limit`).
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, limit: Duration) {
    let _ = timeout(limit, async {
        let _ = io.shutdown().await;
        let mut sink = [0u8; 1024];
        while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use tokio::net::TcpStream;
    use tokio_tungstenite::WebSocketStream;

    fn size3<A, B, C, F: Future>(_: impl Fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    fn size4<A, B, C, D, F: Future>(_: impl Fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    fn size6<A, B, C, D, E, G, F: Future>(_: impl Fn(A, B, C, D, E, G) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A connection's task holds `run`'s future for its whole life; most of
    /// that life is spent in `pump`. The states around it (upgrade, policy
    /// calls, close) are boxed, so `run` must weigh little more than `pump`.
    /// Sizes print with `--nocapture` (bench/RESULTS.md quotes them).
    #[test]
    fn an_idle_connection_carries_only_pump() {
        let run = size4(super::run::<TcpStream>);
        let pump = size6(super::pump::<TcpStream>);
        eprintln!(
            "run {run} pump {pump} read_loop {} write_loop {} WebSocketStream {}",
            size4(super::read_loop::<TcpStream>),
            size3(super::write_loop::<TcpStream>),
            std::mem::size_of::<WebSocketStream<TcpStream>>(),
        );
        assert!(run <= pump + 400, "run {run} bytes vs pump {pump}");
    }
}
