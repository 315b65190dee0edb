//! The load engine behind `syncprobe load`: many sync sockets, an event source, and
//! the measurements (HDR histograms of connect time, time to CONNECTED and fan-out
//! latency; completeness per subscriber; errors by kind). A run goes through named
//! phases: connect, event source, drain, stop, final `seq` probe, summary.
//! The subscribers themselves (and the cheap per-frame path) are in [`subscriber`].

pub mod error;
mod subscriber;
pub mod threshold;
pub mod timeline;
pub(crate) mod wire;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use futures_util::future::Fuse;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval};
use tokio_util::sync::CancellationToken;

pub use self::error::{ErrorKind, classify};
pub use self::subscriber::FLUSH_EVERY;
use self::subscriber::{ConnResult, Shard, ShardThread, Subscription};
pub use self::timeline::Timeline;
use crate::client::http::Api;
use crate::client::session::{Session, Started};
use crate::client::ws::Opened;
use crate::client::{ClientOptions, Endpoint};
use crate::exit::Failure;
use crate::protocol::{PublishRequest, WriteSyncRequest};

/// Highest latency recorded, in µs (longer ones are clamped).
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Tries, and the pause between them, of the final `seq` probe.
const PROBE_ATTEMPTS: u32 = 20;
const PROBE_RETRY: Duration = Duration::from_millis(100);
/// How often the progress callback runs.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How often the drain looks at the delivered count (frames are flushed in batches).
const DRAIN_LOOK: Duration = Duration::from_millis(20);

/// Where the events come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// `POST /api/ws/publish`: `events` per organization at `rate` per second (0 = burst).
    Publish { events: u64, rate: f64 },
    /// `POST /api/pems/write-sync`: `items` per organization, three events each.
    Queue { items: u64 },
    /// Someone else produces the events.
    Passive,
}

/// Events a source produces, in all and for each subscriber.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Produced {
    published: Option<u64>,
    per_subscriber: Option<u64>,
}

impl Source {
    /// What the source produces over `orgs` organizations (`None`: not known).
    fn produced(&self, orgs: u64) -> Produced {
        let per_org = match *self {
            Source::Publish { events, .. } => events,
            Source::Queue { items } => items * 3,
            Source::Passive => return Produced::default(),
        };
        Produced {
            published: Some(per_org * orgs),
            per_subscriber: Some(per_org),
        }
    }

    /// Paced publishing goes on after the server answered: how long for.
    fn pacing(&self) -> Duration {
        match *self {
            Source::Publish { events, rate } if rate > 0.0 => {
                Duration::from_secs_f64(events as f64 / rate)
            }
            _ => Duration::ZERO,
        }
    }
}

/// One base URL of a run and its organizations' endpoints there.
#[derive(Clone, Debug)]
pub struct Target {
    /// The base URL as shown (secrets masked).
    pub url: String,
    /// Per organization, in the same order for every target.
    pub endpoints: Vec<Endpoint>,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// At least one; connections are spread over them round-robin, the events are
    /// produced (and the final `seq` probed) through the first.
    pub targets: Vec<Target>,
    pub connections: usize,
    /// Connections opened per second; 0 opens them as fast as `max_pending` allows.
    pub ramp_rate: f64,
    /// Handshakes in flight at once.
    pub max_pending: usize,
    /// How long to keep the connections open after they are all up (at least).
    pub hold: Duration,
    pub source: Source,
    /// How long to wait for the last events after the source is done.
    pub drain_timeout: Duration,
    pub connected_timeout: Duration,
}

impl Plan {
    /// The organizations' endpoints at the first URL.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.targets[0].endpoints
    }

    /// Which (URL, organization) connection `i` goes to: organizations in turn, and
    /// each organization's subscribers over the URLs in turn, so that every
    /// organization is watched through every URL.
    fn slot(&self, i: usize) -> (usize, usize) {
        let orgs = self.endpoints().len().max(1);
        ((i / orgs) % self.targets.len().max(1), i % orgs)
    }
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Why a run's completeness was not measured.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Unmeasured {
    /// No connection opened.
    NoSubscriber,
    /// A subscriber's CONNECTED carried no `seq`: the server does not number events
    /// (PROTOCOL.md Part 1), so there is nothing to count against.
    NoSeq,
    /// The server numbers events, but the organizations' final `seq` could not be
    /// read once the subscribers were gone: what the last events were is unknown,
    /// so a loss cannot be ruled out.
    FinalSeqUnknown,
    /// Ctrl-C: the final `seq` was not asked for.
    Interrupted,
}

