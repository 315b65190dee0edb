//! The records of `replay` and their text: what was loaded, each session's life on
//! stderr, the `--step` prompts, and the summary at the end.

use serde::{Deserialize, Serialize};

use super::Reporter;
use crate::server::replay::{Facts, Format, Notice, Speed};
use crate::text::{MAX_COLUMN, count, shown};

/// One served organization in the `summary` of `replay`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplayedOrg {
    pub organization_id: String,
    /// The organization the recording names, when `--org` served it as another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_as: Option<String>,
    pub frames: u64,
    /// Frames numbered with `seq` (JSON objects).
    pub events: u64,
    /// From the recorded start to the last frame, in milliseconds (as recorded).
    pub duration_ms: f64,
}

impl ReplayedOrg {
    pub fn of(facts: &Facts) -> ReplayedOrg {
        ReplayedOrg {
            organization_id: facts.org.clone(),
            recorded_as: facts.recorded_as.clone(),
            frames: facts.frames as u64,
            events: facts.events as u64,
            duration_ms: facts.duration.as_secs_f64() * 1000.0,
        }
    }
}

/// The `summary` record of `replay`, written when it stops.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplaySummary {
    pub file: String,
    pub format: Format,
    pub organizations: Vec<ReplayedOrg>,
    /// Sockets served.
    pub sessions: u64,
    /// Frames sent after CONNECTED, over every session.
    pub frames_sent: u64,
}

fn speed(speed: Speed) -> String {
    match speed {
        Speed::Max => "without waits".into(),
        Speed::Times(1.0) => "at the recorded pace".into(),
        Speed::Times(f) => format!("at {f}× speed"),
    }
}

/// `replaying FILE (watch-sync recording): org-rio, 12 frames over 3.2s, at 4× speed, looping`.
pub fn loaded(summary: &ReplaySummary, pace: Speed, looping: bool, step: bool) -> String {
    let orgs: Vec<String> = summary
        .organizations
        .iter()
        .map(|o| {
            let mut text = format!(
                "{}, {} over {:.1}s",
                shown(&o.organization_id, MAX_COLUMN),
                count(o.frames, "frame"),
                o.duration_ms / 1000.0
            );
            if let Some(from) = &o.recorded_as {
                text.push_str(&format!(" (recorded as {})", shown(from, MAX_COLUMN)));
            }
            text
        })
        .collect();
    let mut how = if step {
        "one frame per Enter".to_string()
    } else {
        speed(pace)
    };
    if looping {
        how.push_str(", looping");
    }
    format!(
        "replaying {} ({}): {}; {how}",
        shown(&summary.file, crate::text::MAX_SHOWN),
        summary.format.describe(),
        orgs.join("; ")
    )
}

/// Tells a session's notice: lines on stderr (hidden by `-q`), a `--step` prompt
/// always.
pub fn notice(reporter: &Reporter, notice: &Notice) {
    match notice {
        Notice::Opened {
            session,
            org,
            since,
            truncated,
        } => {
            let from = match (since, truncated) {
                (_, true) => {
                    "from the start (its since/epoch is not this run's: historyTruncated)".into()
                }
                (Some(n), false) => format!("after seq {n}"),
                (None, false) => "from the start".to_string(),
            };
            reporter.note(&format!(
                "session {session} ({}): opened, {from}",
                shown(org, MAX_COLUMN)
            ));
        }
        Notice::Waiting {
            session,
            frame,
            of,
            label,
        } => reporter.write_err(&format!(
            "step: session {session}: frame {frame} of {of} ({}) waits: press Enter\n",
            shown(label, MAX_COLUMN)
        )),
        Notice::Ended { session, sent } => reporter.note(&format!(
            "session {session}: end of the recording ({} sent); the socket stays open",
            count(*sent, "frame")
        )),
        Notice::Closed { session, sent, why } => reporter.note(&format!(
            "session {session}: {why} after {}",
            count(*sent, "frame")
        )),
    }
}

/// Stdin ended under `--step`; returns `false` (stepping is over).
pub fn stepping_ended(reporter: &Reporter) -> bool {
    reporter.note("stdin ended: --step is over, the rest plays at --speed");
    false
}

/// The last line: `replay stopped: 2 sessions, 24 frames sent`.
pub fn summary_text(summary: &ReplaySummary) -> String {
    format!(
        "replay stopped: {}, {} sent\n",
        count(summary.sessions, "session"),
        count(summary.frames_sent, "frame")
    )
}
