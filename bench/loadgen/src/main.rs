//! loadgen: one client for every peer of the benchmark (Switchboard, node
//! `ws`, Socket.IO). Scenarios by subcommand; `--protocol v1|socketio` picks
//! how it speaks to the peer. One JSON line per result on stdout, a
//! human-readable line on stderr. Exit status 1 if any result is not ok.
//!
//! It runs on one thread (meant to be pinned to its own core with taskset),
//! on a current-thread tokio runtime.

mod conn;
mod connect;
mod outage;
mod proto;
mod scenarios;
mod storm;
mod sys;
mod tls;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::conn::Target;
use crate::proto::Protocol;
use crate::scenarios::{Common, FanoutOpts, NoticeOpts};

/// Load generator for Switchboard and its peers.
#[derive(Parser)]
#[command(name = "loadgen", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Open N connections and report the server's RSS growth per connection.
    Idle {
        #[command(flatten)]
        common: CommonArgs,
        /// Connections to open (each is one fd here and one in the server).
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Seconds to wait after the last connection before reading RSS.
        #[arg(long, default_value_t = 1.0)]
        settle: f64,
    },
    /// Handshakes: connect, welcome, close. Saturation (a closed loop) or
    /// fixed rates (an open loop), one phase each.
    Connect {
        #[command(flatten)]
        common: CommonArgs,
        /// Saturation: connections being opened at any time.
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
        /// Offered loads in handshakes/s, comma-separated; 0 = saturation
        /// (closed loop). Each is one phase and one result, in order.
        #[arg(long, value_delimiter = ',', default_value = "0")]
        offered: Vec<f64>,
        #[command(flatten)]
        timing: Timing,
    },
    /// Rooms of M members; senders publish timestamped room messages.
    Fanout {
        #[command(flatten)]
        common: CommonArgs,
        /// Number of rooms.
        #[arg(long, default_value_t = 1)]
        rooms: usize,
        /// Members per room.
        #[arg(long, default_value_t = 1000)]
        members: usize,
        /// Members of each room that publish.
        #[arg(long, default_value_t = 1)]
        senders_per_room: usize,
        /// Offered loads in deliveries/s, comma-separated; 0 = saturation
        /// (closed loop). Each is one phase and one result, in order.
        #[arg(long, value_delimiter = ',', default_value = "0")]
        offered: Vec<f64>,
        /// Saturation: messages in flight [default: max(8, 4 × rooms)].
        #[arg(long)]
        window: Option<usize>,
        /// Print `loadgen: mark set-up-done` on stderr once every member
        /// has joined, and `loadgen: mark phases-done` after the last
        /// phase, and wait this many seconds after each, so a driver can
        /// read counters (Redis's INFO) between set-up and load [default: no marks].
        #[arg(long)]
        mark_pause: Option<f64>,
        #[command(flatten)]
        timing: Timing,
    },
    /// Private-message round trips between pairs of connections.
    Notice {
        #[command(flatten)]
        common: CommonArgs,
        /// Pairs (initiator, echoer).
        #[arg(long, default_value_t = 50)]
        pairs: usize,
        /// Offered loads in round trips/s, comma-separated; 0 = saturation.
        #[arg(long, value_delimiter = ',', default_value = "0")]
        offered: Vec<f64>,
        /// Saturation: round trips in flight.
        #[arg(long, default_value_t = 64)]
        window: usize,
        #[command(flatten)]
        timing: Timing,
    },
    /// Protocol v2: clients drop at once and resume with what they missed.
    Storm {
        #[command(flatten)]
        common: CommonArgs,
        /// Clients that drop and resume.
        #[arg(long, default_value_t = 10_000)]
        clients: usize,
        /// Rooms they are spread over.
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        /// Messages each client misses (each room gets this many).
        #[arg(long, default_value_t = 50)]
        missed: usize,
        /// Seconds for the server to see the sockets reset.
        #[arg(long, default_value_t = 2.0)]
        settle: f64,
    },
    /// Redis restarted under load (a cluster): one sender sends acked room
    /// messages at a fixed rate to members spread over the nodes; it prints
    /// `loadgen: mark kill` `kill_after` seconds in and notes the driver's
    /// `killed` and `up` lines on stdin. Counts what was acked, refused,
    /// lost on the other nodes (before and after filling gaps from
    /// `history`, per epoch), delivered twice, and how long delivery across
    /// nodes stopped.
    Outage {
        #[command(flatten)]
        common: CommonArgs,
        /// Room members, the sender included (member i on address i mod N).
        #[arg(long, default_value_t = 10)]
        members: usize,
        /// Room messages sent per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Seconds of sending.
        #[arg(long, default_value_t = 8.0)]
        duration: f64,
        /// Seconds into sending when the driver is asked to restart Redis.
        #[arg(long, default_value_t = 3.0)]
        kill_after: f64,
        /// Seconds allowed after the last send for answers and deliveries.
        #[arg(long, default_value_t = 5.0)]
        grace: f64,
    },
    /// Write a self-signed certificate (cert.pem, key.pem) for localhost.
    Gencert {
        /// Directory for the files.
        #[arg(long)]
        out_dir: PathBuf,
    },
}

