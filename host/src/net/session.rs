//! One connection from first byte to last: the upgrade (with the policy's
//! `on-connect`), registration, a read loop that hands each frame to the
//! policy, a writer that drains the bounded queue in batches, and a close
//! that delivers what it should, says why, and lets the client hang up first.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_concurrency::future::Join;
use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::chat::actions::{self, Caller};
use crate::chat::decide;
use crate::chat::encode;
use crate::chat::lifecycle::{self, Resume};
use crate::chat::outbound::{self, CloseReason, Inbox, Outbox, code};
use crate::chat::rate::Quota;
use crate::chat::replies;
use crate::metrics::{FrameKind, Limit, Refused};
use crate::net::admission::{HeldTicket, Ticket};
use crate::net::handshake::{self, Incoming, Upgrade};
use crate::net::inbound::Pending;
use crate::net::liveness::{Due, Liveness};
use crate::net::shared::Shared;
use crate::net::web;
use crate::net::wire::{Split, Wire, WriteHalf};
use crate::policy::queries;
use crate::policy::{ConnectInfo, Frame};
use crate::store::bus::Resumed;
use crate::store::sessions::{Claim, Held};

/// Serve one accepted (and, for wss, TLS-wrapped) stream, admitted with
/// `ticket` (which the caller holds until the connection ends).
pub async fn run<S>(shared: Arc<Shared>, mut stream: S, peer: SocketAddr, ticket: &mut Ticket)
where
    S: Split,
{
    // The task's future is as large as its largest state, and most of the
    // time a connection sits idle in `pump`: the states that are large and
    // short-lived (the upgrade, a policy call, the close) are boxed so an
    // idle connection does not carry their size.
    let Some(upgrade) = Box::pin(upgrade(&shared, &mut stream, peer, ticket)).await else {
        return;
    };
    // The 101 is sent: no longer a handshake in progress for its address.
    ticket.upgraded();
    shared.registry.counters().opened();
    let since = uptime_ms();
    let id = upgrade.id.to_string();
    let serial = shared.registry.next_serial();
    let limits = &shared.limits;
    let (outbox, inbox) = outbound::channel_in(
        serial,
        limits.outbound_queue_frames,
        limits.outbound_queue_bytes,
        shared.budget.clone(),
    );
    outbox.set_peer(peer);
    // tungstenite reads; the host writes (wire.rs), from this task or, on
    // a plain socket, straight from the fan-out.
    let (read, write) = stream.split_io();
    let mut out = match write {
        WriteHalf::Direct(tcp) => {
            let direct: Arc<dyn encode::Direct> = tcp.clone();
            outbox.attach_direct(&direct);
            Out::Direct(tcp)
        }
        WriteHalf::Owned(w) => Out::Owned {
            w,
            pending: Vec::new(),
            at: 0,
        },
    };
    let mut ws = WebSocketStream::from_partially_read(
        Wire::new(read, outbox.clone(), Pending::new(shared.inbound.clone())),
        upgrade.leftover,
        Role::Server,
        Some(shared.ws_config),
    )
    .await;
    // The welcome is written only once the id is registered, so a client
    // that has its welcome is online: a notice sent to it at once reaches
    // it. (Sent with the 101, the welcome could arrive before the
    // registration.)
    let resumed = upgrade.resume.is_some();
    // Boxed, as every state around `pump`: the task keeps its largest
    // state for its whole life.
    Box::pin(lifecycle::connect(
        shared.chat(),
        &id,
        &outbox,
        upgrade.actions,
        upgrade.session.as_deref(),
        upgrade.resume.map(|r| *r),
        *upgrade.claim,
        || {
            tracing::debug!(%peer, id, serial, resumed, "connected");
            if shared.is_shutting_down() {
                outbox.close(shutdown_reason());
            } else if shared.drain.is_draining() {
                outbox.close(crate::net::drain::restart_reason());
            }
        },
    ))
    .await;

    let holdable = upgrade.session.is_some() && !shared.recovery.resume_window.is_zero();
    let (reason, kept, seen) =
        pump(&shared, &mut ws, &mut out, &id, &outbox, inbox, holdable).await;
    // One line per connection (docs/OPERATIONS.md, "Logs"): the code the
    // server sent, else the client's (1005: its close frame had none), else
    // 1006 (it went away without a close frame).
    let close_code = reason.code.or(seen.close).unwrap_or(1006);
    shared.registry.counters().closed(close_code);
    tracing::info!(
        target: "switchboard::connection",
        id,
        peer = %peer,
        serial,
        duration_ms = uptime_ms().saturating_sub(since),
        frames_in = seen.frames,
        frames_out = outbox.progress().1,
        code = close_code,
        reason = %reason.reason,
        held = kept.is_some(),
        "connection closed"
    );
    // Told to go by a drain: the close frame goes out once the hold is
    // marked (below).
    let tell = (reason.hold && reason.code == Some(code::SERVICE_RESTART))
        .then(|| kept.as_ref().is_some_and(Inbox::is_mid_frame));
    // A queue kept for a resume keeps the connection's place in the
    // admission counts with it, until the hold ends.
    let kept = kept.map(|missed| Kept {
        missed,
        ticket: ticket.hold(),
    });
    // Boxed, as every state around `pump`.
    Box::pin(async move {
        ended(
            shared.clone(),
            id,
            serial,
            reason,
            kept,
            upgrade.session,
            outbox,
        )
        .await;
        if let Some(mid_frame) = tell {
            let restart = crate::net::drain::RESTARTING;
            write_close_alone(&shared, &mut out, mid_frame, code::SERVICE_RESTART, restart).await;
        }
    })
    .await;
}

