//! The write-sync queue and its worker: what `POST /api/pems/write-sync` feeds and
//! `GET /api/pems/sync-status` reports on.
//!
//! Items wait in priority order (higher `priority` first, then arrival order); a
//! retried item waits until its backoff has passed. Each attempt emits
//! `SYNC_PROCESSING`; every item ends with exactly one terminal event. The scheduling
//! state ([`Schedule`]) is a plain data structure, tested without a clock.
//!
//! With `--redis` the items live in Redis instead ([`SharedQueue`], implemented by
//! `redis::RedisQueue`): [`Queue`] hands every call to it, and the routes and the
//! conflicts API see one type either way.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::bus::{BusFuture, Draft, EventBus};
use crate::backoff::capped_exponential;
use crate::protocol::{EventType, Health, Outcome, SyncStatus, Timestamp};

/// Worker settings.
#[derive(Clone, Copy, Debug)]
pub struct WorkerConfig {
    /// Concurrent attempts.
    pub workers: usize,
    /// How long one simulated attempt takes.
    pub processing_time: Duration,
    /// Retries after the first attempt before an item fails for good.
    pub max_retries: u32,
    /// Backoff before retry `n` (1-based) is `retry_base * 2^(n-1)`.
    pub retry_base: Duration,
}

impl WorkerConfig {
    /// The delay before retry number `retry` (1-based): no jitter and no cap, so a
    /// test can count on it.
    pub fn backoff(&self, retry: u32) -> Duration {
        capped_exponential(self.retry_base, Duration::MAX, retry.saturating_sub(1))
    }
}

/// One queued write.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub id: String,
    pub org: String,
    pub pfa_id: String,
    pub priority: u8,
    pub outcome: Outcome,
    /// Attempts made so far.
    pub attempts: u32,
    pub queued_at: Instant,
}

/// Waiting items: ready ones by priority, delayed ones by due time; per
/// organization, how many are ready and when its delayed ones are due, so that
/// `sync-status` never scans the queue.
#[derive(Default)]
pub struct Schedule {
    arrivals: u64,
    ready: BinaryHeap<(u8, Reverse<u64>, ItemSlot)>,
    delayed: BinaryHeap<Reverse<(Instant, u64, ItemSlot)>>,
    ready_of: HashMap<String, usize>,
    due_of: HashMap<String, BinaryHeap<Reverse<Instant>>>,
}

/// Wraps an item so the heaps order by their keys only.
#[derive(Debug)]
struct ItemSlot(Box<Item>);

impl PartialEq for ItemSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for ItemSlot {}
impl PartialOrd for ItemSlot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ItemSlot {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl Schedule {
    /// Adds an item that may run at once.
    pub fn push_ready(&mut self, item: Item) {
        self.arrivals += 1;
        *self.ready_of.entry(item.org.clone()).or_default() += 1;
        self.ready.push((
            item.priority,
            Reverse(self.arrivals),
            ItemSlot(Box::new(item)),
        ));
    }

    /// Adds an item that may run from `due` on.
    pub fn push_delayed(&mut self, item: Item, due: Instant) {
        self.arrivals += 1;
        self.due_of
            .entry(item.org.clone())
            .or_default()
            .push(Reverse(due));
        self.delayed
            .push(Reverse((due, self.arrivals, ItemSlot(Box::new(item)))));
    }

    /// The next item to run at `now`: the highest priority among those due.
    pub fn pop(&mut self, now: Instant) -> Option<Item> {
        while let Some(Reverse((due, _, _))) = self.delayed.peek() {
            if *due > now {
                break;
            }
            let Reverse((_, arrival, slot)) = self.delayed.pop().expect("peeked");
            // The earliest due item overall is the earliest of its organization.
            let org = &slot.0.org;
            if let Some(dues) = self.due_of.get_mut(org) {
                dues.pop();
                if dues.is_empty() {
                    self.due_of.remove(org);
                }
            }
            *self.ready_of.entry(org.clone()).or_default() += 1;
            self.ready.push((slot.0.priority, Reverse(arrival), slot));
        }
        let item = *self.ready.pop()?.2.0;
        if let Some(n) = self.ready_of.get_mut(&item.org) {
            *n -= 1;
            if *n == 0 {
                self.ready_of.remove(&item.org);
            }
        }
        Some(item)
    }

