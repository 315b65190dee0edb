//! Counting client WebSocket frames where they arrive, on the connection's bytes.
//!
//! The WebSocket layer hands the socket handler whole messages, so frames that never
//! become one are invisible to the session's rate limit: a client can send empty
//! continuation frames without end (one core for one client). [`Metered`] wraps
//! every accepted connection; once a sync socket's handler arms its [`FrameMeter`]
//! (after the upgrade, from the request's extensions), every frame header read
//! counts against the client-frame rate, and over it the read fails with
//! [`RateExceeded`], which the session turns into a 4429 close.

use std::io;
use std::sync::{Arc, OnceLock};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::tap::{Tap, Tapped};

/// The read error of a connection over the client-frame rate.
#[derive(Debug, thiserror::Error)]
#[error("client frames over the rate limit")]
pub struct RateExceeded;

/// The frame counter of one connection, armed by the socket handler.
pub struct FrameMeter {
    limiter: OnceLock<DefaultDirectRateLimiter>,
    clock: governor::clock::DefaultClock,
}

impl FrameMeter {
    pub fn new(clock: governor::clock::DefaultClock) -> Arc<FrameMeter> {
        Arc::new(FrameMeter {
            limiter: OnceLock::new(),
            clock,
        })
    }

    /// From now on every client frame counts against `quota`.
    pub fn arm(&self, quota: Quota) {
        let _ = self
            .limiter
            .set(RateLimiter::direct_with_clock(quota, self.clock.clone()));
    }
}

/// Where the parser is in the client's frame stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// The first header byte (FIN, opcode).
    First,
    /// The second (mask bit, 7-bit length).
    Length,
    /// This many bytes of extended length to go.
    Extended(u8),
    /// This many bytes of mask to go.
    Mask(u8),
    /// This many payload bytes to go.
    Payload(u64),
}

/// Finds frame boundaries in client bytes (RFC 6455 5.2).
#[derive(Debug)]
struct Frames {
    part: Part,
    masked: bool,
    length: u64,
}

impl Frames {
    fn new() -> Frames {
        Frames {
            part: Part::First,
            masked: false,
            length: 0,
        }
    }

    /// Feeds bytes; returns how many frames started in them.
    fn feed(&mut self, mut bytes: &[u8]) -> u32 {
        let mut started = 0;
        while let Some((&byte, rest)) = bytes.split_first() {
            match self.part {
                Part::Payload(left) => {
                    let take = left.min(bytes.len() as u64) as usize;
                    bytes = &bytes[take..];
                    self.part = Part::Payload(left - take as u64);
                    self.settle();
                    continue;
                }
                Part::First => {
                    started += 1;
                    self.part = Part::Length;
                }
                Part::Length => {
                    self.masked = byte & 0x80 != 0;
                    match byte & 0x7f {
                        126 => (self.length, self.part) = (0, Part::Extended(2)),
                        127 => (self.length, self.part) = (0, Part::Extended(8)),
                        n => {
                            self.length = u64::from(n);
                            self.part = self.after_length();
                            self.settle();
                        }
                    }
                }
                Part::Extended(left) => {
                    self.length = (self.length << 8) | u64::from(byte);
                    self.part = if left == 1 {
                        self.after_length()
                    } else {
                        Part::Extended(left - 1)
                    };
                    self.settle();
                }
                Part::Mask(left) => {
                    self.part = if left == 1 {
                        Part::Payload(self.length)
                    } else {
                        Part::Mask(left - 1)
                    };
                    self.settle();
                }
            }
            bytes = rest;
        }
        started
    }

    fn after_length(&self) -> Part {
        if self.masked {
            Part::Mask(4)
        } else {
            Part::Payload(self.length)
        }
    }

    /// An empty payload ends the frame at once.
    fn settle(&mut self) {
        if self.part == Part::Payload(0) {
            self.part = Part::First;
        }
    }
}

/// The counting side of a [`Metered`] connection.
pub struct Counter {
    meter: Arc<FrameMeter>,
    frames: Frames,
}

impl Tap for Counter {
    fn read(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(limiter) = self.meter.limiter.get() else {
            return Ok(());
        };
        let started = self.frames.feed(bytes);
        for _ in 0..started {
            if limiter.check().is_err() {
                return Err(io::Error::other(RateExceeded));
            }
        }
        Ok(())
    }
}

/// A connection whose client frames a [`FrameMeter`] counts once armed.
pub type Metered<I> = Tapped<I, Counter>;

/// `io`, metered by `meter`.
pub fn metered<I>(io: I, meter: Arc<FrameMeter>) -> Metered<I> {
    Tapped::new(
        io,
        Counter {
            meter,
            frames: Frames::new(),
        },
    )
}

/// Whether a read error is the meter's.
pub fn rate_exceeded(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<RateExceeded>().is_some() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.get_ref().is_some_and(|inner| inner.is::<RateExceeded>())
        {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![first];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[1, 2, 3, 4]);
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn frames_are_found_across_any_split() {
        let mut wire = masked(0x01, b"start");
        for _ in 0..10 {
            wire.extend(masked(0x00, b""));
        }
        wire.extend(masked(0x80, &[7u8; 300]));
        wire.extend(masked(0x8A, b""));
        for split in [1, 2, 3, 7, 64, wire.len()] {
            let mut frames = Frames::new();
            let started: u32 = wire.chunks(split).map(|c| frames.feed(c)).sum();
            assert_eq!(started, 13, "split {split}");
            assert_eq!(frames.part, Part::First);
        }
    }
}
