//! The security rules of `serve`. Each is switched on by configuration; the limits
//! have safe defaults (see the `DEFAULT_*` constants):
//!
//! - JWT ([`JwtConfig`]): HS256 with a shared secret, or RS256/ES256 with a public
//!   key; `exp` required, `exp`/`nbf` checked with a small leeway, issuer and audience
//!   when configured, `alg: none` and algorithm confusion refused. The token comes
//!   from `Authorization: Bearer …` or (upgrades only, as browsers must) the `token`
//!   query parameter. Its `org` claim ([`ORG_CLAIM`]) is one organization id or a
//!   list of them, `"*"` meaning every organization.
//! - The Origin allow-list ([`OriginPattern`], wildcard subdomains) for upgrades and
//!   CORS on the REST API ([`guard_requests`]).
//! - Organization ids: a syntax rule ([`check_org_syntax`]) and an allow-list file
//!   that can be reloaded at runtime ([`reload_orgs`]); sessions of an organization
//!   that is no longer allowed are closed with 4403.
//! - Per-connection limits on client frames ([`SessionGuard`]): rate (4429), size
//!   (1009), idle time (4408), token lifetime (4401).
//! - Connection caps per organization and in total ([`Caps`]: 503 or 4503), and a
//!   limit on upgrade attempts per client IP (429).
//!
//! `ws.rs` calls [`admit`] in its upgrade handlers and drives a [`SessionGuard`] in
//! its session loop; `routes.rs` calls [`authorize_org`]; `mod.rs` installs
//! [`guard_requests`] and [`require_token`] as middleware.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::pending;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite;

use super::error::api_error;
use super::{AppState, Config, Shared};
use crate::claims::{self, TokenError};
pub use crate::claims::{
    ALL_ORGS, DEFAULT_LEEWAY, Grant, JwtConfig, MAX_LEEWAY, ORG_CLAIM, OrgGrant,
};
use crate::protocol::{
    CLOSE_CAPACITY, CLOSE_IDLE_TIMEOUT, CLOSE_MESSAGE_TOO_BIG, CLOSE_ORG_NOT_ALLOWED,
    CLOSE_RATE_LIMITED, CLOSE_TOKEN_EXPIRED,
};

/// Longest organization id the syntax rule accepts.
pub const MAX_ORG_ID_LEN: usize = 128;
/// Client frames per second per connection.
pub const DEFAULT_RATE: u32 = 100;
/// Client frames a connection may send at once before the rate applies.
pub const DEFAULT_BURST: u32 = 200;
/// Largest client message on a sync socket.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 10 * 1024;
/// Time without client frames or pongs after which a sync socket is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Open sync sockets in total.
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// Open sync sockets per organization.
pub const DEFAULT_MAX_CONNECTIONS_PER_ORG: usize = 10_000;
/// Upgrade attempts per client IP before the rate applies (when the limit is on).
pub const DEFAULT_IP_BURST: u32 = 20;
/// Frames are read whole up to this many times the message limit (at least
/// [`MIN_FRAME_LIMIT`]), so that a message slightly too big is consumed and the close
/// handshake stays in step; a larger frame is refused from its header, unread.
const FRAME_LIMIT_FACTOR: usize = 2;
const MIN_FRAME_LIMIT: usize = 64 * 1024;
/// Client addresses the per-IP limiter remembers before it forgets idle ones.
const IP_TABLE_PRUNE: usize = 10_000;
/// How long browsers may cache a CORS preflight answer, in seconds.
const CORS_MAX_AGE: &str = "600";

// ---------------------------------------------------------------------------------
// Configuration types

/// Whether organization ids must follow the syntax rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OrgIdSyntax {
    /// 1–128 characters from A-Z a-z 0-9 . _ : -
    #[default]
    Strict,
    /// Any non-empty id
    Any,
}

/// How a connection over a cap is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CapResponse {
    /// Refuse the upgrade with HTTP 503 and a JSON body
    #[default]
    Http,
    /// Accept the upgrade, then close with 4503 (browsers cannot read an HTTP status)
    Close,
}

