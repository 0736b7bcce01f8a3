//! This node's copy of recent history for the rooms it has members in:
//! filled by the dispatcher's path (every kept message that reaches the
//! node, its own included) and by the reads a join makes first. It
//! answers what cannot wait for the network — a join's recovery under
//! the room's hold, and the policy's `history.read` and `history.top` —
//! for those rooms; for a room with no member here it knows nothing.
//! Each room's copy holds at most the history size, as Redis does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

use crate::store::history::{HistoryLimits, Page, Recovery, Text, Unrecoverable, Usage};

/// Every copied room.
#[derive(Debug)]
pub struct Replica {
    rooms: DashMap<Arc<str>, Mutex<Copy>>,
    limits: HistoryLimits,
}

#[derive(Debug, Default)]
struct Copy {
    epoch: Arc<str>,
    /// The newest offset known (it may be past the newest copied).
    top: u64,
    /// offset → frame (with its offset written in).
    kept: BTreeMap<u64, Text>,
    bytes: usize,
}

impl Replica {
    /// Copies holding at most `limits.size` messages per room.
    pub fn new(limits: HistoryLimits) -> Replica {
        Replica {
            rooms: DashMap::new(),
            limits,
        }
    }

    /// Message `offset` of `room`, in `epoch`. Another epoch replaces
    /// what was copied (the history started again).
    pub fn insert(&self, room: &str, epoch: &str, offset: u64, text: Text) {
        self.with(room, |c| {
            c.restart_if(epoch);
            c.top = c.top.max(offset);
            if let Some(old) = c.kept.insert(offset, text.clone()) {
                c.bytes -= old.len();
            }
            c.bytes += text.len();
            while c.kept.len() > self.limits.size.max(1) {
                if let Some((_, t)) = c.kept.pop_first() {
                    c.bytes -= t.len();
                }
            }
        });
    }

    /// `room`'s newest offset is `top` in `epoch` (what Redis said).
    pub fn saw_top(&self, room: &str, epoch: &str, top: u64) {
        self.with(room, |c| {
            c.restart_if(epoch);
            c.top = c.top.max(top);
        });
    }

    /// What a join needs, as the memory store answers it
    /// ([`crate::store::history::History::recover`]).
    pub fn recover(&self, room: &str, since: Option<(&str, u64)>, upto: Option<u64>) -> Recovery {
        if !self.limits.is_on() {
            return Recovery {
                epoch: "".into(),
                top: 0,
                missed: since.map(|_| Err(Unrecoverable::Off)),
            };
        }
        let Some(copy) = self.rooms.get(room) else {
            return Recovery {
                epoch: "".into(),
                top: 0,
                missed: since.map(|_| Err(Unrecoverable::Epoch)),
            };
        };
        let c = lock(&copy);
        let upto = upto.unwrap_or(c.top).min(c.top);
        let missed = since.map(|(epoch, since)| c.missed(epoch, since, upto, &self.limits));
        Recovery {
            epoch: c.epoch.clone(),
            top: upto,
            missed,
        }
    }

    /// At most `limit` of the newest copied messages before `before`.
    pub fn read(&self, room: &str, before: Option<u64>, limit: usize) -> Page {
        let Some(copy) = self.rooms.get(room) else {
            return Page::default();
        };
        let c = lock(&copy);
        let end = before.unwrap_or(u64::MAX);
        let mut page: Vec<(u64, String)> = c
            .kept
            .range(..end)
            .rev()
            .take(limit)
            .map(|(o, t)| (*o, t.to_string()))
            .collect();
        page.reverse();
        Page {
            epoch: c.epoch.to_string(),
            offsets: page.iter().map(|(o, _)| *o).collect(),
            messages: page.into_iter().map(|(_, t)| t).collect(),
        }
    }

