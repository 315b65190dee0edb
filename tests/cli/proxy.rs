//! `syncprobe proxy` in front of `serve` (and of a small HTTP upstream for the
//! bandwidth test): network faults seen by a client (latency in the connect time,
//! bandwidth in a transfer), message faults seen by `watch-sync` (a dropped event is
//! a gap for `--fail-on-gap`, a duplicate is reported), scheduled cuts survived by a
//! reconnecting watch, refused upgrades, the control API, reproducible decisions,
//! and the usage errors of fault specs.

use std::time::{Duration, Instant};

use futures_util::SinkExt;

use serde_json::{Value, json};
use syncprobe::report::json::Open;
use syncprobe::report::watch::{WatchOutcome, WatchSummary};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

/// A running proxy and where it listens.
struct Proxy {
    run: Running,
    /// `ws://ADDR`.
    base: String,
    /// `http://ADDR` of the control API, with `--control`.
    control: Option<String>,
}

/// Starts `syncprobe proxy` on a free port in front of `upstream`.
async fn start_proxy(upstream: &str, extra: &[&str]) -> Proxy {
    let mut args = vec![
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        upstream,
        "--json",
    ];
    args.extend_from_slice(extra);
    let mut run = spawn_cli(&args);
    let listening = run
        .wait_for("listening", |r| r["type"] == "listening")
        .await;
    let base = listening["data"]["url"].as_str().unwrap().to_string();
    assert!(base.starts_with("ws://127.0.0.1:"), "{listening}");
    let control = if extra.contains(&"--control") {
        let record = run
            .wait_for("the control API's listening", |r| r["type"] == "listening")
            .await;
        Some(record["data"]["url"].as_str().unwrap().to_string())
    } else {
        None
    };
    Proxy { run, base, control }
}

/// The `type` and `seq` of every event record after CONNECTED.
fn seqs(records: &[Value]) -> Vec<(String, u64)> {
    data_of(records, "event")
        .iter()
        .filter(|e| e["type"] != "CONNECTED")
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn watch_args<'a>(org: &'a str, base: &'a str, count: &'a str) -> Vec<&'a str> {
    vec![
        "watch-sync",
        org,
        "--url",
        base,
        "--count",
        count,
        "--timeout",
        "20s",
        "--json",
    ]
}

