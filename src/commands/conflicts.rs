//! `conflicts ORG`: list an organization's sync conflicts (`GET /api/pems/conflicts`),
//! or resolve one (`--resolve ID --resolution use_local|use_pems|merge`) and, with
//! `--wait`, follow the item it queues again to its end over the sync socket.
//!
//! Before resolving, the conflict is looked up in the organization's list: the
//! list names its pfaId (what `--wait` follows), and an id that is not there is a
//! mistake told before anything is changed.

use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::Value;
use tokio::time::Instant;

use super::args::{ConnectionArgs, positive_duration};
use crate::client::http::Api;
use crate::client::session::Started;
use crate::client::{ClientOptions, Endpoint, ws};
use crate::exit::{Exit, Failure};
use crate::follow::{self, FollowEnd};
use crate::protocol::{Conflict, EventType, Resolution, ResolveRequest};
use crate::report::conflicts::{self as report, ConflictsSummary, ResolveSummary};
use crate::report::{Reporter, json};
use crate::text::{MAX_COLUMN, shown};

#[derive(Debug, Args)]
#[command(
    after_long_help = "Exit codes: 0 listed, or resolved (with --wait: the item queued \
again succeeded); 1 with --wait, the item ended otherwise; 4 --timeout ran out; 6 the id is \
not among the organization's conflicts, or the backend refused the resolution (409: already \
resolved; 400: bad mergedData); 3 refused credentials; 5 the backend does not answer as the \
protocol says.

Examples:
  syncprobe conflicts org-rio --status unresolved
  syncprobe conflicts org-rio --resolve conflict_1732788000000_k3j9x0a1b --resolution use_local --wait
  syncprobe conflicts org-rio --resolve ID --resolution merge --merged-data '{\"quantity\":11}'"
)]
pub struct ConflictsArgs {
    /// Organization id, or a full socket URL
    #[arg(value_name = "ORG")]
    pub target: String,
    /// List only the conflicts of this status
    #[arg(long, value_name = "STATUS", value_parser = ["unresolved", "resolved"], conflicts_with = "resolve")]
    pub status: Option<String>,
    /// Resolve the conflict with this id (see the list)
    #[arg(long, value_name = "ID", requires = "resolution")]
    pub resolve: Option<String>,
    /// How to resolve it: keep the local change (queued again), keep upstream's (marked
    /// synced), or write --merged-data (queued again)
    #[arg(long, value_name = "RESOLUTION", requires = "resolve")]
    pub resolution: Option<ResolutionArg>,
    /// The merged record for --resolution merge: a JSON object
    #[arg(long, value_name = "JSON", value_parser = json_object, requires = "resolve")]
    pub merged_data: Option<Value>,
    /// Follow the item queued again over the sync socket until its terminal event
    #[arg(long, requires = "resolve")]
    pub wait: bool,
    /// Bound of each REST call, and of --wait from the resolution to the end
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = positive_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `--resolution`, spelt as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResolutionArg {
    #[value(name = "use_local")]
    UseLocal,
    #[value(name = "use_pems")]
    UsePems,
    #[value(name = "merge")]
    Merge,
}

impl ResolutionArg {
    fn resolution(self) -> Resolution {
        match self {
            ResolutionArg::UseLocal => Resolution::UseLocal,
            ResolutionArg::UsePems => Resolution::UsePems,
            ResolutionArg::Merge => Resolution::Merge,
        }
    }
}

/// `--merged-data`: JSON, and an object.
fn json_object(s: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(s) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("must be a JSON object, like '{\"quantity\":11}'".into()),
        Err(e) => Err(format!("is not JSON: {e}")),
    }
}

pub async fn run(args: ConflictsArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    let endpoint = args.connection.endpoint(&args.target)?;
    let options = args.connection.client_options()?;
    let api = Api::new(&endpoint, &options, args.timeout)?;
    match (&args.resolve, args.resolution) {
        (Some(id), Some(resolution)) => {
            let request = resolve_request(resolution.resolution(), args.merged_data.clone())?;
            let run = Resolve {
                args: &args,
                reporter,
                endpoint: &endpoint,
                options: &options,
                api: &api,
            };
            run.run(id, request).await
        }
        _ => list(&api, &endpoint.org, args.status.as_deref(), reporter).await,
    }
}

/// The body of the resolution; `--merged-data` goes with `merge` and only with it.
fn resolve_request(
    resolution: Resolution,
    merged: Option<Value>,
) -> anyhow::Result<ResolveRequest> {
    match (resolution, &merged) {
        (Resolution::Merge, None) => Err(Failure::Usage(
            "--resolution merge needs --merged-data JSON (the merged record)".into(),
        )
        .into()),
        (Resolution::UseLocal | Resolution::UsePems, Some(_)) => Err(Failure::Usage(format!(
            "--merged-data goes with --resolution merge, not {}",
            resolution.as_str()
        ))
        .into()),
        _ => Ok(ResolveRequest {
            resolution,
            merged_data: merged,
        }),
    }
}

/// The list: a `conflict` record each and a summary, or a table.
async fn list(
    api: &Api,
    org: &str,
    status: Option<&str>,
    reporter: &Reporter,
) -> anyhow::Result<Exit> {
    let listed = api.conflicts(org, status).await?;
    let unresolved = listed
        .conflicts
        .iter()
        .filter(|c| c.status == "unresolved")
        .count() as u64;
    let summary = ConflictsSummary {
        ok: true,
        organization_id: org.to_string(),
        status: status.map(String::from),
        total: listed.total,
        unresolved,
    };
    if reporter.is_json() {
        for conflict in &listed.conflicts {
            reporter.record(&json::Record::Conflict(conflict));
        }
    }
    reporter.summary(json::Summary::Conflicts(&summary), || {
        report::table(org, status, &listed.conflicts)
    });
    Ok(Exit::Success)
}

