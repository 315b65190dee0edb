//! The load subscribers. Each one opens its socket on a task of its own (open,
//! CONNECTED, under the handshake semaphore) and hands it to one of a few shards: a
//! shard is one task that reads all its sockets (a [`FuturesUnordered`] of them, so a
//! frame wakes no task of its own), keeps their counters, and closes them at the stop.
//! Each shard has a thread and a single-threaded runtime of its own, on which its
//! subscribers' handshakes run too (a socket is read by the runtime that opened it).
//!
//! The per-frame path is kept cheap so that the client measures the server and not
//! itself:
//! - a socket woken by the kernel reads every frame it has (up to [`READ_BATCH`])
//!   under one clock reading, taken when its first frame is read;
//! - after CONNECTED a socket is read by the load client's own reader (`wire`): each
//!   read lands in the shard's one read buffer and its frames are decoded there, so a
//!   socket holds no read buffer (only the start of a frame that a read cut off) and
//!   nothing is zeroed, copied or allocated per frame;
//! - each frame is read in place (a borrowed serde view of `seq`, `publishedAtUs` and
//!   `timestamp`), with no allocation;
//! - the latency samples and counts of all the shard's sockets gather in one batch,
//!   which reaches the shared histograms every [`FLUSH_EVERY`] samples, or at most
//!   [`FLUSH_IDLE`] after its first frame (one timer per shard, armed once per
//!   batch), so the live figures and the end of the drain do not wait for frames
//!   that may never come;
//! - no timer, task or cancellation future per socket: the shard watches the stop;
//! - while frames flow, a shard reads its sockets in rounds at most [`ROUND`] apart
//!   instead of being woken by the kernel for every few frames (on this kind of
//!   machine a wake-up costs more than reading ten frames): between two rounds its
//!   thread sleeps outside `epoll_wait`, so arrivals do not wake it, and the next
//!   round reads all of them. A frame is thus stamped about one round (at most
//!   [`ROUND`] plus the reading of the round) after it arrived; the first frame
//!   after a quiet spell wakes the shard at once.

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use futures_util::SinkExt;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_tungstenite::MaybeTlsStream;
use tokio_util::sync::CancellationToken;

use super::error::{ErrorKind, classify};
use super::wire::{self, Decoder, Incoming};
use super::{MAX_LATENCY_US, Shared, unix_us};
use crate::client::session::{Session, Started};
use crate::client::ws::{Opened, Stream};
use crate::client::{ClientOptions, Endpoint};
use crate::protocol::Timestamp;
use crate::seq::SeqTracker;

/// Latency samples a shard gathers before they reach the shared histograms.
pub const FLUSH_EVERY: usize = 1024;
/// Longest a shard keeps samples and counts before flushing them: one timer per
/// shard, armed once per batch (at its first frame), not per socket or per frame.
const FLUSH_IDLE: Duration = Duration::from_millis(20);
/// Frames after which a socket lets the others of its shard go first (checked between
/// reads; one read may bring many more).
const READ_BATCH: usize = 32;
/// The shard's read buffer, shared by its sockets: a read takes up to this much.
const SCRATCH: usize = 64 * 1024;
/// Most bytes of our own frames (pongs) held for a server that does not read them;
/// past it, pings go unanswered until it reads (a later pong answers them all).
const MAX_OUT: usize = 64 * 1024;
/// The longest a frame waits for its round while frames flow (the bound of the
/// stamps' lateness), and so the shortest time between two rounds.
const ROUND: Duration = Duration::from_millis(1);
/// Most missing `seq` numbers remembered per subscriber (to recognise late arrivals).
const MAX_MISSING: usize = 10_000;
/// How long a socket handed to its shard may take to send what tungstenite still holds
/// for it (a pong to a ping before CONNECTED): it normally takes nothing.
const HAND_OVER_WAIT: Duration = Duration::from_millis(200);
/// How long the subscribers told to stop wait for the server to answer their close:
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

