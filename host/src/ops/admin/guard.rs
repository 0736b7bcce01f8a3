//! Who may talk to the admin interface at all: requests a web page could
//! make are refused before any route runs. A page in a browser on this
//! machine can reach loopback, but its requests carry an `Origin` header
//! (CSRF), or, after DNS rebinding, its own host name in `Host`.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::http::uri::Authority;

/// Why a request is refused (the message of the 403 answer).
///
/// The admin page's own requests (a browser sends `Origin` with a `PUT`,
/// `POST` or `DELETE`, even to its own origin) carry exactly
/// `http://<Host>`: those pass; any other origin is a page elsewhere.
pub fn refusal(headers: &HeaderMap, listen: SocketAddr) -> Option<&'static str> {
    let raw_host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let host = raw_host.and_then(|v| v.parse::<Authority>().ok());
    if !host.as_ref().is_some_and(|h| host_allowed(h, listen)) {
        return Some(
            "the Host header must name this admin interface: localhost, a loopback address or its listen address",
        );
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let own = raw_host.map(|h| format!("http://{h}"));
        if origin.to_str().ok() != own.as_deref() {
            return Some(
                "requests from other web pages (with another Origin) are refused by the admin interface",
            );
        }
    }
    None
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

    #[test]
    fn the_admin_pages_own_origin_passes_and_no_other() {
        let listen = "127.0.0.1:3002";
        assert!(check(
            Some("127.0.0.1:3002"),
            Some("http://127.0.0.1:3002"),
            listen
        ));
        assert!(check(
            Some("localhost:3002"),
            Some("http://localhost:3002"),
            listen
        ));
        // The port, the scheme or the name differ: another origin.
        assert!(!check(
            Some("127.0.0.1:3002"),
            Some("http://127.0.0.1:3003"),
            listen
        ));
        assert!(!check(
            Some("127.0.0.1:3002"),
            Some("https://127.0.0.1:3002"),
            listen
        ));
        assert!(!check(
            Some("localhost:3002"),
            Some("http://127.0.0.1:3002"),
            listen
        ));
    }
}
