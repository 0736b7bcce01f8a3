//! Binding, the accept loop and graceful shutdown. `Server::bind` does all
//! the fallible set-up (policy, TLS, socket) so a bad config fails before the
//! first client is accepted; `Server::run` serves until `shutdown` resolves,
//! then closes every client with 1001 and waits (bounded) for them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::record::{RecordError, Recorder};
use crate::metrics::Refused;
use crate::net::admission::{Admission, Refusal, Ticket};
use crate::ops::admin::{Admin, AdminError, Metrics};
use crate::ops::reload::Reloader;
use crate::ops::rules::Rules;

use crate::chat::outbound::{self, Budget, CloseReason, code};
use crate::chat::registry::Registry;
use crate::config::{Config, Limits, PolicySource, Recovery};
use crate::net::session::{self, Kept};
use crate::net::shared::{self, Shared};
use crate::net::tls::{self, TlsError};
use crate::policy::clock::Clock;
use crate::policy::{self, LoadError, Policy, PolicyEnv};
use crate::store::history::{History, HistoryLimits};
use crate::store::memory::{MemoryHistory, MemoryLinker, MemoryNotices, MemorySessions};
use crate::store::notices::{Notices, StoredLimits};
use crate::store::sessions::Sessions;
use crate::store::state::StateLimits;
use crate::store::{Linked, Linker};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The policy could not be loaded.
    #[error("policy: {0}")]
    Policy(#[from] LoadError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The admin interface could not start.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Event recording could not start.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The `[auth]` settings are unusable (short secret, bad key file).
    #[error(transparent)]
    Auth(#[from] crate::net::auth::AuthSetupError),
    /// Cluster mode's stores could not be set up (the URL unusable).
    #[error("cluster: {0}")]
    Cluster(#[from] crate::store::Unavailable),
    /// `native_rules` asked of a build without them.
    #[error("this build has no native rules (build with --features native-rules)")]
    NoNativeRules,
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A bound, ready server.
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    admin: Option<Admin>,
    /// `/metrics` without a token (`--metrics-listen`).
    metrics: Option<Metrics>,
    /// Set when the policy comes from a file.
    reloader: Option<Arc<Reloader>>,
    /// Poll the policy file this often (`None`: don't).
    watch: Option<Duration>,
    /// Swaps and rollbacks, cluster-wide in a cluster.
    rules: Arc<Rules>,
    /// The wss certificate and key, read again on change and on SIGHUP.
    certificates: Option<Arc<tls::Certificates>>,
}

/// Where a server keeps what outlives a connection: room history, stored
/// notices, held sessions; and what links its connections to the
/// presence and the bus.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Makes the presence and the bus, once the registry exists.
    pub link: Arc<dyn Linker>,
    /// Every room's history.
    pub history: Arc<dyn History>,
    /// Notices kept for offline ids.
    pub notices: Arc<dyn Notices>,
    /// Ids held for a resume, with the queue that collects what they miss
    /// and their place in the admission counts.
    pub sessions: Arc<dyn Sessions<Kept>>,
}

impl Stores {
    /// The embedded default: all three in memory, within `recovery`'s
    /// limits, history and notices each under its own byte cap (so neither
    /// can evict the other).
    pub fn memory(recovery: &Recovery) -> Stores {
        let history = MemoryHistory::new(HistoryLimits {
            size: recovery.history_size,
            ttl: recovery.history_ttl,
            max_recover: recovery.max_recover,
            max_total_bytes: recovery.history_max_bytes,
        });
        let notices = MemoryNotices::new(StoredLimits {
            per_id: recovery.stored_notices_per_id,
            max_age: recovery.stored_notice_ttl,
            max_total_bytes: recovery.notices_max_bytes,
            per_sender: recovery.stored_notices_per_sender,
            per_pair: recovery.stored_notices_per_pair,
        });
        Stores {
            link: Arc::new(MemoryLinker),
            history: Arc::new(history),
            notices: Arc::new(notices),
            sessions: Arc::new(MemorySessions::default()),
        }
    }
}

impl Stores {
    /// Cluster mode's stores for `config` (which has `[cluster]`): room
    /// history and stored notices in Redis; held sessions still in memory
    /// (docs/CLUSTER.md, "Status"). Nothing is connected yet.
    pub fn cluster(config: &Config) -> Result<Stores, ServerError> {
        let memory = Stores::memory(&config.recovery);
        let Some(cluster) = &config.cluster else {
            return Ok(memory);
        };
        let crate::store::redis::Opened {
            history,
            notices,
            link,
        } = crate::store::redis::open(
            cluster.url.secret_url(),
            cluster.prefix.as_str(),
            config.node_id.as_str(),
            *memory.history.limits(),
            *memory.notices.limits(),
            config.recovery.resume_window,
            CLUSTER_TIMEOUT,
        )?;
        Ok(Stores {
            link,
            history,
            notices,
            ..memory
        })
    }
}

/// How long a node waits for Redis before it answers `unavailable`.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(1);

impl Server {
    /// Load the policy, set up TLS and bind, with the stores in memory (in
    /// Redis with `[cluster]`).
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let stores = Stores::cluster(&config)?;
        Server::bind_with(config, stores).await
    }

    /// [`Server::bind`], keeping what outlives a connection in `stores`.
    pub async fn bind_with(config: Config, stores: Stores) -> Result<Server, ServerError> {
        let auth = crate::net::auth::verifier(config.auth.as_ref())?;
        let registry =
            Registry::with_room_limits(config.limits.max_rooms_per_id, config.limits.max_rooms);
        let recovery = config.recovery.clone();
        if let Some(total) = recovery.deprecated_max_bytes {
            tracing::warn!(
                total,
                history_max_bytes = recovery.history_max_bytes,
                notices_max_bytes = recovery.notices_max_bytes,
                "--recovery-max-bytes (recovery.max_bytes) is deprecated and goes in the next release: \
                 history and stored notices have a cap each now (--history-max-bytes, --notices-max-bytes)"
            );
        }
        let Stores {
            link,
            history,
            notices,
            sessions,
        } = stores;
        let handing = Arc::new(crate::net::handing::Handing::new(
            registry.clone(),
            sessions.clone(),
        ));
        let Linked {
            presence,
            bus,
            state,
            versions,
        } = link.link(
            Arc::new(registry.clone()),
            handing.clone(),
            history.clone(),
            notices.clone(),
            StateLimits::from(&config.policy_limits),
        );
        bus.ready().await;
        let policy_file = match &config.policy {
            PolicySource::File(path) => Some(path.clone()),
            _ => None,
        };
        let (bytes, source) = match config.policy {
            PolicySource::Embedded => (
                policy::DEFAULT_POLICY.to_vec(),
                "embedded default policy".to_owned(),
            ),
            PolicySource::File(path) => {
                let bytes = std::fs::read(&path).map_err(|source| LoadError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                (bytes, path.display().to_string())
            }
            PolicySource::Bytes { name, bytes } => (bytes, name),
        };
        // What the file held at start: a reload swaps only a change of it.
        let own_sha256 = policy::sha256_hex(&bytes);
        // A node of a cluster runs the cluster's policy, whatever its own.
        let (bytes, source) = match &versions {
            Some(v) => Rules::starting(&**v, bytes, source, CLUSTER_TIMEOUT * 3).await,
            None => (bytes, source),
        };
        let env = PolicyEnv {
            registry: presence.clone(),
            state,
            history: history.clone(),
            clock: Clock::System,
        };
        let policy = Policy::load(bytes, &source, env, config.policy_limits)?;
        let (tls, certificates) = match &config.tls {
            Some(files) => {
                let (config, certificates) = tls::server_config(files)?;
                (Some(TlsAcceptor::from(config)), Some(certificates))
            }
            None => (None, None),
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        if OPTIONS_INHERITED && let Err(e) = configure(&listener, &config.limits) {
            tracing::warn!(error = %e, "socket options not set on the listener");
        }
        let rules = Rules::new(policy.clone(), versions, config.node_id.as_str());
        let reloader =
            policy_file.map(|path| Arc::new(Reloader::new(rules.clone(), path, own_sha256)));
        let recorder = match &config.record_events {
            Some(path) => Some(Recorder::start(path, config.record_max_bytes).await?),
            None => None,
        };
        let watch = (config.watch_policy && reloader.is_some()).then_some(config.watch_interval);
        #[cfg(feature = "native-rules")]
        let native = config
            .native_rules
            .then(|| crate::chat::native::NativeRules::new(presence.clone(), history.clone()));
        #[cfg(not(feature = "native-rules"))]
        if config.native_rules {
            return Err(ServerError::NoNativeRules);
        }
        let shared = Arc::new(Shared {
            #[cfg(feature = "native-rules")]
            native,
            registry,
            history,
            notices,
            bus,
            presence: presence.clone(),
            sessions,
            recovery,
            policy,
            recorder,
            ws_config: shared::ws_config(&config.limits),
            quotas: crate::chat::rate::Kept::new(
                config.recovery.resume_window,
                config.limits.max_connections.max(1),
            ),
            admission: Admission::new(&config.limits),
            budget: Budget::new(config.limits.outbound_total_bytes),
            inbound: crate::net::inbound::InboundBudget::new(config.limits.inbound_total_bytes),
            limits: config.limits,
            secure: tls.is_some(),
            web_chat: config.web_chat,
            node_id: config.node_id.clone(),
            origins: crate::net::origin::OriginPolicy::new(
                config.allowed_origins.clone(),
                config.refuse_non_web_origins,
            ),
            auth,
            shutting_down: AtomicBool::new(false),
            drain: crate::net::drain::Drainer::new(config.drain_time),
        });
        handing.serve(&shared);
        let admin = match &config.admin {
            Some(admin) => {
                let (rules, shared, reloader) = (rules.clone(), shared.clone(), reloader.clone());
                Some(Admin::bind(admin, rules, shared, reloader, config.native_rules).await?)
            }
            None => None,
        };
        let metrics = match config.metrics_listen {
            Some(addr) => Some(Metrics::bind(addr, shared.clone()).await?),
            None => None,
        };
        Ok(Server {
            listener,
            tls,
            shared,
            admin,
            metrics,
            reloader,
            watch,
            rules,
            certificates,
        })
    }

    /// The wss certificate and key (SIGHUP reads them again), when the
    /// server speaks wss.
    pub fn certificates(&self) -> Option<Arc<tls::Certificates>> {
        self.certificates.clone()
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The URL scheme clients use.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "wss" } else { "ws" }
    }

    /// A handle that answers questions about the running server's held
    /// sessions (for embedding and tests).
    pub fn holds(&self) -> Holds {
        Holds {
            shared: self.shared.clone(),
        }
    }

    /// The registry (for embedding and tests: who is online, rooms).
    pub fn registry(&self) -> Registry {
        self.shared.registry.clone()
    }

    /// The bytes queued to all clients together (for tests and metrics).
    pub fn outbound_budget(&self) -> Arc<Budget> {
        self.shared.budget.clone()
    }

    /// What is admitted now: connections server-wide and per address.
    pub fn admission(&self) -> Arc<Admission> {
        self.shared.admission.clone()
    }

    /// The policy runtime (status, swap, rollback).
    pub fn policy(&self) -> Policy {
        self.shared.policy.clone()
    }

    /// Where the admin interface listens, if it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(Admin::local_addr)
    }

    /// Where `/metrics` is served without a token (`--metrics-listen`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(Metrics::local_addr)
    }

    /// Swaps and rollbacks as the admin interface makes them (every node's
    /// in a cluster).
    pub fn rules(&self) -> Arc<Rules> {
        self.rules.clone()
    }

    /// The policy file's reloader (for SIGHUP), if the policy is a file.
    pub fn reloader(&self) -> Option<Arc<Reloader>> {
        self.reloader.clone()
    }

    /// Ask this server for a drain (SIGTERM, `switchboard drain`).
    pub fn drainer(&self) -> crate::net::drain::Handle {
        crate::net::drain::Handle(self.shared.clone())
    }

    /// Serve until `shutdown` resolves, then close every client with 1001;
    /// or until a drain is asked ([`Server::drainer`], `POST
    /// /admin/drain`), then drain (`net::drain`) and close what is left
    /// with 1012. `shutdown` also cuts a drain short.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            tls,
            shared,
            admin,
            metrics,
            reloader,
            watch,
            rules,
            certificates,
        } = self;
        let stop = CancellationToken::new();
        if let Some(certificates) = certificates {
            let stop = stop.clone();
            tokio::spawn(async move {
                stop.run_until_cancelled_owned(certificates.watch(tls::WATCH_EVERY))
                    .await
            });
        }
        if rules.is_cluster() {
            let stop = stop.clone();
            tokio::spawn(async move { stop.run_until_cancelled_owned(rules.follow()).await });
        }
        if let Some(admin) = admin {
            tokio::spawn(admin.run(stop.clone().cancelled_owned()));
        }
        if let Some(metrics) = metrics {
            tokio::spawn(metrics.run(stop.clone().cancelled_owned()));
        }
        if let (Some(reloader), Some(every)) = (reloader, watch) {
            let stop = stop.clone();
            tokio::spawn(
                async move { stop.run_until_cancelled_owned(reloader.watch(every)).await },
            );
        }
        if shared.budget.limit().is_some() {
            let (stop, shared) = (stop.clone(), shared.clone());
            tokio::spawn(async move { stop.run_until_cancelled_owned(shed(&shared)).await });
        }
        {
            let (stop, shared) = (stop.clone(), shared.clone());
            tokio::spawn(async move { stop.run_until_cancelled_owned(sweep(&shared)).await });
        }
        let _stop_on_return = stop.drop_guard();
        let tasks = TaskTracker::new();
        tokio::pin!(shutdown);
        let bound = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        tracing::info!("{}", start_line(&shared, bound));
        // What a benchmark column claims to run is checked against this line
        // (bench/bench.py): which rules, and the client limits in effect.
        let l = &shared.limits;
        tracing::info!(
            rules = shared.rules(),
            messages_per_sec = l.messages_per_sec,
            broadcasts_per_sec = l.broadcasts_per_sec,
            max_rooms_per_id = l.max_rooms_per_id,
            max_connections_per_ip = l.max_connections_per_ip,
            max_handshakes_per_ip = l.max_handshakes_per_ip,
            outbound_total_bytes = l.outbound_total_bytes,
            history_size = shared.recovery.history_size,
            resume_window_secs = shared.recovery.resume_window.as_secs(),
            "serving"
        );
        let mut failures = AcceptFailures::default();
        // Made once, not per accept: a watch subscription each time.
        let drain_asked = shared.drain.requested();
        tokio::pin!(drain_asked);
        let drain = loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break None,
                within = &mut drain_asked => break Some(within),
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    if let Some(failed) = failures.recovered() {
                        tracing::info!(failed, "accepting again after failures");
                    }
                    match shared.admission.admit(peer.ip()) {
                        Ok(ticket) => {
                            tasks.spawn(serve(shared.clone(), tls.clone(), tcp, peer, ticket));
                        }
                        Err(refusal) => refuse(&tasks, &shared, &tls, tcp, peer, refusal),
                    }
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of
                    // spinning, and let open connections finish. Logged at
                    // most once a second: at the limit every attempt fails.
                    if let Some(failed) = failures.note(Instant::now()) {
                        tracing::warn!(error = %e, failed, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        // Not accepting from here: a load balancer (or the kernel) sends
        // new connections elsewhere.
        drop(listener);
        if let Some(within) = drain {
            // A second signal (or the caller's shutdown) cuts it short.
            tokio::select! {
                _ = &mut shutdown => tracing::warn!("drain cut short"),
                () = crate::net::drain::run(&shared, within) => {}
            }
        }
        tracing::info!(
            connections = shared.registry.online_count(),
            "shutting down"
        );
        shared.shutting_down.store(true, Ordering::SeqCst);
        let last = match drain {
            Some(_) => CloseReason::with_code(code::SERVICE_RESTART, crate::net::drain::RESTARTING),
            None => CloseReason::with_code(code::GOING_AWAY, "server shutting down"),
        };
        shared.registry.close_all(&CloseReason {
            shutdown: true,
            ..last
        });
        tasks.close();
        let grace = shared.limits.close_timeout * 2 + shared.limits.upgrade_timeout;
        if timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "shutdown grace period over; dropping connections"
            );
        }
        if let Some(recorder) = &shared.recorder {
            recorder.finish(shared.limits.close_timeout).await;
        }
    }
}

