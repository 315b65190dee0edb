//! The HTTP middleware of the rules: [`guard_requests`] in front of every route (the
//! Origin allow-list with CORS, the per-IP limit on upgrade attempts) and
//! [`require_token`] on the protected REST routes. Both take the server's
//! [`Security`] as their state.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::Security;
use super::caps::IpLimit;
use crate::server::error::Refusal;

/// How long browsers may cache a CORS preflight answer, in seconds.
const CORS_MAX_AGE: &str = "600";

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// In front of every route: the Origin allow-list (403 for a listed-out origin,
/// except on `/healthz` and `/metrics`), CORS headers and preflights for allowed
/// origins, and the per-IP limit on upgrade attempts (429).
pub async fn guard_requests(
    State(security): State<Arc<Security>>,
    request: Request,
    next: Next,
) -> Response {
    let mut cors_origin = None;
    if security.checks_origins()
        && let Some(origin) = request.headers().get(header::ORIGIN)
    {
        let text = origin.to_str().unwrap_or("");
        if security.origin_allowed(text) {
            cors_origin = Some(origin.clone());
        } else if !matches!(request.uri().path(), "/healthz" | "/metrics") {
            let shown: String = text.chars().take(200).collect();
            return security.refuse(Refusal::forbidden(
                "origin_not_allowed",
                format!("origin {shown:?} is not allowed"),
            ));
        }
    }
    if is_upgrade(request.headers())
        && let Some(ConnectInfo(addr)) = request.extensions().get::<ConnectInfo<SocketAddr>>()
        && !security.upgrade_attempt(addr.ip())
    {
        return security.refuse(IpLimit::refusal(addr.ip()));
    }
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = match (&cors_origin, preflight) {
        (Some(_), true) => {
            let mut response = Response::new(axum::body::Body::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            let headers = response.headers_mut();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, OPTIONS"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(CORS_MAX_AGE),
            );
            response
        }
        _ => next.run(request).await,
    };
    if let Some(origin) = cors_origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

/// On the protected REST routes: a valid token (401 otherwise) when JWT is
/// configured; the grant goes into the request's extensions for the handler.
pub async fn require_token(
    State(security): State<Arc<Security>>,
    mut request: Request,
    next: Next,
) -> Response {
    match security.authenticate(request.headers(), None) {
        Ok(Some(grant)) => {
            request.extensions_mut().insert(grant);
        }
        Ok(None) => {}
        Err(refusal) => return security.refuse(refusal),
    }
    next.run(request).await
}
