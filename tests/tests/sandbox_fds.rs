//! A guest that tries every way out of the sandbox (sockets, name lookup,
//! resources without end, a trap) makes the server's process open no file.
//! Alone in its test binary: the files are the whole process's, and tests
//! running beside it would change them.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Result, ensure};
use switchboard_tests::{TestServer, WAIT, misbehave_config, without_rate_limits};

/// The open files of this process (which hosts the server): each entry of
/// /proc/self/fd with what it points at (`socket:[…]`, a path, …).
fn open_files() -> Result<BTreeSet<(String, String)>> {
    // Reading the directory opens it: that descriptor is not counted.
    let listing = PathBuf::from(format!("/proc/{}/fd", std::process::id()));
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if target != listing {
            files.insert((
                entry.file_name().to_string_lossy().into_owned(),
                target.to_string_lossy().into_owned(),
            ));
        }
    }
    Ok(files)
}

#[tokio::test]
async fn escape_attempts_leave_the_open_file_count_unchanged() -> Result<()> {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let mut config = without_rate_limits(misbehave_config());
    config.policy_limits.call_deadline = WAIT;
    config.policy_limits.max_resources = 64;
    let server = TestServer::start(config).await?;
    let mut c = server.connect("escaper").await?;
    ensure!(c.recv_text().await? == "welcome escaper");
    // Once before counting, so that whatever a first call sets up for good
    // (an instance, the guest's stdout) is there in both counts.
    c.send_text("warm up").await?;
    ensure!(c.recv_text().await? == "warm up");

    let before = open_files()?;
    for round in 0..20 {
        // The sockets last: a trap would drop the instance, and with it
        // whatever it held, before the count.
        for request in [
            "resources".to_owned(),
            "resources 20".to_owned(),
            "trap".to_owned(),
            "dns".to_owned(),
            format!("tcp {}", tcp.local_addr()?.port()),
            format!("udp {}", udp.local_addr()?.port()),
        ] {
            c.send_text(&request).await?;
            let answer = c.recv_text().await?;
            ensure!(
                !answer.ends_with("connected") && !answer.ends_with("sent"),
                "round {round}, {request}: {answer}"
            );
        }
    }
    c.send_text("done").await?;
    ensure!(c.recv_text().await? == "done");
    // Nothing opened: every file open now was open before. (One may have
    // closed meanwhile — the runtime's own — which is no escape.)
    let after = open_files()?;
    let opened: Vec<_> = after.difference(&before).collect();
    ensure!(
        opened.is_empty(),
        "files opened during the escape attempts: {opened:?} (before: {before:?})"
    );
    c.close().await?;
    server.shutdown().await
}
