//! The HTTP side of a WebSocket connection: read the upgrade request (bounded
//! in size; the caller bounds it in time), check it, answer with a readable
//! HTTP error or with 101. Reading the request ourselves lets the policy's
//! `on-connect` run (asynchronously) before we answer, so a policy can refuse
//! with a real HTTP status.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::net::auth::{AuthError, Identity, Verifier};
use crate::net::id::{self, ConnId, IdError};
use crate::net::origin::{self, OriginError, OriginPolicy};

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
    /// The id from the URL, if it names one.
    pub url_id: Option<ConnId>,
    /// The signed token the request carries, if any.
    token: Option<Token>,
    /// Request path.
    pub path: String,
    /// Raw query string, without its `token` and `resume` parameters (the
    /// policy and the recording must not see a credential).
    pub query: Option<String>,
    /// The session a reconnect presents (`?resume=`), to take back a held
    /// id.
    pub resume: Option<Session>,
    /// The headers in `FORWARDED_HEADERS` that were present.
    pub headers: Vec<(String, String)>,
    /// The `Origin` (in `headers`) is the server's own: its host and port
    /// are the request's `Host`.
    own_origin: bool,
    /// `Sec-WebSocket-Key`.
    key: String,
    /// First subprotocol the client offered (echoed; WeChat clients that
    /// offer one expect it back).
    protocol: Option<String>,
    /// Bytes read past the request head (a client's first frames).
    pub leftover: Vec<u8>,
}

/// A session token as presented for a resume. Its `Debug` hides it.
pub struct Session(pub String);

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session(..)")
    }
}

/// A bearer token as sent. Its `Debug` hides it: a token is a credential and
/// goes into no log.
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Upgrade {
    /// Whether the connection may be made, and who it is: its `Origin`
    /// checked against `origins` (403) first, then [`Upgrade::identify`].
    pub fn admit(
        &self,
        auth: Option<&Verifier>,
        origins: &OriginPolicy,
    ) -> Result<Identity, HandshakeError> {
        let origin = self
            .headers
            .iter()
            .find(|(name, _)| name == "origin")
            .map(|(_, value)| value.as_str());
        origins.check(origin, self.own_origin)?;
        self.identify(auth)
    }

    /// Who the connection is. With `auth`, the token's `sub` (the URL may
    /// name the same id or none); without, the id in the URL, trusted.
    pub fn identify(&self, auth: Option<&Verifier>) -> Result<Identity, HandshakeError> {
        match auth {
            Some(verifier) => Ok(verifier.verify(
                self.token.as_ref().map(|t| t.0.as_str()),
                self.url_id.as_ref(),
            )?),
            None => Ok(Identity {
                id: self.url_id.clone().ok_or(IdError::Missing)?,
                claims: None,
            }),
        }
    }
}

/// Why an upgrade request is refused; each maps to an HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Bad or missing id, or a path we do not serve.
    #[error("{0}")]
    Id(#[from] IdError),
    /// Signed tokens are on and the request has no acceptable one.
    #[error("{0}")]
    Auth(#[from] AuthError),
    /// A web page whose origin may not connect.
    #[error("{0}")]
    Origin(#[from] OriginError),
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
            HandshakeError::Auth(e) => Some(e.status()),
            HandshakeError::Origin(e) => Some(e.status()),
            HandshakeError::NotWebSocket(_) => Some(426),
            HandshakeError::Malformed(_) => Some(400),
            HandshakeError::TooLarge => Some(431),
            HandshakeError::Closed => None,
        }
    }
}

/// What a request on the public port asks for.
#[derive(Debug)]
pub enum Incoming {
    /// A WebSocket upgrade (checked).
    Upgrade(Upgrade),
    /// A plain `GET` or `HEAD` (a browser loading the chat page, or a
    /// client probing why its upgrade was refused).
    Plain(Plain),
}

