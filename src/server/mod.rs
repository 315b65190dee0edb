//! The bundled server: the reference implementation of `shared/PROTOCOL.md`.
//!
//! [`serve`] takes an already-bound listener, so `syncprobe serve --listen …:0`, the
//! tests and `smoke`'s embedded server all use a free port and readiness is simply
//! "bind returned". HTTP and WebSocket share the one port.
//!
//! Layout: `bus` is the event path behind the `EventBus` trait and `in_process` its
//! implementation for one process (`redis` the one shared by instances); both hand
//! live frames to `fanout`, which writes them to this instance's sockets. `queue` is the
//! write-sync queue and its worker, `socket` the sync socket, `ws` the other socket
//! handlers, `routes` the REST API, `conflicts` the conflicts API and the
//! store the queue records conflicts in, `metrics` the operations figures,
//! [`security`] the rules switched on by configuration (JWT, origins, organizations,
//! limits, caps), [`tls`] serving `wss://`, `error` the JSON error answer; [`Config`]
//! is every setting, `Shared` (`state.rs`) what the handlers share. [`replay`] serves a
//! recorded session on the same HTTP layer and socket helpers, without the engine.
//!
//! Imports point one way, from the handlers down to the leaves:
//!
//! ```text
//! mod.rs → routes, socket, ws → state → conflicts → security → config → queue → bus → fanout
//!                                security/* → error → metrics
//!                                in_process, redis → bus, fanout, metrics  (leaves: fanout, metrics, tls)
//! replay → ws, http, error, bus
//! ```

pub(crate) mod bus;
mod config;
pub(crate) mod conflicts;
pub(crate) mod error;
pub(crate) mod fanout;
pub mod http;
pub mod in_process;
pub(crate) mod meter;
pub(crate) mod metrics;
pub(crate) mod queue;
pub mod redis;
pub mod replay;
pub(crate) mod routes;
pub mod security;
mod socket;
mod state;
pub mod tls;
pub(crate) mod ws;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::config::{
    Config, DEFAULT_CLAIM_AFTER, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_EVENT_SIZE,
    DEFAULT_MAX_PACED_PUBLISHES, DEFAULT_MAX_QUEUED_ITEMS,
};
pub use self::queue::WorkerConfig;
pub(crate) use self::state::{AppState, Shared};

use self::bus::EventBus;
use self::conflicts::ConflictStore;
use self::fanout::Hub;
use self::in_process::{BusConfig, InProcessBus};
use self::metrics::Metrics;
use self::queue::Queue;
use self::security::{Security, middleware};

