//! The node's write connection: one multiplexed connection to Redis, so
//! every command of this node reaches Redis in the order it was sent (no
//! pool: order matters), and no command is ever sent twice (redis-rs
//! retries nothing on it).
//!
//! A multiplexed connection never reconnects by itself: after an error
//! that dropped it, the next call makes a new one (one at a time), and
//! samples Redis's clock again.
//!
//! The deadline fence: a paused Redis (SIGSTOP, a long fork) keeps the
//! TCP connection up, so a command times out here and is still run when
//! Redis resumes (measured with redis-rs 1.8.2, docs/CLUSTER.md). Every
//! writing script is therefore given a deadline in Redis's clock — this
//! node's clock plus the offset sampled at connect, plus the response
//! timeout, less a margin at least the sampling's round trip — and writes
//! nothing after it. So a timed-out write was not done, and `unavailable`
//! is the truth.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};

use super::Unavailable;

/// The smallest margin kept between the deadline and the client's own
/// timeout, whatever the sampled round trip.
const MIN_MARGIN_MS: i64 = 50;

/// The write connection and what it knows of Redis's clock.
#[derive(Debug)]
pub struct Writer {
    /// Opens connections (parses the URL once; no I/O).
    client: Client,
    /// Connect and response timeouts.
    config: AsyncConnectionConfig,
    /// The response timeout, for the deadline and for errors.
    timeout: Duration,
    /// The connection in use (`None`: none yet, or the last one dropped).
    current: Mutex<Option<MultiplexedConnection>>,
    /// One connect at a time.
    connecting: tokio::sync::Mutex<()>,
    /// Redis's clock minus this node's, in ms (sampled at each connect).
    offset_ms: AtomicI64,
    /// How far the deadline stays inside the response timeout, in ms.
    margin_ms: AtomicI64,
    /// Whether the last call got an answer (for `/healthz`).
    up: AtomicBool,
    /// What `/metrics` shows of this node's Redis traffic.
    pub figures: Figures,
}

/// A node's Redis traffic, for `/metrics`.
#[derive(Debug, Default)]
pub struct Figures {
    /// Commands, scripts and pipelines sent, answered or not.
    pub round_trips: AtomicU64,
    /// Calls that failed, and connects that did.
    pub errors: AtomicU64,
    /// How long the round trips took.
    pub latency: crate::metrics::Histogram,
    /// Messages read from this node's channels.
    pub bus_in: AtomicU64,
    /// Messages published for other nodes (frames, room messages,
    /// notices).
    pub bus_out: AtomicU64,
    /// Milliseconds spent degraded, as sampled ([`Figures::sample`]).
    pub degraded_ms: AtomicU64,
    /// Whether the last sample found the node degraded.
    pub degraded: AtomicBool,
    /// When the last sample was taken (ms since `epoch`; 0: none yet).
    sampled_ms: AtomicU64,
    /// What `sampled_ms` counts from.
    epoch: std::sync::OnceLock<Instant>,
}

