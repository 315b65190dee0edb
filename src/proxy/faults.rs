//! The faults a proxy injects, as plain values: their spellings (one parser, used by
//! the command line and the control API alike), the live list with its ids, and the
//! per-connection decisions (seeded, so a `--seed` replays them).
//!
//! Network faults carry toxiproxy's names and semantics (Shopify/toxiproxy
//! `toxics/*.go`): `latency` (+ jitter) delays every chunk, `bandwidth` paces bytes,
//! `slicer` splits writes, `timeout` stops forwarding and closes after a while,
//! `reset_peer` resets the TCP connection, `limit_data` closes after N bytes. As in
//! toxiproxy, a network fault's probability ("toxicity") is decided once per
//! connection and direction. A message fault's probability is drawn per frame.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

/// Which way bytes flow: `up` is client → upstream, `down` upstream → client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
    Both,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Both => "both",
        }
    }

    /// Whether a fault set for `self` acts on bytes flowing `lane`.
    pub fn covers(self, lane: Direction) -> bool {
        self == Direction::Both || self == lane
    }
}

/// What a message fault matches: an event type and `--where` rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Matcher {
    /// The full event type (`SYNC_PROCESSING`).
    pub event_type: String,
    pub wheres: Vec<(String, String)>,
}

impl Matcher {
    /// Whether a frame of `event_type` (its JSON in `value`) is one of ours.
    pub fn matches(&self, event_type: Option<&str>, value: Option<&serde_json::Value>) -> bool {
        event_type == Some(self.event_type.as_str())
            && (self.wheres.is_empty()
                || value.is_some_and(|v| crate::check::matches_wheres(v, &self.wheres)))
    }
}

/// One fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    Latency {
        delay: Duration,
        jitter: Duration,
    },
    /// Bytes per second.
    Bandwidth {
        rate: u32,
    },
    /// Splits writes into pieces of about `size` bytes, `delay` apart.
    Slicer {
        size: usize,
        delay: Duration,
    },
    Timeout(Duration),
    ResetPeer(Duration),
    LimitData(u64),
    Drop(Matcher),
    Duplicate(Matcher),
    Delay(Matcher, Duration),
    Reorder,
    Corrupt(Matcher),
    HoldConnected(Duration),
    CloseAfter {
        frames: u64,
        code: u16,
    },
    RefuseUpgrade(u16),
    SwallowPings,
}

impl Fault {
    /// The fault's name, as its flag and the control API spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Latency { .. } => "latency",
            Fault::Bandwidth { .. } => "bandwidth",
            Fault::Slicer { .. } => "slicer",
            Fault::Timeout(_) => "timeout",
            Fault::ResetPeer(_) => "reset-peer",
            Fault::LimitData(_) => "limit-data",
            Fault::Drop(_) => "drop",
            Fault::Duplicate(_) => "duplicate",
            Fault::Delay(..) => "delay",
            Fault::Reorder => "reorder",
            Fault::Corrupt(_) => "corrupt",
            Fault::HoldConnected(_) => "hold-connected",
            Fault::CloseAfter { .. } => "close-after",
            Fault::RefuseUpgrade(_) => "refuse-upgrade",
            Fault::SwallowPings => "swallow-pings",
        }
    }

    /// Whether it acts on bytes (else on WebSocket messages or the upgrade).
    pub fn is_network(&self) -> bool {
        matches!(
            self,
            Fault::Latency { .. }
                | Fault::Bandwidth { .. }
                | Fault::Slicer { .. }
                | Fault::Timeout(_)
                | Fault::ResetPeer(_)
                | Fault::LimitData(_)
        )
    }

    /// The message matcher, for faults that have one.
    pub fn matcher_mut(&mut self) -> Option<&mut Matcher> {
        match self {
            Fault::Drop(m) | Fault::Duplicate(m) | Fault::Delay(m, _) | Fault::Corrupt(m) => {
                Some(m)
            }
            _ => None,
        }
    }
}

/// A fault with where and how often it acts, as listed by the control API.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSpec {
    pub fault: Fault,
    pub direction: Direction,
    pub probability: f64,
    /// The value as written (`SYNC_PROCESSING:0.5`, `300ms:down`).
    pub written: String,
}

