//! `syncprobe connect` driven against the bundled server and against fakes: its
//! records, one test per exit code, and what reaches the server (credentials,
//! headers, the URL from the environment).

use serde_json::{Value, json};
use syncprobe::report::connect::ConnectSummary;
use syncprobe::report::json::{Close, Open};

use crate::fake::{self, FakeServer, HttpServer, SilentServer};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_to_the_bundled_server_is_confirmed() {
    let server = TestServer::start().await;
    let output = run_cli(&["connect", "org-rio", "--url", &server.base()]).await;
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(out.contains("Connection confirmed"), "{out}");
    assert!(out.contains(&server.sync_url("org-rio")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_records_are_open_event_close_summary() {
    let server = TestServer::start().await;
    let output = run_cli(&["connect", "org-rio", "--url", &server.base(), "--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let records = records(&output);
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["open", "event", "close", "summary"]);

    let open: Open = typed(&records[0]["data"]);
    assert_eq!(open.url, server.sync_url("org-rio"));
    assert_eq!(open.organization_id, "org-rio");
    assert_eq!(open.attempt, 0);
    assert!(open.open_ms >= 0.0);

    // The server's frame, untouched: Part 2 fields included.
    let event = &records[1]["data"];
    assert_eq!(event["type"], "CONNECTED");
    assert_eq!(event["organizationId"], "org-rio");
    assert_eq!(event["seq"], 0);
    let epoch = event["epoch"].as_str().expect("CONNECTED has an epoch");

    let close: Close = typed(&records[2]["data"]);
    assert_eq!(
        (close.code, close.initiator.as_str()),
        (Some(1000), "client")
    );

    let summary: ConnectSummary = typed(&records[3]["data"]);
    assert!(summary.ok);
    assert_eq!(summary.protocol, syncprobe::protocol::ProtocolPart::Part2);
    assert_eq!(summary.organization_id, "org-rio");
    assert_eq!(summary.seq, Some(0));
    assert_eq!(summary.epoch.as_deref(), Some(epoch));
    assert_eq!(summary.events_during_hold, 0);
    assert!(summary.connected_ms >= summary.open_ms);
}

#[tokio::test]
async fn a_part1_backend_is_recognised() {
    let server = FakeServer::sending(vec![fake::part1_connected("org-rio")]).await;
    let output = run_cli(&["connect", "org-rio", "--url", &server.base(), "--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let records = records(&output);
    let summary: ConnectSummary = summary_of(&records);
    assert_eq!(summary.protocol, syncprobe::protocol::ProtocolPart::Part1);
    assert_eq!((summary.seq, summary.epoch), (None, None));
    let events = data_of(&records, "event");
    assert_eq!(events.len(), 1);
    assert!(events[0].get("seq").is_none(), "{}", events[0]);
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let output = run_cli(&["connect", "org-rio", "--no-such-flag"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--no-such-flag"),
        "{}",
        stderr(&output)
    );

    let output = run_cli(&["connect", "org-rio", "--timeout", "5"]).await;
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("--timeout"), "{err}");
    assert!(
        err.contains("500ms"),
        "the error shows how to write it: {err}"
    );
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn a_refused_connection_exits_3() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}");
    let output = run_cli(&[
        "connect",
        "org-rio",
        "--url",
        &url,
        "--connect-timeout",
        "2s",
    ])
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("failed to connect"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[tokio::test]
async fn a_refused_upgrade_exits_3_with_the_status_and_body() {
    let body = r#"{"error":"FORBIDDEN","message":"organization org-rio is not allowed"}"#;
    let server = HttpServer::start("403 Forbidden", body).await;
    let output = run_cli(&[
        "connect",
        "org-rio",
        "--url",
        &server.base(),
        "--connect-timeout",
        "2s",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("HTTP 403"), "{err}");
    assert!(err.contains(r#"{"error":"FORBIDDEN""#), "{err}");
    let records = records(&output);
    let errors = data_of(&records, "error");
    assert_eq!(errors.len(), 1, "{records:?}");
    assert_eq!(errors[0]["exitCode"], 3);
    assert!(data_of(&records, "open").is_empty());
}

#[tokio::test]
async fn no_connected_exits_4() {
    // The upgrade completes, then nothing is ever sent.
    let server = FakeServer::start(|mut ws, _| async move { fake::drain(&mut ws).await }).await;
    let output = run_cli(&[
        "connect",
        "org-rio",
        "--url",
        &server.base(),
        "--timeout",
        "300ms",
    ])
    .await;
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("no CONNECTED within 300ms"), "{err}");
}

#[tokio::test]
async fn an_unanswered_upgrade_exits_4_naming_the_step() {
    let server = SilentServer::start().await;
    let output = run_cli(&[
        "connect",
        "org-rio",
        "--url",
        &server.base(),
        "--connect-timeout",
        "300ms",
    ])
    .await;
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("WebSocket upgrade"), "{err}");
    assert!(err.contains("300ms"), "{err}");
}

/// Runs `connect org-rio` against a fake that sends `frames`, expecting exit 5.
async fn protocol_error(frames: Vec<String>) -> String {
    let server = FakeServer::sending(frames).await;
    let output = run_cli(&[
        "connect",
        "org-rio",
        "--url",
        &server.base(),
        "--timeout",
        "5s",
    ])
    .await;
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    stderr(&output)
}

#[tokio::test]
async fn connected_for_another_organization_exits_5() {
    let err = protocol_error(vec![fake::part1_connected("org-other")]).await;
    assert!(err.contains(r#"organization "org-other""#), "{err}");
    assert!(err.contains(r#""org-rio" was requested"#), "{err}");
}

#[tokio::test]
async fn a_first_frame_other_than_connected_exits_5() {
    let err = protocol_error(vec![fake::part1_event("SYNC_QUEUED", "pfa-1", "org-rio")]).await;
    assert!(err.contains("SYNC_QUEUED, not CONNECTED"), "{err}");
}

#[tokio::test]
async fn a_close_before_connected_exits_5_with_code_and_reason() {
    let server = FakeServer::start(|mut ws, _| async move {
        fake::close(&mut ws, 4000, "Missing organizationId").await;
    })
    .await;
    let output = run_cli(&[
        "connect",
        "org-rio",
        "--url",
        &server.base(),
        "--timeout",
        "5s",
    ])
    .await;
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("code 4000"), "{err}");
    assert!(err.contains("Missing organizationId"), "{err}");
}

#[tokio::test]
async fn a_missing_token_file_exits_6() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-token");
    let output = run_cli(&[
        "connect",
        "org-rio",
        "--url",
        "ws://127.0.0.1:9",
        "--token-file",
        missing.to_str().unwrap(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("failed to read the token file"), "{err}");
    assert!(err.contains("no-such-token"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_hold_closes_normally_and_exits_130() {
    let server = TestServer::start().await;
    let mut run = spawn_cli(&[
        "connect",
        "org-rio",
        "--url",
        &server.base(),
        "--hold",
        "30s",
        "--json",
    ]);
    run.wait_for_connected().await;
    run.interrupt().await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(130), "{}", finished.stderr);
    let closes = data_of(&finished.records, "close");
    assert_eq!(closes.len(), 1, "{:?}", finished.records);
    let close: Close = typed(closes[0]);
    assert_eq!(
        (close.code, close.initiator.as_str()),
        (Some(1000), "client")
    );
    let summary: ConnectSummary = summary_of(&finished.records);
    assert!(summary.ok);
}

#[tokio::test]
async fn ctrl_c_while_waiting_for_connected_exits_130() {
    // The upgrade completes, then CONNECTED never comes.
    let server = FakeServer::start(|mut ws, _| async move { fake::drain(&mut ws).await }).await;
    let mut run = spawn_cli(&[
        "connect",
        "org-rio",
        "--url",
        &server.base(),
        "--timeout",
        "30s",
        "--json",
    ]);
    run.wait_for("the open record", |r| r["type"] == "open")
        .await;
    run.interrupt().await;
    let finished = run.finish().await;
    assert_eq!(
        finished.code(),
        Some(130),
        "{:?}: {}",
        finished.status,
        finished.stderr
    );
    let close: Close = typed(data_of(&finished.records, "close")[0]);
    assert_eq!(
        (close.code, close.initiator.as_str()),
        (Some(1000), "client")
    );
    let errors = data_of(&finished.records, "error");
    assert_eq!(errors.len(), 1, "{:?}", finished.records);
    assert_eq!(errors[0]["exitCode"], 130);
}

#[tokio::test]
async fn the_token_origin_and_headers_reach_the_server() {
    let mut server = FakeServer::sending(vec![fake::part1_connected("org-rio")]).await;
    let output = run_cli(&[
        "connect",
        "org-rio",
        "--url",
        &server.base(),
        "--token",
        "t0k",
        "--origin",
        "https://app.example.test",
        "-H",
        "X-Trace: 1",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let upgrade = server.next_upgrade().await;
    assert_eq!(upgrade.path, "/api/ws/sync/org-rio");
    assert_eq!(upgrade.query, None);
    assert_eq!(upgrade.header("authorization"), Some("Bearer t0k"));
    assert_eq!(upgrade.header("origin"), Some("https://app.example.test"));
    assert_eq!(upgrade.header("x-trace"), Some("1"));
    assert!(
        !stdout(&output).contains("t0k"),
        "the token is never printed"
    );
}

#[tokio::test]
async fn token_in_query_goes_in_the_url_only() {
    let mut server = FakeServer::sending(vec![fake::part1_connected("org-rio")]).await;
    let output = run_cli(&[
        "connect",
        "org-rio",
        "--url",
        &server.base(),
        "--token",
        "t0k",
        "--token-in",
        "query",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let upgrade = server.next_upgrade().await;
    assert_eq!(upgrade.path, "/api/ws/sync/org-rio");
    assert_eq!(upgrade.param("token").as_deref(), Some("t0k"));
    assert_eq!(upgrade.header("authorization"), None);
    // Shown masked.
    let records = records(&output);
    let open: Open = typed(data_of(&records, "open")[0]);
    assert!(open.url.contains("token=***"), "{}", open.url);
    assert!(
        !stdout(&output).contains("t0k"),
        "the token is never printed"
    );
}

#[tokio::test]
async fn the_url_and_token_come_from_the_environment() {
    let mut server = FakeServer::sending(vec![fake::part1_connected("org-env")]).await;
    let output = run_cli_env(
        &["connect", "org-env", "--json"],
        &[
            ("SYNCPROBE_URL", &server.base()),
            ("SYNCPROBE_TOKEN", "env-t0k"),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let upgrade = server.next_upgrade().await;
    assert_eq!(upgrade.path, "/api/ws/sync/org-env");
    assert_eq!(upgrade.header("authorization"), Some("Bearer env-t0k"));
    let summary: ConnectSummary = summary_of(&records(&output));
    assert_eq!(summary.url, server.sync_url("org-env"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_during_hold_are_shown_and_counted() {
    let server = TestServer::start().await;
    let mut run = spawn_cli(&[
        "connect",
        "org-hold",
        "--url",
        &server.base(),
        "--hold",
        "1s",
        "--json",
    ]);
    run.wait_for_connected().await;
    publish(
        &server,
        "org-hold",
        "SYNC_CONFLICT",
        "pfa-7",
        json!({"conflictId": "c-7", "conflictingFields": ["quantity"]}),
        1,
    )
    .await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let events: Vec<&Value> = data_of(&finished.records, "event");
    assert_eq!(events.len(), 2, "{:?}", finished.records);
    assert_eq!(events[1]["type"], "SYNC_CONFLICT");
    assert_eq!(events[1]["pfaId"], "pfa-7");
    assert_eq!(events[1]["seq"], 1);
    let summary: ConnectSummary = summary_of(&finished.records);
    assert_eq!(summary.events_during_hold, 1);
}

/// A server that answers the client's close with a code of its own (4000 "bye").
/// tungstenite would echo the client's code, so the answer is written raw.
async fn answering_close_with_4000() -> FakeServer {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::tungstenite::Message;
    FakeServer::start(|mut ws, _| async move {
        fake::send(&mut ws, &fake::part1_connected("org-rio")).await;
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Close(_) = message {
                // FIN + close opcode, 5 bytes unmasked: 4000 (0x0FA0) and "bye".
                let frame = [0x88, 5, 0x0f, 0xa0, b'b', b'y', b'e'];
                let tcp = ws.get_mut();
                let _ = tcp.write_all(&frame).await;
                let _ = tcp.flush().await;
                let _ = tcp.shutdown().await;
                break;
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_close_answered_with_another_code_shows_both_sides() {
    let server = answering_close_with_4000().await;
    let output = run_cli(&["connect", "org-rio", "--url", &server.base()]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        out.contains(
            "closed by the client (sent code: 1000, reason: normal; \
             the server answered code: 4000, reason: bye)"
        ),
        "{out}"
    );

    let output = run_cli(&["connect", "org-rio", "--url", &server.base(), "--json"]).await;
    let records = records(&output);
    let close = records
        .iter()
        .find(|r| r["type"] == "close")
        .expect("a close record");
    let close: Close = typed(&close["data"]);
    assert_eq!((close.code, close.reason.as_str()), (Some(1000), "normal"));
    assert_eq!(close.initiator.as_str(), "client");
    let answer = close.answer.expect("the server answered");
    assert_eq!((answer.code, answer.reason.as_str()), (4000, "bye"));
}
