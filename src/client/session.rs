//! One sync-socket session: open, check CONNECTED, read, close. Every client
//! subcommand goes through it, so the sequence and its errors are the same
//! everywhere; what to report stays with the caller (`on_open` sees the socket as
//! soon as the upgrade completed, before CONNECTED can fail).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::ws::{self, ConnectedFrame, Opened, ResumeFrom, Stream};
use super::{ClientOptions, Endpoint};
use crate::exit::Failure;

/// Who ended a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Initiator {
    Client,
    Server,
}

impl Initiator {
    pub fn as_str(self) -> &'static str {
        match self {
            Initiator::Client => "client",
            Initiator::Server => "server",
        }
    }
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Closed {
    /// The code the initiator sent (`None`: the server dropped the connection).
    pub code: Option<u16>,
    /// The reason the initiator sent.
    pub reason: String,
    pub initiator: Initiator,
    /// When the client closed: the server's answering close frame (`None`: it did
    /// not answer within [`ws::CLOSE_WAIT`]). Always `None` when the server closed.
    pub answer: Option<CloseFrame>,
}

/// One close frame: its code and reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseFrame {
    pub code: u16,
    pub reason: String,
}

impl Closed {
    /// The server ended it, with `frame` (`None`: it dropped the connection).
    pub fn by_server(frame: Option<(u16, String)>) -> Closed {
        let (code, reason) = frame.map_or((None, String::new()), |(c, r)| (Some(c), r));
        Closed {
            code,
            reason,
            initiator: Initiator::Server,
            answer: None,
        }
    }
}

/// A socket past its CONNECTED frame.
pub struct Session {
    pub stream: Stream,
    /// The URL as shown to people (secrets masked).
    pub url: String,
    /// From the first DNS query to the completed upgrade.
    pub open_time: Duration,
    /// From the first DNS query to CONNECTED.
    pub connected_time: Duration,
    pub subprotocol: Option<String>,
    pub connected: ConnectedFrame,
}

/// How [`Session::start`] ended, when it did not fail.
pub enum Started {
    Ready(Box<Session>),
    /// `interrupt` fired: before the upgrade completed (`None`), or while waiting
    /// for CONNECTED, in which case the socket was closed with 1000 (`Some`).
    Interrupted(Option<Closed>),
}

impl Started {
    /// The session; when interrupted, [`Failure::Interrupted`] after `on_close` was
    /// shown the close (if the socket had opened).
    pub fn or_interrupted(self, on_close: impl FnOnce(&Closed)) -> anyhow::Result<Session> {
        match self {
            Started::Ready(session) => Ok(*session),
            Started::Interrupted(closed) => {
                if let Some(closed) = &closed {
                    on_close(closed);
                }
                Err(Failure::Interrupted.into())
            }
        }
    }
}

impl Session {
    /// Opens the socket (bounded by `--connect-timeout`), hands it to `on_open`, then
    /// waits up to `connected_within` for a valid CONNECTED of the endpoint's
    /// organization. `interrupt` (Ctrl-C, or `std::future::pending()`) is polled
    /// first throughout.
    pub async fn start(
        endpoint: &Endpoint,
        resume: Option<&ResumeFrom>,
        options: &ClientOptions,
        connected_within: Duration,
        on_open: impl FnOnce(&Opened),
        interrupt: &mut (impl Future<Output = ()> + Unpin),
    ) -> anyhow::Result<Started> {
        let started = Instant::now();
        let mut opened = tokio::select! {
            biased;
            _ = &mut *interrupt => return Ok(Started::Interrupted(None)),
            opened = ws::open(endpoint, resume, options) => opened?,
        };
        on_open(&opened);
        let wait = ws::expect_connected(&mut opened.stream, &endpoint.org, connected_within);
        let connected = tokio::select! {
            biased;
            _ = &mut *interrupt => None,
            connected = wait => Some(connected?),
        };
        let Some(connected) = connected else {
            let closed = close(&mut opened.stream, 1000, "normal").await;
            return Ok(Started::Interrupted(Some(closed)));
        };
        Ok(Started::Ready(Box::new(Session {
            stream: opened.stream,
            url: opened.display_url,
            open_time: opened.open_time,
            connected_time: started.elapsed(),
            subprotocol: opened.subprotocol,
            connected,
        })))
    }

    /// Reads the next frame that matters.
    pub async fn next(&mut self) -> anyhow::Result<ws::Incoming> {
        ws::next(&mut self.stream).await
    }

    /// Closes with `code` and `reason` and waits briefly for the server's answer; the
    /// result is what was sent and what the server answered (`answer`), if it did.
    pub async fn close(&mut self, code: u16, reason: &str) -> Closed {
        close(&mut self.stream, code, reason).await
    }

    /// [`Session::close`], when the server's answer matters: `None` when it did not
    /// answer the close handshake (within [`ws::CLOSE_WAIT`]).
    pub async fn close_answered(&mut self, code: u16, reason: &str) -> Option<Closed> {
        let closed = self.close(code, reason).await;
        closed.answer.is_some().then_some(closed)
    }
}

/// [`Session::close`] for a socket that never reached CONNECTED.
pub async fn close(stream: &mut Stream, code: u16, reason: &str) -> Closed {
    let answer = ws::close(stream, code, reason)
        .await
        .map(|(code, reason)| CloseFrame { code, reason });
    Closed {
        code: Some(code),
        reason: reason.to_string(),
        initiator: Initiator::Client,
        answer,
    }
}
