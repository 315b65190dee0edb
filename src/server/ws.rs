//! The WebSocket endpoints besides the sync socket itself (`socket.rs`):
//! `/api/ws/sync` without an organization (4000), `/api/ws/echo`, and the checks
//! every upgrade shares (426 without one, 400 for a bad key, the resume query).

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::SinkExt;
use tokio_util::sync::CancellationToken;

use super::bus::Resume;
use super::error::api_error;
use super::security::frame_limit;
use super::state::AppState;
use crate::protocol::{CLOSE_GOING_AWAY, CLOSE_IDLE_TIMEOUT, CLOSE_MISSING_ORG};

/// How long a closing socket waits for the peer's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Read buffer per socket: clients send little, and idle sockets should stay small.
const READ_BUFFER: usize = 4 * 1024;
/// Bytes gathered before a write reaches the socket within one batch.
const WRITE_BUFFER: usize = 32 * 1024;
/// Largest message (and frame) the echo endpoint takes.
const ECHO_MAX_MESSAGE: usize = 16 << 20;
/// RFC 6455's "protocol error".
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// RFC 6455's "invalid frame payload data" (text that is not UTF-8).
const CLOSE_INVALID_DATA: u16 = 1007;

fn upgrade_failed(rejection: WebSocketUpgradeRejection) -> Response {
    api_error(
        StatusCode::UPGRADE_REQUIRED,
        "UPGRADE_REQUIRED",
        &format!("this endpoint takes WebSocket connections: {rejection}"),
        None,
    )
}

/// A `Sec-WebSocket-Key` must be the base64 of 16 bytes (RFC 6455 4.2.1); axum
/// checks only that the header is there.
fn malformed_key(headers: &HeaderMap) -> Option<Response> {
    use base64::Engine;
    let key = headers.get("sec-websocket-key")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(key.as_bytes());
    if decoded.is_ok_and(|bytes| bytes.len() == 16) {
        return None;
    }
    Some(api_error(
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        "Sec-WebSocket-Key must be the base64 encoding of 16 bytes",
        None,
    ))
}

/// The upgrade, or the answer refusing it (426 without one, 400 for a bad key).
pub(super) fn upgrade(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: &HeaderMap,
) -> Result<WebSocketUpgrade, Box<Response>> {
    let ws = ws.map_err(|rejection| Box::new(upgrade_failed(rejection)))?;
    match malformed_key(headers) {
        Some(refusal) => Err(Box::new(refusal)),
        None => Ok(ws),
    }
}

fn configure(ws: WebSocketUpgrade, state: &AppState) -> WebSocketUpgrade {
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(state.config.max_message_size)
        .max_frame_size(frame_limit(state.config.max_message_size))
}

/// `/api/ws/sync` with no organization: accept, then close with 4000 as Part 1 does.
pub async fn missing_org(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    State(state): State<AppState>,
) -> Response {
    let ws = match upgrade(ws, &headers) {
        Ok(ws) => ws,
        Err(refusal) => return *refusal,
    };
    if let Err(refusal) = state
        .security
        .authenticate(&headers, Some(query.as_deref().unwrap_or("")))
    {
        return state.security.refuse(refusal);
    }
    state.metrics.error("missing_org");
    configure(ws, &state).on_upgrade(|mut socket| async move {
        close(&mut socket, CLOSE_MISSING_ORG, "Missing organizationId").await;
    })
}

/// `since` and `epoch` from the query string; other parameters are ignored.
pub fn parse_resume(query: &str) -> Result<Option<Resume>, String> {
    let mut since = None;
    let mut epoch = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "since" => {
                since =
                    Some(value.parse::<u64>().map_err(|_| {
                        format!("since must be a non-negative integer, not {value:?}")
                    })?)
            }
            "epoch" => epoch = Some(value.into_owned()),
            _ => {}
        }
    }
    match (since, epoch) {
        (None, Some(_)) => Err("epoch is given without since".into()),
        (None, None) => Ok(None),
        (Some(since), epoch) => Ok(Some(Resume { since, epoch })),
    }
}

