//! `syncprobe replay`: a session recorded from `serve` with `watch-sync --record`
//! replays to a `watch-sync` with the same events; `--speed` scales the spacing;
//! `?since=` resumes with exactly the rest; every client gets its own stream;
//! `--loop`, `--org`, `--step`; HAR files import; bad files and bad flags fail clearly.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use syncprobe::report::replay::ReplaySummary;
use tokio::io::AsyncReadExt;

use crate::support::*;

/// The time the hand-written recordings start at (µs since the epoch).
const T0: u64 = 1_764_324_000_000_000;

/// A watch-sync recording of `org`: CONNECTED at 0, then `(ms, type, pfaId)`.
fn recording(dir: &Path, org: &str, events: &[(u64, &str, &str)]) -> PathBuf {
    let path = dir.join(format!("{org}.ndjson"));
    let line = |ms: u64, frame: Value| {
        json!({"receivedAt": "2025-11-28T10:00:00.000Z", "receivedAtUs": T0 + ms * 1000, "frame": frame})
            .to_string()
    };
    let mut lines = vec![line(
        0,
        json!({"type": "CONNECTED", "organizationId": org, "timestamp": "2025-11-28T10:00:00.000Z", "seq": 40, "epoch": "old"}),
    )];
    for (i, (ms, kind, pfa)) in events.iter().enumerate() {
        lines.push(line(
            *ms,
            json!({"type": kind, "organizationId": org, "pfaId": pfa,
                   "timestamp": "2025-11-28T10:00:00.000Z", "seq": 41 + i as u64}),
        ));
    }
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// Five events, no waits between them.
fn five(dir: &Path, org: &str) -> PathBuf {
    recording(
        dir,
        org,
        &[
            (0, "SYNC_QUEUED", "P-1"),
            (0, "SYNC_PROCESSING", "P-1"),
            (0, "SYNC_SUCCESS", "P-1"),
            (0, "SYNC_QUEUED", "P-2"),
            (0, "SYNC_PROCESSING", "P-2"),
        ],
    )
}

/// A replay of `file` on a free port, and its `ws://` base URL.
async fn replay(file: &Path, extra: &[&str]) -> (Running, String) {
    let mut args = vec![
        "replay",
        file.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--json",
    ];
    args.extend(extra);
    let mut run = spawn_cli(&args);
    let listening = run
        .wait_for("listening", |r| r["type"] == "listening")
        .await;
    let url = listening["data"]["url"].as_str().unwrap().to_string();
    (run, url)
}

/// Stops a replay with Ctrl-C: exit 0 and its summary.
async fn stop(run: Running) -> ReplaySummary {
    run.interrupt().await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    summary_of(&finished.records)
}

/// `(type, pfaId)` of every event record but CONNECTED.
fn events_of(records: &[Value]) -> Vec<(String, String)> {
    data_of(records, "event")
        .into_iter()
        .filter(|e| e["type"] != "CONNECTED")
        .map(|e| {
            (
                e["type"].as_str().unwrap().into(),
                e["pfaId"].as_str().unwrap_or("").into(),
            )
        })
        .collect()
}

/// The next `n` frames of a socket.
async fn frames(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(next_json(ws).await);
    }
    out
}

fn seqs(frames: &[Value]) -> Vec<u64> {
    frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect()
}

fn pfas(frames: &[Value]) -> Vec<&str> {
    frames
        .iter()
        .map(|f| f["pfaId"].as_str().unwrap())
        .collect()
}

