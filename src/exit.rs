//! The exit-code table (STYLE.md), the typed errors that carry their own code, and
//! the mapping from any error to a code. The README and `--help` show the same table.

use std::fmt;

/// Every exit status syncprobe uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every expectation held.
    Success = 0,
    /// An expectation was not met: wrong sequence, unwanted event, threshold breached.
    ExpectationFailed = 1,
    /// Bad flags or arguments (clap's own errors).
    Usage = 2,
    /// Could not connect: DNS, TCP, TLS, or the HTTP upgrade was refused.
    Connect = 3,
    /// Timed out waiting for the connection, CONNECTED, or the expected events.
    Timeout = 4,
    /// Malformed frame, wrong CONNECTED, unexpected close.
    Protocol = 5,
    /// Any other runtime error (I/O, bad input file, not implemented).
    Runtime = 6,
    /// Interrupted by Ctrl-C.
    Interrupted = 130,
}

impl Exit {
    /// The table as `(code, meaning)` rows, for `--help` and tests.
    pub const TABLE: [(Exit, &'static str); 8] = [
        (Exit::Success, "success: every expectation held"),
        (
            Exit::ExpectationFailed,
            "an expectation was not met (wrong sequence, unwanted event, threshold breached)",
        ),
        (Exit::Usage, "usage error (bad flags or arguments)"),
        (
            Exit::Connect,
            "could not connect: DNS, TCP, TLS, or the HTTP upgrade was refused",
        ),
        (
            Exit::Timeout,
            "timed out waiting for the connection, CONNECTED, or the expected events",
        ),
        (
            Exit::Protocol,
            "protocol error: malformed frame, wrong CONNECTED, unexpected close",
        ),
        (
            Exit::Runtime,
            "any other runtime error (I/O, bad input file, not implemented)",
        ),
        (Exit::Interrupted, "interrupted (Ctrl-C)"),
    ];

    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Errors that decide their own exit code. Anything else exits [`Exit::Runtime`].
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Expectation(String),
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Runtime(String),
    #[error("interrupted")]
    Interrupted,
    #[error("`{0}` is not implemented yet")]
    NotImplemented(&'static str),
}

impl Failure {
    pub fn exit(&self) -> Exit {
        match self {
            Failure::Expectation(_) => Exit::ExpectationFailed,
            Failure::Connect(_) => Exit::Connect,
            Failure::Timeout(_) => Exit::Timeout,
            Failure::Protocol(_) => Exit::Protocol,
            Failure::Usage(_) => Exit::Usage,
            Failure::Interrupted => Exit::Interrupted,
            Failure::Runtime(_) | Failure::NotImplemented(_) => Exit::Runtime,
        }
    }
}

/// The exit code of an error: the outermost [`Failure`], whether it is the error, a
/// context added to it, or a source in its chain, decides.
pub fn exit_for(err: &anyhow::Error) -> Exit {
    err.downcast_ref::<Failure>()
        .or_else(|| err.chain().find_map(|e| e.downcast_ref::<Failure>()))
        .map_or(Exit::Runtime, Failure::exit)
}

/// The table as text, for the end of the root `--help` and for the README.
pub struct TableText;

impl fmt::Display for TableText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (exit, meaning) in Exit::TABLE {
            writeln!(f, "  {:>3}  {meaning}", exit.code())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn failures_map_to_their_code_through_context() {
        let err = Err::<(), _>(Failure::Timeout("no CONNECTED".into()))
            .context("waiting for CONNECTED")
            .unwrap_err();
        assert_eq!(exit_for(&err), Exit::Timeout);
        assert_eq!(exit_for(&anyhow::anyhow!("disk full")), Exit::Runtime);
        let as_context = anyhow::anyhow!("HTTP 403").context(Failure::Connect("refused".into()));
        assert_eq!(exit_for(&as_context.context("enqueueing")), Exit::Connect);
        assert_eq!(Failure::Connect("x".into()).exit().code(), 3);
        assert_eq!(Failure::Interrupted.exit().code(), 130);
    }

    #[test]
    fn table_lists_every_code_once() {
        let codes: Vec<i32> = Exit::TABLE.iter().map(|(e, _)| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 130]);
    }
}
