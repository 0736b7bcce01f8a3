//! The command line: `switchboard [serve] [FLAGS]` and
//! `switchboard policy <swap|status|rollback|check|replay>`.
//!
//! Serving settings come from, highest first: flags, `SWITCHBOARD_*`
//! variables, `switchboard.toml`, the defaults in `config.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{AdminConfig, Config, PolicyLimits, PolicySource, TlsFiles};
use crate::config_file::{ConfigFileError, FileConfig};

/// A WebSocket chat server whose chat rules run as a sandboxed WebAssembly
/// component.
#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Serving flags, when no command is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve chat clients (the default).
    Serve(Box<ServeArgs>),
    /// Manage the chat rules of a running server, or check and replay a
    /// component offline.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// `switchboard policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Upload a component to the running server and make it the active
    /// policy (only if it compiles, matches the world and instantiates).
    Swap {
        /// The component (.wasm).
        file: PathBuf,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show the active version, the previous one and the last rollback.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Restore the previous version on the running server.
    Rollback {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Offline: does this component satisfy the world, does it
    /// instantiate under the limits, what does it import.
    Check {
        /// The component (.wasm).
        file: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Offline: run recorded events through a component (with a simulated
    /// registry) and print the actions it decides; with --against, print
    /// only the events where two components decide differently.
    Replay {
        /// The component (.wasm).
        file: PathBuf,
        /// Recorded events (JSON lines, from `--record-events`).
        #[arg(long)]
        events: PathBuf,
        /// A second component to compare with.
        #[arg(long)]
        against: Option<PathBuf>,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

/// How the policy commands reach the admin interface.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Admin interface URL [default: from switchboard.toml, else http://127.0.0.1:3002].
    #[arg(long, env = "SWITCHBOARD_ADMIN_URL")]
    pub admin_url: Option<String>,
    /// Bearer token [default: from switchboard.toml].
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Settings file to read the admin address and token from.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Policy limits for the offline commands (same meaning as when serving).
#[derive(Debug, Args, Default)]
pub struct LimitArgs {
    /// Milliseconds one policy call may run [default: 10].
    #[arg(long, env = "SWITCHBOARD_CALL_DEADLINE_MS")]
    pub call_deadline_ms: Option<u64>,
    /// Memory one policy instance may use, in MiB [default: 16].
    #[arg(long, env = "SWITCHBOARD_POLICY_MEMORY_MIB")]
    pub policy_memory_mib: Option<usize>,
    /// Actions one policy call may return [default: 256].
    #[arg(long, env = "SWITCHBOARD_MAX_ACTIONS")]
    pub max_actions: Option<usize>,
    /// Bytes of frames one policy call may return [default: 1048576].
    #[arg(long, env = "SWITCHBOARD_MAX_OUTPUT_BYTES")]
    pub max_output_bytes: Option<usize>,
}

/// Serving flags; each overrides `switchboard.toml`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Settings file [default: ./switchboard.toml if it exists].
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:3001].
    #[arg(long, env = "SWITCHBOARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain: serve wss:// (needs --tls-key).
    #[arg(long, env = "SWITCHBOARD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "SWITCHBOARD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Policy component (.wasm) to run instead of the embedded default.
    #[arg(long, env = "SWITCHBOARD_POLICY")]
    pub policy: Option<PathBuf>,
    /// Reload the --policy file when it changes [default: true].
    #[arg(long, env = "SWITCHBOARD_WATCH_POLICY")]
    pub watch_policy: Option<bool>,
    /// Largest message a client may send, in bytes [default: 65536].
    #[arg(long, env = "SWITCHBOARD_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Frames queued for a slow client before it is closed with 4008 [default: 1024].
    #[arg(long, env = "SWITCHBOARD_OUTBOUND_QUEUE_FRAMES")]
    pub outbound_queue_frames: Option<usize>,
    /// Bytes queued for a slow client before it is closed with 4008 [default: 4194304].
    #[arg(long, env = "SWITCHBOARD_OUTBOUND_QUEUE_BYTES")]
    pub outbound_queue_bytes: Option<usize>,
    /// Connections served at once; more get HTTP 503 [default: 100000].
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds without a frame from a client before it is closed with 1001 [default: 300].
    #[arg(long, env = "SWITCHBOARD_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds allowed for the TLS handshake and for the HTTP upgrade, each [default: 10].
    #[arg(long, env = "SWITCHBOARD_HANDSHAKE_TIMEOUT_SECS")]
    pub handshake_timeout_secs: Option<u64>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Failed calls after which a freshly swapped-in policy is rolled back (0: never) [default: 10].
    #[arg(long, env = "SWITCHBOARD_ROLLBACK_FAILURES")]
    pub rollback_failures: Option<u64>,
    /// Seconds after a swap during which failures count towards a rollback [default: 60].
    #[arg(long, env = "SWITCHBOARD_ROLLBACK_WINDOW_SECS")]
    pub rollback_window_secs: Option<u64>,
    /// Admin interface address, or `off` [default: 127.0.0.1:3002].
    #[arg(long, env = "SWITCHBOARD_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// Bearer token for the admin interface (required off loopback).
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Record every policy event to this JSON-lines file (for `policy replay`).
    #[arg(long, env = "SWITCHBOARD_RECORD_EVENTS")]
    pub record_events: Option<PathBuf>,
    /// Log filter (tracing env-filter syntax), e.g. `info` or `switchboard=debug` [default: info].
    #[arg(long, env = "SWITCHBOARD_LOG")]
    pub log: Option<String>,
    /// Benchmarks only: run the default rules compiled into the host instead
    /// of the sandboxed policy.
    #[cfg(feature = "native-rules")]
    #[arg(long)]
    pub native_rules: bool,
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The settings file.
    #[error(transparent)]
    File(#[from] ConfigFileError),
    /// Something else, said plainly.
    #[error("{0}")]
    Invalid(String),
}

impl ServeArgs {
    /// The configuration these flags and `file` describe, and the log filter.
    pub fn into_config(self, file: FileConfig) -> Result<(Config, String), ConfigError> {
        let FileConfig {
            listen,
            log,
            tls,
            limits: fl,
            policy: fp,
            admin: fa,
        } = file;
        let mut c = Config::default();
        set(&mut c.listen, self.listen.or(listen));
        let cert = self.tls_cert.or(tls.cert);
        let key = self.tls_key.or(tls.key);
        c.tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "TLS needs both a certificate and a key (--tls-cert and --tls-key)".into(),
                ));
            }
        };
        if let Some(path) = self.policy.or(fp.file) {
            c.policy = PolicySource::File(path);
        }
        set(&mut c.watch_policy, self.watch_policy.or(fp.watch));
        c.record_events = self.record_events.or(fp.record_events);

        let l = &mut c.limits;
        set(
            &mut l.max_message_bytes,
            self.max_message_bytes.or(fl.max_message_bytes),
        );
        set(
            &mut l.outbound_queue_frames,
            self.outbound_queue_frames.or(fl.outbound_queue_frames),
        );
        set(
            &mut l.outbound_queue_bytes,
            self.outbound_queue_bytes.or(fl.outbound_queue_bytes),
        );
        set(
            &mut l.max_connections,
            self.max_connections.or(fl.max_connections),
        );
        set(
            &mut l.idle_timeout,
            self.idle_timeout_secs
                .or(fl.idle_timeout_secs)
                .map(Duration::from_secs),
        );
        if let Some(secs) = self.handshake_timeout_secs.or(fl.handshake_timeout_secs) {
            l.tls_handshake_timeout = Duration::from_secs(secs);
            l.upgrade_timeout = Duration::from_secs(secs);
        }

        let limits = LimitArgs {
            call_deadline_ms: self.limits.call_deadline_ms.or(fp.call_deadline_ms),
            policy_memory_mib: self.limits.policy_memory_mib.or(fp.memory_mib),
            max_actions: self.limits.max_actions.or(fp.max_actions),
            max_output_bytes: self.limits.max_output_bytes.or(fp.max_output_bytes),
        };
        c.policy_limits = limits.into_limits()?;
        let p = &mut c.policy_limits;
        set(
            &mut p.rollback_failures,
            self.rollback_failures.or(fp.rollback_failures),
        );
        set(
            &mut p.rollback_window,
            self.rollback_window_secs
                .or(fp.rollback_window_secs)
                .map(Duration::from_secs),
        );

        c.admin = match self.admin_listen.or(fa.listen).as_deref() {
            Some("off") => None,
            listen => {
                let mut admin = AdminConfig::default();
                if let Some(addr) = listen {
                    admin.listen = addr.parse().map_err(|_| {
                        ConfigError::Invalid(format!(
                            "admin listen address {addr:?} is neither ip:port nor \"off\""
                        ))
                    })?;
                }
                admin.token = self.admin_token.or(fa.token);
                set(&mut admin.max_upload_bytes, fa.max_upload_bytes);
                Some(admin)
            }
        };
        let log = self.log.or(log).unwrap_or_else(|| "info".to_owned());
        Ok((c, log))
    }
}

impl LimitArgs {
    /// Policy limits with these overrides.
    pub fn into_limits(self) -> Result<PolicyLimits, ConfigError> {
        let mut p = PolicyLimits::default();
        if self.call_deadline_ms == Some(0) {
            return Err(ConfigError::Invalid(
                "the call deadline must be at least 1 ms".into(),
            ));
        }
        set(
            &mut p.call_deadline,
            self.call_deadline_ms.map(Duration::from_millis),
        );
        if let Some(mib) = self.policy_memory_mib {
            if !(1..=4096).contains(&mib) {
                return Err(ConfigError::Invalid(
                    "the policy memory cap must be 1-4096 MiB".into(),
                ));
            }
            p.memory_bytes = mib * 1024 * 1024;
        }
        set(&mut p.max_actions, self.max_actions);
        set(&mut p.max_output_bytes, self.max_output_bytes);
        Ok(p)
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}
