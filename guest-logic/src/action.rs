//! The decisions the rules return. These mirror the WIT `types` interface
//! (`frame`, `action` and its records) one to one, so the component wrapper
//! only moves owned strings across; the rules never see a wit-bindgen type.

/// One WebSocket message to send (WIT `frame`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame; every frame of protocol v1 is JSON text.
    Text(String),
    /// A binary frame (unused by protocol v1, kept to mirror the WIT).
    Binary(Vec<u8>),
}

impl Frame {
    /// The frame's text, if it is a text frame (handy in tests and logs).
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Frame::Text(t) => Some(t),
            Frame::Binary(_) => None,
        }
    }
}

/// A frame as received, borrowed from the host's argument (WIT `frame`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A text frame (valid UTF-8; the host closes with 1007 otherwise).
    Text(&'a str),
    /// A binary frame.
    Binary(&'a [u8]),
}

/// A place in a room's history (WIT `position`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The room's epoch: changes whenever its history is lost.
    pub epoch: String,
    /// The offset of a kept message (+1 per kept message).
    pub offset: u64,
}

/// One decision (WIT `action`); the host applies a call's actions in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `frame` to the connection the event is about.
    Reply(Frame),
    /// Send `frame` to `to`; the caller then gets `on_sent` if it was queued,
    /// or `on_closed` if `to` is offline or cannot take it. The host checks
    /// and queues in one step.
    Send {
        /// The target connection id (any string; an unknown id is "closed").
        to: String,
        /// What `to` receives.
        frame: Frame,
        /// Replied to the caller after `frame` is queued to `to`.
        on_sent: Option<Frame>,
        /// Replied to the caller instead when `to` cannot receive `frame`.
        on_closed: Option<Frame>,
        /// Replied to the caller instead of `on_sent` when `to` is held (its
        /// connection dropped and may resume): `frame` waits for it.
        on_held: Option<Frame>,
        /// Keep `frame` for an offline `to` until its next welcome.
        store: bool,
        /// Replied to the caller when `frame` was stored for `to`.
        on_stored: Option<Frame>,
    },
    /// Send `frame` to every member of `room` but `except`.
    SendRoom {
        /// The room whose members receive `frame`.
        room: String,
        /// What they receive.
        frame: Frame,
        /// A member to skip (the sender, for chat messages).
        except: Option<String>,
        /// Not kept in the room's history (presence notices).
        transient: bool,
    },
    /// Send `frame` to every online connection but `except`.
    Broadcast {
        /// What they receive.
        frame: Frame,
        /// A connection to skip (the sender).
        except: Option<String>,
    },
    /// Add `id` to `room` (idempotent).
    Join {
        /// Who joins.
        id: String,
        /// Which room.
        room: String,
        /// Replay what `id` missed after this position (all or nothing).
        since: Option<Position>,
        /// Replied to the caller once `id` is a member; the host adds the
        /// room's `epoch` and `offset` (and `recovered`, with `since`).
        on_joined: Option<Frame>,
    },
    /// Remove `id` from `room` (idempotent).
    Leave {
        /// Who leaves.
        id: String,
        /// Which room.
        room: String,
    },
    /// Close `id` with a WebSocket close code and reason.
    Close {
        /// Who is closed.
        id: String,
        /// 1000, 1008 or 3000-4999 (the host sends anything else as 1008).
        code: u16,
        /// At most 123 bytes (the host cuts longer reasons).
        reason: String,
    },
}