/// The connection under a socket past CONNECTED.
type Connection = MaybeTlsStream<TcpStream>;

/// A socket past CONNECTED, on its way to a shard.
pub(super) struct Joined {
    io: Connection,
    /// What was read past CONNECTED.
    leftover: Vec<u8>,
    /// The largest frame and message accepted (`--max-message-size`).
    max_message: usize,
    url: usize,
    org: usize,
    start_seq: Option<u64>,
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
    /// The shard that reads the socket once it is up.
    pub shard: mpsc::UnboundedSender<Joined>,
}

impl Subscription {
    /// Opens the connection and hands it to its shard; nothing when it never reached
    /// CONNECTED (counted as failed) or was stopped before.
    ///
    /// Every subscription is spawned at the start and most wait for a handshake
    /// permit first: while they wait, the task holds only this small future. The
    /// handshake's state (about 12 KB: the stream's layers, tungstenite's handshake,
    /// TLS) is boxed once the permit is there, so it exists for the handshakes in
    /// flight only, and it is copied once, into its box, instead of with the task
    /// when it is spawned and when it ends.
    pub async fn run(self) {
        let Ok(permit) = self.pending.clone().acquire_owned().await else {
            return;
        };
        Box::pin(self.open(permit)).await;
    }

    async fn open(self, permit: OwnedSemaphorePermit) {
        let Some(session) = self.subscribe(permit).await else {
            return;
        };
        let Session {
            stream, connected, ..
        } = *session;
        let (io, leftover) = hand_over(stream).await;
        let joined = Joined {
            io,
            leftover,
            max_message: self.options.max_message,
            url: self.url,
            org: self.org,
            start_seq: connected.connected.seq,
        };
        if let Err(mpsc::error::SendError(mut joined)) = self.shard.send(joined) {
            // The shard has finished (the run is over): close it here.
            let mut out = Vec::new();
            wire::close(1000, "normal", &mut out);
            let bye = tokio::io::AsyncWriteExt::write_all(&mut joined.io, &out);
            let _ = tokio::time::timeout(STOP_CLOSE_WAIT, bye).await;
            self.shared.closed(self.url);
        }
    }

