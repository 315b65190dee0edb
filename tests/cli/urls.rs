//! Several `--url` (instances of one backend): `connect` tries them in order and
//! names each that did not answer, `enqueue` and `smoke` use the first that answers
//! for the whole run, `watch-sync` fails over at the first connection and, with
//! `--reconnect`, moves round-robin to the next URL when a socket fails, resuming
//! with `since`; the usage errors of the URL list.

use serde_json::{Value, json};
use syncprobe::report::connect::ConnectSummary;
use syncprobe::report::enqueue::EnqueueSummary;
use syncprobe::report::json::Open;
use syncprobe::report::smoke::SmokeSummary;
use syncprobe::report::watch::WatchSummary;

use crate::fake::CutProxy;
use crate::support::*;

/// A base URL nothing listens on (bound, then released: connections are refused).
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("ws://{}", listener.local_addr().unwrap())
}

fn port_of(url: &str) -> String {
    url.rsplit(':').next().unwrap().to_string()
}

#[tokio::test]
async fn connect_skips_a_dead_first_url_and_says_which_answered() {
    let server = TestServer::start().await;
    let dead = dead_url();
    let out = run_cli(&["connect", "org-u", "--url", &dead, "--url", &server.base()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (text, errors) = (stdout(&out), stderr(&out));
    assert!(
        errors.contains(&format!("failed to connect to {dead}/api/ws/sync/org-u"))
            && errors.contains("trying the next URL (2 of 2)"),
        "{errors}"
    );
    assert!(
        text.contains(&format!("{dead}/api/ws/sync/org-u did not answer (exit 3)")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ok: {}/api/ws/sync/org-u accepted the connection",
            server.base()
        )),
        "{text}"
    );

    let out = run_cli(&[
        "connect",
        "org-u",
        "--url",
        &dead,
        "--url",
        &server.base(),
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: ConnectSummary = summary_of(&records(&out));
    assert_eq!(summary.url, server.sync_url("org-u"));
    assert_eq!(summary.failed.len(), 1, "{summary:?}");
    assert_eq!(summary.failed[0].url, format!("{dead}/api/ws/sync/org-u"));
    assert_eq!(summary.failed[0].exit_code, 3);
    // The first URL that answers is used: a dead one after it is never tried.
    let out = run_cli(&[
        "connect",
        "org-u",
        "--url",
        &server.base(),
        "--url",
        &dead,
        "--json",
    ])
    .await;
    let summary: ConnectSummary = summary_of(&records(&out));
    assert!(summary.failed.is_empty(), "{summary:?}");
}

#[tokio::test]
async fn connect_with_no_url_answering_names_each_and_exits_3() {
    let (a, b) = (dead_url(), dead_url());
    let out = run_cli(&["connect", "org-u", "--url", &a, "--url", &b]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let errors = stderr(&out);
    let error = errors
        .lines()
        .find(|l| l.starts_with("syncprobe: error:"))
        .unwrap_or_else(|| panic!("{errors}"));
    assert!(error.contains("none of the 2 URLs answered"), "{error}");
    for url in [&a, &b] {
        assert!(
            error.contains(&format!("{url}/api/ws/sync/org-u")),
            "{error}"
        );
    }
    // The exit code is the last failure's: a URL that opens but sends no CONNECTED
    // (exit 4) after a refused one (exit 3).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("ws://{}", silent.local_addr().unwrap());
    let out = run_cli(&[
        "connect",
        "org-u",
        "--url",
        &a,
        "--url",
        &silent_url,
        "--connect-timeout",
        "300ms",
    ])
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains(&a), "{}", stderr(&out));
}

#[tokio::test]
async fn syncprobe_url_carries_several_separated_by_commas_or_spaces() {
    let server = TestServer::start().await;
    let dead = dead_url();
    for joined in [
        format!("{dead},{}", server.base()),
        format!("{dead} {}", server.base()),
        format!(" {dead} , {} ", server.base()),
    ] {
        let out = run_cli_env(
            &["connect", "org-u", "--json"],
            &[("SYNCPROBE_URL", &joined)],
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{joined:?}: {}", stderr(&out));
        let summary: ConnectSummary = summary_of(&records(&out));
        assert_eq!(summary.failed.len(), 1, "{joined:?}");
        assert_eq!(summary.url, server.sync_url("org-u"));
    }
    // --url beats the variable, all of it.
    let out = run_cli_env(
        &["connect", "org-u", "--url", &server.base(), "--json"],
        &[("SYNCPROBE_URL", &format!("{dead},{dead}"))],
    )
    .await;
    let summary: ConnectSummary = summary_of(&records(&out));
    assert!(summary.failed.is_empty(), "{summary:?}");
}

#[tokio::test]
async fn url_lists_that_cannot_work_are_usage_errors() {
    let dead = dead_url();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--url".into(), dead.clone(), "--url".into(), dead.clone()],
            "name the same socket",
        ),
        (
            // ws:// and http:// of one host:port are the same instance.
            vec![
                "--url".into(),
                dead.clone(),
                "--url".into(),
                format!("{}/", dead.replace("ws://", "http://")),
            ],
            "name the same socket",
        ),
        (
            vec![
                "--url".into(),
                dead.clone(),
                "--url".into(),
                "ftp://h".into(),
            ],
            "has the scheme ftp: use ws, wss, http or https",
        ),
        (
            vec!["--url".into(), dead.clone(), "--url".into(), "h:1".into()],
            "has no scheme",
        ),
    ];
    for (flags, message) in &cases {
        for command in ["connect", "watch-sync", "smoke", "enqueue"] {
            let mut argv = vec![command, "org-u"];
            argv.extend(flags.iter().map(String::as_str));
            if command == "enqueue" {
                argv.extend(["--count", "1"]);
            }
            let out = run_cli(&argv).await;
            assert_eq!(out.status.code(), Some(2), "{argv:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(message), "{argv:?}: {}", stderr(&out));
        }
    }
    // `load` spreads its sockets over the URLs: the same socket twice is refused too.
    for (flags, message) in cases.iter().take(2) {
        let mut argv = vec!["load", "-c", "1", "--events", "1"];
        argv.extend(flags.iter().map(String::as_str));
        let out = run_cli(&argv).await;
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{argv:?}: {}", stderr(&out));
    }
    // Mixed schemes of different instances are fine: the dead ones are tried.
    let other = dead_url().replace("ws://", "http://");
    let out = run_cli(&["connect", "org-u", "--url", &dead, "--url", &other]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // A full-URL target names one backend.
    let target = format!("{dead}/api/ws/sync/org-u");
    let out = run_cli(&["connect", &target, "--url", &dead, "--url", &other]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is a full URL"), "{}", stderr(&out));
    // Subcommands that talk to one backend say so.
    for argv in [
        vec!["status", "org-u", "--url", &dead, "--url", &other],
        vec!["conflicts", "org-u", "--url", &dead, "--url", &other],
    ] {
        let out = run_cli(&argv).await;
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("this subcommand talks to one backend"),
            "{argv:?}: {}",
            stderr(&out)
        );
    }
}

#[tokio::test]
async fn secrets_of_every_url_stay_masked() {
    let server = TestServer::start().await;
    let dead = dead_url().replace("ws://", "ws://user:hunter2@");
    for json in [false, true] {
        let mut argv = vec![
            "connect",
            "org-u",
            "--url",
            &dead,
            "--url",
            "ws://u:hunter3@127.0.0.1:1",
        ];
        let live = server.base();
        argv.extend([
            "--url",
            &live,
            "--token",
            "tok-s3cr3t",
            "--token-in",
            "query",
        ]);
        if json {
            argv.push("--json");
        }
        let out = run_cli(&argv).await;
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{all}");
        for leak in ["hunter2", "hunter3", "tok-s3cr3t"] {
            assert!(!all.contains(leak), "{leak}: {all}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_uses_the_first_url_that_answers_for_the_whole_run() {
    let server = TestServer::start().await;
    let dead = dead_url();
    let live = server.base();
    for wait in [false, true] {
        let mut argv = vec![
            "enqueue", "org-ue", "--url", &dead, "--url", &live, "--count", "2", "--json",
        ];
        if wait {
            argv.push("--wait");
        }
        let out = run_cli(&argv).await;
        assert_eq!(out.status.code(), Some(0), "wait {wait}: {}", stderr(&out));
        let records = records(&out);
        let summary: EnqueueSummary = summary_of(&records);
        assert_eq!(summary.url, server.http("/"), "wait {wait}");
        assert_eq!(summary.failed.len(), 1, "wait {wait}: {summary:?}");
        assert_eq!(summary.failed[0].exit_code, 3);
        assert_eq!(summary.queued_count, Some(2));
        if wait {
            assert_eq!(summary.items.len(), 2, "{summary:?}");
            let opens: Vec<Open> = data_of(&records, "open").into_iter().map(typed).collect();
            assert_eq!(opens.len(), 1, "{opens:?}");
            assert!(opens[0].url.starts_with(&server.base()), "{opens:?}");
        }
    }
    // Human output says which instance was used.
    let out = run_cli(&[
        "enqueue",
        "org-ue",
        "--url",
        &dead,
        "--url",
        &server.base(),
        "--count",
        "1",
    ])
    .await;
    assert!(
        stdout(&out).contains(&format!(
            "used {}: 1 earlier URL did not answer",
            server.http("/")
        )),
        "{}",
        stdout(&out)
    );
    // None answering: every URL named, exit 3.
    let other = dead_url();
    let out = run_cli(&[
        "enqueue", "org-ue", "--url", &dead, "--url", &other, "--count", "1",
    ])
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    for port in [port_of(&dead), port_of(&other)] {
        assert!(stderr(&out).contains(&port), "{}", stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_runs_every_step_on_the_first_url_that_answers() {
    let server = TestServer::start().await;
    let dead = dead_url();
    let out = run_cli(&[
        "smoke",
        "org-us",
        "--url",
        &dead,
        "--url",
        &server.base(),
        "--items",
        "1",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = records(&out);
    let summary: SmokeSummary = summary_of(&records);
    assert_eq!(summary.url, server.sync_url("org-us"));
    let connect = &summary.steps[0];
    assert!(
        connect.message.contains(&format!(
            "at {}, after 1 URL that did not answer",
            server.sync_url("org-us")
        )),
        "{connect:?}"
    );
    let warnings = data_of(&records, "warning");
    assert!(
        warnings
            .iter()
            .any(|w| w["message"].as_str().unwrap().contains(&port_of(&dead))),
        "{warnings:?}"
    );
}

fn event_seqs(records: &[Value]) -> Vec<u64> {
    data_of(records, "event")
        .into_iter()
        .filter(|e| e["type"] != "CONNECTED")
        .map(|e| e["seq"].as_u64().expect("every event has a seq"))
        .collect()
}

async fn wait_for_seq(run: &mut Running, seq: u64) {
    run.wait_for(&format!("the event of seq {seq}"), |r| {
        r["type"] == "event" && r["data"]["type"] != "CONNECTED" && r["data"]["seq"] == seq
    })
    .await;
}

/// Two forwarders to one server: the first is killed mid-run (its connection cut,
/// new ones refused); the watch moves to the second and resumes from its seq: the
/// same stream, no gap, no duplicate, no epoch change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reconnect_moves_to_the_next_url_and_resumes_without_a_gap() {
    let server = TestServer::start().await;
    let first = CutProxy::start(server.addr).await;
    let second = CutProxy::start(server.addr).await;
    let org = "org-uw";
    let mut run = spawn_cli(&[
        "watch-sync",
        org,
        "--url",
        &first.base(),
        "--url",
        &second.base(),
        "--reconnect",
        "--reconnect-base",
        "50ms",
        "--count",
        "6",
        "--timeout",
        "20s",
        "--connect-timeout",
        "2s",
        "--json",
    ]);
    run.wait_for_connected().await;
    publish(&server, org, "SYNC_QUEUED", "pfa-1", json!(null), 3).await;
    wait_for_seq(&mut run, 3).await;
    let first_base = first.base();
    drop(first);
    run.wait_for("the close of the cut connection", |r| r["type"] == "close")
        .await;
    publish(&server, org, "SYNC_PROCESSING", "pfa-1", json!(null), 3).await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    assert_eq!(event_seqs(&finished.records), (1..=6).collect::<Vec<_>>());
    let opens: Vec<Open> = data_of(&finished.records, "open")
        .into_iter()
        .map(typed)
        .collect();
    assert_eq!(opens.len(), 2, "{opens:?}");
    assert!(opens[0].url.starts_with(&first_base), "{opens:?}");
    assert!(opens[1].url.starts_with(&second.base()), "{opens:?}");
    assert!(opens[1].url.contains("since=3"), "{opens:?}");
    let reconnecting = data_of(&finished.records, "warning")
        .into_iter()
        .filter_map(|w| w["message"].as_str())
        .any(|m| {
            m.contains(&format!(
                "reconnecting to {}/api/ws/sync/{org}",
                second.base()
            ))
        });
    assert!(reconnecting, "{:?}", finished.records);
    let summary: WatchSummary = summary_of(&finished.records);
    let seq = summary.check.seq.unwrap();
    assert_eq!(
        (seq.gaps, seq.duplicates, seq.missing, seq.epoch_changes),
        (0, 0, 0, 0)
    );
    let sessions = &summary.sessions;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(sessions[0].url, format!("{first_base}/api/ws/sync/{org}"));
    assert_eq!(
        (sessions[0].since, sessions[0].events),
        (None, 3),
        "{sessions:?}"
    );
    assert_eq!(
        sessions[1].url,
        format!("{}/api/ws/sync/{org}", second.base())
    );
    assert_eq!(
        (sessions[1].since, sessions[1].events),
        (Some(3), 3),
        "{sessions:?}"
    );
    assert_eq!(sessions[0].epoch, sessions[1].epoch);
}

/// Two independent servers: the first is stopped mid-run; the resume against the
/// second meets another numbering (a new epoch), which is reported, never hidden.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reconnect_to_another_instance_reports_the_epoch_change() {
    let first = TestServer::start().await;
    let second = TestServer::start().await;
    let (first_base, second_base) = (first.base(), second.base());
    let org = "org-ux";
    let mut run = spawn_cli(&[
        "watch-sync",
        org,
        "--url",
        &first_base,
        "--url",
        &second_base,
        "--reconnect",
        "--reconnect-base",
        "50ms",
        "--count",
        "4",
        "--timeout",
        "20s",
        "--connect-timeout",
        "2s",
        "--json",
    ]);
    run.wait_for_connected().await;
    publish(&first, org, "SYNC_QUEUED", "pfa-1", json!(null), 2).await;
    wait_for_seq(&mut run, 2).await;
    first.stop().await.unwrap();
    run.wait_for_connected().await;
    publish(&second, org, "SYNC_QUEUED", "pfa-2", json!(null), 2).await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let summary: WatchSummary = summary_of(&finished.records);
    assert_eq!(summary.check.seq.as_ref().unwrap().epoch_changes, 1);
    let sessions = &summary.sessions;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert!(sessions[0].url.starts_with(&first_base), "{sessions:?}");
    assert!(sessions[1].url.starts_with(&second_base), "{sessions:?}");
    assert_eq!(sessions[1].since, Some(2), "{sessions:?}");
    assert_ne!(sessions[0].epoch, sessions[1].epoch, "{sessions:?}");
    let warned = data_of(&finished.records, "warning")
        .into_iter()
        .filter_map(|w| w["message"].as_str())
        .any(|m| m.contains("numbering restarted (epoch"));
    assert!(warned, "{:?}", finished.records);
}

/// Without --reconnect, several URLs are a failover at the first connection only:
/// a lost connection ends the watch as with one URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_without_reconnect_fails_over_only_at_the_start() {
    let server = TestServer::start().await;
    let proxy = CutProxy::start(server.addr).await;
    let dead = dead_url();
    let mut run = spawn_cli(&[
        "watch-sync",
        "org-uo",
        "--url",
        &dead,
        "--url",
        &proxy.base(),
        "--url",
        &server.base(),
        "--json",
    ]);
    run.wait_for_connected().await;
    proxy.cut();
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(5), "{}", finished.stderr);
    let opens = data_of(&finished.records, "open");
    assert_eq!(opens.len(), 1, "{opens:?}");
    let summary: WatchSummary = summary_of(&finished.records);
    assert_eq!(summary.sessions.len(), 1);
    assert!(summary.sessions[0].url.starts_with(&proxy.base()));
    // Failover at the start, in human output.
    let out = run_cli(&[
        "watch-sync",
        "org-uo",
        "--url",
        &dead,
        "--url",
        &server.base(),
        "--duration",
        "300ms",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("trying the next URL (2 of 2)"),
        "{}",
        stderr(&out)
    );
    // None answering: each named, the last failure's exit code.
    let out = run_cli(&[
        "watch-sync",
        "org-uo",
        "--url",
        &dead,
        "--url",
        &dead_url(),
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("none of the 2 URLs answered"),
        "{}",
        stderr(&out)
    );
}
