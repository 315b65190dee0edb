//! The load client's own WebSocket reader, for the sockets past CONNECTED: the
//! frames of one read are decoded in place from the shard's read buffer, so a
//! socket holds no read buffer of its own (only the start of a frame that a read cut
//! off), and no byte is zeroed, copied or allocated per frame. tungstenite opens the
//! socket and reads CONNECTED; `client::aligned` makes sure it holds nothing more
//! when the socket comes here.
//!
//! Headers are parsed by tungstenite's [`FrameHeader`]; what RFC 6455 asks of a
//! client is checked here: no masked frame from a server, no reserved bit (no
//! extension is negotiated), control frames short and whole, continuations only
//! inside a fragmented message, text in UTF-8, and no frame or message over the
//! client's limit (`--max-message-size`). The client's own frames (the pong, the
//! close) are masked, as a client's must be.

use std::io::Cursor;
use std::ops::ControlFlow;

use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

/// The longest payload of a control frame (RFC 6455, 5.5).
const MAX_CONTROL: u64 = 125;

/// A server frame, as the load client sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A whole text message (reassembled when it came in fragments).
    Text(&'a str),
    Binary,
    Ping(&'a [u8]),
    Pong,
    /// The server's close, with its code if it gave one.
    Close(Option<u16>),
}

/// A frame that breaks RFC 6455 or the client's limit: the connection is dropped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("invalid frame header")]
    Header,
    #[error("a masked frame from the server")]
    Masked,
    #[error("a reserved bit set without an extension")]
    Reserved,
    #[error("a control frame fragmented or over 125 bytes")]
    Control,
    #[error("a continuation outside a fragmented message, or a new message inside one")]
    Fragments,
    #[error("a text message that is not UTF-8")]
    Utf8,
    #[error("a close frame of one byte")]
    Close,
    #[error("a message of {size} bytes, over the client limit of {max}")]
    TooBig { size: u64, max: usize },
}

/// The decoding state of one socket: what a read cut off, and a fragmented message.
pub struct Decoder {
    /// The start of a frame that the last input ended in the middle of.
    partial: Vec<u8>,
    /// A fragmented message so far: whether it is text, and its payload.
    message: Option<(bool, Vec<u8>)>,
    max: usize,
}

impl Decoder {
    /// `leftover`: the bytes already read past CONNECTED; `max`: the largest frame
    /// and message accepted.
    pub fn new(leftover: Vec<u8>, max: usize) -> Decoder {
        Decoder {
            partial: leftover,
            message: None,
            max,
        }
    }

    /// The bytes kept from the last input: the next input must start with them.
    pub fn partial(&self) -> &[u8] {
        &self.partial
    }

    /// The kept bytes, to read the rest of a long frame into.
    pub fn kept_mut(&mut self) -> &mut Vec<u8> {
        &mut self.partial
    }

    /// Takes the kept bytes (to decode them as the whole input).
    pub fn take_partial(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.partial)
    }

    /// The whole length of the frame that the kept bytes start, once its header is
    /// complete; `None` without kept bytes or before that.
    pub fn pending_frame(&self) -> Option<usize> {
        let mut cursor = Cursor::new(&self.partial[..]);
        match FrameHeader::parse(&mut cursor) {
            // The header's own length as sent (a server may use a longer length
            // encoding than needed).
            Ok(Some((_, len))) => Some((cursor.position() as usize).saturating_add(len as usize)),
            _ => None,
        }
    }

    /// Decodes each whole frame of `input` (which starts with the bytes kept last
    /// time) and hands it to `on`; keeps the incomplete end for the next input.
    /// `on` breaks to stop (the rest is dropped), and so does a close.
    pub fn decode(
        &mut self,
        input: &[u8],
        mut on: impl FnMut(Incoming<'_>) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, Violation> {
        let mut at = 0;
        while at < input.len() {
            let mut cursor = Cursor::new(&input[at..]);
            let Some((header, len)) =
                FrameHeader::parse(&mut cursor).map_err(|_| Violation::Header)?
            else {
                break;
            };
            if header.mask.is_some() {
                return Err(Violation::Masked);
            }
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(Violation::Reserved);
            }
            // A continuation adds to its message, which must stay within the limit too.
            let so_far = match (header.opcode, &self.message) {
                (OpCode::Data(Data::Continue), Some((_, message))) => message.len() as u64,
                _ => 0,
            };
            let size = len.saturating_add(so_far);
            if size > self.max as u64 {
                return Err(Violation::TooBig {
                    size,
                    max: self.max,
                });
            }
            let start = at + cursor.position() as usize;
            // Within `max` (checked above), so it fits.
            let end = start + len as usize;
            if end > input.len() {
                break;
            }
            at = end;
            let payload = &input[start..end];
            let flow = match header.opcode {
                OpCode::Control(control) => {
                    if !header.is_final || len > MAX_CONTROL {
                        return Err(Violation::Control);
                    }
                    match control {
                        Control::Ping => on(Incoming::Ping(payload)),
                        Control::Pong => on(Incoming::Pong),
                        Control::Close => {
                            let code = match payload {
                                [] => None,
                                [_] => return Err(Violation::Close),
                                [a, b, ..] => Some(u16::from_be_bytes([*a, *b])),
                            };
                            let _ = on(Incoming::Close(code));
                            ControlFlow::Break(())
                        }
                        // FrameHeader::parse refuses reserved opcodes.
                        Control::Reserved(_) => return Err(Violation::Header),
                    }
                }
                OpCode::Data(data) => self.data(data, header.is_final, payload, &mut on)?,
            };
            if flow.is_break() {
                self.partial.clear();
                return Ok(flow);
            }
        }
        let rest = &input[at..];
        if rest.is_empty() {
            // Nothing cut off: a socket between frames holds no buffer.
            self.partial = Vec::new();
        } else {
            self.partial.clear();
            self.partial.extend_from_slice(rest);
        }
        Ok(ControlFlow::Continue(()))
    }

    fn data(
        &mut self,
        data: Data,
        fin: bool,
        payload: &[u8],
        on: &mut impl FnMut(Incoming<'_>) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, Violation> {
        let text = match data {
            Data::Text => true,
            Data::Binary => false,
            Data::Continue => {
                let Some((_, message)) = self.message.as_mut() else {
                    return Err(Violation::Fragments);
                };
                message.extend_from_slice(payload);
                if !fin {
                    return Ok(ControlFlow::Continue(()));
                }
                let (text, message) = self.message.take().expect("a message in progress");
                return whole(text, &message, on);
            }
            Data::Reserved(_) => return Err(Violation::Header),
        };
        if self.message.is_some() {
            return Err(Violation::Fragments);
        }
        if !fin {
            self.message = Some((text, payload.to_vec()));
            return Ok(ControlFlow::Continue(()));
        }
        whole(text, payload, on)
    }
}

