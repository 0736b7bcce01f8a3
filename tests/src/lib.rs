//! Test harness: a real server on 127.0.0.1 port 0 (in-process, through the
//! library's `Server`), real WebSocket clients over TCP or TLS, certificates
//! generated per test, and the test guests built by build.rs.
//!
//! Every wait is bounded by [`WAIT`] so a broken server fails a test instead
//! of hanging it; nothing sleeps to synchronise.

pub mod cluster;
pub mod metrics;
pub mod proxy;
pub mod redis;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use switchboard::chat::registry::Registry;
use switchboard::config::{Config, PolicySource, TlsFiles};
use switchboard::net::server::Server;
use switchboard::ops::AdminClient;
use switchboard::policy::Policy;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Longest any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// The misbehaving test policy (see tests/guests/misbehave).
pub fn misbehave_wasm() -> PathBuf {
    PathBuf::from(env!("MISBEHAVE_WASM"))
}

/// A policy built against the frozen world 0.1.0 (see tests/guests/v010-echo).
pub fn v010_wasm() -> PathBuf {
    PathBuf::from(env!("V010_ECHO_WASM"))
}

/// An admin answer's body as JSON.
fn admin_json(body: &str) -> Result<Value> {
    serde_json::from_str(body).with_context(|| format!("not JSON: {body}"))
}

/// A config for tests: defaults, listening on 127.0.0.1 port 0.
pub fn config() -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        // Tests that need the admin interface ask for one on port 0.
        admin: None,
        ..Config::default()
    }
}

/// `config` with a client's message and broadcast rates unlimited, for
/// tests that send bursts far above the default allowance (50 frames a
/// second, 1 broadcast a second) to test something else.
pub fn without_rate_limits(mut config: Config) -> Config {
    config.limits.messages_per_sec = 0;
    config.limits.broadcasts_per_sec = 0;
    config
}

/// [`config`] with a policy call deadline of [`WAIT`] instead of 10 ms. The
/// deadline is wall-clock time and covers instantiation too, so on a loaded
/// machine a thread descheduled for a few milliseconds turns an ordinary call
/// into `policy-failed` (or an HTTP 500 at the handshake, or a server that
/// fails to start). Tests that are not about deadlines use this.
pub fn tolerant_config() -> Config {
    let mut c = config();
    c.policy_limits.call_deadline = WAIT;
    c
}

/// `config` with an admin interface on 127.0.0.1 port 0 that wants `token`.
pub fn with_admin(mut config: Config, token: &str) -> Config {
    config.admin = Some(switchboard::config::AdminConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        token: Some(token.into()),
        ..switchboard::config::AdminConfig::default()
    });
    config
}

/// A config running the misbehaving test policy.
pub fn misbehave_config() -> Config {
    Config {
        policy: PolicySource::File(misbehave_wasm()),
        ..config()
    }
}

/// How many nodes a [`TestServer`] runs as: `SWITCHBOARD_TEST_NODES`
/// (1 when unset). With more than one, a server started without a
/// cluster of its own is that many nodes in this process on a
/// `redis-server` of its own, and its clients are spread across them
/// (`make test` runs the protocol, recovery and resume suites so).
pub fn test_nodes() -> usize {
    std::env::var("SWITCHBOARD_TEST_NODES")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// Every node's registry: who is online and in which room, across the
/// nodes (one node: its registry). Anything else is asked of the first.
#[derive(Debug, Clone)]
pub struct Registries(Vec<Registry>);

impl std::ops::Deref for Registries {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        &self.0[0]
    }
}

impl Registries {
    /// Whether `id` is online on some node.
    pub fn is_online(&self, id: &str) -> bool {
        self.0.iter().any(|r| r.is_online(id))
    }

    /// Whether `id` is in `room` on some node.
    pub fn in_room(&self, id: &str, room: &str) -> bool {
        self.0.iter().any(|r| r.in_room(id, room))
    }

    /// Members of `room`, every node's.
    pub fn room_size(&self, room: &str) -> usize {
        self.0.iter().map(|r| r.room_size(room)).sum()
    }

    /// The members of `room`, every node's.
    pub fn room_members(&self, room: &str) -> Vec<String> {
        let mut all: Vec<String> = self.0.iter().flat_map(|r| r.room_members(room)).collect();
        all.sort();
        all
    }

