//! `--junit FILE`: JUnit XML that CI systems read, written with `quick-junit`. One
//! test case per checked thing (a `smoke` step, an item, an expectation); failures
//! carry what was expected and what was received. What could not be judged because
//! the run was cut short (Ctrl-C, a broken stream) is an error case, not a pass.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::smoke::{Step, StepStatus};
use crate::exit::Exit;
use crate::lifecycle::ItemTrace;
use crate::protocol::EventType;

/// The result of one test case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed {
        message: String,
        details: String,
    },
    /// Not judged: the run ended before it could be (Ctrl-C, a broken connection).
    Error {
        message: String,
        details: String,
    },
    Skipped {
        reason: String,
    },
}

/// One test case.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub classname: String,
    pub time: Duration,
    pub outcome: Outcome,
}

/// Writes one suite of `cases` to `path`.
pub fn write(path: &Path, suite: &str, cases: &[Case]) -> anyhow::Result<()> {
    let mut suite_xml = TestSuite::new(suite);
    for case in cases {
        let status = match &case.outcome {
            Outcome::Passed => TestCaseStatus::success(),
            Outcome::Failed { message, details } => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status
                    .set_message(message.as_str())
                    .set_description(details.as_str());
                status
            }
            Outcome::Error { message, details } => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                status
                    .set_message(message.as_str())
                    .set_description(details.as_str());
                status
            }
            Outcome::Skipped { reason } => {
                let mut status = TestCaseStatus::skipped();
                status.set_message(reason.as_str());
                status
            }
        };
        let mut test_case = TestCase::new(case.name.as_str(), status);
        test_case
            .set_classname(case.classname.as_str())
            .set_time(case.time);
        suite_xml.add_test_case(test_case);
    }
    let mut report = Report::new("syncprobe");
    report.add_test_suite(suite_xml);
    let file = std::fs::File::create(path)
        .with_context(|| format!("failed to create the JUnit file {}", path.display()))?;
    report
        .serialize(std::io::BufWriter::new(file))
        .with_context(|| format!("failed to write the JUnit file {}", path.display()))
}

/// What a JUnit case needs of an item, whichever view it comes from.
struct ItemResult<'a> {
    name: &'a str,
    /// The event types received, space-separated.
    received: String,
    /// How it ended: `None` when no terminal event arrived.
    ended: Option<&'a str>,
    /// Why its own expectation is not met, if it has one that is not.
    unmet: Option<&'a str>,
    time: Duration,
}

impl<'a> From<&'a crate::check::ItemSummary> for ItemResult<'a> {
    fn from(item: &'a crate::check::ItemSummary) -> Self {
        let unmet = item
            .explanation
            .as_deref()
            .filter(|_| item.expectation != Some(crate::expect::Status::Satisfied));
        ItemResult {
            name: &item.pfa_id,
            received: item.events.join(" "),
            ended: item.terminal.then_some(item.state.as_str()),
            unmet,
            time: Duration::from_millis(item.queued_to_terminal_ms.unwrap_or(0).max(0) as u64),
        }
    }
}

impl<'a> From<&'a ItemTrace> for ItemResult<'a> {
    fn from(item: &'a ItemTrace) -> Self {
        ItemResult {
            name: &item.pfa_id,
            received: item.events_text(" "),
            ended: item.outcome.as_ref().map(EventType::as_str),
            unmet: None,
            time: Duration::from_secs_f64(item.terminal_ms.unwrap_or(0.0) / 1000.0),
        }
    }
}

/// One case per item: passed when the item ended (with `expected`, if given) and
/// its own expectation, if any, is met. An item without its terminal event fails,
/// or, when `cut` says why the run ended first, is an error.
fn item_results<'a>(
    items: impl IntoIterator<Item = ItemResult<'a>>,
    classname: &str,
    expected: Option<&str>,
    cut: Option<&str>,
) -> Vec<Case> {
    items
        .into_iter()
        .map(|item| {
            let outcome = match (item.unmet, item.ended, expected) {
                (Some(explanation), _, _) => Outcome::Failed {
                    message: "expectation not met".into(),
                    details: explanation.to_string(),
                },
                (None, None, _) if cut.is_some() => Outcome::Error {
                    message: format!("{} before its terminal event", cut.unwrap_or_default()),
                    details: format!("expected a terminal event\nreceived: {}", item.received),
                },
                (None, None, _) => Outcome::Failed {
                    message: "no terminal event".into(),
                    details: format!("expected a terminal event\nreceived: {}", item.received),
                },
                (None, Some(got), Some(want)) if got != want => Outcome::Failed {
                    message: format!("ended {got} instead of {want}"),
                    details: format!("expected: {want}\nreceived: {}", item.received),
                },
                _ => Outcome::Passed,
            };
            Case {
                name: item.name.to_string(),
                classname: classname.to_string(),
                time: item.time,
                outcome,
            }
        })
        .collect()
}

