//! The records of `watch-sync` and their text: the banner, the event lines (with
//! their receive time), the lines about lost and re-established connections, the
//! pong round trips, and the end-of-run summary.

use crate::text::{MAX_COLUMN, MAX_SHOWN, shown};
use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::Reporter;
use super::human::{self, BOLD, CYAN, DIM, GREEN, RED, YELLOW, ms, paint, style_of};
use crate::check::{self, ItemSummary, Summary};
use crate::expect::Status;
use crate::protocol::{ProtocolPart, ServerFrame};

/// The `summary` record of `watch-sync`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WatchSummary {
    pub outcome: WatchOutcome,
    /// How far the watch got: `none` (no socket opened: nothing at all was received),
    /// `opened` (a socket opened, but no valid CONNECTED came), `connected`.
    pub reached: Reached,
    pub duration_ms: f64,
    /// Every connection that reached CONNECTED, in order (the last
    /// [`MAX_SESSIONS`]): which URL it used and where it resumed.
    pub sessions: Vec<SessionSummary>,
    #[serde(flatten)]
    pub check: check::Summary,
}

/// Most sessions listed in the summary (the latest are kept; `reconnects` counts all).
pub const MAX_SESSIONS: usize = 100;

/// One connection of a watch, past CONNECTED.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    /// The socket URL (secrets masked, without the resume parameters).
    pub url: String,
    /// The `since` it resumed from (`None`: not a resume).
    pub since: Option<u64>,
    /// The seq and epoch its CONNECTED announced.
    pub seq: Option<u64>,
    pub epoch: Option<String>,
    /// Events received on it (after filters, as `events` counts them).
    pub events: u64,
}

/// How far a watch got with the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reached {
    None,
    Opened,
    Connected,
}

/// How a watch ended, as the summary's `outcome` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WatchOutcome {
    /// The expectation held.
    Satisfied,
    /// The expectation failed, `--fail-on` fired, or it was unmet at `--count`/`--duration`.
    Failed,
    /// `--timeout` passed before the expectation or `--count` was reached.
    Timeout,
    /// Ctrl-C.
    Interrupted,
    ProtocolError,
    /// The server closed the connection and `--reconnect` was not given.
    Closed,
    /// Connecting or reconnecting failed for good (or another runtime error).
    GaveUp,
    /// The watch ended without a CONNECTED: the socket could not be opened, the
    /// upgrade was refused, or CONNECTED did not come (in time, or at all).
    ConnectFailed,
    /// `--count` events arrived.
    Count,
    /// `--duration` passed.
    Duration,
}

impl WatchOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchOutcome::Satisfied => "satisfied",
            WatchOutcome::Failed => "failed",
            WatchOutcome::Timeout => "timeout",
            WatchOutcome::Interrupted => "interrupted",
            WatchOutcome::ProtocolError => "protocol-error",
            WatchOutcome::Closed => "closed",
            WatchOutcome::GaveUp => "gave-up",
            WatchOutcome::ConnectFailed => "connect-failed",
            WatchOutcome::Count => "count",
            WatchOutcome::Duration => "duration",
        }
    }

    /// The ends that exit 0.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            WatchOutcome::Satisfied | WatchOutcome::Count | WatchOutcome::Duration
        )
    }
}

impl fmt::Display for WatchOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Why a connection was lost (and, with `--reconnect`, is being re-established).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disconnect {
    /// The server's close frame.
    Closed { code: u16, reason: String },
    /// The connection ended without a close frame.
    Dropped,
    /// A ping was still unanswered when the next one was due.
    PingUnanswered,
    /// A ping could not be sent.
    PingFailed,
}

impl Disconnect {
    /// From the close frame the server sent, if any.
    pub fn of(frame: Option<(u16, String)>) -> Disconnect {
        match frame {
            Some((code, reason)) => Disconnect::Closed { code, reason },
            None => Disconnect::Dropped,
        }
    }