/// The connection `serial` of `id` ended for `reason`: hold the id for a
/// resume (`kept`: its queue and its place in the admission counts, when
/// the end was abnormal and it has a `session`), or let it go.
async fn ended(
    shared: Arc<Shared>,
    id: String,
    serial: u64,
    reason: CloseReason,
    kept: Option<Kept>,
    session: Option<String>,
    outbox: Outbox,
) {
    match (kept, session) {
        (Some(kept), Some(session)) if !shared.is_shutting_down() => {
            hold(shared.clone(), id, serial, session, kept, outbox).await;
        }
        (kept, _) => {
            // Not held because the server is stopping: no `on-disconnect`
            // then, as for every connection the shutdown closes. (Its place
            // in the admission counts goes with `kept`.)
            let stopping = kept.is_some();
            if let Some(mut kept) = kept {
                kept.missed.unhold();
            }
            if shared.registry.unregister(&id, serial)
                && !reason.shutdown
                && !reason.replaced
                && !stopping
            {
                disconnected(&shared, &id, outbox.generation()).await;
            }
        }
    }
}

/// What a hold keeps for an id while it is away.
#[derive(Debug)]
pub struct Kept {
    /// Its queue: what is sent to it meanwhile.
    pub missed: Inbox,
    /// Its place in the admission counts (the server's, and its last
    /// address's): a held id counts as a connection.
    pub ticket: HeldTicket,
}

/// Hold `id` (its connection `serial` ended abnormally) for the resume
/// window: it stays online and in its rooms, and `kept.missed` collects what
/// is sent to it, until a connection presents `session` or the window ends.
/// Then, if nobody resumed it, it goes offline as any connection does
/// (`on-disconnect`, its rooms hear `left`). Past `--max-held`, the oldest
/// hold ends at once, the same way.
async fn hold(
    shared: Arc<Shared>,
    id: String,
    serial: u64,
    session: String,
    kept: Kept,
    outbox: Outbox,
) {
    // Other nodes answer a send to it `held` from now.
    shared
        .chat()
        .bus
        .holding(&id, outbox.generation(), &session)
        .await;
    let held = Held {
        session,
        serial,
        kept,
    };
    let holding = shared
        .sessions
        .hold(&id, held, shared.limits.held_cap())
        .await;
    if let Some(older) = holding.replaced {
        // A hold of an earlier connection no resume claimed: over.
        let mut inbox = older.kept.missed;
        inbox.unhold();
    }
    if let Some((oldest, held)) = holding.evicted {
        tracing::debug!(
            id = oldest,
            serial = held.serial,
            "hold ended early: --max-held reached"
        );
        end_hold(&shared, &oldest, held).await;
    }
    let window = shared.recovery.resume_window;
    tracing::debug!(id, serial, ?window, "held for a resume");
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(window) => {}
            // Closed while held: its queue overflowed, the budget shed it,
            // the policy closed it, or the server is stopping.
            _ = outbox.hold_ended() => {}
        }
        // Nothing to do if a resume took it first.
        if let Some(held) = shared.sessions.release(&id, serial).await {
            end_hold(&shared, &id, held).await;
        }
    });
}

/// A resume took the hold of `id` (connection `serial`, queue `missed`)
/// and could not go through for a reason the client should try again
/// for: hold it again, with the resuming connection's place
/// (`ticket`). The window is not extended: the first hold's timer ends it.
async fn hold_again(
    shared: &Arc<Shared>,
    id: &str,
    serial: u64,
    session: &str,
    missed: Inbox,
    ticket: &mut Ticket,
) {
    match shared.registry.outbox_of(id, serial) {
        Some(outbox) => {
            let kept = Kept {
                missed,
                ticket: ticket.hold(),
            };
            hold(
                shared.clone(),
                id.to_owned(),
                serial,
                session.to_owned(),
                kept,
                outbox,
            )
            .await;
        }
        None => let_go(shared, id, serial, missed).await,
    }
}