/// Every fault name [`parse`] knows.
pub const NAMES: [&str; 15] = [
    "latency",
    "bandwidth",
    "slicer",
    "timeout",
    "reset-peer",
    "limit-data",
    "drop",
    "duplicate",
    "delay",
    "reorder",
    "corrupt",
    "hold-connected",
    "close-after",
    "refuse-upgrade",
    "swallow-pings",
];

/// Default piece of `slicer` (toxiproxy's own example: 64 bytes, ±32).
const SLICE_SIZE: usize = 64;
/// Default pause between the pieces of `slicer`.
const SLICE_DELAY: Duration = Duration::from_millis(1);

/// Parses fault `name` with its value as written after the flag. Network faults
/// take `VALUE[:DIRECTION][:P]` (direction `up`, `down` or `both`, the default;
/// `P` from 0 to 1, default 1); message faults `TYPE[:P]`, `TYPE:DURATION`, `P`,
/// `N:CODE` or `STATUS[:P]` as their flags say.
pub fn parse(name: &str, value: &str) -> Result<FaultSpec, String> {
    let value = value.trim();
    let spec = |fault, direction, probability| FaultSpec {
        fault,
        direction,
        probability,
        written: value.to_string(),
    };
    match name {
        "latency" | "bandwidth" | "slicer" | "timeout" | "reset-peer" | "limit-data" => {
            let (head, direction, p) = network_options(value)?;
            Ok(spec(network_fault(name, head)?, direction, p))
        }
        "drop" | "duplicate" | "corrupt" => {
            let (event_type, p) = type_and_probability(value)?;
            let matcher = Matcher {
                event_type,
                wheres: Vec::new(),
            };
            let fault = match name {
                "drop" => Fault::Drop(matcher),
                "duplicate" => Fault::Duplicate(matcher),
                _ => Fault::Corrupt(matcher),
            };
            Ok(spec(fault, Direction::Down, p))
        }
        "delay" => {
            let (event_type, by) = value
                .rsplit_once(':')
                .ok_or_else(|| format!("{value:?} is not TYPE:DURATION (SYNC_SUCCESS:2s)"))?;
            let matcher = Matcher {
                event_type: event_type_of(event_type)?,
                wheres: Vec::new(),
            };
            Ok(spec(
                Fault::Delay(matcher, duration(by)?),
                Direction::Down,
                1.0,
            ))
        }
        "reorder" => Ok(spec(Fault::Reorder, Direction::Down, probability(value)?)),
        "hold-connected" => Ok(spec(
            Fault::HoldConnected(duration(value)?),
            Direction::Down,
            1.0,
        )),
        "close-after" => close_after(value).map(|f| spec(f, Direction::Down, 1.0)),
        "refuse-upgrade" => {
            let (status, p) = match value.split_once(':') {
                Some((status, p)) => (status, probability(p)?),
                None => (value, 1.0),
            };
            let fault = Fault::RefuseUpgrade(refusal_status(status)?);
            Ok(spec(fault, Direction::Up, p))
        }
        "swallow-pings" => Ok(spec(Fault::SwallowPings, Direction::Both, 1.0)),
        other => Err(format!(
            "unknown fault {other:?} (one of {})",
            NAMES.join(", ")
        )),
    }
}

/// Splits `VALUE[:DIRECTION][:P]`.
fn network_options(value: &str) -> Result<(&str, Direction, f64), String> {
    let mut parts = value.split(':');
    let head = parts.next().unwrap_or_default();
    let (mut direction, mut p) = (Direction::Both, 1.0);
    for part in parts {
        match part {
            "up" => direction = Direction::Up,
            "down" => direction = Direction::Down,
            "both" => direction = Direction::Both,
            other => {
                p = probability(other).map_err(|e| {
                    format!(
                        "{e}; after the value come a direction (up, down, both) and a probability"
                    )
                })?
            }
        }
    }
    Ok((head, direction, p))
}