    /// The close frame, for the `close` record.
    pub fn frame(&self) -> Option<(u16, String)> {
        match self {
            Disconnect::Closed { code, reason } => Some((*code, reason.clone())),
            _ => None,
        }
    }
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disconnect::Closed { code, reason } => write!(
                f,
                "the server closed the connection (code {code}, reason: {})",
                or_dash(reason)
            ),
            Disconnect::Dropped => f.write_str("the connection was lost without a close frame"),
            Disconnect::PingUnanswered => f.write_str("the server stopped answering pings"),
            Disconnect::PingFailed => f.write_str("sending a ping failed"),
        }
    }
}

/// `Watching sync events of ORG at URL`.
pub fn banner(org: &str, url: &str) -> String {
    format!("Watching sync events of {} at {url}\n", paint(BOLD, org))
}

/// `attempt 2/4`, or `attempt 2` when the attempts are not limited (`max` `None`).
pub fn attempt(n: u32, max: Option<u32>) -> String {
    match max {
        Some(max) => format!("attempt {n}/{max}"),
        None => format!("attempt {n}"),
    }
}

/// The warning for a lost connection that is being re-established by attempt `n`
/// (`to`: the URL it goes to, when there are several).
pub fn reconnecting(why: &Disconnect, n: u32, max: Option<u32>, to: Option<&str>) -> String {
    match to {
        Some(url) => format!("{why}; reconnecting to {url} ({})", attempt(n, max)),
        None => format!("{why}; reconnecting ({})", attempt(n, max)),
    }
}

/// The warning for failed reconnect attempt `n`, `next` being the wait before the
/// following one (`to`: the URL it goes to, when there are several).
pub fn reconnect_failed(
    n: u32,
    max: Option<u32>,
    error: &anyhow::Error,
    next: Duration,
    to: Option<&str>,
) -> String {
    let next = humantime::format_duration(Duration::from_millis(next.as_millis() as u64));
    let to = to.map_or(String::new(), |url| format!(", to {url}"));
    format!(
        "reconnect {} failed: {error:#}; next in {next}{to}",
        attempt(n, max)
    )
}

/// The receive time of an event line: UTC, to the millisecond, marked `Z`.
pub fn received_at(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at)
        .format("%H:%M:%S%.3fZ")
        .to_string()
}

/// One frame as `watch-sync` shows it: its receive time, the type, the pfaId padded
/// to `pfa_width` (at most [`MAX_COLUMN`]), the seq, and the details; `replayed`
/// marks an event the server replayed from its history.
pub fn event_line(
    raw: &str,
    frame: Option<&ServerFrame>,
    at: SystemTime,
    pfa_width: usize,
    replayed: bool,
) -> String {
    let time = paint(DIM, received_at(at));
    match frame {
        Some(ServerFrame::Event(e)) => {
            let seq = e.seq.map_or(String::new(), |s| format!("#{s}"));
            let details = e.short_details();
            let mut line = format!(
                "{time} {} {:<width$} {}",
                paint(
                    style_of(e.kind.as_str()),
                    format!("{:<15}", shown(e.kind.as_str(), MAX_COLUMN))
                ),
                shown(&e.pfa_id, MAX_COLUMN),
                paint(DIM, seq),
                width = pfa_width.min(MAX_COLUMN + 1)
            );
            if !details.is_empty() {
                line.push_str(&format!("  {}", shown(&details, MAX_SHOWN)));
            }
            if replayed {
                line.push_str(&paint(DIM, "  (replayed)"));
            }
            line.trim_end().to_string()
        }
        Some(ServerFrame::Connected(c)) => {
            let mut line = format!(
                "{time} {} {}",
                paint(CYAN, format!("{:<15}", "CONNECTED")),
                shown(&c.organization_id, MAX_COLUMN)
            );
            if let (Some(seq), Some(epoch)) = (c.seq, &c.epoch) {
                let epoch = shown(epoch, MAX_COLUMN);
                line.push_str(&paint(DIM, format!(" seq={seq} epoch={epoch}")));
            }
            if c.history_truncated == Some(true) {
                line.push_str(&paint(YELLOW, " history truncated"));
            }
            line
        }
        other => format!(
            "{time} {}",
            human::event(raw, other, human::EventStyle::Line).trim_end()
        ),
    }
}

/// Shows one frame: untouched in an `event` record with `--json`, else `line()`.
pub fn show_event(
    reporter: &Reporter,
    raw: &str,
    frame: Option<&ServerFrame>,
    line: impl FnOnce() -> String,
) {
    if reporter.is_json() {
        reporter.event(raw, frame, human::EventStyle::Line);
    } else {
        reporter.say(&line());
    }
}

