//! The `--json` format: NDJSON on stdout, one object per line, flushed per line,
//! nothing else on stdout.
//!
//! Every line is `{"type": "<record>", "data": {...}}`. Consumers must ignore record
//! types they do not know. The record types:
//!
//! | type | data |
//! |---|---|
//! | `listening` | `serve`, `replay` or `proxy` is bound: `{"addr":"127.0.0.1:PORT","url":"ws://127.0.0.1:PORT"}` (`proxy --control`: a second one, `http://`) |
//! | `open` | a socket opened: [`Open`] |
//! | `event` | a frame the server sent, untouched (a frame that is not JSON: a JSON string) |
//! | `close` | a socket closed: [`Close`] |
//! | `layer` | a `doctor` layer: `name`, `status` (pass, warn, fail, skip), `ms`, `detail`, `hint` |
//! | `step` | a `smoke` step: `name`, `status`, `ms`, `message`, `exitCode` |
//! | `queued` | `enqueue --wait`: the answer to the POST, before the events it caused: [`Queued`] |
//! | `conflict` | `conflicts ORG`: one conflict as the backend listed it: [`Conflict`](crate::protocol::Conflict) |
//! | `status` | `status ORG`: one look at the figures: [`StatusReport`] |
//! | `progress` | periodic figures of long runs (`load`) |
//! | `summary` | the final figures and verdict of a run |
//! | `warning` | something worth knowing that does not end the run: `message` |
//! | `error` | the error that ended the run: `message`, `exitCode` |
//!
//! [`Record`] is that list, closed: a record that is not one of its variants cannot
//! be written.

use std::net::SocketAddr;

use serde::Serialize;
use serde_json::value::RawValue;

use super::conflicts::{ConflictsSummary, ResolveSummary};
use super::connect::ConnectSummary;
use super::doctor::DoctorSummary;
use super::enqueue::{EnqueueSummary, Queued};
use super::load::LoadReport;
use super::replay::ReplaySummary;
use super::smoke::{SmokeSummary, Step};
use super::status::{StatusReport, StatusSummary};
use super::token::{TokenInspection, TokenSummary};
use super::watch::WatchSummary;

/// Every record `--json` writes, with its `{"type": …, "data": …}` envelope.
#[derive(Serialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum Record<'a> {
    Listening(Listening<'a>),
    Open(&'a Open),
    Event(EventData<'a>),
    Close(&'a Close),
    Step(&'a Step),
    Layer(&'a crate::diagnose::Layer),
    Queued(&'a Queued),
    Conflict(&'a crate::protocol::Conflict),
    Status(&'a StatusReport),
    Progress(&'a crate::load::Progress),
    Summary(Summary<'a>),
    Warning(Warning<'a>),
    Error(ErrorRecord),
}

/// A frame as the server sent it: JSON untouched, anything else as a JSON string so
/// nothing is lost.
#[derive(Serialize)]
#[serde(untagged)]
pub enum EventData<'a> {
    Json(&'a RawValue),
    Text(&'a str),
}

/// The final record of each subcommand.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Summary<'a> {
    Connect(&'a ConnectSummary),
    Watch(&'a WatchSummary),
    Enqueue(&'a EnqueueSummary),
    Smoke(&'a SmokeSummary),
    Load(&'a LoadReport),
    Token(&'a TokenSummary),
    TokenInspect(&'a TokenInspection),
    Conflicts(&'a ConflictsSummary),
    Resolve(&'a ResolveSummary),
    Status(&'a StatusSummary),
    Replay(&'a ReplaySummary),
    Doctor(&'a DoctorSummary),
}

impl Record<'_> {
    /// The record's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Listening(_) => "listening",
            Record::Open(_) => "open",
            Record::Event(_) => "event",
            Record::Close(_) => "close",
            Record::Step(_) => "step",
            Record::Layer(_) => "layer",
            Record::Queued(_) => "queued",
            Record::Conflict(_) => "conflict",
            Record::Status(_) => "status",
            Record::Progress(_) => "progress",
            Record::Summary(_) => "summary",
            Record::Warning(_) => "warning",
            Record::Error(_) => "error",
        }
    }
}

/// One NDJSON line (with its newline) for a record.
pub fn line(record: &Record<'_>) -> serde_json::Result<String> {
    let mut text = serde_json::to_string(record)?;
    text.push('\n');
    Ok(text)
}

#[derive(Serialize)]
pub struct Listening<'a> {
    pub addr: SocketAddr,
    pub url: &'a str,
}

/// A socket opened.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Open {
    pub url: String,
    pub organization_id: String,
    /// From the first DNS query to the completed upgrade, in milliseconds.
    pub open_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subprotocol: Option<String>,
    /// 0 for the first connection, then 1, 2, … for reconnections.
    pub attempt: u32,
}

impl Open {
    /// The record of `opened`, the `attempt`-th connection to `org`.
    pub fn of(opened: &crate::client::ws::Opened, org: &str, attempt: u32) -> Open {
        Open {
            url: opened.display_url.clone(),
            organization_id: org.to_string(),
            open_ms: opened.open_time.as_secs_f64() * 1000.0,
            subprotocol: opened.subprotocol.clone(),
            attempt,
        }
    }
}

/// A socket closed: `code` (when a close frame was exchanged), `reason`, and
/// `initiator` (`client` or `server`).
pub use crate::client::session::Closed as Close;

#[derive(Serialize)]
pub struct Warning<'a> {
    pub message: &'a str,
}

#[derive(Debug, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorRecord {
    pub message: String,
    pub exit_code: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shape() {
        let text = line(&Record::Listening(Listening {
            addr: "127.0.0.1:9".parse().unwrap(),
            url: "ws://127.0.0.1:9",
        }))
        .unwrap();
        assert!(text.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "listening");
        assert_eq!(v["data"]["addr"], "127.0.0.1:9");
    }

    #[test]
    fn events_keep_the_server_frame_untouched() {
        let raw = RawValue::from_string(r#"{"type":"X", "b":1,"a":[2]}"#.into()).unwrap();
        let text = line(&Record::Event(EventData::Json(&raw))).unwrap();
        assert_eq!(
            text,
            "{\"type\":\"event\",\"data\":{\"type\":\"X\", \"b\":1,\"a\":[2]}}\n"
        );
        let text = line(&Record::Event(EventData::Text("not json"))).unwrap();
        assert_eq!(text, "{\"type\":\"event\",\"data\":\"not json\"}\n");
        let error = Record::Error(ErrorRecord {
            message: "m".into(),
            exit_code: 3,
        });
        assert_eq!(error.kind(), "error");
        let v: serde_json::Value = serde_json::from_str(&line(&error).unwrap()).unwrap();
        assert_eq!(v["data"]["exitCode"], 3);
    }
}
