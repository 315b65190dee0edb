//! The in-process [`EventBus`]: one process serves alone, with no external
//! dependency. Per-organization numbering (`seq`, `epoch`), the bounded history that
//! `?since=` replays from, and fan-out to the open sockets of the organization.
//!
//! Each event is serialised once, when it is published, and every subscriber gets a
//! reference-counted copy of the same bytes. Fan-out goes through one ring per
//! organization that holds only the frames some subscriber has yet to read: it is
//! empty without subscribers and grows with use, up to `lag_limit` frames and
//! `max_queued_bytes` bytes. A subscriber that falls further behind loses the oldest
//! frames (`Lagged`) and is closed so it can resume with `since`. A large burst
//! ([`EventBus::make_room`]) waits for the subscribers to drain, up to `slow_grace`
//! for the slowest, so a reader that keeps up is never overtaken by it.
//!
//! Memory is bounded per organization and in total: history by count and bytes per
//! organization and by bytes across them (the oldest frames of any organization go
//! first); a room with no subscriber and no retained history is freed, so the next
//! event of that organization starts a new epoch.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use serde_json::Map;
use tokio::sync::Notify;

use super::bus::{BusFuture, Draft, EventBus, Frame, LiveStream, Received, Resume, Subscription};
use super::metrics::Metrics;
use crate::protocol::{Connected, SyncEvent, Timestamp};

/// Frames a subscriber takes from its ring under one lock.
const TAKE_BATCH: usize = 64;

/// One subscriber's place in its room's ring.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    /// The `seq` it reads next.
    next: u64,
    /// Events it lost because the ring overflowed, not yet reported (it is closed
    /// on learning it).
    lost: u64,
}

struct RoomState {
    seq: u64,
    history: VecDeque<Frame>,
    history_bytes: usize,
    /// Frames some subscriber has not read yet, oldest first.
    ring: VecDeque<Frame>,
    ring_bytes: usize,
    cursors: HashMap<u64, Cursor>,
    next_id: u64,
    /// Freed: a publisher or subscriber holding it looks the room up again.
    dead: bool,
}

impl RoomState {
    /// Drops ring frames every subscriber has read.
    fn trim(&mut self) {
        let needed = self
            .cursors
            .values()
            .map(|c| c.next)
            .min()
            .unwrap_or(u64::MAX);
        while let Some(front) = self.ring.front() {
            if front.seq >= needed {
                break;
            }
            self.ring_bytes -= front.size();
            self.ring.pop_front();
        }
    }

    /// Drops the oldest ring frame; subscribers that had not read it lose it.
    fn overflow(&mut self) {
        let Some(front) = self.ring.pop_front() else {
            return;
        };
        self.ring_bytes -= front.size();
        for cursor in self.cursors.values_mut() {
            if cursor.next <= front.seq {
                cursor.lost += front.seq + 1 - cursor.next;
                cursor.next = front.seq + 1;
            }
        }
    }

    /// How many frames the slowest subscriber has yet to read, leaving out those
    /// that already lost frames (they are closed when they learn it, so a burst
    /// waits for each slow subscriber once, not once per chunk).
    fn behind(&self) -> usize {
        let Some(last) = self.ring.back() else {
            return 0;
        };
        self.cursors
            .values()
            .filter(|c| c.lost == 0)
            .map(|c| (last.seq + 1).saturating_sub(c.next) as usize)
            .max()
            .unwrap_or(0)
    }
}

struct Room {
    org: String,
    epoch: String,
    state: Mutex<RoomState>,
    /// New frames in the ring (subscribers wait on it).
    published: Notify,
    /// A subscriber read (burst publishers wait on it).
    drained: Notify,
}

impl Room {
    fn lock(&self) -> std::sync::MutexGuard<'_, RoomState> {
        self.state.lock().expect("room lock")
    }
}

