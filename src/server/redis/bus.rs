//! The [`EventBus`] over Redis, for several instances.
//!
//! - Publish: one Lua script (`publish_fn.lua` + `publish.lua`) reads or creates the organization's
//!   epoch, takes the next seq, appends the event to a stream capped at `--history`
//!   events and PUBLISHes it, all atomically: publish order is seq order everywhere.
//!   The message carries seq, epoch and the publish wall time (for the lag metric).
//! - Subscribe: an instance subscribes (pub/sub) to the organizations it has sockets
//!   for. A new socket is registered first, then the subscription is confirmed,
//!   then `state.lua` reads epoch, seq and history in one step: what was published
//!   before it is in the replay, what after it arrives live, and each socket drops
//!   the live frames its replay already had (dedupe by seq). A gap in seq or another
//!   epoch on the live stream closes the socket as lagging (1013), so it resumes
//!   with `since` and learns `historyTruncated` if the stream cannot fill the gap.
//! - Failure: one task owns the pub/sub connection. It reconnects with backoff and
//!   re-subscribes every room; after a reconnect, a room whose epoch and seq in
//!   Redis moved past what it delivered cannot prove continuity and its sockets are
//!   closed the same way. A probe (a PUBLISH on this instance's ping channel every
//!   [`PROBE_INTERVAL`], answered within [`PROBE_TIMEOUT`]) notices a subscription
//!   that died silently. Sockets stay open while Redis is away; publishes fail with
//!   `Unavailable` (503).
//!
//! Live frames go to the local fan-out (`fanout.rs`) as the in-process bus's do, in
//! the order the pub/sub connection delivers them.
//!
//! Bounds: history by count (`--history`; the byte bounds apply to the in-process
//! bus only); a socket falls behind by at most `--lag-limit` events and
//! `--max-queued-bytes` bytes (the fan-out's bounds, as in-process).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{COMMAND_TIMEOUT, OrgKeys, Redis};
use crate::backoff::capped_exponential;
use crate::protocol::{Connected, Timestamp};
use crate::server::bus::{BusFuture, Draft, EventBus, Frame, Resume, Subscription, Unavailable};
use crate::server::fanout::{Hub, Member, Outlet};
use crate::server::in_process::{event_of, new_epoch, unix_micros};

/// How often the pub/sub connection is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// A probe not back within this long means the subscription is dead.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
/// First delay before reconnecting the pub/sub connection; doubles up to the cap.
const RECONNECT_BASE: Duration = Duration::from_millis(100);
const RECONNECT_CAP: Duration = Duration::from_secs(1);
/// Organizations whose last epoch is remembered (to count epoch resets).
const KNOWN_EPOCHS: usize = 10_000;

/// What a room hands its sockets.
/// An organization's epoch and seq.
type Position = (Arc<str>, u64);

struct Room {
    subscribers: usize,
    /// The epoch and seq last seen for the organization.
    last: Option<Position>,
}

enum Command {
    Subscribe(String, oneshot::Sender<Result<(), String>>),
    Unsubscribe(String),
}

struct Shared {
    redis: Arc<Redis>,
    history: usize,
    hub: Arc<Hub>,
    rooms: Mutex<HashMap<String, Room>>,
    commands: mpsc::UnboundedSender<Command>,
    published: AtomicU64,
    publish_script: redis::Script,
    state_script: redis::Script,
    epochs: Mutex<HashMap<String, Arc<str>>>,
    ping_channel: String,
}

/// The Redis bus of one instance.
pub struct RedisBus(Arc<Shared>);

impl RedisBus {
    /// Starts the pub/sub and heartbeat tasks (they stop with `shutdown`).
    pub fn start(
        redis: Arc<Redis>,
        hub: Arc<Hub>,
        history: usize,
        shutdown: CancellationToken,
    ) -> RedisBus {
        let (commands, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            ping_channel: format!("syncprobe:ping:{}", redis.id),
            redis,
            history,
            hub,
            rooms: Mutex::default(),
            commands,
            published: AtomicU64::new(0),
            publish_script: redis::Script::new(concat!(
                include_str!("publish_fn.lua"),
                include_str!("publish.lua")
            )),
            state_script: redis::Script::new(include_str!("state.lua")),
            epochs: Mutex::default(),
        });
        tokio::spawn(pubsub(shared.clone(), rx, shutdown.clone()));
        let beat = shared.clone();
        tokio::spawn(
            shared
                .redis
                .clone()
                .heartbeat(move || beat.connections(), shutdown),
        );
        RedisBus(shared)
    }
}

