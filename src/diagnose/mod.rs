//! `doctor`: one organization's socket diagnosed layer by layer, each step done
//! with its own raw pieces so a failure is seen where it happens: DNS, the proxy,
//! TCP (with the kernel's round-trip time), TLS (certificate facts), an HTTP/1.1
//! upgrade written by hand (so a refusal's status, headers and body are seen), the
//! token read locally, CONNECTED, pings, the clocks, events, the REST figures and an
//! idle hold. The walk stops at the first failure that makes the next layers
//! meaningless, and says which were skipped and why.
//!
//! - `net`: the `dns`, `proxy`, `tcp` and `tls` layers;
//! - `upgrade`: the `upgrade` and `auth` layers;
//! - `socket`: the `connected`, `ping`, `clock`, `events` and `idle` layers;
//! - `backend`: the `status` layer;
//! - `redact`: what never leaves the process (token signatures, passwords).

pub mod backend;
pub mod net;
pub mod redact;
pub mod socket;
pub mod upgrade;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::client::{ClientOptions, Endpoint, proxy, ws};
use crate::exit::Exit;

/// Every layer, in the order walked.
pub const LAYERS: [&str; 12] = [
    "dns",
    "proxy",
    "tcp",
    "tls",
    "upgrade",
    "auth",
    "connected",
    "ping",
    "clock",
    "events",
    "status",
    "idle",
];

/// Pings sent by the `ping` layer unless told otherwise.
pub const DEFAULT_PINGS: usize = 5;
/// How long one pong is waited for before it counts as lost.
pub const PONG_WAIT: Duration = Duration::from_secs(2);

/// A layer's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One layer's line: the `layer` record of `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct Layer {
    pub name: &'static str,
    pub status: Status,
    /// How long the layer took, in milliseconds (`null` when skipped).
    pub ms: Option<f64>,
    /// What was found.
    pub detail: String,
    /// The next step, for a warning or a failure.
    pub hint: Option<String>,
    /// The exit class of a failure.
    #[serde(skip)]
    pub exit: Option<Exit>,
}

impl Layer {
    pub fn pass(name: &'static str, took: Duration, detail: impl Into<String>) -> Layer {
        Layer {
            name,
            status: Status::Pass,
            ms: Some(millis(took)),
            detail: detail.into(),
            hint: None,
            exit: None,
        }
    }

