//! Reading a recorded session for `replay`: a `watch-sync --record` file (NDJSON,
//! one line per received frame: `receivedAt`, `receivedAtUs`, `frame`; a frame that
//! was not JSON is a JSON string) or a browser HAR file (the `receive` messages of
//! its `_webSocketMessages` on `/api/ws/sync/{org}`), told apart by content.
//!
//! Everything read is bounded: a line longer than a frame of the size limit could
//! take is an error before it is kept, and so is a frame over the limit, a HAR file
//! over [`MAX_HAR_BYTES`] and a recording over [`MAX_RECORDING_BYTES`] of frames.
//! Recorded `CONNECTED` frames are dropped: every replayed session gets a fresh one.

use std::io::{BufRead, Read};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::exit::Failure;

/// Largest HAR file read (it is parsed whole; browsers put response bodies in it).
pub const MAX_HAR_BYTES: u64 = 256 << 20;
/// Most frame bytes a recording may hold in all (every frame is kept in memory).
pub const MAX_RECORDING_BYTES: usize = 512 << 20;
/// What a recorded line holds besides its frame (field names, the times).
const LINE_OVERHEAD: usize = 4096;
/// A frame that was not JSON is recorded as a JSON string, where one byte takes up
/// to six (`\u0000`).
const ESCAPE_FACTOR: usize = 6;
/// How far into the file the format is told (the first key of the first object).
const SNIFF_BYTES: usize = 4096;

/// Which kind of file a recording came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `watch-sync --record`.
    WatchSync,
    /// A browser's HAR export.
    Har,
}

impl Format {
    pub fn describe(self) -> &'static str {
        match self {
            Format::WatchSync => "watch-sync recording",
            Format::Har => "HAR file",
        }
    }
}

/// One recorded frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// When it was received, from the start of its stream.
    pub at: Duration,
    /// The frame's text as it was received.
    pub text: String,
    /// Whether it is a JSON object (a sync event: it gets a `seq`); anything else is
    /// replayed unchanged and unnumbered.
    pub event: bool,
}

/// The frames of one organization's socket, in the order received.
#[derive(Clone, Debug, PartialEq)]
pub struct Stream {
    /// The organization, when the recording names it.
    pub org: Option<String>,
    pub frames: Vec<Frame>,
}

impl Stream {
    /// Frames that get a `seq`.
    pub fn events(&self) -> usize {
        self.frames.iter().filter(|f| f.event).count()
    }

    /// From the start to the last frame.
    pub fn duration(&self) -> Duration {
        self.frames.last().map_or(Duration::ZERO, |f| f.at)
    }
}

/// A recording: one stream per organization, in order of first appearance.
#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    pub format: Format,
    pub streams: Vec<Stream>,
}

/// Reads `path`, a watch-sync recording or a HAR file; frames over `max_message`
/// bytes are an error.
pub fn load(path: &Path, max_message: usize) -> anyhow::Result<Recording> {
    let shown = path.display();
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::Runtime(format!("failed to open the recording {shown}: {e}")))?;
    let mut reader = std::io::BufReader::new(file);
    let start = reader
        .fill_buf()
        .map_err(|e| Failure::Runtime(format!("failed to read {shown}: {e}")))?;
    let head = &start[..start.len().min(SNIFF_BYTES)];
    let recording = if first_key(head).as_deref() == Some("log") {
        read_har(&mut reader, max_message)
    } else {
        read_ndjson(&mut reader, max_message)
    };
    recording.map_err(|message| Failure::Runtime(format!("{shown}: {message}")).into())
}

/// The first key of the JSON object `bytes` start with, if it is there.
fn first_key(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let rest = text.trim_start_matches('\u{feff}').trim_start();
    let rest = rest.strip_prefix('{')?.trim_start();
    let mut de = serde_json::Deserializer::from_str(rest);
    String::deserialize(&mut de).ok()
}

/// One line of a watch-sync recording.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    #[serde(default)]
    received_at: Option<crate::protocol::Timestamp>,
    #[serde(default)]
    received_at_us: Option<u64>,
    #[serde(borrow)]
    frame: &'a RawValue,
}

