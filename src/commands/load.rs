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
use crate::load::{self as engine, Plan, Shared, Source, Target};
use crate::report::load::{self as report, LoadReport};
use crate::report::{Reporter, html, json, junit};

/// tungstenite's read buffer of each load socket, until CONNECTED (the load client's
/// own reader takes the socket over then, `load::wire`): 10,000 sockets must stay cheap.
const READ_BUFFER: usize = 4 * 1024;

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
    /// Write an HTML report: run facts, figures, thresholds and charts (connections,
    /// connect time, delivery rate, latency over time, latency histogram, errors)
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write the summary (the `--json` summary record's data) to FILE, for a later
    /// --baseline
    #[arg(long, value_name = "FILE")]
    pub summary_file: Option<PathBuf>,
    /// Compare with an earlier run's summary (--summary-file, or its --json output):
    /// every figure with its change, in the terminal summary and the report
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Write JUnit XML: one test case per threshold and one for completeness
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    Publish,
    Queue,
}

pub async fn run(args: LoadArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    for (path, flag) in [
        (&args.report, "--report"),
        (&args.summary_file, "--summary-file"),
        (&args.junit, "--junit"),
    ] {
        if let Some(path) = path {
            crate::report::check_output_path(path, flag)?;
        }
    }
    if args.passive && args.duration.is_zero() {
        return Err(Failure::Usage("--passive needs a --duration of more than 0".into()).into());
    }
    let baseline = args.baseline.as_deref().map(read_baseline).transpose()?;
    let mut connection = args.connection.clone();
    let embedded = connection.given_urls().is_empty();
    engine::ensure_file_limit(
        args.connections,
        if embedded { args.connections } else { 0 },
    )?;
    let server = if embedded {
        Some(bundled_server(&mut connection, reporter)?)
    } else {
        None
    };
    let result = load(&args, &connection, baseline.as_ref(), reporter).await;
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

/// An earlier run's summary, `--baseline`: anything else is a usage error.
fn read_baseline(path: &Path) -> anyhow::Result<(String, LoadReport)> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("--baseline {shown}: cannot read it: {e}")))?;
    let report = report::parse_baseline(&text).map_err(|why| {
        Failure::Usage(format!(
            "--baseline {shown} is not a load summary: {why} (save one with `load --summary-file FILE`)"
        ))
    })?;
    Ok((shown, report))
}

async fn load(
    args: &LoadArgs,
    connection: &ConnectionArgs,
    baseline: Option<&(String, LoadReport)>,
    reporter: &Reporter,
) -> anyhow::Result<Exit> {
    let plan = plan(args, connection)?;
    let options = load_options(connection)?;
    let shown: Vec<&str> = plan.targets.iter().map(|t| t.url.as_str()).collect();
    reporter.say(&report::banner(
        &shown.join(", "),
        args.connections,
        plan.endpoints().len(),
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
    let (report, shared, stopped) = match outcome {
        Ok((summary, shared)) => {
            let verdicts = threshold::evaluate(&args.thresholds, &summary);
            let report = LoadReport::finished(summary, verdicts, args.allow_loss);
            (report, shared, false)
        }
        Err(e) => match e.downcast::<engine::Interrupted>() {
            // Ctrl-C: what was measured until then is reported, and written where
            // asked, as an interrupted run (never a pass).
            Ok(engine::Interrupted(summary, shared)) => {
                (LoadReport::interrupted(*summary), shared, true)
            }
            Err(e) => return Err(e),
        },
    };
    let baseline = baseline.map(|(name, before)| html::Baseline {
        name: name.clone(),
        deltas: report::compare(&report.summary, &before.summary),
    });
    let written = Written {
        report: &report,
        baseline: baseline.as_ref(),
        shared: &shared,
        interrupted: stopped,
    };
    write_files(args, &plan, &written, reporter)?;
    summarize(reporter, &report, baseline.as_ref());
    if stopped {
        return Err(Failure::Interrupted.into());
    }
    verdict(&report, args.allow_loss)
}

/// What a run leaves for the files it writes.
struct Written<'a> {
    report: &'a LoadReport,
    baseline: Option<&'a html::Baseline>,
    shared: &'a Shared,
    /// Stopped by Ctrl-C: the report says so.
    interrupted: bool,
}

/// `--report`, `--summary-file` and `--junit`, each when asked for.
fn write_files(
    args: &LoadArgs,
    plan: &Plan,
    written: &Written<'_>,
    reporter: &Reporter,
) -> anyhow::Result<()> {
    let Written {
        report,
        baseline,
        shared,
        interrupted,
    } = *written;
    if let Some(path) = &args.report {
        let facts = report::RunFacts {
            version: env!("CARGO_PKG_VERSION").to_string(),
            command: command_line(),
            source: report::source_text(&plan.source),
        };
        let detail = shared.detail();
        let page = html::render(&html::Page {
            report,
            facts: &facts,
            detail: &detail,
            interrupted,
            baseline,
        });
        write(path, page.as_bytes(), "the report")?;
        reporter.note(&report::report_written(path));
    }
    if let Some(path) = &args.summary_file {
        let mut text = serde_json::to_vec_pretty(report).context("failed to encode the summary")?;
        text.push(b'\n');
        write(path, &text, "the summary file")?;
    }
    if let Some(path) = &args.junit {
        junit::write(
            path,
            "syncprobe load",
            &junit::load_cases(report, args.allow_loss, interrupted),
        )?;
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8], what: &str) -> anyhow::Result<()> {
    std::fs::write(path, bytes)
        .with_context(|| format!("failed to write {what} {}", path.display()))
}

/// This process's command line, secrets masked, the program by its file name.
fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(program) = args.first_mut()
        && let Some(name) = Path::new(program.as_str()).file_name()
    {
        *program = name.to_string_lossy().into_owned();
    }
    report::masked_command_line(&args)
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
    let orgs = organizations(args);
    // The same usage errors as every subcommand that takes several --url (the same
    // socket named twice): resolving against them all checks it.
    if let Some(org) = orgs.first() {
        connection.endpoints(org)?;
    }
    let urls = connection.given_urls();
    let urls = if urls.is_empty() {
        vec![client::DEFAULT_URL.to_string()]
    } else {
        urls
    };
    let targets = urls
        .iter()
        .map(|url| {
            let at = connection.with_url(url);
            let endpoints = orgs
                .iter()
                .map(|o| at.endpoint(o))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok(Target {
                url: client::redact_text(url),
                endpoints,
            })
        })
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
        targets,
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
    // Past CONNECTED the load client reads frames itself (`load::wire`).
    options.frame_aligned = true;
    Ok(options)
}

fn summarize(reporter: &Reporter, report: &LoadReport, baseline: Option<&html::Baseline>) {
    reporter.summary(json::Summary::Load(report), || {
        let mut text = report::summary(report);
        if let Some(b) = baseline {
            text.push_str(&report::comparison(&b.name, &b.deltas));
        }
        text
    });
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
