//! `upgrade` (an HTTP/1.1 upgrade written by hand, so a refusal's status, headers
//! and body are all seen) and `auth` (the token read locally: shape,
//! organizations, expiry, and the clock against the server's `Date`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use url::Url;

use super::Layer;
use super::net::Stream;
use crate::client::error::body_preview;
use crate::client::{ClientOptions, TokenIn};
use crate::exit::Exit;

/// Largest answer head read.
const MAX_HEAD: usize = 16 * 1024;
/// Most bytes of a refusal's body read.
const MAX_BODY: usize = 4 * 1024;
/// How long the rest of a refusal's body is waited for.
const BODY_WAIT: Duration = Duration::from_millis(500);
/// Response headers worth showing (never `Set-Cookie`).
const SHOWN_HEADERS: &[&str] = &[
    "server",
    "via",
    "upgrade",
    "connection",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "sec-websocket-version",
    "retry-after",
    "location",
];

/// What the server answered to the upgrade.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The server's `Date`, as a time.
    pub date: Option<SystemTime>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The `upgrade` layer, the stream when it switched protocols, and the answer.
pub struct Upgraded {
    pub layer: Layer,
    pub stream: Option<Stream>,
    pub answer: Option<Answer>,
}

fn request(url: &Url, key: &str, options: &ClientOptions) -> String {
    let mut path = url.path().to_string();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_string(),
    };
    let mut text = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: syncprobe/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let (Some(token), TokenIn::Header) = (&options.token, options.token_in) {
        text.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(origin) = &options.origin {
        text.push_str(&format!("Origin: {origin}\r\n"));
    }
    if !options.subprotocols.is_empty() {
        let list = options.subprotocols.join(", ");
        text.push_str(&format!("Sec-WebSocket-Protocol: {list}\r\n"));
    }
    for (name, value) in &options.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text
}

/// Reads the answer head byte by byte (so the first frame stays in the stream).
async fn read_head(stream: &mut Stream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < MAX_HEAD {
        if stream.read(&mut byte).await? == 0 {
            break;
        }
        head.push(byte[0]);
        // A TLS record is not going to end in a blank line.
        if head.len() == 2 && matches!(head[0], 0x15 | 0x16) && head[1] == 3 {
            break;
        }
    }
    Ok(head)
}

async fn read_body(stream: &mut Stream, length: Option<usize>, mut body: Vec<u8>) -> Vec<u8> {
    let want = length.unwrap_or(MAX_BODY).min(MAX_BODY);
    let mut buf = [0u8; 1024];
    let until = Instant::now() + BODY_WAIT;
    while body.len() < want {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => body.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    body.truncate(want);
    body
}

/// Sends the upgrade on `stream` and reads the answer within `deadline`.
pub async fn upgrade(
    url: &Url,
    mut stream: Stream,
    options: &ClientOptions,
    deadline: Instant,
) -> Upgraded {
    let started = Instant::now();
    let key = generate_key();
    let text = request(url, &key, options);
    let exchange = async {
        stream.write_all(text.as_bytes()).await?;
        stream.flush().await?;
        read_head(&mut stream).await
    };
    let head = match tokio::time::timeout_at(deadline, exchange).await {
        Err(_) => return failed(timed_out(started.elapsed())),
        Ok(Err(e)) => {
            let layer = Layer::fail(
                "upgrade",
                started.elapsed(),
                Exit::Connect,
                format!("the connection failed during the upgrade: {e}"),
                "the server or a proxy dropped the connection: check the server's logs",
            );
            return failed(layer);
        }
        Ok(Ok(head)) => head,
    };
    let took = started.elapsed();
    if head.len() >= 2 && matches!(head[0], 0x15 | 0x16) && head[1] == 3 {
        return failed(Layer::fail(
            "upgrade",
            took,
            Exit::Connect,
            "this port speaks TLS: the server answered the upgrade with a TLS record",
            "this port speaks TLS: use wss:// (or https://) instead of ws://",
        ));
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let (Ok(httparse::Status::Complete(at)), Some(status)) = (response.parse(&head), response.code)
    else {
        return failed(not_http(&head, took));
    };
    let answer_headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value);
            (h.name.to_ascii_lowercase(), crate::text::shown(&value, 200))
        })
        .collect();
    let length = answer_headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.trim().parse().ok());
    let mut answer = Answer {
        status,
        date: answer_headers
            .iter()
            .find(|(n, _)| n == "date")
            .and_then(|(_, v)| chrono::DateTime::parse_from_rfc2822(v).ok())
            .map(SystemTime::from),
        headers: answer_headers,
        body: String::new(),
    };
    if status == 101 {
        return switched(stream, answer, &key, took);
    }
    let body = read_body(&mut stream, length, head[at..].to_vec()).await;
    answer.body = body_preview(&String::from_utf8_lossy(&body));
    let layer = refused(&answer, started.elapsed());
    Upgraded {
        layer,
        stream: None,
        answer: Some(answer),
    }
}

