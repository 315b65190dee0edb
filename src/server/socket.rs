//! The sync socket, `/api/ws/sync/{org}[?since=N&epoch=E]`: CONNECTED, replay, live
//! events, heartbeat, slow-consumer handling, shutdown.
//!
//! The upgrade is answered here (the `101` with its accept key) and the connection
//! taken over from hyper, so that its writing side can be shared: live events are
//! written by the fan-out (`fanout.rs`) straight into the socket's kernel buffer,
//! without waking this task; this task reads client frames, answers them, keeps the
//! heartbeat, and wakes only to drain what the fan-out had to queue (the kernel
//! buffer was full) or to close a socket that fell behind (1013). Its own frames
//! go through the same [`Outlet`], so everything reaches the socket in order.
//!
//! The security rules (`security/`) hook in at two places: the upgrade handler
//! calls `Security::admit`, and the session loop hands every client frame to a
//! `SessionGuard` and has one branch for the closes it decides (rate, size, idle,
//! token expiry, organization no longer allowed).

use std::ops::ControlFlow;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures_util::{SinkExt, Stream as _, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::ReadHalf;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_util::sync::WaitForCancellationFuture;

use super::bus::{Resume, Subscription};
use super::error::api_error;
use super::fanout::{Outlet, SocketIo, Want};
use super::http::TcpSocket;
use super::meter::{FrameMeter, rate_exceeded};
use super::metrics::OpenSocket;
use super::security::caps::Permit;
use super::security::{Admission, ClientFrame, Closing, RateLimit, SessionGuard, frame_limit};
use super::state::AppState;
use super::ws::{parse_resume, upgrade, violation_code};
use crate::protocol::{CLOSE_GOING_AWAY, CLOSE_IDLE_TIMEOUT, CLOSE_TOO_SLOW, ServerFrame};

/// How long a closing socket waits for the peer's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Read buffer per socket: clients send little, and an idle socket should hold
/// next to nothing (a larger frame grows it while it is read).
const READ_BUFFER: usize = 256;
/// RFC 6455's "internal error": the event bus failed the subscription.
const CLOSE_INTERNAL_ERROR: u16 = 1011;

type Socket = WebSocketStream<SocketIo<ReadHalf<TokioIo<Upgraded>>>>;

/// `/api/ws/sync/{org}[?since=N&epoch=E]`.
#[allow(clippy::too_many_arguments)]
pub async fn sync(
    on_upgrade: Option<Extension<OnUpgrade>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    Path(org): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    meter: Option<Extension<Arc<FrameMeter>>>,
    tcp: Option<Extension<TcpSocket>>,
    State(state): State<AppState>,
) -> Response {
    // The extractor checks the request; the connection is taken over below.
    if let Err(refusal) = upgrade(ws, &headers) {
        return *refusal;
    }
    let (Some(Extension(on_upgrade)), Some(key)) =
        (on_upgrade, headers.get(header::SEC_WEBSOCKET_KEY))
    else {
        return api_error(
            StatusCode::UPGRADE_REQUIRED,
            "UPGRADE_REQUIRED",
            "this endpoint takes WebSocket connections over HTTP/1.1",
            None,
        );
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
    let accept = derive_accept_key(key.as_bytes());
    let tasks = state.tasks.clone();
    // The 101 waits in the kernel for CONNECTED: both leave in one segment.
    let corked = tcp.and_then(|Extension(TcpSocket(fd))| cork(fd, true).then_some(fd));
    let start = Box::new(Start {
        on_upgrade,
        org,
        resume,
        admission,
        corked,
    });
    tokio::spawn(tasks.track_future(run(start, state)));
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .expect("a 101 response builds")
}

fn config(state: &AppState) -> WebSocketConfig {
    // Frames go out as soon as they are written: the outlet does the buffering.
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(state.config.max_message_size))
        .max_frame_size(Some(frame_limit(state.config.max_message_size)))
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

/// What a sync socket's task starts from: boxed, so that it is freed with the opening
/// instead of staying in the task's state.
struct Start {
    on_upgrade: OnUpgrade,
    org: String,
    resume: Option<Resume>,
    admission: Admission,
    /// The connection's socket, corked for the 101 until the opening frames follow.
    corked: Option<RawFd>,
}

/// Sets or clears `TCP_CORK` on `fd`: while set, the kernel holds partial segments,
/// so the 101 and the opening frames (written a moment apart, by hyper and then by
/// the socket's task) reach the client in one segment, one wake-up and one read
/// instead of two. Whether it was set (`false`: not a TCP socket; nothing changes).
fn cork(fd: RawFd, on: bool) -> bool {
    let value: libc::c_int = on.into();
    // SAFETY: `fd` is the open socket of the connection being handled (see
    // `http::TcpSocket`); `value` outlives the call.
    let set = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    set == 0
}

/// Uncorks the socket when the opening ends, whichever way: what it wrote leaves now.
struct Uncork(RawFd);

impl Drop for Uncork {
    fn drop(&mut self) {
        cork(self.0, false);
    }
}

/// The session's loop, boxed.
type Live<'a> = Pin<Box<dyn Future<Output = Option<End>> + Send + 'a>>;

/// One sync socket, from the end of its upgrade. Its task's state is what every idle
/// socket holds, so it holds boxes only: the opening (freed once it is done) and then
/// the session's loop. An async fn's parameters and the futures it awaits inline stay
/// in its state for its whole life (rust-lang/rust#62958): 1.1 KB here, when it held them.
async fn run(start: Box<Start>, state: AppState) {
    let end = match Box::pin(open(start, &state)).await {
        Ok(live) => live.await,
        Err(end) => end,
    };
    if let Some(end) = end {
        state.metrics.disconnect(end.label());
    }
}

/// Takes the connection over, subscribes and writes the opening frames: the session's
/// loop ready to run, or how it ended (`None`: refused over a cap, already counted).
async fn open(start: Box<Start>, state: &AppState) -> Result<Live<'_>, Option<End>> {
    let Start {
        on_upgrade,
        org,
        resume,
        admission,
        corked,
    } = *start;
    let Ok(upgraded) = on_upgrade.await else {
        // The connection is gone: its descriptor is no longer ours to touch.
        return Err(None);
    };
    let (read, write) = tokio::io::split(TokioIo::new(upgraded));
    let outlet = state.hub.outlet(write);
    let io = SocketIo::new(read, outlet.clone());
    let mut socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config(state))).await;
    // Declared after the socket, so dropped before it: the descriptor is still open.
    let _uncork = corked.map(Uncork);
    if let Some(closing) = admission.refused {
        state.metrics.disconnect(closing.label());
        close(&mut socket, closing.code(), &closing.reason()).await;
        return Err(None);
    }
    let guard = state.security.session_guard(&org, admission.grant.as_ref());
    let open = state.metrics.socket_opened(&org);
    let mut session = Session {
        socket,
        outlet,
        state,
        guard,
        _membership: None,
        _open: open,
        _permit: admission.permit,
        alive: true,
        answered: state.config.handshake_timeout.is_zero(),
    };
    if state.shutdown.is_cancelled() {
        return Err(Some(going_away(&mut session.socket).await));
    }
    let sub = match state
        .bus
        .subscribe(&org, resume.as_ref(), &session.outlet)
        .await
    {
        Ok(sub) => sub,
        Err(_) => {
            let reason = "Redis is out of reach: retry later";
            close(&mut session.socket, CLOSE_INTERNAL_ERROR, reason).await;
            return Err(Some(End::BusFailed));
        }
    };
    opening(&mut session.socket, &session.outlet, &sub, state).await?;
    // CONNECTED and the replay are written: only the membership stays.
    session._membership = Some(sub.into_membership());
    Ok(Box::pin(session.run()))
}

