//! What went wrong with a peer, as data. Client errors are built as
//! `cause.context(Failure::…(what was attempted))`: the [`Failure`] decides the exit
//! code and says what was being done, the cause below it carries the facts (an HTTP
//! status and body, a close code and reason, an I/O error kind, a TLS error), and
//! code that needs them finds them with [`find`] instead of reading rendered text.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use crate::exit::Failure;

/// How much of a peer's body is kept for display.
pub const BODY_PREVIEW: usize = 300;

/// The server answered the upgrade with an HTTP status instead of `101`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct UpgradeRefused {
    pub status: u16,
    /// The start of the body (at most [`BODY_PREVIEW`] bytes), trimmed.
    pub body: String,
}

impl fmt::Display for UpgradeRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = tokio_tungstenite::tungstenite::http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let status = format!("HTTP {} {reason}", self.status);
        f.write_str(status.trim_end())?;
        if !self.body.is_empty() {
            write!(f, ": {}", self.body)?;
        }
        Ok(())
    }
}

/// The peer ended the WebSocket: with a close frame (`code`), or by dropping the
/// connection (`code` is `None`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PeerClosed {
    pub code: Option<u16>,
    pub reason: String,
}

impl fmt::Display for PeerClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(
                f,
                "code {code}, reason: {}",
                if self.reason.is_empty() {
                    "-"
                } else {
                    &self.reason
                }
            ),
            None => f.write_str("no close frame"),
        }
    }
}

/// The server answered the upgrade with something tungstenite cannot take as an
/// HTTP/1.1 upgrade response: an HTTP/1.0 page, a TLS record, another protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotWebSocket {
    /// An HTTP response of another version: its status line and the body's start.
    #[error("the server answered {line}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Http {
        line: String,
        status: u16,
        body: String,
    },
    /// A TLS record: the port expects `wss://`.
    #[error("the port answered with TLS, not HTTP")]
    Tls,
    /// Bytes of another protocol, escaped.
    #[error("the server answered something that is not HTTP: {0}")]
    Other(String),
}

/// What a client got wrong about the credentials, as far as the server's answer
/// (a 401 body, close 4401) tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenProblem {
    /// No token reached the server.
    Missing,
    /// The server says the token expired.
    Expired,
    /// The server refused the token (signature, shape, claims).
    Rejected,
}

/// The token problem behind `err`, when the server refused the credentials.
pub fn token_problem(err: &anyhow::Error) -> Option<TokenProblem> {
    if find::<PeerClosed>(err).and_then(|c| c.code) == Some(crate::protocol::CLOSE_TOKEN_EXPIRED) {
        return Some(TokenProblem::Expired);
    }
    let body = find::<UpgradeRefused>(err)
        .filter(|r| r.status == 401)
        .map(|r| r.body.as_str())
        .or_else(|| {
            find::<super::http::HttpError>(err)
                .filter(|e| e.status == 401)
                .map(|e| e.body.as_str())
        })?;
    // Words of the answer, from any shape: {"error":"TOKEN_EXPIRED"}, {"reason":
    // "token_expired"}, {"message":"No token provided"}, or plain text.
    let words = body.to_ascii_lowercase().replace(['_', '-'], " ");
    Some(if words.contains("expired") {
        TokenProblem::Expired
    } else if ["no token", "missing", "not provided", "required"]
        .iter()
        .any(|w| words.contains(w))
    {
        TokenProblem::Missing
    } else {
        TokenProblem::Rejected
    })
}

/// A peer's body as one short line: an HTML page by its title (or its text), any
/// other body with its whitespace collapsed, cut to [`BODY_PREVIEW`] characters.
pub fn body_preview(body: &str) -> String {
    let trimmed = body.trim();
    let lower = trimmed.to_ascii_lowercase();
    let is_html = lower.starts_with("<!doctype html")
        || lower.starts_with("<html")
        || lower.contains("<body");
    let line = if is_html {
        let title = lower
            .find("<title>")
            .and_then(|start| {
                let from = start + "<title>".len();
                lower[from..]
                    .find("</title>")
                    .map(|len| &trimmed[from..from + len])
            })
            .map(str::to_string)
            .filter(|t| !t.trim().is_empty());
        let text = title.unwrap_or_else(|| strip_tags(trimmed));
        format!("HTML page: {}", collapse(&text))
    } else {
        collapse(trimmed)
    };
    crate::text::clamp(&line, if is_html { 120 } else { BODY_PREVIEW }).into_owned()
}

fn strip_tags(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `cause` under `failure`: the error a client step returns.
pub fn failed(failure: Failure, cause: impl StdError + Send + Sync + 'static) -> anyhow::Error {
    anyhow::Error::new(cause).context(failure)
}

/// The first cause of type `T` in `err`'s chain.
pub fn find<T: StdError + 'static>(err: &anyhow::Error) -> Option<&T> {
    err.chain().find_map(|e| e.downcast_ref::<T>())
}

