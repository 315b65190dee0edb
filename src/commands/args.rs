//! Flag groups and value parsers that several subcommands share, and their
//! conversion into the plain values the library takes. The library never sees a
//! clap type: [`ConnectionArgs`] becomes a [`client::Addressing`] and a
//! [`ClientOptions`] here.
//!
//! Conventions for flags (keep new ones in line):
//! - long flags are kebab-case; short flags only for the common ones (`-q`, `-v`, `-H`);
//! - value names are upper case (`--timeout DURATION`, `--listen ADDR`);
//! - durations are written `500ms`, `5s`, `2m` and parsed by [`parse_duration`] only;
//! - every setting that a deployment or CI job would fix has a `SYNCPROBE_*` variable;
//!   secret values (`SYNCPROBE_TOKEN`) are hidden from `--help`;
//! - a flag's help says its default and its unit.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::builder::TypedValueParser as _;
use clap::{Args, ValueEnum};

use crate::client::{self, Addressing, ClientOptions, Endpoint, tls};
use crate::exit::Failure;

/// How client subcommands reach a backend: addressing, credentials, TLS, timeouts.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionArgs {
    /// Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several
    /// separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and
    /// `load`, the bundled server on a free port]. Repeatable on `connect`,
    /// `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and
    /// `load` (which spreads its connections over them)
    #[arg(long = "url", value_name = "URL")]
    pub urls: Vec<String>,
    /// Path of the sync socket; {org} is replaced by the organization id
    #[arg(long, value_name = "TEMPLATE", default_value = crate::protocol::DEFAULT_SYNC_PATH)]
    pub path: String,
    /// Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// Extra request header, `Name: value` (repeatable)
    #[arg(short = 'H', long = "header", value_name = "HEADER", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when
    /// neither --token nor --token-file is given]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Read the bearer token from a file (surrounding whitespace is ignored)
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<std::path::PathBuf>,
    /// Where the token goes on the upgrade: an Authorization header, or a query
    /// parameter (--token-param) as browsers must
    #[arg(long, value_name = "WHERE", default_value = "header")]
    pub token_in: TokenInArg,
    /// Query parameter that carries the token with --token-in query; its value is
    /// masked in every output, as `token` and `access_token` are
    #[arg(long, value_name = "NAME", default_value = "token", value_parser = parse_param_name)]
    pub token_param: String,
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
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration)]
    pub connect_timeout: Duration,
    /// Largest WebSocket message (and frame) accepted from the server, in bytes
    /// (1 KiB to 64 MiB); a larger one ends the run (exit 5)
    #[arg(long, value_name = "BYTES", env = "SYNCPROBE_CLIENT_MAX_MESSAGE",
          default_value_t = client::ws::MAX_MESSAGE,
          value_parser = clap::value_parser!(u32).range(1024..=(64 << 20)).map(|n| n as usize))]
    pub max_message_size: usize,
    /// Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is
    /// an error (exit 5)
    #[arg(long, value_name = "BYTES", env = "SYNCPROBE_CLIENT_MAX_BODY",
          default_value_t = client::http::MAX_BODY,
          value_parser = clap::value_parser!(u32).range(1024..=(256 << 20)).map(|n| n as usize))]
    pub max_body_size: usize,
}

/// Environment variables every subcommand reads, listed at the end of the root
/// `--help` and in every man page.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "SYNCPROBE_URL",
        "base URL of the backend for client subcommands, when --url is not given; several separated by commas or spaces",
    ),
    (
        "SYNCPROBE_TOKEN",
        "bearer token sent by client subcommands when neither --token nor --token-file is given (never printed)",
    ),
    (
        "SYNCPROBE_LISTEN and other SYNCPROBE_*",
        "settings of `serve`, one per flag (see `syncprobe serve --help`)",
    ),
    ("NO_COLOR", "disable colour (any value)"),
    ("CLICOLOR_FORCE", "force colour even when not a terminal"),
];

/// The variable that stands in for `--url`.
pub const URL_VARIABLE: &str = "SYNCPROBE_URL";
/// The variable that stands in for `--token` and `--token-file`.
pub const TOKEN_VARIABLE: &str = "SYNCPROBE_TOKEN";

/// A variable's value, `None` when unset or empty.
fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `--token-in`: the flag's spelling of [`client::TokenIn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenInArg {
    Header,
    Query,
}

