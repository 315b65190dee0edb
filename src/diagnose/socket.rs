//! The layers on an open socket: `connected` (time, organization, timestamp, Part 2
//! features), `ping` (round trips, lost pongs), `clock` (CONNECTED's timestamp
//! against the local clock), `events` (what arrives, and with `--probe` one queued
//! item followed to its end) and `idle` (the socket held without traffic, to catch
//! a proxy that cuts idle connections).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::net::Stream;
use super::{Layer, PONG_WAIT, Plan, Walk};
use crate::client::aligned::Aligned;
use crate::client::error::find;
use crate::client::{recorded, ws};
use crate::exit::Exit;
use crate::protocol::ProtocolPart;

/// Clock skew past which `clock` warns.
pub const CLOCK_WARNING: Duration = Duration::from_secs(2);
/// Most frames kept from the pings for `events`.
const MAX_EARLY: usize = 1000;

/// Runs the socket layers in order on the upgraded `stream`, then `status`, then
/// `idle` (last: it only listens).
pub(super) async fn walk(plan: &Plan, stream: Stream, walk: &mut Walk) {
    let (mut recorded, _) = recorded::recorded(Aligned::off(stream));
    recorded::stop(&mut recorded);
    let config = ws::client_config(plan.options.ws_config, plan.options.max_message);
    let mut socket = WebSocketStream::from_raw_socket(recorded, Role::Client, Some(config)).await;
    let (layer, connected) = connected(&mut socket, &plan.endpoint.org, plan.timeout).await;
    walk.push_stopping(layer);
    let Some(first) = connected else {
        walk.push(super::backend::status(plan).await);
        return;
    };
    // Frames that arrive during the pings belong to `events`.
    let mut early = Vec::new();
    walk.push(ping(&mut socket, plan.pings, &mut early).await);
    walk.push(clock(&first));
    walk.push(events(plan, &mut socket, &first, &early).await);
    walk.push(super::backend::status(plan).await);
    let idle = match plan.hold {
        Some(hold) => idle(&mut socket, hold).await,
        None => Layer::skip("idle", "not asked (--hold DURATION keeps the socket idle)"),
    };
    walk.push(idle);
    let _ = ws::close(&mut socket, 1000, "doctor done").await;
}

/// CONNECTED as it arrived.
pub struct First {
    pub connected: crate::protocol::Connected,
    pub at: SystemTime,
}

async fn connected(socket: &mut ws::Stream, org: &str, limit: Duration) -> (Layer, Option<First>) {
    let started = Instant::now();
    match ws::expect_connected(socket, org, limit).await {
        Err(e) => {
            let exit = crate::exit::exit_for(&e);
            let hint = match find::<crate::client::error::PeerClosed>(&e).and_then(|c| c.code) {
                Some(4401) => "the server closed with 4401: the token expired or was refused".into(),
                Some(code) => format!("the server closed with code {code}: its reason above says why"),
                None if exit == Exit::Timeout => "the server upgraded but sent no CONNECTED: is this the sync socket's path (--path)?".into(),
                None => "the server does not speak the sync protocol here: check --path and the backend's version".into(),
            };
            let layer = Layer::fail("connected", started.elapsed(), exit, format!("{e:#}"), hint);
            (layer, None)
        }
        Ok(first) => {
            let at = SystemTime::now();
            let c = first.connected;
            let features = match c.part() {
                ProtocolPart::Part2 => format!(
                    "Part 2: seq {}, epoch {}, resume with ?since=",
                    c.seq.unwrap_or(0),
                    crate::text::shown(c.epoch.as_deref().unwrap_or("-"), 40)
                ),
                ProtocolPart::Part1 => {
                    "Part 1: no seq or epoch, so Part 2 checks (gaps by seq, resume) are skipped"
                        .into()
                }
            };
            let detail = format!(
                "CONNECTED for {} after {:.1} ms, timestamp {} (valid); {features}",
                crate::text::shown(&c.organization_id, 80),
                started.elapsed().as_secs_f64() * 1000.0,
                c.timestamp.0.format("%Y-%m-%dT%H:%M:%S%.3fZ")
            );
            let layer = Layer::pass("connected", started.elapsed(), detail);
            (layer, Some(First { connected: c, at }))
        }
    }
}

