//! `enqueue ORG`: queue writes through `POST /api/pems/write-sync` and, with
//! `--wait`, follow every queued item to its terminal event.
//!
//! With `--wait` the socket is opened (and CONNECTED checked) before the POST, so no
//! event can be missed: the server announces SYNC_QUEUED before it answers.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::time::Instant;

use super::args::{ConnectionArgs, positive_duration};
use crate::client::http::Api;
use crate::client::session::{Session, Started};
use crate::client::ws;
use crate::client::{ClientOptions, Endpoint};
use crate::exit::{Exit, Failure, exit_for};
use crate::follow::{self, FollowEnd};
use crate::lifecycle::ItemTrace;
use crate::protocol::{EventType, Outcome, WriteSyncRequest, WriteSyncResponse};
use crate::report::connect::UrlFailure;
use crate::report::enqueue::{self as report, EnqueueOutcome, EnqueueSummary};
use crate::report::{Reporter, json, junit};

#[derive(Debug, Args)]
#[command(
    after_long_help = "Exit codes besides the table: an error answer exits 3 for 401/403, 5 for
404 and 5xx, 6 for 400 and other 4xx; --expect-outcome not met exits 1. Ctrl-C (or
SIGTERM) at any point prints the summary, the --json error record and the --junit file,
then exits 130. The answer is shown before the events it caused; -q prints the verdict only.

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
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
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
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = positive_duration)]
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
    let endpoints = args.connection.endpoints(&args.target)?;
    let options = args.connection.client_options()?;
    // One future for the whole run, so a signal between two waits is not lost.
    let mut interrupt = Box::pin(super::interrupted());
    let deadline = Instant::now() + args.timeout;
    let request = WriteSyncRequest {
        organization_id: endpoints[0].org.clone(),
        modification_ids: (!args.modification_ids.is_empty())
            .then(|| args.modification_ids.clone()),
        priority: args.priority,
        count: args.count,
        pfa_ids: (!args.pfa_ids.is_empty()).then(|| args.pfa_ids.clone()),
        outcome: args.outcome,
    };
    let mut run = Run {
        args: &args,
        endpoints,
        chosen: 0,
        failed: Vec::new(),
        reporter,
    };
    if !args.wait {
        let (response, end) = match run.post(&options, &request, deadline, &mut interrupt).await {
            Ok(response) => (Some(response), End::Done),
            Err(end) => (None, end),
        };
        let posted = Posted {
            response,
            items: Vec::new(),
        };
        return run.finish(Some(posted), end);
    }
    let (posted, end) = wait(&mut run, &options, &request, deadline, &mut interrupt).await;
    run.finish(posted, end)
}

/// How a run ended.
enum End {
    /// Answered (and with `--wait`, every item ended).
    Done,
    /// `--timeout` ran out while following.
    Timeout,
    Interrupted,
    /// Connecting, the POST or the stream failed (a timeout of the connection included).
    Failed(anyhow::Error),
}

/// What the end of a run needs.
struct Run<'a> {
    args: &'a EnqueueArgs,
    /// Every URL's endpoint, in the order tried; never empty.
    endpoints: Vec<Endpoint>,
    /// The instance used (REST and socket): the first URL that answered.
    chosen: usize,
    /// The URLs tried before it, and why they did not answer.
    failed: Vec<UrlFailure>,
    reporter: &'a Reporter,
}

