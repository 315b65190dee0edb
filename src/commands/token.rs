//! `token`: mint an HS256 test token for a `serve` started with `--jwt-secret` (or a
//! dev backend with the same `JWT_SECRET`), for development and CI; and `token
//! inspect`, which decodes a token without verifying it and says whether it is
//! usable. Real deployments get their tokens from their identity provider; minting
//! signs whatever it is asked to, with a shared secret.
//!
//! `syncprobe token --secret S --org O` (flags, no subcommand) mints, as it always
//! has; `inspect` is the one subcommand, and the mint flags are refused with it
//! ([`mint_flags_given`]: clap's `args_conflicts_with_subcommands` would refuse the
//! global flags too, as in `token --json inspect`).

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

use super::args::{TOKEN_VARIABLE, parse_duration, positive_duration};
use crate::claims::{
    self, ADMIN_ROLE, ALL_ORGS, ClaimShape, ORG_CLAIM, ORGANIZATION_IDS_CLAIM, ORGANIZATIONS_CLAIM,
    PERM_SYNC, PERMISSIONS, SERVICE_STATUS_CLAIM, org_claim,
};
use crate::exit::{Exit, Failure};
use crate::protocol::Timestamp;
use crate::report::Reporter;
use crate::report::json;
use crate::report::token::{self as report, InspectedOrg, TokenInspection, TokenSummary};

/// Longest token `token inspect -` reads from stdin.
const MAX_STDIN_TOKEN: u64 = 64 * 1024;
/// The lifetime of minted tokens when `--ttl` is not given.
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// The user of minted `pfa` and `ids` tokens when `--user` is not given.
const DEFAULT_USER: &str = "syncprobe";
/// The permissions of minted `pfa` tokens when no `--permission` is given.
const DEFAULT_PERMISSIONS: [&str; 2] = ["perm_Read", PERM_SYNC];

#[derive(Debug, Args)]
#[command(
    subcommand_negates_reqs = true,
    after_long_help = "Claim shapes (--claims):
  simple  {\"org\": ORG | [ORG, …] | \"*\", \"iat\", \"exp\"}  (the default; \"*\" is every
          organization and the admin endpoint)
  pfa     the original backend's: {\"userId\", \"username\", \"email\": null, \"authProvider\":
          \"local\", \"serviceStatus\", \"organizations\": [{\"organizationId\", \"organizationCode\",
          \"role\": \"member\", \"permissions\": {\"perm_Read\": true, \"perm_Sync\": true, …}}],
          \"iat\", \"exp\"}; organizationCode is the id upper-cased without an org- prefix
  ids     its older middleware's: {\"userId\", \"username\", \"role\", \"organizationIds\": [ORG, …],
          \"iat\", \"exp\"}; --org '*' gives role admin (every organization)
nbf, iss, aud and sub are added when given, in every shape.

Examples:
  export SYNCPROBE_JWT_SECRET=dev-secret
  syncprobe serve &                                      # reads the same variable
  syncprobe smoke org-rio --url ws://127.0.0.1:3000 --token \"$(syncprobe token --org org-rio)\"
  syncprobe token --secret-file secret.txt --org org-a --org org-b --ttl 10m
  syncprobe token --claims pfa --org org-rio --permission perm_Read   # no perm_Sync: write-sync gets 403
  syncprobe token --org '*' --json | jq -r .data.token
  syncprobe token inspect \"$TOKEN\" --org org-rio          # decode, not verify; exit 0/1/2"
)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: Option<TokenCommand>,
    #[command(flatten)]
    pub mint: MintArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Decode a token without verifying it and say whether it is usable
    ///
    /// Shows the algorithm, the subject and user, the organizations and their
    /// permissions, and iat/nbf/exp in local time. Exit 0 when the token is usable (for
    /// --org ORG when given), 1 when it is expired, not yet valid, names no
    /// organization (or not ORG), has no exp, is unsigned or its account is not active
    /// (each reason is listed), 2 when the text is not a JWT. The token and its
    /// signature are never printed.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The token, or `-` to read it from stdin [default: SYNCPROBE_TOKEN]; a leading
    /// `Bearer ` is ignored
    #[arg(value_name = "TOKEN")]
    pub token: Option<String>,
    /// Say whether the token allows this organization
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
}

