//! `load`: open many sync sockets over one or more organizations, drive events through
//! them, and measure connect time, fan-out latency and completeness, against
//! thresholds. The engine is `crate::load`; this file holds the flags and the output.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::args::{ConnectionArgs, parse_duration};
use crate::client::{self};
use crate::exit::{Exit, Failure};
use crate::load::threshold::{self, Threshold};
use crate::load::{self as engine, Plan, Source};
use crate::report::Reporter;
use crate::report::human::{self, paint};
use crate::report::load::LoadReport;

/// Buffers of each load socket: frames are small, and 10,000 sockets must stay cheap.
const READ_BUFFER: usize = 8 * 1024;

#[derive(Debug, Args)]
#[command(
    after_long_help = "Thresholds (--threshold, repeatable; a breach exits 1):
  p50 p90 p95 p99 p999 max mean     fan-out latency (ms; units us, ms, s)
  connect_p95, connected_p99, …     socket open time, time to CONNECTED
  loss loss_pct duplicates reordered errors delivered rate connect_rate opened

Examples:
  syncprobe load                                               # 100 sockets on the bundled server
  syncprobe load --url ws://127.0.0.1:3000 --connections 10000 --events 200 --threshold 'p99<25ms' --threshold 'loss==0'
  syncprobe load --connections 200 --orgs 3 --rate 50 --events 100 --report load.html
  syncprobe load --url wss://sync.example.com --passive --duration 5m --connections 50 --org org-rio"
)]
pub struct LoadArgs {
    /// Sockets to open
    #[arg(long, short = 'c', value_name = "C", default_value_t = 100)]
    pub connections: usize,
    /// Organizations to spread them over, named PREFIX-1 … PREFIX-K
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub orgs: u32,
    /// Prefix of the generated organization names
    #[arg(long, value_name = "PREFIX", default_value = "org-load")]
    pub org_prefix: String,
    /// Use these organizations instead (repeatable or comma-separated)
    #[arg(long = "org", value_name = "ORG", value_delimiter = ',', conflicts_with_all = ["orgs", "org_prefix"])]
    pub org_list: Vec<String>,
    /// Connections opened per second (0 = as fast as --max-pending allows)
    #[arg(long, value_name = "R", default_value_t = 0.0)]
    pub ramp_rate: f64,
    /// Handshakes in flight at once
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_pending: usize,
    /// Keep the sockets open at least this long once they are all up
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_duration)]
    pub duration: Duration,
    /// Events per organization (publish), or items per organization (queue: 3 events each)
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub events: u64,
    /// Events per second per organization (0 = as fast as possible)
    #[arg(long, value_name = "R", default_value_t = 0.0)]
    pub rate: f64,
    /// How events are produced: POST /api/ws/publish, or the write-sync queue
    #[arg(
        long,
        value_name = "SOURCE",
        default_value = "publish",
        conflicts_with = "passive"
    )]
    pub via: Via,
    /// Produce no events: measure what someone else produces (needs --duration)
    #[arg(long, requires = "duration")]
    pub passive: bool,
    /// How long to wait for the last deliveries after the source is done
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Wait for each CONNECTED
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Pass/fail rule, like 'p99<50ms', 'connect_p95<200ms', 'loss==0' (repeatable)
    #[arg(long = "threshold", value_name = "RULE")]
    pub thresholds: Vec<Threshold>,
    /// Write an HTML report (latency histogram and latency over time)
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    Publish,
    Queue,
}

pub async fn run(args: LoadArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    let mut connection = args.connection.clone();
    let embedded = connection.url.is_none();
    engine::ensure_file_limit(
        args.connections,
        if embedded { args.connections } else { 0 },
    )?;
    let server = if embedded {
        let server = crate::server::Embedded::start(crate::server::Config {
            // Loading its own server, `load` must not be refused by the default caps.
            max_connections: 0,
            max_connections_per_org: 0,
            ..crate::server::Config::default()
        })?;
        connection.url = Some(format!("ws://{}", server.addr));
        reporter.note(&format!(
            "no --url given: loading the bundled server, started in this process on ws://{} (figures include its CPU; run `syncprobe serve` separately to measure a server alone)",
            server.addr
        ));
        Some(server)
    } else {
        None
    };
    let result = load(&args, &connection, reporter).await;
    if let Some(server) = server {
        server.stop().await;
    }
    result
}