impl Run<'_> {
    fn endpoint(&self) -> &Endpoint {
        &self.endpoints[self.chosen]
    }

    /// Whether another URL is left to try.
    fn more(&self) -> bool {
        self.chosen + 1 < self.endpoints.len()
    }

    /// `url` (as shown) did not answer: warns, notes it, moves to the next URL.
    fn fail_over(&mut self, url: String, e: anyhow::Error) {
        let (n, of) = (self.chosen + 2, self.endpoints.len());
        self.reporter
            .warn(&crate::report::connect::next_url(&url, &e, n, of));
        self.failed.push(UrlFailure {
            message: format!("{e:#}"),
            exit_code: exit_for(&e).code(),
            url,
        });
        self.chosen += 1;
    }

    /// The last URL did not answer either: `e`, under the list of every URL tried.
    fn none_answered(&self, url: String, e: anyhow::Error) -> anyhow::Error {
        let mut tried: Vec<(String, anyhow::Error)> = self
            .failed
            .iter()
            .map(|f| (f.url.clone(), anyhow::anyhow!("{}", f.message)))
            .collect();
        tried.push((url, e));
        crate::client::none_answered(tried)
    }

    /// The POST without `--wait`: on each URL in turn while the request could not
    /// even be sent (nothing was queued there), then its answer, or how it ended
    /// without one. A POST that was sent is never repeated elsewhere.
    async fn post(
        &mut self,
        options: &ClientOptions,
        request: &WriteSyncRequest,
        deadline: Instant,
        interrupt: &mut (impl Future<Output = ()> + Unpin),
    ) -> Result<WriteSyncResponse, End> {
        loop {
            let api = Api::new(self.endpoint(), options, self.args.timeout).map_err(End::Failed)?;
            let answer = tokio::select! {
                biased;
                _ = &mut *interrupt => return Err(End::Interrupted),
                answer = tokio::time::timeout_at(deadline, api.write_sync(request)) => answer,
            };
            let url = crate::client::redact(&self.endpoint().rest("api/pems/write-sync"));
            match answer {
                Ok(Err(e)) if crate::client::unreached(&e) && self.more() => self.fail_over(url, e),
                Ok(Err(e)) if crate::client::unreached(&e) && !self.failed.is_empty() => {
                    return Err(End::Failed(self.none_answered(url, e)));
                }
                answer => return answered(answer, self),
            }
        }
    }

    /// `--wait`'s socket: each URL in turn until one reaches CONNECTED.
    async fn open(
        &mut self,
        options: &ClientOptions,
        deadline: Instant,
        interrupt: &mut (impl Future<Output = ()> + Unpin),
    ) -> Result<Session, End> {
        loop {
            let (reporter, org) = (self.reporter, &self.endpoint().org);
            let attempt = self.chosen as u32;
            let on_open =
                |opened: &ws::Opened| reporter.open(&json::Open::of(opened, org, attempt));
            let started =
                follow::open(self.endpoint(), options, deadline, on_open, interrupt).await;
            let url = crate::client::redact(&self.endpoint().socket);
            match started {
                Ok(Started::Ready(session)) => return Ok(*session),
                Ok(Started::Interrupted(closed)) => {
                    if let Some(closed) = &closed {
                        reporter.close(closed);
                    }
                    return Err(End::Interrupted);
                }
                Err(e) if self.more() => self.fail_over(url, e),
                Err(e) if !self.failed.is_empty() => {
                    return Err(End::Failed(self.none_answered(url, e)));
                }
                Err(e) => return Err(End::Failed(e)),
            }
        }
    }
}

/// The POST without `--wait`: its answer, or how it ended without one.
fn answered(
    answer: Result<anyhow::Result<WriteSyncResponse>, tokio::time::error::Elapsed>,
    run: &Run<'_>,
) -> Result<WriteSyncResponse, End> {
    match answer {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => Err(End::Failed(e)),
        Err(_) => Err(End::Failed(
            Failure::Timeout(format!(
                "no answer from {} within {} (raise --timeout)",
                crate::client::redact(&run.endpoint().rest("api/pems/write-sync")),
                humantime::format_duration(run.args.timeout)
            ))
            .into(),
        )),
    }
}

/// What `--wait` saw: `None` when the socket never got ready (nothing was posted).
type Waited = (Option<Posted>, End);

/// A POST made: its answer (if one came) and the items followed.
struct Posted {
    response: Option<WriteSyncResponse>,
    items: Vec<ItemTrace>,
}

/// `--wait`: opens the socket (CONNECTED checked) on the first URL that answers,
/// posts to the same instance, follows every item, closes. Ctrl-C at any point ends
/// it with what was seen so far.
async fn wait(
    run: &mut Run<'_>,
    options: &ClientOptions,
    request: &WriteSyncRequest,
    deadline: Instant,
    interrupt: &mut (impl Future<Output = ()> + Unpin),
) -> Waited {
    let mut session = match run.open(options, deadline, interrupt).await {
        Ok(session) => session,
        Err(end) => return (None, end),
    };
    let api = match Api::new(run.endpoint(), options, run.args.timeout) {
        Ok(api) => api,
        Err(e) => return (None, End::Failed(e)),
    };
    let (reporter, org) = (run.reporter, &run.endpoint().org);
    let on = |seen: follow::Seen<'_>| report::seen(reporter, org, seen);
    let followed = follow::follow(&mut session, &api, request, deadline, interrupt, on).await;
    let posted = Posted {
        response: followed.response,
        items: followed.items,
    };
    let end = match followed.end {
        FollowEnd::Done => End::Done,
        FollowEnd::Timeout => End::Timeout,
        FollowEnd::Interrupted => End::Interrupted,
        FollowEnd::Post(e) => End::Failed(e),
        // The connection may be unusable: no close handshake to wait for.
        FollowEnd::Stream(e) => return (Some(posted), End::Failed(e)),
    };
    reporter.close(&session.close(1000, "normal").await);
    (Some(posted), end)
}