/// Writes CONNECTED and the replay in one flush, then lets live frames flow.
async fn opening(
    socket: &mut Socket,
    outlet: &Outlet,
    sub: &Subscription,
    state: &AppState,
) -> Result<(), Option<End>> {
    let connected = serde_json::to_string(&ServerFrame::Connected(sub.connected.clone()))
        .expect("CONNECTED always serialises");
    let replayed = sub.replay.len() as u64;
    let last_seq = sub
        .replay
        .last()
        .map_or(sub.connected.seq.unwrap_or(0), |f| f.seq);
    let handshake = !state.config.handshake_timeout.is_zero();
    let write = async {
        socket.feed(Message::text(connected)).await?;
        for frame in &sub.replay {
            socket.feed(Message::text(frame.text())).await?;
        }
        // The first frame exchange: a peer that never answers it is closed.
        if handshake {
            socket.feed(Message::Ping(Default::default())).await?;
        }
        socket.flush().await
    };
    match tokio::time::timeout(state.config.write_timeout, write).await {
        Ok(Ok(())) => {}
        _ => return Err(Some(End::WriteFailed)),
    }
    state.metrics.frames_sent.inc_by(replayed);
    outlet.release(last_seq, sub.connected.epoch.as_deref().map(Arc::from));
    Ok(())
}

