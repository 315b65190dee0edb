//! `syncprobe replay`: a recorded session served as a sync socket server, so a
//! frontend can be tested against a captured stream without the backend.
//!
//! Server side: it takes an already-bound listener as [`super::serve`] does, runs on
//! the same HTTP layer (`http.rs`: limits, graceful shutdown) and the socket
//! helpers of `ws.rs`, but not the engine (no bus, queue or history): every socket
//! plays its organization's recorded frames on a timeline of its own (`session.rs`).
//! `recording.rs` reads the file.
//!
//! Each session gets a fresh CONNECTED (`seq` where it starts, this run's `epoch`),
//! then the frames with their recorded spacing scaled by [`Speed`], numbered 1, 2, …
//! so that `?since=N&epoch=E` resumes after the N-th; with looping the numbering goes
//! on through every pass. Only the recorded organizations are served (others: 404).

mod recording;
mod session;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::recording::{
    Format, Frame, MAX_HAR_BYTES, MAX_RECORDING_BYTES, Recording, Stream, load,
};
use super::error::api_error;
use crate::exit::Failure;
use crate::protocol::CLOSE_MISSING_ORG;

/// How long shutdown waits for sockets and HTTP connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Largest message a replay client may send (clients only answer pings).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// How fast the recording plays.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// No waits: every frame as fast as the client reads.
    Max,
    /// The recorded spacing divided by this factor (2: twice as fast).
    Times(f64),
}

impl Speed {
    /// `--speed`: a positive factor (`1`, `0.5`, `4`), or `0`/`max` for no waits.
    pub fn parse(text: &str) -> Result<Speed, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let factor: f64 = text.parse().map_err(|_| {
            format!("{text:?} is not a speed: give a factor such as 2 or 0.5, or max")
        })?;
        if !factor.is_finite() || factor < 0.0 {
            return Err(format!(
                "{text:?} is not a speed: give a positive factor such as 2 or 0.5, or 0/max for no waits"
            ));
        }
        Ok(if factor == 0.0 {
            Speed::Max
        } else {
            Speed::Times(factor)
        })
    }

    /// A recorded span as played.
    pub fn scale(self, recorded: Duration) -> Duration {
        match self {
            Speed::Max => Duration::ZERO,
            Speed::Times(factor) => recorded.div_f64(factor),
        }
    }
}

/// The Enter presses of `--step`, as the command reads them from stdin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Presses {
    /// Presses so far.
    pub count: u64,
    /// Stdin ended: stepping stops, the rest plays at its speed.
    pub ended: bool,
}

/// How the recording is played.
#[derive(Clone, Debug)]
pub struct Options {
    pub speed: Speed,
    /// Start over at the end.
    pub looping: bool,
    /// `--step`: each frame waits for a press.
    pub steps: Option<watch::Receiver<Presses>>,
    /// Server pings; a client silent for a whole interval after one is dropped (0 = off).
    pub ping_interval: Duration,
}

/// What happens to the sessions, for the command to tell.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    Opened {
        session: u64,
        org: String,
        /// The `since` asked for, when it was honoured.
        since: Option<u64>,
        /// A `since`/`epoch` this run never gave out: started from the beginning.
        truncated: bool,
    },
    /// `--step`: the session's next frame waits for Enter.
    Waiting {
        session: u64,
        /// The frame's place in the recording (1-based) and the recording's length.
        frame: usize,
        of: usize,
        /// The frame's `type` and `pfaId`, as recorded (peer text).
        label: String,
    },
    /// The end of the recording (not looping): the socket stays open.
    Ended { session: u64, sent: u64 },
    Closed {
        session: u64,
        sent: u64,
        why: &'static str,
    },
}

/// Sessions and frames served, read by the command for its summary.
#[derive(Debug, Default)]
pub struct Totals {
    pub sessions: AtomicU64,
    pub frames: AtomicU64,
}

/// One organization's path: the stream it plays and the organization its frames
/// name when `--org` served it under another.
#[derive(Debug)]
pub(crate) struct Served {
    stream: Stream,
    /// Indices of the frames that get a `seq`, in order.
    numbered: Vec<usize>,
    /// `organizationId` values equal to this become the served organization.
    rewrite_from: Option<String>,
}

