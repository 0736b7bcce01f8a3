//! Carrying out a policy's decisions, in order, against the registry. Every
//! frame is turned into a WebSocket message once; fan-out clones that message
//! (a reference-counted buffer), never the bytes.

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

use crate::outbound::{CloseReason, Outbox, code};
use crate::policy::{Action, CallError, Frame};
use crate::registry::Registry;

/// Longest close reason the WebSocket protocol allows.
const MAX_CLOSE_REASON: usize = 123;

/// The message for a policy frame.
pub fn to_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(s) => Message::Text(s.into()),
        Frame::Binary(b) => Message::Binary(Bytes::from(b)),
    }
}

/// Apply `actions`; `caller` is the connection the event was about (`None`
/// for `on-disconnect`, whose connection is gone).
pub fn apply(registry: &Registry, caller: Option<&Outbox>, actions: Vec<Action>) {
    let reply = |frame: Option<Frame>| {
        if let (Some(c), Some(f)) = (caller, frame) {
            // A caller that is closing no longer wants answers.
            let _ = c.push(to_message(f));
        }
    };
    for action in actions {
        match action {
            Action::Reply(frame) => reply(Some(frame)),
            Action::Send {
                to,
                frame,
                on_sent,
                on_closed,
            } => match registry.send(&to, to_message(frame)) {
                Ok(()) => reply(on_sent),
                Err(_) => reply(on_closed),
            },
            Action::SendRoom {
                room,
                frame,
                except,
            } => {
                registry.send_room(&room, &to_message(frame), except.as_deref());
            }
            Action::Broadcast { frame, except } => {
                registry.broadcast(&to_message(frame), except.as_deref());
            }
            Action::Join { id, room } => {
                registry.join(&id, &room);
            }
            Action::Leave { id, room } => {
                registry.leave(&id, &room);
            }
            Action::Close { id, code, reason } => {
                registry.close(&id, CloseReason::with_code(close_code(code), cut(reason)));
            }
        }
    }
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

/// The host's own answer when a policy call fails: a protocol-v1 error with
/// code `policy-failed`, echoing the request's `ref` when the frame was a
/// JSON object carrying one (so a request still gets exactly one answer).
pub fn policy_failed(request: Option<&str>, err: &CallError) -> Message {
    #[derive(serde::Deserialize)]
    struct RefOnly<'a> {
        #[serde(rename = "ref", borrow)]
        r#ref: Option<&'a RawValue>,
    }
    #[derive(serde::Serialize)]
    struct Failed<'a> {
        r#type: &'static str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<&'a RawValue>,
        code: &'static str,
        message: String,
    }
    let r#ref = request
        .and_then(|text| serde_json::from_str::<RefOnly<'_>>(text).ok())
        .and_then(|r| r.r#ref)
        .filter(|raw| {
            matches!(
                raw.get().as_bytes().first(),
                Some(b'"' | b'-' | b'0'..=b'9')
            )
        });
    let body = Failed {
        r#type: "error",
        r#ref,
        code: "policy-failed",
        message: err.to_string(),
    };
    let text = serde_json::to_string(&body).unwrap_or_else(|_| {
        r#"{"type":"error","code":"policy-failed","message":"policy failed"}"#.into()
    });
    Message::Text(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: Message) -> String {
        match m {
            Message::Text(t) => t.to_string(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn policy_failed_echoes_ref() {
        let e = CallError::Timeout(10);
        let with = text(policy_failed(Some(r#"{"type":"room","ref":-1.5e3}"#), &e));
        assert!(with.contains(r#""ref":-1.5e3"#), "{with}");
        let s = text(policy_failed(Some(r#"{"ref":"a\"b"}"#), &e));
        assert!(s.contains(r#""ref":"a\"b""#), "{s}");
        let none = text(policy_failed(Some("not json"), &e));
        assert!(!none.contains("ref"), "{none}");
        let obj = text(policy_failed(Some(r#"{"ref":{"x":1}}"#), &e));
        assert!(!obj.contains("ref"), "{obj}");
    }

    #[test]
    fn close_codes_and_reasons() {
        assert_eq!(close_code(4000), 4000);
        assert_eq!(close_code(1000), 1000);
        assert_eq!(close_code(1006), code::POLICY);
        assert_eq!(close_code(5000), code::POLICY);
        assert_eq!(cut("é".repeat(100)).len(), 122);
    }
}
