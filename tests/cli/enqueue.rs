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
use syncprobe::report::enqueue::EnqueueSummary;
use syncprobe::report::smoke::{ServerKind, SmokeSummary, StepStatus};
use tokio::sync::broadcast;

use crate::support::*;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    NoTerminal,
    LeaksOtherOrg,
    StatusStuck,
}

struct Backend {
    fault: Fault,
    /// Speaks only Part 1: no seq, no items in answers, no /api/ws/stats.
    part1: bool,
    events: broadcast::Sender<String>,
    completed: AtomicU64,
    sockets: AtomicU64,
    jobs: AtomicU64,
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

async fn write_sync(State(b): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
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
    let state = Arc::new(Backend {
        fault,
        part1,
        events: broadcast::channel(1024).0,
        completed: AtomicU64::new(0),
        sockets: AtomicU64::new(0),
        jobs: AtomicU64::new(1),
    });
    let app = Router::new()
        .route("/api/ws/sync/{org}", get(socket))
        .route("/api/pems/write-sync", post(write_sync))
        .route("/api/pems/sync-status", get(sync_status))
        .route("/api/ws/stats", get(stats))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
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
            let status = ["failure", "skipped"]
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
    assert_eq!(failed.first(), Some(&step), "{:?}", s.steps);
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
    let message = smoke_fails_at(Fault::LeaksOtherOrg, "lifecycle", 5).await;
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