/// One resolution and what it needs.
struct Resolve<'a> {
    args: &'a ConflictsArgs,
    reporter: &'a Reporter,
    endpoint: &'a Endpoint,
    options: &'a ClientOptions,
    api: &'a Api,
}

impl Resolve<'_> {
    async fn run(&self, id: &str, request: ResolveRequest) -> anyhow::Result<Exit> {
        let org = &self.endpoint.org;
        let conflict = self.find(id).await?;
        let mut summary = ResolveSummary {
            ok: false,
            organization_id: org.clone(),
            conflict_id: id.to_string(),
            pfa_id: conflict.pfa_id.clone(),
            resolution: request.resolution.as_str().into(),
            resolved: false,
            resolved_at: None,
            applied_changes: Value::Null,
            requeued: request.resolution.requeues(),
            item: None,
        };
        if !(self.args.wait && request.resolution.requeues()) {
            if self.args.wait {
                self.reporter
                    .note("use_pems queues nothing: there is nothing to wait for");
            }
            let answer = self.api.resolve(id, &request).await?;
            summary.resolved = true;
            summary.ok = answer.success;
            summary.resolved_at = answer.resolved_at;
            summary.applied_changes = answer.applied_changes;
            self.reporter.summary(json::Summary::Resolve(&summary), || {
                report::resolved(&summary)
            });
            return Ok(Exit::Success);
        }
        self.wait(&conflict, &request, summary).await
    }

    /// The conflict `id` among the organization's, or a bad-input error.
    async fn find(&self, id: &str) -> anyhow::Result<Conflict> {
        let org = &self.endpoint.org;
        let listed = self.api.conflicts(org, None).await?;
        let total = listed.conflicts.len() as u64;
        listed
            .conflicts
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| {
                Failure::Runtime(format!(
                    "no conflict {} among the {} of {org} (list them with `syncprobe conflicts {org}`)",
                    shown(id, MAX_COLUMN),
                    crate::text::count(total, "conflict")
                ))
                .into()
            })
    }

    /// `--wait`: the socket first (so no event is missed), then the resolution and
    /// the item queued again, to its end.
    async fn wait(
        &self,
        conflict: &Conflict,
        request: &ResolveRequest,
        mut summary: ResolveSummary,
    ) -> anyhow::Result<Exit> {
        let (reporter, org) = (self.reporter, &self.endpoint.org);
        let mut interrupt = Box::pin(super::interrupted());
        let deadline = Instant::now() + self.args.timeout;
        let on_open = |opened: &ws::Opened| reporter.open(&json::Open::of(opened, org, 0));
        let started = follow::open(
            self.endpoint,
            self.options,
            deadline,
            on_open,
            &mut interrupt,
        );
        let mut session = match started.await? {
            Started::Ready(session) => *session,
            Started::Interrupted(closed) => {
                if let Some(closed) = &closed {
                    reporter.close(closed);
                }
                return Err(Failure::Interrupted.into());
            }
        };
        let mut shown_answer = false;
        let on = |seen: follow::Seen<'_>| {
            if !std::mem::replace(&mut shown_answer, true) {
                reporter.say(&format!(
                    "Resolving {} ({}) with {}; following it",
                    shown(&conflict.id, MAX_COLUMN),
                    shown(&conflict.pfa_id, MAX_COLUMN),
                    request.resolution.as_str()
                ));
            }
            crate::report::enqueue::shown_events(reporter, seen);
        };
        let (answer, followed) = follow::follow_resolution(
            &mut session,
            self.api,
            org,
            &conflict.id,
            &conflict.pfa_id,
            request,
            None,
            deadline,
            &mut interrupt,
            on,
        )
        .await;
        if !matches!(followed.end, FollowEnd::Stream(_)) {
            reporter.close(&session.close(1000, "normal").await);
        }
        if let Some(answer) = answer {
            summary.resolved = true;
            summary.resolved_at = answer.resolved_at;
            summary.applied_changes = answer.applied_changes;
        }
        summary.item = followed.items.into_iter().next();
        let verdict = self.verdict(followed.end, &summary);
        summary.ok = verdict.is_ok();
        if summary.resolved || reporter.is_json() {
            reporter.summary(json::Summary::Resolve(&summary), || {
                format!(
                    "{}{}",
                    report::resolved(&summary),
                    report::summary(&summary)
                )
            });
        }
        verdict
    }

    /// The exit of a `--wait`: the item queued again succeeded (0), ended otherwise
    /// (1), did not end in time (4); a failed POST or stream is its own error.
    fn verdict(&self, end: FollowEnd, summary: &ResolveSummary) -> anyhow::Result<Exit> {
        let pfa = shown(&summary.pfa_id, MAX_COLUMN);
        match end {
            FollowEnd::Done => match summary.item.as_ref().and_then(|i| i.outcome.clone()) {
                Some(EventType::Success) => Ok(Exit::Success),
                other => Err(Failure::Expectation(format!(
                    "the item queued again ({pfa}) ended {} instead of SYNC_SUCCESS",
                    other.as_ref().map_or("-", EventType::as_str)
                ))
                .into()),
            },
            FollowEnd::Timeout => Err(Failure::Timeout(format!(
                "the item queued again ({pfa}) did not end within --timeout ({})",
                humantime::format_duration(self.args.timeout)
            ))
            .into()),
            FollowEnd::Interrupted => Err(Failure::Interrupted.into()),
            FollowEnd::Post(e) | FollowEnd::Stream(e) => Err(e),
        }
    }
}
