//! The key schema (docs/CLUSTER.md, "Key schema"). Every key starts with
//! the cluster prefix, so deployments sharing one Redis never meet; a
//! room's keys share the hash tag `{room:<name>}`, so Redis Cluster would
//! keep them in one slot and a script may touch them together.

use std::fmt::Write as _;

/// Names keys and channels under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// An id's keys (one hash tag, so a script may touch them together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdKeys {
    /// Hash: `gen` (the newest claim's generation), `node` (the node
    /// whose connection has the id, while one has).
    pub owner: String,
    /// Set: the rooms the id is in.
    pub rooms: String,
    /// List: the notices stored for the id, oldest first.
    pub notices: String,
    /// Hash: how many of them each sender stored (and `:dropped`).
    pub counts: String,
    /// Sorted set: the id's own stored notices not yet handed over, for
    /// every recipient (its sender-wide quota), scored by expiry.
    pub out: String,
    /// Stream: the notices acked to the id and not yet written to its
    /// socket (its notice log, `lua/route.lua`).
    pub log: String,
}

/// The policy's keys (docs/CLUSTER.md, "Swapping the policy").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyKeys {
    /// String: the active component, JSON `{sha256, source}`.
    pub active: String,
    /// String: the one a rollback restores, the same way.
    pub previous: String,
    /// What a component's bytes are kept under, before its SHA-256.
    pub component: String,
    /// What a swap's answers (a list) are kept under, before its id.
    pub swap: String,
    /// Hash: node → what it runs (JSON).
    pub nodes: String,
    /// The channel swaps and rollbacks are announced on.
    pub channel: String,
}

/// A room's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomKeys {
    /// Hash: `epoch`, `top` (the newest offset).
    pub meta: String,
    /// Stream of kept messages, entry id `<offset>-0`.
    pub stream: String,
    /// The channel its frames are published on.
    pub channel: String,
}

impl Keys {
    /// Keys under `prefix` (`--cluster-prefix`).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// A key of the whole deployment (`<prefix>:<name>`).
    pub fn global(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// Node `node`'s heartbeat key.
    pub fn node(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    /// The channel every node hears (broadcasts).
    pub fn all(&self) -> String {
        self.global("all")
    }

    /// The channel every change of presence is published on.
    pub fn presence(&self) -> String {
        self.global("presence")
    }

    /// The ids whose connection is on node `node` (a set).
    pub fn node_ids(&self, node: &str) -> String {
        format!("{}:node:{node}:ids", self.prefix)
    }

    /// Every node, scored by when its heartbeat expires (ms).
    pub fn nodes(&self) -> String {
        self.global("nodes")
    }

    /// Node `node`'s own channel: what is for its connections alone (an
    /// id claimed by another node).
    pub fn inbox(&self, node: &str) -> String {
        format!("{}:inbox:{node}", self.prefix)
    }

    /// The cluster's record of its policy (one hash tag, so a script may
    /// touch them together).
    pub fn policy(&self) -> PolicyKeys {
        let tag = format!("{}:{{policy}}", self.prefix);
        PolicyKeys {
            active: format!("{tag}:active"),
            previous: format!("{tag}:previous"),
            component: format!("{tag}:c:"),
            swap: format!("{tag}:swap:"),
            nodes: format!("{tag}:nodes"),
            channel: self.global("policy"),
        }
    }

    /// `id`'s keys.
    pub fn id(&self, id: &str) -> IdKeys {
        let tag = format!("{}:{{id:{}}}", self.prefix, encode(id));
        IdKeys {
            rooms: format!("{tag}:rooms"),
            notices: format!("{tag}:n"),
            counts: format!("{tag}:nc"),
            out: format!("{tag}:out"),
            log: format!("{tag}:f"),
            owner: tag,
        }
    }

    /// What every id's key starts with (`<prefix>:{id:`), for scripts
    /// that name another id's keys.
    pub fn id_prefix(&self) -> String {
        format!("{}:{{id:", self.prefix)
    }

    /// `room`'s keys.
    pub fn room(&self, room: &str) -> RoomKeys {
        let tag = format!("{}:{{room:{}}}", self.prefix, encode(room));
        RoomKeys {
            meta: format!("{tag}:m"),
            stream: format!("{tag}:s"),
            channel: tag,
        }
    }
}

/// A room name or an id as it goes into a key: `%`, `{` and `}` percent-encoded,
/// so the hash tag stays intact and no two rooms share a key.
fn encode(room: &str) -> String {
    let mut out = String::with_capacity(room.len());
    for c in room.chars() {
        match c {
            '%' | '{' | '}' => {
                let _ = write!(out, "%{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_keys_share_one_tag_and_names_cannot_break_it() {
        let k = Keys::new("sb");
        let r = k.room("lobby");
        assert_eq!(r.meta, "sb:{room:lobby}:m");
        assert_eq!(r.stream, "sb:{room:lobby}:s");
        assert_eq!(r.channel, "sb:{room:lobby}");
        assert_eq!(k.room("a}b{%").meta, "sb:{room:a%7Db%7B%25}:m");
        assert_ne!(k.room("%7D").meta, k.room("}").meta);
        let i = k.id("a{b}");
        assert_eq!(i.owner, "sb:{id:a%7Bb%7D}");
        assert_eq!(i.rooms, "sb:{id:a%7Bb%7D}:rooms");
    }
}