/// The debug line of `--last N`: where the replay starts.
pub fn last_from(n: u64, seq: u64, since: u64) -> String {
    format!("--last {n}: the server is at seq {seq}; replaying the events after seq {since}")
}

/// The warning for a reconnection to a server that does not number its events.
pub const UNNUMBERED_RECONNECT: &str = "reconnected to a server without sequence numbers: events sent while disconnected may have been missed";

/// A binary frame (a warning with `--lenient`, else the protocol error).
pub fn binary_frame(len: usize) -> String {
    format!("a binary frame of {len} bytes: the protocol sends JSON text frames only")
}

/// The `-v` line for an answered ping.
pub fn pong(round_trip: Duration) -> String {
    format!("pong in {}", ms(round_trip.as_secs_f64() * 1000.0))
}

/// The end-of-run summary, one part per section.
pub fn summary(s: &WatchSummary) -> String {
    let c = &s.check;
    [
        headline(s.outcome, s.reached, c),
        by_type(c),
        items(c),
        unfinished(c),
        durations(c),
        seq(c),
        connections(c),
        sessions(&s.sessions),
        oddities(c),
        expectation(c),
    ]
    .concat()
}

/// The sessions, when there were several: which URL each used, where it resumed,
/// the epoch it announced.
fn sessions(sessions: &[SessionSummary]) -> String {
    if sessions.len() < 2 {
        return String::new();
    }
    let mut out = String::from("  sessions:\n");
    for (i, session) in sessions.iter().enumerate() {
        let from = session
            .since
            .map_or(String::new(), |s| format!("since {s}, "));
        let at = match (session.seq, &session.epoch) {
            (Some(seq), Some(epoch)) => format!("seq {seq} epoch {}, ", shown(epoch, MAX_COLUMN)),
            _ => String::new(),
        };
        out.push_str(&format!(
            "    {}. {} ({from}{at}{})\n",
            i + 1,
            session.url,
            crate::text::count(session.events, "event")
        ));
    }
    out
}

fn headline(outcome: WatchOutcome, reached: Reached, s: &Summary) -> String {
    let verdict = match outcome {
        o if o.is_success() => paint(GREEN, o),
        WatchOutcome::Interrupted | WatchOutcome::Closed => paint(YELLOW, outcome),
        _ => paint(RED, outcome),
    };
    let nothing = match reached {
        Reached::None => Some(NOTHING_RECEIVED),
        Reached::Opened if s.frames == 0 => Some(NO_CONNECTED),
        _ => None,
    };
    if let Some(nothing) = nothing {
        return format!(
            "\n{} {verdict}: {}\n",
            paint(BOLD, "Summary"),
            paint(YELLOW, nothing)
        );
    }
    let mut of_which = Vec::new();
    if s.replayed > 0 {
        of_which.push(format!("{} replayed", s.replayed));
    }
    if s.hidden > 0 {
        of_which.push(format!("{} more hidden by --item/--where", s.hidden));
    }
    let of_which = if of_which.is_empty() {
        String::new()
    } else {
        format!(" ({})", of_which.join(", "))
    };
    format!(
        "\n{} {verdict}: {}{of_which}; {} received\n",
        paint(BOLD, "Summary"),
        crate::text::count(s.events, "event"),
        crate::text::count(s.frames, "frame")
    )
}

/// What the summary says when no socket opened: not a single frame arrived.
pub const NOTHING_RECEIVED: &str = "no frame received";
/// What the summary says when a socket opened but no valid CONNECTED came.
pub const NO_CONNECTED: &str = "the socket opened, but no valid CONNECTED was received";

fn by_type(s: &Summary) -> String {
    if s.by_type.is_empty() {
        return String::new();
    }
    let counts: Vec<String> = s
        .by_type
        .iter()
        .map(|(t, n)| format!("{} {n}", shown(t, MAX_COLUMN)))
        .collect();
    format!("  by type: {}\n", counts.join(", "))
}