/// Settings of the in-process bus.
#[derive(Clone, Copy, Debug)]
pub struct BusConfig {
    /// Events retained per organization for `?since=` resume.
    pub history: usize,
    /// Bytes of history retained per organization.
    pub history_bytes: usize,
    /// Bytes of history retained across organizations (the oldest go first).
    pub history_total_bytes: usize,
    /// How far (in events) a subscriber may fall behind before it is closed.
    pub lag_limit: usize,
    /// How far (in bytes) a subscriber may fall behind before it is closed.
    pub max_queued_bytes: usize,
    /// How long a burst waits for the slowest subscriber before overtaking it.
    pub slow_grace: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            history: DEFAULT_HISTORY,
            history_bytes: DEFAULT_HISTORY_BYTES,
            history_total_bytes: DEFAULT_HISTORY_TOTAL_BYTES,
            lag_limit: DEFAULT_LAG_LIMIT,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            slow_grace: DEFAULT_SLOW_GRACE,
        }
    }
}

/// Events retained per organization.
pub const DEFAULT_HISTORY: usize = 1000;
/// Bytes of history per organization.
pub const DEFAULT_HISTORY_BYTES: usize = 1 << 20;
/// Bytes of history across organizations.
pub const DEFAULT_HISTORY_TOTAL_BYTES: usize = 64 << 20;
/// Events a subscriber may fall behind.
pub const DEFAULT_LAG_LIMIT: usize = 4096;
/// Bytes a subscriber may fall behind.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 8 << 20;
/// How long a burst waits for a slow subscriber.
pub const DEFAULT_SLOW_GRACE: Duration = Duration::from_secs(5);

/// Retained history across organizations, oldest first: where the global byte
/// bound takes frames from. Entries whose frame already left its room are skipped.
#[derive(Default)]
struct Retained {
    entries: VecDeque<(Weak<Room>, u64, usize)>,
}

type Rooms = RwLock<HashMap<String, Arc<Room>>>;

/// The in-process bus.
pub struct InProcessBus {
    config: BusConfig,
    metrics: Arc<Metrics>,
    rooms: Arc<Rooms>,
    retained: Mutex<Retained>,
    /// Bytes of history retained now, across organizations.
    history_bytes: Arc<AtomicUsize>,
    /// Frames of history retained now, across organizations.
    history_frames: Arc<AtomicUsize>,
    published: AtomicU64,
}

/// Frees `room` if nobody subscribes to it and it retains nothing.
fn reclaim(rooms: &Rooms, metrics: &Metrics, room: &Arc<Room>) {
    let mut map = rooms.write().expect("rooms lock");
    let mut state = room.lock();
    if state.dead || !state.cursors.is_empty() || !state.history.is_empty() {
        return;
    }
    state.dead = true;
    if map.get(&room.org).is_some_and(|r| Arc::ptr_eq(r, room)) {
        map.remove(&room.org);
        metrics.forget_org(&room.org);
    }
}

impl InProcessBus {
    pub fn new(config: BusConfig, metrics: Arc<Metrics>) -> InProcessBus {
        InProcessBus {
            config,
            metrics,
            rooms: Arc::default(),
            retained: Mutex::default(),
            history_bytes: Arc::default(),
            history_frames: Arc::default(),
            published: AtomicU64::new(0),
        }
    }

    fn room(&self, org: &str) -> Arc<Room> {
        if let Some(room) = self.rooms.read().expect("rooms lock").get(org) {
            return room.clone();
        }
        let mut rooms = self.rooms.write().expect("rooms lock");
        rooms
            .entry(org.to_string())
            .or_insert_with(|| {
                Arc::new(Room {
                    org: org.to_string(),
                    epoch: new_epoch(),
                    state: Mutex::new(RoomState {
                        seq: 0,
                        history: VecDeque::new(),
                        history_bytes: 0,
                        ring: VecDeque::new(),
                        ring_bytes: 0,
                        cursors: HashMap::new(),
                        next_id: 0,
                        dead: false,
                    }),
                    published: Notify::new(),
                    drained: Notify::new(),
                })
            })
            .clone()
    }

    /// Runs `f` on the live room of `org` under its lock (a room freed meanwhile is
    /// looked up again, so nothing lands in a room nobody can find).
    fn with_room<T>(&self, org: &str, mut f: impl FnMut(&mut RoomState) -> T) -> (Arc<Room>, T) {
        loop {
            let room = self.room(org);
            let mut state = room.lock();
            if state.dead {
                continue;
            }
            let out = f(&mut state);
            drop(state);
            return (room, out);
        }
    }

