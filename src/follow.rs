//! Post and follow: queue writes through `POST /api/pems/write-sync` on a socket
//! that is already past CONNECTED, and follow every queued item to its terminal
//! event. `enqueue --wait` and `smoke` both go through it.
//!
//! The socket is opened first so no event can be missed: the server announces
//! SYNC_QUEUED before it answers. Events that arrive before the answer are kept
//! until the answer says which items are ours, then handed on in arrival order,
//! after the answer itself ([`Seen::Answered`]): what is shown follows cause and effect.
//!
//! Following always ends with what was seen ([`Followed`]) and why it stopped
//! ([`FollowEnd`]), so a timeout, Ctrl-C or a broken stream still leaves a summary.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::check::{CheckConfig, Finding, StreamCheck};
use crate::client::http::Api;
use crate::client::session::{Session, Started};
use crate::client::ws::{self, Opened};
use crate::client::{ClientOptions, Endpoint};
use crate::exit::Failure;
use crate::lifecycle::{ItemTrace, Lifecycle};
use crate::protocol::{
    EventType, QueuedItem, ResolveRequest, ResolveResponse, ServerFrame, SyncEvent,
    WriteSyncRequest, WriteSyncResponse,
};

/// What following a write-sync produced, however it ended.
pub struct Followed {
    /// The answer to the POST; `None` when none came (never made up).
    pub response: Option<WriteSyncResponse>,
    /// From sending the POST to its answer, when it came.
    pub answered_ms: Option<f64>,
    /// Our items, in the answer's order (Part 2) or their arrival order (Part 1).
    pub items: Vec<ItemTrace>,
    pub check: StreamCheck,
    pub end: FollowEnd,
}

/// Why following stopped.
pub enum FollowEnd {
    /// The answer came and every item it queued has ended.
    Done,
    /// The deadline passed.
    Timeout,
    /// `interrupt` fired (Ctrl-C).
    Interrupted,
    /// The POST failed (no answer, or an error answer).
    Post(anyhow::Error),
    /// The socket broke the protocol or closed.
    Stream(anyhow::Error),
}

/// What the follower hands on as it goes, for the caller to show.
pub enum Seen<'a> {
    /// The answer to the POST, `ms` after it was sent; handed on before any event
    /// that arrived ahead of it.
    Answered {
        response: &'a WriteSyncResponse,
        ms: f64,
    },
    /// An event of one of our items.
    Event {
        raw: &'a str,
        frame: Option<&'a ServerFrame>,
    },
    /// Something the stream check noticed.
    Finding(&'a Finding),
}

/// Opens the socket and checks CONNECTED ([`Session::start`]), all before
/// `deadline`.
pub async fn open(
    endpoint: &Endpoint,
    options: &ClientOptions,
    deadline: Instant,
    on_open: impl FnOnce(&Opened),
    interrupt: &mut (impl Future<Output = ()> + Unpin),
) -> anyhow::Result<Started> {
    let opened = Cell::new(false);
    let on_open = |o: &Opened| {
        opened.set(true);
        on_open(o);
    };
    let within = deadline.saturating_duration_since(Instant::now());
    let start = Session::start(endpoint, None, options, within, on_open, interrupt);
    match tokio::time::timeout_at(deadline, start).await {
        Ok(started) => started,
        // `within` counts from before the open: say it is the whole --timeout.
        Err(_) if opened.get() => Err(Failure::Timeout(format!(
            "the socket opened, but no CONNECTED came before --timeout ({}) ran out",
            humantime::format_duration(within)
        ))
        .into()),
        Err(_) => Err(Failure::Timeout(format!(
            "timed out opening the socket: --timeout ({}) ran out",
            humantime::format_duration(within)
        ))
        .into()),
    }
}

