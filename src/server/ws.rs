//! The WebSocket endpoints: `/api/ws/sync/{org}` (CONNECTED, replay, live events,
//! heartbeat, slow-consumer handling, shutdown) and `/api/ws/echo`.
//!
//! One task per socket. It writes events in batches (everything already queued for
//! it, up to [`MAX_BATCH`] frames, in one flush), so a busy organization costs few
//! syscalls. Client frames are read and ignored, malformed ones too. The events come
//! from the `EventBus` trait as shared bytes, which become WebSocket messages here,
//! at the edge.
//!
//! The security rules (`security/`) hook in at two places: the upgrade handlers
//! call `Security::admit`/`authenticate`, and the session loop hands every client
//! frame to a `SessionGuard` and has one branch for the closes it decides (rate,
//! size, idle, token expiry, organization no longer allowed).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::SinkExt;
use tokio_util::sync::CancellationToken;

use super::bus::{Frame, Received, Resume, Subscription};
use super::error::api_error;
use super::meter::{FrameMeter, rate_exceeded};
use super::security::{Admission, ClientFrame, Closing, RateLimit, SessionGuard, frame_limit};
use super::state::AppState;
use crate::protocol::{
    CLOSE_GOING_AWAY, CLOSE_IDLE_TIMEOUT, CLOSE_MISSING_ORG, CLOSE_TOO_SLOW, ServerFrame,
};

/// Most frames written per flush.
pub const MAX_BATCH: usize = 64;
/// How long a closing socket waits for the peer's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Read buffer per socket: clients send little, and idle sockets should stay small.
const READ_BUFFER: usize = 4 * 1024;
/// Bytes gathered before a write reaches the socket within one batch.
const WRITE_BUFFER: usize = 32 * 1024;
/// Largest message (and frame) the echo endpoint takes.
const ECHO_MAX_MESSAGE: usize = 16 << 20;
/// The ping timer's period when the heartbeat is off (it then never fires).
const NO_HEARTBEAT: Duration = Duration::from_secs(3600);
/// RFC 6455's "internal error": the event bus failed the subscription.
const CLOSE_INTERNAL_ERROR: u16 = 1011;
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

/// `/api/ws/sync/{org}[?since=N&epoch=E]`.
pub async fn sync(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    Path(org): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    meter: Option<Extension<Arc<FrameMeter>>>,
    State(state): State<AppState>,
) -> Response {
    let ws = match upgrade(ws, &headers) {
        Ok(ws) => ws,
        Err(refusal) => return *refusal,
    };
    let admission = match state.security.admit(&headers, query.as_deref(), &org) {
        Ok(admission) => admission,
        Err(refusal) => return state.security.refuse(refusal),
    };
    let resume = match parse_resume(query.as_deref().unwrap_or("")) {
        Ok(resume) => resume,
        Err(message) => {
            state.metrics.error("bad_resume");
            return api_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &message, None);
        }
    };
    // Every client frame counts against the rate from here on, whole messages or not.
    if let (Some(Extension(meter)), Some(quota)) =
        (meter, state.config.rate_limit.and_then(RateLimit::quota))
    {
        meter.arm(quota);
    }
    let tasks = state.tasks.clone();
    configure(ws, &state)
        .on_upgrade(move |socket| tasks.track_future(run(socket, state, org, resume, admission)))
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

/// Why a sync socket ended, as the disconnect metric names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    ClientClosed,
    ReadError,
    WriteFailed,
    DeadPeer,
    TooSlow,
    Shutdown,
    BusFailed,
    /// Closed by a security rule (its metric label).
    Rule(&'static str),
}

impl End {
    fn label(self) -> &'static str {
        match self {
            End::ClientClosed => "client_closed",
            End::ReadError => "read_error",
            End::WriteFailed => "write_failed",
            End::DeadPeer => "heartbeat_timeout",
            End::TooSlow => "too_slow",
            End::Shutdown => "shutdown",
            End::BusFailed => "bus_error",
            End::Rule(label) => label,
        }
    }
}

async fn run(
    mut socket: WebSocket,
    state: AppState,
    org: String,
    resume: Option<Resume>,
    admission: Admission,
) {
    if let Some(closing) = admission.refused {
        state.metrics.disconnect(closing.label());
        close(&mut socket, closing.code(), &closing.reason()).await;
        return;
    }
    // Holds this socket's place under the connection caps until it ends.
    let _permit = admission.permit;
    let mut guard = state.security.session_guard(&org, admission.grant.as_ref());
    let open = state.metrics.socket_opened(&org);
    let end = session(&mut socket, &state, &org, resume, &mut guard).await;
    drop(open);
    state.metrics.disconnect(end.label());
}