    /// Numbers, records and fans out one event; returns its `seq`.
    ///
    /// Numbering, serialisation and the ring push happen under the room's lock, so
    /// `seq` order is send order and a concurrent subscribe sees each event exactly
    /// once (in its replay or live, never both).
    fn publish_now(&self, org: &str, draft: Draft) -> u64 {
        self.metrics.event(org, draft.kind.as_str(), 1);
        self.published.fetch_add(1, Ordering::Relaxed);
        let config = self.config;
        let mut evicted = (0usize, 0usize);
        let mut kept = None;
        let (room, (seq, live)) = self.with_room(org, |state| {
            state.seq += 1;
            let seq = state.seq;
            let frame = frame_of(org, &draft, seq);
            if config.history > 0 && frame.size() <= config.history_bytes {
                state.history_bytes += frame.size();
                kept = Some(frame.size());
                state.history.push_back(frame.clone());
                evicted = evict_history(state, config.history, config.history_bytes);
            }
            let live = !state.cursors.is_empty();
            if live {
                state.ring_bytes += frame.size();
                state.ring.push_back(frame);
                while state.ring.len() > config.lag_limit.max(1)
                    || state.ring_bytes > config.max_queued_bytes
                {
                    state.overflow();
                }
            }
            (seq, live)
        });
        if live {
            room.published.notify_waiters();
        }
        self.account(&room, seq, kept, evicted);
        if !live && kept.is_none() {
            reclaim(&self.rooms, &self.metrics, &room);
        }
        seq
    }

    /// Books a frame kept in (and frames evicted from) a room's history against the
    /// bound across organizations, and enforces it.
    fn account(&self, room: &Arc<Room>, seq: u64, kept: Option<usize>, evicted: (usize, usize)) {
        let (frames, bytes) = evicted;
        self.history_frames.fetch_sub(frames, Ordering::Relaxed);
        self.history_bytes.fetch_sub(bytes, Ordering::Relaxed);
        let Some(size) = kept else { return };
        self.history_frames.fetch_add(1, Ordering::Relaxed);
        let mut total = self.history_bytes.fetch_add(size, Ordering::Relaxed) + size;
        let mut retained = self.retained.lock().expect("retained lock");
        retained
            .entries
            .push_back((Arc::downgrade(room), seq, size));
        let mut emptied = Vec::new();
        while total > self.config.history_total_bytes {
            let Some((weak, seq, size)) = retained.entries.pop_front() else {
                break;
            };
            let Some(room) = weak.upgrade() else { continue };
            let mut state = room.lock();
            if state.history.front().is_none_or(|f| f.seq != seq) {
                continue;
            }
            state.history.pop_front();
            state.history_bytes -= size;
            total = self.history_bytes.fetch_sub(size, Ordering::Relaxed) - size;
            self.history_frames.fetch_sub(1, Ordering::Relaxed);
            if state.history.is_empty() && state.cursors.is_empty() {
                drop(state);
                emptied.push(room);
            }
        }
        // Entries of frames their room already dropped: compacted now and then, so
        // the list stays proportional to what is retained.
        let live = self.history_frames.load(Ordering::Relaxed);
        if retained.entries.len() > 2 * live + 1024 {
            retained.entries.retain(|(weak, seq, _)| {
                weak.upgrade()
                    .is_some_and(|room| room.lock().history.front().is_some_and(|f| f.seq <= *seq))
            });
        }
        drop(retained);
        for room in emptied {
            reclaim(&self.rooms, &self.metrics, &room);
        }
    }

    /// Subscribes a new connection: CONNECTED, then what `resume` asks to replay.
    fn subscribe_now(&self, org: &str, resume: Option<&Resume>) -> Subscription {
        let (room, (id, connected, replay)) = self.with_room(org, |state| {
            state.next_id += 1;
            let id = state.next_id;
            state.cursors.insert(
                id,
                Cursor {
                    next: state.seq + 1,
                    lost: 0,
                },
            );
            (id, state.seq, resume.map(|r| plan_replay(state, r)))
        });
        let (replay, truncated) = match replay {
            None => (Vec::new(), None),
            Some(plan) => {
                let (frames, truncated) = plan(&room.epoch);
                (frames, Some(truncated))
            }
        };
        self.metrics.recovered_events.inc_by(replay.len() as u64);
        let connected = Connected {
            organization_id: org.to_string(),
            timestamp: Timestamp::now(),
            seq: Some(connected),
            epoch: Some(room.epoch.clone()),
            history_truncated: truncated,
            extra: Map::new(),
        };
        let live = Live {
            room,
            id,
            taken: VecDeque::new(),
            rooms: self.rooms.clone(),
            metrics: self.metrics.clone(),
        };
        Subscription::new(connected, replay, live)
    }

