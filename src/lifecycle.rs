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

/// One item as its events arrive.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lifecycle {
    pfa_id: String,
    events: Vec<EventType>,
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
            pfa_id: pfa_id.to_string(),
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
        self.events.push(event.kind.clone());
        self.details = event.short_details();
        fit
    }

    /// Every event type, in arrival order.
    pub fn events(&self) -> &[EventType] {
        &self.events
    }

    /// The latest event type.
    pub fn state(&self) -> Option<&EventType> {
        self.events.last()
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
            events: self.events.clone(),
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
    pub events: Vec<EventType>,
    pub queued_ms: Option<f64>,
    pub processing_ms: Option<f64>,
    pub terminal_ms: Option<f64>,
    /// The terminal event type, once it arrived.
    pub outcome: Option<EventType>,
    pub details: String,
}

impl ItemTrace {
    /// The event types joined by `separator`.
    pub fn events_text(&self, separator: &str) -> String {
        let names: Vec<&str> = self.events.iter().map(EventType::as_str).collect();
        names.join(separator)
    }
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
