//! Reaching a backend: where the socket and the REST API are ([`Endpoint`]), the
//! credentials and TLS settings every client subcommand shares ([`ClientOptions`]),
//! opening sockets step by step ([`ws`]), REST calls ([`http`]), and the reconnect
//! policy ([`backoff`]).

pub mod aligned;
pub mod backoff;
pub mod error;
pub mod http;
pub mod proxy;
pub mod recorded;
pub mod session;
pub mod tls;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use crate::exit::Failure;
use url::Url;

/// The backend client subcommands talk to when neither `--url` nor `SYNCPROBE_URL`
/// says otherwise: the default address of existing backends and of `serve`.
pub const DEFAULT_URL: &str = "ws://localhost:3000";

/// Where the token goes on the upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenIn {
    /// `Authorization: Bearer …`.
    Header,
    /// The `token` query parameter, as browsers must.
    Query,
}

/// How targets are addressed: the base URL, the socket path template and the REST
/// base, as the user gave them (`None`: the defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addressing {
    /// Base URL of the backend (`ws`, `wss`, `http` or `https`).
    pub url: Option<String>,
    /// `url` was given on the command line (not by the environment): a target that
    /// is a full URL must then agree with it.
    pub url_is_flag: bool,
    /// Path of the sync socket; `{org}` is replaced by the organization id.
    pub path: String,
    /// Base URL of the REST API (default: derived from the socket URL).
    pub api_url: Option<String>,
}

impl Default for Addressing {
    fn default() -> Self {
        Addressing {
            url: None,
            url_is_flag: false,
            path: crate::protocol::DEFAULT_SYNC_PATH.to_string(),
            api_url: None,
        }
    }
}

/// Where one organization's socket and its REST API are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub org: String,
    /// The socket URL (`ws://` or `wss://`), without credentials or resume parameters.
    pub socket: Url,
    /// The REST base (`http://` or `https://`), ending in `/`.
    pub api: Url,
}

impl Endpoint {
    /// A REST URL under the API base, e.g. `api/pems/write-sync`.
    pub fn rest(&self, path: &str) -> Url {
        self.api
            .join(path.trim_start_matches('/'))
            .expect("a relative path always joins")
    }
}

fn to_ws_scheme(url: &mut Url) -> anyhow::Result<()> {
    let scheme = match url.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => bail!("unsupported URL scheme {other:?} in {url}: use ws, wss, http or https"),
    };
    url.set_scheme(scheme)
        .map_err(|()| anyhow::anyhow!("cannot use scheme {scheme} with {url}"))
}

fn to_http_scheme(url: &mut Url) -> anyhow::Result<()> {
    let scheme = match url.scheme() {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        other => bail!("unsupported URL scheme {other:?} in {url}: use ws, wss, http or https"),
    };
    url.set_scheme(scheme)
        .map_err(|()| anyhow::anyhow!("cannot use scheme {scheme} with {url}"))
}

fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.set_query(None);
    url.set_fragment(None);
    url
}

fn usage(message: String) -> anyhow::Error {
    Failure::Usage(message).into()
}

