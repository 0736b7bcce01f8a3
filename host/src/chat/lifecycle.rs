//! A connection's life as the chat sees it — connect, events, disconnect —
//! written once for a live session (`net::session`) and for a decision
//! replay (`ops::replay`), so both carry out the same steps in the same
//! order. The caller asks the rules (live: `decide`; replay: its own
//! component) and hands the answer here.

use std::time::SystemTime;

use tokio_tungstenite::tungstenite::Message;

use crate::chat::Chat;
use crate::chat::actions::{self, Caller};
use crate::chat::outbound::{self, CloseReason, Inbox, Outbox, code};
use crate::chat::replies;
use crate::policy::{Action, Frame};
use crate::store::bus::{Claim, Handover, RoomAt};
use crate::store::json;
use crate::store::notices::Mail;

/// A held id being taken back by a new connection.
#[derive(Debug)]
pub enum Resume {
    /// Held here.
    Held {
        /// The held connection's serial.
        serial: u64,
        /// Its queue: what the id missed while away.
        missed: Inbox,
    },
    /// Held on another server, which handed it over (boxed: every
    /// connection's task carries a `Resume` slot).
    Moved(Box<Handover>),
}

/// Register `id` on `outbox` and carry out `on-connect`'s actions. The
/// replies they start with (the welcome) are queued before the id is
/// registered: from then on its rooms (kept from an earlier connection)
/// can queue frames to it, and the welcome must come first. Then, still
/// before anything live: with `resume`, everything the id missed while it
/// was held, in order; then the notices stored for it. `registered` runs
/// right after the registration, before the other actions.
///
/// The notices are taken before the registration and again after it: a
/// notice stored in between (its sender found the id still offline) is
/// in the second take, and one stored after it is handed over by its
/// sender, which looks again after storing (`actions`).
///
/// `session` (the connection's, when it has one) is set in the welcome
/// (see [`with_session`]): the rules never see it.
///
/// `claim` is the id's claim for this connection: a newer one known here
/// refuses it (closed with 4001 after the welcome, nothing else carried
/// out); the rooms it brings from another server are joined without a
/// word, as a reconnect on one server keeps its rooms.
///
/// One event under one cork: the welcome and what `on-connect` sends to
/// others are written at its end, after the registration.
#[allow(clippy::too_many_arguments)]
pub async fn connect(
    chat: Chat<'_>,
    id: &str,
    outbox: &Outbox,
    mut decided: Vec<Action>,
    session: Option<&str>,
    resume: Option<Resume>,
    claim: Claim,
    registered: impl FnOnce() + Send,
) {
    if let Some(session) = session {
        with_session(&mut decided, session);
    }
    let leading = decided
        .iter()
        .take_while(|a| matches!(a, Action::Reply(_)))
        .count();
    let rest = decided.split_off(leading);
    outbound::corked(async {
        actions::apply(chat, Caller::new(outbox), decided).await;
        let stored = stored_frames(chat.notices.take(id, SystemTime::now()).await);
        // Then what came for the id while its claim was under way (in a
        // cluster, `Bus::unpark`): the newest of all.
        let queue_stored = || {
            queue_counted(outbox, stored);
            queue_counted(outbox, chat.bus.unpark(id));
        };
        let Claim {
            generation,
            rooms,
            unsent,
        } = claim;
        let mut since = Vec::new();
        let registration = match resume {
            Some(Resume::Held { serial, mut missed }) => chat
                .registry
                .take_over(id, serial, outbox.clone(), generation, || {
                    queue_counted(outbox, missed.unhold());
                    queue_stored();
                })
                .map(|_| ()),
            Some(Resume::Moved(handover)) => {
                let Handover {
                    frames,
                    rooms: positions,
                    ..
                } = *handover;
                since = positions;
                chat.registry
                    .register_with(id, outbox.clone(), generation, || {
                        queue_counted(outbox, frames);
                        queue_stored();
                    })
                    .map(|_| ())
            }
            // Notices a dead server never wrote come first: they were
            // acked before anything stored since.
            None => chat
                .registry
                .register_with(id, outbox.clone(), generation, || {
                    queue_counted(outbox, unsent);
                    queue_stored();
                })
                .map(|_| ()),
        };
        if registration.is_err() {
            // Not for this connection: a newer one has the id (and will
            // have been routed what came since).
            drop(chat.bus.unpark(id));
            tracing::debug!(id, generation, "a newer connection has the id already");
            outbox.close(CloseReason {
                replaced: true,
                ..CloseReason::with_code(code::REPLACED, "replaced by a newer connection")
            });
            return;
        }
        keep_rooms(chat, id, since, rooms).await;
        let late = stored_frames(chat.notices.take(id, SystemTime::now()).await);
        queue_counted(outbox, late);
        registered();
        actions::apply(chat, Caller::new(outbox), rest).await;
    })
    .await;
}

