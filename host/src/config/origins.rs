//! Origins: `scheme://host[:port]` as a browser sends it in an `Origin`
//! header, normalised so that two spellings of one origin compare equal,
//! and `--allowed-origins`, the list of them an operator lets in besides
//! the server's own (see `net::origin` for the check itself).

use std::fmt;
use std::str::FromStr;

use crate::config::settings::SettingValue;

/// An origin, normalised: scheme and host in lower case, and the scheme's
/// default port (80 for http and ws, 443 for https and wss) dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// `text` as an origin: `scheme://host[:port]`, nothing after it (an
    /// IPv6 host in brackets). `None` if it is not one.
    pub fn parse(text: &str) -> Option<Origin> {
        let (scheme, authority) = text.split_once("://")?;
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let (host, port) = authority_parts(authority)?;
        let port = port.filter(|p| Some(*p) != default_port(&scheme));
        Some(Origin { scheme, host, port })
    }

    /// Its scheme, in lower case.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Whether a web page could have it: `http` or `https`.
    pub fn is_web(&self) -> bool {
        is_web_scheme(&self.scheme)
    }

    /// Whether `host` (a `Host` header: `host[:port]`) names this origin's
    /// host and port, a missing port meaning this origin's scheme's default.
    pub fn is_host(&self, host: &str) -> bool {
        let Some((name, port)) = authority_parts(host.trim()) else {
            return false;
        };
        let default = default_port(&self.scheme);
        name == self.host && port.or(default) == self.port.or(default)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// Whether `scheme` is one a web page is loaded over (any case).
pub fn is_web_scheme(scheme: &str) -> bool {
    scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
}

/// The port a URL of `scheme` means when it names none.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// `host[:port]` split, the host in lower case; `None` if it is not one
/// (empty host, a path, user info, a bad port).
fn authority_parts(authority: &str) -> Option<(String, Option<u16>)> {
    if authority.is_empty()
        || authority.chars().any(|c| {
            matches!(c, '/' | '?' | '#' | '@' | '\\') || c.is_whitespace() || c.is_control()
        })
    {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (format!("[{inside}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.to_owned(), None),
        }
    };
    let bracketed = host.starts_with('[');
    if host.is_empty() || (!bracketed && host.contains(['[', ']', ':'])) {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok()?)
        }
        Some(_) => return None,
        None => None,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// `--allowed-origins`: origins that may open a WebSocket besides the
/// server's own, or `*` for any. Empty (the default): only the server's
/// own web origin, and what no web page sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    any: bool,
    listed: Vec<Origin>,
}

impl AllowedOrigins {
    /// Neither `*` nor an origin.
    pub fn is_empty(&self) -> bool {
        !self.any && self.listed.is_empty()
    }

    /// `*`: every origin is let in.
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// Whether `origin` is listed.
    pub fn lists(&self, origin: &Origin) -> bool {
        self.listed.contains(origin)
    }

    /// The list of `entries` (each `*` or an origin; a trailing `/` is
    /// forgiven, blanks skipped).
    pub fn from_entries<'e>(
        entries: impl IntoIterator<Item = &'e str>,
    ) -> Result<AllowedOrigins, String> {
        let mut allowed = AllowedOrigins::default();
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                allowed.any = true;
                continue;
            }
            let origin = Origin::parse(entry.strip_suffix('/').unwrap_or(entry)).ok_or_else(|| {
                format!(
                    "allowed origin {entry:?} is not an origin: write scheme://host[:port] (e.g. https://chat.example.com), or * for any"
                )
            })?;
            if !allowed.listed.contains(&origin) {
                allowed.listed.push(origin);
            }
        }
        Ok(allowed)
    }

    fn entries(&self) -> Vec<String> {
        let any = self.any.then(|| "*".to_owned());
        any.into_iter()
            .chain(self.listed.iter().map(Origin::to_string))
            .collect()
    }
}

/// Comma-separated (a flag, a variable).
impl FromStr for AllowedOrigins {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AllowedOrigins::from_entries(s.split(','))
    }
}

/// Comma-separated, normalised.
impl fmt::Display for AllowedOrigins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.entries().join(","))
    }
}

