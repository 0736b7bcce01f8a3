//! Plain HTTP on the public port: the web chat page (its files built into
//! the binary, off with `web_chat = false`), and the answer to a plain GET
//! of a WebSocket URL, which tells a browser why its upgrade would be
//! refused (401, 400, 404) or that it would be accepted (426), readable
//! from any origin.

use std::time::Duration;

use anyhow::{Result, ensure};
use switchboard::config::{AuthConfig, Config};
use switchboard::net::auth::{Claims, mint_token};
use switchboard_tests::{HttpResponse, TestServer, tolerant_config};

const SECRET: &str = "test secret that is long enough for HS256";

fn header<'a>(r: &'a HttpResponse, name: &str) -> Option<&'a str> {
    r.head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn the_page_and_its_files_are_served() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let page = server.raw_plain("GET", "/").await?;
    ensure!(page.status == 200, "GET / → {}", page.head);
    ensure!(header(&page, "content-type") == Some("text/html; charset=utf-8"));
    ensure!(
        page.body.contains("/switchboard.js"),
        "the page loads the client"
    );
    ensure!(header(&page, "content-security-policy").is_some());
    for (path, kind) in [
        ("/switchboard.js", "text/javascript"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
        ("/index.html", "text/html"),
    ] {
        let r = server.raw_plain("GET", path).await?;
        ensure!(r.status == 200, "GET {path} → {}", r.head);
        ensure!(
            header(&r, "content-type").is_some_and(|t| t.starts_with(kind)),
            "GET {path}: {}",
            r.head
        );
    }
    let client = server.raw_plain("GET", "/switchboard.js").await?;
    ensure!(client.body.contains("Switchboard"), "the client library");
    let head = server.raw_plain("HEAD", "/").await?;
    ensure!(
        head.status == 200 && head.body.is_empty(),
        "HEAD / → {}",
        head.head
    );
    let missing = server.raw_plain("GET", "/nothing-here").await?;
    ensure!(
        missing.status == 404,
        "GET /nothing-here → {}",
        missing.head
    );
    // The WebSocket endpoint still works beside it.
    server.connect("alice").await?.close().await?;
    server.shutdown().await
}

#[tokio::test]
async fn web_chat_false_serves_no_page() -> Result<()> {
    let server = TestServer::start(Config {
        web_chat: false,
        ..tolerant_config()
    })
    .await?;
    for path in ["/", "/switchboard.js", "/app.js"] {
        let r = server.raw_plain("GET", path).await?;
        ensure!(r.status == 404, "GET {path} → {}", r.head);
    }
    server.connect("alice").await?.close().await?;
    server.shutdown().await
}

#[tokio::test]
async fn a_plain_get_of_a_websocket_url_says_what_its_upgrade_would_get() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let ok = server.raw_plain("GET", "/ws/alice").await?;
    ensure!(ok.status == 426, "a good URL → {}", ok.head);
    ensure!(header(&ok, "access-control-allow-origin") == Some("*"));
    let no_id = server.raw_plain("GET", "/ws").await?;
    ensure!(no_id.status == 400, "no id → {}", no_id.head);
    ensure!(no_id.body.starts_with("missing id"), "{}", no_id.body);
    let bad_id = server.raw_plain("GET", "/ws/a%20b").await?;
    ensure!(bad_id.status == 400, "bad id → {}", bad_id.head);
    server.shutdown().await?;

    let mut config = tolerant_config();
    config.auth = Some(AuthConfig {
        secret: Some(SECRET.into()),
        ..AuthConfig::default()
    });
    let server = TestServer::start(config).await?;
    let missing = server.raw_plain("GET", "/ws/alice").await?;
    ensure!(missing.status == 401, "no token → {}", missing.head);
    ensure!(header(&missing, "access-control-allow-origin") == Some("*"));
    let bad = server.raw_plain("GET", "/ws?token=not.a.jwt").await?;
    ensure!(bad.status == 401, "a bad token → {}", bad.head);
    let token = mint_token(SECRET, "alice", Duration::from_secs(60), Claims::new())?;
    let good = server
        .raw_plain("GET", &format!("/ws/alice?token={token}"))
        .await?;
    ensure!(good.status == 426, "a good token → {}", good.head);
    ensure!(!good.body.contains(&token), "the token is not echoed");
    server.shutdown().await
}

#[tokio::test]
async fn the_pages_csp_keeps_connections_forms_and_base_to_this_origin() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let page = server.raw_plain("GET", "/").await?;
    let csp = header(&page, "content-security-policy").unwrap_or_default();
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    for wanted in [
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "default-src 'self'",
        "frame-ancestors 'none'",
    ] {
        ensure!(directives.contains(&wanted), "no {wanted:?} in {csp:?}");
    }
    // The login form cannot carry a token into a URL: it posts, and its
    // token field has no name (the script reads it by id).
    let form = page
        .body
        .split("<form")
        .find(|f| f.contains("id=\"login-form\""))
        .and_then(|f| f.split("</form>").next())
        .unwrap_or_default();
    ensure!(form.contains("method=\"post\""), "{form}");
    let token_field = form
        .split('<')
        .find(|tag| tag.contains("id=\"token-input\""))
        .unwrap_or_default();
    ensure!(
        !token_field.is_empty() && !token_field.contains("name="),
        "{token_field:?}"
    );
    server.shutdown().await
}

