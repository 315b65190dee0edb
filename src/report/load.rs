//! The records of `load`.

use serde::{Deserialize, Serialize};

use crate::load::LoadSummary;
use crate::load::threshold::Verdict;

/// The `summary` record of `load`.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct LoadReport {
    pub ok: bool,
    #[serde(flatten)]
    pub summary: LoadSummary,
    pub thresholds: Vec<Verdict>,
}
