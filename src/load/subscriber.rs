//! One load subscriber: open through the session helper (open, CONNECTED), read
//! until told to stop, close.
//!
//! The per-frame path is kept cheap so the client is never the bottleneck: the frame
//! is read in place (a borrowed serde view of `seq` and `publishedAtUs` only), latency
//! samples go to a small per-connection buffer that is flushed into the shared
//! histograms every [`FLUSH_EVERY`] frames, and counters are per connection until then.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use super::error::{ErrorKind, classify};
use super::{MAX_LATENCY_US, Shared, unix_us};
use crate::client::session::{Session, Started};
use crate::client::ws::{Opened, Stream};
use crate::client::{ClientOptions, Endpoint};
use crate::seq::SeqTracker;

/// Latency samples buffered per connection before they reach the shared histograms.
pub const FLUSH_EVERY: usize = 256;
/// Longest a connection keeps samples and counts before flushing them, in µs.
const FLUSH_AFTER_US: u64 = 100_000;
/// A connection with counts not yet flushed flushes them after this long without a
/// frame, so the live figures (and the end of the drain) do not wait for a next
/// frame that may never come. Armed once per batch, not per frame.
const FLUSH_IDLE: Duration = Duration::from_millis(20);
/// Most missing `seq` numbers remembered per subscriber (to recognise late arrivals).
const MAX_MISSING: usize = 10_000;
/// How long a subscriber told to stop waits for the server to answer its close:
/// best effort, the server learns we are done without our waiting for it.
const STOP_CLOSE_WAIT: Duration = Duration::from_millis(200);

/// What one connection saw.
pub(super) struct ConnResult {
    pub org: usize,
    /// `seq` in its CONNECTED (`None`: a server without numbering).
    pub start_seq: Option<u64>,
    pub seqs: SeqTracker,
    pub first_us: Option<u64>,
    pub last_us: Option<u64>,
}

/// One subscriber to open: which organization, and what it shares with the run.
pub(super) struct Subscription {
    pub org: usize,
    /// Which of the plan's base URLs.
    pub url: usize,
    pub endpoint: Endpoint,
    pub options: ClientOptions,
    pub shared: Arc<Shared>,
    /// Handshakes in flight at once.
    pub pending: Arc<Semaphore>,
    pub stop: CancellationToken,
    pub connected_within: Duration,
}

impl Subscription {
    /// Opens the connection and reads until `stop`; `None` when it never reached
    /// CONNECTED (counted as failed) or was stopped before.
    pub async fn run(self) -> Option<ConnResult> {
        let mut session = self.subscribe().await?;
        let start_seq = session.connected.connected.seq;
        let mut reader = Reader::new(&self.shared, self.url, start_seq);
        if reader.read(&mut session.stream, &self.stop).await {
            let _ = tokio::time::timeout(STOP_CLOSE_WAIT, session.close(1000, "normal")).await;
        }
        Some(reader.finish(self.org, start_seq))
    }

    /// Open → CONNECTED, under the handshake semaphore; `stop` cancels it.
    async fn subscribe(&self) -> Option<Box<Session>> {
        let _permit = self.pending.acquire().await.ok()?;
        let stop = self.stop.cancelled();
        tokio::pin!(stop);
        let started = Session::start(
            &self.endpoint,
            None,
            &self.options,
            self.connected_within,
            |_: &Opened| {},
            &mut stop,
        )
        .await;
        match started {
            Ok(Started::Ready(session)) => {
                self.shared.opened(&session, self.url);
                Some(session)
            }
            Ok(Started::Interrupted(_)) => None,
            Err(e) => {
                self.shared.failed(classify(&e), self.url);
                None
            }
        }
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

/// The per-connection counters and sample buffer of a subscriber's reads.
struct Reader<'a> {
    shared: &'a Shared,
    url: usize,
    seqs: SeqTracker,
    /// (millisecond of the run, latency in µs), flushed in batches.
    batch: Vec<(u32, u64)>,
    first_us: Option<u64>,
    last_us: Option<u64>,
    precise: u64,
    coarse: u64,
    /// Frames not yet added to the shared count.
    delivered: u64,
    flushed_us: u64,
}

impl<'a> Reader<'a> {
    fn new(shared: &'a Shared, url: usize, start_seq: Option<u64>) -> Reader<'a> {
        Reader {
            shared,
            url,
            seqs: SeqTracker::expecting(start_seq.map(|s| s.saturating_add(1)))
                .remembering(MAX_MISSING),
            batch: Vec::with_capacity(FLUSH_EVERY),
            first_us: None,
            last_us: None,
            precise: 0,
            coarse: 0,
            delivered: 0,
            flushed_us: 0,
        }
    }

    /// Reads until `stop` (`true`) or until the connection ends (`false`).
    async fn read(&mut self, stream: &mut Stream, stop: &CancellationToken) -> bool {
        let idle = tokio::time::sleep(FLUSH_IDLE);
        tokio::pin!(idle);
        let mut armed = false;
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => return true,
                _ = &mut idle, if armed => None,
                message = stream.next() => Some(message),
            };
            let Some(message) = message else {
                self.flush();
                armed = false;
                continue;
            };
            if self.on(message, stop).is_break() {
                return false;
            }
            if !armed && self.delivered > 0 {
                idle.as_mut()
                    .reset(tokio::time::Instant::now() + FLUSH_IDLE);
                armed = true;
            }
        }
    }

