//! The security rules of `serve`. Each is switched on by configuration; the limits
//! have safe defaults (the `DEFAULT_*` constants). One file per concern:
//!
//! - [`jwt`]: where a request carries its token and how a refused one is answered
//!   (401/403); the claims and their verification are `crate::claims`.
//! - [`origin`]: the Origin allow-list ([`OriginPattern`], wildcard subdomains).
//! - [`orgs`]: the organization syntax rule and the allow-list file, reloadable at
//!   runtime; sessions of an organization no longer allowed close with 4403.
//! - [`caps`]: connection caps per organization and in total (503 or 4503), and the
//!   limit on upgrade attempts per client IP (429).
//! - [`middleware`]: the HTTP middleware (`guard_requests`, `require_token`).
//! - [`session`]: the per-session guard: rate (4429), size (1009), idle time (4408),
//!   token lifetime (4401), allow-list changes (4403).
//!
//! This file holds [`Security`], the rules of a running server built once from its
//! config, whose methods the handlers call: `ws.rs` calls [`Security::admit`] in its
//! upgrade handlers and drives a [`SessionGuard`] in its session loop; `routes.rs`
//! calls [`Security::authorize_org`]; `mod.rs` installs the middleware.

pub(crate) mod caps;
pub(crate) mod jwt;
pub(crate) mod middleware;
pub(crate) mod orgs;
pub(crate) mod origin;
pub(crate) mod session;

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::http::HeaderMap;
use axum::response::Response;
use tower_http::cors::CorsLayer;

// The settings of `Config` and their defaults: the public face of the rules.
pub use self::caps::{
    CapResponse, DEFAULT_IP_BURST, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_ORG,
    RateLimit,
};
pub use self::orgs::{MAX_ORG_ID_LEN, OrgAllowList, OrgIdSyntax};
pub use self::origin::OriginPattern;
pub use self::session::{
    DEFAULT_BURST, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_RATE,
};
pub use crate::claims::{DEFAULT_LEEWAY, JwtConfig, MAX_LEEWAY};

pub(crate) use self::orgs::check_org_syntax;
pub(crate) use self::session::{ClientFrame, Closing, SessionGuard, frame_limit};

use self::caps::{Caps, IpLimit, Permit};
use self::orgs::{AllowFile, malformed_org};
use self::session::SessionRules;
use super::config::Config;
use super::error::Refusal;
use super::metrics::Metrics;
use crate::claims::Grant;

/// Every rule of a running server.
pub(crate) struct Security {
    pub jwt: Option<JwtConfig>,
    origins: Vec<OriginPattern>,
    cors: CorsLayer,
    org_syntax: OrgIdSyntax,
    allow: Option<AllowFile>,
    caps: Arc<Caps>,
    cap_response: CapResponse,
    session: SessionRules,
    ip_limit: Option<IpLimit>,
    /// Where refusals are counted.
    metrics: Arc<Metrics>,
}

/// What an admitted sync socket carries into its session.
pub(crate) struct Admission {
    pub grant: Option<Grant>,
    /// Held for the life of the socket.
    pub permit: Option<Permit>,
    /// Over a cap with `--cap-response close`: accept, then close with this.
    pub refused: Option<Closing>,
}

/// What a reload of the allow-list did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Reloaded {
    /// Organizations now allowed.
    pub organizations: usize,
    /// Open connections being closed with 4403 because their organization left.
    pub closing: usize,
}

impl Security {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Security {
        Security {
            jwt: config.jwt.clone(),
            origins: config.allowed_origins.clone(),
            cors: origin::cors(),
            org_syntax: config.org_id_syntax,
            allow: config.org_allow_list.as_ref().map(AllowFile::new),
            caps: Arc::new(Caps::new(
                config.max_connections,
                config.max_connections_per_org,
            )),
            cap_response: config.cap_response,
            session: SessionRules {
                client_rate: config.rate_limit.and_then(RateLimit::quota),
                idle_timeout: config.idle_timeout,
                max_message_size: config.max_message_size,
                clock: governor::clock::DefaultClock::default(),
            },
            ip_limit: IpLimit::new(config.ip_upgrade_limit),
            metrics,
        }
    }