async fn session(
    socket: &mut WebSocket,
    state: &AppState,
    org: &str,
    resume: Option<Resume>,
    guard: &mut SessionGuard,
) -> End {
    if state.shutdown.is_cancelled() {
        return going_away(socket).await;
    }
    let mut sub = match state.bus.subscribe(org, resume.as_ref()).await {
        Ok(sub) => sub,
        Err(_) => {
            close(
                socket,
                CLOSE_INTERNAL_ERROR,
                "Redis is out of reach: retry later",
            )
            .await;
            return End::BusFailed;
        }
    };
    let last_seq = match opening(socket, &mut sub, state).await {
        Ok(last_seq) => last_seq,
        Err(end) => return end,
    };
    let session = Session {
        socket,
        state,
        guard,
        sub,
        last_seq,
        alive: true,
        answered: state.config.handshake_timeout.is_zero(),
    };
    session.run().await
}

/// Writes CONNECTED and the replay in one flush; returns the `seq` the client is
/// at afterwards.
async fn opening(
    socket: &mut WebSocket,
    sub: &mut Subscription,
    state: &AppState,
) -> Result<u64, End> {
    let connected = serde_json::to_string(&ServerFrame::Connected(sub.connected.clone()))
        .expect("CONNECTED always serialises");
    let replay = std::mem::take(&mut sub.replay);
    let replayed = replay.len() as u64;
    let last_seq = replay
        .last()
        .map_or(sub.connected.seq.unwrap_or(0), |f| f.seq);
    let handshake = !state.config.handshake_timeout.is_zero();
    let write = async {
        socket.feed(Message::Text(connected.into())).await?;
        for frame in &replay {
            socket.feed(text_message(frame)).await?;
        }
        // The first frame exchange: a peer that never answers it is closed.
        if handshake {
            socket.feed(Message::Ping(Default::default())).await?;
        }
        socket.flush().await
    };
    match tokio::time::timeout(state.config.write_timeout, write).await {
        Ok(Ok(())) => {}
        _ => return Err(End::WriteFailed),
    }
    state.metrics.frames_sent.inc_by(replayed);
    Ok(last_seq)
}

/// A frame as a WebSocket text message: its bytes are shared, not copied or
/// checked again.
fn text_message(frame: &Frame) -> Message {
    Message::Text(frame.message_text())
}

/// What woke a session up.
enum Wake {
    Shutdown,
    Client(Option<Result<Message, axum::Error>>),
    Rule(Closing),
    Live(Received),
    Ping,
    /// The peer never answered the opening ping.
    Unanswered,
}

/// An open sync socket after its opening frames.
struct Session<'a> {
    socket: &'a mut WebSocket,
    state: &'a AppState,
    guard: &'a mut SessionGuard,
    sub: Subscription,
    /// The last `seq` written, for the resume hint of a too-slow close.
    last_seq: u64,
    /// Whether the peer sent anything since the last ping.
    alive: bool,
    /// Whether the peer has sent anything at all (the answer to the opening ping).
    answered: bool,
}

impl Session<'_> {
    async fn run(mut self) -> End {
        let heartbeat = !self.state.config.ping_interval.is_zero();
        let period = if heartbeat {
            self.state.config.ping_interval
        } else {
            NO_HEARTBEAT
        };
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let handshake = tokio::time::sleep(self.state.config.handshake_timeout);
        tokio::pin!(handshake);
        loop {
            let wake = tokio::select! {
                () = self.state.shutdown.cancelled() => Wake::Shutdown,
                message = self.socket.recv() => Wake::Client(message),
                closing = self.guard.closing() => Wake::Rule(closing),
                received = self.sub.recv() => Wake::Live(received),
                _ = ping.tick(), if heartbeat => Wake::Ping,
                () = &mut handshake, if !self.answered => Wake::Unanswered,
            };
            if let ControlFlow::Break(end) = self.on(wake).await {
                return end;
            }
        }
    }

    async fn on(&mut self, wake: Wake) -> ControlFlow<End> {
        match wake {
            Wake::Shutdown => ControlFlow::Break(going_away(self.socket).await),
            Wake::Client(message) => self.client(message).await,
            Wake::Rule(closing) => ControlFlow::Break(enforce(self.socket, closing).await),
            Wake::Live(received) => self.live(received).await,
            Wake::Ping => self.ping().await,
            Wake::Unanswered => ControlFlow::Break(unanswered(self.socket, self.state).await),
        }
    }

    /// A client frame, a close, or a read error.
    async fn client(&mut self, message: Option<Result<Message, axum::Error>>) -> ControlFlow<End> {
        let message = match message {
            Some(Ok(Message::Close(_))) | None => {
                let _ = tokio::time::timeout(CLOSE_WAIT, self.socket.flush()).await;
                return ControlFlow::Break(End::ClientClosed);
            }
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                let closing = if rate_exceeded(&e) {
                    Some(Closing::RateLimited)
                } else {
                    self.guard.read_error(&e)
                };
                return ControlFlow::Break(match closing {
                    Some(closing) => enforce(self.socket, closing).await,
                    None => violation(self.socket, &e).await,
                });
            }
        };
        // Pings are answered by the WebSocket layer; any frame shows the peer is alive.
        self.alive = true;
        self.answered = true;
        if !matches!(message, Message::Pong(_) | Message::Ping(_)) {
            self.state.metrics.client_frames.inc();
        }
        match self.guard.client_frame(ClientFrame::of(&message)) {
            Ok(()) => ControlFlow::Continue(()),
            Err(closing) => ControlFlow::Break(enforce(self.socket, closing).await),
        }
    }

    /// Live events: `received` and whatever else is queued, in one batch.
    async fn live(&mut self, received: Received) -> ControlFlow<End> {
        let first = match received {
            Received::Frame(frame) => frame,
            Received::Lagged(skipped) => {
                return ControlFlow::Break(too_slow(self.socket, skipped, self.last_seq).await);
            }
            Received::Closed => return ControlFlow::Break(End::Shutdown),
        };
        let batch = write_batch(self.socket, first, &mut self.sub, self.state);
        match tokio::time::timeout(self.state.config.write_timeout, batch).await {
            Ok(Ok(Batch::Sent(seq))) => {
                self.last_seq = seq;
                ControlFlow::Continue(())
            }
            Ok(Ok(Batch::Lagged(skipped, seq))) => {
                ControlFlow::Break(too_slow(self.socket, skipped, seq).await)
            }
            Ok(Err(_)) | Err(_) => ControlFlow::Break(End::WriteFailed),
        }
    }

    /// The heartbeat: a peer silent since the last ping is dead.
    async fn ping(&mut self) -> ControlFlow<End> {
        if !self.alive {
            return ControlFlow::Break(End::DeadPeer);
        }
        self.alive = false;
        let ping = self.socket.send(Message::Ping(Default::default()));
        match tokio::time::timeout(self.state.config.write_timeout, ping).await {
            Ok(Ok(())) => ControlFlow::Continue(()),
            _ => ControlFlow::Break(End::WriteFailed),
        }
    }
}

