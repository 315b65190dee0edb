//! The records of `token`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::protocol::Timestamp;

/// The `summary` record of `token`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenSummary {
    pub token: String,
    pub algorithm: String,
    /// The signed claims.
    pub claims: Map<String, Value>,
    pub expires_at: Timestamp,
}

/// The token alone on its line, ready for `--token "$(syncprobe token …)"`.
pub fn summary(s: &TokenSummary) -> String {
    format!("{}\n", s.token)
}