fn network_fault(name: &str, head: &str) -> Result<Fault, String> {
    Ok(match name {
        "latency" => {
            let (delay, jitter) = match head.split_once('~') {
                Some((d, j)) => (duration(d)?, duration(j)?),
                None => (duration(head)?, Duration::ZERO),
            };
            Fault::Latency { delay, jitter }
        }
        "bandwidth" => Fault::Bandwidth {
            rate: parse_bandwidth(head)?,
        },
        "slicer" if head.is_empty() => Fault::Slicer {
            size: SLICE_SIZE,
            delay: SLICE_DELAY,
        },
        "slicer" => Fault::Slicer {
            size: bytes(head).and_then(|n| {
                usize::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("a slice is at least 1 byte".to_string())
            })?,
            delay: SLICE_DELAY,
        },
        "timeout" if head.is_empty() => Fault::Timeout(Duration::ZERO),
        "timeout" => Fault::Timeout(duration(head)?),
        "reset-peer" if head.is_empty() => Fault::ResetPeer(Duration::ZERO),
        "reset-peer" => Fault::ResetPeer(duration(head)?),
        _ => Fault::LimitData(bytes(head)?),
    })
}

fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.starts_with('-') {
        return Err("durations cannot be negative".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?}: {e} (write durations like 500ms, 5s or 2m)"))
}

fn probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a probability (a number from 0 to 1)")),
    }
}

fn bytes(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| format!("{s:?} is not a number of bytes"))
}

/// A full event type of the protocol (`processing` → `SYNC_PROCESSING`); an
/// unknown one is refused with the nearest name.
fn event_type_of(written: &str) -> Result<String, String> {
    crate::expect::check_type_name(written, &[])
        .map_err(|e| e.replace("; a custom type needs --allow-type NAME", ""))?;
    Ok(crate::expect::event_type_name(written))
}

fn type_and_probability(value: &str) -> Result<(String, f64), String> {
    match value.split_once(':') {
        Some((t, p)) => Ok((event_type_of(t)?, probability(p)?)),
        None => Ok((event_type_of(value)?, 1.0)),
    }
}

fn close_after(value: &str) -> Result<Fault, String> {
    let (n, code) = value
        .split_once(':')
        .ok_or_else(|| format!("{value:?} is not N:CODE (5:1011)"))?;
    let frames = n
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{n:?} is not a number of frames"))?;
    let code = code
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|c| (1000..=4999).contains(c) && ![1004, 1005, 1006, 1015].contains(c))
        .ok_or_else(|| {
            format!(
                "{code:?} is not a close code that can be sent (1000-4999, not 1004-1006 or 1015)"
            )
        })?;
    Ok(Fault::CloseAfter { frames, code })
}

fn refusal_status(s: &str) -> Result<u16, String> {
    s.trim()
        .parse::<u16>()
        .ok()
        .filter(|s| (400..=599).contains(s))
        .ok_or_else(|| format!("{s:?} is not an HTTP error status (400-599)"))
}

/// Parses a rate: `500kbit`, `1.5mbit`, `64kB`, `2MB` (per second; k and M are
/// 1000 and 1000², as network rates are written), to bytes per second.
pub fn parse_bandwidth(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a rate (write 500kbit, 2mbit or 64kB)"))?;
    let bits_per_unit = match unit.trim() {
        "bit" | "bps" => 1.0,
        "kbit" | "kbps" => 1e3,
        "mbit" | "Mbit" | "mbps" => 1e6,
        "gbit" | "Gbit" => 1e9,
        "B" => 8.0,
        "kB" | "KB" => 8e3,
        "MB" => 8e6,
        other => {
            return Err(format!(
                "{other:?} is not a rate unit (bit, kbit, mbit, gbit, B, kB, MB: per second)"
            ));
        }
    };
    let rate = (number * bits_per_unit / 8.0).round();
    if !(1.0..=u32::MAX as f64).contains(&rate) {
        return Err(format!("{s:?} is out of range (1 B/s to 4 GB/s)"));
    }
    Ok(rate as u32)
}

