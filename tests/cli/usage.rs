//! Usage errors (exit 2) and the precedence of flags over the environment: every
//! way of asking for something that cannot be done is refused before anything
//! starts, with one line that says why, and with `--json` an `error` record.

use serde_json::Value;
use syncprobe::report::json::ErrorRecord;

use crate::fake::{self, FakeServer};
use crate::support::*;

/// Runs syncprobe, expecting exit 2 with `wanted` in its stderr and nothing
/// started (no banner, no bundled-server note).
async fn refused(args: &[&str], wanted: &str) -> String {
    refused_env(args, &[], wanted).await
}

async fn refused_env(args: &[&str], env: &[(&str, &str)], wanted: &str) -> String {
    let output = run_cli_env(args, env).await;
    let err = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{args:?}: {err}{}",
        stdout(&output)
    );
    assert!(err.contains(wanted), "{args:?}: wanted {wanted:?} in {err}");
    assert!(
        !stdout(&output).contains("bundled server") && !err.contains("bundled server"),
        "{args:?} started something before refusing: {}",
        stdout(&output)
    );
    err
}

#[tokio::test]
async fn a_usage_error_with_json_is_also_an_error_record() {
    for args in [
        &["connect", "org-a", "--json", "--bogus"][..],
        &["--json", "watch-sync"][..],
        &["load", "-c", "0", "--json"][..],
        &["connect", "", "--json"][..],
    ] {
        let output = run_cli(args).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        let records = records(&output);
        assert_eq!(records.len(), 1, "{args:?}: {records:?}");
        assert_eq!(records[0]["type"], "error", "{args:?}");
        let error: ErrorRecord = typed(&records[0]["data"]);
        assert_eq!(error.exit_code, 2);
        assert!(!error.message.is_empty() && !error.message.starts_with("error:"));
        // Without --json, nothing on stdout.
        let plain: Vec<&str> = args.iter().copied().filter(|a| *a != "--json").collect();
        let output = run_cli(&plain).await;
        assert_eq!(output.status.code(), Some(2));
        assert_eq!(stdout(&output), "", "{plain:?}");
    }
}

#[tokio::test]
async fn help_and_version_are_not_errors_even_with_json() {
    for args in [&["--json", "--help"][..], &["--version", "--json"][..]] {
        let output = run_cli(args).await;
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert!(!stdout(&output).contains("\"type\":\"error\""));
    }
}

#[tokio::test]
async fn odd_values_are_refused_with_their_reason() {
    let cases: &[(&[&str], &str)] = &[
        (&["connect", "o", "--connect-timeout", "0"], "more than 0"),
        (
            &["connect", "o", "--connect-timeout", "-5s"],
            "durations cannot be negative",
        ),
        (
            &["connect", "o", "--hold", "-1s"],
            "durations cannot be negative",
        ),
        (&["watch-sync", "o", "--duration", "0"], "more than 0"),
        (&["watch-sync", "o", "--timeout", "0s"], "more than 0"),
        (
            &["watch-sync", "o", "--timeout", "-1s"],
            "durations cannot be negative",
        ),
        (
            &[
                "watch-sync",
                "o",
                "--expect",
                "QUEUED",
                "--per-item",
                "--items",
                "0",
            ],
            "at least 1",
        ),
        (&["watch-sync", "o", "--count", "0"], "--count"),
        (&["watch-sync", "o", "--last", "0"], "--last"),
        (
            &["watch-sync", "o", "--reconnect", "--reconnect-base", "0"],
            "more than 0",
        ),
        (&["enqueue", "o", "--count", "0"], "--count"),
        (&["enqueue", "o", "--timeout", "0"], "more than 0"),
        (&["smoke", "--timeout", "0"], "more than 0"),
        (&["connect", "o", "--timeout", "0"], "more than 0"),
        (&["load", "-c", "0"], "at least 1"),
        (&["load", "--max-pending", "0"], "at least 1"),
        (&["load", "--rate", "-3"], "a rate is a finite number"),
        (&["load", "--ramp-rate", "nan"], "a rate is a finite number"),
        (&["load", "--timeout", "0s"], "more than 0"),
        (
            &["load", "--passive", "--duration", "0"],
            "--passive needs a --duration",
        ),
        (
            &["token", "--secret", "s", "--org", "o", "--ttl", "0s"],
            "more than 0",
        ),
        (
            &["token", "--secret", "", "--org", "o"],
            "--secret is empty",
        ),
        (
            &["token", "--secret", "s", "--org", " "],
            "--org must not be empty",
        ),
        (&["serve", "--jwt-leeway", "2h"], "at most 1h"),
        (&["serve", "--jwt-issuer", "me"], "need --jwt-secret"),
        (&["serve", "--write-timeout", "0"], "more than 0"),
        (&["serve", "--rate-burst", "0"], "--rate-burst"),
        (
            &[
                "connect",
                "o",
                "--token-in",
                "query",
                "--token-param",
                "a=b",
            ],
            "query parameter name",
        ),
    ];
    for (args, wanted) in cases {
        refused(args, wanted).await;
    }
}

