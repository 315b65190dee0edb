//! The `--json` format of every subcommand, record by record: each line is
//! deserialised into the closed list of record types, and each record's shape (its
//! field names, recursively, and each field's JSON kind) is compared with the shape
//! the format had when it was documented, so a renamed, dropped or retyped field in
//! any subcommand's output fails here. Event records carry the server's frame
//! untouched and are checked for that instead.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use super::support::*;

/// The record types of README "--json", and nothing else.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
enum Record {
    Listening(Value),
    Open(Value),
    Event(Value),
    Close(Value),
    Step(Value),
    Layer(Value),
    Queued(Value),
    Conflict(Value),
    Status(Value),
    Progress(Value),
    Summary(Value),
    Warning(Value),
    Error(Value),
}

impl Record {
    fn kind(&self) -> &'static str {
        match self {
            Record::Listening(_) => "listening",
            Record::Open(_) => "open",
            Record::Event(_) => "event",
            Record::Close(_) => "close",
            Record::Step(_) => "step",
            Record::Layer(_) => "layer",
            Record::Queued(_) => "queued",
            Record::Conflict(_) => "conflict",
            Record::Status(_) => "status",
            Record::Progress(_) => "progress",
            Record::Summary(_) => "summary",
            Record::Warning(_) => "warning",
            Record::Error(_) => "error",
        }
    }

    fn data(&self) -> &Value {
        match self {
            Record::Listening(d)
            | Record::Open(d)
            | Record::Event(d)
            | Record::Close(d)
            | Record::Step(d)
            | Record::Layer(d)
            | Record::Queued(d)
            | Record::Conflict(d)
            | Record::Status(d)
            | Record::Progress(d)
            | Record::Summary(d)
            | Record::Warning(d)
            | Record::Error(d) => d,
        }
    }
}

/// Object keys whose own keys are data (event types, error kinds, claim names), not
/// field names: their values' shapes are not descended into.
const DATA_KEYED: &[&str] = &[
    "byType",
    "errors",
    "claims",
    "byKind",
    "localData",
    "pemsData",
    "mergedData",
    "appliedChanges",
];

/// `path:kind` for every field under `value` (`items[]` for array elements);
/// `null` is its own kind, so an optional field that is absent in one run and set
/// in another is compared by name only.
fn shape(value: &Value, path: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if DATA_KEYED.contains(&key.as_str()) {
                    out.insert(format!("{p}:map"));
                    continue;
                }
                shape(v, &p, out);
            }
            if map.is_empty() {
                out.insert(format!("{path}:object"));
            }
        }
        Value::Array(items) => match items.first() {
            Some(first) if !first.is_object() => {
                out.insert(format!("{path}[]:{}", kind(first)));
            }
            Some(_) => items
                .iter()
                .for_each(|i| shape(i, &format!("{path}[]"), out)),
            None => {
                out.insert(format!("{path}:array"));
            }
        },
        other => {
            out.insert(format!("{path}:{}", kind(other)));
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Field names only (kinds dropped): what must never change.
fn names(shape: &BTreeSet<String>) -> BTreeSet<String> {
    shape
        .iter()
        .map(|s| s.rsplit_once(':').map_or(s.clone(), |(p, _)| p.to_string()))
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse(stdout: &str) -> Vec<Record> {
    stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a known record: {line:?}: {e}"))
        })
        .collect()
}

/// The field names of every record of `kind` in `records`, united.
fn fields_of(records: &[Record], kind: &str) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for r in records.iter().filter(|r| r.kind() == kind) {
        let mut s = BTreeSet::new();
        shape(r.data(), "", &mut s);
        all.extend(names(&s));
    }
    all
}

fn set(fields: &[&str]) -> BTreeSet<String> {
    fields.iter().map(|s| s.to_string()).collect()
}

fn kinds(records: &[Record]) -> BTreeSet<&'static str> {
    records.iter().map(Record::kind).collect()
}

/// Every event record is a frame the server sent, with its `type`.
fn events_are_frames(records: &[Record]) {
    for r in records.iter().filter(|r| r.kind() == "event") {
        assert!(r.data()["type"].is_string(), "{:?}", r.data());
    }
}

