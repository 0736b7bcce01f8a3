//! Cluster mode's stored notices in a real Redis (started here on a free
//! port), under the memory store's rules: oldest first and once, a full
//! box drops the oldest of the sender with the most, the senders' quotas,
//! the byte cap, and expiry — what expired is swept, quotas and bytes come
//! back.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Result, ensure};
use switchboard::store::notices::{Mail, Notices, StoreError, StoredLimits};
use switchboard::store::redis::conn::Writer;
use switchboard::store::redis::keys::Keys;
use switchboard::store::redis::notices::RedisNotices;
use switchboard_tests::redis::RedisServer;

fn store(redis: &RedisServer, limits: StoredLimits) -> Result<RedisNotices> {
    let writer = Arc::new(Writer::new(&redis.url(), Duration::from_secs(2))?);
    Ok(RedisNotices::new(writer, Keys::new("t"), limits))
}

fn frames(mail: &Mail) -> Vec<&str> {
    mail.notices.iter().map(|n| &*n.frame).collect()
}

/// The store's bytes as Redis counts them, after a sweep.
async fn bytes(s: &RedisNotices) -> usize {
    s.expire_all(SystemTime::now()).await;
    s.bytes()
}

#[tokio::test]
async fn notices_come_back_oldest_first_once_with_when_and_from() -> Result<()> {
    let redis = RedisServer::start()?;
    let s = store(&redis, StoredLimits::default())?;
    let now = SystemTime::now();
    s.store("al", "bob", "one".into(), now).await?;
    s.store("al", "bob", "two\nlines".into(), now).await?;
    s.store("al", "carol", "other".into(), now).await?;
    let mail = s.take("bob", now).await;
    ensure!(frames(&mail) == ["one", "two\nlines"], "{mail:?}");
    ensure!(
        mail.dropped == 0 && &*mail.notices[0].from == "al",
        "{mail:?}"
    );
    let at = mail.notices[0].at;
    let off = at.duration_since(now).unwrap_or_else(|e| e.duration());
    ensure!(
        off < Duration::from_millis(1),
        "stored at {at:?}, not {now:?}"
    );
    ensure!(s.take("bob", now).await == Mail::default(), "taken twice");
    ensure!(bytes(&s).await == "other".len() + 64, "{}", s.bytes());
    s.take("carol", now).await;
    ensure!(bytes(&s).await == 0, "{}", s.bytes());
    Ok(())
}

#[tokio::test]
async fn a_full_box_drops_the_oldest_of_the_sender_with_the_most() -> Result<()> {
    let redis = RedisServer::start()?;
    let s = store(
        &redis,
        StoredLimits {
            per_id: 4,
            ..StoredLimits::default()
        },
    )?;
    let now = SystemTime::now();
    s.store("carol", "bob", "c1".into(), now).await?;
    for i in 1..=9 {
        s.store("mallory", "bob", format!("m{i}").into(), now)
            .await?;
    }
    let mail = s.take("bob", now).await;
    ensure!(frames(&mail) == ["c1", "m7", "m8", "m9"], "{mail:?}");
    ensure!(mail.dropped == 6, "{mail:?}");
    ensure!(bytes(&s).await == 0, "{}", s.bytes());
    Ok(())
}

#[tokio::test]
async fn quotas_per_sender_and_per_pair_refuse_only_that_sender() -> Result<()> {
    let redis = RedisServer::start()?;
    let s = store(
        &redis,
        StoredLimits {
            per_sender: 3,
            per_pair: 2,
            ..StoredLimits::default()
        },
    )?;
    let now = SystemTime::now();
    s.store("m", "bob", "1".into(), now).await?;
    s.store("m", "bob", "2".into(), now).await?;
    let third = s.store("m", "bob", "3".into(), now).await;
    ensure!(third == Err(StoreError::PerPair(2)), "{third:?}");
    s.store("m", "carol", "3".into(), now).await?;
    let fourth = s.store("m", "dave", "4".into(), now).await;
    ensure!(fourth == Err(StoreError::PerSender(3)), "{fourth:?}");
    // Somebody else is not affected.
    s.store("x", "bob", "5".into(), now).await?;
    // Handing over gives the quota back.
    ensure!(
        frames(&s.take("bob", now).await) == ["1", "2", "5"],
        "bob's"
    );
    s.store("m", "dave", "6".into(), now).await?;
    Ok(())
}

#[tokio::test]
async fn what_expired_is_swept_and_never_handed_over() -> Result<()> {
    let redis = RedisServer::start()?;
    let s = store(
        &redis,
        StoredLimits {
            max_age: Duration::from_secs(60),
            per_sender: 2,
            ..StoredLimits::default()
        },
    )?;
    let t0 = SystemTime::now();
    s.store("s", "bob", "old".into(), t0).await?;
    s.store("s", "gone", "x".into(), t0).await?;
    let later = t0 + Duration::from_secs(61);
    // The sender's quota came back with the expiry.
    s.store("s", "bob", "new".into(), later).await?;
    s.expire_all(later).await;
    ensure!(
        redis.cli(["EXISTS", "t:{id:gone}:n"])?.trim() == "0",
        "gone's box was not swept"
    );
    ensure!(frames(&s.take("bob", later).await) == ["new"], "bob's");
    s.expire_all(later).await;
    ensure!(s.bytes() == 0, "{}", s.bytes());
    Ok(())
}

#[tokio::test]
async fn a_full_store_refuses_without_dropping_anyone_elses() -> Result<()> {
    let redis = RedisServer::start()?;
    let s = store(
        &redis,
        StoredLimits {
            max_total_bytes: "12345678".len() + 64 + 10,
            ..StoredLimits::default()
        },
    )?;
    let now = SystemTime::now();
    s.store("a", "bob", "12345678".into(), now).await?;
    let refused = s.store("a", "carol", "abcdefghijk".into(), now).await;
    ensure!(refused == Err(StoreError::Full), "{refused:?}");
    ensure!(frames(&s.take("carol", now).await).is_empty(), "carol's");
    ensure!(frames(&s.take("bob", now).await) == ["12345678"], "bob's");
    // Refused when Redis does not answer, and nothing kept.
    redis.pause()?;
    let paused = s.store("a", "bob", "late".into(), now).await;
    redis.resume()?;
    ensure!(paused == Err(StoreError::Unavailable), "{paused:?}");
    ensure!(
        frames(&s.take("bob", now).await).is_empty(),
        "kept after all"
    );
    Ok(())
}
