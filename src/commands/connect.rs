//! `connect ORG`: open the socket, check CONNECTED, optionally hold, close with 1000.
//! Replaces the seed's `test-websocket-connection.ts ORG`.

use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use super::args::{ConnectionArgs, parse_duration};
use crate::client::ws;
use crate::exit::{Exit, Failure};
use crate::report::connect::ConnectSummary;
use crate::report::human::{self, EventStyle};
use crate::report::{Reporter, json};

#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  syncprobe connect org-rio                                   # ws://localhost:3000/api/ws/sync/org-rio
  syncprobe connect org-rio --url wss://api.example.com --token \"$JWT\"
  syncprobe connect ws://127.0.0.1:3000/api/ws/sync/org-rio --hold 2s
  syncprobe connect org-rio --json | jq 'select(.type==\"summary\")'")]
pub struct ConnectArgs {
    /// Organization id, or a full socket URL
    #[arg(value_name = "ORG")]
    pub target: String,
    /// How long to wait for CONNECTED once the socket is open
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Keep the connection open this long after CONNECTED, showing what arrives
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_duration)]
    pub hold: Duration,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

pub async fn run(args: ConnectArgs, reporter: &Reporter) -> anyhow::Result<Exit> {
    let endpoint = args.connection.endpoint(&args.target)?;
    let options = args.connection.client_options()?;
    reporter.say(&format!(
        "Testing WebSocket connection to: {}\n",
        human::paint(
            human::BOLD,
            ws::masked(&ws::socket_url(&endpoint, None, &options))
        )
    ));
    // Ctrl-C is handled from the start (exit 130), not left to the default kill; one
    // future for the whole run, so a signal between two waits is not lost.
    let interrupt = super::interrupted();
    tokio::pin!(interrupt);
    let started = Instant::now();
    let mut opened = tokio::select! {
        // Polled first, so the handlers are in place before anything else happens.
        biased;
        _ = &mut interrupt => return Err(Failure::Interrupted.into()),
        opened = ws::open(&endpoint, None, &options) => opened?,
    };
    reporter.open(&json::Open {
        url: opened.display_url.clone(),
        organization_id: endpoint.org.clone(),
        open_ms: millis(opened.open_time),
        subprotocol: opened.subprotocol.clone(),
        attempt: 0,
    });
    let first = tokio::select! {
        _ = &mut interrupt => {
            let (code, reason) = ws::close(&mut opened.stream, 1000, "normal")
                .await
                .unwrap_or((1000, "normal".into()));
            reporter.close(&json::Close { code: Some(code), reason, initiator: "client".into() });
            return Err(Failure::Interrupted.into());
        }
        first = ws::expect_connected(&mut opened.stream, &endpoint.org, args.timeout) => first?,
    };
    let connected_ms = millis(started.elapsed());
    reporter.event(&first.raw, Some(&first.frame), EventStyle::Pretty);
    reporter.say(&format!(
        "\n{} Connection confirmed! CONNECTED after {}",
        human::paint(human::GREEN, "✓"),
        human::ms(connected_ms)
    ));

    let mut held = 0;
    let mut interrupted = false;
    if !args.hold.is_zero() {
        reporter.say(&format!(
            "Holding the connection for {}…",
            humantime::format_duration(args.hold)
        ));
        let until = Instant::now() + args.hold;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                _ = &mut interrupt => { interrupted = true; break; }
                incoming = ws::next(&mut opened.stream) => match incoming? {
                    ws::Incoming::Text { text, .. } => {
                        held += 1;
                        let frame = crate::protocol::ServerFrame::parse(&text).ok();
                        reporter.event(&text, frame.as_ref(), EventStyle::Pretty);
                    }
                    ws::Incoming::Binary(len) => reporter.warn(&format!("ignored a binary frame of {len} bytes")),
                    ws::Incoming::Pong(_) => {}
                    ws::Incoming::Closed(frame) => {
                        let (code, reason) = frame.map_or((None, String::new()), |(c, r)| (Some(c), r));
                        reporter.close(&json::Close { code, reason: reason.clone(), initiator: "server".into() });
                        return Err(Failure::Protocol(format!(
                            "the server closed the connection during --hold (code {}, reason: {})",
                            code.map_or("none".into(), |c| c.to_string()),
                            if reason.is_empty() { "-" } else { &reason }
                        )).into());
                    }
                }
            }
        }
    }

    let answer = ws::close(&mut opened.stream, 1000, "normal").await;
    let (code, reason) = answer.unwrap_or((1000, "normal".into()));
    reporter.close(&json::Close {
        code: Some(code),
        reason,
        initiator: "client".into(),
    });
    let connected = &first.connected;
    let summary = ConnectSummary {
        ok: true,
        url: opened.display_url.clone(),
        organization_id: endpoint.org.clone(),
        open_ms: millis(opened.open_time),
        connected_ms,
        protocol: if connected.seq.is_some() && connected.epoch.is_some() {
            "part2"
        } else {
            "part1"
        }
        .into(),
        seq: connected.seq,
        epoch: connected.epoch.clone(),
        events_during_hold: held,
    };
    reporter.summary(json::Summary::Connect(&summary), || {
        format!(
            "{} {} accepted the connection: open {}, CONNECTED {} ({})\n",
            human::paint(human::GREEN, "ok:"),
            summary.url,
            human::ms(summary.open_ms),
            human::ms(summary.connected_ms),
            if summary.protocol == "part2" {
                format!("sequence numbers from seq {}", summary.seq.unwrap_or(0))
            } else {
                "no sequence numbers: a Part 1 backend".to_string()
            }
        )
    });
    if interrupted {
        return Err(Failure::Interrupted.into());
    }
    Ok(Exit::Success)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
