//! `status`, and `smoke` against backends that speak only the original protocol
//! (Part 1: no seq, no publish, outcomes of their own, `/api/ws/stats` in other
//! shapes or not at all, the original's sync-status and conflicts answers). The
//! backend written here ([`original`]) is shared with `conflicts.rs`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing;
use serde_json::{Value, json};
use syncprobe::protocol::Timestamp;
use syncprobe::report::smoke::{SmokeSummary, StepStatus};
use syncprobe::report::status::{StatusReport, StatusSummary};
use tokio::sync::broadcast;

use crate::support::*;

/// How the backend's `/api/ws/stats` looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stats {
    /// No such endpoint: Express's 404 page.
    Absent,
    /// `{"totalConnections":N,"organizations":K,"connectionsByOrganization":{org:N}}`
    ByOrganization,
    /// `{"rooms":[{"organizationId":org,"clients":N}]}`
    Rooms,
    /// `{"orgs":[[org,N]]}`
    Pairs,
    /// Figures without any organization in them.
    Unknown,
    /// A 500 with an HTML page.
    Broken,
    /// A per-organization map that leaves every organization out.
    OthersOnly,
}

/// A conflict as the original stores it.
#[derive(Clone)]
struct Stored {
    org: String,
    value: Value,
}

pub struct Original {
    stats: Stats,
    events: broadcast::Sender<(String, String)>,
    sockets: Mutex<Vec<String>>,
    completed: AtomicU64,
    jobs: AtomicU64,
    conflicts: Mutex<Vec<Stored>>,
}

type Shared = Arc<Original>;

fn event(kind: &str, pfa: &str, org: &str, details: Option<Value>) -> (String, String) {
    let mut v =
        json!({"type": kind, "pfaId": pfa, "organizationId": org, "timestamp": Timestamp::now()});
    if let Some(d) = details {
        v["details"] = d;
    }
    (org.to_string(), v.to_string())
}