impl Figures {
    /// One more message out to other nodes.
    pub fn sent(&self) {
        self.bus_out.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the node is degraded now: the time since the last sample
    /// counts as degraded when both say so (a node is degraded for a
    /// moment at start, before its first answer: not counted).
    pub fn sample(&self, degraded: bool) {
        let epoch = *self.epoch.get_or_init(Instant::now);
        let now = epoch.elapsed().as_millis() as u64 + 1;
        let last = self.sampled_ms.swap(now, Ordering::Relaxed);
        let was = self.degraded.swap(degraded, Ordering::Relaxed);
        if degraded && was && last > 0 {
            self.degraded_ms
                .fetch_add(now.saturating_sub(last), Ordering::Relaxed);
        }
    }

    /// What they are now; `degraded`: whether the node is, now.
    pub fn read(&self, degraded: bool) -> crate::metrics::scrape::ClusterFigures {
        crate::metrics::scrape::ClusterFigures {
            round_trips: self.round_trips.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency: self.latency.snapshot(),
            bus_in: self.bus_in.load(Ordering::Relaxed),
            bus_out: self.bus_out.load(Ordering::Relaxed),
            degraded,
            degraded_seconds: self.degraded_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}

/// A Redis call timed and counted ([`Figures`]), its error read as
/// [`Writer::failed`] does: `cmd.query_async(&mut c).timed(&writer).await?`.
pub trait Timed<T>: Future<Output = redis::RedisResult<T>> + Sized {
    /// See the trait.
    fn timed(self, writer: &Writer) -> impl Future<Output = Result<T, Unavailable>> {
        async move {
            let started = Instant::now();
            let answer = self.await;
            writer.figures.latency.observe(started.elapsed());
            writer.figures.round_trips.fetch_add(1, Ordering::Relaxed);
            answer.map_err(|e| writer.failed(&e))
        }
    }
}

impl<T, F: Future<Output = redis::RedisResult<T>>> Timed<T> for F {}

impl Writer {
    /// A writer for `url` (the secret URL: the password is sent, never
    /// logged), waiting at most `timeout` for a connection or an answer.
    /// Nothing is connected yet.
    pub fn new(url: &str, timeout: Duration) -> Result<Writer, Unavailable> {
        // The error is not shown: it could repeat the URL, password and all.
        let client = Client::open(url).map_err(|e| {
            Unavailable::Connection(format!(
                "the URL is not one redis-rs takes ({:?})",
                e.kind()
            ))
        })?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        Ok(Writer {
            client,
            config,
            timeout,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            offset_ms: AtomicI64::new(0),
            margin_ms: AtomicI64::new(MIN_MARGIN_MS),
            up: AtomicBool::new(false),
            figures: Figures::default(),
        })
    }

    /// The connection, made if there is none.
    pub async fn conn(&self) -> Result<MultiplexedConnection, Unavailable> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let mut c = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| self.failed(&e))?;
        self.sample_clock(&mut c).await?;
        *self.lock() = Some(c.clone());
        self.up.store(true, Ordering::Relaxed);
        tracing::info!("connected to Redis");
        Ok(c)
    }

    /// The deadline for a write sent now, in Redis's clock (ms since the
    /// epoch): a script run after it writes nothing.
    pub fn deadline_ms(&self) -> i64 {
        let timeout = self.timeout.as_millis() as i64;
        now_ms() + self.offset_ms.load(Ordering::Relaxed) + timeout
            - self.margin_ms.load(Ordering::Relaxed)
    }

    /// What `e` means for the caller, and for the connection: one that
    /// dropped is given up, so the next call makes a new one. A timeout
    /// leaves it (it is still in step: redis-rs reads and drops the late
    /// answer).
    pub fn failed(&self, e: &RedisError) -> Unavailable {
        self.up.store(false, Ordering::Relaxed);
        self.figures.errors.fetch_add(1, Ordering::Relaxed);
        if e.is_timeout() {
            return Unavailable::Timeout(self.timeout.as_millis() as u64);
        }
        if e.is_connection_dropped() || e.is_unrecoverable_error() || e.is_io_error() {
            *self.lock() = None;
            return Unavailable::Connection(e.to_string());
        }
        Unavailable::Reply(e.to_string())
    }

    /// One command on the write connection: its answer, or what the error
    /// means (see [`Writer::failed`]).
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, Unavailable> {
        let mut c = self.conn().await?;
        let answer = cmd.query_async(&mut c).timed(self).await?;
        self.answered();
        Ok(answer)
    }

    /// A pipeline on the write connection, as [`Writer::query`].
    pub async fn query_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, Unavailable> {
        let mut c = self.conn().await?;
        let answer = pipe.query_async(&mut c).timed(self).await?;
        self.answered();
        Ok(answer)
    }

    /// A call got its answer.
    pub fn answered(&self) {
        self.up.store(true, Ordering::Relaxed);
    }

    /// Whether the last call got an answer.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn cached(&self) -> Option<MultiplexedConnection> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        // An `Option` of a handle: a panic elsewhere cannot leave it invalid.
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Redis's `TIME` against this node's clock, halfway through the
    /// round trip; the margin covers the round trip (the offset's error is
    /// at most half of it).
    async fn sample_clock(&self, c: &mut MultiplexedConnection) -> Result<(), Unavailable> {
        let sent = Instant::now();
        let local = now_ms();
        let (secs, micros): (i64, i64) = redis::cmd("TIME")
            .query_async(c)
            .await
            .map_err(|e| self.failed(&e))?;
        let rtt = sent.elapsed().as_millis() as i64;
        let redis_ms = secs * 1000 + micros / 1000;
        self.offset_ms
            .store(redis_ms - (local + rtt / 2), Ordering::Relaxed);
        self.margin_ms
            .store(MIN_MARGIN_MS.max(rtt), Ordering::Relaxed);
        Ok(())
    }
}

/// This node's clock, ms since the Unix epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
