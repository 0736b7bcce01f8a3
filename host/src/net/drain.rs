//! A rolling restart's drain (`switchboard drain`, SIGTERM): stop
//! accepting, tell clients to go with close 1012 (service restart) a few at
//! a time over the first half of the drain time, and return once they have
//! gone, or the time is up.
//!
//! A connection told to go is held for a resume, as one that dropped
//! (when it has a session): what is sent to it meanwhile waits in its
//! queue. Its client reconnects at once; in a cluster it lands on another
//! node, which takes the hold over with everything in it, so nothing is
//! lost. That is why, in a cluster, the drain also waits for this node's
//! holds to be taken (bounded by the same time); on one server nobody can
//! take them, and the drain ends with the last connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::chat::outbound::{CloseReason, code};
use crate::net::shared::Shared;

/// The close reason text of a connection told to go by a drain.
pub const RESTARTING: &str = "server restarting; reconnect";

/// How often the drain closes a batch and looks whether everyone has gone.
const STEP: Duration = Duration::from_millis(50);

/// Whether a drain was asked for, and how long it may take. The first ask
/// wins; later ones change nothing.
#[derive(Debug)]
pub struct Drainer {
    asked: watch::Sender<Option<Duration>>,
    /// The drain time when none is given (`--drain-secs`).
    default: Duration,
}

impl Drainer {
    /// No drain asked yet; one asked without a time takes `default`.
    pub fn new(default: Duration) -> Drainer {
        Drainer {
            asked: watch::Sender::new(None),
            default,
        }
    }

    /// The drain time when none is given.
    pub fn default_time(&self) -> Duration {
        self.default
    }

    /// Ask for a drain of at most `within`; false if one was asked already.
    pub fn start(&self, within: Duration) -> bool {
        self.asked.send_if_modified(|asked| {
            if asked.is_some() {
                return false;
            }
            *asked = Some(within);
            true
        })
    }

    /// The drain time asked for, if a drain was asked.
    pub fn asked(&self) -> Option<Duration> {
        *self.asked.borrow()
    }

    /// Whether a drain was asked.
    pub fn is_draining(&self) -> bool {
        self.asked().is_some()
    }

    /// Resolves once a drain is asked, with its time.
    pub async fn requested(&self) -> Duration {
        let mut rx = self.asked.subscribe();
        let asked = rx.wait_for(Option::is_some).await.map(|a| *a);
        match asked {
            Ok(within) => within.unwrap_or_default(),
            // The sender lives as long as `self`: never reached.
            Err(_) => std::future::pending().await,
        }
    }
}

/// A handle to ask a running server for a drain (SIGTERM's handler holds
/// one).
#[derive(Clone)]
pub struct Handle(pub(crate) Arc<Shared>);

impl Handle {
    /// See [`Drainer::start`].
    pub fn start(&self, within: Duration) -> bool {
        self.0.drain.start(within)
    }

    /// Whether a drain was asked.
    pub fn is_draining(&self) -> bool {
        self.0.drain.is_draining()
    }
}

/// Why a drained connection closes: 1012, held for a resume when it can
/// be (the session decides: one without a session just closes).
pub fn restart_reason() -> CloseReason {
    CloseReason::with_code(code::SERVICE_RESTART, RESTARTING).holding(true)
}

/// Drain `shared` (its listener already closed) within `within`: close its
/// connections with 1012 spread over the first half of the time, then wait
/// until they have gone (and, in a cluster, until its holds were taken by
/// the nodes the clients came back on), or the time is up.
pub async fn run(shared: &Arc<Shared>, within: Duration) {
    let start = Instant::now();
    let deadline = start + within;
    let open: Vec<_> = shared
        .registry
        .outboxes()
        .into_iter()
        .filter(|o| !o.is_held() && !o.is_closing())
        .collect();
    tracing::info!(
        connections = open.len(),
        within_secs = within.as_secs_f64(),
        "draining: closing connections with 1012"
    );
    let steps = ((within / 2).as_millis() / STEP.as_millis()).max(1) as usize;
    let per_step = open.len().div_ceil(steps).max(1);
    for (n, batch) in open.chunks(per_step).enumerate() {
        for outbox in batch {
            outbox.close(restart_reason());
        }
        tokio::time::sleep_until(start + STEP * (n as u32 + 1)).await;
    }
    let cluster = shared.bus.is_shared();
    loop {
        let connections = shared.registry.counters().open_now();
        let held = if cluster { shared.sessions.len() } else { 0 };
        if connections == 0 && held == 0 {
            tracing::info!(
                took_ms = start.elapsed().as_millis() as u64,
                "drained: every client has gone"
            );
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(connections, held, "drain time over; closing what is left");
            return;
        }
        tokio::time::sleep(STEP.min(deadline - Instant::now())).await;
    }
}
