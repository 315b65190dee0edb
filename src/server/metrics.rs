//! Operations figures: the Prometheus registry behind `GET /metrics` and the counters
//! behind `GET /api/ws/stats`. One [`Metrics`] per server, so tests running several
//! servers in one process never share figures.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The event types counted under their own name; any other is counted as [`OTHER_TYPE`].
pub const KNOWN_TYPES: [&str; 5] = [
    "SYNC_QUEUED",
    "SYNC_PROCESSING",
    "SYNC_SUCCESS",
    "SYNC_CONFLICT",
    "SYNC_FAILED",
];
/// The type label of every event type not in [`KNOWN_TYPES`].
pub const OTHER_TYPE: &str = "other";

/// The metric label of an event type.
pub fn type_label(kind: &str) -> &str {
    KNOWN_TYPES
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or(OTHER_TYPE)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrgLabels {
    pub org: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub org: String,
    #[prometheus(flatten)]
    pub kind: KindLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// Every figure the server keeps.
pub struct Metrics {
    pub started: Instant,
    pub registry: Registry,
    /// Open sync sockets per organization.
    pub connections: Family<OrgLabels, Gauge>,
    /// Sync sockets ever opened.
    pub connections_opened: Counter,
    /// Sync sockets closed, by reason.
    pub disconnects: Family<ReasonLabels, Counter>,
    /// Events published per organization and type (the message rate per organization).
    pub events: Family<EventLabels, Counter>,
    /// Frames written to sync sockets (one event to N subscribers counts N).
    pub frames_sent: Counter,
    /// Client frames received and ignored.
    pub client_frames: Counter,
    /// Time from publishing an event to writing it to a socket, per written batch.
    pub broadcast_latency: Histogram,
    /// Refused upgrades and REST errors, by reason.
    pub errors: Family<ReasonLabels, Counter>,
    /// Events replayed to resuming sockets (`?since=`).
    pub recovered_events: Counter,
    /// Write-sync items or requests that failed, by reason.
    pub write_sync_failures: Family<ReasonLabels, Counter>,
    /// Redis reachable and the pub/sub connection alive (1) or not (0); registered
    /// only with `--redis` ([`Metrics::register_redis`]).
    pub redis_up: Gauge,
    /// Pub/sub reconnections to Redis.
    pub redis_reconnects: Counter,
    /// Time from a publish on any instance to its delivery here, over pub/sub.
    pub pubsub_lag: Histogram,
    /// Epochs of an organization replaced because Redis lost its data.
    pub epoch_resets: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("syncprobe");
        let connections = Family::<OrgLabels, Gauge>::default();
        let connections_opened = Counter::default();
        let disconnects = Family::<ReasonLabels, Counter>::default();
        let events = Family::<EventLabels, Counter>::default();
        let frames_sent = Counter::default();
        let client_frames = Counter::default();
        // 50 µs to ~1.6 s.
        let broadcast_latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let errors = Family::<ReasonLabels, Counter>::default();
        registry.register("ws_connections", "Open sync sockets", connections.clone());
        registry.register(
            "ws_connections_opened",
            "Sync sockets opened",
            connections_opened.clone(),
        );
        registry.register(
            "ws_disconnects",
            "Sync sockets closed, by reason",
            disconnects.clone(),
        );
        registry.register(
            "events_published",
            "Sync events published, by organization and type",
            events.clone(),
        );
        registry.register(
            "ws_frames_sent",
            "Frames written to sync sockets",
            frames_sent.clone(),
        );
        registry.register(
            "ws_client_frames",
            "Frames received from clients (ignored)",
            client_frames.clone(),
        );
        registry.register(
            "broadcast_latency_seconds",
            "Time from publishing an event to writing it to a socket",
            broadcast_latency.clone(),
        );
        registry.register(
            "errors",
            "Refused upgrades and REST errors, by reason",
            errors.clone(),
        );
        let recovered_events = Counter::default();
        let write_sync_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "recovered_events",
            "Events replayed to resuming sockets",
            recovered_events.clone(),
        );
        registry.register(
            "write_sync_failures",
            "Write-sync items or requests that failed, by reason",
            write_sync_failures.clone(),
        );
        Metrics {
            started: Instant::now(),
            registry,
            connections,
            connections_opened,
            disconnects,
            events,
            frames_sent,
            client_frames,
            broadcast_latency,
            errors,
            recovered_events,
            write_sync_failures,
            redis_up: Gauge::default(),
            redis_reconnects: Counter::default(),
            pubsub_lag: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            epoch_resets: Counter::default(),
        }
    }

    /// Adds the figures of the Redis engine to the exposition (`--redis`).
    pub fn register_redis(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "redis_up",
            "Redis reachable and the pub/sub connection alive",
            self.redis_up.clone(),
        );
        registry.register(
            "redis_reconnects",
            "Pub/sub reconnections to Redis",
            self.redis_reconnects.clone(),
        );
        registry.register(
            "pubsub_lag_seconds",
            "Time from a publish on any instance to its delivery here",
            self.pubsub_lag.clone(),
        );
        registry.register(
            "epoch_resets",
            "Organization epochs replaced because Redis lost its data",
            self.epoch_resets.clone(),
        );
    }

    /// Counts a failed write-sync item or request.
    pub fn write_sync_failure(&self, reason: &str) {
        self.write_sync_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts `n` events of `org`. The type label is one of the protocol's types or
    /// `other`, so that publishers cannot grow the exposition with names of their own.
    pub fn event(&self, org: &str, kind: &str, n: u64) {
        self.events
            .get_or_create(&EventLabels {
                org: org.to_string(),
                kind: KindLabel {
                    r#type: type_label(kind).to_string(),
                },
            })
            .inc_by(n);
    }

    /// Drops the series of an organization the bus freed (no subscriber, no
    /// history), so that the exposition does not keep every id ever seen.
    pub fn forget_org(&self, org: &str) {
        self.connections.remove(&OrgLabels {
            org: org.to_string(),
        });
        for kind in KNOWN_TYPES.iter().chain([&OTHER_TYPE]) {
            self.events.remove(&EventLabels {
                org: org.to_string(),
                kind: KindLabel {
                    r#type: kind.to_string(),
                },
            });
        }
    }

    pub fn disconnect(&self, reason: &str) {
        self.disconnects
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn error(&self, reason: &str) {
        self.errors
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
