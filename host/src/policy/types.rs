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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
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
    },
    /// To a room's members.
    SendRoom {
        /// The room.
        room: String,
        /// What they get.
        frame: Frame,
        /// A member to skip.
        except: Option<String>,
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
    /// Bytes of frames this action carries (for the per-call output cap).
    pub fn frame_bytes(&self) -> usize {
        let opt = |f: &Option<Frame>| f.as_ref().map_or(0, Frame::len);
        match self {
            Action::Reply(f) => f.len(),
            Action::Send {
                frame,
                on_sent,
                on_closed,
                ..
            } => frame.len() + opt(on_sent) + opt(on_closed),
            Action::SendRoom { frame, .. } | Action::Broadcast { frame, .. } => frame.len(),
            Action::Close { reason, .. } => reason.len(),
            Action::Join { .. } | Action::Leave { .. } => 0,
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
    /// Too many actions returned.
    #[error("policy returned {got} actions (limit {limit})")]
    TooManyActions {
        /// Returned.
        got: usize,
        /// Allowed.
        limit: usize,
    },
    /// Too many bytes of frames returned.
    #[error("policy returned {got} bytes of frames (limit {limit})")]
    TooManyBytes {
        /// Returned.
        got: usize,
        /// Allowed.
        limit: usize,
    },
    /// No instance could be created for this call.
    #[error("policy could not be instantiated: {0}")]
    Instantiate(String),
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
    /// It does not fit the `switchboard:policy/policy` world (missing export,
    /// unknown import, wrong signature).
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
