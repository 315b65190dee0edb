//! `serve` over real sockets: CONNECTED, rooms, the write-sync lifecycle, resume,
//! fan-out, publish, echo, slow consumers, shutdown, REST validation.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use syncprobe::protocol::{ServerFrame, Timestamp};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::*;

#[tokio::test]
async fn connected_has_the_protocol_shape() {
    let server = TestServer::start().await;
    let mut ws = connect(&server.sync_url("org-rio")).await;
    let Message::Text(text) = next_message(&mut ws).await else {
        panic!("CONNECTED is a text frame")
    };
    // Part 1 fields first, in the order existing backends write them; Part 2 after.
    let prefix = r#"{"type":"CONNECTED","organizationId":"org-rio","timestamp":""#;
    assert!(text.starts_with(prefix), "{text}");
    let connected: Value = serde_json::from_str(&text).unwrap();
    let mut fields: Vec<&str> = connected
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        ["epoch", "organizationId", "seq", "timestamp", "type"]
    );
    assert_eq!(connected["organizationId"], "org-rio");
    assert_eq!(connected["seq"], 0);
    assert!(connected["epoch"].as_str().is_some_and(|e| !e.is_empty()));
    let timestamp = connected["timestamp"].as_str().unwrap();
    let parsed: Timestamp = timestamp.parse().expect("Date.toJSON format");
    assert_eq!(parsed.to_string(), timestamp);
    let age = chrono::Utc::now() - parsed.0;
    assert!(
        age.num_seconds().abs() < 60,
        "timestamp {timestamp} is not now"
    );
}

#[tokio::test]
async fn rooms_isolate_organizations_both_ways() {
    let server = TestServer::start().await;
    let (mut a, _) = subscribe(&server, "org-a").await;
    let (mut b, _) = subscribe(&server, "org-b").await;
    publish(&server, "org-b", "SYNC_QUEUED", "only-b", json!(null), 1).await;
    publish(&server, "org-a", "SYNC_QUEUED", "only-a", json!(null), 1).await;
    // Each socket's next frame is its own organization's event: the other one's
    // event, published earlier, never arrived.
    let first_a = next_json(&mut a).await;
    assert_eq!(
        (
            first_a["pfaId"].as_str(),
            first_a["organizationId"].as_str()
        ),
        (Some("only-a"), Some("org-a"))
    );
    let first_b = next_json(&mut b).await;
    assert_eq!(
        (
            first_b["pfaId"].as_str(),
            first_b["organizationId"].as_str()
        ),
        (Some("only-b"), Some("org-b"))
    );
    assert_eq!(first_a["seq"], 1);
    assert_eq!(first_b["seq"], 1);
}