/// `--claims`: the shape of the minted claims.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ClaimsArg {
    /// {"org": …}: syncprobe's own
    #[default]
    Simple,
    /// {"organizations": [{…, "permissions"}]}: the original backend's
    Pfa,
    /// {"organizationIds": […], "role"}: the original's older middleware
    Ids,
}

/// `--service-status`, as the original backend's type has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ServiceStatusArg {
    Active,
    Suspended,
    Locked,
}

impl ServiceStatusArg {
    fn name(self) -> &'static str {
        match self {
            ServiceStatusArg::Active => "active",
            ServiceStatusArg::Suspended => "suspended",
            ServiceStatusArg::Locked => "locked",
        }
    }
}

/// A permission flag of the original backend: `perm_Sync`, or `Sync` for short
/// (case-insensitive).
fn parse_permission(s: &str) -> Result<&'static str, String> {
    let wanted = s.trim();
    let bare = |p: &str| p.strip_prefix("perm_").unwrap_or(p).to_ascii_lowercase();
    PERMISSIONS
        .iter()
        .find(|p| bare(p) == bare(wanted))
        .copied()
        .ok_or_else(|| {
            format!(
                "unknown permission {wanted:?}; the original backend's are {}",
                PERMISSIONS.join(", ")
            )
        })
}

#[derive(Debug, Args)]
pub struct MintArgs {
    /// The HS256 secret (the one `serve --jwt-secret` was given)
    #[arg(
        long,
        value_name = "SECRET",
        env = "SYNCPROBE_JWT_SECRET",
        hide_env_values = true,
        required_unless_present = "secret_file",
        conflicts_with = "secret_file"
    )]
    pub secret: Option<String>,
    /// Read the secret from a file (surrounding whitespace is ignored)
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Organization the token allows (repeatable; `*` allows every organization)
    #[arg(long = "org", value_name = "ORG", required = true)]
    pub orgs: Vec<String>,
    /// The shape of the claims (see below) [default: simple]
    #[arg(long, value_name = "SHAPE", value_enum)]
    pub claims: Option<ClaimsArg>,
    /// Permission granted in every organization, with --claims pfa (repeatable;
    /// perm_Read and perm_Sync when not given)
    #[arg(long = "permission", value_name = "NAME", value_parser = parse_permission)]
    pub permissions: Vec<&'static str>,
    /// userId and username, with --claims pfa or ids [default: syncprobe]
    #[arg(long, value_name = "ID")]
    pub user: Option<String>,
    /// serviceStatus, with --claims pfa (serve refuses anything but active) [default: active]
    #[arg(long, value_name = "STATUS", value_enum)]
    pub service_status: Option<ServiceStatusArg>,
    /// Lifetime: exp is now plus this [default: 1h]
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub ttl: Option<Duration>,
    /// Issuer claim (iss)
    #[arg(long, value_name = "ISS")]
    pub issuer: Option<String>,
    /// Audience claim (aud)
    #[arg(long, value_name = "AUD")]
    pub audience: Option<String>,
    /// Subject claim (sub)
    #[arg(long, value_name = "SUB")]
    pub subject: Option<String>,
    /// Not valid before now plus this (nbf)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub not_before: Option<Duration>,
}

pub async fn run(args: TokenArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    match args.command {
        Some(TokenCommand::Inspect(inspect_args)) => {
            if let Some(flags) = mint_flags_given(&args.mint) {
                return Err(Failure::Usage(format!(
                    "{flags}: mint flags, which do not apply to `token inspect` (its --org goes after `inspect`)"
                ))
                .into());
            }
            inspect(&inspect_args, reporter)
        }
        None => mint_command(&args.mint, reporter),
    }
}