fn items(s: &Summary) -> String {
    let items = &s.items;
    if items.is_empty() {
        return String::new();
    }
    // Peer ids: escaped and clamped, so one hostile id cannot size the column.
    let width = items
        .iter()
        .map(|i| shown(&i.pfa_id, MAX_COLUMN).chars().count())
        .max()
        .unwrap_or(0);
    if s.items_omitted == 0 {
        let mut out = format!("  items ({}):\n", items.len());
        for item in items {
            out.push_str(&item_line(item, width));
        }
        return out;
    }
    // Only the first and the last are listed: say so, where they were left out.
    let total = items.len() as u64 + s.items_omitted;
    let half = items.len().div_ceil(2);
    let mut out = format!(
        "  items ({total}; the first {half} and the last {} listed):\n",
        items.len() - half
    );
    for (i, item) in items.iter().enumerate() {
        if i == half {
            out.push_str(&format!(
                "    {}\n",
                paint(
                    DIM,
                    format!(
                        "… {} not listed …",
                        crate::text::count(s.items_omitted, "item")
                    )
                )
            ));
        }
        out.push_str(&item_line(item, width));
    }
    out
}

fn item_line(item: &ItemSummary, width: usize) -> String {
    let duration = item
        .queued_to_terminal_ms
        .map_or(String::new(), |d| format!("  {d} ms queued→terminal"));
    let state = item.state.as_str();
    let state = paint(style_of(state), format!("{:<15}", shown(state, MAX_COLUMN)));
    let pending = if item.terminal {
        String::new()
    } else {
        paint(YELLOW, "  (no terminal event)")
    };
    let mut kept = String::new();
    if let Some(error) = &item.error {
        kept.push_str(&format!("  error: {}", shown(error, MAX_SHOWN)));
    }
    if !item.conflicting_fields.is_empty() {
        let fields: Vec<String> = item
            .conflicting_fields
            .iter()
            .map(|f| shown(f, MAX_COLUMN))
            .collect();
        kept.push_str(&format!(
            "  conflicting fields: {}",
            shown(&fields.join(", "), MAX_SHOWN)
        ));
    }
    let expectation = match item.expectation {
        Some(Status::Satisfied) => format!("  {}", paint(GREEN, "✓")),
        Some(other) => format!("  {}", paint(RED, other)),
        None => String::new(),
    };
    format!(
        "    {:<width$}  {state} after {}{duration}{kept}{pending}{expectation}\n",
        shown(&item.pfa_id, MAX_COLUMN),
        crate::text::count(item.events.len() as u64 + item.events_omitted, "event")
    )
}

