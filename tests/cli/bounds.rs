//! The clients hold their bounds against hostile or broken servers (issue 13):
//!
//! - memory: a server that floods pings and never reads the pongs, one that sends a
//!   message over the client limit, REST answers without end, error bodies of a
//!   megabyte, a stream of distinct items (the summary lists the first and last);
//! - time: every subcommand ends within its documented bounds against a server that
//!   accepts TCP and never answers, and one that completes the upgrade and then
//!   never sends (nor reads) anything; `load`'s final probe is not retried per
//!   organization against a server that stopped answering;
//! - the terminal: peer text with ESC, OSC 52, BEL, CR, C1 and U+202E in every field
//!   never reaches the human output of any subcommand raw, `--color always` too.
//!
//! Bounds are short so the tests are fast; each elapsed time is checked against the
//! bound plus [`MARGIN`] (process start, the close handshake's own limit).

use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use syncprobe::protocol::Timestamp;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::fake::{self, FakeServer, SilentServer};
use super::support::*;

/// What a run may take beyond its bound: starting the process, closing (the close
/// handshake waits at most 2 s), a loaded machine.
const MARGIN: Duration = Duration::from_secs(5);
/// How long the client lets a server leave its pongs unread (`ws::WRITE_STALL`).
const WRITE_STALL: Duration = Duration::from_secs(5);

/// Runs `args` and returns the output and how long it took.
async fn timed(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = run_cli(args).await;
    (out, started.elapsed())
}

/// Asserts the exit code and that the run ended within `bound` + [`MARGIN`].
fn ended_within(what: &str, (out, took): &(Output, Duration), code: i32, bound: Duration) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: stdout: {} stderr: {}",
        stdout(out),
        stderr(out)
    );
    assert!(
        *took <= bound + MARGIN,
        "{what}: took {took:?}, bound {bound:?} + {MARGIN:?}; stderr: {}",
        stderr(out)
    );
}

/// A server that completes the upgrade and then neither sends nor reads anything.
async fn mute_server() -> FakeServer {
    FakeServer::start(|ws, _| async move {
        std::future::pending::<()>().await;
        drop(ws);
    })
    .await
}

/// A server that sends a Part 1 CONNECTED and then neither sends nor reads anything.
async fn connected_then_mute() -> FakeServer {
    FakeServer::start(|mut ws, upgrade| async move {
        let org = upgrade.path.rsplit('/').next().unwrap_or("").to_string();
        fake::send(&mut ws, &fake::part1_connected(&org)).await;
        std::future::pending::<()>().await;
    })
    .await
}

const S1: Duration = Duration::from_secs(1);

#[tokio::test]
async fn connect_ends_within_its_bounds() {
    let silent = SilentServer::start().await;
    let mute = mute_server().await;
    let base = silent.base();
    let flags = ["--connect-timeout", "1s", "--timeout", "1s"];
    let mut args = vec!["connect", "o", "--url", &base];
    args.extend(flags);
    ended_within("connect, silent port", &timed(&args).await, 4, S1);
    let base = mute.base();
    let mut args = vec!["connect", "o", "--url", &base];
    args.extend(flags);
    ended_within("connect, mute socket", &timed(&args).await, 4, S1 * 2);
}

