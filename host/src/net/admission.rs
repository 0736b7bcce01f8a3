//! Who is let in at accept, before TLS and before a byte is read: the
//! server-wide connection limit, connections per IP address, and handshakes
//! in progress per IP address. A [`Ticket`] counts one admitted connection
//! for as long as it lives; its handshake share ends at the 101 (or with the
//! connection).
//!
//! Refusals are answered (503 with a reason) by a task of their own, and
//! those tasks are bounded too ([`MAX_REFUSING`]): past it a connection over
//! a limit is simply closed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::Limits;

/// Refusals being answered at once (each may wait for a request, or a TLS
/// handshake, for up to its timeout); past it, refused sockets are closed
/// without an answer.
pub const MAX_REFUSING: usize = 256;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The server serves `max_connections` already.
    #[error("server is at its connection limit; try again later")]
    Full,
    /// This address has `max_connections_per_ip` connections already.
    #[error("too many connections from your address; try again later")]
    IpConnections,
    /// This address has `max_handshakes_per_ip` handshakes in progress.
    #[error("too many handshakes in progress from your address; try again later")]
    IpHandshakes,
}

/// What one address holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PerIp {
    /// Connections admitted and not yet ended (handshaking or open).
    connections: usize,
    /// Of those, the ones whose upgrade has not been answered yet.
    handshakes: usize,
}

/// The counts, under one lock: taken at accept, at the 101 and at the end of
/// each connection, never on a message's path.
#[derive(Debug, Default)]
struct Counts {
    /// Connections admitted and not yet ended.
    total: usize,
    /// Per address; an address with nothing left is removed, so the map
    /// holds only addresses that have a connection.
    per_ip: HashMap<IpAddr, PerIp>,
}

/// The server's admission limits and counts.
#[derive(Debug)]
pub struct Admission {
    /// Connections served at once.
    max_connections: usize,
    /// Connections from one address.
    max_per_ip: usize,
    /// Handshakes in progress from one address.
    max_handshakes_per_ip: usize,
    /// What is admitted now.
    counts: Mutex<Counts>,
    /// Refusals being answered now.
    refusing: AtomicUsize,
}

impl Admission {
    /// Counts with `limits`' admission limits.
    pub fn new(limits: &Limits) -> Arc<Admission> {
        Arc::new(Admission {
            max_connections: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
            max_handshakes_per_ip: limits.max_handshakes_per_ip,
            counts: Mutex::default(),
            refusing: AtomicUsize::new(0),
        })
    }

    /// Admit a connection from `ip`, or say which limit it is over.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let ip = address(ip);
        let mut counts = self.counts();
        if counts.total >= self.max_connections {
            return Err(Refusal::Full);
        }
        let here = counts.per_ip.get(&ip).copied().unwrap_or_default();
        if here.connections >= self.max_per_ip {
            return Err(Refusal::IpConnections);
        }
        if here.handshakes >= self.max_handshakes_per_ip {
            return Err(Refusal::IpHandshakes);
        }
        counts.total += 1;
        let here = counts.per_ip.entry(ip).or_default();
        here.connections += 1;
        here.handshakes += 1;
        Ok(Ticket {
            admission: self.clone(),
            ip,
            handshaking: true,
        })
    }

    /// A slot to answer one refusal in, if fewer than [`MAX_REFUSING`] are
    /// being answered.
    pub fn refusing(self: &Arc<Self>) -> Option<RefusalSlot> {
        let before = self.refusing.fetch_add(1, Ordering::Relaxed);
        let slot = RefusalSlot(self.clone());
        (before < MAX_REFUSING).then_some(slot)
    }

    /// Connections admitted and not yet ended.
    pub fn connections(&self) -> usize {
        self.counts().total
    }

    /// Addresses that hold at least one connection.
    pub fn addresses(&self) -> usize {
        self.counts().per_ip.len()
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Nothing panics under the lock; the counts stay valid if it did.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take one connection (and its handshake, if it is still in one) of
    /// `ip` off the counts.
    fn release(&self, ip: IpAddr, connection: bool, handshake: bool) {
        let mut counts = self.counts();
        if connection {
            counts.total = counts.total.saturating_sub(1);
        }
        if let Some(here) = counts.per_ip.get_mut(&ip) {
            if connection {
                here.connections = here.connections.saturating_sub(1);
            }
            if handshake {
                here.handshakes = here.handshakes.saturating_sub(1);
            }
            if here.connections == 0 {
                counts.per_ip.remove(&ip);
            }
        }
    }
}

