//! Who has an id across the cluster: its generation, the node whose
//! connection has it, and the rooms it is in (docs/CLUSTER.md, "One
//! connection per id"). A claim moves the id to this node in one script,
//! which also tells the node that had it; joins and leaves keep its rooms
//! set, fenced by the generation so a connection that was replaced
//! writes nothing.

use super::conn::Timed;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use super::Unavailable;
use super::conn::Writer;
use super::keys::Keys;
use super::scripts::{self, late_or, value};
use crate::store::bus::Claim;

/// How long an id's generation is kept once no node has it: a claim
/// within it still gets a greater one.
pub(super) const GENERATION_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long after a node finds Redis lost its data an id no node has is
/// not taken to be offline: room for every node's subscriber to reconnect
/// (at most 5 s apart) and write again who it has.
pub const RESTORING: Duration = Duration::from_secs(10);

/// Every id's owner and rooms, in Redis.
#[derive(Debug, Clone)]
pub struct Ids {
    writer: Arc<Writer>,
    keys: Keys,
    /// This node's id.
    node: String,
    /// How long an id's notice log lasts after its newest entry: the
    /// resume window and a minute (a dead node's ids are held for the
    /// window, counted from its last beat).
    log_ttl: Duration,
}

impl Ids {
    /// Ids kept through `writer`, under `keys`, claimed as node `node`.
    pub fn new(writer: Arc<Writer>, keys: Keys, node: &str, window: Duration) -> Ids {
        Ids {
            writer,
            keys,
            node: node.to_owned(),
            log_ttl: window + Duration::from_secs(60),
        }
    }

    /// The write connection.
    pub fn writer(&self) -> Arc<Writer> {
        self.writer.clone()
    }

    /// The node's Redis figures (`/metrics`).
    pub fn figures(&self) -> &super::conn::Figures {
        &self.writer.figures
    }

    /// Claim `id` for a connection here: its generation, and the rooms
    /// it is in. The node that had it hears of it on its channel.
    /// With `presented`, it resumes `id` if the id is held on another
    /// node with that session: whether it did (that node is asked for the
    /// handover). `own` is the new connection's session, kept as a hash
    /// (should this node die, a connection elsewhere resumes with it).
    pub async fn claim(
        &self,
        id: &str,
        presented: Option<&str>,
        own: Option<&str>,
    ) -> Result<Claimed, Unavailable> {
        let k = self.keys.id(id);
        let mut c = self.writer.conn().await?;
        let reply: Vec<Value> = scripts::CLAIM
            .key(&k.owner)
            .key(&k.rooms)
            .key(&k.log)
            .arg(self.writer.deadline_ms())
            .arg(&self.node)
            .arg(id)
            .arg(self.keys.inbox(""))
            .arg(presented.map(session_hash).unwrap_or_default())
            .arg(self.keys.node(""))
            .arg(self.keys.presence())
            .arg(own.map(session_hash).unwrap_or_default())
            .invoke_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        match reply.as_slice() {
            [generation, rooms, resumed, dead, logged, ending] => {
                let logged: Vec<Vec<u8>> = value(logged)?;
                let (mut entries, mut unsent) = (Vec::new(), Vec::new());
                for pair in logged.chunks_exact(2) {
                    if let (Ok(entry), Some(frame)) =
                        (String::from_utf8(pair[0].clone()), logged_frame(&pair[1]))
                    {
                        entries.push(entry);
                        unsent.push(frame);
                    }
                }
                Ok(Claimed {
                    claim: Claim {
                        generation: value(generation)?,
                        rooms: value(rooms)?,
                        unsent,
                    },
                    resumed: value::<i64>(resumed)? == 1,
                    dead: value::<i64>(dead)? == 1,
                    ending: value::<i64>(ending)? == 1,
                    entries,
                })
            }
            other => Err(late_or(other, "claim")),
        }
    }

    /// Whether `id` is held on another node for a resume with `session`
    /// (a read: nothing claimed).
    pub async fn held_elsewhere(&self, id: &str, session: &str) -> Result<bool, Unavailable> {
        let k = self.keys.id(id);
        let mut c = self.writer.conn().await?;
        let (node, held, hash): (Option<String>, Option<String>, Option<String>) =
            redis::cmd("HMGET")
                .arg(&k.owner)
                .arg("node")
                .arg("held")
                .arg("session")
                .query_async(&mut c)
                .timed(&self.writer)
                .await?;
        self.writer.answered();
        Ok(held.is_some()
            && node.is_some_and(|n| n != self.node)
            && hash.is_some_and(|h| h == session_hash(session)))
    }

    /// Say again that `id` is here with `generation`, in `rooms` (Redis
    /// lost its data). Whether it did (false: claimed elsewhere since).
    pub async fn restore(
        &self,
        id: &str,
        generation: u64,
        rooms: &[String],
    ) -> Result<bool, Unavailable> {
        let k = self.keys.id(id);
        let mut c = self.writer.conn().await?;
        let mut invocation = scripts::RESTORE.key(&k.owner);
        invocation
            .key(&k.rooms)
            .arg(&self.node)
            .arg(generation)
            .arg(id)
            .arg(self.keys.node(""))
            .arg(self.keys.presence());
        for room in rooms {
            invocation.arg(room);
        }
        let reply: i64 = invocation.invoke_async(&mut c).timed(&self.writer).await?;
        self.writer.answered();
        Ok(reply == 1)
    }

