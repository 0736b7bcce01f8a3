//! Opening client connections (source address, TLS, upgrade, welcome) and the
//! one task per open connection that reads, answers and writes for a scenario.
//!
//! Everything runs on one thread (a current-thread runtime inside a
//! `LocalSet`), so shared counters are plain `Cell`s.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::proto::{Kind, Protocol};

/// Nanoseconds since the load generator started (one clock for sending and
/// receiving, so a timestamp in a message is comparable on arrival).
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A plain or TLS client stream.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An open WebSocket client connection.
pub type Ws = WebSocketStream<Stream>;

/// Where and how to connect.
pub struct Target {
    /// The server's addresses (a cluster's nodes): `open_many` spreads its
    /// connections over them round robin; `open` uses the first.
    pub addrs: Vec<SocketAddr>,
    /// The wire protocol.
    pub proto: Protocol,
    /// Some for wss://.
    pub tls: Option<tokio_rustls::TlsConnector>,
    /// Source addresses, used round robin (each has its own ~28k ephemeral ports).
    src_ips: Vec<IpAddr>,
    /// Next source address.
    next_src: Cell<usize>,
    /// WebSocket settings of every client connection (small read buffer).
    ws_config: WebSocketConfig,
    /// Limit on one connection's TCP connect + TLS + upgrade + welcome.
    pub timeout: Duration,
}

