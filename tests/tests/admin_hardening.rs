//! The admin interface under a client that does not play along (issue
//! 20): an upload without the token is refused before its body is read, a
//! request's head must arrive within `[admin] header_timeout_secs`, and at
//! most `[admin] max_connections` connections are served at once.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use switchboard::config::Config;
use switchboard_tests::{
    TestServer, WAIT, content_length, http_status, tolerant_config, with_admin,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "admin-hardening-token-0123456789";

/// A server with an admin interface, its settings changed by `tune`.
async fn start(tune: impl FnOnce(&mut switchboard::config::AdminConfig)) -> Result<TestServer> {
    let mut config: Config = with_admin(tolerant_config(), TOKEN);
    if let Some(admin) = &mut config.admin {
        tune(admin);
    }
    TestServer::start(config).await
}

async fn connect(server: &TestServer) -> Result<TcpStream> {
    let addr = server.admin_addr.context("no admin interface")?;
    Ok(TcpStream::connect(addr).await?)
}

fn host(server: &TestServer) -> Result<String> {
    Ok(server.admin_addr.context("no admin interface")?.to_string())
}

/// One response read off `tcp` (which stays open): its status and body.
async fn response(tcp: &mut TcpStream) -> Result<(u16, String)> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).into_owned();
                let length = content_length(&head)?;
                if raw.len() >= end + 4 + length {
                    let status = http_status(&head)?;
                    let body = String::from_utf8_lossy(&raw[end + 4..end + 4 + length]);
                    return Ok((status, body.into_owned()));
                }
            }
            let n = tcp.read(&mut buf).await?;
            if n == 0 {
                bail!(
                    "closed before a whole response: {:?}",
                    String::from_utf8_lossy(&raw)
                );
            }
            raw.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .context("no response in time")?
}

/// Wait (bounded by WAIT) until the server closes `tcp`; what it sent
/// before the close is returned.
async fn closed_by_server(tcp: &mut TcpStream) -> Result<Vec<u8>> {
    let mut rest = Vec::new();
    match tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest)).await {
        Ok(Ok(_)) => Ok(rest),
        // A reset is a close too.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(rest),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => bail!("the server kept the connection open for {WAIT:?}"),
    }
}

fn get(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_without_the_token_is_refused_before_its_body() -> Result<()> {
    let server = start(|_| {}).await?;
    let host = host(&server)?;
    for auth in ["", "Authorization: Bearer not-the-token-0123456789\r\n"] {
        let mut tcp = connect(&server).await?;
        // A gigabyte announced, not a byte of it sent: the answer cannot
        // wait for the body.
        let head = format!(
            "PUT /admin/policy HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/wasm\r\n\
             Content-Length: 1000000000\r\n{auth}\r\n"
        );
        tcp.write_all(head.as_bytes()).await?;
        let (status, body) = response(&mut tcp).await?;
        ensure!(status == 401, "{auth:?}: {status} {body}");
        ensure!(body.contains("\"unauthorized\""), "{body}");
        // And the connection is not kept waiting for the body either.
        closed_by_server(&mut tcp).await?;
    }
    // Nothing changed, and a client with the token is served.
    let (status, _) = server
        .admin(Some(TOKEN))?
        .status()
        .await
        .map_err(anyhow::Error::msg)?;
    ensure!(status == 200, "{status}");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_that_stops_halfway_is_dropped_after_the_header_timeout() -> Result<()> {
    let server = start(|a| a.header_timeout = Duration::from_secs(1)).await?;
    let mut tcp = connect(&server).await?;
    let started = Instant::now();
    tcp.write_all(b"GET /heal").await?;
    closed_by_server(&mut tcp).await?;
    let waited = started.elapsed();
    ensure!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}, before the timeout"
    );
    // Silence from the first byte on is dropped the same way.
    let mut idle = connect(&server).await?;
    closed_by_server(&mut idle).await?;
    // A whole request is still answered.
    let (status, body) = server
        .admin(None)?
        .request(switchboard::ops::Method::Get, "/healthz")
        .await
        .map_err(anyhow::Error::msg)?;
    ensure!(status == 200, "{status} {body}");
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_answered_503() -> Result<()> {
    let server = start(|a| a.max_connections = 2).await?;
    let host = host(&server)?;
    // Two kept-alive connections, each served once (so both are counted).
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut tcp = connect(&server).await?;
        tcp.write_all(get(&host, "/healthz").as_bytes()).await?;
        let (status, body) = response(&mut tcp).await?;
        ensure!(status == 200, "{status} {body}");
        open.push(tcp);
    }
    // A third: 503, and closed.
    let mut third = connect(&server).await?;
    third.write_all(get(&host, "/healthz").as_bytes()).await?;
    let (status, body) = response(&mut third).await?;
    ensure!(status == 503, "past the cap: {status} {body}");
    ensure!(
        body.contains("\"busy\"") && body.contains("max_connections"),
        "{body}"
    );
    closed_by_server(&mut third).await?;
    // The kept connections are still served.
    open[0].write_all(get(&host, "/healthz").as_bytes()).await?;
    ensure!(response(&mut open[0]).await?.0 == 200);
    // One closes: its place is free again (once the server has seen it go).
    drop(open.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let mut tcp = connect(&server).await?;
        tcp.write_all(get(&host, "/healthz").as_bytes()).await?;
        match response(&mut tcp).await?.0 {
            200 => break,
            503 if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => bail!("after a connection closed: {other}"),
        }
    }
    server.shutdown().await
}