enum Batch {
    /// Written up to this `seq`.
    Sent(u64),
    /// The subscriber fell behind after writing up to the given `seq`.
    Lagged(u64, u64),
}

/// Writes `first` and whatever else is already queued (up to [`MAX_BATCH`]) in one flush.
async fn write_batch(
    socket: &mut WebSocket,
    first: Frame,
    sub: &mut Subscription,
    state: &AppState,
) -> Result<Batch, axum::Error> {
    let oldest = first.published;
    let mut last = first.seq;
    socket.feed(text_message(&first)).await?;
    let mut written = 1;
    let mut lagged = None;
    while written < MAX_BATCH {
        match sub.try_recv() {
            Some(Received::Frame(frame)) => {
                last = frame.seq;
                socket.feed(text_message(&frame)).await?;
                written += 1;
            }
            Some(Received::Lagged(skipped)) => {
                lagged = Some(skipped);
                break;
            }
            Some(Received::Closed) | None => break,
        }
    }
    socket.flush().await?;
    state.metrics.frames_sent.inc_by(written as u64);
    state
        .metrics
        .broadcast_latency
        .observe(oldest.elapsed().as_secs_f64());
    Ok(match lagged {
        Some(skipped) => Batch::Lagged(skipped, last),
        None => Batch::Sent(last),
    })
}

/// The close code a read error calls for: 1002 for a protocol violation, 1007 for
/// text that is not UTF-8; `None` when the peer is gone (nothing to tell it).
fn violation_code(error: &(dyn std::error::Error + 'static)) -> Option<(u16, &'static str)> {
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

/// A read failed: a protocol violation gets its close frame before the TCP close.
async fn violation(socket: &mut WebSocket, error: &axum::Error) -> End {
    let Some((code, reason)) = violation_code(error) else {
        return End::ReadError;
    };
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    // The stream is out of step: send the close, read nothing more.
    let _ = tokio::time::timeout(CLOSE_WAIT, socket.send(Message::Close(Some(frame)))).await;
    End::Rule("protocol_error")
}

/// Closes a socket that never answered the opening ping (4408).
async fn unanswered(socket: &mut WebSocket, state: &AppState) -> End {
    let reason = format!(
        "no answer to the opening ping within {}",
        humantime::format_duration(state.config.handshake_timeout)
    );
    close(socket, CLOSE_IDLE_TIMEOUT, &reason).await;
    End::Rule("handshake_timeout")
}

/// Closes with 1001: the server is shutting down.
async fn going_away(socket: &mut WebSocket) -> End {
    close(socket, CLOSE_GOING_AWAY, "server shutting down").await;
    End::Shutdown
}

/// Closes as a security rule decided.
async fn enforce(socket: &mut WebSocket, closing: Closing) -> End {
    let (code, reason) = (closing.code(), closing.reason());
    if closing.may_read() {
        close(socket, code, &reason).await;
    } else {
        // The rest of an oversized frame is still unread: send the close, read nothing.
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        };
        let _ = tokio::time::timeout(CLOSE_WAIT, socket.send(Message::Close(Some(frame)))).await;
    }
    End::Rule(closing.label())
}

async fn too_slow(socket: &mut WebSocket, skipped: u64, last_seq: u64) -> End {
    let reason = format!("too slow: {skipped} events skipped; resume with since={last_seq}");
    close(socket, CLOSE_TOO_SLOW, &reason).await;
    End::TooSlow
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
