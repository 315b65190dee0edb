//! `watch-sync ORG`: stream an organization's events, check every frame, assert
//! expectations, reconnect and resume, and summarise. Replaces the seed's
//! `test-websocket-sync-events.ts ORG`.

use std::cell::Cell;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use tokio::time::Instant;

use super::args::{ConnectionArgs, EventTypeName, positive_count, positive_duration};
use crate::check::{self, CheckConfig, Expectation, StreamCheck, Verdict};
use crate::client::backoff::{Backoff, Delays};
use crate::client::session::{Closed, Session, Started};
use crate::client::{ClientOptions, Endpoint, ws};
use crate::exit::{Exit, Failure};
use crate::expect::{Mode, Pattern};
use crate::protocol::{EventType, Timestamp};
use crate::report::watch::{self as report, Disconnect, Reached, WatchOutcome, WatchSummary};
use crate::report::{Reporter, json, junit};

/// Wait for an expectation or `--count` when `--timeout` is not given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Wait for CONNECTED when `--timeout` is not given.
const CONNECTED_TIMEOUT: Duration = Duration::from_secs(10);
/// A session must last this long before the reconnect backoff starts over: a server
/// that accepts and drops every connection is waited for, not hammered.
const STABLE_SESSION: Duration = Duration::from_secs(10);
/// Close codes that a reconnection cannot change (missing organization, token
/// expired, organization not allowed, policy violation): they end the watch.
const FINAL_CLOSE_CODES: [u16; 4] = [4000, 4401, 4403, 1008];

/// Whether `e` is a refusal that retrying cannot overcome: HTTP 401 or 403 on the
/// upgrade, or a final close code before CONNECTED.
fn is_final_refusal(e: &anyhow::Error) -> bool {
    use crate::client::error::{PeerClosed, find, http_status};
    matches!(http_status(e), Some(401 | 403))
        || find::<PeerClosed>(e)
            .and_then(|c| c.code)
            .is_some_and(|code| FINAL_CLOSE_CODES.contains(&code))
}

#[derive(Debug, Args)]
#[command(after_long_help = "Expectations (--expect):
  Event types in order, matched as a subsequence (others may come between) or, with
  --strict, exactly. QUEUED, PROCESSING, SUCCESS, CONFLICT, FAILED stand for the SYNC_
  types; TERMINAL is (SYNC_SUCCESS|SYNC_CONFLICT|SYNC_FAILED); _ is any event.
  Quantifiers: + * ? {N} {N,} {N,M} (N, M numbers). Groups ( ), alternatives |.
  Names are checked, in --expect and --fail-on alike: one that is not a type of the
  protocol could never match, so it is a usage error (exit 2, with the nearest
  name); --allow-type NAME admits a custom type.

Examples:
  syncprobe watch-sync org-rio                                  # stream until Ctrl-C
  syncprobe watch-sync org-rio --expect 'CONNECTED QUEUED PROCESSING+ (SUCCESS|CONFLICT)' --timeout 30s
  syncprobe watch-sync org-rio --per-item --items 3 --expect 'QUEUED PROCESSING+ TERMINAL' --strict
  syncprobe watch-sync org-rio --fail-on SYNC_FAILED --duration 5m --reconnect
  syncprobe watch-sync org-rio --count 40 --reconnect --fail-on-gap   # none lost, none twice
  syncprobe watch-sync org-rio --where details.error=timeout --record events.ndjson
  syncprobe watch-sync org-rio --since 0 --expect 'QUEUED PROCESSING+ TERMINAL'  # replay, then live
  syncprobe watch-sync org-rio --last 20

