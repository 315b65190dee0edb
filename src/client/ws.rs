//! Opening a sync socket one step at a time (DNS, TCP, TLS, upgrade) under one
//! deadline, so a failure says which step failed and a refused upgrade shows the
//! HTTP status and the start of the body; then reading frames and closing.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use super::aligned::Aligned;
use super::error::{BODY_PREVIEW, PeerClosed, UpgradeRefused, body_preview, failed};
use super::recorded::{self, Head, Recorded};
use super::{ClientOptions, Endpoint, TokenIn};
use crate::exit::Failure;

pub type Stream = WebSocketStream<Recorded<Aligned<MaybeTlsStream<TcpStream>>>>;

/// How long a client-initiated close waits for the server's answer (sending the
/// close frame included: a server that reads nothing cannot hold the exit).
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Largest message (and frame) the clients accept from a server by default
/// (`--max-message-size`): events are small JSON objects, so a bigger one is a
/// broken or hostile peer, not data to buffer (tungstenite's defaults are 64 MiB and
/// 16 MiB). Beyond it the run ends (exit 5).
pub const MAX_MESSAGE: usize = 1024 * 1024;
/// Most bytes of outgoing frames (pongs, pings, the close) held for a server that
/// does not read them; past it tungstenite keeps only the latest pong.
pub const MAX_WRITE_BUFFER: usize = 256 * 1024;
/// How long the server may leave what this client sent unread (the pongs its own
/// pings call for, a ping of `--ping-interval`) before the run ends with exit 5:
/// a server that floods pings and never reads the answers is not waited on forever.
pub const WRITE_STALL: Duration = Duration::from_secs(5);

/// `base` (`None`: tungstenite's defaults) with the client limits: `max_message`
/// bytes per message and frame, and the write-buffer bound above.
pub fn client_config(base: Option<WebSocketConfig>, max_message: usize) -> WebSocketConfig {
    let base = base.unwrap_or_default();
    base.max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
        .max_write_buffer_size(base.write_buffer_size + MAX_WRITE_BUFFER)
}

/// What a message over `--max-message-size` is called, from tungstenite's error.
fn over_limit(error: &tungstenite::Error) -> String {
    use tungstenite::error::CapacityError;
    match error {
        tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            format!(
                "the server sent a message of {size} bytes, over the client limit of {max_size} (raise --max-message-size)"
            )
        }
        _ => "the server sent a message over the client limit (raise --max-message-size)".into(),
    }
}

/// A socket that completed its upgrade.
pub struct Opened {
    pub stream: Stream,
    /// The URL as shown to people (a token in the query is masked).
    pub display_url: String,
    /// From the first DNS query to the completed upgrade.
    pub open_time: Duration,
    pub subprotocol: Option<String>,
}

/// `?since=N&epoch=E` for a Part 2 server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeFrom {
    pub since: u64,
    pub epoch: Option<String>,
}