impl Run<'_> {
    /// The summary, `--junit`, and the exit: every end leaves both, Ctrl-C included.
    fn finish(&self, posted: Option<Posted>, end: End) -> anyhow::Result<Exit> {
        let (response, items) = match posted {
            Some(p) => (Some(p.response), p.items),
            None => (None, Vec::new()),
        };
        let posted = response.is_some();
        let response = response.flatten();
        let items = &items[..];
        let verdict = match end {
            End::Done => match self.args.expect_outcome {
                Some(expected) => expect_outcome(items, expected.event_type()),
                None => Ok(Exit::Success),
            },
            End::Timeout => Err(timed_out_error(
                response.is_some(),
                items,
                self.args.timeout,
            )),
            End::Interrupted => Err(Failure::Interrupted.into()),
            End::Failed(e) => Err(e),
        };
        let outcome = outcome_of(&verdict, self.args.wait);
        let summary = EnqueueSummary {
            ok: verdict.is_ok() && response.as_ref().is_some_and(|r| r.success),
            outcome,
            organization_id: self.endpoint().org.clone(),
            url: crate::client::redact(&self.endpoint().api),
            failed: self.failed.clone(),
            posted,
            job_id: response.as_ref().and_then(|r| r.job_id.clone()),
            queued_count: response.as_ref().map(|r| r.queued_count),
            message: response.as_ref().and_then(|r| r.message.clone()),
            queued: response
                .as_ref()
                .and_then(|r| r.items.clone())
                .unwrap_or_default(),
            items: items.to_vec(),
        };
        let estimated = response.as_ref().and_then(|r| r.estimated_completion_time);
        let verbosity = self.reporter.verbosity();
        self.reporter.summary(json::Summary::Enqueue(&summary), || {
            report::summary(&summary, estimated, verbosity)
        });
        if let Some(path) = &self.args.junit {
            self.write_junit(path, &summary, &verdict)?;
        }
        verdict
    }

    /// One case per item, and one for the POST when no answer came, so a run cut
    /// short never leaves an empty (passing) suite.
    fn write_junit(
        &self,
        path: &std::path::Path,
        summary: &EnqueueSummary,
        verdict: &anyhow::Result<Exit>,
    ) -> anyhow::Result<()> {
        let classname = format!("enqueue.{}", self.endpoint().org);
        let expected = self.args.expect_outcome.map(|t| t.event_type().to_string());
        let cut = match summary.outcome {
            EnqueueOutcome::Interrupted => Some("interrupted"),
            EnqueueOutcome::Error => Some("the run failed"),
            _ => None,
        };
        let mut cases = junit::trace_cases(&summary.items, &classname, expected.as_deref(), cut);
        if summary.queued_count.is_none() {
            let error = verdict
                .as_ref()
                .err()
                .map_or(String::new(), |e| format!("{e:#}"));
            let what = if summary.posted {
                "no answer to POST /api/pems/write-sync: nothing is known to be queued"
            } else {
                "nothing was posted: the socket was not ready"
            };
            let timed_out = summary.outcome == EnqueueOutcome::Timeout;
            cases.push(junit::error_case(
                "write-sync",
                &classname,
                &error,
                what,
                !timed_out,
            ));
        }
        junit::write(path, "syncprobe enqueue", &cases)
    }
}

/// The summary's outcome for how the run ended.
fn outcome_of(verdict: &anyhow::Result<Exit>, wait: bool) -> EnqueueOutcome {
    match verdict {
        Ok(_) if wait => EnqueueOutcome::Finished,
        Ok(_) => EnqueueOutcome::Queued,
        Err(e) => match exit_for(e) {
            Exit::Interrupted => EnqueueOutcome::Interrupted,
            Exit::Timeout => EnqueueOutcome::Timeout,
            Exit::ExpectationFailed => EnqueueOutcome::Failed,
            _ => EnqueueOutcome::Error,
        },
    }
}

/// `--timeout` ran out while following: before the answer, or with items unfinished.
fn timed_out_error(answered: bool, items: &[ItemTrace], limit: Duration) -> anyhow::Error {
    let known = if !answered {
        "no answer to POST /api/pems/write-sync: nothing is known to be queued".to_string()
    } else if items.is_empty() {
        "no queued item was announced".to_string()
    } else {
        let unfinished: Vec<&str> = items
            .iter()
            .filter(|t| t.outcome.is_none())
            .map(|t| t.pfa_id.as_str())
            .collect();
        format!("no terminal event for {}", unfinished.join(", "))
    };
    Failure::Timeout(format!(
        "timed out after {} (raise --timeout): {known}",
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