    /// The rooms of `id` on the node that has it.
    pub fn rooms_of(&self, id: &str) -> Vec<String> {
        self.0
            .iter()
            .map(|r| r.rooms_of(id))
            .find(|rooms| !rooms.is_empty())
            .unwrap_or_default()
    }

    /// Ids online, every node's.
    pub fn online_count(&self) -> usize {
        self.0.iter().map(Registry::online_count).sum()
    }
}

/// Every node's held ids.
#[derive(Debug, Clone)]
pub struct AllHolds(Vec<switchboard::net::server::Holds>);

impl AllHolds {
    /// Whether `id` is held on some node.
    pub fn is_held(&self, id: &str) -> bool {
        self.0.iter().any(|h| h.is_held(id))
    }

    /// Ids held, every node's.
    pub fn count(&self) -> usize {
        self.0.iter().map(|h| h.count()).sum()
    }
}

/// A server running in this process (or, with [`test_nodes`] above one,
/// a cluster of them).
pub struct TestServer {
    /// Where it listens (the first node).
    pub addr: SocketAddr,
    /// The registries, to check who is online.
    pub registry: Registries,
    /// The policy runtime (status, swaps, rollbacks without HTTP).
    pub policy: Policy,
    /// Where the admin interface listens, when the config asked for one.
    pub admin_addr: Option<SocketAddr>,
    /// Where `/metrics` is served without a token, when the config asked
    /// for it (`metrics_listen`).
    pub metrics_addr: Option<SocketAddr>,
    /// Which ids are held for a resume.
    pub holds: AllHolds,
    /// The policy file's reloader (what SIGHUP calls), when the policy is
    /// a file.
    pub reloader: Option<Arc<switchboard::ops::reload::Reloader>>,
    /// Present when the server speaks wss.
    tls: Option<Arc<TestCert>>,
    /// The wss certificate and key the server presents (what SIGHUP reads
    /// again), when it speaks wss.
    pub certificates: Option<Arc<switchboard::net::tls::Certificates>>,
    /// Every node's address; connections take them in turn.
    addrs: Vec<SocketAddr>,
    next: std::sync::atomic::AtomicUsize,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
    /// The cluster's own Redis (killed last).
    redis: Option<redis::RedisServer>,
}

impl TestServer {
    /// Start a server with `config` (listen address forced to 127.0.0.1:0).
    pub async fn start(config: Config) -> Result<TestServer> {
        debug_log();
        Self::start_inner(config, None, None).await
    }

    /// Start a server with `config` that keeps what outlives a connection
    /// in `stores` (instead of the embedded in-memory stores).
    pub async fn start_with(
        config: Config,
        stores: switchboard::net::server::Stores,
    ) -> Result<TestServer> {
        debug_log();
        Self::start_inner(config, None, Some(stores)).await
    }

    /// Start a wss:// server with a certificate generated for this test.
    pub async fn start_tls(mut config: Config) -> Result<TestServer> {
        let cert = Arc::new(TestCert::generate()?);
        config.tls = Some(cert.files());
        Self::start_inner(config, Some(cert), None).await
    }

    async fn start_inner(
        mut config: Config,
        tls: Option<Arc<TestCert>>,
        stores: Option<switchboard::net::server::Stores>,
    ) -> Result<TestServer> {
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let nodes = test_nodes();
        if nodes > 1 && stores.is_none() && config.cluster.is_none() {
            return Self::start_nodes(config, tls, nodes).await;
        }
        // Memory, or Redis for a config with `[cluster]`.
        let stores = match stores {
            Some(stores) => stores,
            None => switchboard::net::server::Stores::cluster(&config)?,
        };
        let server = Server::bind_with(config, stores)
            .await
            .context("server failed to start")?;
        Ok(Self::serving(vec![server], tls, None))
    }

