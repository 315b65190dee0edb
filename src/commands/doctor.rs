//! `doctor ORG`: diagnose one organization's socket layer by layer (the walk is
//! `diagnose`), show it as a list with a waterfall or as `layer` records, and
//! write a redacted Markdown report for a ticket.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::{ConnectionArgs, positive_duration};
use crate::diagnose::redact::Redactor;
use crate::diagnose::{self, DEFAULT_PINGS, Diagnosis, Plan};
use crate::exit::{Exit, Failure};
use crate::report::doctor::{self as report, DoctorSummary, ReportContext};
use crate::report::{Reporter, json};

#[derive(Debug, Args)]
#[command(
    after_long_help = "Layers, in order: dns, proxy, tcp, tls, upgrade, auth, connected, ping,
clock, events, status, idle. Each is pass, warn, fail or skip, with its duration and, for a
warning or a failure, a hint. The walk stops at the first failure that makes the next layers
meaningless and says why they were skipped. Exit code: 0 when no layer failed (warnings
allowed), else that of the first failed layer (3 could not connect, 4 timeout, 5 protocol).

Secrets never appear in any output: a JWT is shown as its algorithm, organizations and
expiry, never its signature; Authorization and cookie values, URL passwords and token
parameters are masked. --redact-ids also masks the organization and item ids.

Examples:
  syncprobe doctor org-rio                                   # ws://localhost:3000
  syncprobe doctor org-rio --url wss://api.example.com --token \"$JWT\" --report ticket.md
  syncprobe doctor org-rio --events 30s --hold 2m            # watch events, then sit idle
  syncprobe doctor org-rio --probe                           # queue one test item, follow it
  HTTPS_PROXY=http://proxy:3128 syncprobe doctor org-rio --url wss://api.example.com
  syncprobe doctor org-rio --json | jq -c 'select(.type==\"layer\")'"
)]
pub struct DoctorArgs {
    /// Organization id, or a full socket URL
    #[arg(value_name = "ORG")]
    pub target: String,
    /// How long to wait for CONNECTED, for each REST call and for the probe
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration)]
    pub timeout: Duration,
    /// Pings sent by the ping layer (0 skips it)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PINGS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=100))]
    pub pings: usize,
    /// Watch what arrives for the organization this long (counts by type, gaps,
    /// duplicates, foreign organizations)
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub events: Option<Duration>,
    /// Queue one test item (POST write-sync: a real write) and follow it to its end
    #[arg(long)]
    pub probe: bool,
    /// Keep the socket open this long without traffic of its own, to catch a proxy
    /// that closes idle connections
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub hold: Option<Duration>,
    /// Write a Markdown report for a ticket (redacted) to FILE
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Also mask the organization id and item (pfa) ids in every output
    #[arg(long)]
    pub redact_ids: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

pub async fn run(args: DoctorArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    let endpoint = args.connection.endpoint(&args.target)?;
    let options = args.connection.client_options()?;
    if let Some(path) = &args.report {
        crate::report::check_output_path(path, "--report")?;
    }
    let ids = if args.redact_ids {
        vec![endpoint.org.clone()]
    } else {
        Vec::new()
    };
    let redactor = Redactor::new(options.token.as_deref(), ids);
    let url = crate::client::ws::socket_url(&endpoint, None, &options);
    reporter.say(&report::banner(
        &redactor.apply(&crate::client::redact(&url)),
    ));
    let org = endpoint.org.clone();
    let plan = Plan {
        endpoint,
        options,
        timeout: args.timeout,
        pings: args.pings,
        events: args.events,
        probe: args.probe,
        hold: args.hold,
    };
    let mut diagnosis = tokio::select! {
        diagnosis = diagnose::run(&plan) => diagnosis,
        _ = super::interrupted() => return Err(Failure::Interrupted.into()),
    };
    redact(&mut diagnosis, &redactor);
    let shown_org = redactor.apply(&org);
    let summary = DoctorSummary::of(&diagnosis, &shown_org);
    if reporter.is_json() {
        for layer in &diagnosis.layers {
            reporter.record(&json::Record::Layer(layer));
        }
    } else {
        reporter.say(&format!(
            "{}{}",
            report::layers(&diagnosis.layers),
            report::waterfall(&diagnosis.layers)
        ));
    }
    reporter.summary(json::Summary::Doctor(&summary), || {
        report::verdict(&summary)
    });
    if let Some(path) = &args.report {
        let line = command_line(&redactor);
        let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let cx = ReportContext {
            command_line: &line,
            date: &date,
            org: &shown_org,
        };
        std::fs::write(path, report::markdown(&diagnosis, &summary, &cx)).map_err(|e| {
            anyhow::Error::new(e).context(format!("failed to write the report {}", path.display()))
        })?;
        reporter.note(&format!("report written to {}", path.display()));
    }
    Ok(diagnosis.exit())
}

fn redact(diagnosis: &mut Diagnosis, redactor: &Redactor) {
    diagnosis.url = redactor.apply(&diagnosis.url);
    for layer in &mut diagnosis.layers {
        layer.detail = redactor.apply(&layer.detail);
        layer.hint = layer.hint.as_deref().map(|h| redactor.apply(h));
    }
}

/// The command line as typed: secret flags masked as `load`'s report masks them, then
/// what the redactor masks (tokens anywhere, and ids with `--redact-ids`).
fn command_line(redactor: &Redactor) -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(program) = args.first_mut() {
        *program = "syncprobe".to_string();
    }
    redactor.apply(&crate::report::load::masked_command_line(&args))
}
