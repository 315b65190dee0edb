//! The HTTP middleware of the rules: [`guard_requests`] in front of every route (the
//! Origin allow-list, CORS for the origins on it, the per-IP limit on upgrade
//! attempts) and [`require_token`] on the protected REST routes, which also marks
//! the requests that need a permission ([`required_permission`]). Both take the
//! server's [`Security`] as their state.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tower::{Layer, ServiceExt};

use super::Security;
use super::caps::IpLimit;
use crate::claims::PERM_SYNC;
use crate::server::error::Refusal;

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Longest part of a refused Origin quoted back in the answer.
const SHOWN_ORIGIN: usize = 200;

/// In front of every route: the Origin allow-list (403 for a listed-out origin,
/// except on `/healthz` and `/metrics`), CORS for the origins on it, and the per-IP
/// limit on upgrade attempts (429).
pub async fn guard_requests(
    State(security): State<Arc<Security>>,
    request: Request,
    next: Next,
) -> Response {
    let listed = match check_origin(&security, &request) {
        Ok(listed) => listed,
        Err(refusal) => return security.refuse(refusal),
    };
    if is_upgrade(request.headers())
        && let Some(ConnectInfo(addr)) = request.extensions().get::<ConnectInfo<SocketAddr>>()
        && !security.upgrade_attempt(addr.ip())
    {
        return security.refuse(IpLimit::refusal(addr.ip()));
    }
    if !listed {
        return next.run(request).await;
    }
    // tower-http answers every OPTIONS from a listed origin as a preflight (with or
    // without Access-Control-Request-Method), and with 200; this server documents 204.
    let preflight = request.method() == Method::OPTIONS;
    let Ok(mut response) = security.cors().layer(next).oneshot(request).await;
    if preflight {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

/// Whether the request comes from an origin on the allow-list (and so gets CORS
/// headers); a refusal for one off the list, except on `/healthz` and `/metrics`.
/// Requests without `Origin` (not from a browser) pass without CORS.
fn check_origin(security: &Security, request: &Request) -> Result<bool, Refusal> {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return Ok(false);
    };
    if !security.checks_origins() {
        return Ok(false);
    }
    let text = origin.to_str().unwrap_or("");
    if security.origin_allowed(text) {
        return Ok(true);
    }
    if matches!(request.uri().path(), "/healthz" | "/metrics") {
        return Ok(false);
    }
    let shown: String = text.chars().take(SHOWN_ORIGIN).collect();
    Err(Refusal::forbidden(
        "origin_not_allowed",
        format!("origin {shown:?} is not allowed"),
    ))
}

/// The permission a request needs in its organization, by method and path, as the
/// original backend's controllers require it: queueing writes (`POST
/// /api/pems/write-sync`) and resolving a conflict (`POST
/// /api/pems/conflicts/{id}/resolve`) need `perm_Sync`. The handler's organization
/// check ([`Security::authorize_org`]) enforces it once it knows the organization.
pub fn required_permission(method: &Method, path: &str) -> Option<&'static str> {
    if method != Method::POST {
        return None;
    }
    if path == "/api/pems/write-sync" {
        return Some(PERM_SYNC);
    }
    let (id, rest) = path.strip_prefix("/api/pems/conflicts/")?.split_once('/')?;
    (!id.is_empty() && rest == "resolve").then_some(PERM_SYNC)
}

/// On the protected REST routes: a valid token (401 otherwise) when JWT is
/// configured; the grant, marked with the permission the request needs, goes into
/// the request's extensions for the handler.
pub async fn require_token(
    State(security): State<Arc<Security>>,
    mut request: Request,
    next: Next,
) -> Response {
    match security.authenticate(request.headers(), None) {
        Ok(Some(mut grant)) => {
            grant.required = required_permission(request.method(), request.uri().path());
            request.extensions_mut().insert(grant);
        }
        Ok(None) => {}
        Err(refusal) => return security.refuse(refusal),
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writing_and_resolving_need_perm_sync() {
        let post = Method::POST;
        assert_eq!(
            required_permission(&post, "/api/pems/write-sync"),
            Some(PERM_SYNC)
        );
        assert_eq!(
            required_permission(&post, "/api/pems/conflicts/conflict_1_abc/resolve"),
            Some(PERM_SYNC)
        );
        for (method, path) in [
            (Method::GET, "/api/pems/write-sync"),
            (Method::GET, "/api/pems/conflicts/c1/resolve"),
            (post.clone(), "/api/pems/conflicts//resolve"),
            (post.clone(), "/api/pems/conflicts/c1"),
            (post.clone(), "/api/pems/conflicts/c1/resolve/x"),
            (post.clone(), "/api/ws/publish"),
            (Method::GET, "/api/pems/sync-status"),
        ] {
            assert_eq!(required_permission(&method, path), None, "{method} {path}");
        }
    }
}
