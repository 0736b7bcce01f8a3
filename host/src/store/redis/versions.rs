//! The cluster's record of its policy, in Redis (keys under
//! `<prefix>:{policy}`; [`super::keys::PolicyKeys`]): components by
//! SHA-256, the active and previous one, each swap's answers, what each
//! node runs; announcements on `<prefix>:policy`, heard by the
//! subscriber and handed on here.

use super::conn::Timed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use tokio::sync::mpsc;

use super::Unavailable;
use super::conn::Writer;
use super::heartbeat::now_ms;
use super::keys::{Keys, PolicyKeys};
use super::scripts::{self, late_or, value};
use crate::store::Unavailable as Refused;
use crate::store::versions::{
    Adopted, Announcement, Answer, Heard, NodeVersion, Record, RolledBack, Versions,
};

/// How long a component is kept before a swap makes it active (a swap
/// refused leaves it to expire).
const CANDIDATE_TTL: Duration = Duration::from_secs(3600);

/// How long a swap's answers are kept.
const ANSWERS_TTL: Duration = Duration::from_secs(600);

/// Announcements waiting for the node to act on them.
pub const HEARD: usize = 256;

/// The record in Redis.
#[derive(Debug)]
pub struct RedisVersions {
    writer: Arc<Writer>,
    keys: Keys,
    policy: PolicyKeys,
    heard: Mutex<Option<mpsc::Receiver<Heard>>>,
}

impl RedisVersions {
    /// The record under `keys`; what the subscriber hears comes in on
    /// `heard`.
    pub fn new(writer: Arc<Writer>, keys: Keys, heard: mpsc::Receiver<Heard>) -> RedisVersions {
        RedisVersions {
            writer,
            policy: keys.policy(),
            keys,
            heard: Mutex::new(Some(heard)),
        }
    }

    async fn read(&self, key: &str) -> Result<Option<Adopted>, Unavailable> {
        let json: Option<String> = self.writer.query(redis::cmd("GET").arg(key)).await?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| Unavailable::Reply(format!("{key}: {e}")))
        })
        .transpose()
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[async_trait]
impl Versions for RedisVersions {
    async fn keep(&self, sha256: &str, bytes: &[u8]) -> Result<(), Refused> {
        let key = format!("{}{sha256}", self.policy.component);
        // Kept with an expiry unless it is kept for good already (the
        // active or previous component being swapped in again).
        let kept: bool = self
            .writer
            .query(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(bytes)
                    .arg("NX")
                    .arg("PX")
                    .arg(CANDIDATE_TTL.as_millis() as u64),
            )
            .await?;
        if !kept {
            let _: i64 = self
                .writer
                .query(
                    redis::cmd("PEXPIRE")
                        .arg(&key)
                        .arg(CANDIDATE_TTL.as_millis() as u64)
                        .arg("GT"),
                )
                .await?;
        }
        Ok(())
    }

    async fn fetch(&self, sha256: &str) -> Result<Option<Vec<u8>>, Refused> {
        let key = format!("{}{sha256}", self.policy.component);
        Ok(self.writer.query(redis::cmd("GET").arg(key)).await?)
    }

    async fn record(&self) -> Result<Record, Refused> {
        Ok(Record {
            active: self.read(&self.policy.active).await?,
            previous: self.read(&self.policy.previous).await?,
        })
    }

    async fn adopt(&self, component: &Adopted) -> Result<Adopted, Refused> {
        let _: Option<String> = self
            .writer
            .query(
                redis::cmd("SET")
                    .arg(&self.policy.active)
                    .arg(json(component))
                    .arg("NX"),
            )
            .await?;
        let Some(active) = self.read(&self.policy.active).await? else {
            return Err(Unavailable::Reply("the active policy vanished".into()).into());
        };
        if active.sha256 == component.sha256 {
            let key = format!("{}{}", self.policy.component, component.sha256);
            let _: i64 = self.writer.query(redis::cmd("PERSIST").arg(key)).await?;
        }
        Ok(active)
    }

