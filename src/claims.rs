//! The tokens `serve` accepts and `token` mints: the claim names, the shape of the
//! organization claim, and verification ([`JwtConfig`], [`verify`]). A leaf under both
//! the server (which turns a [`TokenError`] into a 401/403 answer) and the `token`
//! command (which signs claims of this shape).
//!
//! Verification: HS256 with a shared secret, or RS256/ES256 with a public key; `exp`
//! required, `exp`/`nbf` checked with a small leeway, issuer and audience when
//! configured, `alg: none` and algorithm confusion refused. The [`ORG_CLAIM`] is one
//! organization id or a list of them, [`ALL_ORGS`] meaning every organization.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// The claim naming the organizations a token allows: a string or an array of
/// strings; `"*"` allows every organization (and the admin endpoint).
pub const ORG_CLAIM: &str = "org";
/// The organization wildcard in [`ORG_CLAIM`].
pub const ALL_ORGS: &str = "*";
/// Tolerance for clock differences when checking `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Largest leeway accepted: more would make expiry meaningless.
pub const MAX_LEEWAY: Duration = Duration::from_secs(3600);
/// Expiry times beyond this (about the year 2242) are taken as this.
const LATEST_EXP: f64 = 8_589_934_592.0;

/// How tokens are verified. Build it with [`JwtConfig::hs256`] or
/// [`JwtConfig::public_key_pem`]; the key never appears in `Debug` output.
#[derive(Clone)]
pub struct JwtConfig {
    algorithm: Algorithm,
    key: DecodingKey,
    /// When set, the token's `iss` must equal it.
    pub issuer: Option<String>,
    /// When set, the token's `aud` must contain it; when not, `aud` is not checked.
    pub audience: Option<String>,
    /// Tolerance for `exp` and `nbf` (at most [`MAX_LEEWAY`]).
    pub leeway: Duration,
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("algorithm", &self.algorithm)
            .field("key", &"[redacted]")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl JwtConfig {
    fn new(algorithm: Algorithm, key: DecodingKey) -> JwtConfig {
        JwtConfig {
            algorithm,
            key,
            issuer: None,
            audience: None,
            leeway: DEFAULT_LEEWAY,
        }
    }

    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> anyhow::Result<JwtConfig> {
        if secret.is_empty() {
            bail!("the JWT secret is empty");
        }
        Ok(JwtConfig::new(
            Algorithm::HS256,
            DecodingKey::from_secret(secret),
        ))
    }

    /// RS256 for an RSA public key, ES256 for an EC P-256 public key (PEM).
    pub fn public_key_pem(pem: &[u8]) -> anyhow::Result<JwtConfig> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(JwtConfig::new(Algorithm::RS256, key));
        }
        match DecodingKey::from_ec_pem(pem) {
            Ok(key) => Ok(JwtConfig::new(Algorithm::ES256, key)),
            Err(e) => bail!("not an RSA or EC (P-256) public key in PEM format: {e}"),
        }
    }

    /// The one algorithm tokens must be signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn validation(&self) -> Validation {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = self.leeway.min(MAX_LEEWAY).as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

/// What a verified token allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub orgs: OrgGrant,
    /// `exp` plus the leeway: the session ends (4401) at this instant.
    pub expires_at: SystemTime,
    pub subject: Option<String>,
}

/// The organizations an [`ORG_CLAIM`] names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrgGrant {
    All,
    Only(Vec<String>),
}

impl Grant {
    pub fn allows(&self, org: &str) -> bool {
        match &self.orgs {
            OrgGrant::All => true,
            OrgGrant::Only(orgs) => orgs.iter().any(|o| o == org),
        }
    }

    pub fn allows_all(&self) -> bool {
        self.orgs == OrgGrant::All
    }
}

/// The [`ORG_CLAIM`] value for these organizations: one id as a string, several as
/// an array, and [`ALL_ORGS`] alone when any of several is the wildcard.
pub fn org_claim(orgs: &[String]) -> Value {
    match orgs {
        [one] => Value::from(one.clone()),
        _ if orgs.iter().any(|o| o == ALL_ORGS) => Value::from(ALL_ORGS),
        _ => Value::from(orgs.to_vec()),
    }
}

/// Reads the [`ORG_CLAIM`] of a token's claims.
pub fn org_grant(claims: &Value) -> Result<OrgGrant, String> {
    let shape = format!(
        "the {ORG_CLAIM} claim must be an organization id or an array of them (\"*\" for all)"
    );
    match claims.get(ORG_CLAIM) {
        None | Some(Value::Null) => Err(format!("the token has no {ORG_CLAIM} claim: {shape}")),
        Some(Value::String(org)) if org == ALL_ORGS => Ok(OrgGrant::All),
        Some(Value::String(org)) => Ok(OrgGrant::Only(vec![org.clone()])),
        Some(Value::Array(items)) => {
            let orgs: Option<Vec<String>> =
                items.iter().map(|v| v.as_str().map(String::from)).collect();
            let orgs = orgs.ok_or(shape)?;
            if orgs.iter().any(|o| o == ALL_ORGS) {
                Ok(OrgGrant::All)
            } else {
                Ok(OrgGrant::Only(orgs))
            }
        }
        Some(_) => Err(shape),
    }
}

