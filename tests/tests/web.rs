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