#[tokio::test]
async fn watch_sync_ends_within_its_bounds() {
    let silent = SilentServer::start().await;
    let mute = mute_server().await;
    let quiet = connected_then_mute().await;
    for (what, base, extra, code, bound) in [
        (
            "silent port, --timeout",
            silent.base(),
            vec!["--timeout", "1s"],
            4,
            S1,
        ),
        (
            "silent port, --duration",
            silent.base(),
            vec!["--duration", "1s"],
            4,
            S1,
        ),
        (
            "mute socket, --timeout",
            mute.base(),
            vec!["--timeout", "1s"],
            4,
            S1 * 2,
        ),
        (
            "mute socket, --duration",
            mute.base(),
            vec!["--duration", "1s"],
            4,
            S1 * 2,
        ),
        (
            "no events, --duration",
            quiet.base(),
            vec!["--duration", "1s"],
            0,
            S1 * 3,
        ),
        (
            "no events, --count and --timeout",
            quiet.base(),
            vec!["--count", "1", "--timeout", "1s"],
            4,
            S1 * 3,
        ),
        (
            "unanswered pings",
            quiet.base(),
            vec!["--ping-interval", "300ms", "--duration", "60s"],
            5,
            S1 * 2,
        ),
    ] {
        let mut args = vec!["watch-sync", "o", "--url", &base, "--connect-timeout", "1s"];
        args.extend(extra);
        ended_within(
            &format!("watch-sync, {what}"),
            &timed(&args).await,
            code,
            bound,
        );
    }
}

#[tokio::test]
async fn enqueue_ends_within_its_bounds() {
    let silent = SilentServer::start().await;
    let mute = mute_server().await;
    for (what, base, wait) in [
        ("silent API", silent.base(), false),
        ("silent port, --wait", silent.base(), true),
        ("mute socket, --wait", mute.base(), true),
    ] {
        let mut args = vec![
            "enqueue",
            "o",
            "--url",
            &base,
            "--timeout",
            "1s",
            "--connect-timeout",
            "1s",
        ];
        if wait {
            args.push("--wait");
        }
        ended_within(&format!("enqueue, {what}"), &timed(&args).await, 4, S1 * 2);
    }
}

#[tokio::test]
async fn smoke_ends_within_its_bounds() {
    let silent = SilentServer::start().await;
    let mute = mute_server().await;
    for (what, base) in [("silent port", silent.base()), ("mute socket", mute.base())] {
        let args = [
            "smoke",
            "o",
            "--url",
            &base,
            "--timeout",
            "1s",
            "--connect-timeout",
            "1s",
        ];
        ended_within(&format!("smoke, {what}"), &timed(&args).await, 4, S1 * 2);
    }
}

#[tokio::test]
async fn load_ends_within_its_bounds() {
    let silent = SilentServer::start().await;
    let mute = mute_server().await;
    for (what, base) in [("silent port", silent.base()), ("mute socket", mute.base())] {
        let args = [
            "load",
            "-c",
            "3",
            "--orgs",
            "3",
            "--url",
            &base,
            "--timeout",
            "1s",
            "--connect-timeout",
            "1s",
            "--drain-timeout",
            "1s",
        ];
        let run = timed(&args).await;
        let code = run.0.status.code();
        assert!(
            matches!(code, Some(3 | 4)),
            "load, {what}: {code:?}: {}",
            stderr(&run.0)
        );
        ended_within(&format!("load, {what}"), &run, code.unwrap(), S1 * 3);
    }
}

/// The subscribers get a Part 2 CONNECTED; every later connection (the final `seq`
/// probe) is accepted and never answered. Before the fix each organization's probe
/// was tried 20 times (20 × --timeout per organization).
#[tokio::test]
async fn loads_final_probe_is_not_retried_against_a_server_that_stopped_answering() {
    const SUBSCRIBERS: usize = 3;
    let server = FakeServer::start(|mut ws, upgrade| async move {
        if upgrade.index < SUBSCRIBERS {
            let org = upgrade.path.rsplit('/').next().unwrap_or("").to_string();
            fake::send(&mut ws, &fake::part2_connected(&org, 5, "e1")).await;
            fake::drain(&mut ws).await;
        } else {
            std::future::pending::<()>().await;
        }
    })
    .await;
    let base = server.base();
    let args = [
        "load",
        "-c",
        "3",
        "--orgs",
        "3",
        "--passive",
        "--duration",
        "1s",
        "--url",
        &base,
        "--timeout",
        "1s",
        "--connect-timeout",
        "1s",
    ];
    // The hold, one unanswered probe, the closes. The final seq stays unknown, so a
    // loss cannot be ruled out: the run fails (exit 1) and says why.
    let run = timed(&args).await;
    ended_within("load's final probe", &run, 1, S1 * 4);
    assert!(
        stderr(&run.0).contains("final seq could not be read"),
        "{}",
        stderr(&run.0)
    );
}

