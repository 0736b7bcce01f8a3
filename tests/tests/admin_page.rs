//! The admin page's routes (the page itself is driven in Chromium by
//! clients/e2e/admin.test.mjs): the page is served without a token, and
//! every route it calls needs one; finding and disconnecting an id (4003,
//! on whichever node has it); checking a component without publishing it;
//! the recent swaps and rollbacks; the page's own origin passes the guard,
//! another does not.

use std::net::SocketAddr;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use switchboard_tests::cluster::{ask, connect, node};
use switchboard_tests::redis::RedisServer;
use switchboard_tests::{TestServer, WAIT, config, with_admin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "admin-page-token-0123456789";

/// One HTTP/1.1 request to the admin listener: (status, head, body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    origin: Option<&str>,
    body: &[u8],
) -> Result<(u16, String, String)> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(o) = origin {
        head.push_str(&format!("Origin: {o}\r\n"));
    }
    head.push_str("\r\n");
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(head.as_bytes()).await?;
    tcp.write_all(body).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await??;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("no end of head")?;
    let status = switchboard_tests::http_status(head)?;
    Ok((status, head.to_owned(), body.to_owned()))
}

async fn get_json(addr: SocketAddr, path: &str) -> Result<(u16, Value)> {
    let (status, _, body) = http(addr, "GET", path, Some(TOKEN), None, b"").await?;
    Ok((
        status,
        serde_json::from_str(&body).with_context(|| body.clone())?,
    ))
}

