//! The event path behind a trait ([`EventBus`]), as Centrifugo's `Broker`: publishing
//! numbers an event of an organization (`seq`, in an `epoch`) and fans it out;
//! subscribing gives a new socket its CONNECTED, the replay that `?since=` asks for,
//! and the live stream ([`Subscription`]). The worker and the publish endpoint only
//! publish; the socket handler only subscribes; none of them knows which bus it has.
//!
//! The in-process bus (`in_process.rs`) is the first implementation (one process
//! serves alone); a bus shared between instances (Redis) replaces the
//! numbering and history behind the same calls. Frames are plain bytes, serialised
//! once per event and shared by reference with every subscriber; the socket handler
//! turns them into WebSocket messages at the edge.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use serde_json::Value;

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
    /// to replay, then every later event exactly once (in the replay or live, never
    /// both). The connection counts as open until the subscription is dropped.
    fn subscribe<'a>(
        &'a self,
        org: &'a str,
        resume: Option<&'a Resume>,
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

/// One serialised event, shared by every subscriber of its organization.
#[derive(Clone, Debug)]
pub struct Frame {
    pub seq: u64,
    /// When it was published, for the broadcast-latency metric.
    pub published: Instant,
    /// The JSON text, kept in the form the socket layer sends, so that it is known
    /// to be UTF-8 once, at publish, not once per subscriber. Only [`Frame::new`]
    /// and the accessors below touch it: a bus built on another transport hands a
    /// `String` in.
    text: Utf8Bytes,
}

impl Frame {
    pub fn new(seq: u64, text: String) -> Frame {
        Frame {
            seq,
            published: Instant::now(),
            text: Utf8Bytes::from(text),
        }
    }

    /// The size of the JSON text in bytes (what history and queues are bounded by).
    pub fn size(&self) -> usize {
        self.text.len()
    }

    /// The JSON text (for the checks of tests and fuzzing).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn text(&self) -> &str {
        self.text.as_str()
    }

    /// The text as the socket layer sends it; cloning it copies no bytes.
    pub(crate) fn message_text(&self) -> Utf8Bytes {
        self.text.clone()
    }
}

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

/// What the live stream of a [`Subscription`] yields.
#[derive(Clone, Debug)]
pub enum Received {
    Frame(Frame),
    /// The subscriber fell this many events behind; they are gone for it (it should
    /// be closed so that it resumes with `since`).
    Lagged(u64),
    /// The bus no longer sends to this subscriber.
    Closed,
}

/// The live stream of one subscriber, as a bus delivers it.
pub trait LiveStream: Send {
    /// The next live frame. Cancellation-safe (a `select!` branch may drop it).
    fn recv(&mut self) -> Pin<Box<dyn Future<Output = Received> + Send + '_>>;
    /// The next live frame if one is already queued (`None` if not).
    fn try_recv(&mut self) -> Option<Received>;
}

/// What a new socket gets: its CONNECTED, the replay, and the live stream.
pub struct Subscription {
    pub connected: Connected,
    pub replay: Vec<Frame>,
    /// Also keeps the connection counted by its bus until it is dropped.
    live: Box<dyn LiveStream>,
}

impl Subscription {
    pub fn new(connected: Connected, replay: Vec<Frame>, live: impl LiveStream + 'static) -> Self {
        Subscription {
            connected,
            replay,
            live: Box::new(live),
        }
    }

    /// The next live frame. Cancellation-safe (a `select!` branch may drop it).
    pub async fn recv(&mut self) -> Received {
        self.live.recv().await
    }

    /// The next live frame if one is already queued (`None` if not).
    pub fn try_recv(&mut self) -> Option<Received> {
        self.live.try_recv()
    }
}