async fn socket(
    ws: WebSocketUpgrade,
    Path(org): Path<String>,
    State(b): State<Shared>,
) -> Response {
    ws.on_upgrade(move |mut socket: WebSocket| async move {
        let mut rx = b.events.subscribe();
        let connected =
            json!({"type": "CONNECTED", "organizationId": org, "timestamp": Timestamp::now()});
        if socket
            .send(Message::text(connected.to_string()))
            .await
            .is_err()
        {
            return;
        }
        b.sockets.lock().unwrap().push(org.clone());
        loop {
            tokio::select! {
                message = socket.recv() => match message {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    _ => {}
                },
                Ok((to, text)) = rx.recv() => {
                    if to == org && socket.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = futures_util::SinkExt::close(&mut socket).await;
        let mut sockets = b.sockets.lock().unwrap();
        if let Some(at) = sockets.iter().position(|o| *o == org) {
            sockets.remove(at);
        }
    })
}

fn conflict_id() -> String {
    let tail: String = (0..9)
        .map(|i| (b'a' + ((rand::random::<u8>() as usize + i) % 26) as u8) as char)
        .collect();
    format!("conflict_{}_{tail}", Timestamp::now().millis())
}

/// Queues its own two pending modifications whatever was asked (count, outcome and
/// pfaIds are not the original's): the first succeeds, the second conflicts.
async fn write_sync(State(b): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    let org = body["organizationId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let job = b.jobs.fetch_add(1, Ordering::SeqCst);
    let (ok, clash) = (format!("PFA-{job}-1"), format!("PFA-{job}-2"));
    let id = conflict_id();
    b.conflicts.lock().unwrap().push(Stored {
        org: org.clone(),
        value: json!({
            "id": id, "pfaId": clash, "pfaDetails": {"category": "Excavators", "class": "Large"},
            "localVersion": 3, "pemsVersion": 5, "conflictFields": ["forecastStart"],
            "localData": {"forecastStart": "2025-12-01"}, "pemsData": {"forecastStart": "2025-12-03"},
            "status": "unresolved", "resolution": null, "mergedData": null,
            "createdAt": Timestamp::now(), "resolvedAt": null, "resolvedBy": null,
            "modifiedBy": {"id": "u-1", "username": "john.doe", "email": null},
        }),
    });
    let backend = b.clone();
    let events_org = org.clone();
    tokio::spawn(async move {
        let send = |e| {
            let _ = backend.events.send(e);
        };
        for pfa in [&ok, &clash] {
            send(event("SYNC_QUEUED", pfa, &events_org, None));
        }
        send(event("SYNC_PROCESSING", &ok, &events_org, None));
        backend.completed.fetch_add(1, Ordering::SeqCst);
        send(event(
            "SYNC_SUCCESS",
            &ok,
            &events_org,
            Some(json!({"newVersion": 4})),
        ));
        send(event("SYNC_PROCESSING", &clash, &events_org, None));
        let details = json!({"conflictId": id, "conflictingFields": ["forecastStart"]});
        send(event("SYNC_CONFLICT", &clash, &events_org, Some(details)));
    });
    axum::Json(json!({
        "success": true, "jobId": format!("write-sync-{}-{org}", Timestamp::now().millis()),
        "queuedCount": 2, "estimatedCompletionTime": Timestamp::now(),
    }))
    .into_response()
}

fn bad_request() -> Response {
    let body = json!({"error": "BAD_REQUEST", "message": "organizationId is required"});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

async fn sync_status(
    State(b): State<Shared>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if !q.contains_key("organizationId") {
        return bad_request();
    }
    let completed = b.completed.load(Ordering::SeqCst);
    let next = Timestamp(chrono::Utc::now() + chrono::Duration::seconds(60));
    axum::Json(json!({
        "totalQueued": 0, "processing": 0, "completed": completed, "failed": 0,
        "avgSyncTime": if completed > 0 { json!(2500) } else { Value::Null },
        "lastSyncAt": if completed > 0 { json!(Timestamp::now()) } else { Value::Null },
        "nextSyncAt": next, "health": "healthy", "successRate": 100,
    }))
    .into_response()
}

async fn stats(State(b): State<Shared>) -> Response {
    let sockets = b.sockets.lock().unwrap().clone();
    let mut per_org = serde_json::Map::new();
    for org in &sockets {
        let n = per_org.get(org).and_then(Value::as_u64).unwrap_or(0);
        per_org.insert(org.clone(), json!(n + 1));
    }
    let total = sockets.len();
    let body = match b.stats {
        Stats::Absent => {
            let page = "<!DOCTYPE html><pre>Cannot GET /api/ws/stats</pre>";
            return (StatusCode::NOT_FOUND, page).into_response();
        }
        Stats::Broken => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "<html>oops</html>").into_response();
        }
        Stats::ByOrganization => json!({
            "totalConnections": total, "organizations": per_org.len(),
            "connectionsByOrganization": per_org,
        }),
        Stats::Rooms => json!({"rooms": per_org.iter()
            .map(|(o, n)| json!({"organizationId": o, "clients": n})).collect::<Vec<_>>()}),
        Stats::Pairs => {
            json!({"orgs": per_org.iter().map(|(o, n)| json!([o, n])).collect::<Vec<_>>()})
        }
        Stats::Unknown => json!({"uptime": 12.5, "memory": {"rss": 1000}}),
        Stats::OthersOnly => json!({"organizations": {"org-elsewhere": 1}}),
    };
    axum::Json(body).into_response()
}

async fn list_conflicts(
    State(b): State<Shared>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(org) = q.get("organizationId") else {
        return bad_request();
    };
    let kept = b.conflicts.lock().unwrap().clone();
    let conflicts: Vec<Value> = kept
        .into_iter()
        .rev()
        .filter(|s| &s.org == org)
        .filter(|s| q.get("status").is_none_or(|st| s.value["status"] == **st))
        .map(|s| s.value)
        .collect();
    axum::Json(json!({"total": conflicts.len(), "conflicts": conflicts})).into_response()
}

/// As the original: 404 for an unknown id, 500 for a resolved one; use_local
/// re-queues (and this backend's worker announces it).
async fn resolve(
    State(b): State<Shared>,
    Path(id): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut kept = b.conflicts.lock().unwrap();
    let Some(stored) = kept.iter_mut().find(|s| s.value["id"] == id) else {
        let body = json!({"error": "NOT_FOUND", "message": "Conflict not found"});
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    };
    if stored.value["status"] != "unresolved" {
        let body = json!({"error": "INTERNAL_ERROR", "message": "Failed to resolve conflict"});
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
    }
    let resolution = body["resolution"].as_str().unwrap_or_default().to_string();
    stored.value["status"] = json!("resolved");
    stored.value["resolution"] = json!(resolution);
    let (org, pfa) = (
        stored.org.clone(),
        stored.value["pfaId"].as_str().unwrap().to_string(),
    );
    let local = stored.value["localData"].clone();
    drop(kept);
    if resolution != "use_pems" {
        let backend = b.clone();
        tokio::spawn(async move {
            for kind in ["SYNC_QUEUED", "SYNC_PROCESSING"] {
                let _ = backend.events.send(event(kind, &pfa, &org, None));
            }
            let details = Some(json!({"newVersion": 6}));
            let _ = backend
                .events
                .send(event("SYNC_SUCCESS", &pfa, &org, details));
        });
    }
    let applied = if resolution == "use_pems" {
        Value::Null
    } else {
        local
    };
    axum::Json(json!({
        "success": true, "conflictId": id, "resolvedAt": Timestamp::now(), "appliedChanges": applied,
    }))
    .into_response()
}

/// Starts an original-protocol backend on a free port; its address and state.
pub async fn original(stats_shape: Stats) -> (SocketAddr, Shared) {
    let state = Arc::new(Original {
        stats: stats_shape,
        events: broadcast::channel(1024).0,
        sockets: Mutex::new(Vec::new()),
        completed: AtomicU64::new(0),
        jobs: AtomicU64::new(1),
        conflicts: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/api/ws/sync/{org}", routing::get(socket))
        .route("/api/pems/write-sync", routing::post(write_sync))
        .route("/api/pems/sync-status", routing::get(sync_status))
        .route("/api/pems/conflicts", routing::get(list_conflicts))
        .route("/api/pems/conflicts/{id}/resolve", routing::post(resolve))
        .route("/api/ws/stats", routing::get(stats))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, state)
}

impl Original {
    /// The ids of the conflicts it keeps.
    pub fn conflict_ids(&self) -> Vec<String> {
        let kept = self.conflicts.lock().unwrap();
        kept.iter()
            .map(|s| s.value["id"].as_str().unwrap().to_string())
            .collect()
    }
}

fn step<'a>(summary: &'a SmokeSummary, name: &str) -> &'a syncprobe::report::smoke::Step {
    summary
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name}: {summary:?}"))
}

/// Issue 12 point 1: smoke passes against original-protocol backends whatever shape
/// their stats have (or none): found anywhere in the JSON, skipped with the reason
/// when the shape is unknown or the endpoint fails; a Part 1 backend's own outcomes
/// (a conflict among the items) pass the lifecycle; sync-status with a null
/// avgSyncTime is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_passes_against_original_backends_whatever_their_stats() {
    let cases = [
        (
            Stats::ByOrganization,
            StepStatus::Passed,
            "connectionsByOrganization.org-smoke",
        ),
        (Stats::Rooms, StepStatus::Passed, "rooms[]"),
        (Stats::Pairs, StepStatus::Passed, "orgs[]"),
        (Stats::Absent, StepStatus::Skipped, "no /api/ws/stats"),
        (Stats::Unknown, StepStatus::Skipped, "keys: uptime, memory"),
        (Stats::Broken, StepStatus::Skipped, "could not be read"),
    ];
    for (shape, expected, says) in cases {
        let (addr, _) = original(shape).await;
        let url = format!("ws://{addr}");
        let out = run_cli(&["smoke", "--url", &url, "--json", "--with-conflict"]).await;
        let summary: SmokeSummary = summary_of(&records(&out));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{shape:?}: {summary:?} {}",
            stderr(&out)
        );
        let stats = step(&summary, "stats");
        assert_eq!(stats.status, expected, "{shape:?}: {stats:?}");
        assert!(stats.message.contains(says), "{shape:?}: {stats:?}");
        let lifecycle = step(&summary, "lifecycle");
        assert!(lifecycle.message.contains("SYNC_CONFLICT"), "{lifecycle:?}");
        assert_eq!(step(&summary, "sync-status").status, StepStatus::Passed);
        assert_eq!(step(&summary, "seq").status, StepStatus::Skipped);
        let conflict = step(&summary, "conflict");
        assert_eq!(conflict.status, StepStatus::Skipped, "{conflict:?}");
        assert!(conflict.message.contains("Part 1"), "{conflict:?}");
    }
}