/// A rate with a burst: `per_second` cells replenish, `burst` may be spent at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    /// `None` when the rate is 0 (off). A zero burst means "the rate".
    fn quota(self) -> Option<Quota> {
        let rate = NonZeroU32::new(self.per_second)?;
        Some(Quota::per_second(rate).allow_burst(NonZeroU32::new(self.burst).unwrap_or(rate)))
    }
}

/// An organization allow-list read from a file: one id per line, `#` starts a
/// comment, blank lines are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgAllowList {
    pub path: PathBuf,
    pub orgs: HashSet<String>,
}

impl OrgAllowList {
    pub fn load(path: &Path) -> anyhow::Result<OrgAllowList> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "failed to read the organization allow-list {}",
                path.display()
            )
        })?;
        Ok(OrgAllowList {
            path: path.to_path_buf(),
            orgs: parse_allow_list(&text),
        })
    }
}

/// The ids of an allow-list file.
pub fn parse_allow_list(text: &str) -> HashSet<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|id| !id.is_empty())
        .map(String::from)
        .collect()
}

/// One entry of the Origin allow-list: `https://app.example.com`,
/// `http://localhost:5173`, or `https://*.example.com` (any subdomain, at any
/// depth, but not `example.com` itself). Scheme and port must match exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginPattern {
    scheme: String,
    /// Lower case; for a wildcard, the part after `*.`.
    host: String,
    wildcard: bool,
    port: Option<u16>,
    text: String,
}

impl FromStr for OriginPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim().trim_end_matches('/');
        let bad = |why: &str| {
            format!(
                "{s:?} is not an origin pattern ({why}): write it like https://app.example.com or https://*.example.com"
            )
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad("an origin has no path, query or user"));
        }
        let (wildcard, concrete) = match rest.strip_prefix("*.") {
            Some(rest) => (true, format!("{scheme}://{rest}")),
            None => (false, format!("{scheme}://{rest}")),
        };
        let url = url::Url::parse(&concrete).map_err(|e| bad(&e.to_string()))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty() && !h.contains('*'))
            .ok_or_else(|| bad("no host"))?;
        Ok(OriginPattern {
            scheme: url.scheme().to_string(),
            host: host.to_ascii_lowercase(),
            wildcard,
            port: url.port_or_known_default(),
            text: text.to_string(),
        })
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl OriginPattern {
    /// Whether an `Origin` header value matches. `null` and malformed values never do.
    pub fn matches(&self, origin: &str) -> bool {
        let Ok(url) = url::Url::parse(origin.trim()) else {
            return false;
        };
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let host_ok = if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        };
        url.scheme() == self.scheme && host_ok && url.port_or_known_default() == self.port
    }
}

/// The organization syntax rule: 1–[`MAX_ORG_ID_LEN`] characters from
/// `A-Z a-z 0-9 . _ : -`.
pub fn check_org_syntax(org: &str) -> Result<(), String> {
    const RULE: &str = "organization ids are 1-128 characters from A-Z a-z 0-9 . _ : -";
    if org.is_empty() {
        return Err(format!("is empty: {RULE}"));
    }
    if let Some(c) = org
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(format!("contains {c:?}: {RULE}"));
    }
    if org.len() > MAX_ORG_ID_LEN {
        return Err(format!("has {} characters: {RULE}", org.len()));
    }
    Ok(())
}

/// The frame size limit that goes with a message size limit: twice it, at least 64 KiB.
pub fn frame_limit(max_message_size: usize) -> usize {
    max_message_size
        .saturating_mul(FRAME_LIMIT_FACTOR)
        .max(MIN_FRAME_LIMIT)
}

// ---------------------------------------------------------------------------------
// Refusals

/// A refused request: its HTTP status, the protocol's error body, and the reason
/// label the error metric counts it under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub error: &'static str,
    pub message: String,
    pub reason: &'static str,
    pub field: Option<&'static str>,
}

impl Refusal {
    fn new(status: StatusCode, error: &'static str, reason: &'static str, message: String) -> Self {
        Refusal {
            status,
            error,
            message,
            reason,
            field: None,
        }
    }

