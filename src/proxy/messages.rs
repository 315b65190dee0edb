//! The proxy's HTTP side: hyper serves each client connection (after the byte
//! pumps); a plain request is forwarded to the upstream with reqwest, a WebSocket
//! upgrade is refused (`refuse-upgrade`) or opened upstream first, then proxied
//! frame by frame. The message faults act on the server's text frames, matched on
//! their `type` and `--where` rules: drop, duplicate, delay, reorder, corrupt,
//! hold CONNECTED, close after N frames. Pings are answered hop by hop (each
//! WebSocket library answers its peer), so a client's ping measures the way to the
//! proxy, through the network faults; `swallow-pings` leaves them unanswered.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::faults::{Dice, Fault, FaultSpec, LANE_MESSAGES};
use super::{Decision, Shared};

/// Largest request body forwarded upstream.
const MAX_BODY: usize = 64 << 20;
/// Longest a reordered frame waits for the next one before it goes alone.
const REORDER_WAIT: Duration = Duration::from_millis(500);
/// Bound on sending a close frame at the end of a session.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Headers that belong to one hop (RFC 9110 §7.6.1) or to the WebSocket handshake,
/// which the proxy makes again upstream.
const HOP_HEADERS: [&str; 14] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    "proxy-authorization",
];

/// One client connection's part of the message side.
struct Conn {
    connection: u64,
    shared: Arc<Shared>,
    dice: Mutex<Dice>,
}

impl Conn {
    fn chance(&self, p: f64) -> bool {
        self.dice.lock().map(|mut d| d.chance(p)).unwrap_or(false)
    }

    fn log(&self, id: u64, spec: &FaultSpec, frame: Option<&str>, seq: Option<u64>) {
        let mut decision = Decision::new(self.connection, spec.fault.name(), id);
        decision.direction = Some(spec.direction.as_str());
        decision.frame = frame;
        decision.seq = seq;
        self.shared.decided(decision);
    }
}

