//! Node death: every node reads the nodes set at each heartbeat; a node
//! whose heartbeat has expired (with a grace for clocks) is taken over by
//! the first survivor to claim it (`lua/takeover.lua`, `SET NX`). Its ids
//! are treated as abrupt disconnects: held — a connection elsewhere with
//! the session resumes one — until the resume window, counted from the
//! dead node's last beat, ends; then each goes offline for good
//! (`lua/bury.lua`): `on-disconnect` runs once, on the survivor, and its
//! rooms hear `left`.

use super::conn::Timed;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use super::Unavailable;
use super::conn::Writer;
use super::heartbeat::{INTERVAL, TTL, now_ms};
use super::ids::GENERATION_TTL;
use super::keys::Keys;
use super::scripts::{self, late_or, value};
use crate::store::bus::HandOver;

/// How far past its expiry a heartbeat must be before its node is dead:
/// room for the nodes' clocks to differ (the score is the beating node's).
const GRACE: Duration = Duration::from_secs(2);

/// Watches for dead nodes, as node `node`.
#[derive(Debug, Clone)]
pub struct Deaths {
    pub writer: Arc<Writer>,
    pub keys: Keys,
    pub node: String,
    /// How long a dead node's ids are held (`--resume-window-secs`).
    pub window: Duration,
}

impl Deaths {
    /// Look for dead nodes every heartbeat, until the runtime stops.
    ///
    /// Only once this node has reached Redis without a break for a
    /// heartbeat's life and the grace: after Redis was away (paused,
    /// restarting) every heartbeat has lapsed at once, and the live nodes
    /// need a beat to show it — nobody takes over anybody meanwhile.
    pub async fn watch(self, handing: Arc<dyn HandOver>) {
        let mut every = tokio::time::interval(INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut up_since: Option<tokio::time::Instant> = None;
        loop {
            every.tick().await;
            if !self.writer.is_up() {
                up_since = None;
            }
            let steady = up_since.is_some_and(|t| t.elapsed() >= TTL + GRACE);
            match self.look(&handing, steady).await {
                Ok(()) => {
                    up_since.get_or_insert_with(tokio::time::Instant::now);
                }
                Err(e) => {
                    up_since = None;
                    tracing::debug!(error = %e, "dead nodes not looked for now");
                }
            }
        }
    }

    async fn look(&self, handing: &Arc<dyn HandOver>, steady: bool) -> Result<(), Unavailable> {
        let before = now_ms().saturating_sub(GRACE.as_millis() as u64);
        let mut c = self.writer.conn().await?;
        if !steady {
            // Only a call, to know Redis answers.
            let _: String = redis::cmd("PING")
                .query_async(&mut c)
                .timed(&self.writer)
                .await?;
            self.writer.answered();
            return Ok(());
        }
        let dead: Vec<(String, u64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.nodes())
            .arg("-inf")
            .arg(before)
            .arg("WITHSCORES")
            .query_async(&mut c)
            .timed(&self.writer)
            .await?;
        for (node, expiry) in dead {
            if node == self.node {
                continue;
            }
            let Some(ids) = self.take_over(&node).await? else {
                continue;
            };
            // The window is counted from the dead node's last beat.
            let last_beat = expiry.saturating_sub(TTL.as_millis() as u64);
            let ends = last_beat + self.window.as_millis() as u64;
            tracing::warn!(
                node,
                ids = ids.len(),
                "a node died; its ids are held, then let go"
            );
            let (me, handing) = (self.clone(), handing.clone());
            tokio::spawn(async move {
                let wait = ends.saturating_sub(now_ms());
                tokio::time::sleep(Duration::from_millis(wait)).await;
                for (id, generation) in ids {
                    me.bury(&node, &id, &generation, &handing).await;
                }
            });
        }
        Ok(())
    }

    /// Take over `node` if no other survivor has: its ids.
    async fn take_over(&self, node: &str) -> Result<Option<Vec<(String, String)>>, Unavailable> {
        let mut c = self.writer.conn().await?;
        let reply: Vec<Value> = scripts::TAKEOVER
            .key(format!("{}:claim", self.keys.node(node)))
            .key(self.keys.nodes())
            .key(self.keys.node_ids(node))
            .key(self.keys.policy().nodes)
            .arg(self.writer.deadline_ms())
            .arg(node)
            .arg(&self.node)
            .arg(self.keys.id_prefix())
            .invoke_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        match reply.as_slice() {
            [won, ids, gens] if value::<i64>(won)? == 1 => {
                let (ids, gens): (Vec<String>, Vec<String>) = (value(ids)?, value(gens)?);
                Ok(Some(ids.into_iter().zip(gens).collect()))
            }
            [won] if value::<i64>(won).is_ok_and(|w| w == 0) => Ok(None),
            other => Err(late_or(other, "takeover")),
        }
    }

    /// `id` of dead `node`, its hold over: offline for good, unless a
    /// connection elsewhere has it now. Tried until Redis answers.
    async fn bury(&self, node: &str, id: &str, generation: &str, handing: &Arc<dyn HandOver>) {
        loop {
            match self.try_bury(node, id, generation).await {
                Ok(Some(rooms)) => {
                    tracing::debug!(node, id, rooms = rooms.len(), "a dead node's id let go");
                    handing.departed(id, rooms).await;
                    return;
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(id, error = %e, "a dead node's id not let go yet");
                    tokio::time::sleep(INTERVAL).await;
                }
            }
        }
    }

    async fn try_bury(
        &self,
        node: &str,
        id: &str,
        generation: &str,
    ) -> Result<Option<Vec<String>>, Unavailable> {
        let k = self.keys.id(id);
        let mut c = self.writer.conn().await?;
        let reply: Vec<Value> = scripts::BURY
            .key(&k.owner)
            .key(&k.rooms)
            .key(&k.log)
            .arg(self.writer.deadline_ms())
            .arg(node)
            .arg(GENERATION_TTL.as_millis() as u64)
            .arg(id)
            .arg(self.keys.node(""))
            .arg(self.keys.presence())
            .arg(generation)
            .invoke_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        match reply.as_slice() {
            [done, rooms] if value::<i64>(done)? == 1 => Ok(Some(value(rooms)?)),
            [done] if value::<i64>(done).is_ok_and(|d| d == 0) => Ok(None),
            other => Err(late_or(other, "bury")),
        }
    }
}
