//! The dispatcher: what the bus hands this server goes to its connections
//! here, a room's kept messages in offset order. A room's [`Sequence`]
//! lives beside its members in the registry, so delivering to them and a
//! join's replay take the same hold of the room: a joiner gets each
//! message once, in its replay or live.

use std::collections::BTreeMap;

use tokio_tungstenite::tungstenite::Message;

use crate::chat::lifecycle;
use crate::chat::outbound::CloseReason;
use crate::chat::registry::{Name, Registry};
use crate::store::bus::{Local, Sent};
use crate::store::notices::Mail;

/// Messages that may wait for an earlier one before a room gives up the
/// gap and goes on: on one server a gap lasts while another task is
/// between numbering its message and handing it here, so this is never
/// reached there; in a cluster it lasts while the gap is read from Redis
/// (a round trip or two), so it is sized for a busy room's messages of
/// that time. It bounds what a lost message could hold back.
const MAX_WAITING: usize = 8192;

/// Where a room's kept messages are here: the newest delivered, and those
/// that came before their turn.
#[derive(Debug, Default)]
pub struct Sequence {
    /// The room's epoch: offsets count within it.
    epoch: std::sync::Arc<str>,
    /// The newest offset delivered to the room's members here.
    delivered: u64,
    /// offset → the message and whom it skips, waiting for the offsets
    /// before it.
    waiting: BTreeMap<u64, (Message, Option<Name>)>,
}

impl Sequence {
    /// A room whose messages up to `top` of `epoch` need no delivery here.
    pub fn starting_at(epoch: std::sync::Arc<str>, top: u64) -> Sequence {
        Sequence {
            epoch,
            delivered: top,
            waiting: BTreeMap::new(),
        }
    }

    /// The newest offset delivered.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The epoch the offsets count in.
    pub fn epoch(&self) -> std::sync::Arc<str> {
        self.epoch.clone()
    }

    /// Message `offset` of `epoch` came: hand it and every waiting one now
    /// due to `deliver`, in offset order. Returns `Some(after)` while
    /// messages wait for one after offset `after`. A new epoch (the room's
    /// history was lost and started again) starts the count again at its
    /// first message, offset 1 (those before the first seen here are
    /// waited for, and filled, as any gap).
    pub fn arrive(
        &mut self,
        epoch: &str,
        offset: u64,
        msg: Message,
        except: Option<&str>,
        mut deliver: impl FnMut(&Message, Option<&str>),
    ) -> Option<u64> {
        if epoch != &*self.epoch {
            tracing::info!(epoch, "a room's history started again (new epoch)");
            self.epoch = epoch.into();
            self.delivered = 0;
            self.waiting.clear();
        }
        if offset <= self.delivered {
            return self.gap();
        }
        if offset != self.delivered + 1 {
            self.waiting.insert(offset, (msg, except.map(Name::from)));
            if self.waiting.len() > MAX_WAITING {
                let gap = self.delivered + 1;
                tracing::warn!(gap, "a room message never came; delivering past it");
                if let Some((&first, _)) = self.waiting.first_key_value() {
                    self.delivered = first - 1;
                }
                self.drain(&mut deliver);
            }
            return self.gap();
        }
        deliver(&msg, except);
        self.delivered = offset;
        self.drain(&mut deliver);
        self.gap()
    }

    /// Messages up to `to` of `epoch` will never come (the room's history
    /// no longer has them): deliver what waits up to there, in order, and
    /// go on after it. Returns where messages still wait, as `arrive`.
    pub fn skip_to(
        &mut self,
        epoch: &str,
        to: u64,
        mut deliver: impl FnMut(&Message, Option<&str>),
    ) -> Option<u64> {
        if epoch != &*self.epoch || to <= self.delivered {
            return self.gap();
        }
        tracing::warn!(
            from = self.delivered + 1,
            to,
            "room messages lost to this server: no longer in the room's history"
        );
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() > to {
                break;
            }
            let (_, (msg, except)) = entry.remove_entry();
            deliver(&msg, except.as_deref());
        }
        self.delivered = to;
        self.drain(&mut deliver);
        self.gap()
    }

    /// Where messages wait for a missing one: after `delivered`.
    fn gap(&self) -> Option<u64> {
        (!self.waiting.is_empty()).then_some(self.delivered)
    }

    fn drain(&mut self, deliver: &mut impl FnMut(&Message, Option<&str>)) {
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() != self.delivered + 1 {
                break;
            }
            let (offset, (msg, except)) = entry.remove_entry();
            deliver(&msg, except.as_deref());
            self.delivered = offset;
        }
    }
}

