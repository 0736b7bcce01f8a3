//! Cluster mode's room history in a real Redis (started here on a free
//! port): offsets and the epoch assigned with the append, a constant
//! number of commands per kept message, a new epoch when Redis loses its
//! data, and the deadline fence — a publish that timed out while Redis
//! was paused is not carried out when it resumes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use switchboard::store::redis::Unavailable;
use switchboard::store::redis::conn::Writer;
use switchboard::store::redis::keys::Keys;
use switchboard::store::redis::rooms::Rooms;
use switchboard_tests::redis::RedisServer;

fn rooms(redis: &RedisServer, timeout: Duration) -> Result<Rooms> {
    let writer = Arc::new(Writer::new(&redis.url(), timeout)?);
    Ok(Rooms::new(
        writer,
        Keys::new("t"),
        "node-a",
        100,
        Duration::from_secs(300),
    ))
}

/// Commands Redis ran so far, all kinds together (`INFO commandstats`).
fn commands(redis: &RedisServer) -> Result<u64> {
    let info = redis.cli(["INFO", "commandstats"])?;
    Ok(info
        .lines()
        .filter_map(|l| l.split("calls=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .sum())
}

#[tokio::test]
async fn offsets_and_epoch_come_with_the_append() -> Result<()> {
    let redis = RedisServer::start()?;
    let rooms = rooms(&redis, Duration::from_secs(2))?;
    let first = rooms
        .publish("lobby", r#"{"type":"room","data":1}"#, None)
        .await?;
    ensure!(first.offset == 1, "{first:?}");
    for n in 2..=5 {
        let kept = rooms
            .publish("lobby", r#"{"type":"room"}"#, Some("bob"))
            .await?;
        ensure!(kept.offset == n && kept.epoch == first.epoch, "{kept:?}");
    }
    // Rooms are numbered apart.
    let other = rooms.publish("a}b{%", "{}", None).await?;
    ensure!(other.offset == 1 && other.epoch != first.epoch, "{other:?}");
    let (epoch, top) = rooms.top("lobby").await?;
    ensure!(
        epoch.as_deref() == Some(&*first.epoch) && top == 5,
        "{epoch:?} {top}"
    );
    let after = rooms.after("lobby", 3, 10).await?;
    let offsets: Vec<u64> = after.iter().map(|e| e.offset).collect();
    ensure!(offsets == [4, 5], "{after:?}");
    ensure!(after[0].except.as_deref() == Some("bob"), "{after:?}");
    let first = &rooms.after("lobby", 0, 1).await?[0];
    ensure!(first.frame == r#"{"type":"room","data":1}"# && first.except.is_none());
    Ok(())
}

#[tokio::test]
async fn a_kept_message_costs_the_same_commands_whatever_the_history() -> Result<()> {
    let redis = RedisServer::start()?;
    let rooms = rooms(&redis, Duration::from_secs(2))?;
    // A room's first message also makes its epoch: measured from the second.
    rooms.publish("r", "{}", None).await?;
    let mut costs = Vec::new();
    for _ in 0..3 {
        let before = commands(&redis)?;
        rooms.publish("r", r#"{"x":1}"#, None).await?;
        // The INFO call itself is one command.
        costs.push(commands(&redis)? - before - 1);
    }
    for n in 0..50 {
        rooms.publish("r", &format!(r#"{{"n":{n}}}"#), None).await?;
    }
    let before = commands(&redis)?;
    rooms.publish("r", r#"{"x":1}"#, None).await?;
    costs.push(commands(&redis)? - before - 1);
    ensure!(costs.iter().all(|&c| c == costs[0]), "{costs:?}");
    ensure!(costs[1] <= 10, "{costs:?} commands per kept message");
    Ok(())
}

#[tokio::test]
async fn lost_data_gives_a_new_epoch() -> Result<()> {
    let mut redis = RedisServer::start()?;
    let rooms = rooms(&redis, Duration::from_secs(2))?;
    let before = rooms.publish("lobby", "{}", None).await?;
    rooms.publish("lobby", "{}", None).await?;
    redis.restart()?;
    // The first call after a restart finds the old connection gone.
    let mut after = rooms.publish("lobby", "{}", None).await;
    if let Err(Unavailable::Connection(_)) = after {
        after = rooms.publish("lobby", "{}", None).await;
    }
    let after = after?;
    ensure!(
        after.offset == 1 && after.epoch != before.epoch,
        "{after:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_publish_refused_while_redis_was_paused_never_happens() -> Result<()> {
    let redis = RedisServer::start()?;
    let rooms = rooms(&redis, Duration::from_millis(300))?;
    rooms.publish("lobby", "{}", None).await?;
    redis.pause()?;
    let refused = rooms.publish("lobby", r#"{"late":true}"#, None).await;
    ensure!(
        matches!(refused, Err(Unavailable::Timeout(_))),
        "{refused:?}"
    );
    // The deadline is inside the timeout: it has passed on Redis's clock.
    redis.resume()?;
    let next = rooms.publish("lobby", "{}", None).await?;
    ensure!(next.offset == 2, "the refused publish was kept: {next:?}");
    let kept = rooms.after("lobby", 0, 10).await?;
    ensure!(kept.iter().all(|e| !e.frame.contains("late")), "{kept:?}");
    Ok(())
}
