//! Every serving setting, written once: its file key, flag, environment
//! variable, help text, how it reaches [`Config`] and how the default shown
//! in `--help` is read back from [`Config::default`].
//!
//! Each section is one struct of `Option` fields that is both clap `Args`
//! (the flags and `SWITCHBOARD_*` variables) and serde `Deserialize` (the
//! keys of `switchboard.toml`). The layers are merged field by field —
//! flags, then variables (clap does these two), then the file — and what is
//! set is applied over the defaults in `config.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::cluster::{ClusterConfig, ClusterPrefix, RedisUrl};
use crate::config::node::NodeId;
use crate::config::origins::AllowedOrigins;
use crate::config::{AuthConfig, Config, PolicySource, TlsFiles};

/// One setting, described for tests and tools (see [`Settings::all`]).
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The table of `switchboard.toml` it lives in (`""`: the top level).
    pub table: &'static str,
    /// Its key in that table.
    pub key: &'static str,
    /// Its flag, without the leading `--`.
    pub flag: &'static str,
    /// Its environment variable.
    pub env: &'static str,
    /// A valid value that is not the default, as typed on the command line.
    pub sample: &'static str,
    /// `sample` as it is written in the file.
    pub sample_toml: fn() -> toml::Value,
    /// `sample` as `read` shows it.
    pub sample_shown: fn() -> String,
    /// What a `Config` holds for this setting, in the setting's units
    /// (`None`: nothing, e.g. no TLS).
    pub read: fn(&Config) -> Option<String>,
}

impl Setting {
    /// `[table] key`, or `key` at the top level.
    pub fn file_key(&self) -> String {
        if self.table.is_empty() {
            self.key.to_owned()
        } else {
            format!("[{}] {}", self.table, self.key)
        }
    }
}

/// A type a setting can have: parsed from a flag, shown in `--help`,
/// written in TOML, and (for paths) made relative to the settings file.
pub trait SettingValue: std::str::FromStr + Clone {
    /// What `--help` calls a value of this type.
    const VALUE_NAME: &'static str;
    /// As shown in `--help` and compared by tests.
    fn shown(&self) -> String;
    /// As written in `switchboard.toml`.
    fn to_toml(&self) -> toml::Value {
        toml::Value::String(self.shown())
    }
    /// A relative path read from a file is relative to that file's directory.
    fn rebase(&mut self, _base: &Path) {}
}