/// A plain `GET` or `HEAD` request.
#[derive(Debug)]
pub struct Plain {
    /// Request path, without the query.
    pub path: String,
    /// `HEAD`: answer without a body.
    pub head: bool,
    /// The client takes a gzip body (`Accept-Encoding`).
    pub gzip: bool,
    /// The request checked as an upgrade of the same URL would be, less
    /// the WebSocket headers (for a probe of `/ws…`).
    pub as_upgrade: Result<Upgrade, HandshakeError>,
}

/// Why a request that is not an upgrade is answered 426.
pub const NOT_AN_UPGRADE: &str =
    "this endpoint speaks WebSocket: send an Upgrade: websocket request";

/// Read a request: an upgrade (checked), or a plain `GET`/`HEAD`.
pub async fn read_incoming<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Incoming, HandshakeError> {
    let (head, leftover) = read_head(stream).await?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&head)
        .map_err(|e| HandshakeError::Malformed(e.to_string()))?;
    if let Some(plain) = plain(&req) {
        return Ok(Incoming::Plain(plain));
    }
    let upgrade = check(&req)?;
    Ok(Incoming::Upgrade(Upgrade {
        leftover,
        ..upgrade
    }))
}

/// Read a request head: its bytes, and the bytes read past it.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(Vec<u8>, Vec<u8>), HandshakeError> {
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
                let leftover = buf.split_off(len);
                return Ok((buf, leftover));
            }
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                return Err(HandshakeError::TooLarge);
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
        }
    }
}

/// The value of header `name`, if present and text.
fn header<'r>(req: &'r httparse::Request<'_, '_>, name: &str) -> Option<&'r str> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
}

/// Whether header `name` lists `token` (comma-separated, any case).
fn has_token(req: &httparse::Request<'_, '_>, name: &str, token: &str) -> bool {
    header(req, name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Whether an `Accept-Encoding` value takes gzip: `gzip` (or `x-gzip`)
/// listed with a q above 0, or else `*` with one.
fn accepts_gzip(value: Option<&str>) -> bool {
    let Some(value) = value else { return false };
    let mut star = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return q > 0.0;
        }
        if coding == "*" {
            star = Some(q > 0.0);
        }
    }
    star.unwrap_or(false)
}

/// The request target split into path and query.
fn target<'r>(req: &httparse::Request<'r, '_>) -> (&'r str, Option<&'r str>) {
    let target = req.path.unwrap_or("/");
    match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    }
}

/// `req` as a plain request, if it is a `GET` or `HEAD` that asks for no
/// upgrade.
fn plain(req: &httparse::Request<'_, '_>) -> Option<Plain> {
    let head = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return None,
    };
    if has_token(req, "upgrade", "websocket") || has_token(req, "connection", "upgrade") {
        return None;
    }
    let (path, query) = target(req);
    Some(Plain {
        path: path.to_owned(),
        head,
        gzip: accepts_gzip(header(req, "accept-encoding")),
        as_upgrade: identity_part(req, path, query),
    })
}

fn check(req: &httparse::Request<'_, '_>) -> Result<Upgrade, HandshakeError> {
    let (path, query) = target(req);
    let upgrade = identity_part(req, path, query)?;
    let header = |name: &str| header(req, name);
    let has_token = |name: &str, token: &str| has_token(req, name, token);
    if req.method != Some("GET") {
        return Err(HandshakeError::NotWebSocket(
            "only GET can upgrade to a WebSocket",
        ));
    }
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Err(HandshakeError::NotWebSocket(NOT_AN_UPGRADE));
    }
    if header("sec-websocket-version") != Some("13") {
        return Err(HandshakeError::NotWebSocket(
            "unsupported Sec-WebSocket-Version; use 13",
        ));
    }
    let key = header("sec-websocket-key")
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| HandshakeError::Malformed("missing Sec-WebSocket-Key".into()))?;
    let protocol = header("sec-websocket-protocol")
        .and_then(|v| v.split(',').map(str::trim).find(|p| !p.is_empty()))
        .map(str::to_owned);
    Ok(Upgrade {
        key: key.trim().to_owned(),
        protocol,
        ..upgrade
    })
}