/// The close code a read error calls for: 1002 for a protocol violation, 1007 for
/// text that is not UTF-8; `None` when the peer is gone (nothing to tell it).
pub(super) fn violation_code(
    error: &(dyn std::error::Error + 'static),
) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    let mut source = Some(error);
    while let Some(e) = source {
        match e.downcast_ref::<Error>() {
            Some(Error::Utf8(_)) => {
                return Some((CLOSE_INVALID_DATA, "invalid UTF-8 in a text message"));
            }
            Some(Error::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
                | ProtocolError::SendAfterClosing
                | ProtocolError::ReceivedAfterClosing,
            )) => return None,
            Some(Error::Protocol(_)) => return Some((CLOSE_PROTOCOL_ERROR, "protocol error")),
            Some(_) => return None,
            None => source = e.source(),
        }
    }
    None
}

/// Closes with 1001: the server is shutting down.
async fn going_away(socket: &mut WebSocket) {
    close(socket, CLOSE_GOING_AWAY, "server shutting down").await;
}

/// Sends a close frame and waits (briefly) for the peer's answer.
pub(super) async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    };
    let closing = async {
        socket.send(Message::Close(Some(frame))).await?;
        while let Some(message) = socket.recv().await {
            if matches!(message?, Message::Close(_)) {
                break;
            }
        }
        Ok::<(), axum::Error>(())
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, closing).await;
}

/// `/api/ws/echo`: every text and binary message comes back unchanged.
pub async fn echo(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    State(state): State<AppState>,
) -> Response {
    let ws = match upgrade(ws, &headers) {
        Ok(ws) => ws,
        Err(refusal) => return *refusal,
    };
    if let Err(refusal) = state
        .security
        .authenticate(&headers, Some(query.as_deref().unwrap_or("")))
    {
        return state.security.refuse(refusal);
    }
    let shutdown = state.shutdown.clone();
    let tasks = state.tasks.clone();
    let silence = Silence {
        first: match state.config.handshake_timeout {
            Duration::ZERO => state.config.idle_timeout,
            first => first,
        },
        then: state.config.idle_timeout,
    };
    // Conformance suites send messages of up to 16 MiB through the echo endpoint.
    ws.max_message_size(ECHO_MAX_MESSAGE)
        .max_frame_size(ECHO_MAX_MESSAGE)
        .on_upgrade(move |socket| tasks.track_future(echo_session(socket, shutdown, silence)))
}

/// Echoes until the peer closes, the server stops, or the peer stays silent: for
/// `--handshake-timeout` before its first message, `--idle-timeout` after (zero: no
/// bound), closing with 4408 then.
async fn echo_session(mut socket: WebSocket, shutdown: CancellationToken, silence: Silence) {
    let mut bound = silence.first;
    loop {
        let quiet = silent_for(bound);
        let message = tokio::select! {
            () = shutdown.cancelled() => None,
            message = socket.recv() => Some(Some(message)),
            () = quiet => Some(None),
        };
        let message = match message {
            None => {
                going_away(&mut socket).await;
                return;
            }
            Some(None) => {
                close(
                    &mut socket,
                    CLOSE_IDLE_TIMEOUT,
                    "idle timeout: nothing received",
                )
                .await;
                return;
            }
            Some(Some(message)) => message,
        };
        bound = silence.then;
        if !echo_one(&mut socket, message).await {
            return;
        }
    }
}

/// How long an echo socket may stay silent, before its first message and after.
#[derive(Clone, Copy)]
struct Silence {
    first: Duration,
    then: Duration,
}

/// Resolves after `bound` (never for zero).
async fn silent_for(bound: Duration) {
    if bound.is_zero() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(bound).await;
}

/// Sends a text or binary message back; `false` once the socket is done.
async fn echo_one(socket: &mut WebSocket, message: Option<Result<Message, axum::Error>>) -> bool {
    match message {
        Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
            socket.send(message).await.is_ok()
        }
        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
            let _ = tokio::time::timeout(CLOSE_WAIT, socket.flush()).await;
            false
        }
        Some(Ok(_)) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_query() {
        assert_eq!(parse_resume(""), Ok(None));
        assert_eq!(parse_resume("foo=1"), Ok(None));
        assert_eq!(
            parse_resume("since=5&epoch=abc"),
            Ok(Some(Resume {
                since: 5,
                epoch: Some("abc".into())
            }))
        );
        assert_eq!(
            parse_resume("since=0"),
            Ok(Some(Resume {
                since: 0,
                epoch: None
            }))
        );
        assert!(
            parse_resume("since=-1")
                .unwrap_err()
                .contains("non-negative")
        );
        assert!(parse_resume("epoch=abc").is_err());
    }
}
