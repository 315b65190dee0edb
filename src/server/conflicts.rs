//! The conflicts API: what closes the SYNC_CONFLICT loop.
//!
//! - `GET /api/pems/conflicts?organizationId=ORG[&status=unresolved|resolved]` lists
//!   an organization's conflicts, newest first: `{"conflicts":[…],"total":N}`.
//! - `POST /api/pems/conflicts/{conflictId}/resolve` with
//!   `{"resolution":"use_local"|"use_pems"|"merge","mergedData":…}` resolves one:
//!   `use_local` and `merge` queue the item again (a new SYNC_QUEUED, SYNC_PROCESSING
//!   and terminal event for the same pfaId), `use_pems` marks it synced without
//!   events.
//!
//! Answers follow the original backend (`BAD_REQUEST`, `VALIDATION_ERROR`,
//! `NOT_FOUND`, `FORBIDDEN`), except that resolving a resolved conflict is `409
//! CONFLICT_RESOLVED` where the original answers `500 INTERNAL_ERROR`.
//!
//! The queue records every conflict outcome here ([`ConflictHook`]) before its event
//! is out, under the id the event carries in `details.conflictId`. The store is
//! bounded ([`MAX_PER_ORG`], [`MAX_TOTAL`]): past a bound, the oldest resolved
//! conflict goes first, then the oldest unresolved one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::error::{Rejection, api_error};
use super::metrics::Metrics;
use super::queue::{CONFLICTING_FIELDS, ConflictHook, Item, NewItem, Queue};
use super::security::Security;
use crate::claims::Grant;
use crate::protocol::{
    Conflict, ConflictList, Outcome, Resolution, ResolveRequest, ResolveResponse, Timestamp,
};

/// Most conflicts kept for one organization.
pub const MAX_PER_ORG: usize = 1_000;
/// Most conflicts kept in all.
pub const MAX_TOTAL: usize = 5_000;
/// Largest `mergedData` accepted, in bytes of JSON.
pub const MAX_MERGED_DATA: usize = 4 * 1024;

const UNRESOLVED: &str = "unresolved";
const RESOLVED: &str = "resolved";

struct Stored {
    org: String,
    conflict: Conflict,
}

/// Every conflict kept, oldest first.
#[derive(Default)]
pub struct ConflictStore {
    kept: Mutex<VecDeque<Stored>>,
}

/// Why a conflict could not be resolved.
#[derive(Debug, PartialEq, Eq)]
pub enum ResolveError {
    NotFound,
    AlreadyResolved(String),
}

impl ConflictStore {
    /// Keeps `conflict` of `org`, dropping what the bounds require.
    pub fn insert(&self, org: &str, conflict: Conflict) {
        let mut kept = self.kept.lock().expect("conflicts lock");
        if kept.iter().filter(|s| s.org == org).count() >= MAX_PER_ORG {
            evict(&mut kept, Some(org));
        }
        if kept.len() >= MAX_TOTAL {
            evict(&mut kept, None);
        }
        kept.push_back(Stored {
            org: org.to_string(),
            conflict,
        });
    }

    /// `org`'s conflicts, newest first, of `status` if given.
    pub fn list(&self, org: &str, status: Option<&str>) -> Vec<Conflict> {
        let kept = self.kept.lock().expect("conflicts lock");
        kept.iter()
            .rev()
            .filter(|s| s.org == org && status.is_none_or(|st| s.conflict.status == st))
            .map(|s| s.conflict.clone())
            .collect()
    }

    /// The organization and the conflict of `id`.
    pub fn get(&self, id: &str) -> Option<(String, Conflict)> {
        let kept = self.kept.lock().expect("conflicts lock");
        kept.iter()
            .find(|s| s.conflict.id == id)
            .map(|s| (s.org.clone(), s.conflict.clone()))
    }

