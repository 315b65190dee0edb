//! A stream that keeps the first bytes the server sends until the upgrade is done.
//! tungstenite drops an answer it cannot take as an HTTP/1.1 upgrade response
//! ("HTTP version must be 1.1 or higher"); with these bytes the error can say what
//! the server really answered: its status line, or that the port speaks TLS.

use std::io;
use std::sync::{Arc, Mutex};

use super::error::{NotWebSocket, body_preview};
use crate::tap::{Tap, Tapped};

/// How much of the server's first answer is kept.
pub const HEAD_LIMIT: usize = 2048;

/// The bytes kept, shared with whoever opened the stream (the handshake consumes
/// the stream when it fails).
pub type Head = Arc<Mutex<Vec<u8>>>;

/// The recording side of a [`Recorded`] stream: `None` once stopped.
pub struct Recorder(Option<Head>);

impl Tap for Recorder {
    fn read(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(head) = &self.0
            && let Ok(mut head) = head.lock()
        {
            let room = HEAD_LIMIT.saturating_sub(head.len());
            head.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        Ok(())
    }
}

/// A stream keeping the first bytes read until [`stop`] is called.
pub type Recorded<S> = Tapped<S, Recorder>;

/// Wraps `inner`, recording into the returned [`Head`].
pub fn recorded<S>(inner: S) -> (Recorded<S>, Head) {
    let head = Head::default();
    (Tapped::new(inner, Recorder(Some(head.clone()))), head)
}

/// Stops recording: after the upgrade, frames pass untouched.
pub fn stop<S>(stream: &mut Recorded<S>) {
    stream.tap_mut().0 = None;
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
