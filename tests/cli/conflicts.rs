//! The conflicts API of `serve` over real HTTP and sockets (ids, shapes, statuses,
//! re-queueing), the `conflicts` subcommand against `serve` and against a backend
//! that speaks only the original protocol, and `smoke --with-conflict`.

use serde_json::{Value, json};
use syncprobe::report::conflicts::{ConflictsSummary, ResolveSummary};
use syncprobe::report::smoke::{SmokeSummary, StepStatus};
use syncprobe::server::Config;

use crate::status::{Stats, original};
use crate::support::*;

/// Queues one conflicting item `pfa` for `org` on an open socket and returns the
/// `details.conflictId` of its SYNC_CONFLICT.
async fn queue_conflict(server: &TestServer, ws: &mut Ws, org: &str, pfa: &str) -> String {
    let body = json!({"organizationId": org, "pfaIds": [pfa], "outcome": "conflict"});
    let (code, answer) = post(&server.http("/api/pems/write-sync"), &body.to_string()).await;
    assert_eq!(code, 200, "{answer}");
    let events = events_of(ws, pfa, 3).await;
    assert_eq!(
        kinds(&events),
        ["SYNC_QUEUED", "SYNC_PROCESSING", "SYNC_CONFLICT"]
    );
    events[2]["details"]["conflictId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The next `n` events of `pfa` (others skipped).
async fn events_of(ws: &mut Ws, pfa: &str, n: usize) -> Vec<Value> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let frame = next_json(ws).await;
        if frame["pfaId"] == pfa {
            seen.push(frame);
        }
    }
    seen
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn is_original_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('_').collect();
    parts.len() == 3
        && parts[0] == "conflict"
        && parts[1].len() == 13
        && parts[1].bytes().all(|b| b.is_ascii_digit())
        && parts[2].len() == 9
        && parts[2]
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

async fn resolve(server: &TestServer, id: &str, body: Value) -> (u16, Value) {
    let url = server.http(&format!("/api/pems/conflicts/{id}/resolve"));
    post(&url, &body.to_string()).await
}

/// Issue 12 point 3: a conflict outcome is listed under the id its event carries
/// (`conflict_<ms>_<9 chars>`), in the original's shape; use_local queues the item
/// again (QUEUED, PROCESSING, SUCCESS for the same pfaId); a second resolution is
/// 409 CONFLICT_RESOLVED; unknown ids 404; merge without mergedData 400; use_pems
/// sends no event; the list filters by status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_lists_and_resolves_conflicts() {
    let server = TestServer::start().await;
    let (mut ws, _) = subscribe(&server, "org-c").await;
    let id = queue_conflict(&server, &mut ws, "org-c", "pfa-a").await;
    assert!(is_original_id(&id), "{id}");

    let list = get_json(&server.http("/api/pems/conflicts?organizationId=org-c")).await;
    assert_eq!(list["total"], 1, "{list}");
    let conflict = &list["conflicts"][0];
    let fields: Vec<&str> = conflict
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for field in [
        "id",
        "pfaId",
        "localVersion",
        "pemsVersion",
        "conflictFields",
        "localData",
        "pemsData",
        "status",
        "resolution",
        "mergedData",
        "createdAt",
        "resolvedAt",
        "resolvedBy",
    ] {
        assert!(fields.contains(&field), "{field} in {conflict}");
    }
    assert_eq!(
        (&conflict["id"], &conflict["pfaId"]),
        (&json!(id), &json!("pfa-a"))
    );
    assert_eq!(conflict["status"], "unresolved");
    assert_eq!(conflict["conflictFields"], json!(["quantity", "status"]));
    let (code, _) = get(&server.http("/api/pems/conflicts")).await;
    assert_eq!(code, 400);
    let (code, body) =
        get(&server.http("/api/pems/conflicts?organizationId=org-c&status=open")).await;
    assert_eq!(code, 400, "{body}");
    let other = get_json(&server.http("/api/pems/conflicts?organizationId=org-other")).await;
    assert_eq!(other, json!({"conflicts": [], "total": 0}));

    let (code, body) = resolve(&server, &id, json!({"resolution": "merge"})).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("BAD_REQUEST")),
        "{body}"
    );
    let (code, body) = resolve(&server, &id, json!({"resolution": "keep_both"})).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );
    let (code, body) = resolve(
        &server,
        "conflict_1_nosuchone",
        json!({"resolution": "use_pems"}),
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("NOT_FOUND")),
        "{body}"
    );

    let (code, answer) = resolve(&server, &id, json!({"resolution": "use_local"})).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        (&answer["success"], &answer["conflictId"]),
        (&json!(true), &json!(id))
    );
    assert_eq!(answer["appliedChanges"], conflict["localData"]);
    assert!(answer["resolvedAt"].is_string());
    let again = events_of(&mut ws, "pfa-a", 3).await;
    assert_eq!(
        kinds(&again),
        ["SYNC_QUEUED", "SYNC_PROCESSING", "SYNC_SUCCESS"]
    );

    let (code, body) = resolve(&server, &id, json!({"resolution": "use_local"})).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("CONFLICT_RESOLVED")),
        "{body}"
    );
    let resolved =
        get_json(&server.http("/api/pems/conflicts?organizationId=org-c&status=resolved")).await;
    assert_eq!(resolved["conflicts"][0]["resolution"], "use_local");
    let unresolved =
        get_json(&server.http("/api/pems/conflicts?organizationId=org-c&status=unresolved")).await;
    assert_eq!(unresolved["total"], 0);

    // use_pems: no event for the item; the next frame is the marker published after.
    let id = queue_conflict(&server, &mut ws, "org-c", "pfa-b").await;
    let (code, answer) = resolve(&server, &id, json!({"resolution": "use_pems"})).await;
    assert_eq!(
        (code, &answer["appliedChanges"]),
        (200, &Value::Null),
        "{answer}"
    );
    publish(&server, "org-c", "MARKER", "pfa-marker", json!({}), 1).await;
    assert_eq!(next_json(&mut ws).await["type"], "MARKER");
    // merge writes the merged record.
    let id = queue_conflict(&server, &mut ws, "org-c", "pfa-m").await;
    let merged = json!({"quantity": 11, "status": "ACTIVE"});
    let (code, answer) = resolve(
        &server,
        &id,
        json!({"resolution": "merge", "mergedData": merged}),
    )
    .await;
    assert_eq!(
        (code, &answer["appliedChanges"]),
        (200, &merged),
        "{answer}"
    );
    assert_eq!(
        kinds(&events_of(&mut ws, "pfa-m", 3).await)[2],
        "SYNC_SUCCESS"
    );
}