    /// `nodes` nodes with `config` on a Redis of their own; the first
    /// one's policy, admin interface and reloader are the server's.
    async fn start_nodes(
        config: Config,
        tls: Option<Arc<TestCert>>,
        nodes: usize,
    ) -> Result<TestServer> {
        let redis = redis::RedisServer::start()?;
        let url = switchboard::config::cluster::RedisUrl::parse(&redis.url())
            .map_err(anyhow::Error::msg)?;
        let mut servers = Vec::new();
        for n in 0..nodes {
            let mut c = config.clone();
            c.cluster = Some(switchboard::config::cluster::ClusterConfig::new(
                url.clone(),
            ));
            c.node_id = switchboard::config::node::NodeId::parse(&format!("node{n}"))
                .map_err(anyhow::Error::msg)?;
            if let Some(admin) = c.admin.as_mut() {
                // Each its own (the first one's is the server's).
                admin.listen = SocketAddr::from(([127, 0, 0, 1], 0));
            }
            let stores = switchboard::net::server::Stores::cluster(&c)?;
            servers.push(
                Server::bind_with(c, stores)
                    .await
                    .with_context(|| format!("node {n} failed to start"))?,
            );
        }
        Ok(Self::serving(servers, tls, Some(redis)))
    }

    /// Run `servers` (one, or a cluster's nodes) until the test server is
    /// shut down or dropped; the first one's policy, admin interface,
    /// reloader and certificates are the test server's.
    fn serving(
        servers: Vec<Server>,
        tls: Option<Arc<TestCert>>,
        redis: Option<redis::RedisServer>,
    ) -> TestServer {
        let addrs: Vec<SocketAddr> = servers.iter().map(Server::local_addr).collect();
        let registry = Registries(servers.iter().map(Server::registry).collect());
        let holds = AllHolds(servers.iter().map(Server::holds).collect());
        let first = &servers[0];
        let (policy, admin_addr) = (first.policy(), first.admin_addr());
        let metrics_addr = first.metrics_addr();
        let (reloader, certificates) = (first.reloader(), first.certificates());
        let (mut stops, mut tasks) = (Vec::new(), Vec::new());
        for server in servers {
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            tasks.push(tokio::spawn(server.run(async {
                let _ = stopped.await;
            })));
        }
        TestServer {
            addr: addrs[0],
            registry,
            policy,
            admin_addr,
            metrics_addr,
            holds,
            reloader,
            tls,
            certificates,
            addrs,
            next: Default::default(),
            stops,
            tasks,
            redis,
        }
    }

    /// The address the next connection goes to: the nodes in turn.
    fn next_addr(&self) -> SocketAddr {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.addrs[n % self.addrs.len()]
    }

    /// A client of this server's admin interface presenting `token`.
    pub fn admin(&self, token: Option<&str>) -> Result<AdminClient> {
        let addr = self
            .admin_addr
            .context("this server runs no admin interface (config.admin is None)")?;
        Ok(AdminClient::new(
            &format!("http://{addr}"),
            token.map(str::to_owned),
        ))
    }

    /// Connect as `id` and read the welcome: the client and its session
    /// (for a resume).
    pub async fn connect_with_session(&self, id: &str) -> Result<(Client, String)> {
        let mut c = self.connect(id).await?;
        let welcome = c.recv_v2().await?;
        if welcome["type"] != "welcome" {
            bail!("not a welcome: {welcome}");
        }
        let session = welcome["session"].as_str().context("no session")?;
        Ok((c, session.to_owned()))
    }

    /// `GET /admin/policy` presenting `token`, which must answer 200: its
    /// JSON.
    pub async fn policy_status(&self, token: &str) -> Result<Value> {
        let (code, body) = self
            .admin(Some(token))?
            .status()
            .await
            .map_err(anyhow::Error::msg)?;
        if code != 200 {
            bail!("status answered {code}: {body}");
        }
        admin_json(&body)
    }

    /// `PUT /admin/policy?source=<name>` with `bytes`, presenting `token`:
    /// the HTTP status and the JSON answer.
    pub async fn policy_swap(
        &self,
        token: &str,
        bytes: Vec<u8>,
        name: &str,
    ) -> Result<(u16, Value)> {
        let (code, body) = self
            .admin(Some(token))?
            .swap(bytes, name)
            .await
            .map_err(anyhow::Error::msg)?;
        Ok((code, admin_json(&body)?))
    }

