//! Text rendering for people. Functions return styled strings; the reporter decides
//! where they go and strips the styles when colour is off.

use anstyle::{AnsiColor, Style};

pub const BOLD: Style = Style::new().bold();
pub const DIM: Style = Style::new().dimmed();
pub const RED: Style = AnsiColor::Red.on_default().bold();
pub const GREEN: Style = AnsiColor::Green.on_default();
pub const YELLOW: Style = AnsiColor::Yellow.on_default();
pub const CYAN: Style = AnsiColor::Cyan.on_default();

/// `text` wrapped in `style` (reset after).
pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
}

pub fn listening(url: &str) -> String {
    format!("listening on {}\n", paint(BOLD, url))
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

/// Follow-up advice for causes people commonly hit.
fn hints(err: &anyhow::Error) -> Vec<&'static str> {
    let text = format!("{err:#}");
    let mut hints = Vec::new();
    if text.contains("Connection refused") || text.contains("connection refused") {
        hints.push("is the backend running? `syncprobe serve` starts a local one");
    }
    if text.contains("Address already in use") {
        hints.push("another process holds that port; pick another with --listen 127.0.0.1:PORT (0 = any free port)");
    }
    hints
}
