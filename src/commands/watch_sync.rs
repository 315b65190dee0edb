//! `watch-sync ORG`: stream an organization's events, check every frame, assert
//! expectations, reconnect and resume, and summarise. Replaces the seed's
//! `test-websocket-sync-events.ts ORG`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use tokio::time::Instant;

use super::args::{ConnectionArgs, parse_duration};
use crate::check::{self, CheckConfig, Expectation, StreamCheck, Verdict};
use crate::client::backoff::Backoff;
use crate::client::{ClientOptions, Endpoint, ws};
use crate::exit::{Exit, Failure};
use crate::expect::{Mode, Pattern};
use crate::protocol::{EventType, Timestamp};
use crate::report::human::{self, EventStyle};
use crate::report::watch::WatchSummary;
use crate::report::{Reporter, json, junit};

/// Wait for an expectation or `--count` when `--timeout` is not given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Wait for CONNECTED when `--timeout` is not given.
const CONNECTED_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
#[command(after_long_help = "Expectations (--expect):
  Event types in order, matched as a subsequence (others may come between) or, with
  --strict, exactly. QUEUED, PROCESSING, SUCCESS, CONFLICT, FAILED stand for the SYNC_
  types; TERMINAL is (SYNC_SUCCESS|SYNC_CONFLICT|SYNC_FAILED); _ is any event.
  Quantifiers: + * ? {n} {n,} {n,m}. Groups ( ), alternatives |.

Examples:
  syncprobe watch-sync org-rio                                  # stream until Ctrl-C
  syncprobe watch-sync org-rio --expect 'CONNECTED QUEUED PROCESSING+ (SUCCESS|CONFLICT)' --timeout 30s
  syncprobe watch-sync org-rio --per-item --items 3 --expect 'QUEUED PROCESSING+ TERMINAL' --strict
  syncprobe watch-sync org-rio --fail-on SYNC_FAILED --duration 5m --reconnect
  syncprobe watch-sync org-rio --where details.error=timeout --record events.ndjson")]
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
    #[arg(long, value_name = "N", default_value_t = 1, requires = "per_item")]
    pub items: usize,
    /// Exit 1 as soon as an event of one of these types arrives (comma-separated)
    #[arg(long, value_name = "TYPES", value_delimiter = ',')]
    pub fail_on: Vec<String>,
    /// Consider only this item (repeatable)
    #[arg(long = "item", value_name = "PFA_ID")]
    pub item: Vec<String>,
    /// Consider only events whose field equals the value: FIELD=VALUE, dotted paths
    /// such as details.error (repeatable; all must hold)
    #[arg(long = "where", value_name = "FIELD=VALUE", value_parser = check::parse_where)]
    pub wheres: Vec<(String, String)>,
    /// Stop after this many events (after filters)
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after watching this long
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Bound the wait for CONNECTED and for --expect or --count (default 10s and 60s)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Report protocol violations as warnings instead of failing (exit 5)
    #[arg(long)]
    pub lenient: bool,
    /// Reconnect when the connection is lost, resuming from the last seq when the
    /// server numbers its events
    #[arg(long)]
    pub reconnect: bool,
    /// First reconnect delay ceiling (full jitter, doubling per attempt)
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    pub reconnect_base: Duration,
    /// Largest reconnect delay
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub reconnect_cap: Duration,
    /// Consecutive failed reconnect attempts before giving up (0 = never give up)
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub reconnect_attempts: u32,
    /// Ping the server this often; a ping unanswered by the next one means the
    /// connection is dead (with -v, round-trip times are shown)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ping_interval: Option<Duration>,
    /// Write every received frame to FILE as NDJSON, with its receive time
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
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
    Finished(&'static str),
    Interrupted,
    ServerClosed(Option<(u16, String)>),
    GaveUp(anyhow::Error),
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
    let endpoint = args.connection.endpoint(&args.target)?;
    let options = args.connection.client_options()?;
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
    let fail_on: Vec<EventType> = args
        .fail_on
        .iter()
        .map(|t| EventType::from(crate::expect::event_type_name(t).as_str()))
        .collect();
    let config = CheckConfig {
        org: endpoint.org.clone(),
        lenient: args.lenient,
        items: args.item.clone(),
        wheres: args.wheres.clone(),
        fail_on,
        expect,
    };
    let mut recorder = args.record.as_ref().map(Recorder::create).transpose()?;
    let mut watch = Watch {
        args: &args,
        endpoint,
        options,
        reporter,
        check: StreamCheck::new(config),
        started: Instant::now(),
        interrupt: Box::pin(super::interrupted()),
    };
    let end = watch.run(&mut recorder).await;
    watch.finish(end)
}

