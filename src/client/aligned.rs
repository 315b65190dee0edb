//! Reads that stop at frame boundaries, so that a socket can be taken from
//! tungstenite after CONNECTED and read by a reader of its own (the load client's,
//! `load::wire`) with nothing left behind in tungstenite's buffer.
//!
//! While aligning, the reads handed to the layer above end at the end of the upgrade
//! answer's head, and then at the end of each frame: tungstenite reads only when it
//! lacks a whole frame, so once it has returned a message it holds no byte of the
//! next one. What this layer read from the connection past that point stays here,
//! and [`Aligned::into_parts`] gives it back with the connection. A stream made with
//! [`Aligned::off`] passes every read through and holds nothing.

use std::io::{self, Cursor};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

/// How much is read from the connection at a time while aligning (the opening
/// exchange only: the upgrade answer and CONNECTED).
const READ_CHUNK: usize = 4096;

/// A stream whose reads may be aligned on frames (see the module's doc).
pub struct Aligned<S> {
    inner: S,
    /// `None`: reads pass through.
    align: Option<Box<Align>>,
}

struct Align {
    /// Bytes read from the connection; those before `pos` went up already.
    buf: Vec<u8>,
    pos: usize,
    phase: Phase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// In the upgrade answer's head: how many bytes of its final `\r\n\r\n` are seen.
    Head(u8),
    /// Between frames (`0`) or inside one: how many of its bytes are still to go up.
    Frames(u64),
    /// Reads go up as they come: a header that does not parse (the layer above
    /// reports it), or the end of the connection.
    Through,
}

impl<S> Aligned<S> {
    /// Every read passes through.
    pub fn off(inner: S) -> Aligned<S> {
        Aligned { inner, align: None }
    }

    /// Reads stop at the end of the upgrade answer's head, then at each frame's end.
    pub fn on_frames(inner: S) -> Aligned<S> {
        Aligned {
            inner,
            align: Some(Box::new(Align {
                buf: Vec::new(),
                pos: 0,
                phase: Phase::Head(0),
            })),
        }
    }

    /// The connection, and what was read from it that the layer above has not had.
    pub fn into_parts(self) -> (S, Vec<u8>) {
        let rest = match self.align {
            Some(align) => align.buf[align.pos..].to_vec(),
            None => Vec::new(),
        };
        (self.inner, rest)
    }
}

/// The end of an HTTP head.
const HEAD_END: &[u8; 4] = b"\r\n\r\n";

/// How many bytes of [`HEAD_END`] are matched after `b`, `seen` being matched before.
fn head_step(seen: u8, b: u8) -> u8 {
    if b == HEAD_END[usize::from(seen)] {
        seen + 1
    } else if b == b'\r' {
        1
    } else {
        0
    }
}

impl Align {
    /// How many of the unsent bytes may go up now (`None`: more must be read first).
    fn allowed(&mut self) -> Option<usize> {
        let unsent = &self.buf[self.pos..];
        match self.phase {
            Phase::Through => Some(unsent.len()),
            Phase::Head(mut seen) => {
                // Up to the head's end, if it is there.
                for (i, &b) in unsent.iter().enumerate() {
                    seen = head_step(seen, b);
                    if usize::from(seen) == HEAD_END.len() {
                        return Some(i + 1);
                    }
                }
                Some(unsent.len())
            }
            Phase::Frames(0) => {
                let mut cursor = Cursor::new(unsent);
                match FrameHeader::parse(&mut cursor) {
                    Ok(Some((_, len))) => {
                        // The header as sent (its length may use more bytes than needed).
                        let whole = cursor.position().saturating_add(len);
                        self.phase = Phase::Frames(whole);
                        self.allowed()
                    }
                    Ok(None) => None,
                    Err(_) => {
                        self.phase = Phase::Through;
                        Some(unsent.len())
                    }
                }
            }
            Phase::Frames(left) => Some(
                unsent
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX)),
            ),
        }
    }

    /// `n` bytes (at most what [`Align::allowed`] said) went up.
    fn sent(&mut self, n: usize) {
        let sent = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        match &mut self.phase {
            Phase::Head(seen) => {
                for &b in sent {
                    *seen = head_step(*seen, b);
                }
                if usize::from(*seen) == HEAD_END.len() {
                    self.phase = Phase::Frames(0);
                }
            }
            Phase::Frames(left) => *left -= n as u64,
            Phase::Through => {}
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Aligned<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(align) = this.align.as_deref_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, out);
        };
        loop {
            if align.pos < align.buf.len()
                && let Some(n) = align.allowed()
                && n > 0
            {
                let n = n.min(out.remaining());
                out.put_slice(&align.buf[align.pos..align.pos + n]);
                align.sent(n);
                return Poll::Ready(Ok(()));
            }
            // Nothing may go up yet: read more.
            let filled = align.buf.len();
            align.buf.resize(filled + READ_CHUNK, 0);
            let mut read = ReadBuf::new(&mut align.buf[filled..]);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut read);
            let got = read.filled().len();
            align.buf.truncate(filled + got);
            match polled {
                Poll::Ready(Ok(())) if got == 0 => {
                    // The end: what is left goes up, then the end itself.
                    align.phase = Phase::Through;
                    if align.pos == align.buf.len() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
    }
}

