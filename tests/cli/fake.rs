//! Fake servers written inside the tests: servers that speak only part of the
//! protocol (Part 1 backends, without `seq`) or break it on purpose, so the client's
//! checks can be driven frame by frame.
//!
//! - [`FakeServer`]: completes the WebSocket upgrade (recording the request) and runs
//!   a handler per connection.
//! - [`HttpServer`]: answers the upgrade request with a fixed HTTP response (a refused
//!   upgrade); [`SilentServer`]: accepts TCP and never answers.
//! - [`CutProxy`]: a TCP proxy in front of a real server whose connections can be
//!   dropped on demand, for the reconnect tests.
//!
//! Every server binds 127.0.0.1:0 and stops (with its connections) when dropped.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use syncprobe::protocol::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::support::WAIT;

/// The server side of one fake connection.
pub type FakeWs = WebSocketStream<TcpStream>;

/// Largest upgrade request the raw servers read before answering.
const MAX_REQUEST: usize = 16 * 1024;

/// What the client sent in its upgrade request.
#[derive(Clone, Debug)]
pub struct Upgrade {
    /// 0 for the first connection the server accepted, then 1, 2, …
    pub index: usize,
    pub path: String,
    pub query: Option<String>,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
}

impl Upgrade {
    /// The first value of a header (`name` in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The decoded query parameters.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect()
    }

    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// A WebSocket server whose every connection is handed to a handler written by the
/// test.
pub struct FakeServer {
    pub addr: SocketAddr,
    upgrades: mpsc::UnboundedReceiver<Upgrade>,
    accept: JoinHandle<()>,
}

