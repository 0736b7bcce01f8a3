//! Carrying out a policy's decisions, in order, against the registry. Every
//! frame is turned into a WebSocket message once; fan-out clones that message
//! (a reference-counted buffer), never the bytes.

use std::time::Instant;

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Message;

use crate::chat::outbound::{Outbox, code};
use crate::chat::rate::Bucket;
use crate::chat::registry::{Found, Joined};
use crate::chat::replies;
use crate::chat::{Chat, ids as id};
use crate::metrics::Limit;
use crate::policy::{Action, Frame};
use crate::store::bus::{SendError, Sent};
use crate::store::json;

/// Longest close reason the WebSocket protocol allows.
const MAX_CLOSE_REASON: usize = 123;

/// The message for a policy frame.
pub fn to_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(s) => Message::Text(s.into()),
        Frame::Binary(b) => Message::Binary(Bytes::from(b)),
    }
}

/// The connection an event was about, and what its answers need.
pub struct Caller<'a> {
    /// Where replies go.
    pub outbox: &'a Outbox,
    /// The client's text frame being answered, for the `ref` the host's own
    /// errors echo (`None` for a binary frame or `on-connect`).
    pub request: Option<&'a str>,
    /// The connection's broadcast allowance (`None`: unlimited).
    pub broadcasts: Option<&'a mut Bucket>,
    /// The id the event is about: whose quota a stored notice is charged
    /// to (`""`: nobody's in particular, e.g. a replay).
    pub sender: &'a str,
}

impl<'a> Caller<'a> {
    /// A caller with no request to answer and no broadcast limit.
    pub fn new(outbox: &'a Outbox) -> Self {
        Caller {
            outbox,
            request: None,
            broadcasts: None,
            sender: "",
        }
    }

    fn reply(&self, msg: Message) {
        // A caller that is closing no longer wants answers.
        let _ = self.outbox.push(msg);
    }
}

/// Apply `actions` for an event about `caller`'s connection.
///
/// The host's limits apply here, not in the policy: a `join` past the
/// rooms-per-id limit or a `broadcast` past the connection's allowance is
/// not carried out, and neither is anything after it in the list (the acks
/// and notices that assumed it); the caller gets `too-many-rooms` or
/// `rate-limited` instead, echoing its `ref`.
pub async fn apply(chat: Chat<'_>, caller: Caller<'_>, actions: Vec<Action>) {
    carry_out(chat, Some(caller), None, actions).await;
}

/// Apply `on-disconnect`'s actions for `gone`, which went offline. Replies
/// have no one to go to. Should `gone` be online again by now (a new
/// connection), what the policy decided about the old one must not touch
/// the new one: joins and closes of `gone` are skipped, and it leaves a
/// room only while it is still offline.
pub async fn apply_disconnect(chat: Chat<'_>, gone: &str, actions: Vec<Action>) {
    carry_out(chat, None, Some(gone), actions).await;
}

