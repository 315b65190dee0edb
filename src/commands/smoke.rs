//! `smoke [ORG]`: the seed checklist's five manual steps as one command. Connect and
//! check CONNECTED, enqueue items, follow each through its lifecycle, check `seq`,
//! check that sync-status figures moved and that `/api/ws/stats` lists the
//! connection, close. Each step passes, fails, or is skipped with a reason (a Part 1
//! backend cannot support some of them); never "passed" for what was not checked.
//!
//! Without `--url` (or `SYNCPROBE_URL`) it starts the bundled server in-process on a
//! free port, so it verifies everything with nothing else running.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use super::args::{ConnectionArgs, parse_duration};
use super::enqueue::{self, FollowError};
use crate::check::{CheckConfig, StreamCheck};
use crate::client::http::Api;
use crate::client::{self, ws};
use crate::exit::{Exit, Failure, exit_for};
use crate::expect::{Matcher, Mode, Pattern, Status};
use crate::lifecycle::ItemTrace;
use crate::protocol::{Outcome, SyncStatus, WriteSyncRequest};
use crate::report::human::{self, paint};
use crate::report::smoke::{SmokeSummary, Step, StepStatus};
use crate::report::{Reporter, json, junit};

/// The lifecycle every item must follow.
const LIFECYCLE: &str = "QUEUED PROCESSING+ TERMINAL";
/// How often, and how many times, sync-status is asked again for figures that lag.
const STATUS_RETRY: Duration = Duration::from_millis(200);
const STATUS_ATTEMPTS: u32 = 10;

#[derive(Debug, Args)]
#[command(
    after_long_help = "Steps: connect, enqueue, lifecycle, seq, sync-status, stats, close.

Examples:
  syncprobe smoke                                   # against the bundled server, started in-process
  syncprobe smoke org-rio --url http://localhost:3000 --token \"$JWT\"
  syncprobe smoke --items 10 --junit smoke.xml --json"
)]
pub struct SmokeArgs {
    /// Organization id, or a full socket URL
    #[arg(value_name = "ORG", default_value = "org-smoke")]
    pub target: String,
    /// Items to enqueue and follow
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub items: u32,
    /// Bound of each waiting step (CONNECTED, the lifecycle of every item)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Write a JUnit XML report: one test case per step and per item
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

struct Steps<'a> {
    reporter: &'a Reporter,
    done: Vec<Step>,
    failure: Option<anyhow::Error>,
}

impl Steps<'_> {
    fn record(&mut self, name: &str, started: Instant, result: Result<String, StepEnd>) {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let (status, message, exit_code) = match result {
            Ok(message) => (StepStatus::Passed, message, None),
            Err(StepEnd::Skipped(reason)) => (StepStatus::Skipped, reason, None),
            Err(StepEnd::Failed(error)) => {
                let exit = exit_for(&error);
                let message = format!("{error:#}");
                if self.failure.is_none() {
                    self.failure = Some(error.context(format!("smoke failed at step {name}")));
                }
                (StepStatus::Failed, message, Some(exit.code()))
            }
        };
        let step = Step {
            name: name.to_string(),
            status,
            ms,
            message,
            exit_code,
        };
        self.reporter.step(&step);
        self.done.push(step);
    }

    fn skip_rest(&mut self, names: &[&str], reason: &str) {
        for name in names {
            self.record(
                name,
                Instant::now(),
                Err(StepEnd::Skipped(reason.to_string())),
            );
        }
    }
}

enum StepEnd {
    Failed(anyhow::Error),
    Skipped(String),
}

impl From<anyhow::Error> for StepEnd {
    fn from(e: anyhow::Error) -> Self {
        StepEnd::Failed(e)
    }
}

fn expectation(message: String) -> StepEnd {
    StepEnd::Failed(Failure::Expectation(message).into())
}

/// Completed + failed + conflicts: every finished item, whatever its outcome.
fn finished(status: &SyncStatus) -> u64 {
    let conflicts = status
        .extra
        .get("conflicts")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    status.completed + status.failed + conflicts
}

pub async fn run(args: SmokeArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let mut connection = args.connection.clone();
    let embedded = connection.url.is_none() && !args.target.contains("://");
    let server = if embedded {
        let server = crate::server::Embedded::start(crate::server::Config::default())?;
        connection.url = Some(format!("ws://{}", server.addr));
        reporter.note(&format!(
            "no --url given: testing the bundled server, started on ws://{}",
            server.addr
        ));
        Some(server)
    } else {
        None
    };
    let result = smoke(&args, &connection, embedded, reporter, started).await;
    if let Some(server) = server {
        server.stop().await;
    }
    result
}

