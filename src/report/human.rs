//! Text rendering for people. Functions return styled strings; the reporter decides
//! where they go and strips the styles when colour is off.

use colored::Colorize;

use crate::text::{MAX_COLUMN, MAX_SHOWN, message_lines, shown};

/// The styles of human output; `colored` draws them, under the reporter's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Bold,
    Dim,
    Red,
    Green,
    Yellow,
    Cyan,
}

pub const BOLD: Style = Style::Bold;
pub const DIM: Style = Style::Dim;
pub const RED: Style = Style::Red;
pub const GREEN: Style = Style::Green;
pub const YELLOW: Style = Style::Yellow;
pub const CYAN: Style = Style::Cyan;

/// `text` in `style` (plain when colour is off).
pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
    let text = text.to_string();
    match style {
        Style::Bold => text.bold(),
        Style::Dim => text.dimmed(),
        Style::Red => text.red().bold(),
        Style::Green => text.green(),
        Style::Yellow => text.yellow(),
        Style::Cyan => text.cyan(),
    }
    .to_string()
}

pub fn listening(url: &str) -> String {
    format!("listening on {}\n", paint(BOLD, url))
}

/// How an event is shown: pretty JSON (`connect`) or one line (`watch-sync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventStyle {
    Pretty,
    Line,
}

/// Milliseconds with one decimal.
pub fn ms(value: f64) -> String {
    format!("{value:.1} ms")
}

pub fn open(open: &super::json::Open) -> String {
    let verb = if open.attempt == 0 {
        "established"
    } else {
        "re-established"
    };
    let mut text = format!(
        "{} WebSocket connection {verb} ({})",
        paint(GREEN, "✓"),
        ms(open.open_ms)
    );
    if let Some(protocol) = &open.subprotocol {
        text.push_str(&format!(", subprotocol {protocol}"));
    }
    text.push('\n');
    text
}

/// The close line: what the initiator sent and, when the client closed, what the
/// server answered (`closed by the client (sent code: 1000, reason: normal; the
/// server answered code: 4000, reason: bye)`).
pub fn close(close: &super::json::Close) -> String {
    use crate::client::session::Initiator;
    let reason = |reason: &str| {
        if reason.is_empty() {
            "-".to_string()
        } else {
            shown(reason, MAX_SHOWN)
        }
    };
    let code = close.code.map_or("none".to_string(), |c| c.to_string());
    let sent = format!("code: {code}, reason: {}", reason(&close.reason));
    let detail = match (close.initiator, &close.answer) {
        (Initiator::Server, _) => sent,
        (Initiator::Client, Some(answer)) => format!(
            "sent {sent}; the server answered code: {}, reason: {}",
            answer.code,
            reason(&answer.reason)
        ),
        (Initiator::Client, None) => format!("sent {sent}; the server did not answer"),
    };
    format!(
        "{} WebSocket connection closed by the {} ({detail})\n",
        paint(DIM, "•"),
        close.initiator.as_str()
    )
}

/// The style of an event type in event lines and item states.
pub fn style_of(kind: &str) -> Style {
    match kind {
        "SYNC_SUCCESS" => GREEN,
        "SYNC_CONFLICT" => YELLOW,
        "SYNC_FAILED" => RED,
        "CONNECTED" => CYAN,
        _ => BOLD,
    }
}

pub fn event(raw: &str, frame: Option<&crate::protocol::ServerFrame>, style: EventStyle) -> String {
    use crate::protocol::ServerFrame;
    match style {
        EventStyle::Pretty => {
            let pretty = serde_json::from_str::<serde_json::Value>(raw)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| shown(raw, MAX_SHOWN));
            format!(
                "{} {}\n",
                paint(BOLD, "Message received:"),
                message_lines(&pretty)
            )
        }
        EventStyle::Line => match frame {
            Some(ServerFrame::Event(e)) => {
                let time = e.timestamp.0.format("%H:%M:%S%.3f");
                let seq = e.seq.map_or(String::new(), |s| format!(" #{s}"));
                let details = e.short_details();
                format!(
                    "{} {} {}{}{}\n",
                    paint(DIM, time),
                    paint(
                        style_of(e.kind.as_str()),
                        format!("{:<15}", shown(e.kind.as_str(), MAX_COLUMN))
                    ),
                    shown(&e.pfa_id, MAX_COLUMN),
                    paint(DIM, seq),
                    if details.is_empty() {
                        String::new()
                    } else {
                        format!("  {}", shown(&details, MAX_SHOWN))
                    }
                )
            }
            Some(ServerFrame::Connected(c)) => {
                let mut text = format!(
                    "{} {} {}",
                    paint(DIM, c.timestamp.0.format("%H:%M:%S%.3f")),
                    paint(CYAN, format!("{:<15}", "CONNECTED")),
                    shown(&c.organization_id, MAX_COLUMN)
                );
                if let (Some(seq), Some(epoch)) = (c.seq, &c.epoch) {
                    let epoch = shown(epoch, MAX_COLUMN);
                    text.push_str(&paint(DIM, format!(" seq={seq} epoch={epoch}")));
                }
                if c.history_truncated == Some(true) {
                    text.push_str(&paint(YELLOW, " history truncated"));
                }
                text.push('\n');
                text
            }
            Some(ServerFrame::Unknown { kind, .. }) => format!(
                "{} {} {}\n",
                paint(DIM, "?"),
                shown(kind, MAX_COLUMN),
                paint(DIM, shown(raw, MAX_SHOWN))
            ),
            None => format!("{} {}\n", paint(RED, "malformed:"), shown(raw, MAX_SHOWN)),
        },
    }
}

