//! Organization ids: the syntax rule ([`check_org_syntax`]), the allow-list file
//! ([`OrgAllowList`]) and its reloadable form in a running server ([`AllowFile`]),
//! which open sessions watch so that a removed organization's sockets close (4403).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::http::StatusCode;
use tokio::sync::watch;

use crate::server::error::Refusal;

/// Longest organization id the syntax rule accepts.
pub const MAX_ORG_ID_LEN: usize = 128;

/// Whether organization ids must follow the syntax rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OrgIdSyntax {
    /// 1–128 characters from A-Z a-z 0-9 . _ : -, not `.` or `..`.
    #[default]
    Strict,
    /// Any non-empty id.
    Any,
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
    // A client cannot address these: URL paths resolve them as dot segments.
    if org == "." || org == ".." {
        return Err(format!("is a dot segment: {RULE}, and not . or .."));
    }
    if org.len() > MAX_ORG_ID_LEN {
        return Err(format!("has {} characters: {RULE}", org.len()));
    }
    Ok(())
}

/// The refusal of an id that breaks the syntax rule (400, naming the field).
pub fn malformed_org(org: &str, why: String) -> Refusal {
    let mut refusal = Refusal::new(
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
        "org_malformed",
        format!("organizationId {org:?} {why}"),
    );
    refusal.field = Some("organizationId");
    refusal
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

/// The organizations allowed now, as sessions watch them.
pub type AllowedOrgs = Arc<HashSet<String>>;

/// The allow-list of a running server: the file it reloads from and the current
/// list, published to every session.
pub struct AllowFile {
    path: PathBuf,
    orgs: watch::Sender<AllowedOrgs>,
}

impl AllowFile {
    pub fn new(list: &OrgAllowList) -> AllowFile {
        AllowFile {
            path: list.path.clone(),
            orgs: watch::Sender::new(Arc::new(list.orgs.clone())),
        }
    }

    pub fn allows(&self, org: &str) -> bool {
        self.orgs.borrow().contains(org)
    }

    /// Follows the changes of the list (for one session).
    pub fn subscribe(&self) -> watch::Receiver<AllowedOrgs> {
        self.orgs.subscribe()
    }

    /// Re-reads the file; on a read error the old list stays.
    pub fn read(&self) -> anyhow::Result<OrgAllowList> {
        OrgAllowList::load(&self.path)
    }

    /// Makes `orgs` the list; sessions of organizations no longer on it close.
    pub fn replace(&self, orgs: HashSet<String>) {
        self.orgs.send_replace(Arc::new(orgs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_syntax() {
        for ok in ["org-rio", "a", "A.b_c:d-9", &"x".repeat(128)] {
            assert_eq!(check_org_syntax(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "org a",
            "org/1",
            "é",
            "a%20b",
            &"x".repeat(129),
        ] {
            assert!(check_org_syntax(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allow_list_files() {
        let orgs = parse_allow_list("org-a\n  org-b  # the second\n\n# comment\norg-c#x\n");
        let expected: HashSet<String> = ["org-a", "org-b", "org-c"].map(String::from).into();
        assert_eq!(orgs, expected);
    }
}
