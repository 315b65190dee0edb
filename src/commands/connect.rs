//! `connect ORG`: open the socket, check CONNECTED, optionally hold, close with 1000.
//! Replaces the seed's `test-websocket-connection.ts ORG`.

use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use super::args::{ConnectionArgs, parse_duration, positive_duration};
use crate::client::error::{PeerClosed, failed};
use crate::client::session::{Closed, Session};
use crate::client::ws;
use crate::exit::{Exit, Failure};
use crate::report::connect::{self as report, ConnectSummary, UrlFailure};
use crate::report::human::EventStyle;
use crate::report::{Reporter, json};

#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  syncprobe connect org-rio                                   # ws://localhost:3000/api/ws/sync/org-rio
  syncprobe connect org-rio --url wss://api.example.com --token \"$JWT\"
  syncprobe connect ws://127.0.0.1:3000/api/ws/sync/org-rio --hold 2s
  syncprobe connect org-rio --json | jq 'select(.type==\"summary\")'
  syncprobe connect org-rio --url ws://a:3000 --url ws://b:3000     # the first that answers

Several --url (or SYNCPROBE_URL=\"ws://a:3000,ws://b:3000\"): tried in order until one
answers; each that does not is named (a warning, and `failed` in the summary); when none
answers, the error names every one and the exit code is the last one's.")]
pub struct ConnectArgs {
    /// Organization id, or a full socket URL
    #[arg(value_name = "ORG")]
    pub target: String,
    /// How long to wait for CONNECTED once the socket is open
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration)]
    pub timeout: Duration,
    /// Keep the connection open this long after CONNECTED, showing what arrives
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_duration)]
    pub hold: Duration,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

pub async fn run(args: ConnectArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    let endpoints = args.connection.endpoints(&args.target)?;
    let options = args.connection.client_options()?;
    // Ctrl-C is handled from the start (exit 130), not left to the default kill; one
    // future for the whole run, so a signal between two waits is not lost.
    let interrupt = super::interrupted();
    tokio::pin!(interrupt);
    // Several URLs: tried in order until one answers; each failure is named.
    let mut failed: Vec<(String, anyhow::Error)> = Vec::new();
    // `open` records count the sockets that opened before (0: the first).
    let opened = std::cell::Cell::new(0u32);
    for (i, endpoint) in endpoints.iter().enumerate() {
        reporter.say(&report::banner(&crate::client::redact(&ws::socket_url(
            endpoint, None, &options,
        ))));
        let on_open = |o: &ws::Opened| {
            reporter.open(&json::Open::of(o, &endpoint.org, opened.get()));
            opened.set(opened.get() + 1);
        };
        let started = Session::start(
            endpoint,
            None,
            &options,
            args.timeout,
            on_open,
            &mut interrupt,
        )
        .await;
        match started {
            Ok(started) => {
                let session = started.or_interrupted(|closed| reporter.close(closed))?;
                return checked(&args, session, failed, &mut interrupt, reporter).await;
            }
            Err(e) => {
                let url = crate::client::redact(&endpoint.socket);
                if i + 1 < endpoints.len() {
                    reporter.warn(&report::next_url(&url, &e, i + 2, endpoints.len()));
                }
                failed.push((url, e));
            }
        }
    }
    Err(crate::client::none_answered(failed))
}

/// The session of the URL that answered: CONNECTED shown, `--hold`, the close and the
/// summary (with the URLs that did not answer before it, `failed`).
async fn checked(
    args: &ConnectArgs,
    mut session: Session,
    failed: Vec<(String, anyhow::Error)>,
    interrupt: &mut (impl Future<Output = ()> + Unpin),
    reporter: &Reporter,
) -> anyhow::Result<Exit> {
    let first = &session.connected;
    reporter.event(&first.raw, Some(&first.frame), EventStyle::Pretty);
    reporter.say(&report::confirmed(millis(session.connected_time)));

    let mut held = Held::default();
    if !args.hold.is_zero() {
        reporter.say(&report::holding(args.hold));
        held = hold(&mut session, args.hold, interrupt, reporter).await?;
    }
    let closed = session.close(1000, "normal").await;
    reporter.close(&closed);
    let mut summary = summary_of(&session, held.frames);
    summary.failed = failed
        .iter()
        .map(|(url, e)| UrlFailure {
            url: url.clone(),
            message: format!("{e:#}"),
            exit_code: crate::exit::exit_for(e).code(),
        })
        .collect();
    reporter.summary(json::Summary::Connect(&summary), || {
        report::summary(&summary)
    });
    if held.interrupted {
        return Err(Failure::Interrupted.into());
    }
    Ok(Exit::Success)
}

#[derive(Default)]
struct Held {
    frames: u64,
    interrupted: bool,
}

/// `--hold`: shows what arrives until `limit` passes or Ctrl-C; a server close ends
/// the run with a protocol error.
async fn hold(
    session: &mut Session,
    limit: Duration,
    interrupt: &mut (impl Future<Output = ()> + Unpin),
    reporter: &Reporter,
) -> anyhow::Result<Held> {
    let until = Instant::now() + limit;
    let mut held = Held::default();
    loop {
        let incoming = tokio::select! {
            _ = tokio::time::sleep_until(until) => return Ok(held),
            _ = &mut *interrupt => return Ok(Held { interrupted: true, ..held }),
            incoming = session.next() => incoming?,
        };
        match incoming {
            ws::Incoming::Text { text, .. } => {
                held.frames += 1;
                let frame = crate::protocol::ServerFrame::parse(&text).ok();
                reporter.event(&text, frame.as_ref(), EventStyle::Pretty);
            }
            ws::Incoming::Binary(len) => {
                reporter.warn(&format!("ignored a binary frame of {len} bytes"))
            }
            ws::Incoming::Pong(_) => {}
            ws::Incoming::Closed(frame) => {
                let closed = Closed::by_server(frame);
                reporter.close(&closed);
                let cause = PeerClosed {
                    code: closed.code,
                    reason: closed.reason,
                };
                return Err(failed(
                    Failure::Protocol("the server closed the connection during --hold".into()),
                    cause,
                ));
            }
        }
    }
}

fn summary_of(session: &Session, held: u64) -> ConnectSummary {
    let connected = &session.connected.connected;
    ConnectSummary {
        ok: true,
        url: session.url.clone(),
        organization_id: connected.organization_id.clone(),
        open_ms: millis(session.open_time),
        connected_ms: millis(session.connected_time),
        protocol: connected.part(),
        seq: connected.seq,
        epoch: connected.epoch.clone(),
        events_during_hold: held,
        failed: Vec::new(),
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
