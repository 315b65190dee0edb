//! The bundled server: the reference implementation of `shared/PROTOCOL.md`.
//!
//! [`serve`] takes an already-bound listener, so `syncprobe serve --listen …:0`, the
//! tests and `smoke`'s embedded server all use a free port and readiness is simply
//! "bind returned". HTTP and WebSocket share the one port.
//!
//! Layout: [`bus`] numbers and fans out events, [`queue`] is the write-sync queue and
//! its worker, [`ws`] the socket handlers, [`routes`] the REST API, [`metrics`] the
//! operations figures, [`security`] the rules switched on by configuration (JWT,
//! origins, organizations, limits, caps), [`tls`] serving `wss://`.

pub mod bus;
pub mod error;
pub mod metrics;
pub mod queue;
pub mod routes;
pub mod security;
pub mod tls;
pub mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::bus::{Bus, BusConfig};
use self::metrics::Metrics;
use self::queue::{Queue, WorkerConfig};
use self::security::{
    CapResponse, JwtConfig, OrgAllowList, OrgIdSyntax, OriginPattern, RateLimit, Security,
};

/// Every setting of the server. `syncprobe serve` fills it from flags and
/// `SYNCPROBE_*` variables; tests build it directly.
#[derive(Clone, Debug)]
pub struct Config {
    /// Events retained per organization for `?since=` resume.
    pub history: usize,
    /// How many events a subscriber may fall behind before it is closed (1013).
    pub lag_limit: usize,
    pub worker: WorkerConfig,
    /// Interval of server pings; a peer silent for two intervals is dropped. Zero
    /// disables the heartbeat.
    pub ping_interval: Duration,
    /// A socket write blocked this long drops the connection (a stalled reader).
    pub write_timeout: Duration,
    /// How long shutdown waits for sockets to finish their close handshake.
    pub shutdown_grace: Duration,
    /// Largest client message accepted on sync sockets; larger ones close the socket
    /// with 1009.
    pub max_message_size: usize,

    // Security (see `security.rs`): each rule is off unless configured; the limits
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            history: 1000,
            lag_limit: 4096,
            worker: WorkerConfig {
                workers: 4,
                processing_time: Duration::from_millis(5),
                max_retries: 3,
                retry_base: Duration::from_millis(10),
            },
            ping_interval: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            max_message_size: security::DEFAULT_MAX_MESSAGE_SIZE,
            jwt: None,
            allowed_origins: Vec::new(),
            org_id_syntax: OrgIdSyntax::Strict,
            org_allow_list: None,
            rate_limit: Some(RateLimit {
                per_second: security::DEFAULT_RATE,
                burst: security::DEFAULT_BURST,
            }),
            idle_timeout: security::DEFAULT_IDLE_TIMEOUT,
            max_connections: security::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_org: security::DEFAULT_MAX_CONNECTIONS_PER_ORG,
            cap_response: CapResponse::Http,
            ip_upgrade_limit: None,
            tls: None,
        }
    }
}

/// What every handler shares.
pub struct Shared {
    pub config: Config,
    pub bus: Arc<Bus>,
    pub queue: Arc<Queue>,
    pub metrics: Arc<Metrics>,
    pub security: Security,
    /// Fired when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Sockets and background publishers, awaited on shutdown.
    pub tasks: TaskTracker,
}

pub type AppState = Arc<Shared>;

/// Builds the shared state and the router (without serving it).
pub fn app(config: Config) -> (AppState, Router) {
    let metrics = Arc::new(Metrics::new());
    let bus = Arc::new(Bus::new(
        BusConfig {
            history: config.history,
            lag_limit: config.lag_limit,
        },
        metrics.clone(),
    ));
    let queue = Arc::new(Queue::new(config.worker, bus.clone()));
    let state = Arc::new(Shared {
        security: Security::new(&config),
        config,
        bus,
        queue,
        metrics,
        shutdown: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    // With JWT configured these need a token; sockets check theirs in `ws.rs`.
    let protected = Router::new()
        .route("/api/ws/publish", post(routes::publish))
        .route("/api/ws/stats", get(routes::stats))
        .route("/api/ws/admin/reload-orgs", post(routes::reload_orgs))
        .route("/api/pems/write-sync", post(routes::write_sync))
        .route("/api/pems/sync-status", get(routes::sync_status))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::require_token,
        ));
    let router = Router::new()
        .route("/api/ws/sync", get(ws::missing_org))
        .route("/api/ws/sync/", get(ws::missing_org))
        .route("/api/ws/sync/{org}", get(ws::sync))
        .route("/api/ws/echo", get(ws::echo))
        .merge(protected)
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::guard_requests,
        ))
        .with_state(state.clone());
    (state, router)
}

/// Serves until `shutdown` completes, then closes every socket with 1001, lets
/// in-flight HTTP requests finish, and returns.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (state, router) = app(config);
    serve_app(listener, state, router, shutdown).await
}

/// [`serve`] for a state and router built by [`app`], so that the caller keeps a
/// handle on the state (`syncprobe serve` reloads the allow-list on SIGHUP).
pub async fn serve_app(
    listener: TcpListener,
    state: AppState,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = state.config.shutdown_grace;
    let workers = tokio::spawn(state.queue.clone().run_workers(state.shutdown.clone()));
    let token = state.shutdown.clone();
    tokio::spawn(async move {
        shutdown.await;
        token.cancel();
    });
    // The client address feeds the per-IP upgrade limit.
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let stopped = state.shutdown.clone().cancelled_owned();
    let result = match state.config.tls.clone() {
        None => {
            axum::serve(listener, service)
                .with_graceful_shutdown(stopped)
                .await
        }
        // `tap_io` only lends the TLS listener axum's connect-info support.
        Some(tls) => {
            axum::serve(tls::TlsListener::new(listener, tls).tap_io(|_| {}), service)
                .with_graceful_shutdown(stopped)
                .await
        }
    }
    .context("the HTTP server failed");
    // Upgraded sockets are no longer axum's: wait for them to send 1001 and close.
    state.shutdown.cancel();
    state.tasks.close();
    if tokio::time::timeout(grace, state.tasks.wait())
        .await
        .is_err()
    {
        // Peers that do not finish the close handshake in time are dropped.
    }
    let _ = workers.await;
    result
}

/// Pending connections the kernel may queue before `accept` (capped by
/// `net.core.somaxconn`). Tokio's default of 1,024 drops SYNs when thousands of
/// clients connect at once, and each drop costs the client a one-second retransmit.
pub const LISTEN_BACKLOG: u32 = 65_535;

/// Binds a listener with [`LISTEN_BACKLOG`] (and address reuse, so a restarted server
/// gets its port back at once).
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How long [`Embedded::stop`] waits for the server to finish its shutdown.
const EMBEDDED_STOP_WAIT: Duration = Duration::from_secs(10);

/// The bundled server running inside a client subcommand (`smoke`, `load`) when no
/// `--url` is given: bound to a free loopback port, stopped with [`Embedded::stop`].
pub struct Embedded {
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Embedded {
    pub fn start(config: Config) -> anyhow::Result<Embedded> {
        let listener = bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .context("failed to start the bundled server")?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(serve(listener, config, async {
            let _ = stopped.await;
        }));
        Ok(Embedded { addr, stop, handle })
    }

    /// Shuts the server down (sockets get 1001) and waits for it, briefly.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(EMBEDDED_STOP_WAIT, self.handle).await;
    }
}
