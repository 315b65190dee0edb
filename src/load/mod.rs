//! The load engine behind `syncprobe load`: many sync sockets, an event source, and
//! the measurements (HDR histograms of connect time, time to CONNECTED and fan-out
//! latency; completeness per subscriber; errors by kind).
//!
//! The per-frame path is kept cheap so the client is never the bottleneck: the frame
//! is read in place (a borrowed serde view of `seq` and `publishedAtUs` only), latency
//! samples go to a small per-connection buffer that is flushed into the shared
//! histograms every [`FLUSH_EVERY`] frames, and counters are per connection until then.

pub mod html;
pub mod threshold;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::client::http::Api;
use crate::client::{ClientOptions, Endpoint, ws};
use crate::exit::{Failure, exit_for};
use crate::protocol::{PublishRequest, WriteSyncRequest};
use crate::seq::SeqTracker;

/// Latency samples buffered per connection before they reach the shared histograms.
pub const FLUSH_EVERY: usize = 256;
/// Longest a connection keeps samples and counts before flushing them, in µs.
const FLUSH_AFTER_US: u64 = 100_000;
/// Highest latency recorded, in µs (longer ones are clamped).
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Tries, and the pause between them, of the final `seq` probe.
const PROBE_ATTEMPTS: u32 = 20;
const PROBE_RETRY: Duration = Duration::from_millis(100);
/// Most missing `seq` numbers remembered per subscriber (to recognise late arrivals).
const MAX_MISSING: usize = 10_000;

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

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub endpoints: Vec<Endpoint>,
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
    /// `publishedAtUs` (µs precision), `timestamp` (1 ms resolution), or none.
    pub latency_source: Option<String>,
    pub events_published: Option<u64>,
    pub frames_delivered: u64,
    /// Frames delivered per second, from the first publish to the last delivery.
    pub delivered_per_sec: f64,
    /// `None` against a server without `seq` (completeness cannot be measured).
    pub completeness: Option<Completeness>,
    /// Errors by kind: `upgrade refused: HTTP 503`, `timeout`, `closed with 4429`, …
    pub errors: BTreeMap<String, u64>,
    /// Client CPU time (user + system) per delivered frame, in µs.
    pub client_cpu_us_per_frame: Option<f64>,
    pub duration_ms: f64,
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

/// State shared by every connection task.
pub struct Shared {
    started: Instant,
    /// Connections open now.
    open: AtomicU64,
    /// Connections that reached CONNECTED, open or not any more.
    ever: AtomicU64,
    failed: AtomicU64,
    delivered: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    connect: Mutex<Histogram<u64>>,
    connected: Mutex<Histogram<u64>>,
    latency: Mutex<Histogram<u64>>,
    /// Latency per second of the run (for the report's latency over time).
    timeline: Mutex<Vec<Histogram<u64>>>,
    precise: AtomicU64,
    coarse: AtomicU64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

impl Shared {
    fn new() -> Shared {
        Shared {
            started: Instant::now(),
            open: AtomicU64::new(0),
            ever: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            connect: Mutex::new(histogram()),
            connected: Mutex::new(histogram()),
            latency: Mutex::new(histogram()),
            timeline: Mutex::new(Vec::new()),
            precise: AtomicU64::new(0),
            coarse: AtomicU64::new(0),
        }
    }

    fn error(&self, kind: String) {
        *self
            .errors
            .lock()
            .expect("errors lock")
            .entry(kind)
            .or_default() += 1;
    }

