//! Checking one organization's event stream, frame by frame, without any I/O: the
//! protocol checks (well-formed frames, the right organization, valid timestamps),
//! `seq` continuity (gaps, duplicates, late arrivals, epochs), each item's
//! lifecycle, the filters (`--item`, `--where`), `--fail-on`, and `--expect`.
//!
//! `watch-sync`, `enqueue --wait` and `smoke` feed it what arrives and act on the
//! [`Verdict`]; its [`Summary`] is what they report at the end.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::expect::{Matcher, Mode, Pattern, Status};
use crate::lifecycle::{Fit, Lifecycle};
use crate::protocol::{Connected, EventType, ProtocolPart, ServerFrame, SyncEvent, Timestamp};
use crate::seq::{Arrival, SeqTracker};

/// Longest peer text one item keeps (its error, each conflicting field), in
/// characters: what the server sends is bounded before it is kept.
pub const MAX_KEPT_TEXT: usize = 1000;
/// Most conflicting fields one item keeps.
pub const MAX_KEPT_FIELDS: usize = 100;
/// Items tracked one by one at a time. A new item past it retires the oldest, whose
/// figures (its duration, whether it ended) stay in the summary's counts; with
/// `--per-item` an item retired before its expectation held fails the check. With
/// every kept text bounded, this holds a watch of any length to tens of MB.
pub const MAX_TRACKED_ITEMS: usize = 10_000;
/// Items the summary lists one by one: the first and the last half of it, by their
/// first event; the others are counted (`itemsOmitted`).
pub const SUMMARY_ITEMS: usize = 40;
/// Distinct event type names counted by name (`byType`, `unknownTypes`); more
/// count under [`OTHER_TYPES`].
pub const MAX_TYPES: usize = 64;
/// The `byType` key of the types past [`MAX_TYPES`].
pub const OTHER_TYPES: &str = "(other types)";

/// What to expect of the stream.
#[derive(Clone)]
pub struct Expectation {
    pub pattern: Arc<Pattern>,
    pub mode: Mode,
    /// Apply the pattern to every item (pfaId) separately.
    pub per_item: bool,
    /// With `per_item`: how many items must be seen before the expectation can hold.
    pub min_items: usize,
}

/// The settings of a check.
#[derive(Clone, Default)]
pub struct CheckConfig {
    pub org: String,
    /// Report protocol violations as warnings instead of failing.
    pub lenient: bool,
    /// Only these pfaIds are considered (empty: all).
    pub items: Vec<String>,
    /// Only events whose dotted JSON path equals the value are considered.
    pub wheres: Vec<(String, String)>,
    /// Any considered event of these types fails the check at once.
    pub fail_on: Vec<EventType>,
    pub expect: Option<Expectation>,
}

/// Something worth telling that does not by itself end the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A type this version does not know (said once per type).
    UnknownType(String),
    /// A protocol violation tolerated because of `--lenient`.
    Tolerated(String),
    /// `seq` jumped: events `from..=to` never arrived (yet).
    Gap { from: u64, to: u64 },
    /// A `seq` that had already arrived.
    Duplicate(u64),
    /// A `seq` that was missing arrived late.
    Late(u64),
    /// The server said events may have been lost (`historyTruncated`).
    HistoryTruncated { since: Option<u64> },
    /// The numbering started again (a new epoch: typically a server restart).
    EpochChanged {
        from: String,
        to: String,
        last_seq: Option<u64>,
    },
    /// An event for an item that had already ended.
    AfterTerminal { pfa_id: String, kind: String },
}

impl Finding {
    pub fn message(&self) -> String {
        match self {
            Finding::UnknownType(t) => format!("unknown event type {t} (tolerated; shown as is)"),
            Finding::Tolerated(m) => format!("protocol violation tolerated by --lenient: {m}"),
            Finding::Gap { from, to } if from == to => format!("seq gap: event {from} is missing"),
            Finding::Gap { from, to } => format!(
                "seq gap: events {from} to {to} are missing ({})",
                crate::text::count((to - from).saturating_add(1), "event")
            ),
            Finding::Duplicate(s) => format!("duplicate: seq {s} arrived again"),
            Finding::Late(s) => format!("seq {s} arrived late (out of order)"),
            Finding::HistoryTruncated { since: Some(s) } => format!(
                "the server no longer holds every event after seq {s}: events may have been lost"
            ),
            Finding::HistoryTruncated { since: None } => {
                "the server says its history is truncated: events may have been lost".into()
            }
            Finding::EpochChanged { from, to, last_seq } => format!(
                "the server's numbering restarted (epoch {from} → {to}); events after seq {} of the old epoch may have been lost",
                last_seq.map_or("?".into(), |s| s.to_string())
            ),
            Finding::AfterTerminal { pfa_id, kind } => {
                format!("{kind} for {pfa_id} after its terminal event")
            }
        }
    }
}

/// What the caller should do after a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// The expectation holds: stop with success.
    Satisfied,
    /// An expectation failed (strict divergence, `--fail-on`): stop, exit 1.
    Failed(String),
}

/// A protocol violation: exit 5 unless `--lenient`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Violation(pub String);

/// The result of one frame.
#[derive(Debug)]
pub struct FrameOutcome {
    /// The parsed frame (`None` when malformed and tolerated).
    pub frame: Option<ServerFrame>,
    /// Whether it passed the filters (and so is shown and counted).
    pub considered: bool,
    /// Whether the server replayed it from its history (see [`Summary::replayed`]).
    pub replayed: bool,
    pub findings: Vec<Finding>,
    pub verdict: Verdict,
}

/// An item: its lifecycle, with `--per-item` its own matcher, and what its last
/// SYNC_FAILED or SYNC_CONFLICT said (kept for the summary).
#[derive(Clone, Debug)]
struct Item {
    lifecycle: Lifecycle,
    matcher: Option<Matcher>,
    error: Option<String>,
    conflicting_fields: Vec<String>,
}

