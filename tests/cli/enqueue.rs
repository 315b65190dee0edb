//! `enqueue` and `smoke`, against `serve` and against deliberately broken backends
//! written here: one that never sends the terminal event, one that leaks another
//! organization's events, one whose sync-status never changes, and a Part-1-only one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use syncprobe::protocol::{EventType, ProtocolPart, Timestamp};
use syncprobe::report::enqueue::{EnqueueOutcome, EnqueueSummary};
use syncprobe::report::smoke::{ServerKind, SmokeSummary, StepStatus};
use tokio::sync::broadcast;

use crate::support::*;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    NoTerminal,
    LeaksOtherOrg,
    StatusStuck,
    /// The POST is never answered (its arrival is announced on `posted`).
    PostHangs,
    /// Events carry `seq`, skipping every other number (a seq gap at each event).
    SeqGap,
}

struct Backend {
    fault: Fault,
    /// Speaks only Part 1: no seq, no items in answers, no /api/ws/stats.
    part1: bool,
    events: broadcast::Sender<String>,
    completed: AtomicU64,
    sockets: AtomicU64,
    jobs: AtomicU64,
    /// Notified when a POST /api/pems/write-sync arrives.
    posted: tokio::sync::Notify,
    seq: AtomicU64,
}

type Shared = Arc<Backend>;

fn event(kind: &str, pfa: &str, org: &str) -> String {
    let mut v =
        json!({"type": kind, "pfaId": pfa, "organizationId": org, "timestamp": Timestamp::now()});
    if kind == "SYNC_SUCCESS" {
        v["details"] = json!({"newVersion": 2});
    }
    v.to_string()
}