/// The network conditions browsers emulate, as Chrome DevTools defines them
/// (`front_end/core/sdk/NetworkManager.ts`): round-trip latency, then download
/// and upload in bytes per second. `slow-3g` is Chrome's "3G" (once "Slow 3G"),
/// `fast-3g` and `slow-4g` its "Slow 4G" (once "Fast 3G"), `fast-4g` its "Fast 4G".
pub fn profile(name: &str) -> Option<(Duration, u32, u32)> {
    match name {
        // 400 ms × 5, 500 kbit/s × 0.8 both ways.
        "slow-3g" => Some((Duration::from_millis(2000), 50_000, 50_000)),
        // 150 ms × 3.75, 1.6 Mbit/s × 0.9 down, 750 kbit/s × 0.9 up.
        "fast-3g" | "slow-4g" => Some((Duration::from_micros(562_500), 180_000, 84_375)),
        // 60 ms × 2.75, 9 Mbit/s × 0.9 down, 1.5 Mbit/s × 0.9 up.
        "fast-4g" => Some((Duration::from_millis(165), 1_012_500, 168_750)),
        _ => None,
    }
}

/// The faults of a profile: half the round trip each way, and the two rates.
pub fn profile_faults(name: &str) -> Option<Vec<FaultSpec>> {
    let (rtt, down, up) = profile(name)?;
    let half = rtt / 2;
    let spec = |fault, direction: Direction| FaultSpec {
        written: format!("{} (--profile {name})", fault_value(&fault)),
        fault,
        direction,
        probability: 1.0,
    };
    Some(vec![
        spec(
            Fault::Latency {
                delay: half,
                jitter: Duration::ZERO,
            },
            Direction::Up,
        ),
        spec(
            Fault::Latency {
                delay: half,
                jitter: Duration::ZERO,
            },
            Direction::Down,
        ),
        spec(Fault::Bandwidth { rate: down }, Direction::Down),
        spec(Fault::Bandwidth { rate: up }, Direction::Up),
    ])
}

fn fault_value(fault: &Fault) -> String {
    match fault {
        Fault::Latency { delay, .. } => humantime::format_duration(*delay).to_string(),
        Fault::Bandwidth { rate } => format!("{rate}B"),
        _ => String::new(),
    }
}

/// The live faults, numbered from 1 in the order they were added.
#[derive(Debug, Default)]
pub struct FaultList {
    next: u64,
    faults: Vec<(u64, FaultSpec)>,
}

impl FaultList {
    /// Adds a fault, returning its id.
    pub fn add(&mut self, spec: FaultSpec) -> u64 {
        self.next += 1;
        self.faults.push((self.next, spec));
        self.next
    }

    /// Removes a fault; `false` when no fault has that id.
    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.faults.len();
        self.faults.retain(|(i, _)| *i != id);
        self.faults.len() != before
    }

    pub fn clear(&mut self) {
        self.faults.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = &(u64, FaultSpec)> {
        self.faults.iter()
    }

    /// A copy of the faults that act on `network` bytes (or on messages).
    pub fn snapshot(&self, network: bool) -> Vec<(u64, FaultSpec)> {
        self.faults
            .iter()
            .filter(|(_, s)| s.fault.is_network() == network)
            .cloned()
            .collect()
    }
}

/// The random decisions of one part of one connection. Each connection has its own
/// generators, seeded from `--seed`, the connection id and the part (`lane`), so
/// the decisions do not depend on how the tasks were scheduled.
pub struct Dice {
    rng: StdRng,
}

/// The parts of a connection that draw: the two byte directions and the messages.
pub const LANE_UP: u64 = 1;
pub const LANE_DOWN: u64 = 2;
pub const LANE_MESSAGES: u64 = 3;

impl Dice {
    pub fn new(seed: u64, connection: u64, lane: u64) -> Dice {
        // SplitMix64-style mixing so that neighbouring ids give unrelated streams.
        let mut x = seed ^ connection.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (lane << 56);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Dice {
            rng: StdRng::seed_from_u64(x ^ (x >> 31)),
        }
    }

    /// True with probability `p` (1 is always, without a draw).
    pub fn chance(&mut self, p: f64) -> bool {
        p >= 1.0 || (p > 0.0 && self.rng.random_bool(p))
    }