    pub fn unauthorized(reason: &'static str, message: impl Into<String>) -> Self {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            reason,
            message.into(),
        )
    }

    pub fn forbidden(reason: &'static str, message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::FORBIDDEN, "FORBIDDEN", reason, message.into())
    }

    fn malformed_org(org: &str, why: String) -> Self {
        let mut refusal = Refusal::new(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "org_malformed",
            format!("organizationId {org:?} {why}"),
        );
        refusal.field = Some("organizationId");
        refusal
    }

    /// Counts the refusal and turns it into the JSON answer.
    pub fn respond(self, shared: &Shared) -> Response {
        shared.metrics.error(self.reason);
        let details = self
            .field
            .map(|field| json!([{ "field": field, "message": self.message }]));
        let mut response = api_error(self.status, self.error, &self.message, details);
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="syncprobe", error="invalid_token""#),
            );
        }
        if matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

// ---------------------------------------------------------------------------------
// Tokens

/// Verifies a token; a refusal is 401, or 403 for an organization claim of the
/// wrong shape.
pub fn verify(jwt: &JwtConfig, token: &str) -> Result<Grant, Refusal> {
    claims::verify(jwt, token).map_err(Refusal::from)
}

impl From<TokenError> for Refusal {
    fn from(error: TokenError) -> Self {
        let reason = error.reason();
        match error {
            TokenError::BadOrgClaim(message) => Refusal::forbidden(reason, message),
            other => Refusal::unauthorized(reason, other.to_string()),
        }
    }
}

/// The bearer token of a request: `Authorization: Bearer …` first, then (when
/// `query` is given: upgrades) the `token` query parameter.
fn token_of(headers: &HeaderMap, query: Option<&str>) -> Result<String, Refusal> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().unwrap_or("").trim();
        return match text.split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                Ok(token.trim().to_string())
            }
            _ => Err(Refusal::unauthorized(
                "missing_token",
                "the Authorization header must be `Bearer <JWT>`",
            )),
        };
    }
    if let Some(query) = query
        && let Some((_, token)) =
            url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "token")
        && !token.is_empty()
    {
        return Ok(token.into_owned());
    }
    let how = if query.is_some() {
        "send Authorization: Bearer <JWT>, or ?token=<JWT> from a browser"
    } else {
        "send Authorization: Bearer <JWT>"
    };
    Err(Refusal::unauthorized(
        "missing_token",
        format!("a token is required: {how}"),
    ))
}

/// Verifies the request's token when JWT is configured (`None` when it is not).
pub fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<Grant>, Refusal> {
    match &shared.security.jwt {
        None => Ok(None),
        Some(jwt) => verify(jwt, &token_of(headers, query)?).map(Some),
    }
}

// ---------------------------------------------------------------------------------
// Connection caps

#[derive(Default)]
struct Counts {
    total: usize,
    per_org: HashMap<String, usize>,
}

/// Open sync sockets, in total and per organization, against their caps.
pub struct Caps {
    max_total: usize,
    max_per_org: usize,
    counts: Mutex<Counts>,
}

/// One admitted socket; dropping it frees its place.
pub struct Permit {
    caps: Arc<Caps>,
    org: String,
}

impl Caps {
    fn new(max_total: usize, max_per_org: usize) -> Caps {
        Caps {
            max_total,
            max_per_org,
            counts: Mutex::default(),
        }
    }

