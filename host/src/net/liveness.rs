//! When a quiet connection is pinged, and when it is given up: the read
//! loop's clock. A connection the server has heard nothing from for
//! `ping_interval` is sent a WebSocket ping; if nothing at all (a pong, or
//! any other frame) arrives within `pong_timeout` after it, it is closed with
//! 1001 `no pong`. Independently, `idle_timeout` of silence closes it with
//! 1001 `idle timeout`.

use std::time::Duration;

use tokio::time::Instant;

use crate::chat::outbound::{CloseReason, code};
use crate::config::Limits;

/// What the read loop does when [`Liveness::deadline`] passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Send a ping.
    Ping,
    /// Give up on the connection.
    Close(CloseReason),
}

/// One connection's heartbeat state (borrowing the settings: every idle
/// connection holds one).
#[derive(Debug)]
pub struct Liveness<'a> {
    /// `ping_interval`, `pong_timeout` and `idle_timeout`.
    limits: &'a Limits,
    /// When the client was last heard from.
    heard: Instant,
    /// When the unanswered ping went out, if one did.
    pinged: Option<Instant>,
}

impl<'a> Liveness<'a> {
    /// A connection last heard from `now`.
    pub fn new(limits: &'a Limits, now: Instant) -> Self {
        Liveness {
            limits,
            heard: now,
            pinged: None,
        }
    }

    /// A frame (any frame, a pong included) arrived `now`.
    pub fn heard(&mut self, now: Instant) {
        self.heard = now;
        self.pinged = None;
    }

    /// When something is due if nothing arrives before.
    pub fn deadline(&self) -> Instant {
        let idle = later(self.heard, self.limits.idle_timeout);
        let every = self.limits.ping_interval;
        let beat = match self.pinged {
            _ if every.is_zero() => return idle,
            None => later(self.heard, every),
            Some(at) => later(at, self.limits.pong_timeout),
        };
        beat.min(idle)
    }

    /// The deadline passed (`now` is at or after it): what to do.
    pub fn due(&mut self, now: Instant) -> Due {
        if now >= later(self.heard, self.limits.idle_timeout) {
            return Due::Close(CloseReason::with_code(code::GOING_AWAY, "idle timeout"));
        }
        match self.pinged {
            // A client that stopped answering may come back: held (when
            // the session allows) for a resume.
            Some(_) => {
                Due::Close(CloseReason::with_code(code::GOING_AWAY, "no pong").holding(true))
            }
            None => {
                self.pinged = Some(now);
                Due::Ping
            }
        }
    }
}

/// `at + d`, or a year after `at` when that does not fit (`d` is a setting).
fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .unwrap_or_else(|| at + Duration::from_secs(365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ping: u64, pong: u64, idle: u64) -> Limits {
        Limits {
            ping_interval: Duration::from_secs(ping),
            pong_timeout: Duration::from_secs(pong),
            idle_timeout: Duration::from_secs(idle),
            ..Limits::default()
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_quiet_connection_is_pinged_then_closed_without_a_pong() {
        let t0 = Instant::now();
        let limits = limits(25, 10, 300);
        let mut l = Liveness::new(&limits, t0);
        assert_eq!(l.deadline(), t0 + secs(25));
        assert_eq!(l.due(t0 + secs(25)), Due::Ping);
        assert_eq!(l.deadline(), t0 + secs(35));
        match l.due(t0 + secs(35)) {
            Due::Close(r) => {
                assert_eq!((r.code, r.reason.as_str()), (Some(1001), "no pong"))
            }
            other => panic!("expected a close, got {other:?}"),
        }
    }

    #[test]
    fn anything_heard_answers_the_ping_and_restarts_the_interval() {
        let t0 = Instant::now();
        let limits = limits(25, 10, 300);
        let mut l = Liveness::new(&limits, t0);
        assert_eq!(l.due(t0 + secs(25)), Due::Ping);
        l.heard(t0 + secs(30));
        assert_eq!(l.deadline(), t0 + secs(55));
        assert_eq!(l.due(t0 + secs(55)), Due::Ping);
    }

    #[test]
    fn without_pings_only_the_idle_timeout_applies() {
        let t0 = Instant::now();
        let limits = limits(0, 10, 300);
        let mut l = Liveness::new(&limits, t0);
        assert_eq!(l.deadline(), t0 + secs(300));
        match l.due(t0 + secs(300)) {
            Due::Close(r) => assert_eq!(r.reason, "idle timeout"),
            other => panic!("expected a close, got {other:?}"),
        }
    }

    #[test]
    fn the_idle_timeout_wins_when_it_is_shorter() {
        let t0 = Instant::now();
        let limits = limits(25, 10, 5);
        let mut l = Liveness::new(&limits, t0);
        assert_eq!(l.deadline(), t0 + secs(5));
        assert!(matches!(l.due(t0 + secs(5)), Due::Close(r) if r.reason == "idle timeout"));
    }

    #[test]
    fn huge_settings_do_not_overflow() {
        let t0 = Instant::now();
        let limits = Limits {
            idle_timeout: Duration::MAX,
            ping_interval: Duration::MAX,
            ..Limits::default()
        };
        let l = Liveness::new(&limits, t0);
        assert!(l.deadline() > t0 + secs(3600));
    }
}
