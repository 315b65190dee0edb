//! A fault-injecting proxy in front of any backend: HTTP and WebSocket on one port.
//!
//! Every accepted TCP connection goes through two byte pumps ([`network`], the
//! toxiproxy-style faults, one per direction) into an in-memory pipe, on whose other
//! end hyper serves HTTP/1.1 ([`messages`]): plain requests are forwarded upstream,
//! WebSocket upgrades are proxied frame by frame so that message faults can act on
//! the server's text frames. [`control`] is the HTTP API that changes the faults
//! while a test runs. Every decision can be logged as NDJSON ([`DecisionLog`]).
//!
//! The proxy belongs to neither side of the library: it imports neither the bundled
//! server nor the client (`tests/cli/layers.rs`), only the leaves and the where-rule
//! and event-name helpers of `check` and `expect`.

pub mod control;
pub mod faults;
pub mod messages;
pub mod network;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use faults::{FaultList, FaultSpec};

/// Bytes of the in-memory pipe between the byte pumps and the HTTP side.
const PIPE_BYTES: usize = 64 * 1024;

/// What a proxy is told at the start.
pub struct Config {
    /// The backend's base URL (`ws://`, `wss://`, `http://` or `https://`).
    pub upstream: url::Url,
    pub faults: Vec<FaultSpec>,
    pub seed: u64,
    /// Start offline (`--profile offline`).
    pub offline: bool,
    pub log: Option<DecisionLog>,
}

/// Why the proxy is offline: told so (control API, `--profile offline`) or in a
/// scheduled cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offline {
    pub told: bool,
    pub cut: bool,
}

impl Offline {
    pub fn any(self) -> bool {
        self.told || self.cut
    }
}

/// The state every connection and the control API share.
pub struct Shared {
    pub upstream: url::Url,
    pub faults: RwLock<FaultList>,
    pub offline: watch::Sender<Offline>,
    pub seed: u64,
    pub log: Option<DecisionLog>,
    next_connection: AtomicU64,
    pub http: reqwest::Client,
}

impl Shared {
    pub fn new(config: Config) -> anyhow::Result<Arc<Shared>> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("failed to build the HTTP client for the upstream")?;
        let mut list = FaultList::default();
        for spec in config.faults {
            list.add(spec);
        }
        Ok(Arc::new(Shared {
            upstream: config.upstream,
            faults: RwLock::new(list),
            offline: watch::Sender::new(Offline {
                told: config.offline,
                cut: false,
            }),
            seed: config.seed,
            log: config.log,
            next_connection: AtomicU64::new(0),
            http,
        }))
    }

    /// Writes a decision to `--log`, if there is one.
    pub fn decided(&self, decision: Decision<'_>) {
        if let Some(log) = &self.log {
            log.write(&decision);
        }
    }

    /// The network faults that now act on bytes, or the message faults.
    pub fn faults(&self, network: bool) -> Vec<(u64, FaultSpec)> {
        self.faults
            .read()
            .map(|f| f.snapshot(network))
            .unwrap_or_default()
    }

    pub fn set_told_offline(&self, offline: bool) {
        self.offline.send_modify(|o| o.told = offline);
        self.decided(Decision::global(if offline { "offline" } else { "online" }));
    }
}

/// One decision of the proxy, a line of `--log`.
#[derive(Serialize)]
pub struct Decision<'a> {
    pub time: String,
    /// The connection, numbered from 1 in accept order (absent for global events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<u64>,
    pub fault: &'a str,
    /// The fault's id in the list (absent for cuts and offline periods).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<&'a str>,
    /// The type of the frame acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// What was done, when the fault alone does not say (`reset`, `closed 4000`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl<'a> Decision<'a> {
    pub fn new(connection: u64, fault: &'a str, id: u64) -> Decision<'a> {
        Decision {
            connection: Some(connection),
            id: Some(id),
            ..Decision::global(fault)
        }
    }

    pub fn global(fault: &'a str) -> Decision<'a> {
        Decision {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            connection: None,
            fault,
            id: None,
            direction: None,
            frame: None,
            seq: None,
            detail: None,
        }
    }
}

/// `--log FILE`: one NDJSON line per decision, flushed per line.
pub struct DecisionLog {
    file: Mutex<std::fs::File>,
}

impl DecisionLog {
    pub fn create(path: &Path) -> anyhow::Result<DecisionLog> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("failed to create the decision log {}", path.display()))?;
        Ok(DecisionLog {
            file: Mutex::new(file),
        })
    }

    fn write(&self, decision: &Decision<'_>) {
        let Ok(mut line) = serde_json::to_string(decision) else {
            return;
        };
        line.push('\n');
        if let Ok(mut file) = self.file.lock() {
            // A log that cannot be written must not stop the proxy.
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// Accepts connections until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return Ok(()),
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, shared.clone()));
            }
            // Out of file descriptors and the like: wait and go on.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Drops every connection on a schedule: online for `every`, offline for `cut`.
pub async fn cut_schedule(shared: Arc<Shared>, every: Duration, cut: Duration) {
    loop {
        tokio::time::sleep(every).await;
        shared.offline.send_modify(|o| o.cut = true);
        shared.decided(Decision::global("cut"));
        tokio::time::sleep(cut).await;
        shared.offline.send_modify(|o| o.cut = false);
        shared.decided(Decision::global("cut-end"));
    }
}

/// One client connection: refused while offline, else pumped through the faults
/// to the HTTP side until either end closes or the proxy goes offline.
async fn connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let id = shared.next_connection.fetch_add(1, Ordering::Relaxed) + 1;
    let mut offline = shared.offline.subscribe();
    if offline.borrow_and_update().any() {
        let mut refused = Decision::global("offline");
        refused.connection = Some(id);
        refused.detail = Some("refused".into());
        shared.decided(refused);
        return;
    }
    let _ = stream.set_nodelay(true);
    let (near, far) = tokio::io::duplex(PIPE_BYTES);
    tokio::spawn(messages::serve_connection(far, id, shared.clone()));
    let end = {
        let pumps = network::pump_both(&mut stream, near, id, &shared);
        tokio::select! {
            end = pumps => end,
            _ = offline.wait_for(|o| o.any()) => network::End::Close,
        }
    };
    if end == network::End::Reset {
        let _ = stream.set_zero_linger();
    }
}