    fn acquire(self: &Arc<Self>, org: &str) -> Result<Permit, Refusal> {
        let mut counts = self.counts.lock().expect("caps lock");
        let unavailable = |reason, message: String| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                reason,
                message,
            )
        };
        if self.max_total > 0 && counts.total >= self.max_total {
            return Err(unavailable(
                "cap_total",
                format!(
                    "connection cap reached: {} open connections in total",
                    self.max_total
                ),
            ));
        }
        let open = counts.per_org.get(org).copied().unwrap_or(0);
        if self.max_per_org > 0 && open >= self.max_per_org {
            return Err(unavailable(
                "cap_org",
                format!(
                    "connection cap reached: {} open connections for this organization",
                    self.max_per_org
                ),
            ));
        }
        counts.total += 1;
        *counts.per_org.entry(org.to_string()).or_default() += 1;
        Ok(Permit {
            caps: self.clone(),
            org: org.to_string(),
        })
    }

    /// Open sockets whose organization `still_allowed` rejects.
    fn open_outside(&self, still_allowed: impl Fn(&str) -> bool) -> usize {
        let counts = self.counts.lock().expect("caps lock");
        counts
            .per_org
            .iter()
            .filter(|(org, _)| !still_allowed(org))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.caps.counts.lock().expect("caps lock");
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_org.get_mut(&self.org) {
            *n -= 1;
            if *n == 0 {
                counts.per_org.remove(&self.org);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// The server's rules, built once from the config

type AllowedOrgs = Arc<HashSet<String>>;

struct AllowFile {
    path: PathBuf,
    orgs: watch::Sender<AllowedOrgs>,
}

/// Every rule of a running server.
pub struct Security {
    pub jwt: Option<JwtConfig>,
    origins: Vec<OriginPattern>,
    org_syntax: OrgIdSyntax,
    allow: Option<AllowFile>,
    caps: Arc<Caps>,
    cap_response: CapResponse,
    client_rate: Option<Quota>,
    idle_timeout: Duration,
    max_message_size: usize,
    ip_limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    ip_checks: AtomicU64,
    /// One clock for every connection's limiter: creating a clock calibrates it
    /// (CPUID probing), which cost a tenth of the server's time at 10,000 connects.
    clock: governor::clock::DefaultClock,
}

impl Security {
    pub fn new(config: &Config) -> Security {
        Security {
            jwt: config.jwt.clone(),
            origins: config.allowed_origins.clone(),
            org_syntax: config.org_id_syntax,
            allow: config.org_allow_list.as_ref().map(|list| AllowFile {
                path: list.path.clone(),
                orgs: watch::Sender::new(Arc::new(list.orgs.clone())),
            }),
            caps: Arc::new(Caps::new(
                config.max_connections,
                config.max_connections_per_org,
            )),
            cap_response: config.cap_response,
            client_rate: config.rate_limit.and_then(RateLimit::quota),
            idle_timeout: config.idle_timeout,
            max_message_size: config.max_message_size,
            ip_limiter: config
                .ip_upgrade_limit
                .and_then(RateLimit::quota)
                .map(RateLimiter::keyed),
            ip_checks: AtomicU64::new(0),
            clock: governor::clock::DefaultClock::default(),
        }
    }

    fn org_allowed(&self, org: &str) -> bool {
        match &self.allow {
            None => true,
            Some(allow) => allow.orgs.borrow().contains(org),
        }
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.origins.iter().any(|p| p.matches(origin))
    }

    /// Whether an upgrade attempt from `ip` is within the per-IP limit.
    fn upgrade_attempt(&self, ip: IpAddr) -> bool {
        let Some(limiter) = &self.ip_limiter else {
            return true;
        };
        // Forget addresses whose budget is full again, now and then, so the table
        // stays bounded by the addresses active recently.
        if self
            .ip_checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(1024)
            && limiter.len() > IP_TABLE_PRUNE
        {
            limiter.retain_recent();
        }
        limiter.check_key(&ip).is_ok()
    }
}

/// Everything that applies to an organization id, for sockets and REST calls alike:
/// syntax (400), the token's org claim (403), the allow-list (403).
pub fn authorize_org(shared: &Shared, grant: Option<&Grant>, org: &str) -> Result<(), Refusal> {
    let security = &shared.security;
    if security.org_syntax == OrgIdSyntax::Strict
        && let Err(why) = check_org_syntax(org)
    {
        return Err(Refusal::malformed_org(org, why));
    }
    if let Some(grant) = grant
        && !grant.allows(org)
    {
        return Err(Refusal::forbidden(
            "org_not_in_token",
            format!("the token does not allow organization {org:?}"),
        ));
    }
    if !security.org_allowed(org) {
        return Err(Refusal::forbidden(
            "org_not_allowed",
            format!("organization {org:?} is not allowed on this server"),
        ));
    }
    Ok(())
}

/// What an admitted sync socket carries into its session.
pub struct Admission {
    pub grant: Option<Grant>,
    /// Held for the life of the socket.
    pub permit: Option<Permit>,
    /// Over a cap with `--cap-response close`: accept, then close with this.
    pub refused: Option<Closing>,
}

/// The checks of a sync socket upgrade, in order: token (401), organization (400,
/// 403), connection caps (503, or a 4503 close after the upgrade). Origin and the
/// per-IP limit are checked before, by [`guard_requests`].
pub fn admit(
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
    org: &str,
) -> Result<Admission, Refusal> {
    let grant = authenticate(shared, headers, Some(query.unwrap_or("")))?;
    authorize_org(shared, grant.as_ref(), org)?;
    match shared.security.caps.acquire(org) {
        Ok(permit) => Ok(Admission {
            grant,
            permit: Some(permit),
            refused: None,
        }),
        Err(refusal) if shared.security.cap_response == CapResponse::Close => {
            shared.metrics.error(refusal.reason);
            Ok(Admission {
                grant,
                permit: None,
                refused: Some(Closing::Capacity(refusal.message)),
            })
        }
        Err(refusal) => Err(refusal),
    }
}

/// What a reload of the allow-list did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reloaded {
    /// Organizations now allowed.
    pub organizations: usize,
    /// Open connections being closed with 4403 because their organization left.
    pub closing: usize,
}

/// Re-reads the allow-list file; open sessions of organizations no longer on it
/// close with 4403. On a read error the old list stays.
pub fn reload_orgs(shared: &Shared) -> anyhow::Result<Reloaded> {
    let allow = shared
        .security
        .allow
        .as_ref()
        .context("no organization allow-list is configured (--org-allow-file)")?;
    let list = OrgAllowList::load(&allow.path)?;
    let closing = shared
        .security
        .caps
        .open_outside(|org| list.orgs.contains(org));
    let organizations = list.orgs.len();
    allow.orgs.send_replace(Arc::new(list.orgs));
    Ok(Reloaded {
        organizations,
        closing,
    })
}

// ---------------------------------------------------------------------------------
// Middleware

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
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let security = &state.security;
    let mut cors_origin = None;
    if !security.origins.is_empty()
        && let Some(origin) = request.headers().get(header::ORIGIN)
    {
        let text = origin.to_str().unwrap_or("");
        if security.origin_allowed(text) {
            cors_origin = Some(origin.clone());
        } else if !matches!(request.uri().path(), "/healthz" | "/metrics") {
            let shown: String = text.chars().take(200).collect();
            return Refusal::forbidden(
                "origin_not_allowed",
                format!("origin {shown:?} is not allowed"),
            )
            .respond(&state);
        }
    }
    if is_upgrade(request.headers())
        && let Some(ConnectInfo(addr)) = request.extensions().get::<ConnectInfo<SocketAddr>>()
        && !security.upgrade_attempt(addr.ip())
    {
        return Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "ip_upgrade_limit",
            format!("too many connection attempts from {}", addr.ip()),
        )
        .respond(&state);
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
/// configured; the [`Grant`] goes into the request's extensions for the handler.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match authenticate(&state, request.headers(), None) {
        Ok(Some(grant)) => {
            request.extensions_mut().insert(grant);
        }
        Ok(None) => {}
        Err(refusal) => return refusal.respond(&state),
    }
    next.run(request).await
}

