//! `enqueue ORG`: queue writes through `POST /api/pems/write-sync` and, with
//! `--wait`, follow every queued item to its terminal event.
//!
//! With `--wait` the socket is opened (and CONNECTED checked) before the POST, so no
//! event can be missed: the server announces SYNC_QUEUED before it answers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::time::Instant;

use super::args::{ConnectionArgs, parse_duration};
use crate::check::{CheckConfig, StreamCheck};
use crate::client::http::Api;
use crate::client::ws;
use crate::exit::{Exit, Failure};
use crate::lifecycle::ItemTrace;
use crate::protocol::{EventType, Outcome, ServerFrame, WriteSyncRequest, WriteSyncResponse};
use crate::report::enqueue::EnqueueSummary;
use crate::report::human::{self, EventStyle};
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
    pub outcome: Option<OutcomeArg>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutcomeArg {
    Success,
    Conflict,
    Failed,
    RetryThenSuccess,
    Mixed,
}

impl From<OutcomeArg> for Outcome {
    fn from(o: OutcomeArg) -> Outcome {
        match o {
            OutcomeArg::Success => Outcome::Success,
            OutcomeArg::Conflict => Outcome::Conflict,
            OutcomeArg::Failed => Outcome::Failed,
            OutcomeArg::RetryThenSuccess => Outcome::RetryThenSuccess,
            OutcomeArg::Mixed => Outcome::Mixed,
        }
    }
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

/// What following a write-sync produced.
pub struct Followed {
    pub response: WriteSyncResponse,
    /// From sending the POST to its answer, when it came.
    pub answered_ms: Option<f64>,
    pub items: Vec<ItemTrace>,
    pub check: StreamCheck,
}

/// Why following stopped before every item ended.
pub enum FollowError {
    /// The deadline passed; what was seen so far.
    Timeout(Box<Followed>),
    /// The POST failed (no answer, or an error answer).
    Post(anyhow::Error),
    /// The socket broke the protocol or closed.
    Stream(anyhow::Error),
}

/// Posts `request` on an already-open socket (CONNECTED checked) and follows every
/// queued item to its terminal event, until `deadline`.
///
/// Items are the answer's `items` (Part 2). A Part 1 answer names none: then the
/// first `queuedCount` items whose SYNC_QUEUED arrives after the POST are followed.
pub async fn follow(
    stream: &mut ws::Stream,
    api: &Api,
    request: &WriteSyncRequest,
    check: StreamCheck,
    reporter: &Reporter,
    deadline: Instant,
) -> Result<Followed, FollowError> {
    let mut check = check;
    let sent = Instant::now();
    let post = api.write_sync(request);
    tokio::pin!(post);
    let mut response: Option<WriteSyncResponse> = None;
    let mut traces: HashMap<String, ItemTrace> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    // Events that arrive before the answer says which items are ours.
    let mut early: Vec<(String, Option<ServerFrame>)> = Vec::new();
    let mut ours: Option<Vec<String>> = None;
    let mut answered_ms = None;
    loop {
        if let (Some(response), Some(ours)) = (&response, &ours) {
            let done = ours.len() as u64 >= response.queued_count
                && ours
                    .iter()
                    .all(|p| traces.get(p).is_some_and(|t| t.outcome.is_some()));
            if done {
                let items = ours
                    .iter()
                    .map(|p| traces.remove(p).unwrap_or_default())
                    .collect();
                return Ok(Followed {
                    response: response.clone(),
                    answered_ms,
                    items,
                    check,
                });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                let response = response.unwrap_or(WriteSyncResponse {
                    success: false, job_id: None, queued_count: 0, estimated_completion_time: None, message: None, items: None,
                });
                let names = ours.unwrap_or_default();
                let items = names.iter().map(|p| traces.remove(p).unwrap_or_else(|| ItemTrace { pfa_id: p.clone(), ..Default::default() })).collect();
                return Err(FollowError::Timeout(Box::new(Followed { response, answered_ms, items, check })));
            }
            answer = &mut post, if response.is_none() => {
                let answer = answer.map_err(FollowError::Post)?;
                answered_ms = Some(sent.elapsed().as_secs_f64() * 1000.0);
                if let Some(items) = &answer.items {
                    let names: Vec<String> = items.iter().map(|i| i.pfa_id.clone()).collect();
                    for (raw, frame) in early.drain(..) {
                        if frame_pfa(frame.as_ref()).is_some_and(|p| names.contains(&p.to_string())) {
                            reporter.event(&raw, frame.as_ref(), EventStyle::Line);
                        }
                    }
                    ours = Some(names);
                } else {
                    // Part 1: ours are the first queued after the POST, in arrival order.
                    let names: Vec<String> = order.iter().take(answer.queued_count as usize).cloned().collect();
                    for (raw, frame) in early.drain(..) {
                        if frame_pfa(frame.as_ref()).is_some_and(|p| names.contains(&p.to_string())) {
                            reporter.event(&raw, frame.as_ref(), EventStyle::Line);
                        }
                    }
                    ours = Some(names);
                }
                response = Some(answer);
            }
            incoming = ws::next(stream) => {
                let incoming = incoming.map_err(FollowError::Stream)?;
                let (text, at) = match incoming {
                    ws::Incoming::Text { text, at } => (text, at),
                    ws::Incoming::Binary(len) => {
                        return Err(FollowError::Stream(Failure::Protocol(format!("a binary frame of {len} bytes: the protocol sends JSON text frames only")).into()));
                    }
                    ws::Incoming::Pong(_) => continue,
                    ws::Incoming::Closed(frame) => {
                        let how = frame.map_or("without a close frame".to_string(), |(c, r)| format!("with code {c} (reason: {})", if r.is_empty() { "-" } else { &r }));
                        return Err(FollowError::Stream(Failure::Protocol(format!("the server closed the connection {how} before every item ended")).into()));
                    }
                };
                let outcome = check.on_frame(&text, at).map_err(|v| FollowError::Stream(Failure::Protocol(v.0).into()))?;
                for finding in &outcome.findings {
                    reporter.warn(&finding.message());
                }
                let Some(ServerFrame::Event(event)) = &outcome.frame else { continue };
                let elapsed = sent.elapsed().as_secs_f64() * 1000.0;
                let is_new = !traces.contains_key(&event.pfa_id);
                let trace = traces.entry(event.pfa_id.clone()).or_insert_with(|| ItemTrace { pfa_id: event.pfa_id.clone(), ..Default::default() });
                trace.events.push(event.kind.to_string());
                match &event.kind {
                    EventType::Queued => { trace.queued_ms.get_or_insert(elapsed); }
                    EventType::Processing => { trace.processing_ms.get_or_insert(elapsed); }
                    kind if kind.is_terminal() => {
                        trace.terminal_ms = Some(elapsed);
                        trace.outcome = Some(kind.to_string());
                    }
                    _ => {}
                }
                trace.details = event.short_details();
                if is_new && event.kind == EventType::Queued {
                    order.push(event.pfa_id.clone());
                }
                match &mut ours {
                    Some(names) => {
                        // Part 1: late SYNC_QUEUED events still join until the count is reached.
                        if response.as_ref().is_some_and(|r| r.items.is_none()) && !names.contains(&event.pfa_id) && (names.len() as u64) < response.as_ref().map_or(0, |r| r.queued_count) && event.kind == EventType::Queued {
                            names.push(event.pfa_id.clone());
                        }
                        if names.contains(&event.pfa_id) {
                            reporter.event(&text, outcome.frame.as_ref(), EventStyle::Line);
                        }
                    }
                    None => early.push((text, outcome.frame.clone())),
                }
            }
        }
    }
}

fn frame_pfa(frame: Option<&ServerFrame>) -> Option<&str> {
    match frame {
        Some(ServerFrame::Event(e)) => Some(&e.pfa_id),
        _ => None,
    }
}

pub async fn run(args: EnqueueArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
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
        outcome: args.outcome.map(Outcome::from),
    };
    if !args.wait {
        let response = tokio::time::timeout_at(deadline, api.write_sync(&request))
            .await
            .map_err(|_| {
                Failure::Timeout(format!(
                    "no answer from {} within {}",
                    endpoint.rest("api/pems/write-sync"),
                    humantime::format_duration(args.timeout)
                ))
            })??;
        report_queued(reporter, &endpoint.org, &response, &[]);
        return Ok(Exit::Success);
    }

