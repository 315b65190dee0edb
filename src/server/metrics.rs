//! Operations figures: the Prometheus registry behind `GET /metrics` and the counters
//! behind `GET /api/ws/stats`. One [`Metrics`] per server, so tests running several
//! servers in one process never share figures.
//!
//! Label sets are bounded: organization ids come from clients, so at most
//! `--metrics-orgs` organizations get a label of their own and the rest are summed
//! under [`OTHER_ORG`]. The open-socket gauge is ranked at each scrape (the busiest
//! organizations by open sockets; organizations with none are left out); counters keep
//! the organizations they admitted first, so that each series only ever grows, as
//! `rate()` needs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
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
/// The organization label of every organization beyond the first `--metrics-orgs`.
pub const OTHER_ORG: &str = "_other";
/// Organizations with a label of their own unless `--metrics-orgs` says otherwise.
pub const DEFAULT_METRICS_ORGS: usize = 20;

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

/// An HTTP request's route template (`/api/ws/sync/{org}`, never the path itself, or
/// `unmatched`) and answer status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: String,
}

/// Open sockets per organization, exposed as `ws_connections{org}` ranked at scrape.
#[derive(Debug, Default)]
struct OpenSockets {
    cap: usize,
    open: Mutex<HashMap<String, u64>>,
}

impl OpenSockets {
    fn opened(&self, org: &str) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        *open.entry(org.to_string()).or_default() += 1;
    }

    fn closed(&self, org: &str) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(org) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(org);
            }
        }
    }

    /// The series to expose: the `cap` organizations with most open sockets (ties by
    /// id), then the rest summed under [`OTHER_ORG`] when there is a rest.
    fn ranked(&self) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = {
            let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.iter().map(|(org, n)| (org.clone(), *n)).collect()
        };
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let rest: u64 = all.iter().skip(self.cap).map(|(_, n)| n).sum();
        all.truncate(self.cap);
        if rest > 0 {
            all.push((OTHER_ORG.to_string(), rest));
        }
        all
    }
}

/// Keeps one socket counted in `ws_connections` (see [`Metrics::socket_opened`]).
#[derive(Debug)]
pub struct OpenSocket {
    sockets: Arc<OpenSockets>,
    org: String,
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.sockets.closed(&self.org);
    }
}

impl Collector for OpenSockets {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let family = Family::<OrgLabels, Gauge>::default();
        for (org, n) in self.ranked() {
            family
                .get_or_create(&OrgLabels { org })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let metric = encoder.encode_descriptor(
            "ws_connections",
            "Open sync sockets, for the busiest organizations (the rest under _other)",
            None,
            family.metric_type(),
        )?;
        family.encode(metric)
    }
}

/// Every figure the server keeps.
pub struct Metrics {
    pub started: Instant,
    pub registry: Registry,
    /// Open sync sockets per organization (ranked at scrape).
    connections: Arc<OpenSockets>,
    /// The organizations the counters label on their own (at most `connections.cap`).
    counted_orgs: Mutex<HashSet<String>>,
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
    /// HTTP requests (upgrades included) by route template and status.
    pub http_requests: Family<RequestLabels, Counter>,
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
        Metrics::with_org_labels(DEFAULT_METRICS_ORGS)
    }

    /// Figures that label at most `orgs` organizations on their own.
    pub fn with_org_labels(orgs: usize) -> Metrics {
        let mut registry = Registry::with_prefix("syncprobe");
        let connections = Arc::new(OpenSockets {
            cap: orgs,
            open: Mutex::default(),
        });
        let connections_opened = Counter::default();
        let disconnects = Family::<ReasonLabels, Counter>::default();
        let events = Family::<EventLabels, Counter>::default();
        let frames_sent = Counter::default();
        let client_frames = Counter::default();
        // 50 µs to ~1.6 s.
        let broadcast_latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let errors = Family::<ReasonLabels, Counter>::default();
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register_collector(Box::new(connections.clone()));
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
        registry.register(
            "http_requests",
            "HTTP requests (upgrades included), by route template and status",
            http_requests.clone(),
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
            counted_orgs: Mutex::default(),
            connections_opened,
            disconnects,
            events,
            frames_sent,
            client_frames,
            broadcast_latency,
            errors,
            http_requests,
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

    /// A sync socket of `org` opened: it counts as open until the guard drops.
    pub fn socket_opened(&self, org: &str) -> OpenSocket {
        self.connections.opened(org);
        self.connections_opened.inc();
        OpenSocket {
            sockets: self.connections.clone(),
            org: org.to_string(),
        }
    }

    /// The organization label of `org` on counters: its own id while fewer than the
    /// cap have one (it keeps it until [`Metrics::forget_org`]), else [`OTHER_ORG`].
    fn counted_org(&self, org: &str) -> String {
        let mut counted = self
            .counted_orgs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if counted.contains(org) {
            return org.to_string();
        }
        if counted.len() < self.connections.cap {
            counted.insert(org.to_string());
            return org.to_string();
        }
        OTHER_ORG.to_string()
    }

    /// Counts one HTTP answer.
    pub fn request(&self, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status: status.to_string(),
            })
            .inc();
    }

    /// Counts `n` events of `org`. The type label is one of the protocol's types or
    /// `other`, so that publishers cannot grow the exposition with names of their own.
    pub fn event(&self, org: &str, kind: &str, n: u64) {
        self.events
            .get_or_create(&EventLabels {
                org: self.counted_org(org),
                kind: KindLabel {
                    r#type: type_label(kind).to_string(),
                },
            })
            .inc_by(n);
    }

    /// Drops the series of an organization the bus freed (no subscriber, no
    /// history) and gives its label to the next organization to come.
    pub fn forget_org(&self, org: &str) {
        let was_counted = self
            .counted_orgs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(org);
        if !was_counted {
            return;
        }
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

/// Middleware counting every answer in `http_requests{route,status}`; the route is
/// the template axum matched, so paths (organization ids) never become labels.
pub async fn count_requests(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |path| path.as_str())
        .to_string();
    let response = next.run(request).await;
    metrics.request(&route, response.status().as_u16());
    response
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sockets(cap: usize, open: &[(&str, u64)]) -> OpenSockets {
        let sockets = OpenSockets {
            cap,
            open: Mutex::default(),
        };
        for (org, n) in open {
            for _ in 0..*n {
                sockets.opened(org);
            }
        }
        sockets
    }

    #[test]
    fn the_gauge_ranks_by_open_sockets_then_id_and_sums_the_rest() {
        let s = sockets(2, &[("b", 1), ("a", 1), ("c", 5), ("d", 1)]);
        assert_eq!(
            s.ranked(),
            vec![
                ("c".to_string(), 5),
                ("a".to_string(), 1),
                ("_other".to_string(), 2)
            ]
        );
    }

    #[test]
    fn closed_organizations_leave_the_gauge_and_no_rest_means_no_other() {
        let s = sockets(5, &[("a", 2), ("b", 1)]);
        s.closed("a");
        s.closed("a");
        s.closed("a"); // one close too many is ignored
        s.closed("never-opened");
        assert_eq!(s.ranked(), vec![("b".to_string(), 1)]);
    }

    #[test]
    fn counters_keep_the_first_organizations_and_free_a_forgotten_ones_label() {
        let metrics = Metrics::with_org_labels(1);
        assert_eq!(metrics.counted_org("a"), "a");
        assert_eq!(metrics.counted_org("b"), OTHER_ORG);
        assert_eq!(metrics.counted_org("a"), "a");
        metrics.forget_org("a");
        assert_eq!(metrics.counted_org("b"), "b");
    }
}
