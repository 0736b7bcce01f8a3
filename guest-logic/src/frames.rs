//! The JSON frames the server sends (protocol v1), written piece by piece
//! (compact, keys in a fixed order, as `serde_json::to_string` would write
//! them): a client's `data` and `ref` are `&RawValue`s, written out byte for
//! byte, never parsed into a `Value` and re-serialised.

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

/// A frame written piece by piece. The frames are small objects with fixed
/// keys, so writing them directly is cheaper than `serde_json::to_string` of a
/// struct (which escapes every key and value byte by byte; in the sandbox that
/// was a tenth of a notice's cost), and gives the same bytes.
struct Writer(String);

impl Writer {
    /// A frame beginning with `head` (constant JSON), room for `more` bytes.
    fn new(head: &'static str, more: usize) -> Self {
        let mut out = String::with_capacity(head.len() + more + 16);
        out.push_str(head);
        Writer(out)
    }

    /// Constant JSON: keys, punctuation.
    fn raw(mut self, json: &str) -> Self {
        self.0.push_str(json);
        self
    }

    /// `s` as a JSON string.
    fn str(mut self, s: &str) -> Self {
        push_json_str(&mut self.0, s);
        self
    }

    fn end(mut self) -> Frame {
        self.0.push('}');
        Frame::Text(self.0)
    }
}

/// Append `s` as a JSON string. Ids, room names and codes almost never need
/// escaping, so they are checked and copied; anything else is escaped by
/// serde_json exactly as before (control characters, `"` and `\` only).
fn push_json_str(out: &mut String, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // Serialising a string cannot fail; an empty string beats a trap.
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned()));
    }
}

/// Whether `s` has a byte JSON must escape: a control character, `"` or
/// `\`. Eight bytes at a time (a byte loop was a sixth of the rules' time
/// in the sandbox); a match may be a false alarm, never a miss, and a false
/// alarm only takes the slow path, which escapes exactly.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    /// A high bit in each byte of `x` below `n` (exact for the lowest such
    /// byte; bytes of 0x80 and above never match).
    fn below(x: u64, n: u8) -> u64 {
        x.wrapping_sub(ONES * n as u64) & !x & HIGH
    }
    let mut chunks = s.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word);
        let hits = below(x, 0x20)
            | below(x ^ (ONES * b'"' as u64), 1)
            | below(x ^ (ONES * b'\\' as u64), 1);
        if hits != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// `{"type":"welcome","id","resumed"}`: the first frame of every
