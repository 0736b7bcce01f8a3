//! The bus of a server on its own: every connection is local, so what
//! crosses connections goes straight to [`Local`] (the dispatcher over the
//! registry), after the history has numbered it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio_tungstenite::tungstenite::Message;

use crate::store::bus::{Bus, Claim, HandOver, Local, SendError, Sent};
use crate::store::history::History;
use crate::store::notices::{Notices, StoreError};
use crate::store::state::{StateLimits, StateStore};
use crate::store::{Linked, Linker, Unavailable};

/// Links a server on its own: its registry is the whole presence, the
/// bus is [`MemoryBus`], the state a [`StateStore`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryLinker;

impl Linker for MemoryLinker {
    fn link(
        &self,
        local: Arc<dyn Local>,
        _handing: Arc<dyn HandOver>,
        history: Arc<dyn History>,
        notices: Arc<dyn Notices>,
        state: StateLimits,
    ) -> Linked {
        Linked {
            presence: local.clone(),
            bus: Arc::new(MemoryBus::new(local, history, notices)),
            state: Arc::new(StateStore::new(state)),
            versions: None,
        }
    }
}

/// The one-server bus.
#[derive(Debug)]
pub struct MemoryBus {
    /// This server's connections (all of them).
    local: Arc<dyn Local>,
    /// Numbers and keeps room messages.
    history: Arc<dyn History>,
    /// Keeps notices for offline ids.
    notices: Arc<dyn Notices>,
    /// The last generation given to a claim (one counter for every id:
    /// greater is all a generation has to be).
    generation: AtomicU64,
}

impl MemoryBus {
    /// A bus delivering to `local`, keeping room messages in `history` and
    /// notices for offline ids in `notices`.
    pub fn new(
        local: Arc<dyn Local>,
        history: Arc<dyn History>,
        notices: Arc<dyn Notices>,
    ) -> MemoryBus {
        MemoryBus {
            local,
            history,
            notices,
            generation: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(
        &self,
        room: &str,
        frame: String,
        except: Option<&str>,
    ) -> Result<Option<u64>, Unavailable> {
        let p = self.history.publish(room, frame).await;
        let kept = p.offset.map(|o| (&*p.epoch, o));
        // On one server every kept message is handed here: a gap is one
        // still on its way (another task between numbering and handing).
        let _ = self.local.room(room, kept, Message::Text(p.text), except);
        Ok(p.offset)
    }

    fn transient(&self, room: &str, msg: Message, except: Option<&str>) {
        let _ = self.local.room(room, None, msg, except);
    }

    fn broadcast(&self, msg: Message, except: Option<&str>) {
        self.local.broadcast(&msg, except);
    }

    /// With `store`, the store shares no lock with the registry: should
    /// `to` have come online while the notice was being stored, what is
    /// stored for it is handed over now (its connection took what was
    /// there before it registered).
    async fn send(
        &self,
        from: &str,
        to: &str,
        msg: Message,
        store: bool,
    ) -> Result<Sent, SendError> {
        if !store || self.local.is_online_now(to) {
            return Ok(self.local.deliver(to, msg));
        }
        let Message::Text(text) = msg else {
            return Ok(Sent::Refused);
        };
        let stored = self
            .notices
            .store(from, to, text.as_str().into(), SystemTime::now())
            .await;
        match stored {
            Err(e) if e.is_quota() => return Err(SendError::Quota(e)),
            Err(e @ StoreError::Unavailable) => {
                return Err(SendError::Unavailable(Unavailable(e.to_string())));
            }
            Err(e) => {
                tracing::debug!(to, error = %e, "notice not stored");
                return Ok(Sent::Refused);
            }
            Ok(()) => {}
        }
        if self.local.is_online_now(to) {
            let mail = self.notices.take(to, SystemTime::now()).await;
            self.local.mail(to, mail);
        }
        Ok(Sent::Stored)
    }

    fn close(&self, id: &str, code: u16, reason: &str) -> bool {
        self.local.close(id, code, reason)
    }

    async fn claim(&self, _id: &str, _session: Option<&str>) -> Result<Claim, Unavailable> {
        Ok(Claim {
            generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
            ..Claim::default()
        })
    }
}