/// The socket URL with resume parameters and (with `--token-in query`) the token.
pub fn socket_url(
    endpoint: &Endpoint,
    resume: Option<&ResumeFrom>,
    options: &ClientOptions,
) -> Url {
    let mut url = endpoint.socket.clone();
    {
        let mut query = url.query_pairs_mut();
        if let Some(resume) = resume {
            query.append_pair("since", &resume.since.to_string());
            if let Some(epoch) = &resume.epoch {
                query.append_pair("epoch", epoch);
            }
        }
        if let (Some(token), TokenIn::Query) = (&options.token, options.token_in) {
            query.append_pair(&options.token_param, token);
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    url
}

fn connect_failure(
    message: String,
    cause: impl std::error::Error + Send + Sync + 'static,
) -> anyhow::Error {
    failed(Failure::Connect(message), cause)
}

fn timeout_failure(step: &str, url: &str, limit: Duration) -> anyhow::Error {
    Failure::Timeout(format!(
        "timed out after {} during {step} to {url} (raise --connect-timeout?)",
        humantime::format_duration(limit)
    ))
    .into()
}

/// Opens the socket: each step is bounded by what is left of `--connect-timeout`.
pub async fn open(
    endpoint: &Endpoint,
    resume: Option<&ResumeFrom>,
    options: &ClientOptions,
) -> anyhow::Result<Opened> {
    let url = socket_url(endpoint, resume, options);
    let shown = super::redact(&url);
    let started = Instant::now();
    let limit = options.connect_timeout;
    let deadline = started + limit;
    let host = url
        .host_str()
        .context("the socket URL has no host")?
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();

    let tcp = match super::proxy::route(&url) {
        super::proxy::Route::Proxy { proxy, .. } => {
            let left = deadline.saturating_duration_since(Instant::now());
            super::proxy::connect(&proxy, &bare_host, port, left).await?
        }
        super::proxy::Route::Direct { .. } => {
            direct(&bare_host, port, deadline, &shown, limit).await?
        }
    };
    // Events are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);

    let stream = if url.scheme() == "wss" {
        let name = rustls::pki_types::ServerName::try_from(bare_host.clone())
            .map_err(|e| connect_failure(format!("{host} is not a valid TLS server name"), e))?;
        let connector = tokio_rustls::TlsConnector::from(options.tls.config()?);
        let tls = tokio::time::timeout_at(deadline, connector.connect(name, tcp))
            .await
            .map_err(|_| timeout_failure("the TLS handshake", &shown, limit))?
            .map_err(|e| connect_failure(format!("TLS handshake with {host} failed"), e))?;
        MaybeTlsStream::Rustls(tls)
    } else {
        MaybeTlsStream::Plain(tcp)
    };

    let mut request = url
        .as_str()
        .into_client_request()
        .with_context(|| format!("cannot build an upgrade request for {shown}"))?;
    let headers = request.headers_mut();
    let value = |v: &str, what: &str| {
        HeaderValue::from_str(v)
            .with_context(|| format!("the {what} value {v:?} is not a valid header value"))
    };
    if let (Some(token), TokenIn::Header) = (&options.token, options.token_in) {
        headers.insert("authorization", value(&format!("Bearer {token}"), "token")?);
    }
    if let Some(origin) = &options.origin {
        headers.insert("origin", value(origin, "--origin")?);
    }
    if !options.subprotocols.is_empty() {
        headers.insert(
            "sec-websocket-protocol",
            value(&options.subprotocols.join(", "), "--subprotocol")?,
        );
    }
    for (name, v) in &options.headers {
        let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes())
            .with_context(|| format!("{name:?} is not a valid header name"))?;
        headers.append(name, value(v, "-H")?);
    }
    let stream = match options.frame_aligned {
        true => Aligned::on_frames(stream),
        false => Aligned::off(stream),
    };
    let (stream, head) = recorded::recorded(stream);
    let (mut stream, response) = tokio::time::timeout_at(
        deadline,
        tokio_tungstenite::client_async_with_config(
            request,
            stream,
            Some(client_config(options.ws_config, options.max_message)),
        ),
    )
    .await
    .map_err(|_| timeout_failure("the WebSocket upgrade", &shown, limit))?
    .map_err(|e| upgrade_failure(e, &shown, &head, options))?;
    recorded::stop(stream.get_mut());
    let subprotocol = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    Ok(Opened {
        stream,
        display_url: shown,
        open_time: started.elapsed(),
        subprotocol,
    })
}

/// DNS, then TCP to each address in turn, until one accepts.
async fn direct(
    host: &str,
    port: u16,
    deadline: Instant,
    shown: &str,
    limit: Duration,
) -> anyhow::Result<TcpStream> {
    let addrs: Vec<_> = tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| timeout_failure("DNS resolution", shown, limit))?
        .map_err(|e| connect_failure(format!("failed to resolve {host} for {shown}"), e))?
        .collect();
    let mut last_error = None;
    let mut tcp = None;
    for addr in &addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(timeout_failure("the TCP connection", shown, limit)),
            Ok(Ok(stream)) => {
                tcp = Some(stream);
                break;
            }
            Ok(Err(e)) => last_error = Some(e),
        }
    }
    match (tcp, last_error) {
        (Some(tcp), _) => Ok(tcp),
        (None, Some(e)) => Err(connect_failure(format!("failed to connect to {shown}"), e)),
        (None, None) => Err(Failure::Connect(format!(
            "failed to resolve {host} for {shown}: no addresses"
        ))
        .into()),
    }
}