/// The kind of the first I/O error in `err`'s chain.
pub fn io_kind(err: &anyhow::Error) -> Option<io::ErrorKind> {
    find::<io::Error>(err).map(io::Error::kind)
}

/// The TLS error behind a failed handshake (tokio-rustls wraps it in an I/O error).
pub fn tls_error(err: &anyhow::Error) -> Option<&rustls::Error> {
    err.chain().find_map(|e| {
        e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        })
    })
}

/// The HTTP status the server answered with, on the upgrade or a REST call.
pub fn http_status(err: &anyhow::Error) -> Option<u16> {
    find::<UpgradeRefused>(err)
        .map(|r| r.status)
        .or_else(|| find::<super::http::HttpError>(err).map(|e| e.status))
        .or_else(|| match find::<NotWebSocket>(err) {
            Some(NotWebSocket::Http { status, .. }) => Some(*status),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Exit, exit_for};

    #[test]
    fn bodies_are_shown_as_one_short_line() {
        let nginx = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
        assert_eq!(body_preview(nginx), "HTML page: 502 Bad Gateway");
        let untitled =
            "<!DOCTYPE html><html><body><h1>Not   Found</h1>\n<p>Nothing here.</p></body></html>";
        assert_eq!(body_preview(untitled), "HTML page: Not Found Nothing here.");
        assert_eq!(body_preview("{\"error\":\n \"X\"}"), "{\"error\": \"X\"}");
        let huge = format!("<html><title>{}</title></html>", "t".repeat(5000));
        assert!(body_preview(&huge).chars().count() <= 121);
        assert!(body_preview(&"x ".repeat(5000)).chars().count() <= BODY_PREVIEW + 1);
    }

    #[test]
    fn token_problems_are_read_from_any_answer_shape() {
        let refused = |status: u16, body: &str| {
            failed(
                Failure::Connect("refused".into()),
                UpgradeRefused {
                    status,
                    body: body.into(),
                },
            )
        };
        let cases = [
            (
                r#"{"error":"TOKEN_EXPIRED","message":"Token has expired"}"#,
                TokenProblem::Expired,
            ),
            (
                r#"{"error":"UNAUTHORIZED","reason":"token_expired"}"#,
                TokenProblem::Expired,
            ),
            (
                r#"{"error":"UNAUTHORIZED","message":"No token provided"}"#,
                TokenProblem::Missing,
            ),
            (
                r#"{"error":"INVALID_TOKEN","message":"Invalid token"}"#,
                TokenProblem::Rejected,
            ),
            ("Unauthorized", TokenProblem::Rejected),
        ];
        for (body, problem) in cases {
            assert_eq!(token_problem(&refused(401, body)), Some(problem), "{body}");
        }
        assert_eq!(token_problem(&refused(403, "expired")), None);
        let closed = failed(
            Failure::Protocol("closed".into()),
            PeerClosed {
                code: Some(4401),
                reason: String::new(),
            },
        );
        assert_eq!(token_problem(&closed), Some(TokenProblem::Expired));
    }

    #[test]
    fn causes_are_found_below_the_failure() {
        let err = failed(
            Failure::Connect("the server refused the WebSocket upgrade at ws://x".into()),
            UpgradeRefused {
                status: 503,
                body: "busy".into(),
            },
        );
        assert_eq!(exit_for(&err), Exit::Connect);
        assert_eq!(http_status(&err), Some(503));
        assert_eq!(
            format!("{err:#}"),
            "the server refused the WebSocket upgrade at ws://x: HTTP 503 Service Unavailable: busy"
        );
        let err = failed(
            Failure::Connect("failed to connect to ws://x".into()),
            io::Error::from(io::ErrorKind::ConnectionRefused),
        );
        assert_eq!(io_kind(&err), Some(io::ErrorKind::ConnectionRefused));
        assert_eq!(http_status(&err), None);
        let closed = failed(
            Failure::Protocol("closed before CONNECTED".into()),
            PeerClosed {
                code: Some(4503),
                reason: String::new(),
            },
        );
        assert_eq!(find::<PeerClosed>(&closed).and_then(|c| c.code), Some(4503));
        assert!(format!("{closed:#}").ends_with("code 4503, reason: -"));
        let odd = UpgradeRefused {
            status: 599,
            body: String::new(),
        };
        assert_eq!(odd.to_string(), "HTTP 599");
        let tls = failed(
            Failure::Connect("TLS handshake failed".into()),
            io::Error::new(
                io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            ),
        );
        assert!(matches!(
            tls_error(&tls),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ));
    }
}