impl Item {
    /// Keeps the error of a SYNC_FAILED and the fields of a SYNC_CONFLICT, bounded.
    fn keep_details(&mut self, event: &SyncEvent) {
        let kept = |text: &str| crate::text::clamp(text, MAX_KEPT_TEXT).into_owned();
        match event.kind {
            EventType::Failed => {
                if let Ok(d) = event.failed() {
                    self.error = Some(kept(&d.error));
                }
            }
            EventType::Conflict => {
                if let Ok(d) = event.conflict() {
                    // Bounded in number and in characters all together.
                    let mut room = MAX_KEPT_TEXT;
                    self.conflicting_fields = d
                        .conflicting_fields
                        .iter()
                        .take(MAX_KEPT_FIELDS)
                        .map_while(|f| {
                            let f = crate::text::clamp(f, room).into_owned();
                            room = room.checked_sub(f.chars().count().max(1))?;
                            Some(f)
                        })
                        .collect();
                }
            }
            _ => {}
        }
    }
}

/// Summary figures of a duration sample, in milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub count: u64,
    pub min: f64,
    pub avg: f64,
    pub max: f64,
}

/// [`Stats`] kept as values arrive, in constant memory.
#[derive(Clone, Copy, Debug, Default)]
struct Running {
    count: u64,
    min: f64,
    sum: f64,
    max: f64,
}

impl Running {
    fn push(&mut self, value: f64) {
        if self.count == 0 || value < self.min {
            self.min = value;
        }
        if self.count == 0 || value > self.max {
            self.max = value;
        }
        self.count += 1;
        self.sum += value;
    }

    fn stats(&self) -> Option<Stats> {
        (self.count > 0).then(|| Stats {
            count: self.count,
            min: self.min,
            avg: self.sum / self.count as f64,
            max: self.max,
        })
    }
}

/// One item in the summary.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ItemSummary {
    pub pfa_id: String,
    /// The last event type seen for it.
    pub state: EventType,
    pub terminal: bool,
    pub events: Vec<String>,
    /// From SYNC_QUEUED to the terminal event, by the server's timestamps.
    pub queued_to_terminal_ms: Option<i64>,
    pub details: String,
    /// `details.error` of its last SYNC_FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `details.conflictingFields` of its last SYNC_CONFLICT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicting_fields: Vec<String>,
    /// With `--per-item`: `satisfied`, `pending` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expectation: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// Events between the first and the latest kept in `events` (counted); absent
    /// when none.
    #[serde(default, skip_serializing_if = "crate::lifecycle::is_zero")]
    pub events_omitted: u64,
}

/// `seq` figures (Part 2 servers).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SeqSummary {
    pub epoch: Option<String>,
    pub last_seq: Option<u64>,
    pub gaps: u64,
    /// Events still missing at the end.
    pub missing: u64,
    pub duplicates: u64,
    pub late: u64,
    pub epoch_changes: u64,
    pub truncations: u64,
}

/// A time during which events may have been missed (a Part 1 reconnection).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LossWindow {
    pub from: Timestamp,
    pub to: Timestamp,
    pub reason: String,
}

/// The expectation's outcome.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExpectationSummary {
    pub pattern: String,
    pub mode: Mode,
    pub per_item: bool,
    /// `satisfied`, `pending` (not met when the run ended) or `failed`.
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// Everything a stream check learnt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub organization_id: String,
    /// `part2` when the last CONNECTED carried `seq` and `epoch`, `part1` when it did
    /// not, `null` when no CONNECTED was received.
    pub protocol: Option<ProtocolPart>,
    /// Text frames received (CONNECTED included).
    pub frames: u64,
    /// Events that passed the filters: the one count of events (`--count`, the
    /// summary and the errors all use it).
    pub events: u64,
    /// Of `events`, those the server replayed from its history (`--since`, `--last`,
    /// a resume): seq in (since, CONNECTED.seq].
    pub replayed: u64,
    /// Events of the organization that `--item` or `--where` hid.
    pub hidden: u64,
    pub by_type: BTreeMap<String, u64>,
    /// The first and last items (at most [`SUMMARY_ITEMS`] in all).
    pub items: Vec<ItemSummary>,
    /// Items seen but not listed in `items`; absent when none.
    #[serde(default, skip_serializing_if = "crate::lifecycle::is_zero")]
    pub items_omitted: u64,
    /// pfaIds with no terminal event (at most [`SUMMARY_ITEMS`]).
    pub unfinished: Vec<String>,
    /// Items with no terminal event not listed in `unfinished`; absent when none.
    #[serde(default, skip_serializing_if = "crate::lifecycle::is_zero")]
    pub unfinished_omitted: u64,
    pub queued_to_terminal_ms: Option<Stats>,
    /// Receive time minus `publishedAtUs` (µs precision) or minus `timestamp` (1 ms
    /// resolution, and only meaningful when both clocks agree).
    pub delivery_latency_ms: Option<Stats>,
    pub latency_source: Option<String>,
    pub seq: Option<SeqSummary>,
    pub reconnects: u32,
    pub loss_windows: Vec<LossWindow>,
    pub malformed: u64,
    pub unknown_types: Vec<String>,
    pub expectation: Option<ExpectationSummary>,
}

/// The running check of one stream.
pub struct StreamCheck {
    config: CheckConfig,
    frames: u64,
    events: u64,
    replayed: u64,
    hidden: u64,
    /// The last `seq` of the current connection's replay (`CONNECTED.seq` when the
    /// connection asked for `since`).
    replay_until: Option<u64>,
    protocol: Option<ProtocolPart>,
    by_type: BTreeMap<String, u64>,
    /// The keys of the first items of the run (half of [`SUMMARY_ITEMS`]): tracked
    /// to the end, never retired, so the summary can list them.
    first: Vec<String>,
    /// The other tracked items' keys, oldest first.
    order: VecDeque<String>,
    items: HashMap<String, Item>,
    /// What the items retired past [`MAX_TRACKED_ITEMS`] leave behind.
    retired: Retired,
    whole: Option<Matcher>,
    unknown: BTreeSet<String>,
    malformed: u64,
    connections: u32,
    epoch: Option<String>,
    seqs: SeqTracker,
    epoch_changes: u64,
    truncations: u64,
    loss_windows: Vec<LossWindow>,
    latencies: Running,
    precise_latency: bool,
    failed: Option<String>,
}

/// The figures of items no longer tracked one by one.
#[derive(Clone, Copy, Debug, Default)]
struct Retired {
    items: u64,
    unfinished: u64,
    durations: Running,
    /// With `--per-item`: retired before their expectation held.
    unsatisfied: u64,
}

