//! The `Origin` check on upgrades (cross-site WebSocket hijacking): by
//! default a web page's origin must be the server's own (its `Host`) or
//! listed in `--allowed-origins`, and `Origin: null` is refused, each with
//! HTTP 403 and the reason, before the policy hears of the connection. No
//! `Origin` (apps, servers) and non-web schemes (WeChat's
//! `weapp://wechat-game-runtime`) pass unless `--refuse-non-web-origins`.

use anyhow::{Context, Result, bail, ensure};
use switchboard::chat::record::{Event, Recorded};
use switchboard::config::Config;
use switchboard_tests::{
    Io, TestServer, WAIT, http_status, switchboard_bin, tolerant_config, watch,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A WebSocket upgrade's answer: its status, head and (for a refusal) body.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Upgrade `/ws/<id>` (or, with `plain`, only GET it: the probe) sending
/// `Host: host` and, if given, `Origin: origin`; the answer. An accepted
/// upgrade's socket is dropped once the 101 is read.
async fn request(
    server: &TestServer,
    id: &str,
    host: &str,
    origin: Option<&str>,
    plain: bool,
) -> Result<Answer> {
    let tcp = TcpStream::connect(server.addr).await?;
    let mut io: Box<dyn Io> = if server.url("").starts_with("wss") {
        Box::new(server.tls_connect(tcp).await?)
    } else {
        Box::new(tcp)
    };
    let origin = origin.map_or_else(String::new, |o| format!("Origin: {o}\r\n"));
    let upgrade = if plain {
        ""
    } else {
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    };
    let text = format!("GET /ws/{id} HTTP/1.1\r\nHost: {host}\r\n{upgrade}{origin}\r\n");
    io.write_all(text.as_bytes()).await?;
    let mut raw = Vec::new();
    let end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(WAIT, io.read(&mut chunk))
            .await
            .context("no answer in time")??;
        if n == 0 {
            bail!(
                "closed before an answer: {:?}",
                String::from_utf8_lossy(&raw)
            );
        }
        raw.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = http_status(&head)?;
    // After a 101 come frames (the welcome), which are not the answer's.
    let mut body = Vec::new();
    if status != 101 {
        body.extend_from_slice(&raw[end..]);
        tokio::time::timeout(WAIT, io.read_to_end(&mut body))
            .await
            .context("refusal not finished in time")??;
    }
    Ok(Answer {
        status,
        head,
        body: String::from_utf8(body)?,
    })
}

async fn upgrade(
    server: &TestServer,
    id: &str,
    host: &str,
    origin: Option<&str>,
) -> Result<Answer> {
    request(server, id, host, origin, false).await
}

/// The probe: a plain GET of the same URL.
async fn probe(server: &TestServer, id: &str, host: &str, origin: Option<&str>) -> Result<Answer> {
    request(server, id, host, origin, true).await
}

/// `what` is accepted (101).
fn accepted(answer: &Answer, what: &str) -> Result<()> {
    ensure!(
        answer.status == 101,
        "{what}: {}{}",
        answer.head,
        answer.body
    );
    Ok(())
}

/// `what` is refused with 403 and a reason that names `origin`.
fn refused(answer: &Answer, origin: &str, what: &str) -> Result<()> {
    ensure!(
        answer.status == 403,
        "{what}: {}{}",
        answer.head,
        answer.body
    );
    ensure!(
        answer
            .body
            .contains(&format!("origin \"{origin}\" is not allowed")),
        "{what}: {:?}",
        answer.body
    );
    ensure!(
        answer
            .head
            .to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{what}: {}",
        answer.head
    );
    Ok(())
}

fn config(allowed: &str, refuse_non_web: bool) -> Result<Config> {
    Ok(Config {
        allowed_origins: allowed.parse().map_err(anyhow::Error::msg)?,
        refuse_non_web_origins: refuse_non_web,
        ..tolerant_config()
    })
}

#[tokio::test]
async fn by_default_a_foreign_web_page_and_null_are_refused_and_the_rest_accepted() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let host = format!("127.0.0.1:{}", server.addr.port());
    let own = format!("http://{host}");

    let foreign = upgrade(&server, "eve", &host, Some("https://evil.example")).await?;
    refused(&foreign, "https://evil.example", "a foreign https page")?;
    ensure!(
        foreign.body.contains("--allowed-origins"),
        "{}",
        foreign.body
    );
    let null = upgrade(&server, "eve", &host, Some("null")).await?;
    refused(&null, "null", "Origin: null")?;
    // Another name for the same address, or another port, is another origin.
    for other in [
        format!("http://localhost:{}", server.addr.port()),
        format!("http://127.0.0.1:{}", server.addr.port() ^ 1),
    ] {
        refused(
            &upgrade(&server, "eve", &host, Some(&other)).await?,
            &other,
            &other,
        )?;
    }
    ensure!(!server.registry.is_online("eve"));

    accepted(
        &upgrade(&server, "own", &host, Some(&own)).await?,
        "own origin",
    )?;
    accepted(
        &upgrade(&server, "case", &host, Some(&own.to_uppercase())).await?,
        "own origin in capitals",
    )?;
    accepted(
        &upgrade(
            &server,
            "port80",
            "chat.example.com",
            Some("http://chat.example.com:80"),
        )
        .await?,
        "own origin with the default port spelt out",
    )?;
    accepted(&upgrade(&server, "app", &host, None).await?, "no Origin")?;
    accepted(
        &upgrade(
            &server,
            "wechat",
            &host,
            Some("weapp://wechat-game-runtime"),
        )
        .await?,
        "WeChat on iOS",
    )?;
    server.shutdown().await
}