    /// A duration from `base - spread` to `base + spread` (never below zero).
    pub fn around(&mut self, base: Duration, spread: Duration) -> Duration {
        if spread.is_zero() {
            return base;
        }
        let offset = self.rng.random_range(0..=2 * spread.as_micros() as u64);
        (base + Duration::from_micros(offset)).saturating_sub(spread)
    }

    /// A size from `base / 2` to `base * 3 / 2`, at least 1.
    pub fn size_around(&mut self, base: usize) -> usize {
        let spread = base / 2;
        (base - spread + self.rng.random_range(0..=2 * spread)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_faults_take_direction_and_probability() {
        let s = parse("latency", "300ms:down:0.5").unwrap();
        assert_eq!(
            s.fault,
            Fault::Latency {
                delay: Duration::from_millis(300),
                jitter: Duration::ZERO
            }
        );
        assert_eq!((s.direction, s.probability), (Direction::Down, 0.5));
        let s = parse("latency", "1s~100ms").unwrap();
        assert_eq!(s.direction, Direction::Both);
        assert!(
            matches!(s.fault, Fault::Latency { jitter, .. } if jitter == Duration::from_millis(100))
        );
        assert_eq!(
            parse("limit-data", "100:up").unwrap().fault,
            Fault::LimitData(100)
        );
        assert_eq!(
            parse("reset-peer", "").unwrap().fault,
            Fault::ResetPeer(Duration::ZERO)
        );
        assert!(parse("latency", "300ms:sideways").is_err());
        assert!(parse("latency", "300ms:1.5").is_err());
        assert!(parse("latency", "-3s").is_err());
        assert!(parse("slicer", "0").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_bandwidth("500kbit"), Ok(62_500));
        assert_eq!(parse_bandwidth("2mbit"), Ok(250_000));
        assert_eq!(parse_bandwidth("64kB"), Ok(64_000));
        assert!(parse_bandwidth("fast").is_err());
        assert!(parse_bandwidth("5 furlongs").is_err());
        assert!(parse_bandwidth("0kbit").is_err());
    }

    #[test]
    fn message_faults_check_event_types() {
        let s = parse("drop", "processing:0.25").unwrap();
        assert_eq!(
            s.fault,
            Fault::Drop(Matcher {
                event_type: "SYNC_PROCESSING".into(),
                wheres: vec![]
            })
        );
        assert_eq!(s.probability, 0.25);
        let e = parse("drop", "SYNC_SUCCES").unwrap_err();
        assert!(e.contains("did you mean SYNC_SUCCESS"), "{e}");
        assert!(parse("delay", "SYNC_SUCCESS").is_err());
        assert!(parse("close-after", "3:1005").is_err());
        assert_eq!(
            parse("close-after", "3:4000").unwrap().fault,
            Fault::CloseAfter {
                frames: 3,
                code: 4000
            }
        );
        assert_eq!(
            parse("refuse-upgrade", "503:1").unwrap().fault,
            Fault::RefuseUpgrade(503)
        );
        assert!(parse("refuse-upgrade", "200").is_err());
        assert!(parse("reorder", "2").is_err());
        assert!(parse("teleport", "x").is_err());
    }

    #[test]
    fn dice_are_reproducible_per_connection_and_lane() {
        let draws = |c, l| {
            let mut d = Dice::new(7, c, l);
            (0..32).map(|_| d.chance(0.5)).collect::<Vec<_>>()
        };
        assert_eq!(draws(1, LANE_MESSAGES), draws(1, LANE_MESSAGES));
        assert_ne!(draws(1, LANE_MESSAGES), draws(2, LANE_MESSAGES));
        assert_ne!(draws(1, LANE_UP), draws(1, LANE_DOWN));
    }

    #[test]
    fn profiles_are_chromes() {
        let (rtt, down, up) = profile("slow-3g").unwrap();
        assert_eq!((rtt.as_millis(), down, up), (2000, 50_000, 50_000));
        assert_eq!(profile_faults("fast-3g").unwrap().len(), 4);
        assert!(profile("dial-up").is_none());
    }
}
