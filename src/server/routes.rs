//! The REST API: write-sync, sync-status, publish, stats, health and metrics.
//!
//! Bodies are validated field by field so that a `400` names every problem at once:
//! `{"error":"VALIDATION_ERROR","message":…,"details":[{"field":…,"message":…}]}`.
//! The validators are pure functions of the body ([`validate_write_sync`],
//! [`validate_publish`]), so they can be fuzzed. With JWT configured, the
//! organization of a request must be one its token allows (`security/`).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Map, Value, json};

use super::bus::{Draft, Unavailable};
use super::error::{Refusal, Rejection, api_error};
use super::queue::{NewItem, QueueFull};
use super::state::AppState;
use crate::claims::Grant;
use crate::protocol::{
    EventType, Outcome, PublishResponse, QueuedItem, ServerFrame, Timestamp, WriteSyncResponse,
};

/// Most items one write-sync request may queue.
pub const MAX_ITEMS: u64 = 10_000;
/// Most events one publish request may send.
pub const MAX_PUBLISH: u64 = 1_000_000;
/// Fastest pace a publish request may ask for.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Slowest pace a publish request may ask for (one event an hour): a slower one
/// has no representable period.
pub const MIN_RATE: f64 = 1.0 / 3600.0;
/// Events an unpaced publish sends between two chances for the subscribers to drain
/// and for the runtime to run other tasks.
const PUBLISH_CHUNK: usize = 256;

/// The grant of the request's token, if JWT is configured.
type MaybeGrant = Option<Extension<Grant>>;

/// The organization checks of `security/`, counted as an error when they refuse.
fn authorize(state: &AppState, grant: &MaybeGrant, org: &str) -> Result<(), Rejection> {
    state
        .security
        .authorize_org(grant.as_ref().map(|g| &g.0), org)
        .map_err(|refusal| {
            state.metrics.error(refusal.reason);
            Rejection::from(refusal)
        })
}

/// Collects field problems; turns into one `400 VALIDATION_ERROR`.
#[derive(Default)]
struct Problems(Vec<Value>);

impl Problems {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .push(json!({ "field": field, "message": message.into() }));
    }

    fn finish(self) -> Result<(), Rejection> {
        if self.0.is_empty() {
            return Ok(());
        }
        let message = self
            .0
            .iter()
            .map(|p| {
                format!(
                    "{}: {}",
                    p["field"].as_str().unwrap_or(""),
                    p["message"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            message,
            Some(Value::Array(self.0)),
        ))
    }
}

/// The body as a JSON object, or a `400` saying why not.
fn object(body: &[u8]) -> Result<Map<String, Value>, Rejection> {
    let mut problems = Problems::default();
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => return Ok(map),
        Ok(_) => problems.add("(body)", "must be a JSON object"),
        Err(e) if body.iter().all(u8::is_ascii_whitespace) => {
            problems.add("(body)", format!("is empty; send a JSON object ({e})"))
        }
        Err(e) => problems.add("(body)", format!("is not valid JSON: {e}")),
    }
    Err(problems.finish().expect_err("a problem was added"))
}

fn required_string(map: &Map<String, Value>, field: &str, problems: &mut Problems) -> String {
    match map.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => {
            problems.add(field, "must not be empty");
            String::new()
        }
        None | Some(Value::Null) => {
            problems.add(field, "is required");
            String::new()
        }
        Some(_) => {
            problems.add(field, "must be a string");
            String::new()
        }
    }
}

fn optional_string(
    map: &Map<String, Value>,
    field: &str,
    problems: &mut Problems,
) -> Option<String> {
    match map.get(field) {
        None | Some(Value::Null) => None,
        Some(_) => Some(required_string(map, field, problems)),
    }
}

