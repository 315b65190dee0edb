//! The write-sync queue in Redis (`serve --redis`), shared by every instance.
//!
//! - Layout: per organization one stream per priority (`syncprobe:{org}:queue:P`)
//!   with one consumer group; every instance is a consumer (its instance id). An
//!   organization's keys share its hash tag, so each script touches one slot. The
//!   set `syncprobe:queues` names the organizations with items (bounded: an
//!   organization leaves it once nothing waits or runs).
//! - Order: a worker takes one entry at a time from the highest priority stream
//!   that has one, oldest first; so priority order holds across instances.
//! - Transitions, each one Lua script: `enqueue.lua` (XADD every item of a request
//!   and publish its SYNC_QUEUED, all or none), `next.lua` (XAUTOCLAIM an entry
//!   left idle for `--claim-after`, else XREADGROUP a new one), `attempt.lua`
//!   (SYNC_PROCESSING if the entry is still this consumer's), `touch.lua` (keeps an
//!   entry in progress or in its retry backoff from being claimed), `finish.lua`
//!   (XACK + XDEL + counters + the terminal event, only if still pending for this
//!   consumer: exactly one terminal event per item, whoever claimed it).
//! - Polling: workers never BLOCK (the connection is shared by every command); an
//!   idle worker polls every [`POLL`], a failing Redis backs it off up to
//!   [`BACKOFF_CAP`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{MAX_PRIORITY, OrgKeys, Redis};
use crate::backoff::capped_exponential;
use crate::protocol::{EventType, Outcome, SyncStatus, Timestamp};
use crate::server::bus::BusFuture;
use crate::server::in_process::{event_of, new_epoch, unix_micros};
use crate::server::queue::{
    ConflictHook, Figures, Item, NewItem, QueueFull, SharedQueue, WorkerConfig, draft,
    fails_retryably, terminal_of,
};

/// The consumer group of every queue stream.
const GROUP: &str = "workers";
/// The organizations that have items waiting or in progress.
const ORGS_KEY: &str = "syncprobe:queues";
/// How often an idle worker looks for items.
pub const POLL: Duration = Duration::from_millis(100);
/// Longest pause of a worker while Redis fails.
pub const BACKOFF_CAP: Duration = Duration::from_secs(1);
/// Organizations one poll looks at (picked at random when there are more).
const ORGS_PER_POLL: usize = 64;

/// The Redis queue of one instance.
pub struct RedisQueue {
    redis: Arc<Redis>,
    config: WorkerConfig,
    history: usize,
    claim_after: Duration,
    /// Most items waiting or in progress per organization (`--max-queued-items`).
    capacity: u64,
    conflicts: Option<Arc<dyn ConflictHook>>,
    held: AtomicU64,
    scripts: Scripts,
}

struct Scripts {
    enqueue: redis::Script,
    next: redis::Script,
    attempt: redis::Script,
    touch: redis::Script,
    finish: redis::Script,
}

/// An entry this consumer took.
struct Taken {
    item: Item,
    keys: OrgKeys,
    /// Its stream.
    stream: String,
    entry: String,
    queued_ms: i64,
}

impl Taken {
    fn field(&self) -> String {
        format!("{}/{}", self.item.priority, self.entry)
    }
}

/// The queue's settings under Redis.
pub struct RedisQueueConfig {
    pub worker: WorkerConfig,
    pub history: usize,
    pub claim_after: Duration,
    pub capacity: usize,
}

impl RedisQueue {
    pub fn new(
        redis: Arc<Redis>,
        config: RedisQueueConfig,
        conflicts: Option<Arc<dyn ConflictHook>>,
    ) -> RedisQueue {
        let with_publish =
            |body: &str| redis::Script::new(&format!("{}{body}", include_str!("publish_fn.lua")));
        RedisQueue {
            redis,
            config: config.worker,
            history: config.history,
            claim_after: config.claim_after,
            capacity: config.capacity as u64,
            conflicts,
            held: AtomicU64::new(0),
            scripts: Scripts {
                enqueue: with_publish(include_str!("enqueue.lua")),
                next: redis::Script::new(include_str!("next.lua")),
                attempt: with_publish(include_str!("attempt.lua")),
                touch: redis::Script::new(include_str!("touch.lua")),
                finish: with_publish(include_str!("finish.lua")),
            },
        }
    }