    /// `POST /admin/policy/rollback` presenting `token`: the HTTP status
    /// and the JSON answer.
    pub async fn policy_rollback(&self, token: &str) -> Result<(u16, Value)> {
        let (code, body) = self
            .admin(Some(token))?
            .rollback()
            .await
            .map_err(anyhow::Error::msg)?;
        Ok((code, admin_json(&body)?))
    }

    /// `ws://` or `wss://` URL for `path` (e.g. `/ws/alice`).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://localhost:{}{path}", self.addr.port())
    }

    /// Connect to `/ws/<id>` and return the client (welcome not yet read).
    pub async fn connect(&self, id: &str) -> Result<Client> {
        self.connect_path(&format!("/ws/{id}")).await
    }

    /// Connect to `/ws/<id>` and read the welcome frame.
    pub async fn join(&self, id: &str) -> Result<Client> {
        let mut c = self.connect(id).await?;
        let welcome = c.recv_json().await?;
        if welcome["type"] != "welcome" || welcome["id"] != id {
            bail!("expected welcome for {id}, got {welcome}");
        }
        Ok(c)
    }

    /// Wait (up to [`WAIT`]) until `id` is held for a resume: the server
    /// has seen its connection end abnormally.
    pub async fn until_held(&self, id: &str) -> Result<()> {
        let start = std::time::Instant::now();
        while !self.holds.is_held(id) {
            if start.elapsed() > WAIT {
                bail!("{id} not held within {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// Connect to an arbitrary path.
    pub async fn connect_path(&self, path: &str) -> Result<Client> {
        let tcp = TcpStream::connect(self.next_addr()).await?;
        self.handshake(tcp, path).await
    }

    /// The certificate a wss server was started with (its files).
    pub fn tls_cert(&self) -> Option<Arc<TestCert>> {
        self.tls.clone()
    }

    /// Connect to `path` over wss, trusting only `cert` (not necessarily
    /// the one the server started with).
    pub async fn connect_trusting(&self, cert: &TestCert, path: &str) -> Result<Client> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let io: Box<dyn Io> = Box::new(tokio::time::timeout(WAIT, cert.connect(tcp)).await??);
        let (ws, _) =
            tokio::time::timeout(WAIT, tokio_tungstenite::client_async(self.url(path), io))
                .await
                .map_err(|_| anyhow!("handshake timed out"))??;
        Ok(Client { ws })
    }

    /// Complete a WebSocket handshake over an already connected socket.
    pub async fn handshake(&self, tcp: TcpStream, path: &str) -> Result<Client> {
        tcp.set_nodelay(true)?;
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(cert) => Box::new(cert.connect(tcp).await?),
        };
        let config = WebSocketConfig::default().max_message_size(Some(64 << 20));
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async_with_config(self.url(path), io, Some(config)),
        )
        .await
        .map_err(|_| anyhow!("handshake timed out"))??;
        Ok(Client { ws })
    }

    /// Send a valid WebSocket upgrade request for `target` over a raw TCP
    /// socket and read the whole answer (a refusal closes the connection).
    /// Checks that Content-Length matches the body.
    pub async fn raw_upgrade(&self, target: &str) -> Result<HttpResponse> {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        self.raw_request(&request).await
    }

    /// A plain `method` request (no upgrade) for `target`, as a browser
    /// sends it, and its whole answer (the server closes after it).
    pub async fn raw_plain(&self, method: &str, target: &str) -> Result<HttpResponse> {
        self.raw_request(&format!(
            "{method} {target} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n"
        ))
        .await
    }

    /// Send `request` over a raw TCP socket and read the whole answer.
    /// Checks that Content-Length matches the body (unless `HEAD`).
    pub async fn raw_request(&self, request: &str) -> Result<HttpResponse> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = TcpStream::connect(self.addr).await?;
        tcp.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw))
            .await
            .context("response not finished in time")??;
        let text = String::from_utf8(raw).context("answer is not UTF-8")?;
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            bail!("no complete HTTP head in {text:?}");
        };
        let status = http_status(head)?;
        let length = content_length(head)?;
        if length != body.len() && !request.starts_with("HEAD ") {
            bail!("Content-Length {length} but a body of {} bytes", body.len());
        }
        Ok(HttpResponse {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        })
    }

    /// The HTTP status a WebSocket client sees when the handshake for `path`
    /// is refused (fails if it is accepted or fails another way).
    pub async fn refused_status(&self, path: &str) -> Result<u16> {
        use tokio_tungstenite::tungstenite::Error;
        let Err(e) = self.connect_path(path).await else {
            bail!("{path}: the handshake succeeded");
        };
        match e.downcast_ref::<Error>() {
            Some(Error::Http(response)) => Ok(response.status().as_u16()),
            _ => bail!("{path}: expected an HTTP error, got {e:#}"),
        }
    }

    /// Wait (bounded by `within`) until the server has stopped by itself,
    /// as it does at the end of a drain.
    pub async fn stopped(mut self, within: Duration) -> Result<()> {
        for task in self.tasks.drain(..) {
            tokio::time::timeout(within, task)
                .await
                .map_err(|_| anyhow!("the server did not stop within {within:?}"))??;
        }
        Ok(())
    }

    /// `POST /admin/drain?secs=<secs>` presenting `token`: the HTTP status
    /// and the JSON answer.
    pub async fn drain(&self, token: &str, secs: u64) -> Result<(u16, Value)> {
        let (code, body) = self
            .admin(Some(token))?
            .request(
                switchboard::ops::Method::Post,
                &format!("/admin/drain?secs={secs}"),
            )
            .await
            .map_err(anyhow::Error::msg)?;
        Ok((code, admin_json(&body)?))
    }

    /// Stop the server gracefully and wait until it has stopped.
    pub async fn shutdown(mut self) -> Result<()> {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            tokio::time::timeout(WAIT * 2, task)
                .await
                .map_err(|_| anyhow!("server did not stop"))??;
        }
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        // After the nodes: a Redis killed under them is a fault, not an
        // end.
        self.redis.take();
    }
}

