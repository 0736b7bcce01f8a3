//! Frames as bytes: what a server frame looks like on the wire (a 2–10
//! byte header and the payload, unmasked), close frames, and the socket the
//! fan-out may write to directly ([`Direct`]).
//!
//! The host writes its own frames so that a plain TCP socket can be written
//! from outside its connection's task (the fan-out writes straight to an
//! idle socket, `outbound`'s cork); tungstenite only reads (net/wire.rs).

use std::io::{self, IoSlice};

use tokio_tungstenite::tungstenite::Message;

use crate::chat::actions;

/// A frame's header: FIN, the opcode, the payload length (servers do not
/// mask). At most 10 bytes; `len` says how many are used.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    bytes: [u8; 10],
    len: u8,
}

impl Header {
    /// The header of a final frame with `opcode` and `payload` bytes.
    pub fn new(opcode: u8, payload: usize) -> Header {
        let mut bytes = [0u8; 10];
        bytes[0] = 0x80 | opcode;
        let len = if payload < 126 {
            bytes[1] = payload as u8;
            2
        } else if let Ok(short) = u16::try_from(payload) {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(payload as u64).to_be_bytes());
            10
        };
        Header { bytes, len }
    }

    /// The header's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// A queued message's opcode and payload, as it goes on the wire. Close
/// frames are not queued (the session writes them with [`close_frame`]);
/// `None` for them and for raw frames, which the host never makes.
pub fn parts(msg: &Message) -> Option<(u8, &[u8])> {
    match msg {
        Message::Text(t) => Some((0x1, t.as_bytes())),
        Message::Binary(b) => Some((0x2, b)),
        Message::Ping(b) => Some((0x9, b)),
        Message::Pong(b) => Some((0xA, b)),
        Message::Close(_) | Message::Frame(_) => None,
    }
}

/// The bytes a queued message takes on the wire (0 for what [`parts`]
/// does not write).
pub fn wire_len(msg: &Message) -> usize {
    parts(msg).map_or(0, |(op, payload)| {
        Header::new(op, payload.len()).as_bytes().len() + payload.len()
    })
}

/// Append `msg`'s frame to `out`.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    if let Some((op, payload)) = parts(msg) {
        out.extend_from_slice(Header::new(op, payload.len()).as_bytes());
        out.extend_from_slice(payload);
    }
}

/// A close frame with `code` and `reason` (cut like every close reason,
/// [`actions::cut`], to fit the 125 bytes of a control frame).
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let reason = actions::cut(reason.to_owned());
    let mut out = Vec::with_capacity(4 + reason.len());
    out.extend_from_slice(Header::new(0x8, 2 + reason.len()).as_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
    out
}

/// Whether `bytes` is one whole pong frame (a server's: unmasked).
pub fn is_pong(bytes: &[u8]) -> bool {
    match bytes {
        [0x8A, len, rest @ ..] => usize::from(*len) == rest.len(),
        _ => false,
    }
}

/// A socket that can be written without waiting, from any task: what the
/// fan-out writes to directly.
pub trait Direct: Send + Sync + std::fmt::Debug {
    /// Write what the socket takes now; `WouldBlock` when it takes nothing.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    /// Our frames are what tungstenite writes for the same message, at
    /// each length encoding's edges.
    #[test]
    fn frames_match_tungstenite() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
            let text = "x".repeat(len);
            let mut ours = Vec::new();
            encode(&Message::Text(text.clone().into()), &mut ours);
            let mut theirs = Vec::new();
            Frame::message(text.clone(), OpCode::Data(Data::Text), true)
                .format(&mut theirs)
                .unwrap();
            assert_eq!(ours, theirs, "length {len}");
            assert_eq!(wire_len(&Message::Text(text.into())), ours.len());
        }
    }

    #[test]
    fn close_frames_are_cut_at_a_character() {
        let reason = "é".repeat(100);
        let frame = close_frame(4008, &reason);
        assert_eq!(frame[0], 0x88);
        let len = usize::from(frame[1]);
        assert!(len <= 125);
        assert_eq!(&frame[2..4], &4008u16.to_be_bytes());
        assert!(std::str::from_utf8(&frame[4..]).is_ok());
        assert_eq!(frame.len(), 2 + len);
    }
}