    /// Marks `id` resolved (once: a second call is refused), keeping what was
    /// decided; returns the conflict as it was before.
    pub fn resolve(
        &self,
        id: &str,
        resolution: Resolution,
        merged: Value,
        by: Option<String>,
        at: &str,
    ) -> Result<Conflict, ResolveError> {
        let mut kept = self.kept.lock().expect("conflicts lock");
        let stored = kept
            .iter_mut()
            .find(|s| s.conflict.id == id)
            .ok_or(ResolveError::NotFound)?;
        let conflict = &mut stored.conflict;
        if conflict.status != UNRESOLVED {
            return Err(ResolveError::AlreadyResolved(conflict.status.clone()));
        }
        let before = conflict.clone();
        conflict.status = RESOLVED.into();
        conflict.resolution = Some(resolution.as_str().into());
        conflict.merged_data = merged;
        conflict.resolved_by = by;
        conflict.resolved_at = Some(at.to_string());
        Ok(before)
    }

    fn remove(&self, org: &str, id: &str) {
        let mut kept = self.kept.lock().expect("conflicts lock");
        kept.retain(|s| !(s.org == org && s.conflict.id == id));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.kept.lock().expect("conflicts lock").len()
    }
}

/// Drops the oldest resolved conflict (of `org`, if given), or failing that the
/// oldest one.
fn evict(kept: &mut VecDeque<Stored>, org: Option<&str>) {
    let mine = |s: &Stored| org.is_none_or(|o| s.org == o);
    let at = kept
        .iter()
        .position(|s| mine(s) && s.conflict.status != UNRESOLVED)
        .or_else(|| kept.iter().position(mine));
    if let Some(at) = at {
        kept.remove(at);
    }
}

/// The conflict a simulated conflict outcome leaves: the local change against the
/// newer upstream record.
impl ConflictHook for ConflictStore {
    fn record(&self, item: &Item, conflict_id: &str, local_version: i64) {
        let conflict = Conflict {
            id: conflict_id.to_string(),
            pfa_id: item.pfa_id.clone(),
            local_version: Some(local_version),
            pems_version: Some(local_version + 1),
            conflict_fields: CONFLICTING_FIELDS.iter().map(|f| f.to_string()).collect(),
            local_data: json!({"quantity": 12, "status": "ON_HOLD"}),
            pems_data: json!({"quantity": 10, "status": "ACTIVE"}),
            status: UNRESOLVED.into(),
            resolution: None,
            merged_data: Value::Null,
            created_at: Some(Timestamp::now().to_string()),
            resolved_at: None,
            resolved_by: None,
        };
        self.insert(&item.org, conflict);
    }

    fn withdraw(&self, org: &str, conflict_id: &str) {
        self.remove(org, conflict_id);
    }
}

/// What the conflict handlers need of the shared state.
#[derive(Clone)]
pub struct Ctx {
    pub store: Arc<ConflictStore>,
    pub queue: Arc<Queue>,
    pub security: Arc<Security>,
    pub metrics: Arc<Metrics>,
}

type MaybeGrant = Option<Extension<Grant>>;

impl Ctx {
    fn authorize(&self, grant: &MaybeGrant, org: &str) -> Result<(), Rejection> {
        self.security
            .authorize_org(grant.as_ref().map(|g| &g.0), org)
            .map_err(|refusal| {
                self.metrics.error(refusal.reason);
                Rejection::from(refusal)
            })
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    organization_id: Option<String>,
    status: Option<String>,
}

/// `GET /api/pems/conflicts?organizationId=…[&status=unresolved|resolved]`.
pub async fn list(
    State(ctx): State<Ctx>,
    grant: MaybeGrant,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (org, status) = match query {
        Ok(Query(q)) => (q.organization_id.filter(|o| !o.trim().is_empty()), q.status),
        Err(_) => (None, None),
    };
    let Some(org) = org else {
        ctx.metrics.error("conflicts_validation");
        return bad_request("organizationId is required");
    };
    if let Some(status) = status.as_deref()
        && status != UNRESOLVED
        && status != RESOLVED
    {
        ctx.metrics.error("conflicts_validation");
        let message = format!("status must be {UNRESOLVED} or {RESOLVED}");
        let details = json!([{"field": "status", "message": message}]);
        return api_error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            &message,
            Some(details),
        );
    }
    if let Err(rejection) = ctx.authorize(&grant, &org) {
        return rejection.into_response();
    }
    let conflicts = ctx.store.list(&org, status.as_deref());
    let total = conflicts.len() as u64;
    Json(ConflictList { conflicts, total }).into_response()
}

fn bad_request(message: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message, None)
}