fn failed(layer: Layer) -> Upgraded {
    Upgraded {
        layer,
        stream: None,
        answer: None,
    }
}

fn timed_out(took: Duration) -> Layer {
    Layer::fail(
        "upgrade",
        took,
        Exit::Timeout,
        format!(
            "the port accepted the connection but did not answer the upgrade within {}",
            humantime::format_duration(Duration::from_millis(took.as_millis() as u64))
        ),
        "something accepts connections on this port without speaking HTTP (a stalled backend, a firewall or a proxy waiting): check what listens there, or raise --connect-timeout",
    )
}

fn not_http(head: &[u8], took: Duration) -> Layer {
    if head.is_empty() {
        return Layer::fail(
            "upgrade",
            took,
            Exit::Connect,
            "the server ended the connection without answering the upgrade",
            "the server or a proxy dropped the request: check the server's logs, the path and the scheme",
        );
    }
    let preview = String::from_utf8_lossy(&head[..head.len().min(60)]);
    Layer::fail(
        "upgrade",
        took,
        Exit::Connect,
        format!(
            "the server answered something that is not HTTP: {}",
            crate::text::escape(&preview)
        ),
        "this port speaks another protocol: check the host and the port",
    )
}

/// `Server: …, Via: …`: the answer's headers worth showing.
fn shown_headers(answer: &Answer) -> String {
    let shown: Vec<String> = answer
        .headers
        .iter()
        .filter(|(n, _)| SHOWN_HEADERS.contains(&n.as_str()))
        .map(|(n, v)| format!("{n}: {v}"))
        .collect();
    if shown.is_empty() {
        String::new()
    } else {
        format!(" [{}]", shown.join("; "))
    }
}

fn switched(stream: Stream, answer: Answer, key: &str, took: Duration) -> Upgraded {
    let expected = derive_accept_key(key.as_bytes());
    let headers = shown_headers(&answer);
    if answer.header("sec-websocket-accept") != Some(expected.as_str()) {
        let layer = Layer::fail(
            "upgrade",
            took,
            Exit::Protocol,
            format!("HTTP 101 with a wrong Sec-WebSocket-Accept{headers}"),
            "something between here and the backend rewrites the upgrade: check the proxy",
        );
        return failed(layer);
    }
    Upgraded {
        layer: Layer::pass(
            "upgrade",
            took,
            format!("HTTP 101 Switching Protocols{headers}"),
        ),
        stream: Some(stream),
        answer: Some(answer),
    }
}

/// The hint for a status that is not 101.
fn status_hint(answer: &Answer) -> String {
    let proxy = answer.header("via").is_some() || answer.header("x-cache").is_some();
    match answer.status {
        200..=299 if proxy => format!(
            "a buffering proxy ({}) answered {} instead of passing the upgrade on: enable WebSocket pass-through (Upgrade/Connection headers) for this path",
            answer.header("via").unwrap_or("X-Cache"),
            answer.status
        ),
        200..=299 => "this is a web page, not a WebSocket endpoint: check the URL, --path (default /api/ws/sync/{org}) or the proxy in front".into(),
        301 | 302 | 307 | 308 => format!(
            "the server redirects to {}: use that URL (wss:// if it points to https)",
            answer.header("location").unwrap_or("another URL")
        ),
        401 => "the server wants credentials: pass a valid token with --token or --token-file (see the auth layer)".into(),
        403 => "the server refused this organization or origin: check the token's organizations and --origin".into(),
        404 => "nothing answers at this path: check --path (default /api/ws/sync/{org}) and --url".into(),
        426 => "the server wants an upgrade it did not get: a proxy in between drops the Upgrade header".into(),
        429 => format!(
            "the server is rate limiting this client: wait{} and retry more slowly",
            answer.header("retry-after").map(|s| format!(" {s} s")).unwrap_or_default()
        ),
        503 => "the backend is unavailable or at its connection limit: check its health and capacity, then retry".into(),
        502 | 504 => "a proxy cannot reach the backend behind it: check the backend, then the proxy's upstream".into(),
        _ => "the server refused the upgrade: its body above says why".into(),
    }
}

