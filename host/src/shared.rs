//! What every connection task shares: the cheap-to-clone server context.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::Limits;
use crate::policy::Policy;
use crate::record::Recorder;
use crate::registry::Registry;

/// Shared by the accept loop and every session (behind an `Arc`).
#[derive(Debug)]
pub struct Shared {
    /// Who is online and where.
    pub registry: Registry,
    /// The chat rules.
    pub policy: Policy,
    /// Per-connection limits.
    pub limits: Limits,
    /// tungstenite settings derived from `limits`.
    pub ws_config: WebSocketConfig,
    /// Whether connections arrive over TLS.
    pub secure: bool,
    /// Connections being served (handshaking or open).
    pub connections: AtomicUsize,
    /// Set once shutdown starts: new sessions close at once.
    pub shutting_down: AtomicBool,
    /// Where policy events are recorded, if they are.
    pub recorder: Option<Recorder>,
    /// The default rules compiled in, used instead of the policy
    /// (benchmarks only).
    #[cfg(feature = "native-rules")]
    pub native: Option<crate::native::NativeRules>,
}

impl Shared {
    /// Record `event` if recording is on.
    pub fn record(&self, event: impl FnOnce() -> crate::record::Event) {
        if let Some(r) = &self.recorder {
            r.record(event());
        }
    }

    /// Whether shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

/// Counts a connection for as long as it lives.
pub struct ConnectionGuard<'a>(&'a Shared);

impl<'a> ConnectionGuard<'a> {
    /// Count one more connection; `None` if the limit is reached.
    pub fn try_new(shared: &'a Shared) -> Option<Self> {
        let before = shared.connections.fetch_add(1, Ordering::SeqCst);
        let guard = ConnectionGuard(shared);
        (before < shared.limits.max_connections).then_some(guard)
    }
}

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// tungstenite settings for `limits`: small read buffer, bounded write buffer.
pub fn ws_config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(limits.read_buffer_bytes)
        .write_buffer_size(limits.write_buffer_bytes)
        .max_write_buffer_size(
            limits.write_buffer_bytes + 2 * limits.max_message_bytes.max(64 * 1024),
        )
        .max_message_size(Some(limits.max_message_bytes))
        .max_frame_size(Some(limits.max_message_bytes))
}
