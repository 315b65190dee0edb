//! The records of `watch-sync`.

use serde::{Deserialize, Serialize};

use crate::check;

/// The `summary` record of `watch-sync`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WatchSummary {
    /// `satisfied`, `failed`, `timeout`, `interrupted`, `protocol-error`,
    /// `closed`, `gave-up`, `count`, `duration`.
    pub outcome: String,
    pub duration_ms: f64,
    #[serde(flatten)]
    pub check: check::Summary,
}
