//! Protocol v2 (v1 and its additions): what happens on connect, on each
//! request, on disconnect.
//!
//! Answers: a request with a `ref` gets exactly one answer, an `ack` after the
//! request's other actions or an `error`; a request without one gets only
//! errors. A `notice`'s ack rides in the `send` action's `on_sent`, so the host
//! queues it only after the notice itself.

use serde_json::value::RawValue;

use crate::action::{Action, Incoming};
use crate::frames::{self, ErrorCode};
use crate::request::{self, Fields, Kind, Refusal};

/// The host's registry, as far as the rules need it. Answers reflect the
/// registry before this call's actions are applied.
pub trait Registry {
    /// Is `id` a member of `room`?
    fn in_room(&self, id: &str, room: &str) -> bool;
    /// At most `cap` members of `room` (which ones is the host's choice),
    /// and how many it has: a large room is never copied whole.
    fn members(&self, room: &str, cap: usize) -> (Vec<String>, usize);
    /// Is a connection with this id online (or held, waiting to resume)?
    fn is_online(&self, id: &str) -> bool;
    /// Up to `limit` of the newest kept messages of `room` before offset
    /// `before` (all kept ones when `None`), oldest first.
    fn history(&self, room: &str, before: Option<u64>, limit: u32) -> HistoryPage;
}

/// Kept messages of a room, as the host keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryPage {
    /// The room's epoch.
    pub epoch: String,
    /// The room frames (JSON objects with their `offset`), oldest first.
    pub messages: Vec<String>,
}

/// Most ids a `members` answer lists (its `count` is always exact).
pub const MAX_MEMBER_IDS: usize = 1000;

/// The message of the `bad-request` error answering a binary frame.
pub const BINARY_MESSAGE: &str = "binary frames are not supported: send JSON text frames";

/// A client connected: greet it with `welcome`, which tells it whether it
/// `resumed` a held session (the host adds the `session` for `?resume=`
/// after a drop). The default rules never refuse a connection.
pub fn on_connect(id: &str, resumed: bool) -> Vec<Action> {
    vec![Action::Reply(frames::welcome(id, resumed))]
}

/// `id` went offline. The host takes it out of every room and tells each
/// room `left` itself (so a call can neither fail that nor need more
/// actions than it may return): nothing is left for these rules to do.
pub fn on_disconnect(_id: &str) -> Vec<Action> {
    Vec::new()
}

/// A frame arrived from `sender`.
pub fn on_message<R: Registry + ?Sized>(
    registry: &R,
    sender: &str,
    frame: Incoming<'_>,
) -> Vec<Action> {
    let text = match frame {
        Incoming::Text(text) => text,
        Incoming::Binary(_) => {
            return refuse(None, &Refusal::fixed(ErrorCode::BadRequest, BINARY_MESSAGE));
        }
    };
    let fields = match request::parse(text) {
        Ok(fields) => fields,
        Err(refusal) => return refuse(None, &refusal),
    };
    let reference = match request::reference(&fields) {
        Ok(reference) => reference,
        Err(refusal) => return refuse(None, &refusal),
    };
    let request = Request {
        registry,
        sender,
        reference,
        fields: &fields,
    };
    match request.handle() {
        Ok(actions) => actions,
        Err(refusal) => refuse(reference, &refusal),
    }
}

/// The `error` reply for `refusal`.
fn refuse(reference: Option<&RawValue>, refusal: &Refusal) -> Vec<Action> {
    vec![Action::Reply(frames::error(
        reference,
        refusal.code,
        &refusal.message,
    ))]
}

/// One request being decided.
struct Request<'r, 'a, R: ?Sized> {
    /// The host's registry.
    registry: &'r R,
    /// Who sent the request.
    sender: &'a str,
    /// The request's `ref`, already checked to be a string or a number.
    reference: Option<&'a RawValue>,
    /// The request's fields.
    fields: &'r Fields<'a>,
}

impl<R: Registry + ?Sized> Request<'_, '_, R> {
    /// The request's actions, ending with its ack if it has a `ref`.
    fn handle(&self) -> Result<Vec<Action>, Refusal> {
        let mut actions = Vec::with_capacity(3);
        match request::kind(self.fields)? {
            Kind::Leave => self.leave(&mut actions)?,
            Kind::Room => self.room(&mut actions)?,
            Kind::Broadcast => self.broadcast(&mut actions)?,
            Kind::Ping => actions.push(Action::Reply(frames::pong())),
            // Its ack goes in `on_sent`, not after it.
            Kind::Notice => {
                self.notice(&mut actions)?;
                return Ok(actions);
            }
            // The answer itself carries the `ref`: no ack after it.
            Kind::Members => {
                self.members(&mut actions)?;
                return Ok(actions);
            }
            Kind::Online => {
                self.online(&mut actions)?;
                return Ok(actions);
            }
            Kind::History => {
                self.history(&mut actions)?;
                return Ok(actions);
            }
            // Its ack rides in the `join` (the host adds the room's
            // position to it), after the call's other actions.
            Kind::Join => {
                self.join(&mut actions)?;
                return Ok(actions);
            }
        }
        if let Some(reference) = self.reference {
            actions.push(Action::Reply(frames::ack(reference)));
        }
        Ok(actions)
    }

