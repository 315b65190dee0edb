//! The records of `load`, and its text for people: the banner, the notes, the
//! progress line, the summary table and the threshold lines. (The HTML report is
//! [`super::html`].)

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::human::{self, paint};
use crate::load::threshold::Verdict;
use crate::load::{ErrorKind, LatencySource, LoadSummary, Percentiles, Progress};

/// The `summary` record of `load`.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct LoadReport {
    pub ok: bool,
    #[serde(flatten)]
    pub summary: LoadSummary,
    pub thresholds: Vec<Verdict>,
}

impl LoadReport {
    /// A finished run: it passed when a connection opened, every threshold held,
    /// and (unless loss is allowed) every subscriber got every event exactly once.
    pub fn finished(
        summary: LoadSummary,
        thresholds: Vec<Verdict>,
        allow_loss: bool,
    ) -> LoadReport {
        let complete = allow_loss || summary.completeness.as_ref().is_none_or(|c| c.is_clean());
        LoadReport {
            ok: thresholds.iter().all(|v| v.ok) && summary.connections_opened > 0 && complete,
            summary,
            thresholds,
        }
    }

    /// A run stopped by Ctrl-C: not passed, thresholds not evaluated.
    pub fn interrupted(summary: LoadSummary) -> LoadReport {
        LoadReport {
            ok: false,
            summary,
            thresholds: Vec::new(),
        }
    }
}

/// The first line of a run.
pub fn banner(url: &str, connections: usize, organizations: usize) -> String {
    use crate::text::count;
    format!(
        "Loading {url} with {} over {}\n",
        count(connections as u64, "connection"),
        count(organizations as u64, "organization")
    )
}

/// The note of a run against the bundled server.
pub fn bundled(addr: SocketAddr) -> String {
    format!(
        "no --url given: loading the bundled server, started in this process on ws://{addr} (figures include its CPU; run `syncprobe serve` separately to measure a server alone)"
    )
}

pub fn report_written(path: &Path) -> String {
    format!("report written to {}", path.display())
}

/// The live progress line.
pub fn progress_line(p: &Progress) -> String {
    format!(
        "open {}/{} | delivered {} | p99 {:.2} ms | errors {}",
        p.open, p.requested, p.delivered, p.p99_ms, p.errors
    )
}

/// `kind: count, kind: count`, plain.
pub fn errors_list(errors: &BTreeMap<ErrorKind, u64>) -> String {
    errors
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn percentiles(p: &Percentiles) -> String {
    format!(
        "p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3} ms",
        p.p50, p.p90, p.p99, p.max
    )
}

/// `  ✓ p99<50ms holds: …` or `  ✗ … breached: …`.
pub fn verdict_line(v: &Verdict) -> String {
    let mark = if v.ok {
        paint(human::GREEN, "✓")
    } else {
        paint(human::RED, "✗")
    };
    format!("  {mark} {}\n", v.message)
}

/// How a figure is shown: as it is, or marked good or bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Plain,
    Good,
    Bad,
}

/// The figures of a run, label and plain text, in the order both the terminal
/// summary and the HTML report show them.
pub fn figures(s: &LoadSummary) -> Vec<(&'static str, String, Mark)> {
    let plain = |k, v| (k, v, Mark::Plain);
    let mut rows = vec![
        plain(
            "connections",
            format!(
                "{} opened / {} requested, {} failed, {}",
                s.connections_opened,
                s.connections_requested,
                s.connections_failed,
                crate::text::count(s.organizations, "organization")
            ),
        ),
        plain(
            "connect rate",
            format!("{:.0} connections/s", s.connect_rate),
        ),
        plain("connect time", percentiles(&s.connect_ms)),
        plain("time to CONNECTED", percentiles(&s.connected_ms)),
        plain(
            "fan-out latency",
            format!(
                "{}  ({} samples, from {})",
                percentiles(&s.latency_ms),
                s.latency_ms.count,
                s.latency_source.map_or("-", LatencySource::as_str)
            ),
        ),
        plain(
            "delivered",
            format!(
                "{} frames, {:.0} frames/s",
                s.frames_delivered, s.delivered_per_sec
            ),
        ),
        completeness(s),
        if s.errors.is_empty() {
            plain("errors", "none".into())
        } else {
            ("errors", errors_list(&s.errors), Mark::Bad)
        },
    ];
    if let Some(cpu) = s.client_cpu_us_per_frame {
        rows.push(plain(
            "client CPU",
            format!("{cpu:.3} µs per delivered frame"),
        ));
    }
    rows
}

/// The summary table, then the threshold lines.
pub fn summary(report: &LoadReport) -> String {
    let mut text = format!("\n{}\n", paint(human::BOLD, "Load summary"));
    for (label, value, mark) in figures(&report.summary) {
        let value = match mark {
            Mark::Plain => value,
            Mark::Good => paint(human::GREEN, value),
            Mark::Bad => paint(human::RED, value),
        };
        text.push_str(&format!("  {label:<20} {value}\n"));
    }
    for v in &report.thresholds {
        text.push_str(&verdict_line(v));
    }
    text
}

fn completeness(s: &LoadSummary) -> (&'static str, String, Mark) {
    let Some(c) = &s.completeness else {
        return (
            "completeness",
            "not measurable: the server sends no seq".into(),
            Mark::Plain,
        );
    };
    let line = format!(
        "{} missing, {} duplicated, {} reordered of {} deliveries ({} / {} subscribers complete)",
        c.missing, c.duplicated, c.reordered, c.expected, c.complete_subscribers, c.subscribers
    );
    let mark = if c.is_clean() { Mark::Good } else { Mark::Bad };
    ("completeness", line, mark)
}

/// Why an incomplete run fails, or `None` when nothing was lost.
pub fn loss(s: &LoadSummary) -> Option<String> {
    let c = s.completeness.as_ref().filter(|c| !c.is_clean())?;
    Some(format!(
        "{} of {} deliveries missing, {} duplicated, {} reordered ({} of {} subscribers complete); --allow-loss accepts that",
        c.missing, c.expected, c.duplicated, c.reordered, c.complete_subscribers, c.subscribers
    ))
}