async fn smoke(
    args: &SmokeArgs,
    connection: &ConnectionArgs,
    embedded: bool,
    reporter: &Reporter,
    started: Instant,
) -> anyhow::Result<Exit> {
    let endpoint = connection.endpoint(&args.target)?;
    let options = connection.client_options()?;
    let api = Api::new(&endpoint, &options, args.timeout)?;
    let org = endpoint.org.clone();
    reporter.say(&format!(
        "Smoke test of {} at {}\n",
        paint(human::BOLD, &org),
        ws::masked(&ws::socket_url(&endpoint, None, &options))
    ));
    let mut steps = Steps {
        reporter,
        done: Vec::new(),
        failure: None,
    };
    let mut protocol = None;
    let mut traces = Vec::new();

    // connect
    let t = Instant::now();
    let opened = async {
        let mut opened = ws::open(&endpoint, None, &options).await?;
        let first = ws::expect_connected(&mut opened.stream, &org, args.timeout).await?;
        anyhow::Ok((opened, first))
    }
    .await;
    let (mut opened, first) = match opened {
        Ok(pair) => pair,
        Err(e) => {
            steps.record("connect", t, Err(e.into()));
            steps.skip_rest(
                &[
                    "enqueue",
                    "lifecycle",
                    "seq",
                    "sync-status",
                    "stats",
                    "close",
                ],
                "the socket could not be opened",
            );
            return finish(args, steps, traces, &endpoint, embedded, protocol, started);
        }
    };
    let part2 = first.connected.seq.is_some() && first.connected.epoch.is_some();
    protocol = Some(if part2 { "part2" } else { "part1" }.to_string());
    reporter.open(&json::Open {
        url: opened.display_url.clone(),
        organization_id: org.clone(),
        open_ms: opened.open_time.as_secs_f64() * 1000.0,
        subprotocol: opened.subprotocol.clone(),
        attempt: 0,
    });
    steps.record(
        "connect",
        t,
        Ok(format!(
            "CONNECTED for {org} in {:.1} ms ({})",
            t.elapsed().as_secs_f64() * 1000.0,
            if part2 {
                "Part 2: seq and epoch"
            } else {
                "Part 1: no seq"
            }
        )),
    );

    let before = api.sync_status(&org).await;

    // enqueue + lifecycle
    let run_id = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let request = WriteSyncRequest {
        organization_id: org.clone(),
        count: Some(args.items),
        pfa_ids: part2.then(|| {
            (1..=args.items)
                .map(|i| format!("smoke-{run_id}-{i}"))
                .collect()
        }),
        outcome: Some(Outcome::Success),
        ..Default::default()
    };
    let mut check = StreamCheck::new(CheckConfig {
        org: org.clone(),
        ..Default::default()
    });
    check.on_connected(&first.connected, None);
    let t = Instant::now();
    let deadline = Instant::now() + args.timeout;
    let followed = enqueue::follow(
        &mut opened.stream,
        &api,
        &request,
        check,
        reporter,
        deadline,
    )
    .await;
    let mut seq_summary = None;
    let mut queued = 0;
    let followed = match followed {
        Ok(f) => Some(f),
        Err(FollowError::Timeout(f)) if f.answered_ms.is_some() => Some(*f),
        Err(FollowError::Timeout(_)) => {
            let error = Failure::Timeout(format!(
                "no answer to POST /api/pems/write-sync within {}",
                humantime::format_duration(args.timeout)
            ));
            steps.record("enqueue", t, Err(StepEnd::Failed(error.into())));
            steps.skip_rest(&["lifecycle", "seq"], "nothing was queued");
            None
        }
        Err(FollowError::Post(e)) => {
            steps.record("enqueue", t, Err(e.into()));
            steps.skip_rest(&["lifecycle", "seq"], "nothing was queued");
            None
        }
        Err(FollowError::Stream(e)) => {
            steps.record("enqueue", t, Ok("the POST was sent".into()));
            steps.record("lifecycle", t, Err(e.into()));
            steps.skip_rest(&["seq"], "the event stream broke");
            None
        }
    };
    if let Some(f) = followed {
        let timed_out = f.items.iter().any(|i| i.outcome.is_none())
            || (f.items.len() as u64) < f.response.queued_count;
        queued = f.response.queued_count;
        if queued == 0 {
            let reason = format!(
                "the backend queued nothing ({}): a Part 1 backend queues only pending modifications",
                f.response.message.as_deref().unwrap_or("no message")
            );
            steps.record("enqueue", t, Err(StepEnd::Skipped(reason)));
            steps.skip_rest(&["lifecycle", "seq"], "nothing was queued");
        } else {
            let answered = f.answered_ms.unwrap_or_default();
            let job = f.response.job_id.as_deref().unwrap_or("-");
            let enqueue_result = if part2 && queued != u64::from(args.items) {
                Err(expectation(format!(
                    "asked for {} items, the backend queued {queued}",
                    args.items
                )))
            } else {
                Ok(format!(
                    "{queued} items queued (job {job}), answered in {answered:.1} ms"
                ))
            };
            steps.record("enqueue", t, enqueue_result);
            traces = f.items.clone();
            steps.record(
                "lifecycle",
                t,
                lifecycle(&f.items, queued, timed_out, args.timeout),
            );
            seq_summary = Some(f.check.summary().seq);
        }
    }

    // seq
    let t = Instant::now();
    match seq_summary {
        None => {}
        Some(None) => steps.record(
            "seq",
            t,
            Err(StepEnd::Skipped(
                "the backend sends no seq (Part 1): gaps cannot be detected".into(),
            )),
        ),
        Some(Some(seq)) => {
            let result = if seq.gaps == 0
                && seq.duplicates == 0
                && seq.truncations == 0
                && seq.epoch_changes == 0
            {
                Ok(format!(
                    "contiguous up to seq {} in epoch {}",
                    seq.last_seq.map_or("-".into(), |s| s.to_string()),
                    seq.epoch.as_deref().unwrap_or("-")
                ))
            } else {
                Err(expectation(format!(
                    "seq is not contiguous: {} gaps ({} events missing), {} duplicates",
                    seq.gaps, seq.missing, seq.duplicates
                )))
            };
            steps.record("seq", t, result);
        }
    }

    // sync-status
    let t = Instant::now();
    let status_result = match before {
        Err(e) => Err(StepEnd::Failed(
            e.context("GET /api/pems/sync-status before enqueueing failed"),
        )),
        Ok(_) if queued == 0 => Err(StepEnd::Skipped(
            "nothing was queued, so the figures need not move".into(),
        )),
        Ok(before) => sync_status_moved(&api, &org, &before, queued).await,
    };
    steps.record("sync-status", t, status_result);

    // stats
    let t = Instant::now();
    let stats_result = match api.stats().await {
        Ok(stats) => {
            let listed = stats
                .get("organizations")
                .and_then(|o| o.get(&org))
                .and_then(|n| n.as_u64())
                .unwrap_or(0);
            if listed >= 1 {
                Ok(format!(
                    "lists {listed} connection(s) for {org}, {} in total",
                    stats
                        .get("totalConnections")
                        .and_then(|n| n.as_u64())
                        .unwrap_or(0)
                ))
            } else {
                Err(expectation(format!(
                    "/api/ws/stats does not list the open connection of {org}: {stats}"
                )))
            }
        }
        Err(e) if format!("{e:#}").contains("HTTP 404") => Err(StepEnd::Skipped(
            "the backend has no /api/ws/stats (Part 1)".into(),
        )),
        Err(e) => Err(e.into()),
    };
    steps.record("stats", t, stats_result);

    // close
    let t = Instant::now();
    let close_result = match ws::close(&mut opened.stream, 1000, "normal").await {
        Some((code, reason)) => {
            reporter.close(&json::Close {
                code: Some(code),
                reason: reason.clone(),
                initiator: crate::client::session::Initiator::Client,
            });
            Ok(format!("closed with 1000; the server answered {code}"))
        }
        None => Err(StepEnd::Failed(
            Failure::Protocol("the server did not answer the close handshake".into()).into(),
        )),
    };
    steps.record("close", t, close_result);
    finish(args, steps, traces, &endpoint, embedded, protocol, started)
}

