//! `serve --redis`: several instances over a real `redis-server` that each test
//! starts on a free port (never a mock): fan-out across instances in seq order,
//! lost Redis data, a stalled Redis, a killed pub/sub connection, a killed instance.

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use syncprobe::server::Config;
use syncprobe::server::redis::RedisConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{
    TestServer, WAIT, Ws, fast_config, get, get_json, next_close, next_json, next_message, post,
    publish, subscribe,
};

/// A `redis-server` of one test, on a free port, without persistence; killed on drop.
pub struct RedisServer {
    port: u16,
    child: Child,
}

impl RedisServer {
    /// `None` (the test is skipped, saying so) when redis-server is not installed and
    /// `CI` is not set; in CI its absence fails the test.
    pub fn start() -> Option<RedisServer> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok();
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install redis-server"
            );
            eprintln!("skipped: redis-server not found (apt-get install redis-server)");
            return None;
        }
        Some(RedisServer::spawn())
    }

    fn spawn() -> RedisServer {
        // Redis takes no `--port 0`: take a free port from the kernel and hand it on.
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        let redis = RedisServer { port, child };
        // Ready when it answers PING (a bounded probe, no sleep for readiness).
        for _ in 0..500 {
            if redis.command(&["PING"]).is_ok() {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server on port {port} never answered PING");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Runs one command on a fresh connection.
    fn command(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut conn)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `serve --redis` instance with `extra` flags in a child process (so that a test can
/// kill it with -9), and its `listening` record.
pub async fn child_instance(
    redis: &RedisServer,
    extra: &[&str],
) -> (crate::support::Running, Value) {
    let url = redis.url();
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--redis",
        &url,
        "--json",
    ];
    args.extend_from_slice(extra);
    let mut child = crate::support::spawn_cli(&args);
    let listening = child
        .wait_for("listening", |r| r["type"] == "listening")
        .await;
    (child, listening)
}

fn config(redis: &RedisServer) -> Config {
    let mut config = fast_config();
    config.redis = Some(RedisConfig::new(&redis.url()).unwrap());
    config
}

/// An instance whose pub/sub connection is up (`/healthz` says ok).
async fn instance(redis: &RedisServer) -> TestServer {
    let server = TestServer::with(config(redis)).await;
    healthy(&server).await;
    server
}

async fn health(server: &TestServer) -> Value {
    let (_, body) = get(&server.http("/healthz")).await;
    serde_json::from_str(&body).unwrap()
}

/// Waits (bounded) until `/healthz` reports `ok`.
async fn healthy(server: &TestServer) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let health = health(server).await;
        if health["status"] == "ok" {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never healthy: {health}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of a metric line `name` (without labels) in `/metrics`.
async fn metric(server: &TestServer, name: &str) -> f64 {
    let (_, text) = get(&server.http("/metrics")).await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

fn publish_body(org: &str, pfa: &str) -> String {
    json!({"organizationId": org, "type": "SYNC_SUCCESS", "pfaId": pfa,
           "details": {"newVersion": 2}})
    .to_string()
}

/// The next event frame, skipping nothing: panics on anything else.
async fn next_event(ws: &mut Ws) -> Value {
    let frame = next_json(ws).await;
    assert_ne!(frame["type"], "CONNECTED", "{frame}");
    frame
}

#[tokio::test]
async fn three_instances_deliver_every_event_once_in_seq_order() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b, c) = (
        instance(&redis).await,
        instance(&redis).await,
        instance(&redis).await,
    );
    let (mut ws, connected) = subscribe(&a, "org-rio").await;
    assert_eq!(connected["seq"], 0);
    for i in 0..10 {
        let at = if i % 2 == 0 { &b } else { &c };
        publish(
            at,
            "org-rio",
            "SYNC_SUCCESS",
            &format!("pfa-{i}"),
            json!({"newVersion": 2}),
            2,
        )
        .await;
    }
    let mut seqs = Vec::new();
    for _ in 0..20 {
        seqs.push(next_event(&mut ws).await["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
    // Nothing more: a ping round-trip shows the socket has nothing queued.
    ws.send(Message::Ping(Default::default())).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut ws)).await {
            Ok(Some(Ok(Message::Pong(_)))) => break,
            Ok(Some(Ok(Message::Ping(_)))) => {}
            other => panic!("expected only the pong, got {other:?}"),
        }
    }
    // A resume on another instance replays from the shared history.
    let url = format!(
        "{}?since=15&epoch={}",
        c.sync_url("org-rio"),
        connected["epoch"].as_str().unwrap()
    );
    let mut resumed = crate::support::connect(&url).await;
    let connected_c = next_json(&mut resumed).await;
    assert_eq!(connected_c["historyTruncated"], false, "{connected_c}");
    assert_eq!(connected_c["epoch"], connected["epoch"]);
    for seq in 16..=20 {
        assert_eq!(next_event(&mut resumed).await["seq"], seq);
    }
    // The cluster view: three live instances, the two sockets summed.
    let deadline = tokio::time::Instant::now() + WAIT;
    let stats = loop {
        let stats = get_json(&a.http("/api/ws/stats")).await;
        if stats["cluster"]["instances"].as_array().map(Vec::len) == Some(3)
            && stats["cluster"]["organizations"]["org-rio"] == 2
        {
            break stats;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(stats["instance"]["id"].is_string(), "{stats}");
    assert_eq!(stats["totalConnections"], 1, "this instance's own");
    assert!(metric(&a, "syncprobe_pubsub_lag_seconds_count").await >= 20.0);
    assert_eq!(metric(&c, "syncprobe_recovered_events_total").await, 5.0);
    assert_eq!(metric(&a, "syncprobe_redis_up").await, 1.0);
}

#[tokio::test]
async fn lost_redis_data_starts_a_new_epoch_and_the_resuming_client_is_told() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (instance(&redis).await, instance(&redis).await);
    let (mut ws, connected) = subscribe(&a, "org-rio").await;
    publish(
        &b,
        "org-rio",
        "SYNC_SUCCESS",
        "p",
        json!({"newVersion": 2}),
        3,
    )
    .await;
    for seq in 1..=3 {
        assert_eq!(next_event(&mut ws).await["seq"], seq);
    }
    let epoch = connected["epoch"].as_str().unwrap().to_string();
    redis.command(&["FLUSHALL"]).unwrap();
    let answer = publish(
        &b,
        "org-rio",
        "SYNC_SUCCESS",
        "p",
        json!({"newVersion": 2}),
        1,
    )
    .await;
    assert_eq!(answer["lastSeq"], 1, "numbering starts again: {answer}");
    // The live socket sees another epoch: closed as lagging, never silently renumbered.
    let close = next_close(&mut ws).await;
    assert_eq!(u16::from(close.code), 1013, "{close:?}");
    let url = format!("{}?since=3&epoch={epoch}", a.sync_url("org-rio"));
    let mut resumed = crate::support::connect(&url).await;
    let connected = next_json(&mut resumed).await;
    assert_eq!(connected["historyTruncated"], true, "{connected}");
    assert_ne!(connected["epoch"], epoch.as_str());
    assert!(metric(&a, "syncprobe_epoch_resets_total").await >= 1.0);
}

#[tokio::test]
async fn a_stalled_redis_answers_503_and_degraded_then_recovers_without_silent_loss() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = instance(&redis).await;
    let (mut ws, _) = subscribe(&a, "org-rio").await;
    redis.command(&["CLIENT", "PAUSE", "3000", "ALL"]).unwrap();
    let (status, body) = post(&a.http("/api/ws/publish"), &publish_body("org-rio", "p")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "SERVICE_UNAVAILABLE", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("Redis"),
        "{body}"
    );
    let (status, body) = post(
        &a.http("/api/pems/write-sync"),
        &json!({"organizationId": "org-rio", "count": 1}).to_string(),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let degraded = health(&a).await;
    assert_eq!(degraded["status"], "degraded", "{degraded}");
    assert!(
        degraded["reason"].as_str().unwrap().contains("Redis"),
        "{degraded}"
    );
    assert_eq!(metric(&a, "syncprobe_redis_up").await, 0.0);
    // The socket stays open meanwhile; after the pause the server heals.
    healthy(&a).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let seq = loop {
        let (status, body) = post(
            &a.http("/api/ws/publish"),
            &publish_body("org-rio", "after"),
        )
        .await;
        if status == 200 {
            break body["lastSeq"].as_u64().unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Either every event up to it, in order, or a close that makes the client resume
    // (when events published during the stall cannot be proven delivered).
    let mut expected = 1;
    loop {
        match next_message(&mut ws).await {
            Message::Text(text) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(frame["seq"], expected, "no gap: {frame}");
                if expected == seq {
                    break;
                }
                expected += 1;
            }
            Message::Close(Some(close)) => {
                assert_eq!(u16::from(close.code), 1013, "{close:?}");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_killed_pubsub_connection_is_resubscribed_and_events_flow_again() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (instance(&redis).await, instance(&redis).await);
    let (mut ws, _) = subscribe(&a, "org-rio").await;
    publish(
        &b,
        "org-rio",
        "SYNC_SUCCESS",
        "p",
        json!({"newVersion": 2}),
        1,
    )
    .await;
    assert_eq!(next_event(&mut ws).await["seq"], 1);
    redis
        .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(&a, "syncprobe_redis_reconnects_total").await < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    healthy(&a).await;
    publish(
        &b,
        "org-rio",
        "SYNC_SUCCESS",
        "p",
        json!({"newVersion": 2}),
        1,
    )
    .await;
    assert_eq!(
        next_event(&mut ws).await["seq"],
        2,
        "the same socket, still served"
    );
}

#[tokio::test]
async fn a_redis_url_that_is_not_redis_is_a_usage_error_that_hides_the_password() {
    let output = crate::support::run_cli(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--redis",
        "http://user:s3cret@host/",
    ])
    .await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = crate::support::stderr(&output);
    assert!(stderr.contains("redis://"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

/// A TCP forwarder whose upstream the test switches (a load balancer in miniature).
struct Forwarder {
    addr: std::net::SocketAddr,
    upstream: std::sync::Arc<std::sync::Mutex<std::net::SocketAddr>>,
}

impl Forwarder {
    async fn start(upstream: std::net::SocketAddr) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = std::sync::Arc::new(std::sync::Mutex::new(upstream));
        let target = upstream.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let to = *target.lock().unwrap();
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Forwarder { addr, upstream }
    }

    fn switch(&self, to: std::net::SocketAddr) {
        *self.upstream.lock().unwrap() = to;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_under_a_reconnecting_client_loses_nothing() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (doomed, listening) = child_instance(&redis, &[]).await;
    let doomed_addr: std::net::SocketAddr =
        listening["data"]["addr"].as_str().unwrap().parse().unwrap();
    let survivor = instance(&redis).await;
    let forwarder = Forwarder::start(doomed_addr).await;
    let org = "org-nl";
    let mut run = crate::support::spawn_cli(&[
        "watch-sync",
        org,
        "--url",
        &format!("ws://{}", forwarder.addr),
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
    run.wait_for_connected().await;
    publish(&survivor, org, "SYNC_QUEUED", "pfa-1", json!(null), 3).await;
    run.wait_for("seq 3", |r| r["type"] == "event" && r["data"]["seq"] == 3)
        .await;
    forwarder.switch(survivor.addr);
    let kill = Command::new("kill")
        .args(["-9", &doomed.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // Published while the client is between instances: the shared history has them.
    publish(&survivor, org, "SYNC_PROCESSING", "pfa-1", json!(null), 3).await;
    run.wait_for_connected().await;
    publish(&survivor, org, "SYNC_PROCESSING", "pfa-2", json!(null), 3).await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let events = crate::support::data_of(&finished.records, "event");
    let seqs = crate::support::event_seqs(&finished.records);
    assert_eq!(
        seqs,
        (1..=9).collect::<Vec<_>>(),
        "every event exactly once"
    );
    let reconnected = events
        .iter()
        .filter(|e| e["type"] == "CONNECTED")
        .nth(1)
        .expect("a second CONNECTED");
    assert_eq!(reconnected["historyTruncated"], false, "{reconnected}");
}

const TERMINAL: [&str; 3] = ["SYNC_SUCCESS", "SYNC_CONFLICT", "SYNC_FAILED"];

/// An instance with `--claim-after` short, so a test sees a claim quickly.
async fn claiming_instance(redis: &RedisServer) -> TestServer {
    let mut config = config(redis);
    config.claim_after = Duration::from_millis(300);
    let server = TestServer::with(config).await;
    healthy(&server).await;
    server
}

async fn sync_status(server: &TestServer, org: &str) -> Value {
    get_json(&server.http(&format!("/api/pems/sync-status?organizationId={org}"))).await
}

/// Waits (bounded) until `org`'s queue has nothing waiting or in progress and
/// `ended` items ended; returns its figures (a 503 while Redis is away is waited out).
async fn settled(server: &TestServer, org: &str, ended: u64) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    let url = server.http(&format!("/api/pems/sync-status?organizationId={org}"));
    loop {
        let (code, body) = get(&url).await;
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        if code == 503 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(code, 200, "{body}");
        let status: Value = serde_json::from_str(&body).unwrap();
        let done = ["completed", "failed", "conflicts"]
            .iter()
            .map(|k| status[k].as_u64().unwrap())
            .sum::<u64>();
        if status["totalQueued"] == 0 && status["processing"] == 0 && done == ended {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads `ws` up to the event of `marker` (published last), counting each pfaId's
/// terminal events.
async fn terminals_until(ws: &mut Ws, marker: &str) -> std::collections::BTreeMap<String, u32> {
    let mut ends = std::collections::BTreeMap::new();
    loop {
        let event = next_event(ws).await;
        let pfa = event["pfaId"].as_str().unwrap().to_string();
        if pfa == marker {
            return ends;
        }
        if TERMINAL.contains(&event["type"].as_str().unwrap()) {
            *ends.entry(pfa).or_insert(0) += 1;
        }
    }
}

#[tokio::test]
async fn three_instances_share_the_write_sync_queue_and_end_each_item_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b, c) = (
        claiming_instance(&redis).await,
        claiming_instance(&redis).await,
        claiming_instance(&redis).await,
    );
    let org = "org-q";
    let (mut ws, _) = subscribe(&c, org).await;
    let pfas: Vec<String> = (0..30).map(|i| format!("pfa-{i}")).collect();
    let body = json!({"organizationId": org, "pfaIds": pfas, "outcome": "mixed"});
    let (status, answer) = post(&a.http("/api/pems/write-sync"), &body.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["queuedCount"], 30, "{answer}");
    // Cluster-wide figures, the same from every instance.
    let figures = settled(&b, org, 30).await;
    assert_eq!(
        (
            &figures["completed"],
            &figures["conflicts"],
            &figures["failed"]
        ),
        (&json!(15), &json!(8), &json!(7)),
        "{figures}"
    );
    assert!(figures["lastSyncAt"].is_string(), "{figures}");
    for other in [&a, &c] {
        let status = sync_status(other, org).await;
        for key in [
            "completed",
            "conflicts",
            "failed",
            "totalQueued",
            "processing",
        ] {
            assert_eq!(status[key], figures[key], "{key}: {status} vs {figures}");
        }
    }
    publish(&a, org, "SYNC_QUEUED", "marker", json!(null), 1).await;
    let ends = terminals_until(&mut ws, "marker").await;
    assert_eq!(ends.len(), 30, "{ends:?}");
    assert!(
        ends.values().all(|n| *n == 1),
        "one terminal each: {ends:?}"
    );
}

#[tokio::test]
async fn the_queue_cap_counts_an_organizations_items_across_instances() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let capped = || {
        let mut config = config(&redis);
        config.max_queued_items = 3;
        config.worker.processing_time = Duration::from_secs(30);
        config
    };
    let (a, b) = (
        TestServer::with(capped()).await,
        TestServer::with(capped()).await,
    );
    healthy(&a).await;
    let queue = |org: &str, n: u64| json!({"organizationId": org, "count": n}).to_string();
    let (status, body) = post(&a.http("/api/pems/write-sync"), &queue("org-cap", 3)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&b.http("/api/pems/write-sync"), &queue("org-cap", 1)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "QUEUE_FULL", "{body}");
    let (status, body) = post(&b.http("/api/pems/write-sync"), &queue("org-other", 3)).await;
    assert_eq!(status, 200, "another organization has its own cap: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_of_a_killed_instance_are_claimed_and_end_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let extra = [
        "--workers",
        "1",
        "--processing-time",
        "60s",
        "--claim-after",
        "300ms",
    ];
    let (doomed, listening) = child_instance(&redis, &extra).await;
    let doomed_http = format!("http://{}", listening["data"]["addr"].as_str().unwrap());
    let org = "org-kill";
    let body = json!({"organizationId": org, "pfaIds": ["p1", "p2", "p3"]});
    let (status, answer) = post(
        &format!("{doomed_http}/api/pems/write-sync"),
        &body.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // The doomed instance holds one item in progress, two wait.
    let status_url = format!("{doomed_http}/api/pems/sync-status?organizationId={org}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while get_json(&status_url).await["processing"] != 1 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let survivor = claiming_instance(&redis).await;
    // The waiting two go to the other instances at once; the doomed one keeps its own
    // (it touches it) until it dies.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = sync_status(&survivor, org).await;
        if status["completed"] == 2 {
            assert_eq!(status["processing"], 1, "{status}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        sync_status(&survivor, org).await["completed"],
        2,
        "a live instance's item is not claimed"
    );
    let kill = Command::new("kill")
        .args(["-9", &doomed.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let figures = settled(&survivor, org, 3).await;
    assert_eq!(figures["completed"], 3, "{figures}");
    // Every event of the organization, from the shared history.
    let (_, connected) = subscribe(&survivor, org).await;
    let url = format!(
        "{}?since=0&epoch={}",
        survivor.sync_url(org),
        connected["epoch"].as_str().unwrap()
    );
    let mut ws = crate::support::connect(&url).await;
    assert_eq!(next_json(&mut ws).await["historyTruncated"], false);
    publish(&survivor, org, "SYNC_QUEUED", "marker", json!(null), 1).await;
    let ends = terminals_until(&mut ws, "marker").await;
    assert_eq!(ends.len(), 3, "{ends:?}");
    assert!(
        ends.values().all(|n| *n == 1),
        "one terminal each: {ends:?}"
    );
}

#[tokio::test]
async fn a_write_sync_refused_while_redis_is_paused_queues_nothing() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = claiming_instance(&redis).await;
    redis.command(&["CLIENT", "PAUSE", "1500", "ALL"]).unwrap();
    let body = json!({"organizationId": "org-p", "count": 5}).to_string();
    let (status, answer) = post(&a.http("/api/pems/write-sync"), &body).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"], "SERVICE_UNAVAILABLE", "{answer}");
    healthy(&a).await;
    // Once Redis is back, a later request goes through, and only its items exist.
    let deadline = tokio::time::Instant::now() + WAIT;
    let body = json!({"organizationId": "org-p", "count": 2}).to_string();
    loop {
        let (status, answer) = post(&a.http("/api/pems/write-sync"), &body).await;
        if status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let figures = settled(&a, "org-p", 2).await;
    assert_eq!(figures["completed"], 2, "{figures}");
}

#[tokio::test]
async fn a_claim_after_of_zero_is_a_usage_error() {
    let output = crate::support::run_cli(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--redis",
        "redis://127.0.0.1:1/",
        "--claim-after",
        "0s",
    ])
    .await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = crate::support::stderr(&output);
    assert!(stderr.contains("--claim-after"), "{stderr}");
}

#[tokio::test]
async fn a_higher_priority_item_overtakes_waiting_ones_in_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut config = config(&redis);
    config.worker.workers = 1;
    config.worker.processing_time = Duration::from_millis(150);
    let a = TestServer::with(config).await;
    healthy(&a).await;
    let org = "org-prio";
    let (mut ws, _) = subscribe(&a, org).await;
    let low = json!({"organizationId": org, "pfaIds": ["low-1", "low-2", "low-3"]});
    let (status, body) = post(&a.http("/api/pems/write-sync"), &low.to_string()).await;
    assert_eq!(status, 200, "{body}");
    // Once the first low one runs, a high one is queued: it runs next.
    loop {
        let event = next_event(&mut ws).await;
        if event["type"] == "SYNC_PROCESSING" {
            assert_eq!(event["pfaId"], "low-1", "{event}");
            break;
        }
    }
    let high = json!({"organizationId": org, "pfaIds": ["high"], "priority": 10});
    let (status, body) = post(&a.http("/api/pems/write-sync"), &high.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let mut order = Vec::new();
    while order.len() < 3 {
        let event = next_event(&mut ws).await;
        if event["type"] == "SYNC_PROCESSING" {
            order.push(event["pfaId"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(order, ["high", "low-2", "low-3"]);
}

#[tokio::test]
async fn queued_items_survive_a_redis_pause_and_end_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut config = config(&redis);
    config.worker.workers = 2;
    config.worker.processing_time = Duration::from_millis(300);
    let a = TestServer::with(config).await;
    healthy(&a).await;
    let org = "org-pause";
    let body = json!({"organizationId": org, "pfaIds": ["p1", "p2", "p3", "p4"]});
    let (status, answer) = post(&a.http("/api/pems/write-sync"), &body.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    // Redis stalls while the items are in progress or waiting.
    redis.command(&["CLIENT", "PAUSE", "1500", "ALL"]).unwrap();
    let figures = settled(&a, org, 4).await;
    assert_eq!(figures["completed"], 4, "{figures}");
    let (_, connected) = subscribe(&a, org).await;
    let url = format!(
        "{}?since=0&epoch={}",
        a.sync_url(org),
        connected["epoch"].as_str().unwrap()
    );
    let mut ws = crate::support::connect(&url).await;
    assert_eq!(next_json(&mut ws).await["historyTruncated"], false);
    publish(&a, org, "SYNC_QUEUED", "marker", json!(null), 1).await;
    let ends = terminals_until(&mut ws, "marker").await;
    assert_eq!(ends.len(), 4, "{ends:?}");
    assert!(
        ends.values().all(|n| *n == 1),
        "one terminal each: {ends:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_under_a_client_given_two_urls_loses_nothing() {
    // The client knows both instances (no forwarder, no balancer): when the first dies
    // it moves to the second and resumes there from the shared history.
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (doomed, listening) = child_instance(&redis, &[]).await;
    let doomed_url = listening["data"]["url"].as_str().unwrap().to_string();
    let survivor = instance(&redis).await;
    let survivor_url = format!("ws://{}", survivor.addr);
    let org = "org-two-urls";
    let mut run = crate::support::spawn_cli(&[
        "watch-sync",
        org,
        "--url",
        &doomed_url,
        "--url",
        &survivor_url,
        "--reconnect",
        "--reconnect-base",
        "50ms",
        "--count",
        "9",
        "--fail-on-gap",
        "--timeout",
        "20s",
        "--connect-timeout",
        "2s",
        "--json",
    ]);
    run.wait_for_connected().await;
    publish(&survivor, org, "SYNC_QUEUED", "pfa-1", json!(null), 3).await;
    run.wait_for("seq 3", |r| r["type"] == "event" && r["data"]["seq"] == 3)
        .await;
    let kill = Command::new("kill")
        .args(["-9", &doomed.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    publish(&survivor, org, "SYNC_PROCESSING", "pfa-1", json!(null), 3).await;
    run.wait_for_connected().await;
    publish(&survivor, org, "SYNC_PROCESSING", "pfa-2", json!(null), 3).await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let seqs = crate::support::event_seqs(&finished.records);
    assert_eq!(
        seqs,
        (1..=9).collect::<Vec<_>>(),
        "every event exactly once"
    );
    let summary = finished
        .records
        .iter()
        .find(|r| r["type"] == "summary")
        .expect("a summary");
    let sessions = summary["data"]["sessions"].as_array().unwrap();
    let urls: Vec<&str> = sessions
        .iter()
        .map(|s| s["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            format!("{doomed_url}/api/ws/sync/{org}"),
            format!("{survivor_url}/api/ws/sync/{org}")
        ],
        "{sessions:?}"
    );
    assert_eq!(sessions[1]["epoch"], sessions[0]["epoch"], "one epoch");
}