async fn socket(
    ws: WebSocketUpgrade,
    Path(org): Path<String>,
    State(b): State<Shared>,
) -> Response {
    ws.on_upgrade(move |mut socket: WebSocket| async move {
        let mut rx = b.events.subscribe();
        let mut connected =
            json!({"type": "CONNECTED", "organizationId": org, "timestamp": Timestamp::now()});
        if !b.part1 {
            connected["seq"] = json!(0);
            connected["epoch"] = json!("fake");
        }
        if socket
            .send(Message::text(connected.to_string()))
            .await
            .is_err()
        {
            return;
        }
        b.sockets.fetch_add(1, Ordering::SeqCst);
        loop {
            tokio::select! {
                message = socket.recv() => match message {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    _ => {}
                },
                Ok(text) = rx.recv() => {
                    let text = numbered(&b, text);
                    if socket.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Flush the close reply the WebSocket layer queued, as a real server does.
        let _ = futures_util::SinkExt::close(&mut socket).await;
        b.sockets.fetch_sub(1, Ordering::SeqCst);
    })
}

/// With [`Fault::SeqGap`], `text` with a `seq` two past the last one.
fn numbered(b: &Backend, text: String) -> String {
    if b.fault != Fault::SeqGap {
        return text;
    }
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["seq"] = json!(b.seq.fetch_add(2, Ordering::SeqCst) + 2);
    v.to_string()
}

async fn write_sync(State(b): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    b.posted.notify_one();
    if b.fault == Fault::PostHangs {
        std::future::pending::<()>().await;
    }
    let org = body["organizationId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let n = body["count"].as_u64().unwrap_or(1);
    let job = b.jobs.fetch_add(1, Ordering::SeqCst);
    let pfas: Vec<String> = (0..n)
        .map(
            |i| match body["pfaIds"].get(i as usize).and_then(Value::as_str) {
                Some(p) if !b.part1 => p.to_string(),
                _ => format!("pfa-{job}-{i}"),
            },
        )
        .collect();
    let backend = b.clone();
    let (events_org, names) = (org.clone(), pfas.clone());
    tokio::spawn(async move {
        for pfa in &names {
            let _ = backend.events.send(event("SYNC_QUEUED", pfa, &events_org));
            if backend.fault == Fault::LeaksOtherOrg {
                let _ = backend
                    .events
                    .send(event("SYNC_QUEUED", pfa, "org-someone-else"));
            }
            let _ = backend
                .events
                .send(event("SYNC_PROCESSING", pfa, &events_org));
            if backend.fault != Fault::NoTerminal {
                let _ = backend.events.send(event("SYNC_SUCCESS", pfa, &events_org));
                if backend.fault != Fault::StatusStuck {
                    backend.completed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    let mut answer =
        json!({"success": true, "jobId": format!("write-sync-{job}-{org}"), "queuedCount": n});
    if !b.part1 {
        answer["items"] = pfas
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"id": format!("i{i}"), "pfaId": p}))
            .collect();
    }
    axum::Json(answer).into_response()
}

async fn sync_status(State(b): State<Shared>) -> Response {
    axum::Json(json!({
        "totalQueued": 0, "processing": 0, "completed": b.completed.load(Ordering::SeqCst), "failed": 0,
        "avgSyncTime": 3, "lastSyncAt": null, "nextSyncAt": null, "health": "healthy", "successRate": 100,
    }))
    .into_response()
}

async fn stats(State(b): State<Shared>) -> Response {
    if b.part1 {
        return (
            axum::http::StatusCode::NOT_FOUND,
            "Cannot GET /api/ws/stats",
        )
            .into_response();
    }
    let n = b.sockets.load(Ordering::SeqCst);
    axum::Json(json!({"totalConnections": n, "organizations": {"org-smoke": n}})).into_response()
}

/// Starts a fake backend on a free port.
async fn backend(fault: Fault, part1: bool) -> SocketAddr {
    backend_with(fault, part1).await.0
}

/// [`backend`], and its state (to wait for the POST).
async fn backend_with(fault: Fault, part1: bool) -> (SocketAddr, Shared) {
    let state = Arc::new(Backend {
        fault,
        part1,
        events: broadcast::channel(1024).0,
        completed: AtomicU64::new(0),
        sockets: AtomicU64::new(0),
        jobs: AtomicU64::new(1),
        posted: tokio::sync::Notify::new(),
        seq: AtomicU64::new(0),
    });
    let shared = state.clone();
    let app = Router::new()
        .route("/api/ws/sync/{org}", get(socket))
        .route("/api/pems/write-sync", post(write_sync))
        .route("/api/pems/sync-status", get(sync_status))
        .route("/api/ws/stats", get(stats))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, shared)
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "type")]
    kind: String,
    data: Value,
}

fn typed(output: &std::process::Output) -> Vec<Record> {
    records(output)
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect()
}

fn summary<T: serde::de::DeserializeOwned>(output: &std::process::Output) -> T {
    let record = typed(output)
        .into_iter()
        .rfind(|r| r.kind == "summary")
        .expect("a summary record");
    serde_json::from_value(record.data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_wait_follows_every_outcome() {
    let server = TestServer::start().await;
    let base = server.base();
    let cases = [
        (
            "success",
            "success",
            vec![EventType::Queued, EventType::Processing, EventType::Success],
        ),
        (
            "conflict",
            "conflict",
            vec![
                EventType::Queued,
                EventType::Processing,
                EventType::Conflict,
            ],
        ),
        (
            "retry-then-success",
            "success",
            vec![
                EventType::Queued,
                EventType::Processing,
                EventType::Processing,
                EventType::Success,
            ],
        ),
        (
            "failed",
            "failed",
            vec![
                EventType::Queued,
                EventType::Processing,
                EventType::Processing,
                EventType::Processing,
                EventType::Processing,
                EventType::Failed,
            ],
        ),
    ];
    for (outcome, terminal, events) in cases {
        let args = [
            "enqueue",
            "org-e",
            "--url",
            &base,
            "--count",
            "2",
            "--outcome",
            outcome,
            "--wait",
            "--expect-outcome",
            terminal,
            "--json",
        ];
        let output = run_cli(&args).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{outcome}: {}",
            stderr(&output)
        );
        let s: EnqueueSummary = summary(&output);
        assert_eq!(s.queued_count, Some(2));
        assert_eq!(s.items.len(), 2);
        for item in &s.items {
            assert_eq!(item.events, events, "{outcome}");
            let (q, p, t) = (
                item.queued_ms.unwrap(),
                item.processing_ms.unwrap(),
                item.terminal_ms.unwrap(),
            );
            assert!(
                q <= p && p <= t,
                "{outcome}: timings out of order: {q} {p} {t}"
            );
        }
        // Every event record printed belongs to the queued items.
        let names: Vec<&str> = s.queued.iter().map(|i| i.pfa_id.as_str()).collect();
        for r in typed(&output)
            .iter()
            .filter(|r| r.kind == "event" && r.data["type"] != "CONNECTED")
        {
            assert!(
                names.contains(&r.data["pfaId"].as_str().unwrap()),
                "{}",
                r.data
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_right_after_the_post_are_never_missed() {
    let mut config = fast_config();
    config.worker.processing_time = std::time::Duration::ZERO;
    config.worker.workers = 8;
    let server = TestServer::with(config).await;
    for run in 0..5 {
        let output = run_cli(&[
            "enqueue",
            "org-race",
            "--url",
            &server.base(),
            "--count",
            "50",
            "--wait",
            "--json",
            "--timeout",
            "20s",
        ])
        .await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "run {run}: {}",
            stderr(&output)
        );
        let s: EnqueueSummary = summary(&output);
        assert_eq!(s.items.len(), 50);
        for item in &s.items {
            assert_eq!(
                item.events.first(),
                Some(&EventType::Queued),
                "run {run}: {} missed its QUEUED",
                item.pfa_id
            );
            assert_eq!(item.outcome, Some(EventType::Success));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_exit_codes() {
    let server = TestServer::start().await;
    let base = server.base();
    // 0 without --wait, with the answer's items.
    let output = run_cli(&[
        "enqueue",
        "org-x",
        "--url",
        &base,
        "--pfa-id",
        "p-1",
        "--pfa-id",
        "p-2",
        "--priority",
        "4",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let s: EnqueueSummary = summary(&output);
    assert_eq!(
        s.queued
            .iter()
            .map(|i| i.pfa_id.as_str())
            .collect::<Vec<_>>(),
        ["p-1", "p-2"]
    );
    assert!(s.job_id.unwrap().starts_with("write-sync-"));
    // 1: the outcome is not the expected one.
    let output = run_cli(&[
        "enqueue",
        "org-x",
        "--url",
        &base,
        "--outcome",
        "conflict",
        "--count",
        "1",
        "--wait",
        "--expect-outcome",
        "success",
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("instead of")
            || stderr(&output).contains("expected every item to end SYNC_SUCCESS"),
        "{}",
        stderr(&output)
    );
    // 2: a bad flag value.
    assert_eq!(
        run_cli(&["enqueue", "org-x", "--priority", "11"])
            .await
            .status
            .code(),
        Some(2)
    );
    // 3: nothing listens.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let output = run_cli(&[
        "enqueue",
        "org-x",
        "--url",
        &format!("http://{closed}"),
        "--count",
        "1",
    ])
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    // The refused connection is found below the error, so the hint says what to do.
    assert!(
        stderr(&output).contains("hint: is the backend running?"),
        "{}",
        stderr(&output)
    );
    // 6: the server rejected the request; its status and error body are shown.
    let output = run_cli(&["enqueue", "org-x", "--url", &base, "--count", "20000"]).await;
    assert_eq!(output.status.code(), Some(6));
    assert!(
        stderr(&output).contains("HTTP 400") && stderr(&output).contains("VALIDATION_ERROR"),
        "{}",
        stderr(&output)
    );
    // 4: items that never end.
    let broken = backend(Fault::NoTerminal, false).await;
    let output = run_cli(&[
        "enqueue",
        "org-x",
        "--url",
        &format!("ws://{broken}"),
        "--count",
        "2",
        "--wait",
        "--timeout",
        "700ms",
    ])
    .await;
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no terminal event for"),
        "{}",
        stderr(&output)
    );
}

fn junit_cases(path: &std::path::Path) -> Vec<(String, String, Option<String>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|case| {
            let status = ["failure", "error", "skipped"]
                .into_iter()
                .find_map(|tag| {
                    case.children()
                        .find(|c| c.has_tag_name(tag))
                        .map(|c| (tag.to_string(), c.attribute("message").map(String::from)))
                })
                .unwrap_or(("passed".into(), None));
            (
                case.attribute("name").unwrap().to_string(),
                status.0,
                status.1,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junit_reports_items_with_expected_and_received() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enqueue.xml");
    let output = run_cli(&[
        "enqueue",
        "org-j",
        "--url",
        &server.base(),
        "--pfa-id",
        "a",
        "--pfa-id",
        "b",
        "--outcome",
        "mixed",
        "--wait",
        "--expect-outcome",
        "success",
        "--junit",
        path.to_str().unwrap(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    let cases = junit_cases(&path);
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0], ("a".into(), "passed".into(), None));
    assert_eq!(cases[1].1, "failure");
    assert!(
        cases[1]
            .2
            .as_deref()
            .unwrap()
            .contains("SYNC_CONFLICT instead of SYNC_SUCCESS"),
        "{cases:?}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("received: SYNC_QUEUED SYNC_PROCESSING SYNC_CONFLICT"),
        "{text}"
    );
}

fn steps_of(s: &SmokeSummary) -> Vec<(&str, StepStatus)> {
    s.steps
        .iter()
        .map(|step| (step.name.as_str(), step.status.clone()))
        .collect()
}

const STEPS: [&str; 7] = [
    "connect",
    "enqueue",
    "lifecycle",
    "seq",
    "sync-status",
    "stats",
    "close",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_embedded_passes_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("smoke.xml");
    let output = run_cli(&["smoke", "--json", "--junit", path.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let s: SmokeSummary = summary(&output);
    assert!(s.ok);
    assert_eq!(s.server, ServerKind::Embedded);
    assert_eq!(s.protocol, Some(ProtocolPart::Part2));
    assert_eq!(steps_of(&s), STEPS.map(|n| (n, StepStatus::Passed)));
    assert_eq!(s.items.len(), 3);
    let step_records = typed(&output)
        .into_iter()
        .filter(|r| r.kind == "step")
        .count();
    assert_eq!(step_records, 7);
    let cases = junit_cases(&path);
    assert_eq!(cases.len(), 7 + 3);
    assert!(
        cases.iter().all(|(_, status, _)| status == "passed"),
        "{cases:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_against_a_separately_started_server() {
    let server = TestServer::start().await;
    let output = run_cli(&[
        "smoke",
        "org-rio",
        "--url",
        &server.base(),
        "--items",
        "5",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let s: SmokeSummary = summary(&output);
    assert_eq!((s.server, s.items.len()), (ServerKind::Url, 5));
    let status = get_json(&server.http("/api/pems/sync-status?organizationId=org-rio")).await;
    assert_eq!(status["completed"], 5, "smoke really queued on this server");
    // The environment variable is honoured the same way.
    let output = run_cli_env(&["smoke", "--json"], &[("SYNCPROBE_URL", &server.base())]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(summary::<SmokeSummary>(&output).server, ServerKind::Url);
}

async fn smoke_fails_at(fault: Fault, step: &str, code: i32) -> String {
    smoke_fails_at_one_of(fault, &[step], code).await
}

/// [`smoke_fails_at`] for a fault that may show in any of `steps`, whichever comes
/// first: the message of the step that failed.
async fn smoke_fails_at_one_of(fault: Fault, steps: &[&str], code: i32) -> String {
    let addr = backend(fault, false).await;
    let output = run_cli(&[
        "smoke",
        "--url",
        &format!("ws://{addr}"),
        "--timeout",
        "1s",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(code), "{}", stderr(&output));
    let s: SmokeSummary = summary(&output);
    assert!(!s.ok);
    let failed: Vec<&str> = s
        .steps
        .iter()
        .filter(|st| st.status == StepStatus::Failed)
        .map(|st| st.name.as_str())
        .collect();
    let step = *failed.first().expect("a step failed");
    assert!(steps.contains(&step), "{:?}", s.steps);
    assert!(
        stderr(&output).contains(&format!("smoke failed at step {step}")),
        "{}",
        stderr(&output)
    );
    s.steps
        .iter()
        .find(|st| st.name == step)
        .unwrap()
        .message
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_fails_when_the_terminal_event_never_comes() {
    let message = smoke_fails_at(Fault::NoTerminal, "lifecycle", 4).await;
    assert!(message.contains("no terminal event"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_fails_when_another_organizations_events_leak_in() {
    // The fake backend sends the foreign event as it answers the POST: it may arrive
    // before the answer (the enqueue step fails) or after (the lifecycle step does).
    let steps = ["enqueue", "lifecycle"];
    let message = smoke_fails_at_one_of(Fault::LeaksOtherOrg, &steps, 5).await;
    assert!(message.contains("rooms must isolate"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_fails_when_sync_status_never_changes() {
    let message = smoke_fails_at(Fault::StatusStuck, "sync-status", 1).await;
    assert!(message.contains("did not move"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_skips_what_a_part1_backend_cannot_do() {
    let addr = backend(Fault::None, true).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("smoke.xml");
    let output = run_cli(&[
        "smoke",
        "--url",
        &format!("http://{addr}"),
        "--timeout",
        "5s",
        "--json",
        "--junit",
        path.to_str().unwrap(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let s: SmokeSummary = summary(&output);
    assert_eq!(s.protocol, Some(ProtocolPart::Part1));
    let expected = [
        ("connect", StepStatus::Passed),
        ("enqueue", StepStatus::Passed),
        ("lifecycle", StepStatus::Passed),
        ("seq", StepStatus::Skipped),
        ("sync-status", StepStatus::Passed),
        ("stats", StepStatus::Skipped),
        ("close", StepStatus::Passed),
    ];
    assert_eq!(steps_of(&s), expected);
    for step in s.steps.iter().filter(|st| st.status == StepStatus::Skipped) {
        assert!(step.message.contains("Part 1"), "a skip says why: {step:?}");
    }
    let cases = junit_cases(&path);
    let skipped: Vec<&str> = cases
        .iter()
        .filter(|c| c.1 == "skipped")
        .map(|c| c.0.as_str())
        .collect();
    assert_eq!(skipped, ["seq", "stats"]);
}

// Ctrl-C, causal order, -q and unanswered POSTs (issue 11, points 8 and 19).

/// A text-mode run read line by line while it runs ([`Running`] reads NDJSON only).
struct TextRun {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    seen: Vec<String>,
}

fn spawn_text(args: &[&str]) -> TextRun {
    use std::process::Stdio;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncprobe"));
    command
        .args(args)
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if inherited_setting(&key) {
            command.env_remove(key);
        }
    }
    let mut child = command.spawn().expect("failed to start syncprobe");
    let stdout = child.stdout.take().unwrap();
    TextRun {
        child,
        lines: tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout)),
        seen: Vec::new(),
    }
}

impl TextRun {
    /// Reads stdout lines until one contains `wanted`.
    async fn wait_for(&mut self, wanted: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {wanted:?} within {WAIT:?}: {:?}", self.seen))
                .unwrap()
                .unwrap_or_else(|| panic!("stdout ended before {wanted:?}: {:?}", self.seen));
            self.seen.push(line.clone());
            if line.contains(wanted) {
                return;
            }
        }
    }

    /// Sends `signal` (`-INT` as Ctrl-C does, `-TERM`).
    async fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("still running").to_string();
        let status = tokio::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }

    /// Every stdout line, the exit code and stderr.
    async fn finish(mut self) -> (Option<i32>, Vec<String>, String) {
        use tokio::io::AsyncReadExt;
        let mut stderr_pipe = self.child.stderr.take().unwrap();
        let rest = async {
            let mut stderr = String::new();
            let (lines, _) = tokio::join!(
                async {
                    while let Some(line) = self.lines.next_line().await.unwrap() {
                        self.seen.push(line);
                    }
                },
                stderr_pipe.read_to_string(&mut stderr)
            );
            let () = lines;
            let status = self.child.wait().await.unwrap();
            (status.code(), stderr)
        };
        let (code, stderr) = tokio::time::timeout(WAIT, rest)
            .await
            .expect("syncprobe did not finish in time");
        (code, self.seen, stderr)
    }
}

/// A server that completes the upgrade and never sends CONNECTED.
async fn mute_socket_server() -> crate::fake::FakeServer {
    crate::fake::FakeServer::start(|mut ws, _| async move { crate::fake::drain(&mut ws).await })
        .await
}

/// A `serve` whose items are queued and then processed for a minute: the run is
/// left waiting for the terminal events.
async fn slow_server() -> TestServer {
    let mut config = fast_config();
    config.worker.processing_time = std::time::Duration::from_secs(60);
    TestServer::with(config).await
}

/// The JUnit file is well-formed XML; its cases as `junit_cases` reads them.
fn junit_errors(path: &std::path::Path) -> Vec<(String, String, Option<String>)> {
    junit_cases(path)
        .into_iter()
        .filter(|(_, status, _)| status == "error")
        .collect()
}

/// The `error` record of a run: exit 130, "interrupted".
fn assert_interrupted(finished: &Finished) {
    assert_eq!(finished.code(), Some(130), "{}", finished.stderr);
    let errors = data_of(&finished.records, "error");
    assert_eq!(errors.len(), 1, "{:?}", finished.records);
    assert_eq!(errors[0]["exitCode"], 130);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{}",
        errors[0]
    );
    assert_eq!(
        finished.records.last().unwrap()["type"],
        "error",
        "the error record is the last"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_enqueue_wait_leaves_the_summary_the_error_and_the_junit_file() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("enqueue.xml");
    let junit_arg = junit.to_str().unwrap().to_string();
    let args = |url: &str| -> Vec<String> {
        [
            "enqueue", "org-int", "--url", url, "--count", "2", "--wait", "--json", "--junit",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([junit_arg.clone()])
        .collect()
    };

    // While waiting for CONNECTED: nothing was posted.
    let mute = mute_socket_server().await;
    let argv = args(&format!("ws://{}", mute.addr));
    let mut run = spawn_cli(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    run.wait_for("open", |r| r["type"] == "open").await;
    run.interrupt().await;
    let finished = run.finish().await;
    assert_interrupted(&finished);
    let s: EnqueueSummary = summary_of(&finished.records);
    assert_eq!(s.outcome, EnqueueOutcome::Interrupted);
    assert!(!s.ok && !s.posted, "{s:?}");
    assert_eq!((s.queued_count, s.job_id), (None, None));
    let close: Value = data_of(&finished.records, "close")[0].clone();
    assert_eq!(
        (close["code"].as_u64(), &close["initiator"]),
        (Some(1000), &json!("client"))
    );
    let errors = junit_errors(&junit);
    assert_eq!(errors.len(), 1, "{:?}", junit_cases(&junit));
    assert_eq!(errors[0].0, "write-sync");

    // During the POST: posted, no answer, nothing claimed to be queued.
    let (addr, state) = backend_with(Fault::PostHangs, false).await;
    let argv = args(&format!("ws://{addr}"));
    let mut run = spawn_cli(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    run.wait_for("open", |r| r["type"] == "open").await;
    tokio::time::timeout(WAIT, state.posted.notified())
        .await
        .expect("the POST arrived");
    run.interrupt().await;
    let finished = run.finish().await;
    assert_interrupted(&finished);
    let s: EnqueueSummary = summary_of(&finished.records);
    assert_eq!(s.outcome, EnqueueOutcome::Interrupted);
    assert!(s.posted && s.queued_count.is_none(), "{s:?}");
    assert!(data_of(&finished.records, "queued").is_empty());
    assert_eq!(junit_errors(&junit).len(), 1, "{:?}", junit_cases(&junit));

    // While waiting for the terminal events: the items so far, unfinished ones as errors.
    let server = slow_server().await;
    let argv = args(&server.base());
    let mut run = spawn_cli(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    let processing = |r: &Value| r["type"] == "event" && r["data"]["type"] == "SYNC_PROCESSING";
    run.wait_for("SYNC_PROCESSING", processing).await;
    run.interrupt().await;
    let finished = run.finish().await;
    assert_interrupted(&finished);
    let s: EnqueueSummary = summary_of(&finished.records);
    assert_eq!(s.outcome, EnqueueOutcome::Interrupted);
    assert_eq!(s.queued_count, Some(2));
    assert_eq!(s.items.len(), 2);
    assert!(s.items.iter().all(|i| i.outcome.is_none()), "{s:?}");
    let cases = junit_cases(&junit);
    assert_eq!(cases.len(), 2, "{cases:?}");
    for (name, status, message) in &cases {
        assert_eq!(status, "error", "{name}");
        assert_eq!(
            message.as_deref(),
            Some("interrupted before its terminal event")
        );
    }
    let close: Value = data_of(&finished.records, "close")[0].clone();
    assert_eq!(close["code"], 1000);

    // Without --wait, during the POST.
    let (addr, state) = backend_with(Fault::PostHangs, false).await;
    let url = format!("ws://{addr}");
    let run = spawn_cli(&["enqueue", "org-int", "--url", &url, "--json"]);
    tokio::time::timeout(WAIT, state.posted.notified())
        .await
        .expect("the POST arrived");
    run.interrupt().await;
    let finished = run.finish().await;
    assert_interrupted(&finished);
    let s: EnqueueSummary = summary_of(&finished.records);
    assert_eq!(s.outcome, EnqueueOutcome::Interrupted);
    assert!(s.posted && s.queued_count.is_none(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_enqueue_wait_in_text_prints_the_summary() {
    let server = slow_server().await;
    let mut run = spawn_text(&[
        "enqueue",
        "org-int",
        "--url",
        &server.base(),
        "--count",
        "1",
        "--wait",
    ]);
    run.wait_for("SYNC_PROCESSING").await;
    // SIGTERM ends the run as Ctrl-C does.
    run.signal("-TERM").await;
    let (code, lines, stderr) = run.finish().await;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("interrupted: 0 of 1 item ended (job "),
        "{lines:?}"
    );
    assert!(stderr.contains("syncprobe: error: interrupted"), "{stderr}");
}

/// Smoke interrupted at `step`: exit 130, that step failed with exit code 130, every
/// later one skipped, the error record, and the JUnit file with the step as an error.
fn assert_smoke_interrupted(finished: &Finished, step: &str, junit: &std::path::Path) {
    assert_interrupted(finished);
    let s: SmokeSummary = summary_of(&finished.records);
    assert!(!s.ok);
    let at = s
        .steps
        .iter()
        .position(|st| st.name == step)
        .expect("the step is reported");
    assert_eq!(s.steps[at].status, StepStatus::Failed, "{:?}", s.steps);
    assert_eq!(s.steps[at].exit_code, Some(130));
    assert!(
        s.steps[at + 1..]
            .iter()
            .all(|st| st.status == StepStatus::Skipped),
        "{:?}",
        s.steps
    );
    let mut names: Vec<&str> = s.steps.iter().map(|st| st.name.as_str()).collect();
    names.sort();
    let mut all = STEPS.to_vec();
    all.sort();
    assert_eq!(names, all, "every step is reported once");
    assert!(
        finished
            .stderr
            .contains(&format!("smoke interrupted during step {step}")),
        "{}",
        finished.stderr
    );
    let errors = junit_errors(junit);
    assert!(
        errors.iter().any(|(name, _, message)| name == step
            && message.as_deref() == Some(&format!("step {step} interrupted"))),
        "{:?}",
        junit_cases(junit)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_smoke_leaves_the_summary_the_error_and_the_junit_file() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("smoke.xml");
    let junit_arg = junit.to_str().unwrap();
    let argv = |url: &str| -> Vec<String> {
        ["smoke", "--url", url, "--json", "--junit", junit_arg]
            .map(String::from)
            .to_vec()
    };
    let spawn = |v: Vec<String>| spawn_cli(&v.iter().map(String::as_str).collect::<Vec<_>>());

    // While waiting for CONNECTED.
    let mute = mute_socket_server().await;
    let mut run = spawn(argv(&format!("ws://{}", mute.addr)));
    run.wait_for("open", |r| r["type"] == "open").await;
    run.interrupt().await;
    let finished = run.finish().await;
    assert_smoke_interrupted(&finished, "connect", &junit);

    // During the POST.
    let (addr, state) = backend_with(Fault::PostHangs, false).await;
    let mut run = spawn(argv(&format!("ws://{addr}")));
    run.wait_for("step connect", |r| r["type"] == "step").await;
    tokio::time::timeout(WAIT, state.posted.notified())
        .await
        .expect("the POST arrived");
    run.interrupt().await;
    let finished = run.finish().await;
    assert_smoke_interrupted(&finished, "enqueue", &junit);
    assert!(
        data_of(&finished.records, "close").len() == 1,
        "the socket is closed"
    );

    // While waiting for the terminal events: the items so far, as errors.
    let addr = backend(Fault::NoTerminal, false).await;
    let mut run = spawn(argv(&format!("ws://{addr}")));
    let processing = |r: &Value| r["type"] == "event" && r["data"]["type"] == "SYNC_PROCESSING";
    run.wait_for("SYNC_PROCESSING", processing).await;
    run.interrupt().await;
    let finished = run.finish().await;
    assert_smoke_interrupted(&finished, "lifecycle", &junit);
    let s: SmokeSummary = summary_of(&finished.records);
    assert_eq!(s.items.len(), 3, "{s:?}");
    let item_errors = junit_errors(&junit)
        .into_iter()
        .filter(|(_, _, m)| m.as_deref() == Some("interrupted before its terminal event"))
        .count();
    assert_eq!(item_errors, 3, "{:?}", junit_cases(&junit));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_smoke_in_text_prints_the_verdict() {
    let addr = backend(Fault::NoTerminal, false).await;
    let mut run = spawn_text(&["smoke", "--url", &format!("ws://{addr}")]);
    run.wait_for("SYNC_PROCESSING").await;
    run.signal("-INT").await;
    let (code, lines, stderr) = run.finish().await;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("smoke INTERRUPTED during step lifecycle: 2 passed, 1 failed, 4 skipped"),
        "{lines:?}"
    );
    // Before the upgrade is answered (a server that accepts TCP and says nothing).
    let silent = crate::fake::SilentServer::start().await;
    let mut run = spawn_text(&["smoke", "--url", &silent.base()]);
    run.wait_for("Smoke test of org-smoke").await;
    run.signal("-INT").await;
    let (code, lines, stderr) = run.finish().await;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("smoke INTERRUPTED during step connect: 0 passed, 1 failed, 6 skipped"),
        "{lines:?}"
    );
}

/// The answer to the POST is shown before the events it caused, in text and in
/// NDJSON, although the server sends SYNC_QUEUED before it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_wait_and_smoke_print_in_causal_order() {
    let server = TestServer::start().await;
    let base = server.base();
    let out = run_cli(&[
        "enqueue",
        "org-order",
        "--url",
        &base,
        "--count",
        "3",
        "--wait",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let queued = lines
        .iter()
        .position(|l| l.starts_with("Queued 3 items for org-order"));
    let first_event = lines.iter().position(|l| l.contains("SYNC_QUEUED"));
    assert!(queued.is_some() && queued < first_event, "{text}");
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("followed: 3 of 3 items ended"),
        "{text}"
    );

    let out = run_cli(&["smoke", "org-order", "--url", &base]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let step = lines.iter().position(|l| l.contains("pass enqueue"));
    let first_event = lines.iter().position(|l| l.contains("SYNC_QUEUED"));
    assert!(step.is_some() && step < first_event, "{text}");

    let out = run_cli(&["smoke", "org-order", "--url", &base, "--json"]).await;
    let records = records(&out);
    let step = records
        .iter()
        .position(|r| r["type"] == "step" && r["data"]["name"] == "enqueue");
    let first_event = records
        .iter()
        .position(|r| r["type"] == "event" && r["data"]["type"] == "SYNC_QUEUED");
    assert!(step.is_some() && step < first_event, "{records:?}");
}

/// `-q`: one line on stdout, the verdict, whatever the run printed otherwise (the
/// socket, the queued items, events, notes, warnings); stderr only for an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_prints_only_the_verdict() {
    let server = TestServer::start().await;
    let base = server.base();
    let fake = format!("ws://{}", backend(Fault::None, false).await);
    let mut runs: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["enqueue", "org-q", "--url", &base, "--count", "2", "--wait"],
            0,
            "followed: 2 of 2 items ended",
        ),
        (
            vec!["enqueue", "org-q", "--url", &base, "--count", "2"],
            0,
            "Queued 2 items for org-q",
        ),
        (
            vec!["enqueue", "org-q", "--url", &fake, "--count", "2", "--wait"],
            0,
            "followed: 2 of 2 items ended",
        ),
        (
            vec![
                "enqueue",
                "org-q",
                "--url",
                &base,
                "--count",
                "1",
                "--outcome",
                "conflict",
                "--wait",
                "--expect-outcome",
                "success",
            ],
            1,
            "FAILED: 1 of 1 item ended",
        ),
        (
            vec!["smoke", "org-q", "--url", &base],
            0,
            "smoke passed: 7 passed",
        ),
        (vec!["smoke", "--url", &fake], 0, "smoke passed: 7 passed"),
        (vec!["smoke"], 0, "smoke passed: 7 passed"),
    ];
    // A seq gap is a warning (stderr) without -q.
    let gaps = format!("ws://{}", backend(Fault::SeqGap, false).await);
    let out = run_cli(&["enqueue", "o", "--url", &gaps, "--count", "2", "--wait"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: seq gap"),
        "{}",
        stderr(&out)
    );
    runs.push((
        vec!["enqueue", "o", "--url", &gaps, "--count", "2", "--wait"],
        0,
        "followed: 2 of 2 items ended",
    ));
    runs.push((
        vec!["smoke", "--url", &gaps],
        1,
        "smoke FAILED: 6 passed, 1 failed",
    ));
    for (mut argv, code, verdict) in runs {
        argv.push("-q");
        let out = run_cli(&argv).await;
        assert_eq!(out.status.code(), Some(code), "{argv:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert_eq!(text.lines().count(), 1, "{argv:?}: {text:?}");
        assert!(text.starts_with(verdict), "{argv:?}: {text:?}");
        if code == 0 {
            assert_eq!(stderr(&out), "", "{argv:?}");
        } else {
            assert!(stderr(&out).starts_with("syncprobe: error: "), "{argv:?}");
            assert_eq!(
                stderr(&out).lines().count(),
                1,
                "{argv:?}: {}",
                stderr(&out)
            );
        }
    }
}

/// A POST that times out is never shown as "Queued 0 items (job -)": the run says
/// there was no answer, and nothing claims a queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_post_is_not_reported_as_queued() {
    let url = format!("ws://{}", backend(Fault::PostHangs, false).await);
    for wait in [true, false] {
        let mut argv = vec![
            "enqueue",
            "org-t",
            "--url",
            &url,
            "--count",
            "2",
            "--timeout",
            "1s",
        ];
        if wait {
            argv.push("--wait");
        }
        let out = run_cli(&argv).await;
        assert_eq!(out.status.code(), Some(4), "{argv:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(!text.contains("Queued"), "{argv:?}: {text}");
        assert!(
            text.contains(
                "timed out: no answer to POST /api/pems/write-sync: nothing is known to be queued"
            ),
            "{argv:?}: {text}"
        );
        // The error names the limit and the flag that sets it.
        assert!(
            stderr(&out).contains(" 1s (raise --timeout)"),
            "{argv:?}: {}",
            stderr(&out)
        );
        argv.push("--json");
        let out = run_cli(&argv).await;
        let s: EnqueueSummary = summary_of(&records(&out));
        assert_eq!(s.outcome, EnqueueOutcome::Timeout);
        assert_eq!(
            (s.queued_count, s.ok, s.posted),
            (None, false, true),
            "{argv:?}"
        );
    }
    let out = run_cli(&["smoke", "--url", &url, "--timeout", "1s", "--json"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let s: SmokeSummary = summary_of(&records(&out));
    let enqueue = s.steps.iter().find(|st| st.name == "enqueue").unwrap();
    assert_eq!(enqueue.status, StepStatus::Failed);
    assert!(enqueue.message.contains("no answer to POST"), "{enqueue:?}");
    let lifecycle = s.steps.iter().find(|st| st.name == "lifecycle").unwrap();
    assert_eq!(lifecycle.message, "nothing is known to be queued");
}
