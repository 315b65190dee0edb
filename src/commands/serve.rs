//! `serve`: run the bundled server until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::cli::parse_duration;
use crate::exit::Exit;
use crate::report::Reporter;
use crate::server::{self, Config, queue::WorkerConfig};

#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  syncprobe serve                          # ws://127.0.0.1:3000/api/ws/sync/{org}
  syncprobe serve --listen 127.0.0.1:0     # any free port; the URL is printed
  syncprobe serve --json | jq .            # machine-readable listening record")]
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
    #[arg(long, value_name = "DURATION", env = "SYNCPROBE_WRITE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub write_timeout: Duration,
    /// Time given to clients to finish the close handshake on shutdown
    #[arg(long, value_name = "DURATION", env = "SYNCPROBE_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Largest client message accepted on sync sockets, in bytes
    #[arg(
        long,
        value_name = "BYTES",
        env = "SYNCPROBE_MAX_MESSAGE_SIZE",
        default_value_t = 65536
    )]
    pub max_message_size: usize,
}

impl ServeArgs {
    pub fn config(&self) -> Config {
        Config {
            history: self.history,
            lag_limit: self.lag_limit as usize,
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
        }
    }
}

pub async fn run(args: ServeArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("failed to read the bound address")?;
    reporter.listening(addr, &format!("ws://{addr}"));
    server::serve(listener, args.config(), super::interrupted()).await?;
    reporter.note("shut down: every socket closed with 1001");
    Ok(Exit::Success)
}
