//! `/metrics` as operations see it: bounded label sets, requests by route, and the
//! alert rules shipped in `docs/alerts.yml`, checked with the real `promtool` against
//! the series a real `serve` exposes.
//!
//! `.ci/run` installs promtool (Debian's `prometheus`); elsewhere the promtool tests say
//! they are skipped unless `CI` is set.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::support::*;

/// The lines of `/metrics` whose name is `name` (with labels), e.g. every
/// `syncprobe_ws_connections{…} N`.
fn series<'a>(metrics: &'a str, name: &str) -> Vec<&'a str> {
    metrics
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

async fn scrape(server: &TestServer) -> String {
    let (status, metrics) = get(&server.http("/metrics")).await;
    assert_eq!(status, 200, "{metrics}");
    metrics
}

#[tokio::test]
async fn the_connection_gauge_names_the_busiest_organizations_and_sums_the_rest() {
    let mut config = fast_config();
    config.metrics_orgs = 2;
    let server = TestServer::with(config).await;
    let mut sockets = Vec::new();
    for (org, n) in [("org-a", 3), ("org-b", 2), ("org-c", 1), ("org-d", 1)] {
        for _ in 0..n {
            sockets.push((org, subscribe(&server, org).await.0));
        }
    }
    let metrics = scrape(&server).await;
    let gauge: BTreeSet<&str> = series(&metrics, "syncprobe_ws_connections")
        .into_iter()
        .collect();
    let wanted: BTreeSet<&str> = [
        r#"syncprobe_ws_connections{org="org-a"} 3"#,
        r#"syncprobe_ws_connections{org="org-b"} 2"#,
        r#"syncprobe_ws_connections{org="_other"} 2"#,
    ]
    .into_iter()
    .collect();
    assert_eq!(gauge, wanted, "{metrics}");

    // org-a's sockets close: it leaves the gauge (no zero-valued series is kept), and
    // the next busiest take its place (ties by id).
    let (closing, kept): (Vec<_>, Vec<_>) = sockets.into_iter().partition(|(o, _)| *o == "org-a");
    for (_, mut ws) in closing {
        ws.close(None).await.unwrap();
        let _ = next_message(&mut ws).await;
    }
    let wanted: BTreeSet<&str> = [
        r#"syncprobe_ws_connections{org="org-b"} 2"#,
        r#"syncprobe_ws_connections{org="org-c"} 1"#,
        r#"syncprobe_ws_connections{org="_other"} 1"#,
    ]
    .into_iter()
    .collect();
    let mut gauge = BTreeSet::new();
    for _ in 0..100 {
        let metrics = scrape(&server).await;
        gauge = series(&metrics, "syncprobe_ws_connections")
            .into_iter()
            .map(str::to_string)
            .collect();
        if gauge.iter().map(String::as_str).collect::<BTreeSet<_>>() == wanted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        gauge.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        wanted
    );
    drop(kept);
}

#[tokio::test]
async fn event_counters_label_the_first_organizations_and_count_the_rest_under_other() {
    let mut config = fast_config();
    config.metrics_orgs = 2;
    let server = TestServer::with(config).await;
    for org in ["org-a", "org-b", "org-c", "org-d"] {
        publish(&server, org, "SYNC_QUEUED", "p", json!(null), 1).await;
    }
    // org-a publishes again: it keeps its own series (counters only ever grow).
    publish(&server, "org-a", "SYNC_QUEUED", "p", json!(null), 2).await;
    let metrics = scrape(&server).await;
    let events: BTreeSet<&str> = series(&metrics, "syncprobe_events_published_total")
        .into_iter()
        .collect();
    let wanted: BTreeSet<&str> = [
        r#"syncprobe_events_published_total{org="org-a",type="SYNC_QUEUED"} 3"#,
        r#"syncprobe_events_published_total{org="org-b",type="SYNC_QUEUED"} 1"#,
        r#"syncprobe_events_published_total{org="_other",type="SYNC_QUEUED"} 2"#,
    ]
    .into_iter()
    .collect();
    assert_eq!(events, wanted, "{metrics}");
}