#[tokio::test]
async fn a_full_url_target_and_another_url_flag_are_refused() {
    let err = refused(
        &[
            "connect",
            "ws://127.0.0.1:9/api/ws/sync/org-a",
            "--url",
            "ws://127.0.0.1:8",
        ],
        "names another backend",
    )
    .await;
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[tokio::test]
async fn an_explicit_flag_beats_the_environment() {
    let mut server = FakeServer::sending(vec![fake::part1_connected("org-a")]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "file-t0k\n").unwrap();
    let file = file.to_str().unwrap();
    let env = [
        ("SYNCPROBE_TOKEN", "env-t0k"),
        ("SYNCPROBE_URL", "ws://127.0.0.1:9"),
    ];
    let cases: &[(&[&str], &str)] = &[
        (&["--token-file", file], "Bearer file-t0k"),
        (&["--token", "flag-t0k"], "Bearer flag-t0k"),
        (&[], "Bearer env-t0k"),
    ];
    for (extra, wanted) in cases {
        let base = server.base();
        let mut args = vec!["connect", "org-a", "--url", &base];
        args.extend_from_slice(extra);
        let output = run_cli_env(&args, &env).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{extra:?}: {}",
            stderr(&output)
        );
        let upgrade = server.next_upgrade().await;
        assert_eq!(upgrade.header("authorization"), Some(*wanted), "{extra:?}");
    }
    // A full URL as the target beats SYNCPROBE_URL too (only --url must agree).
    let output = run_cli_env(&["connect", &server.sync_url("org-a")], &env).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    server.next_upgrade().await;
    // Both flags at once are still a conflict.
    refused_env(
        &["connect", "org-a", "--token", "x", "--token-file", file],
        &env,
        "cannot be used with",
    )
    .await;
}

#[tokio::test]
async fn a_named_token_parameter_carries_the_token_and_is_never_shown() {
    let mut server = FakeServer::sending(vec![fake::part1_connected("org-a")]).await;
    let base = server.base();
    let output = run_cli(&[
        "connect",
        "org-a",
        "--url",
        &base,
        "--token",
        "s3cr3t-t0k",
        "--token-in",
        "query",
        "--token-param",
        "sig",
        "--json",
        "-vvv",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let upgrade = server.next_upgrade().await;
    assert_eq!(upgrade.param("sig").as_deref(), Some("s3cr3t-t0k"));
    assert_eq!(upgrade.param("token"), None);
    let all = format!("{}{}", stdout(&output), stderr(&output));
    assert!(!all.contains("s3cr3t"), "{all}");
    let records = records(&output);
    let open = data_of(&records, "open");
    let url = open[0]["url"].as_str().unwrap_or_default();
    assert!(url.contains("sig=***"), "{open:?}");
    let _: &Value = open[0];
}
