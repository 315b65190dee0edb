//! `load` at small scale: exact completeness, thresholds that pass and fail, the HTML
//! report, and errors classified by kind (refused upgrades, server closes).

use serde_json::{Value, json};
use syncprobe::load::{ErrorKind, LatencySource};
use syncprobe::report::load::LoadReport;

use crate::fake::*;
use crate::support::*;

fn report_of(output: &std::process::Output) -> LoadReport {
    let records = records(output);
    summary_of(&records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completeness_is_exact_over_several_organizations() {
    let server = TestServer::start().await;
    let output = run_cli(&[
        "load",
        "--url",
        &server.base(),
        "--connections",
        "200",
        "--orgs",
        "3",
        "--events",
        "50",
        // The run ends when every subscriber has every event, not at the end of
        // the drain: with 10 minutes of drain it still ends within run_cli's minute.
        "--drain-timeout",
        "10m",
        "--threshold",
        "loss==0",
        "--threshold",
        "duplicates==0",
        "--threshold",
        "p99<30s",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let r = report_of(&output);
    let s = &r.summary;
    assert!(r.ok);
    assert_eq!(
        (s.connections_opened, s.connections_failed, s.organizations),
        (200, 0, 3)
    );
    let c = s.completeness.as_ref().expect("serve numbers its events");
    assert_eq!(
        (c.expected, c.received, c.missing, c.duplicated, c.reordered),
        (200 * 50, 200 * 50, 0, 0, 0)
    );
    assert_eq!((c.subscribers, c.complete_subscribers), (200, 200));
    assert_eq!(s.frames_delivered, 200 * 50);
    assert_eq!(s.events_published, Some(150));
    assert_eq!(s.latency_ms.count, 200 * 50);
    assert_eq!(s.latency_source, Some(LatencySource::PublishedAtUs));
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(r.thresholds.len(), 3);
    assert!(r.thresholds.iter().all(|v| v.ok));
    // The connect rate spans the first attempt to the last CONNECTED: the phase it
    // implies is at least the slowest socket's time to CONNECTED. (No upper bound:
    // on a loaded machine sockets start late, and a timed bound would be flaky.)
    let phase_ms = s.connections_opened as f64 / s.connect_rate * 1000.0;
    assert!(
        phase_ms >= s.connected_ms.max * 0.9,
        "phase {phase_ms:.1} ms, slowest CONNECTED {:.1} ms",
        s.connected_ms.max
    );
    // The server agrees: every organization numbered its 50 events.
    for org in ["org-load-1", "org-load-2", "org-load-3"] {
        let (_, connected) = subscribe(&server, org).await;
        assert_eq!(connected["seq"], 50, "{org}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_source_delivers_every_lifecycle() {
    let server = TestServer::start().await;
    let output = run_cli(&[
        "load",
        "--url",
        &server.base(),
        "--connections",
        "20",
        "--via",
        "queue",
        "--events",
        "5",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let s = report_of(&output).summary;
    let c = s.completeness.unwrap();
    assert_eq!((c.expected, c.missing), (20 * 15, 0));
    assert_eq!(s.latency_source, Some(LatencySource::Timestamp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breached_threshold_exits_1_and_says_by_how_much() {
    let server = TestServer::start().await;
    let output = run_cli(&[
        "load",
        "--url",
        &server.base(),
        "--connections",
        "10",
        "--events",
        "5",
        "--threshold",
        "p50<0.001us",
        "--threshold",
        "opened>=11",
        "--threshold",
        "loss==0",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let r = report_of(&output);
    assert!(!r.ok);
    let verdicts: Vec<(String, bool)> = r
        .thresholds
        .iter()
        .map(|v| (v.threshold.clone(), v.ok))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("p50<0.001us".into(), false),
            ("opened>=11".into(), false),
            ("loss==0".into(), true)
        ]
    );
    let err = stderr(&output);
    assert!(
        err.contains("p50<0.001us breached") && err.contains("past the limit"),
        "{err}"
    );
    assert!(
        err.contains("opened>=11 breached: opened = 10.000 (1.000 past the limit)"),
        "{err}"
    );
    // A rule that does not parse is a usage error.
    assert_eq!(
        run_cli(&["load", "--threshold", "latency<5"])
            .await
            .status
            .code(),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_is_written_and_well_formed() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("load.html");
    let output = run_cli(&[
        "load",
        "--url",
        &server.base(),
        "--connections",
        "20",
        "--events",
        "30",
        "--rate",
        "300",
        "--report",
        path.to_str().unwrap(),
        "-q",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    let doc = roxmltree::Document::parse_with_options(
        &html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("well-formed");
    let svgs: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("svg"))
        .collect();
    assert_eq!(svgs.len(), 6, "six charts (tests/cli/report.rs walks each)");
    let bars = doc.descendants().filter(|n| n.has_tag_name("rect")).count();
    assert!(bars > 0, "the histograms have bars");
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .count();
    assert_eq!(lines, 6, "open, delivered, p50 p90 p99 max over time");
    let text: String = doc.descendants().filter_map(|n| n.text()).collect();
    assert!(text.contains("600 frames"), "the figures are in the page");
    // Opens without network access: no scripts, no external resources.
    for needle in ["<script", "<link", " src=", "url("] {
        assert!(
            !html.contains(needle),
            "the report must be self-contained: found {needle}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upgrades_are_counted_by_status() {
    let fake = HttpServer::start("503 Service Unavailable", r#"{"error":"CAP_REACHED"}"#).await;
    let output = run_cli(&[
        "load",
        "--url",
        &fake.base(),
        "--connections",
        "5",
        "--events",
        "1",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let s = report_of(&output).summary;
    assert_eq!((s.connections_opened, s.connections_failed), (0, 5));
    assert_eq!(
        s.errors.get(&ErrorKind::UpgradeRefused(503)),
        Some(&5),
        "{:?}",
        s.errors
    );
    assert!(
        stderr(&output).contains("none of the 5 connections opened"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_closes_are_counted_by_code() {
    let fake = FakeServer::start(|mut ws, upgrade| async move {
        let org = upgrade.path.rsplit('/').next().unwrap().to_string();
        send(&mut ws, &part2_connected(&org, 0, "e")).await;
        close(&mut ws, 4429, "rate limit exceeded").await;
    })
    .await;
    let output = run_cli(&[
        "load",
        "--url",
        &fake.base(),
        "--connections",
        "6",
        "--passive",
        "--duration",
        "300ms",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let s = report_of(&output).summary;
    assert_eq!(s.connections_opened, 6);
    assert_eq!(
        s.errors.get(&ErrorKind::ClosedByServer(Some(4429))),
        Some(&6),
        "{:?}",
        s.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_mode_measures_what_others_publish() {
    let server = TestServer::start().await;
    let mut running = spawn_cli(&[
        "load",
        "--url",
        &server.base(),
        "--connections",
        "10",
        "--org",
        "org-passive",
        "--passive",
        "--duration",
        "3s",
        "--json",
    ]);
    // Wait (bounded by `wait_for`) for a progress record saying the ten sockets
    // reached CONNECTED (so the server has subscribed them), then publish as
    // "someone else".
    running
        .wait_for("progress with 10 open", |r| {
            r["type"] == "progress" && r["data"]["open"] == 10
        })
        .await;
    let answer = publish(&server, "org-passive", "SYNC_QUEUED", "p", json!(null), 5).await;
    assert_eq!(answer["lastSeq"], 5);
    let finished = running.finish().await;
    assert_eq!(finished.status.code(), Some(0), "{}", finished.stderr);
    let r: LoadReport = summary_of(&finished.records);
    let c = r.summary.completeness.unwrap();
    assert_eq!((c.expected, c.received, c.missing), (50, 50, 0));
    assert_eq!(r.summary.events_published, None);
    let progress: Vec<&Value> = data_of(&finished.records, "progress");
    assert!(
        !progress.is_empty(),
        "progress records once a second with --json"
    );
}

/// A server that loses an event: every subscriber gets seq 1, 2 and 4 (3 never
/// comes), and the final probe gets `probe` (by default a CONNECTED that says the
/// organization is at 4).
async fn server_losing_seq_3() -> FakeServer {
    server_losing_seq_3_probed(part2_connected("org-loss", 4, "e1")).await
}

async fn server_losing_seq_3_probed(probe: String) -> FakeServer {
    FakeServer::start(move |mut ws, upgrade| {
        let probe = probe.clone();
        async move {
            let org = "org-loss";
            if upgrade.index < 2 {
                send(&mut ws, &part2_connected(org, 0, "e1")).await;
                for seq in [1, 2, 4] {
                    send(&mut ws, &part2_event("SYNC_QUEUED", "p", org, seq)).await;
                }
            } else {
                send(&mut ws, &probe).await;
            }
            drain(&mut ws).await;
        }
    })
    .await
}

/// Two passive subscribers of `org-loss` on `server` for 300 ms, with `extra` flags.
async fn loss_run(server: &FakeServer, extra: &[&str]) -> std::process::Output {
    passive_load(&server.base(), "org-loss", "2", "300ms", extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_fails_the_run_unless_allowed() {
    let out = loss_run(&server_losing_seq_3().await, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = report_of(&out);
    let c = report.summary.completeness.as_ref().unwrap();
    assert_eq!((c.expected, c.received, c.missing), (8, 6, 2));
    assert!(!report.ok);
    let lines = records(&out);
    let errors = data_of(&lines, "error");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(message.contains("2 of 8 deliveries missing"), "{message}");
    assert!(message.contains("--allow-loss"), "{message}");

    let out = loss_run(&server_losing_seq_3().await, &["--allow-loss"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(report_of(&out).ok);
    assert_eq!(report_of(&out).summary.completeness.unwrap().missing, 2);
}

/// The same loss, but the closing probe gets a CONNECTED without `seq`: the final
/// seq is unknown, so the loss at the end could not be counted. That must not pass
/// as "nothing lost".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_final_seq_fails_the_run_unless_loss_is_allowed() {
    let server = || server_losing_seq_3_probed(part1_connected("org-loss"));
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("load.xml");
    let junit = junit.to_str().unwrap();
    let out = loss_run(&server().await, &["--junit", junit]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let xml = std::fs::read_to_string(junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let case = doc
        .descendants()
        .find(|n| n.attribute("name") == Some("completeness"))
        .expect("a completeness case");
    let failure = case
        .children()
        .find(|n| n.has_tag_name("failure"))
        .expect("the completeness case fails");
    assert!(
        failure
            .attribute("message")
            .is_some_and(|m| m.contains("final seq could not be read")),
        "{xml}"
    );
    let report = report_of(&out);
    assert!(!report.ok);
    assert_eq!(report.summary.completeness, None);
    assert_eq!(
        report.summary.unmeasured,
        Some(syncprobe::load::Unmeasured::FinalSeqUnknown)
    );
    let lines = records(&out);
    let message = data_of(&lines, "error")[0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("final seq could not be read"), "{message}");
    assert!(message.contains("--allow-loss"), "{message}");

    let out = loss_run(&server().await, &["--allow-loss"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(report_of(&out).ok);
}

/// A server that numbers nothing (Part 1 only): completeness is not measurable, and
/// that is no failure; the summary says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_seq_passes_with_completeness_unmeasurable() {
    let server = FakeServer::sending(vec![part1_connected("org-p1")]).await;
    let out = passive_load(&server.base(), "org-p1", "2", "200ms", &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = report_of(&out);
    assert!(report.ok);
    assert_eq!(
        report.summary.measured(),
        Err(syncprobe::load::Unmeasured::NoSeq)
    );
}

/// Frames written at once are read together (one clock reading for the lot) and
/// each is still counted on its own: a frame that is not JSON is an error, the
/// others are measured from `publishedAtUs` where they carry it and from
/// `timestamp` where they do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_read_together_are_each_counted_and_measured() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let fake = FakeServer::start(|mut ws, upgrade| async move {
        let org = "org-batch";
        // Five subscribers, then the final probe.
        if upgrade.index >= 5 {
            send(&mut ws, &part2_connected(org, 3, "e1")).await;
            return drain(&mut ws).await;
        }
        send(&mut ws, &part2_connected(org, 0, "e1")).await;
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        let stamped = |seq: u64| {
            let mut event: Value =
                serde_json::from_str(&part2_event("SYNC_QUEUED", "p", org, seq)).unwrap();
            event["publishedAtUs"] = json!(now_us);
            event.to_string()
        };
        let frames = [
            stamped(1),
            "not json".to_string(),
            part2_event("SYNC_QUEUED", "p", org, 2),
            stamped(3),
        ];
        for frame in frames {
            let _ = ws.feed(Message::text(frame)).await;
        }
        let _ = ws.flush().await;
        drain(&mut ws).await;
    })
    .await;
    let output = run_cli(&[
        "load",
        "--url",
        &fake.base(),
        "--connections",
        "5",
        "--org",
        "org-batch",
        "--passive",
        "--duration",
        "500ms",
        "--json",
    ])
    .await;
    let s = report_of(&output).summary;
    assert_eq!(s.connections_opened, 5);
    assert_eq!(
        s.errors.get(&ErrorKind::MalformedFrame),
        Some(&5),
        "{:?}",
        s.errors
    );
    let c = s.completeness.as_ref().unwrap();
    assert_eq!(
        (c.expected, c.received, c.missing, c.reordered),
        (15, 15, 0, 0)
    );
    assert_eq!(s.latency_ms.count, 15);
    assert_eq!(s.latency_source, Some(LatencySource::Mixed));
    assert_eq!(
        s.frames_delivered, 20,
        "the frame that is not JSON was delivered too"
    );
    assert_eq!(s.urls[0].frames_delivered, 20);
}

/// The client frames a [`RawServer`] saw: opcode, unmasked payload, whether masked.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(u8, Vec<u8>, bool)>>>;

/// A server written by hand on TCP, to send what a WebSocket library would not: the
/// `101`, CONNECTED and the first frames in one write, lengths in more bytes than
/// they need, fragments with pings between them, masked frames. It keeps every frame
/// the client sends (opcode, unmasked payload, whether it was masked).
struct RawServer {
    addr: std::net::SocketAddr,
    seen: Seen,
    _task: tokio::task::JoinHandle<()>,
}

impl RawServer {
    /// Answers each upgrade with `after_101` (given the organization) in the same write.
    async fn start(after_101: fn(&str) -> Vec<u8>) -> RawServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Seen::default();
        let kept = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    return;
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let head = String::from_utf8_lossy(&read_head(&mut tcp).await).into_owned();
                    let Some((org, answer)) = switching(&head) else {
                        return;
                    };
                    let mut answer = answer.into_bytes();
                    answer.extend(after_101(&org));
                    if tcp.write_all(&answer).await.is_err() {
                        return;
                    }
                    // The client's frames, until it closes or goes.
                    loop {
                        let mut two = [0u8; 2];
                        if tcp.read_exact(&mut two).await.is_err() {
                            return;
                        }
                        let masked = two[1] & 0x80 != 0;
                        let len = match two[1] & 0x7F {
                            126 => {
                                let mut l = [0u8; 2];
                                tcp.read_exact(&mut l).await.unwrap();
                                u16::from_be_bytes(l) as usize
                            }
                            127 => {
                                let mut l = [0u8; 8];
                                tcp.read_exact(&mut l).await.unwrap();
                                u64::from_be_bytes(l) as usize
                            }
                            n => n as usize,
                        };
                        let mut mask = [0u8; 4];
                        if masked {
                            tcp.read_exact(&mut mask).await.unwrap();
                        }
                        let mut payload = vec![0u8; len];
                        if tcp.read_exact(&mut payload).await.is_err() {
                            return;
                        }
                        for (i, b) in payload.iter_mut().enumerate() {
                            *b ^= mask[i % 4];
                        }
                        let opcode = two[0] & 0x0F;
                        kept.lock().unwrap().push((opcode, payload, masked));
                        if opcode == 8 {
                            let _ = tcp.write_all(&[0x88, 0x02, 0x03, 0xE8]).await;
                            return;
                        }
                    }
                });
            }
        });
        RawServer {
            addr,
            seen,
            _task: task,
        }
    }

    fn base(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The client frames seen with `opcode`: (payload, masked).
    fn seen(&self, opcode: u8) -> Vec<(Vec<u8>, bool)> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(o, ..)| *o == opcode)
            .map(|(_, p, m)| (p.clone(), *m))
            .collect()
    }
}

/// `load --passive` with `connections` sockets to `org` on `base` for `duration`.
async fn passive_load(
    base: &str,
    org: &str,
    connections: &str,
    duration: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut argv = vec![
        "load",
        "--url",
        base,
        "--connections",
        connections,
        "--org",
        org,
        "--passive",
        "--duration",
        duration,
        "--json",
    ];
    argv.extend_from_slice(extra);
    run_cli(&argv).await
}

/// A server frame: `first` is FIN and opcode; `long` writes the length in 8 bytes
/// whatever it is (allowed on the wire, if wasteful).
fn server_frame(first: u8, payload: &[u8], long: bool) -> Vec<u8> {
    let mut frame = vec![first];
    match payload.len() {
        n if long || n > 65535 => {
            frame.push(127);
            frame.extend((n as u64).to_be_bytes());
        }
        n @ 126..=65535 => {
            frame.push(126);
            frame.extend((n as u16).to_be_bytes());
        }
        n => frame.push(n as u8),
    }
    frame.extend_from_slice(payload);
    frame
}

/// Frames the load client reads itself after CONNECTED, all in the write of the
/// `101`: pings answered with masked pongs of the same payload, a fragmented event
/// with a ping between its fragments, a length in more bytes than needed, an event
/// larger than the client's shared read buffer, a binary frame (not an event); and
/// at the end our masked close 1000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_after_connected_are_read_by_the_load_clients_own_reader() {
    fn after_101(org: &str) -> Vec<u8> {
        let event = part1_event("SYNC_QUEUED", "p", org);
        let mut big: Value = serde_json::from_str(&event).unwrap();
        big["padding"] = json!("x".repeat(100 * 1024));
        let big = big.to_string();
        let (first, rest) = event.as_bytes().split_at(10);
        [
            server_frame(0x81, part1_connected(org).as_bytes(), false),
            server_frame(0x89, b"p1", false),
            server_frame(0x81, event.as_bytes(), true),
            server_frame(0x01, first, false),
            server_frame(0x89, b"p2", false),
            server_frame(0x80, rest, false),
            server_frame(0x82, &[1, 2, 3], false),
            server_frame(0x81, big.as_bytes(), false),
        ]
        .concat()
    }
    let server = RawServer::start(after_101).await;
    let output = passive_load(&server.base(), "org-raw", "3", "500ms", &[]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let s = report_of(&output).summary;
    assert_eq!(s.connections_opened, 3);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(
        s.frames_delivered, 9,
        "three events per socket, the binary frame not one"
    );
    assert_eq!(s.latency_ms.count, 9);
    let mut pongs = server.seen(0xA);
    pongs.sort();
    let expected: Vec<(Vec<u8>, bool)> = ["p1", "p1", "p1", "p2", "p2", "p2"]
        .iter()
        .map(|p| (p.as_bytes().to_vec(), true))
        .collect();
    assert_eq!(pongs, expected);
    let closes = server.seen(0x8);
    assert_eq!(closes.len(), 3, "{closes:?}");
    for (payload, masked) in closes {
        assert!(masked);
        assert_eq!(&payload[..2], &1000u16.to_be_bytes());
    }
}

/// What a client must refuse after CONNECTED ends that socket as a protocol error:
/// a masked frame from the server, a message over `--max-message-size`, a frame
/// with a reserved bit; a socket that only sees good frames is not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_breaking_the_protocol_after_connected_is_a_protocol_error() {
    fn after_101(org: &str) -> Vec<u8> {
        let connected = server_frame(0x81, part1_connected(org).as_bytes(), false);
        let event = part1_event("SYNC_QUEUED", "p", org);
        let broken = match org {
            "org-masked" => vec![0x81, 0x82, 1, 2, 3, 4, b'{' ^ 1, b'}' ^ 2],
            "org-big" => server_frame(0x81, &[b' '; 5000], false),
            "org-rsv" => server_frame(0xC1, event.as_bytes(), false),
            _ => Vec::new(),
        };
        [
            connected,
            server_frame(0x81, event.as_bytes(), false),
            broken,
        ]
        .concat()
    }
    let server = RawServer::start(after_101).await;
    for org in ["org-masked", "org-big", "org-rsv", "org-fine"] {
        // `--threshold errors==0` is how a run fails on errors (they are reported
        // either way): exit 1 for each breach, 0 for the socket that saw none.
        let flags = ["--max-message-size", "4096", "--threshold", "errors==0"];
        let output = passive_load(&server.base(), org, "2", "300ms", &flags).await;
        let code = if org == "org-fine" { 0 } else { 1 };
        assert_eq!(
            output.status.code(),
            Some(code),
            "{org}: {}",
            stderr(&output)
        );
        let s = report_of(&output).summary;
        assert_eq!(
            s.frames_delivered, 2,
            "{org}: the event before the break counts"
        );
        let protocol = s.errors.get(&ErrorKind::Protocol).copied();
        let expected = (org != "org-fine").then_some(2);
        assert_eq!(protocol, expected, "{org}: {:?}", s.errors);
    }
}

/// What arrived in the same read as CONNECTED (the server's opening ping, a first
/// event) is read at once, not left until more comes: here nothing more comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_read_with_connected_are_handled_when_nothing_follows() {
    fn after_101(org: &str) -> Vec<u8> {
        [
            server_frame(0x81, part1_connected(org).as_bytes(), false),
            server_frame(0x89, b"opening", false),
            server_frame(0x81, part1_event("SYNC_QUEUED", "p", org).as_bytes(), false),
        ]
        .concat()
    }
    let server = RawServer::start(after_101).await;
    let output = passive_load(&server.base(), "org-raw", "2", "300ms", &[]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let s = report_of(&output).summary;
    assert_eq!(s.frames_delivered, 2);
    assert_eq!(server.seen(0xA), vec![(b"opening".to_vec(), true); 2]);
}

/// Ctrl-C during a run still writes what was asked: the report (saying the run was
/// interrupted), the summary file (not ok) and JUnit (completeness an error, not a pass
/// or a failure); the exit is 130.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_writes_its_files_marked_interrupted() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (html, summary, junit) = (
        dir.path().join("load.html"),
        dir.path().join("summary.json"),
        dir.path().join("load.xml"),
    );
    let mut running = spawn_cli(&[
        "load",
        "--url",
        &server.base(),
        "--connections",
        "5",
        "--org",
        "org-stop",
        "--passive",
        "--duration",
        "60s",
        "--report",
        html.to_str().unwrap(),
        "--summary-file",
        summary.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--json",
    ]);
    running
        .wait_for("progress with 5 open", |r| {
            r["type"] == "progress" && r["data"]["open"] == 5
        })
        .await;
    running.interrupt().await;
    let finished = running.finish().await;
    assert_eq!(finished.status.code(), Some(130), "{}", finished.stderr);
    let page = std::fs::read_to_string(&html).expect("the report is written");
    assert!(
        page.contains("interrupted"),
        "the report says the run was interrupted"
    );
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(written["ok"], false);
    assert_eq!(written["connectionsOpened"], 5);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("interrupted (Ctrl-C) before the run ended"),
        "{xml}"
    );
    assert!(xml.contains("<error"), "{xml}");
}