#[derive(Args, Clone)]
struct CommonArgs {
    /// The server, host:port; several, comma-separated, for the nodes of a
    /// cluster: connection i of a set-up goes to address i mod N (so a
    /// fan-out room's members alternate, and its first sender is on the
    /// first address); single connections go to the first.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:3001")]
    addr: Vec<String>,
    /// How to speak to the server.
    #[arg(long, value_enum, default_value = "v1")]
    protocol: Protocol,
    /// Use wss:// (any certificate is accepted).
    #[arg(long)]
    tls: bool,
    /// The server's pid: RSS and CPU time are read from /proc/<pid>.
    /// Several, comma-separated (a cluster's nodes): CPU time is their sum,
    /// RSS the first's.
    #[arg(long, value_delimiter = ',')]
    pid: Vec<u32>,
    /// Processes whose CPU time is measured in the same windows but reported
    /// apart (`aux_cpu_s`, `aux_cpu_s_per_m_…`), comma-separated: Redis.
    #[arg(long, value_delimiter = ',')]
    aux_pid: Vec<u32>,
    /// The server's name in the report.
    #[arg(long, default_value = "peer")]
    peer: String,
    /// Client source addresses 127.0.0.2, 127.0.0.3, … used round robin
    /// (0: the kernel's choice).
    #[arg(long, default_value_t = 8)]
    src_ips: u8,
    /// Connections opened at once while setting up.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Seconds allowed for setting up (connecting, joining).
    #[arg(long, default_value_t = 60.0)]
    setup_timeout: f64,
    /// Padding bytes in each message's data.
    #[arg(long, default_value_t = 100)]
    pad: usize,
}

#[derive(Args, Clone)]
struct Timing {
    /// Seconds before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Seconds to wait for stragglers after a phase.
    #[arg(long, default_value_t = 3.0)]
    grace: f64,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("resolve {addr}"))?
        .find(SocketAddr::is_ipv4)
        .with_context(|| format!("no IPv4 address for {addr}"))
}

fn setup(c: &CommonArgs) -> Result<(Common, Rc<Target>)> {
    let addrs = c.addr.iter().map(|a| resolve(a)).collect::<Result<_>>()?;
    let target = Target::new(addrs, c.protocol, c.tls, c.src_ips)?;
    let common = Common {
        peer: c.peer.clone(),
        pid: c.pid.first().copied(),
        pids: c.pid.clone(),
        aux_pids: c.aux_pid.clone(),
        setup_timeout: secs(c.setup_timeout),
        concurrency: c.concurrency,
        pad: "x".repeat(c.pad),
        tag: format!("b{}", std::process::id() % 100_000),
    };
    Ok((common, Rc::new(target)))
}