impl Unmeasured {
    /// The summary's words for it.
    pub fn text(self) -> &'static str {
        match self {
            Unmeasured::NoSubscriber => "not measured: no connection opened",
            Unmeasured::NoSeq => "not measurable: the server sends no seq",
            Unmeasured::FinalSeqUnknown => {
                "not measured: the organizations' final seq could not be read (the closing probe got no CONNECTED with a seq)"
            }
            Unmeasured::Interrupted => "not measured: interrupted before the final seq was read",
        }
    }

    /// Whether a loss may hide behind it: then the run does not pass unless loss is
    /// allowed.
    pub fn may_hide_loss(self) -> bool {
        self == Unmeasured::FinalSeqUnknown
    }
}

/// Completeness: every subscriber received every event of its organization once, in order.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Completeness {
    /// Deliveries expected (each subscriber × the events of its organization).
    pub expected: u64,
    /// Distinct events received.
    pub received: u64,
    pub missing: u64,
    pub duplicated: u64,
    /// Events that arrived after a later one.
    pub reordered: u64,
    pub subscribers: u64,
    pub complete_subscribers: u64,
}

impl Completeness {
    /// Nothing missing, duplicated or out of order.
    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.duplicated == 0 && self.reordered == 0
    }
}

/// Which server stamp the latencies were measured from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LatencySource {
    /// `publishedAtUs`, µs precision.
    #[serde(rename = "publishedAtUs")]
    PublishedAtUs,
    /// `timestamp`, 1 ms resolution.
    #[serde(rename = "timestamp (1 ms resolution)")]
    Timestamp,
    /// Some frames had `publishedAtUs`, others only `timestamp`.
    #[serde(rename = "publishedAtUs where present, else timestamp (1 ms resolution)")]
    Mixed,
}

impl LatencySource {
    /// From the counts of frames measured from each stamp.
    fn of(precise: u64, coarse: u64) -> Option<LatencySource> {
        match (precise, coarse) {
            (0, 0) => None,
            (_, 0) => Some(LatencySource::PublishedAtUs),
            (0, _) => Some(LatencySource::Timestamp),
            _ => Some(LatencySource::Mixed),
        }
    }

    /// As written in the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            LatencySource::PublishedAtUs => "publishedAtUs",
            LatencySource::Timestamp => "timestamp (1 ms resolution)",
            LatencySource::Mixed => "publishedAtUs where present, else timestamp (1 ms resolution)",
        }
    }
}

/// Everything a run measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LoadSummary {
    pub connections_requested: u64,
    pub connections_opened: u64,
    pub connections_failed: u64,
    pub organizations: u64,
    /// From the first DNS query to the completed upgrade.
    pub connect_ms: Percentiles,
    /// From the first DNS query to CONNECTED.
    pub connected_ms: Percentiles,
    /// Connections opened per second during the connect phase.
    pub connect_rate: f64,
    /// Receive time minus publish time, per delivered frame.
    pub latency_ms: Percentiles,
    /// The stamp latencies were measured from (`None`: no frame carried one).
    pub latency_source: Option<LatencySource>,
    pub events_published: Option<u64>,
    pub frames_delivered: u64,
    /// Frames delivered per second, from the first publish to the last delivery.
    pub delivered_per_sec: f64,
    /// `None` when it could not be measured; [`LoadSummary::unmeasured`] says why.
    pub completeness: Option<Completeness>,
    /// Why completeness was not measured (with `completeness` `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmeasured: Option<Unmeasured>,
    /// Errors by kind: `upgrade refused: HTTP 503`, `timeout`, `closed with 4429`, …
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Client CPU time (user + system) per delivered frame, in µs.
    pub client_cpu_us_per_frame: Option<f64>,
    pub duration_ms: f64,
    /// When the run started (RFC 3339, UTC).
    #[serde(default)]
    pub started_at: String,
    /// How long each phase took.
    #[serde(default)]
    pub phases_ms: Phases,
    /// The figures of each base URL (one entry without several `--url`).
    #[serde(default)]
    pub urls: Vec<UrlSummary>,
}

impl LoadSummary {
    /// The completeness, or why it was not measured. A summary written before
    /// `unmeasured` existed gives no reason: then it is the one reason there was, a
    /// server without `seq`.
    pub fn measured(&self) -> Result<&Completeness, Unmeasured> {
        self.completeness
            .as_ref()
            .ok_or(self.unmeasured.unwrap_or(Unmeasured::NoSeq))
    }

    /// Completeness was not measured in a way that may hide a loss.
    pub fn loss_not_ruled_out(&self) -> bool {
        self.measured().is_err_and(Unmeasured::may_hide_loss)
    }
}

/// Durations of the phases of a run, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Phases {
    /// From the first attempt to the last connection that settled.
    pub connect: f64,
    /// The event source's requests (and, when paced, its pacing).
    pub events: f64,
    /// Waiting for the last deliveries (and `--duration`).
    pub drain: f64,
}

/// What the connections to one base URL measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UrlSummary {
    pub url: String,
    pub connections_opened: u64,
    pub connections_failed: u64,
    pub frames_delivered: u64,
    pub connect_ms: Percentiles,
    pub latency_ms: Percentiles,
}

