//! Plain HTTP on the public port: the web chat page (static files built
//! into the binary, `--web-chat false` turns them off), and the answer to
//! a plain `GET` of a WebSocket URL, which tells a browser or a
//! mini-program why its upgrade was refused (they cannot read a refused
//! upgrade's status; the client library asks this way).

use std::borrow::Cow;

use tokio::io::AsyncWrite;

use crate::net::handshake::{self, Plain, Response};
use crate::net::shared::Shared;

/// One file of the page.
struct File {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The page: `clients/js`'s browser build and the chat written on it.
const FILES: [File; 4] = [
    File {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../static/index.html"),
    },
    File {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/app.js"),
    },
    File {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../static/style.css"),
    },
    File {
        path: "/switchboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/switchboard.js"),
    },
];

/// Headers of every page file: revalidate (a new binary may bring a new
/// page), no sniffing, no framing by other sites, and nothing loaded from
/// elsewhere.
const PAGE_HEADERS: [(&str, &str); 4] = [
    ("Cache-Control", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    (
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'",
    ),
];

/// A probe's answer may be read by a page on any origin: it says only
/// what the refused upgrade would have said.
const PROBE_HEADERS: [(&str, &str); 1] = [("Access-Control-Allow-Origin", "*")];

/// Answer a plain request: a page file, or for a WebSocket URL the status
/// its upgrade would get — the refusal (400, 401, 404) with its reason, or
/// 426 when it would be accepted. Anything else is 404.
pub async fn answer<S: AsyncWrite + Unpin>(shared: &Shared, stream: &mut S, plain: Plain) {
    let response = match page(shared, &plain.path) {
        Some(file) => Response {
            status: 200,
            content_type: file.content_type,
            body: Cow::Borrowed(file.body),
            head: plain.head,
            headers: &PAGE_HEADERS,
        },
        None => {
            let refused = plain
                .as_upgrade
                .and_then(|u| u.identify(shared.auth.as_ref()).map(|_| ()));
            let (status, reason) = match refused {
                Ok(()) => (426, handshake::NOT_AN_UPGRADE.to_owned()),
                Err(e) => (e.status().unwrap_or(400), e.to_string()),
            };
            Response {
                head: plain.head,
                headers: &PROBE_HEADERS,
                ..Response::text(status, &reason)
            }
        }
    };
    let limit = shared.limits.upgrade_timeout;
    let _ = tokio::time::timeout(limit, handshake::respond(stream, &response)).await;
}

/// The page file at `path`, when the page is on.
fn page(shared: &Shared, path: &str) -> Option<&'static File> {
    if !shared.web_chat {
        return None;
    }
    let path = if path == "/index.html" { "/" } else { path };
    FILES.iter().find(|f| f.path == path)
}
