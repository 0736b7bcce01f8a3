//! The Redis the cluster tests stand on (tests/src/redis.rs) does what they
//! will rely on: a server of its own on a free port, data that survives a
//! restart only with the append-only file, and a pause during which nothing
//! is answered.

use std::time::Duration;

use anyhow::{Result, ensure};
use switchboard_tests::redis::{RedisOptions, RedisServer};

#[test]
fn a_server_of_its_own_on_a_free_port() -> Result<()> {
    let (a, b) = (RedisServer::start()?, RedisServer::start()?);
    ensure!(a.port() != 6379 && a.port() != b.port());
    ensure!(a.url() == format!("redis://127.0.0.1:{}/0", a.port()));
    ensure!(a.cli(["SET", "k", "a"])? == "OK");
    ensure!(b.cli(["GET", "k"])?.is_empty(), "the other server has no k");
    ensure!(
        a.cli(["NO-SUCH-COMMAND"]).is_err(),
        "an error reply is an error"
    );
    let dir = a.dir().to_owned();
    drop(a);
    ensure!(!dir.exists(), "{} is left behind", dir.display());
    Ok(())
}

#[test]
fn with_appendonly_a_restart_keeps_the_data() -> Result<()> {
    let mut redis = RedisServer::start_with(RedisOptions { appendonly: true })?;
    let port = redis.port();
    ensure!(redis.cli(["SET", "k", "v"])? == "OK");
    redis.restart()?;
    ensure!(redis.port() == port, "the same port");
    ensure!(redis.cli(["GET", "k"])? == "v", "k survived");
    Ok(())
}

#[test]
fn without_appendonly_a_restart_loses_the_data() -> Result<()> {
    let mut redis = RedisServer::start()?;
    ensure!(redis.cli(["SET", "k", "v"])? == "OK");
    redis.restart()?;
    ensure!(redis.cli(["GET", "k"])?.is_empty(), "k is gone");
    ensure!(redis.cli(["DBSIZE"])? == "0");
    Ok(())
}

#[test]
fn a_paused_server_answers_nothing_until_resumed() -> Result<()> {
    let redis = RedisServer::start()?;
    redis.pause()?;
    let paused = redis.cli_within(Duration::from_secs(1), ["PING"]);
    ensure!(paused.is_err(), "answered while paused: {paused:?}");
    redis.resume()?;
    ensure!(redis.cli(["PING"])? == "PONG");
    // Killing a paused server works too (the drop of a test that failed
    // while Redis was stopped).
    redis.pause()?;
    drop(redis);
    Ok(())
}