    async fn enqueue_now(
        &self,
        org: &str,
        priority: u8,
        items: Vec<NewItem>,
    ) -> anyhow::Result<Vec<Item>> {
        let keys = OrgKeys::of(org);
        let priority = priority.min(MAX_PRIORITY);
        let n = items.len() as u64;
        let mut conn = self.redis.conn();
        // Ids first (a failed enqueue only skips some), and the index before the
        // items, so a worker never misses an organization that has some.
        let last: u64 = self
            .redis
            .run("write-sync", conn.hincr(&keys.counts, "ids", n))
            .await?;
        let _: i64 = self
            .redis
            .run("write-sync", conn.sadd(ORGS_KEY, org))
            .await?;
        let now = Instant::now();
        let items: Vec<Item> = items
            .into_iter()
            .zip(last + 1 - n..)
            .map(|(new, k)| Item {
                id: format!("item-{k}"),
                org: org.to_string(),
                pfa_id: new.pfa_id.unwrap_or_else(|| format!("pfa-{k}")),
                priority,
                outcome: new.outcome,
                attempts: 0,
                queued_at: now,
            })
            .collect();
        let mut invocation = self.publishing(&self.scripts.enqueue, &keys);
        invocation
            .key(&keys.queues[usize::from(MAX_PRIORITY - priority)])
            .key(&keys.counts)
            .arg(self.capacity)
            .arg(GROUP)
            .arg(chrono::Utc::now().timestamp_millis())
            .arg(priority);
        for item in &items {
            invocation
                .arg(&item.id)
                .arg(&item.pfa_id)
                .arg(serde_json::to_value(item.outcome)?.as_str().unwrap_or(""))
                .arg(event_json(org, EventType::Queued, &item.pfa_id, None)?);
        }
        let answer: Vec<u64> = self
            .redis
            .run("write-sync", invocation.invoke_async(&mut conn))
            .await?;
        if answer.first() == Some(&0) {
            return Err(QueueFull {
                backlog: answer.get(1).copied().unwrap_or(0),
                asked: n,
                capacity: self.capacity,
            }
            .into());
        }
        self.redis.metrics.event(org, EventType::Queued.as_str(), n);
        Ok(items)
    }

    async fn status_now(&self, org: &str) -> anyhow::Result<SyncStatus> {
        let keys = OrgKeys::of(org);
        let mut conn = self.redis.conn();
        let map: HashMap<String, i64> = self
            .redis
            .run("sync-status", conn.hgetall(&keys.counts))
            .await?;
        let get = |k: &str| map.get(k).copied().unwrap_or(0).max(0) as u64;
        let figures = Figures {
            waiting: get("waiting"),
            processing: get("processing"),
            completed: get("completed"),
            failed: get("failed"),
            conflicts: get("conflicts"),
            total_sync_ms: get("total_sync_ms"),
            last_sync_at: map
                .get("last_sync_ms")
                .and_then(|ms| chrono::DateTime::from_timestamp_millis(*ms))
                .map(Timestamp),
            versions: HashMap::new(),
        };
        let next = (figures.waiting > 0).then(Timestamp::now);
        Ok(figures.report(next))
    }