/// Figures while running, for the progress display.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub elapsed_ms: f64,
    pub open: u64,
    pub requested: u64,
    pub delivered: u64,
    pub p99_ms: f64,
    pub errors: u64,
}

/// What the connections to one base URL share.
struct UrlStats {
    open: AtomicU64,
    failed: AtomicU64,
    delivered: AtomicU64,
    connect: Mutex<Histogram<u64>>,
    latency: Mutex<Histogram<u64>>,
}

impl UrlStats {
    fn new() -> UrlStats {
        UrlStats {
            open: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            connect: Mutex::new(histogram()),
            latency: Mutex::new(histogram()),
        }
    }
}

/// What the report draws besides the summary: the histograms of fan-out latency
/// and connect time (µs) and the run over time.
#[derive(Clone, Debug)]
pub struct Detail {
    pub latency: Histogram<u64>,
    pub connect: Histogram<u64>,
    pub timeline: Timeline,
}

/// State shared by every connection task.
pub struct Shared {
    started: Instant,
    /// `started` as µs since the Unix epoch (frames are stamped on the wall clock).
    started_us: u64,
    requested: u64,
    /// Connections open now.
    open: AtomicU64,
    /// Connections that reached CONNECTED, open or not any more.
    ever: AtomicU64,
    failed: AtomicU64,
    delivered: AtomicU64,
    errors: Mutex<BTreeMap<ErrorKind, u64>>,
    connect: Mutex<Histogram<u64>>,
    connected: Mutex<Histogram<u64>>,
    latency: Mutex<Histogram<u64>>,
    /// Per base URL.
    urls: Vec<UrlStats>,
    /// The run over time, bounded (for the report's charts).
    timeline: Mutex<Timeline>,
    precise: AtomicU64,
    coarse: AtomicU64,
    /// When the last subscriber reached CONNECTED or failed to.
    last_settled: Mutex<Option<Instant>>,
    /// Fired when every connection has settled (the connect phase ends then, not at
    /// its next tick).
    all_settled: tokio::sync::Notify,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

fn record(histogram: &Mutex<Histogram<u64>>, time: Duration) {
    let us = time.as_micros() as u64;
    histogram
        .lock()
        .expect("histogram lock")
        .saturating_record(us.max(1));
}

impl Shared {
    fn new(requested: u64, urls: usize) -> Shared {
        Shared {
            started: Instant::now(),
            started_us: unix_us(SystemTime::now()),
            requested,
            open: AtomicU64::new(0),
            ever: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            connect: Mutex::new(histogram()),
            connected: Mutex::new(histogram()),
            latency: Mutex::new(histogram()),
            urls: (0..urls.max(1)).map(|_| UrlStats::new()).collect(),
            timeline: Mutex::new(Timeline::new(urls)),
            precise: AtomicU64::new(0),
            coarse: AtomicU64::new(0),
            last_settled: Mutex::new(None),
            all_settled: tokio::sync::Notify::new(),
        }
    }

    /// One more connection is up or has failed.
    fn settle(&self) {
        *self.last_settled.lock().expect("settled lock") = Some(Instant::now());
        if self.all_settled() {
            self.all_settled.notify_one();
        }
    }

    /// Runs `f` on the timeline, at the time since the start of the run.
    fn timeline(&self, f: impl FnOnce(&mut Timeline, Duration)) {
        let at = self.started.elapsed();
        f(&mut self.timeline.lock().expect("timeline lock"), at);
    }

    fn error(&self, kind: ErrorKind) {
        self.timeline(|t, at| t.error(at, kind));
        *self
            .errors
            .lock()
            .expect("errors lock")
            .entry(kind)
            .or_default() += 1;
    }

    /// A subscriber of `url` reached CONNECTED.
    fn opened(&self, session: &Session, url: usize) {
        record(&self.connect, session.open_time);
        record(&self.connected, session.connected_time);
        record(&self.urls[url].connect, session.open_time);
        self.open.fetch_add(1, Ordering::Relaxed);
        self.ever.fetch_add(1, Ordering::Relaxed);
        let open = self.urls[url].open.fetch_add(1, Ordering::Relaxed) + 1;
        self.timeline(|t, at| t.open(at, url, open));
        self.settle();
    }

    /// A subscriber of `url` closed.
    fn closed(&self, url: usize) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        let open = self.urls[url].open.fetch_sub(1, Ordering::Relaxed) - 1;
        self.timeline(|t, at| t.open(at, url, open));
    }