/// Posts a write-sync and follows every item to its terminal event; returns the
/// event types per pfaId, and the events themselves.
async fn lifecycle(
    server: &TestServer,
    org: &str,
    body: Value,
) -> (HashMap<String, Vec<String>>, Vec<Value>) {
    let (mut ws, _) = subscribe(server, org).await;
    let (status, answer) = post(&server.http("/api/pems/write-sync"), &body.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    let items = answer["items"].as_array().unwrap().clone();
    assert_eq!(answer["queuedCount"], items.len());
    let mut open: Vec<String> = items
        .iter()
        .map(|i| i["pfaId"].as_str().unwrap().to_string())
        .collect();
    let mut types: HashMap<String, Vec<String>> = HashMap::new();
    let mut events = Vec::new();
    while !open.is_empty() {
        let event = next_json(&mut ws).await;
        ServerFrame::from_value(event.clone()).expect("every frame is valid");
        let pfa = event["pfaId"].as_str().unwrap().to_string();
        let kind = event["type"].as_str().unwrap().to_string();
        if ["SYNC_SUCCESS", "SYNC_CONFLICT", "SYNC_FAILED"].contains(&kind.as_str()) {
            open.retain(|p| *p != pfa);
        }
        types.entry(pfa).or_default().push(kind);
        events.push(event);
    }
    (types, events)
}

#[tokio::test]
async fn every_outcome_has_its_lifecycle() {
    let server = TestServer::start().await;
    let cases = [
        (
            "success",
            vec!["SYNC_QUEUED", "SYNC_PROCESSING", "SYNC_SUCCESS"],
        ),
        (
            "conflict",
            vec!["SYNC_QUEUED", "SYNC_PROCESSING", "SYNC_CONFLICT"],
        ),
        (
            "retry-then-success",
            vec![
                "SYNC_QUEUED",
                "SYNC_PROCESSING",
                "SYNC_PROCESSING",
                "SYNC_SUCCESS",
            ],
        ),
        // Default max retries is 3: four attempts, then the permanent failure.
        (
            "failed",
            vec![
                "SYNC_QUEUED",
                "SYNC_PROCESSING",
                "SYNC_PROCESSING",
                "SYNC_PROCESSING",
                "SYNC_PROCESSING",
                "SYNC_FAILED",
            ],
        ),
    ];
    for (outcome, expected) in cases {
        let org = format!("org-{outcome}");
        let body = json!({"organizationId": org, "count": 2, "outcome": outcome});
        let (types, events) = lifecycle(&server, &org, body).await;
        assert_eq!(types.len(), 2, "{outcome}: {types:?}");
        for sequence in types.values() {
            assert_eq!(sequence, &expected, "{outcome}");
        }
        let terminal = events
            .iter()
            .find(|e| e["type"] == expected[expected.len() - 1])
            .unwrap();
        match outcome {
            "failed" => {
                assert_eq!(terminal["details"]["retryCount"], 3);
                assert!(
                    terminal["details"]["error"]
                        .as_str()
                        .is_some_and(|e| !e.is_empty())
                );
            }
            "conflict" => {
                assert!(terminal["details"]["conflictId"].is_string());
                assert!(
                    terminal["details"]["conflictingFields"]
                        .as_array()
                        .is_some_and(|f| !f.is_empty())
                );
            }
            _ => assert!(
                terminal["details"]["newVersion"]
                    .as_i64()
                    .is_some_and(|v| v >= 2)
            ),
        }
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "{outcome}: seq has gaps"
        );
    }
}