crate::tap::write_through!(impl<S> for Aligned<S> where S: AsyncWrite + Unpin);

/// A server frame, unmasked: `first` is FIN, RSV and opcode (tests here and in
/// `load::wire`).
#[cfg(test)]
pub(crate) fn server_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![first];
    match payload.len() {
        n @ 0..=125 => f.push(n as u8),
        n @ 126..=65535 => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A connection that delivers `chunk` bytes per read.
    struct Chunked {
        wire: Vec<u8>,
        pos: usize,
        chunk: usize,
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            let n = this
                .chunk
                .min(out.remaining())
                .min(this.wire.len() - this.pos);
            out.put_slice(&this.wire[this.pos..this.pos + n]);
            this.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    /// Reads from an aligned stream over `wire` delivered `chunk` bytes at a time,
    /// asking for `ask` bytes per read, until `stop_after` bytes: each read, and what
    /// the stream hands back with the connection.
    async fn reads(
        wire: &[u8],
        chunk: usize,
        ask: usize,
        stop_after: usize,
    ) -> (Vec<Vec<u8>>, Vec<u8>) {
        let connection = Chunked {
            wire: wire.to_vec(),
            pos: 0,
            chunk,
        };
        let mut aligned = Aligned::on_frames(connection);
        let mut got = Vec::new();
        let mut total = 0;
        while total < stop_after {
            let mut buf = vec![0; ask];
            let n = aligned.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            total += n;
            got.push(buf[..n].to_vec());
        }
        let (connection, rest) = aligned.into_parts();
        (
            got,
            [rest, connection.wire[connection.pos..].to_vec()].concat(),
        )
    }

    #[tokio::test]
    async fn reads_end_at_the_head_and_at_each_frame_whatever_the_chunks() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        // CONNECTED with its length in 8 bytes (allowed, if wasteful): the frame's end
        // is where its header as sent says.
        let payload = br#"{"type":"CONNECTED"}"#;
        let mut connected = vec![0x81, 127];
        connected.extend((payload.len() as u64).to_be_bytes());
        connected.extend_from_slice(payload);
        let big = server_frame(0x81, &[b'x'; 300]);
        let after = server_frame(0x89, b"p");
        let wire = [head.clone(), connected.clone(), big.clone(), after.clone()].concat();
        for chunk in [1, 2, 3, 7, 64, wire.len()] {
            for ask in [1, 5, 4096] {
                // The reader stops after the second frame, as the load client does
                // after CONNECTED.
                let wanted = head.len() + connected.len() + big.len();
                let (got, rest) = reads(&wire, chunk, ask, wanted).await;
                let mut at = 0;
                let boundaries = [head.len(), head.len() + connected.len(), wanted];
                for read in &got {
                    let end = at + read.len();
                    assert!(
                        !boundaries.iter().any(|&b| at < b && b < end),
                        "a read crossed a boundary: {at}..{end} (chunk {chunk}, ask {ask})"
                    );
                    at = end;
                }
                assert_eq!(got.concat(), wire[..wanted]);
                // What was read past the frame is handed back: none of it is lost.
                assert_eq!(rest, after, "chunk {chunk}, ask {ask}");
            }
        }
    }

    #[tokio::test]
    async fn bytes_that_are_no_frame_go_through_and_an_off_stream_holds_nothing() {
        let wire = [
            b"HTTP/1.1 101 OK\r\n\r\n".to_vec(),
            vec![0x83, 0x00, 1, 2, 3],
        ]
        .concat();
        let (got, rest) = reads(&wire, 4096, 4096, usize::MAX).await;
        assert!(rest.is_empty());
        assert_eq!(
            got.concat(),
            wire,
            "an invalid opcode still reaches the layer above"
        );
        let (client, mut server) = tokio::io::duplex(1024);
        let mut off = Aligned::off(client);
        tokio::io::AsyncWriteExt::write_all(&mut server, &wire)
            .await
            .unwrap();
        let mut buf = vec![0; 4096];
        assert_eq!(off.read(&mut buf).await.unwrap(), wire.len());
        assert!(off.into_parts().1.is_empty());
    }
}