/// The mint flags given on the command line, when any (`--secret` may come from
/// the environment, so it is not counted).
fn mint_flags_given(args: &MintArgs) -> Option<String> {
    let given: Vec<&str> = [
        ("--secret-file", args.secret_file.is_some()),
        ("--org", !args.orgs.is_empty()),
        ("--claims", args.claims.is_some()),
        ("--permission", !args.permissions.is_empty()),
        ("--user", args.user.is_some()),
        ("--service-status", args.service_status.is_some()),
        ("--ttl", args.ttl.is_some()),
        ("--issuer", args.issuer.is_some()),
        ("--audience", args.audience.is_some()),
        ("--subject", args.subject.is_some()),
        ("--not-before", args.not_before.is_some()),
    ]
    .into_iter()
    .filter_map(|(flag, given)| given.then_some(flag))
    .collect();
    (!given.is_empty()).then(|| given.join(", "))
}

fn mint_command(args: &MintArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    let secret = match (&args.secret, &args.secret_file) {
        (Some(secret), _) => secret.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the secret file {}", path.display()))?
            .trim()
            .to_string(),
        (None, None) => {
            return Err(Failure::Usage(
                "give --secret, --secret-file or SYNCPROBE_JWT_SECRET".into(),
            )
            .into());
        }
    };
    if secret.is_empty() {
        return Err(match &args.secret_file {
            Some(path) if args.secret.is_none() => {
                anyhow::anyhow!("the secret file {} is empty", path.display())
            }
            _ => Failure::Usage(
                "--secret is empty: give the secret `serve --jwt-secret` was given".into(),
            )
            .into(),
        });
    }
    let summary = mint(args, secret.as_bytes(), SystemTime::now())?;
    reporter.summary(json::Summary::Token(&summary), || report::summary(&summary));
    Ok(Exit::Success)
}

/// The flags that belong to other shapes than `--claims`'s, refused by name.
fn check_shape_flags(args: &MintArgs) -> Result<(), Failure> {
    let shape = args.claims.unwrap_or_default();
    let misplaced = [
        ("--permission", !args.permissions.is_empty(), ClaimsArg::Pfa),
        (
            "--service-status",
            args.service_status.is_some(),
            ClaimsArg::Pfa,
        ),
    ];
    for (flag, given, only) in misplaced {
        if given && shape != only {
            return Err(Failure::Usage(format!(
                "{flag} applies to --claims pfa only (the original backend's shape)"
            )));
        }
    }
    if args.user.is_some() && shape == ClaimsArg::Simple {
        return Err(Failure::Usage(
            "--user applies to --claims pfa and ids; the simple shape has --subject".into(),
        ));
    }
    if shape == ClaimsArg::Pfa && args.orgs.iter().any(|o| o == ALL_ORGS) {
        return Err(Failure::Usage(
            "--claims pfa lists its organizations: '*' needs --claims simple, or --claims ids (role admin)".into(),
        ));
    }
    Ok(())
}

/// `org-rio` → `RIO`: the organizationCode of a minted `pfa` entry.
fn org_code(org: &str) -> String {
    org.strip_prefix("org-").unwrap_or(org).to_uppercase()
}

/// The organization claims of `args.claims`, in the order the original backend
/// writes them (user first, then the organizations).
fn shape_claims(args: &MintArgs, claims: &mut Map<String, Value>) {
    let user = args.user.as_deref().unwrap_or(DEFAULT_USER);
    let real: Vec<&String> = args.orgs.iter().filter(|o| *o != ALL_ORGS).collect();
    match args.claims.unwrap_or_default() {
        ClaimsArg::Simple => {
            claims.insert(ORG_CLAIM.into(), org_claim(&args.orgs));
        }
        ClaimsArg::Pfa => {
            let granted: &[&str] = if args.permissions.is_empty() {
                &DEFAULT_PERMISSIONS
            } else {
                &args.permissions
            };
            let permissions: Map<String, Value> = PERMISSIONS
                .iter()
                .map(|p| (p.to_string(), Value::Bool(granted.contains(p))))
                .collect();
            let status = args.service_status.unwrap_or(ServiceStatusArg::Active);
            claims.insert("userId".into(), user.into());
            claims.insert("username".into(), user.into());
            claims.insert("email".into(), Value::Null);
            claims.insert("authProvider".into(), "local".into());
            claims.insert(SERVICE_STATUS_CLAIM.into(), status.name().into());
            let orgs: Vec<Value> = real
                .iter()
                .map(|org| {
                    json!({
                        "organizationId": org,
                        "organizationCode": org_code(org),
                        "role": "member",
                        "permissions": permissions,
                    })
                })
                .collect();
            claims.insert(ORGANIZATIONS_CLAIM.into(), orgs.into());
        }
        ClaimsArg::Ids => {
            let admin = real.len() < args.orgs.len();
            claims.insert("userId".into(), user.into());
            claims.insert("username".into(), user.into());
            claims.insert(
                "role".into(),
                if admin { ADMIN_ROLE } else { "user" }.into(),
            );
            let ids: Vec<Value> = real.iter().map(|o| Value::from(o.as_str())).collect();
            claims.insert(ORGANIZATION_IDS_CLAIM.into(), ids.into());
        }
    }
}