    /// Open → CONNECTED, holding the handshake semaphore's `permit`; `stop` cancels it.
    async fn subscribe(&self, permit: OwnedSemaphorePermit) -> Option<Box<Session>> {
        let _permit = permit;
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

/// Takes the connection from tungstenite, with what was read past CONNECTED (reads
/// were aligned on frames: its own buffer holds nothing more), once what it has to
/// send (a pong to a ping before CONNECTED) is sent.
async fn hand_over(mut stream: Stream) -> (Connection, Vec<u8>) {
    let _ = tokio::time::timeout(HAND_OVER_WAIT, stream.flush()).await;
    stream.into_inner().into_inner().into_parts()
}

/// A running shard, as the run sees it.
pub(super) struct ShardThread {
    /// Where its subscriptions hand their sockets over (dropped at the stop).
    pub inbox: mpsc::UnboundedSender<Joined>,
    /// Its runtime, where its subscriptions run.
    pub runtime: tokio::runtime::Handle,
    /// What its sockets saw, once it has closed them.
    pub results: oneshot::Receiver<Vec<ConnResult>>,
}

/// One task reading many subscribers' sockets until the stop.
pub(super) struct Shard {
    shared: Arc<Shared>,
    inbox: mpsc::UnboundedReceiver<Joined>,
    stop: CancellationToken,
}

impl Shard {
    /// Starts shard `index` on a thread and runtime of its own.
    pub fn spawn(
        index: usize,
        shared: Arc<Shared>,
        stop: CancellationToken,
    ) -> anyhow::Result<ShardThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("failed to start the runtime of a load shard")?;
        let handle = runtime.handle().clone();
        let (inbox, receiver) = mpsc::unbounded_channel();
        let (done, results) = oneshot::channel();
        let shard = Shard {
            shared,
            inbox: receiver,
            stop,
        };
        std::thread::Builder::new()
            .name(format!("load-shard-{index}"))
            .spawn(move || {
                // The shard's own budget is its rounds: tokio's would end a round
                // after 128 reads, with the rest of the ready sockets polled for
                // nothing.
                let seen = runtime.block_on(tokio::task::unconstrained(shard.run()));
                let _ = done.send(seen);
            })
            .context("failed to start the thread of a load shard")?;
        Ok(ShardThread {
            inbox,
            runtime: handle,
            results,
        })
    }

    /// Reads every socket handed over until `stop`; then takes the sockets still
    /// being handed over (until every sender is gone), closes them all, and returns
    /// what each saw.
    pub async fn run(mut self) -> Vec<ConnResult> {
        let batch = Arc::new(Mutex::new(Batch::new(self.shared.clone())));
        let mut conns = FuturesUnordered::new();
        let mut results = Vec::new();
        let stopped = self.stop.cancelled();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                biased;
                () = &mut stopped => break,
                joined = self.inbox.recv() => match joined {
                    Some(joined) => {
                        conns.push(Conn::new(joined, batch.clone(), self.stop.clone()));
                    }
                    // The run is gone without a stop (it failed): stop all the same.
                    None => break,
                },
                Some(result) = std::future::poll_fn(|cx| round(&mut conns, &batch, cx)) => {
                    results.push(result);
                }
                // Polled after the round (biased), so a round's first samples arm it.
                () = std::future::poll_fn(|cx| lock(&batch).poll_due(cx)) => {
                    lock(&batch).flush();
                }
            }
        }
        while let Some(joined) = self.inbox.recv().await {
            conns.push(Conn::new(joined, batch.clone(), self.stop.clone()));
        }
        let mut open: Vec<Conn> = conns.into_iter().collect();
        let closes: FuturesUnordered<_> = open.iter_mut().map(Conn::close).collect();
        let _ = tokio::time::timeout(STOP_CLOSE_WAIT, closes.count()).await;
        lock(&batch).flush();
        results.extend(open.into_iter().map(Conn::finish));
        results
    }
}

/// One round over the shard's woken sockets; while frames flow, the thread then
/// sleeps until [`ROUND`] after the round began (see the module's doc).
fn round(
    conns: &mut FuturesUnordered<Conn>,
    batch: &Mutex<Batch>,
    cx: &mut Context<'_>,
) -> Poll<Option<ConnResult>> {
    let began = Instant::now();
    let polled = conns.poll_next_unpin(cx);
    if polled.is_pending() {
        let mut b = lock(batch);
        let (frames, more) = (
            std::mem::take(&mut b.round_frames),
            std::mem::take(&mut b.more),
        );
        drop(b);
        // A socket that stopped at READ_BATCH frames is already due again.
        if frames > 0 && !more {
            std::thread::sleep(ROUND.saturating_sub(began.elapsed()));
        }
    }
    polled
}

fn lock(batch: &Mutex<Batch>) -> std::sync::MutexGuard<'_, Batch> {
    batch.lock().expect("batch lock")
}

/// The fields the load client reads from each frame; everything else is skipped.
#[derive(Deserialize)]
struct Lite<'a> {
    seq: Option<u64>,
    #[serde(rename = "publishedAtUs")]
    published_at_us: Option<u64>,
    /// Borrowed, and parsed only when there is no `publishedAtUs`.
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
}

/// The samples and counts of a shard's sockets not yet in the shared figures.
struct Batch {
    shared: Arc<Shared>,
    /// Per URL: (millisecond of the run, latency in µs).
    samples: Vec<Vec<(u32, u64)>>,
    /// Samples over every URL.
    len: usize,
    /// Per URL, frames received.
    delivered: Vec<u64>,
    precise: u64,
    coarse: u64,
    /// Frames read in the current round.
    round_frames: u64,
    /// A socket of the round stopped at [`READ_BATCH`] frames with more to read.
    more: bool,
    /// When the batch is due (armed at its first frame, [`FLUSH_IDLE`] later).
    due: Pin<Box<tokio::time::Sleep>>,
    armed: bool,
    /// The shard's read buffer: each socket's reads land here (see [`Conn::read`]).
    scratch: Vec<u8>,
}

