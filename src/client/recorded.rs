//! A stream that keeps the first bytes the server sends until the upgrade is done.
//! tungstenite drops an answer it cannot take as an HTTP/1.1 upgrade response
//! ("HTTP version must be 1.1 or higher"); with these bytes the error can say what
//! the server really answered: its status line, or that the port speaks TLS.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::{NotWebSocket, body_preview};

/// How much of the server's first answer is kept.
pub const HEAD_LIMIT: usize = 2048;

/// The bytes kept, shared with whoever opened the stream (the handshake consumes
/// the stream when it fails).
pub type Head = Arc<Mutex<Vec<u8>>>;

pub struct Recorded<S> {
    inner: S,
    head: Option<Head>,
}

impl<S> Recorded<S> {
    /// Wraps `inner`, recording into the returned [`Head`].
    pub fn new(inner: S) -> (Recorded<S>, Head) {
        let head = Head::default();
        (
            Recorded {
                inner,
                head: Some(head.clone()),
            },
            head,
        )
    }

    /// Stops recording: after the upgrade, frames pass untouched.
    pub fn stop(&mut self) {
        self.head = None;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Some(head), Poll::Ready(Ok(()))) = (&this.head, &polled)
            && let Ok(mut head) = head.lock()
        {
            let room = HEAD_LIMIT.saturating_sub(head.len());
            let new = &buf.filled()[before..];
            head.extend_from_slice(&new[..new.len().min(room)]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// What a server that did not complete the upgrade answered, read from its first
/// bytes; `None` when it sent nothing before the connection ended.
pub fn answer(head: &[u8]) -> Option<NotWebSocket> {
    if head.is_empty() {
        return None;
    }
    // A TLS record starts with its content type (0x15 alert, 0x16 handshake) and
    // the major version 3.
    if head.len() >= 2 && matches!(head[0], 0x15 | 0x16) && head[1] == 3 {
        return Some(NotWebSocket::Tls);
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let parsed = response.parse(head);
    if let (Ok(status), Some(code)) = (parsed, response.code) {
        let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
        let line = String::from_utf8_lossy(&head[..line_end]);
        let body = match status {
            httparse::Status::Complete(at) => body_preview(&String::from_utf8_lossy(&head[at..])),
            httparse::Status::Partial => String::new(),
        };
        return Some(NotWebSocket::Http {
            line: crate::text::shown(line.trim(), 120),
            status: code,
            body,
        });
    }
    let preview = String::from_utf8_lossy(&head[..head.len().min(60)]);
    Some(NotWebSocket::Other(
        crate::text::escape(&preview).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_from_the_first_bytes() {
        assert_eq!(answer(b""), None);
        let alert = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];
        assert_eq!(answer(&alert), Some(NotWebSocket::Tls));
        assert_eq!(answer(&[0x16, 0x03, 0x01]), Some(NotWebSocket::Tls));
        let http = answer(
            b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6\r\n\r\n<html><title>Index</title>hi</html>",
        );
        assert_eq!(
            http,
            Some(NotWebSocket::Http {
                line: "HTTP/1.0 200 OK".into(),
                status: 200,
                body: "HTML page: Index".into()
            })
        );
        let partial = answer(b"HTTP/1.0 404 Not Found\r\nServer: x");
        assert!(
            matches!(partial, Some(NotWebSocket::Http { status: 404, .. })),
            "{partial:?}"
        );
        assert_eq!(
            answer(b"SSH-2.0-OpenSSH_9.6\r\n"),
            Some(NotWebSocket::Other(
                "SSH-2.0-OpenSSH_9.6\\u{d}\\u{a}".into()
            ))
        );
    }
}
