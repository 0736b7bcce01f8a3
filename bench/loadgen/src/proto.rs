//! How the client speaks to a peer: protocol v1 (raw JSON, docs/PROTOCOL.md)
//! or Socket.IO 4 (Engine.IO v4 over a raw WebSocket). Encoding builds the
//! few requests the scenarios send; decoding only classifies a frame and pulls
//! out the fields the scenarios need, without a full JSON parse (the client
//! runs on one core and must not become the bottleneck).

use clap::ValueEnum;

/// The wire protocol of a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// Protocol v1: `/ws/<id>`, JSON text frames `{"type":…}`.
    V1,
    /// Socket.IO 4: `/socket.io/?EIO=4&transport=websocket&id=<id>`,
    /// events `42["name",payload]`, acks `42<n>[…]` → `43<n>[…]`.
    Socketio,
}

/// What a frame from the server is, as far as the scenarios care.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `welcome`: the connection is ready.
    Welcome,
    /// Someone joined a room.
    Joined,
    /// Someone left a room.
    Left,
    /// A room message; the send timestamp in its data, if any.
    Room(Option<u64>),
    /// A broadcast.
    Broadcast,
    /// A private notice; the send timestamp in its data, if any.
    Notice(Option<u64>),
    /// Answer to an application ping.
    Pong,
    /// A request with this ref succeeded.
    Ack(u64),
    /// A request failed (with its ref, if it had one).
    Error { code: &'a str },
    /// Engine.IO ping ("2"): must be answered with "3".
    EioPing,
    /// Engine.IO open packet ("0{…}"): answer "40" to join the namespace.
    EioOpen,
    /// Socket.IO namespace connected ("40{…}").
    SioConnect,
    /// Socket.IO refused the namespace connection ("44{…}") or disconnected us ("41").
    SioRefused,
    /// Anything else.
    Other,
}

