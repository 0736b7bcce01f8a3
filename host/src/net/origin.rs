//! The `Origin` check on upgrades, against cross-site WebSocket hijacking:
//! a page on another site that opens a WebSocket here carries the
//! visitor's cookies (and a gateway in front may take them as proof of
//! who the visitor is), so what a web page sends is checked before the
//! policy hears of the connection.
//!
//! By default only what a web page sends is refused: an `http`/`https`
//! origin that is neither the server's own (its host and port are the
//! request's `Host`) nor listed in `--allowed-origins`, and `null`
//! (sandboxed frames, `data:` pages). No `Origin` (apps, servers) and
//! non-web schemes (WeChat sends `weapp://…` from some runtimes) pass,
//! unless `--refuse-non-web-origins` asks for the list to decide those too.

use crate::config::origins::{AllowedOrigins, Origin, is_web_scheme};

/// Longest part of a refused origin echoed in a reason (it goes into an
/// HTTP body and the log).
const SHOWN: usize = 200;

/// Who may open a WebSocket, by the `Origin` of the upgrade.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    allowed: AllowedOrigins,
    refuse_non_web: bool,
}

/// Why an upgrade's `Origin` is refused (HTTP 403, the message as the body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// `Origin: null`: an opaque origin (sandboxed frame, `data:` page, file).
    #[error(
        "origin \"null\" is not allowed: a sandboxed frame or a data: page may not connect here"
    )]
    Null,
    /// A web page on another site.
    #[error(
        "origin {0:?} is not allowed: only this server's own web pages and the origins in its --allowed-origins may connect"
    )]
    Foreign(String),
    /// A non-web scheme while `--refuse-non-web-origins` is on.
    #[error(
        "origin {0:?} is not allowed: this server takes only its own web origin and the origins in its --allowed-origins"
    )]
    NotListed(String),
}

impl OriginError {
    /// The HTTP status a refused handshake answers with.
    pub fn status(&self) -> u16 {
        403
    }
}

impl OriginPolicy {
    /// The policy `allowed` and `refuse_non_web` describe.
    pub fn new(allowed: AllowedOrigins, refuse_non_web: bool) -> OriginPolicy {
        OriginPolicy {
            allowed,
            refuse_non_web,
        }
    }

    /// Whether a request with `origin` (its `Origin` header) may connect;
    /// `own`: that origin is the server's own ([`is_own`]).
    pub fn check(&self, origin: Option<&str>, own: bool) -> Result<(), OriginError> {
        let Some(raw) = origin.map(str::trim) else {
            return Ok(());
        };
        if own || self.allowed.allows_any() {
            return Ok(());
        }
        if raw.eq_ignore_ascii_case("null") {
            return Err(OriginError::Null);
        }
        if Origin::parse(raw).is_some_and(|o| self.allowed.lists(&o)) {
            return Ok(());
        }
        // An origin that does not parse is judged by its scheme alone: a
        // malformed http(s) origin is as foreign as any.
        let web = raw.split_once(':').is_some_and(|(s, _)| is_web_scheme(s));
        let shown = || raw.chars().take(SHOWN).collect::<String>();
        if web {
            Err(OriginError::Foreign(shown()))
        } else if self.refuse_non_web {
            Err(OriginError::NotListed(shown()))
        } else {
            Ok(())
        }
    }
}

/// Whether `origin` (an `Origin` header) is the server's own web origin:
/// `http` or `https` with the host and port of `host` (the `Host` header;
/// without a port, the origin's scheme's default). Worked out as the
/// request is read, so the request keeps a flag, not the `Host`.
pub fn is_own(origin: &str, host: Option<&str>) -> bool {
    Origin::parse(origin.trim()).is_some_and(|o| o.is_web() && host.is_some_and(|h| o.is_host(h)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Option<&str> = Some("chat.example.com");

    /// `policy.check` of `origin` arriving with `Host: host`.
    fn check(
        policy: &OriginPolicy,
        origin: Option<&str>,
        host: Option<&str>,
    ) -> Result<(), OriginError> {
        policy.check(origin, origin.is_some_and(|o| is_own(o, host)))
    }

    fn policy(list: &str, refuse_non_web: bool) -> OriginPolicy {
        OriginPolicy::new(list.parse().unwrap(), refuse_non_web)
    }

    #[test]
    fn by_default_only_what_a_web_page_sends_is_refused() {
        let p = OriginPolicy::default();
        for accepted in [
            None,
            Some("https://chat.example.com"),
            Some("HTTPS://Chat.Example.com:443"),
            Some("weapp://wechat-game-runtime"),
            Some("chrome-extension://abc"),
            Some("garbage"),
        ] {
            assert_eq!(check(&p, accepted, HOST), Ok(()), "{accepted:?}");
        }
        assert_eq!(check(&p, Some("null"), HOST), Err(OriginError::Null));
        assert_eq!(check(&p, Some(" NULL "), HOST), Err(OriginError::Null));
        for refused in [
            "https://evil.example",
            "https://chat.example.com:8443",
            "https://chat.example.com.evil.example",
            "https://chat.example.com/path",
            "http:nonsense",
        ] {
            let e = check(&p, Some(refused), HOST).unwrap_err();
            assert!(matches!(e, OriginError::Foreign(_)), "{refused}: {e}");
            assert_eq!(e.status(), 403);
            assert!(e.to_string().contains(refused), "{e}");
        }
        // Without a Host, no origin is the server's own.
        assert!(check(&p, Some("https://chat.example.com"), None).is_err());
    }

    #[test]
    fn a_listed_origin_and_a_star_are_let_in() {
        let p = policy("https://app.example.com, http://localhost:8080", false);
        assert_eq!(check(&p, Some("https://app.example.com"), HOST), Ok(()));
        assert_eq!(check(&p, Some("http://localhost:8080"), HOST), Ok(()));
        assert!(check(&p, Some("http://localhost:8081"), HOST).is_err());
        assert!(check(&p, Some("https://evil.example"), HOST).is_err());
        let any = policy("*", true);
        for origin in ["https://evil.example", "null", "weapp://x"] {
            assert_eq!(check(&any, Some(origin), HOST), Ok(()), "{origin}");
        }
    }

    #[test]
    fn refuse_non_web_lets_in_only_own_and_listed() {
        let p = policy("weapp://wechat-game-runtime", true);
        assert_eq!(check(&p, Some("weapp://wechat-game-runtime"), HOST), Ok(()));
        assert_eq!(check(&p, Some("https://chat.example.com"), HOST), Ok(()));
        assert_eq!(check(&p, None, HOST), Ok(()));
        let e = check(&p, Some("weapp://other"), HOST).unwrap_err();
        assert!(matches!(e, OriginError::NotListed(_)), "{e}");
        assert!(matches!(
            check(&p, Some("https://evil.example"), HOST),
            Err(OriginError::Foreign(_))
        ));
    }

    #[test]
    fn a_long_origin_is_cut_in_the_reason() {
        let long = format!("https://{}.example", "a".repeat(5000));
        let e = check(&OriginPolicy::default(), Some(&long), HOST).unwrap_err();
        assert!(e.to_string().len() < 400, "{}", e.to_string().len());
    }
}