    fn on(
        &mut self,
        message: Option<Result<Message, tungstenite::Error>>,
        stop: &CancellationToken,
    ) -> ControlFlow<()> {
        match message {
            Some(Ok(Message::Text(text))) => self.on_text(text.as_str()),
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map(|f| u16::from(f.code));
                self.shared.error(ErrorKind::ClosedByServer(code));
                return ControlFlow::Break(());
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                if !stop.is_cancelled() {
                    self.shared.error(ErrorKind::ConnectionLost);
                }
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    /// The hot path: no allocation, one borrowed parse.
    fn on_text(&mut self, text: &str) {
        let now_us = unix_us(SystemTime::now());
        self.delivered += 1;
        self.first_us.get_or_insert(now_us);
        self.last_us = Some(now_us);
        let Ok(lite) = serde_json::from_str::<Lite>(text) else {
            self.shared.error(ErrorKind::MalformedFrame);
            return;
        };
        if let Some(seq) = lite.seq {
            self.seqs.on(seq);
        }
        if let Some(us) = self.latency(&lite, now_us) {
            let ms = self.shared.started.elapsed().as_millis() as u32;
            self.batch.push((ms, us));
        }
        if self.batch.len() >= FLUSH_EVERY
            || now_us.saturating_sub(self.flushed_us) >= FLUSH_AFTER_US
        {
            self.flush();
            self.flushed_us = now_us;
        }
    }

    /// Receive time minus publish time: `publishedAtUs` when present, else the
    /// millisecond `timestamp`.
    fn latency(&mut self, lite: &Lite, now_us: u64) -> Option<u64> {
        match (lite.published_at_us, &lite.timestamp) {
            (Some(published), _) => {
                self.precise += 1;
                Some(now_us.saturating_sub(published))
            }
            (None, Some(t)) => {
                self.coarse += 1;
                Some((now_us / 1000).saturating_sub(t.millis().max(0) as u64) * 1000)
            }
            _ => None,
        }
    }

    /// Moves the buffered samples and counts into the shared figures.
    fn flush(&mut self) {
        if self.batch.is_empty() && self.delivered == 0 {
            return;
        }
        let (shared, url) = (self.shared, self.url);
        shared
            .delivered
            .fetch_add(self.delivered, Ordering::Relaxed);
        shared.urls[url]
            .delivered
            .fetch_add(self.delivered, Ordering::Relaxed);
        for histogram in [&shared.latency, &shared.urls[url].latency] {
            let mut h = histogram.lock().expect("latency lock");
            for (_, us) in &self.batch {
                h.saturating_record((*us).clamp(1, MAX_LATENCY_US));
            }
        }
        let delivered = std::mem::take(&mut self.delivered);
        let mut timeline = shared.timeline.lock().expect("timeline lock");
        timeline.delivered(shared.started.elapsed(), url, delivered);
        for (ms, us) in self.batch.drain(..) {
            timeline.latency(Duration::from_millis(ms.into()), url, us);
        }
    }

    /// The last flush, and what the connection saw.
    fn finish(mut self, org: usize, start_seq: Option<u64>) -> ConnResult {
        self.flush();
        let shared = self.shared;
        shared.precise.fetch_add(self.precise, Ordering::Relaxed);
        shared.coarse.fetch_add(self.coarse, Ordering::Relaxed);
        shared.closed(self.url);
        ConnResult {
            org,
            start_seq,
            seqs: self.seqs,
            first_us: self.first_us,
            last_us: self.last_us,
        }
    }
}