Event lines show the receive time in UTC (10:00:00.123Z). Replayed events (--since,
--last: a Part 2 server's history) are marked, counted as replayed, and are no
latency samples.")]
pub struct WatchSyncArgs {
    /// Organization id, or a full socket URL
    #[arg(value_name = "ORG")]
    pub target: String,
    /// Ordered pattern of event types to wait for (see below)
    #[arg(long, value_name = "PATTERN", value_parser = parse_pattern)]
    pub expect: Option<Arc<Pattern>>,
    /// Match the pattern exactly, with nothing between its events
    #[arg(long, requires = "expect")]
    pub strict: bool,
    /// Apply the pattern to every item (pfaId) separately
    #[arg(long, requires = "expect")]
    pub per_item: bool,
    /// With --per-item: items that must be seen before the expectation can hold
    #[arg(long, value_name = "N", default_value_t = 1, requires = "per_item", value_parser = positive_count)]
    pub items: usize,
    /// Exit 1 as soon as an event of one of these types arrives (comma-separated)
    #[arg(long, value_name = "TYPES", value_delimiter = ',', value_parser = EventTypeName, hide_possible_values = true)]
    pub fail_on: Vec<String>,
    /// Accept this event type in --expect and --fail-on although the protocol does
    /// not define it (repeatable)
    #[arg(long = "allow-type", value_name = "NAME")]
    pub allow_type: Vec<String>,
    /// Consider only this item (repeatable)
    #[arg(long = "item", value_name = "PFA_ID")]
    pub item: Vec<String>,
    /// Consider only events whose field equals the value: FIELD=VALUE, dotted paths
    /// such as details.error (repeatable; all must hold)
    #[arg(long = "where", value_name = "FIELD=VALUE", value_parser = check::parse_where)]
    pub wheres: Vec<(String, String)>,
    /// Stop after this many events (after filters)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Replay the events the server kept after seq N (`?since=N`), then go on live;
    /// needs a Part 2 server (exit 5 on a Part 1 server)
    #[arg(long, value_name = "N", conflicts_with = "last")]
    pub since: Option<u64>,
    /// Replay the server's last N events, then go on live: asks the server for its
    /// seq first (a short connection of its own), then opens with since = seq - N;
    /// needs a Part 2 server (exit 5 on a Part 1 server)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub last: Option<u64>,
    /// Stop after watching this long (more than 0; without it, watch until Ctrl-C)
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub duration: Option<Duration>,
    /// Bound the wait for CONNECTED and for --expect or --count (default 10s and 60s)
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub timeout: Option<Duration>,
    /// Report protocol violations as warnings instead of failing (exit 5)
    #[arg(long)]
    pub lenient: bool,
    /// Reconnect when the connection is lost, resuming from the last seq when the
    /// server numbers its events; with several --url, a failed socket moves to the
    /// next URL (round-robin)
    #[arg(long)]
    pub reconnect: bool,
    /// First reconnect delay ceiling (full jitter, doubling per attempt)
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = positive_duration)]
    pub reconnect_base: Duration,
    /// Largest reconnect delay
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration)]
    pub reconnect_cap: Duration,
    /// Consecutive failed reconnect attempts before giving up (0 = never give up)
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub reconnect_attempts: u32,
    /// Ping the server this often; a ping unanswered by the next one means the
    /// connection is dead (with -v, round-trip times are shown)
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub ping_interval: Option<Duration>,
    /// Write every received frame to FILE as NDJSON, with its receive time
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Exit 1 when the stream had a seq gap, a duplicate, a late (reordered) event
    /// or a truncated history, which are otherwise reported only
    #[arg(long)]
    pub fail_on_gap: bool,
    /// Write a JUnit XML report: one test case for the expectation and one per item
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

fn parse_pattern(s: &str) -> Result<Arc<Pattern>, String> {
    Pattern::parse(s)
        .map(Arc::new)
        .map_err(|e| format!("\n{e}"))
}

/// How a watch ended.
#[derive(Debug)]
enum End {
    Satisfied,
    Failed(String),
    Protocol(String),
    Timeout,
    Finished(Limit),
    Interrupted,
    ServerClosed(Option<(u16, String)>),
    GaveUp(anyhow::Error),
}

/// The limits that end a watch without a verdict of their own.
#[derive(Clone, Copy, Debug)]
enum Limit {
    Count,
    Duration,
}

impl Limit {
    fn outcome(self) -> WatchOutcome {
        match self {
            Limit::Count => WatchOutcome::Count,
            Limit::Duration => WatchOutcome::Duration,
        }
    }

    /// The flag that set it.
    fn flag(self) -> &'static str {
        match self {
            Limit::Count => "count",
            Limit::Duration => "duration",
        }
    }
}

/// The end a verdict calls for, if any.
fn ended(verdict: Verdict) -> Option<End> {
    match verdict {
        Verdict::Satisfied => Some(End::Satisfied),
        Verdict::Failed(message) => Some(End::Failed(message)),
        Verdict::Continue => None,
    }
}

/// `--record FILE`: one line per received frame.
struct Recorder {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
}

impl Recorder {
    fn create(path: &PathBuf) -> anyhow::Result<Recorder> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("failed to create the record file {}", path.display()))?;
        Ok(Recorder {
            file: std::io::BufWriter::new(file),
            path: path.clone(),
        })
    }

    fn write(&mut self, raw: &str, at: SystemTime) -> anyhow::Result<()> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Line<'a> {
            received_at: Timestamp,
            received_at_us: u64,
            frame: &'a serde_json::value::RawValue,
        }
        let us = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let received_at = Timestamp(chrono::DateTime::<chrono::Utc>::from(at));
        // A frame that is not JSON is recorded as a JSON string, so nothing is lost.
        let owned;
        let frame = match serde_json::value::RawValue::from_string(raw.to_string()) {
            Ok(value) => {
                owned = value;
                &*owned
            }
            Err(_) => {
                owned = serde_json::value::RawValue::from_string(serde_json::to_string(raw)?)?;
                &*owned
            }
        };
        serde_json::to_writer(
            &mut self.file,
            &Line {
                received_at,
                received_at_us: us,
                frame,
            },
        )?;
        self.file.write_all(b"\n")?;
        self.file
            .flush()
            .with_context(|| format!("failed to write the record file {}", self.path.display()))
    }
}

