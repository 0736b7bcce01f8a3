//! The JavaScript example policy (examples/policies/js, built by build.rs
//! with componentize-js): the WIT world works beyond Rust. The component
//! carries a JavaScript engine, so it gets the memory cap and the deadline
//! its README asks for.

use anyhow::{Result, ensure};
use serde_json::json;
use switchboard::config::{Config, PolicySource};
use switchboard_tests::{TestServer, WAIT, tolerant_config};
use tokio_tungstenite::tungstenite::Message;

fn js_config() -> Result<Config> {
    let mut c = tolerant_config();
    c.policy = PolicySource::Bytes {
        name: "js".into(),
        bytes: std::fs::read(env!("JS_POLICY_WASM"))?,
    };
    c.policy_limits.memory_bytes = 64 * 1024 * 1024;
    c.policy_limits.call_deadline = WAIT;
    Ok(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_written_in_javascript_runs() -> Result<()> {
    let server = TestServer::start(js_config()?).await?;

    let mut alice = server.connect("alice").await?;
    let welcome = alice.recv_json().await?;
    ensure!(
        welcome == json!({"type": "welcome", "id": "alice", "lang": "js", "online": 0}),
        "{welcome}"
    );
    // A host import answered inside JS: one connection online before bob.
    let mut bob = server.connect("bob").await?;
    ensure!(bob.recv_json().await?["online"] == 1);

    alice.send_text("hello from rust 🦀").await?;
    ensure!(alice.recv_text().await? == "HELLO FROM RUST 🦀");
    let bytes = vec![0u8, 1, 2, 0xfe, 0xff];
    alice.send_binary(bytes.clone()).await?;
    ensure!(alice.recv().await? == Message::binary(bytes));

    // on-connect's `reject` from JS is an HTTP refusal.
    let status = server.refused_status("/ws/banned1").await?;
    ensure!(status == 403, "banned1 got {status}");
    bob.send_text("still here").await?;
    ensure!(bob.recv_text().await? == "STILL HERE");
    server.shutdown().await
}
