//! The kinds of error a load run counts: the keys of `errors` in its summary,
//! written exactly as before (`upgrade refused: HTTP 503`, `timeout`, …), and the
//! classification of a failed connection from the causes the client attached.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::client::error::{PeerClosed, find, http_status, io_kind};
use crate::exit::{Exit, exit_for};

/// One kind of error; its text is its JSON form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `upgrade refused: HTTP {status}`
    UpgradeRefused(u16),
    /// `closed with {code} before CONNECTED`
    ClosedBeforeConnected(u16),
    /// `timeout`
    Timeout,
    /// `connection refused`
    ConnectionRefused,
    /// `connect failed`
    ConnectFailed,
    /// `protocol error`
    Protocol,
    /// `malformed frame`: a frame after CONNECTED that is not JSON.
    MalformedFrame,
    /// `closed by the server with {code}` (`no code`: a close frame without one).
    ClosedByServer(Option<u16>),
    /// `connection lost`: the connection ended without a close frame.
    ConnectionLost,
}

const UPGRADE_REFUSED: &str = "upgrade refused: HTTP ";
const CLOSED_WITH: (&str, &str) = ("closed with ", " before CONNECTED");
const CLOSED_BY_SERVER: &str = "closed by the server with ";
const NO_CODE: &str = "no code";

impl ErrorKind {
    /// The fixed texts, for the kinds that carry no number.
    fn fixed(self) -> Option<&'static str> {
        Some(match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::ConnectionRefused => "connection refused",
            ErrorKind::ConnectFailed => "connect failed",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::MalformedFrame => "malformed frame",
            ErrorKind::ConnectionLost => "connection lost",
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ErrorKind::UpgradeRefused(status) => write!(f, "{UPGRADE_REFUSED}{status}"),
            ErrorKind::ClosedBeforeConnected(code) => {
                write!(f, "{}{code}{}", CLOSED_WITH.0, CLOSED_WITH.1)
            }
            ErrorKind::ClosedByServer(Some(code)) => write!(f, "{CLOSED_BY_SERVER}{code}"),
            ErrorKind::ClosedByServer(None) => write!(f, "{CLOSED_BY_SERVER}{NO_CODE}"),
            other => f.write_str(other.fixed().unwrap_or_default()),
        }
    }
}

impl std::str::FromStr for ErrorKind {
    type Err = String;

    fn from_str(text: &str) -> Result<ErrorKind, String> {
        const FIXED: [ErrorKind; 6] = [
            ErrorKind::Timeout,
            ErrorKind::ConnectionRefused,
            ErrorKind::ConnectFailed,
            ErrorKind::Protocol,
            ErrorKind::MalformedFrame,
            ErrorKind::ConnectionLost,
        ];
        if let Some(kind) = FIXED.into_iter().find(|k| k.fixed() == Some(text)) {
            return Ok(kind);
        }
        let number = |n: &str| n.parse::<u16>().ok();
        let kind = if let Some(status) = text.strip_prefix(UPGRADE_REFUSED) {
            number(status).map(ErrorKind::UpgradeRefused)
        } else if let Some(code) = text.strip_prefix(CLOSED_BY_SERVER) {
            match code {
                NO_CODE => Some(ErrorKind::ClosedByServer(None)),
                code => number(code).map(|c| ErrorKind::ClosedByServer(Some(c))),
            }
        } else {
            text.strip_prefix(CLOSED_WITH.0)
                .and_then(|rest| rest.strip_suffix(CLOSED_WITH.1))
                .and_then(number)
                .map(ErrorKind::ClosedBeforeConnected)
        };
        kind.ok_or_else(|| format!("unknown load error kind {text:?}"))
    }
}

// Ordered by their text, so the `errors` object keeps the order it always had.
impl Ord for ErrorKind {
    fn cmp(&self, other: &ErrorKind) -> Ordering {
        self.to_string().cmp(&other.to_string())
    }
}

