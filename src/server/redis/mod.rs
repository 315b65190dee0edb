//! The Redis engine (`serve --redis URL`): several instances share numbering,
//! history, fan-out and the write-sync queue through one Redis.
//!
//! - [`Redis`] (here): the connection (a `ConnectionManager`, every command bounded
//!   by [`COMMAND_TIMEOUT`]), the health that `/healthz` reports, this instance's id
//!   and its heartbeat key, and the cluster view of `/api/ws/stats`.
//! - `bus.rs`: the [`RedisBus`] (`EventBus`): one Lua script per publish
//!   (`publish.lua`: epoch, seq, capped stream, PUBLISH), pub/sub per organization,
//!   resume from the stream, reconnection and the liveness probe.
//!
//! - `queue.rs`: the [`RedisQueue`] (`SharedQueue`): the write-sync queue as one
//!   stream per organization and priority with one consumer group, every instance
//!   a consumer; each transition is one Lua script (`enqueue.lua`, `next.lua`,
//!   `attempt.lua`, `touch.lua`, `finish.lua`), and those that publish begin with
//!   `publish_fn.lua`, the same numbering as `publish.lua`.
//!
//! Keys are hash-tagged by organization (`syncprobe:{org}:…`), so an organization's
//! keys stay in one slot of a Redis Cluster and its scripts touch one slot only.

mod bus;
mod queue;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub use self::bus::RedisBus;
pub use self::queue::{RedisQueue, RedisQueueConfig};
use super::bus::Unavailable;
use super::metrics::Metrics;

/// Longest any one Redis command may take before the bus counts Redis as stalled.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(1000);
/// How often an instance renews its heartbeat key.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// An instance whose heartbeat is older than this is left out of the cluster view.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(5);

/// The settings of `--redis` (the URL is a secret: its `Debug` hides it).
#[derive(Clone)]
pub struct RedisConfig {
    client: redis::Client,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"(hidden)")
            .finish()
    }
}

impl RedisConfig {
    /// Parses `redis://` or `rediss://` (no connection yet). The error never
    /// repeats the URL, which may carry a password.
    pub fn new(url: &str) -> anyhow::Result<RedisConfig> {
        let scheme = url.split("://").next().unwrap_or_default();
        if !matches!(scheme, "redis" | "rediss") {
            anyhow::bail!("the Redis URL must start with redis:// or rediss://");
        }
        let client = redis::Client::open(url).map_err(|_| {
            anyhow::anyhow!("the Redis URL is not valid (check its host, port and database)")
        })?;
        Ok(RedisConfig { client })
    }
}

/// What is wrong with Redis now, by part: both `None` means healthy.
#[derive(Default)]
struct Health {
    commands: Option<String>,
    pubsub: Option<String>,
}

/// The shared handle on Redis of one instance.
pub struct Redis {
    pub(crate) client: redis::Client,
    manager: ConnectionManager,
    health: Mutex<Health>,
    pub(crate) metrics: Arc<Metrics>,
    /// This instance's id in the cluster view and as a queue consumer.
    pub id: String,
}

impl Redis {
    /// A handle that connects lazily (the server starts while Redis is away).
    pub fn new(config: &RedisConfig, metrics: Arc<Metrics>) -> anyhow::Result<Arc<Redis>> {
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(COMMAND_TIMEOUT);
        let manager =
            ConnectionManager::new_lazy_with_config(config.client.clone(), manager_config)
                .context("failed to set up the Redis connection")?;
        let id = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        let redis = Redis {
            client: config.client.clone(),
            manager,
            health: Mutex::new(Health {
                commands: None,
                pubsub: Some("not yet subscribed to Redis".into()),
            }),
            metrics,
            id,
        };
        redis.metrics.redis_up.set(0);
        Ok(Arc::new(redis))
    }