/// A hold is over without a resume: the id goes offline.
pub(crate) async fn end_hold(shared: &Shared, id: &str, held: Held<Kept>) {
    let Kept { missed, ticket } = held.kept;
    // Its place is free before its rooms hear `left`.
    drop(ticket);
    let_go(shared, id, held.serial, missed).await;
}

/// The held connection `serial` of `id`, with its queue `missed`, goes
/// offline (unless a newer connection has the id).
async fn let_go(shared: &Shared, id: &str, serial: u64, mut missed: Inbox) {
    missed.unhold();
    tracing::debug!(id, serial, "hold ended");
    if shared.registry.unregister(id, serial) && !shared.is_shutting_down() {
        disconnected(shared, id, missed.generation()).await;
    }
}

/// Refuse a connection over a limit: read its request, answer 503 with
/// `reason` as the body (bounded in time).
pub async fn at_limit<S>(shared: &Shared, stream: &mut S, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = timeout(shared.limits.upgrade_timeout, async {
        let _ = handshake::read_incoming(stream).await;
        handshake::refuse(stream, 503, reason).await
    })
    .await;
}

/// The result of a successful upgrade.
struct Accepted {
    id: crate::net::id::ConnId,
    leftover: Vec<u8>,
    /// `on-connect`'s actions, applied once the connection is registered.
    actions: Vec<crate::policy::Action>,
    /// The connection's session, when the rules speak protocol v2.
    session: Option<String>,
    /// The held id this connection takes back, if it resumed one.
    /// (Boxed: every connection's task carries this struct for its whole
    /// life, and a resume is rare.)
    resume: Option<Box<Resume>>,
    /// The id's claim for this connection (boxed: every connection's
    /// task carries this struct for its whole life, and the claim is
    /// needed once).
    claim: Box<crate::store::bus::Claim>,
}

/// Read the upgrade request, ask the policy, answer. `None` if refused.
/// `ticket` is the connection's place in the admission counts, taken at
/// accept before the request could be read (see `Ticket::confirm`).
/// What an upgrade refused for `e` counts as (`None`: the client went
/// away; nothing was refused).
fn refusal_reason(e: &handshake::HandshakeError) -> Option<Refused> {
    use handshake::HandshakeError as E;
    Some(match e {
        E::Auth(_) => Refused::Unauthorized,
        E::Origin(_) => Refused::Origin,
        E::Id(_) | E::NotWebSocket(_) | E::Malformed(_) | E::TooLarge => Refused::BadRequest,
        E::Closed => return None,
    })
}