    /// When the earliest delayed item becomes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.delayed.peek().map(|Reverse((due, _, _))| *due)
    }

    /// The earliest due time among `org`'s waiting items (`now` if one is ready).
    pub fn next_for(&self, org: &str, now: Instant) -> Option<Instant> {
        if self.ready_of.contains_key(org) {
            return Some(now);
        }
        self.due_of.get(org)?.peek().map(|Reverse(due)| *due)
    }
}

/// Per-organization figures for `sync-status`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Figures {
    pub waiting: u64,
    pub processing: u64,
    pub completed: u64,
    pub failed: u64,
    pub conflicts: u64,
    pub total_sync_ms: u64,
    pub last_sync_at: Option<Timestamp>,
    /// Current version of each record, for `newVersion`.
    pub versions: HashMap<String, i64>,
}

impl Figures {
    /// The `sync-status` answer of these figures; `next` is when a waiting item is due.
    pub(crate) fn report(&self, next: Option<Timestamp>) -> SyncStatus {
        let finished = self.completed + self.failed + self.conflicts;
        let success_rate = (self.completed * 100).checked_div(finished).unwrap_or(100) as u32;
        let mut extra = serde_json::Map::new();
        extra.insert("conflicts".into(), self.conflicts.into());
        SyncStatus {
            total_queued: self.waiting,
            processing: self.processing,
            completed: self.completed,
            failed: self.failed,
            avg_sync_time: self.total_sync_ms.checked_div(finished),
            last_sync_at: self.last_sync_at,
            next_sync_at: next,
            health: Health::from_success_rate(success_rate),
            success_rate,
            extra,
        }
    }
}

/// The write-sync queue kept elsewhere (Redis), shared by several instances.
pub trait SharedQueue: Send + Sync {
    /// Queues `items` (all or none) and announces each with `SYNC_QUEUED`.
    fn enqueue<'a>(
        &'a self,
        org: &'a str,
        priority: u8,
        items: Vec<NewItem>,
    ) -> BusFuture<'a, Vec<Item>>;
    /// The organization's figures across instances.
    fn status<'a>(&'a self, org: &'a str) -> BusFuture<'a, SyncStatus>;
    /// A conflict was resolved (see [`Queue::conflict_resolved`]).
    fn conflict_resolved<'a>(&'a self, org: &'a str, synced: bool) -> BusFuture<'a, ()>;
    /// Runs this instance's workers until `cancel` fires.
    fn run(
        self: Arc<Self>,
        cancel: CancellationToken,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
    /// Items this instance holds now (in progress or waiting for a retry).
    fn held(&self) -> u64;
}

struct State {
    schedule: Schedule,
    figures: HashMap<String, Figures>,
    next_id: u64,
    /// Items waiting or in progress (or reserved by an enqueue), across organizations.
    backlog: u64,
}

/// An enqueue refused because the queue holds as many items as it may.
#[derive(Debug, thiserror::Error)]
#[error(
    "the write-sync queue is full: {backlog} items wait or run, and {asked} more would pass the limit of {capacity} (--max-queued-items); retry later"
)]
pub struct QueueFull {
    pub backlog: u64,
    pub asked: u64,
    pub capacity: u64,
}

/// QUEUED events an enqueue publishes between two chances for subscribers to drain.
const ENQUEUE_CHUNK: usize = 256;

/// The queue shared by the REST handlers and the workers.
pub struct Queue {
    /// Most items waiting or in progress across organizations.
    capacity: u64,
    config: WorkerConfig,
    bus: Arc<dyn EventBus>,
    state: Mutex<State>,
    wake: Notify,
    conflicts: Option<Arc<dyn ConflictHook>>,
    /// With `--redis`: where the items are kept instead of `state`.
    shared: Option<Arc<dyn SharedQueue>>,
}

/// An item to queue, as the REST layer validated it.
#[derive(Debug)]
pub struct NewItem {
    /// `None` for synthetic items, which are named `pfa-N` after their queue id.
    pub pfa_id: Option<String>,
    pub outcome: Outcome,
}