#[tokio::test]
async fn mixed_outcomes_and_named_items() {
    let server = TestServer::start().await;
    let body = json!({
        "organizationId": "org-mixed", "modificationIds": ["m1", "m2", "m3", "m4"],
        "pfaIds": ["p1", "p2", "p3", "p4"], "outcome": "mixed", "priority": 7,
    });
    let (types, _) = lifecycle(&server, "org-mixed", body).await;
    let last = |p: &str| types[p].last().unwrap().clone();
    assert_eq!(
        [last("p1"), last("p2"), last("p3"), last("p4")],
        [
            "SYNC_SUCCESS",
            "SYNC_CONFLICT",
            "SYNC_FAILED",
            "SYNC_SUCCESS"
        ]
    );
    assert_eq!(
        types["p4"]
            .iter()
            .filter(|t| *t == "SYNC_PROCESSING")
            .count(),
        2
    );
    // The status figures are the queue's real ones.
    let status = get_json(&server.http("/api/pems/sync-status?organizationId=org-mixed")).await;
    assert_eq!(
        (
            status["completed"].as_u64(),
            status["failed"].as_u64(),
            status["conflicts"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{status}"
    );
    assert_eq!(status["totalQueued"], 0);
    assert_eq!(status["processing"], 0);
    assert_eq!(status["successRate"], 50);
    assert_eq!(status["health"], "unhealthy");
    assert!(
        status["lastSyncAt"]
            .as_str()
            .unwrap()
            .parse::<Timestamp>()
            .is_ok()
    );
    let untouched = get_json(&server.http("/api/pems/sync-status?organizationId=org-none")).await;
    assert_eq!(
        (
            untouched["completed"].as_u64(),
            untouched["health"].as_str()
        ),
        (Some(0), Some("healthy"))
    );
}

#[tokio::test]
async fn modification_ids_name_the_items_and_nothing_to_queue_is_said() {
    let server = TestServer::start().await;
    let (status, answer) = post(
        &server.http("/api/pems/write-sync"),
        r#"{"organizationId":"org-rio","modificationIds":["m-1","m-2"],"priority":5}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["queuedCount"], 2);
    assert!(answer["jobId"].as_str().unwrap().starts_with("write-sync-"));
    assert!(answer["jobId"].as_str().unwrap().ends_with("-org-rio"));
    assert!(
        answer["estimatedCompletionTime"]
            .as_str()
            .unwrap()
            .parse::<Timestamp>()
            .is_ok()
    );
    let pfas: Vec<&str> = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["pfaId"].as_str().unwrap())
        .collect();
    assert_eq!(pfas, ["pfa-m-1", "pfa-m-2"]);
    let (status, answer) = post(
        &server.http("/api/pems/write-sync"),
        r#"{"organizationId":"org-rio"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"success": true, "message": "No pending modifications to sync", "queuedCount": 0})
    );
}

#[tokio::test]
async fn missing_organization_closes_with_4000() {
    let server = TestServer::start().await;
    for path in ["/api/ws/sync", "/api/ws/sync/"] {
        let mut ws = connect(&format!("{}{path}", server.base())).await;
        let close = next_close(&mut ws).await;
        assert_eq!(close.code, CloseCode::from(4000), "{path}");
        assert_eq!(close.reason.as_str(), "Missing organizationId");
    }
}

#[tokio::test]
async fn resume_replays_what_was_missed_then_continues_live() {
    let server = TestServer::start().await;
    let (_first, connected) = subscribe(&server, "org-r").await;
    let epoch = connected["epoch"].as_str().unwrap().to_string();
    publish(&server, "org-r", "SYNC_QUEUED", "p", json!(null), 5).await;
    let url = format!("{}?since=2&epoch={epoch}", server.sync_url("org-r"));
    let mut ws = connect(&url).await;
    let connected = next_json(&mut ws).await;
    assert_eq!(
        (
            connected["seq"].as_u64(),
            connected["historyTruncated"].as_bool()
        ),
        (Some(5), Some(false))
    );
    assert_eq!(connected["epoch"], epoch.as_str());
    for seq in 3..=5 {
        assert_eq!(next_json(&mut ws).await["seq"], seq);
    }
    publish(&server, "org-r", "SYNC_QUEUED", "p", json!(null), 1).await;
    assert_eq!(next_json(&mut ws).await["seq"], 6);
}

#[tokio::test]
async fn resume_beyond_history_or_epoch_reports_truncation() {
    let mut config = fast_config();
    config.history = 3;
    let server = TestServer::with(config).await;
    publish(&server, "org-t", "SYNC_QUEUED", "p", json!(null), 10).await;
    let (_, connected) = subscribe(&server, "org-t").await;
    let epoch = connected["epoch"].as_str().unwrap().to_string();
    for query in [
        format!("since=2&epoch={epoch}"),
        "since=9&epoch=not-the-epoch".to_string(),
    ] {
        let mut ws = connect(&format!("{}?{query}", server.sync_url("org-t"))).await;
        let connected = next_json(&mut ws).await;
        assert_eq!(connected["historyTruncated"], true, "{query}");
        let replayed: Vec<Value> = vec![
            next_json(&mut ws).await["seq"].clone(),
            next_json(&mut ws).await["seq"].clone(),
            next_json(&mut ws).await["seq"].clone(),
        ];
        assert_eq!(replayed, [json!(8), json!(9), json!(10)], "{query}");
    }
    let (status, _) = get(&format!(
        "{}?since=abc",
        server.sync_url("org-t").replace("ws://", "http://")
    ))
    .await;
    assert!(
        status == 400 || status == 426,
        "bad since must be refused, got {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_receive_identical_sequences() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for _ in 0..200 {
        clients.push(subscribe(&server, "org-fan").await.0);
    }
    let (status, answer) = post(
        &server.http("/api/pems/write-sync"),
        r#"{"organizationId":"org-fan","count":10,"outcome":"mixed"}"#,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    publish(
        &server,
        "org-fan",
        "SYNC_PAUSED",
        "p-x",
        json!({"why": "test"}),
        20,
    )
    .await;
    // 10 mixed items rotate success, conflict, failed, retry-then-success: 3 successes
    // and 3 conflicts of 3 events, 2 failures of 6 (four attempts), 2 retried successes
    // of 4; then the 20 published events.
    let expected = 3 * 3 + 3 * 3 + 2 * 6 + 2 * 4 + 20;
    let readers = clients.into_iter().map(|mut ws| {
        tokio::spawn(async move {
            let mut frames = Vec::new();
            while frames.len() < expected {
                frames.push(next_json(&mut ws).await);
            }
            frames
        })
    });
    let sequences: Vec<Vec<Value>> = futures_util::future::join_all(readers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(sequences.len(), 200);
    let first = &sequences[0];
    let seqs: Vec<u64> = first.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=expected as u64).collect::<Vec<_>>());
    for (i, sequence) in sequences.iter().enumerate() {
        assert_eq!(sequence, first, "client {i} saw a different sequence");
    }
}

#[tokio::test]
async fn publish_counts_and_paces_events() {
    let server = TestServer::start().await;
    let (mut ws, _) = subscribe(&server, "org-p").await;
    let answer = publish(
        &server,
        "org-p",
        "SYNC_CONFLICT",
        "pfa-9",
        json!({"conflictId": "c-1", "conflictingFields": ["a"]}),
        3,
    )
    .await;
    assert_eq!(
        (
            answer["published"].as_u64(),
            answer["firstSeq"].as_u64(),
            answer["lastSeq"].as_u64()
        ),
        (Some(3), Some(1), Some(3))
    );
    for _ in 0..3 {
        let event = next_json(&mut ws).await;
        assert_eq!(event["details"]["conflictingFields"], json!(["a"]));
        assert!(event["publishedAtUs"].as_u64().is_some());
    }
    let body = json!({"organizationId": "org-p", "type": "SYNC_QUEUED", "pfaId": "paced", "count": 5, "ratePerSec": 50});
    let (status, answer) = post(&server.http("/api/ws/publish"), &body.to_string()).await;
    assert_eq!((status, answer["accepted"].as_u64()), (202, Some(5)));
    let mut stamps = Vec::new();
    for _ in 0..5 {
        let event = next_json(&mut ws).await;
        assert_eq!(event["pfaId"], "paced");
        stamps.push(event["publishedAtUs"].as_u64().unwrap());
    }
    // Five events at 50/s span at least four periods of 20 ms (the first is immediate).
    let span_us = stamps[4] - stamps[0];
    assert!(
        span_us >= 4 * 20_000 - 2_000,
        "paced events came too fast: {span_us} µs"
    );
}

#[tokio::test]
async fn echo_returns_text_and_binary_unchanged() {
    let server = TestServer::start().await;
    let mut ws = connect(&format!("{}/api/ws/echo", server.base())).await;
    ws.send(Message::text("héllo")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("héllo"));
    let binary: Vec<u8> = (0..=255).collect();
    ws.send(Message::binary(binary.clone())).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::binary(binary));
    ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
    let pong = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(b"p".to_vec().into()));
}

