//! `status ORG`: an organization's queue figures (`GET /api/pems/sync-status`) and,
//! where the backend has it, its line of `/api/ws/stats` (read in any shape, as
//! `smoke` does), for support staff who would otherwise need curl. `--watch` looks
//! again every INTERVAL until Ctrl-C (or `--count` looks).

use std::time::Duration;

use clap::Args;

use super::args::{ConnectionArgs, parse_duration, positive_count};
use crate::client::error::http_status;
use crate::client::http::Api;
use crate::exit::{Exit, Failure};
use crate::protocol::{Health, Timestamp};
use crate::report::status::{self as report, StatusReport, StatusSummary};
use crate::report::{Reporter, json};
use crate::stats::{self, OrgStats};

/// Shortest `--watch` interval: a support tool must not hammer a backend.
pub const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(200);
/// `--watch` without a value.
pub const DEFAULT_WATCH_INTERVAL: &str = "2s";

#[derive(Debug, Args)]
#[command(
    after_long_help = "Exit codes: 0 healthy or degraded; 1 unhealthy, or no activity \
recorded for ORG (every count zero, no sync yet, no open socket: check the id); 3 refused \
credentials or no connection; 4 timed out; 5 the backend does not answer as the protocol \
says; 130 Ctrl-C (with --watch, the way to stop unless --count is given). With --watch a \
refresh that fails is shown and the watch goes on; the exit is that of the last look.

Put ORG before --watch: `status org-rio --watch` (a value right after --watch is its INTERVAL).

Examples:
  syncprobe status org-rio --url https://api.example.com --token \"$JWT\"
  syncprobe status org-rio --watch 5s
  syncprobe status org-rio --json"
)]
pub struct StatusArgs {
    /// Organization id, or a full socket URL
    #[arg(value_name = "ORG")]
    pub target: String,
    /// Look again every INTERVAL (default 2s, at least 200ms) until Ctrl-C
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = DEFAULT_WATCH_INTERVAL, value_parser = watch_interval)]
    pub watch: Option<Duration>,
    /// With --watch: stop after N looks
    #[arg(long, value_name = "N", requires = "watch", value_parser = positive_count)]
    pub count: Option<usize>,
    /// Bound of each REST call
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::args::positive_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

fn watch_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_WATCH_INTERVAL {
        return Err(format!(
            "must be at least {} (write durations like 500ms, 5s or 2m)",
            humantime::format_duration(MIN_WATCH_INTERVAL)
        ));
    }
    Ok(d)
}

pub async fn run(args: StatusArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    let endpoint = args.connection.endpoint(&args.target)?;
    let options = args.connection.client_options()?;
    let api = Api::new(&endpoint, &options, args.timeout)?;
    let org = endpoint.org.clone();
    let Some(interval) = args.watch else {
        let look = look(&api, &org).await?;
        let exit = verdict(&look);
        show(reporter, &look);
        let summary = summary_of(&org, 1, 0, Some(&look), exit);
        reporter.summary(json::Summary::Status(&summary), || {
            report::summary(&summary)
        });
        return Ok(exit);
    };
    watch(&api, &org, interval, args.count, reporter).await
}

/// `--watch`: a look every `interval` until Ctrl-C or `count` looks.
async fn watch(
    api: &Api,
    org: &str,
    interval: Duration,
    count: Option<usize>,
    reporter: &Reporter,
) -> anyhow::Result<Exit> {
    let mut interrupt = Box::pin(super::interrupted());
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut looks, mut failed) = (0u64, 0u64);
    let mut last: Option<StatusReport> = None;
    let mut exit = Exit::Success;
    let mut interrupted = false;
    while count.is_none_or(|n| looks < n as u64) {
        let tick = tokio::select! {
            biased;
            _ = &mut interrupt => None,
            _ = ticks.tick() => Some(()),
        };
        let looked = match tick {
            None => None,
            Some(()) => tokio::select! {
                biased;
                _ = &mut interrupt => None,
                looked = look(api, org) => Some(looked),
            },
        };
        let Some(looked) = looked else {
            interrupted = true;
            break;
        };
        looks += 1;
        match looked {
            Ok(report) => {
                exit = verdict(&report);
                show(reporter, &report);
                last = Some(report);
            }
            Err(e) => {
                failed += 1;
                exit = crate::exit::exit_for(&e);
                reporter.warn(&report::refresh_failed(&e));
            }
        }
    }
    let summary = summary_of(org, looks, failed, last.as_ref(), exit);
    reporter.summary(json::Summary::Status(&summary), || {
        report::summary(&summary)
    });
    if interrupted {
        return Err(Failure::Interrupted.into());
    }
    Ok(exit)
}

fn summary_of(
    org: &str,
    refreshes: u64,
    failed: u64,
    last: Option<&StatusReport>,
    exit: Exit,
) -> StatusSummary {
    StatusSummary {
        ok: exit == Exit::Success,
        organization_id: org.to_string(),
        refreshes,
        failed_refreshes: failed,
        health: last.map(|r| r.sync_status.health),
    }
}

/// One look as a `status` record, or as lines (a blank line between looks).
fn show(reporter: &Reporter, look: &StatusReport) {
    if reporter.is_json() {
        reporter.record(&json::Record::Status(look));
    } else {
        reporter.write_out(&format!("{}\n", report::report(look)));
    }
}

/// 0 healthy or degraded; 1 unhealthy or nothing recorded.
fn verdict(look: &StatusReport) -> Exit {
    if !look.activity || look.sync_status.health == Health::Unhealthy {
        Exit::ExpectationFailed
    } else {
        Exit::Success
    }
}

/// Reads sync-status (needed) and stats (optional: any failure is a note).
async fn look(api: &Api, org: &str) -> anyhow::Result<StatusReport> {
    let (status, stats) = tokio::join!(api.sync_status(org), api.stats());
    let status = status?;
    let (connections, total_connections, stats_note) = match stats {
        Ok(stats) => match stats::org_connections(&stats, org) {
            OrgStats::Listed { connections, .. } => {
                (Some(connections), stats::total_connections(&stats), None)
            }
            OrgStats::NotListed { .. } => (Some(0), stats::total_connections(&stats), None),
            OrgStats::Unknown { .. } => (
                None,
                stats::total_connections(&stats),
                Some("/api/ws/stats has no per-organization figures syncprobe knows".into()),
            ),
        },
        Err(e) if http_status(&e) == Some(404) => {
            (None, None, Some("the backend has no /api/ws/stats".into()))
        }
        Err(e) => (
            None,
            None,
            Some(format!("/api/ws/stats could not be read: {e:#}")),
        ),
    };
    let s = &status;
    let counts = s.total_queued + s.processing + s.completed + s.failed;
    let conflicts = s
        .extra
        .get("conflicts")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let activity =
        counts + conflicts > 0 || s.last_sync_at.is_some() || connections.is_some_and(|n| n > 0);
    Ok(StatusReport {
        organization_id: org.to_string(),
        at: Timestamp::now().to_string(),
        backlog: s.total_queued + s.processing,
        sync_status: status,
        connections,
        total_connections,
        stats_note,
        activity,
    })
}