/// Every item followed `QUEUED PROCESSING+ TERMINAL` and ended in success.
fn lifecycle(
    items: &[ItemTrace],
    queued: u64,
    timed_out: bool,
    limit: Duration,
) -> Result<String, StepEnd> {
    if timed_out {
        let unfinished: Vec<String> = items
            .iter()
            .filter(|i| i.outcome.is_none())
            .map(|i| {
                format!(
                    "{} ({})",
                    i.pfa_id,
                    if i.events.is_empty() {
                        "nothing".into()
                    } else {
                        i.events.join(" ")
                    }
                )
            })
            .collect();
        let missing = queued.saturating_sub(items.len() as u64);
        let mut message = format!("timed out after {}: ", humantime::format_duration(limit));
        if !unfinished.is_empty() {
            message.push_str(&format!("no terminal event for {}", unfinished.join(", ")));
        }
        if missing > 0 {
            message.push_str(&format!(
                "{}{missing} queued items never announced",
                if unfinished.is_empty() { "" } else { "; " }
            ));
        }
        return Err(StepEnd::Failed(Failure::Timeout(message).into()));
    }
    let pattern = Arc::new(Pattern::parse(LIFECYCLE).expect("the lifecycle pattern is valid"));
    for item in items {
        let mut matcher = Matcher::new(&pattern, Mode::Strict);
        for event in &item.events {
            matcher.push(event);
        }
        if matcher.status() != Status::Satisfied {
            return Err(expectation(format!(
                "item {}: {}",
                item.pfa_id,
                matcher.explain()
            )));
        }
        if item.outcome.as_deref() != Some("SYNC_SUCCESS") {
            return Err(expectation(format!(
                "item {} ended {} but success was asked for ({})",
                item.pfa_id,
                item.outcome.as_deref().unwrap_or("-"),
                item.details
            )));
        }
    }
    let slowest = items
        .iter()
        .filter_map(|i| i.terminal_ms)
        .fold(0.0, f64::max);
    Ok(format!(
        "{} items went {LIFECYCLE} and succeeded; slowest {slowest:.1} ms after the POST",
        items.len()
    ))
}

