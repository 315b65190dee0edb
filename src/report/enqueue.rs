//! The records of `enqueue` and their text, and how a follow's events are shown
//! (`enqueue --wait` and `smoke`).
//!
//! Output follows cause and effect: the answer to the POST (the `queued` record, the
//! "Queued …" line) comes before the events of the items it queued, and the summary
//! last. With `-q` the summary is one line, the verdict, and nothing else is shown.
//! No line claims a queue that was not answered.

use serde::{Deserialize, Serialize};

use super::human::{self, DIM, GREEN, RED, YELLOW, paint};
use super::json::Record;
use super::{Reporter, Verbosity};
use crate::follow::Seen;
use crate::lifecycle::ItemTrace;
use crate::protocol::{EventType, QueuedItem, Timestamp, WriteSyncResponse};
use crate::text::{MAX_COLUMN, MAX_SHOWN, shown};

/// How an `enqueue` ended, as the summary's `outcome` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnqueueOutcome {
    /// The POST was answered (without `--wait`).
    Queued,
    /// `--wait`: every queued item reached its terminal event (as `--expect-outcome` asked).
    Finished,
    /// `--wait`: every item ended, not all with `--expect-outcome`.
    Failed,
    /// `--timeout` ran out.
    Timeout,
    /// Ctrl-C (or SIGTERM).
    Interrupted,
    /// Connecting, the POST or the event stream failed.
    Error,
}

/// The `summary` record of `enqueue`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnqueueSummary {
    pub ok: bool,
    pub outcome: EnqueueOutcome,
    pub organization_id: String,
    /// The REST base of the instance used (secrets masked): the first URL that
    /// answered; with `--wait`, its socket too.
    pub url: String,
    /// The URLs tried before it (several `--url`), and why they did not answer.
    pub failed: Vec<super::connect::UrlFailure>,
    /// Whether the POST was sent (with `--wait`, not before the socket was ready).
    pub posted: bool,
    pub job_id: Option<String>,
    /// `null` when no answer came: then nothing is known to be queued.
    pub queued_count: Option<u64>,
    pub message: Option<String>,
    /// The queued items as the server named them (`id`, `pfaId`).
    pub queued: Vec<QueuedItem>,
    /// With `--wait`: every item's events and timings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemTrace>,
}

/// The `queued` record: the answer to the POST, as it came (before the events it caused).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    pub organization_id: String,
    pub job_id: Option<String>,
    pub queued_count: u64,
    pub message: Option<String>,
    pub queued: Vec<QueuedItem>,
    /// From sending the POST to its answer.
    pub answered_ms: f64,
}

/// Shows what a follow of `enqueue --wait` hands on: the answer (record or lines),
/// our items' events, findings as warnings (not with `-q`).
pub fn seen(reporter: &Reporter, org: &str, seen: Seen<'_>) {
    match seen {
        Seen::Answered { response, ms } => answered(reporter, org, response, ms),
        other => shown_events(reporter, other),
    }
}

/// Events and findings of a follow (`enqueue --wait`, `smoke`); the answer is each
/// command's own business.
pub fn shown_events(reporter: &Reporter, seen: Seen<'_>) {
    match seen {
        Seen::Answered { .. } => {}
        Seen::Event { raw, frame } => reporter.event(raw, frame, human::EventStyle::Line),
        Seen::Finding(finding) => reporter.warn(&finding.message()),
    }
}

/// The answer to the POST, when it comes: a `queued` record, or the "Queued …" line
/// and the items (not with `-q`).
pub fn answered(reporter: &Reporter, org: &str, response: &WriteSyncResponse, ms: f64) {
    let queued = Queued {
        organization_id: org.to_string(),
        job_id: response.job_id.clone(),
        queued_count: response.queued_count,
        message: response.message.clone(),
        queued: response.items.clone().unwrap_or_default(),
        answered_ms: ms,
    };
    if reporter.is_json() {
        reporter.record(&Record::Queued(&queued));
    } else if reporter.verbosity() > Verbosity::Quiet {
        let mut text = queued_line(
            org,
            &queued.job_id,
            queued.queued_count,
            &queued.message,
            response.estimated_completion_time,
        );
        text.push_str(&queued_items(&queued.queued));
        reporter.write_out(&text);
    }
}

