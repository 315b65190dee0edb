//! The local fan-out: how one event reaches the sockets of its organization on this
//! instance, as uWebSockets' `publish` does it.
//!
//! - A frame is framed once (`bus::Frame` holds the wire bytes); the same bytes are
//!   written to every socket.
//! - The sockets of an organization are spread over [shards](Shard), one thread
//!   each (one per core). A publish hands the frame to every shard's thread in
//!   order; each thread writes it to its sockets with a non-blocking write.
//! - A socket whose outgoing queue is empty takes the frame straight into its
//!   kernel buffer: its task is not woken. Only when the kernel buffer is full
//!   (backpressure) do the rest of the bytes go to the socket's own queue and its
//!   task wakes up to drain it. A socket whose queue grows past its bounds
//!   (`--lag-limit` frames, `--max-queued-bytes`) stops taking frames: its task
//!   writes what it has queued and closes it with 1013 and the `since` to resume
//!   from.
//! - Frames carry their `seq`: a socket takes each one once and in order, drops
//!   one it already has (replayed at subscribe) and counts a gap as loss.
//!
//! The socket's own frames (CONNECTED, replay, pings, pongs, closes) go through the
//! same [`Outlet`], by way of [`SocketIo`], so that everything written to one
//! socket is written in order.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use super::metrics::Metrics;

/// One serialised event, shared by every subscriber of its organization.
#[derive(Clone, Debug)]
pub struct Frame {
    pub seq: u64,
    /// When it was published, for the broadcast-latency metric.
    pub published: Instant,
    /// The whole WebSocket text frame (header and JSON payload) as it goes on the
    /// wire. Server frames are not masked, so these bytes are the same for every
    /// subscriber: framed once at publish, written as they are to every socket.
    wire: Bytes,
    /// Where the JSON payload starts in `wire`.
    header: u8,
}

impl Frame {
    pub fn new(seq: u64, text: String) -> Frame {
        let header = FrameHeader {
            is_final: true,
            opcode: OpCode::Data(Data::Text),
            ..FrameHeader::default()
        };
        let len = header.len(text.len() as u64);
        let mut wire = Vec::with_capacity(len + text.len());
        header
            .format(text.len() as u64, &mut wire)
            .expect("a frame header formats into memory");
        wire.extend_from_slice(text.as_bytes());
        Frame {
            seq,
            published: Instant::now(),
            wire: Bytes::from(wire),
            header: len as u8,
        }
    }

    /// The size of the JSON text in bytes (what history and queues are bounded by).
    pub fn size(&self) -> usize {
        self.wire.len() - usize::from(self.header)
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.wire[usize::from(self.header)..])
            .expect("a frame holds the text it was made from")
    }

    /// The framed bytes; cloning them copies nothing.
    pub(crate) fn wire(&self) -> &Bytes {
        &self.wire
    }
}

/// Most queued chunks one write takes (an `iovec` array on the stack of the kernel).
const WRITE_SLICES: usize = 64;
/// Most jobs a shard takes at once: consecutive frames of one organization go to
/// each socket in one write.
const JOB_BATCH: usize = 64;

/// Jobs waiting for one shard before a publisher waits for it (bounded memory; the
/// burst publisher's `make_room` keeps well below it).
const SHARD_QUEUE: usize = 8192;

/// How much one socket may have queued before it is closed as too slow.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Event frames.
    pub frames: usize,
    /// Bytes (event frames and the socket's own).
    pub bytes: usize,
}

/// What a shard's thread does, in order.
enum Job {
    Frame {
        org: Arc<str>,
        /// The epoch the frame belongs to, where the bus can change it under a
        /// subscriber (Redis); `None`: never.
        epoch: Option<Arc<str>>,
        frame: Frame,
    },
    /// Continuity of `org` is lost (its sockets should resume).
    Interrupt { org: Arc<str>, lost: u64 },
    /// Answered once every earlier job is done (tests).
    #[cfg(any(test, feature = "fuzzing"))]
    Barrier(mpsc::Sender<()>),
}

type Members = Mutex<HashMap<Arc<str>, Vec<Arc<Outlet>>>>;

