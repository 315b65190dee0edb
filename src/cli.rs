//! The command line: the root parser, the global flags, and the value parsers every
//! subcommand shares. Each subcommand's own flags live beside its `run` in
//! `src/commands/`.
//!
//! Conventions for flags (keep new ones in line):
//! - long flags are kebab-case; short flags only for the common ones (`-q`, `-v`, `-H`);
//! - value names are upper case (`--timeout DURATION`, `--listen ADDR`);
//! - durations are written `500ms`, `5s`, `2m` and parsed by [`parse_duration`] only;
//! - every setting that a deployment or CI job would fix has a `SYNCPROBE_*` variable;
//!   secret values (`SYNCPROBE_TOKEN`) are hidden from `--help`;
//! - a flag's help says its default and its unit.

use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::commands;
use crate::exit::TableText;

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open a sync socket, check CONNECTED, and close
    Connect(commands::connect::ConnectArgs),
    /// Stream an organization's sync events and check them against expectations
    WatchSync(commands::watch_sync::WatchSyncArgs),
    /// Queue writes through POST /api/pems/write-sync, optionally following them to the end
    Enqueue(commands::enqueue::EnqueueArgs),
    /// Run the whole verification checklist against a backend (or the bundled server)
    Smoke(commands::smoke::SmokeArgs),
    /// Open many sync sockets and measure connect time, fan-out latency and completeness
    Load(commands::load::LoadArgs),
    /// Run the bundled sync-socket server (the protocol's reference implementation)
    Serve(commands::serve::ServeArgs),
    /// Mint an HS256 test token for a secured `serve` (development and CI only)
    ///
    /// It signs whatever it is asked to with the shared secret given, so it belongs in
    /// local development and test pipelines; production tokens come from your identity
    /// provider. The token goes to stdout alone, ready for `--token "$(syncprobe token …)"`.
    Token(commands::token::TokenArgs),
    /// Write shell completions or the man page (see `completions/`)
    #[command(hide = true)]
    Generate(commands::generate::GenerateArgs),
}

/// How client subcommands reach a backend: addressing, credentials, TLS, timeouts.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionArgs {
    /// Base URL of the backend (ws, wss, http or https) [default: ws://localhost:3000;
    /// for `smoke`, the bundled server on a free port]
    #[arg(long, value_name = "URL", env = "SYNCPROBE_URL")]
    pub url: Option<String>,
    /// Path of the sync socket; {org} is replaced by the organization id
    #[arg(long, value_name = "TEMPLATE", default_value = crate::protocol::DEFAULT_SYNC_PATH)]
    pub path: String,
    /// Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// Extra request header, `Name: value` (repeatable)
    #[arg(short = 'H', long = "header", value_name = "HEADER", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Bearer token for the upgrade and REST calls
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SYNCPROBE_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Read the bearer token from a file (surrounding whitespace is ignored)
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<std::path::PathBuf>,
    /// Where the token goes on the upgrade: an Authorization header, or the `token`
    /// query parameter as browsers must
    #[arg(long, value_name = "WHERE", default_value = "header")]
    pub token_in: TokenIn,
    /// Origin header for the upgrade
    #[arg(long, value_name = "ORIGIN")]
    pub origin: Option<String>,
    /// WebSocket subprotocol to request (repeatable)
    #[arg(long, value_name = "NAME")]
    pub subprotocol: Vec<String>,
    /// Extra PEM file of CA certificates to trust (for wss:// and https://)
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,
    /// Accept any TLS certificate (testing only)
    #[arg(long)]
    pub insecure: bool,
    /// Deadline for DNS, TCP, TLS and the upgrade together
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenIn {
    Header,
    Query,
}

/// Parses `Name: value` (also `Name:value`).
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not a header: write it as 'Name: value'"))?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b))
    {
        return Err(format!("{name:?} is not a valid header name"));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// Environment variables, listed at the end of the root `--help`.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "SYNCPROBE_URL",
        "base URL of the backend for client subcommands",
    ),
    (
        "SYNCPROBE_TOKEN",
        "bearer token sent by client subcommands (never printed)",
    ),
    (
        "SYNCPROBE_LISTEN and other SYNCPROBE_*",
        "settings of `serve`, one per flag (see `syncprobe serve --help`)",
    ),
    ("NO_COLOR", "disable colour (any value)"),
    ("CLICOLOR_FORCE", "force colour even when not a terminal"),
];

fn after_help() -> String {
    let mut text = format!("Exit codes:\n{TableText}\nEnvironment:\n");
    for (name, meaning) in ENVIRONMENT {
        text.push_str(&format!("  {name}\n      {meaning}\n"));
    }
    text
}

/// The full clap command, with the exit-code table and environment after `--help`.
pub fn command() -> clap::Command {
    Cli::command().after_long_help(after_help())
}

/// Parses `std::env::args`, exiting with clap's usage code (2) on bad input.
pub fn parse() -> Cli {
    // `--color` must also reach clap's own help and usage errors, which are written
    // before the flag is parsed: look for it first.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match color_flag(&args) {
        Some(ColorWhen::Always) => anstream::ColorChoice::Always.write_global(),
        Some(ColorWhen::Never) => anstream::ColorChoice::Never.write_global(),
        _ => {}
    }
    let matches = command().get_matches_from(args);
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
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

/// Parses `500ms`, `5s`, `2m`, `1h30m`; a bare `0` means zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (write durations like 500ms, 5s or 2m)"))
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
    fn headers() {
        assert_eq!(
            parse_header("X-Trace: abc"),
            Ok(("X-Trace".into(), "abc".into()))
        );
        assert_eq!(parse_header("a:b:c"), Ok(("a".into(), "b:c".into())));
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
        assert!(parse_header(": x").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").unwrap_err().contains("500ms"));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn global_flags_are_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from(["syncprobe", "serve", "--json", "-q"]).unwrap();
        assert!(cli.global.json && cli.global.quiet);
        assert!(Cli::try_parse_from(["syncprobe", "serve", "-q", "-v"]).is_err());
    }

    #[test]
    fn root_help_ends_with_exit_codes_and_environment() {
        let help = command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("130  interrupted"), "{help}");
        assert!(help.contains("SYNCPROBE_URL"), "{help}");
    }
}
