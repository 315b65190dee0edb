//! The wire types of `shared/PROTOCOL.md`: server frames, REST bodies, and the
//! timestamp format. No I/O lives here.
//!
//! Parsing is tolerant where the protocol says so (unknown event types and unknown
//! fields are kept, not rejected) and strict where a client must be able to tell a
//! broken server from a working one: [`ServerFrame::parse`] returns a [`FrameError`]
//! naming the field that is missing or malformed.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The default WebSocket path template; `{org}` is replaced by the organization id.
pub const DEFAULT_SYNC_PATH: &str = "/api/ws/sync/{org}";
/// Close code for a connection whose path carries no organization id (Part 1).
pub const CLOSE_MISSING_ORG: u16 = 4000;
/// Close code sent to every client when the server shuts down (RFC 6455 "going away").
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a subscriber that fell too far behind the event stream. RFC 6455's
/// registry has "try again later" for exactly this; the reason names the last `seq`
/// delivered so the client can resume with `?since=`.
pub const CLOSE_TOO_SLOW: u16 = 1013;
/// Close code for a client message larger than the server accepts (RFC 6455).
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;
/// Close code for a session whose token expired (4000 + HTTP 401).
pub const CLOSE_TOKEN_EXPIRED: u16 = 4401;
/// Close code for an organization that is not, or no longer, allowed (4000 + 403).
pub const CLOSE_ORG_NOT_ALLOWED: u16 = 4403;
/// Close code for a client silent for longer than the idle timeout (4000 + 408).
pub const CLOSE_IDLE_TIMEOUT: u16 = 4408;
/// Close code for a client sending frames faster than its rate limit (4000 + 429).
pub const CLOSE_RATE_LIMITED: u16 = 4429;
/// Close code for a connection over a connection cap (4000 + 503).
pub const CLOSE_CAPACITY: u16 = 4503;

/// A UTC instant written exactly as JavaScript's `Date.prototype.toJSON` writes it:
/// `2025-11-28T10:00:00.000Z` (always milliseconds, always `Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp(Utc::now())
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(&self) -> i64 {
        self.0.timestamp_millis()
    }
}

/// Why a timestamp string is not in the protocol's format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "timestamp {0:?} is not UTC ISO-8601 with milliseconds and Z (like 2025-11-28T10:00:00.000Z)"
)]
pub struct TimestampError(pub String);

impl FromStr for Timestamp {
    type Err = TimestampError;

    /// Accepts only the exact `toJSON` shape: 24 characters, `.mmm` and a final `Z`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TimestampError(s.to_string());
        let b = s.as_bytes();
        if b.len() != 24 || b[19] != b'.' || b[23] != b'Z' || b[10] != b'T' {
            return Err(bad());
        }
        let parsed = DateTime::parse_from_rfc3339(s).map_err(|_| bad())?;
        Ok(Timestamp(parsed.with_timezone(&Utc)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The sync event types of Part 1, plus any type this version does not know.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Queued,
    Processing,
    Success,
    Conflict,
    Failed,
    /// A type this version does not know; clients must tolerate it.
    Other(String),
}

impl EventType {
    pub const KNOWN: [EventType; 5] = [
        EventType::Queued,
        EventType::Processing,
        EventType::Success,
        EventType::Conflict,
        EventType::Failed,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            EventType::Queued => "SYNC_QUEUED",
            EventType::Processing => "SYNC_PROCESSING",
            EventType::Success => "SYNC_SUCCESS",
            EventType::Conflict => "SYNC_CONFLICT",
            EventType::Failed => "SYNC_FAILED",
            EventType::Other(s) => s,
        }
    }

    /// Success, conflict and failure end an item's lifecycle.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            EventType::Success | EventType::Conflict | EventType::Failed
        )
    }

    pub fn is_known(&self) -> bool {
        !matches!(self, EventType::Other(_))
    }
}