/// Why a token does not verify. [`TokenError::reason`] is the label the server's
/// error metric counts it under.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed: expected a JWT (three base64url parts with a JSON header)")]
    NotAJwt,
    #[error("unsigned tokens (alg none) are refused")]
    AlgNone,
    #[error("the token is signed with {alg}; this server accepts {ours} only")]
    ForeignAlgorithm { alg: String, ours: String },
    #[error("this server accepts {ours} tokens only")]
    WrongAlgorithm { ours: String },
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has no {0} claim")]
    MissingClaim(String),
    #[error("the token's {0} claim is not a number")]
    NotANumber(String),
    #[error("the token's issuer (iss) is not {0}")]
    BadIssuer(String),
    #[error("the token's audience (aud) does not include {0}")]
    BadAudience(String),
    #[error("the token is malformed: {0}")]
    Malformed(String),
    /// The token verifies, but its organization claim has the wrong shape.
    #[error("{0}")]
    BadOrgClaim(String),
}

impl TokenError {
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::NotAJwt | TokenError::NotANumber(_) | TokenError::Malformed(_) => {
                "malformed_token"
            }
            TokenError::AlgNone => "alg_none",
            TokenError::ForeignAlgorithm { .. } | TokenError::WrongAlgorithm { .. } => {
                "bad_algorithm"
            }
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::BadSignature => "bad_signature",
            TokenError::MissingClaim(_) => "missing_claim",
            TokenError::BadIssuer(_) => "bad_issuer",
            TokenError::BadAudience(_) => "bad_audience",
            TokenError::BadOrgClaim(_) => "bad_org_claim",
        }
    }
}

/// The `alg` a token's header names, read without trusting anything else in it.
fn header_alg(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?.as_str().map(String::from)
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The library's verdict in our terms.
fn decode_error(jwt: &JwtConfig, e: &jsonwebtoken::errors::Error) -> TokenError {
    let ours = format!("{:?}", jwt.algorithm);
    match e.kind() {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            TokenError::WrongAlgorithm { ours }
        }
        ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim.clone()),
        ErrorKind::InvalidClaimFormat(claim) => TokenError::NotANumber(claim.clone()),
        ErrorKind::InvalidIssuer => {
            TokenError::BadIssuer(jwt.issuer.as_deref().unwrap_or("-").to_string())
        }
        ErrorKind::InvalidAudience => {
            TokenError::BadAudience(jwt.audience.as_deref().unwrap_or("-").to_string())
        }
        _ => TokenError::Malformed(e.to_string()),
    }
}

/// Verifies a token: signature with the configured algorithm only, `exp` (required),
/// `nbf`, issuer and audience when configured, and the shape of the `org` claim.
/// The `exp` claim of a JWT, read without verifying anything: what a client may
/// say about the token it sent when a server refuses it. `None` when `token` is
/// not a JWT or has no numeric `exp`.
pub fn unverified_exp(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims
        .get("exp")?
        .as_f64()
        .filter(|e| *e >= 0.0)
        .map(|e| e as u64)
}

pub fn verify(jwt: &JwtConfig, token: &str) -> Result<Grant, TokenError> {
    let ours = format!("{:?}", jwt.algorithm);
    match header_alg(token) {
        None => return Err(TokenError::NotAJwt),
        Some(alg) if alg.eq_ignore_ascii_case("none") => return Err(TokenError::AlgNone),
        Some(alg) if alg != ours => return Err(TokenError::ForeignAlgorithm { alg, ours }),
        Some(_) => {}
    }
    let data = jsonwebtoken::decode::<Value>(token, &jwt.key, &jwt.validation())
        .map_err(|e| decode_error(jwt, &e))?;
    let claims = data.claims;
    // `exp` to the sub-second, so that a session closed at expiry and a token checked
    // at the same instant agree (the library compares whole seconds).
    let leeway = jwt.leeway.min(MAX_LEEWAY).as_secs_f64();
    let exp = claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0);
    if now_secs() >= exp + leeway {
        return Err(TokenError::Expired);
    }
    let orgs = org_grant(&claims).map_err(TokenError::BadOrgClaim)?;
    Ok(Grant {
        orgs,
        expires_at: UNIX_EPOCH + Duration::from_secs_f64((exp + leeway).clamp(0.0, LATEST_EXP)),
        subject: claims.get("sub").and_then(Value::as_str).map(String::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minted_org_claims_read_back_as_the_same_grant() {
        let ids = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases = [
            (
                ids(&["org-a"]),
                json!("org-a"),
                OrgGrant::Only(ids(&["org-a"])),
            ),
            (ids(&["*"]), json!("*"), OrgGrant::All),
            (
                ids(&["a", "b"]),
                json!(["a", "b"]),
                OrgGrant::Only(ids(&["a", "b"])),
            ),
            (ids(&["x", "*"]), json!("*"), OrgGrant::All),
        ];
        for (orgs, claim, grant) in cases {
            assert_eq!(org_claim(&orgs), claim, "{orgs:?}");
            assert_eq!(org_grant(&json!({ ORG_CLAIM: claim })), Ok(grant));
        }
    }

    #[test]
    fn reasons_are_the_metric_labels() {
        assert_eq!(TokenError::NotAJwt.reason(), "malformed_token");
        assert_eq!(
            TokenError::BadOrgClaim(String::new()).reason(),
            "bad_org_claim"
        );
        assert_eq!(
            TokenError::ForeignAlgorithm {
                alg: "RS256".into(),
                ours: "HS256".into()
            }
            .to_string(),
            "the token is signed with RS256; this server accepts HS256 only"
        );
    }
}
