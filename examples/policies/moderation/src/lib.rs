//! An example policy: Switchboard's default rules (protocol v2) plus
//! moderation. Only `room`, `broadcast` and `notice` requests (the ones that
//! deliver a message to others) are moderated; everything else, and every
//! request this layer does not refuse, goes to the default rules unchanged.
//!
//! - **Banned words.** A message whose `data` contains a word of
//!   [`BANNED_WORDS`] is refused with an `error` of code `moderated` (the
//!   protocol's error shape, echoing the request's `ref`) and delivered to no
//!   one. Every string inside `data` is checked (object keys too, escapes
//!   decoded), word by word (runs of letters and digits), case-insensitively:
//!   `"SPAM!"` is refused, `"spammer"` is not. The list is kept small and in
//!   the source: edit it and rebuild.
//! - **Mutes.** A moderator (an id starting with [`MODERATOR_PREFIX`],
//!   `mod-`) sends a `room` request whose `data` is the string `/mute <id>`
//!   or `/unmute <id>`. The command is not delivered to the room; it is
//!   answered like any request (an `ack` if it has a `ref`; a malformed one,
//!   e.g. `/mute` without a valid id, gets `bad-request`). The sender need not
//!   be a member of the room. From then on every `room`, `broadcast` and
//!   `notice` of a muted id is refused with code `muted` (it may still join,
//!   leave, ping, and receive). Mutes live in the host's key-value store
//!   (`switchboard:policy/state`, key `muted:<id>`), so they survive instance
//!   replacement, reconnects and policy swaps; they last until `/unmute`. A
//!   muted moderator can still mute and unmute. The same text from anyone
//!   else is an ordinary message.
//!
//! The decisions are plain Rust ([`check`]), tested natively; the component
//! (wasm32 only) is a few lines binding them to the WIT world, on top of
//! guest-logic's `DefaultPolicy`.
//!
//! Build (from the workspace root):
//!
//! ```text
//! cargo build -p moderation-policy --target wasm32-wasip2 --profile guest
//! ```
//!
//! The component is `target/wasm32-wasip2/guest/moderation_policy.wasm`.

use guest_logic::frames;
use guest_logic::request::{self, Kind};
use guest_logic::{Action, State};
use serde_json::Value;
use serde_json::value::RawValue;

#[cfg(target_arch = "wasm32")]
mod component;

/// Words a message may not contain (lower case, compared case-insensitively
/// with each word of the message).
pub const BANNED_WORDS: &[&str] = &["spam", "scam", "phishing"];

/// Ids starting with this are moderators.
pub const MODERATOR_PREFIX: &str = "mod-";

/// Error code of a message refused for a banned word.
pub const MODERATED: &str = "moderated";
/// Error code of a message refused because its sender is muted.
pub const MUTED: &str = "muted";
/// Error code of a mute the host's store could not record.
pub const STATE_FAILED: &str = "state-failed";

/// Whether `id` is a moderator.
pub fn is_moderator(id: &str) -> bool {
    id.starts_with(MODERATOR_PREFIX)
}

/// The state key marking `id` as muted.
pub fn muted_key(id: &str) -> String {
    format!("muted:{id}")
}

/// Whether `id` is muted.
pub fn is_muted<S: State + ?Sized>(state: &S, id: &str) -> bool {
    state.get(&muted_key(id)).is_some()
}

/// A moderator's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `/mute <id>`.
    Mute(&'a str),
    /// `/unmute <id>`.
    Unmute(&'a str),
}

/// The usage message of a malformed command.
pub const USAGE: &str = "usage: /mute <id> or /unmute <id> (an id is 1-64 of A-Z a-z 0-9 _ . -)";

/// `text` as a command: `None` if it is not one (its first word is not
/// `/mute` or `/unmute`), `Some(Err(USAGE))` if it is one without exactly
/// one valid id after it.
pub fn command(text: &str) -> Option<Result<Command<'_>, &'static str>> {
    let mut words = text.split_whitespace();
    let mute = match words.next()? {
        "/mute" => true,
        "/unmute" => false,
        _ => return None,
    };
    Some(match (words.next(), words.next()) {
        (Some(id), None) if valid_id(id) && mute => Ok(Command::Mute(id)),
        (Some(id), None) if valid_id(id) => Ok(Command::Unmute(id)),
        _ => Err(USAGE),
    })
}

/// Whether `id` could be a connection id: 1-64 of `A-Z a-z 0-9 _ . -`.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The first banned word found in `data` (any JSON value), if any.
pub fn banned_word(data: &RawValue) -> Option<&'static str> {
    // Parsed (not scanned raw) so escapes like `\u0073pam` are decoded.
    let value: Value = serde_json::from_str(data.get()).ok()?;
    banned_in_value(&value)
}

fn banned_in_value(value: &Value) -> Option<&'static str> {
    match value {
        Value::String(s) => banned_in_text(s),
        Value::Array(items) => items.iter().find_map(banned_in_value),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| banned_in_text(k).or_else(|| banned_in_value(v))),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// The first banned word among the words (runs of letters and digits) of
/// `text`, compared case-insensitively.
pub fn banned_in_text(text: &str) -> Option<&'static str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .find_map(|w| {
            if w.is_ascii() {
                BANNED_WORDS
                    .iter()
                    .copied()
                    .find(|b| b.eq_ignore_ascii_case(w))
            } else {
                let lower = w.to_lowercase();
                BANNED_WORDS.iter().copied().find(|b| *b == lower)
            }
        })
}

/// Moderate a text frame from `sender`. `Some(actions)` when this layer
/// decides (a command's answer, or a refusal); `None` to hand the frame to
/// the default rules.
pub fn check<S: State + ?Sized>(state: &S, sender: &str, text: &str) -> Option<Vec<Action>> {
    let req = request::peek(text)?;
    if !matches!(req.kind, Kind::Room | Kind::Broadcast | Kind::Notice) {
        return None;
    }
    let reference = req.reference;
    let refuse = |code: &str, message: &str| {
        Some(vec![Action::Reply(frames::error_with_code(
            reference, code, message,
        ))])
    };
    let data = request::data(&req.fields).ok();

    // A moderator's command: a well-formed `room` request with a string `data`.
    if req.kind == Kind::Room
        && is_moderator(sender)
        && request::room(&req.fields).is_ok()
        && let Some(text) = data.and_then(request::json_str)
        && let Some(command) = command(&text)
    {
        let done = match command {
            Err(usage) => return refuse("bad-request", usage),
            Ok(Command::Mute(id)) => state.set(&muted_key(id), b"1").is_ok(),
            Ok(Command::Unmute(id)) => {
                state.delete(&muted_key(id));
                true
            }
        };
        if !done {
            return refuse(STATE_FAILED, "the mute could not be recorded; try again");
        }
        return Some(
            reference
                .map(frames::ack)
                .map(Action::Reply)
                .into_iter()
                .collect(),
        );
    }

    if is_muted(state, sender) {
        return refuse(MUTED, "you are muted by a moderator");
    }
    if let Some(word) = data.and_then(banned_word) {
        return refuse(
            MODERATED,
            &format!("message refused by moderation: `{word}` is not allowed"),
        );
    }
    None
}

#[cfg(test)]
mod tests;