impl From<&str> for EventType {
    fn from(s: &str) -> Self {
        match s {
            "SYNC_QUEUED" => EventType::Queued,
            "SYNC_PROCESSING" => EventType::Processing,
            "SYNC_SUCCESS" => EventType::Success,
            "SYNC_CONFLICT" => EventType::Conflict,
            "SYNC_FAILED" => EventType::Failed,
            other => EventType::Other(other.to_string()),
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: `{:<16}` in a table must pad.
        f.pad(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(EventType::from(String::deserialize(d)?.as_str()))
    }
}

/// `CONNECTED`, the first frame on every sync socket. `seq`, `epoch` and
/// `historyTruncated` are Part 2 additions and absent on Part 1 backends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connected {
    pub organization_id: String,
    pub timestamp: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_truncated: Option<bool>,
    /// Fields this version does not know, kept so nothing is lost.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Connected {
    /// Which part of the protocol the server speaks, as its CONNECTED shows it.
    pub fn part(&self) -> ProtocolPart {
        if self.seq.is_some() && self.epoch.is_some() {
            ProtocolPart::Part2
        } else {
            ProtocolPart::Part1
        }
    }
}

/// Part 1: what existing backends speak (no `seq`, no resume). Part 2: the
/// additions of `syncprobe serve` (`seq` and `epoch` on CONNECTED, resume, publish).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolPart {
    Part1,
    Part2,
}

/// `details` of a `SYNC_SUCCESS`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuccessDetails {
    pub new_version: i64,
}

/// `details` of a `SYNC_CONFLICT`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConflictDetails {
    pub conflict_id: String,
    pub conflicting_fields: Vec<String>,
}

/// `details` of a `SYNC_FAILED`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedDetails {
    pub error: String,
    pub retry_count: u32,
}

/// A sync event (`SYNC_*` or an unknown type carrying a `pfaId`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncEvent {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub pfa_id: String,
    pub organization_id: String,
    pub timestamp: Timestamp,
    /// Kept as JSON; [`SyncEvent::success`] and friends give the typed view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at_us: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SyncEvent {
    fn typed_details<T: serde::de::DeserializeOwned>(&self) -> Result<T, FrameError> {
        let details = self
            .details
            .as_ref()
            .ok_or_else(|| FrameError::MissingField {
                frame: self.kind.to_string(),
                field: "details".into(),
            })?;
        serde_json::from_value(details.clone()).map_err(|e| FrameError::BadField {
            frame: self.kind.to_string(),
            field: "details".into(),
            reason: e.to_string(),
        })
    }

    pub fn success(&self) -> Result<SuccessDetails, FrameError> {
        self.typed_details()
    }

    pub fn conflict(&self) -> Result<ConflictDetails, FrameError> {
        self.typed_details()
    }

    pub fn failed(&self) -> Result<FailedDetails, FrameError> {
        self.typed_details()
    }

    /// Checks that the `details` a known type requires are present and well typed.
    pub fn check_details(&self) -> Result<(), FrameError> {
        match self.kind {
            EventType::Success => self.success().map(drop),
            EventType::Conflict => self.conflict().map(drop),
            EventType::Failed => self.failed().map(drop),
            _ => Ok(()),
        }
    }

    /// A short human summary of `details`, for one-line displays.
    pub fn short_details(&self) -> String {
        match self.kind {
            EventType::Success => self
                .success()
                .map(|d| format!("newVersion={}", d.new_version))
                .unwrap_or_default(),
            EventType::Conflict => self
                .conflict()
                .map(|d| {
                    format!(
                        "{} fields={}",
                        d.conflict_id,
                        d.conflicting_fields.join(",")
                    )
                })
                .unwrap_or_default(),
            EventType::Failed => self
                .failed()
                .map(|d| format!("{} (retries {})", d.error, d.retry_count))
                .unwrap_or_default(),
            _ => self
                .details
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_default(),
        }
    }
}

/// Any frame the server sends on a sync socket.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerFrame {
    Connected(Connected),
    Event(SyncEvent),
    /// A well-formed JSON object with a `type` this version does not know and no `pfaId`.
    Unknown {
        kind: String,
        raw: Value,
    },
}

/// Why a frame is not a valid protocol frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is not valid JSON: {0}")]
    NotJson(String),
    #[error("frame is not a JSON object")]
    NotObject,
    #[error("frame has no string \"type\"")]
    NoType,
    #[error("{frame} frame has no \"{field}\"")]
    MissingField { frame: String, field: String },
    #[error("{frame} frame has a bad \"{field}\": {reason}")]
    BadField {
        frame: String,
        field: String,
        reason: String,
    },
}

