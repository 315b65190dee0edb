//! `enqueue ORG`: queue writes through `POST /api/pems/write-sync` and, with
//! `--wait`, follow every queued item to its terminal event.
//!
//! With `--wait` the socket is opened (and CONNECTED checked) before the POST, so no
//! event can be missed: the server announces SYNC_QUEUED before it answers.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::time::Instant;

use super::args::{ConnectionArgs, parse_duration};
use crate::client::http::Api;
use crate::client::ws;
use crate::client::{ClientOptions, Endpoint};
use crate::exit::{Exit, Failure};
use crate::follow::{self, FollowError, Followed};
use crate::lifecycle::ItemTrace;
use crate::protocol::{EventType, Outcome, WriteSyncRequest, WriteSyncResponse};
use crate::report::enqueue::{self as report, EnqueueSummary};
use crate::report::{Reporter, json, junit};

#[derive(Debug, Args)]
#[command(
    after_long_help = "Exit codes besides the table: an error answer exits 3 for 401/403, 5 for
404 and 5xx, 6 for 400 and other 4xx; --expect-outcome not met exits 1.

Examples:
  syncprobe enqueue org-rio --modification-id m-1 --modification-id m-2 --priority 5
  syncprobe enqueue org-rio --count 3 --outcome mixed --wait          # against `serve`
  syncprobe enqueue org-rio --count 2 --wait --expect-outcome success --junit enqueue.xml"
)]
pub struct EnqueueArgs {
    /// Organization id, or a full socket URL
    #[arg(value_name = "ORG")]
    pub target: String,
    /// A pending modification to sync (repeatable)
    #[arg(long = "modification-id", value_name = "ID")]
    pub modification_ids: Vec<String>,
    /// Queue priority, 0-10 (higher runs first)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=10))]
    pub priority: Option<u8>,
    /// Synthetic items to queue (Part 2 servers such as `serve`)
    #[arg(long, value_name = "N")]
    pub count: Option<u32>,
    /// Name the queued items (repeatable; Part 2 servers)
    #[arg(long = "pfa-id", value_name = "PFA_ID")]
    pub pfa_ids: Vec<String>,
    /// Outcome the server should simulate (Part 2 servers)
    #[arg(long, value_name = "OUTCOME")]
    pub outcome: Option<Outcome>,
    /// Open the socket first, then follow every queued item to its terminal event
    #[arg(long)]
    pub wait: bool,
    /// With --wait: exit 1 unless every item ends with this outcome
    #[arg(long, value_name = "OUTCOME", requires = "wait")]
    pub expect_outcome: Option<Terminal>,
    /// Bound the whole command, waiting included
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// With --wait: write a JUnit XML report (one test case per item)
    #[arg(long, value_name = "FILE", requires = "wait")]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// The terminal outcomes `--expect-outcome` can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Terminal {
    Success,
    Conflict,
    Failed,
}

impl Terminal {
    pub fn event_type(self) -> EventType {
        match self {
            Terminal::Success => EventType::Success,
            Terminal::Conflict => EventType::Conflict,
            Terminal::Failed => EventType::Failed,
        }
    }
}

pub async fn run(args: EnqueueArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    if let Some(path) = &args.junit {
        crate::report::check_output_path(path, "--junit")?;
    }
    let endpoint = args.connection.endpoint(&args.target)?;
    let options = args.connection.client_options()?;
    let deadline = Instant::now() + args.timeout;
    let api = Api::new(&endpoint, &options, args.timeout)?;
    let request = WriteSyncRequest {
        organization_id: endpoint.org.clone(),
        modification_ids: (!args.modification_ids.is_empty())
            .then(|| args.modification_ids.clone()),
        priority: args.priority,
        count: args.count,
        pfa_ids: (!args.pfa_ids.is_empty()).then(|| args.pfa_ids.clone()),
        outcome: args.outcome,
    };
    if !args.wait {
        let response = tokio::time::timeout_at(deadline, api.write_sync(&request))
            .await
            .map_err(|_| {
                Failure::Timeout(format!(
                    "no answer from {} within {}",
                    crate::client::redact(&endpoint.rest("api/pems/write-sync")),
                    humantime::format_duration(args.timeout)
                ))
            })??;
        report_queued(reporter, &endpoint.org, &response, &[]);
        return Ok(Exit::Success);
    }
    let (followed, timed_out) =
        wait(&endpoint, &options, &api, &request, deadline, reporter).await?;
    report_queued(reporter, &endpoint.org, &followed.response, &followed.items);
    if let Some(path) = &args.junit {
        let expected = args.expect_outcome.map(|t| t.event_type().to_string());
        let cases = junit::trace_cases(
            &followed.items,
            &format!("enqueue.{}", endpoint.org),
            expected.as_deref(),
        );
        junit::write(path, "syncprobe enqueue", &cases)?;
    }
    if timed_out {
        return Err(timed_out_error(&followed.items, args.timeout));
    }
    match args.expect_outcome {
        Some(expected) => expect_outcome(&followed.items, expected.event_type()),
        None => Ok(Exit::Success),
    }
}

