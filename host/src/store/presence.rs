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
/// The `_now` reads answer a policy's imports, which run inside a
/// synchronous sandboxed call and cannot wait; a store kept elsewhere
/// answers them from what it keeps for this server's rooms.
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
}
