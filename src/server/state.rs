//! What every handler shares ([`Shared`]): the config, the event bus, the queue, the
//! conflicts, the metrics, the security rules, and the shutdown signal and task tracker.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::bus::EventBus;
use super::config::Config;
use super::conflicts::{self, ConflictStore};
use super::fanout::Hub;
use super::metrics::Metrics;
use super::queue::Queue;
use super::security::Security;

/// What every handler shares.
pub struct Shared {
    pub config: Config,
    /// The event path; the handlers and the queue see only the trait.
    pub bus: Arc<dyn EventBus>,
    /// The local fan-out the bus hands live frames to; sockets get their outlets here.
    pub hub: Arc<Hub>,
    pub queue: Arc<Queue>,
    /// The conflicts the queue recorded, for the conflicts API.
    pub conflicts: Arc<ConflictStore>,
    pub metrics: Arc<Metrics>,
    pub security: Arc<Security>,
    /// Fired when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Sockets and background publishers, awaited on shutdown.
    pub tasks: TaskTracker,
    /// Paced publishes running now (bounded by `Config::max_paced_publishes`).
    pub paced: Arc<AtomicUsize>,
    /// This instance's id in the cluster (`--redis`).
    pub instance: Option<String>,
}

impl Shared {
    pub fn instance_id(&self) -> Option<&str> {
        self.instance.as_deref()
    }
}

pub type AppState = Arc<Shared>;

/// The conflict handlers see only what they need.
impl axum::extract::FromRef<AppState> for conflicts::Ctx {
    fn from_ref(state: &AppState) -> conflicts::Ctx {
        conflicts::Ctx {
            store: state.conflicts.clone(),
            queue: state.queue.clone(),
            security: state.security.clone(),
            metrics: state.metrics.clone(),
        }
    }
}
