//! The records of `doctor` and their renderings: the aligned list of layers with
//! an httpstat-style waterfall of their durations (coloured by status), the
//! `summary` record, and the Markdown report for a ticket (`--report FILE.md`).
//! Everything shown has been through the run's [`Redactor`] already.

use serde::{Deserialize, Serialize};

use super::human::{BOLD, CYAN, DIM, GREEN, RED, Style, YELLOW, paint};
use crate::diagnose::{Diagnosis, Layer, Status};

/// The `summary` record of `doctor`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DoctorSummary {
    /// No layer failed (warnings allowed).
    pub ok: bool,
    pub url: String,
    pub organization_id: String,
    /// The first failed layer, which decides the exit code.
    pub failed: Option<String>,
    pub exit_code: i32,
    pub passed: usize,
    pub warned: usize,
    pub skipped: usize,
    pub duration_ms: f64,
}

impl DoctorSummary {
    pub fn of(diagnosis: &Diagnosis, org: &str) -> DoctorSummary {
        let count = |s: Status| diagnosis.layers.iter().filter(|l| l.status == s).count();
        DoctorSummary {
            ok: diagnosis.first_failure().is_none(),
            url: diagnosis.url.clone(),
            organization_id: org.to_string(),
            failed: diagnosis.first_failure().map(|l| l.name.to_string()),
            exit_code: diagnosis.exit().code(),
            passed: count(Status::Pass),
            warned: count(Status::Warn),
            skipped: count(Status::Skip),
            duration_ms: diagnosis.took.as_secs_f64() * 1000.0,
        }
    }
}

fn style(status: Status) -> Style {
    match status {
        Status::Pass => GREEN,
        Status::Warn => YELLOW,
        Status::Fail => RED,
        Status::Skip => DIM,
    }
}

fn ms_text(ms: Option<f64>) -> String {
    ms.map_or(String::new(), |ms| format!("{ms:.1} ms"))
}

/// `Diagnosing URL`.
pub fn banner(url: &str) -> String {
    format!("Diagnosing {}\n", paint(BOLD, url))
}

/// The aligned list: name, status, duration, what was found, and the hint below.
pub fn layers(layers: &[Layer]) -> String {
    let mut text = String::new();
    for layer in layers {
        text.push_str(&format!(
            "  {:<10} {} {:>10}  {}\n",
            layer.name,
            paint(style(layer.status), format!("{:<4}", layer.status.name())),
            ms_text(layer.ms),
            layer.detail
        ));
        if let Some(hint) = &layer.hint {
            text.push_str(&format!("  {:<10} {} {hint}\n", "", paint(CYAN, "hint:")));
        }
    }
    text
}

/// The layers that took time, as httpstat draws curl's phases: one column per
/// layer with its duration, then where each ends from the start.
pub fn waterfall(layers: &[Layer]) -> String {
    let timed: Vec<&Layer> = layers.iter().filter(|l| l.ms.is_some()).collect();
    if timed.is_empty() {
        return String::new();
    }
    let cells: Vec<(String, String, usize, Status)> = timed
        .iter()
        .map(|l| {
            let value = ms_text(l.ms);
            let width = value.len().max(l.name.len()) + 2;
            (l.name.to_string(), value, width, l.status)
        })
        .collect();
    let mut names = String::from(" ");
    let mut bars = String::from("[");
    let mut ticks = String::from(" ");
    for (i, (name, value, width, status)) in cells.iter().enumerate() {
        names.push_str(&format!("{name:^width$}", width = width));
        bars.push_str(&paint(
            style(*status),
            format!("{value:^width$}", width = width),
        ));
        bars.push(if i + 1 == cells.len() { ']' } else { '|' });
        names.push(' ');
        ticks.push_str(&" ".repeat(*width));
        ticks.push('|');
    }
    let mut text = format!("\n{}\n{bars}\n{ticks}\n", names.trim_end());
    let mut offset = 0;
    let mut at = 0.0;
    for (name, _, width, _) in &cells {
        offset += width + 1;
        at += timed
            .iter()
            .find(|l| l.name == name)
            .and_then(|l| l.ms)
            .unwrap_or(0.0);
        text.push_str(&format!(
            "{}{}\n",
            " ".repeat(offset.saturating_sub(0)),
            paint(DIM, format!("{name}: {at:.1} ms"))
        ));
    }
    text
}

/// The last line: the verdict.
pub fn verdict(summary: &DoctorSummary) -> String {
    let warned = match summary.warned {
        0 => String::new(),
        n => format!(", {}", crate::text::count(n as u64, "warning")),
    };
    match &summary.failed {
        None => format!(
            "\n{} no layer failed{warned}: {} in {:.0} ms\n",
            paint(GREEN, "ok:"),
            summary.url,
            summary.duration_ms
        ),
        Some(layer) => format!(
            "\n{} {layer} failed (exit {}); {} skipped{warned}\n",
            paint(RED, "fail:"),
            summary.exit_code,
            crate::text::count(summary.skipped as u64, "layer")
        ),
    }
}

/// What `--report` needs besides the diagnosis.
pub struct ReportContext<'a> {
    pub command_line: &'a str,
    pub date: &'a str,
    pub org: &'a str,
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown report for a ticket: version, command line, date, the layer
/// table, the timeline and the hints.
pub fn markdown(diagnosis: &Diagnosis, summary: &DoctorSummary, cx: &ReportContext<'_>) -> String {
    let mut md = format!(
        "# syncprobe doctor: {}\n\n- syncprobe {}\n- command: `{}`\n- date: {}\n- socket: `{}`\n- verdict: {}\n\n",
        cell(cx.org),
        env!("CARGO_PKG_VERSION"),
        cx.command_line.replace('`', "'"),
        cx.date,
        summary.url,
        match &summary.failed {
            None => "no layer failed (exit 0)".to_string(),
            Some(layer) => format!("**{layer} failed** (exit {})", summary.exit_code),
        }
    );
    md.push_str("## Layers\n\n| layer | status | ms | detail |\n|---|---|---:|---|\n");
    for l in &diagnosis.layers {
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            l.name,
            l.status.name(),
            l.ms.map_or(String::new(), |ms| format!("{ms:.1}")),
            cell(&l.detail)
        ));
    }
    md.push_str("\n## Timeline\n\n```text\n");
    let mut at = 0.0;
    for l in diagnosis.layers.iter().filter(|l| l.ms.is_some()) {
        let ms = l.ms.unwrap_or(0.0);
        md.push_str(&format!(
            "{at:>10.1} ms  +{ms:>9.1} ms  {:<10} {}\n",
            l.name,
            l.status.name()
        ));
        at += ms;
    }
    md.push_str(&format!("{at:>10.1} ms  total\n```\n\n## Hints\n\n"));
    let hints: Vec<&Layer> = diagnosis
        .layers
        .iter()
        .filter(|l| l.hint.is_some())
        .collect();
    if hints.is_empty() {
        md.push_str("None.\n");
    }
    for l in hints {
        md.push_str(&format!(
            "- **{}**: {}\n",
            l.name,
            l.hint.as_deref().unwrap_or("")
        ));
    }
    md
}
