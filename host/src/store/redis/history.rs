//! Room history as the chat layer asks it, in cluster mode: kept in Redis
//! ([`Rooms`]), answered from this node's [`Replica`] where nothing can
//! wait. A join first `prepare`s: the node follows the room's channel,
//! then copies what the room's stream holds, so the recovery made under
//! the room's hold finds it.
//!
//! How fresh the answers are (the policy's imports): `history.read` and
//! `history.top` answer from the copy, which holds every kept message
//! that reached this node's members, in order — exact for a room with a
//! member here, up to the messages still on their way from Redis (a
//! publish's round trip); for a room with no member here, nothing.

use std::sync::Arc;

use async_trait::async_trait;

use super::replica::Replica;
use super::rooms::Rooms;
use super::subscriber::{Subscriber, with_offset};
use crate::store::Unavailable;
use crate::store::history::{History, HistoryLimits, Page, Published, Recovery, Text, Usage};

/// Every room's history, kept in Redis.
#[derive(Debug)]
pub struct RedisHistory {
    pub(super) rooms: Rooms,
    pub(super) replica: Arc<Replica>,
    pub(super) subscriber: Arc<Subscriber>,
    pub(super) limits: HistoryLimits,
}

#[async_trait]
impl History for RedisHistory {
    fn limits(&self) -> &HistoryLimits {
        &self.limits
    }

    /// Kept without anyone skipped; the cluster's bus publishes itself
    /// (with `except`), so this serves other callers only.
    async fn publish(&self, room: &str, frame: String) -> Published {
        match self.rooms.publish(room, &frame, None).await {
            Ok(kept) => {
                let text = Text::from(with_offset(frame, kept.offset));
                self.replica
                    .insert(room, &kept.epoch, kept.offset, text.clone());
                Published {
                    epoch: kept.epoch.into(),
                    offset: Some(kept.offset),
                    text,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, room, "a room message was not kept");
                Published {
                    epoch: "".into(),
                    offset: None,
                    text: Text::from(frame),
                }
            }
        }
    }

    fn recover(&self, room: &str, since: Option<(&str, u64)>, upto: Option<u64>) -> Recovery {
        self.replica.recover(room, since, upto)
    }

    async fn prepare(&self, room: &str, _since: Option<(&str, u64)>) -> Result<(), Unavailable> {
        self.subscriber.watch(room).await?;
        if !self.limits.is_on() {
            return Ok(());
        }
        let (epoch, top) = self.rooms.open(room).await?;
        // Members here still on an older epoch (Redis lost its data, and
        // nothing of the new one reached them yet) get the new one's
        // messages first: a joiner must find the room's delivery in the
        // epoch it is told, or the messages before its join would come
        // after it.
        self.subscriber.catch_up(room, &epoch).await?;
        self.replica.saw_top(room, &epoch, top);
        // What a recovery could need, and what `history` shows (the policy
        // answers it from the copy): the newest `size` messages. A room
        // followed here already is copied as it goes: read nothing more
        // unless the copy has a hole. (Checking only from `since` let a
        // copy emptied by a new epoch pass for whole: `history` then
        // showed nothing of it.)
        let size = self.limits.size as u64;
        let mut after = top.saturating_sub(size);
        if self.replica.covers(room, &epoch, after) {
            return Ok(());
        }
        let mut count = (top - after) as usize;
        while count > 0 {
            let batch = self.rooms.after(room, after, count).await?;
            let Some(last) = batch.last().map(|e| e.offset) else {
                break;
            };
            for e in batch {
                let text = Text::from(with_offset(e.frame, e.offset));
                self.replica.insert(room, &epoch, e.offset, text);
            }
            count = count.saturating_sub((last - after) as usize);
            after = last;
        }
        Ok(())
    }

    fn read(&self, room: &str, before: Option<u64>, limit: usize) -> Page {
        self.replica.read(room, before, limit)
    }

    fn top(&self, room: &str) -> (String, u64) {
        self.replica.top(room)
    }

    /// Stop following the rooms with no member here (and forget their
    /// copies). A join between the two checks follows it again.
    async fn sweep(&self, in_use: &(dyn for<'r> Fn(&'r str) -> bool + Sync)) {
        for room in self.subscriber.watched_rooms() {
            if in_use(&room) {
                continue;
            }
            self.subscriber.unwatch(&room).await;
            self.replica.forget(&room);
            if in_use(&room) {
                let _ = self.subscriber.watch(&room).await;
                self.subscriber.fill(&room);
            }
        }
    }

    fn usage(&self) -> Usage {
        self.replica.usage()
    }
}