impl StreamCheck {
    pub fn new(config: CheckConfig) -> StreamCheck {
        let whole = config
            .expect
            .as_ref()
            .filter(|e| !e.per_item)
            .map(|e| Matcher::new(&e.pattern, e.mode));
        StreamCheck {
            config,
            frames: 0,
            events: 0,
            replayed: 0,
            hidden: 0,
            replay_until: None,
            protocol: None,
            by_type: BTreeMap::new(),
            first: Vec::new(),
            order: VecDeque::new(),
            items: HashMap::new(),
            retired: Retired::default(),
            whole,
            unknown: BTreeSet::new(),
            malformed: 0,
            connections: 0,
            epoch: None,
            seqs: SeqTracker::expecting(None),
            epoch_changes: 0,
            truncations: 0,
            loss_windows: Vec::new(),
            latencies: Running::default(),
            precise_latency: false,
            failed: None,
        }
    }

    /// Where to resume from after a disconnection: the last `seq` and its epoch,
    /// when the server numbers its events.
    pub fn resume_point(&self) -> Option<(u64, Option<String>)> {
        let seq = self.seqs.expected().map(|e| e - 1).or(self.seqs.last())?;
        Some((seq, self.epoch.clone()))
    }

    /// Records a window during which events may have been missed.
    pub fn loss_window(&mut self, from: Timestamp, to: Timestamp, reason: &str) {
        // One window per reconnection, bounded: past the limit the last one widens.
        if self.loss_windows.len() >= SUMMARY_ITEMS
            && let Some(last) = self.loss_windows.last_mut()
        {
            last.to = to;
            return;
        }
        self.loss_windows.push(LossWindow {
            from,
            to,
            reason: reason.to_string(),
        });
    }

    /// A checked CONNECTED (the first of the run or after a reconnection);
    /// `resumed_from` is the `since` the client asked for, if any.
    pub fn on_connected(
        &mut self,
        connected: &Connected,
        resumed_from: Option<u64>,
    ) -> (Vec<Finding>, Verdict) {
        self.frames += 1;
        self.connections += 1;
        let mut findings = Vec::new();
        *self.by_type.entry("CONNECTED".into()).or_default() += 1;
        let new_epoch = connected.epoch.clone();
        let epoch_changed =
            matches!((&self.epoch, &new_epoch), (Some(old), Some(new)) if old != new);
        if epoch_changed {
            self.epoch_changes += 1;
            findings.push(Finding::EpochChanged {
                from: self.epoch.clone().unwrap_or_default(),
                to: new_epoch.clone().unwrap_or_default(),
                last_seq: self.seqs.last(),
            });
        }
        if connected.history_truncated == Some(true) {
            self.truncations += 1;
            if !epoch_changed {
                findings.push(Finding::HistoryTruncated {
                    since: resumed_from,
                });
            }
        }
        self.epoch = new_epoch;
        self.protocol = Some(connected.part());
        // What the server holds up to CONNECTED.seq is replayed: not live, not a
        // duplicate, and no measure of delivery latency.
        self.replay_until = resumed_from.and(connected.seq);
        match (resumed_from, connected.history_truncated, epoch_changed) {
            // Counting starts afresh with whatever the server replays.
            (_, Some(true), _) | (_, _, true) => self.seqs.restart(None, true),
            (Some(since), _, _) => self.seqs.restart(Some(since.saturating_add(1)), false),
            (None, _, _) => self
                .seqs
                .restart(connected.seq.map(|s| s.saturating_add(1)), false),
        }
        let mut verdict = Verdict::Continue;
        if self.connections == 1
            && let Some(matcher) = &mut self.whole
        {
            verdict = match matcher.push("CONNECTED") {
                Status::Satisfied => Verdict::Satisfied,
                Status::Failed => Verdict::Failed(matcher.explain()),
                Status::Pending => Verdict::Continue,
            };
        }
        (findings, verdict)
    }

    /// One text frame after CONNECTED.
    pub fn on_frame(&mut self, raw: &str, received: SystemTime) -> Result<FrameOutcome, Violation> {
        self.frames += 1;
        let mut findings = Vec::new();
        let frame = match ServerFrame::parse(raw) {
            Ok(frame) => frame,
            Err(e) => {
                self.malformed += 1;
                let message = format!("malformed frame: {e}: {}", preview(raw));
                self.tolerate(message, &mut findings)?;
                return Ok(FrameOutcome {
                    frame: None,
                    considered: false,
                    replayed: false,
                    findings,
                    verdict: Verdict::Continue,
                });
            }
        };
        if let Some(org) = frame.organization_id()
            && org != self.config.org
        {
            let message = format!(
                "a {} event of organization {org:?} arrived on the socket of {:?}: rooms must isolate organizations",
                frame.kind(),
                self.config.org
            );
            self.tolerate(message, &mut findings)?;
            // Tolerated, it is still not an event of this stream: it must not count
            // towards --count or --expect, nor disturb this organization's seq.
            return Ok(FrameOutcome {
                frame: Some(frame),
                considered: false,
                replayed: false,
                findings,
                verdict: Verdict::Continue,
            });
        }
        let event = match &frame {
            ServerFrame::Event(event) => event,
            ServerFrame::Connected(_) => {
                self.tolerate(
                    "a second CONNECTED on the same connection".into(),
                    &mut findings,
                )?;
                return Ok(FrameOutcome {
                    frame: Some(frame),
                    considered: false,
                    replayed: false,
                    findings,
                    verdict: Verdict::Continue,
                });
            }
            ServerFrame::Unknown { kind, .. } => {
                if self.unknown_type(kind) {
                    findings.push(Finding::UnknownType(kind.clone()));
                }
                return Ok(FrameOutcome {
                    frame: Some(frame),
                    considered: false,
                    replayed: false,
                    findings,
                    verdict: Verdict::Continue,
                });
            }
        };
        if !event.kind.is_known() && self.unknown_type(event.kind.as_str()) {
            findings.push(Finding::UnknownType(event.kind.to_string()));
        }
        if let Some(seq) = event.seq {
            self.track_seq(seq, &mut findings);
        }
        let replayed = event
            .seq
            .zip(self.replay_until)
            .is_some_and(|(seq, until)| seq <= until);
        if !replayed {
            self.track_latency(event, received);
        }
        let considered = self.passes_filters(event, raw);
        let verdict = if considered {
            self.replayed += u64::from(replayed);
            self.consider(event, &mut findings)
        } else {
            self.hidden += 1;
            Verdict::Continue
        };
        Ok(FrameOutcome {
            frame: Some(frame),
            considered,
            replayed,
            findings,
            verdict,
        })
    }