    /// List this node in the nodes set now (as its heartbeat does), so a
    /// node reading the others' presence finds it.
    pub async fn list_node(&self) -> Result<(), Unavailable> {
        let until = super::heartbeat::expiry_ms();
        let _: i64 = self
            .writer
            .query(
                redis::cmd("ZADD")
                    .arg(self.keys.nodes())
                    .arg(until)
                    .arg(&self.node),
            )
            .await?;
        Ok(())
    }

    /// The boot key's value (set now, by this node, if missing): a value
    /// other than the one a node saw before means Redis lost its data.
    pub async fn boot(&self) -> Result<String, Unavailable> {
        let key = self.keys.global("boot");
        let fresh = crate::store::token::new_epoch().to_string();
        let (_, now): (Option<String>, String) = self
            .writer
            .query_pipe(
                redis::pipe()
                    .cmd("SET")
                    .arg(&key)
                    .arg(&fresh)
                    .arg("NX")
                    .cmd("GET")
                    .arg(&key),
            )
            .await?;
        Ok(now)
    }

    /// Redis lost its data: for [`RESTORING`], an id no node has is not
    /// taken to be offline (the nodes are writing again who they have).
    pub async fn restoring(&self) -> Result<(), Unavailable> {
        self.writer
            .query(
                redis::cmd("SET")
                    .arg(self.keys.global("restoring"))
                    .arg(&self.node)
                    .arg("PX")
                    .arg(RESTORING.as_millis() as u64),
            )
            .await
    }

    /// The node that took this one over (`takeover.lua`), if one did and
    /// this node has not cleared it since.
    pub async fn taken_over(&self) -> Result<Option<String>, Unavailable> {
        let by: Option<String> = self
            .writer
            .query(redis::cmd("GET").arg(self.keys.node(&format!("{}:claim", self.node))))
            .await?;
        Ok(by.filter(|by| *by != self.node))
    }

    /// This node is back: a survivor may take it over again should it die.
    pub async fn forget_takeover(&self) -> Result<(), Unavailable> {
        let _: i64 = self
            .writer
            .query(redis::cmd("DEL").arg(self.keys.node(&format!("{}:claim", self.node))))
            .await?;
        Ok(())
    }

    /// Publish `payload` on node `node`'s channel.
    pub async fn tell(&self, node: &str, payload: &[u8]) -> Result<(), Unavailable> {
        let _: i64 = self
            .writer
            .query(
                redis::cmd("PUBLISH")
                    .arg(self.keys.inbox(node))
                    .arg(payload),
            )
            .await?;
        Ok(())
    }

    /// The newest generation of each of `ids` (0: never claimed, or long
    /// gone), in one round trip.
    pub async fn generations(&self, ids: &[std::sync::Arc<str>]) -> Result<Vec<u64>, Unavailable> {
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGET").arg(self.keys.id(id).owner).arg("gen");
        }
        let gens: Vec<Option<u64>> = self.writer.query_pipe(&pipe).await?;
        Ok(gens.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Connection `generation` of `id` joined (`true`) or left `room`.
    /// Whether it still had the id (false: a newer connection has it).
    pub async fn member(
        &self,
        id: &str,
        generation: u64,
        joined: bool,
        room: &str,
    ) -> Result<bool, Unavailable> {
        let k = self.keys.id(id);
        let mut c = self.writer.conn().await?;
        let reply: Value = scripts::MEMBER
            .key(&k.owner)
            .key(&k.rooms)
            .arg(self.writer.deadline_ms())
            .arg(generation)
            .arg(if joined { "+" } else { "-" })
            .arg(room)
            .arg(&self.node)
            .arg(id)
            .arg(self.keys.presence())
            .invoke_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        written(reply, "member")
    }

    /// Hand `payload` to the node that has `id`, if another node has it
    /// and hears. A `notice` is also kept in the id's notice log when it
    /// is acked (the entry comes back with the route): until the node
    /// that has the id wrote it to the socket.
    pub async fn route(
        &self,
        id: &str,
        payload: &[u8],
        notice: bool,
    ) -> Result<Routed, Unavailable> {
        let k = self.keys.id(id);
        let mut c = self.writer.conn().await?;
        let reply: Vec<Value> = scripts::ROUTE
            .key(&k.owner)
            .key(self.keys.global("boot"))
            .key(self.keys.global("restoring"))
            .key(&k.log)
            .arg(self.writer.deadline_ms())
            .arg(&self.node)
            .arg(self.keys.inbox(""))
            .arg(payload)
            .arg(self.keys.node(""))
            .arg(if notice {
                LOG_CAP.to_string()
            } else {
                String::new()
            })
            .arg(self.log_ttl.as_millis() as u64)
            .invoke_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        let [what, entry] = reply.as_slice() else {
            return Err(late_or(&reply, "route"));
        };
        let entry: String = value(entry)?;
        let entry = (!entry.is_empty()).then_some(entry);
        let route = match value::<String>(what)?.as_str() {
            "here" => Route::Here,
            "sent" => {
                self.writer.figures.sent();
                Route::Sent
            }
            "held" => Route::Held,
            "off" => Route::Off,
            "away" => {
                return Err(Unavailable::Connection(
                    "the server that has the id is reconnecting to Redis".into(),
                ));
            }
            "unknown" => {
                return Err(Unavailable::Connection(
                    "Redis lost its data and the servers are saying again who they have".into(),
                ));
            }
            what => return Err(Unavailable::Reply(format!("route answered {what:?}"))),
        };
        Ok(Routed { route, entry })
    }

    /// Delete `entries` of `id`'s notice log (written, or never to be).
    pub async fn unlog(&self, batch: &[(String, Vec<String>)]) -> Result<(), Unavailable> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (id, entries) in batch {
            pipe.cmd("XDEL")
                .arg(self.keys.id(id).log)
                .arg(entries)
                .ignore();
        }
        self.writer.query_pipe::<()>(&pipe).await
    }