    /// Whether the copy of `room` in `epoch` holds every message after
    /// `since` up to its newest (so a join needs no read from Redis).
    pub fn covers(&self, room: &str, epoch: &str, since: u64) -> bool {
        self.rooms.get(room).is_some_and(|copy| {
            let c = lock(&copy);
            let oldest = c.kept.first_key_value().map_or(c.top + 1, |(o, _)| *o);
            &*c.epoch == epoch && c.kept.len() as u64 == c.top + 1 - oldest && since + 1 >= oldest
        })
    }

    /// `room`'s epoch and newest offset, as copied.
    pub fn top(&self, room: &str) -> (String, u64) {
        self.rooms.get(room).map_or((String::new(), 0), |copy| {
            let c = lock(&copy);
            (c.epoch.to_string(), c.top)
        })
    }

    /// Forget `room` (no member here any more).
    pub fn forget(&self, room: &str) {
        self.rooms.remove(room);
    }

    /// What the copies hold.
    pub fn usage(&self) -> Usage {
        let (mut messages, mut bytes) = (0, 0);
        for e in self.rooms.iter() {
            let copy = lock(e.value());
            messages += copy.kept.len();
            bytes += copy.bytes;
        }
        Usage {
            rooms: self.rooms.len(),
            messages,
            bytes,
        }
    }

    fn with(&self, room: &str, f: impl FnOnce(&mut Copy)) {
        let entry = self.rooms.entry(Arc::from(room)).or_default();
        f(&mut lock(&entry));
    }
}

impl Copy {
    fn restart_if(&mut self, epoch: &str) {
        if epoch != &*self.epoch {
            *self = Copy {
                epoch: epoch.into(),
                ..Copy::default()
            };
        }
    }

    fn missed(
        &self,
        epoch: &str,
        since: u64,
        upto: u64,
        limits: &HistoryLimits,
    ) -> Result<Vec<Text>, Unrecoverable> {
        if epoch != &*self.epoch {
            return Err(Unrecoverable::Epoch);
        }
        if since > self.top {
            return Err(Unrecoverable::Ahead);
        }
        if since >= upto {
            return Ok(Vec::new());
        }
        if upto - since > limits.max_recover as u64 {
            return Err(Unrecoverable::TooMany);
        }
        let missed: Vec<(u64, Text)> = self
            .kept
            .range(since + 1..=upto)
            .map(|(o, t)| (*o, t.clone()))
            .collect();
        // All of them, or none: a hole means some are gone.
        if missed.len() as u64 != upto - since {
            return Err(Unrecoverable::Gone);
        }
        Ok(missed.into_iter().map(|(_, t)| t).collect())
    }
}

fn lock(c: &Mutex<Copy>) -> std::sync::MutexGuard<'_, Copy> {
    // Each method leaves a copy whole: a panic elsewhere cannot break it.
    c.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_is_all_or_nothing_and_bounded_by_what_was_delivered() {
        let r = Replica::new(HistoryLimits {
            size: 5,
            ..HistoryLimits::default()
        });
        for o in 1..=8 {
            r.insert("r", "e", o, Text::from(format!("{o}")));
        }
        let rec = r.recover("r", Some(("e", 4)), Some(6));
        assert_eq!(rec.top, 6);
        assert_eq!(rec.missed.unwrap().unwrap().len(), 2);
        // 1..=3 were pushed out by the size.
        let rec = r.recover("r", Some(("e", 1)), None);
        assert_eq!(rec.missed.unwrap(), Err(Unrecoverable::Gone));
        let rec = r.recover("r", Some(("x", 1)), None);
        assert_eq!(rec.missed.unwrap(), Err(Unrecoverable::Epoch));
        assert_eq!(r.read("r", Some(8), 2).offsets, vec![6, 7]);
        // What it covers: from its oldest on, without a hole.
        assert!(r.covers("r", "e", 3) && !r.covers("r", "e", 2) && !r.covers("r", "x", 5));
        r.saw_top("r", "e", 9);
        assert!(!r.covers("r", "e", 5), "9 is not copied yet");
        // A new epoch starts the copy again.
        r.insert("r", "f", 1, Text::from("1"));
        assert_eq!(r.top("r"), ("f".into(), 1));
    }
}
