//! Connection ids: where they come from in the URL and what they may be.

use std::fmt;

pub use crate::chat::ids::{MAX_ID_LEN, is_valid, shown};

/// Why a request path does not name a usable id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The path is not `/ws`, `/ws/` or `/ws/<id>`: HTTP 404.
    #[error("no such endpoint: connect to /ws/<id> or /ws?id=<id>")]
    NotFound,
    /// `/ws` with no id anywhere: HTTP 400.
    #[error("missing id: connect to /ws/<id> or /ws?id=<id>")]
    Missing,
    /// An id of the wrong length or with a forbidden character: HTTP 400.
    #[error("invalid id {0:?}: an id is 1-64 characters of A-Z a-z 0-9 _ . -")]
    Invalid(String),
}

impl IdError {
    /// The HTTP status the handshake answers with.
    pub fn status(&self) -> u16 {
        match self {
            IdError::NotFound => 404,
            IdError::Missing | IdError::Invalid(_) => 400,
        }
    }
}

/// A validated connection id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnId(String);

impl ConnId {
    /// Validate `raw` as an id.
    pub fn parse(raw: &str) -> Result<ConnId, IdError> {
        if is_valid(raw) {
            Ok(ConnId(raw.to_owned()))
        } else {
            Err(IdError::Invalid(shown(raw)))
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id named by a request: `/ws/<id>` (percent-decoded) or `/ws?id=<id>`.
/// A path id wins over a query id.
pub fn from_request(path: &str, query: Option<&str>) -> Result<ConnId, IdError> {
    from_request_if_any(path, query)?.ok_or(IdError::Missing)
}

/// Like [`from_request`], but a request that names no id is `Ok(None)`
/// (with signed tokens, the token's `sub` is the id).
pub fn from_request_if_any(path: &str, query: Option<&str>) -> Result<Option<ConnId>, IdError> {
    let rest = path.strip_prefix("/ws").ok_or(IdError::NotFound)?;
    let from_path = match rest {
        "" | "/" => None,
        _ => {
            let raw = rest.strip_prefix('/').ok_or(IdError::NotFound)?;
            Some(percent_decode(raw).ok_or_else(|| IdError::Invalid(raw.to_owned()))?)
        }
    };
    let raw = match from_path {
        Some(id) => id,
        None => match query_param(query.unwrap_or(""), "id") {
            Some(id) => id,
            None => return Ok(None),
        },
    };
    if raw.is_empty() {
        return Ok(None);
    }
    ConnId::parse(&raw).map(Some)
}

/// The first value of `name` in a query string, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Percent-decoding; `None` if the result is not UTF-8. Malformed escapes are
/// kept as they are (and then fail validation on the `%`).
fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_query_ids() {
        assert_eq!(from_request("/ws/alice", None).unwrap().as_str(), "alice");
        assert_eq!(from_request("/ws", Some("id=bob")).unwrap().as_str(), "bob");
        assert_eq!(
            from_request("/ws/", Some("x=1&id=c.d-e_f"))
                .unwrap()
                .as_str(),
            "c.d-e_f"
        );
        assert_eq!(from_request("/ws/a%2Db", None).unwrap().as_str(), "a-b");
    }

    #[test]
    fn bad_ids() {
        assert_eq!(from_request("/ws", None), Err(IdError::Missing));
        assert_eq!(from_request("/ws/", None), Err(IdError::Missing));
        assert_eq!(from_request("/ws", Some("id=")), Err(IdError::Missing));
        assert!(matches!(
            from_request("/ws/a b", None),
            Err(IdError::Invalid(_))
        ));
        assert!(matches!(
            from_request("/ws/a%20b", None),
            Err(IdError::Invalid(_))
        ));
        assert!(matches!(
            from_request("/ws/a/b", None),
            Err(IdError::Invalid(_))
        ));
        assert!(matches!(
            from_request("/ws/%zz", None),
            Err(IdError::Invalid(_))
        ));
        let long = "x".repeat(65);
        assert!(matches!(
            from_request(&format!("/ws/{long}"), None),
            Err(IdError::Invalid(_))
        ));
        assert!(from_request(&format!("/ws/{}", "x".repeat(64)), None).is_ok());
        assert_eq!(from_request("/", None), Err(IdError::NotFound));
        assert_eq!(from_request("/wsx/alice", None), Err(IdError::NotFound));
    }

    #[test]
    fn no_id_is_none_when_optional() {
        for (path, query) in [
            ("/ws", None),
            ("/ws/", None),
            ("/ws", Some("id=")),
            ("/ws/", Some("token=x")),
        ] {
            assert_eq!(
                from_request_if_any(path, query),
                Ok(None),
                "{path} {query:?}"
            );
        }
        assert_eq!(
            from_request_if_any("/ws/a", None)
                .unwrap()
                .unwrap()
                .as_str(),
            "a"
        );
        assert!(matches!(
            from_request_if_any("/ws/a b", None),
            Err(IdError::Invalid(_))
        ));
        assert_eq!(from_request_if_any("/x", None), Err(IdError::NotFound));
    }
}