/// What a replay serves: organization → its stream.
#[derive(Debug)]
pub struct Plan {
    paths: HashMap<String, Arc<Served>>,
    /// The organizations, in the recording's order.
    pub organizations: Vec<String>,
}

/// What one served organization plays, for the command to tell.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    /// The organization it is served as.
    pub org: String,
    /// The organization the recording names, when `--org` serves it as another.
    pub recorded_as: Option<String>,
    pub frames: usize,
    /// Frames that get a `seq`.
    pub events: usize,
    /// From the recorded start to the last frame.
    pub duration: Duration,
}

impl Plan {
    /// Each served organization's stream, in the recording's order.
    pub fn facts(&self) -> Vec<Facts> {
        self.organizations
            .iter()
            .map(|org| {
                let served = &self.paths[org];
                Facts {
                    org: org.clone(),
                    recorded_as: served.rewrite_from.clone().filter(|from| from != org),
                    frames: served.stream.frames.len(),
                    events: served.numbered.len(),
                    duration: served.stream.duration(),
                }
            })
            .collect()
    }
}

/// The paths a recording is served on: each recorded organization on its own, or
/// its one stream under `org` (frames naming the recorded organization rewritten).
pub fn plan(recording: Recording, org: Option<&str>) -> Result<Plan, Failure> {
    let mut streams = recording.streams;
    let served: Vec<(String, Stream, Option<String>)> = match org {
        Some(org) => {
            if org.is_empty() || org.contains('/') || org.chars().any(char::is_control) {
                return Err(Failure::Usage(format!(
                    "--org {}: an organization id is a non-empty path segment (no /, no control characters)",
                    crate::text::shown(org, crate::text::MAX_SHOWN)
                )));
            }
            if streams.len() > 1 {
                let names: Vec<String> = streams.iter().filter_map(|s| s.org.clone()).collect();
                return Err(Failure::Usage(format!(
                    "--org serves one stream, and the recording holds {} ({}): remove --org to serve each under its own",
                    names.len(),
                    crate::text::shown(&names.join(", "), crate::text::MAX_SHOWN)
                )));
            }
            let stream = streams.remove(0);
            let from = stream.org.clone();
            vec![(org.to_string(), stream, from)]
        }
        None => {
            let mut served = Vec::new();
            for stream in streams {
                let Some(org) = stream.org.clone() else {
                    return Err(Failure::Usage(
                        "the recording names no organization (no CONNECTED, no organizationId): give --org ORG".into(),
                    ));
                };
                served.push((org, stream, None));
            }
            served
        }
    };
    let organizations = served.iter().map(|(o, _, _)| o.clone()).collect();
    let paths = served
        .into_iter()
        .map(|(org, stream, rewrite_from)| {
            let numbered = (0..stream.frames.len())
                .filter(|&i| stream.frames[i].event)
                .collect();
            let served = Served {
                stream,
                numbered,
                rewrite_from,
            };
            (org, Arc::new(served))
        })
        .collect();
    Ok(Plan {
        paths,
        organizations,
    })
}

