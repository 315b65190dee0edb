//! The tokens `serve` accepts and `token` mints: the claim names, the three shapes
//! of the organization claims, and verification ([`JwtConfig`], [`verify`]). A leaf
//! under both the server (which turns a [`TokenError`] into a 401/403 answer) and the
//! `token` command (which signs claims of these shapes and decodes tokens).
//!
//! Verification: HS256 with a shared secret, or RS256/ES256 with a public key; `exp`
//! required, `exp`/`nbf` checked with a small leeway, issuer and audience when
//! configured, `alg: none` and algorithm confusion refused. The organizations come
//! from one of three shapes ([`ClaimShape`], [`read_access`]): syncprobe's
//! [`ORG_CLAIM`] (one id or a list, [`ALL_ORGS`] meaning every organization), the
//! original backend's [`ORGANIZATIONS_CLAIM`] (entries with permissions), or its older
//! [`ORGANIZATION_IDS_CLAIM`] (with `role: "admin"` meaning every organization). A
//! [`SERVICE_STATUS_CLAIM`] other than [`ACTIVE`] is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// The claim naming the organizations a token allows: a string or an array of
/// strings; `"*"` allows every organization (and the admin endpoint).
pub const ORG_CLAIM: &str = "org";
/// The organization wildcard in [`ORG_CLAIM`].
pub const ALL_ORGS: &str = "*";
/// The original backend's claim: `[{"organizationId", "organizationCode", "role",
/// "permissions": {"perm_Read": true, …}}]`.
pub const ORGANIZATIONS_CLAIM: &str = "organizations";
/// The original's older claim: an array of organization ids, with a top-level `role`.
pub const ORGANIZATION_IDS_CLAIM: &str = "organizationIds";
/// The top-level `role` of [`ORGANIZATION_IDS_CLAIM`] tokens that allows every organization.
pub const ADMIN_ROLE: &str = "admin";
/// The account status claim; anything but [`ACTIVE`] is refused.
pub const SERVICE_STATUS_CLAIM: &str = "serviceStatus";
pub const ACTIVE: &str = "active";
/// The permission writing to the queue and resolving conflicts need.
pub const PERM_SYNC: &str = "perm_Sync";
/// The permission flags of the original backend (`types/auth.ts`), in its order.
pub const PERMISSIONS: [&str; 16] = [
    "perm_Read",
    "perm_EditForecast",
    "perm_EditActuals",
    "perm_Delete",
    "perm_Import",
    "perm_RefreshData",
    "perm_Export",
    "perm_ViewFinancials",
    "perm_SaveDraft",
    "perm_Sync",
    "perm_ManageUsers",
    "perm_ManageSettings",
    "perm_ConfigureAlerts",
    "perm_Impersonate",
    "perm_ViewAllOrgs",
    "perm_UseAiFeatures",
];
/// Tolerance for clock differences when checking `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Largest leeway accepted: more would make expiry meaningless.
pub const MAX_LEEWAY: Duration = Duration::from_secs(3600);
/// Longest part of a refused `serviceStatus` quoted back.
const SHOWN_STATUS: usize = 40;
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
    /// The permission flags set to `true`, per organization, for the organizations
    /// whose entry carries `permissions` (the [`ORGANIZATIONS_CLAIM`] shape); an
    /// organization not in the map is not checked for permissions.
    pub permissions: BTreeMap<String, BTreeSet<String>>,
    /// `exp` plus the leeway: the session ends (4401) at this instant.
    pub expires_at: SystemTime,
    /// `sub`, else `userId`, else `username`.
    pub subject: Option<String>,
    /// The permission the request at hand needs in its organization (set per
    /// request by the server from its method and path; `None` for most requests).
    pub required: Option<&'static str>,
}

/// The organizations a token allows.
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

    /// Whether the token grants `permission` in `org`: always, when it carries no
    /// permissions for `org`.
    pub fn permits(&self, org: &str, permission: &str) -> bool {
        self.permissions
            .get(org)
            .is_none_or(|granted| granted.contains(permission))
    }

    /// The [`Grant::required`] permission when the token lacks it in `org`.
    pub fn missing_permission(&self, org: &str) -> Option<&'static str> {
        self.required.filter(|p| !self.permits(org, p))
    }
}

