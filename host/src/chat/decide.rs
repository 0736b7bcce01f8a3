//! Asking the rules: the sandboxed policy, or (benchmark builds with the
//! `native-rules` feature and `--native-rules`) the same rules compiled in.
//! Every event is recorded first when recording is on.

use crate::net::shared::Shared;
use crate::ops::record::Event;
use crate::policy::{Action, CallError, ConnectInfo, Frame, Reject};

/// `on-connect`: accept with actions, or refuse.
pub fn on_connect(
    shared: &Shared,
    info: ConnectInfo,
) -> Result<Result<Vec<Action>, Reject>, CallError> {
    shared.record(|| Event::connect(&info));
    #[cfg(feature = "native-rules")]
    if let Some(native) = &shared.native {
        return Ok(Ok(native.on_connect(&info)));
    }
    shared.policy.on_connect(info)
}

/// `on-message`.
pub fn on_message(shared: &Shared, id: &str, frame: Frame) -> Result<Vec<Action>, CallError> {
    shared.record(|| Event::message(id, &frame));
    #[cfg(feature = "native-rules")]
    if let Some(native) = &shared.native {
        return Ok(native.on_message(id, &frame));
    }
    shared.policy.on_message(id, frame)
}

/// `on-disconnect`. Not retried: leaving the rooms does not depend on it.
pub fn on_disconnect(shared: &Shared, id: &str) -> Result<Vec<Action>, CallError> {
    shared.record(|| Event::Disconnect { id: id.to_owned() });
    #[cfg(feature = "native-rules")]
    if let Some(native) = &shared.native {
        return Ok(native.on_disconnect(id));
    }
    shared.policy.on_disconnect(id)
}
