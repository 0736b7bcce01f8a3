//! What every connection task shares: the cheap-to-clone server context.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::chat::Chat;
use crate::chat::outbound::Budget;
use crate::chat::record::Recorder;
use crate::chat::registry::Registry;
use crate::config::{Limits, Recovery};
use crate::net::admission::Admission;
use crate::policy::{Policy, World};
use crate::store::bus::Bus;
use crate::store::history::History;
use crate::store::notices::Notices;
use crate::store::sessions::Sessions;

/// Shared by the accept loop and every session (behind an `Arc`).
#[derive(Debug)]
pub struct Shared {
    /// Who is online and where.
    pub registry: Registry,
    /// Every room's kept messages.
    pub history: Arc<dyn History>,
    /// Notices kept for offline ids.
    pub notices: Arc<dyn Notices>,
    /// Everything that crosses connections.
    pub bus: Arc<dyn Bus>,
    /// Who is online, cluster-wide (the admin interface's connections).
    pub presence: Arc<dyn crate::store::presence::Presence>,
    /// Ids held for a resume, with the queue that collects what they miss
    /// and their place in the admission counts.
    pub sessions: Arc<dyn Sessions<crate::net::session::Kept>>,
    /// What is kept for reconnecting clients, and for how long.
    pub recovery: Recovery,
    /// The chat rules.
    pub policy: Policy,
    /// Per-connection limits.
    pub limits: Limits,
    /// The rate buckets of ids whose connection ended, for their next one.
    pub quotas: crate::chat::rate::Kept,
    /// tungstenite settings derived from `limits`.
    pub ws_config: WebSocketConfig,
    /// Whether connections arrive over TLS.
    pub secure: bool,
    /// Whether the chat page is served at `/`.
    pub web_chat: bool,
    /// This node's id, for the start line.
    pub node_id: crate::config::node::NodeId,
    /// Checks the signed token that proves an id (`None`: ids are trusted
    /// from the URL).
    pub auth: Option<crate::net::auth::Verifier>,
    /// Which web pages may open a WebSocket (the upgrade's `Origin`).
    pub origins: crate::net::origin::OriginPolicy,
    /// Connections admitted (handshaking or open), server-wide and per IP.
    pub admission: Arc<Admission>,
    /// Bytes queued to all clients together.
    pub budget: Arc<Budget>,
    /// Bytes of partly received messages, all clients together.
    pub inbound: Arc<crate::net::inbound::InboundBudget>,
    /// Set once shutdown starts: new sessions close at once.
    pub shutting_down: AtomicBool,
    /// Asked once a drain starts (`switchboard drain`, SIGTERM): new
    /// sessions are told to go with 1012 at once.
    pub drain: crate::net::drain::Drainer,
    /// Where policy events are recorded, if they are.
    pub recorder: Option<Recorder>,
    /// The default rules compiled in, used instead of the policy
    /// (benchmarks only).
    #[cfg(feature = "native-rules")]
    pub native: Option<crate::chat::native::NativeRules>,
}

impl Shared {
    /// What carrying out a decision touches.
    pub fn chat(&self) -> Chat<'_> {
        Chat {
            registry: &self.registry,
            history: &*self.history,
            notices: &*self.notices,
            bus: &*self.bus,
        }
    }

    /// Whether the rules speak protocol v2 (world 0.2.0, or the native
    /// rules): only then is a connection given a session, and held for a
    /// resume when it ends abnormally.
    pub fn speaks_v2(&self) -> bool {
        #[cfg(feature = "native-rules")]
        if self.native.is_some() {
            return true;
        }
        self.policy.active_world() == World::V0_2_0
    }

    /// Who decides, and where events are recorded (for `chat::decide`).
    pub fn decider(&self) -> crate::chat::decide::Rules<'_> {
        crate::chat::decide::Rules {
            policy: &self.policy,
            recorder: self.recorder.as_ref(),
            #[cfg(feature = "native-rules")]
            native: self.native.as_ref(),
        }
    }

    /// Which rules decide: `"native"` (compiled in, benchmarks) or `"wasm"`.
    pub fn rules(&self) -> &'static str {
        #[cfg(feature = "native-rules")]
        if self.native.is_some() {
            return "native";
        }
        "wasm"
    }

    /// Everything `/metrics` shows, read now.
    pub fn figures(&self) -> crate::metrics::Sources {
        use crate::metrics::{FrameKind, Limit, Refused};
        let counters = self.registry.counters();
        let history = self.history.usage();
        crate::metrics::Sources {
            transport: if self.secure { "wss" } else { "ws" },
            opened: counters.opened_total(),
            open: counters.open_now(),
            closed: counters.closed_by_code().collect(),
            refused: Refused::ALL
                .iter()
                .map(|r| (*r, counters.refused_total(*r)))
                .collect(),
            frames_in: FrameKind::ALL
                .iter()
                .map(|k| (*k, counters.frames_in.get(*k)))
                .collect(),
            frames_out: FrameKind::ALL
                .iter()
                .map(|k| (*k, self.budget.frames_out.get(*k)))
                .collect(),
            room_deliveries: counters.room_deliveries(),
            overflows: self.budget.overflows(),
            queued: (self.budget.total() as u64, self.inbound.total() as u64),
            limited: Limit::ALL
                .iter()
                .map(|l| (*l, counters.limited_total(*l)))
                .collect(),
            policy: self.policy.figures(),
            rooms: self.registry.room_count() as u64,
            held: self.sessions.len() as u64,
            history: (
                history.rooms as u64,
                history.messages as u64,
                history.bytes as u64,
            ),
            notices: (
                self.notices.stored().map(|n| n as u64),
                self.notices.bytes() as u64,
            ),
            limits: (
                self.limits.max_connections as u64,
                self.history.limits().max_total_bytes as u64,
                self.notices.limits().max_total_bytes as u64,
            ),
            cluster: self.bus.figures(),
        }
    }

    /// Whether shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
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
