//! What operators scrape: `GET /metrics` on the admin listener (with the
//! token) and on `--metrics-listen` (without). docs/OPERATIONS.md,
//! "Metrics", lists every family.
//!
//! Counting costs the hot path one relaxed atomic add where an event
//! happens, on a counter with a fixed set of labels (no map, no lock, no
//! allocation); what the server holds (rooms, history, stored notices,
//! held ids) is read only when scraped. The text is written by
//! prometheus-client.
//!
//! - [`counters`]  — the event counters every layer bumps, and their labels
//! - [`histogram`] — a latency histogram of atomics, fixed buckets
//! - [`scrape`]    — one scrape: the counters and the stores' figures, as text

pub mod counters;
pub mod histogram;
pub mod scrape;

pub use counters::{Counters, FrameKind, Limit, Refused};
pub use histogram::Histogram;
pub use scrape::{CONTENT_TYPE, Sources, render};
