//! Both world versions side by side: the host runs components built
//! against `switchboard:policy@0.1.0` unchanged next to 0.2.0 ones, says
//! which world each targets (`policy check`, `policy status`), and a 0.1.0
//! component swaps into a running 0.2.0 server and back with connections
//! staying open.

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use switchboard::config::{Config, PolicyLimits};
use switchboard::policy::{DEFAULT_POLICY, World};
use switchboard_tests::{TestServer, tolerant_config, v010_wasm};

const TOKEN: &str = "worlds-token-0123456789abcdef";

fn admin_config() -> Config {
    switchboard_tests::with_admin(tolerant_config(), TOKEN)
}

async fn status(server: &TestServer) -> Result<Value> {
    server.policy_status(TOKEN).await
}

async fn swap(server: &TestServer, bytes: Vec<u8>, name: &str) -> Result<Value> {
    let (code, answer) = server.policy_swap(TOKEN, bytes, name).await?;
    ensure!(code == 200, "swap of {name} answered {code}: {answer}");
    Ok(answer)
}

#[tokio::test]
async fn check_names_the_world_a_component_targets() -> Result<()> {
    let limits = PolicyLimits::default();
    let old = switchboard::policy::check(std::fs::read(v010_wasm())?, "v010", limits.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(old.info.world == World::V0_1_0, "{:?}", old.info);
    ensure!(
        old.info
            .imports
            .iter()
            .all(|i| !i.starts_with("switchboard:policy/") || i.ends_with("@0.1.0")),
        "{:?}",
        old.info.imports
    );
    let new = switchboard::policy::check(DEFAULT_POLICY.to_vec(), "default", limits)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(new.info.world == World::V0_2_0, "{:?}", new.info);
    ensure!(
        serde_json::to_value(&new.info)?["world"] == "0.2.0",
        "the world is reported as its version"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_1_0_component_swaps_into_a_0_2_0_server_and_back() -> Result<()> {
    let server = TestServer::start(admin_config()).await?;
    let s = status(&server).await?;
    ensure!(s["active"]["world"] == "0.2.0", "{s}");

    // Two members of a room under the 0.2.0 default rules.
    let mut alice = server.join("alice").await?;
    let mut bob = server.join("bob").await?;
    for c in [&mut alice, &mut bob] {
        c.send_json(json!({"type": "join", "room": "lobby", "ref": 1}))
            .await?;
        // Its joined, then its ack.
        c.recv_v2().await?;
        c.recv_v2().await?;
    }
    ensure!(alice.recv_json().await? == json!({"type": "joined", "room": "lobby", "id": "bob"}));

    // The 0.1.0 component: status says so, open connections stay open and
    // their next frames go to it; its room frames are not numbered (0.1.0
    // knows nothing of history).
    let report = swap(&server, std::fs::read(v010_wasm())?, "v010").await?;
    ensure!(report["active"]["world"] == "0.1.0", "{report}");
    ensure!(report["previous"]["world"] == "0.2.0", "{report}");
    ensure!(status(&server).await?["active"]["world"] == "0.1.0");
    alice.send_text("room lobby hello from 0.1.0").await?;
    ensure!(bob.recv_text().await? == "hello from 0.1.0");
    let mut carol = server.connect("carol").await?;
    ensure!(carol.recv_text().await? == "welcome0.1.0 carol");
    carol.send_text("echo me").await?;
    ensure!(carol.recv_text().await? == "echo me");

    // And back: the 0.2.0 rules, with history, for the same connections.
    let report = swap(&server, DEFAULT_POLICY.to_vec(), "default").await?;
    ensure!(report["active"]["world"] == "0.2.0", "{report}");
    bob.send_json(json!({"type": "room", "room": "lobby", "data": "back", "ref": 2}))
        .await?;
    let got = alice.recv_v2().await?;
    ensure!(
        got["type"] == "room" && got["data"] == "back" && got["offset"].as_u64().is_some(),
        "{got}"
    );
    let ack = bob.recv_v2().await?;
    ensure!(ack == json!({"type": "ack", "ref": 2}), "{ack}");
    let mut dave = server.connect("dave").await?;
    let welcome = dave.recv_v2().await?;
    ensure!(
        welcome["type"] == "welcome" && welcome["session"].is_string(),
        "{welcome}"
    );
    for c in [&mut alice, &mut bob, &mut carol, &mut dave] {
        c.expect_idle().await?;
    }
    server.shutdown().await
}