pub async fn run(args: WatchSyncArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    for (path, flag) in [(&args.junit, "--junit"), (&args.record, "--record")] {
        if let Some(path) = path {
            crate::report::check_output_path(path, flag)?;
        }
    }
    let endpoints = args.connection.endpoints(&args.target)?;
    let config = check_config(&args, &endpoints[0].org)?;
    let options = args.connection.client_options()?;
    let recorder = args.record.as_ref().map(Recorder::create).transpose()?;
    let started = Instant::now();
    let waits_for_something = args.expect.is_some() || args.count.is_some();
    let mut watch = Watch {
        args: &args,
        endpoints,
        current: 0,
        sessions: std::collections::VecDeque::new(),
        options,
        reporter,
        check: StreamCheck::new(config),
        recorder,
        started,
        timeout_at: waits_for_something.then(|| started + args.timeout.unwrap_or(DEFAULT_TIMEOUT)),
        duration_at: args.duration.map(|d| started + d),
        interrupt: Box::pin(super::interrupted()),
        pfa_width: 0,
        opened: false,
    };
    let end = watch.run().await;
    watch.finish(end)
}

/// The stream check the flags ask for.
fn check_config(args: &WatchSyncArgs, org: &str) -> anyhow::Result<CheckConfig> {
    let expect = args.expect.clone().map(|pattern| Expectation {
        pattern,
        mode: if args.strict {
            Mode::Strict
        } else {
            Mode::Subsequence
        },
        per_item: args.per_item,
        min_items: args.items,
    });
    if let Some(e) = &expect
        && e.per_item
        && e.pattern.mentions("CONNECTED")
    {
        return Err(Failure::Usage(
            "with --per-item the pattern applies to each item's events, which never include CONNECTED: remove it from --expect".into(),
        )
        .into());
    }
    if let Some(e) = &expect {
        e.pattern
            .check_types(&args.allow_type)
            .map_err(Failure::Usage)?;
    }
    for name in &args.fail_on {
        crate::expect::check_type_name(name, &args.allow_type)
            .map_err(|message| Failure::Usage(format!("--fail-on: {message}")))?;
    }
    let fail_on: Vec<EventType> = args
        .fail_on
        .iter()
        .map(|t| EventType::from(crate::expect::event_type_name(t).as_str()))
        .collect();
    Ok(CheckConfig {
        org: org.to_string(),
        lenient: args.lenient,
        items: args.item.clone(),
        wheres: args.wheres.clone(),
        fail_on,
        expect,
    })
}

struct Watch<'a> {
    args: &'a WatchSyncArgs,
    /// Every URL's endpoint (several `--url`), in order; never empty.
    endpoints: Vec<Endpoint>,
    /// The endpoint the next connection goes to.
    current: usize,
    /// The sessions so far (the last [`report::MAX_SESSIONS`]), each with the count
    /// of events before it.
    sessions: std::collections::VecDeque<(report::SessionSummary, u64)>,
    options: ClientOptions,
    reporter: &'a Reporter,
    check: StreamCheck,
    recorder: Option<Recorder>,
    started: Instant,
    /// `--timeout`, when there is something to wait for.
    timeout_at: Option<Instant>,
    /// `--duration`.
    duration_at: Option<Instant>,
    /// Ctrl-C, one future for the whole run: a signal that arrives between two waits
    /// (while a frame is handled) is kept for the next wait instead of being lost.
    interrupt: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    /// The widest pfaId shown so far: the column event lines pad to.
    pfa_width: usize,
    /// Whether a socket ever opened (the upgrade completed).
    opened: bool,
}

/// The error for `--since`/`--last` against a server whose CONNECTED has no seq.
const NO_HISTORY: &str = "the server's CONNECTED has no seq: it is a Part 1 server, which keeps no history to replay (remove --since/--last)";

/// How one attempt to connect went.
enum Attempt {
    Ready(Box<Session>),
    /// Opening the socket failed on a reconnection: wait, then try again.
    Failed(anyhow::Error),
    /// CONNECTED was wrong on a reconnection (already warned): try again at once.
    Again,
    /// The first connection could not open (the URL did not answer).
    FirstFailed(anyhow::Error),
    /// The first connection opened, but its CONNECTED was missing or wrong.
    FirstUnconnected(anyhow::Error),
    End(End),
}

/// What ended one connection.
enum Lost {
    End(End),
    /// The connection was lost; reconnect if allowed.
    Disconnected(Disconnect),
}

/// `--ping-interval`: the pings sent and the one awaiting its pong.
struct Heartbeat {
    enabled: bool,
    ticker: tokio::time::Interval,
    sent: u64,
    outstanding: Option<(u64, Instant)>,
}

impl Heartbeat {
    async fn new(every: Option<Duration>) -> Heartbeat {
        let every = every.filter(|d| !d.is_zero());
        let mut ticker = tokio::time::interval(every.unwrap_or(Duration::from_secs(3600)));
        // The first tick is immediate; the first ping is due one interval in.
        ticker.tick().await;
        Heartbeat {
            enabled: every.is_some(),
            ticker,
            sent: 0,
            outstanding: None,
        }
    }

    /// Resolves when a ping is due (never without `--ping-interval`).
    async fn due(&mut self) {
        if self.enabled {
            self.ticker.tick().await;
        } else {
            std::future::pending::<()>().await;
        }
    }

    /// The payload of the next ping, now outstanding.
    fn next_ping(&mut self) -> Vec<u8> {
        self.sent += 1;
        self.outstanding = Some((self.sent, Instant::now()));
        self.sent.to_be_bytes().to_vec()
    }