impl Batch {
    fn new(shared: Arc<Shared>) -> Batch {
        let urls = shared.urls.len();
        Batch {
            shared,
            samples: vec![Vec::new(); urls],
            len: 0,
            delivered: vec![0; urls],
            precise: 0,
            coarse: 0,
            round_frames: 0,
            more: false,
            due: Box::pin(tokio::time::sleep(FLUSH_IDLE)),
            armed: false,
            scratch: vec![0; SCRATCH],
        }
    }

    fn pending(&self) -> bool {
        self.len > 0 || self.delivered.iter().any(|&d| d > 0)
    }

    /// Ready when the batch is due; arms the timer at the batch's first frame.
    fn poll_due(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.pending() {
            return Poll::Pending;
        }
        if !self.armed {
            let at = tokio::time::Instant::now() + FLUSH_IDLE;
            self.due.as_mut().reset(at);
            self.armed = true;
        }
        self.due.as_mut().poll(cx)
    }

    /// Receive time minus publish time: `publishedAtUs` when present, else the
    /// millisecond `timestamp` (`Err`: a `timestamp` that is not one).
    fn latency(&mut self, lite: &Lite, now_us: u64) -> Result<Option<u64>, ()> {
        match (lite.published_at_us, &lite.timestamp) {
            (Some(published), _) => {
                self.precise += 1;
                Ok(Some(now_us.saturating_sub(published)))
            }
            (None, Some(t)) => {
                let t: Timestamp = t.parse().map_err(drop)?;
                self.coarse += 1;
                Ok(Some(
                    (now_us / 1000).saturating_sub(t.millis().max(0) as u64) * 1000,
                ))
            }
            _ => Ok(None),
        }
    }

    /// Moves the samples and counts into the shared figures (each lock once).
    fn flush(&mut self) {
        if !self.pending() {
            return;
        }
        let shared = &*self.shared;
        let at = shared.started.elapsed();
        let mut timeline = shared.timeline.lock().expect("timeline lock");
        for (url, samples) in self.samples.iter_mut().enumerate() {
            let delivered = std::mem::take(&mut self.delivered[url]);
            if delivered == 0 && samples.is_empty() {
                continue;
            }
            shared.delivered.fetch_add(delivered, Ordering::Relaxed);
            shared.urls[url]
                .delivered
                .fetch_add(delivered, Ordering::Relaxed);
            for histogram in [&shared.latency, &shared.urls[url].latency] {
                let mut h = histogram.lock().expect("latency lock");
                for (_, us) in samples.iter() {
                    h.saturating_record((*us).clamp(1, MAX_LATENCY_US));
                }
            }
            timeline.delivered(at, url, delivered);
            for (ms, us) in samples.drain(..) {
                timeline.latency(Duration::from_millis(ms.into()), url, us);
            }
        }
        drop(timeline);
        self.len = 0;
        self.armed = false;
        shared
            .precise
            .fetch_add(std::mem::take(&mut self.precise), Ordering::Relaxed);
        shared
            .coarse
            .fetch_add(std::mem::take(&mut self.coarse), Ordering::Relaxed);
    }
}

/// One socket of a shard: a future that reads whatever frames have arrived each time
/// the socket is woken, and ends with the connection.
struct Conn {
    io: Connection,
    decoder: Decoder,
    /// Our frames not yet written (pongs, the close), masked.
    out: Vec<u8>,
    /// We sent our close: frames are no longer counted, and the server's close or
    /// the end of the connection ends the socket without an error.
    closing: bool,
    /// The bytes read past CONNECTED are not decoded yet (they may hold whole
    /// frames: the server's opening ping, events); after them, the decoder keeps
    /// only the start of a frame.
    leftover: bool,
    state: ConnState,
    batch: Arc<Mutex<Batch>>,
    stop: CancellationToken,
}