/// Builds the shared state and the router (without serving it).
pub(crate) fn app(config: Config) -> (AppState, Router) {
    let shutdown = CancellationToken::new();
    let mut metrics = Metrics::with_org_labels(config.metrics_orgs);
    if config.redis.is_some() {
        metrics.register_redis();
    }
    let metrics = Arc::new(metrics);
    let mut instance = None;
    let mut shared_queue = None;
    let conflicts = Arc::new(ConflictStore::default());
    let hub = Hub::new(
        fanout::Limits {
            frames: config.lag_limit,
            bytes: config.max_queued_bytes,
        },
        metrics.clone(),
    );
    let bus: Arc<dyn EventBus> = match &config.redis {
        Some(redis) => {
            // Connects lazily: fails only on settings the handle never uses.
            let redis = redis::Redis::new(redis, metrics.clone())
                .expect("a lazily connecting Redis handle");
            instance = Some(redis.id.clone());
            let settings = redis::RedisQueueConfig {
                worker: config.worker,
                history: config.history,
                claim_after: config.claim_after,
                capacity: config.max_queued_items,
            };
            let hook: Arc<dyn queue::ConflictHook> = conflicts.clone();
            shared_queue = Some(Arc::new(redis::RedisQueue::new(
                redis.clone(),
                settings,
                Some(hook),
            )));
            Arc::new(redis::RedisBus::start(
                redis,
                hub.clone(),
                config.history,
                shutdown.clone(),
            ))
        }
        None => Arc::new(InProcessBus::new(
            BusConfig {
                history: config.history,
                history_bytes: config.history_bytes,
                history_total_bytes: config.history_total_bytes,
                slow_grace: config.slow_grace,
            },
            hub.clone(),
            metrics.clone(),
        )),
    };
    let mut queue = Queue::new(config.worker, bus.clone())
        .capped(config.max_queued_items)
        .with_conflict_hook(conflicts.clone());
    if let Some(shared) = shared_queue {
        queue = queue.shared(shared);
    }
    let queue = Arc::new(queue);
    let state = Arc::new(Shared {
        security: Arc::new(Security::new(&config, metrics.clone())),
        config,
        bus,
        hub,
        queue,
        conflicts,
        metrics,
        shutdown,
        tasks: TaskTracker::new(),
        paced: Default::default(),
        instance,
    });
    // With JWT configured these need a token; sockets check theirs in `ws.rs`.
    let protected = Router::new()
        .route("/api/ws/publish", post(routes::publish))
        .route("/api/ws/stats", get(routes::stats))
        .route("/api/ws/admin/reload-orgs", post(routes::reload_orgs))
        .route("/api/pems/write-sync", post(routes::write_sync))
        .route("/api/pems/sync-status", get(routes::sync_status))
        .route("/api/pems/conflicts", get(conflicts::list))
        .route(
            "/api/pems/conflicts/{conflict_id}/resolve",
            post(conflicts::resolve),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.security.clone(),
            middleware::require_token,
        ));
    let router = Router::new()
        .route("/api/ws/sync", get(ws::missing_org))
        .route("/api/ws/sync/", get(ws::missing_org))
        .route("/api/ws/sync/{org}", get(socket::sync))
        .route("/api/ws/echo", get(ws::echo))
        .merge(protected)
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(metrics_endpoint))
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.security.clone(),
            middleware::guard_requests,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::count_requests,
        ))
        .with_state(state.clone());
    (state, router)
}

/// Serves until `shutdown` completes, then closes every socket with 1001, lets
/// in-flight HTTP requests finish, and returns; the whole shutdown takes at most
/// `Config::shutdown_grace`, after which what is left is dropped.
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
pub(crate) async fn serve_app(
    listener: TcpListener,
    state: AppState,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = state.config.shutdown_grace;
    let limits = state.config.http;
    let workers = tokio::spawn(state.queue.clone().run_workers(state.shutdown.clone()));
    let token = state.shutdown.clone();
    tokio::spawn(async move {
        shutdown.await;
        token.cancel();
    });
    let stop = state.shutdown.clone();
    let http = async {
        match state.config.tls.clone() {
            None => http::serve(listener, router, limits, stop, grace).await,
            Some(tls) => {
                let listener = tls::TlsListener::new(listener, tls);
                http::serve(listener, router, limits, stop, grace).await
            }
        }
    };
    // Upgraded sockets are no longer hyper's: they send 1001 and close, in the same
    // grace period as the HTTP connections, counted from the stop.
    let sockets = async {
        state.shutdown.cancelled().await;
        state.tasks.close();
        let _ = tokio::time::timeout(grace, state.tasks.wait()).await;
    };
    tokio::join!(http, sockets);
    // The workers stop at once on the signal; a stuck one is left behind.
    let _ = tokio::time::timeout(WORKERS_STOP, workers).await;
    Ok(())
}

/// How long shutdown waits for the queue's workers after the grace period.
const WORKERS_STOP: Duration = Duration::from_millis(100);

/// `GET /metrics` on the main port, open like `/healthz` (scrapers rarely carry
/// tokens), unless `--metrics-listen` moves it to a listener of its own (so that
/// the organization ids it names stay off the public port): then it is a 404 here.
async fn metrics_endpoint(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    if state.config.metrics_elsewhere {
        return routes::not_found().await;
    }
    routes::metrics(axum::extract::State(state)).await
}

/// Serves `/metrics` alone on `listener` (`--metrics-listen`) until the server stops.
pub(crate) async fn serve_metrics(listener: TcpListener, state: AppState) {
    let router = Router::new()
        .route("/metrics", get(routes::metrics))
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::count_requests,
        ))
        .with_state(state.clone());
    let limits = state.config.http;
    let grace = state.config.shutdown_grace;
    http::serve(listener, router, limits, state.shutdown.clone(), grace).await;
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