    /// The round trip, when `payload` answers the outstanding ping.
    fn answered(&mut self, payload: &[u8]) -> Option<Duration> {
        let (id, sent) = self.outstanding?;
        if payload != id.to_be_bytes() {
            return None;
        }
        self.outstanding = None;
        Some(sent.elapsed())
    }
}

impl Watch<'_> {
    async fn run(&mut self) -> End {
        let urls: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| crate::client::redact(&ws::socket_url(e, None, &self.options)))
            .collect();
        self.reporter.say(&report::banner(
            &self.endpoints[0].org,
            &urls.join(", then "),
        ));
        let backoff = Backoff {
            base: self.args.reconnect_base,
            cap: self.args.reconnect_cap,
            max_attempts: (self.args.reconnect_attempts > 0)
                .then_some(self.args.reconnect_attempts),
        };
        let mut delays = backoff.delays(rand::rng());
        let mut disconnected_at: Option<Timestamp> = None;
        let mut first = true;
        let mut replay_from = match self.replay_from().await {
            Ok(from) => from,
            Err(end) => return end,
        };
        loop {
            let resume = if first {
                replay_from.take()
            } else {
                self.check
                    .resume_point()
                    .map(|(since, epoch)| ws::ResumeFrom { since, epoch })
            };
            let attempt = match first {
                true => self.connect_first(resume.as_ref()).await,
                false => self.connect(resume.as_ref(), false).await,
            };
            let mut session = match attempt {
                Attempt::Ready(session) => session,
                Attempt::Failed(e) => {
                    self.next_url();
                    match self.wait_to_retry(&mut delays, e).await {
                        Some(end) => return end,
                        None => continue,
                    }
                }
                Attempt::Again => {
                    self.next_url();
                    continue;
                }
                Attempt::FirstFailed(e) | Attempt::FirstUnconnected(e) => {
                    return End::GaveUp(e);
                }
                Attempt::End(end) => return end,
            };
            let verdict = match self.on_session(&session, resume.as_ref(), disconnected_at.take()) {
                Ok(verdict) => verdict,
                Err(end) => return end,
            };
            first = false;
            if let Some(end) = ended(verdict) {
                return self.close_with(&mut session, end).await;
            }
            let began = Instant::now();
            match self.read(&mut session).await {
                Lost::End(end) => return self.close_with(&mut session, end).await,
                Lost::Disconnected(why) => {
                    self.reporter.close(&Closed::by_server(why.frame()));
                    let code = why.frame().map(|(code, _)| code);
                    let final_code = code.is_some_and(|c| FINAL_CLOSE_CODES.contains(&c));
                    if !self.args.reconnect || final_code {
                        return End::ServerClosed(why.frame());
                    }
                    disconnected_at = Some(Timestamp::now());
                    if code != Some(1000) {
                        // Not a normal close: the instance may be going away.
                        self.next_url();
                    }
                    if let Some(end) = self.after_session(&mut delays, began, &why).await {
                        return end;
                    }
                }
            }
        }
    }

    /// The first connection: with several URLs, each in turn until one reaches
    /// CONNECTED (each failure warned); when none does, the last failure's end, the
    /// error naming every URL tried. A stop (Ctrl-C, a limit) ends it at once.
    async fn connect_first(&mut self, resume: Option<&ws::ResumeFrom>) -> Attempt {
        let mut failed: Vec<(String, anyhow::Error)> = Vec::new();
        loop {
            let (e, opened) = match self.connect(resume, true).await {
                Attempt::FirstFailed(e) => (e, false),
                Attempt::FirstUnconnected(e) => (e, true),
                other => return other,
            };
            let url = crate::client::redact(&self.endpoints[self.current].socket);
            let more = failed.len() + 1 < self.endpoints.len();
            if more {
                let (n, of) = (failed.len() + 2, self.endpoints.len());
                self.reporter
                    .warn(&crate::report::connect::next_url(&url, &e, n, of));
            }
            failed.push((url, e));
            if !more {
                let e = crate::client::none_answered(failed);
                return self.first_failed(e, opened);
            }
            self.next_url();
        }
    }

    /// The end of a first connection that failed (`opened`: the socket opened, but
    /// CONNECTED was missing or wrong), as one URL has always ended.
    fn first_failed(&self, e: anyhow::Error, opened: bool) -> Attempt {
        if !opened {
            return Attempt::End(End::GaveUp(e));
        }
        Attempt::End(match crate::exit::exit_for(&e) {
            Exit::Timeout => End::GaveUp(e),
            _ => End::Protocol(format!("{e:#}")),
        })
    }

    /// Moves to the next URL (round-robin; nothing with one URL).
    fn next_url(&mut self) {
        self.current = (self.current + 1) % self.endpoints.len();
    }

    /// The URL the next connection goes to, as shown, when there are several.
    fn next_shown(&self) -> Option<String> {
        (self.endpoints.len() > 1)
            .then(|| crate::client::redact(&self.endpoints[self.current].socket))
    }

    /// Notes a session that reached CONNECTED: its URL, resume point and epoch.
    fn add_session(&mut self, connected: &ws::ConnectedFrame, resume: Option<&ws::ResumeFrom>) {
        if self.sessions.len() >= report::MAX_SESSIONS {
            self.sessions.pop_front();
        }
        let session = report::SessionSummary {
            url: crate::client::redact(&self.endpoints[self.current].socket),
            since: resume.map(|r| r.since),
            seq: connected.connected.seq,
            epoch: connected.connected.epoch.clone(),
            events: 0,
        };
        self.sessions.push_back((session, self.check.events()));
    }

    /// The sessions for the summary, each with the events received on it.
    fn session_summaries(&self) -> Vec<report::SessionSummary> {
        let ends = self
            .sessions
            .iter()
            .skip(1)
            .map(|(_, before)| *before)
            .chain([self.check.events()]);
        self.sessions
            .iter()
            .zip(ends)
            .map(|((session, before), end)| report::SessionSummary {
                events: end.saturating_sub(*before),
                ..session.clone()
            })
            .collect()
    }

    /// Opens a session (the first, or a reconnection resuming from `resume`). Ctrl-C
    /// ends it at any point; `--timeout` and `--duration` only while the socket is
    /// being opened (the wait for CONNECTED has its own limit).
    async fn connect(&mut self, resume: Option<&ws::ResumeFrom>, first: bool) -> Attempt {
        let opened = Cell::new(false);
        let mut stopped = None;
        let attempt = self.check.connections();
        // An explicit --timeout bounds the first connection's opening as well (a
        // silent port is not waited on for --connect-timeout).
        let connect_by = self
            .args
            .timeout
            .filter(|_| first)
            .map(|limit| self.started + limit);
        let started = {
            let stop = stop(
                &mut self.interrupt,
                [self.timeout_at.or(connect_by), self.duration_at],
                &opened,
                &mut stopped,
            );
            tokio::pin!(stop);
            let endpoint = &self.endpoints[self.current];
            let (reporter, org) = (self.reporter, &endpoint.org);
            let on_open = |o: &ws::Opened| {
                opened.set(true);
                reporter.open(&json::Open::of(o, org, attempt));
            };
            let within = self.args.timeout.unwrap_or(CONNECTED_TIMEOUT);
            Session::start(endpoint, resume, &self.options, within, on_open, &mut stop).await
        };
        self.opened |= opened.get();
        match started {
            Ok(Started::Ready(session)) => Attempt::Ready(session),
            Ok(Started::Interrupted(closed)) => {
                if let Some(closed) = closed {
                    self.reporter.close(&closed);
                }
                Attempt::End(stopped.unwrap_or(End::Interrupted))
            }
            Err(e) if !opened.get() && first => Attempt::FirstFailed(e),
            Err(e) if !opened.get() && is_final_refusal(&e) => Attempt::End(End::GaveUp(e)),
            Err(e) if !opened.get() => Attempt::Failed(e),
            Err(e) => self.connected_failed(e, first),
        }
    }

    /// CONNECTED was missing or wrong: the end of the watch, except for a protocol
    /// error on a reconnection (a server restarting), which is tried again.
    fn connected_failed(&self, e: anyhow::Error, first: bool) -> Attempt {
        if first {
            return Attempt::FirstUnconnected(e);
        }
        let exit = crate::exit::exit_for(&e);
        if exit != Exit::Protocol {
            return Attempt::End(match exit {
                Exit::Timeout => End::GaveUp(e),
                _ => End::Protocol(format!("{e:#}")),
            });
        }
        self.reporter.warn(&format!("{e:#}"));
        Attempt::Again
    }

    /// After a lost session: a stable one starts the backoff over and reconnects at
    /// once; a short one counts as a failed attempt and waits its delay (`Some` ends
    /// the watch: attempts used up, Ctrl-C, a limit).
    async fn after_session(
        &mut self,
        delays: &mut Delays<impl rand::Rng>,
        began: Instant,
        why: &Disconnect,
    ) -> Option<End> {
        let lasted = began.elapsed();
        let stable = lasted >= STABLE_SESSION;
        if stable {
            delays.reset();
        }
        self.reporter.warn(&report::reconnecting(
            why,
            delays.attempts() + 1,
            self.max_attempts(),
            self.next_shown().as_deref(),
        ));
        if stable {
            return None;
        }
        let short = Failure::Protocol(format!(
            "the server ended the connection after {} (a session shorter than {} does not reset the backoff)",
            humantime::format_duration(Duration::from_millis(lasted.as_millis() as u64)),
            humantime::format_duration(STABLE_SESSION)
        ))
        .into();
        self.wait_to_retry(delays, short).await
    }

    /// After a failed reconnection: waits for the next backoff delay (`None`), or
    /// ends the watch when the attempts are used up or something else ends it.
    async fn wait_to_retry(
        &mut self,
        delays: &mut Delays<impl rand::Rng>,
        e: anyhow::Error,
    ) -> Option<End> {
        let Some(delay) = delays.next() else {
            return Some(End::GaveUp(e.context(format!(
                "reconnecting failed {} in a row; giving up",
                match delays.attempts() {
                    1 => "once".to_string(),
                    n => format!("{n} times"),
                }
            ))));
        };
        self.reporter.warn(&report::reconnect_failed(
            delays.attempts(),
            self.max_attempts(),
            &e,
            delay,
            self.next_shown().as_deref(),
        ));
        tokio::select! {
            end = self.stopped() => Some(end),
            _ = tokio::time::sleep(delay) => None,
        }
    }

    /// `--reconnect-attempts` (`None`: unlimited).
    fn max_attempts(&self) -> Option<u32> {
        (self.args.reconnect_attempts > 0).then_some(self.args.reconnect_attempts)
    }

    /// Where the first connection replays from: `--since N`, or for `--last N` the
    /// server's seq (asked over a short connection of its own) minus N.
    async fn replay_from(&mut self) -> Result<Option<ws::ResumeFrom>, End> {
        if let Some(since) = self.args.since {
            return Ok(Some(ws::ResumeFrom { since, epoch: None }));
        }
        let Some(n) = self.args.last else {
            return Ok(None);
        };
        let mut probe = match self.connect_first(None).await {
            Attempt::Ready(session) => session,
            Attempt::End(end) => return Err(end),
            Attempt::Failed(e) | Attempt::FirstFailed(e) | Attempt::FirstUnconnected(e) => {
                return Err(End::GaveUp(e));
            }
            Attempt::Again => return Err(End::Protocol(NO_HISTORY.into())),
        };
        let connected = &probe.connected.connected;
        let Some(seq) = connected.seq else {
            // Shown and counted: it is what the server said.
            self.on_session(&probe, None, None)?;
            return Err(End::Protocol(NO_HISTORY.into()));
        };
        let since = seq.saturating_sub(n);
        let epoch = connected.epoch.clone();
        self.reporter.debug(&report::last_from(n, seq, since));
        let closed = probe.close(1000, "normal").await;
        self.reporter.close(&closed);
        Ok(Some(ws::ResumeFrom { since, epoch }))
    }

    /// Resolves at Ctrl-C, `--timeout` or `--duration`, whichever comes first.
    async fn stopped(&mut self) -> End {
        tokio::select! {
            _ = &mut self.interrupt => End::Interrupted,
            _ = sleep_until(self.timeout_at) => End::Timeout,
            _ = sleep_until(self.duration_at) => End::Finished(Limit::Duration),
        }
    }

    /// A session's CONNECTED: recorded, checked, shown; `disconnected_at` is when
    /// the previous connection was lost.
    fn on_session(
        &mut self,
        session: &Session,
        resume: Option<&ws::ResumeFrom>,
        disconnected_at: Option<Timestamp>,
    ) -> Result<Verdict, End> {
        let connected = &session.connected;
        self.add_session(connected, resume);
        self.record(&connected.raw, SystemTime::now())?;
        let (findings, verdict) = self
            .check
            .on_connected(&connected.connected, resume.map(|r| r.since));
        if let Some(from) = disconnected_at
            && connected.connected.seq.is_none()
        {
            self.check.loss_window(
                from,
                Timestamp::now(),
                "reconnected to a server without seq: events sent while disconnected were not seen",
            );
            self.reporter.warn(report::UNNUMBERED_RECONNECT);
        }
        let at = SystemTime::now();
        report::show_event(
            self.reporter,
            &connected.raw,
            Some(&connected.frame),
            || report::event_line(&connected.raw, Some(&connected.frame), at, 0, false),
        );
        for finding in findings {
            self.reporter.warn(&finding.message());
        }
        if resume.is_some() && connected.connected.seq.is_none() && self.check.connections() == 1 {
            return Err(End::Protocol(NO_HISTORY.into()));
        }
        Ok(verdict)
    }

    /// `--record`: a write error ends the watch.
    fn record(&mut self, raw: &str, at: SystemTime) -> Result<(), End> {
        match &mut self.recorder {
            Some(recorder) => recorder.write(raw, at).map_err(End::GaveUp),
            None => Ok(()),
        }
    }

    /// Reads one connection until something ends it.
    async fn read(&mut self, session: &mut Session) -> Lost {
        let mut heartbeat = Heartbeat::new(self.args.ping_interval).await;
        loop {
            let lost = tokio::select! {
                end = self.stopped() => Some(Lost::End(end)),
                _ = heartbeat.due() => self.ping(session, &mut heartbeat).await,
                incoming = session.next() => self.on_incoming(incoming, &mut heartbeat),
            };
            if let Some(lost) = lost {
                return lost;
            }
        }
    }

    /// A ping is due: the previous one must have been answered.
    async fn ping(&self, session: &mut Session, heartbeat: &mut Heartbeat) -> Option<Lost> {
        if heartbeat.outstanding.is_some() {
            return Some(self.dead(Disconnect::PingUnanswered));
        }
        let payload = heartbeat.next_ping();
        match ws::ping(&mut session.stream, payload).await {
            Ok(()) => None,
            Err(_) => Some(self.dead(Disconnect::PingFailed)),
        }
    }

    fn on_incoming(
        &mut self,
        incoming: anyhow::Result<ws::Incoming>,
        heartbeat: &mut Heartbeat,
    ) -> Option<Lost> {
        let incoming = match incoming {
            Ok(incoming) => incoming,
            Err(e) => return Some(Lost::End(End::Protocol(format!("{e:#}")))),
        };
        match incoming {
            ws::Incoming::Text { text, at } => self.on_text(&text, at).map(Lost::End),
            ws::Incoming::Binary(len) => {
                let message = report::binary_frame(len);
                if !self.args.lenient {
                    return Some(Lost::End(End::Protocol(message)));
                }
                self.reporter.warn(&message);
                None
            }
            ws::Incoming::Pong(payload) => {
                if let Some(round_trip) = heartbeat.answered(&payload) {
                    self.reporter.debug(&report::pong(round_trip));
                }
                None
            }
            ws::Incoming::Closed(frame) => Some(Lost::Disconnected(Disconnect::of(frame))),
        }
    }

    /// A text frame after CONNECTED: recorded, checked, shown when it passes the
    /// filters; the end it calls for, if any.
    fn on_text(&mut self, text: &str, at: SystemTime) -> Option<End> {
        if let Err(end) = self.record(text, at) {
            return Some(end);
        }
        let outcome = match self.check.on_frame(text, at) {
            Ok(outcome) => outcome,
            Err(violation) => return Some(End::Protocol(violation.0)),
        };
        if outcome.considered {
            if let Some(crate::protocol::ServerFrame::Event(e)) = &outcome.frame {
                let width = crate::text::shown(&e.pfa_id, crate::text::MAX_COLUMN)
                    .chars()
                    .count();
                self.pfa_width = self.pfa_width.max(width);
            }
            let width = self.pfa_width;
            report::show_event(self.reporter, text, outcome.frame.as_ref(), || {
                report::event_line(text, outcome.frame.as_ref(), at, width, outcome.replayed)
            });
        }
        for finding in &outcome.findings {
            self.reporter.warn(&finding.message());
        }
        if let Some(end) = ended(outcome.verdict) {
            return Some(end);
        }
        self.args
            .count
            .is_some_and(|n| self.check.events() >= n)
            .then_some(End::Finished(Limit::Count))
    }

    fn dead(&self, why: Disconnect) -> Lost {
        if self.args.reconnect {
            Lost::Disconnected(why)
        } else {
            Lost::End(End::Protocol(format!("{why} (dead connection)")))
        }
    }

    /// Closes our side with 1000 and reports it.
    async fn close_with(&self, session: &mut Session, end: End) -> End {
        if matches!(end, End::Protocol(_)) {
            // The connection may be unusable; do not wait on it.
            return end;
        }
        let closed = session.close(1000, "normal").await;
        self.reporter.close(&closed);
        end
    }

    fn expectation_unmet(&self) -> bool {
        self.args.expect.is_some() && !self.check.satisfied()
    }

    fn outcome(&self, end: &End) -> WatchOutcome {
        let never_connected = self.check.connections() == 0;
        match end {
            End::GaveUp(_) | End::Timeout | End::Protocol(_) | End::Finished(_)
                if never_connected =>
            {
                WatchOutcome::ConnectFailed
            }
            End::Satisfied => WatchOutcome::Satisfied,
            End::Failed(_) => WatchOutcome::Failed,
            End::Protocol(_) => WatchOutcome::ProtocolError,
            End::Timeout => WatchOutcome::Timeout,
            End::Finished(_) if self.expectation_unmet() => WatchOutcome::Failed,
            End::Finished(limit) => limit.outcome(),
            End::Interrupted => WatchOutcome::Interrupted,
            End::ServerClosed(_) => WatchOutcome::Closed,
            End::GaveUp(_) => WatchOutcome::GaveUp,
        }
    }

    /// Reports the summary (and `--junit`), then turns the end into the exit.
    fn finish(&self, end: End) -> anyhow::Result<Exit> {
        let reached = match (self.check.connections(), self.opened) {
            (0, false) => Reached::None,
            (0, true) => Reached::Opened,
            _ => Reached::Connected,
        };
        let mut outcome = self.outcome(&end);
        let check = self.check.summary();
        // --fail-on-gap turns a passing end into a failure; any other end stands.
        let broken = report::broken_continuity(&check)
            .filter(|_| self.args.fail_on_gap && outcome.is_success());
        if broken.is_some() {
            outcome = WatchOutcome::Failed;
        }
        let summary = WatchSummary {
            outcome,
            reached,
            duration_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            sessions: self.session_summaries(),
            check,
        };
        self.reporter
            .summary(json::Summary::Watch(&summary), || report::summary(&summary));
        if let Some(path) = &self.args.junit {
            self.write_junit(path, &summary)?;
        }
        if let Some(message) = broken {
            return Err(Failure::Expectation(message).into());
        }
        match end {
            End::Satisfied => Ok(Exit::Success),
            // A watch that never saw CONNECTED watched nothing: never a pass.
            End::Finished(limit) if self.check.connections() == 0 => {
                Err(Failure::Timeout(format!(
                    "the watch ended (--{}) before CONNECTED: {}",
                    limit.flag(),
                    if self.opened {
                        "the socket opened, but no CONNECTED came"
                    } else {
                        "the socket did not open; no frame received"
                    }
                ))
                .into())
            }
            End::Finished(_) if !self.expectation_unmet() => Ok(Exit::Success),
            End::Finished(limit) => Err(Failure::Expectation(format!(
                "the expectation was not met when the watch ended (--{}):\n{}",
                limit.flag(),
                self.check.explain_unmet()
            ))
            .into()),
            End::Failed(message) => Err(Failure::Expectation(message).into()),
            End::Protocol(message) => Err(Failure::Protocol(message).into()),
            End::Timeout => Err(self.timed_out()),
            End::Interrupted => Err(Failure::Interrupted.into()),
            End::ServerClosed(frame) => {
                let how = match frame {
                    Some((code, reason)) => format!(
                        "with code {code} (reason: {})",
                        if reason.is_empty() { "-" } else { &reason }
                    ),
                    None => "without a close frame".to_string(),
                };
                Err(Failure::Protocol(format!(
                    "the server closed the connection {how} (use --reconnect to resume)"
                ))
                .into())
            }
            End::GaveUp(e) => Err(e),
        }
    }

    /// The error for `--timeout`: what was awaited and how far it got.
    fn timed_out(&self) -> anyhow::Error {
        let limit = self.args.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if self.check.connections() == 0 {
            return Failure::Timeout(format!(
                "timed out after {} before the socket opened (--timeout): no frame received",
                humantime::format_duration(limit)
            ))
            .into();
        }
        let what = if self.args.expect.is_some() {
            "the expected events"
        } else {
            "the events"
        };
        let mut message = format!(
            "timed out after {} waiting for {what}",
            humantime::format_duration(limit)
        );
        if self.args.expect.is_some() {
            message.push_str(&format!(":\n{}", self.check.explain_unmet()));
        } else if let Some(count) = self.args.count {
            message.push_str(&format!(": {} of {count} arrived", self.check.events()));
        }
        Failure::Timeout(message).into()
    }

    /// One case for the run as a whole (its expectation, or a clean end), one per item.
    fn write_junit(&self, path: &std::path::Path, summary: &WatchSummary) -> anyhow::Result<()> {
        let classname = format!("watch-sync.{}", self.endpoints[0].org);
        let name = match &summary.check.expectation {
            Some(e) => format!("expect {}", e.pattern),
            None => "watch".to_string(),
        };
        let explanation = summary
            .check
            .expectation
            .as_ref()
            .and_then(|e| e.explanation.clone());
        let whole = junit::Case {
            name,
            classname: classname.clone(),
            time: Duration::from_secs_f64(summary.duration_ms / 1000.0),
            outcome: if summary.outcome.is_success() {
                junit::Outcome::Passed
            } else {
                junit::Outcome::Failed {
                    message: format!("the watch ended: {}", summary.outcome),
                    details: explanation.unwrap_or_else(|| format!("outcome: {}", summary.outcome)),
                }
            },
        };
        let mut cases = vec![whole];
        cases.extend(junit::item_cases(
            &summary.check,
            &format!("{classname}.items"),
            None,
        ));
        junit::write(path, "syncprobe watch-sync", &cases)
    }
}