    let mut opened = tokio::time::timeout_at(deadline, ws::open(&endpoint, None, &options))
        .await
        .map_err(|_| Failure::Timeout("timed out opening the socket".into()))??;
    reporter.open(&json::Open {
        url: opened.display_url.clone(),
        organization_id: endpoint.org.clone(),
        open_ms: opened.open_time.as_secs_f64() * 1000.0,
        subprotocol: opened.subprotocol.clone(),
        attempt: 0,
    });
    let left = deadline.saturating_duration_since(Instant::now());
    let first = ws::expect_connected(&mut opened.stream, &endpoint.org, left).await?;
    let mut check = StreamCheck::new(CheckConfig {
        org: endpoint.org.clone(),
        ..Default::default()
    });
    check.on_connected(&first.connected, None);
    let followed = tokio::select! {
        _ = super::interrupted() => return Err(Failure::Interrupted.into()),
        followed = follow(&mut opened.stream, &api, &request, check, reporter, deadline) => followed,
    };
    let (followed, timed_out) = match followed {
        Ok(f) => (f, false),
        Err(FollowError::Timeout(f)) => (*f, true),
        Err(FollowError::Post(e) | FollowError::Stream(e)) => return Err(e),
    };
    let answer = ws::close(&mut opened.stream, 1000, "normal").await;
    let (code, reason) = answer.unwrap_or((1000, "normal".into()));
    reporter.close(&json::Close {
        code: Some(code),
        reason,
        initiator: crate::client::session::Initiator::Client,
    });
    report_queued(reporter, &endpoint.org, &followed.response, &followed.items);
    if let Some(path) = &args.junit {
        let expected = args.expect_outcome.map(|t| t.event_type().to_string());
        let cases = trace_cases(
            &followed.items,
            &format!("enqueue.{}", endpoint.org),
            expected.as_deref(),
        );
        junit::write(path, "syncprobe enqueue", &cases)?;
    }
    let unfinished: Vec<&str> = followed
        .items
        .iter()
        .filter(|t| t.outcome.is_none())
        .map(|t| t.pfa_id.as_str())
        .collect();
    if timed_out {
        let known = if followed.items.is_empty() {
            "no item was announced".to_string()
        } else {
            format!("no terminal event for {}", unfinished.join(", "))
        };
        return Err(Failure::Timeout(format!(
            "timed out after {} following the queued items: {known}",
            humantime::format_duration(args.timeout)
        ))
        .into());
    }
    if let Some(expected) = args.expect_outcome {
        let wanted = expected.event_type().to_string();
        let wrong: Vec<String> = followed
            .items
            .iter()
            .filter(|t| t.outcome.as_deref() != Some(wanted.as_str()))
            .map(|t| {
                format!(
                    "{} ended {} ({})",
                    t.pfa_id,
                    t.outcome.as_deref().unwrap_or("-"),
                    t.events.join(" → ")
                )
            })
            .collect();
        if !wrong.is_empty() {
            return Err(Failure::Expectation(format!(
                "expected every item to end {wanted}, but {}",
                wrong.join("; ")
            ))
            .into());
        }
    }
    Ok(Exit::Success)
}