    /// One worker: takes entries until `cancel`, pausing when there are none or
    /// Redis fails.
    async fn work(self: Arc<Self>, cancel: CancellationToken) {
        let mut failures = 0;
        while !cancel.is_cancelled() {
            let pause = match self.next().await {
                Ok(Some(taken)) => {
                    failures = 0;
                    self.held.fetch_add(1, Ordering::Relaxed);
                    self.attempts(taken, &cancel).await;
                    self.held.fetch_sub(1, Ordering::Relaxed);
                    continue;
                }
                Ok(None) => POLL,
                Err(_) => {
                    failures += 1;
                    capped_exponential(POLL, BACKOFF_CAP, failures - 1)
                }
            };
            if !pause_for(pause, &cancel).await {
                break;
            }
        }
    }

    /// The next entry for this consumer from the organizations with items.
    async fn next(&self) -> anyhow::Result<Option<Taken>> {
        let mut conn = self.redis.conn();
        let mut srandmember = redis::cmd("SRANDMEMBER");
        srandmember.arg(ORGS_KEY).arg(ORGS_PER_POLL);
        let orgs: Vec<String> = self
            .redis
            .run("queue poll", srandmember.query_async(&mut conn))
            .await?;
        for org in orgs {
            let keys = OrgKeys::of(&org);
            let mut invocation = self.scripts.next.prepare_invoke();
            invocation.key(&keys.counts);
            for queue in &keys.queues {
                invocation.key(queue);
            }
            invocation
                .arg(GROUP)
                .arg(&self.redis.id)
                .arg(self.claim_after.as_millis() as u64);
            let reply: Vec<String> = self
                .redis
                .run("queue poll", invocation.invoke_async(&mut conn))
                .await?;
            if reply.first().map(String::as_str) == Some("0") {
                if reply.get(1).map(String::as_str) == Some("0") {
                    self.forget(&org, &keys).await?;
                }
                continue;
            }
            if let Some(taken) = taken_of(&org, keys, &reply) {
                return Ok(Some(taken));
            }
        }
        Ok(None)
    }

    /// Drops an organization with nothing waiting or running from the index, and
    /// puts it back if an enqueue raced in.
    async fn forget(&self, org: &str, keys: &OrgKeys) -> anyhow::Result<()> {
        let mut conn = self.redis.conn();
        let _: i64 = self
            .redis
            .run("queue index", conn.srem(ORGS_KEY, org))
            .await?;
        let left: (Option<i64>, Option<i64>) = self
            .redis
            .run(
                "queue index",
                redis::cmd("HMGET")
                    .arg(&keys.counts)
                    .arg("waiting")
                    .arg("processing")
                    .query_async(&mut conn),
            )
            .await?;
        if left.0.unwrap_or(0) + left.1.unwrap_or(0) > 0 {
            let _: i64 = self
                .redis
                .run("queue index", conn.sadd(ORGS_KEY, org))
                .await?;
        }
        Ok(())
    }

    /// Attempts an entry until its terminal event, a claim by another instance, or
    /// `cancel` (the entry stays pending, for another instance to claim).
    async fn attempts(&self, mut taken: Taken, cancel: &CancellationToken) {
        let mut failures = 0;
        loop {
            let attempt = match self.begin(&taken).await {
                Ok(n) => n,
                Err(_) => {
                    failures += 1;
                    if !pause_for(self.retry_pause(failures), cancel).await {
                        return;
                    }
                    continue;
                }
            };
            if attempt < 1 {
                return; // Another instance claimed it.
            }
            failures = 0;
            taken.item.attempts = attempt as u32;
            if !self.hold(&taken, self.config.processing_time, cancel).await {
                return;
            }
            let retryable = fails_retryably(taken.item.outcome, taken.item.attempts);
            let retries = taken.item.attempts - 1;
            if retryable && retries < self.config.max_retries {
                let backoff = self.config.backoff(retries + 1);
                if !self.hold(&taken, backoff, cancel).await {
                    return;
                }
                continue;
            }
            return self.end(&taken, retryable, cancel).await;
        }
    }

    fn retry_pause(&self, failures: u32) -> Duration {
        capped_exponential(POLL, BACKOFF_CAP, failures.saturating_sub(1))
    }

