//! Who is let in at accept, before TLS and before a byte is read: the
//! server-wide connection limit, connections per IP address, and handshakes
//! in progress per IP address. A [`Ticket`] counts one admitted connection
//! for as long as it lives; its handshake share ends at the 101 (or with the
//! connection).
//!
//! An id held for a resume counts as the connection it was: when its
//! connection ends abnormally the ticket becomes a [`HeldTicket`], which
//! counts against the server-wide limit and its last address until the hold
//! ends (a resume, the window's end, or an early end). Held ids cannot
//! escape the limits that way.
//!
//! A resume must never be refused for its own hold, yet admission happens
//! at accept, before the request (and its `?resume=`) is read. So a
//! connection that finds its address (or the server) full is still let in
//! when there are holds there that a resume could take back: *on
//! probation* (at most one per hold, and within the handshake limit). Once
//! its request is read, [`Ticket::confirm`] takes the hold it resumed off
//! the counts first, then checks the limits again as if it were new,
//! counting only confirmed connections: a resume fits in the place of its
//! own hold; anything else on probation is refused with the same 503 it
//! would have had at accept (unless a place came free meanwhile).
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
    /// Of those, the ones on probation (see the module doc).
    probation: usize,
    /// Ids held for a resume whose last connection came from here.
    held: usize,
}

impl PerIp {
    /// Whether nothing is counted here any more.
    fn is_empty(&self) -> bool {
        self.connections == 0 && self.held == 0
    }
}

/// The counts, under one lock: taken at accept, at the 101, at the request
/// (a probation's end), and at the end of each connection and hold, never
/// on a message's path.
#[derive(Debug, Default)]
struct Counts {
    /// Connections admitted and not yet ended.
    total: usize,
    /// Of those, the ones on probation.
    probation: usize,
    /// Ids held for a resume.
    held: usize,
    /// Per address; an address with nothing left is removed, so the map
    /// holds only addresses that have a connection or a hold.
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