async fn upgrade<S>(
    shared: &Arc<Shared>,
    stream: &mut S,
    peer: SocketAddr,
    ticket: &mut Ticket,
) -> Option<Accepted>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = shared.limits.upgrade_timeout;
    // A bad request and a connection that cannot prove its id are refused
    // alike: with their HTTP status and the reason.
    let read = timeout(limit, handshake::read_incoming(stream)).await;
    let identified = match read {
        Ok(Ok(Incoming::Plain(plain))) => {
            web::answer(shared, stream, plain).await;
            return None;
        }
        Ok(Ok(Incoming::Upgrade(request))) => request
            .admit(shared.auth.as_ref(), &shared.origins)
            .map(|identity| (request, identity)),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            tracing::debug!(%peer, "handshake timed out");
            shared.registry.counters().refused(Refused::Timeout);
            return None;
        }
    };
    let (request, identity) = match identified {
        Ok(accepted) => accepted,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "handshake refused");
            if let Some(why) = refusal_reason(&e) {
                shared.registry.counters().refused(why);
            }
            if let Some(status) = e.status() {
                let _ = timeout(limit, handshake::refuse(stream, status, &e.to_string())).await;
            }
            return None;
        }
    };
    let id = identity.id.as_str();
    // Sessions are protocol v2's: under 0.1.0 rules none is given, and a
    // held id (held under earlier rules) is not resumed.
    let v2 = shared.speaks_v2();
    let presented = request.resume.as_ref().map(|s| s.0.as_str()).filter(|_| v2);
    // A held id comes back: with its session it resumes; without it (or
    // after its window) it starts afresh, its hold ended first, so its
    // rooms hear `left` before any new `joined`.
    let (mut resume, resumed) = match shared.sessions.claim(id, presented).await {
        Claim::Resumed(held) => {
            let Kept { missed, ticket } = held.kept;
            let serial = held.serial;
            (Some(Resume::Held { serial, missed }), Some(ticket))
        }
        Claim::Refused(held) => {
            end_hold(shared, id, held).await;
            (None, None)
        }
        Claim::NotHeld => (None, None),
    };
    // Admitted at accept, before the request said what it is: a resumed
    // hold stops counting now (this connection takes its place, so a resume
    // is never refused for its own hold), and a connection admitted on
    // probation (its address or the server was full of holds) is checked
    // again. Refused, a resume's hold ends as any resume that does not
    // happen.
    if let Err(refusal) = ticket.confirm(resumed) {
        tracing::debug!(%peer, id, %refusal, "connection refused");
        shared.registry.counters().refused(Refused::Admission);
        if let Some(Resume::Held { serial, missed }) = resume {
            let_go(shared, id, serial, missed).await;
        }
        let _ = timeout(limit, handshake::refuse(stream, 503, &refusal.to_string())).await;
        return None;
    }
    // The only proof a resume needs; none (no resume) without randomness.
    let session = v2.then(crate::store::token::new_session).flatten();
    // Not held here: perhaps on another server (cluster mode), which hands
    // it over. Claimed now, before the rules are asked (they are told
    // whether it resumed).
    let mut moved = None;
    if resume.is_none()
        && let Some(presented) = presented
    {
        match shared
            .chat()
            .bus
            .resume(id, presented, session.as_deref())
            .await
        {
            Ok(None) => {}
            Ok(Some(Resumed { claim, handover })) => {
                resume = handover.map(|h| Resume::Moved(Box::new(h)));
                moved = Some(Box::new(claim));
            }
            Err(e) => {
                tracing::warn!(%peer, id, error = %e, "connection refused: the resume could not be looked up");
                shared.registry.counters().refused(Refused::Unavailable);
                let reason = format!("unavailable: {e}; try again");
                let _ = timeout(limit, handshake::refuse(stream, 503, &reason)).await;
                return None;
            }
        }
    }
    let info = connect_info(shared, &request, &identity, peer, resume.is_some());
    // Boxed, both: this future is part of every connection's task.
    let moved_rooms: Option<Box<[String]>> =
        moved.as_ref().map(|c| c.rooms.clone().into_boxed_slice());
    let refused = async |resume: Option<Resume>| {
        // A resume that does not happen ends the hold it took.
        if let Some(Resume::Held { serial, missed }) = resume {
            let_go(shared, id, serial, missed).await;
        }
        // The id taken from another server goes offline here.
        if let Some(rooms) = &moved_rooms {
            let_go_moved(shared, id, rooms).await;
        }
    };
    let actions = match decide::on_connect(shared.decider(), info) {
        Ok(Ok(actions)) => actions,
        Ok(Err(reject)) => {
            shared.registry.counters().refused(Refused::Policy);
            refused(resume).await;
            let status = handshake::reject_status(reject.status);
            let _ = timeout(limit, handshake::refuse(stream, status, &reject.reason)).await;
            return None;
        }
        Err(e) => {
            shared.registry.counters().refused(Refused::PolicyFailed);
            refused(resume).await;
            tracing::warn!(%peer, error = %e, "on-connect failed");
            let _ = timeout(
                limit,
                handshake::refuse(stream, 500, &format!("policy-failed: {e}")),
            )
            .await;
            return None;
        }
    };
    // Claimed once the rules let the connection in (a refused one must
    // not replace the id's connection), before it is told it is in.
    let claimed = match moved {
        Some(claim) => Ok(*claim),
        None => shared.chat().bus.claim(id, session.as_deref()).await,
    };
    let claim = match claimed {
        Ok(claim) => claim,
        Err(e) => {
            // Told to try again, the client will: a hold this resume took
            // stays for it (its queue and all) instead of ending — a
            // Redis restarting would otherwise cost a held id its notices.
            match (resume, presented) {
                (Some(Resume::Held { serial, missed }), Some(presented)) => {
                    Box::pin(hold_again(shared, id, serial, presented, missed, ticket)).await;
                }
                (resume, _) => refused(resume).await,
            }
            if !shared.registry.is_online(id) {
                // Nothing claimed: nothing to let go of in the cluster.
                disconnected(shared, id, 0).await;
            }
            tracing::warn!(%peer, id, error = %e, "connection refused: the id could not be claimed");
            let reason = format!("unavailable: {e}; try again");
            let _ = timeout(limit, handshake::refuse(stream, 503, &reason)).await;
            return None;
        }
    };
    if !matches!(
        timeout(limit, handshake::accept(stream, &request)).await,
        Ok(Ok(()))
    ) {
        refused(resume).await;
        // The policy saw a connect that never happened: balance it, unless
        // the id is online through another connection.
        if !shared.registry.is_online(id) {
            disconnected(shared, id, claim.generation).await;
        }
        return None;
    }
    Some(Accepted {
        id: identity.id,
        leftover: request.leftover,
        actions,
        session,
        resume: resume.map(Box::new),
        claim: Box::new(claim),
    })
}

fn connect_info(
    shared: &Shared,
    request: &Upgrade,
    identity: &crate::net::auth::Identity,
    peer: SocketAddr,
    resumed: bool,
) -> ConnectInfo {
    ConnectInfo {
        id: identity.id.to_string(),
        remote_addr: peer.to_string(),
        path: request.path.clone(),
        query: request.query.clone(),
        headers: request.headers.clone(),
        secure: shared.secure,
        claims: identity.claims.clone(),
        // A policy never sees a session token: the host puts it into the
        // welcome (`lifecycle::connect`).
        session: String::new(),
        resumed,
    }
}