/// Parses a URL given by the user (`what` names where: `--url`, the target), as a
/// usage error when it cannot address a backend.
fn parse_given(given: &str, what: &str) -> anyhow::Result<Url> {
    let shown = redact_text(given);
    let trimmed = given.trim();
    if trimmed.is_empty() {
        return Err(usage(format!(
            "{what} is empty: give a URL such as {DEFAULT_URL}"
        )));
    }
    if !trimmed.contains("://") {
        return Err(usage(format!(
            "{what} {shown:?} has no scheme: did you mean ws://{}?",
            redact_text(trimmed)
        )));
    }
    let url = Url::parse(trimmed)
        .map_err(|e| usage(format!("{what} {shown:?} is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "ws" | "wss" | "http" | "https") {
        return Err(usage(format!(
            "{what} {shown:?} has the scheme {}: use ws, wss, http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(usage(format!("{what} {shown:?} has no host")));
    }
    Ok(url)
}

/// Resolves `target` (an organization id or a full socket URL) against the flags.
/// Anything that cannot address a backend is a usage error (exit 2).
///
/// - `org-rio` → `{--url}{--path}` with `{org}` replaced, REST API at `--url`.
/// - `ws://host:3000/api/ws/sync/org-rio` → that socket; the organization is the last
///   path segment, the REST API the part of the path before the `--path` template.
pub fn resolve(target: &str, args: &Addressing) -> anyhow::Result<Endpoint> {
    if !args.path.contains("{org}") {
        return Err(usage(format!(
            "--path {:?} has no {{org}} placeholder",
            args.path
        )));
    }
    let (org, socket, derived_api) = if target.contains("://") {
        let mut socket = parse_given(target, "the target")?;
        to_ws_scheme(&mut socket)?;
        let org = socket
            .path_segments()
            .and_then(|mut segments| segments.rfind(|s| !s.is_empty()))
            .map(percent_decode)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                usage(format!(
                    "{} has no organization id in its path",
                    redact(&socket)
                ))
            })?;
        let prefix = args.path.split("{org}").next().unwrap_or("");
        let mut api = socket.clone();
        let path = socket.path();
        let base_path = path
            .rfind(prefix.trim_end_matches('/'))
            .filter(|_| !prefix.is_empty())
            .map_or("/", |at| &path[..at]);
        api.set_path(base_path);
        to_http_scheme(&mut api)?;
        check_same_base(&socket, args)?;
        (org, socket, with_trailing_slash(api))
    } else {
        if target.trim().is_empty() {
            return Err(usage("the organization id is empty".into()));
        }
        let given = args.url.as_deref().unwrap_or(DEFAULT_URL);
        let mut base = parse_given(given, "--url")?;
        to_ws_scheme(&mut base)?;
        let mut socket = base.clone();
        let encoded = percent_encoding::utf8_percent_encode(target, SEGMENT).to_string();
        let path = format!(
            "{}{}",
            base.path().trim_end_matches('/'),
            args.path.replace("{org}", &encoded)
        );
        socket.set_path(&path);
        let mut api = base;
        to_http_scheme(&mut api)?;
        (target.to_string(), socket, with_trailing_slash(api))
    };
    let api = match &args.api_url {
        Some(given) => {
            let mut api = parse_given(given, "--api-url")?;
            to_http_scheme(&mut api)?;
            with_trailing_slash(api)
        }
        None => derived_api,
    };
    Ok(Endpoint { org, socket, api })
}

/// A target given as a full URL names its backend itself: a `--url` that names
/// another one is a usage error (which one was meant?), not silently ignored.
fn check_same_base(socket: &Url, args: &Addressing) -> anyhow::Result<()> {
    let Some(given) = args.url.as_deref().filter(|_| args.url_is_flag) else {
        return Ok(());
    };
    let mut base = parse_given(given, "--url")?;
    to_ws_scheme(&mut base)?;
    let same = socket.origin() == base.origin()
        && socket.path().starts_with(base.path().trim_end_matches('/'));
    if same {
        return Ok(());
    }
    Err(usage(format!(
        "the target {} is a full URL and --url {} names another backend: give the organization id with --url, or the full URL alone",
        redact(socket),
        redact(&base)
    )))
}

/// The error when none of several URLs answered: the last failure, whose exit code,
/// typed causes and hints it keeps, under a line naming every URL tried and why the
/// earlier ones failed. `failures` are `(URL as shown, error)`, in the order tried;
/// one failure is returned as it is.
pub fn none_answered(mut failures: Vec<(String, anyhow::Error)>) -> anyhow::Error {
    let Some((last_url, last)) = failures.pop() else {
        return anyhow::anyhow!("no URL to try");
    };
    if failures.is_empty() {
        return last;
    }
    let earlier: Vec<String> = failures
        .iter()
        .map(|(url, e)| named_failure(url, e))
        .collect();
    last.context(format!(
        "none of the {} URLs answered ({}); the last, {last_url}, failed",
        failures.len() + 1,
        earlier.join("; ")
    ))
}

/// Whether a REST call failed before its request could be sent (DNS, TCP, TLS,
/// the connect timeout): nothing reached the backend, so another instance may be
/// tried without doing anything twice.
pub fn unreached(e: &anyhow::Error) -> bool {
    error::find::<reqwest::Error>(e).is_some_and(reqwest::Error::is_connect)
}

/// `URL: error`, without repeating a URL the error already names.
pub fn named_failure(url: &str, e: &anyhow::Error) -> String {
    let message = format!("{e:#}");
    if message.contains(url) {
        message
    } else {
        format!("{url}: {message}")
    }
}

/// What the token that was refused says about itself (decoded locally, not
/// verified): ` (the token sent expired at …)`, or nothing.
pub(crate) fn token_facts(token: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match crate::claims::unverified_exp(token) {
        Some(exp) if exp <= now => format!(
            " (the token sent expired at {}, {} ago)",
            humantime::format_rfc3339_seconds(
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(exp)
            ),
            humantime::format_duration(std::time::Duration::from_secs(now - exp))
        ),
        _ => String::new(),
    }
}

/// Query parameters whose values are secrets, masked wherever a URL is shown.
pub const SECRET_PARAMS: &[&str] = &["token", "access_token"];

/// Names added to [`SECRET_PARAMS`] for this process (`--token-param NAME`).
static MASKED_PARAMS: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// Masks the values of the query parameter `name` wherever a URL is shown from now
/// on, as [`SECRET_PARAMS`] are.
pub fn mask_param(name: &str) {
    if is_secret_param(name) {
        return;
    }
    if let Ok(mut names) = MASKED_PARAMS.write() {
        names.push(name.to_string());
    }
}

fn is_secret_param(name: &str) -> bool {
    SECRET_PARAMS.contains(&name)
        || MASKED_PARAMS
            .read()
            .map_or(true, |names| names.iter().any(|n| n == name))
}

fn secret_params() -> Vec<String> {
    let mut names: Vec<String> = SECRET_PARAMS.iter().map(|s| s.to_string()).collect();
    if let Ok(extra) = MASKED_PARAMS.read() {
        names.extend(extra.iter().cloned());
    }
    names
}

/// `url` as shown to people: the password of its userinfo and the values of
/// [`SECRET_PARAMS`] replaced by `***`.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    if url.query_pairs().any(|(k, _)| is_secret_param(&k)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_param(&k) {
                    "***".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

/// [`redact`] for text that may not parse as a URL: a `user:password@` before the
/// host and the values of secret parameters (`token=`, `access_token=`, the
/// `--token-param`) are masked all the same.
pub fn redact_text(text: &str) -> String {
    if let Ok(url) = Url::parse(text) {
        return redact(&url);
    }
    let mut shown = text.to_string();
    if let Some(scheme_end) = shown.find("://") {
        let rest = &shown[scheme_end + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            let start = scheme_end + 3 + colon + 1;
            shown.replace_range(start..scheme_end + 3 + at, "***");
        }
    }
    for param in secret_params() {
        let key = format!("{param}=");
        let mut from = 0;
        while let Some(found) = shown[from..].find(&key) {
            let start = from + found;
            let boundary = start == 0 || matches!(shown.as_bytes()[start - 1], b'?' | b'&');
            let value_start = start + key.len();
            let value_end = shown[value_start..]
                .find(['&', '#'])
                .map_or(shown.len(), |i| value_start + i);
            if boundary {
                shown.replace_range(value_start..value_end, "***");
            }
            from = value_start.min(shown.len());
        }
    }
    shown
}

/// A path segment decoded as a path segment (RFC 3986): `+` and `&` stay themselves,
/// `%2F` becomes `/`; invalid UTF-8 is replaced, never dropped.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Characters encoded in an organization id placed in a path segment: everything but
/// RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Credentials, headers and TLS, shared by every socket and REST call of a run.
#[derive(Clone)]
pub struct ClientOptions {
    pub token: Option<String>,
    pub token_in: TokenIn,
    /// The query parameter that carries the token with [`TokenIn::Query`].
    pub token_param: String,
    pub origin: Option<String>,
    pub subprotocols: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub tls: Arc<tls::Tls>,
    pub connect_timeout: Duration,
    /// Largest WebSocket message or frame accepted from a server, in bytes.
    pub max_message: usize,
    /// Largest REST answer body read, in bytes.
    pub max_body: usize,
    /// WebSocket buffer and size settings (`None`: tungstenite's defaults); `load`
    /// shrinks the buffers so thousands of sockets stay cheap.
    pub ws_config: Option<tokio_tungstenite::tungstenite::protocol::WebSocketConfig>,
    /// Reads aligned on frames until CONNECTED, so that the socket can be handed to
    /// a reader of its own (`load`; see [`aligned`]).
    pub frame_aligned: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The addressing flags as `--url U --path P --api-url A` would give them.
    fn args(extra: &[&str]) -> Addressing {
        let mut addressing = Addressing::default();
        for pair in extra.chunks(2) {
            let value = Some(pair[1].to_string());
            match pair[0] {
                "--url" => {
                    addressing.url = value;
                    addressing.url_is_flag = true;
                }
                "--path" => addressing.path = pair[1].to_string(),
                "--api-url" => addressing.api_url = value,
                other => panic!("unknown flag {other}"),
            }
        }
        addressing
    }

    fn resolved(target: &str, extra: &[&str]) -> (String, String, String) {
        let e = resolve(target, &args(extra)).unwrap();
        (e.org, e.socket.to_string(), e.api.to_string())
    }

    #[test]
    fn an_organization_id_uses_the_default_base() {
        assert_eq!(
            resolved("org-rio", &[]),
            (
                "org-rio".into(),
                "ws://localhost:3000/api/ws/sync/org-rio".into(),
                "http://localhost:3000/".into()
            )
        );
    }

    #[test]
    fn base_url_schemes_and_prefixes() {
        let (_, socket, api) = resolved("o", &["--url", "https://example.test/prefix/"]);
        assert_eq!(socket, "wss://example.test/prefix/api/ws/sync/o");
        assert_eq!(api, "https://example.test/prefix/");
        let (_, socket, api) = resolved("o", &["--url", "http://h:8080"]);
        assert_eq!(
            (socket.as_str(), api.as_str()),
            ("ws://h:8080/api/ws/sync/o", "http://h:8080/")
        );
        let (_, socket, _) = resolved("o", &["--url", "ws://h", "--path", "/sock/{org}/live"]);
        assert_eq!(socket, "ws://h/sock/o/live");
        let (_, _, api) = resolved("o", &["--api-url", "https://api.test/v1"]);
        assert_eq!(api, "https://api.test/v1/");
    }

    #[test]
    fn organization_ids_are_percent_encoded() {
        let (org, socket, _) = resolved("org rio/1", &[]);
        assert_eq!(org, "org rio/1");
        assert_eq!(socket, "ws://localhost:3000/api/ws/sync/org%20rio%2F1");
    }

    #[test]
    fn path_segments_decode_as_path_segments() {
        for (segment, org) in [
            ("org+1", "org+1"),
            ("a&b=c", "a&b=c"),
            ("a%2Fb", "a/b"),
            ("%C3%A9quipe", "équipe"),
            ("o%20p", "o p"),
        ] {
            let (decoded, _, _) = resolved(&format!("ws://h/api/ws/sync/{segment}"), &[]);
            assert_eq!(decoded, org, "{segment}");
        }
        for org in ["org+1", "a&b=c", "a/b", "équipe", "x?y#z"] {
            let e = resolve(org, &args(&[])).unwrap();
            let back = resolve(e.socket.as_str(), &args(&[])).unwrap();
            assert_eq!(back.org, org, "{}", e.socket);
        }
    }

    #[test]
    fn a_full_url_names_the_organization() {
        assert_eq!(
            resolved("wss://h.test/base/api/ws/sync/org-x?a=1", &[]),
            (
                "org-x".into(),
                "wss://h.test/base/api/ws/sync/org-x?a=1".into(),
                "https://h.test/base/".into()
            )
        );
        let (org, socket, api) = resolved("http://127.0.0.1:9/api/ws/sync/o%20p", &[]);
        assert_eq!(
            (org.as_str(), socket.as_str(), api.as_str()),
            (
                "o p",
                "ws://127.0.0.1:9/api/ws/sync/o%20p",
                "http://127.0.0.1:9/"
            )
        );
    }

    #[test]
    fn bad_targets_are_usage_errors_that_say_why() {
        let err = |t: &str, extra: &[&str]| {
            let e = resolve(t, &args(extra)).unwrap_err();
            assert_eq!(crate::exit::exit_for(&e), crate::exit::Exit::Usage, "{e:#}");
            format!("{e:#}")
        };
        assert!(err("ftp://h/x", &[]).contains("the scheme ftp: use ws, wss"));
        assert!(err("o", &["--url", "ftp://h"]).contains("the scheme ftp"));
        assert!(err("ws://h/", &[]).contains("no organization id"));
        assert!(err("ws://h/%20", &[]).contains("no organization id"));
        assert!(err("", &[]).contains("empty"));
        assert!(err("  ", &[]).contains("empty"));
        assert!(err("o", &["--url", ""]).contains("--url is empty"));
        assert!(err("o", &["--url", "ws://"]).contains("not a valid URL"));
        assert!(err("o", &["--url", "not a url"]).contains("no scheme"));
        assert_eq!(
            err("o", &["--url", "localhost:3000"]),
            "--url \"localhost:3000\" has no scheme: did you mean ws://localhost:3000?"
        );
        assert!(err("o", &["--path", "/no/placeholder"]).contains("{org}"));
        assert!(err("o", &["--api-url", "h:1"]).contains("--api-url"));
        // A password in a bad URL is not repeated.
        let shown = err("o", &["--url", "ftp://u:hunter2@h"]);
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn secrets_are_masked_in_shown_urls() {
        let url = Url::parse("wss://u:pw@h/s?token=abc&x=1&access_token=def").unwrap();
        assert_eq!(
            redact(&url),
            "wss://u:***@h/s?token=***&x=1&access_token=***"
        );
        assert_eq!(
            redact_text("ws://u:pw@h:1:2/?token=abc"),
            "ws://u:***@h:1:2/?token=***"
        );
        assert_eq!(redact_text("ws://h/?mytoken=1"), "ws://h/?mytoken=1");
        assert_eq!(redact(&Url::parse("ws://h/o").unwrap()), "ws://h/o");
    }

    #[test]
    fn a_full_url_and_another_url_flag_are_a_usage_error() {
        let target = "ws://h:1/base/api/ws/sync/org-x";
        for agreeing in ["ws://h:1", "http://h:1/", "ws://h:1/base"] {
            let (org, socket, _) = resolved(target, &["--url", agreeing]);
            assert_eq!((org.as_str(), socket.as_str()), ("org-x", target));
        }
        for other in [
            "ws://h:2",
            "wss://h:1",
            "ws://other:1",
            "ws://h:1/elsewhere",
        ] {
            let e = resolve(target, &args(&["--url", other])).unwrap_err();
            assert_eq!(crate::exit::exit_for(&e), crate::exit::Exit::Usage);
            assert!(format!("{e}").contains("names another backend"), "{e}");
        }
        // A base from the environment is only a default: the full URL wins.
        let mut from_env = args(&["--url", "ws://other:9"]);
        from_env.url_is_flag = false;
        assert_eq!(resolve(target, &from_env).unwrap().socket.as_str(), target);
    }

    #[test]
    fn a_named_token_parameter_is_masked() {
        assert_eq!(redact_text("ws://h/?sig=1&x=2"), "ws://h/?sig=1&x=2");
        mask_param("sig");
        assert_eq!(redact_text("ws://h/?sig=1&x=2"), "ws://h/?sig=***&x=2");
        let url = Url::parse("ws://h/o?x=1&sig=s3cr3t").unwrap();
        assert_eq!(redact(&url), "ws://h/o?x=1&sig=***");
    }

    #[test]
    fn rest_paths_join_the_api_base() {
        let e = resolve("o", &args(&["--url", "http://h/prefix"])).unwrap();
        assert_eq!(
            e.rest("/api/pems/write-sync").as_str(),
            "http://h/prefix/api/pems/write-sync"
        );
    }
}