#[tokio::test]
async fn metrics_orgs_zero_puts_every_organization_under_other() {
    let mut config = fast_config();
    config.metrics_orgs = 0;
    let server = TestServer::with(config).await;
    let (_ws, _) = subscribe(&server, "org-a").await;
    publish(&server, "org-a", "SYNC_QUEUED", "p", json!(null), 1).await;
    let metrics = scrape(&server).await;
    assert!(!metrics.contains("org-a"), "{metrics}");
    assert!(
        metrics.contains(r#"syncprobe_ws_connections{org="_other"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status() {
    let server = TestServer::start().await;
    let (_ws, _) = subscribe(&server, "org-secret-id").await;
    get(&server.http("/healthz")).await;
    get(&server.http("/api/nope")).await;
    let (status, _) = post(&server.http("/api/pems/write-sync"), "{}").await;
    assert_eq!(status, 400);
    let metrics = scrape(&server).await;
    for line in [
        r#"syncprobe_http_requests_total{route="/api/ws/sync/{org}",status="101"} 1"#,
        r#"syncprobe_http_requests_total{route="/healthz",status="200"} 1"#,
        r#"syncprobe_http_requests_total{route="unmatched",status="404"} 1"#,
        r#"syncprobe_http_requests_total{route="/api/pems/write-sync",status="400"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }
    let requests = series(&metrics, "syncprobe_http_requests_total");
    assert!(
        requests.iter().all(|line| !line.contains("org-secret-id")),
        "a path became a label: {requests:?}"
    );
}

fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install promtool (Debian's prometheus package)"
        );
        eprintln!("skipped: promtool not found (apt-get install prometheus)");
        return None;
    }
    Some("promtool")
}

fn run_promtool(args: &[&str]) -> (bool, String) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_shipped_alert_rules_pass_promtool_check_and_their_unit_tests() {
    if promtool().is_none() {
        return;
    }
    let (ok, text) = run_promtool(&["check", "rules", "docs/alerts.yml"]);
    assert!(ok, "{text}");
    let (ok, text) = run_promtool(&["test", "rules", "tests/alerts/alerts_test.yml"]);
    assert!(ok, "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn promtool_test_rules_fails_when_an_alert_does_not_fire_as_expected() {
    // The unit tests can fail: the same rules with a firing case expected quiet.
    if promtool().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let broken = format!(
        r#"rule_files:
  - {}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'syncprobe_redis_up{{instance="b"}}'
        values: '0 0 0 0 0 0'
    alert_rule_test:
      - eval_time: 5m
        alertname: SyncRedisDown
        exp_alerts: []
"#,
        manifest.join("docs/alerts.yml").display()
    );
    let file = dir.path().join("broken_test.yml");
    std::fs::write(&file, broken).unwrap();
    let (ok, text) = run_promtool(&["test", "rules", file.to_str().unwrap()]);
    assert!(!ok, "a firing alert expected quiet must fail: {text}");
}

/// The metric names (without `_bucket`/`_count`/`_sum`) an expression refers to.
fn metric_names(rules: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in rules.match_indices("syncprobe_") {
        // Skip recording-rule names (`syncprobe:…`) and the text of annotations.
        let name: String = rules[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        names.insert(base.to_string());
    }
    names
}

/// The names of `names` that no line of the exposition `metrics` carries.
fn unexposed<'a>(names: &'a BTreeSet<String>, metrics: &str, skip: &[&str]) -> Vec<&'a String> {
    names
        .iter()
        .filter(|name| !skip.contains(&name.as_str()))
        .filter(|name| {
            !metrics.lines().any(|line| {
                line.strip_prefix(name.as_str()).is_some_and(|rest| {
                    ["{", " ", "_bucket", "_count"]
                        .iter()
                        .any(|next| rest.starts_with(next))
                })
            })
        })
        .collect()
}

fn alert_metric_names() -> BTreeSet<String> {
    let rules =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/alerts.yml"))
            .unwrap();
    let names = metric_names(&rules);
    assert!(
        names.contains("syncprobe_events_published_total"),
        "{names:?}"
    );
    assert!(names.contains("syncprobe_redis_up"), "{names:?}");
    names
}

/// Scrapes until `wanted` is in the exposition (bounded), then returns it.
async fn scrape_until(server: &TestServer, wanted: &str) -> String {
    let mut metrics = scrape(server).await;
    for _ in 0..100 {
        if metrics.contains(wanted) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        metrics = scrape(server).await;
    }
    metrics
}

#[tokio::test]
async fn every_metric_the_alert_rules_use_is_exposed_by_serve() {
    // A rule on a name serve does not expose would never fire: each one must exist.
    let names = alert_metric_names();
    let mut config = fast_config();
    config.max_queued_items = 1;
    config.worker.processing_time = std::time::Duration::from_secs(30);
    let server = TestServer::with(config).await;
    let (_ws, _) = subscribe(&server, "org-a").await;
    publish(
        &server,
        "org-a",
        "SYNC_FAILED",
        "p",
        json!({"error": "timeout", "retryCount": 3}),
        1,
    )
    .await;
    // A full queue counts a write-sync failure.
    let url = server.http("/api/pems/write-sync");
    let body = json!({"organizationId": "org-a", "count": 2}).to_string();
    assert_eq!(post(&url, &body).await.0, 503);
    // One socket closes, so that the disconnect counter has a series.
    let (mut closing, _) = subscribe(&server, "org-a").await;
    closing.close(None).await.unwrap();
    let _ = next_message(&mut closing).await;
    let metrics = scrape_until(&server, "syncprobe_ws_disconnects_total{").await;
    // Only `serve --redis` has these (checked against it below).
    let redis_only = ["syncprobe_redis_up", "syncprobe_pubsub_lag_seconds"];
    let missing = unexposed(&names, &metrics, &redis_only);
    assert!(missing.is_empty(), "not exposed: {missing:?}\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_alerts_use_metrics_that_serve_redis_exposes() {
    let names = alert_metric_names();
    let Some(redis) = crate::redis::RedisServer::start() else {
        return;
    };
    let mut config = fast_config();
    config.redis = Some(syncprobe::server::redis::RedisConfig::new(&redis.url()).unwrap());
    let server = TestServer::with(config).await;
    let (mut ws, _) = subscribe(&server, "org-r").await;
    publish(&server, "org-r", "SYNC_QUEUED", "p", json!(null), 1).await;
    assert_eq!(next_json(&mut ws).await["type"], "SYNC_QUEUED");
    let metrics = scrape_until(&server, "syncprobe_pubsub_lag_seconds_count 1").await;
    let wanted: BTreeSet<String> = ["syncprobe_redis_up", "syncprobe_pubsub_lag_seconds"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(wanted.is_subset(&names));
    let missing = unexposed(&wanted, &metrics, &[]);
    assert!(missing.is_empty(), "not exposed: {missing:?}\n{metrics}");
    assert!(metrics.contains("syncprobe_redis_up 1"), "{metrics}");
}