/// What woke a session up.
enum Wake {
    Shutdown,
    Client(Option<Result<Message, tungstenite::Error>>),
    Rule(Closing),
    Out(Want),
    Ping,
    /// The peer never answered the opening ping.
    Unanswered,
}

/// An open sync socket after its opening frames: everything it holds until it ends.
struct Session<'a> {
    socket: Socket,
    outlet: Arc<Outlet>,
    state: &'a AppState,
    guard: SessionGuard,
    /// Keeps the socket subscribed.
    _membership: Option<Box<dyn Send + Sync>>,
    /// Counts it among the open sockets.
    _open: OpenSocket,
    /// Holds its place under the connection caps.
    _permit: Option<Permit>,
    /// Whether the peer sent anything since the last ping.
    alive: bool,
    /// Whether the peer has sent anything at all (the answer to the opening ping).
    answered: bool,
}

/// What a session waits on besides its socket, its rules and its outlet.
struct Waits<'a, 's> {
    shutdown: Pin<&'a mut WaitForCancellationFuture<'s>>,
    /// The heartbeat (none when it is off).
    ping: Option<Pin<Box<tokio::time::Interval>>>,
    /// The opening ping's deadline (none once answered, or with no bound).
    handshake: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Which source is polled first, turn by turn (as `select!` would pick at random),
    /// so that a busy one cannot starve the others.
    turn: usize,
}

/// How many sources a session waits on (see [`Session::poll_wake`]).
const SOURCES: usize = 6;

impl Session<'_> {
    /// The session's loop. What an idle socket holds is this loop's state, so it
    /// holds no future per source: [`Session::poll_wake`] polls each in place, the
    /// timers live on the heap only while they are armed, and every handler (rare
    /// next to waiting) is boxed: its state does not size the resident one.
    async fn run(mut self) -> Option<End> {
        let state = self.state;
        let period = state.config.ping_interval;
        let shutdown = state.shutdown.cancelled();
        tokio::pin!(shutdown);
        let mut waits = Waits {
            shutdown,
            ping: (!period.is_zero()).then(|| {
                Box::pin(tokio::time::interval_at(
                    tokio::time::Instant::now() + period,
                    period,
                ))
            }),
            handshake: (!self.answered)
                .then(|| Box::pin(tokio::time::sleep(state.config.handshake_timeout))),
            turn: 0,
        };
        loop {
            let wake = std::future::poll_fn(|cx| self.poll_wake(&mut waits, cx)).await;
            if let ControlFlow::Break(end) = Box::pin(self.on(wake)).await {
                return Some(end);
            }
            if self.answered {
                waits.handshake = None;
            }
        }
    }

    /// The first source ready, starting from a different one each turn.
    fn poll_wake(&mut self, waits: &mut Waits<'_, '_>, cx: &mut Context<'_>) -> Poll<Wake> {
        waits.turn = waits.turn.wrapping_add(1);
        for i in 0..SOURCES {
            let polled = match (waits.turn + i) % SOURCES {
                0 => waits.shutdown.as_mut().poll(cx).map(|()| Wake::Shutdown),
                1 => Pin::new(&mut self.socket).poll_next(cx).map(Wake::Client),
                2 => self.guard.poll_closing(cx).map(Wake::Rule),
                3 => self.outlet.poll_wanted(cx).map(Wake::Out),
                4 => match waits.ping.as_mut() {
                    Some(ping) => ping.poll_tick(cx).map(|_| Wake::Ping),
                    None => Poll::Pending,
                },
                _ => match waits.handshake.as_mut() {
                    Some(deadline) => deadline.as_mut().poll(cx).map(|()| Wake::Unanswered),
                    None => Poll::Pending,
                },
            };
            if polled.is_ready() {
                return polled;
            }
        }
        Poll::Pending
    }

    async fn on(&mut self, wake: Wake) -> ControlFlow<End> {
        match wake {
            Wake::Shutdown => ControlFlow::Break(going_away(&mut self.socket).await),
            Wake::Client(message) => self.client(message).await,
            Wake::Rule(closing) => ControlFlow::Break(enforce(&mut self.socket, closing).await),
            Wake::Out(want) => self.out(want).await,
            Wake::Ping => self.ping().await,
            Wake::Unanswered => ControlFlow::Break(unanswered(&mut self.socket, self.state).await),
        }
    }

    /// A client frame, a close, or a read error.
    async fn client(
        &mut self,
        message: Option<Result<Message, tungstenite::Error>>,
    ) -> ControlFlow<End> {
        let message = match message {
            Some(Ok(Message::Close(_))) | None => {
                let _ = tokio::time::timeout(CLOSE_WAIT, &mut self.socket.flush()).await;
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
                    Some(closing) => enforce(&mut self.socket, closing).await,
                    None => violation(&mut self.socket, &e).await,
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
            Err(closing) => ControlFlow::Break(enforce(&mut self.socket, closing).await),
        }
    }

    /// The outlet needs this task: the fan-out queued frames the kernel had no room
    /// for, the socket fell behind, or a write failed.
    async fn out(&mut self, want: Want) -> ControlFlow<End> {
        match want {
            Want::Drain => {
                let drain = &mut self.socket.flush();
                match tokio::time::timeout(self.state.config.write_timeout, drain).await {
                    Ok(Ok(())) => ControlFlow::Continue(()),
                    _ => ControlFlow::Break(End::WriteFailed),
                }
            }
            Want::Lagged { lost, since } => {
                ControlFlow::Break(too_slow(&mut self.socket, lost, since).await)
            }
            Want::Failed => ControlFlow::Break(End::WriteFailed),
        }
    }

    /// The heartbeat: a peer silent since the last ping is dead.
    async fn ping(&mut self) -> ControlFlow<End> {
        if !self.alive {
            return ControlFlow::Break(End::DeadPeer);
        }
        self.alive = false;
        let ping = &mut self.socket.send(Message::Ping(Default::default()));
        match tokio::time::timeout(self.state.config.write_timeout, ping).await {
            Ok(Ok(())) => ControlFlow::Continue(()),
            _ => ControlFlow::Break(End::WriteFailed),
        }
    }
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(reason),
    }))
}

