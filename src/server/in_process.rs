//! The in-process [`EventBus`]: one process serves alone, with no external
//! dependency. Per-organization numbering (`seq`, `epoch`), the bounded history that
//! `?since=` replays from, and fan-out to the open sockets of the organization.
//!
//! Each event is serialised once, when it is published, and every subscriber gets a
//! reference-counted copy of the same bytes. Fan-out uses one `tokio::sync::broadcast`
//! ring per organization: publishing never waits for a subscriber, memory is bounded by
//! the ring's capacity, and a subscriber that falls more than that far behind learns it
//! (`Lagged`) and is closed so it can resume with `since`. Nothing here waits, so
//! every call of the trait is ready at once.

use std::collections::{HashMap, VecDeque};
use std::future::ready;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Map;
use tokio::sync::broadcast;

use super::bus::{BusFuture, Draft, EventBus, Frame, Resume, Subscription};
use super::metrics::Metrics;
use crate::protocol::{Connected, SyncEvent, Timestamp};

struct History {
    seq: u64,
    frames: VecDeque<Frame>,
}

struct Room {
    epoch: String,
    history: Mutex<History>,
    tx: broadcast::Sender<Frame>,
    connections: AtomicUsize,
}

/// Keeps a connection counted in its room; dropping it uncounts it.
struct RoomGuard {
    room: Arc<Room>,
}

impl Drop for RoomGuard {
    fn drop(&mut self) {
        self.room.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Settings of the in-process bus.
#[derive(Clone, Copy, Debug)]
pub struct BusConfig {
    /// Events retained per organization for `?since=` resume.
    pub history: usize,
    /// How far (in events) a subscriber may fall behind before it is closed.
    pub lag_limit: usize,
}

/// The in-process bus.
pub struct InProcessBus {
    config: BusConfig,
    metrics: Arc<Metrics>,
    rooms: RwLock<HashMap<String, Arc<Room>>>,
    published: AtomicU64,
}

impl InProcessBus {
    pub fn new(config: BusConfig, metrics: Arc<Metrics>) -> InProcessBus {
        InProcessBus {
            config,
            metrics,
            rooms: RwLock::new(HashMap::new()),
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
                let (tx, _) = broadcast::channel(self.config.lag_limit.max(1));
                Arc::new(Room {
                    epoch: new_epoch(),
                    history: Mutex::new(History {
                        seq: 0,
                        frames: VecDeque::new(),
                    }),
                    tx,
                    connections: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// Numbers, records and broadcasts one event; returns its `seq`.
    ///
    /// Numbering, serialisation and sending happen under the room's lock, so `seq`
    /// order is send order and a concurrent subscribe sees each event exactly once
    /// (in its replay or live, never both).
    fn publish_now(&self, org: &str, draft: Draft) -> u64 {
        let room = self.room(org);
        self.metrics.event(org, draft.kind.as_str(), 1);
        self.published.fetch_add(1, Ordering::Relaxed);
        let mut history = room.history.lock().expect("history lock");
        history.seq += 1;
        let seq = history.seq;
        let event = SyncEvent {
            kind: draft.kind,
            pfa_id: draft.pfa_id,
            organization_id: org.to_string(),
            timestamp: Timestamp::now(),
            details: draft.details,
            seq: Some(seq),
            published_at_us: draft.stamp_publish_time.then(unix_micros),
            extra: Map::new(),
        };
        let text = serde_json::to_string(&event).expect("events always serialise");
        let frame = Frame::new(seq, text);
        if self.config.history > 0 {
            if history.frames.len() == self.config.history {
                history.frames.pop_front();
            }
            history.frames.push_back(frame.clone());
        }
        // No receivers is not an error: nobody is listening to this organization now.
        let _ = room.tx.send(frame);
        seq
    }

    /// Subscribes a new connection: CONNECTED, then what `resume` asks to replay.
    fn subscribe_now(&self, org: &str, resume: Option<&Resume>) -> Subscription {
        let room = self.room(org);
        let history = room.history.lock().expect("history lock");
        let live = room.tx.subscribe();
        room.connections.fetch_add(1, Ordering::Relaxed);
        let (replay, truncated) = match resume {
            None => (Vec::new(), None),
            Some(resume) => {
                let (replay, truncated) = plan_replay(&history, &room.epoch, resume);
                (replay, Some(truncated))
            }
        };
        let connected = Connected {
            organization_id: org.to_string(),
            timestamp: Timestamp::now(),
            seq: Some(history.seq),
            epoch: Some(room.epoch.clone()),
            history_truncated: truncated,
            extra: Map::new(),
        };
        drop(history);
        Subscription::new(connected, replay, live, RoomGuard { room })
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

    fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    fn connections(&self) -> Vec<(String, usize)> {
        let rooms = self.rooms.read().expect("rooms lock");
        let mut counts: Vec<(String, usize)> = rooms
            .iter()
            .map(|(org, room)| (org.clone(), room.connections.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        counts.sort();
        counts
    }
}

/// Which retained frames to replay for `resume`, and whether events may be lost.
///
/// - Same epoch and every event after `since` retained: replay `seq > since`.
/// - Same epoch but events after `since` no longer retained, a `since` beyond the
///   latest `seq`, or another epoch: `historyTruncated`, and everything retained is
///   replayed so the client sees as much as the server still has.
fn plan_replay(history: &History, epoch: &str, resume: &Resume) -> (Vec<Frame>, bool) {
    let same_epoch = resume.epoch.as_deref().is_none_or(|e| e == epoch);
    let oldest = history.frames.front().map_or(history.seq + 1, |f| f.seq);
    let complete = same_epoch && resume.since <= history.seq && resume.since + 1 >= oldest;
    if complete {
        let replay = history
            .frames
            .iter()
            .filter(|f| f.seq > resume.since)
            .cloned()
            .collect();
        (replay, false)
    } else {
        (history.frames.iter().cloned().collect(), true)
    }
}

/// A fresh epoch: random, so a restarted server never reuses one.
fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn unix_micros() -> u64 {
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
        let seq = room.history.lock().unwrap().seq;
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
}
