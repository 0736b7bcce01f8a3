//! The frames the host writes itself, in protocol v1's JSON: the errors it
//! answers for the policy (a call that failed, a client over a limit) and
//! the `left` notices of a member that went offline. A request's `ref` is
//! echoed exactly as sent, so a request still gets exactly one answer.

use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

use crate::policy::CallError;

/// Error codes the host answers with.
pub mod code {
    /// The policy call trapped, ran out of time or answered over a limit.
    pub const POLICY_FAILED: &str = "policy-failed";
    /// The connection sent frames (or caused broadcasts) faster than allowed.
    pub const RATE_LIMITED: &str = "rate-limited";
    /// A `join` would put the id in more rooms than allowed.
    pub const TOO_MANY_ROOMS: &str = "too-many-rooms";
    /// A notice's `to` is not an id (nothing was sent or stored).
    pub const BAD_REQUEST: &str = "bad-request";
    /// A notice was not stored: the sender has as many stored as its quota
    /// allows (per sender, or per sender and recipient).
    pub const STORE_QUOTA: &str = "store-quota";
    /// Cluster mode: the shared store (Redis) could not keep what was
    /// asked in time; nothing was done.
    pub const UNAVAILABLE: &str = "unavailable";
}

/// `{"type":"error","ref","code","message"[,"retry_after_ms"]}` answering
/// `request` (the client's text frame, if it was one).
pub fn error(
    request: Option<&str>,
    code: &'static str,
    message: &str,
    retry_after: Option<Duration>,
) -> Message {
    #[derive(Serialize)]
    struct Error<'a> {
        r#type: &'static str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        r#ref: Option<&'a RawValue>,
        code: &'static str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    }
    let body = Error {
        r#type: "error",
        r#ref: request.and_then(reference),
        code,
        message,
        // Rounded up: a client that waits this long is let through.
        retry_after_ms: retry_after.map(|d| d.as_micros().div_ceil(1000).max(1) as u64),
    };
    let text = serde_json::to_string(&body).unwrap_or_else(|_| {
        format!(r#"{{"type":"error","code":"{code}","message":"request refused"}}"#)
    });
    Message::Text(text.into())
}

/// The host's answer when a policy call fails.
pub fn policy_failed(request: Option<&str>, err: &CallError) -> Message {
    error(request, code::POLICY_FAILED, &err.to_string(), None)
}

/// `{"type":"left","room","id"}`: `id` is no longer a member of `room`.
pub fn left(room: &str, id: &str) -> Message {
    #[derive(Serialize)]
    struct Left<'a> {
        r#type: &'static str,
        room: &'a str,
        id: &'a str,
    }
    let body = Left {
        r#type: "left",
        room,
        id,
    };
    // Rooms and ids are strings: serialising them cannot fail.
    Message::Text(serde_json::to_string(&body).unwrap_or_default().into())
}

/// The `ref` of a request that is a JSON object carrying a string or
/// number one (anything else is not a `ref` protocol v1 echoes).
fn reference(text: &str) -> Option<&RawValue> {
    #[derive(serde::Deserialize)]
    struct RefOnly<'a> {
        #[serde(rename = "ref", borrow)]
        r#ref: Option<&'a RawValue>,
    }
    serde_json::from_str::<RefOnly<'_>>(text)
        .ok()?
        .r#ref
        .filter(|raw| {
            matches!(
                raw.get().as_bytes().first(),
                Some(b'"' | b'-' | b'0'..=b'9')
            )
        })
}

/// `{"type":"epoch","room":R,"epoch":E}`: `room`'s history started again
/// under epoch `epoch` (a cluster's Redis lost its data); the room frames
/// after it count their offsets from 1 in it.
pub fn new_epoch(room: &str, epoch: &str) -> Message {
    let body = serde_json::json!({ "type": "epoch", "room": room, "epoch": epoch });
    Message::Text(body.to_string().into())
}

/// `{"type":"notices-dropped","count":N}`: before a client's stored
/// notices, how many were dropped (the oldest) because it had too many.
pub fn notices_dropped(count: u64) -> Message {
    Message::Text(format!(r#"{{"type":"notices-dropped","count":{count}}}"#).into())
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
    fn rate_limited_says_when_to_retry() {
        let m = text(error(
            Some(r#"{"type":"ping","ref":7}"#),
            code::RATE_LIMITED,
            "slow down",
            Some(Duration::from_micros(20_500)),
        ));
        let v: serde_json::Value = serde_json::from_str(&m).unwrap();
        assert_eq!(v["ref"], 7);
        assert_eq!(v["code"], "rate-limited");
        assert_eq!(v["retry_after_ms"], 21);
    }

    #[test]
    fn left_is_protocol_v1() {
        let v: serde_json::Value = serde_json::from_str(&text(left("r\"1", "a"))).unwrap();
        assert_eq!(v, serde_json::json!({"type":"left","room":"r\"1","id":"a"}));
    }
}