// ---------------------------------------------------------------------------------
// Sessions

/// Why the security rules end a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closing {
    RateLimited,
    /// A client message over the limit. `unread` when the frame was refused from its
    /// header: the rest of it is still on the wire, so nothing more may be read.
    TooBig {
        size: usize,
        max: usize,
        unread: bool,
    },
    Idle(Duration),
    TokenExpired,
    OrgRevoked,
    Capacity(String),
}

impl Closing {
    pub fn code(&self) -> u16 {
        match self {
            Closing::RateLimited => CLOSE_RATE_LIMITED,
            Closing::TooBig { .. } => CLOSE_MESSAGE_TOO_BIG,
            Closing::Idle(_) => CLOSE_IDLE_TIMEOUT,
            Closing::TokenExpired => CLOSE_TOKEN_EXPIRED,
            Closing::OrgRevoked => CLOSE_ORG_NOT_ALLOWED,
            Closing::Capacity(_) => CLOSE_CAPACITY,
        }
    }

    /// The close reason (short: a close frame holds at most 123 bytes of it).
    pub fn reason(&self) -> String {
        let reason = match self {
            Closing::RateLimited => "rate limit exceeded".to_string(),
            Closing::TooBig { size, max, .. } => {
                format!("message too big: {size} bytes, limit {max}")
            }
            Closing::Idle(after) => format!(
                "idle timeout: nothing received for {}",
                humantime::format_duration(*after)
            ),
            Closing::TokenExpired => "token expired".to_string(),
            Closing::OrgRevoked => "organization no longer allowed".to_string(),
            Closing::Capacity(message) => message.clone(),
        };
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason[..end].to_string()
    }

