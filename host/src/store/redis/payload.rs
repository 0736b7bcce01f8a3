//! What goes over the channels, written and read in one place. Fields
//! are separated by `\n` and the frame comes last, whole (a frame may
//! hold newlines; the fields before it never do: node ids, epochs and
//! numbers have none, and the id rule of the handshake allows none).
//! `lua/publish.lua` writes the room form itself, for a kept message, in
//! the same layout, and `lua/claim.lua` the `claimed` form.
//! A handover's frames are length-prefixed instead ([`handover`]).

use tokio_tungstenite::tungstenite::Message;

use crate::store::bus::{Handover, RoomAt};

/// A frame of a room, as a node published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomFrame<'a> {
    /// The node that published it (a node skips its own).
    pub node: &'a str,
    /// Where it is kept, (epoch, offset); `None` for a transient frame.
    pub kept: Option<(&'a str, u64)>,
    /// The id it skips.
    pub except: Option<&'a str>,
    /// The frame.
    pub frame: &'a str,
}

/// A frame for every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllFrame<'a> {
    /// The node that published it.
    pub node: &'a str,
    /// The id it skips.
    pub except: Option<&'a str>,
    /// The frame.
    pub frame: &'a str,
}

/// What a node is told on its own channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToNode<'a> {
    /// `id` was claimed elsewhere with `generation`: a connection of the
    /// id here with an older one is replaced. With `resumer`, that node
    /// resumes the id held here: hand it over.
    Claimed {
        id: &'a str,
        generation: u64,
        resumer: Option<&'a str>,
    },
    /// `id`, held here, was claimed with `generation` by a connection on
    /// `claimer` that did not resume it: end the hold (`left`), then say
    /// so to `claimer` (an empty handover).
    ClaimedHeld {
        id: &'a str,
        generation: u64,
        claimer: &'a str,
    },
    /// What a node that held `id` handed over to this one, resuming it
    /// with claim `generation`.
    /// `None`: that node no longer held it.
    Handover {
        id: &'a str,
        generation: u64,
        handover: Option<Handover>,
    },
    /// A frame for `id`'s connection here (a notice), and its entry in
    /// the id's notice log (to delete once it is written).
    Frame {
        id: &'a str,
        frame: Frame<'a>,
        entry: Option<&'a str>,
    },
    /// A node's marker to itself ([`sync`]).
    Sync { token: u64 },
    /// Close `id`'s connection here.
    Close {
        id: &'a str,
        code: u16,
        reason: &'a str,
    },
}

/// A frame as it crossed: text or binary, as it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

