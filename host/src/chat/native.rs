//! The default rules compiled into the host (feature `native-rules`, for
//! benchmarks only): the same guest-logic functions the default policy
//! component runs, called directly, so a benchmark can show what the
//! sandbox costs. No limits, no hot swap: never for production.

use crate::policy::{Action, ConnectInfo, Frame, Position};
use std::sync::Arc;

use crate::store::history::History;
use crate::store::presence::Presence;

/// The default rules, answering from the presence the policy is given
/// (the registry; in a cluster, every node's).
#[derive(Debug, Clone)]
pub struct NativeRules {
    presence: Arc<dyn Presence>,
    history: Arc<dyn History>,
}

impl NativeRules {
    /// Rules reading `presence` and `history`.
    pub fn new(presence: Arc<dyn Presence>, history: Arc<dyn History>) -> NativeRules {
        NativeRules { presence, history }
    }

    /// `on-connect`.
    pub fn on_connect(&self, info: &ConnectInfo) -> Vec<Action> {
        lower(guest_logic::on_connect(&info.id, info.resumed))
    }

    /// `on-message`.
    pub fn on_message(&self, sender: &str, frame: &Frame) -> Vec<Action> {
        let incoming = match frame {
            Frame::Text(t) => guest_logic::Incoming::Text(t),
            Frame::Binary(b) => guest_logic::Incoming::Binary(b),
        };
        lower(guest_logic::on_message(
            &Adapter(&*self.presence, &*self.history),
            sender,
            incoming,
        ))
    }

    /// `on-disconnect`.
    pub fn on_disconnect(&self, id: &str) -> Vec<Action> {
        lower(guest_logic::on_disconnect(id))
    }
}

struct Adapter<'a>(&'a dyn Presence, &'a dyn History);

impl guest_logic::Registry for Adapter<'_> {
    fn in_room(&self, id: &str, room: &str) -> bool {
        self.0.in_room_now(id, room)
    }

    fn members(&self, room: &str, cap: usize) -> (Vec<String>, usize) {
        if !crate::policy::queries::ask() {
            return (Vec::new(), 0);
        }
        let members = self.0.members_now(room, cap);
        (members.ids, members.count)
    }

    fn is_online(&self, id: &str) -> bool {
        crate::policy::queries::ask() && self.0.is_online_now(id)
    }

    fn history(&self, room: &str, before: Option<u64>, limit: u32) -> guest_logic::HistoryPage {
        if !crate::policy::queries::ask() {
            return guest_logic::HistoryPage::default();
        }
        let page = self.1.read(room, before, limit as usize);
        guest_logic::HistoryPage {
            epoch: page.epoch,
            messages: page.messages,
        }
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
                on_held,
                store,
                on_stored,
            } => Action::Send {
                to,
                frame: frame(f),
                on_sent: on_sent.map(frame),
                on_closed: on_closed.map(frame),
                on_held: on_held.map(frame),
                store,
                on_stored: on_stored.map(frame),
            },
            G::SendRoom {
                room,
                frame: f,
                except,
                transient,
            } => Action::SendRoom {
                room,
                frame: frame(f),
                except,
                transient,
            },
            G::Broadcast { frame: f, except } => Action::Broadcast {
                frame: frame(f),
                except,
            },
            G::Join {
                id,
                room,
                since,
                on_joined,
            } => Action::Join {
                id,
                room,
                since: since.map(|p| Position {
                    epoch: p.epoch,
                    offset: p.offset,
                }),
                on_joined: on_joined.map(frame),
            },
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