fn upgrade_failure(
    error: tungstenite::Error,
    url: &str,
    head: &Head,
    options: &ClientOptions,
) -> anyhow::Error {
    match error {
        tungstenite::Error::Http(response) => {
            let body = response
                .body()
                .as_deref()
                .map(|b| {
                    body_preview(&String::from_utf8_lossy(
                        &b[..b.len().min(4 * BODY_PREVIEW)],
                    ))
                })
                .unwrap_or_default();
            let status = response.status().as_u16();
            let refused = UpgradeRefused { status, body };
            let token = match (status, &options.token) {
                (401, Some(token)) => super::token_facts(token),
                _ => String::new(),
            };
            connect_failure(
                format!("the server refused the WebSocket upgrade at {url}{token}"),
                refused,
            )
        }
        other => {
            let first = head.lock().map(|h| h.clone()).unwrap_or_default();
            match recorded::answer(&first) {
                Some(answer) => connect_failure(
                    format!("the server at {url} did not upgrade to a WebSocket"),
                    answer,
                ),
                None => connect_failure(
                    format!(
                        "the server at {url} ended the connection without answering the upgrade"
                    ),
                    other,
                ),
            }
        }
    }
}

/// What a read produced.
#[derive(Debug)]
pub enum Incoming {
    /// A text frame and when it arrived (wall clock, for latency against server stamps).
    Text {
        text: String,
        at: SystemTime,
    },
    Binary(usize),
    Pong(Vec<u8>),
    /// The server closed: its close frame, or `None` when the connection just ended.
    Closed(Option<(u16, String)>),
}

/// Reads the next frame that matters (pings are answered by the WebSocket layer).
pub async fn next(stream: &mut Stream) -> anyhow::Result<Incoming> {
    loop {
        let message = match stream.next().await {
            None => return Ok(Incoming::Closed(None)),
            Some(Ok(message)) => message,
            Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) => {
                return Ok(Incoming::Closed(None));
            }
            Some(Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            ))) => {
                return Ok(Incoming::Closed(None));
            }
            Some(Err(tungstenite::Error::Io(e))) => {
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                ) {
                    return Ok(Incoming::Closed(None));
                }
                return Err(failed(
                    Failure::Protocol("reading from the socket failed".into()),
                    e,
                ));
            }
            Some(Err(e @ tungstenite::Error::Capacity(_))) => {
                // The message says it all; tungstenite's own text would repeat it.
                return Err(Failure::Protocol(over_limit(&e)).into());
            }
            Some(Err(e)) => {
                return Err(failed(
                    Failure::Protocol("the server broke the WebSocket protocol".into()),
                    e,
                ));
            }
        };
        return Ok(match message {
            Message::Text(text) => Incoming::Text {
                text: text.to_string(),
                at: SystemTime::now(),
            },
            Message::Binary(data) => Incoming::Binary(data.len()),
            Message::Pong(data) => Incoming::Pong(data.to_vec()),
            Message::Close(frame) => {
                Incoming::Closed(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
            }
            Message::Ping(_) => {
                pong_sent(stream).await?;
                continue;
            }
            Message::Frame(_) => continue,
        });
    }
}