/// Join `id` to its rooms on another server without a word: nobody hears
/// `joined`, as nobody heard `left` where it was. Rooms handed over with
/// their position (`since`) replay what came after it first, so a
/// resumed id misses nothing; the others (`rooms`) start from now.
async fn keep_rooms(chat: Chat<'_>, id: &str, since: Vec<RoomAt>, rooms: Vec<String>) {
    // Rooms joined with no position: what went to the earlier connection
    // there and was not written is for a `join` with `since` to replay.
    let mut unplaced = Vec::new();
    let positions = since
        .into_iter()
        .map(|r| (r.room, Some((r.epoch, r.offset))));
    let rest = rooms.into_iter().map(|room| (room, None));
    for (room, since) in positions.chain(rest) {
        if chat.registry.in_room(id, &room) {
            continue;
        }
        let since = since.as_ref().map(|(e, o)| (e.as_str(), *o));
        if since.is_none() {
            unplaced.push(room.clone());
        }
        if let Err(e) = chat.history.prepare(&room, since).await {
            tracing::warn!(id, room, error = %e, "a room kept from another server is not followed here");
        }
        chat.registry
            .join_with(id, &room, Some(chat.history), since, |_, _| {});
    }
    chat.registry.hand_rooms_over(id, Some(&unplaced));
}

/// `id`, taken over from another server, goes no further here (the rules
/// refused its connection): it goes offline as a hold that ends does —
/// what `on-disconnect` decided (`None` when the call failed), then its
/// `rooms` hear `left`.
pub async fn disconnect_moved(
    chat: Chat<'_>,
    id: &str,
    decided: Option<Vec<Action>>,
    rooms: &[String],
) {
    outbound::corked(async {
        if let Some(decided) = decided {
            actions::apply_disconnect(chat, id, decided).await;
        }
        for room in rooms {
            chat.bus.transient(room, replies::left(room, id), None);
        }
        // No connection here had it: whoever has it now keeps it.
        chat.bus.released(id, u64::MAX).await;
    })
    .await;
}

/// Set `"session":"<session>"` in every text frame `on-connect` replies
/// with whose JSON `type` is `welcome` (replacing a `session` the rules
/// wrote, adding it otherwise), as the host adds `offset` to room frames:
/// the rules are never given the token, so a policy cannot leak or keep
/// it, and the client gets it all the same.
fn with_session(decided: &mut [Action], session: &str) {
    let Ok(value) = serde_json::to_string(session) else {
        return;
    };
    for action in decided {
        if let Action::Reply(Frame::Text(text)) = action
            && json::string_field(text, "type").as_deref() == Some("welcome")
        {
            *text = json::with_field(std::mem::take(text), "session", &value);
        }
    }
}

/// Carry out `on-message`'s actions for `caller`.
pub async fn message(chat: Chat<'_>, caller: Caller<'_>, decided: Vec<Action>) {
    actions::apply(chat, caller, decided).await;
}

/// `id` went offline (the caller has unregistered it): carry out what
/// `on-disconnect` decided (`None` when the call failed), then take `id`
/// out of every room it is still in, telling each room `left`. That part
/// does not depend on the rules: a call that fails (or would need more
/// actions than a call may return) cannot keep an id in its rooms.
///
/// `generation` is the claim of the connection that ended: where the
/// cluster keeps who has an id, it lets go of the id only if no newer
/// connection claimed it meanwhile.
pub async fn disconnect(chat: Chat<'_>, id: &str, decided: Option<Vec<Action>>, generation: u64) {
    outbound::corked(async {
        if let Some(decided) = decided {
            actions::apply_disconnect(chat, id, decided).await;
        }
        let left = chat
            .registry
            .leave_all_if_offline(id, chat.bus, replies::left);
        if left.is_some() {
            chat.bus.released(id, generation).await;
        }
    })
    .await;
}

/// Queue `frames` past `outbox`'s limits: they were counted already,
/// against the held queue's limits or the store's.
fn queue_counted(outbox: &Outbox, frames: impl IntoIterator<Item = Message>) {
    for frame in frames {
        let _ = outbox.push_control(frame);
    }
}

/// The frames that hand over `mail`: a `notices-dropped` frame if some
/// were dropped for want of room, then the notices, oldest first, each
/// with its `stored_at`.
pub fn stored_frames(mail: Mail) -> Vec<Message> {
    let mut frames = Vec::with_capacity(mail.notices.len() + 1);
    if mail.dropped > 0 {
        frames.push(replies::notices_dropped(mail.dropped));
    }
    for notice in mail.notices {
        let at = notice.stored_at();
        let text = json::with_fields(
            notice.frame.to_string(),
            format_args!(r#""stored_at":"{at}""#),
        );
        frames.push(Message::Text(text.into()));
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Action {
        Action::Reply(Frame::Text(s.to_owned()))
    }

    #[test]
    fn the_session_goes_into_the_welcome_only() {
        let mut decided = vec![
            text(r#"{"type":"welcome","id":"a","resumed":false}"#),
            text(r#"{"type":"welcome","session":"forged","online":3}"#),
            text(r#"{"type":"notice","session":"x"}"#),
            text("welcome a"),
            Action::Reply(Frame::Binary(b"{\"type\":\"welcome\"}".to_vec())),
            Action::Send {
                to: "b".into(),
                frame: Frame::Text(r#"{"type":"welcome"}"#.into()),
                on_sent: None,
                on_closed: None,
                on_held: None,
                store: false,
                on_stored: None,
            },
        ];
        let before = decided.clone();
        with_session(&mut decided, "s3ss");
        assert_eq!(
            decided[0],
            text(r#"{"type":"welcome","id":"a","resumed":false,"session":"s3ss"}"#)
        );
        // What the rules wrote is replaced, never kept beside it.
        assert_eq!(
            decided[1],
            text(r#"{"type":"welcome","online":3,"session":"s3ss"}"#)
        );
        // Frames that are not the caller's JSON welcome are left alone.
        assert_eq!(decided[2..], before[2..]);
    }
}
