//! Between the generated binding types of each world version and the
//! host's own (`types.rs`). World 0.1.0's actions become the host's with
//! the 0.2.0 fields at the value that keeps 0.1.0's behaviour: nothing
//! kept in a room's history, nothing stored, no replay.

use super::bindings::{v1, v2};
use super::types::{Action, ConnectInfo, Frame, Position, Reject};

/// The same conversions for both versions' `frame` and `reject`, which
/// differ only in the module they were generated in.
macro_rules! common {
    ($wit:ident) => {
        impl From<$wit::types::Frame> for Frame {
            fn from(f: $wit::types::Frame) -> Self {
                match f {
                    $wit::types::Frame::Text(s) => Frame::Text(s),
                    $wit::types::Frame::Binary(b) => Frame::Binary(b),
                }
            }
        }

        impl From<Frame> for $wit::types::Frame {
            fn from(f: Frame) -> Self {
                match f {
                    Frame::Text(s) => $wit::types::Frame::Text(s),
                    Frame::Binary(b) => $wit::types::Frame::Binary(b),
                }
            }
        }

        impl From<$wit::types::Reject> for Reject {
            fn from(r: $wit::types::Reject) -> Self {
                Reject {
                    status: r.status,
                    reason: r.reason,
                }
            }
        }
    };
}

common!(v1);
common!(v2);

impl From<ConnectInfo> for v1::types::ConnectInfo {
    fn from(i: ConnectInfo) -> Self {
        v1::types::ConnectInfo {
            id: i.id,
            remote_addr: i.remote_addr,
            path: i.path,
            query: i.query,
            headers: i.headers,
            secure: i.secure,
        }
    }
}

impl From<ConnectInfo> for v2::types::ConnectInfo {
    fn from(i: ConnectInfo) -> Self {
        v2::types::ConnectInfo {
            id: i.id,
            remote_addr: i.remote_addr,
            path: i.path,
            query: i.query,
            headers: i.headers,
            secure: i.secure,
            // A map of JSON values always serialises.
            claims: i.claims.map(|c| serde_json::Value::Object(c).to_string()),
            session: i.session,
            resumed: i.resumed,
        }
    }
}

impl From<v1::types::Action> for Action {
    fn from(a: v1::types::Action) -> Self {
        use v1::types::Action as A;
        match a {
            A::Reply(f) => Action::Reply(f.into()),
            A::Send(s) => Action::Send {
                to: s.to,
                frame: s.frame.into(),
                on_sent: s.on_sent.map(Into::into),
                on_closed: s.on_closed.map(Into::into),
                on_held: None,
                store: false,
                on_stored: None,
            },
            A::SendRoom(s) => Action::SendRoom {
                room: s.room,
                frame: s.frame.into(),
                except: s.except,
                transient: true,
            },
            A::Broadcast(b) => Action::Broadcast {
                frame: b.frame.into(),
                except: b.except,
            },
            A::Join(m) => Action::Join {
                id: m.id,
                room: m.room,
                since: None,
                on_joined: None,
            },
            A::Leave(m) => Action::Leave {
                id: m.id,
                room: m.room,
            },
            A::Close(c) => Action::Close {
                id: c.id,
                code: c.code,
                reason: c.reason,
            },
        }
    }
}

impl From<v2::types::Action> for Action {
    fn from(a: v2::types::Action) -> Self {
        use v2::types::Action as A;
        match a {
            A::Reply(f) => Action::Reply(f.into()),
            A::Send(s) => Action::Send {
                to: s.to,
                frame: s.frame.into(),
                on_sent: s.on_sent.map(Into::into),
                on_closed: s.on_closed.map(Into::into),
                on_held: s.on_held.map(Into::into),
                store: s.store,
                on_stored: s.on_stored.map(Into::into),
            },
            A::SendRoom(s) => Action::SendRoom {
                room: s.room,
                frame: s.frame.into(),
                except: s.except,
                transient: s.transient,
            },
            A::Broadcast(b) => Action::Broadcast {
                frame: b.frame.into(),
                except: b.except,
            },
            A::Join(j) => Action::Join {
                id: j.id,
                room: j.room,
                since: j.since.map(|p| Position {
                    epoch: p.epoch,
                    offset: p.offset,
                }),
                on_joined: j.on_joined.map(Into::into),
            },
            A::Leave(m) => Action::Leave {
                id: m.id,
                room: m.room,
            },
            A::Close(c) => Action::Close {
                id: c.id,
                code: c.code,
                reason: c.reason,
            },
        }
    }
}
