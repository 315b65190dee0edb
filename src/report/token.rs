//! The records and human text of `token`: the minted token ([`TokenSummary`]) and
//! what `token inspect` decoded ([`TokenInspection`]). Claims are peer data: every
//! string of them is escaped and clamped before it reaches a terminal. Neither the
//! inspected token nor its signature is ever part of the output.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::human::{GREEN, RED, YELLOW, paint};
use crate::protocol::Timestamp;
use crate::text::{MAX_COLUMN, MAX_SHOWN, shown};

/// The `summary` record of `token`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenSummary {
    pub token: String,
    pub algorithm: String,
    /// The signed claims.
    pub claims: Map<String, Value>,
    pub expires_at: Timestamp,
}

/// The token alone on its line, ready for `--token "$(syncprobe token …)"`.
pub fn summary(s: &TokenSummary) -> String {
    format!("{}\n", s.token)
}

/// The `summary` record of `token inspect`: the token decoded, not verified.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenInspection {
    /// The header's `alg` (`none` for an unsigned token).
    pub algorithm: String,
    /// `simple`, `pfa` or `ids`; `null` when the claims name no organization.
    pub shape: Option<String>,
    pub subject: Option<String>,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    pub service_status: Option<String>,
    /// `org: "*"`, or `role: "admin"` with `organizationIds`.
    pub all_organizations: bool,
    pub organizations: Vec<InspectedOrg>,
    pub issued_at: Option<Timestamp>,
    pub not_before: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub issuer: Option<String>,
    /// `aud` as the token has it (a string or an array).
    pub audience: Option<Value>,
    /// The organization asked about (`--org`).
    pub org: Option<String>,
    /// Whether the token is usable (for `org`, when asked): `problems` is empty.
    pub usable: bool,
    /// Why it is not usable.
    pub problems: Vec<String>,
    /// Worth knowing, without making it unusable (a missing `perm_Sync`).
    pub notes: Vec<String>,
}

/// One organization of an inspected token.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InspectedOrg {
    pub organization_id: String,
    pub organization_code: Option<String>,
    pub role: Option<String>,
    /// The flags set to `true`; `null` when the entry carries no permissions.
    pub permissions: Option<Vec<String>>,
}

/// `2026-12-01 23:30:00 +01:00 (expires in 55m)`: a claim's time in local time,
/// relative to `now`.
fn when(at: &Timestamp, now: SystemTime, past: &str, future: &str) -> String {
    let local = at.0.with_timezone(&chrono::Local);
    let at_time: SystemTime = at.0.into();
    let relative = match at_time.duration_since(now) {
        Ok(ahead) if ahead.as_secs() > 0 => format!("{future} in {}", rounded(ahead)),
        Err(e) if e.duration().as_secs() > 0 => format!("{past} {} ago", rounded(e.duration())),
        _ => format!("{past} just now"),
    };
    format!("{} ({relative})", local.format("%Y-%m-%d %H:%M:%S %:z"))
}

fn rounded(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}

fn org_line(org: &InspectedOrg) -> String {
    let mut line = shown(&org.organization_id, MAX_COLUMN);
    let labels: Vec<String> = [&org.organization_code, &org.role]
        .into_iter()
        .flatten()
        .map(|s| shown(s, MAX_COLUMN))
        .collect();
    if !labels.is_empty() {
        line.push_str(&format!(" ({})", labels.join(", ")));
    }
    if let Some(permissions) = &org.permissions {
        let list: Vec<String> = permissions.iter().map(|p| shown(p, MAX_COLUMN)).collect();
        let list = if list.is_empty() {
            "no permissions".to_string()
        } else {
            list.join(", ")
        };
        line.push_str(&format!(": {list}"));
    }
    line
}

/// What `token inspect` decoded, one field a line, then the verdict.
pub fn inspection(s: &TokenInspection, now: SystemTime) -> String {
    let mut rows: Vec<(&str, String)> = vec![("algorithm", shown(&s.algorithm, MAX_COLUMN))];
    let shape = match s.shape.as_deref() {
        Some("simple") => "simple (org claim)",
        Some("pfa") => "pfa (organizations[] with permissions)",
        Some("ids") => "ids (organizationIds[] and role)",
        _ => "none (no organization claim)",
    };
    rows.push(("shape", shape.to_string()));
    for (name, value) in [
        ("subject", &s.subject),
        ("userId", &s.user_id),
        ("username", &s.username),
        ("email", &s.email),
        ("serviceStatus", &s.service_status),
        ("issuer", &s.issuer),
    ] {
        if let Some(value) = value {
            rows.push((name, shown(value, MAX_SHOWN)));
        }
    }
    if let Some(audience) = &s.audience {
        rows.push(("audience", shown(&audience.to_string(), MAX_SHOWN)));
    }
    let mut orgs: Vec<String> = s.organizations.iter().map(org_line).collect();
    if s.all_organizations {
        orgs.insert(0, "every organization".to_string());
    }
    if orgs.is_empty() {
        orgs.push("none".to_string());
    }
    for (i, line) in orgs.into_iter().enumerate() {
        rows.push((if i == 0 { "organizations" } else { "" }, line));
    }
    for (name, at, past, future) in [
        ("issued", &s.issued_at, "issued", "issued"),
        ("not before", &s.not_before, "valid since", "valid"),
        ("expires", &s.expires_at, "expired", "expires"),
    ] {
        if let Some(at) = at {
            rows.push((name, when(at, now, past, future)));
        }
    }
    let mut text = String::from("token (decoded, not verified: the signature was not checked)\n");
    for (name, value) in rows {
        text.push_str(&format!("  {name:<14} {value}\n"));
    }
    text.push_str(&verdict(s));
    text
}

fn verdict(s: &TokenInspection) -> String {
    let target = match &s.org {
        Some(org) => format!(" for {}", shown(org, MAX_COLUMN)),
        None => String::new(),
    };
    let mut text = if s.usable {
        format!("{} usable{target}\n", paint(GREEN, "✓"))
    } else {
        format!("{} not usable{target}\n", paint(RED, "✗"))
    };
    for problem in &s.problems {
        text.push_str(&format!(
            "  {} {}\n",
            paint(RED, "-"),
            shown(problem, MAX_SHOWN)
        ));
    }
    for note in &s.notes {
        text.push_str(&format!(
            "  {} {}\n",
            paint(YELLOW, "!"),
            shown(note, MAX_SHOWN)
        ));
    }
    text
}