    /// Notes a type this version does not know; whether it is new and worth saying
    /// (at most [`MAX_TYPES`] are named).
    fn unknown_type(&mut self, kind: &str) -> bool {
        let kind = crate::text::clamp(kind, crate::lifecycle::MAX_ITEM_TEXT);
        if self.unknown.len() >= MAX_TYPES || self.unknown.contains(kind.as_ref()) {
            return false;
        }
        self.unknown.insert(kind.into_owned())
    }

    /// Counts one event of `kind` in `byType` (past [`MAX_TYPES`] names, under
    /// [`OTHER_TYPES`]).
    fn count_type(&mut self, kind: &str) {
        let kind = crate::text::clamp(kind, crate::lifecycle::MAX_ITEM_TEXT);
        let key = if self.by_type.len() < MAX_TYPES || self.by_type.contains_key(kind.as_ref()) {
            kind.into_owned()
        } else {
            OTHER_TYPES.to_string()
        };
        *self.by_type.entry(key).or_default() += 1;
    }

    /// Makes room for one more item past [`MAX_TRACKED_ITEMS`] by retiring the oldest;
    /// the failure when that loses a `--per-item` expectation.
    fn make_room(&mut self) -> Option<String> {
        let mut lost = None;
        while self.items.len() >= MAX_TRACKED_ITEMS {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            let Some(item) = self.items.remove(&oldest) else {
                continue;
            };
            self.retired.items += 1;
            let lifecycle = &item.lifecycle;
            if lifecycle.ended().is_none() {
                self.retired.unfinished += 1;
            }
            if let Some(ms) = lifecycle.queued_to_terminal_ms() {
                self.retired.durations.push(ms as f64);
            }
            if item
                .matcher
                .as_ref()
                .is_some_and(|m| m.status() != Status::Satisfied)
            {
                self.retired.unsatisfied += 1;
                lost.get_or_insert_with(|| {
                    format!(
                        "more than {MAX_TRACKED_ITEMS} items at once: item {oldest} was retired before its --per-item expectation held (at most {MAX_TRACKED_ITEMS} items are tracked)"
                    )
                });
            }
        }
        lost
    }

    fn tolerate(&mut self, message: String, findings: &mut Vec<Finding>) -> Result<(), Violation> {
        if self.config.lenient {
            findings.push(Finding::Tolerated(message));
            Ok(())
        } else {
            Err(Violation(message))
        }
    }

    fn track_seq(&mut self, seq: u64, findings: &mut Vec<Finding>) {
        match self.seqs.on(seq) {
            Arrival::InOrder => {}
            Arrival::Gap { from, to } => findings.push(Finding::Gap { from, to }),
            Arrival::Late => findings.push(Finding::Late(seq)),
            Arrival::Duplicate => findings.push(Finding::Duplicate(seq)),
        }
    }

    fn track_latency(&mut self, event: &SyncEvent, received: SystemTime) {
        let Ok(received) = received.duration_since(SystemTime::UNIX_EPOCH) else {
            return;
        };
        let latency = match event.published_at_us {
            Some(us) => {
                self.precise_latency = true;
                (received.as_micros() as f64 - us as f64) / 1000.0
            }
            None => received.as_millis() as f64 - event.timestamp.millis() as f64,
        };
        self.latencies.push(latency);
    }

    fn passes_filters(&self, event: &SyncEvent, raw: &str) -> bool {
        if !self.config.items.is_empty() && !self.config.items.contains(&event.pfa_id) {
            return false;
        }
        if self.config.wheres.is_empty() {
            return true;
        }
        let Ok(value) = serde_json::from_str::<Value>(raw) else {
            return false;
        };
        matches_wheres(&value, &self.config.wheres)
    }

    fn consider(&mut self, event: &SyncEvent, findings: &mut Vec<Finding>) -> Verdict {
        self.events += 1;
        let kind = event.kind.to_string();
        self.count_type(&kind);
        let per_item = self.config.expect.as_ref().filter(|e| e.per_item).cloned();
        let key = crate::text::clamp(&event.pfa_id, crate::lifecycle::MAX_ITEM_TEXT).into_owned();
        if !self.items.contains_key(&key) {
            if let Some(message) = self.make_room() {
                self.failed = Some(message.clone());
                return Verdict::Failed(message);
            }
            if self.first.len() < SUMMARY_ITEMS / 2 {
                self.first.push(key.clone());
            } else {
                self.order.push_back(key.clone());
            }
        }
        let item = self.items.entry(key).or_insert_with(|| Item {
            lifecycle: Lifecycle::new(&event.pfa_id),
            matcher: per_item.as_ref().map(|e| Matcher::new(&e.pattern, e.mode)),
            error: None,
            conflicting_fields: Vec::new(),
        });
        item.keep_details(event);
        if item.lifecycle.on_event(event, None) == Fit::AfterTerminal {
            findings.push(Finding::AfterTerminal {
                pfa_id: event.pfa_id.clone(),
                kind: kind.clone(),
            });
        }
        if self.config.fail_on.contains(&event.kind) {
            let details = match item.lifecycle.details() {
                "" => String::new(),
                details => format!(" ({details})"),
            };
            let message = format!(
                "{kind} arrived for {}{details}, and --fail-on forbids it",
                event.pfa_id
            );
            self.failed = Some(message.clone());
            return Verdict::Failed(message);
        }
        if let Some(matcher) = &mut item.matcher {
            if matcher.push(&kind) == Status::Failed {
                let message = format!("item {}: {}", event.pfa_id, matcher.explain());
                self.failed = Some(message.clone());
                return Verdict::Failed(message);
            }
            // An item has exactly one terminal event: once it came, nothing more of
            // this item will, so an expectation it has not met yet never will.
            if let Some(end) = item.lifecycle.ended()
                && matcher.status() != Status::Satisfied
            {
                let message = format!(
                    "item {} ended with {end} before its expectation was met: {}",
                    event.pfa_id,
                    matcher.explain()
                );
                self.failed = Some(message.clone());
                return Verdict::Failed(message);
            }
            let expectation = per_item.expect("per-item matchers come from a per-item expectation");
            let all_satisfied = self.items.values().all(|i| {
                i.matcher
                    .as_ref()
                    .is_some_and(|m| m.status() == Status::Satisfied)
            });
            if all_satisfied && self.items_seen() >= expectation.min_items.max(1) as u64 {
                return Verdict::Satisfied;
            }
            return Verdict::Continue;
        }
        if let Some(matcher) = &mut self.whole {
            match matcher.push(&kind) {
                Status::Satisfied => return Verdict::Satisfied,
                Status::Failed => {
                    let message = matcher.explain();
                    self.failed = Some(message.clone());
                    return Verdict::Failed(message);
                }
                Status::Pending => {}
            }
        }
        Verdict::Continue
    }