/// A server that sends CONNECTED and then pings as fast as it can without ever
/// reading: the client's pongs cannot leave. The run ends with a clear error after
/// the write stall limit, and its memory stays small all along.
#[tokio::test]
async fn a_ping_flood_that_never_reads_the_pongs_ends_the_run_in_bounded_memory() {
    let server = FakeServer::start(|mut ws, _| async move {
        fake::send(&mut ws, &fake::part1_connected("org-flood")).await;
        let payload = vec![b'p'; 125];
        for i in 0u64.. {
            if ws
                .feed(Message::Ping(payload.clone().into()))
                .await
                .is_err()
            {
                return;
            }
            if i % 256 == 0 && ws.flush().await.is_err() {
                return;
            }
        }
    })
    .await;
    let base = server.base();
    let started = Instant::now();
    let run = spawn_cli(&[
        "watch-sync",
        "org-flood",
        "--url",
        &base,
        "--duration",
        "60s",
        "--json",
    ]);
    let pid = run.pid();
    let mut peak_kib = 0;
    // Sample the client's resident memory while it runs (bounded: 60 s).
    for _ in 0..600 {
        match rss_kib(pid) {
            Some(kib) => peak_kib = peak_kib.max(kib),
            None => break,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let finished = run.finish().await;
    let took = started.elapsed();
    assert_eq!(finished.code(), Some(5), "{}", finished.stderr);
    assert!(
        finished.stderr.contains("does not read this connection"),
        "{}",
        finished.stderr
    );
    assert!(
        took < WRITE_STALL + MARGIN * 2,
        "took {took:?}: {}",
        finished.stderr
    );
    assert!(peak_kib < 200 * 1024, "peak RSS {peak_kib} KiB");
}

/// VmRSS of `pid`, while it runs (a zombie has none).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A message over the client limit (1 MiB) ends the run (exit 5) instead of being
/// buffered; tungstenite's default would take 64 MiB.
#[tokio::test]
async fn a_message_over_the_client_limit_ends_the_run() {
    let big = json!({"type": "SYNC_QUEUED", "pfaId": "p", "organizationId": "org-big",
        "timestamp": Timestamp::now(), "details": {"pad": "x".repeat(2 * 1024 * 1024)}});
    let server = FakeServer::sending(vec![fake::part1_connected("org-big"), big.to_string()]).await;
    let base = server.base();
    let out = run_cli(&[
        "watch-sync",
        "org-big",
        "--url",
        &base,
        "--count",
        "1",
        "-q",
    ])
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("over the client limit of 1048576 (raise --max-message-size)"),
        "{}",
        stderr(&out)
    );
    // The limit is the user's to raise: with 4 MiB the same message is taken.
    let out = run_cli(&[
        "watch-sync",
        "org-big",
        "--url",
        &base,
        "--count",
        "1",
        "-q",
        "--max-message-size",
        "4194304",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A stream of 15,000 distinct items: the summary lists the first and the last
/// and says how many it left out; with `--json` the counts are fields.
#[tokio::test]
async fn distinct_items_give_a_bounded_summary_that_says_what_it_left_out() {
    const ITEMS: usize = 15_000;
    let mut frames = vec![fake::part1_connected("org-many")];
    frames
        .extend((0..ITEMS).map(|i| fake::part1_event("SYNC_QUEUED", &format!("p{i}"), "org-many")));
    let server = FakeServer::sending(frames).await;
    let base = server.base();
    let count = ITEMS.to_string();
    let args = [
        "watch-sync",
        "org-many",
        "--url",
        &base,
        "--count",
        &count,
        "-q",
    ];
    let out = run_cli(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.len() < 16 * 1024, "a {}-byte summary", text.len());
    assert!(
        text.contains(&format!(
            "items ({ITEMS}; the first 20 and the last 20 listed)"
        )),
        "{text}"
    );
    assert!(text.contains("14960 items not listed"), "{text}");
    assert!(
        text.contains("    p0 ") && text.contains("    p14999 "),
        "{text}"
    );
    assert!(text.contains("and 14960 more"), "{text}");
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = run_cli(&json_args).await;
    let summaries = records(&out);
    let summary = data_of(&summaries, "summary")[0];
    assert_eq!(summary["items"].as_array().unwrap().len(), 40);
    assert_eq!(summary["itemsOmitted"], 14_960);
    assert_eq!(summary["unfinished"].as_array().unwrap().len(), 40);
    assert_eq!(summary["unfinishedOmitted"], 14_960);
}

/// An HTTP server whose every answer is `head` followed by `body_len` bytes of `x`
/// (written until the client goes away).
struct BodyServer {
    addr: std::net::SocketAddr,
    accept: JoinHandle<()>,
}

impl BodyServer {
    async fn start(head: &'static str, body: Arc<Vec<u8>>) -> BodyServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut tcp, _)) = listener.accept().await {
                let body = body.clone();
                connections.spawn(async move {
                    fake::read_head(&mut tcp).await;
                    let _ = tcp.write_all(head.as_bytes()).await;
                    for chunk in body.chunks(64 * 1024) {
                        if tcp.write_all(chunk).await.is_err() {
                            return;
                        }
                    }
                    let _ = tcp.shutdown().await;
                });
            }
        });
        BodyServer { addr, accept }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for BodyServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Reads a request head (bounded).
/// REST answers are read up to 4 MiB: a longer body (with or without a length)
/// is refused at once with a clear error, not read whole.
#[tokio::test]
async fn rest_answers_over_the_client_limit_are_refused() {
    let body = Arc::new(vec![b'x'; 64 * 1024 * 1024]);
    let unlimited = BodyServer::start(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
        body.clone(),
    )
    .await;
    let sized = BodyServer::start(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 67108864\r\n\r\n",
        body,
    )
    .await;
    for base in [unlimited.base(), sized.base()] {
        let run = timed(&["enqueue", "o", "--url", &base, "--timeout", "20s"]).await;
        ended_within("enqueue, huge answer", &run, 5, Duration::from_secs(2));
        assert!(
            stderr(&run.0).contains("a body over 4194304 bytes, the client's limit: not read further (raise --max-body-size)"),
            "{}",
            stderr(&run.0)
        );
    }
}

/// An error answer whose message is a megabyte (of lines, too) is shown cut short,
/// on stderr and in the `--json` error record.
#[tokio::test]
async fn a_megabyte_error_message_is_shown_cut_short() {
    let message = "bad\n".repeat(256 * 1024);
    let error = json!({"error": "VALIDATION_ERROR", "message": message}).to_string();
    let head = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        error.len()
    );
    let server = BodyServer::start(
        Box::leak(head.into_boxed_str()),
        Arc::new(error.into_bytes()),
    )
    .await;
    let base = server.base();
    let out = run_cli(&["enqueue", "o", "--url", &base]).await;
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("VALIDATION_ERROR"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).len() < 4 * 1024,
        "{} bytes on stderr",
        stderr(&out).len()
    );
    let out = run_cli(&["enqueue", "o", "--url", &base, "--json"]).await;
    assert!(
        stdout(&out).len() < 4 * 1024,
        "{} bytes on stdout",
        stdout(&out).len()
    );
}

/// Peer text in every field a server controls.
const NASTY: &str = "n\u{1b}]52;c;aGk=\u{7}\u{1b}]0;title\u{7}\r\u{9b}31m\u{1b}[2J\u{202e}x";

/// A backend whose every peer field is [`NASTY`]: the socket (CONNECTED with a
/// nasty epoch, events with nasty pfaIds, types, details; a close with a nasty
/// reason) and the REST API (write-sync answers with nasty job ids and items,
/// every other call a 500 with a nasty error body).
struct NastyServer {
    addr: std::net::SocketAddr,
    /// Notified at each REST request (with `hang_rest`, it is never answered).
    rest_seen: Arc<Notify>,
    accept: JoinHandle<()>,
}

impl NastyServer {
    async fn start(hang_rest: bool) -> NastyServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rest_seen = Arc::new(Notify::new());
        let seen = rest_seen.clone();
        let accept = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut tcp, _)) = listener.accept().await {
                let seen = seen.clone();
                connections.spawn(async move {
                    let head =
                        String::from_utf8_lossy(&fake::read_head(&mut tcp).await).into_owned();
                    if let Some((org, answer)) = fake::switching(&head) {
                        socket(tcp, &org, &answer, !hang_rest).await;
                    } else {
                        seen.notify_one();
                        if hang_rest {
                            std::future::pending::<()>().await;
                        }
                        rest(tcp, &head).await;
                    }
                });
            }
        });
        NastyServer {
            addr,
            rest_seen,
            accept,
        }
    }

    fn base(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

impl Drop for NastyServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn nasty_event(kind: &str, pfa: &str, org: &str) -> String {
    json!({
        "type": kind, "pfaId": pfa, "organizationId": org, "timestamp": Timestamp::now(),
        "details": {"error": NASTY, "retryCount": 1, "conflictId": NASTY,
                    "conflictingFields": [NASTY, NASTY], "newVersion": 2, "note": NASTY},
    })
    .to_string()
}

/// With `ends`, the frames end with an event of another organization and a close;
/// without, the socket stays open (for a run to be interrupted).
async fn socket(mut tcp: TcpStream, org: &str, answer: &str, ends: bool) {
    if tcp.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let mut ws = WebSocketStream::from_raw_socket(tcp, Role::Server, None).await;
    let connected = json!({"type": "CONNECTED", "organizationId": org,
        "timestamp": Timestamp::now(), "seq": 0, "epoch": NASTY, "message": NASTY});
    let mut frames = vec![connected.to_string()];
    for kind in [
        "SYNC_QUEUED",
        "SYNC_PROCESSING",
        NASTY,
        "SYNC_FAILED",
        "SYNC_CONFLICT",
    ] {
        frames.push(nasty_event(kind, NASTY, org));
    }
    frames.push(json!({"type": NASTY, "organizationId": org, "note": NASTY}).to_string());
    if ends {
        frames.push(nasty_event("SYNC_QUEUED", NASTY, NASTY));
    }
    for frame in frames {
        if ws.send(Message::text(frame)).await.is_err() {
            return;
        }
    }
    if !ends {
        fake::drain(&mut ws).await;
        return;
    }
    let frame = CloseFrame {
        code: 4000.into(),
        reason: NASTY.into(),
    };
    let _ = ws.send(Message::Close(Some(frame))).await;
    let _ = tokio::time::timeout(WAIT, async { while let Some(Ok(_)) = ws.next().await {} }).await;
}

async fn rest(mut tcp: TcpStream, head: &str) {
    let (status, body) = if head.contains("/write-sync") {
        let body = json!({"success": true, "jobId": NASTY, "queuedCount": 1,
            "message": NASTY, "items": [{"id": NASTY, "pfaId": NASTY}]});
        ("200 OK", body.to_string())
    } else {
        let body = json!({"error": NASTY, "message": NASTY, "details": NASTY});
        ("500 Internal Server Error", body.to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(response.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

/// `text` with the SGR sequences (`ESC [ digits ; m`) of `--color always` taken out.
fn without_colours(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("\u{1b}[") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 2..];
        let len = tail
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(tail.len());
        if tail[len..].starts_with('m') {
            rest = &tail[len + 1..];
        } else {
            // Not a colour: keep the ESC, for the check to find.
            out.push_str("\u{1b}[");
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

fn assert_clean(what: &str, out: &Output) {
    for (name, text) in [("stdout", stdout(out)), ("stderr", stderr(out))] {
        let text = without_colours(&text);
        for bad in ['\u{1b}', '\u{7}', '\r', '\u{9b}', '\u{202e}'] {
            assert!(
                !text.contains(bad),
                "{what}: raw {bad:?} on {name}: {text:?}"
            );
        }
    }
}

/// Every subcommand's human output, against a backend whose every field is hostile,
/// with and without colour: no control character, escape sequence or bidi override
/// of the peer's reaches the terminal raw.
#[tokio::test]
async fn peer_text_never_reaches_any_human_output_raw() {
    let server = NastyServer::start(false).await;
    let base = server.base();
    let runs: Vec<Vec<&str>> = vec![
        vec!["connect", "o", "--hold", "1s", "-v"],
        vec!["watch-sync", "o", "--duration", "2s", "-v", "--lenient"],
        vec![
            "watch-sync",
            "o",
            "--count",
            "3",
            "--per-item",
            "--expect",
            "QUEUED SUCCESS",
        ],
        vec![
            "watch-sync",
            "o",
            "--reconnect",
            "--reconnect-attempts",
            "1",
            "--duration",
            "2s",
            "--lenient",
        ],
        vec!["watch-sync", "o", "--last", "2"],
        vec!["enqueue", "o"],
        vec!["enqueue", "o", "--wait", "-v"],
        vec!["smoke", "o", "-v"],
        vec!["load", "-c", "2", "--org", "o", "--events", "1"],
        vec![
            "load",
            "-c",
            "2",
            "--org",
            "o",
            "--passive",
            "--duration",
            "1s",
        ],
    ];
    for args in runs {
        for colour in ["always", "never"] {
            let mut argv = args.clone();
            argv.extend(["--url", &base, "--timeout", "3s", "--color", colour]);
            let out = run_cli(&argv).await;
            let code = out.status.code();
            assert!(
                matches!(code, Some(0..=6)),
                "{argv:?}: {code:?}: {}",
                stderr(&out)
            );
            assert_clean(&format!("{argv:?}"), &out);
        }
    }
}

/// The interruption summaries of `enqueue --wait` and `smoke` (Ctrl-C while the
/// POST is unanswered, after hostile events arrived) hold no raw peer text either.
#[tokio::test]
async fn interruption_summaries_hold_no_raw_peer_text() {
    let server = NastyServer::start(true).await;
    let base = server.base();
    for args in [
        vec!["enqueue", "o", "--wait", "-v"],
        vec!["smoke", "o", "-v"],
    ] {
        for colour in ["always", "never"] {
            let mut argv = args.clone();
            argv.extend(["--url", &base, "--timeout", "20s", "--color", colour]);
            let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncprobe"));
            command
                .args(&argv)
                .kill_on_drop(true)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let child = command.spawn().expect("failed to start syncprobe");
            tokio::time::timeout(WAIT, server.rest_seen.notified())
                .await
                .expect("no REST request in time");
            let pid = child.id().expect("syncprobe is running").to_string();
            let status = tokio::process::Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .await
                .unwrap();
            assert!(status.success());
            let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
                .await
                .expect("syncprobe did not finish in time")
                .unwrap();
            assert_eq!(out.status.code(), Some(130), "{argv:?}: {}", stderr(&out));
            assert_clean(&format!("{argv:?}"), &out);
        }
    }
}

/// A backend whose socket works but whose REST API accepts and never answers:
/// `enqueue --wait` and `smoke` end by `--timeout` all the same.
#[tokio::test]
async fn an_unanswered_post_is_bounded_by_the_timeout() {
    let server = NastyServer::start(true).await;
    let base = server.base();
    for args in [
        vec!["enqueue", "o", "--wait"],
        vec!["enqueue", "o"],
        vec!["smoke", "o"],
    ] {
        let mut argv = args.clone();
        argv.extend(["--url", &base, "--timeout", "1s", "--connect-timeout", "1s"]);
        let run = timed(&argv).await;
        ended_within(&format!("{args:?}"), &run, 4, S1 * 2);
    }
}
