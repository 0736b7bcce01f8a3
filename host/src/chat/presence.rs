//! The registry is the in-memory presence: on one server, who is online
//! and who is in which room is exactly what the registry of connections
//! holds (a held id stays registered, so it counts as online).

use async_trait::async_trait;

use crate::chat::registry::Registry;
use crate::store::presence::{Members, Presence};

#[async_trait]
impl Presence for Registry {
    async fn members(&self, room: &str, cap: usize) -> Members {
        self.members_now(room, cap)
    }

    async fn online(&self, ids: &[String]) -> Vec<String> {
        ids.iter()
            .filter(|id| self.is_online(id))
            .cloned()
            .collect()
    }

    fn members_now(&self, room: &str, cap: usize) -> Members {
        Members {
            ids: self.room_members_up_to(room, cap),
            count: self.room_size(room),
        }
    }

    fn is_online_now(&self, id: &str) -> bool {
        self.is_online(id)
    }

    fn in_room_now(&self, id: &str, room: &str) -> bool {
        self.in_room(id, room)
    }

    fn rooms_of_now(&self, id: &str) -> Vec<String> {
        self.rooms_of(id)
    }

    fn online_count_now(&self) -> usize {
        self.online_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::outbound;

    #[tokio::test]
    async fn members_are_capped_and_counted() {
        let registry = Registry::new();
        let mut inboxes = Vec::new();
        for id in ["a", "b", "c"] {
            let (outbox, inbox) = outbound::channel(registry.next_serial(), 8, 1 << 16);
            registry.register(id, outbox);
            registry.join(id, "lobby");
            inboxes.push(inbox);
        }
        let members = Presence::members(&registry, "lobby", 2).await;
        assert_eq!((members.ids.len(), members.count), (2, 3));
        let online = Presence::online(&registry, &["c".into(), "x".into(), "a".into()]).await;
        assert_eq!(online, ["c", "a"]);
        assert_eq!(
            Presence::members(&registry, "empty", 5).await,
            Members::default()
        );
    }
}