/// A read failed: a protocol violation gets its close frame before the TCP close.
async fn violation(socket: &mut Socket, error: &tungstenite::Error) -> End {
    let Some((code, reason)) = violation_code(error) else {
        return End::ReadError;
    };
    // The stream is out of step: send the close, read nothing more.
    let _ = tokio::time::timeout(CLOSE_WAIT, socket.send(close_frame(code, reason))).await;
    End::Rule("protocol_error")
}

/// Closes a socket that never answered the opening ping (4408).
async fn unanswered(socket: &mut Socket, state: &AppState) -> End {
    let reason = format!(
        "no answer to the opening ping within {}",
        humantime::format_duration(state.config.handshake_timeout)
    );
    close(socket, CLOSE_IDLE_TIMEOUT, &reason).await;
    End::Rule("handshake_timeout")
}

/// Closes with 1001: the server is shutting down.
async fn going_away(socket: &mut Socket) -> End {
    close(socket, CLOSE_GOING_AWAY, "server shutting down").await;
    End::Shutdown
}

/// Closes as a security rule decided.
async fn enforce(socket: &mut Socket, closing: Closing) -> End {
    let (code, reason) = (closing.code(), closing.reason());
    if closing.may_read() {
        close(socket, code, &reason).await;
    } else {
        // The rest of an oversized frame is still unread: send the close, read nothing.
        let _ = tokio::time::timeout(CLOSE_WAIT, socket.send(close_frame(code, &reason))).await;
    }
    End::Rule(closing.label())
}

/// Closes with 1013 after what was already queued: the socket fell `skipped` events
/// behind and resumes from `last_seq`.
async fn too_slow(socket: &mut Socket, skipped: u64, last_seq: u64) -> End {
    let reason = format!("too slow: {skipped} events skipped; resume with since={last_seq}");
    close(socket, CLOSE_TOO_SLOW, &reason).await;
    End::TooSlow
}

/// Sends a close frame and waits (briefly) for the peer's answer.
async fn close(socket: &mut Socket, code: u16, reason: &str) {
    let closing = async {
        socket.send(close_frame(code, reason)).await?;
        while let Some(message) = socket.next().await {
            if matches!(message?, Message::Close(_)) {
                break;
            }
        }
        Ok::<(), tungstenite::Error>(())
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, closing).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every idle socket's task holds beside the boxed loop: a few pointers, not
    /// the parameters and inline awaits of its async fn (1.1 KB when it held them).
    #[tokio::test]
    async fn a_socket_task_holds_only_boxes() {
        let (state, _) = super::super::app(super::super::Config::default());
        let start = Box::new(Start {
            on_upgrade: hyper::upgrade::on(axum::http::Request::new(())),
            org: "org-size".into(),
            resume: None,
            admission: Admission {
                grant: None,
                permit: None,
                refused: None,
            },
            corked: None,
        });
        let task = state.tasks.clone().track_future(run(start, state));
        let size = std::mem::size_of_val(&task);
        assert!(size <= 96, "a socket's task state is {size} bytes");
    }
}
