//! What the cluster tests share: a node's config on a test Redis, and a
//! protocol v2 client's connect, request and room reads.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard::config::cluster::{ClusterConfig, RedisUrl};
use switchboard::config::node::NodeId;

use crate::redis::RedisServer;
use crate::{Client, TestServer, tolerant_config, without_rate_limits};

/// A node `id` of the cluster on `redis` (rate limits off).
pub fn node(redis: &RedisServer, id: &str) -> Result<Config> {
    let mut c = without_rate_limits(tolerant_config());
    let url = RedisUrl::parse(&redis.url()).map_err(anyhow::Error::msg)?;
    c.cluster = Some(ClusterConfig::new(url));
    c.node_id = NodeId::parse(id).map_err(anyhow::Error::msg)?;
    Ok(c)
}

/// Connect as `id` and read the welcome.
pub async fn connect(server: &TestServer, id: &str) -> Result<Client> {
    let mut c = server.connect_path(&format!("/ws/{id}")).await?;
    let welcome = c.recv_v2().await?;
    ensure!(welcome["type"] == "welcome", "{welcome}");
    Ok(c)
}

/// Send `request` with `ref` and read until its answer; returns what came
/// before it and the answer.
pub async fn ask(c: &mut Client, mut request: Value, r: &str) -> Result<(Vec<Value>, Value)> {
    request["ref"] = json!(r);
    c.send_json(request).await?;
    let mut before = Vec::new();
    loop {
        let v = c.recv_v2().await?;
        if v["ref"] == r {
            return Ok((before, v));
        }
        before.push(v);
    }
}

/// Join `room` (fails unless acked).
pub async fn join(c: &mut Client, room: &str) -> Result<Value> {
    let (_, ack) = ask(c, json!({"type": "join", "room": room}), "join").await?;
    ensure!(ack["type"] == "ack", "join {room}: {ack}");
    Ok(ack)
}

/// The next room frame.
pub async fn next_room(c: &mut Client) -> Result<Value> {
    loop {
        let v = c.recv_v2().await?;
        if v["type"] == "room" {
            return Ok(v);
        }
    }
}

/// The next room frame, with what came before it.
pub async fn until_room(c: &mut Client) -> Result<(Vec<Value>, Value)> {
    let mut before = Vec::new();
    loop {
        let v = c.recv_v2().await?;
        if v["type"] == "room" {
            return Ok((before, v));
        }
        before.push(v);
    }
}

/// `v`'s `offset`, as a number.
pub fn offset(v: &Value) -> Result<u64> {
    v["offset"]
        .as_u64()
        .with_context(|| format!("no offset: {v}"))
}