/// What a socket counts.
struct ConnState {
    url: usize,
    org: usize,
    start_seq: Option<u64>,
    seqs: SeqTracker,
    first_us: Option<u64>,
    last_us: Option<u64>,
}

/// How a connection ended, as its reader saw it.
enum Ended {
    /// The server closed it (with its code, if any).
    Closed(Option<u16>),
    /// It ended without a close frame, or a read or write failed.
    Lost,
    /// The server broke the protocol or the client's limit.
    Violation,
}

impl Conn {
    fn new(joined: Joined, batch: Arc<Mutex<Batch>>, stop: CancellationToken) -> Conn {
        let Joined {
            io,
            leftover,
            max_message,
            url,
            org,
            start_seq,
        } = joined;
        Conn {
            io,
            leftover: !leftover.is_empty(),
            decoder: Decoder::new(leftover, max_message),
            out: Vec::new(),
            closing: false,
            state: ConnState::new(url, org, start_seq),
            batch,
            stop,
        }
    }

    /// What the connection saw (at the stop); it counts as closed from now on.
    fn finish(self) -> ConnResult {
        let shared = lock(&self.batch).shared.clone();
        self.state.finish(&shared)
    }

    /// Sends our close (1000) and reads until the server's close or the end,
    /// counting nothing more; the caller bounds the wait.
    async fn close(&mut self) {
        wire::close(1000, "normal", &mut self.out);
        self.closing = true;
        std::future::poll_fn(|cx| {
            let batch = self.batch.clone();
            let mut batch = lock(&batch);
            self.read(cx, &mut batch).map(drop)
        })
        .await;
    }

