//! The JSON frames the server sends (protocol v1). Each is one
//! `serde_json::to_string` of a small struct of borrowed fields: a client's
//! `data` and `ref` are `&RawValue`s, written out byte for byte, never parsed
//! into a `Value` and re-serialised.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::action::Frame;

/// The error codes the default policy answers with (`policy-failed` is the
/// host's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Not JSON, or JSON that is not an object.
    BadJson,
    /// A missing or ill-typed field, a bad `ref`, or a binary frame.
    BadRequest,
    /// `type` names no request of protocol v1.
    UnknownType,
    /// `leave`/`room` for a room the sender is not a member of.
    NotInRoom,
    /// A `notice` whose target is offline or cannot take it.
    TargetClosed,
}

impl ErrorCode {
    /// The code as sent in the `code` field.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad-json",
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::UnknownType => "unknown-type",
            ErrorCode::NotInRoom => "not-in-room",
            ErrorCode::TargetClosed => "target-closed",
        }
    }
}

/// `{"type":"pong"}`: constant, so no serialising at all.
pub const PONG: &str = r#"{"type":"pong"}"#;

/// A text frame of `value` as JSON.
fn text<T: Serialize>(value: &T) -> Frame {
    // Cannot fail: every struct below has string keys and plain string or
    // already-validated raw JSON values. An empty frame beats a trap if it did.
    Frame::Text(serde_json::to_string(value).unwrap_or_default())
}

/// `{"type":"welcome","id"}`: the first frame of every connection.
pub fn welcome(id: &str) -> Frame {
    #[derive(Serialize)]
    struct Welcome<'a> {
        r#type: &'static str,
        id: &'a str,
    }
    text(&Welcome {
        r#type: "welcome",
        id,
    })
}

/// `{"type":"joined"|"left","room","id"}`.
#[derive(Serialize)]
struct Membership<'a> {
    r#type: &'static str,
    room: &'a str,
    id: &'a str,
}

/// `{"type":"joined","room","id"}`: `id` joined `room`.
pub fn joined(room: &str, id: &str) -> Frame {
    text(&Membership {
        r#type: "joined",
        room,
        id,
    })
}

/// `{"type":"left","room","id"}`: `id` left `room` (or went offline).
pub fn left(room: &str, id: &str) -> Frame {
    text(&Membership {
        r#type: "left",
        room,
        id,
    })
}

/// `{"type":"room","room","from","data"}`: a message to a room.
pub fn room(room: &str, from: &str, data: &RawValue) -> Frame {
    #[derive(Serialize)]
    struct RoomMessage<'a> {
        r#type: &'static str,
        room: &'a str,
        from: &'a str,
        data: &'a RawValue,
    }
    text(&RoomMessage {
        r#type: "room",
        room,
        from,
        data,
    })
}

/// `{"type":"broadcast"|"notice","from","data"}`.
#[derive(Serialize)]
struct FromData<'a> {
    r#type: &'static str,
    from: &'a str,
    data: &'a RawValue,
}

/// `{"type":"broadcast","from","data"}`: a message to everyone online.
pub fn broadcast(from: &str, data: &RawValue) -> Frame {
    text(&FromData {
        r#type: "broadcast",
        from,
        data,
    })
}

/// `{"type":"notice","from","data"}`: a message to one connection.
pub fn notice(from: &str, data: &RawValue) -> Frame {
    text(&FromData {
        r#type: "notice",
        from,
        data,
    })
}

/// `{"type":"pong"}`.
pub fn pong() -> Frame {
    Frame::Text(PONG.to_owned())
}

/// `{"type":"ack","ref"}`: the success answer to a request with a `ref`.
pub fn ack(reference: &RawValue) -> Frame {
    #[derive(Serialize)]
    struct Ack<'a> {
        r#type: &'static str,
        r#ref: &'a RawValue,
    }
    text(&Ack {
        r#type: "ack",
        r#ref: reference,
    })
}

/// `{"type":"error","ref"?,"code","message"}`: the failure answer; `ref` is
/// left out when the request had none (or had an unusable one).
pub fn error(reference: Option<&RawValue>, code: ErrorCode, message: &str) -> Frame {
    error_with_code(reference, code.as_str(), message)
}

/// [`error`] with a code of the caller's own (a policy's extra refusals, e.g.
/// `rate-limited`), in the same shape: `{"type":"error","ref"?,"code","message"}`.
pub fn error_with_code(reference: Option<&RawValue>, code: &str, message: &str) -> Frame {
    #[derive(Serialize)]
    struct Error<'a> {
        r#type: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        r#ref: Option<&'a RawValue>,
        code: &'a str,
        message: &'a str,
    }
    text(&Error {
        r#type: "error",
        r#ref: reference,
        code,
        message,
    })
}
