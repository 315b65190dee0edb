//! The records of `connect`.

use serde::Serialize;

/// The `summary` record of `connect`.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectSummary {
    pub ok: bool,
    pub url: String,
    pub organization_id: String,
    /// From the first DNS query to the completed upgrade.
    pub open_ms: f64,
    /// From the first DNS query to CONNECTED.
    pub connected_ms: f64,
    /// `part2` when CONNECTED carries `seq` and `epoch`, else `part1`.
    pub protocol: String,
    pub seq: Option<u64>,
    pub epoch: Option<String>,
    /// Frames received during `--hold`.
    pub events_during_hold: u64,
}