    pub fn progress(&self, requested: u64) -> Progress {
        let p99 = self
            .latency
            .lock()
            .expect("latency lock")
            .value_at_quantile(0.99) as f64
            / 1000.0;
        Progress {
            elapsed_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            open: self.open.load(Ordering::Relaxed),
            requested,
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

    /// The latency histogram buckets and the per-second timeline, for the HTML report.
    pub fn latency_detail(&self) -> (Histogram<u64>, Vec<Histogram<u64>>) {
        (
            self.latency.lock().expect("latency lock").clone(),
            self.timeline.lock().expect("timeline lock").clone(),
        )
    }
}

/// The error kinds a load run counts, from the causes the client attached.
pub fn classify(error: &anyhow::Error) -> String {
    use crate::client::error::{PeerClosed, find, http_status, io_kind};
    if let Some(status) = http_status(error) {
        return format!("upgrade refused: HTTP {status}");
    }
    if let Some(PeerClosed {
        code: Some(code), ..
    }) = find::<PeerClosed>(error)
    {
        return format!("closed with {code} before CONNECTED");
    }
    match exit_for(error) {
        crate::exit::Exit::Timeout => "timeout".into(),
        crate::exit::Exit::Connect
            if io_kind(error) == Some(std::io::ErrorKind::ConnectionRefused) =>
        {
            "connection refused".into()
        }
        crate::exit::Exit::Connect => "connect failed".into(),
        _ => "protocol error".into(),
    }
}

/// The fields the load client reads from each frame; everything else is skipped.
#[derive(Deserialize)]
struct Lite {
    seq: Option<u64>,
    #[serde(rename = "publishedAtUs")]
    published_at_us: Option<u64>,
    timestamp: Option<crate::protocol::Timestamp>,
}

/// What one connection saw.
struct ConnResult {
    org: usize,
    /// `seq` in its CONNECTED (`None`: a server without numbering).
    start_seq: Option<u64>,
    seqs: SeqTracker,
    first_us: Option<u64>,
    last_us: Option<u64>,
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Opens one connection and reads until `stop`.
async fn connection(
    org: usize,
    endpoint: Endpoint,
    options: ClientOptions,
    shared: Arc<Shared>,
    pending: Arc<Semaphore>,
    stop: CancellationToken,
    connected_timeout: Duration,
) -> Option<ConnResult> {
    let permit = pending.acquire_owned().await.ok()?;
    let began = Instant::now();
    let opened = tokio::select! {
        _ = stop.cancelled() => return None,
        opened = ws::open(&endpoint, None, &options) => opened,
    };
    let mut opened = match opened {
        Ok(opened) => opened,
        Err(e) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            shared.error(classify(&e));
            return None;
        }
    };
    let open_us = began.elapsed().as_micros() as u64;
    let first =
        match ws::expect_connected(&mut opened.stream, &endpoint.org, connected_timeout).await {
            Ok(first) => first,
            Err(e) => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                shared.error(classify(&e));
                return None;
            }
        };
    let connected_us = began.elapsed().as_micros() as u64;
    drop(permit);
    shared
        .connect
        .lock()
        .expect("connect lock")
        .saturating_record(open_us.max(1));
    shared
        .connected
        .lock()
        .expect("connected lock")
        .saturating_record(connected_us.max(1));
    shared.open.fetch_add(1, Ordering::Relaxed);
    shared.ever.fetch_add(1, Ordering::Relaxed);

    let start_seq = first.connected.seq;
    let mut seqs = SeqTracker::expecting(start_seq.map(|s| s + 1)).remembering(MAX_MISSING);
    let mut batch: Vec<(u32, u64)> = Vec::with_capacity(FLUSH_EVERY);
    let (mut first_us, mut last_us) = (None, None);
    let (mut precise, mut coarse) = (0u64, 0u64);
    let mut delivered = 0u64;
    let mut flushed_us = 0u64;
    let started = shared.started;
    let flush = |batch: &mut Vec<(u32, u64)>, delivered: &mut u64| {
        if batch.is_empty() && *delivered == 0 {
            return;
        }
        shared.delivered.fetch_add(*delivered, Ordering::Relaxed);
        *delivered = 0;
        let mut latency = shared.latency.lock().expect("latency lock");
        for (_, us) in batch.iter() {
            latency.saturating_record((*us).clamp(1, MAX_LATENCY_US));
        }
        drop(latency);
        let mut timeline = shared.timeline.lock().expect("timeline lock");
        for (second, us) in batch.drain(..) {
            let second = second as usize;
            while timeline.len() <= second {
                timeline.push(histogram());
            }
            timeline[second].saturating_record(us.clamp(1, MAX_LATENCY_US));
        }
    };
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => {
                // Best effort: the server learns we are done, without waiting for it.
                let _ = tokio::time::timeout(Duration::from_millis(200), opened.stream.close(None)).await;
                break;
            }
            message = opened.stream.next() => message,
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                let now = SystemTime::now();
                let now_us = unix_us(now);
                delivered += 1;
                first_us.get_or_insert(now_us);
                last_us = Some(now_us);
                let Ok(lite) = serde_json::from_str::<Lite>(text.as_str()) else {
                    shared.error("malformed frame".into());
                    continue;
                };
                if let Some(seq) = lite.seq {
                    seqs.on(seq);
                }
                let latency = match (lite.published_at_us, lite.timestamp) {
                    (Some(published), _) => {
                        precise += 1;
                        Some(now_us.saturating_sub(published))
                    }
                    (None, Some(t)) => {
                        coarse += 1;
                        Some((now_us / 1000).saturating_sub(t.millis().max(0) as u64) * 1000)
                    }
                    _ => None,
                };
                if let Some(us) = latency {
                    let second = started.elapsed().as_secs() as u32;
                    batch.push((second, us));
                }
                if batch.len() >= FLUSH_EVERY || now_us.saturating_sub(flushed_us) >= FLUSH_AFTER_US
                {
                    flush(&mut batch, &mut delivered);
                    flushed_us = now_us;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map_or("no code".to_string(), |f| u16::from(f.code).to_string());
                shared.error(format!("closed by the server with {code}"));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                if !stop.is_cancelled() {
                    shared.error("connection lost".into());
                }
                break;
            }
        }
    }
    flush(&mut batch, &mut delivered);
    shared.precise.fetch_add(precise, Ordering::Relaxed);
    shared.coarse.fetch_add(coarse, Ordering::Relaxed);
    shared.open.fetch_sub(1, Ordering::Relaxed);
    Some(ConnResult {
        org,
        start_seq,
        seqs,
        first_us,
        last_us,
    })
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

/// Runs `plan`, calling `on_progress` about four times a second.
pub async fn run(
    plan: &Plan,
    options: &ClientOptions,
    api_timeout: Duration,
    interrupted: impl std::future::Future<Output = ()>,
    mut on_progress: impl FnMut(&Progress),
) -> anyhow::Result<(LoadSummary, Arc<Shared>)> {
    let shared = Arc::new(Shared::new());
    let stop = CancellationToken::new();
    let pending = Arc::new(Semaphore::new(plan.max_pending.max(1)));
    let requested = plan.connections as u64;
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(interrupted);
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let mut interrupted_now = false;

    // Connect phase.
    let connect_started = Instant::now();
    for i in 0..plan.connections {
        if plan.ramp_rate > 0.0 {
            let at = connect_started + Duration::from_secs_f64(i as f64 / plan.ramp_rate);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => break,
                    _ = ticker.tick() => on_progress(&shared.progress(requested)),
                    _ = &mut interrupted => { interrupted_now = true; break; }
                }
            }
        }
        if interrupted_now {
            break;
        }
        let org = i % plan.endpoints.len();
        tasks.spawn(connection(
            org,
            plan.endpoints[org].clone(),
            options.clone(),
            shared.clone(),
            pending.clone(),
            stop.clone(),
            plan.connected_timeout,
        ));
    }
    // Wait until every connection is up or has failed.
    while !interrupted_now
        && shared.ever.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed) < requested
    {
        tokio::select! {
            _ = ticker.tick() => on_progress(&shared.progress(requested)),
            _ = &mut interrupted => interrupted_now = true,
        }
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let cpu_before = cpu_time();
    let source_started = Instant::now();
    let source_started_us = unix_us(SystemTime::now());

    // Event phase.
    let mut published: Option<u64> = None;
    let mut per_subscriber: Option<u64> = None;
    // With no subscriber left there is nothing to deliver to: skip the source.
    let anyone = shared.open.load(Ordering::Relaxed) > 0;
    if !interrupted_now && anyone {
        let apis: Vec<Api> = plan
            .endpoints
            .iter()
            .map(|e| Api::new(e, options, api_timeout))
            .collect::<anyhow::Result<_>>()?;
        let mut requests = tokio::task::JoinSet::new();
        match &plan.source {
            Source::Publish { events, rate } => {
                for (api, endpoint) in apis.iter().zip(&plan.endpoints) {
                    let (api, body) = (
                        api.clone(),
                        PublishRequest {
                            organization_id: endpoint.org.clone(),
                            kind: "SYNC_QUEUED".into(),
                            pfa_id: Some("pfa-load".into()),
                            details: None,
                            count: Some(*events),
                            rate_per_sec: Some(*rate),
                        },
                    );
                    requests.spawn(async move { api.publish(&body).await.map(drop) });
                }
                published = Some(events * plan.endpoints.len() as u64);
                per_subscriber = Some(*events);
            }
            Source::Queue { items } => {
                for (api, endpoint) in apis.iter().zip(&plan.endpoints) {
                    let (api, body) = (
                        api.clone(),
                        WriteSyncRequest {
                            organization_id: endpoint.org.clone(),
                            count: Some(*items as u32),
                            outcome: Some(crate::protocol::Outcome::Success),
                            ..Default::default()
                        },
                    );
                    requests.spawn(async move { api.write_sync(&body).await.map(drop) });
                }
                published = Some(items * 3 * plan.endpoints.len() as u64);
                per_subscriber = Some(items * 3);
            }
            Source::Passive => {}
        }
        while let Some(result) = requests.join_next().await {
            if let Ok(Err(e)) = result {
                stop.cancel();
                return Err(e.context("the event source failed"));
            }
        }
    }
    // Paced publishing goes on after the answer: allow for its length.
    let pacing = match &plan.source {
        Source::Publish { events, rate } if *rate > 0.0 => {
            Duration::from_secs_f64(*events as f64 / rate)
        }
        _ => Duration::ZERO,
    };
    let drain_until = source_started + pacing + plan.drain_timeout;
    let hold_until = source_started + plan.hold;
    loop {
        if interrupted_now {
            break;
        }
        let open = shared.open.load(Ordering::Relaxed);
        let done = match per_subscriber {
            Some(n) => {
                shared.delivered.load(Ordering::Relaxed) >= n * open
                    || Instant::now() >= drain_until
            }
            None => true,
        } || open == 0;
        if done && Instant::now() >= hold_until {
            break;
        }
        tokio::select! {
            _ = ticker.tick() => on_progress(&shared.progress(requested)),
            _ = &mut interrupted => interrupted_now = true,
            // Frames are flushed in batches; look again soon.
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let cpu_after = cpu_time();

    stop.cancel();
    let mut results = Vec::new();
    while let Some(result) = tasks.join_next().await {
        if let Ok(Some(r)) = result {
            results.push(r);
        }
    }
    // The organizations' final seq, from a fresh CONNECTED each, once the subscribers
    // are gone (a server may cap connections per organization). A refusal is retried
    // briefly while the server notices the closes.
    let mut final_seq: Vec<Option<u64>> = Vec::new();
    for endpoint in &plan.endpoints {
        let mut seq = None;
        for _ in 0..PROBE_ATTEMPTS {
            seq = async {
                let mut opened = ws::open(endpoint, None, options).await.ok()?;
                let first =
                    ws::expect_connected(&mut opened.stream, &endpoint.org, plan.connected_timeout)
                        .await
                        .ok()?;
                let _ = ws::close(&mut opened.stream, 1000, "normal").await;
                first.connected.seq
            }
            .await;
            if seq.is_some() {
                break;
            }
            tokio::time::sleep(PROBE_RETRY).await;
        }
        final_seq.push(seq);
    }
    on_progress(&shared.progress(requested));

    let mut completeness = Completeness::default();
    let mut measurable = !results.is_empty();
    let (mut first_us, mut last_us) = (u64::MAX, 0u64);
    for r in &results {
        if let (Some(f), Some(l)) = (r.first_us, r.last_us) {
            first_us = first_us.min(f);
            last_us = last_us.max(l);
        }
        let (Some(start), Some(end)) = (r.start_seq, final_seq[r.org]) else {
            measurable = false;
            continue;
        };
        let expected = end.saturating_sub(start);
        let missing = expected.saturating_sub(r.seqs.unique);
        completeness.subscribers += 1;
        completeness.expected += expected;
        completeness.received += r.seqs.unique;
        completeness.missing += missing;
        completeness.duplicated += r.seqs.duplicates;
        completeness.reordered += r.seqs.late;
        if missing == 0 && r.seqs.duplicates == 0 && r.seqs.late == 0 {
            completeness.complete_subscribers += 1;
        }
    }
    let frames: u64 = results
        .iter()
        .map(|r| r.seqs.unique + r.seqs.duplicates)
        .sum::<u64>()
        .max(shared.delivered.load(Ordering::Relaxed));
    let span_s = if last_us > source_started_us {
        (last_us - source_started_us) as f64 / 1e6
    } else {
        0.0
    };
    let span_s = if span_s > 0.0 {
        span_s
    } else if first_us < last_us {
        (last_us - first_us) as f64 / 1e6
    } else {
        0.0
    };
    let cpu = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) if frames > 0 => Some((b - a).as_secs_f64() * 1e6 / frames as f64),
        _ => None,
    };
    let (precise, coarse) = (
        shared.precise.load(Ordering::Relaxed),
        shared.coarse.load(Ordering::Relaxed),
    );
    // Each lock is taken and released on its own line: guards in one struct literal
    // would live to its end, and a second lock of the same mutex would deadlock.
    let connect_ms = Percentiles::of(&shared.connect.lock().expect("connect lock"));
    let connected_ms = Percentiles::of(&shared.connected.lock().expect("connected lock"));
    let latency_ms = Percentiles::of(&shared.latency.lock().expect("latency lock"));
    let errors = shared.errors.lock().expect("errors lock").clone();
    let summary = LoadSummary {
        connections_requested: requested,
        connections_opened: connect_ms.count,
        connections_failed: shared.failed.load(Ordering::Relaxed),
        organizations: plan.endpoints.len() as u64,
        connect_rate: if connect_secs > 0.0 {
            connect_ms.count as f64 / connect_secs
        } else {
            0.0
        },
        connect_ms,
        connected_ms,
        latency_ms,
        latency_source: match (precise, coarse) {
            (0, 0) => None,
            (_, 0) => Some("publishedAtUs".into()),
            (0, _) => Some("timestamp (1 ms resolution)".into()),
            _ => Some("publishedAtUs where present, else timestamp (1 ms resolution)".into()),
        },
        events_published: published,
        frames_delivered: frames,
        delivered_per_sec: if span_s > 0.0 {
            frames as f64 / span_s
        } else {
            0.0
        },
        completeness: measurable.then_some(completeness),
        errors,
        client_cpu_us_per_frame: cpu,
        duration_ms: shared.started.elapsed().as_secs_f64() * 1000.0,
    };
    if interrupted_now {
        return Err(anyhow::Error::new(Interrupted(Box::new(summary))));
    }
    Ok((summary, shared))
}