/// Which of the accepted claim shapes a token has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimShape {
    /// `org`: an id, an array of ids, or `"*"` (syncprobe's own).
    Simple,
    /// `organizations[]` with codes, roles and permissions (the original backend).
    Pfa,
    /// `organizationIds[]` with a top-level `role` (the original's older middleware).
    Ids,
}

impl ClaimShape {
    pub const NAMES: [&str; 3] = ["simple", "pfa", "ids"];

    pub fn name(self) -> &'static str {
        match self {
            ClaimShape::Simple => "simple",
            ClaimShape::Pfa => "pfa",
            ClaimShape::Ids => "ids",
        }
    }
}

/// One organization a token names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgEntry {
    pub id: String,
    /// `organizationCode` ([`ClaimShape::Pfa`]).
    pub code: Option<String>,
    /// The entry's `role` ([`ClaimShape::Pfa`]).
    pub role: Option<String>,
    /// The flags set to `true`, when the entry carries `permissions`.
    pub permissions: Option<BTreeSet<String>>,
}

/// What a token's claims say about access, read without verifying anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub shape: ClaimShape,
    /// Every organization: `org: "*"`, or `role: "admin"` with `organizationIds`.
    pub all: bool,
    pub orgs: Vec<OrgEntry>,
    /// `serviceStatus`, as text, when the claims have one.
    pub service_status: Option<String>,
}

impl Access {
    /// Whether the account may act: no `serviceStatus`, or [`ACTIVE`].
    pub fn active(&self) -> bool {
        self.service_status.as_deref().is_none_or(|s| s == ACTIVE)
    }

    pub fn allows(&self, org: &str) -> bool {
        self.all || self.orgs.iter().any(|o| o.id == org)
    }

    fn grant(self, expires_at: SystemTime, subject: Option<String>) -> Grant {
        let permissions = self
            .orgs
            .iter()
            .filter_map(|o| Some((o.id.clone(), o.permissions.clone()?)))
            .collect();
        let orgs = if self.all {
            OrgGrant::All
        } else {
            OrgGrant::Only(self.orgs.into_iter().map(|o| o.id).collect())
        };
        Grant {
            orgs,
            permissions,
            expires_at,
            subject,
            required: None,
        }
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

fn present<'a>(claims: &'a Value, name: &str) -> Option<&'a Value> {
    claims.get(name).filter(|v| !v.is_null())
}

/// Reads the organizations and the account status of a token's claims: the
/// [`ORG_CLAIM`] when present, else [`ORGANIZATIONS_CLAIM`], else
/// [`ORGANIZATION_IDS_CLAIM`]. An error says what is wrong with the shape.
pub fn read_access(claims: &Value) -> Result<Access, String> {
    let service_status = present(claims, SERVICE_STATUS_CLAIM).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let (shape, all, orgs) = if let Some(org) = present(claims, ORG_CLAIM) {
        let (all, ids) = simple_orgs(org)?;
        (ClaimShape::Simple, all, ids.into_iter().map(bare).collect())
    } else if let Some(list) = present(claims, ORGANIZATIONS_CLAIM) {
        let shape = format!(
            "the {ORGANIZATIONS_CLAIM} claim must be an array of objects with an organizationId"
        );
        let items = list.as_array().ok_or_else(|| shape.clone())?;
        let orgs = items
            .iter()
            .map(pfa_entry)
            .collect::<Option<Vec<_>>>()
            .ok_or(shape)?;
        (ClaimShape::Pfa, false, orgs)
    } else if let Some(list) = present(claims, ORGANIZATION_IDS_CLAIM) {
        let ids = strings(list).ok_or_else(|| {
            format!("the {ORGANIZATION_IDS_CLAIM} claim must be an array of organization ids")
        })?;
        let admin = claims.get("role").and_then(Value::as_str) == Some(ADMIN_ROLE);
        (ClaimShape::Ids, admin, ids.into_iter().map(bare).collect())
    } else {
        return Err(format!(
            "the token has no {ORG_CLAIM}, {ORGANIZATIONS_CLAIM} or {ORGANIZATION_IDS_CLAIM} claim: it names no organization"
        ));
    };
    Ok(Access {
        shape,
        all,
        orgs,
        service_status,
    })
}

