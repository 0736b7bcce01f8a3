//! Reading a client's request (protocol v1) in one pass over the text,
//! borrowing from it: the known fields are captured as `&RawValue` (a slice of
//! the frame), unknown fields are skipped, and each field is then checked on
//! its own so an error can name it. `data` and `ref` are never parsed further.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::action::Position;
use crate::frames::ErrorCode;

/// Longest room name, in characters.
pub const MAX_ROOM_CHARS: usize = 64;

/// The fields protocol v1 knows, as raw JSON slices of the frame. A field
/// given twice keeps its last value (as JavaScript's `JSON.parse` does).
#[derive(Debug, Default)]
pub struct Fields<'a> {
    /// `type`: which request (must be a string).
    pub r#type: Option<&'a RawValue>,
    /// `ref`: echoed back in the answer (must be a string or a number).
    pub r#ref: Option<&'a RawValue>,
    /// `room`: for join, leave, room.
    pub room: Option<&'a RawValue>,
    /// `to`: for notice.
    pub to: Option<&'a RawValue>,
    /// `data`: for room, broadcast, notice; any JSON value.
    pub data: Option<&'a RawValue>,
    /// `ids`: for online; an array of strings.
    pub ids: Option<&'a RawValue>,
    /// `since`: for join; `{"epoch": string, "offset": number}`.
    pub since: Option<&'a RawValue>,
    /// `store`: for notice; a boolean.
    pub store: Option<&'a RawValue>,
    /// `limit`: for history; a number.
    pub limit: Option<&'a RawValue>,
    /// `before`: for history; an offset.
    pub before: Option<&'a RawValue>,
}

/// Why a request is refused: the error code and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Sent as `code`.
    pub code: ErrorCode,
    /// Sent as `message`.
    pub message: Cow<'static, str>,
}

impl Refusal {
    /// A refusal with a fixed message.
    pub const fn fixed(code: ErrorCode, message: &'static str) -> Self {
        Refusal {
            code,
            message: Cow::Borrowed(message),
        }
    }

    /// A refusal with a built message.
    pub fn new(code: ErrorCode, message: String) -> Self {
        Refusal {
            code,
            message: Cow::Owned(message),
        }
    }
}

/// The requests of protocol v1, and v2's presence requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Join,
    Leave,
    Room,
    Broadcast,
    Notice,
    Ping,
    /// Who is in a room (members only).
    Members,
    /// Which of some ids are online.
    Online,
    /// A room's kept messages (members only).
    History,
}

impl Kind {
    /// The request named by `type`, if any.
    pub fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "join" => Kind::Join,
            "leave" => Kind::Leave,
            "room" => Kind::Room,
            "broadcast" => Kind::Broadcast,
            "notice" => Kind::Notice,
            "ping" => Kind::Ping,
            "members" => Kind::Members,
            "online" => Kind::Online,
            "history" => Kind::History,
            _ => return None,
        })
    }
}

/// A well-formed request of a known type: what a policy layered on the
/// default rules looks at before deciding whether to handle the request
/// itself (see [`peek`]).
#[derive(Debug)]
pub struct Parsed<'a> {
    /// Which request.
    pub kind: Kind,
    /// Its `ref` (a string or a number), to echo in an answer.
    pub reference: Option<&'a RawValue>,
    /// All its fields, to read with [`room`], [`to`] and [`data`].
    pub fields: Fields<'a>,
}

/// Read a text frame as far as its type and `ref`: `None` when it is not
/// JSON, not an object, has an unusable `ref` or an unknown or missing
/// `type`, all of which the default rules refuse with the right error, so a
/// policy can hand those frames to them unchanged.
pub fn peek(text: &str) -> Option<Parsed<'_>> {
    let fields = parse(text).ok()?;
    let reference = reference(&fields).ok()?;
    let kind = kind(&fields).ok()?;
    Some(Parsed {
        kind,
        reference,
        fields,
    })
}

/// Parse a text frame into its fields. Anything but a JSON object is
/// `bad-json`, with a message saying what was wrong.
pub fn parse(text: &str) -> Result<Fields<'_>, Refusal> {
    serde_json::from_str::<Fields<'_>>(text).map_err(|e| bad_json(text, &e))
}