    /// The disconnect metric's reason.
    pub fn label(&self) -> &'static str {
        match self {
            Closing::RateLimited => "rate_limited",
            Closing::TooBig { .. } => "message_too_big",
            Closing::Idle(_) => "idle_timeout",
            Closing::TokenExpired => "token_expired",
            Closing::OrgRevoked => "org_revoked",
            Closing::Capacity(_) => "connection_cap",
        }
    }

    /// Whether the close handshake may read from the socket.
    pub fn may_read(&self) -> bool {
        !matches!(self, Closing::TooBig { unread: true, .. })
    }
}

/// What a client sent, as far as the rules care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientFrame {
    /// Text or binary: counted against the rate.
    Data,
    /// Counted against the rate too: pings cost the server a pong.
    Ping,
    /// An answer to the server's ping: shows the client is alive, costs nothing.
    Pong,
    Close,
}

impl ClientFrame {
    pub fn of(message: &axum::extract::ws::Message) -> ClientFrame {
        use axum::extract::ws::Message;
        match message {
            Message::Text(_) | Message::Binary(_) => ClientFrame::Data,
            Message::Ping(_) => ClientFrame::Ping,
            Message::Pong(_) => ClientFrame::Pong,
            Message::Close(_) => ClientFrame::Close,
        }
    }
}

/// A read error that the rules turn into a close (an oversized message: 1009).
pub fn read_error(
    error: &(dyn std::error::Error + 'static),
    max_message_size: usize,
) -> Option<Closing> {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(
            tungstenite::error::CapacityError::MessageTooLong { size, max_size },
        )) = e.downcast_ref::<tungstenite::Error>()
        {
            return Some(Closing::TooBig {
                size: *size,
                max: max_message_size,
                unread: *max_size != max_message_size,
            });
        }
        source = e.source();
    }
    None
}

/// The rules of one sync socket: the client-frame rate, the idle timeout, the
/// token's expiry and the organization's place on the allow-list.
pub struct SessionGuard {
    org: String,
    limiter: Option<DefaultDirectRateLimiter>,
    idle: Duration,
    last_activity: Instant,
    expires: Option<Instant>,
    /// Armed for the earliest of the idle deadline and the expiry; moved lazily
    /// when it fires early because of activity since.
    timer: Option<Pin<Box<Sleep>>>,
    allowed: Option<watch::Receiver<AllowedOrgs>>,
    max_message_size: usize,
}

impl SessionGuard {
    pub fn new(security: &Security, org: &str, grant: Option<&Grant>) -> SessionGuard {
        let now = Instant::now();
        let expires = grant.map(|g| {
            now + g
                .expires_at
                .duration_since(SystemTime::now())
                .unwrap_or_default()
        });
        let mut guard = SessionGuard {
            org: org.to_string(),
            limiter: security
                .client_rate
                .map(|quota| RateLimiter::direct_with_clock(quota, security.clock.clone())),
            idle: security.idle_timeout,
            last_activity: now,
            expires,
            timer: None,
            allowed: security.allow.as_ref().map(|a| a.orgs.subscribe()),
            max_message_size: security.max_message_size,
        };
        guard.timer = guard
            .deadline()
            .map(|at| Box::pin(tokio::time::sleep_until(at)));
        guard
    }

