//! The event counters: one per server (in its registry), bumped where the
//! event happens. Every label has a fixed set of values, so a client can
//! never grow the series count (a close code it sends outside the known
//! ones counts as `other`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A WebSocket frame's kind, the `type` label of the frame counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A text frame (a whole message).
    Text,
    /// A binary frame.
    Binary,
    /// A ping.
    Ping,
    /// A pong.
    Pong,
    /// A close frame.
    Close,
}

impl FrameKind {
    /// Every kind, in label order.
    pub const ALL: [FrameKind; 5] = [
        FrameKind::Text,
        FrameKind::Binary,
        FrameKind::Ping,
        FrameKind::Pong,
        FrameKind::Close,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            FrameKind::Text => "text",
            FrameKind::Binary => "binary",
            FrameKind::Ping => "ping",
            FrameKind::Pong => "pong",
            FrameKind::Close => "close",
        }
    }
}

/// Frames counted by kind.
#[derive(Debug, Default)]
pub struct ByKind([AtomicU64; 5]);

impl ByKind {
    /// One more frame of `kind`.
    pub fn add(&self, kind: FrameKind) {
        self.0[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The count of `kind`.
    pub fn get(&self, kind: FrameKind) -> u64 {
        self.0[kind as usize].load(Ordering::Relaxed)
    }
}

/// Why an upgrade request was refused, the `reason` label of
/// `switchboard_handshakes_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// 400, 404, 426, 431: a malformed request, a bad id, not an upgrade.
    BadRequest,
    /// 401: signed tokens are on and the request has no good one.
    Unauthorized,
    /// 403: a web page whose `Origin` may not connect.
    Origin,
    /// 503: a connection limit (server-wide or per address).
    Admission,
    /// 503: the cluster could not look the resume up.
    Unavailable,
    /// The policy's `on-connect` refused it (with its own status).
    Policy,
    /// 500: the policy's `on-connect` failed.
    PolicyFailed,
    /// No request within `upgrade_timeout`: closed without an answer.
    Timeout,
}

impl Refused {
    /// Every reason, in label order.
    pub const ALL: [Refused; 8] = [
        Refused::BadRequest,
        Refused::Unauthorized,
        Refused::Origin,
        Refused::Admission,
        Refused::Unavailable,
        Refused::Policy,
        Refused::PolicyFailed,
        Refused::Timeout,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Refused::BadRequest => "bad-request",
            Refused::Unauthorized => "unauthorized",
            Refused::Origin => "origin",
            Refused::Admission => "admission",
            Refused::Unavailable => "unavailable",
            Refused::Policy => "policy",
            Refused::PolicyFailed => "policy-failed",
            Refused::Timeout => "timeout",
        }
    }
}

/// A limit that refused a request, the `limit` label of
/// `switchboard_limit_refusals_total`: the setting's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `rate-limited`: a connection's messages.
    MessagesPerSec,
    /// `rate-limited`: a connection's broadcasts.
    BroadcastsPerSec,
    /// `rate-limited`: a connection's presence and history queries.
    QueriesPerSec,
    /// `too-many-rooms`: the rooms one id may be in.
    MaxRoomsPerId,
    /// `too-many-rooms`: the server's rooms.
    MaxRooms,
    /// `store-quota`: a stored notice over a quota.
    StoredNotices,
    /// Close 1009: a message over the size limit.
    MaxMessageBytes,
}

impl Limit {
    /// Every limit, in label order.
    pub const ALL: [Limit; 7] = [
        Limit::MessagesPerSec,
        Limit::BroadcastsPerSec,
        Limit::QueriesPerSec,
        Limit::MaxRoomsPerId,
        Limit::MaxRooms,
        Limit::StoredNotices,
        Limit::MaxMessageBytes,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Limit::MessagesPerSec => "messages_per_sec",
            Limit::BroadcastsPerSec => "broadcasts_per_sec",
            Limit::QueriesPerSec => "queries_per_sec",
            Limit::MaxRoomsPerId => "max_rooms_per_id",
            Limit::MaxRooms => "max_rooms",
            Limit::StoredNotices => "stored_notices",
            Limit::MaxMessageBytes => "max_message_bytes",
        }
    }
}

/// The close codes counted each under its own label; any other is
/// `other`.
pub const CLOSE_CODES: [u16; 15] = [
    1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1012, 1013, 4001, 4003, 4008,
];

/// A server's event counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections upgraded, ever.
    opened: AtomicU64,
    /// Connections upgraded and not yet ended.
    open: AtomicI64,
    /// Connections ended, by close code (the last: `other`).
    closed: [AtomicU64; CLOSE_CODES.len() + 1],
    /// Upgrade requests refused, by reason.
    refused: [AtomicU64; Refused::ALL.len()],
    /// Frames read from clients, by kind.
    pub frames_in: ByKind,
    /// Frames queued to room members by room messages.
    room_deliveries: AtomicU64,
    /// Requests refused by a limit, by limit.
    limited: [AtomicU64; Limit::ALL.len()],
}

impl Counters {
    /// A connection was upgraded.
    pub fn opened(&self) {
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection ended with close `code` (the one sent, or the
    /// client's, or 1006).
    pub fn closed(&self, code: u16) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        let at = CLOSE_CODES
            .iter()
            .position(|c| *c == code)
            .unwrap_or(CLOSE_CODES.len());
        self.closed[at].fetch_add(1, Ordering::Relaxed);
    }

    /// An upgrade request was refused.
    pub fn refused(&self, why: Refused) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A room message went to `n` members' queues.
    pub fn delivered(&self, n: usize) {
        self.room_deliveries.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A request was refused by `limit`.
    pub fn limited(&self, limit: Limit) {
        self.limited[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections upgraded, ever.
    pub fn opened_total(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open_now(&self) -> u64 {
        self.open.load(Ordering::Relaxed).max(0) as u64
    }

    /// (code label, count) of ended connections.
    pub fn closed_by_code(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        CLOSE_CODES
            .iter()
            .map(|c| c.to_string())
            .chain(std::iter::once("other".to_owned()))
            .zip(self.closed.iter().map(|n| n.load(Ordering::Relaxed)))
    }

    /// Refusals of `why`.
    pub fn refused_total(&self, why: Refused) -> u64 {
        self.refused[why as usize].load(Ordering::Relaxed)
    }

    /// Room deliveries, ever.
    pub fn room_deliveries(&self) -> u64 {
        self.room_deliveries.load(Ordering::Relaxed)
    }

    /// Refusals by `limit`.
    pub fn limited_total(&self, limit: Limit) -> u64 {
        self.limited[limit as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_close_code_counts_as_other() {
        let c = Counters::default();
        c.opened();
        c.opened();
        c.closed(4999);
        c.closed(1000);
        let by: Vec<_> = c.closed_by_code().filter(|(_, n)| *n > 0).collect();
        assert_eq!(by, [("1000".to_owned(), 1), ("other".to_owned(), 1)]);
        assert_eq!((c.opened_total(), c.open_now()), (2, 0));
    }
}