fn refused(answer: &Answer, took: Duration) -> Layer {
    let reason = tokio_tungstenite::tungstenite::http::StatusCode::from_u16(answer.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let body = if answer.body.is_empty() {
        String::new()
    } else {
        format!(": {}", answer.body)
    };
    let detail = format!(
        "HTTP {} {reason}{body}{}",
        answer.status,
        shown_headers(answer)
    );
    Layer::fail("upgrade", took, Exit::Connect, detail, status_hint(answer))
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn ago(secs: i64) -> String {
    humantime::format_duration(Duration::from_secs(secs.unsigned_abs())).to_string()
}

/// `auth`: what the token says about itself, judged before trusting the server's
/// answer; the server's `Date` gives the clock skew.
pub fn auth(token: Option<&str>, org: &str, answer: Option<&Answer>) -> Layer {
    let started = Instant::now();
    let refused = answer.map(|a| a.status).filter(|s| matches!(s, 401 | 403));
    let Some(token) = token else {
        return match refused {
            Some(401) => Layer::fail(
                "auth",
                started.elapsed(),
                Exit::Connect,
                "no token was sent, and the server wants one (HTTP 401)",
                "pass a token with --token or --token-file (`syncprobe token` mints one for `serve --jwt-secret`)",
            ),
            _ => Layer::skip("auth", "no token given"),
        };
    };
    let decoded = match crate::claims::decode_unverified(token) {
        Ok(decoded) => decoded,
        Err(why) => {
            return Layer::warn(
                "auth",
                started.elapsed(),
                format!("the token cannot be read locally ({why})"),
                "an opaque token is fine if the server takes it; otherwise check what was passed to --token",
            );
        }
    };
    let alg = decoded
        .header
        .get("alg")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_string();
    let access = crate::claims::read_access(&decoded.claims);
    let orgs = match &access {
        Ok(a) if a.all => "all organizations".to_string(),
        Ok(a) => format!(
            "organizations [{}]",
            a.orgs
                .iter()
                .map(|o| o.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(why) => format!("no organization claim the client knows ({why})"),
    };
    let now = now_secs();
    let claim = |name: &str| {
        decoded
            .claims
            .get(name)
            .and_then(|v| v.as_f64())
            .map(|v| v as i64)
    };
    let expiry = match claim("exp") {
        Some(exp) if exp <= now => format!("expired {} ago", ago(now - exp)),
        Some(exp) => format!("expires in {}", ago(exp - now)),
        None => "no exp".into(),
    };
    let skew = answer.and_then(|a| a.date).map(|date| {
        let server = date
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        server - now
    });
    let skew_text = skew.map_or(String::new(), |s| format!(", server clock {s:+} s"));
    let detail = format!("JWT {alg}, {orgs}, {expiry}{skew_text}");
    let took = started.elapsed();
    let fail = |detail: String, hint: &str| {
        Layer::fail("auth", took, Exit::Connect, detail, hint.to_string())
    };
    if claim("exp").is_some_and(|exp| exp <= now) {
        return fail(
            detail,
            "the token has expired: get a new one (`syncprobe token` for `serve`), or check this machine's clock",
        );
    }
    if let Some(nbf) = claim("nbf").filter(|nbf| *nbf > now) {
        return fail(
            format!("{detail}; not valid for another {}", ago(nbf - now)),
            "the token is not valid yet: check the clocks of the issuer and of this machine",
        );
    }
    if let Ok(access) = &access
        && !access.allows(org)
    {
        return fail(
            format!("{detail}; it does not allow {org}"),
            &format!("the token is for other organizations: use a token that allows {org}"),
        );
    }
    if refused.is_some() {
        return Layer::warn(
            "auth",
            took,
            format!("{detail}; it looks valid here, yet the server refused it"),
            "check that the token was signed with the server's secret or key, and its issuer and audience",
        );
    }
    Layer::pass("auth", took, detail)
}