    async fn live_nodes(&self) -> Result<Vec<String>, Refused> {
        Ok(self
            .writer
            .query(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.keys.nodes())
                    .arg(now_ms())
                    .arg("+inf"),
            )
            .await?)
    }

    async fn announce(&self, announcement: &Announcement) -> Result<(), Refused> {
        let _: i64 = self
            .writer
            .query(
                redis::cmd("PUBLISH")
                    .arg(&self.policy.channel)
                    .arg(json(announcement)),
            )
            .await?;
        Ok(())
    }

    async fn answer(&self, swap: &str, answer: &Answer) -> Result<(), Refused> {
        let key = format!("{}{swap}", self.policy.swap);
        let _: (i64, i64) = self
            .writer
            .query_pipe(
                redis::pipe()
                    .cmd("RPUSH")
                    .arg(&key)
                    .arg(json(answer))
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(ANSWERS_TTL.as_millis() as u64),
            )
            .await?;
        Ok(())
    }

    async fn answers(&self, swap: &str) -> Result<Vec<Answer>, Refused> {
        let key = format!("{}{swap}", self.policy.swap);
        let all: Vec<String> = self
            .writer
            .query(redis::cmd("LRANGE").arg(key).arg(0).arg(-1))
            .await?;
        Ok(all
            .iter()
            .filter_map(|a| serde_json::from_str(a).ok())
            .collect())
    }

    async fn activate(
        &self,
        swap: &str,
        component: &Adopted,
        expected: Option<&str>,
        node: &str,
    ) -> Result<bool, Refused> {
        let announcement = Announcement::Activate {
            swap: swap.to_owned(),
            component: component.clone(),
            node: node.to_owned(),
        };
        let mut c = self.writer.conn().await?;
        let reply: Vec<Value> = scripts::POLICY_ACTIVATE
            .key(&self.policy.active)
            .key(&self.policy.previous)
            .key(format!("{}{}", self.policy.component, component.sha256))
            .arg(self.writer.deadline_ms())
            .arg(expected.unwrap_or(""))
            .arg(json(component))
            .arg(&component.sha256)
            .arg(&self.policy.component)
            .arg(&self.policy.channel)
            .arg(json(&announcement))
            .invoke_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        match reply.as_slice() {
            [done] if value::<i64>(done).is_ok() => Ok(value::<i64>(done)? == 1),
            other => Err(late_or(other, "policy activate").into()),
        }
    }

    async fn roll_back(
        &self,
        from: &str,
        reason: &str,
        automatic: bool,
        node: &str,
    ) -> Result<RolledBack, Refused> {
        let mut c = self.writer.conn().await?;
        let reply: Vec<Value> = scripts::POLICY_ROLLBACK
            .key(&self.policy.active)
            .key(&self.policy.previous)
            .arg(self.writer.deadline_ms())
            .arg(from)
            .arg(&self.policy.channel)
            .arg(reason)
            .arg(if automatic { "1" } else { "0" })
            .arg(node)
            .invoke_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        let word = reply.first().and_then(|w| value::<String>(w).ok());
        match (word.as_deref(), reply.get(1)) {
            (Some("ok"), Some(previous)) => {
                let previous: String = value(previous)?;
                serde_json::from_str(&previous)
                    .map(RolledBack::Restored)
                    .map_err(|e| Unavailable::Reply(format!("policy rollback: {e}")).into())
            }
            (Some("moved"), _) => Ok(RolledBack::Moved),
            (Some("none"), _) => Ok(RolledBack::NoPrevious),
            _ => Err(late_or(&reply, "policy rollback").into()),
        }
    }

    async fn report(&self, version: &NodeVersion) -> Result<(), Refused> {
        let _: i64 = self
            .writer
            .query(
                redis::cmd("HSET")
                    .arg(&self.policy.nodes)
                    .arg(&version.node)
                    .arg(json(version)),
            )
            .await?;
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeVersion>, Refused> {
        let live = self.live_nodes().await?;
        let all: Vec<(String, String)> = self
            .writer
            .query(redis::cmd("HGETALL").arg(&self.policy.nodes))
            .await?;
        let mut nodes: Vec<NodeVersion> = all
            .into_iter()
            .filter(|(node, _)| live.contains(node))
            .filter_map(|(_, v)| serde_json::from_str(&v).ok())
            .collect();
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(nodes)
    }

    fn heard(&self) -> Option<mpsc::Receiver<Heard>> {
        self.heard.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Read an announcement (the subscriber's).
pub fn read(payload: &[u8]) -> Option<Announcement> {
    serde_json::from_slice(payload).ok()
}