fn unfinished(s: &Summary) -> String {
    if s.unfinished.is_empty() {
        return String::new();
    }
    let more = match s.unfinished_omitted {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!(
        "  {} {}{more}\n",
        paint(YELLOW, "no terminal event:"),
        list(&s.unfinished)
    )
}

fn durations(s: &Summary) -> String {
    let mut out = String::new();
    if let Some(d) = &s.queued_to_terminal_ms {
        out.push_str(&format!(
            "  queued→terminal: min {:.0} ms, avg {:.1} ms, max {:.0} ms ({})\n",
            d.min,
            d.avg,
            d.max,
            crate::text::count(d.count, "item")
        ));
    }
    if let (Some(l), Some(source)) = (&s.delivery_latency_ms, &s.latency_source) {
        out.push_str(&format!(
            "  delivery latency: avg {:.2} ms, max {:.2} ms, from {source}\n",
            l.avg, l.max
        ));
    }
    out
}

fn seq(s: &Summary) -> String {
    let Some(seq) = &s.seq else {
        // Only a CONNECTED without seq makes a Part 1 server; with nothing received
        // there is nothing to say.
        return match s.protocol {
            Some(ProtocolPart::Part1) => format!(
                "  {}\n",
                paint(DIM, "seq: none (a Part 1 server): gaps cannot be detected")
            ),
            _ => String::new(),
        };
    };
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
    format!("{}\n", if healthy { line } else { paint(YELLOW, line) })
}

/// What `--fail-on-gap` fails on: seq gaps, duplicates, late (reordered) events and
/// truncated history, in one sentence; `None` when the stream was whole (or had no
/// seq to judge by).
pub fn broken_continuity(s: &Summary) -> Option<String> {
    let seq = s.seq.as_ref()?;
    let parts: Vec<String> = [
        (seq.gaps, "seq gap"),
        (seq.duplicates, "duplicate"),
        (seq.late, "late (reordered) event"),
        (seq.truncations, "truncated history"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| crate::text::count(n, what))
    .collect();
    if parts.is_empty() {
        return None;
    }
    let mut message = format!(
        "the stream was not whole (--fail-on-gap): {}",
        parts.join(", ")
    );
    if seq.missing > 0 {
        message.push_str(&format!(
            "; {} still missing at the end",
            crate::text::count(seq.missing, "event")
        ));
    }
    Some(message)
}

fn connections(s: &Summary) -> String {
    let mut out = String::new();
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
    out
}

fn oddities(s: &Summary) -> String {
    let mut out = String::new();
    if s.malformed > 0 {
        out.push_str(&format!(
            "  {} {}\n",
            paint(RED, "malformed frames:"),
            s.malformed
        ));
    }
    if !s.unknown_types.is_empty() {
        out.push_str(&format!("  unknown types: {}\n", list(&s.unknown_types)));
    }
    out
}

fn expectation(s: &Summary) -> String {
    let Some(e) = &s.expectation else {
        return String::new();
    };
    let status = match e.status {
        Status::Satisfied => paint(GREEN, e.status),
        other => paint(RED, other),
    };
    let scope = if e.per_item { ", per item" } else { "" };
    format!(
        "  expectation ({}{scope}): {} → {status}\n",
        e.mode, e.pattern
    )
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// Peer names, escaped and clamped, comma-separated.
fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| shown(n, MAX_COLUMN))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_serialise_as_today() {
        let all = [
            WatchOutcome::Satisfied,
            WatchOutcome::Failed,
            WatchOutcome::Timeout,
            WatchOutcome::Interrupted,
            WatchOutcome::ProtocolError,
            WatchOutcome::Closed,
            WatchOutcome::GaveUp,
            WatchOutcome::ConnectFailed,
            WatchOutcome::Count,
            WatchOutcome::Duration,
        ];
        for outcome in all {
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{}\"", outcome.as_str()));
            assert_eq!(
                serde_json::from_str::<WatchOutcome>(&json).unwrap(),
                outcome
            );
        }
        assert_eq!(
            serde_json::to_string(&WatchOutcome::ProtocolError).unwrap(),
            "\"protocol-error\""
        );
        assert_eq!(
            serde_json::to_string(&WatchOutcome::GaveUp).unwrap(),
            "\"gave-up\""
        );
    }

    #[test]
    fn several_sessions_are_listed_with_their_url_and_epoch() {
        let session = |url: &str, since, epoch: &str, events| SessionSummary {
            url: url.into(),
            since,
            seq: Some(3),
            epoch: Some(epoch.into()),
            events,
        };
        let one = [session("ws://a/s/o", None, "e1", 3)];
        assert_eq!(sessions(&one), "");
        let two = [
            session("ws://a/s/o", None, "e1", 3),
            session("ws://b/s/o", Some(3), "e\u{1b}]0;x\u{7}2", 1),
        ];
        assert_eq!(
            sessions(&two),
            "  sessions:\n    1. ws://a/s/o (seq 3 epoch e1, 3 events)\n    2. ws://b/s/o (since 3, seq 3 epoch e\\u{1b}]0;x\\u{7}2, 1 event)\n"
        );
    }

    #[test]
    fn disconnects_say_why() {
        assert_eq!(
            reconnecting(
                &Disconnect::of(Some((1001, String::new()))),
                1,
                Some(4),
                None
            ),
            "the server closed the connection (code 1001, reason: -); reconnecting (attempt 1/4)"
        );
        let e = anyhow::anyhow!("refused");
        assert_eq!(
            reconnect_failed(2, None, &e, Duration::from_millis(250), None),
            "reconnect attempt 2 failed: refused; next in 250ms"
        );
        assert_eq!(
            Disconnect::of(None).to_string(),
            "the connection was lost without a close frame"
        );
        assert_eq!(
            Disconnect::of(Some((4000, "bye".into()))).frame(),
            Some((4000, "bye".into()))
        );
        assert_eq!(Disconnect::PingUnanswered.frame(), None);
    }
}
