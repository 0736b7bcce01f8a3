//! Who may talk to the admin interface at all: requests a web page could
//! make are refused before any route runs. A page in a browser on this
//! machine can reach loopback, but its requests carry an `Origin` header
//! (CSRF), or, after DNS rebinding, its own host name in `Host`.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::http::uri::Authority;

/// Why a request is refused (the message of the 403 answer).
pub fn refusal(headers: &HeaderMap, listen: SocketAddr) -> Option<&'static str> {
    if headers.contains_key(ORIGIN) {
        return Some(
            "requests from web pages (with an Origin header) are refused by the admin interface",
        );
    }
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Authority>().ok());
    match host {
        Some(host) if host_allowed(&host, listen) => None,
        _ => Some(
            "the Host header must name this admin interface: localhost, a loopback address or its listen address",
        ),
    }
}

/// `localhost`, a loopback address or the listen address (any address when
/// it listens on all of them: a rebinding attack needs a name, never an
/// address), with no port or the listen port.
fn host_allowed(host: &Authority, listen: SocketAddr) -> bool {
    if host.port_u16().is_some_and(|p| p != listen.port()) {
        return false;
    }
    let name = host.host();
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let literal = name.trim_start_matches('[').trim_end_matches(']');
    match literal.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback() || ip == listen.ip() || listen.ip().is_unspecified(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(host: Option<&str>, origin: Option<&str>, listen: &str) -> bool {
        let mut h = HeaderMap::new();
        if let Some(v) = host {
            h.insert(HOST, v.parse().unwrap());
        }
        if let Some(v) = origin {
            h.insert(ORIGIN, v.parse().unwrap());
        }
        refusal(&h, listen.parse().unwrap()).is_none()
    }

    #[test]
    fn loopback_and_the_listen_address_pass() {
        for host in [
            "127.0.0.1:3002",
            "127.0.0.1",
            "localhost:3002",
            "LOCALHOST",
            "[::1]:3002",
            "[::1]",
        ] {
            assert!(check(Some(host), None, "127.0.0.1:3002"), "{host}");
        }
        assert!(check(Some("10.1.2.3:3002"), None, "10.1.2.3:3002"));
        assert!(check(Some("10.1.2.3:3002"), None, "0.0.0.0:3002"));
    }

    #[test]
    fn names_other_ports_origins_and_no_host_are_refused() {
        for host in [
            "evil.example",
            "evil.example:3002",
            "127.0.0.1:80",
            "localhost:3003",
            "10.1.2.3:3002",
            "127.0.0.1.nip.io:3002",
        ] {
            assert!(!check(Some(host), None, "127.0.0.1:3002"), "{host}");
        }
        assert!(!check(None, None, "127.0.0.1:3002"));
        assert!(!check(
            Some("127.0.0.1:3002"),
            Some("http://evil.example"),
            "127.0.0.1:3002"
        ));
        assert!(!check(
            Some("127.0.0.1:3002"),
            Some("null"),
            "127.0.0.1:3002"
        ));
    }
}
