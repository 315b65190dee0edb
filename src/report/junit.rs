//! `--junit FILE`: JUnit XML that CI systems read, written with `quick-junit`. One
//! test case per checked thing (a `smoke` step, an item, an expectation); failures
//! carry what was expected and what was received.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

/// The result of one test case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed { message: String, details: String },
    Skipped { reason: String },
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

/// Test cases for the items of a stream check: passed when the item ended (with the
/// expected outcome, if one is given) or satisfied its per-item expectation.
pub fn item_cases(
    summary: &crate::check::Summary,
    classname: &str,
    expected_terminal: Option<&str>,
) -> Vec<Case> {
    summary
        .items
        .iter()
        .map(|item| {
            let received = item.events.join(" ");
            let failure = if let Some(explanation) = item
                .explanation
                .as_ref()
                .filter(|_| item.expectation != Some(crate::expect::Status::Satisfied))
            {
                Some(("expectation not met".to_string(), explanation.clone()))
            } else if !item.terminal {
                Some((
                    "no terminal event".to_string(),
                    format!("expected a terminal event\nreceived: {received}"),
                ))
            } else {
                expected_terminal
                    .filter(|e| *e != item.state.as_str())
                    .map(|expected| {
                        (
                            format!("ended {} instead of {expected}", item.state),
                            format!("expected: {expected}\nreceived: {received}"),
                        )
                    })
            };
            Case {
                name: item.pfa_id.clone(),
                classname: classname.to_string(),
                time: Duration::from_millis(item.queued_to_terminal_ms.unwrap_or(0).max(0) as u64),
                outcome: match failure {
                    Some((message, details)) => Outcome::Failed { message, details },
                    None => Outcome::Passed,
                },
            }
        })
        .collect()
}
