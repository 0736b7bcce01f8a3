//! The HTTP side of a WebSocket connection: read the upgrade request (bounded
//! in size; the caller bounds it in time), check it, answer with a readable
//! HTTP error or with 101. Reading the request ourselves lets the policy's
//! `on-connect` run (asynchronously) before we answer, so a policy can refuse
//! with a real HTTP status.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::id::{self, ConnId, IdError};

/// Largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Most headers accepted.
const MAX_HEADERS: usize = 48;
/// Headers passed on to the policy.
const FORWARDED_HEADERS: [&str; 6] = [
    "origin",
    "referer",
    "user-agent",
    "sec-websocket-protocol",
    "x-forwarded-for",
    "x-real-ip",
];

/// A valid WebSocket upgrade request.
#[derive(Debug)]
pub struct Upgrade {
    /// The id from the URL.
    pub id: ConnId,
    /// Request path.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// The headers in `FORWARDED_HEADERS` that were present.
    pub headers: Vec<(String, String)>,
    /// `Sec-WebSocket-Key`.
    key: String,
    /// First subprotocol the client offered (echoed; WeChat clients that
    /// offer one expect it back).
    protocol: Option<String>,
    /// Bytes read past the request head (a client's first frames).
    pub leftover: Vec<u8>,
}

/// Why an upgrade request is refused; each maps to an HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Bad or missing id, or a path we do not serve.
    #[error("{0}")]
    Id(#[from] IdError),
    /// Not a WebSocket upgrade.
    #[error("{0}")]
    NotWebSocket(&'static str),
    /// Malformed HTTP.
    #[error("malformed HTTP request: {0}")]
    Malformed(String),
    /// Request head over the limit.
    #[error("request head larger than {MAX_HEAD} bytes")]
    TooLarge,
    /// The client went away or the socket failed; nothing to answer.
    #[error("connection closed during the handshake")]
    Closed,
}

impl HandshakeError {
    /// HTTP status to answer with (`None`: just close).
    pub fn status(&self) -> Option<u16> {
        match self {
            HandshakeError::Id(e) => Some(e.status()),
            HandshakeError::NotWebSocket(_) => Some(426),
            HandshakeError::Malformed(_) => Some(400),
            HandshakeError::TooLarge => Some(431),
            HandshakeError::Closed => None,
        }
    }
}

/// Read and check an upgrade request.
pub async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Upgrade, HandshakeError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| HandshakeError::Closed)?;
        if n == 0 {
            return Err(HandshakeError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let upgrade = check(&req)?;
                return Ok(Upgrade {
                    leftover: buf[len..].to_vec(),
                    ..upgrade
                });
            }
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                return Err(HandshakeError::TooLarge);
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
        }
    }
}

fn check(req: &httparse::Request<'_, '_>) -> Result<Upgrade, HandshakeError> {
    let target = req.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let id = id::from_request(path, query)?;
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if req.method != Some("GET") {
        return Err(HandshakeError::NotWebSocket(
            "only GET can upgrade to a WebSocket",
        ));
    }
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Err(HandshakeError::NotWebSocket(
            "this endpoint speaks WebSocket: send an Upgrade: websocket request",
        ));
    }
    if header("sec-websocket-version") != Some("13") {
        return Err(HandshakeError::NotWebSocket(
            "unsupported Sec-WebSocket-Version; use 13",
        ));
    }
    let key = header("sec-websocket-key")
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| HandshakeError::Malformed("missing Sec-WebSocket-Key".into()))?;
    let headers = FORWARDED_HEADERS
        .iter()
        .filter_map(|name| header(name).map(|v| ((*name).to_owned(), v.to_owned())))
        .collect();
    let protocol = header("sec-websocket-protocol")
        .and_then(|v| v.split(',').map(str::trim).find(|p| !p.is_empty()))
        .map(str::to_owned);
    Ok(Upgrade {
        id,
        path: path.to_owned(),
        query: query.map(str::to_owned),
        headers,
        key: key.trim().to_owned(),
        protocol,
        leftover: Vec::new(),
    })
}

/// Answer 101 Switching Protocols.
pub async fn accept<S: AsyncWrite + Unpin>(
    stream: &mut S,
    upgrade: &Upgrade,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        derive_accept_key(upgrade.key.as_bytes())
    );
    if let Some(p) = &upgrade.protocol {
        head.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await
}

/// Answer with an HTTP error whose body is `reason`, then close.
pub async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    reason: &str,
) -> std::io::Result<()> {
    let status = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::FORBIDDEN);
    let mut body = reason.replace(['\r', '\n'], " ");
    body.push('\n');
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if status.as_u16() == 426 {
        head.push_str("Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await
}

/// A policy's rejection status, kept to 400-599 (else 403).
pub fn reject_status(status: u16) -> u16 {
    if (400..=599).contains(&status) {
        status
    } else {
        403
    }
}