impl Shared {
    fn connections(&self) -> Vec<(String, usize)> {
        let rooms = self.rooms.lock().expect("rooms lock");
        let mut counts: Vec<(String, usize)> = rooms
            .iter()
            .filter(|(_, r)| r.subscribers > 0)
            .map(|(org, r)| (org.clone(), r.subscribers))
            .collect();
        counts.sort();
        counts
    }

    /// Remembers the epoch of `org`; a change is an epoch reset (Redis lost data).
    fn note_epoch(&self, org: &str, epoch: &Arc<str>) {
        let mut epochs = self.epochs.lock().expect("epochs lock");
        if epochs.len() >= KNOWN_EPOCHS && !epochs.contains_key(org) {
            epochs.clear();
        }
        if let Some(old) = epochs.insert(org.to_string(), epoch.clone())
            && old != *epoch
        {
            self.redis.metrics.epoch_resets.inc();
        }
    }

    async fn publish_now(&self, org: &str, draft: Draft) -> anyhow::Result<u64> {
        let text = serde_json::to_string(&event_of(org, &draft, None))?;
        let keys = OrgKeys::of(org);
        let mut invocation = self.publish_script.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.stream)
            .key(&keys.channel)
            .arg(text)
            .arg(self.history)
            .arg(new_epoch())
            .arg(unix_micros());
        let mut conn = self.redis.conn();
        let (epoch, seq, _created): (String, u64, i64) = self
            .redis
            .run("publish", invocation.invoke_async(&mut conn))
            .await?;
        self.note_epoch(org, &Arc::from(epoch));
        self.redis.metrics.event(org, draft.kind.as_str(), 1);
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(seq)
    }

    /// Registers a socket of `org` in its room and its outlet in the fan-out
    /// (before anything is read, so no live frame is missed: the outlet holds them).
    fn join(self: &Arc<Self>, org: &str, outlet: &Arc<Outlet>) -> Membership {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        let room = rooms.entry(org.to_string()).or_insert_with(|| Room {
            subscribers: 0,
            last: None,
        });
        room.subscribers += 1;
        Membership {
            _member: self.hub.join(org, outlet),
            _guard: RoomGuard {
                shared: self.clone(),
                org: org.to_string(),
            },
        }
    }

    /// Waits until the pub/sub connection listens to `org`.
    async fn listen(&self, org: &str) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(Command::Subscribe(org.to_string(), tx));
        match tokio::time::timeout(2 * COMMAND_TIMEOUT, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(reason))) => Err(Unavailable(reason).into()),
            _ => Err(Unavailable("Redis pub/sub did not confirm the subscription".into()).into()),
        }
    }

    async fn subscribe_now(
        self: &Arc<Self>,
        org: &str,
        resume: Option<&Resume>,
        outlet: &Arc<Outlet>,
    ) -> anyhow::Result<Subscription> {
        let membership = self.join(org, outlet);
        self.listen(org).await?;
        let keys = OrgKeys::of(org);
        let mut invocation = self.state_script.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.stream)
            .arg(new_epoch())
            .arg(if resume.is_some() { "1" } else { "0" });
        let mut conn = self.redis.conn();
        let (epoch, seq, _created, flat): (String, u64, i64, Vec<String>) = self
            .redis
            .run("subscribe", invocation.invoke_async(&mut conn))
            .await?;
        let epoch: Arc<str> = Arc::from(epoch);
        self.note_epoch(org, &epoch);
        self.seen(org, &epoch, seq);
        let retained: Vec<Frame> = flat
            .chunks_exact(2)
            .filter_map(|pair| Some(Frame::new(pair[0].parse().ok()?, pair[1].clone())))
            .collect();
        let (replay, truncated) = match resume {
            None => (Vec::new(), None),
            Some(resume) => {
                let (replay, truncated) = plan_replay(retained, seq, &epoch, resume);
                (replay, Some(truncated))
            }
        };
        self.redis
            .metrics
            .recovered_events
            .inc_by(replay.len() as u64);
        let connected = Connected {
            organization_id: org.to_string(),
            timestamp: Timestamp::now(),
            seq: Some(seq),
            epoch: Some(epoch.to_string()),
            history_truncated: truncated,
            extra: Map::new(),
        };
        Ok(Subscription::new(connected, replay, membership))
    }

    /// Records that `org` is at `seq` in `epoch` (the latest wins within an epoch).
    fn seen(&self, org: &str, epoch: &Arc<str>, seq: u64) {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        if let Some(room) = rooms.get_mut(org) {
            match &room.last {
                Some((e, s)) if e == epoch && *s >= seq => {}
                _ => room.last = Some((epoch.clone(), seq)),
            }
        }
    }

    /// A message from pub/sub: `seq:epoch:published_us:json`.
    fn deliver(&self, org: &str, payload: &[u8]) {
        let Ok(payload) = std::str::from_utf8(payload) else {
            return;
        };
        let mut parts = payload.splitn(4, ':');
        let (Some(seq), Some(epoch), Some(at), Some(json)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let (Ok(seq), Ok(at)) = (seq.parse::<u64>(), at.parse::<u64>()) else {
            return;
        };
        let lag = Duration::from_micros(unix_micros().saturating_sub(at));
        self.redis.metrics.pubsub_lag.observe(lag.as_secs_f64());
        let mut frame = Frame::new(seq, json.to_string());
        // The broadcast latency counts from the publish on whichever instance.
        frame.published = Instant::now().checked_sub(lag).unwrap_or(frame.published);
        let epoch: Arc<str> = Arc::from(epoch);
        self.note_epoch(org, &epoch);
        let mut rooms = self.rooms.lock().expect("rooms lock");
        if let Some(room) = rooms.get_mut(org) {
            room.last = Some((epoch.clone(), seq));
            // Under the lock: the hub gets one organization's frames in order.
            self.hub.send(org, Some(&epoch), &frame);
        }
    }

    /// After a reconnect: rooms whose organization moved on in Redis (another epoch,
    /// or events published while this instance was not listening) tell their
    /// sockets to resume.
    async fn check_continuity(&self) {
        let rooms: Vec<(String, Option<Position>)> = {
            let rooms = self.rooms.lock().expect("rooms lock");
            rooms
                .iter()
                .map(|(o, r)| (o.clone(), r.last.clone()))
                .collect()
        };
        for (org, last) in rooms {
            let mut conn = self.redis.conn();
            let keys = OrgKeys::of(&org);
            let mut hmget = redis::cmd("HMGET");
            hmget.arg(&keys.meta).arg("epoch").arg("seq");
            let now: Option<(Option<String>, Option<u64>)> = self
                .redis
                .run("continuity check", hmget.query_async(&mut conn))
                .await
                .ok();
            let gap = match (last, now) {
                (Some((epoch, seq)), Some((Some(e), Some(s)))) if *epoch == *e => {
                    s.saturating_sub(seq)
                }
                _ => 1,
            };
            if gap > 0 {
                let rooms = self.rooms.lock().expect("rooms lock");
                if rooms.contains_key(&org) {
                    self.hub.interrupt(&org, gap);
                }
            }
        }
    }
}