/// `id`, taken over from another server, goes offline here before its
/// connection was let in: `on-disconnect`, and its `rooms` hear `left`.
pub(crate) async fn let_go_moved(shared: &Shared, id: &str, rooms: &[String]) {
    // Nothing registers here for it: what came since the claim goes too.
    drop(shared.chat().bus.unpark(id));
    let decided = decide::on_disconnect(shared.decider(), id)
        .inspect_err(|e| tracing::warn!(id, error = %e, "on-disconnect failed"))
        .ok();
    lifecycle::disconnect_moved(shared.chat(), id, decided, rooms).await;
}

/// Ask the rules about an id that went offline (its connection of claim
/// `generation`), and let it go.
async fn disconnected(shared: &Shared, id: &str, generation: u64) {
    let decided = decide::on_disconnect(shared.decider(), id)
        .inspect_err(|e| tracing::warn!(id, error = %e, "on-disconnect failed"))
        .ok();
    lifecycle::disconnect(shared.chat(), id, decided, generation).await;
}

fn shutdown_reason() -> CloseReason {
    CloseReason {
        shutdown: true,
        ..CloseReason::with_code(code::GOING_AWAY, "server shutting down")
    }
}

/// Run the reader and the writer until the connection closes; returns why,
/// and, when the end was abnormal and `holdable`, the queue to hold the id
/// with (nothing is written to the dead connection then).
async fn pump<R, W>(
    shared: &Shared,
    ws: &mut WebSocketStream<Wire<R>>,
    out: &mut Out<W>,
    id: &str,
    outbox: &Outbox,
    mut inbox: Inbox,
    holdable: bool,
) -> (CloseReason, Option<Inbox>, Seen)
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin,
{
    // The buckets follow the id: a reconnect gets back what its last
    // connection left (`rate::Kept`), and leaves what it has for the next.
    let mut quota = shared.quotas.take(id, &shared.limits, Instant::now());
    let mut seen = Seen::default();
    // Not `tokio::join!`, which polls both halves on every wake: each frame
    // queued for this client would also poll the reader (a read attempt
    // through tungstenite). This join polls only the half that was woken.
    (
        read_loop(shared, ws, id, outbox, holdable, &mut quota, &mut seen),
        write_loop(out, &mut inbox, outbox, holdable),
    )
        .join()
        .await;
    shared.quotas.put(id, quota, Instant::now());
    let mut reason = inbox
        .reason()
        .cloned()
        .unwrap_or_else(|| CloseReason::peer_gone("connection ended"));
    // A drain asks every connection to be held (`drain::restart_reason`):
    // one that cannot be resumed closes as any other.
    reason.hold &= holdable;
    if reason.hold {
        // The queue is kept for a resume. A client that stopped answering
        // pings may still hear the close (and come back at once): the
        // close frame alone is written, if the stream is between frames.
        // A drain's is written once the hold is known (`run`): its client
        // comes back at once, maybe on another node, which must find it.
        if let Some(code) = reason.code
            && code != code::SERVICE_RESTART
        {
            write_close_alone(shared, out, inbox.is_mid_frame(), code, &reason.reason).await;
        }
        return (reason, Some(inbox), seen);
    }
    Box::pin(finish(shared, ws, out, outbox, inbox, &reason)).await;
    (reason, None, seen)
}

/// Write a close frame and nothing queued, unless the stream is in the
/// middle of a frame, bounded in time.
async fn write_close_alone<W: AsyncWrite + Unpin>(
    shared: &Shared,
    out: &mut Out<W>,
    mid_frame: bool,
    code: u16,
    reason: &str,
) {
    let close = encode::close_frame(code, reason);
    let limit = shared.limits.close_timeout.min(Duration::from_secs(1));
    let _ = timeout(limit, out.write_alone(mid_frame, &close)).await;
}

/// Milliseconds since the first call (8 bytes a connection's task keeps,
/// against an `Instant`'s 16).
fn uptime_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// What a connection's reader saw, for its closing log line.
#[derive(Debug, Default)]
struct Seen {
    /// Frames read (data and control; u32: this struct lives in every
    /// connection's task).
    frames: u32,
    /// The code of the client's close frame (1005: it had none).
    close: Option<u16>,
}

/// The close reason of a client closed for pinging past its message rate.
pub const CONTROL_FLOOD: &str = "too many pings: over the message rate";

/// Frames handled in one batch (one cork) at most, so that a client that
/// keeps sending cannot hold back what its frames queued to others.
const BATCH: usize = 64;

