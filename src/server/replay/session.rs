//! One replayed socket: CONNECTED, then the recorded frames on a timeline of its
//! own, with the heartbeat of `serve` (pings; a peer silent for a whole interval is
//! dropped) and a 1001 close on shutdown.
//!
//! The timeline is absolute: frame `i` of pass `p` is due at the session's start plus
//! (`p` × the recording's length + its recorded offset − where the session started)
//! scaled by the speed, so waits do not drift with the time writes take. A frame a
//! `--step` press released restarts the clock from there.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Notice, Presses, Replay, Served, Speed};
use crate::protocol::{CLOSE_GOING_AWAY, Connected, ServerFrame, Timestamp};
use crate::server::bus::Resume;

/// A write to a client blocked this long drops the client.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The ping timer's period when the heartbeat is off (it then never fires).
const NO_HEARTBEAT: Duration = Duration::from_secs(3600);

/// Where a session is in its organization's recording.
struct Timeline {
    served: Arc<Served>,
    speed: Speed,
    looping: bool,
    /// The next frame, in pass `pass`.
    index: usize,
    pass: u64,
    /// The recorded offset the clock counts from, and when that was.
    base: Duration,
    started: Instant,
    /// The last `seq` given.
    seq: u64,
}

impl Timeline {
    /// A timeline after `since` numbered frames (`None`: from the start), and
    /// whether `since` was one this run could have given (`historyTruncated`).
    fn new(served: Arc<Served>, options: &super::Options, since: Option<u64>) -> (Timeline, bool) {
        let mut timeline = Timeline {
            served,
            speed: options.speed,
            looping: options.looping,
            index: 0,
            pass: 0,
            base: Duration::ZERO,
            started: Instant::now(),
            seq: 0,
        };
        let Some(since) = since.filter(|&s| s > 0) else {
            return (timeline, since.is_some());
        };
        let n = timeline.served.numbered.len() as u64;
        if n == 0 || (!timeline.looping && since > n) {
            return (timeline, false);
        }
        let pass = (since - 1) / n;
        let last = timeline.served.numbered[((since - 1) % n) as usize];
        timeline.pass = pass;
        timeline.index = last + 1;
        timeline.base = timeline.offset(pass, last);
        timeline.seq = since;
        timeline.normalise();
        (timeline, true)
    }

    /// The recorded offset of frame `index` in pass `pass`.
    fn offset(&self, pass: u64, index: usize) -> Duration {
        let length = self.served.stream.duration();
        length.saturating_mul(pass.min(u32::MAX as u64) as u32)
            + self.served.stream.frames[index].at
    }

    /// Moves past the end of a pass: to the next one when looping.
    fn normalise(&mut self) {
        let len = self.served.stream.frames.len();
        if self.index >= len && self.looping && len > 0 {
            self.index = 0;
            self.pass += 1;
        }
    }

    /// The next frame, or `None` at the end of the recording.
    fn next(&self) -> Option<usize> {
        (self.index < self.served.stream.frames.len()).then_some(self.index)
    }

    /// When the next frame is due.
    fn deadline(&self) -> Instant {
        let Some(index) = self.next() else {
            return self.started;
        };
        let recorded = self.offset(self.pass, index).saturating_sub(self.base);
        self.started + self.speed.scale(recorded)
    }

    /// Counts the clock from frame `index` of the current pass, now.
    fn rebase(&mut self, pass: u64, index: usize) {
        self.base = self.offset(pass, index);
        self.started = Instant::now();
    }
}

/// Why a session ended.
#[derive(Clone, Copy)]
enum End {
    ClientClosed,
    WriteFailed,
    DeadPeer,
    Shutdown,
}

impl End {
    fn label(self) -> &'static str {
        match self {
            End::ClientClosed => "closed by the client",
            End::WriteFailed => "a write failed or blocked",
            End::DeadPeer => "no answer to pings",
            End::Shutdown => "closed with 1001 (shutting down)",
        }
    }
}

enum Wake {
    Shutdown,
    Client(Option<Result<Message, axum::Error>>),
    Due,
    Ping,
}

struct Session<'a> {
    socket: &'a mut WebSocket,
    replay: &'a Replay,
    org: &'a str,
    id: u64,
    timeline: Timeline,
    steps: Option<watch::Receiver<Presses>>,
    /// Presses this session has used (those before it opened count as used).
    consumed: u64,
    /// Whether the current frame's `Waiting` notice went out.
    announced: bool,
    sent: u64,
    alive: bool,
}

