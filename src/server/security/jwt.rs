//! Tokens on the way in: where a request carries its token (`Authorization: Bearer …`,
//! or on upgrades the `token` query parameter), and the verdict of
//! [`crate::claims::verify`] as a refusal in the original backend's words (401
//! `UNAUTHORIZED`, `TOKEN_EXPIRED` or `INVALID_TOKEN`; 403 `FORBIDDEN` for claims that
//! name no organization or an account that is not active), with serve's own
//! explanation in `details`. What a token may claim, and how it is verified, is
//! `crate::claims`.

use axum::http::{HeaderMap, StatusCode, header};

use crate::claims::{self, Grant, JwtConfig, TokenError};
use crate::server::error::Refusal;

// The original backend's messages (`middleware/auth.ts`, `pemsWriteSyncController.ts`).
pub const NO_TOKEN: &str = "No token provided";
pub const TOKEN_EXPIRED: &str = "Token has expired";
pub const INVALID_TOKEN: &str = "Invalid token";
pub const NO_ACCESS: &str = "No access to this organization";
/// serve's own: the original refuses inactive accounts at login, not per request.
pub const ACCOUNT_INACTIVE: &str = "Account is not active";

/// The original's 403 for a missing permission: `Sync permission required`.
pub fn permission_required(permission: &str) -> String {
    format!(
        "{} permission required",
        permission.strip_prefix("perm_").unwrap_or(permission)
    )
}

/// Verifies a token, refusing as the protocol says.
pub fn verify(jwt: &JwtConfig, token: &str) -> Result<Grant, Refusal> {
    claims::verify(jwt, token).map_err(Refusal::from)
}

impl From<TokenError> for Refusal {
    fn from(error: TokenError) -> Self {
        let reason = error.reason();
        let detail = error.to_string();
        let unauthorized = |code, message: &str| {
            Refusal::new(StatusCode::UNAUTHORIZED, code, reason, message.into())
        };
        let refusal = match error {
            TokenError::BadOrgClaim(_) => Refusal::forbidden(reason, NO_ACCESS),
            TokenError::Inactive(_) => Refusal::forbidden(reason, ACCOUNT_INACTIVE),
            TokenError::Expired => unauthorized("TOKEN_EXPIRED", TOKEN_EXPIRED),
            _ => unauthorized("INVALID_TOKEN", INVALID_TOKEN),
        };
        refusal.with_detail(detail)
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
            _ => Err(Refusal::unauthorized("missing_token", NO_TOKEN)
                .with_detail("the Authorization header must be `Bearer <JWT>`")),
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
    Err(Refusal::unauthorized("missing_token", NO_TOKEN)
        .with_detail(format!("a token is required: {how}")))
}

/// Verifies the request's token when JWT is configured (`None` when it is not).
pub fn authenticate(
    jwt: Option<&JwtConfig>,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<Grant>, Refusal> {
    match jwt {
        None => Ok(None),
        Some(jwt) => verify(jwt, &token_of(headers, query)?).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::OrgGrant;
    use axum::http::StatusCode;
    use base64::Engine;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use serde_json::{Value, json};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
}