/// Splits `SYNCPROBE_URL` into its URLs: separated by commas or white space (a comma
/// inside a URL is written `%2C`).
fn split_urls(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl ConnectionArgs {
    /// Every base URL the user chose, in order: the `--url` flags, else the URLs of
    /// `SYNCPROBE_URL` (an explicit flag beats the environment); empty means the
    /// default.
    pub fn given_urls(&self) -> Vec<String> {
        if !self.urls.is_empty() {
            return self.urls.clone();
        }
        variable(URL_VARIABLE).map_or_else(Vec::new, |v| split_urls(&v))
    }

    /// These flags with `url` as the only base URL.
    pub fn with_url(&self, url: &str) -> ConnectionArgs {
        ConnectionArgs {
            urls: vec![url.to_string()],
            ..self.clone()
        }
    }

    /// The first base URL the user chose (see [`ConnectionArgs::given_urls`]);
    /// `None` means the default.
    pub fn given_url(&self) -> Option<String> {
        self.given_urls().into_iter().next()
    }

    /// Replaces the URLs given with `url`, as if it were the only `--url` (the bundled
    /// server of `smoke` and `load`).
    pub fn set_url(&mut self, url: String) {
        self.urls = vec![url];
    }

    /// Where the socket and the REST API are, as the library takes it, for the first
    /// URL given.
    pub fn addressing(&self) -> Addressing {
        self.addressing_of(self.given_url())
    }

    fn addressing_of(&self, url: Option<String>) -> Addressing {
        Addressing {
            url,
            url_is_flag: !self.urls.is_empty(),
            path: self.path.clone(),
            api_url: self.api_url.clone(),
        }
    }

    /// Resolves `target` (an organization id or a full socket URL) against the flags,
    /// for a subcommand that talks to one backend: several URLs are a usage error.
    pub fn endpoint(&self, target: &str) -> anyhow::Result<Endpoint> {
        let urls = self.given_urls();
        if urls.len() > 1 {
            return Err(Failure::Usage(format!(
                "{} URLs given ({}), but this subcommand talks to one backend: give one --url",
                urls.len(),
                self.source_of_urls()
            ))
            .into());
        }
        client::resolve(target, &self.addressing())
    }

    /// Resolves `target` against every URL given, in order (one endpoint for the
    /// default URL or a target that is a full URL). Usage errors (exit 2): a URL that
    /// cannot address a backend, two that name the same socket (`ws://h` and
    /// `http://h/` do), several `--url` with a full-URL target.
    pub fn endpoints(&self, target: &str) -> anyhow::Result<Vec<Endpoint>> {
        let urls = self.given_urls();
        if urls.len() <= 1 {
            return Ok(vec![client::resolve(target, &self.addressing())?]);
        }
        if target.contains("://") {
            if self.urls.is_empty() {
                // URLs from the environment are only a default: the full URL wins.
                return Ok(vec![client::resolve(target, &self.addressing_of(None))?]);
            }
            return Err(Failure::Usage(format!(
                "the target {} is a full URL, which names one backend, and --url was given {} times: give the organization id with several --url",
                client::redact_text(target),
                urls.len()
            ))
            .into());
        }
        let mut endpoints: Vec<(String, Endpoint)> = Vec::with_capacity(urls.len());
        for url in urls {
            let endpoint = client::resolve(target, &self.addressing_of(Some(url.clone())))?;
            if let Some((earlier, _)) = endpoints.iter().find(|(_, e)| e.socket == endpoint.socket)
            {
                return Err(Failure::Usage(format!(
                    "--url {:?} and --url {:?} name the same socket ({}): give each instance once",
                    client::redact_text(earlier),
                    client::redact_text(&url),
                    client::redact(&endpoint.socket)
                ))
                .into());
            }
            endpoints.push((url, endpoint));
        }
        Ok(endpoints.into_iter().map(|(_, e)| e).collect())
    }

    /// Where the URLs came from, for messages.
    fn source_of_urls(&self) -> &'static str {
        if self.urls.is_empty() {
            "in SYNCPROBE_URL"
        } else {
            "with --url"
        }
    }

    /// Credentials, headers and TLS for every socket and REST call of a run; reads
    /// `--token-file` and `--cacert`.
    pub fn client_options(&self) -> anyhow::Result<ClientOptions> {
        // Explicit flags beat the environment: SYNCPROBE_TOKEN only when neither
        // --token nor --token-file is given.
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => Some(token.trim().to_string()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("failed to read the token file {}", path.display()))?;
                let token = text.trim().to_string();
                if token.is_empty() {
                    bail!("the token file {} is empty", path.display());
                }
                Some(token)
            }
            (None, None) => variable(TOKEN_VARIABLE).map(|t| t.trim().to_string()),
        };
        client::mask_param(&self.token_param);
        Ok(ClientOptions {
            token: token.filter(|t| !t.is_empty()),
            token_param: self.token_param.clone(),
            token_in: match self.token_in {
                TokenInArg::Header => client::TokenIn::Header,
                TokenInArg::Query => client::TokenIn::Query,
            },
            origin: self.origin.clone(),
            subprotocols: self.subprotocol.clone(),
            headers: self.headers.clone(),
            tls: Arc::new(tls::Tls::new(self.cacert.clone(), self.insecure)?),
            connect_timeout: self.connect_timeout,
            max_message: self.max_message_size,
            max_body: self.max_body_size,
            ws_config: None,
            frame_aligned: false,
        })
    }
}

/// Parses `Name: value` (also `Name:value`), checking both halves with the `http`
/// crate's own rules.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not a header: write it as 'Name: value'"))?;
    let (name, value) = (name.trim(), value.trim());
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    HeaderValue::from_str(value).map_err(|_| format!("{value:?} is not a valid header value"))?;
    Ok((name.to_string(), value.to_string()))
}