/// Which retained frames a resume gets, and whether events may be lost: as the
/// in-process bus decides (`in_process::plan_replay`).
fn plan_replay(retained: Vec<Frame>, seq: u64, epoch: &str, resume: &Resume) -> (Vec<Frame>, bool) {
    let oldest = retained.first().map_or(seq + 1, |f| f.seq);
    let same_epoch = resume.epoch.as_deref().is_none_or(|e| e == epoch);
    let complete = same_epoch && resume.since <= seq && resume.since + 1 >= oldest;
    if complete {
        let replay = retained
            .into_iter()
            .filter(|f| f.seq > resume.since)
            .collect();
        (replay, false)
    } else {
        (retained, true)
    }
}

/// Keeps a socket counted in its room; the last one out unsubscribes.
struct RoomGuard {
    shared: Arc<Shared>,
    org: String,
}

impl Drop for RoomGuard {
    fn drop(&mut self) {
        let mut rooms = self.shared.rooms.lock().expect("rooms lock");
        let Some(room) = rooms.get_mut(&self.org) else {
            return;
        };
        room.subscribers -= 1;
        if room.subscribers == 0 {
            rooms.remove(&self.org);
            let _ = self
                .shared
                .commands
                .send(Command::Unsubscribe(self.org.clone()));
        }
    }
}

/// One subscription: its outlet in the fan-out and its count in the room.
struct Membership {
    _member: Member,
    _guard: RoomGuard,
}

/// The task that owns the pub/sub connection: connects, re-subscribes, serves
/// subscribe commands, delivers messages, probes; reconnects with backoff.
async fn pubsub(
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shutdown: CancellationToken,
) {
    let mut attempt = 0u32;
    let mut connected_before = false;
    while !shutdown.is_cancelled() {
        match connect(&shared).await {
            Ok(mut connection) => {
                if connected_before {
                    shared.redis.metrics.redis_reconnects.inc();
                    shared.check_continuity().await;
                }
                connected_before = true;
                attempt = 0;
                shared.redis.pubsub_health(None);
                match connection.run(&mut commands, &shutdown).await {
                    None => return,
                    Some(reason) => shared.redis.pubsub_health(Some(reason)),
                }
            }
            Err(reason) => shared.redis.pubsub_health(Some(reason)),
        }
        let delay = capped_exponential(RECONNECT_BASE, RECONNECT_CAP, attempt);
        attempt = attempt.saturating_add(1);
        if refuse_until(&shared, &mut commands, &shutdown, delay).await {
            return;
        }
    }
}

