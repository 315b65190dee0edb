//! The records of `enqueue` and their text, and how a follow's events are shown
//! (`enqueue --wait` and `smoke`).

use serde::{Deserialize, Serialize};

use super::Reporter;
use super::human::{self, DIM, GREEN, RED, YELLOW, paint};
use crate::follow::Seen;
use crate::lifecycle::ItemTrace;
use crate::protocol::{EventType, QueuedItem, Timestamp};

/// The `summary` record of `enqueue`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnqueueSummary {
    pub ok: bool,
    pub organization_id: String,
    pub job_id: Option<String>,
    pub queued_count: u64,
    pub message: Option<String>,
    /// The queued items as the server named them (`id`, `pfaId`).
    pub queued: Vec<QueuedItem>,
    /// With `--wait`: every item's events and timings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemTrace>,
}

/// Shows what a follow hands on: our items' events as lines, findings as warnings.
pub fn seen(reporter: &Reporter, seen: Seen<'_>) {
    match seen {
        Seen::Event { raw, frame } => reporter.event(raw, frame, human::EventStyle::Line),
        Seen::Finding(finding) => reporter.warn(&finding.message()),
    }
}

/// The summary as text: what was queued, then each followed item's lifecycle.
/// `estimated` is the answer's `estimatedCompletionTime`.
pub fn summary(s: &EnqueueSummary, estimated: Option<Timestamp>) -> String {
    let mut text = match &s.message {
        Some(message) if s.queued_count == 0 => {
            format!("{} {message}\n", paint(YELLOW, "nothing queued:"))
        }
        _ => format!(
            "Queued {} for {} (job {}){}\n",
            plural(s.queued_count, "item"),
            s.organization_id,
            s.job_id.as_deref().unwrap_or("-"),
            estimated.map_or(String::new(), |t| format!(", estimated completion {t}"))
        ),
    };
    for item in &s.queued {
        text.push_str(&format!("  {:<10} {}\n", item.id, item.pfa_id));
    }
    for trace in &s.items {
        text.push_str(&trace_line(trace));
    }
    text
}

/// One followed item: its events, coloured by outcome, and when they arrived.
fn trace_line(trace: &ItemTrace) -> String {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("+{v:.1} ms"));
    let style = match trace.outcome {
        Some(EventType::Success) => GREEN,
        Some(EventType::Conflict) => YELLOW,
        _ => RED,
    };
    format!(
        "  {:<12} {}  queued {}, processing {}, terminal {}  {}\n",
        trace.pfa_id,
        paint(style, trace.events_text(" → ")),
        ms(trace.queued_ms),
        ms(trace.processing_ms),
        ms(trace.terminal_ms),
        paint(DIM, &trace.details)
    )
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