/// One worker thread and the sockets it writes to.
struct Shard {
    members: Arc<Members>,
    jobs: mpsc::SyncSender<Job>,
    /// Jobs sent and not yet done.
    backlog: Arc<AtomicUsize>,
}

/// How congested an organization's sockets are: how many of them have more than
/// half their bound queued. Burst publishers wait on it (`Hub::make_room`).
struct Gauge {
    congested: AtomicUsize,
    drained: Arc<Notify>,
}

struct OrgEntry {
    gauge: Arc<Gauge>,
    members: usize,
}

/// The local fan-out of one server.
pub struct Hub {
    shards: Vec<Shard>,
    limits: Limits,
    orgs: Mutex<HashMap<Arc<str>, OrgEntry>>,
    next_shard: AtomicUsize,
    /// A socket drained below half its bound, or a shard caught up.
    drained: Arc<Notify>,
}

impl Hub {
    /// A hub with one shard per core.
    pub fn new(limits: Limits, metrics: Arc<Metrics>) -> Arc<Hub> {
        let shards = std::thread::available_parallelism().map_or(1, |n| n.get());
        Hub::with_shards(shards, limits, metrics)
    }

    pub fn with_shards(shards: usize, limits: Limits, metrics: Arc<Metrics>) -> Arc<Hub> {
        let limits = Limits {
            frames: limits.frames.max(1),
            bytes: limits.bytes.max(1),
        };
        let drained = Arc::new(Notify::new());
        let shards = (0..shards.max(1))
            .map(|i| {
                let (jobs, rx) = mpsc::sync_channel(SHARD_QUEUE);
                let shard = Shard {
                    members: Arc::default(),
                    jobs,
                    backlog: Arc::default(),
                };
                let work = ShardWork {
                    members: shard.members.clone(),
                    backlog: shard.backlog.clone(),
                    drained: drained.clone(),
                    metrics: metrics.clone(),
                };
                std::thread::Builder::new()
                    .name(format!("fanout-{i}"))
                    .spawn(move || work.run(rx))
                    .expect("a fan-out thread starts");
                shard
            })
            .collect();
        Arc::new(Hub {
            shards,
            limits,
            orgs: Mutex::default(),
            next_shard: AtomicUsize::new(0),
            drained,
        })
    }

    /// A new socket's outlet, writing to `io`, holding live frames until released.
    pub fn outlet(&self, io: impl AsyncWrite + Send + Unpin + 'static) -> Arc<Outlet> {
        Outlet::new(io, self.limits)
    }

