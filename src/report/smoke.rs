//! The records of `smoke`: one `step` record per step, then the summary.

use serde::{Deserialize, Serialize};

use super::human::{self, paint};
use crate::lifecycle::ItemTrace;

/// How a step ended.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Passed,
    Failed,
    Skipped,
}

/// One step, as the `step` record and the summary report it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub name: String,
    pub status: StepStatus,
    pub ms: f64,
    /// What was checked, why it failed, or why it was skipped.
    pub message: String,
    /// For a failed step: the exit code it stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// The `summary` record of `smoke`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SmokeSummary {
    pub ok: bool,
    /// `embedded` (the bundled server, started in-process) or `url`.
    pub server: String,
    pub url: String,
    pub organization_id: String,
    /// `part2` when CONNECTED carried `seq` and `epoch`, `part1` otherwise.
    pub protocol: Option<String>,
    pub steps: Vec<Step>,
    pub items: Vec<ItemTrace>,
    pub duration_ms: f64,
}

/// A step as one line: mark, name, time, what was found.
pub fn step_line(step: &Step) -> String {
    let mark = match step.status {
        StepStatus::Passed => paint(human::GREEN, "✓ pass"),
        StepStatus::Failed => paint(human::RED, "✗ FAIL"),
        StepStatus::Skipped => paint(human::YELLOW, "- skip"),
    };
    format!(
        "{mark} {:<12} {:>9}  {}",
        step.name,
        paint(human::DIM, format!("{:.1} ms", step.ms)),
        step.message
    )
}
