//! `switchboard policy replay`: recorded events through a component, with a
//! simulated registry (the host's own registry, with connections that have
//! no socket) and the clock set to each event's recorded time, so the rules
//! decide as they would have live. Prints one JSON line per event; with a
//! second component, only the events where the two decide differently.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use serde::Serialize;

use super::fail;
use crate::chat::Chat;
use crate::chat::actions::Caller;
use crate::chat::lifecycle;
use crate::chat::outbound::{self, Inbox, Outbox};
use crate::chat::record::{Event, Recorded};
use crate::chat::registry::Registry;
use crate::config::PolicyLimits;
use crate::config::cli::LimitArgs;
use crate::policy::clock::Clock;
use crate::policy::{Action, LoadError, Policy, PolicyEnv, Reject};
use crate::store::bus::Bus;
use crate::store::history::History;
use crate::store::history::HistoryLimits;
use crate::store::memory::{MemoryBus, MemoryHistory, MemoryNotices};
use crate::store::notices::{Notices, StoredLimits};
use crate::store::state::{StateLimits, StateStore};

/// Frames a simulated connection holds before they are thrown away (often
/// enough that no queue overflows, which would log a 4008 close).
const SIMULATED_QUEUE: usize = 4096;

/// Events between two emptyings of the simulated queues.
const DRAIN_EVERY: usize = 256;

/// A component under replay, with its own registry, state and clock.
pub struct Replay {
    policy: Policy,
    registry: Registry,
    /// Rooms' history, as a live server keeps it.
    history: Arc<dyn History>,
    /// Stored notices, as a live server keeps them.
    notices: Arc<dyn Notices>,
    /// The one-server bus over the simulated registry.
    bus: Arc<dyn Bus>,
    clock: Clock,
    /// Simulated connections: their outbound queues are never read (what
    /// would be delivered does not matter, only what is decided).
    conns: HashMap<String, (Outbox, Inbox)>,
    /// Events since the queues were last emptied.
    since_drain: usize,
}

/// What a component decided for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The actions it returned.
    Actions(Vec<Action>),
    /// `on-connect` refused the connection.
    Rejected(Reject),
    /// The call failed (trap, timeout, limits).
    Failed(String),
    /// The event was not delivered (e.g. a message from an id whose connect
    /// this component refused).
    Skipped(String),
}