    /// Writes what is queued of our frames, as far as the socket takes it (nothing to
    /// do, without even a buffer, on the path of every read).
    fn poll_out(&mut self, cx: &mut Context<'_>) -> Result<(), ()> {
        if self.out.capacity() == 0 {
            return Ok(());
        }
        while !self.out.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Err(()),
                Poll::Ready(Ok(n)) => {
                    self.out.drain(..n);
                }
                Poll::Pending => return Ok(()),
            }
        }
        // TLS may hold what was written (a plain socket has nothing to flush): until
        // it is flushed, the empty buffer stays, so that the next turn flushes again.
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(Err(_)) => Err(()),
            Poll::Pending => Ok(()),
            Poll::Ready(Ok(())) => {
                // Pongs are rare: an idle socket holds no buffer for them.
                self.out = Vec::new();
                Ok(())
            }
        }
    }

    /// Reads and decodes what has arrived, until the socket has nothing more (or has
    /// had its turn); ready when the connection is over.
    fn read(&mut self, cx: &mut Context<'_>, batch: &mut Batch) -> Poll<Ended> {
        if self.poll_out(cx).is_err() {
            return Poll::Ready(Ended::Lost);
        }
        let mut scratch = std::mem::take(&mut batch.scratch);
        let ended = self.read_into(cx, batch, &mut scratch);
        batch.scratch = scratch;
        if ended.is_pending() && self.poll_out(cx).is_err() {
            return Poll::Ready(Ended::Lost);
        }
        ended
    }

    fn read_into(
        &mut self,
        cx: &mut Context<'_>,
        batch: &mut Batch,
        scratch: &mut [u8],
    ) -> Poll<Ended> {
        let mut now_us = None;
        let mut frames = 0;
        if std::mem::take(&mut self.leftover) {
            let input = self.decoder.take_partial();
            let stamp = *now_us.get_or_insert_with(|| unix_us(SystemTime::now()));
            if let Some(ended) = self.decode(&input, stamp, batch, &mut frames) {
                return Poll::Ready(ended);
            }
        }
        loop {
            if frames >= READ_BATCH {
                // More may be waiting: after the shard's other sockets, with a fresh
                // clock reading.
                cx.waker().wake_by_ref();
                batch.more = true;
                return Poll::Pending;
            }
            let kept = self.decoder.partial().len();
            let large = self
                .decoder
                .pending_frame()
                .filter(|&whole| whole > scratch.len());
            let read = match large {
                // A frame longer than the shard's buffer: it is read into the
                // socket's kept bytes, then decoded from there.
                Some(whole) => match read_more(&mut self.io, cx, self.decoder.kept_mut(), whole) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        return Poll::Ready(Ended::Lost);
                    }
                    Poll::Ready(Ok(_)) if self.decoder.partial().len() < whole => continue,
                    Poll::Ready(Ok(_)) => {
                        let stamp = *now_us.get_or_insert_with(|| unix_us(SystemTime::now()));
                        let input = self.decoder.take_partial();
                        self.decode(&input, stamp, batch, &mut frames)
                    }
                },
                None => {
                    scratch[..kept].copy_from_slice(self.decoder.partial());
                    let mut buf = ReadBuf::new(&mut scratch[kept..]);
                    match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(_)) => return Poll::Ready(Ended::Lost),
                        Poll::Ready(Ok(())) => {}
                    }
                    let n = buf.filled().len();
                    if n == 0 {
                        return Poll::Ready(Ended::Lost);
                    }
                    let stamp = *now_us.get_or_insert_with(|| unix_us(SystemTime::now()));
                    self.decode(&scratch[..kept + n], stamp, batch, &mut frames)
                }
            };
            if let Some(ended) = read {
                return Poll::Ready(ended);
            }
        }
    }

    /// Decodes `input`; `Some` when the connection ends with it.
    fn decode(
        &mut self,
        input: &[u8],
        now_us: u64,
        batch: &mut Batch,
        frames: &mut usize,
    ) -> Option<Ended> {
        let Conn {
            decoder,
            out,
            closing,
            state,
            ..
        } = self;
        let mut closed = None;
        let decoded = decoder.decode(input, |frame| {
            *frames += 1;
            batch.round_frames += 1;
            match frame {
                Incoming::Text(text) if !*closing => state.on_text(text, now_us, batch),
                Incoming::Ping(payload) if out.len() < MAX_OUT => wire::pong(payload, out),
                Incoming::Close(code) => {
                    closed = Some(code);
                    return ControlFlow::Break(());
                }
                _ => {}
            }
            ControlFlow::Continue(())
        });
        match decoded {
            Err(_) => Some(Ended::Violation),
            Ok(_) => closed.map(|code| {
                if !*closing {
                    // Answer the close; the connection ends with it.
                    wire::close(code.unwrap_or(1000), "", out);
                }
                Ended::Closed(code)
            }),
        }
    }
}

