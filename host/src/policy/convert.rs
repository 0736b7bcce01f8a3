//! Between the generated binding types and the host's own (`types.rs`).

use super::bindings::switchboard::policy::types as wit;
use super::types::{Action, ConnectInfo, Frame, Reject};

impl From<wit::Frame> for Frame {
    fn from(f: wit::Frame) -> Self {
        match f {
            wit::Frame::Text(s) => Frame::Text(s),
            wit::Frame::Binary(b) => Frame::Binary(b),
        }
    }
}

impl From<Frame> for wit::Frame {
    fn from(f: Frame) -> Self {
        match f {
            Frame::Text(s) => wit::Frame::Text(s),
            Frame::Binary(b) => wit::Frame::Binary(b),
        }
    }
}

impl From<ConnectInfo> for wit::ConnectInfo {
    fn from(i: ConnectInfo) -> Self {
        wit::ConnectInfo {
            id: i.id,
            remote_addr: i.remote_addr,
            path: i.path,
            query: i.query,
            headers: i.headers,
            secure: i.secure,
        }
    }
}

impl From<wit::Reject> for Reject {
    fn from(r: wit::Reject) -> Self {
        Reject {
            status: r.status,
            reason: r.reason,
        }
    }
}

impl From<wit::Action> for Action {
    fn from(a: wit::Action) -> Self {
        match a {
            wit::Action::Reply(f) => Action::Reply(f.into()),
            wit::Action::Send(s) => Action::Send {
                to: s.to,
                frame: s.frame.into(),
                on_sent: s.on_sent.map(Into::into),
                on_closed: s.on_closed.map(Into::into),
            },
            wit::Action::SendRoom(s) => Action::SendRoom {
                room: s.room,
                frame: s.frame.into(),
                except: s.except,
            },
            wit::Action::Broadcast(b) => Action::Broadcast {
                frame: b.frame.into(),
                except: b.except,
            },
            wit::Action::Join(m) => Action::Join {
                id: m.id,
                room: m.room,
            },
            wit::Action::Leave(m) => Action::Leave {
                id: m.id,
                room: m.room,
            },
            wit::Action::Close(c) => Action::Close {
                id: c.id,
                code: c.code,
                reason: c.reason,
            },
        }
    }
}
