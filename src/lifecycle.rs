//! The lifecycle of one queued item as a client follows it: its events and when
//! they arrived.

use serde::{Deserialize, Serialize};

/// One followed item: its events and when they arrived, from the POST on.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ItemTrace {
    pub pfa_id: String,
    pub events: Vec<String>,
    pub queued_ms: Option<f64>,
    pub processing_ms: Option<f64>,
    pub terminal_ms: Option<f64>,
    /// The terminal event type, once it arrived.
    pub outcome: Option<String>,
    pub details: String,
}