#[tokio::test]
async fn every_probe_and_refusal_answer_says_nosniff() -> Result<()> {
    let nosniff = |r: &HttpResponse, what: &str| {
        ensure!(
            header(r, "x-content-type-options") == Some("nosniff"),
            "{what}: {}",
            r.head
        );
        Ok(())
    };
    let server = TestServer::start(tolerant_config()).await?;
    let probe = server.raw_plain("GET", "/ws/alice").await?;
    ensure!(probe.status == 426, "{}", probe.head);
    nosniff(&probe, "a probe's 426")?;
    let bad_id = server.raw_plain("GET", "/ws/a%20b").await?;
    ensure!(bad_id.status == 400, "{}", bad_id.head);
    nosniff(&bad_id, "a probe's 400")?;
    let refused = server.raw_upgrade("/ws").await?;
    ensure!(refused.status == 400, "{}", refused.head);
    nosniff(&refused, "a refused upgrade's 400")?;
    let missing = server.raw_plain("GET", "/nothing-here").await?;
    ensure!(missing.status == 404, "{}", missing.head);
    nosniff(&missing, "a 404")?;
    nosniff(&server.raw_plain("GET", "/").await?, "the page")?;
    server.shutdown().await?;

    let mut config = tolerant_config();
    config.auth = Some(AuthConfig {
        secret: Some(SECRET.into()),
        ..AuthConfig::default()
    });
    let server = TestServer::start(config).await?;
    let unauthorized = server.raw_upgrade("/ws/alice").await?;
    ensure!(unauthorized.status == 401, "{}", unauthorized.head);
    nosniff(&unauthorized, "a refused upgrade's 401")?;
    nosniff(
        &server.raw_plain("GET", "/ws/alice").await?,
        "a probe's 401",
    )?;
    server.shutdown().await
}

/// `GET path` with `Accept-Encoding: accept` (none if `None`): the head and
/// the body's bytes as sent.
async fn get_encoded(
    server: &TestServer,
    path: &str,
    accept: Option<&str>,
) -> Result<(String, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await?;
    let accept = accept.map_or_else(String::new, |a| format!("Accept-Encoding: {a}\r\n"));
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{accept}\r\n").as_bytes())
        .await?;
    let mut raw = Vec::new();
    tokio::time::timeout(switchboard_tests::WAIT, tcp.read_to_end(&mut raw)).await??;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .ok_or_else(|| anyhow::anyhow!("no complete head"))?;
    let head = String::from_utf8(raw[..end].to_vec())?;
    let body = raw[end..].to_vec();
    let length = switchboard_tests::content_length(&head)?;
    ensure!(length == body.len(), "{head}: {} bytes", body.len());
    Ok((head, body))
}

fn head_has(head: &str, name: &str, value: &str) -> bool {
    head.lines().any(|l| {
        l.split_once(':')
            .is_some_and(|(n, v)| n.eq_ignore_ascii_case(name) && v.trim() == value)
    })
}

#[tokio::test]
async fn the_pages_files_are_gzipped_for_a_client_that_takes_gzip() -> Result<()> {
    use std::io::Read;
    let server = TestServer::start(tolerant_config()).await?;
    for path in [
        "/",
        "/index.html",
        "/app.js",
        "/style.css",
        "/switchboard.js",
    ] {
        let (plain_head, plain) = get_encoded(&server, path, None).await?;
        ensure!(plain_head.starts_with("HTTP/1.1 200"), "{plain_head}");
        ensure!(
            !plain_head.to_ascii_lowercase().contains("content-encoding"),
            "{path}: {plain_head}"
        );
        ensure!(
            head_has(&plain_head, "vary", "Accept-Encoding"),
            "{plain_head}"
        );
        for accept in [
            "gzip",
            "gzip, deflate, br, zstd",
            "br;q=1.0, GZIP;q=0.5",
            "*",
        ] {
            let (head, body) = get_encoded(&server, path, Some(accept)).await?;
            ensure!(head.starts_with("HTTP/1.1 200"), "{path} {accept}: {head}");
            ensure!(
                head_has(&head, "content-encoding", "gzip"),
                "{path} {accept}: {head}"
            );
            ensure!(head_has(&head, "vary", "Accept-Encoding"), "{head}");
            ensure!(
                head_has(
                    &head,
                    "content-security-policy",
                    header_value(&plain_head, "content-security-policy")
                ),
                "the gzip answer keeps the page's headers: {head}"
            );
            let mut unzipped = Vec::new();
            flate2::read::GzDecoder::new(body.as_slice()).read_to_end(&mut unzipped)?;
            ensure!(unzipped == plain, "{path} {accept}: not the same bytes");
            ensure!(body.len() < plain.len(), "{path}: gzip is not smaller");
        }
        for accept in [
            "gzip;q=0",
            "deflate, br",
            "identity",
            "*;q=0",
            "gzip; q=0.000",
        ] {
            let (head, body) = get_encoded(&server, path, Some(accept)).await?;
            ensure!(
                !head.to_ascii_lowercase().contains("content-encoding"),
                "{path} {accept}: {head}"
            );
            ensure!(body == plain, "{path} {accept}: not the identity body");
        }
    }
    // HEAD says the gzip length without the body.
    let head = server
        .raw_request(
            "HEAD /switchboard.js HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\n\r\n",
        )
        .await?;
    ensure!(
        head.body.is_empty() && head_has(&head.head, "content-encoding", "gzip"),
        "{}",
        head.head
    );
    server.shutdown().await
}

fn header_value<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_default()
}