/// In `switchboard.toml`: an array of strings, or one comma-separated string.
impl<'de> serde::Deserialize<'de> for AllowedOrigins {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Written {
            One(String),
            Many(Vec<String>),
        }
        let entries = match Written::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "allowed_origins must be an array of strings (e.g. [\"https://chat.example.com\"]) or one comma-separated string",
            )
        })? {
            Written::One(text) => text.split(',').map(str::to_owned).collect(),
            Written::Many(list) => list,
        };
        AllowedOrigins::from_entries(entries.iter().map(String::as_str))
            .map_err(serde::de::Error::custom)
    }
}

impl SettingValue for AllowedOrigins {
    const VALUE_NAME: &'static str = "ORIGINS";

    fn shown(&self) -> String {
        self.to_string()
    }

    fn to_toml(&self) -> toml::Value {
        toml::Value::Array(
            self.entries()
                .into_iter()
                .map(toml::Value::String)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> Origin {
        Origin::parse(text).unwrap_or_else(|| panic!("{text} does not parse"))
    }

    #[test]
    fn origins_are_normalised() {
        for (a, b) in [
            ("HTTPS://Chat.Example.COM", "https://chat.example.com"),
            ("https://chat.example.com:443", "https://chat.example.com"),
            ("http://localhost:80", "http://localhost"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            ("weapp://wechat-game-runtime", "weapp://wechat-game-runtime"),
        ] {
            assert_eq!(origin(a), origin(b), "{a} vs {b}");
            assert_eq!(origin(a).to_string(), b);
        }
        assert_ne!(origin("https://a.example"), origin("http://a.example"));
        assert_ne!(
            origin("https://a.example"),
            origin("https://a.example:8443")
        );
        for bad in [
            "null",
            "https://",
            "https://a.example/",
            "https://a.example/path",
            "https://user@a.example",
            "https://a.example:99999",
            "https://a.example:",
            "https://a.example:8x",
            "1http://a.example",
            "a.example",
            "https://a b",
        ] {
            assert!(Origin::parse(bad).is_none(), "{bad} parsed");
        }
    }

    #[test]
    fn a_host_header_matches_with_the_default_port() {
        let https = origin("https://chat.example.com");
        assert!(https.is_host("chat.example.com"));
        assert!(https.is_host("Chat.Example.com:443"));
        assert!(!https.is_host("chat.example.com:80"));
        assert!(!https.is_host("chat.example.com.evil.example"));
        let local = origin("http://127.0.0.1:3001");
        assert!(local.is_host("127.0.0.1:3001"));
        assert!(!local.is_host("127.0.0.1"));
        assert!(origin("http://[::1]:3001").is_host("[::1]:3001"));
        assert!(!https.is_host(""));
    }

    #[test]
    fn the_list_parses_from_text_and_toml() {
        let list: AllowedOrigins = " https://a.example/ , HTTP://B.example:8080,,"
            .parse()
            .unwrap();
        assert_eq!(list.to_string(), "https://a.example,http://b.example:8080");
        assert!(list.lists(&origin("https://a.example:443")));
        assert!(!list.allows_any());
        let any: AllowedOrigins = "*".parse().unwrap();
        assert!(any.allows_any() && !any.is_empty());
        assert!("".parse::<AllowedOrigins>().unwrap().is_empty());
        let err = "https://a.example/app"
            .parse::<AllowedOrigins>()
            .unwrap_err();
        assert!(err.contains("scheme://host[:port]"), "{err}");

        #[derive(serde::Deserialize)]
        struct File {
            allowed_origins: AllowedOrigins,
        }
        let array: File =
            toml::from_str("allowed_origins = [\"https://a.example\", \"*\"]").unwrap();
        assert_eq!(array.allowed_origins.to_string(), "*,https://a.example");
        let one: File =
            toml::from_str("allowed_origins = \"https://a.example, https://b.example\"").unwrap();
        assert_eq!(
            one.allowed_origins.to_string(),
            "https://a.example,https://b.example"
        );
        assert!(toml::from_str::<File>("allowed_origins = 5").is_err());
        assert!(toml::from_str::<File>("allowed_origins = [\"nope\"]").is_err());
        assert_eq!(
            array.allowed_origins.to_toml(),
            toml::Value::Array(vec!["*".into(), "https://a.example".into()])
        );
    }
}