macro_rules! shown_as_string {
    ($($t:ty: $v:literal),*) => {$(
        impl SettingValue for $t {
            const VALUE_NAME: &'static str = $v;
            fn shown(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
shown_as_string!(String: "TEXT", SocketAddr: "ADDR");

macro_rules! shown_as_integer {
    ($($t:ty),*) => {$(
        impl SettingValue for $t {
            const VALUE_NAME: &'static str = "N";
            fn shown(&self) -> String {
                self.to_string()
            }
            fn to_toml(&self) -> toml::Value {
                toml::Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
shown_as_integer!(u32, u64, usize);

impl SettingValue for bool {
    const VALUE_NAME: &'static str = "BOOL";
    fn shown(&self) -> String {
        self.to_string()
    }
    fn to_toml(&self) -> toml::Value {
        toml::Value::Boolean(*self)
    }
}

impl SettingValue for PathBuf {
    const VALUE_NAME: &'static str = "FILE";
    fn shown(&self) -> String {
        self.display().to_string()
    }
    fn rebase(&mut self, base: &Path) {
        if self.is_relative() {
            *self = base.join(&*self);
        }
    }
}

/// A URL that may carry a password, kept as text until `set` parses it:
/// its errors are then the setting's own (clap's would repeat the value,
/// password and all), and `Debug` of the settings never shows it.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct UrlText(pub String);

impl std::str::FromStr for UrlText {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(UrlText(s.to_owned()))
    }
}

impl std::fmt::Debug for UrlText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlText(…)")
    }
}

impl SettingValue for UrlText {
    const VALUE_NAME: &'static str = "URL";
    fn shown(&self) -> String {
        self.0.clone()
    }
}

/// `doc`, with the default when there is one.
fn help(doc: &str, default: Option<String>) -> String {
    let doc = doc.trim();
    match default {
        Some(d) => format!("{doc} [default: {d}]"),
        None => doc.to_owned(),
    }
}

/// Declares one section. Per field: its doc (the help text), key and type;
/// its flag and variable; `get`, what a `Config` holds for it (the default
/// in `--help` is `get` of `Config::default()`); `set`, how a value reaches
/// the `Config` (may use `?` with a `String` error); and a non-default
/// `sample` for the tests.
macro_rules! section {
    (
        $(#[doc = $sdoc:literal])*
        $name:ident [$table:literal] $heading:literal {$(
            #[doc = $doc:literal]
            $key:ident: $ty:ty,
            flag $flag:literal, env $env:literal,
            get |$gc:ident| $get:expr,
            set |$sc:ident, $sv:ident| $set:expr,
            sample $sample:literal;
        )*}
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Default, Clone, clap::Args, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[command(next_help_heading = $heading)]
        pub struct $name {$(
            #[doc = $doc]
            #[arg(
                id = $flag,
                long = $flag,
                value_name = <$ty as SettingValue>::VALUE_NAME,
                env = $env,
                hide_env_values = true,
                help = help($doc, (|$gc: &Config| -> Option<$ty> { $get })(&Config::default())
                    .map(|v| SettingValue::shown(&v))),
            )]
            pub $key: Option<$ty>,
        )*}

        impl $name {
            /// The table of `switchboard.toml` this section is.
            pub const TABLE: &'static str = $table;
            /// Its keys.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($key)),*];

            /// Each field set here, else the one in `lower`.
            pub fn or(self, lower: Self) -> Self {
                Self { $($key: self.$key.or(lower.$key)),* }
            }

            /// Write what is set into `config`.
            pub fn apply(self, config: &mut Config) -> Result<(), String> {
                $(
                    if let Some($sv) = self.$key {
                        let $sc = &mut *config;
                        $set;
                    }
                )*
                Ok(())
            }

            /// Relative paths become relative to `base`.
            pub fn rebase(&mut self, base: &Path) {
                $(
                    if let Some(v) = &mut self.$key {
                        SettingValue::rebase(v, base);
                    }
                )*
            }

            /// Every setting of this section.
            pub fn settings() -> Vec<Setting> {
                vec![$(
                    Setting {
                        table: $table,
                        key: stringify!($key),
                        flag: $flag,
                        env: $env,
                        sample: $sample,
                        sample_toml: || sample::<$ty>($sample).to_toml(),
                        sample_shown: || sample::<$ty>($sample).shown(),
                        read: |c| (|$gc: &Config| -> Option<$ty> { $get })(c)
                            .map(|v| SettingValue::shown(&v)),
                    },
                )*]
            }
        }
    };
}

/// A sample value, which the tests rely on being valid.
fn sample<T: SettingValue>(text: &str) -> T {
    match text.parse() {
        Ok(v) => v,
        Err(_) => panic!("the sample {text:?} does not parse"),
    }
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

section! {
    /// The top level of `switchboard.toml`.
    TopSettings [""] "Serving" {
        /// Address to serve clients on (ws://, or wss:// with TLS).
        listen: SocketAddr,
        flag "listen", env "SWITCHBOARD_LISTEN",
        get |c| Some(c.listen),
        set |c, v| c.listen = v,
        sample "127.0.0.1:4101";

        /// Log filter (tracing env-filter syntax), e.g. `info` or `switchboard=debug`.
        log: String,
        flag "log", env "SWITCHBOARD_LOG",
        get |c| Some(c.log.clone()),
        set |c, v| c.log = v,
        sample "switchboard=debug";

        /// How log lines are written: `text` (for people) or `json` (one object per line, for collectors).
        log_format: crate::config::log::LogFormat,
        flag "log-format", env "SWITCHBOARD_LOG_FORMAT",
        get |c| Some(c.log_format),
        set |c, v| c.log_format = v,
        sample "json";

        /// Seconds a drain (SIGTERM, `switchboard drain`) may take: clients are told to go with close 1012 over the first half, and the server exits once they have gone or the time is up (0: all at once).
        drain_secs: u64,
        flag "drain-secs", env "SWITCHBOARD_DRAIN_SECS",
        get |c| Some(secs(c.drain_time)),
        set |c, v| c.drain_time = Duration::from_secs(v),
        sample "10";

        /// Serve the web chat page at / on the public port (false: only the WebSocket endpoint).
        web_chat: bool,
        flag "web-chat", env "SWITCHBOARD_WEB_CHAT",
        get |c| Some(c.web_chat),
        set |c, v| c.web_chat = v,
        sample "false";

        /// Origins (scheme://host[:port], comma-separated; `*`: any) whose web pages may connect besides the server's own; other http(s) origins and `null` get HTTP 403.
        allowed_origins: AllowedOrigins,
        flag "allowed-origins", env "SWITCHBOARD_ALLOWED_ORIGINS",
        get |c| (!c.allowed_origins.is_empty()).then(|| c.allowed_origins.clone()),
        set |c, v| c.allowed_origins = v,
        sample "https://chat.example.com,http://localhost:8080";

        /// Refuse (403) an Origin of a non-web scheme (e.g. WeChat's `weapp://…`) unless --allowed-origins lists it.
        refuse_non_web_origins: bool,
        flag "refuse-non-web-origins", env "SWITCHBOARD_REFUSE_NON_WEB_ORIGINS",
        get |c| Some(c.refuse_non_web_origins),
        set |c, v| c.refuse_non_web_origins = v,
        sample "true";
    }
}

/// The TLS files, set one at a time (both are checked to be given first).
fn tls_files(c: &mut Config) -> &mut TlsFiles {
    c.tls.get_or_insert_with(|| TlsFiles {
        cert: PathBuf::new(),
        key: PathBuf::new(),
    })
}

section! {
    /// `[tls]`: serve wss:// (both or neither).
    TlsSettings ["tls"] "TLS ([tls])" {
        /// PEM certificate chain: serve wss:// (needs --tls-key).
        cert: PathBuf,
        flag "tls-cert", env "SWITCHBOARD_TLS_CERT",
        get |c| c.tls.as_ref().map(|t| t.cert.clone()),
        set |c, v| tls_files(c).cert = v,
        sample "/etc/switchboard/cert.pem";

        /// PEM private key for --tls-cert.
        key: PathBuf,
        flag "tls-key", env "SWITCHBOARD_TLS_KEY",
        get |c| c.tls.as_ref().map(|t| t.key.clone()),
        set |c, v| tls_files(c).key = v,
        sample "/etc/switchboard/key.pem";
    }
}

section! {
    /// `[limits]`: what one connection, one IP and all clients together may use.
    LimitsSettings ["limits"] "Limits ([limits])" {
        /// Largest message a client may send, in bytes; larger closes with 1009.
        max_message_bytes: usize,
        flag "max-message-bytes", env "SWITCHBOARD_MAX_MESSAGE_BYTES",
        get |c| Some(c.limits.max_message_bytes),
        set |c, v| c.limits.max_message_bytes = v,
        sample "2048";

        /// Frames queued for a slow client before it is closed with 4008.
        outbound_queue_frames: usize,
        flag "outbound-queue-frames", env "SWITCHBOARD_OUTBOUND_QUEUE_FRAMES",
        get |c| Some(c.limits.outbound_queue_frames),
        set |c, v| c.limits.outbound_queue_frames = v,
        sample "77";

        /// Bytes queued for a slow client before it is closed with 4008.
        outbound_queue_bytes: usize,
        flag "outbound-queue-bytes", env "SWITCHBOARD_OUTBOUND_QUEUE_BYTES",
        get |c| Some(c.limits.outbound_queue_bytes),
        set |c, v| c.limits.outbound_queue_bytes = v,
        sample "123456";

        /// Connections served at once; more get HTTP 503.
        max_connections: usize,
        flag "max-connections", env "SWITCHBOARD_MAX_CONNECTIONS",
        get |c| Some(c.limits.max_connections),
        set |c, v| c.limits.max_connections = v,
        sample "999";

        /// Seconds without a frame from a client before it is closed with 1001.
        idle_timeout_secs: u64,
        flag "idle-timeout-secs", env "SWITCHBOARD_IDLE_TIMEOUT_SECS",
        get |c| Some(secs(c.limits.idle_timeout)),
        set |c, v| c.limits.idle_timeout = Duration::from_secs(v),
        sample "33";

        /// Seconds allowed for the TLS handshake and for the HTTP upgrade, each.
        handshake_timeout_secs: u64,
        flag "handshake-timeout-secs", env "SWITCHBOARD_HANDSHAKE_TIMEOUT_SECS",
        get |c| Some(secs(c.limits.tls_handshake_timeout)),
        set |c, v| {
            c.limits.tls_handshake_timeout = Duration::from_secs(v);
            c.limits.upgrade_timeout = Duration::from_secs(v);
        },
        sample "4";

        /// Rooms one id may be in at once; a join past it is refused with `too-many-rooms`.
        max_rooms_per_id: usize,
        flag "max-rooms-per-id", env "SWITCHBOARD_MAX_ROOMS_PER_ID",
        get |c| Some(c.limits.max_rooms_per_id),
        set |c, v| c.limits.max_rooms_per_id = v,
        sample "12";

        /// Rooms at once, server-wide; a join that would make another is refused with `too-many-rooms`.
        max_rooms: usize,
        flag "max-rooms", env "SWITCHBOARD_MAX_ROOMS",
        get |c| Some(c.limits.max_rooms),
        set |c, v| c.limits.max_rooms = v,
        sample "500";

        /// Ids held for a resume at once, server-wide (each counts as a connection); past it the oldest hold ends early (default: a tenth of --max-connections).
        max_held: usize,
        flag "max-held", env "SWITCHBOARD_MAX_HELD",
        get |c| c.limits.max_held,
        set |c, v| c.limits.max_held = Some(v),
        sample "250";

        /// Frames per second one connection may send (0: no limit); past it, `rate-limited`.
        messages_per_sec: u32,
        flag "messages-per-sec", env "SWITCHBOARD_MESSAGES_PER_SEC",
        get |c| Some(c.limits.messages_per_sec),
        set |c, v| c.limits.messages_per_sec = v,
        sample "7";

        /// Frames one connection may send at once above --messages-per-sec.
        messages_burst: u32,
        flag "messages-burst", env "SWITCHBOARD_MESSAGES_BURST",
        get |c| Some(c.limits.messages_burst),
        set |c, v| c.limits.messages_burst = v,
        sample "14";

        /// Broadcasts per second one connection may cause (0: no limit).
        broadcasts_per_sec: u32,
        flag "broadcasts-per-sec", env "SWITCHBOARD_BROADCASTS_PER_SEC",
        get |c| Some(c.limits.broadcasts_per_sec),
        set |c, v| c.limits.broadcasts_per_sec = v,
        sample "3";

        /// Broadcasts one connection may cause at once above --broadcasts-per-sec.
        broadcasts_burst: u32,
        flag "broadcasts-burst", env "SWITCHBOARD_BROADCASTS_BURST",
        get |c| Some(c.limits.broadcasts_burst),
        set |c, v| c.limits.broadcasts_burst = v,
        sample "9";

        /// Presence and history queries (`members`, `online`, `history`) per second one connection may make (0: no limit); past it, `rate-limited`.
        queries_per_sec: u32,
        flag "queries-per-sec", env "SWITCHBOARD_QUERIES_PER_SEC",
        get |c| Some(c.limits.queries_per_sec),
        set |c, v| c.limits.queries_per_sec = v,
        sample "2";

        /// Queries one connection may make at once above --queries-per-sec.
        queries_burst: u32,
        flag "queries-burst", env "SWITCHBOARD_QUERIES_BURST",
        get |c| Some(c.limits.queries_burst),
        set |c, v| c.limits.queries_burst = v,
        sample "6";

        /// Bytes of partly received messages all connections together may hold (0: no limit); past it, a connection holding over 4 KiB of an unfinished message is closed with 1013.
        inbound_total_bytes: usize,
        flag "inbound-total-bytes", env "SWITCHBOARD_INBOUND_TOTAL_BYTES",
        get |c| Some(c.limits.inbound_total_bytes),
        set |c, v| c.limits.inbound_total_bytes = v,
        sample "9000000";

        /// Connections (handshaking or open) from one IP address; more get HTTP 503.
        max_connections_per_ip: usize,
        flag "max-connections-per-ip", env "SWITCHBOARD_MAX_CONNECTIONS_PER_IP",
        get |c| Some(c.limits.max_connections_per_ip),
        set |c, v| c.limits.max_connections_per_ip = v,
        sample "40";

        /// Handshakes (TLS or HTTP upgrade) in progress from one IP address; more are refused.
        max_handshakes_per_ip: usize,
        flag "max-handshakes-per-ip", env "SWITCHBOARD_MAX_HANDSHAKES_PER_IP",
        get |c| Some(c.limits.max_handshakes_per_ip),
        set |c, v| c.limits.max_handshakes_per_ip = v,
        sample "8";

        /// Bytes queued for all clients together; past it the largest queues are closed with 4008.
        outbound_total_bytes: usize,
        flag "outbound-total-bytes", env "SWITCHBOARD_OUTBOUND_TOTAL_BYTES",
        get |c| Some(c.limits.outbound_total_bytes),
        set |c, v| c.limits.outbound_total_bytes = v,
        sample "5000000";

        /// Seconds of quiet after which a connection is sent a WebSocket ping (0: never).
        ping_interval_secs: u64,
        flag "ping-interval-secs", env "SWITCHBOARD_PING_INTERVAL_SECS",
        get |c| Some(secs(c.limits.ping_interval)),
        set |c, v| c.limits.ping_interval = Duration::from_secs(v),
        sample "6";

        /// Seconds a client has to answer a ping (anything counts) before it is closed with 1001.
        pong_timeout_secs: u64,
        flag "pong-timeout-secs", env "SWITCHBOARD_PONG_TIMEOUT_SECS",
        get |c| Some(secs(c.limits.pong_timeout)),
        set |c, v| c.limits.pong_timeout = Duration::from_secs(v),
        sample "5";

        /// TCP keepalive idle time on accepted sockets, in seconds (0: off).
        tcp_keepalive_secs: u64,
        flag "tcp-keepalive-secs", env "SWITCHBOARD_TCP_KEEPALIVE_SECS",
        get |c| Some(secs(c.limits.tcp_keepalive)),
        set |c, v| c.limits.tcp_keepalive = Duration::from_secs(v),
        sample "17";
    }
}

section! {
    /// `[policy]`, the part that bounds one policy call and its state; the
    /// offline commands (`policy check`, `policy replay`) take these too.
    CallSettings ["policy"] "Policy calls ([policy])" {
        /// Milliseconds of CPU time one policy call may use (at least 1).
        call_deadline_ms: u64,
        flag "call-deadline-ms", env "SWITCHBOARD_CALL_DEADLINE_MS",
        get |c| Some(millis(c.policy_limits.call_deadline)),
        set |c, v| {
            if v == 0 {
                return Err("the call deadline must be at least 1 ms".into());
            }
            c.policy_limits.call_deadline = Duration::from_millis(v);
        },
        sample "25";

        /// Memory one policy instance may use, in MiB (1-4096).
        memory_mib: usize,
        flag "policy-memory-mib", env "SWITCHBOARD_POLICY_MEMORY_MIB",
        get |c| Some(c.policy_limits.memory_bytes / (1024 * 1024)),
        set |c, v| {
            if !(1..=4096).contains(&v) {
                return Err("the policy memory cap must be 1-4096 MiB".into());
            }
            c.policy_limits.memory_bytes = v * 1024 * 1024;
        },
        sample "32";

        /// Actions one policy call may return.
        max_actions: usize,
        flag "max-actions", env "SWITCHBOARD_MAX_ACTIONS",
        get |c| Some(c.policy_limits.max_actions),
        set |c, v| c.policy_limits.max_actions = v,
        sample "64";

        /// Bytes of frames one policy call may return (all actions together).
        max_output_bytes: usize,
        flag "max-output-bytes", env "SWITCHBOARD_MAX_OUTPUT_BYTES",
        get |c| Some(c.policy_limits.max_output_bytes),
        set |c, v| c.policy_limits.max_output_bytes = v,
        sample "65536";

        /// Entries the policy's host-held key-value state may hold.
        state_max_entries: usize,
        flag "state-max-entries", env "SWITCHBOARD_STATE_MAX_ENTRIES",
        get |c| Some(c.policy_limits.state_max_entries),
        set |c, v| c.policy_limits.state_max_entries = v,
        sample "5000";

        /// WASI resources one policy instance may hold; past it the call fails and the instance is replaced.
        max_resources: usize,
        flag "max-resources", env "SWITCHBOARD_MAX_RESOURCES",
        get |c| Some(c.policy_limits.max_resources),
        set |c, v| c.policy_limits.max_resources = v,
        sample "100";
    }
}

section! {
    /// `[policy]`, the rest: which component, reloading, rollback, recording.
    PolicySettings ["policy"] "Policy ([policy])" {
        /// Policy component (.wasm) to run instead of the embedded default.
        file: PathBuf,
        flag "policy", env "SWITCHBOARD_POLICY",
        get |c| match &c.policy {
            PolicySource::File(path) => Some(path.clone()),
            _ => None,
        },
        set |c, v| c.policy = PolicySource::File(v),
        sample "/srv/rules.wasm";

        /// Reload the --policy file when it changes (SIGHUP always reloads).
        watch: bool,
        flag "watch-policy", env "SWITCHBOARD_WATCH_POLICY",
        get |c| Some(c.watch_policy),
        set |c, v| c.watch_policy = v,
        sample "false";

        /// Failed calls after which a freshly swapped-in policy is rolled back (0: never).
        rollback_failures: u64,
        flag "rollback-failures", env "SWITCHBOARD_ROLLBACK_FAILURES",
        get |c| Some(c.policy_limits.rollback_failures),
        set |c, v| c.policy_limits.rollback_failures = v,
        sample "3";

        /// Seconds after a swap during which failures count towards a rollback.
        rollback_window_secs: u64,
        flag "rollback-window-secs", env "SWITCHBOARD_ROLLBACK_WINDOW_SECS",
        get |c| Some(secs(c.policy_limits.rollback_window)),
        set |c, v| c.policy_limits.rollback_window = Duration::from_secs(v),
        sample "9";

        /// Record every policy event to this JSON-lines file, for `policy replay` (holds message content).
        record_events: PathBuf,
        flag "record-events", env "SWITCHBOARD_RECORD_EVENTS",
        get |c| c.record_events.clone(),
        set |c, v| c.record_events = Some(v),
        sample "/var/log/switchboard/events.jsonl";

        /// Size at which the --record-events file is rotated, in bytes.
        record_max_bytes: u64,
        flag "record-max-bytes", env "SWITCHBOARD_RECORD_MAX_BYTES",
        get |c| Some(c.record_max_bytes),
        set |c, v| c.record_max_bytes = v,
        sample "1000000";
    }
}

section! {
    /// `[admin]`: the admin interface (policy status, swap, rollback, health).
    AdminSettings ["admin"] "Admin interface ([admin])" {
        /// Admin interface address (keep it off the public network), or `off`.
        listen: String,
        flag "admin-listen", env "SWITCHBOARD_ADMIN_LISTEN",
        get |c| Some(c.admin.as_ref().map_or_else(|| "off".to_owned(), |a| a.listen.to_string())),
        set |c, v| {
            if v == "off" {
                c.admin = None;
            } else if let Some(admin) = &mut c.admin {
                admin.listen = v.parse().map_err(|_| {
                    format!("admin listen address {v:?} is neither ip:port nor \"off\"")
                })?;
            }
        },
        sample "127.0.0.1:4102";

        /// Bearer token for the admin interface (16-256 visible characters); without one, a random token is made at start and written to --admin-token-file.
        token: String,
        flag "admin-token", env "SWITCHBOARD_ADMIN_TOKEN",
        get |c| c.admin.as_ref().and_then(|a| a.token.clone()),
        set |c, v| if let Some(admin) = &mut c.admin {
            admin.token = Some(v);
        },
        sample "sample-admin-token-0123456789";

        /// Where the token made at start is written (readable by this user only); `switchboard policy …` reads it.
        token_file: PathBuf,
        flag "admin-token-file", env "SWITCHBOARD_ADMIN_TOKEN_FILE",
        get |c| c.admin.as_ref().map(|a| a.token_file.clone()),
        set |c, v| if let Some(admin) = &mut c.admin {
            admin.token_file = v;
        },
        sample "/run/switchboard-test/admin-token";

        /// Where `GET /metrics` is also served, without the token, for a Prometheus scraper (ip:port, or `off`); keep it off the public network.
        metrics_listen: String,
        flag "metrics-listen", env "SWITCHBOARD_METRICS_LISTEN",
        get |c| Some(c.metrics_listen.map_or_else(|| "off".to_owned(), |a| a.to_string())),
        set |c, v| {
            c.metrics_listen = if v == "off" {
                None
            } else {
                Some(v.parse().map_err(|_| {
                    format!("metrics listen address {v:?} is neither ip:port nor \"off\"")
                })?)
            };
        },
        sample "127.0.0.1:4103";

        /// Largest component `PUT /admin/policy` accepts, in bytes.
        max_upload_bytes: usize,
        flag "admin-max-upload-bytes", env "SWITCHBOARD_ADMIN_MAX_UPLOAD_BYTES",
        get |c| c.admin.as_ref().map(|a| a.max_upload_bytes),
        set |c, v| if let Some(admin) = &mut c.admin {
            admin.max_upload_bytes = v;
        },
        sample "4096";

        /// Admin connections served at once (at least 1); more are answered 503 and closed.
        max_connections: usize,
        flag "admin-max-connections", env "SWITCHBOARD_ADMIN_MAX_CONNECTIONS",
        get |c| c.admin.as_ref().map(|a| a.max_connections),
        set |c, v| {
            if v == 0 {
                return Err("admin max connections must be at least 1".into());
            }
            if let Some(admin) = &mut c.admin {
                admin.max_connections = v;
            }
        },
        sample "8";

        /// Seconds an admin connection has to send a request's line and headers (at least 1); past it the connection is dropped.
        header_timeout_secs: u64,
        flag "admin-header-timeout-secs", env "SWITCHBOARD_ADMIN_HEADER_TIMEOUT_SECS",
        get |c| c.admin.as_ref().map(|a| secs(a.header_timeout)),
        set |c, v| {
            if v == 0 {
                return Err("the admin header timeout must be at least 1 second".into());
            }
            if let Some(admin) = &mut c.admin {
                admin.header_timeout = Duration::from_secs(v);
            }
        },
        sample "3";
    }
}

section! {
    /// `[auth]`: connections prove their id with a signed token (JWT) whose
    /// `sub` is the id. Without a secret or a public key, ids are trusted
    /// from the URL.
    AuthSettings ["auth"] "Signed tokens ([auth])" {
        /// HMAC secret for HS256 tokens (at least 32 bytes); also what `switchboard token` signs with.
        secret: String,
        flag "auth-secret", env "SWITCHBOARD_AUTH_SECRET",
        get |c| c.auth.as_ref().and_then(|a| a.secret.clone()),
        set |c, v| c.auth.get_or_insert_with(AuthConfig::default).secret = Some(v),
        sample "sample-auth-secret-0123456789abcdef0123";

        /// PEM public key (RSA for RS256, EC P-256 for ES256) for tokens signed elsewhere.
        public_key: PathBuf,
        flag "auth-public-key", env "SWITCHBOARD_AUTH_PUBLIC_KEY",
        get |c| c.auth.as_ref().and_then(|a| a.public_key.clone()),
        set |c, v| c.auth.get_or_insert_with(AuthConfig::default).public_key = Some(v),
        sample "/etc/switchboard/auth.pub.pem";

        /// Clock skew tolerated on a token's `exp`, `nbf` and `iat`, in seconds (only with a secret or key).
        leeway_secs: u64,
        flag "auth-leeway-secs", env "SWITCHBOARD_AUTH_LEEWAY_SECS",
        // After `secret` and `public_key`: it only refines an `[auth]` they turned on.
        get |c| Some(secs(c.auth.clone().unwrap_or_default().leeway)),
        set |c, v| if let Some(auth) = &mut c.auth {
            auth.leeway = Duration::from_secs(v);
        },
        sample "5";

        /// The `iss` every token must carry (only with a secret or key).
        issuer: String,
        flag "auth-issuer", env "SWITCHBOARD_AUTH_ISSUER",
        get |c| c.auth.as_ref().and_then(|a| a.issuer.clone()),
        set |c, v| if let Some(auth) = &mut c.auth {
            auth.issuer = Some(v);
        },
        sample "https://login.example.com";

        /// The audience every token's `aud` must name (only with a secret or key).
        audience: String,
        flag "auth-audience", env "SWITCHBOARD_AUTH_AUDIENCE",
        get |c| c.auth.as_ref().and_then(|a| a.audience.clone()),
        set |c, v| if let Some(auth) = &mut c.auth {
            auth.audience = Some(v);
        },
        sample "switchboard";

        /// Oldest a token may be, in seconds since its `iat` (which it must then carry; 0: no limit; only with a secret or key).
        max_age_secs: u64,
        flag "auth-max-age-secs", env "SWITCHBOARD_AUTH_MAX_AGE_SECS",
        get |c| c.auth.as_ref().and_then(|a| a.max_age).map(secs),
        set |c, v| if let Some(auth) = &mut c.auth {
            auth.max_age = (v > 0).then(|| Duration::from_secs(v));
        },
        sample "600";
    }
}

section! {
    /// `[recovery]`: what is kept so a client that reconnects loses nothing
    /// (room history, held sessions, stored notices; in memory, so a restart
    /// loses it).
    RecoverySettings ["recovery"] "Reconnecting without loss ([recovery])" {
        /// Messages kept per room for recovery and `history` (0: off).
        history_size: usize,
        flag "history-size", env "SWITCHBOARD_HISTORY_SIZE",
        get |c| Some(c.recovery.history_size),
        set |c, v| c.recovery.history_size = v,
        sample "20";

        /// Seconds a room message is kept.
        history_ttl_secs: u64,
        flag "history-ttl-secs", env "SWITCHBOARD_HISTORY_TTL_SECS",
        get |c| Some(secs(c.recovery.history_ttl)),
        set |c, v| c.recovery.history_ttl = Duration::from_secs(v),
        sample "60";

        /// Most messages one `join` with `since` replays; more missed → `recovered:false`.
        max_recover: usize,
        flag "max-recover", env "SWITCHBOARD_MAX_RECOVER",
        get |c| Some(c.recovery.max_recover),
        set |c, v| c.recovery.max_recover = v,
        sample "50";

        /// Seconds an id whose connection ended abnormally is held for `?resume=` (0: never).
        resume_window_secs: u64,
        flag "resume-window-secs", env "SWITCHBOARD_RESUME_WINDOW_SECS",
        get |c| Some(secs(c.recovery.resume_window)),
        set |c, v| c.recovery.resume_window = Duration::from_secs(v),
        sample "30";

        /// Notices stored per offline id (`store:true`); past it the oldest are dropped (0: no storing).
        stored_notices_per_id: usize,
        flag "stored-notices-per-id", env "SWITCHBOARD_STORED_NOTICES_PER_ID",
        get |c| Some(c.recovery.stored_notices_per_id),
        set |c, v| c.recovery.stored_notices_per_id = v,
        sample "10";

        /// Seconds a stored notice waits for its id.
        stored_notice_ttl_secs: u64,
        flag "stored-notice-ttl-secs", env "SWITCHBOARD_STORED_NOTICE_TTL_SECS",
        get |c| Some(secs(c.recovery.stored_notice_ttl)),
        set |c, v| c.recovery.stored_notice_ttl = Duration::from_secs(v),
        sample "3600";

        /// Deprecated (one more release): history and notices together; sets half of each of --history-max-bytes and --notices-max-bytes, which win when given.
        max_bytes: usize,
        flag "recovery-max-bytes", env "SWITCHBOARD_RECOVERY_MAX_BYTES",
        get |c| c.recovery.deprecated_max_bytes,
        set |c, v| {
            c.recovery.deprecated_max_bytes = Some(v);
            c.recovery.history_max_bytes = v / 2;
            c.recovery.notices_max_bytes = v - v / 2;
        },
        sample "1000000";

        /// Bytes of every room's history (frames, keys and per-entry overhead); only history is ever trimmed for it.
        history_max_bytes: usize,
        flag "history-max-bytes", env "SWITCHBOARD_HISTORY_MAX_BYTES",
        get |c| Some(c.recovery.history_max_bytes),
        set |c, v| c.recovery.history_max_bytes = v,
        sample "2000000";

        /// Bytes of every stored notice (frames, ids and per-entry overhead); past it `store:true` is answered `target-closed`.
        notices_max_bytes: usize,
        flag "notices-max-bytes", env "SWITCHBOARD_NOTICES_MAX_BYTES",
        get |c| Some(c.recovery.notices_max_bytes),
        set |c, v| c.recovery.notices_max_bytes = v,
        sample "3000000";

        /// Stored notices one sender may have outstanding, all recipients together; past it `store-quota`.
        stored_notices_per_sender: usize,
        flag "stored-notices-per-sender", env "SWITCHBOARD_STORED_NOTICES_PER_SENDER",
        get |c| Some(c.recovery.stored_notices_per_sender),
        set |c, v| c.recovery.stored_notices_per_sender = v,
        sample "40";

        /// Stored notices one sender may have outstanding for one recipient; past it `store-quota`.
        stored_notices_per_pair: usize,
        flag "stored-notices-per-pair", env "SWITCHBOARD_STORED_NOTICES_PER_PAIR",
        get |c| Some(c.recovery.stored_notices_per_pair),
        set |c, v| c.recovery.stored_notices_per_pair = v,
        sample "7";
    }
}

section! {
    /// `[cluster]`: several nodes on one Redis, and this node's id (which
    /// exists without a cluster too).
    ClusterSettings ["cluster"] "Cluster ([cluster])" {
        /// Redis for cluster mode: redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss://… (TLS); without it everything stays in this process's memory. Every node of a deployment is given the same one (docs/CLUSTER.md).
        url: UrlText,
        flag "cluster", env "SWITCHBOARD_CLUSTER",
        get |c| c.cluster.as_ref().map(|k| UrlText(k.url.to_string())),
        set |c, v| c.cluster = Some(ClusterConfig::new(RedisUrl::parse(&v.0)?)),
        sample "redis://127.0.0.1:6380/2";

        /// What every Redis key and channel of this deployment starts with (1-64 of A-Z a-z 0-9 _ . - :; only with --cluster): PUB/SUB ignores the DB number, so two deployments on one Redis need two prefixes.
        prefix: String,
        flag "cluster-prefix", env "SWITCHBOARD_CLUSTER_PREFIX",
        // After `url`: it only refines a cluster that `url` turned on.
        get |c| Some(c.cluster.as_ref().map_or_else(
            || crate::config::cluster::DEFAULT_PREFIX.to_owned(),
            |k| k.prefix.to_string(),
        )),
        set |c, v| {
            let prefix = ClusterPrefix::parse(&v)?;
            if let Some(cluster) = &mut c.cluster {
                cluster.prefix = prefix;
            }
        },
        sample "chat-eu:";

        /// This node's id in the start line, /healthz and Redis (1-64 of A-Z a-z 0-9 _ . -; default: a random one made at start).
        node_id: String,
        flag "node-id", env "SWITCHBOARD_NODE_ID",
        get |c| c.node_id.is_given().then(|| c.node_id.to_string()),
        set |c, v| c.node_id = NodeId::parse(&v)?,
        sample "node-a1";
    }
}

/// Declares [`Settings`], every section together.
macro_rules! settings {
    ($($field:ident: $section:ident),* $(,)?) => {
        /// Every serving setting, section by section: the command line's
        /// flags and variables, or the whole of `switchboard.toml`.
        #[derive(Debug, Default, Clone, clap::Args)]
        pub struct Settings {$(
            #[doc = concat!("The settings of ", stringify!($section), ".")]
            #[command(flatten)]
            pub $field: $section,
        )*}

        impl Settings {
            /// Each setting given here, else the one in `lower`.
            pub fn or(self, lower: Settings) -> Settings {
                Settings { $($field: self.$field.or(lower.$field)),* }
            }

            /// The defaults with these settings applied.
            pub fn to_config(&self) -> Result<Config, String> {
                if self.tls.cert.is_some() != self.tls.key.is_some() {
                    return Err(
                        "TLS needs both a certificate and a key (--tls-cert and --tls-key)".into(),
                    );
                }
                let mut config = Config::default();
                $(self.$field.clone().apply(&mut config)?;)*
                Ok(config)
            }

            /// Every setting, for tests and tools.
            pub fn all() -> Vec<Setting> {
                let mut all = Vec::new();
                $(all.extend($section::settings());)*
                all
            }

            /// The settings of a parsed `switchboard.toml`; relative paths
            /// become relative to `base`. Errors name the unknown or bad key.
            pub fn from_table(mut table: toml::Table, base: &Path) -> Result<Settings, String> {
                let settings = Settings {$(
                    $field: {
                        let part = take(&mut table, $section::TABLE, $section::KEYS)?;
                        let mut s: $section = toml::Value::Table(part).try_into().map_err(|e| {
                            format!("{}{}", where_($section::TABLE), e.to_string().trim().replace('\n', " "))
                        })?;
                        s.rebase(base);
                        s
                    },
                )*};
                unknown(table)?;
                Ok(settings)
            }
        }
    };
}

settings! {
    top: TopSettings,
    tls: TlsSettings,
    limits: LimitsSettings,
    call: CallSettings,
    policy: PolicySettings,
    admin: AdminSettings,
    auth: AuthSettings,
    recovery: RecoverySettings,
    cluster: ClusterSettings,
}

fn where_(table: &str) -> String {
    if table.is_empty() {
        String::new()
    } else {
        format!("[{table}] ")
    }
}

/// Remove `keys` from `table` (or from its sub-table `name`).
fn take(root: &mut toml::Table, name: &str, keys: &[&str]) -> Result<toml::Table, String> {
    let from = if name.is_empty() {
        root
    } else {
        match root.get_mut(name) {
            Some(toml::Value::Table(t)) => t,
            Some(_) => return Err(format!("`{name}` must be a table ([{name}])")),
            None => return Ok(toml::Table::new()),
        }
    };
    Ok(keys
        .iter()
        .filter_map(|k| from.remove(*k).map(|v| ((*k).to_owned(), v)))
        .collect())
}

/// What is left once every section has taken its keys must be nothing but
/// emptied tables.
fn unknown(rest: toml::Table) -> Result<(), String> {
    for (name, value) in rest {
        match value {
            toml::Value::Table(t) if is_section(&name) => {
                if let Some(key) = t.keys().next() {
                    return Err(format!(
                        "unknown key `{key}` in [{name}] (known: {})",
                        known(&name)
                    ));
                }
            }
            _ => {
                return Err(format!(
                    "unknown key `{name}` (known: {}, and the tables {})",
                    known(""),
                    tables()
                ));
            }
        }
    }
    Ok(())
}

fn is_section(name: &str) -> bool {
    !name.is_empty() && Settings::all().iter().any(|s| s.table == name)
}

fn known(table: &str) -> String {
    let keys: Vec<_> = Settings::all()
        .into_iter()
        .filter(|s| s.table == table)
        .map(|s| s.key)
        .collect();
    keys.join(", ")
}

fn tables() -> String {
    let mut names: Vec<_> = Settings::all()
        .into_iter()
        .filter(|s| !s.table.is_empty())
        .map(|s| format!("[{}]", s.table))
        .collect();
    names.dedup();
    names.join(", ")
}
