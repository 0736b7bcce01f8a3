//! Stored notices in Redis (cluster mode): an id's box is a list under
//! its hash tag, with its per-sender counts beside it; each sender's
//! outstanding notices are a sorted set under its own tag (its quota,
//! scored by expiry); the store's bytes are one counter. The same rules
//! as the memory store (`store::memory::notices`): fair shares among
//! senders, a full box drops the oldest notice of the sender with the
//! most, a byte cap past which a notice is refused — each step one
//! script, fenced by its deadline.

use super::conn::Timed;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::Value;

use super::Unavailable;
use super::conn::Writer;
use super::keys::Keys;
use super::scripts::{self, late_or, value};
use crate::store::notices::{Mail, Notices, StoreError, Stored, StoredLimits};

/// Boxes one sweep looks at, at most (the sweep runs again soon).
const SWEEP_BATCH: usize = 1_000;

/// Every id's stored notices, in Redis.
#[derive(Debug)]
pub struct RedisNotices {
    writer: Arc<Writer>,
    keys: Keys,
    limits: StoredLimits,
    /// The store's bytes as Redis last counted them (for `bytes`).
    bytes: AtomicUsize,
}

impl RedisNotices {
    /// Notices kept through `writer`, under `keys`, within `limits`.
    pub fn new(writer: Arc<Writer>, keys: Keys, limits: StoredLimits) -> RedisNotices {
        RedisNotices {
            writer,
            keys,
            limits,
            bytes: AtomicUsize::new(0),
        }
    }

    async fn try_store(
        &self,
        from: &str,
        to: &str,
        frame: &str,
        now: SystemTime,
    ) -> Result<Result<(), StoreError>, Unavailable> {
        let (recipient, sender) = (self.keys.id(to), self.keys.id(from));
        let l = &self.limits;
        let mut c = self.writer.conn().await?;
        let reply: Vec<Value> = scripts::NOTICE_STORE
            .key(&recipient.notices)
            .key(&recipient.counts)
            .key(&sender.out)
            .key(self.keys.global("notices:bytes"))
            .key(self.keys.global("notices:due"))
            .key(self.keys.global("notices:uid"))
            .arg(self.writer.deadline_ms())
            .arg(from)
            .arg(to)
            .arg(frame)
            .arg(ms(now))
            .arg(ms_of(l.max_age))
            .arg(l.per_id)
            .arg(l.per_sender)
            .arg(l.per_pair)
            .arg(l.max_total_bytes)
            .arg(self.keys.id_prefix())
            .invoke_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        let kind = match reply.first() {
            Some(k) => value::<String>(k)?,
            None => return Err(Unavailable::Reply("store answered nothing".into())),
        };
        let n = || reply.get(1).map(value::<usize>).transpose();
        Ok(match kind.as_str() {
            "ok" => Ok(()),
            "sender" => Err(StoreError::PerSender(n()?.unwrap_or(l.per_sender))),
            "pair" => Err(StoreError::PerPair(n()?.unwrap_or(l.per_pair))),
            "full" => Err(StoreError::Full),
            _ => return Err(late_or(&reply, "store")),
        })
    }

    async fn try_take(&self, id: &str, now: SystemTime) -> Result<Mail, Unavailable> {
        let k = self.keys.id(id);
        let mut c = self.writer.conn().await?;
        let reply: Vec<Value> = scripts::NOTICE_TAKE
            .key(&k.notices)
            .key(&k.counts)
            .key(self.keys.global("notices:bytes"))
            .key(self.keys.global("notices:due"))
            .arg(self.writer.deadline_ms())
            .arg(id)
            .arg(ms(now))
            .arg(ms_of(self.limits.max_age))
            .arg(self.keys.id_prefix())
            .invoke_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        let Some((dropped, entries)) = reply.split_first() else {
            return Err(Unavailable::Reply("take answered nothing".into()));
        };
        let Ok(dropped) = value::<u64>(dropped) else {
            return Err(late_or(&reply, "take"));
        };
        let mut notices = Vec::with_capacity(entries.len());
        for e in entries {
            let e: String = value(e)?;
            notices.push(entry(&e).ok_or_else(|| {
                Unavailable::Reply(format!("a stored notice of another form: {e:?}"))
            })?);
        }
        Ok(Mail { notices, dropped })
    }

    async fn try_sweep(&self, now: SystemTime) -> Result<usize, Unavailable> {
        let mut c = self.writer.conn().await?;
        let reply: Value = scripts::NOTICE_SWEEP
            .key(self.keys.global("notices:due"))
            .key(self.keys.global("notices:bytes"))
            .arg(self.writer.deadline_ms())
            .arg(ms(now))
            .arg(ms_of(self.limits.max_age))
            .arg(self.keys.id_prefix())
            .arg(SWEEP_BATCH)
            .invoke_async(&mut c)
            .timed(&self.writer)
            .await?;
        let bytes: Option<usize> = redis::cmd("GET")
            .arg(self.keys.global("notices:bytes"))
            .query_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        self.bytes.store(bytes.unwrap_or(0), Ordering::Relaxed);
        match reply {
            Value::Int(n) => Ok(n.max(0) as usize),
            Value::Array(a) => Err(late_or(&a, "sweep")),
            other => Err(Unavailable::Reply(format!("sweep answered {other:?}"))),
        }
    }
}

/// A stored entry, `from\nat_ms\nuid\nframe`.
fn entry(e: &str) -> Option<Stored> {
    let mut p = e.splitn(4, '\n');
    let from = p.next()?;
    let at: u64 = p.next()?.parse().ok()?;
    let _uid = p.next()?;
    let frame = p.next()?;
    Some(Stored {
        frame: Arc::from(frame),
        from: Arc::from(from),
        at: UNIX_EPOCH + Duration::from_millis(at),
    })
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms_of(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

#[async_trait]
impl Notices for RedisNotices {
    fn limits(&self) -> &StoredLimits {
        &self.limits
    }

    async fn store(
        &self,
        from: &str,
        to: &str,
        frame: Arc<str>,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        if self.limits.per_id == 0 {
            return Err(StoreError::Off);
        }
        match self.try_store(from, to, &frame, now).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(to, error = %e, "a notice not stored: Redis did not answer");
                Err(StoreError::Unavailable)
            }
        }
    }

    /// Nothing is handed over when Redis does not answer: what is kept
    /// stays for the id's next connection (the take is fenced: a late one
    /// removes nothing).
    async fn take(&self, id: &str, now: SystemTime) -> Mail {
        match self.try_take(id, now).await {
            Ok(mail) => mail,
            Err(e) => {
                tracing::warn!(id, error = %e, "stored notices not handed over now: Redis did not answer");
                Mail::default()
            }
        }
    }

    async fn expire_all(&self, now: SystemTime) {
        loop {
            match self.try_sweep(now).await {
                Ok(n) if n >= SWEEP_BATCH => continue,
                Ok(_) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "stored notices not swept now");
                    return;
                }
            }
        }
    }

    fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_with_newlines_in_its_frame() {
        let s = entry("alice\n1700000000123\n7\n{\"a\":\"x\ny\"}")
            .unwrap_or_else(|| panic!("not read"));
        assert_eq!(&*s.from, "alice");
        assert_eq!(&*s.frame, "{\"a\":\"x\ny\"}");
        assert_eq!(s.at, UNIX_EPOCH + Duration::from_millis(1_700_000_000_123));
        assert!(entry("alice\nsoon\n7\nx").is_none());
    }
}
