//! The node's heartbeat: every second the node sets its key with a short
//! expiry and scores itself in the nodes set, so the other nodes can tell
//! it is alive (and, once it stops, that it died: `deaths`,
//! docs/CLUSTER.md "Failures"). Each beat is also
//! a call on the write connection: `/healthz` knows within a second that
//! Redis stopped answering, and that it answers again, even when no client
//! asks anything.

use std::sync::Arc;
use std::time::Duration;

use super::conn::{Timed, Writer};

/// How often the node beats.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// How long a beat lasts: three missed beats and the node is dead.
pub const TTL: Duration = Duration::from_secs(3);

/// This node's clock, ms since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// When a beat made now expires, in this node's clock (its score in the
/// nodes set).
pub fn expiry_ms() -> u64 {
    now_ms() + TTL.as_millis() as u64
}

/// Beat until the runtime stops. Each beat also reads whether another
/// node took this one over (it was cut off from Redis for longer than a
/// beat's life): then `subscriber` closes its connections.
pub async fn beat(
    writer: Arc<Writer>,
    keys: super::keys::Keys,
    node: String,
    subscriber: Arc<super::subscriber::Subscriber>,
) {
    let key = keys.node(&node);
    let claim = format!("{key}:claim");
    let mut every = tokio::time::interval(INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        // Degraded time, for `/metrics`: a beat's resolution is enough for
        // an alert that fires after minutes.
        writer
            .figures
            .sample(!writer.is_up() || !subscriber.is_connected());
        let mut c = match writer.conn().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "heartbeat: no connection to Redis");
                continue;
            }
        };
        // In the nodes set, scored by the beat's expiry in this node's
        // clock (the other nodes read it with a margin: docs/CLUSTER.md).
        let until = expiry_ms();
        let set: Result<((), i64, Option<String>), _> = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("PX")
            .arg(TTL.as_millis() as u64)
            .cmd("ZADD")
            .arg(keys.nodes())
            .arg(until)
            .arg(&node)
            .cmd("GET")
            .arg(&claim)
            .query_async(&mut c)
            .timed(&writer)
            .await;
        match set {
            Ok((_, _, taken)) => {
                writer.answered();
                if taken.is_some_and(|by| by != node) {
                    subscriber.recheck_claims();
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "heartbeat not written");
            }
        }
    }
}