/// While disconnected: answers subscribe commands with the reason, for `delay`;
/// `true` once shut down.
async fn refuse_until(
    shared: &Shared,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    shutdown: &CancellationToken,
    delay: Duration,
) -> bool {
    let wake = tokio::time::sleep(delay);
    tokio::pin!(wake);
    loop {
        let gone = tokio::select! {
            () = shutdown.cancelled() => return true,
            () = &mut wake => return false,
            command = commands.recv() => refuse(shared, command),
        };
        if gone {
            return true;
        }
    }
}

/// Refuses one command while disconnected; `true` when the bus is gone.
fn refuse(shared: &Shared, command: Option<Command>) -> bool {
    match command {
        None => true,
        Some(Command::Subscribe(_, reply)) => {
            let reason = shared
                .redis
                .degraded()
                .unwrap_or_else(|| "Redis pub/sub is reconnecting".into());
            let _ = reply.send(Err(reason));
            false
        }
        Some(Command::Unsubscribe(_)) => false,
    }
}

async fn connect(shared: &Arc<Shared>) -> Result<Connection, String> {
    let pubsub =
        match tokio::time::timeout(COMMAND_TIMEOUT, shared.redis.client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => return Err(format!("Redis pub/sub connection failed: {e}")),
            Err(_) => return Err("Redis pub/sub connection timed out".into()),
        };
    let (mut sink, stream) = pubsub.split();
    let orgs: Vec<String> = shared
        .rooms
        .lock()
        .expect("rooms lock")
        .keys()
        .cloned()
        .collect();
    let mut channels: HashMap<String, String> = HashMap::new();
    for org in orgs {
        channels.insert(OrgKeys::of(&org).channel, org);
    }
    let mut names: Vec<&str> = channels.keys().map(String::as_str).collect();
    names.push(&shared.ping_channel);
    match tokio::time::timeout(COMMAND_TIMEOUT, sink.subscribe(&names)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("Redis pub/sub subscribe failed: {e}")),
        Err(_) => return Err("Redis pub/sub subscribe timed out".into()),
    }
    Ok(Connection {
        shared: shared.clone(),
        sink,
        stream,
        subscribed: channels.values().cloned().collect(),
        channels,
        probe: None,
    })
}

/// One live pub/sub connection.
struct Connection {
    shared: Arc<Shared>,
    sink: PubSubSink,
    stream: PubSubStream,
    /// Channel name → organization.
    channels: HashMap<String, String>,
    subscribed: HashSet<String>,
    /// The probe in flight: its token and when it went out.
    probe: Option<(u64, Instant)>,
}