impl State {
    /// Takes the next id for a new item of `org`.
    fn new_item(&mut self, org: &str, priority: u8, new: NewItem, now: Instant) -> Item {
        self.next_id += 1;
        Item {
            id: format!("item-{}", self.next_id),
            org: org.to_string(),
            pfa_id: new
                .pfa_id
                .unwrap_or_else(|| format!("pfa-{}", self.next_id)),
            priority,
            outcome: new.outcome,
            attempts: 0,
            queued_at: now,
        }
    }

    /// Puts an item that was being processed back to wait until `due`.
    fn requeue(&mut self, item: Item, due: Instant) {
        let figures = self.figures.entry(item.org.clone()).or_default();
        figures.processing -= 1;
        figures.waiting += 1;
        self.schedule.push_delayed(item, due);
    }

    /// Counts an item that ended with `kind`.
    fn finish(&mut self, item: &Item, kind: &EventType, details: &serde_json::Value) {
        self.backlog -= 1;
        let figures = self.figures.entry(item.org.clone()).or_default();
        figures.processing -= 1;
        match kind {
            EventType::Failed => figures.failed += 1,
            EventType::Conflict => figures.conflicts += 1,
            _ => {
                figures.completed += 1;
                if let Some(version) = details["newVersion"].as_i64() {
                    figures.versions.insert(item.pfa_id.clone(), version);
                }
            }
        }
        figures.total_sync_ms += item.queued_at.elapsed().as_millis() as u64;
        figures.last_sync_at = Some(Timestamp::now());
    }

    /// The terminal event of an item's last attempt: failed (a retryable failure with
    /// no retry left), conflict or success.
    fn terminal(&self, item: &Item, retryable_failure: bool) -> (EventType, serde_json::Value) {
        terminal_of(item, retryable_failure, self.version_of(item))
    }

    /// The record's current version (1 before its first write).
    fn version_of(&self, item: &Item) -> i64 {
        self.figures
            .get(&item.org)
            .and_then(|f| f.versions.get(&item.pfa_id))
            .copied()
            .unwrap_or(1)
    }
}

/// The terminal event of an item's last attempt, the record being at `current`:
/// failed (a retryable failure with no retry left), conflict or success.
pub(crate) fn terminal_of(
    item: &Item,
    retryable_failure: bool,
    current: i64,
) -> (EventType, serde_json::Value) {
    if retryable_failure {
        let details = json!({
            "error": "upstream write failed: 503 Service Unavailable (simulated by syncprobe serve)",
            "retryCount": item.attempts - 1,
        });
        (EventType::Failed, details)
    } else if item.outcome == Outcome::Conflict {
        let details = json!({
            "conflictId": conflict_id(),
            "conflictingFields": CONFLICTING_FIELDS,
        });
        (EventType::Conflict, details)
    } else {
        (EventType::Success, json!({ "newVersion": current + 1 }))
    }
}

/// Whether attempt number `attempts` (1-based) of an item with `outcome` fails in a
/// way worth a retry.
pub(crate) fn fails_retryably(outcome: Outcome, attempts: u32) -> bool {
    match outcome {
        Outcome::Failed => true,
        Outcome::RetryThenSuccess => attempts == 1,
        _ => false,
    }
}

/// The fields a simulated conflict names.
pub const CONFLICTING_FIELDS: [&str; 2] = ["quantity", "status"];

/// A conflict id as existing backends make them: `conflict_<ms>_<9 random chars>`.
pub(crate) fn conflict_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    // 36^9 < 2^64: nine base-36 digits of one random number.
    let mut n = rand::random::<u64>();
    let tail: String = (0..9)
        .map(|_| {
            let c = ALPHABET[(n % 36) as usize] as char;
            n /= 36;
            c
        })
        .collect();
    format!("conflict_{}_{tail}", chrono::Utc::now().timestamp_millis())
}

/// Where conflict outcomes are recorded (the conflicts API). `record` is called
/// before the SYNC_CONFLICT event is out, so a client that saw the event finds the
/// conflict; `withdraw` when that event could not be published after all.
pub trait ConflictHook: Send + Sync {
    fn record(&self, item: &Item, conflict_id: &str, local_version: i64);
    fn withdraw(&self, org: &str, conflict_id: &str);
}