    /// Waits until the subscribers of `org` have room for more frames (half the
    /// ring free, in frames and bytes), or until the slowest has held the burst up
    /// for [`BusConfig::slow_grace`]; returns how many of `n` may go now.
    async fn make_room_now(&self, org: &str, n: usize) -> usize {
        let n = n.max(1);
        let Some(room) = self.rooms.read().expect("rooms lock").get(org).cloned() else {
            return n;
        };
        let limit = self.config.lag_limit.max(1);
        let max_bytes = self.config.max_queued_bytes;
        let deadline = tokio::time::Instant::now() + self.config.slow_grace;
        loop {
            let drained = room.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let state = room.lock();
                if state.dead || state.cursors.is_empty() {
                    return n;
                }
                let behind = state.behind();
                if behind <= limit / 2 && state.ring_bytes <= max_bytes / 2 {
                    // Frames are about the size of those in the ring (of a burst of one
                    // event, exactly): as many as fit in what is free of both bounds.
                    let size = state.ring.back().map_or(1, |f| f.size().max(1));
                    let by_bytes = (max_bytes - state.ring_bytes) / size;
                    return n.min(limit - behind).min(by_bytes).max(1);
                }
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                // The slowest had its grace: it is overtaken (and closed on lagging).
                return n.min(limit);
            }
        }
    }
}

/// The frame of one event.
fn frame_of(org: &str, draft: &Draft, seq: u64) -> Frame {
    let text =
        serde_json::to_string(&event_of(org, draft, Some(seq))).expect("events always serialise");
    Frame::new(seq, text)
}

/// The event a draft of `org` becomes (a shared bus numbers it itself: `seq` `None`).
pub(crate) fn event_of(org: &str, draft: &Draft, seq: Option<u64>) -> SyncEvent {
    SyncEvent {
        kind: draft.kind.clone(),
        pfa_id: draft.pfa_id.clone(),
        organization_id: org.to_string(),
        timestamp: Timestamp::now(),
        details: draft.details.clone(),
        seq,
        published_at_us: draft.stamp_publish_time.then(unix_micros),
        extra: Map::new(),
    }
}

/// Drops the oldest history beyond `count` frames or `bytes`; returns how many
/// frames and bytes went.
fn evict_history(state: &mut RoomState, count: usize, bytes: usize) -> (usize, usize) {
    let mut evicted = (0, 0);
    while state.history.len() > count || state.history_bytes > bytes {
        let Some(front) = state.history.pop_front() else {
            break;
        };
        state.history_bytes -= front.size();
        evicted.0 += 1;
        evicted.1 += front.size();
    }
    evicted
}

/// One subscriber's live stream: its cursor lives in the room.
struct Live {
    room: Arc<Room>,
    id: u64,
    /// Frames taken from the ring, not yet handed out.
    taken: VecDeque<Frame>,
    rooms: Arc<Rooms>,
    metrics: Arc<Metrics>,
}

impl Live {
    /// Moves up to [`TAKE_BATCH`] frames from the ring; `Some` when the subscriber
    /// lost frames instead.
    fn take(&mut self) -> Option<Received> {
        let mut state = self.room.lock();
        let Some(cursor) = state.cursors.get(&self.id).copied() else {
            return Some(Received::Closed);
        };
        if cursor.lost > 0 {
            if let Some(c) = state.cursors.get_mut(&self.id) {
                c.lost = 0;
            }
            return Some(Received::Lagged(cursor.lost));
        }
        let start = state
            .ring
            .front()
            .map_or(0, |f| cursor.next.saturating_sub(f.seq) as usize);
        let frames: Vec<Frame> = state
            .ring
            .iter()
            .skip(start)
            .take(TAKE_BATCH)
            .cloned()
            .collect();
        let last = frames.last()?;
        let next = last.seq + 1;
        if let Some(c) = state.cursors.get_mut(&self.id) {
            c.next = next;
        }
        state.trim();
        drop(state);
        self.room.drained.notify_waiters();
        self.taken.extend(frames);
        None
    }

