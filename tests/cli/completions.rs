//! The generated files in `completions/` (shell completions, man pages) are current,
//! bash really completes with them, and `--help` carries what users look for: the
//! exit codes and environment at the root, examples in every subcommand.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use syncprobe::commands::generate::{self, Artefact};

use crate::support::*;

fn completions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("completions")
}

/// What differs between the generated `files` and the directory `dir`: changed and
/// missing files, and files nothing generates any more.
fn differences(files: &[Artefact], dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for file in files {
        let path = dir.join(&file.file_name);
        match std::fs::read(&path) {
            Ok(content) if content == file.content => {}
            Ok(_) => problems.push(format!("{} is out of date", file.file_name)),
            Err(e) => problems.push(format!("{} is missing ({e})", file.file_name)),
        }
    }
    let generated: BTreeSet<&str> = files.iter().map(|f| f.file_name.as_str()).collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !generated.contains(name.as_str()) {
                problems.push(format!("{name} is not generated any more: delete it"));
            }
        }
    }
    problems
}

/// The failure message: what is wrong, then the one command that fixes it.
fn stale(problems: &[String]) -> String {
    format!(
        "completions/ is stale:\n  {}\nregenerate it from the repository root with:\n  {}\n",
        problems.join("\n  "),
        generate::REGENERATE
    )
}

#[test]
fn checked_in_completions_and_man_pages_are_current() {
    let files = generate::all(&syncprobe::cli::command()).expect("generating every file");
    let problems = differences(&files, &completions_dir());
    assert!(problems.is_empty(), "{}", stale(&problems));
}

#[test]
fn every_shell_and_the_man_pages_are_checked_in() {
    let names: BTreeSet<String> = generate::all(&syncprobe::cli::command())
        .unwrap()
        .into_iter()
        .map(|f| f.file_name)
        .collect();
    let mut expected: BTreeSet<String> = [
        "syncprobe.bash",
        "_syncprobe",
        "syncprobe.fish",
        "_syncprobe.ps1",
        "syncprobe.elv",
        "syncprobe.1",
    ]
    .map(String::from)
    .into();
    for sub in visible_subcommands() {
        expected.insert(format!("syncprobe-{sub}.1"));
    }
    assert_eq!(names, expected);
}

/// The command the failure message prints does what it says: `generate all` writes
/// exactly the files compared above, and `generate SHELL|man` prints them.
#[tokio::test]
async fn the_generate_command_writes_what_the_check_compares() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("completions");
    let output = run_cli(&["generate", "all", "--out-dir", out_dir.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "", "files, not stdout");
    let files = generate::all(&syncprobe::cli::command()).unwrap();
    let problems = differences(&files, &out_dir);
    assert!(problems.is_empty(), "{problems:?}");

    for (what, file_name) in [
        ("bash", "syncprobe.bash"),
        ("zsh", "_syncprobe"),
        ("fish", "syncprobe.fish"),
        ("powershell", "_syncprobe.ps1"),
        ("elvish", "syncprobe.elv"),
        ("man", "syncprobe.1"),
    ] {
        let output = run_cli(&["generate", what]).await;
        assert_eq!(output.status.code(), Some(0), "{what}: {}", stderr(&output));
        let file = files.iter().find(|f| f.file_name == file_name).unwrap();
        assert!(
            output.stdout == file.content,
            "generate {what} != {file_name}"
        );
    }
}

#[tokio::test]
async fn generate_all_without_a_directory_is_a_usage_error() {
    let output = run_cli(&["generate", "all"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--out-dir"), "{}", stderr(&output));
}

/// Visible subcommands, from the parser itself (so a new one is covered at once).
fn visible_subcommands() -> Vec<String> {
    let names: Vec<String> = syncprobe::cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "load"), "{names:?}");
    assert!(!names.iter().any(|n| n == "generate"), "{names:?}");
    names
}

// ---- bash, as a new user's shell would use the script --------------------------

/// The program `name` from `PATH`, or `None` (after saying why) when it is absent
/// outside CI. In CI (`CI` set) a missing program fails the test instead of skipping
/// it silently.
pub(crate) fn required_tool(name: &str, purpose: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is needed in CI for {purpose}"
        );
        eprintln!("skipping {purpose}: {name} is not installed");
    }
    found
}