impl Protocol {
    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V1 => "v1",
            Protocol::Socketio => "socketio",
        }
    }

    /// The request path (and query) that connects as `id`.
    pub fn path(self, id: &str) -> String {
        match self {
            Protocol::V1 => format!("/ws/{id}"),
            Protocol::Socketio => format!("/socket.io/?EIO=4&transport=websocket&id={id}"),
        }
    }

    /// Join `room`, asking for an ack with `r`.
    pub fn join(self, room: &str, r: u64) -> String {
        match self {
            Protocol::V1 => format!(r#"{{"type":"join","room":"{room}","ref":{r}}}"#),
            Protocol::Socketio => format!(r#"42{r}["join",{{"room":"{room}"}}]"#),
        }
    }

    /// A room message carrying `data` (raw JSON), no ref.
    pub fn room(self, room: &str, data: &str) -> String {
        match self {
            Protocol::V1 => format!(r#"{{"type":"room","room":"{room}","data":{data}}}"#),
            Protocol::Socketio => format!(r#"42["room",{{"room":"{room}","data":{data}}}]"#),
        }
    }

    /// A private notice to `to` carrying `data` (raw JSON), no ref.
    pub fn notice(self, to: &str, data: &str) -> String {
        match self {
            Protocol::V1 => format!(r#"{{"type":"notice","to":"{to}","data":{data}}}"#),
            Protocol::Socketio => format!(r#"42["notice",{{"to":"{to}","data":{data}}}]"#),
        }
    }

    /// Classify one text frame from the server.
    pub fn classify(self, text: &str) -> Kind<'_> {
        match self {
            Protocol::V1 => classify_v1(text),
            Protocol::Socketio => classify_sio(text),
        }
    }
}

fn classify_v1(text: &str) -> Kind<'_> {
    let Some(ty) = string_field(text, "\"type\":\"") else {
        return Kind::Other;
    };
    match ty {
        "room" => Kind::Room(timestamp(text)),
        "joined" => Kind::Joined,
        "left" => Kind::Left,
        "notice" => Kind::Notice(timestamp(text)),
        "broadcast" => Kind::Broadcast,
        "ack" => match number_field(text, "\"ref\":") {
            Some(r) => Kind::Ack(r),
            None => Kind::Other,
        },
        "error" => Kind::Error {
            code: string_field(text, "\"code\":\"").unwrap_or("?"),
        },
        "welcome" => Kind::Welcome,
        "pong" => Kind::Pong,
        _ => Kind::Other,
    }
}

fn classify_sio(text: &str) -> Kind<'_> {
    let b = text.as_bytes();
    match b.first() {
        Some(b'2') if b.len() == 1 => return Kind::EioPing,
        Some(b'0') => return Kind::EioOpen,
        Some(b'4') => {}
        _ => return Kind::Other,
    }
    match b.get(1) {
        Some(b'0') => Kind::SioConnect,
        Some(b'1') | Some(b'4') => Kind::SioRefused,
        Some(b'2') => {
            // 42["name",{…}]
            let Some(name) = string_field(text, "[\"") else {
                return Kind::Other;
            };
            match name {
                "room" => Kind::Room(timestamp(text)),
                "joined" => Kind::Joined,
                "left" => Kind::Left,
                "notice" => Kind::Notice(timestamp(text)),
                "broadcast" => Kind::Broadcast,
                "welcome" => Kind::Welcome,
                "pong" => Kind::Pong,
                "error" => Kind::Error {
                    code: string_field(text, "\"code\":\"").unwrap_or("?"),
                },
                _ => Kind::Other,
            }
        }
        Some(b'3') => {
            // 43<id>[{"ok":true}] or 43<id>[{"error":{"code":…}}]
            let digits: &str = {
                let rest = &text[2..];
                let end = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                &rest[..end]
            };
            if text.contains("\"error\"") {
                Kind::Error {
                    code: string_field(text, "\"code\":\"").unwrap_or("?"),
                }
            } else {
                match digits.parse() {
                    Ok(r) => Kind::Ack(r),
                    Err(_) => Kind::Other,
                }
            }
        }
        _ => Kind::Other,
    }
}

/// The string value right after `key` (which ends with the opening quote).
fn string_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// The unsigned integer right after `key`.
fn number_field(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let rest = &text.as_bytes()[start..];
    let mut v: u64 = 0;
    let mut n = 0;
    for &c in rest {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        n += 1;
    }
    (n > 0).then_some(v)
}

/// The send timestamp `"t":<ns>` the scenarios put first in `data`.
pub fn timestamp(text: &str) -> Option<u64> {
    number_field(text, "{\"t\":")
}

/// The `data` the scenarios send: a timestamp and padding.
pub fn data(t: u64, pad: &str) -> String {
    format!(r#"{{"t":{t},"pad":"{pad}"}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_frames() {
        let p = Protocol::V1;
        assert_eq!(p.classify(r#"{"type":"welcome","id":"a"}"#), Kind::Welcome);
        assert_eq!(
            p.classify(r#"{"type":"room","room":"r","from":"a","data":{"t":42,"pad":"x"}}"#),
            Kind::Room(Some(42))
        );
        assert_eq!(p.classify(r#"{"type":"ack","ref":17}"#), Kind::Ack(17));
        assert_eq!(
            p.classify(r#"{"type":"error","code":"target-closed","message":"m"}"#),
            Kind::Error {
                code: "target-closed"
            }
        );
        assert_eq!(
            p.classify(r#"{"type":"notice","from":"a","data":{"t":7,"pad":""}}"#),
            Kind::Notice(Some(7))
        );
    }

    #[test]
    fn sio_frames() {
        let p = Protocol::Socketio;
        assert_eq!(p.classify("2"), Kind::EioPing);
        assert_eq!(
            p.classify(r#"0{"sid":"x","pingInterval":25000}"#),
            Kind::EioOpen
        );
        assert_eq!(p.classify(r#"40{"sid":"y"}"#), Kind::SioConnect);
        assert_eq!(p.classify(r#"42["welcome",{"id":"a"}]"#), Kind::Welcome);
        assert_eq!(
            p.classify(r#"42["room",{"room":"r","from":"a","data":{"t":5,"pad":""}}]"#),
            Kind::Room(Some(5))
        );
        assert_eq!(p.classify(r#"4312[{"ok":true}]"#), Kind::Ack(12));
        assert_eq!(
            p.classify(r#"433[{"error":{"code":"not-in-room","message":"m"}}]"#),
            Kind::Error {
                code: "not-in-room"
            }
        );
        assert_eq!(p.join("r", 3), r#"423["join",{"room":"r"}]"#);
    }
}
