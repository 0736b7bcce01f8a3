//! One scrape: the figures read at one moment ([`Sources`], owned, so the
//! live structures are held no longer than it takes to copy a number),
//! written as OpenMetrics text by prometheus-client.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::counters::{FrameKind, Limit, Refused};
use super::histogram::Snapshot;

/// What `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One policy version's figures.
#[derive(Debug, Clone, Default)]
pub struct VersionFigures {
    /// Its number (the `version` label).
    pub seq: u64,
    /// Calls it ran.
    pub calls: u64,
    /// Of those, failed, by kind (`trap`, `timeout`, …).
    pub failures: Vec<(&'static str, u64)>,
    /// How long its calls took.
    pub latency: Snapshot,
}

/// The policy's figures.
#[derive(Debug, Clone, Default)]
pub struct PolicyFigures {
    /// The active version's number.
    pub active: u64,
    /// The active version, and the previous one if there is one.
    pub versions: Vec<VersionFigures>,
    /// Versions swapped in (admin, file, SIGHUP, another node).
    pub swaps: u64,
    /// Rollbacks an operator asked for.
    pub rollbacks: u64,
    /// Rollbacks the host made on its own.
    pub auto_rollbacks: u64,
}

/// A cluster node's figures.
#[derive(Debug, Clone, Default)]
pub struct ClusterFigures {
    /// Commands and pipelines sent on the write connection.
    pub round_trips: u64,
    /// Of those, the ones that failed (timeout, no connection, bad answer).
    pub errors: u64,
    /// How long they took.
    pub latency: Snapshot,
    /// Messages read from the node's channels.
    pub bus_in: u64,
    /// Messages published to other nodes.
    pub bus_out: u64,
    /// Whether the node is degraded now.
    pub degraded: bool,
    /// Seconds spent degraded since start.
    pub degraded_seconds: f64,
}

/// Everything a scrape shows, read at one moment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `ws` or `wss`.
    pub transport: &'static str,
    /// Connections upgraded, ever.
    pub opened: u64,
    /// Connections open now.
    pub open: u64,
    /// Connections ended, by close code.
    pub closed: Vec<(String, u64)>,
    /// Upgrades refused, by reason.
    pub refused: Vec<(Refused, u64)>,
    /// Frames read, by kind.
    pub frames_in: Vec<(FrameKind, u64)>,
    /// Frames queued to clients, by kind.
    pub frames_out: Vec<(FrameKind, u64)>,
    /// Frames queued to room members by room messages.
    pub room_deliveries: u64,
    /// Connections closed with 4008 (their queue, or the server's budget).
    pub overflows: u64,
    /// Bytes queued to clients now, all queues together (and bytes of
    /// partly received messages).
    pub queued: (u64, u64),
    /// Requests refused by a limit.
    pub limited: Vec<(Limit, u64)>,
    /// The policy.
    pub policy: PolicyFigures,
    /// Rooms with members on this server.
    pub rooms: u64,
    /// Ids held for a resume.
    pub held: u64,
    /// Rooms with kept history, messages kept, their bytes.
    pub history: (u64, u64, u64),
    /// Stored notices (`None`: not counted, in cluster mode) and their
    /// bytes.
    pub notices: (Option<u64>, u64),
    /// The limits the figures above are alerted against: connections
    /// (`--max-connections`), history bytes (`--history-max-bytes`),
    /// stored notice bytes (`--notices-max-bytes`); 0: none.
    pub limits: (u64, u64, u64),
    /// Cluster mode's figures (`None`: one server).
    pub cluster: Option<ClusterFigures>,
}

/// `sources` as OpenMetrics text (ends with `# EOF`).
pub fn render(sources: Sources) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(sources)));
    let mut text = String::new();
    // Writing to a String cannot fail; an error would be a bug in the
    // encoder, and half a scrape is still better than none.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::error!(error = %e, "metrics could not be written");
    }
    text
}

