//! Every room's history, in memory (the embedded default): a log per room
//! ([`RoomLog`]), created by the room's first kept message or
//! join, and dropped by the sweep once everything in it has expired.
//!
//! A room's log lock numbers its messages; it delivers nothing (the
//! dispatcher orders delivery by offset, `chat::dispatch`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;
use dashmap::DashMap;

use super::log::RoomLog;
use crate::store::bytes::Bytes;
use crate::store::history::{
    History, HistoryLimits, Page, Published, Recovery, Text, Unrecoverable, Usage,
};
use crate::store::json;

/// Every room's log, and the limits they keep to.
#[derive(Debug, Clone)]
pub struct MemoryHistory {
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

impl MemoryHistory {
    /// No history yet, kept within `limits`, its bytes counted on their own.
    pub fn new(limits: HistoryLimits) -> MemoryHistory {
        MemoryHistory::counted_in(limits, Bytes::new())
    }

    /// No history yet, its bytes counted in `bytes` with whatever else
    /// shares it (`limits.max_total_bytes` bounds them together).
    pub fn counted_in(limits: HistoryLimits, bytes: Arc<Bytes>) -> MemoryHistory {
        MemoryHistory {
            inner: Arc::new(Inner {
                rooms: DashMap::new(),
                limits,
                bytes,
            }),
        }
    }
}

#[async_trait]
impl History for MemoryHistory {
    fn limits(&self) -> &HistoryLimits {
        &self.inner.limits
    }

    /// The offset is written into `frame` itself, and the log and the
    /// members share that buffer.
    async fn publish(&self, room: &str, frame: String) -> Published {
        self.append(room, frame)
    }

    fn recover(&self, room: &str, since: Option<(&str, u64)>, upto: Option<u64>) -> Recovery {
        if !self.inner.limits.is_on() {
            // No history: no log to make for every room joined.
            return Recovery {
                epoch: "".into(),
                top: 0,
                missed: since.map(|_| Err(Unrecoverable::Off)),
            };
        }
        let log = self.log(room);
        let log = lock(&log);
        let limits = &self.inner.limits;
        let upto = upto.unwrap_or(log.top()).min(log.top());
        let missed = since.map(|(epoch, offset)| {
            log.recover_upto(epoch, offset, upto, Instant::now(), limits)
                .map(|kept| kept.into_iter().map(|k| k.frame.clone()).collect())
        });
        Recovery {
            epoch: log.epoch().into(),
            top: upto,
            missed,
        }
    }

    fn read(&self, room: &str, before: Option<u64>, limit: usize) -> Page {
        if !self.inner.limits.is_on() {
            return Page::default();
        }
        // Not made for a room that has none: reading never creates history.
        let Some(log) = self.inner.rooms.get(room).map(|l| l.clone()) else {
            return Page::default();
        };
        let log = lock(&log);
        let kept = log.page(before, limit, Instant::now(), self.inner.limits.ttl);
        Page {
            epoch: log.epoch().to_owned(),
            offsets: kept.iter().map(|k| k.offset).collect(),
            messages: kept.iter().map(|k| k.frame.to_string()).collect(),
        }
    }

    fn top(&self, room: &str) -> (String, u64) {
        if !self.inner.limits.is_on() {
            return (String::new(), 0);
        }
        let log = self.log(room);
        let log = lock(&log);
        (log.epoch().to_owned(), log.top())
    }

    async fn sweep(&self, in_use: &(dyn for<'r> Fn(&'r str) -> bool + Sync)) {
        let now = Instant::now();
        let ttl = self.inner.limits.ttl;
        let mut emptied = Vec::new();
        for entry in self.inner.rooms.iter() {
            let mut log = lock(entry.value());
            log.expire(now, ttl);
            if log.is_empty() {
                emptied.push(entry.key().clone());
            }
        }
        // `in_use` asks the registry, which asks this store with a room of
        // its own held (a join's recovery): it is asked with nothing here
        // held, and a log that was written to meanwhile stays.
        for room in emptied {
            if !in_use(&room) {
                self.inner
                    .rooms
                    .remove_if(&room, |_, log| lock(log).is_empty());
            }
        }
    }

    fn usage(&self) -> Usage {
        Usage {
            rooms: self.inner.rooms.len(),
            messages: self.inner.rooms.iter().map(|e| lock(e.value()).len()).sum(),
            bytes: self.inner.bytes.total(),
        }
    }
}

impl MemoryHistory {
    /// [`History::publish`] without the `async`: nothing here waits.
    pub fn append(&self, room: &str, frame: String) -> Published {
        if !self.inner.limits.is_on() || !json::is_object(&frame) {
            return Published {
                epoch: "".into(),
                offset: None,
                text: Text::from(frame),
            };
        }
        let log = self.log(room);
        let mut log = lock(&log);
        let offset = log.top() + 1;
        let text = Text::from(json::with_fields(
            frame,
            format_args!(r#""offset":{offset}"#),
        ));
        log.append(text.clone(), Instant::now(), &self.inner.limits);
        Published {
            epoch: log.epoch().into(),
            offset: Some(offset),
            text,
        }
    }

    /// The log of `room`, made if it has none.
    fn log(&self, room: &str) -> Arc<Mutex<RoomLog>> {
        if let Some(log) = self.inner.rooms.get(room) {
            return log.clone();
        }
        self.inner
            .rooms
            .entry(Arc::from(room))
            .or_insert_with(|| {
                Arc::new(Mutex::new(RoomLog::new(
                    room.len(),
                    self.inner.bytes.clone(),
                )))
            })
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

    async fn publish(h: &MemoryHistory, frame: &str) -> (Option<u64>, String) {
        let p = h.publish("r", frame.into()).await;
        (p.offset, p.text.to_string())
    }

    #[tokio::test]
    async fn a_recovery_stops_at_what_was_delivered() {
        let h = MemoryHistory::new(HistoryLimits::default());
        for _ in 0..5 {
            publish(&h, r#"{"x":1}"#).await;
        }
        let epoch = h.top("r").0;
        let r = h.recover("r", Some((&epoch, 1)), Some(3));
        assert_eq!(r.top, 3);
        assert_eq!(r.missed.unwrap().unwrap().len(), 2);
        // Past what was delivered here, but not past the newest.
        let r = h.recover("r", Some((&epoch, 4)), Some(3));
        assert!(r.missed.unwrap().unwrap().is_empty());
        let r = h.recover("r", Some((&epoch, 6)), None);
        assert_eq!(r.missed.unwrap(), Err(Unrecoverable::Ahead));
    }

    #[tokio::test]
    async fn only_objects_are_kept() {
        let h = MemoryHistory::new(HistoryLimits::default());
        assert_eq!(publish(&h, "[1]").await, (None, "[1]".into()));
        assert_eq!(
            publish(&h, r#"{"x":1}"#).await,
            (Some(1), r#"{"x":1,"offset":1}"#.into())
        );
        assert_eq!(h.read("r", None, 10).offsets, vec![1]);
        assert_eq!(h.read("unknown", None, 10), Page::default());
        let off = MemoryHistory::new(HistoryLimits {
            size: 0,
            ..HistoryLimits::default()
        });
        assert_eq!(publish(&off, r#"{"x":1}"#).await.0, None);
    }
}