    fn deadline(&self) -> Option<Instant> {
        let idle = (!self.idle.is_zero()).then(|| self.last_activity + self.idle);
        match (idle, self.expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A frame arrived: the client is active; data and pings count against the rate.
    pub fn client_frame(&mut self, frame: ClientFrame) -> Result<(), Closing> {
        self.last_activity = Instant::now();
        if matches!(frame, ClientFrame::Data | ClientFrame::Ping)
            && let Some(limiter) = &self.limiter
            && limiter.check().is_err()
        {
            return Err(Closing::RateLimited);
        }
        Ok(())
    }

    /// A read failed: the close it calls for, if any.
    pub fn read_error(&self, error: &(dyn std::error::Error + 'static)) -> Option<Closing> {
        read_error(error, self.max_message_size)
    }

    /// Resolves when a rule ends the session. Cancellation-safe: a `select!` branch
    /// may drop and recreate it on every turn.
    pub async fn closing(&mut self) -> Closing {
        loop {
            tokio::select! {
                () = fire(&mut self.timer) => {
                    let now = Instant::now();
                    if self.expires.is_some_and(|at| at <= now) {
                        return Closing::TokenExpired;
                    }
                    if !self.idle.is_zero() && self.last_activity + self.idle <= now {
                        return Closing::Idle(self.idle);
                    }
                    let next = self.deadline();
                    if let (Some(timer), Some(at)) = (self.timer.as_mut(), next) {
                        timer.as_mut().reset(at);
                    }
                }
                still = changed(&mut self.allowed, &self.org) => match still {
                    Some(false) => return Closing::OrgRevoked,
                    Some(true) => {}
                    None => self.allowed = None,
                },
            }
        }
    }
}

async fn fire(timer: &mut Option<Pin<Box<Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => pending().await,
    }
}

/// Whether `org` is still allowed after the next change of the list (`None` when
/// the list can no longer change).
async fn changed(allowed: &mut Option<watch::Receiver<AllowedOrgs>>, org: &str) -> Option<bool> {
    match allowed {
        None => pending().await,
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().contains(org)),
            Err(_) => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use serde_json::Value;
    use std::time::UNIX_EPOCH;

    const SECRET: &[u8] = b"a test secret of some length";

    fn token(claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn config() -> JwtConfig {
        let mut jwt = JwtConfig::hs256(SECRET).unwrap();
        jwt.leeway = Duration::ZERO;
        jwt
    }

    #[test]
    fn org_claim_shapes() {
        let jwt = config();
        let grant = verify(&jwt, &token(json!({"exp": now() + 60, "org": "org-a"}))).unwrap();
        assert!(grant.allows("org-a") && !grant.allows("org-b"));
        let grant = verify(&jwt, &token(json!({"exp": now() + 60, "org": ["a", "b"]}))).unwrap();
        assert_eq!(grant.orgs, OrgGrant::Only(vec!["a".into(), "b".into()]));
        let grant = verify(&jwt, &token(json!({"exp": now() + 60, "org": "*"}))).unwrap();
        assert!(grant.allows_all() && grant.allows("anything"));
        let grant = verify(&jwt, &token(json!({"exp": now() + 60, "org": ["x", "*"]}))).unwrap();
        assert!(grant.allows_all());
        for bad in [json!(null), json!(5), json!([1]), json!({"a": 1})] {
            let refusal = verify(&jwt, &token(json!({"exp": now() + 60, "org": bad}))).unwrap_err();
            assert_eq!(refusal.status, StatusCode::FORBIDDEN, "{refusal:?}");
        }
    }

    #[test]
    fn exp_is_required_and_leeway_applies() {
        let mut jwt = config();
        let refusal = verify(&jwt, &token(json!({"org": "o"}))).unwrap_err();
        assert_eq!(refusal.reason, "missing_claim");
        let old = token(json!({"exp": now() - 10, "org": "o"}));
        assert_eq!(verify(&jwt, &old).unwrap_err().reason, "token_expired");
        jwt.leeway = Duration::from_secs(30);
        let grant = verify(&jwt, &old).unwrap();
        assert!(grant.expires_at > SystemTime::now());
        let early = token(json!({"exp": now() + 100, "nbf": now() + 50, "org": "o"}));
        assert!(verify(&jwt, &early).is_err());
    }

    #[test]
    fn issuer_and_audience_when_configured() {
        let mut jwt = config();
        let t = token(json!({"exp": now() + 60, "org": "o", "iss": "me", "aud": "them"}));
        // Not configured: not checked.
        assert!(verify(&jwt, &t).is_ok());
        jwt.issuer = Some("me".into());
        jwt.audience = Some("them".into());
        assert!(verify(&jwt, &t).is_ok());
        jwt.audience = Some("others".into());
        assert_eq!(verify(&jwt, &t).unwrap_err().reason, "bad_audience");
        jwt.audience = None;
        jwt.issuer = Some("someone else".into());
        assert_eq!(verify(&jwt, &t).unwrap_err().reason, "bad_issuer");
        let no_iss = token(json!({"exp": now() + 60, "org": "o"}));
        assert_eq!(verify(&jwt, &no_iss).unwrap_err().reason, "missing_claim");
    }

    #[test]
    fn unsigned_and_foreign_algorithms_are_refused() {
        let jwt = config();
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let claims = b64(json!({"exp": now() + 60, "org": "o"}));
        for alg in ["none", "None", "NONE"] {
            let t = format!("{}.{claims}.", b64(json!({"alg": alg, "typ": "JWT"})));
            assert_eq!(verify(&jwt, &t).unwrap_err().reason, "alg_none");
        }
        let t = format!("{}.{claims}.sig", b64(json!({"alg": "RS256"})));
        assert_eq!(verify(&jwt, &t).unwrap_err().reason, "bad_algorithm");
        for junk in ["", "a", "a.b", "a.b.c", "...", "ey.ey.ey"] {
            assert_eq!(
                verify(&jwt, junk).unwrap_err().status,
                StatusCode::UNAUTHORIZED
            );
        }
        let forged = token(json!({"exp": now() + 60, "org": "o"}));
        let other = JwtConfig::hs256(b"another secret").unwrap();
        assert_eq!(verify(&other, &forged).unwrap_err().reason, "bad_signature");
    }

    #[test]
    fn origin_patterns() {
        let p: OriginPattern = "https://app.example.com".parse().unwrap();
        assert!(p.matches("https://app.example.com"));
        assert!(p.matches("https://APP.example.com:443"));
        assert!(!p.matches("http://app.example.com"));
        assert!(!p.matches("https://app.example.com:8443"));
        assert!(!p.matches("https://evil.app.example.com"));
        assert!(!p.matches("null"));
        let w: OriginPattern = "https://*.example.com".parse().unwrap();
        assert!(w.matches("https://a.example.com"));
        assert!(w.matches("https://a.b.example.com"));
        assert!(!w.matches("https://example.com"));
        assert!(!w.matches("https://badexample.com"));
        assert!(!w.matches("https://example.com.evil.test"));
        let local: OriginPattern = "http://localhost:5173/".parse().unwrap();
        assert!(local.matches("http://localhost:5173"));
        assert!(!local.matches("http://localhost:5174"));
        for bad in [
            "example.com",
            "https://",
            "https://a.com/path",
            "https://*",
            "https://a.*.com",
        ] {
            assert!(bad.parse::<OriginPattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn org_syntax() {
        for ok in ["org-rio", "a", "A.b_c:d-9", &"x".repeat(128)] {
            assert_eq!(check_org_syntax(ok), Ok(()), "{ok}");
        }
        for bad in ["", "org a", "org/1", "é", "a%20b", &"x".repeat(129)] {
            assert!(check_org_syntax(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allow_list_files() {
        let orgs = parse_allow_list("org-a\n  org-b  # the second\n\n# comment\norg-c#x\n");
        let expected: HashSet<String> = ["org-a", "org-b", "org-c"].map(String::from).into();
        assert_eq!(orgs, expected);
    }

    #[test]
    fn caps_count_and_release() {
        let caps = Arc::new(Caps::new(3, 2));
        let a1 = caps.acquire("a").unwrap();
        let _a2 = caps.acquire("a").unwrap();
        assert_eq!(caps.acquire("a").err().unwrap().reason, "cap_org");
        let _b = caps.acquire("b").unwrap();
        assert_eq!(caps.acquire("c").err().unwrap().reason, "cap_total");
        drop(a1);
        assert!(caps.acquire("c").is_ok());
        assert_eq!(caps.open_outside(|org| org == "a"), 1);
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let long = Closing::Capacity("é".repeat(100));
        assert!(long.reason().len() <= 123);
        assert_eq!(Closing::TokenExpired.code(), 4401);
        assert_eq!(
            Closing::Idle(Duration::from_millis(200)).reason(),
            "idle timeout: nothing received for 200ms"
        );
    }
}