impl Queue {
    pub fn new(config: WorkerConfig, bus: Arc<dyn EventBus>) -> Queue {
        Queue {
            capacity: u64::MAX,
            config,
            bus,
            state: Mutex::new(State {
                schedule: Schedule::default(),
                figures: HashMap::new(),
                next_id: 0,
                backlog: 0,
            }),
            wake: Notify::new(),
            conflicts: None,
            shared: None,
        }
    }

    /// Keeps the items in `shared` (Redis) rather than in this process.
    pub fn shared(mut self, shared: Arc<dyn SharedQueue>) -> Queue {
        self.shared = Some(shared);
        self
    }

    /// Records every conflict outcome in `hook`.
    pub fn with_conflict_hook(mut self, hook: Arc<dyn ConflictHook>) -> Queue {
        self.conflicts = Some(hook);
        self
    }

    /// A resolved conflict leaves the conflict figures; resolved as `synced`
    /// (`use_pems`) it counts as completed, otherwise its re-queued item will.
    pub async fn conflict_resolved(&self, org: &str, synced: bool) {
        if let Some(shared) = &self.shared {
            // Best effort: the figures are off by one if Redis is away just now.
            let _ = shared.conflict_resolved(org, synced).await;
            return;
        }
        let mut state = self.state.lock().await;
        let figures = state.figures.entry(org.to_string()).or_default();
        figures.conflicts = figures.conflicts.saturating_sub(1);
        if synced {
            figures.completed += 1;
        }
    }

