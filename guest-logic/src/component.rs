//! The component side (wasm32 only): the default rules as a `Guest`
//! ([`DefaultPolicy`]), the host imports as the rules' traits ([`Host`]), and
//! the conversions between the rules' types and the WIT types ([`incoming`],
//! [`lower`]). Public so that a policy that is "the default rules plus X" is
//! a few lines: run X, and hand everything else to [`DefaultPolicy`].
//!
//! With the `component` feature (on by default) this crate exports
//! [`DefaultPolicy`] as its own component's handler.

use crate::action::{Action, Frame, Incoming};
use crate::bindings::exports::switchboard::policy::handler::Guest;
use crate::bindings::switchboard::policy::{history, registry, state, types as wit};
use crate::rules;
use crate::state::{State, StateError};

/// The default rules (protocol v1) as the exported handler. Other policies
/// call it for whatever they do not decide themselves, e.g.
/// `<DefaultPolicy as Guest>::on_message(sender, frame)`.
pub struct DefaultPolicy;

impl Guest for DefaultPolicy {
    fn on_connect(info: wit::ConnectInfo) -> Result<Vec<wit::Action>, wit::Reject> {
        Ok(lower(rules::on_connect(&info.id, info.resumed)))
    }

    fn on_message(sender: wit::ConnId, frame: wit::Frame) -> Vec<wit::Action> {
        lower(rules::on_message(&Host, &sender, incoming(&frame)))
    }

    fn on_disconnect(id: wit::ConnId) -> Vec<wit::Action> {
        lower(rules::on_disconnect(&id))
    }
}

/// A call's allocations come from an arena that starts over between calls
/// (see [`crate::arena`]); 64 KiB holds a call of the default rules on any
/// frame up to about 20 KiB.
#[cfg(feature = "component")]
#[global_allocator]
static ALLOCATOR: crate::arena::CallArena<{ 64 * 1024 }> = crate::arena::CallArena::new();

#[cfg(feature = "component")]
crate::bindings::export!(DefaultPolicy with_types_in crate::bindings);

/// The host, through the component's imports: its registry answers the
/// rules' [`Registry`](crate::Registry) questions and its key-value store is
/// a [`State`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Host;

impl rules::Registry for Host {
    fn in_room(&self, id: &str, room: &str) -> bool {
        registry::in_room(id, room)
    }

    fn members(&self, room: &str, cap: usize) -> (Vec<String>, usize) {
        let cap = u32::try_from(cap).unwrap_or(u32::MAX);
        let ids = registry::room_members_up_to(room, cap);
        (ids, registry::room_size(room) as usize)
    }

    fn is_online(&self, id: &str) -> bool {
        registry::is_online(id)
    }

    fn history(&self, room: &str, before: Option<u64>, limit: u32) -> rules::HistoryPage {
        let page = history::read(room, before, limit);
        rules::HistoryPage {
            epoch: page.epoch,
            messages: page.messages,
        }
    }
}

impl State for Host {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        state::get(key)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StateError> {
        state::set(key, value).map_err(|e| match e {
            state::StateError::TooLarge(limit) => StateError::TooLarge(limit),
            state::StateError::Full => StateError::Full,
        })
    }

    fn delete(&self, key: &str) -> bool {
        state::delete(key)
    }
}

/// A received WIT frame as the rules take it (borrowed, no copy).
pub fn incoming(frame: &wit::Frame) -> Incoming<'_> {
    match frame {
        wit::Frame::Text(text) => Incoming::Text(text),
        wit::Frame::Binary(bytes) => Incoming::Binary(bytes),
    }
}

/// The rules' actions as WIT actions (moved, not copied).
pub fn lower(actions: Vec<Action>) -> Vec<wit::Action> {
    actions.into_iter().map(lower_action).collect()
}

/// One rules action as a WIT action.
pub fn lower_action(action: Action) -> wit::Action {
    match action {
        Action::Reply(f) => wit::Action::Reply(lower_frame(f)),
        Action::Send {
            to,
            frame,
            on_sent,
            on_closed,
            on_held,
            store,
            on_stored,
        } => wit::Action::Send(wit::Send {
            to,
            frame: lower_frame(frame),
            on_sent: on_sent.map(lower_frame),
            on_closed: on_closed.map(lower_frame),
            on_held: on_held.map(lower_frame),
            store,
            on_stored: on_stored.map(lower_frame),
        }),
        Action::SendRoom {
            room,
            frame,
            except,
            transient,
        } => wit::Action::SendRoom(wit::SendRoom {
            room,
            frame: lower_frame(frame),
            except,
            transient,
        }),
        Action::Broadcast { frame, except } => wit::Action::Broadcast(wit::Broadcast {
            frame: lower_frame(frame),
            except,
        }),
        Action::Join {
            id,
            room,
            since,
            on_joined,
        } => wit::Action::Join(wit::Join {
            id,
            room,
            since: since.map(|p| wit::Position {
                epoch: p.epoch,
                offset: p.offset,
            }),
            on_joined: on_joined.map(lower_frame),
        }),
        Action::Leave { id, room } => wit::Action::Leave(wit::Membership { id, room }),
        Action::Close { id, code, reason } => wit::Action::Close(wit::Close { id, code, reason }),
    }
}

/// A rules frame as a WIT frame.
pub fn lower_frame(frame: Frame) -> wit::Frame {
    match frame {
        Frame::Text(text) => wit::Frame::Text(text),
        Frame::Binary(bytes) => wit::Frame::Binary(bytes),
    }
}