/// After a ping: the pong tungstenite queued must leave within [`WRITE_STALL`]. A
/// server that keeps sending pings without reading the pongs would otherwise be
/// read (and answered into a buffer) forever.
async fn pong_sent(stream: &mut Stream) -> anyhow::Result<()> {
    match tokio::time::timeout(WRITE_STALL, stream.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(failed(
            Failure::Protocol("answering the server's ping failed".into()),
            e,
        )),
        Err(_) => Err(Failure::Protocol(stalled("the pongs its pings call for")).into()),
    }
}

/// The message for a server that left what was sent unread for [`WRITE_STALL`].
fn stalled(what: &str) -> String {
    format!(
        "the server has not read {what} for {}: it does not read this connection",
        humantime::format_duration(WRITE_STALL)
    )
}

/// Sends a ping carrying `payload`, within [`WRITE_STALL`].
pub async fn ping(stream: &mut Stream, payload: Vec<u8>) -> anyhow::Result<()> {
    match tokio::time::timeout(WRITE_STALL, stream.send(Message::Ping(payload.into()))).await {
        Ok(sent) => sent.map_err(|e| failed(Failure::Protocol("sending a ping failed".into()), e)),
        Err(_) => Err(Failure::Protocol(stalled("the ping this client sent")).into()),
    }
}

/// Closes with `code`/`reason` and waits (briefly) for the server's close frame;
/// returns what the server answered, if it did.
pub async fn close(stream: &mut Stream, code: u16, reason: &str) -> Option<(u16, String)> {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_string().into(),
    };
    let answer = async {
        stream.send(Message::Close(Some(frame))).await.ok()?;
        loop {
            match stream.next().await {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    };
    tokio::time::timeout(CLOSE_WAIT, answer)
        .await
        .ok()
        .flatten()
}

/// The first frame, checked: a well-formed `CONNECTED` for `org`.
pub struct ConnectedFrame {
    pub raw: String,
    pub frame: crate::protocol::ServerFrame,
    pub connected: crate::protocol::Connected,
}

/// Waits (up to `limit`) for the first frame and checks that it is the `CONNECTED`
/// of `org`: the type, the organization, and a valid timestamp.
pub async fn expect_connected(
    stream: &mut Stream,
    org: &str,
    limit: Duration,
) -> anyhow::Result<ConnectedFrame> {
    use crate::protocol::ServerFrame;
    let first = tokio::time::timeout(limit, next(stream))
        .await
        .map_err(|_| {
            Failure::Timeout(format!(
                "no CONNECTED within {} of opening the socket (raise --timeout?)",
                humantime::format_duration(limit)
            ))
        })??;
    let raw = match first {
        Incoming::Text { text, .. } => text,
        Incoming::Closed(Some((code, reason))) => {
            return Err(failed(
                Failure::Protocol("the server closed the connection before CONNECTED".into()),
                PeerClosed {
                    code: Some(code),
                    reason,
                },
            ));
        }
        Incoming::Closed(None) => {
            return Err(failed(
                Failure::Protocol("the server dropped the connection before CONNECTED".into()),
                PeerClosed {
                    code: None,
                    reason: String::new(),
                },
            ));
        }
        Incoming::Binary(len) => {
            return Err(Failure::Protocol(format!(
                "the first frame is binary ({len} bytes), not CONNECTED"
            ))
            .into());
        }
        Incoming::Pong(_) => {
            return Err(
                Failure::Protocol("the first frame is a pong, not CONNECTED".into()).into(),
            );
        }
    };
    let frame = ServerFrame::parse(&raw)
        .map_err(|e| Failure::Protocol(format!("malformed CONNECTED: {e}: {raw}")))?;
    let ServerFrame::Connected(connected) = &frame else {
        return Err(Failure::Protocol(format!(
            "the first frame is {}, not CONNECTED: {raw}",
            frame.kind()
        ))
        .into());
    };
    if connected.organization_id != org {
        return Err(Failure::Protocol(format!(
            "CONNECTED names organization {:?}, but {org:?} was requested",
            connected.organization_id
        ))
        .into());
    }
    let connected = connected.clone();
    Ok(ConnectedFrame {
        raw,
        frame,
        connected,
    })
}