    fn poll_now(&mut self) -> Option<Received> {
        if let Some(frame) = self.taken.pop_front() {
            return Some(Received::Frame(frame));
        }
        if let Some(lagged) = self.take() {
            return Some(lagged);
        }
        self.taken.pop_front().map(Received::Frame)
    }
}

impl LiveStream for Live {
    fn recv(&mut self) -> Pin<Box<dyn Future<Output = Received> + Send + '_>> {
        Box::pin(async move {
            loop {
                let room = self.room.clone();
                let published = room.published.notified();
                tokio::pin!(published);
                published.as_mut().enable();
                if let Some(received) = self.poll_now() {
                    return received;
                }
                published.await;
            }
        })
    }

    fn try_recv(&mut self) -> Option<Received> {
        self.poll_now()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        {
            let mut state = self.room.lock();
            state.cursors.remove(&self.id);
            state.trim();
        }
        self.room.drained.notify_waiters();
        reclaim(&self.rooms, &self.metrics, &self.room);
    }
}

impl EventBus for InProcessBus {
    fn publish<'a>(&'a self, org: &'a str, draft: Draft) -> BusFuture<'a, u64> {
        Box::pin(ready(Ok(self.publish_now(org, draft))))
    }

    fn subscribe<'a>(
        &'a self,
        org: &'a str,
        resume: Option<&'a Resume>,
    ) -> BusFuture<'a, Subscription> {
        Box::pin(ready(Ok(self.subscribe_now(org, resume))))
    }

    fn make_room<'a>(&'a self, org: &'a str, n: usize) -> BusFuture<'a, usize> {
        Box::pin(async move { Ok(self.make_room_now(org, n).await) })
    }

    fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    fn connections(&self) -> Vec<(String, usize)> {
        let rooms = self.rooms.read().expect("rooms lock");
        let mut counts: Vec<(String, usize)> = rooms
            .iter()
            .map(|(org, room)| (org.clone(), room.lock().cursors.len()))
            .filter(|(_, n)| *n > 0)
            .collect();
        counts.sort();
        counts
    }
}

/// Which retained frames to replay for a resume, and whether events may be lost;
/// taken under the room's lock, finished with the room's epoch.
///
/// - Same epoch and every event after `since` retained: replay `seq > since`.
/// - Same epoch but events after `since` no longer retained, a `since` beyond the
///   latest `seq`, or another epoch: `historyTruncated`, and everything retained is
///   replayed so the client sees as much as the server still has.
fn plan_replay(
    state: &RoomState,
    resume: &Resume,
) -> impl FnOnce(&str) -> (Vec<Frame>, bool) + use<> {
    let seq = state.seq;
    let oldest = state.history.front().map_or(seq + 1, |f| f.seq);
    let frames: Vec<Frame> = state.history.iter().cloned().collect();
    let resume = resume.clone();
    move |epoch| {
        let same_epoch = resume.epoch.as_deref().is_none_or(|e| e == epoch);
        let complete = same_epoch && resume.since <= seq && resume.since + 1 >= oldest;
        if complete {
            let replay = frames
                .into_iter()
                .filter(|f| f.seq > resume.since)
                .collect();
            (replay, false)
        } else {
            (frames, true)
        }
    }
}

/// A fresh epoch: random, so a restarted server never reuses one.
pub(crate) fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

