//! The host's own view of what crosses the sandbox boundary. The rest of the
//! server speaks these types; only `policy/` knows the generated bindings.

/// One WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Frame {
    /// Text (valid UTF-8).
    Text(String),
    /// Binary.
    Binary(Vec<u8>),
}

impl Frame {
    /// Payload size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(s) => s.len(),
            Frame::Binary(b) => b.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the host tells the policy about a new connection.
#[derive(Debug, Clone)]
pub struct ConnectInfo {
    /// The validated id from the URL.
    pub id: String,
    /// `ip:port` of the peer.
    pub remote_addr: String,
    /// Request path.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// Selected headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Arrived over TLS.
    pub secure: bool,
    /// The verified token's claims when signed tokens are on (world 0.1.0
    /// does not pass them to the policy).
    pub claims: Option<serde_json::Map<String, serde_json::Value>>,
    /// The session this connection gets (world 0.2.0).
    pub session: String,
    /// Whether it resumed a held session (world 0.2.0).
    pub resumed: bool,
}

/// A place in a room's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    /// The room's epoch (changes whenever its history is lost).
    pub epoch: String,
    /// A kept message's offset (+1 per kept message).
    pub offset: u64,
}

/// A refusal at the handshake.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reject {
    /// HTTP status (400-599 once normalised by the host).
    pub status: u16,
    /// Response body.
    pub reason: String,
}

/// One decision of the policy (see wit/policy.wit for the semantics).
/// Shown (replay, recordings) with WIT's names: kebab-case for the
/// variants and their fields alike (`send-room`, `on-joined`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", rename_all_fields = "kebab-case")]
pub enum Action {
    /// To the connection the event is about.
    Reply(Frame),
    /// To one id, with optional answers to the caller.
    Send {
        /// Recipient.
        to: String,
        /// What it gets.
        frame: Frame,
        /// Replied to the caller once queued.
        on_sent: Option<Frame>,
        /// Replied to the caller if `to` cannot take it.
        on_closed: Option<Frame>,
        /// Replied to the caller instead of `on_sent` when `to` is held.
        #[serde(skip_serializing_if = "Option::is_none")]
        on_held: Option<Frame>,
        /// Keep the frame for an offline `to`.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        store: bool,
        /// Replied to the caller when the frame was stored.
        #[serde(skip_serializing_if = "Option::is_none")]
        on_stored: Option<Frame>,
    },
    /// To a room's members.
    SendRoom {
        /// The room.
        room: String,
        /// What they get.
        frame: Frame,
        /// A member to skip.
        except: Option<String>,
        /// Not kept in the room's history.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        transient: bool,
    },
    /// To everyone online.
    Broadcast {
        /// What they get.
        frame: Frame,
        /// A connection to skip.
        except: Option<String>,
    },
    /// Add an id to a room.
    Join {
        /// Who.
        id: String,
        /// Where.
        room: String,
        /// Replay what was missed after this position.
        #[serde(skip_serializing_if = "Option::is_none")]
        since: Option<Position>,
        /// Replied to the caller after the call's other actions, with the
        /// room's position added.
        #[serde(skip_serializing_if = "Option::is_none")]
        on_joined: Option<Frame>,
    },
    /// Remove an id from a room.
    Leave {
        /// Who.
        id: String,
        /// Where.
        room: String,
    },
    /// End a connection.
    Close {
        /// Whose.
        id: String,
        /// WebSocket close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
}

impl Action {
    /// Bytes of every string and frame this action carries: ids, rooms,
    /// reasons and frames alike (what the per-call output cap counts).
    pub fn output_bytes(&self) -> usize {
        let frame = |f: &Option<Frame>| f.as_ref().map_or(0, Frame::len);
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        match self {
            Action::Reply(f) => f.len(),
            Action::Send {
                to,
                frame: f,
                on_sent,
                on_closed,
                on_held,
                on_stored,
                ..
            } => {
                to.len()
                    + f.len()
                    + frame(on_sent)
                    + frame(on_closed)
                    + frame(on_held)
                    + frame(on_stored)
            }
            Action::SendRoom {
                room,
                frame: f,
                except,
                ..
            } => room.len() + f.len() + text(except),
            Action::Broadcast { frame: f, except } => f.len() + text(except),
            Action::Join {
                id,
                room,
                since,
                on_joined,
            } => {
                id.len()
                    + room.len()
                    + since.as_ref().map_or(0, |p| p.epoch.len())
                    + frame(on_joined)
            }
            Action::Leave { id, room } => id.len() + room.len(),
            Action::Close { id, reason, .. } => id.len() + reason.len(),
        }
    }
}

/// Why a call produced no decision. The sender gets `policy-failed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The guest trapped (panic, unreachable, bad memory access…).
    #[error("policy trapped: {0}")]
    Trap(String),
    /// The call ran past its deadline and was interrupted.
    #[error("policy ran out of time ({0} ms)")]
    Timeout(u64),
    /// The guest tried to grow its memory past the cap.
    #[error("policy exceeded its memory limit ({0} bytes)")]
    Memory(usize),
    /// Too many actions returned (refused before any was copied out).
    #[error("policy returned {got} actions (limit {limit})")]
    TooManyActions {
        /// Returned.
        got: usize,
        /// Allowed.
        limit: usize,
    },
    /// Too many bytes returned: every string and frame of every action
    /// (ids, rooms, reasons, frames), measured in guest memory before any
    /// was copied out.
    #[error("policy returned {got} bytes of strings and frames (limit {limit})")]
    TooManyBytes {
        /// Returned.
        got: usize,
        /// Allowed.
        limit: usize,
    },
    /// The guest tried to hold more WASI resources (streams, pollables…)
    /// than its instance may.
    #[error("policy exceeded its resource limit ({0} handles)")]
    Resources(usize),
    /// No instance could be created for this call.
    #[error("policy could not be instantiated: {0}")]
    Instantiate(String),
}