/// A run stopped by Ctrl-C, with what it measured until then.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted(pub Box<LoadSummary>);

#[cfg(test)]
mod tests {
    use super::*;

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
    fn errors_are_classified_by_their_cause() {
        use crate::client::error::{PeerClosed, UpgradeRefused, failed};
        let refused = UpgradeRefused {
            status: 503,
            body: String::new(),
        };
        assert_eq!(
            classify(&failed(Failure::Connect("upgrade".into()), refused)),
            "upgrade refused: HTTP 503"
        );
        // The text alone does not count: "HTTP 503" in a message is not a status.
        assert_eq!(
            classify(&anyhow::Error::new(Failure::Protocol(
                "saw HTTP 503 (code 1)".into()
            ))),
            "protocol error"
        );
        let closed = PeerClosed {
            code: Some(4503),
            reason: "cap".into(),
        };
        assert_eq!(
            classify(&failed(
                Failure::Protocol("before CONNECTED".into()),
                closed
            )),
            "closed with 4503 before CONNECTED"
        );
        assert_eq!(
            classify(&anyhow::Error::new(Failure::Timeout("timed out".into()))),
            "timeout"
        );
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            classify(&failed(Failure::Connect("failed to connect".into()), io)),
            "connection refused"
        );
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(
            classify(&failed(Failure::Connect("failed to connect".into()), io)),
            "connect failed"
        );
    }
}
