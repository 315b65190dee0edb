//! The lifecycle of one queued item, the one model of it: the events that arrived
//! for its pfaId, by the server's clock and, when the caller measures it, by the
//! client's (milliseconds after the POST that queued it).
//!
//! Two views are serialised from it, each keeping the shape of the record it
//! appears in:
//! - [`ItemTrace`] (`enqueue --wait`, `smoke`): client times after the POST, and
//!   the last terminal event as the outcome;
//! - the stream check's item summary (`watch-sync`), built from [`Lifecycle::state`],
//!   [`Lifecycle::ended`], [`Lifecycle::queued_to_terminal_ms`] and the rest: server
//!   times, and a new `SYNC_QUEUED` starts a new round of the same record.

use serde::{Deserialize, Serialize};

use crate::protocol::{EventType, SyncEvent, Timestamp};

/// Event types one item keeps in order: the first half and the latest half of it;
/// those between are counted. A server that sends one pfaId without end cannot grow
/// an item without bound, and its terminal event is still seen.
pub const MAX_ITEM_EVENTS: usize = 32;
/// Longest peer text an item keeps as its pfaId, a type name or its details, in
/// characters.
pub const MAX_ITEM_TEXT: usize = 200;

/// `kind`, with the name of a type this version does not know cut to
/// [`MAX_ITEM_TEXT`].
fn kept_kind(kind: &EventType) -> EventType {
    match kind {
        EventType::Other(name) => {
            EventType::Other(crate::text::clamp(name, MAX_ITEM_TEXT).into_owned())
        }
        known => known.clone(),
    }
}

/// One item as its events arrive.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lifecycle {
    pfa_id: String,
    /// The first event types (half of [`MAX_ITEM_EVENTS`]).
    events: Vec<EventType>,
    /// The latest event types after those (the other half).
    tail: std::collections::VecDeque<EventType>,
    /// Events between the two, counted.
    events_omitted: u64,
    /// The latest event type.
    last: Option<EventType>,
    /// `short_details` of the latest event.
    details: String,
    /// Server time of the latest SYNC_QUEUED: the start of the current round.
    queued_at: Option<Timestamp>,
    /// The terminal event of the current round and its server time.
    ended: Option<(EventType, Timestamp)>,
    /// The latest terminal event of any round.
    outcome: Option<EventType>,
    /// Client times: the first SYNC_QUEUED, the first SYNC_PROCESSING, the latest
    /// terminal event.
    queued_ms: Option<f64>,
    processing_ms: Option<f64>,
    terminal_ms: Option<f64>,
}

/// How an event fitted the item's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    InOrder,
    /// Not a SYNC_QUEUED, and the current round had already ended.
    AfterTerminal,
}

impl Lifecycle {
    pub fn new(pfa_id: &str) -> Lifecycle {
        Lifecycle {
            pfa_id: crate::text::clamp(pfa_id, MAX_ITEM_TEXT).into_owned(),
            ..Default::default()
        }
    }

    /// Records `event`, which arrived `after_ms` after the caller's origin (when it
    /// measures one).
    pub fn on_event(&mut self, event: &SyncEvent, after_ms: Option<f64>) -> Fit {
        let fit = if self.ended.is_some() && event.kind != EventType::Queued {
            Fit::AfterTerminal
        } else {
            Fit::InOrder
        };
        match &event.kind {
            EventType::Queued => {
                // A new round of the same record.
                self.queued_at = Some(event.timestamp);
                self.ended = None;
                self.queued_ms = self.queued_ms.or(after_ms);
            }
            EventType::Processing => self.processing_ms = self.processing_ms.or(after_ms),
            kind if kind.is_terminal() => {
                self.ended = Some((kind.clone(), event.timestamp));
                self.outcome = Some(kind.clone());
                self.terminal_ms = after_ms.or(self.terminal_ms);
            }
            _ => {}
        }
        let kind = kept_kind(&event.kind);
        if self.events.len() < MAX_ITEM_EVENTS / 2 {
            self.events.push(kind.clone());
        } else {
            if self.tail.len() == MAX_ITEM_EVENTS / 2 {
                self.tail.pop_front();
                self.events_omitted += 1;
            }
            self.tail.push_back(kind.clone());
        }
        self.last = Some(kind);
        self.details = crate::text::clamp(&event.short_details(), MAX_ITEM_TEXT).into_owned();
        fit
    }

    /// The event types kept, in arrival order: the first and the latest (with
    /// [`Lifecycle::events_omitted`] between them).
    pub fn events(&self) -> Vec<EventType> {
        self.events.iter().chain(&self.tail).cloned().collect()
    }

    /// Events between the first and the latest kept (counted, not kept).
    pub fn events_omitted(&self) -> u64 {
        self.events_omitted
    }

    /// The latest event type.
    pub fn state(&self) -> Option<&EventType> {
        self.last.as_ref()
    }

    /// The terminal event of the current round, if it arrived.
    pub fn ended(&self) -> Option<&EventType> {
        self.ended.as_ref().map(|(kind, _)| kind)
    }

    /// The latest terminal event of any round: what a follower reports as the
    /// item's outcome.
    pub fn outcome(&self) -> Option<&EventType> {
        self.outcome.as_ref()
    }

    /// From the current round's SYNC_QUEUED to its terminal event, by the server's
    /// timestamps.
    pub fn queued_to_terminal_ms(&self) -> Option<i64> {
        match (&self.queued_at, &self.ended) {
            (Some(queued), Some((_, ended))) => Some(ended.millis() - queued.millis()),
            _ => None,
        }
    }

