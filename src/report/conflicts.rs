//! The records of `conflicts` and their text: the list (one `conflict` record per
//! conflict, as a table for people) and a resolution (its answer and, with
//! `--wait`, the item queued again). Everything shown comes from the backend, so it
//! is escaped and clamped.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::human::{BOLD, DIM, GREEN, RED, YELLOW, paint};
use super::status::local_time;
use crate::lifecycle::ItemTrace;
use crate::protocol::{Conflict, EventType};
use crate::text::{MAX_COLUMN, MAX_SHOWN, shown};

/// The `summary` record of `conflicts ORG` (listing).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConflictsSummary {
    pub ok: bool,
    pub organization_id: String,
    /// The `--status` asked for, if any.
    pub status: Option<String>,
    /// What the backend's `total` said.
    pub total: u64,
    pub unresolved: u64,
}

/// The `summary` record of `conflicts ORG --resolve ID`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResolveSummary {
    pub ok: bool,
    pub organization_id: String,
    pub conflict_id: String,
    pub pfa_id: String,
    pub resolution: String,
    /// Whether the backend answered the resolution.
    pub resolved: bool,
    pub resolved_at: Option<String>,
    /// What the backend will write upstream (`null` for `use_pems`).
    pub applied_changes: Value,
    /// Whether the resolution queues the item again (`use_local`, `merge`).
    pub requeued: bool,
    /// With `--wait`: the item queued again, its events and timings.
    pub item: Option<ItemTrace>,
}

/// The list as a table (newest first, as the backend orders it).
pub fn table(org: &str, status: Option<&str>, conflicts: &[Conflict]) -> String {
    let org = shown(org, MAX_COLUMN);
    if conflicts.is_empty() {
        let which = status.map_or(String::new(), |s| format!(" {s}"));
        return format!("No{which} conflicts for {org}\n");
    }
    let header = ["ID", "PFA", "STATUS", "FIELDS", "CREATED", "RESOLUTION"];
    let rows: Vec<[String; 6]> = conflicts
        .iter()
        .map(|c| {
            [
                shown(&c.id, MAX_COLUMN),
                shown(&c.pfa_id, MAX_COLUMN),
                shown(&c.status, MAX_COLUMN),
                shown(&c.conflict_fields.join(", "), MAX_COLUMN),
                c.created_at.as_deref().map_or("-".into(), local_time),
                c.resolution
                    .as_deref()
                    .map_or("-".into(), |r| shown(r, MAX_COLUMN)),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let unresolved = conflicts
        .iter()
        .filter(|c| c.status == "unresolved")
        .count();
    let mut out = format!(
        "Conflicts of {}: {} ({unresolved} unresolved)\n",
        paint(BOLD, &org),
        conflicts.len()
    );
    out.push_str(&paint(DIM, line(&header.map(String::from))));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

/// The answer to a resolution.
pub fn resolved(s: &ResolveSummary) -> String {
    let at = s.resolved_at.as_deref().map_or("-".into(), local_time);
    let next = if s.requeued {
        "the item is queued again"
    } else {
        "the item is marked synced; nothing is queued"
    };
    format!(
        "Resolved {} ({}) with {} at {at}; {next}\n",
        paint(BOLD, shown(&s.conflict_id, MAX_COLUMN)),
        shown(&s.pfa_id, MAX_COLUMN),
        s.resolution
    )
}

/// The last line of a resolution: what became of the item queued again.
pub fn summary(s: &ResolveSummary) -> String {
    let Some(item) = &s.item else {
        return String::new();
    };
    let events = item.events_text(" ");
    let events = if events.is_empty() {
        "nothing"
    } else {
        &events
    };
    let verdict = match &item.outcome {
        Some(EventType::Success) => paint(GREEN, "✓ synced"),
        Some(other) => paint(RED, format!("✗ ended {}", other.as_str())),
        None => paint(YELLOW, "… did not end"),
    };
    let ms = item
        .terminal_ms
        .map_or(String::new(), |ms| format!(" in {ms:.1} ms"));
    format!(
        "{verdict} {}: {}{ms}\n",
        shown(&item.pfa_id, MAX_COLUMN),
        shown(events, MAX_SHOWN)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_text_in_the_table_is_escaped_and_clamped() {
        let conflict: Conflict = serde_json::from_value(serde_json::json!({
            "id": "conflict_1_\u{1b}[31mred", "pfaId": "p".repeat(200), "status": "unresolved",
            "conflictFields": ["quantity"], "createdAt": "2025-11-28T10:00:00.000Z",
        }))
        .unwrap();
        let text = table("org", None, &[conflict]);
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("conflict_1_\\u{1b}[31mred"), "{text}");
        assert!(!text.contains(&"p".repeat(MAX_COLUMN + 1)), "{text}");
        assert!(text.contains("1 (1 unresolved)"), "{text}");
        assert_eq!(
            table("org", Some("resolved"), &[]),
            "No resolved conflicts for org\n"
        );
    }
}
