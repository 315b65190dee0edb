//! The records of `load`, and its text for people: the banner, the notes, the
//! progress line, the summary table and the threshold lines. (The HTML report is
//! [`super::html`].)

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::human::{self, paint};
use crate::load::threshold::Verdict;
use crate::load::{ErrorKind, LoadSummary, Percentiles, Progress};

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
        // A completeness that could not be measured passes only where no loss can
        // hide behind it (a server that numbers nothing; see `Unmeasured`).
        let complete = allow_loss
            || match summary.measured() {
                Ok(c) => c.is_clean(),
                Err(why) => !why.may_hide_loss(),
            };
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
        "open {}/{} | delivered {} | p99 {} | errors {}",
        p.open,
        p.requested,
        p.delivered,
        // No frame yet: nothing measured, not 0 ms.
        if p.delivered == 0 {
            "-".to_string()
        } else {
            format!("{:.2} ms", p.p99_ms)
        },
        p.errors
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
    if p.count == 0 {
        // Zeros would read as measured.
        return "none measured".into();
    }
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
            match s.latency_source {
                Some(source) if s.latency_ms.count > 0 => format!(
                    "{}  ({} samples, from {})",
                    percentiles(&s.latency_ms),
                    s.latency_ms.count,
                    source.as_str()
                ),
                _ if s.frames_delivered == 0 => "none measured (no frame received)".into(),
                _ => "none measured (no frame carried publishedAtUs or a timestamp)".into(),
            },
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
    let c = match s.measured() {
        Ok(c) => c,
        Err(why) if why.may_hide_loss() => return ("completeness", why.text().into(), Mark::Bad),
        Err(why) => return ("completeness", why.text().into(), Mark::Plain),
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
    let c = match s.measured() {
        Err(why) if why.may_hide_loss() => {
            return Some(format!(
                "completeness {}, so a loss cannot be ruled out; --allow-loss accepts that",
                why.text()
            ));
        }
        Err(_) => return None,
        Ok(c) if c.is_clean() => return None,
        Ok(c) => c,
    };
    Some(format!(
        "{} of {} deliveries missing, {} duplicated, {} reordered ({} of {} subscribers complete); --allow-loss accepts that",
        c.missing, c.expected, c.duplicated, c.reordered, c.complete_subscribers, c.subscribers
    ))
}

/// What the page and the terminal say about a run besides its figures: how it was
/// asked for.
#[derive(Clone, Debug, Default)]
pub struct RunFacts {
    pub version: String,
    /// The command line, secrets masked ([`masked_command_line`]).
    pub command: String,
    /// The event source and its rate, in words ([`source_text`]).
    pub source: String,
}

/// The command line as typed, with secrets masked: the value of `--token`, of
/// headers that carry credentials, and the secrets inside URLs (passwords, token
/// query parameters; see `client::redact_text`).
pub fn masked_command_line(args: &[String]) -> String {
    let secret_header = |value: &str| {
        let name = value
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        ["auth", "cookie", "token", "key", "secret", "session"]
            .iter()
            .any(|w| name.contains(w))
    };
    let mut shown = Vec::with_capacity(args.len());
    let mut next_is = None::<&str>;
    for arg in args {
        let masked = match next_is.take() {
            Some("--token") => "***".to_string(),
            Some("-H" | "--header") if secret_header(arg) => {
                format!("{}: ***", arg.split(':').next().unwrap_or("").trim())
            }
            _ if arg.starts_with("--token=") => "--token=***".to_string(),
            _ if arg.starts_with("--header=") && secret_header(&arg[9..]) => {
                format!("--header={}: ***", arg[9..].split(':').next().unwrap_or(""))
            }
            _ if arg.contains("://") => crate::client::redact_text(arg),
            _ => arg.clone(),
        };
        if matches!(arg.as_str(), "--token" | "-H" | "--header") {
            next_is = Some(arg.as_str());
        }
        shown.push(crate::text::escape(&masked).into_owned());
    }
    shown
        .iter()
        .map(|a| {
            if a.is_empty() || a.contains([' ', '\'', '"', '<', '>', '&', '|', ';']) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The event source in words: `publish, 200 events per organization at 50/s`.
pub fn source_text(source: &crate::load::Source) -> String {
    use crate::load::Source;
    match *source {
        Source::Publish { events, rate } if rate > 0.0 => {
            format!("publish (POST /api/ws/publish), {events} events per organization at {rate}/s")
        }
        Source::Publish { events, .. } => format!(
            "publish (POST /api/ws/publish), {events} events per organization, as fast as possible"
        ),
        Source::Queue { items } => format!(
            "queue (POST /api/pems/write-sync), {items} items per organization (3 events each)"
        ),
        Source::Passive => "passive: events produced by someone else".into(),
    }
}

/// The run's verdict in one word or two, and whether it is good.
pub fn verdict_word(report: &LoadReport, interrupted: bool) -> (&'static str, bool) {
    let s = &report.summary;
    if interrupted {
        ("interrupted", false)
    } else if s.connections_opened == 0 {
        ("no connection opened", false)
    } else if report.thresholds.iter().any(|v| !v.ok) {
        ("failed thresholds", false)
    } else if !report.ok && s.loss_not_ruled_out() {
        ("loss not ruled out", false)
    } else if !report.ok {
        ("loss", false)
    } else {
        ("passed", true)
    }
}

/// A `--baseline` file: an earlier run's summary, as `--summary-file` writes it (the
/// summary object), as one `--json` summary record, or a whole `--json` output (its
/// last summary record).
pub fn parse_baseline(text: &str) -> Result<LoadReport, String> {
    let from = |v: serde_json::Value| -> Result<LoadReport, String> {
        let data = match v.get("type").and_then(|t| t.as_str()) {
            Some("summary") => v.get("data").cloned().unwrap_or_default(),
            Some(other) => return Err(format!("a {other:?} record, not a summary")),
            None => v,
        };
        serde_json::from_value(data).map_err(|e| format!("not a load summary ({e})"))
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => from(v),
        Err(_) => {
            let last = text
                .lines()
                .rev()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v.get("type").and_then(|t| t.as_str()) == Some("summary"))
                .ok_or("neither JSON nor NDJSON with a summary record")?;
            from(last)
        }
    }
}

/// Which way is better for a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// How a figure moved since the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Improved,
    Regressed,
    Same,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Improved => "improved",
            Direction::Regressed => "regressed",
            Direction::Same => "same",
        }
    }
}

