//! The wasmtime engine: compiler settings, the pooling allocator sized from
//! the limits, and the epoch ticker that makes per-call deadlines work.

use std::thread;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::types::LoadError;
use crate::config::PolicyLimits;

/// How often the epoch advances; deadlines are counted in these ticks.
pub const TICK: Duration = Duration::from_millis(1);

/// Build an engine for policies under `limits`, and start its ticker.
pub fn build(limits: &PolicyLimits) -> Result<Engine, LoadError> {
    let mut pool = PoolingAllocationConfig::default();
    let n = limits.pool_instances.max(2);
    // A wasip2 component made by rustc holds a handful of core instances,
    // memories and tables (the program, the WASI adapter, shims).
    pool.total_component_instances(n)
        .total_core_instances(n * 8)
        .total_memories(n * 4)
        .total_tables(n * 8)
        .total_stacks(n)
        .max_memory_size(limits.memory_bytes);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if std::env::var_os("SWITCHBOARD_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&config).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
    start_ticker(&engine)?;
    Ok(engine)
}

/// Deadline in epoch ticks for a call of `deadline` wall time (at least 1).
pub fn ticks(deadline: Duration) -> u64 {
    (deadline.as_micros() / TICK.as_micros()).max(1) as u64
}

/// Advance the epoch every `TICK` until the engine is dropped.
fn start_ticker(engine: &Engine) -> Result<(), LoadError> {
    let weak = engine.weak();
    thread::Builder::new()
        .name("policy-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(TICK);
            }
        })
        .map(|_| ())
        .map_err(|e| LoadError::Engine(format!("cannot start the epoch ticker: {e}")))
}
