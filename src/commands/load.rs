//! `load`: open many sync sockets over one or more organizations, drive events through
//! them, and measure connect time, fan-out latency and completeness, against
//! thresholds. The engine is `crate::load`, the text `crate::report::load`; this file
//! holds the flags and hands the engine's values to the reporter.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::args::{ConnectionArgs, parse_duration, parse_rate, positive_count, positive_duration};
use crate::client::{self, ClientOptions};
use crate::exit::{Exit, Failure};
use crate::load::threshold::{self, Threshold};
use crate::load::{self as engine, LoadSummary, Plan, Shared, Source};
use crate::report::load::{self as report, LoadReport};
use crate::report::{Reporter, html, json};

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
    #[arg(long, short = 'c', value_name = "C", default_value_t = 100, value_parser = positive_count)]
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
    #[arg(long, value_name = "R", default_value_t = 0.0, value_parser = parse_rate)]
    pub ramp_rate: f64,
    /// Handshakes in flight at once
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = positive_count)]
    pub max_pending: usize,
    /// Keep the sockets open at least this long once they are all up
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_duration)]
    pub duration: Duration,
    /// Events per organization (publish), or items per organization (queue: 3 events each)
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub events: u64,
    /// Events per second per organization (0 = as fast as possible)
    #[arg(long, value_name = "R", default_value_t = 0.0, value_parser = parse_rate)]
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
    /// Pass although events were missing, duplicated or reordered (by default any
    /// loss fails the run, exit 1)
    #[arg(long)]
    pub allow_loss: bool,
    /// Wait for each CONNECTED
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration)]
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
    if let Some(path) = &args.report {
        crate::report::check_output_path(path, "--report")?;
    }
    if args.passive && args.duration.is_zero() {
        return Err(Failure::Usage("--passive needs a --duration of more than 0".into()).into());
    }
    let mut connection = args.connection.clone();
    let embedded = connection.given_url().is_none();
    engine::ensure_file_limit(
        args.connections,
        if embedded { args.connections } else { 0 },
    )?;
    let server = if embedded {
        Some(bundled_server(&mut connection, reporter)?)
    } else {
        None
    };
    let result = load(&args, &connection, reporter).await;
    if let Some(server) = server {
        server.stop().await;
    }
    result
}

/// Starts the bundled server and points `connection` at it.
fn bundled_server(
    connection: &mut ConnectionArgs,
    reporter: &Reporter,
) -> anyhow::Result<crate::server::Embedded> {
    let server = crate::server::Embedded::start(crate::server::Config {
        // Loading its own server, `load` must not be refused by the default caps.
        max_connections: 0,
        max_connections_per_org: 0,
        ..crate::server::Config::default()
    })?;
    connection.set_url(format!("ws://{}", server.addr));
    reporter.note(&report::bundled(server.addr));
    Ok(server)
}

async fn load(
    args: &LoadArgs,
    connection: &ConnectionArgs,
    reporter: &Reporter,
) -> anyhow::Result<Exit> {
    let plan = plan(args, connection)?;
    let options = load_options(connection)?;
    reporter.say(&report::banner(
        &client::redact_text(
            connection
                .given_url()
                .as_deref()
                .unwrap_or(client::DEFAULT_URL),
        ),
        args.connections,
        plan.endpoints.len(),
    ));
    let api_timeout = args.drain_timeout + Duration::from_secs(60);
    let on_progress = |p: &engine::Progress| reporter.progress(&report::progress_line(p), p);
    let outcome = engine::run(
        &plan,
        &options,
        api_timeout,
        super::interrupted(),
        on_progress,
    )
    .await;
    reporter.finish_progress();
    let (summary, shared) = match outcome {
        Ok(pair) => pair,
        Err(e) => return Err(interrupted(e, reporter)),
    };
    let verdicts = threshold::evaluate(&args.thresholds, &summary);
    if let Some(path) = &args.report {
        write_report(path, &summary, &verdicts, &shared)?;
        reporter.note(&report::report_written(path));
    }
    let report = LoadReport::finished(summary, verdicts, args.allow_loss);
    summarize(reporter, &report);
    verdict(&report, args.allow_loss)
}

/// The organizations to load: `--org`, or PREFIX-1 … PREFIX-K.
fn organizations(args: &LoadArgs) -> Vec<String> {
    if args.org_list.is_empty() {
        (1..=args.orgs)
            .map(|i| format!("{}-{i}", args.org_prefix))
            .collect()
    } else {
        args.org_list.clone()
    }
}

fn plan(args: &LoadArgs, connection: &ConnectionArgs) -> anyhow::Result<Plan> {
    let endpoints = organizations(args)
        .iter()
        .map(|o| connection.endpoint(o))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let source = match (args.passive, args.via) {
        (true, _) => Source::Passive,
        (false, Via::Publish) => Source::Publish {
            events: args.events,
            rate: args.rate,
        },
        (false, Via::Queue) => Source::Queue { items: args.events },
    };
    Ok(Plan {
        endpoints,
        connections: args.connections,
        ramp_rate: args.ramp_rate,
        max_pending: args.max_pending,
        hold: args.duration,
        source,
        drain_timeout: args.drain_timeout,
        connected_timeout: args.timeout,
    })
}

/// The client options, with the small socket buffers of a load client.
fn load_options(connection: &ConnectionArgs) -> anyhow::Result<ClientOptions> {
    let mut options = connection.client_options()?;
    options.ws_config = Some(
        WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0),
    );
    Ok(options)
}

/// A run stopped by Ctrl-C reports what it measured; any other error ends it as is.
fn interrupted(error: anyhow::Error, reporter: &Reporter) -> anyhow::Error {
    match error.downcast::<engine::Interrupted>() {
        Ok(engine::Interrupted(summary)) => {
            summarize(reporter, &LoadReport::interrupted(*summary));
            Failure::Interrupted.into()
        }
        Err(e) => e,
    }
}

fn write_report(
    path: &Path,
    summary: &LoadSummary,
    verdicts: &[threshold::Verdict],
    shared: &Shared,
) -> anyhow::Result<()> {
    let (latency, timeline) = shared.latency_detail();
    let page = html::render(summary, verdicts, &latency, &timeline);
    std::fs::write(path, page)
        .with_context(|| format!("failed to write the report {}", path.display()))
}

fn summarize(reporter: &Reporter, report: &LoadReport) {
    reporter.summary(json::Summary::Load(report), || report::summary(report));
}

/// Exit 0 when the run passed; 3 when no connection opened; 1 on a breached
/// threshold or on loss (without `--allow-loss`).
fn verdict(report: &LoadReport, allow_loss: bool) -> anyhow::Result<Exit> {
    let s = &report.summary;
    if s.connections_opened == 0 {
        return Err(Failure::Connect(format!(
            "none of the {} opened ({})",
            crate::text::count(s.connections_requested, "connection"),
            report::errors_list(&s.errors)
        ))
        .into());
    }
    if report.ok {
        return Ok(Exit::Success);
    }
    let mut failed: Vec<String> = report
        .thresholds
        .iter()
        .filter(|v| !v.ok)
        .map(|v| v.message.clone())
        .collect();
    if !allow_loss {
        failed.extend(report::loss(s));
    }
    Err(Failure::Expectation(failed.join("; ")).into())
}
