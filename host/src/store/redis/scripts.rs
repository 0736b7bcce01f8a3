//! The Lua scripts that write. Each runs atomically in Redis, and each
//! first compares Redis's clock with the deadline its caller sent: run
//! late (Redis was paused and ran what its client had given up on), it
//! writes nothing, so a caller that answered `unavailable` was right.
//! The check is `lua/fence.lua`, put before each script (`publish.lua`
//! has its own, its deadline being another argument; `restore.lua` has
//! none: it only says again what a node has).

use std::sync::LazyLock;

/// A script with the deadline fence (`lua/fence.lua`) before it.
macro_rules! fenced {
    ($file:literal) => {
        concat!(
            include_str!("lua/fence.lua"),
            include_str!(concat!("lua/", $file))
        )
    };
}

use redis::{Script, Value};

use super::Unavailable;

/// Keep and publish a room message (`lua/publish.lua`).
pub static PUBLISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/publish.lua")));

/// Claim an id for a connection on this node (`lua/claim.lua`).
pub static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(fenced!("claim.lua")));

/// Follow an id's join or leave in its rooms set (`lua/member.lua`).
pub static MEMBER: LazyLock<Script> = LazyLock::new(|| Script::new(fenced!("member.lua")));

/// Hand a payload to the node that has an id (`lua/route.lua`).
pub static ROUTE: LazyLock<Script> = LazyLock::new(|| Script::new(fenced!("route.lua")));

/// An id's connection held for a resume (`lua/hold.lua`).
pub static HOLD: LazyLock<Script> = LazyLock::new(|| Script::new(fenced!("hold.lua")));

/// An id offline for good (`lua/release.lua`).
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(fenced!("release.lua")));

/// One value of a script's reply, of the type the caller expects.
pub(super) fn value<T: redis::FromRedisValue>(v: &Value) -> Result<T, Unavailable> {
    redis::from_redis_value_ref(v).map_err(|e| Unavailable::Reply(e.to_string()))
}

/// A script's `{'late'}` (it ran after its deadline and wrote nothing),
/// or an answer this build does not expect.
pub(super) fn late_or(reply: &[Value], what: &str) -> Unavailable {
    match reply {
        [late] if value::<String>(late).is_ok_and(|t| t == "late") => Unavailable::Late,
        other => Unavailable::Reply(format!("{what} answered {other:?}")),
    }
}

/// Keep a notice for an offline id (`lua/notice_store.lua`).
pub static NOTICE_STORE: LazyLock<Script> =
    LazyLock::new(|| Script::new(fenced!("notice_store.lua")));

/// Hand over an id's notices (`lua/notice_take.lua`).
pub static NOTICE_TAKE: LazyLock<Script> =
    LazyLock::new(|| Script::new(fenced!("notice_take.lua")));

/// Drop expired notices (`lua/notice_sweep.lua`).
pub static NOTICE_SWEEP: LazyLock<Script> =
    LazyLock::new(|| Script::new(fenced!("notice_sweep.lua")));

/// Take over a dead node (`lua/takeover.lua`).
pub static TAKEOVER: LazyLock<Script> = LazyLock::new(|| Script::new(fenced!("takeover.lua")));

/// An id of a dead node goes offline for good (`lua/bury.lua`).
pub static BURY: LazyLock<Script> = LazyLock::new(|| Script::new(fenced!("bury.lua")));

/// Write the policy's state (`lua/state.lua`).
pub static STATE: LazyLock<Script> = LazyLock::new(|| Script::new(fenced!("state.lua")));

/// A cluster-wide swap's second step (`lua/policy_activate.lua`).
pub static POLICY_ACTIVATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(fenced!("policy_activate.lua")));

/// A cluster-wide rollback (`lua/policy_rollback.lua`).
pub static POLICY_ROLLBACK: LazyLock<Script> =
    LazyLock::new(|| Script::new(fenced!("policy_rollback.lua")));

/// Say again what a node has, after Redis lost its data (`lua/restore.lua`).
pub static RESTORE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/restore.lua")));
