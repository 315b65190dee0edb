//! `proxy`: put a fault-injecting proxy (`src/proxy/`) between a frontend and its
//! backend, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::args::positive_duration;
use crate::exit::{Exit, Failure};
use crate::proxy::faults::{self, Fault, FaultSpec};
use crate::proxy::{self, Config, DecisionLog, Shared};
use crate::report::Reporter;

#[derive(Debug, Args)]
#[command(after_long_help = "Faults:
  Network faults (toxiproxy's names and meaning) take VALUE[:DIRECTION][:P]: the
  direction is up (client to upstream), down or both (the default); P, from 0 to 1,
  is the chance that the fault applies to a connection (default 1), decided once per
  connection and direction. Message faults act on the upstream's text frames whose
  `type` matches (and every --where rule); their P is drawn per frame. Event types
  are the protocol's (PROCESSING stands for SYNC_PROCESSING); others exit 2.

Profiles (--profile), Chrome DevTools' presets (round trip, down, up):
  slow-3g   Chrome's \"3G\" (once \"Slow 3G\"): 2000 ms, 400 kbit/s, 400 kbit/s
  fast-3g   Chrome's \"Slow 4G\" (once \"Fast 3G\"): 562.5 ms, 1.44 Mbit/s, 675 kbit/s
  slow-4g   the same figures as fast-3g (Chrome renamed it)
  fast-4g   Chrome's \"Fast 4G\": 165 ms, 8.1 Mbit/s, 1.35 Mbit/s
  offline   refuse every connection until POST /online
  Half the round trip is added each way.

Control API (--control ADDR, JSON):
  GET /faults            the faults, with ids, and whether offline
  POST /faults           add {\"fault\": \"drop\", \"value\": \"SYNC_PROCESSING:0.5\", \"where\": [\"pfaId=x\"]}
  DELETE /faults/{id}    remove one
  POST /reset            remove every fault, go online
  POST /offline          drop every connection, refuse new ones (\"toggle wifi\")
  POST /online           accept connections again

Examples:
  syncprobe proxy --listen 127.0.0.1:3001 --upstream ws://127.0.0.1:3000 --profile slow-3g
  syncprobe proxy --upstream http://127.0.0.1:3000 --drop PROCESSING:0.3 --seed 7 --log decisions.ndjson
  syncprobe proxy --upstream http://127.0.0.1:3000 --cut-every 20s --cut-for 5s
  syncprobe proxy --upstream http://127.0.0.1:3000 --control 127.0.0.1:3002 &
  curl -X POST http://127.0.0.1:3002/offline; sleep 5; curl -X POST http://127.0.0.1:3002/online

Prints `listening on ws://ADDR` (with --json the `listening` record of `serve`, then a
second one for the control API, whose url is http://). Runs until Ctrl-C (exit 0).")]
pub struct ProxyArgs {
    /// Address to listen on, for HTTP and WebSocket (port 0 picks a free port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3001")]
    pub listen: SocketAddr,
    /// The backend's base URL (ws, wss, http or https; a path is a prefix)
    #[arg(long, value_name = "URL", value_parser = parse_upstream)]
    pub upstream: url::Url,
    /// Delay every chunk by DURATION (from its arrival)
    #[arg(long, value_name = "DURATION[:DIR][:P]", value_parser = latency, help_heading = "Network faults")]
    pub latency: Vec<FaultSpec>,
    /// Vary every --latency by up to this much either way
    #[arg(long, value_name = "DURATION", requires = "latency", value_parser = positive_duration, help_heading = "Network faults")]
    pub jitter: Option<Duration>,
    /// Limit the rate: 500kbit, 2mbit, 64kB (per second)
    #[arg(long, value_name = "RATE[:DIR][:P]", value_parser = bandwidth, help_heading = "Network faults")]
    pub bandwidth: Vec<FaultSpec>,
    /// Split writes into pieces of about BYTES (default 64), 1 ms apart
    #[arg(long, value_name = "BYTES[:DIR][:P]", num_args = 0..=1, default_missing_value = "",
          value_parser = slicer, help_heading = "Network faults")]
    pub slicer: Vec<FaultSpec>,
    /// Stop forwarding (data is dropped), then close after DURATION (none: never)
    #[arg(long, value_name = "DURATION[:DIR][:P]", num_args = 0..=1, default_missing_value = "",
          value_parser = timeout, help_heading = "Network faults")]
    pub timeout: Vec<FaultSpec>,
    /// Reset the TCP connection (RST) when data flows, after DURATION (none: at once)
    #[arg(long, value_name = "DURATION[:DIR][:P]", num_args = 0..=1, default_missing_value = "",
          value_parser = reset_peer, help_heading = "Network faults")]
    pub reset_peer: Vec<FaultSpec>,
    /// Close the connection once BYTES went through
    #[arg(long, value_name = "BYTES[:DIR][:P]", value_parser = limit_data, help_heading = "Network faults")]
    pub limit_data: Vec<FaultSpec>,
    /// A browser's network preset (Chrome DevTools' figures, see below)
    #[arg(long, value_name = "PROFILE", help_heading = "Network faults")]
    pub profile: Option<Profile>,
    /// Drop every connection this often (and refuse new ones for --cut-for)
    #[arg(long, value_name = "DURATION", requires = "cut_for", value_parser = positive_duration, help_heading = "Network faults")]
    pub cut_every: Option<Duration>,
    /// How long each cut lasts
    #[arg(long, value_name = "DURATION", requires = "cut_every", value_parser = positive_duration, help_heading = "Network faults")]
    pub cut_for: Option<Duration>,
    /// Drop the upstream's frames of TYPE (with probability P, default 1)
    #[arg(long, value_name = "TYPE[:P]", value_parser = drop, help_heading = "Message faults")]
    pub drop: Vec<FaultSpec>,
    /// Send the upstream's frames of TYPE twice
    #[arg(long, value_name = "TYPE[:P]", value_parser = duplicate, help_heading = "Message faults")]
    pub duplicate: Vec<FaultSpec>,
    /// Hold frames of TYPE for DURATION (later frames wait behind them)
    #[arg(long, value_name = "TYPE:DURATION", value_parser = delay, help_heading = "Message faults")]
    pub delay: Vec<FaultSpec>,
    /// Swap a frame with the next one, with probability P (CONNECTED stays first)
    #[arg(long, value_name = "P", value_parser = reorder, help_heading = "Message faults")]
    pub reorder: Vec<FaultSpec>,
    /// Make frames of TYPE invalid JSON
    #[arg(long, value_name = "TYPE[:P]", value_parser = corrupt, help_heading = "Message faults")]
    pub corrupt: Vec<FaultSpec>,
    /// Hold CONNECTED for DURATION
    #[arg(long, value_name = "DURATION", value_parser = hold_connected, help_heading = "Message faults")]
    pub hold_connected: Option<FaultSpec>,
    /// Close the client's socket with CODE after N frames from the upstream
    #[arg(long, value_name = "N:CODE", value_parser = close_after, help_heading = "Message faults")]
    pub close_after: Option<FaultSpec>,
    /// Refuse WebSocket upgrades with STATUS (401, 429, 503 …), with probability P
    #[arg(long, value_name = "STATUS[:P]", value_parser = refuse_upgrade, help_heading = "Message faults")]
    pub refuse_upgrade: Vec<FaultSpec>,
    /// Leave the client's pings unanswered and keep the upstream's from it
    #[arg(long, help_heading = "Message faults")]
    pub swallow_pings: bool,
    /// Message faults match only frames whose field equals the value: FIELD=VALUE,
    /// dotted paths such as details.error (repeatable; all must hold)
    #[arg(long = "where", value_name = "FIELD=VALUE", value_parser = crate::check::parse_where,
          help_heading = "Message faults")]
    pub wheres: Vec<(String, String)>,
    /// Seed of every random decision (default: a random seed, printed)
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Write every decision to FILE as NDJSON (time, connection, fault, frame, seq)
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Serve the control API on ADDR (port 0 picks a free port)
    #[arg(long, value_name = "ADDR")]
    pub control: Option<SocketAddr>,
}

