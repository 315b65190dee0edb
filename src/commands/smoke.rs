//! `smoke [ORG]`: the seed checklist's five manual steps as one command. Connect and
//! check CONNECTED, enqueue items, follow each through its lifecycle, check `seq`,
//! check that sync-status figures moved and that `/api/ws/stats` lists the
//! connection, optionally a conflict round trip (`--with-conflict`), close. Each step
//! passes, fails, or is skipped with a reason (a Part 1 backend cannot support some
//! of them); never "passed" for what was not checked.
//!
//! A step fails only on what the protocol promises of the server it talks to: on a
//! Part 1 backend the outcome of an item is the backend's own (any terminal event
//! passes), and `/api/ws/stats`, which the original protocol lacks, is read in any
//! shape (`crate::stats`) and skipped when its shape is unknown or it cannot be read.
//!
//! Without `--url` (or `SYNCPROBE_URL`) it starts the bundled server in-process on a
//! free port, so it verifies everything with nothing else running.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use super::args::{ConnectionArgs, positive_duration};
use crate::check::{SeqSummary, StreamCheck};
use crate::client::error::http_status;
use crate::client::http::Api;
use crate::client::session::{Session, Started};
use crate::client::{ClientOptions, Endpoint, ws};
use crate::exit::{Exit, Failure, exit_for};
use crate::expect::{Matcher, Mode, Pattern, Status};
use crate::follow::{self, FollowEnd, Followed};
use crate::lifecycle::ItemTrace;
use crate::protocol::{
    EventType, Outcome, ProtocolPart, Resolution, ResolveRequest, SyncStatus, WriteSyncRequest,
    WriteSyncResponse,
};
use crate::report::smoke::{self as report, ServerKind, SmokeSummary, Step, StepStatus};
use crate::report::{Reporter, json, junit};
use crate::stats::{self, OrgStats};

/// The lifecycle every item must follow.
const LIFECYCLE: &str = "QUEUED PROCESSING+ TERMINAL";
/// How often, and how many times, sync-status is asked again for figures that lag.
const STATUS_RETRY: Duration = Duration::from_millis(200);
const STATUS_ATTEMPTS: u32 = 10;

#[derive(Debug, Args)]
#[command(
    after_long_help = "Steps: connect, enqueue, lifecycle, seq, sync-status, stats, [conflict,] close.
A step fails only on what the server's protocol promises: on a Part 1 backend any terminal
event ends an item's lifecycle, and /api/ws/stats (not in Part 1) is read in any shape and
skipped when its shape is unknown.
Ctrl-C (or SIGTERM) in any step reports it interrupted, skips the rest, and prints the
summary, the --json error record and the --junit file before exiting 130.

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
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = positive_duration)]
    pub timeout: Duration,
    /// Write a JUnit XML report: one test case per step and per item
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Add the conflict step: queue a conflict, find it in GET /api/pems/conflicts,
    /// resolve it with use_local and see the item queued again succeed (Part 2 servers;
    /// skipped elsewhere)
    #[arg(long)]
    pub with_conflict: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// The steps, in order.
const CONNECT: &str = "connect";
const ENQUEUE: &str = "enqueue";
const LIFECYCLE_STEP: &str = "lifecycle";
const SEQ: &str = "seq";
const SYNC_STATUS: &str = "sync-status";
const STATS: &str = "stats";
const CONFLICT: &str = "conflict";
const CLOSE: &str = "close";

pub async fn run(args: SmokeArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    if let Some(path) = &args.junit {
        crate::report::check_output_path(path, "--junit")?;
    }
    // Installed before anything is shown: a Ctrl-C right after the banner is ours.
    let interrupt: Interrupt = Box::pin(super::interrupted());
    let started = Instant::now();
    let mut connection = args.connection.clone();
    let kind = if connection.given_url().is_none() && !args.target.contains("://") {
        ServerKind::Embedded
    } else {
        ServerKind::Url
    };
    let server = match kind {
        ServerKind::Embedded => {
            let server = crate::server::Embedded::start(crate::server::Config::default())?;
            connection.url = vec![format!("ws://{}", server.addr)];
            reporter.note(&report::bundled_server(server.addr));
            Some(server)
        }
        ServerKind::Url => None,
    };
    let result = smoke(&args, &connection, kind, reporter, started, interrupt).await;
    if let Some(server) = server {
        server.stop().await;
    }
    result
}