    /// SYNC_PROCESSING for the entry's next attempt: its number, or -1 if the entry
    /// is no longer this consumer's.
    /// A call of a script that publishes: what `publish_fn.lua` reads comes first
    /// (KEYS meta, stream, channel; ARGV history, a fresh epoch, the publish time), the
    /// script's own keys and arguments follow.
    fn publishing<'a>(
        &self,
        script: &'a redis::Script,
        keys: &OrgKeys,
    ) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.stream)
            .key(&keys.channel)
            .arg(self.history)
            .arg(new_epoch())
            .arg(unix_micros());
        invocation
    }

    async fn begin(&self, taken: &Taken) -> anyhow::Result<i64> {
        let json = event_json(
            &taken.item.org,
            EventType::Processing,
            &taken.item.pfa_id,
            None,
        )?;
        let keys = &taken.keys;
        let mut invocation = self.publishing(&self.scripts.attempt, keys);
        invocation
            .key(&taken.stream)
            .key(&keys.attempts)
            .arg(GROUP)
            .arg(&self.redis.id)
            .arg(&taken.entry)
            .arg(taken.field())
            .arg(json);
        let mut conn = self.redis.conn();
        let n: i64 = self
            .redis
            .run("queue attempt", invocation.invoke_async(&mut conn))
            .await?;
        if n > 0 {
            let kind = EventType::Processing.as_str();
            self.redis.metrics.event(&taken.item.org, kind, 1);
        }
        Ok(n)
    }

    /// Waits `time` with the entry kept from being claimed; `false` if cancelled.
    async fn hold(&self, taken: &Taken, time: Duration, cancel: &CancellationToken) -> bool {
        let done = tokio::time::sleep(time);
        tokio::pin!(done);
        let period = (self.claim_after / 3).max(Duration::from_millis(10));
        let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = &mut done => return true,
                _ = ticks.tick() => self.touch(taken).await,
            }
        }
    }

    async fn touch(&self, taken: &Taken) {
        let mut invocation = self.scripts.touch.prepare_invoke();
        invocation
            .key(&taken.stream)
            .arg(GROUP)
            .arg(&self.redis.id)
            .arg(&taken.entry);
        let mut conn = self.redis.conn();
        let _: anyhow::Result<i64> = self
            .redis
            .run("queue touch", invocation.invoke_async(&mut conn))
            .await;
    }

    /// The terminal transition, retried while Redis fails (a retry after one that
    /// did go through finds the entry ended and does nothing).
    async fn end(&self, taken: &Taken, retryable: bool, cancel: &CancellationToken) {
        let mut failures = 0;
        let current = loop {
            let mut conn = self.redis.conn();
            let read = conn.hget(&taken.keys.versions, &taken.item.pfa_id);
            match self.redis.run("queue version", read).await {
                Ok(version) => break Option::<i64>::unwrap_or(version, 1),
                Err(_) => failures += 1,
            }
            if !pause_for(self.retry_pause(failures), cancel).await {
                return;
            }
        };
        let (kind, details) = terminal_of(&taken.item, retryable, current);
        let conflict = details["conflictId"].as_str().map(String::from);
        if let (Some(hook), Some(id)) = (&self.conflicts, &conflict) {
            hook.record(&taken.item, id, current);
        }
        let ended = loop {
            match self.finish(taken, &kind, &details).await {
                Ok(ended) => break ended,
                Err(_) => failures += 1,
            }
            if !pause_for(self.retry_pause(failures), cancel).await {
                break false;
            }
        };
        if ended {
            self.redis.metrics.event(&taken.item.org, kind.as_str(), 1);
        } else if let (Some(hook), Some(id)) = (&self.conflicts, &conflict) {
            hook.withdraw(&taken.item.org, id);
        }
    }

    async fn finish(
        &self,
        taken: &Taken,
        kind: &EventType,
        details: &serde_json::Value,
    ) -> anyhow::Result<bool> {
        let org = &taken.item.org;
        let json = event_json(org, kind.clone(), &taken.item.pfa_id, Some(details.clone()))?;
        let counter = match kind {
            EventType::Failed => "failed",
            EventType::Conflict => "conflicts",
            _ => "completed",
        };
        let now = chrono::Utc::now().timestamp_millis();
        let version = details["newVersion"]
            .as_i64()
            .map_or(String::new(), |v| v.to_string());
        let keys = &taken.keys;
        let mut invocation = self.publishing(&self.scripts.finish, keys);
        invocation
            .key(&taken.stream)
            .key(&keys.counts)
            .key(&keys.attempts)
            .key(&keys.versions)
            .arg(GROUP)
            .arg(&self.redis.id)
            .arg(&taken.entry)
            .arg(taken.field())
            .arg(json)
            .arg(counter)
            .arg((now - taken.queued_ms).max(0))
            .arg(now)
            .arg(&taken.item.pfa_id)
            .arg(version);
        let mut conn = self.redis.conn();
        let ended: i64 = self
            .redis
            .run("queue finish", invocation.invoke_async(&mut conn))
            .await?;
        Ok(ended == 1)
    }
}