/// Reads into `buf`'s spare room, up to `whole` bytes in all. The room grows with what
/// arrives (at most [`SCRATCH`] more per read), not with what the header announced: a
/// server announcing large frames and sending them slowly holds little of our memory.
fn read_more(
    io: &mut Connection,
    cx: &mut Context<'_>,
    buf: &mut Vec<u8>,
    whole: usize,
) -> Poll<std::io::Result<usize>> {
    let missing = (whole - buf.len()).min(SCRATCH);
    buf.reserve(missing);
    let spare = &mut buf.spare_capacity_mut()[..missing];
    let mut read = ReadBuf::uninit(spare);
    match Pin::new(io).poll_read(cx, &mut read) {
        Poll::Ready(Ok(())) => {
            let n = read.filled().len();
            // SAFETY: `read` initialised the first `n` bytes of the spare room.
            unsafe { buf.set_len(buf.len() + n) };
            Poll::Ready(Ok(n))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

impl Future for Conn {
    type Output = ConnResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ConnResult> {
        let this = self.get_mut();
        let batch = this.batch.clone();
        let mut batch = lock(&batch);
        let ended = match this.read(cx, &mut batch) {
            Poll::Pending => {
                if batch.len >= FLUSH_EVERY {
                    batch.flush();
                }
                return Poll::Pending;
            }
            Poll::Ready(ended) => ended,
        };
        if !this.stop.is_cancelled() {
            batch.shared.error(match ended {
                Ended::Closed(code) => ErrorKind::ClosedByServer(code),
                Ended::Lost => ErrorKind::ConnectionLost,
                Ended::Violation => ErrorKind::Protocol,
            });
        }
        // Our answer to a close, best effort: the socket is dropped after.
        let _ = this.poll_out(cx);
        // The connection ended: what it saw leaves with it (a dummy stays behind).
        let state = &mut this.state;
        let finished = std::mem::replace(state, ConnState::new(state.url, state.org, None));
        Poll::Ready(finished.finish(&batch.shared))
    }
}

impl ConnState {
    fn new(url: usize, org: usize, start_seq: Option<u64>) -> ConnState {
        ConnState {
            url,
            org,
            start_seq,
            seqs: SeqTracker::expecting(start_seq.map(|s| s.saturating_add(1)))
                .remembering(MAX_MISSING),
            first_us: None,
            last_us: None,
        }
    }

    /// What the connection saw; it counts as closed from now on.
    fn finish(self, shared: &Shared) -> ConnResult {
        shared.closed(self.url);
        ConnResult {
            org: self.org,
            start_seq: self.start_seq,
            seqs: self.seqs,
            first_us: self.first_us,
            last_us: self.last_us,
        }
    }

    /// The hot path: no allocation, one borrowed parse.
    fn on_text(&mut self, text: &str, now_us: u64, batch: &mut Batch) {
        batch.delivered[self.url] += 1;
        self.first_us.get_or_insert(now_us);
        self.last_us = Some(now_us);
        let Ok(lite) = serde_json::from_str::<Lite>(text) else {
            batch.shared.error(ErrorKind::MalformedFrame);
            return;
        };
        let Ok(latency) = batch.latency(&lite, now_us) else {
            batch.shared.error(ErrorKind::MalformedFrame);
            return;
        };
        if let Some(seq) = lite.seq {
            self.seqs.on(seq);
        }
        if let Some(us) = latency {
            let ms = (now_us.saturating_sub(batch.shared.started_us) / 1000) as u32;
            batch.samples[self.url].push((ms, us));
            batch.len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `batch` is due now (polled once, as the shard does).
    fn due(batch: &mut Batch) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        batch.poll_due(&mut cx).is_ready()
    }

    fn lite(json: &str) -> Lite<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_subscription_waiting_for_its_permit_holds_a_small_future() {
        let (shard, _inbox) = mpsc::unbounded_channel();
        let at = |u: &str| url::Url::parse(u).unwrap();
        let subscription = Subscription {
            org: 0,
            url: 0,
            endpoint: Endpoint {
                org: "org".into(),
                socket: at("ws://127.0.0.1:1/api/ws/sync/org"),
                api: at("http://127.0.0.1:1/"),
            },
            options: ClientOptions {
                token: None,
                token_in: crate::client::TokenIn::Header,
                token_param: "token".into(),
                origin: None,
                subprotocols: Vec::new(),
                headers: Vec::new(),
                tls: Arc::new(crate::client::tls::Tls::new(None, false).unwrap()),
                connect_timeout: Duration::from_secs(1),
                max_message: 1 << 20,
                max_body: 1 << 20,
                ws_config: None,
                frame_aligned: true,
            },
            shared: Arc::new(Shared::new(1, 1)),
            pending: Arc::new(Semaphore::new(1)),
            stop: CancellationToken::new(),
            connected_within: Duration::from_secs(1),
            shard,
        };
        // 10,000 of them wait at the start of a run; the handshake inline was 12.5 KB.
        let waiting = std::mem::size_of_val(&subscription.run());
        assert!(waiting < 2048, "a waiting subscription is {waiting} bytes");
    }

    #[tokio::test]
    async fn latency_is_measured_from_published_at_us_else_from_the_timestamp() {
        let mut batch = Batch::new(Arc::new(Shared::new(1, 1)));
        let now_us = 1_764_324_001_250_000;
        let precise = lite(r#"{"seq":1,"publishedAtUs":1764324001000000,"timestamp":"bad"}"#);
        assert_eq!(batch.latency(&precise, now_us), Ok(Some(250_000)));
        let coarse = lite(r#"{"seq":2,"timestamp":"2025-11-28T10:00:01.000Z"}"#);
        assert_eq!(batch.latency(&coarse, now_us), Ok(Some(250_000)));
        let broken = lite(r#"{"seq":3,"timestamp":"yesterday"}"#);
        assert_eq!(batch.latency(&broken, now_us), Err(()));
        assert_eq!(batch.latency(&lite(r#"{"seq":4}"#), now_us), Ok(None));
        assert_eq!((batch.precise, batch.coarse), (1, 1));
    }

    #[tokio::test]
    async fn frames_are_counted_and_a_frame_that_is_not_json_is_an_error() {
        let shared = Arc::new(Shared::new(1, 2));
        let mut batch = Batch::new(shared.clone());
        let mut conn = ConnState::new(1, 0, Some(0));
        let now_us = unix_us(SystemTime::now());
        let event =
            |seq: u64| format!(r#"{{"type":"SYNC_QUEUED","seq":{seq},"publishedAtUs":{now_us}}}"#);
        for text in [event(1), "not json".into(), event(3), event(2)] {
            conn.on_text(&text, now_us, &mut batch);
        }
        assert_eq!(batch.delivered, [0, 4]);
        assert_eq!((batch.len, batch.samples[1].len()), (3, 3));
        assert_eq!(
            (conn.seqs.unique, conn.seqs.late, conn.seqs.duplicates),
            (3, 1, 0)
        );
        let errors = shared.errors.lock().unwrap().clone();
        assert_eq!(errors.get(&ErrorKind::MalformedFrame), Some(&1));
        assert_eq!(conn.first_us, Some(now_us));
    }

    #[tokio::test]
    async fn a_flush_moves_counts_and_samples_into_the_shared_figures() {
        let shared = Arc::new(Shared::new(1, 2));
        let mut batch = Batch::new(shared.clone());
        assert!(!batch.pending());
        batch.delivered[1] = 5;
        batch.samples[1].extend([(10, 1_000), (11, 2_000)]);
        batch.len = 2;
        batch.precise = 2;
        batch.flush();
        assert!(!batch.pending());
        assert!(batch.samples[1].is_empty());
        assert_eq!(shared.delivered.load(Ordering::Relaxed), 5);
        assert_eq!(shared.urls[1].delivered.load(Ordering::Relaxed), 5);
        assert_eq!(shared.urls[0].delivered.load(Ordering::Relaxed), 0);
        assert_eq!(shared.latency.lock().unwrap().len(), 2);
        assert_eq!(shared.urls[1].latency.lock().unwrap().len(), 2);
        assert_eq!(shared.precise.load(Ordering::Relaxed), 2);
        assert_eq!(shared.progress().delivered, 5);
    }

    #[tokio::test]
    async fn a_batch_is_due_flush_idle_after_its_first_frame_not_after_each() {
        let mut batch = Batch::new(Arc::new(Shared::new(1, 1)));
        // Nothing to flush: not due, and no timer armed.
        assert!(!due(&mut batch));
        assert!(!batch.armed);
        let before = tokio::time::Instant::now();
        batch.delivered[0] = 1;
        assert!(!due(&mut batch));
        assert!(batch.armed);
        let deadline = batch.due.deadline();
        assert!(deadline >= before + FLUSH_IDLE, "{deadline:?}");
        batch.delivered[0] = 2;
        assert!(!due(&mut batch));
        assert_eq!(batch.due.deadline(), deadline, "not re-armed per frame");
        batch.flush();
        assert!(!batch.armed);
        assert!(!due(&mut batch));
    }
}
