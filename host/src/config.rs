//! Every setting the server has, with its default. The CLI (`cli.rs`) and
//! tests build a [`Config`]; nothing else reads flags or the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `server::Server::bind` needs.
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
    /// How often the watched policy file is looked at.
    pub watch_interval: Duration,
    /// The admin listener; `None` runs without one.
    pub admin: Option<AdminConfig>,
    /// Record every event (connect, message, disconnect) to this JSON-lines
    /// file, for `switchboard policy replay`. Off by default: it holds every
    /// message's content.
    pub record_events: Option<PathBuf>,
    /// Run the default rules compiled into the host instead of the policy
    /// (only in builds with the `native-rules` feature; for benchmarks).
    pub native_rules: bool,
}

/// The admin interface (policy status, swap, rollback, health).
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Where it listens; keep it off the public network.
    pub listen: SocketAddr,
    /// Bearer token every `/admin/*` request must carry. Required unless
    /// `listen` is a loopback address.
    pub token: Option<String>,
    /// Largest component `PUT /admin/policy` accepts.
    pub max_upload_bytes: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 3002)),
            token: None,
            max_upload_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 3001)),
            tls: None,
            policy: PolicySource::Embedded,
            limits: Limits::default(),
            policy_limits: PolicyLimits::default(),
            watch_policy: true,
            watch_interval: Duration::from_secs(1),
            admin: Some(AdminConfig::default()),
            record_events: None,
            native_rules: false,
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
    pub max_connections: usize,
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 64 * 1024,
            outbound_queue_frames: 1024,
            outbound_queue_bytes: 4 * 1024 * 1024,
            max_connections: 100_000,
            tls_handshake_timeout: Duration::from_secs(10),
            upgrade_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            close_timeout: Duration::from_secs(5),
            read_buffer_bytes: 1024,
            write_buffer_bytes: 8 * 1024,
        }
    }
}

/// What a policy may use; every call that exceeds one fails with
/// `policy-failed` and its actions are discarded.
#[derive(Debug, Clone)]
pub struct PolicyLimits {
    /// Wall-clock time one call may run.
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
    /// Total bytes (keys + values) of the host-held state.
    pub state_max_total_bytes: usize,
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
            pool_instances: 64,
            rollback_failures: 10,
            rollback_window: Duration::from_secs(60),
        }
    }
}