/// What identifies a request to `path`: its id, token and session, its
/// query without them, and the headers passed on.
fn identity_part(
    req: &httparse::Request<'_, '_>,
    path: &str,
    query: Option<&str>,
) -> Result<Upgrade, HandshakeError> {
    let url_id = id::from_request_if_any(path, query)?;
    let header = |name: &str| header(req, name);
    let headers = FORWARDED_HEADERS
        .iter()
        .filter_map(|name| header(name).map(|v| ((*name).to_owned(), v.to_owned())))
        .collect();
    let token = bearer(header("authorization"))
        .or_else(|| query.and_then(|q| id::query_param(q, TOKEN_PARAM)))
        .filter(|t| !t.is_empty())
        .map(Token);
    let resume = query
        .and_then(|q| id::query_param(q, RESUME_PARAM))
        .filter(|s| !s.is_empty())
        .map(Session);
    Ok(Upgrade {
        url_id,
        token,
        path: path.to_owned(),
        query: query
            .and_then(|q| without_param(q, TOKEN_PARAM))
            .and_then(|q| without_param(&q, RESUME_PARAM)),
        resume,
        headers,
        own_origin: header("origin").is_some_and(|o| {
            // Behind a proxy that rewrites `Host` (nginx's default
            // `proxy_set_header Host $proxy_host`), the public host comes in
            // `X-Forwarded-Host`. Trusting it is safe here: what the check
            // stops is a web page, and a page cannot set either header on
            // a WebSocket upgrade.
            let forwarded = header("x-forwarded-host")
                .and_then(|h| h.split(',').next())
                .map(str::trim);
            origin::is_own(o, header("host")) || origin::is_own(o, forwarded)
        }),
        key: String::new(),
        protocol: None,
        leftover: Vec::new(),
    })
}

/// The query parameter a token may come in.
const TOKEN_PARAM: &str = "token";

/// The query parameter a reconnect presents its session in.
const RESUME_PARAM: &str = "resume";

/// The token of an `Authorization: Bearer <token>` header (scheme name in
/// any case). Another scheme is not ours: it may be meant for a proxy.
fn bearer(value: Option<&str>) -> Option<String> {
    let (scheme, token) = value?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// `query` without its `name` parameters (the rest kept byte for byte);
/// `None` if nothing is left.
fn without_param(query: &str, name: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            // Compare decoded, so `%74oken=` cannot slip a token through.
            form_urlencoded::parse(key.as_bytes())
                .next()
                .is_none_or(|(k, _)| k != name)
        })
        .collect();
    let kept = kept.join("&");
    (!kept.is_empty()).then_some(kept)
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
    respond(stream, &Response::text(status, reason)).await
}

/// An HTTP answer (the connection is closed after it).
#[derive(Debug)]
pub struct Response<'a> {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'a str,
    /// The body (its length is sent; with `head`, not the bytes).
    pub body: std::borrow::Cow<'a, [u8]>,
    /// Answer to a `HEAD`: headers only.
    pub head: bool,
    /// More header lines (`Name: value`).
    pub headers: &'a [(&'a str, &'a str)],
}

impl Response<'_> {
    /// A plain-text answer: `reason` on one line.
    pub fn text(status: u16, reason: &str) -> Response<'static> {
        let mut body = reason.replace(['\r', '\n'], " ");
        body.push('\n');
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into_bytes().into(),
            head: false,
            headers: &[],
        }
    }
}