impl FakeServer {
    /// Starts serving; `handler` runs once per accepted connection, with the socket
    /// after the upgrade and what the upgrade request said.
    pub async fn start<F, Fut>(handler: F) -> FakeServer
    where
        F: Fn(FakeWs, Upgrade) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, upgrades) = mpsc::unbounded_channel();
        let handler = Arc::new(handler);
        let accept = tokio::spawn(async move {
            // The connections live in this task's set, so aborting it ends them all.
            let mut connections = JoinSet::new();
            let mut index = 0;
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else { continue };
                        let handler = handler.clone();
                        let tx = tx.clone();
                        let this = index;
                        index += 1;
                        connections.spawn(async move {
                            let mut seen = None;
                            // The error type is tungstenite's, whatever its size.
                            #[allow(clippy::result_large_err)]
                            let callback = |request: &Request, response: Response| {
                                seen = Some(Upgrade {
                                    index: this,
                                    path: request.uri().path().to_string(),
                                    query: request.uri().query().map(String::from),
                                    headers: request
                                        .headers()
                                        .iter()
                                        .map(|(n, v)| {
                                            (
                                                n.as_str().to_ascii_lowercase(),
                                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                            )
                                        })
                                        .collect(),
                                });
                                Ok::<_, ErrorResponse>(response)
                            };
                            let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await
                            else {
                                return;
                            };
                            let upgrade = seen.expect("the callback saw the request");
                            let _ = tx.send(upgrade.clone());
                            handler(ws, upgrade).await;
                        });
                    }
                    Some(_) = connections.join_next() => {}
                }
            }
        });
        FakeServer {
            addr,
            upgrades,
            accept,
        }
    }

    /// A server that sends `frames` (text) on every connection, then keeps the
    /// connection open, answering pings and the close handshake.
    pub async fn sending(frames: Vec<String>) -> FakeServer {
        FakeServer::sending_messages(frames.into_iter().map(Message::text).collect()).await
    }

    /// Like [`FakeServer::sending`], with any messages (binary frames, say).
    pub async fn sending_messages(messages: Vec<Message>) -> FakeServer {
        FakeServer::start(move |mut ws, _| {
            let messages = messages.clone();
            async move {
                for message in messages {
                    let _ = ws.send(message).await;
                }
                drain(&mut ws).await;
            }
        })
        .await
    }

    /// `ws://ADDR`, for `--url`.
    pub fn base(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The sync socket URL of `org`.
    pub fn sync_url(&self, org: &str) -> String {
        format!("ws://{}/api/ws/sync/{org}", self.addr)
    }

    /// The next upgrade request the server accepted.
    pub async fn next_upgrade(&mut self) -> Upgrade {
        tokio::time::timeout(WAIT, self.upgrades.recv())
            .await
            .expect("no upgrade request in time")
            .expect("the fake server stopped")
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Sends one text frame; a client that went away is not the fake's problem.
pub async fn send(ws: &mut FakeWs, text: &str) {
    let _ = ws.send(Message::text(text)).await;
}

pub async fn send_all(ws: &mut FakeWs, frames: &[String]) {
    for frame in frames {
        send(ws, frame).await;
    }
}

/// Closes with `code` and `reason`, then waits (bounded) for the client's answer.
pub async fn close(ws: &mut FakeWs, code: u16, reason: &str) {
    let frame = CloseFrame {
        code: code.into(),
        reason: reason.to_string().into(),
    };
    let _ = ws.send(Message::Close(Some(frame))).await;
    let _ = tokio::time::timeout(WAIT, drain(ws)).await;
}

/// Reads (and discards) until the client goes away; reading is what answers pings
/// and the client's close.
pub async fn drain(ws: &mut FakeWs) {
    while let Some(Ok(_)) = ws.next().await {}
}

/// A Part 1 `CONNECTED`: no `seq`, no `epoch`, the timestamp now.
pub fn part1_connected(org: &str) -> String {
    json!({"type": "CONNECTED", "organizationId": org, "timestamp": Timestamp::now()}).to_string()
}

/// A Part 2 `CONNECTED` carrying the latest `seq` and the `epoch`.
pub fn part2_connected(org: &str, seq: u64, epoch: &str) -> String {
    json!({
        "type": "CONNECTED", "organizationId": org, "timestamp": Timestamp::now(),
        "seq": seq, "epoch": epoch,
    })
    .to_string()
}

/// A Part 1 event of `kind` with the `details` the protocol requires of it.
pub fn part1_event(kind: &str, pfa: &str, org: &str) -> String {
    part1_event_value(kind, pfa, org).to_string()
}

pub fn part1_event_value(kind: &str, pfa: &str, org: &str) -> Value {
    let mut event = json!({
        "type": kind, "pfaId": pfa, "organizationId": org, "timestamp": Timestamp::now(),
    });
    match kind {
        "SYNC_SUCCESS" => event["details"] = json!({"newVersion": 2}),
        "SYNC_CONFLICT" => {
            event["details"] =
                json!({"conflictId": "conflict-1", "conflictingFields": ["quantity"]})
        }
        "SYNC_FAILED" => event["details"] = json!({"error": "timeout", "retryCount": 3}),
        _ => {}
    }
    event
}

/// A Part 2 event: a Part 1 event with its `seq`.
pub fn part2_event(kind: &str, pfa: &str, org: &str, seq: u64) -> String {
    let mut event = part1_event_value(kind, pfa, org);
    event["seq"] = json!(seq);
    event.to_string()
}

/// Reads an HTTP request head (bounded), so an answer does not race the request.
async fn read_request_head(tcp: &mut TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

/// Answers every request with one fixed HTTP response (a refused upgrade).
pub struct HttpServer {
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl HttpServer {
    /// `status` is the status line's tail, e.g. `403 Forbidden`; `body` is sent as JSON.
    pub async fn start(status: &str, body: &str) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let accept = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut tcp, _)) = accepted else { continue };
                        let response = response.clone();
                        connections.spawn(async move {
                            read_request_head(&mut tcp).await;
                            let _ = tcp.write_all(response.as_bytes()).await;
                            let _ = tcp.shutdown().await;
                        });
                    }
                    Some(_) = connections.join_next() => {}
                }
            }
        });
        HttpServer { addr, accept }
    }

    pub fn base(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Accepts TCP connections and never answers anything on them.
pub struct SilentServer {
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl SilentServer {
    pub async fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            // Held, not read: the client's upgrade request is never answered.
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                held.push(tcp);
            }
        });
        SilentServer { addr, accept }
    }

    pub fn base(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A TCP proxy to `upstream` whose connections can all be dropped at once while it
/// keeps accepting new ones, and which can hold new connections back (accepted, not
/// forwarded) to keep a client disconnected for as long as the test needs.
pub struct CutProxy {
    pub addr: SocketAddr,
    links: Arc<Mutex<JoinSet<()>>>,
    gate: watch::Sender<bool>,
    accepted: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl CutProxy {
    pub async fn start(upstream: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links = Arc::new(Mutex::new(JoinSet::new()));
        let (gate, _) = watch::channel(true);
        let accepted = Arc::new(AtomicUsize::new(0));
        let accept = {
            let links = links.clone();
            let gate = gate.clone();
            let accepted = accepted.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let mut open = gate.subscribe();
                    links.lock().unwrap().spawn(async move {
                        if open.wait_for(|open| *open).await.is_err() {
                            return;
                        }
                        let Ok(mut server) = TcpStream::connect(upstream).await else {
                            return;
                        };
                        let _ = server.set_nodelay(true);
                        let _ = client.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    });
                }
            })
        };
        CutProxy {
            addr,
            links,
            gate,
            accepted,
            accept,
        }
    }

    pub fn base(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Drops every current connection, both sides, without a close frame.
    pub fn cut(&self) {
        self.links.lock().unwrap().abort_all();
    }

    /// New connections are accepted but wait, not forwarded, until [`CutProxy::open`].
    pub fn hold(&self) {
        self.gate.send_replace(false);
    }

    /// Forwards new (and held) connections again.
    pub fn open(&self) {
        self.gate.send_replace(true);
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.links.lock().unwrap().abort_all();
    }
}

/// Reads an HTTP request head, up to its blank line (at most 64 KiB), for servers
/// written by hand on TCP.
pub async fn read_head(tcp: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    head
}

/// For a WebSocket upgrade request `head`: the organization its path ends with, and
/// the `101` that accepts it (its key found whatever the header name's case); `None`
/// for any other request.
pub fn switching(head: &str) -> Option<(String, String)> {
    let key = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-key"))?
        .1
        .trim();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let org = path
        .split('?')
        .next()
        .unwrap_or("")
        .rsplit('/')
        .next()
        .unwrap_or("");
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
    );
    Some((org.to_string(), answer))
}
