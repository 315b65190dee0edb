//! The colour policy of STYLE.md: `--color auto|always|never`; `auto` colours a
//! stream only when it is a terminal and honours `NO_COLOR`, `CLICOLOR_FORCE` and
//! `TERM=dumb`; the flag beats the environment.
//!
//! The run: `connect` against a port nothing listens on (port 1 needs root to bind),
//! which fails at once (exit 3) with a styled narration line on stdout and a styled
//! `syncprobe: error:` on stderr. Every run gets an empty environment plus exactly the
//! variables of its case: the caller's `NO_COLOR`, `CLICOLOR*`, `TERM` and `CI` (which
//! anstream reads as "colour is fine on a terminal") must not leak in.

use std::process::Output;
use std::time::Duration;

const ESC: &str = "\x1b[";
const UNREACHABLE: &str = "ws://127.0.0.1:1";

fn args(color: Option<&str>) -> Vec<&str> {
    let mut args = vec![
        "connect",
        "org-color",
        "--url",
        UNREACHABLE,
        "--connect-timeout",
        "5s",
    ];
    if let Some(when) = color {
        args.extend(["--color", when]);
    }
    args
}

/// Runs syncprobe with pipes for stdout and stderr (not a terminal) and an environment
/// holding only `PATH` and `env`.
async fn run(color: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncprobe"));
    command
        .args(args(color))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("syncprobe did not finish in time")
        .expect("failed to run syncprobe");
    assert_eq!(
        output.status.code(),
        Some(3),
        "a refused connection exits 3; stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Text without its ANSI sequences (`ESC [ … final byte`).
fn strip(text: &str) -> String {
    let mut plain = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(ESC) {
        plain.push_str(&rest[..start]);
        let after = &rest[start + ESC.len()..];
        let end = after
            .find(|c: char| c.is_ascii_alphabetic())
            .map_or(after.len(), |i| i + 1);
        rest = &after[end..];
    }
    plain.push_str(rest);
    plain
}

/// Whether each stream carried colour; asserts first that the run printed what the
/// cases look at, so "no escapes" cannot pass on empty output.
fn colored(output: &Output) -> (bool, bool) {
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        strip(&out).contains("Testing WebSocket connection to: ws://127.0.0.1:1/"),
        "stdout: {out:?}"
    );
    assert!(
        strip(&err).contains("syncprobe: error: failed to connect to ws://127.0.0.1:1/"),
        "stderr: {err:?}"
    );
    (out.contains(ESC), err.contains(ESC))
}

fn assert_colored(output: &Output, case: &str) {
    assert_eq!(colored(output), (true, true), "{case}: {output:?}");
    // The error prefix itself is styled (bold red, `ESC[1;31m`), not only some other
    // part.
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("\x1b[1;31msyncprobe: error:\x1b[0m"),
        "{case}: {err:?}"
    );
}

fn assert_plain(output: &Output, case: &str) {
    assert_eq!(colored(output), (false, false), "{case}: {output:?}");
}

#[tokio::test]
async fn always_colours_even_when_not_a_terminal() {
    assert_colored(&run(Some("always"), &[]).await, "--color always");
}

#[tokio::test]
async fn never_does_not_colour() {
    assert_plain(&run(Some("never"), &[]).await, "--color never");
}

#[tokio::test]
async fn auto_does_not_colour_what_is_not_a_terminal() {
    assert_plain(&run(None, &[]).await, "auto, nothing set");
    assert_plain(&run(Some("auto"), &[]).await, "--color auto");
    // Even when TERM says colour is fine.
    assert_plain(
        &run(None, &[("TERM", "xterm-256color")]).await,
        "auto, TERM=xterm-256color",
    );
}

#[tokio::test]
async fn auto_honours_clicolor_force() {
    assert_colored(
        &run(None, &[("CLICOLOR_FORCE", "1")]).await,
        "auto, CLICOLOR_FORCE=1",
    );
    // Forcing beats TERM=dumb as well as "not a terminal".
    assert_colored(
        &run(None, &[("CLICOLOR_FORCE", "1"), ("TERM", "dumb")]).await,
        "auto, CLICOLOR_FORCE=1 TERM=dumb",
    );
}

