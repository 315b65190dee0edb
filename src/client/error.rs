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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Exit, exit_for};

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