/// One printed line.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayLine {
    /// Line number in the events file.
    pub n: usize,
    /// `connect`, `message`, `disconnect` or `gap`.
    pub event: &'static str,
    /// Whose event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The decision.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Replay {
    /// What carrying out a decision touches in this replay.
    fn chat(&self) -> Chat<'_> {
        Chat {
            registry: &self.registry,
            history: &*self.history,
            notices: &*self.notices,
            bus: &*self.bus,
        }
    }

    /// Load `bytes` for replay.
    pub async fn new(
        bytes: Vec<u8>,
        source: &str,
        limits: PolicyLimits,
    ) -> Result<Replay, LoadError> {
        let registry = Registry::new();
        let history: Arc<dyn History> = Arc::new(MemoryHistory::new(HistoryLimits::default()));
        let clock = Clock::manual(0);
        let env = PolicyEnv {
            registry: Arc::new(registry.clone()),
            history: history.clone(),
            state: std::sync::Arc::new(StateStore::new(StateLimits::from(&limits))),
            clock: clock.clone(),
        };
        let policy = Policy::load(bytes, source, env, limits)?;
        let notices: Arc<dyn Notices> = Arc::new(MemoryNotices::new(StoredLimits::default()));
        let local = Arc::new(registry.clone());
        let bus = Arc::new(MemoryBus::new(local, history.clone(), notices.clone()));
        Ok(Replay {
            policy,
            registry,
            history,
            notices,
            bus,
            clock,
            conns: HashMap::new(),
            since_drain: 0,
        })
    }

    /// Deliver one recorded event and apply what was decided to the
    /// simulated registry.
    pub async fn step(&mut self, record: &Recorded) -> Outcome {
        self.since_drain += 1;
        if self.since_drain >= DRAIN_EVERY {
            self.since_drain = 0;
            for (_, inbox) in self.conns.values_mut() {
                while inbox.try_recv().is_some() {}
            }
        }
        self.clock.set_ms(record.t);
        match &record.event {
            event @ Event::Connect { id, .. } => {
                // What the rules were given live: claims, `resumed` and the
                // (empty) session included.
                let Some(info) = event.connect_info() else {
                    return not_connected();
                };
                match self.policy.on_connect(info) {
                    Ok(Ok(decided)) => {
                        let serial = self.registry.next_serial();
                        let (outbox, inbox) =
                            outbound::channel(serial, SIMULATED_QUEUE, usize::MAX);
                        // No session: a replay has no client to resume.
                        let chat = self.chat();
                        lifecycle::connect(
                            chat,
                            id,
                            &outbox,
                            decided.clone(),
                            None,
                            None,
                            Default::default(),
                            || {},
                        )
                        .await;
                        self.conns.insert(id.clone(), (outbox, inbox));
                        Outcome::Actions(decided)
                    }
                    Ok(Err(reject)) => Outcome::Rejected(reject),
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            Event::Message { id, text, binary } => {
                let Some((outbox, _)) = self.conns.get(id) else {
                    return not_connected();
                };
                let Some(frame) = Event::frame(text, binary) else {
                    return Outcome::Skipped(
                        "a message needs exactly one of text and binary (base64)".into(),
                    );
                };
                match self.policy.on_message(id, frame) {
                    Ok(decided) => {
                        let caller = Caller {
                            request: text.as_deref(),
                            ..Caller::new(outbox)
                        };
                        lifecycle::message(self.chat(), caller, decided.clone()).await;
                        Outcome::Actions(decided)
                    }
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            Event::Disconnect { id } => {
                let Some((outbox, _)) = self.conns.remove(id) else {
                    return not_connected();
                };
                self.registry.unregister(id, outbox.serial());
                let decided = self.policy.on_disconnect(id);
                lifecycle::disconnect(self.chat(), id, decided.clone().ok(), 0).await;
                match decided {
                    Ok(decided) => Outcome::Actions(decided),
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            Event::Gap { dropped } => {
                Outcome::Skipped(format!("the recording dropped {dropped} events here"))
            }
        }
    }
}

fn not_connected() -> Outcome {
    Outcome::Skipped(
        "not connected in this replay (its connect was refused or not recorded)".into(),
    )
}

fn describe(record: &Recorded) -> (&'static str, Option<String>) {
    match &record.event {
        Event::Connect { id, .. } => ("connect", Some(id.clone())),
        Event::Message { id, .. } => ("message", Some(id.clone())),
        Event::Disconnect { id } => ("disconnect", Some(id.clone())),
        Event::Gap { .. } => ("gap", None),
    }
}

async fn load(file: &Path, limits: &PolicyLimits) -> Result<Replay, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    Replay::new(bytes, &file.display().to_string(), limits.clone())
        .await
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// The command.
pub async fn run(
    file: &Path,
    events: &Path,
    against: Option<&Path>,
    limits: LimitArgs,
) -> ExitCode {
    let limits = match limits.into_limits() {
        Ok(l) => l,
        Err(e) => return fail(&e.to_string()),
    };
    let mut a = match load(file, &limits).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let mut b = match against {
        Some(other) => match load(other, &limits).await {
            Ok(r) => Some(r),
            Err(e) => return fail(&e),
        },
        None => None,
    };
    let reader = match std::fs::File::open(events) {
        Ok(f) => BufReader::new(f),
        Err(e) => return fail(&format!("cannot read {}: {e}", events.display())),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let (mut total, mut differ) = (0usize, 0usize);
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => return fail(&format!("{}:{n}: {e}", events.display())),
        };
        if line.trim().is_empty() {
            continue;
        }
        let record: Recorded = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                return fail(&format!(
                    "{}:{n}: not a recorded event: {e}",
                    events.display()
                ));
            }
        };
        total += 1;
        let (event, id) = describe(&record);
        let first = a.step(&record).await;
        let printed = match &mut b {
            None => serde_json::to_string(&ReplayLine {
                n,
                event,
                id,
                outcome: first,
            }),
            Some(b) => {
                let second = b.step(&record).await;
                if first == second {
                    continue;
                }
                differ += 1;
                serde_json::to_string(&serde_json::json!({
                    "n": n, "event": event, "id": id, "a": first, "b": second,
                }))
            }
        };
        if let Ok(text) = printed
            && writeln!(out, "{text}").is_err()
        {
            return ExitCode::FAILURE;
        }
    }
    if b.is_some() {
        eprintln!(
            "{total} events replayed; {differ} decided differently by {}",
            against.map(|p| p.display().to_string()).unwrap_or_default()
        );
        if differ > 0 {
            return ExitCode::from(1);
        }
    } else {
        eprintln!("{total} events replayed");
    }
    ExitCode::SUCCESS
}