    /// A connection for one command (cloning it shares the one multiplexed socket).
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// Runs one Redis call bounded by [`COMMAND_TIMEOUT`]; a failure or a stall marks
    /// Redis unhealthy and is returned as [`Unavailable`], a success marks it healthy.
    pub(crate) async fn run<T>(
        &self,
        what: &str,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> anyhow::Result<T> {
        let reason = match tokio::time::timeout(COMMAND_TIMEOUT, call).await {
            Ok(Ok(value)) => {
                self.set_health(|h| h.commands = None);
                return Ok(value);
            }
            Ok(Err(e)) => format!("Redis failed a {what}: {e}"),
            Err(_) => format!(
                "Redis did not answer a {what} within {}ms (stalled or unreachable)",
                COMMAND_TIMEOUT.as_millis()
            ),
        };
        self.set_health(|h| h.commands = Some(reason.clone()));
        Err(Unavailable(reason).into())
    }

    /// Records the pub/sub connection's state (`None`: alive).
    pub(crate) fn pubsub_health(&self, problem: Option<String>) {
        self.set_health(|h| h.pubsub = problem);
    }

    fn set_health(&self, f: impl FnOnce(&mut Health)) {
        let mut health = self.health.lock().expect("health lock");
        f(&mut health);
        let up = health.commands.is_none() && health.pubsub.is_none();
        self.metrics.redis_up.set(i64::from(up));
    }

    /// Why this instance is degraded, if it is.
    pub fn degraded(&self) -> Option<String> {
        let health = self.health.lock().expect("health lock");
        match (&health.commands, &health.pubsub) {
            (None, None) => None,
            (Some(c), None) => Some(c.clone()),
            (None, Some(p)) => Some(p.clone()),
            (Some(c), Some(p)) => Some(format!("{c}; {p}")),
        }
    }

    /// Renews this instance's heartbeat key until `shutdown`, then removes it.
    pub(crate) async fn heartbeat(
        self: Arc<Self>,
        connections: impl Fn() -> Vec<(String, usize)>,
        shutdown: CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(HEARTBEAT_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => self.beat(&connections()).await,
            }
        }
        let mut conn = self.conn();
        let _ = tokio::time::timeout(COMMAND_TIMEOUT, async {
            let _: redis::RedisResult<()> = redis::pipe()
                .del(instance_key(&self.id))
                .zrem(INSTANCES_KEY, &self.id)
                .query_async(&mut conn)
                .await;
        })
        .await;
    }

    async fn beat(&self, connections: &[(String, usize)]) {
        let now = chrono::Utc::now();
        let orgs: BTreeMap<&str, usize> =
            connections.iter().map(|(o, n)| (o.as_str(), *n)).collect();
        let record = json!({
            "id": self.id,
            "lastHeartbeat": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "connections": orgs,
        });
        let now_ms = now.timestamp_millis();
        let stale = now_ms - 60 * HEARTBEAT_TTL.as_millis() as i64;
        let mut conn = self.conn();
        let pipe = redis::pipe()
            .set_ex(
                instance_key(&self.id),
                record.to_string(),
                HEARTBEAT_TTL.as_secs(),
            )
            .zadd(INSTANCES_KEY, &self.id, now_ms)
            .zrembyscore(INSTANCES_KEY, "-inf", stale)
            .to_owned();
        let _ = self
            .run("heartbeat", pipe.query_async::<()>(&mut conn))
            .await;
    }

