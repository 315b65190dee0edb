//! `serve`: run the bundled server until Ctrl-C or SIGTERM; SIGHUP reloads the
//! organization allow-list.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use clap::builder::TypedValueParser;

use super::args::{parse_duration, positive_count, positive_duration};
use crate::exit::{Exit, Failure};
use crate::report::Reporter;
use crate::server::redis::RedisConfig;
use crate::server::security::{
    self, CapResponse, JwtConfig, OrgAllowList, OrgIdSyntax, OriginPattern, RateLimit,
};
use crate::server::{self, Config, queue::WorkerConfig};

#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  syncprobe serve                          # ws://127.0.0.1:3000/api/ws/sync/{org}
  syncprobe serve --listen 127.0.0.1:0     # any free port; the URL is printed
  syncprobe serve --json | jq .            # machine-readable listening record
  SYNCPROBE_JWT_SECRET=s3cret syncprobe serve --allowed-origin 'https://*.example.com'
  syncprobe serve --tls-cert cert.pem --tls-key key.pem   # wss:// and https://

Security is off unless configured; the limits (rate, size, idle time, caps, bytes,
HTTP timeouts) are on with the defaults shown. Close codes: 1002 protocol error, 1007
invalid UTF-8, 1009 too big, 1013 too slow, 4401 token expired, 4403 organization not
allowed, 4408 idle or no answer to the opening ping, 4429 rate limit, 4503 connection
cap. HTTP: 413 event too large, 429 too many paced publishes, 431 head too large, 503
queue full or Redis unavailable. Serves HTTP/1.1 only (no cleartext HTTP/2). Without
--redis a crash loses the queue and the history (clients see a new epoch); with --redis,
instances share events, history and the write-sync queue, and another instance claims a
dead one's items after --claim-after. --shutdown-grace bounds the whole shutdown (exit 0).")]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(
        long,
        value_name = "ADDR",
        env = "SYNCPROBE_LISTEN",
        default_value = "127.0.0.1:3000"
    )]
    pub listen: SocketAddr,
    /// Events retained per organization for `?since=` resume
    #[arg(
        long,
        value_name = "N",
        env = "SYNCPROBE_HISTORY",
        default_value_t = 1000
    )]
    pub history: usize,
    /// Events a client may fall behind before it is closed with 1013
    #[arg(long, value_name = "N", env = "SYNCPROBE_LAG_LIMIT", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub lag_limit: u32,
    /// Concurrent write-sync attempts
    #[arg(long, value_name = "N", env = "SYNCPROBE_WORKERS", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: u16,
    /// Time one simulated write attempt takes
    #[arg(long, value_name = "DURATION", env = "SYNCPROBE_PROCESSING_TIME", default_value = "5ms", value_parser = parse_duration)]
    pub processing_time: Duration,
    /// Retries of a retryable failure before SYNC_FAILED
    #[arg(long, value_name = "N", env = "SYNCPROBE_MAX_RETRIES", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(0..=20))]
    pub max_retries: u32,
    /// Backoff before the first retry; doubles for each further retry
    #[arg(long, value_name = "DURATION", env = "SYNCPROBE_RETRY_BASE", default_value = "10ms", value_parser = parse_duration)]
    pub retry_base: Duration,
    /// Interval of server pings; a client silent for two intervals is dropped (0 = off)
    #[arg(long, value_name = "DURATION", env = "SYNCPROBE_PING_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub ping_interval: Duration,
    /// A write to a client blocked this long drops the client
    #[arg(long, value_name = "DURATION", env = "SYNCPROBE_WRITE_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub write_timeout: Duration,
    /// Longest the whole shutdown may take; connections left then are dropped (exit 0)
    #[arg(long, value_name = "DURATION", env = "SYNCPROBE_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Bytes of history retained per organization (the oldest events go first)
    #[arg(long, value_name = "BYTES", env = "SYNCPROBE_HISTORY_BYTES",
          default_value_t = server::in_process::DEFAULT_HISTORY_BYTES, help_heading = "Limits",
          value_parser = positive_count)]
    pub history_bytes: usize,
    /// Bytes of history retained across organizations (the oldest events go first)
    #[arg(long, value_name = "BYTES", env = "SYNCPROBE_HISTORY_TOTAL_BYTES",
          default_value_t = server::in_process::DEFAULT_HISTORY_TOTAL_BYTES,
          help_heading = "Limits", value_parser = positive_count)]
    pub history_total_bytes: usize,
    /// Bytes a client may fall behind before it is closed with 1013
    #[arg(long, value_name = "BYTES", env = "SYNCPROBE_MAX_QUEUED_BYTES",
          default_value_t = server::in_process::DEFAULT_MAX_QUEUED_BYTES,
          help_heading = "Limits", value_parser = positive_count)]
    pub max_queued_bytes: usize,
    /// How long a large burst waits for a client that is behind before overtaking it
    #[arg(long, value_name = "DURATION", env = "SYNCPROBE_SLOW_GRACE", default_value = "5s",
          value_parser = parse_duration, help_heading = "Limits")]
    pub slow_grace: Duration,
    /// Largest publish body (one event), in bytes (larger: HTTP 413)
    #[arg(long, value_name = "BYTES", env = "SYNCPROBE_MAX_EVENT_SIZE",
          default_value_t = server::DEFAULT_MAX_EVENT_SIZE, help_heading = "Limits",
          value_parser = positive_count)]
    pub max_event_size: usize,
    /// Paced publishes (ratePerSec > 0) running at once (more: HTTP 429)
    #[arg(long, value_name = "N", env = "SYNCPROBE_MAX_PACED_PUBLISHES",
          default_value_t = server::DEFAULT_MAX_PACED_PUBLISHES, help_heading = "Limits",
          value_parser = positive_count)]
    pub max_paced_publishes: usize,
    /// Write-sync items waiting or in progress across organizations; with --redis per organization across instances (more: HTTP 503)
    #[arg(long, value_name = "N", env = "SYNCPROBE_MAX_QUEUED_ITEMS",
          default_value_t = server::DEFAULT_MAX_QUEUED_ITEMS, help_heading = "Limits",
          value_parser = positive_count)]
    pub max_queued_items: usize,
    /// Time a new sync socket has to answer the server's first ping (more: close 4408; 0 = off)
    #[arg(long, value_name = "DURATION", env = "SYNCPROBE_HANDSHAKE_TIMEOUT", default_value = "10s",
          value_parser = parse_duration, help_heading = "Limits")]
    pub handshake_timeout: Duration,
    /// Time a client has to send a request's head, from connecting or from the previous
    /// response (so also the keep-alive idle timeout)
    #[arg(long, value_name = "DURATION", env = "SYNCPROBE_HEADER_TIMEOUT", default_value = "15s",
          value_parser = positive_duration, help_heading = "Limits")]
    pub header_timeout: Duration,
    /// Largest request head, in bytes (larger: HTTP 431)
    #[arg(long, value_name = "BYTES", env = "SYNCPROBE_MAX_HEADER_BYTES",
          default_value_t = server::http::DEFAULT_MAX_HEADER_BYTES, help_heading = "Limits",
          value_parser = clap::value_parser!(u32).range(1024..=(1 << 20)).map(|n| n as usize))]
    pub max_header_bytes: usize,
    /// Connections that have not sent a complete request head yet, in total (more: closed at once)
    #[arg(long, value_name = "N", env = "SYNCPROBE_MAX_PENDING_CONNECTIONS",
          default_value_t = server::http::DEFAULT_MAX_PENDING, help_heading = "Limits",
          value_parser = positive_count)]
    pub max_pending_connections: usize,
    /// Connections that have not sent a complete request head yet, per client IP (more: closed at once)
    #[arg(long, value_name = "N", env = "SYNCPROBE_MAX_PENDING_PER_IP",
          default_value_t = server::http::DEFAULT_MAX_PENDING_PER_IP, help_heading = "Limits",
          value_parser = positive_count)]
    pub max_pending_per_ip: usize,
    /// Serve /metrics on this address instead of the main port (e.g. 127.0.0.1:9090)
    #[arg(
        long,
        value_name = "ADDR",
        env = "SYNCPROBE_METRICS_LISTEN",
        help_heading = "Limits"
    )]
    pub metrics_listen: Option<SocketAddr>,
    /// Organizations with a /metrics label of their own: the busiest by open sockets on
    /// the gauge, the first seen on counters; the rest are summed under org="_other"
    #[arg(long, value_name = "N", env = "SYNCPROBE_METRICS_ORGS",
          default_value_t = server::metrics::DEFAULT_METRICS_ORGS as u32, help_heading = "Limits",
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub metrics_orgs: u32,
    /// Largest client message accepted on sync sockets, in bytes (larger: close 1009)
    #[arg(long, value_name = "BYTES", env = "SYNCPROBE_MAX_MESSAGE_SIZE",
          default_value_t = security::DEFAULT_MAX_MESSAGE_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=(64 << 20)).map(|n| n as usize))]
    pub max_message_size: usize,

    /// Require HS256 tokens signed with this secret (on every upgrade and the REST API)
    #[arg(long, value_name = "SECRET", env = "SYNCPROBE_JWT_SECRET", hide_env_values = true,
          help_heading = "Security", conflicts_with_all = ["jwt_secret_file", "jwt_public_key"])]
    pub jwt_secret: Option<String>,
    /// Read the HS256 secret from a file (surrounding whitespace is ignored)
    #[arg(
        long,
        value_name = "FILE",
        env = "SYNCPROBE_JWT_SECRET_FILE",
        help_heading = "Security",
        conflicts_with = "jwt_public_key"
    )]
    pub jwt_secret_file: Option<PathBuf>,
    /// Require tokens signed by this public key (PEM): RSA for RS256, EC P-256 for ES256
    #[arg(
        long,
        value_name = "FILE",
        env = "SYNCPROBE_JWT_PUBLIC_KEY",
        help_heading = "Security"
    )]
    pub jwt_public_key: Option<PathBuf>,
    /// Tokens must carry this issuer (iss)
    #[arg(
        long,
        value_name = "ISS",
        env = "SYNCPROBE_JWT_ISSUER",
        help_heading = "Security"
    )]
    pub jwt_issuer: Option<String>,
    /// Tokens must carry this audience (aud); without it, aud is not checked
    #[arg(
        long,
        value_name = "AUD",
        env = "SYNCPROBE_JWT_AUDIENCE",
        help_heading = "Security"
    )]
    pub jwt_audience: Option<String>,
    /// Clock tolerance for exp and nbf (at most 1h)
    #[arg(long, value_name = "DURATION", env = "SYNCPROBE_JWT_LEEWAY", default_value = "30s",
          value_parser = parse_leeway, help_heading = "Security")]
    pub jwt_leeway: Duration,
    /// Origin allowed to open sockets and call the API, like https://app.example.com or
    /// https://*.example.com (repeatable or comma-separated; default: any)
    #[arg(
        long = "allowed-origin",
        value_name = "ORIGIN",
        env = "SYNCPROBE_ALLOWED_ORIGINS",
        value_delimiter = ',',
        help_heading = "Security"
    )]
    pub allowed_origins: Vec<OriginPattern>,
    /// How organization ids are checked
    #[arg(
        long,
        value_name = "RULE",
        env = "SYNCPROBE_ORG_ID_SYNTAX",
        default_value = "strict",
        help_heading = "Security"
    )]
    pub org_id_syntax: OrgIdSyntaxArg,
    /// Serve only the organizations listed in this file (one per line, # comments);
    /// SIGHUP or POST /api/ws/admin/reload-orgs re-reads it
    #[arg(
        long,
        value_name = "FILE",
        env = "SYNCPROBE_ORG_ALLOW_FILE",
        help_heading = "Security"
    )]
    pub org_allow_file: Option<PathBuf>,
    /// Client frames per second per connection (more: close 4429; 0 = off)
    #[arg(long, value_name = "N", env = "SYNCPROBE_RATE_LIMIT",
          default_value_t = security::DEFAULT_RATE, help_heading = "Security")]
    pub rate_limit: u32,
    /// Client frames a connection may send at once before --rate-limit applies
    #[arg(long, value_name = "N", env = "SYNCPROBE_RATE_BURST",
          default_value_t = security::DEFAULT_BURST, help_heading = "Security",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: u32,
    /// Close a sync socket silent (no frame, no pong) this long with 4408 (0 = never)
    #[arg(long, value_name = "DURATION", env = "SYNCPROBE_IDLE_TIMEOUT", default_value = "5m",
          value_parser = parse_duration, help_heading = "Security")]
    pub idle_timeout: Duration,
    /// Open sync sockets in total (0 = unlimited)
    #[arg(long, value_name = "N", env = "SYNCPROBE_MAX_CONNECTIONS",
          default_value_t = security::DEFAULT_MAX_CONNECTIONS, help_heading = "Security")]
    pub max_connections: usize,
    /// Open sync sockets per organization (0 = unlimited)
    #[arg(long, value_name = "N", env = "SYNCPROBE_MAX_CONNECTIONS_PER_ORG",
          default_value_t = security::DEFAULT_MAX_CONNECTIONS_PER_ORG, help_heading = "Security")]
    pub max_connections_per_org: usize,
    /// Over a cap: refuse the upgrade with HTTP 503, or accept and close with 4503
    #[arg(
        long,
        value_name = "HOW",
        env = "SYNCPROBE_CAP_RESPONSE",
        default_value = "http",
        help_heading = "Security"
    )]
    pub cap_response: CapResponseArg,
    /// Upgrade attempts per second per client IP (more: HTTP 429; 0 = off)
    #[arg(
        long,
        value_name = "N",
        env = "SYNCPROBE_IP_UPGRADE_RATE",
        default_value_t = 0,
        help_heading = "Security"
    )]
    pub ip_upgrade_rate: u32,
    /// Upgrade attempts a client IP may make at once before --ip-upgrade-rate applies
    #[arg(long, value_name = "N", env = "SYNCPROBE_IP_UPGRADE_BURST",
          default_value_t = security::DEFAULT_IP_BURST, help_heading = "Security",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub ip_upgrade_burst: u32,
    /// Share events, their history and the write-sync queue with other instances through this Redis (redis://[:PASSWORD@]HOST:PORT[/DB], or rediss:// for TLS)
    #[arg(
        long,
        value_name = "URL",
        env = "SYNCPROBE_REDIS_URL",
        hide_env_values = true,
        help_heading = "Several instances"
    )]
    pub redis: Option<String>,
    /// With --redis: a write-sync item another instance took and has not touched for this long (it died or lost Redis) is claimed and finished by an idle worker here
    #[arg(long, value_name = "DURATION", env = "SYNCPROBE_CLAIM_AFTER", default_value = "30s",
          value_parser = positive_duration, help_heading = "Several instances")]
    pub claim_after: Duration,
    /// Serve https:// and wss:// with this certificate chain (PEM; needs --tls-key)
    #[arg(
        long,
        value_name = "FILE",
        env = "SYNCPROBE_TLS_CERT",
        requires = "tls_key",
        help_heading = "Security"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(
        long,
        value_name = "FILE",
        env = "SYNCPROBE_TLS_KEY",
        requires = "tls_cert",
        help_heading = "Security"
    )]
    pub tls_key: Option<PathBuf>,
}

