//! Asking the rules: the sandboxed policy, or (benchmark builds with the
//! `native-rules` feature and `--native-rules`) the same rules compiled in.
//! Every event is recorded first when recording is on.

use crate::chat::record::{Event, Recorder};
use crate::policy::{Action, CallError, ConnectInfo, Frame, Policy, Reject};

/// Who decides, and where events are recorded: all asking the rules needs
/// of the server (the network side builds it from its shared context).
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// The sandboxed policy.
    pub policy: &'a Policy,
    /// Where events are recorded, if they are.
    pub recorder: Option<&'a Recorder>,
    /// The default rules compiled in, used instead of the policy
    /// (benchmarks only).
    #[cfg(feature = "native-rules")]
    pub native: Option<&'a crate::chat::native::NativeRules>,
}

impl Rules<'_> {
    fn record(&self, event: impl FnOnce() -> Event) {
        if let Some(r) = self.recorder {
            r.record(event());
        }
    }
}

/// `on-connect`: accept with actions, or refuse.
pub fn on_connect(
    rules: Rules<'_>,
    info: ConnectInfo,
) -> Result<Result<Vec<Action>, Reject>, CallError> {
    rules.record(|| Event::connect(&info));
    #[cfg(feature = "native-rules")]
    if let Some(native) = rules.native {
        return Ok(Ok(native.on_connect(&info)));
    }
    rules.policy.on_connect(info)
}

/// `on-message`.
pub fn on_message(rules: Rules<'_>, id: &str, frame: Frame) -> Result<Vec<Action>, CallError> {
    rules.record(|| Event::message(id, &frame));
    #[cfg(feature = "native-rules")]
    if let Some(native) = rules.native {
        return Ok(native.on_message(id, &frame));
    }
    rules.policy.on_message(id, frame)
}

/// `on-disconnect`. Not retried: leaving the rooms does not depend on it.
pub fn on_disconnect(rules: Rules<'_>, id: &str) -> Result<Vec<Action>, CallError> {
    rules.record(|| Event::Disconnect { id: id.to_owned() });
    #[cfg(feature = "native-rules")]
    if let Some(native) = rules.native {
        return Ok(native.on_disconnect(id));
    }
    rules.policy.on_disconnect(id)
}