impl Connection {
    /// Serves until the connection fails (`Some(reason)`) or shutdown (`None`).
    async fn run(
        &mut self,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        shutdown: &CancellationToken,
    ) -> Option<String> {
        let mut probes = tokio::time::interval(PROBE_INTERVAL);
        probes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let step = tokio::select! {
                () = shutdown.cancelled() => return None,
                message = self.stream.next() => self.on_message(message),
                command = commands.recv() => self.on_command(command).await,
                _ = probes.tick() => self.on_probe(),
            };
            if let Err(reason) = step {
                return reason;
            }
        }
    }

    fn on_message(&mut self, message: Option<redis::Msg>) -> Result<(), Option<String>> {
        let Some(message) = message else {
            return Err(Some("the Redis pub/sub connection closed".into()));
        };
        let channel = message.get_channel_name();
        if channel == self.shared.ping_channel {
            let token = std::str::from_utf8(message.get_payload_bytes())
                .ok()
                .and_then(|t| t.parse::<u64>().ok());
            if self.probe.is_some_and(|(t, _)| Some(t) == token) {
                self.probe = None;
                self.shared.redis.pubsub_health(None);
            }
            return Ok(());
        }
        if let Some(org) = self.channels.get(channel) {
            self.shared.deliver(org, message.get_payload_bytes());
        }
        Ok(())
    }

    async fn on_command(&mut self, command: Option<Command>) -> Result<(), Option<String>> {
        match command {
            None => Err(None),
            Some(Command::Subscribe(org, reply)) => {
                if self.subscribed.contains(&org) {
                    let _ = reply.send(Ok(()));
                    return Ok(());
                }
                let channel = OrgKeys::of(&org).channel;
                match tokio::time::timeout(COMMAND_TIMEOUT, self.sink.subscribe(&channel)).await {
                    Ok(Ok(())) => {
                        self.channels.insert(channel, org.clone());
                        self.subscribed.insert(org);
                        let _ = reply.send(Ok(()));
                        Ok(())
                    }
                    _ => {
                        let reason = "Redis pub/sub did not confirm a subscription".to_string();
                        let _ = reply.send(Err(reason.clone()));
                        Err(Some(reason))
                    }
                }
            }
            Some(Command::Unsubscribe(org)) => {
                let idle = !self
                    .shared
                    .rooms
                    .lock()
                    .expect("rooms lock")
                    .contains_key(&org);
                if idle && self.subscribed.remove(&org) {
                    let channel = OrgKeys::of(&org).channel;
                    self.channels.remove(&channel);
                    let unsubscribe = self.sink.unsubscribe(&channel);
                    if tokio::time::timeout(COMMAND_TIMEOUT, unsubscribe)
                        .await
                        .is_err()
                    {
                        return Err(Some("Redis pub/sub did not confirm an unsubscribe".into()));
                    }
                }
                Ok(())
            }
        }
    }

    /// Sends a probe, or gives up on a connection whose last probe is overdue.
    fn on_probe(&mut self) -> Result<(), Option<String>> {
        if let Some((_, sent)) = self.probe {
            if sent.elapsed() > PROBE_TIMEOUT {
                return Err(Some(format!(
                    "the Redis pub/sub connection did not deliver a probe within {}ms",
                    PROBE_TIMEOUT.as_millis()
                )));
            }
            return Ok(());
        }
        let token = rand::random::<u64>();
        self.probe = Some((token, Instant::now()));
        let redis = self.shared.redis.clone();
        let channel = self.shared.ping_channel.clone();
        tokio::spawn(async move {
            let mut conn = redis.conn();
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(&channel).arg(token);
            let _ = redis
                .run("probe", publish.query_async::<i64>(&mut conn))
                .await;
        });
        Ok(())
    }
}

impl EventBus for RedisBus {
    fn publish<'a>(&'a self, org: &'a str, draft: Draft) -> BusFuture<'a, u64> {
        Box::pin(self.0.publish_now(org, draft))
    }

    fn subscribe<'a>(
        &'a self,
        org: &'a str,
        resume: Option<&'a Resume>,
        outlet: &'a Arc<Outlet>,
    ) -> BusFuture<'a, Subscription> {
        Box::pin(self.0.subscribe_now(org, resume, outlet))
    }

    fn published(&self) -> u64 {
        self.0.published.load(Ordering::Relaxed)
    }

    fn connections(&self) -> Vec<(String, usize)> {
        self.0.connections()
    }

    fn degraded(&self) -> Option<String> {
        self.0.redis.degraded()
    }

    fn cluster(&self) -> BusFuture<'_, Option<Value>> {
        Box::pin(async move {
            let instance = json!({ "id": self.0.redis.id });
            Ok(Some(match self.0.redis.cluster().await {
                Ok(cluster) => json!({ "instance": instance, "cluster": cluster }),
                Err(e) => json!({
                    "instance": instance,
                    "cluster": null,
                    "clusterError": format!("{e:#}"),
                }),
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(seqs: std::ops::RangeInclusive<u64>) -> Vec<Frame> {
        seqs.map(|s| Frame::new(s, "{}".into())).collect()
    }

    fn plan(since: u64, epoch: &str) -> (Vec<u64>, bool) {
        let resume = Resume {
            since,
            epoch: Some(epoch.into()),
        };
        let (replay, truncated) = plan_replay(frames(3..=5), 5, "e", &resume);
        (replay.iter().map(|f| f.seq).collect(), truncated)
    }

    #[test]
    fn a_resume_replays_after_since_or_is_told_of_the_gap() {
        assert_eq!(plan(3, "e"), (vec![4, 5], false));
        assert_eq!(plan(2, "e"), (vec![3, 4, 5], false));
        assert_eq!(
            plan(1, "e"),
            (vec![3, 4, 5], true),
            "4 and 5 retained, 2 not"
        );
        assert_eq!(plan(5, "other"), (vec![3, 4, 5], true), "another epoch");
        assert!(plan(9, "e").1, "since beyond the latest seq");
    }
}
