//! Admission at accept, before TLS and before a byte is read: connections
//! and handshakes in progress per address, and the server-wide connection
//! limit, which counts TLS handshakes too.

use anyhow::{Context, Result, bail};
use switchboard::config::Config;
use switchboard_tests::{Inside, TestServer, WAIT, eventually, tolerant_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Open a TCP connection that sends nothing (a handshake that never goes
/// on) and wait until the server has admitted it.
async fn silent(server: &TestServer, inside: &Inside, admitted: usize) -> Result<TcpStream> {
    let tcp = TcpStream::connect(server.addr).await?;
    eventually("the silent connection admitted", || {
        inside.admission.connections() == admitted
    })
    .await?;
    Ok(tcp)
}

/// Read what the server sends on `tcp` until it closes: what a client over
/// a limit that gets no answer sees.
async fn read_until_closed(tcp: &mut TcpStream) -> Result<Vec<u8>> {
    let mut got = Vec::new();
    match tokio::time::timeout(WAIT, tcp.read_to_end(&mut got)).await {
        Err(_) => bail!("the server kept the connection open"),
        // A reset is a close too.
        Ok(Ok(_)) | Ok(Err(_)) => Ok(got),
    }
}

fn with(f: impl FnOnce(&mut Config)) -> Config {
    let mut c = tolerant_config();
    f(&mut c);
    c
}

#[tokio::test]
async fn connections_per_address_are_capped_with_503() -> Result<()> {
    let config = with(|c| c.limits.max_connections_per_ip = 2);
    let (server, inside) = TestServer::start_inside(config, false).await?;
    let a = server.join("a").await?;
    let mut b = server.join("b").await?;

    let refused = server.raw_upgrade("/ws/c").await?;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(
        refused.body.trim_end(),
        "too many connections from your address; try again later"
    );
    assert!(!server.registry.is_online("c"));

    // Once one has gone (and the server has counted it out), there is room.
    a.close().await?;
    eventually("`a` counted out", || inside.admission.connections() == 1).await?;
    let mut c = server.join("c").await?;
    b.expect_idle().await?;
    c.expect_idle().await?;
    // Nothing is left behind per address once everyone has gone (closed:
    // a dropped socket's id would be held, and count, for its window).
    b.close().await?;
    c.close().await?;
    eventually("every address forgotten", || {
        inside.admission.addresses() == 0
    })
    .await?;
    server.shutdown().await
}

#[tokio::test]
async fn handshakes_in_progress_per_address_are_capped_with_503() -> Result<()> {
    let config = with(|c| c.limits.max_handshakes_per_ip = 2);
    let (server, inside) = TestServer::start_inside(config, false).await?;
    let first = silent(&server, &inside, 1).await?;
    let second = silent(&server, &inside, 2).await?;

    let refused = server.raw_upgrade("/ws/x").await?;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(
        refused.body.trim_end(),
        "too many handshakes in progress from your address; try again later"
    );

    drop(first);
    eventually("the first silent one counted out", || {
        inside.admission.connections() == 1
    })
    .await?;
    // An open connection is no longer a handshake: two more fit beside the
    // silent one, one after the other.
    let mut x = server.join("x").await?;
    let mut y = server.join("y").await?;
    x.expect_idle().await?;
    y.expect_idle().await?;
    // A handshake in progress would hold the shutdown up to its timeout.
    drop(second);
    server.shutdown().await
}

#[tokio::test]
async fn tls_handshakes_per_address_are_capped_before_tls() -> Result<()> {
    let config = with(|c| c.limits.max_handshakes_per_ip = 2);
    let (server, inside) = TestServer::start_inside(config, true).await?;
    let first = silent(&server, &inside, 1).await?;
    let second = silent(&server, &inside, 2).await?;

    // The third is closed at once: no TLS handshake (not a byte of a
    // ServerHello) is spent on it, though it is waiting for one.
    let mut third = TcpStream::connect(server.addr).await?;
    assert_eq!(read_until_closed(&mut third).await?, Vec::<u8>::new());
    // A real TLS client is turned away the same way.
    let tcp = TcpStream::connect(server.addr).await?;
    assert!(server.tls_connect(tcp).await.is_err());
    assert_eq!(inside.admission.connections(), 2);

    drop(first);
    eventually("the first silent one counted out", || {
        inside.admission.connections() == 1
    })
    .await?;
    let mut t = server.join("t").await?;
    t.expect_idle().await?;
    drop(second);
    server.shutdown().await
}

#[tokio::test]
async fn the_connection_limit_counts_tls_handshakes_and_answers_503_over_tls() -> Result<()> {
    let config = with(|c| c.limits.max_connections = 2);
    let (server, inside) = TestServer::start_inside(config, true).await?;
    let first = silent(&server, &inside, 1).await?;
    let second = silent(&server, &inside, 2).await?;

    // Two TLS handshakes in progress fill the server: a third client gets
    // its TLS session and then a 503 with the reason.
    let tcp = TcpStream::connect(server.addr).await?;
    let mut tls = server.tls_connect(tcp).await?;
    tls.write_all(
        b"GET /ws/z HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await?;
    let mut answer = Vec::new();
    // The server may end the TLS session without a close_notify.
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut answer))
        .await
        .context("no answer in time")?;
    let answer = String::from_utf8(answer)?;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.ends_with("server is at its connection limit; try again later\n"),
        "{answer}"
    );
    assert!(!server.registry.is_online("z"));
    drop((first, second));
    server.shutdown().await
}