    /// Whether an expectation was given and holds now.
    pub fn satisfied(&self) -> bool {
        match &self.config.expect {
            None => false,
            Some(e) if e.per_item => {
                self.items_seen() >= e.min_items.max(1) as u64
                    && self.retired.unsatisfied == 0
                    && self.items.values().all(|i| {
                        i.matcher
                            .as_ref()
                            .is_some_and(|m| m.status() == Status::Satisfied)
                    })
            }
            Some(_) => self
                .whole
                .as_ref()
                .is_some_and(|m| m.status() == Status::Satisfied),
        }
    }

    /// Why the expectation does not hold (for an unmet expectation at the end).
    pub fn explain_unmet(&self) -> String {
        match &self.config.expect {
            None => String::new(),
            Some(e) if e.per_item => {
                let mut text = String::new();
                if self.items_seen() < e.min_items.max(1) as u64 {
                    text.push_str(&format!(
                        "{} seen, {} expected\n",
                        crate::text::count(self.items_seen(), "item"),
                        e.min_items.max(1)
                    ));
                }
                let mut unmet = self.tracked().filter_map(|pfa| {
                    let m = self.items[pfa].matcher.as_ref()?;
                    (m.status() != Status::Satisfied)
                        .then(|| format!("item {pfa}: {}\n", m.explain()))
                });
                for line in unmet.by_ref().take(SUMMARY_ITEMS) {
                    text.push_str(&line);
                }
                let more = unmet.count() as u64 + self.retired.unsatisfied;
                if more > 0 {
                    text.push_str(&format!(
                        "… and {} more\n",
                        crate::text::count(more, "item")
                    ));
                }
                text.trim_end().to_string()
            }
            Some(_) => self
                .whole
                .as_ref()
                .map(Matcher::explain)
                .unwrap_or_default(),
        }
    }

    /// The tracked items' keys, in the order they were first seen.
    fn tracked(&self) -> impl Iterator<Item = &String> {
        self.first.iter().chain(self.order.iter())
    }

    /// Items seen so far: those tracked and those retired.
    fn items_seen(&self) -> u64 {
        self.items.len() as u64 + self.retired.items
    }

    /// Events considered so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Connections that reached CONNECTED so far (the first and every reconnection).
    pub fn connections(&self) -> u32 {
        self.connections
    }

    pub fn summary(&self) -> Summary {
        // The first items and the latest ones.
        let room = SUMMARY_ITEMS - self.first.len();
        let latest = self
            .order
            .iter()
            .skip(self.order.len().saturating_sub(room));
        let items: Vec<ItemSummary> = self
            .first
            .iter()
            .chain(latest)
            .map(|pfa| item_summary(pfa, &self.items[pfa]))
            .collect();
        let mut durations = self.retired.durations;
        let mut unfinished = Vec::new();
        let mut unfinished_omitted = self.retired.unfinished;
        for pfa in self.tracked() {
            let lifecycle = &self.items[pfa].lifecycle;
            if let Some(ms) = lifecycle.queued_to_terminal_ms() {
                durations.push(ms as f64);
            }
            if lifecycle.ended().is_none() {
                if unfinished.len() < SUMMARY_ITEMS {
                    unfinished.push(pfa.clone());
                } else {
                    unfinished_omitted += 1;
                }
            }
        }
        let expectation = self.config.expect.as_ref().map(|e| {
            let status = if self.failed.is_some() && !self.satisfied() {
                Status::Failed
            } else if self.satisfied() {
                Status::Satisfied
            } else {
                Status::Pending
            };
            let explanation = match status {
                Status::Failed => self.failed.clone(),
                Status::Pending => Some(self.explain_unmet()),
                Status::Satisfied => None,
            };
            ExpectationSummary {
                pattern: e.pattern.source().to_string(),
                mode: e.mode,
                per_item: e.per_item,
                status,
                explanation,
            }
        });
        let seq = (self.epoch.is_some() || self.seqs.last().is_some()).then(|| SeqSummary {
            epoch: self.epoch.clone(),
            last_seq: self.seqs.last(),
            gaps: self.seqs.gaps,
            missing: self.seqs.missing().len() as u64,
            duplicates: self.seqs.duplicates,
            late: self.seqs.late,
            epoch_changes: self.epoch_changes,
            truncations: self.truncations,
        });
        Summary {
            organization_id: self.config.org.clone(),
            protocol: self.protocol,
            frames: self.frames,
            events: self.events,
            replayed: self.replayed,
            hidden: self.hidden,
            by_type: self.by_type.clone(),
            unfinished,
            unfinished_omitted,
            items_omitted: self.items_seen() - items.len() as u64,
            items,
            queued_to_terminal_ms: durations.stats(),
            delivery_latency_ms: self.latencies.stats(),
            latency_source: (self.latencies.count > 0).then(|| {
                if self.precise_latency {
                    "publishedAtUs"
                } else {
                    "timestamp (1 ms resolution)"
                }
                .to_string()
            }),
            seq,
            reconnects: self.connections.saturating_sub(1),
            loss_windows: self.loss_windows.clone(),
            malformed: self.malformed,
            unknown_types: self.unknown.iter().cloned().collect(),
            expectation,
        }
    }
}

fn item_summary(pfa: &str, item: &Item) -> ItemSummary {
    let (expectation, explanation) = match &item.matcher {
        Some(m) => {
            let explanation = (m.status() != Status::Satisfied).then(|| m.explain());
            (Some(m.status()), explanation)
        }
        None => (None, None),
    };
    let lifecycle = &item.lifecycle;
    ItemSummary {
        pfa_id: pfa.to_string(),
        // An item exists once one of its events was considered, so it has a type.
        state: lifecycle
            .state()
            .cloned()
            .unwrap_or_else(|| EventType::from("")),
        terminal: lifecycle.ended().is_some(),
        events: lifecycle.events().iter().map(|k| k.to_string()).collect(),
        queued_to_terminal_ms: lifecycle.queued_to_terminal_ms(),
        details: lifecycle.details().to_string(),
        error: item.error.clone(),
        conflicting_fields: item.conflicting_fields.clone(),
        expectation,
        explanation,
        events_omitted: lifecycle.events_omitted(),
    }
}