/// Warnings, notes and errors quote peers (reasons, bodies, ids): their text is
/// escaped here, once for every message.
pub fn warning(message: &str) -> String {
    format!(
        "{} {}\n",
        paint(YELLOW, "syncprobe: warning:"),
        message_lines(message)
    )
}

pub fn note(message: &str) -> String {
    format!(
        "{} {}\n",
        paint(YELLOW, "syncprobe: note:"),
        message_lines(message)
    )
}

/// `syncprobe: error: <context>: <cause>…`, with `hint:` lines for known causes.
pub fn error(err: &anyhow::Error) -> String {
    let mut text = format!(
        "{} {}\n",
        paint(RED, "syncprobe: error:"),
        message_lines(&format!("{err:#}"))
    );
    for hint in hints(err) {
        text.push_str(&format!("{} {hint}\n", paint(CYAN, "hint:")));
    }
    text
}

/// Follow-up advice for causes people commonly hit, found from the error's typed
/// causes (never from its text).
fn hints(err: &anyhow::Error) -> Vec<&'static str> {
    use crate::client::error::{NotWebSocket, find, http_status, io_kind, token_problem};
    use std::io::ErrorKind;
    let mut hints = Vec::new();
    match io_kind(err) {
        Some(ErrorKind::ConnectionRefused) => {
            hints.push("is the backend running? `syncprobe serve` starts a local one")
        }
        Some(ErrorKind::AddrInUse) => hints.push(
            "another process holds that port; pick another with --listen 127.0.0.1:PORT (0 = any free port)",
        ),
        _ => {}
    }
    if let Some(NotWebSocket::Tls) = find::<NotWebSocket>(err) {
        hints.push("this port speaks TLS: use wss:// (or https://) instead of ws://");
    }
    if let Some(NotWebSocket::Other(_)) = find::<NotWebSocket>(err) {
        hints.push("this port speaks another protocol: check the host and the port");
    }
    if let Some(problem) = token_problem(err) {
        hints.push(token_hint(problem));
    } else if let Some(status) = http_status(err) {
        hints.extend(status_hint(status));
    }
    if let Some(tls) = crate::client::error::tls_error(err) {
        hints.extend(tls_hint(tls));
    }
    hints
}

/// What to do about a refused token, from what the server said.
fn token_hint(problem: crate::client::error::TokenProblem) -> &'static str {
    use crate::client::error::TokenProblem;
    match problem {
        TokenProblem::Missing => {
            "pass a token with --token or --token-file (`syncprobe token` mints one for `serve --jwt-secret`)"
        }
        TokenProblem::Expired => {
            "the server says the token expired: get a new one (`syncprobe token` for `serve`), or check this machine's clock"
        }
        TokenProblem::Rejected => {
            "the server rejected the token: check that it was signed with the server's secret or key, and its issuer and audience"
        }
    }
}

/// What an HTTP status instead of the upgrade (or a REST answer) usually means.
fn status_hint(status: u16) -> Option<&'static str> {
    Some(match status {
        200..=299 => {
            "this is a web page, not a WebSocket endpoint: check the URL, --path or the proxy"
        }
        301 | 302 | 307 | 308 => {
            "the server redirects: use the URL it points to (wss:// if it redirects to https)"
        }
        403 => {
            "the server refused this organization or origin: check the token's organizations and --origin"
        }
        404 => "nothing answers at this path: check --path (default /api/ws/sync/{org}) and --url",
        426 => {
            "the server wants an upgrade it did not get: a proxy in between may drop the Upgrade header"
        }
        429 => "the server is rate limiting this client: wait, then retry more slowly",
        502..=504 => {
            "a proxy or the backend is down or overloaded: check the backend behind the proxy, then retry"
        }
        _ => return None,
    })
}

/// What to do about a TLS handshake the client gave up.
fn tls_hint(error: &rustls::Error) -> Option<&'static str> {
    use rustls::CertificateError as E;
    if crate::client::tls::is_ca_used_as_end_entity(error) {
        return Some(
            "the server presents a CA certificate (CA:TRUE) as its own, as a plain `openssl req -x509` makes: pass that very certificate with --cacert FILE, or give the server a certificate issued by a CA (see README, TLS)",
        );
    }
    let cert = match error {
        rustls::Error::InvalidCertificate(cert) => cert,
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            return Some("this port does not answer TLS: use ws:// (or http://) instead of wss://");
        }
        _ => return None,
    };
    Some(match cert {
        E::UnknownIssuer => {
            "the certificate is not signed by a CA this machine trusts: pass that CA with --cacert FILE (or --insecure, for testing only)"
        }
        E::Expired | E::ExpiredContext { .. } => {
            "the server's certificate has expired (or this machine's clock is wrong)"
        }
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "the certificate does not name this host: use the host name it was issued for"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::error::failed;
    use crate::exit::Failure;

    fn tls(cert: rustls::CertificateError) -> anyhow::Error {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(cert),
        );
        failed(Failure::Connect("TLS handshake with h failed".into()), io)
    }

    #[test]
    fn certificate_refusals_get_a_hint_naming_the_fix() {
        let unknown = hints(&tls(rustls::CertificateError::UnknownIssuer));
        assert!(unknown[0].contains("--cacert FILE"), "{unknown:?}");
        let expired = hints(&tls(rustls::CertificateError::Expired));
        assert!(expired[0].contains("expired"), "{expired:?}");
        assert!(hints(&tls(rustls::CertificateError::BadSignature)).is_empty());
        let refused = failed(
            Failure::Connect("failed to connect".into()),
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        );
        assert_eq!(hints(&refused).len(), 1);
        assert!(hints(&anyhow::anyhow!("Connection refused")).is_empty());
    }
}
