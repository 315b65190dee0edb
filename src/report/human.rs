//! Text rendering for people. Functions return styled strings; the reporter decides
//! where they go and strips the styles when colour is off.

use colored::Colorize;

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
        "-"
    } else {
        &close.reason
    };
    format!(
        "{} WebSocket connection closed by the {} (code: {code}, reason: {reason})\n",
        paint(DIM, "•"),
        close.initiator.as_str()
    )
}

fn style_of(kind: &str) -> Style {
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
                .unwrap_or_else(|| raw.to_string());
            format!("{} {pretty}\n", paint(BOLD, "Message received:"))
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
                        format!("{:<15}", e.kind.as_str())
                    ),
                    e.pfa_id,
                    paint(DIM, seq),
                    if details.is_empty() {
                        String::new()
                    } else {
                        format!("  {details}")
                    }
                )
            }
            Some(ServerFrame::Connected(c)) => {
                let mut text = format!(
                    "{} {} {}",
                    paint(DIM, c.timestamp.0.format("%H:%M:%S%.3f")),
                    paint(CYAN, format!("{:<15}", "CONNECTED")),
                    c.organization_id
                );
                if let (Some(seq), Some(epoch)) = (c.seq, &c.epoch) {
                    text.push_str(&paint(DIM, format!(" seq={seq} epoch={epoch}")));
                }
                if c.history_truncated == Some(true) {
                    text.push_str(&paint(YELLOW, " history truncated"));
                }
                text.push('\n');
                text
            }
            Some(ServerFrame::Unknown { kind, .. }) => {
                format!("{} {kind} {}\n", paint(DIM, "?"), paint(DIM, raw))
            }
            None => format!("{} {}\n", paint(RED, "malformed:"), raw),
        },
    }
}

pub fn warning(message: &str) -> String {
    format!("{} {message}\n", paint(YELLOW, "syncprobe: warning:"))
}

pub fn note(message: &str) -> String {
    format!("{} {message}\n", paint(YELLOW, "syncprobe: note:"))
}

/// `syncprobe: error: <context>: <cause>…`, with `hint:` lines for known causes.
pub fn error(err: &anyhow::Error) -> String {
    let mut text = format!("{} {err:#}\n", paint(RED, "syncprobe: error:"));
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
    hints
}

/// The end-of-run summary of `watch-sync` (and the item part of `enqueue --wait`).
pub fn watch_summary(s: &crate::check::Summary, outcome: &str) -> String {
    let mut out = String::new();
    let verdict = match outcome {
        "satisfied" | "count" | "duration" => paint(GREEN, outcome),
        "interrupted" | "closed" => paint(YELLOW, outcome),
        _ => paint(RED, outcome),
    };
    out.push_str(&format!(
        "\n{} {verdict}: {} frames, {} events\n",
        paint(BOLD, "Summary"),
        s.frames,
        s.events
    ));
    if !s.by_type.is_empty() {
        let counts: Vec<String> = s.by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
        out.push_str(&format!("  by type: {}\n", counts.join(", ")));
    }
    if !s.items.is_empty() {
        out.push_str(&format!("  items ({}):\n", s.items.len()));
        let width = s
            .items
            .iter()
            .map(|i| i.pfa_id.chars().count())
            .max()
            .unwrap_or(0);
        for item in &s.items {
            let duration = item
                .queued_to_terminal_ms
                .map_or(String::new(), |d| format!("  {d} ms queued→terminal"));
            let state = paint(style_of(&item.state), format!("{:<15}", item.state));
            let pending = if item.terminal {
                String::new()
            } else {
                paint(YELLOW, "  (no terminal event)")
            };
            let expectation = match item.expectation.as_deref() {
                Some("satisfied") => format!("  {}", paint(GREEN, "✓")),
                Some(other) => format!("  {}", paint(RED, other)),
                None => String::new(),
            };
            out.push_str(&format!(
                "    {:<width$}  {state} after {} events{duration}{pending}{expectation}\n",
                item.pfa_id,
                item.events.len()
            ));
        }
    }
    if !s.unfinished.is_empty() {
        out.push_str(&format!(
            "  {} {}\n",
            paint(YELLOW, "no terminal event:"),
            s.unfinished.join(", ")
        ));
    }
    if let Some(d) = &s.queued_to_terminal_ms {
        out.push_str(&format!(
            "  queued→terminal: min {:.0} ms, avg {:.1} ms, max {:.0} ms ({} items)\n",
            d.min, d.avg, d.max, d.count
        ));
    }
    if let (Some(l), Some(source)) = (&s.delivery_latency_ms, &s.latency_source) {
        out.push_str(&format!(
            "  delivery latency: avg {:.2} ms, max {:.2} ms, from {source}\n",
            l.avg, l.max
        ));
    }
    if let Some(seq) = &s.seq {
        let healthy =
            seq.gaps == 0 && seq.duplicates == 0 && seq.truncations == 0 && seq.epoch_changes == 0;
        let line = format!(
            "  seq: last {}, gaps {}, missing {}, duplicates {}, late {}, truncations {}, epoch changes {}",
            seq.last_seq.map_or("-".into(), |s| s.to_string()),
            seq.gaps,
            seq.missing,
            seq.duplicates,
            seq.late,
            seq.truncations,
            seq.epoch_changes
        );
        out.push_str(&format!(
            "{}\n",
            if healthy { line } else { paint(YELLOW, line) }
        ));
    } else {
        out.push_str(&format!(
            "  {}\n",
            paint(DIM, "seq: none (a Part 1 server): gaps cannot be detected")
        ));
    }
    if s.reconnects > 0 {
        out.push_str(&format!("  reconnects: {}\n", s.reconnects));
    }
    for window in &s.loss_windows {
        out.push_str(&format!(
            "  {} {} → {}: {}\n",
            paint(YELLOW, "possible loss"),
            window.from,
            window.to,
            window.reason
        ));
    }
    if s.malformed > 0 {
        out.push_str(&format!(
            "  {} {}\n",
            paint(RED, "malformed frames:"),
            s.malformed
        ));
    }
    if !s.unknown_types.is_empty() {
        out.push_str(&format!(
            "  unknown types: {}\n",
            s.unknown_types.join(", ")
        ));
    }
    if let Some(e) = &s.expectation {
        let status = match e.status.as_str() {
            "satisfied" => paint(GREEN, &e.status),
            other => paint(RED, other),
        };
        let scope = if e.per_item { ", per item" } else { "" };
        out.push_str(&format!(
            "  expectation ({}{scope}): {} → {status}\n",
            e.mode, e.pattern
        ));
    }
    out
}