pub(crate) fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::EventType;
    use crate::server::bus::Received;
    use futures_util::FutureExt;

    fn bus(history: usize) -> InProcessBus {
        InProcessBus::new(
            BusConfig {
                history,
                lag_limit: 16,
                ..BusConfig::default()
            },
            Arc::default(),
        )
    }

    fn draft(pfa: &str) -> Draft {
        Draft {
            kind: EventType::Queued,
            pfa_id: pfa.into(),
            details: None,
            stamp_publish_time: false,
        }
    }

    fn seqs(frames: &[Frame]) -> Vec<u64> {
        frames.iter().map(|f| f.seq).collect()
    }

    /// The in-process bus never waits: its calls are ready at once.
    fn now<T>(call: BusFuture<'_, T>) -> T {
        call.now_or_never()
            .expect("the in-process bus never waits")
            .expect("the in-process bus never fails")
    }

    fn publish(bus: &InProcessBus, org: &str, draft: Draft) -> u64 {
        now(bus.publish(org, draft))
    }

    fn subscribe(bus: &InProcessBus, org: &str, resume: Option<&Resume>) -> Subscription {
        now(bus.subscribe(org, resume))
    }

    /// The latest `seq` and the epoch of an organization, if it has a room.
    fn position(bus: &InProcessBus, org: &str) -> Option<(u64, String)> {
        let rooms = bus.rooms.read().unwrap();
        let room = rooms.get(org)?;
        let seq = room.lock().seq;
        Some((seq, room.epoch.clone()))
    }

    fn live_seq(sub: &mut Subscription) -> Option<u64> {
        match sub.try_recv() {
            Some(Received::Frame(frame)) => Some(frame.seq),
            _ => None,
        }
    }

    #[test]
    fn seq_counts_per_organization_and_connected_carries_the_latest() {
        let bus = bus(10);
        assert_eq!(publish(&bus, "a", draft("p")), 1);
        assert_eq!(publish(&bus, "a", draft("p")), 2);
        assert_eq!(publish(&bus, "b", draft("p")), 1);
        let sub = subscribe(&bus, "a", None);
        assert_eq!(sub.connected.seq, Some(2));
        assert_eq!(sub.connected.history_truncated, None);
        assert!(sub.replay.is_empty());
        assert_ne!(
            position(&bus, "a").unwrap().1,
            position(&bus, "b").unwrap().1,
            "each organization numbers in its own epoch"
        );
    }

    #[test]
    fn resume_replays_after_since_or_reports_truncation() {
        let bus = bus(3);
        for _ in 0..5 {
            publish(&bus, "a", draft("p"));
        }
        let epoch = position(&bus, "a").unwrap().1;
        let at = |since, epoch: Option<&str>| {
            subscribe(
                &bus,
                "a",
                Some(&Resume {
                    since,
                    epoch: epoch.map(String::from),
                }),
            )
        };
        let sub = at(3, Some(&epoch));
        assert_eq!(
            (seqs(&sub.replay), sub.connected.history_truncated),
            (vec![4, 5], Some(false))
        );
        let sub = at(2, Some(&epoch));
        assert_eq!(seqs(&sub.replay), vec![3, 4, 5]);
        assert_eq!(sub.connected.history_truncated, Some(false));
        let sub = at(1, Some(&epoch));
        assert_eq!(
            (seqs(&sub.replay), sub.connected.history_truncated),
            (vec![3, 4, 5], Some(true))
        );
        let sub = at(5, Some("another-epoch"));
        assert_eq!(
            (seqs(&sub.replay), sub.connected.history_truncated),
            (vec![3, 4, 5], Some(true))
        );
        let sub = at(9, Some(&epoch));
        assert_eq!(
            sub.connected.history_truncated,
            Some(true),
            "since beyond the latest seq"
        );
        let sub = at(5, None);
        assert_eq!(
            (seqs(&sub.replay), sub.connected.history_truncated),
            (vec![], Some(false))
        );
    }

    #[test]
    fn live_events_follow_the_subscription_without_overlap() {
        let bus = bus(10);
        publish(&bus, "a", draft("p"));
        let mut sub = subscribe(&bus, "a", Some(&Resume::default()));
        publish(&bus, "a", draft("p"));
        assert_eq!(seqs(&sub.replay), vec![1]);
        assert_eq!(live_seq(&mut sub), Some(2));
        assert!(sub.try_recv().is_none());
    }

    #[test]
    fn a_subscriber_that_falls_behind_the_ring_learns_by_how_much() {
        let bus = bus(0);
        let mut sub = subscribe(&bus, "a", None);
        // The ring holds 16 (the test bus's lag limit): 20 events lose the first 4.
        for _ in 0..20 {
            publish(&bus, "a", draft("p"));
        }
        assert!(matches!(sub.try_recv(), Some(Received::Lagged(4))));
        assert_eq!(live_seq(&mut sub), Some(5));
    }

    #[test]
    fn connections_are_counted_until_the_guard_drops() {
        let bus = bus(0);
        let one = subscribe(&bus, "a", None);
        let _two = subscribe(&bus, "a", None);
        assert_eq!(bus.connections(), vec![("a".to_string(), 2)]);
        drop(one);
        assert_eq!(bus.connections(), vec![("a".to_string(), 1)]);
    }

    #[test]
    fn published_events_are_valid_protocol_frames() {
        let bus = bus(10);
        let mut sub = subscribe(&bus, "org-rio", None);
        publish(
            &bus,
            "org-rio",
            Draft {
                kind: EventType::Success,
                pfa_id: "pfa-1".into(),
                details: Some(serde_json::json!({"newVersion": 2})),
                stamp_publish_time: true,
            },
        );
        let Some(Received::Frame(frame)) = sub.try_recv() else {
            panic!("no live frame")
        };
        let text = frame.text();
        let parsed = crate::protocol::ServerFrame::parse(text).unwrap();
        let crate::protocol::ServerFrame::Event(e) = parsed else {
            panic!()
        };
        assert_eq!(e.seq, Some(1));
        assert_eq!(e.organization_id, "org-rio");
        assert!(e.published_at_us.unwrap() > 1_700_000_000_000_000);
    }

    fn bounded(history: usize, history_bytes: usize, total: usize) -> InProcessBus {
        InProcessBus::new(
            BusConfig {
                history,
                history_bytes,
                history_total_bytes: total,
                ..BusConfig::default()
            },
            Arc::default(),
        )
    }

    #[test]
    fn rings_grow_with_use_instead_of_being_preallocated() {
        let bus = InProcessBus::new(
            BusConfig {
                lag_limit: 1_000_000,
                ..BusConfig::default()
            },
            Arc::default(),
        );
        let mut subs: Vec<_> = (0..100)
            .map(|i| subscribe(&bus, &format!("org-{i}"), None))
            .collect();
        publish(&bus, "org-0", draft("p"));
        let rooms = bus.rooms.read().unwrap();
        let slots: usize = rooms.values().map(|r| r.lock().ring.capacity()).sum();
        assert!(slots < 1000, "{slots} slots for one event");
        drop(rooms);
        assert_eq!(live_seq(&mut subs[0]), Some(1));
        drop(subs);
        let rooms: Vec<String> = bus.rooms.read().unwrap().keys().cloned().collect();
        assert_eq!(
            rooms,
            ["org-0"],
            "rooms freed with their last subscriber, but history"
        );
    }

    #[test]
    fn history_is_bounded_by_bytes_per_organization_and_in_total() {
        let bus = bounded(1000, 2_000, 10_000);
        for _ in 0..100 {
            publish(&bus, "big", draft("p"));
        }
        let bytes = |org: &str| {
            bus.rooms
                .read()
                .unwrap()
                .get(org)
                .map(|r| r.lock().history_bytes)
        };
        assert!(bytes("big").unwrap() <= 2_000);
        for i in 0..100 {
            publish(&bus, &format!("org-{i}"), draft("p"));
        }
        assert!(bus.history_bytes.load(Ordering::Relaxed) <= 10_000);
        let rooms = bus.rooms.read().unwrap().len();
        assert!(
            rooms < 100,
            "{rooms} rooms kept: the oldest histories went, with their rooms"
        );
        assert!(bytes("org-99").is_some(), "the newest history stays");
    }

    #[test]
    fn a_subscriber_behind_by_more_than_its_queued_bytes_lags() {
        let bus = InProcessBus::new(
            BusConfig {
                history: 0,
                max_queued_bytes: 1_000,
                ..BusConfig::default()
            },
            Arc::default(),
        );
        let mut sub = subscribe(&bus, "a", None);
        for _ in 0..50 {
            publish(&bus, "a", draft("p"));
        }
        assert!(matches!(sub.try_recv(), Some(Received::Lagged(n)) if n > 30));
        let ring = bus
            .rooms
            .read()
            .unwrap()
            .get("a")
            .unwrap()
            .lock()
            .ring_bytes;
        assert!(ring <= 1_000);
    }
}