    /// `join {room, since?}`: a new member and everyone already there hear
    /// `joined` (kept out of the history); joining again changes nothing.
    /// With `since`, the host first replays what the joiner missed (or says
    /// it cannot); the ack, sent last, carries the room's `epoch` and
    /// `offset` (and `recovered`).
    fn join(&self, actions: &mut Vec<Action>) -> Result<(), Refusal> {
        let room = request::room(self.fields)?;
        let since = request::since(self.fields)?;
        let room = room.into_owned();
        let joined = (!self.registry.in_room(self.sender, &room))
            .then(|| frames::joined(&room, self.sender));
        actions.push(Action::Join {
            id: self.sender.to_owned(),
            room: room.clone(),
            since,
            on_joined: self.reference.map(frames::ack),
        });
        if let Some(frame) = joined {
            actions.push(Action::SendRoom {
                room,
                frame,
                except: None,
                transient: true,
            });
        }
        Ok(())
    }

    /// `leave {room}`: the leaver and the remaining members hear `left`.
    fn leave(&self, actions: &mut Vec<Action>) -> Result<(), Refusal> {
        let room = request::room(self.fields)?;
        self.member_of(&room)?;
        let frame = frames::left(&room, self.sender);
        let room = room.into_owned();
        actions.push(Action::SendRoom {
            room: room.clone(),
            frame,
            except: None,
            transient: true,
        });
        actions.push(Action::Leave {
            id: self.sender.to_owned(),
            room,
        });
        Ok(())
    }

    /// `room {room, data}`: every other member gets the message.
    fn room(&self, actions: &mut Vec<Action>) -> Result<(), Refusal> {
        let room = request::room(self.fields)?;
        let data = request::data(self.fields)?;
        self.member_of(&room)?;
        actions.push(Action::SendRoom {
            frame: frames::room(&room, self.sender, data),
            room: room.into_owned(),
            except: Some(self.sender.to_owned()),
            transient: false,
        });
        Ok(())
    }

    /// `broadcast {data}`: every other online connection gets the message.
    fn broadcast(&self, actions: &mut Vec<Action>) -> Result<(), Refusal> {
        let data = request::data(self.fields)?;
        actions.push(Action::Broadcast {
            frame: frames::broadcast(self.sender, data),
            except: Some(self.sender.to_owned()),
        });
        Ok(())
    }

    /// `notice {to, data, store?}`: one `send`; the host replies with the ack
    /// (if any) once the notice is queued, with `"held":true` when `to` is
    /// held (it waits for its resume), with `"stored":true` when `store`
    /// kept it for an offline `to`, or with `target-closed`.
    fn notice(&self, actions: &mut Vec<Action>) -> Result<(), Refusal> {
        let to = request::to(self.fields)?;
        let data = request::data(self.fields)?;
        let store = request::store(self.fields)?;
        // Built for every notice though rarely sent, so without `format!`.
        let short = request::shorten(&to);
        let mut closed = String::with_capacity(short.len() + 16);
        closed.push('`');
        closed.push_str(short);
        closed.push_str("` is not online");
        actions.push(Action::Send {
            frame: frames::notice(self.sender, data),
            on_sent: self.reference.map(frames::ack),
            on_closed: Some(frames::error(
                self.reference,
                ErrorCode::TargetClosed,
                &closed,
            )),
            on_held: self.reference.map(|r| frames::ack_flag(r, "held")),
            store,
            on_stored: self.reference.map(|r| frames::ack_flag(r, "stored")),
            to: to.into_owned(),
        });
        Ok(())
    }

    /// `members {room}`: who is in the room, for its members only. At most
    /// [`MAX_MEMBER_IDS`] ids (the host picks which; they are sorted), with
    /// the exact count.
    fn members(&self, actions: &mut Vec<Action>) -> Result<(), Refusal> {
        let room = request::room(self.fields)?;
        self.member_of(&room)?;
        let (mut ids, count) = self.registry.members(&room, MAX_MEMBER_IDS);
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        ids.truncate(MAX_MEMBER_IDS);
        ids.sort_unstable();
        actions.push(Action::Reply(frames::members(
            &room,
            &ids,
            count,
            self.reference,
        )));
        Ok(())
    }

    /// `online {ids}`: which of these ids are online, in the order asked.
    fn online(&self, actions: &mut Vec<Action>) -> Result<(), Refusal> {
        let ids = request::ids(self.fields)?;
        let online: Vec<&str> = ids
            .iter()
            .map(|id| id.as_ref())
            .filter(|id| self.registry.is_online(id))
            .collect();
        actions.push(Action::Reply(frames::online(&online, self.reference)));
        Ok(())
    }

    /// `history {room, limit?, before?}`: the room's kept messages, for its
    /// members only.
    fn history(&self, actions: &mut Vec<Action>) -> Result<(), Refusal> {
        let room = request::room(self.fields)?;
        let limit = request::limit(self.fields)?;
        let before = request::before(self.fields)?;
        self.member_of(&room)?;
        let page = self.registry.history(&room, before, limit);
        actions.push(Action::Reply(frames::history(
            &room,
            &page.epoch,
            &page.messages,
            self.reference,
        )));
        Ok(())
    }

    /// Refuse with `not-in-room` unless the sender is a member of `room`.
    fn member_of(&self, room: &str) -> Result<(), Refusal> {
        if self.registry.in_room(self.sender, room) {
            Ok(())
        } else {
            Err(Refusal::new(
                ErrorCode::NotInRoom,
                format!("not a member of room `{}`", request::shorten(room)),
            ))
        }
    }
}
