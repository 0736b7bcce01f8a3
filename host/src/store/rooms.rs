//! Every room's history, in memory (the embedded default): a log per room
//! (`history::RoomLog`), created by the room's first kept message or
//! join, and dropped by the sweep once everything in it has expired.
//!
//! A room's log lock is also what orders its history with its live
//! traffic: a kept message is numbered and handed to its members while the
//! lock is held, and a recovering join replays and becomes a member while
//! it is held. So a message is either in the replay or delivered live to
//! the new member, never both, never neither.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use dashmap::DashMap;

use super::history::{Bytes, HistoryLimits, RoomLog, Text, Unrecoverable};
use super::json;

/// Every room's log, and the limits they keep to.
#[derive(Debug, Clone)]
pub struct Histories {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// room → its log.
    rooms: DashMap<Arc<str>, Arc<Mutex<RoomLog>>>,
    /// Size, age and byte bounds.
    limits: HistoryLimits,
    /// Bytes of every log together.
    bytes: Arc<Bytes>,
}

/// A page of kept messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The room's epoch.
    pub epoch: String,
    /// The messages' offsets, oldest first.
    pub offsets: Vec<u64>,
    /// The messages (room frames with their `offset`), oldest first.
    pub messages: Vec<String>,
}

/// What a join found in the room's history.
#[derive(Debug)]
pub struct Recovery {
    /// The room's epoch.
    pub epoch: Arc<str>,
    /// Its newest offset (0: nothing kept yet).
    pub top: u64,
    /// With `since`: the messages missed, oldest first, or why they cannot
    /// be replayed. `None` without `since`.
    pub missed: Option<Result<Vec<Text>, Unrecoverable>>,
}

impl Histories {
    /// No history yet, kept within `limits`, its bytes counted on their own.
    pub fn new(limits: HistoryLimits) -> Histories {
        Histories::counted_in(limits, Bytes::new())
    }

    /// No history yet, its bytes counted in `bytes` with whatever else
    /// shares it (`limits.max_total_bytes` bounds them together).
    pub fn counted_in(limits: HistoryLimits, bytes: Arc<Bytes>) -> Histories {
        Histories {
            inner: Arc::new(Inner {
                rooms: DashMap::new(),
                limits,
                bytes,
            }),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &HistoryLimits {
        &self.inner.limits
    }

    /// Bytes of every kept message.
    pub fn bytes(&self) -> usize {
        self.inner.bytes.total()
    }

    /// Keep `text` as `room`'s next message (with its `"offset"` added) and
    /// hand it to `deliver` while the room's log is locked. A frame that is
    /// not a JSON object, or any frame while history is off, is not kept:
    /// `deliver` gets it unchanged, with no offset. The offset is written
    /// into `text` itself, and the log and the members share that buffer.
    pub fn publish<R>(
        &self,
        room: &str,
        text: String,
        deliver: impl FnOnce(Option<u64>, Text) -> R,
    ) -> R {
        if !self.inner.limits.is_on() || !json::is_object(&text) {
            return deliver(None, Text::from(text));
        }
        let log = self.log(room);
        let mut log = lock(&log);
        let offset = log.top() + 1;
        let framed = Text::from(json::with_fields(
            text,
            format_args!(r#""offset":{offset}"#),
        ));
        log.append(framed.clone(), Instant::now(), &self.inner.limits);
        deliver(Some(offset), framed)
    }

    /// Look up what a join of `room` needs (and, with `since`, what was
    /// missed after it) and hand it to `join` while the room's log is
    /// locked, so no kept message can slip between the replay and the
    /// membership.
    pub fn join<R>(
        &self,
        room: &str,
        since: Option<(&str, u64)>,
        join: impl FnOnce(Recovery) -> R,
    ) -> R {
        if !self.inner.limits.is_on() {
            // No history: no log to make for every room joined.
            return join(Recovery {
                epoch: "".into(),
                top: 0,
                missed: since.map(|_| Err(Unrecoverable::Off)),
            });
        }
        let log = self.log(room);
        let log = lock(&log);
        let limits = &self.inner.limits;
        let missed = since.map(|(epoch, offset)| {
            log.recover(epoch, offset, Instant::now(), limits)
                .map(|kept| kept.into_iter().map(|k| k.frame.clone()).collect())
        });
        join(Recovery {
            epoch: log.epoch().into(),
            top: log.top(),
            missed,
        })
    }

    /// At most `limit` of the newest kept messages of `room` before
    /// `before`, oldest first.
    pub fn read(&self, room: &str, before: Option<u64>, limit: usize) -> Page {
        if !self.inner.limits.is_on() {
            return Page::default();
        }
        let log = self.log(room);
        let log = lock(&log);
        let kept = log.page(before, limit, Instant::now(), self.inner.limits.ttl);
        Page {
            epoch: log.epoch().to_owned(),
            offsets: kept.iter().map(|k| k.offset).collect(),
            messages: kept.iter().map(|k| k.frame.to_string()).collect(),
        }
    }

    /// `room`'s epoch and newest offset.
    pub fn top(&self, room: &str) -> (String, u64) {
        if !self.inner.limits.is_on() {
            return (String::new(), 0);
        }
        let log = self.log(room);
        let log = lock(&log);
        (log.epoch().to_owned(), log.top())
    }

    /// Drop expired messages, and the logs of rooms `in_use` says are gone
    /// once nothing in them is left (such a room that comes back gets a new
    /// epoch: its history was lost).
    pub fn sweep(&self, in_use: impl Fn(&str) -> bool) {
        let now = Instant::now();
        let ttl = self.inner.limits.ttl;
        self.inner.rooms.retain(|room, log| {
            let mut log = lock(log);
            log.expire(now, ttl);
            !log.is_empty() || in_use(room)
        });
    }

    /// Rooms with a log now.
    pub fn rooms(&self) -> usize {
        self.inner.rooms.len()
    }

    /// The log of `room`, made if it has none.
    fn log(&self, room: &str) -> Arc<Mutex<RoomLog>> {
        if let Some(log) = self.inner.rooms.get(room) {
            return log.clone();
        }
        self.inner
            .rooms
            .entry(Arc::from(room))
            .or_insert_with(|| Arc::new(Mutex::new(RoomLog::new(self.inner.bytes.clone()))))
            .clone()
    }
}

fn lock(log: &Mutex<RoomLog>) -> MutexGuard<'_, RoomLog> {
    // A log is consistent after every method: a panic elsewhere while it
    // was held cannot leave it half-written.
    log.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_are_kept() {
        let h = Histories::new(HistoryLimits::default());
        let text = |o, t: Text| (o, t.as_str().to_owned());
        assert_eq!(h.publish("r", "[1]".into(), text), (None, "[1]".into()));
        assert_eq!(
            h.publish("r", r#"{"x":1}"#.into(), text),
            (Some(1), r#"{"x":1,"offset":1}"#.into())
        );
        let page = h.read("r", None, 10);
        assert_eq!(page.offsets, vec![1]);
        let off = Histories::new(HistoryLimits {
            size: 0,
            ..HistoryLimits::default()
        });
        assert_eq!(off.publish("r", r#"{"x":1}"#.into(), |o, _| o), None);
    }
}