#[derive(Debug)]
struct Scrape(Sources);

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// One family: its descriptor, then each labelled value.
fn family<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    series: impl IntoIterator<Item = (Labels<'a>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in series {
        // Without labels, no `{}` after the name.
        if labels.is_empty() {
            return value.encode(metric);
        }
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(n: u64) -> ConstCounter<u64> {
    ConstCounter::new(n)
}

fn gauge(n: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
}

fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels<'_>, &Snapshot)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in series {
        if labels.is_empty() {
            return metric.encode_histogram::<Labels<'_>>(h.sum, h.count, &h.buckets, None);
        }
        metric
            .encode_family(labels)?
            .encode_histogram::<Labels<'_>>(h.sum, h.count, &h.buckets, None)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let t = s.transport;
        use MetricType::{Counter, Gauge};
        family(
            &mut e,
            "switchboard_connections_open",
            "Connections open now.",
            Gauge,
            [(vec![("transport", t)], gauge(s.open))],
        )?;
        family(
            &mut e,
            "switchboard_connections",
            "Connections upgraded since start.",
            Counter,
            [(vec![("transport", t)], counter(s.opened))],
        )?;
        family(
            &mut e,
            "switchboard_connections_closed",
            "Connections ended, by close code (the server's, else the client's, else 1006).",
            Counter,
            s.closed
                .iter()
                .map(|(code, n)| (vec![("transport", t), ("code", code.as_str())], counter(*n))),
        )?;
        family(
            &mut e,
            "switchboard_handshakes_refused",
            "Upgrade requests refused, by reason.",
            Counter,
            s.refused
                .iter()
                .map(|(why, n)| (vec![("reason", why.label())], counter(*n))),
        )?;
        family(
            &mut e,
            "switchboard_frames_in",
            "WebSocket frames read from clients, by type.",
            Counter,
            s.frames_in
                .iter()
                .map(|(k, n)| (vec![("type", k.label())], counter(*n))),
        )?;
        family(
            &mut e,
            "switchboard_frames_out",
            "WebSocket frames queued to clients, by type.",
            Counter,
            s.frames_out
                .iter()
                .map(|(k, n)| (vec![("type", k.label())], counter(*n))),
        )?;
        family(
            &mut e,
            "switchboard_room_deliveries",
            "Room messages queued to members (one per member reached).",
            Counter,
            [(vec![], counter(s.room_deliveries))],
        )?;
        family(
            &mut e,
            "switchboard_queue_overflows",
            "Connections closed with 4008: their queue or the server's outbound budget was full.",
            Counter,
            [(vec![], counter(s.overflows))],
        )?;
        family(
            &mut e,
            "switchboard_limit_refusals",
            "Requests refused by a limit, by the limit's setting.",
            Counter,
            s.limited
                .iter()
                .map(|(l, n)| (vec![("limit", l.label())], counter(*n))),
        )?;
        policy(&mut e, &s.policy)?;
        for (name, help, value) in [
            (
                "switchboard_rooms",
                "Rooms with members on this server.",
                s.rooms,
            ),
            ("switchboard_held_ids", "Ids held for a resume.", s.held),
            (
                "switchboard_outbound_queued_bytes",
                "Bytes queued to clients now, all queues together (counted only with --outbound-total-bytes on, the default).",
                s.queued.0,
            ),
            (
                "switchboard_inbound_partial_bytes",
                "Bytes of partly received client messages now, all connections together (counted only with --inbound-total-bytes on, the default).",
                s.queued.1,
            ),
            (
                "switchboard_history_rooms",
                "Rooms with kept history (in cluster mode: this node's copy).",
                s.history.0,
            ),
            (
                "switchboard_history_messages",
                "Room messages kept for recovery (in cluster mode: this node's copy).",
                s.history.1,
            ),
            (
                "switchboard_history_bytes",
                "Bytes of kept room messages (in cluster mode: this node's copy).",
                s.history.2,
            ),
            (
                "switchboard_stored_notice_bytes",
                "Bytes of stored notices (in cluster mode: the cluster's, as of this node's last sweep).",
                s.notices.1,
            ),
            (
                "switchboard_connections_limit",
                "Connections this server admits at once (--max-connections; 0: no limit).",
                s.limits.0,
            ),
            (
                "switchboard_history_bytes_limit",
                "Bytes of room history kept at most (--history-max-bytes).",
                s.limits.1,
            ),
            (
                "switchboard_stored_notice_bytes_limit",
                "Bytes of stored notices kept at most (--notices-max-bytes).",
                s.limits.2,
            ),
        ] {
            family(&mut e, name, help, Gauge, [(vec![], gauge(value))])?;
        }
        if let Some(stored) = s.notices.0 {
            family(
                &mut e,
                "switchboard_stored_notices",
                "Notices stored for offline ids (one server; not counted in cluster mode).",
                Gauge,
                [(vec![], gauge(stored))],
            )?;
        }
        if let Some(c) = &s.cluster {
            cluster(&mut e, c)?;
        }
        Ok(())
    }
}