/// The address a connection counts against: IPv4 as itself (IPv4-mapped
/// IPv6 included), IPv6 by its /64 network, the block one subscriber or
/// device is given (counting each of its 2^64 addresses alone would be no
/// limit at all).
fn address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// One admitted connection, counted until dropped.
#[derive(Debug)]
pub struct Ticket {
    /// Where it is counted.
    admission: Arc<Admission>,
    /// The address it counts against (see [`address`]).
    ip: IpAddr,
    /// The upgrade has not been answered yet.
    handshaking: bool,
}

impl Ticket {
    /// The upgrade was answered with 101: the connection no longer counts
    /// as a handshake in progress.
    pub fn upgraded(&mut self) {
        if std::mem::take(&mut self.handshaking) {
            self.admission.release(self.ip, false, true);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.release(self.ip, true, self.handshaking);
    }
}

/// Counts one refusal being answered until dropped.
#[derive(Debug)]
pub struct RefusalSlot(Arc<Admission>);

impl Drop for RefusalSlot {
    fn drop(&mut self) {
        self.0.refusing.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max: usize, per_ip: usize, handshakes: usize) -> Arc<Admission> {
        Admission::new(&Limits {
            max_connections: max,
            max_connections_per_ip: per_ip,
            max_handshakes_per_ip: handshakes,
            ..Limits::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_ip_connections_are_capped_and_freed() {
        let a = admission(100, 2, 100);
        let one = a.admit(ip("10.0.0.1")).unwrap();
        let _two = a.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(a.admit(ip("10.0.0.1")).unwrap_err(), Refusal::IpConnections);
        // Another address is not affected.
        let _other = a.admit(ip("10.0.0.2")).unwrap();
        drop(one);
        let _three = a.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(a.connections(), 3);
    }

    #[test]
    fn handshakes_end_at_the_upgrade() {
        let a = admission(100, 100, 2);
        let mut one = a.admit(ip("10.0.0.1")).unwrap();
        let _two = a.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(a.admit(ip("10.0.0.1")).unwrap_err(), Refusal::IpHandshakes);
        one.upgraded();
        one.upgraded();
        let _three = a.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(a.admit(ip("10.0.0.1")).unwrap_err(), Refusal::IpHandshakes);
        // The upgraded one still counts as a connection.
        assert_eq!(a.connections(), 3);
    }

    #[test]
    fn the_server_wide_limit_comes_first() {
        let a = admission(1, 1, 1);
        let _one = a.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(a.admit(ip("10.0.0.2")).unwrap_err(), Refusal::Full);
        assert_eq!(a.admit(ip("10.0.0.1")).unwrap_err(), Refusal::Full);
    }

    #[test]
    fn ipv4_mapped_ipv6_is_the_same_address() {
        let a = admission(100, 1, 100);
        let _v4 = a.admit(ip("192.0.2.7")).unwrap();
        assert_eq!(
            a.admit(ip("::ffff:192.0.2.7")).unwrap_err(),
            Refusal::IpConnections
        );
        assert_eq!(a.addresses(), 1);
    }

    #[test]
    fn ipv6_counts_by_its_64_network() {
        let a = admission(100, 2, 100);
        let _one = a.admit(ip("2001:db8:1:2::1")).unwrap();
        let _two = a.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            a.admit(ip("2001:db8:1:2:abcd::1")).unwrap_err(),
            Refusal::IpConnections
        );
        let _other = a.admit(ip("2001:db8:1:3::1")).unwrap();
        assert_eq!(a.addresses(), 2);
    }

    #[test]
    fn addresses_with_nothing_left_are_forgotten() {
        let a = admission(10_000, 10, 10);
        let tickets: Vec<_> = (0..1000u32)
            .map(|i| a.admit(IpAddr::from(i.to_be_bytes())).unwrap())
            .collect();
        assert_eq!(a.addresses(), 1000);
        let mut tickets = tickets;
        for t in &mut tickets[..500] {
            t.upgraded();
        }
        drop(tickets);
        assert_eq!(a.addresses(), 0);
        assert_eq!(a.connections(), 0);
    }

    #[test]
    fn refusal_slots_are_bounded_and_given_back() {
        let a = admission(1, 1, 1);
        let slots: Vec<_> = (0..MAX_REFUSING).map(|_| a.refusing().unwrap()).collect();
        assert!(a.refusing().is_none());
        drop(slots);
        assert!(a.refusing().is_some());
    }
}