impl CallError {
    /// Every failure kind, the `kind` label of
    /// `switchboard_policy_failures_total`, in [`CallError::kind_index`]
    /// order.
    pub const KINDS: [&'static str; 7] = [
        "trap",
        "timeout",
        "memory",
        "too-many-actions",
        "too-many-bytes",
        "resources",
        "instantiate",
    ];

    /// This failure's place in [`CallError::KINDS`].
    pub fn kind_index(&self) -> usize {
        match self {
            CallError::Trap(_) => 0,
            CallError::Timeout(_) => 1,
            CallError::Memory(_) => 2,
            CallError::TooManyActions { .. } => 3,
            CallError::TooManyBytes { .. } => 4,
            CallError::Resources(_) => 5,
            CallError::Instantiate(_) => 6,
        }
    }

    /// Whether the failure says something about the policy version, and so
    /// counts toward its automatic rollback. An answer over the action or
    /// byte cap can be provoked by a client (an id in many rooms, a large
    /// message echoed back), so clients could otherwise roll back an
    /// operator's swap; failing to get an instance is the server's capacity.
    pub fn counts_toward_rollback(&self) -> bool {
        !matches!(
            self,
            CallError::TooManyActions { .. }
                | CallError::TooManyBytes { .. }
                | CallError::Instantiate(_)
        )
    }
}

/// Why a component could not become the policy.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Which file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a valid component (or not wasm at all).
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    /// It fits neither `switchboard:policy/policy` world, 0.1.0 or 0.2.0
    /// (missing export, unknown import, wrong signature, imports of both).
    #[error("component does not match the switchboard:policy world: {0}")]
    World(String),
    /// A trial instantiation failed (trap in a start function, limits).
    #[error("component failed to instantiate: {0}")]
    Instantiate(String),
    /// The engine could not be set up with the given limits.
    #[error("cannot set up the wasm engine: {0}")]
    Engine(String),
}

impl LoadError {
    /// The step that failed, as a short code: `read`, `compile`, `world`,
    /// `instantiate` or `engine`.
    pub fn step(&self) -> &'static str {
        match self {
            LoadError::Read { .. } => "read",
            LoadError::Compile(_) => "compile",
            LoadError::World(_) => "world",
            LoadError::Instantiate(_) => "instantiate",
            LoadError::Engine(_) => "engine",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_bytes_count_every_string() {
        let text = |s: &str| Frame::Text(s.into());
        let cases = [
            (Action::Reply(Frame::Binary(vec![0; 5])), 5),
            (
                Action::Send {
                    to: "bob".into(),
                    frame: text("hello"),
                    on_sent: Some(text("ok")),
                    on_closed: Some(text("gone")),
                    on_held: Some(text("held")),
                    store: true,
                    on_stored: Some(text("stored")),
                },
                3 + 5 + 2 + 4 + 4 + 6,
            ),
            (
                Action::SendRoom {
                    room: "lobby".into(),
                    frame: text("hi"),
                    except: Some("alice".into()),
                    transient: false,
                },
                5 + 2 + 5,
            ),
            (
                Action::Broadcast {
                    frame: text("hi"),
                    except: None,
                },
                2,
            ),
            (
                Action::Join {
                    id: "alice".into(),
                    room: "r".repeat(1000),
                    since: Some(Position {
                        epoch: "e".repeat(8),
                        offset: 3,
                    }),
                    on_joined: Some(text("ok")),
                },
                1015,
            ),
            (
                Action::Leave {
                    id: "alice".into(),
                    room: "lobby".into(),
                },
                10,
            ),
            (
                Action::Close {
                    id: "bob".into(),
                    code: 4000,
                    reason: "bye".into(),
                },
                6,
            ),
        ];
        for (action, bytes) in cases {
            assert_eq!(action.output_bytes(), bytes, "{action:?}");
        }
    }

    #[test]
    fn only_the_versions_own_failures_count_toward_rollback() {
        let too_many = CallError::TooManyActions { got: 2, limit: 1 };
        let too_large = CallError::TooManyBytes { got: 2, limit: 1 };
        assert!(!too_many.counts_toward_rollback());
        assert!(!too_large.counts_toward_rollback());
        assert!(!CallError::Instantiate("pool full".into()).counts_toward_rollback());
        for e in [
            CallError::Trap("unreachable".into()),
            CallError::Timeout(10),
            CallError::Memory(1),
            CallError::Resources(1),
        ] {
            assert!(e.counts_toward_rollback(), "{e}");
        }
    }
}
