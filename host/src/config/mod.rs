//! Every setting the server has, with its default. `settings.rs` declares
//! each one's flag, variable and file key and writes them into a [`Config`]
//! (tests build one directly); nothing else reads flags or the environment.
//!
//! - [`settings`] — every setting's flag, variable, file key and default, written once
//! - [`cli`]      — command line → [`Config`]
//! - [`file`]     — `switchboard.toml`
//! - [`origins`]  — origins as an `Origin` header sends them; `--allowed-origins`
//! - [`cluster`]  — `[cluster]`: the Redis URL (password never shown) and the key prefix
//! - [`node`]     — this node's id, given or made at start
//! - [`log`]      — `--log-format`: text or JSON lines

pub mod cli;
pub mod cluster;
pub mod file;
pub mod log;
pub mod node;
pub mod origins;
pub mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `server::Server::bind` needs (and the binary's log filter).
#[derive(Debug, Clone)]
pub struct Config {
    /// Where clients connect (ws:// or, with `tls`, wss://).
    pub listen: SocketAddr,
    /// PEM certificate chain and key; `None` serves plain ws://.
    pub tls: Option<TlsFiles>,
    /// Which component decides the chat rules.
    pub policy: PolicySource,
    /// Per-connection limits and timeouts.
    pub limits: Limits,
    /// What one policy call may use.
    pub policy_limits: PolicyLimits,
    /// Reload a `PolicySource::File` when the file changes.
    pub watch_policy: bool,
    /// Serve the web chat page at `/` on the public port.
    pub web_chat: bool,
    /// Origins besides the server's own that may open a WebSocket (`*`:
    /// any). Empty: a web page's origin must be the server's own.
    pub allowed_origins: origins::AllowedOrigins,
    /// Refuse an `Origin` of a non-web scheme (e.g. `weapp://…`) that is
    /// not listed, too; by default only web pages' origins are checked.
    pub refuse_non_web_origins: bool,
    /// How often the watched policy file is looked at.
    pub watch_interval: Duration,
    /// The admin listener; `None` runs without one.
    pub admin: Option<AdminConfig>,
    /// Where `GET /metrics` is served without a token, for scrapers
    /// (`None`: only on the admin listener, with the token).
    pub metrics_listen: Option<SocketAddr>,
    /// How long a drain (SIGTERM, `switchboard drain`) may take.
    pub drain_time: Duration,
    /// Record every event (connect, message, disconnect) to this JSON-lines
    /// file, for `switchboard policy replay`. Off by default: it holds every
    /// message's content.
    pub record_events: Option<PathBuf>,
    /// Run the default rules compiled into the host instead of the policy
    /// (only in builds with the `native-rules` feature; for benchmarks).
    pub native_rules: bool,
    /// Signed tokens that prove an id; `None` trusts ids from the URL.
    pub auth: Option<AuthConfig>,
    /// Size cap and rotation of the `record_events` file.
    pub record_max_bytes: u64,
    /// Log filter (tracing env-filter syntax) the binary installs.
    pub log: String,
    /// How the binary writes log lines.
    pub log_format: log::LogFormat,
    /// What is kept so a client that reconnects loses nothing.
    pub recovery: Recovery,
    /// This node's name in the start line, `/healthz` and (in a cluster)
    /// Redis: `--node-id`, else a random one made with the config.
    pub node_id: node::NodeId,
    /// Several nodes on one Redis; `None`: everything in this process's
    /// memory (the default).
    pub cluster: Option<cluster::ClusterConfig>,
}

/// What the server keeps so that a client that drops and comes back
/// loses nothing: room history, held sessions, stored notices. All of it
/// lives in memory: a restart loses it (rooms get new epochs, held
/// sessions and stored notices are gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Messages kept per room (0: no history, no offsets, no recovery).
    pub history_size: usize,
    /// How long a room message is kept.
    pub history_ttl: Duration,
    /// The most messages one recovering `join` replays; a client that
    /// missed more is told `recovered:false`.
    pub max_recover: usize,
    /// How long an id whose connection ended abnormally is held for a
    /// resume (0: never held).
    pub resume_window: Duration,
    /// Notices stored per offline id; past it the oldest are dropped.
    pub stored_notices_per_id: usize,
    /// How long a stored notice waits for its id.
    pub stored_notice_ttl: Duration,
    /// Notices one sender may have stored and not yet handed over, all
    /// recipients together; past it `store-quota`.
    pub stored_notices_per_sender: usize,
    /// Notices one sender may have stored for one recipient; past it
    /// `store-quota`.
    pub stored_notices_per_pair: usize,
    /// Bytes of every room's history, as memory holds them (keys, frames,
    /// overhead). History and notices have a cap each, so neither can
    /// evict the other.
    pub history_max_bytes: usize,
    /// Bytes of every stored notice, as memory holds them.
    pub notices_max_bytes: usize,
    /// `--recovery-max-bytes`, the one cap of history and notices together
    /// before they had one each: still accepted for one release (split in
    /// half between them), with a warning at start.
    pub deprecated_max_bytes: Option<usize>,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            history_size: 100,
            history_ttl: Duration::from_secs(300),
            max_recover: 300,
            resume_window: Duration::from_secs(120),
            stored_notices_per_id: 100,
            stored_notice_ttl: Duration::from_secs(7 * 24 * 3600),
            stored_notices_per_sender: 100,
            stored_notices_per_pair: 20,
            history_max_bytes: 64 * 1024 * 1024,
            notices_max_bytes: 32 * 1024 * 1024,
            deprecated_max_bytes: None,
        }
    }
}