async fn open_ms(base: &str, org: &str) -> f64 {
    let output = run_cli(&["connect", org, "--url", base, "--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let opens: Vec<Open> = data_of(&records(&output), "open")
        .into_iter()
        .map(typed)
        .collect();
    assert_eq!(opens.len(), 1);
    opens[0].open_ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_shows_in_the_connect_time() {
    let server = TestServer::start().await;
    let plain = start_proxy(&server.base(), &[]).await;
    let slow = start_proxy(&server.base(), &["--latency", "150ms"]).await;
    let fast = open_ms(&plain.base, "org-lat").await;
    // The upgrade request waits 150 ms on the way up, the answer 150 ms down.
    let delayed = open_ms(&slow.base, "org-lat").await;
    assert!(fast < 150.0, "without latency: {fast} ms");
    assert!(delayed >= 300.0, "with 150 ms each way: {delayed} ms");
    assert!(delayed < 2000.0, "{delayed} ms");
    drop((plain.run, slow.run));
}

/// An HTTP upstream with a 1 MB answer at `/big`.
async fn big_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/big",
        axum::routing::get(|| async { vec![b'x'; 1_000_000] }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_limits_a_transfer_to_the_rate() {
    let upstream = big_upstream().await;
    // 4 Mbit/s is 500,000 bytes a second: 1 MB takes 2 s.
    let proxy = start_proxy(&upstream, &["--bandwidth", "4mbit:down"]).await;
    let addr = proxy.base.trim_start_matches("ws://").to_string();
    let (head, took) = tokio::time::timeout(Duration::from_secs(30), timed_get(&addr))
        .await
        .expect("the transfer did not end in time");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // From the first byte to the last, so that the setup (and a busy machine's
    // start-up) does not count; the first burst (0.1 s) is within the margin.
    assert!(
        (1.6..=2.4).contains(&took),
        "1 MB at 500 kB/s took {took:.2} s"
    );
}

/// GET /big over a plain socket: the answer's head, and the seconds from its first
/// byte to the last of the 1 MB body.
async fn timed_get(addr: &str) -> (String, f64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /big HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut first = None;
    loop {
        let n = socket.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        first.get_or_insert_with(Instant::now);
        received.extend_from_slice(&buf[..n]);
    }
    let took = first.expect("no answer").elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&received);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert_eq!(body.len(), 1_000_000, "{head}");
    (head.to_string(), took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_processing_is_a_gap_that_fail_on_gap_fails() {
    let server = TestServer::start().await;
    let proxy = start_proxy(&server.base(), &["--drop", "SYNC_PROCESSING"]).await;
    let org = "org-drop";
    let mut strict_args = watch_args(org, &proxy.base, "2");
    strict_args.push("--fail-on-gap");
    let mut strict = spawn_cli(&strict_args);
    let mut lenient = spawn_cli(&watch_args(org, &proxy.base, "2"));
    strict.wait_for_connected().await;
    lenient.wait_for_connected().await;
    publish(&server, org, "SYNC_QUEUED", "pfa-1", json!(null), 1).await;
    publish(&server, org, "SYNC_PROCESSING", "pfa-1", json!(null), 1).await;
    publish(
        &server,
        org,
        "SYNC_SUCCESS",
        "pfa-1",
        json!({"newVersion": 2}),
        1,
    )
    .await;
    let strict = strict.finish().await;
    assert_eq!(strict.code(), Some(1), "{}", strict.stderr);
    assert!(
        strict.stderr.contains("--fail-on-gap") && strict.stderr.contains("1 seq gap"),
        "{}",
        strict.stderr
    );
    let summary: WatchSummary = summary_of(&strict.records);
    assert_eq!(summary.outcome, WatchOutcome::Failed);
    let lenient = lenient.finish().await;
    assert_eq!(lenient.code(), Some(0), "{}", lenient.stderr);
    assert_eq!(
        seqs(&lenient.records),
        [
            ("SYNC_QUEUED".to_string(), 1),
            ("SYNC_SUCCESS".to_string(), 3)
        ]
    );
    let summary: WatchSummary = summary_of(&lenient.records);
    assert_eq!(summary.outcome, WatchOutcome::Count);
    let seq = summary.check.seq.unwrap();
    assert_eq!((seq.gaps, seq.missing), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_success_is_reported_as_a_duplicate() {
    let server = TestServer::start().await;
    let proxy = start_proxy(&server.base(), &["--duplicate", "success"]).await;
    let org = "org-dup";
    let mut run = spawn_cli(&watch_args(org, &proxy.base, "3"));
    run.wait_for_connected().await;
    publish(&server, org, "SYNC_QUEUED", "pfa-1", json!(null), 1).await;
    publish(
        &server,
        org,
        "SYNC_SUCCESS",
        "pfa-1",
        json!({"newVersion": 2}),
        1,
    )
    .await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    assert_eq!(
        seqs(&finished.records),
        [
            ("SYNC_QUEUED".to_string(), 1),
            ("SYNC_SUCCESS".to_string(), 2),
            ("SYNC_SUCCESS".to_string(), 2)
        ]
    );
    let warnings = data_of(&finished.records, "warning");
    assert!(
        warnings
            .iter()
            .any(|w| w["message"].as_str().unwrap().contains("duplicate")),
        "{warnings:?}"
    );
    let seq = summary_of::<WatchSummary>(&finished.records)
        .check
        .seq
        .unwrap();
    assert_eq!((seq.duplicates, seq.gaps), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_cuts_leave_a_reconnecting_watch_with_every_event_once() {
    let server = TestServer::start().await;
    let proxy = start_proxy(
        &server.base(),
        &["--cut-every", "600ms", "--cut-for", "200ms"],
    )
    .await;
    let org = "org-cuts";
    let mut args = watch_args(org, &proxy.base, "40");
    args.extend_from_slice(&[
        "--reconnect",
        "--reconnect-base",
        "50ms",
        "--reconnect-cap",
        "200ms",
        "--reconnect-attempts",
        "0",
        "--connect-timeout",
        "2s",
        "--fail-on-gap",
    ]);
    let mut run = spawn_cli(&args);
    run.wait_for_connected().await;
    // 40 events at 20 a second: two seconds, three cuts or so.
    let body = json!({
        "organizationId": org, "type": "SYNC_PROCESSING", "pfaId": "pfa-1",
        "count": 40, "ratePerSec": 20,
    });
    let (status, answer) = post(&server.http("/api/ws/publish"), &body.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let numbers: Vec<u64> = seqs(&finished.records)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(numbers, (1..=40).collect::<Vec<_>>(), "all 40, none twice");
    let summary: WatchSummary = summary_of(&finished.records);
    assert!(
        summary.check.reconnects >= 1,
        "the cuts were survived by reconnecting: {:?}",
        summary.check.reconnects
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upgrade_exits_3_with_the_status() {
    let server = TestServer::start().await;
    let proxy = start_proxy(&server.base(), &["--refuse-upgrade", "503:1"]).await;
    let output = run_cli(&["connect", "org-r", "--url", &proxy.base]).await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("503"), "{}", stderr(&output));
    // Plain HTTP goes through untouched.
    let (status, _) = get(&format!(
        "{}/healthz",
        proxy.base.replace("ws://", "http://")
    ))
    .await;
    let (direct, _) = get(&server.http("/healthz")).await;
    assert_eq!(status, direct);
}

async fn control_call(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn wait_for_seq(run: &mut Running, seq: u64) {
    run.wait_for(&format!("seq {seq}"), |r| {
        r["type"] == "event" && r["data"]["seq"] == seq
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_turns_faults_on_and_off_mid_run() {
    use reqwest::Method;
    let server = TestServer::start().await;
    let proxy = start_proxy(&server.base(), &["--control", "127.0.0.1:0"]).await;
    let control = proxy.control.clone().unwrap();
    let org = "org-ctl";
    // Seq 2 is dropped: three events arrive.
    let mut args = watch_args(org, &proxy.base, "3");
    args.extend_from_slice(&[
        "--reconnect",
        "--reconnect-base",
        "50ms",
        "--reconnect-attempts",
        "0",
    ]);
    let mut run = spawn_cli(&args);
    run.wait_for_connected().await;
    publish(&server, org, "SYNC_QUEUED", "pfa-1", json!(null), 1).await;
    wait_for_seq(&mut run, 1).await;

    let (status, body) = control_call(
        Method::POST,
        &format!("{control}/faults"),
        Some(json!({"fault": "drop", "value": "PROCESSING"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_u64()
        .unwrap();
    let (_, listing) = control_call(Method::GET, &format!("{control}/faults"), None).await;
    let listing: Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(listing["faults"][0]["fault"], "drop", "{listing}");
    assert_eq!(listing["offline"], false);
    // seq 2 is dropped; seq 3 (another type) shows that it went past the proxy.
    publish(&server, org, "SYNC_PROCESSING", "pfa-1", json!(null), 1).await;
    publish(&server, org, "SYNC_QUEUED", "pfa-2", json!(null), 1).await;
    wait_for_seq(&mut run, 3).await;
    let (status, _) = control_call(Method::DELETE, &format!("{control}/faults/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = control_call(Method::DELETE, &format!("{control}/faults/{id}"), None).await;
    assert_eq!(status, 404);

    // "Toggle wifi": offline drops the socket, online lets the watch back in.
    let (status, _) = control_call(Method::POST, &format!("{control}/offline"), None).await;
    assert_eq!(status, 204);
    run.wait_for("the lost connection", |r| {
        r["type"] == "close" || r["type"] == "warning"
    })
    .await;
    let (status, _) = control_call(Method::POST, &format!("{control}/online"), None).await;
    assert_eq!(status, 204);
    run.wait_for_connected().await;
    publish(&server, org, "SYNC_PROCESSING", "pfa-2", json!(null), 1).await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    assert_eq!(
        seqs(&finished.records),
        [
            ("SYNC_QUEUED".to_string(), 1),
            ("SYNC_QUEUED".to_string(), 3),
            ("SYNC_PROCESSING".to_string(), 4)
        ]
    );
    let (status, body) = control_call(
        Method::POST,
        &format!("{control}/faults"),
        Some(json!({"fault": "drop", "value": "SUCCES"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("did you mean SUCCESS"), "{body}");
}

/// One run of a seeded proxy with random drops and duplicates: the decision log,
/// without its times.
async fn seeded_decisions(seed: &str, log: &std::path::Path) -> Vec<Value> {
    let server = TestServer::start().await;
    let log_arg = log.to_str().unwrap();
    let proxy = start_proxy(
        &server.base(),
        &[
            "--seed",
            seed,
            "--drop",
            "PROCESSING:0.5",
            "--duplicate",
            "QUEUED:0.5",
            "--log",
            log_arg,
        ],
    )
    .await;
    let org = "org-seed";
    let mut ws = connect(&format!("{}/api/ws/sync/{org}", proxy.base)).await;
    assert_eq!(next_json(&mut ws).await["type"], "CONNECTED");
    publish(&server, org, "SYNC_PROCESSING", "pfa-1", json!(null), 20).await;
    publish(&server, org, "SYNC_QUEUED", "pfa-1", json!(null), 20).await;
    publish(
        &server,
        org,
        "SYNC_SUCCESS",
        "pfa-1",
        json!({"newVersion": 2}),
        1,
    )
    .await;
    // SUCCESS is not faulted: once it is here, every decision has been made.
    while next_json(&mut ws).await["type"] != "SYNC_SUCCESS" {}
    drop(ws);
    drop(proxy.run);
    let text = std::fs::read_to_string(log).unwrap();
    text.lines()
        .map(|line| {
            let mut v: Value = serde_json::from_str(line).unwrap();
            assert!(v["time"].is_string(), "{v}");
            v.as_object_mut().unwrap().remove("time");
            v
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_decision_log() {
    let dir = tempfile::tempdir().unwrap();
    let first = seeded_decisions("42", &dir.path().join("a.ndjson")).await;
    let second = seeded_decisions("42", &dir.path().join("b.ndjson")).await;
    let other = seeded_decisions("43", &dir.path().join("c.ndjson")).await;
    assert!(first.len() > 5, "{first:?}");
    let drops = first.iter().filter(|d| d["fault"] == "drop").count();
    assert!(0 < drops && drops < 20, "about half dropped: {first:?}");
    assert!(
        first
            .iter()
            .all(|d| d["connection"] == 1 && d["seq"].is_u64())
    );
    assert_eq!(first, second);
    assert_ne!(first, other);
}

#[tokio::test]
async fn bad_fault_specs_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["--drop", "SYNC_SUCCES"], "did you mean SYNC_SUCCESS"),
        (&["--duplicate", "SYNC_QUEUED:2"], "probability"),
        (&["--latency", "5"], "500ms"),
        (&["--latency", "5s:sideways"], "direction"),
        (&["--bandwidth", "fast"], "rate"),
        (&["--delay", "SYNC_SUCCESS"], "TYPE:DURATION"),
        (&["--close-after", "3:1005"], "close code"),
        (&["--refuse-upgrade", "200"], "400-599"),
        (&["--reorder", "1.5"], "probability"),
        (&["--profile", "dial-up"], "slow-3g"),
        (&["--cut-every", "1s"], "--cut-for"),
        (&["--where", "pfaId=x"], "--where needs a fault"),
    ];
    for (extra, wanted) in cases {
        let mut args = vec![
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "ws://127.0.0.1:9",
        ];
        args.extend_from_slice(extra);
        let output = run_cli(&args).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{extra:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(wanted),
            "{extra:?}: {}",
            stderr(&output)
        );
    }
    let output = run_cli(&["proxy", "--upstream", "ftp://x"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_after_closes_the_socket_with_the_code() {
    let server = TestServer::start().await;
    let proxy = start_proxy(&server.base(), &["--close-after", "2:4000"]).await;
    let org = "org-close";
    let mut ws = connect(&format!("{}/api/ws/sync/{org}", proxy.base)).await;
    assert_eq!(next_json(&mut ws).await["type"], "CONNECTED");
    publish(&server, org, "SYNC_QUEUED", "pfa-1", json!(null), 3).await;
    assert_eq!(next_json(&mut ws).await["seq"], 1);
    let frame = next_close(&mut ws).await;
    assert_eq!(u16::from(frame.code), 4000);
    let _ = ws.send(Message::Close(None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_peer_makes_the_connect_fail() {
    let server = TestServer::start().await;
    let proxy = start_proxy(&server.base(), &["--reset-peer"]).await;
    let output = run_cli(&[
        "connect",
        "org-rst",
        "--url",
        &proxy.base,
        "--connect-timeout",
        "3s",
    ])
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
}