/// Nothing but pings for a while.
async fn silent(ws: &mut Ws, for_: Duration) {
    let quiet = tokio::time::timeout(for_, async {
        loop {
            match ws.next().await {
                Some(Ok(m)) if m.is_ping() || m.is_pong() => continue,
                other => return other,
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "expected nothing, got {quiet:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_recorded_from_serve_replays_to_watch_sync_with_the_same_events() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.ndjson");
    let mut watch = spawn_cli(&[
        "watch-sync",
        "org-rec",
        "--url",
        &server.base(),
        "--count",
        "6",
        "--timeout",
        "10s",
        "--record",
        path.to_str().unwrap(),
        "--json",
    ]);
    watch.wait_for_connected().await;
    let body = json!({"organizationId": "org-rec", "count": 2, "outcome": "success"});
    let (status, answer) = post(&server.http("/api/pems/write-sync"), &body.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    let original = watch.finish().await;
    assert_eq!(original.code(), Some(0), "{}", original.stderr);
    let recorded = events_of(&original.records);
    assert_eq!(recorded.len(), 6, "{recorded:?}");

    let (run, url) = replay(&path, &["--speed", "max"]).await;
    let out = run_cli(&[
        "watch-sync",
        "org-rec",
        "--url",
        &url,
        "--count",
        "6",
        "--timeout",
        "10s",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let replayed = records(&out);
    assert_eq!(events_of(&replayed), recorded);
    let frames = data_of(&replayed, "event");
    assert_eq!(frames[0]["type"], "CONNECTED");
    assert_eq!(frames[0]["seq"], 0);
    assert!(frames[0]["epoch"].as_str().unwrap().starts_with("replay-"));
    let numbered: Vec<u64> = frames[1..]
        .iter()
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(numbered, [1, 2, 3, 4, 5, 6]);
    let summary = stop(run).await;
    assert_eq!((summary.sessions, summary.frames_sent), (1, 6));
    assert_eq!(summary.organizations[0].organization_id, "org-rec");
    assert_eq!(summary.organizations[0].events, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speed_scales_the_recorded_spacing() {
    let dir = tempfile::tempdir().unwrap();
    let path = recording(
        dir.path(),
        "org-s",
        &[(0, "SYNC_QUEUED", "P"), (400, "SYNC_PROCESSING", "P")],
    );
    let gap = |speed: &'static str| {
        let path = path.clone();
        async move {
            let (run, url) = replay(&path, &["--speed", speed]).await;
            let mut ws = connect(&format!("{url}/api/ws/sync/org-s")).await;
            assert_eq!(next_json(&mut ws).await["type"], "CONNECTED");
            next_json(&mut ws).await;
            let first = Instant::now();
            next_json(&mut ws).await;
            let gap = first.elapsed();
            stop(run).await;
            gap
        }
    };
    let fast = gap("4").await;
    assert!(
        fast >= Duration::from_millis(70) && fast < Duration::from_millis(300),
        "400 ms at --speed 4: {fast:?}"
    );
    let recorded = gap("1").await;
    assert!(
        recorded >= Duration::from_millis(350),
        "at --speed 1: {recorded:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_with_since_gets_exactly_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (run, url) = replay(&five(dir.path(), "org-r"), &["--speed", "max"]).await;
    let sync = format!("{url}/api/ws/sync/org-r");
    let mut ws = connect(&sync).await;
    let connected = next_json(&mut ws).await;
    assert_eq!(connected["historyTruncated"], Value::Null);
    let epoch = connected["epoch"].as_str().unwrap().to_string();
    let seen = frames(&mut ws, 2).await;
    assert_eq!(seqs(&seen), [1, 2]);
    drop(ws);

    let mut ws = connect(&format!("{sync}?since=2&epoch={epoch}")).await;
    let connected = next_json(&mut ws).await;
    assert_eq!(
        (
            connected["seq"].as_u64(),
            connected["historyTruncated"].as_bool()
        ),
        (Some(2), Some(false))
    );
    let rest = frames(&mut ws, 3).await;
    assert_eq!(seqs(&rest), [3, 4, 5]);
    assert_eq!(pfas(&rest), ["P-1", "P-2", "P-2"]);
    assert_eq!(rest[0]["type"], "SYNC_SUCCESS");
    silent(&mut ws, Duration::from_millis(300)).await;

    // Another run's epoch, or a seq never given out: everything, from the start.
    for query in ["since=2&epoch=other", "since=9"] {
        let mut ws = connect(&format!("{sync}?{query}")).await;
        let connected = next_json(&mut ws).await;
        assert_eq!(connected["historyTruncated"], true, "{query}");
        assert_eq!(connected["seq"], 0, "{query}");
        assert_eq!(seqs(&frames(&mut ws, 5).await), [1, 2, 3, 4, 5]);
    }
    // watch-sync's own resume accepts the replay's numbering.
    let out = run_cli(&[
        "watch-sync",
        "org-r",
        "--url",
        &url,
        "--since",
        "3",
        "--count",
        "2",
        "--timeout",
        "5s",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let events = events_of(&records(&out));
    assert_eq!(events[0], ("SYNC_QUEUED".to_string(), "P-2".to_string()));
    stop(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_gets_the_whole_stream_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = recording(
        dir.path(),
        "org-two",
        &[
            (0, "SYNC_QUEUED", "P-1"),
            (100, "SYNC_SUCCESS", "P-1"),
            (200, "SYNC_QUEUED", "P-2"),
        ],
    );
    let (run, url) = replay(&path, &[]).await;
    let sync = format!("{url}/api/ws/sync/org-two");
    let (mut a, mut b) = (connect(&sync).await, connect(&sync).await);
    let (fa, fb) = tokio::join!(frames(&mut a, 4), frames(&mut b, 4));
    for got in [&fa, &fb] {
        assert_eq!(got[0]["type"], "CONNECTED");
        assert_eq!(got[0]["organizationId"], "org-two");
        assert_eq!(seqs(&got[1..]), [1, 2, 3]);
        assert_eq!(pfas(&got[1..]), ["P-1", "P-1", "P-2"]);
    }
    assert_eq!(fa[0]["epoch"], fb[0]["epoch"]);
    let summary = stop(run).await;
    assert_eq!((summary.sessions, summary.frames_sent), (2, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_starts_over_and_the_numbering_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = recording(
        dir.path(),
        "org-l",
        &[(0, "SYNC_QUEUED", "A"), (5, "SYNC_SUCCESS", "B")],
    );
    let (run, url) = replay(&path, &["--loop", "--speed", "max"]).await;
    let mut ws = connect(&format!("{url}/api/ws/sync/org-l")).await;
    next_json(&mut ws).await;
    let got = frames(&mut ws, 5).await;
    assert_eq!(seqs(&got), [1, 2, 3, 4, 5]);
    assert_eq!(pfas(&got), ["A", "B", "A", "B", "A"]);
    drop(ws);
    // Without --loop the stream ends and the socket stays open.
    let (plain, url) = replay(&path, &["--speed", "max"]).await;
    let mut ws = connect(&format!("{url}/api/ws/sync/org-l")).await;
    assert_eq!(frames(&mut ws, 3).await.len(), 3);
    silent(&mut ws, Duration::from_millis(300)).await;
    stop(plain).await;
    stop(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_recorded_organization_is_served_unless_org_renames_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = five(dir.path(), "org-rec");
    let (run, url) = replay(&path, &["--speed", "max"]).await;
    let out = run_cli(&["connect", "org-other", "--url", &url]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));
    stop(run).await;

    let (run, url) = replay(&path, &["--speed", "max", "--org", "org-new"]).await;
    let mut ws = connect(&format!("{url}/api/ws/sync/org-new")).await;
    let got = frames(&mut ws, 6).await;
    assert!(
        got.iter().all(|f| f["organizationId"] == "org-new"),
        "{got:?}"
    );
    let out = run_cli(&["connect", "org-rec", "--url", &url]).await;
    assert_eq!(out.status.code(), Some(3));
    stop(run).await;
}

/// A HAR file as Chrome exports it: an HTTP entry, the sync socket (sent and
/// received messages, a binary one) and a socket on another path.
fn har(dir: &Path) -> PathBuf {
    let t = 1_764_324_000.0;
    let message = |kind: &str, dt: f64, data: Value| json!({"type": kind, "time": t + dt, "opcode": 1, "data": data.to_string()});
    let har = json!({"log": {"version": "1.2", "creator": {"name": "WebInspector"}, "entries": [
        {"request": {"method": "GET", "url": "http://h/api/pems/sync-status?organizationId=org-h"},
         "response": {"status": 200, "content": {"text": "{}"}}},
        {"request": {"method": "GET", "url": "ws://h:3000/api/ws/sync/org-h"},
         "_resourceType": "websocket",
         "_webSocketMessages": [
            message("receive", 0.0, json!({"type": "CONNECTED", "organizationId": "org-h", "timestamp": "2025-11-28T10:00:00.000Z"})),
            message("send", 0.1, json!({"hello": 1})),
            message("receive", 0.2, json!({"type": "SYNC_QUEUED", "organizationId": "org-h", "pfaId": "H-1", "timestamp": "2025-11-28T10:00:00.200Z"})),
            {"type": "receive", "time": t + 0.25, "opcode": 2, "data": "AAEC"},
            message("receive", 0.3, json!({"type": "SYNC_SUCCESS", "organizationId": "org-h", "pfaId": "H-1", "timestamp": "2025-11-28T10:00:00.300Z", "details": {"newVersion": 2}})),
         ]},
        {"request": {"method": "GET", "url": "ws://h:3000/api/ws/echo"},
         "_webSocketMessages": [message("receive", 0.1, json!({"type": "SYNC_FAILED", "pfaId": "X"}))]},
    ]}});
    let path = dir.join("capture.har");
    std::fs::write(&path, serde_json::to_string_pretty(&har).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_har_file_replays_its_received_sync_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (run, url) = replay(&har(dir.path()), &["--speed", "max"]).await;
    let out = run_cli(&[
        "watch-sync",
        "org-h",
        "--url",
        &url,
        "--count",
        "2",
        "--timeout",
        "5s",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        events_of(&records(&out)),
        [
            ("SYNC_QUEUED".to_string(), "H-1".to_string()),
            ("SYNC_SUCCESS".to_string(), "H-1".to_string())
        ]
    );
    let summary = stop(run).await;
    assert_eq!(summary.format, syncprobe::server::replay::Format::Har);
    assert_eq!(summary.organizations[0].frames, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_sends_a_frame_per_enter() {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let path = five(dir.path(), "org-step");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncprobe"))
        .args([
            "replay",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--step",
        ])
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let listening: Value = serde_json::from_str(&line).unwrap();
    let url = listening["data"]["url"].as_str().unwrap();
    let mut ws = connect(&format!("{url}/api/ws/sync/org-step")).await;
    assert_eq!(next_json(&mut ws).await["type"], "CONNECTED");
    silent(&mut ws, Duration::from_millis(300)).await;
    stdin.write_all(b"\n").await.unwrap();
    assert_eq!(seqs(&frames(&mut ws, 1).await), [1]);
    silent(&mut ws, Duration::from_millis(300)).await;
    // Stdin ends: the rest plays at its speed.
    drop(stdin);
    assert_eq!(seqs(&frames(&mut ws, 4).await), [2, 3, 4, 5]);
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status();
    assert!(killed.await.unwrap().success());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(
        err.contains("step: session 1: frame 1 of 5 (SYNC_QUEUED P-1) waits: press Enter"),
        "{err}"
    );
    assert!(err.contains("stdin ended: --step is over"), "{err}");
}

#[tokio::test]
async fn malformed_files_are_one_error_line_and_exit_6() {
    let dir = tempfile::tempdir().unwrap();
    let good = five(dir.path(), "org-m");
    let mut text = std::fs::read_to_string(&good).unwrap();
    text.push_str("{\"receivedAtUs\": 1, \"frame\": \n");
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, text).unwrap();
    let huge = dir.path().join("huge.ndjson");
    let frame = json!({"type": "X", "blob": "x".repeat(5000)});
    std::fs::write(
        &huge,
        json!({"receivedAtUs": 1, "frame": frame}).to_string(),
    )
    .unwrap();
    let broken_har = dir.path().join("broken.har");
    std::fs::write(&broken_har, "{\"log\": {\"entries\": [ {\"request\": }]}}").unwrap();
    let missing = dir.path().join("missing.ndjson");
    let cases: [(&Path, &[&str], &str); 4] = [
        (
            &bad,
            &[],
            "bad.ndjson: line 7: not a watch-sync record line",
        ),
        (
            &huge,
            &["--max-message-size", "1000"],
            "huge.ndjson: line 1: the frame is",
        ),
        (&broken_har, &[], "broken.har: not a HAR file"),
        (&missing, &[], "failed to open the recording"),
    ];
    for (file, extra, wanted) in cases {
        let mut args = vec!["replay", file.to_str().unwrap(), "--listen", "127.0.0.1:0"];
        args.extend(extra);
        let out = run_cli(&args).await;
        assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("syncprobe: error: ") && err.contains(wanted),
            "{err}"
        );
    }
}

#[tokio::test]
async fn bad_speeds_and_orgs_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = five(dir.path(), "org-u");
    for speed in ["-1", "NaN", "inf", "fast"] {
        let out = run_cli(&["replay", path.to_str().unwrap(), "--speed", speed]).await;
        assert_eq!(out.status.code(), Some(2), "{speed}: {}", stderr(&out));
        assert!(stderr(&out).contains("not a speed"), "{}", stderr(&out));
    }
    let out = run_cli(&["replay", path.to_str().unwrap(), "--org", "a/b"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
