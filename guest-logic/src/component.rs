//! The component wrapper (wasm32 only): binds the rules to the
//! `switchboard:policy` world. Host registry imports answer the rules'
//! [`Registry`](crate::Registry) questions; the rules' actions are moved
//! (not copied) into WIT actions.

wit_bindgen::generate!({
    world: "policy",
    path: "../wit",
});

use exports::switchboard::policy::handler::Guest;
use switchboard::policy::registry;
use switchboard::policy::types as wit;

use crate::action::{Action, Frame, Incoming};
use crate::rules;

/// The exported handler.
struct Policy;

impl Guest for Policy {
    fn on_connect(info: wit::ConnectInfo) -> Result<Vec<wit::Action>, wit::Reject> {
        Ok(lower(rules::on_connect(&info.id)))
    }

    fn on_message(sender: wit::ConnId, frame: wit::Frame) -> Vec<wit::Action> {
        let incoming = match &frame {
            wit::Frame::Text(text) => Incoming::Text(text),
            wit::Frame::Binary(bytes) => Incoming::Binary(bytes),
        };
        lower(rules::on_message(&Host, &sender, incoming))
    }

    fn on_disconnect(id: wit::ConnId) -> Vec<wit::Action> {
        lower(rules::on_disconnect(&Host, &id))
    }
}

export!(Policy);

/// The host's registry, through the component's imports.
struct Host;

impl rules::Registry for Host {
    fn in_room(&self, id: &str, room: &str) -> bool {
        registry::in_room(id, room)
    }

    fn rooms_of(&self, id: &str) -> Vec<String> {
        registry::rooms_of(id)
    }
}

/// The rules' actions as WIT actions.
fn lower(actions: Vec<Action>) -> Vec<wit::Action> {
    actions.into_iter().map(action).collect()
}

fn action(action: Action) -> wit::Action {
    match action {
        Action::Reply(f) => wit::Action::Reply(frame(f)),
        Action::Send {
            to,
            frame: f,
            on_sent,
            on_closed,
        } => wit::Action::Send(wit::Send {
            to,
            frame: frame(f),
            on_sent: on_sent.map(frame),
            on_closed: on_closed.map(frame),
        }),
        Action::SendRoom {
            room,
            frame: f,
            except,
        } => wit::Action::SendRoom(wit::SendRoom {
            room,
            frame: frame(f),
            except,
        }),
        Action::Broadcast { frame: f, except } => wit::Action::Broadcast(wit::Broadcast {
            frame: frame(f),
            except,
        }),
        Action::Join { id, room } => wit::Action::Join(wit::Membership { id, room }),
        Action::Leave { id, room } => wit::Action::Leave(wit::Membership { id, room }),
        Action::Close { id, code, reason } => wit::Action::Close(wit::Close { id, code, reason }),
    }
}

fn frame(frame: Frame) -> wit::Frame {
    match frame {
        Frame::Text(text) => wit::Frame::Text(text),
        Frame::Binary(bytes) => wit::Frame::Binary(bytes),
    }
}