    /// A subscriber of `url` never reached CONNECTED.
    fn failed(&self, kind: ErrorKind, url: usize) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.urls[url].failed.fetch_add(1, Ordering::Relaxed);
        self.timeline(|t, at| t.failure(at, url));
        self.error(kind);
        self.settle();
    }

    /// Every connection is up or has failed.
    fn all_settled(&self) -> bool {
        self.ever.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed) >= self.requested
    }

    pub fn progress(&self) -> Progress {
        let p99 = self
            .latency
            .lock()
            .expect("latency lock")
            .value_at_quantile(0.99) as f64
            / 1000.0;
        Progress {
            elapsed_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            open: self.open.load(Ordering::Relaxed),
            requested: self.requested,
            delivered: self.delivered.load(Ordering::Relaxed),
            p99_ms: p99,
            errors: self.failed.load(Ordering::Relaxed)
                + self
                    .errors
                    .lock()
                    .map(|e| e.values().sum::<u64>())
                    .unwrap_or(0),
        }
    }

    /// The histograms and the run over time, for the HTML report.
    pub fn detail(&self) -> Detail {
        Detail {
            latency: self.latency.lock().expect("latency lock").clone(),
            connect: self.connect.lock().expect("connect lock").clone(),
            timeline: self.timeline.lock().expect("timeline lock").clone(),
        }
    }

    /// The figures of each base URL.
    fn url_summaries(&self, plan: &Plan) -> Vec<UrlSummary> {
        plan.targets
            .iter()
            .zip(&self.urls)
            .map(|(target, stats)| {
                let connect_ms = Percentiles::of(&stats.connect.lock().expect("connect lock"));
                UrlSummary {
                    url: target.url.clone(),
                    connections_opened: connect_ms.count,
                    connections_failed: stats.failed.load(Ordering::Relaxed),
                    frames_delivered: stats.delivered.load(Ordering::Relaxed),
                    connect_ms,
                    latency_ms: Percentiles::of(&stats.latency.lock().expect("latency lock")),
                }
            })
            .collect()
    }
}

/// How many shards read `connections` sockets: one per core (a shard is one
/// thread), fewer for a small run.
fn shard_count(connections: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores.clamp(1, connections.max(1))
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// CPU time (user + system) of this process so far.
fn cpu_time() -> Option<Duration> {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0;
    ok.then(|| {
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        tv(usage.ru_utime) + tv(usage.ru_stime)
    })
}

/// Raises the open-file limit for `connections` sockets, or explains why it cannot.
pub fn ensure_file_limit(connections: usize, extra: usize) -> anyhow::Result<u64> {
    let needed = (connections + extra + 64) as u64;
    let got = rlimit::increase_nofile_limit(needed)
        .map_err(|e| anyhow::anyhow!(e).context("failed to raise the open-file limit"))?;
    if got < needed {
        let (_, hard) = rlimit::Resource::NOFILE.get().unwrap_or((got, got));
        return Err(Failure::Runtime(format!(
            "{connections} connections need about {needed} open files, but this process may open only {got} (hard limit {hard}): \
             lower --connections, raise the limit (`ulimit -n`), or run the server as a separate process (`syncprobe serve`) and give --url"
        ))
        .into());
    }
    Ok(got)
}

/// A run stopped by Ctrl-C, with what it measured until then (and the detail of it,
/// for the report).
#[derive(thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted(pub Box<LoadSummary>, pub Arc<Shared>);

impl std::fmt::Debug for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Interrupted")
            .field(&self.0)
            .finish_non_exhaustive()
    }
}

/// Runs `plan`, calling `on_progress` about four times a second.
pub async fn run(
    plan: &Plan,
    options: &ClientOptions,
    api_timeout: Duration,
    interrupted: impl Future<Output = ()>,
    on_progress: impl FnMut(&Progress),
) -> anyhow::Result<(LoadSummary, Arc<Shared>)> {
    let interrupt = std::pin::pin!(interrupted.fuse());
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut driver = Driver::new(plan, options, interrupt, on_progress)?;
    let connect_secs = driver.connect_phase().await;
    let cpu_before = cpu_time();
    let source_started = Instant::now();
    let source_started_us = unix_us(SystemTime::now());
    let produced = driver.event_source(api_timeout).await?;
    let answered = Instant::now();
    driver.drain(source_started, produced.per_subscriber).await;
    let drained = Instant::now();
    let source_done = answered
        .max(source_started + plan.source.pacing())
        .min(drained);
    let phases = Phases {
        connect: connect_secs * 1000.0,
        events: (source_done - source_started).as_secs_f64() * 1000.0,
        drain: (drained - source_done).as_secs_f64() * 1000.0,
    };
    let cpu = cpu_before
        .zip(cpu_time())
        .map(|(before, after)| after - before);
    let results = driver.stop_all().await;
    // Ctrl-C wants the figures now, not a last round of connections.
    let final_seqs = if driver.interrupted {
        vec![None; plan.endpoints().len()]
    } else {
        final_seqs(plan, options, &results).await
    };
    driver.progress();
    let measured = Measured {
        results,
        final_seqs,
        published: produced.published,
        connect_secs,
        cpu,
        source_started_us,
        started_at,
        phases,
        interrupted: driver.interrupted,
    };
    let summary = summarize(plan, &driver.shared, &measured);
    if driver.interrupted {
        let shared = driver.shared.clone();
        return Err(anyhow::Error::new(Interrupted(Box::new(summary), shared)));
    }
    Ok((summary, driver.shared.clone()))
}