impl ServerFrame {
    /// Parses one text frame, naming the offending field when it is not valid.
    pub fn parse(text: &str) -> Result<ServerFrame, FrameError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
        Self::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<ServerFrame, FrameError> {
        let obj = value.as_object().ok_or(FrameError::NotObject)?;
        let kind = obj
            .get("type")
            .and_then(Value::as_str)
            .ok_or(FrameError::NoType)?
            .to_string();
        let required: &[&str] = match EventType::from(kind.as_str()) {
            _ if kind == "CONNECTED" => &["organizationId", "timestamp"],
            EventType::Other(_) if !obj.contains_key("pfaId") => {
                return Ok(ServerFrame::Unknown { kind, raw: value });
            }
            _ => &["pfaId", "organizationId", "timestamp"],
        };
        for field in required {
            if !obj.contains_key(*field) {
                return Err(FrameError::MissingField {
                    frame: kind,
                    field: (*field).to_string(),
                });
            }
        }
        for (field, value) in obj {
            if let Err(reason) = check_field(field, value) {
                return Err(FrameError::BadField {
                    frame: kind,
                    field: field.clone(),
                    reason,
                });
            }
        }
        let bad = |e: serde_json::Error| FrameError::BadField {
            frame: kind.clone(),
            field: "?".into(),
            reason: e.to_string(),
        };
        if kind == "CONNECTED" {
            let connected: Connected = serde_json::from_value(value.clone()).map_err(bad)?;
            return Ok(ServerFrame::Connected(connected));
        }
        let event: SyncEvent = serde_json::from_value(value.clone()).map_err(bad)?;
        event.check_details()?;
        Ok(ServerFrame::Event(event))
    }

    pub fn kind(&self) -> &str {
        match self {
            ServerFrame::Connected(_) => "CONNECTED",
            ServerFrame::Event(e) => e.kind.as_str(),
            ServerFrame::Unknown { kind, .. } => kind,
        }
    }

    pub fn organization_id(&self) -> Option<&str> {
        match self {
            ServerFrame::Connected(c) => Some(&c.organization_id),
            ServerFrame::Event(e) => Some(&e.organization_id),
            ServerFrame::Unknown { raw, .. } => raw.get("organizationId").and_then(Value::as_str),
        }
    }
}

/// The type rule of each protocol field; fields it does not name are free-form.
fn check_field(field: &str, value: &Value) -> Result<(), String> {
    match field {
        "timestamp" => value
            .as_str()
            .ok_or_else(|| "not a string".to_string())?
            .parse::<Timestamp>()
            .map(drop)
            .map_err(|e| e.to_string()),
        "organizationId" | "pfaId" | "epoch" if !value.is_string() => Err("not a string".into()),
        "seq" | "publishedAtUs" if !value.is_u64() => Err("not a non-negative integer".into()),
        "historyTruncated" if !value.is_boolean() => Err("not a boolean".into()),
        _ => Ok(()),
    }
}

/// What the server writes for `CONNECTED`, so the server never builds it by hand.
impl Serialize for ServerFrame {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Tagged<'a, T> {
            #[serde(rename = "type")]
            kind: &'a str,
            #[serde(flatten)]
            body: &'a T,
        }
        match self {
            ServerFrame::Connected(c) => Tagged {
                kind: "CONNECTED",
                body: c,
            }
            .serialize(s),
            ServerFrame::Event(e) => e.serialize(s),
            ServerFrame::Unknown { raw, .. } => raw.serialize(s),
        }
    }
}

/// The outcome a test asks `serve` to simulate for queued items (Part 2). With
/// `Mixed`, items cycle through success, conflict, failed and retry-then-success.
///
/// `enqueue --outcome` takes it as is (`clap::ValueEnum`, the same kebab-case
/// spellings); the variants carry no doc comments, which clap would show as help
/// of each value (and in the checked-in completions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Success,
    Conflict,
    Failed,
    RetryThenSuccess,
    Mixed,
}

impl Outcome {
    pub const ALL: [&'static str; 5] = [
        "success",
        "conflict",
        "failed",
        "retry-then-success",
        "mixed",
    ];
}

/// `POST /api/pems/write-sync` body (Part 1 fields plus Part 2 test controls).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteSyncRequest {
    pub organization_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modification_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pfa_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// One queued item in a write-sync answer (Part 2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedItem {
    pub id: String,
    pub pfa_id: String,
}