/// Who may connect as which id: a connection must carry a signed token
/// (JWT) whose `sub` is its id.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// HMAC secret for HS256 tokens.
    pub secret: Option<String>,
    /// PEM public key (RSA → RS256, EC P-256 → ES256) for tokens signed by
    /// a key the server does not hold.
    pub public_key: Option<PathBuf>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// The `iss` every token must carry; `None`: any (or none).
    pub issuer: Option<String>,
    /// The audience every token's `aud` must name; `None`: `aud` is not checked.
    pub audience: Option<String>,
    /// The oldest a token may be, by its `iat` (which it must then carry);
    /// `None`: no limit but its `exp`.
    pub max_age: Option<Duration>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            secret: None,
            public_key: None,
            leeway: Duration::from_secs(30),
            issuer: None,
            audience: None,
            max_age: None,
        }
    }
}

/// The admin interface (policy status, swap, rollback, health).
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Where it listens; keep it off the public network.
    pub listen: SocketAddr,
    /// Bearer token every `/admin/*` request must carry; `None`: a random
    /// one is made at start and written to `token_file`.
    pub token: Option<String>,
    /// Largest component `PUT /admin/policy` accepts.
    pub max_upload_bytes: usize,
    /// Where the token made at start is written when none is configured
    /// (readable by this user only); `switchboard policy …` reads it.
    pub token_file: PathBuf,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Time a connection has to send a request's head (request line and
    /// headers); past it the connection is dropped.
    pub header_timeout: Duration,
}

/// The default place for the generated admin token:
/// `$XDG_RUNTIME_DIR/switchboard/admin-token`, else
/// `$HOME/.switchboard/admin-token`, else `./.switchboard-admin-token`.
pub fn default_token_file() -> PathBuf {
    let dir = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(run) = dir("XDG_RUNTIME_DIR") {
        run.join("switchboard").join("admin-token")
    } else if let Some(home) = dir("HOME") {
        home.join(".switchboard").join("admin-token")
    } else {
        PathBuf::from(".switchboard-admin-token")
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 3002)),
            token: None,
            max_upload_bytes: 64 * 1024 * 1024,
            token_file: default_token_file(),
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// How long a drain may take unless `--drain-secs` says otherwise: within
/// systemd's default 90 s stop timeout, with room to spare.
pub const DEFAULT_DRAIN_TIME: Duration = Duration::from_secs(30);

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 3001)),
            tls: None,
            policy: PolicySource::Embedded,
            limits: Limits::default(),
            policy_limits: PolicyLimits::default(),
            watch_policy: true,
            web_chat: true,
            allowed_origins: origins::AllowedOrigins::default(),
            refuse_non_web_origins: false,
            watch_interval: Duration::from_secs(1),
            admin: Some(AdminConfig::default()),
            metrics_listen: None,
            drain_time: DEFAULT_DRAIN_TIME,
            record_events: None,
            native_rules: false,
            auth: None,
            record_max_bytes: 1024 * 1024 * 1024,
            log: "info".to_owned(),
            log_format: log::LogFormat::Text,
            recovery: Recovery::default(),
            node_id: node::NodeId::random(),
            cluster: None,
        }
    }
}