/// What the handlers share.
struct Replay {
    paths: HashMap<String, Arc<Served>>,
    options: Options,
    /// This run's epoch: a resume from another run starts over.
    epoch: String,
    notices: mpsc::UnboundedSender<Notice>,
    totals: Arc<Totals>,
    next_session: AtomicU64,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// Serves `plan` on `listener` until `shutdown` completes, then closes every socket
/// with 1001 and returns (within [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    plan: Plan,
    options: Options,
    notices: mpsc::UnboundedSender<Notice>,
    totals: Arc<Totals>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let replay = Arc::new(Replay {
        paths: plan.paths,
        options,
        epoch: format!("replay-{:012x}", rand::random::<u64>() >> 16),
        notices,
        totals,
        next_session: AtomicU64::new(0),
        shutdown: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    let router = Router::new()
        .route("/api/ws/sync", get(missing_org))
        .route("/api/ws/sync/", get(missing_org))
        .route("/api/ws/sync/{org}", get(sync))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(not_found)
        .with_state(replay.clone());
    let token = replay.shutdown.clone();
    tokio::spawn(async move {
        shutdown.await;
        token.cancel();
    });
    let limits = super::http::HttpLimits::default();
    let http = super::http::serve(
        listener,
        router,
        limits,
        replay.shutdown.clone(),
        SHUTDOWN_GRACE,
    );
    let sockets = async {
        replay.shutdown.cancelled().await;
        replay.tasks.close();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, replay.tasks.wait()).await;
    };
    tokio::join!(http, sockets);
    Ok(())
}

async fn not_found() -> Response {
    api_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint", None)
}

/// `/api/ws/sync` without an organization: closed with 4000, as Part 1 does.
async fn missing_org(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: HeaderMap,
) -> Response {
    match super::ws::upgrade(ws, &headers) {
        Ok(ws) => ws.on_upgrade(|mut socket| async move {
            super::ws::close(&mut socket, CLOSE_MISSING_ORG, "Missing organizationId").await;
        }),
        Err(refusal) => *refusal,
    }
}

/// `/api/ws/sync/{org}[?since=N&epoch=E]`: a recorded organization's stream.
async fn sync(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    Path(org): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    State(replay): State<Arc<Replay>>,
) -> Response {
    let ws = match super::ws::upgrade(ws, &headers) {
        Ok(ws) => ws,
        Err(refusal) => return *refusal,
    };
    let Some(served) = replay.paths.get(&org).cloned() else {
        let mut served: Vec<&str> = replay.paths.keys().map(String::as_str).collect();
        served.sort_unstable();
        let message = format!(
            "this replay serves only the recorded organization{} {}",
            if served.len() == 1 { "" } else { "s" },
            served.join(", ")
        );
        return api_error(StatusCode::NOT_FOUND, "NOT_FOUND", &message, None);
    };
    let resume = match super::ws::parse_resume(query.as_deref().unwrap_or("")) {
        Ok(resume) => resume,
        Err(message) => {
            return api_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &message, None);
        }
    };
    let id = replay.next_session.fetch_add(1, Ordering::Relaxed) + 1;
    replay.totals.sessions.fetch_add(1, Ordering::Relaxed);
    let tasks = replay.tasks.clone();
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| {
            tasks.track_future(session::run(socket, replay, served, org, resume, id))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds() {
        assert_eq!(Speed::parse("max"), Ok(Speed::Max));
        assert_eq!(Speed::parse("0"), Ok(Speed::Max));
        assert_eq!(Speed::parse("2"), Ok(Speed::Times(2.0)));
        assert_eq!(Speed::parse("0.5"), Ok(Speed::Times(0.5)));
        for bad in ["-1", "NaN", "inf", "fast", ""] {
            assert!(Speed::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Speed::Times(4.0).scale(Duration::from_millis(400)),
            Duration::from_millis(100)
        );
        assert_eq!(Speed::Max.scale(Duration::from_secs(9)), Duration::ZERO);
    }

    fn stream(org: Option<&str>) -> Stream {
        Stream {
            org: org.map(String::from),
            frames: vec![],
        }
    }

    #[test]
    fn plans_serve_the_recorded_organizations_or_one_under_org() {
        let two = Recording {
            format: Format::Har,
            streams: vec![stream(Some("a")), stream(Some("b"))],
        };
        let plan = plan(two.clone(), None).unwrap();
        assert_eq!(plan.organizations, ["a", "b"]);
        let err = super::plan(two, Some("c")).unwrap_err();
        assert!(err.to_string().contains("holds 2 (a, b)"), "{err}");
        let unnamed = Recording {
            format: Format::WatchSync,
            streams: vec![stream(None)],
        };
        assert!(super::plan(unnamed.clone(), None).is_err());
        let plan = super::plan(unnamed, Some("c")).unwrap();
        assert_eq!(plan.organizations, ["c"]);
    }
}
