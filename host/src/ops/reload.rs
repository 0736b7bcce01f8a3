//! Reloading the `--policy` file: on SIGHUP, and when the file changes.
//!
//! The file is polled (size, modification time, inode) rather than watched
//! with inotify: polling survives editors and deploy tools that replace the
//! file by renaming, needs no watch descriptors, and a change is only acted
//! on once the file has looked the same for two polls in a row, so a file
//! still being written is not loaded half-way. Content is compared by hash:
//! touching the file does not swap anything.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use std::sync::Arc;

use super::rules::{Rules, SwapError, Swapped};
use crate::policy::sha256_hex;

/// What a reload did.
#[derive(Debug)]
pub enum Reloaded {
    /// The file holds what was loaded from it last time.
    Unchanged,
    /// The file's content is now the active version (on every node of a
    /// cluster).
    Swapped(Box<Swapped>),
}

/// Reloads one policy file into one policy.
pub struct Reloader {
    rules: Arc<Rules>,
    path: PathBuf,
    /// Hash of the content last loaded from the file (swapped or not).
    last_loaded: Mutex<String>,
}

/// What is compared between polls.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
    })
}

impl Reloader {
    /// A reloader for `path`, which held `sha` (SHA-256) when it was read
    /// at start. In a cluster the node may run another policy (the
    /// cluster's): the file is swapped in only when it changes.
    pub fn new(rules: Arc<Rules>, path: PathBuf, sha: String) -> Reloader {
        Reloader {
            rules,
            path,
            last_loaded: Mutex::new(sha),
        }
    }

    /// The file reloaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Load the file if its content differs from what was last loaded
    /// from it. A file that fails to load leaves the active version as it is.
    pub async fn reload(&self, why: &str) -> Result<Reloaded, SwapError> {
        let bytes =
            tokio::fs::read(&self.path)
                .await
                .map_err(|source| crate::policy::LoadError::Read {
                    path: self.path.display().to_string(),
                    source,
                })?;
        let sha = sha256_hex(&bytes);
        // In a cluster every node may watch its own copy of the file: the
        // first to see a change swaps every node, and the others find it
        // running.
        if *self.last() == sha
            || (self.rules.is_cluster() && self.rules.policy().active().sha256 == sha)
        {
            *self.last() = sha;
            tracing::info!(path = %self.path.display(), why, "policy file unchanged");
            return Ok(Reloaded::Unchanged);
        }
        let result = self
            .rules
            .swap(bytes, &self.path.display().to_string())
            .await;
        // A broken file is not retried until it changes again.
        *self.last() = sha;
        match result {
            Ok(report) => {
                tracing::info!(path = %self.path.display(), why, version = report.report.active.seq, "policy file reloaded");
                Ok(Reloaded::Swapped(Box::new(report)))
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), why, error = %e, "policy file not loaded; the active version stays");
                Err(e)
            }
        }
    }

    /// Poll the file every `every` and reload it once a change has settled.
    /// Runs until the task is dropped.
    pub async fn watch(&self, every: Duration) {
        let mut seen = stamp(&self.path);
        // The file may have changed between its load at start-up and now:
        // the first settled look compares its content (by hash) too.
        let mut pending = true;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = stamp(&self.path);
            if now != seen {
                seen = now;
                pending = true;
                continue;
            }
            if pending && now.is_some() {
                pending = false;
                let _ = self.reload("file changed").await;
            }
        }
    }

    fn last(&self) -> std::sync::MutexGuard<'_, String> {
        self.last_loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