    /// The live instances (heartbeat younger than [`HEARTBEAT_TTL`]) and their
    /// connections summed per organization.
    pub(crate) async fn cluster(&self) -> anyhow::Result<Value> {
        let mut conn = self.conn();
        let since = chrono::Utc::now().timestamp_millis() - HEARTBEAT_TTL.as_millis() as i64;
        let ids: Vec<String> = self
            .run(
                "cluster view",
                conn.zrangebyscore(INSTANCES_KEY, since, "+inf"),
            )
            .await?;
        let keys: Vec<String> = ids.iter().map(|id| instance_key(id)).collect();
        let records: Vec<Option<String>> = if keys.is_empty() {
            Vec::new()
        } else {
            let mut conn = self.conn();
            self.run("cluster view", conn.mget(&keys)).await?
        };
        let mut per_org: BTreeMap<String, u64> = BTreeMap::new();
        let mut instances = Vec::new();
        for record in records.into_iter().flatten() {
            let Ok(record) = serde_json::from_str::<Value>(&record) else {
                continue;
            };
            if let Some(orgs) = record["connections"].as_object() {
                for (org, n) in orgs {
                    *per_org.entry(org.clone()).or_default() += n.as_u64().unwrap_or(0);
                }
            }
            instances.push(json!({
                "id": record["id"],
                "lastHeartbeat": record["lastHeartbeat"],
                "totalConnections": record["connections"]
                    .as_object()
                    .map_or(0, |o| o.values().filter_map(Value::as_u64).sum::<u64>()),
            }));
        }
        let total: u64 = per_org.values().sum();
        Ok(json!({
            "instances": instances,
            "totalConnections": total,
            "organizations": per_org,
        }))
    }
}

/// The sorted set of instance ids by last heartbeat (ms).
const INSTANCES_KEY: &str = "syncprobe:instances";

fn instance_key(id: &str) -> String {
    format!("syncprobe:instance:{id}")
}

/// The keys of one organization, hash-tagged so they share a slot.
pub(crate) struct OrgKeys {
    pub meta: String,
    pub stream: String,
    pub channel: String,
    /// The write-sync queue: one stream per priority, highest first (index 0 is
    /// priority [`MAX_PRIORITY`]).
    pub queues: Vec<String>,
    /// The queue's figures (waiting, processing, completed, …).
    pub counts: String,
    /// Attempts made per queued entry.
    pub attempts: String,
    /// Each record's current version (for `newVersion`).
    pub versions: String,
}

/// The highest write-sync priority (`priority` is 0 to 10).
pub const MAX_PRIORITY: u8 = 10;

impl OrgKeys {
    pub fn of(org: &str) -> OrgKeys {
        // A brace would end the hash tag early: such an id is tagged in hex, and its
        // keys marked `:x:` so they never meet those of an id spelled like the hex.
        let (tag, mark) = if org.contains(['{', '}']) {
            (org.bytes().map(|b| format!("{b:02x}")).collect(), ":x")
        } else {
            (org.to_string(), "")
        };
        let key = |part: &str| format!("syncprobe:{{{tag}}}{mark}:{part}");
        OrgKeys {
            meta: key("meta"),
            stream: key("history"),
            channel: key("events"),
            queues: (0..=MAX_PRIORITY)
                .rev()
                .map(|p| key(&format!("queue:{p}")))
                .collect(),
            counts: key("queue:counts"),
            attempts: key("queue:attempts"),
            versions: key("queue:versions"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_organizations_keys_share_one_hash_tag_and_braces_cannot_collide() {
        let keys = OrgKeys::of("org-rio");
        let queue = [&keys.counts, &keys.attempts, &keys.versions];
        for key in [&keys.meta, &keys.stream, &keys.channel]
            .into_iter()
            .chain(queue)
            .chain(&keys.queues)
        {
            assert!(key.starts_with("syncprobe:{org-rio}:"), "{key}");
        }
        let braces = OrgKeys::of("{");
        assert_eq!(braces.meta, "syncprobe:{7b}:x:meta");
        assert_ne!(braces.meta, OrgKeys::of("7b").meta);
    }

    #[test]
    fn the_url_must_be_redis_and_is_never_shown() {
        assert!(RedisConfig::new("http://h/").is_err());
        let config = RedisConfig::new("redis://:s3cret@127.0.0.1:1/0").unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(RedisConfig::new("rediss://127.0.0.1:1/").is_ok());
    }
}
