//! The records of `connect` and their text.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::human::{self, BOLD, GREEN, YELLOW, paint};
use crate::protocol::ProtocolPart;

/// The `summary` record of `connect`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectSummary {
    pub ok: bool,
    pub url: String,
    pub organization_id: String,
    /// From the first DNS query to the completed upgrade.
    pub open_ms: f64,
    /// From the first DNS query to CONNECTED.
    pub connected_ms: f64,
    /// `part2` when CONNECTED carries `seq` and `epoch`, else `part1`.
    pub protocol: ProtocolPart,
    pub seq: Option<u64>,
    pub epoch: Option<String>,
    /// Frames received during `--hold`.
    pub events_during_hold: u64,
    /// The URLs tried before the one that answered (several `--url`), in order.
    pub failed: Vec<UrlFailure>,
}

/// A URL that did not answer, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UrlFailure {
    /// The socket URL, secrets masked.
    pub url: String,
    pub message: String,
    /// The exit code this failure alone would have had.
    pub exit_code: i32,
}

/// The line saying which instance a run used after earlier URLs did not answer.
pub fn used_after(url: &str, failed: &[UrlFailure]) -> String {
    let urls: Vec<&str> = failed.iter().map(|f| f.url.as_str()).collect();
    format!(
        "  used {url}: {} did not answer ({})\n",
        crate::text::count(failed.len() as u64, "earlier URL"),
        urls.join(", ")
    )
}

/// The warning when URL `n - 1` of `of` failed and URL `n` is tried next.
pub fn next_url(url: &str, error: &anyhow::Error, n: usize, of: usize) -> String {
    format!(
        "{}; trying the next URL ({n} of {of})",
        crate::client::named_failure(url, error)
    )
}

/// `Testing WebSocket connection to: URL`, as the seed's script says it.
pub fn banner(url: &str) -> String {
    format!("Testing WebSocket connection to: {}\n", paint(BOLD, url))
}

pub fn confirmed(connected_ms: f64) -> String {
    format!(
        "\n{} Connection confirmed! CONNECTED after {}",
        paint(GREEN, "✓"),
        human::ms(connected_ms)
    )
}

pub fn holding(hold: Duration) -> String {
    format!(
        "Holding the connection for {}…",
        humantime::format_duration(hold)
    )
}

pub fn summary(s: &ConnectSummary) -> String {
    let mut out = String::new();
    for failure in &s.failed {
        out.push_str(&format!(
            "{} {} did not answer (exit {}): {}\n",
            paint(YELLOW, "no:"),
            failure.url,
            failure.exit_code,
            crate::text::message_lines(&failure.message)
        ));
    }
    out + &format!(
        "{} {} accepted the connection: open {}, CONNECTED {} ({})\n",
        paint(GREEN, "ok:"),
        s.url,
        human::ms(s.open_ms),
        human::ms(s.connected_ms),
        match s.protocol {
            ProtocolPart::Part2 => format!("sequence numbers from seq {}", s.seq.unwrap_or(0)),
            ProtocolPart::Part1 => "no sequence numbers: a Part 1 backend".to_string(),
        }
    )
}