#[tokio::test]
async fn the_page_is_served_and_everything_it_calls_needs_the_token() -> Result<()> {
    let server = TestServer::start(with_admin(config(), TOKEN)).await?;
    let admin = server.admin_addr.context("no admin")?;
    let (status, head, body) = http(admin, "GET", "/", None, None, b"").await?;
    ensure!(
        status == 200 && body.contains("Switchboard admin"),
        "{status}: {body}"
    );
    ensure!(
        head.to_lowercase()
            .contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    for file in ["/admin.js", "/admin.css"] {
        let (status, _, _) = http(admin, "GET", file, None, None, b"").await?;
        ensure!(status == 200, "{file}: {status}");
    }
    for (method, path) in [
        ("GET", "/admin/overview"),
        ("GET", "/admin/connections?id=alice"),
        ("DELETE", "/admin/connections/alice"),
        ("POST", "/admin/policy/check"),
    ] {
        let (status, _, body) = http(admin, method, path, None, None, b"").await?;
        ensure!(
            status == 401,
            "{method} {path} without a token: {status} {body}"
        );
    }
    let (status, overview) = get_json(admin, "/admin/overview").await?;
    ensure!(status == 200, "{overview}");
    ensure!(
        overview["connections"]["open"] == 0 && overview["policy"]["active"]["seq"] == 1,
        "{overview}"
    );
    Ok(())
}

#[tokio::test]
async fn an_id_is_found_and_disconnected_with_4003() -> Result<()> {
    let server = TestServer::start(with_admin(config(), TOKEN)).await?;
    let admin = server.admin_addr.context("no admin")?;
    let mut alice = server.join("alice").await?;
    alice.join_room("alice", "lobby", 1).await?;
    let mut bob = server.join("bob").await?;
    bob.join_room("bob", "lobby", 2).await?;
    let _ = alice.drain().await?;

    let (status, found) = get_json(admin, "/admin/connections?id=alice").await?;
    ensure!(status == 200, "{found}");
    ensure!(
        found["here"] == true && found["rooms"] == json!(["lobby"]) && found["held"] == false,
        "{found}"
    );
    let address = found["address"].as_str().context("no address")?;
    ensure!(address.starts_with("127.0.0.1:"), "{found}");
    ensure!(
        found["since"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{found}"
    );

    // From the page: its own origin passes the guard.
    let own = format!("http://{admin}");
    let (status, _, body) = http(
        admin,
        "DELETE",
        "/admin/connections/alice?reason=see%20you",
        Some(TOKEN),
        Some(&own),
        b"",
    )
    .await?;
    ensure!(status == 200, "{status}: {body}");
    let closed = alice.closed().await?;
    ensure!(
        closed.code == Some(4003) && closed.reason == "see you",
        "{closed:?}"
    );
    // Its room hears it leave, as for any close.
    loop {
        let f = bob.recv_json().await?;
        if f["type"] == "left" {
            ensure!(f["id"] == "alice" && f["room"] == "lobby", "{f}");
            break;
        }
    }
    let (status, gone) = get_json(admin, "/admin/connections?id=alice").await?;
    ensure!(status == 404 && gone["error"] == "not-found", "{gone}");
    let (status, _, _) = http(
        admin,
        "DELETE",
        "/admin/connections/alice",
        Some(TOKEN),
        None,
        b"",
    )
    .await?;
    ensure!(status == 404, "{status}");

    // Another page's origin is refused before any route runs.
    let (status, _, body) = http(
        admin,
        "DELETE",
        "/admin/connections/bob",
        Some(TOKEN),
        Some("http://evil.example"),
        b"",
    )
    .await?;
    ensure!(status == 403, "{status}: {body}");
    Ok(())
}

#[tokio::test]
async fn a_component_is_checked_without_being_published_and_changes_are_listed() -> Result<()> {
    let server = TestServer::start(with_admin(config(), TOKEN)).await?;
    let admin = server.admin_addr.context("no admin")?;
    let misbehave = std::fs::read(switchboard_tests::misbehave_wasm())?;
    let (status, _, body) = http(
        admin,
        "POST",
        "/admin/policy/check?source=misbehave.wasm",
        Some(TOKEN),
        None,
        &misbehave,
    )
    .await?;
    ensure!(status == 200, "{status}: {body}");
    let report: Value = serde_json::from_str(&body)?;
    ensure!(
        report["sha256"].as_str().is_some_and(|s| s.len() == 64)
            && report["source"] == "misbehave.wasm",
        "{report}"
    );
    let (status, _, body) = http(
        admin,
        "POST",
        "/admin/policy/check",
        Some(TOKEN),
        None,
        b"not wasm",
    )
    .await?;
    ensure!(
        status == 422 && body.contains("compile"),
        "{status}: {body}"
    );
    // Nothing was published.
    let (_, overview) = get_json(admin, "/admin/overview").await?;
    ensure!(overview["policy"]["active"]["seq"] == 1, "{overview}");

    let (code, swapped) = server
        .policy_swap(TOKEN, misbehave, "misbehave.wasm")
        .await?;
    ensure!(code == 200, "{swapped}");
    let (code, rolled) = server.policy_rollback(TOKEN).await?;
    ensure!(code == 200, "{rolled}");
    let status = server.policy_status(TOKEN).await?;
    let recent = status["recent"].as_array().context("no recent")?;
    ensure!(recent.len() == 2, "{status}");
    ensure!(
        recent[0]["kind"] == "rollback" && recent[0]["from"] == 2 && recent[0]["to"] == 1,
        "{status}"
    );
    ensure!(
        recent[1]["kind"] == "swap"
            && recent[1]["to"] == 2
            && recent[1]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("misbehave.wasm")),
        "{status}"
    );
    Ok(())
}

/// In a cluster the page counts every node's connections, finds an id on
/// another node, and disconnects it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_on_another_node_is_found_and_disconnected_there() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(with_admin(node(&redis, "a")?, TOKEN)).await?;
    let b = TestServer::start(node(&redis, "b")?).await?;
    let admin = a.admin_addr.context("no admin")?;
    let mut carol = connect(&b, "carol").await?;
    let (_, ack) = ask(&mut carol, json!({"type": "join", "room": "garden"}), "j").await?;
    ensure!(ack["type"] == "ack", "{ack}");

    let start = std::time::Instant::now();
    let found = loop {
        let (status, found) = get_json(admin, "/admin/connections?id=carol").await?;
        if status == 200 && found["rooms"] == json!(["garden"]) {
            break found;
        }
        ensure!(
            start.elapsed() < WAIT,
            "carol never found from node a: {found}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    ensure!(found["node"] == "b" && found["here"] == false, "{found}");
    let (_, overview) = get_json(admin, "/admin/overview").await?;
    let nodes = overview["connections"]["nodes"]
        .as_array()
        .context("no nodes")?;
    ensure!(
        nodes.iter().any(|n| n["node"] == "b" && n["online"] == 1),
        "{overview}"
    );

    let (status, _, body) = http(
        admin,
        "DELETE",
        "/admin/connections/carol",
        Some(TOKEN),
        None,
        b"",
    )
    .await?;
    ensure!(
        status == 200 && body.contains("\"node\": \"b\""),
        "{status}: {body}"
    );
    let closed = carol.closed().await?;
    ensure!(
        closed.code == Some(4003) && closed.reason == "disconnected by an operator",
        "{closed:?}"
    );
    Ok(())
}