    /// Connection `generation` of `id` is held for a resume with
    /// `session`.
    pub async fn hold(
        &self,
        id: &str,
        generation: u64,
        session: &str,
    ) -> Result<bool, Unavailable> {
        let k = self.keys.id(id);
        let mut c = self.writer.conn().await?;
        let reply: Value = scripts::HOLD
            .key(&k.owner)
            .arg(self.writer.deadline_ms())
            .arg(generation)
            .arg(session_hash(session))
            .invoke_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        written(reply, "hold")
    }

    /// `id` (its connection of claim `generation`; `u64::MAX`: whichever
    /// connection here) went offline here for good: no node has it, it is
    /// in no room. Whether this node still had it (false: a newer
    /// connection claimed it meanwhile, here or elsewhere).
    pub async fn release(&self, id: &str, generation: u64) -> Result<bool, Unavailable> {
        let k = self.keys.id(id);
        let mut c = self.writer.conn().await?;
        let reply: Value = scripts::RELEASE
            .key(&k.owner)
            .key(&k.rooms)
            .key(&k.log)
            .arg(self.writer.deadline_ms())
            .arg(&self.node)
            .arg(GENERATION_TTL.as_millis() as u64)
            .arg(id)
            .arg(self.keys.node(""))
            .arg(self.keys.presence())
            .arg(generation)
            .invoke_async(&mut c)
            .timed(&self.writer)
            .await?;
        self.writer.answered();
        written(reply, "release")
    }
}

/// What Redis keeps of a session: its SHA-256, in hex (a read of Redis
/// must not be enough to resume anyone).
fn session_hash(session: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(session.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The most entries an id's notice log keeps (about: Redis trims whole
/// blocks). More than a connection's queue takes by default (1,024
/// frames, `--outbound-queue-frames`), so a log that is full belongs to
/// a connection that was closed with 4008.
pub const LOG_CAP: usize = 4096;

/// What [`Ids::claim`] made.
#[derive(Debug)]
pub struct Claimed {
    /// The claim, with what the id's notice log kept when the node that
    /// had the id is dead or hands it over.
    pub claim: Claim,
    /// The id was held on another node for a resume with the presented
    /// session: that node is asked to hand it over.
    pub resumed: bool,
    /// The node that had the id is dead (no handover will come).
    pub dead: bool,
    /// The id was held on another live node and not resumed: that node
    /// ends the hold (its rooms hear `left`), then sends an empty
    /// handover.
    pub ending: bool,
    /// The log's entries of `claim.unsent`, in order.
    pub entries: Vec<String>,
}

/// Where [`Ids::route`] sent a payload, and the notice log's entry of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub route: Route,
    pub entry: Option<String>,
}

/// A notice log's payload (`frame\n<id>\n<kind>\n<body>`) as the frame.
fn logged_frame(payload: &[u8]) -> Option<tokio_tungstenite::tungstenite::Message> {
    use super::payload::{Frame, ToNode};
    use tokio_tungstenite::tungstenite::Message;
    match super::payload::to_node(payload)? {
        ToNode::Frame { frame, .. } => Some(match frame {
            Frame::Text(t) => Message::text(t),
            Frame::Binary(b) => Message::binary(b.to_vec()),
        }),
        _ => None,
    }
}

/// Where [`Ids::route`] sent a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Nowhere: this node has the id (a notice was logged for it).
    Here,
    /// To the node that has the id, which hears it.
    Sent,
    /// The same; the id's connection there is held for a resume.
    Held,
    /// Nowhere: no other node has the id (or its node does not hear).
    Off,
}

/// A script's `1` / `0` answer.
fn written(reply: Value, what: &str) -> Result<bool, Unavailable> {
    match reply {
        Value::Int(n) => Ok(n == 1),
        Value::Array(a) => Err(late_or(&a, what)),
        other => Err(Unavailable::Reply(format!("{what} answered {other:?}"))),
    }
}