/// Test cases for the items of a stream check (`watch-sync`): an item's own
/// expectation (`--per-item`) decides first.
pub fn item_cases(
    summary: &crate::check::Summary,
    classname: &str,
    expected_terminal: Option<&str>,
) -> Vec<Case> {
    item_results(
        summary.items.iter().map(ItemResult::from),
        classname,
        expected_terminal,
        None,
    )
}

/// Test cases for followed items (`enqueue --wait`, `smoke`); `cut` is why the
/// follow ended before every item did (`interrupted`), if it did.
pub fn trace_cases(
    items: &[ItemTrace],
    classname: &str,
    expected: Option<&str>,
    cut: Option<&str>,
) -> Vec<Case> {
    item_results(items.iter().map(ItemResult::from), classname, expected, cut)
}

/// A case for what did not get as far as the items (the connection, the POST):
/// an error when `interrupted` or broken, else a failure.
pub fn error_case(name: &str, classname: &str, message: &str, details: &str, error: bool) -> Case {
    let (message, details) = (message.to_string(), details.to_string());
    Case {
        name: name.to_string(),
        classname: classname.to_string(),
        time: Duration::ZERO,
        outcome: if error {
            Outcome::Error { message, details }
        } else {
            Outcome::Failed { message, details }
        },
    }
}

/// Test cases for `smoke`'s steps: a skipped step is a skipped case.
pub fn step_cases(steps: &[Step], classname: &str) -> Vec<Case> {
    steps
        .iter()
        .map(|step| Case {
            name: step.name.clone(),
            classname: classname.to_string(),
            time: Duration::from_secs_f64(step.ms / 1000.0),
            outcome: match step.status {
                StepStatus::Passed => Outcome::Passed,
                StepStatus::Skipped => Outcome::Skipped {
                    reason: step.message.clone(),
                },
                StepStatus::Failed if step.exit_code == Some(Exit::Interrupted.code()) => {
                    Outcome::Error {
                        message: format!("step {} interrupted", step.name),
                        details: step.message.clone(),
                    }
                }
                StepStatus::Failed => Outcome::Failed {
                    message: format!("step {} failed", step.name),
                    details: step.message.clone(),
                },
            },
        })
        .collect()
}

/// Test cases for `load`: one per threshold (failed when breached or not
/// measurable), and one for completeness (failed on loss unless `allow_loss`,
/// skipped when the server sends no `seq`, failed when no connection opened).
/// The cases of a `load` run; `interrupted`: stopped by Ctrl-C, so completeness is not
/// judged (an error case, not a failure or a pass).
pub fn load_cases(
    report: &super::load::LoadReport,
    allow_loss: bool,
    interrupted: bool,
) -> Vec<Case> {
    let s = &report.summary;
    let time = Duration::from_secs_f64(s.duration_ms.max(0.0) / 1000.0);
    let mut cases: Vec<Case> = report
        .thresholds
        .iter()
        .map(|v| Case {
            name: format!("threshold {}", v.threshold),
            classname: "syncprobe.load.thresholds".into(),
            time,
            outcome: if v.ok {
                Outcome::Passed
            } else {
                Outcome::Failed {
                    message: v.message.clone(),
                    details: format!(
                        "expected: {}\nmeasured: {}",
                        v.threshold,
                        v.actual
                            .map_or("not measured".into(), |a| format!("{a:.3}"))
                    ),
                }
            },
        })
        .collect();
    let outcome = match s.measured() {
        _ if interrupted => Outcome::Error {
            message: "interrupted (Ctrl-C) before the run ended".into(),
            details: super::load::loss(s).unwrap_or_default(),
        },
        _ if s.connections_opened == 0 => Outcome::Failed {
            message: "no connection opened".into(),
            details: super::load::errors_list(&s.errors),
        },
        Err(why) if why.may_hide_loss() && !allow_loss => Outcome::Failed {
            message: why.text().into(),
            details: super::load::loss(s).unwrap_or_default(),
        },
        Err(why) => Outcome::Skipped {
            reason: why.text().into(),
        },
        Ok(c) if c.is_clean() || allow_loss => Outcome::Passed,
        Ok(_) => Outcome::Failed {
            message: "events missing, duplicated or reordered".into(),
            details: super::load::loss(s).unwrap_or_default(),
        },
    };
    cases.push(Case {
        name: "completeness".into(),
        classname: "syncprobe.load".into(),
        time,
        outcome,
    });
    cases
}