/// Signs the claims `args` describe, as of `now`.
pub fn mint(args: &MintArgs, secret: &[u8], now: SystemTime) -> anyhow::Result<TokenSummary> {
    if args.orgs.iter().any(|o| o.trim().is_empty()) {
        return Err(Failure::Usage("--org must not be empty".into()).into());
    }
    check_shape_flags(args)?;
    let iat = now
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let ttl = args.ttl.unwrap_or(DEFAULT_TTL);
    let exp = iat.saturating_add(ttl.as_secs().max(1));
    let mut claims = Map::new();
    shape_claims(args, &mut claims);
    claims.insert("iat".into(), iat.into());
    claims.insert("exp".into(), exp.into());
    if let Some(delay) = args.not_before {
        claims.insert("nbf".into(), (iat + delay.as_secs()).into());
    }
    for (name, value) in [
        ("iss", &args.issuer),
        ("aud", &args.audience),
        ("sub", &args.subject),
    ] {
        if let Some(value) = value {
            claims.insert(name.into(), value.clone().into());
        }
    }
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .context("failed to sign the token")?;
    let expires_at =
        chrono::DateTime::from_timestamp(exp as i64, 0).context("the expiry is out of range")?;
    Ok(TokenSummary {
        token,
        algorithm: "HS256".into(),
        claims,
        expires_at: Timestamp(expires_at),
    })
}

/// The token `inspect` was given: the argument, stdin for `-`, else SYNCPROBE_TOKEN.
fn token_to_inspect(args: &InspectArgs) -> anyhow::Result<String> {
    let text = match args.token.as_deref() {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_STDIN_TOKEN)
                .read_to_string(&mut text)
                .context("failed to read the token from stdin")?;
            text
        }
        Some(token) => token.to_string(),
        None => std::env::var(TOKEN_VARIABLE).unwrap_or_default(),
    };
    let text = text.trim();
    let text = match text.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => text,
    };
    if text.is_empty() {
        return Err(Failure::Usage(format!(
            "no token to inspect: give it as an argument, `-` to read stdin, or set {TOKEN_VARIABLE}"
        ))
        .into());
    }
    Ok(text.to_string())
}

fn inspect(args: &InspectArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    let token = token_to_inspect(args)?;
    let decoded = claims::decode_unverified(&token).map_err(Failure::Usage)?;
    let now = SystemTime::now();
    let inspection = inspection(&decoded, args.org.as_deref(), now);
    reporter.summary(json::Summary::TokenInspect(&inspection), || {
        report::inspection(&inspection, now)
    });
    Ok(if inspection.usable {
        Exit::Success
    } else {
        Exit::ExpectationFailed
    })
}

/// A time claim: `Ok(None)` when absent, an error when it is not a number of seconds.
fn time_claim(claims: &Value, name: &str) -> Result<Option<Timestamp>, String> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_f64()
            .and_then(|secs| chrono::DateTime::from_timestamp(secs as i64, 0))
            .map(|at| Some(Timestamp(at)))
            .ok_or_else(|| format!("its {name} claim is not a time (seconds since 1970)")),
    }
}