    /// `short_details` of the latest event.
    pub fn details(&self) -> &str {
        &self.details
    }

    /// The follower's view.
    pub fn trace(&self) -> ItemTrace {
        ItemTrace {
            pfa_id: self.pfa_id.clone(),
            events: self.events(),
            events_omitted: self.events_omitted,
            queued_ms: self.queued_ms,
            processing_ms: self.processing_ms,
            terminal_ms: self.terminal_ms,
            outcome: self.outcome.clone(),
            details: self.details.clone(),
        }
    }
}

/// One followed item as `enqueue --wait` and `smoke` report it: its events and
/// when they arrived, from the POST on.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ItemTrace {
    pub pfa_id: String,
    /// The event types: all of them, or the first and the latest half of
    /// [`MAX_ITEM_EVENTS`].
    pub events: Vec<EventType>,
    /// Events between those (counted, not kept); absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub events_omitted: u64,
    pub queued_ms: Option<f64>,
    pub processing_ms: Option<f64>,
    pub terminal_ms: Option<f64>,
    /// The terminal event type, once it arrived.
    pub outcome: Option<EventType>,
    pub details: String,
}

impl ItemTrace {
    /// The event types joined by `separator` (`… N more` where some were not kept).
    pub fn events_text(&self, separator: &str) -> String {
        let mut names: Vec<String> = self.events.iter().map(|e| e.as_str().to_string()).collect();
        if self.events_omitted > 0 {
            let at = (MAX_ITEM_EVENTS / 2).min(names.len());
            names.insert(at, format!("… {} more", self.events_omitted));
        }
        names.join(separator)
    }
}

/// For `skip_serializing_if`: a count of nothing is left out.
pub fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, at_ms: i64) -> SyncEvent {
        let timestamp = chrono::DateTime::from_timestamp_millis(at_ms).unwrap();
        serde_json::from_value(json!({
            "type": kind,
            "pfaId": "p",
            "organizationId": "o",
            "timestamp": Timestamp(timestamp),
        }))
        .unwrap()
    }

    #[test]
    fn one_round_gives_both_views() {
        let mut item = Lifecycle::new("p");
        for (kind, at, after) in [
            ("SYNC_QUEUED", 1_000, 1.0),
            ("SYNC_PROCESSING", 1_010, 2.0),
            ("SYNC_PROCESSING", 1_020, 3.0),
            ("SYNC_SUCCESS", 1_050, 4.0),
        ] {
            assert_eq!(item.on_event(&event(kind, at), Some(after)), Fit::InOrder);
        }
        assert_eq!(item.ended(), Some(&EventType::Success));
        assert_eq!(item.queued_to_terminal_ms(), Some(50));
        let trace = item.trace();
        assert_eq!(
            (trace.queued_ms, trace.processing_ms, trace.terminal_ms),
            (Some(1.0), Some(2.0), Some(4.0))
        );
        assert_eq!(trace.outcome, Some(EventType::Success));
        let value = serde_json::to_value(&trace).unwrap();
        assert_eq!(value["events"][0], "SYNC_QUEUED");
        assert_eq!(value["outcome"], "SYNC_SUCCESS");
    }

    #[test]
    fn one_item_keeps_a_bounded_number_of_events_and_counts_the_rest() {
        let mut item = Lifecycle::new(&"p".repeat(10_000));
        item.on_event(&event("SYNC_QUEUED", 0), None);
        for at in 1..=10_000 {
            item.on_event(&event("SYNC_PROCESSING", at), None);
        }
        item.on_event(&event("SYNC_SUCCESS", 20_000), None);
        assert_eq!(item.events().len(), MAX_ITEM_EVENTS);
        assert_eq!(item.events_omitted(), 10_002 - MAX_ITEM_EVENTS as u64);
        assert_eq!(item.state(), Some(&EventType::Success));
        // The first and the latest are kept: the terminal event is still there.
        assert_eq!(item.events()[0], EventType::Queued);
        assert_eq!(item.events().last(), Some(&EventType::Success));
        let trace = item.trace();
        assert!(trace.pfa_id.chars().count() <= MAX_ITEM_TEXT + 1);
        let text = trace.events_text(" ");
        let middle = format!(
            "SYNC_PROCESSING … {} more SYNC_PROCESSING",
            trace.events_omitted
        );
        assert!(text.contains(&middle), "{text}");
        assert!(text.ends_with("SYNC_SUCCESS"), "{text}");
    }

    #[test]
    fn a_new_queued_starts_a_new_round_but_the_outcome_stays() {
        let mut item = Lifecycle::new("p");
        item.on_event(&event("SYNC_QUEUED", 0), None);
        item.on_event(&event("SYNC_FAILED", 5), None);
        assert_eq!(
            item.on_event(&event("SYNC_PROCESSING", 6), None),
            Fit::AfterTerminal
        );
        assert_eq!(item.on_event(&event("SYNC_QUEUED", 7), None), Fit::InOrder);
        assert_eq!(item.ended(), None);
        assert_eq!(item.queued_to_terminal_ms(), None);
        assert_eq!(item.outcome(), Some(&EventType::Failed));
        assert_eq!(item.state(), Some(&EventType::Queued));
        assert_eq!(item.trace().terminal_ms, None);
    }
}
