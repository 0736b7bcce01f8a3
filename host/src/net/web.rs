//! Plain HTTP on the public port: the web chat page (static files built
//! into the binary, `--web-chat false` turns them off), and the answer to
//! a plain `GET` of a WebSocket URL, which tells a browser or a
//! mini-program why its upgrade was refused (they cannot read a refused
//! upgrade's status; the client library asks this way).
//!
//! A client that takes gzip (`Accept-Encoding`) gets the page's files
//! gzipped: each is compressed once, the first time it is asked for.

use std::borrow::Cow;
use std::io::Write;
use std::sync::OnceLock;

use tokio::io::AsyncWrite;

use crate::net::handshake::{self, Plain, Response};
use crate::net::shared::Shared;

/// One file of the page.
struct File {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// `body` gzipped, made on first use.
    gzipped: OnceLock<Vec<u8>>,
}

impl File {
    const fn new(path: &'static str, content_type: &'static str, body: &'static [u8]) -> File {
        File {
            path,
            content_type,
            body,
            gzipped: OnceLock::new(),
        }
    }

    /// `body` gzipped, if compressing it works and makes it smaller.
    fn gzipped(&self) -> Option<&[u8]> {
        let gz = self
            .gzipped
            .get_or_init(|| gzip(self.body).unwrap_or_default());
        (!gz.is_empty() && gz.len() < self.body.len()).then_some(gz.as_slice())
    }
}

/// `bytes` gzipped at the best compression (done once per file).
fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// The page: `clients/js`'s browser build and the chat written on it.
static FILES: [File; 4] = [
    File::new(
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../../static/index.html"),
    ),
    File::new(
        "/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/app.js"),
    ),
    File::new(
        "/style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/style.css"),
    ),
    File::new(
        "/switchboard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/switchboard.js"),
    ),
];

/// The page's Content-Security-Policy: nothing loaded from or sent to
/// elsewhere (`connect-src 'self'` covers ws:// and wss:// to this host and
/// port), no `<base>` to redirect its relative URLs, no form submitted
/// anywhere (the login form is read by script; a native submit, when the
/// script failed, must not put a token into a URL), no framing.
const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Headers of every page file: revalidate (a new binary may bring a new
/// page), no framing by other sites, the CSP, and a cache must keep the
/// gzip and identity answers apart. (`nosniff` goes on every answer.)
const PAGE_HEADERS: [(&str, &str); 4] = [
    ("Cache-Control", "no-cache"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", CSP),
    ("Vary", "Accept-Encoding"),
];

/// [`PAGE_HEADERS`] of a gzipped body.
const GZIP_PAGE_HEADERS: [(&str, &str); 5] = [
    PAGE_HEADERS[0],
    PAGE_HEADERS[1],
    PAGE_HEADERS[2],
    PAGE_HEADERS[3],
    ("Content-Encoding", "gzip"),
];

/// A probe's answer may be read by a page on any origin: it says only
/// what the refused upgrade would have said.
const PROBE_HEADERS: [(&str, &str); 1] = [("Access-Control-Allow-Origin", "*")];

/// Answer a plain request: a page file, or for a WebSocket URL the status
/// its upgrade would get — the refusal (400, 401, 403, 404) with its
/// reason, or 426 when it would be accepted. Anything else is 404.
pub async fn answer<S: AsyncWrite + Unpin>(shared: &Shared, stream: &mut S, plain: Plain) {
    let response = match page(shared, &plain.path) {
        Some(file) => {
            let gzipped = plain.gzip.then(|| file.gzipped()).flatten();
            Response {
                status: 200,
                content_type: file.content_type,
                body: Cow::Borrowed(gzipped.unwrap_or(file.body)),
                head: plain.head,
                headers: if gzipped.is_some() {
                    &GZIP_PAGE_HEADERS
                } else {
                    &PAGE_HEADERS
                },
            }
        }
        None => {
            let refused = plain
                .as_upgrade
                .and_then(|u| u.admit(shared.auth.as_ref(), &shared.origins).map(|_| ()));
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