/// Read frames and hand them to the rules until the connection ends. An
/// end that is not the client's own close (the socket dropped, no pong) is
/// abnormal: with `holdable`, the id is then held for a resume.
async fn read_loop<R>(
    shared: &Shared,
    stream: &mut WebSocketStream<Wire<R>>,
    id: &str,
    outbox: &Outbox,
    holdable: bool,
    quota: &mut Quota,
    seen: &mut Seen,
) where
    R: AsyncRead + Unpin + Send,
{
    let mut live = Liveness::new(&shared.limits, tokio::time::Instant::now());
    // One close signal and one timer for the connection's life, not one
    // of each per frame: a frame only moves the deadline later, and the
    // timer, when it fires, finds out whether it is really due.
    let closed = outbox.closed();
    let timer = tokio::time::sleep_until(live.deadline());
    tokio::pin!(closed, timer);
    let mut closed_normally = false;
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut closed => return,
            _ = &mut timer => None,
            next = stream.next() => Some(next),
        };
        let Some(next) = next else {
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
                        let hold = reason.hold && holdable;
                        outbox.close(reason.holding(hold));
                        return;
                    }
                }
            }
            timer.as_mut().reset(live.deadline());
            continue;
        };
        // This frame and those already read form one batch: what they
        // queue to idle plain sockets is written when the batch ends, each
        // connection's frames in one write (outbound::corked). At saturation
        // a batch holds many frames; at low load, one.
        // Boxed: an idle connection's future must not carry the room a
        // batch's policy call and actions need. The batch is boxed where it
        // is made, so the layers around it (the cork, and its own box) move
        // a pointer, not the batch's kilobytes, each time they wrap it.
        let ended = Box::pin(outbound::corked(Box::pin(async {
            let mut next = next;
            for handled in 1..=BATCH {
                let message = match next {
                    None => {
                        // After its close frame (see below), or without one.
                        let reason = CloseReason::peer_gone("client closed");
                        outbox.close(reason.holding(holdable && !closed_normally));
                        return true;
                    }
                    Some(Err(e)) => {
                        let reason = read_error(e, shared.limits.max_message_bytes);
                        if reason.code == Some(code::TOO_BIG) {
                            shared.registry.counters().limited(Limit::MaxMessageBytes);
                        }
                        let hold = reason.hold && holdable;
                        outbox.close(reason.holding(hold));
                        return true;
                    }
                    Some(Ok(m)) => {
                        seen.frames = seen.frames.saturating_add(1);
                        if let Some(kind) = frame_kind(&m) {
                            shared.registry.counters().frames_in.add(kind);
                        }
                        stream.get_mut().settled();
                        m
                    }
                };
                if let Message::Close(frame) = &message {
                    seen.close = Some(frame.as_ref().map_or(1005, |f| u16::from(f.code)));
                    // 1000 and 1001 (a page going away) end a session; any
                    // other code is a client that means to come back.
                    closed_normally = frame
                        .as_ref()
                        .is_none_or(|f| matches!(u16::from(f.code), 1000 | 1001));
                }
                live.heard(tokio::time::Instant::now());
                if let Message::Text(text) = &message
                    && shared.bus.is_shared()
                    && is_ping(text)
                {
                    // A ping's answer comes after what other nodes sent
                    // this client before it (docs/CLUSTER.md).
                    shared.bus.sync().await;
                }
                if let Some((actions, request)) = on_message(shared, id, outbox, quota, &message) {
                    let caller = Caller {
                        outbox,
                        request,
                        broadcasts: Some(&mut quota.broadcasts),
                        sender: id,
                    };
                    lifecycle::message(shared.chat(), caller, actions).await;
                }
                if outbox.is_closing() {
                    return true;
                }
                if handled == BATCH {
                    break;
                }
                // Without waiting: a frame not yet here ends the batch.
                match stream.next().now_or_never() {
                    Some(more) => next = more,
                    None => break,
                }
            }
            false
        })))
        .await;
        if ended {
            return;
        }
    }
}

/// The kind a read message counts under (`None`: a raw frame, which
/// tungstenite does not hand to a server).
fn frame_kind(m: &Message) -> Option<FrameKind> {
    Some(match m {
        Message::Text(_) => FrameKind::Text,
        Message::Binary(_) => FrameKind::Binary,
        Message::Ping(_) => FrameKind::Ping,
        Message::Pong(_) => FrameKind::Pong,
        Message::Close(_) => FrameKind::Close,
        Message::Frame(_) => return None,
    })
}

/// Whether `text` is a `ping` request (short: a ping is, so a long frame
/// is not parsed here).
fn is_ping(text: &str) -> bool {
    text.len() <= 256
        && text.contains("ping")
        && crate::store::json::string_field(text, "type").as_deref() == Some("ping")
}