/// The `bad-json` refusal for a text that did not parse as an object.
fn bad_json(text: &str, err: &serde_json::Error) -> Refusal {
    // `Fields` fails on bad syntax, or at the first byte of a top-level value
    // that is not an object; parse the whole text again to say which (only
    // on the error path).
    match serde_json::from_str::<IgnoredAny>(text) {
        Err(syntax) => Refusal::new(ErrorCode::BadJson, format!("invalid JSON: {syntax}")),
        Ok(_) => {
            let what = match text.trim_start().as_bytes().first() {
                Some(b'[') => "an array",
                Some(b'"') => "a string",
                Some(b't' | b'f') => "a boolean",
                Some(b'n') => "null",
                Some(b'-' | b'0'..=b'9') => "a number",
                // Unreachable for valid JSON that `Fields` refused.
                _ => return Refusal::new(ErrorCode::BadJson, format!("invalid JSON: {err}")),
            };
            Refusal::new(
                ErrorCode::BadJson,
                format!("expected a JSON object, got {what}"),
            )
        }
    }
}

/// `ref`, if present and usable. A `ref` that is neither a string nor a
/// number is refused, and that refusal cannot echo it.
pub fn reference<'a>(fields: &Fields<'a>) -> Result<Option<&'a RawValue>, Refusal> {
    match fields.r#ref {
        None => Ok(None),
        Some(raw) => match raw.get().as_bytes().first() {
            Some(b'"' | b'-' | b'0'..=b'9') => Ok(Some(raw)),
            _ => Err(Refusal::fixed(
                ErrorCode::BadRequest,
                "field `ref` must be a string or a number",
            )),
        },
    }
}

/// The request named by `type`.
pub fn kind(fields: &Fields<'_>) -> Result<Kind, Refusal> {
    let raw = fields.r#type.ok_or(Refusal::fixed(
        ErrorCode::BadRequest,
        "missing field `type`",
    ))?;
    let name = json_str(raw).ok_or(Refusal::fixed(
        ErrorCode::BadRequest,
        "field `type` must be a string",
    ))?;
    Kind::from_name(&name).ok_or_else(|| {
        Refusal::new(
            ErrorCode::UnknownType,
            format!(
                "unknown type `{}`: expected join, leave, room, broadcast, notice, ping, members, online or history",
                shorten(&name)
            ),
        )
    })
}

/// `room`: a string of 1-64 characters without control characters.
pub fn room<'a>(fields: &Fields<'a>) -> Result<Cow<'a, str>, Refusal> {
    const BAD: Refusal = Refusal::fixed(
        ErrorCode::BadRequest,
        "field `room` must be a string of 1-64 characters",
    );
    let raw = fields.room.ok_or(Refusal::fixed(
        ErrorCode::BadRequest,
        "missing field `room`",
    ))?;
    let room = json_str(raw).ok_or(BAD)?;
    // Bytes bound characters from above, so most names skip the count.
    if room.is_empty() || (room.len() > MAX_ROOM_CHARS && room.chars().count() > MAX_ROOM_CHARS) {
        return Err(BAD);
    }
    if room.chars().any(char::is_control) {
        return Err(Refusal::fixed(
            ErrorCode::BadRequest,
            "field `room` must not contain control characters",
        ));
    }
    Ok(room)
}

/// `to`: an id, by the same rule as the URL's (1-64 characters of
/// `A-Z a-z 0-9 _ . -`): anything else could never be online, and a
/// stored notice under a made-up key would only hold the server's memory.
pub fn to<'a>(fields: &Fields<'a>) -> Result<Cow<'a, str>, Refusal> {
    let raw = fields
        .to
        .ok_or(Refusal::fixed(ErrorCode::BadRequest, "missing field `to`"))?;
    let to = json_str(raw).ok_or(Refusal::fixed(
        ErrorCode::BadRequest,
        "field `to` must be a string",
    ))?;
    let valid = (1..=64).contains(&to.len())
        && to
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !valid {
        return Err(Refusal::fixed(
            ErrorCode::BadRequest,
            "field `to` must be an id: 1-64 characters of A-Z a-z 0-9 _ . -",
        ));
    }
    Ok(to)
}

/// `data`: any JSON value (`null` too), but present.
pub fn data<'a>(fields: &Fields<'a>) -> Result<&'a RawValue, Refusal> {
    fields.data.ok_or(Refusal::fixed(
        ErrorCode::BadRequest,
        "missing field `data` (any JSON value, null allowed)",
    ))
}

/// `since`: `{"epoch": string, "offset": non-negative integer}`, if given.
pub fn since(fields: &Fields<'_>) -> Result<Option<Position>, Refusal> {
    const BAD: Refusal = Refusal::fixed(
        ErrorCode::BadRequest,
        "field `since` must be {\"epoch\": string, \"offset\": non-negative integer}",
    );
    #[derive(Deserialize)]
    struct Since<'a> {
        #[serde(borrow)]
        epoch: Cow<'a, str>,
        offset: u64,
    }
    let Some(raw) = fields.since else {
        return Ok(None);
    };
    let since: Since<'_> = serde_json::from_str(raw.get()).map_err(|_| BAD)?;
    Ok(Some(Position {
        epoch: since.epoch.into_owned(),
        offset: since.offset,
    }))
}