/// Serves HTTP/1.1 (with upgrades) on the far end of a connection's pipe.
pub async fn serve_connection(io: tokio::io::DuplexStream, connection: u64, shared: Arc<Shared>) {
    let conn = Arc::new(Conn {
        connection,
        dice: Mutex::new(Dice::new(shared.seed, connection, LANE_MESSAGES)),
        shared,
    });
    let service = hyper::service::service_fn(move |req| handle(req, conn.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
}

async fn handle(req: Request<Incoming>, conn: Arc<Conn>) -> Result<Response<Body>, Infallible> {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    Ok(if upgrade {
        websocket(req, conn).await
    } else {
        forward(req, &conn).await
    })
}

fn plain(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The upstream URL of a request: the upstream's scheme and authority (http or
/// ws as asked), its path prefix, the request's path and query.
fn upstream_url(base: &url::Url, uri: &hyper::Uri, websocket: bool) -> String {
    let secure = matches!(base.scheme(), "https" | "wss");
    let scheme = match (websocket, secure) {
        (true, true) => "wss",
        (true, false) => "ws",
        (false, true) => "https",
        (false, false) => "http",
    };
    let authority = &base[url::Position::BeforeHost..url::Position::AfterPort];
    let prefix = base.path().trim_end_matches('/');
    let rest = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    format!("{scheme}://{authority}{prefix}{rest}")
}

fn end_to_end(headers: &HeaderMap) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
    headers
        .iter()
        .filter(|(name, _)| !HOP_HEADERS.contains(&name.as_str()))
}

/// A plain request, forwarded upstream and its answer back.
async fn forward(req: Request<Incoming>, conn: &Conn) -> Response<Body> {
    let url = upstream_url(&conn.shared.upstream, req.uri(), false);
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(Body::new(body), MAX_BODY).await {
        Ok(body) => body,
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    let mut request = conn.shared.http.request(parts.method, &url).body(body);
    for (name, value) in end_to_end(&parts.headers) {
        request = request.header(name, value);
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(e) => {
            return plain(
                StatusCode::BAD_GATEWAY,
                &format!("the upstream did not answer: {e}"),
            );
        }
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = match answer.bytes().await {
        Ok(body) => body,
        Err(e) => {
            return plain(
                StatusCode::BAD_GATEWAY,
                &format!("the upstream's answer broke off: {e}"),
            );
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in end_to_end(&headers) {
        response.headers_mut().append(name, value.clone());
    }
    response
}

/// `refuse-upgrade`: the first refusal that fires, as its status.
fn refusal(conn: &Conn, faults: &[(u64, FaultSpec)]) -> Option<Response<Body>> {
    for (id, spec) in faults {
        if let Fault::RefuseUpgrade(status) = spec.fault
            && conn.chance(spec.probability)
        {
            conn.log(*id, spec, None, None);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return Some(plain(
                status,
                "upgrade refused by syncprobe proxy (--refuse-upgrade)",
            ));
        }
    }
    None
}

/// A WebSocket upgrade: opened upstream with the client's headers, then accepted
/// (with the upstream's subprotocol) and proxied; an upstream refusal is relayed.
async fn websocket(mut req: Request<Incoming>, conn: Arc<Conn>) -> Response<Body> {
    if let Some(refused) = refusal(&conn, &conn.shared.faults(false)) {
        return refused;
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return plain(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade needs Sec-WebSocket-Key",
        );
    };
    let url = upstream_url(&conn.shared.upstream, req.uri(), true);
    let mut upstream_request = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::BAD_GATEWAY, &format!("bad upstream URL: {e}")),
    };
    for (name, value) in end_to_end(req.headers()) {
        upstream_request
            .headers_mut()
            .append(name.clone(), value.clone());
    }
    let (upstream, answer) =
        match tokio_tungstenite::connect_async_with_config(upstream_request, None, true).await {
            Ok(opened) => opened,
            Err(tungstenite::Error::Http(answer)) => return relayed(*answer),
            Err(e) => {
                return plain(
                    StatusCode::BAD_GATEWAY,
                    &format!("the upstream did not accept the WebSocket: {e}"),
                );
            }
        };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let session_conn = conn.clone();
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let client =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            Session::run(client, upstream, session_conn).await;
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(protocol) = answer.headers().get(header::SEC_WEBSOCKET_PROTOCOL) {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol.clone());
    }
    response
}

/// The upstream's refusal of an upgrade, passed on as it was.
fn relayed(answer: hyper::Response<Option<Vec<u8>>>) -> Response<Body> {
    let (parts, body) = answer.into_parts();
    let mut response = Response::new(Body::from(body.unwrap_or_default()));
    *response.status_mut() = parts.status;
    for (name, value) in end_to_end(&parts.headers) {
        response.headers_mut().append(name, value.clone());
    }
    response
}

type ClientSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;
type UpstreamSocket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// What the session does after a frame.
#[derive(PartialEq, Eq)]
enum Step {
    Go,
    /// End, closing both sides with a close frame.
    Close,
    /// End by dropping both sides (a peer vanished).
    Drop,
}

/// One proxied WebSocket.
struct Session {
    client: SplitSink<ClientSocket, Message>,
    upstream: SplitSink<UpstreamSocket, Message>,
    conn: Arc<Conn>,
    /// Frames received from the upstream.
    frames: u64,
    /// A frame held back by `reorder`, and when it goes alone.
    held: Option<(Message, Instant)>,
}

impl Session {
    async fn run(client: ClientSocket, upstream: UpstreamSocket, conn: Arc<Conn>) {
        let (client, mut from_client) = client.split();
        let (upstream, mut from_upstream) = upstream.split();
        let mut session = Session {
            client,
            upstream,
            conn,
            frames: 0,
            held: None,
        };
        let end = loop {
            let held_until = session.held.as_ref().map(|(_, at)| *at);
            let step = tokio::select! {
                m = from_client.next() => session.on_client(m).await,
                m = from_upstream.next() => session.on_upstream(m).await,
                () = until(held_until) => session.release().await,
            };
            if step != Step::Go {
                break step;
            }
        };
        session.finish(end).await;
    }

    async fn on_client(&mut self, message: Option<tungstenite::Result<Message>>) -> Step {
        match message {
            None | Some(Err(_)) => Step::Drop,
            Some(Ok(Message::Close(frame))) => {
                let _ = self.upstream.send(Message::Close(frame)).await;
                Step::Drop
            }
            Some(Ok(Message::Ping(_))) => self.on_client_ping().await,
            // Pongs answer the proxy's library, not the upstream.
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => Step::Go,
            Some(Ok(message)) => self.send_upstream(message).await,
        }
    }

    async fn send_upstream(&mut self, message: Message) -> Step {
        match self.upstream.send(message).await {
            Ok(()) => Step::Go,
            Err(_) => Step::Drop,
        }
    }

    /// tungstenite has queued its answer; `swallow-pings` replaces it with an
    /// empty pong, which answers no ping (the library cannot stay silent).
    async fn on_client_ping(&mut self) -> Step {
        let faults = self.conn.shared.faults(false);
        let Some((id, spec)) = faults.iter().find(|(_, s)| s.fault == Fault::SwallowPings) else {
            return Step::Go;
        };
        self.conn.log(*id, spec, Some("ping"), None);
        self.send_client(Message::Pong(Default::default())).await
    }

    async fn send_client(&mut self, message: Message) -> Step {
        match self.client.send(message).await {
            Ok(()) => Step::Go,
            Err(_) => Step::Drop,
        }
    }

    async fn on_upstream(&mut self, message: Option<tungstenite::Result<Message>>) -> Step {
        match message {
            None | Some(Err(_)) => Step::Drop,
            Some(Ok(Message::Close(frame))) => {
                let _ = self.client.send(Message::Close(frame)).await;
                Step::Drop
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Step::Go,
            Some(Ok(Message::Text(text))) => {
                self.frames += 1;
                match self.on_text(text.as_str().to_string()).await {
                    Step::Go => self.close_after().await,
                    other => other,
                }
            }
            Some(Ok(message)) => {
                self.frames += 1;
                match self.send_client(message).await {
                    Step::Go => self.close_after().await,
                    other => other,
                }
            }
        }
    }

    /// Applies the message faults to one of the server's text frames.
    async fn on_text(&mut self, mut text: String) -> Step {
        let value: Option<Value> = serde_json::from_str(&text).ok();
        let kind = value
            .as_ref()
            .and_then(|v| v.get("type"))
            .and_then(Value::as_str)
            .map(String::from);
        let seq = value
            .as_ref()
            .and_then(|v| v.get("seq"))
            .and_then(Value::as_u64);
        let (kind, value) = (kind.as_deref(), value.as_ref());
        let mut copies = 1;
        let mut hold = false;
        for (id, spec) in self.conn.shared.faults(false) {
            let hit = |conn: &Conn, m: &super::faults::Matcher| {
                m.matches(kind, value) && conn.chance(spec.probability)
            };
            match &spec.fault {
                Fault::HoldConnected(d) if kind == Some("CONNECTED") => {
                    self.conn.log(id, &spec, kind, seq);
                    tokio::time::sleep(*d).await;
                }
                Fault::Drop(m) if hit(&self.conn, m) => {
                    self.conn.log(id, &spec, kind, seq);
                    return Step::Go;
                }
                Fault::Duplicate(m) if hit(&self.conn, m) => {
                    self.conn.log(id, &spec, kind, seq);
                    copies = 2;
                }
                Fault::Corrupt(m) if hit(&self.conn, m) => {
                    self.conn.log(id, &spec, kind, seq);
                    text = corrupted(&text);
                }
                Fault::Delay(m, d) if hit(&self.conn, m) => {
                    self.conn.log(id, &spec, kind, seq);
                    tokio::time::sleep(*d).await;
                }
                Fault::Reorder
                    if self.held.is_none()
                        && kind != Some("CONNECTED")
                        && self.conn.chance(spec.probability) =>
                {
                    self.conn.log(id, &spec, kind, seq);
                    hold = true;
                }
                _ => {}
            }
        }
        if hold {
            self.held = Some((Message::text(text), Instant::now() + REORDER_WAIT));
            return Step::Go;
        }
        for _ in 0..copies {
            if self.send_client(Message::text(text.clone())).await != Step::Go {
                return Step::Drop;
            }
        }
        self.release().await
    }

    /// Sends the frame held back by `reorder`, if any.
    async fn release(&mut self) -> Step {
        match self.held.take() {
            Some((message, _)) => self.send_client(message).await,
            None => Step::Go,
        }
    }

    /// `close-after N:CODE`: once N frames came from the upstream.
    async fn close_after(&mut self) -> Step {
        let faults = self.conn.shared.faults(false);
        for (id, spec) in &faults {
            if let Fault::CloseAfter { frames, code } = spec.fault
                && self.frames >= frames
            {
                self.conn.log(*id, spec, None, None);
                let _ = self.release().await;
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: "syncprobe proxy (--close-after)".into(),
                };
                let _ = self.client.send(Message::Close(Some(frame))).await;
                return Step::Close;
            }
        }
        Step::Go
    }

    async fn finish(mut self, end: Step) {
        let _ = self.release().await;
        if end == Step::Close {
            let _ = tokio::time::timeout(CLOSE_WAIT, self.upstream.close()).await;
            let _ = tokio::time::timeout(CLOSE_WAIT, self.client.close()).await;
        }
    }
}

/// `corrupt`: the frame without its last character, which no JSON object survives.
fn corrupted(text: &str) -> String {
    let mut chars = text.chars();
    chars.next_back();
    let mut broken = chars.as_str().to_string();
    broken.push('\u{1}');
    broken
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_keep_the_prefix_and_switch_scheme() {
        let base = url::Url::parse("wss://h:8443/base/").unwrap();
        let uri: hyper::Uri = "/api/ws/sync/o?since=3".parse().unwrap();
        assert_eq!(
            upstream_url(&base, &uri, true),
            "wss://h:8443/base/api/ws/sync/o?since=3"
        );
        let base = url::Url::parse("ws://127.0.0.1:9").unwrap();
        assert_eq!(
            upstream_url(&base, &"/x".parse().unwrap(), false),
            "http://127.0.0.1:9/x"
        );
    }

    #[test]
    fn corrupted_frames_are_not_json() {
        let text = corrupted(r#"{"type":"SYNC_SUCCESS"}"#);
        assert!(serde_json::from_str::<Value>(&text).is_err());
    }
}