pub(super) async fn run(
    mut socket: WebSocket,
    replay: Arc<Replay>,
    served: Arc<Served>,
    org: String,
    resume: Option<Resume>,
    id: u64,
) {
    let epoch_ok = resume
        .as_ref()
        .is_none_or(|r| r.epoch.as_deref().is_none_or(|e| e == replay.epoch));
    let since = resume.as_ref().map(|r| r.since);
    let (timeline, honoured) = Timeline::new(served, &replay.options, since.filter(|_| epoch_ok));
    let truncated = since.is_some() && !(epoch_ok && honoured);
    let _ = replay.notices.send(Notice::Opened {
        session: id,
        org: org.clone(),
        since: since.filter(|_| !truncated),
        truncated,
    });
    let steps = replay.options.steps.clone();
    let consumed = steps.as_ref().map_or(0, |s| s.borrow().count);
    let mut session = Session {
        socket: &mut socket,
        replay: &replay,
        org: &org,
        id,
        timeline,
        steps,
        consumed,
        announced: false,
        sent: 0,
        alive: true,
    };
    let end = match session.opening(resume.is_some().then_some(truncated)).await {
        Ok(()) => session.run().await,
        Err(end) => end,
    };
    let _ = replay.notices.send(Notice::Closed {
        session: id,
        sent: session.sent,
        why: end.label(),
    });
}

impl Session<'_> {
    /// CONNECTED, for the requesting organization, at the `seq` the session starts.
    async fn opening(&mut self, truncated: Option<bool>) -> Result<(), End> {
        let connected = ServerFrame::Connected(Connected {
            organization_id: self.org.to_string(),
            timestamp: Timestamp::now(),
            seq: Some(self.timeline.seq),
            epoch: Some(self.replay.epoch.clone()),
            history_truncated: truncated,
            extra: Map::new(),
        });
        let text = serde_json::to_string(&connected).expect("CONNECTED always serialises");
        self.write(text).await?;
        self.timeline.started = Instant::now();
        if self.timeline.next().is_none() {
            self.ended();
        }
        Ok(())
    }

    async fn run(&mut self) -> End {
        let heartbeat = !self.replay.options.ping_interval.is_zero();
        let period = if heartbeat {
            self.replay.options.ping_interval
        } else {
            NO_HEARTBEAT
        };
        let mut ping = tokio::time::interval_at(Instant::now() + period, period);
        loop {
            self.announce();
            let pending = self.timeline.next().is_some();
            let wake = tokio::select! {
                () = self.replay.shutdown.cancelled() => Wake::Shutdown,
                message = self.socket.recv() => Wake::Client(message),
                () = due(&self.timeline, &mut self.steps, self.consumed), if pending => Wake::Due,
                _ = ping.tick(), if heartbeat => Wake::Ping,
            };
            if let ControlFlow::Break(end) = self.on(wake).await {
                return end;
            }
        }
    }

    async fn on(&mut self, wake: Wake) -> ControlFlow<End> {
        match wake {
            Wake::Shutdown => ControlFlow::Break(self.going_away().await),
            Wake::Client(message) => self.client(message),
            Wake::Due => self.send_next().await,
            Wake::Ping => self.ping().await,
        }
    }

    /// `--step`: says once per frame that it waits for Enter.
    fn announce(&mut self) {
        let stepping = self.steps.as_ref().is_some_and(|s| !s.borrow().ended);
        let Some(index) = self.timeline.next() else {
            return;
        };
        if !stepping || self.announced {
            return;
        }
        self.announced = true;
        let frames = &self.timeline.served.stream.frames;
        let _ = self.replay.notices.send(Notice::Waiting {
            session: self.id,
            frame: index + 1,
            of: frames.len(),
            label: label(&frames[index].text),
        });
    }

    fn client(&mut self, message: Option<Result<Message, axum::Error>>) -> ControlFlow<End> {
        match message {
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                ControlFlow::Break(End::ClientClosed)
            }
            // Pings are answered by the WebSocket layer; anything shows the peer is alive.
            Some(Ok(_)) => {
                self.alive = true;
                ControlFlow::Continue(())
            }
        }
    }

    /// Sends the frame that is due and moves on.
    async fn send_next(&mut self) -> ControlFlow<End> {
        let Some(index) = self.timeline.next() else {
            return ControlFlow::Continue(());
        };
        let pass = self.timeline.pass;
        let stepped = match &self.steps {
            Some(steps) => steps.borrow().count > self.consumed,
            None => false,
        };
        let frame = &self.timeline.served.stream.frames[index];
        let text = if frame.event {
            self.timeline.seq += 1;
            let org = (self.timeline.served.rewrite_from.as_deref()).map(|from| (from, self.org));
            render(&frame.text, self.timeline.seq, org)
        } else {
            frame.text.clone()
        };
        if let Err(end) = self.write(text).await {
            return ControlFlow::Break(end);
        }
        self.sent += 1;
        self.replay.totals.frames.fetch_add(1, Ordering::Relaxed);
        if stepped {
            self.consumed += 1;
            self.timeline.rebase(pass, index);
        }
        self.announced = false;
        self.timeline.index += 1;
        self.timeline.normalise();
        if self.timeline.next().is_none() {
            self.ended();
        }
        if self.timeline.speed == Speed::Max {
            // A looping recording at full speed must not hold the worker thread.
            tokio::task::yield_now().await;
        }
        ControlFlow::Continue(())
    }

    fn ended(&self) {
        let _ = self.replay.notices.send(Notice::Ended {
            session: self.id,
            sent: self.sent,
        });
    }

    async fn write(&mut self, text: String) -> Result<(), End> {
        let send = self.socket.send(Message::Text(text.into()));
        match tokio::time::timeout(WRITE_TIMEOUT, send).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::WriteFailed),
        }
    }

    /// The heartbeat: a peer silent since the last ping is dead.
    async fn ping(&mut self) -> ControlFlow<End> {
        if !self.alive {
            return ControlFlow::Break(End::DeadPeer);
        }
        self.alive = false;
        let ping = self.socket.send(Message::Ping(Default::default()));
        match tokio::time::timeout(WRITE_TIMEOUT, ping).await {
            Ok(Ok(())) => ControlFlow::Continue(()),
            _ => ControlFlow::Break(End::WriteFailed),
        }
    }

    async fn going_away(&mut self) -> End {
        crate::server::ws::close(self.socket, CLOSE_GOING_AWAY, "server shutting down").await;
        End::Shutdown
    }
}

