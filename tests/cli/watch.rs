//! `syncprobe watch-sync` driven against the bundled server and against fakes:
//! expectations (subsequence, strict, per item), `--fail-on`, filters, the ends of a
//! watch (count, duration, timeout, Ctrl-C, a server close), the protocol checks on
//! every frame, Part 1 compatibility, `seq` continuity, reconnection with and
//! without loss, heartbeats, and `--record`.

use serde_json::{Value, json};
use syncprobe::expect::{Mode, Status};
use syncprobe::protocol::{EventType, ProtocolPart, Timestamp};
use syncprobe::report::json::{Close, Open};
use syncprobe::report::watch::{Reached, WatchOutcome, WatchSummary};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::fake::{self, CutProxy, FakeServer};
use crate::support::*;

/// The frames of every `event` record, CONNECTED included.
fn events(records: &[Value]) -> Vec<&Value> {
    data_of(records, "event")
}

/// The `type` of every event record.
fn event_types(records: &[Value]) -> Vec<String> {
    events(records)
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The `message` of every warning record.
fn warnings(records: &[Value]) -> Vec<String> {
    data_of(records, "warning")
        .iter()
        .map(|w| w["message"].as_str().unwrap().to_string())
        .collect()
}

async fn write_sync(server: &TestServer, body: Value) -> Value {
    let (status, answer) = post(&server.http("/api/pems/write-sync"), &body.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expected_lifecycle_is_satisfied() {
    let server = TestServer::start().await;
    let mut run = spawn_cli(&[
        "watch-sync",
        "org-w",
        "--url",
        &server.base(),
        "--expect",
        "CONNECTED QUEUED PROCESSING+ (SUCCESS|CONFLICT)",
        "--timeout",
        "10s",
        "--json",
    ]);
    run.wait_for_connected().await;
    write_sync(
        &server,
        json!({"organizationId": "org-w", "count": 1, "outcome": "success"}),
    )
    .await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    assert_eq!(
        event_types(&finished.records),
        [
            "CONNECTED",
            "SYNC_QUEUED",
            "SYNC_PROCESSING",
            "SYNC_SUCCESS"
        ]
    );
    let summary: WatchSummary = summary_of(&finished.records);
    assert_eq!(summary.outcome, WatchOutcome::Satisfied);
    let expectation = summary.check.expectation.expect("an expectation summary");
    assert_eq!(expectation.status, Status::Satisfied);
    assert_eq!(expectation.mode, Mode::Subsequence);
    let close: Close = typed(data_of(&finished.records, "close")[0]);
    assert_eq!(
        (close.code, close.initiator.as_str()),
        (Some(1000), "client")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_divergence_exits_1_and_is_explained() {
    let server = TestServer::start().await;
    let mut run = spawn_cli(&[
        "watch-sync",
        "org-s",
        "--url",
        &server.base(),
        "--strict",
        "--expect",
        "CONNECTED QUEUED PROCESSING TERMINAL",
        "--timeout",
        "10s",
        "--json",
    ]);
    run.wait_for_connected().await;
    publish(&server, "org-s", "SYNC_QUEUED", "pfa-1", json!(null), 1).await;
    publish(
        &server,
        "org-s",
        "SYNC_SUCCESS",
        "pfa-1",
        json!({"newVersion": 2}),
        1,
    )
    .await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(1), "{}", finished.stderr);
    let err = &finished.stderr;
    assert!(err.contains("event 2 was SYNC_SUCCESS"), "{err}");
    assert!(err.contains("CONNECTED and event 1 matched"), "{err}");
    assert!(err.contains("expected SYNC_PROCESSING"), "{err}");
    let summary: WatchSummary = summary_of(&finished.records);
    assert_eq!(summary.outcome, WatchOutcome::Failed);
    assert_eq!(summary.check.expectation.unwrap().status, Status::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_item_expectations_hold_for_interleaved_items() {
    let server = TestServer::start().await;
    let mut run = spawn_cli(&[
        "watch-sync",
        "org-p",
        "--url",
        &server.base(),
        "--per-item",
        "--items",
        "2",
        "--expect",
        "QUEUED PROCESSING+ TERMINAL",
        "--strict",
        "--timeout",
        "10s",
        "--json",
    ]);
    run.wait_for_connected().await;
    let answer = write_sync(
        &server,
        json!({"organizationId": "org-p", "count": 2, "outcome": "mixed"}),
    )
    .await;
    let pfas: Vec<&str> = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["pfaId"].as_str().unwrap())
        .collect();
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let summary: WatchSummary = summary_of(&finished.records);
    assert_eq!(summary.outcome, WatchOutcome::Satisfied);
    let mut items: Vec<(&str, EventType, Option<Status>)> = summary
        .check
        .items
        .iter()
        .map(|i| (i.pfa_id.as_str(), i.state.clone(), i.expectation))
        .collect();
    items.sort_by_key(|i| i.0);
    assert_eq!(
        items,
        [
            (pfas[0], EventType::Success, Some(Status::Satisfied)),
            (pfas[1], EventType::Conflict, Some(Status::Satisfied))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_stops_at_the_forbidden_event() {
    let server = TestServer::start().await;
    let mut run = spawn_cli(&[
        "watch-sync",
        "org-f",
        "--url",
        &server.base(),
        "--fail-on",
        "SYNC_FAILED",
        "--duration",
        "10s",
        "--json",
    ]);
    run.wait_for_connected().await;
    write_sync(
        &server,
        json!({"organizationId": "org-f", "count": 1, "outcome": "failed"}),
    )
    .await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(1), "{}", finished.stderr);
    assert!(
        finished.stderr.contains("SYNC_FAILED arrived for pfa-1"),
        "{}",
        finished.stderr
    );
    assert!(finished.stderr.contains("--fail-on"), "{}", finished.stderr);
    let summary: WatchSummary = summary_of(&finished.records);
    assert_eq!(summary.outcome, WatchOutcome::Failed);
    assert_eq!(summary.check.by_type.get("SYNC_FAILED"), Some(&1));
    assert_eq!(summary.check.by_type.get("SYNC_PROCESSING"), Some(&4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_and_where_filters_count_only_matching_events() {
    let server = TestServer::start().await;
    let mut run = spawn_cli(&[
        "watch-sync",
        "org-q",
        "--url",
        &server.base(),
        "--item",
        "pfa-a",
        "--where",
        "details.error=timeout",
        "--count",
        "1",
        "--timeout",
        "10s",
        "--json",
    ]);
    run.wait_for_connected().await;
    let timeout = json!({"error": "timeout", "retryCount": 3});
    // Another item; the wrong error; no error at all; then the one that matches.
    publish(&server, "org-q", "SYNC_FAILED", "pfa-b", timeout.clone(), 1).await;
    publish(
        &server,
        "org-q",
        "SYNC_FAILED",
        "pfa-a",
        json!({"error": "disk full", "retryCount": 0}),
        1,
    )
    .await;
    publish(&server, "org-q", "SYNC_QUEUED", "pfa-a", json!(null), 1).await;
    publish(&server, "org-q", "SYNC_FAILED", "pfa-a", timeout, 1).await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let shown = events(&finished.records);
    assert_eq!(shown.len(), 2, "only CONNECTED and the match: {shown:?}");
    assert_eq!(
        (
            shown[1]["pfaId"].as_str(),
            shown[1]["details"]["error"].as_str(),
            shown[1]["seq"].as_u64()
        ),
        (Some("pfa-a"), Some("timeout"), Some(4))
    );
    let summary: WatchSummary = summary_of(&finished.records);
    assert_eq!(summary.outcome, WatchOutcome::Count);
    assert_eq!(summary.check.events, 1);
    assert_eq!(summary.check.frames, 5);
    assert_eq!(
        summary.check.by_type.into_iter().collect::<Vec<_>>(),
        [("CONNECTED".to_string(), 1), ("SYNC_FAILED".to_string(), 1)]
    );
    let items: Vec<&str> = summary
        .check
        .items
        .iter()
        .map(|i| i.pfa_id.as_str())
        .collect();
    assert_eq!(items, ["pfa-a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmet_expectation_times_out_with_exit_4() {
    let server = TestServer::start().await;
    let output = run_cli(&[
        "watch-sync",
        "org-t",
        "--url",
        &server.base(),
        "--expect",
        "CONNECTED QUEUED",
        "--timeout",
        "300ms",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("timed out after 300ms"),
        "{}",
        stderr(&output)
    );
    let summary: WatchSummary = summary_of(&records(&output));
    assert_eq!(summary.outcome, WatchOutcome::Timeout);
    assert_eq!(summary.check.expectation.unwrap().status, Status::Pending);
    assert!(summary.duration_ms >= 300.0, "{}", summary.duration_ms);
}

#[tokio::test]
async fn count_stops_after_that_many_events() {
    let mut frames = vec![fake::part1_connected("org-c")];
    for n in 1..=5 {
        frames.push(fake::part1_event(
            "SYNC_QUEUED",
            &format!("pfa-{n}"),
            "org-c",
        ));
    }
    let server = FakeServer::sending(frames).await;
    let output = run_cli(&[
        "watch-sync",
        "org-c",
        "--url",
        &server.base(),
        "--count",
        "3",
        "--timeout",
        "5s",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let records = records(&output);
    let pfas: Vec<&str> = events(&records)
        .iter()
        .skip(1)
        .map(|e| e["pfaId"].as_str().unwrap())
        .collect();
    assert_eq!(pfas, ["pfa-1", "pfa-2", "pfa-3"]);
    let summary: WatchSummary = summary_of(&records);
    assert_eq!(
        (summary.outcome, summary.check.events),
        (WatchOutcome::Count, 3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_ends_a_watch_without_expectation_successfully() {
    let server = TestServer::start().await;
    let output = run_cli(&[
        "watch-sync",
        "org-d",
        "--url",
        &server.base(),
        "--duration",
        "300ms",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let summary: WatchSummary = summary_of(&records(&output));
    assert_eq!(summary.outcome, WatchOutcome::Duration);
    assert!(summary.duration_ms >= 300.0, "{}", summary.duration_ms);
    assert_eq!(summary.check.events, 0);
}

/// One broken frame: what it is, and a word the complaint about it must contain.
fn broken_frames() -> Vec<(&'static str, Message, &'static str)> {
    let other_org = fake::part1_event("SYNC_QUEUED", "pfa-x", "org-other");
    let mut bad_time = fake::part1_event_value("SYNC_QUEUED", "pfa-x", "org-v");
    bad_time["timestamp"] = json!("2025-11-28 10:00:00");
    vec![
        (
            "another organization",
            Message::text(other_org),
            "rooms must isolate",
        ),
        (
            "a bad timestamp",
            Message::text(bad_time.to_string()),
            "timestamp",
        ),
        (
            "malformed JSON",
            Message::text(r#"{"type":"SYNC_QUEUED","#),
            "malformed",
        ),
        (
            "a binary frame",
            Message::binary(vec![1u8, 2, 3]),
            "binary frame",
        ),
    ]
}

/// A fake sending CONNECTED, `bad`, then a good event.
async fn server_breaking_with(bad: Message) -> FakeServer {
    FakeServer::sending_messages(vec![
        Message::text(fake::part1_connected("org-v")),
        bad,
        Message::text(fake::part1_event("SYNC_QUEUED", "pfa-good", "org-v")),
    ])
    .await
}

#[tokio::test]
async fn protocol_violations_exit_5() {
    for (what, bad, complaint) in broken_frames() {
        let server = server_breaking_with(bad).await;
        // Had the bad frame been ignored, the good one would end the run with 0.
        let output = run_cli(&[
            "watch-sync",
            "org-v",
            "--url",
            &server.base(),
            "--count",
            "1",
            "--timeout",
            "5s",
            "--json",
        ])
        .await;
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(5), "{what}: {err}");
        assert!(err.contains(complaint), "{what}: {err}");
        let summary: WatchSummary = summary_of(&records(&output));
        assert_eq!(summary.outcome, WatchOutcome::ProtocolError, "{what}");
    }
}

#[tokio::test]
async fn lenient_mode_warns_about_violations_and_goes_on() {
    for (what, bad, complaint) in broken_frames() {
        let server = server_breaking_with(bad).await;
        let output = run_cli(&[
            "watch-sync",
            "org-v",
            "--url",
            &server.base(),
            "--lenient",
            "--count",
            "1",
            "--timeout",
            "5s",
            "--json",
        ])
        .await;
        assert_eq!(output.status.code(), Some(0), "{what}: {}", stderr(&output));
        let records = records(&output);
        let warnings = warnings(&records);
        assert!(
            warnings.iter().any(|w| w.contains(complaint)),
            "{what}: {warnings:?}"
        );
        let summary: WatchSummary = summary_of(&records);
        let items: Vec<&str> = summary
            .check
            .items
            .iter()
            .map(|i| i.pfa_id.as_str())
            .collect();
        assert_eq!(
            items,
            ["pfa-good"],
            "{what}: the good event is the one counted"
        );
        assert_eq!(summary.check.events, 1, "{what}");
    }
}

#[tokio::test]
async fn unknown_event_types_are_tolerated_and_mentioned_once() {
    let server = FakeServer::sending(vec![
        fake::part1_connected("org-u"),
        fake::part1_event("SYNC_PAUSED", "pfa-1", "org-u"),
        fake::part1_event("SYNC_PAUSED", "pfa-2", "org-u"),
        fake::part1_event("SYNC_QUEUED", "pfa-3", "org-u"),
    ])
    .await;
    let output = run_cli(&[
        "watch-sync",
        "org-u",
        "--url",
        &server.base(),
        "--count",
        "3",
        "--timeout",
        "5s",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let records = records(&output);
    let mentions: Vec<String> = warnings(&records)
        .into_iter()
        .filter(|w| w.contains("SYNC_PAUSED"))
        .collect();
    assert_eq!(mentions.len(), 1, "{mentions:?}");
    assert!(mentions[0].contains("unknown event type"), "{mentions:?}");
    let summary: WatchSummary = summary_of(&records);
    assert_eq!(summary.check.unknown_types, ["SYNC_PAUSED"]);
    assert_eq!(summary.check.by_type.get("SYNC_PAUSED"), Some(&2));
    assert_eq!(summary.check.events, 3);
}

#[tokio::test]
async fn a_part1_backend_satisfies_expectations_without_seq() {
    let org = "org-p1";
    let server = FakeServer::sending(vec![
        fake::part1_connected(org),
        fake::part1_event("SYNC_QUEUED", "pfa-1", org),
        fake::part1_event("SYNC_PROCESSING", "pfa-1", org),
        fake::part1_event("SYNC_PROCESSING", "pfa-1", org),
        fake::part1_event("SYNC_SUCCESS", "pfa-1", org),
    ])
    .await;
    let output = run_cli(&[
        "watch-sync",
        org,
        "--url",
        &server.base(),
        "--expect",
        "CONNECTED QUEUED PROCESSING+ SUCCESS",
        "--timeout",
        "5s",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let records = records(&output);
    let data = data_of(&records, "summary")[0];
    assert!(data["seq"].is_null(), "{data}");
    let summary: WatchSummary = summary_of(&records);
    assert_eq!(summary.outcome, WatchOutcome::Satisfied);
    assert_eq!(summary.check.seq, None);
    assert_eq!(summary.check.items.len(), 1);
    assert_eq!(summary.check.items[0].state, EventType::Success);
    assert_eq!(summary.check.items[0].details, "newVersion=2");
    assert!(warnings(&records).is_empty(), "{records:?}");
}

#[tokio::test]
async fn seq_gaps_and_duplicates_are_reported() {
    let org = "org-g";
    let server = FakeServer::sending(vec![
        fake::part2_connected(org, 0, "e"),
        fake::part2_event("SYNC_QUEUED", "pfa-1", org, 1),
        fake::part2_event("SYNC_PROCESSING", "pfa-1", org, 2),
        fake::part2_event("SYNC_QUEUED", "pfa-2", org, 4),
        fake::part2_event("SYNC_QUEUED", "pfa-2", org, 4),
    ])
    .await;
    let output = run_cli(&[
        "watch-sync",
        org,
        "--url",
        &server.base(),
        "--count",
        "4",
        "--timeout",
        "5s",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let records = records(&output);
    let warnings = warnings(&records);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("gap") && warnings[0].contains('3'),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("duplicate") && warnings[1].contains('4'),
        "{warnings:?}"
    );
    let summary: WatchSummary = summary_of(&records);
    let seq = summary.check.seq.expect("seq figures of a Part 2 stream");
    assert_eq!(
        (seq.gaps, seq.duplicates, seq.missing, seq.late),
        (1, 1, 1, 0)
    );
    assert_eq!(
        (seq.epoch.as_deref(), seq.last_seq, seq.epoch_changes),
        (Some("e"), Some(4), 0)
    );
}

/// Waits for the `event` record of the event numbered `seq`.
async fn wait_for_seq(run: &mut Running, seq: u64) {
    run.wait_for(&format!("the event of seq {seq}"), |r| {
        r["type"] == "event" && r["data"]["type"] != "CONNECTED" && r["data"]["seq"] == seq
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_resumes_without_loss() {
    let server = TestServer::start().await;
    let proxy = CutProxy::start(server.addr).await;
    let org = "org-nl";
    let mut run = spawn_cli(&[
        "watch-sync",
        org,
        "--url",
        &proxy.base(),
        "--reconnect",
        "--reconnect-base",
        "50ms",
        "--count",
        "9",
        "--timeout",
        "20s",
        "--connect-timeout",
        "2s",
        "--json",
    ]);
    let connected = run.wait_for_connected().await;
    let epoch = connected["data"]["epoch"].as_str().unwrap().to_string();
    publish(&server, org, "SYNC_QUEUED", "pfa-1", json!(null), 3).await;
    wait_for_seq(&mut run, 3).await;

    // Cut, and keep the client out while more events are published.
    proxy.hold();
    proxy.cut();
    run.wait_for("the close of the cut connection", |r| r["type"] == "close")
        .await;
    publish(&server, org, "SYNC_PROCESSING", "pfa-1", json!(null), 3).await;
    proxy.open();
    run.wait_for_connected().await;
    publish(&server, org, "SYNC_PROCESSING", "pfa-2", json!(null), 3).await;

    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let seqs: Vec<u64> = events(&finished.records)
        .iter()
        .filter(|e| e["type"] != "CONNECTED")
        .map(|e| e["seq"].as_u64().expect("every event has a seq"))
        .collect();
    assert_eq!(
        seqs,
        (1..=9).collect::<Vec<_>>(),
        "every event exactly once"
    );
    let opens: Vec<Open> = data_of(&finished.records, "open")
        .into_iter()
        .map(typed)
        .collect();
    assert_eq!(opens.len(), 2, "{opens:?}");
    assert_eq!(opens[1].attempt, 1);
    assert!(opens[1].url.contains("since=3"), "{}", opens[1].url);
    assert!(
        opens[1].url.contains(&format!("epoch={epoch}")),
        "{}",
        opens[1].url
    );
    let reconnected = events(&finished.records)
        .into_iter()
        .filter(|e| e["type"] == "CONNECTED")
        .nth(1)
        .unwrap();
    assert_eq!(reconnected["historyTruncated"], false, "{reconnected}");
    let summary: WatchSummary = summary_of(&finished.records);
    assert!(summary.check.reconnects >= 1);
    let seq = summary.check.seq.unwrap();
    assert_eq!(
        (seq.gaps, seq.duplicates, seq.missing, seq.truncations),
        (0, 0, 0, 0)
    );
    assert!(proxy.accepted() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_is_reported_as_an_epoch_change() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let first = TestServer::on(listener, fast_config());
    let org = "org-re";
    let mut run = spawn_cli(&[
        "watch-sync",
        org,
        "--url",
        &first.base(),
        "--reconnect",
        "--reconnect-base",
        "50ms",
        "--count",
        "2",
        "--timeout",
        "20s",
        "--connect-timeout",
        "2s",
        "--json",
    ]);
    let connected = run.wait_for_connected().await;
    let old_epoch = connected["data"]["epoch"].as_str().unwrap().to_string();
    publish(&first, org, "SYNC_QUEUED", "pfa-1", json!(null), 1).await;
    wait_for_seq(&mut run, 1).await;

    first.stop().await.unwrap();
    let close = run
        .wait_for("the server's close", |r| r["type"] == "close")
        .await;
    let close: Close = typed(&close["data"]);
    assert_eq!(
        (close.code, close.initiator.as_str()),
        (Some(1001), "server")
    );
    let listener = TcpListener::bind(addr).await.unwrap();
    let second = TestServer::on(listener, fast_config());
    let connected = run.wait_for_connected().await;
    let new_epoch = connected["data"]["epoch"].as_str().unwrap().to_string();
    assert_ne!(new_epoch, old_epoch);
    publish(&second, org, "SYNC_QUEUED", "pfa-2", json!(null), 1).await;

    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let warnings = warnings(&finished.records);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&old_epoch) && w.contains(&new_epoch)),
        "{warnings:?}"
    );
    let last = *events(&finished.records).last().unwrap();
    assert_eq!(
        (last["pfaId"].as_str(), last["seq"].as_u64()),
        (Some("pfa-2"), Some(1))
    );
    let summary: WatchSummary = summary_of(&finished.records);
    let seq = summary.check.seq.unwrap();
    assert_eq!(seq.epoch_changes, 1);
    assert_eq!(seq.epoch.as_deref(), Some(new_epoch.as_str()));
    assert!(summary.check.reconnects >= 1);
}

#[tokio::test]
async fn a_server_close_without_reconnect_exits_5_naming_the_code() {
    let server = FakeServer::start(|mut ws, _| async move {
        fake::send(&mut ws, &fake::part1_connected("org-x")).await;
        fake::close(&mut ws, 4403, "organization no longer valid").await;
    })
    .await;
    let output = run_cli(&["watch-sync", "org-x", "--url", &server.base(), "--json"]).await;
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(5), "{err}");
    assert!(err.contains("code 4403"), "{err}");
    assert!(err.contains("organization no longer valid"), "{err}");
    let records = records(&output);
    let close: Close = typed(data_of(&records, "close")[0]);
    assert_eq!(
        (close.code, close.initiator.as_str()),
        (Some(4403), "server")
    );
    let summary: WatchSummary = summary_of(&records);
    assert_eq!(summary.outcome, WatchOutcome::Closed);
}

#[tokio::test]
async fn a_part1_reconnection_reports_the_loss_window() {
    let org = "org-l";
    let server = FakeServer::start(move |mut ws, upgrade| async move {
        fake::send(&mut ws, &fake::part1_connected(org)).await;
        if upgrade.index == 0 {
            fake::send(&mut ws, &fake::part1_event("SYNC_QUEUED", "pfa-1", org)).await;
            fake::close(&mut ws, 1001, "restarting").await;
        } else {
            fake::send(&mut ws, &fake::part1_event("SYNC_SUCCESS", "pfa-1", org)).await;
            fake::drain(&mut ws).await;
        }
    })
    .await;
    let output = run_cli(&[
        "watch-sync",
        org,
        "--url",
        &server.base(),
        "--reconnect",
        "--reconnect-base",
        "50ms",
        "--count",
        "2",
        "--timeout",
        "5s",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let records = records(&output);
    let summary: WatchSummary = summary_of(&records);
    assert_eq!(summary.check.reconnects, 1);
    assert_eq!(summary.check.loss_windows.len(), 1, "{summary:?}");
    let window = &summary.check.loss_windows[0];
    assert!(window.from <= window.to, "{window:?}");
    assert!(
        warnings(&records)
            .iter()
            .any(|w| w.contains("without sequence numbers")),
        "{records:?}"
    );
    // Resuming needs seq: a Part 1 reconnection asks for nothing.
    let opens: Vec<Open> = data_of(&records, "open").into_iter().map(typed).collect();
    assert_eq!(opens.len(), 2);
    assert!(!opens[1].url.contains("since="), "{}", opens[1].url);
}

#[tokio::test]
async fn a_server_that_stops_answering_pings_is_dead() {
    let server = FakeServer::start(|mut ws, _| async move {
        fake::send(&mut ws, &fake::part1_connected("org-ping")).await;
        // Never read again: pings go unanswered.
        std::future::pending::<()>().await;
        drop(ws);
    })
    .await;
    let output = run_cli(&[
        "watch-sync",
        "org-ping",
        "--url",
        &server.base(),
        "--ping-interval",
        "100ms",
        "--json",
    ])
    .await;
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(5), "{err}");
    assert!(err.contains("stopped answering pings"), "{err}");
    let summary: WatchSummary = summary_of(&records(&output));
    assert_eq!(summary.outcome, WatchOutcome::ProtocolError);
}

#[tokio::test]
async fn record_writes_every_frame_with_its_receive_time() {
    let org = "org-rec";
    let sent = vec![
        fake::part1_connected(org),
        fake::part1_event("SYNC_QUEUED", "pfa-1", org),
        fake::part1_event("SYNC_CONFLICT", "pfa-1", org),
    ];
    let server = FakeServer::sending(sent.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    let output = run_cli(&[
        "watch-sync",
        org,
        "--url",
        &server.base(),
        "--count",
        "2",
        "--timeout",
        "5s",
        "--record",
        path.to_str().unwrap(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut frames = Vec::new();
    for line in text.lines() {
        let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        let at = record["receivedAt"].as_str().expect("receivedAt");
        let parsed: Timestamp = at.parse().expect("the protocol's timestamp format");
        assert_eq!(parsed.to_string(), at);
        assert!(record["receivedAtUs"].is_u64(), "{record}");
        frames.push(record["frame"].clone());
    }
    let expected: Vec<Value> = sent
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    assert_eq!(frames, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_the_watch_with_a_summary_and_exit_130() {
    let server = TestServer::start().await;
    let mut run = spawn_cli(&["watch-sync", "org-i", "--url", &server.base(), "--json"]);
    run.wait_for_connected().await;
    run.interrupt().await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(130), "{}", finished.stderr);
    let summary: WatchSummary = summary_of(&finished.records);
    assert_eq!(summary.outcome, WatchOutcome::Interrupted);
    let close: Close = typed(data_of(&finished.records, "close")[0]);
    assert_eq!(
        (close.code, close.initiator.as_str()),
        (Some(1000), "client")
    );
}

/// A guard that names no type of the protocol could never fire: usage error (exit 2)
/// at once, with the nearest name, in text and in the `--json` error record; a
/// custom type is admitted only by --allow-type, and then matches.
#[tokio::test]
async fn misspelt_event_types_are_usage_errors_and_custom_ones_need_allow_type() {
    let server = TestServer::start().await;
    let base = server.base();
    for (flags, wanted) in [
        (vec!["--fail-on", "SYNC_FAILD"], "did you mean SYNC_FAILED?"),
        (vec!["--fail-on", "QUEUED,FOO"], "unknown event type FOO"),
        (vec!["--fail-on", ""], "an event type is empty"),
        (
            vec!["--expect", "QUEUED PROCESSING+ SUCCES"],
            "column 20: unknown event type SUCCES (did you mean SUCCESS?)",
        ),
    ] {
        let mut argv = vec!["watch-sync", "org-t", "--url", &base, "--timeout", "60s"];
        argv.extend(&flags);
        let started = std::time::Instant::now();
        let out = run_cli(&argv).await;
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(wanted), "{flags:?}: {}", stderr(&out));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{flags:?} waited"
        );
        argv.push("--json");
        let records = records(&run_cli(&argv).await);
        let errors = data_of(&records, "error");
        assert_eq!(errors.len(), 1, "{records:?}");
        assert_eq!(errors[0]["exitCode"], 2);
    }
    // --allow-type admits the custom type, and the guard then fires on it.
    let mut run = spawn_cli(&[
        "watch-sync",
        "org-t",
        "--url",
        &base,
        "--fail-on",
        "HEARTBEAT",
        "--allow-type",
        "HEARTBEAT",
        "--timeout",
        "30s",
        "--json",
    ]);
    run.wait_for_connected().await;
    publish(&server, "org-t", "HEARTBEAT", "pfa-h", json!(null), 1).await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(1), "{}", finished.stderr);
}

/// An item that ends otherwise fails its per-item expectation at once (exit 1),
/// not at --timeout (exit 4): its one terminal event came, nothing more will.
#[tokio::test]
async fn a_per_item_expectation_fails_as_soon_as_its_item_ends_otherwise() {
    let server = TestServer::start().await;
    let mut run = spawn_cli(&[
        "watch-sync",
        "org-pi",
        "--url",
        &server.base(),
        "--per-item",
        "--expect",
        "QUEUED PROCESSING+ SUCCESS",
        "--timeout",
        "10m",
        "--json",
    ]);
    run.wait_for_connected().await;
    write_sync(
        &server,
        json!({"organizationId": "org-pi", "count": 1, "outcome": "conflict"}),
    )
    .await;
    // run.finish() is bounded by a minute: the ten-minute timeout cannot be what ends it.
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(1), "{}", finished.stderr);
    assert!(
        finished
            .stderr
            .contains("ended with SYNC_CONFLICT before its expectation was met"),
        "{}",
        finished.stderr
    );
    let summary: WatchSummary = summary_of(&finished.records);
    assert_eq!(summary.outcome, WatchOutcome::Failed);
}

/// A server that sends CONNECTED, then closes at once with `code`; counts upgrades.
async fn closing_after_connected(
    code: u16,
) -> (FakeServer, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let upgrades = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = upgrades.clone();
    let server = FakeServer::start(move |mut ws, _| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move {
            fake::send(&mut ws, &fake::part1_connected("org-f")).await;
            fake::close(&mut ws, code, "bye").await;
        }
    })
    .await;
    (server, upgrades)
}

/// A server that accepts and drops every connection at once is waited for with
/// backoff, and given up on after --reconnect-attempts short sessions: a short
/// session does not reset the attempt counter.
#[tokio::test]
async fn flapping_servers_are_backed_off_and_given_up_on() {
    let (server, upgrades) = closing_after_connected(1011).await;
    let out = run_cli(&[
        "watch-sync",
        "org-f",
        "--url",
        &server.base(),
        "--reconnect",
        "--reconnect-attempts",
        "2",
        "--reconnect-base",
        "10ms",
        "--reconnect-cap",
        "20ms",
        "--duration",
        "30s",
    ])
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("giving up"), "{}", stderr(&out));
    // The first session and one per allowed attempt: not a reconnect storm.
    assert_eq!(upgrades.load(std::sync::atomic::Ordering::SeqCst), 3);
}

/// Close codes that no reconnection can change end a --reconnect watch at once.
#[tokio::test]
async fn final_close_codes_end_a_reconnecting_watch_at_once() {
    for code in [4000, 4401, 4403, 1008] {
        let (server, upgrades) = closing_after_connected(code).await;
        let out = run_cli(&[
            "watch-sync",
            "org-f",
            "--url",
            &server.base(),
            "--reconnect",
            "--duration",
            "30s",
        ])
        .await;
        assert_eq!(out.status.code(), Some(5), "{code}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&code.to_string()),
            "{code}: {}",
            stderr(&out)
        );
        assert_eq!(
            upgrades.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{code}"
        );
    }
}

/// A hostile server's text: ids and types of 70,000 characters, control and escape
/// sequences (CR, OSC 52, BEL, C1 CSI, a bidi override) in fields and in the close
/// reason. The human output has none of them raw and no line longer than a few
/// hundred characters; nothing panics; the verdicts are still computed.
#[tokio::test]
async fn hostile_server_text_never_reaches_the_terminal_raw() {
    let long = "P".repeat(70_000);
    let nasty = "ok\r\u{1b}]52;c;aGk=\u{7}\u{9b}31m\u{202e}evil";
    let frames = vec![
        fake::part1_connected("org-h"),
        json!({"type": "SYNC_QUEUED", "pfaId": long, "organizationId": "org-h",
               "timestamp": Timestamp::now()})
        .to_string(),
        json!({"type": "SYNC_FAILED", "pfaId": nasty, "organizationId": "org-h",
               "timestamp": Timestamp::now(),
               "details": {"error": nasty, "retryCount": 3}})
        .to_string(),
        json!({"type": long, "pfaId": "p", "organizationId": "org-h",
               "timestamp": Timestamp::now()})
        .to_string(),
    ];
    let server = FakeServer::start(move |mut ws, _| {
        let frames = frames.clone();
        async move {
            fake::send_all(&mut ws, &frames).await;
            fake::close(&mut ws, 1000, "bye\u{1b}[2J\r\u{202e}").await;
        }
    })
    .await;
    let base = server.base();
    for extra in [
        vec!["--count", "3"],
        vec!["--per-item", "--expect", "QUEUED PROCESSING+ SUCCESS"],
        vec!["--duration", "2s"],
    ] {
        let mut argv = vec![
            "watch-sync",
            "org-h",
            "--url",
            &base,
            "--color",
            "never",
            "--timeout",
            "20s",
        ];
        argv.extend(&extra);
        let out = run_cli(&argv).await;
        let code = out.status.code();
        assert!(
            matches!(code, Some(0..=6)),
            "{extra:?}: {code:?}: {}",
            stderr(&out)
        );
        for (name, text) in [("stdout", stdout(&out)), ("stderr", stderr(&out))] {
            for bad in ['\u{1b}', '\r', '\u{7}', '\u{9b}', '\u{202e}'] {
                assert!(
                    !text.contains(bad),
                    "{extra:?}: raw {bad:?} on {name}: {text:?}"
                );
            }
            let longest = text.lines().max_by_key(|l| l.chars().count()).unwrap_or("");
            let start: String = longest.chars().take(120).collect();
            assert!(
                longest.chars().count() < 1_000,
                "{extra:?}: a {}-character line on {name}: {start}…",
                longest.chars().count()
            );
        }
    }
}

/// Reads `ws` until `terminals` items have ended (the server's history then holds
/// all of their events).
async fn wait_until_ended(ws: &mut Ws, terminals: usize) {
    let mut ended = 0;
    for _ in 0..1000 {
        if ended == terminals {
            return;
        }
        let frame = next_json(ws).await;
        let kind = frame["type"].as_str().unwrap_or("");
        if matches!(kind, "SYNC_SUCCESS" | "SYNC_CONFLICT" | "SYNC_FAILED") {
            ended += 1;
        }
    }
    panic!("{ended} of {terminals} items ended");
}

/// Issue 11 point 5: `--since N` and `--last N` replay what the server kept; the
/// replayed events (seq up to CONNECTED.seq) are counted as replayed, not as
/// duplicates, and are no latency samples; live ones after them are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_and_last_replay_history_counted_as_replayed() {
    let server = TestServer::start().await;
    let org = "org-replay";
    // Subscribed before the write, so no event can pass unseen.
    let (mut ws, _) = subscribe(&server, org).await;
    write_sync(&server, json!({"organizationId": org, "count": 2})).await;
    wait_until_ended(&mut ws, 2).await;
    let base = server.base();
    let out = run_cli(&[
        "watch-sync",
        org,
        "--url",
        &base,
        "--since",
        "0",
        "--count",
        "6",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: WatchSummary = summary_of(&records(&out));
    assert_eq!((summary.check.events, summary.check.replayed), (6, 6));
    let seq = summary.check.seq.clone().unwrap();
    assert_eq!((seq.duplicates, seq.gaps, seq.last_seq), (0, 0, Some(6)));
    assert_eq!(
        summary.check.delivery_latency_ms, None,
        "replays are no latency sample"
    );

    // --last 2: the last two of the six, then one live event.
    let mut run = spawn_cli(&[
        "watch-sync",
        org,
        "--url",
        &base,
        "--last",
        "2",
        "--count",
        "3",
        "--json",
    ]);
    run.wait_for_connected().await;
    wait_for_seq(&mut run, 6).await;
    publish(&server, org, "SYNC_QUEUED", "pfa-live", Value::Null, 1).await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let seqs: Vec<u64> = events(&finished.records)
        .iter()
        .filter(|e| e["type"] != "CONNECTED")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [5, 6, 7]);
    let summary: WatchSummary = summary_of(&finished.records);
    assert_eq!((summary.check.events, summary.check.replayed), (3, 2));
    assert_eq!(summary.check.delivery_latency_ms.unwrap().count, 1);

    // People see which lines are replays and how many there were.
    let out = run_cli(&[
        "watch-sync",
        org,
        "--url",
        &base,
        "--since",
        "5",
        "--count",
        "2",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("#6  newVersion=2  (replayed)"), "{text}");
    assert!(text.contains("#7  (replayed)"), "{text}");
    assert!(
        text.contains("2 events (2 replayed); 3 frames received"),
        "{text}"
    );
}

/// --since/--last ask a Part 1 server for history it does not keep: exit 5 naming
/// the cause; both flags together are a usage error.
#[tokio::test]
async fn since_and_last_need_a_part2_server() {
    let org = "org-p1r";
    let mut server = FakeServer::sending(vec![
        fake::part1_connected(org),
        fake::part1_event("SYNC_QUEUED", "pfa-1", org),
    ])
    .await;
    for flag in ["--since", "--last"] {
        let out = run_cli(&[
            "watch-sync",
            org,
            "--url",
            &server.base(),
            flag,
            "3",
            "--timeout",
            "5s",
            "--json",
        ])
        .await;
        assert_eq!(out.status.code(), Some(5), "{flag}: {}", stderr(&out));
        let records = records(&out);
        let error = &data_of(&records, "error")[0]["message"];
        assert!(error.as_str().unwrap().contains("Part 1 server"), "{error}");
        let summary: WatchSummary = summary_of(&records);
        assert_eq!(summary.outcome, WatchOutcome::ProtocolError);
        assert_eq!(summary.check.protocol, Some(ProtocolPart::Part1));
        let upgrade = server.next_upgrade().await;
        let expected = (flag == "--since").then(|| "3".to_string());
        assert_eq!(upgrade.param("since"), expected, "{flag}");
    }
    let out = run_cli(&["watch-sync", org, "--since", "1", "--last", "1"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// A shell-like split of a README command: words, and '…' quoted words.
fn words(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in command.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

/// The syncprobe commands of README's "From the seed checklist to syncprobe" table,
/// in its order.
fn checklist_commands() -> Vec<Vec<String>> {
    let readme = include_str!("../../README.md");
    let table = readme
        .split("### From the seed checklist to syncprobe")
        .nth(1)
        .expect("the checklist section")
        .split("\n## ")
        .next()
        .unwrap();
    table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| seed checklist step"))
        .filter_map(|row| {
            let cell = row.rsplit('|').nth(1)?;
            let command = cell.split('`').nth(1)?;
            command.starts_with("syncprobe ").then(|| words(command))
        })
        .collect()
}

/// Issue 11 point 5: every command of the README's seed-checklist table, in the
/// table's order, against `serve` (in-process; the table's own `syncprobe serve`
/// row is that server): each exits 0, and the row that runs until Ctrl-C is
/// interrupted (130) after its CONNECTED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_checklist_table_works_in_its_own_order() {
    let server = TestServer::start().await;
    let commands = checklist_commands();
    assert!(commands.len() >= 6, "{commands:?}");
    let base = server.base();
    let http = server.http("");
    for command in &commands {
        let mut argv: Vec<String> = command[1..].to_vec();
        if argv[0] == "serve" {
            continue;
        }
        match argv.iter().position(|w| w == "--url") {
            Some(at) => argv[at + 1] = argv[at + 1].replace("http://localhost:3000", &http),
            None => argv.extend(["--url".to_string(), base.clone()]),
        }
        argv.extend(["--timeout".to_string(), "20s".to_string()]);
        let until_interrupted =
            argv[0] == "watch-sync" && !argv.iter().any(|w| w.starts_with("--expect"));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        if until_interrupted {
            let mut with_json = argv.clone();
            with_json.push("--json");
            let mut run = spawn_cli(&with_json);
            run.wait_for_connected().await;
            run.interrupt().await;
            let finished = run.finish().await;
            assert_eq!(finished.code(), Some(130), "{argv:?}: {}", finished.stderr);
            continue;
        }
        let out = run_cli(&argv).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{argv:?}:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
    }
}

/// Issue 11 point 6: when nothing was received the summary says so and names no
/// protocol part: a refused port, a silent port (bounded by --timeout), a web page
/// answering 200, and --duration 0. connect writes no summary then, only its error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_without_any_frame_says_so() {
    let refused = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("ws://{}", listener.local_addr().unwrap())
    };
    let silent = fake::SilentServer::start().await;
    let web = fake::HttpServer::start("200 OK", "<html><body>hello</body></html>").await;
    let cases = [
        (
            "refused",
            refused.clone(),
            vec![],
            3,
            WatchOutcome::ConnectFailed,
        ),
        (
            "silent",
            silent.base(),
            vec!["--timeout", "1s"],
            4,
            WatchOutcome::ConnectFailed,
        ),
        (
            "web page",
            web.base(),
            vec![],
            3,
            WatchOutcome::ConnectFailed,
        ),
        // A watch whose --duration ends before CONNECTED watched nothing: exit 4.
        // (`--duration 0` is refused as a usage error: see usage.rs.)
        (
            "--duration before CONNECTED",
            silent.base(),
            vec!["--duration", "300ms"],
            4,
            WatchOutcome::ConnectFailed,
        ),
    ];
    for (name, url, extra, code, outcome) in cases {
        let mut argv = vec!["watch-sync", "org-n", "--url", &url];
        argv.extend(&extra);
        let started = std::time::Instant::now();
        let out = run_cli(&argv).await;
        assert_eq!(out.status.code(), Some(code), "{name}: {}", stderr(&out));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(8),
            "{name}: bounded"
        );
        let text = stdout(&out);
        assert!(text.contains("no frame received"), "{name}: {text}");
        assert!(!text.contains("Part 1"), "{name}: {text}");
        argv.push("--json");
        let out = run_cli(&argv).await;
        let summary: WatchSummary = summary_of(&records(&out));
        assert_eq!(summary.outcome, outcome, "{name}");
        assert_eq!(summary.reached, Reached::None, "{name}");
        assert_eq!(
            (summary.check.protocol, summary.check.frames),
            (None, 0),
            "{name}"
        );
        let out = run_cli(&[
            "connect",
            "org-n",
            "--url",
            &url,
            "--timeout",
            "1s",
            "--connect-timeout",
            "1s",
            "--json",
        ])
        .await;
        let records = records(&out);
        assert!(
            data_of(&records, "summary").is_empty(),
            "{name}: {records:?}"
        );
        assert_eq!(data_of(&records, "error").len(), 1, "{name}: {records:?}");
    }
    // A socket that opens and stays silent: no CONNECTED, said as such.
    let mute = FakeServer::sending(Vec::new()).await;
    let argv = [
        "watch-sync",
        "org-n",
        "--url",
        &mute.base(),
        "--timeout",
        "1s",
    ];
    let out = run_cli(&argv).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("no valid CONNECTED was received"), "{text}");
    assert!(!text.contains("Part 1"), "{text}");
    let mut with_json = argv.to_vec();
    with_json.push("--json");
    let summary: WatchSummary = summary_of(&records(&run_cli(&with_json).await));
    assert_eq!(
        (summary.outcome, summary.reached),
        (WatchOutcome::ConnectFailed, Reached::Opened)
    );
}

/// Issue 11 point 18: event lines carry the receive time (UTC, `Z`) and a padded
/// pfaId column; the summary keeps each item's error or conflicting fields (escaped)
/// and says how many events --item hid; the one count of events agrees between the
/// summary, its --json record and the error.
#[tokio::test]
async fn watch_lines_and_summary_for_support_work() {
    let org = "org-s";
    let mut failed = fake::part1_event_value("SYNC_FAILED", "pfa-long-identifier", org);
    failed["details"]["error"] = json!("disk\rfull");
    let server = FakeServer::sending(vec![
        fake::part2_connected(org, 0, "e"),
        fake::part2_event("SYNC_QUEUED", "pfa-long-identifier", org, 1),
        fake::part2_event("SYNC_QUEUED", "p-1", org, 2),
        fake::part2_event("SYNC_QUEUED", "other", org, 3),
        {
            let mut f = failed.clone();
            f["seq"] = json!(4);
            f.to_string()
        },
        fake::part2_event("SYNC_CONFLICT", "p-1", org, 5),
    ])
    .await;
    let argv = [
        "watch-sync",
        org,
        "--url",
        &server.base(),
        "--item",
        "pfa-long-identifier",
        "--item",
        "p-1",
        "--count",
        "5",
        "--timeout",
        "2s",
    ];
    let out = run_cli(&argv).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("Z SYNC_")).collect();
    assert_eq!(lines.len(), 4, "{text}");
    for line in &lines {
        let time = line.split(' ').next().unwrap();
        assert!(
            time.len() == 13 && time.ends_with('Z') && time.as_bytes()[2] == b':',
            "{line}"
        );
    }
    // The short id is padded to the long one's width: the seq column lines up.
    assert_eq!(lines[0].find('#'), lines[1].find('#'), "{text}");
    assert!(text.contains("error: disk\\u{d}full"), "{text}");
    assert!(text.contains("conflicting fields: quantity"), "{text}");
    assert!(
        text.contains("4 events (1 more hidden by --item/--where)"),
        "{text}"
    );
    assert!(
        stderr(&out).contains(": 4 of 5 arrived"),
        "{}",
        stderr(&out)
    );

    let mut with_json = argv.to_vec();
    with_json.push("--json");
    let out = run_cli(&with_json).await;
    let records = records(&out);
    let summary: WatchSummary = summary_of(&records);
    assert_eq!((summary.check.events, summary.check.hidden), (4, 1));
    assert_eq!(summary.check.items[0].error.as_deref(), Some("disk\rfull"));
    assert_eq!(summary.check.items[1].conflicting_fields, ["quantity"]);
    let error = data_of(&records, "error")[0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("4 of 5 arrived"), "{error}");

    // An expectation's explanation counts the same events.
    let out = run_cli(&[
        "watch-sync",
        org,
        "--url",
        &server.base(),
        "--expect",
        "CONNECTED QUEUED SUCCESS",
        "--timeout",
        "2s",
    ])
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(": 5 events; 6 frames received"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("received CONNECTED and 5 events:"),
        "{}",
        stderr(&out)
    );
}

/// Issue 11 point 18: reconnect lines say which attempt of how many (`attempt 1/2`),
/// or only its number when the attempts are unlimited.
#[tokio::test]
async fn reconnect_lines_number_the_attempts() {
    let (server, _) = closing_after_connected(1011).await;
    let base = server.base();
    let run = |attempts: &'static str, duration: &'static str| {
        let base = base.clone();
        async move {
            run_cli(&[
                "watch-sync",
                "org-f",
                "--url",
                &base,
                "--reconnect",
                "--reconnect-attempts",
                attempts,
                "--reconnect-base",
                "5ms",
                "--reconnect-cap",
                "10ms",
                "--duration",
                duration,
            ])
            .await
        }
    };
    let out = run("2", "30s").await;
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("reconnecting (attempt 1/2)"), "{err}");
    assert!(err.contains("reconnect attempt 2/2 failed"), "{err}");
    assert!(
        err.contains("reconnecting failed 2 times in a row; giving up"),
        "{err}"
    );
    let out = run("0", "1s").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("reconnect attempt 3 failed"), "{err}");
    assert!(!err.contains("attempt 3/"), "{err}");
}

/// `-q`: a warning that does not change the verdict is hidden (only errors and the
/// final result), and still a `warning` record with `--json`.
#[tokio::test]
async fn quiet_hides_warnings_but_json_keeps_them() {
    let (what, bad, complaint) = broken_frames().remove(0);
    let server = server_breaking_with(bad).await;
    let base = server.base();
    let args = |extra: &[&'static str]| {
        let mut args = vec![
            "watch-sync",
            "org-v",
            "--url",
            base.as_str(),
            "--lenient",
            "--count",
            "1",
            "--timeout",
            "5s",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |extra: &[&'static str]| {
        let args = args(extra);
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            run_cli(&refs).await
        }
    };

    let loud = run(&[]).await;
    assert_eq!(loud.status.code(), Some(0), "{what}: {}", stderr(&loud));
    assert!(
        stderr(&loud).contains(complaint),
        "{what}: {}",
        stderr(&loud)
    );

    let quiet = run(&["-q"]).await;
    assert_eq!(quiet.status.code(), Some(0), "{what}: {}", stderr(&quiet));
    assert!(
        !stderr(&quiet).contains("warning"),
        "{what}: {}",
        stderr(&quiet)
    );
    assert!(
        !stdout(&quiet).is_empty(),
        "the final result is still shown"
    );

    let quiet_json = run(&["-q", "--json"]).await;
    assert_eq!(quiet_json.status.code(), Some(0), "{what}");
    assert!(!stderr(&quiet_json).contains("warning"), "{what}");
    let warnings = warnings(&records(&quiet_json));
    assert!(
        warnings.iter().any(|w| w.contains(complaint)),
        "{what}: {warnings:?}"
    );
}