async fn carry_out(
    chat: Chat<'_>,
    mut caller: Option<Caller<'_>>,
    gone: Option<&str>,
    actions: Vec<Action>,
) {
    let (registry, bus) = (chat.registry, chat.bus);
    // `on-joined` answers, sent after the call's other actions (a request's
    // answer comes last).
    let mut answers: Vec<Message> = Vec::new();
    let reply = |caller: &Option<Caller<'_>>, msg: Message| {
        if let Some(c) = caller {
            c.reply(msg);
        }
    };
    let request = caller.as_ref().and_then(|c| c.request);
    let sender = caller.as_ref().map_or(gone.unwrap_or(""), |c| c.sender);
    // The caller's answers come after the frames its requests had the
    // bus hand on left this server (in a cluster; at once on one server).
    let settle = async |caller: &Option<Caller<'_>>| {
        // (Nothing to wait for on one server: no call, no boxed future.)
        if let Some(c) = caller
            && c.outbox.handed() > 0
        {
            bus.settle(c.outbox.handed()).await;
        }
    };
    let handed = |caller: &Option<Caller<'_>>| {
        if let Some(c) = caller {
            c.outbox.note_handed(bus.handed());
        }
    };
    for action in actions {
        match action {
            Action::Reply(frame) => {
                settle(&caller).await;
                reply(&caller, to_message(frame))
            }
            Action::Send {
                to,
                frame,
                on_sent,
                on_closed,
                on_held,
                store,
                on_stored,
            } => {
                if !id::is_valid(&to) {
                    // Nothing can ever be online under it: not sent, and
                    // above all not stored (a made-up key would hold
                    // memory for the notices' whole life).
                    let message = format!(
                        "`to` {:?} is not an id (1-64 characters of A-Z a-z 0-9 _ . -)",
                        id::shown(&to)
                    );
                    let refused =
                        replies::error(request, replies::code::BAD_REQUEST, &message, None);
                    reply(&caller, refused);
                    continue;
                }
                let sent = match bus.send(sender, &to, to_message(frame), store).await {
                    Ok(sent) => sent,
                    Err(SendError::Quota(e)) => {
                        registry.counters().limited(Limit::StoredNotices);
                        let refused = replies::error(
                            request,
                            replies::code::STORE_QUOTA,
                            &e.to_string(),
                            None,
                        );
                        reply(&caller, refused);
                        continue;
                    }
                    Err(SendError::Unavailable(e)) => {
                        // Not sent, not stored: said so, and nothing after
                        // it (its ack) is carried out.
                        let message = format!("the notice was not sent: {e}; send it again");
                        let refused =
                            replies::error(request, replies::code::UNAVAILABLE, &message, None);
                        reply(&caller, refused);
                        return;
                    }
                };
                let answer = match sent {
                    Sent::Queued => on_sent,
                    Sent::Held => on_held.or(on_sent),
                    Sent::Stored => on_stored.or(on_sent),
                    Sent::Refused => on_closed,
                };
                if let Some(f) = answer {
                    reply(&caller, to_message(f));
                }
            }
            Action::SendRoom {
                room,
                frame: Frame::Text(text),
                except,
                transient: false,
            } => {
                if let Err(e) = bus.publish(&room, text, except.as_deref()).await {
                    // Not kept, not delivered: said so, and nothing after
                    // it (its ack) is carried out.
                    let message = format!("the room message was not kept: {e}; send it again");
                    let refused =
                        replies::error(request, replies::code::UNAVAILABLE, &message, None);
                    reply(&caller, refused);
                    return;
                }
            }
            Action::SendRoom {
                room,
                frame,
                except,
                ..
            } => {
                bus.transient(&room, to_message(frame), except.as_deref());
                handed(&caller);
            }
            Action::Broadcast { frame, except } => {
                let bucket = caller.as_mut().and_then(|c| c.broadcasts.as_deref_mut());
                if let Some(Err(wait)) = bucket.map(|b| b.take(Instant::now())) {
                    registry.counters().limited(Limit::BroadcastsPerSec);
                    let message = "too many broadcasts; wait before broadcasting again";
                    let refused =
                        replies::error(request, replies::code::RATE_LIMITED, message, Some(wait));
                    reply(&caller, refused);
                    return;
                }
                bus.broadcast(to_message(frame), except.as_deref());
                handed(&caller);
            }
            Action::Join {
                id,
                room,
                since,
                on_joined,
            } if gone != Some(id.as_str()) => {
                let since = since.as_ref().map(|p| (p.epoch.as_str(), p.offset));
                // The room's messages reach this server, and the id's rooms
                // say it is in (where the cluster keeps them): both before
                // it joins, so a join that could not be made known is not
                // made.
                let generation = registry.generation(&id);
                let ready = match chat.history.prepare(&room, since).await {
                    Ok(()) => match generation {
                        Some(g) => bus.member(&id, g, true, &room).await,
                        None => Ok(()),
                    },
                    Err(e) => Err(e),
                };
                if let Err(e) = ready {
                    let message = format!("the room could not be joined now: {e}; try again");
                    let refused =
                        replies::error(request, replies::code::UNAVAILABLE, &message, None);
                    reply(&caller, refused);
                    return;
                }
                let mut outcome = (Joined::Offline, None);
                // Runs once the joiner got what it missed (a member already
                // has every message since it joined), the room still held.
                let join = |joined: Joined, found: Found| {
                    let recovered = found.recovered;
                    let answer =
                        on_joined.map(|f| joined_answer(f, &found.epoch, found.top, recovered));
                    // A recovering join is answered at once, right after
                    // its replay and before any live message: everything
                    // the joiner gets before the answer is what it missed.
                    outcome = match answer {
                        Some(answer) if recovered.is_some() && !refused_join(joined) => {
                            reply(&caller, answer);
                            (joined, None)
                        }
                        answer => (joined, answer),
                    };
                };
                registry.join_with(&id, &room, Some(chat.history), since, join);
                let (joined, answer) = outcome;
                if refused_join(joined) {
                    if let Some(g) = generation
                        && let Err(e) = bus.member(&id, g, false, &room).await
                    {
                        tracing::warn!(id, room, error = %e, "a refused join stays in the id's rooms");
                    }
                    registry
                        .counters()
                        .limited(if joined == Joined::TooManyRooms {
                            Limit::MaxRoomsPerId
                        } else {
                            Limit::MaxRooms
                        });
                    let message = if joined == Joined::TooManyRooms {
                        format!(
                            "`{id}` is in {} rooms, the most allowed; leave one first",
                            registry.max_rooms()
                        )
                    } else {
                        format!(
                            "the server has {} rooms, the most it allows (--max-rooms); \
                             join a room that exists",
                            registry.max_total_rooms()
                        )
                    };
                    let refused =
                        replies::error(request, replies::code::TOO_MANY_ROOMS, &message, None);
                    reply(&caller, refused);
                    return;
                }
                if let Some(answer) = answer {
                    answers.push(answer);
                }
            }
            Action::Leave { id, room } => {
                if gone == Some(id.as_str()) {
                    // Its rooms are let go of all at once (`released`).
                    registry.leave_if_offline(&id, &room);
                    continue;
                }
                if let Some(g) = registry.generation(&id)
                    && registry.in_room(&id, &room)
                    && let Err(e) = bus.member(&id, g, false, &room).await
                {
                    let message = format!("the room could not be left now: {e}; try again");
                    let refused =
                        replies::error(request, replies::code::UNAVAILABLE, &message, None);
                    reply(&caller, refused);
                    return;
                }
                registry.leave(&id, &room);
            }
            Action::Close { id, code, reason } if gone != Some(id.as_str()) => {
                bus.close(&id, close_code(code), &cut(reason));
                handed(&caller);
            }
            // A join or close of the id that went offline.
            Action::Join { .. } | Action::Close { .. } => {}
        }
    }
    if !answers.is_empty() {
        settle(&caller).await;
    }
    for answer in answers {
        reply(&caller, answer);
    }
}