/// The steps, one after the other; each step that cannot run says why it is skipped.
/// Ctrl-C (or SIGTERM) at any step ends the run there: that step is reported
/// interrupted, the rest skipped, the socket closed, and the summary and `--junit`
/// written all the same (exit 130).
async fn smoke(
    args: &SmokeArgs,
    connection: &ConnectionArgs,
    kind: ServerKind,
    reporter: &Reporter,
    started: Instant,
    interrupt: Interrupt,
) -> anyhow::Result<Exit> {
    let endpoint = connection.endpoint(&args.target)?;
    let options = connection.client_options()?;
    let api = Api::new(&endpoint, &options, args.timeout)?;
    let url = crate::client::redact(&ws::socket_url(&endpoint, None, &options));
    reporter.say(&report::banner(&endpoint.org, &url));
    let mut smoke = Smoke {
        args,
        reporter,
        endpoint,
        api,
        kind,
        steps: Vec::new(),
        failure: None,
        interrupted: false,
        interrupt,
        protocol: None,
        items: Vec::new(),
        check: None,
    };
    let Some(mut session) = smoke.connect(&options).await else {
        return smoke.finish(started);
    };
    smoke.after_connect(&mut session).await;
    if smoke.interrupted {
        smoke.skip_unrecorded("interrupted");
        reporter.close(&session.close(1000, "normal").await);
    } else {
        smoke.close(&mut session).await;
    }
    smoke.finish(started)
}

/// Every step, in order (`conflict` only with `--with-conflict`).
const STEPS: [&str; 8] = [
    CONNECT,
    ENQUEUE,
    LIFECYCLE_STEP,
    SEQ,
    SYNC_STATUS,
    STATS,
    CONFLICT,
    CLOSE,
];

/// Ctrl-C, one future for the whole run (a signal between two waits is kept).
type Interrupt = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// `work`, unless `interrupt` fires first (`None`).
async fn unless_interrupted<T>(
    interrupt: &mut Interrupt,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        _ = interrupt => None,
        done = work => Some(done),
    }
}

/// A run of the steps: what they share and what they found.
struct Smoke<'a> {
    args: &'a SmokeArgs,
    reporter: &'a Reporter,
    endpoint: Endpoint,
    api: Api,
    kind: ServerKind,
    steps: Vec<Step>,
    /// The first failure, which the run ends with (an interruption takes its place).
    failure: Option<anyhow::Error>,
    interrupted: bool,
    interrupt: Interrupt,
    protocol: Option<ProtocolPart>,
    items: Vec<ItemTrace>,
    /// The check of the last follow on the socket: a later follow goes on from it.
    check: Option<StreamCheck>,
}

/// What the enqueue step hands to the next: the follow, and when the POST started.
struct Posted {
    followed: Followed,
    at: Instant,
}

/// How a step ended, when it did not pass.
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

fn skipped(reason: impl Into<String>) -> StepEnd {
    StepEnd::Skipped(reason.into())
}

fn interrupted() -> StepEnd {
    StepEnd::Failed(Failure::Interrupted.into())
}

/// A step as reported, and the error it failed with.
fn make_step(
    name: &str,
    started: Instant,
    result: Result<String, StepEnd>,
) -> (Step, Option<anyhow::Error>) {
    let ms = millis(started.elapsed());
    let (status, message, exit_code, error) = match result {
        Ok(message) => (StepStatus::Passed, message, None, None),
        Err(StepEnd::Skipped(reason)) => (StepStatus::Skipped, reason, None, None),
        Err(StepEnd::Failed(error)) => {
            let exit = exit_for(&error);
            let message = format!("{error:#}");
            (StepStatus::Failed, message, Some(exit.code()), Some(error))
        }
    };
    let step = Step {
        name: name.to_string(),
        status,
        ms,
        message,
        exit_code,
    };
    (step, error)
}

