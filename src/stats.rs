//! Reading an organization's connection count out of a backend's `/api/ws/stats`,
//! whatever its shape. The endpoint is not part of the original protocol, so
//! backends shape it as they like:
//!
//! ```text
//! {"organizations":{"org-rio":1}}                       serve
//! {"organizations":1,"connectionsByOrganization":{"org-rio":1}}
//! {"rooms":[{"organizationId":"org-rio","clients":1}]}
//! {"orgs":[["org-rio",1]]}
//! ```
//!
//! [`org_connections`] looks for the organization anywhere in the JSON: a key equal
//! to its id with a number (or an object holding a count), an object entry naming it
//! with a count, or an `[id, count]` pair. When it is not found, whether the shape is
//! still one that lists organizations (an object of counts keyed by organization ids
//! under a key that says "org" or "room") decides between "not listed" and "unknown
//! shape". The walk is bounded in depth and in nodes.

use serde_json::{Map, Value};

/// Deepest level looked at.
const MAX_DEPTH: usize = 8;
/// Most JSON nodes looked at.
const MAX_NODES: usize = 10_000;
/// Keys whose number is an entry's count.
const COUNT_KEYS: &[&str] = &[
    "connections",
    "connectionCount",
    "activeConnections",
    "count",
    "clients",
    "clientCount",
    "sockets",
    "subscribers",
    "total",
];
/// Keys whose string names an entry's organization.
const NAME_KEYS: &[&str] = &[
    "organizationId",
    "organization",
    "orgId",
    "org",
    "room",
    "id",
    "name",
];

/// What `/api/ws/stats` says about one organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrgStats {
    /// Its connection count, and where it was found (`connectionsByOrganization`).
    Listed { connections: u64, at: String },
    /// The stats list organizations (under `at`), but not this one.
    NotListed { at: String, others: usize },
    /// No per-organization figures in a shape this reader knows; the top-level keys.
    Unknown { keys: Vec<String> },
}

/// The organization's figures in `stats` (see the module doc).
pub fn org_connections(stats: &Value, org: &str) -> OrgStats {
    let mut nodes = 0;
    if let Some((connections, at)) = find(stats, org, "", 0, &mut nodes) {
        return OrgStats::Listed { connections, at };
    }
    let mut nodes = 0;
    if let Some((at, others)) = org_map(stats, "", 0, &mut nodes) {
        return OrgStats::NotListed { at, others };
    }
    let keys = match stats {
        Value::Object(map) => map.keys().take(20).cloned().collect(),
        _ => Vec::new(),
    };
    OrgStats::Unknown { keys }
}

/// The `totalConnections` figure, when the stats have one at the top.
pub fn total_connections(stats: &Value) -> Option<u64> {
    ["totalConnections", "connections", "total"]
        .iter()
        .find_map(|k| stats.get(k).and_then(Value::as_u64))
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A count: a number, or an object holding one under a count key.
fn count_of(value: &Value) -> Option<u64> {
    match value {
        Value::Number(_) => value.as_u64(),
        Value::Object(map) => COUNT_KEYS
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_u64)),
        _ => None,
    }
}

/// An object entry naming `org` with a count.
fn entry_count(map: &Map<String, Value>, org: &str) -> Option<u64> {
    let names_it = NAME_KEYS
        .iter()
        .any(|k| map.get(*k).and_then(Value::as_str) == Some(org));
    if !names_it {
        return None;
    }
    COUNT_KEYS
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_u64))
}

/// Breadth of the walk: each node looked at once, within the bounds.
fn find(
    value: &Value,
    org: &str,
    path: &str,
    depth: usize,
    nodes: &mut usize,
) -> Option<(u64, String)> {
    *nodes += 1;
    if depth > MAX_DEPTH || *nodes > MAX_NODES {
        return None;
    }
    match value {
        Value::Object(map) => {
            if let Some(n) = map.get(org).and_then(count_of) {
                return Some((n, child(path, org)));
            }
            if let Some(n) = entry_count(map, org) {
                return Some((n, path.to_string()));
            }
            map.iter()
                .find_map(|(k, v)| find(v, org, &child(path, k), depth + 1, nodes))
        }
        Value::Array(items) => {
            if let [Value::String(name), count] = items.as_slice()
                && name == org
                && let Some(n) = count.as_u64()
            {
                return Some((n, path.to_string()));
            }
            items
                .iter()
                .find_map(|v| find(v, org, &format!("{path}[]"), depth + 1, nodes))
        }
        _ => None,
    }
}

/// An object of counts keyed by organization ids, under a key that says so.
fn org_map(value: &Value, path: &str, depth: usize, nodes: &mut usize) -> Option<(String, usize)> {
    *nodes += 1;
    if depth > MAX_DEPTH || *nodes > MAX_NODES {
        return None;
    }
    let Value::Object(map) = value else {
        return None;
    };
    for (key, v) in map {
        let lower = key.to_ascii_lowercase();
        let says_org = lower.contains("org") || lower.contains("room");
        if says_org
            && let Value::Object(inner) = v
            && inner.values().all(|c| count_of(c).is_some())
        {
            return Some((child(path, key), inner.len()));
        }
    }
    map.iter()
        .find_map(|(k, v)| org_map(v, &child(path, k), depth + 1, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listed(stats: Value) -> Option<u64> {
        match org_connections(&stats, "org-rio") {
            OrgStats::Listed { connections, .. } => Some(connections),
            _ => None,
        }
    }

    #[test]
    fn the_count_is_found_in_every_known_shape() {
        assert_eq!(listed(json!({"organizations": {"org-rio": 2}})), Some(2));
        assert_eq!(
            listed(json!({"totalConnections": 1, "organizations": 1,
                "connectionsByOrganization": {"org-rio": 1}})),
            Some(1)
        );
        assert_eq!(
            listed(json!({"rooms": [{"organizationId": "org-a", "clients": 4},
                {"organizationId": "org-rio", "clients": 3}]})),
            Some(3)
        );
        assert_eq!(
            listed(json!({"orgs": [["org-a", 1], ["org-rio", 5]]})),
            Some(5)
        );
        assert_eq!(
            listed(json!({"byOrg": {"org-rio": {"connections": 7, "events": 100}}})),
            Some(7)
        );
    }

    #[test]
    fn a_list_without_the_organization_is_told_from_an_unknown_shape() {
        assert_eq!(
            org_connections(&json!({"organizations": {"org-a": 1}}), "org-rio"),
            OrgStats::NotListed {
                at: "organizations".into(),
                others: 1
            }
        );
        assert_eq!(
            org_connections(&json!({"uptime": 3, "memory": {"rss": 1}}), "org-rio"),
            OrgStats::Unknown {
                keys: vec!["uptime".into(), "memory".into()]
            }
        );
        assert!(matches!(
            org_connections(&json!("ok"), "org-rio"),
            OrgStats::Unknown { .. }
        ));
        assert_eq!(total_connections(&json!({"totalConnections": 4})), Some(4));
    }

    #[test]
    fn the_walk_is_bounded() {
        let mut deep = json!({"org-rio": 1});
        for _ in 0..(MAX_DEPTH + 2) {
            deep = json!({ "x": deep });
        }
        assert!(matches!(
            org_connections(&deep, "org-rio"),
            OrgStats::Unknown { .. }
        ));
    }
}