/// The resolve body, validated as the original does (`VALIDATION_ERROR` with
/// details).
fn validate_resolve(body: &[u8]) -> Result<ResolveRequest, Rejection> {
    let invalid = |message: String| {
        let details = json!([{"field": "resolution", "message": message}]);
        Rejection::new(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("Invalid request body: {message}"),
            Some(details),
        )
    };
    let value: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON: {e}")))?;
    if !value["resolution"]
        .as_str()
        .is_some_and(|r| Resolution::ALL.contains(&r))
    {
        return Err(invalid(format!(
            "resolution must be one of {}",
            Resolution::ALL.join(", ")
        )));
    }
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

/// `mergedData` of a merge: present (400 `BAD_REQUEST`), an object and bounded
/// (400 `VALIDATION_FAILED`).
fn check_merged(request: &ResolveRequest) -> Result<Value, Rejection> {
    let Some(merged) = request.merged_data.clone().filter(|m| !m.is_null()) else {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "mergedData is required for merge resolution".into(),
            None,
        ));
    };
    let size = merged.to_string().len();
    let problem = if !merged.is_object() {
        Some("mergedData must be a JSON object of fields".to_string())
    } else if size > MAX_MERGED_DATA {
        Some(format!(
            "mergedData is {size} bytes; at most {MAX_MERGED_DATA} are accepted"
        ))
    } else {
        None
    };
    match problem {
        Some(message) => Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            format!("Merged data failed validation: {message}"),
            None,
        )),
        None => Ok(merged),
    }
}

/// `POST /api/pems/conflicts/{conflictId}/resolve`.
pub async fn resolve(
    State(ctx): State<Ctx>,
    grant: MaybeGrant,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    match resolve_checked(&ctx, &grant, &id, &body).await {
        Ok(answer) => Json(answer).into_response(),
        Err(rejection) => rejection.into_response(),
    }
}