#[tokio::test]
async fn the_probe_of_a_websocket_url_answers_403_for_the_same_origins() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let host = format!("127.0.0.1:{}", server.addr.port());
    let foreign = probe(&server, "eve", &host, Some("https://evil.example")).await?;
    refused(
        &foreign,
        "https://evil.example",
        "probe from a foreign page",
    )?;
    ensure!(
        foreign.head.contains("Access-Control-Allow-Origin: *"),
        "the page may read why: {}",
        foreign.head
    );
    refused(
        &probe(&server, "eve", &host, Some("null")).await?,
        "null",
        "probe from null",
    )?;
    for origin in [
        Some(format!("http://{host}")),
        None,
        Some("weapp://x".into()),
    ] {
        let answer = probe(&server, "ok", &host, origin.as_deref()).await?;
        ensure!(answer.status == 426, "{origin:?}: {}", answer.head);
    }
    server.shutdown().await
}

#[tokio::test]
async fn a_listed_origin_is_accepted_and_star_accepts_any() -> Result<()> {
    let server = TestServer::start(config(
        "https://app.example.com, http://localhost:8080",
        false,
    )?)
    .await?;
    let host = format!("127.0.0.1:{}", server.addr.port());
    for origin in [
        "https://app.example.com",
        "HTTPS://APP.example.com:443",
        "http://localhost:8080",
    ] {
        accepted(
            &upgrade(&server, "listed", &host, Some(origin)).await?,
            origin,
        )?;
    }
    for origin in [
        "https://app.example.com:8443",
        "http://localhost:8081",
        "https://evil.example",
    ] {
        refused(
            &upgrade(&server, "not", &host, Some(origin)).await?,
            origin,
            origin,
        )?;
    }
    accepted(
        &upgrade(&server, "own", &host, Some(&format!("http://{host}"))).await?,
        "own",
    )?;
    server.shutdown().await?;

    let server = TestServer::start(config("*", false)?).await?;
    let host = format!("127.0.0.1:{}", server.addr.port());
    for origin in ["https://evil.example", "null"] {
        accepted(&upgrade(&server, "any", &host, Some(origin)).await?, origin)?;
    }
    server.shutdown().await
}

#[tokio::test]
async fn refuse_non_web_origins_refuses_an_unlisted_weapp_origin() -> Result<()> {
    let server = TestServer::start(config("", true)?).await?;
    let host = format!("127.0.0.1:{}", server.addr.port());
    let weapp = "weapp://wechat-game-runtime";
    refused(
        &upgrade(&server, "wx", &host, Some(weapp)).await?,
        weapp,
        "unlisted weapp",
    )?;
    accepted(&upgrade(&server, "app", &host, None).await?, "no Origin")?;
    accepted(
        &upgrade(&server, "own", &host, Some(&format!("http://{host}"))).await?,
        "own origin",
    )?;
    server.shutdown().await?;

    let server = TestServer::start(config(weapp, true)?).await?;
    let host = format!("127.0.0.1:{}", server.addr.port());
    accepted(
        &upgrade(&server, "wx", &host, Some(weapp)).await?,
        "listed weapp",
    )?;
    refused(
        &upgrade(&server, "wx2", &host, Some("weapp://other")).await?,
        "weapp://other",
        "another weapp",
    )?;
    server.shutdown().await
}

#[tokio::test]
async fn over_tls_the_own_origin_is_https() -> Result<()> {
    let server = TestServer::start_tls(tolerant_config()).await?;
    let host = format!("localhost:{}", server.addr.port());
    accepted(
        &upgrade(&server, "own", &host, Some(&format!("https://{host}"))).await?,
        "own https origin",
    )?;
    // Behind a proxy that ends TLS on 443, the Host names no port.
    accepted(
        &upgrade(
            &server,
            "proxied",
            "chat.example.com",
            Some("https://chat.example.com"),
        )
        .await?,
        "own origin on the default port",
    )?;
    let foreign = "https://evil.example";
    refused(
        &upgrade(&server, "eve", &host, Some(foreign)).await?,
        foreign,
        "foreign",
    )?;
    server.shutdown().await
}

