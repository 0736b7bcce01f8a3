//! The default rules compiled into the host (feature `native-rules`, for
//! benchmarks only): the same guest-logic functions the default policy
//! component runs, called directly, so a benchmark can show what the
//! sandbox costs. No limits, no hot swap: never for production.

use crate::chat::registry::Registry;
use crate::policy::{Action, Frame};

/// The default rules, answering from the host's registry.
#[derive(Debug, Clone)]
pub struct NativeRules {
    registry: Registry,
}

impl NativeRules {
    /// Rules reading `registry`.
    pub fn new(registry: Registry) -> NativeRules {
        NativeRules { registry }
    }

    /// `on-connect`.
    pub fn on_connect(&self, id: &str) -> Vec<Action> {
        lower(guest_logic::on_connect(id))
    }

    /// `on-message`.
    pub fn on_message(&self, sender: &str, frame: &Frame) -> Vec<Action> {
        let incoming = match frame {
            Frame::Text(t) => guest_logic::Incoming::Text(t),
            Frame::Binary(b) => guest_logic::Incoming::Binary(b),
        };
        lower(guest_logic::on_message(
            &Adapter(&self.registry),
            sender,
            incoming,
        ))
    }

    /// `on-disconnect`.
    pub fn on_disconnect(&self, id: &str) -> Vec<Action> {
        lower(guest_logic::on_disconnect(id))
    }
}

struct Adapter<'a>(&'a Registry);

impl guest_logic::Registry for Adapter<'_> {
    fn in_room(&self, id: &str, room: &str) -> bool {
        self.0.in_room(id, room)
    }

    fn room_members(&self, room: &str) -> Vec<String> {
        self.0.room_members(room)
    }

    fn is_online(&self, id: &str) -> bool {
        self.0.is_online(id)
    }
}

fn lower(actions: Vec<guest_logic::Action>) -> Vec<Action> {
    use guest_logic::Action as G;
    actions
        .into_iter()
        .map(|a| match a {
            G::Reply(f) => Action::Reply(frame(f)),
            G::Send {
                to,
                frame: f,
                on_sent,
                on_closed,
            } => Action::Send {
                to,
                frame: frame(f),
                on_sent: on_sent.map(frame),
                on_closed: on_closed.map(frame),
            },
            G::SendRoom {
                room,
                frame: f,
                except,
            } => Action::SendRoom {
                room,
                frame: frame(f),
                except,
            },
            G::Broadcast { frame: f, except } => Action::Broadcast {
                frame: frame(f),
                except,
            },
            G::Join { id, room } => Action::Join { id, room },
            G::Leave { id, room } => Action::Leave { id, room },
            G::Close { id, code, reason } => Action::Close { id, code, reason },
        })
        .collect()
}

fn frame(f: guest_logic::Frame) -> Frame {
    match f {
        guest_logic::Frame::Text(t) => Frame::Text(t),
        guest_logic::Frame::Binary(b) => Frame::Binary(b),
    }
}