/// `--profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    #[value(name = "slow-3g")]
    Slow3g,
    #[value(name = "fast-3g")]
    Fast3g,
    #[value(name = "slow-4g")]
    Slow4g,
    #[value(name = "fast-4g")]
    Fast4g,
    Offline,
}

fn parse_upstream(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    match url.scheme() {
        "ws" | "wss" | "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err(format!(
            "{s:?} is not a ws, wss, http or https URL with a host"
        )),
    }
}

macro_rules! fault_parsers {
    ($($fn:ident => $name:literal),* $(,)?) => {
        $(fn $fn(s: &str) -> Result<FaultSpec, String> { faults::parse($name, s) })*
    };
}

fault_parsers! {
    latency => "latency", bandwidth => "bandwidth", slicer => "slicer", timeout => "timeout",
    reset_peer => "reset-peer", limit_data => "limit-data", drop => "drop",
    duplicate => "duplicate", delay => "delay", reorder => "reorder", corrupt => "corrupt",
    hold_connected => "hold-connected", close_after => "close-after",
    refuse_upgrade => "refuse-upgrade",
}

impl ProxyArgs {
    /// Every fault the flags give, in the order the help lists them.
    fn faults(&self) -> anyhow::Result<Vec<FaultSpec>> {
        let mut all = Vec::new();
        if let Some(profile) = self.profile.filter(|p| *p != Profile::Offline) {
            let name = match profile {
                Profile::Slow3g => "slow-3g",
                Profile::Fast3g => "fast-3g",
                Profile::Slow4g => "slow-4g",
                _ => "fast-4g",
            };
            all.extend(faults::profile_faults(name).unwrap_or_default());
        }
        for mut spec in self.latency.iter().cloned() {
            if let (Fault::Latency { jitter, .. }, Some(j)) = (&mut spec.fault, self.jitter) {
                *jitter = j;
            }
            all.push(spec);
        }
        let groups = [
            &self.bandwidth,
            &self.slicer,
            &self.timeout,
            &self.reset_peer,
            &self.limit_data,
            &self.drop,
            &self.duplicate,
            &self.delay,
            &self.reorder,
            &self.corrupt,
            &self.refuse_upgrade,
        ];
        all.extend(groups.into_iter().flatten().cloned());
        all.extend(self.hold_connected.iter().cloned());
        all.extend(self.close_after.iter().cloned());
        if self.swallow_pings {
            all.extend(faults::parse("swallow-pings", "").ok());
        }
        if !self.wheres.is_empty() {
            let mut matched = false;
            for spec in &mut all {
                if let Some(matcher) = spec.fault.matcher_mut() {
                    matcher.wheres = self.wheres.clone();
                    matched = true;
                }
            }
            if !matched {
                return Err(Failure::Usage(
                    "--where needs a fault that matches frames (--drop, --duplicate, --delay, --corrupt)"
                        .into(),
                )
                .into());
            }
        }
        Ok(all)
    }
}

