//! The records of `smoke`: one `step` record per step, then the summary.

use serde::{Deserialize, Serialize};

use super::human::{self, paint};
use crate::lifecycle::ItemTrace;
use crate::protocol::ProtocolPart;

/// Which server a smoke test ran against.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// The bundled server, started in-process on a free port.
    Embedded,
    /// A server given by `--url` (or `SYNCPROBE_URL`, or a full socket URL).
    Url,
}

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
    pub server: ServerKind,
    pub url: String,
    pub organization_id: String,
    /// `part2` when CONNECTED carried `seq` and `epoch`, `part1` otherwise.
    /// Absent when the socket could not be opened.
    pub protocol: Option<ProtocolPart>,
    pub steps: Vec<Step>,
    pub items: Vec<ItemTrace>,
    pub duration_ms: f64,
}

/// The end of the connect step's message when earlier URLs did not answer: which
/// instance every step talks to.
pub fn failed_over(url: &str, failed: usize) -> String {
    format!(
        "; at {url}, after {} that did not answer (every step uses this instance)",
        crate::text::count(failed as u64, "URL")
    )
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
        crate::text::message_lines(&step.message)
    )
}

/// Said before the first step when no `--url` was given.
pub fn bundled_server(addr: std::net::SocketAddr) -> String {
    format!("no --url given: testing the bundled server, started on ws://{addr}")
}

/// The heading: which organization, at which socket URL (secrets masked).
pub fn banner(org: &str, url: &str) -> String {
    format!("Smoke test of {} at {url}\n", paint(human::BOLD, org))
}

/// The step that Ctrl-C cut short, if one was.
pub fn interrupted_step(s: &SmokeSummary) -> Option<&Step> {
    let interrupted = crate::exit::Exit::Interrupted.code();
    s.steps.iter().find(|d| d.exit_code == Some(interrupted))
}

/// The verdict and the step counts: one line, after a blank one unless `-q` (then
/// it is all that is printed).
pub fn summary(s: &SmokeSummary, verbosity: super::Verbosity) -> String {
    let count = |status: StepStatus| s.steps.iter().filter(|d| d.status == status).count();
    let (passed, failed, skipped) = (
        count(StepStatus::Passed),
        count(StepStatus::Failed),
        count(StepStatus::Skipped),
    );
    let verdict = match interrupted_step(s) {
        Some(step) => paint(
            human::RED,
            format!("smoke INTERRUPTED during step {}", step.name),
        ),
        None if failed == 0 => paint(human::GREEN, "smoke passed"),
        None => paint(human::RED, "smoke FAILED"),
    };
    let gap = if verbosity == super::Verbosity::Quiet {
        ""
    } else {
        "\n"
    };
    format!(
        "{gap}{verdict}: {passed} passed, {failed} failed, {skipped} skipped in {:.0} ms\n",
        s.duration_ms
    )
}