    /// The queue holding at most `capacity` items (waiting or in progress) at once.
    pub fn capped(mut self, capacity: usize) -> Queue {
        self.capacity = capacity as u64;
        self
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Queues items and emits `SYNC_QUEUED` for each before returning them; refuses
    /// ([`QueueFull`]) what would pass the capacity. The events go out in chunks,
    /// each waiting for the organization's subscribers to have room for it, and no
    /// lock is held while they do: an item is put in the queue after its QUEUED is
    /// out, so QUEUED comes first. If the bus fails, the items announced so far stay
    /// queued and the error is returned.
    pub async fn enqueue(
        &self,
        org: &str,
        priority: u8,
        items: Vec<NewItem>,
    ) -> anyhow::Result<Vec<Item>> {
        if let Some(shared) = &self.shared {
            return shared.enqueue(org, priority, items).await;
        }
        let now = Instant::now();
        let asked = items.len() as u64;
        let items: Vec<Item> = {
            let mut state = self.state.lock().await;
            if state.backlog + asked > self.capacity {
                return Err(QueueFull {
                    backlog: state.backlog,
                    asked,
                    capacity: self.capacity,
                }
                .into());
            }
            state.backlog += asked;
            items
                .into_iter()
                .map(|new| state.new_item(org, priority, new, now))
                .collect()
        };
        let mut queued = Vec::with_capacity(items.len());
        let mut failure = None;
        for chunk in items.chunks(ENQUEUE_CHUNK) {
            if let Err(e) = self.announce(org, chunk, &mut queued).await {
                failure = Some(e.context("failed to announce a queued item"));
                break;
            }
        }
        let unannounced = asked - queued.len() as u64;
        if unannounced > 0 {
            self.state.lock().await.backlog -= unannounced;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(queued),
        }
    }

    /// Publishes the QUEUED events of `chunk`, then queues the items announced.
    async fn announce(
        &self,
        org: &str,
        chunk: &[Item],
        queued: &mut Vec<Item>,
    ) -> anyhow::Result<()> {
        let mut announced = 0;
        let mut failure = None;
        let mut room = 0;
        for item in chunk {
            if room == 0 {
                match self.bus.make_room(org, chunk.len() - announced).await {
                    Ok(n) => room = n,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            room -= 1;
            let queued_event = draft(EventType::Queued, &item.pfa_id, None);
            if let Err(e) = self.bus.publish(org, queued_event).await {
                failure = Some(e);
                break;
            }
            announced += 1;
        }
        let mut state = self.state.lock().await;
        for item in &chunk[..announced] {
            state.figures.entry(org.to_string()).or_default().waiting += 1;
            state.schedule.push_ready(item.clone());
            queued.push(item.clone());
        }
        drop(state);
        for _ in 0..announced.min(self.config.workers) {
            self.wake.notify_one();
        }
        failure.map_or(Ok(()), Err)
    }

    /// Runs the workers until `cancel` fires.
    pub async fn run_workers(self: Arc<Self>, cancel: CancellationToken) {
        if let Some(shared) = &self.shared {
            return shared.clone().run(cancel).await;
        }
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.config.workers.max(1) {
            let queue = self.clone();
            let cancel = cancel.clone();
            workers.spawn(async move {
                while let Some(item) = queue.next(&cancel).await {
                    queue.attempt(item, &cancel).await;
                }
            });
        }
        while workers.join_next().await.is_some() {}
    }

    /// Waits for the next runnable item, or `None` once cancelled.
    async fn next(&self, cancel: &CancellationToken) -> Option<Item> {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let due = {
                let mut state = self.state.lock().await;
                if let Some(item) = state.schedule.pop(Instant::now()) {
                    let figures = state.figures.entry(item.org.clone()).or_default();
                    figures.waiting -= 1;
                    figures.processing += 1;
                    return Some(item);
                }
                state.schedule.next_due()
            };
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = &mut notified => {}
                () = tokio::time::sleep_until(due.unwrap_or(far)) => {}
            }
        }
    }

    /// One attempt: PROCESSING, the simulated work, then a terminal event or a retry.
    /// An event the bus fails to publish leaves the item waiting for another attempt
    /// (after the first retry's backoff), the failed one not counted.
    async fn attempt(&self, mut item: Item, cancel: &CancellationToken) {
        let processing = draft(EventType::Processing, &item.pfa_id, None);
        if self.bus.publish(&item.org, processing).await.is_err() {
            return self.wait_again(item).await;
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(self.config.processing_time) => {}
        }
        item.attempts += 1;
        let retries = item.attempts - 1;
        let retryable_failure = fails_retryably(item.outcome, item.attempts);
        let mut state = self.state.lock().await;
        if retryable_failure && retries < self.config.max_retries {
            state.requeue(item, Instant::now() + self.config.backoff(retries + 1));
            drop(state);
            self.wake.notify_one();
            return;
        }
        let (kind, details) = state.terminal(&item, retryable_failure);
        let conflict = details["conflictId"].as_str().map(String::from);
        if let (Some(hook), Some(id)) = (&self.conflicts, &conflict) {
            hook.record(&item, id, state.version_of(&item));
        }
        drop(state);
        // Counted once the event is out, so sync-status never shows an item finished
        // before its terminal event; no lock is held while the bus publishes.
        let terminal = draft(kind.clone(), &item.pfa_id, Some(details.clone()));
        match self.bus.publish(&item.org, terminal).await {
            Ok(_) => self.state.lock().await.finish(&item, &kind, &details),
            Err(_) => {
                if let (Some(hook), Some(id)) = (&self.conflicts, &conflict) {
                    hook.withdraw(&item.org, id);
                }
                item.attempts -= 1;
                self.wait_again(item).await;
            }
        }
    }

    /// Puts back an item whose attempt could not be announced.
    async fn wait_again(&self, item: Item) {
        let due = Instant::now() + self.config.backoff(1);
        self.state.lock().await.requeue(item, due);
        self.wake.notify_one();
    }

    /// Figures of one organization's queue (across instances with `--redis`).
    pub async fn status(&self, org: &str) -> anyhow::Result<SyncStatus> {
        if let Some(shared) = &self.shared {
            return shared.status(org).await;
        }
        let state = self.state.lock().await;
        let figures = state.figures.get(org).cloned().unwrap_or_default();
        let now = Instant::now();
        let next = state.schedule.next_for(org, now).map(|due| {
            let wait = due.saturating_duration_since(now);
            Timestamp(chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default())
        });
        Ok(figures.report(next))
    }

    /// Items waiting or in progress, across organizations (for `/api/ws/stats`); with
    /// `--redis`, the items this instance holds.
    pub async fn backlog(&self) -> u64 {
        if let Some(shared) = &self.shared {
            return shared.held();
        }
        self.state.lock().await.backlog
    }
}

pub(crate) fn draft(kind: EventType, pfa_id: &str, details: Option<serde_json::Value>) -> Draft {
    Draft {
        kind,
        pfa_id: pfa_id.to_string(),
        details,
        stamp_publish_time: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, priority: u8) -> Item {
        Item {
            id: id.into(),
            org: "o".into(),
            pfa_id: id.into(),
            priority,
            outcome: Outcome::Success,
            attempts: 0,
            queued_at: Instant::now(),
        }
    }

    fn drain(schedule: &mut Schedule, now: Instant) -> Vec<String> {
        std::iter::from_fn(|| schedule.pop(now))
            .map(|i| i.id)
            .collect()
    }

    #[test]
    fn higher_priority_first_then_arrival_order() {
        let mut s = Schedule::default();
        s.push_ready(item("a", 0));
        s.push_ready(item("b", 5));
        s.push_ready(item("c", 0));
        s.push_ready(item("d", 10));
        s.push_ready(item("e", 5));
        assert_eq!(drain(&mut s, Instant::now()), ["d", "b", "e", "a", "c"]);
    }

    #[test]
    fn delayed_items_wait_for_their_due_time() {
        let now = Instant::now();
        let mut s = Schedule::default();
        s.push_delayed(item("late", 10), now + Duration::from_millis(50));
        s.push_ready(item("now", 0));
        assert_eq!(s.next_due(), Some(now + Duration::from_millis(50)));
        assert_eq!(drain(&mut s, now), ["now"]);
        assert_eq!(s.next_for("o", now), Some(now + Duration::from_millis(50)));
        assert_eq!(drain(&mut s, now + Duration::from_millis(50)), ["late"]);
        assert_eq!(s.next_due(), None);
        assert_eq!(s.next_for("o", now), None);
    }

    /// A bus that accepts the first `accepted` publishes and refuses the rest.
    struct FlakyBus {
        accepted: std::sync::atomic::AtomicU64,
    }

    impl EventBus for FlakyBus {
        fn publish<'a>(&'a self, _: &'a str, _: Draft) -> crate::server::bus::BusFuture<'a, u64> {
            use std::sync::atomic::Ordering;
            let left = self
                .accepted
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            Box::pin(async move {
                left.map(|_| 1)
                    .map_err(|_| anyhow::anyhow!("the bus is out of reach"))
            })
        }

        fn subscribe<'a>(
            &'a self,
            _: &'a str,
            _: Option<&'a crate::server::bus::Resume>,
            _: &'a Arc<crate::server::fanout::Outlet>,
        ) -> crate::server::bus::BusFuture<'a, crate::server::bus::Subscription> {
            Box::pin(async { anyhow::bail!("the bus is out of reach") })
        }

