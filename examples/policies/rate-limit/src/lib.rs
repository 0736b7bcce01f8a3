//! An example policy: Switchboard's default rules (protocol v2) plus a rate
//! limit on messages, one token bucket per connection id.
//!
//! - Every `room`, `broadcast` and `notice` request costs one token (whether
//!   or not the default rules then accept it); other requests (`join`,
//!   `leave`, `ping`) and frames that are not requests are free.
//! - A bucket holds at most [`CAPACITY`] (5) tokens and gains one every
//!   [`REFILL_EVERY_NS`] (1 s), so an id may send a burst of 5 messages, then
//!   one per second.
//! - A request that finds the bucket empty is refused with an `error` of
//!   code `rate-limited` (the protocol's error shape, echoing its `ref`,
//!   saying when to retry) and not delivered; a refusal costs nothing.
//!
//! Buckets live in the host's key-value store (`switchboard:policy/state`,
//! key `rate:<id>`, 16 bytes), so they survive instance replacement, policy
//! swaps and reconnects; time comes from the host's monotonic clock
//! (`switchboard:policy/clock.monotonic-ns`). A missing bucket is a full one,
//! so a bucket that has refilled completely is deleted when its id
//! disconnects (the store does not grow with every id ever seen, and
//! reconnecting gains nothing). If the store refuses to save a bucket (it is
//! full), the message is let through: the limit fails open.
//!
//! The decisions are plain Rust ([`check`], [`Bucket`]), tested natively;
//! the component (wasm32 only) is a few lines binding them to the WIT world,
//! on top of guest-logic's `DefaultPolicy`.
//!
//! Build (from the workspace root):
//!
//! ```text
//! cargo build -p rate-limit-policy --target wasm32-wasip2 --profile guest
//! ```
//!
//! The component is `target/wasm32-wasip2/guest/rate_limit_policy.wasm`.

use guest_logic::frames;
use guest_logic::request::{self, Kind};
use guest_logic::{Action, State};

#[cfg(target_arch = "wasm32")]
mod component;

/// Tokens a full bucket holds: the longest burst.
pub const CAPACITY: u64 = 5;
/// Nanoseconds to gain one token (1 s: one message per second sustained).
pub const REFILL_EVERY_NS: u64 = 1_000_000_000;
/// Error code of a refused request.
pub const RATE_LIMITED: &str = "rate-limited";

/// One id's bucket. Its level is kept as credit in nanoseconds of refill
/// time (one token = [`REFILL_EVERY_NS`]), so refilling is an addition and
/// everything is integer arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// The level at `at_ns`, in nanoseconds of refill (at most [`Bucket::FULL`]).
    pub credit_ns: u64,
    /// When the level was `credit_ns` (host monotonic clock).
    pub at_ns: u64,
}

impl Bucket {
    /// The credit of a full bucket.
    pub const FULL: u64 = CAPACITY * REFILL_EVERY_NS;

    /// A full bucket at `now_ns` (what a missing bucket is).
    pub fn full(now_ns: u64) -> Bucket {
        Bucket {
            credit_ns: Self::FULL,
            at_ns: now_ns,
        }
    }

    /// The credit at `now_ns`: what it was plus the time since, at most full.
    /// A clock that seems to go back adds nothing.
    pub fn credit_at(&self, now_ns: u64) -> u64 {
        self.credit_ns
            .saturating_add(now_ns.saturating_sub(self.at_ns))
            .min(Self::FULL)
    }

    /// Take one token at `now_ns`: the bucket after, or the nanoseconds until
    /// a token is there.
    pub fn take(&self, now_ns: u64) -> Result<Bucket, u64> {
        let credit = self.credit_at(now_ns);
        if credit >= REFILL_EVERY_NS {
            Ok(Bucket {
                credit_ns: credit - REFILL_EVERY_NS,
                at_ns: now_ns.max(self.at_ns),
            })
        } else {
            Err(REFILL_EVERY_NS - credit)
        }
    }

    /// The stored form: credit then time, little-endian.
    pub fn encode(&self) -> [u8; 16] {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.credit_ns.to_le_bytes());
        bytes[8..].copy_from_slice(&self.at_ns.to_le_bytes());
        bytes
    }

    /// A bucket from its stored form; `None` if it is not one.
    pub fn decode(bytes: &[u8]) -> Option<Bucket> {
        let bytes: &[u8; 16] = bytes.try_into().ok()?;
        let (credit, at) = bytes.split_at(8);
        Some(Bucket {
            credit_ns: u64::from_le_bytes(credit.try_into().ok()?),
            at_ns: u64::from_le_bytes(at.try_into().ok()?),
        })
    }
}

/// The state key of `id`'s bucket.
pub fn bucket_key(id: &str) -> String {
    format!("rate:{id}")
}

/// `id`'s bucket (a full one if none is stored, or if what is stored is not
/// a bucket).
pub fn load<S: State + ?Sized>(state: &S, id: &str, now_ns: u64) -> Bucket {
    state
        .get(&bucket_key(id))
        .and_then(|b| Bucket::decode(&b))
        .unwrap_or(Bucket::full(now_ns))
}

/// Rate-limit a text frame from `sender` at `now_ns`: `Some(refusal)` when
/// its bucket is empty; `None` to hand the frame to the default rules (having
/// taken a token if it is a message).
pub fn check<S: State + ?Sized>(
    state: &S,
    sender: &str,
    text: &str,
    now_ns: u64,
) -> Option<Vec<Action>> {
    let req = request::peek(text)?;
    if !matches!(req.kind, Kind::Room | Kind::Broadcast | Kind::Notice) {
        return None;
    }
    match load(state, sender, now_ns).take(now_ns) {
        Ok(bucket) => {
            // Fails open: a full store must not silence everyone.
            let _ = state.set(&bucket_key(sender), &bucket.encode());
            None
        }
        Err(wait_ns) => Some(vec![Action::Reply(frames::error_with_code(
            req.reference,
            RATE_LIMITED,
            &format!(
                "rate limit: {CAPACITY} messages at once, then 1 per second; retry in {} ms",
                wait_ns.div_ceil(1_000_000)
            ),
        ))]),
    }
}

/// `id` went offline: forget its bucket if it has refilled completely (a
/// missing bucket is a full one, so nothing changes but the store's size).
pub fn forget_if_full<S: State + ?Sized>(state: &S, id: &str, now_ns: u64) {
    if load(state, id, now_ns).credit_at(now_ns) == Bucket::FULL {
        state.delete(&bucket_key(id));
    }
}

#[cfg(test)]
mod tests;