/// Sources the generated bash script in a clean, non-interactive bash, finds the
/// function it registered for `syncprobe` (`complete -p`), calls it as bash would
/// for the command line `words` (the last word being completed), and returns the
/// candidates.
async fn bash_complete(bash: &Path, script: &Path, words: &[&str]) -> Vec<String> {
    const DRIVER: &str = r#"
set -u
source "$1"; shift
spec=$(complete -p syncprobe) || { echo "no completion registered for syncprobe" >&2; exit 90; }
function=$(sed -n 's/.* -F \([^ ]*\) .*/\1/p' <<<"$spec")
[ -n "$function" ] || { echo "no -F function in: $spec" >&2; exit 91; }
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
previous=""
[ "$COMP_CWORD" -gt 0 ] && previous=${COMP_WORDS[COMP_CWORD-1]}
"$function" syncprobe "${COMP_WORDS[COMP_CWORD]}" "$previous"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let mut command = tokio::process::Command::new(bash);
    command
        .args(["--norc", "--noprofile", "-c", DRIVER, "driver"])
        .arg(script)
        .args(words)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("bash did not finish in time")
        .expect("failed to run bash");
    assert!(
        output.status.success(),
        "bash failed for {words:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn bash_completes_subcommands_and_flags() {
    let Some(bash) = required_tool("bash", "the bash completion test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("syncprobe.bash");
    std::fs::write(
        &script,
        generate::completion(&syncprobe::cli::command(), clap_complete::Shell::Bash).content,
    )
    .unwrap();

    let candidates = bash_complete(&bash, &script, &["syncprobe", ""]).await;
    for sub in ["connect", "watch-sync", "enqueue", "smoke", "load", "serve"] {
        assert!(candidates.iter().any(|c| c == sub), "{sub}: {candidates:?}");
    }
    assert!(
        !candidates.iter().any(|c| c == "generate"),
        "the hidden subcommand is offered: {candidates:?}"
    );

    let cases: [(&[&str], &[&str]); 7] = [
        (&["syncprobe", "wat"], &["watch-sync"]),
        (
            &["syncprobe", "watch-sync", "org-rio", "--fail-on", "SYNC_"],
            &[
                "SYNC_QUEUED",
                "SYNC_PROCESSING",
                "SYNC_SUCCESS",
                "SYNC_CONFLICT",
                "SYNC_FAILED",
            ],
        ),
        (
            &["syncprobe", "watch-sync", "o", "--fail-on", "SYNC_F"],
            &["SYNC_FAILED"],
        ),
        (&["syncprobe", "watch-sync", "--ex"], &["--expect"]),
        (&["syncprobe", "serve", "--li"], &["--listen"]),
        (&["syncprobe", "--color", ""], &["auto", "always", "never"]),
        (
            &["syncprobe", "enqueue", "org-rio", "--outcome", "re"],
            &["retry-then-success"],
        ),
    ];
    for (words, expected) in cases {
        let candidates = bash_complete(&bash, &script, words).await;
        assert_eq!(candidates, expected, "completing {words:?}");
    }
}

// ---- --help ---------------------------------------------------------------------

#[tokio::test]
async fn help_text_keeps_braces_that_clap_would_eat() {
    // clap turns a literal `{n}` into a line break in help text.
    let output = run_cli(&["watch-sync", "--help"]).await;
    let help = stdout(&output);
    assert!(help.contains("Quantifiers: + * ? {N} {N,} {N,M}"), "{help}");
    for sub in visible_subcommands() {
        let help = stdout(&run_cli(&[&sub, "--help"]).await);
        let source = syncprobe::cli::command();
        let cmd = source.find_subcommand(&sub).unwrap();
        let written = cmd
            .get_after_long_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(
            !written.contains("{n}"),
            "{sub}: `{{n}}` in its help would vanish"
        );
        assert!(!help.contains("{n}"));
    }
}

#[tokio::test]
async fn root_help_ends_with_the_exit_codes_and_the_environment() {
    let output = run_cli(&["--help"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let help = stdout(&output);
    let exit_codes = help.find("Exit codes:").expect("an exit-code table");
    let environment = help.find("Environment:").expect("an environment section");
    assert!(exit_codes < environment, "{help}");
    let table = &help[exit_codes..environment];
    for (exit, meaning) in syncprobe::exit::Exit::TABLE {
        let row = format!("{:>3}  {meaning}", exit.code());
        assert!(table.contains(&row), "no row {row:?} in:\n{table}");
    }
    let tail = &help[environment..];
    for (name, _) in syncprobe::cli::ENVIRONMENT {
        assert!(tail.contains(name), "{name} is not listed in:\n{tail}");
    }
    for name in [
        "SYNCPROBE_URL",
        "SYNCPROBE_TOKEN",
        "NO_COLOR",
        "CLICOLOR_FORCE",
    ] {
        assert!(tail.contains(name), "{name} is not listed in:\n{tail}");
    }
    // The environment is the last section: nothing but its entries after it.
    let last = tail.lines().rfind(|l| !l.trim().is_empty());
    assert_eq!(
        last.map(str::trim),
        syncprobe::cli::ENVIRONMENT
            .last()
            .map(|(_, meaning)| *meaning),
        "{help}"
    );
}

#[tokio::test]
async fn every_subcommand_help_has_examples() {
    let mut missing = Vec::new();
    for sub in visible_subcommands() {
        let output = run_cli(&[&sub, "--help"]).await;
        assert_eq!(output.status.code(), Some(0), "{sub}: {}", stderr(&output));
        let help = stdout(&output);
        let examples = help
            .split_once("Examples:")
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        // At least one example line that runs this very subcommand.
        if !examples.contains(&format!("syncprobe {sub}")) {
            missing.push(sub);
        }
    }
    assert!(
        missing.is_empty(),
        "no `Examples:` with a `syncprobe SUBCOMMAND` line in the --help of: {missing:?}"
    );
}

#[test]
fn man_pages_have_exit_status_environment_and_examples_kept_line_by_line() {
    let root = syncprobe::cli::command();
    let pages = generate::man_pages(&root).unwrap();
    assert!(pages.len() > 5);
    for page in &pages {
        let text = String::from_utf8(page.content.clone()).unwrap();
        let name = &page.file_name;
        for section in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH EXAMPLES"] {
            assert!(text.contains(section), "{name} has no {section}");
        }
        for (exit, _) in syncprobe::exit::Exit::TABLE {
            assert!(
                text.contains(&format!(".TP\n\\fB{}\\fR\n", exit.code())),
                "{name}: {}",
                exit.code()
            );
        }
        assert!(text.contains("SYNCPROBE_URL"), "{name}");
        // Every example of the page's --help is one line of an unfilled block.
        let sub = name.trim_end_matches(".1").strip_prefix("syncprobe-");
        let cmd = match sub {
            Some(sub) => root.find_subcommand(sub).unwrap().clone(),
            None => root.clone(),
        };
        let Some(after) = cmd.get_after_long_help() else {
            continue;
        };
        let unescape = |l: &str| {
            l.replace("\\*(Aq", "'")
                .replace("\\-", "-")
                .replace('\\', "")
        };
        let lines: Vec<String> = text.lines().map(unescape).collect();
        for example in after
            .to_string()
            .lines()
            .filter(|l| l.starts_with("  syncprobe "))
        {
            let example = example.replace('\\', "");
            let at = lines
                .iter()
                .position(|l| *l == example)
                .unwrap_or_else(|| panic!("{name}: {example:?} is not one line"));
            let block = lines[..at].iter().rposition(|l| l == ".nf");
            let end = lines[..at].iter().rposition(|l| l == ".fi");
            assert!(block > end, "{name}: {example:?} is filled");
        }
    }
    // Serve's page also names the variable of each of its flags.
    let serve = pages
        .iter()
        .find(|p| p.file_name == "syncprobe-serve.1")
        .unwrap();
    let serve = String::from_utf8_lossy(&serve.content);
    assert!(serve.contains("SYNCPROBE_JWT_LEEWAY"), "{serve}");
}