/// `ping`: `count` pings one after another; RTT p50 and max, lost pongs.
async fn ping(socket: &mut ws::Stream, count: usize, early: &mut Vec<String>) -> Layer {
    let started = Instant::now();
    if count == 0 {
        return Layer::skip("ping", "not asked (--pings 0)");
    }
    let mut rtts = Vec::new();
    let mut lost = 0;
    for n in 0..count {
        let payload = format!("doctor-{n}").into_bytes();
        let sent = Instant::now();
        if let Err(e) = ws::ping(socket, payload.clone()).await {
            let detail = format!("sending ping {} failed: {e:#}", n + 1);
            let hint = "the connection broke right after CONNECTED: check the server's logs";
            return Layer::fail("ping", started.elapsed(), Exit::Protocol, detail, hint);
        }
        match pong(socket, &payload, early).await {
            Pong::Back => rtts.push(sent.elapsed()),
            Pong::Lost => lost += 1,
            Pong::Closed => {
                let detail = format!("the connection closed during ping {}", n + 1);
                let hint = "the server or a proxy ends connections that ping: check its logs";
                return Layer::fail("ping", started.elapsed(), Exit::Protocol, detail, hint);
            }
        }
    }
    rtts.sort();
    let shown = |d: Option<&Duration>| {
        d.map_or("-".into(), |d| {
            format!("{:.1} ms", d.as_secs_f64() * 1000.0)
        })
    };
    let detail = format!(
        "{} answered: RTT p50 {}, max {}; {lost} lost",
        crate::text::count(rtts.len() as u64, "pong"),
        shown(rtts.get(rtts.len() / 2)),
        shown(rtts.last())
    );
    if lost > 0 {
        let hint = "pongs went missing: the server (or a proxy) does not answer pings, or the link drops frames";
        return Layer::warn("ping", started.elapsed(), detail, hint);
    }
    Layer::pass("ping", started.elapsed(), detail)
}

enum Pong {
    Back,
    Lost,
    Closed,
}

async fn pong(socket: &mut ws::Stream, payload: &[u8], early: &mut Vec<String>) -> Pong {
    let until = Instant::now() + PONG_WAIT;
    loop {
        match tokio::time::timeout_at(until, ws::next(socket)).await {
            Err(_) => return Pong::Lost,
            Ok(Ok(ws::Incoming::Pong(data))) if data == payload => return Pong::Back,
            Ok(Ok(ws::Incoming::Closed(_)) | Err(_)) => return Pong::Closed,
            Ok(Ok(ws::Incoming::Text { text, .. })) if early.len() < MAX_EARLY => early.push(text),
            Ok(Ok(_)) => continue,
        }
    }
}

/// `clock`: CONNECTED's timestamp against the local clock at its arrival.
fn clock(first: &First) -> Layer {
    let server = first.connected.timestamp.millis();
    let local = first
        .at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let skew = local - server;
    let detail = format!(
        "this machine is {:+.3} s from the server's CONNECTED timestamp",
        skew as f64 / 1000.0
    );
    if skew.unsigned_abs() > CLOCK_WARNING.as_millis() as u64 {
        let hint = "one of the clocks is off: sync this machine and the server with NTP (latencies and token expiry depend on it)";
        return Layer::warn("clock", Duration::ZERO, detail, hint);
    }
    Layer::pass("clock", Duration::ZERO, detail)
}

/// What `events` saw.
#[derive(Default)]
struct Seen {
    by_type: BTreeMap<String, u64>,
    foreign: BTreeMap<String, u64>,
    duplicates: u64,
    gaps: u64,
    last_seq: Option<u64>,
    texts: HashSet<String>,
    terminal_of: Vec<String>,
}