/// Write `response`, then close. Every answer says `nosniff`: a body is
/// what its `Content-Type` says (a refusal's reason, which may echo what a
/// client sent, is never taken for HTML or script).
pub async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &Response<'_>,
) -> std::io::Result<()> {
    let status = http::StatusCode::from_u16(response.status).unwrap_or(http::StatusCode::FORBIDDEN);
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        response.content_type,
        response.body.len()
    );
    if status.as_u16() == 426 {
        head.push_str("Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
    }
    for (name, value) in response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if !response.head {
        stream.write_all(&response.body).await?;
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::AuthConfig;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    /// Parse a request head (sent with the headers a WebSocket client sends).
    fn parse(target: &str, extra: &str) -> Result<Upgrade, HandshakeError> {
        let head = format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        );
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(head.as_bytes()).unwrap().is_complete());
        check(&req)
    }

    fn token(u: &Upgrade) -> Option<&str> {
        u.token.as_ref().map(|t| t.0.as_str())
    }

    /// Strings with every character a query treats specially, and some it
    /// must carry encoded (deterministic pseudo-random, many cases).
    fn samples() -> impl Iterator<Item = String> {
        const ALPHABET: &[char] = &[
            'a', 'Z', '0', '-', '_', '.', '~', '=', '&', '+', '%', ' ', '?', '#', '/', 'é', '中',
            '"', ';',
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..500).map(move |_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = 1 + (seed % 40) as usize;
            (0..len)
                .map(|i| ALPHABET[((seed >> (i % 50)) as usize + i * 7) % ALPHABET.len()])
                .collect()
        })
    }

    #[test]
    fn a_percent_encoded_query_token_is_read_and_hidden_from_the_query() {
        for raw in samples() {
            let encoded: String = form_urlencoded::byte_serialize(raw.as_bytes()).collect();
            let u = parse(&format!("/ws?x=1&token={encoded}&id=alice"), "").unwrap();
            assert_eq!(token(&u), Some(raw.as_str()), "{encoded}");
            assert_eq!(u.query.as_deref(), Some("x=1&id=alice"), "{encoded}");
            assert_eq!(u.url_id.as_ref().map(ConnId::as_str), Some("alice"));
        }
    }

    #[test]
    fn every_token_parameter_is_stripped_however_spelt() {
        let u = parse("/ws/?%74oken=abc&a=%26&token=def", "").unwrap();
        assert_eq!(token(&u), Some("abc"));
        assert_eq!(u.query.as_deref(), Some("a=%26"));
        let u = parse("/ws?token=abc", "").unwrap();
        assert_eq!(u.query, None);
        assert!(u.url_id.is_none());
        let u = parse("/ws/bob?tokens=1&token", "").unwrap();
        assert_eq!(u.query.as_deref(), Some("tokens=1"));
        assert_eq!(token(&u), None, "an empty value is no token");
        let u = parse("/ws/bob?a=1", "").unwrap();
        assert_eq!(u.query.as_deref(), Some("a=1"));
        assert_eq!(token(&u), None);
    }

    #[test]
    fn a_bearer_header_is_read_and_wins_over_the_query() {
        for raw in samples().filter(|s| s.is_ascii() && !s.trim().is_empty()) {
            for scheme in ["Bearer", "bearer", "BEARER"] {
                let u = parse("/ws/alice", &format!("Authorization: {scheme} {raw}\r\n")).unwrap();
                assert_eq!(token(&u), Some(raw.trim()), "{scheme} {raw:?}");
            }
        }
        let u = parse("/ws?token=query", "authorization:   Bearer   header  \r\n").unwrap();
        assert_eq!(token(&u), Some("header"));
        assert_eq!(u.query, None);
        for other in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Bearertoken"] {
            let u = parse("/ws/a", &format!("Authorization: {other}\r\n")).unwrap();
            assert_eq!(token(&u), None, "{other}");
        }
        let u = parse("/ws/a?token=q", "Authorization: Basic x\r\n").unwrap();
        assert_eq!(
            token(&u),
            Some("q"),
            "another scheme leaves the query token"
        );
    }

    #[test]
    fn the_token_is_not_forwarded_nor_printed() {
        let u = parse("/ws?token=s3cr3t", "Authorization: Bearer h3ad3r\r\n").unwrap();
        let shown = format!("{u:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("h3ad3r"),
            "{shown}"
        );
        assert!(u.headers.iter().all(|(name, _)| name != "authorization"));
    }

    #[test]
    fn identify_without_auth_trusts_the_url_and_needs_an_id() {
        let u = parse("/ws/alice?token=whatever", "").unwrap();
        let who = u.identify(None).unwrap();
        assert_eq!(who.id.as_str(), "alice");
        assert!(who.claims.is_none());
        let e = parse("/ws?token=x", "")
            .unwrap()
            .identify(None)
            .unwrap_err();
        assert!(matches!(e, HandshakeError::Id(IdError::Missing)), "{e}");
        assert_eq!(e.status(), Some(400));
    }

    #[test]
    fn gzip_is_taken_when_listed_with_a_q_above_zero() {
        for yes in [
            "gzip",
            "GZIP",
            "deflate, gzip;q=0.5",
            "x-gzip",
            "*",
            "br, *;q=0.1",
            "gzip ; q=1",
        ] {
            assert!(accepts_gzip(Some(yes)), "{yes}");
        }
        for no in [
            "",
            "identity",
            "deflate, br",
            "gzip;q=0",
            "gzip;q=0.0, *",
            "*;q=0",
            "gzip;q=junk",
        ] {
            assert!(!accepts_gzip(Some(no)), "{no}");
        }
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn a_foreign_origin_is_refused_before_the_token_is_looked_at() {
        let verifier = Verifier::new(&AuthConfig {
            secret: Some(SECRET.into()),
            ..AuthConfig::default()
        })
        .unwrap();
        let origins = OriginPolicy::default();
        let foreign = parse("/ws/alice", "Origin: https://evil.example\r\n").unwrap();
        let e = foreign.admit(Some(&verifier), &origins).unwrap_err();
        assert_eq!(e.status(), Some(403), "{e}");
        // The request's Host is `x`: `http://x` is the server's own.
        let own = parse("/ws/alice", "Origin: http://x\r\n").unwrap();
        assert_eq!(own.admit(None, &origins).unwrap().id.as_str(), "alice");
        let e = own.admit(Some(&verifier), &origins).unwrap_err();
        assert_eq!(e.status(), Some(401), "then the token: {e}");
        assert!(
            !own.headers.iter().any(|(name, _)| name == "host"),
            "the Host is not passed on"
        );
    }

    #[test]
    fn identify_with_auth_takes_the_sub() {
        let verifier = Verifier::new(&AuthConfig {
            secret: Some(SECRET.into()),
            ..AuthConfig::default()
        })
        .unwrap();
        let mut extra = crate::net::auth::Claims::new();
        extra.insert("role".into(), "admin".into());
        let t =
            crate::net::auth::mint_token(SECRET, "alice", Duration::from_secs(60), extra).unwrap();
        for (target, header) in [
            (format!("/ws?token={t}"), String::new()),
            (format!("/ws/?token={t}"), String::new()),
            (format!("/ws/alice?token={t}"), String::new()),
            (format!("/ws?id=alice&token={t}"), String::new()),
            ("/ws".to_owned(), format!("Authorization: Bearer {t}\r\n")),
        ] {
            let who = parse(&target, &header)
                .unwrap()
                .identify(Some(&verifier))
                .unwrap();
            assert_eq!(who.id.as_str(), "alice", "{target}");
            let claims = who.claims.unwrap();
            assert_eq!(claims["role"], "admin");
            assert_eq!(claims["sub"], "alice");
        }
        let refused = |target: &str| {
            let e = parse(target, "")
                .unwrap()
                .identify(Some(&verifier))
                .unwrap_err();
            assert_eq!(e.status(), Some(401), "{target}: {e}");
            e.to_string()
        };
        assert_eq!(
            refused("/ws/alice"),
            "missing token: pass ?token= or Authorization: Bearer"
        );
        assert_eq!(
            refused(&format!("/ws/bob?token={t}")),
            "token sub \"alice\" does not match the id \"bob\" in the URL"
        );
        assert!(refused("/ws?token=abc").starts_with("invalid token: "));
    }
}