/// What a line holds: its time (µs since the epoch) and the frame's text.
fn parse_line(line: &str) -> Result<(u64, String), String> {
    let line: Line = serde_json::from_str(line).map_err(|e| {
        format!("not a watch-sync record line ({e}): expected {{\"receivedAt\",\"receivedAtUs\",\"frame\"}}")
    })?;
    let at = match (line.received_at_us, &line.received_at) {
        (Some(us), _) => us,
        (None, Some(t)) => t.0.timestamp_micros().max(0) as u64,
        (None, None) => return Err("the line has neither receivedAtUs nor receivedAt".into()),
    };
    let raw = line.frame.get();
    let text = if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).map_err(|e| format!("the frame: {e}"))?
    } else {
        raw.to_string()
    };
    Ok((at, text))
}

/// Reads a line of at most `max` bytes (without its newline) into `buf`: `Ok(false)`
/// at the end, an error for a longer line (of which no more than `max` is kept).
fn bounded_line(reader: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> Result<bool, String> {
    buf.clear();
    loop {
        let available = reader.fill_buf().map_err(|e| format!("read failed: {e}"))?;
        if available.is_empty() {
            return Ok(!buf.is_empty());
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], Some(at + 1)),
            None => (available, None),
        };
        if buf.len() + chunk.len() > max {
            return Err(format!("the line is longer than {max} bytes"));
        }
        buf.extend_from_slice(chunk);
        let used = done.unwrap_or(chunk.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(true);
        }
    }
}

/// The organizations and kinds of a frame: (is a JSON object, is CONNECTED, its
/// organizationId).
fn classify(text: &str) -> (bool, bool, Option<String>) {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => (
            true,
            map.get("type").and_then(Value::as_str) == Some("CONNECTED"),
            map.get("organizationId")
                .and_then(Value::as_str)
                .map(String::from),
        ),
        _ => (false, false, None),
    }
}

/// Collects frames, checking the size limits and dropping CONNECTED.
struct Builder {
    max_message: usize,
    total: usize,
    start: Option<u64>,
    org: Option<String>,
    frames: Vec<Frame>,
}

impl Builder {
    fn new(max_message: usize) -> Builder {
        Builder {
            max_message,
            total: 0,
            start: None,
            org: None,
            frames: Vec::new(),
        }
    }

    /// Adds the frame received at `at_us`; CONNECTED names the organization.
    fn push(&mut self, at_us: u64, text: String) -> Result<(), String> {
        if text.len() > self.max_message {
            return Err(format!(
                "the frame is {} bytes, over --max-message-size ({} bytes)",
                text.len(),
                self.max_message
            ));
        }
        self.total += text.len();
        if self.total > MAX_RECORDING_BYTES {
            return Err(format!(
                "the recording holds more than {MAX_RECORDING_BYTES} bytes of frames"
            ));
        }
        let start = *self.start.get_or_insert(at_us);
        let (event, connected, org) = classify(&text);
        if connected {
            if self.org.is_none() {
                self.org = org;
            }
            return Ok(());
        }
        if self.org.is_none() {
            self.org = org;
        }
        self.frames.push(Frame {
            // A clock that stepped back gives no negative gap.
            at: Duration::from_micros(at_us.saturating_sub(start)),
            text,
            event,
        });
        Ok(())
    }
}

fn read_ndjson(reader: &mut impl BufRead, max_message: usize) -> Result<Recording, String> {
    let max_line = max_message.saturating_mul(ESCAPE_FACTOR) + LINE_OVERHEAD;
    let mut builder = Builder::new(max_message);
    let mut buf = Vec::new();
    let mut number = 0u64;
    let mut lines = 0u64;
    loop {
        number += 1;
        let more =
            bounded_line(reader, &mut buf, max_line).map_err(|e| format!("line {number}: {e}"))?;
        if !more {
            break;
        }
        let line = std::str::from_utf8(&buf)
            .map_err(|_| format!("line {number}: not UTF-8"))?
            .trim();
        if line.is_empty() {
            continue;
        }
        lines += 1;
        let (at, text) = parse_line(line).map_err(|e| format!("line {number}: {e}"))?;
        builder
            .push(at, text)
            .map_err(|e| format!("line {number}: {e}"))?;
    }
    if lines == 0 {
        return Err("the recording is empty (no recorded frames)".into());
    }
    Ok(Recording {
        format: Format::WatchSync,
        streams: vec![Stream {
            org: builder.org,
            frames: builder.frames,
        }],
    })
}