impl Seen {
    fn add(&mut self, text: &str, org: &str) {
        if !self.texts.insert(text.to_string()) {
            self.duplicates += 1;
        }
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            *self.by_type.entry("(not JSON)".into()).or_default() += 1;
            return;
        };
        let kind = value["type"].as_str().unwrap_or("(no type)").to_string();
        if let Some(other) = value["organizationId"].as_str().filter(|o| *o != org) {
            *self.foreign.entry(other.to_string()).or_default() += 1;
        }
        if let Some(seq) = value["seq"].as_u64() {
            if self.last_seq.is_some_and(|last| seq > last + 1) {
                self.gaps += 1;
            }
            self.last_seq = Some(seq);
        }
        if matches!(
            kind.as_str(),
            "SYNC_SUCCESS" | "SYNC_CONFLICT" | "SYNC_FAILED"
        ) && let Some(pfa) = value["pfaId"].as_str()
        {
            self.terminal_of.push(pfa.to_string());
        }
        *self.by_type.entry(kind).or_default() += 1;
    }

    fn text(&self, part: ProtocolPart) -> String {
        let counts: Vec<String> = self
            .by_type
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let gaps = match part {
            ProtocolPart::Part2 => format!("{} gaps by seq", self.gaps),
            ProtocolPart::Part1 => "gaps not checked (Part 1: no seq)".into(),
        };
        format!(
            "{}; {} duplicates; {gaps}; foreign organizations: {}",
            if counts.is_empty() {
                "no events".into()
            } else {
                counts.join(", ")
            },
            self.duplicates,
            if self.foreign.is_empty() {
                "none".to_string()
            } else {
                self.foreign
                    .keys()
                    .map(|k| crate::text::shown(k, 40))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )
    }
}

/// `events`: what arrives for the organization during `--events`, and with
/// `--probe` one queued item followed to its terminal event.
async fn events(plan: &Plan, socket: &mut ws::Stream, first: &First, early: &[String]) -> Layer {
    let started = Instant::now();
    let Some(duration) = plan.events.or(plan.probe.then_some(plan.timeout)) else {
        return Layer::skip(
            "events",
            "not asked (--events DURATION watches, --probe queues a test item)",
        );
    };
    let org = &plan.endpoint.org;
    let probe = match plan.probe {
        false => None,
        true => match queue_probe(plan).await {
            Ok(pfa) => Some(pfa),
            Err(e) => {
                let detail = format!("the probe could not be queued: {e:#}");
                let hint = "POST /api/pems/write-sync failed: check the REST API (--api-url) and the token's permissions";
                return Layer::fail(
                    "events",
                    started.elapsed(),
                    crate::exit::exit_for(&e),
                    detail,
                    hint,
                );
            }
        },
    };
    let mut seen = Seen::default();
    for text in early {
        seen.add(text, org);
    }
    let until = Instant::now() + duration;
    let mut closed = None;
    while Instant::now() < until {
        match tokio::time::timeout_at(until, ws::next(socket)).await {
            Err(_) => break,
            Ok(Ok(ws::Incoming::Text { text, .. })) => seen.add(&text, org),
            Ok(Ok(ws::Incoming::Closed(frame))) => {
                closed = Some(frame);
                break;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let hint = "the server broke the protocol: check its version";
                return Layer::fail(
                    "events",
                    started.elapsed(),
                    crate::exit::exit_for(&e),
                    format!("{e:#}"),
                    hint,
                );
            }
        }
        if let Some(Some(pfa)) = &probe
            && seen.terminal_of.contains(pfa)
        {
            break;
        }
    }
    judge_events(
        &seen,
        first.connected.part(),
        probe,
        closed,
        started.elapsed(),
        org,
    )
}

