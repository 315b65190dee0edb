//! `--control ADDR`: the HTTP API that changes a running proxy's faults, so that a
//! test script can "toggle wifi".
//!
//! | call | does |
//! |---|---|
//! | `GET /faults` | `{"offline": bool, "faults": [{"id", "fault", "value", "direction", "probability"}]}` |
//! | `POST /faults` | adds `{"fault": NAME, "value": "…", "where": ["FIELD=VALUE"]}` (the value as after the flag); 201 with the fault, 400 with `error` |
//! | `DELETE /faults/{id}` | removes one; 204, or 404 |
//! | `POST /reset` | removes every fault and goes online; 204 |
//! | `POST /offline` | drops every connection and refuses new ones; 204 |
//! | `POST /online` | accepts connections again; 204 |

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};

use super::Shared;
use super::faults::{self, FaultSpec};

/// The control API's routes.
pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/faults", get(list).post(add))
        .route("/faults/{id}", delete(remove))
        .route("/reset", post(reset))
        .route("/offline", post(offline))
        .route("/online", post(online))
        .with_state(shared)
}

/// Serves the control API on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A fault as the API lists it.
#[derive(Serialize)]
pub struct Listed {
    pub id: u64,
    pub fault: &'static str,
    pub value: String,
    pub direction: &'static str,
    pub probability: f64,
    #[serde(rename = "where", skip_serializing_if = "Vec::is_empty")]
    pub wheres: Vec<String>,
}

impl Listed {
    fn of(id: u64, spec: &FaultSpec) -> Listed {
        let mut fault = spec.fault.clone();
        let wheres = fault
            .matcher_mut()
            .map(|m| m.wheres.iter().map(|(k, v)| format!("{k}={v}")).collect())
            .unwrap_or_default();
        Listed {
            id,
            fault: spec.fault.name(),
            value: spec.written.clone(),
            direction: spec.direction.as_str(),
            probability: spec.probability,
            wheres,
        }
    }
}

#[derive(Serialize)]
struct Listing {
    offline: bool,
    faults: Vec<Listed>,
}

async fn list(State(shared): State<Arc<Shared>>) -> Json<Listing> {
    let faults = match shared.faults.read() {
        Ok(list) => list.iter().map(|(id, s)| Listed::of(*id, s)).collect(),
        Err(_) => Vec::new(),
    };
    Json(Listing {
        offline: shared.offline.borrow().any(),
        faults,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFault {
    fault: String,
    #[serde(default)]
    value: String,
    #[serde(default, rename = "where")]
    wheres: Vec<String>,
}

fn bad(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

async fn add(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let new: NewFault = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(e) => {
            return bad(format!(
                "{e}: send {{\"fault\": NAME, \"value\": \"…\", \"where\": [\"FIELD=VALUE\"]}}"
            ));
        }
    };
    let mut spec = match faults::parse(&new.fault, &new.value) {
        Ok(spec) => spec,
        Err(e) => return bad(e),
    };
    let mut wheres = Vec::new();
    for rule in &new.wheres {
        match crate::check::parse_where(rule) {
            Ok(rule) => wheres.push(rule),
            Err(e) => return bad(e),
        }
    }
    match spec.fault.matcher_mut() {
        Some(matcher) => matcher.wheres = wheres,
        None if !wheres.is_empty() => {
            return bad(format!("{} does not match frames: no \"where\"", new.fault));
        }
        None => {}
    }
    let Ok(mut list) = shared.faults.write() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let id = list.add(spec.clone());
    (StatusCode::CREATED, Json(Listed::of(id, &spec))).into_response()
}

async fn remove(State(shared): State<Arc<Shared>>, Path(id): Path<u64>) -> StatusCode {
    let removed = shared.faults.write().map(|mut list| list.remove(id));
    match removed {
        Ok(true) => StatusCode::NO_CONTENT,
        Ok(false) => StatusCode::NOT_FOUND,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    if let Ok(mut list) = shared.faults.write() {
        list.clear();
    }
    shared.set_told_offline(false);
    StatusCode::NO_CONTENT
}

async fn offline(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.set_told_offline(true);
    StatusCode::NO_CONTENT
}

async fn online(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.set_told_offline(false);
    StatusCode::NO_CONTENT
}