/// The summary as text. Without `--wait`: what was queued. With it: each followed
/// item's lifecycle, then the verdict. With `-q`: the verdict line alone.
/// `estimated` is the answer's `estimatedCompletionTime`.
pub fn summary(s: &EnqueueSummary, estimated: Option<Timestamp>, verbosity: Verbosity) -> String {
    let mut verdict = verdict(s, estimated);
    if !s.failed.is_empty() {
        verdict.push_str(&super::connect::used_after(&s.url, &s.failed));
    }
    if verbosity == Verbosity::Quiet {
        return verdict;
    }
    if s.outcome == EnqueueOutcome::Queued {
        return format!("{verdict}{}", queued_items(&s.queued));
    }
    let mut text: String = s.items.iter().map(trace_line).collect();
    text.push_str(&verdict);
    text
}

/// One line: what happened, and nothing claimed that did not.
fn verdict(s: &EnqueueSummary, estimated: Option<Timestamp>) -> String {
    let Some(queued) = s.queued_count else {
        let what = if s.posted {
            "no answer to POST /api/pems/write-sync: nothing is known to be queued"
        } else {
            "nothing was posted (the socket was not ready)"
        };
        return format!("{} {what}\n", paint(RED, format!("{}:", ending(s.outcome))));
    };
    let line = queued_line(&s.organization_id, &s.job_id, queued, &s.message, estimated);
    if s.outcome == EnqueueOutcome::Queued {
        return line;
    }
    let job = shown(s.job_id.as_deref().unwrap_or("-"), MAX_COLUMN);
    let (style, head) = match s.outcome {
        EnqueueOutcome::Finished => (GREEN, "followed".to_string()),
        EnqueueOutcome::Failed => (RED, "FAILED".to_string()),
        other => (RED, ending(other).to_string()),
    };
    if queued == 0 {
        // The answer's own line was shown when it came; the verdict does not repeat it.
        return format!("{}: nothing was queued (job {job})\n", paint(style, head));
    }
    let ended = s.items.iter().filter(|t| t.outcome.is_some()).count();
    let counts = outcome_counts(&s.items);
    format!(
        "{}: {ended} of {} ended (job {job}){counts}\n",
        paint(style, head),
        crate::text::count(queued, "item"),
    )
}

/// The word for an end that is not a verdict on the items.
fn ending(outcome: EnqueueOutcome) -> &'static str {
    match outcome {
        EnqueueOutcome::Timeout => "timed out",
        EnqueueOutcome::Interrupted => "interrupted",
        EnqueueOutcome::Error => "failed",
        EnqueueOutcome::Queued | EnqueueOutcome::Finished => "done",
        EnqueueOutcome::Failed => "FAILED",
    }
}

/// `: SYNC_SUCCESS 2, SYNC_CONFLICT 1` (terminal outcomes, in order of first arrival).
fn outcome_counts(items: &[ItemTrace]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for outcome in items.iter().filter_map(|t| t.outcome.as_ref()) {
        match counts
            .iter_mut()
            .find(|(name, _)| *name == outcome.as_str())
        {
            Some((_, n)) => *n += 1,
            None => counts.push((outcome.as_str(), 1)),
        }
    }
    if counts.is_empty() {
        return String::new();
    }
    let list: Vec<String> = counts
        .iter()
        .map(|(name, n)| format!("{} {n}", shown(name, MAX_COLUMN)))
        .collect();
    format!(": {}", list.join(", "))
}

/// What an answer queued: "Queued 2 items for ORG (job …)", or "nothing queued: …".
fn queued_line(
    org: &str,
    job: &Option<String>,
    queued: u64,
    message: &Option<String>,
    estimated: Option<Timestamp>,
) -> String {
    match message {
        Some(message) if queued == 0 => format!(
            "{} {}\n",
            paint(YELLOW, "nothing queued:"),
            shown(message, MAX_SHOWN)
        ),
        _ => format!(
            "Queued {} for {} (job {}){}\n",
            crate::text::count(queued, "item"),
            shown(org, MAX_COLUMN),
            shown(job.as_deref().unwrap_or("-"), MAX_COLUMN),
            estimated.map_or(String::new(), |t| format!(", estimated completion {t}"))
        ),
    }
}

fn queued_items(items: &[QueuedItem]) -> String {
    items
        .iter()
        .map(|item| {
            format!(
                "  {:<10} {}\n",
                shown(&item.id, MAX_COLUMN),
                shown(&item.pfa_id, MAX_COLUMN)
            )
        })
        .collect()
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
        shown(&trace.pfa_id, MAX_COLUMN),
        paint(style, shown(&trace.events_text(" → "), MAX_SHOWN)),
        ms(trace.queued_ms),
        ms(trace.processing_ms),
        ms(trace.terminal_ms),
        paint(DIM, shown(&trace.details, MAX_SHOWN))
    )
}
