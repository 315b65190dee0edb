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

pub fn close(close: &super::json::Close) -> String {
    let code = close.code.map_or("none".to_string(), |c| c.to_string());
    let reason = if close.reason.is_empty() {
        "-".to_string()
    } else {
        shown(&close.reason, MAX_SHOWN)
    };
    format!(
        "{} WebSocket connection closed by the {} (code: {code}, reason: {reason})\n",
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
    use crate::client::error::{http_status, io_kind};
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
    if http_status(err) == Some(401) {
        hints.push("pass a token with --token or --token-file (`syncprobe token` mints one for `serve --jwt-secret`)");
    }
    if let Some(tls) = crate::client::error::tls_error(err) {
        hints.extend(tls_hint(tls));
    }
    hints
}

/// What to do about a certificate the client refused.
fn tls_hint(error: &rustls::Error) -> Option<&'static str> {
    use rustls::CertificateError as E;
    let rustls::Error::InvalidCertificate(cert) = error else {
        return None;
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
