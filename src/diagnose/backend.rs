//! `status`: the organization's figures from the REST API (`sync-status`, and the
//! stats line where the backend has one), with "no activity recorded" and the
//! organizations whose id differs only by case or punctuation.

use serde_json::Value;
use tokio::time::Instant;

use super::{Layer, Plan};
use crate::client::error::http_status;
use crate::client::http::Api;
use crate::stats::OrgStats;

/// Most JSON nodes looked at for similar organization ids.
const MAX_NODES: usize = 5_000;

/// `status` (see the module doc). REST trouble is a warning: the socket does not
/// depend on it.
pub async fn status(plan: &Plan) -> Layer {
    let started = Instant::now();
    let org = &plan.endpoint.org;
    let api = match Api::new(&plan.endpoint, &plan.options, plan.timeout) {
        Ok(api) => api,
        Err(e) => return Layer::skip("status", format!("no REST client: {e:#}")),
    };
    let figures = match api.sync_status(org).await {
        Ok(figures) => figures,
        Err(e) => {
            let detail = format!("GET sync-status failed: {e:#}");
            return match http_status(&e) {
                Some(404) => Layer::skip(
                    "status",
                    "the backend has no GET /api/pems/sync-status (404)",
                ),
                Some(401 | 403) => Layer::warn(
                    "status",
                    started.elapsed(),
                    detail,
                    "the REST API refused the token: it may need other permissions than the socket",
                ),
                _ => Layer::warn(
                    "status",
                    started.elapsed(),
                    detail,
                    "the REST API is not reachable as derived from the socket URL: pass --api-url",
                ),
            };
        }
    };
    let stats = api.stats().await.ok();
    let sockets = stats
        .as_ref()
        .map_or(String::new(), |s| sockets_text(s, org));
    let health = serde_json::to_value(figures.health)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let detail = format!(
        "queued {}, processing {}, completed {}, failed {}, health {health}, last sync {}{sockets}",
        figures.total_queued,
        figures.processing,
        figures.completed,
        figures.failed,
        figures
            .last_sync_at
            .as_ref()
            .map_or("never".to_string(), |t| t
                .0
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()),
    );
    let idle = figures.total_queued + figures.processing + figures.completed + figures.failed == 0
        && figures.last_sync_at.is_none();
    if idle {
        let similar = stats
            .as_ref()
            .map(|s| similar_ids(s, org))
            .unwrap_or_default();
        let hint = match similar.first() {
            Some(other) => format!(
                "did you mean {other}? the backend knows an organization whose id differs only by case or punctuation"
            ),
            None => format!("check the organization id: nothing was ever queued for {org}"),
        };
        let detail = format!("no activity recorded for {org}: {detail}");
        return Layer::warn("status", started.elapsed(), detail, hint);
    }
    Layer::pass("status", started.elapsed(), detail)
}

fn sockets_text(stats: &Value, org: &str) -> String {
    match crate::stats::org_connections(stats, org) {
        OrgStats::Listed { connections, .. } => {
            format!("; {} open", crate::text::count(connections, "socket"))
        }
        OrgStats::NotListed { others, .. } => {
            format!("; stats list {others} other organizations, not this one")
        }
        OrgStats::Unknown { .. } => String::new(),
    }
}

/// An id without case or punctuation, for comparing.
fn folded(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Keys and strings of `stats` that fold to the same id as `org` but differ.
fn similar_ids(stats: &Value, org: &str) -> Vec<String> {
    let target = folded(org);
    let mut found = Vec::new();
    let mut stack = vec![stats];
    let mut nodes = 0;
    while let Some(value) = stack.pop() {
        nodes += 1;
        if nodes > MAX_NODES {
            break;
        }
        let mut consider = |s: &str| {
            if s != org && folded(s) == target && !found.iter().any(|f| f == s) {
                found.push(crate::text::shown(s, 80));
            }
        };
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    consider(key);
                    stack.push(v);
                }
            }
            Value::Array(items) => stack.extend(items),
            Value::String(s) => consider(s),
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_differ_by_case_or_punctuation_are_found() {
        let stats = serde_json::json!({"organizations": {"org-Acme": 2, "org-rio": 1}});
        assert_eq!(similar_ids(&stats, "org_acme"), ["org-Acme"]);
        assert!(similar_ids(&stats, "org-rio").is_empty());
    }
}