/// `200` answer of `POST /api/pems/write-sync`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteSyncResponse {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub queued_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_completion_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<QueuedItem>>,
}

/// The error body of every REST error: `{"error":"VALIDATION_ERROR","message":…,"details":…}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// Queue health as `GET /api/pems/sync-status` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Degraded,
    Unhealthy,
}

impl Health {
    /// `healthy` at a success rate of at least 95, `degraded` at 80, else `unhealthy`.
    pub fn from_success_rate(rate: u32) -> Health {
        match rate {
            95.. => Health::Healthy,
            80.. => Health::Degraded,
            _ => Health::Unhealthy,
        }
    }
}

/// `GET /api/pems/sync-status` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    pub total_queued: u64,
    pub processing: u64,
    pub completed: u64,
    pub failed: u64,
    /// Milliseconds; `null` when nothing finished recently (as existing backends say).
    #[serde(default)]
    pub avg_sync_time: Option<u64>,
    pub last_sync_at: Option<Timestamp>,
    pub next_sync_at: Option<Timestamp>,
    pub health: Health,
    pub success_rate: u32,
    /// Extra figures a server may add (`serve` adds `conflicts`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /api/ws/publish` body (Part 2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishRequest {
    pub organization_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pfa_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<f64>,
}

/// `POST /api/ws/publish` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishResponse {
    pub success: bool,
    /// Events published before the answer was sent (all of them when unpaced).
    pub published: u64,
    /// Events accepted in all; paced ones are published after the answer.
    pub accepted: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
}

/// How a conflict is resolved (`POST /api/pems/conflicts/{id}/resolve`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Keep the local change: it is queued again.
    UseLocal,
    /// Keep what upstream has: the item is marked synced, nothing is queued.
    UsePems,
    /// Write `mergedData`: it is queued again.
    Merge,
}

impl Resolution {
    pub const ALL: [&'static str; 3] = ["use_local", "use_pems", "merge"];

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::UseLocal => "use_local",
            Resolution::UsePems => "use_pems",
            Resolution::Merge => "merge",
        }
    }

    /// Whether resolving this way queues the item again.
    pub fn requeues(self) -> bool {
        self != Resolution::UsePems
    }
}

/// One conflict of `GET /api/pems/conflicts`. Timestamps and `status` are kept as
/// the backend wrote them (a client shows them; it does not judge them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub id: String,
    pub pfa_id: String,
    #[serde(default)]
    pub local_version: Option<i64>,
    #[serde(default)]
    pub pems_version: Option<i64>,
    #[serde(default)]
    pub conflict_fields: Vec<String>,
    #[serde(default)]
    pub local_data: Value,
    #[serde(default)]
    pub pems_data: Value,
    /// `unresolved` or `resolved`.
    pub status: String,
    #[serde(default)]
    pub resolution: Option<String>,
    #[serde(default)]
    pub merged_data: Value,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub resolved_at: Option<String>,
    #[serde(default)]
    pub resolved_by: Option<String>,
}

/// `GET /api/pems/conflicts?organizationId=…[&status=…]` answer (newest first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConflictList {
    pub conflicts: Vec<Conflict>,
    pub total: u64,
}

/// `POST /api/pems/conflicts/{id}/resolve` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolveRequest {
    pub resolution: Resolution,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_data: Option<Value>,
}