    /// Counts a refusal and answers it.
    pub fn refuse(&self, refusal: Refusal) -> Response {
        refusal.respond(&self.metrics)
    }

    /// Whether an Origin allow-list is configured.
    pub fn checks_origins(&self) -> bool {
        !self.origins.is_empty()
    }

    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.origins.iter().any(|p| p.matches(origin))
    }

    /// The CORS layer for requests from allowed origins.
    pub fn cors(&self) -> &CorsLayer {
        &self.cors
    }

    /// Whether an upgrade attempt from `ip` is within the per-IP limit.
    pub fn upgrade_attempt(&self, ip: IpAddr) -> bool {
        self.ip_limit.as_ref().is_none_or(|limit| limit.attempt(ip))
    }

    /// Verifies the request's token when JWT is configured (`None` when it is not).
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Option<Grant>, Refusal> {
        jwt::authenticate(self.jwt.as_ref(), headers, query)
    }

    /// Everything that applies to an organization id, for sockets and REST calls
    /// alike: syntax (400), the token's organizations (403), the permission the
    /// request needs there ([`Grant::required`], 403), the allow-list (403).
    pub fn authorize_org(&self, grant: Option<&Grant>, org: &str) -> Result<(), Refusal> {
        if self.org_syntax == OrgIdSyntax::Strict
            && let Err(why) = check_org_syntax(org)
        {
            return Err(malformed_org(org, why));
        }
        if let Some(grant) = grant {
            if !grant.allows(org) {
                return Err(Refusal::forbidden("org_not_in_token", jwt::NO_ACCESS)
                    .with_detail(format!("the token does not allow organization {org:?}")));
            }
            if let Some(permission) = grant.missing_permission(org) {
                return Err(Refusal::forbidden(
                    "permission_denied",
                    jwt::permission_required(permission),
                )
                .with_detail(format!(
                    "the token's permissions for organization {org:?} do not include {permission}"
                )));
            }
        }
        if self.allow.as_ref().is_some_and(|allow| !allow.allows(org)) {
            return Err(Refusal::forbidden(
                "org_not_allowed",
                format!("organization {org:?} is not allowed on this server"),
            ));
        }
        Ok(())
    }

    /// The checks of a sync socket upgrade, in order: token (401), organization (400,
    /// 403), connection caps (503, or a 4503 close after the upgrade). Origin and the
    /// per-IP limit are checked before, by the middleware.
    pub fn admit(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        org: &str,
    ) -> Result<Admission, Refusal> {
        let grant = self.authenticate(headers, Some(query.unwrap_or("")))?;
        self.authorize_org(grant.as_ref(), org)?;
        match self.caps.acquire(org) {
            Ok(permit) => Ok(Admission {
                grant,
                permit: Some(permit),
                refused: None,
            }),
            Err(refusal) if self.cap_response == CapResponse::Close => {
                self.metrics.error(refusal.reason);
                Ok(Admission {
                    grant,
                    permit: None,
                    refused: Some(Closing::Capacity(refusal.message)),
                })
            }
            Err(refusal) => Err(refusal),
        }
    }

    /// The guard of a new session of `org`.
    pub fn session_guard(&self, org: &str, grant: Option<&Grant>) -> SessionGuard {
        let allowed = self.allow.as_ref().map(AllowFile::subscribe);
        SessionGuard::new(&self.session, org, grant, allowed)
    }

    /// Re-reads the allow-list file; open sessions of organizations no longer on it
    /// close with 4403. On a read error the old list stays.
    pub fn reload_orgs(&self) -> anyhow::Result<Reloaded> {
        let allow = self
            .allow
            .as_ref()
            .context("no organization allow-list is configured (--org-allow-file)")?;
        let list = allow.read()?;
        let closing = self.caps.open_outside(|org| list.orgs.contains(org));
        let organizations = list.orgs.len();
        allow.replace(list.orgs);
        Ok(Reloaded {
            organizations,
            closing,
        })
    }
}