/// One figure of this run next to the baseline's.
#[derive(Clone, Debug, PartialEq)]
pub struct Delta {
    pub label: &'static str,
    pub unit: &'static str,
    pub before: f64,
    pub now: f64,
    pub better: Better,
}

impl Delta {
    pub fn change(&self) -> f64 {
        self.now - self.before
    }

    /// The change in percent of the baseline (`None` from zero).
    pub fn percent(&self) -> Option<f64> {
        (self.before != 0.0).then(|| self.change() * 100.0 / self.before.abs())
    }

    /// Same when equal at the shown precision (three decimals).
    pub fn direction(&self) -> Direction {
        let change = (self.change() * 1000.0).round();
        match (change, self.better) {
            (0.0, _) => Direction::Same,
            (c, Better::Lower) if c < 0.0 => Direction::Improved,
            (c, Better::Higher) if c > 0.0 => Direction::Improved,
            _ => Direction::Regressed,
        }
    }
}

/// Every figure both runs have, this run against `before`.
pub fn compare(now: &LoadSummary, before: &LoadSummary) -> Vec<Delta> {
    use Better::{Higher, Lower};
    let d = |label, unit, n: f64, b: f64, better| Delta {
        label,
        unit,
        before: b,
        now: n,
        better,
    };
    let mut rows = vec![
        d(
            "connections opened",
            "",
            now.connections_opened as f64,
            before.connections_opened as f64,
            Higher,
        ),
        d(
            "connections failed",
            "",
            now.connections_failed as f64,
            before.connections_failed as f64,
            Lower,
        ),
        d(
            "connect rate",
            " /s",
            now.connect_rate,
            before.connect_rate,
            Higher,
        ),
        d(
            "connect p50",
            " ms",
            now.connect_ms.p50,
            before.connect_ms.p50,
            Lower,
        ),
        d(
            "connect p99",
            " ms",
            now.connect_ms.p99,
            before.connect_ms.p99,
            Lower,
        ),
        d(
            "time to CONNECTED p99",
            " ms",
            now.connected_ms.p99,
            before.connected_ms.p99,
            Lower,
        ),
        d(
            "latency p50",
            " ms",
            now.latency_ms.p50,
            before.latency_ms.p50,
            Lower,
        ),
        d(
            "latency p90",
            " ms",
            now.latency_ms.p90,
            before.latency_ms.p90,
            Lower,
        ),
        d(
            "latency p99",
            " ms",
            now.latency_ms.p99,
            before.latency_ms.p99,
            Lower,
        ),
        d(
            "latency max",
            " ms",
            now.latency_ms.max,
            before.latency_ms.max,
            Lower,
        ),
        d(
            "latency mean",
            " ms",
            now.latency_ms.mean,
            before.latency_ms.mean,
            Lower,
        ),
        d(
            "frames delivered",
            "",
            now.frames_delivered as f64,
            before.frames_delivered as f64,
            Higher,
        ),
        d(
            "delivery rate",
            " frames/s",
            now.delivered_per_sec,
            before.delivered_per_sec,
            Higher,
        ),
        d("errors", "", errors_total(now), errors_total(before), Lower),
    ];
    if let (Some(n), Some(b)) = (&now.completeness, &before.completeness) {
        rows.push(d(
            "missing deliveries",
            "",
            n.missing as f64,
            b.missing as f64,
            Lower,
        ));
    }
    if let (Some(n), Some(b)) = (now.client_cpu_us_per_frame, before.client_cpu_us_per_frame) {
        rows.push(d("client CPU per frame", " µs", n, b, Lower));
    }
    rows
}