/// What woke a wait of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wake {
    /// The deadline passed.
    Due,
    /// Time to report progress (done).
    Tick,
    /// Ctrl-C (recorded).
    Interrupted,
}

/// The state of a run between its phases.
struct Driver<'a, I, P> {
    plan: &'a Plan,
    options: &'a ClientOptions,
    shared: Arc<Shared>,
    /// Tells every subscriber to close.
    stop: CancellationToken,
    /// The subscribers' handshakes, each on its own task until CONNECTED.
    handshakes: JoinSet<()>,
    /// The shards that read the sockets once they are up.
    shards: Vec<ShardThread>,
    ticker: Interval,
    interrupt: Pin<&'a mut Fuse<I>>,
    on_progress: P,
    interrupted: bool,
}

impl<'a, I, P> Driver<'a, I, P>
where
    I: Future<Output = ()>,
    P: FnMut(&Progress),
{
    fn new(
        plan: &'a Plan,
        options: &'a ClientOptions,
        interrupt: Pin<&'a mut Fuse<I>>,
        on_progress: P,
    ) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared::new(plan.connections as u64, plan.targets.len()));
        let stop = CancellationToken::new();
        let shards = (0..shard_count(plan.connections))
            .map(|i| Shard::spawn(i, shared.clone(), stop.clone()))
            .collect::<anyhow::Result<_>>()?;
        Ok(Driver {
            plan,
            options,
            shared,
            stop,
            handshakes: JoinSet::new(),
            shards,
            ticker: tokio::time::interval(PROGRESS_EVERY),
            interrupt,
            on_progress,
            interrupted: false,
        })
    }

    fn progress(&mut self) {
        (self.on_progress)(&self.shared.progress());
    }

    /// Waits until `until` (`None`: a tick or Ctrl-C), reporting progress on ticks
    /// and recording Ctrl-C.
    async fn wait(&mut self, until: Option<Instant>) -> Wake {
        let deadline = until.unwrap_or_else(Instant::now);
        let wake = tokio::select! {
            _ = tokio::time::sleep_until(deadline), if until.is_some() => Wake::Due,
            _ = self.ticker.tick() => Wake::Tick,
            _ = &mut self.interrupt => Wake::Interrupted,
        };
        match wake {
            Wake::Tick => self.progress(),
            Wake::Interrupted => self.interrupted = true,
            Wake::Due => {}
        }
        wake
    }

    /// Opens the connections (at `ramp_rate`, if set) and waits until each is up or
    /// has failed; returns how long that took, in seconds: from the first attempt to
    /// the last connection that settled.
    async fn connect_phase(&mut self) -> f64 {
        let started = Instant::now();
        let pending = Arc::new(Semaphore::new(self.plan.max_pending.max(1)));
        for i in 0..self.plan.connections {
            if self.plan.ramp_rate > 0.0 {
                let at = started + Duration::from_secs_f64(i as f64 / self.plan.ramp_rate);
                while self.wait(Some(at)).await == Wake::Tick {}
            }
            if self.interrupted {
                break;
            }
            let (url, org) = self.plan.slot(i);
            self.spawn(i, url, org, &pending);
        }
        let shared = self.shared.clone();
        while !self.interrupted && !shared.all_settled() {
            tokio::select! {
                _ = shared.all_settled.notified() => {}
                _ = self.wait(None) => {}
            }
        }
        let last = *shared.last_settled.lock().expect("settled lock");
        last.map_or(started.elapsed(), |at| {
            at.saturating_duration_since(started)
        })
        .as_secs_f64()
    }

    /// Opens connection `i` (to `url`, for `org`), read by shard `i` modulo their count.
    fn spawn(&mut self, i: usize, url: usize, org: usize, pending: &Arc<Semaphore>) {
        let shard = &self.shards[i % self.shards.len()];
        let subscription = Subscription {
            org,
            url,
            endpoint: self.plan.targets[url].endpoints[org].clone(),
            options: self.options.clone(),
            shared: self.shared.clone(),
            pending: pending.clone(),
            stop: self.stop.clone(),
            connected_within: self.plan.connected_timeout,
            shard: shard.inbox.clone(),
        };
        self.handshakes.spawn_on(subscription.run(), &shard.runtime);
    }

    /// Asks the source for its events; skipped after Ctrl-C, and with no subscriber
    /// left (there is nothing to deliver to).
    async fn event_source(&mut self, api_timeout: Duration) -> anyhow::Result<Produced> {
        let anyone = self.shared.open.load(Ordering::Relaxed) > 0;
        if self.interrupted || !anyone {
            return Ok(Produced::default());
        }
        if let Err(e) = produce(self.plan, self.options, api_timeout).await {
            self.stop.cancel();
            return Err(e);
        }
        Ok(self
            .plan
            .source
            .produced(self.plan.endpoints().len() as u64))
    }

    /// Waits for the last deliveries (up to `drain_timeout` after the source is done)
    /// and for `hold` to pass.
    async fn drain(&mut self, source_started: Instant, per_subscriber: Option<u64>) {
        let drain_until = source_started + self.plan.source.pacing() + self.plan.drain_timeout;
        let hold_until = source_started + self.plan.hold;
        while !self.interrupted && !self.drained(per_subscriber, drain_until, hold_until) {
            self.wait(Some(Instant::now() + DRAIN_LOOK)).await;
        }
    }

    fn drained(&self, per_subscriber: Option<u64>, drain_until: Instant, hold: Instant) -> bool {
        let now = Instant::now();
        let open = self.shared.open.load(Ordering::Relaxed);
        let delivered = match per_subscriber {
            Some(n) => {
                self.shared.delivered.load(Ordering::Relaxed) >= n * open || now >= drain_until
            }
            None => true,
        };
        (delivered || open == 0) && now >= hold
    }

    /// Closes every subscriber and collects what each saw.
    async fn stop_all(&mut self) -> Vec<ConnResult> {
        self.stop.cancel();
        // A shard takes the sockets still being handed over until every sender is
        // gone: the handshakes' (they end at the stop) and these.
        let seen: Vec<_> = std::mem::take(&mut self.shards)
            .into_iter()
            .map(|shard| shard.results)
            .collect();
        while self.handshakes.join_next().await.is_some() {}
        let mut results = Vec::new();
        for shard in seen {
            results.extend(shard.await.unwrap_or_default());
        }
        results
    }
}