fn bare(id: String) -> OrgEntry {
    OrgEntry {
        id,
        code: None,
        role: None,
        permissions: None,
    }
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(String::from))
        .collect()
}

/// The [`ORG_CLAIM`]: (every organization, the ids named).
fn simple_orgs(value: &Value) -> Result<(bool, Vec<String>), String> {
    let shape = format!(
        "the {ORG_CLAIM} claim must be an organization id or an array of them (\"*\" for all)"
    );
    let ids = match value {
        Value::String(org) => vec![org.clone()],
        Value::Array(_) => strings(value).ok_or(shape)?,
        _ => return Err(shape),
    };
    let all = ids.iter().any(|o| o == ALL_ORGS);
    let ids = ids.into_iter().filter(|o| o != ALL_ORGS).collect();
    Ok((all, ids))
}

/// One entry of [`ORGANIZATIONS_CLAIM`]: an object with a non-empty string
/// `organizationId`; `permissions`, when present, an object whose `true` flags count.
fn pfa_entry(value: &Value) -> Option<OrgEntry> {
    let entry = value.as_object()?;
    let text = |name: &str| entry.get(name).and_then(Value::as_str).map(String::from);
    let id = text("organizationId").filter(|id| !id.is_empty())?;
    let permissions = match entry.get("permissions") {
        None | Some(Value::Null) => None,
        Some(Value::Object(flags)) => Some(
            flags
                .iter()
                .filter(|(_, v)| **v == Value::Bool(true))
                .map(|(k, _)| k.clone())
                .collect(),
        ),
        Some(_) => return None,
    };
    Some(OrgEntry {
        id,
        code: text("organizationCode"),
        role: text("role"),
        permissions,
    })
}

/// Who a token speaks for: `sub`, else `userId`, else `username`.
pub fn subject_of(claims: &Value) -> Option<String> {
    ["sub", "userId", "username"]
        .iter()
        .find_map(|name| claims.get(*name).and_then(Value::as_str))
        .map(String::from)
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
    /// The token verifies, but its `serviceStatus` is not `active`.
    #[error("the token's serviceStatus is {0:?}, not \"active\"")]
    Inactive(String),
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
            TokenError::Inactive(_) => "account_inactive",
        }
    }
}

/// A JWT's header and claims, decoded without verifying anything.
#[derive(Clone, Debug, PartialEq)]
pub struct Unverified {
    pub header: Map<String, Value>,
    pub claims: Value,
    /// Bytes of the signature part (the signature itself is never kept).
    pub signature_len: usize,
}

/// Why text is not a JWT, for a human.
fn not_a_jwt(why: &str) -> String {
    format!("not a JWT: {why}")
}