/// With JWT, listing and resolving go through the same security as write-sync:
/// no token 401, a token for another organization 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conflicts_api_needs_a_token_for_the_organization() {
    let secret = "conflicts test secret";
    let mut config: Config = fast_config();
    config.jwt = Some(syncprobe::claims::JwtConfig::hs256(secret.as_bytes()).unwrap());
    let server = TestServer::with(config).await;
    let token = |org: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_syncprobe"))
            .args(["token", "--secret", secret, "--org", org])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let url = server.http("/api/pems/conflicts?organizationId=org-s");
    let (code, _) = get(&url).await;
    assert_eq!(code, 401);
    let client = reqwest::Client::new();
    let with = |t: String| client.get(&url).bearer_auth(t).send();
    assert_eq!(with(token("org-s")).await.unwrap().status(), 200);
    assert_eq!(with(token("org-t")).await.unwrap().status(), 403);

    let (mut ws, _) = {
        let url = format!("{}?token={}", server.sync_url("org-s"), token("org-s"));
        let mut ws = connect(&url).await;
        let connected = next_json(&mut ws).await;
        (ws, connected)
    };
    let body = json!({"organizationId": "org-s", "pfaIds": ["pfa-s"], "outcome": "conflict"});
    let answer = client
        .post(server.http("/api/pems/write-sync"))
        .bearer_auth(token("org-s"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let id = events_of(&mut ws, "pfa-s", 3).await[2]["details"]["conflictId"]
        .as_str()
        .unwrap()
        .to_string();
    let resolve = |t: Option<String>| {
        let request = client
            .post(server.http(&format!("/api/pems/conflicts/{id}/resolve")))
            .json(&json!({"resolution": "use_pems"}));
        match t {
            Some(t) => request.bearer_auth(t).send(),
            None => request.send(),
        }
    };
    assert_eq!(resolve(None).await.unwrap().status(), 401);
    let refused = resolve(Some(token("org-t"))).await.unwrap();
    assert_eq!(refused.status(), 403);
    // The original backend's token shape: reading needs no perm_Sync, resolving does.
    let read_only = {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_syncprobe"))
            .args([
                "token", "--secret", secret, "--org", "org-s", "--claims", "pfa",
            ])
            .args(["--permission", "perm_Read"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(with(read_only.clone()).await.unwrap().status(), 200);
    let refused = resolve(Some(read_only)).await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["message"].as_str()),
        (Some("FORBIDDEN"), Some("Sync permission required")),
        "{body}"
    );
    assert_eq!(resolve(Some(token("org-s"))).await.unwrap().status(), 200);
}

/// The subcommand against `serve`: the table and the records, then the whole
/// round trip with --wait (exit 0, the item queued again succeeded), then the
/// failures: a resolved one (409: exit 6), an unknown id (exit 6), flag mistakes
/// (exit 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conflicts_command_lists_and_resolves_with_wait() {
    let server = TestServer::start().await;
    let base = server.base();
    let (mut ws, _) = subscribe(&server, "org-k").await;
    let id = queue_conflict(&server, &mut ws, "org-k", "pfa-\u{1b}[31mred").await;

    let out = run_cli(&["conflicts", "org-k", "--url", &base]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Conflicts of org-k: 1 (1 unresolved)"),
        "{text}"
    );
    assert!(
        text.contains(&id) && text.contains("quantity, status"),
        "{text}"
    );
    assert!(
        text.contains("pfa-\\u{1b}[31mred") && !text.contains('\u{1b}'),
        "{text}"
    );

    let out = run_cli(&["conflicts", "org-k", "--url", &base, "--json"]).await;
    let listed_records = records(&out);
    let listed = data_of(&listed_records, "conflict");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], json!(id));
    let summary: ConflictsSummary = summary_of(&listed_records);
    assert_eq!((summary.total, summary.unresolved), (1, 1));

    let out = run_cli(&[
        "conflicts",
        "org-k",
        "--url",
        &base,
        "--resolve",
        &id,
        "--resolution",
        "use_local",
        "--wait",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = records(&out);
    let summary: ResolveSummary = summary_of(&records);
    assert!(
        summary.ok && summary.resolved && summary.requeued,
        "{summary:?}"
    );
    let item = summary.item.expect("the item followed");
    assert_eq!(
        item.events_text(" "),
        "SYNC_QUEUED SYNC_PROCESSING SYNC_SUCCESS"
    );
    let events: Vec<&Value> = data_of(&records, "event");
    assert!(
        events.iter().any(|e| e["type"] == "SYNC_SUCCESS"),
        "{records:?}"
    );

    let out = run_cli(&["conflicts", "org-k", "--url", &base, "--status", "resolved"]).await;
    assert!(stdout(&out).contains("use_local"), "{}", stdout(&out));
    let again = run_cli(&[
        "conflicts",
        "org-k",
        "--url",
        &base,
        "--resolve",
        &id,
        "--resolution",
        "use_pems",
    ])
    .await;
    assert_eq!(again.status.code(), Some(6), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("CONFLICT_RESOLVED"),
        "{}",
        stderr(&again)
    );
    let unknown = run_cli(&[
        "conflicts",
        "org-k",
        "--url",
        &base,
        "--resolve",
        "conflict_0_none",
        "--resolution",
        "use_pems",
    ])
    .await;
    assert_eq!(unknown.status.code(), Some(6));
    assert!(
        stderr(&unknown).contains("no conflict conflict_0_none among the 1 conflict of org-k"),
        "{}",
        stderr(&unknown)
    );

    for bad in [
        vec!["conflicts", "o", "--resolve", "x", "--resolution", "merge"],
        vec![
            "conflicts",
            "o",
            "--resolve",
            "x",
            "--resolution",
            "use_local",
            "--merged-data",
            "{}",
        ],
        vec![
            "conflicts",
            "o",
            "--resolve",
            "x",
            "--resolution",
            "merge",
            "--merged-data",
            "[1]",
        ],
        vec!["conflicts", "o", "--resolve", "x", "--resolution", "keep"],
        vec!["conflicts", "o", "--resolution", "use_pems"],
        vec!["conflicts", "o", "--wait"],
        vec!["conflicts", "o", "--status", "open"],
    ] {
        let mut argv = bad.clone();
        argv.extend(["--url", &base]);
        let out = run_cli(&argv).await;
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
    }
}

/// Against a backend that speaks only the original protocol: its list (with fields
/// syncprobe does not read) is shown, a resolution is followed with --wait, and its
/// 500 for a resolved conflict is a protocol error (exit 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conflicts_command_works_against_the_original_protocol() {
    let (addr, backend) = original(Stats::Absent).await;
    let url = format!("ws://{addr}");
    let smoke = run_cli(&["smoke", "org-o", "--url", &url]).await;
    assert_eq!(smoke.status.code(), Some(0), "{}", stdout(&smoke));
    let id = backend
        .conflict_ids()
        .pop()
        .expect("the smoke run left a conflict");

    let out = run_cli(&[
        "conflicts",
        "org-o",
        "--url",
        &url,
        "--status",
        "unresolved",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&id) && stdout(&out).contains("forecastStart"),
        "{}",
        stdout(&out)
    );

    let out = run_cli(&[
        "conflicts",
        "org-o",
        "--url",
        &url,
        "--resolve",
        &id,
        "--resolution",
        "use_local",
        "--wait",
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("✓ synced"), "{}", stdout(&out));

    let again = run_cli(&[
        "conflicts",
        "org-o",
        "--url",
        &url,
        "--resolve",
        &id,
        "--resolution",
        "use_local",
    ])
    .await;
    assert_eq!(again.status.code(), Some(5), "{}", stderr(&again));
}

/// `smoke --with-conflict` on a Part 2 server: the conflict step queues a conflict,
/// finds it listed, resolves it and sees the item succeed, its seq checked on from
/// the earlier steps (no gap is reported for events an earlier follow read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_with_conflict_passes_the_round_trip_on_serve() {
    let out = run_cli(&["smoke", "--with-conflict", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = records(&out);
    // The step's follows check the stream on from the enqueue step's: no false gap.
    let warnings = data_of(&records, "warning");
    assert!(warnings.is_empty(), "{warnings:?}");
    let summary: SmokeSummary = summary_of(&records);
    let names: Vec<&str> = summary.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "connect",
            "enqueue",
            "lifecycle",
            "seq",
            "sync-status",
            "stats",
            "conflict",
            "close"
        ]
    );
    let step = &summary.steps[6];
    assert_eq!(step.status, StepStatus::Passed, "{step:?}");
    assert!(
        step.message.contains("resolved with use_local")
            && step
                .message
                .contains("SYNC_QUEUED SYNC_PROCESSING SYNC_SUCCESS"),
        "{step:?}"
    );
}
