//! `token`: mint an HS256 test token for a `serve` started with `--jwt-secret`, for
//! development and CI. Real deployments get their tokens from their identity
//! provider; this signs whatever it is asked to, with a shared secret.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Map;

use super::args::{parse_duration, positive_duration};
use crate::claims::{ORG_CLAIM, org_claim};
use crate::exit::{Exit, Failure};
use crate::protocol::Timestamp;
use crate::report::Reporter;
use crate::report::json;
use crate::report::token::{self as report, TokenSummary};

#[derive(Debug, Args)]
#[command(
    after_long_help = "Claims: org (one id as a string, several as an array, \"*\" for every
organization and the admin endpoint), iat, exp, and nbf, iss, aud, sub when given.

Examples:
  export SYNCPROBE_JWT_SECRET=dev-secret
  syncprobe serve &                                      # reads the same variable
  syncprobe smoke org-rio --url ws://127.0.0.1:3000 --token \"$(syncprobe token --org org-rio)\"
  syncprobe token --secret-file secret.txt --org org-a --org org-b --ttl 10m
  syncprobe token --org '*' --json | jq -r .data.token"
)]
pub struct TokenArgs {
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
    /// Lifetime: exp is now plus this
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = positive_duration)]
    pub ttl: Duration,
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
    let summary = mint(&args, secret.as_bytes(), SystemTime::now())?;
    reporter.summary(json::Summary::Token(&summary), || report::summary(&summary));
    Ok(Exit::Success)
}

/// Signs the claims `args` describe, as of `now`.
pub fn mint(args: &TokenArgs, secret: &[u8], now: SystemTime) -> anyhow::Result<TokenSummary> {
    if args.orgs.iter().any(|o| o.trim().is_empty()) {
        return Err(Failure::Usage("--org must not be empty".into()).into());
    }
    let iat = now
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let exp = iat.saturating_add(args.ttl.as_secs().max(1));
    let mut claims = Map::new();
    claims.insert(ORG_CLAIM.into(), org_claim(&args.orgs));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{JwtConfig, verify};
    use clap::Parser;

    fn args(extra: &[&str]) -> TokenArgs {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            token: TokenArgs,
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
}