impl<I, P> Drop for Driver<'_, I, P> {
    /// However the run ends, the shards close their sockets and end.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One request per organization to the source; the first failure ends the run.
async fn produce(
    plan: &Plan,
    options: &ClientOptions,
    api_timeout: Duration,
) -> anyhow::Result<()> {
    let apis: Vec<Api> = plan
        .endpoints()
        .iter()
        .map(|e| Api::new(e, options, api_timeout).map(|api| api.limit_set_by("--drain-timeout")))
        .collect::<anyhow::Result<_>>()?;
    let mut requests = JoinSet::new();
    for (api, endpoint) in apis.into_iter().zip(plan.endpoints()) {
        let org = endpoint.org.clone();
        match plan.source {
            Source::Publish { events, rate } => {
                let body = publish_request(org, events, rate);
                requests.spawn(async move { api.publish(&body).await.map(drop) });
            }
            Source::Queue { items } => {
                let body = queue_request(org, items);
                requests.spawn(async move { api.write_sync(&body).await.map(drop) });
            }
            Source::Passive => {}
        }
    }
    while let Some(result) = requests.join_next().await {
        if let Ok(Err(e)) = result {
            return Err(e.context("the event source failed"));
        }
    }
    Ok(())
}

fn publish_request(org: String, events: u64, rate: f64) -> PublishRequest {
    PublishRequest {
        organization_id: org,
        kind: "SYNC_QUEUED".into(),
        pfa_id: Some("pfa-load".into()),
        details: None,
        count: Some(events),
        rate_per_sec: Some(rate),
    }
}

fn queue_request(org: String, items: u64) -> WriteSyncRequest {
    WriteSyncRequest {
        organization_id: org,
        count: Some(items as u32),
        outcome: Some(crate::protocol::Outcome::Success),
        ..Default::default()
    }
}

/// The organizations' final seq, from a fresh CONNECTED each, once the subscribers
/// are gone (a server may cap connections per organization). Only organizations
/// whose subscribers saw a `seq` are asked (a server without one has none to give);
/// a refused upgrade is retried briefly while the server notices the closes; a
/// probe that gets no answer ends the phase (the server is not asked again for
/// every organization). The whole phase ends by [`probe_deadline`].
async fn final_seqs(
    plan: &Plan,
    options: &ClientOptions,
    results: &[ConnResult],
) -> Vec<Option<u64>> {
    let mut seqs = vec![None; plan.endpoints().len()];
    let numbered: std::collections::BTreeSet<usize> = results
        .iter()
        .filter(|r| r.start_seq.is_some())
        .map(|r| r.org)
        .collect();
    let deadline = probe_deadline(plan, options);
    for org in numbered {
        let endpoint = &plan.endpoints()[org];
        let asked = tokio::time::timeout_at(deadline, probe_answered(endpoint, options, plan));
        match asked.await {
            Ok(Probe::Seq(seq)) => seqs[org] = Some(seq),
            Ok(Probe::NoSeq) => {}
            Ok(Probe::Unanswered) | Err(_) => break,
        }
    }
    seqs
}