fn preview(raw: &str) -> String {
    const MAX: usize = 120;
    if raw.chars().count() <= MAX {
        raw.to_string()
    } else {
        format!("{}…", raw.chars().take(MAX).collect::<String>())
    }
}

/// The value at a dotted path (`details.error`, `details.conflictingFields.0`).
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    value.pointer(&json_pointer(path))
}

/// The JSON pointer (RFC 6901) of a dotted path: `details.error` is
/// `/details/error`; `~` and `/` inside a key are escaped as `~0` and `~1`.
pub fn json_pointer(path: &str) -> String {
    path.split('.')
        .map(|key| format!("/{}", key.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// `--where` equality: strings compare as text, other values by their JSON text.
fn matches_value(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        other => serde_json::to_string(other).is_ok_and(|text| text == wanted),
    }
}

/// Whether every `--where` rule holds for `value` (the proxy matches frames so too).
pub fn matches_wheres(value: &Value, wheres: &[(String, String)]) -> bool {
    wheres
        .iter()
        .all(|(path, wanted)| lookup(value, path).is_some_and(|v| matches_value(v, wanted)))
}

/// Parses `FIELD=VALUE` for `--where`.
pub fn parse_where(s: &str) -> Result<(String, String), String> {
    let (path, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not FIELD=VALUE (for example details.error=timeout)"))?;
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!("{path:?} is not a dotted field path"));
    }
    Ok((path.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn connected(seq: Option<u64>, epoch: Option<&str>, truncated: Option<bool>) -> Connected {
        Connected {
            organization_id: "o".into(),
            timestamp: Timestamp::now(),
            seq,
            epoch: epoch.map(String::from),
            history_truncated: truncated,
            extra: Default::default(),
        }
    }

    fn event(kind: &str, pfa: &str, seq: Option<u64>) -> String {
        let mut v = json!({"type": kind, "pfaId": pfa, "organizationId": "o", "timestamp": Timestamp::now()});
        match kind {
            "SYNC_SUCCESS" => v["details"] = json!({"newVersion": 2}),
            "SYNC_FAILED" => v["details"] = json!({"error": "timeout", "retryCount": 3}),
            "SYNC_CONFLICT" => {
                v["details"] = json!({"conflictId": "c", "conflictingFields": ["a"]})
            }
            _ => {}
        }
        if let Some(seq) = seq {
            v["seq"] = json!(seq);
        }
        v.to_string()
    }

    fn check(config: CheckConfig) -> StreamCheck {
        StreamCheck::new(CheckConfig {
            org: "o".into(),
            ..config
        })
    }

    fn feed(check: &mut StreamCheck, raw: &str) -> FrameOutcome {
        check.on_frame(raw, SystemTime::now()).unwrap()
    }

    fn expectation(pattern: &str, mode: Mode, per_item: bool) -> Option<Expectation> {
        Some(Expectation {
            pattern: Arc::new(Pattern::parse(pattern).unwrap()),
            mode,
            per_item,
            min_items: 1,
        })
    }

    #[test]
    fn distinct_items_are_tracked_up_to_a_bound_and_the_summary_says_what_it_left_out() {
        let mut c = check(CheckConfig::default());
        c.on_connected(&connected(None, None, None), None);
        let n = MAX_TRACKED_ITEMS + 2_000;
        for i in 0..n {
            feed(&mut c, &event("SYNC_QUEUED", &format!("p{i}"), None));
            if i % 2 == 0 {
                feed(&mut c, &event("SYNC_SUCCESS", &format!("p{i}"), None));
            }
        }
        // A hostile stream of type names and one pfaId without end.
        for i in 0..2 * MAX_TYPES {
            feed(&mut c, &event(&format!("X_{i}"), "p-last", None));
        }
        assert!(c.items.len() <= MAX_TRACKED_ITEMS);
        assert_eq!(c.first.len() + c.order.len(), c.items.len());
        let s = c.summary();
        assert_eq!(s.items.len(), SUMMARY_ITEMS);
        assert_eq!(s.items[0].pfa_id, "p0", "the first items are kept");
        let oldest_tracked = format!("p{}", SUMMARY_ITEMS / 2 + 2_001);
        assert_eq!(
            c.order.front(),
            Some(&oldest_tracked),
            "the oldest others retired"
        );
        assert_eq!(s.items.last().unwrap().pfa_id, "p-last");
        assert_eq!(s.items_omitted, n as u64 + 1 - SUMMARY_ITEMS as u64);
        assert_eq!(s.unfinished.len(), SUMMARY_ITEMS);
        assert_eq!(
            s.unfinished.len() as u64 + s.unfinished_omitted,
            n as u64 / 2 + 1
        );
        assert_eq!(
            s.queued_to_terminal_ms.as_ref().unwrap().count,
            n as u64 / 2
        );
        assert!(s.by_type.len() <= MAX_TYPES + 1 && s.by_type[OTHER_TYPES] > 0);
        assert_eq!(s.unknown_types.len(), MAX_TYPES);
        let last = s.items.last().unwrap();
        assert_eq!(
            last.events_omitted,
            2 * MAX_TYPES as u64 - crate::lifecycle::MAX_ITEM_EVENTS as u64
        );
        let value = serde_json::to_value(&s).unwrap();
        assert!(value["itemsOmitted"].is_u64() && value["unfinishedOmitted"].is_u64());
    }

    #[test]
    fn a_per_item_expectation_fails_when_an_unmet_item_must_be_retired() {
        let mut c = check(CheckConfig {
            expect: expectation("QUEUED TERMINAL", Mode::Subsequence, true),
            ..Default::default()
        });
        c.on_connected(&connected(None, None, None), None);
        let mut verdict = Verdict::Continue;
        for i in 0..=MAX_TRACKED_ITEMS {
            verdict = feed(&mut c, &event("SYNC_QUEUED", &format!("p{i}"), None)).verdict;
        }
        let Verdict::Failed(message) = verdict else {
            panic!("{verdict:?}")
        };
        let retired = format!("item p{} was retired", SUMMARY_ITEMS / 2);
        assert!(message.contains(&retired), "{message}");
        assert!(!c.satisfied());
    }

    #[test]
    fn gaps_duplicates_and_late_arrivals_are_counted() {
        let mut c = check(CheckConfig::default());
        c.on_connected(&connected(Some(2), Some("e"), None), None);
        assert!(
            feed(&mut c, &event("SYNC_QUEUED", "p", Some(3)))
                .findings
                .is_empty()
        );
        assert_eq!(
            feed(&mut c, &event("SYNC_QUEUED", "p", Some(6))).findings,
            [Finding::Gap { from: 4, to: 5 }]
        );
        assert_eq!(
            feed(&mut c, &event("SYNC_QUEUED", "p", Some(4))).findings,
            [Finding::Late(4)]
        );
        assert_eq!(
            feed(&mut c, &event("SYNC_QUEUED", "p", Some(6))).findings,
            [Finding::Duplicate(6)]
        );
        let seq = c.summary().seq.unwrap();
        assert_eq!(
            (
                seq.gaps,
                seq.missing,
                seq.late,
                seq.duplicates,
                seq.last_seq
            ),
            (1, 1, 1, 1, Some(6))
        );
        assert_eq!(c.resume_point(), Some((6, Some("e".into()))));
    }

    #[test]
    fn resume_truncation_and_epoch_changes_are_reported_and_counting_restarts() {
        let mut c = check(CheckConfig::default());
        c.on_connected(&connected(Some(0), Some("e1"), None), None);
        feed(&mut c, &event("SYNC_QUEUED", "p", Some(1)));
        let (findings, _) = c.on_connected(&connected(Some(9), Some("e1"), Some(false)), Some(1));
        assert!(findings.is_empty());
        assert_eq!(
            feed(&mut c, &event("SYNC_QUEUED", "p", Some(2))).findings,
            []
        );
        let (findings, _) = c.on_connected(&connected(Some(9), Some("e1"), Some(true)), Some(2));
        assert_eq!(findings, [Finding::HistoryTruncated { since: Some(2) }]);
        assert_eq!(
            feed(&mut c, &event("SYNC_QUEUED", "p", Some(7))).findings,
            [],
            "counting starts afresh"
        );
        let (findings, _) = c.on_connected(&connected(Some(0), Some("e2"), Some(true)), Some(7));
        assert!(
            matches!(&findings[..], [Finding::EpochChanged { from, to, last_seq: Some(7) }] if from == "e1" && to == "e2")
        );
        let summary = c.summary();
        assert_eq!(summary.reconnects, 3);
        assert_eq!(summary.seq.unwrap().epoch_changes, 1);
    }

    #[test]
    fn protocol_violations_fail_unless_lenient() {
        let mut strict = check(CheckConfig::default());
        strict.on_connected(&connected(None, None, None), None);
        let other_org = event("SYNC_QUEUED", "p", None)
            .replace(r#""organizationId":"o""#, r#""organizationId":"x""#);
        assert!(
            strict
                .on_frame(&other_org, SystemTime::now())
                .unwrap_err()
                .0
                .contains("rooms must isolate")
        );
        assert!(
            strict
                .on_frame("{nope", SystemTime::now())
                .unwrap_err()
                .0
                .contains("malformed")
        );
        let bad_time = event("SYNC_QUEUED", "p", None).replace('Z', "");
        assert!(
            strict
                .on_frame(&bad_time, SystemTime::now())
                .unwrap_err()
                .0
                .contains("timestamp")
        );
        let mut lenient = check(CheckConfig {
            lenient: true,
            ..Default::default()
        });
        lenient.on_connected(&connected(None, None, None), None);
        let outcome = feed(&mut lenient, "{nope");
        assert!(matches!(&outcome.findings[..], [Finding::Tolerated(_)]));
        assert_eq!(lenient.summary().malformed, 1);
    }

    #[test]
    fn unknown_types_are_tolerated_and_mentioned_once() {
        let mut c = check(CheckConfig::default());
        c.on_connected(&connected(None, None, None), None);
        assert_eq!(
            feed(&mut c, &event("SYNC_PAUSED", "p", None)).findings,
            [Finding::UnknownType("SYNC_PAUSED".into())]
        );
        assert_eq!(feed(&mut c, &event("SYNC_PAUSED", "p", None)).findings, []);
        assert_eq!(
            feed(&mut c, r#"{"type":"HELLO"}"#).findings,
            [Finding::UnknownType("HELLO".into())]
        );
    }

    #[test]
    fn whole_stream_expectation_and_strict_divergence() {
        let mut c = check(CheckConfig {
            expect: expectation("CONNECTED QUEUED PROCESSING+ TERMINAL", Mode::Strict, false),
            ..Default::default()
        });
        c.on_connected(&connected(None, None, None), None);
        assert_eq!(
            feed(&mut c, &event("SYNC_QUEUED", "p", None)).verdict,
            Verdict::Continue
        );
        assert!(matches!(
            feed(&mut c, &event("SYNC_SUCCESS", "p", None)).verdict,
            Verdict::Failed(_)
        ));
        let mut c = check(CheckConfig {
            expect: expectation(
                "CONNECTED QUEUED PROCESSING+ TERMINAL",
                Mode::Subsequence,
                false,
            ),
            ..Default::default()
        });
        c.on_connected(&connected(None, None, None), None);
        for kind in [
            "SYNC_QUEUED",
            "SYNC_QUEUED",
            "SYNC_PROCESSING",
            "SYNC_PROCESSING",
        ] {
            assert_eq!(
                feed(&mut c, &event(kind, "p", None)).verdict,
                Verdict::Continue
            );
        }
        assert_eq!(
            feed(&mut c, &event("SYNC_CONFLICT", "p", None)).verdict,
            Verdict::Satisfied
        );
        assert_eq!(c.summary().expectation.unwrap().status, Status::Satisfied);
    }

    #[test]
    fn a_per_item_expectation_fails_when_its_item_ends_otherwise() {
        let mut c = check(CheckConfig {
            expect: expectation("QUEUED PROCESSING+ SUCCESS", Mode::Subsequence, true),
            ..Default::default()
        });
        c.on_connected(&connected(None, None, None), None);
        for kind in ["SYNC_QUEUED", "SYNC_PROCESSING"] {
            assert_eq!(
                feed(&mut c, &event(kind, "p1", None)).verdict,
                Verdict::Continue,
                "{kind}"
            );
        }
        let verdict = feed(&mut c, &event("SYNC_CONFLICT", "p1", None)).verdict;
        assert!(
            matches!(&verdict, Verdict::Failed(m) if m.starts_with("item p1 ended with SYNC_CONFLICT before its expectation was met")),
            "{verdict:?}"
        );
    }

    #[test]
    fn per_item_expectations_wait_for_every_item() {
        let mut c = check(CheckConfig {
            expect: Some(Expectation {
                min_items: 2,
                ..expectation("QUEUED PROCESSING+ TERMINAL", Mode::Strict, true).unwrap()
            }),
            ..Default::default()
        });
        c.on_connected(&connected(None, None, None), None);
        for (kind, pfa) in [
            ("SYNC_QUEUED", "a"),
            ("SYNC_QUEUED", "b"),
            ("SYNC_PROCESSING", "a"),
            ("SYNC_PROCESSING", "b"),
            ("SYNC_SUCCESS", "a"),
        ] {
            assert_eq!(
                feed(&mut c, &event(kind, pfa, None)).verdict,
                Verdict::Continue,
                "{kind} {pfa}"
            );
        }
        assert!(c.explain_unmet().contains("item b"));
        assert_eq!(
            feed(&mut c, &event("SYNC_FAILED", "b", None)).verdict,
            Verdict::Satisfied
        );
        let summary = c.summary();
        assert_eq!(summary.unfinished, Vec::<String>::new());
        assert_eq!(summary.items[1].state, EventType::Failed);
        assert_eq!(summary.items[1].details, "timeout (retries 3)");
    }

    #[test]
    fn filters_and_fail_on() {
        let mut c = check(CheckConfig {
            items: vec!["a".into()],
            wheres: vec![("details.error".into(), "timeout".into())],
            fail_on: vec![EventType::Failed],
            ..Default::default()
        });
        c.on_connected(&connected(None, None, None), None);
        assert!(!feed(&mut c, &event("SYNC_FAILED", "b", None)).considered);
        assert!(
            !feed(&mut c, &event("SYNC_QUEUED", "a", None)).considered,
            "no details.error"
        );
        let outcome = feed(&mut c, &event("SYNC_FAILED", "a", None));
        assert!(outcome.considered);
        assert!(
            matches!(outcome.verdict, Verdict::Failed(ref m) if m.contains("SYNC_FAILED arrived for a"))
        );
    }

    #[test]
    fn replayed_events_are_neither_duplicates_nor_latency_samples() {
        let mut c = check(CheckConfig::default());
        c.on_connected(&connected(Some(5), Some("e"), Some(false)), Some(3));
        for seq in [4, 5, 6] {
            assert_eq!(
                feed(&mut c, &event("SYNC_QUEUED", "p", Some(seq))).findings,
                [],
                "seq {seq}"
            );
        }
        let s = c.summary();
        assert_eq!((s.events, s.replayed), (3, 2));
        assert_eq!(s.seq.unwrap().duplicates, 0);
        assert_eq!(s.delivery_latency_ms.unwrap().count, 1, "only the live one");
        assert_eq!(s.protocol, Some(ProtocolPart::Part2));
        // A connection without since replays nothing.
        c.on_connected(&connected(Some(6), Some("e"), None), None);
        feed(&mut c, &event("SYNC_QUEUED", "p", Some(7)));
        assert_eq!(c.summary().replayed, 2);
    }

    #[test]
    fn filters_say_how_many_events_they_hid_and_items_keep_their_details() {
        let mut c = check(CheckConfig {
            items: vec!["a".into(), "b".into()],
            ..Default::default()
        });
        assert_eq!(c.summary().protocol, None, "nothing received");
        c.on_connected(&connected(None, None, None), None);
        feed(&mut c, &event("SYNC_FAILED", "a", None));
        feed(&mut c, &event("SYNC_QUEUED", "x", None));
        feed(&mut c, &event("SYNC_CONFLICT", "b", None));
        feed(&mut c, &event("SYNC_SUCCESS", "y", None));
        let s = c.summary();
        assert_eq!((s.events, s.hidden), (2, 2));
        assert_eq!(s.protocol, Some(ProtocolPart::Part1));
        assert_eq!(s.items[0].error.as_deref(), Some("timeout"));
        assert_eq!(s.items[1].conflicting_fields, ["a"]);
        assert_eq!(s.items[1].error, None);
        let mut long = check(CheckConfig::default());
        long.on_connected(&connected(None, None, None), None);
        let huge = event("SYNC_FAILED", "a", None).replace("timeout", &"e".repeat(5000));
        feed(&mut long, &huge);
        let kept = long.summary().items[0].error.clone().unwrap();
        assert_eq!(kept.chars().count(), MAX_KEPT_TEXT + 1, "bounded");
    }

    #[test]
    fn summary_has_counts_states_and_durations() {
        let mut c = check(CheckConfig::default());
        c.on_connected(&connected(None, None, None), None);
        feed(&mut c, &event("SYNC_QUEUED", "a", None));
        feed(&mut c, &event("SYNC_QUEUED", "b", None));
        feed(&mut c, &event("SYNC_SUCCESS", "a", None));
        let s = c.summary();
        assert_eq!(s.by_type["SYNC_QUEUED"], 2);
        assert_eq!(s.by_type["CONNECTED"], 1);
        assert_eq!(s.unfinished, ["b"]);
        assert_eq!(s.queued_to_terminal_ms.unwrap().count, 1);
        assert_eq!(
            s.latency_source.as_deref(),
            Some("timestamp (1 ms resolution)")
        );
    }

    #[test]
    fn where_parsing_and_lookup() {
        assert_eq!(
            parse_where("details.error=x=y"),
            Ok(("details.error".into(), "x=y".into()))
        );
        assert!(parse_where("novalue").is_err());
        assert!(parse_where("a..b=1").is_err());
        let v = json!({"details": {"fields": ["x", "y"], "n": 5}});
        assert_eq!(lookup(&v, "details.fields.1"), Some(&json!("y")));
        assert!(matches_value(lookup(&v, "details.n").unwrap(), "5"));
        assert_eq!(lookup(&v, "details.missing"), None);
        assert_eq!(json_pointer("details.error"), "/details/error");
        assert_eq!(json_pointer("a~b.c/d"), "/a~0b/c~1d");
        let odd = json!({"a~b": {"c/d": 1}});
        assert_eq!(lookup(&odd, "a~b.c/d"), Some(&json!(1)));
        assert_eq!(lookup(&v, "details.fields.x"), None, "not an index");
        assert_eq!(lookup(&v, "details.n.0"), None, "not a container");
    }
}
