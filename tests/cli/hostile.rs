//! The bundled server under hostile load (issue 13, server side): every test shows a
//! bound with small configured limits, over raw sockets where a well-behaved client
//! library would not misbehave as asked.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Opens a raw upgrade of `path` and returns the stream after the 101's head.
async fn raw_upgrade(server: &TestServer, path: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            n,
            1,
            "closed during the upgrade: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

/// A masked client frame.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![first, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads server frames until a close; its code (`None`: the TCP closed without one).
async fn close_code(tcp: &mut TcpStream) -> Option<u16> {
    let read = async {
        loop {
            let mut head = [0u8; 2];
            tcp.read_exact(&mut head).await.ok()?;
            let len = match head[1] & 0x7f {
                126 => tcp.read_u16().await.ok()? as usize,
                127 => tcp.read_u64().await.ok()? as usize,
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            tcp.read_exact(&mut payload).await.ok()?;
            if head[0] & 0x0f == 0x8 {
                return Some(u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("no close in time")
}

/// Waits until the peer closes the connection; how long that took.
async fn closed_after(tcp: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut sink))
        .await
        .expect("the server never closed the connection");
    start.elapsed()
}

fn org_series(metrics: &str, org: &str) -> usize {
    metrics
        .lines()
        .filter(|l| l.contains(&format!("org=\"{org}")))
        .count()
}

// 1. Per-organization state is reclaimed.

#[tokio::test]
async fn rooms_without_subscribers_or_history_are_freed_with_their_metric_series() {
    let mut config = fast_config();
    config.history = 0;
    let server = TestServer::with(config).await;
    for i in 0..50 {
        let org = format!("org-gone-{i}");
        let (ws, _) = subscribe(&server, &org).await;
        drop(ws);
        publish(&server, &org, "SYNC_QUEUED", "p", json!(null), 1).await;
    }
    // A socket's end is seen by the server a moment after the client drops it.
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, metrics) = get(&server.http("/metrics")).await;
        let stats = get_json(&server.http("/api/ws/stats")).await;
        if org_series(&metrics, "org-gone-") == 0 && stats["totalConnections"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "still kept: {metrics}");
        tokio::task::yield_now().await;
    }
}

// 2. Byte limits.

#[tokio::test]
async fn a_publish_over_max_event_size_gets_413() {
    let mut config = fast_config();
    config.max_event_size = 1024;
    let server = TestServer::with(config).await;
    let body = json!({"organizationId": "org-big", "type": "SYNC_QUEUED",
                      "details": {"blob": "x".repeat(2000)}});
    let (status, answer) = post(&server.http("/api/ws/publish"), &body.to_string()).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"], "PAYLOAD_TOO_LARGE");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("--max-event-size")
    );
    publish(&server, "org-big", "SYNC_QUEUED", "small", json!(null), 1).await;
}

#[tokio::test]
async fn paced_publishes_beyond_the_cap_get_429() {
    let mut config = fast_config();
    config.max_paced_publishes = 2;
    let server = TestServer::with(config).await;
    let paced = json!({"organizationId": "org-paced", "type": "SYNC_QUEUED",
                       "count": 1000, "ratePerSec": 1})
    .to_string();
    for _ in 0..2 {
        assert_eq!(post(&server.http("/api/ws/publish"), &paced).await.0, 202);
    }
    let (status, answer) = post(&server.http("/api/ws/publish"), &paced).await;
    assert_eq!(status, 429, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("--max-paced-publishes")
    );
}

#[tokio::test]
async fn event_types_of_their_own_are_one_other_label_in_metrics() {
    let server = TestServer::start().await;
    for i in 0..20 {
        let kind = format!("SYNC_CUSTOM_{i}");
        publish(&server, "org-kinds", &kind, "p", json!(null), 1).await;
    }
    publish(&server, "org-kinds", "SYNC_QUEUED", "p", json!(null), 1).await;
    let (_, metrics) = get(&server.http("/metrics")).await;
    assert!(!metrics.contains("SYNC_CUSTOM"), "{metrics}");
    assert!(
        metrics.contains(r#"syncprobe_events_published_total{org="org-kinds",type="other"} 20"#),
        "{metrics}"
    );
}

// 3. HTTP before authentication.

fn http_config() -> syncprobe::server::Config {
    let mut config = fast_config();
    config.http.header_timeout = Duration::from_millis(300);
    config
}

#[tokio::test]
async fn a_request_head_sent_a_byte_at_a_time_is_cut_off() {
    let server = TestServer::with(http_config()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let drip = async {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Drip: " {
            if tcp.write_all(&[*byte]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    // The head takes 2 s to send; the server gives it 300 ms.
    let cut = tokio::time::timeout(WAIT, drip).await.unwrap();
    let elapsed = closed_after(&mut tcp).await;
    assert!(cut || elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_header_timeout() {
    let server = TestServer::with(http_config()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let elapsed = closed_after(&mut tcp).await;
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    // Keep-alive: the timer runs again after a response.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    tcp.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let elapsed = closed_after(&mut tcp).await;
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn a_request_head_over_max_header_bytes_gets_431() {
    let mut config = fast_config();
    config.http.max_header_bytes = 4096;
    let server = TestServer::with(config).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(6000)
    );
    let _ = tcp.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn connections_without_a_request_are_bounded_per_ip() {
    let mut config = fast_config();
    config.http.max_pending_per_ip = 3;
    let server = TestServer::with(config).await;
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // The three are surely accepted once a fourth is: it is closed at once.
    let mut fourth = TcpStream::connect(server.addr).await.unwrap();
    let elapsed = closed_after(&mut fourth).await;
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    // A connection that sends its request leaves the pending ones.
    silent[0]
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    silent[0].read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert_eq!(get(&server.http("/healthz")).await.0, 200);
}

#[tokio::test]
async fn a_socket_that_never_answers_the_opening_ping_is_closed() {
    let mut config = fast_config();
    config.handshake_timeout = Duration::from_millis(300);
    config.ping_interval = Duration::ZERO;
    let server = TestServer::with(config).await;
    let mut tcp = raw_upgrade(&server, "/api/ws/sync/org-mute").await;
    assert_eq!(close_code(&mut tcp).await, Some(4408));
    // One that answers stays.
    let (mut ws, _) = subscribe(&server, "org-mute").await;
    let _ = tokio::time::timeout(Duration::from_millis(600), ws.next()).await;
    publish(&server, "org-mute", "SYNC_QUEUED", "alive", json!(null), 1).await;
    assert_eq!(next_json(&mut ws).await["pfaId"], "alive");
}

#[tokio::test]
async fn an_echo_socket_that_never_sends_is_closed() {
    let mut config = fast_config();
    config.handshake_timeout = Duration::from_millis(300);
    let server = TestServer::with(config).await;
    let mut tcp = raw_upgrade(&server, "/api/ws/echo").await;
    assert_eq!(close_code(&mut tcp).await, Some(4408));
    let mut ws = connect(&format!("{}/api/ws/echo", server.base())).await;
    send_text(&mut ws, "hello").await;
    assert_eq!(next_message(&mut ws).await, Message::text("hello"));
}

#[tokio::test]
async fn cleartext_http2_is_not_served() {
    let server = TestServer::start().await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await;
    // An HTTP/2 server answers the preface with a SETTINGS frame (type 4).
    assert!(
        answer.len() < 4 || answer[3] != 4 || answer.starts_with(b"HTTP/1.1"),
        "{answer:?}"
    );
}

// 4. Shutdown is bounded.

#[tokio::test]
async fn sigterm_with_a_partial_request_and_a_mute_socket_exits_0_within_the_grace() {
    let mut serve = spawn_cli(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--json",
        "--shutdown-grace",
        "500ms",
        "--header-timeout",
        "60s",
        "--handshake-timeout",
        "0",
    ]);
    let listening = serve
        .wait_for("listening", |r| r["type"] == "listening")
        .await;
    let addr = listening["data"]["addr"].as_str().unwrap().to_string();
    let mut partial = TcpStream::connect(&addr).await.unwrap();
    partial
        .write_all(b"POST /api/ws/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let stopped = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &serve.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let finished = serve.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    assert!(
        stopped.elapsed() < Duration::from_secs(4),
        "{:?}",
        stopped.elapsed()
    );
}

// 5. A burst the API accepts never closes a reader that keeps up.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_far_larger_than_the_ring_reaches_a_fast_reader_whole() {
    let mut config = fast_config();
    config.lag_limit = 32;
    config.history = 10;
    let server = TestServer::with(config).await;
    let (mut ws, _) = subscribe(&server, "org-burst").await;
    let body = json!({"organizationId": "org-burst", "type": "SYNC_QUEUED", "count": 3000});
    let url = server.http("/api/ws/publish");
    let publishing = tokio::spawn(async move { post(&url, &body.to_string()).await });
    for expected in 1..=3000u64 {
        let event = next_json(&mut ws).await;
        assert_eq!(event["seq"], expected, "{event}");
    }
    assert_eq!(publishing.await.unwrap().0, 200);
    // A write-sync of more items than the ring holds too.
    let body = json!({"organizationId": "org-burst", "count": 200});
    let (status, _) = post(&server.http("/api/pems/write-sync"), &body.to_string()).await;
    assert_eq!(status, 200);
    let mut queued = 0;
    while queued < 200 {
        let event = next_json(&mut ws).await;
        queued += (event["type"] == "SYNC_QUEUED") as usize;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stalls_is_closed_after_the_slow_grace_and_the_burst_goes_on() {
    let mut config = fast_config();
    config.lag_limit = 32;
    config.slow_grace = Duration::from_millis(200);
    config.handshake_timeout = Duration::ZERO;
    let server = TestServer::with(config).await;
    // A raw socket that never reads.
    let _stalled = raw_upgrade(&server, "/api/ws/sync/org-stall").await;
    let started = Instant::now();
    // Events bigger than the socket buffers hold, so the reader really falls behind.
    let body = json!({"organizationId": "org-stall", "type": "SYNC_QUEUED", "count": 400,
                      "details": {"blob": "x".repeat(20_000)}});
    let (status, _) = post(&server.http("/api/ws/publish"), &body.to_string()).await;
    assert_eq!(status, 200);
    // One grace for the stalled reader, not one per chunk.
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

// 6. A big publish does not starve the runtime.

#[tokio::test]
async fn healthz_answers_during_a_big_publish_on_one_thread() {
    let server = TestServer::start().await;
    let body = json!({"organizationId": "org-huge", "type": "SYNC_QUEUED", "count": 1_000_000});
    let url = server.http("/api/ws/publish");
    tokio::spawn(async move { post(&url, &body.to_string()).await });
    // On a single thread, an answer that shows the publish under way proves that
    // the publish let the runtime run the other connection.
    let deadline = Instant::now() + WAIT;
    loop {
        let asked = Instant::now();
        let stats = get_json(&server.http("/api/ws/stats")).await;
        let latency = asked.elapsed();
        let published = stats["eventsPublished"].as_u64().unwrap();
        assert!(
            published < 1_000_000,
            "the publish ran to the end before any answer"
        );
        if published > 0 {
            let asked = Instant::now();
            assert_eq!(get(&server.http("/healthz")).await.0, 200);
            let latency = latency.max(asked.elapsed());
            assert!(latency < Duration::from_secs(1), "{latency:?}");
            break;
        }
        assert!(Instant::now() < deadline);
    }
}

// 7. No panics, bounded queue.

#[tokio::test]
async fn a_rate_too_small_to_have_a_period_is_refused_with_400() {
    let server = TestServer::start().await;
    for rate in [5e-20, 1e-300, 0.0001] {
        let body = json!({"organizationId": "org-r", "type": "SYNC_QUEUED", "ratePerSec": rate});
        let (status, answer) = post(&server.http("/api/ws/publish"), &body.to_string()).await;
        assert_eq!(status, 400, "{rate}: {answer}");
        assert_eq!(answer["details"][0]["field"], "ratePerSec");
    }
    assert_eq!(get(&server.http("/healthz")).await.0, 200);
}

#[tokio::test]
async fn a_full_write_sync_queue_answers_503_with_a_json_body() {
    let mut config = fast_config();
    config.max_queued_items = 10;
    config.worker.processing_time = Duration::from_secs(30);
    config.worker.workers = 1;
    let server = TestServer::with(config).await;
    let url = server.http("/api/pems/write-sync");
    let (status, _) = post(
        &url,
        &json!({"organizationId": "org-q", "count": 8}).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = post(
        &url,
        &json!({"organizationId": "org-q", "count": 3}).to_string(),
    )
    .await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"], "QUEUE_FULL");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("--max-queued-items")
    );
    let (status, _) = post(
        &url,
        &json!({"organizationId": "org-q", "count": 2}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "what fits is still taken");
    let stats = get_json(&server.http("/api/ws/stats")).await;
    assert_eq!(stats["queueBacklog"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_status_answers_while_an_enqueue_waits_for_a_slow_subscriber() {
    let mut config = fast_config();
    config.lag_limit = 8;
    config.slow_grace = Duration::from_secs(20);
    config.handshake_timeout = Duration::ZERO;
    let server = TestServer::with(config).await;
    let stalled = raw_upgrade(&server, "/api/ws/sync/org-wait").await;
    // Events bigger than the socket buffers hold: the stalled reader falls behind,
    // its ring fills, and bursts wait for it.
    let big = json!({"organizationId": "org-wait", "type": "SYNC_QUEUED", "count": 500,
                     "details": {"blob": "x".repeat(20_000)}});
    let url = server.http("/api/ws/publish");
    let publishing = tokio::spawn(async move { post(&url, &big.to_string()).await });
    // Once the publish is held up (its count stops moving), the ring is full.
    let deadline = Instant::now() + WAIT;
    let (mut seen, mut since) = (0, Instant::now());
    loop {
        let stats = get_json(&server.http("/api/ws/stats")).await;
        let published = stats["eventsPublished"].as_u64().unwrap();
        if published != seen {
            (seen, since) = (published, Instant::now());
        } else if published > 0 && since.elapsed() > Duration::from_millis(300) {
            break;
        }
        assert!(Instant::now() < deadline, "{stats}");
        tokio::task::yield_now().await;
    }
    let url = server.http("/api/pems/write-sync");
    let body = json!({"organizationId": "org-wait", "count": 100}).to_string();
    let enqueue = tokio::spawn(async move { post(&url, &body).await });
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = get_json(&server.http("/api/ws/stats")).await;
        if stats["queueBacklog"] == 100 {
            break;
        }
        assert!(Instant::now() < deadline, "{stats}");
        tokio::task::yield_now().await;
    }
    let asked = Instant::now();
    let status = get_json(&server.http("/api/pems/sync-status?organizationId=org-wait")).await;
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        !enqueue.is_finished(),
        "the enqueue was not waiting: {status}"
    );
    // The reader goes: the bursts go on at once.
    drop(stalled);
    assert_eq!(enqueue.await.unwrap().0, 200);
    assert_eq!(publishing.await.unwrap().0, 200);
}

// 8. Frame level.

#[tokio::test]
async fn unsolicited_pongs_count_toward_the_client_frame_rate() {
    let mut config = fast_config();
    config.rate_limit = Some(syncprobe::server::security::RateLimit {
        per_second: 5,
        burst: 5,
    });
    let server = TestServer::with(config).await;
    let (mut ws, _) = subscribe(&server, "org-pong").await;
    for _ in 0..50 {
        if ws.send(Message::Pong(Default::default())).await.is_err() {
            break;
        }
    }
    assert_eq!(u16::from(next_close(&mut ws).await.code), 4429);
}

#[tokio::test]
async fn empty_continuation_frames_count_toward_the_client_frame_rate() {
    let mut config = fast_config();
    config.rate_limit = Some(syncprobe::server::security::RateLimit {
        per_second: 5,
        burst: 5,
    });
    let server = TestServer::with(config).await;
    let mut tcp = raw_upgrade(&server, "/api/ws/sync/org-cont").await;
    // A text message that never ends: its frames never make a message.
    let mut flood = client_frame(0x01, b"a");
    for _ in 0..50 {
        flood.extend(client_frame(0x00, b""));
    }
    tcp.write_all(&flood).await.unwrap();
    assert_eq!(close_code(&mut tcp).await, Some(4429));
}

#[tokio::test]
async fn protocol_violations_get_1002_and_bad_utf8_1007_before_the_close() {
    let server = TestServer::start().await;
    let mut tcp = raw_upgrade(&server, "/api/ws/sync/org-frames").await;
    // RSV1 set without an extension that defines it.
    tcp.write_all(&client_frame(0xC1, b"hi")).await.unwrap();
    assert_eq!(close_code(&mut tcp).await, Some(1002));
    let mut tcp = raw_upgrade(&server, "/api/ws/sync/org-frames").await;
    tcp.write_all(&client_frame(0x81, &[0xff, 0xfe]))
        .await
        .unwrap();
    assert_eq!(close_code(&mut tcp).await, Some(1007));
}

#[tokio::test]
async fn a_malformed_websocket_key_is_refused_with_400() {
    let server = TestServer::start().await;
    for key in ["not-base64!", "c2hvcnQ="] {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "GET /api/ws/sync/org-key HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = [0u8; 12];
        tcp.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 400", "{key}");
    }
}

#[tokio::test]
async fn dot_segment_organization_ids_are_refused() {
    let server = TestServer::start().await;
    for org in [".", ".."] {
        let body = json!({"organizationId": org, "count": 1});
        let (status, answer) = post(&server.http("/api/pems/write-sync"), &body.to_string()).await;
        assert_eq!(status, 400, "{org}: {answer}");
        assert_eq!(answer["details"][0]["field"], "organizationId");
    }
}

// 9. Exposure.

#[tokio::test]
async fn metrics_listen_moves_metrics_off_the_main_port() {
    let mut serve = spawn_cli(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--json",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    let listening = serve
        .wait_for("listening", |r| r["type"] == "listening")
        .await;
    let addr = listening["data"]["addr"].as_str().unwrap().to_string();
    let deadline = Instant::now() + WAIT;
    let metrics_addr = loop {
        let stderr = serve.stderr();
        if let Some(at) = stderr.split("metrics on http://").nth(1) {
            break at.split("/metrics").next().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "{stderr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(get(&format!("http://{addr}/metrics")).await.0, 404);
    let (status, text) = get(&format!("http://{metrics_addr}/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("syncprobe_ws_connections_opened_total"),
        "{text}"
    );
    assert_eq!(get(&format!("http://{metrics_addr}/healthz")).await.0, 404);
    serve.interrupt().await;
    let _ = serve.finish().await;
}

/// The 101 is held in the kernel (corked) until CONNECTED and the opening ping follow
/// it: the client's first read, waiting before anything is sent, gets all of them in
/// one segment. Uncorked, that read returns the 101 alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_101_and_connected_reach_the_client_in_one_segment() {
    let server = TestServer::start().await;
    for _ in 0..5 {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "GET /api/ws/sync/org-cork HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        // The read is waiting before the request leaves.
        let (mut reader, mut writer) = tcp.split();
        let mut first = vec![0u8; 4096];
        let (n, _) = tokio::join!(
            async {
                tokio::time::timeout(WAIT, reader.read(&mut first))
                    .await
                    .unwrap()
                    .unwrap()
            },
            writer.write_all(request.as_bytes())
        );
        let first = String::from_utf8_lossy(&first[..n]).to_string();
        assert!(first.starts_with("HTTP/1.1 101"), "{first}");
        assert!(first.contains("\"CONNECTED\""), "one read: {first:?}");
    }
}
