//! The command line's root: the parser, the global flags and the help text around
//! the subcommands. The subcommands themselves ([`Command`]), their flags and the
//! shared flag groups live in `src/commands/`; the conventions every flag follows are
//! written at the top of `src/commands/args.rs`.

use clap::{Args, CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::commands::Command;
use crate::exit::TableText;
use crate::report::{Color, Verbosity};

#[derive(Debug, Parser)]
#[command(
    name = "syncprobe",
    version,
    about = "Test and inspect sync sockets: the WebSocket endpoints that push the sync status of queued writes",
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted anywhere on the line, by every subcommand.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Write NDJSON records to stdout instead of text (see README, "--json")
    #[arg(long, global = true)]
    pub json: bool,
    /// When to use colour
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: ColorWhen,
    /// Print only errors and the final result
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// Colour when the stream is a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    /// The flag's value, as the reporter takes it.
    pub fn color(self) -> Color {
        match self {
            ColorWhen::Auto => Color::Auto,
            ColorWhen::Always => Color::Always,
            ColorWhen::Never => Color::Never,
        }
    }
}

impl GlobalArgs {
    /// `-q` / `-v`, as the reporter takes them.
    pub fn verbosity(&self) -> Verbosity {
        match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            _ => Verbosity::Verbose,
        }
    }
}

/// Environment variables, listed at the end of the root `--help` and in the man pages.
pub use crate::commands::args::ENVIRONMENT;

/// The first commands to try, at the end of the root `--help` and in `syncprobe(1)`.
const EXAMPLES: &str = "Examples:
  syncprobe smoke                                   # every check, against the bundled server
  syncprobe connect org-rio --url ws://localhost:3000
  syncprobe watch-sync org-rio --expect 'QUEUED PROCESSING+ TERMINAL' --timeout 30s
  syncprobe serve --listen 127.0.0.1:3000           # a stand-in backend";

fn after_help() -> String {
    let mut text = format!("{EXAMPLES}\n\nExit codes:\n{TableText}\nEnvironment:\n");
    for (name, meaning) in ENVIRONMENT {
        text.push_str(&format!("  {name}\n      {meaning}\n"));
    }
    text
}

/// The full clap command, with the exit-code table and environment after `--help`.
/// `--help` names each flag's variable but never shows its current value: a URL
/// may carry a password, a variable may hold a secret.
pub fn command() -> clap::Command {
    every_flag(Cli::command().after_long_help(after_help()))
}

/// What every flag of every subcommand shares: no variable's value in `--help`,
/// and a negative duration or number reaches its parser (which says "durations
/// cannot be negative") instead of being taken for a flag.
fn every_flag(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| {
            let numeric = arg.get_value_names().is_some_and(|names| {
                names.iter().any(|n| {
                    matches!(
                        n.as_str(),
                        "DURATION" | "N" | "C" | "R" | "K" | "X" | "BYTES"
                    )
                })
            });
            arg.hide_env_values(true).allow_hyphen_values(numeric)
        })
        .mut_subcommands(every_flag)
}

/// Parses `std::env::args`, exiting with clap's usage code (2) on bad input.
pub fn parse() -> Cli {
    // `--color` must also reach clap's own help and usage errors, which are written
    // before the flag is parsed: look for it first.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let when = color_flag(&args).unwrap_or(ColorWhen::Auto).color();
    let choice = if crate::report::color::enabled(when, &std::io::stdout()) {
        anstream::ColorChoice::Always
    } else {
        anstream::ColorChoice::Never
    };
    choice.write_global();
    let parsed = command()
        .try_get_matches_from(&args)
        .and_then(|matches| Cli::from_arg_matches(&matches));
    parsed.unwrap_or_else(|e| {
        // With --json a usage error is also a record, so a pipeline reading stdout
        // learns why nothing else came; clap still writes its text to stderr.
        if e.use_stderr() && json_flag(&args) {
            let reporter =
                crate::report::Reporter::with_options(true, Color::Never, Verbosity::Quiet);
            reporter.error_record(&usage_message(&e), crate::exit::Exit::Usage);
            let _ = reporter.finish();
        }
        e.exit()
    })
}

/// `--json` on the line, before `--`.
fn json_flag(args: &[std::ffi::OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// The first line of clap's message, without its `error: ` prefix or styling.
fn usage_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// The last `--color WHEN` / `--color=WHEN` on the line, before `--`.
fn color_flag(args: &[std::ffi::OsString]) -> Option<ColorWhen> {
    let mut found = None;
    let mut iter = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(arg) = iter.next() {
        let value = match arg.as_ref() {
            "--" => break,
            "--color" => iter.next().map(|v| v.into_owned()),
            other => other.strip_prefix("--color=").map(String::from),
        };
        if let Some(value) = value {
            found = ColorWhen::from_str(&value, true).ok().or(found);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn color_flag_is_found_before_parsing() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            color_flag(&args(&["x", "serve", "--color", "never"])),
            Some(ColorWhen::Never)
        );
        assert_eq!(
            color_flag(&args(&["x", "--color=always", "--help"])),
            Some(ColorWhen::Always)
        );
        assert_eq!(color_flag(&args(&["x", "--", "--color", "always"])), None);
        assert_eq!(color_flag(&args(&["x", "connect", "o"])), None);
    }

    #[test]
    fn usage_errors_are_found_and_worded_for_the_json_record() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(json_flag(&args(&["x", "connect", "--json", "--bogus"])));
        assert!(!json_flag(&args(&["x", "connect", "--", "--json"])));
        let e = command()
            .try_get_matches_from(["syncprobe", "connect", "o", "--bogus"])
            .unwrap_err();
        assert_eq!(
            usage_message(&e),
            "unexpected argument '--bogus' found",
            "{}",
            e.render()
        );
    }

    #[test]
    fn global_flags_are_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from(["syncprobe", "serve", "--json", "-q"]).unwrap();
        assert!(cli.global.json && cli.global.quiet);
        assert!(Cli::try_parse_from(["syncprobe", "serve", "-q", "-v"]).is_err());
    }

    #[test]
    fn help_never_shows_the_value_of_a_variable() {
        fn check(command: &clap::Command) {
            for arg in command.get_arguments() {
                if arg.get_env().is_some() {
                    assert!(arg.is_hide_env_values_set(), "{}", arg.get_id());
                }
            }
            command.get_subcommands().for_each(check);
        }
        let command = command();
        check(&command);
        assert!(command.get_subcommands().count() > 5);
    }

    #[test]
    fn root_help_ends_with_exit_codes_and_environment() {
        let help = command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("130  interrupted"), "{help}");
        assert!(help.contains("SYNCPROBE_URL"), "{help}");
    }
}