/// JUnit cases for followed items.
pub fn trace_cases(
    items: &[ItemTrace],
    classname: &str,
    expected: Option<&str>,
) -> Vec<junit::Case> {
    items
        .iter()
        .map(|t| {
            let received = t.events.join(" ");
            let outcome = match (&t.outcome, expected) {
                (None, _) => junit::Outcome::Failed {
                    message: "no terminal event".into(),
                    details: format!("expected a terminal event\nreceived: {received}"),
                },
                (Some(got), Some(want)) if got != want => junit::Outcome::Failed {
                    message: format!("ended {got} instead of {want}"),
                    details: format!("expected: {want}\nreceived: {received}"),
                },
                _ => junit::Outcome::Passed,
            };
            junit::Case {
                name: t.pfa_id.clone(),
                classname: classname.to_string(),
                time: Duration::from_secs_f64(t.terminal_ms.unwrap_or(0.0) / 1000.0),
                outcome,
            }
        })
        .collect()
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
        let mut text = match (&summary.job_id, &summary.message) {
            (_, Some(message)) if summary.queued_count == 0 => format!(
                "{} {message}\n",
                human::paint(human::YELLOW, "nothing queued:")
            ),
            _ => format!(
                "Queued {} for {org} (job {}){}\n",
                plural(summary.queued_count, "item"),
                summary.job_id.as_deref().unwrap_or("-"),
                response
                    .estimated_completion_time
                    .map_or(String::new(), |t| format!(", estimated completion {t}"))
            ),
        };
        for item in &summary.queued {
            text.push_str(&format!("  {:<10} {}\n", item.id, item.pfa_id));
        }
        for trace in traces {
            let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("+{v:.1} ms"));
            let outcome = trace.outcome.as_deref().unwrap_or("(no terminal event)");
            let style = match outcome {
                "SYNC_SUCCESS" => human::GREEN,
                "SYNC_CONFLICT" => human::YELLOW,
                _ => human::RED,
            };
            text.push_str(&format!(
                "  {:<12} {}  queued {}, processing {}, terminal {}  {}\n",
                trace.pfa_id,
                human::paint(style, trace.events.join(" → ")),
                ms(trace.queued_ms),
                ms(trace.processing_ms),
                ms(trace.terminal_ms),
                human::paint(human::DIM, &trace.details)
            ));
        }
        text
    });
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