fn policy(e: &mut DescriptorEncoder, p: &PolicyFigures) -> Result<(), std::fmt::Error> {
    use MetricType::{Counter, Gauge};
    let seqs: Vec<String> = p.versions.iter().map(|v| v.seq.to_string()).collect();
    family(
        e,
        "switchboard_policy_active_version",
        "The active policy version's number.",
        Gauge,
        [(vec![], gauge(p.active))],
    )?;
    family(
        e,
        "switchboard_policy_calls",
        "Policy calls, by version.",
        Counter,
        p.versions
            .iter()
            .zip(&seqs)
            .map(|(v, seq)| (vec![("version", seq.as_str())], counter(v.calls))),
    )?;
    family(
        e,
        "switchboard_policy_failures",
        "Policy calls that failed, by version and kind.",
        Counter,
        p.versions.iter().zip(&seqs).flat_map(|(v, seq)| {
            v.failures.iter().map(move |(kind, n)| {
                (
                    vec![("version", seq.as_str()), ("kind", *kind)],
                    counter(*n),
                )
            })
        }),
    )?;
    let latency: Vec<_> = p
        .versions
        .iter()
        .zip(&seqs)
        .map(|(v, seq)| (vec![("version", seq.as_str())], &v.latency))
        .collect();
    histogram(
        e,
        "switchboard_policy_call_duration_seconds",
        "How long policy calls took, by version.",
        &latency,
    )?;
    family(
        e,
        "switchboard_policy_swaps",
        "Policy versions swapped in.",
        Counter,
        [(vec![], counter(p.swaps))],
    )?;
    family(
        e,
        "switchboard_policy_rollbacks",
        "Policy rollbacks: asked for by an operator, or made by the host (automatic).",
        Counter,
        [
            (vec![("automatic", "false")], counter(p.rollbacks)),
            (vec![("automatic", "true")], counter(p.auto_rollbacks)),
        ],
    )
}

fn cluster(e: &mut DescriptorEncoder, c: &ClusterFigures) -> Result<(), std::fmt::Error> {
    use MetricType::{Counter, Gauge};
    family(
        e,
        "switchboard_redis_round_trips",
        "Commands and pipelines sent to Redis on the write connection.",
        Counter,
        [(vec![], counter(c.round_trips))],
    )?;
    family(
        e,
        "switchboard_redis_errors",
        "Redis round trips that failed (timeout, no connection, unexpected answer).",
        Counter,
        [(vec![], counter(c.errors))],
    )?;
    histogram(
        e,
        "switchboard_redis_round_trip_duration_seconds",
        "How long Redis round trips took.",
        &[(vec![], &c.latency)],
    )?;
    family(
        e,
        "switchboard_bus_messages",
        "Messages between nodes: read from this node's channels (in), published (out).",
        Counter,
        [
            (vec![("direction", "in")], counter(c.bus_in)),
            (vec![("direction", "out")], counter(c.bus_out)),
        ],
    )?;
    family(
        e,
        "switchboard_cluster_degraded",
        "1 while the node cannot reach Redis (degraded), else 0.",
        Gauge,
        [(vec![], gauge(u64::from(c.degraded)))],
    )?;
    family(
        e,
        "switchboard_degraded_seconds",
        "Seconds this node spent degraded since start.",
        Counter,
        [(vec![], ConstCounter::new(c.degraded_seconds))],
    )
}