/// Resolves when Ctrl-C arrives, when `--duration` ends (opening or waiting for
/// CONNECTED), or when the timeout passes before the socket is `opened` (the wait
/// for CONNECTED has its own), saying in `stopped` which it was.
async fn stop(
    interrupt: &mut (impl Future<Output = ()> + Unpin),
    [timeout_at, duration_at]: [Option<Instant>; 2],
    opened: &Cell<bool>,
    stopped: &mut Option<End>,
) {
    let end = tokio::select! {
        biased;
        _ = interrupt => End::Interrupted,
        _ = before_open(timeout_at, opened) => End::Timeout,
        _ = sleep_until(duration_at) => End::Finished(Limit::Duration),
    };
    *stopped = Some(end);
}

/// Resolves at `at` unless the socket is open by then.
async fn before_open(at: Option<Instant>, opened: &Cell<bool>) {
    sleep_until(at).await;
    if opened.get() {
        std::future::pending::<()>().await;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::error::{PeerClosed, UpgradeRefused, failed};

    #[test]
    fn refusals_that_no_retry_can_change_are_final() {
        let refused = |status| {
            failed(
                Failure::Connect("the server refused the WebSocket upgrade".into()),
                UpgradeRefused {
                    status,
                    body: String::new(),
                },
            )
        };
        let closed = |code| {
            failed(
                Failure::Protocol("closed before CONNECTED".into()),
                PeerClosed {
                    code: Some(code),
                    reason: String::new(),
                },
            )
        };
        assert!(is_final_refusal(&refused(401)) && is_final_refusal(&refused(403)));
        assert!(!is_final_refusal(&refused(503)) && !is_final_refusal(&refused(429)));
        for code in FINAL_CLOSE_CODES {
            assert!(is_final_refusal(&closed(code)), "{code}");
        }
        assert!(!is_final_refusal(&closed(1011)) && !is_final_refusal(&closed(4429)));
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_final_refusal(&failed(
            Failure::Connect("tcp".into()),
            io
        )));
    }
}
