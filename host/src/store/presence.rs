//! Presence, as policies and the chat layer ask for it: who is in a room,
//! who is online. A held (resuming) id counts as online.

use async_trait::async_trait;

/// A room's members: at most the asked-for number of ids, and the exact
/// count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    /// Member ids, at most the cap asked for.
    pub ids: Vec<String>,
    /// How many members the room has.
    pub count: usize,
}

/// Who is where. On one server the registry of connections is the
/// presence (nothing is copied); a cluster answers from a store every
/// server writes to.
///
/// The `_now` reads answer a policy's imports (`registry` in the WIT),
/// which run inside a synchronous sandboxed call and cannot wait; a store
/// kept elsewhere answers them from what it keeps for this server's rooms
/// (its freshness is the store's to say).
#[async_trait]
pub trait Presence: std::fmt::Debug + Send + Sync {
    /// The members of `room`: at most `cap` ids, and the exact count.
    async fn members(&self, room: &str, cap: usize) -> Members;

    /// Which of `ids` are online, in the order given.
    async fn online(&self, ids: &[String]) -> Vec<String>;

    /// [`Presence::members`], answered without waiting.
    fn members_now(&self, room: &str, cap: usize) -> Members;

    /// Whether `id` is online, answered without waiting.
    fn is_online_now(&self, id: &str) -> bool;

    /// Whether `id` is a member of `room`, answered without waiting.
    fn in_room_now(&self, id: &str, room: &str) -> bool;

    /// The rooms `id` is in, answered without waiting.
    fn rooms_of_now(&self, id: &str) -> Vec<String>;

    /// How many ids are online, answered without waiting.
    fn online_count_now(&self) -> usize;

    /// The other nodes of a cluster and how many ids each has (the admin
    /// interface); none on one server.
    fn other_nodes(&self) -> Vec<(String, usize)> {
        Vec::new()
    }

    /// The node `id` is on, when it is another node of a cluster.
    fn node_of(&self, _id: &str) -> Option<String> {
        None
    }
}

/// Nobody anywhere: the presence a policy is checked against before it
/// serves (`switchboard policy check`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOne;

#[async_trait]
impl Presence for NoOne {
    async fn members(&self, _room: &str, _cap: usize) -> Members {
        Members::default()
    }

    async fn online(&self, _ids: &[String]) -> Vec<String> {
        Vec::new()
    }

    fn members_now(&self, _room: &str, _cap: usize) -> Members {
        Members::default()
    }

    fn is_online_now(&self, _id: &str) -> bool {
        false
    }

    fn in_room_now(&self, _id: &str, _room: &str) -> bool {
        false
    }

    fn rooms_of_now(&self, _id: &str) -> Vec<String> {
        Vec::new()
    }

    fn online_count_now(&self) -> usize {
        0
    }
}