fn text_claim(claims: &Value, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(String::from)
}

/// What a decoded token says, and whether it is usable (for `org`) at `now`.
pub fn inspection(
    decoded: &claims::Unverified,
    org: Option<&str>,
    now: SystemTime,
) -> TokenInspection {
    let c = &decoded.claims;
    let algorithm = decoded
        .header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or("(none given)")
        .to_string();
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    if algorithm.eq_ignore_ascii_case("none") || algorithm == "(none given)" {
        problems.push("it is unsigned (alg none): servers refuse it".to_string());
    }
    let mut times = [None, None, None];
    for (slot, name) in times.iter_mut().zip(["iat", "nbf", "exp"]) {
        match time_claim(c, name) {
            Ok(at) => *slot = at,
            Err(why) => problems.push(why),
        }
    }
    let [issued_at, not_before, expires_at] = times;
    let instant = |at: &Timestamp| -> SystemTime { at.0.into() };
    match &expires_at {
        Some(at) if instant(at) <= now => problems.push(format!(
            "it expired {} ago",
            rounded(now.duration_since(instant(at)).unwrap_or_default())
        )),
        None if c.get("exp").is_none_or(Value::is_null) => {
            problems.push("it has no exp: serve refuses tokens that never expire".into());
        }
        _ => {}
    }
    if let Some(at) = &not_before
        && instant(at) > now
    {
        problems.push(format!(
            "it is not valid yet: nbf is in {}",
            rounded(instant(at).duration_since(now).unwrap_or_default())
        ));
    }
    let access = claims::read_access(c);
    let organizations = match &access {
        Ok(access) => access.orgs.iter().map(inspected_org).collect(),
        Err(_) => Vec::new(),
    };
    match &access {
        Err(why) => problems.push(why.clone()),
        Ok(access) => {
            if !access.active() {
                problems.push(format!(
                    "its serviceStatus is {:?}: serve refuses accounts that are not active",
                    access.service_status.as_deref().unwrap_or_default()
                ));
            }
            if let Some(org) = org {
                org_verdict(access, org, &mut problems, &mut notes);
            } else if !access.all && access.orgs.is_empty() {
                problems.push("it allows no organization (the list is empty)".into());
            }
        }
    }
    let shape = access.as_ref().ok().map(|a| a.shape.name().to_string());
    let all_organizations = access.as_ref().is_ok_and(|a| a.all);
    TokenInspection {
        algorithm,
        shape,
        subject: text_claim(c, "sub"),
        user_id: text_claim(c, "userId"),
        username: text_claim(c, "username"),
        email: text_claim(c, "email"),
        service_status: access.ok().and_then(|a| a.service_status),
        all_organizations,
        organizations,
        issued_at,
        not_before,
        expires_at,
        issuer: text_claim(c, "iss"),
        audience: c.get("aud").filter(|v| !v.is_null()).cloned(),
        org: org.map(String::from),
        usable: problems.is_empty(),
        problems,
        notes,
    }
}

fn rounded(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(1)))
}

fn inspected_org(org: &claims::OrgEntry) -> InspectedOrg {
    InspectedOrg {
        organization_id: org.id.clone(),
        organization_code: org.code.clone(),
        role: org.role.clone(),
        permissions: org
            .permissions
            .as_ref()
            .map(|p| p.iter().cloned().collect()),
    }
}