/// Sleeps `time`; `false` if `cancel` fired first.
async fn pause_for(time: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(time) => true,
    }
}

/// The entry `next.lua` returned: `{stream index, id, claimed, field, value, …}`.
fn taken_of(org: &str, keys: OrgKeys, reply: &[String]) -> Option<Taken> {
    let index: usize = reply.first()?.parse().ok()?;
    let entry = reply.get(1)?.clone();
    let fields: HashMap<&str, &str> = reply
        .get(3..)?
        .chunks_exact(2)
        .map(|pair| (pair[0].as_str(), pair[1].as_str()))
        .collect();
    let outcome: Outcome = serde_json::from_value(serde_json::Value::String(
        fields.get("outcome")?.to_string(),
    ))
    .ok()?;
    let item = Item {
        id: fields.get("id")?.to_string(),
        org: org.to_string(),
        pfa_id: fields.get("pfa")?.to_string(),
        priority: fields.get("priority")?.parse().ok()?,
        outcome,
        attempts: 0,
        queued_at: Instant::now(),
    };
    Some(Taken {
        stream: keys.queues.get(index.checked_sub(1)?)?.clone(),
        keys,
        entry,
        queued_ms: fields.get("queued")?.parse().ok()?,
        item,
    })
}

fn event_json(
    org: &str,
    kind: EventType,
    pfa_id: &str,
    details: Option<serde_json::Value>,
) -> anyhow::Result<String> {
    Ok(serde_json::to_string(&event_of(
        org,
        &draft(kind, pfa_id, details),
        None,
    ))?)
}

impl SharedQueue for RedisQueue {
    fn enqueue<'a>(
        &'a self,
        org: &'a str,
        priority: u8,
        items: Vec<NewItem>,
    ) -> BusFuture<'a, Vec<Item>> {
        Box::pin(self.enqueue_now(org, priority, items))
    }

    fn status<'a>(&'a self, org: &'a str) -> BusFuture<'a, SyncStatus> {
        Box::pin(self.status_now(org))
    }

    fn conflict_resolved<'a>(&'a self, org: &'a str, synced: bool) -> BusFuture<'a, ()> {
        Box::pin(async move {
            let keys = OrgKeys::of(org);
            let mut pipe = redis::pipe();
            pipe.hincr(&keys.counts, "conflicts", -1).ignore();
            if synced {
                pipe.hincr(&keys.counts, "completed", 1).ignore();
            }
            let mut conn = self.redis.conn();
            self.redis
                .run("conflict figures", pipe.query_async::<()>(&mut conn))
                .await
        })
    }

    fn run(
        self: Arc<Self>,
        cancel: CancellationToken,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..self.config.workers.max(1) {
                workers.spawn(self.clone().work(cancel.clone()));
            }
            while workers.join_next().await.is_some() {}
        })
    }

    fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }
}