impl ServeArgs {
    /// The server configuration; reads the key, secret, allow-list and TLS files.
    pub fn config(&self) -> anyhow::Result<Config> {
        if self.max_queued_bytes < 2 * self.max_event_size {
            return Err(Failure::Usage(format!(
                "--max-queued-bytes ({}) must be at least twice --max-event-size ({}), or one event could close every client",
                self.max_queued_bytes, self.max_event_size
            ))
            .into());
        }
        Ok(Config {
            history: self.history,
            history_bytes: self.history_bytes,
            history_total_bytes: self.history_total_bytes,
            lag_limit: self.lag_limit as usize,
            max_queued_bytes: self.max_queued_bytes,
            slow_grace: self.slow_grace,
            max_event_size: self.max_event_size,
            max_paced_publishes: self.max_paced_publishes,
            max_queued_items: self.max_queued_items,
            handshake_timeout: self.handshake_timeout,
            http: server::http::HttpLimits {
                header_timeout: self.header_timeout,
                max_header_bytes: self.max_header_bytes,
                max_pending: self.max_pending_connections,
                max_pending_per_ip: self.max_pending_per_ip,
            },
            metrics_elsewhere: self.metrics_listen.is_some(),
            metrics_orgs: self.metrics_orgs as usize,
            worker: WorkerConfig {
                workers: self.workers as usize,
                processing_time: self.processing_time,
                max_retries: self.max_retries,
                retry_base: self.retry_base,
            },
            ping_interval: self.ping_interval,
            write_timeout: self.write_timeout,
            shutdown_grace: self.shutdown_grace,
            max_message_size: self.max_message_size,
            jwt: self.jwt()?,
            allowed_origins: self.allowed_origins.clone(),
            org_id_syntax: match self.org_id_syntax {
                OrgIdSyntaxArg::Strict => OrgIdSyntax::Strict,
                OrgIdSyntaxArg::Any => OrgIdSyntax::Any,
            },
            org_allow_list: self
                .org_allow_file
                .as_deref()
                .map(OrgAllowList::load)
                .transpose()?,
            rate_limit: Some(RateLimit {
                per_second: self.rate_limit,
                burst: self.rate_burst,
            }),
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            max_connections_per_org: self.max_connections_per_org,
            cap_response: match self.cap_response {
                CapResponseArg::Http => CapResponse::Http,
                CapResponseArg::Close => CapResponse::Close,
            },
            ip_upgrade_limit: Some(RateLimit {
                per_second: self.ip_upgrade_rate,
                burst: self.ip_upgrade_burst,
            }),
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(server::tls::server_config(cert, key)?),
                _ => None,
            },
            redis: match &self.redis {
                Some(url) => Some(
                    RedisConfig::new(url).map_err(|e| Failure::Usage(format!("--redis: {e:#}")))?,
                ),
                None => None,
            },
            claim_after: self.claim_after,
        })
    }

    fn jwt(&self) -> anyhow::Result<Option<JwtConfig>> {
        let mut jwt = if let Some(secret) = &self.jwt_secret {
            if secret.is_empty() {
                return Err(Failure::Usage(
                    "--jwt-secret is empty: the JWT secret is empty".into(),
                )
                .into());
            }
            JwtConfig::hs256(secret.as_bytes()).context("--jwt-secret")?
        } else if let Some(path) = &self.jwt_secret_file {
            let secret = std::fs::read_to_string(path).with_context(|| {
                format!("failed to read the JWT secret file {}", path.display())
            })?;
            JwtConfig::hs256(secret.trim().as_bytes())
                .with_context(|| format!("the JWT secret file {}", path.display()))?
        } else if let Some(path) = &self.jwt_public_key {
            let pem = std::fs::read(path)
                .with_context(|| format!("failed to read the JWT public key {}", path.display()))?;
            JwtConfig::public_key_pem(&pem)
                .with_context(|| format!("the JWT public key {}", path.display()))?
        } else {
            if self.jwt_issuer.is_some() || self.jwt_audience.is_some() {
                return Err(Failure::Usage(
                    "--jwt-issuer and --jwt-audience need --jwt-secret, --jwt-secret-file or --jwt-public-key".into(),
                )
                .into());
            }
            return Ok(None);
        };
        jwt.issuer = self.jwt_issuer.clone();
        jwt.audience = self.jwt_audience.clone();
        jwt.leeway = self.jwt_leeway;
        Ok(Some(jwt))
    }
}