/// The stats step can still fail: a per-organization list that leaves the open
/// connection out (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_fails_when_the_stats_list_organizations_but_not_this_one() {
    let (addr, _) = original(Stats::OthersOnly).await;
    let out = run_cli(&["smoke", "--url", &format!("ws://{addr}"), "--json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let summary: SmokeSummary = summary_of(&records(&out));
    let stats = step(&summary, "stats");
    assert_eq!(stats.status, StepStatus::Failed, "{stats:?}");
    assert!(
        stats
            .message
            .contains("but not the open connection of org-smoke"),
        "{stats:?}"
    );
    assert!(
        !summary.steps.iter().any(|s| s.name == "conflict"),
        "not asked for"
    );
}

fn status_report(out: &std::process::Output) -> (Vec<StatusReport>, StatusSummary) {
    let records = records(out);
    let looks = data_of(&records, "status").into_iter().map(typed).collect();
    (looks, summary_of(&records))
}

/// Issue 12 point 4 against `serve`: figures, the organization's sockets, health;
/// an organization it knows nothing about (exit 1, said in words); unhealthy (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_serve() {
    let server = TestServer::start().await;
    let (_ws, _) = subscribe(&server, "org-st").await;
    let body = json!({"organizationId": "org-st", "count": 3});
    let (code, _) = post(&server.http("/api/pems/write-sync"), &body.to_string()).await;
    assert_eq!(code, 200);
    let base = server.base();
    // The figures move a moment after the POST: look until they did (bounded).
    let mut look = None;
    for _ in 0..50 {
        let out = run_cli(&["status", "org-st", "--url", &base, "--json"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let (looks, summary) = status_report(&out);
        assert!(summary.ok && summary.refreshes == 1, "{summary:?}");
        if looks[0].sync_status.completed == 3 {
            look = Some(looks[0].clone());
            break;
        }
    }
    let look = look.expect("the three items completed");
    assert_eq!(
        (look.connections, look.total_connections),
        (Some(1), Some(1))
    );
    assert!(look.activity && look.backlog == 0, "{look:?}");

    let human = run_cli(&["status", "org-st", "--url", &base]).await;
    let text = stdout(&human);
    assert!(
        text.contains("● healthy") && text.contains("success rate 100%"),
        "{text}"
    );
    assert!(
        text.contains("completed 3") && text.contains("1 open socket (of 1 in total)"),
        "{text}"
    );
    assert!(
        text.contains("last sync  20"),
        "last sync in local time: {text}"
    );

    let nobody = run_cli(&["status", "org-nobody", "--url", &base]).await;
    assert_eq!(nobody.status.code(), Some(1));
    assert!(
        stdout(&nobody).contains("no activity recorded for org-nobody — check the id"),
        "{}",
        stdout(&nobody)
    );

    let body = json!({"organizationId": "org-bad", "count": 2, "outcome": "failed"});
    post(&server.http("/api/pems/write-sync"), &body.to_string()).await;
    let mut unhealthy = None;
    for _ in 0..100 {
        let out = run_cli(&["status", "org-bad", "--url", &base, "--json"]).await;
        let (looks, _) = status_report(&out);
        if looks[0].sync_status.failed == 2 {
            unhealthy = Some(out);
            break;
        }
    }
    let out = unhealthy.expect("the two items failed");
    assert_eq!(out.status.code(), Some(1));
    let (looks, summary) = status_report(&out);
    assert_eq!(looks[0].sync_status.success_rate, 0);
    assert!(!summary.ok);
}

/// Against the original protocol: stats in another shape, or none (said, not
/// failed); a null avgSyncTime; an unreachable backend exits 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_original_backends() {
    // An empty map of organizations: known to list none of them.
    let (addr, _) = original(Stats::ByOrganization).await;
    let url = format!("ws://{addr}");
    let out = run_cli(&["status", "org-x", "--url", &url, "--json"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "nothing recorded yet: {}",
        stderr(&out)
    );
    let (looks, _) = status_report(&out);
    assert_eq!(looks[0].sync_status.avg_sync_time, None);
    assert_eq!(looks[0].connections, Some(0));
    assert!(!looks[0].activity);

    let smoke = run_cli(&["smoke", "org-x", "--url", &url]).await;
    assert_eq!(smoke.status.code(), Some(0), "{}", stdout(&smoke));
    let out = run_cli(&["status", "org-x", "--url", &url]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("avg sync   2500"), "{}", stdout(&out));

    let (addr, _) = original(Stats::Absent).await;
    let out = run_cli(&[
        "status",
        "org-x",
        "--url",
        &format!("ws://{addr}"),
        "--json",
    ])
    .await;
    let (looks, _) = status_report(&out);
    assert_eq!(looks[0].connections, None);
    assert_eq!(
        looks[0].stats_note.as_deref(),
        Some("the backend has no /api/ws/stats")
    );
    let human = run_cli(&["status", "org-x", "--url", &format!("ws://{addr}")]).await;
    assert!(
        stdout(&human).contains("unknown: the backend has no /api/ws/stats"),
        "{}",
        stdout(&human)
    );

    let refused = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("ws://{}", listener.local_addr().unwrap())
    };
    let out = run_cli(&["status", "org-x", "--url", &refused]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

/// `--watch`: a look per interval, bounded by --count, and Ctrl-C exits 130 with
/// the summary; intervals under the floor and --count alone are usage errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_refreshes_until_count_or_ctrl_c() {
    let server = TestServer::start().await;
    let base = server.base();
    let body = json!({"organizationId": "org-w", "count": 1});
    post(&server.http("/api/pems/write-sync"), &body.to_string()).await;
    let out = run_cli(&[
        "status", "org-w", "--url", &base, "--watch", "200ms", "--count", "3", "--json",
    ])
    .await;
    let (looks, summary) = status_report(&out);
    assert_eq!((looks.len(), summary.refreshes), (3, 3), "{}", stderr(&out));

    let mut run = spawn_cli(&["status", "org-w", "--url", &base, "--watch", "--json"]);
    run.wait_for("a status record", |r| r["type"] == "status")
        .await;
    run.interrupt().await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(130), "{}", finished.stderr);
    let summary: StatusSummary = summary_of(&finished.records);
    assert!(summary.refreshes >= 1);

    for bad in [
        vec!["status", "org-w", "--watch", "10ms"],
        vec!["status", "org-w", "--count", "2"],
        vec!["status", "org-w", "--watch", "1s", "--count", "0"],
    ] {
        let out = run_cli(&bad).await;
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
    }
}