/// An HTTP response, read raw.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Status line and headers.
    pub head: String,
    /// Body.
    pub body: String,
}

/// Any byte stream a client can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A WebSocket client.
pub struct Client {
    /// The socket, for tests that need raw access.
    pub ws: WebSocketStream<Box<dyn Io>>,
}

/// What ended a connection, as seen by the client.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed {
    /// Close code, if a close frame arrived.
    pub code: Option<u16>,
    /// Close reason.
    pub reason: String,
}

impl Client {
    /// Send a JSON value as a text frame.
    pub async fn send_json(&mut self, v: Value) -> Result<()> {
        self.send_text(&v.to_string()).await
    }

    /// Send a text frame.
    pub async fn send_text(&mut self, s: &str) -> Result<()> {
        Ok(self.ws.send(Message::text(s)).await?)
    }

    /// Send a binary frame.
    pub async fn send_binary(&mut self, b: Vec<u8>) -> Result<()> {
        Ok(self.ws.send(Message::binary(b)).await?)
    }

    /// The next data frame (text or binary), skipping pings and pongs.
    pub async fn recv(&mut self) -> Result<Message> {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .map_err(|_| anyhow!("no frame within {WAIT:?}"))?;
            match next {
                None => bail!("connection ended"),
                Some(Err(e)) => bail!("read failed: {e}"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => return Ok(m),
            }
        }
    }

    /// The next text frame.
    pub async fn recv_text(&mut self) -> Result<String> {
        match self.recv().await? {
            Message::Text(t) => Ok(t.to_string()),
            other => bail!("expected a text frame, got {other:?}"),
        }
    }

    /// The next text frame, parsed as JSON, as a protocol v1 client sees
    /// it: without the fields protocol v2 adds to v1's frames (see
    /// [`v1_view`]). Tests of v2 read frames whole with [`Client::recv_v2`].
    pub async fn recv_json(&mut self) -> Result<Value> {
        Ok(v1_view(self.recv_v2().await?))
    }