/// When the final probe gives up: one probe's bounds (`--connect-timeout`, the wait
/// for CONNECTED, the close) plus the retries of a refused one.
fn probe_deadline(plan: &Plan, options: &ClientOptions) -> Instant {
    Instant::now()
        + options.connect_timeout
        + plan.connected_timeout
        + crate::client::ws::CLOSE_WAIT
        + PROBE_RETRY * PROBE_ATTEMPTS
}

/// What the final probe of one organization learnt.
enum Probe {
    Seq(u64),
    /// CONNECTED without `seq`, or refused every time.
    NoSeq,
    /// No answer (a timeout, the connection refused): stop probing.
    Unanswered,
}

/// [`probe`], retried while the server refuses the upgrade or closes before
/// CONNECTED (it has not noticed the subscribers' closes yet).
async fn probe_answered(endpoint: &Endpoint, options: &ClientOptions, plan: &Plan) -> Probe {
    use crate::client::error::{PeerClosed, find, http_status};
    for _ in 0..PROBE_ATTEMPTS {
        match probe(endpoint, options, plan.connected_timeout).await {
            Ok(Some(seq)) => return Probe::Seq(seq),
            Ok(None) => return Probe::NoSeq,
            Err(e) if http_status(&e).is_some() || find::<PeerClosed>(&e).is_some() => {
                tokio::time::sleep(PROBE_RETRY).await;
            }
            Err(_) => return Probe::Unanswered,
        }
    }
    Probe::NoSeq
}

/// One session: open, CONNECTED, close; its `seq`.
async fn probe(
    endpoint: &Endpoint,
    options: &ClientOptions,
    within: Duration,
) -> anyhow::Result<Option<u64>> {
    let mut never = std::future::pending();
    let started = Session::start(endpoint, None, options, within, |_: &Opened| {}, &mut never);
    let Started::Ready(mut session) = started.await? else {
        return Ok(None);
    };
    session.close(1000, "normal").await;
    Ok(session.connected.connected.seq)
}

/// What the phases produced, for the summary.
struct Measured {
    results: Vec<ConnResult>,
    /// Per organization, its final `seq`.
    final_seqs: Vec<Option<u64>>,
    /// Stopped by Ctrl-C (the final `seq` was not asked for).
    interrupted: bool,
    published: Option<u64>,
    connect_secs: f64,
    /// Client CPU time from the event source to the end of the drain.
    cpu: Option<Duration>,
    source_started_us: u64,
    started_at: String,
    phases: Phases,
}

/// Each subscriber against its organization's final `seq`, or why that cannot be
/// measured.
fn completeness(
    results: &[ConnResult],
    final_seqs: &[Option<u64>],
    interrupted: bool,
) -> Result<Completeness, Unmeasured> {
    if results.is_empty() {
        return Err(Unmeasured::NoSubscriber);
    }
    if results.iter().any(|r| r.start_seq.is_none()) {
        return Err(Unmeasured::NoSeq);
    }
    if interrupted {
        return Err(Unmeasured::Interrupted);
    }
    let mut c = Completeness::default();
    for r in results {
        let (Some(start), Some(end)) = (r.start_seq, final_seqs[r.org]) else {
            return Err(Unmeasured::FinalSeqUnknown);
        };
        let expected = end.saturating_sub(start);
        let missing = expected.saturating_sub(r.seqs.unique);
        c.subscribers += 1;
        c.expected += expected;
        c.received += r.seqs.unique;
        c.missing += missing;
        c.duplicated += r.seqs.duplicates;
        c.reordered += r.seqs.late;
        if missing == 0 && r.seqs.duplicates == 0 && r.seqs.late == 0 {
            c.complete_subscribers += 1;
        }
    }
    Ok(c)
}

/// Seconds from the first publish (or, failing that, the first delivery) to the
/// last delivery.
fn delivery_span(results: &[ConnResult], source_started_us: u64) -> f64 {
    let (mut first_us, mut last_us) = (u64::MAX, 0u64);
    for r in results {
        if let (Some(f), Some(l)) = (r.first_us, r.last_us) {
            first_us = first_us.min(f);
            last_us = last_us.max(l);
        }
    }
    if last_us > source_started_us {
        (last_us - source_started_us) as f64 / 1e6
    } else if first_us < last_us {
        (last_us - first_us) as f64 / 1e6
    } else {
        0.0
    }
}