/// One message from the client, as far as it is decided synchronously:
/// the rules' actions to carry out, and the text frame they answer (for
/// the `ref` of the host's own errors). `None`: nothing to carry out — not
/// a data frame, over the message rate, or the call failed; the host has
/// answered those itself. Carrying out is left to the caller, so its
/// future is not nested in this one's (each level of nesting of `async`
/// functions copies their arguments into the connection's batch future).
fn on_message<'m>(
    shared: &Shared,
    id: &str,
    outbox: &Outbox,
    quota: &mut Quota,
    message: &'m Message,
) -> Option<(Vec<crate::policy::Action>, Option<&'m str>)> {
    let (frame, text) = match message {
        Message::Text(text) => (Frame::Text(text.as_str().to_owned()), Some(text.as_str())),
        Message::Binary(bytes) => (Frame::Binary(bytes.to_vec()), None),
        // Pings are answered by tungstenite (through the queue, where a pong
        // replaces the pending one), but each takes from the message bucket:
        // a client that pings faster than it may send is closed with 1008
        // (it asked for no answer a `rate-limited` error could carry). Pongs
        // count too: any frame costs a read.
        Message::Ping(_) | Message::Pong(_) => {
            if quota.messages.take(Instant::now()).is_err() {
                tracing::info!(
                    id,
                    "control frames past the message rate, closing with 1008"
                );
                outbox.close(CloseReason {
                    drain: false,
                    ..CloseReason::with_code(code::POLICY, CONTROL_FLOOD)
                });
            }
            return None;
        }
        // A close ends the stream next.
        Message::Close(_) | Message::Frame(_) => {
            return None;
        }
    };
    on_frame(shared, id, outbox, quota, frame, text).map(|actions| (actions, text))
}

/// Hand one frame to the policy and return its answer, unless the
/// connection is over its message rate: then the host answers
/// `rate-limited` and the policy never sees the frame.
fn on_frame(
    shared: &Shared,
    id: &str,
    outbox: &Outbox,
    quota: &mut Quota,
    frame: Frame,
    text: Option<&str>,
) -> Option<Vec<crate::policy::Action>> {
    let now = Instant::now();
    if let Err(wait) = quota.messages.take(now) {
        shared.registry.counters().limited(Limit::MessagesPerSec);
        let _ = outbox.push(replies::error(
            text,
            replies::code::RATE_LIMITED,
            "too many messages; slow down",
            Some(wait),
        ));
        return None;
    }
    // Presence and history questions take from their own bucket, charged
    // only when the call asks one (policy::queries): other messages pay
    // nothing for it.
    let ready = quota.queries.ready(now);
    let (decided, asked) = queries::gated(ready.is_ok(), || {
        decide::on_message(shared.decider(), id, frame)
    });
    if asked {
        if let Err(wait) = ready {
            shared.registry.counters().limited(Limit::QueriesPerSec);
            let _ = outbox.push(replies::error(
                text,
                replies::code::RATE_LIMITED,
                "too many presence or history queries; slow down",
                Some(wait),
            ));
            return None;
        }
        let _ = quota.queries.take(now);
    }
    match decided {
        Ok(actions) => Some(actions),
        Err(e) => {
            tracing::warn!(id, error = %e, "on-message failed");
            let _ = outbox.push(replies::policy_failed(text, &e));
            None
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
        // The socket ended without a close frame: the client is gone, and
        // may come back.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            CloseReason::peer_gone("connection dropped without a close frame").holding(true)
        }
        WsError::Protocol(p) => CloseReason {
            drain: false,
            ..CloseReason::with_code(1002, actions::cut(format!("protocol error: {p}")))
        },
        // The close handshake completed (tokio-tungstenite ends the stream
        // then; this is in case it reports it instead).
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            CloseReason::peer_gone("connection closed")
        }
        other => CloseReason::peer_gone(other.to_string()).holding(true),
    }
}

/// Where a connection's writer writes.
enum Out<W> {
    /// A plain socket, which the fan-out may also write to (under the
    /// queue's lock).
    Direct(Arc<TcpStream>),
    /// A stream only this task writes (TLS), and the bytes taken from the
    /// queue and not yet written (`pending[at..]`).
    Owned { w: W, pending: Vec<u8>, at: usize },
}

impl<W: AsyncWrite + Unpin> Out<W> {
    /// Write everything queued, waiting for the socket as needed. Safe to
    /// cancel: what is not written stays queued (or pending), in order.
    async fn drain(&mut self, inbox: &mut Inbox) -> io::Result<()> {
        match self {
            Out::Direct(tcp) => loop {
                if inbox.write_now(&**tcp)? {
                    return Ok(());
                }
                tcp.writable().await?;
            },
            Out::Owned { w, pending, at } => loop {
                if *at == pending.len() {
                    // A large batch does not leave its buffer to an idle
                    // connection.
                    *pending = Vec::new();
                    *at = 0;
                    inbox.written();
                    let (raw, frames) = inbox.take_all();
                    if raw.is_empty() && frames.is_empty() {
                        return Ok(());
                    }
                    *pending = raw;
                    for m in &frames {
                        encode::encode(m, pending);
                    }
                }
                while *at < pending.len() {
                    let n = w.write(&pending[*at..]).await?;
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    *at += n;
                }
                w.flush().await?;
            },
        }
    }

