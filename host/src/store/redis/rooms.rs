//! A room's history in Redis: a stream whose entry ids are the offsets
//! (`<offset>-0`), and a hash with the room's epoch and newest offset. A
//! publish appends, numbers and publishes in one script (constant work
//! whatever the room's size); reads are plain commands.

use super::conn::Timed;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use super::Unavailable;
use super::conn::Writer;
use super::keys::Keys;
use super::scripts::{self, late_or, value};
use crate::store::token;

/// A kept message's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The room's epoch.
    pub epoch: String,
    /// The message's offset.
    pub offset: u64,
}

/// A kept message read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its offset.
    pub offset: u64,
    /// The frame as published (no offset written in).
    pub frame: String,
    /// The id it skips.
    pub except: Option<String>,
}

/// Every room's history, in Redis.
#[derive(Debug, Clone)]
pub struct Rooms {
    writer: Arc<Writer>,
    keys: Keys,
    /// This node's id, sent with each publish (a node skips its own).
    node: String,
    /// Messages kept per room.
    size: usize,
    /// How long a room's history lasts after its newest message.
    ttl: Duration,
}

/// Rooms whose epoch one round trip keeps.
const KEEP_BATCH: usize = 1_000;

impl Rooms {
    /// Rooms kept through `writer`, under `keys`, `size` messages each for
    /// `ttl` after the newest, published as node `node`.
    pub fn new(writer: Arc<Writer>, keys: Keys, node: &str, size: usize, ttl: Duration) -> Rooms {
        Rooms {
            writer,
            keys,
            node: node.to_owned(),
            size: size.max(1),
            ttl,
        }
    }

    /// Keep `frame` as `room`'s next message and publish it to the room's
    /// channel (skipping `except`). Refused (nothing kept, nothing
    /// published) when Redis cannot answer in time.
    pub async fn publish(
        &self,
        room: &str,
        frame: &str,
        except: Option<&str>,
    ) -> Result<Kept, Unavailable> {
        let k = self.keys.room(room);
        let mut c = self.writer.conn().await?;
        let reply: Vec<Value> = scripts::PUBLISH
            .key(&k.meta)
            .key(&k.stream)
            .arg(frame)
            .arg(self.size)
            .arg(self.ttl.as_millis().max(1) as u64)
            .arg(self.writer.deadline_ms())
            .arg(&*token::new_epoch())
            .arg(&k.channel)
            .arg(&self.node)
            .arg(except.unwrap_or(""))
            .invoke_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        self.writer.figures.sent();
        match reply.as_slice() {
            [epoch, offset] => Ok(Kept {
                epoch: value(epoch)?,
                offset: value(offset)?,
            }),
            other => Err(late_or(other, "publish")),
        }
    }

    /// How long a room's history lasts after its newest message.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Keep the epoch of `rooms` (each with a member on this node) for
    /// another `ttl`: a room's epoch lasts while it has members, as on one
    /// server, however long it stays quiet. Its messages still expire
    /// `ttl` after the newest (the stream's own expiry). Pipelined, a
    /// batch at a time.
    pub async fn keep_epochs(&self, rooms: &[Arc<str>]) -> Result<(), Unavailable> {
        for batch in rooms.chunks(KEEP_BATCH) {
            let mut pipe = redis::pipe();
            for room in batch {
                pipe.cmd("PEXPIRE")
                    .arg(self.keys.room(room).meta)
                    .arg(self.ttl.as_millis().max(1) as u64)
                    .ignore();
            }
            let _: () = self.writer.query_pipe(&pipe).await?;
        }
        Ok(())
    }

    /// `room`'s epoch and newest offset; a room with no history yet is
    /// given its epoch now (as the memory store gives one at the first
    /// join), lasting as long as a kept message would.
    pub async fn open(&self, room: &str) -> Result<(String, u64), Unavailable> {
        let k = self.keys.room(room);
        let mut c = self.writer.conn().await?;
        let (_, _, epoch, top): (i64, i64, Option<String>, Option<u64>) = redis::pipe()
            .atomic()
            .cmd("HSETNX")
            .arg(&k.meta)
            .arg("epoch")
            .arg(&*token::new_epoch())
            .cmd("PEXPIRE")
            .arg(&k.meta)
            .arg(self.ttl.as_millis().max(1) as u64)
            .cmd("HGET")
            .arg(&k.meta)
            .arg("epoch")
            .cmd("HGET")
            .arg(&k.meta)
            .arg("top")
            .query_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        let epoch = epoch.ok_or_else(|| Unavailable::Reply("no epoch after HSETNX".into()))?;
        Ok((epoch, top.unwrap_or(0)))
    }

    /// `room`'s epoch (`None`: no history) and newest offset.
    pub async fn top(&self, room: &str) -> Result<(Option<String>, u64), Unavailable> {
        let k = self.keys.room(room);
        let mut c = self.writer.conn().await?;
        let (epoch, top): (Option<String>, Option<u64>) = redis::cmd("HMGET")
            .arg(&k.meta)
            .arg("epoch")
            .arg("top")
            .query_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        Ok((epoch, top.unwrap_or(0)))
    }

    /// At most `count` kept messages of `room` after offset `after`,
    /// oldest first (the frames as published, without their offset
    /// written in).
    pub async fn after(
        &self,
        room: &str,
        after: u64,
        count: usize,
    ) -> Result<Vec<Entry>, Unavailable> {
        let k = self.keys.room(room);
        let mut c = self.writer.conn().await?;
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&k.stream)
            .arg(format!("{}-0", after + 1))
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        let mut out = Vec::with_capacity(reply.ids.len());
        for entry in reply.ids {
            let offset = entry
                .id
                .split('-')
                .next()
                .and_then(|o| o.parse().ok())
                .ok_or_else(|| Unavailable::Reply(format!("stream id {}", entry.id)))?;
            let frame = entry
                .map
                .get("d")
                .ok_or_else(|| Unavailable::Reply(format!("entry {} has no frame", entry.id)))?;
            let except = match entry.map.get("x") {
                Some(x) => Some(value::<String>(x)?).filter(|x| !x.is_empty()),
                None => None,
            };
            out.push(Entry {
                offset,
                frame: value(frame)?,
                except,
            });
        }
        Ok(out)
    }
}