/// A whole message to `on`.
fn whole(
    text: bool,
    payload: &[u8],
    on: &mut impl FnMut(Incoming<'_>) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, Violation> {
    if !text {
        return Ok(on(Incoming::Binary));
    }
    let text = std::str::from_utf8(payload).map_err(|_| Violation::Utf8)?;
    Ok(on(Incoming::Text(text)))
}

/// A client frame on the wire: masked with a fresh key.
fn masked(mut frame: Frame, out: &mut Vec<u8>) {
    frame.header_mut().mask = Some(rand::random());
    frame
        .format(out)
        .expect("writing a frame into a Vec cannot fail");
}

/// The answer to a ping: a pong with its payload.
pub fn pong(payload: &[u8], out: &mut Vec<u8>) {
    masked(Frame::pong(payload.to_vec()), out);
}

/// A close frame with `code` and `reason`.
pub fn close(code: u16, reason: &str, out: &mut Vec<u8>) {
    let frame = Frame::close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }));
    masked(frame, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1024;

    use crate::client::aligned::server_frame as frame;

    /// What decoding `wire` in pieces of `chunk` bytes yields, as owned values.
    fn decode_in(wire: &[u8], chunk: usize) -> Result<Vec<String>, Violation> {
        let mut decoder = Decoder::new(Vec::new(), MAX);
        let mut seen = Vec::new();
        for part in wire.chunks(chunk) {
            let input = [decoder.partial(), part].concat();
            let flow = decoder.decode(&input, |frame| {
                seen.push(format!("{frame:?}"));
                ControlFlow::Continue(())
            })?;
            if flow.is_break() {
                break;
            }
        }
        Ok(seen)
    }

    #[test]
    fn frames_are_decoded_whatever_the_reads_cut() {
        let long = "é".repeat(200);
        let wire = [
            frame(0x81, br#"{"seq":1}"#),
            frame(0x89, b"hi"),
            frame(0x82, &[0, 1, 2]),
            // A fragmented text message with a ping between its fragments.
            frame(0x01, &long.as_bytes()[..101]),
            frame(0x89, b""),
            frame(0x80, &long.as_bytes()[101..]),
            frame(0x8A, b""),
            frame(0x88, &[0x03, 0xE8, b'o', b'k']),
            frame(0x81, b"after the close"),
        ]
        .concat();
        let expected: Vec<String> = [
            format!("{:?}", Incoming::Text(r#"{"seq":1}"#)),
            format!("{:?}", Incoming::Ping(b"hi")),
            format!("{:?}", Incoming::Binary),
            format!("{:?}", Incoming::Ping(b"")),
            format!("{:?}", Incoming::Text(&long)),
            format!("{:?}", Incoming::Pong),
            format!("{:?}", Incoming::Close(Some(1000))),
        ]
        .into();
        for chunk in 1..=wire.len() {
            assert_eq!(decode_in(&wire, chunk).unwrap(), expected, "chunk {chunk}");
        }
    }

    #[test]
    fn what_a_client_must_refuse_is_a_violation() {
        let cases: &[(Vec<u8>, Violation)] = &[
            (vec![0x81, 0x81, 1, 2, 3, 4, b'x'], Violation::Masked),
            (frame(0xC1, b"x"), Violation::Reserved),
            (frame(0x09, b""), Violation::Control),
            (frame(0x89, &[0; 126]), Violation::Control),
            (frame(0x80, b"x"), Violation::Fragments),
            (
                [frame(0x01, b"a"), frame(0x81, b"b")].concat(),
                Violation::Fragments,
            ),
            (frame(0x81, &[0xFF, 0xFE]), Violation::Utf8),
            (frame(0x88, &[3]), Violation::Close),
            (frame(0x83, b""), Violation::Header),
            (
                frame(0x81, &[b'x'; MAX + 1]),
                Violation::TooBig {
                    size: MAX as u64 + 1,
                    max: MAX,
                },
            ),
            (
                [frame(0x01, &[b'x'; MAX]), frame(0x80, b"y")].concat(),
                Violation::TooBig {
                    size: MAX as u64 + 1,
                    max: MAX,
                },
            ),
        ];
        for (wire, violation) in cases {
            assert_eq!(
                decode_in(wire, wire.len()).as_ref(),
                Err(violation),
                "{wire:?}"
            );
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_header_alone() {
        // 2^63 bytes announced: refused before any of it is read or kept.
        let mut decoder = Decoder::new(Vec::new(), MAX);
        let header = [0x81, 127, 0x7F, 0, 0, 0, 0, 0, 0, 0];
        let refused = decoder.decode(&header, |_| ControlFlow::Continue(()));
        assert!(matches!(refused, Err(Violation::TooBig { .. })));
    }

    #[test]
    fn the_kept_bytes_say_how_long_their_frame_is() {
        let mut decoder = Decoder::new(Vec::new(), 1 << 20);
        let wire = frame(0x81, &[b'x'; 70_000]);
        let flow = decoder.decode(&wire[..3], |_| ControlFlow::Continue(()));
        assert_eq!(flow, Ok(ControlFlow::Continue(())));
        assert_eq!(
            decoder.pending_frame(),
            None,
            "the 8-byte length is not complete"
        );
        let input = [decoder.take_partial(), wire[3..20].to_vec()].concat();
        let flow = decoder.decode(&input, |_| ControlFlow::Continue(()));
        assert_eq!(flow, Ok(ControlFlow::Continue(())));
        assert_eq!(decoder.pending_frame(), Some(wire.len()));
        assert_eq!(decoder.partial(), &wire[..20]);
    }

    #[test]
    fn a_socket_between_frames_holds_no_buffer() {
        let wire = frame(0x81, &[b'x'; 300]);
        let mut decoder = Decoder::new(Vec::new(), MAX);
        let flow = decoder.decode(&wire[..100], |_| ControlFlow::Continue(()));
        assert_eq!(flow, Ok(ControlFlow::Continue(())));
        assert_eq!(decoder.partial(), &wire[..100]);
        let input = [decoder.partial(), &wire[100..]].concat();
        let flow = decoder.decode(&input, |_| ControlFlow::Continue(()));
        assert_eq!(flow, Ok(ControlFlow::Continue(())));
        assert_eq!(decoder.partial().len(), 0);
        assert_eq!(
            decoder.kept_mut().capacity(),
            0,
            "the cut frame's bytes are freed"
        );
    }

    #[test]
    fn leftover_bytes_are_decoded_first() {
        let wire = frame(0x81, b"first");
        let mut decoder = Decoder::new(wire[..4].to_vec(), MAX);
        let input = [decoder.partial(), &wire[4..]].concat();
        let mut texts = Vec::new();
        let flow = decoder.decode(&input, |frame| {
            if let Incoming::Text(t) = frame {
                texts.push(t.to_string());
            }
            ControlFlow::Continue(())
        });
        assert_eq!(flow, Ok(ControlFlow::Continue(())));
        assert_eq!(texts, ["first"]);
    }

    #[test]
    fn the_clients_frames_are_masked_and_decode_back() {
        use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
        let mut out = Vec::new();
        pong(b"abc", &mut out);
        close(1000, "normal", &mut out);
        let mut cursor = Cursor::new(&out[..]);
        let (header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
        let mask = header.mask.expect("a client frame is masked");
        assert_eq!((header.opcode, len), (OpCode::Control(Control::Pong), 3));
        let at = cursor.position() as usize;
        let payload: Vec<u8> = out[at..at + 3]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(payload, b"abc");
        cursor.set_position((at + 3) as u64);
        let (header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
        assert_eq!((header.opcode, len), (OpCode::Control(Control::Close), 8));
    }
}
