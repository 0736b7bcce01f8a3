//! Giving up a held id to another server that resumes it (cluster mode):
//! the hold is taken here first, so its window ending cannot race it;
//! then the id leaves its rooms here without a word, and what it missed
//! goes to the resuming server with where each room stood.

use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;

use crate::chat::registry::Registry;
use crate::net::session::{self, Kept};
use crate::net::shared::Shared;
use crate::store::bus::{HandOver, Handover};
use crate::store::sessions::Sessions;

/// This server's holds, as the bus asks for them.
#[derive(Debug)]
pub struct Handing {
    registry: Registry,
    sessions: Arc<dyn Sessions<Kept>>,
    /// The server, once it exists (the bus is made before it).
    shared: OnceLock<Weak<Shared>>,
}

impl Handing {
    /// Over `registry`'s connections and `sessions`' holds.
    pub fn new(registry: Registry, sessions: Arc<dyn Sessions<Kept>>) -> Handing {
        Handing {
            registry,
            sessions,
            shared: OnceLock::new(),
        }
    }

    /// The server is made: ids of dead servers can be let go here.
    pub fn serve(&self, shared: &Arc<Shared>) {
        let _ = self.shared.set(Arc::downgrade(shared));
    }
}

#[async_trait]
impl HandOver for Handing {
    async fn hand_over(&self, id: &str, generation: u64) -> Option<Handover> {
        let serial = self.registry.serial_of(id)?;
        let held = self.sessions.release(id, serial).await?;
        // Out of its rooms first: from then on nothing more is queued to
        // it, so its queue holds every kept message up to each room's
        // position.
        let rooms = self
            .registry
            .claimed_elsewhere(id, generation)
            .unwrap_or_default();
        let Kept { mut missed, ticket } = held.kept;
        // Its place in the admission counts goes with the hold.
        drop(ticket);
        let frames = missed.unhold().into_iter().collect();
        tracing::debug!(id, generation, "handed over to the server resuming it");
        Some(Handover {
            frames,
            rooms,
            logged: Vec::new(),
        })
    }

    async fn end(&self, id: &str, generation: u64) -> bool {
        let Some(shared) = self.shared.get().and_then(Weak::upgrade) else {
            return false;
        };
        let Some(serial) = self.registry.serial_of(id) else {
            return false;
        };
        let Some(held) = self.sessions.release(id, serial).await else {
            return false;
        };
        tracing::debug!(
            id,
            generation,
            "hold ended: claimed elsewhere without a resume"
        );
        session::end_hold(&shared, id, held).await;
        let bus = &shared.chat().bus;
        bus.settle(bus.handed()).await;
        true
    }

    async fn departed(&self, id: &str, rooms: Vec<String>) {
        let Some(shared) = self.shared.get().and_then(Weak::upgrade) else {
            return;
        };
        session::let_go_moved(&shared, id, &rooms).await;
    }
}