/// PEM files for wss://.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// PKCS#8, PKCS#1 or SEC1 private key.
    pub key: PathBuf,
}

/// Where the policy component comes from.
#[derive(Debug, Clone)]
pub enum PolicySource {
    /// The default rules (guest-logic), compiled into the binary.
    Embedded,
    /// A component file given with `--policy`.
    File(PathBuf),
    /// Component bytes handed over directly (tests, embedding).
    Bytes {
        /// Shown in logs in place of a file name.
        name: String,
        /// The component.
        bytes: Vec<u8>,
    },
}

/// Limits that keep one connection from costing the server too much.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest message (and frame) a client may send; larger closes with 1009.
    pub max_message_bytes: usize,
    /// Frames waiting for a slow client before it is closed with 4008.
    pub outbound_queue_frames: usize,
    /// Bytes waiting for a slow client before it is closed with 4008.
    pub outbound_queue_bytes: usize,
    /// Connections served at once; more get HTTP 503 at the handshake.
    /// Ids held for a resume count as connections.
    pub max_connections: usize,
    /// Ids held for a resume at once, server-wide; a hold past it ends the
    /// oldest hold early (its rooms hear `left`). `None`: a tenth of
    /// `max_connections` (see [`Limits::held_cap`]).
    pub max_held: Option<usize>,
    /// Rooms there may be at once, server-wide; a `join` that would make
    /// another is refused with `too-many-rooms`.
    pub max_rooms: usize,
    /// Time allowed for the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time allowed for the HTTP upgrade request to arrive and be answered.
    pub upgrade_timeout: Duration,
    /// A client that sends nothing for this long is closed with 1001.
    pub idle_timeout: Duration,
    /// Time allowed to deliver what is queued plus the close frame when a
    /// connection is being closed, and to see the client hang up after it.
    pub close_timeout: Duration,
    /// tungstenite's read buffer per connection, and the most one socket
    /// read takes: every idle connection holds it (its default, 128 KiB,
    /// would dominate memory), and every read attempt zeroes it first.
    /// Larger messages are still read whole, in reads of this size.
    pub read_buffer_bytes: usize,
    /// tungstenite's write buffer target before it writes to the socket:
    /// frames queued together go out in one write up to this size. The
    /// buffer keeps its capacity, so this bounds memory per busy connection.
    pub write_buffer_bytes: usize,
    /// Rooms one id may be in at once; a `join` past it is refused with
    /// `too-many-rooms`.
    pub max_rooms_per_id: usize,
    /// Frames per second a connection may send (token bucket; 0: no limit).
    /// Past it a frame is answered `rate-limited` and not handed to the policy.
    pub messages_per_sec: u32,
    /// How many frames a connection may send at once above the rate.
    pub messages_burst: u32,
    /// Broadcasts per second one connection's messages may cause (0: no limit).
    pub broadcasts_per_sec: u32,
    /// How many broadcasts at once above the rate.
    pub broadcasts_burst: u32,
    /// Presence and history queries (`members`, `online`, `history`: any
    /// policy call that asks the host who is where or what a room said)
    /// per second one connection may make (0: no limit).
    pub queries_per_sec: u32,
    /// How many queries at once above the rate.
    pub queries_burst: u32,
    /// Bytes of partly received messages all connections together may
    /// hold; past it a connection that reads more while holding over
    /// 4 KiB of an unfinished message is closed with 1013, try again later
    /// (0: no limit).
    pub inbound_total_bytes: usize,
    /// Connections (handshaking or open) from one IP address; more get 503.
    pub max_connections_per_ip: usize,
    /// Handshakes (TCP accepted, TLS or upgrade not finished) in progress
    /// from one IP address; more get 503 (plain) or are dropped (TLS).
    pub max_handshakes_per_ip: usize,
    /// Bytes queued for all clients together; past it the largest queues
    /// are closed with 4008 until the total is under it again (0: no limit).
    pub outbound_total_bytes: usize,
    /// A quiet connection is sent a WebSocket ping this often (0: never).
    pub ping_interval: Duration,
    /// After a ping, how long the client has to send anything (a pong
    /// counts) before it is closed with 1001 `no pong`.
    pub pong_timeout: Duration,
    /// TCP keepalive idle time on accepted sockets (0: off).
    pub tcp_keepalive: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 64 * 1024,
            outbound_queue_frames: 1024,
            outbound_queue_bytes: 4 * 1024 * 1024,
            max_connections: 100_000,
            max_held: None,
            max_rooms: 100_000,
            tls_handshake_timeout: Duration::from_secs(10),
            upgrade_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            close_timeout: Duration::from_secs(5),
            read_buffer_bytes: 1024,
            write_buffer_bytes: 8 * 1024,
            max_rooms_per_id: 256,
            messages_per_sec: 50,
            messages_burst: 100,
            queries_per_sec: 5,
            queries_burst: 20,
            inbound_total_bytes: 64 * 1024 * 1024,
            broadcasts_per_sec: 1,
            broadcasts_burst: 5,
            max_connections_per_ip: 4096,
            max_handshakes_per_ip: 256,
            outbound_total_bytes: 1024 * 1024 * 1024,
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(10),
            tcp_keepalive: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// Ids held for a resume at once: `max_held`, or a tenth of
    /// `max_connections` (rounded up, so a small server still holds one).
    pub fn held_cap(&self) -> usize {
        self.max_held
            .unwrap_or_else(|| self.max_connections.div_ceil(10))
    }
}