/// Posts `request` on `session` and follows every queued item to its terminal
/// event, until `deadline` or `interrupt` (polled first); `on` sees the answer,
/// our items' events and the check's findings, in that causal order.
///
/// Items are the answer's `items` (Part 2). A Part 1 answer names none: then the
/// first `queuedCount` items whose SYNC_QUEUED arrives after the POST are followed.
pub async fn follow(
    session: &mut Session,
    api: &Api,
    request: &WriteSyncRequest,
    deadline: Instant,
    interrupt: &mut (impl Future<Output = ()> + Unpin),
    on: impl FnMut(Seen<'_>),
) -> Followed {
    let post = api.write_sync(request);
    let org = &request.organization_id;
    follow_post(session, org, None, post, deadline, interrupt, on).await
}

/// [`follow`] for any request that queues items: `post` answers which (a conflict
/// resolution that queues its item again answers as if it were a write-sync of it).
/// `after` is the check of an earlier follow on the same session, so that the stream
/// is checked on from where that one stopped (its `seq`), not from CONNECTED.
pub async fn follow_post(
    session: &mut Session,
    org: &str,
    after: Option<StreamCheck>,
    post: impl Future<Output = anyhow::Result<WriteSyncResponse>>,
    deadline: Instant,
    interrupt: &mut (impl Future<Output = ()> + Unpin),
    mut on: impl FnMut(Seen<'_>),
) -> Followed {
    let mut state = Following::new(session, org, after);
    tokio::pin!(post);
    let end = loop {
        if state.done() {
            break FollowEnd::Done;
        }
        let step = tokio::select! {
            biased;
            _ = &mut *interrupt => Err(FollowEnd::Interrupted),
            _ = tokio::time::sleep_until(deadline) => Err(FollowEnd::Timeout),
            answer = &mut post, if state.response.is_none() => state.answered(answer, &mut on),
            incoming = session.next() => state.incoming(incoming, &mut on),
        };
        if let Err(end) = step {
            break end;
        }
    };
    state.followed(end)
}

/// Resolves conflict `id` of item `pfa_id` on a socket already past CONNECTED and,
/// as [`follow`] does for a write-sync, follows the item queued again to its end.
/// The resolve answer comes back beside the follow (`None` when none came).
#[allow(clippy::too_many_arguments)]
pub async fn follow_resolution(
    session: &mut Session,
    api: &Api,
    org: &str,
    id: &str,
    pfa_id: &str,
    request: &ResolveRequest,
    after: Option<StreamCheck>,
    deadline: Instant,
    interrupt: &mut (impl Future<Output = ()> + Unpin),
    on: impl FnMut(Seen<'_>),
) -> (Option<ResolveResponse>, Followed) {
    let answer = std::cell::RefCell::new(None);
    let post = async {
        let resolved = api.resolve(id, request).await?;
        let as_queued = WriteSyncResponse {
            success: resolved.success,
            job_id: None,
            queued_count: 1,
            estimated_completion_time: None,
            message: None,
            items: Some(vec![QueuedItem {
                id: resolved.conflict_id.clone(),
                pfa_id: pfa_id.to_string(),
            }]),
        };
        *answer.borrow_mut() = Some(resolved);
        Ok(as_queued)
    };
    let followed = follow_post(session, org, after, post, deadline, interrupt, on).await;
    (answer.into_inner(), followed)
}

/// The `details.conflictId` of a SYNC_CONFLICT frame.
pub fn conflict_id(frame: Option<&ServerFrame>) -> Option<String> {
    let event = event_of(frame).filter(|e| e.kind == EventType::Conflict)?;
    let id = event.details.as_ref()?.get("conflictId")?.as_str()?;
    Some(id.to_string())
}

/// Most bytes of frames held while the write-sync answer is awaited (to show the
/// ones that turn out to be ours after it); later ones are checked, not held.
const MAX_EARLY_BYTES: usize = 8 * 1024 * 1024;

/// The state of one follow.
struct Following {
    check: StreamCheck,
    sent: Instant,
    response: Option<WriteSyncResponse>,
    answered_ms: Option<f64>,
    items: HashMap<String, Lifecycle>,
    /// pfaIds in the order their first event, a SYNC_QUEUED, arrived.
    queued_order: Vec<String>,
    /// Events that arrived before the answer said which items are ours (at most
    /// [`MAX_EARLY_BYTES`] of frames).
    early: Vec<(String, Option<ServerFrame>)>,
    early_bytes: usize,
    ours: Option<Vec<String>>,
}

impl Following {
    fn new(session: &Session, org: &str, after: Option<StreamCheck>) -> Following {
        let check = after.unwrap_or_else(|| {
            let mut check = StreamCheck::new(CheckConfig {
                org: org.to_string(),
                ..Default::default()
            });
            check.on_connected(&session.connected.connected, None);
            check
        });
        Following {
            check,
            sent: Instant::now(),
            response: None,
            answered_ms: None,
            items: HashMap::new(),
            queued_order: Vec::new(),
            early: Vec::new(),
            early_bytes: 0,
            ours: None,
        }
    }

    /// The answer came, and every item it queued has ended.
    fn done(&self) -> bool {
        let (Some(response), Some(ours)) = (&self.response, &self.ours) else {
            return false;
        };
        ours.len() as u64 >= response.queued_count
            && ours
                .iter()
                .all(|p| self.items.get(p).is_some_and(|i| i.outcome().is_some()))
    }

    fn answered(
        &mut self,
        answer: anyhow::Result<WriteSyncResponse>,
        on: &mut impl FnMut(Seen<'_>),
    ) -> Result<(), FollowEnd> {
        let answer = answer.map_err(FollowEnd::Post)?;
        let ms = millis(self.sent.elapsed());
        self.answered_ms = Some(ms);
        on(Seen::Answered {
            response: &answer,
            ms,
        });
        let names: Vec<String> = match &answer.items {
            Some(items) => items.iter().map(|i| i.pfa_id.clone()).collect(),
            // Part 1: ours are the first queued after the POST, in arrival order.
            None => self
                .queued_order
                .iter()
                .take(answer.queued_count as usize)
                .cloned()
                .collect(),
        };
        for (raw, frame) in self.early.drain(..) {
            if event_of(frame.as_ref()).is_some_and(|e| names.contains(&e.pfa_id)) {
                on(Seen::Event {
                    raw: &raw,
                    frame: frame.as_ref(),
                });
            }
        }
        self.ours = Some(names);
        self.response = Some(answer);
        Ok(())
    }

    fn incoming(
        &mut self,
        incoming: anyhow::Result<ws::Incoming>,
        on: &mut impl FnMut(Seen<'_>),
    ) -> Result<(), FollowEnd> {
        let (text, at) = match incoming.map_err(FollowEnd::Stream)? {
            ws::Incoming::Text { text, at } => (text, at),
            ws::Incoming::Binary(len) => {
                return Err(protocol_error(format!(
                    "a binary frame of {len} bytes: the protocol sends JSON text frames only"
                )));
            }
            ws::Incoming::Pong(_) => return Ok(()),
            ws::Incoming::Closed(frame) => return Err(closed_early(frame)),
        };
        let outcome = self
            .check
            .on_frame(&text, at)
            .map_err(|v| protocol_error(v.0))?;
        for finding in &outcome.findings {
            on(Seen::Finding(finding));
        }
        let Some(ServerFrame::Event(event)) = &outcome.frame else {
            return Ok(());
        };
        if self.ours.is_none() {
            // Before the answer every item may be ours; bounded all the same.
            self.track(event);
            if self.early_bytes + text.len() <= MAX_EARLY_BYTES {
                self.early_bytes += text.len();
                self.early.push((text, outcome.frame.clone()));
            }
        } else if self.claims(event) {
            self.track(event);
            on(Seen::Event {
                raw: &text,
                frame: outcome.frame.as_ref(),
            });
        }
        Ok(())
    }

    /// Adds `event` to its item's lifecycle (a new item only while fewer than
    /// [`crate::check::MAX_TRACKED_ITEMS`] are followed).
    fn track(&mut self, event: &SyncEvent) {
        let after = millis(self.sent.elapsed());
        let is_new = !self.items.contains_key(&event.pfa_id);
        if is_new && self.items.len() >= crate::check::MAX_TRACKED_ITEMS {
            return;
        }
        self.items
            .entry(event.pfa_id.clone())
            .or_insert_with(|| Lifecycle::new(&event.pfa_id))
            .on_event(event, Some(after));
        if is_new && event.kind == EventType::Queued {
            self.queued_order.push(event.pfa_id.clone());
        }
    }

    /// Whether `event` (after the answer) belongs to one of our items. After a
    /// Part 1 answer, late SYNC_QUEUED events still join until the count is reached.
    fn claims(&mut self, event: &SyncEvent) -> bool {
        let (Some(names), Some(response)) = (&mut self.ours, &self.response) else {
            return false;
        };
        let joins = response.items.is_none()
            && event.kind == EventType::Queued
            && (names.len() as u64) < response.queued_count
            && !names.contains(&event.pfa_id);
        if joins {
            names.push(event.pfa_id.clone());
        }
        names.contains(&event.pfa_id)
    }

    fn followed(mut self, end: FollowEnd) -> Followed {
        let names = self.ours.take().unwrap_or_default();
        let items = names
            .iter()
            .map(|p| self.items.remove(p).unwrap_or_else(|| Lifecycle::new(p)))
            .map(|item| item.trace())
            .collect();
        Followed {
            response: self.response,
            answered_ms: self.answered_ms,
            items,
            check: self.check,
            end,
        }
    }
}

fn event_of(frame: Option<&ServerFrame>) -> Option<&SyncEvent> {
    match frame {
        Some(ServerFrame::Event(e)) => Some(e),
        _ => None,
    }
}

fn protocol_error(message: String) -> FollowEnd {
    FollowEnd::Stream(Failure::Protocol(message).into())
}

fn closed_early(frame: Option<(u16, String)>) -> FollowEnd {
    let how = match frame {
        None => "without a close frame".to_string(),
        Some((code, reason)) if reason.is_empty() => format!("with code {code} (reason: -)"),
        Some((code, reason)) => format!("with code {code} (reason: {reason})"),
    };
    protocol_error(format!(
        "the server closed the connection {how} before every item ended"
    ))
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
