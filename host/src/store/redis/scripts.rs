//! The Lua scripts that write. Each runs atomically in Redis, and each
//! first compares Redis's clock with the deadline its caller sent: run
//! late (Redis was paused and ran what its client had given up on), it
//! writes nothing, so a caller that answered `unavailable` was right.

use std::sync::LazyLock;

use redis::Script;

/// Keep and publish a room message (`lua/publish.lua`).
pub static PUBLISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/publish.lua")));