#[tokio::test]
async fn client_frames_are_ignored_and_pings_answered() {
    let server = TestServer::start().await;
    let (mut ws, _) = subscribe(&server, "org-noise").await;
    send_text(&mut ws, "not json at all {").await;
    send_text(&mut ws, r#"{"type":"SUBSCRIBE"}"#).await;
    ws.send(Message::binary(vec![0xff, 0x00, 0x13]))
        .await
        .unwrap();
    ws.send(Message::Ping(b"rtt".to_vec().into()))
        .await
        .unwrap();
    // The server's opening ping may come first (a peer must answer it).
    let pong = loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if !matches!(message, Message::Ping(_)) {
            break message;
        }
    };
    assert_eq!(pong, Message::Pong(b"rtt".to_vec().into()));
    publish(
        &server,
        "org-noise",
        "SYNC_QUEUED",
        "still-open",
        json!(null),
        1,
    )
    .await;
    assert_eq!(next_json(&mut ws).await["pfaId"], "still-open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_does_not_delay_a_fast_one_and_is_closed_with_1013() {
    let mut config = fast_config();
    config.lag_limit = 256;
    // The stalled client reads nothing, so it never answers the opening ping either:
    // with the handshake timeout on, a loaded machine could close it with 4408 first.
    config.handshake_timeout = Duration::ZERO;
    let server = TestServer::with(config).await;
    let (mut slow, _) = subscribe(&server, "org-slow").await;
    let (mut fast, _) = subscribe(&server, "org-slow").await;
    // 20 MB of events, paced so that a reader keeps up: far more than the socket
    // buffers hold for the stalled reader.
    let pad = "x".repeat(4 * 1024);
    let total = 5000;
    let body = json!({"organizationId": "org-slow", "type": "SYNC_PAUSED", "pfaId": "p",
        "details": {"pad": pad}, "count": total, "ratePerSec": 2500});
    let (status, _) = post(&server.http("/api/ws/publish"), &body.to_string()).await;
    assert_eq!(status, 202);
    for seq in 1..=total {
        let event = next_json(&mut fast).await;
        assert_eq!(
            event["seq"], seq,
            "the fast client missed or reordered an event"
        );
    }
    // The stalled client now reads: what fitted in the buffers, then 1013 naming
    // the last seq it was sent, so it can resume.
    let mut last = 0;
    let close = loop {
        match next_message(&mut slow).await {
            Message::Text(text) => {
                let event: Value = serde_json::from_str(&text).unwrap();
                last = event["seq"].as_u64().unwrap();
            }
            Message::Close(Some(frame)) => break frame,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(close.code, CloseCode::from(1013));
    assert!(
        last < total,
        "the slow client cannot have received everything"
    );
    assert!(
        close.reason.contains(&format!("since={last}")),
        "reason {:?} should name since={last}",
        close.reason
    );
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    let server = TestServer::start().await;
    let (mut a, _) = subscribe(&server, "org-a").await;
    let (mut b, _) = subscribe(&server, "org-b").await;
    let stopping = tokio::spawn(server.stop());
    assert_eq!(next_close(&mut a).await.code, CloseCode::Away);
    assert_eq!(next_close(&mut b).await.code, CloseCode::Away);
    stopping
        .await
        .unwrap()
        .expect("serve returns Ok after shutdown");
}

#[tokio::test]
async fn heartbeat_drops_a_silent_peer_and_keeps_a_live_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = fast_config();
    // Long enough that a live peer on a loaded test machine always answers in time
    // (250 ms was not, with six builds running).
    config.ping_interval = Duration::from_millis(1000);
    let server = TestServer::with(config).await;
    let (mut live, _) = subscribe(&server, "org-hb").await;
    // The live peer reads all the time, so its WebSocket layer answers every ping.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = live.next().await {
            if let Message::Text(text) = message {
                let _ = tx.send(text.to_string());
            }
        }
    });
    // A raw peer that completes the handshake and then never writes: no pongs.
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = "GET /api/ws/sync/org-hb HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    silent.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    // The server ends the connection by itself; reading to the end is the wait.
    let _ = tokio::time::timeout(WAIT, silent.read_to_end(&mut received))
        .await
        .expect("the silent peer was never dropped");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(
        received.windows(2).any(|w| w == [0x89, 0x00]),
        "the server never pinged"
    );
    let stats = get_json(&server.http("/api/ws/stats")).await;
    assert_eq!(stats["organizations"]["org-hb"], 1, "{stats}");
    publish(&server, "org-hb", "SYNC_QUEUED", "alive", json!(null), 1).await;
    let event: Value = serde_json::from_str(
        &tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(event["pfaId"], "alive");
}

