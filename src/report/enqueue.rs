//! The records of `enqueue`.

use serde::{Deserialize, Serialize};

use crate::lifecycle::ItemTrace;

/// The `summary` record of `enqueue`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnqueueSummary {
    pub ok: bool,
    pub organization_id: String,
    pub job_id: Option<String>,
    pub queued_count: u64,
    pub message: Option<String>,
    /// The queued items as the server named them (`id`, `pfaId`).
    pub queued: Vec<crate::protocol::QueuedItem>,
    /// With `--wait`: every item's events and timings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemTrace>,
}