/// `--jwt-leeway`: a duration of at most [`security::MAX_LEEWAY`].
fn parse_leeway(s: &str) -> Result<Duration, String> {
    let leeway = parse_duration(s)?;
    if leeway > security::MAX_LEEWAY {
        return Err("the leeway may be at most 1h".into());
    }
    Ok(leeway)
}

/// `--org-id-syntax`: the flag's spelling of [`OrgIdSyntax`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OrgIdSyntaxArg {
    /// 1–128 characters from A-Z a-z 0-9 . _ : -, not . or ..
    Strict,
    /// Any non-empty id
    Any,
}

/// `--cap-response`: the flag's spelling of [`CapResponse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CapResponseArg {
    /// Refuse the upgrade with HTTP 503 and a JSON body
    Http,
    /// Accept the upgrade, then close with 4503 (browsers cannot read an HTTP status)
    Close,
}

pub async fn run(args: ServeArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    let config = args.config()?;
    let scheme = if config.tls.is_some() { "wss" } else { "ws" };
    // Sockets are files: a common service default of 1,024 lets a few hundred slow
    // peers lock everyone out, so take what the hard limit allows.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let listener = server::bind(args.listen)
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("failed to read the bound address")?;
    let metrics = match args.metrics_listen {
        Some(at) => Some(
            server::bind(at)
                .with_context(|| format!("failed to listen on {at} (--metrics-listen)"))?,
        ),
        None => None,
    };
    let (state, router) = server::app(config);
    // Signal handlers first: a supervisor may stop the server as soon as it is told
    // the address.
    let interrupt = super::interrupted();
    reporter.listening(addr, &format!("{scheme}://{addr}"));
    if let Some(id) = state.instance_id() {
        reporter.note(&format!("sharing events through Redis as instance {id}"));
    }
    if let Some(listener) = metrics {
        let at = listener
            .local_addr()
            .context("failed to read the bound address")?;
        reporter.note(&format!("metrics on http://{at}/metrics"));
        tokio::spawn(server::serve_metrics(listener, state.clone()));
    }
    let serving = server::serve_app(listener, state.clone(), router, interrupt);
    tokio::pin!(serving);
    let mut hangups = hangups();
    let served = loop {
        tokio::select! {
            served = &mut serving => break served,
            Some(()) = hangups.recv() => reload_on_hangup(&state, reporter),
        }
    };
    served?;
    reporter.note("shut down: every socket closed with 1001");
    Ok(Exit::Success)
}

/// SIGHUP: re-reads the organization allow-list, saying what it did.
fn reload_on_hangup(state: &server::Shared, reporter: &Reporter) {
    match state.security.reload_orgs() {
        Ok(reloaded) => reporter.note(&format!(
            "SIGHUP: reloaded the organization allow-list: {}, closing {}",
            crate::text::count(reloaded.organizations as u64, "organization"),
            crate::text::count(reloaded.closing as u64, "connection")
        )),
        Err(e) => reporter.warn(&format!("SIGHUP: the allow-list was not reloaded: {e:#}")),
    }
}

/// SIGHUPs, one message each (none on platforms without them).
fn hangups() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    if tx.send(()).await.is_err() {
                        return;
                    }
                }
            });
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}
