//! The event path behind a trait ([`EventBus`]), as Centrifugo's `Broker`: publishing
//! numbers an event of an organization (`seq`, in an `epoch`) and fans it out;
//! subscribing gives a new socket its CONNECTED, the replay that `?since=` asks for,
//! and the live stream ([`Subscription`]). The worker and the publish endpoint only
//! publish; the socket handler only subscribes; none of them knows which bus it has.
//!
//! The in-process bus (`in_process.rs`) is the first implementation (one process
//! serves alone); a bus shared between instances (Redis) replaces the
//! numbering and history behind the same calls. A frame is serialised and framed
//! once per event and its bytes are shared by reference with every subscriber; both
//! buses hand live frames to the local fan-out (`fanout.rs`), which writes them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

pub use super::fanout::Frame;
use super::fanout::Outlet;

use crate::protocol::{Connected, EventType};

/// What the calls of an [`EventBus`] return: boxed, so the server can hold a
/// `dyn EventBus`; `Send`, so handlers can await them in spawned tasks.
pub type BusFuture<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send + 'a>>;

/// The engine of the server's events.
pub trait EventBus: Send + Sync {
    /// Numbers, records and fans out one event of `org`; resolves to its `seq`.
    /// Events of one organization are numbered in the order their publishes resolve.
    fn publish<'a>(&'a self, org: &'a str, draft: Draft) -> BusFuture<'a, u64>;

    /// Subscribes a new connection of `org`: its CONNECTED, then what `resume` asks
    /// to replay, then every later event exactly once (in the replay or live through
    /// `outlet`, never both: the outlet holds live events until it is released past
    /// the replay). The connection counts as open until the subscription is dropped.
    fn subscribe<'a>(
        &'a self,
        org: &'a str,
        resume: Option<&'a Resume>,
        outlet: &'a Arc<Outlet>,
    ) -> BusFuture<'a, Subscription>;

    /// Waits (briefly: a bus bounds it) until the subscribers of `org` have room for
    /// more events; resolves to how many of the `n` a burst still has to publish may
    /// go now (at least one). A large burst so goes out in chunks its fast readers
    /// drain instead of overtaking them. A bus without a bound on how far a
    /// subscriber may fall behind lets them all go at once.
    fn make_room<'a>(&'a self, org: &'a str, n: usize) -> BusFuture<'a, usize> {
        let _ = org;
        Box::pin(std::future::ready(Ok(n.max(1))))
    }

    /// Events published through this server since it started, across organizations.
    fn published(&self) -> u64;

    /// This server's open connections per organization (those with none left out),
    /// sorted by organization.
    fn connections(&self) -> Vec<(String, usize)>;

    /// Why the bus cannot serve fully now (`/healthz` says `degraded`), or `None`.
    fn degraded(&self) -> Option<String> {
        None
    }

    /// The instances sharing this bus (`/api/ws/stats`), or `None` for a bus of
    /// one process.
    fn cluster(&self) -> BusFuture<'_, Option<Value>> {
        Box::pin(std::future::ready(Ok(None)))
    }
}

/// A shared bus out of reach or stalled: publishes and write-syncs answer 503.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// What a publisher says; the bus adds organization, timestamp and `seq`.
#[derive(Clone, Debug)]
pub struct Draft {
    pub kind: EventType,
    pub pfa_id: String,
    pub details: Option<Value>,
    /// Set `publishedAtUs` (events from `POST /api/ws/publish`).
    pub stamp_publish_time: bool,
}

/// A client's `?since=N&epoch=E`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    pub since: u64,
    pub epoch: Option<String>,
}

/// What a new socket gets: its CONNECTED and the replay. Its live events reach the
/// [`Outlet`] it subscribed with, through the bus's [`Hub`](super::fanout::Hub).
pub struct Subscription {
    pub connected: Connected,
    pub replay: Vec<Frame>,
    /// Keeps the connection counted (and its outlet in the fan-out) until dropped.
    membership: Box<dyn Send + Sync>,
}

impl Subscription {
    pub fn new(
        connected: Connected,
        replay: Vec<Frame>,
        membership: impl Send + Sync + 'static,
    ) -> Self {
        Subscription {
            connected,
            replay,
            membership: Box::new(membership),
        }
    }

    /// What keeps the connection subscribed, once CONNECTED and the replay are sent.
    pub fn into_membership(self) -> Box<dyn Send + Sync> {
        self.membership
    }
}
