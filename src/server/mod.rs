//! The bundled server: the reference implementation of `shared/PROTOCOL.md`.
//!
//! [`serve`] takes an already-bound listener, so `syncprobe serve --listen …:0`, the
//! tests and `smoke`'s embedded server all use a free port and readiness is simply
//! "bind returned". HTTP and WebSocket share the one port.
//!
//! Layout: [`bus`] numbers and fans out events, [`queue`] is the write-sync queue and
//! its worker, [`ws`] the socket handlers, [`routes`] the REST API, [`metrics`] the
//! operations figures.

pub mod bus;
pub mod metrics;
pub mod queue;
pub mod routes;
pub mod ws;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::bus::{Bus, BusConfig};
use self::metrics::Metrics;
use self::queue::{Queue, WorkerConfig};

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
    /// Largest client message accepted; larger ones close the socket.
    pub max_message_size: usize,
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
            max_message_size: 64 * 1024,
        }
    }
}

/// What every handler shares.
pub struct Shared {
    pub config: Config,
    pub bus: Arc<Bus>,
    pub queue: Arc<Queue>,
    pub metrics: Arc<Metrics>,
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
        config,
        bus,
        queue,
        metrics,
        shutdown: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    let router = Router::new()
        .route("/api/ws/sync", get(ws::missing_org))
        .route("/api/ws/sync/", get(ws::missing_org))
        .route("/api/ws/sync/{org}", get(ws::sync))
        .route("/api/ws/echo", get(ws::echo))
        .route("/api/ws/publish", post(routes::publish))
        .route("/api/ws/stats", get(routes::stats))
        .route("/api/pems/write-sync", post(routes::write_sync))
        .route("/api/pems/sync-status", get(routes::sync_status))
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
        .fallback(routes::not_found)
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
    let grace = config.shutdown_grace;
    let (state, router) = app(config);
    let workers = tokio::spawn(state.queue.clone().run_workers(state.shutdown.clone()));
    let token = state.shutdown.clone();
    tokio::spawn(async move {
        shutdown.await;
        token.cancel();
    });
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(state.shutdown.clone().cancelled_owned())
        .await
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
