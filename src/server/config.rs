//! Every setting of the server ([`Config`]), with its defaults. `syncprobe serve`
//! fills it from flags and `SYNCPROBE_*` variables; tests build it directly.

use std::sync::Arc;
use std::time::Duration;

use super::http::HttpLimits;
use super::in_process::{
    DEFAULT_HISTORY, DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_TOTAL_BYTES, DEFAULT_LAG_LIMIT,
    DEFAULT_MAX_QUEUED_BYTES, DEFAULT_SLOW_GRACE,
};
use super::queue::WorkerConfig;
use super::redis::RedisConfig;
use super::security::caps::{
    CapResponse, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_ORG, RateLimit,
};
use super::security::orgs::{OrgAllowList, OrgIdSyntax};
use super::security::origin::OriginPattern;
use super::security::session::{
    DEFAULT_BURST, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_RATE,
};
use crate::claims::JwtConfig;

/// Largest publish body, in bytes.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 64 * 1024;
/// Paced publishes at once.
pub const DEFAULT_MAX_PACED_PUBLISHES: usize = 64;
/// Write-sync items in the queue, across organizations.
pub const DEFAULT_MAX_QUEUED_ITEMS: usize = 100_000;
/// Time a new socket has to answer the first ping.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Every setting of the server. `syncprobe serve` fills it from flags and
/// `SYNCPROBE_*` variables; tests build it directly.
#[derive(Clone, Debug)]
pub struct Config {
    /// Events retained per organization for `?since=` resume.
    pub history: usize,
    /// Bytes of history retained per organization.
    pub history_bytes: usize,
    /// Bytes of history retained across organizations (the oldest go first).
    pub history_total_bytes: usize,
    /// How many events a subscriber may fall behind before it is closed (1013).
    pub lag_limit: usize,
    /// How many bytes a subscriber may fall behind before it is closed (1013).
    pub max_queued_bytes: usize,
    /// How long a large burst waits for a subscriber that is behind before it
    /// overtakes it.
    pub slow_grace: Duration,
    /// Largest publish body (one event), in bytes: 413 beyond it.
    pub max_event_size: usize,
    /// Paced publishes running at once: 429 beyond it.
    pub max_paced_publishes: usize,
    /// Write-sync items waiting or in progress across organizations: 503 beyond it.
    pub max_queued_items: usize,
    /// How long a new socket has to answer the server's first ping (zero: no limit).
    pub handshake_timeout: Duration,
    /// Limits of the HTTP side (before any authentication).
    pub http: HttpLimits,
    /// `/metrics` is served on a listener of its own (`--metrics-listen`), not here.
    pub metrics_elsewhere: bool,
    /// Organizations with a metrics label of their own (`--metrics-orgs`); the rest
    /// are summed under `_other`.
    pub metrics_orgs: usize,
    pub worker: WorkerConfig,
    /// Interval of server pings; a peer silent for two intervals is dropped. Zero
    /// disables the heartbeat.
    pub ping_interval: Duration,
    /// A socket write blocked this long drops the connection (a stalled reader).
    pub write_timeout: Duration,
    /// How long the whole shutdown may take; what is left then is dropped.
    pub shutdown_grace: Duration,
    /// Largest client message accepted on sync sockets; larger ones close the socket
    /// with 1009.
    pub max_message_size: usize,

    // Security (see `security/`): each rule is off unless configured; the limits
    // have safe defaults.
    /// Tokens required on every upgrade and on the REST API (except `/healthz` and
    /// `/metrics`).
    pub jwt: Option<JwtConfig>,
    /// Origins allowed to open sockets and call the REST API (empty: any).
    pub allowed_origins: Vec<OriginPattern>,
    pub org_id_syntax: OrgIdSyntax,
    /// Only these organizations are served; reloadable (SIGHUP, admin endpoint).
    pub org_allow_list: Option<OrgAllowList>,
    /// Client frames per connection (`None` or a zero rate: unlimited).
    pub rate_limit: Option<RateLimit>,
    /// Time without client frames or pongs before a sync socket closes (zero: never).
    pub idle_timeout: Duration,
    /// Open sync sockets in total (zero: unlimited).
    pub max_connections: usize,
    /// Open sync sockets per organization (zero: unlimited).
    pub max_connections_per_org: usize,
    pub cap_response: CapResponse,
    /// Upgrade attempts per client IP (`None`: unlimited).
    pub ip_upgrade_limit: Option<RateLimit>,
    /// Serve `https://` and `wss://` with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Share events, history and the write-sync queue with other instances through
    /// Redis (`--redis`); `None`: this process serves alone.
    pub redis: Option<RedisConfig>,
    /// With `--redis`: a write-sync item another instance took and has not touched
    /// for this long is claimed by an idle worker (`--claim-after`).
    pub claim_after: Duration,
}

/// Default of `--claim-after`.
pub const DEFAULT_CLAIM_AFTER: Duration = Duration::from_secs(30);

impl Default for Config {
    fn default() -> Self {
        Config {
            history: DEFAULT_HISTORY,
            history_bytes: DEFAULT_HISTORY_BYTES,
            history_total_bytes: DEFAULT_HISTORY_TOTAL_BYTES,
            lag_limit: DEFAULT_LAG_LIMIT,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            slow_grace: DEFAULT_SLOW_GRACE,
            max_event_size: DEFAULT_MAX_EVENT_SIZE,
            max_paced_publishes: DEFAULT_MAX_PACED_PUBLISHES,
            max_queued_items: DEFAULT_MAX_QUEUED_ITEMS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            http: HttpLimits::default(),
            metrics_elsewhere: false,
            metrics_orgs: super::metrics::DEFAULT_METRICS_ORGS,
            worker: WorkerConfig {
                workers: 4,
                processing_time: Duration::from_millis(5),
                max_retries: 3,
                retry_base: Duration::from_millis(10),
            },
            ping_interval: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            jwt: None,
            allowed_origins: Vec::new(),
            org_id_syntax: OrgIdSyntax::Strict,
            org_allow_list: None,
            rate_limit: Some(RateLimit {
                per_second: DEFAULT_RATE,
                burst: DEFAULT_BURST,
            }),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_org: DEFAULT_MAX_CONNECTIONS_PER_ORG,
            cap_response: CapResponse::Http,
            ip_upgrade_limit: None,
            tls: None,
            redis: None,
            claim_after: DEFAULT_CLAIM_AFTER,
        }
    }
}