fn per_second(count: u64, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

fn summarize(plan: &Plan, shared: &Shared, measured: &Measured) -> LoadSummary {
    let results = &measured.results;
    let frames: u64 = results
        .iter()
        .map(|r| r.seqs.unique + r.seqs.duplicates)
        .sum::<u64>()
        .max(shared.delivered.load(Ordering::Relaxed));
    let cpu = measured
        .cpu
        .filter(|_| frames > 0)
        .map(|cpu| cpu.as_secs_f64() * 1e6 / frames as f64);
    // Each lock is taken and released on its own line: guards in one struct literal
    // would live to its end, and a second lock of the same mutex would deadlock.
    let connect_ms = Percentiles::of(&shared.connect.lock().expect("connect lock"));
    let connected_ms = Percentiles::of(&shared.connected.lock().expect("connected lock"));
    let latency_ms = Percentiles::of(&shared.latency.lock().expect("latency lock"));
    let errors = shared.errors.lock().expect("errors lock").clone();
    let completeness = completeness(results, &measured.final_seqs, measured.interrupted);
    LoadSummary {
        connections_requested: shared.requested,
        connections_opened: connect_ms.count,
        connections_failed: shared.failed.load(Ordering::Relaxed),
        organizations: plan.endpoints().len() as u64,
        connect_rate: per_second(connect_ms.count, measured.connect_secs),
        connect_ms,
        connected_ms,
        latency_ms,
        latency_source: LatencySource::of(
            shared.precise.load(Ordering::Relaxed),
            shared.coarse.load(Ordering::Relaxed),
        ),
        events_published: measured.published,
        frames_delivered: frames,
        delivered_per_sec: per_second(frames, delivery_span(results, measured.source_started_us)),
        unmeasured: completeness.as_ref().err().copied(),
        completeness: completeness.ok(),
        errors,
        client_cpu_us_per_frame: cpu,
        duration_ms: shared.started.elapsed().as_secs_f64() * 1000.0,
        started_at: measured.started_at.clone(),
        phases_ms: measured.phases.clone(),
        urls: shared.url_summaries(plan),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completeness_says_why_it_was_not_measured() {
        use crate::seq::SeqTracker;
        let result = |start_seq: Option<u64>, got: &[u64]| {
            let mut seqs = SeqTracker::expecting(start_seq.map(|s| s + 1));
            for &seq in got {
                seqs.on(seq);
            }
            ConnResult {
                org: 0,
                start_seq,
                seqs,
                first_us: None,
                last_us: None,
            }
        };
        let numbered = || vec![result(Some(0), &[1, 2])];
        assert_eq!(
            completeness(&[], &[None], false),
            Err(Unmeasured::NoSubscriber)
        );
        assert_eq!(
            completeness(&[result(None, &[])], &[None], false),
            Err(Unmeasured::NoSeq)
        );
        assert_eq!(
            completeness(&numbered(), &[Some(2)], true),
            Err(Unmeasured::Interrupted)
        );
        let unknown = completeness(&numbered(), &[None], false);
        assert_eq!(unknown, Err(Unmeasured::FinalSeqUnknown));
        assert!(Unmeasured::FinalSeqUnknown.may_hide_loss());
        assert!(!Unmeasured::NoSeq.may_hide_loss() && !Unmeasured::Interrupted.may_hide_loss());
        let c = completeness(&numbered(), &[Some(3)], false).unwrap();
        assert_eq!((c.expected, c.received, c.missing), (3, 2, 1));
    }

    #[test]
    fn percentiles_are_in_milliseconds() {
        let mut h = histogram();
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 0.5).abs() < 0.01, "{p:?}");
        assert!((p.max - 1.0).abs() < 0.01, "{p:?}");
        assert_eq!(Percentiles::of(&histogram()), Percentiles::default());
    }

    #[test]
    fn latency_sources_are_written_as_before() {
        for (precise, coarse, text) in [
            (1, 0, "publishedAtUs"),
            (0, 1, "timestamp (1 ms resolution)"),
            (
                1,
                1,
                "publishedAtUs where present, else timestamp (1 ms resolution)",
            ),
        ] {
            let source = LatencySource::of(precise, coarse).unwrap();
            assert_eq!(source.as_str(), text);
            assert_eq!(serde_json::to_value(source).unwrap(), text);
            let back: LatencySource = serde_json::from_value(text.into()).unwrap();
            assert_eq!(back, source);
        }
        assert_eq!(LatencySource::of(0, 0), None);
    }

    #[test]
    fn sources_say_what_they_produce() {
        let publish = Source::Publish {
            events: 10,
            rate: 5.0,
        };
        assert_eq!(
            publish.produced(3),
            Produced {
                published: Some(30),
                per_subscriber: Some(10)
            }
        );
        assert_eq!(publish.pacing(), Duration::from_secs(2));
        assert_eq!(Source::Queue { items: 4 }.produced(2).published, Some(24));
        assert_eq!(Source::Passive.produced(2), Produced::default());
        assert_eq!(Source::Passive.pacing(), Duration::ZERO);
    }
}