/// One admitted TCP connection: TLS (bounded in time) if configured, then
/// the session. `ticket` counts it until it ends.
async fn serve(
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    tcp: TcpStream,
    peer: SocketAddr,
    mut ticket: Ticket,
) {
    if !OPTIONS_INHERITED && let Err(e) = configure(&tcp, &shared.limits) {
        tracing::debug!(%peer, error = %e, "socket options not set");
    }
    match tls {
        None => session::run(shared, tcp, peer, &mut ticket).await,
        // Boxed: a TLS stream and its handshake are large, and a task's
        // future is as large as its largest state, so inline they would
        // make every plain connection pay for them too.
        Some(acceptor) => Box::pin(serve_tls(shared, acceptor, tcp, peer, ticket)).await,
    }
}

async fn serve_tls(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    mut ticket: Ticket,
) {
    match timeout(shared.limits.tls_handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => session::run(shared, stream, peer, &mut ticket).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Socket options of an accepted connection: no Nagle delay (chat frames
/// are small and latency matters more than packet count), and TCP
/// keepalive after `limits.tcp_keepalive` of silence (0: off), so a peer
/// that vanished without a FIN is found even when pings are off.
///
/// Given the listening socket where accepted sockets inherit these options
/// ([`OPTIONS_INHERITED`]), given each accepted socket elsewhere.
pub fn configure<S: std::os::fd::AsFd>(socket: &S, limits: &Limits) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(socket);
    socket.set_tcp_nodelay(true)?;
    if !limits.tcp_keepalive.is_zero() {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(limits.tcp_keepalive)
            .with_interval(KEEPALIVE_PROBE_INTERVAL);
        socket.set_tcp_keepalive(&keepalive)?;
    }
    Ok(())
}

/// Linux copies a listening socket's options (no delay, keepalive and its
/// timings) to every socket it accepts, so they are set once on the
/// listener instead of with four system calls per connection (a tenth of
/// the server's CPU per plain handshake).
pub const OPTIONS_INHERITED: bool = cfg!(target_os = "linux");

/// Between keepalive probes once they start (the OS default, 75 s on Linux,
/// would take over ten minutes to give up).
const KEEPALIVE_PROBE_INTERVAL: Duration = Duration::from_secs(10);

/// A connection over an admission limit.
///
/// - Plain ws: a task answers 503 with the reason (after reading the
///   request, bounded by `upgrade_timeout`).
/// - wss, over the per-IP handshake limit: the socket is closed at once.
///   Answering would mean a TLS handshake, which is the very work that
///   limit is there to bound.
/// - wss, over a connection limit: the TLS handshake is completed (bounded
///   by `tls_handshake_timeout`) so the 503 can be read, then answered.
///
/// Refusals being answered are bounded ([`crate::net::admission::MAX_REFUSING`]
/// at once, TLS handshakes included); past that the socket is closed.
fn refuse(
    tasks: &TaskTracker,
    shared: &Arc<Shared>,
    tls: &Option<TlsAcceptor>,
    tcp: TcpStream,
    peer: SocketAddr,
    refusal: Refusal,
) {
    tracing::debug!(%peer, %refusal, "connection refused");
    shared.registry.counters().refused(Refused::Admission);
    if tls.is_some() && refusal == Refusal::IpHandshakes {
        return;
    }
    let Some(slot) = shared.admission.refusing() else {
        return;
    };
    let shared = shared.clone();
    let tls = tls.clone();
    tasks.spawn(async move {
        let _slot = slot;
        let reason = refusal.to_string();
        let _ = tcp.set_nodelay(true);
        match tls {
            None => {
                let mut tcp = tcp;
                session::at_limit(&shared, &mut tcp, &reason).await;
            }
            Some(acceptor) => {
                let limit = shared.limits.tls_handshake_timeout;
                if let Ok(Ok(mut stream)) = timeout(limit, acceptor.accept(tcp)).await {
                    session::at_limit(&shared, &mut stream, &reason).await;
                }
            }
        }
    });
}

/// The first line a server logs: where clients connect, which policy
/// version (and world) runs, where the chat page is, whether ids are
/// authenticated. Tests and scripts read the address after `listening on
/// ws://` (or `wss://`), up to the next space.
fn start_line(shared: &Shared, bound: SocketAddr) -> String {
    let policy = shared.policy.active();
    let (ws, http) = if shared.secure {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    let page = if shared.web_chat {
        format!("chat page {http}://{}/", reachable(bound))
    } else {
        "chat page off".to_owned()
    };
    let auth = shared
        .auth
        .as_ref()
        .map_or_else(|| "off".to_owned(), |v| v.algorithms());
    format!(
        "listening on {ws}://{bound} with policy version {} (world {}; {}, {} bytes); {page}; auth: {auth}; node {}",
        policy.seq,
        policy.world.version(),
        policy.source,
        policy.size,
        shared.node_id,
    )
}

/// `bound` as a browser on this machine reaches it: a wildcard address
/// (0.0.0.0, ::) becomes the loopback one.
fn reachable(bound: SocketAddr) -> SocketAddr {
    let mut addr = bound;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// Close the largest queues while the outbound budget is exceeded.
async fn shed(shared: &Shared) {
    loop {
        shared.budget.exceeded().await;
        let closed = outbound::shed(&shared.budget, shared.registry.outboxes());
        tracing::debug!(
            closed,
            total = shared.budget.total(),
            "outbound budget shed"
        );
        // A wake that finds the total back under the limit (queues closed
        // or written since) waits for the next push over it: pausing then
        // would leave pushes unchecked while the total climbs to the
        // ceiling, where the next push closes its target whoever it is.
        if closed == 0 && shared.budget.is_over() {
            // Over only by queues already closing: their writers give the
            // bytes back as they see the close. Pushes meanwhile ask again;
            // don't scan for each (the budget's ceiling holds until then).
            tokio::time::sleep(SHED_PAUSE).await;
        }
    }
}

/// Questions about the ids held for a resume.
#[derive(Debug, Clone)]
pub struct Holds {
    shared: Arc<Shared>,
}

impl Holds {
    /// Whether `id` is held (its connection ended abnormally and its
    /// resume window is open).
    pub fn is_held(&self, id: &str) -> bool {
        self.shared.sessions.is_held(id)
    }

    /// How many ids are held.
    pub fn count(&self) -> usize {
        self.shared.sessions.len()
    }
}

/// Drop expired room history and stored notices, now and then: what no
/// client asks for any more must not hold memory until someone does.
async fn sweep(shared: &Shared) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        shared
            .history
            .sweep(&|room| shared.registry.room_size(room) > 0)
            .await;
        shared
            .notices
            .expire_all(std::time::SystemTime::now())
            .await;
        let usage = shared.history.usage();
        tracing::trace!(
            rooms = usage.rooms,
            history_bytes = usage.bytes,
            notice_bytes = shared.notices.bytes(),
            held = shared.sessions.len(),
            "recovery stores swept"
        );
    }
}

/// How often [`sweep`] runs.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The least time between two passes of [`shed`] that closed nothing.
const SHED_PAUSE: Duration = Duration::from_millis(1);

/// Accept failures (at the file limit every attempt fails) are logged at
/// most once a second, with how many there were.
#[derive(Debug, Default)]
struct AcceptFailures {
    /// When one was last logged.
    logged: Option<Instant>,
    /// Failures since then (not logged yet).
    unlogged: u64,
}

impl AcceptFailures {
    /// A failure at `now`. `Some(n)` when it is to be logged, with the `n`
    /// failures since the last log (this one included).
    fn note(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        if self
            .logged
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return None;
        }
        self.logged = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }

    /// An accept succeeded: `Some(n)` if `n` failures were not logged yet.
    fn recovered(&mut self) -> Option<u64> {
        if self.unlogged == 0 {
            return None;
        }
        self.logged = None;
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    /// The size of the future an async fn returns, without calling it.
    fn future_size<A, B, C, D, E, F: Future>(_: impl Fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A connection's task holds this future for its whole life, idle or
    /// not: what it weighs is memory per connection (see bench/RESULTS.md).
    /// 2,048 bytes until issue 20, whose limits each connection carries: a
    /// third rate bucket (queries, 32 bytes), its share of the inbound
    /// budget (16) and what its admission ticket keeps for a hold. 2,144
    /// until issue 22, whose closing log line needs the connection's start
    /// (8 bytes), its frames read and the client's close code (8).
    #[test]
    fn a_plain_connection_task_stays_small() {
        let size = future_size(super::serve);
        eprintln!("serve future: {size} bytes");
        assert!(size <= 2168, "serve's future grew to {size} bytes");
    }

    #[test]
    fn the_chat_page_is_named_at_an_address_a_browser_here_reaches() {
        use std::net::SocketAddr;
        let shown = |a: &str| super::reachable(a.parse::<SocketAddr>().unwrap()).to_string();
        assert_eq!(shown("0.0.0.0:3001"), "127.0.0.1:3001");
        assert_eq!(shown("[::]:3001"), "[::1]:3001");
        assert_eq!(shown("10.1.2.3:443"), "10.1.2.3:443");
    }

    #[tokio::test]
    async fn accepted_sockets_get_keepalive_and_no_delay() {
        use std::time::Duration;

        use crate::config::Limits;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let sock = socket2::SockRef::from(&accepted);
        assert!(!sock.keepalive().unwrap());

        let limits = Limits {
            tcp_keepalive: Duration::from_secs(42),
            ..Limits::default()
        };
        super::configure(&accepted, &limits).unwrap();
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(42));
        assert!(accepted.nodelay().unwrap());

        // Where accepted sockets inherit the listener's options, setting
        // them once on the listener is enough.
        if super::OPTIONS_INHERITED {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            super::configure(&listener, &limits).unwrap();
            let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (accepted, _) = listener.accept().await.unwrap();
            let sock = socket2::SockRef::from(&accepted);
            assert!(sock.keepalive().unwrap());
            assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(42));
            assert_eq!(
                sock.tcp_keepalive_interval().unwrap(),
                super::KEEPALIVE_PROBE_INTERVAL
            );
            assert!(accepted.nodelay().unwrap());
        }

        // 0 turns it off: a fresh socket stays without it.
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let off = Limits {
            tcp_keepalive: Duration::ZERO,
            ..Limits::default()
        };
        super::configure(&accepted, &off).unwrap();
        assert!(!socket2::SockRef::from(&accepted).keepalive().unwrap());
    }

    #[test]
    fn accept_failures_are_logged_once_a_second_with_a_count() {
        use std::time::{Duration, Instant};

        let mut f = super::AcceptFailures::default();
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(f.note(t0), Some(1));
        assert_eq!(f.note(ms(10)), None);
        assert_eq!(f.note(ms(500)), None);
        assert_eq!(f.note(ms(999)), None);
        assert_eq!(f.note(ms(1000)), Some(4));
        assert_eq!(f.note(ms(1500)), None);
        // Accepting again reports what was not logged yet, and the next
        // failure is logged at once.
        assert_eq!(f.recovered(), Some(1));
        assert_eq!(f.recovered(), None);
        assert_eq!(f.note(ms(1600)), Some(1));
    }
}
