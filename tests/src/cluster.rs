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

/// A node as its own process (`target/debug/switchboard`), so a test can
/// kill it with SIGKILL mid-conversation.
pub struct NodeProcess {
    child: Option<std::process::Child>,
    /// Where clients connect.
    pub addr: std::net::SocketAddr,
    dir: std::path::PathBuf,
}

impl NodeProcess {
    /// Start node `id` of the cluster on `redis` with `args` besides, and
    /// wait until it listens.
    pub async fn start(redis: &RedisServer, id: &str, args: &[&str]) -> Result<NodeProcess> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let dir = std::env::temp_dir().join(format!(
            "sb-node-{id}-{}-{}",
            std::process::id(),
            redis.port()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut cmd = Command::new(crate::switchboard_bin()?);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SWITCHBOARD_") {
                cmd.env_remove(&name);
            }
        }
        let mut child = cmd
            .args([
                "--listen",
                "127.0.0.1:0",
                "--cluster",
                &redis.url(),
                "--node-id",
                id,
            ])
            .args([
                "--log",
                "warn,switchboard::net::server=info",
                "--admin-listen",
                "off",
            ])
            .args(args)
            .env("NO_COLOR", "1")
            .env("XDG_RUNTIME_DIR", &dir)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the binary")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Nobody reads any more: drain so the node never blocks.
                    continue;
                }
            }
        });
        let mut node = NodeProcess {
            child: Some(child),
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        let mut log = Vec::new();
        let found = tokio::time::timeout(crate::WAIT * 4, async {
            while let Some(line) = lines.recv().await {
                let addr = line
                    .split("listening on ws://")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|a| a.parse().ok());
                log.push(line);
                if addr.is_some() {
                    return addr;
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(addr)) => node.addr = addr,
            _ => anyhow::bail!("node {id} did not start: {log:#?}"),
        }
        Ok(node)
    }

    /// Connect to `path` (a WebSocket handshake).
    pub async fn connect_path(&self, path: &str) -> Result<Client> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let io: Box<dyn crate::Io> = Box::new(tcp);
        let url = format!("ws://{}{path}", self.addr);
        let (ws, _) = tokio::time::timeout(crate::WAIT, tokio_tungstenite::client_async(url, io))
            .await
            .map_err(|_| anyhow::anyhow!("handshake timed out"))??;
        Ok(Client { ws })
    }

    /// Connect as `id` and read the welcome.
    pub async fn connect(&self, id: &str) -> Result<(Client, Value)> {
        let mut c = self.connect_path(&format!("/ws/{id}")).await?;
        let welcome = c.recv_v2().await?;
        ensure!(welcome["type"] == "welcome", "{welcome}");
        Ok((c, welcome))
    }

    /// SIGKILL, as a crash, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
