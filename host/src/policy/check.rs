//! `switchboard policy check FILE`: would this component load? The same
//! steps a swap takes (compile, check against the world, instantiate), run
//! offline against an empty registry and state, plus what it imports.

use std::time::Instant;

use serde::Serialize;

use super::host_api::PolicyEnv;
use super::types::LoadError;
use super::version::VersionInfo;
use super::versions::Policy;
use crate::config::PolicyLimits;
use crate::policy::clock::Clock;
use crate::store::history::HistoryLimits;
use crate::store::memory::MemoryHistory;
use crate::store::state::{StateLimits, StateStore};

/// What the check found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Size, hash and imports of the component.
    #[serde(flatten)]
    pub info: VersionInfo,
    /// Time to compile, check and instantiate it, in milliseconds.
    pub load_ms: u64,
}

/// Load `bytes` as a server would, without serving anything.
pub async fn check(
    bytes: Vec<u8>,
    source: &str,
    limits: PolicyLimits,
) -> Result<CheckReport, LoadError> {
    let env = PolicyEnv {
        registry: std::sync::Arc::new(crate::store::presence::NoOne),
        state: std::sync::Arc::new(StateStore::new(StateLimits::from(&limits))),
        history: std::sync::Arc::new(MemoryHistory::new(HistoryLimits::default())),
        clock: Clock::System,
    };
    let started = Instant::now();
    let policy = Policy::load(bytes, source, env, limits)?;
    Ok(CheckReport {
        info: policy.active(),
        load_ms: started.elapsed().as_millis() as u64,
    })
}
