//! The cluster-wide policy swap (issue 21, section 5): a swap on any node
//! runs on every node; a candidate one node refuses is refused on every
//! node; a rollback, an operator's or a node's automatic one, rolls every
//! node back; `policy status` lists what each node runs and its world;
//! a node that starts runs the cluster's active policy, not its own.
//!
//! Three nodes on a `redis-server` of the test's own. The candidate one
//! node refuses is real: `big-memory` starts with more than 8 MiB of
//! linear memory, and node c is given a 4 MiB policy memory cap.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use switchboard::config::Config;
use switchboard::policy::sha256_hex;
use switchboard_tests::cluster::node;
use switchboard_tests::redis::RedisServer;
use switchboard_tests::{Client, TestServer, WAIT, misbehave_wasm, with_admin};

const TOKEN: &str = "cluster-policy-token-0123456789";

fn big() -> Result<Vec<u8>> {
    let path = env!("BIG_MEMORY_WASM");
    std::fs::read(path).with_context(|| format!("reading {path}"))
}

/// Node `id` with an admin interface.
fn admin_node(redis: &RedisServer, id: &str) -> Result<Config> {
    Ok(with_admin(node(redis, id)?, TOKEN))
}

/// Node `id` whose policy memory cap is 4 MiB: it refuses `big-memory`.
fn small_node(redis: &RedisServer, id: &str) -> Result<Config> {
    let mut c = admin_node(redis, id)?;
    c.policy_limits.memory_bytes = 4 * 1024 * 1024;
    Ok(c)
}

/// `GET /admin/policy` on `server`.
async fn status(server: &TestServer) -> Result<Value> {
    server.policy_status(TOKEN).await
}

/// `PUT /admin/policy` on `server`: the status code and the answer.
async fn swap(server: &TestServer, bytes: Vec<u8>, name: &str) -> Result<(u16, Value)> {
    server.policy_swap(TOKEN, bytes, name).await
}

/// A swap on `server` that every node takes: the component's SHA-256.
async fn swapped(server: &TestServer, bytes: Vec<u8>, name: &str) -> Result<String> {
    let sha = sha256_hex(&bytes);
    let (code, report) = swap(server, bytes, name).await?;
    ensure!(code == 200, "{code} {report}");
    ensure!(report["active"]["sha256"] == sha, "{report}");
    Ok(sha)
}

/// `POST /admin/policy/rollback` on `server`.
async fn rollback(server: &TestServer) -> Result<(u16, Value)> {
    server.policy_rollback(TOKEN).await
}