/// The checks in the original's order: body, conflict (404), organization (403),
/// merged data (400); then the resolution itself (409 when already resolved).
async fn resolve_checked(
    ctx: &Ctx,
    grant: &MaybeGrant,
    id: &str,
    body: &[u8],
) -> Result<ResolveResponse, Rejection> {
    let request =
        validate_resolve(body).inspect_err(|_| ctx.metrics.error("resolve_validation"))?;
    let Some((org, conflict)) = ctx.store.get(id) else {
        ctx.metrics.error("conflict_not_found");
        return Err(Rejection::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Conflict not found".into(),
            None,
        ));
    };
    ctx.authorize(grant, &org)?;
    let applied = match request.resolution {
        Resolution::Merge => check_merged(&request)?,
        Resolution::UseLocal => conflict.local_data.clone(),
        Resolution::UsePems => Value::Null,
    };
    let at = Timestamp::now().to_string();
    let by = grant.as_ref().and_then(|g| g.0.subject.clone());
    match ctx
        .store
        .resolve(id, request.resolution, applied.clone(), by, &at)
    {
        Ok(_) => {}
        Err(ResolveError::NotFound) => {
            return Err(Rejection::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "Conflict not found".into(),
                None,
            ));
        }
        Err(ResolveError::AlreadyResolved(status)) => {
            ctx.metrics.error("conflict_resolved");
            return Err(Rejection::new(
                StatusCode::CONFLICT,
                "CONFLICT_RESOLVED",
                format!("Conflict {id} is already {status}"),
                None,
            ));
        }
    }
    let requeues = request.resolution.requeues();
    ctx.queue.conflict_resolved(&org, !requeues).await;
    if requeues {
        let again = NewItem {
            pfa_id: Some(conflict.pfa_id.clone()),
            outcome: Outcome::Success,
        };
        if let Err(e) = ctx.queue.enqueue(&org, 0, vec![again]).await {
            ctx.metrics.error("bus_failed");
            return Err(Rejection::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                format!("the conflict is resolved, but queueing the item again failed: {e:#}"),
                None,
            ));
        }
    }
    Ok(ResolveResponse {
        success: true,
        conflict_id: id.to_string(),
        resolved_at: Some(at),
        applied_changes: applied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict(id: &str, status: &str) -> Conflict {
        Conflict {
            id: id.into(),
            pfa_id: format!("pfa-{id}"),
            local_version: Some(1),
            pems_version: Some(2),
            conflict_fields: vec!["quantity".into()],
            local_data: json!({"quantity": 1}),
            pems_data: json!({"quantity": 2}),
            status: status.into(),
            resolution: None,
            merged_data: Value::Null,
            created_at: None,
            resolved_at: None,
            resolved_by: None,
        }
    }

    #[test]
    fn past_the_organization_bound_the_oldest_resolved_goes_first() {
        let store = ConflictStore::default();
        store.insert("o", conflict("old-unresolved", UNRESOLVED));
        store.insert("o", conflict("old-resolved", RESOLVED));
        for i in 2..MAX_PER_ORG {
            store.insert("o", conflict(&format!("c{i}"), UNRESOLVED));
        }
        store.insert("other", conflict("x", UNRESOLVED));
        store.insert("o", conflict("newest", UNRESOLVED));
        assert_eq!(store.list("o", None).len(), MAX_PER_ORG);
        assert!(store.get("old-resolved").is_none());
        assert!(store.get("old-unresolved").is_some());
        // No resolved one left: the oldest goes.
        store.insert("o", conflict("newer", UNRESOLVED));
        assert!(store.get("old-unresolved").is_none());
        assert!(
            store.get("x").is_some(),
            "other organizations are untouched"
        );
        assert_eq!(store.list("o", None)[0].id, "newer", "newest first");
    }

    #[test]
    fn past_the_total_bound_the_oldest_resolved_of_any_organization_goes() {
        let store = ConflictStore::default();
        store.insert("a", conflict("a-unresolved", UNRESOLVED));
        store.insert("b", conflict("b-resolved", RESOLVED));
        for i in 2..MAX_TOTAL {
            store.insert(
                &format!("org-{}", i % 10),
                conflict(&format!("c{i}"), UNRESOLVED),
            );
        }
        assert_eq!(store.len(), MAX_TOTAL);
        store.insert("a", conflict("a-new", UNRESOLVED));
        assert_eq!(store.len(), MAX_TOTAL);
        assert!(store.get("b-resolved").is_none());
        assert!(store.get("a-unresolved").is_some());
    }

    #[test]
    fn a_conflict_is_resolved_once() {
        let store = ConflictStore::default();
        store.insert("o", conflict("c", UNRESOLVED));
        let at = Timestamp::now().to_string();
        let first = store.resolve("c", Resolution::UsePems, Value::Null, None, &at);
        assert_eq!(first.unwrap().status, UNRESOLVED);
        let again = store.resolve("c", Resolution::UseLocal, Value::Null, None, &at);
        assert_eq!(again, Err(ResolveError::AlreadyResolved(RESOLVED.into())));
        assert_eq!(
            store.resolve("nope", Resolution::UsePems, Value::Null, None, &at),
            Err(ResolveError::NotFound)
        );
        let listed = store.list("o", Some(RESOLVED));
        assert_eq!(listed[0].resolution.as_deref(), Some("use_pems"));
        assert!(store.list("o", Some(UNRESOLVED)).is_empty());
    }

    #[test]
    fn merge_needs_an_object_of_bounded_size() {
        let request = |merged: Option<Value>| ResolveRequest {
            resolution: Resolution::Merge,
            merged_data: merged,
        };
        let code = |r: Result<Value, Rejection>| r.unwrap_err().body.error;
        assert_eq!(code(check_merged(&request(None))), "BAD_REQUEST");
        assert_eq!(
            code(check_merged(&request(Some(Value::Null)))),
            "BAD_REQUEST"
        );
        assert_eq!(
            code(check_merged(&request(Some(json!(3))))),
            "VALIDATION_FAILED"
        );
        let big = json!({"x": "y".repeat(MAX_MERGED_DATA)});
        assert_eq!(code(check_merged(&request(Some(big)))), "VALIDATION_FAILED");
        assert!(check_merged(&request(Some(json!({"quantity": 11})))).is_ok());
        assert!(validate_resolve(br#"{"resolution":"keep"}"#).is_err());
        assert!(validate_resolve(b"nope").is_err());
        assert_eq!(
            validate_resolve(br#"{"resolution":"use_pems"}"#)
                .unwrap()
                .resolution,
            Resolution::UsePems
        );
    }
}
