//! A policy built against `switchboard:policy@0.1.0` (wit/v0.1.0), as
//! components built before 0.2.0 are: it welcomes with `welcome0.1.0 <id>`,
//! joins `join <room>` (acking `joined <room>`), sends `room <room> <text>`
//! to the room's other members and echoes anything else.

#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    world: "policy",
    path: "../../../wit/v0.1.0",
});

use exports::switchboard::policy::handler::Guest;
use switchboard::policy::types::{Action, ConnectInfo, Frame, Membership, Reject, SendRoom};

struct V010;

impl Guest for V010 {
    fn on_connect(info: ConnectInfo) -> Result<Vec<Action>, Reject> {
        Ok(vec![Action::Reply(Frame::Text(format!(
            "welcome0.1.0 {}",
            info.id
        )))])
    }

    fn on_message(sender: String, frame: Frame) -> Vec<Action> {
        let Frame::Text(text) = frame else {
            return vec![Action::Reply(frame)];
        };
        if let Some(room) = text.strip_prefix("join ") {
            return vec![
                Action::Join(Membership {
                    id: sender,
                    room: room.to_owned(),
                }),
                Action::Reply(Frame::Text(format!("joined {room}"))),
            ];
        }
        if let Some(rest) = text.strip_prefix("room ")
            && let Some((room, body)) = rest.split_once(' ')
        {
            return vec![Action::SendRoom(SendRoom {
                room: room.to_owned(),
                frame: Frame::Text(body.to_owned()),
                except: Some(sender),
            })];
        }
        vec![Action::Reply(Frame::Text(text))]
    }

    fn on_disconnect(_id: String) -> Vec<Action> {
        Vec::new()
    }
}

export!(V010);