/// Whether a join was refused over a room limit (per id or server-wide):
/// answered `too-many-rooms`, and nothing after it is carried out.
fn refused_join(joined: Joined) -> bool {
    matches!(joined, Joined::TooManyRooms | Joined::TooManyRoomsOnServer)
}

/// A join's answer with the room's position added (and, with `since`,
/// whether what was missed was replayed), when it is a JSON object.
fn joined_answer(frame: Frame, epoch: &str, top: u64, recovered: Option<bool>) -> Message {
    let Frame::Text(text) = frame else {
        return to_message(frame);
    };
    // Epochs are `a-z 2-7`: nothing to escape.
    let text = match recovered {
        Some(r) => json::with_fields(
            text,
            format_args!(r#""epoch":"{epoch}","offset":{top},"recovered":{r}"#),
        ),
        None => json::with_fields(text, format_args!(r#""epoch":"{epoch}","offset":{top}"#)),
    };
    Message::Text(text.into())
}

/// A policy may use 1000, 1008 and the application range 3000-4999.
fn close_code(code: u16) -> u16 {
    match code {
        1000 | 1008 | 3000..=4999 => code,
        _ => code::POLICY,
    }
}

/// Cut `s` to the WebSocket close-reason limit on a character boundary.
pub fn cut(mut s: String) -> String {
    if s.len() > MAX_CLOSE_REASON {
        let mut end = MAX_CLOSE_REASON;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_and_reasons() {
        assert_eq!(close_code(4000), 4000);
        assert_eq!(close_code(1000), 1000);
        assert_eq!(close_code(1006), code::POLICY);
        assert_eq!(close_code(5000), code::POLICY);
        assert_eq!(cut("é".repeat(100)).len(), 122);
    }
}
