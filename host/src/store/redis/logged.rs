//! The notices this node queued that the id's notice log still keeps
//! (`lua/route.lua` appends each acked notice; docs/CLUSTER.md, "Notices
//! across nodes"). Once the connection has written a notice to its
//! socket, its entry is deleted; should this node die first, the id's
//! next claim elsewhere finds it in the log and delivers it.
//!
//! A notice counts as written once its connection has written as many
//! frames whole to the socket as had been queued to it right after the
//! notice was ([`Local::progress`]: frames leave in the order they were
//! queued). Until then it stays, and it stays while its connection is
//! held. Frames that move to another connection of the id here (a
//! resume), or come from elsewhere (a handover, a dead node's log), are
//! counted from that connection's first look after they were queued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::ids::Ids;
use crate::store::bus::Local;

/// How soon after a notice is queued here it is looked for as written,
/// and again while it is not (for [`YOUNG`]): about the longest a notice
/// written just before this node died stays in the log, to come again on
/// the id's next connection (a connection that takes its frames at once
/// writes them within it).
const FAST: Duration = Duration::from_millis(1);

/// How long a notice is looked for every [`FAST`]; after that, every
/// [`SLOW`] (its client reads slowly, or its connection is held).
const YOUNG: Duration = Duration::from_millis(50);

/// How often notices older than [`YOUNG`] are looked for.
const SLOW: Duration = Duration::from_millis(50);

/// How long an entry whose id is not connected here is kept for it to
/// arrive (a resume registers its connection after the claim took the
/// log): then it is the business of whichever node has the id.
const UNPLACED: Duration = Duration::from_secs(10);

/// Ids whose deletes wait to be tried again, at most: past it they are
/// left to expire with their logs.
const RETRY_MAX: usize = 100_000;

/// One logged notice queued here.
#[derive(Debug)]
struct Pending {
    entry: String,
    /// (connection serial, frames queued to it by the look): written
    /// once the connection's written count reaches the second.
    mark: Option<(u64, u64)>,
    since: Instant,
}

/// The logged notices queued here, by id.
#[derive(Debug, Default)]
pub struct Logged {
    pending: Mutex<HashMap<String, Vec<Pending>>>,
    /// Wakes the task that deletes what was written.
    new: tokio::sync::Notify,
    /// Written, and their delete not answered: tried again first.
    retry: Mutex<Vec<(String, Vec<String>)>>,
}

impl Logged {
    fn pending(&self) -> MutexGuard<'_, HashMap<String, Vec<Pending>>> {
        // A map of strings and numbers: a panic elsewhere leaves it valid.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `entry` of `id`'s log was queued to its connection here, which
    /// stood at `progress` ([`Local::progress`], looked at after the
    /// push; `None`: counted from the next look).
    pub fn queued(&self, id: &str, entry: String, progress: Option<(u64, u64, u64)>) {
        let mark = progress.map(|(serial, pushed, _)| (serial, pushed));
        self.pending()
            .entry(id.to_owned())
            .or_default()
            .push(Pending {
                entry,
                mark,
                since: Instant::now(),
            });
        self.new.notify_one();
    }

    /// `entries` of `id`'s log were (or are about to be) queued here
    /// with no look yet (a handover, a dead node's log).
    pub fn arrived(&self, id: &str, entries: Vec<String>) {
        if entries.is_empty() {
            return;
        }
        let now = Instant::now();
        self.pending()
            .entry(id.to_owned())
            .or_default()
            .extend(entries.into_iter().map(|entry| Pending {
                entry,
                mark: None,
                since: now,
            }));
        self.new.notify_one();
    }

    /// `id` leaves this node with what it was queued (a handover): its
    /// entries, for the node it goes to.
    pub fn take(&self, id: &str) -> Vec<String> {
        self.pending()
            .remove(id)
            .map(|p| p.into_iter().map(|p| p.entry).collect())
            .unwrap_or_default()
    }

    /// The entries written now, by id, taken out of the list; and
    /// whether entries younger than [`YOUNG`] still wait.
    fn written(&self, local: &dyn Local) -> (Vec<(String, Vec<String>)>, bool) {
        let mut done = Vec::new();
        let mut young = false;
        let mut pending = self.pending();
        pending.retain(|id, list| {
            let progress = local.progress(id);
            let mut written = Vec::new();
            list.retain_mut(|p| {
                let Some((serial, pushed, upto)) = progress else {
                    // Not here (yet, or any more).
                    return p.since.elapsed() < UNPLACED;
                };
                match p.mark {
                    Some((s, at)) if s == serial => {
                        if upto >= at {
                            written.push(std::mem::take(&mut p.entry));
                            return false;
                        }
                    }
                    // Counted from now on this connection.
                    _ => p.mark = Some((serial, pushed)),
                }
                young |= p.since.elapsed() < YOUNG;
                true
            });
            if !written.is_empty() {
                done.push((id.clone(), written));
            }
            !list.is_empty()
        });
        (done, young)
    }

    fn retry(&self) -> MutexGuard<'_, Vec<(String, Vec<String>)>> {
        self.retry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delete the written notices' entries until the runtime stops: a
    /// new one is looked for every [`FAST`] while it is young, then every
    /// [`SLOW`]. A delete Redis does not answer is tried again.
    pub async fn trim(self: Arc<Self>, local: Arc<dyn Local>, ids: Ids) {
        loop {
            let _ = tokio::time::timeout(SLOW, self.new.notified()).await;
            loop {
                tokio::time::sleep(FAST).await;
                let mut batch = std::mem::take(&mut *self.retry());
                let (written, young) = self.written(&*local);
                batch.extend(written);
                if !batch.is_empty()
                    && let Err(e) = ids.unlog(&batch).await
                {
                    tracing::debug!(error = %e, "written notices not deleted from their logs yet");
                    // Bounded: the logs expire, and the entries with them.
                    let mut retry = self.retry();
                    if retry.len() < RETRY_MAX {
                        retry.extend(batch);
                    }
                    break;
                }
                if !young {
                    break;
                }
            }
        }
    }
}