fn base64url_json(part: &str, name: &str) -> Result<Value, String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| not_a_jwt(&format!("its {name} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|_| not_a_jwt(&format!("its {name} is not JSON")))
}

/// Decodes a JWT (`header.claims.signature`, base64url, JSON objects) without
/// verifying it. The error says why the text is not a JWT, never quoting it.
pub fn decode_unverified(token: &str) -> Result<Unverified, String> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    if parts.len() != 3 {
        let parts = match parts.len() {
            1 => "1 dot-separated part".to_string(),
            n => format!("{n} dot-separated parts"),
        };
        return Err(not_a_jwt(&format!(
            "it has {parts}, a JWT has 3 (header.claims.signature)"
        )));
    }
    let Value::Object(header) = base64url_json(parts[0], "header")? else {
        return Err(not_a_jwt("its header is not a JSON object"));
    };
    let claims = base64url_json(parts[1], "claims part")?;
    if !claims.is_object() {
        return Err(not_a_jwt("its claims are not a JSON object"));
    }
    Ok(Unverified {
        header,
        claims,
        signature_len: parts[2].len(),
    })
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

/// Verifies a token: signature with the configured algorithm only, `exp` (required),
/// `nbf`, issuer and audience when configured, the shape of the organization claims
/// and the account's `serviceStatus`.
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
    let access = read_access(&claims).map_err(TokenError::BadOrgClaim)?;
    if !access.active() {
        let status = access.service_status.unwrap_or_default();
        return Err(TokenError::Inactive(
            status.chars().take(SHOWN_STATUS).collect(),
        ));
    }
    let expires_at = UNIX_EPOCH + Duration::from_secs_f64((exp + leeway).clamp(0.0, LATEST_EXP));
    Ok(access.grant(expires_at, subject_of(&claims)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grant(claims: Value) -> Result<Grant, String> {
        let far = UNIX_EPOCH + Duration::from_secs(1 << 32);
        read_access(&claims).map(|a| a.grant(far, subject_of(&claims)))
    }

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
        for (orgs, claim, expected) in cases {
            assert_eq!(org_claim(&orgs), claim, "{orgs:?}");
            assert_eq!(grant(json!({ ORG_CLAIM: claim })).unwrap().orgs, expected);
        }
    }

    #[test]
    fn the_original_backends_shapes() {
        let pfa = grant(json!({
            "userId": "u-1", "username": "ana", "serviceStatus": "active",
            "organizations": [
                {"organizationId": "org-a", "organizationCode": "A", "role": "member",
                 "permissions": {"perm_Read": true, "perm_Sync": true, "perm_Delete": false}},
                {"organizationId": "org-b", "permissions": {"perm_Read": true, "perm_Sync": 1}},
                {"organizationId": "org-c"},
            ],
        }))
        .unwrap();
        assert_eq!(pfa.subject.as_deref(), Some("u-1"));
        assert!(pfa.allows("org-a") && pfa.allows("org-c") && !pfa.allows("org-d"));
        assert!(pfa.permits("org-a", PERM_SYNC));
        // Only `true` grants; an entry without permissions is not checked.
        assert!(!pfa.permits("org-b", PERM_SYNC) && pfa.permits("org-c", PERM_SYNC));
        let mut needing = pfa.clone();
        needing.required = Some(PERM_SYNC);
        assert_eq!(needing.missing_permission("org-b"), Some(PERM_SYNC));
        assert_eq!(needing.missing_permission("org-a"), None);

        let ids = grant(json!({"userId": "u", "role": "user", "organizationIds": ["x", "y"]}));
        assert_eq!(
            ids.unwrap().orgs,
            OrgGrant::Only(vec!["x".into(), "y".into()])
        );
        let admin = grant(json!({"role": "admin", "organizationIds": []})).unwrap();
        assert!(admin.allows_all());

        for bad in [
            json!({"organizations": "org-a"}),
            json!({"organizations": [{"organizationCode": "A"}]}),
            json!({"organizations": [{"organizationId": ""}]}),
            json!({"organizations": [{"organizationId": "a", "permissions": ["perm_Sync"]}]}),
            json!({"organizationIds": [1]}),
            json!({"userId": "u"}),
        ] {
            assert!(read_access(&bad).is_err(), "{bad}");
        }
        let suspended = read_access(&json!({"serviceStatus": "locked", "org": "a"})).unwrap();
        assert!(!suspended.active());
    }

    #[test]
    fn unverified_decoding_names_what_is_wrong() {
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let good = format!("{}.{}.c2ln", b64(r#"{"alg":"HS256"}"#), b64(r#"{"a":1}"#));
        let decoded = decode_unverified(&good).unwrap();
        assert_eq!(
            (decoded.header["alg"].as_str(), decoded.signature_len),
            (Some("HS256"), 4)
        );
        for (bad, why) in [
            ("abc", "has 1 dot-separated part"),
            ("a.b", "has 2 dot-separated part"),
            ("!!.e30.x", "header is not base64url"),
            (
                &format!("{}.e30.x", b64("[1]")),
                "header is not a JSON object",
            ),
            (
                &format!("{}.{}.x", b64("{}"), b64("5")),
                "claims are not a JSON object",
            ),
        ] {
            let error = decode_unverified(bad).unwrap_err();
            assert!(
                error.starts_with("not a JWT") && error.contains(why),
                "{bad}: {error}"
            );
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