/// Parses `500ms`, `5s`, `2m`, `1h30m`; a bare `0` means zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.starts_with('-') {
        return Err("durations cannot be negative".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (write durations like 500ms, 5s or 2m)"))
}

/// [`parse_duration`] for limits and deadlines, where zero would mean "fail at
/// once": zero is refused.
pub fn positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        Duration::ZERO => Err("must be more than 0 (write durations like 500ms, 5s or 2m)".into()),
        d => Ok(d),
    }
}

/// A count that must be at least 1 (`--connections`, `--items`): zero would
/// make the run check nothing.
pub fn positive_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) if s.trim().starts_with('-') => Err("must be at least 1".into()),
        Err(e) => Err(format!("{s:?} is not a count: {e}")),
    }
}

/// A rate per second: a finite number, 0 or more (0 means "as fast as possible"
/// where a flag says so).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if !rate.is_finite() || rate < 0.0 {
        return Err("a rate is a finite number, 0 or more".into());
    }
    Ok(rate)
}

/// The value of `--fail-on`: any event type name (custom ones are checked later,
/// against `--allow-type`), with the protocol's types offered by shell completion.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventTypeName;

impl clap::builder::TypedValueParser for EventTypeName {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            crate::expect::KNOWN_TYPES
                .iter()
                .filter(|t| **t != "CONNECTED")
                .map(clap::builder::PossibleValue::new),
        ))
    }
}

/// A query parameter name: non-empty, made of URL-safe characters.
fn parse_param_name(s: &str) -> Result<String, String> {
    let valid = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if valid {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a query parameter name (letters, digits, - _ . ~)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        connection: ConnectionArgs,
    }

    fn args(extra: &[&str]) -> ConnectionArgs {
        let mut argv = vec!["x"];
        argv.extend_from_slice(extra);
        Wrapper::try_parse_from(argv).unwrap().connection
    }

    #[test]
    fn connection_flags_become_plain_values() {
        let a = args(&[
            "--url",
            "http://h:1",
            "--path",
            "/s/{org}",
            "--token-in",
            "query",
        ]);
        let addressing = a.addressing();
        assert_eq!(addressing.url.as_deref(), Some("http://h:1"));
        assert_eq!(addressing.path, "/s/{org}");
        let e = a.endpoint("o").unwrap();
        assert_eq!(e.socket.as_str(), "ws://h:1/s/o");
        assert_eq!(a.client_options().unwrap().token_in, client::TokenIn::Query);
    }

    #[test]
    fn several_urls_resolve_in_order_and_duplicates_are_refused() {
        assert_eq!(
            split_urls(" ws://a:1, ws://b:2  http://c:3 ,"),
            ["ws://a:1", "ws://b:2", "http://c:3"]
        );
        let a = args(&["--url", "ws://a:1", "--url", "https://b:2/p"]);
        assert_eq!(a.given_url().as_deref(), Some("ws://a:1"));
        let sockets: Vec<String> = a
            .endpoints("o")
            .unwrap()
            .iter()
            .map(|e| e.socket.to_string())
            .collect();
        assert_eq!(
            sockets,
            ["ws://a:1/api/ws/sync/o", "wss://b:2/p/api/ws/sync/o"]
        );
        let usage = |a: &ConnectionArgs, target: &str| {
            let e = a.endpoints(target).unwrap_err();
            assert_eq!(crate::exit::exit_for(&e), crate::exit::Exit::Usage);
            format!("{e}")
        };
        let twice = args(&["--url", "ws://a:1", "--url", "http://a:1/"]);
        assert!(usage(&twice, "o").contains("name the same socket"));
        assert!(usage(&a, "ws://a:1/api/ws/sync/o").contains("is a full URL"));
        let one = a.endpoint("o").unwrap_err();
        assert!(format!("{one}").contains("talks to one backend"), "{one}");
        let mut set = a.clone();
        set.set_url("ws://z:9".into());
        assert_eq!(set.endpoints("o").unwrap().len(), 1);
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
        assert!(parse_header("X-Bad: a\u{7f}b").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").unwrap_err().contains("500ms"));
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            parse_duration("-5s").unwrap_err(),
            "durations cannot be negative"
        );
        assert_eq!(
            parse_duration(" -0 ").unwrap_err(),
            "durations cannot be negative"
        );
        assert!(positive_duration("0").unwrap_err().contains("more than 0"));
        assert!(positive_duration("0s").unwrap_err().contains("more than 0"));
        assert_eq!(positive_duration("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn counts_rates_and_parameter_names() {
        assert_eq!(positive_count("3"), Ok(3));
        assert_eq!(positive_count("0").unwrap_err(), "must be at least 1");
        assert_eq!(positive_count("-1").unwrap_err(), "must be at least 1");
        assert!(positive_count("x").is_err());
        assert_eq!(parse_rate("0"), Ok(0.0));
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        for bad in ["-1", "nan", "inf", "x"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_param_name("access_key"), Ok("access_key".into()));
        assert!(parse_param_name("").is_err());
        assert!(parse_param_name("a=b").is_err());
    }
}
