//! The records of `status` and their text: an organization's queue figures
//! (`GET /api/pems/sync-status`) and, where the backend has it, its line of
//! `/api/ws/stats`. Times are shown in local time with how long ago (or how soon).

use serde::{Deserialize, Serialize};

use super::human::{self, BOLD, DIM, GREEN, RED, YELLOW, paint};
use crate::protocol::{Health, SyncStatus};
use crate::text::{MAX_COLUMN, MAX_SHOWN, shown};

/// One look at an organization: the `status` record (one per refresh).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub organization_id: String,
    /// When the figures were read (UTC).
    pub at: String,
    /// The answer of `GET /api/pems/sync-status`, as the backend gave it.
    pub sync_status: SyncStatus,
    /// Items waiting or in progress: `totalQueued + processing`.
    pub backlog: u64,
    /// Open sockets of the organization, when `/api/ws/stats` says.
    pub connections: Option<u64>,
    /// Open sockets in all, when `/api/ws/stats` says.
    pub total_connections: Option<u64>,
    /// Why the connection figures are missing, when they are.
    pub stats_note: Option<String>,
    /// `false` when every count is zero, no sync ever happened and no socket is open:
    /// the backend knows nothing of the organization.
    pub activity: bool,
}

/// The `summary` record of `status`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusSummary {
    /// Healthy or degraded, and some activity recorded.
    pub ok: bool,
    pub organization_id: String,
    /// Looks taken (refreshes that failed included).
    pub refreshes: u64,
    /// Refreshes that failed (shown as warnings).
    pub failed_refreshes: u64,
    /// The last health read, if any read succeeded.
    pub health: Option<Health>,
}

/// A health word, coloured.
pub fn health_word(health: Health) -> String {
    match health {
        Health::Healthy => paint(GREEN, "● healthy"),
        Health::Degraded => paint(YELLOW, "▲ degraded"),
        Health::Unhealthy => paint(RED, "✗ unhealthy"),
    }
}

/// `2026-12-01 23:40:01 +01:00 (3m ago)` for an ISO 8601 time; the text escaped
/// as it came when it is not one.
pub fn local_time(iso: &str) -> String {
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(iso) else {
        return shown(iso, MAX_COLUMN);
    };
    let local = at.with_timezone(&chrono::Local);
    let delta = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    let secs = delta.num_seconds();
    let span = humantime::format_duration(std::time::Duration::from_secs(secs.unsigned_abs()));
    let relative = match secs {
        0 => "now".to_string(),
        s if s > 0 => format!("in {span}"),
        _ => format!("{span} ago"),
    };
    format!("{} ({relative})", local.format("%Y-%m-%d %H:%M:%S %:z"))
}

/// The figures as a few lines.
pub fn report(r: &StatusReport) -> String {
    let s = &r.sync_status;
    let org = shown(&r.organization_id, MAX_COLUMN);
    let mut out = format!(
        "{}  {}  success rate {}%\n",
        paint(BOLD, &org),
        health_word(s.health),
        s.success_rate
    );
    let conflicts = s
        .extra
        .get("conflicts")
        .and_then(|v| v.as_u64())
        .map_or(String::new(), |n| format!(" · conflicts {n}"));
    out.push_str(&format!(
        "  queue      backlog {} (queued {} · processing {}) · completed {} · failed {}{conflicts}\n",
        r.backlog, s.total_queued, s.processing, s.completed, s.failed
    ));
    let avg = s
        .avg_sync_time
        .map_or("-".to_string(), |ms| human::ms(ms as f64));
    out.push_str(&format!("  avg sync   {avg}\n"));
    let when = |t: &Option<crate::protocol::Timestamp>| {
        t.map_or("-".to_string(), |t| local_time(&t.to_string()))
    };
    out.push_str(&format!("  last sync  {}\n", when(&s.last_sync_at)));
    out.push_str(&format!("  next sync  {}\n", when(&s.next_sync_at)));
    let sockets = match (r.connections, &r.stats_note) {
        (Some(n), _) => {
            let total = r
                .total_connections
                .map_or(String::new(), |t| format!(" (of {t} in total)"));
            format!("{}{total}", crate::text::count(n, "open socket"))
        }
        (None, Some(note)) => paint(DIM, format!("unknown: {}", shown(note, MAX_SHOWN))),
        (None, None) => paint(DIM, "unknown"),
    };
    out.push_str(&format!("  sockets    {sockets}\n"));
    if !r.activity {
        out.push_str(&format!(
            "{}\n",
            paint(
                YELLOW,
                format!("no activity recorded for {org} — check the id")
            )
        ));
    }
    out
}

/// The summary after `--watch` (one line; nothing after a single look).
pub fn summary(s: &StatusSummary) -> String {
    if s.refreshes <= 1 && s.failed_refreshes == 0 {
        return String::new();
    }
    let failed = if s.failed_refreshes > 0 {
        format!(", {} failed", s.failed_refreshes)
    } else {
        String::new()
    };
    let plural = if s.refreshes == 1 { "" } else { "es" };
    format!(
        "{} refresh{plural}{failed}; last health {}\n",
        s.refreshes,
        s.health.map_or("-".to_string(), health_word)
    )
}

/// A refresh of `--watch` that failed (the watch goes on).
pub fn refresh_failed(error: &anyhow::Error) -> String {
    format!("refresh failed: {error:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_local_and_relative() {
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc3339();
        assert!(
            local_time(&soon).contains("(in 1m"),
            "{}",
            local_time(&soon)
        );
        let past = (chrono::Utc::now() - chrono::Duration::seconds(3600)).to_rfc3339();
        assert!(local_time(&past).contains("ago)"), "{}", local_time(&past));
        assert_eq!(local_time("not a time\u{1b}"), "not a time\\u{1b}");
    }
}