/// A frame for `id` on its node.
pub fn frame_to(id: &str, msg: &Message) -> Option<Vec<u8>> {
    let (kind, body): (&str, &[u8]) = match msg {
        Message::Text(t) => ("t", t.as_bytes()),
        Message::Binary(b) => ("b", b),
        _ => return None,
    };
    let mut out = Vec::with_capacity(12 + id.len() + body.len());
    out.extend_from_slice(b"frame\n");
    out.extend_from_slice(id.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(kind.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(body);
    Some(out)
}

/// `handover` of `id` (claim `generation`) for the resuming node: after
/// the header, records of a kind byte (`t` text, `b` binary, `r` a room:
/// `room\nepoch\noffset`), a length and `\n`, then that many bytes; or
/// `-` when there is nothing to hand over (the id was not held).
pub fn handover(id: &str, generation: u64, handover: Option<&Handover>) -> Vec<u8> {
    let mut out = format!("handover\n{id}\n{generation}\n").into_bytes();
    let Some(handover) = handover else {
        out.push(b'-');
        return out;
    };
    let mut record = |kind: u8, body: &[u8]| {
        out.push(kind);
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.push(b'\n');
        out.extend_from_slice(body);
    };
    for frame in &handover.frames {
        match frame {
            Message::Text(t) => record(b't', t.as_bytes()),
            Message::Binary(b) => record(b'b', b),
            _ => {}
        }
    }
    for r in &handover.rooms {
        record(
            b'r',
            format!("{}\n{}\n{}", r.room, r.epoch, r.offset).as_bytes(),
        );
    }
    for entry in &handover.logged {
        record(b'l', entry.as_bytes());
    }
    out
}

fn read_handover(mut rest: &[u8]) -> Option<Handover> {
    let mut h = Handover::default();
    while let Some((&kind, after)) = rest.split_first() {
        let nl = after.iter().position(|b| *b == b'\n')?;
        let len: usize = std::str::from_utf8(&after[..nl]).ok()?.parse().ok()?;
        let body = after.get(nl + 1..nl + 1 + len)?;
        rest = &after[nl + 1 + len..];
        match kind {
            b't' => h
                .frames
                .push(Message::text(std::str::from_utf8(body).ok()?)),
            b'b' => h.frames.push(Message::binary(body.to_vec())),
            b'l' => h.logged.push(std::str::from_utf8(body).ok()?.to_owned()),
            b'r' => {
                let mut p = std::str::from_utf8(body).ok()?.splitn(3, '\n');
                h.rooms.push(RoomAt {
                    room: p.next()?.to_owned(),
                    epoch: p.next()?.to_owned(),
                    offset: p.next()?.parse().ok()?,
                });
            }
            _ => return None,
        }
    }
    Some(h)
}

/// A node's marker to itself: everything published to it before is read
/// when this is.
pub fn sync(token: u64) -> Vec<u8> {
    format!("sync\n{token}").into_bytes()
}

/// Close `id`'s connection on its node.
pub fn close(id: &str, code: u16, reason: &str) -> Vec<u8> {
    format!("close\n{id}\n{code}\n{reason}").into_bytes()
}

/// A transient room frame (`publish.lua` writes kept ones).
pub fn transient(node: &str, except: Option<&str>, frame: &str) -> String {
    format!("{node}\n\n0\n{}\n{frame}", except.unwrap_or(""))
}

/// What marks a binary frame's payload: after the node's id (which has
/// no `:`), on a room's channel and on the all-nodes channel alike.
const BINARY: &str = ":b";

/// A transient binary room frame: the text form's layout, the node's id
/// marked, the bytes last.
pub fn transient_binary(node: &str, except: Option<&str>, frame: &[u8]) -> Vec<u8> {
    let mut out = format!("{node}{BINARY}\n\n0\n{}\n", except.unwrap_or("")).into_bytes();
    out.extend_from_slice(frame);
    out
}

/// A binary frame for everyone.
pub fn all_binary(node: &str, except: Option<&str>, frame: &[u8]) -> Vec<u8> {
    let mut out = format!("{node}{BINARY}\n{}\n", except.unwrap_or("")).into_bytes();
    out.extend_from_slice(frame);
    out
}

/// A binary frame as a node published it (a transient room frame or a
/// broadcast): the node, the id it skips, the bytes. `None` for a text
/// frame's payload, or one this build cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryFrame<'a> {
    pub node: &'a str,
    pub except: Option<&'a str>,
    pub frame: &'a [u8],
}

/// Read a binary room frame (`room`: a room's channel; else the
/// all-nodes channel).
pub fn binary(payload: &[u8], room: bool) -> Option<BinaryFrame<'_>> {
    let fields = if room { 5 } else { 3 };
    let mut p = payload.splitn(fields, |b| *b == b'\n');
    let node = std::str::from_utf8(p.next()?).ok()?.strip_suffix(BINARY)?;
    if room {
        let (_epoch, _offset) = (p.next()?, p.next()?);
    }
    let except = std::str::from_utf8(p.next()?).ok()?;
    Some(BinaryFrame {
        node,
        except: nonempty(except),
        frame: p.next()?,
    })
}

/// A frame for everyone.
pub fn all(node: &str, except: Option<&str>, frame: &str) -> String {
    format!("{node}\n{}\n{frame}", except.unwrap_or(""))
}

/// Read a room channel's payload.
pub fn room(payload: &str) -> Option<RoomFrame<'_>> {
    let mut p = payload.splitn(5, '\n');
    let (node, epoch, offset, except, frame) =
        (p.next()?, p.next()?, p.next()?, p.next()?, p.next()?);
    let kept = if epoch.is_empty() {
        None
    } else {
        Some((epoch, offset.parse().ok()?))
    };
    Some(RoomFrame {
        node,
        kept,
        except: nonempty(except),
        frame,
    })
}

/// Read the all-nodes channel's payload.
pub fn read_all(payload: &str) -> Option<AllFrame<'_>> {
    let mut p = payload.splitn(3, '\n');
    let (node, except, frame) = (p.next()?, p.next()?, p.next()?);
    Some(AllFrame {
        node,
        except: nonempty(except),
        frame,
    })
}

/// Read a node channel's payload (`lua/claim.lua` writes `claimed`).
pub fn to_node(payload: &[u8]) -> Option<ToNode<'_>> {
    let mut p = payload.splitn(4, |b| *b == b'\n');
    let text = |b| std::str::from_utf8(b).ok();
    match p.next()? {
        b"logged" => {
            // `lua/route.lua`'s form: the log's entry, then the frame's.
            let entry = text(p.next()?)?;
            let start = "logged\n".len() + entry.len() + 1;
            match to_node(payload.get(start..)?)? {
                ToNode::Frame { id, frame, .. } => Some(ToNode::Frame {
                    id,
                    frame,
                    entry: Some(entry),
                }),
                _ => None,
            }
        }
        b"claimed" => {
            let id = text(p.next()?)?;
            let generation = text(p.next()?)?.parse().ok()?;
            let resumer = match p.next() {
                Some(r) => Some(text(r)?).filter(|r| !r.is_empty()),
                None => None,
            };
            // `lua/claim.lua` marks a claim of a held id that did not
            // resume it with a `!` before the claiming node.
            if let Some(claimer) = resumer.and_then(|r| r.strip_prefix('!')) {
                return Some(ToNode::ClaimedHeld {
                    id,
                    generation,
                    claimer,
                });
            }
            Some(ToNode::Claimed {
                id,
                generation,
                resumer,
            })
        }
        b"handover" => {
            let id = text(p.next()?)?;
            let generation = text(p.next()?)?.parse().ok()?;
            let handover = match p.next().unwrap_or_default() {
                b"-" => None,
                records => Some(read_handover(records)?),
            };
            Some(ToNode::Handover {
                id,
                generation,
                handover,
            })
        }
        b"frame" => {
            let id = text(p.next()?)?;
            let frame = match (p.next()?, p.next()?) {
                (b"t", body) => Frame::Text(text(body)?),
                (b"b", body) => Frame::Binary(body),
                _ => return None,
            };
            Some(ToNode::Frame {
                id,
                frame,
                entry: None,
            })
        }
        b"sync" => Some(ToNode::Sync {
            token: text(p.next()?)?.parse().ok()?,
        }),
        b"close" => {
            let id = text(p.next()?)?;
            let code = text(p.next()?)?.parse().ok()?;
            let reason = text(p.next().unwrap_or_default())?;
            Some(ToNode::Close { id, code, reason })
        }
        _ => None,
    }
}

fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_payload_reads_back_as_written() {
        let frame = "{\"a\":\"x\ny\"}";
        assert_eq!(
            room(&transient("n1", Some("bob"), frame)),
            Some(RoomFrame {
                node: "n1",
                kept: None,
                except: Some("bob"),
                frame
            })
        );
        // publish.lua's layout for a kept message.
        assert_eq!(
            room("n2\nE\n7\n\nhi\nthere").and_then(|r| r.kept),
            Some(("E", 7))
        );
        assert_eq!(room("n2\nE\nseven\n\nhi"), None);
        let bytes = [0u8, 10, 255];
        assert_eq!(
            binary(&transient_binary("n1", Some("bob"), &bytes), true),
            Some(BinaryFrame {
                node: "n1",
                except: Some("bob"),
                frame: &bytes
            })
        );
        assert_eq!(
            binary(&all_binary("n1", None, &bytes), false),
            Some(BinaryFrame {
                node: "n1",
                except: None,
                frame: &bytes
            })
        );
        assert_eq!(binary(transient("n1", None, "x").as_bytes(), true), None);
        assert_eq!(
            read_all(&all("n1", None, frame)),
            Some(AllFrame {
                node: "n1",
                except: None,
                frame
            })
        );
        assert_eq!(
            to_node(b"claimed\nalice\n12"),
            Some(ToNode::Claimed {
                id: "alice",
                generation: 12,
                resumer: None
            })
        );
        assert_eq!(
            to_node(b"claimed\nalice\n12\nnode-b"),
            Some(ToNode::Claimed {
                id: "alice",
                generation: 12,
                resumer: Some("node-b")
            })
        );
        let h = Handover {
            frames: vec![
                Message::text("a\nb"),
                Message::binary(vec![1, 10, 2]),
                Message::text(""),
            ],
            rooms: vec![RoomAt {
                room: "lobby".into(),
                epoch: "E1".into(),
                offset: 42,
            }],
            logged: vec!["1700000000000-0".into(), "1700000000000-1".into()],
        };
        assert_eq!(
            to_node(&handover("alice", 13, Some(&h))),
            Some(ToNode::Handover {
                id: "alice",
                generation: 13,
                handover: Some(h)
            })
        );
        assert_eq!(
            to_node(&handover("alice", 13, None)),
            Some(ToNode::Handover {
                id: "alice",
                generation: 13,
                handover: None
            })
        );
        assert_eq!(to_node(b"handover\nalice\n13\nt9\nshort"), None);
        assert_eq!(to_node(b"claimed\nalice"), None);
        assert_eq!(to_node(&sync(7)), Some(ToNode::Sync { token: 7 }));
        assert_eq!(
            to_node(b"claimed\nalice\n12\n!node-b"),
            Some(ToNode::ClaimedHeld {
                id: "alice",
                generation: 12,
                claimer: "node-b"
            })
        );
        // lua/route.lua's form of a logged notice.
        let mut logged = b"logged\n1700000000000-3\n".to_vec();
        logged.extend(frame_to("bob", &Message::text("a\nb")).unwrap_or_default());
        assert_eq!(
            to_node(&logged),
            Some(ToNode::Frame {
                id: "bob",
                frame: Frame::Text("a\nb"),
                entry: Some("1700000000000-3")
            })
        );
        assert_eq!(to_node(b"later\nx"), None);
        let text = frame_to("bob", &Message::text("a\nb")).unwrap_or_default();
        assert_eq!(
            to_node(&text),
            Some(ToNode::Frame {
                id: "bob",
                frame: Frame::Text("a\nb"),
                entry: None
            })
        );
        let bytes = frame_to("bob", &Message::binary(vec![0, 10, 255])).unwrap_or_default();
        assert_eq!(
            to_node(&bytes),
            Some(ToNode::Frame {
                id: "bob",
                frame: Frame::Binary(&[0, 10, 255]),
                entry: None
            })
        );
        assert_eq!(
            to_node(&close("bob", 4003, "go\naway")),
            Some(ToNode::Close {
                id: "bob",
                code: 4003,
                reason: "go\naway"
            })
        );
    }
}