/// Until every one of `servers` runs the component `sha256` (each makes
/// it active when it hears the swap).
async fn until_all_run(servers: &[&TestServer], sha256: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let running: Vec<String> = servers.iter().map(|s| s.policy.active().sha256).collect();
        if running.iter().all(|s| s == sha256) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("wanted {sha256} everywhere, running {running:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Until `server`'s status lists `nodes` (sorted), each running `sha256`.
async fn until_listed(server: &TestServer, nodes: &[&str], sha256: &str) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = status(server).await?;
        let listed = &s["cluster"]["nodes"];
        let names: Vec<&str> = listed
            .as_array()
            .map(|a| a.iter().filter_map(|n| n["node"].as_str()).collect())
            .unwrap_or_default();
        let same = listed
            .as_array()
            .is_some_and(|a| a.iter().all(|n| n["sha256"] == sha256));
        if names == nodes && same {
            return Ok(s);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("wanted {nodes:?} on {sha256}: {s}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `server` answers a text frame the way `big-memory` does.
async fn runs_big(server: &TestServer, id: &str) -> Result<bool> {
    let mut c: Client = server.connect(id).await?;
    c.send_text("hi").await?;
    let answer = loop {
        let text = c.recv_text().await?;
        // The default policy's welcome comes first.
        if !text.contains("\"welcome\"") {
            break text;
        }
    };
    c.close().await?;
    Ok(answer == "big hi")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_on_one_node_runs_on_every_node_and_a_rollback_everywhere() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(admin_node(&redis, "a")?).await?;
    let b = TestServer::start(admin_node(&redis, "b")?).await?;
    let c = TestServer::start(admin_node(&redis, "c")?).await?;
    let first = a.policy.active().sha256;
    until_listed(&b, &["a", "b", "c"], &first).await?;

    let sha = swapped(&a, big()?, "big-memory").await?;
    until_all_run(&[&a, &b, &c], &sha).await?;
    for (server, id) in [(&a, "ann"), (&b, "bob"), (&c, "cat")] {
        ensure!(runs_big(server, id).await?, "node of {id} does not run it");
    }

    // Every node's status lists what each node runs, and its world.
    let s = until_listed(&c, &["a", "b", "c"], &sha).await?;
    for n in s["cluster"]["nodes"].as_array().into_iter().flatten() {
        ensure!(n["world"] == "0.2.0", "{n}");
        ensure!(n["published_by"] == "swap", "{n}");
    }
    ensure!(s["cluster"]["active"]["sha256"] == sha, "{s}");
    ensure!(s["cluster"]["previous"]["sha256"] == first, "{s}");

    // A rollback asked of another node rolls every node back.
    let (code, record) = rollback(&b).await?;
    ensure!(code == 200, "rollback: {code} {record}");
    until_all_run(&[&a, &b, &c], &first).await?;
    ensure!(!runs_big(&c, "cat").await?, "c still runs big-memory");
    let s = until_listed(&a, &["a", "b", "c"], &first).await?;
    ensure!(s["cluster"]["active"]["sha256"] == first, "{s}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_one_node_refuses_is_refused_on_every_node() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(admin_node(&redis, "a")?).await?;
    let b = TestServer::start(admin_node(&redis, "b")?).await?;
    let c = TestServer::start(small_node(&redis, "c")?).await?;
    let first = a.policy.active().sha256;
    until_listed(&a, &["a", "b", "c"], &first).await?;

    let (code, answer) = swap(&a, big()?, "big-memory").await?;
    ensure!(code == 422, "{code} {answer}");
    ensure!(answer["error"] == "instantiate", "{answer}");
    ensure!(answer["node"] == "c", "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    ensure!(message.contains("memory"), "{answer}");

    // Nothing changed anywhere: not for a moment, not later.
    for server in [&a, &b, &c] {
        ensure!(server.policy.active().sha256 == first);
        ensure!(
            server.policy.active().seq == 1,
            "{:?}",
            server.policy.active()
        );
    }
    ensure!(!runs_big(&a, "ann").await?, "a runs the refused candidate");
    ensure!(!runs_big(&b, "bob").await?, "b runs the refused candidate");
    let s = status(&b).await?;
    ensure!(s["cluster"]["active"]["sha256"] == first, "{s}");
    ensure!(s["cluster"]["previous"].is_null(), "{s}");

    // The same swap asked of the node that refuses it: refused there first.
    let (code, answer) = swap(&c, big()?, "big-memory").await?;
    ensure!(
        code == 422 && answer["error"] == "instantiate",
        "{code} {answer}"
    );
    ensure!(answer.get("node").is_none(), "{answer}");
    ensure!(b.policy.active().sha256 == first);

    // A candidate every node takes still goes through afterwards.
    let echo_sha = swapped(&c, std::fs::read(env!("ECHO_WASM"))?, "echo").await?;
    until_all_run(&[&a, &b, &c], &echo_sha).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_starts_runs_the_clusters_policy() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(admin_node(&redis, "a")?).await?;
    let sha = swapped(&a, big()?, "big-memory").await?;

    // Started with the default policy as its own, it runs big-memory from
    // its first connection.
    let d = TestServer::start(admin_node(&redis, "d")?).await?;
    ensure!(d.policy.active().sha256 == sha, "{:?}", d.policy.active());
    ensure!(
        runs_big(&d, "dan").await?,
        "d does not run the cluster's policy"
    );
    until_listed(&a, &["a", "d"], &sha).await?;

    // Its first rollback restores what the cluster had before, though
    // this node never ran it.
    let (code, record) = rollback(&d).await?;
    ensure!(code == 200, "{code} {record}");
    let first = status(&a).await?["cluster"]["active"]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure!(first != sha, "the record did not roll back");
    until_all_run(&[&a, &d], &first).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automatic_rollback_on_one_node_rolls_every_node_back() -> Result<()> {
    let redis = RedisServer::start()?;
    let config = |id| -> Result<Config> {
        let mut c = admin_node(&redis, id)?;
        c.policy_limits.rollback_failures = 3;
        Ok(c)
    };
    let a = TestServer::start(config("a")?).await?;
    let b = TestServer::start(config("b")?).await?;
    let c = TestServer::start(config("c")?).await?;
    let first = a.policy.active().sha256;
    until_listed(&a, &["a", "b", "c"], &first).await?;
    let bad_sha = swapped(&a, std::fs::read(misbehave_wasm())?, "misbehave").await?;
    until_all_run(&[&a, &b, &c], &bad_sha).await?;

    // Calls trap on b only; b rolls back, and so does every other node.
    let mut bob = b.connect("bob").await?;
    for _ in 0..3 {
        bob.send_text("trap").await?;
    }
    until_all_run(&[&a, &b, &c], &first).await?;
    let s = until_listed(&c, &["a", "b", "c"], &first).await?;
    let by: Vec<&Value> = s["cluster"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| &n["published_by"])
        .collect();
    ensure!(by.iter().all(|b| *b == "auto-rollback"), "{s}");
    ensure!(c.policy.status().last_rollback.is_some_and(|r| r.automatic));
    Ok(())
}

/// A node started with its own `--policy` file runs the
/// cluster's policy and stays on it: its file has not changed, so there is
/// nothing to swap. (Before, the reloader compared the file with what the
/// node ran — the cluster's — and swapped the whole cluster back to the
/// file at its first look.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_policy_file_that_did_not_change_swaps_nothing() -> Result<()> {
    let redis = RedisServer::start()?;
    let a = TestServer::start(admin_node(&redis, "a")?).await?;
    let sha = swapped(&a, big()?, "big-memory").await?;

    let dir = std::env::temp_dir().join(format!(
        "sb-policy-file-{}-{}",
        std::process::id(),
        redis.port()
    ));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("policy.wasm");
    std::fs::write(&file, switchboard::policy::DEFAULT_POLICY)?;
    let mut config = admin_node(&redis, "d")?;
    config.policy = switchboard::config::PolicySource::File(file.clone());
    // Reloaded by hand below (what SIGHUP and each look of the watch do).
    config.watch_policy = false;
    let d = TestServer::start(config).await?;
    ensure!(d.policy.active().sha256 == sha, "{:?}", d.policy.active());
    let reloader = d.reloader.clone().context("no reloader")?;
    let reloaded = reloader.reload("test").await?;
    ensure!(
        matches!(reloaded, switchboard::ops::reload::Reloaded::Unchanged),
        "{reloaded:?}"
    );
    ensure!(
        d.policy.active().sha256 == sha,
        "d swapped: {:?}",
        d.policy.active()
    );
    ensure!(
        a.policy.active().sha256 == sha,
        "a swapped: {:?}",
        a.policy.active()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