async fn load(
    args: &LoadArgs,
    connection: &ConnectionArgs,
    reporter: &Reporter,
) -> anyhow::Result<Exit> {
    if args.connections == 0 {
        return Err(Failure::Usage("--connections must be at least 1".into()).into());
    }
    let orgs: Vec<String> = if args.org_list.is_empty() {
        (1..=args.orgs)
            .map(|i| format!("{}-{i}", args.org_prefix))
            .collect()
    } else {
        args.org_list.clone()
    };
    let endpoints = orgs
        .iter()
        .map(|o| connection.endpoint(o))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut options = connection.client_options()?;
    options.ws_config = Some(
        WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0),
    );
    let source = match (args.passive, args.via) {
        (true, _) => Source::Passive,
        (false, Via::Publish) => Source::Publish {
            events: args.events,
            rate: args.rate,
        },
        (false, Via::Queue) => Source::Queue { items: args.events },
    };
    let plan = Plan {
        endpoints,
        connections: args.connections,
        ramp_rate: args.ramp_rate,
        max_pending: args.max_pending,
        hold: args.duration,
        source,
        drain_timeout: args.drain_timeout,
        connected_timeout: args.timeout,
    };
    reporter.say(&format!(
        "Loading {} with {} connections over {} organization(s)\n",
        connection.url.as_deref().unwrap_or(client::DEFAULT_URL),
        args.connections,
        orgs.len()
    ));
    let api_timeout = args.drain_timeout + Duration::from_secs(60);
    let outcome = engine::run(&plan, &options, api_timeout, super::interrupted(), |p| {
        let line = format!(
            "open {}/{} | delivered {} | p99 {:.2} ms | errors {}",
            p.open, p.requested, p.delivered, p.p99_ms, p.errors
        );
        reporter.progress(&line, p);
    })
    .await;
    reporter.finish_progress();
    let (summary, shared) = match outcome {
        Ok(pair) => pair,
        Err(e) => match e.downcast::<engine::Interrupted>() {
            Ok(engine::Interrupted(summary)) => {
                report(
                    reporter,
                    &LoadReport {
                        ok: false,
                        summary: *summary,
                        thresholds: Vec::new(),
                    },
                );
                return Err(Failure::Interrupted.into());
            }
            Err(e) => return Err(e),
        },
    };
    let verdicts = threshold::evaluate(&args.thresholds, &summary);
    if let Some(path) = &args.report {
        let (latency, timeline) = shared.latency_detail();
        let html = crate::load::html::render(&summary, &verdicts, &latency, &timeline);
        std::fs::write(path, html)
            .with_context(|| format!("failed to write the report {}", path.display()))?;
        reporter.note(&format!("report written to {}", path.display()));
    }
    let ok = verdicts.iter().all(|v| v.ok) && summary.connections_opened > 0;
    let none_opened = summary.connections_opened == 0;
    let errors: Vec<String> = summary
        .errors
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    report(
        reporter,
        &LoadReport {
            ok,
            summary,
            thresholds: verdicts.clone(),
        },
    );
    if none_opened {
        let errors = errors.join(", ");
        return Err(Failure::Connect(format!(
            "none of the {} connections opened ({errors})",
            args.connections
        ))
        .into());
    }
    if ok {
        Ok(Exit::Success)
    } else {
        let breached: Vec<String> = verdicts
            .into_iter()
            .filter(|v| !v.ok)
            .map(|v| v.message)
            .collect();
        Err(Failure::Expectation(breached.join("; ")).into())
    }
}

fn report(reporter: &Reporter, report: &LoadReport) {
    reporter.summary(crate::report::json::Summary::Load(report), || {
        let s = &report.summary;
        let p = |p: &engine::Percentiles| format!("p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3} ms", p.p50, p.p90, p.p99, p.max);
        let mut text = format!("\n{}\n", paint(human::BOLD, "Load summary"));
        let mut row = |k: &str, v: String| text.push_str(&format!("  {:<20} {v}\n", k));
        row("connections", format!("{} opened / {} requested, {} failed, {} org(s)", s.connections_opened, s.connections_requested, s.connections_failed, s.organizations));
        row("connect rate", format!("{:.0} connections/s", s.connect_rate));
        row("connect time", p(&s.connect_ms));
        row("time to CONNECTED", p(&s.connected_ms));
        row("fan-out latency", format!("{}  ({} samples, from {})", p(&s.latency_ms), s.latency_ms.count, s.latency_source.as_deref().unwrap_or("-")));
        row("delivered", format!("{} frames, {:.0} frames/s", s.frames_delivered, s.delivered_per_sec));
        match &s.completeness {
            Some(c) => {
                let line = format!("{} missing, {} duplicated, {} reordered of {} deliveries ({} / {} subscribers complete)", c.missing, c.duplicated, c.reordered, c.expected, c.complete_subscribers, c.subscribers);
                let clean = c.missing == 0 && c.duplicated == 0 && c.reordered == 0;
                row("completeness", if clean { paint(human::GREEN, line) } else { paint(human::RED, line) });
            }
            None => row("completeness", "not measurable: the server sends no seq".into()),
        }
        if s.errors.is_empty() {
            row("errors", "none".into());
        } else {
            row("errors", paint(human::RED, s.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect::<Vec<_>>().join(", ")));
        }
        if let Some(cpu) = s.client_cpu_us_per_frame {
            row("client CPU", format!("{cpu:.3} µs per delivered frame"));
        }
        for v in &report.thresholds {
            let mark = if v.ok { paint(human::GREEN, "✓") } else { paint(human::RED, "✗") };
            text.push_str(&format!("  {mark} {}\n", v.message));
        }
        text
    });
}
