//! The in-process [`EventBus`]: one process serves alone, with no external
//! dependency. Per-organization numbering (`seq`, `epoch`), the bounded history that
//! `?since=` replays from, and fan-out to the open sockets of the organization.
//!
//! Each event is serialised and framed once, when it is published, and handed (under
//! the room's lock, so in `seq` order) to the local fan-out ([`Hub`]), which writes
//! the same bytes to every socket of the organization; a socket that falls behind
//! by `lag_limit` frames or `max_queued_bytes` bytes is closed so it can resume with
//! `since`. A large burst ([`EventBus::make_room`]) waits for the sockets to drain,
//! up to `slow_grace` for the slowest, so a reader that keeps up is never overtaken
//! by it.
//!
//! Memory is bounded per organization and in total: history by count and bytes per
//! organization and by bytes across them (the oldest frames of any organization go
//! first); a room with no subscriber and no retained history is freed, so the next
//! event of that organization starts a new epoch.

use std::collections::{HashMap, VecDeque};
use std::future::ready;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use super::bus::{BusFuture, Draft, EventBus, Frame, Resume, Subscription};
use super::fanout::{Hub, Member, Outlet};
use super::metrics::Metrics;
use crate::protocol::{Connected, SyncEvent, Timestamp};
use serde_json::Map;

struct RoomState {
    seq: u64,
    history: VecDeque<Frame>,
    history_bytes: usize,
    /// Open subscriptions.
    subscribers: usize,
    /// Freed: a publisher or subscriber holding it looks the room up again.
    dead: bool,
}

struct Room {
    org: String,
    epoch: String,
    state: Mutex<RoomState>,
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
    /// How long a burst waits for the slowest subscriber before overtaking it.
    pub slow_grace: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            history: DEFAULT_HISTORY,
            history_bytes: DEFAULT_HISTORY_BYTES,
            history_total_bytes: DEFAULT_HISTORY_TOTAL_BYTES,
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
    hub: Arc<Hub>,
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
    if state.dead || state.subscribers > 0 || !state.history.is_empty() {
        return;
    }
    state.dead = true;
    if map.get(&room.org).is_some_and(|r| Arc::ptr_eq(r, room)) {
        map.remove(&room.org);
        metrics.forget_org(&room.org);
    }
}