#[derive(Deserialize)]
struct Har {
    log: HarLog,
}

#[derive(Deserialize)]
struct HarLog {
    #[serde(default)]
    entries: Vec<HarEntry>,
}

#[derive(Deserialize)]
struct HarEntry {
    request: HarRequest,
    #[serde(default, rename = "_webSocketMessages")]
    messages: Option<Vec<HarMessage>>,
}

#[derive(Deserialize)]
struct HarRequest {
    url: String,
}

#[derive(Deserialize)]
struct HarMessage {
    #[serde(rename = "type")]
    kind: String,
    /// Seconds since the Unix epoch.
    time: f64,
    /// 1 text, 2 binary (base64 `data`).
    #[serde(default)]
    opcode: Option<u8>,
    #[serde(default)]
    data: String,
}

/// The organization of a sync socket URL (`…/api/ws/sync/{org}`).
fn sync_org(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let mut segments: Vec<String> = url
        .path_segments()?
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    if segments.last().is_some_and(String::is_empty) {
        segments.pop();
    }
    match segments.as_slice() {
        [api, ws, sync, org] if api == "api" && ws == "ws" && sync == "sync" && !org.is_empty() => {
            Some(org.clone())
        }
        _ => None,
    }
}

fn read_har(reader: &mut impl Read, max_message: usize) -> Result<Recording, String> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_HAR_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("read failed: {e}"))?;
    if bytes.len() as u64 > MAX_HAR_BYTES {
        return Err(format!("the HAR file is larger than {MAX_HAR_BYTES} bytes"));
    }
    let har: Har = serde_json::from_slice(&bytes).map_err(|e| format!("not a HAR file: {e}"))?;
    drop(bytes);
    // Per organization, every received text message of its sockets: (µs, text).
    let mut by_org: Vec<(String, Vec<(u64, String)>)> = Vec::new();
    for (n, entry) in har.log.entries.into_iter().enumerate() {
        let (Some(messages), Some(org)) = (entry.messages, sync_org(&entry.request.url)) else {
            continue;
        };
        let at = match by_org.iter().position(|(o, _)| *o == org) {
            Some(at) => at,
            None => {
                by_org.push((org, Vec::new()));
                by_org.len() - 1
            }
        };
        for (m, message) in messages.into_iter().enumerate() {
            if message.kind != "receive" || message.opcode.is_some_and(|op| op != 1) {
                continue;
            }
            if !(message.time.is_finite() && message.time >= 0.0) {
                return Err(format!(
                    "entry {}, message {}: time must be seconds since the Unix epoch, not {}",
                    n + 1,
                    m + 1,
                    message.time
                ));
            }
            by_org[at]
                .1
                .push(((message.time * 1e6) as u64, message.data));
        }
    }
    if by_org.is_empty() {
        return Err(
            "the HAR file has no WebSocket messages on /api/ws/sync/{org} (export it with the socket's messages: DevTools, Network, \"Save all as HAR with content\")"
                .into(),
        );
    }
    let mut streams = Vec::new();
    let mut total = 0;
    for (org, mut messages) in by_org {
        // Several sockets of one organization (reconnections) become one stream.
        messages.sort_by_key(|(at, _)| *at);
        let mut builder = Builder::new(max_message);
        builder.total = total;
        for (at, text) in messages {
            builder
                .push(at, text)
                .map_err(|e| format!("organization {org}: {e}"))?;
        }
        total = builder.total;
        streams.push(Stream {
            org: Some(org),
            frames: builder.frames,
        });
    }
    Ok(Recording {
        format: Format::Har,
        streams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ndjson(text: &str, max: usize) -> Result<Recording, String> {
        read_ndjson(&mut std::io::Cursor::new(text.as_bytes()), max)
    }

    #[test]
    fn the_format_is_told_by_the_first_key() {
        assert_eq!(first_key(b"  {\"log\": {"), Some("log".into()));
        assert_eq!(
            first_key(b"{\"receivedAt\":\"x\"}"),
            Some("receivedAt".into())
        );
        assert_eq!(first_key(b"\xef\xbb\xbf{ \"log\""), Some("log".into()));
        assert_eq!(first_key(b"[1]"), None);
    }

    #[test]
    fn recorded_lines_become_frames_without_connected() {
        let text = concat!(
            r#"{"receivedAt":"2025-11-28T10:00:00.000Z","receivedAtUs":1000000,"frame":{"type":"CONNECTED","organizationId":"org-a","timestamp":"2025-11-28T10:00:00.000Z"}}"#,
            "\n",
            r#"{"receivedAt":"2025-11-28T10:00:00.400Z","receivedAtUs":1400000,"frame":{"type":"SYNC_QUEUED","pfaId":"P"}}"#,
            "\n\n",
            r#"{"receivedAtUs":1500000,"frame":"not json"}"#,
            "\n",
        );
        let recording = ndjson(text, 1024).unwrap();
        let stream = &recording.streams[0];
        assert_eq!(stream.org.as_deref(), Some("org-a"));
        assert_eq!(stream.frames.len(), 2);
        assert_eq!(stream.frames[0].at, Duration::from_millis(400));
        assert!(stream.frames[0].event);
        assert_eq!(stream.frames[1].text, "not json");
        assert!(!stream.frames[1].event);
        assert_eq!(stream.events(), 1);
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let good = r#"{"receivedAtUs":1,"frame":{"type":"X"}}"#;
        let err = ndjson(&format!("{good}\n{good}\n{{oops\n"), 1024).unwrap_err();
        assert!(
            err.starts_with("line 3: not a watch-sync record line"),
            "{err}"
        );
        let err = ndjson(&format!("{good}\n{{\"frame\":1}}\n"), 1024).unwrap_err();
        assert!(err.contains("line 2: the line has neither"), "{err}");
        let big = format!(r#"{{"receivedAtUs":1,"frame":"{}"}}"#, "x".repeat(200));
        let err = ndjson(&big, 100).unwrap_err();
        assert!(
            err.contains("line 1: the frame is 200 bytes, over --max-message-size"),
            "{err}"
        );
        let huge = "x".repeat(100 * ESCAPE_FACTOR + LINE_OVERHEAD + 1);
        let err = ndjson(&huge, 100).unwrap_err();
        assert!(err.starts_with("line 1: the line is longer than"), "{err}");
        assert!(ndjson("\n\n", 100).unwrap_err().contains("empty"));
    }

    fn har(text: &str) -> Result<Recording, String> {
        read_har(&mut std::io::Cursor::new(text.as_bytes()), 1024)
    }

    #[test]
    fn har_files_need_sync_sockets_and_sane_times() {
        let entry = |url: &str, time: &str| {
            format!(
                r#"{{"log":{{"entries":[{{"request":{{"url":"{url}"}},"_webSocketMessages":[{{"type":"receive","time":{time},"opcode":1,"data":"{{}}"}}]}}]}}}}"#
            )
        };
        let err = har(&entry("ws://h/api/ws/echo", "1.5")).unwrap_err();
        assert!(
            err.contains("no WebSocket messages on /api/ws/sync/{org}"),
            "{err}"
        );
        let err = har(&entry("ws://h/api/ws/sync/o", "-1")).unwrap_err();
        assert!(
            err.contains("entry 1, message 1: time must be seconds"),
            "{err}"
        );
        let ok = har(&entry("ws://h/api/ws/sync/o", "1.5")).unwrap();
        assert_eq!(ok.streams[0].org.as_deref(), Some("o"));
        assert_eq!(ok.streams[0].frames.len(), 1);
        assert!(
            har("{\"log\": [")
                .unwrap_err()
                .starts_with("not a HAR file")
        );
    }

    #[test]
    fn sync_urls_name_their_organization() {
        assert_eq!(
            sync_org("wss://h/api/ws/sync/org-a?since=3"),
            Some("org-a".into())
        );
        assert_eq!(
            sync_org("ws://h:3000/api/ws/sync/org%20b/"),
            Some("org b".into())
        );
        assert_eq!(sync_org("ws://h/api/ws/echo"), None);
        assert_eq!(sync_org("ws://h/api/ws/sync/"), None);
    }
}