        fn published(&self) -> u64 {
            0
        }

        fn connections(&self) -> Vec<(String, usize)> {
            Vec::new()
        }
    }

    #[tokio::test]
    async fn a_failing_bus_fails_the_enqueue_and_leaves_items_waiting() {
        let cfg = WorkerConfig {
            workers: 1,
            processing_time: Duration::ZERO,
            max_retries: 3,
            retry_base: Duration::from_millis(10),
        };
        let bus = FlakyBus { accepted: 1.into() };
        let queue = Queue::new(cfg, Arc::new(bus));
        let new = || NewItem {
            pfa_id: None,
            outcome: Outcome::Success,
        };
        let error = queue.enqueue("o", 0, vec![new(), new()]).await.unwrap_err();
        assert!(format!("{error:#}").contains("the bus is out of reach"));
        assert_eq!(
            queue.status("o").await.unwrap().total_queued,
            1,
            "the announced one"
        );
        // Its PROCESSING cannot be announced either: it waits again, uncounted.
        let cancel = CancellationToken::new();
        let item = queue.next(&cancel).await.unwrap();
        queue.attempt(item, &cancel).await;
        let status = queue.status("o").await.unwrap();
        assert_eq!(
            (status.total_queued, status.processing, status.completed),
            (1, 0, 0)
        );
        assert!(status.next_sync_at.is_some());
    }

    #[test]
    fn backoff_doubles_from_the_base() {
        let cfg = WorkerConfig {
            workers: 1,
            processing_time: Duration::ZERO,
            max_retries: 3,
            retry_base: Duration::from_millis(10),
        };
        let delays: Vec<u128> = (1..=4).map(|n| cfg.backoff(n).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80]);
        assert_eq!(
            cfg.backoff(200),
            Duration::from_millis(10).saturating_mul(u32::MAX)
        );
    }
}