impl Local for Registry {
    fn room(
        &self,
        room: &str,
        kept: Option<(&str, u64)>,
        msg: Message,
        except: Option<&str>,
    ) -> Option<u64> {
        match kept {
            Some((epoch, offset)) => self.send_kept(room, epoch, offset, msg, except),
            None => {
                self.send_room(room, &msg, except);
                None
            }
        }
    }

    fn skip(&self, room: &str, epoch: &str, to: u64) -> Option<u64> {
        self.skip_kept(room, epoch, to)
    }

    fn delivered(&self, room: &str) -> Option<(std::sync::Arc<str>, u64)> {
        Registry::delivered(self, room)
    }

    fn broadcast(&self, msg: &Message, except: Option<&str>) {
        Registry::broadcast(self, msg, except);
    }

    fn deliver(&self, id: &str, msg: Message) -> Sent {
        Registry::deliver(self, id, msg)
    }

    fn mail(&self, id: &str, mail: Mail) {
        for frame in lifecycle::stored_frames(mail) {
            let _ = Registry::deliver(self, id, frame);
        }
    }

    fn close(&self, id: &str, code: u16, reason: &str) -> bool {
        Registry::close(self, id, CloseReason::with_code(code, reason))
    }

    fn claims(&self) -> Vec<(std::sync::Arc<str>, u64)> {
        self.claimed_ids()
    }

    fn progress(&self, id: &str) -> Option<(u64, u64, u64)> {
        Registry::progress(self, id)
    }

    fn claimed(&self, id: &str, generation: u64) {
        if self.claimed_elsewhere(id, generation).is_some() {
            tracing::debug!(id, generation, "replaced by a connection on another server");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(seq: &mut Sequence, arrivals: &[u64]) -> Vec<u64> {
        let mut got = Vec::new();
        for &o in arrivals {
            seq.arrive("e", o, Message::text(o.to_string()), None, |m, _| {
                got.push(m.to_text().unwrap_or_default().parse().unwrap_or(0))
            });
        }
        got
    }

    #[test]
    fn messages_go_out_in_offset_order_and_once() {
        let mut seq = Sequence::starting_at("e".into(), 3);
        assert_eq!(offsets(&mut seq, &[2, 5, 6, 4, 4, 7, 3]), [4, 5, 6, 7]);
        assert_eq!(seq.delivered(), 7);
        // A gap is reported while messages wait.
        let gap = seq.arrive("e", 9, Message::text("9"), None, |_, _| {});
        assert_eq!(gap, Some(7));
        // A new epoch counts from its first message: 2 waits for 1.
        let mut got = 0;
        let gap = seq.arrive("f", 2, Message::text("2"), None, |_, _| got += 1);
        assert_eq!((got, gap), (0, Some(0)));
        seq.arrive("f", 1, Message::text("1"), None, |_, _| got += 1);
        assert_eq!((got, seq.delivered()), (2, 2));
    }

    #[test]
    fn a_gap_gone_from_the_history_is_skipped_and_what_waits_goes_out() {
        let mut seq = Sequence::starting_at("e".into(), 10);
        assert_eq!(offsets(&mut seq, &[15, 40]), Vec::<u64>::new());
        // The history keeps 30 onwards: 11..=29 will never come.
        let mut got = Vec::new();
        let gap = seq.skip_to("e", 29, |m, _| {
            got.push(m.to_text().unwrap_or_default().parse::<u64>().unwrap_or(0))
        });
        assert_eq!((got, gap), (vec![15], Some(29)));
        assert_eq!(
            offsets(&mut seq, &(30..=40).collect::<Vec<_>>()),
            (30..=40).collect::<Vec<_>>()
        );
        // Another epoch, or an offset already passed, changes nothing.
        assert_eq!(seq.skip_to("f", 100, |_, _| {}), None);
        assert_eq!(seq.delivered(), 40);
    }

    #[test]
    fn a_gap_that_never_fills_is_given_up_past_the_bound() {
        let mut seq = Sequence::starting_at("e".into(), 0);
        let late: Vec<u64> = (2..=MAX_WAITING as u64 + 2).collect();
        let got = offsets(&mut seq, &late);
        assert_eq!(got, late);
        assert!(seq.waiting.is_empty());
    }
}