struct Watch<'a> {
    args: &'a WatchSyncArgs,
    endpoint: Endpoint,
    options: ClientOptions,
    reporter: &'a Reporter,
    check: StreamCheck,
    started: Instant,
    /// Ctrl-C, one future for the whole run: a signal that arrives between two waits
    /// (while a frame is handled) is kept for the next wait instead of being lost.
    interrupt: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

/// What ended one connection.
enum Lost {
    End(End),
    /// The connection was lost; reconnect if allowed.
    Disconnected(Option<(u16, String)>, String),
}

impl Watch<'_> {
    fn waits_for_something(&self) -> bool {
        self.args.expect.is_some() || self.args.count.is_some()
    }

    async fn run(&mut self, recorder: &mut Option<Recorder>) -> End {
        let timeout_at = self
            .waits_for_something()
            .then(|| self.started + self.args.timeout.unwrap_or(DEFAULT_TIMEOUT));
        let duration_at = self.args.duration.map(|d| self.started + d);
        let backoff = Backoff {
            base: self.args.reconnect_base,
            cap: self.args.reconnect_cap,
            max_attempts: (self.args.reconnect_attempts > 0)
                .then_some(self.args.reconnect_attempts),
        };
        let mut delays = backoff.delays(rand::rng());
        let mut disconnected_at: Option<Timestamp> = None;
        let mut first = true;
        self.reporter.say(&format!(
            "Watching sync events of {} at {}\n",
            human::paint(human::BOLD, &self.endpoint.org),
            ws::masked(&ws::socket_url(&self.endpoint, None, &self.options))
        ));
        loop {
            let resume = if first {
                None
            } else {
                self.check
                    .resume_point()
                    .map(|(since, epoch)| ws::ResumeFrom { since, epoch })
            };
            let opened = tokio::select! {
                // Polled first, so the handlers are in place before anything else happens.
                biased;
                _ = &mut self.interrupt => return End::Interrupted,
                _ = sleep_until(timeout_at) => return End::Timeout,
                _ = sleep_until(duration_at) => return End::Finished("duration"),
                opened = ws::open(&self.endpoint, resume.as_ref(), &self.options) => opened,
            };
            let mut opened = match opened {
                Ok(opened) => opened,
                Err(e) if first => return End::GaveUp(e),
                Err(e) => {
                    let Some(delay) = delays.next() else {
                        return End::GaveUp(e.context("reconnecting failed; giving up"));
                    };
                    self.reporter.warn(&format!(
                        "reconnect attempt {} failed: {e:#}; next in {}",
                        delays.attempts(),
                        fmt_duration(delay)
                    ));
                    tokio::select! {
                        _ = &mut self.interrupt => return End::Interrupted,
                        _ = sleep_until(timeout_at) => return End::Timeout,
                        _ = sleep_until(duration_at) => return End::Finished("duration"),
                        _ = tokio::time::sleep(delay) => continue,
                    }
                }
            };
            self.reporter.open(&json::Open {
                url: opened.display_url.clone(),
                organization_id: self.endpoint.org.clone(),
                open_ms: opened.open_time.as_secs_f64() * 1000.0,
                subprotocol: opened.subprotocol.clone(),
                attempt: self.check.summary().reconnects + u32::from(!first),
            });
            let connected_limit = self.args.timeout.unwrap_or(CONNECTED_TIMEOUT);
            let connected = tokio::select! {
                _ = &mut self.interrupt => return End::Interrupted,
                c = ws::expect_connected(&mut opened.stream, &self.endpoint.org, connected_limit) => c,
            };
            let connected = match connected {
                Ok(c) => c,
                Err(e) => {
                    let exit = crate::exit::exit_for(&e);
                    if first || exit != Exit::Protocol {
                        return match exit {
                            Exit::Timeout => End::GaveUp(e),
                            _ => End::Protocol(format!("{e:#}")),
                        };
                    }
                    self.reporter.warn(&format!("{e:#}"));
                    continue;
                }
            };
            if let Some(recorder) = recorder
                && let Err(e) = recorder.write(&connected.raw, SystemTime::now())
            {
                return End::GaveUp(e);
            }
            let (findings, verdict) = self
                .check
                .on_connected(&connected.connected, resume.as_ref().map(|r| r.since));
            if let Some(from) = disconnected_at.take()
                && connected.connected.seq.is_none()
            {
                self.check.loss_window(from, Timestamp::now(), "reconnected to a server without seq: events sent while disconnected were not seen");
                self.reporter.warn("reconnected to a server without sequence numbers: events sent while disconnected may have been missed");
            }
            self.reporter
                .event(&connected.raw, Some(&connected.frame), EventStyle::Line);
            for finding in findings {
                self.reporter.warn(&finding.message());
            }
            delays.reset();
            first = false;
            match verdict {
                Verdict::Satisfied => {
                    return self.close_with(&mut opened.stream, End::Satisfied).await;
                }
                Verdict::Failed(m) => {
                    return self.close_with(&mut opened.stream, End::Failed(m)).await;
                }
                Verdict::Continue => {}
            }
            match self
                .read(&mut opened.stream, recorder, timeout_at, duration_at)
                .await
            {
                Lost::End(end) => return self.close_with(&mut opened.stream, end).await,
                Lost::Disconnected(frame, why) => {
                    let (code, reason) = frame
                        .clone()
                        .map_or((None, String::new()), |(c, r)| (Some(c), r));
                    self.reporter.close(&json::Close {
                        code,
                        reason,
                        initiator: crate::client::session::Initiator::Server,
                    });
                    if !self.args.reconnect {
                        return End::ServerClosed(frame);
                    }
                    disconnected_at = Some(Timestamp::now());
                    self.reporter.warn(&format!("{why}; reconnecting"));
                }
            }
        }
    }

    /// Reads one connection until something ends it.
    async fn read(
        &mut self,
        stream: &mut ws::Stream,
        recorder: &mut Option<Recorder>,
        timeout_at: Option<Instant>,
        duration_at: Option<Instant>,
    ) -> Lost {
        let ping_every = self.args.ping_interval.filter(|d| !d.is_zero());
        let mut ticker = tokio::time::interval(ping_every.unwrap_or(Duration::from_secs(3600)));
        ticker.tick().await;
        let mut outstanding: Option<(u64, Instant)> = None;
        let mut pings = 0u64;
        loop {
            tokio::select! {
                _ = &mut self.interrupt => return Lost::End(End::Interrupted),
                _ = sleep_until(timeout_at) => return Lost::End(End::Timeout),
                _ = sleep_until(duration_at) => return Lost::End(End::Finished("duration")),
                _ = ticker.tick(), if ping_every.is_some() => {
                    if outstanding.is_some() {
                        return self.dead("the server stopped answering pings");
                    }
                    pings += 1;
                    outstanding = Some((pings, Instant::now()));
                    if ws::ping(stream, pings.to_be_bytes().to_vec()).await.is_err() {
                        return self.dead("sending a ping failed");
                    }
                }
                incoming = ws::next(stream) => {
                    let incoming = match incoming {
                        Ok(incoming) => incoming,
                        Err(e) => return Lost::End(End::Protocol(format!("{e:#}"))),
                    };
                    match incoming {
                        ws::Incoming::Text { text, at } => {
                            if let Some(recorder) = recorder
                                && let Err(e) = recorder.write(&text, at)
                            {
                                return Lost::End(End::GaveUp(e));
                            }
                            let outcome = match self.check.on_frame(&text, at) {
                                Ok(outcome) => outcome,
                                Err(violation) => return Lost::End(End::Protocol(violation.0)),
                            };
                            if outcome.considered {
                                self.reporter.event(&text, outcome.frame.as_ref(), EventStyle::Line);
                            }
                            for finding in &outcome.findings {
                                self.reporter.warn(&finding.message());
                            }
                            match outcome.verdict {
                                Verdict::Satisfied => return Lost::End(End::Satisfied),
                                Verdict::Failed(m) => return Lost::End(End::Failed(m)),
                                Verdict::Continue => {}
                            }
                            if self.args.count.is_some_and(|n| self.check.events() >= n) {
                                return Lost::End(End::Finished("count"));
                            }
                        }
                        ws::Incoming::Binary(len) => {
                            let message = format!("a binary frame of {len} bytes: the protocol sends JSON text frames only");
                            if !self.args.lenient {
                                return Lost::End(End::Protocol(message));
                            }
                            self.reporter.warn(&message);
                        }
                        ws::Incoming::Pong(payload) => {
                            if let Some((id, sent)) = outstanding
                                && payload == id.to_be_bytes()
                            {
                                self.reporter.debug(&format!("pong in {}", human::ms(sent.elapsed().as_secs_f64() * 1000.0)));
                                outstanding = None;
                            }
                        }
                        ws::Incoming::Closed(frame) => {
                            let why = match &frame {
                                Some((code, reason)) => format!("the server closed the connection (code {code}, reason: {})", if reason.is_empty() { "-" } else { reason }),
                                None => "the connection was lost without a close frame".to_string(),
                            };
                            return Lost::Disconnected(frame, why);
                        }
                    }
                }
            }
        }
    }

    fn dead(&self, why: &str) -> Lost {
        if self.args.reconnect {
            Lost::Disconnected(None, why.to_string())
        } else {
            Lost::End(End::Protocol(format!("{why} (dead connection)")))
        }
    }

    /// Closes our side with 1000 and reports it.
    async fn close_with(&self, stream: &mut ws::Stream, end: End) -> End {
        if matches!(end, End::Protocol(_)) {
            // The connection may be unusable; do not wait on it.
            return end;
        }
        let answer = ws::close(stream, 1000, "normal").await;
        let (code, reason) = answer.unwrap_or((1000, "normal".into()));
        self.reporter.close(&json::Close {
            code: Some(code),
            reason,
            initiator: crate::client::session::Initiator::Client,
        });
        end
    }

    fn finish(&self, end: End) -> anyhow::Result<Exit> {
        let expectation_unmet = self.args.expect.is_some() && !self.check.satisfied();
        let outcome = match &end {
            End::Satisfied => "satisfied",
            End::Failed(_) => "failed",
            End::Protocol(_) => "protocol-error",
            End::Timeout => "timeout",
            End::Finished(_) if expectation_unmet => "failed",
            End::Finished(why) => why,
            End::Interrupted => "interrupted",
            End::ServerClosed(_) => "closed",
            End::GaveUp(_) => "gave-up",
        };
        let summary = WatchSummary {
            outcome: outcome.to_string(),
            duration_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            check: self.check.summary(),
        };
        self.reporter.summary(json::Summary::Watch(&summary), || {
            human::watch_summary(&summary.check, outcome)
        });
        if let Some(path) = &self.args.junit {
            self.write_junit(path, &summary)?;
        }
        let what = if self.args.expect.is_some() {
            "the expected events"
        } else {
            "the events"
        };
        match end {
            End::Satisfied => Ok(Exit::Success),
            End::Finished(_) if !expectation_unmet => Ok(Exit::Success),
            End::Finished(why) => Err(Failure::Expectation(format!(
                "the expectation was not met when the watch ended (--{why}):\n{}",
                self.check.explain_unmet()
            ))
            .into()),
            End::Failed(message) => Err(Failure::Expectation(message).into()),
            End::Protocol(message) => Err(Failure::Protocol(message).into()),
            End::Timeout => {
                let limit = self.args.timeout.unwrap_or(DEFAULT_TIMEOUT);
                let mut message = format!(
                    "timed out after {} waiting for {what}",
                    humantime::format_duration(limit)
                );
                if self.args.expect.is_some() {
                    message.push_str(&format!(":\n{}", self.check.explain_unmet()));
                } else if let Some(count) = self.args.count {
                    message.push_str(&format!(": {} of {count} arrived", self.check.events()));
                }
                Err(Failure::Timeout(message).into())
            }
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
}

impl Watch<'_> {
    /// One case for the run as a whole (its expectation, or a clean end), one per item.
    fn write_junit(&self, path: &std::path::Path, summary: &WatchSummary) -> anyhow::Result<()> {
        let classname = format!("watch-sync.{}", self.endpoint.org);
        let name = match &summary.check.expectation {
            Some(e) => format!("expect {}", e.pattern),
            None => "watch".to_string(),
        };
        let ok = matches!(summary.outcome.as_str(), "satisfied" | "count" | "duration");
        let explanation = summary
            .check
            .expectation
            .as_ref()
            .and_then(|e| e.explanation.clone());
        let whole = junit::Case {
            name,
            classname: classname.clone(),
            time: Duration::from_secs_f64(summary.duration_ms / 1000.0),
            outcome: if ok {
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}