impl Smoke<'_> {
    fn record(&mut self, name: &str, started: Instant, result: Result<String, StepEnd>) {
        let (step, error) = make_step(name, started, result);
        self.reporter.step(&step);
        self.push(step, error);
    }

    /// Keeps a step that was already shown.
    fn push(&mut self, step: Step, error: Option<anyhow::Error>) {
        if let Some(error) = error {
            let name = &step.name;
            if exit_for(&error) == Exit::Interrupted {
                self.interrupted = true;
                self.failure = Some(error.context(format!("smoke interrupted during step {name}")));
            } else if self.failure.is_none() {
                self.failure = Some(error.context(format!("smoke failed at step {name}")));
            }
        }
        self.steps.push(step);
    }

    fn skip_rest(&mut self, names: &[&str], reason: &str) {
        for name in names {
            self.record(name, Instant::now(), Err(skipped(reason)));
        }
    }

    /// Every step not reported yet is skipped for `reason`.
    fn skip_unrecorded(&mut self, reason: &str) {
        for name in STEPS {
            if name == CONFLICT && !self.args.with_conflict {
                continue;
            }
            if !self.steps.iter().any(|s| s.name == name) {
                self.record(name, Instant::now(), Err(skipped(reason)));
            }
        }
    }

    /// Step connect: the socket opens and CONNECTED is right. Without a socket the
    /// other steps are skipped.
    async fn connect(&mut self, options: &ClientOptions) -> Option<Session> {
        let t = Instant::now();
        let org = self.endpoint.org.clone();
        let reporter = self.reporter;
        let on_open = |opened: &ws::Opened| reporter.open(&json::Open::of(opened, &org, 0));
        let started = Session::start(
            &self.endpoint,
            None,
            options,
            self.args.timeout,
            on_open,
            &mut self.interrupt,
        );
        let session = match started.await {
            Ok(Started::Ready(session)) => *session,
            Ok(Started::Interrupted(closed)) => {
                if let Some(closed) = &closed {
                    reporter.close(closed);
                }
                self.record(CONNECT, t, Err(interrupted()));
                self.skip_unrecorded("interrupted");
                return None;
            }
            Err(error) => {
                self.record(CONNECT, t, Err(error.into()));
                self.skip_unrecorded("the socket could not be opened");
                return None;
            }
        };
        let part = session.connected.connected.part();
        self.protocol = Some(part);
        let which = match part {
            ProtocolPart::Part2 => "Part 2: seq and epoch",
            ProtocolPart::Part1 => "Part 1: no seq",
        };
        let message = format!(
            "CONNECTED for {org} in {:.1} ms ({which})",
            millis(t.elapsed())
        );
        self.record(CONNECT, t, Ok(message));
        Some(session)
    }

    /// The steps between connect and close; they stop at Ctrl-C.
    async fn after_connect(&mut self, session: &mut Session) {
        let t = Instant::now();
        let before = unless_interrupted(
            &mut self.interrupt,
            self.api.sync_status(&self.endpoint.org),
        )
        .await;
        let Some(before) = before else {
            return self.record(ENQUEUE, t, Err(interrupted()));
        };
        let queued = match self.enqueue(session).await {
            Some(posted) => {
                self.lifecycle(&posted);
                self.seq(&posted.followed.check);
                self.check = Some(posted.followed.check);
                posted.followed.response.map_or(0, |r| r.queued_count)
            }
            None => 0,
        };
        if self.interrupted {
            return;
        }
        let expected = self.expected_finished(queued);
        self.sync_status(before, expected).await;
        if !self.interrupted {
            self.stats().await;
        }
        if !self.interrupted && self.args.with_conflict {
            self.conflict(session).await;
        }
    }

    /// How far the finished figures must move: every queued item on a Part 2 server;
    /// on a Part 1 one, the items seen to succeed or fail (its outcomes are its own,
    /// and the original protocol has no figure for conflicts).
    fn expected_finished(&self, queued: u64) -> u64 {
        if self.protocol == Some(ProtocolPart::Part2) {
            return queued;
        }
        let counted = [Some(EventType::Success), Some(EventType::Failed)];
        let ended = self.items.iter().filter(|i| counted.contains(&i.outcome));
        ended.count() as u64
    }

    /// Step enqueue: `--items` items are queued (named, on a Part 2 server) and
    /// followed. The step is reported when the answer comes, before the events it
    /// caused. `None` when nothing was queued or the follow broke; then the steps
    /// that need the items are recorded too.
    async fn enqueue(&mut self, session: &mut Session) -> Option<Posted> {
        let part2 = self.protocol == Some(ProtocolPart::Part2);
        let request = self.request(part2);
        let t = Instant::now();
        let deadline = Instant::now() + self.args.timeout;
        let (reporter, asked) = (self.reporter, self.args.items);
        let mut answered = None;
        let on = |seen: follow::Seen<'_>| match seen {
            follow::Seen::Answered { response, ms } => {
                let step = make_step(ENQUEUE, t, answer_result(response, ms, part2, asked));
                reporter.step(&step.0);
                answered = Some(step);
            }
            other => crate::report::enqueue::shown_events(reporter, other),
        };
        let followed = follow::follow(
            session,
            &self.api,
            &request,
            deadline,
            &mut self.interrupt,
            on,
        )
        .await;
        if let Some((step, error)) = answered {
            self.push(step, error);
        }
        self.followed(t, followed)
    }

    /// What the follow of the enqueue step leaves for the next steps.
    fn followed(&mut self, t: Instant, followed: Followed) -> Option<Posted> {
        let Some(queued) = followed.response.as_ref().map(|r| r.queued_count) else {
            self.not_answered(t, followed.end);
            return None;
        };
        if queued == 0 {
            self.skip_rest(&[LIFECYCLE_STEP, SEQ], "nothing was queued");
            return None;
        }
        match followed.end {
            FollowEnd::Done | FollowEnd::Timeout => Some(Posted { followed, at: t }),
            FollowEnd::Interrupted => {
                self.items = followed.items;
                self.record(LIFECYCLE_STEP, t, Err(interrupted()));
                None
            }
            FollowEnd::Post(e) | FollowEnd::Stream(e) => {
                self.items = followed.items;
                self.record(LIFECYCLE_STEP, t, Err(e.into()));
                self.skip_rest(&[SEQ], "the event stream broke");
                None
            }
        }
    }

    /// The write-sync of the enqueue step: named items on a Part 2 server, so
    /// they can be told from others.
    fn request(&self, part2: bool) -> WriteSyncRequest {
        let run_id = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        WriteSyncRequest {
            organization_id: self.endpoint.org.clone(),
            count: Some(self.args.items),
            pfa_ids: part2.then(|| {
                (1..=self.args.items)
                    .map(|i| format!("smoke-{run_id}-{i}"))
                    .collect()
            }),
            outcome: Some(Outcome::Success),
            ..Default::default()
        }
    }

    /// The enqueue step when the follow stopped before the answer: nothing is
    /// known to be queued, and nothing says it was.
    fn not_answered(&mut self, t: Instant, end: FollowEnd) {
        let error: StepEnd = match end {
            FollowEnd::Interrupted => {
                return self.record(ENQUEUE, t, Err(interrupted()));
            }
            FollowEnd::Done | FollowEnd::Timeout => {
                let message = format!(
                    "no answer to POST /api/pems/write-sync within {} (raise --timeout)",
                    humantime::format_duration(self.args.timeout)
                );
                anyhow::Error::from(Failure::Timeout(message)).into()
            }
            FollowEnd::Post(e) => e.into(),
            FollowEnd::Stream(e) => e
                .context("the event stream broke before POST /api/pems/write-sync was answered")
                .into(),
        };
        self.record(ENQUEUE, t, Err(error));
        self.skip_rest(&[LIFECYCLE_STEP, SEQ], "nothing is known to be queued");
    }

    /// Step lifecycle: every queued item went `QUEUED PROCESSING+ TERMINAL` and
    /// succeeded, within `--timeout` of the POST.
    fn lifecycle(&mut self, posted: &Posted) {
        let f = &posted.followed;
        let queued = f.response.as_ref().map_or(0, |r| r.queued_count);
        let timed_out =
            f.items.iter().any(|i| i.outcome.is_none()) || (f.items.len() as u64) < queued;
        self.items = f.items.clone();
        let part2 = self.protocol == Some(ProtocolPart::Part2);
        let result = check_lifecycle(&f.items, queued, timed_out, self.args.timeout, part2);
        self.record(LIFECYCLE_STEP, posted.at, result);
    }

    /// Step seq: contiguous, on a server that numbers its events.
    fn seq(&mut self, check: &StreamCheck) {
        let t = Instant::now();
        let result = match check.summary().seq {
            None => Err(skipped(
                "the backend sends no seq (Part 1): gaps cannot be detected",
            )),
            Some(seq) => check_seq(&seq),
        };
        self.record(SEQ, t, result);
    }

    /// Step sync-status: the figures moved by the items that ended.
    async fn sync_status(&mut self, before: anyhow::Result<SyncStatus>, queued: u64) {
        if queued == 0 && self.protocol != Some(ProtocolPart::Part2) && before.is_ok() {
            let why = "no item was seen to succeed or fail, so the figures need not move";
            return self.record(SYNC_STATUS, Instant::now(), Err(skipped(why)));
        }
        let t = Instant::now();
        let result = match before {
            Err(e) => Err(StepEnd::Failed(
                e.context("GET /api/pems/sync-status before enqueueing failed"),
            )),
            Ok(_) if queued == 0 => {
                Err(skipped("nothing was queued, so the figures need not move"))
            }
            Ok(before) => {
                let moved = sync_status_moved(&self.api, &self.endpoint.org, &before, queued);
                unless_interrupted(&mut self.interrupt, moved)
                    .await
                    .unwrap_or_else(|| Err(interrupted()))
            }
        };
        self.record(SYNC_STATUS, t, result);
    }

    /// Step stats: `/api/ws/stats` lists the open connection. The endpoint is not
    /// in the original protocol: when it cannot be read, or its shape is unknown, the
    /// step is skipped with the reason.
    async fn stats(&mut self) {
        let t = Instant::now();
        let org = &self.endpoint.org;
        let result = match unless_interrupted(&mut self.interrupt, self.api.stats()).await {
            None => Err(interrupted()),
            Some(Ok(stats)) => check_stats(&stats, org),
            Some(Err(e)) if http_status(&e) == Some(404) => {
                Err(skipped("the backend has no /api/ws/stats (Part 1)"))
            }
            Some(Err(e)) => Err(skipped(format!(
                "/api/ws/stats could not be read ({}); it is not part of the original protocol",
                crate::text::shown(&format!("{e:#}"), crate::text::MAX_SHOWN)
            ))),
        };
        self.record(STATS, t, result);
    }

    /// Step conflict (`--with-conflict`, Part 2): a conflict queued, listed, resolved
    /// with use_local, and the item queued again succeeds.
    async fn conflict(&mut self, session: &mut Session) {
        let t = Instant::now();
        let result = if self.protocol == Some(ProtocolPart::Part2) {
            self.conflict_round(session).await
        } else {
            Err(skipped(
                "a Part 1 backend decides outcomes itself: no conflict can be asked for",
            ))
        };
        self.record(CONFLICT, t, result);
    }

    /// The conflict round trip; what it checked, or why it failed.
    async fn conflict_round(&mut self, session: &mut Session) -> Result<String, StepEnd> {
        let deadline = Instant::now() + self.args.timeout;
        let org = self.endpoint.org.clone();
        let pfa = format!("smoke-{:06x}-conflict", rand::random::<u32>() & 0xff_ffff);
        let request = WriteSyncRequest {
            organization_id: org.clone(),
            count: Some(1),
            pfa_ids: Some(vec![pfa.clone()]),
            outcome: Some(Outcome::Conflict),
            ..Default::default()
        };
        let reporter = self.reporter;
        let mut id = None;
        let on = |seen: follow::Seen<'_>| {
            if let follow::Seen::Event { frame, .. } = &seen {
                id = id.take().or_else(|| follow::conflict_id(*frame));
            }
            crate::report::enqueue::shown_events(reporter, seen);
        };
        let api = self.api.clone();
        let post = api.write_sync(&request);
        let after = self.check.take();
        let interrupt = &mut self.interrupt;
        let followed =
            follow::follow_post(session, &org, after, post, deadline, interrupt, on).await;
        ended(followed.end, "the conflict", self.args.timeout)?;
        let id = id.ok_or_else(|| {
            expectation(format!(
                "item {pfa} did not end with a SYNC_CONFLICT carrying details.conflictId"
            ))
        })?;
        let listed =
            unless_interrupted(&mut self.interrupt, api.conflicts(&org, Some("unresolved")))
                .await
                .ok_or_else(interrupted)??;
        if !listed
            .conflicts
            .iter()
            .any(|c| c.id == id && c.pfa_id == pfa)
        {
            return Err(expectation(format!(
                "conflict {} of {pfa} is not among the {} unresolved conflicts GET /api/pems/conflicts lists",
                crate::text::shown(&id, crate::text::MAX_COLUMN),
                listed.total
            )));
        }
        let resolve = ResolveRequest {
            resolution: Resolution::UseLocal,
            merged_data: None,
        };
        let on = |seen: follow::Seen<'_>| crate::report::enqueue::shown_events(reporter, seen);
        let (_, again) = follow::follow_resolution(
            session,
            &api,
            &org,
            &id,
            &pfa,
            &resolve,
            Some(followed.check),
            deadline,
            &mut self.interrupt,
            on,
        )
        .await;
        ended(again.end, "the item queued again", self.args.timeout)?;
        requeued_result(&again.items, &id)
    }

    /// Step close: the server answers the close handshake.
    async fn close(&mut self, session: &mut Session) {
        let t = Instant::now();
        let result = match session.close_answered(1000, "normal").await {
            Some(closed) => {
                self.reporter.close(&closed);
                let code = closed
                    .answer
                    .as_ref()
                    .map_or("no code".into(), |a| a.code.to_string());
                Ok(format!("closed with 1000; the server answered {code}"))
            }
            None => Err(StepEnd::Failed(
                Failure::Protocol("the server did not answer the close handshake".into()).into(),
            )),
        };
        self.record(CLOSE, t, result);
    }

    /// The JUnit file, the summary, and the run's end: the first failure, if any
    /// (an interruption: exit 130).
    fn finish(self, started: Instant) -> anyhow::Result<Exit> {
        let summary = SmokeSummary {
            ok: self.failure.is_none(),
            server: self.kind,
            url: crate::client::redact(&self.endpoint.socket),
            organization_id: self.endpoint.org.clone(),
            protocol: self.protocol,
            steps: self.steps,
            items: self.items,
            duration_ms: millis(started.elapsed()),
        };
        self.reporter.summary(json::Summary::Smoke(&summary), || {
            report::summary(&summary, self.reporter.verbosity())
        });
        if let Some(path) = &self.args.junit {
            let mut cases = junit::step_cases(&summary.steps, "smoke");
            let success = EventType::Success.to_string();
            let cut = self.interrupted.then_some("interrupted");
            cases.extend(junit::trace_cases(
                &summary.items,
                "smoke.items",
                Some(&success),
                cut,
            ));
            junit::write(path, "syncprobe smoke", &cases)?;
        }
        match self.failure {
            None => Ok(Exit::Success),
            Some(error) => Err(error),
        }
    }
}

