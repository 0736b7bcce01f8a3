//! Frames for ids this node is claiming and has not registered yet.
//!
//! A claim moves an id to this node in Redis at once, and from then on
//! every notice to it is routed here; but the connection registers only
//! after the claim's answer, the rules' `on-connect` and, for a resume, the
//! handover from the node that held it. A notice that came in between
//! found no connection: it was dropped (from another node) or refused
//! `target-closed` (from this one). A drain makes many such resumes at
//! once. So an id is parked from just before its claim is sent until its
//! connection registers: what comes for it waits here, and goes to the
//! connection right after what the claim and the handover brought.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio_tungstenite::tungstenite::Message;

/// Frames one parked id keeps at most (past it, new ones are dropped, as
/// for a queue that overflows; their log entries stay in the notice log).
const MAX_FRAMES: usize = 4096;

/// A park older than this is over (a claim whose connection never came
/// to register, for a reason no path let go of): frames go on as if there
/// were none.
const MAX_AGE: Duration = Duration::from_secs(30);

/// A frame, with its notice-log entry when it has one.
pub type Frame = (Message, Option<String>);

#[derive(Debug)]
struct Park {
    since: Instant,
    frames: Vec<Frame>,
}

/// The parked ids.
#[derive(Debug, Default)]
pub struct Parked {
    ids: DashMap<String, Park>,
}

impl Parked {
    /// Park `id` (before its claim is sent); a park already there starts
    /// again empty.
    pub fn open(&self, id: &str) {
        self.ids.insert(
            id.to_owned(),
            Park {
                since: Instant::now(),
                frames: Vec::new(),
            },
        );
    }

    /// End `id`'s park: what came for it meanwhile, oldest first.
    pub fn close(&self, id: &str) -> Vec<Frame> {
        self.ids
            .remove(id)
            .map(|(_, p)| p.frames)
            .unwrap_or_default()
    }

    /// Keep `frame` for `id` if it is parked; else give it back.
    pub fn park(&self, id: &str, frame: Frame) -> Result<(), Frame> {
        let Some(mut park) = self.ids.get_mut(id) else {
            return Err(frame);
        };
        if park.since.elapsed() > MAX_AGE {
            drop(park);
            self.ids.remove_if(id, |_, p| p.since.elapsed() > MAX_AGE);
            return Err(frame);
        }
        if park.frames.len() >= MAX_FRAMES {
            tracing::warn!(
                id,
                "a frame for an id being claimed was dropped: too many waiting"
            );
            return Ok(());
        }
        park.frames.push(frame);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_parked_id_keeps_frames_and_closing_hands_them_over() {
        let p = Parked::default();
        assert!(p.park("a", (Message::text("x"), None)).is_err());
        p.open("a");
        assert!(p.park("a", (Message::text("1"), Some("e1".into()))).is_ok());
        assert!(p.park("a", (Message::text("2"), None)).is_ok());
        let got = p.close("a");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1.as_deref(), Some("e1"));
        assert!(p.park("a", (Message::text("3"), None)).is_err());
        assert!(p.close("a").is_empty());
    }
}