/// connection. `resumed` says whether this connection took over a held
/// session. The host adds the `session` (what a reconnect passes as
/// `?resume=`): the rules never see it.
pub fn welcome(id: &str, resumed: bool) -> Frame {
    Writer::new(r#"{"type":"welcome","id":"#, id.len() + 32)
        .str(id)
        .raw(if resumed {
            r#","resumed":true"#
        } else {
            r#","resumed":false"#
        })
        .end()
}

/// `{"type":"joined","room","id"}`: `id` joined `room`.
pub fn joined(room: &str, id: &str) -> Frame {
    membership(r#"{"type":"joined","room":"#, room, id)
}

/// `{"type":"left","room","id"}`: `id` left `room` (or went offline).
pub fn left(room: &str, id: &str) -> Frame {
    membership(r#"{"type":"left","room":"#, room, id)
}

/// `{"type":"joined"|"left","room","id"}`.
fn membership(head: &'static str, room: &str, id: &str) -> Frame {
    Writer::new(head, room.len() + id.len())
        .str(room)
        .raw(r#","id":"#)
        .str(id)
        .end()
}

/// `{"type":"room","room","from","data"}`: a message to a room.
pub fn room(room: &str, from: &str, data: &RawValue) -> Frame {
    let data = data.get();
    Writer::new(
        r#"{"type":"room","room":"#,
        room.len() + from.len() + data.len(),
    )
    .str(room)
    .raw(r#","from":"#)
    .str(from)
    .raw(r#","data":"#)
    .raw(data)
    .end()
}

/// `{"type":"broadcast"|"notice","from","data"}`.
fn from_data(head: &'static str, from: &str, data: &RawValue) -> Frame {
    let data = data.get();
    Writer::new(head, from.len() + data.len())
        .str(from)
        .raw(r#","data":"#)
        .raw(data)
        .end()
}

/// `{"type":"broadcast","from","data"}`: a message to everyone online.
pub fn broadcast(from: &str, data: &RawValue) -> Frame {
    from_data(r#"{"type":"broadcast","from":"#, from, data)
}

/// `{"type":"notice","from","data"}`: a message to one connection.
pub fn notice(from: &str, data: &RawValue) -> Frame {
    from_data(r#"{"type":"notice","from":"#, from, data)
}

/// `{"type":"members","room","ids","count","ref"?}`: who is in `room`
/// (`ids` may be fewer than `count`: a long list is cut).
pub fn members(room: &str, ids: &[String], count: u32, reference: Option<&RawValue>) -> Frame {
    let reference = reference.map(RawValue::get);
    let listed: usize = ids.iter().map(|id| id.len() + 3).sum();
    let mut out = Writer::new(
        r#"{"type":"members","room":"#,
        room.len() + listed + reference.map_or(0, str::len) + 32,
    )
    .str(room)
    .raw(r#","ids":"#);
    out = string_array(out, ids.iter().map(String::as_str));
    out = out.raw(r#","count":"#).raw(&count.to_string());
    with_ref(out, reference).end()
}

/// `{"type":"online","ids","ref"?}`: which of the ids asked about are online.
pub fn online(ids: &[&str], reference: Option<&RawValue>) -> Frame {
    let reference = reference.map(RawValue::get);
    let listed: usize = ids.iter().map(|id| id.len() + 3).sum();
    let out = Writer::new(
        r#"{"type":"online","ids":"#,
        listed + reference.map_or(0, str::len) + 16,
    );
    with_ref(string_array(out, ids.iter().copied()), reference).end()
}

/// `["a","b"]`.
fn string_array<'s>(mut out: Writer, items: impl Iterator<Item = &'s str>) -> Writer {
    out = out.raw("[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out = out.raw(",");
        }
        out = out.str(item);
    }
    out.raw("]")
}

/// `,"ref":…` when the request had one.
fn with_ref(out: Writer, reference: Option<&str>) -> Writer {
    match reference {
        Some(reference) => out.raw(r#","ref":"#).raw(reference),
        None => out,
    }
}

/// `{"type":"pong"}`.
pub fn pong() -> Frame {
    Frame::Text(PONG.to_owned())
}

/// `{"type":"ack","ref"}`: the success answer to a request with a `ref`.
pub fn ack(reference: &RawValue) -> Frame {
    let reference = reference.get();
    Writer::new(r#"{"type":"ack","ref":"#, reference.len())
        .raw(reference)
        .end()
}

/// `{"type":"ack","ref",<flag>:true}`: an ack that says how a notice was
/// taken (`stored`, `held`).
pub fn ack_flag(reference: &RawValue, flag: &'static str) -> Frame {
    let reference = reference.get();
    Writer::new(r#"{"type":"ack","ref":"#, reference.len() + flag.len() + 10)
        .raw(reference)
        .raw(",\"")
        .raw(flag)
        .raw("\":true")
        .end()
}

/// `{"type":"history","room","epoch","messages":[…],"ref"?}`: kept room
/// frames (JSON objects, written as they are), oldest first.
pub fn history(
    room: &str,
    epoch: &str,
    messages: &[String],
    reference: Option<&RawValue>,
) -> Frame {
    let reference = reference.map(RawValue::get);
    let listed: usize = messages.iter().map(|m| m.len() + 1).sum();
    let mut out = Writer::new(
        r#"{"type":"history","room":"#,
        room.len() + epoch.len() + listed + reference.map_or(0, str::len) + 40,
    )
    .str(room)
    .raw(r#","epoch":"#)
    .str(epoch)
    .raw(r#","messages":["#);
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out = out.raw(",");
        }
        out = out.raw(m);
    }
    with_ref(out.raw("]"), reference).end()
}

/// `{"type":"error","ref"?,"code","message"}`: the failure answer; `ref` is
/// left out when the request had none (or had an unusable one).
pub fn error(reference: Option<&RawValue>, code: ErrorCode, message: &str) -> Frame {
    error_with_code(reference, code.as_str(), message)
}

/// [`error`] with a code of the caller's own (a policy's extra refusals, e.g.
/// `rate-limited`), in the same shape: `{"type":"error","ref"?,"code","message"}`.
pub fn error_with_code(reference: Option<&RawValue>, code: &str, message: &str) -> Frame {
    let reference = reference.map(RawValue::get);
    let out = Writer::new(
        r#"{"type":"error""#,
        reference.map_or(0, str::len) + code.len() + message.len() + 24,
    );
    with_ref(out, reference)
        .raw(r#","code":"#)
        .str(code)
        .raw(r#","message":"#)
        .str(message)
        .end()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the frames were before they were written by hand: one
    /// `serde_json::to_string` of a struct.
    fn serde(fields: &[(&str, serde_json::Value)]) -> String {
        let map: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        serde_json::to_string(&map).expect("a map serialises")
    }

    fn text(f: Frame) -> String {
        match f {
            Frame::Text(t) => t,
            Frame::Binary(_) => panic!("a text frame"),
        }
    }

    #[test]
    fn needs_escape_never_misses() {
        let exact = |s: &[u8]| s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
        // Every byte at every position of a 17-byte string, among harmless
        // and high bytes (a miss would put raw control bytes in a frame).
        for fill in [b'a', 0x7f, 0x80, 0xff, b'!', b'#', b']'] {
            for pos in 0..17 {
                for b in 0..=255u8 {
                    let mut s = vec![fill; 17];
                    s[pos] = b;
                    if exact(&s) {
                        assert!(needs_escape(&s), "missed {b:#x} at {pos} among {fill:#x}");
                    }
                }
            }
        }
        assert!(!needs_escape(b"alice.smith-01_x"));
        assert!(!needs_escape("café ☕ 🚀 ok".as_bytes()));
    }

    #[test]
    fn written_frames_are_byte_for_byte_what_serde_json_writes() {
        let strings = [
            "",
            "alice",
            "café ☕ 🚀",
            "quote \" and \\ backslash",
            "tab\tnewline\ncontrol\u{1}\u{1f} del\u{7f}",
            "</script>",
            "\u{2028}\u{2029}",
        ];
        let data = RawValue::from_string(r#"{"t":1,"x":[null,"\u00e9"]}"#.into()).unwrap();
        let data_value: serde_json::Value = serde_json::from_str(data.get()).unwrap();
        for s in strings {
            let v = || serde_json::Value::String(s.into());
            // serde_json's Map keeps keys sorted unless preserve_order is on,
            // so compare parsed values and the escaping of `s` separately.
            let pairs: [(Frame, Vec<(&str, serde_json::Value)>); 5] = [
                (
                    welcome(s, true),
                    vec![
                        ("type", "welcome".into()),
                        ("id", v()),
                        ("resumed", true.into()),
                    ],
                ),
                (
                    joined(s, s),
                    vec![("type", "joined".into()), ("room", v()), ("id", v())],
                ),
                (
                    room(s, s, &data),
                    vec![
                        ("type", "room".into()),
                        ("room", v()),
                        ("from", v()),
                        ("data", data_value.clone()),
                    ],
                ),
                (
                    notice(s, &data),
                    vec![
                        ("type", "notice".into()),
                        ("from", v()),
                        ("data", data_value.clone()),
                    ],
                ),
                (
                    error_with_code(Some(&data), s, s),
                    vec![
                        ("type", "error".into()),
                        ("ref", data_value.clone()),
                        ("code", v()),
                        ("message", v()),
                    ],
                ),
            ];
            for (frame, fields) in pairs {
                let written = text(frame);
                let parsed: serde_json::Value = serde_json::from_str(&written).expect("valid JSON");
                assert_eq!(
                    serde_json::to_string(&parsed).unwrap(),
                    serde(&fields),
                    "{written}"
                );
                // The same escaping as serde_json, in the order of the fields.
                let escaped = serde_json::to_string(s).unwrap();
                assert!(written.contains(&escaped), "{written} lacks {escaped}");
            }
        }
        assert_eq!(
            text(error(None, ErrorCode::BadJson, "m")),
            r#"{"type":"error","code":"bad-json","message":"m"}"#
        );
    }
}