impl PartialOrd for ErrorKind {
    fn partial_cmp(&self, other: &ErrorKind) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for ErrorKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ErrorKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ErrorKind, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The kind of a failed connection, from the causes the client attached.
pub fn classify(error: &anyhow::Error) -> ErrorKind {
    if let Some(status) = http_status(error) {
        return ErrorKind::UpgradeRefused(status);
    }
    if let Some(PeerClosed {
        code: Some(code), ..
    }) = find::<PeerClosed>(error)
    {
        return ErrorKind::ClosedBeforeConnected(*code);
    }
    match exit_for(error) {
        Exit::Timeout => ErrorKind::Timeout,
        Exit::Connect if io_kind(error) == Some(std::io::ErrorKind::ConnectionRefused) => {
            ErrorKind::ConnectionRefused
        }
        Exit::Connect => ErrorKind::ConnectFailed,
        _ => ErrorKind::Protocol,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Failure;

    #[test]
    fn errors_are_classified_by_their_cause() {
        use crate::client::error::{UpgradeRefused, failed};
        let refused = UpgradeRefused {
            status: 503,
            body: String::new(),
        };
        assert_eq!(
            classify(&failed(Failure::Connect("upgrade".into()), refused)),
            ErrorKind::UpgradeRefused(503)
        );
        // The text alone does not count: "HTTP 503" in a message is not a status.
        assert_eq!(
            classify(&anyhow::Error::new(Failure::Protocol(
                "saw HTTP 503 (code 1)".into()
            ))),
            ErrorKind::Protocol
        );
        let closed = PeerClosed {
            code: Some(4503),
            reason: "cap".into(),
        };
        assert_eq!(
            classify(&failed(
                Failure::Protocol("before CONNECTED".into()),
                closed
            )),
            ErrorKind::ClosedBeforeConnected(4503)
        );
        assert_eq!(
            classify(&anyhow::Error::new(Failure::Timeout("timed out".into()))),
            ErrorKind::Timeout
        );
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            classify(&failed(Failure::Connect("failed to connect".into()), io)),
            ErrorKind::ConnectionRefused
        );
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(
            classify(&failed(Failure::Connect("failed to connect".into()), io)),
            ErrorKind::ConnectFailed
        );
    }

    #[test]
    fn kinds_are_written_as_before_and_read_back() {
        let kinds = [
            (ErrorKind::UpgradeRefused(503), "upgrade refused: HTTP 503"),
            (
                ErrorKind::ClosedBeforeConnected(4503),
                "closed with 4503 before CONNECTED",
            ),
            (ErrorKind::Timeout, "timeout"),
            (ErrorKind::ConnectionRefused, "connection refused"),
            (ErrorKind::ConnectFailed, "connect failed"),
            (ErrorKind::Protocol, "protocol error"),
            (ErrorKind::MalformedFrame, "malformed frame"),
            (
                ErrorKind::ClosedByServer(Some(4429)),
                "closed by the server with 4429",
            ),
            (
                ErrorKind::ClosedByServer(None),
                "closed by the server with no code",
            ),
            (ErrorKind::ConnectionLost, "connection lost"),
        ];
        for (kind, text) in kinds {
            assert_eq!(kind.to_string(), text);
            assert_eq!(text.parse::<ErrorKind>(), Ok(kind));
        }
        assert!(
            "closed with x before CONNECTED"
                .parse::<ErrorKind>()
                .is_err()
        );
        // As keys of the `errors` object, in the order of their text.
        let errors: std::collections::BTreeMap<ErrorKind, u64> = [
            (ErrorKind::Timeout, 1),
            (ErrorKind::ClosedByServer(Some(999)), 2),
            (ErrorKind::ClosedByServer(Some(1000)), 3),
        ]
        .into();
        let json = serde_json::to_string(&errors).unwrap();
        assert_eq!(
            json,
            r#"{"closed by the server with 1000":3,"closed by the server with 999":2,"timeout":1}"#
        );
        let back: std::collections::BTreeMap<ErrorKind, u64> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, errors);
    }
}