/// `--wait`: opens the socket (CONNECTED checked), posts, follows every item, closes.
/// The follow's result, and whether the deadline cut it short.
async fn wait(
    endpoint: &Endpoint,
    options: &ClientOptions,
    api: &Api,
    request: &WriteSyncRequest,
    deadline: Instant,
    reporter: &Reporter,
) -> anyhow::Result<(Followed, bool)> {
    // One future for the whole run, so a signal between two waits is not lost.
    let interrupt = super::interrupted();
    tokio::pin!(interrupt);
    let on_open = |opened: &ws::Opened| reporter.open(&json::Open::of(opened, &endpoint.org, 0));
    let started = follow::open(endpoint, options, deadline, on_open, &mut interrupt);
    let mut session = started
        .await?
        .or_interrupted(|closed| reporter.close(closed))?;
    let on = |seen: follow::Seen<'_>| report::seen(reporter, seen);
    let followed = tokio::select! {
        _ = &mut interrupt => return Err(Failure::Interrupted.into()),
        followed = follow::follow(&mut session, api, request, deadline, on) => followed,
    };
    let followed = match followed {
        Ok(f) => (f, false),
        Err(FollowError::Timeout(f)) => (*f, true),
        Err(FollowError::Post(e) | FollowError::Stream(e)) => return Err(e),
    };
    reporter.close(&session.close(1000, "normal").await);
    Ok(followed)
}

fn timed_out_error(items: &[ItemTrace], limit: Duration) -> anyhow::Error {
    let known = if items.is_empty() {
        "no item was announced".to_string()
    } else {
        let unfinished: Vec<&str> = items
            .iter()
            .filter(|t| t.outcome.is_none())
            .map(|t| t.pfa_id.as_str())
            .collect();
        format!("no terminal event for {}", unfinished.join(", "))
    };
    Failure::Timeout(format!(
        "timed out after {} following the queued items: {known}",
        humantime::format_duration(limit)
    ))
    .into()
}

/// `--expect-outcome`: every item ended with `wanted`.
fn expect_outcome(items: &[ItemTrace], wanted: EventType) -> anyhow::Result<Exit> {
    let wrong: Vec<String> = items
        .iter()
        .filter(|t| t.outcome.as_ref() != Some(&wanted))
        .map(|t| {
            format!(
                "{} ended {} ({})",
                t.pfa_id,
                t.outcome.as_ref().map_or("-", EventType::as_str),
                t.events_text(" → ")
            )
        })
        .collect();
    if wrong.is_empty() {
        return Ok(Exit::Success);
    }
    Err(Failure::Expectation(format!(
        "expected every item to end {wanted}, but {}",
        wrong.join("; ")
    ))
    .into())
}

fn report_queued(
    reporter: &Reporter,
    org: &str,
    response: &WriteSyncResponse,
    traces: &[ItemTrace],
) {
    let summary = EnqueueSummary {
        ok: response.success,
        organization_id: org.to_string(),
        job_id: response.job_id.clone(),
        queued_count: response.queued_count,
        message: response.message.clone(),
        queued: response.items.clone().unwrap_or_default(),
        items: traces.to_vec(),
    };
    reporter.summary(json::Summary::Enqueue(&summary), || {
        report::summary(&summary, response.estimated_completion_time)
    });
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use crate::protocol::Outcome;

    #[test]
    fn outcome_flag_values_are_the_wire_spellings() {
        let names: Vec<String> = Outcome::value_variants()
            .iter()
            .map(|o| o.to_possible_value().unwrap().get_name().to_string())
            .collect();
        assert_eq!(names, Outcome::ALL);
        for outcome in Outcome::value_variants() {
            let wire = serde_json::to_value(outcome).unwrap();
            let name = outcome.to_possible_value().unwrap();
            assert_eq!(wire, name.get_name(), "{outcome:?}");
        }
    }
}