#[tokio::test]
async fn a_refused_origin_never_reaches_the_policy() -> Result<()> {
    let events =
        std::env::temp_dir().join(format!("switchboard-origin-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&events);
    let server = TestServer::start(Config {
        record_events: Some(events.clone()),
        ..tolerant_config()
    })
    .await?;
    let host = format!("127.0.0.1:{}", server.addr.port());
    refused(
        &upgrade(&server, "eve", &host, Some("https://evil.example")).await?,
        "https://evil.example",
        "foreign",
    )?;
    accepted(&upgrade(&server, "alice", &host, None).await?, "no Origin")?;
    server.shutdown().await?;
    let text = std::fs::read_to_string(&events);
    let _ = std::fs::remove_file(&events);
    let connected: Vec<String> = text?
        .lines()
        .filter_map(|line| serde_json::from_str::<Recorded>(line).ok())
        .filter_map(|r| match r.event {
            Event::Connect { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    ensure!(connected == ["alice"], "{connected:?}");
    Ok(())
}

/// `text` as a `switchboard.toml`, loaded as the binary loads it.
fn file(text: &str) -> Result<Config, String> {
    let path = std::env::temp_dir().join(format!(
        "switchboard-origin-{}-{}.toml",
        std::process::id(),
        text.len()
    ));
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let loaded = switchboard::config::file::load(&path);
    let _ = std::fs::remove_file(&path);
    loaded.map_err(|e| e.to_string())?.to_config()
}

/// The settings reach the config from the file (an array, or one
/// comma-separated string) and from a variable; a bad entry is refused
/// with its reason.
#[tokio::test]
async fn the_settings_parse_from_the_file_and_the_environment() -> Result<()> {
    let config = file(
        "allowed_origins = [\"https://a.example\", \"HTTPS://b.example:8443/\"]\n\
         refuse_non_web_origins = true\n",
    )
    .map_err(anyhow::Error::msg)?;
    ensure!(
        config.allowed_origins.to_string() == "https://a.example,https://b.example:8443",
        "{}",
        config.allowed_origins
    );
    ensure!(config.refuse_non_web_origins);
    let config =
        file("allowed_origins = \"https://a.example, *\"\n").map_err(anyhow::Error::msg)?;
    ensure!(
        config.allowed_origins.allows_any(),
        "{}",
        config.allowed_origins
    );
    let Err(e) = file("allowed_origins = [\"https://a.example/app\"]\n") else {
        bail!("an origin with a path was accepted");
    };
    ensure!(
        e.contains("https://a.example/app") && e.contains("scheme://host[:port]"),
        "{e}"
    );

    // The binary reads the variable: a bad entry stops it with the reason.
    let mut cmd = std::process::Command::new(switchboard_bin()?);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SWITCHBOARD_") {
            cmd.env_remove(&name);
        }
    }
    let child = cmd
        .env(
            "SWITCHBOARD_ALLOWED_ORIGINS",
            "https://ok.example,not-an-origin",
        )
        .env("SWITCHBOARD_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_ADMIN_LISTEN", "off")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut watched = watch(child, |_| {})?;
    let Ok(status) = tokio::time::timeout(WAIT * 4, &mut watched.status).await else {
        // It serves: the variable was not read. Stop it.
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill(2) only sends a signal; it touches no memory of ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        bail!("the binary did not stop on a bad SWITCHBOARD_ALLOWED_ORIGINS");
    };
    let status = status??;
    let mut stderr = String::new();
    // Every line: the reading thread ends at the pipe's end.
    while let Ok(Some(line)) = tokio::time::timeout(WAIT, watched.lines.recv()).await {
        stderr.push_str(&line);
        stderr.push('\n');
    }
    ensure!(status.code() == Some(2), "{status}: {stderr}");
    ensure!(
        stderr.contains("\"not-an-origin\" is not an origin"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn behind_a_proxy_that_rewrites_host_the_forwarded_host_is_the_servers_own() -> Result<()> {
    let server = TestServer::start(tolerant_config()).await?;
    let upstream = format!("127.0.0.1:{}", server.addr.port());
    // nginx with its default Host ($proxy_host) and X-Forwarded-Host $host:
    // the chat page (or WeChat on Android) at https://chat.example.com.
    let proxied = format!("{upstream}\r\nX-Forwarded-Host: chat.example.com");
    let answer = upgrade(&server, "page", &proxied, Some("https://chat.example.com")).await?;
    accepted(&answer, "the public host in X-Forwarded-Host")?;
    let listed_first = format!("{upstream}\r\nX-Forwarded-Host: chat.example.com, inner.proxy");
    let answer = upgrade(
        &server,
        "page2",
        &listed_first,
        Some("https://chat.example.com"),
    )
    .await?;
    accepted(&answer, "the first of several forwarded hosts")?;
    // Another site is still another site.
    let answer = upgrade(&server, "eve", &proxied, Some("https://evil.example")).await?;
    refused(
        &answer,
        "https://evil.example",
        "a foreign page behind the proxy",
    )?;
    Ok(())
}