    /// Admit a connection from `ip`, or say which limit it is over. Held
    /// ids count as connections; where they fill a limit, the connection is
    /// admitted on probation while there are more holds than connections
    /// already on probation (see the module doc).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let ip = address(ip);
        let mut counts = self.counts();
        let here = counts.per_ip.get(&ip).copied().unwrap_or_default();
        let mut probation = false;
        if counts.total + counts.held >= self.max_connections {
            if counts.held <= counts.probation {
                return Err(Refusal::Full);
            }
            probation = true;
        }
        if here.connections + here.held >= self.max_per_ip {
            if here.held <= here.probation {
                return Err(Refusal::IpConnections);
            }
            probation = true;
        }
        if here.handshakes >= self.max_handshakes_per_ip {
            return Err(Refusal::IpHandshakes);
        }
        counts.total += 1;
        counts.probation += usize::from(probation);
        let here = counts.per_ip.entry(ip).or_default();
        here.connections += 1;
        here.handshakes += 1;
        here.probation += usize::from(probation);
        Ok(Ticket {
            admission: self.clone(),
            ip,
            handshaking: true,
            probation,
            live: true,
        })
    }

    /// A slot to answer one refusal in, if fewer than [`MAX_REFUSING`] are
    /// being answered.
    pub fn refusing(self: &Arc<Self>) -> Option<RefusalSlot> {
        let before = self.refusing.fetch_add(1, Ordering::Relaxed);
        let slot = RefusalSlot(self.clone());
        (before < MAX_REFUSING).then_some(slot)
    }

    /// Connections admitted and not yet ended (held ids not included).
    pub fn connections(&self) -> usize {
        self.counts().total
    }

    /// Ids held for a resume, counted as connections.
    pub fn held(&self) -> usize {
        self.counts().held
    }

    /// Addresses that hold at least one connection or held id.
    pub fn addresses(&self) -> usize {
        self.counts().per_ip.len()
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Nothing panics under the lock; the counts stay valid if it did.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take one connection (and its handshake, if it is still in one, and
    /// its probation, if it is still on it) of `ip` off the counts.
    fn release(&self, ip: IpAddr, connection: bool, handshake: bool, probation: bool) {
        let mut counts = self.counts();
        if connection {
            counts.total = counts.total.saturating_sub(1);
        }
        if probation {
            counts.probation = counts.probation.saturating_sub(1);
        }
        if let Some(here) = counts.per_ip.get_mut(&ip) {
            if connection {
                here.connections = here.connections.saturating_sub(1);
            }
            if handshake {
                here.handshakes = here.handshakes.saturating_sub(1);
            }
            if probation {
                here.probation = here.probation.saturating_sub(1);
            }
        }
        forget_if_empty(&mut counts, ip);
    }
}

/// Take one hold of `ip` off `counts`.
fn release_held(counts: &mut Counts, ip: IpAddr) {
    counts.held = counts.held.saturating_sub(1);
    if let Some(here) = counts.per_ip.get_mut(&ip) {
        here.held = here.held.saturating_sub(1);
    }
    forget_if_empty(counts, ip);
}

/// Remove `ip`'s entry once nothing is counted there.
fn forget_if_empty(counts: &mut Counts, ip: IpAddr) {
    if counts.per_ip.get(&ip).is_some_and(PerIp::is_empty) {
        counts.per_ip.remove(&ip);
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

/// One admitted connection, counted until dropped (or until it becomes a
/// [`HeldTicket`]).
#[derive(Debug)]
pub struct Ticket {
    /// Where it is counted.
    admission: Arc<Admission>,
    /// The address it counts against (see [`address`]).
    ip: IpAddr,
    /// The upgrade has not been answered yet.
    handshaking: bool,
    /// Admitted only in case it resumes a hold (see the module doc), until
    /// [`Ticket::confirm`].
    probation: bool,
    /// Still counted as a connection (false once held).
    live: bool,
}

impl Ticket {
    /// The upgrade was answered with 101: the connection no longer counts
    /// as a handshake in progress.
    pub fn upgraded(&mut self) {
        if std::mem::take(&mut self.handshaking) {
            self.admission.release(self.ip, false, true, false);
        }
    }

    /// Whether the connection was admitted on probation and not yet
    /// confirmed.
    pub fn on_probation(&self) -> bool {
        self.probation
    }

    /// The request is read: take `resumed`, the hold the connection takes
    /// back (if any), off the counts first, then, if the connection is on
    /// probation, check the limits again as for a new connection, counting
    /// only confirmed connections and holds. A resume thus always fits in
    /// the place of its own hold; on a refusal the connection stays on
    /// probation (and is to be answered 503 and dropped).
    pub fn confirm(&mut self, resumed: Option<HeldTicket>) -> Result<(), Refusal> {
        let a = &self.admission;
        let mut counts = a.counts();
        if let Some(mut held) = resumed {
            // Released here, under this lock, not by its drop.
            held.counted = false;
            release_held(&mut counts, held.ip);
        }
        if !self.probation {
            return Ok(());
        }
        // This connection is among those on probation: `confirmed` counts
        // the others that are not, and it comes on top.
        let confirmed = counts.total.saturating_sub(counts.probation);
        if confirmed + counts.held >= a.max_connections {
            return Err(Refusal::Full);
        }
        let here = counts.per_ip.get(&self.ip).copied().unwrap_or_default();
        if here.connections.saturating_sub(here.probation) + here.held >= a.max_per_ip {
            return Err(Refusal::IpConnections);
        }
        counts.probation = counts.probation.saturating_sub(1);
        if let Some(here) = counts.per_ip.get_mut(&self.ip) {
            here.probation = here.probation.saturating_sub(1);
        }
        self.probation = false;
        Ok(())
    }

    /// The connection ended and its id is held for a resume: it counts on
    /// as a hold, against the same address, until the returned ticket is
    /// dropped. This ticket counts nothing any more.
    pub fn hold(&mut self) -> HeldTicket {
        let a = &self.admission;
        let mut counts = a.counts();
        let counted = self.live;
        if self.live {
            self.live = false;
            counts.total = counts.total.saturating_sub(1);
            counts.held += 1;
            if self.probation {
                counts.probation = counts.probation.saturating_sub(1);
            }
            let here = counts.per_ip.entry(self.ip).or_default();
            here.connections = here.connections.saturating_sub(1);
            here.held += 1;
            if std::mem::take(&mut self.handshaking) {
                here.handshakes = here.handshakes.saturating_sub(1);
            }
            if std::mem::take(&mut self.probation) {
                here.probation = here.probation.saturating_sub(1);
            }
        }
        HeldTicket {
            admission: a.clone(),
            ip: self.ip,
            counted,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.live {
            self.admission
                .release(self.ip, true, self.handshaking, self.probation);
        }
    }
}

/// An id held for a resume, counted as a connection from its last address
/// until dropped (the hold ended) or handed to [`Ticket::confirm`] (resumed).
#[derive(Debug)]
pub struct HeldTicket {
    /// Where it is counted.
    admission: Arc<Admission>,
    /// The address it counts against.
    ip: IpAddr,
    /// Still counted (false once taken off by a resume).
    counted: bool,
}

impl Drop for HeldTicket {
    fn drop(&mut self) {
        if self.counted {
            release_held(&mut self.admission.counts(), self.ip);
        }
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

    /// An address at its limit with ids held: a fresh connection is on
    /// probation and refused once its request is read; a resume takes its
    /// hold's place.
    #[test]
    fn held_ids_count_and_a_resume_takes_its_holds_place() {
        let a = admission(100, 3, 100);
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut t = a.admit(ip("10.0.0.1")).unwrap();
            t.upgraded();
            held.push(t.hold());
        }
        assert_eq!((a.connections(), a.held(), a.addresses()), (0, 3, 1));
        // Another address is not affected.
        let mut other = a.admit(ip("10.0.0.2")).unwrap();
        other.confirm(None).unwrap();
        // Not a resume: refused at the request.
        let mut fresh = a.admit(ip("10.0.0.1")).unwrap();
        assert!(fresh.on_probation());
        assert_eq!(fresh.confirm(None), Err(Refusal::IpConnections));
        drop(fresh);
        // A resume fits in its own hold's place, and stays counted.
        let mut resume = a.admit(ip("10.0.0.1")).unwrap();
        assert!(resume.on_probation());
        resume.confirm(held.pop()).unwrap();
        assert!(!resume.on_probation());
        resume.upgraded();
        assert_eq!((a.connections(), a.held()), (2, 2));
        assert!(a.admit(ip("10.0.0.1")).unwrap().confirm(None).is_err());
        // A hold that ends frees its place.
        held.pop();
        let mut next = a.admit(ip("10.0.0.1")).unwrap();
        assert!(!next.on_probation());
        next.confirm(None).unwrap();
        // Nothing leaks: every count returns to zero.
        drop((held, resume, next, other));
        assert_eq!((a.connections(), a.held(), a.addresses()), (0, 0, 0));
    }

    #[test]
    fn probation_is_bounded_by_the_holds_there_are() {
        let a = admission(100, 2, 100);
        let mut t = a.admit(ip("10.0.0.1")).unwrap();
        let _live = a.admit(ip("10.0.0.1")).unwrap();
        let held = t.hold();
        drop(t);
        // One hold: one connection on probation at a time.
        let first = a.admit(ip("10.0.0.1")).unwrap();
        assert!(first.on_probation());
        assert_eq!(a.admit(ip("10.0.0.1")).unwrap_err(), Refusal::IpConnections);
        drop(first);
        let mut again = a.admit(ip("10.0.0.1")).unwrap();
        again.confirm(Some(held)).unwrap();
        assert_eq!(a.held(), 0);
    }

    #[test]
    fn holds_count_against_the_server_wide_limit() {
        let a = admission(2, 100, 100);
        let held = a.admit(ip("10.0.0.1")).unwrap().hold();
        let mut live = a.admit(ip("10.0.0.2")).unwrap();
        live.confirm(None).unwrap();
        // Full: on probation, and refused unless it resumes.
        let mut fresh = a.admit(ip("10.0.0.3")).unwrap();
        assert_eq!(fresh.confirm(None), Err(Refusal::Full));
        drop(fresh);
        // A resume from another address takes the hold's place.
        let mut moved = a.admit(ip("10.0.0.3")).unwrap();
        moved.confirm(Some(held)).unwrap();
        assert_eq!((a.connections(), a.held(), a.addresses()), (2, 0, 2));
        drop((live, moved));
        assert_eq!((a.connections(), a.held(), a.addresses()), (0, 0, 0));
    }

    #[test]
    fn a_probation_connection_that_ends_is_counted_out() {
        let a = admission(100, 1, 100);
        let held = a.admit(ip("10.0.0.1")).unwrap().hold();
        let mut t = a.admit(ip("10.0.0.1")).unwrap();
        assert!(t.on_probation());
        // Even held itself (it cannot be, but the counts must stay sound).
        let h = t.hold();
        drop((t, h, held));
        assert_eq!((a.connections(), a.held(), a.addresses()), (0, 0, 0));
        let mut fresh = a.admit(ip("10.0.0.1")).unwrap();
        assert!(!fresh.on_probation());
        fresh.confirm(None).unwrap();
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
