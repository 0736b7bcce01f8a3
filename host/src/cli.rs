//! The command line. Every flag can also be set from the environment
//! (`SWITCHBOARD_*`); anything not given keeps the default in `config.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::config::{Config, PolicySource, TlsFiles};

/// A WebSocket chat server whose chat rules run as a sandboxed WebAssembly
/// component.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "0.0.0.0:3001")]
    pub listen: SocketAddr,
    /// PEM certificate chain: serve wss:// (needs --tls-key).
    #[arg(long, env = "SWITCHBOARD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "SWITCHBOARD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Policy component (.wasm) to run instead of the embedded default.
    #[arg(long, env = "SWITCHBOARD_POLICY")]
    pub policy: Option<PathBuf>,
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
    /// Log filter (tracing env-filter syntax), e.g. `info` or `switchboard=debug`.
    #[arg(long, env = "SWITCHBOARD_LOG", default_value = "info")]
    pub log: String,
}

impl Cli {
    /// The configuration these flags describe.
    pub fn into_config(self) -> Config {
        let mut c = Config {
            listen: self.listen,
            ..Config::default()
        };
        if let (Some(cert), Some(key)) = (self.tls_cert, self.tls_key) {
            c.tls = Some(TlsFiles { cert, key });
        }
        if let Some(path) = self.policy {
            c.policy = PolicySource::File(path);
        }
        let l = &mut c.limits;
        set(&mut l.max_message_bytes, self.max_message_bytes);
        set(&mut l.outbound_queue_frames, self.outbound_queue_frames);
        set(&mut l.outbound_queue_bytes, self.outbound_queue_bytes);
        set(&mut l.max_connections, self.max_connections);
        set(
            &mut l.idle_timeout,
            self.idle_timeout_secs.map(Duration::from_secs),
        );
        if let Some(secs) = self.handshake_timeout_secs {
            l.tls_handshake_timeout = Duration::from_secs(secs);
            l.upgrade_timeout = Duration::from_secs(secs);
        }
        let p = &mut c.policy_limits;
        set(
            &mut p.call_deadline,
            self.call_deadline_ms.map(Duration::from_millis),
        );
        set(
            &mut p.memory_bytes,
            self.policy_memory_mib.map(|m| m * 1024 * 1024),
        );
        set(&mut p.max_actions, self.max_actions);
        set(&mut p.max_output_bytes, self.max_output_bytes);
        c
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}