const OPEN: &[&str] = &["url", "organizationId", "openMs", "attempt"];
const CLOSE: &[&str] = &[
    "code",
    "reason",
    "initiator",
    "answer.code",
    "answer.reason",
];

/// A run over one socket: `open`, the frames, `close`, then the `summary`.
fn one_socket_records(records: &[Record]) {
    assert_eq!(
        kinds(records),
        BTreeSet::from(["open", "event", "close", "summary"])
    );
    events_are_frames(records);
    assert_eq!(fields_of(records, "open"), set(OPEN));
    assert_eq!(fields_of(records, "close"), set(CLOSE));
}

#[tokio::test]
async fn connect_records() {
    let server = TestServer::start().await;
    let out = run_cli(&["connect", "org-rec", "--url", &server.base(), "--json"]).await;
    let records = parse(&stdout(&out));
    one_socket_records(&records);
    assert_eq!(
        fields_of(&records, "summary"),
        set(&[
            "ok",
            "url",
            "organizationId",
            "openMs",
            "connectedMs",
            "protocol",
            "seq",
            "epoch",
            "eventsDuringHold",
            "failed"
        ])
    );
    let data = |kind: &str| records.iter().find(|r| r.kind() == kind).unwrap().data();
    assert_eq!(data("summary")["protocol"], "part2");
    assert_eq!(data("close")["initiator"], "client");
}

/// Several `--url`, the first dead: the warning, then one socket's records; the
/// summary names the URL that did not answer (`connect`, `enqueue`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_records() {
    let server = TestServer::start().await;
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("ws://{}", listener.local_addr().unwrap())
    };
    let failed = ["failed[].url", "failed[].message", "failed[].exitCode"];
    let base = server.base();
    let out = run_cli(&[
        "connect", "org-rf", "--url", &dead, "--url", &base, "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = parse(&stdout(&out));
    assert_eq!(fields_of(&records, "warning"), set(&["message"]));
    let records: Vec<Record> = records
        .into_iter()
        .filter(|r| r.kind() != "warning")
        .collect();
    one_socket_records(&records);
    let summary = fields_of(&records, "summary");
    assert!(summary.is_superset(&set(&failed)), "{summary:?}");
    assert!(!summary.contains("failed"), "{summary:?}");
    let argv = [
        "enqueue", "org-rf", "--url", &dead, "--url", &base, "--count", "1", "--json",
    ];
    let out = run_cli(&argv).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = fields_of(&parse(&stdout(&out)), "summary");
    assert!(
        summary.is_superset(&set(&failed)) && summary.contains("url"),
        "{summary:?}"
    );
}

#[tokio::test]
async fn errors_have_a_message_and_the_exit_code() {
    let out = run_cli(&["connect", "o", "--url", "ws://127.0.0.1:1", "--json"]).await;
    let records = parse(&stdout(&out));
    assert_eq!(fields_of(&records, "error"), set(&["message", "exitCode"]));
    assert_eq!(records.last().unwrap().data()["exitCode"], 3);
}

#[tokio::test]
async fn serve_announces_where_it_listens() {
    let mut run = spawn_cli(&["serve", "--listen", "127.0.0.1:0", "--json"]);
    let listening = run
        .wait_for("listening", |r| r["type"] == "listening")
        .await;
    let record: Record = serde_json::from_value(listening).unwrap();
    assert_eq!(fields_of(&[record], "listening"), set(&["addr", "url"]));
    run.interrupt().await;
    assert_eq!(run.finish().await.code(), Some(0));
}

#[tokio::test]
async fn proxy_announces_itself_and_its_control_api_as_serve_does() {
    let mut run = spawn_cli(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "ws://127.0.0.1:9",
        "--control",
        "127.0.0.1:0",
        "--json",
    ]);
    let mut records = Vec::new();
    for _ in 0..2 {
        let listening = run
            .wait_for("listening", |r| r["type"] == "listening")
            .await;
        records.push(serde_json::from_value::<Record>(listening).unwrap());
    }
    assert_eq!(fields_of(&records, "listening"), set(&["addr", "url"]));
    let urls: Vec<String> = records
        .iter()
        .map(|r| r.data()["url"].as_str().unwrap().to_string())
        .collect();
    assert!(
        urls[0].starts_with("ws://") && urls[1].starts_with("http://"),
        "{urls:?}"
    );
    run.interrupt().await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    assert_eq!(
        finished.records.len(),
        2,
        "nothing else on stdout: {:?}",
        finished.records
    );
}