    /// The next text frame, parsed as JSON, whole.
    pub async fn recv_v2(&mut self) -> Result<Value> {
        let text = self.recv_text().await?;
        serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))
    }

    /// Read until the connection closes; return the close frame, skipping
    /// any data frames still queued before it.
    pub async fn closed(&mut self) -> Result<Closed> {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .map_err(|_| anyhow!("not closed within {WAIT:?}"))?;
            match next {
                Some(Ok(Message::Close(frame))) => {
                    return Ok(Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    });
                }
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => {
                    return Ok(Closed {
                        code: None,
                        reason: String::new(),
                    });
                }
            }
        }
    }

    /// Every frame queued to this client so far: sends a `ping` with a fresh
    /// `ref` and returns the frames that arrive before that ping's `pong` and
    /// `ack` (which must come last, in that order). Everything the server
    /// queued to this client before it handled the ping is in the result, so
    /// once other clients' requests have been acked this is exactly what
    /// they caused here.
    pub async fn drain(&mut self) -> Result<Vec<Value>> {
        Ok(self.drain_v2().await?.into_iter().map(v1_view).collect())
    }

    /// [`Client::drain`], the frames whole (protocol v2's fields kept).
    pub async fn drain_v2(&mut self) -> Result<Vec<Value>> {
        let r = format!(
            "drain-{}",
            NEXT_REF.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let ack = serde_json::json!({"type": "ack", "ref": r});
        self.send_json(serde_json::json!({"type": "ping", "ref": r}))
            .await?;
        let mut frames = Vec::new();
        loop {
            let v = self.recv_v2().await?;
            if v == ack {
                break;
            }
            frames.push(v);
        }
        match frames.pop() {
            Some(v) if v == serde_json::json!({"type": "pong"}) => Ok(frames),
            other => bail!("expected the pong of ping {r} right before its ack, got {other:?}"),
        }
    }

    pub async fn expect_idle(&mut self) -> Result<()> {
        let frames = self.drain().await?;
        if !frames.is_empty() {
            bail!("expected nothing queued, got {frames:?}");
        }
        Ok(())
    }

    /// Join `room` as `id` with `ref` `r`: reads this client's own
    /// `joined`, then the ack (fails on anything else).
    pub async fn join_room(&mut self, id: &str, room: &str, r: impl Into<Value>) -> Result<()> {
        let r = r.into();
        self.send_json(serde_json::json!({"type": "join", "room": room, "ref": r}))
            .await?;
        let joined = serde_json::json!({"type": "joined", "room": room, "id": id});
        let got = self.recv_json().await?;
        if got != joined {
            bail!("expected {joined}, got {got}");
        }
        let ack = serde_json::json!({"type": "ack", "ref": r});
        let got = self.recv_json().await?;
        if got != ack {
            bail!("expected {ack}, got {got}");
        }
        Ok(())
    }

    /// Close from the client side and wait for the server's answer.
    pub async fn close(mut self) -> Result<()> {
        self.ws.close(None).await?;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
        Ok(())
    }
}

/// A self-signed certificate for `localhost`, written to a temp directory.
pub struct TestCert {
    dir: PathBuf,
    cert_der: rustls_pki_types::CertificateDer<'static>,
}

impl TestCert {
    /// Generate a fresh certificate and key.
    pub fn generate() -> Result<TestCert> {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
        let dir = std::env::temp_dir().join(format!(
            "switchboard-test-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("cert.pem"), key.cert.pem())?;
        std::fs::write(dir.join("key.pem"), key.signing_key.serialize_pem())?;
        Ok(TestCert {
            dir,
            cert_der: key.cert.der().clone(),
        })
    }

    /// The PEM files, for the server's config.
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.dir.join("cert.pem"),
            key: self.dir.join("key.pem"),
        }
    }

    /// A TLS client session over `tcp` that trusts only this certificate.
    pub async fn connect(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert_der.clone())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls_pki_types::ServerName::try_from("localhost")?;
        Ok(connector.connect(name, tcp).await?)
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static NEXT_REF: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static NEXT_DIR: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The `switchboard` binary: `$SWITCHBOARD_BIN`, or the one `cargo build -p
/// switchboard` (which `make test` runs first) puts next to the test binaries.
pub fn switchboard_bin() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("SWITCHBOARD_BIN") {
        return Ok(PathBuf::from(path));
    }
    // target/<profile>/deps/<test>-<hash> → target/<profile>/switchboard
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(format!("switchboard{}", std::env::consts::EXE_SUFFIX)))
        .context("no directory above the test binary")?;
    if !path.is_file() {
        bail!(
            "{} not found: run `cargo build -p switchboard` first (as `make test` does) \
             or set SWITCHBOARD_BIN",
            path.display()
        );
    }
    Ok(path)
}