    fn orgs(&self) -> MutexGuard<'_, HashMap<Arc<str>, OrgEntry>> {
        self.orgs.lock().expect("hub lock")
    }

    /// Adds `outlet` to the sockets of `org`: from now on it is offered every frame
    /// sent for `org` (it holds them until [`Outlet::release`]).
    pub fn join(self: &Arc<Self>, org: &str, outlet: &Arc<Outlet>) -> Member {
        let (org, gauge) = {
            let mut orgs = self.orgs();
            let name = match orgs.get_key_value(org) {
                Some((name, _)) => name.clone(),
                None => Arc::from(org),
            };
            let entry = orgs.entry(name.clone()).or_insert_with(|| OrgEntry {
                gauge: Arc::new(Gauge {
                    congested: AtomicUsize::new(0),
                    drained: self.drained.clone(),
                }),
                members: 0,
            });
            entry.members += 1;
            (name, entry.gauge.clone())
        };
        outlet.lock().gauge = Some(gauge);
        let shard = self.next_shard.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        let mut members = self.shards[shard].members.lock().expect("shard lock");
        let list = members.entry(org.clone()).or_default();
        outlet.slot.store(list.len(), Ordering::Relaxed);
        list.push(outlet.clone());
        Member {
            hub: self.clone(),
            org,
            shard,
            outlet: outlet.clone(),
        }
    }

    /// Offers `frame` to every socket of `org` on this instance. Calls for one
    /// organization must come in `seq` order (under the bus's lock): each shard
    /// keeps it.
    pub fn send(&self, org: &str, epoch: Option<&Arc<str>>, frame: &Frame) {
        self.to_shards(org, |org| Job::Frame {
            org,
            epoch: epoch.cloned(),
            frame: frame.clone(),
        });
    }

    /// Every socket of `org` lost `lost` events (continuity cannot be proven).
    pub fn interrupt(&self, org: &str, lost: u64) {
        self.to_shards(org, |org| Job::Interrupt { org, lost });
    }

    /// Hands every shard its job for `org`, if `org` has sockets here.
    fn to_shards(&self, org: &str, job: impl Fn(Arc<str>) -> Job) {
        let Some(org) = self.name_of(org) else {
            return;
        };
        for shard in &self.shards {
            shard.backlog.fetch_add(1, Ordering::Relaxed);
            if shard.jobs.send(job(org.clone())).is_err() {
                shard.backlog.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn name_of(&self, org: &str) -> Option<Arc<str>> {
        self.orgs().get_key_value(org).map(|(name, _)| name.clone())
    }

    /// Open sockets per organization, sorted by organization.
    pub fn connections(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = self
            .orgs()
            .iter()
            .map(|(org, entry)| (org.to_string(), entry.members))
            .collect();
        counts.sort();
        counts
    }

    /// Jobs the furthest-behind shard has yet to do.
    fn backlog(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.backlog.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// Waits until the sockets of `org` have room for more events (no socket more
    /// than half full, no shard more than half its bound behind), or until the
    /// slowest has held the burst up for `grace`; returns how many of `n` may go now.
    pub async fn make_room(&self, org: &str, n: usize, grace: Duration) -> usize {
        let n = n.max(1);
        let Some(gauge) = self.orgs().get(org).map(|e| e.gauge.clone()) else {
            return n;
        };
        let half = (self.limits.frames / 2).max(1);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            let backlog = self.backlog();
            if gauge.congested.load(Ordering::Relaxed) == 0 && backlog < half {
                return n.min(half - backlog).max(1);
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                // The slowest had its grace: it is overtaken (and closed on lagging).
                return n.min(self.limits.frames);
            }
        }
    }

    /// Waits until every job sent so far is done (tests).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn settle(&self) {
        for shard in &self.shards {
            let (tx, rx) = mpsc::channel();
            shard.backlog.fetch_add(1, Ordering::Relaxed);
            if shard.jobs.send(Job::Barrier(tx)).is_ok() {
                let _ = rx.recv();
            } else {
                shard.backlog.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// A shard thread's share of the hub.
struct ShardWork {
    members: Arc<Members>,
    backlog: Arc<AtomicUsize>,
    drained: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl ShardWork {
    fn run(self, jobs: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(JOB_BATCH);
        while let Ok(job) = jobs.recv() {
            batch.push(job);
            while batch.len() < JOB_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let done = batch.len();
            self.on(&mut batch);
            let left = self.backlog.fetch_sub(done, Ordering::Relaxed) - done;
            if left < SHARD_QUEUE / 2 {
                self.drained.notify_waiters();
            }
        }
    }

    /// Does `jobs` in order (and empties it): runs of frames of one organization are
    /// offered to each socket together.
    fn on(&self, jobs: &mut Vec<Job>) {
        let mut frames: Vec<(Frame, Option<Arc<str>>)> = Vec::new();
        let mut org: Option<Arc<str>> = None;
        for job in jobs.drain(..) {
            match job {
                Job::Frame {
                    org: of,
                    epoch,
                    frame,
                } => {
                    if org.as_ref().is_some_and(|o| !Arc::ptr_eq(o, &of)) {
                        self.deliver(org.take(), &mut frames);
                    }
                    org = Some(of);
                    frames.push((frame, epoch));
                }
                Job::Interrupt { org: of, lost } => {
                    self.deliver(org.take(), &mut frames);
                    let members = self.members.lock().expect("shard lock");
                    for outlet in members.get(&of).into_iter().flatten() {
                        outlet.interrupt(lost);
                    }
                }
                #[cfg(any(test, feature = "fuzzing"))]
                Job::Barrier(done) => {
                    self.deliver(org.take(), &mut frames);
                    let _ = done.send(());
                }
            }
        }
        self.deliver(org, &mut frames);
    }

    /// Offers a run of frames of `org` to its sockets on this shard.
    fn deliver(&self, org: Option<Arc<str>>, frames: &mut Vec<(Frame, Option<Arc<str>>)>) {
        let Some(org) = org else { return };
        if frames.is_empty() {
            return;
        }
        let members = self.members.lock().expect("shard lock");
        let taken: usize = members
            .get(&org)
            .into_iter()
            .flatten()
            .map(|outlet| outlet.offer(frames))
            .sum();
        drop(members);
        self.metrics.frames_sent.inc_by(taken as u64);
        if let Some((first, _)) = frames.first() {
            self.metrics
                .broadcast_latency
                .observe(first.published.elapsed().as_secs_f64());
        }
        frames.clear();
    }
}

/// A socket's place in the hub; leaving on drop.
pub struct Member {
    hub: Arc<Hub>,
    org: Arc<str>,
    shard: usize,
    outlet: Arc<Outlet>,
}

impl Drop for Member {
    fn drop(&mut self) {
        {
            let mut members = self.hub.shards[self.shard]
                .members
                .lock()
                .expect("shard lock");
            if let Some(list) = members.get_mut(&self.org) {
                let slot = self.outlet.slot.load(Ordering::Relaxed);
                if list.get(slot).is_some_and(|o| Arc::ptr_eq(o, &self.outlet)) {
                    list.swap_remove(slot);
                    if let Some(moved) = list.get(slot) {
                        moved.slot.store(slot, Ordering::Relaxed);
                    }
                }
                if list.is_empty() {
                    members.remove(&self.org);
                }
            }
        }
        {
            let mut out = self.outlet.lock();
            out.set_congested(false);
            out.gauge = None;
        }
        let mut orgs = self.hub.orgs();
        if let Some(entry) = orgs.get_mut(&self.org) {
            entry.members -= 1;
            if entry.members == 0 {
                orgs.remove(&self.org);
            }
        }
        drop(orgs);
        self.hub.drained.notify_waiters();
    }
}

/// Where an outlet is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Subscribed, opening frames not written yet: live frames are held.
    Held,
    /// Live frames are written (or queued) as they come.
    Live,
    /// Fell behind: takes nothing more; its task closes it with 1013.
    Lagged,
    /// A write failed: the socket is gone.
    Failed,
}

/// Bytes queued for a socket.
struct Chunk {
    bytes: Bytes,
    /// Part of an event frame (counted against the frame bound).
    frame: bool,
}

/// What a socket's task has to do, as its outlet says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Write what is queued (the kernel buffer was full).
    Drain,
    /// Close with 1013: `lost` events skipped, resume from `since`.
    Lagged { lost: u64, since: u64 },
    /// The socket failed to take a write.
    Failed,
}

struct Out {
    io: Box<dyn AsyncWrite + Send + Unpin>,
    queue: VecDeque<Chunk>,
    queued_bytes: usize,
    queued_frames: usize,
    held: VecDeque<(Frame, Option<Arc<str>>)>,
    held_bytes: usize,
    mode: Mode,
    /// The `seq` it takes next (live).
    next: u64,
    /// The last `seq` taken (written or queued).
    last: u64,
    /// Events it skipped since it fell behind.
    lost: u64,
    epoch: Option<Arc<str>>,
    /// Written but not flushed yet (a TLS stream's buffer).
    dirty: bool,
    gauge: Option<Arc<Gauge>>,
    congested: bool,
}

/// The writing side of one socket, shared by its task and the fan-out.
pub struct Outlet {
    out: Mutex<Out>,
    waker: AtomicWaker,
    limits: Limits,
    /// Its index in its shard's list of the organization (under the shard's lock).
    slot: AtomicUsize,
}

impl Outlet {
    fn new(io: impl AsyncWrite + Send + Unpin + 'static, limits: Limits) -> Arc<Outlet> {
        Arc::new(Outlet {
            out: Mutex::new(Out {
                io: Box::new(io),
                queue: VecDeque::new(),
                queued_bytes: 0,
                queued_frames: 0,
                held: VecDeque::new(),
                held_bytes: 0,
                mode: Mode::Held,
                next: 0,
                last: 0,
                lost: 0,
                epoch: None,
                dirty: false,
                gauge: None,
                congested: false,
            }),
            waker: AtomicWaker::new(),
            limits,
            slot: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Out> {
        self.out.lock().expect("outlet lock")
    }

    /// A live frame from the fan-out (a shard thread): written at once if nothing
    /// is queued, else queued within bounds. `true` if it was taken.
    /// Live frames from the fan-out (a shard thread), in order: queued within bounds
    /// and, if nothing was queued before, written at once in one (vectored) write
    /// with no waker; what the kernel does not take stays queued and wakes the
    /// socket's task. Returns how many were taken.
    fn offer(&self, frames: &[(Frame, Option<Arc<str>>)]) -> usize {
        let mut out = self.lock();
        let idle = out.queue.is_empty() && out.mode == Mode::Live;
        let mut wake = false;
        let mut taken = 0;
        for (frame, epoch) in frames {
            let (took, woke) = out.offer(frame, epoch.as_ref(), self.limits);
            taken += usize::from(took);
            wake |= woke;
        }
        if idle && !out.queue.is_empty() {
            let mut cx = Context::from_waker(Waker::noop());
            wake |= !matches!(out.poll_drain(&mut cx), Poll::Ready(Ok(())));
        }
        out.settle(self.limits);
        drop(out);
        if wake {
            self.waker.wake();
        }
        taken
    }

    fn interrupt(&self, lost: u64) {
        let mut out = self.lock();
        if matches!(out.mode, Mode::Held | Mode::Live) {
            out.lag(lost.max(1));
            drop(out);
            self.waker.wake();
        }
    }

    /// The opening frames are written up to `last`: live frames flow from here on,
    /// those held meanwhile first (the ones up to `last` are dropped: the replay
    /// had them). `epoch`: the one the socket's CONNECTED named, where frames of
    /// another mean loss.
    pub fn release(&self, last: u64, epoch: Option<Arc<str>>) {
        let mut out = self.lock();
        if out.mode != Mode::Held {
            return;
        }
        out.mode = Mode::Live;
        out.next = last + 1;
        out.last = last;
        out.epoch = epoch;
        out.held_bytes = 0;
        let held = std::mem::take(&mut out.held);
        for (frame, epoch) in held {
            out.offer(&frame, epoch.as_ref(), self.limits);
        }
        out.settle(self.limits);
    }

    /// Ready when the socket's task has something to do.
    pub fn poll_wanted(&self, cx: &mut Context<'_>) -> Poll<Want> {
        self.waker.register(cx.waker());
        let out = self.lock();
        match out.mode {
            Mode::Failed => Poll::Ready(Want::Failed),
            Mode::Lagged => Poll::Ready(Want::Lagged {
                lost: out.lost,
                since: out.last,
            }),
            Mode::Held | Mode::Live if !out.queue.is_empty() || out.dirty => {
                Poll::Ready(Want::Drain)
            }
            Mode::Held | Mode::Live => Poll::Pending,
        }
    }

    /// The socket's own bytes (from its WebSocket layer), after what is queued.
    fn poll_write_own(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut out = self.lock();
        if out.mode == Mode::Failed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if out.queue.is_empty() {
            match Pin::new(&mut out.io).poll_write(cx, buf) {
                Poll::Ready(Ok(n)) => {
                    out.dirty = true;
                    if n < buf.len() {
                        out.push(Bytes::copy_from_slice(&buf[n..]), false);
                    }
                }
                Poll::Pending => out.push(Bytes::copy_from_slice(buf), false),
                Poll::Ready(Err(e)) => {
                    out.fail();
                    return Poll::Ready(Err(e));
                }
            }
            return Poll::Ready(Ok(buf.len()));
        }
        if out.queued_bytes >= self.limits.bytes {
            // Full: take more only once some of it is written.
            match out.poll_drain(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending if out.queued_bytes >= self.limits.bytes => return Poll::Pending,
                Poll::Pending => {}
            }
        }
        out.push(Bytes::copy_from_slice(buf), false);
        Poll::Ready(Ok(buf.len()))
    }

    /// Writes everything queued and flushes.
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut out = self.lock();
        let result = out.poll_drain(cx);
        out.settle(self.limits);
        result
    }

    fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut out = self.lock();
        match out.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut out.io).poll_shutdown(cx),
            other => other,
        }
    }
}

impl Out {
    /// Takes a live frame into the queue (or the held frames); returns whether it
    /// was taken and whether the socket's task must wake up.
    fn offer(&mut self, frame: &Frame, epoch: Option<&Arc<str>>, limits: Limits) -> (bool, bool) {
        match self.mode {
            Mode::Failed => return (false, false),
            Mode::Lagged => {
                self.lost += 1;
                return (false, false);
            }
            Mode::Held => {
                if self.held.len() >= limits.frames || self.held_bytes + frame.size() > limits.bytes
                {
                    self.lag(1);
                    return (false, true);
                }
                self.held_bytes += frame.size();
                self.held.push_back((frame.clone(), epoch.cloned()));
                return (true, false);
            }
            Mode::Live => {}
        }
        if let (Some(mine), Some(theirs)) = (&self.epoch, epoch)
            && mine != theirs
        {
            self.lag(1);
            return (false, true);
        }
        if frame.seq < self.next {
            return (false, false);
        }
        if frame.seq > self.next {
            self.lag(frame.seq - self.next);
            return (false, true);
        }
        let wire = frame.wire();
        if self.queued_frames >= limits.frames || self.queued_bytes + wire.len() > limits.bytes {
            self.lag(1);
            return (false, true);
        }
        self.take(frame.seq);
        self.push(wire.clone(), true);
        (true, false)
    }

    /// Drops the first `n` written bytes from the queue.
    fn consume(&mut self, mut n: usize) {
        self.queued_bytes -= n;
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            if n < front.bytes.len() {
                front.bytes.advance(n);
                break;
            }
            n -= front.bytes.len();
            self.queued_frames -= usize::from(front.frame);
            self.queue.pop_front();
        }
    }

    fn take(&mut self, seq: u64) {
        self.next = seq + 1;
        self.last = seq;
    }

    fn push(&mut self, bytes: Bytes, frame: bool) {
        self.queued_bytes += bytes.len();
        self.queued_frames += usize::from(frame);
        self.queue.push_back(Chunk { bytes, frame });
    }

    /// Fell behind by `lost` events: takes nothing more (what is queued is still
    /// written before the close).
    fn lag(&mut self, lost: u64) {
        self.mode = Mode::Lagged;
        self.lost += lost;
        self.held.clear();
        self.held_bytes = 0;
        self.set_congested(false);
    }

    fn fail(&mut self) {
        self.mode = Mode::Failed;
        self.queue.clear();
        self.queued_bytes = 0;
        self.queued_frames = 0;
        self.held.clear();
        self.set_congested(false);
    }

    /// Writes the queue out (the task's waker is registered when it blocks).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.mode == Mode::Failed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        while !self.queue.is_empty() {
            // Everything queued (up to WRITE_SLICES chunks) in one write.
            let mut slices = [io::IoSlice::new(&[]); WRITE_SLICES];
            let mut count = 0;
            for (slice, chunk) in slices.iter_mut().zip(&self.queue) {
                *slice = io::IoSlice::new(&chunk.bytes);
                count += 1;
            }
            let written = Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]);
            match written {
                Poll::Ready(Ok(0)) => {
                    self.fail();
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    self.dirty = true;
                    self.consume(n);
                }
                Poll::Ready(Err(e)) => {
                    self.fail();
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.dirty = false;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                self.fail();
                Poll::Ready(Err(e))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Books whether the socket is more than half full.
    fn settle(&mut self, limits: Limits) {
        let full = matches!(self.mode, Mode::Held | Mode::Live)
            && (self.queued_frames > limits.frames / 2 || self.queued_bytes > limits.bytes / 2);
        self.set_congested(full);
    }

    fn set_congested(&mut self, congested: bool) {
        if self.congested == congested {
            return;
        }
        self.congested = congested;
        let Some(gauge) = &self.gauge else { return };
        if congested {
            gauge.congested.fetch_add(1, Ordering::Relaxed);
        } else {
            gauge.congested.fetch_sub(1, Ordering::Relaxed);
            gauge.drained.notify_waiters();
        }
    }
}

/// A socket as its WebSocket layer sees it: reads from the connection, writes
/// through its [`Outlet`] (after whatever the fan-out queued).
pub struct SocketIo<R> {
    read: R,
    outlet: Arc<Outlet>,
}

impl<R> SocketIo<R> {
    pub fn new(read: R, outlet: Arc<Outlet>) -> SocketIo<R> {
        SocketIo { read, outlet }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for SocketIo<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<R: Unpin> AsyncWrite for SocketIo<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.outlet.poll_write_own(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.outlet.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.outlet.poll_shutdown(cx)
    }
}

/// An outlet writing into memory, and the frames written to it (tests, fuzzing).
#[cfg(any(test, feature = "fuzzing"))]
pub mod capture {
    use super::*;

    /// Bytes written so far, and how many more it takes before it blocks (a
    /// kernel buffer that fills up); `None`: no bound.
    #[derive(Clone, Default)]
    pub struct Captured(Arc<Mutex<(Vec<u8>, Option<usize>)>>);

    impl AsyncWrite for Captured {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let mut inner = self.0.lock().expect("capture lock");
            let n = inner.1.map_or(buf.len(), |room| room.min(buf.len()));
            if n == 0 {
                return Poll::Pending;
            }
            if let Some(room) = &mut inner.1 {
                *room -= n;
            }
            inner.0.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl Captured {
        /// From now on it takes `room` more bytes (`None`: any).
        pub fn set_room(&self, room: Option<usize>) {
            self.0.lock().expect("capture lock").1 = room;
        }

        /// The text frames written so far, taken out.
        pub fn texts(&self) -> Vec<String> {
            use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
            let bytes = std::mem::take(&mut self.0.lock().expect("capture lock").0);
            let mut cursor = io::Cursor::new(&bytes[..]);
            let mut texts = Vec::new();
            while let Ok(Some((_, len))) = FrameHeader::parse(&mut cursor) {
                let start = cursor.position() as usize;
                let end = start + len as usize;
                texts.push(String::from_utf8_lossy(&bytes[start..end]).into_owned());
                cursor.set_position(end as u64);
            }
            texts
        }
    }

    /// A released outlet of `hub` writing into memory.
    pub fn outlet(hub: &Hub) -> (Arc<Outlet>, Captured) {
        let captured = Captured::default();
        (hub.outlet(captured.clone()), captured)
    }

    /// What the outlet's task does on `Drain`: writes the queue out, as far as it can.
    pub fn drain(outlet: &Outlet) {
        let mut cx = Context::from_waker(Waker::noop());
        let _ = outlet.poll_flush(&mut cx);
    }

    /// What the outlet's task would be told now, if anything.
    pub fn want(outlet: &Outlet) -> Option<Want> {
        let mut cx = Context::from_waker(Waker::noop());
        match outlet.poll_wanted(&mut cx) {
            Poll::Ready(want) => Some(want),
            Poll::Pending => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::capture::{self, Captured};
    use super::*;

    fn hub(frames: usize, bytes: usize) -> Arc<Hub> {
        Hub::with_shards(2, Limits { frames, bytes }, Arc::default())
    }

    fn frame(seq: u64) -> Frame {
        Frame::new(seq, format!("{{\"seq\":{seq}}}"))
    }

    fn seqs(captured: &Captured) -> Vec<u64> {
        captured
            .texts()
            .iter()
            .map(|t| {
                t.trim_start_matches("{\"seq\":")
                    .trim_end_matches('}')
                    .parse()
                    .unwrap()
            })
            .collect()
    }

    /// A socket of `org` released after `last`.
    fn live(hub: &Arc<Hub>, org: &str, last: u64) -> (Member, Arc<Outlet>, Captured) {
        let (outlet, captured) = capture::outlet(hub);
        let member = hub.join(org, &outlet);
        outlet.release(last, None);
        (member, outlet, captured)
    }

    #[test]
    fn a_socket_with_room_takes_frames_at_once_and_its_task_is_not_needed() {
        let hub = hub(16, 1 << 20);
        let (_m, outlet, captured) = live(&hub, "a", 0);
        for seq in 1..=5 {
            hub.send("a", None, &frame(seq));
        }
        hub.settle();
        assert_eq!(
            capture::want(&outlet),
            None,
            "nothing queued, nothing to do"
        );
        assert_eq!(seqs(&captured), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_full_kernel_buffer_queues_the_rest_in_order_for_the_task() {
        let hub = hub(16, 1 << 20);
        let (_m, outlet, captured) = live(&hub, "a", 0);
        // Room for one frame and a half.
        captured.set_room(Some(frame(1).wire().len() * 3 / 2));
        for seq in 1..=4 {
            hub.send("a", None, &frame(seq));
        }
        hub.settle();
        assert_eq!(capture::want(&outlet), Some(Want::Drain));
        captured.set_room(None);
        capture::drain(&outlet);
        assert_eq!(capture::want(&outlet), None);
        assert_eq!(
            seqs(&captured),
            [1, 2, 3, 4],
            "split frame written whole, in order"
        );
    }

    #[test]
    fn held_frames_the_replay_had_are_dropped_and_a_gap_is_loss() {
        let hub = hub(16, 1 << 20);
        let (outlet, captured) = capture::outlet(&hub);
        let _m = hub.join("a", &outlet);
        for seq in 3..=6 {
            hub.send("a", None, &frame(seq));
        }
        hub.settle();
        assert!(captured.texts().is_empty(), "held until released");
        // The replay went up to 4: 3 and 4 are not written twice.
        outlet.release(4, None);
        capture::drain(&outlet);
        assert_eq!(seqs(&captured), [5, 6]);
        // 7 never comes: 8 is a gap of one.
        hub.send("a", None, &frame(8));
        hub.settle();
        assert_eq!(
            capture::want(&outlet),
            Some(Want::Lagged { lost: 1, since: 6 })
        );
    }

    #[test]
    fn a_frame_of_another_epoch_is_loss() {
        let hub = hub(16, 1 << 20);
        let (outlet, captured) = capture::outlet(&hub);
        let _m = hub.join("a", &outlet);
        outlet.release(0, Some(Arc::from("e1")));
        hub.send("a", Some(&Arc::from("e1")), &frame(1));
        hub.send("a", Some(&Arc::from("e2")), &frame(2));
        hub.settle();
        assert_eq!(seqs(&captured), [1]);
        assert_eq!(
            capture::want(&outlet),
            Some(Want::Lagged { lost: 1, since: 1 })
        );
    }

    #[test]
    fn members_leave_their_shard_and_organization() {
        let hub = hub(16, 1 << 20);
        let sockets: Vec<_> = (0..5).map(|_| live(&hub, "a", 0)).collect();
        assert_eq!(hub.connections(), [("a".to_string(), 5)]);
        let mut sockets = sockets.into_iter();
        let (kept_member, _kept_outlet, kept) = sockets.next().unwrap();
        drop(sockets);
        hub.send("a", None, &frame(1));
        hub.settle();
        assert_eq!(seqs(&kept), [1]);
        assert_eq!(hub.connections(), [("a".to_string(), 1)]);
        drop(kept_member);
        assert!(hub.connections().is_empty());
        hub.send("a", None, &frame(2));
        hub.settle();
        assert!(kept.texts().is_empty(), "a member that left gets nothing");
    }

    #[tokio::test]
    async fn a_burst_waits_for_a_congested_socket_up_to_its_grace() {
        let hub = hub(8, 1 << 20);
        let (_m, _outlet, captured) = live(&hub, "a", 0);
        assert_eq!(
            hub.make_room("a", 100, Duration::ZERO).await,
            4,
            "half the bound"
        );
        captured.set_room(Some(0));
        for seq in 1..=6 {
            hub.send("a", None, &frame(seq));
        }
        hub.settle();
        let started = tokio::time::Instant::now();
        let grace = Duration::from_millis(50);
        assert_eq!(
            hub.make_room("a", 100, grace).await,
            8,
            "overtaken after the grace"
        );
        assert!(started.elapsed() >= grace);
    }
}