impl InProcessBus {
    pub fn new(config: BusConfig, hub: Arc<Hub>, metrics: Arc<Metrics>) -> InProcessBus {
        InProcessBus {
            config,
            hub,
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
                        subscribers: 0,
                        dead: false,
                    }),
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
            let live = state.subscribers > 0;
            if live {
                // Under the lock: the hub gets one organization's frames in order.
                self.hub.send(org, None, &frame);
            }
            (seq, live)
        });
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
            if state.history.is_empty() && state.subscribers == 0 {
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

    /// Subscribes a new connection: CONNECTED, then what `resume` asks to replay;
    /// `outlet` joins the fan-out under the room's lock, so it holds every later
    /// event (and none the replay has).
    fn subscribe_now(
        &self,
        org: &str,
        resume: Option<&Resume>,
        outlet: &Arc<Outlet>,
    ) -> Subscription {
        let (room, (member, connected, replay)) = self.with_room(org, |state| {
            state.subscribers += 1;
            let member = self.hub.join(org, outlet);
            (member, state.seq, resume.map(|r| plan_replay(state, r)))
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
        let membership = Membership {
            _member: member,
            room,
            rooms: self.rooms.clone(),
            metrics: self.metrics.clone(),
        };
        Subscription::new(connected, replay, membership)
    }
}

/// A bus with a fan-out of its own, and sockets writing into memory (tests, fuzzing).
#[cfg(any(test, feature = "fuzzing"))]
impl InProcessBus {
    /// A bus whose sockets may fall as far behind as `limits` say.
    pub fn with_own_hub(
        config: BusConfig,
        limits: super::fanout::Limits,
        metrics: Arc<Metrics>,
    ) -> InProcessBus {
        let hub = Hub::with_shards(1, limits, metrics.clone());
        InProcessBus::new(config, hub, metrics)
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Subscribes a socket writing into memory (released at once: live frames flow).
    pub fn subscribe_captured(
        &self,
        org: &str,
        resume: Option<&Resume>,
    ) -> (Subscription, Arc<Outlet>, super::fanout::capture::Captured) {
        let (outlet, captured) = super::fanout::capture::outlet(&self.hub);
        let sub = self.subscribe_now(org, resume, &outlet);
        let last = sub
            .replay
            .last()
            .map_or(sub.connected.seq.unwrap_or(0), |f| f.seq);
        outlet.release(last, None);
        (sub, outlet, captured)
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

/// One subscription: its place in the fan-out and its count in the room.
struct Membership {
    _member: Member,
    room: Arc<Room>,
    rooms: Arc<Rooms>,
    metrics: Arc<Metrics>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.room.lock().subscribers -= 1;
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
        outlet: &'a Arc<Outlet>,
    ) -> BusFuture<'a, Subscription> {
        Box::pin(ready(Ok(self.subscribe_now(org, resume, outlet))))
    }

    fn make_room<'a>(&'a self, org: &'a str, n: usize) -> BusFuture<'a, usize> {
        Box::pin(async move { Ok(self.hub.make_room(org, n, self.config.slow_grace).await) })
    }

    fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    fn connections(&self) -> Vec<(String, usize)> {
        self.hub.connections()
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
    use crate::server::fanout::capture::{self, Captured};
    use crate::server::fanout::{Limits, Want};
    use futures_util::FutureExt;

    fn bus(history: usize) -> InProcessBus {
        InProcessBus::with_own_hub(
            BusConfig {
                history,
                ..BusConfig::default()
            },
            Limits {
                frames: 16,
                bytes: DEFAULT_MAX_QUEUED_BYTES,
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
        bus.subscribe_captured(org, resume).0
    }

    /// A socket of `org` and what it is written.
    fn socket(
        bus: &InProcessBus,
        org: &str,
        resume: Option<&Resume>,
    ) -> (Subscription, Arc<Outlet>, Captured) {
        bus.subscribe_captured(org, resume)
    }

    /// The `seq`s written to a socket so far (once the fan-out is done).
    fn written(bus: &InProcessBus, captured: &Captured) -> Vec<u64> {
        bus.hub().settle();
        captured
            .texts()
            .iter()
            .map(|t| {
                serde_json::from_str::<serde_json::Value>(t).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    }

    /// The latest `seq` and the epoch of an organization, if it has a room.
    fn position(bus: &InProcessBus, org: &str) -> Option<(u64, String)> {
        let rooms = bus.rooms.read().unwrap();
        let room = rooms.get(org)?;
        let seq = room.lock().seq;
        Some((seq, room.epoch.clone()))
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
        let (sub, _outlet, captured) = socket(&bus, "a", Some(&Resume::default()));
        publish(&bus, "a", draft("p"));
        assert_eq!(seqs(&sub.replay), vec![1]);
        assert_eq!(written(&bus, &captured), vec![2]);
    }

    #[test]
    fn a_subscriber_that_falls_behind_learns_by_how_much_and_where_to_resume() {
        let bus = bus(0);
        let (_sub, outlet, captured) = socket(&bus, "a", None);
        // A socket that takes nothing: 16 frames queue (the test bus's lag limit),
        // the next 4 are lost.
        captured.set_room(Some(0));
        for _ in 0..20 {
            publish(&bus, "a", draft("p"));
        }
        bus.hub().settle();
        assert_eq!(
            capture::want(&outlet),
            Some(Want::Lagged { lost: 4, since: 16 })
        );
        // What was queued is still written before the close.
        captured.set_room(None);
        capture::drain(&outlet);
        assert_eq!(written(&bus, &captured), (1..=16).collect::<Vec<_>>());
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
        let (_sub, _outlet, captured) = socket(&bus, "org-rio", None);
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
        bus.hub().settle();
        let texts = captured.texts();
        let [text] = &texts[..] else {
            panic!("not one live frame: {texts:?}")
        };
        let parsed = crate::protocol::ServerFrame::parse(text).unwrap();
        let crate::protocol::ServerFrame::Event(e) = parsed else {
            panic!()
        };
        assert_eq!(e.seq, Some(1));
        assert_eq!(e.organization_id, "org-rio");
        assert!(e.published_at_us.unwrap() > 1_700_000_000_000_000);
    }

    fn bounded(history: usize, history_bytes: usize, total: usize) -> InProcessBus {
        InProcessBus::with_own_hub(
            BusConfig {
                history,
                history_bytes,
                history_total_bytes: total,
                ..BusConfig::default()
            },
            Limits {
                frames: 16,
                bytes: DEFAULT_MAX_QUEUED_BYTES,
            },
            Arc::default(),
        )
    }

    #[test]
    fn rooms_are_freed_with_their_last_subscriber_but_history() {
        let bus = bus(10);
        let subs: Vec<_> = (0..100)
            .map(|i| socket(&bus, &format!("org-{i}"), None))
            .collect();
        publish(&bus, "org-0", draft("p"));
        assert_eq!(written(&bus, &subs[0].2), vec![1]);
        assert_eq!(
            written(&bus, &subs[1].2),
            Vec::<u64>::new(),
            "another organization"
        );
        drop(subs);
        let rooms: Vec<String> = bus.rooms.read().unwrap().keys().cloned().collect();
        assert_eq!(
            rooms,
            ["org-0"],
            "rooms freed with their last subscriber, but history"
        );
        assert!(bus.connections().is_empty());
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
        let bus = InProcessBus::with_own_hub(
            BusConfig {
                history: 0,
                ..BusConfig::default()
            },
            Limits {
                frames: 4096,
                bytes: 1_000,
            },
            Arc::default(),
        );
        let (_sub, outlet, captured) = socket(&bus, "a", None);
        captured.set_room(Some(0));
        for _ in 0..50 {
            publish(&bus, "a", draft("p"));
        }
        bus.hub().settle();
        let Some(Want::Lagged { lost, since }) = capture::want(&outlet) else {
            panic!("not lagging")
        };
        assert!(lost > 30, "{lost} lost");
        assert_eq!(since + lost, 50);
    }
}