/// A spawned process's stderr, line by line, and its exit, each read by a
/// thread of its own (the pipe and `wait` block). Reading stderr to the end
/// also keeps the process from blocking on a full pipe.
pub struct Watched {
    /// stderr lines as they arrive.
    pub lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// The exit status, once the process has exited.
    pub status: oneshot::Receiver<std::io::Result<std::process::ExitStatus>>,
    /// Set when the process has exited.
    pub exited: Arc<std::sync::atomic::AtomicBool>,
}

/// Watch `child` (spawned with a piped stderr); `on_line` sees each stderr
/// line on the reading thread, before it is passed on.
pub fn watch(
    mut child: std::process::Child,
    on_line: impl Fn(&str) + Send + 'static,
) -> Result<Watched> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stderr = child.stderr.take().context("no stderr pipe")?;
    let (line_tx, lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            on_line(&line);
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let exited = Arc::new(AtomicBool::new(false));
    let (status_tx, status) = oneshot::channel();
    let flag = exited.clone();
    std::thread::spawn(move || {
        let result = child.wait();
        flag.store(true, Ordering::SeqCst);
        let _ = status_tx.send(result);
    });
    Ok(Watched {
        lines,
        status,
        exited,
    })
}

/// Handles into a running server that [`TestServer`] does not keep: what
/// tests of the admission limits and the outbound budget watch.
pub struct Inside {
    /// Bytes queued to all clients together.
    pub budget: Arc<switchboard::chat::outbound::Budget>,
    /// Connections admitted, server-wide and per address.
    pub admission: Arc<switchboard::net::admission::Admission>,
}

impl TestServer {
    /// [`TestServer::start`] (or, with `tls`, [`TestServer::start_tls`]),
    /// also handing back [`Inside`].
    pub async fn start_inside(mut config: Config, tls: bool) -> Result<(TestServer, Inside)> {
        let cert = if tls {
            let cert = Arc::new(TestCert::generate()?);
            config.tls = Some(cert.files());
            Some(cert)
        } else {
            None
        };
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = Server::bind(config)
            .await
            .context("server failed to start")?;
        let inside = Inside {
            budget: server.outbound_budget(),
            admission: server.admission(),
        };
        let server = Self::serving(vec![server], cert, None);
        Ok((server, inside))
    }

    /// A TLS client session to this (wss) server over `tcp`.
    pub async fn tls_connect(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let cert = self.tls.as_ref().context("this server speaks plain ws")?;
        cert.connect(tcp).await
    }
}

/// Poll `check` until it holds, for at most [`WAIT`]: for counts the server
/// updates on its own after an event the test caused (a connection's end
/// seen by the client first). Fails with `what` if it never holds.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        if tokio::time::Instant::now() >= deadline {
            bail!("{what}: still not so after {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// A WebSocket client written by hand over plain TCP, for tests that need
/// to see the frames as sent (pings included) and must not answer them
/// (tungstenite answers pings on its own).
pub struct RawWs {
    /// The socket.
    pub tcp: TcpStream,
    /// Read and not yet parsed.
    buf: Vec<u8>,
}

/// One frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// The opcode: 1 text, 2 binary, 8 close, 9 ping, 10 pong.
    pub opcode: u8,
    /// The (unmasked) payload.
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// A close frame's code and reason.
    pub fn close(&self) -> Option<(u16, String)> {
        let code = self.payload.get(..2)?;
        let reason = String::from_utf8_lossy(&self.payload[2..]).into_owned();
        Some((u16::from_be_bytes([code[0], code[1]]), reason))
    }
}

impl RawWs {
    /// Connect to `addr`, upgrade `path` and check the 101.
    pub async fn connect(addr: SocketAddr, path: &str) -> Result<RawWs> {
        RawWs::over(TcpStream::connect(addr).await?, path).await
    }