/// `store`: a boolean, false when absent.
pub fn store(fields: &Fields<'_>) -> Result<bool, Refusal> {
    match fields.store.map(RawValue::get) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(Refusal::fixed(
            ErrorCode::BadRequest,
            "field `store` must be true or false",
        )),
    }
}

/// Most messages one `history` answer holds; also the default `limit`.
pub const MAX_HISTORY_LIMIT: u32 = 100;

/// `limit`: a positive integer, at most [`MAX_HISTORY_LIMIT`] (more is
/// taken as that many: page back with `before` for older ones);
/// [`MAX_HISTORY_LIMIT`] when absent.
pub fn limit(fields: &Fields<'_>) -> Result<u32, Refusal> {
    let Some(raw) = fields.limit else {
        return Ok(MAX_HISTORY_LIMIT);
    };
    match serde_json::from_str::<u64>(raw.get()) {
        Ok(n) if n >= 1 => Ok(n.min(u64::from(MAX_HISTORY_LIMIT)) as u32),
        _ => Err(Refusal::fixed(
            ErrorCode::BadRequest,
            "field `limit` must be a positive integer",
        )),
    }
}

/// `before`: an offset, if given.
pub fn before(fields: &Fields<'_>) -> Result<Option<u64>, Refusal> {
    let Some(raw) = fields.before else {
        return Ok(None);
    };
    serde_json::from_str::<u64>(raw.get())
        .map(Some)
        .map_err(|_| {
            Refusal::fixed(
                ErrorCode::BadRequest,
                "field `before` must be a non-negative integer (an offset)",
            )
        })
}

/// Most ids one `online` request may ask about.
pub const MAX_ONLINE_IDS: usize = 100;

/// `ids`: an array of at most [`MAX_ONLINE_IDS`] strings (any strings: one
/// that cannot be an id is simply never online). Repeated ids count once,
/// in the order first given.
pub fn ids<'a>(fields: &Fields<'a>) -> Result<Vec<Cow<'a, str>>, Refusal> {
    const BAD: Refusal = Refusal::fixed(
        ErrorCode::BadRequest,
        "field `ids` must be an array of at most 100 strings",
    );
    let raw = fields
        .ids
        .ok_or(Refusal::fixed(ErrorCode::BadRequest, "missing field `ids`"))?;
    let items: Vec<&'a RawValue> = serde_json::from_str(raw.get()).map_err(|_| BAD)?;
    if items.len() > MAX_ONLINE_IDS {
        return Err(BAD);
    }
    let mut ids: Vec<Cow<'a, str>> = Vec::with_capacity(items.len());
    for item in items {
        let id = json_str(item).ok_or(BAD)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The string a raw JSON value holds, or `None` if it is not a string.
/// Borrows from the frame unless the string has escapes to decode.
pub fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let s = raw.get();
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        // Valid JSON without escapes: the content is the text between quotes.
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<CowStr<'_>>(s).ok().map(|c| c.0)
}

/// At most 64 characters of a client's string, for error messages.
pub fn shorten(s: &str) -> &str {
    // A character takes at least a byte.
    if s.len() <= MAX_ROOM_CHARS {
        return s;
    }
    match s.char_indices().nth(MAX_ROOM_CHARS) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// A JSON string, borrowed when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The keys of a request, decoded (so `"\u0074ype"` is `type` too).
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Key {
    Type,
    Ref,
    Room,
    To,
    Data,
    Ids,
    Since,
    Store,
    Limit,
    Before,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A map visitor only: unlike a derived struct, this refuses arrays
        // and tolerates repeated keys.
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Fields::default();
                while let Some(key) = map.next_key::<Key>()? {
                    let slot = match key {
                        Key::Type => &mut fields.r#type,
                        Key::Ref => &mut fields.r#ref,
                        Key::Room => &mut fields.room,
                        Key::To => &mut fields.to,
                        Key::Data => &mut fields.data,
                        Key::Ids => &mut fields.ids,
                        Key::Since => &mut fields.since,
                        Key::Store => &mut fields.store,
                        Key::Limit => &mut fields.limit,
                        Key::Before => &mut fields.before,
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value::<&'de RawValue>()?);
                }
                Ok(fields)
            }
        }
        d.deserialize_map(V)
    }
}