/// `POST /api/pems/conflicts/{id}/resolve` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolveResponse {
    pub success: bool,
    pub conflict_id: String,
    #[serde(default)]
    pub resolved_at: Option<String>,
    /// What will be written upstream: `null` for `use_pems`.
    #[serde(default)]
    pub applied_changes: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECTED: &str =
        r#"{"type":"CONNECTED","organizationId":"org-rio","timestamp":"2025-11-28T10:00:00.000Z"}"#;
    const SUCCESS: &str = r#"{"type":"SYNC_SUCCESS","pfaId":"pfa-123","organizationId":"org-rio","timestamp":"2025-11-28T10:00:01.250Z","details":{"newVersion":5}}"#;

    fn round_trip(text: &str) {
        let frame = ServerFrame::parse(text).unwrap();
        let again = serde_json::to_string(&frame).unwrap();
        let a: Value = serde_json::from_str(text).unwrap();
        let b: Value = serde_json::from_str(&again).unwrap();
        assert_eq!(a, b, "round trip changed the frame");
        assert_eq!(ServerFrame::parse(&again).unwrap(), frame);
    }

    #[test]
    fn protocol_examples_round_trip() {
        round_trip(CONNECTED);
        round_trip(SUCCESS);
        round_trip(
            r#"{"type":"SYNC_CONFLICT","pfaId":"p","organizationId":"o","timestamp":"2025-11-28T10:00:01.250Z","details":{"conflictId":"c-1","conflictingFields":["a","b"]},"seq":4}"#,
        );
        round_trip(
            r#"{"type":"SYNC_FAILED","pfaId":"p","organizationId":"o","timestamp":"2025-11-28T10:00:01.250Z","details":{"error":"boom","retryCount":3}}"#,
        );
        round_trip(
            r#"{"type":"CONNECTED","organizationId":"o","timestamp":"2025-11-28T10:00:00.000Z","seq":7,"epoch":"e1","historyTruncated":true}"#,
        );
    }

    #[test]
    fn connected_has_typed_fields() {
        let ServerFrame::Connected(c) = ServerFrame::parse(CONNECTED).unwrap() else {
            panic!("not CONNECTED")
        };
        assert_eq!(c.organization_id, "org-rio");
        assert_eq!(c.timestamp.to_string(), "2025-11-28T10:00:00.000Z");
        assert_eq!(c.seq, None);
    }

    #[test]
    fn success_details_are_typed() {
        let ServerFrame::Event(e) = ServerFrame::parse(SUCCESS).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(e.kind, EventType::Success);
        assert_eq!(e.success().unwrap().new_version, 5);
        assert_eq!(e.short_details(), "newVersion=5");
    }

    #[test]
    fn unknown_types_and_fields_are_kept() {
        let frame = ServerFrame::parse(r#"{"type":"SYNC_PAUSED","pfaId":"p","organizationId":"o","timestamp":"2025-11-28T10:00:01.250Z","why":"x"}"#).unwrap();
        let ServerFrame::Event(e) = &frame else {
            panic!("unknown type with pfaId should be an event")
        };
        assert_eq!(e.kind, EventType::Other("SYNC_PAUSED".into()));
        assert_eq!(e.extra["why"], "x");
        round_trip(r#"{"type":"HELLO","x":1}"#);
        assert_eq!(
            ServerFrame::parse(r#"{"type":"HELLO"}"#).unwrap().kind(),
            "HELLO"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = ServerFrame::parse(
            r#"{"type":"SYNC_QUEUED","organizationId":"o","timestamp":"2025-11-28T10:00:01.250Z"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            FrameError::MissingField {
                frame: "SYNC_QUEUED".into(),
                field: "pfaId".into()
            }
        );
        let e = ServerFrame::parse(
            r#"{"type":"CONNECTED","organizationId":"o","timestamp":"2025-11-28 10:00:00"}"#,
        )
        .unwrap_err();
        assert!(
            matches!(e, FrameError::BadField { ref field, .. } if field == "timestamp"),
            "{e}"
        );
        let e = ServerFrame::parse(r#"{"type":"SYNC_SUCCESS","pfaId":"p","organizationId":"o","timestamp":"2025-11-28T10:00:01.250Z","details":{"newVersion":"5"}}"#).unwrap_err();
        assert!(
            matches!(e, FrameError::BadField { ref field, .. } if field == "details"),
            "{e}"
        );
        assert!(matches!(
            ServerFrame::parse("not json"),
            Err(FrameError::NotJson(_))
        ));
        assert_eq!(ServerFrame::parse("[1]"), Err(FrameError::NotObject));
        assert_eq!(ServerFrame::parse(r#"{"type":1}"#), Err(FrameError::NoType));
    }

    #[test]
    fn timestamps_use_the_js_format_only() {
        let t: Timestamp = "2025-11-28T10:00:01.250Z".parse().unwrap();
        assert_eq!(t.to_string(), "2025-11-28T10:00:01.250Z");
        assert_eq!(t.millis() % 1000, 250);
        for bad in [
            "2025-11-28T10:00:01Z",
            "2025-11-28T10:00:01.250+00:00",
            "2025-11-28T10:00:01.250123Z",
            "2025-13-28T10:00:01.250Z",
            "yesterday",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad} accepted");
        }
        let now = Timestamp::now().to_string();
        assert_eq!(now.len(), 24, "{now}");
        assert!(now.ends_with('Z'));
    }

    #[test]
    fn rest_bodies_round_trip() {
        let req: WriteSyncRequest = serde_json::from_str(
            r#"{"organizationId":"org-rio","modificationIds":["m-1","m-2"],"priority":5}"#,
        )
        .unwrap();
        assert_eq!(req.priority, Some(5));
        assert_eq!(req.modification_ids.as_deref().unwrap().len(), 2);
        let resp: WriteSyncResponse = serde_json::from_str(r#"{"success":true,"jobId":"write-sync-1732788000000-org-rio","queuedCount":2,"estimatedCompletionTime":"2025-11-28T10:01:00.000Z"}"#).unwrap();
        assert_eq!(resp.queued_count, 2);
        let none: WriteSyncResponse = serde_json::from_str(
            r#"{"success":true,"message":"No pending modifications to sync","queuedCount":0}"#,
        )
        .unwrap();
        assert_eq!(none.job_id, None);
        let status: SyncStatus = serde_json::from_str(r#"{"totalQueued":10,"processing":2,"completed":150,"failed":3,"avgSyncTime":2500,"lastSyncAt":"2025-11-28T10:01:00.000Z","nextSyncAt":null,"health":"healthy","successRate":98}"#).unwrap();
        assert_eq!(status.health, Health::Healthy);
        let back = serde_json::to_value(&status).unwrap();
        assert_eq!(back["successRate"], 98);
        let err: ApiError =
            serde_json::from_str(r#"{"error":"FORBIDDEN","message":"no"}"#).unwrap();
        assert_eq!(err.error, "FORBIDDEN");
    }

    #[test]
    fn existing_backends_answers_parse() {
        // avgSyncTime is null when nothing finished in the last day.
        let status: SyncStatus = serde_json::from_str(r#"{"totalQueued":0,"processing":0,"completed":0,"failed":0,"avgSyncTime":null,"lastSyncAt":null,"nextSyncAt":"2025-11-28T10:01:00.000Z","health":"healthy","successRate":100}"#).unwrap();
        assert_eq!(status.avg_sync_time, None);
        // The original's list entries carry more than syncprobe reads.
        let list: ConflictList = serde_json::from_str(r#"{"conflicts":[{"id":"conflict_1_abc","pfaId":"PFA-1","pfaDetails":{"category":"x"},"localVersion":3,"pemsVersion":5,"conflictFields":["forecastStart"],"localData":{},"pemsData":{},"status":"unresolved","resolution":null,"mergedData":null,"createdAt":"2025-11-28T10:00:00.000Z","resolvedAt":null,"resolvedBy":null,"modifiedBy":{"id":"u"}}],"total":1}"#).unwrap();
        assert_eq!(list.conflicts[0].pems_version, Some(5));
        let body = serde_json::to_value(ResolveRequest {
            resolution: Resolution::UseLocal,
            merged_data: None,
        })
        .unwrap();
        assert_eq!(body, serde_json::json!({"resolution": "use_local"}));
    }

    #[test]
    fn health_thresholds() {
        assert_eq!(Health::from_success_rate(100), Health::Healthy);
        assert_eq!(Health::from_success_rate(95), Health::Healthy);
        assert_eq!(Health::from_success_rate(94), Health::Degraded);
        assert_eq!(Health::from_success_rate(80), Health::Degraded);
        assert_eq!(Health::from_success_rate(79), Health::Unhealthy);
    }

    #[test]
    fn displays_honour_width_and_fill() {
        assert_eq!(format!("[{:<16}]", EventType::Queued), "[SYNC_QUEUED     ]");
        assert_eq!(
            format!("[{:*>8}]", EventType::Other("PING".into())),
            "[****PING]"
        );
        let t: Timestamp = "2025-11-28T10:00:00.000Z".parse().unwrap();
        assert_eq!(format!("[{t:>26}]"), "[  2025-11-28T10:00:00.000Z]");
    }
}