    /// [`RawWs::connect`] over a socket already connected (e.g. with a
    /// small receive buffer).
    pub async fn over(mut tcp: TcpStream, path: &str) -> Result<RawWs> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(WAIT, tcp.read(&mut chunk))
                .await
                .context("no upgrade answer in time")??;
            if n == 0 {
                bail!("closed before the upgrade answer");
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        if !head.starts_with("HTTP/1.1 101") {
            bail!("upgrade refused: {head}");
        }
        buf.drain(..end);
        Ok(RawWs { tcp, buf })
    }

    /// The next frame, waiting at most [`WAIT`]; `None` once the server
    /// closed the socket.
    pub async fn frame(&mut self) -> Result<Option<RawFrame>> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf)? {
                self.buf.drain(..used);
                return Ok(Some(frame));
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, self.tcp.read(&mut chunk))
                .await
                .map_err(|_| anyhow!("no frame within {WAIT:?}"))??;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                bail!("closed in the middle of a frame");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A whole unmasked frame at the start of `buf`, and its length in bytes.
fn parse_frame(buf: &[u8]) -> Result<Option<(RawFrame, usize)>> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        bail!("a server frame must not be masked");
    }
    let (len, head) = match b1 & 0x7f {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(n), 10)
        }
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    let end = head + usize::try_from(len)?;
    if buf.len() < end {
        return Ok(None);
    }
    let frame = RawFrame {
        opcode: b0 & 0x0f,
        payload: buf[head..end].to_vec(),
    };
    Ok(Some((frame, end)))
}

impl TestServer {
    /// A plain-ws client over `tcp` (already connected) that sends its
    /// upgrade request for `path` and its first text frame `first` in one
    /// write, before the server has answered: the server handles the frame
    /// the moment the connection is registered. Returns once the 101 is read.
    pub async fn pipelined(&self, mut tcp: TcpStream, path: &str, first: &str) -> Result<Client> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_tungstenite::tungstenite::protocol::Role;
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        if self.tls.is_some() {
            bail!("pipelined: plain ws only");
        }
        let mut bytes = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .into_bytes();
        let mut frame = Frame::message(first.as_bytes().to_vec(), OpCode::Data(Data::Text), true);
        // A client's frames must be masked.
        frame.header_mut().mask = Some([1, 2, 3, 4]);
        frame.format(&mut bytes)?;
        tcp.write_all(&bytes).await?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(WAIT, tcp.read(&mut byte))
                .await
                .context("no answer to the upgrade in time")??;
            if n == 0 || head.len() > 8192 {
                bail!("no 101: {}", String::from_utf8_lossy(&head));
            }
            head.push(byte[0]);
        }
        if !head.starts_with(b"HTTP/1.1 101") {
            bail!("refused: {}", String::from_utf8_lossy(&head));
        }
        let io: Box<dyn Io> = Box::new(tcp);
        let ws = WebSocketStream::from_raw_socket(io, Role::Client, None).await;
        Ok(Client { ws })
    }
}

/// The status of an HTTP/1.1 response head (`HTTP/1.1 NNN …`).
pub fn http_status(head: &str) -> Result<u16> {
    head.strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line in {head:?}"))
}

/// The `Content-Length` of an HTTP response head.
pub fn content_length(head: &str) -> Result<usize> {
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .with_context(|| format!("no Content-Length in {head:?}"))
}

/// With `SWITCHBOARD_TEST_LOG` set (an env-filter, e.g. `debug`), the
/// servers of a test log to stderr: for finding out why a test fails.
fn debug_log() {
    if let Ok(filter) = std::env::var("SWITCHBOARD_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// `frame` without the fields protocol v2 adds to protocol v1's frames
/// (every one is additive, so a v1 client that ignores unknown fields sees
/// v1): `session` and `resumed` of `welcome`, `offset` of `room`, and
/// `epoch`, `offset`, `recovered`, `held`, `stored` of `ack`. The v1 tests
/// compare what is left exactly; the v2 tests read frames whole.
pub fn v1_view(mut frame: Value) -> Value {
    let added: &[&str] = match frame["type"].as_str() {
        Some("welcome") => &["session", "resumed"],
        Some("room") => &["offset"],
        Some("ack") => &["epoch", "offset", "recovered", "held", "stored"],
        _ => &[],
    };
    if let Some(fields) = frame.as_object_mut() {
        for key in added {
            fields.remove(*key);
        }
    }
    frame
}