/// Resolves when the next frame may go: at a `--step` press not used yet (while
/// stdin is open), else at its time.
async fn due(timeline: &Timeline, steps: &mut Option<watch::Receiver<Presses>>, consumed: u64) {
    if let Some(steps) = steps {
        loop {
            let presses = *steps.borrow_and_update();
            if presses.count > consumed {
                return;
            }
            if presses.ended || steps.changed().await.is_err() {
                break;
            }
        }
    }
    tokio::time::sleep_until(timeline.deadline()).await;
}

/// A recorded event as this session sends it: its `seq`, `timestamp` (and
/// `publishedAtUs`, if it had one) of now, and with `--org` the organization it is
/// served as in place of the recorded one (`org`: recorded, served).
fn render(text: &str, seq: u64, org: Option<(&str, &str)>) -> String {
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(text) else {
        return text.to_string();
    };
    map.insert("seq".into(), seq.into());
    if map.contains_key("timestamp") {
        let now = serde_json::to_value(Timestamp::now()).unwrap_or(Value::Null);
        map.insert("timestamp".into(), now);
    }
    if map.contains_key("publishedAtUs") {
        let us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        map.insert("publishedAtUs".into(), us.into());
    }
    if let Some((recorded, served)) = org
        && map.get("organizationId").and_then(Value::as_str) == Some(recorded)
    {
        map.insert("organizationId".into(), served.into());
    }
    serde_json::to_string(&map).unwrap_or_else(|_| text.to_string())
}

/// A frame's `type` and `pfaId`, for the `--step` prompt (peer text: the reporter
/// escapes it).
fn label(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => {
            let field = |name| map.get(name).and_then(Value::as_str).unwrap_or("");
            format!("{} {}", field("type"), field("pfaId"))
                .trim()
                .to_string()
        }
        _ => "a frame that is not a JSON object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::replay::{Frame, Options, Stream};

    fn served(ats: &[u64], events: &[bool]) -> Arc<Served> {
        let frames: Vec<Frame> = ats
            .iter()
            .zip(events)
            .map(|(&ms, &event)| Frame {
                at: Duration::from_millis(ms),
                text: "{}".into(),
                event,
            })
            .collect();
        let numbered = (0..frames.len()).filter(|&i| frames[i].event).collect();
        Arc::new(Served {
            stream: Stream {
                org: Some("o".into()),
                frames,
            },
            numbered,
            rewrite_from: None,
        })
    }

    fn options(looping: bool) -> Options {
        Options {
            speed: Speed::Times(1.0),
            looping,
            steps: None,
            ping_interval: Duration::ZERO,
        }
    }

    #[test]
    fn resuming_starts_after_the_nth_numbered_frame() {
        let s = served(&[100, 200, 300], &[true, false, true]);
        let (t, ok) = Timeline::new(s.clone(), &options(false), Some(1));
        assert!(ok);
        assert_eq!(
            (t.index, t.pass, t.seq, t.base),
            (1, 0, 1, Duration::from_millis(100))
        );
        let (t, ok) = Timeline::new(s.clone(), &options(false), Some(2));
        assert!(ok);
        assert_eq!(t.next(), None);
        let (t, ok) = Timeline::new(s.clone(), &options(false), Some(3));
        assert!(!ok);
        assert_eq!((t.index, t.seq), (0, 0));
        // Looping: seq 3 is the first event of the second pass.
        let (t, ok) = Timeline::new(s, &options(true), Some(3));
        assert!(ok);
        assert_eq!((t.index, t.pass, t.seq), (1, 1, 3));
        assert_eq!(t.base, Duration::from_millis(400));
    }

    #[test]
    fn events_are_renumbered_and_restamped() {
        let text = r#"{"type":"SYNC_QUEUED","organizationId":"rec","pfaId":"P","timestamp":"2020-01-01T00:00:00.000Z","seq":99}"#;
        let out: Value = serde_json::from_str(&render(text, 7, Some(("rec", "new")))).unwrap();
        assert_eq!(out["seq"], 7);
        assert_eq!(out["organizationId"], "new");
        assert_ne!(out["timestamp"], "2020-01-01T00:00:00.000Z");
        assert_eq!(label(text), "SYNC_QUEUED P");
        let other = r#"{"organizationId":"other"}"#;
        let out: Value = serde_json::from_str(&render(other, 1, Some(("rec", "new")))).unwrap();
        assert_eq!(out["organizationId"], "other");
    }
}