    pub fn warn(
        name: &'static str,
        took: Duration,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Layer {
        Layer {
            status: Status::Warn,
            hint: Some(hint.into()),
            ..Layer::pass(name, took, detail)
        }
    }

    pub fn fail(
        name: &'static str,
        took: Duration,
        exit: Exit,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Layer {
        Layer {
            status: Status::Fail,
            hint: Some(hint.into()),
            exit: Some(exit),
            ..Layer::pass(name, took, detail)
        }
    }

    pub fn skip(name: &'static str, why: impl Into<String>) -> Layer {
        Layer {
            name,
            status: Status::Skip,
            ms: None,
            detail: why.into(),
            hint: None,
            exit: None,
        }
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// What to diagnose and how.
pub struct Plan {
    pub endpoint: Endpoint,
    pub options: ClientOptions,
    /// The wait for CONNECTED and for each REST call.
    pub timeout: Duration,
    pub pings: usize,
    /// `--events DURATION`: watch what arrives this long.
    pub events: Option<Duration>,
    /// `--probe`: queue one test item and follow it to its end.
    pub probe: bool,
    /// `--hold DURATION`: keep the socket idle this long.
    pub hold: Option<Duration>,
}

/// The walk's result.
pub struct Diagnosis {
    pub url: String,
    pub layers: Vec<Layer>,
    pub took: Duration,
}

impl Diagnosis {
    /// The first failed layer, which decides the exit code.
    pub fn first_failure(&self) -> Option<&Layer> {
        self.layers.iter().find(|l| l.status == Status::Fail)
    }

    pub fn exit(&self) -> Exit {
        self.first_failure()
            .map_or(Exit::Success, |l| l.exit.unwrap_or(Exit::Runtime))
    }
}

/// The layers so far; once one failed in a way that ends the walk, the rest are
/// skipped with the reason.
struct Walk {
    layers: Vec<Layer>,
    stopped: Option<String>,
}

impl Walk {
    fn push(&mut self, layer: Layer) {
        self.layers.push(layer);
    }

    /// Records `layer`; a failure stops the walk.
    fn push_stopping(&mut self, layer: Layer) {
        if layer.status == Status::Fail && self.stopped.is_none() {
            self.stopped = Some(format!("skipped: {} failed", layer.name));
        }
        self.push(layer);
    }

    fn skip_rest(&mut self, why: &str) {
        for name in LAYERS {
            if !self.layers.iter().any(|l| l.name == name) {
                self.layers.push(Layer::skip(name, why));
            }
        }
    }

    fn finish(mut self) -> Vec<Layer> {
        let why = self.stopped.clone().unwrap_or_else(|| "skipped".into());
        self.skip_rest(&why);
        let order = |l: &Layer| LAYERS.iter().position(|n| *n == l.name);
        self.layers.sort_by_key(order);
        self.layers
    }
}

/// Walks every layer for `plan` (see the module doc).
pub async fn run(plan: &Plan) -> Diagnosis {
    let started = Instant::now();
    let url = ws::socket_url(&plan.endpoint, None, &plan.options);
    let shown = crate::client::redact(&url);
    let mut walk = Walk {
        layers: Vec::new(),
        stopped: None,
    };
    let reached = connect(plan, &url, &mut walk).await;
    if let Some(stream) = reached {
        let opened = upgrade::upgrade(&url, stream, &plan.options, plan.deadline()).await;
        let answered = opened.answer.is_some();
        walk.push(opened.layer.clone());
        walk.push(upgrade::auth(
            plan.options.token.as_deref(),
            &plan.endpoint.org,
            opened.answer.as_ref(),
        ));
        match opened.stream {
            Some(stream) => socket::walk(plan, stream, &mut walk).await,
            None => {
                let why = match &opened.answer {
                    Some(answer) => format!("skipped: upgrade failed (HTTP {})", answer.status),
                    None => "skipped: upgrade failed".to_string(),
                };
                for name in ["connected", "ping", "clock", "events", "idle"] {
                    walk.push(Layer::skip(name, why.clone()));
                }
            }
        }
        if answered && !walk.layers.iter().any(|l| l.name == "status") {
            walk.push(backend::status(plan).await);
        }
        if walk.stopped.is_none() && walk.layers.iter().any(|l| l.status == Status::Fail) {
            walk.stopped = Some("skipped: an earlier layer failed".into());
        }
    }
    Diagnosis {
        url: shown,
        layers: walk.finish(),
        took: started.elapsed(),
    }
}

impl Plan {
    /// The deadline for DNS, TCP, TLS and the upgrade together, from now.
    fn deadline(&self) -> Instant {
        Instant::now() + self.options.connect_timeout
    }
}

/// `dns`, `proxy`, `tcp`, `tls`: a stream ready for the upgrade, or `None` with the
/// failed layer recorded.
async fn connect(plan: &Plan, url: &url::Url, walk: &mut Walk) -> Option<net::Stream> {
    let deadline = plan.deadline();
    let target = net::Target::of(url);
    let route = proxy::route(url);
    let (layer, addrs) = net::dns(&target, &route, deadline).await;
    walk.push_stopping(layer);
    let addrs = addrs?;
    let (layer, tunnel) = net::proxy(&route, &addrs, &target, deadline).await;
    walk.push_stopping(layer);
    if walk.stopped.is_some() {
        return None;
    }
    let (layer, tcp) = net::tcp(&target, &addrs, tunnel, deadline).await;
    walk.push_stopping(layer);
    let tcp = tcp?;
    let proxied = matches!(route, proxy::Route::Proxy { .. });
    let (layer, stream) = net::tls(&target, tcp, &plan.options, deadline, proxied).await;
    walk.push_stopping(layer);
    stream
}