#[tokio::test]
async fn token_summary() {
    let out = run_cli(&["token", "--secret", "s3cret", "--org", "org-a", "--json"]).await;
    let records = parse(&stdout(&out));
    assert_eq!(
        fields_of(&records, "summary"),
        set(&["token", "algorithm", "claims", "expiresAt"])
    );
}

#[tokio::test]
async fn token_inspect_summary() {
    let minted = run_cli(&[
        "token",
        "--secret",
        "s3cret",
        "--org",
        "org-a",
        "--claims",
        "pfa",
        "--subject",
        "ci",
    ])
    .await;
    let token = stdout(&minted);
    let out = run_cli(&["token", "inspect", token.trim(), "--org", "org-a", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = parse(&stdout(&out));
    assert_eq!(
        fields_of(&records, "summary"),
        set(&[
            "algorithm",
            "shape",
            "subject",
            "userId",
            "username",
            "email",
            "serviceStatus",
            "allOrganizations",
            "organizations[].organizationId",
            "organizations[].organizationCode",
            "organizations[].role",
            "organizations[].permissions[]",
            "issuedAt",
            "notBefore",
            "expiresAt",
            "issuer",
            "audience",
            "org",
            "usable",
            "problems",
            "notes",
        ])
    );
}

const ITEM_TRACE: &[&str] = &[
    "items[].pfaId",
    "items[].events[]",
    "items[].queuedMs",
    "items[].processingMs",
    "items[].terminalMs",
    "items[].outcome",
    "items[].details",
];

#[tokio::test]
async fn enqueue_records() {
    let server = TestServer::start().await;
    let out = run_cli(&[
        "enqueue",
        "org-rec",
        "--url",
        &server.base(),
        "--count",
        "2",
        "--outcome",
        "mixed",
        "--wait",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = parse(&stdout(&out));
    // The answer, as a `queued` record, before the events it caused.
    let queued_at = records.iter().position(|r| r.kind() == "queued");
    let first_item_event = records
        .iter()
        .position(|r| r.kind() == "event" && r.data()["type"] != "CONNECTED");
    assert!(
        queued_at.is_some() && queued_at < first_item_event,
        "{records:?}"
    );
    assert_eq!(
        fields_of(&records, "queued"),
        set(&[
            "organizationId",
            "jobId",
            "queuedCount",
            "message",
            "queued[].id",
            "queued[].pfaId",
            "answeredMs",
        ])
    );
    let records: Vec<Record> = records
        .into_iter()
        .filter(|r| r.kind() != "queued")
        .collect();
    one_socket_records(&records);
    let mut expected = set(&[
        "ok",
        "outcome",
        "posted",
        "organizationId",
        "url",
        "failed",
        "jobId",
        "queuedCount",
        "message",
        "queued[].id",
        "queued[].pfaId",
    ]);
    expected.extend(set(ITEM_TRACE));
    assert_eq!(fields_of(&records, "summary"), expected);
}

#[tokio::test]
async fn smoke_records() {
    let out = run_cli(&["smoke", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = parse(&stdout(&out));
    assert!(kinds(&records).is_superset(&BTreeSet::from(["step", "summary"])));
    assert_eq!(
        fields_of(&records, "step"),
        set(&["name", "status", "ms", "message"])
    );
    let mut expected = set(&[
        "ok",
        "server",
        "url",
        "organizationId",
        "protocol",
        "durationMs",
        "steps[].name",
        "steps[].status",
        "steps[].ms",
        "steps[].message",
    ]);
    expected.extend(set(ITEM_TRACE));
    assert_eq!(fields_of(&records, "summary"), expected);
    let summary = records
        .iter()
        .find(|r| r.kind() == "summary")
        .unwrap()
        .data();
    assert_eq!(
        (&summary["server"], &summary["protocol"]),
        (&"embedded".into(), &"part2".into())
    );
}

#[tokio::test]
async fn watch_sync_records() {
    let server = TestServer::start().await;
    let mut run = spawn_cli(&[
        "watch-sync",
        "org-rec",
        "--url",
        &server.base(),
        "--count",
        "3",
        "--json",
    ]);
    run.wait_for_connected().await;
    enqueue_one(&server, "org-rec").await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let records: Vec<Record> = finished
        .records
        .iter()
        .map(|r| serde_json::from_value(r.clone()).unwrap())
        .collect();
    one_socket_records(&records);
    assert_eq!(
        fields_of(&records, "summary"),
        set(&[
            "outcome",
            "reached",
            "durationMs",
            "sessions[].url",
            "sessions[].since",
            "sessions[].seq",
            "sessions[].epoch",
            "sessions[].events",
            "organizationId",
            "protocol",
            "frames",
            "events",
            "replayed",
            "hidden",
            "byType",
            "items[].pfaId",
            "items[].state",
            "items[].terminal",
            "items[].events[]",
            "items[].queuedToTerminalMs",
            "items[].details",
            "unfinished",
            "queuedToTerminalMs.min",
            "queuedToTerminalMs.avg",
            "queuedToTerminalMs.max",
            "queuedToTerminalMs.count",
            "deliveryLatencyMs.min",
            "deliveryLatencyMs.avg",
            "deliveryLatencyMs.max",
            "deliveryLatencyMs.count",
            "latencySource",
            "seq.epoch",
            "seq.lastSeq",
            "seq.gaps",
            "seq.missing",
            "seq.duplicates",
            "seq.late",
            "seq.epochChanges",
            "seq.truncations",
            "reconnects",
            "lossWindows",
            "malformed",
            "unknownTypes",
            "expectation",
        ])
    );
    let summary = records
        .iter()
        .find(|r| r.kind() == "summary")
        .unwrap()
        .data();
    assert_eq!(summary["outcome"], "count");
}

async fn enqueue_one(server: &TestServer, org: &str) {
    let body = serde_json::json!({"organizationId": org, "count": 1}).to_string();
    let (status, answer) = post(&server.http("/api/pems/write-sync"), &body).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn load_records() {
    let out = run_cli(&["load", "-c", "4", "--events", "5", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = parse(&stdout(&out));
    assert!(kinds(&records).contains("summary"), "{records:?}");
    let fields = fields_of(&records, "summary");
    if let Some(progress) = records.iter().find(|r| r.kind() == "progress") {
        let mut s = BTreeSet::new();
        shape(progress.data(), "", &mut s);
        assert_eq!(
            names(&s),
            set(&[
                "elapsedMs",
                "open",
                "requested",
                "delivered",
                "p99Ms",
                "errors"
            ])
        );
    }
    assert_eq!(fields, set(LOAD_SUMMARY));
}

const LOAD_SUMMARY: &[&str] = &[
    "ok",
    "durationMs",
    "organizations",
    "connectionsRequested",
    "connectionsOpened",
    "connectionsFailed",
    "connectRate",
    "eventsPublished",
    "framesDelivered",
    "deliveredPerSec",
    "clientCpuUsPerFrame",
    "latencySource",
    "errors",
    "thresholds",
    "connectMs.count",
    "connectMs.mean",
    "connectMs.p50",
    "connectMs.p90",
    "connectMs.p95",
    "connectMs.p99",
    "connectMs.p999",
    "connectMs.max",
    "connectedMs.count",
    "connectedMs.mean",
    "connectedMs.p50",
    "connectedMs.p90",
    "connectedMs.p95",
    "connectedMs.p99",
    "connectedMs.p999",
    "connectedMs.max",
    "latencyMs.count",
    "latencyMs.mean",
    "latencyMs.p50",
    "latencyMs.p90",
    "latencyMs.p95",
    "latencyMs.p99",
    "latencyMs.p999",
    "latencyMs.max",
    "completeness.subscribers",
    "completeness.completeSubscribers",
    "completeness.expected",
    "completeness.received",
    "completeness.missing",
    "completeness.duplicated",
    "completeness.reordered",
    "startedAt",
    "phasesMs.connect",
    "phasesMs.events",
    "phasesMs.drain",
    "urls[].url",
    "urls[].connectionsOpened",
    "urls[].connectionsFailed",
    "urls[].framesDelivered",
    "urls[].connectMs.count",
    "urls[].connectMs.mean",
    "urls[].connectMs.p50",
    "urls[].connectMs.p90",
    "urls[].connectMs.p95",
    "urls[].connectMs.p99",
    "urls[].connectMs.p999",
    "urls[].connectMs.max",
    "urls[].latencyMs.count",
    "urls[].latencyMs.mean",
    "urls[].latencyMs.p50",
    "urls[].latencyMs.p90",
    "urls[].latencyMs.p95",
    "urls[].latencyMs.p99",
    "urls[].latencyMs.p999",
    "urls[].latencyMs.max",
];

/// A URL password and a token in the query never reach stdout or stderr, in any
/// subcommand, in text or NDJSON.
#[tokio::test]
async fn secrets_never_reach_the_output() {
    let server = TestServer::start().await;
    let url = server.base().replace("ws://", "ws://user:hunter2@");
    let secret = ["--token", "tok-s3cr3t-value", "--token-in", "query"];
    let runs: Vec<Vec<&str>> = vec![
        vec!["connect", "org-sec", "--url", &url],
        vec![
            "enqueue", "org-sec", "--url", &url, "--count", "1", "--wait",
        ],
        vec!["smoke", "org-sec", "--url", &url],
        vec!["load", "-c", "2", "--events", "2", "--url", &url],
        vec![
            "watch-sync",
            "org-sec",
            "--url",
            &url,
            "--duration",
            "200ms",
        ],
    ];
    for run in runs {
        for json in [false, true] {
            let mut argv = run.clone();
            argv.extend(secret);
            if json {
                argv.push("--json");
            }
            let out = run_cli(&argv).await;
            let all = format!("{}{}", stdout(&out), stderr(&out));
            assert_eq!(out.status.code(), Some(0), "{argv:?}: {all}");
            for leak in ["hunter2", "tok-s3cr3t-value"] {
                assert!(!all.contains(leak), "{argv:?} shows {leak}: {all}");
            }
        }
    }
}

/// The wire spellings of every state the records carry, pinned as literals (the
/// record tests above compare field names; these compare values), and each
/// enum's `as_str` (its text rendering) agreeing with its serde spelling.
#[test]
fn states_are_spelt_as_documented() {
    use syncprobe::client::session::Initiator;
    use syncprobe::expect::{Mode, Status};
    use syncprobe::load::LatencySource;
    use syncprobe::protocol::ProtocolPart;
    use syncprobe::report::smoke::{ServerKind, StepStatus};
    use syncprobe::report::watch::WatchOutcome;

    fn wire<T: serde::Serialize>(value: T) -> String {
        serde_json::to_value(value)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }
    fn both<T: serde::Serialize + Copy>(pairs: &[(T, &str)], as_str: fn(T) -> &'static str) {
        for (value, spelt) in pairs {
            assert_eq!(wire(*value), *spelt);
            assert_eq!(as_str(*value), *spelt);
        }
    }
    both(
        &[(Initiator::Client, "client"), (Initiator::Server, "server")],
        Initiator::as_str,
    );
    both(
        &[(Mode::Subsequence, "subsequence"), (Mode::Strict, "strict")],
        Mode::as_str,
    );
    both(
        &[
            (Status::Pending, "pending"),
            (Status::Satisfied, "satisfied"),
            (Status::Failed, "failed"),
        ],
        Status::as_str,
    );
    both(
        &[
            (LatencySource::PublishedAtUs, "publishedAtUs"),
            (LatencySource::Timestamp, "timestamp (1 ms resolution)"),
            (
                LatencySource::Mixed,
                "publishedAtUs where present, else timestamp (1 ms resolution)",
            ),
        ],
        LatencySource::as_str,
    );
    both(
        &[
            (WatchOutcome::Satisfied, "satisfied"),
            (WatchOutcome::Failed, "failed"),
            (WatchOutcome::Timeout, "timeout"),
            (WatchOutcome::Interrupted, "interrupted"),
            (WatchOutcome::ProtocolError, "protocol-error"),
            (WatchOutcome::Closed, "closed"),
            (WatchOutcome::GaveUp, "gave-up"),
            (WatchOutcome::ConnectFailed, "connect-failed"),
            (WatchOutcome::Count, "count"),
            (WatchOutcome::Duration, "duration"),
        ],
        WatchOutcome::as_str,
    );
    assert_eq!(wire(ProtocolPart::Part1), "part1");
    assert_eq!(wire(ProtocolPart::Part2), "part2");
    assert_eq!(wire(ServerKind::Embedded), "embedded");
    assert_eq!(wire(ServerKind::Url), "url");
    assert_eq!(wire(StepStatus::Passed), "passed");
    assert_eq!(wire(StepStatus::Skipped), "skipped");
    assert_eq!(wire(StepStatus::Failed), "failed");
    use syncprobe::report::enqueue::EnqueueOutcome as E;
    for (outcome, spelt) in [
        (E::Queued, "queued"),
        (E::Finished, "finished"),
        (E::Failed, "failed"),
        (E::Timeout, "timeout"),
        (E::Interrupted, "interrupted"),
        (E::Error, "error"),
    ] {
        assert_eq!(wire(outcome), spelt);
    }
}

/// Output that cannot be written is an error (exit 6) once the run is over, not a
/// silent pass; a closed pipe is not (`| head`).
#[tokio::test]
async fn a_stdout_that_cannot_be_written_fails_the_run() {
    for json in [true, false] {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncprobe"));
        command
            .arg("smoke")
            .env("NO_COLOR", "1")
            .env_remove("SYNCPROBE_URL")
            .stdout(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/full")
                    .unwrap(),
            )
            .stderr(std::process::Stdio::piped());
        if json {
            command.arg("--json");
        }
        // Not `output()`: tokio's pipes stdout for it, whatever was set.
        let child = command.kill_on_drop(true).spawn().unwrap();
        let out =
            tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
                .await
                .unwrap()
                .unwrap();
        assert_eq!(out.status.code(), Some(6), "json {json}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("failed to write to stdout: No space left on device"),
            "{}",
            stderr(&out)
        );
    }
}

/// Output files are checked before the run: a folder that does not exist is a usage
/// error at once, before any connection (the URL here would fail with exit 3).
#[tokio::test]
async fn output_paths_are_checked_before_the_run() {
    let missing = "/nonexistent-dir/out.file";
    for argv in [
        vec!["watch-sync", "o", "--junit", missing],
        vec!["watch-sync", "o", "--record", missing],
        vec!["enqueue", "o", "--count", "1", "--wait", "--junit", missing],
        vec!["smoke", "o", "--junit", missing],
        vec!["load", "-c", "1", "--report", missing],
    ] {
        let mut argv = argv.clone();
        argv.extend(["--url", "ws://127.0.0.1:1"]);
        let out = run_cli(&argv).await;
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("the folder /nonexistent-dir does not exist"),
            "{argv:?}: {}",
            stderr(&out)
        );
    }
}

const CONFLICT: &[&str] = &[
    "id",
    "pfaId",
    "localVersion",
    "pemsVersion",
    "conflictFields[]",
    "localData",
    "pemsData",
    "status",
    "resolution",
    "mergedData",
    "createdAt",
    "resolvedAt",
    "resolvedBy",
];

/// `conflicts ORG`: a `conflict` record per conflict, then the summary;
/// `--resolve … --wait`: the socket's records and the resolution's summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_records() {
    let server = TestServer::start().await;
    let (mut ws, _) = subscribe(&server, "org-rc").await;
    let body = r#"{"organizationId":"org-rc","pfaIds":["pfa-rc"],"outcome":"conflict"}"#;
    post(&server.http("/api/pems/write-sync"), body).await;
    let id = loop {
        let frame = next_json(&mut ws).await;
        if frame["type"] == "SYNC_CONFLICT" {
            break frame["details"]["conflictId"].as_str().unwrap().to_string();
        }
    };
    let base = server.base();
    let out = run_cli(&["conflicts", "org-rc", "--url", &base, "--json"]).await;
    let records = parse(&stdout(&out));
    assert_eq!(kinds(&records), BTreeSet::from(["conflict", "summary"]));
    assert_eq!(fields_of(&records, "conflict"), set(CONFLICT));
    assert_eq!(
        fields_of(&records, "summary"),
        set(&["ok", "organizationId", "status", "total", "unresolved"])
    );
    let out = run_cli(&[
        "conflicts",
        "org-rc",
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
    let records = parse(&stdout(&out));
    one_socket_records(&records);
    let mut expected = set(&[
        "ok",
        "organizationId",
        "conflictId",
        "pfaId",
        "resolution",
        "resolved",
        "resolvedAt",
        "appliedChanges",
        "requeued",
    ]);
    expected.extend(ITEM_TRACE.iter().map(|f| f.replace("items[]", "item")));
    assert_eq!(fields_of(&records, "summary"), expected);
}

/// `status ORG`: a `status` record per look, then the summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_records() {
    let server = TestServer::start().await;
    enqueue_one(&server, "org-rs").await;
    let out = run_cli(&["status", "org-rs", "--url", &server.base(), "--json"]).await;
    let records = parse(&stdout(&out));
    assert_eq!(kinds(&records), BTreeSet::from(["status", "summary"]));
    let status = fields_of(&records, "status");
    let expected = set(&[
        "organizationId",
        "at",
        "syncStatus.totalQueued",
        "syncStatus.processing",
        "syncStatus.completed",
        "syncStatus.failed",
        "syncStatus.avgSyncTime",
        "syncStatus.lastSyncAt",
        "syncStatus.nextSyncAt",
        "syncStatus.health",
        "syncStatus.successRate",
        "syncStatus.conflicts",
        "backlog",
        "connections",
        "totalConnections",
        "statsNote",
        "activity",
    ]);
    assert_eq!(status, expected);
    assert_eq!(
        fields_of(&records, "summary"),
        set(&[
            "ok",
            "organizationId",
            "refreshes",
            "failedRefreshes",
            "health"
        ])
    );
}

#[tokio::test]
async fn replay_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.ndjson");
    let frame =
        serde_json::json!({"type": "SYNC_QUEUED", "organizationId": "org-rp", "pfaId": "P"});
    std::fs::write(
        &path,
        serde_json::json!({"receivedAtUs": 1, "frame": frame}).to_string(),
    )
    .unwrap();
    let mut run = spawn_cli(&[
        "replay",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--json",
    ]);
    let listening = run
        .wait_for("listening", |r| r["type"] == "listening")
        .await;
    let url = listening["data"]["url"].as_str().unwrap().to_string();
    let out = run_cli(&["connect", "org-rp", "--url", &url]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    run.interrupt().await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let records: Vec<Record> = finished
        .records
        .iter()
        .map(|r| serde_json::from_value(r.clone()).unwrap())
        .collect();
    assert_eq!(kinds(&records), BTreeSet::from(["listening", "summary"]));
    assert_eq!(fields_of(&records, "listening"), set(&["addr", "url"]));
    assert_eq!(
        fields_of(&records, "summary"),
        set(&[
            "file",
            "format",
            "organizations[].organizationId",
            "organizations[].frames",
            "organizations[].events",
            "organizations[].durationMs",
            "sessions",
            "framesSent",
        ])
    );
}

#[tokio::test]
async fn doctor_records() {
    let server = TestServer::start().await;
    let out = run_cli(&["doctor", "org-rec", "--url", &server.base(), "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = parse(&stdout(&out));
    assert_eq!(kinds(&records), BTreeSet::from(["layer", "summary"]));
    assert_eq!(
        fields_of(&records, "layer"),
        set(&["name", "status", "ms", "detail", "hint"])
    );
    assert_eq!(records.iter().filter(|r| r.kind() == "layer").count(), 12);
    assert_eq!(
        fields_of(&records, "summary"),
        set(&[
            "ok",
            "url",
            "organizationId",
            "failed",
            "exitCode",
            "passed",
            "warned",
            "skipped",
            "durationMs"
        ])
    );
}