/// The enqueue step, judged on the answer.
fn answer_result(
    response: &WriteSyncResponse,
    answered: f64,
    part2: bool,
    asked: u32,
) -> Result<String, StepEnd> {
    let queued = response.queued_count;
    if queued == 0 {
        return Err(skipped(format!(
            "the backend queued nothing ({}): a Part 1 backend queues only pending modifications",
            response.message.as_deref().unwrap_or("no message")
        )));
    }
    if part2 && queued != u64::from(asked) {
        return Err(expectation(format!(
            "asked for {asked} items, the backend queued {queued}"
        )));
    }
    let job = response.job_id.as_deref().unwrap_or("-");
    Ok(format!(
        "{queued} items queued (job {job}), answered in {answered:.1} ms"
    ))
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

/// Why a follow of the conflict step stopped, when it is not done.
fn ended(end: FollowEnd, what: &str, limit: Duration) -> Result<(), StepEnd> {
    match end {
        FollowEnd::Done => Ok(()),
        FollowEnd::Interrupted => Err(interrupted()),
        FollowEnd::Timeout => Err(StepEnd::Failed(
            Failure::Timeout(format!(
                "{what} did not end within {} (raise --timeout)",
                humantime::format_duration(limit)
            ))
            .into(),
        )),
        FollowEnd::Post(e) | FollowEnd::Stream(e) => Err(e.into()),
    }
}

/// The item a use_local resolution queued again went the lifecycle and succeeded.
fn requeued_result(items: &[ItemTrace], id: &str) -> Result<String, StepEnd> {
    let Some(item) = items.first() else {
        return Err(expectation("the resolution queued nothing".into()));
    };
    if item.outcome != Some(EventType::Success) || item.events.first() != Some(&EventType::Queued) {
        return Err(expectation(format!(
            "after use_local, item {} went {} instead of {LIFECYCLE} ending in SYNC_SUCCESS",
            item.pfa_id,
            item.events_text(" ")
        )));
    }
    Ok(format!(
        "conflict {} listed, resolved with use_local; {} went {} in {:.1} ms",
        crate::text::shown(id, crate::text::MAX_COLUMN),
        item.pfa_id,
        item.events_text(" "),
        item.terminal_ms.unwrap_or(0.0)
    ))
}

/// Every item followed `QUEUED PROCESSING+ TERMINAL` and, where the outcome was
/// asked for (Part 2), ended in success.
fn check_lifecycle(
    items: &[ItemTrace],
    queued: u64,
    timed_out: bool,
    limit: Duration,
    part2: bool,
) -> Result<String, StepEnd> {
    if timed_out {
        return Err(unfinished(items, queued, limit));
    }
    let pattern = Arc::new(Pattern::parse(LIFECYCLE).expect("the lifecycle pattern is valid"));
    for item in items {
        let mut matcher = Matcher::new(&pattern, Mode::Strict);
        for event in &item.events {
            matcher.push(event.as_str());
        }
        if matcher.status() != Status::Satisfied {
            return Err(expectation(format!(
                "item {}: {}",
                item.pfa_id,
                matcher.explain()
            )));
        }
        if part2 && item.outcome != Some(EventType::Success) {
            return Err(expectation(format!(
                "item {} ended {} but success was asked for ({})",
                item.pfa_id,
                item.outcome.as_ref().map_or("-", EventType::as_str),
                item.details
            )));
        }
    }
    let slowest = items
        .iter()
        .filter_map(|i| i.terminal_ms)
        .fold(0.0, f64::max);
    let how = if part2 || items.iter().all(|i| i.outcome == Some(EventType::Success)) {
        "succeeded".to_string()
    } else {
        let ended: Vec<&str> = items
            .iter()
            .filter_map(|i| i.outcome.as_ref().map(EventType::as_str))
            .collect();
        format!("ended as the backend decided ({})", ended.join(", "))
    };
    Ok(format!(
        "{} went {LIFECYCLE} and {how}; slowest {slowest:.1} ms after the POST",
        crate::text::count(items.len() as u64, "item")
    ))
}

/// The lifecycle step timed out: which items did not end, how many never showed.
fn unfinished(items: &[ItemTrace], queued: u64, limit: Duration) -> StepEnd {
    let unfinished: Vec<String> = items
        .iter()
        .filter(|i| i.outcome.is_none())
        .map(|i| {
            let seen = if i.events.is_empty() {
                "nothing".into()
            } else {
                i.events_text(" ")
            };
            format!("{} ({seen})", i.pfa_id)
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
    StepEnd::Failed(Failure::Timeout(message).into())
}

fn check_seq(seq: &SeqSummary) -> Result<String, StepEnd> {
    if seq.gaps == 0 && seq.duplicates == 0 && seq.truncations == 0 && seq.epoch_changes == 0 {
        Ok(format!(
            "contiguous up to seq {} in epoch {}",
            seq.last_seq.map_or("-".into(), |s| s.to_string()),
            seq.epoch.as_deref().unwrap_or("-")
        ))
    } else {
        Err(expectation(format!(
            "seq is not contiguous: {} ({} missing), {}",
            crate::text::count(seq.gaps, "gap"),
            crate::text::count(seq.missing, "event"),
            crate::text::count(seq.duplicates, "duplicate")
        )))
    }
}

/// The open connection is listed, in whatever shape the stats have; an unknown
/// shape is skipped, a list that leaves it out (or counts 0) fails.
fn check_stats(stats: &serde_json::Value, org: &str) -> Result<String, StepEnd> {
    use crate::text::{MAX_COLUMN, shown};
    match stats::org_connections(stats, org) {
        OrgStats::Listed { connections: 0, at } => Err(expectation(format!(
            "/api/ws/stats counts 0 connections for {org} at {} while one is open",
            shown(&at, MAX_COLUMN)
        ))),
        OrgStats::Listed { connections, at } => {
            let total = stats::total_connections(stats)
                .map_or(String::new(), |n| format!(", {n} in total"));
            Ok(format!(
                "lists {} for {org} (at {}){total}",
                crate::text::count(connections, "connection"),
                shown(&at, MAX_COLUMN)
            ))
        }
        OrgStats::NotListed { at, others } => Err(expectation(format!(
            "/api/ws/stats lists {} at {} but not the open connection of {org}",
            crate::text::count(others as u64, "organization"),
            shown(&at, MAX_COLUMN)
        ))),
        OrgStats::Unknown { keys } => Err(skipped(format!(
            "/api/ws/stats has no per-organization figures in a shape syncprobe knows (keys: {}); it is not part of the original protocol",
            shown(&keys.join(", "), crate::text::MAX_SHOWN)
        ))),
    }
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

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