async fn sync_status_moved(
    api: &Api,
    org: &str,
    before: &SyncStatus,
    queued: u64,
) -> Result<String, StepEnd> {
    let mut after = api.sync_status(org).await?;
    // A backend may update its figures a moment after the terminal event.
    for _ in 1..STATUS_ATTEMPTS {
        if finished(&after) >= finished(before) + queued {
            break;
        }
        tokio::time::sleep(STATUS_RETRY).await;
        after = api.sync_status(org).await?;
    }
    if finished(&after) >= finished(before) + queued {
        Ok(format!(
            "finished items {} → {} (completed {} → {}), health {}, success rate {}",
            finished(before),
            finished(&after),
            before.completed,
            after.completed,
            serde_json::to_value(after.health)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            after.success_rate
        ))
    } else {
        Err(expectation(format!(
            "the figures did not move by the {queued} items that ended: completed {} → {}, failed {} → {}, queued {} → {}",
            before.completed,
            after.completed,
            before.failed,
            after.failed,
            before.total_queued,
            after.total_queued
        )))
    }
}

fn finish(
    args: &SmokeArgs,
    steps: Steps,
    traces: Vec<ItemTrace>,
    endpoint: &client::Endpoint,
    embedded: bool,
    protocol: Option<String>,
    started: Instant,
) -> anyhow::Result<Exit> {
    let Steps {
        reporter,
        done,
        failure,
    } = steps;
    let summary = SmokeSummary {
        ok: failure.is_none(),
        server: if embedded { "embedded" } else { "url" }.into(),
        url: endpoint.socket.to_string(),
        organization_id: endpoint.org.clone(),
        protocol,
        steps: done.clone(),
        items: traces.clone(),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    if let Some(path) = &args.junit {
        let mut cases: Vec<junit::Case> = done
            .iter()
            .map(|step| junit::Case {
                name: step.name.clone(),
                classname: "smoke".into(),
                time: Duration::from_secs_f64(step.ms / 1000.0),
                outcome: match step.status {
                    StepStatus::Passed => junit::Outcome::Passed,
                    StepStatus::Skipped => junit::Outcome::Skipped {
                        reason: step.message.clone(),
                    },
                    StepStatus::Failed => junit::Outcome::Failed {
                        message: format!("step {} failed", step.name),
                        details: step.message.clone(),
                    },
                },
            })
            .collect();
        cases.extend(enqueue::trace_cases(
            &traces,
            "smoke.items",
            Some("SYNC_SUCCESS"),
        ));
        junit::write(path, "syncprobe smoke", &cases)?;
    }
    reporter.summary(json::Summary::Smoke(&summary), || {
        let count = |s: StepStatus| done.iter().filter(|d| d.status == s).count();
        let (passed, failed, skipped) = (
            count(StepStatus::Passed),
            count(StepStatus::Failed),
            count(StepStatus::Skipped),
        );
        let verdict = if failed == 0 {
            paint(human::GREEN, "smoke passed")
        } else {
            paint(human::RED, "smoke FAILED")
        };
        format!(
            "\n{verdict}: {passed} passed, {failed} failed, {skipped} skipped in {:.0} ms\n",
            summary.duration_ms
        )
    });
    match failure {
        None => Ok(Exit::Success),
        Some(error) => Err(error),
    }
}