#[tokio::test]
async fn bad_rest_bodies_get_400_naming_the_field() {
    let server = TestServer::start().await;
    let write_sync = server.http("/api/pems/write-sync");
    let publish_url = server.http("/api/ws/publish");
    let cases: &[(&str, &str, &str)] = &[
        (&write_sync, "", "(body)"),
        (&write_sync, "{not json", "(body)"),
        (&write_sync, "[1,2]", "(body)"),
        (&write_sync, r#"{"priority":1}"#, "organizationId"),
        (&write_sync, r#"{"organizationId":42}"#, "organizationId"),
        (&write_sync, r#"{"organizationId":""}"#, "organizationId"),
        (
            &write_sync,
            r#"{"organizationId":"o","priority":11}"#,
            "priority",
        ),
        (
            &write_sync,
            r#"{"organizationId":"o","priority":"5"}"#,
            "priority",
        ),
        (&write_sync, r#"{"organizationId":"o","count":-1}"#, "count"),
        (
            &write_sync,
            r#"{"organizationId":"o","count":10001}"#,
            "count",
        ),
        (
            &write_sync,
            r#"{"organizationId":"o","outcome":"maybe"}"#,
            "outcome",
        ),
        (
            &write_sync,
            r#"{"organizationId":"o","modificationIds":"m-1"}"#,
            "modificationIds",
        ),
        (
            &write_sync,
            r#"{"organizationId":"o","modificationIds":["m",""]}"#,
            "modificationIds",
        ),
        (
            &write_sync,
            r#"{"organizationId":"o","modificationIds":["a"],"pfaIds":["p","q"]}"#,
            "pfaIds",
        ),
        (
            &write_sync,
            r#"{"organizationId":"o","pfaIds":["p","q"],"count":3}"#,
            "count",
        ),
        (&publish_url, r#"{"organizationId":"o"}"#, "type"),
        (
            &publish_url,
            r#"{"organizationId":"o","type":"CONNECTED"}"#,
            "type",
        ),
        (
            &publish_url,
            r#"{"organizationId":"o","type":"sync success"}"#,
            "type",
        ),
        (
            &publish_url,
            r#"{"organizationId":"o","type":"SYNC_SUCCESS"}"#,
            "details",
        ),
        (
            &publish_url,
            r#"{"organizationId":"o","type":"SYNC_FAILED","details":{"error":"x"}}"#,
            "details",
        ),
        (
            &publish_url,
            r#"{"organizationId":"o","type":"SYNC_QUEUED","details":[1]}"#,
            "details",
        ),
        (
            &publish_url,
            r#"{"organizationId":"o","type":"SYNC_QUEUED","count":0}"#,
            "count",
        ),
        (
            &publish_url,
            r#"{"organizationId":"o","type":"SYNC_QUEUED","ratePerSec":-1}"#,
            "ratePerSec",
        ),
    ];
    for (url, body, field) in cases {
        let (status, answer) = post(url, body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"], "VALIDATION_ERROR", "{body}");
        let fields: Vec<&str> = answer["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.contains(field),
            "{body}: expected a problem with {field}, got {answer}"
        );
        assert!(
            answer["message"].as_str().unwrap().contains(field),
            "{body}: {answer}"
        );
    }
    let (status, body) = get(&server.http("/api/pems/sync-status")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("organizationId"));
}

#[tokio::test]
async fn operations_endpoints_report_real_figures() {
    let server = TestServer::start().await;
    let (_a1, _) = subscribe(&server, "org-a").await;
    let (mut a2, _) = subscribe(&server, "org-a").await;
    let (_b, _) = subscribe(&server, "org-b").await;
    publish(&server, "org-a", "SYNC_QUEUED", "p", json!(null), 4).await;
    for _ in 0..4 {
        next_json(&mut a2).await;
    }
    let stats = get_json(&server.http("/api/ws/stats")).await;
    assert_eq!(stats["totalConnections"], 3);
    assert_eq!(stats["organizations"], json!({"org-a": 2, "org-b": 1}));
    assert_eq!(stats["eventsPublished"], 4);
    assert!(stats["uptimeSeconds"].as_f64().unwrap() >= 0.0);
    let health = get_json(&server.http("/healthz")).await;
    assert_eq!(health["status"], "ok");
    let (status, metrics) = get(&server.http("/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"syncprobe_ws_connections{org="org-a"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"syncprobe_events_published_total{org="org-a",type="SYNC_QUEUED"} 4"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("syncprobe_broadcast_latency_seconds_bucket"),
        "{metrics}"
    );
    let (status, body) = get(&server.http("/api/nope")).await;
    assert_eq!(status, 404);
    assert!(body.contains("NOT_FOUND"));
    let (status, body) = get(&server.http("/api/ws/sync/org-a")).await;
    assert_eq!(status, 426, "a plain GET on the socket path: {body}");
}

#[tokio::test]
async fn serve_binary_prints_listening_and_exits_0_on_sigterm() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncprobe"))
        .args(["serve", "--listen", "127.0.0.1:0", "--json"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let record: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["type"], "listening");
    let url = record["data"]["url"].as_str().unwrap().to_string();
    assert_eq!(
        url,
        format!("ws://{}", record["data"]["addr"].as_str().unwrap())
    );
    let mut ws = connect(&format!("{url}/api/ws/sync/org-bin")).await;
    assert_eq!(next_json(&mut ws).await["type"], "CONNECTED");
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(next_close(&mut ws).await.code, CloseCode::Away);
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains(&format!("listening on {url}")), "{stderr}");
}
