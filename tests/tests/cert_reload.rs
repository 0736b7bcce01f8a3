//! Certificate reload (issue 22, section 4): the wss certificate and key
//! are read again when their files change (a renewal) and on SIGHUP; new
//! handshakes present the new pair while open connections stay up; a pair
//! that does not load is refused with a log line and the old one stays.
//! Two certificates are generated here; each client trusts exactly one.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use serde_json::json;
use switchboard_tests::{TestCert, TestServer, WAIT, tolerant_config};

/// Put `from`'s certificate and key where `to`'s are (a renewal that
/// replaces the files in place).
fn renew(from: &TestCert, to: &TestCert) -> Result<()> {
    let (new, old) = (from.files(), to.files());
    std::fs::copy(&new.cert, &old.cert)?;
    std::fs::copy(&new.key, &old.key)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_presented_to_new_handshakes_and_open_connections_stay()
-> Result<()> {
    let server = TestServer::start_tls(tolerant_config()).await?;
    let first = server.tls_cert().expect("a wss server");
    let mut alice = server.join("alice").await?;

    let second = TestCert::generate()?;
    renew(&second, &first)?;
    // The files changed: the server notices (it looks every few seconds)
    // and new handshakes present the second certificate.
    let deadline = Instant::now() + WAIT * 2;
    let mut bob = loop {
        match server.connect_trusting(&second, "/ws/bob").await {
            Ok(bob) => break bob,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => bail!("the renewed certificate never presented: {e:#}"),
        }
    };
    ensure!(bob.recv_json().await?["type"] == "welcome");
    // A client that trusts only the first one is turned away now.
    ensure!(
        server.connect_trusting(&first, "/ws/carol").await.is_err(),
        "the old certificate is still presented"
    );
    // The connection made with the first certificate is still up.
    alice.send_json(json!({"type": "ping", "ref": 1})).await?;
    ensure!(alice.recv_json().await? == json!({"type": "pong"}));
    ensure!(alice.recv_json().await? == json!({"type": "ack", "ref": 1}));

    // A bad pair (the first certificate with the second one's key) is
    // refused, and the second certificate stays in use.
    let (files, wrong) = (first.files(), second.files());
    std::fs::copy(&wrong.key, &files.key)?;
    let mismatched = first_cert_pem()?;
    std::fs::write(&files.cert, mismatched)?;
    let certificates = server.certificates.clone().expect("a wss server");
    ensure!(
        certificates.reload("SIGHUP").is_err(),
        "a certificate with another's key was taken"
    );
    let mut dave = server.connect_trusting(&second, "/ws/dave").await?;
    ensure!(dave.recv_json().await?["type"] == "welcome");
    server.shutdown().await
}

/// A certificate whose key is not the second one's: a third, generated
/// here, whose key is thrown away.
fn first_cert_pem() -> Result<String> {
    let other = TestCert::generate()?;
    Ok(std::fs::read_to_string(other.files().cert)?)
}