pub async fn run(args: ProxyArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    let faults = args.faults()?;
    if let Some(path) = &args.log {
        crate::report::check_output_path(path, "--log")?;
    }
    let log = args.log.as_deref().map(DecisionLog::create).transpose()?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let shared = Shared::new(Config {
        upstream: args.upstream.clone(),
        faults,
        seed,
        offline: args.profile == Some(Profile::Offline),
        log,
    })?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("failed to read the bound address")?;
    let control = match args.control {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("failed to listen on {at} (--control)"))?,
        ),
        None => None,
    };
    // Signal handlers first: a script may stop the proxy as soon as it is told the address.
    let interrupt = super::interrupted();
    reporter.listening(addr, &format!("ws://{addr}"));
    if let Some(listener) = control {
        let at = listener
            .local_addr()
            .context("failed to read the bound address")?;
        reporter.listening(at, &format!("http://{at}"));
        tokio::spawn(proxy::control::serve(
            listener,
            shared.clone(),
            std::future::pending(),
        ));
    }
    let listed = shared
        .faults
        .read()
        .map(|l| l.iter().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    reporter.note(&crate::report::proxy::started(
        args.upstream.as_str(),
        &listed,
        seed,
    ));
    if let Some((every, cut)) = args.cut_every.zip(args.cut_for) {
        tokio::spawn(proxy::cut_schedule(shared.clone(), every, cut));
    }
    proxy::serve(listener, shared, interrupt).await?;
    reporter.note("proxy stopped");
    Ok(Exit::Success)
}