impl Target {
    /// A target at `addrs` (at least one) reached from `src_ips` source
    /// addresses 127.0.0.2, 127.0.0.3, … (0: let the kernel choose).
    pub fn new(addrs: Vec<SocketAddr>, proto: Protocol, tls: bool, src_ips: u8) -> Result<Target> {
        anyhow::ensure!(!addrs.is_empty(), "no server address");
        let src_ips = (0..src_ips)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i)))
            .collect();
        Ok(Target {
            addrs,
            proto,
            tls: if tls {
                Some(crate::tls::connector()?)
            } else {
                None
            },
            src_ips,
            next_src: Cell::new(0),
            ws_config: WebSocketConfig::default()
                .read_buffer_size(4096)
                .max_message_size(Some(1 << 20)),
            timeout: Duration::from_secs(15),
        })
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "wss" } else { "ws" }
    }

    /// Connect as `id` to the first address and wait for the welcome.
    pub async fn open(&self, id: &str) -> Result<Ws> {
        self.open_at(0, id).await
    }

    /// Connect as `id` to address `i` mod N and wait for the welcome.
    async fn open_at(&self, i: usize, id: &str) -> Result<Ws> {
        let addr = self.addrs[i % self.addrs.len()];
        Ok(self.open_to(addr, &self.proto.path(id)).await?.0)
    }

    /// Connect to `path` (and query) and wait for the welcome; returns it
    /// too (protocol v2's carries the session).
    pub async fn open_path(&self, path: &str) -> Result<(Ws, String)> {
        self.open_to(self.addrs[0], path).await
    }

    async fn open_to(&self, addr: SocketAddr, path: &str) -> Result<(Ws, String)> {
        tokio::time::timeout(self.timeout, self.open_inner(addr, path))
            .await
            .map_err(|_| anyhow!("timed out connecting to {addr}{path}"))?
    }

    async fn open_inner(&self, addr: SocketAddr, path: &str) -> Result<(Ws, String)> {
        let sock = TcpSocket::new_v4()?;
        // RST on close: no TIME_WAIT on the client side, so the ports of one
        // scenario are free for the next one.
        socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO))?;
        if !self.src_ips.is_empty() {
            let i = self.next_src.get();
            self.next_src.set((i + 1) % self.src_ips.len());
            sock.bind(SocketAddr::new(self.src_ips[i], 0))
                .with_context(|| format!("bind {}", self.src_ips[i]))?;
        }
        let tcp = sock.connect(addr).await.context("connect")?;
        tcp.set_nodelay(true)?;
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(c) => {
                let name = rustls_pki_types::ServerName::try_from("localhost")?;
                Stream::Tls(Box::new(
                    c.connect(name, tcp).await.context("TLS handshake")?,
                ))
            }
        };
        let url = format!("{}://{}{}", self.scheme(), addr, path);
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(self.ws_config))
                .await
                .context("WebSocket upgrade")?;
        // Wait for the welcome (Socket.IO: join the namespace first).
        loop {
            let msg = ws
                .next()
                .await
                .ok_or_else(|| anyhow!("closed before welcome"))??;
            let Message::Text(text) = msg else {
                if let Message::Close(f) = msg {
                    bail!("closed before welcome: {f:?}");
                }
                continue;
            };
            match self.proto.classify(&text) {
                Kind::Welcome => return Ok((ws, text.to_string())),
                Kind::EioOpen => ws.send(Message::text("40")).await?,
                Kind::EioPing => ws.send(Message::text("3")).await?,
                Kind::SioRefused => bail!("Socket.IO refused the connection: {text}"),
                Kind::Error { code } => bail!("error before welcome: {code}"),
                _ => {}
            }
        }
    }

    /// Open one connection per id (the i-th to address i mod N),
    /// `concurrency` at a time, handing each to
    /// `on_open(index, ws)` as soon as it is up (so its task answers the
    /// server from then on); the results in the order of `ids`.
    pub async fn open_many<T>(
        &self,
        ids: &[String],
        concurrency: usize,
        mut on_open: impl FnMut(usize, Ws) -> T,
    ) -> Result<Vec<T>> {
        let mut pending = futures_util::stream::iter(ids.iter().enumerate())
            .map(|(i, id)| async move { (i, self.open_at(i, id).await) })
            .buffer_unordered(concurrency.max(1));
        let mut out: Vec<Option<T>> = (0..ids.len()).map(|_| None).collect();
        let mut failed = 0;
        let mut first = None;
        while let Some((i, r)) = pending.next().await {
            match r {
                Ok(ws) => out[i] = Some(on_open(i, ws)),
                Err(e) => {
                    failed += 1;
                    first.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first {
            return Err(e.context(format!("{failed} of {} connections failed", ids.len())));
        }
        Ok(out.into_iter().flatten().collect())
    }
}

/// Counters and the latency histogram every connection task updates.
pub struct Shared {
    /// The wire protocol (to classify and answer frames).
    pub proto: Protocol,
    /// Padding for echoed notices.
    pub pad: String,
    /// `joined` frames received.
    pub joined: Cell<u64>,
    /// Room messages received.
    pub deliveries: Cell<u64>,
    /// Echoed notices received by initiators (completed round trips).
    pub round_trips: Cell<u64>,
    /// Acks received.
    pub acks: Cell<u64>,
    /// Error frames received.
    pub errors: Cell<u64>,
    /// Connections that ended (closed by the server or failed).
    pub closed: Cell<u64>,
    /// The first error or close seen, for the report.
    pub first_problem: RefCell<Option<String>>,
    /// Latencies (ns) of messages whose intended send time lies in `window`.
    pub hist: RefCell<Histogram<u64>>,
    /// Record only timestamps in [lo, hi).
    pub window: Cell<(u64, u64)>,
    /// Latencies recorded.
    pub recorded: Cell<u64>,
    /// Woken on every delivery / round trip (flow control, waiting for setup).
    pub progress: Notify,
}

impl Shared {
    /// Fresh counters.
    pub fn new(proto: Protocol, pad: String) -> Rc<Shared> {
        Rc::new(Shared {
            proto,
            pad,
            joined: Cell::new(0),
            deliveries: Cell::new(0),
            round_trips: Cell::new(0),
            acks: Cell::new(0),
            errors: Cell::new(0),
            closed: Cell::new(0),
            first_problem: RefCell::new(None),
            hist: RefCell::new(
                Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("histogram bounds"),
            ),
            window: Cell::new((0, 0)),
            recorded: Cell::new(0),
            progress: Notify::new(),
        })
    }

    fn problem(&self, what: String) {
        let mut p = self.first_problem.borrow_mut();
        if p.is_none() {
            *p = Some(what);
        }
    }

    fn record(&self, t: Option<u64>) {
        let Some(t) = t else { return };
        let (lo, hi) = self.window.get();
        if t >= lo && t < hi {
            let now = now_ns();
            let _ = self.hist.borrow_mut().record(now.saturating_sub(t).max(1));
            self.recorded.set(self.recorded.get() + 1);
        }
    }

    /// Start recording latencies of messages intended for [lo, hi).
    pub fn record_window(&self, lo: u64, hi: u64) {
        self.hist.borrow_mut().reset();
        self.recorded.set(0);
        self.window.set((lo, hi));
    }

    /// Wait until `done()` or `timeout`; false on timeout.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&Shared) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(self) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::select! {
                _ = self.progress.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        true
    }
}

/// What a connection does with what it receives.
#[derive(Clone)]
pub enum Role {
    /// Stays connected; answers Engine.IO pings.
    Idle,
    /// A room member: counts joins, acks, deliveries; records latency.
    Member,
    /// Sends notices; records the round trip when the echo comes back.
    Initiator,
    /// Echoes every notice back to `partner`.
    Echoer { partner: Rc<str> },
}

/// Run `ws` in its own task with `role`. Frames sent into the returned
/// sender are written (batched: feed all queued, one flush). Dropping the
/// sender ends the task and the connection.
pub fn spawn_conn(mut ws: Ws, role: Role, shared: Rc<Shared>) -> mpsc::UnboundedSender<String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::task::spawn_local(async move {
        let proto = shared.proto;
        loop {
            tokio::select! {
                biased;
                out = rx.recv() => {
                    let Some(first) = out else { break };
                    let mut res = ws.feed(Message::text(first)).await;
                    while res.is_ok() {
                        match rx.try_recv() {
                            Ok(more) => res = ws.feed(Message::text(more)).await,
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = res.and(ws.flush().await) {
                        shared.problem(format!("write: {e}"));
                        shared.closed.set(shared.closed.get() + 1);
                        break;
                    }
                }
                msg = ws.next() => {
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(f))) => {
                            shared.problem(format!("closed by server: {f:?}"));
                            shared.closed.set(shared.closed.get() + 1);
                            break;
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => {
                            shared.problem(format!("read: {e}"));
                            shared.closed.set(shared.closed.get() + 1);
                            break;
                        }
                        None => {
                            shared.problem("connection ended".into());
                            shared.closed.set(shared.closed.get() + 1);
                            break;
                        }
                    };
                    let answer = match proto.classify(&text) {
                        Kind::Room(t) => {
                            shared.deliveries.set(shared.deliveries.get() + 1);
                            shared.record(t);
                            shared.progress.notify_one();
                            None
                        }
                        Kind::Notice(t) => match &role {
                            Role::Echoer { partner } => {
                                let d = crate::proto::data(t.unwrap_or(0), &shared.pad);
                                Some(proto.notice(partner, &d))
                            }
                            _ => {
                                shared.round_trips.set(shared.round_trips.get() + 1);
                                shared.record(t);
                                shared.progress.notify_one();
                                None
                            }
                        },
                        Kind::Joined => {
                            shared.joined.set(shared.joined.get() + 1);
                            shared.progress.notify_one();
                            None
                        }
                        Kind::Ack(_) => {
                            shared.acks.set(shared.acks.get() + 1);
                            shared.progress.notify_one();
                            None
                        }
                        Kind::Error { code } => {
                            shared.errors.set(shared.errors.get() + 1);
                            shared.problem(format!("error frame: {code}"));
                            shared.progress.notify_one();
                            None
                        }
                        Kind::EioPing => Some("3".to_string()),
                        Kind::SioRefused => {
                            shared.problem(format!("Socket.IO disconnected us: {text}"));
                            None
                        }
                        _ => None,
                    };
                    if let Some(a) = answer
                        && let Err(e) = ws.send(Message::text(a)).await
                    {
                        shared.problem(format!("write: {e}"));
                        shared.closed.set(shared.closed.get() + 1);
                        break;
                    }
                }
            }
        }
    });
    tx
}