    /// Write `bytes` (a whole frame) and nothing queued, unless the stream
    /// is in the middle of a frame (then nothing).
    async fn write_alone(&mut self, mid_frame: bool, bytes: &[u8]) -> io::Result<()> {
        match self {
            Out::Direct(tcp) => {
                if !mid_frame {
                    let _ = tcp.try_write(bytes)?;
                }
                Ok(())
            }
            Out::Owned { w, pending, at } => {
                if *at == pending.len() {
                    w.write_all(bytes).await?;
                    w.flush().await?;
                }
                Ok(())
            }
        }
    }

    /// Shut our side of the stream (TLS: after its close_notify).
    async fn shutdown(&mut self) {
        match self {
            Out::Direct(tcp) => {
                let _ = socket2::SockRef::from(&**tcp).shutdown(std::net::Shutdown::Write);
            }
            Out::Owned { w, .. } => {
                let _ = w.shutdown().await;
            }
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    out: &mut Out<W>,
    inbox: &mut Inbox,
    outbox: &Outbox,
    holdable: bool,
) {
    let result: io::Result<()> = async {
        while inbox.ready().await {
            // Let the tasks that are ready run first: under load they queue
            // more frames here, and all of them go out in one socket write
            // (a write per frame is what costs most in fan-out).
            tokio::task::yield_now().await;
            if outbox.is_closing() {
                // What is queued stays queued: the close drains it if asked.
                break;
            }
            // A write blocked on a slow client must not delay the close;
            // what was not written stays queued for it, in order.
            tokio::select! {
                biased;
                _ = outbox.closed() => return Ok(()),
                r = out.drain(inbox) => r?,
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        outbox.close(CloseReason::peer_gone(format!("write failed: {e}")).holding(holdable));
    }
}

/// Deliver what the close reason asks for, send the close frame, then (when
/// the server is the one closing) shut our side and wait (bounded) for the
/// client to hang up, so the kernel does not reset the connection over
/// unread input and lose the close frame.
async fn finish<R, W>(
    shared: &Shared,
    ws: &mut WebSocketStream<Wire<R>>,
    out: &mut Out<W>,
    outbox: &Outbox,
    mut inbox: Inbox,
    reason: &CloseReason,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin,
{
    let limit = shared.limits.close_timeout;
    inbox.seal();
    let _ = timeout(limit, async {
        // What the close keeps (all of the queue if it drains, else only a
        // frame partly written), and tungstenite's reply to a client's
        // close.
        out.drain(&mut inbox).await?;
        if let Some(code) = reason.code {
            outbox.push_raw(&encode::close_frame(code, &reason.reason));
            out.drain(&mut inbox).await?;
        }
        io::Result::Ok(())
    })
    .await;
    if reason.code.is_none() {
        // The client ended it (a close frame, or the socket closed): it
        // sends nothing more, so nothing unread can turn our close into a
        // reset. Closing now, right after the close reply, also leaves
        // TIME_WAIT with the server, as RFC 6455 (7.1.1) asks.
        return;
    }
    let _ = timeout(limit.min(Duration::from_secs(2)), async {
        out.shutdown().await;
        let mut sink = [0u8; 1024];
        let read = ws.get_mut().read_half();
        while matches!(read.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use tokio::net::TcpStream;
    use tokio_tungstenite::WebSocketStream;

    use crate::net::wire::{TcpRead, Wire};

    fn size4<A, B, C, D, F: Future>(_: impl Fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    fn size7<A, B, C, D, E, G, H, F: Future>(_: impl Fn(A, B, C, D, E, G, H) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A connection's task holds `run`'s future for its whole life; most of
    /// that life is spent in `pump`, with the stream and the writer's half
    /// beside it. The states around it (upgrade, policy calls, close) are
    /// boxed, so `run` must weigh little more than those. Sizes print with
    /// `--nocapture` (bench/RESULTS.md quotes them).
    #[test]
    fn an_idle_connection_carries_only_pump() {
        type Ws = WebSocketStream<Wire<TcpRead>>;
        let run = size4(super::run::<TcpStream>);
        let pump = size7(super::pump::<TcpRead, tokio::io::Sink>);
        let ws = std::mem::size_of::<Ws>();
        let out = std::mem::size_of::<super::Out<tokio::io::Sink>>();
        eprintln!(
            "run {run} pump {pump} read_loop {} write_loop {} WebSocketStream {ws} Out {out}",
            size7(super::read_loop::<TcpRead>),
            size4(super::write_loop::<tokio::io::Sink>),
        );
        assert!(
            run <= pump + ws + out + 400,
            "run {run} bytes vs pump {pump}"
        );
    }
}