async fn run(cmd: Cmd) -> Result<Vec<Value>> {
    Ok(match cmd {
        Cmd::Gencert { out_dir } => {
            tls::gencert(&out_dir)?;
            eprintln!("wrote {}/cert.pem and key.pem", out_dir.display());
            Vec::new()
        }
        Cmd::Idle {
            common,
            connections,
            settle,
        } => {
            let (c, t) = setup(&common)?;
            scenarios::idle(&c, &t, connections, secs(settle)).await
        }
        Cmd::Connect {
            common,
            in_flight,
            offered,
            timing,
        } => {
            let (c, t) = setup(&common)?;
            let o = connect::ConnectOpts {
                in_flight,
                offered,
                warmup: secs(timing.warmup),
                duration: secs(timing.duration),
                grace: secs(timing.grace),
            };
            connect::connect(&c, &t, &o).await
        }
        Cmd::Fanout {
            common,
            rooms,
            members,
            senders_per_room,
            offered,
            window,
            mark_pause,
            timing,
        } => {
            let (c, t) = setup(&common)?;
            let o = FanoutOpts {
                mark_pause: mark_pause.map(secs),
                rooms,
                members,
                senders_per_room,
                offered,
                warmup: secs(timing.warmup),
                duration: secs(timing.duration),
                grace: secs(timing.grace),
                window: window.unwrap_or((4 * rooms).max(8)),
            };
            scenarios::fanout(&c, &t, &o).await
        }
        Cmd::Storm {
            common,
            clients,
            rooms,
            missed,
            settle,
        } => {
            let (c, t) = setup(&common)?;
            let o = storm::StormOpts {
                clients,
                rooms: rooms.max(1),
                missed,
                settle: secs(settle),
            };
            storm::storm(&c, &t, &o).await
        }
        Cmd::Outage {
            common,
            members,
            rate,
            duration,
            kill_after,
            grace,
        } => {
            let (c, t) = setup(&common)?;
            let o = outage::OutageOpts {
                members,
                rate,
                duration: secs(duration),
                kill_after: secs(kill_after),
                grace: secs(grace),
            };
            outage::outage(&c, &t, &o).await
        }
        Cmd::Notice {
            common,
            pairs,
            offered,
            window,
            timing,
        } => {
            let (c, t) = setup(&common)?;
            let o = NoticeOpts {
                pairs,
                offered,
                warmup: secs(timing.warmup),
                duration: secs(timing.duration),
                grace: secs(timing.grace),
                window,
            };
            scenarios::notice(&c, &t, &o).await
        }
    })
}

/// One human-readable line for a result.
fn human(v: &Value) -> String {
    let g = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    let s = |k: &str| g(k).as_str().map(str::to_owned).unwrap_or_default();
    let mut line = format!(
        "[{}] {} {} {}:",
        s("peer"),
        s("scenario"),
        s("variant"),
        s("mode")
    );
    const KEYS: &[(&str, &str)] = &[
        ("rss_per_conn_kib", "KiB/conn"),
        ("connections", "conns"),
        ("opened_per_s", "opened/s"),
        ("handshakes_per_s", "handshakes/s"),
        ("offered_per_s", "offered/s"),
        ("deliveries_per_s", "deliveries/s"),
        ("round_trips_per_s", "round trips/s"),
        ("p50_us", "p50 µs"),
        ("p99_us", "p99 µs"),
        ("p999_us", "p99.9 µs"),
        ("max_us", "max µs"),
        ("missing", "missing"),
        ("sent", "sent"),
        ("acked", "acked"),
        ("refused", "refused"),
        ("lost_far", "lost on the other node"),
        ("lost_far_after_fill", "after a history fill"),
        ("twice_by_offset", "twice by offset"),
        ("interrupted_ms", "interrupted ms"),
        ("resumed", "resumed"),
        ("lost", "lost"),
        ("out_of_order_or_duplicated", "out of order or twice"),
        ("catch_up_s", "catch-up s"),
        ("rss_before_mib", "RSS before MiB"),
        ("rss_peak_mib", "RSS peak MiB"),
        ("server_cpu_util", "server CPU"),
        ("cpu_s_per_m_deliveries", "CPU s/M deliveries"),
        ("cpu_s_per_m_notices", "CPU s/M notices"),
        ("cpu_ms_per_k_handshakes", "CPU ms/k handshakes"),
        ("client_cpu_util", "loadgen CPU"),
        ("server_wait_frac", "server run-queue wait"),
        ("client_wait_frac", "loadgen run-queue wait"),
    ];
    for (k, label) in KEYS {
        if let Some(x) = v.get(*k) {
            line.push_str(&format!(" {label} {x};"));
        }
    }
    if v.get("ok") == Some(&Value::Bool(true)) {
        line.push_str(" ok");
    } else {
        line.push_str(&format!(" FAILED: {}", s("problem")));
    }
    line
}

fn main() {
    let cli = Cli::parse();
    sys::raise_nofile();
    conn::now_ns();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    let results = local.block_on(&rt, run(cli.cmd));
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            std::process::exit(2);
        }
    };
    let mut ok = true;
    for r in &results {
        println!("{r}");
        eprintln!("{}", human(r));
        ok &= r.get("ok") == Some(&Value::Bool(true));
    }
    // Leave without waiting for connection tasks: the sockets are reset.
    std::process::exit(if ok { 0 } else { 1 });
}