/// Whether `access` allows `org`, and what `serve` would still refuse there.
fn org_verdict(
    access: &claims::Access,
    org: &str,
    problems: &mut Vec<String>,
    notes: &mut Vec<String>,
) {
    if !access.allows(org) {
        let named: Vec<&str> = access.orgs.iter().map(|o| o.id.as_str()).collect();
        let list = if named.is_empty() {
            "none".to_string()
        } else {
            named.join(", ")
        };
        problems.push(format!(
            "it does not allow organization {org:?} (it allows: {list})"
        ));
        return;
    }
    let entry = access.orgs.iter().find(|o| o.id == org);
    if let Some(granted) = entry.and_then(|o| o.permissions.as_ref())
        && !granted.contains(PERM_SYNC)
    {
        notes.push(format!(
            "it lacks {PERM_SYNC} in {org:?}: sockets open, but write-sync and conflict resolution get 403 \"Sync permission required\""
        ));
    }
    if access.shape == ClaimShape::Ids && access.all {
        notes.push("role admin: every organization".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{JwtConfig, verify};
    use clap::Parser;

    fn args(extra: &[&str]) -> MintArgs {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            token: MintArgs,
        }
        let mut argv = vec!["x", "--secret", "s"];
        argv.extend_from_slice(extra);
        Wrapper::try_parse_from(argv).unwrap().token
    }

    #[test]
    fn minted_tokens_verify_with_the_same_secret() {
        let summary = mint(
            &args(&["--org", "org-a", "--org", "org-b"]),
            b"s",
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(summary.claims["org"], serde_json::json!(["org-a", "org-b"]));
        let exp = summary.claims["exp"].as_u64().unwrap();
        assert_eq!(exp - summary.claims["iat"].as_u64().unwrap(), 3600);
        let grant = verify(&JwtConfig::hs256(b"s").unwrap(), &summary.token).unwrap();
        assert!(grant.allows("org-b") && !grant.allows("org-c"));
        assert!(verify(&JwtConfig::hs256(b"other").unwrap(), &summary.token).is_err());
    }

    #[test]
    fn wildcard_and_optional_claims() {
        let summary = mint(
            &args(&[
                "--org",
                "x",
                "--org",
                "*",
                "--ttl",
                "5m",
                "--issuer",
                "i",
                "--audience",
                "a",
                "--subject",
                "s",
                "--not-before",
                "1m",
            ]),
            b"s",
            UNIX_EPOCH + Duration::from_secs(1_000_000),
        )
        .unwrap();
        let c = &summary.claims;
        assert_eq!(c["org"], "*");
        assert_eq!(c["exp"], 1_000_300);
        assert_eq!(c["nbf"], 1_000_060);
        assert_eq!(
            (&c["iss"], &c["aud"], &c["sub"]),
            (&"i".into(), &"a".into(), &"s".into())
        );
        assert_eq!(summary.expires_at.to_string(), "1970-01-12T13:51:40.000Z");
    }

    #[test]
    fn pfa_and_ids_shapes() {
        let at = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let pfa = mint(
            &args(&[
                "--claims",
                "pfa",
                "--org",
                "org-rio",
                "--permission",
                "Read",
                "--user",
                "u-7",
            ]),
            b"s",
            at,
        )
        .unwrap();
        let keys: Vec<&str> = pfa.claims.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "userId",
                "username",
                "email",
                "authProvider",
                "serviceStatus",
                "organizations",
                "iat",
                "exp"
            ]
        );
        let entry = &pfa.claims["organizations"][0];
        assert_eq!(
            (&entry["organizationCode"], &entry["role"]),
            (&json!("RIO"), &json!("member"))
        );
        let flags = entry["permissions"].as_object().unwrap();
        assert_eq!(flags.len(), 16);
        assert_eq!(
            (&flags["perm_Read"], &flags["perm_Sync"]),
            (&json!(true), &json!(false))
        );

        let ids = mint(&args(&["--claims", "ids", "--org", "*"]), b"s", at).unwrap();
        assert_eq!(
            (&ids.claims["role"], &ids.claims["organizationIds"]),
            (&json!("admin"), &json!([]))
        );

        for bad in [
            &["--org", "o", "--permission", "perm_Sync"][..],
            &[
                "--org",
                "o",
                "--claims",
                "ids",
                "--service-status",
                "locked",
            ],
            &["--org", "o", "--user", "u"],
            &["--org", "*", "--claims", "pfa"],
        ] {
            let error = mint(&args(bad), b"s", at).unwrap_err();
            assert!(
                matches!(error.downcast_ref(), Some(Failure::Usage(_))),
                "{bad:?}: {error}"
            );
        }
        assert!(parse_permission("perm_sync").is_ok() && parse_permission("perm_Fly").is_err());
    }
}