fn judge_events(
    seen: &Seen,
    part: ProtocolPart,
    probe: Option<Option<String>>,
    closed: Option<Option<(u16, String)>>,
    took: Duration,
    org: &str,
) -> Layer {
    let mut detail = seen.text(part);
    if let Some(frame) = closed {
        let how = frame.map_or("without a close frame".into(), |(c, r)| {
            format!("with {c} {}", crate::text::shown(&r, 80))
        });
        let detail = format!("{detail}; the server closed the socket {how}");
        let hint = "the socket closed while watching: run `syncprobe watch-sync --reconnect` to see how often";
        return Layer::fail("events", took, Exit::Protocol, detail, hint);
    }
    if !seen.foreign.is_empty() {
        let hint = format!(
            "the backend sends other organizations' events on {org}'s socket: a fan-out bug to report"
        );
        return Layer::warn("events", took, detail, hint);
    }
    if seen.duplicates > 0 || seen.gaps > 0 {
        let hint = "events arrived twice or went missing: compare with `syncprobe watch-sync` and the backend's publisher";
        return Layer::warn("events", took, detail, hint);
    }
    match probe {
        Some(Some(pfa)) if !seen.terminal_of.contains(&pfa) => {
            detail.push_str(&format!("; the probe {pfa} did not reach a terminal event"));
            let hint =
                "the queued item never finished: check the backend's worker (`syncprobe status`)";
            Layer::fail("events", took, Exit::Timeout, detail, hint)
        }
        Some(Some(pfa)) => {
            detail.push_str(&format!("; the probe {pfa} reached its terminal event"));
            Layer::pass("events", took, detail)
        }
        _ if seen.by_type.is_empty() => {
            let hint = format!(
                "nothing arrived for {org}: ask for a change to be saved while watching, or add --probe to queue a test item"
            );
            Layer::warn("events", took, detail, hint)
        }
        _ => Layer::pass("events", took, detail),
    }
}

/// Queues one write for the probe; the item's `pfaId` when the answer lists it.
async fn queue_probe(plan: &Plan) -> anyhow::Result<Option<String>> {
    let api = crate::client::http::Api::new(&plan.endpoint, &plan.options, plan.timeout)?;
    let request = crate::protocol::WriteSyncRequest {
        organization_id: plan.endpoint.org.clone(),
        modification_ids: None,
        priority: None,
        count: Some(1),
        pfa_ids: None,
        outcome: None,
    };
    let answer = api.write_sync(&request).await?;
    Ok(answer
        .items
        .and_then(|items| items.into_iter().next())
        .map(|i| i.pfa_id))
}

/// `idle`: the socket held `hold` without traffic of its own; a close before the
/// end names a proxy idle timeout as the likely cause.
async fn idle(socket: &mut ws::Stream, hold: Duration) -> Layer {
    let started = Instant::now();
    let until = started + hold;
    let mut frames = 0u64;
    loop {
        match tokio::time::timeout_at(until, ws::next(socket)).await {
            Err(_) => {
                let detail = format!(
                    "held {} without traffic: the connection stayed open ({frames} frames arrived)",
                    humantime::format_duration(hold)
                );
                return Layer::pass("idle", started.elapsed(), detail);
            }
            Ok(Ok(ws::Incoming::Closed(frame))) => return cut(frame, started.elapsed()),
            Ok(Ok(_)) => frames += 1,
            Ok(Err(e)) => {
                let detail = format!(
                    "the connection broke after {:.1} s idle: {e:#}",
                    started.elapsed().as_secs_f64()
                );
                return Layer::fail(
                    "idle",
                    started.elapsed(),
                    Exit::Protocol,
                    detail,
                    idle_hint(started.elapsed()),
                );
            }
        }
    }
}

fn idle_hint(after: Duration) -> String {
    format!(
        "a proxy idle timeout is the likely cause: something between here and the backend closes connections idle for about {:.0} s; raise its idle timeout (nginx proxy_read_timeout, load balancer idle timeout) or have clients ping more often than that",
        after.as_secs_f64().max(1.0)
    )
}

fn cut(frame: Option<(u16, String)>, after: Duration) -> Layer {
    let how = match &frame {
        None => "dropped without a close frame (1006)".to_string(),
        Some((code, reason)) => format!("closed with {code} {}", crate::text::shown(reason, 80)),
    };
    let detail = format!(
        "the connection {how} after {:.1} s idle",
        after.as_secs_f64()
    );
    Layer::fail("idle", after, Exit::Protocol, detail, idle_hint(after))
}
