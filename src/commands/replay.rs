//! `replay`: serve a recorded session (`watch-sync --record`, or a browser HAR file)
//! as a sync socket server until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::{mpsc, watch};

use super::args::{parse_duration, positive_count};
use crate::exit::Exit;
use crate::report::Reporter;
use crate::report::json::Summary;
use crate::report::replay::{self as text, ReplaySummary, ReplayedOrg};
use crate::server::{self, replay};

#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  syncprobe watch-sync org-rio --url ws://prod:3000 --record session.ndjson --duration 5m
  syncprobe replay session.ndjson --listen 127.0.0.1:3000            # ws://127.0.0.1:3000/api/ws/sync/org-rio
  syncprobe replay session.ndjson --speed 10 --loop --org org-test   # faster, forever, as org-test
  syncprobe replay capture.har --step                                # one frame per Enter

FILE is told apart by content: NDJSON lines of `watch-sync --record`, or a HAR file
whose entries on /api/ws/sync/{org} carry _webSocketMessages (their `receive`
messages are replayed). Every socket gets its own playback: a fresh CONNECTED (seq
where it starts, this run's epoch), then the recorded frames with their spacing, each
JSON object numbered seq 1, 2, … (with --loop the numbering goes on) and stamped with
the time it is sent; recorded CONNECTED frames are dropped. ?since=N&epoch=E resumes
after the N-th frame; a since or epoch this run never gave out starts over with
historyTruncated. Only the recorded organizations are served (others: HTTP 404); --org
serves the recording's one organization under another id. At the end the socket stays
open. A malformed file is one error line naming the line (exit 6).")]
pub struct ReplayArgs {
    /// The recording: a `watch-sync --record` file or a browser HAR file
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Playback speed: 2 is twice as fast, 0.5 half as fast; 0 or max sends without waiting
    #[arg(long, value_name = "X", default_value = "1", value_parser = replay::Speed::parse)]
    pub speed: replay::Speed,
    /// Start over at the end of the recording (seq keeps counting)
    #[arg(long = "loop")]
    pub looping: bool,
    /// Serve the recording's one organization as ORG (its organizationId rewritten)
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// Send each frame only when Enter is pressed on stdin (every waiting socket gets
    /// its next frame); when stdin ends, the rest plays at --speed
    #[arg(long)]
    pub step: bool,
    /// Largest recorded frame accepted, in bytes (a larger one makes the file an error)
    #[arg(long, value_name = "BYTES", default_value_t = crate::client::ws::MAX_MESSAGE,
          value_parser = positive_count)]
    pub max_message_size: usize,
    /// Interval of server pings; a client silent for a whole interval is dropped (0 = off)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub ping_interval: Duration,
}

pub async fn run(args: ReplayArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    let recording = replay::load(&args.file, args.max_message_size)?;
    let format = recording.format;
    let plan = replay::plan(recording, args.org.as_deref())?;
    let mut summary = ReplaySummary {
        file: args.file.display().to_string(),
        format,
        organizations: plan.facts().iter().map(ReplayedOrg::of).collect(),
        sessions: 0,
        frames_sent: 0,
    };
    let listener = server::bind(args.listen)
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("failed to read the bound address")?;
    let steps = args.step.then(presses);
    let stepping_ends = stdin_ends(steps.clone());
    tokio::pin!(stepping_ends);
    let mut stepping = args.step;
    let options = replay::Options {
        speed: args.speed,
        looping: args.looping,
        steps,
        ping_interval: args.ping_interval,
    };
    let (notices, mut told) = mpsc::unbounded_channel();
    let totals = Arc::new(replay::Totals::default());
    // Signal handlers first: a supervisor may stop the replay once told the address.
    let interrupt = super::interrupted();
    reporter.note(&text::loaded(&summary, args.speed, args.looping, args.step));
    reporter.listening(addr, &format!("ws://{addr}"));
    let serving = replay::serve(listener, plan, options, notices, totals.clone(), interrupt);
    tokio::pin!(serving);
    let served = loop {
        tokio::select! {
            served = &mut serving => break served,
            Some(notice) = told.recv() => text::notice(reporter, &notice),
            () = &mut stepping_ends, if stepping => stepping = text::stepping_ended(reporter),
        }
    };
    while let Ok(notice) = told.try_recv() {
        text::notice(reporter, &notice);
    }
    served?;
    summary.sessions = totals.sessions.load(Ordering::Relaxed);
    summary.frames_sent = totals.frames.load(Ordering::Relaxed);
    reporter.summary(Summary::Replay(&summary), || text::summary_text(&summary));
    Ok(Exit::Success)
}

/// Resolves when stdin ends under `--step` (never without it).
async fn stdin_ends(steps: Option<watch::Receiver<replay::Presses>>) {
    match steps {
        Some(mut steps) => {
            let _ = steps.wait_for(|p| p.ended).await;
        }
        None => std::future::pending().await,
    }
}

/// `--step`: the Enter presses on stdin, counted on a thread of its own (a blocking
/// read on the runtime's pool would hold up the exit until the next Enter).
fn presses() -> watch::Receiver<replay::Presses> {
    use std::io::Read;
    let (tx, rx) = watch::channel(replay::Presses::default());
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let pressed = buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                    if pressed > 0 {
                        tx.send_modify(|p| p.count += pressed);
                    }
                }
            }
        }
        tx.send_modify(|p| p.ended = true);
    });
    rx
}