/// What a policy may use; every call that exceeds one fails with
/// `policy-failed` and its actions are discarded.
#[derive(Debug, Clone)]
pub struct PolicyLimits {
    /// CPU time one call may use (its thread's; wall time is bounded at
    /// ten times this, at least 1 s: policy/deadline.rs).
    pub call_deadline: Duration,
    /// Linear memory one instance may grow to.
    pub memory_bytes: usize,
    /// Actions one call may return.
    pub max_actions: usize,
    /// Bytes of frames one call may return (all actions together).
    pub max_output_bytes: usize,
    /// Largest key in the host-held state.
    pub state_max_key_bytes: usize,
    /// Largest value in the host-held state.
    pub state_max_value_bytes: usize,
    /// Total bytes (keys + values + a fixed overhead per entry) of the
    /// host-held state.
    pub state_max_total_bytes: usize,
    /// Entries the host-held state may hold.
    pub state_max_entries: usize,
    /// WASI resources (streams, pollables…) one instance may hold; an
    /// instance past it fails its call and is replaced.
    pub max_resources: usize,
    /// Instances the pooling allocator keeps room for (one per worker thread
    /// is in use at a time, plus spares while instances are replaced).
    pub pool_instances: u32,
    /// Failed calls (traps, timeouts, memory, over-limit answers) after which
    /// a freshly swapped-in version is rolled back automatically (0: never).
    pub rollback_failures: u64,
    /// How long after a swap the automatic rollback watches a version.
    pub rollback_window: Duration,
}

impl Default for PolicyLimits {
    fn default() -> Self {
        PolicyLimits {
            call_deadline: Duration::from_millis(10),
            memory_bytes: 16 * 1024 * 1024,
            max_actions: 256,
            max_output_bytes: 1024 * 1024,
            state_max_key_bytes: 1024,
            state_max_value_bytes: 64 * 1024,
            state_max_total_bytes: 64 * 1024 * 1024,
            state_max_entries: 1_000_000,
            max_resources: 1024,
            pool_instances: 64,
            rollback_failures: 10,
            rollback_window: Duration::from_secs(60),
        }
    }
}