fn optional_int(
    map: &Map<String, Value>,
    field: &str,
    range: std::ops::RangeInclusive<u64>,
    problems: &mut Problems,
) -> Option<u64> {
    let value = map.get(field)?;
    if value.is_null() {
        return None;
    }
    match value.as_u64() {
        Some(n) if range.contains(&n) => Some(n),
        _ => {
            problems.add(
                field,
                format!(
                    "must be an integer from {} to {}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    }
}

fn optional_strings(
    map: &Map<String, Value>,
    field: &str,
    problems: &mut Problems,
) -> Option<Vec<String>> {
    let value = map.get(field)?;
    if value.is_null() {
        return None;
    }
    let Some(array) = value.as_array() else {
        problems.add(field, "must be an array of strings");
        return None;
    };
    if array.len() as u64 > MAX_ITEMS {
        problems.add(field, format!("may hold at most {MAX_ITEMS} entries"));
        return None;
    }
    let strings: Option<Vec<String>> = array
        .iter()
        .map(|v| {
            v.as_str()
                .filter(|s| !s.trim().is_empty())
                .map(String::from)
        })
        .collect();
    if strings.is_none() {
        problems.add(field, "must hold non-empty strings only");
    }
    strings
}

/// `POST /api/pems/write-sync`.
pub async fn write_sync(State(state): State<AppState>, grant: MaybeGrant, body: Bytes) -> Response {
    let plan = match validate_write_sync(&body) {
        Ok(plan) => plan,
        Err(rejection) => {
            state.metrics.error("write_sync_validation");
            return rejection.into_response();
        }
    };
    if let Err(rejection) = authorize(&state, &grant, &plan.org) {
        return rejection.into_response();
    }
    enqueue(&state, plan).await
}

/// A validated write-sync request: what to queue.
#[derive(Debug)]
pub struct WriteSyncPlan {
    pub org: String,
    pub priority: u8,
    pub items: Vec<NewItem>,
}

/// Validates a write-sync body (pure: no state), naming every problem at once.
pub fn validate_write_sync(body: &[u8]) -> Result<WriteSyncPlan, Rejection> {
    let map = object(body)?;
    let mut problems = Problems::default();
    let org = required_string(&map, "organizationId", &mut problems);
    let modification_ids = optional_strings(&map, "modificationIds", &mut problems);
    let pfa_ids = optional_strings(&map, "pfaIds", &mut problems);
    let priority = optional_int(&map, "priority", 0..=10, &mut problems).unwrap_or(0) as u8;
    let count = optional_int(&map, "count", 0..=MAX_ITEMS, &mut problems);
    let outcome = match map.get("outcome") {
        None | Some(Value::Null) => Outcome::Success,
        Some(value) => serde_json::from_value::<Outcome>(value.clone()).unwrap_or_else(|_| {
            problems.add(
                "outcome",
                format!("must be one of {}", Outcome::ALL.join(", ")),
            );
            Outcome::Success
        }),
    };
    let listed = match (&modification_ids, &pfa_ids) {
        (Some(m), Some(p)) if m.len() != p.len() => {
            problems.add(
                "pfaIds",
                format!(
                    "has {} entries but modificationIds has {}",
                    p.len(),
                    m.len()
                ),
            );
            None
        }
        (Some(m), _) => Some(m.len() as u64),
        (None, Some(p)) => Some(p.len() as u64),
        (None, None) => None,
    };
    if let (Some(listed), Some(count)) = (listed, count)
        && listed != count
    {
        problems.add("count", format!("is {count} but {listed} ids are listed"));
    }
    problems.finish()?;

    let n = listed.or(count).unwrap_or(0) as usize;
    let rotation = [
        Outcome::Success,
        Outcome::Conflict,
        Outcome::Failed,
        Outcome::RetryThenSuccess,
    ];
    let items = (0..n)
        .map(|i| NewItem {
            pfa_id: match (&pfa_ids, &modification_ids) {
                (Some(p), _) => Some(p[i].clone()),
                (None, Some(m)) => Some(format!("pfa-{}", m[i])),
                (None, None) => None,
            },
            outcome: if outcome == Outcome::Mixed {
                rotation[i % rotation.len()]
            } else {
                outcome
            },
        })
        .collect();
    Ok(WriteSyncPlan {
        org,
        priority,
        items,
    })
}

/// The answer to a publish the bus refused: 503 when a shared bus is out of reach
/// or stalled (sockets stay open; retry later), 500 otherwise.
fn bus_failed(state: &AppState, error: &anyhow::Error) -> Response {
    if error.chain().any(|e| e.is::<Unavailable>()) {
        return Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "bus_unavailable",
            format!(
                "Redis is out of reach or stalled (open sockets stay open; retry later): {error:#}"
            ),
        )
        .respond(&state.metrics);
    }
    state.metrics.error("bus_failed");
    api_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        &format!("{error:#}"),
        None,
    )
}

async fn enqueue(state: &AppState, plan: WriteSyncPlan) -> Response {
    let WriteSyncPlan {
        org,
        priority,
        items,
    } = plan;
    let n = items.len();
    if n == 0 {
        let body = WriteSyncResponse {
            success: true,
            job_id: None,
            queued_count: 0,
            estimated_completion_time: None,
            message: Some("No pending modifications to sync".into()),
            items: None,
        };
        return Json(body).into_response();
    }
    let queued = match state.queue.enqueue(&org, priority, items).await {
        Ok(queued) => queued,
        Err(e) => match e.downcast_ref::<QueueFull>() {
            Some(full) => {
                state.metrics.error("queue_full");
                state.metrics.write_sync_failure("queue_full");
                let message = full.to_string();
                return api_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "QUEUE_FULL",
                    &message,
                    None,
                );
            }
            None => {
                state.metrics.write_sync_failure("bus_unavailable");
                return bus_failed(state, &e);
            }
        },
    };
    let config = state.queue.config();
    let rounds = n.div_ceil(config.workers.max(1)) as u32;
    let estimate = config.processing_time * rounds + Duration::from_millis(100);
    let now = chrono::Utc::now();
    let body = WriteSyncResponse {
        success: true,
        job_id: Some(format!("write-sync-{}-{org}", now.timestamp_millis())),
        queued_count: n as u64,
        estimated_completion_time: Some(Timestamp(
            now + chrono::Duration::from_std(estimate).unwrap_or_default(),
        )),
        message: None,
        items: Some(
            queued
                .into_iter()
                .map(|i| QueuedItem {
                    id: i.id,
                    pfa_id: i.pfa_id,
                })
                .collect(),
        ),
    };
    Json(body).into_response()
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusQuery {
    organization_id: Option<String>,
}

/// `GET /api/pems/sync-status?organizationId=…`.
pub async fn sync_status(
    State(state): State<AppState>,
    grant: MaybeGrant,
    query: Result<Query<StatusQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query
        .ok()
        .and_then(|q| q.0.organization_id)
        .filter(|o| !o.trim().is_empty())
    {
        Some(org) => match authorize(&state, &grant, &org) {
            Ok(()) => match state.queue.status(&org).await {
                Ok(status) => Json(status).into_response(),
                Err(e) => bus_failed(&state, &e),
            },
            Err(rejection) => rejection.into_response(),
        },
        None => {
            let mut problems = Problems::default();
            problems.add("organizationId", "query parameter is required");
            problems
                .finish()
                .expect_err("a problem was added")
                .into_response()
        }
    }
}

/// A validated publish request.
#[derive(Debug)]
pub struct Publish {
    pub org: String,
    pub draft: Draft,
    pub count: u64,
    pub rate: f64,
}

/// Validates a publish body (pure: no state), naming every problem at once.
pub fn validate_publish(body: &[u8]) -> Result<Publish, Rejection> {
    let map = object(body)?;
    let mut problems = Problems::default();
    let org = required_string(&map, "organizationId", &mut problems);
    let kind = required_string(&map, "type", &mut problems);
    if !kind.is_empty()
        && (kind == "CONNECTED"
            || !kind
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
    {
        problems.add(
            "type",
            "must be an event type in upper case (SYNC_SUCCESS, …), not CONNECTED",
        );
    }
    let pfa_id =
        optional_string(&map, "pfaId", &mut problems).unwrap_or_else(|| "pfa-published".into());
    let details = match map.get("details") {
        None | Some(Value::Null) => None,
        Some(Value::Object(d)) => Some(Value::Object(d.clone())),
        Some(_) => {
            problems.add("details", "must be a JSON object");
            None
        }
    };
    let count = optional_int(&map, "count", 1..=MAX_PUBLISH, &mut problems).unwrap_or(1);
    let rate = match map.get("ratePerSec") {
        None | Some(Value::Null) => 0.0,
        Some(v) => match v.as_f64() {
            Some(r) if r == 0.0 || (MIN_RATE..=MAX_RATE).contains(&r) => r,
            _ => {
                problems.add(
                    "ratePerSec",
                    format!("must be 0 (unpaced) or a number from {MIN_RATE} to {MAX_RATE}"),
                );
                0.0
            }
        },
    };
    problems.finish()?;
    // The event must be one a strict client accepts: check it as a client would.
    let sample = json!({
        "type": kind, "pfaId": pfa_id, "organizationId": org,
        "timestamp": Timestamp::now(), "details": details,
    });
    let mut sample = sample;
    if details.is_none() {
        sample.as_object_mut().expect("object").remove("details");
    }
    if let Err(e) = ServerFrame::from_value(sample) {
        let mut problems = Problems::default();
        problems.add("details", e.to_string());
        problems.finish()?;
    }
    Ok(Publish {
        org,
        draft: Draft {
            kind: EventType::from(kind.as_str()),
            pfa_id,
            details,
            stamp_publish_time: true,
        },
        count,
        rate,
    })
}

/// `POST /api/ws/publish`: unpaced requests are published before the answer (200);
/// paced ones (`ratePerSec` > 0) are accepted (202) and published in the background.
pub async fn publish(State(state): State<AppState>, grant: MaybeGrant, body: Bytes) -> Response {
    if body.len() > state.config.max_event_size {
        state.metrics.error("event_too_large");
        let message = format!(
            "the body has {} bytes; events are limited to {} (--max-event-size)",
            body.len(),
            state.config.max_event_size
        );
        return api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            &message,
            None,
        );
    }
    let publish = match validate_publish(&body) {
        Ok(p) => p,
        Err(rejection) => {
            state.metrics.error("publish_validation");
            return rejection.into_response();
        }
    };
    if let Err(rejection) = authorize(&state, &grant, &publish.org) {
        return rejection.into_response();
    }
    if publish.rate == 0.0 {
        return match publish_burst(&state, &publish).await {
            Ok(body) => Json(body).into_response(),
            Err(e) => bus_failed(&state, &e),
        };
    }
    let Some(slot) = PacedSlot::take(&state) else {
        state.metrics.error("paced_publishes_full");
        let message = format!(
            "{} paced publishes are running, the most this server runs at once (--max-paced-publishes)",
            state.config.max_paced_publishes
        );
        return api_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            &message,
            None,
        );
    };
    let period = Duration::from_secs_f64(1.0 / publish.rate);
    let shutdown = state.shutdown.clone();
    let bus = state.bus.clone();
    let accepted = publish.count;
    state.tasks.spawn(async move {
        let _slot = slot;
        let mut ticks = tokio::time::interval(period);
        // Never faster than asked: a late tick delays the rest instead of bunching them.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for _ in 0..publish.count {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            // A bus that fails ends the paced stream: the request was answered long ago.
            if bus
                .publish(&publish.org, publish.draft.clone())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let body = PublishResponse {
        success: true,
        published: 0,
        accepted,
        first_seq: None,
        last_seq: None,
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// An unpaced publish: in chunks, each waiting for the subscribers to have room
/// for it (so a burst never overtakes a reader that keeps up) and yielding to the
/// runtime (so one large publish does not hold a worker thread).
async fn publish_burst(state: &AppState, publish: &Publish) -> anyhow::Result<PublishResponse> {
    let mut first = None;
    let mut last = 0;
    let mut left = publish.count as usize;
    while left > 0 {
        let chunk = state
            .bus
            .make_room(&publish.org, left.min(PUBLISH_CHUNK))
            .await?;
        for _ in 0..chunk.min(left) {
            last = state
                .bus
                .publish(&publish.org, publish.draft.clone())
                .await?;
            first.get_or_insert(last);
        }
        left -= chunk.min(left);
        tokio::task::yield_now().await;
    }
    Ok(PublishResponse {
        success: true,
        published: publish.count,
        accepted: publish.count,
        first_seq: first,
        last_seq: Some(last),
    })
}

/// A place among the paced publishes running at once; freed on drop.
struct PacedSlot(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl PacedSlot {
    fn take(state: &AppState) -> Option<PacedSlot> {
        use std::sync::atomic::Ordering;
        let max = state.config.max_paced_publishes;
        state
            .paced
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| PacedSlot(state.paced.clone()))
    }
}

impl Drop for PacedSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// `GET /api/ws/stats`. A token limited to some organizations sees only theirs in
/// `organizations`; the totals stay whole.
pub async fn stats(State(state): State<AppState>, grant: MaybeGrant) -> Response {
    let connections = state.bus.connections();
    let total: usize = connections.iter().map(|(_, n)| n).sum();
    let per_org: Map<String, Value> = connections
        .into_iter()
        .filter(|(org, _)| grant.as_ref().is_none_or(|g| g.0.allows(org)))
        .map(|(org, n)| (org, Value::from(n)))
        .collect();
    let mut body = json!({
        "totalConnections": total,
        "organizations": per_org,
        "connectionsOpened": state.metrics.connections_opened.get(),
        "eventsPublished": state.bus.published(),
        "framesSent": state.metrics.frames_sent.get(),
        "queueBacklog": state.queue.backlog().await,
        "uptimeSeconds": state.metrics.started.elapsed().as_secs_f64(),
    });
    // With --redis: this instance's id and the live instances of the cluster.
    if let Ok(Some(Value::Object(cluster))) = state.bus.cluster().await {
        let visible = |org: &str| grant.as_ref().is_none_or(|g| g.0.allows(org));
        for (key, mut value) in cluster {
            if let Some(orgs) = value
                .get_mut("organizations")
                .and_then(Value::as_object_mut)
            {
                orgs.retain(|org, _| visible(org));
            }
            body[key] = value;
        }
    }
    Json(body).into_response()
}

/// `GET /healthz`.
pub async fn healthz(State(state): State<AppState>) -> Response {
    let status = if state.shutdown.is_cancelled() {
        "shutting-down"
    } else {
        "ok"
    };
    let code = if state.shutdown.is_cancelled() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let uptime = state.metrics.started.elapsed().as_secs_f64();
    let mut body = json!({ "status": status, "uptimeSeconds": uptime });
    // Redis away or stalled: still serving the open sockets (200), but publishes
    // and write-syncs answer 503 until it is back.
    if let Some(reason) = state.bus.degraded()
        && code == StatusCode::OK
    {
        body["status"] = "degraded".into();
        body["reason"] = reason.into();
    }
    (code, Json(body)).into_response()
}

/// `GET /metrics` in the Prometheus (OpenMetrics) text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// `POST /api/ws/admin/reload-orgs`: re-reads the organization allow-list (as SIGHUP
/// does). Needs JWT configured and a token for every organization (`org` claim `*`, or `role: "admin"`).
pub async fn reload_orgs(State(state): State<AppState>, grant: MaybeGrant) -> Response {
    let allowed = match &grant {
        Some(Extension(grant)) => grant.allows_all(),
        None => false,
    };
    if !allowed {
        let message = if state.security.jwt.is_none() {
            "the admin API needs JWT to be configured (--jwt-secret or --jwt-public-key)"
        } else {
            "the admin API needs a token for every organization (org claim \"*\", or role admin)"
        };
        return state
            .security
            .refuse(Refusal::forbidden("admin_forbidden", message));
    }
    match state.security.reload_orgs() {
        Ok(reloaded) => Json(json!({
            "success": true,
            "organizations": reloaded.organizations,
            "closing": reloaded.closing,
        }))
        .into_response(),
        Err(e) => {
            state.metrics.error("reload_failed");
            let (status, error) = if state.config.org_allow_list.is_none() {
                (StatusCode::CONFLICT, "NOT_CONFIGURED")
            } else {
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
            };
            api_error(status, error, &format!("{e:#}"), None)
        }
    }
}

pub async fn not_found() -> Response {
    api_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint", None)
}