fn errors_total(s: &LoadSummary) -> f64 {
    (s.connections_failed + s.errors.values().sum::<u64>()) as f64
}

/// `+1.180 ms (+28.6 %)`.
pub fn change_text(d: &Delta) -> String {
    let pct = d
        .percent()
        .map_or(String::new(), |p| format!(" ({p:+.1} %)"));
    format!("{:+.3}{}{pct}", d.change(), d.unit)
}

/// The comparison with the baseline, for the terminal.
pub fn comparison(name: &str, deltas: &[Delta]) -> String {
    let mut text = format!(
        "\n{} {}\n",
        paint(human::BOLD, "Compared with"),
        crate::text::escape(name)
    );
    for d in deltas {
        let direction = d.direction();
        let word = match direction {
            Direction::Improved => paint(human::GREEN, direction.as_str()),
            Direction::Regressed => paint(human::RED, direction.as_str()),
            Direction::Same => direction.as_str().to_string(),
        };
        text.push_str(&format!(
            "  {:<22} {:>12.3} → {:<12.3} {:<26} {word}\n",
            d.label,
            d.before,
            d.now,
            change_text(d),
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Unmeasured;

    #[test]
    fn an_unreadable_final_seq_fails_unless_loss_is_allowed_and_says_so() {
        let summary = LoadSummary {
            connections_opened: 2,
            unmeasured: Some(Unmeasured::FinalSeqUnknown),
            ..Default::default()
        };
        let failed = LoadReport::finished(summary.clone(), Vec::new(), false);
        assert!(!failed.ok);
        assert_eq!(verdict_word(&failed, false), ("loss not ruled out", false));
        assert!(
            loss(&failed.summary)
                .unwrap()
                .contains("final seq could not be read")
        );
        let (_, line, mark) = completeness(&failed.summary);
        assert!(line.contains("final seq could not be read") && mark == Mark::Bad);
        assert!(LoadReport::finished(summary, Vec::new(), true).ok);
        let no_seq = LoadSummary {
            connections_opened: 2,
            unmeasured: Some(Unmeasured::NoSeq),
            ..Default::default()
        };
        let passed = LoadReport::finished(no_seq, Vec::new(), false);
        assert!(passed.ok && loss(&passed.summary).is_none());
        assert_eq!(verdict_word(&passed, false), ("passed", true));
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_lines_hide_secrets() {
        let line = masked_command_line(&strings(&[
            "syncprobe",
            "load",
            "--token",
            "s3cr3t",
            "--token=abc",
            "-H",
            "Authorization: Bearer xyz",
            "-H",
            "X-Trace: 1",
            "--url",
            "wss://u:pw@h/?token=t0k",
        ]));
        for secret in ["s3cr3t", "abc", "xyz", "pw", "t0k"] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
        assert!(line.contains("'X-Trace: 1'"), "{line}");
        assert!(
            line.ends_with("--url 'wss://u:***@h/?token=***'")
                || line.ends_with("--url wss://u:***@h/?token=***"),
            "{line}"
        );
        assert!(
            line.starts_with("syncprobe load --token *** --token=***"),
            "{line}"
        );
    }

    #[test]
    fn deltas_know_which_way_is_better() {
        let before = LoadSummary {
            delivered_per_sec: 100.0,
            latency_ms: Percentiles {
                p99: 10.0,
                ..Default::default()
            },
            ..Default::default()
        };
        let now = LoadSummary {
            delivered_per_sec: 150.0,
            latency_ms: Percentiles {
                p99: 12.5,
                ..Default::default()
            },
            ..Default::default()
        };
        let deltas = compare(&now, &before);
        let of = |label| deltas.iter().find(|d| d.label == label).unwrap();
        assert_eq!(of("delivery rate").direction(), Direction::Improved);
        assert_eq!(of("latency p99").direction(), Direction::Regressed);
        assert_eq!(change_text(of("latency p99")), "+2.500 ms (+25.0 %)");
        assert_eq!(of("errors").direction(), Direction::Same);
        assert_eq!(of("errors").percent(), None);
    }

    #[test]
    fn baselines_are_load_summaries_in_any_of_three_shapes() {
        let report = LoadReport::finished(LoadSummary::default(), vec![], false);
        let object = serde_json::to_string(&report).unwrap();
        assert!(parse_baseline(&object).is_ok());
        let record = format!(r#"{{"type":"summary","data":{object}}}"#);
        assert!(parse_baseline(&record).is_ok());
        let ndjson = format!("{{\"type\":\"progress\",\"data\":{{}}}}\n{record}\n");
        assert!(parse_baseline(&ndjson).is_ok());
        assert!(
            parse_baseline(r#"{"ok":true}"#)
                .unwrap_err()
                .contains("not a load summary")
        );
        assert!(parse_baseline("hello").is_err());
        assert!(parse_baseline(r#"{"type":"open","data":{}}"#).is_err());
    }
}