/// bixense.com/clicolors reads `CLICOLOR_FORCE=0` as "not forced"; any other
/// non-empty value forces colour.
#[tokio::test]
async fn clicolor_force_0_is_not_forced() {
    assert_plain(
        &run(None, &[("CLICOLOR_FORCE", "0")]).await,
        "auto, CLICOLOR_FORCE=0",
    );
}

#[tokio::test]
async fn auto_honours_no_color() {
    assert_plain(&run(None, &[("NO_COLOR", "1")]).await, "auto, NO_COLOR=1");
    // NO_COLOR wins over CLICOLOR_FORCE.
    assert_plain(
        &run(None, &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")]).await,
        "auto, NO_COLOR=1 CLICOLOR_FORCE=1",
    );
    // no-color.org: an empty NO_COLOR is not set.
    assert_colored(
        &run(None, &[("NO_COLOR", ""), ("CLICOLOR_FORCE", "1")]).await,
        "auto, NO_COLOR= CLICOLOR_FORCE=1",
    );
}

#[tokio::test]
async fn term_dumb_does_not_colour_with_auto() {
    assert_plain(&run(None, &[("TERM", "dumb")]).await, "auto, TERM=dumb");
    assert_colored(
        &run(Some("always"), &[("TERM", "dumb")]).await,
        "--color always, TERM=dumb",
    );
}

#[tokio::test]
async fn the_flag_beats_the_environment() {
    assert_colored(
        &run(Some("always"), &[("NO_COLOR", "1")]).await,
        "--color always, NO_COLOR=1",
    );
    assert_plain(
        &run(Some("never"), &[("CLICOLOR_FORCE", "1")]).await,
        "--color never, CLICOLOR_FORCE=1",
    );
}

#[tokio::test]
async fn json_records_never_carry_colour() {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncprobe"));
    command
        .args(args(Some("always")))
        .arg("--json")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("syncprobe did not finish in time")
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    let records: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not NDJSON: {l:?}: {e}")))
        .collect();
    assert!(records.iter().any(|r| r["type"] == "error"), "{out}");
    assert!(!out.contains(ESC), "{out:?}");
    // Diagnostics on stderr still follow --color.
    assert!(String::from_utf8_lossy(&output.stderr).contains(ESC));
}

// ---- in a real terminal (a pseudo-terminal from util-linux `script`) ---------------

/// Runs syncprobe on a pseudo-terminal (stdout and stderr both) with only `PATH` and
/// `env`, and returns what the terminal showed; `None` when `script` is missing.
#[cfg(target_os = "linux")]
async fn run_on_terminal(color: Option<&str>, env: &[(&str, &str)]) -> Option<String> {
    let script = crate::completions::required_tool("script", "the colour-on-a-terminal test")?;
    let line: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_syncprobe"))
        .chain(args(color))
        .map(|word| format!("'{}'", word.replace('\'', r"'\''")))
        .collect();
    let mut command = tokio::process::Command::new(script);
    command
        // -q: no banner; -e: the child's exit status; -c: the command; log to nowhere.
        .args(["-qec", &line.join(" "), "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("syncprobe did not finish in time")
        .expect("failed to run script");
    let screen = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(3), "{screen:?}");
    let plain = strip(&screen);
    assert!(
        plain.contains("Testing WebSocket connection to:")
            && plain.contains("syncprobe: error: failed to connect"),
        "{screen:?}"
    );
    Some(screen)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn auto_colours_a_terminal_unless_told_not_to() {
    let xterm = ("TERM", "xterm-256color");
    // (case, --color, environment, whether the terminal shows colour)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<(&'a str, &'a str)>, bool);
    let cases: [Case; 6] = [
        ("auto, TERM=xterm", None, vec![xterm], true),
        ("auto, TERM=dumb", None, vec![("TERM", "dumb")], false),
        (
            "auto, NO_COLOR=1",
            None,
            vec![xterm, ("NO_COLOR", "1")],
            false,
        ),
        ("--color never", Some("never"), vec![xterm], false),
        (
            "--color always, TERM=dumb",
            Some("always"),
            vec![("TERM", "dumb")],
            true,
        ),
        (
            "--color always, NO_COLOR=1",
            Some("always"),
            vec![xterm, ("NO_COLOR", "1")],
            true,
        ),
    ];
    for (case, color, env, expect_colour) in cases {
        let Some(screen) = run_on_terminal(color, &env).await else {
            return;
        };
        assert_eq!(screen.contains(ESC), expect_colour, "{case}: {screen:?}");
    }
}
